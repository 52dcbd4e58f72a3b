//! Routes over rtnetlink, limited to the ones weft owns: main table, protocol
//! [`RTPROT_WEFT`], one output interface.
//!
//! - A route without a gateway is on-link: IPv4 gets scope link, as `ip route add N dev X`.
//! - `metric` is `RTA_PRIORITY`; 0 sends none. IPv6 has no metric 0: the kernel stores 1024
//!   instead and lists it so (see [`RouteState::kernel_metric`](super::RouteState::kernel_metric)).
//! - A destination must be a network address (no host bits): the kernel rejects 10.0.0.1/24.
//! - Deleting matches protocol, table, destination, interface, gateway and (if non-zero)
//!   metric, with scope "nowhere" as `ip route del` sends, so only weft's route goes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use ipnet::IpNet;
use netlink_packet_route::{
    AddressFamily,
    route::{
        RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
        RouteVia,
    },
};
use rtnetlink::{Handle, RouteMessageBuilder};

use super::{RTPROT_WEFT, RouteState};

/// weft's routes on interface `index`, IPv4 then IPv6. The kernel filters (strict dump by
/// table, protocol and interface); the same filter is applied here.
pub(crate) async fn list(handle: &Handle, index: u32) -> Result<Vec<RouteState>, rtnetlink::Error> {
    let mut routes = Vec::new();
    for family in [AddressFamily::Inet, AddressFamily::Inet6] {
        let mut filter = RouteMessage::default();
        filter.header.address_family = family;
        filter.header.table = RouteHeader::RT_TABLE_MAIN;
        filter.header.protocol = RouteProtocol::from(RTPROT_WEFT);
        filter.attributes.push(RouteAttribute::Oif(index));
        let messages: Vec<RouteMessage> =
            handle.route().get(filter).execute().try_collect().await?;
        routes.extend(
            messages
                .iter()
                .filter(|m| is_ours(m, index))
                .filter_map(parse),
        );
    }
    Ok(routes)
}

/// The destinations of every route in the main table, IPv4 then IPv6, whoever added them:
/// what a new automatic subnet must not overlap.
pub(crate) async fn destinations(handle: &Handle) -> Result<Vec<IpNet>, rtnetlink::Error> {
    let mut out = Vec::new();
    for family in [AddressFamily::Inet, AddressFamily::Inet6] {
        let mut filter = RouteMessage::default();
        filter.header.address_family = family;
        filter.header.table = RouteHeader::RT_TABLE_MAIN;
        let messages: Vec<RouteMessage> =
            handle.route().get(filter).execute().try_collect().await?;
        out.extend(messages.iter().filter_map(parse).map(|r| r.destination));
    }
    Ok(out)
}

/// True for a main-table route of weft's through interface `index`.
fn is_ours(message: &RouteMessage, index: u32) -> bool {
    oif_if_ours(message) == Some(index)
}

/// The output interface of a main-table route of weft's; None for any other route.
pub(crate) fn oif_if_ours(message: &RouteMessage) -> Option<u32> {
    let mut table = u32::from(message.header.table);
    let mut oif = None;
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Oif(i) => oif = Some(*i),
            _ => {}
        }
    }
    (u8::from(message.header.protocol) == RTPROT_WEFT
        && table == u32::from(RouteHeader::RT_TABLE_MAIN))
    .then_some(oif)
    .flatten()
}

/// The route an `RTM_NEWROUTE` message describes.
pub(crate) fn parse(message: &RouteMessage) -> Option<RouteState> {
    let prefix = message.header.destination_prefix_length;
    let mut destination = match message.header.address_family {
        AddressFamily::Inet => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => return None,
    };
    let mut gateway = None;
    let mut metric = 0;
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Destination(address) => destination = ip_of(address)?,
            RouteAttribute::Gateway(address) => gateway = ip_of(address),
            RouteAttribute::Via(RouteVia::Inet(ip)) => gateway = Some(IpAddr::V4(*ip)),
            RouteAttribute::Via(RouteVia::Inet6(ip)) => gateway = Some(IpAddr::V6(*ip)),
            RouteAttribute::Priority(p) => metric = *p,
            _ => {}
        }
    }
    Some(RouteState {
        destination: IpNet::new(destination, prefix).ok()?,
        gateway,
        metric,
    })
}

fn ip_of(address: &RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
    }
}

/// The message that adds (or, with `for_delete`, removes) `route` through interface `index`.
/// A gateway of another family than the destination is an error (text returned).
pub(crate) fn message(
    index: u32,
    route: &RouteState,
    for_delete: bool,
) -> Result<RouteMessage, String> {
    let destination = route.destination;
    let mut builder = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(destination.addr(), destination.prefix_len())
        .map_err(|e| e.to_string())?
        .output_interface(index)
        .protocol(RouteProtocol::from(RTPROT_WEFT));
    match route.gateway {
        Some(gateway) => {
            if gateway.is_ipv4() != destination.addr().is_ipv4() {
                return Err(format!(
                    "gateway {gateway} is not of the same family as destination {destination}"
                ));
            }
            builder = builder.gateway(gateway).map_err(|e| e.to_string())?;
        }
        None if destination.addr().is_ipv4() => builder = builder.scope(RouteScope::Link),
        None => {}
    }
    if route.metric != 0 {
        builder = builder.priority(route.metric);
    }
    if for_delete {
        // Match whatever scope the route has, as `ip route del` does.
        builder = builder.scope(RouteScope::NoWhere);
    }
    Ok(builder.build())
}

/// "default via 10.0.0.1 metric 5", "10.1.0.0/16".
pub(crate) fn describe(route: &RouteState) -> String {
    let mut text = if route.destination.prefix_len() == 0 {
        "default".to_string()
    } else {
        route.destination.to_string()
    };
    if let Some(gateway) = route.gateway {
        text.push_str(&format!(" via {gateway}"));
    }
    if route.metric != 0 {
        text.push_str(&format!(" metric {}", route.metric));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onlink_ipv4_route_has_link_scope_and_our_protocol() {
        let route = RouteState {
            destination: "10.1.0.0/16".parse().unwrap(),
            gateway: None,
            metric: 0,
        };
        let m = message(4, &route, false).unwrap();
        assert_eq!(m.header.scope, RouteScope::Link);
        assert_eq!(u8::from(m.header.protocol), RTPROT_WEFT);
        assert_eq!(m.header.table, RouteHeader::RT_TABLE_MAIN);
        assert!(m.attributes.contains(&RouteAttribute::Oif(4)));
        assert!(
            !m.attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::Priority(_)))
        );
        assert_eq!(parse(&m), Some(route));
    }

    #[test]
    fn default_route_round_trips() {
        let route = RouteState {
            destination: "0.0.0.0/0".parse().unwrap(),
            gateway: Some("10.0.0.1".parse().unwrap()),
            metric: 7,
        };
        let m = message(4, &route, false).unwrap();
        assert_eq!(m.header.scope, RouteScope::Universe);
        assert!(is_ours(&m, 4));
        assert!(!is_ours(&m, 5));
        assert_eq!(parse(&m), Some(route.clone()));
        assert_eq!(describe(&route), "default via 10.0.0.1 metric 7");
        assert_eq!(
            message(4, &route, true).unwrap().header.scope,
            RouteScope::NoWhere
        );
    }

    #[test]
    fn mixed_families_are_refused() {
        let route = RouteState {
            destination: "0.0.0.0/0".parse().unwrap(),
            gateway: Some("fe80::1".parse().unwrap()),
            metric: 0,
        };
        assert!(message(4, &route, false).is_err());
    }
}
