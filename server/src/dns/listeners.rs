//! The listener manager: one hickory-server per (network, gateway address) that should serve
//! DNS, each with a UDP socket and a TCP listener on port 53 made in the host namespace.
//!
//! It compares what the index says should be served with what runs whenever the index's
//! servers change, and every [`RETRY`] while something is missing: a listener whose network
//! went (or turned DNS off) is stopped (its task aborted, which closes its sockets); a missing
//! one is bound. A bind that fails, typically `EADDRINUSE` because another DNS server holds
//! port 53 on that address or on the wildcard, is logged once per distinct error and retried;
//! weftd itself goes on.

use std::{
    collections::{BTreeSet, HashMap},
    io,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use hickory_server::Server;
use tokio::task::JoinHandle;

use super::{Shared, handler::Handler};
use crate::kernel::{HostSockets, SocketKind};

/// How often a listener that could not bind is tried again.
pub const RETRY: Duration = Duration::from_secs(2);
/// An idle TCP client is dropped after this long.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Buffer for outgoing TCP responses per connection.
const TCP_BUFFER: usize = 32;

/// The port the resolver serves.
pub const DNS_PORT: u16 = 53;

type Slot = (String, IpAddr);

/// Runs until weftd stops.
pub(super) async fn run(
    shared: Arc<Shared>,
    sockets: HostSockets,
    mut changed: tokio::sync::watch::Receiver<()>,
) {
    let mut stopping = shared.ctl.stopping();
    let mut running: HashMap<Slot, JoinHandle<()>> = HashMap::new();
    let mut failing: HashMap<Slot, String> = HashMap::new();
    loop {
        let want: BTreeSet<Slot> = shared
            .index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .servers();
        running.retain(|slot, task| {
            let keep = want.contains(slot) && !task.is_finished();
            if !keep {
                task.abort();
                if !want.contains(slot) {
                    tracing::info!(network = %slot.0, address = %slot.1, "DNS: stopped serving");
                }
            }
            keep
        });
        failing.retain(|slot, _| want.contains(slot));
        let missing: Vec<&Slot> = want.iter().filter(|s| !running.contains_key(*s)).collect();
        for slot in missing {
            match start(&shared, &sockets, slot).await {
                Ok(task) => {
                    tracing::info!(network = %slot.0, address = %slot.1, "DNS: serving on port 53 (UDP and TCP)");
                    failing.remove(slot);
                    running.insert(slot.clone(), task);
                }
                Err(e) => {
                    let text = e.to_string();
                    if failing.get(slot) != Some(&text) {
                        tracing::warn!(network = %slot.0, address = %slot.1, error = %text,
                            "DNS: cannot serve on port 53 (is another DNS server holding it?); \
                             retrying every {}s", RETRY.as_secs());
                    }
                    failing.insert(slot.clone(), text);
                }
            }
        }
        // Also wakes now and then to restart a server whose task ended.
        let wait = if failing.is_empty() { RETRY * 5 } else { RETRY };
        tokio::select! {
            r = changed.changed() => if r.is_err() { break },
            _ = tokio::time::sleep(wait) => {}
            _ = stopping.wait_for(|s| *s) => break,
        }
    }
    for (_, task) in running {
        task.abort();
    }
}

/// Binds `slot`'s UDP socket and TCP listener and starts its server.
async fn start(
    shared: &Arc<Shared>,
    sockets: &HostSockets,
    slot: &Slot,
) -> io::Result<JoinHandle<()>> {
    let addr = SocketAddr::new(slot.1, DNS_PORT);
    let udp = sockets.bound(SocketKind::Udp, addr, true).await?;
    let tcp = sockets.bound(SocketKind::Tcp, addr, true).await?;
    let udp = tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(udp))?;
    let tcp = tokio::net::TcpListener::from_std(std::net::TcpListener::from(tcp))?;
    let mut server = Server::new(Handler {
        shared: shared.clone(),
        network: slot.0.clone(),
    });
    server.register_socket(udp);
    server.register_listener(tcp, TCP_IDLE, TCP_BUFFER);
    let (network, address) = slot.clone();
    Ok(tokio::spawn(async move {
        // Aborting this task drops the server, which aborts its tasks and closes the sockets.
        if let Err(e) = server.block_until_done().await {
            tracing::warn!(%network, %address, error = %e, "DNS: a listener ended; restarting it");
        }
    }))
}
