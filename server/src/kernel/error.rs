//! Turning rtnetlink and system-call failures into [`KernelError`], keeping the kernel's errno.
//!
//! Every error carries an `op` that says what was being done and where ("create veth a (peer b in
//! /run/netns/x)"), and, when the kernel answered with an error, its positive errno, so callers
//! can tell "already exists" from "gone" from a real failure without parsing text.

use nix::errno::Errno;

use super::KernelError;

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
