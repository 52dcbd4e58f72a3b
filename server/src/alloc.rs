//! glibc's allocator, tuned for a long-running daemon whose work comes in bursts.
//!
//! weftd's memory is mostly not live data but what glibc keeps after transient peaks: a
//! resync's lists of every row and its kernel snapshot of every namespace, a Watch stream's
//! initial list, a burst of connects (heaptrack: 23 MB live at 4,000 endpoints while VmRSS
//! was 3-5 times that; BENCHMARKS.md "Issue 14: memory"). glibc gives each thread that
//! allocates under contention its own arena (up to 8 per core) and returns a freed page to the
//! kernel only from the top of an arena, so the free space those peaks leave between live
//! blocks stays resident. Three remedies, the first two standard for glibc daemons:
//!
//! - [`tune`] at start-up, before any thread exists: at most two arenas, free space at an
//!   arena's top returned once it reaches 128 KiB, and blocks of 64 KiB or more in their own
//!   mappings (freed straight back to the kernel). An operator's `MALLOC_ARENA_MAX`,
//!   `MALLOC_TRIM_THRESHOLD_` or `MALLOC_MMAP_THRESHOLD_` wins over each default (glibc read
//!   it before `main`).
//! - [`trim`] after a burst weftd knows the end of (each bulk check, the start-up garbage
//!   collection, a restart's confirmation of thousands): `malloc_trim(0)` walks every arena
//!   and hands the whole free pages *inside* it back too (`MADV_DONTNEED`), which no threshold
//!   reaches. A walk costs a few milliseconds; it runs about once per resync period.
//! - [`watch`]: bursts the daemon cannot see the end of (a client listing 10,000 endpoints, a
//!   Watch stream's initial list, a wave of connects) are caught by their effect: every
//!   [`WATCH_EVERY`] the resident size is read (`/proc/self/statm`, one small read), and a
//!   trim runs when it has grown by [`TRIM_GROWTH`] since the last one. Live data that grows
//!   (more endpoints) just moves the mark up after one trim. A trim for growth runs in the
//!   middle of a burst, before most of it is freed, and freeing does not lower the resident
//!   size, so nothing would ever trim again: after one, the first reading that has stopped
//!   growing (the burst is over) trims once more ("settle"). A start-up's garbage collection,
//!   which reads every namespace after the check has, left 20-30 % of weftd's resident size
//!   behind that way at 10,000 endpoints (BENCHMARKS.md, session 13).
//!
//! Measured with `weft-bench idle` (BENCHMARKS.md). Elsewhere than Linux with glibc (musl) tuning
//! and trimming are no-ops. The only `unsafe` here are the FFI calls, whose arguments are plain integers.

use std::sync::atomic::{AtomicU64, Ordering};

/// Sets weftd's allocator defaults (see the module doc); call first thing in `main`, before
/// the async runtime starts its threads.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let set = |env: &str, param: libc::c_int, value: libc::c_int| {
            if std::env::var_os(env).is_none() {
                // SAFETY: mallopt takes two integers and touches only glibc's own settings.
                #[allow(unsafe_code)]
                let ok = unsafe { libc::mallopt(param, value) };
                if ok != 1 {
                    eprintln!("weftd: mallopt({param}, {value}) refused; keeping glibc's default");
                }
            }
        };
        set("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, 2);
        set("MALLOC_TRIM_THRESHOLD_", libc::M_TRIM_THRESHOLD, 128 * 1024);
        set("MALLOC_MMAP_THRESHOLD_", libc::M_MMAP_THRESHOLD, 64 * 1024);
    }
}

/// Returns the free pages of every arena to the kernel (see the module doc). Blocking for a
/// few milliseconds; cheap enough after a pass that took far longer.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim takes the padding to keep and only releases free memory.
        #[allow(unsafe_code)]
        unsafe {
            libc::malloc_trim(0);
        }
    }
    if let Some(rss) = resident_bytes() {
        AFTER_TRIM.store(rss, Ordering::Relaxed);
    }
}

/// How often [`watch`] looks at the resident size.
pub const WATCH_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// How much the resident size may grow past its size after the last trim before [`watch`]
/// trims again.
pub const TRIM_GROWTH: u64 = 4 << 20;

/// The resident size right after the last [`trim`], in bytes (0 before the first).
static AFTER_TRIM: AtomicU64 = AtomicU64::new(0);

/// The process's resident size in bytes (`/proc/self/statm`'s second field), if readable.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

/// The page size (4 KiB when the system does not say).
fn page_size() -> u64 {
    // SAFETY: sysconf takes an integer name and returns an integer.
    #[allow(unsafe_code)]
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|s| *s > 0).unwrap_or(4096)
}

/// True when the resident size `now` is [`TRIM_GROWTH`] past `after_trim`, the size right
/// after the last trim.
pub fn worth_trimming(now: u64, after_trim: u64) -> bool {
    now > after_trim.saturating_add(TRIM_GROWTH)
}

/// How much a reading may exceed the one before and still count as "stopped growing".
pub const SETTLED_WITHIN: u64 = 1 << 20;

/// Why [`watch`] trims at one reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trim {
    /// The resident size grew by [`TRIM_GROWTH`] since the last trim.
    Growth,
    /// The last trim was for growth and the size has stopped growing since: the burst is
    /// over and what it freed can go back.
    Settle,
}

/// [`watch`]'s state between readings.
#[derive(Clone, Copy, Debug, Default)]
pub struct Watcher {
    /// The previous reading.
    last: u64,
    /// A trim for growth ran and its settling trim has not.
    settle: bool,
}

impl Watcher {
    /// Records what a trim left: the next reading is compared with it, not with the reading
    /// before the trim.
    pub fn trimmed(&mut self, after: u64) {
        self.last = after;
    }

    /// Whether to trim at reading `now`, with `after_trim` the size right after the last trim.
    pub fn decide(&mut self, now: u64, after_trim: u64) -> Option<Trim> {
        let last = std::mem::replace(&mut self.last, now);
        if worth_trimming(now, after_trim) {
            self.settle = true;
            Some(Trim::Growth)
        } else if self.settle && now <= last.saturating_add(SETTLED_WITHIN) {
            self.settle = false;
            Some(Trim::Settle)
        } else {
            None
        }
    }
}

/// Trims (on a blocking thread) whenever the resident size has grown by [`TRIM_GROWTH`] since
/// the last trim, and once more when such a growth has stopped, checking every
/// [`WATCH_EVERY`] (see the module doc and [`Watcher`]). Runs until the runtime stops.
pub fn watch() -> tokio::task::JoinHandle<()> {
    tokio::spawn(async {
        let mut tick = tokio::time::interval(WATCH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut watcher = Watcher::default();
        loop {
            tick.tick().await;
            let Some(now) = resident_bytes() else {
                return;
            };
            if let Some(why) = watcher.decide(now, AFTER_TRIM.load(Ordering::Relaxed)) {
                let _ = crate::nice::spawn_blocking(move || {
                    trim();
                    tracing::debug!(
                        ?why,
                        before = now,
                        after = AFTER_TRIM.load(Ordering::Relaxed),
                        "trimmed the allocator"
                    );
                })
                .await;
                watcher.trimmed(AFTER_TRIM.load(Ordering::Relaxed));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A trim follows growth past the mark, not the size itself: a large but steady daemon
    /// is left alone, and shrinking never trims.
    #[test]
    fn trims_on_growth_since_the_last_trim_only() {
        let mb = 1 << 20;
        assert!(!worth_trimming(100 * mb, 100 * mb));
        assert!(!worth_trimming(104 * mb, 100 * mb));
        assert!(worth_trimming(104 * mb + 1, 100 * mb));
        assert!(!worth_trimming(20 * mb, 100 * mb));
        assert!(worth_trimming(5 * mb, 0));
    }

    /// A growth trim is followed by one more once the size stops growing, and only one;
    /// a steady daemon that never grew is never trimmed.
    #[test]
    fn a_growth_trim_is_followed_by_one_settling_trim() {
        let mb = 1 << 20;
        let mut w = Watcher::default();
        assert_eq!(w.decide(50 * mb, 50 * mb), None, "steady");
        assert_eq!(w.decide(50 * mb, 50 * mb), None, "steady");
        assert_eq!(w.decide(60 * mb, 50 * mb), Some(Trim::Growth));
        w.trimmed(57 * mb);
        // Still growing (the burst goes on) from what the trim left: no trim until it has
        // grown past the mark again.
        assert_eq!(w.decide(60 * mb, 57 * mb), None);
        assert_eq!(w.decide(62 * mb, 57 * mb), Some(Trim::Growth));
        w.trimmed(61 * mb);
        // The burst is over: the size holds; one settling trim, then quiet.
        assert_eq!(w.decide(61 * mb + 1, 61 * mb), Some(Trim::Settle));
        w.trimmed(52 * mb);
        assert_eq!(w.decide(52 * mb, 52 * mb), None);
        assert_eq!(w.decide(52 * mb, 52 * mb), None);
    }

    /// The resident size is read, and a trim records the size after it.
    #[test]
    fn trim_records_the_resident_size() {
        let before = resident_bytes().expect("statm");
        assert!(before > 0);
        trim();
        assert!(AFTER_TRIM.load(Ordering::Relaxed) > 0);
    }
}
