//! nftables over netlink: the socket, batches built with `nftnl` (plus `nftnl-sys` where the
//! safe API stops), and dump replies parsed in plain Rust.
//!
//! This is the firewall's only contact with the kernel; `firewall.rs` decides *what* to
//! write (from the pure [`plan`](mod@super::plan)) and calls in here to read and write it.
//!
//! # The pieces
//! - [`socket`]: the `NETLINK_NETFILTER` socket. A batch goes out in one `sendmsg` with its
//!   acks drained; GET requests (dumps, element lookups) wait for their replies.
//! - [`read`]: the typed reads (tables, chains, rule counts, sets, elements) that tell
//!   `sync_firewall` whether the kernel already holds the plan.
//! - [`batch`]: [`BatchBuilder`], which turns planned tables and element lists into the
//!   messages of one atomic batch, in the order the kernel needs.
//! - [`rule`]: one planned rule as nftables expressions, register for register as `nft`
//!   encodes it.
//! - [`ffi`]: the libnftnl objects and expressions the safe `nftnl` API lacks. The only
//!   `unsafe` code of the firewall, and the only file allowed to hold it.
//! - [`wire`]: netlink framing by hand: splitting and reading replies, encoding GETs.
//! - [`abi`]: the kernel's and nft's numbers (message types, attributes, data types).
//!
//! # Life of a change
//! Writing: `BatchBuilder` collects messages into an `nftnl::Batch` (pages of 128 KiB);
//! [`Socket::send_batch`] sends every page in one `sendmsg` after sizing the socket buffers,
//! so the kernel sees one transaction, then reads the acks without blocking (the kernel has
//! queued them all by the time `sendmsg` returns). An error in any message rolls back the
//! whole batch; the first errno is reported with the kind and index of the message that
//! caused it, e.g. `nftables batch (NEWSETELEM, message 3 of the batch)`.
//!
//! Reading: one dump per kind of object, filtered to one table, answered by a multi-part
//! reply that the hand-written parser in [`wire`] walks. Nothing on the read path needs
//! `unsafe` or libnftnl.
//!
//! # Bytes, not text
//! What weft writes is byte-for-byte what `nft` 1.0.6 writes for the listing in the firewall
//! docs: the same expressions in the same registers ([`rule`]), the same set userdata
//! ([`abi`]), the same data types. That is what lets `nft list ruleset` print weft's tables
//! as readable text, and lets the integration tests compare `nft -j` output with golden files.
//! The helpers here ([`ifname`], [`planned_shape`], [`family_code`]) are the few encodings
//! that `firewall.rs` needs too, to compare what it reads with what it planned.

mod abi;
mod batch;
mod ffi;
mod read;
mod rule;
mod socket;
mod wire;

use std::ffi::CString;

use nftnl::nftnl_sys::libc;
use nix::errno::Errno;

use self::abi::{
    IFNAMSIZ, TYPE_BITS, TYPE_IFNAME, TYPE_INET_PROTO, TYPE_INET_SERVICE, TYPE_IPV4, TYPE_IPV6,
};
pub(super) use self::{
    batch::{BatchBuilder, ElemOp},
    read::ChainInfo,
    socket::Socket,
};
use super::plan::{DNS_PORT, IpFamily, PlannedSet, SetKind, TableFamily};
use crate::kernel::KernelError;

/// What distinguishes one kind of set from another, as the kernel stores it: compared
/// between [`planned_shape`] and what a dump reports, so a set of the right name but the
/// wrong type is rebuilt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SetShape {
    /// `NFT_SET_*` flags: `NFT_SET_MAP` for the port maps, 0 for plain sets.
    pub flags: u32,
    /// nft's data type number of the key; concatenations are packed with `TYPE_BITS`.
    pub key_type: u32,
    /// Key length in bytes (each part of a concatenation padded to 4).
    pub key_len: u32,
    /// A map's data type.
    pub data_type: Option<u32>,
    /// A map's data length in bytes.
    pub data_len: Option<u32>,
}

/// A set element: key and (for a map) data, as raw register bytes.
///
/// Port mappings become elements in `firewall.rs` (`PortMapping::element`): key
/// `[addr .] proto . port`, data `addr . port`, each part padded to 4 bytes, ports in network
/// order. Interface sets hold [`ifname`] / [`ifname_pair`] keys and no data.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Element {
    /// The key bytes.
    pub key: Vec<u8>,
    /// The data bytes, for a map.
    pub data: Option<Vec<u8>>,
}

/// The `NFPROTO_*` number of a table family.
pub(super) fn family_code(family: TableFamily) -> u8 {
    match family {
        TableFamily::Inet => libc::NFPROTO_INET as u8,
        TableFamily::Bridge => libc::NFPROTO_BRIDGE as u8,
    }
}

/// The shape a planned set must have in the kernel.
pub(super) fn planned_shape(set: &PlannedSet) -> SetShape {
    match &set.kind {
        SetKind::Ifnames(_) => SetShape {
            flags: 0,
            key_type: TYPE_IFNAME,
            key_len: IFNAMSIZ as u32,
            data_type: None,
            data_len: None,
        },
        SetKind::IfnamePairs(_) => SetShape {
            flags: 0,
            key_type: (TYPE_IFNAME << TYPE_BITS) | TYPE_IFNAME,
            key_len: 2 * IFNAMSIZ as u32,
            data_type: None,
            data_len: None,
        },
        SetKind::Resolvers(fam, _) => {
            let (addr_type, addr_len) = addr_type_len(*fam);
            SetShape {
                flags: 0,
                key_type: (((((TYPE_IFNAME << TYPE_BITS) | addr_type) << TYPE_BITS)
                    | TYPE_INET_PROTO)
                    << TYPE_BITS)
                    | TYPE_INET_SERVICE,
                key_len: IFNAMSIZ as u32 + addr_len + 8,
                data_type: None,
                data_len: None,
            }
        }
        SetKind::PortMap(m) => {
            let (addr_type, addr_len) = match m.family() {
                IpFamily::V4 => (TYPE_IPV4, 4),
                IpFamily::V6 => (TYPE_IPV6, 16),
            };
            let proto_port = (TYPE_INET_PROTO << TYPE_BITS) | TYPE_INET_SERVICE;
            let (key_type, key_len) = if m.by_address() {
                (
                    (((addr_type << TYPE_BITS) | TYPE_INET_PROTO) << TYPE_BITS) | TYPE_INET_SERVICE,
                    addr_len + 8,
                )
            } else {
                (proto_port, 8)
            };
            SetShape {
                flags: libc::NFT_SET_MAP as u32,
                key_type,
                key_len,
                data_type: Some((addr_type << TYPE_BITS) | TYPE_INET_SERVICE),
                data_len: Some(addr_len + 4),
            }
        }
    }
}

/// nft's type number and the byte length of an address of `fam`.
fn addr_type_len(fam: IpFamily) -> (u32, u32) {
    match fam {
        IpFamily::V4 => (TYPE_IPV4, 4),
        IpFamily::V6 => (TYPE_IPV6, 16),
    }
}

/// The keys a planned set must hold (its planned members as register images); None for a
/// port map, whose elements are not part of the plan.
pub(super) fn planned_keys(set: &PlannedSet) -> Option<Vec<Vec<u8>>> {
    match &set.kind {
        SetKind::Ifnames(members) => Some(members.iter().map(|m| ifname(m)).collect()),
        SetKind::IfnamePairs(members) => {
            Some(members.iter().map(|(a, b)| ifname_pair(a, b)).collect())
        }
        SetKind::Resolvers(_, members) => Some(
            members
                .iter()
                .flat_map(|(bridge, addr)| {
                    [libc::IPPROTO_TCP, libc::IPPROTO_UDP]
                        .map(|proto| resolver_key(bridge, addr, proto as u8))
                })
                .collect(),
        ),
        SetKind::PortMap(_) => None,
    }
}

/// `"<bridge>" . <addr> . <proto> . 53` as a key: the name (16 bytes), the address, the
/// protocol and the port (network order) each padded to 4 bytes.
fn resolver_key(bridge: &str, addr: &std::net::IpAddr, proto: u8) -> Vec<u8> {
    let mut v = ifname(bridge);
    match addr {
        std::net::IpAddr::V4(a) => v.extend_from_slice(&a.octets()),
        std::net::IpAddr::V6(a) => v.extend_from_slice(&a.octets()),
    }
    v.extend_from_slice(&[proto, 0, 0, 0]);
    v.extend_from_slice(&DNS_PORT.to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v
}

/// Two interface names as one concatenated key (32 bytes).
pub(super) fn ifname_pair(a: &str, b: &str) -> Vec<u8> {
    let mut v = ifname(a);
    v.extend_from_slice(&ifname(b));
    v
}

/// An interface name as a 16-byte, NUL padded register value (truncated to 15 bytes, which
/// validation already guarantees).
pub(super) fn ifname(name: &str) -> Vec<u8> {
    let mut v = vec![0u8; IFNAMSIZ];
    let b = name.as_bytes();
    let n = b.len().min(IFNAMSIZ - 1);
    v[..n].copy_from_slice(&b[..n]);
    v
}

/// A name for libnftnl. Names come from the plan, validated to hold no NUL; one that did
/// would lose its NULs rather than fail (so the conversion cannot fail).
fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "")).unwrap_or_default()
}

/// A name as a NUL-terminated attribute value, for the GET requests written by hand.
fn cstring_bytes(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// A kernel error for `op`: the errno an ack carried, with its description.
fn kernel_error(op: &str, errno: i32) -> KernelError {
    let e = Errno::from_raw(errno);
    KernelError::Netlink {
        op: op.to_string(),
        errno: Some(errno),
        message: format!("{} ({e:?})", e.desc()),
    }
}
