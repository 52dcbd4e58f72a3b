//! Networks and endpoints to and from the wire: a Network body to a [`NewNetwork`], a
//! ConnectRequest to a [`ConnectSpec`] (addresses, MAC and published ports parsed), and the
//! views the service answers with back to messages.

use std::net::IpAddr;

use weft_proto::v1::{self as pb, EventType};

use super::{Wire, labels_in, labels_out, status_out, timestamp};
use crate::{
    model::{
        ConnectSpec, EndpointSpec, Invalid, NetworkSpec, PortSpec, SubnetSpec, link::parse_mac,
    },
    service::{EndpointView, NetworkView, Networks, NewNetwork},
    store::EndpointRow,
};

/// A Network body to what the service creates: subnets parsed (gateways defaulted), ICC and
/// masquerade on unless turned off. The bridge name may stay empty: the service names it.
pub fn network_in(body: &pb::Network) -> Result<NewNetwork, Invalid> {
    let subnets = body
        .subnets
        .iter()
        .enumerate()
        .map(|(i, s)| {
            SubnetSpec::parse(
                &format!("network.subnets[{i}]"),
                &s.subnet,
                &s.gateway,
                &s.ip_range,
                &s.reserved,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(NewNetwork {
        spec: NetworkSpec {
            name: body.name.clone(),
            labels: labels_in(&body.labels),
            bridge_name: body.bridge_name.clone(),
            subnets,
            internal: body.internal,
            icc: body.enable_icc.unwrap_or(true),
            masquerade: body.masquerade.unwrap_or(true),
            mtu: body.mtu,
        },
        enable_ipv6: body.enable_ipv6,
    })
}

/// A network view to proto: spec, status, endpoints and per-subnet usage.
pub fn network_out(v: &NetworkView) -> pb::Network {
    let r = &v.row;
    let usage = r
        .spec
        .subnets
        .iter()
        .map(|s| pb::SubnetUsage {
            subnet: s.subnet.to_string(),
            leased: v
                .leases
                .iter()
                .find(|(c, _)| *c == s.subnet)
                .map(|(_, n)| *n)
                .unwrap_or(0),
            capacity: u64::try_from(s.capacity()).unwrap_or(u64::MAX),
        })
        .collect();
    pb::Network {
        name: r.spec.name.clone(),
        labels: labels_out(&r.spec.labels),
        bridge_name: r.spec.bridge_name.clone(),
        subnets: r
            .spec
            .subnets
            .iter()
            .map(|s| pb::Subnet {
                subnet: s.subnet.to_string(),
                gateway: s.gateway.to_string(),
                ip_range: s.ip_range.map(|r| r.to_string()).unwrap_or_default(),
                reserved: s.reserved.iter().map(|a| a.to_string()).collect(),
            })
            .collect(),
        internal: r.spec.internal,
        enable_icc: Some(r.spec.icc),
        masquerade: Some(r.spec.masquerade),
        mtu: r.spec.mtu,
        generation: r.generation,
        status: Some(status_out(&r.status)),
        uid: r.id.clone(),
        create_time: Some(timestamp(r.created_at)),
        endpoints: v
            .endpoints
            .iter()
            .map(|e| endpoint_row_out(e, &r.spec))
            .collect(),
        usage,
        enable_ipv6: r.spec.v6().is_some(),
        default: r.is_default,
    }
}

impl Wire for Networks {
    type Message = pb::Network;
    type Response = pb::WatchNetworksResponse;

    fn message(view: &NetworkView) -> pb::Network {
        network_out(view)
    }

    fn tombstone(uid: &str) -> pb::Network {
        pb::Network {
            uid: uid.to_string(),
            ..Default::default()
        }
    }

    fn response(event: EventType, network: pb::Network, revision: u64) -> Self::Response {
        pb::WatchNetworksResponse {
            r#type: event as i32,
            revision,
            network: Some(network),
        }
    }
}

/// An optional address of one family: "" is none; anything else must be a bare address.
fn address_in(field: &str, s: &str, v4: bool) -> Result<Option<IpAddr>, Invalid> {
    let family = if v4 { "IPv4" } else { "IPv6" };
    match s.trim() {
        "" => Ok(None),
        s => match s.parse::<IpAddr>() {
            Ok(a) if a.is_ipv4() == v4 => Ok(Some(a)),
            _ => Err(Invalid::new(
                field,
                format!("{s:?} is not an {family} address (give it without a prefix)"),
            )),
        },
    }
}

/// A ConnectRequest to its spec (validated by the service): static addresses, MAC and
/// published ports parsed; the interface defaults to `eth0`.
pub fn connect_in(r: &pb::ConnectRequest) -> Result<ConnectSpec, Invalid> {
    let ipv4 = match address_in("ipv4_address", &r.ipv4_address, true)? {
        Some(IpAddr::V4(a)) => Some(a),
        _ => None,
    };
    let ipv6 = match address_in("ipv6_address", &r.ipv6_address, false)? {
        Some(IpAddr::V6(a)) => Some(a),
        _ => None,
    };
    let mac = if r.mac_address.is_empty() {
        None
    } else {
        Some(parse_mac("mac_address", &r.mac_address)?)
    };
    let ports = r
        .published_ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            PortSpec::parse(
                &format!("published_ports[{i}]"),
                &p.host_ip,
                p.host_port,
                p.host_port_end,
                p.container_port,
                &p.protocol,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ConnectSpec {
        network: r.network.clone(),
        namespace: r.namespace.clone(),
        ipv4,
        ipv6,
        endpoint: EndpointSpec {
            ifname: if r.interface_name.is_empty() {
                "eth0".into()
            } else {
                r.interface_name.clone()
            },
            mac,
            aliases: r.aliases.clone(),
            ports,
            default_route: !r.skip_default_route,
        },
    })
}

/// Published ports to proto; a single port has no range end.
fn ports_out(ports: &[PortSpec]) -> Vec<pb::PublishedPort> {
    ports
        .iter()
        .map(|p| pb::PublishedPort {
            host_ip: p.host_ip.map(|a| a.to_string()).unwrap_or_default(),
            host_port: u32::from(p.host_port),
            host_port_end: if p.host_port_end == p.host_port {
                0
            } else {
                u32::from(p.host_port_end)
            },
            container_port: u32::from(p.container_port),
            protocol: p.protocol.as_str().into(),
        })
        .collect()
}

/// An endpoint view to proto.
pub fn endpoint_out(v: &EndpointView) -> pb::Endpoint {
    endpoint_row_out(&v.row, &v.network)
}

/// A stored endpoint on network `net` to proto: its addresses, and the gateway of each
/// family it has an address of.
fn endpoint_row_out(e: &EndpointRow, net: &NetworkSpec) -> pb::Endpoint {
    let addr = |v4: bool| {
        e.addresses
            .iter()
            .find(|a| a.addr().is_ipv4() == v4)
            .map(|a| a.to_string())
            .unwrap_or_default()
    };
    let gw = |v4: bool| {
        if e.addresses.iter().any(|a| a.addr().is_ipv4() == v4) {
            net.subnets
                .iter()
                .find(|s| s.is_v4() == v4)
                .map(|s| s.gateway.to_string())
                .unwrap_or_default()
        } else {
            String::new()
        }
    };
    pb::Endpoint {
        network: e.network.clone(),
        namespace: e.namespace.clone(),
        interface_name: e.spec.ifname.clone(),
        ipv4_address: addr(true),
        ipv6_address: addr(false),
        mac_address: if e.observed.mac.is_empty() {
            e.spec.mac.clone().unwrap_or_default()
        } else {
            e.observed.mac.clone()
        },
        ipv4_gateway: gw(true),
        ipv6_gateway: gw(false),
        aliases: e.spec.aliases.clone(),
        published_ports: ports_out(&e.spec.ports),
        status: Some(status_out(&e.status)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_defaults_and_address_families() {
        let spec = connect_in(&pb::ConnectRequest {
            network: "n".into(),
            namespace: "x".into(),
            ipv4_address: " 10.0.0.5 ".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(spec.endpoint.ifname, "eth0");
        assert!(spec.endpoint.default_route);
        assert_eq!(spec.ipv4.unwrap().to_string(), "10.0.0.5");
        let e = connect_in(&pb::ConnectRequest {
            ipv4_address: "fd00::5".into(),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "ipv4_address: \"fd00::5\" is not an IPv4 address (give it without a prefix)"
        );
        let e = connect_in(&pb::ConnectRequest {
            ipv6_address: "10.0.0.0/8".into(),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.field, "ipv6_address");
    }

    #[test]
    fn a_network_keeps_defaults_for_unset_switches() {
        let new = network_in(&pb::Network {
            name: "n".into(),
            subnets: vec![pb::Subnet {
                subnet: "10.9.0.0/24".into(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .unwrap();
        assert!(new.spec.icc && new.spec.masquerade && !new.enable_ipv6);
        assert_eq!(new.spec.subnets[0].gateway.to_string(), "10.9.0.1");
        assert!(new.spec.bridge_name.is_empty(), "the service names it");
    }
}
