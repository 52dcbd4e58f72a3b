//! The re-check after a restart, confirmed in batches.
//!
//! At start-up every object that was Ready is [`Phase::Rechecking`] until its first
//! reconcile has looked at the kernel (see `Store::mark_unverified`). On a converged host
//! that reconcile finds nothing to do for every object, and writing each status back to Ready
//! on its own cost about half of a 1,000-endpoint restart. So an object whose reconcile finds
//! it converged, with nothing observed changed, is queued here instead, and a flusher turns a
//! whole batch back to Ready with one statement per table every [`GATHER`], then sends their
//! events (a waiting call or a Watch sees Ready only after the row says so).

use std::time::Duration;

use tokio::task::JoinSet;

use super::{Controller, Key};
use crate::model::{Phase, Status};

/// How long the flusher gathers confirmations.
const GATHER: Duration = Duration::from_millis(2);

/// Confirmations waiting for the flusher: the object's key, and another key whose watchers
/// hear of it too (an endpoint's network).
#[derive(Debug, Default)]
pub(super) struct Rechecked {
    pending: std::sync::Mutex<Vec<(Key, Option<Key>)>>,
    wake: tokio::sync::Notify,
}

/// The object id in a key ("" for the keys that are not objects).
fn id(key: &Key) -> &str {
    match key {
        Key::Namespace(i) | Key::Link(i) | Key::Network(i) | Key::Endpoint(i) => i,
        Key::Firewall | Key::Gc => "",
    }
}

impl Controller {
    /// True when `was` is what a restart left, `now` is Ready at the same generation and
    /// nothing observed changed (`unchanged`): the status write is then left to the flusher.
    pub(super) fn confirm_if_rechecked(
        &self,
        key: &Key,
        was: &Status,
        now: &Status,
        unchanged: bool,
        also: Option<Key>,
    ) -> bool {
        let rechecked = unchanged
            && key.table().is_some()
            && now.phase == Phase::Ready
            && now.message.is_empty()
            && was.phase == Phase::Rechecking
            && was.observed_generation == now.observed_generation;
        if rechecked {
            self.inner
                .rechecked
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((key.clone(), also));
            self.inner.rechecked.wake.notify_one();
        }
        rechecked
    }

    /// Queues objects the bulk check found matching after a restart for the flusher, which
    /// turns those still Rechecking back to Ready (`also`: another key whose watchers hear).
    pub(super) fn confirm_checked(&self, items: Vec<(Key, Option<Key>)>) {
        if items.is_empty() {
            return;
        }
        self.inner
            .rechecked
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(items);
        self.inner.rechecked.wake.notify_one();
    }

    /// Starts the flusher; it stops after [`Controller::shutdown`], flushing what it holds.
    pub fn spawn_recheck_flusher(&self, set: &mut JoinSet<()>) {
        self.spawn_batcher(
            set,
            |i| &i.rechecked.wake,
            GATHER,
            |c| async move { c.flush_rechecked().await },
        );
    }

    /// Turns the gathered objects back to Ready, one statement per table and 500 ids, then
    /// sends their events (watchers must see Ready only once the row says so). A batch the
    /// store refuses stays Rechecking and is queued again: its next reconcile writes its
    /// status on its own.
    async fn flush_rechecked(&self) {
        let batch = std::mem::take(
            &mut *self
                .inner
                .rechecked
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for t in ["namespaces", "links", "networks", "endpoints"] {
            let of_table: Vec<&(Key, Option<Key>)> =
                batch.iter().filter(|(k, _)| k.table() == Some(t)).collect();
            for chunk in of_table.chunks(500) {
                let ids: Vec<String> = chunk.iter().map(|(k, _)| id(k).to_string()).collect();
                match self.store().confirm_rechecked(t, &ids).await {
                    Ok(changed) => {
                        let changed: std::collections::HashSet<&str> =
                            changed.iter().map(String::as_str).collect();
                        for (key, also) in chunk {
                            if changed.contains(id(key)) {
                                self.events().send_status(key.clone());
                                if let Some(a) = also {
                                    self.events().send_status(a.clone());
                                }
                            }
                        }
                    }
                    Err(e) => {
                        // They stay Pending; the next reconcile of each writes its status.
                        tracing::warn!(error = %e, "could not confirm re-checked objects");
                        for (key, _) in chunk {
                            self.enqueue(key.clone());
                        }
                    }
                }
            }
        }
        // A restart's confirmation of thousands (its rows and events are freed now): give
        // the pages back, as after a bulk check (crate::alloc).
        if batch.len() >= 1000 {
            crate::nice::spawn_blocking_detached(crate::alloc::trim);
        }
    }
}
