//! Which namespaces the periodic check may leave unread: those the kernel has said nothing
//! about since a check found everything in them matching.
//!
//! Every change to a link, an address or a route in a namespace weft manages (and in the
//! host) reaches the monitor as a notification (`monitor`). So once a check has read a
//! namespace and found all it holds as wanted, that namespace stays so until a notification
//! for it arrives; reading it again at the next resync finds the same. At 10,000 endpoints
//! those reads were most of an idle weftd's CPU (each namespace: a `setns`, a socket, three
//! dumps; the host: a dump of 10,000 veths, O(N²) in the kernel, BENCHMARKS.md "Surprises").
//!
//! The book keeps, per namespace id (and for the host), the sequence number of the last
//! change heard and of the pass that last found it clean. A pass takes a number before it
//! reads; a namespace it found clean is recorded clean at that number only if no change was
//! heard for it since, so a change racing the read is never lost. It is still read:
//!
//! - every [`FULL_EVERY`]th pass anyway (spread: each pass reads its share), so what sends
//!   no notification (a bug, a lost message) is found within minutes, not never;
//! - after a monitor overflow, and whenever the monitor is not running (nothing is skipped
//!   then: every pass reads everything, as before this existed);
//! - when anything in it differed, or it could not be read.
//!
//! What the check reads that is not netlink (resolv.conf files, namespace files) is read
//! every pass, whatever this book says.
//!
//! weft's own writes are notifications too: each Connect's veth, port and addresses send a
//! dozen, in the host and in the endpoint's namespace. Counted as heard, they made every
//! pass after a Connect read the host whole: every host veth described with its peer's
//! nsid, 0.3 s of a pass's kernel time at 10,000 endpoints (BENCHMARKS.md, session 17).
//! So the monitor tells the book only what it does not take for
//! the echo of a reconcile (a removal, or a change to an object no reconcile touched within
//! the echo window; `monitor`), and hands the owners of the echoes it dropped to
//! [`Quiet::echoed`]: the next pass queues them (a reconcile that reads the object's
//! interfaces and writes nothing when they are as wanted), so a change an admin makes right
//! after weft's own is still found within a resync, by the object's reconcile where it was
//! the namespace's read. Past [`ECHOES`] of them between two passes (a build-up), the book
//! hears all their namespaces instead, as before, until the next pass: a reconcile that
//! writes nothing costs about a millisecond, and 1,000 of them queued after a build-up cost
//! more than the one read of the host they spare.

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
};

use super::Key;

/// Every namespace is read at least once every this many passes (5 minutes at the default
/// 30 s resync).
pub(super) const FULL_EVERY: u64 = 10;

/// The most echoes kept for the next pass (owner and namespace); past them, echoes are
/// heard until the next pass.
pub(super) const ECHOES: usize = 64;

/// The book (see the module doc). A poisoned lock is taken over: it holds plain numbers.
#[derive(Debug, Default)]
pub(super) struct Quiet(Mutex<Book>);

#[derive(Debug, Default)]
struct Book {
    /// The monitor is subscribed and running.
    live: bool,
    /// The last sequence number given out (to a change or a pass).
    seq: u64,
    /// Passes begun (for the rotation of full reads).
    passes: u64,
    /// The host: (last change heard, pass that found it clean).
    host: Marks,
    /// Per namespace id in the host namespace.
    spaces: HashMap<i32, Marks>,
    /// The sequence number of the last loss of notifications (an overflow).
    lost: u64,
    /// The echoes not heard (owner, namespace), for the next pass to queue their owners.
    echoes: HashSet<(Key, Option<i32>)>,
    /// More than [`ECHOES`] came since the last pass: the rest are heard.
    spilled: bool,
}

/// One namespace's sequence numbers.
#[derive(Clone, Copy, Debug, Default)]
struct Marks {
    /// The last change heard.
    changed: u64,
    /// The pass that last found it clean (0: none).
    clean: u64,
}

/// One pass's place in the book: its sequence number and which pass it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct PassMark {
    seq: u64,
    pass: u64,
}

impl Quiet {
    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The monitor started (true) or stopped (false). Stopped, nothing is quiet.
    pub(super) fn set_live(&self, live: bool) {
        let mut b = self.book();
        b.live = live;
        if !live {
            b.host = Marks::default();
            b.spaces.clear();
            b.echoes.clear();
            b.spilled = false;
        }
    }

    /// A change was heard in namespace `nsid` (None: the host).
    pub(super) fn heard(&self, nsid: Option<i32>) {
        let mut b = self.book();
        b.seq += 1;
        let seq = b.seq;
        match nsid {
            None => b.host.changed = seq,
            Some(id) => b.spaces.entry(id).or_default().changed = seq,
        }
    }

    /// The monitor dropped an echo of `key`'s reconcile in namespace `nsid` (None: the
    /// host): true when the next pass will queue `key` instead of the namespace being read;
    /// false (hear it) when the monitor is not running or more than [`ECHOES`] came since
    /// the last pass, when the namespaces of those kept are heard too.
    pub(super) fn echoed(&self, key: &Key, nsid: Option<i32>) -> bool {
        let mut b = self.book();
        if !b.live || b.spilled {
            return false;
        }
        let echo = (key.clone(), nsid);
        if b.echoes.contains(&echo) {
            return true;
        }
        if b.echoes.len() < ECHOES {
            b.echoes.insert(echo);
            return true;
        }
        let spaces: HashSet<Option<i32>> = b.echoes.drain().map(|(_, ns)| ns).collect();
        b.spilled = true;
        drop(b);
        for ns in spaces {
            self.heard(ns);
        }
        false
    }

    /// The owners of the echoes dropped since the last call, for a pass to queue.
    pub(super) fn take_echoes(&self) -> Vec<Key> {
        let mut b = self.book();
        b.spilled = false;
        let owners: HashSet<Key> = b.echoes.drain().map(|(key, _)| key).collect();
        owners.into_iter().collect()
    }

    /// Notifications were lost: nothing is known to be quiet, and a pass that began before
    /// cannot tell it found anything clean.
    pub(super) fn overflowed(&self) {
        let mut b = self.book();
        b.host = Marks::default();
        b.spaces.clear();
        b.seq += 1;
        b.lost = b.seq;
    }

    /// Namespace `nsid` is gone (or its id now names another): forget it.
    pub(super) fn forget(&self, nsid: i32) {
        self.book().spaces.remove(&nsid);
    }

    /// The last sequence number given out: [`Quiet::heard_since`] then tells what was heard
    /// after this moment.
    pub(super) fn now(&self) -> u64 {
        self.book().seq
    }

    /// True when a change was heard in namespace `nsid` after [`Quiet::now`] said `since`,
    /// or notifications were lost since (anything may have been missed).
    pub(super) fn heard_since(&self, since: u64, nsid: i32) -> bool {
        let b = self.book();
        b.lost > since || b.spaces.get(&nsid).is_some_and(|m| m.changed > since)
    }

    /// A pass begins; None when nothing may be skipped (the monitor is not running).
    pub(super) fn begin(&self) -> Option<PassMark> {
        let mut b = self.book();
        if !b.live {
            return None;
        }
        b.seq += 1;
        b.passes += 1;
        Some(PassMark {
            seq: b.seq,
            pass: b.passes,
        })
    }

    /// True when pass `at` may leave namespace `nsid` (None: the host) unread: found clean by
    /// an earlier pass, nothing heard since, and not its turn for a full read.
    pub(super) fn may_skip(&self, at: PassMark, nsid: Option<i32>) -> bool {
        let b = self.book();
        let (marks, slot) = match nsid {
            None => (b.host, 0),
            Some(id) => match b.spaces.get(&id) {
                Some(m) => (*m, u64::from(id.unsigned_abs())),
                None => return false,
            },
        };
        let turn = (slot + at.pass).is_multiple_of(FULL_EVERY);
        b.live && marks.clean != 0 && marks.changed < marks.clean && !turn
    }

    /// Pass `at` read namespace `nsid` (None: the host) and found all it holds as wanted.
    /// Recorded unless a change was heard for it since the pass began.
    pub(super) fn found_clean(&self, at: PassMark, nsid: Option<i32>) {
        let mut b = self.book();
        if !b.live || b.lost > at.seq {
            return;
        }
        let marks = match nsid {
            None => &mut b.host,
            Some(id) => b.spaces.entry(id).or_default(),
        };
        if marks.changed < at.seq {
            marks.clean = at.seq;
        }
    }

    /// Namespace `nsid` (None: the host) must be read by the next pass.
    pub(super) fn unclean(&self, nsid: Option<i32>) {
        let mut b = self.book();
        match nsid {
            None => b.host.clean = 0,
            Some(id) => {
                if let Some(m) = b.spaces.get_mut(&id) {
                    m.clean = 0;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live() -> Quiet {
        let q = Quiet::default();
        q.set_live(true);
        q
    }

    /// Runs passes until `nsid` is not due for its full read; returns that pass.
    fn pass_not_due(q: &Quiet, nsid: Option<i32>) -> PassMark {
        loop {
            let at = q.begin().expect("live");
            let slot = nsid.map_or(0, |i| u64::from(i.unsigned_abs()));
            if !(slot + at.pass).is_multiple_of(FULL_EVERY) {
                return at;
            }
        }
    }

    /// Found clean, then quiet: skipped; a change heard after makes it read again.
    #[test]
    fn a_clean_namespace_is_skipped_until_a_change_is_heard() {
        let q = live();
        let p1 = pass_not_due(&q, Some(7));
        assert!(!q.may_skip(p1, Some(7)), "never read: read");
        q.found_clean(p1, Some(7));
        let p2 = pass_not_due(&q, Some(7));
        assert!(q.may_skip(p2, Some(7)));
        q.heard(Some(7));
        let p3 = pass_not_due(&q, Some(7));
        assert!(!q.may_skip(p3, Some(7)));
        // Another namespace's change is not this one's.
        q.found_clean(p3, Some(7));
        q.heard(Some(8));
        q.heard(None);
        assert!(q.may_skip(pass_not_due(&q, Some(7)), Some(7)));
    }

    /// A change heard while the pass that read it was running: that pass's "clean" is not
    /// recorded (the read may predate the change).
    #[test]
    fn a_change_during_the_pass_keeps_it_unclean() {
        let q = live();
        let p = pass_not_due(&q, None);
        q.heard(None);
        q.found_clean(p, None);
        assert!(!q.may_skip(pass_not_due(&q, None), None));
    }

    /// Every namespace gets its full read once in FULL_EVERY passes, however quiet.
    #[test]
    fn every_namespace_is_read_once_every_full_every_passes() {
        let q = live();
        let ids = [1, 2, 3, 10, 11, 12345];
        let first = q.begin().unwrap();
        for id in ids {
            q.found_clean(first, Some(id));
        }
        for id in ids {
            let mut read = 0;
            for _ in 0..FULL_EVERY {
                let at = q.begin().unwrap();
                if !q.may_skip(at, Some(id)) {
                    read += 1;
                    q.found_clean(at, Some(id));
                }
            }
            assert_eq!(read, 1, "namespace {id}");
        }
    }

    /// An echo's owner is kept for the next pass (once however often echoed), not heard:
    /// its namespace stays quiet. Without a monitor the monitor is told to hear it instead.
    /// Past ECHOES, the namespaces of all those kept are heard, and every echo after them
    /// until a pass takes the rest.
    #[test]
    fn echoes_are_kept_for_the_next_pass_up_to_their_room() {
        let q = Quiet::default();
        let key = |i: usize| Key::Endpoint(format!("e{i}"));
        assert!(!q.echoed(&key(0), None), "no monitor: heard");
        assert!(q.take_echoes().is_empty());
        q.set_live(true);
        let p = pass_not_due(&q, None);
        q.found_clean(p, None);
        let ns = |i: usize| Some(i32::try_from(i).unwrap());
        for i in 1..=ECHOES {
            q.found_clean(p, ns(i));
        }
        assert!(q.echoed(&key(0), None) && q.echoed(&key(0), None));
        assert!(
            q.may_skip(pass_not_due(&q, None), None),
            "an echo is not heard"
        );
        assert_eq!(q.take_echoes(), vec![key(0)]);
        assert!(q.take_echoes().is_empty(), "taken once");
        // One owner in two namespaces is queued once.
        assert!(q.echoed(&key(0), None) && q.echoed(&key(0), ns(1)));
        assert_eq!(q.take_echoes(), vec![key(0)]);
        for i in 1..ECHOES {
            assert!(q.echoed(&key(i), ns(i)), "{i}");
        }
        assert!(q.echoed(&key(0), None));
        let at = pass_not_due(&q, None);
        assert!(q.may_skip(at, None) && q.may_skip(at, ns(1)));
        assert!(!q.echoed(&key(ECHOES), ns(ECHOES)), "no room: heard");
        let at = pass_not_due(&q, None);
        assert!(
            !q.may_skip(at, None) && !q.may_skip(at, ns(1)),
            "spilled: heard"
        );
        assert!(!q.echoed(&key(0), None), "heard until the next pass");
        assert!(
            q.take_echoes().is_empty(),
            "their namespaces are read instead"
        );
        assert!(q.echoed(&key(0), None), "room again");
        q.set_live(false);
        assert!(
            q.take_echoes().is_empty(),
            "the monitor stopped: all is read"
        );
    }

    /// Notifications lost while a pass runs: it records nothing clean, since what it read
    /// may predate a change it will never hear of.
    #[test]
    fn an_overflow_during_a_pass_keeps_what_it_read_unclean() {
        let q = live();
        let p = pass_not_due(&q, Some(5));
        q.overflowed();
        q.found_clean(p, Some(5));
        q.found_clean(p, None);
        let next = pass_not_due(&q, Some(5));
        assert!(!q.may_skip(next, Some(5)) && !q.may_skip(next, None));
        q.found_clean(next, Some(5));
        assert!(
            q.may_skip(pass_not_due(&q, Some(5)), Some(5)),
            "a later pass may"
        );
    }

    /// Without a running monitor, after an overflow, or marked unclean: nothing is skipped.
    #[test]
    fn no_monitor_an_overflow_or_a_difference_means_read() {
        let q = Quiet::default();
        assert!(q.begin().is_none(), "no monitor: no pass mark");
        q.set_live(true);
        let p = pass_not_due(&q, Some(4));
        q.found_clean(p, Some(4));
        q.found_clean(p, None);
        q.overflowed();
        let p = pass_not_due(&q, Some(4));
        assert!(!q.may_skip(p, Some(4)) && !q.may_skip(p, None));
        q.found_clean(p, Some(4));
        q.unclean(Some(4));
        assert!(!q.may_skip(pass_not_due(&q, Some(4)), Some(4)));
        let p = pass_not_due(&q, Some(4));
        q.found_clean(p, Some(4));
        q.set_live(false);
        q.set_live(true);
        assert!(!q.may_skip(pass_not_due(&q, Some(4)), Some(4)));
    }

    /// What is heard after a moment is told apart from what was heard before it, for any
    /// namespace id, known or not; lost notifications count as heard by everything.
    #[test]
    fn heard_since_a_moment() {
        let q = live();
        q.heard(Some(3));
        let since = q.now();
        assert!(!q.heard_since(since, 3), "heard before the moment");
        assert!(!q.heard_since(since, 9), "never heard");
        q.heard(Some(9));
        assert!(q.heard_since(since, 9) && !q.heard_since(since, 3));
        let later = q.now();
        assert!(!q.heard_since(later, 9));
        q.overflowed();
        assert!(q.heard_since(later, 3) && q.heard_since(later, 42));
    }
}
