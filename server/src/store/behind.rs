//! Status writes sent behind the answer (issue 14, item 5).
//!
//! A reconcile's status write was the last step before a waiting Connect could answer: one
//! UPDATE through sqlx, 70-140 µs on this project's VM. For a row whose cached copy is what
//! the database holds (endpoints, [`super::Kind::has_status`]), [`Store::set_status`] now
//! knows without the query whether the status changes, puts it in the cached copy, and sends
//! the UPDATE from a task of its own that holds the write turn until it is done. The
//! reconcile then announces the status, and the waiting request answers from the cache.
//!
//! What keeps this consistent:
//! - **Writes stay in order.** The task holds the write turn, so every later write (another
//!   status, a disconnect, a transaction) comes after it, and the cached copy changes under
//!   the same turn as before.
//! - **Reads see it.** Every read of the database waits for the status writes begun before
//!   it ([`Behind::settled`]), so a listing made after a Ready answer reads Ready. Reads of
//!   the cached copy need no wait: it changed first.
//! - **Durability is not at stake.** A status is what the reconciler observed, not what a
//!   client asked for: a `kill -9` before the UPDATE lands leaves the row at its earlier
//!   status, and the restart's check looks at the kernel again (Rechecking, then Ready) as
//!   it does for every row. [`Store::close`] takes the write turn, so a clean stop waits
//!   for the writes in flight.
//! - **A failed write** (a full disk), or one whose task panicked or was dropped, drops the
//!   cached copy under the write turn, is logged, and has its row's reconcile queued again
//!   ([`Store::on_failed_status_write`], which the controller sets), as a failed write before
//!   had its reconcile retried; the row keeps its earlier status until that reconcile.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;

use super::{Kind, Store, StoreError, Writer};

/// What to call when a status write sent behind fails: the row's table and uid. The
/// controller queues the row's key again, as a failed synchronous write had its reconcile
/// retried.
pub type OnFailedWrite = Box<dyn Fn(&'static str, &str) + Send + Sync>;

/// The count of status writes sent behind their answers, and of those done.
pub(super) struct Behind {
    /// Status writes begun (each is numbered by this count, taken under the write turn).
    begun: AtomicU64,
    /// The highest number done. The write turn is taken in order, so writes end in the
    /// order they began, and every number up to it is done.
    done: watch::Sender<u64>,
    /// Told of every failed write ([`Store::on_failed_status_write`]).
    on_failed: std::sync::Mutex<Option<OnFailedWrite>>,
    /// Tests hold the writes here (a read lock per write; the test takes the write lock).
    #[cfg(test)]
    pub(super) gate: std::sync::Arc<tokio::sync::RwLock<()>>,
}

impl std::fmt::Debug for Behind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Behind")
            .field("begun", &self.begun)
            .field("done", &*self.done.borrow())
            .finish_non_exhaustive()
    }
}

impl Default for Behind {
    fn default() -> Self {
        Self {
            begun: AtomicU64::new(0),
            done: watch::Sender::new(0),
            on_failed: Default::default(),
            #[cfg(test)]
            gate: Default::default(),
        }
    }
}

impl Behind {
    /// Waits until every status write begun before this call is done: immediately when none
    /// is in flight (one load and one read of the count).
    pub(super) async fn settled(&self) {
        let want = self.begun.load(Ordering::Acquire);
        if *self.done.borrow() >= want {
            return;
        }
        let mut rx = self.done.subscribe();
        // The sender lives as long as the store, which the caller holds.
        let _ = rx.wait_for(|done| *done >= want).await;
    }

    /// Numbers a new write; called under the write turn.
    fn begin(&self) -> u64 {
        self.begun.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Write `n` is done (or will never be: it failed, or its task was dropped).
    fn end(&self, n: u64) {
        self.done.send_modify(|done| *done = (*done).max(n));
    }
}

/// One write sent behind, from its start to its end; dropped at the end of its task, and
/// also when the task panics or the runtime drops it unrun at shutdown. Unless the write
/// landed, it drops the row's cached copy (which holds the status the database does not)
/// while the write turn is still held, then tells [`Behind::on_failed`]; either way it ends
/// the write's number last, so no read waits for it forever.
struct Ending<K: Kind> {
    store: Store,
    n: u64,
    id: String,
    /// The write turn, held to the end.
    turn: Option<tokio::sync::OwnedMutexGuard<Writer>>,
    landed: bool,
    kind: std::marker::PhantomData<fn() -> K>,
}

impl<K: Kind> Drop for Ending<K> {
    fn drop(&mut self) {
        if !self.landed {
            self.store.forget::<K>(&self.id);
        }
        drop(self.turn.take());
        self.store.behind.end(self.n);
        if !self.landed {
            let on_failed = self
                .store
                .behind
                .on_failed
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(f) = on_failed.as_ref() {
                f(K::TABLE, &self.id);
            }
        }
    }
}

impl Store {
    /// Waits for the status writes sent behind their answers before this call: called by
    /// every read of the database (through [`Store::reads`] or the background reader).
    pub(super) async fn settled(&self) {
        self.behind.settled().await;
    }

    /// Calls `f` with the table and uid of each row whose status write, sent behind its
    /// answer, did not land (replacing any earlier `f`).
    pub fn on_failed_status_write(&self, f: OnFailedWrite) {
        *self
            .behind
            .on_failed
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(f);
    }

    /// A trigger that refuses every status write to an endpoint, for [`Store::execute_for_tests`]
    /// (dropped with `DROP TRIGGER refuse_status`).
    #[cfg(test)]
    pub(crate) const REFUSE_STATUS: &str = "CREATE TRIGGER refuse_status BEFORE UPDATE OF phase \
         ON endpoints BEGIN SELECT RAISE(ABORT, 'refused by the test'); END";

    /// Runs `sql` on the writer, for tests that change the schema under the store (a
    /// trigger that refuses a write).
    #[cfg(test)]
    pub(crate) async fn execute_for_tests(&self, sql: &str) {
        let mut w = self.writer().await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(w.conn().unwrap())
            .await
            .unwrap();
    }

    /// Sends `query` (the status write of row `id` of kind `K`, whose cached copy already
    /// holds it) from a task of its own, holding the write turn `w` until it is done.
    pub(super) fn write_behind<K: Kind>(
        &self,
        w: tokio::sync::OwnedMutexGuard<Writer>,
        id: &str,
        query: sqlx::query::Query<'static, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    ) {
        let mut ending = Ending::<K> {
            store: self.clone(),
            n: self.behind.begin(),
            id: id.to_string(),
            turn: Some(w),
            landed: false,
            kind: std::marker::PhantomData,
        };
        tokio::spawn(async move {
            #[cfg(test)]
            let _gate = ending.store.behind.gate.clone().read_owned().await;
            let result = match ending.turn.as_mut().map(|w| w.conn()) {
                Some(Ok(conn)) => query
                    .execute(conn)
                    .await
                    .map(drop)
                    .map_err(StoreError::from),
                Some(Err(e)) => Err(e),
                None => Err(StoreError::Sqlx(sqlx::Error::PoolClosed)),
            };
            match result {
                Ok(()) => ending.landed = true,
                Err(e) => tracing::warn!(
                    error = %e,
                    table = K::TABLE,
                    id = ending.id,
                    "could not write a status; its reconcile is queued again"
                ),
            }
            drop(ending);
        });
    }
}
