//! The floor behind gRPC (method `floor+grpc`): the in-process floor's connect and disconnect
//! ([`FloorM`]), served by a process of its own (this binary, `floor-server`) that answers
//! weft.v1's `Connect` and `Disconnect` with tonic's defaults and nothing else: no store, no
//! queue, no checks. The bench calls it over a Unix socket through the `weft` client
//! library, as it calls weftd. So its connect is the least any daemon answering over gRPC
//! after doing the floor's kernel work can take, and weft's connect over it is weft's own
//! cost: its store, its reconcile's hand-overs, its layers around tonic. Namespaces are made
//! and deleted by the bench itself, in the directory the server's floor reads them from.

use std::{
    io::Read,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use ipnet::Ipv4Net;
use tokio::sync::Mutex;
use tonic::{Request, Response, Status};
use weft::v1::{
    ConnectRequest, ConnectResponse, DeleteNetworkRequest, DeleteNetworkResponse,
    DisconnectRequest, DisconnectResponse, Endpoint, GetNetworkRequest, GetNetworkResponse,
    ListNetworksRequest, ListNetworksResponse, Phase, PruneNetworksRequest, PruneNetworksResponse,
    WatchNetworksRequest, WatchNetworksResponse,
    network_service_server::{NetworkService, NetworkServiceServer},
};
use weftd::kernel::{Kernel, NsRef, prelude::*};

use crate::methods::{FloorM, address, connect, disconnect, gateway};
use crate::sandbox::Run;

/// The network name the server answers to.
const NETWORK: &str = "floor";

/// The command-line word that makes this binary the server (hidden from `--help`).
pub const SERVE: &str = "floor-server";

/// The bench's side: the server's process, a client of it, and the namespaces.
pub struct FloorGrpcM {
    server: Server,
    client: weft::Client,
    /// Makes and deletes the namespaces, in the directory the server's floor reads.
    kernel: Kernel,
    /// The network's subnet.
    pub subnet: Ipv4Net,
}

impl FloorGrpcM {
    /// Starts the server for scratch host `host` and waits until it answers.
    pub async fn setup(run: &Run, host: &Path, subnet: Ipv4Net) -> Result<Self> {
        let dir = run.subdir(&format!("floor-grpc-{}", subnet.network()))?;
        let netns = dir.join("netns");
        std::fs::create_dir_all(&netns)?;
        let socket = dir.join("floor.sock");
        let exe = std::env::current_exe().context("the bench's own path")?;
        let server = Command::new(exe)
            .arg(SERVE)
            .arg(&socket)
            .arg(host)
            .arg(&netns)
            .arg(subnet.to_string())
            // Its stdin is how it knows the bench is gone: it exits at end of file.
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            // Out of the terminal's group, as weftd: Ctrl-C stops the bench, which stops it.
            .process_group(0)
            .spawn()
            .context("start the floor's gRPC server")?;
        // Killed and reaped on every way out from here.
        let mut server = Server(server);
        let until = Instant::now() + Duration::from_secs(10);
        let client = loop {
            if let Some(status) = server.0.try_wait()? {
                bail!("the floor's gRPC server exited at start: {status}");
            }
            if socket.exists()
                && let Ok(c) = weft::Client::connect_unix(&socket).await
            {
                break c;
            }
            if Instant::now() > until {
                bail!("the floor's gRPC server did not listen within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let kernel = Kernel::new(Some(host.to_path_buf()), netns)?;
        Ok(Self {
            server,
            client,
            kernel,
            subnet,
        })
    }

    /// The file of namespace `i`.
    pub fn ns_path(&self, i: usize) -> PathBuf {
        self.kernel.named_netns_path(&FloorM::name(i))
    }

    /// Creates namespace `i` (as the floor does).
    pub async fn ns_create(&mut self, i: usize) -> Result<()> {
        self.kernel.create_named_netns(&FloorM::name(i)).await?;
        Ok(())
    }

    /// Connect of namespace `i` over gRPC; waits for the answer (Ready).
    pub async fn connect(&mut self, i: usize) -> Result<()> {
        connect(&self.client, NETWORK, &FloorM::name(i), Vec::new()).await?;
        Ok(())
    }

    /// Disconnect of namespace `i` over gRPC.
    pub async fn disconnect(&mut self, i: usize) -> Result<()> {
        disconnect(&self.client, NETWORK, &FloorM::name(i)).await
    }

    /// Deletes namespace `i`.
    pub async fn ns_delete(&mut self, i: usize) -> Result<()> {
        self.kernel.delete_named_netns(&FloorM::name(i)).await?;
        Ok(())
    }

    /// Fails if the server died.
    pub fn check_alive(&mut self) -> Result<()> {
        match self.server.0.try_wait()? {
            Some(status) => bail!("the floor's gRPC server exited: {status}"),
            None => Ok(()),
        }
    }
}

/// The server's process, killed and reaped when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The server: `floor-server SOCKET HOST NETNS_DIR SUBNET`. Sets up the floor's bridge in
/// scratch host `HOST` and serves until its stdin ends.
pub async fn serve(args: &[String]) -> Result<()> {
    let [socket, host, netns, subnet] = args else {
        bail!("usage: {SERVE} SOCKET HOST NETNS_DIR SUBNET");
    };
    let subnet: Ipv4Net = subnet.parse().context("the subnet")?;
    let floor = FloorM::setup_in(netns.into(), Path::new(host), subnet, false).await?;
    let listener =
        tokio::net::UnixListener::bind(socket).with_context(|| format!("listen on {socket}"))?;
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    let service = NetworkServiceServer::new(Floor {
        floor: Mutex::new(floor),
        subnet,
    });
    let parent_gone = tokio::task::spawn_blocking(|| {
        let mut buf = [0u8; 64];
        while let Ok(n) = std::io::stdin().read(&mut buf) {
            if n == 0 {
                break;
            }
        }
    });
    tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, async {
            let _ = parent_gone.await;
        })
        .await?;
    Ok(())
}

/// The service: the floor's connect and disconnect, nothing else.
struct Floor {
    floor: Mutex<FloorM>,
    subnet: Ipv4Net,
}

/// Endpoint `i` of namespace name `f<i>`.
fn index(namespace: &str) -> Result<usize, Status> {
    namespace
        .strip_prefix('f')
        .and_then(|i| i.parse().ok())
        .ok_or_else(|| Status::invalid_argument(format!("namespace {namespace:?} is not f<N>")))
}

fn failed(e: anyhow::Error) -> Status {
    Status::internal(format!("{e:#}"))
}

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented(
        "the floor serves Connect and Disconnect only",
    ))
}

#[tonic::async_trait]
impl NetworkService for Floor {
    async fn connect(
        &self,
        request: Request<ConnectRequest>,
    ) -> Result<Response<ConnectResponse>, Status> {
        let r = request.into_inner();
        let i = index(&r.namespace)?;
        self.floor.lock().await.connect(i).await.map_err(failed)?;
        Ok(Response::new(ConnectResponse {
            endpoint: Some(Endpoint {
                network: r.network,
                namespace: r.namespace,
                interface_name: "eth0".into(),
                ipv4_address: address(self.subnet, i).to_string(),
                ipv4_gateway: gateway(self.subnet).to_string(),
                host_interface_name: format!("fv{i}"),
                status: Some(weft::v1::Status {
                    phase: Phase::Ready.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            planned_changes: Vec::new(),
        }))
    }

    async fn disconnect(
        &self,
        request: Request<DisconnectRequest>,
    ) -> Result<Response<DisconnectResponse>, Status> {
        let i = index(&request.into_inner().namespace)?;
        let mut floor = self.floor.lock().await;
        floor.disconnect(i).await.map_err(failed)?;
        // The bench deletes the namespace next: its sockets here would keep it alive.
        let path = floor.kernel.named_netns_path(&FloorM::name(i));
        floor.kernel.forget(&NsRef::path(path));
        Ok(Response::new(DisconnectResponse::default()))
    }

    async fn create_network(
        &self,
        _: Request<weft::v1::CreateNetworkRequest>,
    ) -> Result<Response<weft::v1::CreateNetworkResponse>, Status> {
        unimplemented()
    }

    async fn get_network(
        &self,
        _: Request<GetNetworkRequest>,
    ) -> Result<Response<GetNetworkResponse>, Status> {
        unimplemented()
    }

    async fn list_networks(
        &self,
        _: Request<ListNetworksRequest>,
    ) -> Result<Response<ListNetworksResponse>, Status> {
        unimplemented()
    }

    async fn delete_network(
        &self,
        _: Request<DeleteNetworkRequest>,
    ) -> Result<Response<DeleteNetworkResponse>, Status> {
        unimplemented()
    }

    async fn prune_networks(
        &self,
        _: Request<PruneNetworksRequest>,
    ) -> Result<Response<PruneNetworksResponse>, Status> {
        unimplemented()
    }

    type WatchNetworksStream = futures::stream::Empty<Result<WatchNetworksResponse, Status>>;

    async fn watch_networks(
        &self,
        _: Request<WatchNetworksRequest>,
    ) -> Result<Response<Self::WatchNetworksStream>, Status> {
        unimplemented()
    }
}
