//! The kernel layer's errors: [`KernelError`], what it means as an [`ErrorKind`], and turning
//! rtnetlink and system-call failures into it.
//!
//! Every error carries an `op` that says what was being done and where ("create veth a (peer b in
//! /run/netns/x)"), and, when the kernel answered with an error, its positive errno. Errno
//! *meaning* lives here and nowhere else: callers above `kernel/` ask [`KernelError::kind`]
//! ("already exists", "gone", "busy", "not permitted", "the namespace vanished") and never
//! compare numbers.

use nix::errno::Errno;

/// What a kernel error means to a caller: the only interpretation of errnos weft makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The object is not there: `ENOENT`, `ENODEV` (no such interface), `ESRCH` (no such
    /// route), `EADDRNOTAVAIL` (no such address).
    NotFound,
    /// The object already exists (`EEXIST`): a name taken, an address or route already there.
    Exists,
    /// The kernel refused for now (`EBUSY`, `EAGAIN`): e.g. renaming an interface that is up
    /// on older kernels.
    Busy,
    /// Not permitted (`EPERM`, `EACCES`): weftd lacks a capability, or a security module
    /// said no. Retrying does not help; the host must change.
    PermissionDenied,
    /// The network namespace the request was meant for does not exist (any more): its file
    /// is gone or is not a namespace.
    NamespaceGone,
    /// The request itself is wrong (`EINVAL`, or a value weft refused to send): the same
    /// request will fail again. (`EOPNOTSUPP` is not here: nftables says it before a module
    /// has loaded, and a retry then succeeds.)
    Invalid,
    /// A gateway is not reachable on the interface (`ENETUNREACH`): add the address first.
    Unreachable,
    /// The request may not have reached the kernel (the netlink connection died, an
    /// unparsable answer): a retry opens a new socket.
    Transport,
    /// Anything else the kernel said.
    Other,
}

impl ErrorKind {
    /// The kind an errno (positive, as in `libc`) means.
    pub fn of_errno(errno: i32) -> Self {
        match Errno::from_raw(errno) {
            Errno::ENOENT | Errno::ENODEV | Errno::ESRCH | Errno::EADDRNOTAVAIL => Self::NotFound,
            Errno::EEXIST => Self::Exists,
            Errno::EBUSY | Errno::EAGAIN => Self::Busy,
            Errno::EPERM | Errno::EACCES => Self::PermissionDenied,
            Errno::EINVAL => Self::Invalid,
            Errno::ENETUNREACH => Self::Unreachable,
            _ => Self::Other,
        }
    }

    /// True when the same request may succeed later without any change of spec or host:
    /// everything but [`ErrorKind::Invalid`] and [`ErrorKind::PermissionDenied`].
    pub fn is_transient(self) -> bool {
        !matches!(self, Self::Invalid | Self::PermissionDenied)
    }
}

/// Errors from the kernel layer.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// A netlink request failed; `errno` is the positive errno when the kernel gave one.
    #[error("{op}: {message}")]
    Netlink {
        /// What was being done.
        op: String,
        /// The kernel's errno, when known.
        errno: Option<i32>,
        /// The error text.
        message: String,
    },
    /// A system call failed.
    #[error("{op}: {source}")]
    Sys {
        /// What was being done.
        op: String,
        /// The errno.
        source: nix::Error,
    },
    /// The namespace a request was meant for is gone: its file could not be opened, or is
    /// no namespace.
    #[error("{op}: network namespace {path} does not exist")]
    NamespaceGone {
        /// What was being done.
        op: String,
        /// The namespace file.
        path: String,
    },
    /// Another I/O failure.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: String,
        /// The error.
        source: std::io::Error,
    },
}

impl KernelError {
    /// A [`KernelError::Netlink`] carrying `errno` as the kernel would have said it (the fake
    /// kernel and injected failures use this).
    pub fn from_errno(op: impl Into<String>, errno: Errno) -> Self {
        Self::Netlink {
            op: op.into(),
            errno: Some(errno as i32),
            message: describe(errno as i32),
        }
    }

    /// The errno behind the error, if there is one (`ENOENT` for a vanished namespace).
    pub fn errno(&self) -> Option<i32> {
        match self {
            KernelError::Netlink { errno, .. } => *errno,
            KernelError::Sys { source, .. } => Some(*source as i32),
            KernelError::NamespaceGone { .. } => Some(Errno::ENOENT as i32),
            KernelError::Io { source, .. } => source.raw_os_error(),
        }
    }

    /// What the error means; see [`ErrorKind`].
    pub fn kind(&self) -> ErrorKind {
        match self {
            KernelError::NamespaceGone { .. } => ErrorKind::NamespaceGone,
            KernelError::Netlink { errno: None, .. } => ErrorKind::Transport,
            other => other.errno().map_or(ErrorKind::Other, ErrorKind::of_errno),
        }
    }

    /// True if the kernel said the object already exists.
    pub fn is_exists(&self) -> bool {
        self.kind() == ErrorKind::Exists
    }

    /// True if the object (or the namespace it was in) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self.kind(), ErrorKind::NotFound | ErrorKind::NamespaceGone)
    }

    /// The same error with `outer` in front of its `op` ("create veth ...: open namespace
    /// /x").
    pub(crate) fn relabel(self, outer: &str) -> Self {
        let prefix = |op: String| format!("{outer}: {op}");
        match self {
            KernelError::Netlink { op, errno, message } => KernelError::Netlink {
                op: prefix(op),
                errno,
                message,
            },
            KernelError::Sys { op, source } => KernelError::Sys {
                op: prefix(op),
                source,
            },
            KernelError::NamespaceGone { op, path } => KernelError::NamespaceGone {
                op: prefix(op),
                path,
            },
            KernelError::Io { op, source } => KernelError::Io {
                op: prefix(op),
                source,
            },
        }
    }
}

/// A [`KernelError::NamespaceGone`] for namespace file `path`.
pub(crate) fn namespace_gone(op: impl Into<String>, path: &std::path::Path) -> KernelError {
    KernelError::NamespaceGone {
        op: op.into(),
        path: path.display().to_string(),
    }
}

/// Maps an rtnetlink error to [`KernelError::Netlink`], keeping the kernel's errno (made
/// positive). Errors that did not come from the kernel (a dead connection, a message that
/// could not be parsed) have `errno: None`.
pub(crate) fn netlink(op: impl Into<String>, err: rtnetlink::Error) -> KernelError {
    let op = op.into();
    match err {
        rtnetlink::Error::NetlinkError(msg) => match msg.code {
            Some(code) => {
                let errno = code.get().abs();
                KernelError::Netlink {
                    op,
                    errno: Some(errno),
                    message: describe(errno),
                }
            }
            // An ACK delivered as an error: not expected, but not a failure either.
            None => KernelError::Netlink {
                op,
                errno: None,
                message: "unexpected netlink ACK".to_string(),
            },
        },
        other => KernelError::Netlink {
            op,
            errno: None,
            message: other.to_string(),
        },
    }
}

/// A [`KernelError::Netlink`] for a request weft refused to send because its input was
/// invalid (errno `EINVAL`, like the kernel would have said).
pub(crate) fn invalid(op: impl Into<String>, message: impl Into<String>) -> KernelError {
    KernelError::Netlink {
        op: op.into(),
        errno: Some(Errno::EINVAL as i32),
        message: message.into(),
    }
}

/// A [`KernelError::Sys`].
pub(crate) fn sys(op: impl Into<String>, source: Errno) -> KernelError {
    KernelError::Sys {
        op: op.into(),
        source,
    }
}

/// A [`KernelError::Io`].
pub(crate) fn io(op: impl Into<String>, source: std::io::Error) -> KernelError {
    KernelError::Io {
        op: op.into(),
        source,
    }
}

/// True if `err` came from the kernel with this errno.
pub(crate) fn has_errno(err: &rtnetlink::Error, errno: Errno) -> bool {
    matches!(err, rtnetlink::Error::NetlinkError(msg)
        if msg.code.map(|c| c.get().abs()) == Some(errno as i32))
}

/// True if the rtnetlink connection itself is gone (its task ended), so the cached handle
/// must be dropped and a new socket opened.
pub(crate) fn connection_lost(err: &rtnetlink::Error) -> bool {
    matches!(err, rtnetlink::Error::RequestFailed)
}

/// "File exists (EEXIST)".
fn describe(errno: i32) -> String {
    let e = Errno::from_raw(errno);
    format!("{} ({e:?})", e.desc())
}
