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
use weft::v1::{ConnectRequest, GetSystemInfoRequest, GetSystemInfoResponse, Network};

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

    // A disconnect shows within a second.
    disconnect(&c, "front", "db").await;
    let t = Instant::now();
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
    assert_eq!(status(&dig(&sb, "web", gw, &["db", "A"])), "NXDOMAIN");

    let after = info(&sb).await;
    assert!(after.dns_queries >= before.dns_queries + 25, "{after:?}");
    assert!(after.dns_answers >= before.dns_answers + 25, "{after:?}");
    assert_eq!(
        after.dns_forwards, before.dns_forwards,
        "nothing here is forwarded"
    );
}

/// dnsmasq in a namespace of the test's, answering `upstream.test` (192.0.2.77) and NXDOMAIN
/// for names under `example.test`; REFUSED for the rest.
struct Upstream {
    child: Child,
}

impl Upstream {
    fn start(outside: &Outside) -> Upstream {
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
        Upstream { child }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
