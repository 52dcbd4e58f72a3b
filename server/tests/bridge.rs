//! A bridge in the (scratch) host namespace with two veth ports carries traffic between two
//! namespaces.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn bridge_with_two_veth_ports_carries_a_ping() {
    let sb = Sandbox::new("bridge").await;
    let c = sb.client();
    create_ns(&c, "a").await;
    create_ns(&c, "b").await;

    let br = create_link(&c, bridge("", "br0")).await;
    for (host_end, ns, addr) in [
        ("ha", "a", "192.168.77.1/24"),
        ("hb", "b", "192.168.77.2/24"),
    ] {
        let mut port = veth(("", host_end, &[]), (ns, "eth0", &[addr]));
        port.master = "br0".into();
        create_link(&c, port).await;
    }

    let br0 = sb.must_link("", "br0");
    assert_eq!(br0["linkinfo"]["info_kind"], "bridge", "{br0}");
    assert!(has_flag(&br0, "UP"), "br0 down: {br0}");
    assert_eq!(ifalias(&br0), format!("weft:{}", br.uid));
    for port in ["ha", "hb"] {
        let l = sb.must_link("", port);
        assert_eq!(l["master"], "br0", "{port} is not a port of br0: {l}");
        assert!(has_flag(&l, "UP"), "{port} down: {l}");
        assert!(ifalias(&l).starts_with("weft:"), "{port} unmarked: {l}");
        assert_eq!(
            l["linkinfo"]["info_slave_kind"], "bridge",
            "{port} is no bridge port: {l}"
        );
    }
    assert_eq!(sb.addrs("a", "eth0"), vec!["192.168.77.1/24"]);
    assert_eq!(sb.addrs("b", "eth0"), vec!["192.168.77.2/24"]);
    assert!(
        sb.link("", "eth0").is_none(),
        "an inside end leaked into the host"
    );

    sb.assert_ping("a", "192.168.77.2").await;
    sb.assert_ping("b", "192.168.77.1").await;

    // Taking a port off the bridge (master cleared, through a mask) cuts the path.
    let mut change = weft::v1::Link {
        name: "hb".into(),
        namespace: String::new(),
        ..Default::default()
    };
    change.master = String::new();
    let r = rpc(c.links().update_link(weft::v1::UpdateLinkRequest {
        dry_run: false,
        link: Some(change),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["master".into()],
        }),
        wait: None,
    }))
    .await
    .expect("UpdateLink hb master=\"\"");
    let l = r.link.expect("link");
    assert_ready("hb", l.generation, l.status.as_ref());
    let hb = sb.must_link("", "hb");
    assert!(hb.get("master").is_none(), "hb still has a master: {hb}");
    assert!(
        !sb.ping("a", "192.168.77.2"),
        "ping crossed a bridge without the port"
    );
}
