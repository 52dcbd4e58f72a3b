//! Change notifications from every namespace weft manages, on one netlink socket in the host
//! namespace. Subscribed to the link, address and route groups with
//! `NETLINK_LISTEN_ALL_NSID`, the socket also gets the notifications of every namespace that
//! has an id (nsid) in the host namespace, each tagged with that id in a control message;
//! weft gives each namespace it manages an id
//! ([`Kernel::netns_id`](super::NetnsOps::netns_id), what `ip netns set` does). One socket
//! and one task for any number of namespaces, where a socket per namespace cost two file
//! descriptors and about 100 KB each. The reconciler turns each notification
//! into "re-check the object that owns this interface", so drift is repaired in about a
//! second instead of at the next resync.
//!
//! Filtered out here, because weft manages none of it: IPv6 link-local addresses and routes
//! not of weft's protocol. The bridge's per-port messages (`AF_BRIDGE`) are kept apart
//! ([`Change::Port`]): they carry a port's hairpin mode, but not its alias.

use std::os::fd::AsRawFd;

use netlink_packet_core::{NLM_F_ACK, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    address::AddressAttribute,
    link::LinkAttribute,
    nsid::{NsidAttribute, NsidMessage},
    route::RouteAttribute,
};
use netlink_sys::SocketAddr;
use nix::errno::Errno;
use tokio::{sync::mpsc, task::JoinHandle};

use super::{Kernel, KernelError, NsRef, error, netns};

/// RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE.
const GROUPS: u32 = 0x1 | 0x10 | 0x40 | 0x100 | 0x400;

/// One change the kernel announced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// An interface appeared, changed or (with `deleted`) vanished.
    Link {
        /// Its index.
        index: u32,
        /// Its alias (weft's mark), when it has one.
        alias: Option<String>,
        /// It was deleted.
        deleted: bool,
        /// A hash of what weft manages on it (name, MTU, MAC, up, master, alias): equal in
        /// two notifications when only something else changed (carrier, operstate,
        /// counters), which is no drift.
        fingerprint: u64,
    },
    /// An address on interface `index` was added or (with `deleted`) removed.
    Address {
        /// The interface.
        index: u32,
        /// It was removed.
        deleted: bool,
    },
    /// The bridge port data of interface `index` changed (its hairpin mode, its STP state),
    /// or it stopped being a port: the bridge's own message (`AF_BRIDGE`), which carries no
    /// alias.
    Port {
        /// The port.
        index: u32,
    },
    /// A route through interface `oif` was added or (with `deleted`) removed.
    Route {
        /// The output interface, if the route has one.
        oif: Option<u32>,
        /// It was removed.
        deleted: bool,
    },
}

/// One notification: the change and where it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notification {
    /// `change` in the namespace whose id in the host namespace is `nsid` (None: the host).
    Change {
        /// The namespace's id in the host namespace; None for the host's own changes.
        nsid: Option<i32>,
        /// What changed.
        change: Change,
    },
    /// The socket's buffer overflowed (ENOBUFS): notifications were lost, so everything
    /// should be checked again.
    Overflow,
}

/// A running subscription; dropping it closes the socket.
#[derive(Debug)]
pub struct Monitor {
    /// The notifications, in the order the kernel sent them.
    pub changes: mpsc::UnboundedReceiver<Notification>,
    task: JoinHandle<()>,
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `SOL_NETLINK` and its `NETLINK_LISTEN_ALL_NSID` control message (linux/netlink.h).
const SOL_NETLINK: i32 = 270;
const NETLINK_LISTEN_ALL_NSID: i32 = 8;

fn oif(r: &netlink_packet_route::route::RouteMessage) -> Option<u32> {
    r.attributes.iter().find_map(|a| match a {
        RouteAttribute::Oif(i) => Some(*i),
        _ => None,
    })
}

fn is_link_local(a: &netlink_packet_route::address::AddressMessage) -> bool {
    a.attributes.iter().any(|attr| match attr {
        AddressAttribute::Address(std::net::IpAddr::V6(v6)) => {
            (v6.segments()[0] & 0xffc0) == 0xfe80
        }
        _ => false,
    })
}

fn link_change(l: &netlink_packet_route::link::LinkMessage, deleted: bool) -> Change {
    let alias = l.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfAlias(s) => Some(s.clone()),
        _ => None,
    });
    let state = super::link::parse(l);
    let fingerprint = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (
            &state.name,
            state.mtu,
            &state.mac,
            state.up,
            state.master,
            &state.alias,
        )
            .hash(&mut h);
        h.finish()
    };
    Change::Link {
        index: l.header.index,
        alias,
        deleted,
        fingerprint,
    }
}

impl Kernel {
    /// Subscribes to link, address and route changes in the host namespace and in every
    /// namespace with an id there (see [`Kernel::netns_id`](super::NetnsOps::netns_id)).
    pub(super) async fn subscribe(&self) -> Result<Monitor, KernelError> {
        let label = self.label(&NsRef::Host);
        let target = self.inner.conns.ns_file(&NsRef::Host);
        let (socket, _id) = netns::run_in(target, move || {
            let op = |what: &str| format!("{what} (netlink monitor in {label})");
            let mut socket = netlink_sys::Socket::new(netlink_sys::protocols::NETLINK_ROUTE)
                .map_err(|e| error::io(op("open socket"), e))?;
            socket
                .bind(&SocketAddr::new(0, GROUPS))
                .map_err(|e| error::io(op("subscribe to netlink groups"), e))?;
            socket
                .set_listen_all_namespaces(true)
                .map_err(|e| error::io(op("listen to all namespaces"), e))?;
            socket
                .set_non_blocking(true)
                .map_err(|e| error::io(op("make non-blocking"), e))?;
            // Bursts (hundreds of connects) must not overflow it; best effort.
            let _ = socket.set_rx_buf_sz(4usize << 20);
            Ok(socket)
        })
        .await?;
        // SAFETY: the AsyncFd owns the socket, which closes its fd only when dropped with it.
        #[allow(unsafe_code)]
        let fd = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(socket, tokio::io::Interest::READABLE)
        }
        .map_err(|e| error::io("register the netlink monitor", e.into_parts().1))?;
        let (tx, changes) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let Ok(mut ready) = fd.readable().await else {
                    return;
                };
                let got = ready.try_io(|s| receive(s.get_ref(), &mut buf));
                let (len, nsid) = match got {
                    // Not readable after all (the readiness was cleared); wait again.
                    Err(_) | Ok(Err(_)) => continue,
                    Ok(Ok(Ok(r))) => r,
                    Ok(Ok(Err(Errno::ENOBUFS))) => {
                        if tx.send(Notification::Overflow).is_err() {
                            return;
                        }
                        continue;
                    }
                    Ok(Ok(Err(e))) => {
                        tracing::warn!(error = %e, "netlink monitor failed; relying on resync");
                        return;
                    }
                };
                for change in parse_all(&buf[..len]) {
                    if tx.send(Notification::Change { nsid, change }).is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Monitor { changes, task })
    }

    /// The id of namespace `ns` in the host namespace, assigning one first if it has none
    /// (`RTM_NEWNSID` with `NETNSA_NSID` -1, as `ip netns set NAME auto`). The kernel keeps
    /// it while the namespace lives. None for the host itself.
    pub(super) async fn assign_netns_id(&self, ns: &NsRef) -> Result<Option<i32>, KernelError> {
        let NsRef::Path(path) = ns else {
            return Ok(None);
        };
        let op = || format!("namespace id of {}", path.display());
        let file = netns::open(path).map_err(|e| e.relabel(&op()))?;
        // An open file's descriptor is never negative; EBADF if that ever failed to hold.
        let fd = u32::try_from(file.as_raw_fd()).map_err(|_| error::sys(op(), Errno::EBADF))?;
        let get = || {
            let mut m = NsidMessage::default();
            m.attributes.push(NsidAttribute::Fd(fd));
            let mut req = NetlinkMessage::from(RouteNetlinkMessage::GetNsId(m));
            req.header.flags = NLM_F_REQUEST;
            req
        };
        let ask = |req: NetlinkMessage<RouteNetlinkMessage>, counts: bool| {
            self.run(&NsRef::Host, op, counts, move |mut h| async move {
                let mut answers = h.request(req)?;
                let mut id = None;
                while let Some(msg) = futures::StreamExt::next(&mut answers).await {
                    match msg.payload {
                        NetlinkPayload::Error(e) if e.code.is_some() => {
                            return Err(rtnetlink::Error::NetlinkError(e));
                        }
                        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNsId(m)) => {
                            id = m.attributes.iter().find_map(|a| match a {
                                NsidAttribute::Id(i) => Some(*i),
                                _ => None,
                            });
                        }
                        _ => {}
                    }
                }
                Ok(id)
            })
        };
        if let Some(id) = ask(get(), false).await?.filter(|i| *i >= 0) {
            return Ok(Some(id));
        }
        let mut m = NsidMessage::default();
        m.attributes.push(NsidAttribute::Fd(fd));
        m.attributes.push(NsidAttribute::Id(-1));
        let mut req = NetlinkMessage::from(RouteNetlinkMessage::NewNsId(m));
        req.header.flags = NLM_F_REQUEST | NLM_F_ACK;
        match ask(req, true).await {
            // Another caller assigned one meanwhile.
            Err(e) if e.errno() == Some(Errno::EEXIST as i32) => {}
            other => {
                other?;
            }
        }
        let id = ask(get(), false).await?.filter(|i| *i >= 0);
        drop(file);
        id.map(Some)
            .ok_or_else(|| error::invalid(op(), "the kernel assigned no namespace id"))
    }
}

/// One `recvmsg`: the bytes read and the namespace id of the control message, if any.
fn receive(
    socket: &netlink_sys::Socket,
    buf: &mut [u8],
) -> std::io::Result<Result<(usize, Option<i32>), Errno>> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut cmsg = nix::cmsg_space!(i32);
    let mut iov = [std::io::IoSliceMut::new(buf)];
    match recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    ) {
        Err(Errno::EAGAIN) => Err(std::io::ErrorKind::WouldBlock.into()),
        Err(e) => Ok(Err(e)),
        Ok(msg) => {
            let mut nsid = None;
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    if let ControlMessageOwned::Unknown(u) = c
                        && u.cmsg_header.cmsg_level == SOL_NETLINK
                        && u.cmsg_header.cmsg_type == NETLINK_LISTEN_ALL_NSID
                        && u.data_bytes.len() >= 4
                    {
                        let b = &u.data_bytes;
                        nsid = Some(i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                    }
                }
            }
            Ok(Ok((msg.bytes, nsid)))
        }
    }
}

/// The changes in one datagram (it may hold several netlink messages).
fn parse_all(mut bytes: &[u8]) -> Vec<Change> {
    let mut out = Vec::new();
    while bytes.len() >= 16 {
        let len = u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        if len < 16 || len > bytes.len() {
            break;
        }
        if let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes[..len])
            && let NetlinkPayload::InnerMessage(inner) = msg.payload
            && let Some(change) = change_of(inner)
        {
            out.push(change);
        }
        // Messages are 4-byte aligned.
        bytes = &bytes[((len + 3) & !3).min(bytes.len())..];
    }
    out
}

/// What weft cares about in one notification, if anything.
fn change_of(inner: RouteNetlinkMessage) -> Option<Change> {
    Some(match inner {
        // The bridge's per-port messages (family AF_BRIDGE: a port enslaved, its hairpin
        // mode or STP state set) never carry the alias, so they are no link change (they
        // would read as "mark removed"); `bridge link set .. hairpin off` sends only these.
        RouteNetlinkMessage::NewLink(l) | RouteNetlinkMessage::DelLink(l)
            if l.header.interface_family == AddressFamily::Bridge =>
        {
            Change::Port {
                index: l.header.index,
            }
        }
        RouteNetlinkMessage::NewLink(l) => link_change(&l, false),
        RouteNetlinkMessage::DelLink(l) => link_change(&l, true),
        // IPv6 link-local addresses come and go (and finish duplicate address detection a
        // second or two after an interface is up) on their own; weft never manages them.
        RouteNetlinkMessage::NewAddress(a) | RouteNetlinkMessage::DelAddress(a)
            if is_link_local(&a) =>
        {
            return None;
        }
        // weft manages only routes of its own protocol; the kernel's (prefix routes, IPv6
        // link-local and multicast ones) come and go with addresses and links, which are
        // watched themselves.
        RouteNetlinkMessage::NewRoute(r) | RouteNetlinkMessage::DelRoute(r)
            if u8::from(r.header.protocol) != super::RTPROT_WEFT =>
        {
            return None;
        }
        RouteNetlinkMessage::NewAddress(a) => Change::Address {
            index: a.header.index,
            deleted: false,
        },
        RouteNetlinkMessage::DelAddress(a) => Change::Address {
            index: a.header.index,
            deleted: true,
        },
        RouteNetlinkMessage::NewRoute(r) => Change::Route {
            oif: oif(&r),
            deleted: false,
        },
        RouteNetlinkMessage::DelRoute(r) => Change::Route {
            oif: oif(&r),
            deleted: true,
        },
        _ => return None,
    })
}
