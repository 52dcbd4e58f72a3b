//! The only code that touches the kernel: network namespaces (nix), links, addresses and routes
//! (rtnetlink). Everything here is idempotent-friendly: observe with `get_*`/`list_*`, change
//! with the narrow write calls, each of which bumps the kernel-write counter.
//!
//! Namespaces are addressed by [`NsRef`]: the daemon's host namespace (the one `--host-netns`
//! names, or weftd's own) or a namespace file. Netlink sockets for a namespace are created on a
//! thread in it (a short-lived one that `setns`es into it, or for the host a blocking-pool
//! thread already there), then used from tokio; they are cached per namespace until
//! [`Kernel::forget`].
//!
//! # Layout
//! - `netns`: namespace files (create/delete like `ip netns add`/`del`, the nsfs check) and the
//!   short-lived helper threads that enter a namespace (work in the host runs on a blocking-pool
//!   thread instead when that thread is in it). No tokio thread ever changes namespace.
//! - `conn`: rtnetlink connections opened inside their namespace and cached (four plus a slow
//!   lane for the host, at most 64 named namespaces, least recently used closed first),
//!   reopened when the namespace file names a new namespace.
//! - `monitor`: one socket in the host namespace hearing every namespace with an id there.
//! - `link`, `addr`, `route`: request builders and reply parsers per object kind.
//! - `error`: rtnetlink/syscall errors into [`KernelError`], keeping the positive errno.
//! - `etc`: the per-namespace files under `--etc-netns-dir` (`<name>/resolv.conf`), written
//!   atomically; files, not kernel state, outside the [`KernelOps`] seam.
//!
//! # Conventions callers rely on
//! - **Reads** never change anything and never count as writes. Absent things are `Ok(None)`
//!   (`get_link*`) or an empty list (`list_routes` on a missing interface).
//! - **Creates and adds are strict**: an interface name or address or route that already exists
//!   is an error with errno `EEXIST` ([`KernelError::is_exists`]); observe first, then add.
//!   The exception is [`Kernel::create_named_netns`], which is idempotent.
//! - **Deletes are idempotent**: deleting what is already gone (`ENODEV` for a link,
//!   `EADDRNOTAVAIL` for an address, `ESRCH` for a route, a missing netns file) is `Ok(())`.
//! - Errors from the kernel carry its errno ([`KernelError::errno`], positive, as in `libc`)
//!   and an `op` text naming the object and namespace. `errno() == None` means the request
//!   may not have reached the kernel (e.g. the connection died; its cache entry is dropped, so
//!   a retry opens a new socket): treat it as transient.
//! - The write counter ([`Kernel::writes`]) counts requests *sent* that change the kernel,
//!   successful or not: a converged system observes without writing.
//! - Every link weft creates starts down (veth, bridge) and in interface group
//!   [`NEWBORN_GROUP`] (both ends of a veth); bring it up with [`Kernel::set_link`].
//! - A cached socket holds its namespace alive; [`Kernel::delete_named_netns`] forgets it
//!   itself, callers that stop using an adopted namespace call [`Kernel::forget`].

mod addr;
mod conn;
mod dryrun;
mod eager;
mod error;
pub mod etc;
#[cfg(test)]
pub mod fake;
#[cfg(test)]
mod fence_tests;
pub mod firewall;
mod link;
pub mod monitor;
mod netns;
mod ops;
mod route;
pub mod snapshot;
pub mod sockets;
mod types;
mod writes;

pub use dryrun::DryRun;
pub use error::{ErrorKind, KernelError};
pub use ops::{AddrOps, FirewallOps, KernelOps, LinkOps, NetnsOps, RouteOps};
pub use sockets::{HostSockets, SocketKind};
pub use types::{LinkChange, LinkState, NEWBORN_GROUP, NsIdentity, NsRef, RTPROT_WEFT, RouteState};
use writes::TASK_WRITES;
pub use writes::{count_writes, note_write};

/// The kernel traits, for code that calls them on a concrete [`Kernel`] (tests, benches):
/// `use weftd::kernel::prelude::*;`.
pub mod prelude {
    pub use super::{AddrOps, FirewallOps, KernelOps, LinkOps, NetnsOps, RouteOps};
}

use std::{
    fmt,
    fs::File,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use async_trait::async_trait;
use ipnet::IpNet;
use nix::errno::Errno;
use rtnetlink::Handle;

use self::{
    conn::{Connections, Lane},
    link::Selector,
};

/// The kernel, as seen from weftd.
///
/// Cheap to clone (one `Arc`); `Send + Sync`. All clones share the socket cache and the
/// write counter.
#[derive(Clone, Debug)]
pub struct Kernel {
    inner: Arc<Inner>,
}

/// State shared by all clones of a [`Kernel`].
struct Inner {
    netns_dir: PathBuf,
    host_netns: Option<PathBuf>,
    conns: Connections,
    writes: AtomicU64,
    /// Serialises creating and deleting named namespace files, so two callers never race on
    /// the same file (one would see the other's not-yet-mounted placeholder). It holds
    /// whether the netns dir's mounts were made shared recursively yet ([`netns::prepare_dir`]).
    netns_lock: tokio::sync::Mutex<bool>,
    /// The host namespace's netfilter sockets, kept between calls.
    nft: firewall::NftSockets,
    /// The sysctl fence: every netlink write of weft's but link deletes holds it shared
    /// while it is in flight, a sysctl write holds it alone ([`Kernel::write_sysctl`] says
    /// why).
    sysctl_fence: tokio::sync::RwLock<()>,
    /// The next namespace id weft gives (counting down), learnt at the first one
    /// ([`Kernel::assign_netns_id`]).
    nsid_next: tokio::sync::OnceCell<std::sync::atomic::AtomicI32>,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kernel")
            .field("netns_dir", &self.netns_dir)
            .field("host_netns", &self.host_netns)
            .field("writes", &self.writes.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The loopback interface's index in every network namespace.
const LOOPBACK_INDEX: u32 = 1;

impl Kernel {
    /// Opens the kernel layer. `host_netns` is the file of the namespace that plays the host
    /// (None: weftd's own); `netns_dir` is where named namespaces are created.
    ///
    /// The host namespace file is opened here, once: with `None` that is `/proc/self/ns/net`,
    /// the namespace of weftd's main thread. Fails if `host_netns` is not a namespace file.
    /// Nothing is created yet (the netns dir is made on the first `create_named_netns`), and
    /// no tokio runtime is needed for this call.
    pub fn new(host_netns: Option<PathBuf>, netns_dir: PathBuf) -> Result<Self, KernelError> {
        let (file, label) = match &host_netns {
            Some(path) => {
                if !netns::is_nsfs(path) {
                    return Err(error::sys(
                        format!(
                            "host netns {}: not a network namespace file",
                            path.display()
                        ),
                        Errno::EINVAL,
                    ));
                }
                (netns::open(path)?, path.clone())
            }
            None => {
                let own = PathBuf::from("/proc/self/ns/net");
                let file = netns::open(&own)?;
                (
                    file,
                    PathBuf::from(format!("/proc/{}/ns/net", std::process::id())),
                )
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                netns_dir,
                host_netns,
                conns: Connections::new(file, label),
                writes: AtomicU64::new(0),
                netns_lock: tokio::sync::Mutex::new(false),
                nft: firewall::NftSockets::default(),
                sysctl_fence: tokio::sync::RwLock::new(()),
                nsid_next: tokio::sync::OnceCell::new(),
            }),
        })
    }

    async fn lookup(
        &self,
        ns: &NsRef,
        selector: Selector<'_>,
        with_addresses: bool,
    ) -> Result<Option<LinkState>, KernelError> {
        self.read(
            ns,
            || match selector {
                Selector::Name(name) => format!("get link {name} in {}", self.label(ns)),
                Selector::Index(index) => format!("get link #{index} in {}", self.label(ns)),
            },
            |h| async move { link::get(&h, selector, with_addresses).await },
        )
        .await
    }

    /// One `RTM_NEWROUTE` (or, with `delete`, `RTM_DELROUTE`) for `route` through interface
    /// `index`, counted as a write: the shared body of `add_route` and `del_route`.
    ///
    /// The message is built before anything is sent, so a route the kernel could not take
    /// (host bits set, a gateway of the other family) is `EINVAL` without a write. Kernel
    /// errors come back as they are; `del_route` decides which of them mean "already gone".
    async fn write_route(
        &self,
        ns: &NsRef,
        index: u32,
        route: &RouteState,
        delete: bool,
    ) -> Result<(), KernelError> {
        let verb = if delete { "delete" } else { "add" };
        let op = || {
            format!(
                "{verb} route {} dev #{index} in {}",
                route::describe(route),
                self.label(ns)
            )
        };
        let message =
            route::message(index, route, delete).map_err(|text| error::invalid(op(), text))?;
        self.write(ns, op, |h| async move {
            if delete {
                h.route().del(message).execute().await
            } else {
                h.route().add(message).execute().await
            }
        })
        .await
    }

    // ---- plumbing ----

    /// How `ns` is named in operation texts.
    pub(crate) fn label(&self, ns: &NsRef) -> String {
        self.inner.conns.label(ns)
    }

    fn wrote(&self) {
        self.inner.writes.fetch_add(1, Ordering::Relaxed);
        // Attribute the write to the reconcile running on this task, if it counts (writes
        // made on helper threads, such as nftables batches, are counted globally only).
        let _ = TASK_WRITES.try_with(|c| c.set(c.get() + 1));
    }

    /// Runs a read-only request (every read dumps) on `ns`'s connection, under its dump lock.
    async fn read<T, F, Fut>(
        &self,
        ns: &NsRef,
        op: impl FnOnce() -> String,
        request: F,
    ) -> Result<T, KernelError>
    where
        F: FnOnce(Handle) -> Fut,
        Fut: Future<Output = Result<T, rtnetlink::Error>>,
    {
        self.run(ns, op, false, request).await
    }

    /// Runs a request that changes the kernel on `ns`'s connection, counting it.
    async fn write<T, F, Fut>(
        &self,
        ns: &NsRef,
        op: impl FnOnce() -> String,
        request: F,
    ) -> Result<T, KernelError>
    where
        F: FnOnce(Handle) -> Fut,
        Fut: Future<Output = Result<T, rtnetlink::Error>>,
    {
        self.run(ns, op, true, request).await
    }

    async fn run<T, F, Fut>(
        &self,
        ns: &NsRef,
        op: impl FnOnce() -> String,
        counts: bool,
        request: F,
    ) -> Result<T, KernelError>
    where
        F: FnOnce(Handle) -> Fut,
        Fut: Future<Output = Result<T, rtnetlink::Error>>,
    {
        self.run_on(ns, Lane::Normal, op, counts, counts, request)
            .await
    }

    /// Runs `request` on `ns`'s socket of `lane`; `counts` makes it a write (counted), and
    /// `fenced` holds the sysctl fence shared while it is in flight (see
    /// [`Kernel::write_sysctl`]).
    async fn run_on<T, F, Fut>(
        &self,
        ns: &NsRef,
        lane: Lane,
        op: impl FnOnce() -> String,
        counts: bool,
        fenced: bool,
        request: F,
    ) -> Result<T, KernelError>
    where
        F: FnOnce(Handle) -> Fut,
        Fut: Future<Output = Result<T, rtnetlink::Error>>,
    {
        let session = match self.inner.conns.session(ns, lane).await {
            Ok(session) => session,
            Err(e) => return Err(e.relabel(&op())),
        };
        // Reads dump, and a socket runs one dump at a time (EBUSY otherwise).
        let _dumping = if counts {
            self.wrote();
            None
        } else {
            Some(session.dumps.lock().await)
        };
        let _fence = if fenced {
            Some(self.inner.sysctl_fence.read().await)
        } else {
            None
        };
        let handle = session.handle;
        request(handle).await.map_err(|e| {
            if error::connection_lost(&e) {
                tracing::warn!(ns = ?ns, "netlink connection lost; dropping it");
                self.forget(ns);
            }
            error::netlink(op(), e)
        })
    }
}

/// The peer namespace's file for `IFLA_NET_NS_FD`, held open while the request is in flight.
enum PeerNs<'a> {
    Host(&'a File),
    Opened(File),
}

impl PeerNs<'_> {
    fn fd(&self) -> std::os::fd::RawFd {
        match self {
            PeerNs::Host(file) => file.as_raw_fd(),
            PeerNs::Opened(file) => file.as_raw_fd(),
        }
    }
}

/// Turns the listed errnos ("already gone") into success.
fn ignore_errno(result: Result<(), KernelError>, gone: &[Errno]) -> Result<(), KernelError> {
    match result {
        Err(e) if gone.iter().any(|g| e.errno() == Some(*g as i32)) => Ok(()),
        other => other,
    }
}

#[async_trait]
impl LinkOps for Kernel {
    /// Looks an interface up by name. Ok(None) when absent.
    async fn get_link(&self, ns: &NsRef, name: &str) -> Result<Option<LinkState>, KernelError> {
        self.lookup(ns, Selector::Name(name), true).await
    }

    /// Looks an interface up by name without its addresses (one `RTM_GETLINK`, no address
    /// dump): `addresses` is empty. For an index, a kind or flags, or a link just created.
    async fn get_link_bare(
        &self,
        ns: &NsRef,
        name: &str,
    ) -> Result<Option<LinkState>, KernelError> {
        self.lookup(ns, Selector::Name(name), false).await
    }

    /// The namespace's `/proc/net/dev`, kept open beside its socket (see `conn`): listed
    /// under RCU. The host's is not kept (it lists every endpoint's host end).
    async fn name_listed(&self, ns: &NsRef, name: &str) -> Result<Option<bool>, KernelError> {
        if matches!(ns, NsRef::Host) {
            return Ok(None);
        }
        let session = self.inner.conns.session(ns, Lane::Normal).await?;
        Ok(session
            .devs
            .as_deref()
            .and_then(|devs| conn::listed_in(devs, name)))
    }

    /// Looks an interface up by index. Ok(None) when absent.
    async fn get_link_by_index(
        &self,
        ns: &NsRef,
        index: u32,
    ) -> Result<Option<LinkState>, KernelError> {
        self.lookup(ns, Selector::Index(index), true).await
    }

    /// Every interface in `ns`, without their addresses (`addresses` is empty).
    async fn list_links(&self, ns: &NsRef) -> Result<Vec<LinkState>, KernelError> {
        self.read(
            ns,
            || format!("list links in {}", self.label(ns)),
            |h| async move { link::list(&h).await },
        )
        .await
    }

    /// Creates a veth pair: `name` in `ns`, `peer_name` born directly in `peer_ns`.
    ///
    /// One `RTM_NEWLINK` on `ns`'s socket whose peer message carries `IFLA_NET_NS_FD` of
    /// `peer_ns` (none when both are the same namespace): no create-then-move. Both ends start
    /// down. `EEXIST` if either name is taken in its namespace; look the ends up by name
    /// afterwards (indexes are per namespace).
    async fn create_veth(
        &self,
        ns: &NsRef,
        name: &str,
        peer_ns: &NsRef,
        peer_name: &str,
    ) -> Result<(), KernelError> {
        self.make_veth(ns, name, peer_ns, peer_name, false)
            .await
            .map(drop)
    }

    /// [`Kernel::create_veth`] with `NLM_F_ECHO`: the kernel (Linux 6.1 and later) sends the
    /// request's own socket the `RTM_NEWLINK` that announces `name`'s end, before its answer;
    /// that message is parsed as a read of the end would be.
    async fn create_veth_echoed(
        &self,
        ns: &NsRef,
        name: &str,
        peer_ns: &NsRef,
        peer_name: &str,
    ) -> Result<Option<LinkState>, KernelError> {
        self.make_veth(ns, name, peer_ns, peer_name, true).await
    }

    /// Creates a bridge.
    ///
    /// The bridge starts down with the kernel's defaults; `EEXIST` if the name is taken.
    async fn create_bridge(&self, ns: &NsRef, name: &str) -> Result<(), KernelError> {
        let message = link::bridge_message(name);
        self.write(
            ns,
            || format!("create bridge {name} in {}", self.label(ns)),
            |h| async move { h.link().add(message).execute().await },
        )
        .await
    }

    /// Applies `change` to interface `index` in one request.
    ///
    /// The request carries only the fields that are `Some`; an empty change sends nothing (and
    /// counts no write). A malformed MAC is `EINVAL` before anything is sent. `ENODEV` if the
    /// interface is gone.
    async fn set_link(
        &self,
        ns: &NsRef,
        index: u32,
        change: &LinkChange,
    ) -> Result<(), KernelError> {
        let op = || {
            format!(
                "set link #{index} in {} ({})",
                self.label(ns),
                link::describe_change(change)
            )
        };
        let message =
            link::set_message(index, change).map_err(|text| error::invalid(op(), text))?;
        if let Some(message) = message {
            self.write(
                ns,
                op,
                |h| async move { h.link().set(message).execute().await },
            )
            .await?;
        }
        // The port data goes second, through the master the first request may have set.
        if let Some(message) = link::hairpin_message(index, change) {
            self.write(ns, op, |h| async move {
                h.link().set_port(message).execute().await
            })
            .await?;
        }
        Ok(())
    }

    /// Deletes interface `index` (for a veth, the pair goes).
    ///
    /// Ok if there is no such interface.
    async fn delete_link(&self, ns: &NsRef, index: u32) -> Result<(), KernelError> {
        // Unfenced: the kernel answers a delete only after RCU grace periods (tens of
        // milliseconds), most of them without RTNL; a sysctl write would wait them out. In
        // the host on the slow lane: a fenced write queued behind it on a shared socket would
        // hold the fence all that time (a named namespace has one socket; deletes there are
        // rare: a wrong kind of link, garbage).
        let result = self
            .run_on(
                ns,
                Lane::Slow,
                || format!("delete link #{index} in {}", self.label(ns)),
                true,
                false,
                |h| async move { h.link().del(index).execute().await },
            )
            .await;
        ignore_errno(result, &[Errno::ENODEV])
    }

    /// Announces interface `index` to its neighbours, by the kernel's own means: with
    /// `arp_notify` and `ndisc_notify` on for the interface (set here if they are not; an
    /// interface without IPv6 has no `ndisc_notify`), setting its MAC makes the kernel send a
    /// gratuitous ARP for each IPv4 address and an unsolicited neighbour advertisement for
    /// each IPv6 one (`NETDEV_CHANGEADDR`), even when the MAC stays the same. No packet
    /// socket, no process. The kernel sends them on `IFF_UP` too, but a veth's bridge port
    /// is not forwarding yet at that moment, so those are lost; callers announce after.
    async fn announce(
        &self,
        ns: &NsRef,
        index: u32,
        name: &str,
        mac: &str,
    ) -> Result<bool, KernelError> {
        let Some(link) = self.lookup(ns, Selector::Index(index), false).await? else {
            return Ok(false);
        };
        if link.name != name || link.mac.as_deref() != Some(mac) {
            return Ok(false);
        }
        self.write_sysctl(ns, &format!("net/ipv4/conf/{name}/arp_notify"), "1")
            .await?;
        match self
            .write_sysctl(ns, &format!("net/ipv6/conf/{name}/ndisc_notify"), "1")
            .await
        {
            Err(e) if e.is_not_found() => {}
            other => {
                other?;
            }
        }
        let same = LinkChange {
            mac: Some(mac.to_string()),
            ..Default::default()
        };
        match self.set_link(ns, index, &same).await {
            Err(e) if e.is_not_found() => Ok(false),
            other => other.map(|()| true),
        }
    }

    /// Deletes every interface of `group` in `ns` with one `RTM_DELLINK` (ifindex 0 and
    /// `IFLA_GROUP`, what `ip link del group N` sends): the kernel unregisters them as one
    /// batch and waits for one RCU grace period for all, instead of one per interface (about
    /// 20 ms each here). A veth's peer goes with it, whatever namespace it is in.
    ///
    /// Ok when the group is empty. Callers must know every member is theirs.
    async fn delete_link_group(&self, ns: &NsRef, group: u32) -> Result<(), KernelError> {
        // On the slow lane: the kernel answers after the grace period, and a socket runs one
        // request at a time.
        let result = self
            .run_on(
                ns,
                Lane::Slow,
                || format!("delete link group {group} in {}", self.label(ns)),
                true,
                // Unfenced, as `delete_link`.
                false,
                |h| async move {
                    let mut request = h.link().del(0);
                    request
                        .message_mut()
                        .attributes
                        .push(netlink_packet_route::link::LinkAttribute::Group(group));
                    request.execute().await
                },
            )
            .await;
        ignore_errno(result, &[Errno::ENODEV])
    }
}

impl Kernel {
    /// The body of [`Kernel::create_veth`] and [`Kernel::create_veth_echoed`]: with `echo`,
    /// the end the kernel echoed (None when it echoed nothing).
    async fn make_veth(
        &self,
        ns: &NsRef,
        name: &str,
        peer_ns: &NsRef,
        peer_name: &str,
        echo: bool,
    ) -> Result<Option<LinkState>, KernelError> {
        let op = || {
            format!(
                "create veth {name} in {} (peer {peer_name} in {})",
                self.label(ns),
                self.label(peer_ns)
            )
        };
        // Keep the peer namespace's file open until the kernel has answered.
        let peer_file: Option<PeerNs<'_>> = if peer_ns == ns {
            None
        } else {
            Some(match peer_ns {
                NsRef::Host => PeerNs::Host(self.inner.conns.host_file()),
                NsRef::Path(path) => {
                    PeerNs::Opened(netns::open(path).map_err(|e| e.relabel(&op()))?)
                }
            })
        };
        let message = link::veth_message(name, peer_name, peer_file.as_ref().map(|f| f.fd()));
        let result = self
            .write(ns, op, |h| {
                link::add_echoed(h, message, name.to_string(), echo)
            })
            .await;
        drop(peer_file);
        result
    }
}

#[async_trait]
impl AddrOps for Kernel {
    /// Adds an address to interface `index`.
    ///
    /// Like `ip addr add`: for IPv4 shorter than /31 the broadcast address is set too. Strict:
    /// `EEXIST` if the address is already on the interface.
    async fn add_address(
        &self,
        ns: &NsRef,
        index: u32,
        addr: IpNet,
        nodad: bool,
    ) -> Result<(), KernelError> {
        self.write(
            ns,
            || format!("add address {addr} to link #{index} in {}", self.label(ns)),
            |h| async move { addr::add(&h, index, addr, nodad).await },
        )
        .await
    }

    /// Removes an address from interface `index`.
    ///
    /// Ok if the address (or the interface) is not there.
    async fn del_address(&self, ns: &NsRef, index: u32, addr: IpNet) -> Result<(), KernelError> {
        let result = self
            .write(
                ns,
                || {
                    format!(
                        "delete address {addr} from link #{index} in {}",
                        self.label(ns)
                    )
                },
                |h| async move { addr::del(&h, index, addr).await },
            )
            .await;
        ignore_errno(result, &[Errno::EADDRNOTAVAIL, Errno::ENODEV])
    }
}

#[async_trait]
impl RouteOps for Kernel {
    /// Routes in the main table whose output interface is `index` and whose protocol is
    /// weft's (`RTPROT_WEFT`), IPv4 and IPv6.
    ///
    /// IPv4 routes come first. Empty if the interface does not exist.
    async fn list_routes(&self, ns: &NsRef, index: u32) -> Result<Vec<RouteState>, KernelError> {
        let routes = self
            .read(
                ns,
                || format!("list routes of link #{index} in {}", self.label(ns)),
                |h| async move { route::list(&h, index).await },
            )
            .await;
        match routes {
            Err(e) if e.errno() == Some(Errno::ENODEV as i32) => Ok(Vec::new()),
            other => other,
        }
    }

    /// The destination of every route in `ns`'s main table (any protocol, any interface).
    async fn route_destinations(&self, ns: &NsRef) -> Result<Vec<IpNet>, KernelError> {
        self.read(
            ns,
            || format!("list routes in {}", self.label(ns)),
            |h| async move { route::destinations(&h).await },
        )
        .await
    }

    /// Adds a route through interface `index` with protocol `RTPROT_WEFT`.
    ///
    /// No gateway: an on-link route (IPv4 scope link). `metric` 0 sends no priority (IPv6
    /// then stores 1024, see [`RouteState::kernel_metric`]). Strict: `EEXIST` if the same
    /// route exists; `ENETUNREACH` if an IPv4 gateway is not reachable on the interface
    /// (add the address first); `EINVAL` for a destination with host bits set or a gateway
    /// of the other family.
    async fn add_route(
        &self,
        ns: &NsRef,
        index: u32,
        route: &RouteState,
    ) -> Result<(), KernelError> {
        self.write_route(ns, index, route, false).await
    }

    /// Removes a route added by `add_route`.
    ///
    /// Only a route with weft's protocol matches. Ok if there is no such route.
    async fn del_route(
        &self,
        ns: &NsRef,
        index: u32,
        route: &RouteState,
    ) -> Result<(), KernelError> {
        let result = self.write_route(ns, index, route, true).await;
        ignore_errno(result, &[Errno::ESRCH, Errno::ENODEV])
    }
}

#[async_trait]
impl NetnsOps for Kernel {
    fn netns_dir_entries(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.inner.netns_dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect()
    }

    async fn netns_id(&self, ns: &NsRef) -> Result<Option<i32>, KernelError> {
        self.assign_netns_id(ns).await
    }

    async fn ensure_sysctl(&self, ns: &NsRef, key: &str, value: &str) -> Result<bool, KernelError> {
        self.write_sysctl(ns, key, value).await
    }

    async fn read_sysctl(&self, ns: &NsRef, key: &str) -> Result<Option<String>, KernelError> {
        self.sysctl_value(ns, key).await.map(Some)
    }

    /// The directory where named namespaces live.
    fn netns_dir(&self) -> &Path {
        &self.inner.netns_dir
    }

    /// Creates `<netns_dir>/<name>` as `ip netns add` does, and brings its loopback up.
    /// If the file already is a network namespace, returns Ok without changes.
    ///
    /// "Without changes" is checked, not assumed: an existing namespace whose loopback is down
    /// (a crash between mounting and `lo up`) gets it brought up. A leftover empty placeholder
    /// file is replaced; any other non-namespace file in the way is an `EEXIST` error. `name`
    /// must be one path component (`EINVAL` otherwise). The netns dir is created (0755) and
    /// made a shared mount point, bind-mounting it onto itself if needed; the mounts under it
    /// are made shared too the first time (`ip netns add` does that every time, a walk of every
    /// mount under the dir: ~1.5 ms a namespace at 10,000, under this lock).
    async fn create_named_netns(&self, name: &str) -> Result<PathBuf, KernelError> {
        netns::validate_name(name)?;
        let path = self.named_netns_path(name);
        let created = {
            let mut shared_all = self.inner.netns_lock.lock().await;
            if netns::is_nsfs(&path) {
                netns::Created::Existed
            } else {
                netns::prepare_dir(&self.inner.netns_dir, !*shared_all)?;
                *shared_all = true;
                let created = netns::create_file(&path).await?;
                if created == netns::Created::New {
                    self.wrote();
                }
                created
            }
        };
        let ns = NsRef::path(&path);
        if created == netns::Created::Existed {
            // Observe before writing, so a converged namespace costs no write.
            let lo = self.get_link_by_index(&ns, LOOPBACK_INDEX).await?;
            if lo.is_some_and(|lo| lo.up) {
                return Ok(path);
            }
        }
        let up = LinkChange {
            up: Some(true),
            ..Default::default()
        };
        self.set_link(&ns, LOOPBACK_INDEX, &up).await?;
        Ok(path)
    }

    /// Unmounts and removes `<netns_dir>/<name>`; Ok if it does not exist.
    ///
    /// Forgets the cached socket for the namespace first (it would keep the namespace alive).
    /// The kernel then frees the namespace, and the interfaces in it, once no process or other
    /// mount holds it.
    async fn delete_named_netns(&self, name: &str) -> Result<(), KernelError> {
        netns::validate_name(name)?;
        let path = self.named_netns_path(name);
        self.forget(&NsRef::path(&path));
        let _guard = self.inner.netns_lock.lock().await;
        if netns::remove_file(&path)? {
            self.wrote();
        }
        Ok(())
    }

    /// True if `path` exists and is a network namespace file (nsfs).
    ///
    /// This is the `statfs` magic check (`NSFS_MAGIC`), as iproute2 does: it cannot tell a
    /// network namespace file from another kind of namespace file (`/proc/<pid>/ns/mnt`).
    fn is_netns(&self, path: &Path) -> bool {
        netns::is_nsfs(path)
    }

    /// Drops cached sockets for a namespace (after it was deleted).
    fn forget(&self, ns: &NsRef) {
        self.inner.conns.forget(ns);
    }

    /// `stat` of the file's nsfs inode.
    fn netns_identity(&self, path: &Path) -> Result<NsIdentity, KernelError> {
        netns::id_of_path(path).map(|(dev, ino)| NsIdentity { dev, ino })
    }

    /// `fstat` of the host namespace file opened at start-up (so a path re-pointed since
    /// cannot fool it).
    fn host_netns_identity(&self) -> Result<NsIdentity, KernelError> {
        let st = nix::sys::stat::fstat(self.inner.conns.host_file())
            .map_err(|e| error::sys("stat the host namespace", e))?;
        Ok(NsIdentity {
            dev: st.st_dev,
            ino: st.st_ino,
        })
    }

    /// `stat` of `/proc/self/ns/net`: the namespace of weftd's main thread, which weftd
    /// never moves (only short-lived helper threads enter other namespaces; pool threads
    /// never do).
    fn own_netns_identity(&self) -> Result<NsIdentity, KernelError> {
        self.netns_identity(Path::new("/proc/self/ns/net"))
    }
}

#[async_trait]
impl KernelOps for Kernel {
    async fn snapshot(
        &self,
        targets: &[snapshot::SnapshotTarget],
        pace: snapshot::Pace,
    ) -> Result<Vec<Result<snapshot::NsSnapshot, KernelError>>, KernelError> {
        self.read_snapshot(targets, pace).await
    }

    async fn monitor(&self) -> Result<monitor::Monitor, KernelError> {
        self.subscribe().await
    }

    /// The namespace file `--host-netns` named, if any (None: weftd's own namespace).
    fn host_netns(&self) -> Option<&Path> {
        self.inner.host_netns.as_deref()
    }

    /// Kernel writes made so far (every create/set/delete/add/del call that reached the kernel).
    fn writes(&self) -> u64 {
        self.inner.writes.load(Ordering::Relaxed)
    }

    /// Request sockets open now: at most the host's lanes plus
    /// `MAX_NAMESPACE_SOCKETS` (64) for named namespaces.
    fn open_sockets(&self) -> usize {
        self.inner.conns.count()
    }
}
