//! `weft completion SHELL` and `weft man DIR`: shell completion scripts (clap_complete) and
//! man pages (clap_mangen), both generated from the CLI's own clap definition, so they can
//! never disagree with `weft --help`. scripts/setup-and-run installs them.

use std::{io::Write, path::Path};

use anyhow::{Context, Result};
use clap::CommandFactory;

use super::Cli;

/// Prints the completion script for `shell` on stdout.
pub fn completion(shell: clap_complete::Shell) -> Result<()> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "weft", &mut out);
    match std::io::stdout().write_all(&out) {
        // `weft completion bash | head`: nobody reads any more, which is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("writing the completion script"),
    }
}

/// Writes `weft.1` and one page per subcommand (`weft-network-connect.1`) into `dir`.
pub fn man(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("writing man pages into {}", dir.display()))
}
