//! UpdateLink changes interfaces in place: MTU, MAC, up/down, addresses and routes (a default
//! route too), on either end of a veth, without recreating them.

mod common;

use common::*;
use serde_json::Value;
use weft::v1::{Link, Route, UpdateLinkRequest, UpdateLinkResponse, VethPeer};

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| p.to_string()).collect(),
    })
}

async fn update(c: &weft::Client, link: Link, paths: &[&str]) -> Link {
    let what = format!("UpdateLink {}/{} {paths:?}", link.namespace, link.name);
    let r: UpdateLinkResponse = rpc(c.links().update_link(UpdateLinkRequest {
        dry_run: false,
        link: Some(link),
        update_mask: mask(paths),
        wait: None,
    }))
    .await
    .unwrap_or_else(|s| panic!("{what}: {s:?}"));
    let l = r.link.expect("UpdateLink answered no link");
    assert_ready(&what, l.generation, l.status.as_ref());
    l
}

fn named(ns: &str, name: &str) -> Link {
    Link {
        name: name.into(),
        namespace: ns.into(),
        ..Default::default()
    }
}

fn route(dst: &str, gw: &str, metric: u32) -> Route {
    Route {
        destination: dst.into(),
        gateway: gw.into(),
        metric,
    }
}

/// The route to `dst` in `ns`, if any (IPv4 and IPv6 main tables).
fn find_route(sb: &Sandbox, ns: &str, dst: &str) -> Option<Value> {
    sb.routes(ns).into_iter().find(|r| r["dst"] == dst)
}

#[tokio::test(flavor = "multi_thread")]
async fn update_changes_mtu_mac_state_addresses_and_routes_in_place() {
    let sb = Sandbox::new("update").await;
    let c = sb.client();
    create_ns(&c, "ns1").await;
    create_ns(&c, "ns2").await;
    let created = create_link(&c, seed_link()).await;
    let index1 = sb.must_link("ns1", "veth1")["ifindex"].clone();
    let index2 = sb.must_link("ns2", "veth2")["ifindex"].clone();

    // MTU and MAC on the first end.
    let mut l = named("ns1", "veth1");
    l.mtu = 1400;
    l.mac_address = "02:00:5e:10:00:01".into();
    let got = update(&c, l, &["mtu", "mac_address"]).await;
    assert!(
        got.generation > created.generation,
        "generation did not grow"
    );
    assert_eq!(got.mtu, 1400);
    assert_eq!(got.status_mac_address, "02:00:5e:10:00:01");
    let v1 = sb.must_link("ns1", "veth1");
    assert_eq!(v1["mtu"], 1400, "{v1}");
    assert_eq!(v1["address"], "02:00:5e:10:00:01", "{v1}");

    // The peer's MTU through `veth.peer.mtu`.
    let mut l = named("ns1", "veth1");
    l.kind = Some(weft::v1::link::Kind::Veth(weft::v1::Veth {
        peer: Some(VethPeer {
            mtu: 1400,
            ..Default::default()
        }),
    }));
    update(&c, l, &["veth.peer.mtu"]).await;
    assert_eq!(sb.must_link("ns2", "veth2")["mtu"], 1400);
    sb.assert_ping("ns1", "192.168.1.20").await;

    // Addresses are replaced: one IPv4 swapped, one IPv6 added.
    let mut l = named("ns1", "veth1");
    l.addresses = vec!["192.168.1.11/24".into(), "fd00:77::11/64".into()];
    update(&c, l, &["addresses"]).await;
    assert_eq!(
        sb.addrs("ns1", "veth1"),
        vec!["192.168.1.11/24", "fd00:77::11/64"]
    );
    sb.assert_ping("ns2", "192.168.1.11").await;
    assert!(
        !sb.ping("ns2", "192.168.1.10"),
        "the old address still answers"
    );

    // Routes: a default route via the peer, a metric'd prefix via the peer, and a scope-link
    // route straight out of the interface.
    let mut l = named("ns1", "veth1");
    l.routes = vec![
        route("default", "192.168.1.20", 0),
        route("192.168.200.0/24", "192.168.1.20", 50),
        route("192.168.201.0/24", "", 0),
    ];
    update(&c, l, &["routes"]).await;
    let d = find_route(&sb, "ns1", "default").expect("no default route in ns1");
    assert_eq!(d["gateway"], "192.168.1.20", "{d}");
    assert_eq!(d["dev"], "veth1", "{d}");
    let r = find_route(&sb, "ns1", "192.168.200.0/24").expect("no route to 192.168.200.0/24");
    assert_eq!(r["gateway"], "192.168.1.20", "{r}");
    assert_eq!(r["metric"], 50, "{r}");
    let r = find_route(&sb, "ns1", "192.168.201.0/24").expect("no route to 192.168.201.0/24");
    assert_eq!(r["scope"], "link", "{r}");
    assert!(r.get("gateway").is_none(), "{r}");
    // The kernel uses the default route for an address no other route covers (a lookup only,
    // nothing is sent).
    let out = sb.ok_in("ns1", &["ip", "-j", "route", "get", "192.168.202.1"]);
    assert!(
        out.contains("\"gateway\":\"192.168.1.20\""),
        "route get: {out}"
    );

    // Routes cleared with a mask.
    update(&c, named("ns1", "veth1"), &["routes"]).await;
    assert!(
        find_route(&sb, "ns1", "default").is_none(),
        "default route kept"
    );
    assert!(
        find_route(&sb, "ns1", "192.168.200.0/24").is_none(),
        "route kept"
    );
    assert!(
        find_route(&sb, "ns1", "192.168.201.0/24").is_none(),
        "route kept"
    );

    // Down, then up again (setting `up` false needs the mask).
    update(&c, named("ns1", "veth1"), &["up"]).await;
    let v1 = sb.must_link("ns1", "veth1");
    assert!(!has_flag(&v1, "UP"), "veth1 still up: {v1}");
    assert!(
        !sb.ping("ns2", "192.168.1.11"),
        "ping through a down interface"
    );
    let mut l = named("ns1", "veth1");
    l.up = true;
    update(&c, l, &["up"]).await;
    assert!(has_flag(&sb.must_link("ns1", "veth1"), "UP"));
    sb.assert_ping("ns2", "192.168.1.11").await;

    // Everything happened in place: same interfaces, same indexes, still weft's.
    let v1 = sb.must_link("ns1", "veth1");
    let v2 = sb.must_link("ns2", "veth2");
    assert_eq!(v1["ifindex"], index1, "veth1 was recreated");
    assert_eq!(v2["ifindex"], index2, "veth2 was recreated");
    assert_eq!(ifalias(&v1), format!("weft:{}", created.uid));
    assert_eq!(v1["mtu"], 1400);
    assert_eq!(v1["address"], "02:00:5e:10:00:01");
}

#[tokio::test(flavor = "multi_thread")]
async fn update_without_mask_changes_only_set_fields_and_peer_routes_work() {
    let sb = Sandbox::new("updpeer").await;
    let c = sb.client();
    create_ns(&c, "ns1").await;
    create_ns(&c, "ns2").await;
    create_link(&c, seed_link()).await;

    // No mask: only non-default fields change (mtu); addresses and up stay.
    let mut l = named("ns2", "veth2");
    l.mtu = 1280;
    let r = rpc(c.links().update_link(UpdateLinkRequest {
        dry_run: false,
        link: Some(l),
        update_mask: None,
        wait: None,
    }))
    .await
    .expect("UpdateLink without mask");
    let got = r.link.expect("link");
    assert_ready("veth2 mtu", got.generation, got.status.as_ref());
    // Named by its peer end, the veth is still described from veth1; which end got the MTU
    // is what the kernel says.
    let v1 = sb.must_link("ns1", "veth1");
    let v2 = sb.must_link("ns2", "veth2");
    assert!(
        v1["mtu"] == 1280 || v2["mtu"] == 1280,
        "no end got mtu 1280: {v1} {v2}"
    );
    assert!(
        has_flag(&v1, "UP") && has_flag(&v2, "UP"),
        "an end went down"
    );
    assert_eq!(sb.addrs("ns1", "veth1"), vec!["192.168.1.10/24"]);
    assert_eq!(sb.addrs("ns2", "veth2"), vec!["192.168.1.20/24"]);

    // A default route on the peer through `veth.peer.routes`.
    let mut l = named("ns1", "veth1");
    l.kind = Some(weft::v1::link::Kind::Veth(weft::v1::Veth {
        peer: Some(VethPeer {
            routes: vec![route("default", "192.168.1.10", 0)],
            ..Default::default()
        }),
    }));
    update(&c, l, &["veth.peer.routes"]).await;
    let d = find_route(&sb, "ns2", "default").expect("no default route in ns2");
    assert_eq!(d["gateway"], "192.168.1.10", "{d}");
    assert_eq!(d["dev"], "veth2", "{d}");
    assert!(
        find_route(&sb, "ns1", "default").is_none(),
        "route on the wrong end"
    );
}
