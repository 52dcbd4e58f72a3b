//! Requests in flight, so that background work gives way to them.
//!
//! The resync pass reads every row and many namespaces on threads at nice 19, but nice only
//! decides who gets a CPU: on a host of two vCPUs (hyperthread siblings, often) a busy thread
//! at nice 19 still slows a Connect running beside it by a third, through the shared core,
//! caches and kernel locks. So the gRPC layer counts the calls it is answering
//! ([`InFlight::enter`], in logging.rs), and the pass's readers call [`GiveWay::now`] between
//! rows and namespaces: while a call is in flight they sleep, up to a budget per pass phase,
//! so that steady traffic delays a pass by at most that much and never starves it.

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

/// A count of calls in flight.
#[derive(Debug, Default)]
pub struct InFlight(AtomicUsize);

/// The gRPC calls weftd is answering (from the request to its response's headers; a Watch
/// stream counts until it starts).
pub static REQUESTS: InFlight = InFlight(AtomicUsize::new(0));

/// One call in flight, until dropped.
#[derive(Debug)]
pub struct Entered(&'static InFlight);

impl InFlight {
    /// Counts one call until the returned guard is dropped.
    pub fn enter(&'static self) -> Entered {
        self.0.fetch_add(1, Ordering::Relaxed);
        Entered(self)
    }

    /// Calls in flight now.
    pub fn now(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How a background reader gives way: checked every [`GiveWay::EVERY`] steps, it sleeps in
/// [`GiveWay::STEP`]s while calls are in flight, for at most its budget in all.
#[derive(Debug)]
pub struct GiveWay {
    calls: &'static InFlight,
    left: Duration,
    steps: u32,
    /// Time spent giving way so far.
    pub waited: Duration,
}

impl GiveWay {
    /// Steps (rows, namespaces) between two looks at the count: a row takes microseconds.
    pub const EVERY: u32 = 16;
    /// One sleep while a call is in flight.
    pub const STEP: Duration = Duration::from_micros(500);
    /// The budget of one phase of a resync pass.
    pub const PASS_PHASE: Duration = Duration::from_secs(1);

    /// Gives way to `calls`, for at most `budget` in all.
    pub fn new(calls: &'static InFlight, budget: Duration) -> Self {
        Self {
            calls,
            left: budget,
            steps: 0,
            waited: Duration::ZERO,
        }
    }

    /// One step of the background work: the first and every [`GiveWay::EVERY`]th after it
    /// sleeps while calls are in flight and budget is left. Blocks the calling thread (a
    /// thread of its own).
    pub fn now(&mut self) {
        let look = self.steps.is_multiple_of(Self::EVERY);
        self.steps = self.steps.wrapping_add(1);
        if !look {
            return;
        }
        while self.calls.now() > 0 && !self.left.is_zero() {
            let started = Instant::now();
            std::thread::sleep(Self::STEP.min(self.left));
            let slept = started.elapsed();
            self.left = self.left.saturating_sub(slept);
            self.waited += slept;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits while a call is in flight, at the first step and every EVERY after, and no
    /// longer than the budget; a call answered meanwhile ends the wait; the count follows
    /// the guards.
    #[test]
    fn gives_way_while_calls_are_in_flight_within_its_budget() {
        static CALLS: InFlight = InFlight(AtomicUsize::new(0));
        let mut w = GiveWay::new(&CALLS, Duration::from_millis(30));
        for _ in 0..GiveWay::EVERY * 6 {
            w.now();
        }
        assert_eq!(w.waited, Duration::ZERO, "nothing in flight");
        let call = CALLS.enter();
        let second = CALLS.enter();
        assert_eq!(CALLS.now(), 2);
        let started = Instant::now();
        for _ in 0..GiveWay::EVERY * 10 {
            w.now();
        }
        assert!(w.waited >= Duration::from_millis(30), "{:?}", w.waited);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "bounded by its budget"
        );
        drop((call, second));
        assert_eq!(CALLS.now(), 0);

        let mut w = GiveWay::new(&CALLS, Duration::from_secs(30));
        w.now();
        let call = CALLS.enter();
        for _ in 1..GiveWay::EVERY {
            w.now();
        }
        assert_eq!(w.waited, Duration::ZERO, "looks only every EVERY steps");
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            drop(call);
        });
        w.now();
        t.join().unwrap();
        assert!(w.waited >= Duration::from_millis(15), "{:?}", w.waited);
        assert!(w.waited < Duration::from_secs(10), "{:?}", w.waited);
    }
}
