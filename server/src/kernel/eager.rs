//! A netlink socket whose connection reads the kernel's answer as soon as it sent the request.
//!
//! The kernel handles an rtnetlink request inside the `sendmsg` that carries it: when the
//! send returns, the answer (or the first part of a dump's) is already queued on the socket.
//! The stock tokio socket of `netlink-sys` reads only once the reactor has reported the socket
//! readable, and `netlink-proto`'s connection sends one request as the last step of its poll
//! and returns. So every answer waited for the reactor's report: in a multi-thread runtime the
//! reactor is polled by whichever worker parks on it, often the other one, asleep in
//! `epoll_wait` on another CPU, which then ran the connection task there and woke the
//! requester back.
//!
//! [`EagerSocket`] tries the read (and the send) first, before asking the reactor, and notes
//! each send; [`Eager`] polls the connection again while its last poll sent something, so the
//! answer is read and handed to the requester in the same turn, on the thread that sent the
//! request, and queued requests go out one after another. The reactor usually still reports
//! the answer (the read interest is registered before the send), which costs one more poll
//! that finds nothing, but nothing waits for it. Measured in BENCHMARKS.md ("Session 36"):
//! weft's Connect p50 0.05-0.15 ms lower at N=100 in four of five comparisons, the in-process
//! floor's 0.14-0.23 ms lower.
//!
//! Two bounds keep a worker shared: a turn stops sending after [`TURN`] (a send can block for
//! as long as the kernel's work, ~20 ms for a link delete) and yields; and every read and send
//! is charged to tokio's cooperative budget, as the stock socket's are, so a long dump yields
//! every 128 parts.

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::atomic::{AtomicBool, Ordering},
    task::{Context, Poll, ready},
    time::{Duration, Instant},
};

use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{AsyncSocket, Socket, SocketAddr};
use rtnetlink::proto::Connection;
use tokio::{io::unix::AsyncFd, task::coop};

/// How long a turn of the connection goes on sending queued requests: past this, it yields
/// to the runtime's other tasks and goes on at its next turn. A Connect's requests take
/// 0.01-0.6 ms each; a link delete ~20 ms, which ends the turn by itself.
const TURN: Duration = Duration::from_millis(1);

/// A non-blocking netlink socket registered with the tokio reactor, read before the reactor
/// is asked.
pub(crate) struct EagerSocket {
    fd: AsyncFd<Socket>,
    /// A request was sent since the flag was last taken ([`Eager`] takes it).
    sent: AtomicBool,
}

impl EagerSocket {
    /// Reads with `read` at once, and only when nothing is queued, waits for the reactor to
    /// report the socket readable.
    fn poll_read<T>(
        &self,
        cx: &mut Context<'_>,
        mut read: impl FnMut(&Socket) -> io::Result<T>,
    ) -> Poll<io::Result<T>> {
        let budget = ready!(coop::poll_proceed(cx));
        match read(self.fd.get_ref()) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            done => {
                budget.made_progress();
                return Poll::Ready(done);
            }
        }
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            if let Ok(done) = guard.try_io(|fd| read(fd.get_ref())) {
                budget.made_progress();
                return Poll::Ready(done);
            }
        }
    }

    /// Sends with `send` at once, and only when the socket's buffer is full, waits for the
    /// reactor to report it writable; notes the send. (A new socket's first send would
    /// otherwise wait for the reactor's first report, which is a new namespace's first
    /// request.)
    fn poll_write(
        &self,
        cx: &mut Context<'_>,
        send: impl Fn(&Socket) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        let budget = ready!(coop::poll_proceed(cx));
        let sent = match send(self.fd.get_ref()) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => loop {
                let mut guard = ready!(self.fd.poll_write_ready(cx))?;
                if let Ok(sent) = guard.try_io(|fd| send(fd.get_ref())) {
                    break sent;
                }
            },
            sent => sent,
        };
        budget.made_progress();
        if sent.is_ok() {
            self.sent.store(true, Ordering::Relaxed);
        }
        Poll::Ready(sent)
    }

    /// Whether a request was sent since the last call.
    fn take_sent(&self) -> bool {
        self.sent.swap(false, Ordering::Relaxed)
    }
}

impl AsyncSocket for EagerSocket {
    fn socket_ref(&self) -> &Socket {
        self.fd.get_ref()
    }

    fn socket_mut(&mut self) -> &mut Socket {
        self.fd.get_mut()
    }

    fn new(protocol: isize) -> io::Result<Self> {
        let socket = Socket::new(protocol)?;
        socket.set_non_blocking(true)?;
        // SAFETY: the `Socket` owns its descriptor and closes it only when dropped. Safe code
        // could still swap it through `socket_mut` (`mem::replace`); weft only sets options
        // through it (conn.rs), so the descriptor stays open and the same while registered.
        #[allow(unsafe_code)]
        let fd = unsafe { AsyncFd::register(socket) }.map_err(|e| e.into_parts().1)?;
        Ok(EagerSocket {
            fd,
            sent: AtomicBool::new(false),
        })
    }

    fn poll_send(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write(cx, |fd| fd.send(buf, 0))
    }

    fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        addr: &SocketAddr,
    ) -> Poll<io::Result<usize>> {
        self.poll_write(cx, |fd| fd.send_to(buf, addr, 0))
    }

    fn poll_recv<B>(&self, cx: &mut Context<'_>, buf: &mut B) -> Poll<io::Result<()>>
    where
        B: bytes::BufMut,
    {
        self.poll_read(cx, |fd| fd.recv(buf, 0).map(|_| ()))
    }

    fn poll_recv_from<B>(&self, cx: &mut Context<'_>, buf: &mut B) -> Poll<io::Result<SocketAddr>>
    where
        B: bytes::BufMut,
    {
        self.poll_read(cx, |fd| fd.recv_from(buf, 0).map(|(_, addr)| addr))
    }

    fn poll_recv_from_full(&self, cx: &mut Context<'_>) -> Poll<io::Result<(Vec<u8>, SocketAddr)>> {
        self.poll_read(cx, Socket::recv_from_full)
    }
}

/// An rtnetlink connection over an [`EagerSocket`], the task that serves a [`rtnetlink::Handle`].
pub(crate) struct Eager {
    connection: Connection<RouteNetlinkMessage, EagerSocket>,
    /// How long a turn goes on sending ([`TURN`]; tests that must not depend on the
    /// machine's speed set it longer).
    turn: Duration,
}

impl Eager {
    /// Serves `connection`, with turns of [`TURN`].
    pub(crate) fn new(connection: Connection<RouteNetlinkMessage, EagerSocket>) -> Eager {
        Eager {
            connection,
            turn: TURN,
        }
    }
}

impl Future for Eager {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let start = Instant::now();
        loop {
            // One poll reads what is queued, hands it to the requesters, takes the new
            // requests and sends the first; the next one reads its answer.
            if Pin::new(&mut self.connection).poll(cx).is_ready() {
                return Poll::Ready(());
            }
            if !self.connection.socket_mut().take_sent() {
                return Poll::Pending;
            }
            if start.elapsed() >= self.turn {
                // The answer just sent is read at the next turn, right after the others'.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Each test runs on a thread of its own, in a network namespace it made (`unshare`). All
    //! but `with_a_running_runtime_concurrent_requests_all_end` poll by hand inside a runtime
    //! whose reactor is never run: only the socket's own reads can answer.

    use std::{
        future::Future,
        pin::Pin,
        sync::{Arc, atomic::AtomicUsize},
        task::{Context, Poll, Waker},
    };

    use futures::{FutureExt, TryStreamExt, future::BoxFuture};
    use nix::sched::{CloneFlags, unshare};

    use super::*;

    /// Runs `f` on a thread in a new network namespace (its loopback down, nothing else in
    /// it), inside a runtime's context that nothing drives.
    fn in_scratch_namespace(f: impl FnOnce() + Send + 'static) {
        std::thread::spawn(move || {
            unshare(CloneFlags::CLONE_NEWNET).expect("unshare a network namespace");
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
                .unwrap();
            let _entered = rt.enter();
            f();
        })
        .join()
        .unwrap();
    }

    fn poll<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
        Pin::new(f).poll(&mut Context::from_waker(Waker::noop()))
    }

    fn open() -> (Eager, rtnetlink::Handle) {
        let (connection, handle, _) =
            rtnetlink::new_connection_with_socket::<EagerSocket>().unwrap();
        (Eager::new(connection), handle)
    }

    /// [`open`], with turns that never run out: what a poll does does not depend on how
    /// fast this machine is.
    fn open_untimed() -> (Eager, rtnetlink::Handle) {
        let (mut connection, handle) = open();
        connection.turn = Duration::from_secs(3600);
        (connection, handle)
    }

    #[test]
    fn a_request_is_answered_in_the_poll_that_sent_it() {
        in_scratch_namespace(|| {
            let (mut connection, handle) = open_untimed();
            let mut get = handle
                .link()
                .get()
                .match_name("lo".to_string())
                .execute()
                .try_collect::<Vec<_>>()
                .boxed();
            assert!(poll(&mut get).is_pending(), "nothing sent yet");
            // One poll sends the request and reads its answer, without the reactor.
            assert!(poll(&mut connection).is_pending());
            let Poll::Ready(Ok(links)) = poll(&mut get) else {
                panic!("the answer was not read in the poll that sent the request");
            };
            assert_eq!(links.len(), 1);
        });
    }

    /// Queues a create of veth pairs `ea<i>`/`eb<i>` for each i in `pairs`, each request
    /// polled once (so it is on the connection's channel).
    fn queue_pairs(
        handle: &rtnetlink::Handle,
        pairs: std::ops::Range<usize>,
    ) -> Vec<BoxFuture<'static, Result<(), rtnetlink::Error>>> {
        let mut adds = pairs
            .map(|i| {
                let pair = rtnetlink::LinkVeth::new(&format!("ea{i}"), &format!("eb{i}"));
                handle.link().add(pair.build()).execute().boxed()
            })
            .collect::<Vec<_>>();
        for add in &mut adds {
            assert!(poll(add).is_pending());
        }
        adds
    }

    #[test]
    fn queued_requests_go_out_in_turns_that_yield_and_a_dump_is_read_whole() {
        in_scratch_namespace(|| {
            let (mut connection, handle) = open();
            // 60 veth creates take far more than a turn (each holds RTNL for 0.1 ms or more).
            let mut adds = queue_pairs(&handle, 0..60);
            let (wakes, waker) = counting_waker();
            let mut cx = Context::from_waker(&waker);
            assert!(Pin::new(&mut connection).poll(&mut cx).is_pending());
            // Keeps the requests not answered yet.
            let unanswered = |adds: &mut Vec<BoxFuture<'static, Result<(), rtnetlink::Error>>>| {
                adds.retain_mut(|a| match poll(a) {
                    Poll::Ready(done) => {
                        done.expect("veth pair created");
                        false
                    }
                    Poll::Pending => true,
                })
            };
            unanswered(&mut adds);
            assert!(!adds.is_empty(), "a turn yields after {TURN:?}");
            assert_eq!(
                wakes.0.load(Ordering::Relaxed),
                1,
                "it yielded, waking itself"
            );
            // Further turns, as the runtime would run them, send and read the rest.
            let mut turns = 1;
            while !adds.is_empty() {
                // A turn sends at least one request and reads the answers sent before it.
                assert!(turns <= 120, "turns make progress");
                assert!(Pin::new(&mut connection).poll(&mut cx).is_pending());
                turns += 1;
                unanswered(&mut adds);
            }
            // 121 links of ~1.5 KiB each: an answer of several parts (at most 32 KiB each),
            // every next one made by the kernel as the one before is read. With a turn that
            // cannot run out, so a slow first send does not end it before the read.
            connection.turn = Duration::from_secs(3600);
            let mut dump = handle
                .link()
                .get()
                .execute()
                .try_collect::<Vec<_>>()
                .boxed();
            assert!(poll(&mut dump).is_pending());
            assert!(poll(&mut connection).is_pending());
            let Poll::Ready(Ok(links)) = poll(&mut dump) else {
                panic!("the dump was not read whole in one poll");
            };
            assert_eq!(links.len(), 121, "lo and 60 veth pairs");
        });
    }

    #[test]
    fn with_a_running_runtime_concurrent_requests_all_end() {
        std::thread::spawn(|| {
            unshare(CloneFlags::CLONE_NEWNET).expect("unshare a network namespace");
            // The socket is opened on this thread, in the new namespace.
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let (connection, handle) = open();
                tokio::spawn(connection);
                let mut tasks = tokio::task::JoinSet::new();
                for t in 0..8 {
                    let handle = handle.clone();
                    tasks.spawn(async move {
                        for i in 0..10 {
                            let pair = rtnetlink::LinkVeth::new(
                                &format!("c{t}x{i}"),
                                &format!("c{t}y{i}"),
                            );
                            handle.link().add(pair.build()).execute().await?;
                            let got = handle
                                .link()
                                .get()
                                .match_name(format!("c{t}y{i}"))
                                .execute()
                                .try_collect::<Vec<_>>()
                                .await?;
                            assert_eq!(got.len(), 1);
                        }
                        Ok::<_, rtnetlink::Error>(())
                    });
                }
                let all = async {
                    while let Some(done) = tasks.join_next().await {
                        done.unwrap().expect("every request answered");
                    }
                };
                tokio::time::timeout(std::time::Duration::from_secs(30), all)
                    .await
                    .expect("160 requests from 8 tasks end within 30 s");
                let links = handle
                    .link()
                    .get()
                    .execute()
                    .try_collect::<Vec<_>>()
                    .await
                    .unwrap();
                assert_eq!(links.len(), 161, "lo and 80 veth pairs");
            });
        })
        .join()
        .unwrap();
    }

    /// Counts its wakes.
    struct Wakes(AtomicUsize);

    impl std::task::Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A waker and the count of its wakes.
    fn counting_waker() -> (Arc<Wakes>, Waker) {
        let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
        (wakes.clone(), Waker::from(wakes))
    }

    #[test]
    fn with_nothing_sent_the_connection_waits_without_waking_itself() {
        in_scratch_namespace(|| {
            let (mut connection, handle) = open_untimed();
            let (wakes, waker) = counting_waker();
            let mut cx = Context::from_waker(&waker);
            assert!(Pin::new(&mut connection).poll(&mut cx).is_pending());
            assert_eq!(wakes.0.load(Ordering::Relaxed), 0);
            // An answered request leaves nothing to read: the next poll waits too.
            let mut get = handle
                .link()
                .get()
                .execute()
                .try_collect::<Vec<_>>()
                .boxed();
            assert!(poll(&mut get).is_pending());
            assert_eq!(wakes.0.load(Ordering::Relaxed), 1, "the request's arrival");
            assert!(Pin::new(&mut connection).poll(&mut cx).is_pending());
            assert!(matches!(poll(&mut get), Poll::Ready(Ok(_))));
            assert!(Pin::new(&mut connection).poll(&mut cx).is_pending());
            assert_eq!(wakes.0.load(Ordering::Relaxed), 1, "it never woke itself");
        });
    }
}
