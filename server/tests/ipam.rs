//! IPAM through the real gRPC socket (issue 3): concurrent connects on one /24 get distinct
//! addresses and the kernel agrees; a /24 with a gateway holds 253 endpoints and the 254th gets
//! RESOURCE_EXHAUSTED; static addresses outside the subnet or already leased are refused with
//! a clear message; a released address is not handed out again at once.

mod common;
#[path = "common/net.rs"]
mod net;

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    time::{Duration, Instant},
};

use common::*;
use ipnet::IpNet;
use net::*;
use weft::v1::{ConnectRequest, ConnectResponse, CreateNamespaceRequest};

/// Creates namespaces `<stem>0..n` through the API, `parallel` requests at a time.
async fn create_many_ns(c: &weft::Client, stem: &str, n: usize, parallel: usize) -> Vec<String> {
    let names: Vec<String> = (0..n).map(|i| format!("{stem}{i}")).collect();
    for chunk in names.chunks(parallel) {
        let tasks: Vec<_> = chunk
            .iter()
            .map(|name| {
                let c = c.clone();
                let name = name.clone();
                tokio::spawn(async move {
                    rpc(c.namespaces().create_namespace(CreateNamespaceRequest {
                        namespace: Some(ns_msg(&name)),
                        wait: Some(false),
                        ..Default::default()
                    }))
                    .await
                    .unwrap_or_else(|s| panic!("CreateNamespace {name}: {s:?}"));
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("create task");
        }
    }
    names
}

/// Sends every request at once, each on its own task over the one client channel.
async fn connect_all(
    c: &weft::Client,
    reqs: Vec<ConnectRequest>,
) -> Vec<(String, Result<ConnectResponse, tonic::Status>)> {
    let tasks: Vec<_> = reqs
        .into_iter()
        .map(|req| {
            let c = c.clone();
            tokio::spawn(async move {
                let ns = req.namespace.clone();
                (ns, rpc(c.networks().connect(req)).await)
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("connect task"));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn hundred_concurrent_connects_get_distinct_addresses() {
    let sb = Sandbox::new("ipamc").await;
    let c = sb.client();
    let subnet: IpNet = "10.230.0.0/24".parse().unwrap();
    let net = create_network(&c, network("pool", "wi-pool", &["10.230.0.0/24"])).await;
    let gw: IpAddr = net.subnets[0].gateway.parse().unwrap();
    let names = create_many_ns(&c, "c", 100, 25).await;

    let started = Instant::now();
    let results = connect_all(&c, names.iter().map(|ns| connect_req("pool", ns)).collect()).await;
    eprintln!("100 concurrent connects took {:?}", started.elapsed());

    let mut by_ns: BTreeMap<String, String> = BTreeMap::new();
    for (ns, r) in results {
        let ep = r
            .unwrap_or_else(|s| panic!("Connect {ns}: {s:?}"))
            .endpoint
            .expect("endpoint");
        assert_ready(&format!("endpoint {ns}"), 0, ep.status.as_ref());
        by_ns.insert(ns, ep.ipv4_address);
    }
    let addrs: BTreeSet<IpAddr> = by_ns.values().map(|a| addr_of(a)).collect();
    assert_eq!(addrs.len(), 100, "duplicate addresses: {by_ns:?}");
    for (ns, a) in &by_ns {
        let cidr: IpNet = a.parse().unwrap();
        assert_eq!(cidr.prefix_len(), 24, "{ns}: {a}");
        assert!(subnet.contains(&cidr.addr()), "{ns}: {a} outside {subnet}");
        assert_ne!(cidr.addr(), gw, "{ns} got the gateway");
        assert_ne!(
            cidr.addr(),
            subnet.network(),
            "{ns} got the network address"
        );
        assert_ne!(
            cidr.addr(),
            subnet.broadcast(),
            "{ns} got the broadcast address"
        );
    }
    // The kernel agrees, namespace by namespace.
    for (ns, a) in &by_ns {
        assert_eq!(sb.addrs(ns, "eth0"), [a.as_str()], "{ns}");
    }
    let got = get_network(&c, "pool").await;
    assert_eq!(got.endpoints.len(), 100);
    assert_eq!((got.usage[0].leased, got.usage[0].capacity), (100, 253));
    let ports = sb
        .links("")
        .into_iter()
        .filter(|l| l["master"] == "wi-pool")
        .count();
    assert_eq!(ports, 100, "bridge ports of wi-pool");
    // And the addresses work: the last one pings the gateway.
    let last = by_ns.keys().last().expect("one").clone();
    sb.assert_ping(&last, &gw.to_string()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_254th_connect_on_a_slash_24_is_resource_exhausted() {
    let t0 = Instant::now();
    let sb = Sandbox::new("ipamfull").await;
    let c = sb.client();
    create_network(&c, network("full", "wi-full", &["10.231.0.0/24"])).await;
    let names = create_many_ns(&c, "f", 254, 64).await;
    eprintln!("254 namespaces: {:?}", t0.elapsed());

    // All 254 at once: exactly one is refused.
    let t1 = Instant::now();
    let results = connect_all(
        &c,
        names
            .iter()
            .map(|ns| ConnectRequest {
                wait: Some(false),
                ..connect_req("full", ns)
            })
            .collect(),
    )
    .await;
    eprintln!("254 connects answered (wait: false): {:?}", t1.elapsed());
    let mut leased = BTreeMap::new();
    let mut refused = Vec::new();
    for (ns, r) in results {
        match r {
            Ok(resp) => {
                let ep = resp.endpoint.expect("endpoint");
                leased.insert(ns, ep.ipv4_address);
            }
            Err(s) if s.code() == tonic::Code::ResourceExhausted => refused.push((ns, s)),
            Err(s) => panic!("Connect {ns}: {s:?}"),
        }
    }
    assert_eq!(leased.len(), 253, "refused: {refused:?}");
    assert_eq!(refused.len(), 1);
    let (last_ns, status) = refused.pop().expect("one refused");
    assert!(
        status.message().contains("10.231.0.0/24"),
        "the message should name the subnet: {:?}",
        status.message()
    );
    let addrs: BTreeSet<IpAddr> = leased.values().map(|a| addr_of(a)).collect();
    let want: BTreeSet<IpAddr> = (2..=254)
        .map(|i| IpAddr::from([10, 231, 0, i as u8]))
        .collect();
    assert_eq!(addrs, want, "253 distinct addresses, .2 to .254");

    // The final state: 253 Ready endpoints, a full pool, the kernel agrees.
    let got = wait_endpoints_ready(&sb, "full", 253, Duration::from_secs(60)).await;
    eprintln!("253 endpoints Ready: {:?}", t1.elapsed());
    assert_eq!((got.usage[0].leased, got.usage[0].capacity), (253, 253));
    let ports = sb
        .links("")
        .into_iter()
        .filter(|l| l["master"] == "wi-full")
        .count();
    assert_eq!(ports, 253, "bridge ports of wi-full");
    assert_eq!(sb.link_names(&last_ns), ["lo"], "the refused namespace");
    for (ns, a) in &leased {
        assert_eq!(sb.addrs(ns, "eth0"), [a.as_str()], "{ns}");
    }

    // Still full on a retry; one freed address is the one the next connect gets.
    expect_code(
        rpc(c.networks().connect(connect_req("full", &last_ns))).await,
        tonic::Code::ResourceExhausted,
    );
    let (freed_ns, freed) = leased.iter().nth(100).expect("an endpoint");
    disconnect(&c, "full", freed_ns).await;
    let ep = connect(&c, connect_req("full", &last_ns)).await;
    assert_eq!(&ep.ipv4_address, freed);
    assert_eq!(sb.addrs(&last_ns, "eth0"), [freed.as_str()]);
    eprintln!("whole test: {:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn static_addresses_are_checked_and_released_addresses_rest() {
    let sb = Sandbox::new("ipams").await;
    let c = sb.client();
    create_network(&c, network("st", "wi-st", &["10.232.0.0/24"])).await;
    for ns in ["s1", "s2", "s3"] {
        create_ns(&c, ns).await;
    }
    let static_req = |ns: &str, ip: &str| ConnectRequest {
        ipv4_address: ip.into(),
        ..connect_req("st", ns)
    };

    // A free static address is taken as given.
    let s1 = connect(&c, static_req("s1", "10.232.0.50")).await;
    assert_eq!(s1.ipv4_address, "10.232.0.50/24");
    assert_eq!(sb.addrs("s1", "eth0"), ["10.232.0.50/24"]);

    // Outside the subnet, the gateway, the network and broadcast addresses: INVALID_ARGUMENT.
    for (ip, says) in [
        ("10.232.1.5", "outside"),
        ("10.232.0.1", "gateway"),
        ("10.232.0.0", "network"),
        ("10.232.0.255", "broadcast"),
    ] {
        let s = expect_code(
            rpc(c.networks().connect(static_req("s2", ip))).await,
            tonic::Code::InvalidArgument,
        );
        assert!(
            s.message().contains(ip) && s.message().contains(says),
            "static {ip}: the message should say {says:?}: {:?}",
            s.message()
        );
    }
    // Not an IPv4 address at all.
    expect_code(
        rpc(c.networks().connect(static_req("s2", "10.232.0.300"))).await,
        tonic::Code::InvalidArgument,
    );
    // No IPv6 subnet for a static IPv6 address.
    expect_code(
        rpc(c.networks().connect(ConnectRequest {
            ipv6_address: "fd00::5".into(),
            ..connect_req("st", "s2")
        }))
        .await,
        tonic::Code::InvalidArgument,
    );
    // Already leased: ALREADY_EXISTS, naming the holder.
    let s = expect_code(
        rpc(c.networks().connect(static_req("s2", "10.232.0.50"))).await,
        tonic::Code::AlreadyExists,
    );
    assert!(
        s.message().contains("10.232.0.50") && s.message().contains("\"s1\""),
        "the message should name the address and its holder s1: {:?}",
        s.message()
    );
    // None of that changed anything.
    assert_eq!(sb.link_names("s2"), ["lo"]);
    let n = get_network(&c, "st").await;
    assert_eq!(n.endpoints.len(), 1);
    assert_eq!(n.usage[0].leased, 1);

    // A released address is not handed out again at once.
    let first = connect(&c, connect_req("st", "s2")).await.ipv4_address;
    assert_eq!(sb.addrs("s2", "eth0"), [first.as_str()]);
    disconnect(&c, "st", "s2").await;
    sb.assert_disconnected("s2").await;
    assert_eq!(get_network(&c, "st").await.usage[0].leased, 1);
    let second = connect(&c, connect_req("st", "s2")).await.ipv4_address;
    assert_ne!(
        second, first,
        "the address just released came straight back"
    );
    assert_eq!(sb.addrs("s2", "eth0"), [second.as_str()]);
    let third = connect(&c, connect_req("st", "s3")).await.ipv4_address;
    assert_ne!(third, first, "the address just released went to s3");
    assert_ne!(third, second);
    // ...but it can be asked for by name.
    disconnect(&c, "st", "s3").await;
    let again = connect(&c, static_req("s3", &addr_of(&first).to_string())).await;
    assert_eq!(again.ipv4_address, first);
    assert_eq!(sb.addrs("s3", "eth0"), [first]);
}
