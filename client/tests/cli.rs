//! Runs the `weft` binary against a fake weftd (in-process tonic services on a Unix socket in
//! a temp dir) and checks what it prints and how it exits: table and JSON output, the request
//! it sends (update masks), error lines and exit codes. No privileges, no kernel.

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
}

#[derive(Clone)]
struct Svc(Arc<Fake>);

#[tonic::async_trait]
impl NamespaceService for Svc {
    async fn create_namespace(
        &self,
        req: Request<CreateNamespaceRequest>,
    ) -> Result<Response<CreateNamespaceResponse>, Status> {
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
            namespace: Some(ns),
        }))
    }

    async fn get_namespace(
        &self,
        req: Request<GetNamespaceRequest>,
    ) -> Result<Response<GetNamespaceResponse>, Status> {
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
        let name = req.into_inner().name;
        match self.0.namespaces.lock().unwrap().remove(&name) {
            Some(_) => Ok(Response::new(DeleteNamespaceResponse {})),
            None => Err(Status::not_found(format!("namespace {name:?} not found"))),
        }
    }

    type WatchNamespacesStream = Stream_<WatchNamespacesResponse>;

    async fn watch_namespaces(
        &self,
        _: Request<WatchNamespacesRequest>,
    ) -> Result<Response<Self::WatchNamespacesStream>, Status> {
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
        Ok(Response::new(CreateLinkResponse {
            link: req.into_inner().link,
        }))
    }

    async fn get_link(
        &self,
        req: Request<GetLinkRequest>,
    ) -> Result<Response<GetLinkResponse>, Status> {
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
            link: Some(the_veth()),
        }))
    }

    async fn delete_link(
        &self,
        _: Request<DeleteLinkRequest>,
    ) -> Result<Response<DeleteLinkResponse>, Status> {
        Ok(Response::new(DeleteLinkResponse {}))
    }

    type WatchLinksStream = Stream_<WatchLinksResponse>;

    async fn watch_links(
        &self,
        _: Request<WatchLinksRequest>,
    ) -> Result<Response<Self::WatchLinksStream>, Status> {
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
        not_yet()
    }
    async fn get_network(
        &self,
        _: Request<GetNetworkRequest>,
    ) -> Result<Response<GetNetworkResponse>, Status> {
        not_yet()
    }
    async fn list_networks(
        &self,
        _: Request<ListNetworksRequest>,
    ) -> Result<Response<ListNetworksResponse>, Status> {
        not_yet()
    }
    async fn delete_network(
        &self,
        _: Request<DeleteNetworkRequest>,
    ) -> Result<Response<DeleteNetworkResponse>, Status> {
        not_yet()
    }
    async fn prune_networks(
        &self,
        _: Request<PruneNetworksRequest>,
    ) -> Result<Response<PruneNetworksResponse>, Status> {
        not_yet()
    }
    async fn connect(
        &self,
        _: Request<ConnectRequest>,
    ) -> Result<Response<ConnectResponse>, Status> {
        not_yet()
    }
    async fn disconnect(
        &self,
        _: Request<DisconnectRequest>,
    ) -> Result<Response<DisconnectResponse>, Status> {
        not_yet()
    }
    type WatchNetworksStream = Stream_<WatchNetworksResponse>;
    async fn watch_networks(
        &self,
        _: Request<WatchNetworksRequest>,
    ) -> Result<Response<Self::WatchNetworksStream>, Status> {
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
