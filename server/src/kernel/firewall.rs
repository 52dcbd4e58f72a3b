//! weft's nftables: bridge-network NAT, isolation and published ports, written through
//! `nftnl` into tables weft owns, each change one atomic batch.
//!
//! # What weft owns
//! Two tables in the host namespace ([`NsRef::Host`]), both called `weft`:
//! - `inet weft`, always present once [`Kernel::sync_firewall`] ran: NAT, published ports and
//!   the forward filter, for IPv4 and IPv6 alike;
//! - `bridge weft`, only while some network has inter-container traffic off.
//!
//! Each table's comment is `weft plan <fingerprint>` ([`FirewallPlan::fingerprint`], a hash of
//! the planned structure). A table called `weft` without that marker is not weft's: weft
//! refuses to change it (`EEXIST`) and never deletes it.
//!
//! # The ruleset
//! [`plan()`] is a pure function of the networks (sorted by bridge). For one dual-stack network
//! on `br-a` and an internal, no-ICC one on `br-b` it renders (see [`FirewallPlan::render`]):
//! ```text
//! table inet weft {
//!     comment "weft plan <fingerprint>"
//!     set bridges { type ifname; elements = { "br-a", "br-b" } }
//!     set internal { type ifname; elements = { "br-b" } }
//!     set icc { type ifname . ifname; elements = { "br-a" . "br-a" } }
//!     set dns4 { type ifname . ipv4_addr . inet_proto . inet_service;
//!         elements = { "br-b" . 10.2.0.1 . tcp . 53, "br-b" . 10.2.0.1 . udp . 53 } }
//!     set dns6 { type ifname . ipv6_addr . inet_proto . inet_service }
//!     map dnat4 { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service }
//!     map dnat4_any { type inet_proto . inet_service : ipv4_addr . inet_service }
//!     map dnat6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service }
//!     map dnat6_any { type inet_proto . inet_service : ipv6_addr . inet_service }
//!     chain prerouting { type nat hook prerouting priority -100; policy accept;
//!         fib daddr type local jump portmap }
//!     chain output { type nat hook output priority -100; policy accept;
//!         fib daddr type local jump portmap }
//!     chain portmap {
//!         dnat ip to ip daddr . meta l4proto . th dport map @dnat4
//!         meta nfproto ipv4 dnat ip to meta l4proto . th dport map @dnat4_any
//!         dnat ip6 to ip6 daddr . meta l4proto . th dport map @dnat6
//!         meta nfproto ipv6 dnat ip6 to meta l4proto . th dport map @dnat6_any }
//!     chain postrouting { type nat hook postrouting priority 100; policy accept;
//!         ip saddr 127.0.0.0/8 oifname @bridges masquerade
//!         iifname "br-a" oifname "br-a" ct status dnat masquerade
//!         ip saddr 10.1.0.0/24 ip daddr 10.1.0.0/24 ct status dnat snat ip to 10.1.0.1
//!         ip6 saddr fd00:1::/64 ip6 daddr fd00:1::/64 ct status dnat snat ip6 to fd00:1::1
//!         ip saddr 10.1.0.0/24 oifname != "br-a" masquerade
//!         ip6 saddr fd00:1::/64 oifname != "br-a" masquerade
//!         iifname "br-b" oifname "br-b" ct status dnat masquerade }
//!     chain forward { type filter hook forward priority 0; policy accept;
//!         iifname . oifname @icc accept
//!         iifname @internal drop
//!         oifname @bridges ct state established,related accept
//!         oifname @bridges ct status dnat accept
//!         oifname @bridges drop
//!         iifname @bridges accept }
//!     chain input { type filter hook input priority 0; policy accept;
//!         iifname @internal ct state established,related accept
//!         iifname @internal icmpv6 type nd-neighbor-solicit accept
//!         iifname @internal icmpv6 type nd-neighbor-advert accept
//!         iifname . ip daddr . meta l4proto . th dport @dns4 accept
//!         iifname . ip6 daddr . meta l4proto . th dport @dns6 accept
//!         iifname @internal drop }
//! }
//! table bridge weft {
//!     comment "weft plan <fingerprint>"
//!     chain forward { type filter hook forward priority -200; policy accept;
//!         ip saddr 10.2.0.0/24 drop }
//! }
//! ```
//! Why each part looks so:
//! - **Published ports** are elements of four maps, so one more mapping is one element, never
//!   a rule: by host address before wildcard, per family; a mapping lands in the v4 or v6 maps
//!   by the family of its destination. `fib daddr type local` keeps lookups to traffic for a
//!   host address, from outside (prerouting) and from the host itself (output). A miss in a
//!   map ends that rule and the next one is tried.
//! - **Masquerade** per subnet of each masquerading, non-internal network, for traffic leaving
//!   through any interface but its own bridge. **Hairpin**: traffic DNATed back into the bridge
//!   it came from is masqueraded so replies return through the host (the routed path, without
//!   br_netfilter), or SNATed to the gateway by the per-subnet `ip saddr S ip daddr S ct
//!   status dnat snat to <gateway>` (the bridged path, with br_netfilter; see below).
//!   Connections from the
//!   host's loopback addresses to a published port are masqueraded too; they also need
//!   `net/ipv4/conf/<bridge>/route_localnet = 1` (see
//!   [`Kernel::ensure_sysctl`](crate::kernel::NetnsOps::ensure_sysctl)), else the kernel
//!   refuses to route a 127/8 source out of the bridge. `::1` cannot be published.
//! - **Forward filter**, by set membership, so it is six rules whatever the number of
//!   networks (and so a rule for one bridge can never shadow another's): within an ICC
//!   network everything; out of an internal network nothing, *before* anything is accepted,
//!   so not even a connection DNATed to another network's published port, nor a reply,
//!   leaves it (that order is the fix of an escape: with the drop after the DNAT accept, an
//!   internal endpoint reached other networks through their published ports); into any
//!   weft bridge only replies and DNATed connections; out of the others everything. That is
//!   the isolation between networks and from the outside. Endpoints reach their gateway
//!   (that is input, not forward), subject to the input chain below.
//! - **Input from internal networks**: an internal network reaches nothing of the host but
//!   weftd's resolver on its own gateway(s), UDP and TCP port 53: `dns4`/`dns6` hold
//!   `bridge . gateway . proto . 53` for each internal network with DNS, so another network's
//!   gateway address (also the host's) is refused as well, and the chain stays six rules
//!   however many networks there are. Replies to what the host started, and neighbour
//!   solicitations and advertisements (without which IPv6 endpoints cannot reach the gateway
//!   at all) pass; everything else from an internal bridge is dropped. Other networks'
//!   input is left to the host's own firewall.
//! - **br_netfilter.** Where it is active (`net/bridge/bridge-nf-call-iptables = 1`, the
//!   default wherever the module is loaded or built in, as on this kernel), traffic bridged
//!   between two ports of one bridge also crosses the inet hooks, with the bridge as both iif
//!   and oif. `iifname . oifname @icc accept` lets it through for ICC networks (the set holds
//!   `"B" . "B"` for each); for no-ICC networks it falls to `oifname @bridges drop`. DNAT to a
//!   neighbour on the same bridge then happens at the bridge: br_netfilter sees the new
//!   destination is behind the bridge itself and bridges the frame instead of routing it.
//!   The hairpin masquerade rule does *not* match there: `nft monitor trace` shows the
//!   bridged packet in postrouting with `oif` the bridge and no `iif`, and (for an endpoint
//!   reaching itself) the endpoint's address as both source and destination. A `masquerade`
//!   on a subnet match would work with one address per family on the bridge, but it picks
//!   the source by the kernel's address selection (an IPv6 bridge also has a link-local
//!   address), so weft names the gateway instead: the SNAT rule per subnet, to the subnet's gateway (the address `FirewallNetwork::subnets`
//!   carries as host bits): any connection DNATed from a subnet to the same subnet leaves
//!   with the gateway as source, so neighbours see what they see without br_netfilter too.
//!   **Hairpin to itself** (an endpoint reaching its *own* published port through a host
//!   address, as with Docker's userland proxy off) needs two things on the bridged path: the
//!   endpoint's bridge port in hairpin mode (`IFLA_BRPORT_MODE`, set and repaired by the
//!   endpoint reconciler as desired state), since the frame leaves by the port it came in
//!   on; and the SNAT, since the packet would otherwise reach the endpoint with its own
//!   address as source and destination, which its kernel drops as a martian. Replies go to
//!   the gateway's MAC, are un-NATed in the bridge's prerouting and bridged back the same
//!   way. Without br_netfilter the same connection is routed and masqueraded by the rule
//!   before; the bridge's own transmit does not need hairpin mode. Both modes are tested
//!   (`tests/ports.rs`), from outside, from the host, from a neighbour and from the endpoint
//!   itself; the rules stay per network, never per mapping. Without the SNAT rule the
//!   neighbour sees the client's own address with br_netfilter (checked by removing it: the
//!   test then fails there). Checked by hand with a bare bridge, one port and `nft monitor
//!   trace` (br_netfilter on): hairpin off fails with or without the SNAT (the frame never
//!   leaves the port); hairpin on without it fails (the SYN reaches the endpoint from its
//!   own address, no SYN-ACK); hairpin on with it connects, the server seeing the gateway.
//! - **Inter-container traffic off** is a `bridge` family forward chain dropping frames bridged
//!   between two ports whose IP source is in a no-ICC network's subnet. Traffic to the gateway
//!   is bridge *input*, not forward, so it passes. Identifying the bridge by its subnets rather
//!   than `meta ibrname @noicc` is deliberate: `meta ibrname` needs `CONFIG_NFT_BRIDGE_META`,
//!   which kernels like this one's (6.18, no module loading) do not have, and nft then fails
//!   with `EOPNOTSUPP`. The limit, without br_netfilter: IPv6 link-local (`fe80::/10`) and
//!   non-IP frames between endpoints are not blocked (with it, the inet forward chain drops
//!   all IP between them). With br_netfilter, a connection through a published port to a
//!   neighbour on a no-ICC bridge is blocked too (as in Docker); without it, it is routed and
//!   allowed.
//!
//! Rules are encoded exactly as `nft` 1.0.6 encodes the same text (`nft --debug=netlink`), so
//! `nft list ruleset` prints the listing above and `nft -j` output can be compared to golden
//! files.
//!
//! # Changes, and what they cost
//! - [`Kernel::sync_firewall`] first *observes* (a handful of dumps: tables, chains, rule
//!   counts, sets, members of the two interface sets) and writes nothing when the tables
//!   match the plan. Otherwise it sends one batch that deletes weft's tables and builds them
//!   anew, re-adding the port-map elements it read just before, so elements survive and the
//!   change is atomic. Structure changes are rare (a network created or removed); port maps
//!   change often and never go through here.
//! - [`Kernel::add_port_mappings`] / [`Kernel::del_port_mappings`] are one batch of element
//!   messages each, whatever the count (tested with 10,000 in one call). Deletion first looks
//!   up exactly the requested keys (one `GETSETELEM` per key, pipelined; past 1,000 keys per
//!   map one dump is cheaper), so a missing element or one that now maps elsewhere is skipped
//!   instead of failing the batch with `ENOENT`. Measured here (debug build, shared 2 cores):
//!   10,000 added in one call ~40 ms, deleted ~85 ms, listed ~30 ms; one more mapping
//!   0.02 ms in a release build (kept socket, batch and acks) next to 10 or next to 10,000.
//! - All firewall writes of one process to one host namespace are serialised, so a sync's
//!   read-then-rebuild cannot lose an element added concurrently.
//! - Every batch sent (and every sysctl written) counts once in
//!   [`Kernel::writes`](crate::kernel::KernelOps::writes).
//!
//! # Layout
//! - this file: the [`FirewallOps`] calls, port mappings as map elements, the write lock.
//! - `plan`: the pure data ([`FirewallPlan`]), its rendering and fingerprint.
//! - `observe`: reads weft's tables back and tells sync whether they match the plan.
//! - `nl`: nftables over netlink, split by job:
//!   - `nl::socket`: the `NETLINK_NETFILTER` socket, one `sendmsg` per batch, acks drained;
//!   - `nl::read`: dumps and element lookups parsed into small structs;
//!   - `nl::batch`: the batch builder (delete tables, create them from the plan, elements);
//!   - `nl::rule`: one planned rule into expressions, register for register as `nft` does;
//!   - `nl::ffi`: the `nftnl-sys` extensions the safe `nftnl` lacks, the only `unsafe` code;
//!   - `nl::wire`: netlink framing and attributes in safe Rust;
//!   - `nl::abi`: the kernel's and `nft`'s numbers, copied once from uapi headers.
//!
//! The host namespace's netfilter sockets are made on a thread in it (`netns::run_in`: a
//! short-lived one that `setns`es into it, or a blocking-pool thread already there) and then
//! kept between calls (`NftSockets`): each call
//! borrows one and does its reads and its batch on one of tokio's blocking threads. Closing a
//! socket right after a batch that deleted something waits for an RCU grace period in the
//! kernel, which a socket per call made every Disconnect with published ports pay.

mod nl;
mod observe;
mod plan;

use std::{
    collections::{BTreeMap, HashMap},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
    sync::{Arc, Mutex},
};

use nix::errno::Errno;

pub use self::plan::{
    Action, BaseChain, ChainType, FirewallPlan, Hook, IpFamily, MARKER, Match, PlannedChain,
    PlannedRule, PlannedSet, PlannedTable, PortMap, SetKind, TABLE, TableFamily, plan,
};
use self::{
    nl::{BatchBuilder, ElemOp, Element, Socket},
    observe::{Observed, is_marked, observe},
};
use super::{
    FirewallOps, Kernel, KernelError, NsRef, error,
    netns::{self, NsFile},
};

/// A transport protocol of a published port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// SCTP (132).
    Sctp,
}

impl Proto {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Sctp => 132,
        }
    }

    /// From an IP protocol number.
    pub fn from_number(n: u8) -> Option<Self> {
        match n {
            6 => Some(Proto::Tcp),
            17 => Some(Proto::Udp),
            132 => Some(Proto::Sctp),
            _ => None,
        }
    }
}

/// What the firewall needs to know of one bridge network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirewallNetwork {
    /// The bridge interface's name (1 to 15 bytes).
    pub bridge: String,
    /// Its subnets, IPv4 and IPv6, with the gateway (the bridge's address) as host bits:
    /// `10.1.0.1/24`. The gateway is where hairpin traffic is SNATed to; a subnet given
    /// with zero host bits gets no hairpin SNAT rule. Every other rule ignores host bits.
    pub subnets: Vec<ipnet::IpNet>,
    /// No outside access (and no masquerade).
    pub internal: bool,
    /// Inter-container traffic allowed.
    pub icc: bool,
    /// Masquerade traffic leaving toward the outside.
    pub masquerade: bool,
    /// weftd's resolver addresses on the bridge (the gateways, when the network has DNS): an
    /// internal network may reach these, on port 53, and nothing else of the host.
    pub dns_servers: Vec<std::net::IpAddr>,
}

/// One published port: traffic to `host_ip:host_port` (or any host address) goes to
/// `dest:dest_port`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortMapping {
    /// The host address it listens on; None = every host address (of `dest`'s family).
    pub host_ip: Option<IpAddr>,
    /// Protocol.
    pub proto: Proto,
    /// Host port.
    pub host_port: u16,
    /// The endpoint's address.
    pub dest: IpAddr,
    /// The endpoint's port.
    pub dest_port: u16,
}

impl PortMapping {
    /// The map this mapping lives in.
    pub fn map(&self) -> PortMap {
        match (self.host_ip.is_some(), self.dest) {
            (true, IpAddr::V4(_)) => PortMap::V4,
            (false, IpAddr::V4(_)) => PortMap::V4Any,
            (true, IpAddr::V6(_)) => PortMap::V6,
            (false, IpAddr::V6(_)) => PortMap::V6Any,
        }
    }

    /// Checks what the kernel cannot express: families must agree, ports must not be 0.
    fn validate(&self) -> Result<(), String> {
        if let Some(h) = self.host_ip
            && IpFamily::of(&h) != IpFamily::of(&self.dest)
        {
            return Err(format!(
                "{self}: the host address and the destination must be of one family"
            ));
        }
        if self.host_port == 0 || self.dest_port == 0 {
            return Err(format!("{self}: port 0 cannot be published"));
        }
        Ok(())
    }

    /// The map element: key (`[addr .] proto . port`) and data (`addr . port`) as the
    /// registers hold them, each part padded to 4 bytes, ports in network order.
    fn element(&self) -> Element {
        let mut key = Vec::with_capacity(24);
        if let Some(h) = self.host_ip {
            key.extend_from_slice(&ip_bytes(&h));
        }
        key.extend_from_slice(&[self.proto.number(), 0, 0, 0]);
        key.extend_from_slice(&self.host_port.to_be_bytes());
        key.extend_from_slice(&[0, 0]);
        let mut data = ip_bytes(&self.dest);
        data.extend_from_slice(&self.dest_port.to_be_bytes());
        data.extend_from_slice(&[0, 0]);
        Element {
            key,
            data: Some(data),
        }
    }

    /// The inverse of [`PortMapping::element`]; None for an element weft did not write.
    fn from_element(map: PortMap, e: &Element) -> Option<Self> {
        let alen = match map.family() {
            IpFamily::V4 => 4,
            IpFamily::V6 => 16,
        };
        let data = e.data.as_deref()?;
        let (host_ip, rest) = if map.by_address() {
            if e.key.len() != alen + 8 {
                return None;
            }
            (Some(ip_from(&e.key[..alen])?), &e.key[alen..])
        } else {
            (None, &e.key[..])
        };
        if rest.len() != 8 || data.len() != alen + 4 {
            return None;
        }
        Some(PortMapping {
            host_ip,
            proto: Proto::from_number(rest[0])?,
            host_port: u16::from_be_bytes([rest[4], rest[5]]),
            dest: ip_from(&data[..alen])?,
            dest_port: u16::from_be_bytes([data[alen], data[alen + 1]]),
        })
    }
}

impl std::fmt::Display for PortMapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let proto = match self.proto {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        };
        match self.host_ip {
            Some(h) => write!(f, "{h} {proto}/{}", self.host_port)?,
            None => write!(f, "* {proto}/{}", self.host_port)?,
        }
        write!(f, " -> {} {}", self.dest, self.dest_port)
    }
}

fn ip_bytes(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn ip_from(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
        16 => {
            let a: [u8; 16] = b.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(a)))
        }
        _ => None,
    }
}

#[async_trait::async_trait]
impl FirewallOps for Kernel {
    /// Makes weft's tables' structure (tables, chains, rules, sets and their members) match
    /// `plan(networks)` in ONE batch; port-map elements are left as they are (the maps are
    /// created if missing).
    ///
    /// Writes nothing and returns Ok(false) when the kernel already matches: each planned table
    /// exists with the plan's fingerprint in its comment, has exactly the planned chains (name,
    /// hook, priority, type, policy) each with the planned number of rules, the planned sets and
    /// maps with their key and data types, and the planned members in the two interface sets;
    /// and `bridge weft` is absent when not planned. Returns Ok(true) when it wrote.
    ///
    /// `EINVAL` for a bridge name that cannot be an interface name; `EEXIST` if a table named
    /// `weft` exists without weft's marker.
    async fn sync_firewall(&self, networks: &[FirewallNetwork]) -> Result<bool, KernelError> {
        let op = format!("sync firewall in {}", self.label(&NsRef::Host));
        for n in networks {
            validate_ifname(&n.bridge).map_err(|m| error::invalid(op.clone(), m))?;
        }
        let plan = plan(networks);
        let _guard = self.firewall_lock().await?;
        let kernel = self.clone();
        self.with_nft(op, move |sock| {
            // A table deleted between the look and the batch fails the batch with ENOENT;
            // look again then.
            let mut attempt = 0;
            loop {
                let (existing, preserved) = match observe(sock, &plan)? {
                    Observed::Current => return Ok(false),
                    Observed::Stale {
                        existing,
                        preserved,
                    } => (existing, preserved),
                };
                let mut b = BatchBuilder::new();
                for family in &existing {
                    b.delete_table(*family, TABLE);
                }
                for table in &plan.tables {
                    b.create_table(table, &plan.comment(), &preserved);
                }
                kernel.wrote();
                match sock.send_batch(b.finish()) {
                    Err(e) if e.errno() == Some(Errno::ENOENT as i32) && attempt < 2 => {
                        attempt += 1
                    }
                    Err(e) => return Err(e),
                    Ok(()) => return Ok(true),
                }
            }
        })
        .await
    }

    /// Adds published ports, all in one batch, whatever their number.
    ///
    /// Adding a mapping that is already there, identical, is fine; one whose host address,
    /// protocol and port are taken by a different destination is `EEXIST` and nothing of the
    /// batch is applied. `EINVAL` (before anything is sent) for a host address of another
    /// family than the destination, or port 0. `ENOENT` if the maps do not exist (call
    /// [`Kernel::sync_firewall`] first). An empty list sends nothing.
    async fn add_port_mappings(&self, m: &[PortMapping]) -> Result<(), KernelError> {
        self.edit_port_maps("add", m, |sock, kernel, by_map| {
            let mut b = BatchBuilder::new();
            for (map, elements) in by_map {
                b.elements(TableFamily::Inet, TABLE, map.name(), elements, ElemOp::Add);
            }
            kernel.wrote();
            sock.send_batch(b.finish())
        })
        .await
    }

    /// Removes published ports in one batch.
    ///
    /// Only elements that exist *and* map to the given destination are removed; a missing one
    /// (or one that now maps elsewhere) is skipped, so this never fails with `ENOENT`. Writes
    /// nothing when there is nothing to remove. The check costs one small request per mapping
    /// (not a dump of the maps) up to 1,000 mappings per map, and one dump of the map beyond.
    async fn del_port_mappings(&self, m: &[PortMapping]) -> Result<(), KernelError> {
        self.edit_port_maps("delete", m, |sock, kernel, by_map| {
            let mut attempt = 0;
            loop {
                let mut b = BatchBuilder::new();
                let mut any = false;
                for (map, wanted) in by_map {
                    // Few: look up exactly those keys. Many: one dump is cheaper than
                    // thousands of lookups (10,000 lookups ~150 ms, a 10,000 dump ~30 ms).
                    let found = if wanted.len() <= LOOKUP_LIMIT {
                        let keys: Vec<Vec<u8>> = wanted.iter().map(|e| e.key.clone()).collect();
                        sock.get_elements(TableFamily::Inet, TABLE, map.name(), &keys)?
                    } else {
                        sock.elements(TableFamily::Inet, TABLE, map.name())?
                    };
                    let present: std::collections::HashSet<&Element> = found.iter().collect();
                    let gone: Vec<Element> = wanted
                        .iter()
                        .filter(|e| present.contains(e))
                        .cloned()
                        .collect();
                    any |= !gone.is_empty();
                    b.elements(TableFamily::Inet, TABLE, map.name(), &gone, ElemOp::Del);
                }
                if !any {
                    return Ok(());
                }
                kernel.wrote();
                match sock.send_batch(b.finish()) {
                    // Someone removed one in between: look again.
                    Err(e) if e.errno() == Some(Errno::ENOENT as i32) && attempt < 2 => {
                        attempt += 1
                    }
                    other => return other,
                }
            }
        })
        .await
    }

    /// Every published port in weft's maps, sorted. Empty if the table does not exist.
    /// Elements weft could not have written (unknown protocol, other lengths) are skipped.
    async fn list_port_mappings(&self) -> Result<Vec<PortMapping>, KernelError> {
        let op = format!("list port mappings in {}", self.label(&NsRef::Host));
        self.with_nft(op, move |sock| {
            let mut out = Vec::new();
            for map in PortMap::ALL {
                for e in sock.elements(TableFamily::Inet, TABLE, map.name())? {
                    out.extend(PortMapping::from_element(map, &e));
                }
            }
            out.sort();
            Ok(out)
        })
        .await
    }

    /// Removes weft's tables (`inet weft`, `bridge weft`) in one batch. Ok, and no write, if
    /// neither exists. A table named `weft` without weft's marker is left alone.
    async fn delete_firewall(&self) -> Result<(), KernelError> {
        let op = format!("delete firewall in {}", self.label(&NsRef::Host));
        let _guard = self.firewall_lock().await?;
        let kernel = self.clone();
        self.with_nft(op, move |sock| {
            let ours: Vec<TableFamily> = sock
                .tables()?
                .into_iter()
                .filter(|t| t.name == TABLE && is_marked(t.comment.as_deref()))
                .filter_map(|t| {
                    [TableFamily::Inet, TableFamily::Bridge]
                        .into_iter()
                        .find(|f| nl::family_code(*f) == t.family)
                })
                .collect();
            if ours.is_empty() {
                return Ok(());
            }
            let mut b = BatchBuilder::new();
            for f in ours {
                b.delete_table(f, TABLE);
            }
            kernel.wrote();
            sock.send_batch(b.finish())
        })
        .await
    }
}

impl Kernel {
    /// Reads a sysctl under /proc/sys in `ns` (e.g. "net/ipv4/ip_forward") and writes `value`
    /// only if it differs (compared without surrounding whitespace); returns whether it wrote.
    ///
    /// Done on a thread in `ns` ([`netns::run_in`]: a short-lived one that `setns`ed into it,
    /// or for the host a pool thread already there): `/proc/sys/net` shows the namespace of
    /// the thread that opens the file. `EINVAL` for a key that is not a relative
    /// path of plain components; the file's own errors (`ENOENT` for an unknown key) as they
    /// come.
    ///
    /// The write itself waits until none of weft's netlink writes is in flight, and they
    /// wait for it (the sysctl fence, held alone here and shared by each of them): a write of
    /// an IPv6 knob (every Connect's host end gets `disable_ipv6`) that finds RTNL taken does
    /// not sleep on it, the kernel restarts the `write` until it gets it (`rtnl_trylock`,
    /// `restart_syscall`), a core spinning meanwhile. Link deletes do not hold the fence (they
    /// are answered after RCU grace periods, and the host's go on its slow lane); RTNL taken
    /// by others is not fenced off. ARCHITECTURE.md ("The kernel, and what weft owns") and
    /// BENCHMARKS.md (session 24: half of the floor's CPU in concurrent connects) say more.
    pub(super) async fn write_sysctl(
        &self,
        ns: &NsRef,
        key: &str,
        value: &str,
    ) -> Result<bool, KernelError> {
        let op = format!("set sysctl {key}={value} in {}", self.label(ns));
        validate_sysctl_key(key).map_err(|m| error::invalid(op.clone(), m))?;
        let path = PathBuf::from("/proc/sys").join(key);
        let value = value.trim().to_string();
        let kernel = self.clone();
        let target = self.ns_file(ns)?;
        let what = op.clone();
        netns::run_in(target, move || {
            let current = std::fs::read_to_string(&path).map_err(|e| error::io(&what, e))?;
            if current.trim() == value {
                return Ok(false);
            }
            // On a blocking thread, so waiting here blocks no async worker; held only for
            // the write.
            let _alone = kernel.inner.sysctl_fence.blocking_write();
            kernel.wrote();
            std::fs::write(&path, format!("{value}\n")).map_err(|e| error::io(&what, e))?;
            Ok(true)
        })
        .await
        .map(|(wrote, _)| wrote)
        .map_err(|e| relabel_unless_same(e, op))
    }

    /// Reads a sysctl under /proc/sys as `ns` sees it (e.g. "net/ipv4/ip_local_port_range"),
    /// trimmed, on a thread in `ns`, as [`Kernel::write_sysctl`] does.
    pub(super) async fn sysctl_value(&self, ns: &NsRef, key: &str) -> Result<String, KernelError> {
        let op = format!("read sysctl {key} in {}", self.label(ns));
        validate_sysctl_key(key).map_err(|m| error::invalid(op.clone(), m))?;
        let path = PathBuf::from("/proc/sys").join(key);
        let target = self.ns_file(ns)?;
        let what = op.clone();
        netns::run_in(target, move || {
            std::fs::read_to_string(&path)
                .map(|v| v.trim().to_string())
                .map_err(|e| error::io(&what, e))
        })
        .await
        .map(|(v, _)| v)
        .map_err(|e| relabel_unless_same(e, op))
    }

    // ---- plumbing ----

    /// The shared frame of `add_port_mappings` and `del_port_mappings` (`verb` names which in
    /// the op text): validates and groups `m` by map (`EINVAL` before anything is sent),
    /// returns at once for an empty list, then holds the firewall lock while `edit` runs on a
    /// netfilter socket in the host namespace. `edit` builds and sends the batch and counts
    /// it with [`Kernel::wrote`].
    async fn edit_port_maps<F>(
        &self,
        verb: &str,
        m: &[PortMapping],
        edit: F,
    ) -> Result<(), KernelError>
    where
        F: FnOnce(
                &mut Socket,
                &Kernel,
                &BTreeMap<PortMap, Vec<Element>>,
            ) -> Result<(), KernelError>
            + Send
            + 'static,
    {
        let op = format!(
            "{verb} {} port mapping(s) in {}",
            m.len(),
            self.label(&NsRef::Host)
        );
        let by_map = group(m).map_err(|e| error::invalid(op.clone(), e))?;
        if by_map.is_empty() {
            return Ok(());
        }
        let _guard = self.firewall_lock().await?;
        let kernel = self.clone();
        self.with_nft(op, move |sock| edit(sock, &kernel, &by_map))
            .await
    }

    /// Runs `f` on a blocking thread with a netfilter socket of the host namespace: one kept
    /// from an earlier call ([`NftSockets`]), or a new one made there ([`netns::run_in`]).
    async fn with_nft<T, F>(&self, op: String, f: F) -> Result<T, KernelError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Socket) -> Result<T, KernelError> + Send + 'static,
    {
        let sock = match self.inner.nft.take() {
            Some(sock) => sock,
            None => netns::run_in(self.ns_file(&NsRef::Host)?, Socket::open)
                .await
                .map(|(sock, _)| sock)
                .map_err(|e| e.relabel(&op))?,
        };
        let (result, sock) = crate::nice::spawn_blocking(move || {
            let mut sock = sock;
            let result = f(&mut sock);
            (result, sock)
        })
        .await
        .map_err(|e| {
            error::io(
                op.clone(),
                std::io::Error::other(format!("netfilter helper task: {e}")),
            )
        })?;
        self.inner.nft.give_back(sock);
        result.map_err(|e| e.relabel(&op))
    }

    /// The namespace to enter for `ns`: the host's file opened at start-up, or a path.
    fn ns_file(&self, ns: &NsRef) -> Result<NsFile, KernelError> {
        Ok(match ns {
            NsRef::Host => {
                let file = self
                    .inner
                    .conns
                    .host_file()
                    .try_clone()
                    .map_err(|e| error::io("duplicate host namespace file", e))?;
                NsFile::Open(Arc::new(file), PathBuf::from(self.label(ns)))
            }
            NsRef::Path(p) => NsFile::Path(p.to_path_buf()),
        })
    }

    /// The lock serialising this process's firewall writes to the host namespace. Keyed by
    /// the namespace's identity, so kernels for different namespaces (tests) do not wait on
    /// each other, while clones and twins of one kernel do.
    async fn firewall_lock(&self) -> Result<tokio::sync::OwnedMutexGuard<()>, KernelError> {
        type Locks = Mutex<HashMap<(u64, u64), Arc<tokio::sync::Mutex<()>>>>;
        static LOCKS: std::sync::OnceLock<Locks> = std::sync::OnceLock::new();
        let st = nix::sys::stat::fstat(self.inner.conns.host_file())
            .map_err(|e| error::sys("stat host namespace", e))?;
        let lock = LOCKS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((st.st_dev, st.st_ino))
            .or_default()
            .clone();
        Ok(lock.lock_owned().await)
    }
}

/// Netfilter sockets of the host namespace, kept between calls (at most [`NftSockets::KEEP`]).
///
/// A socket closed right after a batch that deleted something makes `close` itself wait for
/// an RCU grace period: nf_tables' handler of the socket's release flushes the work that frees
/// deleted objects after a grace period (10-20 ms here; BENCHMARKS.md, session 20). With a
/// socket made per call, every Disconnect of an endpoint with published ports paid that, and
/// every call paid a thread to enter the namespace. A netlink socket stays in the namespace it
/// was made in, whichever thread uses it later, and each call drains what an earlier one left
/// in its queue ([`Socket`]), so one can serve call after call.
#[derive(Default)]
pub(super) struct NftSockets(Mutex<Vec<Socket>>);

impl NftSockets {
    /// Sockets kept; one more (calls running side by side) is closed after its call, on a
    /// blocking thread.
    const KEEP: usize = 4;

    fn take(&self) -> Option<Socket> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    fn give_back(&self, sock: Socket) {
        let mut kept = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() < Self::KEEP {
            kept.push(sock);
        } else {
            drop(kept);
            crate::nice::spawn_blocking_detached(move || drop(sock));
        }
    }
}

/// Up to this many mappings of one map, a delete looks each up; past it, it dumps the map.
const LOOKUP_LIMIT: usize = 1000;

/// Groups mappings by map, as elements, after validating each. Duplicates are dropped.
fn group(m: &[PortMapping]) -> Result<BTreeMap<PortMap, Vec<Element>>, String> {
    let mut by_map: BTreeMap<PortMap, Vec<Element>> = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    for p in m {
        p.validate()?;
        if seen.insert(p) {
            by_map.entry(p.map()).or_default().push(p.element());
        }
    }
    Ok(by_map)
}

/// An interface name the kernel accepts: 1 to 15 bytes, no '/', ':', NUL or whitespace.
fn validate_ifname(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c == '\0' || c.is_whitespace());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "bridge name {name:?} is not a valid interface name"
        ))
    }
}

/// A sysctl key: a relative path of plain components ("net/ipv4/ip_forward", or with dots
/// "net.ipv4.ip_forward" is refused: use slashes, as under /proc/sys).
fn validate_sysctl_key(key: &str) -> Result<(), String> {
    let ok = !key.is_empty()
        && key.split('/').all(|c| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '-' | '.'))
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "sysctl key {key:?} must be a relative path under /proc/sys, like \"net/ipv4/ip_forward\""
        ))
    }
}

/// Prefixes `op` unless the error already carries it (errors made on the helper thread).
fn relabel_unless_same(e: KernelError, op: String) -> KernelError {
    let already = match &e {
        KernelError::Netlink { op: o, .. }
        | KernelError::Sys { op: o, .. }
        | KernelError::NamespaceGone { op: o, .. }
        | KernelError::Io { op: o, .. } => *o == op,
    };
    if already { e } else { e.relabel(&op) }
}

#[cfg(test)]
mod tests;
