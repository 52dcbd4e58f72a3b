//! `weft network inspect` with the CNI view: an endpoint whose namespace `weft-cni` adopted
//! (its object carries the `cni.weft.dev/container-id` label) shows the container id and the
//! interface the runtime asked for (`CNI_IFNAME`, the endpoint's interface), in the table as a
//! "CNI containers" block and in JSON as `cni: {containerId, ifname}` on the endpoint.

use std::collections::BTreeMap;

use anyhow::Result;
use serde_json::{Value, json};
use weft::v1::{GetNetworkRequest, ListNamespacesRequest, Network};

use super::docker;
use crate::cli::{
    Ctx,
    format::{Shown, title},
    table,
};

/// A network and the container ids of its CNI endpoints, by namespace name.
pub struct Inspected {
    /// The network as GetNetwork answered it.
    pub net: Network,
    /// Namespace name → container id, for the namespaces weft-cni adopted.
    pub containers: BTreeMap<String, String>,
}

/// GetNetwork, and the CNI namespaces (ListNamespaces by label) its endpoints live in.
pub async fn get(ctx: &Ctx, name: String) -> Result<Inspected> {
    let what = format!("inspect network {name:?}");
    let req = ctx.req(GetNetworkRequest { name });
    let net = ctx
        .call(
            &what,
            |c| async move { c.networks().get_network(req).await },
        )
        .await?
        .network
        .unwrap_or_default();
    let mut containers = BTreeMap::new();
    if !net.endpoints.is_empty() {
        let req = ctx.req(ListNamespacesRequest {
            label_selector: weft::cni::LABEL_CONTAINER.into(),
            ..Default::default()
        });
        let list = ctx
            .call(&what, |c| async move { c.list_all_namespaces(req).await })
            .await?;
        for ns in list.namespaces {
            if let Some(id) = ns.labels.get(weft::cni::LABEL_CONTAINER) {
                containers.insert(ns.name.clone(), id.clone());
            }
        }
    }
    Ok(Inspected { net, containers })
}

impl Inspected {
    /// Adds `cni: {containerId, ifname}` (in `key`'s case) to each CNI endpoint of `out`, the
    /// network as JSON or template data.
    fn with_cni(&self, mut out: Value, key: fn(&str) -> String) -> Value {
        if let Some(eps) = out.get_mut(key("endpoints")).and_then(Value::as_array_mut) {
            for (e, ep) in eps.iter_mut().zip(&self.net.endpoints) {
                if let Some(id) = self.containers.get(&ep.namespace) {
                    let mut cni = serde_json::Map::new();
                    cni.insert(key("containerId"), json!(id));
                    cni.insert(key("ifname"), json!(ep.interface_name));
                    e[key("cni")] = Value::Object(cni);
                }
            }
        }
        out
    }
}

impl Shown for Inspected {
    fn json(&self) -> Value {
        self.with_cni(self.net.json(), str::to_string)
    }
    fn data(&self) -> Value {
        self.with_cni(self.net.data(), title)
    }
    fn docker(&self) -> Option<Value> {
        Some(docker::network(&self.net, |ns| {
            self.containers.get(ns).cloned()
        }))
    }
}

/// The network's description, and a "CNI containers" table when it has CNI endpoints.
pub fn describe(v: &Inspected) -> String {
    let mut out = table::describe_network(&v.net);
    let rows: Vec<Vec<String>> = v
        .net
        .endpoints
        .iter()
        .filter_map(|ep| {
            let id = v.containers.get(&ep.namespace)?;
            Some(vec![
                ep.namespace.clone(),
                id.clone(),
                ep.interface_name.clone(),
            ])
        })
        .collect();
    if !rows.is_empty() {
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str("CNI containers:\n");
        for line in table::table(&["NAMESPACE", "CONTAINER", "INTERFACE"], &rows).lines() {
            out.push_str("  ");
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}
