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

use nix::errno::Errno;

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
