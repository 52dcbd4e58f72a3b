//! Unit tests of the pure half: the plan (golden files), mapping elements, validation.
//!
//! # The matrix
//! [`matrix`] names one case per option that changes the ruleset, each a network on its own
//! bridge so a golden file shows that option's rules alone: `v4` the default (ICC on,
//! masquerade on); `internal` (bridge in `internal`, no subnet masquerade); `icc_off` (adds
//! `bridge weft`); `no_masq` (hairpin but no subnet masquerade); `dual_stack` and `v6_only`
//! (the `ip6` forms); `mixed` three networks at once, given out of order with unsorted
//! subnets, to show sorting and set membership; `empty` the tables with no network.
//!
//! # What is checked where
//! - Here: each case's [`FirewallPlan::render`] against `tests/golden/firewall/<case>.nft`
//!   (`UPDATE_GOLDEN=1` rewrites them; review the diff like code), determinism, distinct
//!   fingerprints, and the invariants the design promises (the forward chain stays six
//!   rules; `bridge weft` exists exactly when some network has ICC off).
//! - Element encoding: a mapping per map round-trips through its register image, with the
//!   key and data lengths nftables expects and ports in network order.
//! - `tests/firewall.rs`: the same matrix applied to a real kernel in a scratch namespace,
//!   read back with `nft -j` and compared with JSON golden files.

use std::net::IpAddr;

use super::*;

/// The option matrix shared with `tests/firewall.rs` (which checks the kernel's view of the
/// same cases against JSON golden files): keep the two lists in step.
pub(super) fn matrix() -> Vec<(&'static str, Vec<FirewallNetwork>)> {
    let net = |bridge: &str, subnets: &[&str], internal, icc, masquerade| {
        let subnets: Vec<ipnet::IpNet> =
            subnets.iter().map(|s| s.parse().expect("subnet")).collect();
        FirewallNetwork {
            bridge: bridge.into(),
            // Every network has DNS on its first address (the gateway's default); only the
            // internal ones' show, in the resolver sets.
            dns_servers: subnets
                .iter()
                .filter_map(|s| s.hosts().find(|a| *a != s.network()))
                .collect(),
            subnets,
            internal,
            icc,
            masquerade,
        }
    };
    vec![
        ("empty", vec![]),
        (
            "v4",
            vec![net("wb-v4", &["10.10.0.1/24"], false, true, true)],
        ),
        (
            "internal",
            vec![net(
                "wb-int",
                &["10.11.0.1/24", "fd00:11::1/64"],
                true,
                true,
                true,
            )],
        ),
        (
            "icc_off",
            vec![net("wb-noicc", &["10.12.0.1/24"], false, false, true)],
        ),
        (
            "no_masq",
            vec![net("wb-nomasq", &["10.13.0.1/24"], false, true, false)],
        ),
        (
            "dual_stack",
            vec![net(
                "wb-dual",
                &["10.14.0.1/24", "fd00:14::1/64"],
                false,
                true,
                true,
            )],
        ),
        (
            "v6_only",
            vec![net("wb-v6", &["fd00:15::1/64"], false, false, true)],
        ),
        (
            "mixed",
            vec![
                net("wb-c", &["fd00:3::/56"], false, false, false),
                net("wb-a", &["fd00:1::1/64", "10.1.0.1/24"], false, true, true),
                net("wb-b", &["10.2.16.0/20"], true, false, true),
            ],
        ),
    ]
}

fn golden_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/firewall")
}

#[test]
fn plan_matches_golden_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut drift = Vec::new();
    for (name, networks) in matrix() {
        let text = plan(&networks).render();
        let path = golden_dir().join(format!("{name}.nft"));
        if update {
            std::fs::create_dir_all(golden_dir()).expect("mkdir golden");
            std::fs::write(&path, &text).expect("write golden");
            continue;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
        if want != text {
            drift.push(format!("--- {}\n{want}\n+++ now\n{text}", path.display()));
        }
    }
    assert!(
        drift.is_empty(),
        "plan drifted from golden files (UPDATE_GOLDEN=1 rewrites them):\n{}",
        drift.join("\n")
    );
}

#[test]
fn plan_is_deterministic_whatever_the_input_order() {
    let (_, nets) = matrix().pop().expect("mixed");
    let mut reversed = nets.clone();
    reversed.reverse();
    for n in &mut reversed {
        n.subnets.reverse();
    }
    assert_eq!(plan(&nets), plan(&reversed));
    assert_eq!(plan(&nets), plan(&nets));
}

#[test]
fn fingerprints_differ_across_the_matrix() {
    let mut seen = std::collections::HashSet::new();
    for (name, networks) in matrix() {
        let p = plan(&networks);
        assert_eq!(p.fingerprint.len(), 16, "{name}");
        assert!(
            seen.insert(p.fingerprint.clone()),
            "{name} shares a fingerprint"
        );
        assert!(p.comment().starts_with(MARKER));
    }
}

#[test]
fn bridge_table_only_when_some_network_has_icc_off() {
    for (name, networks) in matrix() {
        let want = networks.iter().any(|n| !n.icc);
        assert_eq!(
            plan(&networks).table(TableFamily::Bridge).is_some(),
            want,
            "{name}"
        );
    }
}

#[test]
fn rule_count_of_forward_chain_does_not_grow_with_networks() {
    let many: Vec<FirewallNetwork> = (0..50)
        .map(|i| FirewallNetwork {
            bridge: format!("wb{i}"),
            subnets: vec![format!("10.{i}.0.0/24").parse().expect("net")],
            internal: i % 3 == 0,
            icc: true,
            masquerade: true,
            dns_servers: vec![format!("10.{i}.0.1").parse().expect("ip")],
        })
        .collect();
    let p = plan(&many);
    let inet = p.table(TableFamily::Inet).expect("inet");
    let forward = inet
        .chains
        .iter()
        .find(|c| c.name == "forward")
        .expect("fwd");
    assert_eq!(forward.rules.len(), 6);
    // The input chain too: internal networks' resolvers are members of a set, not rules.
    let input = inet
        .chains
        .iter()
        .find(|c| c.name == "input")
        .expect("input");
    assert_eq!(input.rules.len(), 6);
    let dns4 = inet
        .sets
        .iter()
        .find(|s| s.name == plan::SET_DNS4)
        .expect("dns4");
    let internal = many.iter().filter(|n| n.internal).count();
    assert!(
        matches!(&dns4.kind, SetKind::Resolvers(_, m) if m.len() == internal),
        "{dns4:?}"
    );
}

/// Nothing leaves an internal network: the drop of traffic from an internal bridge comes
/// before every accept but the one within a network (ICC), so a connection DNATed to
/// another network's published port, or a reply, cannot carry it out.
#[test]
fn internal_networks_are_dropped_before_any_accept() {
    let (_, nets) = matrix().pop().expect("mixed");
    let p = plan(&nets);
    let forward = p
        .table(TableFamily::Inet)
        .and_then(|t| t.chains.iter().find(|c| c.name == "forward"))
        .expect("forward chain");
    let internal_drop = forward
        .rules
        .iter()
        .position(|r| {
            r.matches == [Match::IifInSet(plan::SET_INTERNAL.into())] && r.action == Action::Drop
        })
        .expect("the internal drop");
    for (i, r) in forward.rules.iter().enumerate().take(internal_drop) {
        assert_eq!(
            (r.matches.as_slice(), &r.action),
            (
                [Match::IifOifInSet(plan::SET_ICC.into())].as_slice(),
                &Action::Accept
            ),
            "rule {i} ({r}) comes before the internal drop"
        );
    }
}

fn mapping(host: Option<&str>, proto: Proto, hp: u16, dest: &str, dp: u16) -> PortMapping {
    PortMapping {
        host_ip: host.map(|h| h.parse::<IpAddr>().expect("ip")),
        proto,
        host_port: hp,
        dest: dest.parse().expect("ip"),
        dest_port: dp,
    }
}

#[test]
fn mapping_elements_round_trip_in_all_four_maps() {
    let cases = [
        (
            mapping(Some("192.0.2.1"), Proto::Tcp, 8080, "10.0.0.2", 80),
            PortMap::V4,
            12,
            8,
        ),
        (
            mapping(None, Proto::Udp, 53, "10.0.0.3", 5353),
            PortMap::V4Any,
            8,
            8,
        ),
        (
            mapping(Some("2001:db8::1"), Proto::Sctp, 9, "fd00::2", 99),
            PortMap::V6,
            24,
            20,
        ),
        (
            mapping(None, Proto::Tcp, 443, "fd00::3", 8443),
            PortMap::V6Any,
            8,
            20,
        ),
    ];
    for (m, map, klen, dlen) in cases {
        assert_eq!(m.map(), map);
        let e = m.element();
        assert_eq!(e.key.len(), klen, "{m}");
        assert_eq!(e.data.as_ref().map(Vec::len), Some(dlen), "{m}");
        assert_eq!(PortMapping::from_element(map, &e), Some(m.clone()));
    }
    // Ports are in network order in the register image (the classic native-order pitfall).
    let e = mapping(None, Proto::Tcp, 0x1234, "10.0.0.2", 0xabcd).element();
    assert_eq!(e.key, vec![6, 0, 0, 0, 0x12, 0x34, 0, 0]);
    assert_eq!(e.data, Some(vec![10, 0, 0, 2, 0xab, 0xcd, 0, 0]));
}

#[test]
fn mappings_that_the_kernel_cannot_express_are_refused() {
    assert!(
        mapping(Some("192.0.2.1"), Proto::Tcp, 1, "fd00::1", 1)
            .validate()
            .is_err()
    );
    assert!(
        mapping(None, Proto::Tcp, 0, "10.0.0.1", 1)
            .validate()
            .is_err()
    );
    assert!(
        mapping(None, Proto::Tcp, 1, "10.0.0.1", 0)
            .validate()
            .is_err()
    );
    assert!(group(&[mapping(None, Proto::Tcp, 1, "10.0.0.1", 1)]).is_ok());
}

#[test]
fn interface_and_sysctl_names_are_checked() {
    assert!(validate_ifname("br-weft0").is_ok());
    assert!(validate_ifname("").is_err());
    assert!(validate_ifname("sixteen-chars-xx").is_err());
    assert!(validate_ifname("a/b").is_err());
    assert!(validate_sysctl_key("net/ipv4/ip_forward").is_ok());
    assert!(validate_sysctl_key("net/ipv4/conf/br-a.1/route_localnet").is_ok());
    assert!(validate_sysctl_key("/proc/sys/x").is_err());
    assert!(validate_sysctl_key("net/../../etc").is_err());
}

/// The resolver sets hold only internal networks' (bridge, resolver) pairs, by family: a
/// network that is not internal needs none (its input is not filtered) and an internal one
/// without DNS gets none (it reaches nothing of the host).
#[test]
fn resolver_sets_hold_internal_networks_with_dns_only() {
    let net = |bridge: &str, internal: bool, dns: &[&str]| FirewallNetwork {
        bridge: bridge.into(),
        subnets: vec!["10.3.0.0/24".parse().expect("net")],
        internal,
        icc: true,
        masquerade: true,
        dns_servers: dns.iter().map(|a| a.parse().expect("ip")).collect(),
    };
    let p = plan(&[
        net("wb-pub", false, &["10.3.0.1"]),
        net("wb-int", true, &["10.4.0.1", "fd00:4::1"]),
        net("wb-quiet", true, &[]),
    ]);
    let inet = p.table(TableFamily::Inet).expect("inet");
    let members = |name: &str| match &inet.sets.iter().find(|s| s.name == name).expect(name).kind {
        SetKind::Resolvers(_, m) => m.clone(),
        other => panic!("{name}: {other:?}"),
    };
    let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
    assert_eq!(
        members(plan::SET_DNS4),
        [("wb-int".to_string(), ip("10.4.0.1"))]
    );
    assert_eq!(
        members(plan::SET_DNS6),
        [("wb-int".to_string(), ip("fd00:4::1"))]
    );
}
