//! Published ports (issue 3): a TCP echo server in an endpoint answers through its published
//! port from an "outside" namespace, from the sandbox host itself and by hairpin from another
//! endpoint of the same network; a port published on one host address is only there; host
//! ports are unique per address and protocol; and a disconnect takes the mapping away.
//!
//! Traffic goes only to addresses these tests assign inside their own namespaces.

mod common;
#[path = "common/net.rs"]
mod net;

use std::net::{IpAddr, Ipv4Addr};

use common::*;
use net::*;
use weft::v1::PublishedPort;

#[tokio::test(flavor = "multi_thread")]
async fn published_port_answers_from_outside_from_the_host_and_by_hairpin() {
    let sb = Sandbox::new("ports").await;
    let outside = Outside::new(&sb);
    let c = sb.client();
    let net = create_network(&c, network("web", "wb-web", &["10.241.0.0/24"])).await;
    let gw: IpAddr = net.subnets[0].gateway.parse().expect("gateway");
    assert_eq!(gw, IpAddr::V4(Ipv4Addr::new(10, 241, 0, 1)));
    create_ns(&c, "srv").await;
    create_ns(&c, "cli").await;

    let mut req = connect_req("web", "srv");
    req.published_ports = vec![
        tcp_port(8080, 80),
        PublishedPort {
            host_ip: HOST_IP.to_string(),
            host_port: 8081,
            container_port: 81,
            protocol: "tcp".into(),
            ..Default::default()
        },
    ];
    let srv = connect(&c, req).await;
    let srv_ip = addr_of(&srv.ipv4_address);
    assert_eq!(srv.published_ports.len(), 2, "{srv:?}");
    assert_eq!(
        (
            srv.published_ports[0].host_port,
            srv.published_ports[0].container_port,
            srv.published_ports[0].protocol.as_str()
        ),
        (8080, 80, "tcp"),
        "{srv:?}"
    );
    let cli = connect(&c, connect_req("web", "cli")).await;
    let cli_ip = addr_of(&cli.ipv4_address);
    // The bridge port of an endpoint that publishes ports is in hairpin mode (as Docker's
    // with the userland proxy off), so a frame may leave by the port it came in on; one
    // that publishes none is not (cli reaches srv's port below all the same).
    for (ep, hairpin) in [(&srv, true), (&cli, false)] {
        let port = sb.must_link("", &ep.host_interface_name);
        assert_eq!(
            port["linkinfo"]["info_slave_data"]["hairpin"], hairpin,
            "{}: {port}",
            ep.namespace
        );
    }

    // The mappings are map elements, one each, in the wildcard and the by-address map.
    let elems = dnat_elems(&sb);
    assert_eq!(
        elems.keys().collect::<Vec<_>>(),
        ["dnat4", "dnat4_any"],
        "{elems:?}"
    );
    assert_eq!(elems["dnat4"].len(), 1, "{elems:?}");
    assert_eq!(elems["dnat4_any"].len(), 1, "{elems:?}");
    let any = elems["dnat4_any"][0].to_string();
    assert!(
        any.contains("8080") && any.contains(&srv_ip.to_string()) && any.contains("80"),
        "dnat4_any element {any} is not tcp 8080 -> {srv_ip}:80"
    );
    let by_addr = elems["dnat4"][0].to_string();
    assert!(
        by_addr.contains(&HOST_IP.to_string()) && by_addr.contains("8081"),
        "dnat4 element {by_addr} is not {HOST_IP} tcp 8081"
    );

    let _s80 = EchoServer::start(&sb.ns_path("srv"), sa(Ipv4Addr::UNSPECIFIED, 80));
    let _s81 = EchoServer::start(&sb.ns_path("srv"), sa(Ipv4Addr::UNSPECIFIED, 81));

    // Every path in both bridge-netfilter modes of the sandbox host: with br_netfilter (on by
    // default here) bridged traffic also crosses the inet hooks, without it only routed
    // traffic does. The last round leaves the default (on) for what follows.
    for brnf in ["0", "1"] {
        sb.host_ok(&[
            "sh",
            "-c",
            &format!("echo {brnf} > /proc/sys/net/bridge/bridge-nf-call-iptables"),
        ]);
        let mode = format!("bridge-nf-call-iptables={brnf}");
        // From outside: DNAT only, so the endpoint sees the real client.
        let peer = assert_tcp_ok(
            &outside.path,
            sa(HOST_IP, 8080),
            &format!("{mode}: outside -> HOST_IP:8080"),
        )
        .await;
        assert_eq!(peer, IpAddr::V4(OUTSIDE_IP), "{mode}: outside -> 8080");
        let peer = assert_tcp_ok(
            &outside.path,
            sa(HOST_IP, 8081),
            &format!("{mode}: outside -> HOST_IP:8081"),
        )
        .await;
        assert_eq!(peer, IpAddr::V4(OUTSIDE_IP), "{mode}: outside -> 8081");

        // From the host itself, to its own address.
        let peer = assert_tcp_ok(
            &sb.ns_path(""),
            sa(HOST_IP, 8080),
            &format!("{mode}: host -> HOST_IP:8080"),
        )
        .await;
        assert_eq!(peer, IpAddr::V4(HOST_IP), "{mode}: host -> 8080");

        // From the host's loopback (the bridge has route_localnet; the source is masqueraded).
        assert_tcp_ok(
            &sb.ns_path(""),
            sa(std::net::Ipv4Addr::LOCALHOST, 8080),
            &format!("{mode}: host -> 127.0.0.1:8080"),
        )
        .await;

        // Hairpin: another endpoint of the same network through the host address.
        let peer = assert_tcp_ok(
            &sb.ns_path("cli"),
            sa(HOST_IP, 8080),
            &format!("{mode}: hairpin cli -> HOST_IP:8080"),
        )
        .await;
        // Without br_netfilter the connection is routed back into the bridge it came from
        // and masqueraded; with it the DNATed frame is bridged and SNATed by the per-subnet
        // hairpin rule. Either way the gateway is the source, so the reply returns through
        // the host (cli is {cli_ip}).
        assert_eq!(peer, gw, "{mode}: hairpin source (cli is {cli_ip})");

        // Hairpin to itself: srv reaches its own published port through a host address,
        // on the wildcard mapping and the one on HOST_IP. With br_netfilter the frame leaves
        // by the port it came in on (hairpin mode) and is SNATed to the gateway, else srv
        // would drop a packet from its own address as a martian.
        for port in [8080, 8081] {
            let peer = assert_tcp_ok(
                &sb.ns_path("srv"),
                sa(HOST_IP, port),
                &format!("{mode}: hairpin to itself srv -> HOST_IP:{port} (srv is {srv_ip})"),
            )
            .await;
            assert_eq!(peer, gw, "{mode}: hairpin to itself, source seen");
        }
        let peer = assert_tcp_ok(
            &sb.ns_path("srv"),
            sa(gw, 8080),
            &format!("{mode}: hairpin to itself srv -> gateway:8080"),
        )
        .await;
        assert_eq!(peer, gw, "{mode}: srv -> gateway:8080, source seen");
    }

    // The wildcard mapping is on every host address (here the gateway, from the host and by
    // hairpin); the one on HOST_IP is on that address only.
    let peer = assert_tcp_ok(&sb.ns_path(""), sa(gw, 8080), "host -> gateway:8080").await;
    assert_eq!(peer, gw, "host -> gateway:8080: source seen");
    assert_tcp_ok(&sb.ns_path("cli"), sa(gw, 8080), "cli -> gateway:8080").await;
    assert_tcp_ok(&sb.ns_path(""), sa(HOST_IP, 8081), "host -> HOST_IP:8081").await;
    assert_tcp_fails(
        &sb.ns_path(""),
        sa(gw, 8081),
        "8081 is published on HOST_IP only, not on the gateway",
    )
    .await;
    // A port nobody published.
    assert_tcp_fails(
        &outside.path,
        sa(HOST_IP, 8082),
        "outside -> unpublished 8082",
    )
    .await;

    // Host ports are unique per address and protocol.
    create_ns(&c, "dup").await;
    let mut dup = connect_req("web", "dup");
    dup.published_ports = vec![tcp_port(8080, 80)];
    let s = expect_code(
        rpc(c.networks().connect(dup.clone())).await,
        tonic::Code::AlreadyExists,
    );
    assert!(
        s.message().contains("8080") && s.message().contains("srv"),
        "the message should name the port and its holder: {:?}",
        s.message()
    );
    // A specific address collides with the wildcard mapping on every address.
    dup.published_ports = vec![PublishedPort {
        host_ip: HOST_IP.to_string(),
        ..tcp_port(8080, 80)
    }];
    expect_code(
        rpc(c.networks().connect(dup.clone())).await,
        tonic::Code::AlreadyExists,
    );
    // So does the wildcard with a port held on one address.
    dup.published_ports = vec![tcp_port(8081, 81)];
    expect_code(
        rpc(c.networks().connect(dup.clone())).await,
        tonic::Code::AlreadyExists,
    );
    assert_eq!(
        sb.link_names("dup"),
        ["lo"],
        "refused connects left an interface"
    );
    assert_eq!(get_network(&c, "web").await.endpoints.len(), 2);
    // The same port over UDP is another mapping.
    dup.published_ports = vec![PublishedPort {
        protocol: "udp".into(),
        ..tcp_port(8080, 80)
    }];
    connect(&c, dup).await;
    assert_eq!(
        map_elems(&sb, "dnat4_any").len(),
        2,
        "{:?}",
        dnat_elems(&sb)
    );

    // Disconnect takes the mappings with it: the server still listens in srv, the port is
    // gone.
    disconnect(&c, "web", "srv").await;
    let elems = dnat_elems(&sb);
    assert!(
        !elems.contains_key("dnat4") && elems.get("dnat4_any").map(Vec::len) == Some(1),
        "after disconnecting srv only dup's udp mapping should be left: {elems:?}"
    );
    assert_tcp_fails(&outside.path, sa(HOST_IP, 8080), "8080 after disconnect").await;
    assert_tcp_fails(&outside.path, sa(HOST_IP, 8081), "8081 after disconnect").await;
}
