//! Reconciling a link: create the veth pair (peer born in its namespace) or the bridge when
//! missing, then bring each end to its spec (mark, MTU, MAC, master, up, addresses, routes),
//! writing only what differs. Interfaces without weft's mark are never changed.
//!
//! The converge and remove steps take the kernel as a parameter: the controller's real one,
//! or a [`crate::kernel::DryRun`] over it when a request only plans. They hold no dry-run
//! branches of their own.
//!
//! # Converging, step by step
//! 1. Resolve each end's namespace ([`Controller::ns_ref`]): an unknown or not yet created
//!    namespace is a [`ReconcileError::Waiting`], so a link queued before its namespace waits
//!    (Pending) instead of failing.
//! 2. Look each end up by name. An interface with that name but without this object's mark
//!    (`weft:<id>`) is someone else's: a [`ReconcileError::Conflict`], never touched. One of
//!    ours of the wrong kind (changed behind weft's back) is deleted and made anew. An
//!    interface weft created and never marked ([`LinkState::is_newborn`]: a crash, or a
//!    failed request, between the create and the mark) is taken as this object's own when no
//!    other object plans the same name in that namespace (else a conflict: two objects would
//!    take one interface).
//! 3. Resolve the master bridges *before* creating anything, so a port whose bridge does not
//!    exist yet waits without leaving a new, still unmarked interface behind.
//! 4. If any end is missing, delete what is left of the pair ("half a pair is no pair") and
//!    create it in one request: a veth's peer is born in its namespace (no create-then-move,
//!    the slow part of every other tool), a bridge in its own.
//! 5. Per end, one `set_link` with only the fields that differ (mark, MTU, MAC, master, up;
//!    a newborn end also leaves the newborn group in it),
//!    then the addresses and the routes (protocol `RTPROT_WEFT`) as set differences. IPv6
//!    link-local addresses are the kernel's and never compared.
//! 6. A bridge that had to be re-created lost its ports: the links and endpoints that name it
//!    as master are queued again.
//!
//! A converged link costs reads only: the driver counts a write on a link that was Ready as a
//! drift repair.

use std::collections::HashSet;

use ipnet::IpNet;

use async_trait::async_trait;

use super::{
    Action, Controller, Key, ReconcileError,
    driver::{Ctx, Outcome, Reconciler},
};
use crate::{
    kernel::{ErrorKind, KernelOps, LinkChange, LinkState, NEWBORN_GROUP, NsRef, RouteState},
    model::{EndSpec, LinkKind, LinkSpec, ownership_mark},
    store::{EndObserved, LinkObserved, LinkRow},
};

/// How a namespace is named in messages: "the host namespace" for the empty name, else
/// `namespace "ns1"`.
pub(super) fn where_ns(ns: &str) -> String {
    if ns.is_empty() {
        "the host namespace".into()
    } else {
        format!("namespace {ns:?}")
    }
}

/// True if `state`, found under a name that the object whose mark is `mark` plans, is that
/// object's: it carries the mark, or weft made it and has not marked it yet (a crash or a
/// failure between the create and the mark; see [`crate::kernel::NEWBORN_GROUP`]).
pub(super) fn owned(state: &LinkState, mark: &str) -> bool {
    state.alias.as_deref() == Some(mark) || state.is_newborn()
}

/// Ok for a delete whose object is already gone (the interface, or its namespace).
fn ok_if_gone(r: Result<(), crate::kernel::KernelError>) -> Result<(), ReconcileError> {
    match r {
        Err(e) if !e.is_not_found() => Err(e.into()),
        _ => Ok(()),
    }
}

/// The link reconciler: veth pairs and bridges created through LinkService. What it observes
/// (and stores beside the status, for Get to show) is each end's ifindex and MAC.
pub(super) struct Links;

#[async_trait]
impl Reconciler for Links {
    type Object = LinkRow;
    type Observed = LinkObserved;

    fn observed(&self, row: &LinkRow) -> LinkObserved {
        row.observed.clone()
    }

    async fn reconcile(&self, row: &LinkRow, ctx: &Ctx) -> Outcome<LinkObserved> {
        let observed = ctx
            .ctl
            .converge_link(ctx.kernel, &row.id, &row.spec)
            .await?;
        Ok((Action::AwaitChange, observed))
    }

    /// Deletes both ends (a veth pair goes with either end); ends without the mark stay.
    async fn cleanup(&self, row: &LinkRow, ctx: &Ctx) -> Result<(), ReconcileError> {
        ctx.ctl.remove_link(ctx.kernel, &row.id, &row.spec).await
    }
}

impl Controller {
    /// Deletes the interfaces of `spec` that carry the mark of object `id`. A namespace that is
    /// gone took its interfaces with it.
    pub(super) async fn remove_link(
        &self,
        k: &dyn KernelOps,
        id: &str,
        spec: &LinkSpec,
    ) -> Result<(), ReconcileError> {
        let mark = ownership_mark(id);
        for end in spec.ends() {
            let ns = match self.ns_ref(&end.namespace).await {
                Ok(ns) => ns,
                Err(_) => continue,
            };
            let Some(state) = k.get_link(&ns, &end.name).await? else {
                continue;
            };
            if !owned(&state, &mark) {
                tracing::warn!(name = %end.name, "not deleting an interface without our mark");
                continue;
            }
            if state.is_newborn() && self.may_adopt(id, end).await.is_err() {
                tracing::warn!(name = %end.name, "not deleting a newborn interface another object plans");
                continue;
            }
            ok_if_gone(k.delete_link(&ns, state.index).await)?;
            if k.is_dry() {
                // A veth's peer goes with it; the dry run cannot see that.
                break;
            }
        }
        Ok(())
    }

    /// Whether object `id` may take a newborn interface under the name `end` plans as its own:
    /// only when no other object plans the same name in the same namespace (two objects that
    /// plan one name, which concurrent requests of two kinds can make, would otherwise both
    /// take the interface one of them is making). A conflict otherwise.
    async fn may_adopt(&self, id: &str, end: &EndSpec) -> Result<(), ReconcileError> {
        let planned = self.planned_interfaces().await?;
        let key = (end.namespace.clone(), end.name.clone());
        match planned
            .get(&key)
            .and_then(|uids| uids.iter().find(|u| *u != id))
        {
            None => Ok(()),
            Some(other) => Err(ReconcileError::permanent(format!(
                "interface {:?} in {} was made by weft and not marked yet, and object {other} \
                 plans the same name too; delete one of the two",
                end.name,
                where_ns(&end.namespace)
            ))),
        }
    }

    /// Makes the interfaces of `spec` exist with the mark of object `id` and match the spec.
    /// Links, network bridges and endpoint veths all converge through here.
    pub(super) async fn converge_link(
        &self,
        k: &dyn KernelOps,
        id: &str,
        spec: &LinkSpec,
    ) -> Result<LinkObserved, ReconcileError> {
        Ok(self.converge_link_fresh(k, id, spec, false).await?.0)
    }

    /// [`Controller::converge_link`], also saying whether the interfaces had to be created
    /// (an endpoint re-created under its neighbours announces itself).
    ///
    /// `absent` says the interfaces are most likely not there (an endpoint never seen whole:
    /// no inside MAC recorded): they are then created without first reading both names, and
    /// only when the kernel says a name is taken (`EEXIST`, nothing made) is the whole
    /// converge done again the careful way, which reads them and tells what is in the way.
    /// (An endpoint whose earlier attempts failed after their create pays that failed create
    /// on each retry.) Not in a dry run, whose plan reads.
    pub(super) async fn converge_link_fresh(
        &self,
        k: &dyn KernelOps,
        id: &str,
        spec: &LinkSpec,
        absent: bool,
    ) -> Result<(LinkObserved, bool), ReconcileError> {
        if absent && !k.is_dry() {
            // A Connect may have made the pair already, beside its transaction.
            let prepared = match self.take_prepared(id) {
                // Its inner end's IPv6 turned off for a network that has IPv6 now (its name
                // reused, or a subnet added): that pair is made anew, the usual way.
                Some(p) if p.peer_ipv6_off && spec.ends().get(1).is_some_and(|e| !e.ipv6_off) => {
                    ok_if_gone(k.delete_link(&NsRef::Host, p.ends[0].index).await)?;
                    None
                }
                p => p,
            };
            if let Some(done) = self.converge_link_as(k, id, spec, true, prepared).await? {
                return Ok(done);
            }
            tracing::debug!(
                link = id,
                "a name was taken after all: converging by reading first"
            );
        }
        // Without a guess the body never answers None; should it, it is a retry's matter.
        self.converge_link_as(k, id, spec, false, None)
            .await?
            .ok_or_else(|| ReconcileError::transient("an interface name was taken meanwhile"))
    }

    /// The body of [`Controller::converge_link_fresh`]; `guess` skips the reads before the
    /// create and answers None when the create finds a name taken (nothing was made).
    /// `prepared` (with `guess` only): the pair a Connect made already, its ends as read
    /// then, which stands for the create and the reads after it.
    async fn converge_link_as(
        &self,
        k: &dyn KernelOps,
        id: &str,
        spec: &LinkSpec,
        guess: bool,
        prepared: Option<super::prepare::Made>,
    ) -> Result<Option<(LinkObserved, bool)>, ReconcileError> {
        // Only a veth whose ends are the ones the spec names.
        let prepared = prepared.filter(|p| {
            guess
                && matches!(spec.kind, LinkKind::Veth { .. })
                && spec
                    .ends()
                    .iter()
                    .map(|e| e.name.as_str())
                    .eq(p.ends.iter().map(|l| l.name.as_str()))
        });
        let mark = ownership_mark(id);
        let mut ends = Vec::new();
        for end in spec.ends() {
            let ns = self.ns_ref(&end.namespace).await?;
            let state = if guess {
                None
            } else {
                k.get_link(&ns, &end.name).await?
            };
            if let Some(s) = &state {
                if !owned(s, &mark) {
                    return Err(ReconcileError::permanent(format!(
                        "interface {:?} in {} exists and is not owned by weft (no weft mark); remove or rename it",
                        end.name,
                        where_ns(&end.namespace)
                    )));
                }
                if s.is_newborn() {
                    self.may_adopt(id, end).await?;
                }
                if s.kind.as_deref() != Some(spec.kind.kernel_kind()) {
                    // Ours, but not what the spec says (changed behind our back): recreate.
                    ok_if_gone(k.delete_link(&ns, s.index).await)?;
                    ends.push((end, ns, None));
                    continue;
                }
            }
            ends.push((end, ns, state));
        }
        // Masters are looked up before anything is created: a port queued before its bridge
        // exists waits without making an interface it cannot finish. (One left unmarked by a
        // later failure is newborn, and the next attempt takes it as its own.) A prepared
        // pair is made already: each end looks its own master up, beside the other end's
        // requests (None here).
        let mut masters = Vec::with_capacity(ends.len());
        for (end, ns, _) in &ends {
            masters.push(match prepared {
                Some(_) => None,
                None => Some(master_index(k, ns, end).await?),
            });
        }
        // The first end of a veth as its create's echo showed it, where the kernel sends one.
        let mut echoed = None;
        let created = if ends.iter().any(|(_, _, s)| s.is_none()) {
            // Half a pair is no pair: remove what is left and make both ends anew.
            for (_, ns, s) in &ends {
                if let Some(s) = s {
                    ok_if_gone(k.delete_link(ns, s.index).await)?;
                }
            }
            let made = match &spec.kind {
                LinkKind::Veth { .. } if prepared.is_some() => Ok(()),
                LinkKind::Veth { peer } => k
                    .create_veth_echoed(&ends[0].1, &spec.end.name, &ends[1].1, &peer.name)
                    .await
                    .map(|end| echoed = end),
                LinkKind::Bridge => k.create_bridge(&ends[0].1, &spec.end.name).await,
            };
            match made {
                Err(e) if guess && e.kind() == ErrorKind::Exists => return Ok(None),
                made => made?,
            }
            if cfg!(debug_assertions) && !k.is_dry() {
                let names: Vec<&str> = ends.iter().map(|(e, _, _)| e.name.as_str()).collect();
                super::fault::after_create(&names);
            }
            true
        } else {
            false
        };
        let default_mtu = spec.end.mtu;
        let mark = mark.as_str();
        // The ends converge side by side: each is its own interface (an endpoint's in two
        // namespaces, on two sockets; a link's two ends in one namespace share its socket,
        // whose requests are independent), and neither waits for anything of the other's (a
        // veth's carrier comes up when both are up, in either order), so the round trips of
        // one overlap the other's. One end failing does not stop the other; the retry
        // converges both again. A dry run goes one end after the other, so its plan
        // lists each end's steps together, in the same order every time.
        let each_end =
            ends.iter()
                .zip(masters)
                .enumerate()
                .map(|(i, ((end, ns, state), master))| {
                    // The end as read or echoed right after its create, and whether its IPv6
                    // is off already (a prepared pair's host end, and its peer where the
                    // network had no IPv6).
                    let ready = match &prepared {
                        Some(p) => Some((p.ends[i].clone(), i == 0 || p.peer_ipv6_off)),
                        None => echoed.clone().filter(|_| i == 0).map(|l| (l, false)),
                    };
                    async move {
                        let master = match master {
                            Some(m) => m,
                            None => master_index(k, ns, end).await?,
                        };
                        let made;
                        let state = if created {
                            // Just made: down, unmarked (newborn), no addresses (but IPv6
                            // link-local ones, which are never compared) and no routes; only
                            // its index is unknown.
                            let (read, ipv6_done) = match ready {
                                Some(ready) => ready,
                                None => (
                                    k.get_link_bare(ns, &end.name).await?.ok_or_else(|| {
                                        ReconcileError::transient(format!(
                                            "interface {:?} vanished right after it was created",
                                            end.name
                                        ))
                                    })?,
                                    false,
                                ),
                            };
                            made = read;
                            if end.ipv6_off && !ipv6_done {
                                ipv6_off_before_up(k, ns, &end.name, made.index).await;
                            }
                            &made
                        } else {
                            state.as_ref().ok_or_else(|| {
                                ReconcileError::transient(format!(
                                    "interface {:?} is missing after it was created",
                                    end.name
                                ))
                            })?
                        };
                        let mtu = if end.mtu == 0 { default_mtu } else { end.mtu };
                        let target = EndTarget {
                            ns,
                            state,
                            spec: end,
                            mtu,
                            mark,
                            fresh: created,
                            master,
                        };
                        self.converge_end(k, target).await
                    }
                });
        let converged = if k.is_dry() {
            let mut done = Vec::with_capacity(ends.len());
            for end in each_end {
                done.push(end.await);
            }
            done
        } else {
            futures::future::join_all(each_end).await
        };
        let mut observed = LinkObserved::default();
        for end in converged {
            observed.ends.push(end?);
        }
        if created && spec.kind == LinkKind::Bridge && !k.is_dry() {
            // A re-created bridge lost its ports: let them enslave themselves again.
            self.requeue_ports(&spec.end.namespace, &spec.end.name, id)
                .await?;
        }
        Ok(Some((observed, created)))
    }

    /// Queues every link and endpoint whose end names `bridge` (in `namespace`) as master,
    /// but the bridge's own object `self_id`: after the bridge was re-created they must join
    /// it again. Endpoints are found through the networks whose bridge it is.
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

    /// Brings one existing interface to its spec; writes only what differs.
    async fn converge_end(
        &self,
        k: &dyn KernelOps,
        t: EndTarget<'_>,
    ) -> Result<EndObserved, ReconcileError> {
        let EndTarget {
            ns,
            state,
            spec: end,
            mtu,
            mark,
            fresh,
            master,
        } = t;
        let mut change = LinkChange::default();
        if state.alias.as_deref() != Some(mark) {
            change.alias = Some(mark.to_string());
        }
        if state.group == NEWBORN_GROUP {
            // Marked in the same request: never in the newborn group with the mark, never
            // out of it without.
            change.group = Some(0);
        }
        if mtu != 0 && state.mtu != mtu {
            change.mtu = Some(mtu);
        }
        if let Some(mac) = &end.mac
            && state.mac.as_deref() != Some(mac.as_str())
        {
            change.mac = Some(mac.clone());
        }
        if state.master != master {
            change.master = Some(master);
        }
        // A port enslaved by this change starts with hairpin off, as every new port does.
        let hairpin = state.hairpin && change.master.is_none();
        if master.is_some() && hairpin != end.hairpin {
            change.hairpin = Some(end.hairpin);
        }
        if state.up != end.up {
            change.up = Some(end.up);
        }
        k.set_link(ns, state.index, &change).await?;

        let want: HashSet<IpNet> = end.addresses.iter().copied().collect();
        let have: HashSet<IpNet> = state
            .addresses
            .iter()
            .copied()
            .filter(|a| !is_link_local_v6(a))
            .collect();
        for a in have.difference(&want) {
            ok_if_gone(k.del_address(ns, state.index, *a).await)?;
        }
        for a in want.difference(&have) {
            match k.add_address(ns, state.index, *a, end.nodad).await {
                Err(e) if e.kind() != ErrorKind::Exists => return Err(e.into()),
                _ => {}
            }
        }

        let want = wanted_routes(end);
        let have: HashSet<RouteState> = if fresh {
            HashSet::new()
        } else {
            k.list_routes(ns, state.index).await?.into_iter().collect()
        };
        for r in have.difference(&want) {
            ok_if_gone(k.del_route(ns, state.index, r).await)?;
        }
        for r in want.difference(&have) {
            // The error keeps its kind (the policy decides), prefixed with the route.
            k.add_route(ns, state.index, r).await.map_err(|e| {
                let route = format!("route {} on {:?}", r.describe(), end.name);
                ReconcileError::Kernel(e.relabel(&route))
            })?;
        }
        Ok(EndObserved {
            index: state.index,
            mac: change.mac.or_else(|| state.mac.clone()).unwrap_or_default(),
        })
    }
}

/// One end of a link to converge: where it is, what the kernel has, what the spec wants.
struct EndTarget<'a> {
    ns: &'a NsRef,
    state: &'a LinkState,
    spec: &'a EndSpec,
    /// The MTU to set (the end's own, or the link's).
    mtu: u32,
    /// The ownership mark it must carry.
    mark: &'a str,
    /// Created by this reconcile: it has no routes to look up.
    fresh: bool,
    /// The index of its master bridge, resolved before anything was created.
    master: Option<u32>,
}

/// The index of `end`'s master bridge in `ns` (None when it has none). A master that is not a
/// bridge is a conflict; one that does not exist yet is waited for (a dry run plans it).
async fn master_index(
    k: &dyn KernelOps,
    ns: &NsRef,
    end: &EndSpec,
) -> Result<Option<u32>, ReconcileError> {
    Ok(match &end.master {
        None => None,
        Some(m) => match k.get_link_bare(ns, m).await? {
            Some(br) if br.kind.as_deref() != Some("bridge") => {
                return Err(ReconcileError::permanent(format!(
                    "master {m:?} is not a bridge"
                )));
            }
            Some(br) => Some(br.index),
            None => match k.planned_index(ns, m) {
                // A dry run may plan a port of a bridge that is not there yet.
                Some(planned) => Some(planned),
                None => {
                    return Err(ReconcileError::transient(format!(
                        "master bridge {m:?} not found in {}",
                        where_ns(&end.namespace)
                    )));
                }
            },
        },
    })
}

/// The routes an end should have, as the kernel shows them (its metric for an unset one).
pub(super) fn wanted_routes(end: &EndSpec) -> HashSet<RouteState> {
    end.routes
        .iter()
        .map(|r| {
            let route = RouteState {
                destination: r.destination,
                gateway: r.gateway,
                metric: r.metric,
            };
            RouteState {
                metric: route.kernel_metric(),
                ..route
            }
        })
        .collect()
}

/// "veth1 in namespace \"ns1\"" or "weft0 in the host namespace".
pub(super) fn where_if(name: &str, ns: &str) -> String {
    format!("{name} in {}", where_ns(ns))
}

/// True for an IPv6 link-local address (fe80::/10): the kernel assigns those itself, so they
/// are neither desired nor removed.
pub(super) fn is_link_local_v6(a: &IpNet) -> bool {
    match a {
        IpNet::V6(n) => (n.addr().segments()[0] & 0xffc0) == 0xfe80,
        IpNet::V4(_) => false,
    }
}

/// Turns IPv6 off on a new interface (`EndSpec::ipv6_off`), before it first comes up.
///
/// A bridge port needs no IPv6 of its own (the bridge carries its frames at layer 2, IPv6
/// ones included; the bridge holds the addresses), and each port with IPv6 on adds a
/// link-local and a multicast route to its namespace's table, which every link change there
/// walks whole (`rt6_sync_down_dev`): with 10,000 endpoints that walk was most of a Connect's
/// time. In the host namespace, where names are unique, that is `disable_ipv6` through /proc.
///
/// In any other namespace it is the address generation mode none, over netlink: the
/// interface gets no link-local address, so it sends no DAD probes and no router
/// solicitations (an idle IPv4-only container's solicitations were flooded to every port of
/// its bridge, for ever). Not /proc there: every namespace's interface is `eth0`, and that
/// write grew with the number of namespaces (a Connect's p50 doubled at 5,000 and 10,000;
/// BENCHMARKS.md, "Surprises").
///
/// `index` serves only outside the host: the host's switch-off goes by name, so it needs
/// no read of the interface first.
///
/// Best effort: a kernel without IPv6 has no such file and refuses the mode, and an
/// interface that keeps IPv6 works all the same.
pub(super) async fn ipv6_off_before_up(k: &dyn KernelOps, ns: &NsRef, name: &str, index: u32) {
    let result = if *ns == NsRef::Host {
        let key = format!("net/ipv6/conf/{name}/disable_ipv6");
        k.ensure_sysctl(ns, &key, "1").await.map(drop)
    } else {
        let quiet = LinkChange {
            ipv6_addr_gen_none: true,
            ..Default::default()
        };
        k.set_link(ns, index, &quiet).await
    };
    match result {
        Ok(()) => {}
        // ENOENT: no such sysctl; EAFNOSUPPORT: no IPv6 on the interface to set a mode of.
        Err(e) if e.is_not_found() || e.errno() == Some(nix::libc::EAFNOSUPPORT) => {}
        Err(e) => tracing::warn!(interface = name, error = %e, "could not turn IPv6 off"),
    }
}
