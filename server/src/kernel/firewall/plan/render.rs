//! The text form of a plan: the `nft list ruleset` look of every planned object (the
//! `Display` impls), the tables rendered whole, and the FNV-1a hash the fingerprint is made
//! of. Split from `plan` so each stays a readable size.
//!
//! # Who reads this text
//! - The fingerprint is [`fnv1a64`] of the layout version and `render_tables(tables, None)`:
//!   rendered without the table comment, because that comment carries the fingerprint itself.
//!   Any change to what is printed here therefore changes every fingerprint, and each running
//!   daemon sees its tables as stale and rebuilds them once after the upgrade.
//! - `FirewallPlan::render` (the comment and a `# fingerprint` line added) is compared with
//!   `tests/golden/firewall/<case>.nft` by the unit tests; a change here shows up as a golden
//!   diff to review (`UPDATE_GOLDEN=1` rewrites them).
//! - Nothing parses it back, and the kernel is never compared with it: sync's observe step
//!   reads the fingerprint from the table comment and checks chains, rule counts and set
//!   members from netlink dumps, and `tests/firewall.rs` compares `nft -j` JSON.
//!
//! # How close to nft it is
//! Keywords, order and nesting (one tab per level) follow `nft list ruleset`, with two
//! differences: base-chain priorities are numbers, as `nft -y` prints them (not `dstnat`,
//! `srcnat` or `filter`), and the port maps are shown without their elements. Set members
//! are printed in plan order, which `plan` sorts, so equal plans give byte-equal text.

use std::fmt;

use super::*;

/// FNV-1a, 64 bit: tiny, and stable across Rust releases (unlike `DefaultHasher`).
/// The two constants are FNV's 64-bit offset basis and prime. A collision between two plans
/// would let sync take stale tables for current; observe's rule-count and member checks are
/// the second line against that.
pub(super) fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The tables whole, as `nft list ruleset` prints them: each table with its comment (the
/// marker and fingerprint, when `comment` is given), its sets, then its chains, in plan
/// order (the batch's creation order: sets before the chains whose rules name them).
/// `plan` hashes the rendering with `None`; `FirewallPlan::render` passes the comment for
/// the golden files. A dry run does not show this text: it records one planned change.
pub(super) fn render_tables(tables: &[PlannedTable], comment: Option<&str>) -> String {
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

/// A set or map as nft prints it: `set NAME {`, its `type` line, its `elements = { ... }`
/// line, `}`; a port map's elements are not part of the plan (they change with every
/// published port). No `flags` line: weft's sets are created with no flags (the maps with
/// `NFT_SET_MAP` only, which nft shows as the `map` keyword). An empty set has no `elements`
/// line, as in nft; a resolver pair prints as two members, `tcp` then `udp` on port 53.
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

/// A chain: its `type ... hook ... priority ...; policy ...;` line for a base chain, then
/// its rules in order (order is meaning in a chain). The policy is always `accept` (see
/// [`BaseChain`]), so it is printed, not stored; a regular chain (`portmap`) has no such line.
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

/// One rule as one nft line: each match followed by a space, then the action. Rules carry no
/// comment (weft's only comment is the table's). The dependencies nft adds on its own
/// (`meta nfproto` before `ip saddr`, `meta l4proto ipv6-icmp` before `icmpv6 type`) are not
/// printed, as `nft list` hides them too.
impl fmt::Display for PlannedRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for m in &self.matches {
            write!(f, "{m} ")?;
        }
        write!(f, "{}", self.action)
    }
}

/// One match of a rule in nft syntax (`meta nfproto ipv4`, `iifname "br0"`, `fib daddr
/// type local`, ...). `Saddr`/`Daddr` choose `ip` or `ip6` from the prefix's family. ICMPv6
/// types 135 and 136 print under nft's names; any other type, which no plan holds today,
/// would print as a bare number.
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

/// What a rule does, in nft syntax (`accept`, `drop`, `masquerade`, `snat ip to ...`, ...).
/// A `DnatMap` names the key its map is looked up with: destination address, layer-4
/// protocol and `th dport` (the transport header's destination port, the same offset for TCP
/// and UDP) for a by-address map, protocol and port alone for a wildcard one.
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
