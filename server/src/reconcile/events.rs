//! Change notifications: every spec or status write emits an [`Event`] for the object's key,
//! stamped with a revision. Waiting requests and Watch streams subscribe; a slow subscriber
//! that lags simply re-reads the store, so no change is ever lost, only coalesced.
//!
//! The last [`LOG_CAPACITY`] events are kept, so a Watch client that reconnects with the last
//! revision it saw gets what it missed. A revision carries the epoch of the weftd process that
//! issued it (24 random bits above a 40-bit sequence), so a revision from before a restart, or
//! one older than the log, is recognised and the client is told to list again.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use tokio::sync::broadcast;

use crate::store::{EndpointRow, Kind, LinkRow, NamespaceRow, NetworkRow};

/// How many past events are kept for resuming watches.
pub const LOG_CAPACITY: usize = 10_000;

const SEQ_BITS: u32 = 40;
const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;

/// Which object: kind and uid.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// A namespace, by uid.
    Namespace(String),
    /// A link, by uid.
    Link(String),
    /// A network, by uid.
    Network(String),
    /// An endpoint, by uid.
    Endpoint(String),
    /// weft's nftables ruleset and port maps as a whole.
    Firewall,
    /// The search for orphaned kernel objects.
    Gc,
}

impl Key {
    /// The table a key's object lives in; None for the keys that are not objects.
    pub fn table(&self) -> Option<&'static str> {
        Some(match self {
            Key::Namespace(_) => NamespaceRow::TABLE,
            Key::Link(_) => LinkRow::TABLE,
            Key::Network(_) => NetworkRow::TABLE,
            Key::Endpoint(_) => EndpointRow::TABLE,
            Key::Firewall | Key::Gc => return None,
        })
    }

    /// The key of row `id` of `table` (one of the kinds' tables); None for another table.
    pub fn of_row(table: &str, id: &str) -> Option<Key> {
        let id = id.to_string();
        Some(match table {
            NamespaceRow::TABLE => Key::Namespace(id),
            LinkRow::TABLE => Key::Link(id),
            NetworkRow::TABLE => Key::Network(id),
            EndpointRow::TABLE => Key::Endpoint(id),
            _ => return None,
        })
    }

    /// The kind, as logs name it: `namespace`, `link`, `network`, `endpoint`, `firewall`, `gc`.
    pub fn kind(&self) -> &'static str {
        match self {
            Key::Namespace(_) => "namespace",
            Key::Link(_) => "link",
            Key::Network(_) => "network",
            Key::Endpoint(_) => "endpoint",
            Key::Firewall => "firewall",
            Key::Gc => "gc",
        }
    }

    /// The object's uid; the kind again for the singletons (`firewall`, `gc`).
    pub fn id(&self) -> &str {
        match self {
            Key::Namespace(id) | Key::Link(id) | Key::Network(id) | Key::Endpoint(id) => id,
            Key::Firewall | Key::Gc => self.kind(),
        }
    }
}

/// Something about an object changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The object.
    pub key: Key,
    /// The object's row is gone.
    pub deleted: bool,
    /// Only the object's status changed (its phase, message or what was observed): what was
    /// asked of it, its addresses included, is as before. The resolver's index, which holds
    /// nothing of a status, passes these by; a restart's confirmations are all such.
    pub status_only: bool,
    /// Where this event stands in the order of all events.
    pub revision: u64,
}

/// Why a watch cannot resume from a revision.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "revision {0} is older than what weftd remembers (or from before a restart): list again, then watch without since_revision"
)]
pub struct TooOld(pub u64);

#[derive(Debug)]
struct Log {
    seq: u64,
    events: VecDeque<Event>,
}

/// The broadcast of events; cheap to clone.
#[derive(Clone, Debug)]
pub struct Events {
    tx: broadcast::Sender<Event>,
    log: Arc<Mutex<Log>>,
    epoch: u64,
}

impl Default for Events {
    fn default() -> Self {
        Self::new()
    }
}

impl Events {
    /// A new broadcast with a fresh epoch.
    pub fn new() -> Self {
        let epoch = (rand::random::<u64>() & 0x00ff_ffff).max(1);
        Self {
            tx: broadcast::channel(4096).0,
            log: Arc::new(Mutex::new(Log {
                seq: 0,
                events: VecDeque::new(),
            })),
            epoch,
        }
    }

    /// The event log (a poisoned lock is taken over: it holds plain data).
    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The revision of sequence number `seq` in this process: the epoch above the sequence.
    fn revision_of(&self, seq: u64) -> u64 {
        (self.epoch << SEQ_BITS) | (seq & SEQ_MASK)
    }

    /// Publishes an event (the broadcast drops it if nobody listens; the log keeps it).
    pub fn send(&self, key: Key, deleted: bool) {
        self.publish(key, deleted, false);
    }

    /// Publishes the event of a write that changed only `key`'s status ([`Event::status_only`]).
    pub fn send_status(&self, key: Key) {
        self.publish(key, false, true);
    }

    fn publish(&self, key: Key, deleted: bool, status_only: bool) {
        let mut log = self.lock();
        log.seq += 1;
        let ev = Event {
            key,
            deleted,
            status_only,
            revision: self.revision_of(log.seq),
        };
        if log.events.len() == LOG_CAPACITY {
            log.events.pop_front();
        } else if log.events.len() == log.events.capacity() {
            // Doubling would end at 16,384 slots for 10,000 (300 KB never used): grow to the
            // capacity at most.
            let more = log.events.len().max(4).min(LOG_CAPACITY - log.events.len());
            log.events.reserve_exact(more);
        }
        log.events.push_back(ev.clone());
        // Sent under the lock, so subscribers see revisions in order.
        let _ = self.tx.send(ev);
    }

    /// A new subscription; it sees events sent after this call.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// A subscription and the revision it starts after, taken atomically.
    pub fn subscribe_at(&self) -> (broadcast::Receiver<Event>, u64) {
        let log = self.lock();
        (self.tx.subscribe(), self.revision_of(log.seq))
    }

    /// A subscription plus every logged event after `revision`, taken atomically; TooOld when
    /// the log no longer reaches back that far or the revision is from another weftd.
    pub fn resume(
        &self,
        revision: u64,
    ) -> Result<(broadcast::Receiver<Event>, Vec<Event>), TooOld> {
        let log = self.lock();
        let seq = revision & SEQ_MASK;
        let oldest = log
            .events
            .front()
            .map(|e| e.revision & SEQ_MASK)
            .unwrap_or(log.seq + 1);
        if revision >> SEQ_BITS != self.epoch || seq > log.seq || seq + 1 < oldest {
            return Err(TooOld(revision));
        }
        let missed = log
            .events
            .iter()
            .filter(|e| e.revision & SEQ_MASK > seq)
            .cloned()
            .collect();
        Ok((self.tx.subscribe(), missed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Watch that reconnects with its last revision gets exactly the events after it.
    #[test]
    fn resume_returns_what_was_missed_in_order() {
        let ev = Events::new();
        ev.send(Key::Namespace("a".into()), false);
        let (_rx, at) = ev.subscribe_at();
        ev.send(Key::Namespace("b".into()), false);
        ev.send(Key::Link("c".into()), true);
        let (_rx, missed) = ev.resume(at).unwrap();
        assert_eq!(
            missed.iter().map(|e| e.key.clone()).collect::<Vec<_>>(),
            [Key::Namespace("b".into()), Key::Link("c".into())]
        );
        assert!(missed[0].revision < missed[1].revision);
        assert!(ev.resume(missed[1].revision).unwrap().1.is_empty());
    }

    /// A revision this process never issued (or one already dropped) cannot be resumed.
    #[test]
    fn revisions_from_another_weftd_or_too_old_are_refused() {
        let ev = Events::new();
        ev.send(Key::Gc, false);
        let foreign = ((ev.epoch ^ 1) << SEQ_BITS) | 1;
        assert_eq!(ev.resume(foreign).err(), Some(TooOld(foreign)));
        let (_rx, start) = ev.subscribe_at();
        for _ in 0..LOG_CAPACITY + 5 {
            ev.send(Key::Gc, false);
        }
        assert_eq!(ev.resume(start).err(), Some(TooOld(start)));
        let log = ev.lock();
        assert_eq!(log.events.len(), LOG_CAPACITY);
        assert!(
            log.events.capacity() < LOG_CAPACITY + LOG_CAPACITY / 8,
            "the log grows to its capacity, not past it: {}",
            log.events.capacity()
        );
        drop(log);
        let (_rx, recent) = ev.subscribe_at();
        assert!(ev.resume(recent).is_ok());
        assert!(
            ev.resume(recent + 1).is_err(),
            "a revision from the future is refused"
        );
    }
}
