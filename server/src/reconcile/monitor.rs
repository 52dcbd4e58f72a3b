//! Event-driven repair: one netlink subscription in the host namespace that also hears every
//! namespace weft manages (each gets an id in the host namespace when it is Ready; see
//! `Kernel::monitor`). A change to an interface carrying weft's mark (or an address or route
//! on one) re-queues the object that owns it, so a veth deleted or an address removed by hand
//! is back in about a second. Changes weft makes itself arrive here too; they re-queue an
//! object that is already converged, whose reconcile then writes nothing, so nothing loops.
//!
//! Notifications are gathered for a short window and deduplicated before the owners are
//! looked up, so a burst (a connect makes about ten) costs one lookup per interface. A link
//! notification that changes nothing weft manages (its fingerprint is the last one seen) is
//! dropped. An addition or change (not a removal) to an object weft reconciled within the last
//! [`OWN_ECHO`] is taken for the echo of weft's own writes and not re-queued: removals always
//! are, and anything else an admin changes right after weft did is caught by the resync. If
//! the socket overflows, everything is queued again. Every notification, a bridge port's own
//! (`Change::Port`, which re-queues nothing) included, also tells the quiet book (`quiet`)
//! that its namespace must be read by the next resync.

use std::{collections::HashMap, time::Duration};

use tokio::task::JoinSet;

use super::{Controller, Key};
use crate::kernel::{
    NsRef,
    monitor::{Change, Notification},
};

/// Marks the monitor stopped in the quiet book when dropped.
struct LiveGuard<'a>(&'a Controller);

impl Drop for LiveGuard<'_> {
    fn drop(&mut self) {
        self.0.inner.quiet.set_live(false);
    }
}

/// How long after a reconcile additions and changes to its object count as its own echo.
const OWN_ECHO: Duration = Duration::from_secs(1);

/// How long to gather notifications before acting on them.
const DEBOUNCE: Duration = Duration::from_millis(50);

/// Which namespaces the monitor hears, by their id in the host namespace.
#[derive(Debug, Default)]
pub(super) struct Watched {
    by_id: HashMap<i32, NsRef>,
    by_ns: HashMap<NsRef, Option<i32>>,
}

/// What the monitor remembers of one namespace.
#[derive(Debug, Default)]
struct NsState {
    /// ifindex -> uid of the owning object, learnt from notifications and lookups.
    owners: HashMap<u32, String>,
    /// ifindex -> fingerprint of its last link notification.
    seen: HashMap<u32, u64>,
}

impl Controller {
    /// The watched-namespace table (a poisoned lock is taken over: it holds plain maps).
    fn watched(&self) -> std::sync::MutexGuard<'_, Watched> {
        self.inner.watched.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes the monitor hear `ns` (the host is always heard): gives it an id in the host
    /// namespace unless it has one.
    pub fn watch_namespace(&self, ns: NsRef) {
        if ns == NsRef::Host {
            return;
        }
        {
            let mut w = self.watched();
            if w.by_ns.contains_key(&ns) {
                return;
            }
            w.by_ns.insert(ns.clone(), None);
        }
        let c = self.clone();
        tokio::spawn(async move {
            match c.kernel().netns_id(&ns).await {
                Ok(Some(id)) => {
                    let mut w = c.watched();
                    // Unwatched meanwhile: leave it.
                    if let Some(slot) = w.by_ns.get_mut(&ns) {
                        *slot = Some(id);
                        w.by_id.insert(id, ns);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(ns = ?ns, error = %e, "cannot watch namespace for changes; relying on resync");
                    c.watched().by_ns.remove(&ns);
                }
            }
        });
    }

    /// Makes the monitor hear `ns`, whose id `id` the caller just learnt (the bulk check).
    pub(super) fn watch_namespace_as(&self, ns: NsRef, id: i32) {
        let mut w = self.watched();
        if let Some(Some(old)) = w.by_ns.insert(ns.clone(), Some(id))
            && old != id
        {
            w.by_id.remove(&old);
        }
        w.by_id.insert(id, ns);
    }

    /// Stops hearing `ns` (before it is deleted: its id may be reused by a new namespace).
    pub fn unwatch_namespace(&self, ns: &NsRef) {
        let mut w = self.watched();
        if let Some(Some(id)) = w.by_ns.remove(ns) {
            w.by_id.remove(&id);
        }
    }

    /// Starts the monitor task.
    pub(super) fn spawn_monitor(&self, set: &mut JoinSet<()>) {
        let c = self.clone();
        set.spawn(async move {
            let mut stopping = c.inner.stopping.subscribe();
            tokio::select! {
                r = c.run_monitor() => if let Err(e) = r {
                    tracing::warn!(error = %e, "cannot watch for kernel changes; relying on resync");
                },
                _ = stopping.wait_for(|s| *s) => {}
            }
        });
    }

    /// Subscribes and turns notifications into keys until shutdown: gathers them for
    /// `DEBOUNCE`, drops echoes of weft's own writes and changes to nothing weft manages,
    /// looks up each interface's owner once per burst, and queues the owners. An overflow of
    /// the socket queues everything (nothing is lost, only coalesced).
    async fn run_monitor(&self) -> Result<(), crate::kernel::KernelError> {
        let mut mon = self.kernel().monitor().await?;
        // From now on every change is heard: the check may skip what stays quiet. Not any
        // more once this returns (the guard), whatever the reason.
        self.inner.quiet.set_live(true);
        let _live = LiveGuard(self);
        let mut states: HashMap<NsRef, NsState> = HashMap::new();
        while let Some(first) = mon.changes.recv().await {
            self.heard(&first);
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::now() + DEBOUNCE;
            while let Ok(Some(c)) = tokio::time::timeout_at(deadline, mon.changes.recv()).await {
                self.heard(&c);
                batch.push(c);
            }
            if batch.contains(&Notification::Overflow) {
                tracing::warn!("netlink monitor overflowed; checking everything again");
                states.clear();
                self.check_all(super::check::Pass::Background).await;
                continue;
            }
            // Per namespace, in the order heard.
            let mut per_ns: Vec<(NsRef, Vec<Change>)> = Vec::new();
            {
                let w = self.watched();
                states.retain(|ns, _| *ns == NsRef::Host || w.by_ns.contains_key(ns));
                for n in batch {
                    let Notification::Change { nsid, change } = n else {
                        continue;
                    };
                    let ns = match nsid {
                        None => NsRef::Host,
                        Some(id) => match w.by_id.get(&id) {
                            Some(ns) => ns.clone(),
                            // A namespace weft does not manage (or not yet).
                            None => continue,
                        },
                    };
                    match per_ns.iter_mut().find(|(n, _)| *n == ns) {
                        Some((_, v)) => v.push(change),
                        None => per_ns.push((ns, vec![change])),
                    }
                }
            }
            for (ns, changes) in per_ns {
                let state = states.entry(ns.clone()).or_default();
                self.react(&ns, state, changes).await;
            }
        }
        Ok(())
    }

    /// Tells the quiet book (`quiet`) that `n` was heard, as soon as it is received.
    fn heard(&self, n: &Notification) {
        match n {
            Notification::Change { nsid, .. } => self.inner.quiet.heard(*nsid),
            Notification::Overflow => self.inner.quiet.overflowed(),
        }
    }

    /// Re-queues the owners of what `changes` touched in `ns`.
    async fn react(&self, ns: &NsRef, state: &mut NsState, changes: Vec<Change>) {
        let NsState { owners, seen } = state;
        // For each interface or owner: was anything removed?
        let mut indexes: HashMap<u32, bool> = HashMap::new();
        let mut uids: HashMap<String, bool> = HashMap::new();
        for change in changes {
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
                    let uid = match crate::model::parse_mark(alias.as_deref()).map(|(uid, _)| uid) {
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
                // A bridge port's own message: each port sends a few as it comes up (its STP
                // state), often more than OWN_ECHO after its reconcile on a busy host, so
                // re-queueing its owner re-reconciled every endpoint of a build-up once more.
                // It only makes the namespace unclean (`heard`): the next resync reads it,
                // and finds a hairpin mode changed by hand.
                Change::Port { .. } => {}
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
                        .and_then(|a| crate::model::parse_mark(Some(a)).map(|(uid, _)| uid))
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
            // The echo of weft's own reconcile, known without asking the store which kind the
            // uid is (a Connect's veth alone sends a dozen notifications; uids are unique
            // across kinds).
            let own_echo = || {
                [Key::Endpoint, Key::Link, Key::Network]
                    .into_iter()
                    .any(|k| self.reconciled_within(&k(uid.clone()), OWN_ECHO))
            };
            if !removal && own_echo() {
                continue;
            }
            let Some(key) = self.key_of_uid(&uid).await else {
                continue;
            };
            tracing::debug!(?key, removal, "kernel change on an interface weft owns");
            self.enqueue(key);
        }
    }

    /// The object whose ownership mark is `weft:<uid>`.
    pub(super) async fn key_of_uid(&self, uid: &str) -> Option<Key> {
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
