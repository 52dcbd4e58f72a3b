//! Event-driven repair: one netlink subscription in the host namespace that also hears every
//! namespace weft manages (each gets an id in the host namespace when it is Ready; see
//! `Kernel::monitor`). A change to an interface carrying weft's mark (or an address or route
//! on one, or its bridge port's hairpin mode) re-queues the object that owns it, so a veth
//! deleted or an address removed by hand is back in about a second.
//!
//! Notifications are gathered for a short window and deduplicated before the owners are
//! looked up, so a burst (a connect makes about ten) costs one lookup per interface. A link
//! or port notification that changes nothing weft manages (its fingerprint is the last one
//! seen: carrier, operstate, STP state) is dropped. An addition or change (not a removal) to
//! an object weft reconciled within the last [`OWN_ECHO`] is taken for the echo of weft's own
//! writes and not re-queued now: the quiet book keeps its owner for the next resync to queue
//! (`quiet`). Removals are re-queued whenever their object exists; one whose object is gone
//! from the store is the echo of its delete within the window (not heard), and heard after
//! it. If the socket overflows, everything is checked again.
//!
//! Every notification not dropped as above also tells the quiet book that its namespace must
//! be read by the next resync; notifications from namespaces the monitor does not know yet
//! always do.

use std::{collections::HashMap, num::NonZeroU64, time::Duration};

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
    /// Namespaces no longer heard, counted: the monitor forgets their state only when this
    /// moved (a pass over its state at every batch hashed 10,000 paths, most of weftd's idle
    /// CPU at 10,000 endpoints; perf).
    unwatched: u64,
    /// The last of them ([`GONE_MAX`] at most), each with its number in that count: the
    /// monitor forgets just their state (a pass over all of it after each unwatch, 10,000
    /// paths hashed, was ~6 % of weftd's samples during Connects at 10,000 endpoints; perf).
    gone: std::collections::VecDeque<(u64, NsRef)>,
}

/// How many unwatched namespaces [`Watched`] remembers for the monitor; past them, it reads
/// its whole state once.
const GONE_MAX: usize = 1024;

impl Watched {
    /// The copy of `ns` the table holds, if it watches it (for others to share).
    fn held(&self, ns: &NsRef) -> Option<NsRef> {
        self.by_ns.get_key_value(ns).map(|(held, _)| held.clone())
    }

    /// Stops hearing `ns`.
    fn remove(&mut self, ns: &NsRef) {
        if let Some(id) = self.by_ns.remove(ns) {
            self.unwatched += 1;
            self.gone.push_back((self.unwatched, ns.clone()));
            if self.gone.len() > GONE_MAX {
                self.gone.pop_front();
            }
            // The id may name another namespace by now (the kernel reuses ids).
            if let Some(id) = id
                && self.by_id.get(&id) == Some(ns)
            {
                self.by_id.remove(&id);
            }
        }
    }

    /// Drops from `states` the namespaces no longer heard (the host is always heard), when
    /// one was unwatched since `pruned_at`, which it then moves: those unwatched since, when
    /// it remembers them all, else every one not heard.
    fn prune<S>(&mut self, states: &mut HashMap<NsRef, S>, pruned_at: &mut u64) {
        if self.unwatched == *pruned_at {
            return;
        }
        let all_remembered = self.gone.front().is_some_and(|(n, _)| *n <= *pruned_at + 1);
        if all_remembered {
            for (n, ns) in self.gone.drain(..) {
                if n > *pruned_at && !self.by_ns.contains_key(&ns) {
                    states.remove(&ns);
                }
            }
        } else {
            states.retain(|ns, _| *ns == NsRef::Host || self.by_ns.contains_key(ns));
            self.gone.clear();
        }
        *pruned_at = self.unwatched;
    }
}

/// What the monitor remembers of one namespace: per interface it heard of, the fingerprints
/// of its last link and bridge port notifications and the uid of the object owning it
/// (learnt from notifications and lookups). An endpoint's namespace holds two or three
/// interfaces, where two hash maps cost ~250 bytes per namespace (the monitor's state was
/// 5.9 MB of heap at 10,000 endpoints; heaptrack); the host holds one per endpoint. So a
/// vector sorted by index: a binary search per notification, an entry dropped as soon as
/// nothing is known of it (a pass over the whole vector at each notification, and a linear
/// search, were 5-10 % of weftd's CPU during Connects at 10,000 endpoints; perf).
#[derive(Debug, Default)]
struct NsState(Vec<Iface>);

/// One interface (40 bytes: the fingerprints are non-zero, so their `Option`s take none).
#[derive(Debug)]
struct Iface {
    index: u32,
    fingerprint: Option<NonZeroU64>,
    port: Option<NonZeroU64>,
    owner: Option<Box<str>>,
}

impl Iface {
    /// Nothing is known of it.
    fn is_empty(&self) -> bool {
        self.fingerprint.is_none() && self.port.is_none() && self.owner.is_none()
    }
}

/// A fingerprint as kept (0, one hash in 2^64, is taken for 1).
fn kept(fingerprint: u64) -> NonZeroU64 {
    NonZeroU64::new(fingerprint).unwrap_or(NonZeroU64::MIN)
}

impl NsState {
    fn get(&self, index: u32) -> Option<&Iface> {
        self.0
            .binary_search_by_key(&index, |i| i.index)
            .ok()
            .map(|at| &self.0[at])
    }

    /// Changes `index`'s entry (made empty first if there is none) with `f`, and drops it if
    /// nothing is known of it then.
    fn update<T>(&mut self, index: u32, f: impl FnOnce(&mut Iface) -> T) -> T {
        let at = match self.0.binary_search_by_key(&index, |i| i.index) {
            Ok(at) => at,
            Err(at) => {
                // One or two interfaces is the rule: no room for four (Vec's first growth),
                // 160 bytes per namespace for 40.
                self.0.reserve_exact(1);
                self.0.insert(
                    at,
                    Iface {
                        index,
                        fingerprint: None,
                        port: None,
                        owner: None,
                    },
                );
                at
            }
        };
        let out = f(&mut self.0[at]);
        if self.0[at].is_empty() {
            self.0.remove(at);
        }
        out
    }

    /// The uid owning interface `index`, if known.
    fn owner(&self, index: u32) -> Option<&str> {
        self.get(index).and_then(|i| i.owner.as_deref())
    }

    /// Records (Some) or forgets (None) the owner of `index`.
    fn set_owner(&mut self, index: u32, uid: Option<&str>) {
        self.update(index, |e| e.owner = uid.map(Box::from));
    }

    /// Records `fingerprint` as `index`'s last link fingerprint (None: it was deleted, and
    /// its port's is forgotten too); true if it was that already.
    fn saw(&mut self, index: u32, fingerprint: Option<u64>) -> bool {
        let fingerprint = fingerprint.map(kept);
        self.update(index, |e| {
            let same = fingerprint.is_some() && e.fingerprint == fingerprint;
            e.fingerprint = fingerprint;
            if fingerprint.is_none() {
                e.port = None;
            }
            same
        })
    }

    /// Records `fingerprint` as `index`'s last bridge port fingerprint (None: it is no
    /// longer a port); true if it was that already.
    fn saw_port(&mut self, index: u32, fingerprint: Option<u64>) -> bool {
        let fingerprint = fingerprint.map(kept);
        self.update(index, |e| {
            let same = fingerprint.is_some() && e.port == fingerprint;
            e.port = fingerprint;
            same
        })
    }
}

impl Controller {
    /// The watched-namespace table (a poisoned lock is taken over: it holds plain maps).
    fn watched(&self) -> std::sync::MutexGuard<'_, Watched> {
        self.inner.watched.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes the monitor hear `ns` (the host is always heard): gives it an id in the host
    /// namespace unless it has one. The namespace's reconcile waits for it, so a Connect that
    /// waited for the namespace to be Ready (the CLI, weft-cni) finds the id given: filling
    /// in a veth's peer, the kernel would give the namespace an id of its own choosing (the
    /// lowest free one), not one of weft's ([`crate::kernel::Kernel`]'s
    /// `assign_netns_id`). A Connect sent without waiting can still come first.
    pub async fn watch_namespace(&self, ns: NsRef) {
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
        match self.kernel().netns_id(&ns).await {
            Ok(Some(id)) => {
                let mut w = self.watched();
                // Unwatched meanwhile: leave it. Watched again meanwhile: the copy held now
                // is the one to keep.
                if let Some(held) = w.held(&ns) {
                    w.by_ns.insert(held.clone(), Some(id));
                    w.by_id.insert(id, held);
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(ns = ?ns, error = %e, "cannot watch namespace for changes; relying on resync");
                self.watched().remove(&ns);
            }
        }
    }

    /// Makes the monitor hear `ns`, whose id `id` the caller just learnt (the bulk check).
    /// Returns the monitor's own copy of `ns` (the one it held already, if any), for the
    /// caller's tables to share.
    pub(super) fn watch_namespace_as(&self, ns: NsRef, id: i32) -> NsRef {
        let mut w = self.watched();
        let ns = w.held(&ns).unwrap_or(ns);
        if let Some(Some(old)) = w.by_ns.insert(ns.clone(), Some(id))
            && old != id
        {
            w.by_id.remove(&old);
        }
        w.by_id.insert(id, ns.clone());
        ns
    }

    /// The monitor's copies of `ns`, if it watches it: its key in the watched table, and the
    /// value under its id once it has one (for tests of what the tables share).
    #[cfg(test)]
    pub(super) fn watched_copies(&self, ns: &NsRef) -> Option<(NsRef, Option<NsRef>)> {
        let w = self.watched();
        let held = w.held(ns)?;
        let by_id = w.by_ns[ns].and_then(|id| w.by_id.get(&id)).cloned();
        Some((held, by_id))
    }

    /// Stops hearing `ns` (before it is deleted: its id may be reused by a new namespace).
    pub fn unwatch_namespace(&self, ns: &NsRef) {
        self.watched().remove(ns);
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
        // The unwatched count when `states` last dropped what is no longer heard.
        let mut pruned_at = 0;
        while let Some(first) = mon.changes.recv().await {
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::now() + DEBOUNCE;
            while let Ok(Some(c)) = tokio::time::timeout_at(deadline, mon.changes.recv()).await {
                batch.push(c);
            }
            if batch.contains(&Notification::Overflow) {
                tracing::warn!("netlink monitor overflowed; checking everything again");
                self.inner.quiet.overflowed();
                states.clear();
                self.check_all(super::check::Pass::Background).await;
                continue;
            }
            // Per namespace, in the order heard.
            let mut per_ns: Vec<(NsRef, Option<i32>, Vec<Change>)> = Vec::new();
            {
                let mut w = self.watched();
                w.prune(&mut states, &mut pruned_at);
                for n in batch {
                    let Notification::Change { nsid, change } = n else {
                        continue;
                    };
                    let ns = match nsid {
                        None => NsRef::Host,
                        Some(id) => match w.by_id.get(&id) {
                            Some(ns) => ns.clone(),
                            // A namespace weft does not manage (or not yet): nothing to
                            // re-queue, but heard, whatever it was.
                            None => {
                                self.inner.quiet.heard(nsid);
                                continue;
                            }
                        },
                    };
                    match per_ns.iter_mut().find(|(n, _, _)| *n == ns) {
                        Some((_, _, v)) => v.push(change),
                        None => per_ns.push((ns, nsid, vec![change])),
                    }
                }
            }
            for (ns, nsid, changes) in per_ns {
                let state = states.entry(ns.clone()).or_default();
                if self.react((&ns, nsid), state, changes).await {
                    self.inner.quiet.heard(nsid);
                }
            }
        }
        Ok(())
    }

    /// Re-queues the owners of what `changes` touched in `ns` (whose id is `nsid`). True when
    /// the quiet book (`quiet`) must hear of them: anything but changes to nothing weft
    /// manages (a fingerprint seen before), a newborn's, and the echoes of weft's own
    /// reconciles the book takes over.
    async fn react(
        &self,
        (ns, nsid): (&NsRef, Option<i32>),
        st: &mut NsState,
        changes: Vec<Change>,
    ) -> bool {
        let mut news = false;
        // For each interface or owner: was anything removed?
        let mut indexes: HashMap<u32, bool> = HashMap::new();
        let mut uids: HashMap<String, bool> = HashMap::new();
        // Interfaces whose owner is forgotten once the batch is read.
        let mut forget = Vec::new();
        for change in changes {
            match change {
                Change::Link {
                    index,
                    alias,
                    deleted,
                    fingerprint,
                    newborn,
                } => {
                    if st.saw(index, (!deleted).then_some(fingerprint)) {
                        continue;
                    }
                    let uid = match crate::model::parse_mark(alias.as_deref()).map(|(uid, _)| uid) {
                        Some(uid) => Some(uid.to_string()),
                        // Our mark was removed, or the interface went without one.
                        None => st.owner(index).map(str::to_string),
                    };
                    match uid {
                        Some(uid) => {
                            // Forgotten only once the batch is read: its other messages
                            // (a port's, an address's) still tell whose it was.
                            if deleted || alias.is_none() {
                                forget.push(index);
                            } else {
                                st.set_owner(index, Some(&uid));
                            }
                            *uids.entry(uid).or_default() |= deleted || alias.is_none();
                        }
                        // A reconcile's veth before it is marked: the mark's own message
                        // follows (the echo of its owner); a crash's newborn is for the GC.
                        None if newborn => {}
                        // Not weft's: nothing to re-queue, but the check must read it.
                        None => news = true,
                    }
                }
                Change::Address { index, deleted }
                | Change::Route {
                    oif: Some(index),
                    deleted,
                } => {
                    *indexes.entry(index).or_default() |= deleted;
                }
                // A bridge port's own message: its owner is re-queued when its bridge or
                // hairpin mode changed, not for its STP state (a port sends a few as it comes
                // up, often more than OWN_ECHO after its reconcile on a busy host).
                Change::Port { index, fingerprint } => {
                    if !st.saw_port(index, fingerprint) {
                        indexes.entry(index).or_default();
                    }
                }
                Change::Route { oif: None, .. } => news = true,
            }
        }
        for (index, deleted) in indexes {
            let uid = match st.owner(index) {
                Some(uid) => Some(uid.to_string()),
                None => match self.kernel().get_link_by_index(ns, index).await {
                    Ok(Some(l)) => l
                        .alias
                        .as_deref()
                        .and_then(|a| crate::model::parse_mark(Some(a)).map(|(uid, _)| uid))
                        .map(|u| {
                            st.set_owner(index, Some(u));
                            u.to_string()
                        }),
                    _ => None,
                },
            };
            match uid {
                Some(uid) => *uids.entry(uid).or_default() |= deleted,
                None => news = true,
            }
        }
        for index in forget {
            st.set_owner(index, None);
        }
        for (uid, removal) in uids {
            // The reconcile whose echo this may be, known without asking the store which
            // kind the uid is (a Connect's veth alone sends a dozen notifications; uids are
            // unique across kinds).
            let own = [Key::Endpoint, Key::Link, Key::Network]
                .into_iter()
                .map(|k| k(uid.clone()))
                .find(|k| self.reconciled_within(k, OWN_ECHO));
            if !removal && let Some(key) = &own {
                // Not re-queued now; the next resync queues it, unless the book has no room
                // left for it: then the namespace is read.
                news |= !self.inner.quiet.echoed(key, nsid);
                continue;
            }
            match self.key_of_uid(&uid).await {
                Ok(Some(key)) => {
                    news = true;
                    tracing::debug!(?key, removal, "kernel change on an interface weft owns");
                    self.enqueue(key);
                }
                // Its object is gone: the echo of its delete when one finished within the
                // window (nothing left to read for), a stale interface otherwise (the GC's).
                Ok(None) => news |= own.is_none(),
                // Not known whose: the next pass reads the namespace.
                Err(e) => {
                    tracing::debug!(uid, error = %e, "cannot look up the owner of a kernel change");
                    news = true;
                }
            }
        }
        news
    }

    /// The object whose ownership mark is `weft:<uid>`.
    /// None when no object has that uid.
    pub(super) async fn key_of_uid(
        &self,
        uid: &str,
    ) -> Result<Option<Key>, crate::store::StoreError> {
        let s = self.store();
        if s.link_by_id(uid).await?.is_some() {
            return Ok(Some(Key::Link(uid.to_string())));
        }
        if s.endpoint_by_id(uid).await?.is_some() {
            return Ok(Some(Key::Endpoint(uid.to_string())));
        }
        if s.network_by_id(uid).await?.is_some() {
            return Ok(Some(Key::Network(uid.to_string())));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two named namespaces.
    fn two_paths() -> (NsRef, NsRef) {
        (NsRef::path("/run/netns/a"), NsRef::path("/run/netns/b"))
    }

    /// Removing a watched namespace forgets its id and moves the count the monitor prunes
    /// its state by; removing one not watched moves nothing.
    #[test]
    fn unwatching_counts_only_what_was_watched() {
        let (a, b) = two_paths();
        let mut w = Watched::default();
        w.by_ns.insert(a.clone(), Some(7));
        w.by_id.insert(7, a.clone());
        w.by_ns.insert(b.clone(), None);
        w.remove(&NsRef::path("/run/netns/c"));
        assert_eq!(w.unwatched, 0);
        w.remove(&a);
        assert_eq!(w.unwatched, 1);
        assert!(w.by_id.is_empty() && !w.by_ns.contains_key(&a));
        w.remove(&b);
        w.remove(&b);
        assert_eq!(w.unwatched, 2);
        assert!(w.by_ns.is_empty());
        // An id the kernel gave another namespace since is left to that one.
        w.by_ns.insert(a.clone(), Some(7));
        w.by_id.insert(7, b.clone());
        w.remove(&a);
        assert_eq!(w.by_id.get(&7), Some(&b));
    }

    /// The monitor's state is pruned only when a namespace was unwatched since the last
    /// prune, and then keeps the host and what is still heard.
    #[test]
    fn state_is_pruned_only_after_an_unwatch() {
        let (a, b) = two_paths();
        let mut w = Watched::default();
        w.by_ns.insert(a.clone(), None);
        let mut states: HashMap<NsRef, ()> =
            [(NsRef::Host, ()), (a.clone(), ()), (b.clone(), ())].into();
        let mut pruned_at = 0;
        w.prune(&mut states, &mut pruned_at);
        assert_eq!(states.len(), 3, "nothing unwatched yet: left alone");
        w.by_ns.insert(b.clone(), None);
        w.remove(&b);
        w.prune(&mut states, &mut pruned_at);
        assert_eq!(pruned_at, 1);
        assert!(states.contains_key(&NsRef::Host) && states.contains_key(&a));
        assert!(!states.contains_key(&b));
        states.insert(b.clone(), ());
        w.prune(&mut states, &mut pruned_at);
        assert!(states.contains_key(&b), "pruned once per unwatch");
    }

    /// Past the unwatched namespaces it remembers, a prune reads the whole state; either way
    /// it drops exactly the namespaces no longer heard (a watched-again one is kept).
    #[test]
    fn a_prune_forgets_what_was_unwatched_however_many() {
        for n in [3, GONE_MAX + 5] {
            let mut w = Watched::default();
            let ns: Vec<NsRef> = (0..n)
                .map(|i| NsRef::path(format!("/run/netns/n{i}")))
                .collect();
            let mut states: HashMap<NsRef, ()> = ns.iter().map(|x| (x.clone(), ())).collect();
            states.insert(NsRef::Host, ());
            for x in &ns {
                w.by_ns.insert(x.clone(), None);
            }
            let mut pruned_at = 0;
            for x in &ns {
                w.remove(x);
            }
            // The first one is heard again before the monitor prunes.
            w.by_ns.insert(ns[0].clone(), None);
            w.prune(&mut states, &mut pruned_at);
            assert_eq!(pruned_at, n as u64);
            let left: Vec<_> = states.keys().cloned().collect();
            assert_eq!(states.len(), 2, "{n}: {left:?}");
            assert!(states.contains_key(&NsRef::Host) && states.contains_key(&ns[0]));
            assert!(w.gone.is_empty());
        }
    }

    /// Fingerprints and owners per interface: a repeated fingerprint is "seen", a deletion
    /// forgets it, and an interface with neither left is dropped.
    #[test]
    fn namespace_state_remembers_fingerprints_and_owners() {
        let mut st = NsState::default();
        assert!(!st.saw(9, None), "a deletion is never the same as before");
        assert!(!st.saw(9, None));
        assert!(!st.saw(3, Some(7)));
        assert!(st.saw(3, Some(7)), "the same fingerprint again");
        assert!(!st.saw(3, Some(8)));
        assert!(!st.saw(4, Some(8)), "another interface");
        st.set_owner(3, Some("abc"));
        assert_eq!(st.owner(3), Some("abc"));
        assert_eq!(st.owner(4), None);
        assert!(!st.saw(3, None), "deleted");
        assert!(!st.saw(3, Some(8)), "a deletion forgets the fingerprint");
        assert_eq!(st.owner(3), Some("abc"), "the owner stays until forgotten");
        st.set_owner(3, None);
        assert!(!st.saw(4, None));
        assert_eq!(st.0.len(), 1, "{:?}", st.0);
        assert!(!st.saw(3, None));
        assert!(st.0.is_empty(), "{:?}", st.0);
    }

    /// Port fingerprints are kept beside link ones: a repeated one is "seen", a port
    /// dropped or its interface deleted forgets it, and a fingerprint of 0 is kept too.
    #[test]
    fn namespace_state_remembers_port_fingerprints_apart() {
        let mut st = NsState::default();
        assert!(!st.saw_port(5, Some(1)));
        assert!(st.saw_port(5, Some(1)), "the same port again");
        assert!(!st.saw(5, Some(1)), "a link fingerprint is another thing");
        assert!(st.saw_port(5, Some(1)));
        assert!(!st.saw_port(5, Some(2)), "hairpin mode changed");
        assert!(!st.saw_port(5, None), "no longer a port");
        assert!(!st.saw_port(5, Some(2)));
        assert!(!st.saw(5, None), "deleted");
        assert!(!st.saw_port(5, Some(2)), "a deletion forgets the port");
        assert!(!st.saw_port(6, Some(0)));
        assert!(st.saw_port(6, Some(0)), "0 is kept");
        assert_eq!(std::mem::size_of::<Iface>(), 40);
    }

    /// A host's thousands of interfaces, heard in any order: each is found by its index, the
    /// entries stay sorted, and one is dropped when nothing is known of it.
    #[test]
    fn namespace_state_holds_a_hosts_thousands_of_interfaces() {
        let mut st = NsState::default();
        let indexes: Vec<u32> = (0..5000u32).map(|i| (i * 7919) % 5000 + 1).collect();
        for &i in &indexes {
            assert!(!st.saw(i, Some(u64::from(i))));
            st.set_owner(i, Some(&format!("uid{i}")));
        }
        assert!(st.0.windows(2).all(|w| w[0].index < w[1].index));
        for &i in &indexes {
            assert!(st.saw(i, Some(u64::from(i))), "{i}");
            assert_eq!(st.owner(i), Some(format!("uid{i}").as_str()));
        }
        for &i in &indexes[..2500] {
            assert!(!st.saw(i, None));
            st.set_owner(i, None);
        }
        assert_eq!(st.0.len(), 2500);
        assert!(st.0.windows(2).all(|w| w[0].index < w[1].index));
        assert_eq!(st.owner(indexes[0]), None);
        assert_eq!(
            st.owner(indexes[4999]),
            Some(format!("uid{}", indexes[4999]).as_str())
        );
    }
}
