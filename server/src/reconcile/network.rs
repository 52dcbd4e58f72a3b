//! Reconciling networks, endpoints and the firewall.
//!
//! - A network is a bridge owned by the network (mark `weft:<network id>`) carrying each
//!   subnet's gateway address, up, with the network's MTU; its firewall rules are part of the
//!   one ruleset built from every live network.
//! - An endpoint is a veth whose host end (`wv<id>`) is a port of the bridge and whose inside
//!   end carries the leases, the MTU, and a default route via the gateway(s); its published
//!   ports are elements of the DNAT maps. Removal goes DNAT elements first, then the veth,
//!   then the row (leases and mappings cascade).
//! - An endpoint's reconcile and cleanup converge its namespace's resolv.conf (`resolv`)
//!   alongside their veth work, so Connect and Disconnect answer with the file already
//!   changed.
//! - The firewall key converges the ruleset's structure, the forwarding sysctls and every
//!   map element at once (start-up, resync, network changes). The controller keeps a cache
//!   of the map elements the kernel holds, refreshed by that key, so an endpoint adds only
//!   what is missing and a converged restart writes nothing.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use async_trait::async_trait;

use super::{
    Action, Controller, Key, ReconcileError,
    driver::{Ctx, Outcome, Ran, Reconciler},
};
use crate::{
    kernel::NsRef,
    kernel::firewall::{FirewallNetwork, PortMapping, Proto},
    model::{EndSpec, LinkKind, LinkSpec, NetworkSpec, Protocol, RouteSpec},
    store::{EndpointObserved, EndpointRow, NetworkRow, StoredMapping},
};

/// The model's protocol as the firewall layer names it.
fn proto(p: Protocol) -> Proto {
    match p {
        Protocol::Tcp => Proto::Tcp,
        Protocol::Udp => Proto::Udp,
        Protocol::Sctp => Proto::Sctp,
    }
}

/// Above this many port-map elements, the every-second element check runs every tenth time.
const ELEMENT_CHECK_LIMIT: usize = 2_000;

/// The MAC of network `id`'s bridge: locally administered, unicast, from the id. A bridge
/// without a MAC of its own takes the lowest of its ports', so it would change as endpoints
/// come and go and every endpoint's ARP entry for the gateway would go stale (Docker sets one
/// too); one derived from the id also survives the bridge being re-created.
pub(super) fn bridge_mac(id: &str) -> String {
    let hex: Vec<char> = id
        .chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_lowercase())
        .chain(std::iter::repeat('0'))
        .take(10)
        .collect();
    let mut mac = String::from("02");
    for pair in hex.chunks(2) {
        mac.push(':');
        mac.extend(pair);
    }
    mac
}

/// The bridge of network `id`, as a link spec.
pub(super) fn bridge_spec(id: &str, net: &NetworkSpec) -> LinkSpec {
    LinkSpec {
        labels: Default::default(),
        end: EndSpec {
            name: net.bridge_name.clone(),
            namespace: String::new(),
            mtu: net.mtu,
            mac: Some(bridge_mac(id)),
            up: true,
            master: None,
            hairpin: false,
            ipv6_off: false,
            // Its gateways are IPAM's: unique, and usable before its first port is up.
            nodad: true,
            addresses: net
                .subnets
                .iter()
                // The gateway with its subnet's prefix: the prefix came from a valid subnet of
                // the same family, so it always fits (IpNet::new_assert's precondition).
                .map(|s| ipnet::IpNet::new_assert(s.gateway, s.subnet.prefix_len()))
                .collect(),
            routes: Vec::new(),
        },
        kind: LinkKind::Bridge,
    }
}

/// The veth of an endpoint, as a link spec.
pub(super) fn endpoint_spec(net: &NetworkSpec, ep: &EndpointRow) -> LinkSpec {
    let routes = if ep.spec.default_route {
        ep.addresses
            .iter()
            .filter_map(|a| net.subnets.iter().find(|s| s.subnet.contains(&a.addr())))
            .map(|s| RouteSpec {
                destination: if s.is_v4() {
                    ipnet::IpNet::V4(ipnet::Ipv4Net::default())
                } else {
                    ipnet::IpNet::V6(ipnet::Ipv6Net::default())
                },
                gateway: Some(s.gateway),
                metric: 0,
            })
            .collect()
    } else {
        Vec::new()
    };
    LinkSpec {
        labels: Default::default(),
        end: EndSpec {
            name: ep.host_ifname.clone(),
            namespace: String::new(),
            mtu: net.mtu,
            mac: None,
            up: true,
            master: Some(net.bridge_name.clone()),
            // An endpoint reaches its own published ports through a host address: with
            // br_netfilter the DNATed frame is bridged back out of the port it came in on.
            // Only one that publishes ports needs it (as Docker sets it only without its
            // userland proxy): in hairpin mode a port also gets back a copy of every
            // broadcast it sends, which on a bridge of 1,000 ports is the copy past the
            // receive backlog that drops the gateway's ARP reply (BENCHMARKS.md,
            // "Surprises"); and it is one netlink request less per Connect.
            hairpin: !ep.spec.ports.is_empty(),
            // A bridge port needs no IPv6 of its own (see `EndSpec::ipv6_off`).
            ipv6_off: true,
            nodad: false,
            addresses: Vec::new(),
            routes: Vec::new(),
        },
        kind: LinkKind::Veth {
            peer: EndSpec {
                name: ep.spec.ifname.clone(),
                namespace: ep.namespace.clone(),
                mtu: net.mtu,
                // Kept in the desired state: a re-created interface gets the same MAC, so
                // the neighbours' ARP and ND entries stay right.
                mac: ep.mac.clone().or_else(|| ep.spec.mac.clone()),
                up: true,
                master: None,
                hairpin: false,
                // On an IPv4-only network the container's interface gets no IPv6 address,
                // not even a link-local one: it would only send router solicitations, which
                // the bridge floods to every port (see `EndSpec::ipv6_off`).
                ipv6_off: !ep.addresses.iter().any(|a| a.addr().is_ipv6()),
                // Leased by IPAM, so unique: usable when the Connect is answered, as with
                // Docker (see `EndSpec::nodad`).
                nodad: true,
                addresses: ep.addresses.clone(),
                routes,
            },
        },
    }
}

/// The map elements for one stored mapping of an endpoint: one per address family the
/// endpoint has that the host address allows.
pub(super) fn mappings_of(m: &StoredMapping, addresses: &[ipnet::IpNet]) -> Vec<PortMapping> {
    addresses
        .iter()
        .filter(|a| m.host_ip.is_none_or(|h| h.is_ipv4() == a.addr().is_ipv4()))
        .map(|a| PortMapping {
            host_ip: m.host_ip,
            proto: proto(m.protocol),
            host_port: m.host_port,
            dest: a.addr(),
            dest_port: m.container_port,
        })
        .collect()
}

/// Whether [`Controller::sync_firewall_structure`] reads the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Structure {
    /// Always: the firewall key, and a network's removal.
    Check,
    /// Only when the stored networks differ from those the structure last matched: a
    /// network's reconcile.
    IfNetworksChanged,
}

/// What the firewall needs to know of a network: its bridge, subnets and the three switches
/// that shape its rules (internal: no way out; icc: endpoints may talk to each other;
/// masquerade: traffic leaving the host is NATed to the host's address), and its resolver
/// addresses (what an internal network may still reach on the host).
fn fw_network(n: &NetworkRow) -> FirewallNetwork {
    FirewallNetwork {
        bridge: n.spec.bridge_name.clone(),
        // The gateway as host bits: the hairpin SNAT address.
        subnets: n
            .spec
            .subnets
            .iter()
            .map(|s| ipnet::IpNet::new_assert(s.gateway, s.subnet.prefix_len()))
            .collect(),
        internal: n.spec.internal,
        icc: n.spec.icc,
        masquerade: n.spec.masquerade,
        dns_servers: n.spec.dns_servers(),
    }
}

/// The network reconciler: the bridge (owned by the network, with each subnet's gateway
/// address and a MAC derived from the network id), `route_localnet` on it (published ports
/// answer on 127/8), the forwarding sysctls and the firewall's structure. A network has nothing
/// to observe beyond its status. Deleting it takes its rules out first, then the bridge.
pub(super) struct Networks;

#[async_trait]
impl Reconciler for Networks {
    type Object = NetworkRow;
    type Observed = ();

    /// Nothing beyond the status.
    fn observed(&self, _: &NetworkRow) {}

    /// Bridge first (its ports need it), then its sysctl, then the ruleset that names it.
    async fn reconcile(&self, row: &NetworkRow, ctx: &Ctx) -> Outcome<()> {
        // What a Connect's prepared veth may take for granted of the inner end's IPv6.
        ctx.ctl
            .note_network_families(&row.spec.name, row.spec.subnets.iter().all(|s| s.is_v4()));
        let spec = bridge_spec(&row.id, &row.spec);
        ctx.ctl.converge_link(ctx.kernel, &row.id, &spec).await?;
        // Published ports answer on the host's loopback addresses too (like Docker without
        // its userland proxy): the kernel routes a 127/8 source out of the bridge only so.
        let localnet = format!("net/ipv4/conf/{}/route_localnet", row.spec.bridge_name);
        ctx.kernel
            .ensure_sysctl(&NsRef::Host, &localnet, "1")
            .await?;
        ctx.ctl
            .sync_firewall_structure(Structure::IfNetworksChanged)
            .await?;
        Ok((Action::AwaitChange, ()))
    }

    /// The rules first (the ruleset is rebuilt without this network), then the bridge.
    async fn cleanup(&self, row: &NetworkRow, ctx: &Ctx) -> Result<(), ReconcileError> {
        ctx.ctl.forget_network_families(&row.spec.name);
        ctx.ctl.sync_firewall_structure(Structure::Check).await?;
        let spec = bridge_spec(&row.id, &row.spec);
        ctx.ctl.remove_link(ctx.kernel, &row.id, &spec).await
    }
}

/// The endpoint reconciler: the veth on the bridge, leases, routes, published ports. What it
/// observes is the inside end's MAC (Inspect shows it).
///
/// Its desired state is built from the network and the endpoint rows ([`endpoint_spec`]) and
/// converged as a link; the DNAT elements of its published ports are added after the veth,
/// so no packet is sent to an address that does not answer yet. Removal is the reverse:
/// DNAT out, the veth retired (cut off at once, deleted in a batch by the reaper), the row
/// (with its leases and mappings) last.
pub(super) struct Endpoints;

/// The DNAT map elements of endpoint `row`.
async fn endpoint_mappings(
    ctx: &Ctx<'_>,
    row: &EndpointRow,
) -> Result<Vec<PortMapping>, ReconcileError> {
    if row.spec.ports.is_empty() {
        // Mappings are made only from the spec's ports, in the same transaction.
        return Ok(Vec::new());
    }
    Ok(ctx
        .ctl
        .store()
        .port_mappings(Some(&row.id))
        .await?
        .iter()
        .flat_map(|m| mappings_of(m, &row.addresses))
        .collect())
}

/// The endpoint's network, which must still exist.
async fn network_of(ctx: &Ctx<'_>, row: &EndpointRow) -> Result<NetworkRow, ReconcileError> {
    ctx.ctl
        .store()
        .network_by_id(&row.network_id)
        .await?
        .ok_or_else(|| ReconcileError::transient("the endpoint's network vanished"))
}

#[async_trait]
impl Reconciler for Endpoints {
    type Object = EndpointRow;
    type Observed = EndpointObserved;

    /// The inside end's MAC as last seen.
    fn observed(&self, row: &EndpointRow) -> EndpointObserved {
        row.observed.clone()
    }

    /// The veth (through the link converge code), then the missing DNAT elements.
    async fn reconcile(&self, row: &EndpointRow, ctx: &Ctx) -> Outcome<EndpointObserved> {
        // An endpoint older than weft keeping MACs, whose MAC it never saw, gets one now.
        let assigned;
        let row = match ctx.ctl.store().assign_endpoint_mac(row).await? {
            Some(mac) => {
                assigned = EndpointRow {
                    mac: Some(mac),
                    ..row.clone()
                };
                &assigned
            }
            None => row,
        };
        let net = network_of(ctx, row).await?;
        let spec = endpoint_spec(&net.spec, row);
        let mappings = endpoint_mappings(ctx, row).await?;
        // Its inside MAC is recorded at its first converge: until then its veth is most
        // likely not there, and is made without reading first.
        let never_seen = row.observed.mac.is_empty();
        // Its namespace's resolv.conf names this network's resolver from now on: a file and a
        // store read that need nothing of the veth's, so they go alongside it (on a blocking
        // thread, while this task waits on netlink). It is written even when the veth then
        // fails: the text is what the namespace's own reconcile would write too.
        let (link, resolv) = tokio::join!(
            ctx.ctl
                .converge_link_fresh(ctx.kernel, &row.id, &spec, never_seen),
            ctx.ctl.converge_resolv_conf(&row.namespace)
        );
        // Its bridge has no port left: retired veths may still hold some (README, "1,023
        // endpoints per network"); the reaper deletes them before this is retried.
        if let Err(ReconcileError::Kernel(k)) = &link
            && k.errno() == Some(nix::errno::Errno::EXFULL as i32)
        {
            ctx.ctl.hurry_reaper();
        }
        let (observed, created) = match link {
            Ok(done) => done,
            // Its namespace may be an adopted one whose process exited: release it all.
            Err(e) if e.is_transient() => {
                log_resolv_failure(&resolv);
                return Err(ctx
                    .ctl
                    .release_if_namespace_gone(row, &mappings)
                    .await?
                    .unwrap_or(e));
            }
            Err(e) => {
                log_resolv_failure(&resolv);
                return Err(e);
            }
        };
        ctx.ctl.ensure_port_mappings(&mappings).await?;
        // Re-created under neighbours that knew it: tell them (its MAC is the same, but a
        // neighbour may have learnt another meanwhile, and the bridge's forwarding entry for
        // it went with the old port).
        if created
            && !row.observed.mac.is_empty()
            && let (Some(inside), LinkKind::Veth { peer }) = (observed.ends.get(1), &spec.kind)
        {
            let ns = ctx.ctl.ns_ref(&peer.namespace).await?;
            ctx.ctl
                .announce_soon(ns, inside.index, &peer.name, &inside.mac);
        }
        resolv?;
        let mac = observed
            .ends
            .get(1)
            .map(|e| e.mac.clone())
            .unwrap_or_default();
        Ok((Action::AwaitChange, EndpointObserved { mac }))
    }

    /// DNAT out, then the veth retired for the reaper; the driver then deletes the row.
    async fn cleanup(&self, row: &EndpointRow, ctx: &Ctx) -> Result<(), ReconcileError> {
        // Disconnected before its first reconcile took the veth its Connect made: the veth
        // is retired below by name, as any other.
        ctx.ctl.forget_prepared(&row.id);
        let net = network_of(ctx, row).await?;
        let spec = endpoint_spec(&net.spec, row);
        let mappings = endpoint_mappings(ctx, row).await?;
        // DNAT first, so no packet is sent to an address about to vanish; then the veth is
        // cut off and left to the reaper, which deletes retired veths in batches. Alongside
        // it, the namespace's resolv.conf without this network (the row is marked deleting).
        ctx.ctl.remove_port_mappings(&mappings).await?;
        let (retired, resolv) = tokio::join!(
            ctx.ctl.retire_endpoint_veth(&row.id, &spec),
            ctx.ctl.converge_resolv_conf(&row.namespace)
        );
        retired?;
        resolv
    }

    /// A network's Inspect lists its endpoints: its watchers hear of every endpoint change.
    fn also_notify(&self, row: &EndpointRow) -> Option<Key> {
        Some(Key::Network(row.network_id.clone()))
    }
}

/// Logs a resolv.conf step that failed beside a veth that failed too (whose error is the
/// one the reconcile returns; the next attempt runs both again).
fn log_resolv_failure(resolv: &Result<(), ReconcileError>) {
    if let Err(e) = resolv {
        tracing::debug!(error = %e, "resolv.conf failed too");
    }
}

/// When a re-created endpoint announces itself, from the end of its reconcile: at once, and
/// twice more in case the first went out before its bridge port forwarded (the port starts
/// forwarding when the kernel's link watch has seen the carrier, usually within
/// milliseconds). Each is a gratuitous ARP (and unsolicited NA) to every port of the bridge.
const ANNOUNCE_AT: [Duration; 3] = [
    Duration::ZERO,
    Duration::from_millis(200),
    Duration::from_millis(1000),
];

impl Controller {
    /// Announces interface `index` (`name`, with MAC `mac`) in `ns` to its neighbours at
    /// [`ANNOUNCE_AT`], in the background; stops early if it is gone or changed.
    fn announce_soon(&self, ns: NsRef, index: u32, name: &str, mac: &str) {
        let k = self.kernel_arc();
        let (name, mac) = (name.to_string(), mac.to_string());
        tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            for at in ANNOUNCE_AT {
                tokio::time::sleep_until(start + at).await;
                match k.announce(&ns, index, &name, &mac).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => {
                        tracing::debug!(error = %e, %name, "could not announce");
                        return;
                    }
                }
            }
            tracing::debug!(%name, %mac, "announced a re-created endpoint");
        });
    }

    /// Makes the forwarding sysctls and the firewall's structure match the stored networks;
    /// the structure is left unread when `how` is [`Structure::IfNetworksChanged`] and they
    /// are the networks it last matched: a resync queues every network, and ten structure reads in a row, each
    /// under the firewall lock, were most of a resync's cost at 100 endpoints (the firewall
    /// key, queued by the same resync and run every second, checks it anyway). Returns
    /// true if the ruleset had to be written. A rebuilt ruleset may have lost map elements
    /// (a deleted table takes them along), so the element cache is dropped and the firewall
    /// key queued to put every element back.
    async fn sync_firewall_structure(&self, how: Structure) -> Result<bool, ReconcileError> {
        let networks: Vec<FirewallNetwork> = self
            .store()
            .list_networks()
            .await?
            .iter()
            .filter(|n| !n.deleting)
            .map(fw_network)
            .collect();
        let known = || {
            self.inner
                .firewall_networks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
        };
        if !networks.is_empty() {
            self.kernel()
                .ensure_sysctl(&NsRef::Host, "net/ipv4/ip_forward", "1")
                .await?;
            if networks
                .iter()
                .any(|n| n.subnets.iter().any(|s| s.addr().is_ipv6()))
            {
                self.kernel()
                    .ensure_sysctl(&NsRef::Host, "net/ipv6/conf/all/forwarding", "1")
                    .await?;
            }
        }
        if how == Structure::IfNetworksChanged && known().as_ref() == Some(&networks) {
            return Ok(false);
        }
        let mut cache = self.inner.firewall.lock().await;
        // Unknown until this sync succeeds.
        *known() = None;
        let rebuilt = self.kernel().sync_firewall(&networks).await?;
        if rebuilt {
            tracing::info!("rewrote the firewall ruleset");
            crate::kernel::note_write();
            *cache = None;
            self.enqueue(Key::Firewall);
        }
        *known() = Some(networks);
        Ok(rebuilt)
    }

    /// Adds the mappings the kernel lacks, per the cache of its map elements.
    async fn ensure_port_mappings(&self, want: &[PortMapping]) -> Result<(), ReconcileError> {
        if want.is_empty() {
            return Ok(());
        }
        let mut cache = self.inner.firewall.lock().await;
        let have = match cache.as_mut() {
            Some(c) => c,
            None => cache.insert(
                self.kernel()
                    .list_port_mappings()
                    .await?
                    .into_iter()
                    .collect(),
            ),
        };
        let missing: Vec<PortMapping> = want
            .iter()
            .filter(|m| !have.contains(*m))
            .cloned()
            .collect();
        if !missing.is_empty() {
            self.kernel().add_port_mappings(&missing).await?;
            crate::kernel::note_write();
            have.extend(missing);
        }
        Ok(())
    }

    /// Removes mappings from the kernel (those it may hold).
    pub(super) async fn remove_port_mappings(
        &self,
        gone: &[PortMapping],
    ) -> Result<(), ReconcileError> {
        if gone.is_empty() {
            return Ok(());
        }
        let mut cache = self.inner.firewall.lock().await;
        self.kernel().del_port_mappings(gone).await?;
        crate::kernel::note_write();
        if let Some(c) = cache.as_mut() {
            for m in gone {
                c.remove(m);
            }
        }
        Ok(())
    }

    /// The firewall key, run every second: the structure and sysctls (a few cheap reads), and
    /// the map elements against the cache of what the kernel holds (one dump; above
    /// [`ELEMENT_CHECK_LIMIT`] elements only every tenth run). When the elements differ, the
    /// cache is unknown (start-up, resync) or the structure was rebuilt, every element is
    /// compared with the store and the difference written. Returns whether this key had
    /// converged before (so a repair counts as drift).
    /// The firewall key's reconcile, for the driver: it has no object and no status, and its
    /// first run is set-up, so only writes after the first count as drift repairs.
    pub(super) async fn reconcile_firewall(&self) -> Ran {
        use std::sync::atomic::Ordering::Relaxed;
        let seen_before = self.inner.firewall_runs.fetch_add(1, Relaxed) > 0;
        Ran {
            result: self.converge_firewall().await.map(|()| Action::AwaitChange),
            converged_before: seen_before,
        }
    }

    /// The structure, then the map elements against the cache (or against the store when
    /// they differ); see [`Controller::reconcile_firewall`]'s caller notes above.
    async fn converge_firewall(&self) -> Result<(), ReconcileError> {
        let tick = self
            .inner
            .firewall_runs
            .load(std::sync::atomic::Ordering::Relaxed);
        let rebuilt = self.sync_firewall_structure(Structure::Check).await?;
        let mut cache = self.inner.firewall.lock().await;
        if !rebuilt && let Some(known) = cache.as_ref() {
            if known.len() > ELEMENT_CHECK_LIMIT && !tick.is_multiple_of(10) {
                return Ok(());
            }
            let have: HashSet<PortMapping> = self
                .kernel()
                .list_port_mappings()
                .await?
                .into_iter()
                .collect();
            if have == *known {
                return Ok(());
            }
        }
        let mut want: HashSet<PortMapping> = HashSet::new();
        let mappings = self.store().port_mappings(None).await?;
        // Only endpoints that publish ports matter (none: no list of every endpoint).
        let endpoints = if mappings.is_empty() {
            Vec::new()
        } else {
            self.store().list_endpoints(None).await?
        };
        let live: HashMap<&str, &crate::store::EndpointRow> = endpoints
            .iter()
            .filter(|e| !e.deleting)
            .map(|e| (e.id.as_str(), e))
            .collect();
        for m in &mappings {
            if let Some(ep) = live.get(m.endpoint_id.as_str()) {
                want.extend(mappings_of(m, &ep.addresses));
            }
        }
        let have: HashSet<PortMapping> = self
            .kernel()
            .list_port_mappings()
            .await?
            .into_iter()
            .collect();
        let extra: Vec<PortMapping> = have.difference(&want).cloned().collect();
        let missing: Vec<PortMapping> = want.difference(&have).cloned().collect();
        if !extra.is_empty() {
            self.kernel().del_port_mappings(&extra).await?;
            crate::kernel::note_write();
        }
        if !missing.is_empty() {
            self.kernel().add_port_mappings(&missing).await?;
            crate::kernel::note_write();
        }
        if !extra.is_empty() || !missing.is_empty() {
            tracing::info!(
                removed = extra.len(),
                added = missing.len(),
                "repaired the port maps"
            );
        }
        *cache = Some(want);
        Ok(())
    }

    /// Forgets the cached map elements, so the next firewall reconcile compares them all.
    pub(super) async fn forget_port_cache(&self) {
        *self.inner.firewall.lock().await = None;
    }
}

#[cfg(test)]
mod tests {
    /// 02:.. (locally administered, unicast), from the id, different ids differ.
    #[test]
    fn bridge_macs_are_local_unicast_and_stable() {
        assert_eq!(super::bridge_mac("9930e50c5e1b2f4c"), "02:99:30:e5:0c:5e");
        assert_eq!(super::bridge_mac("ab"), "02:ab:00:00:00:00");
        assert_ne!(
            super::bridge_mac("9930e50c5e"),
            super::bridge_mac("9930e50c5f")
        );
    }
}
