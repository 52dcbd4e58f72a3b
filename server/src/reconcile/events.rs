//! Change notifications: every spec or status write emits an [`Event`] for the object's key.
//! Waiting requests and Watch streams subscribe; a slow subscriber that lags simply re-reads
//! the store, so no change is ever lost, only coalesced.

use tokio::sync::broadcast;

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

/// Something about an object changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The object.
    pub key: Key,
    /// The object's row is gone.
    pub deleted: bool,
}

/// The broadcast of events; cheap to clone.
#[derive(Clone, Debug)]
pub struct Events {
    tx: broadcast::Sender<Event>,
}

impl Default for Events {
    fn default() -> Self {
        Self::new()
    }
}

impl Events {
    /// A new broadcast.
    pub fn new() -> Self {
        Self {
            tx: broadcast::channel(4096).0,
        }
    }

    /// Publishes an event (dropped if nobody listens).
    pub fn send(&self, key: Key, deleted: bool) {
        let _ = self.tx.send(Event { key, deleted });
    }

    /// A new subscription; it sees events sent after this call.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}
