//! Adopted namespaces that die: a namespace adopted from `/proc/<pid>/ns/net` lives only as
//! long as its process (or a runtime's bind mount), and weft neither owns nor outlives it.
//!
//! When its file stops being a network namespace, or names another namespace than the one
//! weft adopted (a `/proc/<pid>/ns/net` whose pid was reused: see [`adopted_alive`]), weft:
//! - marks the namespace Failed, saying why (weft never re-creates what it adopted);
//! - drops what it holds of it: the cached netlink sockets (a socket keeps its namespace
//!   alive, so while weft held one the namespace, and the veth inside, could never be freed)
//!   and the monitor's id for it;
//! - marks each endpoint in it Failed, after taking its published ports out of the DNAT
//!   maps, deleting the host end of its veth and releasing its leases, published ports and
//!   MAC in the store, so a new connect can have them at once. The endpoint row stays (a
//!   client sees what happened) until it is disconnected.
//!
//! How it is noticed, fastest first: a check of every Ready adopted namespace's file every
//! [`LIVENESS_EVERY`] (one `statfs` each: a process's exit has no netlink event while weft's
//! socket keeps its namespace alive); the host end of an endpoint's veth vanishing (the
//! monitor hears it when the namespace is freed and re-queues the endpoint); the resync.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::Duration,
};

use tokio::task::JoinSet;

use super::{Controller, Key, ReconcileError};
use crate::{
    kernel::{KernelOps, NsRef},
    model::ownership_mark,
    store::EndpointRow,
};

/// How often the files of Ready adopted namespaces are checked.
pub const LIVENESS_EVERY: Duration = Duration::from_millis(500);

/// The Ready adopted namespaces whose files are checked: namespace id -> adopted path and
/// the identity recorded at adoption.
pub(super) type Adopted = std::sync::Mutex<HashMap<String, (PathBuf, Option<String>)>>;

/// True if adopted namespace file `path` still names the namespace weft adopted: it is a
/// network namespace and, when its identity was recorded at adoption (`dev:ino`), the same
/// one. A path is never followed into another namespace.
pub(super) fn adopted_alive(k: &dyn KernelOps, path: &Path, identity: Option<&str>) -> bool {
    k.is_netns(path) && same_namespace(k, path, identity)
}

/// True if `path` names the namespace whose identity was recorded (`dev:ino`), or none was
/// (a namespace weft made, or adopted before weft kept identities): one `stat`, and none
/// when there is nothing to compare.
pub(super) fn same_namespace(k: &dyn KernelOps, path: &Path, identity: Option<&str>) -> bool {
    identity.is_none_or(|want| {
        k.netns_identity(path)
            .is_ok_and(|id| id.to_string() == want)
    })
}

/// The status message of an adopted namespace whose file is gone.
pub(super) fn gone_message(path: &Path) -> String {
    format!(
        "{} is not a network namespace any more (its process exited, or its runtime removed it); \
         weft does not recreate adopted namespaces: disconnect its endpoints and delete it",
        path.display()
    )
}

impl Controller {
    fn adopted(&self) -> std::sync::MutexGuard<'_, HashMap<String, (PathBuf, Option<String>)>> {
        self.inner.adopted.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks the file of adopted namespace `id` every [`LIVENESS_EVERY`] from now on.
    pub(super) fn watch_adopted(&self, id: &str, path: &Path, identity: Option<&str>) {
        self.adopted().insert(
            id.to_string(),
            (path.to_path_buf(), identity.map(str::to_string)),
        );
    }

    /// Stops checking adopted namespace `id` (deleted, or found dead).
    pub(super) fn unwatch_adopted(&self, id: &str) {
        self.adopted().remove(id);
    }

    /// Starts the check of adopted namespaces' files; a dead one's key is queued (its
    /// reconcile marks it Failed and queues its endpoints).
    pub(super) fn spawn_liveness(&self, set: &mut JoinSet<()>) {
        let now = tokio::time::Instant::now();
        self.spawn_every(set, now, LIVENESS_EVERY, |c| async move {
            let watched: Vec<(String, PathBuf, Option<String>)> = c
                .adopted()
                .iter()
                .map(|(id, (p, ident))| (id.clone(), p.clone(), ident.clone()))
                .collect();
            for (id, path, ident) in watched {
                if !adopted_alive(c.kernel(), &path, ident.as_deref()) {
                    tracing::info!(path = %path.display(), "an adopted namespace is gone");
                    c.unwatch_adopted(&id);
                    c.kernel().forget(&NsRef::Path(path.into()));
                    c.enqueue(Key::Namespace(id));
                }
            }
        });
    }

    /// What weft does when adopted namespace `id` at `path` is gone: stops watching it,
    /// drops its sockets (so the kernel can free it) and queues the endpoints that lived in
    /// it. Returns the namespace's (permanent) error.
    pub(super) async fn adopted_gone(
        &self,
        k: &dyn KernelOps,
        id: &str,
        path: &Path,
    ) -> ReconcileError {
        let ns = NsRef::path(path);
        self.unwatch_adopted(id);
        self.unwatch_namespace(&ns);
        k.forget(&ns);
        match self.store().endpoint_ids_in_namespace(id).await {
            Ok(eps) => eps.into_iter().for_each(|e| self.enqueue(Key::Endpoint(e))),
            Err(e) => return e.into(),
        }
        ReconcileError::permanent(gone_message(path))
    }

    /// If endpoint `row`'s namespace is adopted and gone: its DNAT elements out, the host end
    /// of its veth deleted, its leases, published ports and MAC released in the store, and
    /// the endpoint's (permanent) error. None when its namespace is not such a one.
    pub(super) async fn release_if_namespace_gone(
        &self,
        row: &EndpointRow,
        mappings: &[crate::kernel::firewall::PortMapping],
    ) -> Result<Option<ReconcileError>, ReconcileError> {
        let Some(ns) = self.store().namespace_by_name(&row.namespace).await? else {
            return Ok(None);
        };
        let Some(path) = ns.spec.adopted_path else {
            return Ok(None);
        };
        let k = self.kernel();
        if adopted_alive(k, &path, ns.adopted_identity.as_deref()) {
            return Ok(None);
        }
        k.forget(&NsRef::path(&path));
        self.remove_port_mappings(mappings).await?;
        // Marked, or newborn: the namespace may have died between the create and the mark.
        if let Some(host) = k.get_link_bare(&NsRef::Host, &row.host_ifname).await?
            && super::link::owned(&host, &ownership_mark(&row.id))
        {
            match k.delete_link(&NsRef::Host, host.index).await {
                Err(e) if !e.is_not_found() => return Err(e.into()),
                _ => {}
            }
        }
        if self.store().release_endpoint(&row.id).await? {
            tracing::info!(endpoint = %row.id, namespace = %row.namespace,
                "released the leases and ports of an endpoint whose adopted namespace is gone");
            // Its addresses changed, not only its status (the resolver drops its names).
            self.events().send(Key::Endpoint(row.id.clone()), false);
            // The namespace shows it too, without waiting for the next check.
            self.enqueue(Key::Namespace(ns.id));
        }
        Ok(Some(ReconcileError::permanent(format!(
            "namespace {:?} (adopted from {}) is gone; the endpoint's addresses and published \
             ports were released: disconnect it",
            row.namespace,
            path.display()
        ))))
    }
}
