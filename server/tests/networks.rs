//! NetworkService on the real kernel, through the real gRPC socket (issue 3): the default
//! network, automatic subnets, masquerade and internal networks, isolation and the
//! inter-container switch, dual stack and IPv6-only, the nftables ruleset against golden files,
//! the forwarding sysctls, delete and prune leaving nothing behind, the CLI verbs, and a
//! disconnect that answers with the endpoint cut off and reaps its veth in a batch (issue 5)
//! without touching an interface weft does not own or the bridge's MAC.
//!
//! Each test runs a sandboxed weftd (tests/common); those that need an outside world add an
//! "outside" namespace linked to the sandbox host by a veth on 10.250.0.0/24 (tests/common/net.rs).
//! Traffic goes only to addresses these tests assign inside their own namespaces.

mod common;
#[path = "common/net.rs"]
mod net;

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use common::*;
use ipnet::IpNet;
use net::*;
use serde_json::Value;
use weft::v1::{
    ConnectRequest, CreateNetworkRequest, DeleteNetworkRequest, GetNetworkRequest,
    ListNetworksRequest, Network, Phase, PruneNetworksRequest,
};

/// The subnets of a network as parsed CIDRs.
fn subnets_of(n: &Network) -> Vec<IpNet> {
    n.subnets
        .iter()
        .map(|s| s.subnet.parse().expect("subnet"))
        .collect()
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

async fn list_names(c: &weft::Client, selector: &str) -> Vec<String> {
    rpc(c.networks().list_networks(ListNetworksRequest {
        label_selector: selector.into(),
        ..Default::default()
    }))
    .await
    .expect("ListNetworks")
    .networks
    .into_iter()
    .map(|n| n.name)
    .collect()
}

async fn prune(c: &weft::Client, selector: &str) -> Vec<String> {
    let mut d = rpc(c.networks().prune_networks(PruneNetworksRequest {
        label_selector: selector.into(),
        ..Default::default()
    }))
    .await
    .unwrap_or_else(|s| panic!("PruneNetworks {selector:?}: {s:?}"))
    .deleted;
    d.sort();
    d
}

// ---- the default network ----

#[tokio::test(flavor = "multi_thread")]
async fn default_network_exists_at_start_up_and_is_configurable() {
    let sb = Sandbox::new("defnet").await;
    let c = sb.client();
    // Created at start-up; Ready once its bridge is up.
    let mut bridge = get_network(&c, "bridge").await;
    for _ in 0..50 {
        if bridge.status.as_ref().map(|s| s.phase()) == Some(Phase::Ready) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        bridge = get_network(&c, "bridge").await;
    }
    assert_ready("network bridge", bridge.generation, bridge.status.as_ref());
    assert!(bridge.default, "bridge is not marked default: {bridge:?}");
    assert_eq!(bridge.bridge_name, "weft0");
    assert_eq!(subnets_of(&bridge), ["172.17.0.0/16".parse().unwrap()]);
    assert_eq!(bridge.subnets[0].gateway, "172.17.0.1");
    let weft0 = sb.must_link("", "weft0");
    assert_eq!(weft0["linkinfo"]["info_kind"], "bridge", "{weft0}");
    assert!(has_flag(&weft0, "UP"), "weft0 down: {weft0}");
    assert_eq!(ifalias(&weft0), format!("weft:{}", bridge.uid));
    assert_eq!(sb.addrs("", "weft0"), ["172.17.0.1/16"]);
    assert_eq!(list_names(&c, "").await, ["bridge"]);
    // The default network cannot be mistaken for a user's: another network gets another
    // bridge and subnet.
    let other = create_network(
        &c,
        Network {
            name: "other".into(),
            ..Default::default()
        },
    )
    .await;
    assert!(!other.default);
    assert_ne!(other.bridge_name, "weft0");
    assert!(!overlaps(
        &subnets_of(&other)[0],
        &"172.17.0.0/16".parse().unwrap()
    ));

    // --default-bridge and --default-subnet shape it.
    {
        let d = ExtraDaemon::start(
            &sb,
            "cf",
            &[
                "--default-bridge",
                "wdflt",
                "--default-subnet",
                "10.77.0.0/24",
            ],
            |_| {},
        )
        .await;
        let c = d.client();
        let n = get_network(&c, "bridge").await;
        assert!(n.default);
        assert_eq!(n.bridge_name, "wdflt");
        assert_eq!(subnets_of(&n), ["10.77.0.0/24".parse().unwrap()]);
        assert_eq!(n.subnets[0].gateway, "10.77.0.1");
        let mut ok = false;
        for _ in 0..50 {
            if d.link_names().iter().any(|l| l == "wdflt") {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ok, "no bridge wdflt: {:?}", d.link_names());
        assert!(
            !d.link_names().iter().any(|l| l == "weft0"),
            "weft0 exists as well"
        );
    }

    // --no-default-network turns it off.
    {
        let d = ExtraDaemon::start(&sb, "nd", &["--no-default-network"], |_| {}).await;
        let c = d.client();
        let s = expect_code(
            rpc(c.networks().get_network(GetNetworkRequest {
                name: "bridge".into(),
            }))
            .await,
            tonic::Code::NotFound,
        );
        assert!(s.message().contains("bridge"), "{s:?}");
        assert!(list_names(&c, "").await.is_empty());
        // Give a wrongly started reconcile the time to show.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            d.link_names(),
            ["lo"],
            "a daemon without a default network made links"
        );
    }
}

// ---- forwarding sysctls ----

#[tokio::test(flavor = "multi_thread")]
async fn forwarding_is_turned_on_in_the_sandbox_host_only() {
    let real_v4 = real_sysctl("net/ipv4/ip_forward");
    let real_v6 = real_sysctl("net/ipv6/conf/all/forwarding");
    let sb = Sandbox::new("fwd").await;
    {
        let d = ExtraDaemon::start(&sb, "nd", &["--no-default-network"], |ns| {
            // A new namespace inherits the real host's IPv4 settings: on a host where weftd
            // or Docker runs it starts with forwarding on. This test starts from off, so it
            // turns it off itself, in its own namespace (never on the host).
            for key in ["net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"] {
                ok_at(ns, &["sh", "-c", &format!("echo 0 > /proc/sys/{key}")]);
                assert_eq!(sysctl_at(ns, key), "0");
            }
        })
        .await;
        let c = d.client();
        // No network, no reason to forward.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(sysctl_at(&d.ns_path, "net/ipv4/ip_forward"), "0");
        create_network(&c, network("v4", "wf-v4", &["10.236.0.0/24"])).await;
        assert_eq!(sysctl_at(&d.ns_path, "net/ipv4/ip_forward"), "1");
        assert_eq!(
            sysctl_at(&d.ns_path, "net/ipv6/conf/all/forwarding"),
            "0",
            "IPv6 forwarding turned on without an IPv6 network"
        );
        create_network(&c, network("v6", "wf-v6", &["fd00:236::/64"])).await;
        assert_eq!(sysctl_at(&d.ns_path, "net/ipv6/conf/all/forwarding"), "1");
    }
    // The sandbox's own daemon, with its default network.
    assert_eq!(sysctl_at(&sb.ns_path(""), "net/ipv4/ip_forward"), "1");
    drop(sb);
    assert_eq!(
        real_sysctl("net/ipv4/ip_forward"),
        real_v4,
        "the real host's ip_forward changed"
    );
    assert_eq!(
        real_sysctl("net/ipv6/conf/all/forwarding"),
        real_v6,
        "the real host's IPv6 forwarding changed"
    );
}

// ---- automatic subnets ----

#[tokio::test(flavor = "multi_thread")]
async fn automatic_subnets_avoid_other_networks_and_host_routes() {
    let sb = Sandbox::new("autosub").await;
    let _outside = Outside::new(&sb);
    let c = sb.client();
    // A route of the host, in the middle of the pool.
    sb.host_ok(&[
        "ip",
        "route",
        "add",
        "172.18.0.0/16",
        "dev",
        OUTSIDE_HOST_IF,
    ]);
    let host_routes: Vec<IpNet> = sb
        .ip_json("", &["-4", "route", "show"])
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["dst"].as_str())
        .filter(|d| *d != "default")
        .map(|d| {
            if d.contains('/') {
                d.parse().expect("route dst")
            } else {
                format!("{d}/32").parse().expect("route dst")
            }
        })
        .collect();
    assert!(
        host_routes.contains(&"172.18.0.0/16".parse().unwrap()),
        "{host_routes:?}"
    );

    let pool: IpNet = "172.16.0.0/12".parse().unwrap();
    let mut taken: Vec<(String, IpNet)> = vec![("bridge".into(), "172.17.0.0/16".parse().unwrap())];
    for name in ["auto1", "auto2", "auto3"] {
        let n = create_network(
            &c,
            Network {
                name: name.into(),
                ..Default::default()
            },
        )
        .await;
        let subs = subnets_of(&n);
        assert_eq!(subs.len(), 1, "{name}: one IPv4 subnet: {subs:?}");
        let s = subs[0];
        assert!(
            s.addr().is_ipv4() && pool.contains(&s),
            "{name}: {s} is not from the pool"
        );
        for (other, t) in &taken {
            assert!(!overlaps(&s, t), "{name}: {s} overlaps {t} of {other}");
        }
        for r in &host_routes {
            assert!(!overlaps(&s, r), "{name}: {s} overlaps host route {r}");
        }
        // The kernel agrees: the bridge carries the gateway.
        let gw = &n.subnets[0].gateway;
        assert!(
            s.contains(&gw.parse::<IpAddr>().unwrap()),
            "{gw} not in {s}"
        );
        assert_eq!(
            sb.addrs("", &n.bridge_name),
            [format!("{gw}/{}", s.prefix_len())]
        );
        taken.push((name.into(), s));
    }
    // The first free one is the next /16 past the route.
    assert_eq!(taken[1].1, "172.19.0.0/16".parse::<IpNet>().unwrap());

    // A given subnet that overlaps a network is refused, naming it; nothing is made.
    let inside_auto1 = IpNet::new(taken[1].1.addr(), 24).unwrap().trunc();
    for (subnet, holders) in [
        (inside_auto1.to_string(), &["auto1"][..]),
        ("172.17.200.0/24".to_string(), &["bridge"][..]),
        // Overlaps all four: any of them will do.
        (
            "172.0.0.0/8".to_string(),
            &["bridge", "auto1", "auto2", "auto3"][..],
        ),
    ] {
        let s = expect_code(
            rpc(c.networks().create_network(CreateNetworkRequest {
                network: Some(network("clash", "wb-clash", &[&subnet])),
                wait: None,
                ..Default::default()
            }))
            .await,
            tonic::Code::FailedPrecondition,
        );
        assert!(
            holders
                .iter()
                .any(|h| s.message().contains(&format!("{h:?}"))),
            "refusing {subnet}: the message should name one of {holders:?}: {:?}",
            s.message()
        );
    }
    assert!(!list_names(&c, "").await.contains(&"clash".to_string()));
    assert!(
        sb.link("", "wb-clash").is_none(),
        "a refused network left a bridge"
    );

    // With enable_ipv6 and no subnet, an IPv6 one comes from the IPv6 pool as well.
    let n = create_network(
        &c,
        Network {
            name: "auto6".into(),
            enable_ipv6: true,
            ..Default::default()
        },
    )
    .await;
    let subs = subnets_of(&n);
    assert_eq!(subs.len(), 2, "{subs:?}");
    assert!(subs.iter().any(|s| s.addr().is_ipv4() && pool.contains(s)));
    let v6pool: IpNet = "fd5e:f700::/40".parse().unwrap();
    assert!(
        subs.iter()
            .any(|s| s.addr().is_ipv6() && v6pool.contains(s) && s.prefix_len() == 64),
        "{subs:?}"
    );
    for (other, t) in &taken {
        assert!(
            subs.iter().all(|s| !overlaps(s, t)),
            "{subs:?} overlaps {other}"
        );
    }
}

// ---- masquerade and internal networks ----

#[tokio::test(flavor = "multi_thread")]
async fn outbound_traffic_is_masqueraded_and_internal_networks_stay_inside() {
    let sb = Sandbox::new("masq").await;
    let outside = Outside::new(&sb);
    let c = sb.client();
    create_network(&c, network("pub", "wb-pub", &["10.242.0.0/24"])).await;
    create_network(
        &c,
        Network {
            internal: true,
            ..network("int", "wb-int", &["10.243.0.0/24"])
        },
    )
    .await;
    create_network(
        &c,
        Network {
            masquerade: Some(false),
            ..network("nomasq", "wb-nomasq", &["10.244.0.0/24"])
        },
    )
    .await;
    for (ns, net) in [("p", "pub"), ("i", "int"), ("m", "nomasq")] {
        create_ns(&c, ns).await;
        connect(&c, connect_req(net, ns)).await;
    }
    let m_ip = addr_of(&get_network(&c, "nomasq").await.endpoints[0].ipv4_address);

    let _server = EchoServer::start(&outside.path, sa(Ipv4Addr::UNSPECIFIED, 9000));
    let to = sa(OUTSIDE_IP, 9000);

    // Masquerade: the outside sees the host's address on its link.
    let peer = assert_tcp_ok(&sb.ns_path("p"), to, "p -> outside").await;
    assert_eq!(peer, IpAddr::V4(HOST_IP), "p -> outside: not masqueraded");

    // An internal network cannot leave, though its endpoint is up: the host reaches it (the
    // replies are let in; of the host itself it may reach only its resolver, see
    // internal_networks_reach_only_port_53_of_their_own_gateway).
    let i_ip = addr_of(&get_network(&c, "int").await.endpoints[0].ipv4_address).to_string();
    assert!(
        sb.exec_host(&["ping", "-c1", "-W2", &i_ip])
            .status
            .success()
            || sb
                .exec_host(&["ping", "-c1", "-W2", &i_ip])
                .status
                .success(),
        "the host cannot reach i"
    );
    assert_tcp_fails(&sb.ns_path("i"), to, "internal i -> outside").await;

    // Masquerade off: the source stays the endpoint's own (the outside gets a route back).
    outside.ok(&[
        "ip",
        "route",
        "add",
        "10.244.0.0/24",
        "via",
        &HOST_IP.to_string(),
    ]);
    let peer = assert_tcp_ok(&sb.ns_path("m"), to, "m -> outside (masquerade off)").await;
    assert_eq!(peer, m_ip, "masquerade off, yet the source was rewritten");

    // The masqueraded network still works after the others came and went.
    assert_tcp_fails(&sb.ns_path("i"), to, "internal i -> outside, again").await;
    let peer = assert_tcp_ok(&sb.ns_path("p"), to, "p -> outside, again").await;
    assert_eq!(peer, IpAddr::V4(HOST_IP));
}

/// An internal network reaches nothing outside it, not even another network's endpoint
/// through that network's published port (the forward chain once accepted the DNATed
/// connection before it dropped internal traffic). The same port still answers from the
/// outside and from the publishing network's own neighbour.
#[tokio::test(flavor = "multi_thread")]
async fn internal_networks_do_not_reach_published_ports_of_other_networks() {
    let sb = Sandbox::new("intpub").await;
    let outside = Outside::new(&sb);
    let c = sb.client();
    create_network(&c, network("pub", "wb-pub", &["10.247.0.0/24"])).await;
    create_network(
        &c,
        Network {
            internal: true,
            ..network("int", "wb-int", &["10.248.0.0/24"])
        },
    )
    .await;
    for ns in ["web", "nb", "i"] {
        create_ns(&c, ns).await;
    }
    connect(
        &c,
        ConnectRequest {
            published_ports: vec![tcp_port(8080, 7000)],
            ..connect_req("pub", "web")
        },
    )
    .await;
    connect(&c, connect_req("pub", "nb")).await;
    connect(&c, connect_req("int", "i")).await;
    let _server = EchoServer::start(&sb.ns_path("web"), sa(Ipv4Addr::UNSPECIFIED, 7000));

    assert_tcp_ok(
        &outside.path,
        sa(HOST_IP, 8080),
        "outside -> published port",
    )
    .await;
    assert_tcp_ok(
        &sb.ns_path("nb"),
        sa(Ipv4Addr::new(10, 247, 0, 1), 8080),
        "neighbour -> published port by its gateway",
    )
    .await;
    for to in [
        sa(HOST_IP, 8080),
        sa(Ipv4Addr::new(10, 248, 0, 1), 8080),
        sa(Ipv4Addr::new(10, 247, 0, 1), 8080),
    ] {
        assert_tcp_fails(&sb.ns_path("i"), to, "internal i -> published port of pub").await;
    }
    assert_tcp_ok(
        &outside.path,
        sa(HOST_IP, 8080),
        "outside -> published port, again",
    )
    .await;
}

/// An internal network's endpoints reach the host only at their own gateway's port 53
/// (weftd's resolver; listeners this test starts in the sandbox host stand in for it): TCP
/// to another port of the gateway fails, to port 53 connects, over IPv4 and IPv6; the other
/// network's resolver address is out of reach too. Its endpoints still ping each other (v4
/// and v6), and a non-internal network's endpoint reaches the same host ports.
#[tokio::test(flavor = "multi_thread")]
async fn internal_networks_reach_only_port_53_of_their_own_gateway() {
    let sb = Sandbox::new("intdns").await;
    let c = sb.client();
    create_network(
        &c,
        Network {
            internal: true,
            ..network("int", "wb-intd", &["10.249.0.0/24", "fd00:249::/64"])
        },
    )
    .await;
    create_network(&c, network("pub", "wb-pubd", &["10.249.1.0/24"])).await;
    for ns in ["a", "b", "p"] {
        create_ns(&c, ns).await;
    }
    connect(&c, connect_req("int", "a")).await;
    let b = connect(&c, connect_req("int", "b")).await;
    connect(&c, connect_req("pub", "p")).await;
    // The MTU in force: created with 0, the answer says 1500 (what the bridge has).
    assert_eq!(get_network(&c, "pub").await.mtu, 1500);
    let link = sb.host_ok(&["ip", "-o", "link", "show", "wb-pubd"]);
    assert!(link.contains(" mtu 1500 "), "{link}");
    assert_eq!(
        get_network(&c, "int").await.dns_servers,
        ["10.249.0.1", "fd00:249::1"],
        "an internal network has a resolver too"
    );

    // The bridge's IPv6 address must have left DAD before anything binds to it, and so must
    // the endpoints' own: a tentative address is no source, and a query from a link-local
    // one is no query from the subnet.
    wait_for(
        Duration::from_secs(10),
        "no tentative address on wb-intd",
        || {
            sb.host_ok(&["ip", "-6", "addr", "show", "dev", "wb-intd", "tentative"])
                .trim()
                .is_empty()
        },
    )
    .await;
    for ns in ["a", "b"] {
        wait_for(
            Duration::from_secs(10),
            &format!("no tentative address in {ns}"),
            || {
                let out = sb.exec_in(ns, &["ip", "-6", "addr", "show", "tentative"]);
                out.status.success() && out.stdout.is_empty()
            },
        )
        .await;
    }
    let host = sb.host_ns_path();
    let (gw4, gw6, pub_gw) = (
        IpAddr::V4(Ipv4Addr::new(10, 249, 0, 1)),
        IpAddr::V6("fd00:249::1".parse::<Ipv6Addr>().expect("ip")),
        IpAddr::V4(Ipv4Addr::new(10, 249, 1, 1)),
    );
    // Port 9000 on every host address, both families (a dual-stack socket): a service of
    // the host that an internal network must not reach. Port 53 is weftd's own resolver.
    let _server = EchoServer::start(host, sa(Ipv6Addr::UNSPECIFIED, 9000));
    let dig = |ns: &str, server: IpAddr, tcp: bool| {
        let at = format!("@{server}");
        let proto = if tcp { "+tcp" } else { "+notcp" };
        let out = sb.exec_in(
            ns,
            &["dig", "+tries=1", "+time=2", proto, "+short", &at, "b"],
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let b4 = addr_of(&b.ipv4_address).to_string();
    for (server, tcp) in [(gw4, false), (gw4, true), (gw6, false), (gw6, true)] {
        assert_eq!(
            dig("a", server, tcp),
            b4,
            "internal a -> its gateway {server} port 53 (tcp {tcp}): weft's resolver answers"
        );
    }
    let a = sb.ns_path("a");
    assert_tcp_fails(&a, sa(gw4, 9000), "internal a -> its gateway, port 9000").await;
    assert_tcp_fails(
        &a,
        sa(gw6, 9000),
        "internal a -> its IPv6 gateway, port 9000",
    )
    .await;
    for tcp in [false, true] {
        let out = dig("a", pub_gw, tcp);
        assert!(
            out.contains("timed out") || out.contains("no servers could be reached"),
            "internal a reached the other network's resolver {pub_gw} (tcp {tcp}): {out:?}"
        );
    }
    // Within the internal network everything still flows, IPv6 (neighbour discovery) too.
    sb.assert_ping("a", &addr_of(&b.ipv4_address).to_string())
        .await;
    let b6 = addr_of(&b.ipv6_address).to_string();
    assert!(
        ping_within(&sb, "a", &b6, Duration::from_secs(10)).await,
        "internal a cannot ping b over IPv6"
    );

    // A network that is not internal is not touched by the input chain.
    let p = sb.ns_path("p");
    assert_tcp_ok(&p, sa(pub_gw, 9000), "p -> its gateway, port 9000").await;
    assert!(
        dig("p", pub_gw, true).is_empty(),
        "p -> its gateway's port 53 answers (empty: b is not on p's network)"
    );
    let out = sb.exec_in(
        "p",
        &[
            "dig",
            "+tries=1",
            "+time=2",
            "+tcp",
            &format!("@{pub_gw}"),
            "p",
        ],
    );
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.contains("status: NOERROR") && out.contains("10.249.1."),
        "p -> its own resolver over TCP: {out}"
    );
}

// ---- isolation and the inter-container switch ----

#[tokio::test(flavor = "multi_thread")]
async fn endpoints_of_different_networks_cannot_reach_each_other() {
    let sb = Sandbox::new("isonet").await;
    let c = sb.client();
    create_network(&c, network("n1", "wb-n1", &["10.245.0.0/24"])).await;
    create_network(&c, network("n2", "wb-n2", &["10.246.0.0/24"])).await;
    let mut ip = std::collections::BTreeMap::new();
    for (ns, net) in [("a1", "n1"), ("a2", "n1"), ("b1", "n2")] {
        create_ns(&c, ns).await;
        let ep = connect(&c, connect_req(net, ns)).await;
        ip.insert(ns, addr_of(&ep.ipv4_address));
    }
    let _servers: Vec<EchoServer> = ["a1", "a2", "b1"]
        .iter()
        .map(|ns| EchoServer::start(&sb.ns_path(ns), sa(Ipv4Addr::UNSPECIFIED, 7000)))
        .collect();

    // Same network: allowed, and not NATed.
    let peer = assert_tcp_ok(&sb.ns_path("a1"), sa(ip["a2"], 7000), "a1 -> a2 (n1)").await;
    assert_eq!(peer, ip["a1"]);
    // Every server answers the host, so a failure below is the path, not the server.
    for ns in ["a1", "b1"] {
        assert_tcp_ok(&sb.ns_path(""), sa(ip[ns], 7000), &format!("host -> {ns}")).await;
    }
    // Across networks: refused both ways.
    assert_tcp_fails(&sb.ns_path("a1"), sa(ip["b1"], 7000), "a1 (n1) -> b1 (n2)").await;
    assert_tcp_fails(&sb.ns_path("b1"), sa(ip["a1"], 7000), "b1 (n2) -> a1 (n1)").await;
    assert!(!sb.ping("b1", &ip["a2"].to_string()), "b1 pinged a2");
}

/// Asserts that Connect `req` (into namespace "a") is refused with ALREADY_EXISTS, saying
/// to pick another interface name, and that it changed no interface in the scratch host or
/// in "a".
async fn refused_over_a_taken_name(sb: &Sandbox, req: ConnectRequest) {
    let snapshot = || {
        let mut all: Vec<Value> = ["", "a"].iter().flat_map(|ns| sb.links(ns)).collect();
        all.iter_mut().for_each(scrub_volatile);
        all
    };
    // A bridge made just before settles its carrier asynchronously (NO-CARRIER and
    // operstate DOWN until the kernel's link-watch work runs: up to a second later, more
    // when other tests keep RTNL busy): wait until the snapshots agree over 1.2 s, so only
    // the Connect can change what is compared. (Two snapshots 200 ms apart agreed once
    // while both bridges were still waiting for the link-watch.)
    let mut before = snapshot();
    let mut same = 0;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let again = snapshot();
        if again == before {
            same += 1;
            if same == 6 {
                break;
            }
        } else {
            same = 0;
            before = again;
        }
    }
    let refused = expect_code(
        rpc(sb.client().networks().connect(req)).await,
        tonic::Code::AlreadyExists,
    );
    assert!(
        refused.message().contains("pick another interface_name"),
        "{refused:?}"
    );
    assert_eq!(snapshot(), before, "a refused Connect changed interfaces");
}

/// A Connect whose interface name a foreign interface holds in the namespace (made by hand,
/// no weft mark) is refused with ALREADY_EXISTS and changes nothing: the hand-made interface
/// stays as it was, no veth is left in the host or the namespace, and the network lists no
/// endpoint. (The Connect starts making its veth before it looks; the kernel refuses the
/// taken name.) The same namespace then connects under another name and carries traffic.
#[tokio::test(flavor = "multi_thread")]
async fn a_connect_over_a_foreign_interface_name_is_refused_and_changes_nothing() {
    let sb = Sandbox::new("fifname").await;
    let c = sb.client();
    create_network(&c, network("fi", "wb-fi", &["10.247.0.0/24"])).await;
    create_ns(&c, "a").await;
    create_ns(&c, "b").await;
    sb.ok_in("a", &["ip", "link", "add", "eth0", "type", "bridge"]);
    refused_over_a_taken_name(&sb, connect_req("fi", "a")).await;
    assert!(get_network(&c, "fi").await.endpoints.is_empty());

    let a = connect(
        &c,
        ConnectRequest {
            interface_name: "eth1".into(),
            ..connect_req("fi", "a")
        },
    )
    .await;
    connect(&c, connect_req("fi", "b")).await;
    sb.assert_ping("b", &addr_of(&a.ipv4_address).to_string())
        .await;
    let hand = sb.must_link("a", "eth0");
    assert_eq!(hand["linkinfo"]["info_kind"], "bridge", "{hand}");
    assert!(hand["ifalias"].is_null(), "{hand}");
}

/// A Connect whose interface name is another interface's *alternative* name in the namespace
/// (`ip link property add ... altname eth0`, which the namespace's listing of interfaces
/// leaves out, so the look before the transaction finds the name free) is still refused with
/// ALREADY_EXISTS and changes nothing: the kernel refuses the veth's create, and the Connect,
/// told so after its commit, takes the endpoint back before it answers. Its request id and its
/// address are free again: the Connect under another name that reuses the id gets the
/// network's first address, and carries traffic.
#[tokio::test(flavor = "multi_thread")]
async fn a_connect_over_an_alternative_interface_name_is_refused_and_changes_nothing() {
    let sb = Sandbox::new("faltname").await;
    let c = sb.client();
    create_network(&c, network("fa", "wb-fa", &["10.247.1.0/24"])).await;
    create_ns(&c, "a").await;
    create_ns(&c, "b").await;
    sb.ok_in("a", &["ip", "link", "add", "hand0", "type", "bridge"]);
    sb.ok_in(
        "a",
        &[
            "ip", "link", "property", "add", "dev", "hand0", "altname", "eth0",
        ],
    );
    let hand = sb.must_link("a", "hand0");
    assert!(
        hand["altnames"]
            .as_array()
            .is_some_and(|n| n.iter().any(|n| n == "eth0")),
        "the kernel took the alternative name: {hand}"
    );

    refused_over_a_taken_name(
        &sb,
        ConnectRequest {
            request_id: "altname-once".into(),
            ..connect_req("fa", "a")
        },
    )
    .await;
    assert!(get_network(&c, "fa").await.endpoints.is_empty());

    let a = connect(
        &c,
        ConnectRequest {
            interface_name: "eth1".into(),
            request_id: "altname-once".into(),
            ..connect_req("fa", "a")
        },
    )
    .await;
    assert_eq!(
        addr_of(&a.ipv4_address).to_string(),
        "10.247.1.2",
        "the refused Connect's address was not given back"
    );
    let b = connect(&c, connect_req("fa", "b")).await;
    sb.assert_ping("b", &addr_of(&a.ipv4_address).to_string())
        .await;
    sb.assert_ping("a", &addr_of(&b.ipv4_address).to_string())
        .await;
    let hand = sb.must_link("a", "hand0");
    assert!(hand["ifalias"].is_null(), "{hand}");
}

#[tokio::test(flavor = "multi_thread")]
async fn icc_off_blocks_endpoints_of_a_network_but_not_its_gateway() {
    let sb = Sandbox::new("icc").await;
    let c = sb.client();
    let net = create_network(
        &c,
        Network {
            enable_icc: Some(false),
            ..network("quiet", "wb-quiet", &["10.247.0.0/24"])
        },
    )
    .await;
    assert_eq!(net.enable_icc, Some(false));
    let gw: IpAddr = net.subnets[0].gateway.parse().unwrap();
    let mut ip = std::collections::BTreeMap::new();
    for ns in ["q1", "q2"] {
        create_ns(&c, ns).await;
        let ep = connect(&c, connect_req("quiet", ns)).await;
        ip.insert(ns, addr_of(&ep.ipv4_address));
    }
    let _servers: Vec<EchoServer> = ["q1", "q2"]
        .iter()
        .map(|ns| EchoServer::start(&sb.ns_path(ns), sa(Ipv4Addr::UNSPECIFIED, 7000)))
        .collect();
    // A listener in the sandbox host on the gateway address.
    let _gw_server = EchoServer::start(&sb.ns_path(""), sa(gw, 7001));

    for (from, to) in [("q1", "q2"), ("q2", "q1")] {
        let peer = assert_tcp_ok(&sb.ns_path(from), sa(gw, 7001), &format!("{from} -> gw")).await;
        assert_eq!(peer, ip[from]);
        assert!(
            ping_within(&sb, from, &gw.to_string(), Duration::from_secs(3)).await,
            "{from} cannot ping its gateway"
        );
        assert_tcp_ok(&sb.ns_path(""), sa(ip[to], 7000), &format!("host -> {to}")).await;
        assert_tcp_fails(
            &sb.ns_path(from),
            sa(ip[to], 7000),
            &format!("{from} -> {to} with icc off"),
        )
        .await;
    }
    assert!(!sb.ping("q1", &ip["q2"].to_string()), "q1 pinged q2");
}

// ---- IPv6 ----

#[tokio::test(flavor = "multi_thread")]
async fn dual_stack_and_ipv6_only_endpoints_reach_their_ipv6_gateway() {
    let sb = Sandbox::new("dual").await;
    let c = sb.client();
    let dual = create_network(
        &c,
        network("dual", "wb-dual", &["10.252.0.0/24", "fd00:252::/64"]),
    )
    .await;
    let v6only = create_network(&c, network("six", "wb-six", &["fd00:253::/64"])).await;
    create_network(&c, network("four", "wb-four", &["10.251.0.0/24"])).await;
    assert!(dual.enable_ipv6 && v6only.enable_ipv6);
    assert_eq!(
        sb.addrs("", "wb-dual"),
        ["10.252.0.1/24", "fd00:252::1/64"],
        "bridge addresses"
    );

    let mut eps = std::collections::BTreeMap::new();
    for (ns, net) in [
        ("d1", "dual"),
        ("d2", "dual"),
        ("s1", "six"),
        ("s2", "six"),
        ("f1", "four"),
    ] {
        create_ns(&c, ns).await;
        eps.insert(ns, connect(&c, connect_req(net, ns)).await);
    }
    // Dual stack: one address of each family, in the kernel too, and a default route of each
    // via the gateways.
    let d1 = &eps["d1"];
    assert_eq!(d1.ipv4_gateway, "10.252.0.1");
    assert_eq!(d1.ipv6_gateway, "fd00:252::1");
    let v4: IpNet = d1.ipv4_address.parse().unwrap();
    let v6: IpNet = d1.ipv6_address.parse().unwrap();
    assert!("10.252.0.0/24".parse::<IpNet>().unwrap().contains(&v4));
    assert!("fd00:252::/64".parse::<IpNet>().unwrap().contains(&v6));
    let mut want = vec![d1.ipv4_address.clone(), d1.ipv6_address.clone()];
    want.sort();
    assert_eq!(sb.addrs("d1", "eth0"), want);
    let routes = sb.routes("d1");
    for gw in ["10.252.0.1", "fd00:252::1"] {
        assert!(
            routes
                .iter()
                .any(|r| r["dst"] == "default" && r["gateway"] == gw),
            "no default route via {gw}: {routes:?}"
        );
    }
    // IPv6-only: no IPv4 at all.
    let s1 = &eps["s1"];
    assert!(
        s1.ipv4_address.is_empty() && s1.ipv4_gateway.is_empty(),
        "{s1:?}"
    );
    assert_eq!(s1.ipv6_gateway, "fd00:253::1");
    assert_eq!(sb.addrs("s1", "eth0"), [s1.ipv6_address.as_str()]);

    // The leased IPv6 addresses and the gateways skip duplicate address detection (IPAM made
    // them unique), as Docker's do: never tentative, so usable the moment the Connect is
    // answered. With it each stayed tentative for a second or two (no source, no
    // destination), and a gateway on a bridge with no port up until one came up.
    let v6_flags = |ns: &str, dev: &str, ip: &str| {
        let v = sb.ip_json(ns, &["-6", "addr", "show", "dev", dev]);
        let info = v[0]["addr_info"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["local"] == ip)
            .cloned()
            .unwrap_or_else(|| panic!("{ip} on {dev} in {ns:?}: {v}"));
        (info.get("tentative").is_some(), info["nodad"] == true)
    };
    for (ns, ep) in &eps {
        if !ep.ipv6_address.is_empty() {
            let ip = addr_of(&ep.ipv6_address).to_string();
            assert_eq!(v6_flags(ns, "eth0", &ip), (false, true), "{ns}: {ip}");
        }
    }
    for (bridge, gw) in [("wb-dual", "fd00:252::1"), ("wb-six", "fd00:253::1")] {
        assert_eq!(v6_flags("", bridge, gw), (false, true), "{bridge}: {gw}");
    }
    // A ping to each IPv6 gateway right after the Connects is answered within 0.8 s (two echo
    // requests 0.4 s apart; detection kept an address tentative for at least 1 s), and so is
    // the IPv4 one.
    let ping_at_once = |ns: &str, gw: &str| {
        (0..2).any(|_| {
            sb.exec_in(ns, &["ping", "-c1", "-W0.4", gw])
                .status
                .success()
        })
    };
    for (ns, gw) in [("d1", "fd00:252::1"), ("s1", "fd00:253::1")] {
        assert!(
            ping_at_once(ns, gw),
            "{ns} cannot ping its IPv6 gateway {gw} at once: addresses {:?}",
            sb.ip_json(ns, &["addr", "show", "dev", "eth0"])
        );
    }
    sb.assert_ping("d1", "10.252.0.1").await;

    // TCP over IPv6 between endpoints of one network, and masquerade does not get in the way.
    let _srv = EchoServer::start(&sb.ns_path("s2"), sa(Ipv6Addr::UNSPECIFIED, 7000));
    let s2: IpAddr = addr_of(&eps["s2"].ipv6_address);
    let peer = assert_tcp_ok(&sb.ns_path("s1"), sa(s2, 7000), "s1 -> s2 over IPv6").await;
    assert_eq!(peer, addr_of(&s1.ipv6_address));
    let _srv4 = EchoServer::start(&sb.ns_path("d2"), sa(Ipv6Addr::UNSPECIFIED, 7000));
    let d2 = &eps["d2"];
    for addr in [&d2.ipv4_address, &d2.ipv6_address] {
        assert_tcp_ok(&sb.ns_path("d1"), sa(addr_of(addr), 7000), "d1 -> d2").await;
    }
    // Isolation holds over IPv6 too.
    assert_tcp_fails(&sb.ns_path("d1"), sa(s2, 7000), "d1 (dual) -> s2 (six)").await;

    // The bridge ports carried those IPv6 frames with IPv6 off on themselves: no address of
    // their own, not even a link-local one (so no routes in the host's table), on an
    // IPv4-only network too. Dual-stack and IPv6-only inside ends keep their link-local
    // addresses beside the leased ones.
    let inet6 = |ns: &str, dev: &str| -> Vec<String> {
        let v = sb.ip_json(ns, &["addr", "show", "dev", dev]);
        v[0]["addr_info"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["family"] == "inet6")
            .map(|a| a["local"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    for bridge in ["wb-dual", "wb-six", "wb-four"] {
        let ports = sb.ip_json("", &["link", "show", "master", bridge]);
        let ports = ports.as_array().expect("a list of ports");
        assert!(!ports.is_empty(), "{bridge} has no ports");
        for p in ports {
            let port = p["ifname"].as_str().expect("ifname");
            assert_eq!(
                inet6("", port),
                Vec::<String>::new(),
                "port {port} of {bridge}"
            );
        }
    }
    for ns in ["d1", "s1"] {
        assert!(
            inet6(ns, "eth0").iter().any(|a| a.starts_with("fe80:")),
            "{ns}'s eth0 has no link-local address: {:?}",
            inet6(ns, "eth0")
        );
    }
    // The IPv4-only endpoint's eth0 is quiet on IPv6: address generation mode none, set
    // before it came up, so no link-local address, no DAD probe and no router solicitation
    // (which its bridge would flood to every port). The dual-stack one solicits, as the
    // kernel does once its link-local address is ready: the counter is live.
    let mode = sb.ip_json("f1", &["-d", "link", "show", "dev", "eth0"]);
    assert_eq!(mode[0]["inet6_addr_gen_mode"], "none", "{mode}");
    assert_eq!(inet6("f1", "eth0"), Vec::<String>::new(), "f1's eth0");
    let sent = |ns: &str, counter: &str| -> u64 {
        let text = sb.ok_in(ns, &["cat", "/proc/net/dev_snmp6/eth0"]);
        text.lines()
            .find_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some(counter)).then(|| w.next()?.parse().ok())?
            })
            .unwrap_or_else(|| panic!("no {counter} in {ns}'s dev_snmp6: {text}"))
    };
    wait_for(
        Duration::from_secs(10),
        "d1's first router solicitation",
        || sent("d1", "Icmp6OutRouterSolicits") > 0,
    )
    .await;
    for counter in ["Icmp6OutRouterSolicits", "Icmp6OutNeighborSolicits"] {
        assert_eq!(sent("f1", counter), 0, "f1's eth0 sent {counter}");
    }
    sb.assert_ping("f1", "10.251.0.1").await;
}

// ---- the ruleset against golden files ----

/// One option combination: the network and, optionally, an endpoint with static addresses
/// and published ports (so the maps hold elements).
struct Combo {
    name: &'static str,
    net: Network,
    endpoint: Option<weft::v1::ConnectRequest>,
}

fn combos() -> Vec<Combo> {
    let ep = |net: &str, v4: &str, v6: &str| weft::v1::ConnectRequest {
        ipv4_address: v4.into(),
        ipv6_address: v6.into(),
        published_ports: vec![
            tcp_port(8080, 80),
            weft::v1::PublishedPort {
                protocol: "udp".into(),
                ..tcp_port(5353, 53)
            },
        ],
        ..connect_req(net, "e")
    };
    vec![
        Combo {
            name: "default",
            net: network("gdef", "wg-def", &["10.248.0.0/24"]),
            endpoint: Some(ep("gdef", "10.248.0.10", "")),
        },
        Combo {
            name: "internal",
            net: Network {
                internal: true,
                ..network("gint", "wg-int", &["10.248.1.0/24"])
            },
            endpoint: None,
        },
        Combo {
            name: "icc_off",
            net: Network {
                enable_icc: Some(false),
                ..network("gicc", "wg-noicc", &["10.248.2.0/24"])
            },
            endpoint: None,
        },
        Combo {
            name: "no_masquerade",
            net: Network {
                masquerade: Some(false),
                ..network("gnomasq", "wg-nomasq", &["10.248.3.0/24"])
            },
            endpoint: None,
        },
        Combo {
            name: "dual_stack",
            net: network("gdual", "wg-dual", &["10.248.4.0/24", "fd00:248:4::/64"]),
            endpoint: Some(ep("gdual", "10.248.4.10", "fd00:248:4::10")),
        },
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn nftables_ruleset_matches_golden_files() {
    let sb = Sandbox::new("golden").await;
    let c = sb.client();
    create_ns(&c, "e").await;
    // Only the default network: the baseline every combination returns to.
    wait_for(Duration::from_secs(5), "weft0", || {
        sb.link("", "weft0").is_some()
    })
    .await;
    let baseline = ruleset(&sb);
    assert_golden("baseline.json", &baseline);
    assert_marked_tables(&sb, false);
    for combo in combos() {
        let name = combo.net.name.clone();
        create_network(&c, combo.net).await;
        if let Some(req) = combo.endpoint {
            connect(&c, req).await;
        }
        assert_golden(&format!("{}.json", combo.name), &ruleset(&sb));
        assert_marked_tables(&sb, combo.name == "icc_off");
        if get_network(&c, &name).await.endpoints.len() == 1 {
            disconnect(&c, &name, "e").await;
        }
        delete_network(&c, &name).await;
        let after = ruleset(&sb);
        assert!(
            after == baseline,
            "{}: deleting the network did not restore the baseline ruleset:\n{}",
            combo.name,
            json_diff(&baseline, &after)
        );
    }
}

// ---- delete and prune ----

#[tokio::test(flavor = "multi_thread")]
async fn delete_and_prune_leave_nothing_behind() {
    let sb = Sandbox::new("prune").await;
    let c = sb.client();
    let labelled = |name: &str, bridge: &str, subnet: &str, label: Option<&str>| Network {
        labels: label
            .map(|v| [("prune".to_string(), v.to_string())].into())
            .unwrap_or_default(),
        ..network(name, bridge, &[subnet])
    };
    let nets = [
        labelled("keep", "wp-keep", "10.233.0.0/24", Some("yes")),
        labelled("p1", "wp-p1", "10.233.1.0/24", Some("yes")),
        labelled("p2", "wp-p2", "10.233.2.0/24", Some("yes")),
        labelled("other", "wp-other", "10.233.3.0/24", Some("no")),
        labelled("del", "wp-del", "fd00:233::/64", None),
    ];
    for n in nets {
        create_network(&c, n).await;
    }
    let mut port = 8000;
    for (ns, net) in [("e1", "keep"), ("e2", "p2"), ("e3", "del")] {
        create_ns(&c, ns).await;
        port += 1;
        let mut req = connect_req(net, ns);
        req.published_ports = vec![tcp_port(port, 80)];
        connect(&c, req).await;
    }
    assert_eq!(host_veths(&sb).len(), 3);
    assert_eq!(map_elems(&sb, "dnat4_any").len(), 2);
    assert_eq!(map_elems(&sb, "dnat6_any").len(), 1);
    let keep = get_network(&c, "keep").await;
    assert_eq!(
        (keep.usage[0].leased, keep.usage[0].capacity),
        (1, 253),
        "{:?}",
        keep.usage
    );

    // A network with endpoints cannot go.
    let s = expect_code(
        rpc(c.networks().delete_network(DeleteNetworkRequest {
            name: "del".into(),
            wait: None,
            ..Default::default()
        }))
        .await,
        tonic::Code::FailedPrecondition,
    );
    assert!(
        s.message().contains("e3"),
        "should name the endpoint: {s:?}"
    );
    assert!(
        sb.link("", "wp-del").is_some(),
        "a refused delete removed the bridge"
    );
    disconnect(&c, "del", "e3").await;
    sb.assert_disconnected("e3").await;
    assert_eq!(get_network(&c, "del").await.usage[0].leased, 0);
    assert!(map_elems(&sb, "dnat6_any").is_empty());
    delete_network(&c, "del").await;
    assert!(
        sb.link("", "wp-del").is_none(),
        "DeleteNetwork left the bridge"
    );
    expect_code(
        rpc(c
            .networks()
            .get_network(GetNetworkRequest { name: "del".into() }))
        .await,
        tonic::Code::NotFound,
    );

    // Prune by label: p1 (unused) and p2 (once disconnected), not keep (in use), not other
    // (another label), not the default network.
    disconnect(&c, "p2", "e2").await;
    assert_eq!(prune(&c, "prune=yes").await, ["p1", "p2"]);
    assert_eq!(list_names(&c, "").await, ["bridge", "keep", "other"]);
    for b in ["wp-p1", "wp-p2"] {
        assert!(sb.link("", b).is_none(), "prune left bridge {b}");
    }
    assert!(sb.link("", "wp-keep").is_some());
    assert_eq!(prune(&c, "prune=yes").await, Vec::<String>::new());

    // Everything else: keep once empty, other; never the default network.
    disconnect(&c, "keep", "e1").await;
    assert_eq!(get_network(&c, "keep").await.usage[0].leased, 0);
    assert_eq!(prune(&c, "").await, ["keep", "other"]);
    assert_eq!(list_names(&c, "").await, ["bridge"]);

    // Nothing left: no bridge but weft0, no endpoint veth, no lease, no map element, no
    // bridge in the firewall's sets.
    let bridges: Vec<String> = sb
        .links("")
        .iter()
        .filter(|l| l["linkinfo"]["info_kind"] == "bridge")
        .filter_map(|l| l["ifname"].as_str().map(str::to_string))
        .collect();
    assert_eq!(bridges, ["weft0"]);
    assert!(host_veths(&sb).is_empty(), "{:?}", host_veths(&sb));
    for ns in ["e1", "e2", "e3"] {
        assert_eq!(sb.link_names(ns), ["lo"], "{ns} kept an interface");
    }
    assert!(dnat_elems(&sb).is_empty(), "{:?}", dnat_elems(&sb));
    let in_set: Vec<String> = map_elems(&sb, "bridges")
        .iter()
        .filter_map(|e| e.as_str().map(str::to_string))
        .collect();
    assert_eq!(in_set, ["weft0"]);
    let bridge = get_network(&c, "bridge").await;
    assert!(bridge.endpoints.is_empty() && bridge.usage[0].leased == 0);
    // The addresses are free again: a new network on the same subnet takes them.
    create_network(&c, network("again", "wp-again", &["10.233.0.0/24"])).await;
    let ep = connect(&c, connect_req("again", "e1")).await;
    assert!(ep.ipv4_address.starts_with("10.233.0."), "{ep:?}");
}

// ---- the CLI ----

fn cli_ok(sb: &Sandbox, args: &[&str]) -> String {
    let out = sb.weft_cli(args);
    assert!(
        out.status.success(),
        "weft {args:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_network_verbs_work_end_to_end() {
    let sb = Sandbox::new("netcli").await;
    let c = sb.client();
    cli_ok(
        &sb,
        &[
            "network",
            "create",
            "clinet",
            "--subnet",
            "10.249.0.0/24",
            "--gateway",
            "10.249.0.254",
            "--label",
            "t=cli",
        ],
    );
    cli_ok(&sb, &["ns", "create", "y"]);
    cli_ok(&sb, &["network", "connect", "clinet", "y", "-p", "8080:80"]);

    let out = cli_ok(&sb, &["network", "inspect", "clinet", "--format", "json"]);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let n = &v[0];
    assert_eq!(n["name"], "clinet", "{v}");
    assert_eq!(n["labels"]["t"], "cli", "{v}");
    assert_eq!(n["subnets"][0]["subnet"], "10.249.0.0/24", "{v}");
    assert_eq!(n["subnets"][0]["gateway"], "10.249.0.254", "{v}");
    assert_eq!(n["status"]["phase"], "PHASE_READY", "{v}");
    let ep = &n["endpoints"][0];
    assert_eq!(ep["namespace"], "y", "{v}");
    assert_eq!(ep["ipv4Gateway"], "10.249.0.254", "{v}");
    let port = &ep["publishedPorts"][0];
    assert_eq!(
        (&port["hostPort"], &port["containerPort"], &port["protocol"]),
        (&Value::from(8080), &Value::from(80), &Value::from("tcp")),
        "{v}"
    );
    let y_addr = ep["ipv4Address"]
        .as_str()
        .expect("ipv4_address")
        .to_string();
    assert!(
        "10.249.0.0/24"
            .parse::<IpNet>()
            .unwrap()
            .contains(&addr_of(&y_addr)),
        "{y_addr}"
    );
    assert_ne!(addr_of(&y_addr).to_string(), "10.249.0.254");
    // uint64 is a string in proto3 JSON.
    assert_eq!(n["usage"][0]["leased"], "1", "{v}");

    // The kernel: the bridge has the gateway given, y the address and the default route.
    let bridge = n["bridgeName"].as_str().expect("bridgeName").to_string();
    assert_eq!(sb.addrs("", &bridge), ["10.249.0.254/24"]);
    assert_eq!(sb.addrs("y", "eth0"), [y_addr.as_str()]);
    assert!(
        sb.routes("y")
            .iter()
            .any(|r| r["dst"] == "default" && r["gateway"] == "10.249.0.254"),
        "{:?}",
        sb.routes("y")
    );
    // The published port answers from the host, on the gateway address.
    let _srv = EchoServer::start(&sb.ns_path("y"), sa(Ipv4Addr::UNSPECIFIED, 80));
    let gw: IpAddr = "10.249.0.254".parse().unwrap();
    assert_tcp_ok(
        &sb.ns_path(""),
        sa(gw, 8080),
        "host -> gateway:8080 (weft -p)",
    )
    .await;

    // `weft ns create x --network bridge`: Docker's bridge mode, on the default network.
    cli_ok(&sb, &["ns", "create", "x", "--network", "bridge"]);
    let def = get_network(&c, "bridge").await;
    let x = def
        .endpoints
        .iter()
        .find(|e| e.namespace == "x")
        .unwrap_or_else(|| panic!("x is not on the default network: {def:?}"));
    assert!(
        "172.17.0.0/16"
            .parse::<IpNet>()
            .unwrap()
            .contains(&addr_of(&x.ipv4_address)),
        "{x:?}"
    );
    assert_eq!(sb.addrs("x", "eth0"), [x.ipv4_address.as_str()]);
    sb.assert_ping("x", "172.17.0.1").await;

    // rm refuses while y is connected, and says why.
    let out = sb.weft_cli(&["network", "rm", "clinet"]);
    assert!(!out.status.success(), "rm with an endpoint succeeded");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("endpoint") && err.contains('y'), "{err}");
    cli_ok(&sb, &["network", "disconnect", "clinet", "y"]);
    sb.assert_disconnected("y").await;
    assert_eq!(cli_ok(&sb, &["network", "rm", "clinet"]).trim(), "clinet");
    assert!(
        sb.link("", &bridge).is_none(),
        "weft network rm left {bridge}"
    );
    assert_eq!(cli_ok(&sb, &["network", "ls", "-q"]).trim(), "bridge");
}

// ---- disconnect: cut off at once, veths deleted in batches behind the answer ----

/// The first of the 16 interface groups weft's reaper deletes ("WEFT";
/// `weftd::reconcile::RETIRED_GROUP`).
const RETIRED_GROUP: u64 = 0x5745_4654;

/// `ip -j -d link` reports a group as a name ("default") or a number.
fn group_of(link: &Value) -> String {
    link["group"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| link["group"].to_string())
}

/// `weft_reaper_host_dumps_total` from weftd's metrics endpoint at `addr`.
fn reaper_dumps(sb: &Sandbox, addr: &str) -> u64 {
    sb.metrics(addr, &["weft_reaper_host_dumps_total"])[0] as u64
}

/// Adds a bridge `wforeign` weft does not own (down, no mark) to the host and puts it in
/// interface group `group` (one of weft's retired groups).
fn add_foreign_in_group(sb: &Sandbox, group: u64) {
    sb.host_ok(&["ip", "link", "add", "wforeign", "type", "bridge"]);
    sb.host_ok(&["ip", "link", "set", "wforeign", "group", &group.to_string()]);
}

/// Adds a bridge `wforeign` weft does not own (down, no mark) to the host and puts it in
/// weft's first retired group.
fn add_foreign_in_weft_group(sb: &Sandbox) {
    add_foreign_in_group(sb, RETIRED_GROUP);
}

/// A sandbox serving metrics at `metrics`, with network `net` (bridge `bridge`, `subnet`)
/// and namespaces `names`, for a burst of disconnects.
async fn burst_sandbox(
    tag: &str,
    metrics: &str,
    (net, bridge, subnet): (&str, &str, &str),
    names: &[String],
) -> (Sandbox, weft::Client) {
    // Debug lines whatever RUST_LOG says: a test reads the reaper's.
    let sb = Sandbox::builder(tag)
        .args(&["--metrics", metrics])
        .env("RUST_LOG", "info,weftd=debug")
        .start()
        .await;
    let c = sb.client();
    create_network(&c, network(net, bridge, &[subnet])).await;
    for ns in names {
        create_ns(&c, ns).await;
    }
    (sb, c)
}

/// Connects namespaces `names` to `net`, then disconnects them all at once (a burst the
/// reaper takes in batches of more than a few: group deletes) and waits until each is gone
/// from the kernel.
async fn burst(sb: &Sandbox, c: &weft::Client, net: &str, names: &[String]) {
    for ns in names {
        connect(c, connect_req(net, ns)).await;
    }
    let calls = names.iter().map(|ns| {
        let c = c.clone();
        let (net, ns) = (net.to_string(), ns.clone());
        async move { disconnect(&c, &net, &ns).await }
    });
    futures::future::join_all(calls).await;
    for ns in names {
        sb.assert_disconnected(ns).await;
    }
}

/// A burst of disconnects is reaped as group deletes, each after a dump of every host
/// interface (`weft_reaper_host_dumps_total`) that shows the group holds only weft's veths.
/// The dump cannot be left to the netlink monitor: an interface that is down joins a group
/// without any notification (the kernel announces a group change only on an interface that
/// is up). Here a down bridge weft does not own joins weft's group that way, and survives.
#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_disconnects_spares_a_down_interface_that_joined_the_group_unheard() {
    const METRICS: &str = "127.0.0.1:9466";
    let names: Vec<String> = (0..24).map(|i| format!("b{i}")).collect();
    let net = ("rl", "wb-rl", "10.246.0.0/24");
    let (sb, c) = burst_sandbox("reapdown", METRICS, net, &names).await;
    add_foreign_in_weft_group(&sb);
    // Bursts until a batch was large enough to be checked with a dump before a group delete
    // (a burst may come apart into batches of a few, deleted one by one by name, on a loaded
    // machine); the dump finds the bridge, and the reaper deletes its own one by one.
    let mut rounds = 0;
    while reaper_dumps(&sb, METRICS) == 0 {
        rounds += 1;
        assert!(
            rounds <= 5,
            "no batch was checked for a group delete in 5 rounds:\n{}",
            sb.log()
        );
        burst(&sb, &c, "rl", &names).await;
        assert!(host_veths(&sb).is_empty(), "{:?}", host_veths(&sb));
        assert!(
            sb.link("", "wforeign").is_some(),
            "the reaper deleted an interface it does not own"
        );
    }
}

/// A burst of more than one chunk (128 veths: `weftd::reconcile::REAP_CHUNK`) fills two of
/// weft's retired groups, and each goes with a group delete of its own after one dump; a down
/// bridge weft does not own, put unheard into the second group, spares that group only:
/// weft's members of it go one by one, the bridge stays.
#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_more_than_a_chunk_is_reaped_group_by_group() {
    const METRICS: &str = "127.0.0.1:9468";
    let names: Vec<String> = (0..144).map(|i| format!("k{i}")).collect();
    let net = ("rc", "wb-rc", "10.245.0.0/24");
    let (sb, c) = burst_sandbox("reapchnk", METRICS, net, &names).await;
    add_foreign_in_group(&sb, RETIRED_GROUP + 1);
    let dumps = reaper_dumps(&sb, METRICS);
    burst(&sb, &c, "rc", &names).await;
    assert!(host_veths(&sb).is_empty(), "{:?}", host_veths(&sb));
    assert!(
        sb.link("", "wforeign").is_some(),
        "the reaper deleted an interface it does not own"
    );
    // At least one batch was checked with a dump (a loaded machine may split the burst).
    assert!(reaper_dumps(&sb, METRICS) > dumps);
    // No group delete took more than a chunk (weftd's debug log names each one's count).
    let log = sb.log();
    let counts: Vec<usize> = log
        .lines()
        .filter(|l| l.contains("deleted retired veths"))
        .filter_map(|l| l.split("count=").nth(1))
        .filter_map(|c| c.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(!counts.is_empty(), "no group delete logged:\n{log}");
    assert!(counts.iter().all(|&n| n <= 128), "{counts:?}");
    eprintln!("group deletes: {counts:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn disconnect_cuts_the_endpoint_off_at_once_and_reaps_its_veth_in_a_batch() {
    let sb = Sandbox::new("reap").await;
    let c = sb.client();
    create_network(&c, network("rp", "wb-rp", &["10.247.0.0/24"])).await;
    let names: Vec<String> = (0..10).map(|i| format!("r{i}")).collect();
    for ns in &names {
        create_ns(&c, ns).await;
        connect(&c, connect_req("rp", ns)).await;
    }
    assert_eq!(host_veths(&sb).len(), 10);
    // The bridge has a MAC of its own: ports coming and going must not change it (the
    // endpoints' ARP entries for the gateway would go stale).
    let bridge_mac = sb.must_link("", "wb-rp")["address"].clone();

    // One disconnect: when it answers, r0 has no eth0 (its inside end is down and renamed
    // out of the way) and the host end has no carrier; then both go.
    let before = host_veths(&sb);
    disconnect(&c, "rp", "r0").await;
    assert!(sb.link("r0", "eth0").is_none(), "eth0 still in r0");
    let mut live = 0;
    for h in sb.links("") {
        let name = h["ifname"].as_str().unwrap_or_default().to_string();
        if !name.starts_with("wv") {
            continue;
        }
        if group_of(&h) == "default" {
            assert!(has_flag(&h, "LOWER_UP"), "{name} has no carrier: {h}");
            live += 1;
        } else {
            // r0's host end, not yet reaped: in weft's group, without carrier (its peer,
            // the renamed inside end, is down), so the bridge forwards nothing to it.
            assert_eq!(group_of(&h), RETIRED_GROUP.to_string());
            assert!(!has_flag(&h, "LOWER_UP"), "{name} still has a carrier: {h}");
        }
    }
    assert_eq!(live, 9);
    sb.assert_disconnected("r0").await;
    assert_eq!(host_veths(&sb).len(), 9, "r0's host end was never deleted");
    assert!(host_veths(&sb).iter().all(|n| before.contains(n)));

    // The namespace connects again at once, with the same interface name, and works.
    let ep = connect(&c, connect_req("rp", "r0")).await;
    assert_eq!(sb.addrs("r0", "eth0"), [ep.ipv4_address.as_str()]);
    sb.assert_ping("r0", "10.247.0.1").await;

    // Nine disconnects at once: all answer, every veth goes, nothing else does.
    let calls = names[1..].iter().map(|ns| {
        let c = c.clone();
        let ns = ns.clone();
        async move { disconnect(&c, "rp", &ns).await }
    });
    futures::future::join_all(calls).await;
    for ns in &names[1..] {
        sb.assert_disconnected(ns).await;
    }
    assert_eq!(host_veths(&sb).len(), 1, "{:?}", host_veths(&sb));
    assert_eq!(sb.must_link("", "wb-rp")["address"], bridge_mac);
    sb.assert_ping("r0", "10.247.0.1").await;

    // An interface weft does not own that sits in weft's group is never deleted: the reaper
    // then deletes its own veths one by one.
    add_foreign_in_weft_group(&sb);
    disconnect(&c, "rp", "r0").await;
    sb.assert_disconnected("r0").await;
    assert!(host_veths(&sb).is_empty(), "{:?}", host_veths(&sb));
    assert!(
        sb.link("", "wforeign").is_some(),
        "the reaper deleted an interface it does not own"
    );
}
