//! `weft link`: create, list, watch, inspect, change and remove interfaces (LinkService).
//!
//! A link is named by (namespace, name), the empty namespace being the host; `--ns` picks the
//! namespace and defaults to the host. `weft link set` sends UpdateLink with an update mask of
//! exactly the fields given on the command line, so everything else is left alone; the link is
//! named as the user named it (either end of a veth pair), and weftd applies top-level fields to
//! that end. `--dry-run` on create, set and rm prints weftd's plan instead (see [`super::plan`]).
//!
//! What each verb sends, and how it answers:
//!
//! - `create`: CreateLink with the Link built by [`request::build_link`]; prints the name as
//!   typed, or the link as JSON, then fails (exit 1) if the link did not become Ready.
//! - `set`: UpdateLink (see [`request::update_request`]); prints as `create` does. A veth named
//!   by its far end is still printed by the name the user gave.
//! - `rm`: one DeleteLink per name; either end of a veth pair removes the pair. JSON lists
//!   `{"namespace", "name"}` of each under `deleted`.
//! - `ls`, `watch`, `inspect`: ListLinks, WatchLinks, GetLink; `--ns`/`--host-ns` filter by
//!   namespace (a veth pair matches if either end is there).
//!
//! Errors name the link the way the user did: `Error: set link "veth0" in namespace "ns1":
//! ...`; the mutating verbs share the skeleton of [`super::mutate`].

pub mod args;
pub mod request;

use anyhow::Result;
use serde_json::json;
use weft::{
    Client,
    v1::{
        CreateLinkRequest, DeleteLinkRequest, GetLinkRequest, Link, ListLinksRequest,
        WatchLinksRequest,
    },
};

pub use self::args::LinkCmd;
use self::request::{build_link, changes, ns_filter, update_request};
use super::{
    Ctx, inspect_each,
    mutate::{self, Removal, Verb},
    print_list, sh, table, usage,
    watch::{self, WatchFlags},
};

/// `link "veth0" in namespace "ns1"` / `link "veth0" in the host namespace`.
fn link_ref(ns: &str, name: &str) -> String {
    if ns.is_empty() {
        format!("link {name:?} in the host namespace")
    } else {
        format!("link {name:?} in namespace {ns:?}")
    }
}

/// The inspect command for a link, for hints.
fn inspect_cmd(ns: &str, name: &str) -> String {
    if ns.is_empty() {
        format!("weft link inspect {}", sh(name))
    } else {
        format!("weft link inspect {} --ns {}", sh(name), sh(ns))
    }
}

/// `list links`, `list links in namespace "ns1"`... (`verb` first).
fn links_in(verb: &str, namespace: Option<&str>) -> String {
    match namespace {
        None => format!("{verb} links"),
        Some("") => format!("{verb} links in the host namespace"),
        Some(ns) => format!("{verb} links in namespace {ns:?}"),
    }
}

/// `weft link watch` and `weft link ls --watch`.
async fn watch_links(
    ctx: &Ctx,
    namespace: Option<String>,
    selector: String,
    flags: &WatchFlags,
) -> Result<()> {
    let what = links_in("watch", namespace.as_deref());
    let req = WatchLinksRequest {
        namespace,
        label_selector: selector,
        since_revision: flags.since_revision(),
    };
    watch::run(
        ctx,
        &what,
        flags,
        |_| true,
        |c| async move { c.links().watch_links(req).await },
    )
    .await
}

/// Runs `weft link ...`.
pub async fn run(ctx: &Ctx, cmd: LinkCmd) -> Result<()> {
    match cmd {
        LinkCmd::Create(a) => {
            let link = build_link(&a).map_err(|m| usage(&["link", "create"], m))?;
            let what = format!("create {}", link_ref(&a.ns, &a.name));
            let msg = CreateLinkRequest {
                dry_run: a.dry_run,
                request_id: a.request_id.clone().unwrap_or_default(),
                link: Some(link),
                wait: Some(!a.no_wait),
            };
            let rpc = |c: Client, r| async move { c.links().create_link(r).await };
            let verb = Verb::new(what, a.dry_run, a.no_wait);
            verb.apply(ctx, msg, rpc, &inspect_cmd(&a.ns, &a.name), |_| {
                format!("{}\n", a.name)
            })
            .await
        }
        LinkCmd::Ls(a) if a.list.watch => {
            watch_links(
                ctx,
                ns_filter(a.ns, a.host_ns),
                a.list.selector,
                &a.list.flags,
            )
            .await
        }
        LinkCmd::Watch(a) => {
            watch_links(ctx, ns_filter(a.ns, a.host_ns), a.selector, &a.flags).await
        }
        LinkCmd::Ls(a) => {
            a.list.flags.check(false, &["link", "ls"])?;
            let namespace = ns_filter(a.ns, a.host_ns);
            let what = links_in("list", namespace.as_deref());
            let req = ctx.req(ListLinksRequest {
                namespace,
                label_selector: a.list.selector,
                ..Default::default()
            });
            let list = ctx
                .call(&what, |c| async move { c.list_all_links(req).await })
                .await?
                .links;
            let quiet = a.list.quiet;
            let name = |l: &Link| format!("{}/{}", table::ns_name(&l.namespace), l.name);
            print_list(ctx, &list, quiet, name, table::links)
        }
        LinkCmd::Inspect(r) => {
            let ns = r.ns.as_str();
            let get = |name: String| async move {
                let what = format!("inspect {}", link_ref(ns, &name));
                let req = ctx.req(GetLinkRequest {
                    namespace: ns.to_string(),
                    name,
                });
                let resp = ctx
                    .call(&what, |c| async move { c.links().get_link(req).await })
                    .await?;
                Ok(resp.link.unwrap_or_default())
            };
            inspect_each(ctx, r.names, get, table::describe_link).await
        }
        LinkCmd::Rm {
            refs,
            no_wait,
            dry_run,
        } => {
            let ns = refs.ns.as_str();
            let removal = |name: &str| Removal {
                what: format!("remove {}", link_ref(ns, name)),
                deleted: json!({ "namespace": ns, "name": name }),
                msg: DeleteLinkRequest {
                    dry_run,
                    namespace: ns.to_string(),
                    name: name.to_string(),
                    wait: Some(!no_wait),
                },
            };
            mutate::remove_each(
                ctx,
                refs.names,
                dry_run,
                no_wait,
                removal,
                |c, r| async move { c.links().delete_link(r).await },
            )
            .await
        }
        LinkCmd::Set(a) => {
            let c = changes(&a).map_err(|m| usage(&["link", "set"], m))?;
            let what = format!("set {}", link_ref(&a.ns, &a.name));
            let mut msg = update_request(&a.ns, &a.name, &c, !a.no_wait);
            msg.dry_run = a.dry_run;
            let rpc = |c: Client, r| async move { c.links().update_link(r).await };
            let verb = Verb::new(what, a.dry_run, a.no_wait);
            verb.apply(ctx, msg, rpc, &inspect_cmd(&a.ns, &a.name), |_| {
                format!("{}\n", a.name)
            })
            .await
        }
    }
}
