//! The kernel seam: what weft asks of the kernel, as narrow traits.
//!
//! Everything above `kernel/` (the reconcilers, the garbage collector, the API's few checks)
//! talks to the kernel only through [`KernelOps`], a trait object. Three implementations:
//! - [`super::Kernel`], the real one: rtnetlink for links, addresses and routes, nix for
//!   namespaces, nftnl for the firewall;
//! - [`super::DryRun`], which passes reads through to another implementation and records every
//!   write as a planned change instead of making it (what `dry_run` requests return);
//! - `kernel::fake::FakeKernel` (tests only), an in-memory kernel with injectable errors, that
//!   the reconcilers' unit tests run against without root.
//!
//! The shape follows rtnetlink's handle → request → execute and youki's `Syscall` trait: one
//! trait per object kind, each method one request the kernel understands, with the
//! conventions of the module docs of [`super`] (reads are `Ok(None)` when absent, creates are
//! strict, deletes idempotent). Errors are [`KernelError`]s whose meaning callers read with
//! [`KernelError::kind`], never by errno.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use ipnet::IpNet;

use super::{
    KernelError, LinkChange, LinkState, NsIdentity, NsRef, RouteState,
    firewall::{FirewallNetwork, PortMapping},
    monitor::Monitor,
    snapshot::{NsSnapshot, Pace, SnapshotTarget},
};

/// Interfaces: look up, create (veth, bridge), change, delete.
#[async_trait]
pub trait LinkOps: Send + Sync {
    /// Looks an interface up by name, with its addresses. `Ok(None)` when absent.
    async fn get_link(&self, ns: &NsRef, name: &str) -> Result<Option<LinkState>, KernelError>;

    /// Looks an interface up by name without its addresses (`addresses` is empty): one
    /// request, for an index, a kind or flags.
    async fn get_link_bare(&self, ns: &NsRef, name: &str)
    -> Result<Option<LinkState>, KernelError>;

    /// Whether namespace `ns` lists an interface whose primary name is `name`, from a listing
    /// the kernel gives under RCU, so the answer never waits for RTNL (which creates and
    /// deletes hold) and never loads a module; `Ok(None)` when this can't tell (read the
    /// interface instead). An alternative name is not listed: a create still refuses it
    /// (`EEXIST`). By default it can't tell.
    async fn name_listed(&self, _ns: &NsRef, _name: &str) -> Result<Option<bool>, KernelError> {
        Ok(None)
    }

    /// Looks an interface up by index, with its addresses. `Ok(None)` when absent.
    async fn get_link_by_index(
        &self,
        ns: &NsRef,
        index: u32,
    ) -> Result<Option<LinkState>, KernelError>;

    /// Every interface in `ns`, without their addresses.
    async fn list_links(&self, ns: &NsRef) -> Result<Vec<LinkState>, KernelError>;

    /// Creates a veth pair: `name` in `ns`, `peer_name` born directly in `peer_ns`. Both ends
    /// start down. `Exists` if either name is taken in its namespace.
    async fn create_veth(
        &self,
        ns: &NsRef,
        name: &str,
        peer_ns: &NsRef,
        peer_name: &str,
    ) -> Result<(), KernelError>;

    /// [`LinkOps::create_veth`], also answering `name`'s end as the kernel announced it to
    /// the request itself (without addresses): down, newborn, its `link` the peer's index in
    /// the peer's namespace. `None` where the kernel does not say (read the end then).
    async fn create_veth_echoed(
        &self,
        ns: &NsRef,
        name: &str,
        peer_ns: &NsRef,
        peer_name: &str,
    ) -> Result<Option<LinkState>, KernelError> {
        self.create_veth(ns, name, peer_ns, peer_name)
            .await
            .map(|()| None)
    }

    /// Creates a bridge, down, with the kernel's defaults. `Exists` if the name is taken.
    async fn create_bridge(&self, ns: &NsRef, name: &str) -> Result<(), KernelError>;

    /// Applies `change` to interface `index` in one request; an empty change sends nothing.
    /// `NotFound` if the interface is gone.
    async fn set_link(
        &self,
        ns: &NsRef,
        index: u32,
        change: &LinkChange,
    ) -> Result<(), KernelError>;

    /// Deletes interface `index` (a veth's peer goes with it). Ok if it is already gone.
    async fn delete_link(&self, ns: &NsRef, index: u32) -> Result<(), KernelError>;

    /// Announces interface `index` (named `name`) to its neighbours: a gratuitous ARP for
    /// each IPv4 address, an unsolicited neighbour advertisement for each IPv6 one, so their
    /// ARP/ND entries point at its MAC again after it was re-created. Only if its MAC is
    /// `mac` (it changes nothing else); Ok(false) and nothing sent when the interface is gone
    /// or has another name or MAC.
    async fn announce(
        &self,
        ns: &NsRef,
        index: u32,
        name: &str,
        mac: &str,
    ) -> Result<bool, KernelError>;

    /// Deletes every interface of interface group `group` in one request (one RCU grace
    /// period for all). Ok when the group is empty. Callers must know every member is theirs.
    async fn delete_link_group(&self, ns: &NsRef, group: u32) -> Result<(), KernelError>;
}

/// Addresses on interfaces.
#[async_trait]
pub trait AddrOps: Send + Sync {
    /// Adds an address to interface `index` (IPv4 with its broadcast address, like `ip addr
    /// add`); with `nodad` an IPv6 one skips duplicate address detection (`ip addr add ..
    /// nodad`): it is usable at once, never tentative. `Exists` if it is already there.
    async fn add_address(
        &self,
        ns: &NsRef,
        index: u32,
        addr: IpNet,
        nodad: bool,
    ) -> Result<(), KernelError>;

    /// Removes an address from interface `index`. Ok if it (or the interface) is not there.
    async fn del_address(&self, ns: &NsRef, index: u32, addr: IpNet) -> Result<(), KernelError>;
}

/// Routes in the main table, stamped with weft's protocol.
#[async_trait]
pub trait RouteOps: Send + Sync {
    /// Weft's routes (protocol `RTPROT_WEFT`) through interface `index`, IPv4 first. Empty if
    /// the interface does not exist.
    async fn list_routes(&self, ns: &NsRef, index: u32) -> Result<Vec<RouteState>, KernelError>;

    /// The destination of every route in `ns`'s main table (any protocol, any interface).
    async fn route_destinations(&self, ns: &NsRef) -> Result<Vec<IpNet>, KernelError>;

    /// Adds a route through interface `index`. `Exists` if the same route exists,
    /// `Unreachable` if an IPv4 gateway is not on the interface's subnets.
    async fn add_route(
        &self,
        ns: &NsRef,
        index: u32,
        route: &RouteState,
    ) -> Result<(), KernelError>;

    /// Removes a route added by [`RouteOps::add_route`]. Ok if there is no such route.
    async fn del_route(
        &self,
        ns: &NsRef,
        index: u32,
        route: &RouteState,
    ) -> Result<(), KernelError>;
}

/// Network namespaces: the named ones weft creates (like `ip netns add`), and the files of
/// any namespace it acts in.
#[async_trait]
pub trait NetnsOps: Send + Sync {
    /// The directory where named namespaces live.
    fn netns_dir(&self) -> &Path;

    /// The file a named namespace lives in: `<netns_dir>/<name>` (whether or not it exists).
    fn named_netns_path(&self, name: &str) -> PathBuf {
        self.netns_dir().join(name)
    }

    /// True if `path` exists and is a network namespace file.
    fn is_netns(&self, path: &Path) -> bool;

    /// Which namespace `path` names ([`NsIdentity`]); an error when it names none.
    fn netns_identity(&self, path: &Path) -> Result<NsIdentity, KernelError>;

    /// Which namespace the host namespace weft manages is (`--host-netns`, or weftd's own).
    fn host_netns_identity(&self) -> Result<NsIdentity, KernelError>;

    /// Which namespace weftd itself runs in (its main thread's).
    fn own_netns_identity(&self) -> Result<NsIdentity, KernelError>;

    /// The names of the entries in the netns directory, namespace files or not (a directory
    /// read, no `statfs` of each: callers check with [`NetnsOps::is_netns`] what they do not
    /// already know). Empty if the directory does not exist.
    fn netns_dir_entries(&self) -> Vec<String>;

    /// Creates `<netns_dir>/<name>` as `ip netns add` does, with loopback up; Ok without
    /// changes when it already is a namespace with loopback up.
    async fn create_named_netns(&self, name: &str) -> Result<PathBuf, KernelError>;

    /// Unmounts and removes `<netns_dir>/<name>`; Ok if it does not exist.
    async fn delete_named_netns(&self, name: &str) -> Result<(), KernelError>;

    /// Drops what is cached for `ns` (its sockets), after it was deleted or re-created.
    fn forget(&self, ns: &NsRef);

    /// The id of `ns` in the host namespace, assigning one if it has none (so the monitor
    /// hears it). None for the host itself, or where ids are not supported.
    async fn netns_id(&self, ns: &NsRef) -> Result<Option<i32>, KernelError>;

    /// Reads sysctl `key` (under /proc/sys, e.g. "net/ipv4/ip_forward") in `ns` and writes
    /// `value` only if it differs; returns whether it wrote.
    async fn ensure_sysctl(&self, ns: &NsRef, key: &str, value: &str) -> Result<bool, KernelError>;

    /// Reads sysctl `key` (under /proc/sys, e.g. "net/ipv4/ip_local_port_range") as `ns`
    /// sees it, surrounding whitespace trimmed; `Ok(None)` where the implementation has no
    /// value for it (a fake that was never told one). A read: it never counts as a write.
    async fn read_sysctl(&self, ns: &NsRef, key: &str) -> Result<Option<String>, KernelError>;
}

/// weft's nftables: the ruleset built from the live networks, and the published-port maps.
#[async_trait]
pub trait FirewallOps: Send + Sync {
    /// Makes the ruleset's structure match `networks` in one atomic batch; Ok(false) and no
    /// write when it already does. Port-map elements are kept.
    async fn sync_firewall(&self, networks: &[FirewallNetwork]) -> Result<bool, KernelError>;

    /// Adds published ports in one batch. An identical element is fine; a key mapped
    /// elsewhere is `Exists` and nothing is applied.
    async fn add_port_mappings(&self, m: &[PortMapping]) -> Result<(), KernelError>;

    /// Removes published ports in one batch; missing ones are skipped.
    async fn del_port_mappings(&self, m: &[PortMapping]) -> Result<(), KernelError>;

    /// Every published port in weft's maps, sorted. Empty if there is no ruleset.
    async fn list_port_mappings(&self) -> Result<Vec<PortMapping>, KernelError>;

    /// Removes weft's tables in one batch; Ok if there are none.
    async fn delete_firewall(&self) -> Result<(), KernelError>;
}

/// The whole kernel as weft sees it. Implemented for every type that implements the parts.
#[async_trait]
pub trait KernelOps:
    LinkOps + AddrOps + RouteOps + NetnsOps + FirewallOps + std::fmt::Debug
{
    /// Kernel writes made so far through this implementation (requests sent that change the
    /// kernel, successful or not): a converged system observes without writing.
    fn writes(&self) -> u64;

    /// Request sockets open now (0 where there are none).
    fn open_sockets(&self) -> usize;

    /// The namespace file `--host-netns` named, if any (None: weftd's own namespace).
    fn host_netns(&self) -> Option<&Path>;

    /// Subscribes to link, address and route changes in the host namespace and every
    /// namespace with an id there. Implementations without a change feed return an error,
    /// and drift is then caught by the periodic resync alone.
    async fn monitor(&self) -> Result<Monitor, KernelError>;

    /// Reads every interface (with its addresses) of each target namespace, and weft's routes
    /// where the target asks; one result per target, in order. Reads only. The default asks
    /// through the calls above, one namespace after another (the fake, the dry run); the real
    /// kernel reads them on helper threads at the given `pace`, each entering one namespace
    /// after another (kernel/snapshot.rs). An error for the whole call only when nothing
    /// could be read.
    async fn snapshot(
        &self,
        targets: &[SnapshotTarget],
        _pace: Pace,
    ) -> Result<Vec<Result<NsSnapshot, KernelError>>, KernelError> {
        let mut out = Vec::with_capacity(targets.len());
        for t in targets {
            let one = async {
                let mut snap = NsSnapshot {
                    links: Vec::new(),
                    routes: t.routes.then(Vec::new),
                };
                for l in self.list_links(&t.ns).await? {
                    let full = self.get_link_by_index(&t.ns, l.index).await?.unwrap_or(l);
                    if let Some(routes) = snap.routes.as_mut() {
                        for r in self.list_routes(&t.ns, full.index).await? {
                            routes.push((full.index, r));
                        }
                    }
                    snap.links.push(full);
                }
                Ok(snap)
            };
            out.push(one.await);
        }
        Ok(out)
    }

    /// True when writes are recorded as planned changes instead of made (a dry run): code
    /// that would *wait* for a write to take effect skips the wait.
    fn is_dry(&self) -> bool {
        false
    }

    /// For a dry run: an index standing for interface `name` in `ns`, which does not exist
    /// but which the plan assumes will (a master bridge another request is making), so what
    /// refers to it can still be planned and named. None for a real kernel: what does not
    /// exist has no index.
    fn planned_index(&self, _ns: &NsRef, _name: &str) -> Option<u32> {
        None
    }
}
