//! Reconciliation: a keyed work queue, a pool of workers that make the kernel match the store,
//! a periodic resync, and the waiting that lets a request answer with the converged status.
//!
//! Triggers: API writes, start-up and the resync timer (the bulk check, `check`: what differs
//! from one read of each namespace, plus the networks and the firewall), and the
//! reconcilers themselves (a re-created namespace re-queues its links; a re-created bridge
//! re-queues its ports). A reconcile observes first and writes only the difference, so a
//! converged host sees no kernel writes; it writes status only after the kernel was checked,
//! and only when the status changed.
//!
//! # Where things are
//! - [`Controller`] (this file): what the workers, timers and the API share: the store, the
//!   kernel (a [`KernelOps`] trait object), the queue, the events, and the caches and
//!   counters; the timers (resync, firewall check); the waiting a request does.
//! - `driver`: one worker step for any key: the kind's reconciler, the status it leads to,
//!   [`error_policy`], drift counting, panics caught.
//! - `namespace`, `link`, `network`: one reconciler per kind (networks and endpoints share
//!   `network`), and the firewall key.
//! - `resolv`: the resolv.conf of each namespace weft creates, a step of the namespace and
//!   endpoint reconciles.
//! - `dryrun`: the `plan_*` methods a `dry_run` request calls, the same converge code over a
//!   [`crate::kernel::DryRun`].
//! - `adopted`: adopted namespaces whose process exited: noticed, Failed, their endpoints'
//!   leases and ports released, weft's sockets into them dropped.
//! - `check` (the bulk check) and `drift` (its pure comparison).
//! - `quiet`: which namespaces the periodic check may leave unread (nothing heard from them
//!   since a check found them clean).
//! - `monitor` (netlink notifications -> keys), `gc` (orphans), `retire` (the veth reaper),
//!   `recheck` (a restart's confirmations in batches), `queue`, `events`, `error`.
//!
//! # Order
//! The bulk check queues networks and the firewall first (bridges before their ports), then
//! what differs; start-up queues the GC last. When the check cannot run, everything is queued:
//! each namespace followed by what lives in it (its socket is then still cached), then the
//! rest, then the GC. A key is never reconciled twice at once, and the resync's keys
//! wait behind everything the API queued.

mod adopted;
mod check;
mod drift;
mod driver;
mod dryrun;
mod error;
pub mod events;
mod fault;
mod gc;
mod link;
mod monitor;
mod namespace;
mod network;
mod prepare;
pub mod queue;
mod quiet;
mod recheck;
mod resolv;
mod retire;

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

pub use error::{Action, ReconcileError, Retry, error_policy};
pub use events::{Event, Events, Key};
pub use prepare::Outcome as PrepareOutcome;
use queue::WorkQueue;
pub use resolv::ResolvSettings;
pub use retire::{
    ONE_BY_ONE_UP_TO, REAP_CHUNK, REAP_GATHER, RETIRED_GROUP, RETIRED_GROUPS, is_retired_group,
};
use tokio::{sync::broadcast::error::RecvError, task::JoinSet, time::Instant};

use crate::{
    kernel::firewall::PortMapping,
    kernel::{KernelOps, NsRef},
    model::Phase,
    store::{Store, StoreError},
};

/// The controller: store, kernel, queue and events, shared by the API and the workers.
#[derive(Clone, Debug)]
pub struct Controller {
    inner: Arc<Inner>,
}

/// What the controller holds. The workers, timers, the monitor and the API all share it.
#[derive(Debug)]
struct Inner {
    /// The desired state, and the status the driver writes.
    store: Store,
    /// The kernel every reconcile acts on (the real one; the fake in unit tests).
    kernel: Arc<dyn KernelOps>,
    /// Keys to reconcile: never one key twice at once, duplicates coalesced, retries backed
    /// off, background work (the resync) behind API work.
    queue: WorkQueue<Key>,
    /// Status changes, for waiting requests and Watch streams.
    events: Events,
    /// Serialises firewall writes, and caches the port-map elements the kernel holds.
    firewall: tokio::sync::Mutex<Option<HashSet<PortMapping>>>,
    /// The networks the firewall's structure last matched (after a check or a rewrite); None
    /// when unknown. A network's reconcile skips the structure when its networks are these:
    /// the firewall key checks it every second anyway.
    firewall_networks: std::sync::Mutex<Option<Vec<crate::kernel::firewall::FirewallNetwork>>>,
    /// The namespaces the netlink monitor hears, by id.
    watched: std::sync::Mutex<monitor::Watched>,
    /// Counters, for GetSystemInfo.
    stats: Stats,
    /// Turns true on shutdown; the timer loops watch it.
    stopping: tokio::sync::watch::Sender<bool>,
    /// Firewall reconciles run so far (the first one's writes are set-up, not drift).
    firewall_runs: std::sync::atomic::AtomicU64,
    /// When each key last finished a reconcile (for telling weft's own netlink echoes).
    finished: std::sync::Mutex<driver::Finished>,
    /// Retired endpoint veths waiting to be deleted in a batch.
    reaper: retire::Reaper,
    /// Endpoint veths Connects made beside their transactions, for the first reconciles.
    prepared: prepare::Prepared,
    /// Objects found converged after a restart, waiting to be confirmed Ready in a batch.
    rechecked: recheck::Rechecked,
    /// Ready adopted namespaces, whose files are checked for their process's exit.
    adopted: adopted::Adopted,
    /// Where the namespaces' resolv.conf files go (unset: none are written).
    resolv: std::sync::OnceLock<ResolvSettings>,
    /// One lock per namespace while its resolv.conf is converged.
    resolv_locks: resolv::ResolvLocks,
    /// Each managed namespace's id in the host namespace, for the bulk check's reads.
    nsids: check::NsIds,
    /// Which namespaces the periodic check may leave unread (nothing heard since they were
    /// found clean).
    quiet: quiet::Quiet,
    /// Who this weftd is among those sharing a netns directory (see
    /// [`crate::model::namespace_mark`]); unset: "" (the plain mark).
    owner: std::sync::OnceLock<String>,
}

/// What the reconciler has done since start-up.
#[derive(Debug, Default)]
pub struct Stats {
    /// Reconciles run.
    pub reconciles: std::sync::atomic::AtomicU64,
    /// Reconciles that failed.
    pub failures: std::sync::atomic::AtomicU64,
    /// Reconciles that found an already converged object changed in the kernel and repaired it.
    pub drift_repairs: std::sync::atomic::AtomicU64,
    /// Orphaned kernel objects (marked by weft, owned by no object) removed.
    pub orphans_removed: std::sync::atomic::AtomicU64,
    /// Bulk checks finished (the start-up one, then one per resync period), whatever they
    /// found; one that could not read falls back to queueing everything and counts too.
    pub check_passes: std::sync::atomic::AtomicU64,
    /// Namespaces (the host included) the bulk checks read.
    pub check_reads: std::sync::atomic::AtomicU64,
    /// Namespaces (the host included) the periodic checks left unread as quiet (`quiet`).
    pub check_quiet: std::sync::atomic::AtomicU64,
    /// Bulk checks that read the host namespace (of those counted in `check_reads`).
    pub check_host_reads: std::sync::atomic::AtomicU64,
    /// Objects the periodic checks queued because the monitor took a change to them for the
    /// echo of their own reconcile and left it unheard (`quiet`).
    pub check_echoes: std::sync::atomic::AtomicU64,
    /// Dumps of every host interface the reaper took before a group delete (one per batch
    /// of more than a few retired veths).
    pub reaper_host_dumps: std::sync::atomic::AtomicU64,
    /// GC runs that listed the whole store (the GC's own; a resync's when the rows its check
    /// listed and a few lookups did not explain what it read).
    pub gc_store_lists: std::sync::atomic::AtomicU64,
    /// DNS queries the resolver received (counted by [`crate::dns`]).
    pub dns_queries: std::sync::atomic::AtomicU64,
    /// DNS queries answered from weft's own records, NXDOMAIN and NODATA included.
    pub dns_answers: std::sync::atomic::AtomicU64,
    /// DNS queries forwarded upstream.
    pub dns_forwards: std::sync::atomic::AtomicU64,
    /// Times the resolver loaded every network and endpoint into its index (at start-up, and
    /// after a burst too large to read object by object or events it missed).
    pub dns_index_loads: std::sync::atomic::AtomicU64,
    /// Reconciles and their latencies by kind, for `--metrics`.
    pub by_kind: crate::metrics::ReconcileMetrics,
}

/// What a wait ended with.
#[derive(Debug, PartialEq, Eq)]
pub enum WaitOutcome {
    /// The object reached Ready or Failed at the generation waited for.
    Settled,
    /// The object's row is gone (a delete finished).
    Gone,
    /// The deadline passed first.
    TimedOut,
}

impl Controller {
    /// Sets who this weftd is (its host namespace's `<dev>-<ino>`), for the marks on the
    /// namespaces it creates and for telling its orphans from another weftd's. Once.
    pub fn set_owner(&self, owner: String) {
        let _ = self.inner.owner.set(owner);
    }

    /// This weftd's owner id; "" when unset.
    pub fn owner(&self) -> &str {
        self.inner.owner.get().map_or("", String::as_str)
    }

    /// A controller over `store` and `kernel` (the real [`crate::kernel::Kernel`], or a fake
    /// in unit tests).
    pub fn new(store: Store, kernel: Arc<dyn KernelOps>) -> Self {
        let queue = WorkQueue::new(Duration::from_millis(100), Duration::from_secs(30));
        // A status write sent behind its answer that did not land: its reconcile again.
        store.on_failed_status_write(Box::new({
            let queue = queue.clone();
            move |table, id| {
                if let Some(key) = Key::of_row(table, id) {
                    queue.add(key);
                }
            }
        }));
        Self {
            inner: Arc::new(Inner {
                store,
                kernel,
                queue,
                events: Events::new(),
                firewall: tokio::sync::Mutex::new(None),
                firewall_networks: std::sync::Mutex::new(None),
                watched: Default::default(),
                stats: Stats::default(),
                stopping: tokio::sync::watch::channel(false).0,
                finished: std::sync::Mutex::new(driver::Finished::default()),
                firewall_runs: std::sync::atomic::AtomicU64::new(0),
                reaper: retire::Reaper::default(),
                prepared: prepare::Prepared::default(),
                rechecked: recheck::Rechecked::default(),
                adopted: Default::default(),
                resolv: std::sync::OnceLock::new(),
                owner: std::sync::OnceLock::new(),
                resolv_locks: Default::default(),
                nsids: Default::default(),
                quiet: Default::default(),
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The kernel.
    pub fn kernel(&self) -> &dyn KernelOps {
        &*self.inner.kernel
    }

    /// The kernel, shared (for a [`crate::kernel::DryRun`] over it).
    pub fn kernel_arc(&self) -> Arc<dyn KernelOps> {
        self.inner.kernel.clone()
    }

    /// The event broadcast.
    pub fn events(&self) -> &Events {
        &self.inner.events
    }

    /// Triggers a reconcile of `key`.
    pub fn enqueue(&self, key: Key) {
        self.inner.queue.add(key);
    }

    /// Queues every object: networks and the firewall, then each namespace with the links and
    /// endpoints in it, then the rest. In the background lane (behind API work) when
    /// `background`.
    pub async fn enqueue_all(&self) -> Result<(), StoreError> {
        self.queue_all(false).await
    }

    /// The start-up re-check: the bulk check (`check`) reads the kernel once per namespace;
    /// what matches is confirmed Ready (it was Rechecking), what differs is reconciled, then
    /// the garbage collector runs. Everything is reconciled if the check cannot run.
    pub async fn check_at_startup(&self) {
        self.check_all(check::Pass::Startup).await;
    }

    /// Queues every object in the order the module docs give; in the background lane for the
    /// resync, so API work goes first.
    async fn queue_all(&self, background: bool) -> Result<(), StoreError> {
        let add = |k| {
            if background {
                self.inner.queue.add_background(k)
            } else {
                self.inner.queue.add(k)
            }
        };
        // Networks (bridges in the host) and the firewall first; then each namespace followed
        // by what lives in it, so its socket is still cached when they need it (only 64 are
        // kept: namespaces first and endpoints after would open each socket twice).
        for n in self.store().list_networks().await? {
            add(Key::Network(n.id));
        }
        add(Key::Firewall);
        let mut inside: HashMap<String, Vec<Key>> = HashMap::new();
        let mut host_links = Vec::new();
        for l in self.store().list_links().await? {
            match l.spec.ends().iter().find(|e| !e.namespace.is_empty()) {
                Some(e) => inside
                    .entry(e.namespace.clone())
                    .or_default()
                    .push(Key::Link(l.id.clone())),
                None => host_links.push(Key::Link(l.id.clone())),
            }
        }
        for e in self.store().list_endpoints(None).await? {
            inside
                .entry(e.namespace.clone())
                .or_default()
                .push(Key::Endpoint(e.id));
        }
        for ns in self.store().list_namespaces().await? {
            add(Key::Namespace(ns.id));
            for k in inside.remove(&ns.spec.name).unwrap_or_default() {
                add(k);
            }
        }
        for k in host_links.into_iter().chain(inside.into_values().flatten()) {
            add(k);
        }
        add(Key::Gc);
        Ok(())
    }

    /// Starts `n` workers; they stop after [`Controller::shutdown`]. Each takes one key at a
    /// time from the queue and runs the driver's worker step for it; a panic in a reconcile
    /// does not end a worker.
    pub fn spawn_workers(&self, n: usize, set: &mut JoinSet<()>) {
        for i in 0..n.max(1) {
            let c = self.clone();
            set.spawn(async move {
                while let Some(key) = c.inner.queue.next().await {
                    c.work(i, key).await;
                }
            });
        }
    }

    /// Starts the periodic resync: every `period` seconds (0: never), the bulk check
    /// (`check`): one read of each namespace compared in memory with the store, and only
    /// what differs queued, in the background lane. A new period (SIGHUP) restarts the wait.
    pub fn spawn_resync(
        &self,
        mut period: tokio::sync::watch::Receiver<u64>,
        set: &mut JoinSet<()>,
    ) {
        let c = self.clone();
        set.spawn(async move {
            let mut stopping = c.inner.stopping.subscribe();
            // Once nobody can change the period, it stays what it is.
            let mut fixed = false;
            loop {
                let secs = *period.borrow_and_update();
                let due = async {
                    match secs {
                        0 => std::future::pending().await,
                        s => tokio::time::sleep(Duration::from_secs(s)).await,
                    }
                };
                let changed = async {
                    match fixed {
                        true => std::future::pending().await,
                        false => period.changed().await.is_ok(),
                    }
                };
                tokio::select! {
                    () = due => {
                        tracing::debug!("resync");
                        c.forget_port_cache().await;
                        c.check_all(check::Pass::Background).await;
                    }
                    open = changed => fixed = !open,
                    _ = async { stopping.wait_for(|s| *s).await.is_ok() } => return,
                }
            }
        });
    }

    /// Runs `each` every `period`, the first time at `start`, until the controller stops (a
    /// late tick is delayed, never bunched).
    pub(super) fn spawn_every<F, Fut>(
        &self,
        set: &mut JoinSet<()>,
        start: Instant,
        period: Duration,
        each: F,
    ) where
        F: Fn(Controller) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let c = self.clone();
        set.spawn(async move {
            let mut tick = tokio::time::interval_at(start, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut stopping = c.inner.stopping.subscribe();
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopping.wait_for(|s| *s) => return,
                }
                each(c.clone()).await;
            }
        });
    }

    /// Starts the event-driven repair: the netlink monitor (it hears a namespace once that is
    /// Ready), the check of adopted namespaces' files (`adopted`), and a check of the firewall every
    /// `firewall_every` (a few cheap reads; nftables has no cheap change feed for this).
    pub fn spawn_drift_watch(&self, firewall_every: Duration, set: &mut JoinSet<()>) {
        self.spawn_monitor(set);
        self.spawn_liveness(set);
        self.spawn_every(set, Instant::now(), firewall_every, |c| async move {
            c.enqueue(Key::Firewall);
        });
    }

    /// Turns true when weftd shuts down (for background loops outside the controller).
    pub fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.stopping.subscribe()
    }

    /// Stops handing out work; workers exit after their current key.
    pub fn shutdown(&self) {
        self.inner.stopping.send_replace(true);
        self.inner.queue.close();
    }

    /// Starts a task that, each time `wake` is notified, waits `gather` (so more work joins
    /// the batch) and runs `flush`; at shutdown it runs `flush` once more and ends. The reaper
    /// and the re-check confirmations are such batches.
    fn spawn_batcher<F, Fut>(
        &self,
        set: &mut JoinSet<()>,
        wake: fn(&Inner) -> &tokio::sync::Notify,
        gather: Duration,
        flush: F,
    ) where
        F: Fn(Controller) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let c = self.clone();
        set.spawn(async move {
            let mut stopping = c.inner.stopping.subscribe();
            loop {
                let stop = tokio::select! {
                    _ = wake(&c.inner).notified() => false,
                    _ = stopping.wait_for(|s| *s) => true,
                };
                if !stop {
                    tokio::time::sleep(gather).await;
                }
                flush(c.clone()).await;
                if stop {
                    return;
                }
            }
        });
    }

    /// True if `key` finished a reconcile less than `window` ago (at most
    /// [`driver::Finished::FORGET_AFTER`]).
    pub(crate) fn reconciled_within(&self, key: &Key, window: Duration) -> bool {
        self.inner
            .finished
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .within(key, window)
    }

    /// Keys waiting in the queue.
    pub fn queue_depth(&self) -> usize {
        self.inner.queue.len()
    }

    /// Counters since start-up.
    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// Resolves a namespace name to where weft acts: "" is the host; otherwise the namespace
    /// must be recorded and its file must be a live network namespace. Both failures are
    /// [`ReconcileError::Waiting`]: the namespace's own reconcile is about to make it, and
    /// re-queues what lives in it when it does.
    pub(crate) async fn ns_ref(&self, name: &str) -> Result<NsRef, ReconcileError> {
        if name.is_empty() {
            return Ok(NsRef::Host);
        }
        let place =
            self.store().namespace_place(name).await?.ok_or_else(|| {
                ReconcileError::transient(format!("namespace {name:?} is not known"))
            })?;
        let path = match place.adopted_path {
            Some(p) => p,
            None => self.kernel().netns_dir().join(name),
        };
        if !self.kernel().is_netns(&path) {
            return Err(ReconcileError::transient(format!(
                "namespace {name:?} is not ready yet"
            )));
        }
        if !adopted::same_namespace(self.kernel(), &path, place.adopted_identity.as_deref()) {
            // Its path names another namespace now: never follow it there. Transient, as a
            // file that vanished: an endpoint's reconcile then releases what it held.
            return Err(ReconcileError::transient(adopted::gone_message(&path)));
        }
        Ok(NsRef::Path(path.into()))
    }

    /// Waits until the object `key` has settled at `generation` (Ready or Failed), is gone, or
    /// `deadline` passes. `rx` must have been subscribed before the change was enqueued.
    pub async fn wait(
        &self,
        key: &Key,
        generation: i64,
        deadline: Instant,
        mut rx: tokio::sync::broadcast::Receiver<Event>,
    ) -> Result<WaitOutcome, StoreError> {
        loop {
            let status = match key {
                Key::Namespace(id) => self.store().namespace_by_id(id).await?.map(|r| r.status),
                Key::Link(id) => self.store().link_by_id(id).await?.map(|r| r.status),
                Key::Network(id) => self.store().network_by_id(id).await?.map(|r| r.status),
                Key::Endpoint(id) => self.store().endpoint_by_id(id).await?.map(|r| r.status),
                Key::Firewall | Key::Gc => return Ok(WaitOutcome::Settled),
            };
            match status {
                None => return Ok(WaitOutcome::Gone),
                Some(s)
                    if s.observed_generation >= generation
                        && matches!(s.phase, Phase::Ready | Phase::Failed) =>
                {
                    return Ok(WaitOutcome::Settled);
                }
                Some(_) => {}
            }
            loop {
                tokio::select! {
                    ev = rx.recv() => match ev {
                        Ok(ev) if &ev.key == key => break,
                        Ok(_) => continue,
                        Err(RecvError::Lagged(_)) => break,
                        Err(RecvError::Closed) => return Ok(WaitOutcome::TimedOut),
                    },
                    _ = tokio::time::sleep_until(deadline) => return Ok(WaitOutcome::TimedOut),
                }
            }
        }
    }
}
#[cfg(test)]
mod tests;
