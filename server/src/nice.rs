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
//! the API's blocking work at that priority too. Taking the priority back in the new thread
//! needs `CAP_SYS_NICE`, which weftd's unit does not grant; so a lowered thread never starts
//! one: weftd's blocking work goes through [`spawn_blocking`] and [`spawn_blocking_detached`],
//! which from a lowered thread hand the call to a runtime worker first.

use std::cell::Cell;

use nix::errno::Errno;

thread_local! {
    /// The calling thread was lowered by [`lowest_priority`].
    static LOWERED: Cell<bool> = const { Cell::new(false) };
}

/// `tokio::task::spawn_blocking(f).await`, with the pool's thread (should one be started)
/// started by a runtime worker, never by a lowered thread, whose priority it would inherit.
/// Needs a runtime (as tokio's does).
pub(crate) async fn spawn_blocking<F, T>(f: F) -> Result<T, tokio::task::JoinError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if LOWERED.get() {
        tokio::spawn(async move { tokio::task::spawn_blocking(f).await }).await?
    } else {
        tokio::task::spawn_blocking(f).await
    }
}

/// [`spawn_blocking`] without waiting for it.
pub(crate) fn spawn_blocking_detached<F>(f: F)
where
    F: FnOnce() + Send + 'static,
{
    if LOWERED.get() {
        tokio::spawn(async move {
            let _ = tokio::task::spawn_blocking(f).await;
        });
    } else {
        tokio::task::spawn_blocking(f);
    }
}

/// Gives the calling thread the lowest priority: nice 19 and the `SCHED_IDLE` policy (on
/// Linux `setpriority` with `PRIO_PROCESS` and 0, and `sched_setscheduler` with 0, apply to
/// the calling thread only, and threads it starts inherit both). Best effort: a refusal
/// leaves the thread at normal priority.
pub(crate) fn lowest_priority() {
    LOWERED.set(true);
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

    /// The calling thread's nice value and policy.
    fn priority() -> (libc::c_int, libc::c_int) {
        Errno::clear();
        // SAFETY: getpriority and sched_getscheduler take integers and only read.
        #[allow(unsafe_code)]
        let (nice, policy) = unsafe {
            (
                libc::getpriority(libc::PRIO_PROCESS, 0),
                libc::sched_getscheduler(0),
            )
        };
        assert!(!(nice == -1 && Errno::last_raw() != 0) && policy >= 0);
        (nice, policy)
    }

    /// Blocking work sent from a lowered thread, on a runtime with no blocking thread yet
    /// (so the pool starts one), runs at the priority the process had, with no privilege
    /// needed: the thread is started by a worker. Both ways, awaited and detached. With
    /// tokio's own `spawn_blocking`, the new thread is the lowered thread's child and idle.
    #[test]
    fn blocking_work_from_a_lowered_thread_runs_at_normal_priority() {
        let before = priority();
        for detached in [false, true] {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .unwrap();
            let handle = rt.handle().clone();
            let seen = std::thread::spawn(move || {
                lowest_priority();
                assert_eq!(priority(), (19, libc::SCHED_IDLE), "lowered first");
                handle.block_on(async move {
                    if detached {
                        let (tx, rx) = tokio::sync::oneshot::channel();
                        spawn_blocking_detached(move || {
                            let _ = tx.send(priority());
                        });
                        rx.await.unwrap()
                    } else {
                        spawn_blocking(priority).await.unwrap()
                    }
                })
            })
            .join()
            .unwrap();
            assert_eq!(seen, before, "detached: {detached}");
        }
    }
}
