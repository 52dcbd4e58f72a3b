//! `weft-cni`: the CNI plugin that puts containers on weft networks (see `weft::cni`).
//! Runtimes call it with `CNI_*` variables and the network configuration on stdin; it answers
//! with the spec's JSON on stdout and exit status 0 (success) or 1 (error).
//!
//! This file is only the process glue; parsing, the calls to weftd and the error mapping live
//! in `weft::cni::run`, which takes the environment as a function so tests can call it.

use std::io::{Read, Write};

/// Reads stdin whole, runs the command on a current-thread runtime (one call, no threads to
/// spare), prints the answer and exits with its status. An unreadable stdin or a runtime
/// that will not start is CNI error 5 (I/O), written in the newest version: on these paths
/// the configuration's `cniVersion` is never read. A failed write to stdout is ignored:
/// nobody is left to tell, and the exit status still says whether the command worked.
fn main() {
    let mut stdin = Vec::new();
    let outcome = match std::io::stdin().read_to_end(&mut stdin) {
        Err(e) => weft::cni::Outcome {
            stdout: Some(
                weft::cni::CniError::new(weft::cni::code::IO, format!("reading stdin: {e}"))
                    .to_json(weft::cni::config::LATEST_VERSION),
            ),
            status: 1,
        },
        Ok(_) => match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(weft::cni::run(|k| std::env::var(k).ok(), &stdin)),
            Err(e) => weft::cni::Outcome {
                stdout: Some(
                    weft::cni::CniError::new(weft::cni::code::IO, format!("starting: {e}"))
                        .to_json(weft::cni::config::LATEST_VERSION),
                ),
                status: 1,
            },
        },
    };
    if let Some(v) = outcome.stdout {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{v}");
        let _ = out.flush();
    }
    std::process::exit(outcome.status);
}
