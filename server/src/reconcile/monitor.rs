//! Event-driven repair: one netlink subscription per namespace weft manages (and the host).
//! A change to an interface carrying weft's mark (or an address or route on one) re-queues
//! the object that owns it, so a veth deleted or an address removed by hand is back in about
//! a second. Changes weft makes itself arrive here too; they re-queue an object that is
//! already converged, whose reconcile then writes nothing, so nothing loops.
//!
//! Notifications are gathered for a short window and deduplicated before the owners are
//! looked up, so a burst (a connect makes about ten) costs one lookup per interface. An
//! addition or change (not a removal) to an object weft reconciled within the last
//! [`OWN_ECHO`] is taken for the echo of weft's own writes and not re-queued: removals always
//! are, and anything else an admin changes right after weft did is caught by the resync.

use std::{collections::HashMap, time::Duration};

use super::{Controller, Key};
use crate::kernel::{NsRef, monitor::Change};

/// How long after a reconcile additions and changes to its object count as its own echo.
const OWN_ECHO: Duration = Duration::from_secs(1);

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
        // ifindex -> fingerprint of its last notification: one that changes nothing weft
        // manages (a carrier or operstate change, a second or so after weft's own writes,
        // outside the echo window) re-queues nothing.
        let mut seen: HashMap<u32, u64> = HashMap::new();
        while let Some(first) = mon.changes.recv().await {
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::now() + DEBOUNCE;
            while let Ok(Some(c)) = tokio::time::timeout_at(deadline, mon.changes.recv()).await {
                batch.push(c);
            }
            // For each interface or owner: was anything removed?
            let mut indexes: HashMap<u32, bool> = HashMap::new();
            let mut uids: HashMap<String, bool> = HashMap::new();
            for change in batch {
                match change {
                    Change::Link {
                        index,
                        alias,
                        deleted,
                        fingerprint,
                    } => {
                        if deleted {
                            seen.remove(&index);
                        } else if seen.insert(index, fingerprint) == Some(fingerprint) {
                            continue;
                        }
                        let uid = match alias.as_deref().and_then(|a| a.strip_prefix("weft:")) {
                            Some(uid) => Some(uid.to_string()),
                            // Our mark was removed, or the interface went without one.
                            None => owners.get(&index).cloned(),
                        };
                        if let Some(uid) = uid {
                            if deleted || alias.is_none() {
                                owners.remove(&index);
                            } else {
                                owners.insert(index, uid.clone());
                            }
                            *uids.entry(uid).or_default() |= deleted || alias.is_none();
                        }
                    }
                    Change::Address { index, deleted }
                    | Change::Route {
                        oif: Some(index),
                        deleted,
                    } => {
                        *indexes.entry(index).or_default() |= deleted;
                    }
                    Change::Route { oif: None, .. } => {}
                }
            }
            for (index, deleted) in indexes {
                let uid = match owners.get(&index) {
                    Some(uid) => Some(uid.clone()),
                    None => match self.kernel().get_link_by_index(ns, index).await {
                        Ok(Some(l)) => l
                            .alias
                            .as_deref()
                            .and_then(|a| a.strip_prefix("weft:"))
                            .map(|u| {
                                owners.insert(index, u.to_string());
                                u.to_string()
                            }),
                        _ => None,
                    },
                };
                if let Some(uid) = uid {
                    *uids.entry(uid).or_default() |= deleted;
                }
            }
            for (uid, removal) in uids {
                let Some(key) = self.key_of_uid(&uid).await else {
                    continue;
                };
                if !removal && self.reconciled_within(&key, OWN_ECHO) {
                    continue;
                }
                tracing::debug!(?key, removal, "kernel change on an interface weft owns");
                self.enqueue(key);
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
