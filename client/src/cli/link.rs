//! `weft link`: create, list, watch, inspect, change and remove interfaces (LinkService).
//!
//! A link is named by (namespace, name), the empty namespace being the host; `--ns` picks the
//! namespace and defaults to the host. `weft link set` sends UpdateLink with an update mask of
//! exactly the fields given on the command line, so everything else is left alone; the link is
//! named as the user named it (either end of a veth pair), and weftd applies top-level fields to
//! that end. `--dry-run` on create, set and rm prints weftd's plan instead (see [`plan`]).

use std::collections::HashMap;

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use weft::v1::{
    Bridge, CreateLinkRequest, DeleteLinkRequest, GetLinkRequest, Link, ListLinksRequest, Route,
    UpdateLinkRequest, Veth, VethPeer, WatchLinksRequest, link::Kind,
};

use super::{
    Ctx, Output, each, json, parse, plan, sh, table, usage,
    watch::{self, WatchFlags},
};

/// `weft link ...`
#[derive(Debug, Subcommand)]
pub enum LinkCmd {
    /// Create a veth pair or a bridge.
    Create(Box<CreateArgs>),
    /// List links (all namespaces unless --ns or --host; --watch: then every change).
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Watch links: every current one, then every change, one line each as it happens.
    ///
    /// Runs until interrupted or weftd ends the stream; --timeout does not apply.
    Watch(WatchArgs),
    /// Show links in detail (a veth pair may be named by either end).
    Inspect(RefArgs),
    /// Remove links; naming either end of a veth pair removes the pair.
    #[command(visible_alias = "delete")]
    Rm {
        /// The links.
        #[command(flatten)]
        refs: RefArgs,
        /// Answer at once instead of waiting until the interfaces are gone.
        #[arg(long)]
        no_wait: bool,
        /// Plan only: print what weftd would change, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Change a link in place; only the fields given change.
    Set(SetArgs),
}

/// The kinds `weft link create --type` accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LinkKind {
    /// A veth pair (needs --peer).
    Veth,
    /// A Linux bridge.
    Bridge,
}

/// `weft link create`
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Interface name (1 to 15 bytes).
    pub name: String,
    /// Namespace of the interface; empty (the default) is the host.
    #[arg(long, value_name = "NS", default_value = "")]
    pub ns: String,
    /// What to create.
    #[arg(long = "type", value_enum, value_name = "TYPE")]
    pub kind: LinkKind,
    /// Name of the veth peer.
    #[arg(long, value_name = "NAME", required_if_eq("kind", "veth"))]
    pub peer: Option<String>,
    /// Namespace of the veth peer; default: the same as --ns ("" for the host).
    #[arg(long, value_name = "NS", requires = "peer")]
    pub peer_ns: Option<String>,
    /// MTU in bytes.
    #[arg(long, value_name = "N")]
    pub mtu: Option<u32>,
    /// MAC address (default: random).
    #[arg(long, value_name = "MAC", value_parser = parse::mac)]
    pub mac: Option<String>,
    /// Bring the interface up.
    #[arg(long)]
    pub up: bool,
    /// Enslave the interface to this bridge (in the same namespace).
    #[arg(long, value_name = "BR")]
    pub master: Option<String>,
    /// An address in CIDR notation (repeatable).
    #[arg(long = "addr", value_name = "CIDR", value_parser = parse::cidr)]
    pub addrs: Vec<String>,
    /// A route DEST[,via=GW][,metric=N], DEST a CIDR or `default` (repeatable).
    #[arg(long = "route", value_name = "SPEC", value_parser = parse::route)]
    pub routes: Vec<Route>,
    /// MTU of the peer (default: the link's).
    #[arg(long, value_name = "N", requires = "peer")]
    pub peer_mtu: Option<u32>,
    /// MAC address of the peer.
    #[arg(long, value_name = "MAC", value_parser = parse::mac, requires = "peer")]
    pub peer_mac: Option<String>,
    /// Bring the peer up.
    #[arg(long, requires = "peer")]
    pub peer_up: bool,
    /// Enslave the peer to this bridge (in the peer's namespace).
    #[arg(long, value_name = "BR", requires = "peer")]
    pub peer_master: Option<String>,
    /// An address of the peer (repeatable).
    #[arg(long = "peer-addr", value_name = "CIDR", value_parser = parse::cidr, requires = "peer")]
    pub peer_addrs: Vec<String>,
    /// A route through the peer (repeatable).
    #[arg(long = "peer-route", value_name = "SPEC", value_parser = parse::route, requires = "peer")]
    pub peer_routes: Vec<Route>,
    /// A label, KEY=VALUE (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse::label)]
    pub labels: Vec<(String, String)>,
    /// Answer at once (phase Pending) instead of waiting until the link is Ready.
    #[arg(long)]
    pub no_wait: bool,
    /// Plan only: print what weftd would change, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Make the call safe to retry: a retry with the same ID gets the first call's answer
    /// instead of making anything again (1 to 128 bytes).
    #[arg(long, value_name = "ID", value_parser = parse::request_id)]
    pub request_id: Option<String>,
}

/// `weft link ls`
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only links with an end in this namespace ("" is the host).
    #[arg(long, value_name = "NS", conflicts_with = "host")]
    pub ns: Option<String>,
    /// Only links with an end in the host namespace (same as --ns "").
    #[arg(long)]
    pub host: bool,
    /// Label selector: comma-separated KEY=VALUE, KEY!=VALUE, KEY or !KEY.
    #[arg(long, short = 'l', value_name = "SEL", default_value = "")]
    pub selector: String,
    /// Print only NAMESPACE/NAME of each link.
    #[arg(long, short = 'q', conflicts_with = "watch")]
    pub quiet: bool,
    /// After the list, print every change as it happens (the same as `weft link watch`).
    #[arg(long, short = 'w')]
    pub watch: bool,
    /// With --watch.
    #[command(flatten, next_help_heading = "Watch options (with --watch)")]
    pub flags: WatchFlags,
}

/// `weft link watch`
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Only links with an end in this namespace ("" is the host).
    #[arg(long, value_name = "NS", conflicts_with = "host")]
    pub ns: Option<String>,
    /// Only links with an end in the host namespace (same as --ns "").
    #[arg(long)]
    pub host: bool,
    /// Label selector: comma-separated KEY=VALUE, KEY!=VALUE, KEY or !KEY.
    #[arg(long, short = 'l', value_name = "SEL", default_value = "")]
    pub selector: String,
    /// Where to start and when to stop.
    #[command(flatten)]
    pub flags: WatchFlags,
}

/// Links named on the command line: names in one namespace.
#[derive(Debug, Args)]
pub struct RefArgs {
    /// Interface names.
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
    /// Their namespace; empty (the default) is the host.
    #[arg(long, value_name = "NS", default_value = "")]
    pub ns: String,
}

/// `weft link set`
#[derive(Debug, Args)]
pub struct SetArgs {
    /// Interface name (either end of a veth pair).
    pub name: String,
    /// Its namespace; empty (the default) is the host.
    #[arg(long, value_name = "NS", default_value = "")]
    pub ns: String,
    /// New MTU.
    #[arg(long, value_name = "N")]
    pub mtu: Option<u32>,
    /// New MAC address.
    #[arg(long, value_name = "MAC", value_parser = parse::mac)]
    pub mac: Option<String>,
    /// Bring the interface up.
    #[arg(long, conflicts_with = "down")]
    pub up: bool,
    /// Bring the interface down.
    #[arg(long)]
    pub down: bool,
    /// Enslave the interface to this bridge.
    #[arg(long, value_name = "BR", conflicts_with = "nomaster")]
    pub master: Option<String>,
    /// Release the interface from its bridge.
    #[arg(long)]
    pub nomaster: bool,
    /// Replace the address list with these (repeatable).
    #[arg(long = "addr", value_name = "CIDR", value_parser = parse::cidr, conflicts_with = "noaddr")]
    pub addrs: Vec<String>,
    /// Remove every address.
    #[arg(long)]
    pub noaddr: bool,
    /// Replace the route list with these, DEST[,via=GW][,metric=N] (repeatable).
    #[arg(long = "route", value_name = "SPEC", value_parser = parse::route, conflicts_with = "noroute")]
    pub routes: Vec<Route>,
    /// Remove every route.
    #[arg(long)]
    pub noroute: bool,
    /// Replace the link's labels with these, KEY=VALUE (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse::label)]
    pub labels: Vec<(String, String)>,
    /// Answer at once instead of waiting until the change is applied.
    #[arg(long)]
    pub no_wait: bool,
    /// Plan only: print what weftd would change, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Builds the link `weft link create` asks for.
pub fn build_link(a: &CreateArgs) -> Result<Link, String> {
    let mut link = Link {
        name: a.name.clone(),
        namespace: a.ns.clone(),
        labels: parse::labels_map(&a.labels)?,
        mtu: a.mtu.unwrap_or(0),
        mac_address: a.mac.clone().unwrap_or_default(),
        up: a.up,
        master: a.master.clone().unwrap_or_default(),
        addresses: a.addrs.clone(),
        routes: a.routes.clone(),
        ..Default::default()
    };
    link.kind = Some(match a.kind {
        LinkKind::Bridge => {
            if a.peer.is_some() {
                return Err("--peer and the --peer-* flags only apply to --type veth".into());
            }
            Kind::Bridge(Bridge {})
        }
        LinkKind::Veth => {
            let name = a.peer.clone().ok_or("--type veth needs --peer NAME")?;
            Kind::Veth(Veth {
                peer: Some(VethPeer {
                    name,
                    namespace: a.peer_ns.clone().unwrap_or_else(|| a.ns.clone()),
                    mtu: a.peer_mtu.unwrap_or(0),
                    mac_address: a.peer_mac.clone().unwrap_or_default(),
                    up: a.peer_up,
                    master: a.peer_master.clone().unwrap_or_default(),
                    addresses: a.peer_addrs.clone(),
                    routes: a.peer_routes.clone(),
                    ..Default::default()
                }),
            })
        }
    });
    Ok(link)
}

/// The changes `weft link set` asks for; `None` leaves a field alone.
#[derive(Debug, Default, PartialEq)]
pub struct Changes {
    /// New MTU.
    pub mtu: Option<u32>,
    /// New MAC address.
    pub mac: Option<String>,
    /// Up or down.
    pub up: Option<bool>,
    /// New master; empty releases the interface.
    pub master: Option<String>,
    /// New address list.
    pub addresses: Option<Vec<String>>,
    /// New route list.
    pub routes: Option<Vec<Route>>,
    /// New labels (of the whole link).
    pub labels: Option<HashMap<String, String>>,
}

/// Collects the changes from the flags; at least one is needed.
pub fn changes(a: &SetArgs) -> Result<Changes, String> {
    let list = |none: bool, items: &Vec<String>| {
        if none {
            Some(Vec::new())
        } else {
            (!items.is_empty()).then(|| items.clone())
        }
    };
    let c = Changes {
        mtu: a.mtu,
        mac: a.mac.clone(),
        up: if a.up {
            Some(true)
        } else {
            a.down.then_some(false)
        },
        master: if a.nomaster {
            Some(String::new())
        } else {
            a.master.clone()
        },
        addresses: list(a.noaddr, &a.addrs),
        routes: if a.noroute {
            Some(Vec::new())
        } else {
            (!a.routes.is_empty()).then(|| a.routes.clone())
        },
        labels: if a.labels.is_empty() {
            None
        } else {
            Some(parse::labels_map(&a.labels)?)
        },
    };
    if c == Changes::default() {
        return Err(
            "nothing to change: give at least one of --mtu, --mac, --up/--down, \
                    --master/--nomaster, --addr/--noaddr, --route/--noroute, --label"
                .into(),
        );
    }
    Ok(c)
}

/// Builds the UpdateLink request for interface (`ns`, `name`): the given fields set, and the
/// update mask naming exactly those, in proto field order. weftd applies the top-level fields to
/// the end that is named, so naming the far end of a veth pair changes that end.
pub fn update_request(ns: &str, name: &str, c: &Changes, wait: bool) -> UpdateLinkRequest {
    let mut paths = Vec::new();
    let mut link = Link {
        name: name.into(),
        namespace: ns.into(),
        ..Default::default()
    };
    if let Some(v) = c.mtu {
        link.mtu = v;
        paths.push("mtu");
    }
    if let Some(v) = &c.mac {
        link.mac_address.clone_from(v);
        paths.push("mac_address");
    }
    if let Some(v) = c.up {
        link.up = v;
        paths.push("up");
    }
    if let Some(v) = &c.master {
        link.master.clone_from(v);
        paths.push("master");
    }
    if let Some(v) = &c.addresses {
        link.addresses.clone_from(v);
        paths.push("addresses");
    }
    if let Some(v) = &c.routes {
        link.routes.clone_from(v);
        paths.push("routes");
    }
    if let Some(v) = &c.labels {
        link.labels.clone_from(v);
        paths.push("labels");
    }
    UpdateLinkRequest {
        dry_run: false,
        link: Some(link),
        update_mask: Some(prost_types::FieldMask {
            paths: paths.into_iter().map(String::from).collect(),
        }),
        wait: Some(wait),
    }
}

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

/// The namespace filter of `ls` and `watch`: `--host` is `--ns ""`.
fn ns_filter(ns: Option<String>, host: bool) -> Option<String> {
    if host { Some(String::new()) } else { ns }
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

/// Prints a dry run of create or set: the plan, and the link as weftd would make it.
fn print_plan(ctx: &Ctx, changes: &[weft::v1::PlannedChange], link: Option<&Link>) -> Result<()> {
    plan::print(
        ctx,
        changes,
        vec![("link", link.map_or(Value::Null, json::link))],
    )
}

/// Runs `weft link ...`.
pub async fn run(ctx: &Ctx, cmd: LinkCmd) -> Result<()> {
    match cmd {
        LinkCmd::Create(a) => {
            let link = build_link(&a).map_err(|m| usage(&["link", "create"], m))?;
            let what = format!("create {}", link_ref(&a.ns, &a.name));
            let req = ctx.req(CreateLinkRequest {
                dry_run: a.dry_run,
                request_id: a.request_id.clone().unwrap_or_default(),
                link: Some(link),
                wait: Some(!a.no_wait),
            });
            if a.dry_run {
                let resp = ctx
                    .call(&format!("{what} (dry run)"), |c| async move {
                        c.links().create_link(req).await
                    })
                    .await?;
                return print_plan(ctx, &resp.planned_changes, resp.link.as_ref());
            }
            let resp = ctx
                .write(&what, |c| async move { c.links().create_link(req).await })
                .await?;
            let link = resp.link.unwrap_or_default();
            print_written(ctx, &a.name, &link)?;
            ctx.check_applied(
                &what,
                link.status.as_ref(),
                !a.no_wait,
                &inspect_cmd(&a.ns, &a.name),
            )
        }
        LinkCmd::Ls(a) if a.watch => {
            watch_links(ctx, ns_filter(a.ns, a.host), a.selector, &a.flags).await
        }
        LinkCmd::Watch(a) => watch_links(ctx, ns_filter(a.ns, a.host), a.selector, &a.flags).await,
        LinkCmd::Ls(a) => {
            a.flags.check(false, &["link", "ls"])?;
            let namespace = ns_filter(a.ns, a.host);
            let what = links_in("list", namespace.as_deref());
            let req = ctx.req(ListLinksRequest {
                namespace,
                label_selector: a.selector,
            });
            let list = ctx
                .call(&what, |c| async move { c.links().list_links(req).await })
                .await?
                .links;
            match (ctx.output(), a.quiet) {
                (Output::Json, _) => {
                    ctx.print_json(&Value::Array(list.iter().map(json::link).collect()))
                }
                (Output::Table, true) => ctx.print(
                    &list
                        .iter()
                        .map(|l| format!("{}/{}\n", table::ns_name(&l.namespace), l.name))
                        .collect::<String>(),
                ),
                (Output::Table, false) => ctx.print(&table::links(&list)),
            }
        }
        LinkCmd::Inspect(r) => {
            let ns = r.ns.as_str();
            let done = each(r.names, |name| async move {
                let what = format!("inspect {}", link_ref(ns, &name));
                let req = ctx.req(GetLinkRequest {
                    namespace: ns.to_string(),
                    name,
                });
                let resp = ctx
                    .call(&what, |c| async move { c.links().get_link(req).await })
                    .await?;
                Ok(resp.link.unwrap_or_default())
            })
            .await?;
            match ctx.output() {
                Output::Json => {
                    ctx.print_json(&Value::Array(done.ok.iter().map(json::link).collect()))?
                }
                Output::Table => ctx.print(
                    &done
                        .ok
                        .iter()
                        .map(table::describe_link)
                        .collect::<Vec<_>>()
                        .join("\n"),
                )?,
            }
            done.finish()
        }
        LinkCmd::Rm {
            refs,
            no_wait,
            dry_run,
        } => {
            let ns = refs.ns.as_str();
            let done = each(refs.names, |name| async move {
                let what = format!("remove {}", link_ref(ns, &name));
                let req = ctx.req(DeleteLinkRequest {
                    dry_run,
                    namespace: ns.to_string(),
                    name: name.clone(),
                    wait: Some(!no_wait),
                });
                let deleted = json!({ "namespace": ns, "name": name });
                if dry_run {
                    let resp = ctx
                        .call(&format!("{what} (dry run)"), |c| async move {
                            c.links().delete_link(req).await
                        })
                        .await?;
                    return Ok((deleted, resp.planned_changes));
                }
                ctx.write(&what, |c| async move { c.links().delete_link(req).await })
                    .await?;
                if ctx.output() == Output::Table {
                    ctx.print(&format!("{name}\n"))?;
                }
                Ok((deleted, Vec::new()))
            })
            .await?;
            let (deleted, changes): (Vec<Value>, Vec<_>) = done.ok.iter().cloned().unzip();
            if dry_run {
                plan::print(ctx, &changes.concat(), vec![("deleted", json!(deleted))])?;
            } else if ctx.output() == Output::Json {
                ctx.print_json(&json!({ "deleted": deleted }))?;
            }
            done.finish()
        }
        LinkCmd::Set(a) => {
            let c = changes(&a).map_err(|m| usage(&["link", "set"], m))?;
            let what = format!("set {}", link_ref(&a.ns, &a.name));
            let mut req = update_request(&a.ns, &a.name, &c, !a.no_wait);
            req.dry_run = a.dry_run;
            let req = ctx.req(req);
            if a.dry_run {
                let resp = ctx
                    .call(&format!("{what} (dry run)"), |c| async move {
                        c.links().update_link(req).await
                    })
                    .await?;
                return print_plan(ctx, &resp.planned_changes, resp.link.as_ref());
            }
            let resp = ctx
                .write(&what, |c| async move { c.links().update_link(req).await })
                .await?;
            let link = resp.link.unwrap_or_default();
            print_written(ctx, &a.name, &link)?;
            ctx.check_applied(
                &what,
                link.status.as_ref(),
                !a.no_wait,
                &inspect_cmd(&a.ns, &a.name),
            )
        }
    }
}

/// After create or set: the name the user gave in table mode (a veth named by its far end is
/// still described from its first end), the link in JSON.
fn print_written(ctx: &Ctx, name: &str, link: &Link) -> Result<()> {
    match ctx.output() {
        Output::Json => ctx.print_json(&json::link(link)),
        Output::Table => ctx.print(&format!("{name}\n")),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> Result<LinkCmd, clap::Error> {
        let mut argv = vec!["weft", "link"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).map(|cli| match cli.command {
            Command::Link(cmd) => cmd,
            other => panic!("parsed as {other:?}"),
        })
    }

    fn create(args: &[&str]) -> Result<Link, String> {
        let mut argv = vec!["create"];
        argv.extend_from_slice(args);
        match parse(&argv).map_err(|e| e.to_string())? {
            LinkCmd::Create(a) => build_link(&a),
            other => panic!("parsed as {other:?}"),
        }
    }

    fn set(args: &[&str]) -> Result<(SetArgs, Changes), String> {
        let mut argv = vec!["set"];
        argv.extend_from_slice(args);
        match parse(&argv).map_err(|e| e.to_string())? {
            LinkCmd::Set(a) => changes(&a).map(|c| (a, c)),
            other => panic!("parsed as {other:?}"),
        }
    }

    fn mask(req: &UpdateLinkRequest) -> Vec<&str> {
        req.update_mask
            .as_ref()
            .unwrap()
            .paths
            .iter()
            .map(String::as_str)
            .collect()
    }

    #[test]
    fn create_veth_maps_both_ends() {
        let l = create(&[
            "veth0",
            "--type",
            "veth",
            "--peer",
            "eth0",
            "--peer-ns",
            "ns1",
            "--mtu",
            "1400",
            "--up",
            "--master",
            "br0",
            "--addr",
            "10.0.0.1/24",
            "--route",
            "10.2.0.0/16,via=10.0.0.2",
            "--peer-addr",
            "10.0.0.2/24",
            "--peer-route",
            "default,via=10.0.0.1",
            "--peer-up",
            "--peer-mac",
            "02:00:00:00:00:02",
            "--label",
            "app=x",
        ])
        .unwrap();
        assert_eq!(
            (l.name.as_str(), l.namespace.as_str(), l.mtu, l.up),
            ("veth0", "", 1400, true)
        );
        assert_eq!(l.master, "br0");
        assert_eq!(l.addresses, ["10.0.0.1/24"]);
        assert_eq!(l.routes[0].gateway, "10.0.0.2");
        assert_eq!(l.labels["app"], "x");
        let Some(Kind::Veth(Veth { peer: Some(p) })) = &l.kind else {
            panic!("{l:?}")
        };
        assert_eq!(
            (p.name.as_str(), p.namespace.as_str(), p.up),
            ("eth0", "ns1", true)
        );
        assert_eq!(p.addresses, ["10.0.0.2/24"]);
        assert_eq!(p.routes[0].destination, "default");
        assert_eq!(p.mac_address, "02:00:00:00:00:02");
    }

    #[test]
    fn veth_peer_defaults_to_the_links_namespace() {
        let l = create(&["a", "--ns", "ns1", "--type", "veth", "--peer", "b"]).unwrap();
        let Some(Kind::Veth(Veth { peer: Some(p) })) = &l.kind else {
            panic!()
        };
        assert_eq!(p.namespace, "ns1");
        let l = create(&[
            "a",
            "--ns",
            "ns1",
            "--type",
            "veth",
            "--peer",
            "b",
            "--peer-ns",
            "",
        ])
        .unwrap();
        let Some(Kind::Veth(Veth { peer: Some(p) })) = &l.kind else {
            panic!()
        };
        assert_eq!(p.namespace, "");
    }

    #[test]
    fn create_checks_kind_specific_flags() {
        let l = create(&["br0", "--type", "bridge", "--up"]).unwrap();
        assert!(matches!(l.kind, Some(Kind::Bridge(_))));
        assert!(
            create(&["v0", "--type", "veth"])
                .unwrap_err()
                .contains("--peer")
        );
        assert!(
            create(&["br0", "--type", "bridge", "--peer", "x"])
                .unwrap_err()
                .contains("only apply")
        );
        assert!(
            create(&["br0", "--type", "bridge", "--peer-up"])
                .unwrap_err()
                .contains("--peer")
        );
        assert!(create(&["br0", "--type", "tun"]).is_err());
        assert!(create(&["br0"]).is_err());
        assert!(create(&["br0", "--type", "bridge", "--route", "10.0.0.0/8,dev=x"]).is_err());
    }

    #[test]
    fn ls_namespace_choices() {
        let ns_of = |args: &[&str]| match parse(args).unwrap() {
            LinkCmd::Ls(a) => ns_filter(a.ns, a.host),
            LinkCmd::Watch(a) => ns_filter(a.ns, a.host),
            other => panic!("{other:?}"),
        };
        assert_eq!(ns_of(&["ls"]), None);
        assert_eq!(ns_of(&["ls", "--host"]), Some(String::new()));
        assert_eq!(ns_of(&["list", "--ns", ""]), Some(String::new()));
        assert_eq!(ns_of(&["ls", "--ns", "ns1"]), Some("ns1".into()));
        assert!(parse(&["ls", "--ns", "ns1", "--host"]).is_err());
        assert_eq!(ns_of(&["watch", "--host"]), Some(String::new()));
        assert_eq!(ns_of(&["watch", "--ns", "ns1"]), Some("ns1".into()));
        assert_eq!(ns_of(&["ls", "-w", "--ns", "ns1"]), Some("ns1".into()));
        assert!(parse(&["watch", "--ns", "ns1", "--host"]).is_err());
        assert!(parse(&["ls", "-w", "-q"]).is_err());
    }

    #[test]
    fn update_mask_lists_exactly_the_given_fields() {
        let (a, c) = set(&["veth0", "--mtu", "9000"]).unwrap();
        let req = update_request(&a.ns, &a.name, &c, true);
        assert_eq!(mask(&req), ["mtu"]);
        assert_eq!(req.link.as_ref().unwrap().mtu, 9000);

        let (a, c) = set(&[
            "veth0",
            "--ns",
            "ns1",
            "--down",
            "--nomaster",
            "--addr",
            "10.0.0.1/24",
            "--addr",
            "fd00::1/64",
            "--route",
            "default,via=10.0.0.254",
            "--mac",
            "02:00:00:00:00:01",
            "--label",
            "a=b",
        ])
        .unwrap();
        let req = update_request(&a.ns, &a.name, &c, false);
        assert_eq!(
            mask(&req),
            [
                "mac_address",
                "up",
                "master",
                "addresses",
                "routes",
                "labels"
            ]
        );
        let l = req.link.unwrap();
        assert_eq!(
            (
                l.name.as_str(),
                l.namespace.as_str(),
                l.up,
                l.master.as_str()
            ),
            ("veth0", "ns1", false, "")
        );
        assert_eq!(l.addresses, ["10.0.0.1/24", "fd00::1/64"]);
        assert_eq!(req.wait, Some(false));
    }

    #[test]
    fn update_mask_can_clear_lists() {
        let (a, c) = set(&["v", "--noaddr", "--noroute", "--up"]).unwrap();
        let req = update_request(&a.ns, &a.name, &c, true);
        assert_eq!(mask(&req), ["up", "addresses", "routes"]);
        let l = req.link.unwrap();
        assert!(l.addresses.is_empty() && l.routes.is_empty() && l.up);
    }

    #[test]
    fn update_names_the_end_the_user_named() {
        // Either end of a veth: top-level fields, weftd applies them to the named end.
        let (a, c) = set(&["eth0", "--ns", "ns1", "--mtu", "1400", "--label", "k=v"]).unwrap();
        let req = update_request(&a.ns, &a.name, &c, true);
        assert_eq!(mask(&req), ["mtu", "labels"]);
        let l = req.link.unwrap();
        assert_eq!(
            (l.name.as_str(), l.namespace.as_str(), l.mtu),
            ("eth0", "ns1", 1400)
        );
        assert!(l.kind.is_none());
    }

    #[test]
    fn set_needs_something_and_refuses_contradictions() {
        assert!(set(&["v"]).unwrap_err().contains("nothing to change"));
        assert!(set(&["v", "--up", "--down"]).is_err());
        assert!(set(&["v", "--master", "br0", "--nomaster"]).is_err());
        assert!(set(&["v", "--addr", "10.0.0.1/24", "--noaddr"]).is_err());
        assert!(
            set(&["v", "--addr", "10.0.0.1"])
                .unwrap_err()
                .contains("CIDR")
        );
    }
}
