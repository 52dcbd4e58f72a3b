//! Networks (bridge, gateway addresses, firewall rules, sysctls) and the firewall key (the
//! ruleset and every published port as a whole).
//!
//! The firewall tests share one set-up ([`published`]): a network, a namespace on it
//! publishing 8080 -> 80, and one run of the firewall key (the first run is set-up, not
//! drift). Changes behind weft's back go through the fake kernel's own `FirewallOps`.
//!
//! The fake keeps the ruleset as data: `firewall()` is the list of networks the last sync
//! wrote (bridge, subnets and switches per network), `mappings()` the published-port map,
//! and `sysctl()` the values written under /proc/sys. A network reconcile writes the bridge,
//! its gateway addresses, the whole ruleset and the forwarding sysctls; the firewall key
//! checks the ruleset and the port map against every endpoint in the store.

use super::{H, mark, net, net_spec, tcp};
use crate::{
    kernel::{
        FirewallOps, NetnsOps, NsRef,
        firewall::{PortMapping, Proto},
    },
    model::Phase,
    reconcile::Key,
};

/// A new network: marked bridge with the gateway and a local MAC, its rules, forwarding and
/// route_localnet.
#[tokio::test]
async fn network_create_makes_a_marked_bridge_with_gateway_rules_and_sysctls() {
    let h = H::new().await;
    let id = h.network("web", "br-web", &["10.88.0.0/24"]).await;
    let br = h.k.link(&NsRef::Host, "br-web").unwrap();
    assert_eq!(br.kind.as_deref(), Some("bridge"));
    assert_eq!(br.alias, mark(&id));
    assert!(br.up);
    assert_eq!(br.addresses, vec![net("10.88.0.1/24")]);
    let mac = br.mac.unwrap();
    assert!(mac.starts_with("02:"), "a locally administered MAC: {mac}");
    let fw = h.k.firewall().expect("the ruleset was written");
    assert_eq!(fw.len(), 1);
    assert_eq!(fw[0].bridge, "br-web");
    // The subnet with the gateway as host bits (the hairpin SNAT address).
    assert_eq!(fw[0].subnets, vec![net("10.88.0.1/24")]);
    assert!(fw[0].icc && fw[0].masquerade && !fw[0].internal);
    let sysctl = |k: &str| h.k.sysctl(&NsRef::Host, k);
    assert_eq!(sysctl("net/ipv4/ip_forward").as_deref(), Some("1"));
    assert_eq!(
        sysctl("net/ipv4/conf/br-web/route_localnet").as_deref(),
        Some("1")
    );
    assert_eq!(
        sysctl("net/ipv6/conf/all/forwarding"),
        None,
        "no IPv6 subnet"
    );
    let s = h.net_status(&id).await;
    assert_eq!((s.phase, s.observed_generation), (Phase::Ready, 1));
}

/// A converged network (bridge, sysctls, ruleset) writes nothing.
#[tokio::test]
async fn converged_network_reconciles_with_zero_writes() {
    let h = H::new().await;
    let id = h.network("web", "br-web", &["10.88.0.0/24"]).await;
    let calls = h.k.calls();
    assert_eq!(h.run(Key::Network(id.clone())).await, 0);
    assert_eq!(h.k.calls(), calls);
    assert_eq!(h.drift(), 0);
}

/// An IPv6 subnet adds its gateway and turns IPv6 forwarding on.
#[tokio::test]
async fn dual_stack_network_gets_both_gateways_and_ipv6_forwarding() {
    let h = H::new().await;
    let id = h
        .network("ds", "br-ds", &["10.77.0.0/24", "fd00:77::/64"])
        .await;
    let br = h.k.link(&NsRef::Host, "br-ds").unwrap();
    let mut addrs = br.addresses.clone();
    addrs.sort();
    assert_eq!(addrs, vec![net("10.77.0.1/24"), net("fd00:77::1/64")]);
    assert_eq!(
        h.k.sysctl(&NsRef::Host, "net/ipv6/conf/all/forwarding")
            .as_deref(),
        Some("1")
    );
    assert_eq!(h.run(Key::Network(id)).await, 0);
}

/// The network's MTU is set on its bridge.
#[tokio::test]
async fn network_mtu_is_the_bridge_mtu() {
    let h = H::new().await;
    let mut spec = net_spec("jumbo", "br-j", &["10.66.0.0/24"]);
    spec.mtu = 9000;
    let id = h.network_row(&spec).await.id;
    h.run(Key::Network(id)).await;
    assert_eq!(h.k.link(&NsRef::Host, "br-j").unwrap().mtu, 9000);
}

/// A bridge deleted by hand comes back with the same MAC (derived from the id), so the
/// neighbours' ARP caches stay right across the repair.
#[tokio::test]
async fn bridge_deleted_behind_back_is_recreated_with_the_same_mac_as_drift() {
    let h = H::new().await;
    let id = h.network("web", "br-web", &["10.88.0.0/24"]).await;
    let before = h.k.link(&NsRef::Host, "br-web").unwrap();
    h.k.remove_behind_back(&NsRef::Host, "br-web");
    assert!(h.run(Key::Network(id.clone())).await > 0);
    let after = h.k.link(&NsRef::Host, "br-web").unwrap();
    assert_ne!(after.index, before.index);
    assert_eq!(after.mac, before.mac, "the MAC comes from the id");
    assert_eq!(after.addresses, before.addresses);
    assert_eq!(after.alias, mark(&id));
    assert_eq!(h.drift(), 1);
    assert_eq!(h.net_status(&id).await.phase, Phase::Ready);
}

/// A foreign address is removed and the gateway put back: the bridge is weft's, so its
/// addresses are exactly the gateways, and anything else on it is drift.
#[tokio::test]
async fn gateway_address_removed_behind_back_is_restored() {
    let h = H::new().await;
    let id = h.network("web", "br-web", &["10.88.0.0/24"]).await;
    h.k.tamper(&NsRef::Host, "br-web", |l| {
        l.addresses = vec![net("192.0.2.9/24")];
    });
    assert_eq!(h.run(Key::Network(id)).await, 2, "one removed, one added");
    assert_eq!(
        h.k.link(&NsRef::Host, "br-web").unwrap().addresses,
        vec![net("10.88.0.1/24")]
    );
    assert_eq!(h.drift(), 1);
}

/// ip_forward turned off by hand is turned on again and counted as drift: one write, the
/// sysctl; the bridge and the ruleset were untouched.
#[tokio::test]
async fn forwarding_sysctl_turned_off_behind_back_is_turned_on_again() {
    let h = H::new().await;
    let id = h.network("web", "br-web", &["10.88.0.0/24"]).await;
    h.k.ensure_sysctl(&NsRef::Host, "net/ipv4/ip_forward", "0")
        .await
        .unwrap();
    assert_eq!(h.run(Key::Network(id)).await, 1);
    assert_eq!(
        h.k.sysctl(&NsRef::Host, "net/ipv4/ip_forward").as_deref(),
        Some("1")
    );
    assert_eq!(h.drift(), 1);
}

/// Deleting a network removes its rules and bridge and leaves the other network alone.
#[tokio::test]
async fn network_delete_removes_its_bridge_its_rules_and_its_row() {
    let h = H::new().await;
    let keep = h.network("a", "br-a", &["10.1.0.0/24"]).await;
    let id = h.network("b", "br-b", &["10.2.0.0/24"]).await;
    h.store().mark_network_deleting("b", false).await.unwrap();
    h.run(Key::Network(id.clone())).await;
    assert!(h.k.link(&NsRef::Host, "br-b").is_none());
    assert!(h.k.link(&NsRef::Host, "br-a").is_some());
    let fw = h.k.firewall().unwrap();
    assert_eq!(
        fw.iter().map(|n| n.bridge.as_str()).collect::<Vec<_>>(),
        vec!["br-a"]
    );
    assert!(h.store().network_by_id(&id).await.unwrap().is_none());
    assert_eq!(h.net_status(&keep).await.phase, Phase::Ready);
}

/// A foreign interface with the bridge's name is refused and left as it was.
#[tokio::test]
async fn bridge_name_held_by_a_foreign_interface_fails_and_is_left_alone() {
    let h = H::new().await;
    h.k.add_foreign_link(&NsRef::Host, "docker0", "bridge");
    let id = h
        .network_row(&net_spec("d", "docker0", &["10.3.0.0/24"]))
        .await
        .id;
    h.run(Key::Network(id.clone())).await;
    let s = h.net_status(&id).await;
    assert_eq!(s.phase, Phase::Failed);
    assert!(s.message.contains("not owned by weft"), "{}", s.message);
    let br = h.k.link(&NsRef::Host, "docker0").unwrap();
    assert!(br.alias.is_none() && br.addresses.is_empty() && !br.up);
}

/// A network, a namespace on it publishing 8080 -> 80, and the firewall key run once.
///
/// Returns the harness and the one mapping the port map must hold; the firewall run is part
/// of the set-up so a test's own first run starts from a converged, drift-free firewall.
async fn published() -> (H, PortMapping) {
    let h = H::new().await;
    h.network("web", "br-web", &["10.88.0.0/24"]).await;
    h.namespace("ns1").await;
    let ep = h.connect("web", "ns1", vec![tcp(8080, 80)]).await;
    let want = PortMapping {
        host_ip: None,
        proto: Proto::Tcp,
        host_port: 8080,
        dest: ep.addresses[0].addr(),
        dest_port: 80,
    };
    assert_eq!(h.k.mappings(), vec![want.clone()]);
    h.run(Key::Firewall).await;
    (h, want)
}

/// The every-second firewall check writes nothing when the ports match: two runs, so the
/// first is not passing only because of the set-up's run.
#[tokio::test]
async fn converged_firewall_key_writes_nothing_and_counts_no_drift() {
    let (h, want) = published().await;
    assert_eq!(h.run(Key::Firewall).await, 0);
    assert_eq!(h.run(Key::Firewall).await, 0);
    assert_eq!(h.k.mappings(), vec![want]);
    assert_eq!(h.drift(), 0);
}

/// A DNAT element deleted by hand is put back and counted as drift.
#[tokio::test]
async fn firewall_key_restores_a_published_port_removed_behind_back_as_drift() {
    let (h, want) = published().await;
    h.k.del_port_mappings(std::slice::from_ref(&want))
        .await
        .unwrap();
    assert!(h.k.mappings().is_empty());
    assert!(h.run(Key::Firewall).await > 0);
    assert_eq!(h.k.mappings(), vec![want]);
    assert_eq!(h.drift(), 1);
}

/// A DNAT element no endpoint owns is removed.
#[tokio::test]
async fn firewall_key_removes_a_published_port_no_endpoint_owns() {
    let (h, want) = published().await;
    let stale = PortMapping {
        host_port: 9999,
        ..want.clone()
    };
    h.k.add_port_mappings(std::slice::from_ref(&stale))
        .await
        .unwrap();
    assert!(h.run(Key::Firewall).await > 0);
    assert_eq!(h.k.mappings(), vec![want]);
}

/// A ruleset deleted by hand is rebuilt, with every published port.
#[tokio::test]
async fn firewall_key_rebuilds_a_ruleset_deleted_behind_back_with_its_ports() {
    let (h, want) = published().await;
    h.k.delete_firewall().await.unwrap();
    assert!(h.k.firewall().is_none() && h.k.mappings().is_empty());
    assert!(h.run(Key::Firewall).await >= 2, "the rules, then the port");
    assert_eq!(h.k.firewall().unwrap()[0].bridge, "br-web");
    assert_eq!(h.k.mappings(), vec![want]);
    assert_eq!(h.drift(), 1);
}

/// A network's reconcile leaves the ruleset's structure to the firewall key once it matched
/// these very networks (a resync queues every network: ten structure reads in a row), but
/// reads it again when the networks changed: a second network gets its rules from its own
/// reconcile. A ruleset deleted by hand meanwhile is the firewall key's to rebuild.
#[tokio::test]
async fn network_reconcile_reads_the_ruleset_only_when_the_networks_changed() {
    let h = H::new().await;
    let a = h.network("a", "br-a", &["10.1.0.0/24"]).await;
    h.k.delete_firewall().await.unwrap();
    assert_eq!(
        h.run(Key::Network(a.clone())).await,
        0,
        "structure not read"
    );
    assert!(h.k.firewall().is_none());
    assert!(h.run(Key::Firewall).await >= 1);
    assert_eq!(h.k.firewall().unwrap().len(), 1);
    h.network("b", "br-b", &["10.2.0.0/24"]).await;
    let bridges: Vec<String> =
        h.k.firewall()
            .unwrap()
            .into_iter()
            .map(|n| n.bridge)
            .collect();
    assert_eq!(bridges, ["br-a", "br-b"]);
    // Converged: neither key writes.
    assert_eq!(h.run(Key::Network(a)).await, 0);
    assert_eq!(h.run(Key::Firewall).await, 0);
}
