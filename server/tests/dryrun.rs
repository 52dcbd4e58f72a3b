//! dry_run: every mutating call validates and plans exactly as a real one would, answers the
//! kernel changes it would make, and writes nothing — not to the store (no object, no lease),
//! not to the kernel (no interface; GetSystemInfo.kernel_writes does not move).

mod common;

use common::*;
use tonic::Code;
use weft::v1::{
    ConnectRequest, CreateLinkRequest, CreateNamespaceRequest, DeleteLinkRequest,
    DeleteNamespaceRequest, DisconnectRequest, GetNetworkRequest, GetSystemInfoRequest,
    ListLinksRequest, PlannedChange, PublishedPort, UpdateLinkRequest,
    system_service_client::SystemServiceClient,
};

async fn writes(c: &weft::Client) -> u64 {
    rpc(SystemServiceClient::new(c.channel()).get_system_info(GetSystemInfoRequest {}))
        .await
        .unwrap()
        .kernel_writes
}

fn has(plan: &[PlannedChange], action: &str, kind: &str, target_part: &str) -> bool {
    plan.iter()
        .any(|p| p.action == action && p.kind == kind && p.target.contains(target_part))
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_runs_plan_and_change_nothing() {
    let sb = Sandbox::new("dry").await;
    let c = sb.client();
    create_ns(&c, "ns1").await;
    create_ns(&c, "ns2").await;

    // A namespace that would be created: planned, not made.
    let before = writes(&c).await;
    let r = rpc(c.namespaces().create_namespace(CreateNamespaceRequest {
        namespace: Some(ns_msg("ns3")),
        dry_run: true,
        ..Default::default()
    }))
    .await
    .unwrap();
    assert!(
        has(&r.planned_changes, "create", "namespace", "ns3"),
        "{:?}",
        r.planned_changes
    );
    assert!(
        !sb.ns_path("ns3").exists(),
        "a dry run created the namespace file"
    );

    // The seed veth: planned end to end, nothing made.
    let r = rpc(c.links().create_link(CreateLinkRequest {
        link: Some(seed_link()),
        dry_run: true,
        ..Default::default()
    }))
    .await
    .unwrap();
    let plan = &r.planned_changes;
    assert!(has(plan, "create", "link", "veth1"), "{plan:?}");
    assert!(
        has(plan, "add", "address", "192.168.1.10/24 on veth1"),
        "{plan:?}"
    );
    assert!(
        has(plan, "add", "address", "192.168.1.20/24 on veth2"),
        "{plan:?}"
    );
    assert!(sb.link("ns1", "veth1").is_none(), "a dry run created veth1");
    let links = rpc(c.links().list_links(ListLinksRequest::default()))
        .await
        .unwrap()
        .links;
    assert!(links.is_empty(), "a dry run stored a link: {links:?}");

    // Connect: the lease it would take and the port mapping, yet no lease is held.
    let r = rpc(c.networks().connect(ConnectRequest {
        network: "bridge".into(),
        namespace: "ns1".into(),
        published_ports: vec![PublishedPort {
            host_port: 8080,
            container_port: 80,
            ..Default::default()
        }],
        dry_run: true,
        ..Default::default()
    }))
    .await
    .unwrap();
    let ep = r.endpoint.unwrap();
    assert!(
        !ep.ipv4_address.is_empty(),
        "the dry run names the address it would lease"
    );
    let plan = &r.planned_changes;
    assert!(has(plan, "add", "lease", ""), "{plan:?}");
    assert!(has(plan, "add", "port-mapping", ":8080/tcp"), "{plan:?}");
    assert!(has(plan, "add", "route", "default via"), "{plan:?}");
    let net = rpc(c.networks().get_network(GetNetworkRequest {
        name: "bridge".into(),
    }))
    .await
    .unwrap()
    .network
    .unwrap();
    assert_eq!(net.usage[0].leased, 0, "a dry run leased an address");
    assert!(net.endpoints.is_empty());
    assert!(sb.link("ns1", "eth0").is_none(), "a dry run made eth0");
    assert_eq!(writes(&c).await, before, "dry runs wrote to the kernel");

    // Bad input is refused exactly as without dry_run.
    create_link(&c, seed_link()).await;
    let dup = rpc(c.links().create_link(CreateLinkRequest {
        link: Some(seed_link()),
        dry_run: true,
        ..Default::default()
    }))
    .await;
    expect_code(dup, Code::AlreadyExists);
    let bad = rpc(c.namespaces().delete_namespace(DeleteNamespaceRequest {
        name: "ns1".into(),
        dry_run: true,
        ..Default::default()
    }))
    .await;
    expect_code(bad, Code::FailedPrecondition);

    // Update and delete of a real link: planned, not done.
    let before = writes(&c).await;
    let mtu_before = sb.must_link("ns1", "veth1")["mtu"].as_u64().unwrap();
    let r = rpc(c.links().update_link(UpdateLinkRequest {
        link: Some(weft::v1::Link {
            name: "veth1".into(),
            namespace: "ns1".into(),
            mtu: 1400,
            ..Default::default()
        }),
        dry_run: true,
        ..Default::default()
    }))
    .await
    .unwrap();
    assert!(
        r.planned_changes
            .iter()
            .any(|p| p.action == "set" && p.detail.contains("mtu 1400")),
        "{:?}",
        r.planned_changes
    );
    assert_eq!(
        r.link.unwrap().mtu,
        1400,
        "the answer shows the link as it would be"
    );
    assert_eq!(
        sb.must_link("ns1", "veth1")["mtu"].as_u64().unwrap(),
        mtu_before
    );
    let r = rpc(c.links().delete_link(DeleteLinkRequest {
        namespace: "ns1".into(),
        name: "veth1".into(),
        dry_run: true,
        ..Default::default()
    }))
    .await
    .unwrap();
    assert!(
        has(&r.planned_changes, "delete", "link", "veth1"),
        "{:?}",
        r.planned_changes
    );
    assert!(
        sb.link("ns1", "veth1").is_some(),
        "a dry-run delete removed veth1"
    );
    assert_ready(
        "veth1",
        1,
        rpc(c.links().get_link(weft::v1::GetLinkRequest {
            namespace: "ns1".into(),
            name: "veth1".into(),
        }))
        .await
        .unwrap()
        .link
        .unwrap()
        .status
        .as_ref(),
    );

    // Disconnect of a real endpoint: DNAT first, then the veth, then the lease.
    rpc(c.networks().connect(ConnectRequest {
        network: "bridge".into(),
        namespace: "ns2".into(),
        published_ports: vec![PublishedPort {
            host_port: 8081,
            container_port: 80,
            ..Default::default()
        }],
        ..Default::default()
    }))
    .await
    .unwrap();
    let before = before.max(writes(&c).await);
    let r = rpc(c.networks().disconnect(DisconnectRequest {
        network: "bridge".into(),
        namespace: "ns2".into(),
        dry_run: true,
        ..Default::default()
    }))
    .await
    .unwrap();
    let kinds: Vec<(&str, &str)> = r
        .planned_changes
        .iter()
        .map(|p| (p.action.as_str(), p.kind.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("remove", "port-mapping"),
            ("delete", "link"),
            ("remove", "lease")
        ],
        "{:?}",
        r.planned_changes
    );
    assert!(
        sb.link("ns2", "eth0").is_some(),
        "a dry-run disconnect removed eth0"
    );
    assert_eq!(writes(&c).await, before, "dry runs wrote to the kernel");
}

/// A plan names an adopted namespace by the name weft knows it by, as every other answer
/// does, not by its path: for a Connect and for a link with an end in it.
#[tokio::test(flavor = "multi_thread")]
async fn plans_name_adopted_namespaces_as_the_api_does() {
    let sb = Sandbox::new("dryad").await;
    let c = sb.client();
    create_ns(&c, "ns1").await;
    let foreign = Foreign::add(&sb);
    let path = foreign.path();
    rpc(c.namespaces().create_namespace(CreateNamespaceRequest {
        namespace: Some(weft::v1::Namespace {
            name: "ctr".into(),
            path: path.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }))
    .await
    .expect("adopting a foreign namespace");
    let by_name_only = |plan: &[PlannedChange]| {
        assert!(
            !plan
                .iter()
                .any(|p| p.target.contains(&path) || p.detail.contains(&path)),
            "a plan named the adopted namespace by its path: {plan:?}"
        );
    };

    let r = rpc(c.networks().connect(ConnectRequest {
        network: "bridge".into(),
        namespace: "ctr".into(),
        dry_run: true,
        ..Default::default()
    }))
    .await
    .unwrap();
    let plan = &r.planned_changes;
    assert!(
        has(plan, "add", "address", "on eth0 in namespace \"ctr\""),
        "{plan:?}"
    );
    assert!(
        has(plan, "add", "route", "on eth0 in namespace \"ctr\""),
        "{plan:?}"
    );
    by_name_only(plan);

    let r = rpc(c.links().create_link(CreateLinkRequest {
        link: Some(veth(
            ("ctr", "va", &["192.168.7.1/24"]),
            ("ns1", "vb", &["192.168.7.2/24"]),
        )),
        dry_run: true,
        ..Default::default()
    }))
    .await
    .unwrap();
    let plan = &r.planned_changes;
    assert!(
        has(plan, "create", "link", "va in namespace \"ctr\""),
        "{plan:?}"
    );
    assert!(
        has(
            plan,
            "add",
            "address",
            "192.168.7.2/24 on vb in namespace \"ns1\""
        ),
        "{plan:?}"
    );
    by_name_only(plan);
}
