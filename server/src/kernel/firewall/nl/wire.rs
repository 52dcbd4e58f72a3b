//! Netlink framing in plain, safe Rust: splitting a receive buffer into messages, reading
//! their attributes, and writing the few GET requests weft sends itself.
//!
//! Reading needs no library. A reply is a run of messages, each a 16-byte `nlmsghdr`
//! (length, type, flags, sequence number, port id) and a payload; an nftables payload is a
//! 4-byte `nfgenmsg` (family, version, resource id) followed by attributes, each a 4-byte
//! header (length, type) and a value padded to 4 bytes, nested attributes holding more of the
//! same. Everything is host endian except what nftables puts in values (numbers big endian).
//! A truncated or malformed message or attribute ends the walk quietly: what was read until
//! then is returned, and the callers treat a missing attribute as absent or zero.
//!
//! Writing: the batches go through `nftnl` (see [`super::batch`]); only the GET requests
//! (dumps, and lookups of single set elements) are encoded here, by [`request_msg`].

use nftnl::nftnl_sys as sys;

use super::{
    Element,
    abi::{
        NFNL_SUBSYS_NFTABLES, NFT_MSG_DELSETELEM, NFT_MSG_DELTABLE, NFT_MSG_NEWCHAIN,
        NFT_MSG_NEWRULE, NFT_MSG_NEWSET, NFT_MSG_NEWSETELEM, NFT_MSG_NEWTABLE, NLA_F_NESTED, attr,
    },
};

/// Size of `nlmsghdr`: every message starts with it.
const NLMSG_HDRLEN: usize = 16;

/// Rounds a netlink length up to the 4-byte alignment messages and attributes use.
const fn align4(len: usize) -> usize {
    (len + 3) & !3
}

/// One netlink message in a receive buffer, borrowed from it.
pub(super) struct Message<'a> {
    /// `nlmsg_type`: `NLMSG_ERROR`, `NLMSG_DONE`, or (subsystem << 8 | `NFT_MSG_*`).
    pub(super) ty: u16,
    /// `nlmsg_seq`, which ties a reply to its request.
    pub(super) seq: u32,
    /// Everything after the 16-byte header.
    pub(super) payload: &'a [u8],
}

impl Message<'_> {
    /// For `NLMSG_ERROR`: the (negative) errno, 0 for an ack. None if the payload is too
    /// short to hold one.
    pub(super) fn error_code(&self) -> Option<i32> {
        self.payload
            .get(..4)
            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Splits a buffer from one `recv` into its messages. The kernel never splits a message
/// across two datagrams, so a short tail can only be garbage and is ignored.
pub(super) fn messages_in(buf: &[u8]) -> Vec<Message<'_>> {
    let mut out = Vec::new();
    let mut rest = buf;
    while rest.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if len < NLMSG_HDRLEN || len > rest.len() {
            break;
        }
        let ty = u16::from_ne_bytes([rest[4], rest[5]]);
        let seq = u32::from_ne_bytes([rest[8], rest[9], rest[10], rest[11]]);
        out.push(Message {
            ty,
            seq,
            payload: &rest[NLMSG_HDRLEN..len],
        });
        rest = rest.get(align4(len)..).unwrap_or(&[]);
    }
    out
}

/// A reply to a GET, copied out of the receive buffer (which the next `recv` overwrites):
/// the payload after the netlink header.
pub(super) struct Reply {
    payload: Vec<u8>,
}

impl Reply {
    /// Copies a message's payload.
    pub(super) fn of(msg: &Message<'_>) -> Self {
        Self {
            payload: msg.payload.to_vec(),
        }
    }

    /// `nfgenmsg.nfgen_family`: the `NFPROTO_*` of the object.
    pub(super) fn family(&self) -> u8 {
        self.payload.first().copied().unwrap_or(0)
    }

    /// The attributes after the 4-byte `nfgenmsg`.
    pub(super) fn attrs(&self) -> &[u8] {
        self.payload.get(4..).unwrap_or(&[])
    }
}

/// Netlink attributes of one level, by type (the last one wins, which never matters here).
/// Nested attributes are parsed on demand: `Attrs::parse(a.get(NESTED)?)`.
pub(super) struct Attrs<'a> {
    list: Vec<(u16, &'a [u8])>,
}

impl<'a> Attrs<'a> {
    /// Walks one level of attributes; the type's two flag bits (`NLA_F_NESTED`,
    /// `NLA_F_NET_BYTEORDER`) are masked off.
    pub(super) fn parse(mut buf: &'a [u8]) -> Self {
        let mut list = Vec::new();
        while buf.len() >= 4 {
            let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
            let ty = u16::from_ne_bytes([buf[2], buf[3]]) & 0x3fff;
            if len < 4 || len > buf.len() {
                break;
            }
            list.push((ty, &buf[4..len]));
            buf = buf.get(align4(len)..).unwrap_or(&[]);
        }
        Self { list }
    }

    /// The value of the attribute of type `ty`.
    pub(super) fn get(&self, ty: u16) -> Option<&'a [u8]> {
        self.list
            .iter()
            .rev()
            .find(|(t, _)| *t == ty)
            .map(|(_, v)| *v)
    }

    /// Every value of type `ty`, in order: the members of a list such as `LIST_ELEM`.
    pub(super) fn all(&self, ty: u16) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.list
            .iter()
            .filter(move |(t, _)| *t == ty)
            .map(|(_, v)| *v)
    }

    /// A NUL-terminated string attribute (names, chain types), lossily decoded.
    pub(super) fn string(&self, ty: u16) -> Option<String> {
        self.get(ty).map(until_nul)
    }

    /// A big-endian u32 attribute, the encoding nftables uses for numbers.
    pub(super) fn u32_be(&self, ty: u16) -> Option<u32> {
        self.get(ty)
            .filter(|v| v.len() >= 4)
            .map(|v| u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
    }
}

/// The bytes up to the first NUL (or all of them), as a string.
fn until_nul(v: &[u8]) -> String {
    let end = v.iter().position(|b| *b == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).into_owned()
}

/// The comment TLV (type `NFTNL_UDATA_TABLE_COMMENT`) in a table's userdata: where weft's
/// marker lives. TLVs here are (type u8, len u8, value), not netlink attributes.
pub(super) fn udata_comment(udata: &[u8]) -> Option<String> {
    let mut rest = udata;
    while rest.len() >= 2 {
        let (ty, len) = (rest[0], rest[1] as usize);
        let value = rest.get(2..2 + len)?;
        if u32::from(ty) == sys::NFTNL_UDATA_TABLE_COMMENT {
            return Some(until_nul(value));
        }
        rest = &rest[2 + len..];
    }
    None
}

/// Collects the elements of one `NEWSETELEM` reply (to a dump or to a lookup): each
/// `LIST_ELEM` holds a nested key and, for a map, nested data, both `DATA_VALUE`s. An element
/// without a key is skipped.
pub(super) fn parse_elements(attrs: &[u8], out: &mut Vec<Element>) {
    let a = Attrs::parse(attrs);
    let Some(list) = a.get(attr::ELEM_LIST_ELEMENTS) else {
        return;
    };
    for elem in Attrs::parse(list).all(attr::LIST_ELEM) {
        let e = Attrs::parse(elem);
        let value = |ty| {
            e.get(ty)
                .and_then(|nested| Attrs::parse(nested).get(attr::DATA_VALUE))
                .map(<[u8]>::to_vec)
        };
        if let Some(key) = value(attr::ELEM_KEY) {
            out.push(Element {
                key,
                data: value(attr::ELEM_DATA),
            });
        }
    }
}

/// Names the message an error ack refers to (the ack echoes its header): "NEWRULE, message 7
/// of the batch". The batch as a whole was rolled back; this says which message the kernel
/// refused, which is what one needs to debug an encoding.
pub(super) fn describe_failed(ack: &Message<'_>, first_seq: u32) -> String {
    // The echoed nlmsghdr follows the 4-byte errno.
    let Some(h) = ack.payload.get(4..4 + NLMSG_HDRLEN) else {
        return "the batch".to_string();
    };
    let ty = u16::from_ne_bytes([h[4], h[5]]) & 0xff;
    let seq = u32::from_ne_bytes([h[8], h[9], h[10], h[11]]);
    let name = match ty {
        NFT_MSG_NEWTABLE => "NEWTABLE",
        NFT_MSG_DELTABLE => "DELTABLE",
        NFT_MSG_NEWCHAIN => "NEWCHAIN",
        NFT_MSG_NEWRULE => "NEWRULE",
        NFT_MSG_NEWSET => "NEWSET",
        NFT_MSG_NEWSETELEM => "NEWSETELEM",
        NFT_MSG_DELSETELEM => "DELSETELEM",
        _ => "message",
    };
    format!(
        "{name}, message {} of the batch",
        seq.wrapping_sub(first_seq)
    )
}

// ---- request encoding (GETs are simple enough to write by hand) ----

/// One attribute: header, value, zero padding to 4 bytes.
pub(super) fn nla(ty: u16, value: &[u8]) -> Vec<u8> {
    let len = 4 + value.len();
    let mut v = Vec::with_capacity(align4(len));
    v.extend_from_slice(&(len as u16).to_ne_bytes());
    v.extend_from_slice(&ty.to_ne_bytes());
    v.extend_from_slice(value);
    v.resize(align4(len), 0);
    v
}

/// A nested attribute around already encoded attributes.
pub(super) fn nest(ty: u16, inner: &[u8]) -> Vec<u8> {
    nla(ty | NLA_F_NESTED, inner)
}

/// One nftables request: `nlmsghdr` (port id 0, the kernel fills it in), `nfgenmsg` for
/// `family` (version `NFNETLINK_V0`, resource id 0), then `attrs`. Flags are the caller's:
/// `NLM_F_REQUEST | NLM_F_DUMP` for a listing, `NLM_F_REQUEST | NLM_F_ACK` for a lookup.
pub(super) fn request_msg(
    msg_type: u16,
    flags: u16,
    family: u8,
    seq: u32,
    attrs: &[(u16, &[u8])],
) -> Vec<u8> {
    let mut body = vec![family, 0 /* NFNETLINK_V0 */, 0, 0];
    for (ty, value) in attrs {
        body.extend_from_slice(&nla(*ty, value));
    }
    let len = NLMSG_HDRLEN + body.len();
    let mut msg = Vec::with_capacity(len);
    msg.extend_from_slice(&(len as u32).to_ne_bytes());
    msg.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | msg_type).to_ne_bytes());
    msg.extend_from_slice(&flags.to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&body);
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::firewall::nl::abi::{NFT_MSG_GETSETELEM, NLMSG_ERROR};

    /// A request read back by the reply parser: the framing is symmetric.
    #[test]
    fn request_round_trips_through_the_parser() {
        let elements = nest(
            attr::LIST_ELEM,
            &nest(attr::ELEM_KEY, &nla(attr::DATA_VALUE, &[1, 2, 3])),
        );
        let msg = request_msg(
            NFT_MSG_GETSETELEM,
            1,
            7,
            42,
            &[
                (attr::ELEM_LIST_TABLE, b"weft\0"),
                (attr::ELEM_LIST_ELEMENTS | NLA_F_NESTED, &elements),
            ],
        );
        assert_eq!(msg.len() % 4, 0);
        let msgs = messages_in(&msg);
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].seq, 42);
        assert_eq!(msgs[0].ty, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM);
        let reply = Reply::of(&msgs[0]);
        assert_eq!(reply.family(), 7);
        let a = Attrs::parse(reply.attrs());
        assert_eq!(a.string(attr::ELEM_LIST_TABLE).as_deref(), Some("weft"));
        let mut found = Vec::new();
        parse_elements(reply.attrs(), &mut found);
        assert_eq!(
            found,
            vec![Element {
                key: vec![1, 2, 3],
                data: None
            }]
        );
    }

    /// Truncated input ends the walk instead of reading past the buffer.
    #[test]
    fn truncated_messages_and_attributes_are_ignored() {
        let msg = request_msg(NFT_MSG_GETSETELEM, 1, 0, 1, &[(1, b"weft\0")]);
        assert!(messages_in(&msg[..msg.len() - 1]).is_empty());
        // The attribute is 9 bytes (padded to 12): its value cut short, it is dropped; only
        // its padding missing, it is still read.
        assert_eq!(Attrs::parse(&msg[20..28]).get(1), None);
        assert_eq!(Attrs::parse(&msg[20..29]).get(1), Some(&b"weft\0"[..]));
        assert_eq!(udata_comment(&[0, 9, b'x']), None);
    }

    /// An error ack names the message it refers to by kind and index in the batch.
    #[test]
    fn failed_message_is_named() {
        let mut payload = (-2i32).to_ne_bytes().to_vec();
        payload.extend_from_slice(&request_msg(NFT_MSG_NEWSETELEM, 0, 0, 107, &[]));
        let ack = Message {
            ty: NLMSG_ERROR,
            seq: 107,
            payload: &payload,
        };
        assert_eq!(ack.error_code(), Some(-2));
        assert_eq!(
            describe_failed(&ack, 100),
            "NEWSETELEM, message 7 of the batch"
        );
        let short = Message {
            ty: NLMSG_ERROR,
            seq: 0,
            payload: &payload[..8],
        };
        assert_eq!(describe_failed(&short, 0), "the batch");
    }

    /// The table comment is found among other userdata TLVs.
    #[test]
    fn table_comment_is_read_from_userdata() {
        let comment = sys::NFTNL_UDATA_TABLE_COMMENT as u8;
        let udata = [&[9, 1, 0][..], &[comment, 5], b"weft\0"].concat();
        assert_eq!(udata_comment(&udata).as_deref(), Some("weft"));
    }
}
