//! Bad requests get the right gRPC code and change nothing: not the store (what List answers),
//! not the kernel (interfaces in every namespace, files in the netns dir). Interfaces weft did
//! not make are never changed or deleted.

mod common;

use std::{os::unix::fs::MetadataExt, time::Duration};

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

// ---- the table: every bad request, its code, its field, and nothing changed ----

#[path = "common/net.rs"]
mod net;

use weft::v1::{
    ConnectRequest, CreateNetworkRequest, DeleteNetworkRequest, DisconnectRequest,
    ListNetworksRequest, Namespace, Network, PublishedPort, Route, Subnet,
};

/// One request of any kind the table sends.
enum Req {
    Ns(CreateNamespaceRequest),
    Link(CreateLinkRequest),
    Update(UpdateLinkRequest),
    Net(CreateNetworkRequest),
    Connect(ConnectRequest),
    DeleteNet(&'static str),
    DeleteNs(&'static str),
    DeleteLink(&'static str, &'static str),
    Disconnect(&'static str, &'static str),
    ListLinks(&'static str),
}

/// One bad request: its name (reported on failure), the request, the code it must get and a
/// text its message must contain (the field it names, or for a reference the object).
struct Case {
    name: String,
    req: Req,
    code: Code,
    names: &'static str,
}

/// Sends `req`; Ok when the call succeeded (which is a failure of the case).
async fn send(c: &weft::Client, req: Req) -> Result<(), tonic::Status> {
    match req {
        Req::Ns(r) => rpc(c.namespaces().create_namespace(r)).await.map(drop),
        Req::Link(r) => rpc(c.links().create_link(r)).await.map(drop),
        Req::Update(r) => rpc(c.links().update_link(r)).await.map(drop),
        Req::Net(r) => rpc(c.networks().create_network(r)).await.map(drop),
        Req::Connect(r) => rpc(c.networks().connect(r)).await.map(drop),
        Req::DeleteNet(name) => rpc(c.networks().delete_network(DeleteNetworkRequest {
            name: name.into(),
            ..Default::default()
        }))
        .await
        .map(drop),
        Req::DeleteNs(name) => rpc(c.namespaces().delete_namespace(DeleteNamespaceRequest {
            name: name.into(),
            ..Default::default()
        }))
        .await
        .map(drop),
        Req::DeleteLink(ns, name) => rpc(c.links().delete_link(DeleteLinkRequest {
            namespace: ns.into(),
            name: name.into(),
            ..Default::default()
        }))
        .await
        .map(drop),
        Req::Disconnect(net, ns) => rpc(c.networks().disconnect(DisconnectRequest {
            network: net.into(),
            namespace: ns.into(),
            ..Default::default()
        }))
        .await
        .map(drop),
        Req::ListLinks(sel) => rpc(c.links().list_links(ListLinksRequest {
            label_selector: sel.into(),
            ..Default::default()
        }))
        .await
        .map(drop),
    }
}

/// Everything a request could change: every object of every kind as List shows it
/// (networks with their endpoints), and per namespace (the scratch host and each one in
/// the netns dir) `ip -j -d link`, `ip -j addr`, `ip -j route` of all tables and
/// `nft -j list ruleset`, with counters and timers removed.
async fn everything(sb: &Sandbox) -> Value {
    let c = sb.client();
    let ns = rpc(c
        .namespaces()
        .list_namespaces(ListNamespacesRequest::default()))
    .await
    .expect("ListNamespaces");
    let links = rpc(c.links().list_links(ListLinksRequest::default()))
        .await
        .expect("ListLinks");
    let nets = rpc(c.networks().list_networks(ListNetworksRequest::default()))
        .await
        .expect("ListNetworks");
    let mut names: Vec<String> = std::fs::read_dir(sb.netns_dir())
        .expect("read netns dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut kernel = serde_json::Map::new();
    for n in std::iter::once(String::new()).chain(names.iter().cloned()) {
        kernel.insert(n.clone(), sb.snapshot(&n));
    }
    json!({
        "namespaces": format!("{:?}", ns.namespaces),
        "links": format!("{:?}", links.links),
        "networks": format!("{:?}", nets.networks),
        "netns_files": names,
        "kernel": kernel,
    })
}

fn ns_req(ns: Namespace) -> Req {
    Req::Ns(CreateNamespaceRequest {
        namespace: Some(ns),
        ..Default::default()
    })
}

fn named(name: &str) -> Namespace {
    ns_msg(name)
}

fn adopt(name: &str, path: &str) -> Req {
    ns_req(Namespace {
        name: name.into(),
        path: path.into(),
        ..Default::default()
    })
}

fn labels(k: &str, v: &str) -> std::collections::HashMap<String, String> {
    [(k.to_string(), v.to_string())].into()
}

/// A fresh veth pair in ns3/ns4 (names free) with one change.
fn fresh(f: impl FnOnce(&mut Link)) -> Req {
    let mut l = veth(
        ("ns3", "x1", &["10.60.0.1/24"]),
        ("ns4", "x2", &["10.60.0.2/24"]),
    );
    f(&mut l);
    Req::Link(create_link_req(l))
}

fn route(d: &str, g: &str) -> Route {
    Route {
        destination: d.into(),
        gateway: g.into(),
        metric: 0,
    }
}

/// A network called "n9" on bridge "wb-n9" with one subnet, changed by `f`.
fn net_req(f: impl FnOnce(&mut Network)) -> Req {
    let mut n = net::network("n9", "wb-n9", &["10.93.0.0/24"]);
    f(&mut n);
    Req::Net(CreateNetworkRequest {
        network: Some(n),
        ..Default::default()
    })
}

/// A subnet with gateway, range and reserved addresses.
fn subnet(s: &str, gw: &str, range: &str, reserved: &[&str]) -> Subnet {
    Subnet {
        subnet: s.into(),
        gateway: gw.into(),
        ip_range: range.into(),
        reserved: reserved.iter().map(|r| r.to_string()).collect(),
    }
}

/// A Connect of ns3 to net1, changed by `f`.
fn conn(f: impl FnOnce(&mut ConnectRequest)) -> Req {
    let mut r = net::connect_req("net1", "ns3");
    f(&mut r);
    Req::Connect(r)
}

fn port(ip: &str, host: u32, end: u32, container: u32, proto: &str) -> PublishedPort {
    PublishedPort {
        host_ip: ip.into(),
        host_port: host,
        host_port_end: end,
        container_port: container,
        container_port_end: 0,
        protocol: proto.into(),
    }
}

/// Host ports `host`-`end` onto container ports `container`-`cend` (0: a single port).
fn ports(host: u32, end: u32, container: u32, cend: u32) -> PublishedPort {
    PublishedPort {
        container_port_end: cend,
        ..port("", host, end, container, "tcp")
    }
}

fn update(l: Link, mask: &[&str]) -> Req {
    Req::Update(UpdateLinkRequest {
        link: Some(l),
        update_mask: Some(prost_types::FieldMask {
            paths: mask.iter().map(|p| p.to_string()).collect(),
        }),
        ..Default::default()
    })
}

/// The pid of the sandbox's weftd (the process whose command line names its socket).
fn weftd_pid(sb: &Sandbox) -> u32 {
    let sock = sb.socket().to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .expect("read /proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    let c = String::from_utf8_lossy(&c);
                    c.contains("weftd") && c.contains(&sock) && !c.starts_with("nsenter")
                })
                .unwrap_or(false)
        })
        .expect("weftd's pid")
}

/// Every case of the table.
fn cases(sb: &Sandbox) -> Vec<Case> {
    use Code::{AlreadyExists, FailedPrecondition, InvalidArgument, NotFound};
    let host_ns = sb.ns_path("").display().to_string();
    let weftd_ns = format!("/proc/{}/ns/net", weftd_pid(sb));
    let ns1_file = sb.ns_path("ns1").display().to_string();
    let mut v: Vec<(String, Req, Code, &'static str)> = Vec::new();
    let mut add = |name: &str, req: Req, code: Code, names: &'static str| {
        v.push((name.to_string(), req, code, names))
    };

    // Namespaces.
    for (what, name) in [
        ("namespace called -rf", "-rf"),
        ("namespace called -", "-"),
        ("namespace name with '/'", "a/b"),
        ("empty namespace name", ""),
        ("namespace name starting with '.'", ".hidden"),
        ("namespace name of 65 bytes", &"n".repeat(65)),
        ("non-ASCII namespace name", "näme"),
        ("namespace name with a space", "a b"),
        ("namespace name with ';'", "a;reboot"),
        ("namespace name with '$'", "$(id)"),
    ] {
        add(what, ns_req(named(name)), InvalidArgument, "namespace.name");
    }
    for (what, k, val) in [
        ("label key with a space", "a b", "x"),
        ("empty label key", "", "x"),
        ("label key of 64 bytes", &"k".repeat(64), "x"),
        ("label value with a newline", "k", "a\nb"),
        ("label value of 256 bytes", "k", &"v".repeat(256)),
    ] {
        let mut n = named("lbl");
        n.labels = labels(k, val);
        add(what, ns_req(n), InvalidArgument, "namespace.labels");
    }
    add(
        "relative path to adopt",
        adopt("ad", "proc/1/ns/net"),
        InvalidArgument,
        "namespace.path",
    );
    add(
        "path to adopt that does not exist",
        adopt("ad", "/nonexistent/netns"),
        NotFound,
        "namespace.path",
    );
    add(
        "path to adopt that is no namespace",
        adopt("ad", "/etc/hostname"),
        InvalidArgument,
        "namespace.path",
    );
    add(
        "adopting the host namespace weftd manages",
        adopt("ad", &host_ns),
        FailedPrecondition,
        "namespace.path",
    );
    add(
        "adopting weftd's own namespace by /proc/<pid>/ns/net",
        adopt("ad", &weftd_ns),
        FailedPrecondition,
        "namespace.path",
    );
    add(
        "adopting ns1 again under another name",
        adopt("ad", &ns1_file),
        FailedPrecondition,
        "namespace.path",
    );
    add(
        "a namespace that exists",
        ns_req(named("ns1")),
        AlreadyExists,
        "\"ns1\"",
    );
    add(
        "a request id of 129 bytes",
        Req::Ns(CreateNamespaceRequest {
            namespace: Some(named("rid2")),
            request_id: "r".repeat(129),
            ..Default::default()
        }),
        InvalidArgument,
        "request_id",
    );
    add(
        "a request id used for another body",
        Req::Ns(CreateNamespaceRequest {
            namespace: Some(named("rid2")),
            request_id: "rid-1".into(),
            ..Default::default()
        }),
        InvalidArgument,
        "request_id",
    );
    add(
        "CreateNamespace without a namespace",
        Req::Ns(CreateNamespaceRequest::default()),
        InvalidArgument,
        "namespace",
    );

    // Links: names.
    for (what, name) in [
        ("link name of 16 bytes", "abcdefghijklmnop"),
        ("link name with '/'", "veth/1"),
        ("empty link name", ""),
        ("link name with a space", "veth 1"),
        ("link name \"..\"", ".."),
        ("non-ASCII link name", "vé1"),
        ("link name that is a kernel template", "x%d"),
        ("link name starting with '-'", "-x"),
    ] {
        add(
            what,
            fresh(|l| l.name = name.into()),
            InvalidArgument,
            "link.name",
        );
    }
    add(
        "peer name of 16 bytes",
        fresh(|l| peer_mut(l).name = "abcdefghijklmnop".into()),
        InvalidArgument,
        "link.veth.peer.name",
    );
    add(
        "non-ASCII peer name",
        fresh(|l| peer_mut(l).name = "x\u{fffd}".into()),
        InvalidArgument,
        "link.veth.peer.name",
    );
    add(
        "both ends one name in one namespace",
        fresh(|l| {
            peer_mut(l).namespace = "ns3".into();
            peer_mut(l).name = "x1".into();
        }),
        InvalidArgument,
        "link.veth.peer.name",
    );
    add(
        "link namespace called -rf",
        fresh(|l| l.namespace = "-rf".into()),
        InvalidArgument,
        "link.namespace",
    );
    // Links: addresses, MACs, MTUs.
    for (what, a) in [
        ("CIDR with prefix 33", "10.60.0.1/33"),
        ("CIDR with octet 300", "10.60.0.300/24"),
        ("CIDR that is a word", "not-an-ip/24"),
        ("address without a prefix", "10.60.0.1"),
    ] {
        add(
            what,
            fresh(|l| l.addresses = vec![a.into()]),
            InvalidArgument,
            "link.addresses[0]",
        );
    }
    for (what, a) in [
        ("multicast address", "224.0.0.5/24"),
        ("broadcast address", "255.255.255.255/32"),
        ("unspecified address", "0.0.0.0/8"),
        ("IPv4-mapped IPv6 address", "::ffff:10.60.0.1/120"),
    ] {
        add(
            what,
            fresh(|l| l.addresses = vec![a.into()]),
            InvalidArgument,
            "link.addresses",
        );
    }
    add(
        "address listed twice",
        fresh(|l| l.addresses = vec!["10.60.0.1/24".into(), "10.60.0.1/16".into()]),
        InvalidArgument,
        "link.addresses",
    );
    add(
        "peer address garbage",
        fresh(|l| peer_mut(l).addresses = vec!["fd00::zz/64".into()]),
        InvalidArgument,
        "link.veth.peer.addresses[0]",
    );
    for (what, mac) in [
        ("multicast MAC", "01:00:5e:00:00:01"),
        ("broadcast MAC", "ff:ff:ff:ff:ff:ff"),
        ("all-zero MAC", "00:00:00:00:00:00"),
        ("MAC of five bytes", "02:00:00:00:01"),
        ("MAC with a bad digit", "02:00:00:00:0g:01"),
    ] {
        add(
            what,
            fresh(|l| l.mac_address = mac.into()),
            InvalidArgument,
            "link.mac_address",
        );
    }
    add("MTU 67", fresh(|l| l.mtu = 67), InvalidArgument, "link.mtu");
    add(
        "MTU 65536",
        fresh(|l| l.mtu = 65536),
        InvalidArgument,
        "link.mtu",
    );
    add(
        "peer MTU 20",
        fresh(|l| peer_mut(l).mtu = 20),
        InvalidArgument,
        "link.veth.peer.mtu",
    );
    // Links: routes.
    for (what, r, field) in [
        (
            "route to /99",
            route("10.0.0.0/99", ""),
            "link.routes[0].destination",
        ),
        (
            "route destination with host bits",
            route("10.70.0.1/16", "10.60.0.2"),
            "link.routes[0].destination",
        ),
        (
            "default route without gateway",
            route("default", ""),
            "link.routes[0].gateway",
        ),
        (
            "route gateway of the other family",
            route("10.70.0.0/16", "fd00::1"),
            "link.routes[0].gateway",
        ),
        (
            "multicast next hop",
            route("10.70.0.0/16", "224.0.0.9"),
            "link.routes[0].gateway",
        ),
        (
            "loopback next hop",
            route("default", "127.0.0.1"),
            "link.routes[0].gateway",
        ),
        (
            "next hop on no subnet of the interface",
            route("10.70.0.0/16", "10.99.0.1"),
            "link.routes[0].gateway",
        ),
    ] {
        add(what, fresh(|l| l.routes = vec![r]), InvalidArgument, field);
    }
    add(
        "route listed twice",
        fresh(|l| l.routes = vec![route("10.70.0.0/16", "10.60.0.2"); 2]),
        InvalidArgument,
        "link.routes",
    );
    // Links: kinds, masters, references.
    add(
        "link without a kind",
        fresh(|l| l.kind = None),
        InvalidArgument,
        "link",
    );
    add(
        "veth without a peer",
        fresh(|l| l.kind = Some(weft::v1::link::Kind::Veth(weft::v1::Veth { peer: None }))),
        InvalidArgument,
        "link.veth.peer",
    );
    add(
        "CreateLink without a link",
        Req::Link(CreateLinkRequest::default()),
        InvalidArgument,
        "link",
    );
    add(
        "an end that is its own master",
        fresh(|l| l.master = "x1".into()),
        InvalidArgument,
        "link.master",
    );
    add(
        "a master that does not exist",
        fresh(|l| l.master = "nobr".into()),
        NotFound,
        "link.master",
    );
    add(
        "a peer master that does not exist",
        fresh(|l| peer_mut(l).master = "nobr".into()),
        NotFound,
        "link.veth.peer.master",
    );
    add(
        "a master that is a veth",
        Req::Link(create_link_req({
            let mut l = veth(("ns1", "x1", &[]), ("ns4", "x2", &[]));
            l.master = "veth1".into();
            l
        })),
        FailedPrecondition,
        "link.master",
    );
    add(
        "a master in the host that is not a bridge",
        Req::Link(create_link_req({
            let mut l = veth(("", "hx1", &[]), ("ns4", "x2", &[]));
            l.master = "lo".into();
            l
        })),
        FailedPrecondition,
        "link.master",
    );
    add(
        "link label key with a space",
        fresh(|l| l.labels = labels("a b", "c")),
        InvalidArgument,
        "link.labels",
    );
    add(
        "link in an unknown namespace",
        fresh(|l| l.namespace = "nosuch".into()),
        NotFound,
        "\"nosuch\"",
    );
    add(
        "peer in an unknown namespace",
        fresh(|l| peer_mut(l).namespace = "nosuch".into()),
        NotFound,
        "\"nosuch\"",
    );
    add(
        "the seed pair again",
        Req::Link(create_link_req(seed_link())),
        AlreadyExists,
        "\"veth1\"",
    );
    add(
        "a bridge reusing veth1's name",
        Req::Link(create_link_req(bridge("ns1", "veth1"))),
        AlreadyExists,
        "\"veth1\"",
    );
    // UpdateLink.
    let v1 = || Link {
        name: "veth1".into(),
        namespace: "ns1".into(),
        ..Default::default()
    };
    add(
        "update of an unknown path",
        update(v1(), &["colour"]),
        InvalidArgument,
        "update_mask",
    );
    add(
        "update of the name",
        update(v1(), &["name"]),
        InvalidArgument,
        "update_mask",
    );
    add(
        "update to MTU 10",
        update(Link { mtu: 10, ..v1() }, &["mtu"]),
        InvalidArgument,
        "link.mtu",
    );
    add(
        "update to a master that does not exist",
        update(
            Link {
                master: "nobr".into(),
                ..v1()
            },
            &["master"],
        ),
        NotFound,
        "link.master",
    );
    add(
        "update to a multicast address",
        update(
            Link {
                addresses: vec!["239.1.1.1/24".into()],
                ..v1()
            },
            &["addresses"],
        ),
        InvalidArgument,
        "link.addresses",
    );
    add(
        "update turning a veth into a bridge",
        update(
            Link {
                kind: Some(weft::v1::link::Kind::Bridge(weft::v1::Bridge {})),
                ..v1()
            },
            &["mtu"],
        ),
        InvalidArgument,
        "link.bridge",
    );
    add(
        "UpdateLink without a link",
        Req::Update(UpdateLinkRequest::default()),
        InvalidArgument,
        "link",
    );
    add(
        "update of an unknown link",
        update(
            Link {
                name: "nosuch".into(),
                namespace: "ns1".into(),
                mtu: 1400,
                ..Default::default()
            },
            &["mtu"],
        ),
        NotFound,
        "\"nosuch\"",
    );

    // Networks.
    add(
        "network called -rf",
        net_req(|n| n.name = "-rf".into()),
        InvalidArgument,
        "network.name",
    );
    for (what, br) in [
        ("non-ASCII bridge name", "br-é"),
        ("bridge name of 16 bytes", "abcdefghijklmnop"),
        ("bridge name with '/'", "br/0"),
        ("bridge name with ':'", "br:0"),
    ] {
        add(
            what,
            net_req(|n| n.bridge_name = br.into()),
            InvalidArgument,
            "network.bridge_name",
        );
    }
    for (what, s) in [
        ("loopback subnet", "127.0.0.0/24"),
        ("multicast subnet", "224.1.0.0/16"),
        ("IPv4-mapped IPv6 subnet", "::ffff:10.0.0.0/120"),
        ("link-local subnet", "169.254.1.0/24"),
        ("IPv6 link-local subnet", "fe80::/64"),
        ("IPv6 multicast subnet", "ff05::/64"),
        ("subnet over all of IPv4", "0.0.0.0/0"),
        ("subnet with host bits set", "10.93.0.5/24"),
        ("subnet that is a word", "net"),
        ("subnet /31", "10.93.0.0/31"),
        ("subnet /127", "fd00:93::/127"),
    ] {
        add(
            what,
            net_req(|n| n.subnets = vec![subnet(s, "", "", &[])]),
            InvalidArgument,
            "network.subnets[0].subnet",
        );
    }
    for (what, gw) in [
        ("gateway outside the subnet", "10.94.0.1"),
        ("gateway on the broadcast address", "10.93.0.255"),
        ("gateway on the network address", "10.93.0.0"),
        ("gateway that is a word", "gw"),
    ] {
        add(
            what,
            net_req(|n| n.subnets = vec![subnet("10.93.0.0/24", gw, "", &[])]),
            InvalidArgument,
            "network.subnets[0].gateway",
        );
    }
    for (what, r) in [
        ("ip_range outside the subnet", "10.94.0.0/25"),
        ("ip_range with host bits set", "10.93.0.130/25"),
        ("/32 ip_range on the gateway", "10.93.0.1/32"),
        ("/32 ip_range on the network address", "10.93.0.0/32"),
    ] {
        add(
            what,
            net_req(|n| n.subnets = vec![subnet("10.93.0.0/24", "", r, &[])]),
            InvalidArgument,
            "network.subnets[0].ip_range",
        );
    }
    add(
        "/128 ip_range on the IPv6 gateway",
        net_req(|n| n.subnets = vec![subnet("fd00:93::/64", "", "fd00:93::1/128", &[])]),
        InvalidArgument,
        "network.subnets[0].ip_range",
    );
    add(
        "reserved address outside the subnet",
        net_req(|n| n.subnets = vec![subnet("10.93.0.0/24", "", "", &["10.94.0.9"])]),
        InvalidArgument,
        "network.subnets[0].reserved",
    );
    add(
        "reserved address listed twice",
        net_req(|n| n.subnets = vec![subnet("10.93.0.0/24", "", "", &["10.93.0.9", "10.93.0.9"])]),
        InvalidArgument,
        "network.subnets[0].reserved",
    );
    add(
        "two subnets that overlap",
        net_req(|n| {
            n.subnets = vec![
                subnet("10.93.0.0/24", "", "", &[]),
                subnet("10.93.0.0/25", "", "", &[]),
            ]
        }),
        InvalidArgument,
        "network.subnets",
    );
    add(
        "network MTU 50",
        net_req(|n| n.mtu = 50),
        InvalidArgument,
        "network.mtu",
    );
    add(
        "network label key with a space",
        net_req(|n| n.labels = labels("a b", "c")),
        InvalidArgument,
        "network.labels",
    );
    add(
        "a network that exists",
        net_req(|n| {
            n.name = "net1".into();
            n.subnets = vec![subnet("10.95.0.0/24", "", "", &[])];
        }),
        AlreadyExists,
        "\"net1\"",
    );
    add(
        "CreateNetwork without a network",
        Req::Net(CreateNetworkRequest::default()),
        InvalidArgument,
        "network",
    );

    // Connect.
    add(
        "connect to an unknown network",
        conn(|r| r.network = "nosuch".into()),
        NotFound,
        "\"nosuch\"",
    );
    add(
        "connect of an unknown namespace",
        conn(|r| r.namespace = "nosuch".into()),
        NotFound,
        "\"nosuch\"",
    );
    add(
        "connect of a namespace called -rf",
        conn(|r| r.namespace = "-rf".into()),
        InvalidArgument,
        "namespace",
    );
    add(
        "non-ASCII interface name",
        conn(|r| r.interface_name = "éth0".into()),
        InvalidArgument,
        "interface_name",
    );
    add(
        "interface name of 16 bytes",
        conn(|r| r.interface_name = "abcdefghijklmnop".into()),
        InvalidArgument,
        "interface_name",
    );
    add(
        "ipv4_address that is IPv6",
        conn(|r| r.ipv4_address = "fd00::5".into()),
        InvalidArgument,
        "ipv4_address",
    );
    add(
        "ipv4_address outside the subnet",
        conn(|r| r.ipv4_address = "10.99.0.5".into()),
        InvalidArgument,
        "ipv4_address",
    );
    add(
        "ipv4_address on the gateway",
        conn(|r| r.ipv4_address = "10.90.0.1".into()),
        InvalidArgument,
        "ipv4_address",
    );
    add(
        "ipv6_address on an IPv4-only network",
        conn(|r| r.ipv6_address = "fd00::5".into()),
        InvalidArgument,
        "ipv6_address",
    );
    add(
        "multicast mac_address",
        conn(|r| r.mac_address = "33:33:00:00:00:01".into()),
        InvalidArgument,
        "mac_address",
    );
    for (what, alias) in [
        ("alias with a space", "a b"),
        ("alias starting with '-'", "-web"),
        ("empty alias", ""),
        ("non-ASCII alias", "wéb"),
    ] {
        add(
            what,
            conn(|r| r.aliases = vec![alias.into()]),
            InvalidArgument,
            "aliases[0]",
        );
    }
    add(
        "alias listed twice",
        conn(|r| r.aliases = vec!["web".into(), "WEB".into()]),
        InvalidArgument,
        "aliases[1]",
    );
    for (what, p, field) in [
        (
            "container port 0",
            port("", 8081, 0, 0, "tcp"),
            "published_ports[0].container_port",
        ),
        (
            "host port 70000",
            port("", 70000, 0, 80, "tcp"),
            "published_ports[0].host_port",
        ),
        (
            "port range that ends before it starts",
            port("", 9000, 8999, 80, "tcp"),
            "published_ports[0].host_port_end",
        ),
        (
            "port range of 2000 ports",
            port("", 9000, 10999, 80, "tcp"),
            "published_ports[0].host_port_end",
        ),
        (
            "container port range past 65535",
            ports(9000, 9010, 65530, 70000),
            "published_ports[0].container_port_end",
        ),
        (
            "container port range onto one host port",
            ports(9000, 0, 90, 91),
            "published_ports[0].container_port_end",
        ),
        (
            "host and container ranges of different lengths",
            ports(9000, 9002, 90, 91),
            "published_ports[0].container_port_end",
        ),
        (
            "container port range with the host port left out",
            ports(0, 0, 90, 91),
            "published_ports[0].host_port",
        ),
        (
            "host range end with the host port left out",
            ports(0, 9010, 80, 0),
            "published_ports[0].host_port",
        ),
        (
            "container range that ends before it starts",
            ports(9000, 9001, 91, 90),
            "published_ports[0].container_port_end",
        ),
        (
            "protocol icmp",
            port("", 9000, 0, 80, "icmp"),
            "published_ports[0].protocol",
        ),
        (
            "multicast host_ip",
            port("224.0.0.1", 9000, 0, 80, "tcp"),
            "published_ports[0].host_ip",
        ),
        (
            "broadcast host_ip",
            port("255.255.255.255", 9000, 0, 80, "tcp"),
            "published_ports[0].host_ip",
        ),
        (
            "host_ip ::1",
            port("::1", 9000, 0, 80, "tcp"),
            "published_ports[0].host_ip",
        ),
        (
            "host_ip that is a word",
            port("host", 9000, 0, 80, "tcp"),
            "published_ports[0].host_ip",
        ),
        (
            "IPv6 host_ip for an IPv4-only network",
            port("fd00::1", 9000, 0, 80, "tcp"),
            "published_ports[0].host_ip",
        ),
    ] {
        add(
            what,
            conn(|r| r.published_ports = vec![p]),
            InvalidArgument,
            field,
        );
    }
    add(
        "host port published twice in one request",
        conn(|r| {
            r.published_ports = vec![
                port("", 9000, 0, 80, "tcp"),
                port("10.250.0.1", 9000, 0, 81, "tcp"),
            ]
        }),
        InvalidArgument,
        "published_ports[1]",
    );
    add(
        "published port on an internal network",
        conn(|r| {
            r.network = "int".into();
            r.published_ports = vec![port("", 9000, 0, 80, "tcp")];
        }),
        FailedPrecondition,
        "published_ports",
    );
    add(
        "host port that web publishes already",
        conn(|r| r.published_ports = vec![port("", 8080, 0, 80, "tcp")]),
        AlreadyExists,
        "8080/tcp",
    );
    add(
        "web connected to net1 again",
        conn(|r| r.namespace = "web".into()),
        AlreadyExists,
        "\"web\"",
    );

    // Deletes and reads.
    for (what, req, code, names) in [
        (
            "deleting the default network",
            Req::DeleteNet("bridge"),
            FailedPrecondition,
            "default network",
        ),
        (
            "deleting a network with an endpoint",
            Req::DeleteNet("net1"),
            FailedPrecondition,
            "\"net1\"",
        ),
        (
            "deleting an unknown network",
            Req::DeleteNet("nosuch"),
            NotFound,
            "\"nosuch\"",
        ),
        (
            "deleting a namespace with links",
            Req::DeleteNs("ns1"),
            FailedPrecondition,
            "\"ns1\"",
        ),
        (
            "deleting an unknown namespace",
            Req::DeleteNs("nosuch"),
            NotFound,
            "\"nosuch\"",
        ),
        (
            "deleting a namespace of no name",
            Req::DeleteNs(""),
            InvalidArgument,
            "name",
        ),
        (
            "deleting an unknown link",
            Req::DeleteLink("ns1", "nosuch"),
            NotFound,
            "\"nosuch\"",
        ),
        (
            "deleting the host's loopback",
            Req::DeleteLink("", "lo"),
            FailedPrecondition,
            "\"lo\"",
        ),
        (
            "disconnecting what is not connected",
            Req::Disconnect("net1", "ns3"),
            NotFound,
            "\"ns3\"",
        ),
        (
            "listing with a selector that does not parse",
            Req::ListLinks("=x"),
            InvalidArgument,
            "label_selector",
        ),
    ] {
        add(what, req, code, names);
    }

    v.into_iter()
        .map(|(name, req, code, names)| Case {
            name,
            req,
            code,
            names,
        })
        .collect()
}

/// At least 60 distinct bad requests, of every kind: each gets exactly its code and a
/// message naming its field (or the object it refers to), and changes nothing: not what
/// List shows of any kind, not the interfaces, addresses or routes of any namespace, not
/// the nftables ruleset. Each failing case is reported by name, all at once.
#[tokio::test(flavor = "multi_thread")]
async fn every_bad_request_is_refused_by_name_and_changes_nothing() {
    let sb = Sandbox::new("badall").await;
    let c = sb.client();
    for ns in ["ns1", "ns2", "ns3", "ns4", "web", "i"] {
        create_ns(&c, ns).await;
    }
    create_link(&c, seed_link()).await;
    create_link(&c, bridge("", "br0")).await;
    net::create_network(&c, net::network("net1", "wb-net1", &["10.90.0.0/24"])).await;
    net::create_network(
        &c,
        Network {
            internal: true,
            ..net::network("int", "wb-int", &["10.91.0.0/24"])
        },
    )
    .await;
    net::connect(
        &c,
        ConnectRequest {
            published_ports: vec![net::tcp_port(8080, 80)],
            ..net::connect_req("net1", "web")
        },
    )
    .await;
    net::connect(&c, net::connect_req("int", "i")).await;
    rpc(c.namespaces().create_namespace(CreateNamespaceRequest {
        namespace: Some(ns_msg("rid")),
        request_id: "rid-1".into(),
        ..Default::default()
    }))
    .await
    .expect("CreateNamespace rid with a request id");
    sb.settled_snapshot(&["ns1", "ns2", "ns3", "ns4", "web", "i", "rid"])
        .await;

    let cases = cases(&sb);
    let mut distinct = std::collections::HashSet::new();
    for case in &cases {
        assert!(
            distinct.insert(case.name.clone()),
            "case {:?} twice",
            case.name
        );
    }
    assert!(cases.len() >= 60, "only {} cases", cases.len());

    let mut failures = Vec::new();
    let mut before = everything(&sb).await;
    let total = cases.len();
    for case in cases {
        let name = case.name;
        match send(&c, case.req).await {
            Ok(()) => failures.push(format!("{name}: succeeded, expected {:?}", case.code)),
            Err(s) if s.code() != case.code => failures.push(format!(
                "{name}: {:?} ({:?}), expected {:?}",
                s.code(),
                s.message(),
                case.code
            )),
            Err(s) if !s.message().contains(case.names) => failures.push(format!(
                "{name}: the message {:?} does not name {:?}",
                s.message(),
                case.names
            )),
            Err(_) => {}
        }
        let after = everything(&sb).await;
        if after != before {
            failures.push(format!(
                "{name}: changed something:\n{}",
                json_diff(&before, &after)
            ));
            before = after;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} bad-input cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{total} bad-input cases: each refused with its code and field, nothing changed");
}

/// A retry with the same request id and a body with many labels replays, every time (the
/// fingerprint once depended on the order a hash map encoded them in): 30 retries of a
/// CreateNamespace and a CreateNetwork with 40 labels each answer the object the first
/// call made.
#[tokio::test(flavor = "multi_thread")]
async fn retries_with_many_labels_replay() {
    let sb = Sandbox::new("ridlab").await;
    let c = sb.client();
    let many: std::collections::HashMap<String, String> = (0..40)
        .map(|i| (format!("team.example/k{i}"), format!("v{i}")))
        .collect();
    let ns = Namespace {
        name: "lab".into(),
        labels: many.clone(),
        ..Default::default()
    };
    let mut net_body = net::network("labnet", "wb-lab", &["10.96.0.0/24"]);
    net_body.labels = many;
    let mut uids = std::collections::HashSet::new();
    let mut net_uids = std::collections::HashSet::new();
    for i in 0..30 {
        let r = rpc(c.namespaces().create_namespace(CreateNamespaceRequest {
            namespace: Some(ns.clone()),
            request_id: "lab-1".into(),
            ..Default::default()
        }))
        .await
        .unwrap_or_else(|s| panic!("retry {i} of CreateNamespace: {s:?}"));
        uids.insert(r.namespace.expect("namespace").uid);
        let r = rpc(c.networks().create_network(CreateNetworkRequest {
            network: Some(net_body.clone()),
            request_id: "labnet-1".into(),
            ..Default::default()
        }))
        .await
        .unwrap_or_else(|s| panic!("retry {i} of CreateNetwork: {s:?}"));
        net_uids.insert(r.network.expect("network").uid);
    }
    assert_eq!(uids.len(), 1, "{uids:?}");
    assert_eq!(net_uids.len(), 1, "{net_uids:?}");
}

/// Adoption compares namespaces, not paths: a foreign namespace adopts (and is Ready), the
/// same namespace under another path and another name is FAILED_PRECONDITION naming the
/// first, and so are the host namespace and weftd's own; nothing changes on refusal.
#[tokio::test(flavor = "multi_thread")]
async fn adoption_compares_namespaces_not_paths() {
    let sb = Sandbox::new("adopt").await;
    let c = sb.client();
    let foreign = Foreign::add(&sb);
    let path = foreign.path();
    let adopted = rpc(c.namespaces().create_namespace(CreateNamespaceRequest {
        namespace: Some(Namespace {
            name: "fa".into(),
            path: path.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }))
    .await
    .expect("adopting a foreign namespace")
    .namespace
    .expect("namespace");
    assert_ready("fa", adopted.generation, adopted.status.as_ref());

    // A process inside it: its /proc/<pid>/ns/net is another path to the same namespace.
    let sleeper = Reaped(
        std::process::Command::new("nsenter")
            .arg(format!("--net={path}"))
            .args(["sleep", "60"])
            .spawn()
            .expect("spawn sleep in the foreign namespace"),
    );
    let other_path = format!("/proc/{}/ns/net", sleeper.0.id());
    wait_for(
        Duration::from_secs(5),
        "sleep to enter the namespace",
        || {
            std::fs::metadata(&other_path).map(|m| m.ino()).ok()
                == std::fs::metadata(&path).map(|m| m.ino()).ok()
        },
    )
    .await;
    let weftd_ns = format!("/proc/{}/ns/net", weftd_pid(&sb));
    let host = sb.ns_path("").display().to_string();
    // The default network's bridge and its addresses may still be settling.
    sb.settled_snapshot(&[]).await;
    for (what, p, says) in [
        (
            "the adopted namespace by another path",
            other_path.as_str(),
            "manages as \"fa\"",
        ),
        (
            "the same path under another name",
            path.as_str(),
            "manages as \"fa\"",
        ),
        (
            "the scratch host",
            host.as_str(),
            "host namespace weftd manages",
        ),
        (
            "weftd's own",
            weftd_ns.as_str(),
            "host namespace weftd manages",
        ),
    ] {
        let before = everything(&sb).await;
        let s = rpc(c.namespaces().create_namespace(CreateNamespaceRequest {
            namespace: Some(Namespace {
                name: "fb".into(),
                path: p.into(),
                ..Default::default()
            }),
            ..Default::default()
        }))
        .await
        .expect_err(what);
        assert_eq!(s.code(), Code::FailedPrecondition, "{what}: {s:?}");
        assert!(
            s.message().starts_with("namespace.path: ") && s.message().contains(says),
            "{what}: {:?}",
            s.message()
        );
        assert_eq!(before, everything(&sb).await, "{what} changed something");
    }
    drop(sleeper);
    // Deleting the adopted one leaves the namespace itself alone.
    rpc(c.namespaces().delete_namespace(DeleteNamespaceRequest {
        name: "fa".into(),
        ..Default::default()
    }))
    .await
    .expect("DeleteNamespace fa");
    assert!(
        std::path::Path::new(&path).exists(),
        "weft deleted a foreign namespace"
    );
}
