//! `weft ns`: create, list, inspect and remove network namespaces (NamespaceService).

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use weft::v1::{
    CreateNamespaceRequest, DeleteNamespaceRequest, GetNamespaceRequest, ListNamespacesRequest,
    Namespace,
};

use super::{Ctx, Output, each, json, parse, sh, table, usage};

/// `weft ns ...`
#[derive(Debug, Subcommand)]
pub enum NsCmd {
    /// Create a namespace: a bind mount under /run/netns like `ip netns add`, or adopt one.
    Create(CreateArgs),
    /// List namespaces.
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Show namespaces in detail.
    Inspect {
        /// Namespace names.
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
    /// Remove namespaces (they must hold no weft links). Adopted ones are only forgotten.
    #[command(visible_alias = "delete")]
    Rm {
        /// Namespace names.
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
        /// Answer at once instead of waiting until the namespace is gone.
        #[arg(long)]
        no_wait: bool,
    },
}

/// `weft ns create`
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Namespace name (letters, digits, '.', '_', '-'; at most 64 bytes).
    pub name: String,
    /// A label, KEY=VALUE (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse::label)]
    pub labels: Vec<(String, String)>,
    /// Adopt an existing namespace file (e.g. /proc/PID/ns/net) instead of creating one.
    #[arg(long, value_name = "PATH")]
    pub path: Option<String>,
    /// Answer at once (phase Pending) instead of waiting until the namespace is Ready.
    #[arg(long)]
    pub no_wait: bool,
}

/// `weft ns ls`
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Label selector: comma-separated KEY=VALUE, KEY!=VALUE, KEY or !KEY.
    #[arg(long, short = 'l', value_name = "SEL", default_value = "")]
    pub selector: String,
    /// Print only the names.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Builds the CreateNamespace request.
pub fn create_request(a: &CreateArgs) -> Result<CreateNamespaceRequest, String> {
    Ok(CreateNamespaceRequest {
        namespace: Some(Namespace {
            name: a.name.clone(),
            labels: parse::labels_map(&a.labels)?,
            path: a.path.clone().unwrap_or_default(),
            ..Default::default()
        }),
        wait: Some(!a.no_wait),
    })
}

/// Runs `weft ns ...`.
pub async fn run(ctx: &Ctx, cmd: NsCmd) -> Result<()> {
    match cmd {
        NsCmd::Create(a) => {
            let req = create_request(&a).map_err(|m| usage(&["ns", "create"], m))?;
            let what = format!("create namespace {:?}", a.name);
            let req = ctx.req(req);
            let resp = ctx
                .write(&what, |c| async move {
                    c.namespaces().create_namespace(req).await
                })
                .await?;
            let ns = resp.namespace.unwrap_or_default();
            match ctx.output() {
                Output::Json => ctx.print_json(&json::namespace(&ns))?,
                Output::Table => ctx.print(&format!("{}\n", ns.name))?,
            }
            ctx.check_applied(
                &what,
                ns.status.as_ref(),
                !a.no_wait,
                &format!("weft ns inspect {}", sh(&a.name)),
            )
        }
        NsCmd::Ls(a) => {
            let req = ctx.req(ListNamespacesRequest {
                label_selector: a.selector,
            });
            let list = ctx
                .call("list namespaces", |c| async move {
                    c.namespaces().list_namespaces(req).await
                })
                .await?
                .namespaces;
            match (ctx.output(), a.quiet) {
                (Output::Json, _) => {
                    ctx.print_json(&Value::Array(list.iter().map(json::namespace).collect()))
                }
                (Output::Table, true) => ctx.print(
                    &list
                        .iter()
                        .map(|n| format!("{}\n", n.name))
                        .collect::<String>(),
                ),
                (Output::Table, false) => ctx.print(&table::namespaces(&list)),
            }
        }
        NsCmd::Inspect { names } => {
            let done = each(names, |name| async move {
                let req = ctx.req(GetNamespaceRequest { name: name.clone() });
                let what = format!("inspect namespace {name:?}");
                let resp = ctx
                    .call(
                        &what,
                        |c| async move { c.namespaces().get_namespace(req).await },
                    )
                    .await?;
                Ok(resp.namespace.unwrap_or_default())
            })
            .await?;
            match ctx.output() {
                Output::Json => {
                    ctx.print_json(&Value::Array(done.ok.iter().map(json::namespace).collect()))?
                }
                Output::Table => ctx.print(
                    &done
                        .ok
                        .iter()
                        .map(table::describe_namespace)
                        .collect::<Vec<_>>()
                        .join("\n"),
                )?,
            }
            done.finish()
        }
        NsCmd::Rm { names, no_wait } => {
            let done = each(names, |name| async move {
                let req = ctx.req(DeleteNamespaceRequest {
                    name: name.clone(),
                    wait: Some(!no_wait),
                });
                let what = format!("remove namespace {name:?}");
                ctx.write(&what, |c| async move {
                    c.namespaces().delete_namespace(req).await
                })
                .await?;
                if ctx.output() == Output::Table {
                    ctx.print(&format!("{name}\n"))?;
                }
                Ok(name)
            })
            .await?;
            if ctx.output() == Output::Json {
                ctx.print_json(&json!({ "deleted": done.ok }))?;
            }
            done.finish()
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn create(args: &[&str]) -> Result<CreateNamespaceRequest, String> {
        let mut argv = vec!["weft", "ns", "create"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .command
        {
            Command::Ns(NsCmd::Create(a)) => create_request(&a),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn create_maps_flags() {
        let req = create(&["ns1", "--label", "app=web", "--label", "tier=", "--no-wait"]).unwrap();
        let ns = req.namespace.unwrap();
        assert_eq!(ns.name, "ns1");
        assert_eq!(ns.labels.get("app").map(String::as_str), Some("web"));
        assert_eq!(ns.labels.get("tier").map(String::as_str), Some(""));
        assert_eq!(ns.path, "");
        assert_eq!(req.wait, Some(false));
        let req = create(&["c1", "--path", "/proc/42/ns/net"]).unwrap();
        assert_eq!(req.namespace.unwrap().path, "/proc/42/ns/net");
        assert_eq!(req.wait, Some(true));
        assert!(
            create(&["x", "--label", "a=1", "--label", "a=2"])
                .unwrap_err()
                .contains("more than once")
        );
    }

    #[test]
    fn aliases_parse() {
        for argv in [["weft", "ns", "list"], ["weft", "namespace", "ls"]] {
            assert!(matches!(
                Cli::try_parse_from(argv).unwrap().command,
                Command::Ns(NsCmd::Ls(_))
            ));
        }
        let cli = Cli::try_parse_from(["weft", "ns", "delete", "a", "b"]).unwrap();
        assert!(
            matches!(cli.command, Command::Ns(NsCmd::Rm { names, no_wait: false }) if names == ["a", "b"])
        );
    }
}
