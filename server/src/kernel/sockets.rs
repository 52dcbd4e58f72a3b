//! Sockets in the host namespace for weft's own services (the DNS resolver of
//! [`crate::dns`]): its listeners on the networks' gateways and its sockets to upstream
//! resolvers must live in the namespace weftd manages (`--host-netns`), not in the one weftd's
//! process happens to run in.
//!
//! A socket belongs to the namespace of the thread that *creates* it; binding, connecting and
//! every read and write after that may happen on any thread. So one dedicated std thread
//! (`weft-host-sockets`) enters the host namespace once (`setns`) and then does nothing but
//! create sockets on request; tokio wraps them afterwards. It is never a tokio worker, and it
//! runs nothing else, so its namespace never leaks into unrelated work. It lives as long as a
//! [`HostSockets`] handle does. A long-lived thread (rather than the short-lived ones of
//! `netns::run_in`) because a forwarded DNS query needs a fresh socket each time, and a thread
//! per query would cost more than the query.

use std::{
    io,
    net::{IpAddr, SocketAddr},
    path::Path,
    sync::mpsc,
};

use nix::sched::{CloneFlags, setns};
use socket2::{Domain, Protocol, Socket, Type};

use super::{KernelError, error, netns};

/// A job the socket thread runs.
type Job = Box<dyn FnOnce() + Send>;

/// A handle to the thread that creates sockets in the host namespace; cheap to clone.
#[derive(Clone, Debug)]
pub struct HostSockets {
    jobs: mpsc::Sender<Job>,
}

/// What kind of socket to create.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketKind {
    /// A UDP socket.
    Udp,
    /// A TCP socket.
    Tcp,
}

impl HostSockets {
    /// Starts the socket thread in `host_netns` (None: weftd's own namespace). Fails if the
    /// namespace file cannot be opened or entered.
    pub fn start(host_netns: Option<&Path>) -> Result<Self, KernelError> {
        let file = host_netns.map(netns::open).transpose()?;
        let label = host_netns.map(|p| p.display().to_string());
        let (jobs, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("weft-host-sockets".into())
            .spawn(move || {
                if let Some(file) = file
                    && let Err(e) = setns(&file, CloneFlags::CLONE_NEWNET)
                {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
                let _ = ready_tx.send(Ok(()));
                // Ends when every handle is dropped.
                while let Ok(job) = rx.recv() {
                    job();
                }
            })
            .map_err(|e| error::io("spawn the host socket thread", e))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Self { jobs }),
            Ok(Err(e)) => Err(error::sys(
                format!("setns into {}", label.unwrap_or_default()),
                e,
            )),
            Err(_) => Err(error::io(
                "host socket thread",
                io::Error::other("the thread ended before it was ready"),
            )),
        }
    }

    /// Runs `f` on the socket thread (inside the host namespace) and returns its result.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .map_err(|_| io::Error::other("the host socket thread is gone"))?;
        rx.await
            .map_err(|_| io::Error::other("the host socket thread dropped a request"))?
    }

    /// A new socket of `kind` for addresses like `ip`, created in the host namespace,
    /// non-blocking, close-on-exec; IPv6 sockets are IPv6 only.
    pub async fn socket(&self, kind: SocketKind, ip: IpAddr) -> io::Result<Socket> {
        self.run(move || new_socket(kind, ip)).await
    }

    /// A socket of `kind` bound to `addr` in the host namespace, with `IP_FREEBIND` when
    /// `freebind` (the bind succeeds before the address is on an interface, and the socket
    /// receives as soon as it is). A TCP socket is listening. Port 53 held by another socket
    /// on that address (or on the wildcard) is `EADDRINUSE`.
    pub async fn bound(
        &self,
        kind: SocketKind,
        addr: SocketAddr,
        freebind: bool,
    ) -> io::Result<Socket> {
        self.run(move || {
            let s = new_socket(kind, addr.ip())?;
            if freebind {
                match addr {
                    SocketAddr::V4(_) => s.set_freebind_v4(true)?,
                    SocketAddr::V6(_) => s.set_freebind_v6(true)?,
                }
            }
            if kind == SocketKind::Tcp {
                // Only against TIME_WAIT after a restart; a live listener still conflicts.
                s.set_reuse_address(true)?;
            }
            s.bind(&addr.into())?;
            if kind == SocketKind::Tcp {
                s.listen(1024)?;
            }
            Ok(s)
        })
        .await
    }
}

/// A non-blocking socket of `kind` for `ip`'s family (created on the calling thread).
fn new_socket(kind: SocketKind, ip: IpAddr) -> io::Result<Socket> {
    let domain = if ip.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let s = match kind {
        SocketKind::Udp => Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?,
        SocketKind::Tcp => Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?,
    };
    if ip.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_nonblocking(true)?;
    Ok(s)
}
