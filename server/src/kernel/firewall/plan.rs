//! The pure half of the firewall: [`plan`] turns weft's networks into the tables, sets, maps,
//! chains and rules weft wants, as plain data with a stable text rendering (the `nft list
//! ruleset` look, used for golden files) and a fingerprint of that rendering.
//!
//! Nothing here does I/O; `super::nl` encodes a [`FirewallPlan`] into one nftables batch.
//!
//! # The shape of a plan
//! A [`FirewallPlan`] is a list of [`PlannedTable`]s; a table holds [`PlannedSet`]s (sets and
//! maps, created before the chains whose rules name them) and [`PlannedChain`]s; a chain holds
//! [`PlannedRule`]s, each a list of [`Match`]es ANDed together and one [`Action`]. The types
//! only say what nftables can say and weft uses, so the encoder in `nl::rule` has one case per
//! variant and the [`fmt::Display`] impls print exactly what `nft list ruleset` prints.
//!
//! # Why the plan depends on so little
//! Per-network facts live in set members and per-subnet rules, never in chain structure:
//! adding a network adds members to `bridges`/`internal`/`icc` and its masquerade and hairpin
//! rules, and leaves the forward filter at six rules. Published ports are not in the plan at
//! all (they are elements of the four DNAT maps, changed without a rebuild), so the plan, and
//! its fingerprint, change only when networks do. The fingerprint is what lets sync compare
//! by reading one comment instead of decoding every rule.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr},
};

use ipnet::{IpNet, Ipv4Net};

use super::FirewallNetwork;

/// The name of both of weft's tables (`inet weft` and `bridge weft`).
pub const TABLE: &str = "weft";
/// Every weft table's comment starts with this; a table called `weft` without it is not
/// weft's, and weft refuses to change it.
pub const MARKER: &str = "weft plan ";

/// Name of the set of every weft bridge (`inet weft`). The forward filter's "into a weft
/// bridge" and "out of a weft bridge" rules, and the loopback masquerade, match on it, so they
/// stay one rule each however many networks there are.
pub const SET_BRIDGES: &str = "bridges";
/// Name of the set of the bridges of internal networks (`inet weft`): traffic arriving from
/// one of them is dropped in forward, which is what cuts an internal network off the outside.
pub const SET_INTERNAL: &str = "internal";
/// Name of the set of (bridge . bridge) pairs of networks with inter-container traffic on.
/// Only reached with br_netfilter active, where bridged frames cross the inet forward hook
/// with the bridge as both input and output; a pair in the set is let through.
pub const SET_ICC: &str = "icc";
/// Names of the sets of (bridge . resolver address . protocol . port) an internal network's
/// endpoints may reach on the host: weftd's resolver, UDP and TCP port 53 on the network's
/// gateways (`ifname . ipv4_addr . inet_proto . inet_service`, and the IPv6 form). The input
/// chain accepts what is in them and drops everything else from an internal bridge, so
/// however many internal networks there are it stays six rules.
pub const SET_DNS4: &str = "dns4";
/// The IPv6 form of [`SET_DNS4`].
pub const SET_DNS6: &str = "dns6";
/// The port weftd's resolver listens on.
pub const DNS_PORT: u16 = 53;
/// ICMPv6 neighbour solicitation and advertisement: what an IPv6 endpoint must exchange with
/// its gateway to reach it at all.
pub const ND_NEIGHBOR_SOLICIT: u8 = 135;
/// See [`ND_NEIGHBOR_SOLICIT`].
pub const ND_NEIGHBOR_ADVERT: u8 = 136;
/// The regular chain holding the four DNAT map lookups. Both NAT entry points (prerouting
/// for traffic from outside, output for the host's own) jump here, so the lookups are
/// written once; a miss falls through to the next map, and a miss in all returns unchanged.
pub const CHAIN_PORTMAP: &str = "portmap";

/// The host's IPv4 loopback addresses, `127.0.0.0/8`: connections from them to a published
/// port are masqueraded (a bridge must not see a 127/8 source). A constant, so the prefix
/// length is checked when compiling, not at run time.
const LOOPBACK_V4: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8);

/// Version of the ruleset layout, hashed into the fingerprint: bump it when the encoding
/// changes without the rendering changing, so running daemons rebuild their tables.
const LAYOUT_VERSION: &str = "weft-firewall-layout-2";

/// An nftables table family weft uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TableFamily {
    /// `inet`: IPv4 and IPv6.
    Inet,
    /// `bridge`: frames forwarded between bridge ports.
    Bridge,
}

impl TableFamily {
    /// The family as `nft` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            TableFamily::Inet => "inet",
            TableFamily::Bridge => "bridge",
        }
    }
}

/// An IP family, for matches and DNAT maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpFamily {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl IpFamily {
    /// Of an address.
    pub fn of(addr: &IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }

    fn nft(self) -> &'static str {
        match self {
            IpFamily::V4 => "ip",
            IpFamily::V6 => "ip6",
        }
    }

    fn nfproto(self) -> &'static str {
        match self {
            IpFamily::V4 => "ipv4",
            IpFamily::V6 => "ipv6",
        }
    }
}

/// One of the four published-port maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortMap {
    /// (host IPv4, l4proto, port) → (IPv4, port).
    V4,
    /// (l4proto, port) → (IPv4, port): mappings on every host address.
    V4Any,
    /// (host IPv6, l4proto, port) → (IPv6, port).
    V6,
    /// (l4proto, port) → (IPv6, port).
    V6Any,
}

impl PortMap {
    /// All four, in lookup order (specific address before wildcard, per family).
    pub const ALL: [PortMap; 4] = [PortMap::V4, PortMap::V4Any, PortMap::V6, PortMap::V6Any];

    /// The map's name in `inet weft`.
    pub fn name(self) -> &'static str {
        match self {
            PortMap::V4 => "dnat4",
            PortMap::V4Any => "dnat4_any",
            PortMap::V6 => "dnat6",
            PortMap::V6Any => "dnat6_any",
        }
    }

    /// The family of the destination (and of the host address, if keyed by one).
    pub fn family(self) -> IpFamily {
        match self {
            PortMap::V4 | PortMap::V4Any => IpFamily::V4,
            PortMap::V6 | PortMap::V6Any => IpFamily::V6,
        }
    }

    /// Whether the key starts with the host address (else it is a wildcard map).
    pub fn by_address(self) -> bool {
        matches!(self, PortMap::V4 | PortMap::V6)
    }

    fn addr_type(self) -> &'static str {
        match self.family() {
            IpFamily::V4 => "ipv4_addr",
            IpFamily::V6 => "ipv6_addr",
        }
    }
}

/// What a set holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetKind {
    /// Interface names (`type ifname`), with its planned members.
    Ifnames(Vec<String>),
    /// Pairs of interface names (`type ifname . ifname`), with its planned members.
    IfnamePairs(Vec<(String, String)>),
    /// A published-port map; its elements are not part of the plan.
    PortMap(PortMap),
    /// (bridge, resolver address) pairs of one family, each planned as two members
    /// `"<bridge>" . <address> . udp|tcp . 53` (`type ifname . ipv4_addr|ipv6_addr .
    /// inet_proto . inet_service`).
    Resolvers(IpFamily, Vec<(String, IpAddr)>),
}

/// A named set or map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedSet {
    /// Its name in the table.
    pub name: String,
    /// What it holds.
    pub kind: SetKind,
}

/// A netfilter hook a base chain registers at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hook {
    /// `prerouting`.
    Prerouting,
    /// `input`: traffic to the host itself.
    Input,
    /// `output`.
    Output,
    /// `forward`.
    Forward,
    /// `postrouting`.
    Postrouting,
}

impl Hook {
    /// The hook number (`NF_INET_*`; the bridge family uses the same numbers).
    pub fn number(self) -> u32 {
        match self {
            Hook::Prerouting => 0,
            Hook::Input => 1,
            Hook::Forward => 2,
            Hook::Output => 3,
            Hook::Postrouting => 4,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Hook::Prerouting => "prerouting",
            Hook::Input => "input",
            Hook::Output => "output",
            Hook::Forward => "forward",
            Hook::Postrouting => "postrouting",
        }
    }
}

/// The type of a base chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChainType {
    /// `filter`.
    Filter,
    /// `nat`.
    Nat,
}

impl ChainType {
    /// As `nft` spells it (and as the kernel reports it).
    pub fn as_str(self) -> &'static str {
        match self {
            ChainType::Filter => "filter",
            ChainType::Nat => "nat",
        }
    }
}

/// What makes a chain a base chain. The policy is always accept: weft's chains only add
/// NAT and drop what isolation forbids, and every other packet goes on to whatever other
/// tables (the host's own firewall) say.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BaseChain {
    /// Chain type.
    pub kind: ChainType,
    /// Hook.
    pub hook: Hook,
    /// Priority (dstnat -100, filter 0, srcnat 100; bridge filter -200).
    pub priority: i32,
}

/// A chain and its rules, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedChain {
    /// Name.
    pub name: String,
    /// Hook, for a base chain; None for a regular chain reached by `jump`.
    pub base: Option<BaseChain>,
    /// Rules, evaluated first to last.
    pub rules: Vec<PlannedRule>,
}

/// One condition of a rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Match {
    /// `meta nfproto ipv4|ipv6` (inet only).
    NfProto(IpFamily),
    /// `fib daddr type local`: the destination is an address of this host.
    FibDaddrLocal,
    /// `iifname "<name>"`.
    IifName(String),
    /// `oifname "<name>"`.
    OifName(String),
    /// `oifname != "<name>"`.
    OifNameNot(String),
    /// `iifname @<set>`.
    IifInSet(String),
    /// `oifname @<set>`.
    OifInSet(String),
    /// `iifname . oifname @<set>`.
    IifOifInSet(String),
    /// `ip saddr <net>` / `ip6 saddr <net>` (with the family check nft implies).
    Saddr(IpNet),
    /// `ip daddr <net>` / `ip6 daddr <net>`. Only after a `Saddr` of the same family, whose
    /// family check it shares (as nft emits the dependency once).
    Daddr(IpNet),
    /// `ct state established,related`.
    CtEstablishedRelated,
    /// `ct status dnat`: the connection was destination-NATed.
    CtStatusDnat,
    /// `icmpv6 type <type>` (with the `meta nfproto ipv6` and `meta l4proto ipv6-icmp`
    /// checks nft implies).
    Icmpv6Type(u8),
    /// `iifname . ip daddr . meta l4proto . th dport @<set>` (or `ip6 daddr`): the input
    /// interface, destination, protocol and port together are a member of the set.
    IifDaddrProtoPortInSet(IpFamily, String),
}

/// What a rule does when all its matches hold.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// `accept`.
    Accept,
    /// `drop`.
    Drop,
    /// `masquerade`.
    Masquerade,
    /// `snat ip|ip6 to <address>`.
    Snat(IpAddr),
    /// `jump <chain>`.
    Jump(String),
    /// `dnat ip|ip6 to <key> map @<map>`, where the key is `ip daddr . meta l4proto . th
    /// dport` for a by-address map and `meta l4proto . th dport` for a wildcard one.
    DnatMap(PortMap),
}

/// One rule: every match, then the action.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PlannedRule {
    /// Conditions, all of which must hold.
    pub matches: Vec<Match>,
    /// The statement.
    pub action: Action,
}

/// One table weft owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedTable {
    /// Family (`inet` or `bridge`).
    pub family: TableFamily,
    /// Name (always [`TABLE`]).
    pub name: String,
    /// Sets and maps, in creation order.
    pub sets: Vec<PlannedSet>,
    /// Chains, in creation order.
    pub chains: Vec<PlannedChain>,
}

/// Everything weft wants in nftables for a set of networks: pure data.
///
/// The `bridge weft` table is present only when some network has inter-container traffic
/// off. Port-map elements are not part of a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirewallPlan {
    /// The tables, `inet weft` first.
    pub tables: Vec<PlannedTable>,
    /// 16 hex digits: FNV-1a of the rendering and the layout version. Stored in each table's
    /// comment, so a glance at the kernel tells whether its structure is current.
    pub fingerprint: String,
}

impl FirewallPlan {
    /// The comment every planned table carries: [`MARKER`] and the fingerprint.
    pub fn comment(&self) -> String {
        format!("{MARKER}{}", self.fingerprint)
    }

    /// The table of `family`, if planned.
    pub fn table(&self, family: TableFamily) -> Option<&PlannedTable> {
        self.tables.iter().find(|t| t.family == family)
    }

    /// The plan as `nft list ruleset` would show it (before any port-map element is added),
    /// comments included. Stable: golden files compare this text.
    pub fn render(&self) -> String {
        let mut out = render_tables(&self.tables, Some(&self.comment()));
        out.push_str(&format!("# fingerprint {}\n", self.fingerprint));
        out
    }
}

/// Builds the plan for `networks`. Pure and deterministic: networks are sorted by bridge name
/// and subnets by address, so the order callers pass them in does not matter.
///
/// `inet weft` gets, in this order: the three interface sets, the two resolver sets and the
/// four port maps; the NAT base chains `prerouting` and `output` (priority -100, dstnat), which only jump to
/// `portmap` for traffic to a local address; `portmap` itself; `postrouting` (100, srcnat)
/// with the loopback masquerade, then per network its hairpin rule and one masquerade rule
/// per subnet; `forward` (filter, 0), the six set-based isolation rules; and `input`
/// (filter, 0), the six rules that let an internal network reach only its resolver.
/// `bridge weft` (filter hook forward, priority -200) is added only when a network has ICC off, with
/// one drop per subnet of such networks.
///
/// See the module documentation of `kernel::firewall` for the rules and why they look so.
pub fn plan(networks: &[FirewallNetwork]) -> FirewallPlan {
    let mut nets: Vec<FirewallNetwork> = networks.to_vec();
    for n in &mut nets {
        n.subnets.sort();
        n.subnets.dedup();
    }
    nets.sort_by(|a, b| {
        a.bridge
            .cmp(&b.bridge)
            .then_with(|| a.subnets.cmp(&b.subnets))
    });

    let mut bridges: Vec<String> = nets.iter().map(|n| n.bridge.clone()).collect();
    bridges.dedup();
    let mut icc: Vec<(String, String)> = nets
        .iter()
        .filter(|n| n.icc)
        .map(|n| (n.bridge.clone(), n.bridge.clone()))
        .collect();
    icc.dedup();
    let mut internal: Vec<String> = nets
        .iter()
        .filter(|n| n.internal)
        .map(|n| n.bridge.clone())
        .collect();
    internal.dedup();
    let resolvers = |fam: IpFamily| {
        let mut v: Vec<(String, IpAddr)> = nets
            .iter()
            .filter(|n| n.internal)
            .flat_map(|n| {
                n.dns_servers
                    .iter()
                    .filter(|a| IpFamily::of(a) == fam)
                    .map(|a| (n.bridge.clone(), *a))
            })
            .collect();
        v.sort();
        v.dedup();
        v
    };

    let rule = |matches: Vec<Match>, action: Action| PlannedRule { matches, action };

    let mut sets = vec![
        PlannedSet {
            name: SET_BRIDGES.into(),
            kind: SetKind::Ifnames(bridges),
        },
        PlannedSet {
            name: SET_INTERNAL.into(),
            kind: SetKind::Ifnames(internal),
        },
        PlannedSet {
            name: SET_ICC.into(),
            kind: SetKind::IfnamePairs(icc),
        },
        PlannedSet {
            name: SET_DNS4.into(),
            kind: SetKind::Resolvers(IpFamily::V4, resolvers(IpFamily::V4)),
        },
        PlannedSet {
            name: SET_DNS6.into(),
            kind: SetKind::Resolvers(IpFamily::V6, resolvers(IpFamily::V6)),
        },
    ];
    sets.extend(PortMap::ALL.iter().map(|m| PlannedSet {
        name: m.name().into(),
        kind: SetKind::PortMap(*m),
    }));

    let to_portmap = || {
        vec![rule(
            vec![Match::FibDaddrLocal],
            Action::Jump(CHAIN_PORTMAP.into()),
        )]
    };
    let portmap = PortMap::ALL
        .iter()
        .map(|m| {
            let matches = if m.by_address() {
                // `ip daddr` brings the family check with it.
                vec![]
            } else {
                vec![Match::NfProto(m.family())]
            };
            rule(matches, Action::DnatMap(*m))
        })
        .collect();

    let mut postrouting = vec![rule(
        vec![
            Match::Saddr(IpNet::V4(LOOPBACK_V4)),
            Match::OifInSet(SET_BRIDGES.into()),
        ],
        Action::Masquerade,
    )];
    for n in &nets {
        // Hairpin: an endpoint reaching a published port of its own bridge via a host address.
        postrouting.push(rule(
            vec![
                Match::IifName(n.bridge.clone()),
                Match::OifName(n.bridge.clone()),
                Match::CtStatusDnat,
            ],
            Action::Masquerade,
        ));
        // Hairpin to itself: an endpoint reaching its own published port. With br_netfilter
        // the DNATed frame is bridged back out of its port (hairpin mode), and the rule
        // above cannot match there (no input interface on the bridged path); the packet
        // would reach the endpoint with its own address as source and be dropped as a
        // martian. SNAT to the gateway, named (masquerade would leave the choice to the
        // kernel's address selection). One rule per subnet, whatever the
        // number of mappings; it also gives neighbours through a published port the gateway
        // as source, as without br_netfilter.
        if !n.internal {
            for s in n.subnets.iter().filter(|s| s.addr() != s.network()) {
                postrouting.push(rule(
                    vec![
                        Match::Saddr(s.trunc()),
                        Match::Daddr(s.trunc()),
                        Match::CtStatusDnat,
                    ],
                    Action::Snat(s.addr()),
                ));
            }
        }
        if n.masquerade && !n.internal {
            for s in &n.subnets {
                postrouting.push(rule(
                    vec![Match::Saddr(s.trunc()), Match::OifNameNot(n.bridge.clone())],
                    Action::Masquerade,
                ));
            }
        }
    }

    let bridges_set = || SET_BRIDGES.to_string();
    let forward = vec![
        // Bridged within one network: only reaches this hook when br_netfilter hands bridged
        // traffic to the inet hooks (then iif and oif are both the bridge).
        rule(vec![Match::IifOifInSet(SET_ICC.into())], Action::Accept),
        // Out of an internal network nothing leaves, whatever it is headed for: this must come
        // before the accepts below, or a DNATed connection (another network's published port)
        // or a reply would let it out.
        rule(vec![Match::IifInSet(SET_INTERNAL.into())], Action::Drop),
        rule(
            vec![Match::OifInSet(bridges_set()), Match::CtEstablishedRelated],
            Action::Accept,
        ),
        rule(
            vec![Match::OifInSet(bridges_set()), Match::CtStatusDnat],
            Action::Accept,
        ),
        rule(vec![Match::OifInSet(bridges_set())], Action::Drop),
        rule(vec![Match::IifInSet(bridges_set())], Action::Accept),
    ];

    let from_internal = || Match::IifInSet(SET_INTERNAL.into());
    let input = vec![
        // Replies to what the host started (a ping of an endpoint, a connection to it).
        rule(
            vec![from_internal(), Match::CtEstablishedRelated],
            Action::Accept,
        ),
        // Neighbour discovery, or IPv6 endpoints cannot reach their gateway at all.
        rule(
            vec![from_internal(), Match::Icmpv6Type(ND_NEIGHBOR_SOLICIT)],
            Action::Accept,
        ),
        rule(
            vec![from_internal(), Match::Icmpv6Type(ND_NEIGHBOR_ADVERT)],
            Action::Accept,
        ),
        // weftd's resolver on the network's own gateway(s): the sets hold only internal
        // bridges, each with its own gateways.
        rule(
            vec![Match::IifDaddrProtoPortInSet(IpFamily::V4, SET_DNS4.into())],
            Action::Accept,
        ),
        rule(
            vec![Match::IifDaddrProtoPortInSet(IpFamily::V6, SET_DNS6.into())],
            Action::Accept,
        ),
        rule(vec![from_internal()], Action::Drop),
    ];

    let base = |kind, hook, priority| {
        Some(BaseChain {
            kind,
            hook,
            priority,
        })
    };
    let chain = |name: &str, base: Option<BaseChain>, rules: Vec<PlannedRule>| PlannedChain {
        name: name.into(),
        base,
        rules,
    };
    let inet = PlannedTable {
        family: TableFamily::Inet,
        name: TABLE.into(),
        sets,
        chains: vec![
            chain(
                "prerouting",
                base(ChainType::Nat, Hook::Prerouting, -100),
                to_portmap(),
            ),
            chain(
                "output",
                base(ChainType::Nat, Hook::Output, -100),
                to_portmap(),
            ),
            chain(CHAIN_PORTMAP, None, portmap),
            chain(
                "postrouting",
                base(ChainType::Nat, Hook::Postrouting, 100),
                postrouting,
            ),
            chain(
                "forward",
                base(ChainType::Filter, Hook::Forward, 0),
                forward,
            ),
            chain("input", base(ChainType::Filter, Hook::Input, 0), input),
        ],
    };

    let mut tables = vec![inet];
    let no_icc: Vec<PlannedRule> = nets
        .iter()
        .filter(|n| !n.icc)
        .flat_map(|n| n.subnets.iter())
        .map(|s| rule(vec![Match::Saddr(s.trunc())], Action::Drop))
        .collect();
    if nets.iter().any(|n| !n.icc) {
        tables.push(PlannedTable {
            family: TableFamily::Bridge,
            name: TABLE.into(),
            sets: vec![],
            chains: vec![chain(
                "forward",
                base(ChainType::Filter, Hook::Forward, -200),
                no_icc,
            )],
        });
    }

    let mut hashed = String::from(LAYOUT_VERSION);
    hashed.push('\n');
    hashed.push_str(&render_tables(&tables, None));
    FirewallPlan {
        tables,
        fingerprint: format!("{:016x}", fnv1a64(hashed.as_bytes())),
    }
}

/// FNV-1a, 64 bit: tiny, and stable across Rust releases (unlike `DefaultHasher`).
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn render_tables(tables: &[PlannedTable], comment: Option<&str>) -> String {
    let mut out = String::new();
    for t in tables {
        out.push_str(&format!("table {} {} {{\n", t.family.as_str(), t.name));
        if let Some(c) = comment {
            out.push_str(&format!("\tcomment \"{c}\"\n"));
        }
        for s in &t.sets {
            out.push_str(&format!("\n{s}"));
        }
        for c in &t.chains {
            out.push_str(&format!("\n{c}"));
        }
        out.push_str("}\n");
    }
    out
}

impl fmt::Display for PlannedSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            SetKind::Ifnames(members) => {
                writeln!(f, "\tset {} {{", self.name)?;
                writeln!(f, "\t\ttype ifname")?;
                if !members.is_empty() {
                    let quoted: Vec<String> = members.iter().map(|m| format!("\"{m}\"")).collect();
                    writeln!(f, "\t\telements = {{ {} }}", quoted.join(", "))?;
                }
            }
            SetKind::IfnamePairs(members) => {
                writeln!(f, "\tset {} {{", self.name)?;
                writeln!(f, "\t\ttype ifname . ifname")?;
                if !members.is_empty() {
                    let quoted: Vec<String> = members
                        .iter()
                        .map(|(a, b)| format!("\"{a}\" . \"{b}\""))
                        .collect();
                    writeln!(f, "\t\telements = {{ {} }}", quoted.join(", "))?;
                }
            }
            SetKind::Resolvers(fam, members) => {
                writeln!(f, "\tset {} {{", self.name)?;
                let addr = match fam {
                    IpFamily::V4 => "ipv4_addr",
                    IpFamily::V6 => "ipv6_addr",
                };
                writeln!(f, "\t\ttype ifname . {addr} . inet_proto . inet_service")?;
                if !members.is_empty() {
                    let quoted: Vec<String> = members
                        .iter()
                        .flat_map(|(b, a)| {
                            ["tcp", "udp"].map(|p| format!("\"{b}\" . {a} . {p} . {DNS_PORT}"))
                        })
                        .collect();
                    writeln!(f, "\t\telements = {{ {} }}", quoted.join(", "))?;
                }
            }
            SetKind::PortMap(m) => {
                writeln!(f, "\tmap {} {{", self.name)?;
                let key = if m.by_address() {
                    format!("{} . inet_proto . inet_service", m.addr_type())
                } else {
                    "inet_proto . inet_service".to_string()
                };
                writeln!(f, "\t\ttype {key} : {} . inet_service", m.addr_type())?;
            }
        }
        writeln!(f, "\t}}")
    }
}

impl fmt::Display for PlannedChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "\tchain {} {{", self.name)?;
        if let Some(b) = &self.base {
            writeln!(
                f,
                "\t\ttype {} hook {} priority {}; policy accept;",
                b.kind.as_str(),
                b.hook.as_str(),
                b.priority
            )?;
        }
        for r in &self.rules {
            writeln!(f, "\t\t{r}")?;
        }
        writeln!(f, "\t}}")
    }
}

impl fmt::Display for PlannedRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for m in &self.matches {
            write!(f, "{m} ")?;
        }
        write!(f, "{}", self.action)
    }
}

impl fmt::Display for Match {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Match::NfProto(fam) => write!(f, "meta nfproto {}", fam.nfproto()),
            Match::FibDaddrLocal => write!(f, "fib daddr type local"),
            Match::IifName(n) => write!(f, "iifname \"{n}\""),
            Match::OifName(n) => write!(f, "oifname \"{n}\""),
            Match::OifNameNot(n) => write!(f, "oifname != \"{n}\""),
            Match::IifInSet(s) => write!(f, "iifname @{s}"),
            Match::OifInSet(s) => write!(f, "oifname @{s}"),
            Match::IifOifInSet(s) => write!(f, "iifname . oifname @{s}"),
            Match::Saddr(net @ IpNet::V4(_)) => write!(f, "ip saddr {net}"),
            Match::Saddr(net @ IpNet::V6(_)) => write!(f, "ip6 saddr {net}"),
            Match::Daddr(net @ IpNet::V4(_)) => write!(f, "ip daddr {net}"),
            Match::Daddr(net @ IpNet::V6(_)) => write!(f, "ip6 daddr {net}"),
            Match::CtEstablishedRelated => write!(f, "ct state established,related"),
            Match::CtStatusDnat => write!(f, "ct status dnat"),
            Match::Icmpv6Type(t) => match *t {
                ND_NEIGHBOR_SOLICIT => write!(f, "icmpv6 type nd-neighbor-solicit"),
                ND_NEIGHBOR_ADVERT => write!(f, "icmpv6 type nd-neighbor-advert"),
                other => write!(f, "icmpv6 type {other}"),
            },
            Match::IifDaddrProtoPortInSet(fam, s) => {
                write!(
                    f,
                    "iifname . {} daddr . meta l4proto . th dport @{s}",
                    fam.nft()
                )
            }
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Accept => write!(f, "accept"),
            Action::Drop => write!(f, "drop"),
            Action::Masquerade => write!(f, "masquerade"),
            Action::Snat(a) => write!(f, "snat {} to {a}", IpFamily::of(a).nft()),
            Action::Jump(c) => write!(f, "jump {c}"),
            Action::DnatMap(m) => {
                let fam = m.family().nft();
                if m.by_address() {
                    write!(
                        f,
                        "dnat {fam} to {fam} daddr . meta l4proto . th dport map @{}",
                        m.name()
                    )
                } else {
                    write!(f, "dnat {fam} to meta l4proto . th dport map @{}", m.name())
                }
            }
        }
    }
}
