//! Background work at the lowest CPU priority: the periodic check, its kernel reads and its
//! store lists run on threads of their own at nice 19 and `SCHED_IDLE`, so on a busy host
//! they take only the CPU the API and the workers leave.
//!
//! Nice 19 alone was not that. It decides shares, not who runs now: the kernel's EEVDF
//! scheduler lets a running thread finish its slice (a few hundred microseconds to a few
//! milliseconds) before a thread that just woke, whatever their nice values, so a Connect's
//! tasks waited on the run queue behind the pass's thread (`perf sched`: their wait during a
//! Connect that met a pass was 1 ms longer than idle). A `SCHED_IDLE` thread is preempted
//! as soon as any other thread wakes on its CPU; it still gets a little CPU on a saturated
//! host (weight 3 against nice 19's 15), so a pass is slowed, never starved.
//!
//! A thread inherits both from the thread that starts it, and tokio starts a blocking-pool
//! thread from whichever thread calls `spawn_blocking` when none is idle: a pass's call
//! (its resolv.conf reads) made one at idle priority, which then stayed in the pool and ran
//! the API's blocking work at that priority too. So every thread of weftd's runtime starts
//! by taking the priority the process had at start back ([`runtime`]).

use std::sync::OnceLock;

use nix::errno::Errno;

/// The process's priority at start: its nice value and scheduling policy.
static NORMAL: OnceLock<Option<(libc::c_int, libc::c_int)>> = OnceLock::new();

/// The calling thread's nice value and policy, when both can be read.
fn current() -> Option<(libc::c_int, libc::c_int)> {
    Errno::clear();
    // SAFETY: getpriority and sched_getscheduler take integers and only read.
    #[allow(unsafe_code)]
    let (nice, policy) = unsafe {
        (
            libc::getpriority(libc::PRIO_PROCESS, 0),
            libc::sched_getscheduler(0),
        )
    };
    // getpriority's -1 is a nice value unless errno says otherwise.
    (!(nice == -1 && Errno::last_raw() != 0) && policy >= 0).then_some((nice, policy))
}

/// The multi-threaded runtime weftd runs on: every thread it starts, worker or blocking,
/// first takes the priority the calling thread has now (the process's normal one) back, so
/// none keeps a background thread's ([`lowest_priority`]) it was started from.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    NORMAL.get_or_init(current);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(restore_normal)
        .build()
}

/// Gives the calling thread the process's priority at start back, if it differs.
fn restore_normal() {
    let (Some(Some((nice, policy))), Some((now_nice, now_policy))) = (NORMAL.get(), current())
    else {
        return;
    };
    if now_policy != *policy {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: sched_setscheduler reads `param` and changes only this thread's policy.
        #[allow(unsafe_code)]
        let r = unsafe { libc::sched_setscheduler(0, *policy, &param) };
        if r != 0 {
            tracing::debug!(error = %Errno::last(), "could not restore a thread's policy");
        }
    }
    if now_nice != *nice {
        // SAFETY: setpriority takes three integers and changes only this thread's nice value.
        #[allow(unsafe_code)]
        let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, *nice) };
        if r != 0 {
            tracing::debug!(error = %Errno::last(), "could not restore a thread's nice value");
        }
    }
}

/// Gives the calling thread the lowest priority: nice 19 and the `SCHED_IDLE` policy (on
/// Linux `setpriority` with `PRIO_PROCESS` and 0, and `sched_setscheduler` with 0, apply to
/// the calling thread only, and threads it starts inherit both). Best effort: a refusal
/// leaves the thread at normal priority.
pub(crate) fn lowest_priority() {
    // SAFETY: setpriority takes three integers and changes only this thread's nice value.
    #[allow(unsafe_code)]
    let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
    if r != 0 {
        tracing::debug!(error = %Errno::last(), "could not lower a background thread's priority");
    }
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler reads `param` and changes only this thread's policy.
    #[allow(unsafe_code)]
    let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if r != 0 {
        tracing::debug!(error = %Errno::last(), "could not make a background thread SCHED_IDLE");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A blocking task spawned from a thread at the lowest priority, on weftd's runtime with
    /// no blocking thread yet (so the pool starts one from that thread), runs at the
    /// priority the process started with.
    #[test]
    fn a_blocking_thread_started_from_a_background_thread_runs_at_normal_priority() {
        let before = current().expect("readable");
        let rt = runtime().unwrap();
        let handle = rt.handle().clone();
        let seen = std::thread::spawn(move || {
            lowest_priority();
            let lowered = current().expect("readable");
            assert_eq!(lowered, (19, libc::SCHED_IDLE), "lowered first");
            handle.block_on(async { tokio::task::spawn_blocking(current).await.unwrap() })
        })
        .join()
        .unwrap();
        assert_eq!(seen, Some(before));
    }
}
