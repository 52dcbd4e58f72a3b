//! A sandboxed weftd never touches the real host: its interfaces, addresses, routes, forwarding
//! sysctls and nftables ruleset are the same before and after a daemon ran the seed, a bridge
//! and a restart in its scratch namespace.

mod common;

use std::process::Command;

use common::*;
use serde_json::{Value, json};

/// What of the real host a misdirected weftd could change.
fn real_host() -> Value {
    let ip = |args: &[&str]| -> Value {
        let out = run(Command::new("ip").arg("-j").args(args));
        assert!(out.status.success(), "ip {args:?}: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut v: Value = if text.trim().is_empty() {
            json!([])
        } else {
            serde_json::from_str(&text).expect("ip -j")
        };
        scrub_volatile(&mut v);
        v
    };
    let sysctl = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let nft = run(Command::new("nft").args(["-j", "list", "ruleset"]));
    let links: Vec<Value> = ip(&["link", "show"])
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        // Other tests of this run add their scratch namespaces' ids meanwhile; keep only what
        // belongs to the host's own interfaces.
        .map(|l| {
            json!({
                "ifindex": l["ifindex"], "ifname": l["ifname"], "flags": l["flags"],
                "mtu": l["mtu"], "address": l["address"], "master": l["master"],
                "ifalias": l["ifalias"],
            })
        })
        .collect();
    json!({
        "links": links,
        "addr": ip(&["addr", "show"]),
        "route4": ip(&["-4", "route", "show", "table", "all"]),
        "route6": ip(&["-6", "route", "show", "table", "all"]),
        "ip_forward": sysctl("/proc/sys/net/ipv4/ip_forward"),
        "ipv6_forwarding": sysctl("/proc/sys/net/ipv6/conf/all/forwarding"),
        "nft": String::from_utf8_lossy(&nft.stdout),
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sandboxed_weftd_leaves_the_real_host_alone() {
    let before = real_host();
    {
        let mut sb = Sandbox::new("isolate").await;
        let c = sb.client();
        create_ns(&c, "ns1").await;
        create_ns(&c, "ns2").await;
        create_link(&c, seed_link()).await;
        create_link(&c, bridge("", "br0")).await;
        let mut port = veth(("", "hp0", &[]), ("ns1", "eth1", &["192.168.79.1/24"]));
        port.master = "br0".into();
        create_link(&c, port).await;
        sb.assert_ping("ns1", "192.168.1.20").await;
        sb.restart().await;
        sb.assert_ping("ns1", "192.168.1.20").await;
        assert!(
            sb.link("", "br0").is_some(),
            "br0 is not in the scratch host"
        );
    }
    let after = real_host();
    assert!(
        before == after,
        "the real host changed:\n{}",
        json_diff(&before, &after)
    );
}
