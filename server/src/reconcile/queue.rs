//! A keyed work queue: a key is never handed to two workers at once, triggers for a key that is
//! already queued coalesce, and a trigger for a key that is being worked on is remembered and
//! handed out again once the worker is done. Failed keys come back after a capped exponential
//! backoff.
//!
//! Two lanes: keys from the API, the monitor and retries go first; the periodic resync's keys
//! ([`WorkQueue::add_background`]) only when no other key waits, so a Connect never waits
//! behind a pass over 10,000 objects. A background key triggered in the foreground moves up.
//!
//! A key's life: `add` puts it in a lane (or marks it dirty when it is in flight); `next`
//! hands it to one worker and marks it in flight; the worker ends with `done` (success, or a
//! failure not worth retrying) or `retry` (counts the failure, re-adds it after the backoff).
//! Either way it leaves the in-flight set, and a trigger that came meanwhile hands it out
//! again. The driver calls exactly one of the two for every key it takes, panics included,
//! so no key can be stranded in flight. Plain tokio parts: a mutex-guarded state and a
//! `Notify`, no stream combinators.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    hash::Hash,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::Notify;

/// The shape every key has.
/// (Cloned into the lanes and the in-flight set, hashed for both, sent between workers.)
pub trait QueueKey: Clone + Eq + Hash + Send + Sync + std::fmt::Debug + 'static {}
impl<T: Clone + Eq + Hash + Send + Sync + std::fmt::Debug + 'static> QueueKey for T {}

#[derive(Debug)]
struct Inner<K> {
    queue: VecDeque<K>,
    /// The resync's keys, handed out when `queue` is empty.
    background: VecDeque<K>,
    /// Keys waiting in either lane.
    queued: HashSet<K>,
    /// Of those, the ones in `background`.
    in_background: HashSet<K>,
    in_flight: HashSet<K>,
    /// Keys triggered while in flight: re-queued by `done`.
    dirty: HashSet<K>,
    /// Consecutive failures per key, for the backoff.
    failures: HashMap<K, u32>,
    closed: bool,
}

/// The queue; cheap to clone.
#[derive(Clone, Debug)]
pub struct WorkQueue<K> {
    inner: Arc<Mutex<Inner<K>>>,
    notify: Arc<Notify>,
    base_delay: Duration,
    max_delay: Duration,
}

impl<K: QueueKey> WorkQueue<K> {
    /// A queue whose retries start at `base_delay` and double up to `max_delay`.
    pub fn new(base_delay: Duration, max_delay: Duration) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                queue: VecDeque::new(),
                background: VecDeque::new(),
                queued: HashSet::new(),
                in_background: HashSet::new(),
                in_flight: HashSet::new(),
                dirty: HashSet::new(),
                failures: HashMap::new(),
                closed: false,
            })),
            notify: Arc::new(Notify::new()),
            base_delay,
            max_delay,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Triggers a reconcile of `key`.
    pub fn add(&self, key: K) {
        let mut g = self.lock();
        if g.closed {
            return;
        }
        if g.in_flight.contains(&key) {
            g.dirty.insert(key);
            return;
        }
        if g.in_background.remove(&key) {
            // Waiting in the background lane: move it up.
            g.background.retain(|k| k != &key);
            g.queue.push_back(key);
            return;
        }
        if g.queued.insert(key.clone()) {
            g.queue.push_back(key);
            drop(g);
            self.notify.notify_one();
        }
    }

    /// Triggers a reconcile of `key` in the background lane, behind every other key; nothing
    /// if it waits or runs already.
    pub fn add_background(&self, key: K) {
        let mut g = self.lock();
        if g.closed || g.in_flight.contains(&key) {
            return;
        }
        if g.queued.insert(key.clone()) {
            g.in_background.insert(key.clone());
            g.background.push_back(key);
            drop(g);
            self.notify.notify_one();
        }
    }

    /// Triggers a reconcile of `key` after `delay`.
    pub fn add_after(&self, key: K, delay: Duration) {
        let q = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            q.add(key);
        });
    }

    /// Waits for the next key; None once the queue is closed and drained.
    pub async fn next(&self) -> Option<K> {
        loop {
            let notified = self.notify.notified();
            {
                let mut g = self.lock();
                let next = match g.queue.pop_front() {
                    Some(k) => Some(k),
                    None => g.background.pop_front().inspect(|k| {
                        g.in_background.remove(k);
                    }),
                };
                if let Some(k) = next {
                    g.queued.remove(&k);
                    g.in_flight.insert(k.clone());
                    let more = !g.queue.is_empty() || !g.background.is_empty();
                    drop(g);
                    if more {
                        // Another key waits: make sure another idle worker hears of it.
                        self.notify.notify_one();
                    }
                    return Some(k);
                }
                if g.closed {
                    drop(g);
                    self.notify.notify_one();
                    return None;
                }
            }
            notified.await;
        }
    }

    /// Reports that the worker finished `key` successfully.
    pub fn done(&self, key: &K) {
        let mut g = self.lock();
        g.failures.remove(key);
        self.finish(g, key);
    }

    /// Reports that `key` failed: it is retried after the backoff. Returns the attempt number
    /// (1 for the first failure) and the delay chosen.
    pub fn retry(&self, key: &K) -> (u32, Duration) {
        let mut g = self.lock();
        let n = g.failures.entry(key.clone()).or_insert(0);
        *n += 1;
        let attempts = *n;
        let delay = self.backoff(attempts);
        self.finish(g, key);
        self.add_after(key.clone(), delay);
        (attempts, delay)
    }

    /// Consecutive failures of `key` so far.
    pub fn failures(&self, key: &K) -> u32 {
        self.lock().failures.get(key).copied().unwrap_or(0)
    }

    /// Forgets the failure count of a key (after the object went away).
    pub fn forget(&self, key: &K) {
        self.lock().failures.remove(key);
    }

    /// The delay before attempt `attempts + 1`.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempts.saturating_sub(1).min(20))
            .unwrap_or(u32::MAX);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    fn finish(&self, mut g: std::sync::MutexGuard<'_, Inner<K>>, key: &K) {
        g.in_flight.remove(key);
        if g.dirty.remove(key) && !g.closed && g.queued.insert(key.clone()) {
            g.queue.push_back(key.clone());
            drop(g);
            self.notify.notify_one();
        }
    }

    /// Stops handing out keys: `next` returns None once the keys in flight are done.
    pub fn close(&self) {
        let mut g = self.lock();
        g.closed = true;
        g.queue.clear();
        g.background.clear();
        g.queued.clear();
        g.in_background.clear();
        drop(g);
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    /// True once [`WorkQueue::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Number of keys waiting in both lanes (not counting those in flight).
    pub fn len(&self) -> usize {
        self.lock().queued.len()
    }

    /// True when no key waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A queue with the daemon's backoff: 100 ms doubling up to 30 s.
    fn q() -> WorkQueue<&'static str> {
        WorkQueue::new(Duration::from_millis(100), Duration::from_secs(2))
    }

    /// A key added three times before a worker takes it is handed out once.
    #[tokio::test]
    async fn duplicate_triggers_coalesce() {
        let q = q();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        assert_eq!(q.next().await, Some("a"));
        assert_eq!(q.next().await, Some("b"));
        assert!(q.is_empty());
    }

    /// A key re-added while in flight waits until `done`, then is handed out again.
    #[tokio::test]
    async fn queue_does_not_run_same_key_twice_at_once() {
        let q = q();
        q.add("a");
        let k = q.next().await.unwrap();
        q.add("a"); // triggered while in flight: must wait for done
        assert!(q.is_empty(), "a key in flight must not be handed out again");
        q.add("b");
        assert_eq!(q.next().await, Some("b"));
        q.done(&k);
        assert_eq!(
            q.next().await,
            Some("a"),
            "the trigger during flight is not lost"
        );
    }

    /// Each failure doubles the delay; it never exceeds the cap; success resets the count.
    #[tokio::test(start_paused = true)]
    async fn retries_back_off_exponentially_up_to_the_cap() {
        let q = q();
        assert_eq!(q.backoff(1), Duration::from_millis(100));
        assert_eq!(q.backoff(2), Duration::from_millis(200));
        assert_eq!(q.backoff(5), Duration::from_millis(1600));
        assert_eq!(q.backoff(6), Duration::from_secs(2));
        assert_eq!(q.backoff(60), Duration::from_secs(2));
        q.add("a");
        let k = q.next().await.unwrap();
        let (n, d) = q.retry(&k);
        assert_eq!((n, d), (1, Duration::from_millis(100)));
        tokio::task::yield_now().await;
        assert!(q.is_empty(), "not before the delay");
        tokio::time::advance(Duration::from_millis(101)).await;
        tokio::task::yield_now().await;
        assert_eq!(q.next().await, Some("a"));
        q.done(&"a");
        assert_eq!(q.failures(&"a"), 0, "success resets the backoff");
    }

    /// Resync keys come after API keys, unless the API triggers the same key.
    #[tokio::test]
    async fn background_keys_wait_for_the_foreground_and_move_up_when_triggered() {
        let q = q();
        for k in ["r1", "r2", "r3"] {
            q.add_background(k);
        }
        q.add("api");
        q.add_background("api"); // already waiting: no second entry
        q.add("r3"); // a resync key triggered by the API moves up
        assert_eq!(q.len(), 4);
        assert_eq!(q.next().await, Some("api"));
        assert_eq!(q.next().await, Some("r3"));
        assert_eq!(q.next().await, Some("r1"));
        q.add("late");
        assert_eq!(
            q.next().await,
            Some("late"),
            "foreground first, whenever it comes"
        );
        assert_eq!(q.next().await, Some("r2"));
        assert!(q.is_empty());
    }

    /// Shutdown: a worker blocked in `next` returns None.
    #[tokio::test]
    async fn close_wakes_idle_workers() {
        let q = q();
        let w = {
            let q = q.clone();
            tokio::spawn(async move { q.next().await })
        };
        tokio::task::yield_now().await;
        q.close();
        assert_eq!(w.await.unwrap(), None);
    }
}
