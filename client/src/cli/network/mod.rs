//! `weft network`: Docker-style bridge networks (NetworkService), with docker's flags.
//!
//! `create` takes `--subnet`, `--gateway` and `--ip-range` the way `docker network create`
//! does: each gateway and range belongs to the subnet that contains it (which is the same
//! subnet as by position whenever the flags make sense, and right when IPv4 and IPv6 flags are
//! interleaved), and the docker bridge driver options in `--opt` map onto the Network fields.
//! A weftd without NetworkService answers UNIMPLEMENTED; the CLI prints its message like any
//! other error (`Error: create network "n1": <message>`, exit 1).
//!
//! `ls` and `watch` select with docker's `--filter` and with `-l/--selector` (the label selector
//! of `weft ns` and `weft link`); both may be given, and a network must match all of them.
//! Every mutating verb takes `--dry-run` (see [`super::plan`]); `create` and `connect` take
//! `--request-id`.
//!
//! What each verb sends, and what it prints:
//!
//! - `create`: CreateNetwork; the name, or the network as JSON; exit 1 unless it is Ready.
//! - `connect`: Connect; the endpoint row (its addresses and published ports), or the
//!   endpoint as JSON; exit 1 unless it is Ready.
//! - `disconnect`: Disconnect; nothing in table mode (like docker), `{"network",
//!   "namespace"}` in JSON.
//! - `rm`: one DeleteNetwork per name, going on after failures; the names as they go.
//! - `prune`: after asking on the terminal (unless `-f` or `--dry-run`), PruneNetworks with
//!   the label filters; `Deleted Networks:` and the names, as docker prints them.
//! - `ls`, `watch`, `inspect`: ListNetworks, WatchNetworks, GetNetwork (inspect also lists
//!   the namespaces `weft-cni` adopted, to show container ids: see [`cni`]). Name filters
//!   (`--filter name=PART`) are not in the API: the CLI applies them to what weftd sends.
//!
//! The flags are in [`args`], their translation into requests in [`request`]; the mutating
//! verbs run on the shared skeleton of [`super::mutate`].

pub mod args;
pub mod cni;
pub mod docker;
pub mod request;

use std::io::BufRead;

use anyhow::Result;
use serde_json::json;
use weft::{
    Client,
    v1::{
        CreateNetworkRequest, DeleteNetworkRequest, DisconnectRequest, ListNetworksRequest,
        Network, PruneNetworksRequest, WatchNetworksRequest, WatchNetworksResponse,
    },
};

pub use self::args::{EndpointFlags, NetworkCmd};
use self::request::{build_network, connect_request, selection};
use super::{
    Ctx, inspect_each,
    mutate::{self, Answer, Verb},
    parse::{self, Filter},
    print_list, sh, table, usage,
    watch::{self, WatchFlags},
};

/// `weft network watch` and `weft network ls --watch`. Name filters are applied here; an event
/// with no name (a deleted network weftd knows only by uid) always passes, as it may be one of
/// those selected.
async fn watch_networks(
    ctx: &Ctx,
    selector: &str,
    filters: &[Filter],
    flags: &WatchFlags,
) -> Result<()> {
    let (label_selector, names) = selection(selector, filters);
    let req = WatchNetworksRequest {
        label_selector,
        since_revision: flags.since_revision(),
    };
    let keep = move |ev: &WatchNetworksResponse| {
        let name = ev.network.as_ref().map_or("", |n| n.name.as_str());
        name.is_empty() || names.iter().all(|part| name.contains(part.as_str()))
    };
    watch::run(ctx, "watch networks", flags, keep, |c| async move {
        c.networks().watch_networks(req).await
    })
    .await
}

/// Asks on stderr, reads stdin; anything but y/yes (or end of input) is no. The question
/// goes to stderr so that `weft network prune --format json > out.json` still shows it, and a
/// closed stdin (a script that forgot `-f`) answers no rather than pruning.
fn confirm(question: &str) -> Result<bool> {
    eprint!("{question} [y/N] ");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(
        line.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// Runs `weft network ...`: read verbs here, mutating ones through [`Verb`] (see the module
/// docs for what each sends).
pub async fn run(ctx: &Ctx, cmd: NetworkCmd) -> Result<()> {
    match cmd {
        NetworkCmd::Create(a) => {
            let net = build_network(&a).map_err(|m| usage(&["network", "create"], m))?;
            let msg = CreateNetworkRequest {
                dry_run: a.dry_run,
                request_id: a.request_id.clone().unwrap_or_default(),
                network: Some(net),
                wait: Some(!a.no_wait),
            };
            let rpc = |c: Client, r| async move { c.networks().create_network(r).await };
            let verb = Verb::new(format!("create network {:?}", a.name), a.dry_run, a.no_wait);
            let inspect = format!("weft network inspect {}", sh(&a.name));
            let table = |n: &weft::v1::Network| format!("{}\n", n.name);
            verb.apply(ctx, msg, rpc, &inspect, table).await
        }
        NetworkCmd::Ls(a) if a.list.watch => {
            watch_networks(ctx, &a.list.selector, &a.filters, &a.list.flags).await
        }
        NetworkCmd::Watch(a) => watch_networks(ctx, &a.selector, &a.filters, &a.flags).await,
        NetworkCmd::Ls(a) => {
            a.list.flags.check(false, &["network", "ls"])?;
            let (label_selector, names) = selection(&a.list.selector, &a.filters);
            let req = ctx.req(ListNetworksRequest {
                label_selector,
                ..Default::default()
            });
            let mut list = ctx
                .call("list networks", |c| async move {
                    c.list_all_networks(req).await
                })
                .await?
                .networks;
            list.retain(|n| names.iter().all(|part| n.name.contains(part.as_str())));
            let quiet = a.list.quiet;
            let name = |n: &Network| n.name.clone();
            print_list(ctx, &list, quiet, name, table::networks)
        }
        NetworkCmd::Inspect { names } => {
            let get = |name: String| cni::get(ctx, name);
            inspect_each(ctx, names, get, cni::describe).await
        }
        NetworkCmd::Rm {
            mut names,
            no_wait,
            dry_run,
            force,
        } => {
            if force {
                let mut present = Vec::new();
                for n in names {
                    if get_if_present(ctx, &n).await?.is_some() {
                        present.push(n);
                    }
                }
                names = present;
                if names.is_empty() {
                    return Ok(());
                }
            }
            let rpc = |c: Client, r| async move { c.networks().delete_network(r).await };
            mutate::remove_named::<DeleteNetworkRequest, _, _, _>(
                ctx, "network", names, dry_run, no_wait, rpc,
            )
            .await
        }
        NetworkCmd::Prune(a) => {
            let (label_selector, names) = parse::split_filters(&a.filters);
            if !names.is_empty() {
                return Err(usage(&["network", "prune"], "prune filters by label only"));
            }
            if !a.force && !a.dry_run {
                let which = if label_selector.is_empty() {
                    String::new()
                } else {
                    format!(" matching {label_selector}")
                };
                let q = format!(
                    "WARNING! This will remove all networks without endpoints{which}.\nAre you \
                     sure you want to continue?"
                );
                if !confirm(&q)? {
                    return Ok(());
                }
            }
            let msg = PruneNetworksRequest {
                dry_run: a.dry_run,
                label_selector,
            };
            // Prune waits for nothing: weftd removes what has no endpoints and answers.
            let verb = Verb::new("prune networks".into(), a.dry_run, false);
            let mut resp = verb
                .send(ctx, msg, |c, r| async move {
                    c.networks().prune_networks(r).await
                })
                .await?;
            let table = if resp.deleted.is_empty() {
                String::new()
            } else {
                format!("Deleted Networks:\n{}\n", resp.deleted.join("\n"))
            };
            let fields = vec![("deleted", json!(resp.deleted))];
            mutate::print_fields(ctx, a.dry_run, &resp.take_plan(), fields, &table)
        }
        NetworkCmd::Connect(a) => {
            let what = format!(
                "connect namespace {:?} to network {:?}",
                a.namespace, a.network
            );
            let rpc = |c: Client, r| async move { c.networks().connect(r).await };
            let inspect = format!("weft network inspect {}", sh(&a.network));
            let table = |ep: &weft::v1::Endpoint| table::endpoints(std::slice::from_ref(ep));
            let verb = Verb::new(what, a.dry_run, a.no_wait);
            verb.apply(ctx, connect_request(&a), rpc, &inspect, table)
                .await
        }
        NetworkCmd::Disconnect {
            network,
            namespace,
            no_wait,
            dry_run,
            force,
        } => {
            if force
                && !get_if_present(ctx, &network)
                    .await?
                    .is_some_and(|n| n.endpoints.iter().any(|e| e.namespace == namespace))
            {
                return Ok(());
            }
            let what = format!("disconnect namespace {namespace:?} from network {network:?}");
            let msg = DisconnectRequest {
                dry_run,
                network: network.clone(),
                namespace: namespace.clone(),
                wait: Some(!no_wait),
            };
            let verb = Verb::new(what, dry_run, no_wait);
            let mut resp = verb
                .send(
                    ctx,
                    msg,
                    |c, r| async move { c.networks().disconnect(r).await },
                )
                .await?;
            let fields = vec![("network", json!(network)), ("namespace", json!(namespace))];
            mutate::print_fields(ctx, dry_run, &resp.take_plan(), fields, "")
        }
    }
}

/// The network `name`, or None when weftd says NOT_FOUND (for the `--force` forms, which
/// treat a missing network as done). Any other failure is the command's error.
async fn get_if_present(ctx: &Ctx, name: &str) -> Result<Option<weft::v1::Network>> {
    let client = ctx.client().await?;
    let req = ctx.req(weft::v1::GetNetworkRequest {
        name: name.to_string(),
    });
    match client.networks().get_network(req).await {
        Ok(r) => Ok(r.into_inner().network),
        Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
        Err(s) => Err(anyhow::anyhow!(
            "get network {name:?}: {} ({:?})",
            s.message(),
            s.code()
        )),
    }
}
