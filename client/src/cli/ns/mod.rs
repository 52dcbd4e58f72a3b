//! `weft ns`: create, list, watch, inspect and remove network namespaces (NamespaceService).
//!
//! `create --network MODE` gives Docker's network modes: `none` creates the namespace only,
//! `bridge` or a network's name creates it and connects it to that network (NetworkService
//! Connect; if that fails the namespace is removed again), and `host` and `container:X` create
//! nothing but say which namespace a workload uses.
//!
//! `create --dry-run` asks weftd for the plan of every step (with a network, the Connect too)
//! and undoes nothing, since nothing was made. `create --request-id ID` makes a retry safe:
//! CreateNamespace carries ID and, with a network, Connect carries `ID/connect`, so that a
//! retried `ns create --network` gets both answers again instead of failing on the endpoint
//! (and removing the namespace).
//!
//! The module is split along the way a verb runs:
//!
//! - [`args`]: the clap definitions, i.e. every flag and its help text;
//! - [`request`]: flags to requests, pure and unit tested: what `ns create` will do
//!   ([`request::CreatePlan`]) and the CreateNamespace and Connect requests it sends;
//! - [`create`]: running `ns create` in each network mode, undoing a half-made namespace;
//! - this file: dispatch, and the verbs that are one call each (`ls`, `watch`, `inspect`,
//!   `rm`), the last through the shared skeleton of [`super::mutate`].
//!
//! What each verb sends: `ls` ListNamespaces with the `-l` selector; `watch` and `ls --watch`
//! WatchNamespaces (see [`super::watch`]); `inspect` one GetNamespace per name; `rm` one
//! DeleteNamespace per name, going on after a failure and exiting 1 at the end.

pub mod args;
pub mod create;
pub mod force;
pub mod request;

use anyhow::Result;
use weft::{
    Client,
    v1::{
        DeleteNamespaceRequest, GetNamespaceRequest, ListNamespacesRequest, Namespace,
        WatchNamespacesRequest,
    },
};

pub use self::args::NsCmd;
use super::{
    Ctx, inspect_each,
    mutate::{self},
    print_list, table,
    watch::{self, WatchFlags},
};

/// Runs `weft ns ...`.
pub async fn run(ctx: &Ctx, cmd: NsCmd) -> Result<()> {
    match cmd {
        NsCmd::Create(a) => create::create(ctx, &a).await,
        NsCmd::Ls(a) if a.list.watch => watch_namespaces(ctx, a.list.selector, &a.list.flags).await,
        NsCmd::Watch(a) => watch_namespaces(ctx, a.selector, &a.flags).await,
        NsCmd::Ls(a) => {
            a.list.flags.check(false, &["ns", "ls"])?;
            let req = ctx.req(ListNamespacesRequest {
                label_selector: a.list.selector,
                ..Default::default()
            });
            let list = ctx
                .call("list namespaces", |c| async move {
                    c.list_all_namespaces(req).await
                })
                .await?
                .namespaces;
            let quiet = a.list.quiet;
            let name = |n: &Namespace| n.name.clone();
            print_list(ctx, &list, quiet, name, table::namespaces)
        }
        NsCmd::Inspect { names } => {
            let get = |name: String| async move {
                get_namespace(ctx, &format!("inspect namespace {name:?}"), &name).await
            };
            inspect_each(ctx, names, get, table::describe_namespace).await
        }
        NsCmd::Rm {
            names,
            no_wait,
            dry_run,
            force,
        } => {
            if force {
                for name in &names {
                    force::clear(ctx, name).await?;
                }
            }
            let rpc = |c: Client, r| async move { c.namespaces().delete_namespace(r).await };
            mutate::remove_named::<DeleteNamespaceRequest, _, _, _>(
                ctx,
                "namespace",
                names,
                dry_run,
                no_wait,
                rpc,
            )
            .await
        }
    }
}

/// GetNamespace `name`, for `inspect` and `create --network container:X`; `what` names the
/// operation in errors. A missing namespace is NOT_FOUND: `Error: <what>: ...`, exit 1.
pub async fn get_namespace(ctx: &Ctx, what: &str, name: &str) -> Result<Namespace> {
    let req = ctx.req(GetNamespaceRequest {
        name: name.to_string(),
    });
    let resp = ctx
        .call(
            what,
            |c| async move { c.namespaces().get_namespace(req).await },
        )
        .await?;
    Ok(resp.namespace.unwrap_or_default())
}

/// `weft ns watch` and `weft ns ls --watch`.
async fn watch_namespaces(ctx: &Ctx, selector: String, flags: &WatchFlags) -> Result<()> {
    let req = WatchNamespacesRequest {
        label_selector: selector,
        since_revision: flags.since_revision(),
    };
    watch::run(
        ctx,
        "watch namespaces",
        flags,
        |_| true,
        |c| async move { c.namespaces().watch_namespaces(req).await },
    )
    .await
}
