//! Human output (`--format table`, the default): docker-style aligned tables for lists, and a
//! `Key: value` description per object for `inspect`.
//!
//! Columns are separated by three spaces and padded to the widest cell; an empty cell prints as
//! `-` so that every row splits into the same number of words (the last column, STATE, may hold
//! a failure message with spaces and is never padded). No colour, ever.
//!
//! Two builders do the layout: [`table`] (comfy-table underneath) for lists (`ls`, a dry run's plan, an endpoint row)
//! and [`Describe`] for one object (`inspect`, `system info`). The functions named after an
//! object (`namespaces`, `links`, `describe_network`...) only choose the columns or fields and
//! turn values into words: a phase becomes its state ([`state`]), an unset optional prints
//! weftd's default, the host namespace prints as [`HOST`]. The integration tests in
//! `client/tests/cli.rs` compare this output byte for byte, so a change here is a change to
//! what users and their scripts read.

use std::collections::HashMap;

use weft::v1::{
    Endpoint, GetSystemInfoResponse, Link, Namespace, Network, Phase, PlannedChange, PublishedPort,
    Route, Status, VethPeer, link::Kind,
};

/// How the host namespace appears where a namespace name is expected.
pub const HOST: &str = "(host)";

/// Formats rows under headers as an aligned table, one line per row, with comfy-table.
///
/// Docker's plain layout: no borders, every column but the last padded to its widest cell
/// (headers included, by display width) plus three spaces, an empty cell printed as `-`.
/// Trailing spaces are trimmed, so `awk '{print $1}'` and `column -t` both work on the output.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let cell = |s: &str| if s.is_empty() { "-" } else { s }.to_string();
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled)
        .set_header(headers.iter().copied())
        .add_rows(
            rows.iter()
                .map(|r| r.iter().take(headers.len()).map(|c| cell(c))),
        );
    for col in t.column_iter_mut() {
        col.set_padding((0, 3));
    }
    let mut out = String::new();
    for line in t.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Builds an inspect description: `Key:` labels aligned, values after them.
#[derive(Default)]
pub struct Describe {
    lines: Vec<Line>,
}

/// One line of a description, kept until [`Describe::render`] knows the widest key.
enum Line {
    /// `Key:   value`, the value aligned with the others.
    Field(String, String),
    /// `Key:` alone, heading the items below it.
    Header(String),
    /// An indented line under a header.
    Item(String),
}

impl Describe {
    /// Adds a `key: value` line (an empty value prints as `-`).
    pub fn field(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.lines.push(Line::Field(key.to_string(), value.into()));
        self
    }

    /// Adds a `key:` line followed by one indented line per item (`key: -` when none).
    pub fn list(&mut self, key: &str, items: impl IntoIterator<Item = String>) -> &mut Self {
        let items: Vec<String> = items.into_iter().collect();
        if items.is_empty() {
            return self.field(key, "");
        }
        self.lines.push(Line::Header(key.to_string()));
        self.lines.extend(items.into_iter().map(Line::Item));
        self
    }

    /// Renders the description: every key padded to the widest one, so values start in one
    /// column; an empty value prints as `-`, as an empty table cell does.
    pub fn render(&self) -> String {
        let width = self
            .lines
            .iter()
            .filter_map(|l| match l {
                Line::Field(k, _) | Line::Header(k) => Some(k.chars().count() + 1),
                Line::Item(_) => None,
            })
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for line in &self.lines {
            match line {
                Line::Field(k, v) => {
                    let key = format!("{k}:");
                    let v = if v.is_empty() { "-" } else { v.as_str() };
                    out.push_str(&format!("{key:<width$}  {v}"));
                }
                Line::Header(k) => out.push_str(&format!("{k}:")),
                Line::Item(item) => out.push_str(&format!("  {item}")),
            }
            out.push('\n');
        }
        out
    }
}

/// The phase as a word: Ready, Pending, Failed, Deleting (Unknown for anything else).
pub fn phase_word(status: Option<&Status>) -> &'static str {
    match status.and_then(|s| Phase::try_from(s.phase).ok()) {
        Some(Phase::Ready) => "Ready",
        Some(Phase::Pending) => "Pending",
        Some(Phase::Failed) => "Failed",
        Some(Phase::Deleting) => "Deleting",
        Some(Phase::Unspecified) | None => "Unknown",
    }
}

/// The STATE column: the phase, and the status message when the phase is Failed.
pub fn state(status: Option<&Status>) -> String {
    let word = phase_word(status);
    match status {
        Some(s) if word == "Failed" && !s.message.is_empty() => format!("Failed: {}", s.message),
        _ => word.to_string(),
    }
}

/// The state line of an inspect description: phase, generation and message.
///
/// `Ready (generation 3, observed 3)`: a generation ahead of the observed one means weftd has
/// not yet applied the latest change, which is the first thing to look at when an object
/// seems stuck; the message follows when weftd gave one.
fn state_detail(status: Option<&Status>, generation: Option<i64>) -> String {
    let mut s = phase_word(status).to_string();
    if let Some(st) = status {
        match generation {
            Some(g) => s.push_str(&format!(
                " (generation {g}, observed {})",
                st.observed_generation
            )),
            None if st.observed_generation != 0 => s.push_str(&format!(
                " (observed generation {})",
                st.observed_generation
            )),
            None => {}
        }
        if !st.message.is_empty() {
            s.push_str(&format!(": {}", st.message));
        }
    }
    s
}

/// A namespace name for display: the host namespace is `(host)`.
pub fn ns_name(ns: &str) -> &str {
    if ns.is_empty() { HOST } else { ns }
}

/// Sorted `k=v` pairs, comma-separated.
pub fn labels(labels: &HashMap<String, String>) -> String {
    let mut pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.sort();
    pairs.join(",")
}

/// A route in the CLI's own spec syntax, so it can be pasted back into `--route`.
pub fn route(r: &Route) -> String {
    let mut s = r.destination.clone();
    if !r.gateway.is_empty() {
        s.push_str(&format!(",via={}", r.gateway));
    }
    if r.metric != 0 {
        s.push_str(&format!(",metric={}", r.metric));
    }
    s
}

/// A published port docker style: `[HOST_IP:]HOST_PORT[-END]->CONTAINER_PORT[-END]/PROTO`.
/// Answers hold the host port weftd picked where the request left it out (or gave a range
/// with one container port), so that is what prints.
pub fn published_port(p: &PublishedPort) -> String {
    let range = |start: u32, end: u32| {
        if end > start {
            format!("{start}-{end}")
        } else {
            start.to_string()
        }
    };
    let host = range(p.host_port, p.host_port_end);
    let container = range(p.container_port, p.container_port_end);
    let ip = if p.host_ip.contains(':') {
        format!("[{}]:", p.host_ip)
    } else if p.host_ip.is_empty() {
        String::new()
    } else {
        format!("{}:", p.host_ip)
    };
    let proto = if p.protocol.is_empty() {
        "tcp"
    } else {
        p.protocol.as_str()
    };
    format!("{ip}{host}->{container}/{proto}")
}

/// The value as text, or `default` (weftd's own default, in words) when it is unset.
fn or_default<T: PartialEq + Default + ToString>(v: T, default: &str) -> String {
    if v == T::default() {
        default.to_string()
    } else {
        v.to_string()
    }
}

/// The `weft ns ls` table: NAME, PATH (where the namespace is, as weftd observed it, else as
/// requested), LABELS and STATE.
pub fn namespaces(list: &[Namespace]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|n| {
            let path = if n.status_path.is_empty() {
                &n.path
            } else {
                &n.status_path
            };
            vec![
                n.name.clone(),
                path.clone(),
                labels(&n.labels),
                state(n.status.as_ref()),
            ]
        })
        .collect();
    table(&["NAME", "PATH", "LABELS", "STATE"], &rows)
}

/// The kind of a link as a word.
pub fn kind(l: &Link) -> &'static str {
    match l.kind {
        Some(Kind::Veth(_)) => "veth",
        Some(Kind::Bridge(_)) => "bridge",
        None => "unknown",
    }
}

/// The far end of a veth pair; `None` for a bridge.
fn peer(l: &Link) -> Option<&VethPeer> {
    match &l.kind {
        Some(Kind::Veth(v)) => v.peer.as_ref(),
        _ => None,
    }
}

/// `NAMESPACE/NAME` of a veth peer (`(host)/NAME` in the host).
fn peer_ref(p: &VethPeer) -> String {
    format!("{}/{}", ns_name(&p.namespace), p.name)
}

/// The `weft link ls` table: NAME, NAMESPACE (`(host)` for the host), KIND, PEER (the far
/// end of a veth pair as `NAMESPACE/NAME`), ADDRESSES and STATE.
pub fn links(list: &[Link]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|l| {
            vec![
                l.name.clone(),
                ns_name(&l.namespace).to_string(),
                kind(l).to_string(),
                peer(l).map(peer_ref).unwrap_or_default(),
                l.addresses.join(","),
                state(l.status.as_ref()),
            ]
        })
        .collect();
    table(
        &["NAME", "NAMESPACE", "KIND", "PEER", "ADDRESSES", "STATE"],
        &rows,
    )
}

/// The `weft network ls` table: NAME, BRIDGE, SUBNETS, INTERNAL, DNS (the resolver's
/// addresses, `-` without DNS), ENDPOINTS (how many) and STATE.
pub fn networks(list: &[Network]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
                n.bridge_name.clone(),
                n.subnets
                    .iter()
                    .map(|s| s.subnet.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                if n.internal {
                    "yes".into()
                } else {
                    "no".into()
                },
                dash(n.dns_servers.join(",")),
                n.endpoints.len().to_string(),
                state(n.status.as_ref()),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "BRIDGE",
            "SUBNETS",
            "INTERNAL",
            "DNS",
            "ENDPOINTS",
            "STATE",
        ],
        &rows,
    )
}

/// One endpoint as a row under [`ENDPOINT_HEADERS`]; the interface defaults to `eth0`.
fn endpoint_row(e: &Endpoint) -> Vec<String> {
    vec![
        e.network.clone(),
        e.namespace.clone(),
        if e.interface_name.is_empty() {
            "eth0".into()
        } else {
            e.interface_name.clone()
        },
        e.ipv4_address.clone(),
        e.ipv6_address.clone(),
        e.mac_address.clone(),
        e.published_ports
            .iter()
            .map(published_port)
            .collect::<Vec<_>>()
            .join(","),
        state(e.status.as_ref()),
    ]
}

/// The columns of an endpoint, in `weft network connect` and `inspect`.
const ENDPOINT_HEADERS: [&str; 8] = [
    "NETWORK",
    "NAMESPACE",
    "INTERFACE",
    "IPV4",
    "IPV6",
    "MAC",
    "PORTS",
    "STATE",
];

/// The one-row table `weft network connect` prints.
pub fn endpoints(list: &[Endpoint]) -> String {
    let rows: Vec<Vec<String>> = list.iter().map(endpoint_row).collect();
    table(&ENDPOINT_HEADERS, &rows)
}

/// `weft ns inspect` in table mode.
pub fn describe_namespace(n: &Namespace) -> String {
    let mut d = Describe::default();
    d.field("Name", &n.name)
        .field("Path", &n.status_path)
        .field("Adopted from", &n.path)
        .field("Labels", labels(&n.labels))
        .field("UID", &n.uid)
        .field(
            "Created",
            n.create_time.map(|t| t.to_string()).unwrap_or_default(),
        )
        .field("State", state_detail(n.status.as_ref(), Some(n.generation)));
    d.render()
}

/// `weft link inspect` in table mode: identity, then the link's settings (MTU, MAC as
/// observed with the requested one when they differ, up, master, kernel index), addresses
/// and routes, the peer of a veth pair as an indented block, and the state line.
pub fn describe_link(l: &Link) -> String {
    let mut d = Describe::default();
    d.field("Name", &l.name)
        .field("Namespace", ns_name(&l.namespace))
        .field("Kind", kind(l))
        .field("Labels", labels(&l.labels))
        .field("UID", &l.uid)
        .field(
            "Created",
            l.create_time.map(|t| t.to_string()).unwrap_or_default(),
        )
        .field("MTU", or_default(l.mtu, "default"))
        .field("MAC", mac(&l.mac_address, &l.status_mac_address))
        .field("Up", if l.up { "yes" } else { "no" })
        .field("Master", &l.master)
        .field("Index", or_default(l.status_index, ""))
        .list("Addresses", l.addresses.iter().cloned())
        .list("Routes", l.routes.iter().map(route));
    if let Some(p) = peer(l) {
        d.list(
            "Peer",
            [
                format!("Name:       {}", p.name),
                format!("Namespace:  {}", ns_name(&p.namespace)),
                format!("MTU:        {}", or_default(p.mtu, "as link")),
                format!(
                    "MAC:        {}",
                    dash(mac(&p.mac_address, &p.status_mac_address))
                ),
                format!("Up:         {}", if p.up { "yes" } else { "no" }),
                format!("Master:     {}", dash(p.master.clone())),
                format!("Index:      {}", dash(or_default(p.status_index, ""))),
                format!("Addresses:  {}", dash(p.addresses.join(", "))),
                format!(
                    "Routes:     {}",
                    dash(p.routes.iter().map(route).collect::<Vec<_>>().join("; "))
                ),
            ],
        );
    }
    d.field("State", state_detail(l.status.as_ref(), Some(l.generation)));
    d.render()
}

/// The DNS line of `network inspect`: whether the network serves names, and where.
fn dns(n: &Network) -> String {
    match (opt_bool(n.dns, true), n.dns_servers.is_empty()) {
        ("yes", false) => format!("yes (resolver on {})", n.dns_servers.join(", ")),
        (yes_no, _) => yes_no.to_string(),
    }
}

/// `-` for an empty value, as in table cells.
fn dash(s: String) -> String {
    if s.is_empty() { "-".into() } else { s }
}

/// The MAC line: what the kernel has, and the requested one when it was given.
fn mac(spec: &str, observed: &str) -> String {
    match (spec.is_empty(), observed.is_empty()) {
        (true, _) => observed.to_string(),
        (false, true) => spec.to_string(),
        (false, false) if spec.eq_ignore_ascii_case(observed) => observed.to_string(),
        (false, false) => format!("{observed} (requested {spec})"),
    }
}

/// An `optional bool` of the proto in words, `default` (weftd's) when unset.
fn opt_bool(v: Option<bool>, default: bool) -> &'static str {
    match v.unwrap_or(default) {
        true => "yes",
        false => "no",
    }
}

/// `weft network inspect` in table mode: identity, the bridge and its options (weftd's
/// defaults spelled out where a field is unset), each subnet with its gateway, range and how
/// many of its addresses are leased, then the endpoints as an indented table.
pub fn describe_network(n: &Network) -> String {
    let mut d = Describe::default();
    d.field("Name", &n.name)
        .field("Labels", labels(&n.labels))
        .field("UID", &n.uid)
        .field(
            "Created",
            n.create_time.map(|t| t.to_string()).unwrap_or_default(),
        )
        .field("Bridge", &n.bridge_name)
        .field("Default", if n.default { "yes" } else { "no" })
        .field("Internal", if n.internal { "yes" } else { "no" })
        .field("IPv6", if n.enable_ipv6 { "yes" } else { "no" })
        .field("ICC", opt_bool(n.enable_icc, true))
        .field("Masquerade", opt_bool(n.masquerade, true))
        .field("DNS", dns(n))
        .field("MTU", or_default(n.mtu, "1500"))
        .list(
            "Subnets",
            n.subnets.iter().map(|s| {
                let mut line = s.subnet.clone();
                if !s.gateway.is_empty() {
                    line.push_str(&format!(" gateway {}", s.gateway));
                }
                if !s.ip_range.is_empty() {
                    line.push_str(&format!(" range {}", s.ip_range));
                }
                if !s.reserved.is_empty() {
                    line.push_str(&format!(" reserved {}", s.reserved.join(",")));
                }
                if let Some(u) = n.usage.iter().find(|u| u.subnet == s.subnet) {
                    line.push_str(&format!(" ({} of {} leased)", u.leased, u.capacity));
                }
                line
            }),
        );
    if n.endpoints.is_empty() {
        d.field("Endpoints", "");
    } else {
        let rows: Vec<Vec<String>> = n.endpoints.iter().map(endpoint_row).collect();
        d.list(
            "Endpoints",
            table(
                &ENDPOINT_HEADERS[1..],
                &rows
                    .into_iter()
                    .map(|r| r[1..].to_vec())
                    .collect::<Vec<_>>(),
            )
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>(),
        );
    }
    d.field("State", state_detail(n.status.as_ref(), Some(n.generation)));
    d.render()
}

/// What a `--dry-run` prints: the changes weftd planned, one per row.
pub fn planned_changes(list: &[PlannedChange]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|c| {
            vec![
                c.action.clone(),
                c.kind.clone(),
                c.target.clone(),
                c.detail.clone(),
            ]
        })
        .collect();
    table(&["ACTION", "KIND", "TARGET", "DETAIL"], &rows)
}

/// `weft system info` in table mode.
pub fn describe_system_info(i: &GetSystemInfoResponse) -> String {
    let mut d = Describe::default();
    d.field("Version", &i.version)
        .field("Git commit", &i.git_commit)
        .field(
            "Started",
            i.start_time.map(|t| t.to_string()).unwrap_or_default(),
        )
        .field("Kernel writes", i.kernel_writes.to_string())
        .field("Reconciles", i.reconciles.to_string())
        .field("Reconcile failures", i.reconcile_failures.to_string())
        .field("Drift repairs", i.drift_repairs.to_string())
        .field("Orphans removed", i.orphans_removed.to_string())
        .field("Queue depth", i.queue_depth.to_string())
        .field("Re-checking", i.rechecking.to_string())
        .field("DNS queries", i.dns_queries.to_string())
        .field("DNS answers", i.dns_answers.to_string())
        .field("DNS forwards", i.dns_forwards.to_string())
        .field(
            "Host netns",
            if i.host_netns.is_empty() {
                "weftd's own"
            } else {
                i.host_netns.as_str()
            },
        )
        .field("Netns dir", &i.netns_dir)
        .field("Database", &i.database);
    d.render()
}

#[cfg(test)]
mod tests {
    use weft::v1::{Subnet, SubnetUsage};

    use super::*;

    /// Three spaces between columns, `-` in empty cells, and no trailing spaces on any line.
    #[test]
    fn table_aligns_and_fills_empty_cells() {
        let out = table(
            &["NAME", "NAMESPACE", "STATE"],
            &[
                vec!["veth0".into(), "(host)".into(), "Ready".into()],
                vec!["v1".into(), "".into(), "Failed: no such device".into()],
            ],
        );
        assert_eq!(
            out,
            "NAME    NAMESPACE   STATE\n\
             veth0   (host)      Ready\n\
             v1      -           Failed: no such device\n"
        );
    }

    /// A dry run prints `ACTION KIND TARGET DETAIL`, one row per change.
    #[test]
    fn planned_changes_are_a_table() {
        let c = |action: &str, kind: &str, target: &str, detail: &str| PlannedChange {
            action: action.into(),
            kind: kind.into(),
            target: target.into(),
            detail: detail.into(),
        };
        assert_eq!(
            planned_changes(&[
                c("create", "link", "veth1 in namespace ns1", "veth, mtu 1400"),
                c(
                    "add",
                    "address",
                    "10.0.0.1/24 on veth1 in namespace ns1",
                    ""
                ),
            ]),
            "ACTION   KIND      TARGET                                  DETAIL\n\
             create   link      veth1 in namespace ns1                  veth, mtu 1400\n\
             add      address   10.0.0.1/24 on veth1 in namespace ns1   -\n"
        );
        assert_eq!(planned_changes(&[]), "ACTION   KIND   TARGET   DETAIL\n");
    }

    /// STATE is the phase, plus weftd's message only when it failed: the reason is what a user
    /// needs then, and noise otherwise.
    #[test]
    fn state_shows_message_only_when_failed() {
        let st = |phase: Phase, msg: &str| Status {
            phase: phase as i32,
            observed_generation: 1,
            message: msg.into(),
        };
        assert_eq!(state(Some(&st(Phase::Ready, ""))), "Ready");
        assert_eq!(state(Some(&st(Phase::Pending, "waiting"))), "Pending");
        assert_eq!(state(Some(&st(Phase::Failed, "boom"))), "Failed: boom");
        assert_eq!(state(Some(&st(Phase::Deleting, ""))), "Deleting");
        assert_eq!(state(None), "Unknown");
    }

    /// Ports print as `docker ps` prints them: `[IP:]HOST[-END]->CONTAINER/PROTO`.
    #[test]
    fn published_ports_read_like_docker() {
        let p = |ip: &str, hp, hpe, cp, proto: &str| PublishedPort {
            host_ip: ip.into(),
            host_port: hp,
            host_port_end: hpe,
            container_port: cp,
            container_port_end: if hpe > hp { cp + hpe - hp } else { 0 },
            protocol: proto.into(),
        };
        assert_eq!(published_port(&p("", 8080, 0, 80, "tcp")), "8080->80/tcp");
        assert_eq!(published_port(&p("", 40123, 0, 80, "")), "40123->80/tcp");
        assert_eq!(
            published_port(&p("127.0.0.1", 8000, 8010, 80, "udp")),
            "127.0.0.1:8000-8010->80-90/udp"
        );
        assert_eq!(
            published_port(&p("::1", 53, 0, 53, "udp")),
            "[::1]:53->53/udp"
        );
    }

    /// A route prints in the syntax `--route` takes, so it can be copied back into a command.
    #[test]
    fn routes_print_in_spec_syntax() {
        let r = Route {
            destination: "default".into(),
            gateway: "10.0.0.1".into(),
            metric: 5,
        };
        assert_eq!(route(&r), "default,via=10.0.0.1,metric=5");
        assert_eq!(crate::cli::parse::route(&route(&r)).unwrap(), r);
    }

    /// Keys align on the widest, a list prints indented under its key, an empty value is `-`.
    #[test]
    fn describe_aligns_keys_and_indents_lists() {
        let mut d = Describe::default();
        d.field("Name", "x")
            .list("Addresses", ["10.0.0.1/24".to_string()])
            .field("Up", "");
        assert_eq!(
            d.render(),
            "Name:       x\nAddresses:\n  10.0.0.1/24\nUp:         -\n"
        );
    }

    /// `network inspect` shows each subnet with its gateway and use, and the endpoints table.
    #[test]
    fn describe_network_lists_subnets_and_endpoints() {
        let n = Network {
            name: "n1".into(),
            bridge_name: "br-n1".into(),
            subnets: vec![Subnet {
                subnet: "172.20.0.0/16".into(),
                gateway: "172.20.0.1".into(),
                ..Default::default()
            }],
            enable_icc: Some(false),
            usage: vec![SubnetUsage {
                subnet: "172.20.0.0/16".into(),
                leased: 1,
                capacity: 65533,
            }],
            endpoints: vec![Endpoint {
                network: "n1".into(),
                namespace: "ns1".into(),
                ipv4_address: "172.20.0.2/16".into(),
                published_ports: vec![PublishedPort {
                    host_port: 8080,
                    container_port: 80,
                    protocol: "tcp".into(),
                    ..Default::default()
                }],
                status: Some(Status {
                    phase: Phase::Ready as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }],
            status: Some(Status {
                phase: Phase::Ready as i32,
                observed_generation: 1,
                ..Default::default()
            }),
            generation: 1,
            ..Default::default()
        };
        let out = describe_network(&n);
        assert!(
            out.contains("  172.20.0.0/16 gateway 172.20.0.1 (1 of 65533 leased)\n"),
            "{out}"
        );
        assert!(out.contains("ICC:         no\n"), "{out}");
        assert!(
            out.contains(
                "  NAMESPACE   INTERFACE   IPV4            IPV6   MAC   PORTS          STATE\n"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "  ns1         eth0        172.20.0.2/16   -      -     8080->80/tcp   Ready\n"
            ),
            "{out}"
        );
    }
}
