//! Planning for `dry_run` requests: the same reconcile code as a real call, run against a
//! [`DryRun`] kernel (reads go to the real kernel, writes become planned changes) and the
//! object the store would have made (its transaction rolled back). Nothing is written.
//!
//! What is not a kernel write of the converge code (leases, the firewall's rules as a whole,
//! the forwarding sysctls) is added to the same plan here, in the order a real call makes it.

use std::collections::HashMap;

use super::{
    Controller, ReconcileError,
    link::where_if,
    network::{bridge_spec, endpoint_spec, mappings_of},
};
use crate::{
    kernel::{DryRun, NetnsOps, NsRef},
    model::{LinkSpec, PlannedChange},
    store::{EndpointRow, NamespaceRow, NetworkRow},
};

impl Controller {
    /// A dry-run kernel over the real one, naming the adopted namespaces among `namespaces`
    /// (the ones the plan touches, by weft's names; "" is the host) as weft does, so planned
    /// targets read like the API's. Each is one look-up of the store's cached place: a plan
    /// costs the same with 10 namespaces as with 10,000 (listing them all cost ~20 us each).
    async fn dry_kernel(&self, namespaces: &[&str]) -> Result<DryRun, ReconcileError> {
        let mut adopted = HashMap::new();
        for &name in namespaces {
            if name.is_empty() {
                continue;
            }
            if let Some(path) = self
                .store()
                .namespace_place(name)
                .await?
                .and_then(|p| p.adopted_path)
            {
                adopted.insert(path, name.to_string());
            }
        }
        Ok(DryRun::new(self.kernel_arc(), adopted))
    }

    /// [`Controller::dry_kernel`] for the namespaces of `spec`'s ends.
    async fn dry_kernel_for(&self, spec: &LinkSpec) -> Result<DryRun, ReconcileError> {
        let names: Vec<&str> = spec.ends().iter().map(|e| e.namespace.as_str()).collect();
        self.dry_kernel(&names).await
    }

    /// What creating (or converging) namespace `row` would change.
    pub async fn plan_namespace(&self, row: &NamespaceRow) -> Vec<PlannedChange> {
        let plan = DryRun::new(self.kernel_arc(), HashMap::new());
        if row.spec.adopted_path.is_none() {
            let path = self.kernel().netns_dir().join(&row.spec.name);
            if !self.kernel().is_netns(&path) {
                plan.record(
                    "create",
                    "namespace",
                    path.display().to_string(),
                    "bind mount, like ip netns add",
                );
                plan.record(
                    "set",
                    "link",
                    where_if("lo", &row.spec.name),
                    "up, ownership mark",
                );
            }
        }
        plan.changes()
    }

    /// What deleting namespace `row` would change.
    pub fn plan_namespace_removal(&self, row: &NamespaceRow) -> Vec<PlannedChange> {
        let plan = DryRun::new(self.kernel_arc(), HashMap::new());
        match &row.spec.adopted_path {
            None => {
                let path = self.kernel().netns_dir().join(&row.spec.name);
                plan.record(
                    "delete",
                    "namespace",
                    path.display().to_string(),
                    "unmount and remove",
                );
            }
            Some(p) => {
                plan.record(
                    "remove",
                    "namespace",
                    p.display().to_string(),
                    "forgotten; an adopted namespace is never deleted",
                );
            }
        }
        plan.changes()
    }

    /// What making link `spec` (object `id`) real would change.
    pub async fn plan_link(
        &self,
        id: &str,
        spec: &LinkSpec,
    ) -> Result<Vec<PlannedChange>, ReconcileError> {
        let plan = self.dry_kernel_for(spec).await?;
        self.converge_link(&plan, id, spec).await?;
        Ok(plan.changes())
    }

    /// What removing link `spec` (object `id`) would change.
    pub async fn plan_link_removal(
        &self,
        id: &str,
        spec: &LinkSpec,
    ) -> Result<Vec<PlannedChange>, ReconcileError> {
        let plan = self.dry_kernel_for(spec).await?;
        self.remove_link(&plan, id, spec).await?;
        Ok(plan.changes())
    }

    /// What creating network `row` would change.
    pub async fn plan_network(
        &self,
        row: &NetworkRow,
    ) -> Result<Vec<PlannedChange>, ReconcileError> {
        let plan = self.dry_kernel(&[]).await?;
        self.converge_link(&plan, &row.id, &bridge_spec(&row.id, &row.spec))
            .await?;
        // The same sysctl the real reconcile sets, planned through the dry kernel.
        let localnet = format!("net/ipv4/conf/{}/route_localnet", row.spec.bridge_name);
        plan.ensure_sysctl(&NsRef::Host, &localnet, "1").await?;
        let nets: Vec<_> = row
            .spec
            .subnets
            .iter()
            .map(|s| s.subnet.to_string())
            .collect();
        plan.record(
            "set",
            "firewall",
            "tables inet weft, bridge weft",
            format!(
                "rules for bridge {} ({}; internal {}, icc {}, masquerade {})",
                row.spec.bridge_name,
                nets.join(", "),
                row.spec.internal,
                row.spec.icc,
                row.spec.masquerade
            ),
        );
        plan.record(
            "set",
            "sysctl",
            "net.ipv4.ip_forward",
            "1 in the host namespace, if not already",
        );
        if row.spec.v6().is_some() {
            plan.record(
                "set",
                "sysctl",
                "net.ipv6.conf.all.forwarding",
                "1 in the host namespace, if not already",
            );
        }
        Ok(plan.changes())
    }

    /// What deleting network `row` would change.
    pub async fn plan_network_removal(
        &self,
        row: &NetworkRow,
    ) -> Result<Vec<PlannedChange>, ReconcileError> {
        let plan = self.dry_kernel(&[]).await?;
        plan.record(
            "set",
            "firewall",
            "tables inet weft, bridge weft",
            format!("remove the rules for bridge {}", row.spec.bridge_name),
        );
        self.remove_link(&plan, &row.id, &bridge_spec(&row.id, &row.spec))
            .await?;
        Ok(plan.changes())
    }

    /// What connecting endpoint `ep` (as the store would make it) would change.
    pub async fn plan_endpoint(
        &self,
        ep: &EndpointRow,
        net: &NetworkRow,
    ) -> Result<Vec<PlannedChange>, ReconcileError> {
        let plan = self.dry_kernel(&[&ep.namespace]).await?;
        for a in &ep.addresses {
            plan.record(
                "add",
                "lease",
                format!("{} on network {:?}", a.addr(), net.spec.name),
                format!("for {}", where_if(&ep.spec.ifname, &ep.namespace)),
            );
        }
        self.converge_link(&plan, &ep.id, &endpoint_spec(&net.spec, ep))
            .await?;
        for p in &ep.spec.ports {
            for (h, c) in p.pairs() {
                let m = crate::store::StoredMapping {
                    endpoint_id: ep.id.clone(),
                    host_ip: p.host_ip,
                    protocol: p.protocol,
                    host_port: h,
                    container_port: c,
                };
                for pm in mappings_of(&m, &ep.addresses) {
                    plan.record(
                        "add",
                        "port-mapping",
                        describe_mapping(&pm),
                        "DNAT map element",
                    );
                }
            }
        }
        Ok(plan.changes())
    }

    /// What disconnecting endpoint `ep` would change: DNAT first, then the veth, then leases.
    pub async fn plan_endpoint_removal(
        &self,
        ep: &EndpointRow,
        net: &NetworkRow,
    ) -> Result<Vec<PlannedChange>, ReconcileError> {
        let plan = self.dry_kernel(&[&ep.namespace]).await?;
        for m in self.store().port_mappings(Some(&ep.id)).await? {
            for pm in mappings_of(&m, &ep.addresses) {
                plan.record(
                    "remove",
                    "port-mapping",
                    describe_mapping(&pm),
                    "DNAT map element",
                );
            }
        }
        self.remove_link(&plan, &ep.id, &endpoint_spec(&net.spec, ep))
            .await?;
        for a in &ep.addresses {
            plan.record(
                "remove",
                "lease",
                format!("{} on network {:?}", a.addr(), net.spec.name),
                "",
            );
        }
        Ok(plan.changes())
    }
}

/// A port mapping as planned changes show it: `HOST:PORT/PROTO -> DEST:PORT`, `*` for any
/// host address.
fn describe_mapping(m: &crate::kernel::firewall::PortMapping) -> String {
    let host = m
        .host_ip
        .map(|h| h.to_string())
        .unwrap_or_else(|| "*".into());
    let proto = format!("{:?}", m.proto).to_lowercase();
    format!(
        "{host}:{}/{proto} -> {}:{}",
        m.host_port, m.dest, m.dest_port
    )
}
