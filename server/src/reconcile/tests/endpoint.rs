//! Endpoints: the veth (host end a bridge port, inside end with the leases and default
//! route), published ports, converge with zero writes, drift, a vanished namespace.
//!
//! Endpoints are made as the API makes them: `Store::connect` settles the lease (and turns
//! the default route off when the namespace already routes through another network), then
//! the endpoint key is reconciled. The network's bridge and the namespace are reconciled
//! first, as the start-up order does.
//!
//! An endpoint's host end is named by weft (`EndpointRow::host_ifname`) and its inside end is
//! the requested `ifname` ("eth0" by default); both carry the endpoint's mark. Published
//! ports are DNAT elements in the fake's port map (`mappings()`), one per host port, pointing
//! at the endpoint's lease.

use super::{H, connect_spec, ip, mark, net, net_spec, tcp};
use crate::{
    kernel::{NsRef, RouteState},
    model::{Phase, PortSpec},
    reconcile::Key,
};

/// On an IPv4-only network both ends have IPv6 off before they first come up: the host end, a
/// bridge port, through `disable_ipv6` (no link-local or multicast route of its own in the
/// host's table); the inside end, named `eth0` like every other, through the address
/// generation mode none over netlink, not /proc.
#[tokio::test]
async fn ipv4_only_endpoint_has_ipv6_off_on_both_ends_before_they_come_up() {
    let h = H::new().await;
    h.network("web", "br-web", &["10.88.0.0/24"]).await;
    h.namespace("ns1").await;
    let before = h.k.calls().len();
    let ep = h.connect("web", "ns1", Vec::new()).await;
    let key = format!("net/ipv6/conf/{}/disable_ipv6", ep.host_ifname);
    assert_eq!(h.k.sysctl(&NsRef::Host, &key).as_deref(), Some("1"));
    assert!(!h.k.addr_gen_none(&NsRef::Host, &ep.host_ifname));
    assert_eq!(
        h.k.sysctl(&h.ns("ns1"), "net/ipv6/conf/eth0/disable_ipv6"),
        None
    );
    assert!(h.k.addr_gen_none(&h.ns("ns1"), "eth0"));
    let host = h.k.link(&NsRef::Host, &ep.host_ifname).unwrap();
    let inside = h.k.link(&h.ns("ns1"), "eth0").unwrap();
    let calls = h.k.calls()[before..].to_vec();
    let at = |c: &str| calls.iter().position(|x| x == c);
    let off = at(&format!("ensure_sysctl {key}")).expect("sysctl written");
    let up = at(&format!("set_link #{}", host.index)).expect("host end set");
    assert!(off < up, "IPv6 off before the port comes up: {calls:?}");
    // The inside end is set twice: first the mode alone, then the rest (up among it).
    let inside_sets: Vec<usize> = calls
        .iter()
        .enumerate()
        .filter(|(_, c)| **c == format!("set_link #{}", inside.index))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(inside_sets.len(), 2, "{calls:?}");
    assert!(host.up && inside.up);
    assert_eq!(h.run(Key::Endpoint(ep.id)).await, 0);
}

/// The addresses weft's IPAM leased (a bridge's gateways, an endpoint's own) are added without
/// duplicate address detection, IPv6 ones usable at once as with Docker; a link's addresses,
/// given by whoever made it, keep it (`ip addr add`'s default).
#[tokio::test]
async fn leased_addresses_skip_duplicate_address_detection_and_a_links_do_not() {
    let h = H::new().await;
    let before = h.k.calls().len();
    h.network("web", "br-web", &["10.88.0.0/24", "fd00:88::/64"])
        .await;
    h.namespace("ns1").await;
    let ep = h.connect("web", "ns1", Vec::new()).await;
    let mut end = super::end("wl0", "");
    end.addresses = vec![net("fd00:99::5/64"), net("10.99.0.5/24")];
    h.link(&super::veth_ends(end, super::end("wl1", ""))).await;
    let adds: Vec<String> = h.k.calls()[before..]
        .iter()
        .filter(|c| c.starts_with("add_address "))
        .cloned()
        .collect();
    let add = |a: &str| {
        adds.iter()
            .find(|c| c.starts_with(&format!("add_address {a} ")))
            .unwrap_or_else(|| panic!("{a} added: {adds:?}"))
            .ends_with(" nodad")
    };
    assert!(add("fd00:88::1/64") && add("10.88.0.1/24"), "{adds:?}");
    assert_eq!(ep.addresses.len(), 2);
    for a in &ep.addresses {
        assert!(add(&a.to_string()), "{a}: {adds:?}");
    }
    assert!(!add("fd00:99::5/64") && !add("10.99.0.5/24"), "{adds:?}");
}

/// The endpoint's veth: host end a port of the bridge, inside end with the lease and a default
/// route.
#[tokio::test]
async fn connect_makes_a_bridge_port_veth_with_the_lease_and_default_route() {
    let h = H::new().await;
    h.network("web", "br-web", &["10.88.0.0/24"]).await;
    h.namespace("ns1").await;
    let ep = h.connect("web", "ns1", Vec::new()).await;
    assert_eq!(ep.addresses.len(), 1);
    assert!(net("10.88.0.0/24").contains(&ep.addresses[0].addr()));
    assert_eq!(ep.addresses[0].prefix_len(), 24);
    let br = h.k.link(&NsRef::Host, "br-web").unwrap();
    let host = h.k.link(&NsRef::Host, &ep.host_ifname).unwrap();
    assert_eq!(host.master, Some(br.index));
    assert!(host.up);
    assert_eq!(host.alias, mark(&ep.id));
    let inside = h.k.link(&h.ns("ns1"), "eth0").unwrap();
    assert_eq!(inside.alias, mark(&ep.id));
    assert!(inside.up);
    assert_eq!(inside.addresses, ep.addresses);
    assert_eq!(
        h.k.routes(&h.ns("ns1"), "eth0"),
        vec![RouteState {
            destination: net("0.0.0.0/0"),
            gateway: Some(ip("10.88.0.1")),
            metric: 0
        }]
    );
    let row = h.store().endpoint_by_id(&ep.id).await.unwrap().unwrap();
    assert_eq!(row.status.phase, Phase::Ready);
    assert_eq!(row.status.observed_generation, row.generation);
    assert_eq!(
        Some(row.observed.mac),
        inside.mac,
        "the inside MAC is recorded"
    );
}

/// A converged endpoint (ports included, from the cache) writes nothing. The whole call log
/// is compared, not just the write count, so a needless rewrite of the same value shows.
#[tokio::test]
async fn converged_endpoint_with_ports_reconciles_with_zero_writes() {
    let h = H::new().await;
    h.network("web", "br-web", &["10.88.0.0/24"]).await;
    h.namespace("ns1").await;
    let ep = h.connect("web", "ns1", vec![tcp(8080, 80)]).await;
    let calls = h.k.calls();
    assert_eq!(h.run(Key::Endpoint(ep.id.clone())).await, 0);
    assert_eq!(h.k.calls(), calls);
    assert_eq!(h.drift(), 0);
    assert_eq!(h.ep_status(&ep.id).await.phase, Phase::Ready);
}

/// A published range becomes one DNAT element per port, shifted in step: host ports
/// 8000-8002 go to container ports 80-82, all with the range's protocol.
#[tokio::test]
async fn published_port_range_maps_each_port_to_the_lease() {
    let h = H::new().await;
    h.network("web", "br-web", &["10.88.0.0/24"]).await;
    h.namespace("ns1").await;
    let range = PortSpec::parse_range("port", "", (8000, 8002), (80, 82), "udp").unwrap();
    let ep = h.connect("web", "ns1", vec![range]).await;
    let dest = ep.addresses[0].addr();
    let got: Vec<(u16, std::net::IpAddr, u16)> =
        h.k.mappings()
            .iter()
            .map(|m| (m.host_port, m.dest, m.dest_port))
            .collect();
    assert_eq!(
        got,
        vec![(8000, dest, 80), (8001, dest, 81), (8002, dest, 82)]
    );
    assert!(
        h.k.mappings()
            .iter()
            .all(|m| m.proto == crate::kernel::firewall::Proto::Udp)
    );
}

/// A requested MAC and address, and the network's MTU, reach the kernel. The MTU applies to
/// both ends of the veth, as it does to the bridge, so no end fragments what another sends.
#[tokio::test]
async fn static_mac_and_network_mtu_are_applied_to_both_ends() {
    let h = H::new().await;
    let mut spec = net_spec("web", "br-web", &["10.88.0.0/24"]);
    spec.mtu = 1450;
    let net_id = h.network_row(&spec).await.id;
    h.run(Key::Network(net_id)).await;
    h.namespace("ns1").await;
    let mut req = connect_spec("web", "ns1", Vec::new());
    req.endpoint.mac = Some("02:42:ac:11:00:99".into());
    req.ipv4 = Some("10.88.0.50".parse().unwrap());
    let ep = h.store().connect(&req, None, false).await.unwrap();
    h.run(Key::Endpoint(ep.id.clone())).await;
    let inside = h.k.link(&h.ns("ns1"), "eth0").unwrap();
    assert_eq!(inside.mac.as_deref(), Some("02:42:ac:11:00:99"));
    assert_eq!(inside.mtu, 1450);
    assert_eq!(inside.addresses, vec![net("10.88.0.50/24")]);
    assert_eq!(h.k.link(&NsRef::Host, &ep.host_ifname).unwrap().mtu, 1450);
}

/// A dual-stack network leases one address per family and routes both by default; the
/// inside end keeps IPv6 (only the host end, a bridge port, has it off).
#[tokio::test]
async fn dual_stack_endpoint_gets_both_leases_and_both_default_routes() {
    let h = H::new().await;
    h.network("ds", "br-ds", &["10.77.0.0/24", "fd00:77::/64"])
        .await;
    h.namespace("ns1").await;
    let ep = h.connect("ds", "ns1", Vec::new()).await;
    assert_eq!(ep.addresses.len(), 2);
    let mut routes = h.k.routes(&h.ns("ns1"), "eth0");
    routes.sort_by_key(|r| r.destination.addr().is_ipv6());
    assert_eq!(
        routes,
        vec![
            RouteState {
                destination: net("0.0.0.0/0"),
                gateway: Some(ip("10.77.0.1")),
                metric: 0
            },
            RouteState {
                destination: net("::/0"),
                gateway: Some(ip("fd00:77::1")),
                metric: 1024
            },
        ]
    );
    assert_eq!(
        h.k.sysctl(&h.ns("ns1"), "net/ipv6/conf/eth0/disable_ipv6"),
        None
    );
    // A dual-stack endpoint keeps its link-local address.
    assert!(!h.k.addr_gen_none(&h.ns("ns1"), "eth0"));
    let port = format!("net/ipv6/conf/{}/disable_ipv6", ep.host_ifname);
    assert_eq!(h.k.sysctl(&NsRef::Host, &port).as_deref(), Some("1"));
    assert_eq!(h.run(Key::Endpoint(ep.id)).await, 0);
}

/// Only the first network of a namespace routes it by default: the store turns the second
/// endpoint's default route off at connect time, so the reconcile has nothing to add.
#[tokio::test]
async fn second_network_of_a_namespace_adds_no_second_default_route() {
    let h = H::new().await;
    h.network("a", "br-a", &["10.1.0.0/24"]).await;
    h.network("b", "br-b", &["10.2.0.0/24"]).await;
    h.namespace("ns1").await;
    h.connect("a", "ns1", Vec::new()).await;
    let mut req = connect_spec("b", "ns1", Vec::new());
    req.endpoint.ifname = "eth1".into();
    let ep = h.store().connect(&req, None, false).await.unwrap();
    h.run(Key::Endpoint(ep.id.clone())).await;
    assert_eq!(h.ep_status(&ep.id).await.phase, Phase::Ready);
    assert!(h.k.routes(&h.ns("ns1"), "eth1").is_empty());
    assert_eq!(h.k.routes(&h.ns("ns1"), "eth0").len(), 1);
}

/// An address flush inside the container (which takes the route too) is undone: two
/// writes, the address and then the route through it, counted as one drift repair.
#[tokio::test]
async fn default_route_removed_behind_back_is_restored_as_drift() {
    let h = H::new().await;
    h.network("web", "br-web", &["10.88.0.0/24"]).await;
    h.namespace("ns1").await;
    let ep = h.connect("web", "ns1", Vec::new()).await;
    // A flush of the addresses takes the route with it.
    let idx = h.k.link(&h.ns("ns1"), "eth0").unwrap().index;
    use crate::kernel::RouteOps;
    for r in h.k.routes(&h.ns("ns1"), "eth0") {
        h.k.del_route(&h.ns("ns1"), idx, &r).await.unwrap();
    }
    h.k.tamper(&h.ns("ns1"), "eth0", |l| l.addresses.clear());
    assert_eq!(h.run(Key::Endpoint(ep.id.clone())).await, 2);
    assert_eq!(h.k.routes(&h.ns("ns1"), "eth0").len(), 1);
    assert_eq!(
        h.k.link(&h.ns("ns1"), "eth0").unwrap().addresses,
        ep.addresses
    );
    assert_eq!(h.drift(), 1);
}

/// A host end taken off the bridge by hand is enslaved again.
#[tokio::test]
async fn host_end_released_from_the_bridge_behind_back_is_a_port_again() {
    let h = H::new().await;
    h.network("web", "br-web", &["10.88.0.0/24"]).await;
    h.namespace("ns1").await;
    let ep = h.connect("web", "ns1", Vec::new()).await;
    h.k.tamper(&NsRef::Host, &ep.host_ifname, |l| l.master = None);
    assert_eq!(h.run(Key::Endpoint(ep.id.clone())).await, 1);
    let br = h.k.link(&NsRef::Host, "br-web").unwrap().index;
    assert_eq!(
        h.k.link(&NsRef::Host, &ep.host_ifname).unwrap().master,
        Some(br)
    );
    assert_eq!(h.drift(), 1);
}

/// A re-created bridge lost its ports; its endpoints are queued and rejoin the new one.
#[tokio::test]
async fn recreated_bridge_requeues_its_endpoints_which_rejoin_it() {
    let h = H::new().await;
    let net = h.network("web", "br-web", &["10.88.0.0/24"]).await;
    h.namespace("ns1").await;
    let ep = h.connect("web", "ns1", Vec::new()).await;
    h.k.remove_behind_back(&NsRef::Host, "br-web");
    let depth = h.ctl.queue_depth();
    h.run(Key::Network(net)).await;
    assert!(
        h.ctl.queue_depth() > depth,
        "the endpoint (and the firewall) are queued again"
    );
    assert_eq!(h.run(Key::Endpoint(ep.id.clone())).await, 1);
    let br = h.k.link(&NsRef::Host, "br-web").unwrap().index;
    assert_eq!(
        h.k.link(&NsRef::Host, &ep.host_ifname).unwrap().master,
        Some(br)
    );
    assert_eq!(h.ep_status(&ep.id).await.phase, Phase::Ready);
}

/// A vanished namespace makes the endpoint wait (Pending), not fail, until it is re-created.
/// The namespace's own key re-creates the file; the endpoint's next step then rebuilds the
/// veth with the same lease and default route.
#[tokio::test]
async fn endpoint_in_a_vanished_namespace_is_pending_until_the_namespace_is_back() {
    let h = H::new().await;
    h.network("web", "br-web", &["10.88.0.0/24"]).await;
    let ns = h.namespace("ns1").await;
    let ep = h.connect("web", "ns1", Vec::new()).await;
    h.k.vanish_namespace(&h.ns_path("ns1"));
    h.run(Key::Endpoint(ep.id.clone())).await;
    let s = h.ep_status(&ep.id).await;
    assert_eq!(s.phase, Phase::Pending);
    assert!(
        s.message.contains("namespace \"ns1\" is not ready yet"),
        "{}",
        s.message
    );
    h.run(Key::Namespace(ns)).await;
    h.run(Key::Endpoint(ep.id.clone())).await;
    assert_eq!(h.ep_status(&ep.id).await.phase, Phase::Ready);
    let inside = h.k.link(&h.ns("ns1"), "eth0").unwrap();
    assert_eq!(inside.addresses, ep.addresses);
    assert_eq!(h.k.routes(&h.ns("ns1"), "eth0").len(), 1);
}

/// A new endpoint's veth is made without reading its two names first (a name taken makes
/// the kernel say EEXIST, and the converge then reads: see the next test); an endpoint seen
/// before is read first. Shown by a read of the inside name that fails: the first converge
/// never makes it, the second meets it.
#[tokio::test]
async fn a_new_endpoint_is_made_without_reading_its_names_first() {
    let h = H::new().await;
    h.network("web", "br-web", &["10.88.0.0/24"]).await;
    h.namespace("ns1").await;
    h.k.fail("get_link", Some("eth0"), nix::errno::Errno::EIO, 1);
    let ep = h.connect("web", "ns1", Vec::new()).await;
    assert_eq!(h.ep_status(&ep.id).await.phase, Phase::Ready);
    h.run(Key::Endpoint(ep.id.clone())).await;
    let s = h.ep_status(&ep.id).await;
    assert!(s.message.contains("get_link eth0 (injected)"), "{s:?}");
    h.run(Key::Endpoint(ep.id.clone())).await;
    assert_eq!(h.ep_status(&ep.id).await.phase, Phase::Ready);
}

/// An unmarked interface holding the inside name is refused and never changed (the guessed
/// create meets EEXIST, and the converge that reads first says what is in the way).
#[tokio::test]
async fn inside_name_held_by_a_foreign_interface_fails_and_is_left_alone() {
    let h = H::new().await;
    h.network("web", "br-web", &["10.88.0.0/24"]).await;
    h.namespace("ns1").await;
    h.k.add_foreign_link(&h.ns("ns1"), "eth0", "dummy");
    let ep = h.connect("web", "ns1", Vec::new()).await;
    let s = h.ep_status(&ep.id).await;
    assert_eq!(s.phase, Phase::Failed);
    assert!(
        s.message
            .contains("\"eth0\" in namespace \"ns1\" exists and is not owned by weft"),
        "{}",
        s.message
    );
    let eth0 = h.k.link(&h.ns("ns1"), "eth0").unwrap();
    assert_eq!(eth0.kind.as_deref(), Some("dummy"));
    assert!(eth0.alias.is_none() && eth0.addresses.is_empty());
    assert!(h.k.link(&NsRef::Host, &ep.host_ifname).is_none());
}

/// The endpoint is reconciled before its network's bridge exists: the first attempt is
/// Pending, and once the network is reconciled the retry converges. Guards a fixed bug: the
/// veth used to be made before the missing master was found, left unmarked, and refused by
/// the retry as foreign.
#[tokio::test]
async fn endpoint_queued_before_its_bridge_converges_once_the_network_is_ready() {
    let h = H::new().await;
    let net = h
        .network_row(&net_spec("web", "br-web", &["10.88.0.0/24"]))
        .await;
    h.namespace("ns1").await;
    let ep = h.connect("web", "ns1", Vec::new()).await;
    assert_eq!(h.ep_status(&ep.id).await.phase, Phase::Pending);
    h.run(Key::Network(net.id)).await;
    h.run(Key::Endpoint(ep.id.clone())).await;
    let s = h.ep_status(&ep.id).await;
    assert_eq!(s.phase, Phase::Ready, "{}", s.message);
}

/// The MAC is desired state (issue 10, item 7): derived from the lease at connect time
/// (Docker's 02:42 and the IPv4 address), and an inside end deleted behind weft's back comes
/// back with the same one, then announces itself to the neighbours (after the reconcile, in
/// the background). A first connect announces nothing: no neighbour knew it.
#[tokio::test]
async fn recreated_inside_end_keeps_its_mac_and_announces_itself() {
    let h = H::new().await;
    h.network("web", "br-web", &["10.88.0.0/24"]).await;
    h.namespace("ns1").await;
    let mut req = connect_spec("web", "ns1", Vec::new());
    req.ipv4 = Some("10.88.0.7".parse().unwrap());
    let ep = h.store().connect(&req, None, false).await.unwrap();
    assert_eq!(ep.mac.as_deref(), Some("02:42:0a:58:00:07"));
    h.run(Key::Endpoint(ep.id.clone())).await;
    let first = h.k.link(&h.ns("ns1"), "eth0").unwrap();
    assert_eq!(first.mac.as_deref(), Some("02:42:0a:58:00:07"));
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(
        !h.k.calls().iter().any(|c| c.starts_with("announce")),
        "{:?}",
        h.k.calls()
    );

    h.k.remove_behind_back(&h.ns("ns1"), "eth0");
    h.run(Key::Endpoint(ep.id.clone())).await;
    let again = h.k.link(&h.ns("ns1"), "eth0").unwrap();
    assert_ne!(again.index, first.index, "re-created");
    assert_eq!(again.mac, first.mac, "with the same MAC");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !h.k.calls().contains(&"announce eth0".to_string()) {
        assert!(std::time::Instant::now() < deadline, "{:?}", h.k.calls());
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// No two endpoints of a network share a MAC: a client's mac_address another endpoint of the
/// network has is ALREADY_EXISTS (naming the holder), and a derived MAC a client took already
/// is passed over for the next candidate. Another network may reuse it.
#[tokio::test]
async fn macs_never_collide_within_a_network() {
    let h = H::new().await;
    h.network("web", "br-web", &["10.88.0.0/24"]).await;
    h.network("db", "br-db", &["10.89.0.0/24"]).await;
    for ns in ["ns1", "ns2", "ns3"] {
        h.namespace(ns).await;
    }
    // ns1 takes, by hand, the MAC 10.88.0.2 would derive.
    let mut req = connect_spec("web", "ns1", Vec::new());
    req.ipv4 = Some("10.88.0.9".parse().unwrap());
    req.endpoint.mac = Some("02:42:0a:58:00:02".into());
    h.store().connect(&req, None, false).await.unwrap();
    let mut req = connect_spec("web", "ns2", Vec::new());
    req.ipv4 = Some("10.88.0.2".parse().unwrap());
    let ep2 = h.store().connect(&req, None, false).await.unwrap();
    let mac2 = ep2.mac.clone().unwrap();
    assert_ne!(mac2, "02:42:0a:58:00:02");
    assert!(mac2.starts_with("02:"), "{mac2}");

    let mut req = connect_spec("web", "ns3", Vec::new());
    req.endpoint.mac = Some(mac2.clone());
    let err = h.store().connect(&req, None, false).await.unwrap_err();
    assert!(
        matches!(&err, crate::store::StoreError::AlreadyExists(m)
            if m.contains("ns2") && m.contains("mac_address")),
        "{err:?}"
    );
    let mut req = connect_spec("db", "ns3", Vec::new());
    req.endpoint.mac = Some(mac2.clone());
    let ep3 = h.store().connect(&req, None, false).await.unwrap();
    assert_eq!(ep3.mac, Some(mac2));
}

/// An endpoint without a MAC (from before weft kept them: migration 0007 could not tell
/// one) gets the derived one from the store, which its reconcile asks first; one with a MAC
/// keeps it.
#[tokio::test]
async fn an_endpoint_from_before_macs_were_kept_gets_one_at_its_next_reconcile() {
    let h = H::new().await;
    h.network("web", "br-web", &["10.88.0.0/24"]).await;
    h.namespace("ns1").await;
    let mut req = connect_spec("web", "ns1", Vec::new());
    req.ipv4 = Some("10.88.0.8".parse().unwrap());
    let ep = h.store().connect(&req, None, false).await.unwrap();
    // As a row that lost its MAC (release_endpoint clears it), with its lease kept.
    let legacy = crate::store::EndpointRow {
        mac: None,
        ..ep.clone()
    };
    assert_eq!(
        h.store().assign_endpoint_mac(&ep).await.unwrap(),
        None,
        "one that has a MAC keeps it"
    );
    h.store().release_endpoint(&ep.id).await.unwrap();
    assert_eq!(
        h.store()
            .assign_endpoint_mac(&legacy)
            .await
            .unwrap()
            .as_deref(),
        Some("02:42:0a:58:00:08")
    );
    let stored = h.store().endpoint_by_id(&ep.id).await.unwrap().unwrap();
    assert_eq!(stored.mac.as_deref(), Some("02:42:0a:58:00:08"));
}

/// Host ports left out come from the range given (the host's ip_local_port_range), a host
/// range with one container port takes one free port of it, fixed ports of the same request
/// are never chosen, and what was chosen is stored in the spec and mapped.
#[tokio::test]
async fn chosen_host_ports_are_free_stored_and_mapped() {
    let h = H::new().await;
    h.network("web", "br-web", &["10.88.0.0/24"]).await;
    for ns in ["ns1", "ns2", "ns3"] {
        h.namespace(ns).await;
    }
    let local = 40000..=40002;
    let eph = PortSpec::parse("port", "", 0, 0, 80, "tcp").unwrap();
    let one_of = PortSpec::parse("port", "", 9000, 9001, 81, "tcp").unwrap();
    let fixed = PortSpec::parse("port", "", 9000, 0, 82, "tcp").unwrap();
    let mut req = connect_spec("web", "ns1", vec![eph.clone(), one_of.clone(), fixed]);
    let a = h
        .store()
        .connect_in(&req, &local, None, false)
        .await
        .unwrap();
    let stored = h
        .store()
        .endpoint_by_names("web", "ns1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.spec.ports, a.spec.ports,
        "the chosen ports are stored"
    );
    let (p0, p1) = (a.spec.ports[0].host_port, a.spec.ports[1].host_port);
    assert!(local.contains(&p0), "{p0}");
    assert_eq!(p1, 9001, "9000 is the request's own fixed port");
    req.namespace = "ns2".into();
    req.endpoint.ports = vec![eph.clone(), eph.clone()];
    let b = h
        .store()
        .connect_in(&req, &local, None, false)
        .await
        .unwrap();
    let mut all = vec![p0, b.spec.ports[0].host_port, b.spec.ports[1].host_port];
    all.sort();
    assert_eq!(all, [40000, 40001, 40002], "three endpoints' picks differ");
    // The range is used up: RESOURCE_EXHAUSTED naming the field, nothing stored.
    req.namespace = "ns3".into();
    req.endpoint.ports = vec![eph];
    let e = h
        .store()
        .connect_in(&req, &local, None, false)
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("published_ports[0].host_port: no free host port left in 40000-40002"),
        "{e}"
    );
    req.endpoint.ports = vec![one_of];
    let e = h
        .store()
        .connect_in(&req, &local, None, false)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("host_port_end"), "{e}");
    assert!(
        h.store()
            .endpoint_by_names("web", "ns3")
            .await
            .unwrap()
            .is_none()
    );
    // The stored spec holds the chosen ports; the reconcile maps them.
    for ep in [&a, &b] {
        h.run(Key::Endpoint(ep.id.clone())).await;
    }
    let mut mapped: Vec<u16> = h.k.mappings().iter().map(|m| m.host_port).collect();
    mapped.sort();
    assert_eq!(mapped, [9000, 9001, 40000, 40001, 40002]);
}

/// The bridge port of an endpoint that publishes ports is in hairpin mode (so it reaches its
/// own published port through a host address): set once, observed after, a converged
/// reconcile writes nothing, and a port put out of hairpin mode under weft is put back. An
/// endpoint without published ports has it off, and is kept so.
#[tokio::test]
async fn endpoint_port_is_in_hairpin_mode_and_drift_is_repaired() {
    use crate::kernel::{LinkChange, LinkOps};
    let h = H::new().await;
    h.network("web", "br-web", &["10.88.0.0/24"]).await;
    h.namespace("ns1").await;
    h.namespace("ns2").await;
    let plain = h.connect("web", "ns2", Vec::new()).await;
    let port = h.k.link(&NsRef::Host, &plain.host_ifname).unwrap();
    assert!(port.master.is_some() && !port.hairpin, "{port:?}");
    let on = LinkChange {
        hairpin: Some(true),
        ..Default::default()
    };
    h.k.set_link(&NsRef::Host, port.index, &on).await.unwrap();
    assert_eq!(
        h.run(Key::Endpoint(plain.id.clone())).await,
        1,
        "put back off"
    );
    assert!(!h.k.link(&NsRef::Host, &plain.host_ifname).unwrap().hairpin);

    let ep = h.connect("web", "ns1", vec![tcp(8080, 80)]).await;
    let port = h.k.link(&NsRef::Host, &ep.host_ifname).unwrap();
    assert!(port.master.is_some() && port.hairpin, "{port:?}");
    assert_eq!(h.run(Key::Endpoint(ep.id.clone())).await, 0, "converged");
    let off = LinkChange {
        hairpin: Some(false),
        ..Default::default()
    };
    h.k.set_link(&NsRef::Host, port.index, &off).await.unwrap();
    assert_eq!(h.run(Key::Endpoint(ep.id.clone())).await, 1, "one repair");
    assert!(h.k.link(&NsRef::Host, &ep.host_ifname).unwrap().hairpin);
    assert_eq!(
        h.run(Key::Endpoint(ep.id.clone())).await,
        0,
        "converged again"
    );
}

/// Every port rule change is one nftables batch: a connect publishing a pairwise range, a
/// chosen port and a port left out adds all its map elements in one `add_port_mappings`;
/// its disconnect removes them in one `del_port_mappings`. No rule is written for a port
/// (rules are per network).
#[tokio::test]
async fn one_port_change_is_one_batch() {
    let h = H::new().await;
    h.network("web", "br-web", &["10.88.0.0/24"]).await;
    h.namespace("ns1").await;
    let count = |prefix: &str| h.k.calls().iter().filter(|c| c.starts_with(prefix)).count();
    let rules = count("sync_firewall");
    let ports = vec![
        PortSpec::parse_range("port", "", (9000, 9009), (90, 99), "tcp").unwrap(),
        PortSpec::parse("port", "", 9100, 9110, 80, "tcp").unwrap(),
        PortSpec::parse("port", "", 0, 0, 81, "udp").unwrap(),
    ];
    let ep = h.connect("web", "ns1", ports).await;
    assert_eq!(h.k.mappings().len(), 12);
    assert_eq!(count("add_port_mappings"), 1, "{:?}", h.k.calls());
    h.store().mark_endpoint_deleting(&ep.id).await.unwrap();
    h.run(Key::Endpoint(ep.id.clone())).await;
    assert!(h.k.mappings().is_empty());
    assert_eq!(count("del_port_mappings"), 1, "{:?}", h.k.calls());
    assert_eq!(
        count("sync_firewall"),
        rules,
        "ports never rebuild the rules"
    );
}

/// An endpoint's status write is sent behind the reconcile (store/behind.rs); one that does
/// not land (here a trigger refuses it) has the endpoint's reconcile queued again, as a
/// failed write had it retried before, and that reconcile writes the status.
#[tokio::test]
async fn a_status_write_that_did_not_land_queues_the_endpoints_reconcile_again() {
    let h = H::new().await;
    h.network("web", "br-web", &["10.88.0.0/24"]).await;
    h.namespace("ns1").await;
    let ep = h.connect_row("web", "ns1", Vec::new()).await;
    h.store()
        .execute_for_tests(crate::store::Store::REFUSE_STATUS)
        .await;
    // What the earlier steps queued (the firewall), handed out and done, so the queue is
    // empty before the endpoint's reconcile.
    while !h.ctl.inner.queue.is_empty() {
        let k = h.ctl.inner.queue.next().await.unwrap();
        assert_ne!(k, Key::Endpoint(ep.id.clone()));
        h.ctl.inner.queue.done(&k);
    }
    h.run(Key::Endpoint(ep.id.clone())).await;
    // A read waits for the write in flight, so the failure is in by then.
    let listed = h.store().list_endpoints(None).await.unwrap();
    assert_eq!(listed[0].status.phase, Phase::Pending);
    assert_eq!(h.ctl.inner.queue.len(), 1);
    h.store()
        .execute_for_tests("DROP TRIGGER refuse_status")
        .await;
    let key = h.ctl.inner.queue.next().await.unwrap();
    assert_eq!(key, Key::Endpoint(ep.id.clone()));
    h.ctl.work(0, key).await;
    let listed = h.store().list_endpoints(None).await.unwrap();
    assert_eq!(listed[0].status.phase, Phase::Ready);
}
