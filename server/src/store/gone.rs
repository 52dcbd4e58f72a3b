//! The uids of rows this store deleted lately, so a read of one answers "none" without a query.
//!
//! A row's delete is followed by reads of its uid that can only find nothing: the waiting
//! request's and the DNS feed's, on the delete's event, and the kernel monitor's, for the
//! notifications the deleted object's interfaces send as the reaper deletes them (its lookup
//! tries links, endpoints and networks in turn, three queries per notification). A
//! Disconnect made ten queries through the pool, eight of them such reads, each on a
//! connection whose page cache SQLite had emptied since the last write.
//!
//! Uids are random 64-bit numbers and never reused: the store draws a new one until it is
//! not among these ([`Store::fresh_uid`](super::Store::fresh_uid)), so no row made after a
//! delete takes its uid. A read by uid of any kind answers none for one here (the monitor
//! asks links, endpoints and networks in turn); only a live row of another kind that drew the
//! very same uid before the delete would be hidden, about one chance in 2^64 / 2,048 per live
//! row. Bounded: the oldest go first, past [`CAP`] (a mass disconnect's notifications arrive
//! within seconds of its deletes).

use std::collections::{HashSet, VecDeque};

/// How many uids are kept (8 bytes each, twice, plus the set's overhead: ~50 KiB).
pub(super) const CAP: usize = 2048;

/// Uids of deleted rows, oldest first.
#[derive(Debug, Default)]
pub(super) struct Gone {
    order: VecDeque<u64>,
    ids: HashSet<u64>,
}

/// A uid as the number it is written from; None for one weft did not make (16 lower-case
/// hex digits, as `new_uid` writes them).
fn number(uid: &str) -> Option<u64> {
    let weft_s = uid.len() == 16 && uid.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    weft_s.then(|| u64::from_str_radix(uid, 16).ok()).flatten()
}

impl Gone {
    /// Records that the row with uid `uid` was deleted (nothing for a uid of another form).
    pub(super) fn insert(&mut self, uid: &str) {
        let Some(n) = number(uid) else {
            return;
        };
        if self.ids.insert(n) {
            self.order.push_back(n);
            if self.order.len() > CAP
                && let Some(oldest) = self.order.pop_front()
            {
                self.ids.remove(&oldest);
            }
        }
    }

    /// Whether the row with uid `uid` was deleted lately.
    pub(super) fn contains(&self, uid: &str) -> bool {
        number(uid).is_some_and(|n| self.ids.contains(&n))
    }

    /// The first of `draw`'s uids that is not here.
    pub(super) fn fresh(&self, mut draw: impl FnMut() -> String) -> String {
        loop {
            let uid = draw();
            if !self.contains(&uid) {
                return uid;
            }
        }
    }

    /// How many are kept.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uid(n: u64) -> String {
        format!("{n:016x}")
    }

    #[test]
    fn keeps_the_latest_uids_up_to_its_bound() {
        let mut g = Gone::default();
        for n in 0..(CAP as u64 + 10) {
            g.insert(&uid(n));
        }
        assert_eq!(g.len(), CAP);
        assert!(!g.contains(&uid(9)), "the oldest went first");
        assert!(g.contains(&uid(10)));
        assert!(g.contains(&uid(CAP as u64 + 9)));
        // Inserting one twice keeps one entry, and does not push another out.
        g.insert(&uid(CAP as u64 + 9));
        assert_eq!(g.len(), CAP);
        assert!(g.contains(&uid(10)));
    }

    #[test]
    fn only_uids_of_weft_s_form_are_kept() {
        let mut g = Gone::default();
        for odd in [
            "",
            "abc",
            "not-a-uid-at-all",
            "0123456789abcdefg",
            "zzzzzzzzzzzzzzzz",
        ] {
            g.insert(odd);
            assert!(!g.contains(odd), "{odd:?}");
        }
        assert_eq!(g.len(), 0);
        // Another spelling of a kept uid's number is not that uid.
        g.insert("00000000000000ab");
        for alias in ["00000000000000AB", "+0000000000000ab"] {
            assert!(!g.contains(alias), "{alias:?}");
        }
    }

    #[test]
    fn a_fresh_uid_is_never_one_deleted_lately() {
        let mut g = Gone::default();
        g.insert(&uid(1));
        g.insert(&uid(2));
        let mut draws = [uid(1), uid(2), uid(3)].into_iter();
        assert_eq!(g.fresh(|| draws.next().unwrap()), uid(3));
    }
}
