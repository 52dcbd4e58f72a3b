//! Garbage collection of orphans: interfaces and namespace files carrying weft's ownership
//! mark (`weft:<uid>`) whose object no longer exists in the store — left by a crash, a
//! restored database, or a bug. Port-map elements without an endpoint are removed by the full
//! firewall reconcile. Anything without weft's mark is never touched, whatever its name.
//!
//! Races: rows are written before the kernel objects they describe are marked, and removed
//! only after those objects are gone. So the kernel is read first and the store second: an
//! object seen in the kernel whose row is missing afterwards is a true orphan. The one kernel
//! object made before its row commits is a Connect's veth pair, newborn until its reconcile
//! marks it; the pairs being made are registered before their create and read between the
//! two (`super::prepare`).
//!
//! What counts as weft's: an interface whose alias is an ownership mark, in the host or in a
//! namespace weft manages (loopback excluded: it carries its namespace's mark); an interface
//! there that weft created and never marked (a crash between the create and the mark: group
//! `NEWBORN_GROUP`, no alias), which is an orphan when no object plans its name in its
//! namespace any more; a file in
//! the netns directory whose namespace's loopback carries a mark of this weftd
//! (`weft:<uid>@<owner>`, owner = its host namespace; a plain legacy `weft:<uid>` counts as
//! anyone's): the directory is shared, and another weftd's namespace is never this one's
//! orphan. A veth the reaper is about
//! to delete (a disconnect in progress) is left to the reaper. The GC runs at start-up, after
//! the first reconcile of everything, and on the resync; each orphaned object (a veth pair
//! is one) counts once in `orphans_removed`.

use std::collections::{HashMap, HashSet};

use super::{Controller, ReconcileError, check::View};
use crate::kernel::{NsRef, snapshot::NsSnapshot};

/// The object id in an ownership mark (`weft:<id>` or `weft:<id>@<owner>` -> `<id>`); None
/// for any other alias.
fn uid_of(alias: Option<&str>) -> Option<&str> {
    crate::model::parse_mark(alias).map(|(uid, _)| uid)
}

/// Interface names objects plan, with the uids of the objects that plan each: (namespace
/// name, "" for the host; interface name) -> uids. Every link, network and endpoint plans at
/// least one, so the uids are every object that can own an interface.
pub(super) type Planned = HashMap<(String, String), Vec<String>>;

/// Every interface name the rows plan, as (namespace name, "" for the host; interface name;
/// uid of the object planning it): a link's ends, a network's bridge, an endpoint's host and
/// inside ends. (`Store::plans_interface` asks the database the same.)
fn planned_names<'r>(
    links: &'r [crate::store::LinkRow],
    networks: &'r [crate::store::NetworkRow],
    endpoints: &'r [crate::store::EndpointRow],
) -> impl Iterator<Item = (&'r str, &'r str, &'r str)> {
    let links = links.iter().flat_map(|l| {
        (l.spec.ends().into_iter()).map(|e| (e.namespace.as_str(), e.name.as_str(), l.id.as_str()))
    });
    let bridges = (networks.iter()).map(|n| ("", n.spec.bridge_name.as_str(), n.id.as_str()));
    let endpoints = endpoints.iter().flat_map(|e| {
        [
            ("", e.host_ifname.as_str(), e.id.as_str()),
            (e.namespace.as_str(), e.spec.ifname.as_str(), e.id.as_str()),
        ]
    });
    links.chain(bridges).chain(endpoints)
}

/// Who owns what, from the store: every interface name an object plans, every object uid,
/// every namespace uid.
pub(super) struct Owners {
    /// Interface names and the uids that plan each.
    pub planned: Planned,
    /// Every uid that owns an interface (links, networks, endpoints).
    known: HashSet<String>,
    /// Every namespace's uid.
    namespaces: HashSet<String>,
}

impl Owners {
    /// From rows listed together (rows being deleted included: they still own what they made
    /// until their cleanup ran).
    pub(super) fn from_rows(
        links: &[crate::store::LinkRow],
        networks: &[crate::store::NetworkRow],
        endpoints: &[crate::store::EndpointRow],
        namespaces: &[crate::store::NamespaceRow],
    ) -> Self {
        let mut planned: Planned = HashMap::new();
        for (ns, name, uid) in planned_names(links, networks, endpoints) {
            planned
                .entry((ns.to_string(), name.to_string()))
                .or_default()
                .push(uid.to_string());
        }
        let known = planned.values().flatten().cloned().collect();
        let namespaces = namespaces.iter().map(|r| r.id.clone()).collect();
        Self {
            planned,
            known,
            namespaces,
        }
    }
}

/// Rows the bulk check listed before its kernel read, lent to the GC (see
/// [`Controller::collect_garbage_in`]). Checked through borrowed sets built only for what
/// the view holds: an owned [`Owners`] of 20,000 rows (80,000 strings copied) was a tenth of
/// an idle pass at 10,000 endpoints.
pub(super) struct Listed<'a> {
    /// Every link row.
    pub links: &'a [crate::store::LinkRow],
    /// Every network row.
    pub networks: &'a [crate::store::NetworkRow],
    /// Every endpoint row.
    pub endpoints: &'a [crate::store::EndpointRow],
    /// Every namespace row.
    pub namespaces: &'a [crate::store::NamespaceRow],
}

impl Listed<'_> {
    /// Whether these rows plan an interface `name` in namespace `ns` ("" the host): a scan,
    /// asked only for the few newborn interfaces a pass sees.
    fn plans(&self, ns: &str, name: &str) -> bool {
        planned_names(self.links, self.networks, self.endpoints)
            .any(|(n, i, _)| n == ns && i == name)
    }

    /// What these rows do not explain: the uids of marked interfaces they do not own (nor
    /// `retiring` says are being retired), the newborn interfaces whose names they do not
    /// plan, and the marked namespace files whose namespaces they do not hold; None when more
    /// than [`LOOK_UP_AT_MOST`] interfaces are newborn.
    fn unexplained<'m>(
        &self,
        marked: &'m [(NsRef, u32, String, String)],
        newborn: &'m [(NsRef, u32, (String, String))],
        marked_files: &'m [(String, String)],
        retiring: impl Fn(&str) -> bool,
    ) -> Option<Unexplained<'m>> {
        if newborn.len() > LOOK_UP_AT_MOST {
            return None;
        }
        let newborn: Vec<&(String, String)> = (newborn.iter())
            .map(|(_, _, key)| key)
            .filter(|(ns, name)| !self.plans(ns, name))
            .collect();
        let files = if marked_files.is_empty() {
            Vec::new()
        } else {
            let namespaces: HashSet<&str> = self.namespaces.iter().map(|n| n.id.as_str()).collect();
            (marked_files.iter())
                .filter(|(_, uid)| !namespaces.contains(uid.as_str()))
                .collect()
        };
        if marked.is_empty() {
            return Some(Unexplained {
                uids: Vec::new(),
                newborn,
                files,
            });
        }
        let known: HashSet<&str> = (self.links.iter().map(|l| l.id.as_str()))
            .chain(self.networks.iter().map(|n| n.id.as_str()))
            .chain(self.endpoints.iter().map(|e| e.id.as_str()))
            .collect();
        let uids = marked
            .iter()
            .filter(|(_, _, _, uid)| !known.contains(uid.as_str()) && !retiring(uid))
            .collect();
        Some(Unexplained {
            uids,
            newborn,
            files,
        })
    }
}

/// What [`Listed::unexplained`] found its rows do not explain.
struct Unexplained<'m> {
    /// Marked interfaces (namespace, index, name, uid) whose uids they do not own.
    uids: Vec<&'m (NsRef, u32, String, String)>,
    /// Names, (namespace, interface), of newborn interfaces.
    newborn: Vec<&'m (String, String)>,
    /// Marked namespace files, (file name, uid).
    files: Vec<&'m (String, String)>,
}

impl Unexplained<'_> {
    fn len(&self) -> usize {
        self.uids.len() + self.newborn.len() + self.files.len()
    }
}

/// At most this many uids and newborn names the check's rows do not explain are looked up
/// one by one; more, and the GC lists the whole store again.
const LOOK_UP_AT_MOST: usize = 16;

impl Controller {
    /// The uid in this weftd's mark on the loopback of the namespace file `name` in the
    /// netns dir, as it is now; None when the file is gone, is no namespace, or carries no
    /// mark of this weftd.
    async fn file_mark(&self, name: &str) -> Option<String> {
        let k = self.kernel();
        let path = k.named_netns_path(name);
        if !k.is_netns(&path) {
            return None;
        }
        let lo = k
            .get_link_bare(&NsRef::Path(path.into()), "lo")
            .await
            .ok()??;
        let (uid, owner) = crate::model::parse_mark(lo.alias.as_deref())?;
        owner
            .is_none_or(|o| o == self.owner())
            .then(|| uid.to_string())
    }

    /// Whether everything in `missing` is explained now, looked up one by one (stopping at the
    /// first that is not): each uid owned by a row, or its interface gone already (an object
    /// made and removed while the pass ran: a Connect and its Disconnect); each newborn name
    /// planned by a row; each namespace file's uid a namespace row's, or the file no longer
    /// carrying that mark (a namespace created, or deleted, while the pass ran).
    async fn all_owned(&self, missing: &Unexplained<'_>) -> Result<bool, ReconcileError> {
        for (ns, index, name, uid) in &missing.uids {
            if self.key_of_uid(uid).await.ok().flatten().is_some() {
                continue;
            }
            // An error (its namespace deleted since the read) counts as gone: this only
            // decides whether to look further, and a GC error would fail the whole pass.
            let now = self.kernel().get_link_bare(ns, name).await.ok().flatten();
            if now.is_some_and(|l| l.index == *index && uid_of(l.alias.as_deref()) == Some(uid)) {
                return Ok(false);
            }
        }
        for (ns, name) in &missing.newborn {
            if !self.store().plans_interface(ns, name).await? {
                return Ok(false);
            }
        }
        for (name, uid) in &missing.files {
            if self.store().namespace_by_id(uid).await?.is_some() {
                continue;
            }
            if self.file_mark(name).await.as_deref() == Some(uid.as_str()) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Every interface name a stored object plans (rows being deleted included: they still
    /// own what they made until their cleanup ran).
    pub(super) async fn planned_interfaces(&self) -> Result<Planned, ReconcileError> {
        Ok(self.owners().await?.planned)
    }

    /// [`Owners`] as the store holds them now.
    async fn owners(&self) -> Result<Owners, ReconcileError> {
        let store = self.store();
        let links = store.list_links().await?;
        let networks = store.list_networks().await?;
        let endpoints = store.list_endpoints(None).await?;
        let namespaces = store.list_namespaces().await?;
        Ok(Owners::from_rows(
            &links,
            &networks,
            &endpoints,
            &namespaces,
        ))
    }

    /// Removes orphaned marked interfaces (in the host and every live namespace) and orphaned
    /// marked namespace files in the netns directory, reading the kernel first (one snapshot
    /// of every namespace, see `check`).
    pub(super) async fn collect_garbage(&self) -> Result<(), ReconcileError> {
        let rows = self.store().list_namespaces().await?;
        let view = self
            .read_view(
                &rows,
                false,
                crate::kernel::snapshot::Pace::Background,
                None,
            )
            .await?;
        self.collect_garbage_in(&view, None).await
    }

    /// [`Controller::collect_garbage`] on a view of the kernel already read (the bulk
    /// check's); the store is read after it, as the race rule above wants.
    ///
    /// `before`: owners listed *before* the view was read (the bulk check's rows). They may
    /// hold a row deleted since (which only keeps more) and miss an object created between
    /// that list and the read. So when they explain everything the view holds, nothing is an
    /// orphan and the store is not read again (the common case: three list queries saved per
    /// resync); anything unexplained is judged against a fresh read, as without them.
    pub(super) async fn collect_garbage_in(
        &self,
        view: &View,
        before: Option<Listed<'_>>,
    ) -> Result<(), ReconcileError> {
        let k = self.kernel();
        // 1. The kernel: marked interfaces per namespace, marked namespace files.
        let mut marked = Vec::new();
        let mut newborn = Vec::new();
        for (ns_name, (ns, snap)) in &view.spaces {
            for l in &snap.links {
                if let Some(uid) = uid_of(l.alias.as_deref())
                    && l.index != 1
                {
                    marked.push((ns.clone(), l.index, l.name.clone(), uid.to_string()));
                } else if l.is_newborn() {
                    newborn.push((ns.clone(), l.index, (ns_name.clone(), l.name.clone())));
                }
            }
        }
        // Pairs Connects are making beside their transactions (see `super::prepare`): read
        // after the kernel and before the store, so each newborn one seen here is either
        // still registered now or planned by a row committed before the store is read.
        let preparing = self.preparing_names();
        newborn.retain(|(_, _, key)| !preparing.contains(key));
        let mut marked_files = Vec::new();
        let spaces: HashMap<&NsRef, &NsSnapshot> =
            view.spaces.values().map(|(r, s)| (r, s)).collect();
        for name in &view.files {
            let ns = NsRef::path(k.named_netns_path(name));
            let snap = spaces.get(&ns).copied().or_else(|| view.others.get(name));
            let lo = snap.and_then(|s| s.links.iter().find(|l| l.index == 1));
            // Another weftd's namespace (the netns directory is shared) is never an orphan
            // of this one, whatever this one's database says.
            if let Some(lo) = lo
                && let Some((uid, owner)) = crate::model::parse_mark(lo.alias.as_deref())
                && owner.is_none_or(|o| o == self.owner())
            {
                // This weftd's: owned (a namespace made during the pass, whose socket a
                // Connect is about to use) or an orphan, whose removal drops its socket.
                marked_files.push((name.clone(), uid.to_string()));
            } else if !spaces.contains_key(&ns) && !view.quiet.contains(name) {
                // Not read and not weft's now: no socket of ours should keep it alive. (A
                // quiet namespace was not read, but it lives: its socket stays.)
                k.forget(&ns);
            }
        }
        // 2. The store: every uid that owns something, and every interface name an object
        //    plans.
        // The rows may miss an object made after they were listed (a Connect racing the
        // pass): its few uids are looked up by id, and its newborn interfaces' names by name,
        // now, after the kernel read (the race rule above), instead of listing the whole
        // store again (~0.3 s at 10,000 endpoints).
        let missing = before.and_then(|rows| {
            rows.unexplained(&marked, &newborn, &marked_files, |uid| {
                self.retiring_uid(uid)
            })
        });
        if let Some(m) = &missing
            && m.len() <= LOOK_UP_AT_MOST
            && self.all_owned(m).await?
        {
            return Ok(());
        }
        tracing::debug!(
            marked = marked.len(),
            newborn = newborn.len(),
            files = marked_files.len(),
            unexplained = missing.as_ref().map(Unexplained::len),
            "gc: listing the store"
        );
        (self.inner.stats.gc_store_lists).fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Owners {
            planned,
            known,
            namespaces,
        } = self.owners().await?;
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
        // Newborn interfaces (made, never marked) that no object plans any more, each looked
        // up again by name first: a veth pair goes with its first end (the second then reads
        // as gone), and an index may have been reused meanwhile.
        for (ns, index, (ns_name, name)) in newborn {
            if planned.contains_key(&(ns_name, name.clone())) {
                continue;
            }
            match k.get_link_bare(&ns, &name).await {
                Ok(Some(l)) if l.index == index && l.is_newborn() => {}
                _ => continue,
            }
            tracing::info!(ns = ?ns, name, "removing an interface weft made and never marked");
            match k.delete_link(&ns, index).await {
                Ok(()) => removed += 1,
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        for (name, uid) in marked_files {
            if namespaces.contains(&uid) {
                continue;
            }
            // Read when the pass began: the file may name another namespace by now (deleted
            // and made again under the same name), which is not this orphan.
            if self.file_mark(&name).await.as_deref() != Some(uid.as_str()) {
                continue;
            }
            tracing::info!(name, uid, "removing an orphaned namespace weft made");
            let path = k.named_netns_path(&name);
            self.unwatch_namespace(&NsRef::path(&path));
            self.forget_nsid(&path);
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
