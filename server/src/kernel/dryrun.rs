//! Dry runs as a kernel: [`DryRun`] wraps another [`KernelOps`], passes every read through,
//! and records every write as a [`PlannedChange`] instead of making it.
//!
//! So a `dry_run` request goes through exactly the reconcile code a real one would (the same
//! reads, the same diff), and the reconcilers hold no dry-run branches: they are handed this
//! kernel instead of the real one. Interfaces and namespaces the dry run "creates" are kept in
//! an overlay, so the reads that follow a create (the new interface's index, its flags) see
//! what the kernel would have made: down, unmarked, no addresses, MTU 1500, under an index no
//! real interface has.
//!
//! Planned changes name their targets as the API shows them: `veth1 in namespace "ns1"`,
//! `weft0 in the host namespace`. Namespaces are named by their file in the netns directory,
//! or by the name an adopted path was given ([`DryRun::new`]).

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use async_trait::async_trait;
use ipnet::IpNet;

use super::{
    AddrOps, FirewallOps, KernelError, KernelOps, LinkChange, LinkOps, LinkState, NetnsOps,
    NsIdentity, NsRef, RouteOps, RouteState,
    firewall::{FirewallNetwork, PortMapping},
    monitor::Monitor,
};
use crate::model::PlannedChange;

/// Indexes the overlay hands out start here, far above any real ifindex on a host.
const FIRST_PLANNED_INDEX: u32 = 0x4000_0000;

/// A kernel that reads through `inner` and records writes; see the module docs.
#[derive(Debug)]
pub struct DryRun {
    inner: Arc<dyn KernelOps>,
    /// Names of adopted namespace files, for planned-change targets.
    adopted: HashMap<PathBuf, String>,
    state: Mutex<Overlay>,
}

/// What the dry run has "made" so far, and what it planned.
#[derive(Debug, Default)]
struct Overlay {
    changes: Vec<PlannedChange>,
    /// Interfaces planned to be created, by namespace and name.
    links: HashMap<(NsRef, String), LinkState>,
    /// Namespace files planned to be created.
    namespaces: Vec<PathBuf>,
    next_index: u32,
}

impl DryRun {
    /// A dry run over `inner`. `adopted` names the adopted namespace files (path -> the
    /// namespace's name in weft), so their planned changes read like the others'.
    pub fn new(inner: Arc<dyn KernelOps>, adopted: HashMap<PathBuf, String>) -> Self {
        Self {
            inner,
            adopted,
            state: Mutex::new(Overlay {
                next_index: FIRST_PLANNED_INDEX,
                ..Default::default()
            }),
        }
    }

    /// Records a planned change that is not a kernel write of its own (a lease, the
    /// firewall's rules as a whole, a sysctl), so it appears among the others in order.
    pub fn record(
        &self,
        action: &'static str,
        kind: &'static str,
        target: impl Into<String>,
        detail: impl Into<String>,
    ) {
        self.overlay().changes.push(PlannedChange {
            action,
            kind,
            target: target.into(),
            detail: detail.into(),
        });
    }

    /// The changes planned so far, in order.
    pub fn changes(&self) -> Vec<PlannedChange> {
        self.overlay().changes.clone()
    }

    fn overlay(&self) -> std::sync::MutexGuard<'_, Overlay> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// "the host namespace", `namespace "ns1"`, as the API names namespaces.
    fn ns_label(&self, ns: &NsRef) -> String {
        match ns {
            NsRef::Host => "the host namespace".into(),
            NsRef::Path(p) => {
                let name = self.adopted.get(&**p).cloned().or_else(|| {
                    (p.parent() == Some(self.inner.netns_dir()))
                        .then(|| p.file_name().map(|f| f.to_string_lossy().into_owned()))
                        .flatten()
                });
                match name {
                    Some(n) => format!("namespace {n:?}"),
                    None => format!("namespace {}", p.display()),
                }
            }
        }
    }

    /// `name in <namespace>`.
    fn target(&self, ns: &NsRef, name: &str) -> String {
        format!("{name} in {}", self.ns_label(ns))
    }

    /// The name of interface `index` in `ns`: planned ones from the overlay, real ones read
    /// through; `#index` when unknown.
    async fn name_of(&self, ns: &NsRef, index: u32) -> String {
        let planned = self
            .overlay()
            .links
            .iter()
            .find(|((n, _), l)| n == ns && l.index == index)
            .map(|(_, l)| l.name.clone());
        if let Some(name) = planned {
            return name;
        }
        match self.inner.get_link_by_index(ns, index).await {
            Ok(Some(l)) => l.name,
            _ => format!("#{index}"),
        }
    }

    /// Plans a new interface: recorded, and kept in the overlay as the kernel would make it.
    fn plan_link(&self, ns: &NsRef, name: &str, kind: &str) {
        let mut o = self.overlay();
        let index = o.next_index;
        o.next_index += 1;
        o.links.insert(
            (ns.clone(), name.to_string()),
            LinkState {
                index,
                name: name.to_string(),
                kind: Some(kind.to_string()),
                mtu: 1500,
                group: super::NEWBORN_GROUP,
                ..LinkState::default()
            },
        );
    }

    /// The overlay's interface `name` in `ns`, if the dry run planned it.
    fn planned(&self, ns: &NsRef, name: &str) -> Option<LinkState> {
        self.overlay()
            .links
            .get(&(ns.clone(), name.to_string()))
            .cloned()
    }

    /// True if `ns` is a namespace this dry run planned to create (reads in it find only
    /// what the overlay holds).
    fn planned_ns(&self, ns: &NsRef) -> bool {
        matches!(ns, NsRef::Path(p) if self.overlay().namespaces.iter().any(|n| **n == **p))
    }
}

/// The fields a [`LinkChange`] sets, in words; `master` is the master's name.
fn describe_change(c: &LinkChange, master: Option<&str>) -> String {
    let mut parts = Vec::new();
    if let Some(m) = c.mtu {
        parts.push(format!("mtu {m}"));
    }
    if let Some(m) = &c.mac {
        parts.push(format!("address {m}"));
    }
    match &c.master {
        Some(Some(_)) => parts.push(format!("master {}", master.unwrap_or("?"))),
        Some(None) => parts.push("nomaster".into()),
        None => {}
    }
    if let Some(up) = c.up {
        parts.push(if up { "up".into() } else { "down".into() });
    }
    if let Some(a) = &c.alias {
        parts.push(format!("alias {a}"));
    }
    if let Some(n) = &c.name {
        parts.push(format!("name {n}"));
    }
    if let Some(g) = c.group {
        parts.push(format!("group {g}"));
    }
    if let Some(h) = c.hairpin {
        parts.push(if h {
            "hairpin on".into()
        } else {
            "hairpin off".into()
        });
    }
    if c.ipv6_addr_gen_none {
        parts.push("addrgenmode none".into());
    }
    parts.join(", ")
}

#[async_trait]
impl LinkOps for DryRun {
    async fn get_link(&self, ns: &NsRef, name: &str) -> Result<Option<LinkState>, KernelError> {
        if let Some(l) = self.planned(ns, name) {
            return Ok(Some(l));
        }
        if self.planned_ns(ns) {
            return Ok(None);
        }
        self.inner.get_link(ns, name).await
    }

    async fn get_link_bare(
        &self,
        ns: &NsRef,
        name: &str,
    ) -> Result<Option<LinkState>, KernelError> {
        self.get_link(ns, name).await
    }

    async fn get_link_by_index(
        &self,
        ns: &NsRef,
        index: u32,
    ) -> Result<Option<LinkState>, KernelError> {
        if index >= FIRST_PLANNED_INDEX || self.planned_ns(ns) {
            let o = self.overlay();
            return Ok(o
                .links
                .iter()
                .find(|((n, _), l)| n == ns && l.index == index)
                .map(|(_, l)| l.clone()));
        }
        self.inner.get_link_by_index(ns, index).await
    }

    async fn list_links(&self, ns: &NsRef) -> Result<Vec<LinkState>, KernelError> {
        let mut links = if self.planned_ns(ns) {
            Vec::new()
        } else {
            self.inner.list_links(ns).await?
        };
        links.extend(
            self.overlay()
                .links
                .iter()
                .filter(|((n, _), _)| n == ns)
                .map(|(_, l)| l.clone()),
        );
        Ok(links)
    }

    async fn create_veth(
        &self,
        ns: &NsRef,
        name: &str,
        peer_ns: &NsRef,
        peer_name: &str,
    ) -> Result<(), KernelError> {
        let peer = self.target(peer_ns, peer_name);
        self.record(
            "create",
            "link",
            self.target(ns, name),
            format!("veth, peer {peer}"),
        );
        self.plan_link(ns, name, "veth");
        self.plan_link(peer_ns, peer_name, "veth");
        Ok(())
    }

    async fn create_bridge(&self, ns: &NsRef, name: &str) -> Result<(), KernelError> {
        self.record("create", "link", self.target(ns, name), "bridge");
        self.plan_link(ns, name, "bridge");
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
        let name = self.name_of(ns, index).await;
        let master = match change.master {
            Some(Some(m)) => Some(self.name_of(ns, m).await),
            _ => None,
        };
        let detail = describe_change(change, master.as_deref());
        self.record("set", "link", self.target(ns, &name), detail);
        Ok(())
    }

    async fn delete_link(&self, ns: &NsRef, index: u32) -> Result<(), KernelError> {
        let name = self.name_of(ns, index).await;
        self.record("delete", "link", self.target(ns, &name), "");
        Ok(())
    }

    async fn delete_link_group(&self, ns: &NsRef, group: u32) -> Result<(), KernelError> {
        self.record(
            "delete",
            "link",
            format!("group {group} in {}", self.ns_label(ns)),
            "",
        );
        Ok(())
    }
    /// Sends packets, changes nothing: not part of a plan.
    async fn announce(&self, _: &NsRef, _: u32, _: &str, _: &str) -> Result<bool, KernelError> {
        Ok(false)
    }
}

#[async_trait]
impl AddrOps for DryRun {
    async fn add_address(
        &self,
        ns: &NsRef,
        index: u32,
        addr: IpNet,
        nodad: bool,
    ) -> Result<(), KernelError> {
        let on = self.target(ns, &self.name_of(ns, index).await);
        let detail = if nodad && addr.addr().is_ipv6() {
            "nodad"
        } else {
            ""
        };
        self.record("add", "address", format!("{addr} on {on}"), detail);
        Ok(())
    }

    async fn del_address(&self, ns: &NsRef, index: u32, addr: IpNet) -> Result<(), KernelError> {
        let on = self.target(ns, &self.name_of(ns, index).await);
        self.record("remove", "address", format!("{addr} on {on}"), "");
        Ok(())
    }
}

#[async_trait]
impl RouteOps for DryRun {
    async fn list_routes(&self, ns: &NsRef, index: u32) -> Result<Vec<RouteState>, KernelError> {
        if index >= FIRST_PLANNED_INDEX || self.planned_ns(ns) {
            return Ok(Vec::new());
        }
        self.inner.list_routes(ns, index).await
    }

    async fn route_destinations(&self, ns: &NsRef) -> Result<Vec<IpNet>, KernelError> {
        self.inner.route_destinations(ns).await
    }

    async fn add_route(
        &self,
        ns: &NsRef,
        index: u32,
        route: &RouteState,
    ) -> Result<(), KernelError> {
        let on = self.target(ns, &self.name_of(ns, index).await);
        let what = format!("{} on {on}", route.describe());
        self.record("add", "route", what, "");
        Ok(())
    }

    async fn del_route(
        &self,
        ns: &NsRef,
        index: u32,
        route: &RouteState,
    ) -> Result<(), KernelError> {
        let on = self.target(ns, &self.name_of(ns, index).await);
        let what = format!("{} on {on}", route.describe());
        self.record("remove", "route", what, "");
        Ok(())
    }
}

#[async_trait]
impl NetnsOps for DryRun {
    fn netns_dir(&self) -> &Path {
        self.inner.netns_dir()
    }

    fn is_netns(&self, path: &Path) -> bool {
        self.overlay().namespaces.iter().any(|p| p == path) || self.inner.is_netns(path)
    }

    fn netns_dir_entries(&self) -> Vec<String> {
        self.inner.netns_dir_entries()
    }

    fn netns_identity(&self, path: &Path) -> Result<NsIdentity, KernelError> {
        self.inner.netns_identity(path)
    }

    fn host_netns_identity(&self) -> Result<NsIdentity, KernelError> {
        self.inner.host_netns_identity()
    }

    fn own_netns_identity(&self) -> Result<NsIdentity, KernelError> {
        self.inner.own_netns_identity()
    }

    async fn create_named_netns(&self, name: &str) -> Result<PathBuf, KernelError> {
        let path = self.named_netns_path(name);
        if self.is_netns(&path) {
            return Ok(path);
        }
        self.record(
            "create",
            "namespace",
            path.display().to_string(),
            "bind mount, like ip netns add",
        );
        self.overlay().namespaces.push(path.clone());
        // A new namespace has its loopback up (the real create does that too).
        let ns = NsRef::path(&path);
        self.plan_link(&ns, "lo", "loopback");
        if let Some(lo) = self.overlay().links.get_mut(&(ns, "lo".to_string())) {
            lo.index = 1;
            lo.up = true;
        }
        Ok(path)
    }

    async fn delete_named_netns(&self, name: &str) -> Result<(), KernelError> {
        let path = self.named_netns_path(name);
        self.record(
            "delete",
            "namespace",
            path.display().to_string(),
            "unmount and remove",
        );
        Ok(())
    }

    fn forget(&self, _ns: &NsRef) {}

    async fn netns_id(&self, _ns: &NsRef) -> Result<Option<i32>, KernelError> {
        Ok(None)
    }

    async fn read_sysctl(&self, ns: &NsRef, key: &str) -> Result<Option<String>, KernelError> {
        self.inner.read_sysctl(ns, key).await
    }

    async fn ensure_sysctl(&self, ns: &NsRef, key: &str, value: &str) -> Result<bool, KernelError> {
        let key = key.replace('/', ".");
        self.record(
            "set",
            "sysctl",
            key,
            format!("{value} in {}, if not already", self.ns_label(ns)),
        );
        Ok(false)
    }
}

#[async_trait]
impl FirewallOps for DryRun {
    async fn sync_firewall(&self, networks: &[FirewallNetwork]) -> Result<bool, KernelError> {
        let bridges: Vec<&str> = networks.iter().map(|n| n.bridge.as_str()).collect();
        self.record(
            "set",
            "firewall",
            "tables inet weft, bridge weft",
            format!("rules for bridges {}", bridges.join(", ")),
        );
        Ok(false)
    }

    async fn add_port_mappings(&self, m: &[PortMapping]) -> Result<(), KernelError> {
        for pm in m {
            self.record("add", "port-mapping", pm.to_string(), "DNAT map element");
        }
        Ok(())
    }

    async fn del_port_mappings(&self, m: &[PortMapping]) -> Result<(), KernelError> {
        for pm in m {
            self.record("remove", "port-mapping", pm.to_string(), "DNAT map element");
        }
        Ok(())
    }

    async fn list_port_mappings(&self) -> Result<Vec<PortMapping>, KernelError> {
        self.inner.list_port_mappings().await
    }

    async fn delete_firewall(&self) -> Result<(), KernelError> {
        self.record("delete", "firewall", "tables inet weft, bridge weft", "");
        Ok(())
    }
}

#[async_trait]
impl KernelOps for DryRun {
    fn writes(&self) -> u64 {
        0
    }

    fn open_sockets(&self) -> usize {
        0
    }

    fn host_netns(&self) -> Option<&Path> {
        self.inner.host_netns()
    }

    async fn monitor(&self) -> Result<Monitor, KernelError> {
        self.inner.monitor().await
    }

    fn is_dry(&self) -> bool {
        true
    }

    fn planned_index(&self, ns: &NsRef, name: &str) -> Option<u32> {
        if self.planned(ns, name).is_none() {
            self.plan_link(ns, name, "bridge");
        }
        self.planned(ns, name).map(|l| l.index)
    }
}
