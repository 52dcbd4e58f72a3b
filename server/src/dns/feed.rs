//! Keeps the resolver's index current: subscribe to the controller's change events (the ones
//! Watch streams get), load everything once, then apply each event by reading the one object
//! it names. Events of a status write alone ([`Event::status_only`](crate::reconcile::Event))
//! are passed by: the index holds nothing of a status, and a restart's confirmations (about
//! 30,000 at 10,000 endpoints, each endpoint's with its network's) are all such. A burst of events (all those already waiting) is taken
//! at once and each object in it read once; a burst of more than 256 objects, or a subscriber
//! that lagged behind, loads everything again instead, so no change is lost. (Before status
//! events were told apart, a restart at 10,000 endpoints made the index load everything
//! several times over while the confirmations flowed.)
//!
//! - `Endpoint(id)`: read it; gone, being disconnected or without addresses, it leaves the
//!   index (a Disconnect marks it deleting first, so its names go before its veth does).
//! - `Network(id)`: read it; gone or being deleted, it leaves with its endpoints. Every
//!   endpoint change also announces its network, which costs one read.
//! - `Namespace(id)`: its endpoints are read again. (An adopted namespace that died has its
//!   endpoints' leases released; that release announces each endpoint itself, since the
//!   namespace's own event then is a status.)
//!
//! When what the listeners serve changes (a DNS network came, went, or changed its
//! gateways), the listener manager is told through `changed`.

use std::sync::Arc;

use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::{
    Shared,
    index::{EpInfo, Index, NetInfo},
};
use crate::{reconcile::Key, store::StoreError};

/// Runs until weftd stops.
pub(super) async fn run(shared: Arc<Shared>, changed: tokio::sync::watch::Sender<()>) {
    let mut stopping = shared.ctl.stopping();
    let mut events = shared.ctl.events().subscribe();
    let mut reload = true;
    loop {
        if reload {
            shared
                .ctl
                .stats()
                .dns_index_loads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            match load_all(&shared).await {
                Ok(ix) => {
                    *shared.index.write().unwrap_or_else(|p| p.into_inner()) = ix;
                    changed.send_replace(());
                    reload = false;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "DNS: could not load networks and endpoints; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => continue,
                        _ = stopping.wait_for(|s| *s) => return,
                    }
                }
            }
        }
        let ev = tokio::select! {
            ev = events.recv() => ev,
            _ = stopping.wait_for(|s| *s) => return,
        };
        let mut keys: Vec<Key> = Vec::new();
        match ev {
            // A status is nothing the index holds.
            Ok(ev) if ev.status_only => {}
            Ok(ev) => keys.push(ev.key),
            Err(RecvError::Lagged(n)) => {
                tracing::debug!(missed = n, "DNS: change events lagged; reloading");
                reload = true;
            }
            Err(RecvError::Closed) => return,
        }
        // Take the rest of a burst too (a restart's confirmations, a mass connect): each key
        // is read once, and a burst too big for reads one by one is one reload instead. What
        // is taken here was sent before the reload reads the store, so the reload covers it.
        loop {
            match events.try_recv() {
                Ok(ev) if ev.status_only => {}
                Ok(ev) => {
                    if !keys.contains(&ev.key) && keys.len() <= RELOAD_ABOVE {
                        keys.push(ev.key);
                    }
                }
                Err(TryRecvError::Lagged(_)) => reload = true,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Closed) => return,
            }
        }
        if reload || keys.len() > RELOAD_ABOVE {
            reload = true;
            continue;
        }
        for key in &keys {
            match apply(&shared, key).await {
                Ok(true) => {
                    changed.send_replace(());
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, ?key, "DNS: could not read a change; reloading");
                    reload = true;
                    break;
                }
            }
        }
    }
}

/// Distinct objects changed in one burst above which the index is loaded again whole (two
/// list queries) rather than read object by object.
const RELOAD_ABOVE: usize = 256;

/// Every network and endpoint from the store.
async fn load_all(shared: &Shared) -> Result<Index, StoreError> {
    let store = shared.ctl.store();
    let mut ix = Index::default();
    for n in store.list_networks().await? {
        if !n.deleting {
            ix.set_network(&n.id, NetInfo::of(&n.spec));
        }
    }
    for e in store.list_endpoints(None).await? {
        if !e.deleting && !e.addresses.is_empty() {
            ix.set_endpoint(&e.id, EpInfo::of(&e));
        }
    }
    Ok(ix)
}

/// Applies one changed object; true if what the listeners serve changed.
async fn apply(shared: &Shared, key: &Key) -> Result<bool, StoreError> {
    let store = shared.ctl.store();
    match key {
        Key::Endpoint(id) => {
            let row = store.endpoint_by_id(id).await?;
            set_endpoint(shared, id, row);
            Ok(false)
        }
        Key::Network(id) => {
            let row = store.network_by_id(id).await?;
            let mut ix = shared.index.write().unwrap_or_else(|p| p.into_inner());
            Ok(match row {
                Some(n) if !n.deleting => ix.set_network(id, NetInfo::of(&n.spec)),
                _ => ix.remove_network(id),
            })
        }
        Key::Namespace(id) => {
            for ep in store.endpoint_ids_in_namespace(id).await? {
                let row = store.endpoint_by_id(&ep).await?;
                set_endpoint(shared, &ep, row);
            }
            Ok(false)
        }
        Key::Link(_) | Key::Firewall | Key::Gc => Ok(false),
    }
}

/// Puts endpoint `id` in the index as `row` says (or takes it out).
fn set_endpoint(shared: &Shared, id: &str, row: Option<crate::store::EndpointRow>) {
    let mut ix = shared.index.write().unwrap_or_else(|p| p.into_inner());
    match row {
        Some(e) if !e.deleting && !e.addresses.is_empty() => ix.set_endpoint(id, EpInfo::of(&e)),
        _ => ix.remove_endpoint(id),
    }
}
