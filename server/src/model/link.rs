//! The Link object: a veth pair or a bridge, with per-end MTU, MAC, state, master, addresses
//! and routes. Parsing of addresses, routes and MACs from their wire strings lives here.
//!
//! A link's spec is stored whole (as JSON) and compared whole by the reconciler; its ends'
//! names and namespaces are fixed at create time (the store keeps them unique per
//! namespace), everything else an update may change.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{
    Invalid, Labels,
    labels::check_labels,
    names::{check_ifname, check_object_name},
};

/// The largest MTU weft accepts (the kernel's limit for veth and bridges is 65535).
pub const MTU_MAX: u32 = 65535;
/// The smallest MTU weft accepts (IPv4's minimum).
pub const MTU_MIN: u32 = 68;

/// One route through an interface.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RouteSpec {
    /// Destination network; 0.0.0.0/0 or ::/0 for a default route.
    pub destination: IpNet,
    /// Next hop, if any.
    pub gateway: Option<IpAddr>,
    /// Priority; 0 is the kernel's default.
    pub metric: u32,
}

impl RouteSpec {
    /// Parses the wire form: destination "default" or a CIDR, gateway "" or an address.
    pub fn parse(
        field: &str,
        destination: &str,
        gateway: &str,
        metric: u32,
    ) -> Result<RouteSpec, Invalid> {
        let gateway = match gateway.trim() {
            "" => None,
            g => Some(g.parse::<IpAddr>().map_err(|_| {
                Invalid::new(
                    format!("{field}.gateway"),
                    format!("{g:?} is not an IP address"),
                )
            })?),
        };
        let destination = match destination.trim() {
            "default" => match gateway {
                // The defaults of the address types are ::/0 and 0.0.0.0/0.
                Some(IpAddr::V6(_)) => IpNet::V6(Default::default()),
                _ => IpNet::V4(Default::default()),
            },
            d => {
                let net = parse_cidr(&format!("{field}.destination"), d)?;
                super::network::check_network_address(&format!("{field}.destination"), &net)?;
                net
            }
        };
        if let Some(g) = gateway
            && (g.is_unspecified() || g.is_multicast() || g.is_loopback() || is_broadcast(g))
        {
            return Err(Invalid::new(
                format!("{field}.gateway"),
                format!("{g} cannot be a next hop; give a unicast address on the link's subnet"),
            ));
        }
        if let Some(g) = gateway
            && g.is_ipv4() != destination.addr().is_ipv4()
        {
            return Err(Invalid::new(
                format!("{field}.gateway"),
                format!("gateway {g} and destination {destination} are of different IP families"),
            ));
        }
        if gateway.is_none() && destination.prefix_len() == 0 {
            return Err(Invalid::new(
                format!("{field}.gateway"),
                "a default route needs a gateway".to_string(),
            ));
        }
        Ok(RouteSpec {
            destination,
            gateway,
            metric,
        })
    }

    /// The wire form of the destination: "default" for a default route.
    pub fn destination_string(&self) -> String {
        if self.destination.prefix_len() == 0 {
            "default".into()
        } else {
            self.destination.to_string()
        }
    }
}

/// True for IPv4's limited broadcast address, 255.255.255.255.
fn is_broadcast(a: IpAddr) -> bool {
    matches!(a, IpAddr::V4(v) if v.is_broadcast())
}

/// Parses an interface address in CIDR notation ("192.168.1.10/24"). The host part is kept.
pub fn parse_cidr(field: &str, s: &str) -> Result<IpNet, Invalid> {
    s.trim().parse::<IpNet>().map_err(|_| {
        Invalid::new(
            field,
            format!(
                "{s:?} is not an address in CIDR notation (like 192.168.1.10/24 or fd00::10/64)"
            ),
        )
    })
}

/// Parses and normalises a MAC address; it must be unicast and not all zeros.
pub fn parse_mac(field: &str, s: &str) -> Result<String, Invalid> {
    let bad = || {
        Invalid::new(
            field,
            format!("{s:?} is not a MAC address like 02:42:ac:11:00:02"),
        )
    };
    let parts: Vec<&str> = s.trim().split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut bytes = [0u8; 6];
    for (b, p) in bytes.iter_mut().zip(&parts) {
        if p.is_empty() || p.len() > 2 {
            return Err(bad());
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if bytes[0] & 1 == 1 {
        return Err(Invalid::new(
            field,
            format!(
                "{s} is a multicast address; an interface needs a unicast MAC (first byte even)"
            ),
        ));
    }
    if bytes == [0; 6] {
        return Err(Invalid::new(field, "the all-zero MAC cannot be assigned"));
    }
    Ok(bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":"))
}

/// One interface of a link: where it lives and how it should look.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndSpec {
    /// Interface name.
    pub name: String,
    /// Namespace name; "" is the host.
    pub namespace: String,
    /// MTU; 0 leaves the default.
    pub mtu: u32,
    /// MAC; None lets the kernel pick.
    pub mac: Option<String>,
    /// Administratively up.
    pub up: bool,
    /// Bridge to enslave to, in the same namespace.
    pub master: Option<String>,
    /// Hairpin mode on its bridge port: frames may leave by the port they came in on (an
    /// endpoint reaching its own published port through a host address needs it). Only
    /// with a master; weft sets it on endpoints' host ends, links leave it off.
    #[serde(default)]
    pub hairpin: bool,
    /// IPv6 off on this interface, set right after it is created and before it first comes
    /// up, so it never gets a link-local address and sends no router solicitations. In the
    /// host namespace that is `disable_ipv6` (no routes of its own either); in any other
    /// namespace it is the address generation mode none, set over netlink. weft sets it on
    /// endpoints' host ends (bridge ports) and on inside ends of endpoints without an IPv6
    /// address; links leave it off. Applied at creation only: an interface that exists keeps
    /// what it has.
    #[serde(default)]
    pub ipv6_off: bool,
    /// Its IPv6 addresses skip duplicate address detection (`IFA_F_NODAD`): usable the moment
    /// they are added, where with it they stay tentative for a second or two (no source, no
    /// destination) and on a bridge without a port up until one comes up. weft sets it where
    /// its IPAM made each address unique (a network's bridge, its endpoints' inside ends), as
    /// Docker does; links leave it off, as `ip addr add` does. Applied when an address is
    /// added: one already there keeps what it has.
    #[serde(default)]
    pub nodad: bool,
    /// Addresses with prefix length.
    pub addresses: Vec<IpNet>,
    /// Routes through this interface.
    pub routes: Vec<RouteSpec>,
}

impl EndSpec {
    /// Checks one end; `field` is the path of the end in the request.
    pub fn validate(&self, field: &str) -> Result<(), Invalid> {
        let f = |s: &str| {
            if field.is_empty() {
                s.to_string()
            } else {
                format!("{field}.{s}")
            }
        };
        check_ifname(&f("name"), &self.name)?;
        if !self.namespace.is_empty() {
            check_object_name(&f("namespace"), &self.namespace)?;
        }
        if self.mtu != 0 && !(MTU_MIN..=MTU_MAX).contains(&self.mtu) {
            return Err(Invalid::new(
                f("mtu"),
                format!(
                    "{} is out of range {MTU_MIN}..{MTU_MAX} (0 keeps the default)",
                    self.mtu
                ),
            ));
        }
        if let Some(m) = &self.master {
            check_ifname(&f("master"), m)?;
            if m == &self.name {
                return Err(Invalid::new(
                    f("master"),
                    "an interface cannot be its own master",
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for a in &self.addresses {
            if !seen.insert(a.addr()) {
                return Err(Invalid::new(
                    f("addresses"),
                    format!("{} is listed twice", a.addr()),
                ));
            }
            let mapped = matches!(a.addr(), IpAddr::V6(v) if v.to_ipv4_mapped().is_some());
            if a.addr().is_unspecified()
                || a.addr().is_multicast()
                || is_broadcast(a.addr())
                || mapped
            {
                return Err(Invalid::new(
                    f("addresses"),
                    format!(
                        "{a} cannot be assigned to an interface (unspecified, multicast, \
                         broadcast or IPv4-mapped); give a unicast address"
                    ),
                ));
            }
        }
        for (i, r) in self.routes.iter().enumerate() {
            // The kernel refuses an IPv4 next hop it cannot reach through this interface
            // (ENETUNREACH). IPv6 next hops are often link-local, reachable without an address.
            if let Some(g @ IpAddr::V4(_)) = r.gateway {
                let on_link = self.addresses.iter().any(|a| a.trunc().contains(&g))
                    || self
                        .routes
                        .iter()
                        .any(|o| o.gateway.is_none() && o.destination.contains(&g));
                if !on_link {
                    return Err(Invalid::new(
                        f(&format!("routes[{i}].gateway")),
                        format!(
                            "{g} is on no subnet of this interface's addresses or on-link routes, \
                             so the kernel cannot reach it; add an address on its subnet, or an \
                             on-link route to it"
                        ),
                    ));
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        for r in &self.routes {
            if !seen.insert((r.destination, r.metric)) {
                return Err(Invalid::new(
                    f("routes"),
                    format!(
                        "route to {} with metric {} is listed twice",
                        r.destination_string(),
                        r.metric
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// What kind of interface a link is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    /// A veth pair with this far end.
    Veth {
        /// The peer.
        peer: EndSpec,
    },
    /// A Linux bridge.
    Bridge,
}

impl LinkKind {
    /// The kernel's IFLA_INFO_KIND for it.
    pub fn kernel_kind(&self) -> &'static str {
        match self {
            LinkKind::Veth { .. } => "veth",
            LinkKind::Bridge => "bridge",
        }
    }
}

/// The desired state of a link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkSpec {
    /// Labels.
    pub labels: Labels,
    /// The first (or only) interface.
    pub end: EndSpec,
    /// Veth (with the peer) or bridge.
    pub kind: LinkKind,
}

impl LinkSpec {
    /// Checks everything that can be checked without the store or the kernel.
    pub fn validate(&self) -> Result<(), Invalid> {
        check_labels("link.labels", &self.labels)?;
        self.end.validate("link")?;
        if let LinkKind::Veth { peer } = &self.kind {
            peer.validate("link.veth.peer")?;
            if peer.namespace == self.end.namespace && peer.name == self.end.name {
                return Err(Invalid::new(
                    "link.veth.peer.name",
                    "a veth's two ends in one namespace need different names",
                ));
            }
        }
        Ok(())
    }

    /// Both ends, the first one first.
    pub fn ends(&self) -> Vec<&EndSpec> {
        match &self.kind {
            LinkKind::Veth { peer } => vec![&self.end, peer],
            LinkKind::Bridge => vec![&self.end],
        }
    }

    /// Both ends, mutable.
    pub fn ends_mut(&mut self) -> Vec<&mut EndSpec> {
        match &mut self.kind {
            LinkKind::Veth { peer } => vec![&mut self.end, peer],
            LinkKind::Bridge => vec![&mut self.end],
        }
    }
}

#[cfg(test)]
mod tests {
    //! Route, MAC and CIDR parsing, and the link-level checks of a spec.

    use super::*;

    /// "default" becomes 0.0.0.0/0 or ::/0 after the gateway's family.
    #[test]
    fn default_route_takes_the_gateway_family() {
        let r = RouteSpec::parse("r", "default", "192.168.1.1", 0).unwrap();
        assert_eq!(r.destination.to_string(), "0.0.0.0/0");
        let r = RouteSpec::parse("r", "default", "fd00::1", 5).unwrap();
        assert_eq!(r.destination.to_string(), "::/0");
        assert_eq!(r.destination_string(), "default");
        assert!(RouteSpec::parse("r", "default", "", 0).is_err());
        assert!(RouteSpec::parse("r", "10.0.0.0/8", "fd00::1", 0).is_err());
        let e = RouteSpec::parse("r", "10.1.2.3/8", "", 0).unwrap_err();
        assert_eq!(e.field, "r.destination");
        assert!(e.problem.contains("network address is 10.0.0.0/8"), "{e}");
        for gw in [
            "0.0.0.0",
            "224.0.0.1",
            "127.0.0.1",
            "255.255.255.255",
            "ff02::1",
            "::1",
        ] {
            let e = RouteSpec::parse("r", "default", gw, 0).unwrap_err();
            assert_eq!(e.field, "r.gateway", "{gw}");
        }
    }

    /// MACs are normalised to lower case, two digits a byte; multicast, all-zero and
    /// malformed MACs are refused.
    #[test]
    fn macs_are_normalised_and_must_be_unicast() {
        assert_eq!(
            parse_mac("m", "02:42:AC:11:0:2").unwrap(),
            "02:42:ac:11:00:02"
        );
        assert!(parse_mac("m", "01:00:5e:00:00:01").is_err());
        assert!(parse_mac("m", "00:00:00:00:00:00").is_err());
        assert!(parse_mac("m", "02:42:ac:11:00").is_err());
        assert!(parse_mac("m", "zz:42:ac:11:00:02").is_err());
    }

    /// An address without a prefix length is refused with a message that asks for CIDR; a
    /// CIDR keeps its host bits (an interface address, not a network).
    #[test]
    fn bad_cidrs_say_what_to_write() {
        assert!(
            parse_cidr("a", "192.168.1.10")
                .unwrap_err()
                .problem
                .contains("CIDR")
        );
        assert!(parse_cidr("a", "192.168.1.300/24").is_err());
        assert_eq!(
            parse_cidr("a", "192.168.1.10/24").unwrap().to_string(),
            "192.168.1.10/24"
        );
    }

    /// An IPv4 next hop must be on a subnet of the end's addresses or on-link routes; an
    /// address must be one an interface can hold.
    #[test]
    fn next_hops_must_be_reachable_and_addresses_assignable() {
        let end = |addrs: &[&str], routes: Vec<RouteSpec>| EndSpec {
            name: "v".into(),
            addresses: addrs.iter().map(|a| parse_cidr("a", a).unwrap()).collect(),
            routes,
            ..Default::default()
        };
        let r = |d: &str, g: &str| RouteSpec::parse("r", d, g, 0).unwrap();
        assert!(
            end(&["10.0.0.2/24"], vec![r("default", "10.0.0.1")])
                .validate("link")
                .is_ok()
        );
        let e = end(&["10.0.0.2/24"], vec![r("default", "10.9.0.1")])
            .validate("link")
            .unwrap_err();
        assert_eq!(e.field, "link.routes[0].gateway");
        assert!(
            end(&[], vec![r("10.9.0.0/24", ""), r("default", "10.9.0.1")])
                .validate("link")
                .is_ok(),
            "reachable through an on-link route"
        );
        assert!(
            end(&[], vec![r("default", "fe80::1")])
                .validate("link")
                .is_ok()
        );
        for bad in [
            "255.255.255.255/32",
            "::ffff:10.0.0.1/128",
            "224.0.0.5/24",
            "0.0.0.0/8",
        ] {
            let e = end(&[bad], vec![]).validate("link").unwrap_err();
            assert_eq!(e.field, "link.addresses", "{bad}");
        }
    }

    /// The two ends of a veth cannot be the same interface in the same namespace.
    #[test]
    fn veth_ends_must_differ() {
        let end = EndSpec {
            name: "a".into(),
            ..Default::default()
        };
        let spec = LinkSpec {
            labels: Labels::new(),
            end: end.clone(),
            kind: LinkKind::Veth { peer: end },
        };
        assert!(spec.validate().is_err());
    }
}
