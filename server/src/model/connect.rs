//! The decisions of a connect, as pure functions: which preconditions it must meet, which
//! address each subnet leases, and what a refusal says.
//!
//! The store reads what these need inside its `BEGIN IMMEDIATE` transaction (does the network
//! exist, is the namespace on it already, which of these addresses are leased, who holds this
//! host port), calls them, and writes what they decided; so every rule and every message of a
//! connect can be unit tested here without a database.

use std::{collections::HashSet, net::IpAddr};

use super::{ConnectSpec, EndpointSpec, NetworkSpec, Protocol, SubnetSpec};

/// Why a request is refused. The store returns each as the `StoreError` of the same name, and
/// the API as the gRPC code that one maps to. The text is the whole message the client
/// reads, so it names the objects involved and, where it can, what to do instead.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Something the request names does not exist (NOT_FOUND).
    #[error("{0}")]
    NotFound(String),
    /// The stored state does not allow it now (FAILED_PRECONDITION).
    #[error("{0}")]
    FailedPrecondition(String),
    /// What it asks for is taken (ALREADY_EXISTS).
    #[error("{0}")]
    AlreadyExists(String),
    /// It does not fit the stored state in a way the client must fix (INVALID_ARGUMENT).
    #[error("{0}")]
    Invalid(String),
    /// Nothing is left to hand out (RESOURCE_EXHAUSTED).
    #[error("{0}")]
    Exhausted(String),
}

/// The most ports one Linux bridge takes: it numbers them 1 to 1,023 (`BR_MAX_PORTS` is
/// 1,024, port 0 reserved) and refuses one more with EXFULL. A network is one bridge, so it
/// holds at most this many endpoints (Docker's 1,024th container on a network fails with
/// "exchange full").
pub const BRIDGE_PORTS: u32 = bridge_ports!();

/// [`BRIDGE_PORTS`] as a literal, for SQL text (`concat!`): the store's counts stop there.
/// Bound as a parameter of a subquery's `LIMIT` instead, it made SQLite prepare the whole
/// statement again at every use (a Connect's precondition query: about 0.1 ms a Connect; the
/// store's lap went from 0.40 to 0.28 ms without it).
macro_rules! bridge_ports {
    () => {
        1023
    };
}
pub(crate) use bridge_ports;

/// What the store read about a connect's network and namespace, both of which exist.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectFacts {
    /// The network is being deleted.
    pub network_deleting: bool,
    /// The namespace is being deleted.
    pub namespace_deleting: bool,
    /// The namespace already has an endpoint on this network.
    pub already_connected: bool,
    /// The namespace already has an interface (an endpoint's or a link's) with the name asked.
    pub ifname_taken: bool,
    /// The namespace already routes by default through another network.
    pub routed_by_default: bool,
    /// The network's endpoints (including those being removed, whose ports the bridge still
    /// holds), counted up to [`BRIDGE_PORTS`].
    pub endpoints: u32,
    /// Link interfaces (LinkService's) whose master is the network's bridge: ports of that
    /// bridge too, counted up to [`BRIDGE_PORTS`].
    pub bridge_links: u32,
}

/// How one subnet's address is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseAsk {
    /// The client asked for this address, and the subnet allows it; it must not be leased.
    Static(IpAddr),
    /// The next free address after the subnet's cursor ([`SubnetSpec::candidates`]).
    Next,
}

/// How many lease candidates the store checks with one query. A round-robin cursor almost
/// always finds the first candidate free, so one batch is nearly always enough; a full
/// subnet costs one query per batch, never a read of every lease.
pub const LEASE_BATCH: usize = 32;

impl ConnectSpec {
    /// The refusal of a connect whose network or namespace was not found.
    pub fn not_found(&self, network_exists: bool) -> Refusal {
        Refusal::NotFound(if network_exists {
            format!("namespace {:?} not found; create it first", self.namespace)
        } else {
            format!("network {:?} not found", self.network)
        })
    }

    /// Checks the preconditions, in the order a client meets them, and returns the endpoint
    /// as it will be stored: without a default route when the namespace has one already.
    /// Deletions come first (FAILED_PRECONDITION), then what is taken (ALREADY_EXISTS):
    /// the namespace on this network, then the interface name in the namespace; then a
    /// network whose bridge has no port left (RESOURCE_EXHAUSTED).
    pub fn admit(&self, facts: &ConnectFacts) -> Result<EndpointSpec, Refusal> {
        if facts.network_deleting {
            return Err(Refusal::FailedPrecondition(format!(
                "network {:?} is being deleted",
                self.network
            )));
        }
        if facts.namespace_deleting {
            return Err(Refusal::FailedPrecondition(format!(
                "namespace {:?} is being deleted",
                self.namespace
            )));
        }
        if facts.already_connected {
            return Err(Refusal::AlreadyExists(format!(
                "namespace {:?} is already connected to network {:?}",
                self.namespace, self.network
            )));
        }
        if facts.ifname_taken {
            return Err(Refusal::AlreadyExists(format!(
                "interface {:?} already exists in namespace {:?}; pick another interface_name",
                self.endpoint.ifname, self.namespace
            )));
        }
        if facts.bridge_links == 0 && facts.endpoints >= BRIDGE_PORTS {
            return Err(Refusal::Exhausted(format!(
                "network {:?} has {BRIDGE_PORTS} endpoints, as many as one Linux bridge takes; \
                 connect namespace {:?} to another network",
                self.network, self.namespace
            )));
        }
        if facts.endpoints.saturating_add(facts.bridge_links) >= BRIDGE_PORTS {
            return Err(Refusal::Exhausted(format!(
                "network {:?} has {} endpoints and {} link interfaces on its bridge, the \
                 {BRIDGE_PORTS} ports one Linux bridge takes; connect namespace {:?} to another \
                 network, or take a link off the bridge (UpdateLink with no master)",
                self.network, facts.endpoints, facts.bridge_links, self.namespace
            )));
        }
        let mut endpoint = self.endpoint.clone();
        endpoint.default_route &= !facts.routed_by_default;
        Ok(endpoint)
    }

    /// How subnet `s` leases: the static address asked for its family, if the subnet allows
    /// it (INVALID_ARGUMENT if not), or the next free one. A static address may lie outside
    /// the ip_range (as Docker allows), but never on the gateway or a reserved address; the
    /// store then checks that no endpoint holds it.
    pub fn lease_ask(&self, s: &SubnetSpec) -> Result<LeaseAsk, Refusal> {
        let (requested, field) = if s.is_v4() {
            (self.ipv4.map(IpAddr::V4), "ipv4_address")
        } else {
            (self.ipv6.map(IpAddr::V6), "ipv6_address")
        };
        match requested {
            Some(a) => {
                s.check_static(a)
                    .map_err(|m| Refusal::Invalid(format!("{field}: {m}")))?;
                Ok(LeaseAsk::Static(a))
            }
            None => Ok(LeaseAsk::Next),
        }
    }

    /// The refusal of static address `addr`, leased already to namespace `holder`.
    pub fn address_taken(&self, addr: IpAddr, holder: &str) -> Refusal {
        Refusal::AlreadyExists(format!(
            "{addr} is already leased to namespace {holder:?} on network {:?}",
            self.network
        ))
    }

    /// The refusal when subnet `s` has no free address left (`in_use` leases on the network).
    pub fn subnet_full(&self, s: &SubnetSpec, in_use: i64) -> Refusal {
        Refusal::Exhausted(format!(
            "no free address left in {} of network {:?} ({in_use} in use)",
            s.subnet, self.network,
        ))
    }

    /// INVALID_ARGUMENT for a static address of a family the network has no subnet of.
    /// Checked after the leases, so a full subnet of the other family is reported first,
    /// as it always was.
    pub fn check_families(&self, net: &NetworkSpec) -> Result<(), Refusal> {
        if self.ipv4.is_some() && net.v4().is_none() {
            return Err(Refusal::Invalid(format!(
                "ipv4_address: network {:?} has no IPv4 subnet for ipv4_address",
                self.network
            )));
        }
        if self.ipv6.is_some() && net.v6().is_none() {
            return Err(Refusal::Invalid(format!(
                "ipv6_address: network {:?} has no IPv6 subnet for ipv6_address",
                self.network
            )));
        }
        Ok(())
    }
}

impl ConnectSpec {
    /// Checks the published ports against the network they are published from: none on an
    /// internal network (FAILED_PRECONDITION: nothing outside it may reach its endpoints),
    /// and each `host_ip` of a family the network gives its endpoints an address of
    /// (INVALID_ARGUMENT: an IPv6 host address cannot be forwarded to an IPv4-only
    /// endpoint; weft would store it, say Ready, and program nothing).
    pub fn check_ports(&self, net: &NetworkSpec) -> Result<(), Refusal> {
        if net.internal && !self.endpoint.ports.is_empty() {
            return Err(Refusal::FailedPrecondition(format!(
                "published_ports: network {:?} is internal, so nothing outside it can reach \
                 its endpoints; connect without published_ports, or to a network that is not internal",
                self.network
            )));
        }
        for (i, p) in self.endpoint.ports.iter().enumerate() {
            let Some(ip) = p.host_ip else { continue };
            let has = if ip.is_ipv4() {
                net.v4().is_some()
            } else {
                net.v6().is_some()
            };
            if !has {
                let (fam, other) = if ip.is_ipv4() {
                    ("IPv4", "IPv6")
                } else {
                    ("IPv6", "IPv4")
                };
                return Err(Refusal::Invalid(format!(
                    "published_ports[{i}].host_ip: {ip} is an {fam} address, but network {:?} \
                     gives its endpoints {other} addresses only; use an {other} host_ip, or leave \
                     it empty",
                    self.network
                )));
            }
        }
        Ok(())
    }
}

/// The first address of `batch` (candidates in round-robin order) that is not `leased`.
/// The store fills `leased` with those of the batch that the network's leases hold; None
/// sends it on to the next batch.
pub fn first_free(batch: &[IpAddr], leased: &HashSet<IpAddr>) -> Option<IpAddr> {
    batch.iter().find(|a| !leased.contains(a)).copied()
}

/// How many MACs a connect tries before giving up: the first is derived from the lease, the
/// others from a hash of it; a network would need to hold nearly all of them to exhaust it.
pub const MAC_ATTEMPTS: u32 = 64;

/// The MAC an endpoint with leases `addresses` gets, at attempt `attempt` (0 first) when the
/// ones before are taken on its network; the store keeps the first free one, so no two
/// endpoints of a network ever share one. Locally administered and unicast (first byte 02):
/// - attempt 0 with an IPv4 lease: Docker's `02:42:` and the four bytes of the address, so
///   two endpoints of a network (whose IPv4 leases differ) never derive the same one;
/// - attempt 0 with only an IPv6 lease: `02:` and the low 40 bits of the address; leases of
///   one ip_range differ there unless the range is wider than 2^40 addresses;
/// - later attempts (another endpoint's client-given MAC is the derived one, or a huge IPv6
///   range wrapped): `02:` and 40 bits of an FNV-1a hash of the address and the attempt.
///
/// None when the endpoint has no address at all (it then keeps the kernel's random MAC).
pub fn derived_mac(addresses: &[IpAddr], attempt: u32) -> Option<String> {
    let base = addresses
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addresses.first())?;
    let bytes: [u8; 5] = match (base, attempt) {
        (IpAddr::V4(v4), 0) => {
            let o = v4.octets();
            [0x42, o[0], o[1], o[2], o[3]]
        }
        (IpAddr::V6(v6), 0) => {
            let o = v6.octets();
            [o[11], o[12], o[13], o[14], o[15]]
        }
        (a, n) => {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            let octets = match a {
                IpAddr::V4(v4) => v4.octets().to_vec(),
                IpAddr::V6(v6) => v6.octets().to_vec(),
            };
            for b in octets.iter().chain(n.to_be_bytes().iter()) {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            let b = h.to_be_bytes();
            [b[3], b[4], b[5], b[6], b[7]]
        }
    };
    Some(format!(
        "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        bytes[0], bytes[1], bytes[2], bytes[3], bytes[4]
    ))
}

impl ConnectSpec {
    /// A connect of namespace `namespace` to network `network` as `eth0`, asking a default
    /// route and nothing else: the tests' usual request.
    #[cfg(test)]
    pub(crate) fn plain(network: &str, namespace: &str) -> ConnectSpec {
        ConnectSpec {
            network: network.into(),
            namespace: namespace.into(),
            ipv4: None,
            ipv6: None,
            endpoint: EndpointSpec {
                ifname: "eth0".into(),
                mac: None,
                aliases: Vec::new(),
                ports: Vec::new(),
                default_route: true,
            },
        }
    }

    /// The refusal of the client's `mac_address`, used already by namespace `holder` on the
    /// same network (two interfaces with one MAC on a bridge break both).
    pub fn mac_taken(&self, mac: &str, holder: &str) -> Refusal {
        Refusal::AlreadyExists(format!(
            "mac_address {mac} is already used by namespace {holder:?} on network {:?}; pick another or leave it empty",
            self.network
        ))
    }

    /// The refusal when no MAC could be found that is free on the network.
    pub fn no_free_mac(&self) -> Refusal {
        Refusal::Exhausted(format!(
            "no free MAC address found for the endpoint on network {:?} after {MAC_ATTEMPTS} tries; give one in mac_address",
            self.network
        ))
    }
}

/// The refusal of published port `index` when no port of `range` is free for `protocol` on
/// `host_ip` ("" is every address).
pub fn no_free_port(
    index: usize,
    range: &std::ops::RangeInclusive<u16>,
    protocol: Protocol,
    host_ip: &str,
    ephemeral: bool,
) -> Refusal {
    let ip = if host_ip.is_empty() {
        "every address"
    } else {
        host_ip
    };
    let (field, fix) = if ephemeral {
        (
            "host_port",
            "give a host_port, or widen the host's net.ipv4.ip_local_port_range",
        )
    } else {
        (
            "host_port_end",
            "give a wider host range, or free one of its ports",
        )
    };
    Refusal::Exhausted(format!(
        "published_ports[{index}].{field}: no free host port left in {}-{} for {} on {ip}; {fix}",
        range.start(),
        range.end(),
        protocol.as_str()
    ))
}

/// The refusal of host port `port`/`protocol` on `host_ip` ("" is every address), published
/// already by namespace `holder`. A mapping on every address conflicts with one on any
/// address, and the other way round.
pub fn port_taken(port: u16, protocol: Protocol, host_ip: &str, holder: &str) -> Refusal {
    let ip = if host_ip.is_empty() {
        "every address"
    } else {
        host_ip
    };
    Refusal::AlreadyExists(format!(
        "host port {port}/{} on {ip} is already published by namespace {holder:?}",
        protocol.as_str()
    ))
}

#[cfg(test)]
mod tests {
    //! Each rule of a connect, and each refusal's exact message, without a database.

    use super::*;

    /// Docker's MAC for an IPv4 lease; the low bytes of an IPv6-only one; hashed retries
    /// differ from the first and from each other; locally administered unicast throughout.
    #[test]
    fn derived_macs_follow_the_lease() {
        let v4: IpAddr = "172.17.0.2".parse().unwrap();
        let v6: IpAddr = "fd00::1:2:3:4".parse().unwrap();
        assert_eq!(derived_mac(&[v6, v4], 0).unwrap(), "02:42:ac:11:00:02");
        assert_eq!(derived_mac(&[v6], 0).unwrap(), "02:02:00:03:00:04");
        assert_eq!(derived_mac(&[], 0), None);
        let mut seen = HashSet::new();
        for n in 0..MAC_ATTEMPTS {
            let m = derived_mac(&[v4], n).unwrap();
            assert!(m.starts_with("02:"), "{m}");
            assert!(seen.insert(m.clone()), "attempt {n} repeats {m}");
        }
    }

    /// Two leases of one network never derive one MAC at the first attempt.
    #[test]
    fn different_leases_derive_different_macs() {
        let mut seen = HashSet::new();
        for i in 1..=254u8 {
            let a = IpAddr::from([10, 0, 0, i]);
            assert!(seen.insert(derived_mac(&[a], 0).unwrap()));
            let b: IpAddr = format!("fd00::{i:x}").parse().unwrap();
            assert!(seen.insert(derived_mac(&[b], 0).unwrap()));
        }
    }

    /// A connect of namespace "ns" to network "net" as `eth0`, asking a default route.
    fn spec(ipv4: Option<&str>, ipv6: Option<&str>) -> ConnectSpec {
        ConnectSpec {
            ipv4: ipv4.map(|a| a.parse().unwrap()),
            ipv6: ipv6.map(|a| a.parse().unwrap()),
            ..ConnectSpec::plain("net", "ns")
        }
    }

    /// Network "net" with these subnets, gateways defaulted.
    fn net(subnets: &[&str]) -> NetworkSpec {
        NetworkSpec {
            name: "net".into(),
            labels: Default::default(),
            bridge_name: "br-net".into(),
            subnets: subnets
                .iter()
                .map(|s| SubnetSpec::parse("s", s, "", "", &[]).unwrap())
                .collect(),
            internal: false,
            icc: true,
            masquerade: true,
            mtu: 0,
            dns: true,
        }
    }

    /// What the client reads of a refusal.
    fn message(r: Refusal) -> String {
        r.to_string()
    }

    /// The NOT_FOUND message names the network when it is missing, else the namespace.
    #[test]
    fn not_found_names_what_is_missing() {
        let c = spec(None, None);
        assert_eq!(
            c.not_found(false),
            Refusal::NotFound("network \"net\" not found".into())
        );
        assert_eq!(
            c.not_found(true),
            Refusal::NotFound("namespace \"ns\" not found; create it first".into())
        );
    }

    /// With every precondition failing, the first in client order is reported; clearing
    /// each in turn reports the next.
    #[test]
    fn preconditions_are_checked_in_order() {
        let c = spec(None, None);
        let mut f = ConnectFacts {
            network_deleting: true,
            namespace_deleting: true,
            already_connected: true,
            ifname_taken: true,
            routed_by_default: false,
            endpoints: BRIDGE_PORTS,
            bridge_links: 0,
        };
        let clear: [fn(&mut ConnectFacts); 5] = [
            |f| f.network_deleting = false,
            |f| f.namespace_deleting = false,
            |f| f.already_connected = false,
            |f| f.ifname_taken = false,
            |f| f.endpoints = BRIDGE_PORTS - 1,
        ];
        let expected = [
            Refusal::FailedPrecondition("network \"net\" is being deleted".into()),
            Refusal::FailedPrecondition("namespace \"ns\" is being deleted".into()),
            Refusal::AlreadyExists(
                "namespace \"ns\" is already connected to network \"net\"".into(),
            ),
            Refusal::AlreadyExists(
                "interface \"eth0\" already exists in namespace \"ns\"; pick another interface_name"
                    .into(),
            ),
            Refusal::Exhausted(
                "network \"net\" has 1023 endpoints, as many as one Linux bridge takes; \
                 connect namespace \"ns\" to another network"
                    .into(),
            ),
        ];
        for (clear, expected) in clear.iter().zip(expected) {
            assert_eq!(c.admit(&f), Err(expected));
            clear(&mut f);
        }
        assert!(c.admit(&f).is_ok());
    }

    /// Link interfaces on the network's bridge take its ports too: the refusal comes when
    /// endpoints and links together fill it, and says both counts and what to do.
    #[test]
    fn links_on_the_bridge_count_toward_its_ports() {
        let c = spec(None, None);
        let f = |endpoints, bridge_links| ConnectFacts {
            endpoints,
            bridge_links,
            ..Default::default()
        };
        assert!(c.admit(&f(BRIDGE_PORTS - 2, 1)).is_ok());
        assert!(c.admit(&f(0, BRIDGE_PORTS - 1)).is_ok());
        assert_eq!(
            c.admit(&f(BRIDGE_PORTS - 1, 1)),
            Err(Refusal::Exhausted(
                "network \"net\" has 1022 endpoints and 1 link interfaces on its bridge, the \
                 1023 ports one Linux bridge takes; connect namespace \"ns\" to another \
                 network, or take a link off the bridge (UpdateLink with no master)"
                    .into()
            ))
        );
        assert!(matches!(
            c.admit(&f(0, BRIDGE_PORTS)),
            Err(Refusal::Exhausted(_))
        ));
    }

    /// A namespace routed by default through one network keeps that route when it joins
    /// another.
    #[test]
    fn a_second_network_does_not_take_the_default_route() {
        let c = spec(None, None);
        assert!(c.admit(&ConnectFacts::default()).unwrap().default_route);
        let routed = ConnectFacts {
            routed_by_default: true,
            ..Default::default()
        };
        assert!(!c.admit(&routed).unwrap().default_route);
    }

    /// A static address applies to the subnet of its family only, must be usable there, and
    /// needs the network to have a subnet of that family.
    #[test]
    fn static_addresses_are_checked_per_family() {
        let n = net(&["10.0.0.0/24", "fd00::/64"]);
        let c = spec(Some("10.0.0.7"), None);
        assert_eq!(
            c.lease_ask(&n.subnets[0]),
            Ok(LeaseAsk::Static("10.0.0.7".parse().unwrap()))
        );
        assert_eq!(c.lease_ask(&n.subnets[1]), Ok(LeaseAsk::Next));
        assert_eq!(
            spec(Some("10.0.0.1"), None).lease_ask(&n.subnets[0]),
            Err(Refusal::Invalid(
                "ipv4_address: 10.0.0.1 is the gateway of 10.0.0.0/24".into()
            ))
        );
        assert_eq!(
            spec(Some("10.0.1.1"), None).lease_ask(&n.subnets[0]),
            Err(Refusal::Invalid(
                "ipv4_address: 10.0.1.1 is outside subnet 10.0.0.0/24".into()
            ))
        );
        assert!(c.check_families(&n).is_ok());
        assert_eq!(
            spec(None, Some("fd00::5")).check_families(&net(&["10.0.0.0/24"])),
            Err(Refusal::Invalid(
                "ipv6_address: network \"net\" has no IPv6 subnet for ipv6_address".into()
            ))
        );
        assert_eq!(
            c.check_families(&net(&["fd00::/64"])),
            Err(Refusal::Invalid(
                "ipv4_address: network \"net\" has no IPv4 subnet for ipv4_address".into()
            ))
        );
    }

    /// Published ports need a network that is not internal, and host addresses of a family
    /// the network leases.
    #[test]
    fn ports_are_checked_against_the_network() {
        let port = |ip: &str| crate::model::PortSpec::parse("p", ip, 8080, 0, 80, "tcp").unwrap();
        let mut c = spec(None, None);
        c.endpoint.ports = vec![port(""), port("fd00::1")];
        assert_eq!(
            c.check_ports(&net(&["10.0.0.0/24"])),
            Err(Refusal::Invalid(
                "published_ports[1].host_ip: fd00::1 is an IPv6 address, but network \"net\" \
                 gives its endpoints IPv4 addresses only; use an IPv4 host_ip, or leave it empty"
                    .into()
            ))
        );
        assert!(c.check_ports(&net(&["10.0.0.0/24", "fd00::/64"])).is_ok());
        c.endpoint.ports = vec![port("10.1.1.1")];
        assert!(matches!(
            c.check_ports(&net(&["fd00::/64"])),
            Err(Refusal::Invalid(m)) if m.starts_with("published_ports[0].host_ip: 10.1.1.1 is an IPv4")
        ));
        let mut internal = net(&["10.0.0.0/24"]);
        internal.internal = true;
        assert!(matches!(
            c.check_ports(&internal),
            Err(Refusal::FailedPrecondition(m)) if m.starts_with("published_ports: network \"net\" is internal")
        ));
        c.endpoint.ports.clear();
        assert!(c.check_ports(&internal).is_ok());
    }

    /// A batch yields its first candidate that is not leased, or nothing when all are.
    #[test]
    fn the_first_unleased_candidate_wins() {
        let n = net(&["10.0.0.0/29"]);
        let batch: Vec<IpAddr> = n.subnets[0].candidates(None).take(LEASE_BATCH).collect();
        assert_eq!(batch.len(), 5, "a /29 less network, gateway and broadcast");
        let mut leased: HashSet<IpAddr> = batch[..2].iter().copied().collect();
        assert_eq!(first_free(&batch, &leased), Some(batch[2]));
        leased.extend(batch.iter().copied());
        assert_eq!(first_free(&batch, &leased), None);
    }

    /// Refusals for taken addresses, full subnets and taken ports read exactly as before the
    /// rules moved here (the integration tests assert some of them).
    #[test]
    fn refusals_say_what_holds_it() {
        let c = spec(None, None);
        let s = &net(&["10.0.0.0/24"]).subnets[0];
        assert_eq!(
            message(c.address_taken("10.0.0.7".parse().unwrap(), "other")),
            "10.0.0.7 is already leased to namespace \"other\" on network \"net\""
        );
        assert_eq!(
            message(c.subnet_full(s, 253)),
            "no free address left in 10.0.0.0/24 of network \"net\" (253 in use)"
        );
        assert_eq!(
            port_taken(8080, Protocol::Tcp, "", "web"),
            Refusal::AlreadyExists(
                "host port 8080/tcp on every address is already published by namespace \"web\""
                    .into()
            )
        );
        assert_eq!(
            message(port_taken(53, Protocol::Udp, "127.0.0.1", "dns")),
            "host port 53/udp on 127.0.0.1 is already published by namespace \"dns\""
        );
    }
}
