//! The Network and Endpoint objects (Docker-style bridge networks), and IPAM: which addresses a
//! subnet can hand out, picking the next free one round-robin, automatic subnets from pools.
//! Pure: the store runs these inside its transactions.
//!
//! A subnet's leasable addresses are its ip_range (or the whole subnet) less the network
//! address, IPv4's broadcast, the gateway and the reserved addresses. Dynamic leases walk
//! them round-robin from a cursor the store keeps per subnet ([`SubnetSpec::candidates`]),
//! lazily, so an IPv6 /64 costs no more than an IPv4 /24. Automatic subnets are the first of a
//! pool's that overlaps no other network and no host route ([`AddressPool::first_free`]).
//! What a connect must meet, and the refusals it returns, are in [`super::connect`].

use std::{
    collections::HashSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{
    Invalid, Labels, PortSpec,
    labels::check_labels,
    link::parse_mac,
    names::{check_ifname, check_object_name},
};

/// One subnet of a network, with every field settled (gateway filled in).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetSpec {
    /// The subnet, host bits zero.
    pub subnet: IpNet,
    /// The bridge's address.
    pub gateway: IpAddr,
    /// Dynamic leases come from here; None is the whole subnet.
    pub ip_range: Option<IpNet>,
    /// Never handed out.
    pub reserved: Vec<IpAddr>,
}

/// The longest alias weft accepts: a DNS name.
const ALIAS_MAX: usize = 253;

/// INVALID_ARGUMENT unless `a` is a host name: 1 to 253 bytes of dot-separated labels, each
/// 1 to 63 ASCII letters, digits, '-' or '_', not starting or ending with '-'.
fn check_alias(field: &str, a: &str) -> Result<(), Invalid> {
    let bad = |why: &str| {
        Err(Invalid::new(
            field,
            format!(
                "{a:?} is not a host name: {why}; use labels of letters, digits, '-' and '_' separated by dots"
            ),
        ))
    };
    if a.is_empty() || a.len() > ALIAS_MAX {
        return bad("it must be 1 to 253 bytes");
    }
    for label in a.split('.') {
        if label.is_empty() || label.len() > 63 {
            return bad("each label is 1 to 63 bytes");
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_')))
        {
            return bad(&format!("{c:?} is not allowed"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a label cannot start or end with '-'");
        }
    }
    Ok(())
}

/// The desired state of a network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSpec {
    /// Unique name.
    pub name: String,
    /// Labels.
    pub labels: Labels,
    /// Linux bridge name (at most 15 bytes).
    pub bridge_name: String,
    /// Settled subnets (gateways filled in).
    pub subnets: Vec<SubnetSpec>,
    /// No access to or from outside.
    pub internal: bool,
    /// Inter-container traffic allowed.
    pub icc: bool,
    /// Masquerade outbound traffic.
    pub masquerade: bool,
    /// MTU; 0 is 1500.
    pub mtu: u32,
    /// weftd serves names of the network's endpoints on its gateways. Rows stored before
    /// this field existed get it from migration 0012 (off for the default network).
    #[serde(default = "dns_default")]
    pub dns: bool,
}

/// What a stored spec without `dns` means: on, as for a user-defined network.
fn dns_default() -> bool {
    true
}

impl NetworkSpec {
    /// The resolver's addresses: the gateway of every subnet when the network serves DNS,
    /// none otherwise.
    pub fn dns_servers(&self) -> Vec<IpAddr> {
        if !self.dns {
            return Vec::new();
        }
        self.subnets.iter().map(|s| s.gateway).collect()
    }
}

/// The desired state of an endpoint (a namespace on a network).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointSpec {
    /// Interface inside the namespace.
    pub ifname: String,
    /// Requested MAC for the inside interface.
    pub mac: Option<String>,
    /// Extra names.
    pub aliases: Vec<String>,
    /// Published ports.
    pub ports: Vec<PortSpec>,
    /// Add a default route via the gateway(s).
    pub default_route: bool,
}

/// The request to connect, before the store settles leases.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectSpec {
    /// Network name.
    pub network: String,
    /// Namespace name.
    pub namespace: String,
    /// Static IPv4 address.
    pub ipv4: Option<Ipv4Addr>,
    /// Static IPv6 address.
    pub ipv6: Option<Ipv6Addr>,
    /// The endpoint itself; `default_route` is what the client asked (the store may turn it
    /// off when the namespace already has one).
    pub endpoint: EndpointSpec,
}

impl ConnectSpec {
    /// Checks what can be checked without the store.
    pub fn validate(&self) -> Result<(), Invalid> {
        check_object_name("network", &self.network)?;
        check_object_name("namespace", &self.namespace)?;
        check_ifname("interface_name", &self.endpoint.ifname)?;
        if let Some(m) = &self.endpoint.mac {
            parse_mac("mac_address", m)?;
        }
        let mut aliases = HashSet::new();
        for (i, a) in self.endpoint.aliases.iter().enumerate() {
            check_alias(&format!("aliases[{i}]"), a)?;
            if !aliases.insert(a.to_ascii_lowercase()) {
                return Err(Invalid::new(
                    format!("aliases[{i}]"),
                    format!("{a:?} is listed twice (host names ignore case)"),
                ));
            }
        }
        // A port on every address clashes with the same port on any one address. Ports the
        // store chooses (left out, or one of a range) are never chosen twice, so only fixed
        // ones can clash here.
        let ports: Vec<&PortSpec> = self.endpoint.ports.iter().collect();
        for (i, p) in ports.iter().enumerate() {
            if !p.is_fixed() {
                continue;
            }
            let clash = ports[..i].iter().find(|q| {
                q.is_fixed()
                    && q.protocol == p.protocol
                    && (q.host_ip.is_none() || p.host_ip.is_none() || q.host_ip == p.host_ip)
                    && q.host_port <= p.host_port_end
                    && p.host_port <= q.host_port_end
            });
            if let Some(q) = clash {
                let h = p.host_port.max(q.host_port);
                return Err(Invalid::new(
                    format!("published_ports[{i}]"),
                    format!(
                        "host port {h}/{} is published twice in this request; publish each host port once",
                        p.protocol.as_str()
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The first and last address of an IPv4 network, as numbers.
fn v4_bounds(n: &ipnet::Ipv4Net) -> (u128, u128) {
    (
        u128::from(u32::from(n.network())),
        u128::from(u32::from(n.broadcast())),
    )
}

/// The first and last address of an IPv6 network, as numbers.
fn v6_bounds(n: &ipnet::Ipv6Net) -> (u128, u128) {
    (u128::from(n.network()), u128::from(n.broadcast()))
}

/// The first and last address of a network of either family, as numbers.
fn bounds(n: &IpNet) -> (u128, u128) {
    match n {
        IpNet::V4(n) => v4_bounds(n),
        IpNet::V6(n) => v6_bounds(n),
    }
}

/// An address as a number, so ranges of either family are walked the same way.
fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The address of number `v` in family IPv4 (`v4`) or IPv6.
fn from_u128(v4: bool, v: u128) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(v as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(v))
    }
}

/// True if the two networks share any address.
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Ranges no network may use or overlap, and what they are: the kernel routes them
/// specially (loopback, multicast, link-local), or they are not addresses a host may own.
const SPECIAL_RANGES: [(&str, &str); 10] = [
    ("0.0.0.0/8", "\"this network\" (0.0.0.0/8)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("224.0.0.0/4", "multicast"),
    (
        "240.0.0.0/4",
        "reserved (240.0.0.0/4, with the broadcast address)",
    ),
    ("::/127", "unspecified and loopback (::/127)"),
    ("::ffff:0:0/96", "IPv4-mapped IPv6 (::ffff:0:0/96)"),
    ("64:ff9b::/96", "NAT64 (64:ff9b::/96)"),
    ("fe80::/10", "link-local"),
    ("ff00::/8", "multicast"),
];

/// INVALID_ARGUMENT unless `net` is written as its network address (no host bits set): a
/// subnet or range written "10.1.2.3/24" is refused, saying to write "10.1.2.0/24", rather
/// than silently truncated.
pub fn check_network_address(field: &str, net: &IpNet) -> Result<(), Invalid> {
    let t = net.trunc();
    if t.addr() != net.addr() {
        return Err(Invalid::new(
            field,
            format!("{net} has host bits set; the network address is {t}, write that"),
        ));
    }
    Ok(())
}

/// INVALID_ARGUMENT if `net` lies in or overlaps a range no network may use
/// (loopback, multicast, link-local, IPv4-mapped IPv6, ...): a bridge with such an address
/// would break the host's own routing, or never carry traffic at all.
pub fn check_subnet_range(field: &str, net: &IpNet) -> Result<(), Invalid> {
    for (range, what) in SPECIAL_RANGES {
        let Ok(r) = range.parse::<IpNet>() else {
            continue;
        };
        if overlaps(net, &r) {
            return Err(Invalid::new(
                field,
                format!(
                    "{net} overlaps {r}, the {what} range, which a network cannot use; \
                     use a private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fd00::/8)"
                ),
            ));
        }
    }
    Ok(())
}

impl SubnetSpec {
    /// Settles a subnet from its wire fields: the subnet must be written as its network
    /// address and lie outside the special ranges, the gateway defaults to the first usable
    /// address, range and reserved addresses must lie in it, and the range must leave at
    /// least one address to lease.
    pub fn parse(
        field: &str,
        subnet: &str,
        gateway: &str,
        ip_range: &str,
        reserved: &[String],
    ) -> Result<SubnetSpec, Invalid> {
        let net: IpNet = subnet.trim().parse().map_err(|_| {
            Invalid::new(
                format!("{field}.subnet"),
                format!("{subnet:?} is not a subnet in CIDR notation (like 172.18.0.0/16)"),
            )
        })?;
        check_network_address(&format!("{field}.subnet"), &net)?;
        check_subnet_range(&format!("{field}.subnet"), &net)?;
        let max = if net.addr().is_ipv4() { 30 } else { 126 };
        if net.prefix_len() > max {
            return Err(Invalid::new(
                format!("{field}.subnet"),
                format!("{net} is too small: use at most a /{max}"),
            ));
        }
        let (lo, hi) = bounds(&net);
        let v4 = net.addr().is_ipv4();
        let in_net = |name: &str, a: IpAddr| -> Result<IpAddr, Invalid> {
            if !net.contains(&a) {
                return Err(Invalid::new(
                    format!("{field}.{name}"),
                    format!("{a} is outside subnet {net}"),
                ));
            }
            if to_u128(a) == lo || (v4 && to_u128(a) == hi) {
                return Err(Invalid::new(
                    format!("{field}.{name}"),
                    format!("{a} is the network or broadcast address of {net}"),
                ));
            }
            Ok(a)
        };
        let gateway = match gateway.trim() {
            "" => from_u128(v4, lo + 1),
            g => in_net(
                "gateway",
                g.parse().map_err(|_| {
                    Invalid::new(
                        format!("{field}.gateway"),
                        format!("{g:?} is not an IP address"),
                    )
                })?,
            )?,
        };
        let ip_range = match ip_range.trim() {
            "" => None,
            r => {
                let r: IpNet = r.parse().map_err(|_| {
                    Invalid::new(format!("{field}.ip_range"), format!("{r:?} is not a CIDR"))
                })?;
                check_network_address(&format!("{field}.ip_range"), &r)?;
                if !(net.contains(&r.network()) && net.contains(&r.broadcast())) {
                    return Err(Invalid::new(
                        format!("{field}.ip_range"),
                        format!("{r} is not inside subnet {net}"),
                    ));
                }
                Some(r)
            }
        };
        let mut seen = HashSet::new();
        let reserved = reserved
            .iter()
            .map(|s| {
                let a: IpAddr = s.trim().parse().map_err(|_| {
                    Invalid::new(
                        format!("{field}.reserved"),
                        format!("{s:?} is not an IP address"),
                    )
                })?;
                if !net.contains(&a) {
                    return Err(Invalid::new(
                        format!("{field}.reserved"),
                        format!("{a} is outside subnet {net}"),
                    ));
                }
                if !seen.insert(a) {
                    return Err(Invalid::new(
                        format!("{field}.reserved"),
                        format!("{a} is listed twice"),
                    ));
                }
                Ok(a)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let spec = SubnetSpec {
            subnet: net,
            gateway,
            ip_range,
            reserved,
        };
        if let Some(r) = spec.ip_range
            && spec.capacity() == 0
        {
            return Err(Invalid::new(
                format!("{field}.ip_range"),
                format!(
                    "{r} leaves no address to lease (the network address, broadcast, gateway \
                     and reserved addresses are never leased); give a wider range"
                ),
            ));
        }
        Ok(spec)
    }

    /// True for an IPv4 subnet.
    pub fn is_v4(&self) -> bool {
        self.subnet.addr().is_ipv4()
    }

    /// The first and last address leases may come from.
    fn lease_bounds(&self) -> (u128, u128) {
        let (slo, shi) = bounds(&self.subnet);
        let (lo, hi) = self.ip_range.as_ref().map(bounds).unwrap_or((slo, shi));
        // The subnet's own network address is never handed out, nor IPv4's broadcast.
        let lo = lo.max(slo + 1);
        let hi = if self.is_v4() { hi.min(shi - 1) } else { hi };
        (lo, hi)
    }

    /// Addresses that can be leased in all: the range less the gateway and reserved addresses.
    pub fn capacity(&self) -> u128 {
        let (lo, hi) = self.lease_bounds();
        if hi < lo {
            return 0;
        }
        let size = hi - lo + 1;
        let excluded: HashSet<u128> = std::iter::once(self.gateway)
            .chain(self.reserved.iter().copied())
            .map(to_u128)
            .filter(|v| (lo..=hi).contains(v))
            .collect();
        size.saturating_sub(excluded.len() as u128)
    }

    /// Why `addr` cannot be a static address here, if it cannot (leases are checked apart).
    pub fn check_static(&self, addr: IpAddr) -> Result<(), String> {
        let (slo, shi) = bounds(&self.subnet);
        let v = to_u128(addr);
        if !self.subnet.contains(&addr) {
            return Err(format!("{addr} is outside subnet {}", self.subnet));
        }
        if v == slo || (self.is_v4() && v == shi) {
            return Err(format!(
                "{addr} is the network or broadcast address of {}",
                self.subnet
            ));
        }
        if addr == self.gateway {
            return Err(format!("{addr} is the gateway of {}", self.subnet));
        }
        if self.reserved.contains(&addr) {
            return Err(format!("{addr} is reserved in {}", self.subnet));
        }
        Ok(())
    }

    /// The next free address after `cursor` (round-robin, so a just-released address is not
    /// handed out again at once), or None when the range is full.
    pub fn next_free(&self, leased: &HashSet<IpAddr>, cursor: Option<IpAddr>) -> Option<IpAddr> {
        self.candidates(cursor).find(|a| !leased.contains(a))
    }

    /// Every address a lease may take, in round-robin order: from the one after `cursor` to
    /// the end of the range, then from its start, each once; never the gateway or a reserved
    /// one. Lazy, so a caller that checks leases a batch at a time reads only what it needs.
    pub fn candidates(&self, cursor: Option<IpAddr>) -> impl Iterator<Item = IpAddr> + '_ {
        let (lo, hi) = self.lease_bounds();
        let v4 = self.is_v4();
        let size = if hi < lo { 0 } else { hi - lo + 1 };
        let start = cursor
            .map(to_u128)
            .filter(|c| (lo..=hi).contains(c))
            .map(|c| c + 1)
            .unwrap_or(lo);
        let start = if start > hi { lo } else { start };
        (0..size)
            .map(move |i| {
                let v = start + i;
                from_u128(v4, if v > hi { v - size } else { v })
            })
            .filter(move |a| *a != self.gateway && !self.reserved.contains(a))
    }
}

/// A pool automatic subnets are carved from: `base` split into subnets of `/size`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressPool {
    /// The range to split.
    pub base: IpNet,
    /// Prefix length of each subnet handed out.
    pub size: u8,
}

impl AddressPool {
    /// Parses "BASE/SIZE" ("172.17.0.0/12/16") or "base=BASE,size=SIZE".
    pub fn parse(s: &str) -> Result<AddressPool, String> {
        let (base, size) = if s.contains("base=") {
            let mut base = None;
            let mut size = None;
            for kv in s.split(',') {
                match kv.split_once('=') {
                    Some(("base", v)) => base = Some(v.to_string()),
                    Some(("size", v)) => size = Some(v.to_string()),
                    _ => return Err(format!("cannot parse {kv:?} in address pool {s:?}")),
                }
            }
            (
                base.ok_or("address pool needs base=")?,
                size.ok_or("address pool needs size=")?,
            )
        } else {
            let (b, sz) = s
                .rsplit_once('/')
                .ok_or_else(|| format!("address pool {s:?} is not BASE/SIZE"))?;
            (b.to_string(), sz.to_string())
        };
        let base: IpNet = base
            .parse()
            .map_err(|_| format!("{base:?} is not a CIDR"))?;
        let size: u8 = size
            .parse()
            .map_err(|_| format!("{size:?} is not a prefix length"))?;
        if size < base.prefix_len() || size > base.max_prefix_len() {
            return Err(format!("size /{size} does not fit in {base}"));
        }
        Ok(AddressPool {
            base: base.trunc(),
            size,
        })
    }

    /// The first subnet of this pool that overlaps nothing in `taken`.
    pub fn first_free(&self, taken: &[IpNet]) -> Option<IpNet> {
        let subnets = self.base.subnets(self.size).ok()?;
        // Bounded: a pool of /8 split into /24s is 65,536 candidates.
        subnets
            .take(1 << 20)
            .find(|c| !taken.iter().any(|t| overlaps(c, t)))
    }
}

/// The default pools, as Docker's: 172.17.0.0/12 in /16s, then 192.168.0.0/16 in /20s.
pub fn default_pools() -> Vec<AddressPool> {
    pools(&[
        "172.17.0.0/16/16",
        "172.18.0.0/15/16",
        "172.20.0.0/14/16",
        "172.24.0.0/13/16",
        "192.168.0.0/16/20",
    ])
}

/// The default IPv6 pool: ULA fd5e:f700::/40 in /64s.
pub fn default_v6_pools() -> Vec<AddressPool> {
    pools(&["fd5e:f700::/40/64"])
}

/// Pools from constant "BASE/SIZE" texts (a unit test checks that every one parses).
fn pools(texts: &[&str]) -> Vec<AddressPool> {
    texts
        .iter()
        .filter_map(|t| AddressPool::parse(t).ok())
        .collect()
}

/// FAILED_PRECONDITION for deleting the default network: weftd made it at start-up for
/// endpoints that name no network (Docker's `bridge`), and would make it again at the next.
pub fn check_deletable(name: &str, is_default: bool) -> Result<(), super::Refusal> {
    if is_default {
        return Err(super::Refusal::FailedPrecondition(format!(
            "name: network {name:?} is the default network, which weftd keeps; start weftd with \
             --no-default-network (or default_network = false) instead of deleting it"
        )));
    }
    Ok(())
}

impl NetworkSpec {
    /// Checks a settled spec.
    pub fn validate(&self) -> Result<(), Invalid> {
        check_object_name("network.name", &self.name)?;
        check_labels("network.labels", &self.labels)?;
        check_ifname("network.bridge_name", &self.bridge_name)?;
        if self.mtu != 0 && !(super::link::MTU_MIN..=super::link::MTU_MAX).contains(&self.mtu) {
            return Err(Invalid::new(
                "network.mtu",
                format!("{} is out of range 68..65535 (0 keeps 1500)", self.mtu),
            ));
        }
        for (i, a) in self.subnets.iter().enumerate() {
            for b in &self.subnets[i + 1..] {
                if overlaps(&a.subnet, &b.subnet) {
                    return Err(Invalid::new(
                        "network.subnets",
                        format!("{} and {} overlap", a.subnet, b.subnet),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The IPv4 subnet (the first), if any.
    pub fn v4(&self) -> Option<&SubnetSpec> {
        self.subnets.iter().find(|s| s.is_v4())
    }

    /// The IPv6 subnet (the first), if any.
    pub fn v6(&self) -> Option<&SubnetSpec> {
        self.subnets.iter().find(|s| !s.is_v4())
    }
}

#[cfg(test)]
mod tests {
    //! IPAM, subnet and port parsing, and address pools: pure, so no database is needed.

    use super::*;

    /// A subnet with its gateway (default when empty).
    fn sub(s: &str, gw: &str) -> SubnetSpec {
        SubnetSpec::parse("s", s, gw, "", &[]).unwrap()
    }

    /// The gateway defaults to the first usable address and must lie inside the subnet;
    /// the subnet is truncated to its network; a range must lie inside it.
    #[test]
    fn gateway_defaults_to_the_first_address() {
        assert_eq!(sub("172.18.0.0/16", "").gateway.to_string(), "172.18.0.1");
        assert_eq!(sub("fd00:1::/64", "").gateway.to_string(), "fd00:1::1");
        let e = SubnetSpec::parse("s", "10.1.2.3/24", "", "", &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "s.subnet: 10.1.2.3/24 has host bits set; the network address is 10.1.2.0/24, write that"
        );
        assert!(
            SubnetSpec::parse("s", "10.0.0.0/24", "10.0.1.1", "", &[])
                .unwrap_err()
                .problem
                .contains("outside")
        );
        assert!(SubnetSpec::parse("s", "10.0.0.0/24", "10.0.0.255", "", &[]).is_err());
        assert!(SubnetSpec::parse("s", "10.0.0.0/24", "", "10.0.1.0/25", &[]).is_err());
    }

    /// Subnets in or over the special ranges are refused, naming the range; private ones
    /// of both families pass.
    #[test]
    fn special_ranges_are_refused() {
        for (range, _) in SPECIAL_RANGES {
            assert!(range.parse::<IpNet>().is_ok(), "{range}");
        }
        for (net, what) in [
            ("127.0.0.0/24", "loopback"),
            ("0.0.0.0/0", "this network"),
            ("64.0.0.0/2", "loopback"),
            ("224.1.0.0/16", "multicast"),
            ("239.0.0.0/8", "multicast"),
            ("169.254.0.0/24", "link-local"),
            ("240.0.0.0/24", "reserved"),
            ("::ffff:10.0.0.0/120", "IPv4-mapped"),
            ("::/64", "loopback"),
            ("fe80::/64", "link-local"),
            ("ff02::/64", "multicast"),
        ] {
            let e = SubnetSpec::parse("n.subnets[0]", net, "", "", &[]).unwrap_err();
            assert_eq!(e.field, "n.subnets[0].subnet", "{net}");
            assert!(e.problem.contains(what), "{net}: {e}");
        }
        for ok in [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.5.0/24",
            "100.64.0.0/10",
            "fd00::/64",
            "2001:db8::/64",
        ] {
            assert!(SubnetSpec::parse("s", ok, "", "", &[]).is_ok(), "{ok}");
        }
    }

    /// An ip_range must be written as its network address and leave at least one lease: a
    /// /32 on the network address or the gateway, or a range all reserved, is refused.
    #[test]
    fn ranges_must_leave_a_lease() {
        let e = SubnetSpec::parse("s", "10.0.0.0/24", "", "10.0.0.128/24", &[]).unwrap_err();
        assert_eq!(e.field, "s.ip_range");
        let e = SubnetSpec::parse("s", "10.0.0.0/24", "", "10.0.0.129/25", &[]).unwrap_err();
        assert!(e.problem.contains("10.0.0.128/25"), "{e}");
        for r in ["10.0.0.0/32", "10.0.0.1/32", "10.0.0.255/32"] {
            let e = SubnetSpec::parse("s", "10.0.0.0/24", "", r, &[]).unwrap_err();
            assert_eq!(e.field, "s.ip_range", "{r}");
            assert!(e.problem.contains("no address to lease"), "{r}: {e}");
        }
        let e = SubnetSpec::parse("s", "fd00::/64", "", "fd00::1/128", &[]).unwrap_err();
        assert!(e.problem.contains("no address to lease"), "{e}");
        let e = SubnetSpec::parse(
            "s",
            "10.0.0.0/24",
            "",
            "10.0.0.4/31",
            &["10.0.0.4".into(), "10.0.0.5".into()],
        )
        .unwrap_err();
        assert!(e.problem.contains("no address to lease"), "{e}");
        let one = SubnetSpec::parse("s", "10.0.0.0/24", "", "10.0.0.9/32", &[]).unwrap();
        assert_eq!(one.capacity(), 1);
        assert_eq!(one.candidates(None).count(), 1);
        let e = SubnetSpec::parse(
            "s",
            "10.0.0.0/24",
            "",
            "",
            &["10.0.0.7".into(), "10.0.0.7".into()],
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "s.reserved: 10.0.0.7 is listed twice");
    }

    /// Capacity agrees with the candidates: never more than can be handed out.
    #[test]
    fn capacity_counts_the_candidates() {
        for (net, range, reserved) in [
            ("10.0.0.0/29", "", vec![]),
            ("10.0.0.0/29", "10.0.0.4/30", vec!["10.0.0.6".to_string()]),
            ("10.0.0.0/30", "", vec![]),
            ("fd00::/124", "fd00::8/125", vec![]),
        ] {
            let s = SubnetSpec::parse("s", net, "", range, &reserved).unwrap();
            assert_eq!(
                s.capacity(),
                s.candidates(None).count() as u128,
                "{net} {range}"
            );
        }
    }

    /// A connect of "x" to "n" as eth0 with these aliases and ports.
    fn connect_spec(aliases: Vec<String>, ports: Vec<PortSpec>) -> ConnectSpec {
        ConnectSpec {
            network: "n".into(),
            namespace: "x".into(),
            ipv4: None,
            ipv6: None,
            endpoint: EndpointSpec {
                ifname: "eth0".into(),
                mac: None,
                aliases,
                ports,
                default_route: true,
            },
        }
    }

    /// Published ports: a port is published once per request, an address on every host
    /// address clashing with any other (host addresses are checked in `model::port`).
    #[test]
    fn duplicate_ports_are_refused() {
        assert!(PortSpec::parse("p", "127.0.0.1", 80, 0, 80, "tcp").is_ok());
        let spec = |ports: Vec<PortSpec>| connect_spec(vec![], ports);
        let p = |ip: &str, h: u32, end: u32| PortSpec::parse("p", ip, h, end, 80, "tcp").unwrap();
        let e = spec(vec![p("", 8080, 0), p("10.0.0.1", 8080, 0)])
            .validate()
            .unwrap_err();
        assert_eq!(e.field, "published_ports[1]");
        let pairwise = PortSpec::parse_range("p", "", (8000, 8010), (80, 90), "tcp").unwrap();
        let e = spec(vec![pairwise, p("", 8005, 0)]).validate().unwrap_err();
        assert!(e.problem.contains("8005/tcp"), "{e}");
        assert!(
            spec(vec![p("10.0.0.1", 8080, 0), p("10.0.0.2", 8080, 0)])
                .validate()
                .is_ok()
        );
        let udp = PortSpec::parse("p", "", 8080, 0, 80, "udp").unwrap();
        assert!(spec(vec![p("", 8080, 0), udp]).validate().is_ok());
        // Ports weft chooses never clash in the request: the store picks distinct ones.
        assert!(
            spec(vec![p("", 8000, 8010), p("", 8005, 0), p("", 0, 0)])
                .validate()
                .is_ok()
        );
    }

    /// Aliases are host names, each once (case-insensitively).
    #[test]
    fn aliases_are_host_names() {
        let with = |aliases: &[&str]| {
            connect_spec(aliases.iter().map(|a| a.to_string()).collect(), vec![])
        };
        assert!(with(&["web", "web.local", "db_1"]).validate().is_ok());
        for bad in [
            "",
            "a b",
            "-web",
            "web-",
            "a..b",
            "wéb",
            "a/b",
            &"x".repeat(64),
        ] {
            let e = with(&["ok", bad]).validate().unwrap_err();
            assert_eq!(e.field, "aliases[1]", "{bad:?}");
        }
        let e = with(&["Web", "web"]).validate().unwrap_err();
        assert!(e.problem.contains("listed twice"), "{e}");
    }

    /// A /24 hands out 253 addresses (less network, broadcast and gateway), each once.
    #[test]
    fn a_slash_24_with_gateway_holds_253() {
        let s = sub("10.0.0.0/24", "");
        assert_eq!(s.capacity(), 253);
        let mut leased = HashSet::new();
        let mut cursor = None;
        for _ in 0..253 {
            let a = s.next_free(&leased, cursor).expect("room");
            assert!(leased.insert(a), "{a} handed out twice");
            cursor = Some(a);
        }
        assert_eq!(
            s.next_free(&leased, cursor),
            None,
            "the 254th finds no room"
        );
        assert!(!leased.contains(&"10.0.0.1".parse().unwrap()));
        assert!(!leased.contains(&"10.0.0.255".parse().unwrap()));
    }

    /// The cursor moves on, so an address just released is not handed out again at once.
    #[test]
    fn released_addresses_are_not_reused_at_once() {
        let s = sub("10.0.0.0/24", "");
        let mut leased: HashSet<IpAddr> = HashSet::new();
        let a = s.next_free(&leased, None).unwrap();
        leased.insert(a);
        let b = s.next_free(&leased, Some(a)).unwrap();
        leased.remove(&a);
        let c = s.next_free(&leased, Some(b)).unwrap();
        assert_ne!(c, a);
        assert_eq!(a.to_string(), "10.0.0.2");
    }

    /// Leases come from the ip_range less reserved addresses; static addresses may lie
    /// anywhere usable in the subnet.
    #[test]
    fn ranges_and_reserved_limit_leases() {
        let s = SubnetSpec::parse(
            "s",
            "10.0.0.0/24",
            "",
            "10.0.0.128/30",
            &["10.0.0.129".into()],
        )
        .unwrap();
        assert_eq!(s.capacity(), 3);
        let mut leased = HashSet::new();
        let mut cur = None;
        while let Some(a) = s.next_free(&leased, cur) {
            leased.insert(a);
            cur = Some(a);
        }
        let mut got: Vec<String> = leased.iter().map(|a| a.to_string()).collect();
        got.sort();
        assert_eq!(got, ["10.0.0.128", "10.0.0.130", "10.0.0.131"]);
        assert!(
            s.check_static("10.0.0.129".parse().unwrap())
                .unwrap_err()
                .contains("reserved")
        );
        assert!(
            s.check_static("10.0.0.1".parse().unwrap())
                .unwrap_err()
                .contains("gateway")
        );
        assert!(
            s.check_static("10.0.1.1".parse().unwrap())
                .unwrap_err()
                .contains("outside")
        );
        assert!(
            s.check_static("10.0.0.50".parse().unwrap()).is_ok(),
            "static addresses may lie outside ip_range"
        );
    }

    /// A /64 is walked lazily: the first lease costs no enumeration of 2^64 addresses.
    #[test]
    fn ipv6_ranges_are_not_enumerated() {
        let s = sub("fd00::/64", "");
        let a = s.next_free(&HashSet::new(), None).unwrap();
        assert_eq!(a.to_string(), "fd00::2");
        assert!(s.capacity() > 1u128 << 63);
    }

    /// Every default pool parses: [`pools`] would drop one that did not.
    #[test]
    fn default_pools_are_docker_s() {
        let v4: Vec<String> = default_pools()
            .iter()
            .map(|p| format!("{}/{}", p.base, p.size))
            .collect();
        assert_eq!(
            v4,
            [
                "172.17.0.0/16/16",
                "172.18.0.0/15/16",
                "172.20.0.0/14/16",
                "172.24.0.0/13/16",
                "192.168.0.0/16/20"
            ]
        );
        assert_eq!(default_v6_pools().len(), 1);
    }

    /// An automatic subnet overlaps no subnet taken already, whatever its size.
    #[test]
    fn pools_skip_taken_subnets() {
        let p = AddressPool::parse("172.16.0.0/12/16").unwrap();
        let taken: Vec<IpNet> = vec![
            "172.16.0.0/16".parse().unwrap(),
            "172.17.0.0/16".parse().unwrap(),
            "172.18.5.0/24".parse().unwrap(),
        ];
        assert_eq!(p.first_free(&taken).unwrap().to_string(), "172.19.0.0/16");
        assert_eq!(
            AddressPool::parse("base=10.0.0.0/8,size=24").unwrap().size,
            24
        );
        assert!(AddressPool::parse("10.0.0.0/16/8").is_err());
    }
}
