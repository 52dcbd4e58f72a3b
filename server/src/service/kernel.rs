//! The kernel and host reads the service's preconditions need, and nothing else: the only
//! file in `service/` that touches the kernel handle, so the flows read as plain logic and a
//! change of the kernel's interface is a change here alone.
//!
//! These are *reads* for refusing a request early with a precise message (a foreign interface
//! already has the name weft would give; a path to adopt is not a network namespace). The
//! reconciler checks again before it writes, so a read that fails is never fatal here: it
//! reads as "nothing there", except where the answer itself needs it (host routes).

use std::path::{Path, PathBuf};

use ipnet::IpNet;

use super::{Service, ServiceError, ServiceResult};
use crate::{
    kernel::{LinkState, NsIdentity, NsRef},
    model::{
        AdoptFacts,
        port::{DEFAULT_LOCAL_PORT_RANGE, parse_local_port_range},
    },
};

impl Service {
    /// The host namespace's `net.ipv4.ip_local_port_range`, where host ports left out of a
    /// Connect come from (as Docker's do). Read at each such Connect, in the namespace weftd
    /// manages (`--host-netns`), so a change of it applies at once; Linux's default when it
    /// cannot be read (logged).
    pub(super) async fn local_port_range(&self) -> std::ops::RangeInclusive<u16> {
        const KEY: &str = "net/ipv4/ip_local_port_range";
        match self.ctl.kernel().read_sysctl(&NsRef::Host, KEY).await {
            Ok(Some(text)) => parse_local_port_range(&text).unwrap_or_else(|| {
                tracing::warn!(%text, "unreadable {KEY}; choosing from Linux's default range");
                DEFAULT_LOCAL_PORT_RANGE
            }),
            Ok(None) => DEFAULT_LOCAL_PORT_RANGE,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read {KEY}; choosing from Linux's default range");
                DEFAULT_LOCAL_PORT_RANGE
            }
        }
    }

    /// Interface `name` in namespace `namespace` ("" is the host), without its addresses, if
    /// the kernel has it; `None` when there is no such interface or the namespace cannot be
    /// entered yet.
    async fn interface(&self, namespace: &str, name: &str) -> Option<LinkState> {
        let ns = self.ctl.ns_ref(namespace).await.ok()?;
        self.ctl
            .kernel()
            .get_link_bare(&ns, name)
            .await
            .ok()
            .flatten()
    }

    /// Whether namespace `namespace`'s listing of interfaces (`LinkOps::name_listed`: under
    /// RCU, no netlink read) has no interface named `name`. False where it lists one, where
    /// it can't tell, and where the namespace cannot be entered yet. An alternative name is
    /// never listed.
    pub(super) async fn name_unlisted(&self, namespace: &str, name: &str) -> bool {
        let Ok(ns) = self.ctl.ns_ref(namespace).await else {
            return false;
        };
        matches!(
            self.ctl.kernel().name_listed(&ns, name).await,
            Ok(Some(false))
        )
    }

    /// The alias of interface `name` in namespace `namespace` ("" is the host) if the kernel
    /// has such an interface: `Some(None)` for one without an alias, `None` when there is no
    /// such interface or the namespace cannot be entered yet. An interface weft made and
    /// never marked (newborn, left by a crash) reads as `None`: it is in nobody's way, the
    /// reconcile of the object that now plans its name takes it over.
    pub(super) async fn interface_alias(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<Option<String>> {
        self.interface(namespace, name)
            .await
            .filter(|l| !l.is_newborn())
            .map(|l| l.alias)
    }

    /// The kind (`IFLA_INFO_KIND`, "bridge", "veth"; None for a plain device) of interface
    /// `name` in namespace `namespace` ("" is the host), if the kernel has such an interface;
    /// `None` when there is none or the namespace cannot be entered yet.
    pub(super) async fn interface_kind(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<Option<String>> {
        self.interface(namespace, name).await.map(|l| l.kind)
    }

    /// The destinations of the host namespace's routes, which automatic subnets must avoid.
    pub(super) async fn host_routes(&self) -> ServiceResult<Vec<IpNet>> {
        self.ctl
            .kernel()
            .route_destinations(&NsRef::Host)
            .await
            .map_err(|e| ServiceError::Unavailable(e.to_string()))
    }

    /// True if `path` exists on the host.
    pub(super) fn path_exists(&self, path: &Path) -> bool {
        path.exists()
    }

    /// What the kernel and the store say about the namespace at `path` that `name` would
    /// adopt, compared by identity ([`crate::kernel::NsIdentity`]): is it the host, weftd's
    /// own, or one weft manages already (the file of each stored namespace, made or
    /// adopted, looked at now)? UNAVAILABLE when `path`'s own identity cannot be read.
    pub(super) async fn adopt_facts(&self, path: &Path) -> ServiceResult<(AdoptFacts, NsIdentity)> {
        let k = self.ctl.kernel();
        let id = k
            .netns_identity(path)
            .map_err(|e| ServiceError::Unavailable(e.to_string()))?;
        let mut facts = AdoptFacts {
            is_host: k.host_netns_identity().ok() == Some(id),
            is_weftd_own: k.own_netns_identity().ok() == Some(id),
            managed_as: None,
        };
        for row in self.store().list_namespaces().await? {
            let file = match &row.spec.adopted_path {
                Some(p) => p.clone(),
                None => k.named_netns_path(&row.spec.name),
            };
            if k.netns_identity(&file).ok() == Some(id) {
                facts.managed_as = Some(row.spec.name);
                break;
            }
        }
        Ok((facts, id))
    }

    /// True if `path` is a network namespace file (nsfs).
    pub(super) fn is_netns(&self, path: &Path) -> bool {
        self.ctl.kernel().is_netns(path)
    }

    /// Where weft mounts the namespace `name` it creates, if a file (or a dangling link)
    /// already stands there.
    pub(super) fn netns_file_taken(&self, name: &str) -> Option<PathBuf> {
        let file = self.netns_file(name);
        file.symlink_metadata().is_ok().then_some(file)
    }

    /// Where weft mounts the namespace `name` it creates.
    fn netns_file(&self, name: &str) -> PathBuf {
        self.ctl.kernel().netns_dir().join(name)
    }

    /// The kernel's side of GetSystemInfo: netlink writes so far, the host namespace file
    /// (None: weftd's own), and the netns directory.
    pub(super) fn kernel_facts(&self) -> (u64, Option<PathBuf>, PathBuf) {
        let k = self.ctl.kernel();
        (
            k.writes(),
            k.host_netns().map(Path::to_path_buf),
            k.netns_dir().to_path_buf(),
        )
    }
}
