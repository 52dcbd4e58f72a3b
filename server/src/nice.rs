//! Background work at the lowest CPU priority: the periodic check's kernel reads and store
//! lists run on threads of their own at nice 19, so on a busy host they take only the CPU
//! the API and the workers leave (a Connect during a resync pass is not slowed by it).

use nix::errno::Errno;

/// Gives the calling thread the lowest priority (nice 19; on Linux `setpriority` with
/// `PRIO_PROCESS` and 0 applies to the calling thread only, and threads it starts inherit
/// it). Best effort: a refusal leaves the thread at normal priority.
pub(crate) fn lowest_priority() {
    // SAFETY: setpriority takes three integers and changes only this thread's nice value.
    #[allow(unsafe_code)]
    let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
    if r != 0 {
        tracing::debug!(error = %Errno::last(), "could not lower a background thread's priority");
    }
}
