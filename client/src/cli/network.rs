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
//! Every mutating verb takes `--dry-run` (see [`plan`]); `create` and `connect` take
//! `--request-id`.

use std::{io::BufRead, net::IpAddr};

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use weft::v1::{
    ConnectRequest, CreateNetworkRequest, DeleteNetworkRequest, DisconnectRequest,
    GetNetworkRequest, ListNetworksRequest, Network, PruneNetworksRequest, PublishedPort, Subnet,
    WatchNetworksRequest, WatchNetworksResponse,
};

use super::{
    Ctx, Output, each, json,
    parse::{self, Filter},
    plan, sh, table, usage,
    watch::{self, WatchFlags},
};

/// `--opt` keys (docker's bridge driver options) that weft understands.
pub mod opt {
    /// Inter-container traffic on the network (`enable_icc`).
    pub const ENABLE_ICC: &str = "com.docker.network.bridge.enable_icc";
    /// Masquerading of outgoing traffic (`masquerade`).
    pub const MASQUERADE: &str = "com.docker.network.bridge.enable_ip_masquerade";
    /// The bridge's name (`bridge_name`).
    pub const BRIDGE_NAME: &str = "com.docker.network.bridge.name";
    /// The MTU (`mtu`).
    pub const MTU: &str = "com.docker.network.driver.mtu";
}

/// `weft network ...`
#[derive(Debug, Subcommand)]
pub enum NetworkCmd {
    /// Create a bridge network.
    Create(Box<CreateArgs>),
    /// List networks (--watch: then every change).
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Watch networks: every current one, then every change (endpoints included), one line
    /// each as it happens.
    ///
    /// Runs until interrupted or weftd ends the stream; --timeout does not apply.
    Watch(WatchArgs),
    /// Show networks in detail, with endpoints and address use.
    Inspect {
        /// Network names.
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
    /// Remove networks (they must have no endpoints).
    #[command(visible_aliases = ["remove", "delete"])]
    Rm {
        /// Network names.
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
        /// Answer at once instead of waiting until the network is gone.
        #[arg(long)]
        no_wait: bool,
        /// Plan only: print what weftd would change, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove every network without endpoints (that matches the filters).
    Prune(PruneArgs),
    /// Connect a namespace to a network.
    Connect(Box<ConnectArgs>),
    /// Disconnect a namespace from a network.
    Disconnect {
        /// The network.
        network: String,
        /// The namespace.
        namespace: String,
        /// Answer at once instead of waiting until the endpoint is gone.
        #[arg(long)]
        no_wait: bool,
        /// Plan only: print what weftd would change, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `weft network create`
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Network name.
    pub name: String,
    /// Driver; only "bridge" exists.
    #[arg(long, short = 'd', default_value = "bridge", value_parser = ["bridge"])]
    pub driver: String,
    /// A subnet in CIDR notation, IPv4 or IPv6 (repeatable; default: one IPv4 subnet from
    /// weftd's pool).
    #[arg(long = "subnet", value_name = "CIDR", value_parser = parse::cidr)]
    pub subnets: Vec<String>,
    /// The gateway of the subnet that contains it (repeatable; default: its first address).
    #[arg(long = "gateway", value_name = "IP", value_parser = parse::ip)]
    pub gateways: Vec<String>,
    /// Lease addresses only from this range of the subnet that contains it (repeatable).
    #[arg(long = "ip-range", value_name = "CIDR", value_parser = parse::cidr)]
    pub ip_ranges: Vec<String>,
    /// No traffic to or from outside the network.
    #[arg(long)]
    pub internal: bool,
    /// Give the network an IPv6 subnet too: from weftd's IPv6 pool unless --subnet names one.
    #[arg(long)]
    pub ipv6: bool,
    /// A driver option KEY=VALUE: com.docker.network.bridge.enable_icc,
    /// com.docker.network.bridge.enable_ip_masquerade, com.docker.network.bridge.name,
    /// com.docker.network.driver.mtu (repeatable).
    #[arg(long = "opt", value_name = "KEY=VALUE", value_parser = parse::key_value)]
    pub opts: Vec<(String, String)>,
    /// A label, KEY=VALUE (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse::label)]
    pub labels: Vec<(String, String)>,
    /// Name of the Linux bridge (at most 15 bytes; default: generated).
    #[arg(long, value_name = "NAME")]
    pub bridge_name: Option<String>,
    /// MTU of the bridge and every endpoint (default 1500).
    #[arg(long, value_name = "N")]
    pub mtu: Option<u32>,
    /// Answer at once instead of waiting until the network is Ready.
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

/// `weft network ls`
#[derive(Debug, Args)]
pub struct LsArgs {
    /// label=KEY, label=KEY=VALUE, label!=KEY[=VALUE], or name=PART (repeatable).
    #[arg(long = "filter", short = 'f', value_name = "FILTER", value_parser = parse::filter)]
    pub filters: Vec<Filter>,
    /// Label selector: comma-separated KEY=VALUE, KEY!=VALUE, KEY or !KEY.
    #[arg(long, short = 'l', value_name = "SEL", default_value = "")]
    pub selector: String,
    /// Print only the names.
    #[arg(long, short = 'q', conflicts_with = "watch")]
    pub quiet: bool,
    /// After the list, print every change as it happens (the same as `weft network watch`).
    #[arg(long, short = 'w')]
    pub watch: bool,
    /// With --watch.
    #[command(flatten, next_help_heading = "Watch options (with --watch)")]
    pub flags: WatchFlags,
}

/// `weft network watch`
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// label=KEY, label=KEY=VALUE, label!=KEY[=VALUE], or name=PART (repeatable).
    #[arg(long = "filter", short = 'f', value_name = "FILTER", value_parser = parse::filter)]
    pub filters: Vec<Filter>,
    /// Label selector: comma-separated KEY=VALUE, KEY!=VALUE, KEY or !KEY.
    #[arg(long, short = 'l', value_name = "SEL", default_value = "")]
    pub selector: String,
    /// Where to start and when to stop.
    #[command(flatten)]
    pub flags: WatchFlags,
}

/// `weft network prune`
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// label=KEY, label=KEY=VALUE or label!=KEY[=VALUE] (repeatable).
    #[arg(long = "filter", value_name = "FILTER", value_parser = parse::filter)]
    pub filters: Vec<Filter>,
    /// Do not ask for confirmation.
    #[arg(long, short = 'f')]
    pub force: bool,
    /// Plan only: print what weftd would remove, and remove nothing (asks nothing).
    #[arg(long)]
    pub dry_run: bool,
}

/// `weft network connect`
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The network.
    pub network: String,
    /// The weft namespace to connect.
    pub namespace: String,
    /// How the endpoint looks.
    #[command(flatten)]
    pub endpoint: EndpointFlags,
    /// Do not add a default route via the gateway.
    #[arg(long)]
    pub no_default_route: bool,
    /// Answer at once instead of waiting until the endpoint is Ready.
    #[arg(long)]
    pub no_wait: bool,
    /// Plan only: print what weftd would change, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Make the call safe to retry: a retry with the same ID gets the first call's answer
    /// instead of making another endpoint or lease (1 to 128 bytes).
    #[arg(long, value_name = "ID", value_parser = parse::request_id)]
    pub request_id: Option<String>,
}

/// The flags that shape an endpoint, shared by `weft network connect` and `weft ns create
/// --network`.
#[derive(Debug, Default, Args)]
pub struct EndpointFlags {
    /// A static IPv4 address in the network's IPv4 subnet.
    #[arg(long, value_name = "IP", value_parser = parse::ipv4)]
    pub ip: Option<String>,
    /// A static IPv6 address in the network's IPv6 subnet.
    #[arg(long, value_name = "IP", value_parser = parse::ipv6)]
    pub ip6: Option<String>,
    /// A static MAC address for the inside interface.
    #[arg(long, value_name = "MAC", value_parser = parse::mac)]
    pub mac: Option<String>,
    /// An extra name for the endpoint on the network (repeatable).
    #[arg(long = "alias", value_name = "NAME")]
    pub aliases: Vec<String>,
    /// Publish a port: [HOST_IP:]HOST_PORT[-END]:CONTAINER_PORT[/PROTO] (repeatable).
    #[arg(long = "publish", short = 'p', value_name = "SPEC", value_parser = parse::port)]
    pub ports: Vec<PublishedPort>,
    /// Interface name inside the namespace (default eth0).
    #[arg(long, value_name = "NAME")]
    pub interface: Option<String>,
}

impl EndpointFlags {
    /// The first of these flags that was given, as typed on the command line (for messages
    /// about flags that need a network).
    pub fn first_given(&self) -> Option<&'static str> {
        [
            (self.ip.is_some(), "--ip"),
            (self.ip6.is_some(), "--ip6"),
            (self.mac.is_some(), "--mac"),
            (!self.aliases.is_empty(), "--alias"),
            (!self.ports.is_empty(), "-p/--publish"),
            (self.interface.is_some(), "--interface"),
        ]
        .into_iter()
        .find_map(|(given, flag)| given.then_some(flag))
    }

    /// The Connect request that attaches `namespace` to `network` with these flags.
    pub fn connect_request(
        &self,
        network: &str,
        namespace: &str,
        skip_default_route: bool,
        wait: bool,
    ) -> ConnectRequest {
        ConnectRequest {
            dry_run: false,
            request_id: String::new(),
            network: network.to_string(),
            namespace: namespace.to_string(),
            interface_name: self.interface.clone().unwrap_or_default(),
            ipv4_address: self.ip.clone().unwrap_or_default(),
            ipv6_address: self.ip6.clone().unwrap_or_default(),
            mac_address: self.mac.clone().unwrap_or_default(),
            aliases: self.aliases.clone(),
            published_ports: self.ports.clone(),
            skip_default_route,
            wait: Some(wait),
        }
    }
}

/// Whether `net` (address and prefix) contains `ip`.
fn contains((net, prefix): (IpAddr, u8), ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

/// Pairs gateways and ranges with subnets the way docker does: each goes to the subnet that
/// contains it, one per subnet.
pub fn subnets(
    subnets: &[String],
    gateways: &[String],
    ranges: &[String],
) -> Result<Vec<Subnet>, String> {
    if subnets.is_empty() && !(gateways.is_empty() && ranges.is_empty()) {
        return Err("--gateway and --ip-range need the --subnet they belong to".into());
    }
    let nets = subnets
        .iter()
        .map(|s| parse::cidr_parts(s))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out: Vec<Subnet> = subnets
        .iter()
        .map(|s| Subnet {
            subnet: s.clone(),
            ..Default::default()
        })
        .collect();
    // Puts `value` into the first subnet that contains `ip` (and `prefix`) and has none yet.
    let mut assign = |value: &str,
                      ip: IpAddr,
                      prefix: Option<u8>,
                      what: &str,
                      field: fn(&mut Subnet) -> &mut String|
     -> Result<(), String> {
        let fits = |i: usize| contains(nets[i], ip) && prefix.is_none_or(|p| p >= nets[i].1);
        let candidates: Vec<usize> = (0..nets.len()).filter(|&i| fits(i)).collect();
        let Some(&first) = candidates.first() else {
            return Err(format!(
                "{what} {value} is in none of the subnets ({})",
                subnets.join(", ")
            ));
        };
        match candidates
            .into_iter()
            .find(|&i| field(&mut out[i]).is_empty())
        {
            Some(i) => {
                *field(&mut out[i]) = value.to_string();
                Ok(())
            }
            None => Err(format!(
                "subnet {} is given more than one {what} ({} and {value})",
                subnets[first],
                field(&mut out[first])
            )),
        }
    };
    for gw in gateways {
        let ip: IpAddr = gw
            .parse()
            .map_err(|_| format!("gateway {gw:?} is not an IP address"))?;
        assign(gw, ip, None, "--gateway", |s| &mut s.gateway)?;
    }
    for range in ranges {
        let (ip, prefix) = parse::cidr_parts(range)?;
        assign(range, ip, Some(prefix), "--ip-range", |s| &mut s.ip_range)?;
    }
    Ok(out)
}

/// Builds the network `weft network create` asks for.
pub fn build_network(a: &CreateArgs) -> Result<Network, String> {
    let mut net = Network {
        name: a.name.clone(),
        labels: parse::labels_map(&a.labels)?,
        subnets: subnets(&a.subnets, &a.gateways, &a.ip_ranges)?,
        internal: a.internal,
        enable_ipv6: a.ipv6,
        ..Default::default()
    };
    let mut bridge = a
        .bridge_name
        .clone()
        .map(|b| (b, "--bridge-name".to_string()));
    let mut mtu = a.mtu.map(|m| (m, "--mtu".to_string()));
    for (key, value) in &a.opts {
        let given = format!("--opt {key}={value}");
        let bool_opt = || parse::go_bool(value).map_err(|e| format!("{given}: {e}"));
        match key.as_str() {
            opt::ENABLE_ICC => net.enable_icc = Some(bool_opt()?),
            opt::MASQUERADE => net.masquerade = Some(bool_opt()?),
            opt::BRIDGE_NAME => set_once(&mut bridge, value.clone(), given)?,
            opt::MTU => {
                let m = value
                    .parse()
                    .map_err(|_| format!("{given}: the MTU must be a number"))?;
                set_once(&mut mtu, m, given)?;
            }
            _ => {
                return Err(format!(
                    "unsupported option {key:?}; weft understands {}, {}, {} and {}",
                    opt::ENABLE_ICC,
                    opt::MASQUERADE,
                    opt::BRIDGE_NAME,
                    opt::MTU
                ));
            }
        }
    }
    net.bridge_name = bridge.map(|(b, _)| b).unwrap_or_default();
    net.mtu = mtu.map_or(0, |(m, _)| m);
    Ok(net)
}

/// Sets a value that two flags may give, refusing two different ones.
fn set_once<T: PartialEq + std::fmt::Display>(
    slot: &mut Option<(T, String)>,
    value: T,
    from: String,
) -> Result<(), String> {
    match slot {
        Some((old, old_from)) if *old != value => {
            Err(format!("{old_from} ({old}) and {from} disagree"))
        }
        Some(_) => Ok(()),
        None => {
            *slot = Some((value, from));
            Ok(())
        }
    }
}

/// Builds the Connect request.
pub fn connect_request(a: &ConnectArgs) -> ConnectRequest {
    let mut req =
        a.endpoint
            .connect_request(&a.network, &a.namespace, a.no_default_route, !a.no_wait);
    req.dry_run = a.dry_run;
    req.request_id = a.request_id.clone().unwrap_or_default();
    req
}

/// The label selector for weftd (`--selector` and the label filters, all of which must match)
/// and the name substrings the CLI matches itself.
pub fn selection(selector: &str, filters: &[Filter]) -> (String, Vec<String>) {
    let (terms, names) = parse::split_filters(filters);
    let sel = [selector, terms.as_str()]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(",");
    (sel, names)
}

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

/// Asks on stderr, reads stdin; anything but y/yes (or end of input) is no.
fn confirm(question: &str) -> Result<bool> {
    eprint!("{question} [y/N] ");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(
        line.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// Runs `weft network ...`.
pub async fn run(ctx: &Ctx, cmd: NetworkCmd) -> Result<()> {
    match cmd {
        NetworkCmd::Create(a) => {
            let net = build_network(&a).map_err(|m| usage(&["network", "create"], m))?;
            let what = format!("create network {:?}", a.name);
            let req = ctx.req(CreateNetworkRequest {
                dry_run: a.dry_run,
                request_id: a.request_id.clone().unwrap_or_default(),
                network: Some(net),
                wait: Some(!a.no_wait),
            });
            if a.dry_run {
                let resp = ctx
                    .call(&format!("{what} (dry run)"), |c| async move {
                        c.networks().create_network(req).await
                    })
                    .await?;
                return plan::print(
                    ctx,
                    &resp.planned_changes,
                    vec![(
                        "network",
                        resp.network.as_ref().map_or(Value::Null, json::network),
                    )],
                );
            }
            let resp = ctx
                .write(
                    &what,
                    |c| async move { c.networks().create_network(req).await },
                )
                .await?;
            let net = resp.network.unwrap_or_default();
            match ctx.output() {
                Output::Json => ctx.print_json(&json::network(&net))?,
                Output::Table => ctx.print(&format!("{}\n", net.name))?,
            }
            ctx.check_applied(
                &what,
                net.status.as_ref(),
                !a.no_wait,
                &format!("weft network inspect {}", sh(&a.name)),
            )
        }
        NetworkCmd::Ls(a) if a.watch => {
            watch_networks(ctx, &a.selector, &a.filters, &a.flags).await
        }
        NetworkCmd::Watch(a) => watch_networks(ctx, &a.selector, &a.filters, &a.flags).await,
        NetworkCmd::Ls(a) => {
            a.flags.check(false, &["network", "ls"])?;
            let (label_selector, names) = selection(&a.selector, &a.filters);
            let req = ctx.req(ListNetworksRequest { label_selector });
            let mut list = ctx
                .call("list networks", |c| async move {
                    c.networks().list_networks(req).await
                })
                .await?
                .networks;
            list.retain(|n| names.iter().all(|part| n.name.contains(part.as_str())));
            match (ctx.output(), a.quiet) {
                (Output::Json, _) => {
                    ctx.print_json(&Value::Array(list.iter().map(json::network).collect()))
                }
                (Output::Table, true) => ctx.print(
                    &list
                        .iter()
                        .map(|n| format!("{}\n", n.name))
                        .collect::<String>(),
                ),
                (Output::Table, false) => ctx.print(&table::networks(&list)),
            }
        }
        NetworkCmd::Inspect { names } => {
            let done = each(names, |name| async move {
                let what = format!("inspect network {name:?}");
                let req = ctx.req(GetNetworkRequest { name });
                let resp = ctx
                    .call(
                        &what,
                        |c| async move { c.networks().get_network(req).await },
                    )
                    .await?;
                Ok(resp.network.unwrap_or_default())
            })
            .await?;
            match ctx.output() {
                Output::Json => {
                    ctx.print_json(&Value::Array(done.ok.iter().map(json::network).collect()))?
                }
                Output::Table => ctx.print(
                    &done
                        .ok
                        .iter()
                        .map(table::describe_network)
                        .collect::<Vec<_>>()
                        .join("\n"),
                )?,
            }
            done.finish()
        }
        NetworkCmd::Rm {
            names,
            no_wait,
            dry_run,
        } => {
            let done = each(names, |name| async move {
                let what = format!("remove network {name:?}");
                let req = ctx.req(DeleteNetworkRequest {
                    dry_run,
                    name: name.clone(),
                    wait: Some(!no_wait),
                });
                if dry_run {
                    let resp = ctx
                        .call(&format!("{what} (dry run)"), |c| async move {
                            c.networks().delete_network(req).await
                        })
                        .await?;
                    return Ok((name, resp.planned_changes));
                }
                ctx.write(
                    &what,
                    |c| async move { c.networks().delete_network(req).await },
                )
                .await?;
                if ctx.output() == Output::Table {
                    ctx.print(&format!("{name}\n"))?;
                }
                Ok((name, Vec::new()))
            })
            .await?;
            let (names, changes): (Vec<String>, Vec<_>) = done.ok.iter().cloned().unzip();
            if dry_run {
                plan::print(ctx, &changes.concat(), vec![("deleted", json!(names))])?;
            } else if ctx.output() == Output::Json {
                ctx.print_json(&json!({ "deleted": names }))?;
            }
            done.finish()
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
            let req = ctx.req(PruneNetworksRequest {
                dry_run: a.dry_run,
                label_selector,
            });
            if a.dry_run {
                let resp = ctx
                    .call("prune networks (dry run)", |c| async move {
                        c.networks().prune_networks(req).await
                    })
                    .await?;
                return plan::print(
                    ctx,
                    &resp.planned_changes,
                    vec![("deleted", json!(resp.deleted))],
                );
            }
            let deleted = ctx
                .write("prune networks", |c| async move {
                    c.networks().prune_networks(req).await
                })
                .await?
                .deleted;
            match ctx.output() {
                Output::Json => ctx.print_json(&json!({ "deleted": deleted })),
                Output::Table if deleted.is_empty() => Ok(()),
                Output::Table => ctx.print(&format!("Deleted Networks:\n{}\n", deleted.join("\n"))),
            }
        }
        NetworkCmd::Connect(a) => {
            let what = format!(
                "connect namespace {:?} to network {:?}",
                a.namespace, a.network
            );
            let req = ctx.req(connect_request(&a));
            if a.dry_run {
                let resp = ctx
                    .call(&format!("{what} (dry run)"), |c| async move {
                        c.networks().connect(req).await
                    })
                    .await?;
                return plan::print(
                    ctx,
                    &resp.planned_changes,
                    vec![(
                        "endpoint",
                        resp.endpoint.as_ref().map_or(Value::Null, json::endpoint),
                    )],
                );
            }
            let ep = ctx
                .write(&what, |c| async move { c.networks().connect(req).await })
                .await?
                .endpoint
                .unwrap_or_default();
            match ctx.output() {
                Output::Json => ctx.print_json(&json::endpoint(&ep))?,
                Output::Table => ctx.print(&table::endpoints(std::slice::from_ref(&ep)))?,
            }
            ctx.check_applied(
                &what,
                ep.status.as_ref(),
                !a.no_wait,
                &format!("weft network inspect {}", sh(&a.network)),
            )
        }
        NetworkCmd::Disconnect {
            network,
            namespace,
            no_wait,
            dry_run,
        } => {
            let what = format!("disconnect namespace {namespace:?} from network {network:?}");
            let req = ctx.req(DisconnectRequest {
                dry_run,
                network: network.clone(),
                namespace: namespace.clone(),
                wait: Some(!no_wait),
            });
            if dry_run {
                let resp = ctx
                    .call(&format!("{what} (dry run)"), |c| async move {
                        c.networks().disconnect(req).await
                    })
                    .await?;
                return plan::print(
                    ctx,
                    &resp.planned_changes,
                    vec![("network", json!(network)), ("namespace", json!(namespace))],
                );
            }
            ctx.write(&what, |c| async move { c.networks().disconnect(req).await })
                .await?;
            match ctx.output() {
                Output::Json => {
                    ctx.print_json(&json!({ "network": network, "namespace": namespace }))
                }
                Output::Table => Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> Result<NetworkCmd, String> {
        let mut argv = vec!["weft", "network"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv)
            .map_err(|e| e.to_string())
            .map(|cli| match cli.command {
                Command::Network(cmd) => cmd,
                other => panic!("parsed as {other:?}"),
            })
    }

    fn create(args: &[&str]) -> Result<Network, String> {
        let mut argv = vec!["create", "n1"];
        argv.extend_from_slice(args);
        match parse(&argv)? {
            NetworkCmd::Create(a) => build_network(&a),
            other => panic!("parsed as {other:?}"),
        }
    }

    fn sub(s: &str, gw: &str, range: &str) -> Subnet {
        Subnet {
            subnet: s.into(),
            gateway: gw.into(),
            ip_range: range.into(),
            reserved: vec![],
        }
    }

    #[test]
    fn subnet_gateway_and_range_pair_up() {
        let n = create(&[
            "--subnet",
            "172.20.0.0/16",
            "--gateway",
            "172.20.0.1",
            "--ip-range",
            "172.20.5.0/24",
        ])
        .unwrap();
        assert_eq!(
            n.subnets,
            [sub("172.20.0.0/16", "172.20.0.1", "172.20.5.0/24")]
        );

        // By position...
        let n = create(&[
            "--subnet",
            "10.1.0.0/24",
            "--subnet",
            "fd00:1::/64",
            "--gateway",
            "10.1.0.254",
            "--gateway",
            "fd00:1::1",
            "--ipv6",
        ])
        .unwrap();
        assert_eq!(
            n.subnets,
            [
                sub("10.1.0.0/24", "10.1.0.254", ""),
                sub("fd00:1::/64", "fd00:1::1", "")
            ]
        );

        // ...and, like docker, by containment when the order differs or one is left out.
        let n = create(&[
            "--subnet",
            "10.1.0.0/24",
            "--subnet",
            "fd00:1::/64",
            "--gateway",
            "fd00:1::1",
            "--ip-range",
            "10.1.0.128/25",
        ])
        .unwrap();
        assert_eq!(
            n.subnets,
            [
                sub("10.1.0.0/24", "", "10.1.0.128/25"),
                sub("fd00:1::/64", "fd00:1::1", "")
            ]
        );
    }

    #[test]
    fn pairing_errors() {
        assert!(
            create(&["--gateway", "10.0.0.1"])
                .unwrap_err()
                .contains("need the --subnet")
        );
        assert!(
            create(&["--subnet", "10.1.0.0/24", "--gateway", "10.2.0.1"])
                .unwrap_err()
                .contains("none of the subnets")
        );
        assert!(
            create(&[
                "--subnet",
                "10.1.0.0/24",
                "--gateway",
                "10.1.0.1",
                "--gateway",
                "10.1.0.2"
            ])
            .unwrap_err()
            .contains("more than one --gateway")
        );
        assert!(
            create(&["--subnet", "10.1.0.0/24", "--ip-range", "10.1.0.0/16"])
                .unwrap_err()
                .contains("none of the subnets")
        );
        assert!(
            create(&["--subnet", "10.1.0.0"])
                .unwrap_err()
                .contains("CIDR")
        );
        // --ipv6 without an IPv6 subnet asks weftd's pool for one.
        let n = create(&["--subnet", "10.1.0.0/24", "--ipv6"]).unwrap();
        assert!(n.enable_ipv6);
        assert!(!create(&[]).unwrap().enable_ipv6);
    }

    #[test]
    fn docker_options_map_onto_fields() {
        let n = create(&[
            "--opt",
            "com.docker.network.bridge.enable_icc=false",
            "--opt",
            "com.docker.network.bridge.enable_ip_masquerade=false",
            "--opt",
            "com.docker.network.bridge.name=br-test",
            "--opt",
            "com.docker.network.driver.mtu=1450",
            "--internal",
            "--label",
            "env=test",
        ])
        .unwrap();
        assert_eq!(n.enable_icc, Some(false));
        assert_eq!(n.masquerade, Some(false));
        assert_eq!(n.bridge_name, "br-test");
        assert_eq!(n.mtu, 1450);
        assert!(n.internal);
        assert_eq!(n.labels["env"], "test");
        assert!(n.subnets.is_empty());

        let n = create(&["--bridge-name", "br1", "--mtu", "9000"]).unwrap();
        assert_eq!(
            (n.bridge_name.as_str(), n.mtu, n.enable_icc, n.masquerade),
            ("br1", 9000, None, None)
        );
        // The same value twice is fine; two different ones are not.
        assert!(
            create(&[
                "--bridge-name",
                "br1",
                "--opt",
                "com.docker.network.bridge.name=br1"
            ])
            .is_ok()
        );
        assert!(
            create(&[
                "--bridge-name",
                "br1",
                "--opt",
                "com.docker.network.bridge.name=br2"
            ])
            .unwrap_err()
            .contains("disagree")
        );
        assert!(
            create(&[
                "--mtu",
                "1500",
                "--opt",
                "com.docker.network.driver.mtu=9000"
            ])
            .unwrap_err()
            .contains("disagree")
        );
        assert!(
            create(&["--opt", "com.docker.network.bridge.enable_icc=maybe"])
                .unwrap_err()
                .contains("boolean")
        );
        assert!(
            create(&["--opt", "com.docker.network.driver.mtu=big"])
                .unwrap_err()
                .contains("number")
        );
        assert!(
            create(&[
                "--opt",
                "com.docker.network.bridge.host_binding_ipv4=0.0.0.0"
            ])
            .unwrap_err()
            .contains("unsupported option")
        );
        assert!(create(&["--opt", "novalue"]).is_err());
        assert!(create(&["-d", "overlay"]).is_err());
    }

    #[test]
    fn connect_maps_flags() {
        let NetworkCmd::Connect(a) = parse(&[
            "connect",
            "n1",
            "ns1",
            "--ip",
            "172.20.0.10",
            "--ip6",
            "fd00:1::10",
            "--mac",
            "02:42:ac:14:00:0a",
            "--alias",
            "web",
            "--alias",
            "www",
            "-p",
            "8080:80/tcp",
            "-p",
            "127.0.0.1:8000-8010:80/udp",
            "--interface",
            "eth1",
            "--no-default-route",
        ])
        .unwrap() else {
            panic!()
        };
        let req = connect_request(&a);
        assert_eq!(
            (req.network.as_str(), req.namespace.as_str()),
            ("n1", "ns1")
        );
        assert_eq!(
            (req.ipv4_address.as_str(), req.ipv6_address.as_str()),
            ("172.20.0.10", "fd00:1::10")
        );
        assert_eq!(req.mac_address, "02:42:ac:14:00:0a");
        assert_eq!(req.aliases, ["web", "www"]);
        assert_eq!(req.published_ports.len(), 2);
        assert_eq!(req.published_ports[1].host_port_end, 8010);
        assert_eq!(req.interface_name, "eth1");
        assert!(req.skip_default_route);
        assert_eq!(req.wait, Some(true));
        assert!(parse(&["connect", "n1", "ns1", "--ip", "fd00::1"]).is_err());
        assert!(parse(&["connect", "n1", "ns1", "-p", "80:80/icmp"]).is_err());
    }

    #[test]
    fn ls_and_prune_filters() {
        let NetworkCmd::Ls(a) =
            parse(&["ls", "-f", "label=env=prod", "--filter", "name=web"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            parse::split_filters(&a.filters),
            ("env=prod".into(), vec!["web".into()])
        );
        let NetworkCmd::Prune(a) = parse(&["prune", "--filter", "label!=keep", "-f"]).unwrap()
        else {
            panic!()
        };
        assert!(a.force);
        assert_eq!(parse::split_filters(&a.filters).0, "!keep");
        assert!(parse(&["ls", "--filter", "driver=bridge"]).is_err());
    }

    #[test]
    fn selector_and_filters_combine() {
        let NetworkCmd::Watch(a) = parse(&[
            "watch",
            "-l",
            "env=prod,!old",
            "-f",
            "label=tier=web",
            "-f",
            "name=shop",
            "--since",
            "42",
            "--max-events",
            "3",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            selection(&a.selector, &a.filters),
            ("env=prod,!old,tier=web".into(), vec!["shop".into()])
        );
        assert_eq!((a.flags.since, a.flags.max_events), (Some(42), Some(3)));
        assert_eq!(selection("", &[]), (String::new(), vec![]));
        assert!(parse(&["watch", "--max-events", "0"]).is_err());
        assert!(parse(&["ls", "-w", "-q"]).is_err());
    }

    #[test]
    fn dry_run_and_request_id_reach_the_requests() {
        let NetworkCmd::Connect(a) =
            parse(&["connect", "n1", "ns1", "--dry-run", "--request-id", "r-1"]).unwrap()
        else {
            panic!()
        };
        let req = connect_request(&a);
        assert!(req.dry_run);
        assert_eq!(req.request_id, "r-1");
        let NetworkCmd::Connect(a) = parse(&["connect", "n1", "ns1"]).unwrap() else {
            panic!()
        };
        let req = connect_request(&a);
        assert!(!req.dry_run);
        assert_eq!(req.request_id, "");
        assert!(parse(&["connect", "n1", "ns1", "--request-id", ""]).is_err());
        let long = "x".repeat(129);
        assert!(parse(&["create", "n1", "--request-id", &long]).is_err());
    }
}
