//! Why a reconcile did not converge ([`ReconcileError`]), and the one place that decides what
//! happens next ([`error_policy`]).
//!
//! A reconciler never decides whether to retry: it returns the error it met, with its cause
//! (a kernel error keeps its [`ErrorKind`]), and the driver asks [`error_policy`]. So "EEXIST
//! is worth a retry, EPERM is not" is written once, here, and unit-tested.

use std::time::Duration;

#[cfg(doc)]
use crate::kernel::ErrorKind;
use crate::{kernel::KernelError, store::StoreError};

/// Why a reconcile did not converge.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The kernel refused or failed; its [`ErrorKind`] says whether a retry can help.
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// The database failed (busy, I/O): worth a retry.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Something this object needs is not there yet (its namespace, its bridge, its
    /// network): it will be, so retry.
    #[error("{0}")]
    Waiting(String),
    /// The spec or the host must change first (an interface weft does not own, a master
    /// that is not a bridge, an adopted namespace that is gone): retrying alone cannot help.
    #[error("{0}")]
    Conflict(String),
    /// The reconcile panicked (a bug); the worker caught it and lives on.
    #[error("internal error while reconciling (a bug; please report it): {0}")]
    Panicked(String),
}

impl ReconcileError {
    /// An error that retrying can fix: something needed is not there yet.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::Waiting(message.into())
    }

    /// An error that needs a change of spec or of the host (an interface weft does not own).
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::Conflict(message.into())
    }

    /// True when [`error_policy`] retries it.
    pub fn is_transient(&self) -> bool {
        error_policy(self) == Retry::Backoff
    }
}

/// What to do after a failed reconcile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Queue the key again after the queue's capped exponential backoff.
    Backoff,
    /// Leave it until something changes (its spec, the host; the periodic resync looks again).
    AwaitChange,
}

/// The error policy: whether a failed reconcile is retried, from the error's kind alone.
///
/// - kernel errors: retried unless the request itself is wrong ([`ErrorKind::Invalid`]) or
///   weftd is not permitted ([`ErrorKind::PermissionDenied`]); "exists", "not found", "busy",
///   a vanished namespace, a lost connection are races that a fresh look resolves;
/// - store errors and missing dependencies: retried;
/// - conflicts: not retried;
/// - panics: retried with backoff (a bug may depend on timing; the backoff caps the cost).
pub fn error_policy(err: &ReconcileError) -> Retry {
    match err {
        ReconcileError::Kernel(e) if !e.kind().is_transient() => Retry::AwaitChange,
        ReconcileError::Conflict(_) => Retry::AwaitChange,
        ReconcileError::Kernel(_)
        | ReconcileError::Store(_)
        | ReconcileError::Waiting(_)
        | ReconcileError::Panicked(_) => Retry::Backoff,
    }
}

/// What a successful reconcile asks of the driver (kube-runtime's `Action`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Converged: look again when something changes (an API write, a netlink notification,
    /// the resync).
    AwaitChange,
    /// Converged for now, but look again after this long.
    Requeue(Duration),
}

#[cfg(test)]
mod tests {
    use nix::errno::Errno;

    use super::*;

    fn kernel(errno: Errno) -> ReconcileError {
        ReconcileError::Kernel(KernelError::from_errno("test", errno))
    }

    /// Exists, gone, busy, unreachable: a fresh look resolves them, so they back off.
    #[test]
    fn races_in_the_kernel_are_retried() {
        for errno in [
            Errno::EEXIST,
            Errno::ENODEV,
            Errno::ENOENT,
            Errno::EBUSY,
            Errno::ENETUNREACH,
            Errno::ESRCH,
            Errno::EOPNOTSUPP,
            Errno::ERANGE,
        ] {
            assert_eq!(error_policy(&kernel(errno)), Retry::Backoff, "{errno:?}");
        }
    }

    /// The same request would fail again: no retry until something changes.
    #[test]
    fn invalid_requests_and_missing_permission_wait_for_a_change() {
        for errno in [Errno::EINVAL, Errno::EPERM, Errno::EACCES] {
            assert_eq!(
                error_policy(&kernel(errno)),
                Retry::AwaitChange,
                "{errno:?}"
            );
        }
    }

    /// A namespace re-created by its own reconcile makes the retry succeed.
    #[test]
    fn a_vanished_namespace_is_retried() {
        let e = ReconcileError::Kernel(crate::kernel::KernelError::NamespaceGone {
            op: "open".into(),
            path: "/run/netns/x".into(),
        });
        assert_eq!(error_policy(&e), Retry::Backoff);
    }

    /// No errno: the request may never have reached the kernel; a retry opens a new socket.
    #[test]
    fn a_lost_netlink_connection_is_retried() {
        let e = ReconcileError::Kernel(KernelError::Netlink {
            op: "get link".into(),
            errno: None,
            message: "connection closed".into(),
        });
        assert_eq!(error_policy(&e), Retry::Backoff);
    }

    /// The two reconciler-made kinds, and a panic, each get the decision documented above.
    #[test]
    fn conflicts_wait_and_dependencies_retry() {
        assert_eq!(
            error_policy(&ReconcileError::permanent("not ours")),
            Retry::AwaitChange
        );
        assert_eq!(
            error_policy(&ReconcileError::transient("namespace not ready")),
            Retry::Backoff
        );
        assert_eq!(
            error_policy(&ReconcileError::Panicked("boom".into())),
            Retry::Backoff
        );
    }

    /// Status messages carry the cause as is, with no wrapper text to strip.
    #[test]
    fn messages_are_the_cause_itself() {
        assert_eq!(
            ReconcileError::permanent("not ours").to_string(),
            "not ours"
        );
        assert!(kernel(Errno::EEXIST).to_string().contains("File exists"));
    }
}
