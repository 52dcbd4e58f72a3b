//! IP addresses over rtnetlink: list an interface's addresses, add and remove one.
//!
//! Adding builds the same request as `ip addr add A/N dev X`: `IFA_LOCAL` and `IFA_ADDRESS`,
//! and for IPv4 with a prefix shorter than /31 the broadcast address (`brd +`); for IPv6,
//! optionally `IFA_F_NODAD` (`nodad`).

use std::net::IpAddr;

use futures::TryStreamExt;
use ipnet::IpNet;
use netlink_packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage};
use rtnetlink::Handle;

/// Every address on interface `index` (IPv4 and IPv6, link-local included), with its prefix
/// length, in the kernel's order. The kernel filters by interface (strict dump); the filter is
/// applied here too. `ENODEV` if the interface is gone.
pub(crate) async fn list(handle: &Handle, index: u32) -> Result<Vec<IpNet>, rtnetlink::Error> {
    let mut request = handle.address().get().set_link_index_filter(index);
    request.message_mut().header.index = index;
    let messages: Vec<AddressMessage> = request.execute().try_collect().await?;
    Ok(messages
        .iter()
        .filter(|m| m.header.index == index)
        .filter_map(parse)
        .collect())
}

/// The address an `RTM_NEWADDR` message describes: `IFA_LOCAL` when present (on
/// point-to-point links `IFA_ADDRESS` is the peer), else `IFA_ADDRESS`.
pub(crate) fn parse(message: &AddressMessage) -> Option<IpNet> {
    let mut local = None;
    let mut address = None;
    for attribute in &message.attributes {
        match attribute {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            _ => {}
        }
    }
    let ip: IpAddr = local.or(address)?;
    IpNet::new(ip, message.header.prefix_len).ok()
}

/// Adds `net` to interface `index` (`NLM_F_EXCL`: `EEXIST` if it is already there); with
/// `nodad` an IPv6 address gets `IFA_F_NODAD`, in the header's flags as `ip addr add ..
/// nodad` sends it (the kernel ignores the flag on IPv4).
pub(crate) async fn add(
    handle: &Handle,
    index: u32,
    net: IpNet,
    nodad: bool,
) -> Result<(), rtnetlink::Error> {
    let mut request = handle.address().add(index, net.addr(), net.prefix_len());
    if nodad && net.addr().is_ipv6() {
        request.message_mut().header.flags |= AddressHeaderFlags::Nodad;
    }
    request.execute().await
}

/// Removes `net` from interface `index` (`EADDRNOTAVAIL` if it is not there).
pub(crate) async fn del(handle: &Handle, index: u32, net: IpNet) -> Result<(), rtnetlink::Error> {
    let message = match net.addr() {
        IpAddr::V4(ip) => rtnetlink::AddressMessageBuilder::<std::net::Ipv4Addr>::new()
            .index(index)
            .address(ip, net.prefix_len())
            .build(),
        IpAddr::V6(ip) => rtnetlink::AddressMessageBuilder::<std::net::Ipv6Addr>::new()
            .index(index)
            .address(ip, net.prefix_len())
            .build(),
    };
    handle.address().del(message).execute().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_wins_over_peer_address() {
        let mut message = AddressMessage::default();
        message.header.prefix_len = 24;
        message
            .attributes
            .push(AddressAttribute::Address("10.0.0.9".parse().unwrap()));
        message
            .attributes
            .push(AddressAttribute::Local("10.0.0.1".parse().unwrap()));
        assert_eq!(parse(&message), Some("10.0.0.1/24".parse().unwrap()));
    }
}
