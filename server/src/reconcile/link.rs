//! Reconciling a link: create the veth pair (peer born in its namespace) or the bridge when
//! missing, then bring each end to its spec (mark, MTU, MAC, master, up, addresses, routes),
//! writing only what differs. Interfaces without weft's mark are never changed.

use std::collections::HashSet;

use ipnet::IpNet;

use super::{Controller, Key, Plan, ReconcileError};
use crate::{
    kernel::{LinkChange, LinkState, NsRef, RouteState},
    model::{EndSpec, LinkKind, LinkSpec, Phase, Status, ownership_mark},
    store::{EndObserved, LinkObserved},
};

pub(super) fn where_ns(ns: &str) -> String {
    if ns.is_empty() {
        "the host namespace".into()
    } else {
        format!("namespace {ns:?}")
    }
}

/// ENODEV / ENOENT: the object is already gone.
fn is_gone(e: &crate::kernel::KernelError) -> bool {
    matches!(e.errno(), Some(19) | Some(2))
}

/// The metric the kernel reports for a route given `metric` (IPv6 turns 0 into 1024).
fn effective_metric(dst: &IpNet, metric: u32) -> u32 {
    if metric == 0 && matches!(dst, IpNet::V6(_)) {
        1024
    } else {
        metric
    }
}

impl Controller {
    pub(super) async fn reconcile_link(
        &self,
        id: &str,
        attempt: u32,
    ) -> Result<bool, ReconcileError> {
        let Some(row) = self.store().link_by_id(id).await? else {
            return Ok(false);
        };
        let key = Key::Link(id.to_string());
        let converged_before = row.status.was_converged(row.generation);
        if row.deleting {
            self.remove_link(&row.id, &row.spec, &Plan::live()).await?;
            if self.store().delete_link_row(id).await? {
                self.events().send(key, true);
            }
            return Ok(false);
        }
        let (status, observed, outcome) =
            match self.converge_link(&row.id, &row.spec, &Plan::live()).await {
                Ok(observed) => (
                    Status {
                        phase: Phase::Ready,
                        observed_generation: row.generation,
                        message: String::new(),
                    },
                    observed,
                    Ok(()),
                ),
                Err(e) => (
                    Self::failed_status(&e, attempt, row.generation, &row.status),
                    row.observed.clone(),
                    Err(e),
                ),
            };
        let unchanged = observed == row.observed;
        if !self.confirm_if_rechecked(&key, &row.status, &status, unchanged, None)
            && self.store().set_link_status(id, &status, &observed).await?
        {
            self.events().send(key, false);
        }
        outcome.map(|()| converged_before)
    }

    /// Deletes the interfaces of `spec` that carry the mark of object `id`. A namespace that is
    /// gone took its interfaces with it.
    pub(super) async fn remove_link(
        &self,
        id: &str,
        spec: &LinkSpec,
        plan: &Plan,
    ) -> Result<(), ReconcileError> {
        let mark = ownership_mark(id);
        for end in spec.ends() {
            let ns = match self.ns_ref(&end.namespace).await {
                Ok(ns) => ns,
                Err(_) => continue,
            };
            let Some(state) = self.kernel().get_link(&ns, &end.name).await? else {
                continue;
            };
            if state.alias.as_deref() != Some(mark.as_str()) {
                tracing::warn!(name = %end.name, "not deleting an interface without our mark");
                continue;
            }
            if plan.record("delete", "link", where_if(&end.name, &end.namespace), "") {
                // A veth's peer goes with it.
                break;
            }
            match self.kernel().delete_link(&ns, state.index).await {
                Err(e) if !is_gone(&e) => return Err(e.into()),
                _ => {}
            }
        }
        Ok(())
    }

    /// Makes the interfaces of `spec` exist with the mark of object `id` and match the spec.
    /// Links, network bridges and endpoint veths all converge through here.
    pub(super) async fn converge_link(
        &self,
        id: &str,
        spec: &LinkSpec,
        plan: &Plan,
    ) -> Result<LinkObserved, ReconcileError> {
        let mark = ownership_mark(id);
        let mut ends = Vec::new();
        for end in spec.ends() {
            let ns = self.ns_ref(&end.namespace).await?;
            let state = self.kernel().get_link(&ns, &end.name).await?;
            if let Some(s) = &state {
                if s.alias.as_deref() != Some(mark.as_str()) {
                    return Err(ReconcileError::permanent(format!(
                        "interface {:?} in {} exists and is not owned by weft (no weft mark); remove or rename it",
                        end.name,
                        where_ns(&end.namespace)
                    )));
                }
                if s.kind.as_deref() != Some(spec.kind.kernel_kind()) {
                    // Ours, but not what the spec says (changed behind our back): recreate.
                    if !plan.record(
                        "delete",
                        "link",
                        where_if(&end.name, &end.namespace),
                        "wrong kind",
                    ) {
                        self.kernel().delete_link(&ns, s.index).await?;
                    }
                    ends.push((end, ns, None));
                    continue;
                }
            }
            ends.push((end, ns, state));
        }
        let created = if ends.iter().any(|(_, _, s)| s.is_none()) {
            // Half a pair is no pair: remove what is left and make both ends anew.
            for (end, ns, s) in &ends {
                if let Some(s) = s
                    && !plan.record(
                        "delete",
                        "link",
                        where_if(&end.name, &end.namespace),
                        "half a pair",
                    )
                {
                    match self.kernel().delete_link(ns, s.index).await {
                        Err(e) if !is_gone(&e) => return Err(e.into()),
                        _ => {}
                    }
                }
            }
            match &spec.kind {
                LinkKind::Veth { peer } => {
                    if !plan.record(
                        "create",
                        "link",
                        where_if(&spec.end.name, &spec.end.namespace),
                        format!("veth, peer {}", where_if(&peer.name, &peer.namespace)),
                    ) {
                        self.kernel()
                            .create_veth(&ends[0].1, &spec.end.name, &ends[1].1, &peer.name)
                            .await?;
                    }
                }
                LinkKind::Bridge => {
                    if !plan.record(
                        "create",
                        "link",
                        where_if(&spec.end.name, &spec.end.namespace),
                        "bridge",
                    ) {
                        self.kernel()
                            .create_bridge(&ends[0].1, &spec.end.name)
                            .await?
                    }
                }
            }
            for (end, ns, s) in &mut ends {
                *s = Some(if plan.is_dry() {
                    // What a new interface looks like: down, no mark, no addresses.
                    LinkState {
                        index: 0,
                        name: end.name.clone(),
                        kind: Some(spec.kind.kernel_kind().into()),
                        mtu: 1500,
                        mac: None,
                        up: false,
                        master: None,
                        alias: None,
                        addresses: Vec::new(),
                        group: 0,
                    }
                } else {
                    // Just made: down, unmarked, no addresses (but IPv6 link-local ones, which
                    // are never compared) and no routes; only its index is unknown.
                    self.kernel()
                        .get_link_bare(ns, &end.name)
                        .await?
                        .ok_or_else(|| {
                            ReconcileError::transient(format!(
                                "interface {:?} vanished right after it was created",
                                end.name
                            ))
                        })?
                });
            }
            true
        } else {
            false
        };
        let default_mtu = spec.end.mtu;
        let mut observed = LinkObserved::default();
        for (end, ns, state) in &ends {
            let state = state.as_ref().expect("every end exists by now");
            let mtu = if end.mtu == 0 { default_mtu } else { end.mtu };
            observed.ends.push(
                self.converge_end(ns, state, end, mtu, &mark, created, plan)
                    .await?,
            );
        }
        if created && spec.kind == LinkKind::Bridge && !plan.is_dry() {
            // A re-created bridge lost its ports: let them enslave themselves again.
            self.requeue_ports(&spec.end.namespace, &spec.end.name, id)
                .await?;
        }
        Ok(observed)
    }

    async fn requeue_ports(
        &self,
        namespace: &str,
        bridge: &str,
        self_id: &str,
    ) -> Result<(), ReconcileError> {
        for l in self.store().list_links().await? {
            if l.id != self_id
                && l.spec
                    .ends()
                    .iter()
                    .any(|e| e.namespace == namespace && e.master.as_deref() == Some(bridge))
            {
                self.enqueue(Key::Link(l.id));
            }
        }
        if namespace.is_empty() {
            for n in self.store().list_networks().await? {
                if n.spec.bridge_name == bridge {
                    for e in self.store().list_endpoints(Some(&n.id)).await? {
                        self.enqueue(Key::Endpoint(e.id));
                    }
                }
            }
        }
        Ok(())
    }

    /// Brings one existing interface to its spec; writes only what differs. `fresh`: the
    /// interface was created by this reconcile, so it has no routes to look up.
    #[allow(clippy::too_many_arguments)]
    async fn converge_end(
        &self,
        ns: &NsRef,
        state: &LinkState,
        end: &EndSpec,
        mtu: u32,
        mark: &str,
        fresh: bool,
        plan: &Plan,
    ) -> Result<EndObserved, ReconcileError> {
        let k = self.kernel();
        let target = where_if(&end.name, &end.namespace);
        let mut change = LinkChange::default();
        if state.alias.as_deref() != Some(mark) {
            change.alias = Some(mark.to_string());
        }
        if mtu != 0 && state.mtu != mtu {
            change.mtu = Some(mtu);
        }
        if let Some(mac) = &end.mac
            && state.mac.as_deref() != Some(mac.as_str())
        {
            change.mac = Some(mac.clone());
        }
        let master = match &end.master {
            None => None,
            Some(m) => match k.get_link_bare(ns, m).await? {
                Some(br) if br.kind.as_deref() != Some("bridge") => {
                    return Err(ReconcileError::permanent(format!(
                        "master {m:?} is not a bridge"
                    )));
                }
                Some(br) => Some(br.index),
                // A dry run may plan a port of a bridge its own call would create.
                None if plan.is_dry() => Some(0),
                None => {
                    return Err(ReconcileError::transient(format!(
                        "master bridge {m:?} not found in {}",
                        where_ns(&end.namespace)
                    )));
                }
            },
        };
        if state.master != master {
            change.master = Some(master);
        }
        if state.up != end.up {
            change.up = Some(end.up);
        }
        if change != LinkChange::default()
            && !plan.record("set", "link", target.clone(), describe(&change, end))
        {
            k.set_link(ns, state.index, &change).await?;
        }

        let want: HashSet<IpNet> = end.addresses.iter().copied().collect();
        let have: HashSet<IpNet> = state
            .addresses
            .iter()
            .copied()
            .filter(|a| !is_link_local_v6(a))
            .collect();
        for a in have.difference(&want) {
            if plan.record("remove", "address", format!("{a} on {target}"), "") {
                continue;
            }
            match k.del_address(ns, state.index, *a).await {
                Err(e) if !is_gone(&e) => return Err(e.into()),
                _ => {}
            }
        }
        for a in want.difference(&have) {
            if plan.record("add", "address", format!("{a} on {target}"), "") {
                continue;
            }
            match k.add_address(ns, state.index, *a).await {
                Err(e) if e.errno() != Some(17) => return Err(e.into()), // EEXIST: already there
                _ => {}
            }
        }

        let want: HashSet<RouteState> = end
            .routes
            .iter()
            .map(|r| RouteState {
                destination: r.destination,
                gateway: r.gateway,
                metric: effective_metric(&r.destination, r.metric),
            })
            .collect();
        let have: HashSet<RouteState> = if state.index == 0 || fresh {
            HashSet::new()
        } else {
            k.list_routes(ns, state.index).await?.into_iter().collect()
        };
        for r in have.difference(&want) {
            if plan.record(
                "remove",
                "route",
                format!("{} on {target}", describe_route(r)),
                "",
            ) {
                continue;
            }
            match k.del_route(ns, state.index, r).await {
                Err(e) if !matches!(e.errno(), Some(3) | Some(19) | Some(2)) => {
                    return Err(e.into());
                }
                _ => {}
            }
        }
        for r in want.difference(&have) {
            if plan.record(
                "add",
                "route",
                format!("{} on {target}", describe_route(r)),
                "",
            ) {
                continue;
            }
            k.add_route(ns, state.index, r).await.map_err(|e| {
                ReconcileError::transient(format!(
                    "route {} on {:?}: {e}",
                    describe_route(r),
                    end.name
                ))
            })?;
        }
        Ok(EndObserved {
            index: state.index,
            mac: change.mac.or_else(|| state.mac.clone()).unwrap_or_default(),
        })
    }
}

/// "veth1 in namespace \"ns1\"" or "weft0 in the host namespace".
pub(super) fn where_if(name: &str, ns: &str) -> String {
    format!("{name} in {}", where_ns(ns))
}

fn describe_route(r: &RouteState) -> String {
    let mut t = if r.destination.prefix_len() == 0 {
        "default".to_string()
    } else {
        r.destination.to_string()
    };
    if let Some(g) = r.gateway {
        t.push_str(&format!(" via {g}"));
    }
    if r.metric != 0 {
        t.push_str(&format!(" metric {}", r.metric));
    }
    t
}

/// The fields a LinkChange sets, in words.
fn describe(c: &LinkChange, end: &EndSpec) -> String {
    let mut parts = Vec::new();
    if let Some(m) = c.mtu {
        parts.push(format!("mtu {m}"));
    }
    if let Some(m) = &c.mac {
        parts.push(format!("address {m}"));
    }
    match &c.master {
        Some(Some(_)) => parts.push(format!("master {}", end.master.as_deref().unwrap_or("?"))),
        Some(None) => parts.push("nomaster".into()),
        None => {}
    }
    if let Some(up) = c.up {
        parts.push(if up { "up".into() } else { "down".into() });
    }
    if let Some(a) = &c.alias {
        parts.push(format!("alias {a}"));
    }
    parts.join(", ")
}

fn is_link_local_v6(a: &IpNet) -> bool {
    match a {
        IpNet::V6(n) => (n.addr().segments()[0] & 0xffc0) == 0xfe80,
        IpNet::V4(_) => false,
    }
}
