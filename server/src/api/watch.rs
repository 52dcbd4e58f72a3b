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
//!
//! # Memory
//! A stream remembers the last message it sent for every object it selects (to tell ADDED
//! from MODIFIED, to skip an event that changed nothing it shows, and to send DELETED with the
//! last state). Those messages are shared between the streams ([`Shared`]): every stream
//! that holds the same state of one object holds one `Arc` of it, and the object's id is one
//! `Arc<str>`, so an idle stream costs a map entry per object (tens of bytes) rather than a
//! copy of every object (about a kilobyte each; issue 14 measured 200 streams at a few
//! thousand objects in the hundreds of MiB).

use std::{
    any::{Any, TypeId},
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, Weak},
};

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
    shared: &Shared,
    slot: Slot,
    label_selector: &str,
    namespace: Option<String>,
    since_revision: u64,
) -> Answer<WatchStream<K>> {
    let filter = Filter::parse(label_selector, namespace)?;
    let start = svc.watch_start(since_revision)?;
    let messages = shared.of::<K::Message>();
    Ok(Response::new(spawn(
        svc.watch::<K>(filter),
        messages,
        start,
        slot,
    )))
}

/// The messages every Watch stream holds, shared: one [`Messages`] per message type.
#[derive(Clone, Debug, Default)]
pub struct Shared {
    by_type: Arc<Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>>,
}

impl Shared {
    /// The shared messages of type `M`.
    fn of<M: PartialEq + Send + Sync + 'static>(&self) -> Arc<Messages<M>> {
        let mut g = self.by_type.lock().unwrap_or_else(|p| p.into_inner());
        let any = g
            .entry(TypeId::of::<M>())
            .or_insert_with(|| Arc::new(Messages::<M>::default()))
            .clone();
        drop(g);
        // The entry for TypeId::of::<M>() is always a Messages<M>; a fresh one otherwise.
        any.downcast::<Messages<M>>().unwrap_or_default()
    }
}

/// The last state of each object that some stream holds, by id: a stream that loads a
/// message equal to the one held gets the held `Arc` instead of keeping its own copy. Entries
/// are weak, so a state no stream holds any longer is freed; dead entries are swept once the
/// map has doubled since the last sweep.
#[derive(Debug)]
pub struct Messages<M> {
    inner: Mutex<Interned<M>>,
}

#[derive(Debug)]
struct Interned<M> {
    by_id: HashMap<Arc<str>, Weak<M>>,
    /// Sweep dead entries when the map grows past this.
    sweep_at: usize,
}

impl<M> Default for Messages<M> {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Interned {
                by_id: HashMap::new(),
                sweep_at: 1024,
            }),
        }
    }
}

impl<M: PartialEq> Messages<M> {
    /// The shared id and message for object `id` in state `m`.
    fn intern(&self, id: &str, m: M) -> (Arc<str>, Arc<M>) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let key = match g.by_id.get_key_value(id) {
            Some((k, held)) => {
                if let Some(held) = held.upgrade()
                    && *held == m
                {
                    return (k.clone(), held);
                }
                k.clone()
            }
            None => Arc::from(id),
        };
        let m = Arc::new(m);
        g.by_id.insert(key.clone(), Arc::downgrade(&m));
        if g.by_id.len() > g.sweep_at {
            g.by_id.retain(|_, w| w.strong_count() > 0);
            g.by_id.shrink_to_fit();
            g.sweep_at = (2 * g.by_id.len()).max(1024);
        }
        (key, m)
    }

    /// Objects with an entry (live or not yet swept).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_id
            .len()
    }
}

/// One client's stream: what it has been sent, per object id.
struct Stream<K: Wire> {
    /// The last message sent per object id: to tell ADDED from MODIFIED, to skip an event
    /// that changed nothing the client sees, and to send a DELETED with the last state.
    /// Ids and messages are shared with the other streams (see the module docs).
    known: HashMap<Arc<str>, Arc<K::Message>>,
    /// Where equal messages are shared.
    messages: Arc<Messages<K::Message>>,
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
    async fn update(&mut self, id: &str, now: Option<K::Message>, revision: u64) -> bool {
        match (self.known.remove_entry(id), now) {
            (None, None) => true,
            (Some((_, last)), None) => {
                let last = Arc::unwrap_or_clone(last);
                self.send(EventType::Deleted, last, revision).await
            }
            (Some((key, old)), Some(m)) if *old == m => {
                self.known.insert(key, old);
                true
            }
            (old, Some(m)) => {
                let (key, shared) = self.messages.intern(id, m);
                self.known.insert(key, shared.clone());
                let event = match old {
                    None => EventType::Added,
                    Some(_) => EventType::Modified,
                };
                self.send(event, K::Message::clone(&shared), revision).await
            }
        }
    }

    /// Lists everything and reports the difference with what the client has.
    async fn resync(&mut self, src: &WatchSource<K>, revision: u64) -> bool {
        // A list reads every row of the kind before the selector (10,000 namespaces at
        // scale): a few at a time, so 200 watches opened at once do not make 200 such peaks
        // (glibc keeps the heap they leave in pieces between the streams' live blocks). The
        // turn ends with the listing, before anything is sent: a slow client never holds it.
        let listed = match INITIAL_LISTS.acquire().await {
            Ok(_turn) => src.list().await,
            Err(_) => return false,
        };
        let list = match listed {
            Ok(l) => l,
            Err(e) => return self.fail(e).await,
        };
        let mut seen = HashSet::new();
        for (id, view) in list {
            if !self.update(&id, Some(K::message(&view)), revision).await {
                return false;
            }
            seen.insert(id);
        }
        let gone: Vec<Arc<str>> = self
            .known
            .keys()
            .filter(|k| !seen.contains(&***k))
            .cloned()
            .collect();
        for id in gone {
            if !self.update(&id, None, revision).await {
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
                        let (key, shared) = self.messages.intern(&id, m);
                        self.known.insert(key, shared.clone());
                        let m = K::Message::clone(&shared);
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
            Ok(now) => self.update(&id, now, ev.revision).await,
            Err(e) => self.fail(e).await,
        }
    }
}

/// How many watch streams may list at once (see [`Stream::resync`]).
static INITIAL_LISTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// Starts streaming `src` from `start` on a task of its own. The task ends when the client
/// hangs up, when an error was sent, or when the event broadcast closes (shutdown); `slot`
/// goes with it, so a watcher that disconnects frees its place. The channel holds 256
/// messages: a slow client slows its own task only, and a task that falls behind the
/// broadcast re-lists instead of losing events.
fn spawn<K: Wire>(
    src: WatchSource<K>,
    messages: Arc<Messages<K::Message>>,
    start: Start,
    slot: Slot,
) -> WatchStream<K> {
    let (tx, out) = mpsc::channel(256);
    tokio::spawn(async move {
        let _slot = slot;
        let mut s = Stream::<K> {
            known: HashMap::new(),
            messages,
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::Messages;

    #[test]
    fn equal_messages_are_shared_and_freed_when_no_stream_holds_them() {
        let m = Messages::<String>::default();
        let (k1, a) = m.intern("x", "v1".to_string());
        let (k2, b) = m.intern("x", "v1".to_string());
        assert!(Arc::ptr_eq(&a, &b), "one allocation for one state");
        assert!(Arc::ptr_eq(&k1, &k2), "one allocation for one id");
        let (k3, c) = m.intern("x", "v2".to_string());
        assert!(!Arc::ptr_eq(&a, &c), "a new state is its own");
        assert!(Arc::ptr_eq(&k1, &k3));
        assert_eq!(*a, "v1", "a stream still holds the state it sent");
        // States nobody holds are swept once the map has doubled: it stays bounded.
        for i in 0..10_000 {
            let _ = m.intern(&format!("id{i}"), String::new());
        }
        assert!(m.len() <= 2048, "{} entries kept", m.len());
        let (_, d) = m.intern("x", "v2".to_string());
        assert!(Arc::ptr_eq(&c, &d), "a held state survives the sweeps");
    }
}
