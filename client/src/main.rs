//! `weft`, the command line for weftd: see `weft --help`, and [`cli`] for how it is built.
//!
//! Exit codes: 0 on success, 1 when weftd refused or failed a request (or could not be
//! reached), 2 for usage errors.

#![deny(clippy::unwrap_used, clippy::expect_used)]

mod cli;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, parser::ValueSource};

fn main() -> ExitCode {
    let matches = cli::Cli::command().get_matches();
    // An explicit --socket (or WEFT_SOCKET) wins over WEFT_HOST; only clap knows which it was.
    let socket_given = matches
        .value_source("socket")
        .is_some_and(|s| s != ValueSource::DefaultValue);
    let args = match cli::Cli::from_arg_matches(&matches) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args, socket_given)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(usage) = e.downcast_ref::<clap::Error>() {
                usage.exit();
            }
            if !e.is::<cli::error::Reported>() {
                cli::report(&e);
            }
            ExitCode::FAILURE
        }
    }
}
