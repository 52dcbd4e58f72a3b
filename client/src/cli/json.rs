//! Proto messages as JSON for `-o json`, written out by hand (prost types do not derive
//! `Serialize`, and the CLI should not reach into the proto crate to make them).
//!
//! The shape follows the proto: field names exactly as in the `.proto` files (snake_case),
//! every field present even when it holds its default (so scripts need no `// empty`), enums as
//! their proto names (`"PHASE_READY"`), timestamps as RFC 3339 strings, unset messages and
//! unset `optional` fields as `null`, 64-bit integers as JSON numbers, and the `oneof kind` of a
//! link as the one member that is set (`"veth": {...}` or `"bridge": {}`). Labels are sorted by
//! key and objects are printed with sorted keys, so the output is byte-for-byte deterministic.
//!
//! Each function takes one message and returns its [`Value`]; composite ones call the others
//! (a network's endpoints, a link's routes), so a field added to the proto is added in exactly
//! one place here and shows up everywhere that message is printed: `inspect`, `ls`, the object
//! of a write, a watch event's `object` and a dry run's object.

use std::collections::HashMap;

use serde_json::{Map, Value, json};
use weft::v1::{
    Endpoint, EventType, GetSystemInfoResponse, Link, Namespace, Network, Phase, PlannedChange,
    PublishedPort, Route, Status, Subnet, SubnetUsage, VethPeer, link::Kind,
};

/// Renders a value as the CLI prints it: pretty, with a trailing newline.
pub fn render(value: &Value) -> String {
    let mut s = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into());
    s.push('\n');
    s
}

/// Labels as a JSON object, keys sorted (a `HashMap` has no order of its own).
fn labels(labels: &HashMap<String, String>) -> Value {
    let mut pairs: Vec<_> = labels.iter().collect();
    pairs.sort();
    let map: Map<String, Value> = pairs
        .into_iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    Value::Object(map)
}

/// A timestamp as RFC 3339 in UTC (`2023-11-14T22:13:20Z`), `null` when unset.
fn timestamp(ts: Option<&prost_types::Timestamp>) -> Value {
    ts.map_or(Value::Null, |t| Value::String(t.to_string()))
}

/// The proto name of a phase (`"PHASE_READY"`), or the bare number for one this CLI does not
/// know.
pub fn phase(value: i32) -> Value {
    Phase::try_from(value).map_or_else(|_| json!(value), |p| json!(p.as_str_name()))
}

/// A watch event's type without its prefix (`"ADDED"`, `"MODIFIED"`, `"DELETED"`), or the bare
/// number for one this CLI does not know.
pub fn event_type(value: i32) -> Value {
    event_type_name(value).map_or_else(|| json!(value), |n| json!(n))
}

/// The word for a watch event's type (`ADDED`...), if this CLI knows it.
pub fn event_type_name(value: i32) -> Option<&'static str> {
    EventType::try_from(value)
        .ok()
        .and_then(|t| t.as_str_name().strip_prefix("EVENT_TYPE_"))
}

/// A `PlannedChange` of a dry run.
pub fn planned_change(c: &PlannedChange) -> Value {
    json!({ "action": c.action, "kind": c.kind, "target": c.target, "detail": c.detail })
}

/// `GetSystemInfoResponse`: weftd's version, settings and counters.
pub fn system_info(i: &GetSystemInfoResponse) -> Value {
    json!({
        "version": i.version,
        "start_time": timestamp(i.start_time.as_ref()),
        "kernel_writes": i.kernel_writes,
        "reconciles": i.reconciles,
        "reconcile_failures": i.reconcile_failures,
        "drift_repairs": i.drift_repairs,
        "queue_depth": i.queue_depth,
        "host_netns": i.host_netns,
        "netns_dir": i.netns_dir,
        "database": i.database,
        "orphans_removed": i.orphans_removed,
        "dns_queries": i.dns_queries,
        "dns_answers": i.dns_answers,
        "dns_forwards": i.dns_forwards,
        "git_commit": i.git_commit,
    })
}

/// A `Status`, or `null` when unset.
pub fn status(status: Option<&Status>) -> Value {
    status.map_or(Value::Null, |s| {
        json!({
            "phase": phase(s.phase),
            "observed_generation": s.observed_generation,
            "message": s.message,
        })
    })
}

/// A `Route`.
pub fn route(r: &Route) -> Value {
    json!({ "destination": r.destination, "gateway": r.gateway, "metric": r.metric })
}

/// A `Namespace`. `path` is what was asked for (empty, or the file an adopted namespace came
/// from); `status_path` is where weftd observed it, which is what `ip netns exec` or a
/// container runtime should be given.
pub fn namespace(ns: &Namespace) -> Value {
    json!({
        "name": ns.name,
        "labels": labels(&ns.labels),
        "path": ns.path,
        "generation": ns.generation,
        "status": status(ns.status.as_ref()),
        "status_path": ns.status_path,
        "uid": ns.uid,
        "create_time": timestamp(ns.create_time.as_ref()),
    })
}

/// A `VethPeer`.
pub fn veth_peer(p: &VethPeer) -> Value {
    json!({
        "name": p.name,
        "namespace": p.namespace,
        "mtu": p.mtu,
        "mac_address": p.mac_address,
        "up": p.up,
        "master": p.master,
        "addresses": p.addresses,
        "routes": p.routes.iter().map(route).collect::<Vec<_>>(),
        "status_index": p.status_index,
        "status_mac_address": p.status_mac_address,
    })
}

/// A `Link`; its `kind` appears as `"veth"` or `"bridge"`, whichever is set.
pub fn link(l: &Link) -> Value {
    let mut v = json!({
        "name": l.name,
        "namespace": l.namespace,
        "labels": labels(&l.labels),
        "mtu": l.mtu,
        "mac_address": l.mac_address,
        "up": l.up,
        "master": l.master,
        "addresses": l.addresses,
        "routes": l.routes.iter().map(route).collect::<Vec<_>>(),
        "generation": l.generation,
        "status": status(l.status.as_ref()),
        "uid": l.uid,
        "create_time": timestamp(l.create_time.as_ref()),
        "status_index": l.status_index,
        "status_mac_address": l.status_mac_address,
    });
    // The kind is one key, `veth` or `bridge`, as in the proto's oneof. `json!` of an object
    // literal is always an object, so the `if let` always matches.
    if let Some(obj) = v.as_object_mut() {
        match &l.kind {
            Some(Kind::Veth(veth)) => {
                let peer = veth.peer.as_ref().map_or(Value::Null, veth_peer);
                obj.insert("veth".into(), json!({ "peer": peer }));
            }
            Some(Kind::Bridge(_)) => {
                obj.insert("bridge".into(), json!({}));
            }
            None => {}
        }
    }
    v
}

/// A `Subnet`.
pub fn subnet(s: &Subnet) -> Value {
    json!({
        "subnet": s.subnet,
        "gateway": s.gateway,
        "ip_range": s.ip_range,
        "reserved": s.reserved,
    })
}

/// A `SubnetUsage`.
pub fn usage(u: &SubnetUsage) -> Value {
    json!({ "subnet": u.subnet, "leased": u.leased, "capacity": u.capacity })
}

/// A `PublishedPort`.
pub fn published_port(p: &PublishedPort) -> Value {
    json!({
        "host_ip": p.host_ip,
        "host_port": p.host_port,
        "host_port_end": p.host_port_end,
        "container_port": p.container_port,
        "protocol": p.protocol,
    })
}

/// An `Endpoint`: a namespace's attachment to a network, with the addresses it leased, the
/// gateways of its default routes, its aliases and its published ports.
pub fn endpoint(e: &Endpoint) -> Value {
    json!({
        "network": e.network,
        "namespace": e.namespace,
        "interface_name": e.interface_name,
        "ipv4_address": e.ipv4_address,
        "ipv6_address": e.ipv6_address,
        "mac_address": e.mac_address,
        "ipv4_gateway": e.ipv4_gateway,
        "ipv6_gateway": e.ipv6_gateway,
        "dns_servers": e.dns_servers,
        "aliases": e.aliases,
        "published_ports": e.published_ports.iter().map(published_port).collect::<Vec<_>>(),
        "status": status(e.status.as_ref()),
    })
}

/// A `Network`, with its endpoints and the address use of each subnet (`usage`) inline, so
/// that one `inspect -o json` answers "who is on this network and how full is it".
/// `enable_icc`, `masquerade` and `dns` are `null` when unset: weftd's default (on) applies.
/// `dns_servers` are the resolver's addresses (the gateways) when the network has DNS.
pub fn network(n: &Network) -> Value {
    json!({
        "name": n.name,
        "labels": labels(&n.labels),
        "bridge_name": n.bridge_name,
        "subnets": n.subnets.iter().map(subnet).collect::<Vec<_>>(),
        "internal": n.internal,
        "enable_icc": n.enable_icc,
        "masquerade": n.masquerade,
        "mtu": n.mtu,
        "generation": n.generation,
        "status": status(n.status.as_ref()),
        "uid": n.uid,
        "create_time": timestamp(n.create_time.as_ref()),
        "endpoints": n.endpoints.iter().map(endpoint).collect::<Vec<_>>(),
        "usage": n.usage.iter().map(usage).collect::<Vec<_>>(),
        "enable_ipv6": n.enable_ipv6,
        "default": n.default,
        "dns": n.dns,
        "dns_servers": n.dns_servers,
    })
}

#[cfg(test)]
mod tests {
    use weft::v1::{Bridge, Veth};

    use super::*;

    /// The whole JSON of a namespace, to the byte: proto names, sorted keys and labels, empty
    /// fields present, the phase by name, the timestamp in RFC 3339.
    #[test]
    fn namespace_has_every_field_with_proto_names() {
        let ns = Namespace {
            name: "ns1".into(),
            labels: HashMap::from([("b".into(), "2".into()), ("a".into(), "1".into())]),
            generation: 3,
            status: Some(Status {
                phase: Phase::Ready as i32,
                observed_generation: 3,
                message: String::new(),
            }),
            status_path: "/run/netns/ns1".into(),
            create_time: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            ..Default::default()
        };
        let v = namespace(&ns);
        assert_eq!(
            render(&v),
            r#"{
  "create_time": "2023-11-14T22:13:20Z",
  "generation": 3,
  "labels": {
    "a": "1",
    "b": "2"
  },
  "name": "ns1",
  "path": "",
  "status": {
    "message": "",
    "observed_generation": 3,
    "phase": "PHASE_READY"
  },
  "status_path": "/run/netns/ns1",
  "uid": ""
}
"#
        );
    }

    /// The `oneof kind` of a link is one key, `veth` or `bridge`, never both and never a
    /// wrapper object; an unset status is `null`.
    #[test]
    fn link_kind_is_the_member_that_is_set() {
        let veth = Link {
            name: "v0".into(),
            kind: Some(Kind::Veth(Veth {
                peer: Some(VethPeer {
                    name: "v1".into(),
                    namespace: "ns1".into(),
                    ..Default::default()
                }),
            })),
            ..Default::default()
        };
        let v = link(&veth);
        assert_eq!(v["veth"]["peer"]["name"], "v1");
        assert_eq!(v["veth"]["peer"]["namespace"], "ns1");
        assert!(v.get("bridge").is_none());
        assert_eq!(v["status"], Value::Null);

        let br = Link {
            name: "br0".into(),
            kind: Some(Kind::Bridge(Bridge {})),
            ..Default::default()
        };
        let v = link(&br);
        assert_eq!(v["bridge"], json!({}));
        assert!(v.get("veth").is_none());
    }

    /// Watch lines say `ADDED`, not `EVENT_TYPE_ADDED`; a type from a newer weftd is printed
    /// as its number rather than dropped.
    #[test]
    fn event_types_drop_their_prefix() {
        assert_eq!(event_type(EventType::Added as i32), json!("ADDED"));
        assert_eq!(event_type(EventType::Modified as i32), json!("MODIFIED"));
        assert_eq!(event_type(EventType::Deleted as i32), json!("DELETED"));
        assert_eq!(event_type(42), json!(42));
    }

    /// An `optional bool` of the proto keeps the difference between unset (`null`, weftd's
    /// default applies) and `false`.
    #[test]
    fn unknown_phase_is_a_number_and_unset_optionals_are_null() {
        assert_eq!(phase(42), json!(42));
        let n = Network {
            enable_icc: Some(false),
            ..Default::default()
        };
        let v = network(&n);
        assert_eq!(v["enable_icc"], json!(false));
        assert_eq!(v["masquerade"], Value::Null);
        assert_eq!(v["dns"], Value::Null);
        assert_eq!(v["dns_servers"], json!([]));
    }
}
