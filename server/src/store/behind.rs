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
//! - **A failed write** (a full disk) drops the cached copy and is logged; the row keeps its
//!   earlier status until the next reconcile writes it again.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;

use super::{Kind, Store, StoreError, Writer};

/// The count of status writes sent behind their answers, and of those done.
#[derive(Debug)]
pub(super) struct Behind {
    /// Status writes begun (each is numbered by this count, taken under the write turn).
    begun: AtomicU64,
    /// The highest number done. The write turn is taken in order, so writes end in the
    /// order they began, and every number up to it is done.
    done: watch::Sender<u64>,
    /// Tests hold the writes here (a read lock per write; the test takes the write lock).
    #[cfg(test)]
    pub(super) gate: std::sync::Arc<tokio::sync::RwLock<()>>,
}

impl Default for Behind {
    fn default() -> Self {
        Self {
            begun: AtomicU64::new(0),
            done: watch::Sender::new(0),
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

/// Marks write `n` done when dropped: at the end of its task, and also when the task panics
/// or the runtime drops it at shutdown, so no read waits for it forever.
struct Ending {
    store: Store,
    n: u64,
}

impl Drop for Ending {
    fn drop(&mut self) {
        self.store.behind.end(self.n);
    }
}

impl Store {
    /// Waits for the status writes sent behind their answers before this call: called by
    /// every read of the database (through [`Store::reads`] or the background reader).
    pub(super) async fn settled(&self) {
        self.behind.settled().await;
    }

    /// Sends `query` (the status write of row `id` of kind `K`, whose cached copy already
    /// holds it) from a task of its own, holding the write turn `w` until it is done.
    pub(super) fn write_behind<K: Kind>(
        &self,
        mut w: tokio::sync::OwnedMutexGuard<Writer>,
        id: &str,
        query: sqlx::query::Query<'static, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    ) {
        let ending = Ending {
            store: self.clone(),
            n: self.behind.begin(),
        };
        let id = id.to_string();
        tokio::spawn(async move {
            #[cfg(test)]
            let _gate = ending.store.behind.gate.clone().read_owned().await;
            let result = match w.conn() {
                Ok(conn) => query
                    .execute(conn)
                    .await
                    .map(drop)
                    .map_err(StoreError::from),
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                ending.store.forget::<K>(&id);
                tracing::warn!(
                    error = %e,
                    table = K::TABLE,
                    id,
                    "could not write a status; the row keeps its earlier one until the next reconcile"
                );
            }
            drop(w);
            drop(ending);
        });
    }
}
