//! Garbage collection of orphans: interfaces and namespace files carrying weft's ownership
//! mark (`weft:<uid>`) whose object no longer exists in the store — left by a crash, a
//! restored database, or a bug. Port-map elements without an endpoint are removed by the full
//! firewall reconcile. Anything without weft's mark is never touched, whatever its name.
//!
//! Races: rows are written before the kernel objects they describe are made, and removed
//! only after those objects are gone. So the kernel is read first and the store second: an
//! object seen in the kernel whose row is missing afterwards is a true orphan.
//!
//! What counts as weft's: an interface whose alias is an ownership mark, in the host or in a
//! namespace weft manages (loopback excluded: it carries its namespace's mark); a file in
//! the netns directory whose namespace's loopback carries a mark. A veth the reaper is about
//! to delete (a disconnect in progress) is left to the reaper. The GC runs at start-up, after
//! the first reconcile of everything, and on the resync; each orphaned object (a veth pair
//! is one) counts once in `orphans_removed`.

use std::collections::HashSet;

use super::{Controller, ReconcileError};
use crate::kernel::NsRef;

/// The object id in an ownership mark (`weft:<id>` -> `<id>`); None for any other alias.
fn uid_of(alias: Option<&str>) -> Option<&str> {
    alias.and_then(|a| a.strip_prefix("weft:"))
}

impl Controller {
    /// Removes orphaned marked interfaces (in the host and every live namespace) and orphaned
    /// marked namespace files in the netns directory. Returns how many it removed.
    pub(super) async fn collect_garbage(&self) -> Result<(), ReconcileError> {
        let k = self.kernel();
        // 1. The kernel: marked interfaces per namespace, marked namespace files.
        let mut spaces = vec![NsRef::Host];
        for ns in self.store().list_namespaces().await? {
            if !ns.deleting
                && let Ok(r) = self.ns_ref(&ns.spec.name).await
            {
                spaces.push(r);
            }
        }
        let mut marked = Vec::new();
        for ns in &spaces {
            for l in k.list_links(ns).await? {
                if let Some(uid) = uid_of(l.alias.as_deref())
                    && l.index != 1
                {
                    marked.push((ns.clone(), l.index, l.name.clone(), uid.to_string()));
                }
            }
        }
        let mut marked_files = Vec::new();
        for name in k.list_named_netns() {
            let ns = NsRef::Path(k.named_netns_path(&name));
            let lo = k.get_link_by_index(&ns, 1).await;
            if let Ok(Some(lo)) = lo
                && let Some(uid) = uid_of(lo.alias.as_deref())
            {
                marked_files.push((name, uid.to_string()));
            }
            if !spaces.contains(&ns) {
                k.forget(&ns);
            }
        }
        // 2. The store: every uid that owns something.
        let mut known: HashSet<String> = HashSet::new();
        known.extend(self.store().list_links().await?.into_iter().map(|r| r.id));
        known.extend(
            self.store()
                .list_networks()
                .await?
                .into_iter()
                .map(|r| r.id),
        );
        known.extend(
            self.store()
                .list_endpoints(None)
                .await?
                .into_iter()
                .map(|r| r.id),
        );
        let namespaces: HashSet<String> = self
            .store()
            .list_namespaces()
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect();
        // 3. Remove what nobody owns.
        // Counted per orphaned object, not per interface (a veth pair is one orphan).
        let mut gone_uids = HashSet::new();
        for (ns, index, name, uid) in marked {
            if known.contains(&uid) || self.retiring_uid(&uid) {
                continue;
            }
            tracing::info!(ns = ?ns, name, uid, "removing an orphaned interface weft made");
            match k.delete_link(&ns, index).await {
                Ok(()) => {
                    gone_uids.insert(uid);
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut removed = gone_uids.len() as u64;
        for (name, uid) in marked_files {
            if namespaces.contains(&uid) {
                continue;
            }
            tracing::info!(name, uid, "removing an orphaned namespace weft made");
            let path = k.named_netns_path(&name);
            self.unwatch_namespace(&NsRef::Path(path));
            k.delete_named_netns(&name).await?;
            removed += 1;
        }
        if removed > 0 {
            self.inner
                .stats
                .orphans_removed
                .fetch_add(removed, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }
}
