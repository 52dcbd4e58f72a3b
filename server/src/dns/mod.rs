//! weft's DNS resolver: the names of the endpoints on a network, served on the network's
//! gateway addresses (UDP and TCP port 53) in the host namespace weftd manages, as Docker's
//! embedded DNS and podman's aardvark-dns do; everything else forwarded.
//!
//! # Parts
//! - [`index`]: the in-memory index of networks and endpoints, and the pure answer to "what
//!   does this querier get for this name" (who sees what, name matching, rotation, PTR).
//! - `feed`: keeps the index current from the store's change notifications (the events the
//!   Watch streams get), so a Connect, Disconnect or drift repair shows in the answers within
//!   milliseconds, and no DNS query ever reads the database.
//! - `listeners`: one hickory-server per (network, gateway address), started when a
//!   DNS-enabled network appears and stopped when it goes or turns DNS off; its sockets are
//!   made in the host namespace ([`HostSockets`]) with `IP_FREEBIND`, so binding does not wait
//!   for the bridge's address. A bind that fails (port 53 held by someone else) is logged and
//!   retried every [`listeners::RETRY`]; weftd goes on.
//! - `handler`: one query: the index's answer, or forwarding, or a refusal.
//! - [`upstream`]: where forwarded queries go (`--dns-upstream`, or the host's resolv.conf
//!   nameservers, re-read when the file changes) and the clients that send them.
//!
//! Crates: hickory-proto (wire format), hickory-server (the UDP/TCP serving loop around our
//! own request handler: it needs the querier's address and the asked network, which a
//! zone-based catalog does not give), hickory-net (UDP/TCP clients for forwarding, whose
//! runtime trait lets the sockets come from the host namespace).
//!
//! Counters (GetSystemInfo): `dns_queries` every query received; `dns_answers` those
//! answered from weft's own records, NXDOMAIN for weft's names and empty (NODATA) answers
//! included; `dns_forwards` those sent upstream (once per query, however many upstreams
//! were tried). Refused and SERVFAIL-without-upstream queries are in neither of the last two.

mod feed;
mod handler;
pub mod index;
mod listeners;
pub mod upstream;

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, RwLock, atomic::AtomicUsize},
};

use tokio::task::JoinSet;

pub use handler::TTL;

use crate::{
    kernel::{HostSockets, KernelError},
    reconcile::Controller,
};

/// `filter` with hickory-server's per-query lines (INFO, two per query) turned down to WARN,
/// unless `RUST_LOG` names hickory itself: at tens of thousands of queries a second they
/// would be most of the log, and of the resolver's CPU.
pub fn quiet_hickory(filter: tracing_subscriber::EnvFilter) -> tracing_subscriber::EnvFilter {
    let asked = std::env::var("RUST_LOG").is_ok_and(|v| v.contains("hickory"));
    match "hickory_server=warn".parse() {
        Ok(d) if !asked => filter.add_directive(d),
        _ => filter,
    }
}

/// What every network's resolver shares.
#[derive(Debug)]
pub struct Shared {
    /// Networks and endpoints, kept current by `feed`.
    index: RwLock<index::Index>,
    /// Where forwarded queries go.
    upstreams: upstream::Upstreams,
    /// The controller: its events feed the index, its stats hold the counters.
    ctl: Controller,
    /// Where the next answer's rotation starts.
    rotation: AtomicUsize,
}

/// The resolver's settings.
#[derive(Clone, Debug)]
pub struct DnsSettings {
    /// `--host-netns`: where the listeners and the upstream sockets live.
    pub host_netns: Option<PathBuf>,
    /// `--dns-upstream`.
    pub upstream: Vec<SocketAddr>,
    /// `--host-resolv-conf`.
    pub host_resolv_conf: PathBuf,
}

/// Starts the resolver: the index feed and the listener manager, as tasks in `tasks`; they
/// end when the controller shuts down. Fails only if the host namespace cannot be entered.
pub fn spawn(
    ctl: &Controller,
    settings: DnsSettings,
    tasks: &mut JoinSet<()>,
) -> Result<(), KernelError> {
    let sockets = HostSockets::start(settings.host_netns.as_deref())?;
    let shared = Arc::new(Shared {
        index: RwLock::new(index::Index::default()),
        upstreams: upstream::Upstreams::new(
            settings.upstream,
            settings.host_resolv_conf,
            sockets.clone(),
        ),
        ctl: ctl.clone(),
        rotation: AtomicUsize::new(0),
    });
    let (changed_tx, changed_rx) = tokio::sync::watch::channel(());
    tasks.spawn(feed::run(shared.clone(), changed_tx));
    tasks.spawn(listeners::run(shared, sockets, changed_rx));
    Ok(())
}
