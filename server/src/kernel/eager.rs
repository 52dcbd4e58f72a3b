//! A netlink socket whose connection reads the kernel's answer as soon as it sent the request.
//!
//! The kernel handles an rtnetlink request inside the `sendmsg` that carries it: when the
//! send returns, the answer (or the first part of a dump's) is already queued on the socket.
//! The stock tokio socket of `netlink-sys` reads only once the reactor has reported the socket
//! readable, and `netlink-proto`'s connection sends as the last step of its poll and returns.
//! So every request waited for the reactor: in a multi-thread runtime, the reactor is polled
//! by whichever worker parks on it, often the other one, asleep in `epoll_wait` on another CPU,
//! which the answer then has to wake (on a VM, a halted vCPU's wake-up) before the connection
//! task runs there and wakes the requester back. Measured on the 2-core VM of BENCHMARKS.md
//! ("Session 36"), the in-process floor's connect (about eight requests) took 1.6 ms in a
//! multi-thread runtime and 0.9 ms in a current-thread one, whose single thread polls the
//! reactor itself.
//!
//! [`EagerSocket`] tries the read first, before asking the reactor, and notes each send;
//! [`Eager`] polls the connection again while its last poll sent something, so the answer is
//! read and handed to the requester in the same turn, on the thread that sent the request.
//! When nothing is queued, the read fails with `EAGAIN` (one system call) and the socket waits
//! for the reactor as before.

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::atomic::{AtomicBool, Ordering},
    task::{Context, Poll, ready},
};

use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{AsyncSocket, Socket, SocketAddr};
use rtnetlink::proto::Connection;
use tokio::io::unix::AsyncFd;

/// Polls of a connection in one turn, at most: past this, it yields to the runtime's other
/// tasks and is polled again later (a burst of requests is sent and read a batch per poll).
const MAX_POLLS: usize = 32;

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
        match read(self.fd.get_ref()) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            done => return Poll::Ready(done),
        }
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            if let Ok(done) = guard.try_io(|fd| read(fd.get_ref())) {
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
        let sent = match send(self.fd.get_ref()) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => loop {
                let mut guard = ready!(self.fd.poll_write_ready(cx))?;
                if let Ok(sent) = guard.try_io(|fd| send(fd.get_ref())) {
                    break sent;
                }
            },
            sent => sent,
        };
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
        // SAFETY: the `Socket` owns its descriptor, closes it only when dropped, and has no
        // way to swap it for another: it stays open and the same while the AsyncFd holds it.
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
pub(crate) struct Eager(pub(crate) Connection<RouteNetlinkMessage, EagerSocket>);

impl Future for Eager {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        for _ in 0..MAX_POLLS {
            // One poll reads what is queued, hands it to the requesters, then sends the new
            // requests; the answers to those are read by the next one.
            if Pin::new(&mut self.0).poll(cx).is_ready() {
                return Poll::Ready(());
            }
            if !self.0.socket_mut().take_sent() {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    //! Each test runs on a thread of its own, in a network namespace it made (`unshare`), with
    //! a runtime whose reactor is never run: only the socket's own reads can answer.

    use std::{
        future::Future,
        pin::Pin,
        sync::{Arc, atomic::AtomicUsize},
        task::{Context, Poll, Waker},
    };

    use futures::{FutureExt, TryStreamExt};
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
        (Eager(connection), handle)
    }

    #[test]
    fn a_request_is_answered_in_the_poll_that_sent_it() {
        in_scratch_namespace(|| {
            let (mut connection, handle) = open();
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
            assert!(!connection.0.socket_mut().take_sent(), "the send was taken");
        });
    }

    #[test]
    fn a_dump_and_a_write_are_read_whole_in_one_poll() {
        in_scratch_namespace(|| {
            let (mut connection, handle) = open();
            // Interfaces enough that the dump's answer comes in several parts.
            let mut adds = (0..20)
                .map(|i| {
                    let pair = rtnetlink::LinkVeth::new(&format!("ea{i}"), &format!("eb{i}"));
                    handle.link().add(pair.build()).execute().boxed()
                })
                .collect::<Vec<_>>();
            for add in &mut adds {
                assert!(poll(add).is_pending());
            }
            assert!(poll(&mut connection).is_pending());
            for add in &mut adds {
                assert!(matches!(poll(add), Poll::Ready(Ok(()))));
            }
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
            assert_eq!(links.len(), 41, "lo and 20 veth pairs");
        });
    }

    /// Counts its wakes.
    struct Wakes(AtomicUsize);

    impl std::task::Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn with_nothing_sent_the_connection_waits_without_waking_itself() {
        in_scratch_namespace(|| {
            let (mut connection, handle) = open();
            let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
            let waker = Waker::from(wakes.clone());
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
            assert!(!connection.0.socket_mut().take_sent());
            assert_eq!(wakes.0.load(Ordering::Relaxed), 1, "it never woke itself");
        });
    }
}
