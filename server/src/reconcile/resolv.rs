//! The resolv.conf of the namespaces weft creates, as a step of the namespace and endpoint
//! reconciles (not a kind of its own: it has no status, and its desired state is derived
//! from theirs).
//!
//! The file (`<etc-netns-dir>/<name>/resolv.conf`, [`crate::kernel::etc`]) is desired state
//! derived from the store and the host's resolv.conf ([`crate::model::resolv`] renders it):
//! - a namespace's reconcile converges it (creation, restart, every resync: a file deleted
//!   or edited by hand, or a changed host resolv.conf, is repaired there);
//! - an endpoint's reconcile and its cleanup converge it alongside their kernel work, so a
//!   Connect or Disconnect that answered has already changed the file;
//! - a namespace's cleanup removes it and its directory.
//!
//! Converging reads the file first and writes only when the text or mode differs (a change
//! into the file itself, which `ip netns exec` bind-mounts: see `kernel::etc`), so a
//! converged restart writes nothing; a write counts as a kernel write, so a repair of a
//! converged namespace counts as drift. Adopted namespaces get no file: weft does not own
//! their `/etc`. Each namespace's steps hold a lock of their own, so two
//! endpoints of one namespace reconciled at once cannot leave the older view last.

use std::{
    collections::HashMap,
    net::IpAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use super::{Controller, ReconcileError};
use crate::{kernel::etc::EtcNetns, model::resolv};

/// Where the files go and what they are made from (weftd's `--etc-netns-dir` and
/// `--host-resolv-conf`).
#[derive(Debug)]
pub struct ResolvSettings {
    /// The per-namespace directories.
    pub etc: EtcNetns,
    /// The host's resolv.conf: its search and options lines, and its nameservers for a
    /// namespace on no DNS network.
    pub host_resolv_conf: PathBuf,
}

/// One lock per namespace name, held while its file is converged or removed. An entry
/// lives only while someone holds or waits for it.
#[derive(Debug, Default)]
pub(super) struct ResolvLocks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl ResolvLocks {
    fn entry(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    /// Drops `name`'s entry when nobody else holds it (call after letting go of yours).
    fn release(&self, name: &str) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(name).is_some_and(|m| Arc::strong_count(m) == 1) {
            map.remove(name);
        }
    }
}

impl Controller {
    /// Turns the resolv.conf step on (weftd does, before its workers start; unit tests that
    /// leave it off write no files). Only the first call counts.
    pub fn set_resolv_settings(&self, settings: ResolvSettings) {
        let _ = self.inner.resolv.set(settings);
    }

    /// Makes namespace `name`'s resolv.conf match its live endpoints' DNS networks and the
    /// host's resolv.conf. Nothing for an adopted namespace, one being deleted, or an
    /// unknown one.
    pub(super) async fn converge_resolv_conf(&self, name: &str) -> Result<(), ReconcileError> {
        let Some(settings) = self.inner.resolv.get() else {
            return Ok(());
        };
        let lock = self.inner.resolv_locks.entry(name);
        let result = {
            let _held = lock.lock().await;
            self.converge_resolv_locked(settings, name).await
        };
        drop(lock);
        self.inner.resolv_locks.release(name);
        result
    }

    /// The body of [`Controller::converge_resolv_conf`], under the namespace's lock: one
    /// query for the namespace and its live endpoints (their networks come from the store's
    /// cache), one blocking call for both files.
    async fn converge_resolv_locked(
        &self,
        settings: &ResolvSettings,
        name: &str,
    ) -> Result<(), ReconcileError> {
        let Some(sources) = self.store().resolv_sources(name).await? else {
            return Ok(());
        };
        if !sources.written {
            return Ok(());
        }
        let mut servers: Vec<IpAddr> = Vec::new();
        for (network_id, addresses) in &sources.endpoints {
            if let Some(net) = self.store().network_by_id(network_id).await? {
                servers.extend(resolv::endpoint_dns_servers(&net.spec, addresses));
            }
        }
        let (owned, shown) = (name.to_string(), servers.clone());
        let wrote = settings
            .etc
            .converge_resolv_conf(name, &settings.host_resolv_conf, move |host| {
                resolv::render(&owned, &servers, host)
            })
            .await?;
        if wrote {
            crate::kernel::note_write();
            tracing::debug!(namespace = name, servers = ?shown, "wrote resolv.conf");
        }
        Ok(())
    }

    /// Removes namespace `name`'s resolv.conf and its directory (its cleanup).
    pub(super) async fn remove_resolv_conf(&self, name: &str) -> Result<(), ReconcileError> {
        let Some(settings) = self.inner.resolv.get() else {
            return Ok(());
        };
        let lock = self.inner.resolv_locks.entry(name);
        let result = {
            let _held = lock.lock().await;
            settings.etc.remove(name).await
        };
        drop(lock);
        self.inner.resolv_locks.release(name);
        Ok(result?)
    }
}

/// The host's resolv.conf, or "" when it cannot be read (said in the log).
pub(super) async fn read_host_resolv_conf(path: &std::path::Path) -> String {
    let path = path.to_path_buf();
    crate::nice::spawn_blocking(move || crate::kernel::etc::read_host_resolv_conf(&path))
        .await
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry lives while it is held, and goes when the last holder lets go.
    #[tokio::test]
    async fn lock_entries_go_when_released() {
        let locks = ResolvLocks::default();
        let a = locks.entry("ns");
        let b = locks.entry("ns");
        assert!(Arc::ptr_eq(&a, &b));
        drop(a);
        locks.release("ns");
        assert_eq!(locks.0.lock().expect("map").len(), 1, "b still holds it");
        drop(b);
        locks.release("ns");
        assert!(locks.0.lock().expect("map").is_empty());
    }
}
