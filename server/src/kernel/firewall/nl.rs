//! nftables over netlink: the socket, batches built with `nftnl` (plus `nftnl-sys` where the
//! safe API stops), and dump replies parsed in plain Rust.
//!
//! # Why `unsafe` is allowed here
//! `nftnl` 0.9 has tables without userdata, sets with IPv4/IPv6 keys only (no maps, no data, no
//! concatenations), and expressions that all use register 1. weft needs table comments (its
//! marker), maps with concatenated keys and data, and loads into the 32-bit registers that
//! concatenations use. Those are small extensions written against `nftnl-sys`: allocate a libnftnl
//! object, set attributes, serialise it into the batch buffer nftnl hands us. Every `unsafe`
//! block below is one of those calls, on a pointer this module allocated (and frees in `Drop`)
//! or on the buffer that `nftnl::Batch` guarantees to be large enough for one message
//! (`nftnl::nft_nlmsg_maxsize`). Reading is all safe code: dump replies are plain
//! netlink attributes, parsed by hand.
//!
//! # Sending
//! A finalised batch is a list of pages (128 KiB each). nftnl's own example sends one page per
//! `sendto`, which splits big batches into several transactions and overflows the socket's
//! receive buffer with acks (KERNEL-NOTES). Here every page goes in **one** `sendmsg`, after
//! raising `SO_SNDBUFFORCE`/`SO_RCVBUFFORCE` to fit, so the kernel sees one batch, one
//! transaction. The kernel processes a netfilter batch inside that `sendmsg`, so when it returns
//! every ack is already queued: they are drained without blocking (as `nft` does), and the first
//! error wins.
#![allow(unsafe_code)]

use std::{
    collections::HashMap,
    ffi::{CStr, CString, c_void},
    io::IoSlice,
    os::{
        fd::{AsRawFd, OwnedFd},
        raw::c_char,
    },
    ptr::NonNull,
};

use ipnet::IpNet;
use nftnl::{
    Batch, Chain, MsgType, NlMsg, ProtoFamily, Rule,
    expr::{Bitwise, Cmp, CmpOp, Conntrack, Expression, Masquerade, Meta, Verdict},
    nftnl_sys::{self as sys, libc},
};
use nix::{
    errno::Errno,
    sys::socket::{
        AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv,
        sendmsg, setsockopt, socket,
        sockopt::{RcvBufForce, SndBufForce},
    },
};

use super::plan::{
    Action, ChainType, IpFamily, Match, PlannedRule, PlannedSet, PlannedTable, PortMap, SetKind,
    TableFamily,
};
use crate::kernel::{KernelError, error};

// ---- constants the kernel headers define (values are ABI) ----

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_CREATE: u16 = 0x400;
const NFNL_SUBSYS_NFTABLES: u16 = 10;

const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_NEWSET: u16 = 9;
const NFT_MSG_GETSET: u16 = 10;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_GETSETELEM: u16 = 13;
const NFT_MSG_DELSETELEM: u16 = 14;

/// `NFTA_*` attribute numbers used when parsing replies.
mod attr {
    pub const TABLE_NAME: u16 = 1;
    pub const TABLE_USERDATA: u16 = 6;
    pub const CHAIN_TABLE: u16 = 1;
    pub const CHAIN_NAME: u16 = 3;
    pub const CHAIN_HOOK: u16 = 4;
    pub const CHAIN_POLICY: u16 = 5;
    pub const CHAIN_TYPE: u16 = 7;
    pub const HOOK_HOOKNUM: u16 = 1;
    pub const HOOK_PRIORITY: u16 = 2;
    pub const RULE_TABLE: u16 = 1;
    pub const RULE_CHAIN: u16 = 2;
    pub const SET_TABLE: u16 = 1;
    pub const SET_NAME: u16 = 2;
    pub const SET_FLAGS: u16 = 3;
    pub const SET_KEY_TYPE: u16 = 4;
    pub const SET_KEY_LEN: u16 = 5;
    pub const SET_DATA_TYPE: u16 = 6;
    pub const SET_DATA_LEN: u16 = 7;
    pub const ELEM_LIST_TABLE: u16 = 1;
    pub const ELEM_LIST_SET: u16 = 2;
    pub const ELEM_LIST_ELEMENTS: u16 = 3;
    pub const LIST_ELEM: u16 = 1;
    pub const ELEM_KEY: u16 = 1;
    pub const ELEM_DATA: u16 = 2;
    pub const DATA_VALUE: u16 = 1;
}

/// `IFNAMSIZ`: an interface name in a register or set key is 16 bytes, NUL padded.
const IFNAMSIZ: usize = 16;
/// Data types as nft numbers them (`enum datatypes`), for set keys and data.
const TYPE_IPV4: u32 = 7;
const TYPE_IPV6: u32 = 8;
const TYPE_INET_PROTO: u32 = 12;
const TYPE_INET_SERVICE: u32 = 13;
const TYPE_IFNAME: u32 = 41;
/// Concatenated types: each part shifted in by this many bits (nft's `TYPE_BITS`).
const TYPE_BITS: u32 = 6;

// Set userdata as `nft` 1.0.6 writes it (read off `nft --debug=mnl`), so `nft list` prints
// what weft made exactly as it prints what it would have made itself. TLVs of (type u8,
// len u8, value).

/// `type ifname`: KEYBYTEORDER = host endian (1).
const UDATA_IFNAME_SET: &[u8] = &[0x00, 0x04, 0x01, 0x00, 0x00, 0x00];
/// `type ifname . ifname`: KEYBYTEORDER = 0 (a concatenation) and the KEY_TYPEOF blob nft
/// emits for concatenated `type` declarations.
const UDATA_IFNAME_PAIRS: &[u8] = &[
    0x00, 0x04, 0x00, 0x00, 0x00, 0x00, // key byte order
    0x03, 0x08, 0x00, 0x04, 0x0d, 0x00, 0x00, 0x00, 0x01, 0x00, // key typeof
];
/// Port maps: KEY/DATABYTEORDER = 0 (concatenations mix byte orders), the KEY/DATA_TYPEOF
/// blobs, DATA_INTERVAL = 0.
const UDATA_PORT_MAP: &[u8] = &[
    0x00, 0x04, 0x00, 0x00, 0x00, 0x00, // key byte order
    0x01, 0x04, 0x00, 0x00, 0x00, 0x00, // data byte order
    0x03, 0x08, 0x00, 0x04, 0x0d, 0x00, 0x00, 0x00, 0x01, 0x00, // key typeof
    0x04, 0x08, 0x00, 0x04, 0x0d, 0x00, 0x00, 0x00, 0x01, 0x00, // data typeof
    0x06, 0x04, 0x00, 0x00, 0x00, 0x00, // data interval
];

// ---- the socket ----

/// A `NETLINK_NETFILTER` socket, created in whatever namespace the calling thread is in.
pub(super) struct Socket {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

/// Receive buffer for one `recv`: dumps fill up to what the reader offers.
const RECV_BUF: usize = 1 << 20;

impl Socket {
    /// Opens and binds the socket. Call it on a thread that is inside the target namespace.
    pub(super) fn open() -> Result<Self, KernelError> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkNetFilter,
        )
        .map_err(|e| error::sys("open nftables netlink socket", e))?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))
            .map_err(|e| error::sys("bind nftables netlink socket", e))?;
        // Large enough for the usual replies; raised per batch below.
        setsockopt(&fd, RcvBufForce, &(4 << 20))
            .map_err(|e| error::sys("set SO_RCVBUFFORCE", e))?;
        Ok(Self {
            fd,
            // Far from nftnl's batch sequence numbers, so a stray ack cannot be mistaken.
            seq: 0x4000_0000,
            buf: vec![0; RECV_BUF],
        })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Sends a finalised batch in one `sendmsg` and collects the acks: Ok if the kernel
    /// committed it, else the first error it reported (the whole batch was rolled back).
    pub(super) fn send_batch(&mut self, batch: Batch) -> Result<(), KernelError> {
        let batch = batch.finalize();
        let pages: Vec<&[u8]> = batch.iter().collect();
        let total: usize = pages.iter().map(|p| p.len()).sum();
        let messages = batch.sequence_numbers().len();
        setsockopt(&self.fd, SndBufForce, &(total + (64 << 10)))
            .map_err(|e| error::sys("set SO_SNDBUFFORCE", e))?;
        // Error acks echo the failed message (up to 64 KiB); leave room for a few.
        let rcv = (messages * 2048 + (1 << 20)).clamp(4 << 20, 256 << 20);
        setsockopt(&self.fd, RcvBufForce, &rcv).map_err(|e| error::sys("set SO_RCVBUFFORCE", e))?;
        self.drain()?;
        let iov: Vec<IoSlice<'_>> = pages.iter().map(|p| IoSlice::new(p)).collect();
        let kernel = NetlinkAddr::new(0, 0);
        let sent = sendmsg(
            self.fd.as_raw_fd(),
            &iov,
            &[],
            MsgFlags::empty(),
            Some(&kernel),
        )
        .map_err(|e| error::sys("send nftables batch", e))?;
        if sent != total {
            return Err(error::sys(
                format!("send nftables batch: sent {sent} of {total} bytes"),
                Errno::EMSGSIZE,
            ));
        }
        let mut first_error: Option<(i32, String)> = None;
        loop {
            let n = match recv(self.fd.as_raw_fd(), &mut self.buf, MsgFlags::MSG_DONTWAIT) {
                Ok(0) => break,
                Ok(n) => n,
                Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(error::sys("read nftables batch acks", e)),
            };
            for msg in messages_in(&self.buf[..n]) {
                if msg.ty == NLMSG_ERROR
                    && let Some(code) = msg.error_code()
                    && code != 0
                    && first_error.is_none()
                {
                    first_error = Some((
                        code.abs(),
                        describe_failed(&msg, batch.sequence_numbers().start),
                    ));
                }
            }
        }
        match first_error {
            None => Ok(()),
            Some((errno, which)) => Err(kernel_error(&format!("nftables batch ({which})"), errno)),
        }
    }

    /// Reads and discards anything left in the receive queue.
    fn drain(&mut self) -> Result<(), KernelError> {
        loop {
            match recv(self.fd.as_raw_fd(), &mut self.buf, MsgFlags::MSG_DONTWAIT) {
                Ok(0) | Err(Errno::EAGAIN) => return Ok(()),
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(error::sys("drain nftables socket", e)),
            }
        }
    }

    /// Sends one request and returns every reply message with its sequence number until the
    /// dump's `NLMSG_DONE` or the request's ack. A kernel error is returned as such.
    fn request(&mut self, msg: &[u8], seq: u32, what: &str) -> Result<Vec<Reply>, KernelError> {
        self.drain()?;
        let kernel = NetlinkAddr::new(0, 0);
        sendmsg(
            self.fd.as_raw_fd(),
            &[IoSlice::new(msg)],
            &[],
            MsgFlags::empty(),
            Some(&kernel),
        )
        .map_err(|e| error::sys(format!("send {what}"), e))?;
        let mut out = Vec::new();
        loop {
            let n = match recv(self.fd.as_raw_fd(), &mut self.buf, MsgFlags::empty()) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(error::sys(format!("read {what}"), e)),
            };
            for m in messages_in(&self.buf[..n]) {
                if m.seq != seq {
                    continue;
                }
                match m.ty {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => {
                        return match m.error_code() {
                            Some(0) => Ok(out),
                            Some(code) => Err(kernel_error(what, code.abs())),
                            None => Err(error::sys(format!("{what}: short ack"), Errno::EBADMSG)),
                        };
                    }
                    _ => out.push(Reply {
                        payload: m.payload.to_vec(),
                    }),
                }
            }
        }
    }

    /// Dumps objects of one kind (`NFT_MSG_GET*` with `NLM_F_DUMP`). A missing table or set
    /// (`ENOENT`) is an empty list.
    fn dump(
        &mut self,
        msg_type: u16,
        family: u8,
        attrs: &[(u16, &[u8])],
        what: &str,
    ) -> Result<Vec<Reply>, KernelError> {
        let seq = self.next_seq();
        let msg = request_msg(msg_type, NLM_F_REQUEST | NLM_F_DUMP, family, seq, attrs);
        match self.request(&msg, seq, what) {
            Err(e) if e.errno() == Some(libc::ENOENT) => Ok(Vec::new()),
            other => other,
        }
    }

    // ---- typed reads ----

    /// Every table of every family: (family, name, comment).
    pub(super) fn tables(&mut self) -> Result<Vec<TableInfo>, KernelError> {
        let replies = self.dump(NFT_MSG_GETTABLE, 0, &[], "list nftables tables")?;
        Ok(replies
            .iter()
            .map(|r| {
                let a = Attrs::parse(r.attrs());
                TableInfo {
                    family: r.family(),
                    name: a.string(attr::TABLE_NAME).unwrap_or_default(),
                    comment: a.get(attr::TABLE_USERDATA).and_then(udata_comment),
                }
            })
            .collect())
    }

    /// The chains of one table.
    pub(super) fn chains(
        &mut self,
        family: TableFamily,
        table: &str,
    ) -> Result<Vec<ChainInfo>, KernelError> {
        let name = cstring_bytes(table);
        let replies = self.dump(
            NFT_MSG_GETCHAIN,
            family_code(family),
            &[(attr::CHAIN_TABLE, &name)],
            "list nftables chains",
        )?;
        Ok(replies
            .iter()
            .filter_map(|r| {
                let a = Attrs::parse(r.attrs());
                if a.string(attr::CHAIN_TABLE).as_deref() != Some(table) {
                    return None;
                }
                let hook = a.get(attr::CHAIN_HOOK).map(|h| {
                    let h = Attrs::parse(h);
                    (
                        h.u32_be(attr::HOOK_HOOKNUM).unwrap_or(u32::MAX),
                        h.u32_be(attr::HOOK_PRIORITY).unwrap_or(0) as i32,
                    )
                });
                Some(ChainInfo {
                    name: a.string(attr::CHAIN_NAME).unwrap_or_default(),
                    hook,
                    kind: a.string(attr::CHAIN_TYPE),
                    policy: a.u32_be(attr::CHAIN_POLICY),
                })
            })
            .collect())
    }

    /// How many rules each chain of one table holds.
    pub(super) fn rule_counts(
        &mut self,
        family: TableFamily,
        table: &str,
    ) -> Result<HashMap<String, usize>, KernelError> {
        let name = cstring_bytes(table);
        let replies = self.dump(
            NFT_MSG_GETRULE,
            family_code(family),
            &[(attr::RULE_TABLE, &name)],
            "list nftables rules",
        )?;
        let mut counts = HashMap::new();
        for r in &replies {
            let a = Attrs::parse(r.attrs());
            if a.string(attr::RULE_TABLE).as_deref() != Some(table) {
                continue;
            }
            if let Some(chain) = a.string(attr::RULE_CHAIN) {
                *counts.entry(chain).or_insert(0) += 1;
            }
        }
        Ok(counts)
    }

    /// The sets and maps of one table.
    pub(super) fn sets(
        &mut self,
        family: TableFamily,
        table: &str,
    ) -> Result<Vec<SetInfo>, KernelError> {
        let name = cstring_bytes(table);
        let replies = self.dump(
            NFT_MSG_GETSET,
            family_code(family),
            &[(attr::SET_TABLE, &name)],
            "list nftables sets",
        )?;
        Ok(replies
            .iter()
            .filter_map(|r| {
                let a = Attrs::parse(r.attrs());
                if a.string(attr::SET_TABLE).as_deref() != Some(table) {
                    return None;
                }
                Some(SetInfo {
                    name: a.string(attr::SET_NAME).unwrap_or_default(),
                    shape: SetShape {
                        flags: a.u32_be(attr::SET_FLAGS).unwrap_or(0),
                        key_type: a.u32_be(attr::SET_KEY_TYPE).unwrap_or(0),
                        key_len: a.u32_be(attr::SET_KEY_LEN).unwrap_or(0),
                        data_type: a.u32_be(attr::SET_DATA_TYPE),
                        data_len: a.u32_be(attr::SET_DATA_LEN),
                    },
                })
            })
            .collect())
    }

    /// Every element of one set or map: (key, data) as raw bytes.
    pub(super) fn elements(
        &mut self,
        family: TableFamily,
        table: &str,
        set: &str,
    ) -> Result<Vec<Element>, KernelError> {
        let t = cstring_bytes(table);
        let s = cstring_bytes(set);
        let replies = self.dump(
            NFT_MSG_GETSETELEM,
            family_code(family),
            &[(attr::ELEM_LIST_TABLE, &t), (attr::ELEM_LIST_SET, &s)],
            "list nftables set elements",
        )?;
        let mut out = Vec::new();
        for r in &replies {
            parse_elements(r.attrs(), &mut out);
        }
        Ok(out)
    }

    /// Looks up specific keys of one map (non-dump `GETSETELEM`, one request per key, all
    /// sent at once). Returns the stored element for each key that exists.
    pub(super) fn get_elements(
        &mut self,
        family: TableFamily,
        table: &str,
        set: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Element>, KernelError> {
        let mut found = Vec::new();
        // Bounded chunks keep the queued replies well inside the receive buffer.
        for chunk in keys.chunks(256) {
            self.drain()?;
            let t = cstring_bytes(table);
            let s = cstring_bytes(set);
            let mut buf = Vec::new();
            let mut pending = std::collections::HashSet::new();
            for key in chunk {
                let seq = self.next_seq();
                pending.insert(seq);
                let elements = nest(
                    attr::LIST_ELEM,
                    &nest(attr::ELEM_KEY, &nla(attr::DATA_VALUE, key)),
                );
                let msg = request_msg(
                    NFT_MSG_GETSETELEM,
                    NLM_F_REQUEST | NLM_F_ACK,
                    family_code(family),
                    seq,
                    &[
                        (attr::ELEM_LIST_TABLE, &t),
                        (attr::ELEM_LIST_SET, &s),
                        (attr::ELEM_LIST_ELEMENTS | NLA_F_NESTED, &elements),
                    ],
                );
                buf.extend_from_slice(&msg);
            }
            let kernel = NetlinkAddr::new(0, 0);
            sendmsg(
                self.fd.as_raw_fd(),
                &[IoSlice::new(&buf)],
                &[],
                MsgFlags::empty(),
                Some(&kernel),
            )
            .map_err(|e| error::sys("send nftables element lookups", e))?;
            while !pending.is_empty() {
                let n = match recv(self.fd.as_raw_fd(), &mut self.buf, MsgFlags::empty()) {
                    Ok(n) => n,
                    Err(Errno::EINTR) => continue,
                    Err(e) => return Err(error::sys("read nftables element lookups", e)),
                };
                for m in messages_in(&self.buf[..n]) {
                    if !pending.contains(&m.seq) {
                        continue;
                    }
                    if m.ty == NLMSG_ERROR {
                        let code = m.error_code().unwrap_or(-libc::EBADMSG);
                        if code != 0 && code.abs() != libc::ENOENT {
                            return Err(kernel_error("look up nftables set elements", code.abs()));
                        }
                        pending.remove(&m.seq);
                    } else if m.payload.len() >= 4 {
                        parse_elements(&m.payload[4..], &mut found);
                    }
                }
            }
        }
        Ok(found)
    }
}

/// `fib ... type`: the route type of the looked-up address (`enum nft_fib_result`).
const NFT_FIB_RESULT_ADDRTYPE: u32 = 3;
/// `fib daddr`: look up the destination address (`enum nft_fib_flags`).
const NFTA_FIB_F_DADDR: u32 = 1 << 1;

/// `NLA_F_NESTED`, set on nested attributes in requests.
const NLA_F_NESTED: u16 = 0x8000;

/// One table as the kernel reports it.
#[derive(Debug)]
pub(super) struct TableInfo {
    /// `NFPROTO_*`.
    pub family: u8,
    /// Name.
    pub name: String,
    /// The comment in its userdata, if any.
    pub comment: Option<String>,
}

/// One chain as the kernel reports it.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ChainInfo {
    pub name: String,
    /// (hook number, priority) for a base chain.
    pub hook: Option<(u32, i32)>,
    /// "filter", "nat", ... for a base chain.
    pub kind: Option<String>,
    /// NF_ACCEPT (1) or NF_DROP (0) for a base chain.
    pub policy: Option<u32>,
}

/// One set as the kernel reports it.
#[derive(Debug)]
pub(super) struct SetInfo {
    pub name: String,
    pub shape: SetShape,
}

/// What distinguishes one kind of set from another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SetShape {
    pub flags: u32,
    pub key_type: u32,
    pub key_len: u32,
    pub data_type: Option<u32>,
    pub data_len: Option<u32>,
}

/// A set element: key and (for a map) data, as raw register bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Element {
    pub key: Vec<u8>,
    pub data: Option<Vec<u8>>,
}

/// The `NFPROTO_*` number of a table family.
pub(super) fn family_code(family: TableFamily) -> u8 {
    match family {
        TableFamily::Inet => libc::NFPROTO_INET as u8,
        TableFamily::Bridge => libc::NFPROTO_BRIDGE as u8,
    }
}

fn proto_family(family: TableFamily) -> ProtoFamily {
    match family {
        TableFamily::Inet => ProtoFamily::Inet,
        TableFamily::Bridge => ProtoFamily::Bridge,
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

fn kernel_error(op: &str, errno: i32) -> KernelError {
    let e = Errno::from_raw(errno);
    KernelError::Netlink {
        op: op.to_string(),
        errno: Some(errno),
        message: format!("{} ({e:?})", e.desc()),
    }
}

// ---- building batches ----

/// Builds one batch; objects are serialised into nftnl's buffer as they are added, so nothing
/// here outlives the call that adds it.
pub(super) struct BatchBuilder {
    batch: Batch,
    next_set_id: u32,
}

impl BatchBuilder {
    pub(super) fn new() -> Self {
        Self {
            batch: Batch::new(),
            next_set_id: 1,
        }
    }

    pub(super) fn finish(self) -> Batch {
        self.batch
    }

    /// Deletes a table that may or may not exist: a create (a no-op if it exists) and a
    /// delete, so the batch cannot fail with `ENOENT`.
    pub(super) fn delete_table(&mut self, family: TableFamily, name: &str) {
        let t = TableMsg::new(family, name, None);
        self.batch.add(&t, MsgType::Add);
        self.batch.add(&t, MsgType::Del);
    }

    /// Creates a planned table with everything in it: the comment, its sets (with planned
    /// members), maps (with `preserved` elements re-added), chains and rules.
    pub(super) fn create_table(
        &mut self,
        table: &PlannedTable,
        comment: &str,
        preserved: &HashMap<String, Vec<Element>>,
    ) {
        self.batch.add(
            &TableMsg::new(table.family, &table.name, Some(comment)),
            MsgType::Add,
        );
        let mut set_ids = HashMap::new();
        for s in &table.sets {
            let id = self.next_set_id;
            self.next_set_id += 1;
            set_ids.insert(s.name.clone(), id);
            let mut set = RawSet::new(table.family, &table.name, &s.name, Some(id));
            let shape = planned_shape(s);
            set.set_u32(sys::NFTNL_SET_FLAGS, shape.flags);
            set.set_u32(sys::NFTNL_SET_KEY_TYPE, shape.key_type);
            set.set_u32(sys::NFTNL_SET_KEY_LEN, shape.key_len);
            if let (Some(t), Some(l)) = (shape.data_type, shape.data_len) {
                set.set_u32(sys::NFTNL_SET_DATA_TYPE, t);
                set.set_u32(sys::NFTNL_SET_DATA_LEN, l);
            }
            set.set_data(
                sys::NFTNL_SET_USERDATA,
                match s.kind {
                    SetKind::Ifnames(_) => UDATA_IFNAME_SET,
                    SetKind::IfnamePairs(_) => UDATA_IFNAME_PAIRS,
                    SetKind::PortMap(_) => UDATA_PORT_MAP,
                },
            );
            self.batch.add(&SetDecl(&set), MsgType::Add);
            match &s.kind {
                SetKind::Ifnames(members) => {
                    for m in members {
                        set.add_element(&ifname(m), None);
                    }
                }
                SetKind::IfnamePairs(members) => {
                    for (a, b) in members {
                        set.add_element(&ifname_pair(a, b), None);
                    }
                }
                SetKind::PortMap(_) => {
                    for e in preserved.get(&s.name).into_iter().flatten() {
                        set.add_element(&e.key, e.data.as_deref());
                    }
                }
            }
            self.add_elements(&set, ElemOp::Add);
        }
        let t = nftnl::Table::new(cstring(&table.name), proto_family(table.family));
        let chains: Vec<Chain<'_>> = table
            .chains
            .iter()
            .map(|c| {
                let mut chain = Chain::new(cstring(&c.name), &t);
                if let Some(b) = &c.base {
                    chain.set_hook(hook(b.hook), b.priority);
                    chain.set_type(match b.kind {
                        ChainType::Filter => nftnl::ChainType::Filter,
                        ChainType::Nat => nftnl::ChainType::Nat,
                    });
                    chain.set_policy(nftnl::Policy::Accept);
                }
                chain
            })
            .collect();
        // Every chain before any rule: a `jump` needs its target to exist.
        for chain in &chains {
            self.batch.add(chain, MsgType::Add);
        }
        for (chain, c) in chains.iter().zip(&table.chains) {
            for r in &c.rules {
                let rule = build_rule(chain, table.family, r, &set_ids);
                self.batch.add(&rule, MsgType::Add);
            }
        }
    }

    /// Adds or deletes elements of an existing set or map of `inet weft`.
    pub(super) fn elements(
        &mut self,
        family: TableFamily,
        table: &str,
        set: &str,
        elements: &[Element],
        op: ElemOp,
    ) {
        if elements.is_empty() {
            return;
        }
        let mut raw = RawSet::new(family, table, set, None);
        for e in elements {
            raw.add_element(&e.key, e.data.as_deref());
        }
        self.add_elements(&raw, op);
    }

    /// One message per ~64 KiB of elements (libnftnl's iterator fills each to the limit).
    fn add_elements(&mut self, set: &RawSet, op: ElemOp) {
        // SAFETY: `set` is a live nftnl_set; the iterator is destroyed below, before `set`
        // can be dropped (it borrows it).
        let iter = unsafe { sys::nftnl_set_elems_iter_create(set.ptr.as_ptr()) };
        let Some(iter) = NonNull::new(iter) else {
            std::process::abort(); // out of memory, as nftnl itself does
        };
        let chunk = ElemChunk {
            set,
            iter,
            more: std::cell::Cell::new(1),
            op,
        };
        // SAFETY: `iter` is valid until destroyed below.
        while chunk.more.get() > 0
            && !unsafe { sys::nftnl_set_elems_iter_cur(iter.as_ptr()) }.is_null()
        {
            self.batch.add(&chunk, MsgType::Add);
        }
        // SAFETY: created above, destroyed once.
        unsafe { sys::nftnl_set_elems_iter_destroy(iter.as_ptr()) };
    }
}

/// Whether an element message adds or deletes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ElemOp {
    /// `NEWSETELEM` with `NLM_F_CREATE` and no `NLM_F_EXCL`: an identical element already
    /// there is fine, one with the same key and other data is `EEXIST`.
    Add,
    /// `DELSETELEM`: a missing key is `ENOENT` (and fails the batch).
    Del,
}

fn hook(h: super::plan::Hook) -> nftnl::Hook {
    use super::plan::Hook as H;
    match h {
        H::Prerouting => nftnl::Hook::PreRouting,
        H::Output => nftnl::Hook::Out,
        H::Forward => nftnl::Hook::Forward,
        H::Postrouting => nftnl::Hook::PostRouting,
    }
}

fn cstring(s: &str) -> CString {
    // Names come from the plan (validated: no NUL).
    CString::new(s.replace('\0', "")).expect("no NUL")
}

fn cstring_bytes(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// Two interface names as one concatenated key (32 bytes).
pub(super) fn ifname_pair(a: &str, b: &str) -> Vec<u8> {
    let mut v = ifname(a);
    v.extend_from_slice(&ifname(b));
    v
}

/// An interface name as a 16-byte, NUL padded register value.
pub(super) fn ifname(name: &str) -> Vec<u8> {
    let mut v = vec![0u8; IFNAMSIZ];
    let b = name.as_bytes();
    let n = b.len().min(IFNAMSIZ - 1);
    v[..n].copy_from_slice(&b[..n]);
    v
}

/// A table message with optional comment (userdata TLV `NFTNL_UDATA_TABLE_COMMENT`), which
/// `nftnl::Table` cannot carry.
struct TableMsg {
    ptr: NonNull<sys::nftnl_table>,
    family: TableFamily,
}

impl TableMsg {
    fn new(family: TableFamily, name: &str, comment: Option<&str>) -> Self {
        // SAFETY: allocation; checked for NULL.
        let Some(ptr) = NonNull::new(unsafe { sys::nftnl_table_alloc() }) else {
            std::process::abort();
        };
        let name = cstring(name);
        // SAFETY: `ptr` is a live table; libnftnl copies the strings and data.
        unsafe {
            sys::nftnl_table_set_u32(
                ptr.as_ptr(),
                sys::NFTNL_TABLE_FAMILY as u16,
                u32::from(family_code(family)),
            );
            sys::nftnl_table_set_str(ptr.as_ptr(), sys::NFTNL_TABLE_NAME as u16, name.as_ptr());
        }
        if let Some(c) = comment {
            let mut udata = vec![sys::NFTNL_UDATA_TABLE_COMMENT as u8, 0];
            udata.extend_from_slice(c.as_bytes());
            udata.push(0);
            udata[1] = (udata.len() - 2) as u8;
            // SAFETY: as above; `udata` outlives the call (libnftnl copies it).
            unsafe {
                sys::nftnl_table_set_data(
                    ptr.as_ptr(),
                    sys::NFTNL_TABLE_USERDATA as u16,
                    udata.as_ptr().cast::<c_void>(),
                    udata.len() as u32,
                );
            }
        }
        Self { ptr, family }
    }
}

impl Drop for TableMsg {
    fn drop(&mut self) {
        // SAFETY: allocated in `new`, freed once.
        unsafe { sys::nftnl_table_free(self.ptr.as_ptr()) };
    }
}

// SAFETY: writes one table message, which is far smaller than `nft_nlmsg_maxsize()`, into the
// buffer nftnl's batch provides.
unsafe impl NlMsg for TableMsg {
    unsafe fn write(&self, buf: *mut c_void, seq: u32, msg_type: MsgType) {
        let (ty, flags) = match msg_type {
            MsgType::Add => (NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_ACK),
            MsgType::Del => (NFT_MSG_DELTABLE, NLM_F_ACK),
        };
        // SAFETY: the caller guarantees `buf` has room for one message.
        unsafe {
            let nlh = sys::nftnl_nlmsg_build_hdr(
                buf.cast::<c_char>(),
                ty,
                u16::from(family_code(self.family)),
                flags,
                seq,
            );
            sys::nftnl_table_nlmsg_build_payload(nlh, self.ptr.as_ptr());
        }
    }
}

/// An `nftnl_set` of any shape (the safe `nftnl::set::Set` only knows IP address keys),
/// optionally with elements that carry data.
struct RawSet {
    ptr: NonNull<sys::nftnl_set>,
    family: TableFamily,
}

impl RawSet {
    fn new(family: TableFamily, table: &str, name: &str, id: Option<u32>) -> Self {
        // SAFETY: allocation; checked for NULL.
        let Some(ptr) = NonNull::new(unsafe { sys::nftnl_set_alloc() }) else {
            std::process::abort();
        };
        let (table, name) = (cstring(table), cstring(name));
        // SAFETY: `ptr` is a live set; libnftnl copies the strings.
        unsafe {
            sys::nftnl_set_set_u32(
                ptr.as_ptr(),
                sys::NFTNL_SET_FAMILY as u16,
                u32::from(family_code(family)),
            );
            sys::nftnl_set_set_str(ptr.as_ptr(), sys::NFTNL_SET_TABLE as u16, table.as_ptr());
            sys::nftnl_set_set_str(ptr.as_ptr(), sys::NFTNL_SET_NAME as u16, name.as_ptr());
            if let Some(id) = id {
                sys::nftnl_set_set_u32(ptr.as_ptr(), sys::NFTNL_SET_ID as u16, id);
            }
        }
        Self { ptr, family }
    }

    fn set_u32(&mut self, attr: u32, value: u32) {
        // SAFETY: live set.
        unsafe { sys::nftnl_set_set_u32(self.ptr.as_ptr(), attr as u16, value) };
    }

    fn set_data(&mut self, attr: u32, data: &[u8]) {
        // SAFETY: live set; libnftnl copies `data`.
        unsafe {
            sys::nftnl_set_set_data(
                self.ptr.as_ptr(),
                attr as u16,
                data.as_ptr().cast::<c_void>(),
                data.len() as u32,
            )
        };
    }

    /// Adds an element (key, and data for a map) to the set's in-memory list.
    fn add_element(&mut self, key: &[u8], data: Option<&[u8]>) {
        // SAFETY: allocation; checked for NULL. The element is handed to the set, which frees
        // it with itself; libnftnl copies key and data (at most 64 bytes each, and ours are
        // at most 24).
        unsafe {
            let Some(elem) = NonNull::new(sys::nftnl_set_elem_alloc()) else {
                std::process::abort();
            };
            sys::nftnl_set_elem_set(
                elem.as_ptr(),
                sys::NFTNL_SET_ELEM_KEY as u16,
                key.as_ptr().cast::<c_void>(),
                key.len() as u32,
            );
            if let Some(data) = data {
                sys::nftnl_set_elem_set(
                    elem.as_ptr(),
                    sys::NFTNL_SET_ELEM_DATA as u16,
                    data.as_ptr().cast::<c_void>(),
                    data.len() as u32,
                );
            }
            sys::nftnl_set_elem_add(self.ptr.as_ptr(), elem.as_ptr());
        }
    }
}

impl Drop for RawSet {
    fn drop(&mut self) {
        // SAFETY: allocated in `new`, freed once (with its elements).
        unsafe { sys::nftnl_set_free(self.ptr.as_ptr()) };
    }
}

/// The `NEWSET` message of a [`RawSet`].
struct SetDecl<'a>(&'a RawSet);

// SAFETY: one set declaration (name, table, types, lengths, a small userdata) fits the buffer.
unsafe impl NlMsg for SetDecl<'_> {
    unsafe fn write(&self, buf: *mut c_void, seq: u32, _msg_type: MsgType) {
        // SAFETY: the caller guarantees `buf` has room for one message.
        unsafe {
            let nlh = sys::nftnl_nlmsg_build_hdr(
                buf.cast::<c_char>(),
                NFT_MSG_NEWSET,
                u16::from(family_code(self.0.family)),
                NLM_F_CREATE | NLM_F_ACK,
                seq,
            );
            sys::nftnl_set_nlmsg_build_payload(nlh, self.0.ptr.as_ptr());
        }
    }
}

/// One `NEWSETELEM`/`DELSETELEM` message: as many elements from the iterator as fit.
struct ElemChunk<'a> {
    set: &'a RawSet,
    iter: NonNull<sys::nftnl_set_elems_iter>,
    /// What the last build returned: > 0 while elements remain.
    more: std::cell::Cell<i32>,
    op: ElemOp,
}

// SAFETY: libnftnl stops adding elements before the nest outgrows 64 KiB, which is what
// `nft_nlmsg_maxsize()` leaves room for.
unsafe impl NlMsg for ElemChunk<'_> {
    unsafe fn write(&self, buf: *mut c_void, seq: u32, _msg_type: MsgType) {
        let (ty, flags) = match self.op {
            ElemOp::Add => (NFT_MSG_NEWSETELEM, NLM_F_CREATE | NLM_F_ACK),
            ElemOp::Del => (NFT_MSG_DELSETELEM, NLM_F_ACK),
        };
        // SAFETY: the caller guarantees room in `buf`; `iter` is live (see `add_elements`).
        let more = unsafe {
            let nlh = sys::nftnl_nlmsg_build_hdr(
                buf.cast::<c_char>(),
                ty,
                u16::from(family_code(self.set.family)),
                flags,
                seq,
            );
            sys::nftnl_set_elems_nlmsg_build_payload_iter(nlh, self.iter.as_ptr())
        };
        self.more.set(more);
    }
}

// ---- expressions nftnl lacks ----

/// Expressions written directly against libnftnl: loads into any register, set lookups by
/// name (with a data register for maps), `fib`, and NAT from the concatenation registers.
enum X<'a> {
    /// `meta <key> => reg`.
    Meta { key: i32, dreg: i32 },
    /// `payload load <len>b @ <base> + <offset> => reg`.
    Payload {
        base: i32,
        offset: u32,
        len: u32,
        dreg: i32,
    },
    /// `fib daddr type => reg 1`.
    FibDaddrType,
    /// `lookup reg 1 set <name> [dreg 1]`.
    Lookup {
        set: &'a CStr,
        id: Option<u32>,
        dreg: Option<i32>,
    },
    /// `nat dnat <family> addr_min <reg> proto_min <reg>`.
    Dnat { family: i32, addr: i32, proto: i32 },
}

impl Expression for X<'_> {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        let name: &CStr = match self {
            X::Meta { .. } => c"meta",
            X::Payload { .. } => c"payload",
            X::FibDaddrType => c"fib",
            X::Lookup { .. } => c"lookup",
            X::Dnat { .. } => c"nat",
        };
        // SAFETY: allocation; checked for NULL. The rule takes ownership of the expression.
        let Some(e) = NonNull::new(unsafe { sys::nftnl_expr_alloc(name.as_ptr()) }) else {
            std::process::abort();
        };
        let p = e.as_ptr();
        let set = |attr: u32, v: u32| {
            // SAFETY: `p` is the live expression allocated above.
            unsafe { sys::nftnl_expr_set_u32(p, attr as u16, v) }
        };
        match self {
            X::Meta { key, dreg } => {
                set(sys::NFTNL_EXPR_META_KEY, *key as u32);
                set(sys::NFTNL_EXPR_META_DREG, *dreg as u32);
            }
            X::Payload {
                base,
                offset,
                len,
                dreg,
            } => {
                set(sys::NFTNL_EXPR_PAYLOAD_DREG, *dreg as u32);
                set(sys::NFTNL_EXPR_PAYLOAD_BASE, *base as u32);
                set(sys::NFTNL_EXPR_PAYLOAD_OFFSET, *offset);
                set(sys::NFTNL_EXPR_PAYLOAD_LEN, *len);
            }
            X::FibDaddrType => {
                set(sys::NFTNL_EXPR_FIB_DREG, libc::NFT_REG_1 as u32);
                set(sys::NFTNL_EXPR_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
                set(sys::NFTNL_EXPR_FIB_FLAGS, NFTA_FIB_F_DADDR);
            }
            X::Lookup {
                set: name,
                id,
                dreg,
            } => {
                set(sys::NFTNL_EXPR_LOOKUP_SREG, libc::NFT_REG_1 as u32);
                // SAFETY: live expression; libnftnl copies the string.
                unsafe {
                    sys::nftnl_expr_set_str(p, sys::NFTNL_EXPR_LOOKUP_SET as u16, name.as_ptr())
                };
                if let Some(id) = id {
                    set(sys::NFTNL_EXPR_LOOKUP_SET_ID, *id);
                }
                if let Some(dreg) = dreg {
                    set(sys::NFTNL_EXPR_LOOKUP_DREG, *dreg as u32);
                }
            }
            X::Dnat {
                family,
                addr,
                proto,
            } => {
                set(sys::NFTNL_EXPR_NAT_TYPE, libc::NFT_NAT_DNAT as u32);
                set(sys::NFTNL_EXPR_NAT_FAMILY, *family as u32);
                set(sys::NFTNL_EXPR_NAT_REG_ADDR_MIN, *addr as u32);
                set(sys::NFTNL_EXPR_NAT_REG_PROTO_MIN, *proto as u32);
            }
        }
        e
    }
}

/// 32-bit registers, as concatenations use them (`NFT_REG32_00` + n).
const fn reg32(n: i32) -> i32 {
    libc::NFT_REG32_00 + n
}

/// Encodes one planned rule exactly as `nft` 1.0.6 encodes the same text (checked with
/// `nft --debug=netlink`), so `nft list` reads it back as that text.
fn build_rule<'a>(
    chain: &'a Chain<'a>,
    family: TableFamily,
    planned: &PlannedRule,
    set_ids: &HashMap<String, u32>,
) -> Rule<'a> {
    let mut rule = Rule::new(chain);
    let names: Vec<CString> = planned
        .matches
        .iter()
        .filter_map(|m| match m {
            Match::IifInSet(s) | Match::OifInSet(s) | Match::IifOifInSet(s) => Some(cstring(s)),
            _ => None,
        })
        .collect();
    let mut set_names = names.iter();
    for m in &planned.matches {
        match m {
            Match::NfProto(f) => nfproto(&mut rule, *f),
            Match::FibDaddrLocal => {
                rule.add_expr(&X::FibDaddrType);
                rule.add_expr(&Cmp::new(
                    CmpOp::Eq,
                    (libc::RTN_LOCAL as u32).to_ne_bytes().as_slice(),
                ));
            }
            Match::IifName(n) | Match::OifName(n) | Match::OifNameNot(n) => {
                rule.add_expr(&if matches!(m, Match::IifName(_)) {
                    Meta::IifName
                } else {
                    Meta::OifName
                });
                let op = if matches!(m, Match::OifNameNot(_)) {
                    CmpOp::Neq
                } else {
                    CmpOp::Eq
                };
                rule.add_expr(&Cmp::new(op, ifname(n).as_slice()));
            }
            Match::IifInSet(s) | Match::OifInSet(s) => {
                rule.add_expr(&if matches!(m, Match::IifInSet(_)) {
                    Meta::IifName
                } else {
                    Meta::OifName
                });
                let name = set_names.next().expect("one name per set match");
                rule.add_expr(&X::Lookup {
                    set: name,
                    id: set_ids.get(s).copied(),
                    dreg: None,
                });
            }
            Match::IifOifInSet(s) => {
                // The two names fill registers 1 and 2 (16 bytes each): one 32-byte key.
                rule.add_expr(&X::Meta {
                    key: libc::NFT_META_IIFNAME,
                    dreg: libc::NFT_REG_1,
                });
                rule.add_expr(&X::Meta {
                    key: libc::NFT_META_OIFNAME,
                    dreg: libc::NFT_REG_2,
                });
                let name = set_names.next().expect("one name per set match");
                rule.add_expr(&X::Lookup {
                    set: name,
                    id: set_ids.get(s).copied(),
                    dreg: None,
                });
            }
            Match::Saddr(net) => saddr(&mut rule, family, net),
            Match::CtEstablishedRelated | Match::CtStatusDnat => {
                let (key, bits) = if matches!(m, Match::CtEstablishedRelated) {
                    (Conntrack::State, 0x2 | 0x4)
                } else {
                    (Conntrack::Status, 0x20)
                };
                rule.add_expr(&key);
                let zero = 0u32.to_ne_bytes();
                rule.add_expr(&Bitwise::new(
                    (bits as u32).to_ne_bytes().as_slice(),
                    zero.as_slice(),
                ));
                rule.add_expr(&Cmp::new(CmpOp::Neq, zero.as_slice()));
            }
        }
    }
    match &planned.action {
        Action::Accept => rule.add_expr(&Verdict::Accept),
        Action::Drop => rule.add_expr(&Verdict::Drop),
        Action::Masquerade => rule.add_expr(&Masquerade),
        Action::Jump(c) => rule.add_expr(&Verdict::Jump { chain: cstring(c) }),
        Action::DnatMap(m) => dnat_map(&mut rule, *m, set_ids),
    }
    rule
}

/// `meta nfproto ipv4|ipv6`.
fn nfproto(rule: &mut Rule<'_>, f: IpFamily) {
    rule.add_expr(&Meta::NfProto);
    let v = match f {
        IpFamily::V4 => libc::NFPROTO_IPV4,
        IpFamily::V6 => libc::NFPROTO_IPV6,
    } as u8;
    rule.add_expr(&Cmp::new(CmpOp::Eq, [v].as_slice()));
}

/// `ip saddr <net>` / `ip6 saddr <net>`: the family check (`meta nfproto` in inet, the ether
/// type in bridge), then the prefix bytes (whole bytes compared directly, otherwise the whole
/// address masked).
fn saddr(rule: &mut Rule<'_>, family: TableFamily, net: &IpNet) {
    let (f, offset, addr): (IpFamily, u32, Vec<u8>) = match net {
        IpNet::V4(n) => (IpFamily::V4, 12, n.network().octets().to_vec()),
        IpNet::V6(n) => (IpFamily::V6, 8, n.network().octets().to_vec()),
    };
    match family {
        TableFamily::Inet => nfproto(rule, f),
        TableFamily::Bridge => {
            rule.add_expr(&Meta::Protocol);
            let ethertype: u16 = match f {
                IpFamily::V4 => 0x0800,
                IpFamily::V6 => 0x86dd,
            };
            rule.add_expr(&Cmp::new(CmpOp::Eq, ethertype.to_be_bytes().as_slice()));
        }
    }
    let prefix = u32::from(net.prefix_len());
    if prefix == 0 {
        return;
    }
    let reg = libc::NFT_REG_1;
    let base = libc::NFT_PAYLOAD_NETWORK_HEADER;
    if prefix % 8 == 0 {
        let len = prefix / 8;
        rule.add_expr(&X::Payload {
            base,
            offset,
            len,
            dreg: reg,
        });
        rule.add_expr(&Cmp::new(CmpOp::Eq, &addr[..len as usize]));
    } else {
        let len = addr.len() as u32;
        rule.add_expr(&X::Payload {
            base,
            offset,
            len,
            dreg: reg,
        });
        let mask: Vec<u8> = match net {
            IpNet::V4(n) => n.netmask().octets().to_vec(),
            IpNet::V6(n) => n.netmask().octets().to_vec(),
        };
        let zero = vec![0u8; addr.len()];
        rule.add_expr(&Bitwise::new(mask.as_slice(), zero.as_slice()));
        rule.add_expr(&Cmp::new(CmpOp::Eq, addr.as_slice()));
    }
}

/// `dnat ip|ip6 to [ip daddr .] meta l4proto . th dport map @m`, register layout as nft
/// allocates it: the key is built from register 1 on (32-bit slots), the map's data lands in
/// register 1 (address) and the slot right after the address (port).
fn dnat_map(rule: &mut Rule<'_>, m: PortMap, set_ids: &HashMap<String, u32>) {
    let (family, addr_len) = match m.family() {
        IpFamily::V4 => (libc::NFPROTO_IPV4, 4u32),
        IpFamily::V6 => (libc::NFPROTO_IPV6, 16u32),
    };
    let th_dport = |dreg| X::Payload {
        base: libc::NFT_PAYLOAD_TRANSPORT_HEADER,
        offset: 2,
        len: 2,
        dreg,
    };
    if m.by_address() {
        nfproto(rule, m.family());
        // daddr: IPv4 at offset 16, IPv6 at 24.
        let offset = if addr_len == 4 { 16 } else { 24 };
        rule.add_expr(&X::Payload {
            base: libc::NFT_PAYLOAD_NETWORK_HEADER,
            offset,
            len: addr_len,
            dreg: libc::NFT_REG_1,
        });
        let slot = (addr_len / 4) as i32;
        rule.add_expr(&X::Meta {
            key: libc::NFT_META_L4PROTO,
            dreg: reg32(slot),
        });
        rule.add_expr(&th_dport(reg32(slot + 1)));
    } else {
        rule.add_expr(&X::Meta {
            key: libc::NFT_META_L4PROTO,
            dreg: libc::NFT_REG_1,
        });
        rule.add_expr(&th_dport(reg32(1)));
    }
    let name = cstring(m.name());
    rule.add_expr(&X::Lookup {
        set: &name,
        id: set_ids.get(m.name()).copied(),
        dreg: Some(libc::NFT_REG_1),
    });
    rule.add_expr(&X::Dnat {
        family,
        addr: libc::NFT_REG_1,
        proto: reg32((addr_len / 4) as i32),
    });
}

// ---- parsing ----

/// Names the message an error ack refers to (the ack echoes its header): "message 7 of the
/// batch, NEWRULE". The batch as a whole was rolled back.
fn describe_failed(ack: &Message<'_>, first_seq: u32) -> String {
    let Some(h) = ack.payload.get(4..20) else {
        return "the batch".to_string();
    };
    let ty = u16::from_ne_bytes([h[4], h[5]]) & 0xff;
    let seq = u32::from_ne_bytes([h[8], h[9], h[10], h[11]]);
    let name = match ty {
        0 => "NEWTABLE",
        2 => "DELTABLE",
        3 => "NEWCHAIN",
        6 => "NEWRULE",
        9 => "NEWSET",
        12 => "NEWSETELEM",
        14 => "DELSETELEM",
        _ => "message",
    };
    format!(
        "{name}, message {} of the batch",
        seq.wrapping_sub(first_seq)
    )
}

/// One netlink message in a receive buffer.
struct Message<'a> {
    ty: u16,
    seq: u32,
    /// Everything after the 16-byte header.
    payload: &'a [u8],
}

impl Message<'_> {
    /// For `NLMSG_ERROR`: the (negative) errno, 0 for an ack.
    fn error_code(&self) -> Option<i32> {
        self.payload
            .get(..4)
            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// A reply to a GET: the payload after the netlink header.
pub(super) struct Reply {
    payload: Vec<u8>,
}

impl Reply {
    /// `nfgenmsg.nfgen_family`.
    fn family(&self) -> u8 {
        self.payload.first().copied().unwrap_or(0)
    }

    /// The attributes after the 4-byte `nfgenmsg`.
    fn attrs(&self) -> &[u8] {
        self.payload.get(4..).unwrap_or(&[])
    }
}

fn messages_in(buf: &[u8]) -> Vec<Message<'_>> {
    let mut out = Vec::new();
    let mut rest = buf;
    while rest.len() >= 16 {
        let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if len < 16 || len > rest.len() {
            break;
        }
        let ty = u16::from_ne_bytes([rest[4], rest[5]]);
        let seq = u32::from_ne_bytes([rest[8], rest[9], rest[10], rest[11]]);
        out.push(Message {
            ty,
            seq,
            payload: &rest[16..len],
        });
        let aligned = (len + 3) & !3;
        rest = rest.get(aligned..).unwrap_or(&[]);
    }
    out
}

/// Netlink attributes of one level, by type (the last one wins, which never matters here).
struct Attrs<'a> {
    list: Vec<(u16, &'a [u8])>,
}

impl<'a> Attrs<'a> {
    fn parse(mut buf: &'a [u8]) -> Self {
        let mut list = Vec::new();
        while buf.len() >= 4 {
            let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
            let ty = u16::from_ne_bytes([buf[2], buf[3]]) & 0x3fff;
            if len < 4 || len > buf.len() {
                break;
            }
            list.push((ty, &buf[4..len]));
            let aligned = (len + 3) & !3;
            buf = buf.get(aligned..).unwrap_or(&[]);
        }
        Self { list }
    }

    fn get(&self, ty: u16) -> Option<&'a [u8]> {
        self.list
            .iter()
            .rev()
            .find(|(t, _)| *t == ty)
            .map(|(_, v)| *v)
    }

    fn all(&self, ty: u16) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.list
            .iter()
            .filter(move |(t, _)| *t == ty)
            .map(|(_, v)| *v)
    }

    fn string(&self, ty: u16) -> Option<String> {
        self.get(ty).map(|v| {
            let end = v.iter().position(|b| *b == 0).unwrap_or(v.len());
            String::from_utf8_lossy(&v[..end]).into_owned()
        })
    }

    fn u32_be(&self, ty: u16) -> Option<u32> {
        self.get(ty)
            .filter(|v| v.len() >= 4)
            .map(|v| u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
    }
}

/// The comment TLV (type 0) in a table's userdata.
fn udata_comment(udata: &[u8]) -> Option<String> {
    let mut rest = udata;
    while rest.len() >= 2 {
        let (ty, len) = (rest[0], rest[1] as usize);
        let value = rest.get(2..2 + len)?;
        if u32::from(ty) == sys::NFTNL_UDATA_TABLE_COMMENT {
            let end = value.iter().position(|b| *b == 0).unwrap_or(value.len());
            return Some(String::from_utf8_lossy(&value[..end]).into_owned());
        }
        rest = &rest[2 + len..];
    }
    None
}

/// Collects the elements of one `NEWSETELEM` reply.
fn parse_elements(attrs: &[u8], out: &mut Vec<Element>) {
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

// ---- request encoding (GETs are simple enough to write by hand) ----

fn nla(ty: u16, value: &[u8]) -> Vec<u8> {
    let len = 4 + value.len();
    let mut v = Vec::with_capacity((len + 3) & !3);
    v.extend_from_slice(&(len as u16).to_ne_bytes());
    v.extend_from_slice(&ty.to_ne_bytes());
    v.extend_from_slice(value);
    v.resize((len + 3) & !3, 0);
    v
}

fn nest(ty: u16, inner: &[u8]) -> Vec<u8> {
    nla(ty | NLA_F_NESTED, inner)
}

fn request_msg(msg_type: u16, flags: u16, family: u8, seq: u32, attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut body = vec![family, 0 /* NFNETLINK_V0 */, 0, 0];
    for (ty, value) in attrs {
        body.extend_from_slice(&nla(*ty, value));
    }
    let len = 16 + body.len();
    let mut msg = Vec::with_capacity(len);
    msg.extend_from_slice(&(len as u32).to_ne_bytes());
    msg.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | msg_type).to_ne_bytes());
    msg.extend_from_slice(&flags.to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&body);
    msg
}
