//! `weft network inspect --format docker`: a network in the shape of `docker network inspect`
//! (moby's `NetworkResource`), so scripts written for Docker (`jq '.[0].IPAM.Config[0].Subnet'`,
//! `.Containers[].IPv4Address`) work unchanged.
//!
//! How weft's fields map onto Docker's:
//!
//! - `Id` is the network's uid; `Created` its create time (RFC 3339); `Scope` is `local`,
//!   `Driver` `bridge`; `EnableIPv4` (Docker 28's field) whether it has an IPv4 subnet;
//!   `Attachable`, `Ingress` and `ConfigOnly` are false, `ConfigFrom` is
//!   `{"Network": ""}`, as on any local bridge network.
//! - `IPAM`: `Driver` `default`, `Options` `{}`, one `Config` entry per subnet with `Subnet`,
//!   and `Gateway` and `IPRange` when set (Docker leaves empty ones out too).
//! - `Containers` is keyed by the CNI container id when `weft-cni` made the namespace, else by
//!   the namespace's name; `Name` is the namespace, `EndpointID` the host end of its veth,
//!   addresses in CIDR form (`""` when the endpoint has none, as Docker prints).
//! - `Options` holds the `com.docker.network.*` keys `--opt` takes, with the values in force;
//!   `Labels` the labels.

use serde_json::{Map, Value, json};
use weft::v1::Network;

use super::args::opt;

/// The Docker shape of `net`; `container` gives the CNI container id of a namespace, if any.
pub fn network(net: &Network, container: impl Fn(&str) -> Option<String>) -> Value {
    let config: Vec<Value> = net
        .subnets
        .iter()
        .map(|s| {
            let mut c = Map::new();
            c.insert("Subnet".into(), json!(s.subnet));
            if !s.ip_range.is_empty() {
                c.insert("IPRange".into(), json!(s.ip_range));
            }
            if !s.gateway.is_empty() {
                c.insert("Gateway".into(), json!(s.gateway));
            }
            Value::Object(c)
        })
        .collect();
    let containers: Map<String, Value> = net
        .endpoints
        .iter()
        .map(|e| {
            let key = container(&e.namespace).unwrap_or_else(|| e.namespace.clone());
            let v = json!({
                "Name": e.namespace,
                "EndpointID": e.host_interface_name,
                "MacAddress": e.mac_address,
                "IPv4Address": e.ipv4_address,
                "IPv6Address": e.ipv6_address,
            });
            (key, v)
        })
        .collect();
    let on = |v: Option<bool>| v.unwrap_or(true).to_string();
    let mut options = Map::new();
    if !net.bridge_name.is_empty() {
        options.insert(opt::BRIDGE_NAME.into(), json!(net.bridge_name));
    }
    options.insert(opt::ENABLE_ICC.into(), json!(on(net.enable_icc)));
    options.insert(opt::MASQUERADE.into(), json!(on(net.masquerade)));
    if net.mtu != 0 {
        options.insert(opt::MTU.into(), json!(net.mtu.to_string()));
    }
    let labels: Map<String, Value> = net
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    json!({
        "Name": net.name,
        "Id": net.uid,
        "Created": net.create_time.as_ref().map(ToString::to_string).unwrap_or_default(),
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv4": net.subnets.iter().any(|s| s.subnet.contains('.')),
        "EnableIPv6": net.enable_ipv6,
        "IPAM": {"Driver": "default", "Options": {}, "Config": config},
        "Internal": net.internal,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": containers,
        "Options": options,
        "Labels": labels,
    })
}

#[cfg(test)]
mod tests {
    use weft::v1::{Endpoint, Subnet};

    use super::*;

    /// Docker's field names and types, a container keyed by its CNI id when it has one.
    #[test]
    fn docker_shape() {
        let net = Network {
            name: "n1".into(),
            uid: "abc".into(),
            bridge_name: "br-n1".into(),
            mtu: 1400,
            enable_icc: Some(false),
            subnets: vec![Subnet {
                subnet: "10.1.0.0/24".into(),
                gateway: "10.1.0.1".into(),
                ..Default::default()
            }],
            endpoints: vec![Endpoint {
                namespace: "ns1".into(),
                ipv4_address: "10.1.0.2/24".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let v = network(&net, |ns| (ns == "ns1").then(|| "c0ffee".to_string()));
        assert_eq!(v["IPAM"]["Config"][0]["Subnet"], "10.1.0.0/24");
        assert_eq!(v["IPAM"]["Config"][0]["Gateway"], "10.1.0.1");
        assert!(v["IPAM"]["Config"][0].get("IPRange").is_none());
        assert_eq!(v["Containers"]["c0ffee"]["IPv4Address"], "10.1.0.2/24");
        assert_eq!(v["Containers"]["c0ffee"]["Name"], "ns1");
        assert_eq!(v["Options"][opt::ENABLE_ICC], "false");
        assert_eq!(v["Options"][opt::MASQUERADE], "true");
        assert_eq!(v["Options"][opt::MTU], "1400");
        assert_eq!(v["EnableIPv6"], false);
        assert_eq!(v["EnableIPv4"], true);
        assert_eq!(v["Labels"], json!({}));
    }
}
