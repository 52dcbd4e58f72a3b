//! Bulk reads for the periodic check: every interface (with its addresses) and weft's routes
//! of many namespaces, on a few helper threads (one per 100 namespaces, at most one per
//! core), with plain synchronous netlink dumps.
//!
//! Each thread `setns()`es into each namespace in turn, opens a netlink socket there, dumps
//! the interfaces, their addresses and weft's routes (main table, protocol `RTPROT_WEFT`,
//! filtered by the kernel), closes it and goes back to the host namespace. Each thread is a
//! fresh one that exits afterwards (the rule of [`super::netns`]), so its namespace never
//! leaks into other work; the per-namespace socket cache ([`super::conn`], 64 at most) is
//! not touched.
//!
//! Why not the host's socket with `IFLA_TARGET_NETNSID` / `IFA_TARGET_NETNSID`, which the
//! kernel allows for reads (and which needs no `setns`)? Because every `RTM_GETLINK` dump
//! first sizes its buffer over every interface of the *socket's* namespace (`rtnl_calcit`
//! calls `if_nlmsg_size` per device): through the host's socket each namespace's two-line
//! dump cost as much as a dump of the whole host, so a pass over N namespaces was O(N²):
//! 75 % of the pass's CPU at 3,000 endpoints (perf, BENCHMARKS.md "Surprises"). From
//! inside, the sizing walks the namespace's own two or three interfaces. Routes could not be
//! read through the host's socket anyway: `RTM_GETROUTE` has no target-namespace attribute
//! (the strict dump check, `ip_valid_fib_dump_req`, accepts only `RTA_TABLE` and `RTA_OIF`).

use std::{fs::File, os::fd::AsRawFd, path::PathBuf, sync::Arc};

use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    address::AddressMessage,
    link::{LinkAttribute, LinkExtentMask, LinkMessage},
    route::{RouteHeader, RouteMessage, RouteProtocol},
};
use nix::{
    errno::Errno,
    sched::{CloneFlags, setns},
    sys::socket::{MsgFlags, recv},
};

use super::{Kernel, KernelError, LinkState, NsRef, RTPROT_WEFT, RouteState, error, netns};

/// One namespace to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotTarget {
    /// The namespace.
    pub ns: NsRef,
    /// Also read weft's routes.
    pub routes: bool,
}

/// How a snapshot reads: how many threads, at what priority.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    /// On every core (up to four threads), at normal priority: start-up, when nothing else
    /// runs yet.
    AllCores,
    /// On one thread at the lowest priority (nice 19): the periodic check and the garbage
    /// collector, which must not slow the API's work on a busy host; it pauses between
    /// namespaces while API calls are in flight (crate::busy). The reading thread is a
    /// fresh one that exits afterwards, so the priority never reaches other work; the kernel
    /// work of its dumps runs at its priority too, and link, address and route dumps take no
    /// lock a Connect needs (RCU since Linux 6.9-6.10).
    Background,
}

/// What one namespace holds, as far as weft manages it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NsSnapshot {
    /// Every interface, with its addresses.
    pub links: Vec<LinkState>,
    /// weft's routes (main table, `RTPROT_WEFT`) as (output interface, route); None when the
    /// routes were not read.
    pub routes: Option<Vec<(u32, RouteState)>>,
}

impl Kernel {
    /// [`super::KernelOps::snapshot`] for the real kernel: [`read_all`] from the host.
    pub(super) async fn read_snapshot(
        &self,
        targets: &[SnapshotTarget],
        pace: Pace,
    ) -> Result<Vec<Result<NsSnapshot, KernelError>>, KernelError> {
        let (host, label) = match self.inner.conns.ns_file(&NsRef::Host) {
            netns::NsFile::Open(host, label) => (host, label),
            netns::NsFile::Path(p) => (Arc::new(netns::open(&p)?), p),
        };
        read_all(host, label, targets.to_vec(), pace).await
    }
}

/// Namespaces per extra reading thread (a thread costs ~50 µs to start, a namespace ~60 µs
/// to read). Low enough that the crash tests' 200-endpoint restart reads on two threads.
const PER_THREAD: usize = 100;

/// Reads `targets` on fresh threads that start in the host namespace (`host`); one result per
/// target, in order. One thread per [`PER_THREAD`] targets, at most `threads` and one per
/// core (up to four): each namespace costs a `setns` and three small dumps, all
/// independent, so the start-up check's read at 10,000 endpoints takes about half the time
/// on two cores (the periodic check asks for one thread and leaves the other core to the
/// API). An error for the whole call only when a thread could not start.
async fn read_all(
    host: Arc<File>,
    host_label: PathBuf,
    targets: Vec<SnapshotTarget>,
    pace: Pace,
) -> Result<Vec<Result<NsSnapshot, KernelError>>, KernelError> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let threads = match pace {
        Pace::AllCores => targets.len().div_ceil(PER_THREAD).clamp(1, cores),
        Pace::Background => 1,
    };
    let chunk = targets.len().div_ceil(threads).max(1);
    let reads = targets.chunks(chunk).map(|part| {
        let ns = netns::NsFile::Open(host.clone(), host_label.clone());
        read_part(ns, host.clone(), part.to_vec(), pace)
    });
    let mut out = Vec::with_capacity(targets.len());
    for part in futures::future::join_all(reads).await {
        out.extend(part?);
    }
    Ok(out)
}

/// Reads `targets` in order on one fresh thread that starts in the host namespace.
async fn read_part(
    ns: netns::NsFile,
    back: Arc<File>,
    targets: Vec<SnapshotTarget>,
    pace: Pace,
) -> Result<Vec<Result<NsSnapshot, KernelError>>, KernelError> {
    // A fresh thread: this one setns()es through every namespace and may lower its priority.
    let (out, _) = netns::run_on_fresh_thread(ns, move || {
        if pace == Pace::Background {
            crate::nice::lowest_priority();
        }
        let sock = open_socket().map_err(|e| error::sys("open snapshot socket in the host", e))?;
        let mut r = Reader {
            buf: vec![0u8; 64 * 1024],
            seq: 0,
        };
        let mut out = Vec::with_capacity(targets.len());
        // In the background, between namespaces, while API calls are in flight (busy.rs).
        let budget = match pace {
            Pace::AllCores => std::time::Duration::ZERO,
            Pace::Background => crate::busy::GiveWay::PASS_PHASE,
        };
        let mut give_way = crate::busy::GiveWay::new(&crate::busy::REQUESTS, budget);
        for t in &targets {
            give_way.now();
            let one = r.read_one(&sock, &back, t);
            let lost = matches!(&one, Err(Lost::Thread(_)));
            out.push(one.map_err(|e| e.into_error(t)));
            if lost {
                // This thread is no longer in the host namespace: read nothing more.
                let e = || error::sys("return to the host namespace", Errno::EIO);
                out.extend((out.len()..targets.len()).map(|_| Err(e())));
                break;
            }
        }
        Ok(out)
    })
    .await?;
    Ok(out)
}

/// Why one namespace could not be read.
enum Lost {
    /// A request failed (this namespace only).
    Request(&'static str, Errno),
    /// The thread could not return to the host namespace (nothing more can be read).
    Thread(Errno),
}

impl Lost {
    fn into_error(self, t: &SnapshotTarget) -> KernelError {
        let label = match &t.ns {
            NsRef::Host => "the host namespace".to_string(),
            NsRef::Path(p) => p.display().to_string(),
        };
        match self {
            Lost::Request(what, e) => error::sys(format!("{what} of {label}"), e),
            Lost::Thread(e) => error::sys(format!("return to the host after {label}"), e),
        }
    }
}

/// A netlink socket with strict checking (so the kernel filters dumps), blocking.
fn open_socket() -> Result<netlink_sys::Socket, Errno> {
    let io = |e: std::io::Error| Errno::from_raw(e.raw_os_error().unwrap_or(libc_eio()));
    let mut s = netlink_sys::Socket::new(netlink_sys::protocols::NETLINK_ROUTE).map_err(io)?;
    s.bind_auto().map_err(io)?;
    s.set_netlink_get_strict_chk(true).map_err(io)?;
    Ok(s)
}

/// EIO's number, for an I/O error without one.
fn libc_eio() -> i32 {
    Errno::EIO as i32
}

/// The dump buffer and sequence numbers of one thread.
struct Reader {
    buf: Vec<u8>,
    seq: u32,
}

impl Reader {
    /// Reads one namespace: the host through `host_sock`, any other from inside it.
    fn read_one(
        &mut self,
        host_sock: &netlink_sys::Socket,
        host: &File,
        t: &SnapshotTarget,
    ) -> Result<NsSnapshot, Lost> {
        let NsRef::Path(path) = &t.ns else {
            return self.read_with(host_sock, t.routes);
        };
        // Enter, read, come back (see the module doc for why not through the host's socket).
        let file = File::open(path)
            .map_err(|e| Lost::Request("open", Errno::from_raw(e.raw_os_error().unwrap_or(5))))?;
        setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| Lost::Request("enter", e))?;
        let result = open_socket()
            .map_err(|e| Lost::Request("open a socket", e))
            .and_then(|sock| self.read_with(&sock, t.routes));
        setns(host, CloneFlags::CLONE_NEWNET).map_err(Lost::Thread)?;
        result
    }

    /// The links with their addresses of the socket's namespace, and its weft routes when
    /// `routes`.
    fn read_with(&mut self, sock: &netlink_sys::Socket, routes: bool) -> Result<NsSnapshot, Lost> {
        let mut link = LinkMessage::default();
        // Without counters, and each message parsed as it arrives: the host's dump at
        // 10,000 endpoints is 10,000 messages of about 6 KiB parsed (see `link::list`).
        link.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        let mut links: Vec<LinkState> = Vec::new();
        self.dump(sock, RouteNetlinkMessage::GetLink(link), |m| {
            if let RouteNetlinkMessage::NewLink(l) = m {
                links.push(super::link::parse(&l));
            }
        })
        .map_err(|e| Lost::Request("dump links", e))?;
        let by_index: std::collections::HashMap<u32, usize> = links
            .iter()
            .enumerate()
            .map(|(i, l)| (l.index, i))
            .collect();
        self.dump(
            sock,
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            |m| {
                if let RouteNetlinkMessage::NewAddress(a) = m
                    && let Some(net) = super::addr::parse(&a)
                    && let Some(i) = by_index.get(&a.header.index)
                {
                    links[*i].addresses.push(net);
                }
            },
        )
        .map_err(|e| Lost::Request("dump addresses", e))?;
        let routes = if routes {
            Some(self.routes(sock)?)
        } else {
            None
        };
        Ok(NsSnapshot { links, routes })
    }

    /// weft's routes in the socket's namespace, IPv4 and IPv6 in one dump: `AF_UNSPEC` asks
    /// every family, and the strict check applies the table and protocol filter to each (the
    /// multicast tables have no main table and answer nothing).
    fn routes(&mut self, sock: &netlink_sys::Socket) -> Result<Vec<(u32, RouteState)>, Lost> {
        let mut out = Vec::new();
        let mut filter = RouteMessage::default();
        filter.header.address_family = AddressFamily::Unspec;
        filter.header.table = RouteHeader::RT_TABLE_MAIN;
        filter.header.protocol = RouteProtocol::from(RTPROT_WEFT);
        self.dump(sock, RouteNetlinkMessage::GetRoute(filter), |m| {
            if let RouteNetlinkMessage::NewRoute(r) = m
                && let Some(oif) = super::route::oif_if_ours(&r)
                && let Some(state) = super::route::parse(&r)
            {
                out.push((oif, state));
            }
        })
        .map_err(|e| Lost::Request("dump routes", e))?;
        Ok(out)
    }

    /// One dump request; `each` gets every message of the answer as it is read, so no more
    /// than one receive buffer of it is held at once.
    fn dump(
        &mut self,
        sock: &netlink_sys::Socket,
        msg: RouteNetlinkMessage,
        mut each: impl FnMut(RouteNetlinkMessage),
    ) -> Result<(), Errno> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut req = NetlinkMessage::from(msg);
        req.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        req.header.sequence_number = seq;
        req.finalize();
        let mut bytes = vec![0u8; req.buffer_len()];
        req.serialize(&mut bytes);
        sock.send(&bytes, 0)
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc_eio())))?;
        loop {
            let n = recv(sock.as_raw_fd(), &mut self.buf, MsgFlags::MSG_TRUNC)?;
            if n > self.buf.len() {
                return Err(Errno::EMSGSIZE);
            }
            let mut rest = &self.buf[..n];
            while rest.len() >= 16 {
                let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                if len < 16 || len > rest.len() {
                    return Err(Errno::EBADMSG);
                }
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rest[..len])
                    .map_err(|_| Errno::EBADMSG)?;
                rest = &rest[((len + 3) & !3).min(rest.len())..];
                if msg.header.sequence_number != seq {
                    continue;
                }
                match msg.payload {
                    NetlinkPayload::Done(_) => return Ok(()),
                    NetlinkPayload::Error(e) => {
                        return Err(match e.code {
                            Some(c) => Errno::from_raw(-c.get()),
                            None => Errno::EIO,
                        });
                    }
                    NetlinkPayload::InnerMessage(m) => each(m),
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::Kernel;

    /// The nice value and network namespace of the calling thread.
    fn this_thread() -> (i64, (u64, u64)) {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // Field 19, counted from the state, which follows the parenthesised command.
        let nice = stat.rsplit_once(')').unwrap().1.split_whitespace().nth(16);
        let ns = nix::sys::stat::stat("/proc/thread-self/ns/net").unwrap();
        (nice.unwrap().parse().unwrap(), (ns.st_dev, ns.st_ino))
    }

    /// A background read lowers its thread's priority and enters every namespace it reads:
    /// on a thread of its own, never one of the blocking pool, even when the pool's threads
    /// are in the host it starts from (work in the host may run on them, `netns::run_in`).
    /// Reads the process's own namespace, nothing else.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_background_read_leaves_the_pools_threads_as_they_were() {
        let dir = tempfile::tempdir().unwrap();
        let own = PathBuf::from("/proc/self/ns/net");
        let k = Kernel::new(Some(own), dir.path().to_path_buf()).unwrap();
        let before = tokio::task::spawn_blocking(this_thread).await.unwrap();
        let targets = [SnapshotTarget {
            ns: NsRef::Host,
            routes: false,
        }];
        let read = k.read_snapshot(&targets, Pace::Background).await.unwrap();
        assert!(read[0].is_ok(), "{:?}", read[0].as_ref().err());
        for _ in 0..8 {
            let after = tokio::task::spawn_blocking(this_thread).await.unwrap();
            assert_eq!(
                after, before,
                "a pool thread was left changed (nice, namespace)"
            );
        }
    }
}
