//! The seed's walk-through through the Rust client: two namespaces, the exact veth pair of
//! issue 2, and a ping from ns1 to ns2, checked on the kernel with `ip -j`.

mod common;

use common::*;
use weft::v1::{
    DeleteLinkRequest, DeleteNamespaceRequest, GetLinkRequest, GetNamespaceRequest,
    ListLinksRequest, ListNamespacesRequest, Phase,
};

#[tokio::test(flavor = "multi_thread")]
async fn seed_walk_through_ends_with_a_ping() {
    let sb = Sandbox::new("seed").await;
    let c = sb.client();

    let ns1 = create_ns(&c, "ns1").await;
    let ns2 = create_ns(&c, "ns2").await;
    for ns in [&ns1, &ns2] {
        assert_eq!(
            ns.status_path,
            sb.ns_path(&ns.name).display().to_string(),
            "status_path of {}",
            ns.name
        );
        assert!(!ns.uid.is_empty(), "namespace {} has no uid", ns.name);
    }

    let link = create_link(&c, seed_link()).await;
    assert_eq!(link.name, "veth1");
    assert_eq!(link.namespace, "ns1");
    assert_eq!(link.addresses, vec!["192.168.1.10/24".to_string()]);
    assert!(link.status_index > 0, "status_index {}", link.status_index);

    // Both ends exist where they should, with their addresses, up, and marked as weft's.
    let veth1 = sb.must_link("ns1", "veth1");
    let veth2 = sb.must_link("ns2", "veth2");
    assert!(has_flag(&veth1, "UP"), "veth1 is not up: {veth1}");
    assert!(has_flag(&veth2, "UP"), "veth2 is not up: {veth2}");
    assert_eq!(veth1["linkinfo"]["info_kind"], "veth", "{veth1}");
    assert_eq!(veth2["linkinfo"]["info_kind"], "veth", "{veth2}");
    assert_eq!(
        veth1["ifindex"], link.status_index,
        "status_index vs kernel"
    );
    assert_eq!(sb.addrs("ns1", "veth1"), vec!["192.168.1.10/24"]);
    assert_eq!(sb.addrs("ns2", "veth2"), vec!["192.168.1.20/24"]);
    assert_eq!(ifalias(&veth1), format!("weft:{}", link.uid), "veth1 mark");
    assert!(
        ifalias(&veth2).starts_with(&format!("weft:{}", link.uid)),
        "veth2 mark: {veth2}"
    );
    // Nothing leaked into the scratch host, and nothing else into the namespaces.
    assert!(sb.link("", "veth1").is_none() && sb.link("", "veth2").is_none());
    assert!(sb.link("ns1", "veth2").is_none() && sb.link("ns2", "veth1").is_none());
    let lo = sb.must_link("ns1", "lo");
    assert!(has_flag(&lo, "UP"), "loopback of ns1 is down: {lo}");

    sb.assert_ping("ns1", "192.168.1.20").await;
    sb.assert_ping("ns2", "192.168.1.10").await;

    // Get by either end describes the pair from its first end.
    for (ns, name) in [("ns1", "veth1"), ("ns2", "veth2")] {
        let got = rpc(c.links().get_link(GetLinkRequest {
            namespace: ns.into(),
            name: name.into(),
        }))
        .await
        .unwrap_or_else(|s| panic!("GetLink {ns}/{name}: {s:?}"))
        .link
        .expect("link");
        assert_eq!(
            (got.namespace.as_str(), got.name.as_str()),
            ("ns1", "veth1")
        );
        assert_eq!(got.uid, link.uid);
        assert_eq!(got.status.as_ref().map(|s| s.phase()), Some(Phase::Ready));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn lists_filter_and_deletes_remove_kernel_objects() {
    let sb = Sandbox::new("list").await;
    let c = sb.client();
    create_ns(&c, "ns2").await;
    create_ns(&c, "ns1").await;
    create_ns(&c, "ns3").await;
    create_link(&c, seed_link()).await;

    let names: Vec<String> = rpc(c
        .namespaces()
        .list_namespaces(ListNamespacesRequest::default()))
    .await
    .expect("ListNamespaces")
    .namespaces
    .into_iter()
    .map(|n| n.name)
    .collect();
    assert_eq!(names, ["ns1", "ns2", "ns3"], "sorted by name");

    let in_ns = |ns: &str| ListLinksRequest {
        namespace: Some(ns.to_string()),
        ..Default::default()
    };
    let all = rpc(c.links().list_links(ListLinksRequest::default()))
        .await
        .expect("ListLinks");
    assert_eq!(all.links.len(), 1);
    for ns in ["ns1", "ns2"] {
        let l = rpc(c.links().list_links(in_ns(ns)))
            .await
            .expect("ListLinks");
        assert_eq!(l.links.len(), 1, "links with an end in {ns}");
        assert_eq!(l.links[0].name, "veth1");
    }
    for ns in ["ns3", ""] {
        let l = rpc(c.links().list_links(in_ns(ns)))
            .await
            .expect("ListLinks");
        assert!(l.links.is_empty(), "links in {ns:?}: {:?}", l.links);
    }

    // Deleting the pair by its peer end removes both ends from the kernel.
    rpc(c.links().delete_link(DeleteLinkRequest {
        dry_run: false,
        namespace: "ns2".into(),
        name: "veth2".into(),
        wait: None,
    }))
    .await
    .expect("DeleteLink by the peer end");
    assert!(sb.link("ns1", "veth1").is_none(), "veth1 still in ns1");
    assert!(sb.link("ns2", "veth2").is_none(), "veth2 still in ns2");
    let l = rpc(c.links().list_links(ListLinksRequest::default()))
        .await
        .expect("ListLinks");
    assert!(l.links.is_empty(), "links after delete: {:?}", l.links);
    let gone = rpc(c.links().get_link(GetLinkRequest {
        namespace: "ns1".into(),
        name: "veth1".into(),
    }))
    .await;
    expect_code(gone, tonic::Code::NotFound);

    // Now the namespace can go, and its file and mount go with it.
    let path = sb.ns_path("ns1");
    assert!(path.exists());
    rpc(c.namespaces().delete_namespace(DeleteNamespaceRequest {
        dry_run: false,
        name: "ns1".into(),
        wait: None,
    }))
    .await
    .expect("DeleteNamespace ns1");
    assert!(!path.exists(), "{} still exists", path.display());
    assert!(
        !mount_points().contains(&path),
        "{} is still mounted",
        path.display()
    );
    let gone = rpc(c
        .namespaces()
        .get_namespace(GetNamespaceRequest { name: "ns1".into() }))
    .await;
    expect_code(gone, tonic::Code::NotFound);
}
