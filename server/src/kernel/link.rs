//! Interfaces over rtnetlink: look one up (with its addresses), create veth pairs and bridges,
//! change one in a single `RTM_SETLINK`, delete one.
//!
//! Functions here take an rtnetlink [`Handle`] already bound to the right namespace and return
//! rtnetlink's own error; [`Kernel`](super::Kernel) adds the operation text and the write count.

use std::os::fd::RawFd;

use futures::TryStreamExt;
use netlink_packet_route::{
    AddressFamily,
    link::{
        AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoBridgePort, InfoData, InfoPortData,
        InfoVeth, LinkAttribute, LinkExtentMask, LinkFlags, LinkInfo, LinkMessage,
    },
};
use nix::errno::Errno;
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth};

use super::{LinkChange, LinkState, NEWBORN_GROUP, addr, error::has_errno};

/// The longest interface name the kernel accepts (IFNAMSIZ - 1).
pub(crate) const MAX_NAME_LEN: usize = 15;

/// How to find an interface.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Selector<'a> {
    /// By name.
    Name(&'a str),
    /// By ifindex.
    Index(u32),
}

/// Looks an interface up, with all its addresses when `with_addresses` (a second request: an
/// address dump). `Ok(None)` when there is no such interface (the kernel's `ENODEV`),
/// including when it vanishes between the two requests.
pub(crate) async fn get(
    handle: &Handle,
    selector: Selector<'_>,
    with_addresses: bool,
) -> Result<Option<LinkState>, rtnetlink::Error> {
    let request = handle.link().get();
    let request = match selector {
        // A name that long cannot exist; the kernel would reject the request as invalid.
        Selector::Name(name) if name.is_empty() || name.len() > MAX_NAME_LEN => return Ok(None),
        Selector::Name(name) => request.match_name(name),
        Selector::Index(0) => return Ok(None),
        Selector::Index(index) => request.match_index(index),
    };
    let message = match request.execute().try_next().await {
        Ok(Some(message)) => message,
        Ok(None) => return Ok(None),
        Err(e) if has_errno(&e, Errno::ENODEV) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut state = parse(&message);
    if !with_addresses {
        return Ok(Some(state));
    }
    match addr::list(handle, state.index).await {
        Ok(addresses) => state.addresses = addresses,
        Err(e) if has_errno(&e, Errno::ENODEV) => return Ok(None),
        Err(e) => return Err(e),
    }
    Ok(Some(state))
}

/// Every interface in the namespace, without addresses (one dump, without statistics).
///
/// Each message becomes a [`LinkState`] as it arrives: a parsed [`LinkMessage`] is about
/// 6 KiB (its vector of attributes), so collecting the dump first held 13 MiB at once for a
/// host of 2,000 endpoints and 64 MiB for 10,000, a peak the heap kept (heaptrack, issue 14).
/// `RTEXT_FILTER_SKIP_STATS` leaves out the counters weft never reads.
pub(crate) async fn list(handle: &Handle) -> Result<Vec<LinkState>, rtnetlink::Error> {
    handle
        .link()
        .get()
        .set_filter_mask(AddressFamily::Unspec, vec![LinkExtentMask::SkipStats])
        .execute()
        .map_ok(|m| parse(&m))
        .try_collect()
        .await
}

/// The interface an `RTM_NEWLINK` message describes (without addresses).
pub(crate) fn parse(message: &LinkMessage) -> LinkState {
    let mut state = LinkState {
        index: message.header.index,
        up: message.header.flags.contains(LinkFlags::Up),
        ..LinkState::default()
    };
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(name) => state.name = name.clone(),
            LinkAttribute::Mtu(mtu) => state.mtu = *mtu,
            LinkAttribute::Address(bytes) if !bytes.is_empty() => {
                state.mac = Some(format_mac(bytes))
            }
            LinkAttribute::Controller(index) if *index != 0 => state.master = Some(*index),
            LinkAttribute::IfAlias(alias) => state.alias = Some(alias.clone()),
            LinkAttribute::Group(group) => state.group = *group,
            LinkAttribute::Link(index) if *index != 0 => state.link = Some(*index),
            LinkAttribute::LinkNetNsId(id) if *id >= 0 => state.link_netnsid = Some(*id),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    match info {
                        LinkInfo::Kind(kind) => state.kind = Some(kind.to_string()),
                        LinkInfo::PortData(InfoPortData::BridgePort(port)) => {
                            state.hairpin = port
                                .iter()
                                .any(|a| matches!(a, InfoBridgePort::HairpinMode(true)));
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    // An interface that is no link to another names itself; a peer elsewhere may share its
    // number, since each namespace numbers its own.
    if state.link == Some(state.index) && state.link_netnsid.is_none() {
        state.link = None;
    }
    state
}

/// The `RTM_NEWLINK` request for a veth pair: `name` where the request is sent, `peer_name`
/// created directly in the namespace `peer_netns_fd` refers to (`IFLA_NET_NS_FD` inside the
/// peer's own link message), or next to `name` when `None`. Both ends are born in
/// [`NEWBORN_GROUP`] (`IFLA_GROUP` in each end's message).
pub(crate) fn veth_message(
    name: &str,
    peer_name: &str,
    peer_netns_fd: Option<RawFd>,
) -> LinkMessage {
    let mut peer = LinkUnspec::new_with_name(peer_name).link_group(NEWBORN_GROUP);
    if let Some(fd) = peer_netns_fd {
        peer = peer.setns_by_fd(fd);
    }
    LinkVeth::new(name, peer_name)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())))
        .link_group(NEWBORN_GROUP)
        .build()
}

/// Sends `message` as a create (`NLM_F_CREATE | NLM_F_EXCL`), as rtnetlink's
/// `LinkAddRequest` does; with `echo`, also `NLM_F_ECHO`, and answers the interface named
/// `name` as the kernel echoed it back before its acknowledgement (None when it echoed none,
/// as kernels before 6.1 do; an echo of any other interface is not taken for it).
pub(crate) async fn add_echoed(
    mut handle: Handle,
    message: LinkMessage,
    name: String,
    echo: bool,
) -> Result<Option<LinkState>, rtnetlink::Error> {
    use netlink_packet_core::{
        NLM_F_ACK, NLM_F_CREATE, NLM_F_ECHO, NLM_F_EXCL, NLM_F_REQUEST, NetlinkMessage,
        NetlinkPayload,
    };
    use netlink_packet_route::RouteNetlinkMessage;
    let mut request = NetlinkMessage::from(RouteNetlinkMessage::NewLink(message));
    request.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
    if echo {
        request.header.flags |= NLM_F_ECHO;
    }
    let mut answers = handle.request(request)?;
    let mut echoed = None;
    while let Some(answer) = futures::StreamExt::next(&mut answers).await {
        match answer.payload {
            NetlinkPayload::Error(e) if e.code.is_some() => {
                return Err(rtnetlink::Error::NetlinkError(e));
            }
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(m)) => {
                let end = parse(&m);
                if end.name == name && end.index != 0 {
                    echoed = Some(end);
                }
            }
            _ => {}
        }
    }
    Ok(echoed)
}

/// The `RTM_NEWLINK` request for a bridge, born in [`NEWBORN_GROUP`]. Unlike rtnetlink's
/// `LinkBridge::new`, the bridge is created down, like every other link weft creates;
/// `set_link` brings it up.
pub(crate) fn bridge_message(name: &str) -> LinkMessage {
    LinkMessageBuilder::<LinkBridge>::new(name)
        .link_group(NEWBORN_GROUP)
        .build()
}

/// The `RTM_NEWLINK` request (without create flags, as `ip link set .. type bridge_slave
/// hairpin on` sends it) setting the hairpin mode of bridge port `index`, if `change` sets
/// it. `RTM_SETLINK` cannot carry port data: the kernel applies `IFLA_INFO_SLAVE_DATA` only
/// in a new-link request, through the port's current master.
pub(crate) fn hairpin_message(index: u32, change: &LinkChange) -> Option<LinkMessage> {
    change
        .hairpin
        .map(|on| LinkBridgePort::new(index).hairpin(on).build())
}

/// The `RTM_SETLINK` request carrying only the fields `change` sets but the hairpin mode
/// ([`hairpin_message`]); `None` when it sets none. A malformed MAC is returned as the
/// error text.
pub(crate) fn set_message(index: u32, change: &LinkChange) -> Result<Option<LinkMessage>, String> {
    let rest = LinkChange {
        hairpin: None,
        ..change.clone()
    };
    if rest == LinkChange::default() {
        return Ok(None);
    }
    let mut builder = LinkUnspec::new_with_index(index);
    if let Some(mtu) = change.mtu {
        builder = builder.mtu(mtu);
    }
    if let Some(mac) = &change.mac {
        builder = builder.address(parse_mac(mac)?);
    }
    match change.up {
        Some(true) => builder = builder.up(),
        Some(false) => builder = builder.down(),
        None => {}
    }
    match change.master {
        Some(Some(master)) => builder = builder.controller(master),
        Some(None) => builder = builder.nocontroller(),
        None => {}
    }
    if let Some(alias) = &change.alias {
        builder = builder.alias(alias.clone());
    }
    if let Some(name) = &change.name {
        builder = builder.name(name.clone());
    }
    if let Some(group) = change.group {
        builder = builder.link_group(group);
    }
    let mut message = builder.build();
    if change.ipv6_addr_gen_none {
        message
            .attributes
            .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(
                vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)],
            )]));
    }
    Ok(Some(message))
}

/// Describes a change for operation texts: "mtu 1400, up, master 7".
pub(crate) fn describe_change(change: &LinkChange) -> String {
    let mut parts = Vec::new();
    if let Some(mtu) = change.mtu {
        parts.push(format!("mtu {mtu}"));
    }
    if let Some(mac) = &change.mac {
        parts.push(format!("address {mac}"));
    }
    match change.up {
        Some(true) => parts.push("up".to_string()),
        Some(false) => parts.push("down".to_string()),
        None => {}
    }
    match change.master {
        Some(Some(master)) => parts.push(format!("master #{master}")),
        Some(None) => parts.push("nomaster".to_string()),
        None => {}
    }
    if let Some(alias) = &change.alias {
        parts.push(format!("alias {alias:?}"));
    }
    if let Some(name) = &change.name {
        parts.push(format!("name {name}"));
    }
    if let Some(group) = change.group {
        parts.push(format!("group {group}"));
    }
    match change.hairpin {
        Some(true) => parts.push("hairpin on".to_string()),
        Some(false) => parts.push("hairpin off".to_string()),
        None => {}
    }
    if change.ipv6_addr_gen_none {
        parts.push("addrgenmode none".to_string());
    }
    parts.join(", ")
}

/// "aa:bb:cc:dd:ee:ff" from raw bytes (lower case).
pub(crate) fn format_mac(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Raw bytes from "aa:bb:cc:dd:ee:ff" (either case); exactly six octets.
pub(crate) fn parse_mac(text: &str) -> Result<Vec<u8>, String> {
    let bytes = text
        .split(':')
        .map(|part| {
            if part.len() == 2 {
                u8::from_str_radix(part, 16).ok()
            } else {
                None
            }
        })
        .collect::<Option<Vec<u8>>>();
    match bytes {
        Some(bytes) if bytes.len() == 6 => Ok(bytes),
        _ => Err(format!(
            "invalid MAC address {text:?}: want aa:bb:cc:dd:ee:ff"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trip() {
        let bytes = parse_mac("02:AB:cd:00:0f:10").unwrap();
        assert_eq!(bytes, vec![0x02, 0xab, 0xcd, 0x00, 0x0f, 0x10]);
        assert_eq!(format_mac(&bytes), "02:ab:cd:00:0f:10");
        for bad in [
            "",
            "02:ab",
            "02:ab:cd:00:0f:10:11",
            "2:ab:cd:00:0f:10",
            "zz:ab:cd:00:0f:10",
        ] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn empty_change_sends_nothing() {
        assert_eq!(set_message(3, &LinkChange::default()), Ok(None));
    }

    #[test]
    fn change_carries_only_set_fields() {
        let change = LinkChange {
            mtu: Some(1400),
            up: Some(false),
            master: Some(None),
            ..Default::default()
        };
        let message = set_message(3, &change).unwrap().unwrap();
        assert_eq!(message.header.index, 3);
        assert!(!message.header.flags.contains(LinkFlags::Up));
        assert!(message.header.change_mask.contains(LinkFlags::Up));
        assert!(message.attributes.contains(&LinkAttribute::Mtu(1400)));
        assert!(message.attributes.contains(&LinkAttribute::Controller(0)));
        assert_eq!(message.attributes.len(), 2);
    }

    #[test]
    fn veth_peer_is_born_in_its_namespace() {
        let message = veth_message("a", "b", Some(42));
        let peer = message
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
                    LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))) => Some(peer.clone()),
                    _ => None,
                }),
                _ => None,
            })
            .expect("peer message");
        assert!(peer.attributes.contains(&LinkAttribute::NetNsFd(42)));
        assert!(peer.attributes.contains(&LinkAttribute::IfName("b".into())));
        // Both ends are born in weft's newborn group: the mark the kernel takes at creation.
        assert!(
            peer.attributes
                .contains(&LinkAttribute::Group(NEWBORN_GROUP))
        );
        assert!(
            message
                .attributes
                .contains(&LinkAttribute::Group(NEWBORN_GROUP))
        );
        // The first end stays where the request is sent.
        assert!(
            !message
                .attributes
                .iter()
                .any(|a| matches!(a, LinkAttribute::NetNsFd(_)))
        );
    }
}
