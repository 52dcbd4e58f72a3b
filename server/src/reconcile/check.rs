//! The bulk check: the periodic resync, the start-up re-check and the recovery from a
//! monitor overflow, at the cost of a few list queries and one kernel read per namespace.
//!
//! 0. A periodic pass runs on a thread of its own at the lowest priority (nice 19 and
//!    `SCHED_IDLE`: crate::nice), so a Connect that arrives preempts it at once.
//! 1. The store is listed once (namespaces, links, networks, endpoints: four queries in one
//!    read transaction, at nice 19 on a thread and connection of its own: store/lists.rs).
//! 2. The kernel is read once per namespace ([`crate::kernel::KernelOps::snapshot`]): the
//!    host and every namespace weft manages, on helper threads that enter each in turn (one
//!    at nice 19 at the resync, one per core at start-up; kernel/snapshot.rs says why from
//!    inside). A periodic pass leaves quiet ones unread (`quiet`: found clean, nothing heard
//!    since), taking them as found. Each namespace gets an id in the host
//!    namespace if it has none, so the monitor hears it; the id is cached with the identity
//!    of its file and found again when the file names another namespace (at start-up from
//!    the host's veths, see [`Controller::read_view`]).
//! 3. Each named namespace's resolv.conf is read and compared with what it should say.
//! 4. [`super::drift::compare`] decides, in memory, which objects differ: only those are
//!    queued for a full reconcile. Those that match cost nothing more; after a restart they
//!    are confirmed Ready in batches (`recheck`), since the kernel was really read.
//! 5. Networks and the firewall are always queued (a handful of keys: first at start-up, at
//!    the end of a periodic pass, so that their reconciles do not meet a Connect arriving
//!    while it reads; they also cover the forwarding sysctls, `route_localnet` and the
//!    ruleset, which the check does not read), and the garbage collector runs on the same
//!    snapshot.
//!
//! A periodic pass's three reading phases (1-3) pause while API calls are in flight, up to a
//! second each (crate::busy): nice 19 does not keep a busy thread from slowing a Connect on
//! the same core.
//!
//! What the check does not read is covered elsewhere: the firewall's map elements and
//! structure by the firewall key (every second, a cheap check; the resync forgets its cache
//! so all elements are compared), adopted namespaces' liveness by `adopted` (twice a second),
//! the namespace files themselves (one `stat` each here).
//!
//! If the check cannot run at all (the store or the helper thread failed), everything is
//! queued for a full reconcile instead, as before this existed.

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    path::{Path, PathBuf},
    sync::Arc,
};

use super::{
    Controller, Key, ReconcileError,
    drift::{Desired, Space, compare},
    quiet::PassMark,
};
use crate::{
    kernel::{
        NsIdentity, NsRef,
        snapshot::{NsSnapshot, Pace, SnapshotTarget},
    },
    model::resolv,
    store::NamespaceRow,
};

/// Why a check runs, which decides where its keys go and what it confirms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Pass {
    /// Start-up: drifted keys in the ordinary lane; matching Rechecking objects confirmed.
    Startup,
    /// The resync timer, or a monitor overflow: drifted keys behind API work.
    Background,
}

impl Pass {
    /// How long each of its reading phases may pause for API calls in flight (crate::busy):
    /// at start-up not at all (the restart's Ready waits on this pass; clients polling for
    /// it would only delay it).
    fn give_way(self) -> std::time::Duration {
        match self {
            Pass::Startup => std::time::Duration::ZERO,
            Pass::Background => crate::busy::GiveWay::PASS_PHASE,
        }
    }
}

/// What the kernel holds, read for one check: per namespace name ("" the host) its
/// [`NsRef`] and snapshot, and the netns-dir files no namespace row names.
pub(super) struct View {
    /// Namespaces weft manages that could be read, and the host.
    pub spaces: HashMap<String, (NsRef, NsSnapshot)>,
    /// Files in the netns dir that no row names (another weftd's, or orphans): by file name.
    pub others: HashMap<String, NsSnapshot>,
    /// Namespaces left unread because they are quiet (`quiet`): found clean by an earlier
    /// pass, nothing heard from them since. By name; "" is the host.
    pub quiet: HashSet<String>,
    /// The id in the host namespace of each namespace read (None: the host, or no id).
    pub ids: HashMap<String, Option<i32>>,
    /// The names of the namespace files in the netns dir, whoever's (read or not).
    pub files: Vec<String>,
}

/// Where a pass's time went, for its debug line: "list 12ms, read 40 (9960 quiet, the host
/// among them) 80ms, ...".
pub(super) struct Laps {
    last: std::time::Instant,
    text: String,
}

impl Laps {
    fn new() -> Self {
        Self {
            last: std::time::Instant::now(),
            text: String::new(),
        }
    }

    /// Ends the lap `what` now.
    fn lap(&mut self, what: impl std::fmt::Display) {
        let now = std::time::Instant::now();
        if !self.text.is_empty() {
            self.text.push_str(", ");
        }
        self.text
            .push_str(&format!("{what} {:?}", now.duration_since(self.last)));
        self.last = now;
    }
}

impl std::fmt::Display for Laps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Each namespace's id in the host namespace, with the identity of the file it was asked for.
#[derive(Debug, Default)]
pub(super) struct NsIds(std::sync::Mutex<HashMap<Arc<Path>, (NsIdentity, i32)>>);

impl Controller {
    /// Runs one bulk check; queues what differs, confirms what matches (see the module doc).
    /// Falls back to queueing everything when it cannot check.
    pub(super) async fn check_all(&self, pass: Pass) {
        let started = tokio::time::Instant::now();
        let result = match pass {
            Pass::Startup => self.try_check_all(pass).await,
            Pass::Background => self.try_check_all_at_lowest_priority().await,
        };
        // The pass's lists and snapshots are freed: give their pages back (crate::alloc),
        // with the SQLite page caches (the start-up GC hands those back after the start-up
        // check): between passes the API refills only what it reads.
        if pass == Pass::Background {
            self.store().release_memory().await;
        }
        crate::nice::spawn_blocking_detached(crate::alloc::trim);
        self.inner
            .stats
            .check_passes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match result {
            Ok((matched, differ, laps)) => {
                // At start-up the GC follows the reconciles of what differed (a bridge
                // re-created, a newborn adopted). It lists the store and reads the kernel
                // itself, so it is queued only now: queued from inside the pass, it ran
                // beside the pass's own rows and snapshots (a 60 MB heap peak at 10,000
                // endpoints, heaptrack).
                if pass == Pass::Startup {
                    self.inner.queue.add(Key::Gc);
                }
                tracing::debug!(
                    ?pass,
                    matched,
                    differ,
                    elapsed = ?started.elapsed(),
                    laps = %laps,
                    "bulk check"
                )
            }
            Err(e) => {
                tracing::warn!(error = %e, "bulk check failed; reconciling everything");
                if let Err(e) = self.queue_all(pass == Pass::Background).await {
                    tracing::warn!(error = %e, "could not list objects");
                }
            }
        }
    }

    /// A periodic pass, on a thread of its own at the lowest priority (`crate::nice`). Its
    /// own CPU (a `stat` and a few lookups per namespace before the reads, resolv.conf
    /// rendering, the comparison, the GC's decisions) ran on the runtime's workers at normal
    /// priority, beside the Connects it met: at 1,000 endpoints weftd's workers ran 4.9 ms
    /// in a Connect's 3.5 ms during a pass against 2.3 in 2.2 ms idle (`perf sched`), while
    /// the pass's low-priority threads (its lists, its namespace reads) ran 0.2 ms there.
    /// What it awaits (the store, netlink) still goes through the runtime, as the lists'
    /// thread's does.
    async fn try_check_all_at_lowest_priority(
        &self,
    ) -> Result<(usize, usize, Laps), ReconcileError> {
        let c = self.clone();
        let handle = tokio::runtime::Handle::current();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("weft-check".into())
            .spawn(move || {
                crate::nice::lowest_priority();
                let _ = tx.send(handle.block_on(c.try_check_all(Pass::Background)));
            });
        match spawned {
            Ok(_) => rx.await.unwrap_or_else(|_| {
                Err(ReconcileError::Panicked(
                    "the periodic check's thread ended without an answer".into(),
                ))
            }),
            Err(e) => {
                tracing::debug!(error = %e, "no thread for the periodic check; checking here");
                self.try_check_all(Pass::Background).await
            }
        }
    }

    /// The body of [`Controller::check_all`]: (objects matching, objects queued, where the
    /// time went).
    async fn try_check_all(&self, pass: Pass) -> Result<(usize, usize, Laps), ReconcileError> {
        let mut laps = Laps::new();
        // At the lowest priority, on a thread and a connection of its own (store/lists.rs).
        let crate::store::AllRows {
            networks,
            namespaces,
            links,
            endpoints,
        } = self.store().list_all_in_background(pass.give_way()).await?;
        let add = |k: Key| match pass {
            Pass::Startup => self.inner.queue.add(k),
            Pass::Background => self.inner.queue.add_background(k),
        };
        // At start-up first (a bridge is re-made before its ports); a periodic pass queues
        // them at its end, so their reconciles do not meet a Connect that arrives while it
        // reads.
        let add_networks = || {
            for n in &networks {
                add(Key::Network(n.id.clone()));
            }
            add(Key::Firewall);
        };
        if pass == Pass::Startup {
            add_networks();
        }
        laps.lap("list");
        // At start-up nothing else runs yet: every core reads. Later, one thread at the
        // lowest priority leaves the cores to the API.
        let pace = match pass {
            Pass::Startup => Pace::AllCores,
            Pass::Background => Pace::Background,
        };
        // A periodic pass skips what stayed quiet since it was found clean (`quiet`).
        let mark = match pass {
            Pass::Startup => None,
            Pass::Background => self.inner.quiet.begin(),
        };
        let view = self.read_view(&namespaces, true, pace, mark).await?;
        laps.lap(format!(
            "read {} ({} quiet{})",
            view.spaces.len(),
            view.quiet.len(),
            if view.quiet.contains("") {
                ", the host among them"
            } else {
                ""
            }
        ));
        let resolv_stale = self
            .stale_resolv_confs(&namespaces, &networks, &endpoints, &view, pass)
            .await?;
        laps.lap("resolv.conf");
        let spaces: HashMap<String, Space> = view
            .spaces
            .iter()
            .map(|(name, (_, snap))| (name.clone(), Space::new(snap)))
            .collect();
        let d = Desired {
            namespaces: &namespaces,
            links: &links,
            networks: &networks,
            endpoints: &endpoints,
            owner: self.owner(),
            netns_dir: self.kernel().netns_dir(),
            resolv_stale: &resolv_stale,
            quiet: &view.quiet,
        };
        let verdict = compare(&d, &spaces);
        drop(spaces);
        laps.lap("compare");
        // What was read and matched throughout is quiet until the monitor hears from it.
        if let Some(mark) = mark {
            for (name, id) in &view.ids {
                if verdict.unclean.contains(name) {
                    self.inner.quiet.unclean(*id);
                } else if id.is_some() || name.is_empty() {
                    self.inner.quiet.found_clean(mark, *id);
                }
            }
        }
        // Matching namespaces are watched (the monitor hears them; adopted ones' files are
        // checked for their process's exit), as their reconcile would have made them.
        let matching: HashSet<&Key> = verdict.matching.iter().map(|(k, _, _)| k).collect();
        for ns in &namespaces {
            if matching.contains(&Key::Namespace(ns.id.clone()))
                && let Some(path) = &ns.spec.adopted_path
            {
                self.watch_adopted(&ns.id, path, ns.adopted_identity.as_deref());
            }
        }
        let confirm: Vec<(Key, Option<Key>)> = verdict
            .matching
            .iter()
            .filter(|(_, _, rechecking)| *rechecking && pass == Pass::Startup)
            .map(|(k, also, _)| (k.clone(), also.clone()))
            .collect();
        self.confirm_checked(confirm);
        for (key, why) in &verdict.differ {
            tracing::debug!(?key, why, "bulk check: differs");
            add(key.clone());
        }
        // At start-up the GC is queued by `check_all`, once this pass's data is freed.
        if pass == Pass::Background {
            let before = super::gc::Listed {
                links: &links,
                networks: &networks,
                endpoints: &endpoints,
                namespaces: &namespaces,
            };
            self.collect_garbage_in(&view, Some(before)).await?;
            laps.lap("gc");
            add_networks();
            // The objects whose echoes the monitor dropped (`quiet`): what it heard nothing
            // of, their reconciles check. Taken only now, so a pass that fails before leaves
            // them to the next.
            let echoes = self.inner.quiet.take_echoes();
            self.inner
                .stats
                .check_echoes
                .fetch_add(echoes.len() as u64, std::sync::atomic::Ordering::Relaxed);
            for key in echoes {
                add(key);
            }
        }
        Ok((verdict.matching.len(), verdict.differ.len(), laps))
    }

    /// Reads the host and every namespace of `rows` that is not being deleted and whose file
    /// names the namespace weft manages (an adopted one's recorded identity), plus the files
    /// in the netns dir no row names; with weft's routes when `routes`; at `pace`. With a
    /// pass's `mark`, the host and the namespaces the quiet book lets it skip are left
    /// unread (and listed in [`View::quiet`]).
    ///
    /// A namespace whose id in the host is not cached yet gets it before its read on a pass
    /// with a `mark` (its id decides whether it may be skipped), and after the read on one
    /// without (start-up, the garbage collector): from the host's read where its veths show
    /// it ([`ids_from_veths`]), asked of the kernel otherwise. Each ask walks
    /// every id the host has given out, so asking 10,000 namespaces one after the other
    /// took 1.4 s of a restart at 10,000 endpoints (BENCHMARKS.md, session 27), while the
    /// host's read names the ids of every endpoint's namespace anyway.
    pub(super) async fn read_view(
        &self,
        rows: &[NamespaceRow],
        routes: bool,
        pace: Pace,
        mark: Option<PassMark>,
    ) -> Result<View, ReconcileError> {
        let k = self.kernel();
        let skip = |id: Option<i32>| mark.is_some_and(|m| self.inner.quiet.may_skip(m, id));
        let mut quiet = HashSet::new();
        let mut names = Vec::new();
        let mut ids = Vec::new();
        let mut targets = Vec::new();
        if skip(None) {
            quiet.insert(String::new());
        } else {
            self.inner
                .stats
                .check_host_reads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            names.push(String::new());
            ids.push(None);
            targets.push(SnapshotTarget {
                ns: NsRef::Host,
                routes,
            });
        }
        // Namespaces whose id is taken after the read: (their place in `names`, file, identity).
        let ids_after = mark.is_none();
        let mut unknown: Vec<(usize, PathBuf, NsIdentity)> = Vec::new();
        let since = self.inner.quiet.now();
        // Each path a row names: whether it was found a live namespace.
        let mut named: HashMap<PathBuf, bool> = HashMap::new();
        for row in rows {
            let path = match &row.spec.adopted_path {
                Some(p) => p.clone(),
                None => k.named_netns_path(&row.spec.name),
            };
            named.insert(path.clone(), false);
            if row.deleting {
                continue;
            }
            // One `stat` per namespace: a file still showing the identity its id was cached
            // with is that live namespace (an unmounted file shows another file system's
            // dev:ino), so only a new or changed one gets the `statfs` check as well.
            let Ok(identity) = k.netns_identity(&path) else {
                continue;
            };
            let recorded = row.adopted_identity.as_deref();
            let id = match self.cached_nsid(&path, identity) {
                Some(_) if recorded.is_some_and(|want| identity.to_string() != want) => continue,
                Some(id) => Some(id),
                None if !super::adopted::adopted_alive(k, &path, recorded) => continue,
                None if ids_after => {
                    unknown.push((names.len(), path.clone(), identity));
                    None
                }
                // The monitor hears a namespace with an id (assigned here when it has none).
                None => self.checked_nsid(&NsRef::path(&path), identity).await,
            };
            named.insert(path.clone(), true);
            let ns = NsRef::Path(path.into());
            if id.is_some() && skip(id) {
                quiet.insert(row.spec.name.clone());
                continue;
            }
            names.push(row.spec.name.clone());
            ids.push(id);
            targets.push(SnapshotTarget { ns, routes });
        }
        // The netns dir: a live namespace a row names is known to be one; any other file
        // gets the `statfs` check.
        let mut files = Vec::new();
        let mut other_names = Vec::new();
        for name in k.netns_dir_entries() {
            let path = k.named_netns_path(&name);
            let row = named.get(&path).copied();
            if row != Some(true) && !k.is_netns(&path) {
                continue;
            }
            if row.is_none() {
                other_names.push(name.clone());
                targets.push(SnapshotTarget {
                    ns: NsRef::Path(path.into()),
                    routes: false,
                });
            }
            files.push(name);
        }
        use std::sync::atomic::Ordering::Relaxed;
        let stats = &self.inner.stats;
        stats.check_quiet.fetch_add(quiet.len() as u64, Relaxed);
        stats.check_reads.fetch_add(names.len() as u64, Relaxed);
        let mut read = k.snapshot(&targets, pace).await?.into_iter();
        let mut view = View {
            spaces: HashMap::new(),
            others: HashMap::new(),
            quiet,
            ids: HashMap::new(),
            files,
        };
        for ((name, t), id) in names.iter().zip(targets.iter()).zip(ids) {
            match read.next() {
                Some(Ok(snap)) => {
                    view.ids.insert(name.clone(), id);
                    view.spaces.insert(name.clone(), (t.ns.clone(), snap));
                }
                // Without the host (bridges, host ends) nothing can be judged.
                Some(Err(e)) if t.ns == NsRef::Host => return Err(e.into()),
                Some(Err(e)) => {
                    tracing::debug!(ns = ?t.ns, error = %e, "could not read namespace");
                    self.inner.quiet.unclean(id);
                }
                None => {}
            }
        }
        for name in other_names {
            if let Some(Ok(snap)) = read.next() {
                view.others.insert(name, snap);
            }
        }
        if !unknown.is_empty() {
            self.ids_after_read(&mut view, &names, unknown, since, pace)
                .await?;
        }
        Ok(view)
    }

    /// Gives the namespaces read without a cached id (`unknown`: their place in `names`,
    /// file, identity) their ids: from the host's read where it shows them, asked of the
    /// kernel otherwise; then the monitor hears them. What changed in one between its read
    /// and that moment was not heard, so a namespace heard of since `since` (the quiet book's
    /// moment before the read), or all of them after lost notifications, is read again.
    pub(super) async fn ids_after_read(
        &self,
        view: &mut View,
        names: &[String],
        unknown: Vec<(usize, PathBuf, NsIdentity)>,
        since: u64,
        pace: Pace,
    ) -> Result<(), ReconcileError> {
        let inner = |name: &String| view.spaces.get(name).map(|(_, snap)| snap);
        let found = ids_from_veths(
            view.spaces.get("").map(|(_, snap)| snap),
            unknown.iter().map(|(i, _, _)| inner(&names[*i])),
        );
        // An id already cached for another namespace is not taken from the veths either.
        let taken: HashSet<i32> = {
            let mine: HashSet<&Path> = unknown.iter().map(|(_, p, _)| p.as_path()).collect();
            let ids = self.inner.nsids.0.lock().unwrap_or_else(|p| p.into_inner());
            ids.iter()
                .filter(|(path, _)| !mine.contains(&***path))
                .map(|(_, (_, id))| *id)
                .collect()
        };
        let found = found
            .into_iter()
            .map(|id| id.filter(|id| !taken.contains(id)));
        let mut again = Vec::new();
        for ((i, path, identity), found) in unknown.into_iter().zip(found) {
            let ns = NsRef::path(&path);
            let id = match found {
                Some(id) => Some(self.remember_nsid(&ns, identity, id)),
                None => self.checked_nsid(&ns, identity).await,
            };
            let name = &names[i];
            if view.spaces.contains_key(name) {
                view.ids.insert(name.clone(), id);
                if id.is_some_and(|id| self.inner.quiet.heard_since(since, id)) {
                    again.push((name.clone(), ns));
                }
            }
        }
        if again.is_empty() {
            return Ok(());
        }
        let targets: Vec<SnapshotTarget> = again
            .iter()
            .map(|(name, ns)| SnapshotTarget {
                ns: ns.clone(),
                routes: view.spaces[name].1.routes.is_some(),
            })
            .collect();
        let read = self.kernel().snapshot(&targets, pace).await?;
        for ((name, _), snap) in again.into_iter().zip(read) {
            match snap {
                Ok(snap) => {
                    if let Some(entry) = view.spaces.get_mut(&name) {
                        entry.1 = snap;
                    }
                }
                Err(e) => {
                    tracing::debug!(ns = %name, error = %e, "could not read namespace again");
                    if let Some(id) = view.ids.remove(&name).flatten() {
                        self.inner.quiet.unclean(Some(id));
                    }
                    view.spaces.remove(&name);
                }
            }
        }
        Ok(())
    }

    /// The cached id of the namespace at `path`, if it was cached with the file's present
    /// `identity`.
    pub(super) fn cached_nsid(&self, path: &std::path::Path, identity: NsIdentity) -> Option<i32> {
        let ids = self.inner.nsids.0.lock().unwrap_or_else(|p| p.into_inner());
        ids.get(path)
            .and_then(|&(known, id)| (known == identity).then_some(id))
    }

    /// `ns`'s id in the host namespace (assigned if it has none, and then heard by the
    /// monitor), cached with its file's `identity`; None where there are no ids. The check
    /// reads every namespace from inside; the id is for the monitor only.
    async fn checked_nsid(&self, ns: &NsRef, identity: NsIdentity) -> Option<i32> {
        if *ns == NsRef::Host {
            return None;
        }
        if let Some(id) = self.known_nsid(ns, identity) {
            return Some(id);
        }
        let id = match self.kernel().netns_id(ns).await {
            Ok(id) => id?,
            Err(e) => {
                tracing::debug!(ns = ?ns, error = %e, "no namespace id; the monitor will not hear it");
                return None;
            }
        };
        Some(self.cache_nsid(ns, identity, id))
    }

    /// [`Controller::checked_nsid`] for an id known without asking the kernel (the host's
    /// read showed it).
    pub(super) fn remember_nsid(&self, ns: &NsRef, identity: NsIdentity, id: i32) -> i32 {
        match self.known_nsid(ns, identity) {
            Some(known) if known == id => id,
            Some(other) => {
                self.unwatch_namespace(ns);
                self.inner.quiet.forget(other);
                self.cache_nsid(ns, identity, id)
            }
            None => self.cache_nsid(ns, identity, id),
        }
    }

    /// The id cached for `ns` if it was cached with its file's present `identity`. One
    /// cached for another namespace under the same path is dropped: its id means nothing now.
    fn known_nsid(&self, ns: &NsRef, identity: NsIdentity) -> Option<i32> {
        let NsRef::Path(path) = ns else {
            return None;
        };
        let cached = self
            .inner
            .nsids
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
            .copied();
        match cached {
            Some((known, id)) if known == identity => Some(id),
            Some((_, old)) => {
                self.unwatch_namespace(ns);
                self.inner.quiet.forget(old);
                None
            }
            None => None,
        }
    }

    /// Tells the monitor namespace `ns` has `id` and caches it with the file's `identity`.
    fn cache_nsid(&self, ns: &NsRef, identity: NsIdentity, id: i32) -> i32 {
        // The monitor's copy of the path, if it has one: one allocation for both tables. An
        // entry for an earlier namespace under this path goes first (`insert` would keep its
        // key, a copy the monitor no longer holds).
        let NsRef::Path(path) = self.watch_namespace_as(ns.clone(), id) else {
            return id;
        };
        let mut ids = self.inner.nsids.0.lock().unwrap_or_else(|p| p.into_inner());
        ids.remove(&*path);
        ids.insert(path, (identity, id));
        id
    }

    /// The bulk check's own copy of `path` in its id cache, if it cached one (for tests of
    /// what the tables share).
    #[cfg(test)]
    pub(super) fn cached_nsid_path(&self, path: &Path) -> Option<Arc<Path>> {
        let ids = self.inner.nsids.0.lock().unwrap_or_else(|p| p.into_inner());
        ids.get_key_value(path).map(|(k, _)| k.clone())
    }

    /// Forgets `path`'s cached id (its namespace was deleted).
    pub(super) fn forget_nsid(&self, path: &std::path::Path) {
        let gone = self
            .inner
            .nsids
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(path);
        if let Some((_, id)) = gone {
            self.inner.quiet.forget(id);
        }
    }

    /// Named namespaces (converged, readable, not adopted) whose resolv.conf differs from
    /// what their live endpoints' networks and the host's resolv.conf make it.
    async fn stale_resolv_confs(
        &self,
        rows: &[NamespaceRow],
        networks: &[crate::store::NetworkRow],
        endpoints: &[crate::store::EndpointRow],
        view: &View,
        pass: Pass,
    ) -> Result<HashSet<String>, ReconcileError> {
        let mut stale = HashSet::new();
        let Some(settings) = self.inner.resolv.get() else {
            return Ok(stale);
        };
        let host = super::resolv::read_host_resolv_conf(&settings.host_resolv_conf).await;
        let nets: HashMap<&str, &crate::store::NetworkRow> =
            networks.iter().map(|n| (n.id.as_str(), n)).collect();
        // Live endpoints per namespace, in connect order (the list's order).
        let mut servers: HashMap<&str, Vec<IpAddr>> = HashMap::new();
        for e in endpoints.iter().filter(|e| !e.deleting) {
            if let Some(n) = nets.get(e.network_id.as_str()) {
                servers
                    .entry(e.namespace.as_str())
                    .or_default()
                    .extend(resolv::endpoint_dns_servers(&n.spec, &e.addresses));
            }
        }
        let mut names = Vec::new();
        let mut wants = Vec::new();
        for row in rows {
            let name = row.spec.name.as_str();
            let readable = view.spaces.contains_key(name) || view.quiet.contains(name);
            if row.spec.adopted_path.is_some() || row.deleting || !readable {
                continue;
            }
            let of = servers.get(name).map_or(&[][..], Vec::as_slice);
            wants.push(resolv::render(name, of, &host));
            names.push(name.to_string());
        }
        let have = settings
            .etc
            .read_resolv_confs(names.clone(), pass.give_way())
            .await?;
        for ((name, want), have) in names.into_iter().zip(wants).zip(have) {
            if have.as_deref() != Some(want.as_str()) {
                stale.insert(name);
            }
        }
        Ok(stale)
    }
}

/// The ids in the host of namespaces read from inside (`spaces`, None where unread), from
/// the host's read (`host`), one answer per namespace in order. A host veth shows the id
/// of its peer's namespace (`IFLA_LINK_NETNSID`) and its peer's ifindex there; a namespace
/// whose veth names that host veth as its peer, and is itself the ifindex the host veth
/// names, holds that peer, so the id is its own. Only veths count (another kind's
/// `IFLA_LINK` names a lower device). An id two namespaces would take is left to the kernel
/// for both (a copy of a namespace's interfaces elsewhere cannot pass for it), and so is a
/// namespace with no such veth; the caller also leaves out ids cached for other namespaces.
pub(super) fn ids_from_veths<'a>(
    host: Option<&NsSnapshot>,
    spaces: impl Iterator<Item = Option<&'a NsSnapshot>>,
) -> Vec<Option<i32>> {
    let Some(host) = host else {
        return spaces.map(|_| None).collect();
    };
    // Host veth ifindex -> (its peer's ifindex, the peer's namespace's id).
    // Only veths: another kind's IFLA_LINK names a lower device, not a peer that names it
    // back (a macvlan on a host veth could share the number of that veth's peer).
    let veth = |l: &&crate::kernel::LinkState| l.kind.as_deref() == Some("veth");
    let peers: HashMap<u32, (u32, i32)> = host
        .links
        .iter()
        .filter(veth)
        .filter_map(|l| Some((l.index, (l.link?, l.link_netnsid?))))
        .collect();
    let found: Vec<Option<i32>> = spaces
        .map(|snap| {
            let mut ids = snap?.links.iter().filter(veth).filter_map(|l| {
                let (peer_of_host_end, id) = peers.get(&l.link?)?;
                (l.link_netnsid.is_some() && *peer_of_host_end == l.index).then_some(*id)
            });
            let id = ids.next()?;
            ids.all(|other| other == id).then_some(id)
        })
        .collect();
    let mut takers: HashMap<i32, usize> = HashMap::new();
    for id in found.iter().flatten() {
        *takers.entry(*id).or_default() += 1;
    }
    found
        .into_iter()
        .map(|id| id.filter(|id| takers[id] == 1))
        .collect()
}
