//! Admission control: how many connections and Watch streams weftd holds open, per peer and
//! in all (`--max-connections`, `--max-connections-per-peer`, `--max-watches`,
//! `--max-watches-per-peer`).
//!
//! A *peer* is who is on the other end: on the Unix socket the uid `SO_PEERCRED` reports
//! (tonic's [`UdsConnectInfo`]), over TCP the remote IP address ([`TcpConnectInfo`]). The key
//! is derived here, from the connect info alone, by [`peer_of_request`] and [`PeerOf`], so a
//! richer notion of peer can replace it in one place.
//!
//! [`Slots`] counts what is open: [`Slots::take`] hands out a [`Slot`] that gives its place
//! back when dropped. Connections are counted by [`limit_incoming`], a wrapper of the accept
//! stream: a connection over a limit is logged with the flag that raises the limit (at most
//! one line per 10 s in a flood) and, on the Unix socket, its first call is answered
//! RESOURCE_EXHAUSTED with that text by a minimal HTTP/2 responder ([`Refuse::Answer`]);
//! on TCP it is closed at once. One within the limits carries its slot in [`Counted`] until
//! the connection ends. A
//! Watch stream holds its slot in the task that feeds it, which ends when the client goes
//! away, so a watcher that disconnects frees its place; one over a limit is refused with
//! RESOURCE_EXHAUSTED.

use std::{
    collections::HashMap,
    fmt, io,
    net::IpAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::{Connected, TcpConnectInfo, UdsConnectInfo};

use crate::{logging::Throttle, model::limits::limits};

/// Who is on the other end of a connection.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PeerKey {
    /// A Unix socket peer, by uid.
    Uid(u32),
    /// A TCP peer, by address.
    Ip(IpAddr),
    /// A peer whose credentials or address could not be read.
    Unknown,
}

/// Shows the peer as messages name it: `uid 1000`, `address 10.0.0.1`.
impl fmt::Display for PeerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerKey::Uid(u) => write!(f, "uid {u}"),
            PeerKey::Ip(a) => write!(f, "address {a}"),
            PeerKey::Unknown => f.write_str("an unknown peer"),
        }
    }
}

/// Connect info that names a peer.
pub trait PeerOf {
    /// The peer this connection is from.
    fn peer(&self) -> PeerKey;
}

/// A peer on weftd's own Unix listener ([`crate::listen::unix_incoming`]) is its uid.
impl PeerOf for crate::access::UnixConnectInfo {
    fn peer(&self) -> PeerKey {
        self.0
            .as_ref()
            .map_or(PeerKey::Unknown, |c| PeerKey::Uid(c.uid))
    }
}

/// A Unix socket peer is its uid.
impl PeerOf for UdsConnectInfo {
    fn peer(&self) -> PeerKey {
        self.peer_cred
            .map_or(PeerKey::Unknown, |c| PeerKey::Uid(c.uid()))
    }
}

/// A TCP peer is its remote address.
impl PeerOf for TcpConnectInfo {
    fn peer(&self) -> PeerKey {
        self.remote_addr()
            .map_or(PeerKey::Unknown, |a| PeerKey::Ip(a.ip()))
    }
}

/// The peer a request came from, by the connect info tonic put in its extensions.
pub fn peer_of_request<T>(req: &tonic::Request<T>) -> PeerKey {
    if let Some(info) = req.extensions().get::<crate::access::UnixConnectInfo>() {
        return info.peer();
    }
    if let Some(info) = req.extensions().get::<UdsConnectInfo>() {
        return info.peer();
    }
    req.remote_addr()
        .map_or(PeerKey::Unknown, |a| PeerKey::Ip(a.ip()))
}

limits! {
    /// The limits on open connections and Watch streams.
    ConnLimits {
        /// Connections in all (`--max-connections`).
        connections = DEFAULT_MAX_CONNECTIONS(1024);
        /// Connections from one peer (`--max-connections-per-peer`).
        connections_per_peer = DEFAULT_MAX_CONNECTIONS_PER_PEER(256);
        /// Watch streams in all (`--max-watches`).
        watches = DEFAULT_MAX_WATCHES(1024);
        /// Watch streams of one peer (`--max-watches-per-peer`).
        watches_per_peer = DEFAULT_MAX_WATCHES_PER_PEER(256);
    }
}

impl ConnLimits {
    /// The slots of connections.
    pub fn connections(&self) -> Slots {
        Slots::new(
            "connections",
            (self.connections, "--max-connections"),
            (self.connections_per_peer, "--max-connections-per-peer"),
        )
    }

    /// The slots of Watch streams.
    pub fn watches(&self) -> Slots {
        Slots::new(
            "Watch streams",
            (self.watches, "--max-watches"),
            (self.watches_per_peer, "--max-watches-per-peer"),
        )
    }
}

/// What is open now.
#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_peer: HashMap<PeerKey, usize>,
}

/// Counted places for one kind of thing (connections, Watch streams), per peer and in all.
/// Cheap to clone; clones share the counts.
#[derive(Clone, Debug)]
pub struct Slots {
    what: &'static str,
    total: (usize, &'static str),
    per_peer: (usize, &'static str),
    counts: Arc<Mutex<Counts>>,
}

/// One place taken in [`Slots`]; dropping it gives the place back.
#[derive(Debug)]
pub struct Slot {
    counts: Arc<Mutex<Counts>>,
    peer: PeerKey,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by_peer.get_mut(&self.peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.by_peer.remove(&self.peer);
            }
        }
    }
}

impl Slots {
    /// Slots for `what` ("connections"): at most `total.0` in all and `per_peer.0` per peer,
    /// the `.1`s naming the flags that raise them.
    pub fn new(
        what: &'static str,
        total: (usize, &'static str),
        per_peer: (usize, &'static str),
    ) -> Self {
        Self {
            what,
            total,
            per_peer,
            counts: Default::default(),
        }
    }

    /// Takes a place for `peer`; the refusal names the limit and its flag. Root on the Unix
    /// socket (uid 0) is held to the per-peer limit only.
    pub fn take(&self, peer: PeerKey) -> Result<Slot, String> {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let mine = c.by_peer.get(&peer).copied().unwrap_or(0);
        if mine >= self.per_peer.0 {
            return Err(format!(
                "too many {} from {peer}: {mine} open, at most {} per peer; close some, or \
                 raise the limit with {}",
                self.what, self.per_peer.0, self.per_peer.1
            ));
        }
        // Root on the socket is never kept out by the others: however many connections
        // strangers hold, the administrator can still reach weftd (its own budget, per peer,
        // still applies).
        if c.total >= self.total.0 && peer != PeerKey::Uid(0) {
            return Err(format!(
                "too many {}: {} open, at most {} in all; close some, or raise the limit with {}",
                self.what, c.total, self.total.0, self.total.1
            ));
        }
        c.total += 1;
        *c.by_peer.entry(peer.clone()).or_default() += 1;
        Ok(Slot {
            counts: self.counts.clone(),
            peer,
        })
    }

    /// How many are open, in all and for `peer`.
    pub fn open(&self, peer: &PeerKey) -> (usize, usize) {
        let c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        (c.total, c.by_peer.get(peer).copied().unwrap_or(0))
    }
}

/// An accepted connection holding its place in the connection [`Slots`] until it is dropped.
/// It reads, writes and reports its connect info as the connection it wraps.
#[derive(Debug)]
pub struct Counted<IO> {
    io: IO,
    _slot: Slot,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Counted<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

crate::delegate::delegate_async_write!([IO: AsyncWrite + Unpin] Counted<IO> => io);

/// The connect info is the wrapped connection's, so `UdsConnectInfo`, `remote_addr()` and
/// TLS peer certificates read as they would without the wrapper.
impl<IO: Connected> Connected for Counted<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

/// What happens to a connection past a limit.
#[derive(Clone, Debug)]
pub enum Refuse {
    /// Closed at once (TCP: the client expects TLS, which only tonic speaks).
    Close,
    /// Its calls answered RESOURCE_EXHAUSTED with the reason, then closed (the Unix
    /// socket): at most [`ANSWERED_AT_ONCE`] such connections at a time, per peer a quarter
    /// of that; past those it is closed too.
    Answer(Slots),
}

/// How many connections past a limit are answered at once; more are closed unanswered.
pub const ANSWERED_AT_ONCE: usize = 32;

impl Refuse {
    /// Answers over-limit connections with RESOURCE_EXHAUSTED.
    pub fn answer() -> Refuse {
        Refuse::Answer(Slots::new(
            "refused connections being answered",
            (ANSWERED_AT_ONCE, "(fixed)"),
            (ANSWERED_AT_ONCE / 4, "(fixed)"),
        ))
    }
}

/// Wraps an accept stream: each connection takes a place in `slots` for its peer. One past a
/// limit is logged (with the flag that raises the limit) and refused as `refuse` says.
pub fn limit_incoming<S, IO>(
    incoming: S,
    slots: Slots,
    refuse: Refuse,
) -> impl Stream<Item = io::Result<Counted<IO>>>
where
    S: Stream<Item = io::Result<IO>>,
    IO: Connected + AsyncRead + AsyncWrite + Send + Unpin + 'static,
    IO::ConnectInfo: PeerOf,
{
    let log = Throttle::new(REFUSAL_LOG_EVERY);
    incoming.filter_map(move |accepted| match accepted {
        Err(e) => Some(Err(e)),
        Ok(io) => {
            let peer = io.connect_info().peer();
            match slots.take(peer.clone()) {
                Ok(slot) => Some(Ok(Counted { io, _slot: slot })),
                Err(why) => {
                    log_refusal(&log, &why);
                    if let Refuse::Answer(answering) = &refuse
                        && let Ok(slot) = answering.take(peer)
                    {
                        tokio::spawn(async move {
                            answer_exhausted(io, &why).await;
                            drop(slot);
                        });
                    }
                    None
                }
            }
        }
    })
}

/// How long a refused connection is served before it is closed.
const ANSWER_FOR: std::time::Duration = std::time::Duration::from_secs(5);

/// Speaks just enough HTTP/2 on `io` to answer its first call with RESOURCE_EXHAUSTED and
/// `why` (a trailers-only gRPC response), then closes it: the client sees the limit and the
/// flag that raises it instead of a connection reset.
async fn answer_exhausted<IO: AsyncRead + AsyncWrite + Unpin>(io: IO, why: &str) {
    let served = async {
        let Ok(mut conn) = h2::server::handshake(io).await else {
            return;
        };
        if let Some(Ok((_request, mut respond))) = conn.accept().await {
            let response = tonic::codegen::http::Response::builder()
                .status(200)
                .header("content-type", "application/grpc")
                .header(
                    "grpc-status",
                    (tonic::Code::ResourceExhausted as i32).to_string(),
                )
                .header("grpc-message", grpc_message(why))
                .body(());
            if let Ok(response) = response {
                let _ = respond.send_response(response, true);
            }
        }
        conn.graceful_shutdown();
        while let Some(Ok(_)) = conn.accept().await {}
    };
    let _ = tokio::time::timeout(ANSWER_FOR, served).await;
}

/// `text` as a `grpc-message` header: percent-encoded outside printable ASCII and `%`.
fn grpc_message(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// How often a flood of refused connections is logged.
const REFUSAL_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Logs a refused connection without letting a flood of them flood the log: the first, then
/// at most one line per [`REFUSAL_LOG_EVERY`] saying how many were refused meanwhile.
fn log_refusal(log: &Throttle, why: &str) {
    match log.note() {
        None => {}
        Some(0) => tracing::warn!("refused a connection: {why}"),
        Some(more) => tracing::warn!(
            "refused a connection: {why} ({more} more refused since the last such line)"
        ),
    }
}

#[cfg(test)]
mod tests {
    //! The counting, per peer and in all, and that a dropped slot frees its place.

    use super::*;

    fn slots(total: usize, per_peer: usize) -> Slots {
        Slots::new(
            "connections",
            (total, "--max-c"),
            (per_peer, "--max-c-per-peer"),
        )
    }

    #[test]
    fn per_peer_limit_leaves_other_peers_alone() {
        let s = slots(10, 2);
        let a = PeerKey::Uid(1000);
        let b = PeerKey::Uid(0);
        let _a1 = s.take(a.clone()).unwrap();
        let a2 = s.take(a.clone()).unwrap();
        let e = s.take(a.clone()).unwrap_err();
        assert!(e.contains("from uid 1000"), "{e}");
        assert!(e.contains("at most 2 per peer"), "{e}");
        assert!(e.contains("--max-c-per-peer"), "{e}");
        let _b1 = s.take(b.clone()).unwrap();
        assert_eq!(s.open(&a), (3, 2));
        drop(a2);
        assert_eq!(s.open(&a), (2, 1));
        let _a3 = s.take(a).unwrap();
    }

    #[test]
    fn total_limit_counts_every_peer() {
        let s = slots(2, 2);
        let _x = s.take(PeerKey::Uid(1)).unwrap();
        let y = s.take(PeerKey::Ip("10.0.0.1".parse().unwrap())).unwrap();
        let e = s.take(PeerKey::Unknown).unwrap_err();
        assert!(e.contains("at most 2 in all"), "{e}");
        assert!(e.contains("--max-c)") || e.contains("--max-c"), "{e}");
        drop(y);
        let _z = s.take(PeerKey::Unknown).unwrap();
        assert_eq!(s.open(&PeerKey::Uid(1)), (2, 1));
    }

    #[test]
    fn grpc_messages_are_percent_encoded() {
        assert_eq!(grpc_message("too many: 3 open"), "too many: 3 open");
        assert_eq!(grpc_message("50% \u{e9}\n"), "50%25 %C3%A9%0A");
    }

    /// Strangers filling every place in all do not keep root out; root's own per-peer limit
    /// still holds.
    #[test]
    fn root_is_held_to_its_per_peer_limit_only() {
        let s = slots(2, 2);
        let _x = s.take(PeerKey::Uid(1000)).unwrap();
        let _y = s.take(PeerKey::Ip("10.0.0.1".parse().unwrap())).unwrap();
        assert!(s.take(PeerKey::Uid(1001)).is_err());
        let _r1 = s.take(PeerKey::Uid(0)).unwrap();
        let _r2 = s.take(PeerKey::Uid(0)).unwrap();
        let e = s.take(PeerKey::Uid(0)).unwrap_err();
        assert!(e.contains("per peer"), "{e}");
        assert_eq!(s.open(&PeerKey::Uid(0)), (4, 2));
    }

    #[test]
    fn peers_are_shown_by_uid_or_address() {
        assert_eq!(PeerKey::Uid(0).to_string(), "uid 0");
        assert_eq!(
            PeerKey::Ip("::1".parse().unwrap()).to_string(),
            "address ::1"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_dropped_and_a_closed_one_frees_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let s = slots(10, 1);
        let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
        let mut limited = Box::pin(limit_incoming(incoming, s.clone(), Refuse::Close));
        let c1 = tokio::net::UnixStream::connect(&path).await.unwrap();
        let first = limited.next().await.unwrap().unwrap();
        let me = first.connect_info().peer();
        assert!(matches!(me, PeerKey::Uid(_)), "{me:?}");
        // A second connection from the same uid is closed: the client reads end of file.
        let mut c2 = tokio::net::UnixStream::connect(&path).await.unwrap();
        let next = tokio::time::timeout(std::time::Duration::from_millis(200), limited.next());
        assert!(
            next.await.is_err(),
            "the refused connection must not be handed on"
        );
        let mut buf = [0u8; 1];
        let n = tokio::io::AsyncReadExt::read(&mut c2, &mut buf)
            .await
            .unwrap_or(0);
        assert_eq!(n, 0);
        drop((first, c1));
        assert_eq!(s.open(&me), (0, 0));
        let _c3 = tokio::net::UnixStream::connect(&path).await.unwrap();
        assert!(limited.next().await.unwrap().is_ok());
    }
}
