//! Links to and from the wire, including the UpdateLink field mask: which end a request
//! names, which paths it changes (the mask, or every field it sets when there is none), and
//! what may not change (a name, a namespace, the kind).
//!
//! A Link message describes a link from one end: its top-level fields are that end, and a
//! veth's other end sits in `veth.peer`. An UpdateLink may name either end; the service says
//! which (`named_peer`), and [`apply_update`] then applies the top-level fields to the named
//! end and `veth.peer.*` to the other. The answer always describes a link from its first end.
//!
//! Every end field is a plain proto3 scalar, so absence is its default: "" namespace is the
//! host, MTU 0 keeps the kernel's (a peer's 0 takes the first end's), "" MAC lets the
//! kernel pick, "" master is no bridge, `up` false is down. Of the message fields, `kind`
//! must be set on create (exactly one of `veth`, `bridge`), and a veth needs `veth.peer`.
//!
//! Errors name the field by its path from the request's root, with indexes into repeated
//! fields: `link.mac_address`, `link.addresses[1]`, `link.veth.peer.routes[0].gateway`. The
//! field mask's own problems (an unknown path, a name or namespace that cannot change, a
//! `veth.peer.*` path without a peer in the body) are reported as `update_mask`, and a body
//! whose kind does not match the stored link's as `link.bridge` or `link.veth`.
//!
//! Without a field mask an update changes only what the body sets to a non-default value,
//! so it can never clear a list or turn an end down; a mask (or `*`, every path) can.

use weft_proto::v1 as pb;

use super::{labels_in, labels_out, status_out, timestamp};
use crate::{
    model::{
        EndSpec, Invalid, LinkKind, LinkSpec, RouteSpec,
        link::{parse_cidr, parse_mac},
    },
    store::{EndObserved, LinkRow},
};

/// Routes from the wire, each parsed and named by its index (`link.routes[2]`, then
/// `.destination` or `.gateway`). The destination is "default" or a CIDR; an empty gateway
/// is an on-link route (refused for a default route); metric 0 is the kernel's default.
fn routes_in(field: &str, routes: &[pb::Route]) -> Result<Vec<RouteSpec>, Invalid> {
    routes
        .iter()
        .enumerate()
        .map(|(i, r)| {
            RouteSpec::parse(
                &format!("{field}[{i}]"),
                &r.destination,
                &r.gateway,
                r.metric,
            )
        })
        .collect()
}

/// Routes to the wire; a route without gateway has an empty one, as it came in.
fn routes_out(routes: &[RouteSpec]) -> Vec<pb::Route> {
    routes
        .iter()
        .map(|r| pb::Route {
            destination: r.destination_string(),
            gateway: r.gateway.map(|g| g.to_string()).unwrap_or_default(),
            metric: r.metric,
        })
        .collect()
}

/// Addresses in CIDR notation from the wire, each named by its index. A bare address
/// without a prefix length is refused, not guessed.
fn addresses_in(field: &str, a: &[String]) -> Result<Vec<ipnet::IpNet>, Invalid> {
    a.iter()
        .enumerate()
        .map(|(i, s)| parse_cidr(&format!("{field}[{i}]"), s))
        .collect()
}

/// An optional MAC from the wire: "" is none.
fn mac_in(field: &str, m: &str) -> Result<Option<String>, Invalid> {
    if m.is_empty() {
        Ok(None)
    } else {
        parse_mac(field, m).map(Some)
    }
}

/// An optional name from the wire: "" is none.
fn opt(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// The fields of one end, as they arrive (top level of a Link, or a VethPeer).
/// A veth's two ends arrive in two message types with the same fields; this is their common
/// view, so one piece of code converts and updates either end.
struct EndFields<'a> {
    /// Interface name.
    name: &'a str,
    /// Namespace name ("" is the host).
    namespace: &'a str,
    /// MTU (0 keeps the kernel's default).
    mtu: u32,
    /// MAC ("" lets the kernel choose).
    mac: &'a str,
    /// Administratively up.
    up: bool,
    /// Bridge to enslave the end to ("" is none).
    master: &'a str,
    /// Addresses in CIDR notation.
    addresses: &'a [String],
    /// Routes through the end.
    routes: &'a [pb::Route],
}

/// Reading one end from either message, and writing it into a spec.
impl<'a> EndFields<'a> {
    /// The top-level end of a Link message.
    fn of_link(l: &'a pb::Link) -> Self {
        Self {
            name: &l.name,
            namespace: &l.namespace,
            mtu: l.mtu,
            mac: &l.mac_address,
            up: l.up,
            master: &l.master,
            addresses: &l.addresses,
            routes: &l.routes,
        }
    }

    /// The peer end of a veth.
    fn of_peer(p: &'a pb::VethPeer) -> Self {
        Self {
            name: &p.name,
            namespace: &p.namespace,
            mtu: p.mtu,
            mac: &p.mac_address,
            up: p.up,
            master: &p.master,
            addresses: &p.addresses,
            routes: &p.routes,
        }
    }

    /// The end as a model spec; `field` prefixes the names in errors (`link.veth.peer.`).
    fn to_spec(&self, field: &str) -> Result<EndSpec, Invalid> {
        Ok(EndSpec {
            name: self.name.to_string(),
            namespace: self.namespace.to_string(),
            mtu: self.mtu,
            mac: mac_in(&format!("{field}mac_address"), self.mac)?,
            up: self.up,
            master: opt(self.master),
            // Links are plain bridge ports; hairpin is for endpoints, and so is IPv6 off.
            hairpin: false,
            ipv6_off: false,
            nodad: false,
            addresses: addresses_in(&format!("{field}addresses"), self.addresses)?,
            routes: routes_in(&format!("{field}routes"), self.routes)?,
        })
    }

    /// Sets `field` (a mask path relative to the end) of `end` from these values. `prefix` is
    /// where the end sits in the request (`link.` or `link.veth.peer.`), for error fields and
    /// messages; unknown and immutable paths are refused as `update_mask`.
    fn apply(&self, prefix: &str, field: &str, end: &mut EndSpec) -> Result<(), Invalid> {
        match field {
            "mtu" => end.mtu = self.mtu,
            "mac_address" => end.mac = mac_in(&format!("{prefix}mac_address"), self.mac)?,
            "up" => end.up = self.up,
            "master" => end.master = opt(self.master),
            "addresses" => {
                end.addresses = addresses_in(&format!("{prefix}addresses"), self.addresses)?
            }
            "routes" => end.routes = routes_in(&format!("{prefix}routes"), self.routes)?,
            "name" | "namespace" => {
                return Err(Invalid::new(
                    "update_mask",
                    format!("{prefix}{field} cannot change; delete the link and create it anew"),
                ));
            }
            other => {
                return Err(Invalid::new(
                    "update_mask",
                    format!(
                        "unknown path {prefix}{other:?}; use mtu, mac_address, up, master, addresses, routes, labels or veth.peer.<field>"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The paths whose values are set to something other than the default: what an update
    /// without a mask changes. `up` counts only when true, since false is also "not set".
    fn populated(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.mtu != 0 {
            v.push("mtu");
        }
        if !self.mac.is_empty() {
            v.push("mac_address");
        }
        if self.up {
            v.push("up");
        }
        if !self.master.is_empty() {
            v.push("master");
        }
        if !self.addresses.is_empty() {
            v.push("addresses");
        }
        if !self.routes.is_empty() {
            v.push("routes");
        }
        v
    }
}

/// The mask paths that name a field of one end: what `*` expands to, per end.
const END_PATHS: [&str; 6] = ["mtu", "mac_address", "up", "master", "addresses", "routes"];

/// A CreateLink body to its spec (validated separately with [`LinkSpec::validate`]).
/// Fails on a malformed MAC, address or route, a missing kind or a veth without its peer.
pub fn link_in(l: &pb::Link) -> Result<LinkSpec, Invalid> {
    let end = EndFields::of_link(l).to_spec("link.")?;
    let kind = match &l.kind {
        Some(pb::link::Kind::Veth(v)) => {
            let peer = v.peer.as_ref().ok_or_else(|| {
                Invalid::new(
                    "link.veth.peer",
                    "a veth needs its peer: set veth.peer.name",
                )
            })?;
            LinkKind::Veth {
                peer: EndFields::of_peer(peer).to_spec("link.veth.peer.")?,
            }
        }
        Some(pb::link::Kind::Bridge(_)) => LinkKind::Bridge,
        None => {
            return Err(Invalid::new(
                "link",
                "set exactly one kind: \"veth\": {\"peer\": {...}} or \"bridge\": {}",
            ));
        }
    };
    Ok(LinkSpec {
        labels: labels_in(&l.labels),
        end,
        kind,
    })
}

/// Applies an UpdateLink request to the stored spec. `named_peer` says the request named the
/// peer end: then the top-level fields apply to the peer and `veth.peer.*` to the first end.
pub fn apply_update(
    current: &LinkSpec,
    body: &pb::Link,
    mask: &[String],
    named_peer: bool,
) -> Result<LinkSpec, Invalid> {
    let mut spec = current.clone();
    let top = EndFields::of_link(body);
    let other = match &body.kind {
        Some(pb::link::Kind::Veth(v)) => v.peer.as_ref().map(EndFields::of_peer),
        Some(pb::link::Kind::Bridge(_)) if matches!(spec.kind, LinkKind::Veth { .. }) => {
            return Err(Invalid::new(
                "link.bridge",
                "this link is a veth; its kind cannot change",
            ));
        }
        Some(pb::link::Kind::Bridge(_)) | None => None,
    };
    if other.is_some() && !matches!(spec.kind, LinkKind::Veth { .. }) {
        return Err(Invalid::new(
            "link.veth",
            "this link is a bridge; it has no peer",
        ));
    }
    let mut paths: Vec<String> = if mask.is_empty() {
        let mut p: Vec<String> = top.populated().into_iter().map(String::from).collect();
        if !body.labels.is_empty() {
            p.push("labels".into());
        }
        if let Some(o) = &other {
            p.extend(o.populated().into_iter().map(|f| format!("veth.peer.{f}")));
        }
        p
    } else {
        mask.to_vec()
    };
    if paths.iter().any(|p| p == "*") {
        paths = END_PATHS
            .iter()
            .map(|s| s.to_string())
            .chain(["labels".to_string()])
            .collect();
        if other.is_some() {
            paths.extend(END_PATHS.iter().map(|f| format!("veth.peer.{f}")));
        }
    }
    let (named, far) = if named_peer { (1, 0) } else { (0, 1) };
    for path in &paths {
        if path == "labels" {
            spec.labels = labels_in(&body.labels);
        } else if let Some(f) = path.strip_prefix("veth.peer.") {
            let o = other.as_ref().ok_or_else(|| {
                Invalid::new(
                    "update_mask",
                    format!("{path} is in the mask but link.veth.peer is not set"),
                )
            })?;
            let mut ends = spec.ends_mut();
            o.apply("link.veth.peer.", f, ends[far])?;
        } else {
            top.apply("link.", path, spec.ends_mut()[named])?;
        }
    }
    Ok(spec)
}

/// One end as the fields of a Link message (the caller fills in the rest); unset optional
/// values go out as "" so the answer reads as the request did.
fn end_out(e: &EndSpec) -> pb::Link {
    pb::Link {
        name: e.name.clone(),
        namespace: e.namespace.clone(),
        mtu: e.mtu,
        mac_address: e.mac.clone().unwrap_or_default(),
        up: e.up,
        master: e.master.clone().unwrap_or_default(),
        addresses: e.addresses.iter().map(|a| a.to_string()).collect(),
        routes: routes_out(&e.routes),
        ..Default::default()
    }
}

/// A stored link to proto, described from its first end. The `status_index` and
/// `status_mac_address` of each end are what the last reconcile observed (0 and "" before
/// the first); a bridge has no peer.
pub fn link_out(r: &LinkRow) -> pb::Link {
    let obs = |i: usize| r.observed.ends.get(i).cloned().unwrap_or_default();
    let EndObserved { index, mac } = obs(0);
    let mut l = end_out(&r.spec.end);
    l.labels = labels_out(&r.spec.labels);
    l.kind = Some(match &r.spec.kind {
        LinkKind::Bridge => pb::link::Kind::Bridge(pb::Bridge {}),
        LinkKind::Veth { peer } => {
            let p = end_out(peer);
            let EndObserved { index, mac } = obs(1);
            pb::link::Kind::Veth(pb::Veth {
                peer: Some(pb::VethPeer {
                    name: p.name,
                    namespace: p.namespace,
                    mtu: p.mtu,
                    mac_address: p.mac_address,
                    up: p.up,
                    master: p.master,
                    addresses: p.addresses,
                    routes: p.routes,
                    status_index: index as i32,
                    status_mac_address: mac,
                }),
            })
        }
    });
    l.generation = r.generation;
    l.status = Some(status_out(&r.status));
    l.uid = r.id.clone();
    l.create_time = Some(timestamp(r.created_at));
    l.status_index = index as i32;
    l.status_mac_address = mac;
    l
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Status;

    /// A veth pair between two namespaces, as the seed creates it.
    fn seed() -> pb::Link {
        pb::Link {
            name: "veth1".into(),
            namespace: "ns1".into(),
            addresses: vec!["192.168.1.10/24".into()],
            up: true,
            kind: Some(pb::link::Kind::Veth(pb::Veth {
                peer: Some(pb::VethPeer {
                    name: "veth2".into(),
                    namespace: "ns2".into(),
                    addresses: vec!["192.168.1.20/24".into()],
                    up: true,
                    ..Default::default()
                }),
            })),
            ..Default::default()
        }
    }

    #[test]
    /// The seed's veth pair converts into a valid spec with both ends.
    fn seed_link_converts() {
        let s = link_in(&seed()).unwrap();
        s.validate().unwrap();
        assert_eq!(s.end.addresses[0].to_string(), "192.168.1.10/24");
        let LinkKind::Veth { peer } = &s.kind else {
            panic!("veth")
        };
        assert_eq!(peer.namespace, "ns2");
        assert!(peer.up);
    }

    #[test]
    /// A link must say what it is.
    fn a_link_without_kind_is_refused() {
        let mut l = seed();
        l.kind = None;
        assert_eq!(link_in(&l).unwrap_err().field, "link");
    }

    #[test]
    /// Without a mask, only the fields the body sets change.
    fn update_without_mask_changes_populated_fields_only() {
        let cur = link_in(&seed()).unwrap();
        let body = pb::Link {
            name: "veth1".into(),
            namespace: "ns1".into(),
            mtu: 1400,
            ..Default::default()
        };
        let new = apply_update(&cur, &body, &[], false).unwrap();
        assert_eq!(new.end.mtu, 1400);
        assert!(new.end.up, "up was not populated, so it stays");
        assert_eq!(new.end.addresses, cur.end.addresses);
    }

    #[test]
    /// With a mask, a field can be cleared or turned off.
    fn update_mask_can_clear_and_turn_down() {
        let cur = link_in(&seed()).unwrap();
        let body = pb::Link {
            name: "veth1".into(),
            namespace: "ns1".into(),
            ..Default::default()
        };
        let new = apply_update(&cur, &body, &["up".into(), "addresses".into()], false).unwrap();
        assert!(!new.end.up);
        assert!(new.end.addresses.is_empty());
    }

    #[test]
    /// A request that names the peer end changes the peer.
    fn update_named_by_peer_applies_to_the_peer() {
        let cur = link_in(&seed()).unwrap();
        let body = pb::Link {
            name: "veth2".into(),
            namespace: "ns2".into(),
            mtu: 9000,
            ..Default::default()
        };
        let new = apply_update(&cur, &body, &[], true).unwrap();
        let LinkKind::Veth { peer } = &new.kind else {
            panic!()
        };
        assert_eq!(peer.mtu, 9000);
        assert_eq!(new.end.mtu, 0);
    }

    #[test]
    /// Unknown paths and names are refused with a message that says what may change.
    fn update_mask_rejects_unknown_and_immutable_paths() {
        let cur = link_in(&seed()).unwrap();
        let body = pb::Link::default();
        assert!(
            apply_update(&cur, &body, &["colour".into()], false)
                .unwrap_err()
                .problem
                .contains("unknown path")
        );
        assert!(
            apply_update(&cur, &body, &["name".into()], false)
                .unwrap_err()
                .problem
                .contains("cannot change")
        );
    }

    #[test]
    /// Out and in again gives the same spec.
    fn round_trip_keeps_the_wire_form() {
        let row = LinkRow {
            id: "abc".into(),
            spec: link_in(&seed()).unwrap(),
            generation: 1,
            deleting: false,
            status: Status::default(),
            observed: Default::default(),
            created_at: 1500,
        };
        let out = link_out(&row);
        assert_eq!(out.addresses, vec!["192.168.1.10/24"]);
        assert_eq!(out.create_time.unwrap().nanos, 500_000_000);
        assert_eq!(link_in(&out).unwrap(), row.spec);
    }
}
