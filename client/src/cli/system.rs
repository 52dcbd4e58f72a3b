//! `weft system info` (and its short form `weft info`): SystemService.GetSystemInfo, like
//! `docker info`.

use anyhow::Result;
use clap::Subcommand;
use weft::v1::GetSystemInfoRequest;

use super::{Ctx, Output, json, table};

/// `weft system ...`
#[derive(Debug, Subcommand)]
pub enum SystemCmd {
    /// Show weftd's version, start time, settings and counters since it started: kernel
    /// writes, reconciles, failures, drift repairs, orphans removed and the queue depth.
    Info,
}

/// Runs `weft system ...`.
pub async fn run(ctx: &Ctx, cmd: SystemCmd) -> Result<()> {
    match cmd {
        SystemCmd::Info => {
            let req = ctx.req(GetSystemInfoRequest {});
            let info = ctx
                .call("system info", |c| async move {
                    c.system().get_system_info(req).await
                })
                .await?;
            match ctx.output() {
                Output::Json => ctx.print_json(&json::system_info(&info)),
                Output::Table => ctx.print(&table::describe_system_info(&info)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    #[test]
    fn info_has_a_short_form() {
        assert!(matches!(
            Cli::try_parse_from(["weft", "system", "info"])
                .unwrap()
                .command,
            Command::System(SystemCmd::Info)
        ));
        assert!(matches!(
            Cli::try_parse_from(["weft", "info", "-o", "json"])
                .unwrap()
                .command,
            Command::Info
        ));
    }
}
