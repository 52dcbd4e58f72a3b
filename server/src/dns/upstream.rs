//! Forwarding names that are not weft's: where to (`--dns-upstream`, or the nameservers of
//! `--host-resolv-conf`, re-read when the file changes) and how (hickory-net's UDP and TCP
//! clients, over sockets made in the host namespace by [`HostSockets`]).
//!
//! The file is checked with one `stat` per forwarded query (device, inode, size, mtime,
//! ctime): an edit, a replacement by rename, or a new bind mount is seen by the next query,
//! and the file is parsed only then. A file with no nameservers (or `/dev/null`) means no
//! forwarding: SERVFAIL at once.
//!
//! A query goes to each upstream in turn (as glibc does: the first that answers wins; one that
//! answers SERVFAIL or REFUSED or does not answer passes to the next), over the protocol the
//! client used (a truncated UDP answer is passed on truncated, so the client retries over
//! TCP), each attempt bounded by [`ATTEMPT_TIMEOUT`] and all of them by [`FORWARD_DEADLINE`],
//! which is below the 5 s a stub resolver waits: the client gets SERVFAIL, not a timeout.

use std::{
    collections::HashMap,
    future::Future,
    io,
    net::{IpAddr, SocketAddr},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    pin::Pin,
    sync::Mutex,
    time::Duration,
};

use futures::StreamExt;
use hickory_net::{
    NetError,
    client::Client,
    runtime::{RuntimeProvider, TokioHandle, TokioTime, iocompat::AsyncIoTokioAsStd},
    tcp::TcpClientStream,
    udp::UdpClientStream,
    xfer::DnsHandle,
};
use hickory_proto::op::{DnsRequest, DnsRequestOptions, Message};

use crate::kernel::{HostSockets, SocketKind};

/// One upstream attempt.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(1500);
/// All attempts of one query together.
pub const FORWARD_DEADLINE: Duration = Duration::from_millis(4000);
/// glibc reads at most this many nameservers (MAXNS).
const MAX_NAMESERVERS: usize = 3;

/// The nameservers of a resolv.conf text: `nameserver ADDR` lines, comments (`#`, `;`)
/// skipped, port 53, at most three as glibc reads. A scoped IPv6 address (`fe80::1%eth0`)
/// is skipped: weftd cannot tell which interface the host meant.
pub fn parse_nameservers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            if words.next()? != "nameserver" {
                return None;
            }
            let addr: IpAddr = words.next()?.parse().ok()?;
            Some(SocketAddr::new(addr, 53))
        })
        .take(MAX_NAMESERVERS)
        .collect()
}

/// What identifies a version of the file: a change of any of these means read it again.
type Stamp = (u64, u64, u64, i64, i64, i64, i64);

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some((
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    ))
}

/// The upstreams and the clients that reach them.
pub struct Upstreams {
    /// `--dns-upstream`; when empty, the file's nameservers.
    fixed: Vec<SocketAddr>,
    /// `--host-resolv-conf`.
    path: PathBuf,
    /// The file as last read.
    cache: Mutex<(Option<Stamp>, Vec<SocketAddr>)>,
    /// One UDP client per upstream, made on first use.
    udp: Mutex<HashMap<SocketAddr, Client<HostProvider>>>,
    /// Makes the sockets.
    provider: HostProvider,
}

impl std::fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstreams")
            .field("fixed", &self.fixed)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Why a forward gave no answer.
#[derive(Debug)]
pub enum ForwardError {
    /// No upstream is configured.
    NoUpstream,
    /// Every upstream failed; the last error.
    Failed(String),
}

impl Upstreams {
    /// Upstreams from the settings; sockets from `sockets`.
    pub fn new(fixed: Vec<SocketAddr>, path: PathBuf, sockets: HostSockets) -> Self {
        Self {
            fixed,
            path,
            cache: Mutex::new((None, Vec::new())),
            udp: Mutex::new(HashMap::new()),
            provider: HostProvider {
                sockets,
                handle: TokioHandle::default(),
            },
        }
    }

    /// The upstreams now (the file re-read if it changed), without `ours` (weftd's own
    /// listening addresses: forwarding to itself would loop).
    pub fn current(&self, ours: impl Fn(&SocketAddr) -> bool) -> Vec<SocketAddr> {
        let list = if !self.fixed.is_empty() {
            self.fixed.clone()
        } else {
            let now = stamp(&self.path);
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if cache.0 != now || now.is_none() {
                let text = std::fs::read_to_string(&self.path).unwrap_or_default();
                let servers = parse_nameservers(&text);
                if cache.1 != servers {
                    tracing::info!(file = %self.path.display(), upstreams = ?servers,
                        "DNS upstreams (re-)read from the host's resolv.conf");
                }
                *cache = (now, servers);
            }
            cache.1.clone()
        };
        list.into_iter().filter(|a| !ours(a)).collect()
    }

    /// The cached UDP client for `addr`.
    fn udp_client(&self, addr: SocketAddr) -> Client<HostProvider> {
        let mut map = self.udp.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 16 {
            // Upstreams changed many times: start over rather than keep dead clients.
            map.clear();
        }
        map.entry(addr)
            .or_insert_with(|| {
                let stream = UdpClientStream::builder(addr, self.provider.clone())
                    .with_timeout(Some(ATTEMPT_TIMEOUT))
                    .build();
                let (client, bg) = Client::<HostProvider>::from_sender(stream);
                tokio::spawn(bg);
                client
            })
            .clone()
    }

    /// Sends `query` to `addr` over TCP on a new connection.
    async fn tcp_send(&self, addr: SocketAddr, query: DnsRequest) -> Result<Message, NetError> {
        let (connect, handle) =
            TcpClientStream::new(addr, None, Some(ATTEMPT_TIMEOUT), self.provider.clone());
        let stream = connect.await?;
        let (client, bg) = Client::<HostProvider>::with_timeout(stream, handle, ATTEMPT_TIMEOUT);
        let bg = tokio::spawn(bg);
        let out = first(client.send(query)).await;
        bg.abort();
        out
    }

    /// Forwards `query` to `upstreams` in turn, over TCP if `tcp`; the first answer that is
    /// not SERVFAIL or REFUSED (or the last answer at all).
    pub async fn forward(
        &self,
        upstreams: &[SocketAddr],
        query: &Message,
        tcp: bool,
    ) -> Result<Message, ForwardError> {
        if upstreams.is_empty() {
            return Err(ForwardError::NoUpstream);
        }
        let attempts = async {
            let mut last = Err(ForwardError::Failed("no answer".into()));
            for addr in upstreams {
                let request = DnsRequest::new(query.clone(), DnsRequestOptions::default());
                let sent = if tcp {
                    self.tcp_send(*addr, request).await
                } else {
                    first(self.udp_client(*addr).send(request)).await
                };
                match sent {
                    Ok(m) => {
                        use hickory_proto::op::ResponseCode::{Refused, ServFail};
                        let code = m.metadata.response_code;
                        last = Ok(m);
                        if code != ServFail && code != Refused {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::debug!(upstream = %addr, error = %e, "DNS upstream failed");
                        last = Err(ForwardError::Failed(format!("{addr}: {e}")));
                    }
                }
            }
            last
        };
        tokio::time::timeout(FORWARD_DEADLINE, attempts)
            .await
            .unwrap_or_else(|_| Err(ForwardError::Failed("no upstream answered in time".into())))
    }
}

/// The first response of a client's response stream.
async fn first<S>(mut responses: S) -> Result<Message, NetError>
where
    S: futures::Stream<Item = Result<hickory_proto::op::DnsResponse, NetError>> + Unpin,
{
    match tokio::time::timeout(ATTEMPT_TIMEOUT, responses.next()).await {
        Ok(Some(Ok(r))) => Ok(r.into_message()),
        Ok(Some(Err(e))) => Err(e),
        Ok(None) => Err(NetError::Message("no response")),
        Err(_) => Err(NetError::Message("timed out")),
    }
}

/// hickory-net's runtime with sockets from the host namespace: tokio for everything else.
#[derive(Clone)]
pub struct HostProvider {
    sockets: HostSockets,
    handle: TokioHandle,
}

impl std::fmt::Debug for HostProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostProvider").finish_non_exhaustive()
    }
}

type Boxed<T> = Pin<Box<dyn Send + Future<Output = Result<T, io::Error>>>>;

impl RuntimeProvider for HostProvider {
    type Handle = TokioHandle;
    type Timer = TokioTime;
    type Udp = tokio::net::UdpSocket;
    type Tcp = AsyncIoTokioAsStd<tokio::net::TcpStream>;

    fn create_handle(&self) -> Self::Handle {
        self.handle.clone()
    }

    fn connect_tcp(
        &self,
        server: SocketAddr,
        bind: Option<SocketAddr>,
        timeout: Option<Duration>,
    ) -> Boxed<Self::Tcp> {
        let sockets = self.sockets.clone();
        Box::pin(async move {
            let s = sockets.socket(SocketKind::Tcp, server.ip()).await?;
            if let Some(b) = bind {
                s.bind(&b.into())?;
            }
            let s = tokio::net::TcpSocket::from_std_stream(std::net::TcpStream::from(s));
            s.set_nodelay(true)?;
            let wait = timeout.unwrap_or(ATTEMPT_TIMEOUT);
            match tokio::time::timeout(wait, s.connect(server)).await {
                Ok(Ok(stream)) => Ok(AsyncIoTokioAsStd(stream)),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "TCP connect timed out",
                )),
            }
        })
    }

    fn bind_udp(&self, local: SocketAddr, _server: SocketAddr) -> Boxed<Self::Udp> {
        let sockets = self.sockets.clone();
        Box::pin(async move {
            let s = sockets.socket(SocketKind::Udp, local.ip()).await?;
            s.bind(&local.into())?;
            tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(s))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameservers_are_read_as_glibc_reads_them() {
        let text = "# generated\nsearch example.org\nnameserver 192.0.2.53\n\
                    ; comment\n  nameserver   2001:db8::53  # trailing\nnameserver fe80::1%eth0\n\
                    nameserver bogus\noptions ndots:2\nnameserver 192.0.2.54\nnameserver 192.0.2.55\n";
        assert_eq!(
            parse_nameservers(text),
            vec![
                "192.0.2.53:53".parse().unwrap(),
                "[2001:db8::53]:53".parse().unwrap(),
                "192.0.2.54:53".parse().unwrap(),
            ]
        );
        assert!(parse_nameservers("").is_empty());
        assert!(parse_nameservers("#nameserver 192.0.2.1\n").is_empty());
    }

    #[tokio::test]
    async fn the_file_is_read_again_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        std::fs::write(&path, "nameserver 192.0.2.1\n").unwrap();
        let up = Upstreams::new(Vec::new(), path.clone(), HostSockets::start(None).unwrap());
        assert_eq!(up.current(|_| false), vec!["192.0.2.1:53".parse().unwrap()]);
        // Replaced by rename, as resolvconf and NetworkManager do.
        let tmp = dir.path().join("new");
        std::fs::write(&tmp, "nameserver 192.0.2.2\nnameserver 192.0.2.3\n").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert_eq!(up.current(|_| false).len(), 2);
        assert_eq!(
            up.current(|a| a.ip().to_string() == "192.0.2.2"),
            vec!["192.0.2.3:53".parse().unwrap()]
        );
        std::fs::remove_file(&path).unwrap();
        assert!(up.current(|_| false).is_empty(), "no file, no upstream");
        let fixed = Upstreams::new(
            vec!["192.0.2.9:5353".parse().unwrap()],
            path,
            HostSockets::start(None).unwrap(),
        );
        assert_eq!(
            fixed.current(|_| false),
            vec!["192.0.2.9:5353".parse().unwrap()]
        );
    }
}
