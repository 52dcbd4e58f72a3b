//! Runs the `weft` binary against a fake weftd (in-process tonic services on a Unix socket in
//! a temp dir) and checks what it prints and how it exits: table and JSON output, the requests
//! it sends (update masks, the calls of `ns create --network`), error lines and exit codes. No
//! privileges, no kernel.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    pin::Pin,
    process::Output,
    sync::{Arc, Mutex},
};

use tokio_stream::{Stream, wrappers::UnixListenerStream};
use tonic::{Request, Response, Status};
use weft::v1::{
    link::Kind,
    link_service_server::{LinkService, LinkServiceServer},
    namespace_service_server::{NamespaceService, NamespaceServiceServer},
    network_service_server::{NetworkService, NetworkServiceServer},
    *,
};

type Stream_<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The fake daemon's state, shared with the test that inspects it.
#[derive(Default)]
struct Fake {
    namespaces: Mutex<BTreeMap<String, Namespace>>,
    last_update: Mutex<Option<UpdateLinkRequest>>,
    /// Endpoints by (network, namespace).
    endpoints: Mutex<BTreeMap<(String, String), Endpoint>>,
    /// Every Connect request, in order.
    connects: Mutex<Vec<ConnectRequest>>,
    /// Every call, in order, as `Method(key)`.
    calls: Mutex<Vec<String>>,
}

impl Fake {
    fn called(&self, call: String) {
        self.calls.lock().unwrap().push(call);
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
        self.called(format!(
            "CreateNamespace({})",
            req.get_ref()
                .namespace
                .as_ref()
                .map_or("", |n| n.name.as_str())
        ));
        let req = req.into_inner();
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
        ns.uid = format!("uid-{}", ns.name);
        ns.status_path = format!("/run/netns/{}", ns.name);
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
        Ok(Response::new(ListNamespacesResponse { namespaces }))
    }

    async fn delete_namespace(
        &self,
        req: Request<DeleteNamespaceRequest>,
    ) -> Result<Response<DeleteNamespaceResponse>, Status> {
        self.called(format!("DeleteNamespace({})", req.get_ref().name));
        let name = req.into_inner().name;
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

    async fn watch_namespaces(
        &self,
        _: Request<WatchNamespacesRequest>,
    ) -> Result<Response<Self::WatchNamespacesStream>, Status> {
        self.called("WatchNamespaces");
        Err(Status::unimplemented(""))
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

#[tonic::async_trait]
impl LinkService for Svc {
    async fn create_link(
        &self,
        req: Request<CreateLinkRequest>,
    ) -> Result<Response<CreateLinkResponse>, Status> {
        self.called("CreateLink");
        Ok(Response::new(CreateLinkResponse {
            planned_changes: Vec::new(),
            link: req.into_inner().link,
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
        Ok(Response::new(ListLinksResponse {
            links: vec![the_veth(), bridge],
        }))
    }

    async fn update_link(
        &self,
        req: Request<UpdateLinkRequest>,
    ) -> Result<Response<UpdateLinkResponse>, Status> {
        self.called("UpdateLink");
        let r = req.into_inner();
        let link = r.link.clone().unwrap_or_default();
        if !matches!(
            (link.namespace.as_str(), link.name.as_str()),
            ("", "veth0") | ("ns1", "eth0")
        ) {
            return Err(Status::not_found(format!("link {:?} not found", link.name)));
        }
        *self.0.last_update.lock().unwrap() = Some(r);
        Ok(Response::new(UpdateLinkResponse {
            planned_changes: Vec::new(),
            link: Some(the_veth()),
        }))
    }

    async fn delete_link(
        &self,
        _: Request<DeleteLinkRequest>,
    ) -> Result<Response<DeleteLinkResponse>, Status> {
        self.called("DeleteLink");
        Ok(Response::new(DeleteLinkResponse {
            planned_changes: Vec::new(),
        }))
    }

    type WatchLinksStream = Stream_<WatchLinksResponse>;

    async fn watch_links(
        &self,
        _: Request<WatchLinksRequest>,
    ) -> Result<Response<Self::WatchLinksStream>, Status> {
        self.called("WatchLinks");
        Err(Status::unimplemented(""))
    }
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
        _: Request<CreateNetworkRequest>,
    ) -> Result<Response<CreateNetworkResponse>, Status> {
        self.called("CreateNetwork");
        not_yet()
    }
    async fn get_network(
        &self,
        _: Request<GetNetworkRequest>,
    ) -> Result<Response<GetNetworkResponse>, Status> {
        self.called("GetNetwork");
        not_yet()
    }
    async fn list_networks(
        &self,
        _: Request<ListNetworksRequest>,
    ) -> Result<Response<ListNetworksResponse>, Status> {
        self.called("ListNetworks");
        not_yet()
    }
    async fn delete_network(
        &self,
        _: Request<DeleteNetworkRequest>,
    ) -> Result<Response<DeleteNetworkResponse>, Status> {
        self.called("DeleteNetwork");
        not_yet()
    }
    async fn prune_networks(
        &self,
        _: Request<PruneNetworksRequest>,
    ) -> Result<Response<PruneNetworksResponse>, Status> {
        self.called("PruneNetworks");
        not_yet()
    }
    /// Networks `bridge` and `mynet` connect; `flaky` accepts the endpoint, which then fails;
    /// any other network does not exist.
    async fn connect(
        &self,
        req: Request<ConnectRequest>,
    ) -> Result<Response<ConnectResponse>, Status> {
        let r = req.into_inner();
        self.called(format!("Connect({}, {})", r.network, r.namespace));
        self.0.connects.lock().unwrap().push(r.clone());
        if !["bridge", "mynet", "flaky"].contains(&r.network.as_str()) {
            return Err(Status::not_found(format!(
                "network {:?} not found",
                r.network
            )));
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
        self.called(format!("Disconnect({}, {})", r.network, r.namespace));
        match self
            .0
            .endpoints
            .lock()
            .unwrap()
            .remove(&(r.network.clone(), r.namespace.clone()))
        {
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
    async fn watch_networks(
        &self,
        _: Request<WatchNetworksRequest>,
    ) -> Result<Response<Self::WatchNetworksStream>, Status> {
        self.called("WatchNetworks");
        not_yet()
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
                .add_service(NetworkServiceServer::new(svc))
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
    let out: Output = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
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

    let r = d.weft(&["-o", "json", "ns", "inspect", "ns1"]).await;
    assert_eq!(r.code, 0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v[0]["name"], "ns1");
    assert_eq!(v[0]["labels"]["app"], "web");
    assert_eq!(v[0]["status"]["phase"], "PHASE_READY");
    assert_eq!(v[0]["status_path"], "/run/netns/ns1");
    assert_eq!(v[0]["create_time"], "2023-11-14T22:13:20Z");
    // Deterministic: the same call prints the same bytes.
    assert_eq!(
        d.weft(&["-o", "json", "ns", "inspect", "ns1"]).await.stdout,
        r.stdout
    );

    let r = d.weft(&["ns", "rm", "ns1", "ns2"]).await;
    assert_eq!((r.code, r.stdout.as_str()), (0, "ns1\nns2\n"));
    let r = d.weft(&["ns", "ls", "-o", "json"]).await;
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
    let r = d.weft(&["-o", "json", "ns", "inspect", "a", "nope"]).await;
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

    let r = d
        .weft(&["network", "create", "n1", "--subnet", "10.9.0.0/24"])
        .await;
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "Error: create network \"n1\": NetworkService is not implemented yet\n"
    );
    let r = d.weft(&["network", "ls"]).await;
    assert_eq!(
        r.stderr,
        "Error: list networks: NetworkService is not implemented yet\n"
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
        .weft(&["-o", "json", "ns", "create", "b", "--network", "none"])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    // Exactly what `ns create` prints without --network: the namespace itself.
    assert_eq!(v["name"], "b");
    assert_eq!(v["status_path"], "/run/netns/b");
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
                protocol: "tcp".into(),
            },
            PublishedPort {
                host_ip: "127.0.0.1".into(),
                host_port: 5353,
                host_port_end: 0,
                container_port: 53,
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
        "-o", "json", "ns", "create", "db", "--net", "mynet", "--label", "b=2", "--label", "a=1",
        "--label", "c=3",
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
    assert_eq!(v["endpoint"]["ipv4_address"], "172.17.0.2/16");
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
        .weft(&["-o", "json", "ns", "create", "web", "--net", "host"])
        .await;
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (
            0,
            "{\n  \"created\": false,\n  \"namespace\": null,\n  \"network_mode\": \"host\",\n  \
             \"path\": \"/proc/1/ns/net\",\n  \"unused_name\": \"web\"\n}\n"
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
            "-o",
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
    assert_eq!(v["network_mode"], "container:ns1");
    assert_eq!(v["created"], false);
    assert_eq!(v["unused_name"], "web");
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
