//! An in-memory kernel for unit tests: [`FakeKernel`] implements [`KernelOps`] over plain
//! maps, follows the conventions of the real one (strict creates, idempotent deletes,
//! `Ok(None)` for what is absent, a veth's peer deleted with it, routes gone with their
//! interface), counts writes, and can be told to fail.
//!
//! Failures are injected per operation, youki-style: [`FakeKernel::fail`] makes the next
//! call(s) of a method (optionally only for one interface or namespace name) return an errno,
//! so "what if the second of five netlink calls fails with EBUSY" is a unit test. A namespace
//! can vanish under weft with [`FakeKernel::vanish_namespace`]: every request for it then
//! fails as the real kernel's do ([`ErrorKind::NamespaceGone`](super::ErrorKind)).

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    path::{Path, PathBuf},
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use ipnet::IpNet;
use nix::errno::Errno;

use super::{
    AddrOps, FirewallOps, KernelError, KernelOps, LinkChange, LinkOps, LinkState, NetnsOps,
    NsIdentity, NsRef, RouteOps, RouteState, error,
    firewall::{FirewallNetwork, PortMapping},
    monitor::Monitor,
    note_write,
};

/// One injected failure: calls of `op` (whose target contains `target`, if given) fail with
/// `errno`, `times` times.
#[derive(Debug)]
struct Fault {
    op: &'static str,
    target: Option<String>,
    /// The errno to fail with; `None` panics instead (a bug in the kernel layer).
    errno: Option<Errno>,
    times: usize,
}

/// One namespace's interfaces and routes.
#[derive(Debug, Default)]
struct Space {
    links: BTreeMap<u32, LinkState>,
    routes: BTreeMap<u32, Vec<RouteState>>,
    sysctls: HashMap<String, String>,
    /// Interfaces whose IPv6 address generation mode was set to none.
    addr_gen_none: BTreeSet<u32>,
}

/// Everything the fake kernel holds.
#[derive(Debug, Default)]
struct State {
    spaces: HashMap<NsRef, Space>,
    /// veth peers: (ns, index) <-> (ns, index).
    peers: HashMap<(NsRef, u32), (NsRef, u32)>,
    next_index: u32,
    faults: Vec<Fault>,
    /// The ruleset's networks, once synced.
    firewall: Option<Vec<FirewallNetwork>>,
    mappings: BTreeSet<PortMapping>,
    /// Every write, in words ("create_veth v1"), in order.
    calls: Vec<String>,
    /// Every [`NetnsOps::forget`], in order (a real kernel drops its cached sockets).
    forgotten: Vec<NsRef>,
    /// Namespace identities (inode numbers) by file; files of one namespace share one.
    inodes: HashMap<PathBuf, u64>,
    /// The next inode a new namespace gets.
    next_inode: u64,
    /// Namespaces have ids in the host (each its inode), as on a real kernel; off by default,
    /// where the fake has none (as without `NETLINK_LISTEN_ALL_NSID`).
    nsids: bool,
    /// How many times [`NetnsOps::netns_id`] was asked.
    nsid_lookups: u64,
    /// How long each veth create waits before it is made ([`FakeKernel::delay_creates`]).
    create_delay: Duration,
    /// Veth creates echo nothing ([`FakeKernel::no_echo`]), as before Linux 6.1.
    no_echo: bool,
    /// Names [`LinkOps::name_listed`] leaves out ([`FakeKernel::unlist`]), as the kernel's
    /// listing leaves out alternative names.
    unlisted: HashSet<String>,
}

/// The in-memory kernel; see the module docs.
#[derive(Debug)]
pub struct FakeKernel {
    netns_dir: PathBuf,
    state: Mutex<State>,
    writes: AtomicU64,
}

impl FakeKernel {
    /// A kernel with an empty host namespace (loopback only) and named namespaces under
    /// `netns_dir` (nothing is created on disk).
    pub fn new(netns_dir: impl Into<PathBuf>) -> Self {
        let k = Self {
            netns_dir: netns_dir.into(),
            state: Mutex::new(State {
                next_index: 2,
                next_inode: 100,
                ..Default::default()
            }),
            writes: AtomicU64::new(0),
        };
        k.state().spaces.insert(NsRef::Host, Space::with_loopback());
        k
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes the next `times` calls of `op` (a method name, e.g. "set_link") fail with
    /// `errno`; with `target`, only calls whose target (interface or namespace name, or
    /// "#index") contains it.
    pub fn fail(&self, op: &'static str, target: Option<&str>, errno: Errno, times: usize) {
        self.state().faults.push(Fault {
            op,
            target: target.map(str::to_string),
            errno: Some(errno),
            times,
        });
    }

    /// Gives every named namespace an id in the host (its inode number), as a real kernel
    /// does, so the bulk check caches ids and the monitor is told them.
    pub fn give_nsids(&self) {
        self.state().nsids = true;
    }

    /// How many times a namespace's id was asked ([`NetnsOps::netns_id`]): on a real kernel
    /// each ask walks every id the host has given out.
    pub fn nsid_lookups(&self) -> u64 {
        self.state().nsid_lookups
    }

    /// Makes every veth create wait `by` before the pair is made, as a slow kernel's would:
    /// for a race with what runs meanwhile.
    pub fn delay_creates(&self, by: Duration) {
        self.state().create_delay = by;
    }

    /// Makes veth creates echo nothing back (`create_veth_echoed` answers None), as on a
    /// kernel before 6.1.
    pub fn no_echo(&self) {
        self.state().no_echo = true;
    }

    /// Leaves interface name `name` out of [`LinkOps::name_listed`]'s answers, as the kernel's
    /// listing leaves out an alternative name, or as a foreign interface made right after the
    /// listing was read would be.
    pub fn unlist(&self, name: &str) {
        self.state().unlisted.insert(name.to_string());
    }

    /// Makes the next call of `op` panic, as a bug below the reconcilers would.
    pub fn panic_next(&self, op: &'static str) {
        self.state().faults.push(Fault {
            op,
            target: None,
            errno: None,
            times: 1,
        });
    }

    /// The inode of the fake host namespace ([`NetnsOps::host_netns_identity`]).
    pub const HOST_INODE: u64 = 1;
    /// The inode of the namespace the fake weftd runs in ([`NetnsOps::own_netns_identity`]):
    /// another one than the host's, as with `--host-netns`.
    pub const OWN_INODE: u64 = 2;

    /// Makes a namespace file exist that weft did not create (a runtime's, for adoption).
    pub fn add_namespace(&self, path: impl Into<PathBuf>) {
        let path = path.into();
        let mut s = self.state();
        s.spaces.insert(NsRef::path(&path), Space::with_loopback());
        let inode = s.next_inode;
        s.next_inode += 1;
        s.inodes.insert(path, inode);
    }

    /// Makes `path` a second file of the namespace with inode `inode` (another namespace
    /// file's, [`Self::HOST_INODE`] or [`Self::OWN_INODE`]), as a bind mount or
    /// `/proc/<pid>/ns/net` would be.
    pub fn alias_namespace(&self, path: impl Into<PathBuf>, inode: u64) {
        let path = path.into();
        let mut s = self.state();
        s.spaces.insert(NsRef::path(&path), Space::with_loopback());
        s.inodes.insert(path, inode);
    }

    /// The inode of the namespace file `path`, if it is one.
    pub fn inode_of(&self, path: &Path) -> Option<u64> {
        self.state().inodes.get(path).copied()
    }

    /// Removes a namespace behind weft's back, with everything in it.
    pub fn vanish_namespace(&self, path: &Path) {
        let mut s = self.state();
        let ns = NsRef::path(path);
        let indexes: Vec<u32> = s
            .spaces
            .get(&ns)
            .map(|sp| sp.links.keys().copied().collect())
            .unwrap_or_default();
        for i in indexes {
            s.remove_link(&ns, i);
        }
        s.spaces.remove(&ns);
    }

    /// Makes an interface that weft did not create (no mark), e.g. a foreign `eth0`.
    pub fn add_foreign_link(&self, ns: &NsRef, name: &str, kind: &str) -> u32 {
        let mut s = self.state();
        let index = s.alloc();
        if let Some(sp) = s.spaces.get_mut(ns) {
            sp.links.insert(index, new_link(index, name, kind));
        }
        index
    }

    /// Changes an interface behind weft's back (drift): `f` edits its state.
    pub fn tamper(&self, ns: &NsRef, name: &str, f: impl FnOnce(&mut LinkState)) {
        let mut s = self.state();
        if let Some(l) = s
            .spaces
            .get_mut(ns)
            .and_then(|sp| sp.links.values_mut().find(|l| l.name == name))
        {
            f(l);
        }
    }

    /// Deletes an interface behind weft's back (its veth peer too).
    pub fn remove_behind_back(&self, ns: &NsRef, name: &str) {
        let mut s = self.state();
        if let Some(i) = s.index_of(ns, name) {
            s.remove_link(ns, i);
        }
    }

    /// Interface `name` in `ns`, with its addresses.
    pub fn link(&self, ns: &NsRef, name: &str) -> Option<LinkState> {
        let s = self.state();
        s.spaces
            .get(ns)?
            .links
            .values()
            .find(|l| l.name == name)
            .cloned()
    }

    /// True if interface `name` in `ns` had its IPv6 address generation mode set to none.
    pub fn addr_gen_none(&self, ns: &NsRef, name: &str) -> bool {
        let s = self.state();
        s.spaces.get(ns).is_some_and(|sp| {
            sp.links
                .values()
                .any(|l| l.name == name && sp.addr_gen_none.contains(&l.index))
        })
    }

    /// Every interface in `ns`.
    pub fn links(&self, ns: &NsRef) -> Vec<LinkState> {
        self.state()
            .spaces
            .get(ns)
            .map(|sp| sp.links.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The routes on interface `name` in `ns`.
    pub fn routes(&self, ns: &NsRef, name: &str) -> Vec<RouteState> {
        let s = self.state();
        let Some(i) = s.index_of(ns, name) else {
            return Vec::new();
        };
        s.spaces
            .get(ns)
            .and_then(|sp| sp.routes.get(&i).cloned())
            .unwrap_or_default()
    }

    /// The ruleset's networks, if it was ever synced.
    pub fn firewall(&self) -> Option<Vec<FirewallNetwork>> {
        self.state().firewall.clone()
    }

    /// The published ports in the maps.
    pub fn mappings(&self) -> Vec<PortMapping> {
        self.state().mappings.iter().cloned().collect()
    }

    /// A sysctl's value in `ns`, if it was ever set.
    pub fn sysctl(&self, ns: &NsRef, key: &str) -> Option<String> {
        self.state().spaces.get(ns)?.sysctls.get(key).cloned()
    }

    /// Every namespace whose cached sockets were dropped so far, in order.
    pub fn forgotten(&self) -> Vec<NsRef> {
        self.state().forgotten.clone()
    }

    /// Every write made so far, in words, in order.
    pub fn calls(&self) -> Vec<String> {
        self.state().calls.clone()
    }

    /// Starts a write: fails if a fault matches, else counts and logs it.
    fn begin(
        &self,
        op: &'static str,
        target: &str,
    ) -> Result<std::sync::MutexGuard<'_, State>, KernelError> {
        let mut s = self.state();
        s.check_fault(op, target)?;
        self.writes.fetch_add(1, Ordering::Relaxed);
        note_write();
        s.calls.push(format!("{op} {target}"));
        Ok(s)
    }

    /// Starts a read: fails if a fault matches.
    fn read(
        &self,
        op: &'static str,
        target: &str,
    ) -> Result<std::sync::MutexGuard<'_, State>, KernelError> {
        let mut s = self.state();
        s.check_fault(op, target)?;
        Ok(s)
    }
}

impl Space {
    fn with_loopback() -> Self {
        let mut sp = Space::default();
        let mut lo = new_link(1, "lo", "loopback");
        lo.up = true;
        sp.links.insert(1, lo);
        sp
    }
}

/// A new interface as the kernel makes it: down, unmarked, MTU 1500, a MAC from its index.
fn new_link(index: u32, name: &str, kind: &str) -> LinkState {
    let b = index.to_be_bytes();
    LinkState {
        index,
        name: name.to_string(),
        kind: (kind != "loopback").then(|| kind.to_string()),
        mtu: if kind == "loopback" { 65536 } else { 1500 },
        mac: Some(format!(
            "0a:fa:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3]
        )),
        ..LinkState::default()
    }
}

/// An interface weft's create makes: [`new_link`] in the newborn group, as the real kernel
/// makes it from weft's `RTM_NEWLINK`.
fn newborn(index: u32, name: &str, kind: &str) -> LinkState {
    LinkState {
        group: crate::kernel::NEWBORN_GROUP,
        ..new_link(index, name, kind)
    }
}

impl State {
    fn check_fault(&mut self, op: &'static str, target: &str) -> Result<(), KernelError> {
        let hit = self.faults.iter_mut().find(|f| {
            f.op == op && f.times > 0 && f.target.as_deref().is_none_or(|t| target.contains(t))
        });
        if let Some(f) = hit {
            f.times -= 1;
            let Some(errno) = f.errno else {
                panic!("injected panic in {op} {target}");
            };
            return Err(KernelError::from_errno(
                format!("{op} {target} (injected)"),
                errno,
            ));
        }
        Ok(())
    }

    /// The id a namespace has where a veth's other end sees it, when namespaces have ids
    /// ([`FakeKernel::give_nsids`]): a named one's inode, as [`NetnsOps::netns_id`] says; the
    /// host 0.
    fn nsid_of(&self, ns: &NsRef) -> Option<i32> {
        if !self.nsids {
            return None;
        }
        match ns {
            NsRef::Host => Some(0),
            NsRef::Path(p) => self.inodes.get(&**p).and_then(|i| i32::try_from(*i).ok()),
        }
    }

    fn alloc(&mut self) -> u32 {
        self.next_index += 1;
        self.next_index
    }

    fn space(&mut self, ns: &NsRef, op: &str) -> Result<&mut Space, KernelError> {
        match ns {
            NsRef::Host => self.spaces.get_mut(ns).ok_or_else(|| {
                KernelError::from_errno(format!("{op}: no host namespace"), Errno::ENOENT)
            }),
            NsRef::Path(p) => self.spaces.get_mut(ns).ok_or_else(|| {
                error::namespace_gone(format!("{op}: open namespace {}", p.display()), p)
            }),
        }
    }

    fn index_of(&self, ns: &NsRef, name: &str) -> Option<u32> {
        self.spaces
            .get(ns)?
            .links
            .values()
            .find(|l| l.name == name)
            .map(|l| l.index)
    }

    fn link_mut(
        &mut self,
        ns: &NsRef,
        index: u32,
        op: &str,
    ) -> Result<&mut LinkState, KernelError> {
        self.space(ns, op)?
            .links
            .get_mut(&index)
            .ok_or_else(|| KernelError::from_errno(format!("{op} #{index}"), Errno::ENODEV))
    }

    /// Removes an interface, its routes, and its veth peer.
    fn remove_link(&mut self, ns: &NsRef, index: u32) {
        if let Some(sp) = self.spaces.get_mut(ns) {
            sp.links.remove(&index);
            sp.routes.remove(&index);
            sp.addr_gen_none.remove(&index);
        }
        if let Some((pns, pi)) = self.peers.remove(&(ns.clone(), index)) {
            self.peers.remove(&(pns.clone(), pi));
            if let Some(sp) = self.spaces.get_mut(&pns) {
                sp.links.remove(&pi);
                sp.routes.remove(&pi);
                sp.addr_gen_none.remove(&pi);
            }
        }
    }
}

#[async_trait]
impl LinkOps for FakeKernel {
    async fn get_link(&self, ns: &NsRef, name: &str) -> Result<Option<LinkState>, KernelError> {
        let mut s = self.read("get_link", name)?;
        let sp = s.space(ns, "get link")?;
        Ok(sp.links.values().find(|l| l.name == name).cloned())
    }

    async fn get_link_bare(
        &self,
        ns: &NsRef,
        name: &str,
    ) -> Result<Option<LinkState>, KernelError> {
        let mut s = self.read("get_link_bare", name)?;
        let sp = s.space(ns, "get link")?;
        Ok(sp
            .links
            .values()
            .find(|l| l.name == name)
            .map(|l| LinkState {
                addresses: Vec::new(),
                ..l.clone()
            }))
    }

    async fn name_listed(&self, ns: &NsRef, name: &str) -> Result<Option<bool>, KernelError> {
        let mut s = self.read("name_listed", name)?;
        let unlisted = s.unlisted.contains(name);
        let sp = s.space(ns, "list links")?;
        Ok(Some(!unlisted && sp.links.values().any(|l| l.name == name)))
    }

    async fn get_link_by_index(
        &self,
        ns: &NsRef,
        index: u32,
    ) -> Result<Option<LinkState>, KernelError> {
        let mut s = self.read("get_link_by_index", &format!("#{index}"))?;
        Ok(s.space(ns, "get link")?.links.get(&index).cloned())
    }

    async fn list_links(&self, ns: &NsRef) -> Result<Vec<LinkState>, KernelError> {
        let mut s = self.read("list_links", "")?;
        let sp = s.space(ns, "list links")?;
        Ok(sp
            .links
            .values()
            .map(|l| LinkState {
                addresses: Vec::new(),
                ..l.clone()
            })
            .collect())
    }

    async fn create_veth(
        &self,
        ns: &NsRef,
        name: &str,
        peer_ns: &NsRef,
        peer_name: &str,
    ) -> Result<(), KernelError> {
        self.create_veth_echoed(ns, name, peer_ns, peer_name)
            .await
            .map(drop)
    }

    /// The pair is made as the kernel makes it, and its first end echoed from the same
    /// moment (unless [`FakeKernel::no_echo`]).
    async fn create_veth_echoed(
        &self,
        ns: &NsRef,
        name: &str,
        peer_ns: &NsRef,
        peer_name: &str,
    ) -> Result<Option<LinkState>, KernelError> {
        let delay = self.state().create_delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut s = self.begin("create_veth", name)?;
        let op = format!("create veth {name}");
        s.space(peer_ns, &op)?;
        if s.space(ns, &op)?.links.values().any(|l| l.name == name)
            || s.index_of(peer_ns, peer_name).is_some()
            || (ns == peer_ns && name == peer_name)
        {
            return Err(KernelError::from_errno(op, Errno::EEXIST));
        }
        let (a, b) = (s.alloc(), s.alloc());
        // Each end names the other, and the other's namespace by its id where it is another
        // one, as the kernel's IFLA_LINK and IFLA_LINK_NETNSID do.
        let (a_sees, b_sees) = if ns == peer_ns {
            (None, None)
        } else {
            (s.nsid_of(peer_ns), s.nsid_of(ns))
        };
        let end = |index: u32, name: &str, peer: u32, netnsid: Option<i32>| LinkState {
            link: Some(peer),
            link_netnsid: netnsid,
            ..newborn(index, name, "veth")
        };
        let first = end(a, name, b, a_sees);
        s.space(ns, &op)?.links.insert(a, first.clone());
        s.space(peer_ns, &op)?
            .links
            .insert(b, end(b, peer_name, a, b_sees));
        s.peers.insert((ns.clone(), a), (peer_ns.clone(), b));
        s.peers.insert((peer_ns.clone(), b), (ns.clone(), a));
        Ok((!s.no_echo).then_some(first))
    }

    async fn create_bridge(&self, ns: &NsRef, name: &str) -> Result<(), KernelError> {
        let mut s = self.begin("create_bridge", name)?;
        let op = format!("create bridge {name}");
        if s.space(ns, &op)?.links.values().any(|l| l.name == name) {
            return Err(KernelError::from_errno(op, Errno::EEXIST));
        }
        let i = s.alloc();
        s.space(ns, &op)?
            .links
            .insert(i, newborn(i, name, "bridge"));
        Ok(())
    }

    async fn set_link(
        &self,
        ns: &NsRef,
        index: u32,
        change: &LinkChange,
    ) -> Result<(), KernelError> {
        if *change == LinkChange::default() {
            return Ok(());
        }
        let mut s = self.begin("set_link", &format!("#{index}"))?;
        let op = format!("set link #{index}");
        if let Some(n) = &change.name
            && s.index_of(ns, n).is_some_and(|i| i != index)
        {
            return Err(KernelError::from_errno(op, Errno::EEXIST));
        }
        if let Some(Some(m)) = change.master
            && !s.space(ns, &op)?.links.contains_key(&m)
        {
            return Err(KernelError::from_errno(op, Errno::ENODEV));
        }
        let l = s.link_mut(ns, index, &op)?;
        if let Some(v) = change.mtu {
            l.mtu = v;
        }
        if let Some(v) = &change.mac {
            l.mac = Some(v.clone());
        }
        if let Some(v) = change.up {
            l.up = v;
        }
        if let Some(v) = change.master {
            if l.master != v {
                // A new port starts with the kernel's defaults.
                l.hairpin = false;
            }
            l.master = v;
        }
        if let Some(v) = change.hairpin {
            if l.master.is_none() {
                return Err(KernelError::from_errno(op, Errno::EOPNOTSUPP));
            }
            l.hairpin = v;
        }
        if let Some(v) = &change.alias {
            l.alias = Some(v.clone());
        }
        if let Some(v) = &change.name {
            l.name = v.clone();
        }
        if let Some(v) = change.group {
            l.group = v;
        }
        if change.ipv6_addr_gen_none {
            s.space(ns, &op)?.addr_gen_none.insert(index);
        }
        Ok(())
    }

    async fn delete_link(&self, ns: &NsRef, index: u32) -> Result<(), KernelError> {
        let mut s = self.begin("delete_link", &format!("#{index}"))?;
        s.space(ns, "delete link")?;
        s.remove_link(ns, index);
        Ok(())
    }

    /// Recorded as a write ("announce <name>") when the interface is there with that MAC.
    async fn announce(
        &self,
        ns: &NsRef,
        index: u32,
        name: &str,
        mac: &str,
    ) -> Result<bool, KernelError> {
        let there = {
            let mut s = self.read("announce", name)?;
            s.space(ns, "announce")?
                .links
                .get(&index)
                .is_some_and(|l| l.name == name && l.mac.as_deref() == Some(mac))
        };
        if there {
            drop(self.begin("announce", name)?);
        }
        Ok(there)
    }

    async fn delete_link_group(&self, ns: &NsRef, group: u32) -> Result<(), KernelError> {
        let mut s = self.begin("delete_link_group", &group.to_string())?;
        let members: Vec<u32> = s
            .space(ns, "delete link group")?
            .links
            .values()
            .filter(|l| l.group == group)
            .map(|l| l.index)
            .collect();
        for i in members {
            s.remove_link(ns, i);
        }
        Ok(())
    }
}

#[async_trait]
impl AddrOps for FakeKernel {
    async fn add_address(
        &self,
        ns: &NsRef,
        index: u32,
        addr: IpNet,
        nodad: bool,
    ) -> Result<(), KernelError> {
        let nodad = if nodad { " nodad" } else { "" };
        let mut s = self.begin("add_address", &format!("{addr} #{index}{nodad}"))?;
        let op = format!("add address {addr} to #{index}");
        let l = s.link_mut(ns, index, &op)?;
        if l.addresses.contains(&addr) {
            return Err(KernelError::from_errno(op, Errno::EEXIST));
        }
        l.addresses.push(addr);
        Ok(())
    }

    async fn del_address(&self, ns: &NsRef, index: u32, addr: IpNet) -> Result<(), KernelError> {
        let mut s = self.begin("del_address", &format!("{addr} #{index}"))?;
        if let Ok(l) = s.link_mut(ns, index, "delete address") {
            l.addresses.retain(|a| *a != addr);
        }
        Ok(())
    }
}

#[async_trait]
impl RouteOps for FakeKernel {
    async fn list_routes(&self, ns: &NsRef, index: u32) -> Result<Vec<RouteState>, KernelError> {
        let mut s = self.read("list_routes", &format!("#{index}"))?;
        Ok(s.space(ns, "list routes")?
            .routes
            .get(&index)
            .cloned()
            .unwrap_or_default())
    }

    async fn route_destinations(&self, ns: &NsRef) -> Result<Vec<IpNet>, KernelError> {
        let mut s = self.read("route_destinations", "")?;
        Ok(s.space(ns, "list routes")?
            .routes
            .values()
            .flatten()
            .map(|r| r.destination)
            .collect())
    }

    async fn add_route(
        &self,
        ns: &NsRef,
        index: u32,
        route: &RouteState,
    ) -> Result<(), KernelError> {
        let mut s = self.begin("add_route", &format!("{} #{index}", route.destination))?;
        let op = format!("add route {} dev #{index}", route.destination);
        let l = s.link_mut(ns, index, &op)?;
        if let Some(std::net::IpAddr::V4(g)) = route.gateway
            && !l
                .addresses
                .iter()
                .any(|a| a.contains(&std::net::IpAddr::V4(g)))
        {
            return Err(KernelError::from_errno(op, Errno::ENETUNREACH));
        }
        let want = RouteState {
            metric: route.kernel_metric(),
            ..route.clone()
        };
        let routes = s.space(ns, &op)?.routes.entry(index).or_default();
        if routes.contains(&want) {
            return Err(KernelError::from_errno(op, Errno::EEXIST));
        }
        routes.push(want);
        Ok(())
    }

    async fn del_route(
        &self,
        ns: &NsRef,
        index: u32,
        route: &RouteState,
    ) -> Result<(), KernelError> {
        let mut s = self.begin("del_route", &format!("{} #{index}", route.destination))?;
        if let Ok(sp) = s.space(ns, "delete route")
            && let Some(routes) = sp.routes.get_mut(&index)
        {
            routes.retain(|r| r.destination != route.destination || r.gateway != route.gateway);
        }
        Ok(())
    }
}

#[async_trait]
impl NetnsOps for FakeKernel {
    fn netns_dir(&self) -> &Path {
        &self.netns_dir
    }

    fn is_netns(&self, path: &Path) -> bool {
        self.state().spaces.contains_key(&NsRef::path(path))
    }

    fn netns_dir_entries(&self) -> Vec<String> {
        self.state()
            .spaces
            .keys()
            .filter_map(|ns| match ns {
                NsRef::Path(p) if p.parent() == Some(self.netns_dir.as_path()) => {
                    p.file_name().map(|f| f.to_string_lossy().into_owned())
                }
                _ => None,
            })
            .collect()
    }

    async fn create_named_netns(&self, name: &str) -> Result<PathBuf, KernelError> {
        let path = self.named_netns_path(name);
        if self.is_netns(&path) {
            return Ok(path);
        }
        let mut s = self.begin("create_named_netns", name)?;
        s.spaces.insert(NsRef::path(&path), Space::with_loopback());
        let inode = s.next_inode;
        s.next_inode += 1;
        s.inodes.insert(path.clone(), inode);
        Ok(path)
    }

    async fn delete_named_netns(&self, name: &str) -> Result<(), KernelError> {
        let path = self.named_netns_path(name);
        if !self.is_netns(&path) {
            return Ok(());
        }
        drop(self.begin("delete_named_netns", name)?);
        self.vanish_namespace(&path);
        Ok(())
    }

    fn forget(&self, ns: &NsRef) {
        self.state().forgotten.push(ns.clone());
    }

    fn netns_identity(&self, path: &Path) -> Result<NsIdentity, KernelError> {
        let inode = self.state().inodes.get(path).copied();
        match inode {
            Some(ino) if self.is_netns(path) => Ok(NsIdentity { dev: 4, ino }),
            _ => Err(KernelError::from_errno(
                format!("stat namespace {}", path.display()),
                Errno::ENOENT,
            )),
        }
    }

    fn host_netns_identity(&self) -> Result<NsIdentity, KernelError> {
        Ok(NsIdentity {
            dev: 4,
            ino: Self::HOST_INODE,
        })
    }

    fn own_netns_identity(&self) -> Result<NsIdentity, KernelError> {
        Ok(NsIdentity {
            dev: 4,
            ino: Self::OWN_INODE,
        })
    }

    async fn netns_id(&self, ns: &NsRef) -> Result<Option<i32>, KernelError> {
        let mut s = self.state();
        s.nsid_lookups += 1;
        let NsRef::Path(path) = ns else {
            return Ok(None);
        };
        Ok(s.inodes
            .get(&**path)
            .filter(|_| s.nsids)
            .and_then(|ino| i32::try_from(*ino).ok()))
    }

    async fn read_sysctl(&self, ns: &NsRef, key: &str) -> Result<Option<String>, KernelError> {
        let mut s = self.read("read_sysctl", key)?;
        Ok(s.space(ns, "sysctl")?.sysctls.get(key).cloned())
    }

    async fn ensure_sysctl(&self, ns: &NsRef, key: &str, value: &str) -> Result<bool, KernelError> {
        {
            let mut s = self.read("ensure_sysctl", key)?;
            if s.space(ns, "sysctl")?.sysctls.get(key).map(String::as_str) == Some(value) {
                return Ok(false);
            }
        }
        let mut s = self.begin("ensure_sysctl", key)?;
        s.space(ns, "sysctl")?
            .sysctls
            .insert(key.to_string(), value.to_string());
        Ok(true)
    }
}

#[async_trait]
impl FirewallOps for FakeKernel {
    async fn sync_firewall(&self, networks: &[FirewallNetwork]) -> Result<bool, KernelError> {
        {
            let mut s = self.read("sync_firewall", "")?;
            if s.firewall.as_deref() == Some(networks) {
                return Ok(false);
            }
            // A rebuilt ruleset starts with empty maps, as the real one may.
            if s.firewall.is_none() {
                s.mappings.clear();
            }
        }
        let mut s = self.begin("sync_firewall", "")?;
        s.firewall = Some(networks.to_vec());
        Ok(true)
    }

    async fn add_port_mappings(&self, m: &[PortMapping]) -> Result<(), KernelError> {
        if m.is_empty() {
            return Ok(());
        }
        let mut s = self.begin("add_port_mappings", "")?;
        if s.firewall.is_none() {
            return Err(KernelError::from_errno(
                "add port mappings: no maps",
                Errno::ENOENT,
            ));
        }
        let clash = m.iter().any(|new| {
            s.mappings.iter().any(|old| {
                old.host_ip == new.host_ip
                    && old.proto == new.proto
                    && old.host_port == new.host_port
                    && old != new
            })
        });
        if clash {
            return Err(KernelError::from_errno("add port mappings", Errno::EEXIST));
        }
        s.mappings.extend(m.iter().cloned());
        Ok(())
    }

    async fn del_port_mappings(&self, m: &[PortMapping]) -> Result<(), KernelError> {
        if !m.iter().any(|x| self.state().mappings.contains(x)) {
            return Ok(());
        }
        let mut s = self.begin("del_port_mappings", "")?;
        for x in m {
            s.mappings.remove(x);
        }
        Ok(())
    }

    async fn list_port_mappings(&self) -> Result<Vec<PortMapping>, KernelError> {
        let s = self.read("list_port_mappings", "")?;
        Ok(s.mappings.iter().cloned().collect())
    }

    async fn delete_firewall(&self) -> Result<(), KernelError> {
        let mut s = self.begin("delete_firewall", "")?;
        s.firewall = None;
        s.mappings.clear();
        Ok(())
    }
}

#[async_trait]
impl KernelOps for FakeKernel {
    fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    fn open_sockets(&self) -> usize {
        0
    }

    fn host_netns(&self) -> Option<&Path> {
        None
    }

    async fn monitor(&self) -> Result<Monitor, KernelError> {
        Err(KernelError::from_errno(
            "the fake kernel has no change feed",
            Errno::EOPNOTSUPP,
        ))
    }
}
