//! The driver: runs one reconcile for a key, the same way for every kind, and is the one
//! place that writes status.
//!
//! Each kind of object has a [`Reconciler`] (namespace.rs, link.rs, network.rs): it fetches
//! the object, and either converges it (`reconcile`, returning an [`Action`] and what it
//! observed) or, when the object is being deleted, removes what it made (`cleanup`). It never
//! writes status and never decides a retry. The driver then:
//! 1. turns the outcome into a status: Ready at the object's generation, or a failure that
//!    reads Pending for the first transient attempts (a short race, such as a link queued
//!    before its namespace exists, never shows as Failed) and Failed after;
//! 2. writes it only when it changed (or hands a restart's re-check to the batch flusher),
//!    and notifies the object's watchers;
//! 3. asks [`error_policy`] whether to retry, counts drift repairs, and tells the queue.
//!
//! A panic inside a reconcile is caught here: it is logged with the key, the object is marked
//! Failed with a message saying so, the key leaves the in-flight set and is retried with
//! backoff, and the worker lives on.
//!
//! # Drift
//! Whether a reconcile repaired drift is read, not told: the object was converged before
//! (Ready, or Rechecking, at its current generation) and the reconcile made kernel writes
//! (counted per task by [`crate::kernel::count_writes`]). Such a reconcile is counted in
//! `drift_repairs` and logged; a reconcile of a new generation never is.
//!
//! # Testing
//! [`Controller::work`] is the unit the tests drive: with the fake kernel and a real SQLite
//! file, one call is one worker step, and what it leaves (kernel state, stored status, queue
//! counters) is what a user would later see.

use std::{
    borrow::Borrow, panic::AssertUnwindSafe, sync::atomic::Ordering::Relaxed, time::Duration,
};

use async_trait::async_trait;
use futures::FutureExt;
use tokio::time::Instant;
use tracing::Instrument;

use super::{Action, Controller, Key, ReconcileError, Retry, error_policy};
use crate::{
    kernel::KernelOps,
    model::{Phase, Status},
    store::{EndpointRow, Kind, LinkRow, NamespaceRow, NetworkRow},
};

/// After this many consecutive transient failures an object reports Failed (it is still
/// retried); before, it stays Pending.
pub(super) const FAILED_AFTER_ATTEMPTS: u32 = 3;

/// What a reconciler works with: the controller (store, events, queue) and the kernel to act
/// on, passed explicitly so a reconcile can be run against any kernel.
pub(super) struct Ctx<'a> {
    /// The controller: store, events, queue, caches.
    pub ctl: &'a Controller,
    /// The kernel the converge code reads and changes (the controller's; the firewall and
    /// reaper helpers use the controller's kernel directly).
    pub kernel: &'a dyn KernelOps,
}

/// What a successful reconcile returns: the next [`Action`] and what it observed.
pub(super) type Outcome<O> = Result<(Action, O), ReconcileError>;

/// The bookkeeping every stored object has, as the driver reads it.
pub(super) trait Tracked {
    /// The status stored now.
    fn status(&self) -> &Status;
    /// The spec's generation.
    fn generation(&self) -> i64;
    /// Marked for deletion.
    fn deleting(&self) -> bool;
}

/// Implements [`Tracked`] for row types with `status`, `generation` and `deleting` fields.
macro_rules! tracked {
    ($($row:ty),*) => {$(
        impl Tracked for $row {
            fn status(&self) -> &Status {
                &self.status
            }
            fn generation(&self) -> i64 {
                self.generation
            }
            fn deleting(&self) -> bool {
                self.deleting
            }
        }
    )*};
}
tracked!(NamespaceRow, LinkRow, NetworkRow, EndpointRow);

/// One kind of object's reconcile logic (kube-runtime's shape, without its streams).
///
/// Reading the object, deleting its row and writing its status are the generic store's
/// ([`Kind`]); a kind says only how to converge and how to clean up.
#[async_trait]
pub(super) trait Reconciler: Send + Sync {
    /// The stored object (its row).
    type Object: Kind + Tracked + Sync;
    /// What a reconcile observes and stores beside the status.
    type Observed: PartialEq + Send + Sync + Borrow<<Self::Object as Kind>::Observed>;

    /// What the stored object says was observed last time.
    fn observed(&self, obj: &Self::Object) -> Self::Observed;

    /// What to store as observed when a reconcile failed: by default what was stored.
    fn observed_on_error(&self, obj: &Self::Object, _ctx: &Ctx) -> Self::Observed {
        self.observed(obj)
    }

    /// Makes the kernel match the object; returns what to do next and what it observed.
    async fn reconcile(&self, obj: &Self::Object, ctx: &Ctx) -> Outcome<Self::Observed>;

    /// Removes what the object made in the kernel (it is being deleted).
    async fn cleanup(&self, obj: &Self::Object, ctx: &Ctx) -> Result<(), ReconcileError>;

    /// Another key whose watchers hear of this object's changes (an endpoint's network).
    fn also_notify(&self, _obj: &Self::Object) -> Option<Key> {
        None
    }
}

/// A reconcile's result as the worker sees it.
pub(super) struct Ran {
    /// What the reconcile returned.
    pub result: Result<Action, ReconcileError>,
    /// The object was converged before this reconcile (so writes it made repaired drift).
    pub converged_before: bool,
}

/// The status to record for a failed attempt.
pub(super) fn failed_status(
    err: &ReconcileError,
    attempt: u32,
    generation: i64,
    previous: &Status,
) -> Status {
    if error_policy(err) == Retry::Backoff && attempt < FAILED_AFTER_ATTEMPTS {
        Status {
            phase: Phase::Pending,
            observed_generation: previous.observed_generation,
            message: err.to_string(),
        }
    } else {
        Status {
            phase: Phase::Failed,
            observed_generation: generation,
            message: err.to_string(),
        }
    }
}

/// The text of a caught panic.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-text payload".into())
}

impl Controller {
    /// Runs one reconcile of `key` (a worker's step): the reconcile, its status, its retry.
    /// Never panics: a panic in the reconcile is caught and handled as a failure.
    pub(super) async fn work(&self, worker: usize, key: Key) {
        let attempt = self.inner.queue.failures(&key) + 1;
        let span = tracing::debug_span!(
            "reconcile",
            worker,
            kind = key.kind(),
            key = key.id(),
            attempt
        );
        let started = Instant::now();
        let run = AssertUnwindSafe(self.run_key(&key, attempt)).catch_unwind();
        let (ran, writes) = crate::kernel::count_writes(
            async {
                match run.await {
                    Ok(ran) => ran,
                    Err(panic) => self.panicked(&key, panic_message(&*panic)).await,
                }
            }
            .instrument(span.clone()),
        )
        .await;
        let _e = span.enter();
        let stats = &self.inner.stats;
        stats.reconciles.fetch_add(1, Relaxed);
        stats
            .by_kind
            .observe(key.kind(), ran.result.is_ok(), started.elapsed());
        self.note_finished(&key);
        match ran.result {
            Ok(action) => {
                if ran.converged_before && writes > 0 {
                    stats.drift_repairs.fetch_add(1, Relaxed);
                    tracing::info!(writes, "repaired drift");
                }
                tracing::debug!(elapsed = ?started.elapsed(), writes, "converged");
                self.inner.queue.done(&key);
                if let Action::Requeue(after) = action {
                    self.inner.queue.add_after(key, after);
                }
            }
            Err(e) => {
                stats.failures.fetch_add(1, Relaxed);
                match error_policy(&e) {
                    Retry::Backoff => {
                        let (n, delay) = self.inner.queue.retry(&key);
                        tracing::info!(error = %e, attempt = n, retry_in = ?delay, "reconcile failed; retrying");
                    }
                    Retry::AwaitChange => {
                        tracing::warn!(error = %e, "reconcile failed; waiting for a change");
                        self.inner.queue.done(&key);
                    }
                }
            }
        }
    }

    /// A caught panic: logged with the key, the object marked Failed, handled as a failure
    /// that is retried with backoff.
    async fn panicked(&self, key: &Key, message: String) -> Ran {
        tracing::error!(?key, panic = %message, "reconcile panicked; the worker carries on");
        let err = ReconcileError::Panicked(message);
        let status = Status {
            phase: Phase::Failed,
            observed_generation: 0,
            message: err.to_string(),
        };
        let marked = AssertUnwindSafe(self.mark_failed(key, &status))
            .catch_unwind()
            .await;
        if !matches!(marked, Ok(Ok(()))) {
            tracing::warn!(?key, "could not mark the object Failed after a panic");
        }
        Ran {
            result: Err(err),
            converged_before: false,
        }
    }

    /// Records the time `key` finished a reconcile (for telling weft's own netlink echoes).
    fn note_finished(&self, key: &Key) {
        self.inner
            .finished
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .note(key, Instant::now());
    }

    /// Runs the reconciler of `key`'s kind.
    async fn run_key(&self, key: &Key, attempt: u32) -> Ran {
        let ctx = Ctx {
            ctl: self,
            kernel: self.kernel(),
        };
        match key {
            Key::Namespace(id) => {
                drive(&super::namespace::Namespaces, &ctx, key, id, attempt).await
            }
            Key::Link(id) => drive(&super::link::Links, &ctx, key, id, attempt).await,
            Key::Network(id) => drive(&super::network::Networks, &ctx, key, id, attempt).await,
            Key::Endpoint(id) => drive(&super::network::Endpoints, &ctx, key, id, attempt).await,
            Key::Firewall => self.reconcile_firewall().await,
            Key::Gc => {
                let result = self.collect_garbage().await.map(|()| Action::AwaitChange);
                // It read every namespace (at start-up, a second pass over the kernel after
                // the check's): give its pages back, as after a bulk check (crate::alloc),
                // with the SQLite page caches its and the check's reads filled.
                self.store().release_memory().await;
                crate::nice::spawn_blocking_detached(crate::alloc::trim);
                Ran {
                    result,
                    converged_before: false,
                }
            }
        }
    }

    /// Writes `status` (Failed, at the object's generation) for `key`'s object.
    async fn mark_failed(&self, key: &Key, status: &Status) -> Result<(), ReconcileError> {
        let ctx = Ctx {
            ctl: self,
            kernel: self.kernel(),
        };
        match key {
            Key::Namespace(id) => fail(&super::namespace::Namespaces, &ctx, key, id, status).await,
            Key::Link(id) => fail(&super::link::Links, &ctx, key, id, status).await,
            Key::Network(id) => fail(&super::network::Networks, &ctx, key, id, status).await,
            Key::Endpoint(id) => fail(&super::network::Endpoints, &ctx, key, id, status).await,
            Key::Firewall | Key::Gc => Ok(()),
        }
    }
}

/// One reconcile of object `id` of `r`'s kind: cleanup or converge, then status.
async fn drive<R: Reconciler>(r: &R, ctx: &Ctx<'_>, key: &Key, id: &str, attempt: u32) -> Ran {
    let result = drive_inner(r, ctx, key, id, attempt).await;
    match result {
        Ok((result, converged_before)) => Ran {
            result,
            converged_before,
        },
        Err(e) => Ran {
            result: Err(e),
            converged_before: false,
        },
    }
}

/// The body of [`drive`]: `Err` only for a failure before the reconcile ran (reading the
/// object) or while writing its status; the reconcile's own outcome is the inner result.
async fn drive_inner<R: Reconciler>(
    r: &R,
    ctx: &Ctx<'_>,
    key: &Key,
    id: &str,
    attempt: u32,
) -> Result<(Result<Action, ReconcileError>, bool), ReconcileError> {
    let store = ctx.ctl.store();
    let Some(obj) = store.by_id::<R::Object>(id).await? else {
        return Ok((Ok(Action::AwaitChange), false));
    };
    let key = key.clone();
    let converged_before = obj.status().was_converged(obj.generation());
    if obj.deleting() {
        r.cleanup(&obj, ctx).await?;
        if store.delete_row::<R::Object>(id).await? {
            ctx.ctl.events().send(key, true);
            if let Some(also) = r.also_notify(&obj) {
                ctx.ctl.events().send(also, false);
            }
        }
        return Ok((Ok(Action::AwaitChange), false));
    }
    let (status, observed, outcome) = match r.reconcile(&obj, ctx).await {
        Ok((action, observed)) => (
            Status {
                phase: Phase::Ready,
                observed_generation: obj.generation(),
                message: String::new(),
            },
            Some(observed),
            Ok(action),
        ),
        Err(e) => (
            failed_status(&e, attempt, obj.generation(), obj.status()),
            None,
            Err(e),
        ),
    };
    let before = r.observed(&obj);
    let observed = observed.unwrap_or_else(|| r.observed_on_error(&obj, ctx));
    let unchanged = observed == before;
    let also = r.also_notify(&obj);
    let rechecked =
        ctx.ctl
            .confirm_if_rechecked(&key, obj.status(), &status, unchanged, also.clone());
    if !rechecked
        && store
            .set_status::<R::Object>(id, &status, observed.borrow())
            .await?
    {
        ctx.ctl.events().send_status(key);
        if let Some(also) = also {
            ctx.ctl.events().send_status(also);
        }
    }
    Ok((outcome, converged_before))
}

/// Marks object `id` Failed with `status`'s message at its current generation, keeping what
/// was observed.
async fn fail<R: Reconciler>(
    r: &R,
    ctx: &Ctx<'_>,
    key: &Key,
    id: &str,
    status: &Status,
) -> Result<(), ReconcileError> {
    let store = ctx.ctl.store();
    let Some(obj) = store.by_id::<R::Object>(id).await? else {
        return Ok(());
    };
    let status = if obj.deleting() {
        // Still being deleted: the phase stays Deleting (a waiting Delete must not read the
        // panic as done); only the message says what happened.
        Status {
            phase: Phase::Deleting,
            observed_generation: obj.status().observed_generation,
            message: status.message.clone(),
        }
    } else {
        Status {
            observed_generation: obj.generation(),
            ..status.clone()
        }
    };
    if store
        .set_status::<R::Object>(id, &status, r.observed(&obj).borrow())
        .await?
    {
        ctx.ctl.events().send_status(key.clone());
    }
    Ok(())
}

/// When each key last finished a reconcile, for the monitor's echo window. Entries older
/// than [`Finished::FORGET_AFTER`] are dropped at most that often, and the table shrinks with
/// them: it kept one entry per key ever reconciled (20,000 at 10,000 endpoints, ~2 MB of
/// heap for a 1 s window).
#[derive(Debug)]
pub(super) struct Finished {
    at: std::collections::HashMap<Key, Instant>,
    pruned: Instant,
}

impl Default for Finished {
    fn default() -> Self {
        Self {
            at: std::collections::HashMap::new(),
            pruned: Instant::now(),
        }
    }
}

impl Finished {
    /// How long an entry is kept: longer than any window asked of [`Finished::within`].
    pub(super) const FORGET_AFTER: Duration = Duration::from_secs(10);

    /// `key` finished at `now`.
    pub(super) fn note(&mut self, key: &Key, now: Instant) {
        if now.duration_since(self.pruned) >= Self::FORGET_AFTER {
            self.at
                .retain(|_, t| now.duration_since(*t) < Self::FORGET_AFTER);
            if self.at.capacity() > 4 * self.at.len().max(64) {
                self.at.shrink_to_fit();
            }
            self.pruned = now;
        }
        self.at.insert(key.clone(), now);
    }

    /// True if `key` finished less than `window` ago.
    pub(super) fn within(&self, key: &Key, window: Duration) -> bool {
        self.at.get(key).is_some_and(|t| t.elapsed() < window)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.at.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use nix::errno::Errno;

    use super::*;
    use crate::{
        kernel::{NetnsOps, fake::FakeKernel},
        model::NamespaceSpec,
        store::Store,
    };

    /// A controller over a real SQLite file and the fake kernel (kept for inspection); the
    /// temp dir must outlive them.
    async fn setup() -> (tempfile::TempDir, Controller, Arc<FakeKernel>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("weft.db"))
            .await
            .expect("store");
        let fake = Arc::new(FakeKernel::new(dir.path().join("netns")));
        let ctl = Controller::new(store, fake.clone());
        (dir, ctl, fake)
    }

    /// Stores a named namespace (not yet reconciled); returns its id.
    async fn namespace(ctl: &Controller, name: &str) -> String {
        let spec = NamespaceSpec {
            name: name.into(),
            labels: Default::default(),
            adopted_path: None,
        };
        ctl.store()
            .create_namespace(&spec, None, false)
            .await
            .expect("row")
            .id
    }

    /// The stored status of namespace `id`.
    async fn status(ctl: &Controller, id: &str) -> Status {
        ctl.store()
            .namespace_by_id(id)
            .await
            .expect("read")
            .expect("row")
            .status
    }

    /// The worker step survives a panic in the kernel layer: the object reads Failed with a
    /// message naming an internal error, the failure is counted toward backoff, and the next
    /// attempt converges.
    #[tokio::test]
    async fn a_panicking_reconcile_marks_failed_and_the_worker_lives_on() {
        let (_dir, ctl, fake) = setup().await;
        let id = namespace(&ctl, "p1").await;
        let key = Key::Namespace(id.clone());
        fake.panic_next("create_named_netns");
        // The worker step returns normally: the panic was caught.
        ctl.work(0, key.clone()).await;
        let s = status(&ctl, &id).await;
        assert_eq!(s.phase, Phase::Failed);
        assert!(s.message.contains("internal error"), "{}", s.message);
        assert!(s.message.contains("injected panic"), "{}", s.message);
        // Retried with backoff: one failure counted, the key queued again (not stuck in
        // flight), and the next attempt converges.
        assert_eq!(ctl.inner.queue.failures(&key), 1);
        assert_eq!(ctl.stats().failures.load(Relaxed), 1);
        ctl.work(0, key.clone()).await;
        assert_eq!(status(&ctl, &id).await.phase, Phase::Ready);
        assert_eq!(ctl.inner.queue.failures(&key), 0);
        let path = fake.named_netns_path("p1");
        assert!(fake.is_netns(&path));
    }

    /// With one real worker: after the panic the key is not stuck in the in-flight set, so the
    /// same worker picks it up again after the backoff and it reaches Ready.
    #[tokio::test]
    async fn a_panicking_worker_does_not_block_its_key() {
        let (_dir, ctl, fake) = setup().await;
        let id = namespace(&ctl, "p2").await;
        let key = Key::Namespace(id.clone());
        let mut set = tokio::task::JoinSet::new();
        ctl.spawn_workers(1, &mut set);
        fake.panic_next("create_named_netns");
        ctl.enqueue(key.clone());
        // The same single worker, after the panic, picks the key up again after backoff.
        let deadline = Instant::now() + Duration::from_secs(10);
        while status(&ctl, &id).await.phase != Phase::Ready {
            assert!(
                Instant::now() < deadline,
                "never reconciled after the panic"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        ctl.shutdown();
        while set.join_next().await.is_some() {}
    }

    /// EBUSY is a race: Pending for the first attempts, Failed once they run out, and Ready at
    /// the first clean attempt.
    #[tokio::test]
    async fn transient_failures_read_pending_then_failed() {
        let (_dir, ctl, fake) = setup().await;
        let id = namespace(&ctl, "t1").await;
        let key = Key::Namespace(id.clone());
        fake.fail("create_named_netns", None, Errno::EBUSY, 3);
        for attempt in 1..=FAILED_AFTER_ATTEMPTS {
            ctl.work(0, key.clone()).await;
            let s = status(&ctl, &id).await;
            let want = if attempt < FAILED_AFTER_ATTEMPTS {
                Phase::Pending
            } else {
                Phase::Failed
            };
            assert_eq!(s.phase, want, "attempt {attempt}: {}", s.message);
            assert!(
                s.message.contains("Device or resource busy"),
                "{}",
                s.message
            );
        }
        ctl.work(0, key).await;
        assert_eq!(status(&ctl, &id).await.phase, Phase::Ready);
    }

    /// EPERM cannot be fixed by retrying: Failed at the first attempt, and no backoff retry is
    /// scheduled (the resync or a change looks again).
    #[tokio::test]
    async fn a_permission_error_fails_at_once_and_waits_for_a_change() {
        let (_dir, ctl, fake) = setup().await;
        let id = namespace(&ctl, "e1").await;
        let key = Key::Namespace(id.clone());
        fake.fail("create_named_netns", None, Errno::EPERM, 1);
        ctl.work(0, key.clone()).await;
        let s = status(&ctl, &id).await;
        assert_eq!(s.phase, Phase::Failed, "{}", s.message);
        // Not retried: no failure counted toward a backoff.
        assert_eq!(ctl.inner.queue.failures(&key), 0);
    }

    /// Pending keeps the generation last converged (the object is still what it was); Failed
    /// reports the generation that failed, at once for a conflict.
    /// A namespace that could not be made still shows where it will be (Get's path, the
    /// CLI's `--network container:X` message), not an empty path.
    #[tokio::test]
    async fn a_failing_namespace_still_shows_its_path() {
        let (_dir, ctl, fake) = setup().await;
        let id = namespace(&ctl, "f1").await;
        fake.fail("create_named_netns", None, Errno::EPERM, 1);
        ctl.work(0, Key::Namespace(id.clone())).await;
        let row = ctl.store().namespace_by_id(&id).await.unwrap().unwrap();
        assert_eq!(row.status.phase, Phase::Failed);
        let want = fake.named_netns_path("f1").display().to_string();
        assert_eq!(row.status_path, want);
    }

    /// A panic while deleting leaves the object Deleting (a waiting Delete must not read it
    /// as done), says why, and the retry finishes the delete.
    #[tokio::test]
    async fn a_panic_while_deleting_keeps_the_object_deleting() {
        let (_dir, ctl, fake) = setup().await;
        let id = namespace(&ctl, "d1").await;
        let key = Key::Namespace(id.clone());
        ctl.work(0, key.clone()).await;
        assert_eq!(status(&ctl, &id).await.phase, Phase::Ready);
        ctl.store()
            .mark_deleting::<NamespaceRow>(&id)
            .await
            .unwrap();
        fake.panic_next("delete_named_netns");
        ctl.work(0, key.clone()).await;
        let s = status(&ctl, &id).await;
        assert_eq!(s.phase, Phase::Deleting, "{}", s.message);
        assert!(s.message.contains("internal error"), "{}", s.message);
        ctl.work(0, key).await;
        assert!(ctl.store().namespace_by_id(&id).await.unwrap().is_none());
        assert!(!fake.is_netns(&fake.named_netns_path("d1")));
    }

    #[test]
    fn failed_status_keeps_the_observed_generation_while_pending() {
        let previous = Status {
            phase: Phase::Ready,
            observed_generation: 4,
            message: String::new(),
        };
        let e = ReconcileError::transient("namespace not ready");
        let s = failed_status(&e, 1, 5, &previous);
        assert_eq!((s.phase, s.observed_generation), (Phase::Pending, 4));
        let s = failed_status(&e, FAILED_AFTER_ATTEMPTS, 5, &previous);
        assert_eq!((s.phase, s.observed_generation), (Phase::Failed, 5));
        let s = failed_status(&ReconcileError::permanent("not ours"), 1, 5, &previous);
        assert_eq!((s.phase, s.observed_generation), (Phase::Failed, 5));
    }

    /// Old entries go (and the table shrinks) once FORGET_AFTER has passed since the last
    /// pruning; recent ones answer `within`.
    #[tokio::test(start_paused = true)]
    async fn finished_keys_are_forgotten_after_a_while() {
        let mut f = Finished::default();
        for i in 0..5000 {
            f.note(&Key::Endpoint(format!("e{i}")), Instant::now());
        }
        assert_eq!(f.len(), 5000);
        assert!(f.within(&Key::Endpoint("e7".into()), Duration::from_secs(1)));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(!f.within(&Key::Endpoint("e7".into()), Duration::from_secs(1)));
        f.note(&Key::Firewall, Instant::now());
        assert_eq!(f.len(), 5001, "not yet FORGET_AFTER since the last pruning");
        tokio::time::advance(Finished::FORGET_AFTER).await;
        f.note(&Key::Firewall, Instant::now());
        assert_eq!(f.len(), 1, "only the firewall key, just noted");
        assert!(f.at.capacity() < 1000, "shrunk: {}", f.at.capacity());
        assert!(f.within(&Key::Firewall, Duration::from_secs(1)));
    }
}
