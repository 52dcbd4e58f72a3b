//! Change notifications from one namespace: a netlink socket opened inside it and subscribed
//! to the link, address and route multicast groups. The reconciler turns each notification
//! into "re-check the object that owns this interface", so drift is repaired in about a
//! second instead of at the next resync.

use netlink_packet_core::NetlinkPayload;
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage, address::AddressAttribute, link::LinkAttribute,
    route::RouteAttribute,
};
use netlink_sys::{AsyncSocket, SocketAddr};
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
    /// A route through interface `oif` was added or (with `deleted`) removed.
    Route {
        /// The output interface, if the route has one.
        oif: Option<u32>,
        /// It was removed.
        deleted: bool,
    },
}

/// A running subscription; dropping it closes the socket.
#[derive(Debug)]
pub struct Monitor {
    /// The changes, in the order the kernel sent them.
    pub changes: mpsc::UnboundedReceiver<Change>,
    tasks: [JoinHandle<()>; 2],
}

impl Drop for Monitor {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

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
    /// Subscribes to link, address and route changes in `ns`.
    pub async fn monitor(&self, ns: &NsRef) -> Result<Monitor, KernelError> {
        let label = self.label(ns);
        let runtime = tokio::runtime::Handle::current();
        let target = self.inner.conns.ns_file(ns);
        let ((connection, handle, mut messages), _id) = netns::run_in(target, move || {
            let _entered = runtime.enter();
            let (mut connection, handle, messages) = rtnetlink::new_connection()
                .map_err(|e| error::io(format!("open netlink monitor in {label}"), e))?;
            connection
                .socket_mut()
                .socket_mut()
                .bind(&SocketAddr::new(0, GROUPS))
                .map_err(|e| error::io(format!("subscribe to netlink groups in {label}"), e))?;
            Ok((connection, handle, messages))
        })
        .await?;
        let (tx, changes) = mpsc::unbounded_channel();
        let conn_task = tokio::spawn(connection);
        let map_task = tokio::spawn(async move {
            // The handle keeps the connection task polling the socket.
            let _handle = handle;
            while let Some((msg, _)) = futures::StreamExt::next(&mut messages).await {
                let NetlinkPayload::InnerMessage(inner) = msg.payload else {
                    continue;
                };
                let change = match inner {
                    // The bridge's per-port messages (family AF_BRIDGE: a port enslaved, its
                    // STP state) never carry the alias: they would read as "mark removed".
                    RouteNetlinkMessage::NewLink(l) | RouteNetlinkMessage::DelLink(l)
                        if l.header.interface_family == AddressFamily::Bridge =>
                    {
                        continue;
                    }
                    RouteNetlinkMessage::NewLink(l) => link_change(&l, false),
                    RouteNetlinkMessage::DelLink(l) => link_change(&l, true),
                    // IPv6 link-local addresses come and go (and finish duplicate address
                    // detection a second or two after an interface is up) on their own;
                    // weft never manages them.
                    RouteNetlinkMessage::NewAddress(a) | RouteNetlinkMessage::DelAddress(a)
                        if is_link_local(&a) =>
                    {
                        continue;
                    }
                    // weft manages only routes of its own protocol; the kernel's (prefix
                    // routes, IPv6 link-local and multicast ones) come and go with addresses
                    // and links, which are watched themselves.
                    RouteNetlinkMessage::NewRoute(r) | RouteNetlinkMessage::DelRoute(r)
                        if u8::from(r.header.protocol) != super::RTPROT_WEFT =>
                    {
                        continue;
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
                    _ => continue,
                };
                if tx.send(change).is_err() {
                    return;
                }
            }
        });
        Ok(Monitor {
            changes,
            tasks: [conn_task, map_task],
        })
    }
}
