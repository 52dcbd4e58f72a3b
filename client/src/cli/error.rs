//! What the CLI prints when something fails, and with which exit code.
//!
//! Every failure ends as one line on stderr, `Error: <what failed>: <why>`, and exit code 1;
//! usage errors (bad flags, found by clap or by the checks after it) exit 2 in clap's format.
//! A gRPC status becomes `<why>` from its message (the server's words, verbatim), falling back to
//! a phrase per code when the message is empty, plus a hint where the code calls for one: weftd
//! unreachable, a timeout, a service this weftd does not implement.
//!
//! How the gRPC codes map (`<what>` is the operation, e.g. `create network "n1"`):
//!
//! - UNAVAILABLE, or no connection at all: `<what>: cannot reach weftd at <socket>: is weftd
//!   running? (--socket to use another)`, an [`Unreachable`];
//! - DEADLINE_EXCEEDED: `<what>: timed out after <timeout> waiting for weftd`, and for a write
//!   that the change may still be applied; a [`Failed`];
//! - any other code: `<what>: <weftd's message>`, or a phrase per code when weftd sent none;
//!   a [`Failed`], which keeps the code for the callers that act on it.
//!
//! Every one of them exits 1. The kind matters to the callers: [`Unreachable`] stops a command
//! that works through a list of names (the next name would fail the same way), and
//! [`may_have_applied`] tells `ns create --network` whether a failed Connect needs undoing.

use std::{fmt, path::PathBuf, time::Duration};

use tonic::{Code, Status};

/// Where the CLI talks to weftd.
#[derive(Clone, Debug)]
pub enum Target {
    /// A Unix socket path (`--socket`).
    Unix(PathBuf),
    /// A TCP address (`--tcp`).
    Tcp(String),
}

impl Target {
    /// Where weftd was expected, as the user gave it: the socket path or the TCP address.
    fn describe(&self) -> String {
        match self {
            Target::Unix(p) => p.display().to_string(),
            Target::Tcp(a) => a.clone(),
        }
    }

    /// The flag that picks another target, for the "use another" hint.
    fn flag(&self) -> &'static str {
        match self {
            Target::Unix(_) => "--socket",
            Target::Tcp(_) => "--tcp",
        }
    }
}

/// weftd could not be reached at all; no later request can succeed either, so commands that
/// work through a list of names stop at this error instead of repeating it.
#[derive(Debug)]
pub struct Unreachable(pub String);

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unreachable {}

/// An error that was already printed (say, one per name of `rm A B C`); `main` only turns it
/// into exit code 1.
#[derive(Debug)]
pub struct Reported;

impl fmt::Display for Reported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("one or more operations failed")
    }
}

impl std::error::Error for Reported {}

/// The message for weftd being unreachable at `target`, with the lower-level `cause` if known.
pub fn unreachable(target: &Target, cause: Option<&str>) -> Unreachable {
    let at = target.describe();
    let cause = cause.map(|c| format!(" ({c})")).unwrap_or_default();
    Unreachable(format!(
        "cannot reach weftd at {at}{cause}: is weftd running? ({} to use another)",
        target.flag()
    ))
}

/// Turns a failure to connect into a message: no socket, refused, permission denied.
pub fn connect_error(target: &Target, err: &(dyn std::error::Error + 'static)) -> Unreachable {
    // Walk down to the io::Error, which says what actually went wrong.
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            return match io.kind() {
                PermissionDenied => Unreachable(format!(
                    "permission denied connecting to weftd at {}: run weft as root or as a \
                     member of weftd's --socket-group (group weft by default, like docker's)",
                    target.describe()
                )),
                NotFound => unreachable(target, Some("no such socket")),
                ConnectionRefused => unreachable(target, Some("connection refused")),
                _ => unreachable(target, Some(&io.to_string())),
            };
        }
        cur = e.source();
    }
    unreachable(target, Some(&err.to_string()))
}

/// The error for a failed call: `<what>: <why>`, `Unreachable` when the code says so.
/// `write` says whether the call changes anything (it shapes the timeout message).
pub fn rpc(
    target: &Target,
    timeout: Duration,
    what: &str,
    status: &Status,
    write: bool,
) -> anyhow::Error {
    // A failure on the client's side of the connection (a TLS handshake weftd refused, say)
    // comes as "transport error" with the reason in its sources: say the reason.
    let detailed;
    let status = match root_cause(status) {
        Some(cause) if !status.message().contains(&cause) => {
            detailed = Status::new(status.code(), format!("{}: {cause}", status.message()));
            &detailed
        }
        _ => status,
    };
    if status.code() == Code::Unavailable {
        let msg = status.message();
        let cause = (!msg.is_empty()).then_some(msg);
        let inner = unreachable(target, cause);
        return anyhow::Error::new(Unreachable(format!("{what}: {inner}")));
    }
    anyhow::Error::new(Failed {
        code: status.code(),
        message: format!("{what}: {}", why(timeout, status, write)),
    })
}

/// The innermost source of `status`, if it has any (only client-side failures do).
fn root_cause(status: &Status) -> Option<String> {
    let mut cur = std::error::Error::source(status);
    let mut last = None;
    while let Some(e) = cur {
        last = Some(e.to_string());
        cur = e.source();
    }
    last
}

/// weftd answered a call with an error status. It prints as `<what>: <why>`; the code is kept
/// for callers that act on it (see [`code`]).
#[derive(Debug)]
pub struct Failed {
    /// The gRPC status code.
    pub code: Code,
    /// The whole line after `Error: `, as [`rpc`] worded it.
    message: String,
}

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failed {}

/// The gRPC code of a failed call: `Unavailable` when weftd could not be reached, `None` for
/// errors that did not come from a call.
pub fn code(err: &anyhow::Error) -> Option<Code> {
    if let Some(f) = err.downcast_ref::<Failed>() {
        Some(f.code)
    } else if err.is::<Unreachable>() {
        Some(Code::Unavailable)
    } else {
        None
    }
}

/// Whether a write that failed with `err` may still have been stored: weftd gives its refusals
/// (bad input, unknown or duplicate objects, a precondition, no free address) before it writes
/// anything; after a timeout, a lost connection or an internal error nobody knows.
pub fn may_have_applied(err: &anyhow::Error) -> bool {
    !matches!(
        code(err),
        Some(
            Code::InvalidArgument
                | Code::NotFound
                | Code::AlreadyExists
                | Code::FailedPrecondition
                | Code::ResourceExhausted
                | Code::OutOfRange
                | Code::PermissionDenied
                | Code::Unauthenticated
                | Code::Unimplemented
        )
    )
}

/// Everything after `<what failed>: ` for a status; `write` as in [`rpc`].
///
/// A timeout is worded by the CLI, whatever weftd said, because only the CLI knows the
/// `--timeout` it gave; otherwise weftd's message is used verbatim (trimmed), and a phrase per
/// code stands in for an empty one.
pub fn why(timeout: Duration, status: &Status, write: bool) -> String {
    let msg = status.message().trim();
    let timed_out = status.code() == Code::DeadlineExceeded
        || (status.code() == Code::Cancelled && msg.eq_ignore_ascii_case("timeout expired"));
    if timed_out {
        let after = humantime(timeout);
        return if write {
            format!(
                "timed out after {after} waiting for weftd; the change may still be applied \
                 (inspect to see; --timeout to wait longer)"
            )
        } else {
            format!("timed out after {after} waiting for weftd (--timeout to wait longer)")
        };
    }
    if !msg.is_empty() {
        return msg.to_string();
    }
    match status.code() {
        Code::NotFound => "not found".into(),
        Code::AlreadyExists => "already exists".into(),
        Code::InvalidArgument => "invalid argument".into(),
        Code::FailedPrecondition => "failed precondition".into(),
        Code::PermissionDenied => "permission denied".into(),
        Code::Unauthenticated => "unauthenticated".into(),
        Code::Unimplemented => {
            "not implemented by this weftd (is weftd older than this weft?)".into()
        }
        Code::ResourceExhausted => "resource exhausted (e.g. no free address or port)".into(),
        Code::Internal => "internal error in weftd (its log has the details)".into(),
        code => format!("{} (gRPC code {})", code.description(), code as i32),
    }
}

/// A duration as the user would have typed it: `90s`, `2m`, `1h`, `500ms`, the largest unit
/// that divides it, so that a message can be pasted back into `--timeout`.
pub fn humantime(d: Duration) -> String {
    if d.subsec_millis() != 0 || d.as_secs() == 0 {
        format!("{}ms", d.as_millis())
    } else if d.as_secs().is_multiple_of(3600) {
        format!("{}h", d.as_secs() / 3600)
    } else if d.as_secs().is_multiple_of(60) {
        format!("{}m", d.as_secs() / 60)
    } else {
        format!("{}s", d.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default `--timeout`.
    const T: Duration = Duration::from_secs(60);

    /// The default socket.
    fn sock() -> Target {
        Target::Unix("/run/weft/weftd.sock".into())
    }

    /// weftd's message says what to fix; the CLI adds only what it was doing, never rewords.
    #[test]
    fn server_message_is_printed_verbatim() {
        let e = rpc(
            &sock(),
            T,
            "inspect namespace \"x\"",
            &Status::not_found("namespace \"x\" not found"),
            false,
        );
        assert_eq!(
            e.to_string(),
            "inspect namespace \"x\": namespace \"x\" not found"
        );
    }

    /// A status without a message still says something useful, per code; a message, when
    /// there is one, wins over the phrase.
    #[test]
    fn empty_messages_get_a_phrase_per_code() {
        assert_eq!(why(T, &Status::not_found(""), false), "not found");
        assert!(why(T, &Status::unimplemented(""), false).contains("not implemented"));
        assert_eq!(
            why(
                T,
                &Status::unimplemented("networks are not implemented yet"),
                false
            ),
            "networks are not implemented yet"
        );
    }

    /// Unreachable names the socket or address tried and the flag to try another, and is an
    /// [`Unreachable`], so that `rm A B C` stops after the first.
    #[test]
    fn unavailable_says_how_to_reach_weftd() {
        let e = rpc(
            &sock(),
            T,
            "list namespaces",
            &Status::unavailable(""),
            false,
        );
        assert!(e.is::<Unreachable>());
        assert_eq!(
            e.to_string(),
            "list namespaces: cannot reach weftd at /run/weft/weftd.sock: is weftd running? \
             (--socket to use another)"
        );
        let e = connect_error(
            &Target::Tcp("127.0.0.1:1".into()),
            &std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        );
        assert_eq!(
            e.to_string(),
            "cannot reach weftd at 127.0.0.1:1 (connection refused): is weftd running? (--tcp \
             to use another)"
        );
    }

    /// The code survives the conversion to `anyhow::Error`: `ns create --network` undoes a
    /// Connect only when it may have been stored (not after NOT_FOUND, yes after a timeout).
    #[test]
    fn failed_calls_keep_their_code() {
        let e = rpc(
            &sock(),
            T,
            "connect",
            &Status::not_found("no network"),
            true,
        );
        assert_eq!(code(&e), Some(Code::NotFound));
        assert!(!may_have_applied(&e));
        let e = rpc(&sock(), T, "connect", &Status::deadline_exceeded(""), true);
        assert_eq!(code(&e), Some(Code::DeadlineExceeded));
        assert!(may_have_applied(&e));
        let e = rpc(&sock(), T, "connect", &Status::unavailable(""), true);
        assert_eq!(code(&e), Some(Code::Unavailable));
        assert!(may_have_applied(&e));
        assert_eq!(code(&anyhow::anyhow!("local")), None);
    }

    /// A timeout names `--timeout`, in the user's units; a write adds that the change may
    /// still happen, a read does not. tonic's client-side "Timeout expired" counts too.
    #[test]
    fn timeouts_name_the_flag() {
        let m = why(
            Duration::from_secs(90),
            &Status::cancelled("Timeout expired"),
            true,
        );
        assert!(m.starts_with("timed out after 90s"), "{m}");
        assert!(
            m.contains("may still be applied") && m.contains("--timeout"),
            "{m}"
        );
        let m = why(T, &Status::cancelled("Timeout expired"), false);
        assert!(!m.contains("change"), "{m}");
        assert!(why(T, &Status::deadline_exceeded(""), false).starts_with("timed out after 1m"));
    }
}
