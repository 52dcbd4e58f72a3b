//! Runs the `weft` binary against a fake weftd (in-process tonic services on a Unix socket in
//! a temp dir) and checks what it prints and how it exits: table and JSON output, the requests
//! it sends (update masks, the calls of `ns create --network`, dry runs, request ids, watch
//! selections), error lines and exit codes, `--format` (JSON checked against grpcurl, templates,
//! Docker's inspect shape read by jq); watches stream from scripted event logs. No
//! privileges, no kernel.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    pin::Pin,
    process::Output,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio_stream::{
    Stream,
    wrappers::{ReceiverStream, UnixListenerStream},
};
use tonic::{Request, Response, Status};
use weft::v1::{
    link::Kind,
    link_service_server::{LinkService, LinkServiceServer},
    namespace_service_server::{NamespaceService, NamespaceServiceServer},
    network_service_server::{NetworkService, NetworkServiceServer},
    system_service_server::{SystemService, SystemServiceServer},
    *,
};

type Stream_<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The revision before the first event of the fake's watch logs; weftd's revisions are large.
const REV: u64 = 5_591_444_337_264_164_870;

/// What the fake's watches do after the events of their log.
#[derive(Clone, Copy, PartialEq)]
enum Then {
    /// Keep the stream open until the client goes away.
    Hold,
    /// End the stream (OK).
    End,
    /// Fail the stream with INTERNAL.
    Fail,
}

/// Streams `events` with `gap` before each, then does `then`.
fn stream_events<T: Send + 'static>(events: Vec<T>, gap: Duration, then: Then) -> Stream_<T> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        for ev in events {
            tokio::time::sleep(gap).await;
            if tx.send(Ok(ev)).await.is_err() {
                return;
            }
        }
        match then {
            Then::Hold => tx.closed().await,
            Then::End => {}
            Then::Fail => {
                let _ = tx.send(Err(Status::internal("the event log broke"))).await;
            }
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

/// A resume from before the fake's logs: refused the way weftd refuses it.
fn check_since(since: u64) -> Result<(), Status> {
    if since != 0 && since < REV {
        return Err(Status::failed_precondition(format!(
            "revision {since} is older than what weftd remembers (or from before a restart): \
             list again, then watch without since_revision"
        )));
    }
    Ok(())
}

fn status(phase: Phase, message: &str) -> Option<weft::v1::Status> {
    Some(weft::v1::Status {
        phase: phase as i32,
        observed_generation: 1,
        message: message.into(),
    })
}

/// The namespaces' event log: revisions REV+1...REV+4.
fn namespace_log() -> Vec<WatchNamespacesResponse> {
    let ns = |name: &str, labels: &[(&str, &str)], phase, message| Namespace {
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        generation: 1,
        status: status(phase, message),
        status_path: format!("/run/netns/{name}"),
        uid: format!("uid-{name}"),
        ..Default::default()
    };
    let web = [("app", "web")];
    [
        (EventType::Added, ns("ns1", &web, Phase::Ready, "")),
        (EventType::Added, ns("ns2", &[], Phase::Pending, "")),
        (
            EventType::Modified,
            ns("ns2", &[], Phase::Failed, "mount: permission denied"),
        ),
        (EventType::Deleted, ns("ns1", &web, Phase::Deleting, "")),
    ]
    .into_iter()
    .zip(1..)
    .map(|((t, n), i)| WatchNamespacesResponse {
        r#type: t as i32,
        namespace: Some(n),
        revision: REV + i,
    })
    .collect()
}

/// The networks' event log: revisions REV+1...REV+3.
fn network_log() -> Vec<WatchNetworksResponse> {
    let net = |name: &str, phase| Network {
        name: name.into(),
        bridge_name: format!("br-{name}"),
        status: status(phase, ""),
        ..Default::default()
    };
    [
        (EventType::Added, net("web", Phase::Pending)),
        (EventType::Added, net("db", Phase::Ready)),
        (EventType::Modified, net("web", Phase::Ready)),
    ]
    .into_iter()
    .zip(1..)
    .map(|((t, n), i)| WatchNetworksResponse {
        r#type: t as i32,
        network: Some(n),
        revision: REV + i,
    })
    .collect()
}

fn change(action: &str, kind: &str, target: &str, detail: &str) -> PlannedChange {
    PlannedChange {
        action: action.into(),
        kind: kind.into(),
        target: target.into(),
        detail: detail.into(),
    }
}

/// `Method(key)` as the calls list records it, with `, dry run` for a dry run.
fn call(method: &str, key: &str, dry_run: bool) -> String {
    if dry_run {
        format!("{method}({key}, dry run)")
    } else {
        format!("{method}({key})")
    }
}

/// The fake daemon's state, shared with the test that inspects it.
#[derive(Default)]
struct Fake {
    namespaces: Mutex<BTreeMap<String, Namespace>>,
    last_update: Mutex<Option<UpdateLinkRequest>>,
    /// Endpoints by (network, namespace).
    endpoints: Mutex<BTreeMap<(String, String), Endpoint>>,
    /// Every Connect request, in order.
    connects: Mutex<Vec<ConnectRequest>>,
    /// Every call, in order, as `Method(key)` (`Method(key, dry run)` for a dry run).
    calls: Mutex<Vec<String>>,
    /// The `request_id` of every Create and Connect, in order, as (method, id).
    request_ids: Mutex<Vec<(String, String)>>,
    /// The watch requests, in order, as their Debug text.
    watches: Mutex<Vec<String>>,
    /// The `grpc-timeout` header (the deadline) of the last call of each method.
    deadlines: Mutex<HashMap<&'static str, Option<String>>>,
    /// The pause before each event of a watch stream.
    watch_gap: Mutex<Duration>,
}

impl Fake {
    fn called(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }

    fn request_id(&self, method: &str, id: &str) {
        self.request_ids
            .lock()
            .unwrap()
            .push((method.into(), id.into()));
    }

    /// Records a watch request and the deadline it came with; returns the pause between
    /// events.
    fn watched<T: std::fmt::Debug>(&self, method: &'static str, req: &Request<T>) -> Duration {
        self.deadline(method, req);
        self.watches
            .lock()
            .unwrap()
            .push(format!("{method} {:?}", req.get_ref()));
        *self.watch_gap.lock().unwrap()
    }

    fn deadline<T>(&self, method: &'static str, req: &Request<T>) {
        let d = req
            .metadata()
            .get("grpc-timeout")
            .map(|v| v.to_str().unwrap().to_string());
        self.deadlines.lock().unwrap().insert(method, d);
    }
}

#[derive(Clone)]
struct Svc(Arc<Fake>);

impl Svc {
    fn called(&self, call: impl Into<String>) {
        self.0.called(call.into());
    }
}

#[tonic::async_trait]
impl NamespaceService for Svc {
    async fn create_namespace(
        &self,
        req: Request<CreateNamespaceRequest>,
    ) -> Result<Response<CreateNamespaceResponse>, Status> {
        let req = req.into_inner();
        let name = req.namespace.as_ref().map_or("", |n| n.name.as_str());
        self.called(call("CreateNamespace", name, req.dry_run));
        self.0.request_id("CreateNamespace", &req.request_id);
        let wait = req.wait.unwrap_or(true);
        let mut ns = req.namespace.unwrap_or_default();
        let mut all = self.0.namespaces.lock().unwrap();
        if all.contains_key(&ns.name) {
            return Err(Status::already_exists(format!(
                "namespace {:?} already exists",
                ns.name
            )));
        }
        ns.generation = 1;
        ns.status_path = format!("/run/netns/{}", ns.name);
        if req.dry_run {
            // Validated and planned; nothing stored.
            return Ok(Response::new(CreateNamespaceResponse {
                planned_changes: vec![
                    change("create", "namespace", &ns.name, &ns.status_path),
                    change("set", "link", &format!("lo in namespace {}", ns.name), "up"),
                ],
                namespace: Some(ns),
            }));
        }
        ns.uid = format!("uid-{}", ns.name);
        ns.create_time = Some(prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 0,
        });
        // "bad" fails, "slow" (or anything not waited for) is still pending, the rest is ready.
        let (phase, message) = match ns.name.as_str() {
            "bad" => (Phase::Failed, "mount: permission denied"),
            "slow" => (Phase::Pending, ""),
            _ if !wait => (Phase::Pending, ""),
            _ => (Phase::Ready, ""),
        };
        ns.status = Some(weft::v1::Status {
            phase: phase as i32,
            observed_generation: if phase == Phase::Ready { 1 } else { 0 },
            message: message.into(),
        });
        all.insert(ns.name.clone(), ns.clone());
        Ok(Response::new(CreateNamespaceResponse {
            planned_changes: Vec::new(),
            namespace: Some(ns),
        }))
    }

    async fn get_namespace(
        &self,
        req: Request<GetNamespaceRequest>,
    ) -> Result<Response<GetNamespaceResponse>, Status> {
        self.called(format!("GetNamespace({})", req.get_ref().name));
        let name = req.into_inner().name;
        match self.0.namespaces.lock().unwrap().get(&name) {
            Some(ns) => Ok(Response::new(GetNamespaceResponse {
                namespace: Some(ns.clone()),
            })),
            None => Err(Status::not_found(format!("namespace {name:?} not found"))),
        }
    }

    async fn list_namespaces(
        &self,
        req: Request<ListNamespacesRequest>,
    ) -> Result<Response<ListNamespacesResponse>, Status> {
        self.called("ListNamespaces");
        self.0.deadline("ListNamespaces", &req);
        // Only `k=v` terms, enough for the test.
        let sel = req.into_inner().label_selector;
        let terms: Vec<(&str, &str)> = sel.split(',').filter_map(|t| t.split_once('=')).collect();
        let namespaces = self
            .0
            .namespaces
            .lock()
            .unwrap()
            .values()
            .filter(|n| {
                terms
                    .iter()
                    .all(|(k, v)| n.labels.get(*k).map(String::as_str) == Some(v))
            })
            .cloned()
            .collect();
        Ok(Response::new(ListNamespacesResponse {
            namespaces,
            ..Default::default()
        }))
    }

    async fn delete_namespace(
        &self,
        req: Request<DeleteNamespaceRequest>,
    ) -> Result<Response<DeleteNamespaceResponse>, Status> {
        let r = req.into_inner();
        self.called(call("DeleteNamespace", &r.name, r.dry_run));
        let name = r.name;
        if r.dry_run {
            return match self.0.namespaces.lock().unwrap().get(&name) {
                Some(ns) => Ok(Response::new(DeleteNamespaceResponse {
                    planned_changes: vec![change("delete", "namespace", &name, &ns.status_path)],
                })),
                None => Err(Status::not_found(format!("namespace {name:?} not found"))),
            };
        }
        let held = self
            .0
            .endpoints
            .lock()
            .unwrap()
            .keys()
            .any(|(_, ns)| *ns == name);
        if held {
            return Err(Status::failed_precondition(format!(
                "namespace {name:?} still holds links weft manages; delete or disconnect them first"
            )));
        }
        match self.0.namespaces.lock().unwrap().remove(&name) {
            Some(_) => Ok(Response::new(DeleteNamespaceResponse {
                planned_changes: Vec::new(),
            })),
            None => Err(Status::not_found(format!("namespace {name:?} not found"))),
        }
    }

    type WatchNamespacesStream = Stream_<WatchNamespacesResponse>;

    /// Streams the namespace log (after `since_revision`, matching `k=v` selectors), then holds
    /// the stream open.
    async fn watch_namespaces(
        &self,
        req: Request<WatchNamespacesRequest>,
    ) -> Result<Response<Self::WatchNamespacesStream>, Status> {
        self.called("WatchNamespaces");
        let gap = self.0.watched("WatchNamespaces", &req);
        let r = req.into_inner();
        check_since(r.since_revision)?;
        let terms: Vec<(&str, &str)> = r
            .label_selector
            .split(',')
            .filter_map(|t| t.split_once('='))
            .collect();
        let events = namespace_log()
            .into_iter()
            .filter(|e| e.revision > r.since_revision)
            .filter(|e| {
                let labels = &e.namespace.as_ref().unwrap().labels;
                terms
                    .iter()
                    .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(v))
            })
            .collect();
        Ok(Response::new(stream_events(events, gap, Then::Hold)))
    }
}

/// The one link the fake knows: veth0 in the host, its peer eth0 in ns1.
fn the_veth() -> Link {
    Link {
        name: "veth0".into(),
        addresses: vec!["10.0.0.1/24".into()],
        kind: Some(Kind::Veth(Veth {
            peer: Some(VethPeer {
                name: "eth0".into(),
                namespace: "ns1".into(),
                ..Default::default()
            }),
        })),
        generation: 2,
        status: Some(weft::v1::Status {
            phase: Phase::Ready as i32,
            observed_generation: 2,
            message: String::new(),
        }),
        ..Default::default()
    }
}

/// What the fake lists: the veth, and a bridge br0 in ns2 that failed.
fn the_links() -> Vec<Link> {
    let bridge = Link {
        name: "br0".into(),
        namespace: "ns2".into(),
        kind: Some(Kind::Bridge(Bridge {})),
        status: Some(weft::v1::Status {
            phase: Phase::Failed as i32,
            observed_generation: 1,
            message: "no such device".into(),
        }),
        ..Default::default()
    };
    vec![the_veth(), bridge]
}

#[tonic::async_trait]
impl LinkService for Svc {
    async fn create_link(
        &self,
        req: Request<CreateLinkRequest>,
    ) -> Result<Response<CreateLinkResponse>, Status> {
        let r = req.into_inner();
        let link = r.link.unwrap_or_default();
        self.called(call("CreateLink", &link.name, r.dry_run));
        self.0.request_id("CreateLink", &r.request_id);
        let planned_changes = if r.dry_run {
            let at = format!("{} in namespace {}", link.name, link.namespace);
            let mut plan = vec![change("create", "link", &at, "veth, up")];
            plan.extend(
                link.addresses
                    .iter()
                    .map(|a| change("add", "address", &format!("{a} on {at}"), "")),
            );
            plan
        } else {
            Vec::new()
        };
        Ok(Response::new(CreateLinkResponse {
            planned_changes,
            link: Some(link),
        }))
    }

    async fn get_link(
        &self,
        req: Request<GetLinkRequest>,
    ) -> Result<Response<GetLinkResponse>, Status> {
        self.called("GetLink");
        let r = req.into_inner();
        match (r.namespace.as_str(), r.name.as_str()) {
            ("", "veth0") | ("ns1", "eth0") => Ok(Response::new(GetLinkResponse {
                link: Some(the_veth()),
            })),
            _ => Err(Status::not_found(format!("link {:?} not found", r.name))),
        }
    }

    async fn list_links(
        &self,
        _: Request<ListLinksRequest>,
    ) -> Result<Response<ListLinksResponse>, Status> {
        self.called("ListLinks");
        Ok(Response::new(ListLinksResponse {
            links: the_links(),
            ..Default::default()
        }))
    }

    async fn update_link(
        &self,
        req: Request<UpdateLinkRequest>,
    ) -> Result<Response<UpdateLinkResponse>, Status> {
        let r = req.into_inner();
        self.called(call(
            "UpdateLink",
            &r.link.as_ref().unwrap().name,
            r.dry_run,
        ));
        let link = r.link.clone().unwrap_or_default();
        if !matches!(
            (link.namespace.as_str(), link.name.as_str()),
            ("", "veth0") | ("ns1", "eth0")
        ) {
            return Err(Status::not_found(format!("link {:?} not found", link.name)));
        }
        let planned_changes = if r.dry_run {
            vec![change(
                "set",
                "link",
                "veth0 in the host namespace",
                &format!("mtu {}", link.mtu),
            )]
        } else {
            Vec::new()
        };
        *self.0.last_update.lock().unwrap() = Some(r);
        Ok(Response::new(UpdateLinkResponse {
            planned_changes,
            link: Some(the_veth()),
        }))
    }

    async fn delete_link(
        &self,
        req: Request<DeleteLinkRequest>,
    ) -> Result<Response<DeleteLinkResponse>, Status> {
        let r = req.into_inner();
        self.called(call("DeleteLink", &r.name, r.dry_run));
        let planned_changes = if r.dry_run {
            vec![change(
                "delete",
                "link",
                &format!("{} in the host namespace", r.name),
                "and its peer eth0 in namespace ns1",
            )]
        } else {
            Vec::new()
        };
        Ok(Response::new(DeleteLinkResponse { planned_changes }))
    }

    type WatchLinksStream = Stream_<WatchLinksResponse>;

    /// Streams the two links of `ListLinks` (those with an end in `namespace`, if given) at
    /// REV+1 and REV+2, then holds the stream open.
    async fn watch_links(
        &self,
        req: Request<WatchLinksRequest>,
    ) -> Result<Response<Self::WatchLinksStream>, Status> {
        self.called("WatchLinks");
        let gap = self.0.watched("WatchLinks", &req);
        let r = req.into_inner();
        check_since(r.since_revision)?;
        let events = the_links()
            .into_iter()
            .zip(1..)
            .map(|(link, i)| WatchLinksResponse {
                r#type: EventType::Added as i32,
                link: Some(link),
                revision: REV + i,
            })
            .filter(|e| e.revision > r.since_revision)
            .filter(|e| {
                let l = e.link.as_ref().unwrap();
                let peer_ns = match &l.kind {
                    Some(Kind::Veth(v)) => v.peer.as_ref().map(|p| p.namespace.as_str()),
                    _ => None,
                };
                r.namespace
                    .as_deref()
                    .is_none_or(|ns| l.namespace == ns || peer_ns == Some(ns))
            })
            .collect();
        Ok(Response::new(stream_events(events, gap, Then::Hold)))
    }
}

/// A network of the fake: `web` is full (labels, two subnets, an endpoint, usage, every kind of
/// field proto3 JSON treats specially: int64, uint64, optional bool, a timestamp, an enum), so
/// that JSON, templates and Docker's shape have something to show.
fn fake_network(name: String, dns: Option<bool>, dns_servers: Vec<String>) -> Network {
    let mut n = Network {
        bridge_name: format!("br-{name}"),
        dns,
        dns_servers,
        status: status(Phase::Ready, ""),
        ..Default::default()
    };
    if name == "web" {
        n.labels = HashMap::from([
            ("app".into(), "web".into()),
            ("tier".into(), "front".into()),
        ]);
        n.uid = "0b1c2d3e-web".into();
        n.generation = 2;
        n.mtu = 1500;
        n.enable_icc = Some(false);
        n.enable_ipv6 = true;
        n.create_time = Some(prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 500_000_000,
        });
        n.subnets = vec![
            Subnet {
                subnet: "10.1.0.0/24".into(),
                gateway: "10.1.0.1".into(),
                ip_range: "10.1.0.128/25".into(),
                reserved: vec!["10.1.0.200".into()],
            },
            Subnet {
                subnet: "fd00::/64".into(),
                gateway: "fd00::1".into(),
                ..Default::default()
            },
        ];
        n.endpoints = vec![Endpoint {
            network: "web".into(),
            namespace: "ns1".into(),
            interface_name: "eth0".into(),
            ipv4_address: "10.1.0.130/24".into(),
            ipv6_address: "fd00::2/64".into(),
            mac_address: "02:42:0a:01:00:82".into(),
            ipv4_gateway: "10.1.0.1".into(),
            host_interface_name: "veth1a2b3c".into(),
            status: status(Phase::Ready, ""),
            ..Default::default()
        }];
        n.usage = vec![SubnetUsage {
            subnet: "10.1.0.0/24".into(),
            leased: 1,
            capacity: 126,
        }];
    }
    n.name = name;
    n
}

fn not_yet<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented(
        "NetworkService is not implemented yet",
    ))
}

#[tonic::async_trait]
impl NetworkService for Svc {
    async fn create_network(
        &self,
        req: Request<CreateNetworkRequest>,
    ) -> Result<Response<CreateNetworkResponse>, Status> {
        let r = req.into_inner();
        let mut net = r.network.unwrap_or_default();
        self.called(call("CreateNetwork", &net.name, r.dry_run));
        self.0.request_id("CreateNetwork", &r.request_id);
        net.bridge_name = format!("br-{}", net.name);
        net.status = status(Phase::Ready, "");
        let planned_changes = if r.dry_run {
            net.status = None;
            vec![
                change("create", "link", &net.bridge_name, "bridge, up"),
                change(
                    "add",
                    "firewall",
                    &format!("network {}", net.name),
                    "masquerade",
                ),
            ]
        } else {
            Vec::new()
        };
        Ok(Response::new(CreateNetworkResponse {
            planned_changes,
            network: Some(net),
        }))
    }
    /// Only `web` (with DNS, two resolver addresses) and `plain` (DNS off) exist.
    async fn get_network(
        &self,
        req: Request<GetNetworkRequest>,
    ) -> Result<Response<GetNetworkResponse>, Status> {
        self.called("GetNetwork");
        let name = req.into_inner().name;
        let (dns, dns_servers) = match name.as_str() {
            "web" => (None, vec!["10.1.0.1".into(), "fd00::1".into()]),
            "plain" => (Some(false), Vec::new()),
            _ => return not_yet(),
        };
        Ok(Response::new(GetNetworkResponse {
            network: Some(fake_network(name, dns, dns_servers)),
        }))
    }
    /// `web` and `plain`, as GetNetwork answers them.
    async fn list_networks(
        &self,
        _: Request<ListNetworksRequest>,
    ) -> Result<Response<ListNetworksResponse>, Status> {
        self.called("ListNetworks");
        Ok(Response::new(ListNetworksResponse {
            networks: vec![
                fake_network(
                    "web".into(),
                    None,
                    vec!["10.1.0.1".into(), "fd00::1".into()],
                ),
                fake_network("plain".into(), Some(false), Vec::new()),
            ],
            ..Default::default()
        }))
    }
    async fn delete_network(
        &self,
        req: Request<DeleteNetworkRequest>,
    ) -> Result<Response<DeleteNetworkResponse>, Status> {
        let r = req.into_inner();
        self.called(call("DeleteNetwork", &r.name, r.dry_run));
        if !r.dry_run {
            return not_yet();
        }
        Ok(Response::new(DeleteNetworkResponse {
            planned_changes: vec![change(
                "delete",
                "link",
                &format!("br-{}", r.name),
                "bridge",
            )],
        }))
    }
    /// Only dry runs: `old` would go.
    async fn prune_networks(
        &self,
        req: Request<PruneNetworksRequest>,
    ) -> Result<Response<PruneNetworksResponse>, Status> {
        let r = req.into_inner();
        self.called(call("PruneNetworks", &r.label_selector, r.dry_run));
        if !r.dry_run {
            return not_yet();
        }
        Ok(Response::new(PruneNetworksResponse {
            deleted: vec!["old".into()],
            planned_changes: vec![change("delete", "link", "br-old", "bridge")],
        }))
    }
    /// Networks `bridge` and `mynet` connect; `flaky` accepts the endpoint, which then fails;
    /// any other network does not exist.
    async fn connect(
        &self,
        req: Request<ConnectRequest>,
    ) -> Result<Response<ConnectResponse>, Status> {
        let r = req.into_inner();
        let key = format!("{}, {}", r.network, r.namespace);
        self.called(call("Connect", &key, r.dry_run));
        self.0.request_id("Connect", &r.request_id);
        self.0.connects.lock().unwrap().push(r.clone());
        if !["bridge", "mynet", "flaky"].contains(&r.network.as_str()) {
            return Err(Status::not_found(format!(
                "network {:?} not found",
                r.network
            )));
        }
        if r.dry_run {
            // The namespace may be one a dry-run CreateNamespace just planned.
            let at = format!("eth0 in namespace {}", r.namespace);
            return Ok(Response::new(ConnectResponse {
                planned_changes: vec![
                    change("create", "link", &at, "veth, peer on bridge weft0"),
                    change("add", "address", &format!("172.17.0.2/16 on {at}"), ""),
                    change(
                        "add",
                        "route",
                        &format!("default on {at}"),
                        "via 172.17.0.1",
                    ),
                ],
                endpoint: Some(Endpoint {
                    network: r.network,
                    namespace: r.namespace,
                    ipv4_address: "172.17.0.2/16".into(),
                    ..Default::default()
                }),
            }));
        }
        if !self.0.namespaces.lock().unwrap().contains_key(&r.namespace) {
            return Err(Status::not_found(format!(
                "namespace {:?} not found",
                r.namespace
            )));
        }
        let (phase, message) = match (r.network.as_str(), r.wait.unwrap_or(true)) {
            ("flaky", _) => (Phase::Failed, "veth: file exists"),
            (_, false) => (Phase::Pending, ""),
            _ => (Phase::Ready, ""),
        };
        let ep = Endpoint {
            network: r.network.clone(),
            namespace: r.namespace.clone(),
            interface_name: r.interface_name,
            ipv4_address: if r.ipv4_address.is_empty() {
                "172.17.0.2/16".into()
            } else {
                format!("{}/16", r.ipv4_address)
            },
            ipv6_address: if r.ipv6_address.is_empty() {
                String::new()
            } else {
                format!("{}/64", r.ipv6_address)
            },
            mac_address: if r.mac_address.is_empty() {
                "02:42:ac:11:00:02".into()
            } else {
                r.mac_address
            },
            ipv4_gateway: "172.17.0.1".into(),
            ipv6_gateway: String::new(),
            host_interface_name: "wv0123456789ab".into(),
            dns_servers: Vec::new(),
            aliases: r.aliases,
            published_ports: r.published_ports,
            status: Some(weft::v1::Status {
                phase: phase as i32,
                observed_generation: 0,
                message: message.into(),
            }),
        };
        self.0
            .endpoints
            .lock()
            .unwrap()
            .insert((r.network, r.namespace), ep.clone());
        Ok(Response::new(ConnectResponse {
            planned_changes: Vec::new(),
            endpoint: Some(ep),
        }))
    }
    async fn disconnect(
        &self,
        req: Request<DisconnectRequest>,
    ) -> Result<Response<DisconnectResponse>, Status> {
        let r = req.into_inner();
        let key = format!("{}, {}", r.network, r.namespace);
        self.called(call("Disconnect", &key, r.dry_run));
        let mut endpoints = self.0.endpoints.lock().unwrap();
        let at = (r.network.clone(), r.namespace.clone());
        let found = if r.dry_run {
            endpoints.get(&at).cloned()
        } else {
            endpoints.remove(&at)
        };
        if r.dry_run && found.is_some() {
            return Ok(Response::new(DisconnectResponse {
                planned_changes: vec![change(
                    "delete",
                    "link",
                    &format!("eth0 in namespace {}", r.namespace),
                    "veth",
                )],
            }));
        }
        match found {
            Some(_) => Ok(Response::new(DisconnectResponse {
                planned_changes: Vec::new(),
            })),
            None => Err(Status::not_found(format!(
                "namespace {:?} is not connected to network {:?}",
                r.namespace, r.network
            ))),
        }
    }
    type WatchNetworksStream = Stream_<WatchNetworksResponse>;
    /// Streams the network log, then ends the stream; with the selector `broken`, fails it
    /// after the first event instead.
    async fn watch_networks(
        &self,
        req: Request<WatchNetworksRequest>,
    ) -> Result<Response<Self::WatchNetworksStream>, Status> {
        self.called("WatchNetworks");
        let gap = self.0.watched("WatchNetworks", &req);
        let r = req.into_inner();
        check_since(r.since_revision)?;
        let mut events: Vec<_> = network_log()
            .into_iter()
            .filter(|e| e.revision > r.since_revision)
            .collect();
        let then = if r.label_selector == "broken" {
            events.truncate(1);
            Then::Fail
        } else {
            Then::End
        };
        Ok(Response::new(stream_events(events, gap, then)))
    }
}

#[tonic::async_trait]
impl SystemService for Svc {
    async fn get_system_info(
        &self,
        _: Request<GetSystemInfoRequest>,
    ) -> Result<Response<GetSystemInfoResponse>, Status> {
        self.called("GetSystemInfo");
        Ok(Response::new(GetSystemInfoResponse {
            version: "0.1.0".into(),
            start_time: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            kernel_writes: 1201,
            reconciles: 1302,
            reconcile_failures: 3,
            drift_repairs: 14,
            queue_depth: 5,
            rechecking: 2,
            host_netns: String::new(),
            netns_dir: "/run/netns".into(),
            database: "/var/lib/weft/weft.db".into(),
            orphans_removed: 6,
            dns_queries: 40,
            dns_answers: 31,
            dns_forwards: 7,
            git_commit: "0123456789ab".into(),
        }))
    }
}

/// A fake weftd listening in a temp dir for as long as it lives.
struct Daemon {
    fake: Arc<Fake>,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Daemon {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("weftd.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let fake = Arc::new(Fake::default());
        let svc = Svc(fake.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(NamespaceServiceServer::new(svc.clone()))
                .add_service(LinkServiceServer::new(svc.clone()))
                .add_service(NetworkServiceServer::new(svc.clone()))
                .add_service(SystemServiceServer::new(svc))
                .serve_with_incoming(UnixListenerStream::new(listener)),
        );
        Daemon {
            fake,
            socket,
            _dir: dir,
        }
    }

    /// Runs `weft --socket SOCKET args...`.
    async fn weft(&self, args: &[&str]) -> Run {
        weft(Some(&self.socket), args).await
    }

    /// The calls weftd got since the last time this was asked.
    fn calls(&self) -> Vec<String> {
        std::mem::take(&mut *self.fake.calls.lock().unwrap())
    }

    /// The watch requests weftd got since the last time this was asked, as Debug text.
    fn watches(&self) -> Vec<String> {
        std::mem::take(&mut *self.fake.watches.lock().unwrap())
    }

    /// The request ids of the Creates and Connects so far, as (method, id).
    fn request_ids(&self) -> Vec<(String, String)> {
        self.fake.request_ids.lock().unwrap().clone()
    }

    /// The deadline (`grpc-timeout`) the last call of `method` carried.
    fn deadline(&self, method: &str) -> Option<String> {
        self.fake.deadlines.lock().unwrap()[method].clone()
    }

    /// The names of the namespaces weftd holds.
    fn namespaces(&self) -> Vec<String> {
        self.fake
            .namespaces
            .lock()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn weft(socket: Option<&Path>, args: &[&str]) -> Run {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_weft"));
    cmd.env_remove("WEFT_SOCKET")
        .env_remove("WEFT_TIMEOUT")
        .stdin(std::process::Stdio::null());
    if let Some(s) = socket {
        cmd.arg("--socket").arg(s);
    }
    cmd.args(args);
    let what = format!("weft {args:?}");
    let out: Output = tokio::task::spawn_blocking(move || run_bounded(cmd, &what))
        .await
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// How long one `weft` run may take: a watch that fails to stop is killed, and the test fails,
/// instead of hanging.
const RUN_LIMIT: Duration = Duration::from_secs(30);

/// Runs `cmd` to completion, killing it (and panicking) after [`RUN_LIMIT`].
fn run_bounded(mut cmd: std::process::Command, what: &str) -> Output {
    use std::io::Read;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            r.read_to_end(&mut buf).unwrap();
            buf
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > RUN_LIMIT {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("{what} still ran after {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_lifecycle_in_table_and_json() {
    let d = Daemon::start().await;
    let r = d.weft(&["ns", "create", "ns1", "--label", "app=web"]).await;
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (0, "ns1\n", "")
    );
    let r = d.weft(&["ns", "create", "ns2"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);

    let r = d.weft(&["ns", "ls"]).await;
    assert_eq!(
        r.stdout,
        "NAME   PATH             LABELS    STATE\n\
         ns1    /run/netns/ns1   app=web   Ready\n\
         ns2    /run/netns/ns2   -         Ready\n"
    );
    let r = d.weft(&["ns", "list", "-q", "--selector", "app=web"]).await;
    assert_eq!(r.stdout, "ns1\n");

    let r = d.weft(&["--format", "json", "ns", "inspect", "ns1"]).await;
    assert_eq!(r.code, 0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v[0]["name"], "ns1");
    assert_eq!(v[0]["labels"]["app"], "web");
    assert_eq!(v[0]["status"]["phase"], "PHASE_READY");
    assert_eq!(v[0]["statusPath"], "/run/netns/ns1");
    assert_eq!(v[0]["createTime"], "2023-11-14T22:13:20Z");
    // Deterministic: the same call prints the same bytes.
    assert_eq!(
        d.weft(&["--format", "json", "ns", "inspect", "ns1"])
            .await
            .stdout,
        r.stdout
    );

    let r = d.weft(&["ns", "rm", "ns1", "ns2"]).await;
    assert_eq!((r.code, r.stdout.as_str()), (0, "ns1\nns2\n"));
    let r = d.weft(&["ns", "ls", "--format", "json"]).await;
    assert_eq!(r.stdout, "[]\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_what_failed_and_exit_1() {
    let d = Daemon::start().await;
    let r = d.weft(&["ns", "inspect", "nope"]).await;
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "Error: inspect namespace \"nope\": namespace \"nope\" not found\n"
    );

    // One found, one not: the found one is printed, the other reported, exit 1.
    d.weft(&["ns", "create", "a"]).await;
    let r = d
        .weft(&["--format", "json", "ns", "inspect", "a", "nope"])
        .await;
    assert_eq!(r.code, 1);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap()[0]["name"],
        "a"
    );
    assert!(
        r.stderr.contains("namespace \"nope\" not found"),
        "{}",
        r.stderr
    );

    let r = d.weft(&["ns", "create", "a"]).await;
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "Error: create namespace \"a\": namespace \"a\" already exists\n"
    );

    // Accepted but Failed: printed, then an error with the status message.
    let r = d.weft(&["ns", "create", "bad"]).await;
    assert_eq!((r.code, r.stdout.as_str()), (1, "bad\n"));
    assert!(
        r.stderr
            .contains("applying it failed: mount: permission denied"),
        "{}",
        r.stderr
    );

    // Still Pending when weftd answered at the deadline: an error too; not waiting is not.
    let r = d.weft(&["--timeout", "90s", "ns", "create", "slow"]).await;
    assert_eq!((r.code, r.stdout.as_str()), (1, "slow\n"));
    assert!(r.stderr.contains("not applied within 90s"), "{}", r.stderr);
    let r = d.weft(&["ns", "create", "later", "--no-wait"]).await;
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (0, "later\n", "")
    );

    let r = d.weft(&["network", "inspect", "n1"]).await;
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "Error: inspect network \"n1\": NetworkService is not implemented yet\n"
    );
    let r = d.weft(&["network", "rm", "n1"]).await;
    assert_eq!(
        r.stderr,
        "Error: remove network \"n1\": NetworkService is not implemented yet\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_ls_and_set_with_an_update_mask() {
    let d = Daemon::start().await;
    let r = d.weft(&["link", "ls"]).await;
    assert_eq!(
        r.stdout,
        "NAME    NAMESPACE   KIND     PEER       ADDRESSES     STATE\n\
         veth0   (host)      veth     ns1/eth0   10.0.0.1/24   Ready\n\
         br0     ns2         bridge   -          -             Failed: no such device\n"
    );

    let r = d
        .weft(&[
            "link", "set", "eth0", "--ns", "ns1", "--mtu", "1400", "--down",
        ])
        .await;
    assert_eq!((r.code, r.stdout.as_str()), (0, "eth0\n"), "{}", r.stderr);
    let req = d.fake.last_update.lock().unwrap().clone().unwrap();
    assert_eq!(req.update_mask.unwrap().paths, ["mtu", "up"]);
    let link = req.link.unwrap();
    assert_eq!(
        (
            link.name.as_str(),
            link.namespace.as_str(),
            link.mtu,
            link.up
        ),
        ("eth0", "ns1", 1400, false)
    );
    assert_eq!(req.wait, Some(true));

    let r = d.weft(&["link", "set", "nope", "--up"]).await;
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "Error: set link \"nope\" in the host namespace: link \"nope\" not found\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_daemon_and_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no.sock");
    let r = weft(Some(&missing), &["ns", "ls"]).await;
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        format!(
            "Error: cannot reach weftd at {} (no such socket): is weftd running? (--socket to use \
             another)\n",
            missing.display()
        )
    );
    // A usage error is found before dialling: exit 2 even with no daemon.
    let r = weft(Some(&missing), &["link", "create", "v0", "--type", "veth"]).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = weft(
        Some(&missing),
        &["network", "connect", "n", "ns", "-p", "80:80/icmp"],
    )
    .await;
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("tcp, udp or sctp"), "{}", r.stderr);
    // prune without -f and no "y" on stdin does nothing, successfully.
    let r = weft(Some(&missing), &["network", "prune"]).await;
    assert_eq!((r.code, r.stdout.as_str()), (0, ""));
}

// `weft ns create --network MODE`: Docker's four network modes.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_none_only_creates_the_namespace() {
    let d = Daemon::start().await;
    let r = d.weft(&["ns", "create", "a"]).await;
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (0, "a\n", "")
    );
    assert_eq!(d.calls(), ["CreateNamespace(a)"]);
    let r = d
        .weft(&["--format", "json", "ns", "create", "b", "--network", "none"])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    // Exactly what `ns create` prints without --network: the namespace itself.
    assert_eq!(v["name"], "b");
    assert_eq!(v["statusPath"], "/run/netns/b");
    assert!(v.get("endpoint").is_none(), "{v}");
    assert_eq!(d.calls(), ["CreateNamespace(b)"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_bridge_creates_then_connects_with_the_flags() {
    let d = Daemon::start().await;
    let r = d
        .weft(&[
            "ns",
            "create",
            "web",
            "--network",
            "bridge",
            "--label",
            "app=web",
            "--ip",
            "172.17.0.5",
            "--ip6",
            "fd00:1::5",
            "--mac",
            "02:42:ac:11:00:05",
            "--alias",
            "www",
            "--alias",
            "site",
            "-p",
            "8080:80",
            "--publish",
            "127.0.0.1:5353:53/udp",
            "--interface",
            "eth1",
        ])
        .await;
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert_eq!(d.calls(), ["CreateNamespace(web)", "Connect(bridge, web)"]);
    let c = d.fake.connects.lock().unwrap()[0].clone();
    assert_eq!(
        (
            c.network.as_str(),
            c.namespace.as_str(),
            c.interface_name.as_str()
        ),
        ("bridge", "web", "eth1")
    );
    assert_eq!(
        (
            c.ipv4_address.as_str(),
            c.ipv6_address.as_str(),
            c.mac_address.as_str()
        ),
        ("172.17.0.5", "fd00:1::5", "02:42:ac:11:00:05")
    );
    assert_eq!(c.aliases, ["www", "site"]);
    assert_eq!(
        c.published_ports,
        [
            PublishedPort {
                host_ip: String::new(),
                host_port: 8080,
                host_port_end: 0,
                container_port: 80,
                container_port_end: 0,
                protocol: "tcp".into(),
            },
            PublishedPort {
                host_ip: "127.0.0.1".into(),
                host_port: 5353,
                host_port_end: 0,
                container_port: 53,
                container_port_end: 0,
                protocol: "udp".into(),
            }
        ]
    );
    assert_eq!((c.wait, c.skip_default_route), (Some(true), false));
    // What `ns create` prints, then the endpoint as `network connect` prints it.
    assert_eq!(
        r.stdout,
        "web\n\
         NETWORK   NAMESPACE   INTERFACE   IPV4            IPV6           MAC                 PORTS                                 STATE\n\
         bridge    web         eth1        172.17.0.5/16   fd00:1::5/64   02:42:ac:11:00:05   8080->80/tcp,127.0.0.1:5353->53/udp   Ready\n"
    );

    // --no-wait goes to both calls, and a Pending answer is then no error.
    let r = d
        .weft(&["ns", "create", "later", "--net", "bridge", "--no-wait"])
        .await;
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert_eq!(
        d.calls(),
        ["CreateNamespace(later)", "Connect(bridge, later)"]
    );
    assert_eq!(d.fake.connects.lock().unwrap()[1].wait, Some(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_network_is_connected_to_and_json_is_stable() {
    let args = [
        "--format", "json", "ns", "create", "db", "--net", "mynet", "--label", "b=2", "--label",
        "a=1", "--label", "c=3",
    ];
    let d = Daemon::start().await;
    let r = d.weft(&args).await;
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert_eq!(d.calls(), ["CreateNamespace(db)", "Connect(mynet, db)"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["endpoint", "namespace"]);
    assert_eq!(v["namespace"]["name"], "db");
    assert_eq!(v["namespace"]["status"]["phase"], "PHASE_READY");
    assert_eq!(v["endpoint"]["network"], "mynet");
    assert_eq!(v["endpoint"]["namespace"], "db");
    assert_eq!(v["endpoint"]["ipv4Address"], "172.17.0.2/16");
    assert_eq!(v["endpoint"]["status"]["phase"], "PHASE_READY");
    // Deterministic: the same call to another weftd in the same state prints the same bytes.
    let again = Daemon::start().await.weft(&args).await;
    assert_eq!(again.stdout, r.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_connect_removes_the_namespace_again() {
    let d = Daemon::start().await;
    // Refused: nothing was connected, so only the namespace goes.
    let r = d.weft(&["ns", "create", "web", "--network", "nope"]).await;
    assert_eq!(r.code, 1);
    assert_eq!(r.stdout, "");
    assert_eq!(
        r.stderr,
        "Error: connect namespace \"web\" to network \"nope\": network \"nope\" not found \
         (namespace \"web\" was removed again)\n"
    );
    assert_eq!(
        d.calls(),
        [
            "CreateNamespace(web)",
            "Connect(nope, web)",
            "DeleteNamespace(web)"
        ]
    );
    assert!(d.namespaces().is_empty());

    // Accepted but Failed: the endpoint holds the namespace, so it is disconnected first.
    let r = d.weft(&["ns", "create", "web", "--network", "flaky"]).await;
    assert_eq!((r.code, r.stdout.as_str()), (1, ""));
    assert!(
        r.stderr.contains("applying it failed: veth: file exists")
            && r.stderr
                .ends_with("(namespace \"web\" was removed again)\n"),
        "{}",
        r.stderr
    );
    assert_eq!(
        d.calls(),
        [
            "CreateNamespace(web)",
            "Connect(flaky, web)",
            "Disconnect(flaky, web)",
            "DeleteNamespace(web)"
        ]
    );
    assert!(d.namespaces().is_empty());
    assert!(d.fake.endpoints.lock().unwrap().is_empty());

    // The namespace itself failed: no Connect, and it is removed too.
    let r = d
        .weft(&["ns", "create", "bad", "--network", "bridge"])
        .await;
    assert_eq!((r.code, r.stdout.as_str()), (1, ""));
    assert!(
        r.stderr.contains("mount: permission denied") && r.stderr.contains("removed again"),
        "{}",
        r.stderr
    );
    assert_eq!(d.calls(), ["CreateNamespace(bad)", "DeleteNamespace(bad)"]);

    // The namespace could not be created at all: nothing to undo, no Connect.
    d.weft(&["ns", "create", "taken"]).await;
    d.calls();
    let r = d
        .weft(&["ns", "create", "taken", "--network", "bridge"])
        .await;
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (
            1,
            "Error: create namespace \"taken\": namespace \"taken\" already exists\n"
        )
    );
    assert_eq!(d.calls(), ["CreateNamespace(taken)"]);
    assert_eq!(d.namespaces(), ["taken"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_host_calls_nothing() {
    let d = Daemon::start().await;
    let r = d.weft(&["ns", "create", "web", "--network", "host"]).await;
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (
            0,
            "the host namespace at /proc/1/ns/net: nothing created (network mode host; the name \
             \"web\" is unused)\n",
            ""
        )
    );
    let r = d
        .weft(&["--format", "json", "ns", "create", "web", "--net", "host"])
        .await;
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (
            0,
            "{\n  \"created\": false,\n  \"namespace\": null,\n  \"networkMode\": \"host\",\n  \
             \"path\": \"/proc/1/ns/net\",\n  \"unusedName\": \"web\"\n}\n"
        )
    );
    assert!(d.calls().is_empty());
    assert!(d.namespaces().is_empty());
    // Not even a connection: it works with no weftd at all.
    let dir = tempfile::tempdir().unwrap();
    let r = weft(
        Some(&dir.path().join("no.sock")),
        &["ns", "create", "web", "--network", "host"],
    )
    .await;
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_container_looks_up_the_namespace_only() {
    let d = Daemon::start().await;
    d.weft(&["ns", "create", "ns1"]).await;
    d.calls();
    let r = d
        .weft(&["ns", "create", "web", "--network", "container:ns1"])
        .await;
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (
            0,
            "namespace ns1 at /run/netns/ns1: nothing created (network mode container:ns1; the \
             name \"web\" is unused)\n",
            ""
        )
    );
    assert_eq!(d.calls(), ["GetNamespace(ns1)"]);
    let r = d
        .weft(&[
            "--format",
            "json",
            "ns",
            "create",
            "web",
            "--net",
            "container:ns1",
        ])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["networkMode"], "container:ns1");
    assert_eq!(v["created"], false);
    assert_eq!(v["unusedName"], "web");
    assert_eq!(v["path"], "/run/netns/ns1");
    assert_eq!(v["namespace"]["name"], "ns1");
    assert_eq!(d.calls(), ["GetNamespace(ns1)"]);
    assert_eq!(d.namespaces(), ["ns1"]);

    let r = d
        .weft(&["ns", "create", "web", "--network", "container:nope"])
        .await;
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (
            1,
            "",
            "Error: share namespace \"nope\": namespace \"nope\" not found\n"
        )
    );
    assert_eq!(d.calls(), ["GetNamespace(nope)"]);

    // A namespace that failed is no namespace to share.
    d.weft(&["ns", "create", "bad"]).await;
    d.calls();
    let r = d
        .weft(&["ns", "create", "web", "--network", "container:bad"])
        .await;
    assert_eq!((r.code, r.stdout.as_str()), (1, ""));
    assert!(
        r.stderr.contains("it is Failed: mount: permission denied"),
        "{}",
        r.stderr
    );
    assert_eq!(d.calls(), ["GetNamespace(bad)"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_mode_usage_errors_exit_2_before_any_call() {
    let d = Daemon::start().await;
    for args in [
        &["ns", "create", "web", "--network", "container:"][..],
        &["ns", "create", "web", "-p", "8080:80"],
        &[
            "ns",
            "create",
            "web",
            "--network",
            "none",
            "--ip",
            "10.0.0.2",
        ],
        &["ns", "create", "web", "--network", "host", "--alias", "www"],
        &[
            "ns",
            "create",
            "web",
            "--network",
            "container:ns1",
            "--label",
            "a=b",
        ],
        &["ns", "create", "--network", "host"],
    ] {
        let r = d.weft(args).await;
        assert_eq!(
            (r.code, r.stdout.as_str()),
            (2, ""),
            "{args:?}: {}",
            r.stderr
        );
    }
    assert!(d.calls().is_empty());
    let r = d
        .weft(&["ns", "create", "web", "--network", "container:"])
        .await;
    assert!(r.stderr.contains("container:NAME"), "{}", r.stderr);
}

// Watch: `weft ... watch` and `ls --watch`, streamed from the fake's event logs.

/// A watch line in table mode, with the columns as wide as given.
fn watch_line(ty: &str, name: &str, nw: usize, state: &str, sw: usize, rev: u64) -> String {
    format!("{ty:<10}{name:<nw$}   {state:<sw$}   rev {rev}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_events_in_order_and_stops_after_max_events() {
    let d = Daemon::start().await;
    let failed = "Failed: mount: permission denied";
    let r = d.weft(&["ns", "watch", "--max-events", "4"]).await;
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert_eq!(
        r.stdout,
        [
            "ADDED     ns1   Ready   rev 5591444337264164871\n".to_string(),
            watch_line("ADDED", "ns2", 3, "Pending", 7, REV + 2),
            watch_line("MODIFIED", "ns2", 3, failed, failed.len(), REV + 3),
            watch_line("DELETED", "ns1", 3, "Deleting", failed.len(), REV + 4),
        ]
        .concat()
    );
    assert_eq!(
        d.watches(),
        ["WatchNamespaces WatchNamespacesRequest { label_selector: \"\", since_revision: 0 }"]
    );

    // `ls --watch` is the same watch; the selector goes to weftd.
    let r = d
        .weft(&["ns", "ls", "-w", "-l", "app=web", "--max-events", "2"])
        .await;
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert_eq!(
        r.stdout,
        [
            watch_line("ADDED", "ns1", 3, "Ready", 5, REV + 1),
            watch_line("DELETED", "ns1", 3, "Deleting", 8, REV + 4),
        ]
        .concat()
    );
    assert_eq!(
        d.watches(),
        [
            "WatchNamespaces WatchNamespacesRequest { label_selector: \"app=web\", \
             since_revision: 0 }"
        ]
    );

    // JSON: one object per line, the object as `inspect -o json` shows it.
    let r = d
        .weft(&["--format", "json", "ns", "watch", "--max-events", "3"])
        .await;
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    let lines: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert!(r.stdout.starts_with("{\"object\":{"), "{}", r.stdout);
    let summary: Vec<(&str, &str, u64)> = lines
        .iter()
        .map(|v| {
            (
                v["type"].as_str().unwrap(),
                v["object"]["name"].as_str().unwrap(),
                v["revision"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("ADDED", "ns1", REV + 1),
            ("ADDED", "ns2", REV + 2),
            ("MODIFIED", "ns2", REV + 3)
        ]
    );
    assert_eq!(lines[0]["object"]["labels"]["app"], "web");
    assert_eq!(lines[0]["object"]["statusPath"], "/run/netns/ns1");
    assert_eq!(lines[2]["object"]["status"]["phase"], "PHASE_FAILED");
    assert_eq!(
        lines[2]["object"]["status"]["message"],
        "mount: permission denied"
    );
    d.watches();

    // Links: NAMESPACE/NAME; --ns goes to weftd.
    let r = d
        .weft(&["link", "watch", "--ns", "ns1", "--max-events", "1"])
        .await;
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (
            0,
            "ADDED     (host)/veth0   Ready   rev 5591444337264164871\n",
            ""
        )
    );
    assert_eq!(
        d.watches(),
        [
            "WatchLinks WatchLinksRequest { namespace: Some(\"ns1\"), label_selector: \"\", \
             since_revision: 0 }"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_has_no_deadline() {
    let d = Daemon::start().await;
    *d.fake.watch_gap.lock().unwrap() = Duration::from_millis(300);
    let start = Instant::now();
    let r = d
        .weft(&["--timeout", "200ms", "ns", "watch", "--max-events", "3"])
        .await;
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert_eq!(r.stdout.lines().count(), 3, "{}", r.stdout);
    // The stream outlived --timeout several times over, and carried no deadline at all...
    assert!(start.elapsed() >= Duration::from_millis(900));
    assert_eq!(d.deadline("WatchNamespaces"), None);
    // ...while an ordinary call carries --timeout as its deadline.
    let r = d.weft(&["--timeout", "200ms", "ns", "ls"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(d.deadline("ListNamespaces").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_since_a_revision() {
    let d = Daemon::start().await;
    let since = (REV + 2).to_string();
    let r = d
        .weft(&["ns", "watch", "--since", &since, "--max-events", "2"])
        .await;
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    let failed = "Failed: mount: permission denied";
    assert_eq!(
        r.stdout,
        [
            watch_line("MODIFIED", "ns2", 3, failed, failed.len(), REV + 3),
            watch_line("DELETED", "ns1", 3, "Deleting", failed.len(), REV + 4),
        ]
        .concat()
    );
    assert_eq!(
        d.watches(),
        [format!(
            "WatchNamespaces WatchNamespacesRequest {{ label_selector: \"\", since_revision: \
             {since} }}"
        )]
    );

    let r = d
        .weft(&[
            "link",
            "ls",
            "--watch",
            "--host-ns",
            "--since",
            &REV.to_string(),
            "--max-events",
            "1",
        ])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        d.watches(),
        [format!(
            "WatchLinks WatchLinksRequest {{ namespace: Some(\"\"), label_selector: \"\", \
             since_revision: {REV} }}"
        )]
    );

    // The networks' stream ends after its log: the watch ends with it, successfully.
    let r = d
        .weft(&["--format", "json", "network", "ls", "-w", "--since", &since])
        .await;
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    let revs: Vec<u64> = r
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["revision"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(revs, [REV + 3]);
    assert_eq!(
        d.watches(),
        [format!(
            "WatchNetworks WatchNetworksRequest {{ label_selector: \"\", since_revision: \
             {since} }}"
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_from_a_forgotten_revision_exits_1_with_the_message() {
    let d = Daemon::start().await;
    let r = d.weft(&["ns", "watch", "--since", "5"]).await;
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (
            1,
            "",
            "Error: watch namespaces from revision 5: revision 5 is older than what weftd \
             remembers (or from before a restart): list again, then watch without \
             since_revision\n"
        )
    );
    for args in [
        &["--format", "json", "link", "watch", "--since", "7"][..],
        &["network", "ls", "--watch", "--since", "7"],
    ] {
        let r = d.weft(args).await;
        assert_eq!((r.code, r.stdout.as_str()), (1, ""), "{args:?}");
        assert!(
            r.stderr
                .contains("revision 7 is older than what weftd remembers"),
            "{}",
            r.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_watch_filters_and_reports_a_broken_stream() {
    let d = Daemon::start().await;
    // Docker's name filter is the CLI's; label filters and -l go to weftd together.
    let r = d
        .weft(&[
            "network",
            "watch",
            "-f",
            "name=we",
            "-f",
            "label=tier=web",
            "-l",
            "env=prod",
        ])
        .await;
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert_eq!(
        r.stdout,
        [
            watch_line("ADDED", "web", 3, "Pending", 7, REV + 1),
            watch_line("MODIFIED", "web", 3, "Ready", 7, REV + 3),
        ]
        .concat()
    );
    assert_eq!(
        d.watches(),
        [
            "WatchNetworks WatchNetworksRequest { label_selector: \"env=prod,tier=web\", \
             since_revision: 0 }"
        ]
    );

    // A stream that breaks: what arrived is printed, then the error, with where to resume.
    let r = d.weft(&["network", "watch", "-l", "broken"]).await;
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stdout,
        watch_line("ADDED", "web", 3, "Pending", 7, REV + 1)
    );
    assert_eq!(
        r.stderr,
        format!(
            "Error: watch networks: the event log broke (the last event seen was revision \
             {0}: --since {0} resumes after it)\n",
            REV + 1
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_flags_without_a_watch_are_usage_errors() {
    let d = Daemon::start().await;
    for args in [
        &["ns", "ls", "--since", "5"][..],
        &["link", "ls", "--max-events", "1"],
        &["network", "ls", "--since", "5"],
        &["ns", "watch", "--max-events", "0"],
        &["ns", "ls", "-w", "-q"],
    ] {
        let r = d.weft(args).await;
        assert_eq!((r.code, r.stdout.as_str()), (2, ""), "{args:?}");
    }
    let r = d.weft(&["ns", "ls", "--since", "5"]).await;
    assert!(
        r.stderr
            .contains("--since only applies to a watch: add --watch (-w)"),
        "{}",
        r.stderr
    );
    assert!(d.calls().is_empty());
}

// --dry-run: dry_run reaches weftd, the plan is printed, nothing else happens.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_prints_the_plan_and_changes_nothing() {
    let d = Daemon::start().await;
    let r = d.weft(&["ns", "create", "web", "--dry-run"]).await;
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert_eq!(
        r.stdout,
        "ACTION   KIND        TARGET                DETAIL\n\
         create   namespace   web                   /run/netns/web\n\
         set      link        lo in namespace web   up\n"
    );
    assert_eq!(d.calls(), ["CreateNamespace(web, dry run)"]);
    assert!(d.namespaces().is_empty());

    let r = d
        .weft(&["--format", "json", "ns", "create", "web", "--dry-run"])
        .await;
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["dryRun", "namespace", "plannedChanges"]);
    assert_eq!(v["dryRun"], true);
    assert_eq!(
        v["plannedChanges"],
        serde_json::json!([
            {"action": "create", "kind": "namespace", "target": "web", "detail": "/run/netns/web"},
            {"action": "set", "kind": "link", "target": "lo in namespace web", "detail": "up"},
        ])
    );
    assert_eq!(v["namespace"]["name"], "web");
    assert_eq!(d.calls(), ["CreateNamespace(web, dry run)"]);
    assert!(d.namespaces().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_of_ns_create_with_a_network_plans_both_steps_and_undoes_nothing() {
    let d = Daemon::start().await;
    let r = d
        .weft(&["ns", "create", "web", "--network", "bridge", "--dry-run"])
        .await;
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert_eq!(
        r.stdout,
        "ACTION   KIND        TARGET                                   DETAIL\n\
         create   namespace   web                                      /run/netns/web\n\
         set      link        lo in namespace web                      up\n\
         create   link        eth0 in namespace web                    veth, peer on bridge weft0\n\
         add      address     172.17.0.2/16 on eth0 in namespace web   -\n\
         add      route       default on eth0 in namespace web         via 172.17.0.1\n"
    );
    assert_eq!(
        d.calls(),
        [
            "CreateNamespace(web, dry run)",
            "Connect(bridge, web, dry run)"
        ]
    );
    assert!(d.namespaces().is_empty());
    assert!(d.fake.endpoints.lock().unwrap().is_empty());

    let r = d
        .weft(&[
            "--format",
            "json",
            "ns",
            "create",
            "web",
            "--net",
            "bridge",
            "--dry-run",
        ])
        .await;
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["dryRun", "endpoint", "namespace", "plannedChanges"]);
    assert_eq!(v["plannedChanges"].as_array().unwrap().len(), 5);
    assert_eq!(v["endpoint"]["ipv4Address"], "172.17.0.2/16");
    d.calls();

    // A refused step is reported, and there is nothing to remove.
    let r = d
        .weft(&["ns", "create", "web", "--network", "nope", "--dry-run"])
        .await;
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (
            1,
            "",
            "Error: connect namespace \"web\" to network \"nope\" (dry run): network \"nope\" \
             not found\n"
        )
    );
    assert_eq!(
        d.calls(),
        [
            "CreateNamespace(web, dry run)",
            "Connect(nope, web, dry run)"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mutating_verb_has_a_dry_run() {
    let d = Daemon::start().await;
    d.weft(&["ns", "create", "a"]).await;
    d.weft(&["network", "connect", "bridge", "a"]).await;
    d.calls();
    for (args, call) in [
        (&["ns", "rm", "a"][..], "DeleteNamespace(a, dry run)"),
        (
            &[
                "link",
                "create",
                "v0",
                "--type",
                "bridge",
                "--addr",
                "10.0.0.1/24",
            ],
            "CreateLink(v0, dry run)",
        ),
        (
            &["link", "set", "veth0", "--mtu", "1400"],
            "UpdateLink(veth0, dry run)",
        ),
        (&["link", "rm", "veth0"], "DeleteLink(veth0, dry run)"),
        (&["network", "create", "n1"], "CreateNetwork(n1, dry run)"),
        (&["network", "rm", "n1"], "DeleteNetwork(n1, dry run)"),
        // No confirmation asked: nothing would be removed.
        (&["network", "prune"], "PruneNetworks(, dry run)"),
        (
            &["network", "connect", "bridge", "a"],
            "Connect(bridge, a, dry run)",
        ),
        (
            &["network", "disconnect", "bridge", "a"],
            "Disconnect(bridge, a, dry run)",
        ),
    ] {
        let mut argv = args.to_vec();
        argv.push("--dry-run");
        let r = d.weft(&argv).await;
        assert_eq!((r.code, r.stderr.as_str()), (0, ""), "{argv:?}");
        assert!(
            r.stdout.starts_with("ACTION   KIND   ") && r.stdout.lines().count() >= 2,
            "{argv:?}: {}",
            r.stdout
        );
        assert_eq!(d.calls(), [call], "{argv:?}");

        argv.splice(0..0, ["--format", "json"]);
        let r = d.weft(&argv).await;
        assert_eq!((r.code, r.stderr.as_str()), (0, ""), "{argv:?}");
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(v["dryRun"], true, "{argv:?}");
        assert!(
            !v["plannedChanges"].as_array().unwrap().is_empty(),
            "{argv:?}"
        );
        assert_eq!(d.calls(), [call], "{argv:?}");
    }
    // Nothing was removed or disconnected.
    assert_eq!(d.namespaces(), ["a"]);
    assert_eq!(d.fake.endpoints.lock().unwrap().len(), 1);
    assert!(d.fake.last_update.lock().unwrap().as_ref().unwrap().dry_run);

    // The shapes of the JSON beside the plan.
    let r = d
        .weft(&["--format", "json", "link", "rm", "veth0", "--dry-run"])
        .await;
    assert_eq!(
        r.stdout,
        "{\n  \"deleted\": [\n    {\n      \"name\": \"veth0\",\n      \"namespace\": \"\"\n    \
         }\n  ],\n  \"dryRun\": true,\n  \"plannedChanges\": [\n    {\n      \"action\": \
         \"delete\",\n      \"detail\": \"and its peer eth0 in namespace ns1\",\n      \
         \"kind\": \"link\",\n      \"target\": \"veth0 in the host namespace\"\n    }\n  ]\n}\n"
    );
    let r = d
        .weft(&["--format", "json", "network", "prune", "--dry-run"])
        .await;
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["deleted"], serde_json::json!(["old"]));
    let r = d
        .weft(&[
            "--format",
            "json",
            "network",
            "disconnect",
            "bridge",
            "a",
            "--dry-run",
        ])
        .await;
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        (v["network"].as_str(), v["namespace"].as_str()),
        (Some("bridge"), Some("a"))
    );
    let r = d
        .weft(&[
            "--format",
            "json",
            "link",
            "set",
            "veth0",
            "--up",
            "--dry-run",
        ])
        .await;
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["link"]["name"], "veth0");
}

// --request-id: passed through to Create and Connect, and absent unless given.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_passed_through() {
    let d = Daemon::start().await;
    for args in [
        &["ns", "create", "a", "--request-id", "r-ns"][..],
        &[
            "link",
            "create",
            "v0",
            "--type",
            "bridge",
            "--request-id",
            "r-link",
        ],
        &["network", "create", "n1", "--request-id", "r-net"],
        &[
            "network",
            "connect",
            "bridge",
            "a",
            "--request-id",
            "r-conn",
        ],
        // Both steps, each with an id of its own: weftd keeps one answer per id.
        &[
            "ns",
            "create",
            "b",
            "--network",
            "bridge",
            "--request-id",
            "r-both",
        ],
        &["ns", "create", "c"],
        &["network", "connect", "bridge", "c"],
        &["link", "create", "v1", "--type", "bridge"],
        &["network", "create", "n2"],
    ] {
        let r = d.weft(args).await;
        assert_eq!((r.code, r.stderr.as_str()), (0, ""), "{args:?}");
    }
    let id = |m: &str, id: &str| (m.to_string(), id.to_string());
    assert_eq!(
        d.request_ids(),
        [
            id("CreateNamespace", "r-ns"),
            id("CreateLink", "r-link"),
            id("CreateNetwork", "r-net"),
            id("Connect", "r-conn"),
            id("CreateNamespace", "r-both"),
            id("Connect", "r-both/connect"),
            id("CreateNamespace", ""),
            id("Connect", ""),
            id("CreateLink", ""),
            id("CreateNetwork", ""),
        ]
    );
    // An empty id is a usage error, not "no id".
    let r = d.weft(&["ns", "create", "x", "--request-id", ""]).await;
    assert_eq!(r.code, 2);
}

// weft system info / weft info.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_info_prints_every_counter() {
    let d = Daemon::start().await;
    let r = d.weft(&["system", "info"]).await;
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert_eq!(
        r.stdout,
        "Version:             0.1.0\n\
         Git commit:          0123456789ab\n\
         Started:             2023-11-14T22:13:20Z\n\
         Kernel writes:       1201\n\
         Reconciles:          1302\n\
         Reconcile failures:  3\n\
         Drift repairs:       14\n\
         Orphans removed:     6\n\
         Queue depth:         5\n\
         Re-checking:         2\n\
         DNS queries:         40\n\
         DNS answers:         31\n\
         DNS forwards:        7\n\
         Host netns:          weftd's own\n\
         Netns dir:           /run/netns\n\
         Database:            /var/lib/weft/weft.db\n"
    );
    assert_eq!(d.weft(&["info"]).await.stdout, r.stdout);

    let r = d.weft(&["--format", "json", "info"]).await;
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        v,
        // proto3 canonical JSON: uint64 counters as strings, the empty host_netns left out.
        serde_json::json!({
            "version": "0.1.0",
            "startTime": "2023-11-14T22:13:20Z",
            "kernelWrites": "1201",
            "reconciles": "1302",
            "reconcileFailures": "3",
            "driftRepairs": "14",
            "orphansRemoved": "6",
            "queueDepth": "5",
            "rechecking": "2",
            "netnsDir": "/run/netns",
            "database": "/var/lib/weft/weft.db",
            "dnsQueries": "40",
            "dnsAnswers": "31",
            "dnsForwards": "7",
            "gitCommit": "0123456789ab",
        })
    );
    assert_eq!(
        d.calls(),
        ["GetSystemInfo", "GetSystemInfo", "GetSystemInfo"]
    );
}

/// `weft version` shows the client's version and commit and weftd's, like `docker version`;
/// `weft --version` carries the commit too. Without a weftd the client part still prints and
/// the exit status says the server part failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_shows_client_and_server_commits() {
    let d = Daemon::start().await;
    let commit = weft_proto::GIT_COMMIT;
    let r = d.weft(&["version"]).await;
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert_eq!(
        r.stdout,
        format!(
            "Client:\n Version:     {}\n Git commit:  {commit}\n\
             Server:\n Version:     0.1.0\n Git commit:  0123456789ab\n",
            env!("CARGO_PKG_VERSION")
        )
    );
    let r = d.weft(&["--format", "json", "version"]).await;
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["client"]["gitCommit"], commit);
    assert_eq!(v["server"]["gitCommit"], "0123456789ab");
    let r = d.weft(&["--version"]).await;
    assert_eq!(
        r.stdout.trim(),
        format!("weft {}", weft_proto::LONG_VERSION)
    );
    assert!(r.stdout.contains("(commit "), "{}", r.stdout);
    drop(d);
}

/// `--dns`/`--no-dns` set `Network.dns` (the last one wins; neither leaves it unset, weftd's
/// default); inspect shows whether a network has DNS and its resolver's addresses, in the
/// table and in JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_dns_flags_and_inspect() {
    let d = Daemon::start().await;
    for (args, want) in [
        (&["--no-dns"][..], serde_json::json!(false)),
        (&["--dns"], serde_json::json!(true)),
        (&[], serde_json::Value::Null),
        (&["--dns", "--no-dns"], serde_json::json!(false)),
        (&["--no-dns", "--dns"], serde_json::json!(true)),
    ] {
        let mut all = vec!["--format", "json", "network", "create", "n1"];
        all.extend_from_slice(args);
        let r = d.weft(&all).await;
        assert_eq!((r.code, r.stderr.as_str()), (0, ""), "{args:?}");
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(v["dns"], want, "{args:?}: {}", r.stdout);
    }

    let r = d.weft(&["network", "inspect", "web"]).await;
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("DNS"))
        .unwrap_or_else(|| panic!("no DNS line in:\n{}", r.stdout));
    assert!(
        line.ends_with("yes (resolver on 10.1.0.1, fd00::1)"),
        "{line:?}"
    );
    let r = d.weft(&["network", "inspect", "plain"]).await;
    let line = r.stdout.lines().find(|l| l.starts_with("DNS")).unwrap();
    assert!(line.ends_with("no"), "{line:?}");

    let r = d
        .weft(&["--format", "json", "network", "inspect", "web"])
        .await;
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    // A list, as `docker network inspect` prints.
    assert_eq!(
        v[0]["dnsServers"],
        serde_json::json!(["10.1.0.1", "fd00::1"])
    );
    assert_eq!(v[0]["dns"], serde_json::Value::Null);
}

/// `weft completion SHELL` prints a script the shell loads, and `weft man DIR` writes a page
/// per command; both come from the CLI's own definition, so every verb is in them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_scripts_and_man_pages_cover_the_cli() {
    let d = Daemon::start().await;
    for (shell, marker) in [
        ("bash", "complete -F _weft"),
        ("zsh", "#compdef weft"),
        ("fish", "complete -c weft"),
    ] {
        let r = d.weft(&["completion", shell]).await;
        assert_eq!(r.code, 0, "{shell}: {}", r.stderr);
        assert!(r.stdout.contains(marker), "{shell}: no {marker:?}");
        assert!(r.stdout.contains("connect"), "{shell}: no `connect` verb");
    }
    let r = d.weft(&["completion", "tcsh"]).await;
    assert_ne!(r.code, 0, "an unknown shell is refused");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    let r = d.weft(&["man", out.to_str().unwrap()]).await;
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    for page in [
        "weft.1",
        "weft-network-connect.1",
        "weft-ns-create.1",
        "weft-version.1",
    ] {
        let text =
            std::fs::read_to_string(out.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(
            text.starts_with(".ie") || text.contains(".TH"),
            "{page}: {text:.200}"
        );
    }
    assert!(d.calls().is_empty(), "no call to weftd: {:?}", d.calls());
}

// --format: proto3 JSON as grpcurl prints it, Go templates, Docker's inspect shape, and `-o`
// as `network create`'s `--opt`.

/// Runs grpcurl (`$GRPCURL`, else `grpcurl` on PATH: scripts/test installs it) against the
/// fake with the repo's .proto files (the fake serves no reflection) and returns its JSON.
fn grpcurl(d: &Daemon, proto: &str, method: &str, data: &str) -> serde_json::Value {
    let bin = std::env::var_os("GRPCURL").unwrap_or_else(|| "grpcurl".into());
    let protos = Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto");
    let mut cmd = std::process::Command::new(&bin);
    cmd.args([
        "-plaintext",
        "-unix",
        "-authority",
        "localhost",
        "-import-path",
    ])
    .arg(&protos)
    .args(["-proto", proto, "-d", data])
    .arg(&d.socket)
    .arg(method);
    let out = run_bounded(cmd, "grpcurl");
    assert!(
        out.status.success(),
        "grpcurl {method}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Asserts that two JSON objects have the same fields with the same values, naming the first
/// field that differs (or is in one only).
fn same_fields(what: &str, weft: &serde_json::Value, grpcurl: &serde_json::Value) {
    let (w, g) = (weft.as_object().unwrap(), grpcurl.as_object().unwrap());
    let keys: std::collections::BTreeSet<&String> = w.keys().chain(g.keys()).collect();
    assert!(keys.len() > 3, "{what}: too few fields to compare: {weft}");
    for k in keys {
        assert_eq!(w.get(k), g.get(k), "{what}: field {k:?} differs");
    }
}

/// `--format json` is proto3 canonical JSON: for the same object, every field is what grpcurl
/// prints (names, int64 and uint64 as strings, enums by name, the timestamp, the optional bool
/// set to false, defaults left out, labels, nested endpoints and usage).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn format_json_is_what_grpcurl_prints() {
    let d = Daemon::start().await;
    d.weft(&["ns", "create", "ns1", "--label", "app=web"]).await;
    // (weft's arguments, the service's file, the method, its request, and where grpcurl's
    // answer holds the objects: a field of the response, or "" for the response itself).
    let cases = [
        (
            &["network", "inspect", "web"][..],
            "network",
            "NetworkService/GetNetwork",
            r#"{"name":"web"}"#,
            "network",
        ),
        (
            &["network", "ls"],
            "network",
            "NetworkService/ListNetworks",
            "{}",
            "networks",
        ),
        (
            &["link", "inspect", "veth0"],
            "link",
            "LinkService/GetLink",
            r#"{"name":"veth0"}"#,
            "link",
        ),
        (
            &["ns", "inspect", "ns1"],
            "namespace",
            "NamespaceService/GetNamespace",
            r#"{"name":"ns1"}"#,
            "namespace",
        ),
        (
            &["system", "info"],
            "system",
            "SystemService/GetSystemInfo",
            "{}",
            "",
        ),
    ];
    for (args, file, method, req, field) in cases {
        let mut argv = args.to_vec();
        argv.extend(["--format", "json"]);
        let r = d.weft(&argv).await;
        assert_eq!((r.code, r.stderr.as_str()), (0, ""), "{args:?}");
        let weft: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        let proto = format!("weft/v1/{file}.proto");
        let theirs = grpcurl(&d, &proto, &format!("weft.v1.{method}"), req);
        let theirs = if field.is_empty() {
            theirs
        } else {
            theirs[field].clone()
        };
        // `inspect` prints an array of one, `ls` an array, `info` the object.
        let (w, g) = match (&weft, &theirs) {
            (serde_json::Value::Array(w), serde_json::Value::Array(g)) => (w.clone(), g.clone()),
            (serde_json::Value::Array(w), g) => (w.clone(), vec![g.clone()]),
            (w, g) => (vec![w.clone()], vec![g.clone()]),
        };
        assert_eq!(w.len(), g.len(), "{args:?}");
        assert!(!w.is_empty(), "{args:?}");
        for (w, g) in w.iter().zip(&g) {
            same_fields(method, w, g);
        }
        if method.ends_with("GetNetwork") {
            assert_eq!(weft[0]["generation"], "2");
            assert_eq!(weft[0]["usage"][0]["capacity"], "126");
            assert_eq!(weft[0]["enableIcc"], false);
            assert!(weft[0].get("internal").is_none(), "{weft}");
        }
    }
}

/// A Go template is applied to each object, with Docker-like names (`.Name`, `.Bridge`,
/// `.Status.Phase`, labels by their own keys) and Docker's `json` and `join`; a field that does
/// not exist fails (exit 1, naming it), a template that does not parse is a usage error
/// (exit 2, before any call), and so is `--format docker` outside `network inspect`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn format_template_renders_each_object() {
    let d = Daemon::start().await;
    let r = d
        .weft(&["network", "ls", "--format", "{{.Name}} {{.Bridge}}"])
        .await;
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert_eq!(r.stdout, "web br-web\nplain br-plain\n");

    let r = d
        .weft(&[
            "network",
            "inspect",
            "web",
            "--format",
            "{{.ID}} {{.Mtu}} {{.Generation}} {{.EnableIcc}} {{index .Labels \"tier\"}} \
             {{json .DnsServers}} {{join .DnsServers \",\"}} {{range .Endpoints}}{{.Namespace}}={{.Ipv4Address}}{{end}} {{.Status.Phase}}",
        ])
        .await;
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert_eq!(
        r.stdout,
        "0b1c2d3e-web 1500 2 false front [\"10.1.0.1\",\"fd00::1\"] 10.1.0.1,fd00::1 \
         ns1=10.1.0.130/24 PHASE_READY\n"
    );

    // `--output` is kept as an alias of `--format`; create answers go through templates too.
    let r = d
        .weft(&[
            "--output",
            "{{.Name}}:{{.Bridge}}",
            "network",
            "create",
            "n9",
        ])
        .await;
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "n9:br-n9\n"),
        "{}",
        r.stderr
    );

    let r = d.weft(&["network", "ls", "--format", "{{.Nmae}}"]).await;
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("Nmae"), "{}", r.stderr);

    d.calls();
    let r = d.weft(&["network", "ls", "--format", "{{.Name"]).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("template"), "{}", r.stderr);
    let r = d.weft(&["ns", "ls", "--format", "docker"]).await;
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("network inspect"), "{}", r.stderr);
    let r = d.weft(&["ns", "ls", "--format", "yaml"]).await;
    assert_eq!(r.code, 2);
    assert!(d.calls().is_empty());
}

/// Runs jq with `filter` over `input` and returns its output, trimmed.
fn jq(input: &str, filter: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("jq")
        .args(["-c", filter])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("jq (Debian package jq; scripts/test installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "jq {filter}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `network inspect --format docker` is `docker network inspect`'s shape: the jq filters
/// written for Docker read the same things from it, with Docker's types.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn format_docker_works_with_scripts_written_for_docker() {
    let d = Daemon::start().await;
    let r = d
        .weft(&["network", "inspect", "web", "plain", "--format", "docker"])
        .await;
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    let out = r.stdout.as_str();
    assert_eq!(jq(out, "length"), "2");
    assert_eq!(jq(out, ".[0].Name"), r#""web""#);
    assert_eq!(jq(out, ".[0].Id"), r#""0b1c2d3e-web""#);
    assert_eq!(jq(out, ".[0].Created"), r#""2023-11-14T22:13:20.500Z""#);
    assert_eq!(
        jq(out, ".[0].Scope + \" \" + .[0].Driver"),
        r#""local bridge""#
    );
    assert_eq!(jq(out, ".[0].IPAM.Config[0].Subnet"), r#""10.1.0.0/24""#);
    assert_eq!(jq(out, ".[0].IPAM.Config[0].Gateway"), r#""10.1.0.1""#);
    assert_eq!(jq(out, ".[0].IPAM.Config[0].IPRange"), r#""10.1.0.128/25""#);
    // Docker leaves an empty IPRange out.
    assert_eq!(
        jq(
            out,
            ".[0].IPAM.Config[1] | [.Subnet, .Gateway, has(\"IPRange\")]"
        ),
        r#"["fd00::/64","fd00::1",false]"#
    );
    assert_eq!(jq(out, ".[0].IPAM.Driver"), r#""default""#);
    assert_eq!(jq(out, ".[0].IPAM.Options"), "{}");
    assert_eq!(
        jq(
            out,
            ".[0].Containers | to_entries[0] | [.key, .value.Name, .value.IPv4Address, .value.IPv6Address, .value.MacAddress, .value.EndpointID]"
        ),
        r#"["ns1","ns1","10.1.0.130/24","fd00::2/64","02:42:0a:01:00:82","veth1a2b3c"]"#
    );
    assert_eq!(
        jq(
            out,
            ".[0] | [.EnableIPv6, .Internal, .Attachable, .Ingress, .ConfigOnly] | map(type)"
        ),
        r#"["boolean","boolean","boolean","boolean","boolean"]"#
    );
    assert_eq!(jq(out, ".[0].EnableIPv6"), "true");
    assert_eq!(jq(out, ".[0].ConfigFrom.Network"), r#""""#);
    assert_eq!(jq(out, ".[0].Labels.tier"), r#""front""#);
    assert_eq!(
        jq(out, ".[0].Options"),
        r#"{"com.docker.network.bridge.enable_icc":"false","com.docker.network.bridge.enable_ip_masquerade":"true","com.docker.network.bridge.name":"br-web","com.docker.network.driver.mtu":"1500"}"#
    );
    assert_eq!(jq(out, ".[1].Containers"), "{}");
    assert_eq!(jq(out, ".[1].IPAM.Config"), "[]");
}

/// `-o` is `network create`'s `--opt`, as in Docker: the options set the fields they name, and
/// an unknown key is refused (exit 2, nothing sent) naming it and the keys weft knows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_create_o_is_opt() {
    let d = Daemon::start().await;
    let r = d
        .weft(&[
            "network",
            "create",
            "n1",
            "-o",
            "com.docker.network.driver.mtu=1400",
            "-o",
            "com.docker.network.bridge.enable_icc=false",
            "--opt",
            "com.docker.network.bridge.enable_ip_masquerade=false",
            "--format",
            "json",
        ])
        .await;
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["mtu"], 1400);
    assert_eq!(v["enableIcc"], false);
    assert_eq!(v["masquerade"], false);
    d.calls();
    let r = d
        .weft(&[
            "network",
            "create",
            "n2",
            "-o",
            "com.docker.network.bridge.host_binding_ipv4=10.0.0.1",
        ])
        .await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    for word in [
        "com.docker.network.bridge.host_binding_ipv4",
        "com.docker.network.driver.mtu",
        "com.docker.network.bridge.name",
    ] {
        assert!(r.stderr.contains(word), "{word}: {}", r.stderr);
    }
    assert!(d.calls().is_empty());
}
