//! Change notifications from one namespace: a netlink socket opened inside it and subscribed
//! to the link, address and route multicast groups. The reconciler turns each notification
//! into "re-check the object that owns this interface", so drift is repaired in about a
//! second instead of at the next resync.

use netlink_packet_core::NetlinkPayload;
use netlink_packet_route::{RouteNetlinkMessage, link::LinkAttribute, route::RouteAttribute};
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

fn link_change(l: &netlink_packet_route::link::LinkMessage, deleted: bool) -> Change {
    let alias = l.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfAlias(s) => Some(s.clone()),
        _ => None,
    });
    Change::Link {
        index: l.header.index,
        alias,
        deleted,
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
                    RouteNetlinkMessage::NewLink(l) => link_change(&l, false),
                    RouteNetlinkMessage::DelLink(l) => link_change(&l, true),
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
