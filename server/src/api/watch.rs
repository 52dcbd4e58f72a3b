//! The machinery behind every Watch RPC. A fresh watch sends the current objects as ADDED,
//! then turns change events into ADDED / MODIFIED / DELETED messages; an object leaving the
//! selection reads as DELETED; a lagging subscription re-lists and sends the difference, so
//! nothing is missed. A watch resumed from a revision first replays what changed after it
//! (each object's current state, or DELETED with its uid for one that is gone), then goes on
//! live. Every message carries the revision of the change it reports.

use std::{collections::HashMap, future::Future, pin::Pin, sync::Arc};

use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use weft_proto::v1::EventType;

use super::ApiError;
use crate::reconcile::{Event, Events, Key};

/// A boxed future, for the loaders.
pub type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Loads every selected object as (id, message).
pub type ListFn<P> = Arc<dyn Fn() -> BoxFut<Result<Vec<(String, P)>, ApiError>> + Send + Sync>;
/// Loads one object; None when it is gone or not selected.
pub type GetFn<P> = Arc<dyn Fn(String) -> BoxFut<Result<Option<P>, ApiError>> + Send + Sync>;

/// What a watch watches.
pub struct Source<P> {
    /// The id of the object an event is about, if it is of this kind.
    pub id_of: fn(&Key) -> Option<&str>,
    /// Lists the selected objects.
    pub list: ListFn<P>,
    /// Loads one selected object.
    pub get: GetFn<P>,
    /// The message for an object that is gone and whose last state is unknown: its uid only.
    pub tombstone: fn(&str) -> P,
}

/// Where a watch starts.
pub enum Start {
    /// With the current objects.
    Fresh(broadcast::Receiver<Event>, u64),
    /// After a revision: with what changed since.
    Resume(broadcast::Receiver<Event>, Vec<Event>),
}

impl Start {
    /// Subscribes for a watch request's `since_revision` (0: a fresh watch).
    pub fn new(events: &Events, since_revision: u64) -> Result<Start, Status> {
        if since_revision == 0 {
            let (rx, at) = events.subscribe_at();
            return Ok(Start::Fresh(rx, at));
        }
        let (rx, missed) = events
            .resume(since_revision)
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        Ok(Start::Resume(rx, missed))
    }
}

type Sender<R> = mpsc::Sender<Result<R, Status>>;

struct Stream<P, R> {
    known: HashMap<String, P>,
    tx: Sender<R>,
    wrap: fn(EventType, P, u64) -> R,
}

impl<P: Clone + PartialEq, R> Stream<P, R> {
    async fn send(&self, t: EventType, p: P, revision: u64) -> bool {
        self.tx.send(Ok((self.wrap)(t, p, revision))).await.is_ok()
    }

    /// Reports object `id`'s new state (None: gone or no longer selected).
    async fn update(&mut self, id: String, now: Option<P>, revision: u64) -> bool {
        match (self.known.get(&id), now) {
            (None, None) => true,
            (Some(_), None) => {
                let last = self.known.remove(&id).expect("present");
                self.send(EventType::Deleted, last, revision).await
            }
            (None, Some(p)) => {
                self.known.insert(id, p.clone());
                self.send(EventType::Added, p, revision).await
            }
            (Some(old), Some(p)) if *old == p => true,
            (Some(_), Some(p)) => {
                self.known.insert(id, p.clone());
                self.send(EventType::Modified, p, revision).await
            }
        }
    }

    /// Lists everything and reports the difference with what the client has.
    async fn resync(&mut self, src: &Source<P>, revision: u64) -> bool {
        let list = match (src.list)().await {
            Ok(l) => l,
            Err(e) => {
                let _ = self.tx.send(Err(e.into())).await;
                return false;
            }
        };
        let mut seen = std::collections::HashSet::new();
        for (id, p) in list {
            seen.insert(id.clone());
            if !self.update(id, Some(p), revision).await {
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
}

/// Starts a watch.
pub fn spawn<P, R>(
    src: Source<P>,
    start: Start,
    wrap: fn(EventType, P, u64) -> R,
) -> ReceiverStream<Result<R, Status>>
where
    P: Clone + PartialEq + Send + Sync + 'static,
    R: Send + 'static,
{
    let (tx, out) = mpsc::channel(256);
    tokio::spawn(async move {
        let mut s = Stream {
            known: HashMap::new(),
            tx: tx.clone(),
            wrap,
        };
        let (mut rx, mut last) = match start {
            Start::Fresh(rx, at) => {
                if !s.resync(&src, at).await {
                    return;
                }
                (rx, at)
            }
            Start::Resume(rx, missed) => {
                let mut last = 0;
                // Replay: one message per object, with the revision of its last change.
                let mut order: Vec<(String, Event)> = Vec::new();
                for ev in missed {
                    if let Some(id) = (src.id_of)(&ev.key) {
                        order.retain(|(i, _)| i != id);
                        order.push((id.to_string(), ev));
                    }
                }
                for (id, ev) in order {
                    last = last.max(ev.revision);
                    let alive = if ev.deleted {
                        s.send(EventType::Deleted, (src.tombstone)(&id), ev.revision)
                            .await
                    } else {
                        match (src.get)(id.clone()).await {
                            Ok(Some(p)) => {
                                s.known.insert(id, p.clone());
                                s.send(EventType::Modified, p, ev.revision).await
                            }
                            // Not selected (or gone since, which a later event reports).
                            Ok(None) => true,
                            Err(e) => {
                                let _ = tx.send(Err(e.into())).await;
                                return;
                            }
                        }
                    };
                    if !alive {
                        return;
                    }
                }
                (rx, last)
            }
        };
        loop {
            let ev = tokio::select! {
                ev = rx.recv() => ev,
                _ = tx.closed() => return,
            };
            let alive = match ev {
                Ok(ev) if ev.revision <= last => true,
                Ok(ev) => match (src.id_of)(&ev.key) {
                    Some(id) => {
                        last = ev.revision;
                        let id = id.to_string();
                        let now = if ev.deleted {
                            Ok(None)
                        } else {
                            (src.get)(id.clone()).await
                        };
                        match now {
                            Ok(now) => s.update(id, now, ev.revision).await,
                            Err(e) => {
                                let _ = tx.send(Err(e.into())).await;
                                false
                            }
                        }
                    }
                    None => true,
                },
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
