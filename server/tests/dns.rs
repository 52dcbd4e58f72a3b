//! weftd's DNS resolver, asked with the real `dig` (Debian's bind9-dnsutils) from inside the
//! endpoints' namespaces, against the gateways of networks in a sandboxed weftd: names,
//! aliases, AAAA, PTR, TCP, who may see what, following a disconnect, NXDOMAIN at once,
//! forwarding to an upstream the test serves (dnsmasq in a namespace of its own), internal
//! networks, the default network, and the counters.

mod common;
#[path = "common/net.rs"]
mod net;

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::*;
use net::*;
use weft::v1::{
    ConnectRequest, DisconnectRequest, GetSystemInfoRequest, GetSystemInfoResponse, Network,
};

/// `dig` with one try, a 2 s wait and no search list; its stdout.
fn dig(sb: &Sandbox, ns: &str, server: &str, args: &[&str]) -> String {
    let mut all = vec!["dig", "+tries=1", "+time=2", "+nosearch"];
    let at = format!("@{server}");
    all.push(&at);
    all.extend_from_slice(args);
    let out = sb.exec_in(ns, &all);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The answers of `dig +short`, sorted.
fn short(sb: &Sandbox, ns: &str, server: &str, args: &[&str]) -> Vec<String> {
    let mut a: Vec<&str> = vec!["+short"];
    a.extend_from_slice(args);
    let mut v: Vec<String> = dig(sb, ns, server, &a)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(';'))
        .map(String::from)
        .collect();
    v.sort();
    v
}

/// The status dig printed (`NOERROR`, `NXDOMAIN`, ...), or the whole output when there is
/// none (no answer at all).
fn status(out: &str) -> String {
    out.split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .map(String::from)
        .unwrap_or_else(|| format!("no answer: {out}"))
}

async fn info(sb: &Sandbox) -> GetSystemInfoResponse {
    rpc(sb
        .client()
        .system()
        .get_system_info(GetSystemInfoRequest {}))
    .await
    .expect("GetSystemInfo")
}

fn dns_network(name: &str, bridge: &str, subnets: &[&str], internal: bool) -> Network {
    Network {
        internal,
        ..network(name, bridge, subnets)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn names_resolve_for_the_network_and_no_one_else() {
    let sb = Sandbox::new("dnsnames").await;
    let c = sb.client();
    let front = create_network(
        &c,
        dns_network("front", "dnsfr0", &["10.77.1.0/24", "fd77:1::/64"], false),
    )
    .await;
    assert_eq!(front.dns_servers, ["10.77.1.1", "fd77:1::1"]);
    create_network(&c, dns_network("back", "dnsbk0", &["10.77.2.0/24"], false)).await;
    for ns in ["web", "db", "other", "plain"] {
        create_ns(&c, ns).await;
    }
    let with_alias = |ns: &str| ConnectRequest {
        aliases: vec!["api".into()],
        ..connect_req("front", ns)
    };
    let web = connect(&c, with_alias("web")).await;
    let db = connect(&c, with_alias("db")).await;
    connect(&c, connect_req("back", "other")).await;
    connect(&c, connect_req("bridge", "plain")).await;
    let web4 = addr_of(&web.ipv4_address).to_string();
    let web6 = addr_of(&web.ipv6_address).to_string();
    let db4 = addr_of(&db.ipv4_address).to_string();
    let gw = "10.77.1.1";
    let before = info(&sb).await;

    // A, bare and under the network, any case; AAAA; over TCP.
    assert_eq!(short(&sb, "db", gw, &["web", "A"]), [web4.as_str()]);
    assert_eq!(short(&sb, "db", gw, &["web.front.", "A"]), [web4.as_str()]);
    assert_eq!(short(&sb, "db", gw, &["WeB.FrOnT", "A"]), [web4.as_str()]);
    assert_eq!(short(&sb, "db", gw, &["web", "AAAA"]), [web6.as_str()]);
    assert_eq!(short(&sb, "db", gw, &["+tcp", "web", "A"]), [web4.as_str()]);
    // The resolver also listens on the IPv6 gateway (once the bridge's address is usable).
    let t = Instant::now();
    while short(&sb, "db", "fd77:1::1", &["web", "AAAA"]) != [web6.as_str()] {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no answer on fd77:1::1"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // PTR gives <namespace>.<network>.
    assert_eq!(short(&sb, "db", gw, &["-x", &web4]), ["web.front."]);
    assert_eq!(short(&sb, "db", gw, &["-x", &web6]), ["web.front."]);
    // An alias two endpoints share: both, in an order that rotates.
    let mut both = vec![web4.clone(), db4.clone()];
    both.sort();
    assert_eq!(short(&sb, "web", gw, &["api", "A"]), both);
    let firsts: std::collections::BTreeSet<String> = (0..6)
        .map(|_| dig(&sb, "web", gw, &["+short", "api", "A"]))
        .filter_map(|o| o.lines().next().map(String::from))
        .collect();
    assert_eq!(
        firsts.len(),
        2,
        "the first answer should rotate: {firsts:?}"
    );
    // glibc's resolver (getent) through the gateway: a resolv.conf naming it is bind-mounted
    // over /etc/resolv.conf in a private mount namespace (`unshare -m`), so nothing of the
    // host's changes.
    let conf = sb.dir().join("glibc-resolv.conf");
    std::fs::write(&conf, format!("nameserver {gw}\n")).unwrap();
    let script = format!(
        "mount --bind {} /etc/resolv.conf && exec nsenter --net={} getent ahostsv4 api",
        conf.display(),
        sb.ns_path("web").display()
    );
    let out = run(Command::new("unshare").args(["-m", "sh", "-c", &script]));
    let mut seen: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen, both, "getent ahostsv4 api: {out:?}");
    // The full answer: authoritative, a short TTL.
    let full = dig(&sb, "db", gw, &["web", "A"]);
    assert!(full.contains("flags: qr aa"), "{full}");
    assert!(
        full.contains(&format!("web.\t\t\t5\tIN\tA\t{web4}")),
        "{full}"
    );

    // Unknown names of the network: NXDOMAIN at once, not a timeout.
    for name in ["nosuch", "nosuch.front"] {
        let t = Instant::now();
        let out = dig(&sb, "db", gw, &[name, "A"]);
        assert_eq!(status(&out), "NXDOMAIN", "{name}: {out}");
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "{name} took {:?}",
            t.elapsed()
        );
    }

    // A namespace on another network sees none of front's names, also asking front's
    // gateway (which it reaches through the host); it sees its own network's.
    for server in ["10.77.2.1", gw] {
        for name in ["web", "web.front", "api"] {
            let out = dig(&sb, "other", server, &[name, "A"]);
            assert_eq!(
                status(&out),
                "NXDOMAIN",
                "other asking {server} for {name}: {out}"
            );
        }
        assert!(short(&sb, "other", server, &["-x", &web4]).is_empty());
    }
    assert_eq!(
        short(&sb, "other", "10.77.2.1", &["other.back", "A"]).len(),
        1
    );
    // The default network has no resolver: nothing answers on its gateway.
    let bridge_gw = get_network(&c, "bridge").await.subnets[0].gateway.clone();
    let out = dig(&sb, "plain", &bridge_gw, &["plain", "A"]);
    assert!(
        !out.contains("status:"),
        "the default network answered: {out}"
    );
    // Nor does it see front's names through front's gateway.
    assert_eq!(status(&dig(&sb, "plain", gw, &["web", "A"])), "NXDOMAIN");

    // A disconnect shows within a second of its request (not waiting for the reconcile).
    let t = Instant::now();
    rpc(c.networks().disconnect(DisconnectRequest {
        network: "front".into(),
        namespace: "db".into(),
        wait: Some(false),
        ..Default::default()
    }))
    .await
    .expect("Disconnect");
    loop {
        let now = short(&sb, "web", gw, &["api", "A"]);
        if now == [web4.clone()] {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "api still {now:?} after {:?}",
            t.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "api lost db's address {:?} after the Disconnect request",
        t.elapsed()
    );
    assert_eq!(status(&dig(&sb, "web", gw, &["db", "A"])), "NXDOMAIN");

    let after = info(&sb).await;
    assert!(after.dns_queries >= before.dns_queries + 25, "{after:?}");
    assert!(after.dns_answers >= before.dns_answers + 25, "{after:?}");
    assert_eq!(
        after.dns_forwards, before.dns_forwards,
        "nothing here is forwarded"
    );
}

/// A process the test started, killed when the test ends (also when it fails).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// dnsmasq in a namespace of the test's, answering `upstream.test` (192.0.2.77) and NXDOMAIN
/// for names under `example.test`; REFUSED for the rest.
struct Upstream;

impl Upstream {
    fn start(outside: &Outside) -> Running {
        let child = Command::new("nsenter")
            .arg(format!("--net={}", outside.path.display()))
            .args([
                "dnsmasq",
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--conf-file=/dev/null",
                "--pid-file=",
                "--user=root",
                "--bind-interfaces",
                &format!("--listen-address={OUTSIDE_IP}"),
                "--address=/upstream.test/192.0.2.77",
                "--local=/example.test/",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dnsmasq (Debian's dnsmasq-base)");
        Running(child)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn other_names_go_to_the_host_resolvers_except_from_internal_networks() {
    let sb = Sandbox::new("dnsfwd").await;
    let c = sb.client();
    let outside = Outside::new(&sb);
    let _upstream = Upstream::start(&outside);
    create_network(&c, dns_network("open", "dnsop0", &["10.78.1.0/24"], false)).await;
    create_network(&c, dns_network("sealed", "dnsse0", &["10.78.2.0/24"], true)).await;
    for ns in ["o1", "i1"] {
        create_ns(&c, ns).await;
    }
    connect(&c, connect_req("open", "o1")).await;
    let i1 = connect(&c, connect_req("sealed", "i1")).await;
    let (open_gw, sealed_gw) = ("10.78.1.1", "10.78.2.1");

    // The sandbox's resolv.conf names 127.0.0.1 of the scratch host, where nothing answers:
    // SERVFAIL, within the forwarding bound, not the client's timeout.
    let t = Instant::now();
    let out = dig(&sb, "o1", open_gw, &["upstream.test", "A"]);
    assert_eq!(status(&out), "SERVFAIL", "{out}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );

    // The host's resolv.conf changes: read again on the next query.
    std::fs::write(sb.host_resolv_conf(), format!("nameserver {OUTSIDE_IP}\n")).unwrap();
    let before = info(&sb).await;
    let t = Instant::now();
    loop {
        // dnsmasq may still be starting.
        if short(&sb, "o1", open_gw, &["upstream.test", "A"]) == ["192.0.2.77"] {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "upstream.test never resolved"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        short(&sb, "o1", open_gw, &["+tcp", "upstream.test", "A"]),
        ["192.0.2.77"]
    );
    // The upstream's NXDOMAIN is passed on.
    let out = dig(&sb, "o1", open_gw, &["nosuch.example.test", "A"]);
    assert_eq!(status(&out), "NXDOMAIN", "{out}");
    let mid = info(&sb).await;
    assert!(mid.dns_forwards >= before.dns_forwards + 3, "{mid:?}");

    // An internal network resolves its own names and forwards nothing: REFUSED.
    assert_eq!(
        short(&sb, "i1", sealed_gw, &["i1", "A"]),
        [addr_of(&i1.ipv4_address).to_string()]
    );
    let out = dig(&sb, "i1", sealed_gw, &["upstream.test", "A"]);
    assert_eq!(status(&out), "REFUSED", "{out}");
    let end = info(&sb).await;
    assert_eq!(
        end.dns_forwards, mid.dns_forwards,
        "the internal query went upstream"
    );
    // The host itself (no endpoint) asking the open network's resolver is forwarded too.
    let out = sb.host_ok(&[
        "dig",
        "+tries=1",
        "+time=2",
        "+short",
        &format!("@{open_gw}"),
        "upstream.test",
    ]);
    assert_eq!(out.trim(), "192.0.2.77");
}

#[tokio::test(flavor = "multi_thread")]
async fn port_53_held_by_another_server_is_retried_not_fatal() {
    let sb = Sandbox::new("dnsheld").await;
    let c = sb.client();
    // Someone else's DNS server on every address of the host, port 53 (UDP).
    let mut holder = Running(
        Command::new("nsenter")
            .arg(format!("--net={}", sb.host_ns_path().display()))
            .args([
                "python3",
                "-c",
                "import socket,time\n\
             s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
             s.bind(('0.0.0.0',53))\nprint('bound',flush=True)\ntime.sleep(120)",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the port holder"),
    );
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.0.stdout.as_mut().expect("stdout")),
        &mut line,
    )
    .expect("read the holder");
    assert_eq!(line.trim(), "bound");
    create_network(&c, dns_network("held", "dnshd0", &["10.79.1.0/24"], false)).await;
    create_ns(&c, "h1").await;
    connect(&c, connect_req("held", "h1")).await;
    let gw = "10.79.1.1";
    let t = Instant::now();
    while !sb.log().contains("DNS: cannot serve on port 53") {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "no bind failure logged:\n{}",
            sb.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // weftd goes on: its API answers, and once the port is free its resolver serves.
    info(&sb).await;
    drop(holder);
    let t = Instant::now();
    loop {
        if short(&sb, "h1", gw, &["h1", "A"]).len() == 1 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the resolver never started"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_upstream_flag_wins_over_the_host_resolv_conf() {
    let upstream = OUTSIDE_IP.to_string();
    let sb = Sandbox::builder("dnsflag")
        .args(&["--dns-upstream", &upstream])
        .start()
        .await;
    let c = sb.client();
    let outside = Outside::new(&sb);
    let _upstream = Upstream::start(&outside);
    create_network(&c, dns_network("up", "dnsup0", &["10.80.1.0/24"], false)).await;
    create_ns(&c, "u1").await;
    connect(&c, connect_req("up", "u1")).await;
    // The sandbox's resolv.conf still names 127.0.0.1, where nothing answers.
    let t = Instant::now();
    while short(&sb, "u1", "10.80.1.1", &["upstream.test", "A"]) != ["192.0.2.77"] {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "upstream.test never resolved"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(info(&sb).await.dns_forwards >= 1);
}

/// The addresses with a socket on port 53 in the scratch host (`ss`), as "udp ADDR" and
/// "tcp ADDR", sorted.
fn port_53(sb: &Sandbox) -> Vec<String> {
    let out = sb.host_ok(&["ss", "-Hlntu", "sport = :53"]);
    let mut v: Vec<String> = out
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let local = f.get(4)?;
            Some(format!("{} {}", f.first()?, local.rsplit_once(':')?.0))
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn listeners_follow_the_networks_that_have_dns() {
    let sb = Sandbox::new("dnslist").await;
    let c = sb.client();
    create_network(&c, dns_network("on", "dnson0", &["10.81.1.0/24"], false)).await;
    let off = Network {
        dns: Some(false),
        ..dns_network("off", "dnsoff0", &["10.81.2.0/24"], false)
    };
    assert!(create_network(&c, off).await.dns_servers.is_empty());
    let serving = ["tcp 10.81.1.1", "udp 10.81.1.1"];
    let t = Instant::now();
    while port_53(&sb) != serving {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "port 53: {:?}",
            port_53(&sb)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Neither the network without DNS nor the default network `bridge` has a listener.
    delete_network(&c, "on").await;
    let t = Instant::now();
    while !port_53(&sb).is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "port 53: {:?}",
            port_53(&sb)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A restart turns every namespace and endpoint back to Ready at once: hundreds of change
/// events in one burst. They change only statuses, which the resolver's index holds nothing
/// of, so its feed passes them by: the index is loaded once, at start-up, where a burst of
/// more than 256 objects made it load everything again (`weft_dns_index_loads_total`).
/// Names must be right after it, and single changes after it must still show at once.
#[tokio::test(flavor = "multi_thread")]
async fn names_are_right_through_a_restart_burst_and_changes_after_it_show() {
    const SPACES: usize = 300;
    const METRICS: &str = "127.0.0.1:9467";
    let mut sb = Sandbox::builder("dnsburst")
        .args(&["--metrics", METRICS])
        .start()
        .await;
    let c = sb.client();
    create_network(&c, dns_network("burst", "dnsbu0", &["10.77.8.0/22"], false)).await;
    let mut last = String::new();
    for i in 0..SPACES {
        let ns = format!("b{i}");
        create_ns(&c, &ns).await;
        let ep = connect(&c, connect_req("burst", &ns)).await;
        last = addr_of(&ep.ipv4_address).to_string();
    }
    sb.restart().await;
    let c = sb.client();
    let gw = "10.77.8.1";
    let t = Instant::now();
    let last_name = format!("b{}", SPACES - 1);
    while short(&sb, "b0", gw, &[&last_name, "A"]) != [last.as_str()] {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{last_name} does not resolve to {last} after the restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // After the burst: a disconnect and a new connect show within a second each.
    disconnect(&c, "burst", "b5").await;
    let t = Instant::now();
    while status(&dig(&sb, "b0", gw, &["b5", "A"])) != "NXDOMAIN" {
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "b5 still resolves 1 s after its disconnect"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    create_ns(&c, "late").await;
    let late = connect(&c, connect_req("burst", "late")).await;
    let late4 = addr_of(&late.ipv4_address).to_string();
    let t = Instant::now();
    while short(&sb, "b0", gw, &["late", "A"]) != [late4.as_str()] {
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "late does not resolve 1 s after its connect"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let loads = sb.metrics(METRICS, &["weft_dns_index_loads_total"])[0];
    assert_eq!(
        loads, 1.0,
        "the resolver loaded its whole index again after start-up (the restart's \
         confirmations change only statuses)"
    );
}
