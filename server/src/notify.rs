//! systemd's readiness protocol (`Type=notify`, sd_notify(3)) in a few lines over a Unix
//! datagram socket: `READY=1` once the socket serves and the start-up reconcile is queued,
//! `STOPPING=1` when shutdown begins, and `WATCHDOG=1` every half `WatchdogSec=` while the
//! runtime runs. Without `NOTIFY_SOCKET` (not under systemd) every call does nothing.
//!
//! The socket is `NOTIFY_SOCKET`: a path, or an abstract name when it starts with `@`. A
//! message that cannot be sent is logged, never fatal: systemd then times the start out or
//! restarts weftd, which says more than an exit would.

use std::{
    os::unix::net::{SocketAddr, UnixDatagram},
    time::Duration,
};

/// Where systemd listens, from `NOTIFY_SOCKET`.
#[derive(Clone, Debug)]
pub struct Notifier {
    addr: Option<String>,
}

impl Notifier {
    /// The notifier of this process's environment (`NOTIFY_SOCKET`), or one that does nothing.
    pub fn from_env() -> Notifier {
        Notifier {
            addr: std::env::var("NOTIFY_SOCKET")
                .ok()
                .filter(|a| !a.is_empty()),
        }
    }

    /// Sends one message (`KEY=VALUE` lines); does nothing without a socket.
    pub fn send(&self, state: &str) {
        let Some(addr) = &self.addr else {
            return;
        };
        if let Err(error) = send_to(addr, state) {
            tracing::warn!(socket = %addr, %error, state, "cannot notify systemd");
        }
    }

    /// `READY=1`, with a status line `systemctl status` shows.
    pub fn ready(&self, status: &str) {
        self.send(&format!(
            "READY=1\nSTATUS={status}\nMAINPID={}",
            std::process::id()
        ));
    }

    /// `STOPPING=1`.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=shutting down");
    }

    /// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC`, when it is set and
    /// `WATCHDOG_PID` (if set) is this process.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.addr.as_ref()?;
        watchdog_interval(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
            std::process::id(),
        )
    }

    /// Sends `WATCHDOG=1` every [`Self::watchdog_interval`] until the task is dropped or
    /// aborted; does nothing without a watchdog.
    pub async fn run_watchdog(self) {
        let Some(every) = self.watchdog_interval() else {
            return;
        };
        tracing::debug!(?every, "pinging the systemd watchdog");
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            self.send("WATCHDOG=1");
        }
    }
}

/// Half the watchdog period, from the environment's values.
fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok() != Some(me)
    {
        return None;
    }
    let usec: u64 = usec?.trim().parse().ok().filter(|u| *u > 0)?;
    Some(Duration::from_micros(usec / 2))
}

/// One datagram to `addr` (a path, or `@name` for an abstract socket).
fn send_to(addr: &str, state: &str) -> std::io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    match addr.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let to = SocketAddr::from_abstract_name(name.as_bytes())?;
            sock.send_to_addr(state.as_bytes(), &to)?;
        }
        None => {
            sock.send_to(state.as_bytes(), addr)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_is_half_the_period_for_this_pid_only() {
        let me = 42;
        assert_eq!(
            watchdog_interval(Some("30000000"), None, me),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            watchdog_interval(Some("30000000"), Some("42"), me),
            Some(Duration::from_secs(15))
        );
        assert_eq!(watchdog_interval(Some("30000000"), Some("7"), me), None);
        assert_eq!(watchdog_interval(None, None, me), None);
        assert_eq!(watchdog_interval(Some("0"), None, me), None);
        assert_eq!(watchdog_interval(Some("x"), None, me), None);
    }

    #[test]
    fn messages_reach_path_and_abstract_sockets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        Notifier {
            addr: Some(path.display().to_string()),
        }
        .stopping();
        let mut buf = [0u8; 256];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1\nSTATUS=shutting down");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("weft-notify-test-{}", std::process::id());
        let rx = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
        Notifier {
            addr: Some(format!("@{name}")),
        }
        .send("WATCHDOG=1");
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"WATCHDOG=1");
        // Without a socket nothing happens, and nothing fails.
        Notifier { addr: None }.ready("x");
    }
}
