//! Wiring: open the store and the kernel, start the workers and the resync timer, serve the
//! gRPC services (plus health and reflection) on the Unix socket and, if asked, on TCP, and
//! shut all of it down in order on a signal.
//!
//! Start-up, in order:
//! 0. take the locks on the database and the host namespace ([`crate::lock`]): a second
//!    weftd on either exits here, before it touches anything;
//! 1. open the store (migrations applied) and the real [`crate::kernel::Kernel`] for the host
//!    namespace (`--host-netns`, or weftd's own);
//! 2. mark every Ready object Rechecking, so nothing reads Ready that nobody has looked at
//!    since the restart;
//! 3. build the [`Controller`] over them, start the workers, the reaper and the re-check
//!    flusher, queue everything (GC last), start the drift watch, the DNS resolver
//!    ([`crate::dns`]) and the resync timer;
//! 4. create the default network (from a model spec) unless it exists or is turned off;
//! 5. bind the socket and serve, with health and reflection (v1 and v1alpha); every accepted
//!    connection takes a place among the connections per peer and in all
//!    ([`crate::admission`]), or is closed at once.
//!
//! 6. tell systemd `READY=1` ([`crate::notify`]; `WATCHDOG=1` pings follow when the unit
//!    sets `WatchdogSec=`).
//!
//! Shutdown: `STOPPING=1` to systemd, stop accepting, let in-flight requests answer, close the queue (workers finish
//! their key), flush the reaper and the re-check batches, close the store (WAL checkpoint),
//! remove the socket, release the locks.

use std::{os::unix::fs::MetadataExt, sync::Arc, time::Duration};

use anyhow::{Context, bail};
use tokio::task::JoinSet;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{service::Routes, transport::Server};
use weft_proto::v1::{
    link_service_server::LinkServiceServer, namespace_service_server::NamespaceServiceServer,
    network_service_server::NetworkServiceServer, system_service_server::SystemServiceServer,
};

use crate::{
    access::{AccessLayer, Policy},
    admission::{Refuse, limit_incoming},
    api::{Api, NetworkDefaults, SystemApi},
    config::Config,
    kernel::{Kernel, etc::EtcNetns},
    lock::Locks,
    logging::RequestSpanLayer,
    model::{NetworkSpec, SubnetSpec},
    notify::Notifier,
    reconcile::{Controller, ResolvSettings},
    service::{Checked, NewNetwork, Service},
    store::Store,
};

/// Name of the default network.
pub const DEFAULT_NETWORK: &str = "bridge";

/// Creates the default network `bridge` (the docker0 of weft) if it does not exist yet: a
/// model [`NetworkSpec`] from the configuration (bridge name, subnet), made by the same
/// service flow as a CreateNetwork, without waiting.
async fn ensure_default_network(
    ctl: &Controller,
    defaults: &NetworkDefaults,
    config: &Config,
) -> anyhow::Result<()> {
    let svc = Service::new(ctl.clone(), defaults.clone());
    if svc.has_network(DEFAULT_NETWORK).await? {
        return Ok(());
    }
    let subnets = config
        .default_subnet
        .iter()
        .enumerate()
        .map(|(i, s)| SubnetSpec::parse(&format!("network.subnets[{i}]"), s, "", "", &[]))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("default network: {e}"))?;
    let spec = NetworkSpec {
        name: DEFAULT_NETWORK.into(),
        labels: Default::default(),
        bridge_name: config.default_bridge.clone(),
        subnets,
        internal: false,
        icc: true,
        masquerade: true,
        mtu: 0,
        // Docker's default bridge has no embedded DNS; neither has weft's.
        dns: false,
    };
    let new = NewNetwork::new(spec, false);
    new.check()
        .map_err(|e| anyhow::anyhow!("default network: {e}"))?;
    let row = svc
        .create_default_network(&new)
        .await
        .map_err(|e| anyhow::anyhow!("creating the default network: {e}"))?;
    tracing::info!(bridge = %row.spec.bridge_name, subnets = ?row.spec.subnets.iter().map(|s| s.subnet.to_string()).collect::<Vec<_>>(), "created the default network");
    Ok(())
}

/// HTTP/2 pings find a peer that vanished without closing (a TCP peer cut off), so its
/// connection, and its place among the connections, is not held forever.
fn keepalive(server: Server) -> Server {
    server
        .http2_keepalive_interval(Some(Duration::from_secs(60)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
}

/// Runs weftd until `shutdown` resolves, with the limits and resync of `config` fixed.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let live = crate::reload::Live::new(&config);
    run_live(config, live, shutdown).await
}

/// Runs weftd until `shutdown` resolves; the request limits and the resync period are read
/// through `live`, so whoever holds a clone (SIGHUP) can change them while weftd serves.
pub async fn run_live(
    config: Config,
    live: crate::reload::Live,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Settings that can be wrong are checked before anything is touched.
    let policy = Arc::new(
        Policy::resolve(
            config.socket_group.as_deref(),
            config.read_only_group.as_deref(),
        )
        .map_err(anyhow::Error::msg)?,
    );
    let tls = match (&config.tcp, &config.tls) {
        (Some(_), Some(files)) => Some(
            Server::builder()
                .tls_config(crate::listen::tls_config(files)?)
                .context("loading the TLS certificate, key and client CA")?,
        ),
        (Some(addr), None) => bail!("--tcp {addr} needs --tls-cert, --tls-key and --tls-client-ca"),
        (None, _) => None,
    };
    // Before anything reads the database or touches the kernel: no other weftd may manage
    // the same database or the same host namespace. Held until weftd returns.
    let locks = Locks::acquire(
        &config.database,
        &config.runtime_dir,
        config.host_netns.as_deref(),
    )?;
    tracing::debug!(files = ?locks.paths(), "holding the locks");
    let store = Store::open(&config.database)
        .await
        .with_context(|| format!("opening {}", config.database.display()))?
        .with_limits(config.limits.objects);
    let kernel = Kernel::new(config.host_netns.clone(), config.netns_dir.clone())
        .context("opening the kernel interfaces")?;
    let rechecking = store
        .mark_unverified()
        .await
        .context("marking stored objects for a re-check")?;
    if rechecking > 0 {
        tracing::info!(
            objects = rechecking,
            "re-checking what was Ready before the restart"
        );
    }
    let ctl = Controller::new(store.clone(), std::sync::Arc::new(kernel));
    ctl.set_owner(locks.host_id().to_string());
    ctl.set_resolv_settings(ResolvSettings {
        etc: EtcNetns::new(config.etc_netns_dir.clone()),
        host_resolv_conf: config.host_resolv_conf.clone(),
    });

    let mut tasks = JoinSet::new();
    ctl.spawn_workers(config.workers, &mut tasks);
    ctl.spawn_reaper(&mut tasks);
    ctl.spawn_recheck_flusher(&mut tasks);
    {
        // The re-check reads every namespace (about a second at 10,000): the API starts
        // meanwhile, and what it checks reads Pending until confirmed.
        let c = ctl.clone();
        tasks.spawn(async move { c.check_at_startup().await });
    }
    ctl.spawn_drift_watch(Duration::from_secs(1), &mut tasks);
    crate::dns::spawn(
        &ctl,
        crate::dns::DnsSettings {
            host_netns: config.host_netns.clone(),
            upstream: config.dns_upstream.clone(),
            host_resolv_conf: config.host_resolv_conf.clone(),
        },
        &mut tasks,
    )
    .context("starting the DNS resolver")?;
    ctl.spawn_resync(live.resync.subscribe(), &mut tasks);

    let defaults = NetworkDefaults {
        pools_v4: config.address_pools.clone(),
        pools_v6: config.address_pools_v6.clone(),
    };
    if config.default_network {
        ensure_default_network(&ctl, &defaults, &config).await?;
    }

    let api =
        Api::new(ctl.clone(), defaults).with_limits(live.request.clone(), &config.limits.conns);
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<NamespaceServiceServer<Api>>().await;
    health.set_serving::<LinkServiceServer<Api>>().await;
    health.set_serving::<NetworkServiceServer<Api>>().await;
    health.set_serving::<SystemServiceServer<SystemApi>>().await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(weft_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    let routes = Routes::new(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(NamespaceServiceServer::new(api.clone()))
        .add_service(LinkServiceServer::new(api.clone()))
        .add_service(NetworkServiceServer::new(api))
        .add_service(SystemServiceServer::new(SystemApi::new(
            ctl.clone(),
            config.database.display().to_string(),
        )));
    let access = AccessLayer::new(policy.clone());

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let grpc_metrics = std::sync::Arc::new(crate::metrics::GrpcMetrics::default());
    if let Some(addr) = config.metrics {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding --metrics {addr}"))?;
        tracing::info!(%addr, "serving metrics on http://{addr}/metrics");
        tokio::spawn(crate::metrics::serve(
            listener,
            ctl.clone(),
            grpc_metrics.clone(),
            stopped(stop_rx.clone()),
        ));
    }
    let (group, mode) = policy.socket_file();
    let unix = crate::listen::bind_unix(&config.socket, group, mode).await?;
    let socket_id = std::fs::metadata(&config.socket)
        .map(|m| (m.dev(), m.ino()))
        .ok();
    tracing::info!(
        socket = %config.socket.display(),
        mode = format!("{mode:o}"),
        socket_group = ?policy.socket_group,
        read_only_group = ?policy.read_only_group,
        "serving gRPC"
    );
    // One count of connections for both listeners: the total limit is over all of them.
    let connections = config.limits.conns.connections();
    let mut servers = JoinSet::new();
    servers.spawn(
        keepalive(Server::builder())
            .layer(RequestSpanLayer::new(grpc_metrics.clone()))
            .layer(access.clone())
            .add_routes(routes.clone())
            .serve_with_incoming_shutdown(
                limit_incoming(
                    crate::listen::unix_incoming(unix),
                    connections.clone(),
                    Refuse::answer(),
                ),
                stopped(stop_rx.clone()),
            ),
    );
    if let (Some(addr), Some(tls)) = (config.tcp, tls) {
        let tcp = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        tracing::info!(%addr, "serving gRPC on TCP (TLS, client certificates required)");
        servers.spawn(
            keepalive(tls)
                .layer(RequestSpanLayer::new(grpc_metrics.clone()))
                .layer(access)
                .add_routes(routes)
                .serve_with_incoming_shutdown(
                    limit_incoming(TcpListenerStream::new(tcp), connections, Refuse::Close),
                    stopped(stop_rx),
                ),
        );
    }

    // The socket answers (bound, listening, served) and every stored object is queued:
    // systemd may start what depends on weftd.
    let notifier = Notifier::from_env();
    notifier.ready("serving");
    let watchdog = tokio::spawn(notifier.clone().run_watchdog());

    tokio::select! {
        _ = shutdown => tracing::info!("shutting down"),
        res = servers.join_next() => {
            if let Some(Ok(Err(e))) = res {
                tracing::error!(error = %e, "server failed");
            }
        }
    }
    notifier.stopping();
    watchdog.abort();
    health
        .set_not_serving::<NamespaceServiceServer<Api>>()
        .await;
    let _ = stop_tx.send(true);
    // Let in-flight calls finish, but not forever.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while servers.join_next().await.is_some() {}
    })
    .await;
    ctl.shutdown();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    store.close().await;
    // Remove the socket only if it is still ours: a successor may already have bound the path.
    if std::fs::metadata(&config.socket)
        .map(|m| (m.dev(), m.ino()))
        .ok()
        == socket_id
    {
        let _ = std::fs::remove_file(&config.socket);
    }
    locks.release();
    tracing::info!("stopped");
    Ok(())
}
