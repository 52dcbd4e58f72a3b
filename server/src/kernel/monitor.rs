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

use std::{
    os::fd::AsRawFd,
    sync::atomic::{AtomicI32, Ordering},
};

use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::{
    RouteNetlinkMessage,
    nsid::{NsidAttribute, NsidMessage},
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
        /// A hash of what weft manages on it (name, MTU, MAC, up, master, alias, group):
        /// equal in two notifications when only something else changed (carrier, operstate,
        /// counters), which is no drift.
        fingerprint: u64,
        /// It is in weft's newborn group without a mark: made by a reconcile that has not
        /// marked it yet ([`super::NEWBORN_GROUP`]).
        newborn: bool,
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
        /// A hash of what weft manages on the port (its bridge, its hairpin mode): equal in
        /// two notifications when only its STP state or timers changed, which is no drift.
        /// None when it stopped being a port.
        fingerprint: Option<u64>,
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
    /// (`RTM_NEWNSID`, what `ip netns set NAME ID` does). The kernel keeps it while the
    /// namespace lives. None for the host itself.
    ///
    /// weft picks the id itself, counting down from [`NSID_TOP`], so the newest namespace
    /// has the lowest of weft's ids. The kernel finds a namespace's id by walking the host's
    /// ids in ascending order (`__peernet2id`), and it does that twice for every
    /// notification a namespace sends to a socket listening to all namespaces (weft's
    /// monitor), inside the request that caused it and under RTNL. With ids counting up,
    /// a namespace being connected, the newest, was the last of the walk: at 10,000
    /// namespaces a walk cost more than the request itself (BENCHMARKS.md, "Session 37").
    /// Ids the kernel picks itself (`ip netns set NAME auto`, or a veth's peer read before
    /// weft asked) are the lowest free ones, far below weft's: first in the walk. If weft's
    /// ids run out below [`NSID_FLOOR`] (after some 5 * 10^8 namespaces: an id is not
    /// reused until a weftd starts when every namespace that had a lower one is gone), or
    /// another tool holds the [`NSID_TRIES`] ids tried, the kernel picks.
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
        let set = |id: i32| {
            let mut m = NsidMessage::default();
            m.attributes.push(NsidAttribute::Fd(fd));
            m.attributes.push(NsidAttribute::Id(id));
            let mut req = NetlinkMessage::from(RouteNetlinkMessage::NewNsId(m));
            req.header.flags = NLM_F_REQUEST | NLM_F_ACK;
            req
        };
        let ask = |req: NetlinkMessage<RouteNetlinkMessage>, counts: bool| {
            self.run(&NsRef::Host, op, counts, move |h| async move {
                Ok(nsids(h, req).await?.into_iter().next())
            })
        };
        if let Some(id) = ask(get(), false).await?.filter(|i| *i >= 0) {
            return Ok(Some(id));
        }
        let next = self
            .inner
            .nsid_next
            .get_or_try_init(|| async {
                let lowest = self.lowest_own_nsid().await?;
                Ok::<_, KernelError>(AtomicI32::new(lowest - 1))
            })
            .await?;
        for _ in 0..NSID_TRIES {
            // Never below the floor, however many ask.
            let Ok(id) = next.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                (v >= NSID_FLOOR).then(|| v - 1)
            }) else {
                break;
            };
            // Counted as a write only if it took: a skipped id changed nothing.
            match ask(set(id), false).await {
                Ok(_) => {
                    self.wrote();
                    return Ok(Some(id));
                }
                // Either `ns` got an id meanwhile (another caller, or the kernel for a veth's
                // peer) or another tool holds this one: the read tells which.
                Err(e) if e.errno() == Some(Errno::EEXIST as i32) => {
                    if let Some(id) = ask(get(), false).await?.filter(|i| *i >= 0) {
                        return Ok(Some(id));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        match ask(set(-1), true).await {
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

    /// The lowest id in weft's range ([`NSID_FLOOR`] to [`NSID_TOP`]) the host gives any
    /// namespace, or one above the top if none: where weft's next id counts down from. One
    /// dump of the host's ids (`ip netns list-id`), at the first id a weftd assigns.
    async fn lowest_own_nsid(&self) -> Result<i32, KernelError> {
        let mut req = NetlinkMessage::from(RouteNetlinkMessage::GetNsId(NsidMessage::default()));
        req.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        let ids = self
            .run(
                &NsRef::Host,
                || "list the host's namespace ids".to_string(),
                false,
                move |h| nsids(h, req),
            )
            .await?;
        Ok(ids
            .into_iter()
            .filter(|id| (NSID_FLOOR..=NSID_TOP).contains(id))
            .min()
            .unwrap_or(NSID_TOP + 1))
    }
}

/// The top of weft's namespace ids: each one weft assigns is one below the last
/// ([`Kernel::assign_netns_id`]).
pub(super) const NSID_TOP: i32 = (1 << 30) - 1;

/// The bottom of weft's namespace ids; the kernel's own picks (the lowest free) stay below.
pub(super) const NSID_FLOOR: i32 = 1 << 29;

/// How many of its own ids weft tries for one namespace before it lets the kernel pick.
const NSID_TRIES: usize = 8;

/// The ids in the answers to `req` (`RTM_GETNSID`, a dump of them, or `RTM_NEWNSID`, which
/// answers none).
async fn nsids(
    mut h: rtnetlink::Handle,
    req: NetlinkMessage<RouteNetlinkMessage>,
) -> Result<Vec<i32>, rtnetlink::Error> {
    let mut answers = h.request(req)?;
    let mut ids = Vec::new();
    while let Some(msg) = futures::StreamExt::next(&mut answers).await {
        match msg.payload {
            NetlinkPayload::Error(e) if e.code.is_some() => {
                return Err(rtnetlink::Error::NetlinkError(e));
            }
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNsId(m)) => {
                ids.extend(m.attributes.iter().find_map(|a| match a {
                    NsidAttribute::Id(i) => Some(*i),
                    _ => None,
                }));
            }
            _ => {}
        }
    }
    Ok(ids)
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
    while bytes.len() >= NLMSG_HDR {
        let len = u32_at(bytes, 0).unwrap_or(0) as usize;
        if len < NLMSG_HDR || len > bytes.len() {
            break;
        }
        if let Some(change) = change_of(&bytes[..len]) {
            out.push(change);
        }
        // Messages are 4-byte aligned.
        bytes = &bytes[align(len).min(bytes.len())..];
    }
    out
}

// The few parts of rtnetlink's wire format the monitor reads (linux/netlink.h,
// linux/rtnetlink.h, linux/if_link.h, linux/if_addr.h). Notifications come by the dozen per
// Connect (a link message with its statistics and per-family blocks is over a kilobyte), so
// they are read in place: the header, then only the attributes weft looks at, where decoding
// each message in full into netlink-packet-route's types was a tenth of weftd's CPU in a
// burst of connects.
const NLMSG_HDR: usize = 16;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
/// `struct ifinfomsg`, `struct ifaddrmsg`, `struct rtmsg`.
const IFINFOMSG: usize = 16;
const IFADDRMSG: usize = 8;
const RTMSG: usize = 12;
const AF_INET6: u8 = 10;
const AF_BRIDGE: u8 = 7;
const IFF_UP: u32 = 0x1;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_MASTER: u16 = 10;
const IFLA_PROTINFO: u16 = 12;
const IFLA_IFALIAS: u16 = 20;
const IFLA_GROUP: u16 = 27;
/// In `IFLA_PROTINFO` (linux/if_link.h): the port's hairpin mode.
const IFLA_BRPORT_MODE: u16 = 4;
const IFA_ADDRESS: u16 = 1;
const RTA_OIF: u16 = 4;

fn align(n: usize) -> usize {
    (n + 3) & !3
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The attributes (type without the nested/byte-order flags, payload) from `b`'s start.
fn attributes(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = usize::from(u16::from_ne_bytes(b.get(0..2)?.try_into().ok()?));
        let kind = u16::from_ne_bytes(b.get(2..4)?.try_into().ok()?) & 0x3fff;
        let payload = b.get(4..len)?;
        b = b.get(align(len)..).unwrap_or(&[]);
        Some((kind, payload))
    })
}

/// A string attribute's text, without its terminating NUL.
fn text(payload: &[u8]) -> &[u8] {
    payload.split(|c| *c == 0).next().unwrap_or(payload)
}

/// What weft cares about in one notification (`msg`, header included), if anything.
fn change_of(msg: &[u8]) -> Option<Change> {
    let kind = u16::from_ne_bytes(msg.get(4..6)?.try_into().ok()?);
    let body = msg.get(NLMSG_HDR..)?;
    match kind {
        RTM_NEWLINK | RTM_DELLINK => {
            let index = u32_at(body, 4)?;
            // The bridge's per-port messages (family AF_BRIDGE: a port enslaved, its
            // hairpin mode or STP state set) never carry the alias, so they are no link
            // change (they would read as "mark removed"); `bridge link set .. hairpin off`
            // sends only these.
            if *body.first()? == AF_BRIDGE {
                let fingerprint = (kind == RTM_NEWLINK)
                    .then(|| port_fingerprint(body.get(IFINFOMSG..).unwrap_or(&[])));
                return Some(Change::Port { index, fingerprint });
            }
            let up = u32_at(body, 8)? & IFF_UP != 0;
            Some(link_change(
                index,
                up,
                body.get(IFINFOMSG..)?,
                kind == RTM_DELLINK,
            ))
        }
        RTM_NEWADDR | RTM_DELADDR => {
            // IPv6 link-local addresses come and go (and finish duplicate address
            // detection a second or two after an interface is up) on their own; weft
            // never manages them.
            let link_local = *body.first()? == AF_INET6
                && attributes(body.get(IFADDRMSG..)?).any(|(t, p)| {
                    t == IFA_ADDRESS && p.len() == 16 && p[0] == 0xfe && p[1] & 0xc0 == 0x80
                });
            (!link_local).then(|| Change::Address {
                index: u32_at(body, 4).unwrap_or(0),
                deleted: kind == RTM_DELADDR,
            })
        }
        RTM_NEWROUTE | RTM_DELROUTE => {
            // weft manages only routes of its own protocol; the kernel's (prefix routes,
            // IPv6 link-local and multicast ones) come and go with addresses and links,
            // which are watched themselves.
            if *body.get(5)? != super::RTPROT_WEFT {
                return None;
            }
            let oif = attributes(body.get(RTMSG..)?)
                .find(|(t, _)| *t == RTA_OIF)
                .and_then(|(_, p)| u32_at(p, 0));
            Some(Change::Route {
                oif,
                deleted: kind == RTM_DELROUTE,
            })
        }
        _ => None,
    }
}

/// A link message's change: its alias, and a fingerprint of what weft manages on it.
fn link_change(index: u32, up: bool, attrs: &[u8], deleted: bool) -> Change {
    let (mut name, mut mtu, mut mac, mut master, mut alias, mut group) =
        (None, None, None, None, None, None);
    for (t, p) in attributes(attrs) {
        match t {
            IFLA_IFNAME => name = Some(text(p)),
            IFLA_MTU => mtu = u32_at(p, 0),
            IFLA_ADDRESS if !p.is_empty() => mac = Some(p),
            IFLA_MASTER => master = u32_at(p, 0).filter(|m| *m != 0),
            IFLA_IFALIAS => alias = Some(text(p)),
            IFLA_GROUP => group = u32_at(p, 0),
            _ => {}
        }
    }
    let fingerprint = hash((name, mtu, mac, up, master, alias, group));
    Change::Link {
        index,
        alias: alias.map(|a| String::from_utf8_lossy(a).into_owned()),
        deleted,
        fingerprint,
        newborn: group == Some(super::NEWBORN_GROUP) && alias.is_none_or(<[u8]>::is_empty),
    }
}

/// A port message's fingerprint: its bridge and its hairpin mode (`attrs`: the attributes
/// after the `ifinfomsg`). Not its STP state: a port sends a few as it comes up.
fn port_fingerprint(attrs: &[u8]) -> u64 {
    let (mut master, mut hairpin) = (None, None);
    for (t, p) in attributes(attrs) {
        match t {
            IFLA_MASTER => master = u32_at(p, 0),
            IFLA_PROTINFO => {
                hairpin = attributes(p)
                    .find(|(t, _)| *t == IFLA_BRPORT_MODE)
                    .and_then(|(_, p)| p.first().copied());
            }
            _ => {}
        }
    }
    hash((master, hairpin))
}

/// A fingerprint's hash.
fn hash(what: impl std::hash::Hash) -> u64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    what.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use netlink_packet_route::{
        AddressFamily,
        address::{AddressAttribute, AddressMessage},
        link::{LinkAttribute, LinkFlags, LinkMessage, LinkProtoInfoBridge, State},
        route::{RouteAttribute, RouteMessage, RouteProtocol},
    };

    use netlink_packet_core::DefaultNla;

    use super::*;

    /// `inner` as the kernel sends it: header and body, serialized.
    fn wire(inner: RouteNetlinkMessage) -> Vec<u8> {
        let mut m = NetlinkMessage::from(inner);
        m.finalize();
        let mut buf = vec![0u8; m.header.length as usize];
        m.serialize(&mut buf);
        buf
    }

    fn link(index: u32, attributes: Vec<LinkAttribute>) -> LinkMessage {
        let mut l = LinkMessage::default();
        l.header.index = index;
        l.header.flags = LinkFlags::Up;
        l.attributes = attributes;
        l
    }

    fn fingerprint(c: &Change) -> u64 {
        match c {
            Change::Link { fingerprint, .. } => *fingerprint,
            other => panic!("not a link change: {other:?}"),
        }
    }

    /// A link's alias, index and deletion are read; its fingerprint moves with what weft
    /// manages (name, MTU, MAC, up, master, alias, group) and not with anything else.
    #[test]
    fn link_messages_are_read_in_place() {
        let base = || {
            vec![
                LinkAttribute::IfName("wv1".into()),
                LinkAttribute::Mtu(1500),
                LinkAttribute::Address(vec![2, 0, 0, 0, 0, 1]),
                LinkAttribute::Controller(7),
                LinkAttribute::IfAlias("weft:abc".into()),
                LinkAttribute::Group(0),
            ]
        };
        let parse = |l: LinkMessage, del: bool| {
            let msg = if del {
                RouteNetlinkMessage::DelLink(l)
            } else {
                RouteNetlinkMessage::NewLink(l)
            };
            let mut all = parse_all(&wire(msg));
            assert_eq!(all.len(), 1, "{all:?}");
            all.remove(0)
        };
        let first = parse(link(42, base()), false);
        let Change::Link {
            index,
            alias,
            deleted,
            ..
        } = &first
        else {
            panic!("{first:?}");
        };
        assert_eq!(
            (*index, alias.as_deref(), *deleted),
            (42, Some("weft:abc"), false)
        );
        let gone = parse(link(42, base()), true);
        assert!(
            matches!(gone, Change::Link { deleted: true, .. }),
            "{gone:?}"
        );

        // Carrier, operstate and counters: no drift.
        let mut more = base();
        more.push(LinkAttribute::OperState(State::Down));
        more.push(LinkAttribute::Carrier(0));
        more.push(LinkAttribute::TxQueueLen(1000));
        assert_eq!(
            fingerprint(&parse(link(42, more), false)),
            fingerprint(&first)
        );
        // Each managed field moves it.
        let changed = |f: &dyn Fn(&mut Vec<LinkAttribute>)| {
            let mut a = base();
            f(&mut a);
            fingerprint(&parse(link(42, a), false))
        };
        let fp = fingerprint(&first);
        assert_ne!(changed(&|a| a[0] = LinkAttribute::IfName("wv2".into())), fp);
        assert_ne!(changed(&|a| a[1] = LinkAttribute::Mtu(1400)), fp);
        assert_ne!(
            changed(&|a| a[2] = LinkAttribute::Address(vec![2, 0, 0, 0, 0, 2])),
            fp
        );
        assert_ne!(changed(&|a| a[3] = LinkAttribute::Controller(8)), fp);
        assert_ne!(changed(&|a| a[4] = LinkAttribute::IfAlias("x".into())), fp);
        assert_ne!(changed(&|a| a[5] = LinkAttribute::Group(7)), fp);
        let mut down = link(42, base());
        down.header.flags = LinkFlags::empty();
        assert_ne!(fingerprint(&parse(down, false)), fp);
        // Without an alias (the mark removed): None.
        let bare = parse(link(42, base()[..4].to_vec()), false);
        assert!(
            matches!(
                bare,
                Change::Link {
                    alias: None,
                    newborn: false,
                    ..
                }
            ),
            "{bare:?}"
        );
        // In the newborn group: newborn until marked.
        let mut young = base()[..4].to_vec();
        young.push(LinkAttribute::Group(crate::kernel::NEWBORN_GROUP));
        let parsed = parse(link(42, young.clone()), false);
        assert!(
            matches!(parsed, Change::Link { newborn: true, .. }),
            "{parsed:?}"
        );
        young.push(LinkAttribute::IfAlias("weft:abc".into()));
        let parsed = parse(link(42, young), false);
        assert!(
            matches!(parsed, Change::Link { newborn: false, .. }),
            "{parsed:?}"
        );
        assert!(matches!(first, Change::Link { newborn: false, .. }));

        // The bridge's per-port message is a port change, whatever it carries; its
        // fingerprint moves with its bridge and hairpin mode, not with its STP state.
        let port = |master: u32, hairpin: u8, state: u8, del: bool| {
            let info =
                |kind: u16, v: u8| LinkProtoInfoBridge::Other(DefaultNla::new(kind, vec![v]));
            let mut p = link(
                42,
                vec![
                    LinkAttribute::IfName("wv1".into()),
                    LinkAttribute::Controller(master),
                    LinkAttribute::ProtoInfoBridge(vec![info(1, state), info(4, hairpin)]),
                ],
            );
            p.header.interface_family = AddressFamily::Bridge;
            match parse(p, del) {
                Change::Port {
                    index: 42,
                    fingerprint,
                } => fingerprint,
                other => panic!("not a port change: {other:?}"),
            }
        };
        let fp = port(7, 0, 0, false).expect("a port");
        assert_eq!(port(7, 0, 3, false), Some(fp), "STP state: no drift");
        assert_ne!(port(7, 1, 3, false), Some(fp), "hairpin mode");
        assert_ne!(port(8, 0, 3, false), Some(fp), "another bridge");
        assert_eq!(port(7, 0, 0, true), None, "no longer a port");
    }

    /// Addresses: every change but IPv6 link-local ones. Routes: weft's protocol only, with
    /// their output interface.
    #[test]
    fn address_and_route_messages_are_filtered_in_place() {
        let addr = |ip: std::net::IpAddr, del: bool| {
            let mut a = AddressMessage::default();
            a.header.index = 9;
            a.header.family = match ip {
                std::net::IpAddr::V4(_) => AddressFamily::Inet,
                std::net::IpAddr::V6(_) => AddressFamily::Inet6,
            };
            a.header.prefix_len = 64;
            a.attributes.push(AddressAttribute::Address(ip));
            parse_all(&wire(if del {
                RouteNetlinkMessage::DelAddress(a)
            } else {
                RouteNetlinkMessage::NewAddress(a)
            }))
        };
        assert_eq!(
            addr("10.1.0.2".parse().unwrap(), false),
            vec![Change::Address {
                index: 9,
                deleted: false
            }]
        );
        assert_eq!(
            addr("fd00::2".parse().unwrap(), true),
            vec![Change::Address {
                index: 9,
                deleted: true
            }]
        );
        assert_eq!(addr("fe80::1".parse().unwrap(), false), vec![]);
        assert_eq!(addr("febf::1".parse().unwrap(), false), vec![]);
        assert_eq!(addr("fec0::1".parse().unwrap(), false).len(), 1);

        let route = |protocol: u8, oif: Option<u32>, del: bool| {
            let mut r = RouteMessage::default();
            r.header.address_family = AddressFamily::Inet;
            r.header.protocol = RouteProtocol::from(protocol);
            if let Some(i) = oif {
                r.attributes.push(RouteAttribute::Oif(i));
            }
            parse_all(&wire(if del {
                RouteNetlinkMessage::DelRoute(r)
            } else {
                RouteNetlinkMessage::NewRoute(r)
            }))
        };
        assert_eq!(
            route(crate::kernel::RTPROT_WEFT, Some(5), false),
            vec![Change::Route {
                oif: Some(5),
                deleted: false
            }]
        );
        assert_eq!(
            route(crate::kernel::RTPROT_WEFT, None, true),
            vec![Change::Route {
                oif: None,
                deleted: true
            }]
        );
        // The kernel's own (RTPROT_KERNEL) and the boot protocol's.
        assert_eq!(route(2, Some(5), false), vec![]);
        assert_eq!(route(3, Some(5), false), vec![]);
    }

    /// One datagram holds several messages; one cut short ends the reading, without a panic.
    #[test]
    fn a_datagram_of_many_messages_and_a_truncated_one() {
        let mut l = LinkMessage::default();
        l.header.index = 3;
        let mut dgram = wire(RouteNetlinkMessage::NewLink(l.clone()));
        let mut a = AddressMessage::default();
        a.header.index = 4;
        a.header.family = AddressFamily::Inet;
        dgram.extend(wire(RouteNetlinkMessage::NewAddress(a)));
        let all = parse_all(&dgram);
        assert_eq!(all.len(), 2, "{all:?}");
        assert!(matches!(all[0], Change::Link { index: 3, .. }));
        assert_eq!(
            all[1],
            Change::Address {
                index: 4,
                deleted: false
            }
        );
        for cut in 0..dgram.len() {
            let _ = parse_all(&dgram[..cut]);
        }
        // An attribute whose length overruns the message.
        let mut bad = wire(RouteNetlinkMessage::NewLink(link(
            3,
            vec![LinkAttribute::IfName("x".into())],
        )));
        let at = NLMSG_HDR + IFINFOMSG;
        bad[at..at + 2].copy_from_slice(&500u16.to_ne_bytes());
        assert!(matches!(
            parse_all(&bad)[..],
            [Change::Link { index: 3, .. }]
        ));
    }
}
