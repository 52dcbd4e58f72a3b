//! weftd: the weft daemon. Parses flags and the config file, sets up logging, and runs the
//! server until SIGTERM or SIGINT. SIGHUP reloads the config file's reloadable keys
//! ([`weftd::reload`]), never fatal.
#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context;
use clap::Parser;
use weftd::{
    config::{Config, FileConfig, LimitSettings},
    logging::LogFormat,
};

/// weft's daemon: declarative network namespaces, links and networks, kept converged.
#[derive(Debug, Parser)]
#[command(name = "weftd", version = weft_proto::LONG_VERSION)]
struct Flags {
    /// Unix socket to serve gRPC on [default: /run/weft/weftd.sock]
    #[arg(long)]
    socket: Option<PathBuf>,
    /// SQLite database holding the desired state [default: /var/lib/weft/weft.db]
    #[arg(long)]
    database: Option<PathBuf>,
    /// Directory of named network namespaces [default: /run/netns]
    #[arg(long)]
    netns_dir: Option<PathBuf>,
    /// Runtime directory, for the lock that keeps a second weftd off the same host namespace
    /// [default: /run/weft]
    #[arg(long)]
    runtime_dir: Option<PathBuf>,
    /// Act on this namespace file as "the host" instead of weftd's own namespace
    #[arg(long)]
    host_netns: Option<PathBuf>,
    /// Also serve gRPC on this TCP address, with TLS and client certificates (off by default;
    /// needs --tls-cert, --tls-key and --tls-client-ca)
    #[arg(long)]
    tcp: Option<SocketAddr>,
    /// Serve Prometheus metrics on http://ADDR/metrics (plain HTTP, in weftd's own namespace;
    /// off by default)
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// weftd's TLS certificate (PEM) for --tcp
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// CA certificate (PEM) that must have signed every TCP client's certificate
    #[arg(long)]
    tls_client_ca: Option<PathBuf>,
    /// Group (name or gid) whose members get full access on the Unix socket [default: weft,
    /// if that group exists]
    #[arg(long)]
    socket_group: Option<String>,
    /// Group (name or gid) whose members may only read (Get, List, Watch, system info) on the
    /// Unix socket [default: none]
    #[arg(long)]
    read_only_group: Option<String>,
    /// Reconcile workers [default: 4]
    #[arg(long)]
    workers: Option<usize>,
    /// Seconds between full resyncs; 0 turns them off [default: 30]
    #[arg(long)]
    resync: Option<u64>,
    /// Do not create the default network `bridge` at start-up
    #[arg(long)]
    no_default_network: bool,
    /// Bridge name of the default network [default: weft0]
    #[arg(long)]
    default_bridge: Option<String>,
    /// Subnet of the default network [default: the first free one in the pools]
    #[arg(long)]
    default_subnet: Option<String>,
    /// Pool for automatic IPv4 subnets, BASE/SIZE (repeatable) [default: 172.17.0.0/16/16,
    /// 172.18.0.0/15/16, 172.20.0.0/14/16, 172.24.0.0/13/16, 192.168.0.0/16/20]
    #[arg(long = "address-pool")]
    address_pools: Vec<String>,
    /// Pool for automatic IPv6 subnets, BASE/SIZE (repeatable) [default: fd5e:f700::/40/64]
    #[arg(long = "address-pool-v6")]
    address_pools_v6: Vec<String>,
    /// DNS server for names not on a network, ADDR or ADDR:PORT (repeatable) [default: the
    /// nameservers of --host-resolv-conf]
    #[arg(long = "dns-upstream")]
    dns_upstream: Vec<String>,
    /// The host's resolv.conf: its nameservers are the default DNS upstreams (re-read when
    /// it changes) and its options go into namespaces' resolv.conf [default: /etc/resolv.conf]
    #[arg(long)]
    host_resolv_conf: Option<PathBuf>,
    /// Where weft writes NAME/resolv.conf for the namespaces it creates (`ip netns exec`
    /// bind-mounts it) [default: /etc/netns]
    #[arg(long)]
    etc_netns_dir: Option<PathBuf>,
    /// Log lines as `text` or `json` (one object per line, with the span fields) [default:
    /// text when stderr is a terminal, json otherwise]
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// TOML file with the same keys (flags win)
    #[arg(long)]
    config: Option<PathBuf>,
    /// Limits on requests, objects, connections and Watch streams (the file's `[limits]`)
    #[command(flatten)]
    limits: LimitSettings,
}

fn main() -> anyhow::Result<()> {
    // Before any thread exists (the runtime's workers would each get their own arena).
    weftd::alloc::tune();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(run())
}

/// The daemon proper, on the runtime [`main`] built.
async fn run() -> anyhow::Result<()> {
    let flags = Flags::parse();
    // Gives a burst's freed memory back to the kernel once it is over (weftd::alloc).
    let _trimmer = weftd::alloc::watch();
    let (file, table) = match &flags.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let file =
                Config::parse_file(&text).with_context(|| format!("parsing {}", path.display()))?;
            let table: toml::Table = text
                .parse()
                .with_context(|| format!("parsing {}", path.display()))?;
            (file, table)
        }
        None => (FileConfig::default(), toml::Table::new()),
    };
    let log_level = file.log_level.clone();
    let cli_limits = flags.limits.clone();
    let cli_resync = flags.resync;
    let cli = FileConfig {
        socket: flags.socket,
        database: flags.database,
        netns_dir: flags.netns_dir,
        runtime_dir: flags.runtime_dir,
        host_netns: flags.host_netns,
        tcp: flags.tcp,
        metrics: flags.metrics,
        workers: flags.workers,
        resync: flags.resync,
        default_network: flags.no_default_network.then_some(false),
        default_bridge: flags.default_bridge,
        default_subnet: flags.default_subnet,
        address_pools: (!flags.address_pools.is_empty()).then_some(flags.address_pools),
        address_pools_v6: (!flags.address_pools_v6.is_empty()).then_some(flags.address_pools_v6),
        tls_cert: flags.tls_cert,
        tls_key: flags.tls_key,
        tls_client_ca: flags.tls_client_ca,
        socket_group: flags.socket_group,
        read_only_group: flags.read_only_group,
        limits: Some(flags.limits),
        dns_upstream: (!flags.dns_upstream.is_empty()).then_some(flags.dns_upstream),
        host_resolv_conf: flags.host_resolv_conf,
        etc_netns_dir: flags.etc_netns_dir,
        log_format: flags.log_format,
        log_level: None,
    };
    let config = Config::merge(cli, file).map_err(|e| anyhow::anyhow!("{e}"))?;
    // Logging starts once the format is known (a flag or the file); what fails before
    // this point is an error main returns, printed on stderr.
    let level = weftd::logging::init(
        config
            .log_format
            .unwrap_or_else(LogFormat::default_for_stderr),
        log_level.as_deref(),
    )
    .map_err(anyhow::Error::msg)?;
    tracing::info!(?config, "starting weftd");
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let live = weftd::reload::Live::new(&config);
    let mut reloader = weftd::reload::Reloader {
        cli_limits,
        cli_resync,
        applied: table,
        live: live.clone(),
        level: Some(level),
    };
    let config_file = flags.config;
    weftd::server::run_live(config, live, async move {
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => on_hangup(config_file.as_deref(), &mut reloader),
            }
        }
    })
    .await
}

/// SIGHUP (by default it would kill weftd without a word and leave its socket behind): weftd
/// reads the config file again, applies its reloadable keys (`log_level`, `resync`, the
/// request `[limits]`), logs each change, and logs the keys that wait for a restart. A file
/// that does not parse changes nothing: weftd keeps serving with what it has.
fn on_hangup(config_file: Option<&std::path::Path>, reloader: &mut weftd::reload::Reloader) {
    let Some(path) = config_file else {
        tracing::info!("SIGHUP: nothing to reload (no --config file); weftd keeps running");
        return;
    };
    let reloaded = std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|text| reloader.reload(&text));
    match reloaded {
        Ok(changes) => tracing::info!(
            file = %path.display(),
            changed = changes.len(),
            "SIGHUP: the config file parses; reloadable keys applied"
        ),
        Err(error) => tracing::warn!(
            file = %path.display(),
            %error,
            "SIGHUP: the config file does not parse; weftd keeps running with the configuration it had"
        ),
    }
}
