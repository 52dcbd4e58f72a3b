//! Event-driven repair: one netlink subscription per namespace weft manages (and the host).
//! A change to an interface carrying weft's mark (or an address or route on one) re-queues
//! the object that owns it, so a veth deleted or an address removed by hand is back in about
//! a second. Changes weft makes itself arrive here too; they re-queue an object that is
//! already converged, whose reconcile then writes nothing, so nothing loops.
//!
//! Notifications are gathered for a short window and deduplicated before the owners are
//! looked up, so a burst (a connect makes about ten) costs one lookup per interface.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use super::{Controller, Key};
use crate::kernel::{NsRef, monitor::Change};

/// How long to gather notifications before acting on them.
const DEBOUNCE: Duration = Duration::from_millis(50);

impl Controller {
    /// Starts watching `ns` unless it is watched already.
    pub fn watch_namespace(&self, ns: NsRef) {
        let mut monitors = self
            .inner
            .monitors
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if monitors.contains_key(&ns) {
            return;
        }
        let c = self.clone();
        let task_ns = ns.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = c.run_monitor(&task_ns).await {
                tracing::warn!(ns = ?task_ns, error = %e, "cannot watch namespace for changes; relying on resync");
                c.inner
                    .monitors
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&task_ns);
            }
        });
        monitors.insert(ns, task);
    }

    /// Stops watching `ns` (before it is deleted: the subscription would keep it alive).
    pub fn unwatch_namespace(&self, ns: &NsRef) {
        if let Some(t) = self
            .inner
            .monitors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(ns)
        {
            t.abort();
        }
    }

    async fn run_monitor(&self, ns: &NsRef) -> Result<(), crate::kernel::KernelError> {
        let mut mon = self.kernel().monitor(ns).await?;
        // ifindex -> uid of the owning object, learnt from notifications and lookups.
        let mut owners: HashMap<u32, String> = HashMap::new();
        while let Some(first) = mon.changes.recv().await {
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::now() + DEBOUNCE;
            while let Ok(Some(c)) = tokio::time::timeout_at(deadline, mon.changes.recv()).await {
                batch.push(c);
            }
            let mut indexes: HashSet<u32> = HashSet::new();
            let mut uids: HashSet<String> = HashSet::new();
            for change in batch {
                match change {
                    Change::Link {
                        index,
                        alias,
                        deleted,
                    } => {
                        if let Some(uid) = alias.as_deref().and_then(|a| a.strip_prefix("weft:")) {
                            uids.insert(uid.to_string());
                            if deleted {
                                owners.remove(&index);
                            } else {
                                owners.insert(index, uid.to_string());
                            }
                        } else if let Some(uid) = owners.get(&index) {
                            // Our mark was removed, or the interface went without one.
                            uids.insert(uid.clone());
                            if deleted {
                                owners.remove(&index);
                            }
                        }
                    }
                    Change::Address { index } => {
                        indexes.insert(index);
                    }
                    Change::Route { oif: Some(index) } => {
                        indexes.insert(index);
                    }
                    Change::Route { oif: None } => {}
                }
            }
            for index in indexes {
                if let Some(uid) = owners.get(&index) {
                    uids.insert(uid.clone());
                    continue;
                }
                if let Ok(Some(l)) = self.kernel().get_link_by_index(ns, index).await
                    && let Some(uid) = l.alias.as_deref().and_then(|a| a.strip_prefix("weft:"))
                {
                    owners.insert(index, uid.to_string());
                    uids.insert(uid.to_string());
                }
            }
            for uid in uids {
                if let Some(key) = self.key_of_uid(&uid).await {
                    tracing::debug!(?key, "kernel change on an interface weft owns");
                    self.enqueue(key);
                }
            }
        }
        Ok(())
    }

    /// The object whose ownership mark is `weft:<uid>`.
    async fn key_of_uid(&self, uid: &str) -> Option<Key> {
        let s = self.store();
        if s.link_by_id(uid).await.ok().flatten().is_some() {
            return Some(Key::Link(uid.to_string()));
        }
        if s.endpoint_by_id(uid).await.ok().flatten().is_some() {
            return Some(Key::Endpoint(uid.to_string()));
        }
        if s.network_by_id(uid).await.ok().flatten().is_some() {
            return Some(Key::Network(uid.to_string()));
        }
        None
    }
}
