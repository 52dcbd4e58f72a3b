//! The machinery behind every Watch RPC, generic over the kind. A fresh watch sends the
//! current objects as ADDED, then turns change events into ADDED / MODIFIED / DELETED
//! messages; an object leaving the selection reads as DELETED; a lagging subscription
//! re-lists and sends the difference, so nothing is missed. A watch resumed from a revision
//! first replays what changed after it (each object's current state, or DELETED with its uid
//! for one that is gone), then goes on live. Every message carries the revision of the change
//! it reports.
//!
//! What to load comes from the service's [`WatchSource`]; which message to send for it from
//! the kind's [`Wire`] impl in `convert`.

use std::collections::{HashMap, HashSet};

use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Response, Status};
use weft_proto::v1::EventType;

use super::{Answer, Service, convert::Wire};
use crate::{
    admission::Slot,
    reconcile::Event,
    service::{Filter, ServiceError, Start, WatchSource},
};

/// The stream a Watch RPC of kind `K` answers with.
pub type WatchStream<K> = ReceiverStream<Result<<K as Wire>::Response, Status>>;

/// Answers a Watch RPC of kind `K`: parses the filter, subscribes at `since_revision`
/// (0: fresh) and spawns the stream, which holds `slot` (its place among the open Watch
/// streams) until it ends. A bad selector or a revision the event log no longer reaches
/// fail the call itself, before any message is streamed.
pub(super) fn answer<K: Wire>(
    svc: &Service,
    slot: Slot,
    label_selector: &str,
    namespace: Option<String>,
    since_revision: u64,
) -> Answer<WatchStream<K>> {
    let filter = Filter::parse(label_selector, namespace)?;
    let start = svc.watch_start(since_revision)?;
    Ok(Response::new(spawn(svc.watch::<K>(filter), start, slot)))
}

/// One client's stream: what it has been sent, per object id.
struct Stream<K: Wire> {
    /// The last message sent per object id: to tell ADDED from MODIFIED, to skip an event
    /// that changed nothing the client sees, and to send a DELETED with the last state.
    known: HashMap<String, K::Message>,
    /// The client's end; closed when it hangs up.
    tx: mpsc::Sender<Result<K::Response, Status>>,
}

/// The stream's steps: each returns false once the client is gone or an error was sent,
/// which ends the task.
impl<K: Wire> Stream<K> {
    /// Sends one message; false when the client has gone.
    async fn send(&self, t: EventType, m: K::Message, revision: u64) -> bool {
        self.tx.send(Ok(K::response(t, m, revision))).await.is_ok()
    }

    /// Sends an error and ends the stream (returns false).
    async fn fail(&self, e: ServiceError) -> bool {
        let _ = self.tx.send(Err(e.into())).await;
        false
    }

    /// Reports object `id`'s new state (None: gone or no longer selected): ADDED for one
    /// the client has not seen, MODIFIED for one that changed, DELETED (with its last state)
    /// for one that went; nothing when nothing changed.
    async fn update(&mut self, id: String, now: Option<K::Message>, revision: u64) -> bool {
        match (self.known.remove(&id), now) {
            (None, None) => true,
            (Some(last), None) => self.send(EventType::Deleted, last, revision).await,
            (old, Some(m)) => {
                self.known.insert(id, m.clone());
                match old {
                    None => self.send(EventType::Added, m, revision).await,
                    Some(old) if old == m => true,
                    Some(_) => self.send(EventType::Modified, m, revision).await,
                }
            }
        }
    }

    /// Lists everything and reports the difference with what the client has.
    async fn resync(&mut self, src: &WatchSource<K>, revision: u64) -> bool {
        let list = match src.list().await {
            Ok(l) => l,
            Err(e) => return self.fail(e).await,
        };
        let mut seen = HashSet::new();
        for (id, view) in list {
            seen.insert(id.clone());
            if !self.update(id, Some(K::message(&view)), revision).await {
                return false;
            }
        }
        let gone: Vec<String> = self
            .known
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        for id in gone {
            if !self.update(id, None, revision).await {
                return false;
            }
        }
        true
    }

    /// Object `id` as it is now, if selected.
    async fn load(
        &self,
        src: &WatchSource<K>,
        id: &str,
    ) -> Result<Option<K::Message>, ServiceError> {
        Ok(src.get(id).await?.as_ref().map(K::message))
    }

    /// Replays the events a resumed watch missed: one message per object, with the revision
    /// of its last change. Returns the last revision replayed, or None when the stream ended.
    async fn replay(&mut self, src: &WatchSource<K>, missed: Vec<Event>) -> Option<u64> {
        let mut order: Vec<(String, Event)> = Vec::new();
        for ev in missed {
            if let Some(id) = WatchSource::<K>::id_of(&ev.key) {
                order.retain(|(i, _)| i != id);
                order.push((id.to_string(), ev));
            }
        }
        let mut last = 0;
        for (id, ev) in order {
            last = last.max(ev.revision);
            let alive = if ev.deleted {
                self.send(EventType::Deleted, K::tombstone(&id), ev.revision)
                    .await
            } else {
                match self.load(src, &id).await {
                    Ok(Some(m)) => {
                        self.known.insert(id, m.clone());
                        self.send(EventType::Modified, m, ev.revision).await
                    }
                    // Not selected (or gone since, which a later event reports).
                    Ok(None) => true,
                    Err(e) => self.fail(e).await,
                }
            };
            if !alive {
                return None;
            }
        }
        Some(last)
    }

    /// Handles one live event; false when the stream ended.
    async fn on_event(&mut self, src: &WatchSource<K>, ev: Event, last: &mut u64) -> bool {
        if ev.revision <= *last {
            return true;
        }
        let Some(id) = WatchSource::<K>::id_of(&ev.key) else {
            return true;
        };
        *last = ev.revision;
        let id = id.to_string();
        let now = if ev.deleted {
            Ok(None)
        } else {
            self.load(src, &id).await
        };
        match now {
            Ok(now) => self.update(id, now, ev.revision).await,
            Err(e) => self.fail(e).await,
        }
    }
}

/// Starts streaming `src` from `start` on a task of its own. The task ends when the client
/// hangs up, when an error was sent, or when the event broadcast closes (shutdown); `slot`
/// goes with it, so a watcher that disconnects frees its place. The channel holds 256
/// messages: a slow client slows its own task only, and a task that falls behind the
/// broadcast re-lists instead of losing events.
fn spawn<K: Wire>(src: WatchSource<K>, start: Start, slot: Slot) -> WatchStream<K> {
    let (tx, out) = mpsc::channel(256);
    tokio::spawn(async move {
        let _slot = slot;
        let mut s = Stream::<K> {
            known: HashMap::new(),
            tx,
        };
        let (mut rx, mut last) = match start {
            Start::Fresh(rx, at) => {
                if !s.resync(&src, at).await {
                    return;
                }
                (rx, at)
            }
            Start::Resume(rx, missed) => match s.replay(&src, missed).await {
                Some(last) => (rx, last),
                None => return,
            },
        };
        loop {
            let ev = tokio::select! {
                ev = rx.recv() => ev,
                _ = s.tx.closed() => return,
            };
            let alive = match ev {
                Ok(ev) => s.on_event(&src, ev, &mut last).await,
                Err(broadcast::error::RecvError::Lagged(_)) => s.resync(&src, last).await,
                Err(broadcast::error::RecvError::Closed) => false,
            };
            if !alive {
                return;
            }
        }
    });
    ReceiverStream::new(out)
}
