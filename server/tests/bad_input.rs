//! Bad requests get the right gRPC code and change nothing: not the store (what List answers),
//! not the kernel (interfaces in every namespace, files in the netns dir). Interfaces weft did
//! not make are never changed or deleted.

mod common;

use common::*;
use serde_json::{Value, json};
use tonic::Code;
use weft::v1::{
    CreateLinkRequest, CreateNamespaceRequest, DeleteLinkRequest, DeleteNamespaceRequest,
    GetLinkRequest, GetNamespaceRequest, Link, ListLinksRequest, ListNamespacesRequest,
    UpdateLinkRequest,
};

/// Everything a bad request could have changed: what the API lists, the netns dir, and per
/// namespace each interface's index, name, admin state, MTU, MAC, alias, master and global
/// addresses. (Carrier, operstate and link-local addresses move by themselves for a moment
/// after a veth is made, so they are left out.)
async fn world(sb: &Sandbox) -> Value {
    let c = sb.client();
    let namespaces: Vec<Value> = rpc(c
        .namespaces()
        .list_namespaces(ListNamespacesRequest::default()))
    .await
    .expect("ListNamespaces")
    .namespaces
    .into_iter()
    .map(|n| json!([n.name, n.generation, n.uid]))
    .collect();
    let links: Vec<Value> = rpc(c.links().list_links(ListLinksRequest::default()))
        .await
        .expect("ListLinks")
        .links
        .into_iter()
        .map(|l| json!([l.namespace, l.name, l.generation, l.uid]))
        .collect();
    let mut netns_files: Vec<String> = std::fs::read_dir(sb.netns_dir())
        .expect("read netns dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    netns_files.sort();
    let mut kernel = serde_json::Map::new();
    for ns in std::iter::once("".to_string()).chain(netns_files.iter().cloned()) {
        let ifaces: Vec<Value> = sb
            .links(&ns)
            .iter()
            .map(|l| {
                let name = l["ifname"].as_str().unwrap_or_default();
                json!({
                    "ifindex": l["ifindex"], "ifname": name, "up": has_flag(l, "UP"),
                    "mtu": l["mtu"], "address": l["address"], "ifalias": l["ifalias"],
                    "master": l["master"], "addrs": sb.addrs(&ns, name),
                })
            })
            .collect();
        kernel.insert(ns, Value::Array(ifaces));
    }
    json!({
        "namespaces": namespaces,
        "links": links,
        "netns_files": netns_files,
        "kernel": kernel,
    })
}

/// Runs a bad request, checks its code and that nothing changed.
async fn rejects<T: std::fmt::Debug>(
    sb: &Sandbox,
    what: &str,
    code: Code,
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) {
    let before = world(sb).await;
    let r = rpc(call).await;
    match r {
        Ok(v) => panic!("{what}: expected {code:?}, the call succeeded with {v:?}"),
        Err(s) => {
            assert_eq!(
                s.code(),
                code,
                "{what}: wrong code, message {:?}",
                s.message()
            );
            assert!(
                !s.message().is_empty(),
                "{what}: {code:?} without a message"
            );
        }
    }
    let after = world(sb).await;
    assert!(
        before == after,
        "{what} changed something:\n{}",
        json_diff(&before, &after)
    );
}

fn create_link_req(link: Link) -> CreateLinkRequest {
    CreateLinkRequest {
        dry_run: false,
        link: Some(link),
        wait: None,
        request_id: String::new(),
    }
}

/// The seed pair with one change.
fn seed_with(f: impl FnOnce(&mut Link)) -> CreateLinkRequest {
    let mut l = seed_link();
    f(&mut l);
    create_link_req(l)
}

fn peer_mut(l: &mut Link) -> &mut weft::v1::VethPeer {
    match l.kind.as_mut() {
        Some(weft::v1::link::Kind::Veth(v)) => v.peer.as_mut().expect("peer"),
        _ => panic!("not a veth"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_names_and_addresses_are_invalid_argument() {
    let sb = Sandbox::new("badarg").await;
    let c = sb.client();
    create_ns(&c, "ns1").await;
    create_ns(&c, "ns2").await;

    let cases: Vec<(&str, CreateLinkRequest)> = vec![
        (
            "name of 16 bytes",
            seed_with(|l| l.name = "abcdefghijklmnop".into()),
        ),
        (
            "peer name of 16 bytes",
            seed_with(|l| peer_mut(l).name = "abcdefghijklmnop".into()),
        ),
        ("name with '/'", seed_with(|l| l.name = "veth/1".into())),
        ("empty name", seed_with(|l| l.name = String::new())),
        (
            "empty peer name",
            seed_with(|l| peer_mut(l).name = String::new()),
        ),
        ("name with a space", seed_with(|l| l.name = "veth 1".into())),
        ("name \"..\"", seed_with(|l| l.name = "..".into())),
        (
            "CIDR with prefix 33",
            seed_with(|l| l.addresses = vec!["192.168.1.10/33".into()]),
        ),
        (
            "CIDR with octet 300",
            seed_with(|l| l.addresses = vec!["192.168.1.300/24".into()]),
        ),
        (
            "CIDR that is a word",
            seed_with(|l| l.addresses = vec!["not-an-ip/24".into()]),
        ),
        (
            "peer CIDR garbage",
            seed_with(|l| peer_mut(l).addresses = vec!["fd00::zz/64".into()]),
        ),
        (
            "multicast MAC",
            seed_with(|l| l.mac_address = "01:00:5e:00:00:01".into()),
        ),
        (
            "malformed MAC",
            seed_with(|l| l.mac_address = "02:00:00:00:01".into()),
        ),
        (
            "route with a bad destination",
            seed_with(|l| {
                l.routes = vec![weft::v1::Route {
                    destination: "10.0.0.0/99".into(),
                    gateway: String::new(),
                    metric: 0,
                }]
            }),
        ),
        ("no kind", seed_with(|l| l.kind = None)),
        (
            "veth without a peer",
            seed_with(|l| l.kind = Some(weft::v1::link::Kind::Veth(weft::v1::Veth { peer: None }))),
        ),
    ];
    for (what, req) in cases {
        rejects(&sb, what, Code::InvalidArgument, c.links().create_link(req)).await;
    }
    rejects(
        &sb,
        "CreateLink without a link",
        Code::InvalidArgument,
        c.links().create_link(CreateLinkRequest::default()),
    )
    .await;
    for (what, name) in [
        ("namespace name with '/'", "a/b"),
        ("empty namespace name", ""),
        ("namespace name starting with '.'", ".hidden"),
        ("namespace name of 65 bytes", &"n".repeat(65)),
    ] {
        rejects(
            &sb,
            what,
            Code::InvalidArgument,
            c.namespaces().create_namespace(CreateNamespaceRequest {
                dry_run: false,
                request_id: String::new(),
                namespace: Some(ns_msg(name)),
                wait: None,
            }),
        )
        .await;
    }
    // Nothing was made along the way, and the good request still works afterwards.
    assert_eq!(sb.link_names("ns1"), ["lo"]);
    assert_eq!(sb.link_names("ns2"), ["lo"]);
    create_link(&c, seed_link()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_things_are_not_found_and_duplicates_already_exist() {
    let sb = Sandbox::new("badref").await;
    let c = sb.client();
    create_ns(&c, "ns1").await;
    create_ns(&c, "ns2").await;

    rejects(
        &sb,
        "link in an unknown namespace",
        Code::NotFound,
        c.links()
            .create_link(seed_with(|l| l.namespace = "nosuch".into())),
    )
    .await;
    rejects(
        &sb,
        "veth whose peer namespace is missing",
        Code::NotFound,
        c.links()
            .create_link(seed_with(|l| peer_mut(l).namespace = "nosuch".into())),
    )
    .await;
    assert!(sb.link("ns1", "veth1").is_none(), "first end made anyway");
    rejects(
        &sb,
        "GetNamespace of an unknown namespace",
        Code::NotFound,
        c.namespaces().get_namespace(GetNamespaceRequest {
            name: "nosuch".into(),
        }),
    )
    .await;
    rejects(
        &sb,
        "DeleteNamespace of an unknown namespace",
        Code::NotFound,
        c.namespaces().delete_namespace(DeleteNamespaceRequest {
            dry_run: false,
            name: "nosuch".into(),
            wait: None,
        }),
    )
    .await;
    rejects(
        &sb,
        "GetLink of an unknown link",
        Code::NotFound,
        c.links().get_link(GetLinkRequest {
            namespace: "ns1".into(),
            name: "veth9".into(),
        }),
    )
    .await;
    rejects(
        &sb,
        "DeleteLink of an unknown link in a weft namespace",
        Code::NotFound,
        c.links().delete_link(DeleteLinkRequest {
            dry_run: false,
            namespace: "ns1".into(),
            name: "veth9".into(),
            wait: None,
        }),
    )
    .await;

    rejects(
        &sb,
        "duplicate namespace",
        Code::AlreadyExists,
        c.namespaces().create_namespace(CreateNamespaceRequest {
            dry_run: false,
            request_id: String::new(),
            namespace: Some(ns_msg("ns1")),
            wait: None,
        }),
    )
    .await;

    let link = create_link(&c, seed_link()).await;
    let index = sb.must_link("ns1", "veth1")["ifindex"].clone();
    rejects(
        &sb,
        "the same link again",
        Code::AlreadyExists,
        c.links().create_link(create_link_req(seed_link())),
    )
    .await;
    rejects(
        &sb,
        "a new pair reusing veth1's name",
        Code::AlreadyExists,
        c.links().create_link(create_link_req(veth(
            ("ns1", "veth1", &[]),
            ("ns2", "other2", &[]),
        ))),
    )
    .await;
    rejects(
        &sb,
        "a new pair whose peer reuses veth2's name",
        Code::AlreadyExists,
        c.links().create_link(create_link_req(veth(
            ("ns1", "other1", &[]),
            ("ns2", "veth2", &[]),
        ))),
    )
    .await;
    rejects(
        &sb,
        "a bridge reusing veth1's name",
        Code::AlreadyExists,
        c.links()
            .create_link(create_link_req(bridge("ns1", "veth1"))),
    )
    .await;
    rejects(
        &sb,
        "deleting a namespace that still holds links",
        Code::FailedPrecondition,
        c.namespaces().delete_namespace(DeleteNamespaceRequest {
            dry_run: false,
            name: "ns1".into(),
            wait: None,
        }),
    )
    .await;
    // The pair is untouched by all of that.
    let v1 = sb.must_link("ns1", "veth1");
    assert_eq!(v1["ifindex"], index);
    assert_eq!(ifalias(&v1), format!("weft:{}", link.uid));
    assert!(sb.ns_path("ns1").exists());
    sb.assert_ping("ns1", "192.168.1.20").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn interfaces_weft_does_not_own_are_left_alone() {
    let mut sb = Sandbox::builder("foreign").resync(1).start().await;
    let c = sb.client();
    // Made by hand in the scratch host: a bridge and a veth pair, no weft mark.
    sb.host_ok(&["ip", "link", "add", "hand0", "type", "bridge"]);
    sb.host_ok(&[
        "ip", "link", "add", "handa", "type", "veth", "peer", "name", "handb",
    ]);
    sb.host_ok(&["ip", "addr", "add", "192.168.90.1/24", "dev", "hand0"]);
    let hand = |sb: &Sandbox, name: &str| {
        let mut l = sb.must_link("", name);
        scrub_volatile(&mut l);
        l
    };
    let before: Vec<Value> = ["hand0", "handa", "handb"]
        .iter()
        .map(|n| hand(&sb, n))
        .collect();

    for name in ["hand0", "handa", "handb"] {
        rejects(
            &sb,
            &format!("DeleteLink of hand-made {name}"),
            Code::FailedPrecondition,
            c.links().delete_link(DeleteLinkRequest {
                dry_run: false,
                namespace: String::new(),
                name: name.into(),
                wait: None,
            }),
        )
        .await;
        let mut change = Link {
            name: name.into(),
            namespace: String::new(),
            mtu: 1300,
            up: true,
            ..Default::default()
        };
        change.addresses = vec!["192.168.91.1/24".into()];
        rejects(
            &sb,
            &format!("UpdateLink of hand-made {name}"),
            Code::FailedPrecondition,
            c.links().update_link(UpdateLinkRequest {
                dry_run: false,
                link: Some(change),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["mtu".into(), "up".into(), "addresses".into()],
                }),
                wait: None,
            }),
        )
        .await;
    }
    // Creating a link over a hand-made name must not adopt it (either code says "not yours").
    let r = rpc(c.links().create_link(create_link_req(bridge("", "hand0")))).await;
    let s = r.expect_err("CreateLink over hand-made hand0 succeeded");
    assert!(
        matches!(s.code(), Code::AlreadyExists | Code::FailedPrecondition),
        "CreateLink over hand0: {s:?}"
    );
    let after: Vec<Value> = ["hand0", "handa", "handb"]
        .iter()
        .map(|n| hand(&sb, n))
        .collect();
    assert_eq!(before, after, "a hand-made interface changed");
    for l in &after {
        assert!(
            !ifalias(l).starts_with("weft:"),
            "weft marked a hand-made interface: {l}"
        );
    }
    assert_eq!(sb.addrs("", "hand0"), ["192.168.90.1/24"]);
    // A restart (start-up reconcile, orphan collection, then three resync passes) leaves them
    // alone too.
    sb.restart().await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let again: Vec<Value> = ["hand0", "handa", "handb"]
        .iter()
        .map(|n| hand(&sb, n))
        .collect();
    assert_eq!(
        before, again,
        "a hand-made interface changed across a restart"
    );
}
