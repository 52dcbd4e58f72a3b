//! Published ports with Docker's `-p` meanings (issue 12): a host port left out is picked
//! from the host's `ip_local_port_range`, on every address or on one; a host range with one
//! container port takes one free port of it; equal-length ranges map pairwise. Each case is
//! reached from outside (the `Outside` namespace), from the sandbox host and from the
//! endpoint itself (hairpin to itself); picks differ between endpoints, show in the answers
//! and the CLI, survive a weftd restart, and a used-up range is RESOURCE_EXHAUSTED with
//! nothing left behind.
//!
//! The sandbox host gets a narrow `ip_local_port_range` (set under /proc/sys inside it), so
//! "the port is in the host's range" is checkable. Traffic goes only to addresses these
//! tests assign inside their own namespaces.

mod common;
#[path = "common/net.rs"]
mod net;

use std::net::{IpAddr, Ipv4Addr};

use common::*;
use net::*;
use weft::v1::PublishedPort;

/// The sandbox host's ephemeral range in these tests.
const LOCAL: std::ops::RangeInclusive<u32> = 41000..=41003;

/// A TCP port: host `host`-`host_end` (0: none) on `host_ip` onto `container`-`cend`.
fn pp(host_ip: &str, host: u32, host_end: u32, container: u32, cend: u32) -> PublishedPort {
    PublishedPort {
        host_ip: host_ip.into(),
        host_port: host,
        host_port_end: host_end,
        container_port: container,
        container_port_end: cend,
        protocol: "tcp".into(),
    }
}

/// Connects `ns` to `net` publishing `ports`.
async fn publish(c: &weft::Client, net: &str, ns: &str, ports: Vec<PublishedPort>) -> Vec<u32> {
    create_ns(c, ns).await;
    let mut req = connect_req(net, ns);
    req.published_ports = ports;
    let ep = connect(c, req).await;
    ep.published_ports.iter().map(|p| p.host_port).collect()
}

/// `to` answers from outside, from the host and from endpoint `ns` itself; from outside the
/// endpoint sees the real client.
async fn answers_everywhere(sb: &Sandbox, outside: &Outside, ns: &str, to: std::net::SocketAddr) {
    let peer = assert_tcp_ok(&outside.path, to, &format!("outside -> {to} ({ns})")).await;
    assert_eq!(peer, IpAddr::V4(OUTSIDE_IP), "outside -> {to}");
    assert_tcp_ok(&sb.ns_path(""), to, &format!("host -> {to} ({ns})")).await;
    assert_tcp_ok(&sb.ns_path(ns), to, &format!("{ns} itself -> {to}")).await;
}

/// `to` answers nowhere.
async fn answers_nowhere(sb: &Sandbox, outside: &Outside, ns: &str, to: std::net::SocketAddr) {
    assert_tcp_fails(&outside.path, to, &format!("outside -> {to}")).await;
    assert_tcp_fails(&sb.ns_path(""), to, &format!("host -> {to}")).await;
    assert_tcp_fails(&sb.ns_path(ns), to, &format!("{ns} -> {to}")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn left_out_host_ports_come_from_the_hosts_range_and_stay() {
    let mut sb = Sandbox::new("pdeph").await;
    sb.host_ok(&[
        "sh",
        "-c",
        &format!(
            "echo {} {} > /proc/sys/net/ipv4/ip_local_port_range",
            LOCAL.start(),
            LOCAL.end()
        ),
    ]);
    let outside = Outside::new(&sb);
    let c = sb.client();
    let net = create_network(&c, network("eph", "wb-eph", &["10.242.0.0/24"])).await;
    let gw: IpAddr = net.subnets[0].gateway.parse().expect("gateway");

    // `-p 80` twice: two different ports of the host's range.
    let a = publish(&c, "eph", "a", vec![pp("", 0, 0, 80, 0)]).await[0];
    let b = publish(&c, "eph", "b", vec![pp("", 0, 0, 80, 0)]).await[0];
    assert!(LOCAL.contains(&a) && LOCAL.contains(&b), "{a} {b}");
    assert_ne!(a, b, "two endpoints got the same port");
    // `HOST_IP::81`: one more, on that address only.
    let one = publish(
        &c,
        "eph",
        "one",
        vec![pp(&HOST_IP.to_string(), 0, 0, 81, 0)],
    )
    .await[0];
    assert!(LOCAL.contains(&one) && one != a && one != b, "{one}");

    let _sa = EchoServer::start(&sb.ns_path("a"), sa(Ipv4Addr::UNSPECIFIED, 80));
    let _sb = EchoServer::start(&sb.ns_path("b"), sa(Ipv4Addr::UNSPECIFIED, 80));
    let _so = EchoServer::start(&sb.ns_path("one"), sa(Ipv4Addr::UNSPECIFIED, 81));
    answers_everywhere(&sb, &outside, "a", sa(HOST_IP, a as u16)).await;
    answers_everywhere(&sb, &outside, "b", sa(HOST_IP, b as u16)).await;
    answers_everywhere(&sb, &outside, "one", sa(HOST_IP, one as u16)).await;
    assert_tcp_fails(
        &sb.ns_path(""),
        sa(gw, one as u16),
        "the port on HOST_IP is not on the gateway",
    )
    .await;

    // Get and the CLI show the picked ports.
    let shown = |n: &weft::v1::Network, ns: &str| -> u32 {
        n.endpoints
            .iter()
            .find(|e| e.namespace == ns)
            .map(|e| e.published_ports[0].host_port)
            .unwrap_or_default()
    };
    let n = get_network(&c, "eph").await;
    assert_eq!((shown(&n, "a"), shown(&n, "b")), (a, b));
    let out = sb.weft_cli(&["network", "inspect", "eph"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("{a}->80/tcp")), "{text}");
    assert!(text.contains(&format!("{HOST_IP}:{one}->81/tcp")), "{text}");

    // The last port of the range, then none: RESOURCE_EXHAUSTED naming the field, and the
    // refused namespace has no interface.
    let last = publish(&c, "eph", "last", vec![pp("", 0, 0, 80, 0)]).await[0];
    let mut all = vec![a, b, one, last];
    all.sort();
    assert_eq!(all, LOCAL.collect::<Vec<_>>());
    create_ns(&c, "none").await;
    let mut req = connect_req("eph", "none");
    req.published_ports = vec![pp("", 0, 0, 80, 0)];
    let s = expect_code(
        rpc(c.networks().connect(req)).await,
        tonic::Code::ResourceExhausted,
    );
    assert!(
        s.message()
            .starts_with("published_ports[0].host_port: no free host port left in 41000-41003"),
        "{}",
        s.message()
    );
    assert_eq!(sb.link_names("none"), ["lo"]);

    // A restart keeps the picks: the same ports in the answers, and they still answer.
    let elems = dnat_elems(&sb);
    sb.restart().await;
    let c = sb.client();
    let n = get_network(&c, "eph").await;
    assert_eq!((shown(&n, "a"), shown(&n, "b")), (a, b));
    assert_eq!(dnat_elems(&sb), elems, "the restart changed the port maps");
    answers_everywhere(&sb, &outside, "a", sa(HOST_IP, a as u16)).await;
    answers_everywhere(&sb, &outside, "b", sa(HOST_IP, b as u16)).await;
    // A disconnect frees a port for the next pick.
    disconnect(&c, "eph", "b").await;
    let again = publish(&c, "eph", "again", vec![pp("", 0, 0, 80, 0)]).await[0];
    assert_eq!(again, b, "the freed port is the only one left");
}

#[tokio::test(flavor = "multi_thread")]
async fn host_ranges_take_one_port_or_map_pairwise() {
    let sb = Sandbox::new("pdrange").await;
    let outside = Outside::new(&sb);
    let c = sb.client();
    create_network(&c, network("rng", "wb-rng", &["10.243.0.0/24"])).await;

    // `9000-9003:80`: one port of the range; a second endpoint gets another.
    let one = publish(&c, "rng", "one", vec![pp("", 9000, 9003, 80, 0)]).await[0];
    let two = publish(&c, "rng", "two", vec![pp("", 9000, 9003, 80, 0)]).await[0];
    assert!((9000..=9003).contains(&one) && (9000..=9003).contains(&two));
    assert_ne!(one, two);
    assert_eq!(
        map_elems(&sb, "dnat4_any").len(),
        2,
        "one mapping per endpoint: {:?}",
        dnat_elems(&sb)
    );
    let _s1 = EchoServer::start(&sb.ns_path("one"), sa(Ipv4Addr::UNSPECIFIED, 80));
    let _s2 = EchoServer::start(&sb.ns_path("two"), sa(Ipv4Addr::UNSPECIFIED, 80));
    answers_everywhere(&sb, &outside, "one", sa(HOST_IP, one as u16)).await;
    answers_everywhere(&sb, &outside, "two", sa(HOST_IP, two as u16)).await;
    for p in (9000..=9003).filter(|p| *p != one && *p != two) {
        answers_nowhere(&sb, &outside, "one", sa(HOST_IP, p as u16)).await;
    }

    // `9100-9101:90-91`: pairwise. Only 91 listens at first, so 9101 answers and 9100 does
    // not; then 90 too.
    let pair = publish(&c, "rng", "pair", vec![pp("", 9100, 9101, 90, 91)]).await;
    assert_eq!(pair, [9100]);
    let n = get_network(&c, "rng").await;
    let shown = n
        .endpoints
        .iter()
        .find(|e| e.namespace == "pair")
        .map(|e| e.published_ports[0].clone())
        .expect("pair");
    assert_eq!(
        (shown.host_port_end, shown.container_port_end),
        (9101, 91),
        "{shown:?}"
    );
    let _s91 = EchoServer::start(&sb.ns_path("pair"), sa(Ipv4Addr::UNSPECIFIED, 91));
    answers_everywhere(&sb, &outside, "pair", sa(HOST_IP, 9101)).await;
    answers_nowhere(&sb, &outside, "pair", sa(HOST_IP, 9100)).await;
    let _s90 = EchoServer::start(&sb.ns_path("pair"), sa(Ipv4Addr::UNSPECIFIED, 90));
    answers_everywhere(&sb, &outside, "pair", sa(HOST_IP, 9100)).await;
    let out = sb.weft_cli(&["network", "inspect", "rng"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("9100-9101->90-91/tcp"), "{text}");
    assert!(text.contains(&format!("{one}->80/tcp")), "{text}");

    // The CLI's `-p` takes the same shapes.
    create_ns(&c, "cli").await;
    let out = sb.weft_cli(&[
        "network",
        "connect",
        "rng",
        "cli",
        "-p",
        "9200-9201:80",
        "-p",
        "9300-9301:90-91",
    ]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("9200->80/tcp"), "{text}");
    assert!(text.contains("9300-9301->90-91/tcp"), "{text}");
    let out = sb.weft_cli(&["network", "connect", "rng", "cli", "-p", "9400:90-91"]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("differ in length"),
        "{out:?}"
    );
}
