//! `weft system info` (and its short form `weft info`): SystemService.GetSystemInfo, like
//! `docker info`.
//!
//! One read, no flags of its own: the table lists weftd's version and start time, the
//! counters since it started, and where it works (the host namespace it manages, its
//! namespace directory, its database); `--format json` prints the response as proto3 JSON. The counters are how to tell a quiet weftd from a stuck one: reconciles and kernel
//! writes grow with work, drift repairs and orphans removed count what it found changed under
//! it, and the queue depth is the work waiting now.

use anyhow::Result;
use clap::Subcommand;
use weft::v1::GetSystemInfoRequest;

use super::{Ctx, table};

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
            ctx.print_one(&info, || table::describe_system_info(&info))
        }
    }
}

/// `weft version`: the client's version and commit, then weftd's, as `docker version` shows
/// them. The client part is printed even when weftd cannot be reached (then the error
/// follows and the exit status is not 0).
pub async fn version(ctx: &Ctx) -> Result<()> {
    let client = (env!("CARGO_PKG_VERSION"), weft_proto::GIT_COMMIT);
    let req = ctx.req(GetSystemInfoRequest {});
    let server = ctx
        .call("version", |c| async move {
            c.system().get_system_info(req).await
        })
        .await;
    let mut v = serde_json::json!({
        "client": {"version": client.0, "gitCommit": client.1},
    });
    if let Ok(info) = &server {
        v["server"] = serde_json::json!({"version": info.version, "gitCommit": info.git_commit});
    }
    ctx.print_value(
        || v,
        || {
            let mut text = format!(
                "Client:\n Version:     {}\n Git commit:  {}\n",
                client.0, client.1
            );
            if let Ok(info) = &server {
                text.push_str(&format!(
                    "Server:\n Version:     {}\n Git commit:  {}\n",
                    info.version, info.git_commit
                ));
            }
            text
        },
    )?;
    server.map(drop)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    /// `weft info` is `weft system info`, like `docker info`.
    #[test]
    fn info_has_a_short_form() {
        assert!(matches!(
            Cli::try_parse_from(["weft", "system", "info"])
                .unwrap()
                .command,
            Command::System(SystemCmd::Info)
        ));
        assert!(matches!(
            Cli::try_parse_from(["weft", "info", "--format", "json"])
                .unwrap()
                .command,
            Command::Info
        ));
    }
}
