//! The bulk check's comparison: the desired state of every namespace, link and endpoint
//! against one read of the kernel per namespace ([`NsSnapshot`]), in memory, with no kernel
//! or store access (unit-tested below without either).
//!
//! It says, per object, whether the kernel holds what a full reconcile would leave: the
//! same fields `converge_link` and `converge_namespace` compare (mark, newborn group, kind,
//! MTU, MAC, master, hairpin, up, addresses but IPv6 link-local ones, weft's routes when they
//! were read), plus what the object's status shows as observed (an ifindex, a MAC, a path),
//! so an object found matching is exactly one whose reconcile would write nothing and
//! change no status. An object that is not converged at its generation, or being deleted,
//! always differs: only its reconcile can move it. Networks are not compared here: there are
//! few, and their reconcile also covers a sysctl and the firewall structure (the check queues
//! them every time).

use std::{
    collections::{HashMap, HashSet},
    path::Path,
};

use ipnet::IpNet;

use super::{
    Key,
    link::{is_link_local_v6, wanted_routes},
    network::endpoint_spec,
};
use crate::{
    kernel::{LinkState, NEWBORN_GROUP, RouteState, snapshot::NsSnapshot},
    model::{EndSpec, LinkSpec, namespace_mark, ownership_mark},
    store::{EndObserved, EndpointRow, LinkRow, NamespaceRow, NetworkRow},
};

/// One namespace's snapshot, indexed for lookups by name.
pub(super) struct Space<'a> {
    by_name: HashMap<&'a str, &'a LinkState>,
    /// weft's routes by output interface; None when the routes were not read.
    routes: Option<HashMap<u32, HashSet<&'a RouteState>>>,
}

impl<'a> Space<'a> {
    /// Indexes `snap`.
    pub(super) fn new(snap: &'a NsSnapshot) -> Self {
        Self {
            by_name: snap.links.iter().map(|l| (l.name.as_str(), l)).collect(),
            routes: snap.routes.as_ref().map(|rs| {
                let mut m: HashMap<u32, HashSet<&RouteState>> = HashMap::new();
                for (oif, r) in rs {
                    m.entry(*oif).or_default().insert(r);
                }
                m
            }),
        }
    }
}

/// What the store wants, as listed once for the check.
pub(super) struct Desired<'a> {
    /// Every namespace row.
    pub namespaces: &'a [NamespaceRow],
    /// Every link row.
    pub links: &'a [LinkRow],
    /// Every network row (for endpoints' specs).
    pub networks: &'a [NetworkRow],
    /// Every endpoint row.
    pub endpoints: &'a [EndpointRow],
    /// This weftd's owner id (in namespaces' marks).
    pub owner: &'a str,
    /// Where named namespaces live.
    pub netns_dir: &'a Path,
    /// Named namespaces whose resolv.conf differs from what it should say (read by the
    /// caller, the one file check of the pass).
    pub resolv_stale: &'a HashSet<String>,
    /// Namespaces ("" the host) left unread because they stayed quiet since a check found
    /// them clean (`quiet`): what lies in them is taken as it was then, as wanted.
    pub quiet: &'a HashSet<String>,
}

/// The check's verdict: what must be reconciled, and what matches.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Verdict {
    /// Objects whose kernel state (or status) differs, each with why (for the log).
    pub differ: Vec<(Key, String)>,
    /// Objects that match, with the key whose watchers hear of them too (an endpoint's
    /// network), and whether their status is Rechecking (a restart's, to confirm Ready).
    pub matching: Vec<(Key, Option<Key>, bool)>,
    /// The namespaces ("" the host) an object that differs lies in: not clean, so the next
    /// pass reads them again.
    pub unclean: HashSet<String>,
}

/// Compares every namespace, link and endpoint of `d` with `spaces` (namespace name -> its
/// snapshot; "" is the host). A namespace missing from `spaces` could not be read (gone, or
/// another namespace under its path): what lives in it differs; unless it is in
/// [`Desired::quiet`], when what lives in it is taken as matching, as it did when last read.
pub(super) fn compare(d: &Desired, spaces: &HashMap<String, Space>) -> Verdict {
    let mut v = Verdict::default();
    let mut judge = |key: Key,
                     also: Option<Key>,
                     rechecking: bool,
                     within: &mut dyn Iterator<Item = &str>,
                     r: Result<(), String>| match r {
        Ok(()) => v.matching.push((key, also, rechecking)),
        Err(why) => {
            v.differ.push((key, why));
            v.unclean.extend(within.map(str::to_string));
        }
    };
    let at = Within {
        spaces,
        quiet: d.quiet,
    };
    for ns in d.namespaces {
        let key = Key::Namespace(ns.id.clone());
        let r = converged(ns.status.was_converged(ns.generation), ns.deleting)
            .and_then(|()| namespace_matches(d, ns, &at));
        let rechecking = ns.status.phase == crate::model::Phase::Rechecking;
        let mut within = std::iter::once(ns.spec.name.as_str());
        judge(key, None, rechecking, &mut within, r);
    }
    for l in d.links {
        let r = converged(l.status.was_converged(l.generation), l.deleting)
            .and_then(|()| spec_matches(&l.id, &l.spec, &l.observed.ends, &at));
        let rechecking = l.status.phase == crate::model::Phase::Rechecking;
        let ends = l.spec.ends();
        let mut within = ends.iter().map(|e| e.namespace.as_str());
        judge(Key::Link(l.id.clone()), None, rechecking, &mut within, r);
    }
    let networks: HashMap<&str, &NetworkRow> =
        d.networks.iter().map(|n| (n.id.as_str(), n)).collect();
    for e in d.endpoints {
        let r = converged(e.status.was_converged(e.generation), e.deleting)
            .and_then(|()| endpoint_matches(e, networks.get(e.network_id.as_str()), &at));
        let rechecking = e.status.phase == crate::model::Phase::Rechecking;
        let also = Some(Key::Network(e.network_id.clone()));
        let mut within = ["", e.namespace.as_str()].into_iter();
        judge(
            Key::Endpoint(e.id.clone()),
            also,
            rechecking,
            &mut within,
            r,
        );
    }
    v
}

/// Where the comparison looks: the spaces read, and those left unread as quiet.
struct Within<'a, 'b> {
    spaces: &'b HashMap<String, Space<'a>>,
    quiet: &'b HashSet<String>,
}

impl<'a> Within<'a, '_> {
    /// Namespace `name`'s snapshot: Ok(Some) when read, Ok(None) when quiet (taken as it was
    /// found, clean), Err when it could not be read.
    fn space(&self, name: &str) -> Result<Option<&Space<'a>>, ()> {
        match self.spaces.get(name) {
            Some(s) => Ok(Some(s)),
            None if self.quiet.contains(name) => Ok(None),
            None => Err(()),
        }
    }
}

/// Ok for an object converged at its generation and not being deleted.
fn converged(at_generation: bool, deleting: bool) -> Result<(), String> {
    match (at_generation, deleting) {
        (_, true) => Err("being deleted".into()),
        (false, _) => Err("not converged at its generation".into()),
        (true, false) => Ok(()),
    }
}

/// A namespace: readable, its loopback up and marked, its path as shown, its resolv.conf.
fn namespace_matches(d: &Desired, ns: &NamespaceRow, at: &Within) -> Result<(), String> {
    let space = at
        .space(&ns.spec.name)
        .map_err(|()| "its namespace file is gone or could not be read")?;
    if d.resolv_stale.contains(&ns.spec.name) {
        return Err("resolv.conf differs".into());
    }
    let Some(space) = space else {
        return Ok(());
    };
    let path = match &ns.spec.adopted_path {
        Some(p) => p.clone(),
        None => d.netns_dir.join(&ns.spec.name),
    };
    if ns.status_path != path.display().to_string() {
        return Err("its status shows another path".into());
    }
    let lo = space.by_name.get("lo").ok_or("no loopback")?;
    if !lo.up {
        return Err("loopback is down".into());
    }
    if lo.alias.as_deref() != Some(namespace_mark(&ns.id, d.owner).as_str()) {
        return Err("loopback lacks the namespace's mark".into());
    }
    Ok(())
}

/// An endpoint: its veth as [`endpoint_spec`] builds it, and the inside MAC its status shows.
fn endpoint_matches(e: &EndpointRow, net: Option<&&NetworkRow>, at: &Within) -> Result<(), String> {
    let net = net.ok_or("its network is gone")?;
    if e.mac.is_none() {
        return Err("no MAC kept yet".into());
    }
    let spec = endpoint_spec(&net.spec, e);
    spec_matches(&e.id, &spec, &[], at)?;
    let Ok(Some(space)) = at.space(&e.namespace) else {
        // Quiet (as it was when found clean); unreadable was an error above.
        return Ok(());
    };
    let inside = space
        .by_name
        .get(e.spec.ifname.as_str())
        .ok_or("inside end missing")?;
    if inside.mac.as_deref().unwrap_or_default() != e.observed.mac {
        return Err("its status shows another MAC".into());
    }
    Ok(())
}

/// Every end of `spec` (owned by object `id`) as converged; `observed` (when not empty) is
/// what the status shows of each end.
fn spec_matches(
    id: &str,
    spec: &LinkSpec,
    observed: &[EndObserved],
    at: &Within,
) -> Result<(), String> {
    let mark = ownership_mark(id);
    let ends = spec.ends();
    if !observed.is_empty() && observed.len() != ends.len() {
        return Err("its status shows other ends".into());
    }
    for (i, end) in ends.iter().enumerate() {
        let space = at
            .space(&end.namespace)
            .map_err(|()| format!("{}: its namespace could not be read", end.name))?;
        // Quiet: as it was when a check found it clean.
        let Some(space) = space else {
            continue;
        };
        let state =
            end_matches(space, end, spec, &mark).map_err(|w| format!("{}: {w}", end.name))?;
        if let Some(o) = observed.get(i)
            && (o.index != state.index || o.mac != state.mac.clone().unwrap_or_default())
        {
            return Err(format!(
                "{}: its status shows another index or MAC",
                end.name
            ));
        }
    }
    Ok(())
}

/// One end as `converge_end` would leave it; the interface found.
fn end_matches<'a>(
    space: &Space<'a>,
    end: &EndSpec,
    spec: &LinkSpec,
    mark: &str,
) -> Result<&'a LinkState, &'static str> {
    let s = *space.by_name.get(end.name.as_str()).ok_or("missing")?;
    if s.alias.as_deref() != Some(mark) {
        return Err("lacks its mark");
    }
    if s.group == NEWBORN_GROUP {
        return Err("still in the newborn group");
    }
    if s.kind.as_deref() != Some(spec.kind.kernel_kind()) {
        return Err("another kind");
    }
    let mtu = if end.mtu == 0 { spec.end.mtu } else { end.mtu };
    if mtu != 0 && s.mtu != mtu {
        return Err("another MTU");
    }
    if let Some(mac) = &end.mac
        && s.mac.as_deref() != Some(mac.as_str())
    {
        return Err("another MAC");
    }
    let master = match &end.master {
        None => None,
        Some(m) => match space.by_name.get(m.as_str()) {
            Some(br) if br.kind.as_deref() == Some("bridge") => Some(br.index),
            _ => return Err("its master bridge is missing"),
        },
    };
    if s.master != master {
        return Err("another master");
    }
    if master.is_some() && s.hairpin != end.hairpin {
        return Err("another hairpin mode");
    }
    if s.up != end.up {
        return Err("another up state");
    }
    let want: HashSet<IpNet> = end.addresses.iter().copied().collect();
    let have: HashSet<IpNet> = s
        .addresses
        .iter()
        .copied()
        .filter(|a| !is_link_local_v6(a))
        .collect();
    if want != have {
        return Err("other addresses");
    }
    if let Some(routes) = &space.routes {
        let want = wanted_routes(end);
        let empty = HashSet::new();
        let have = routes.get(&s.index).unwrap_or(&empty);
        if want.len() != have.len() || !want.iter().all(|r| have.contains(r)) {
            return Err("other routes");
        }
    }
    Ok(s)
}
