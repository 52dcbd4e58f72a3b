//! The only `unsafe` code of the firewall: small extensions of `nftnl` written against
//! `nftnl-sys` (libnftnl), for the objects and expressions the safe crate cannot express.
//!
//! # Why `unsafe` is allowed here, and only here
//! The workspace denies `unsafe_code`. `nftnl` 0.9 has tables without userdata, sets with
//! IPv4/IPv6 keys only (no maps, no data, no concatenations), and expressions that all use
//! register 1. weft needs table comments (its marker), maps with concatenated keys and data,
//! and loads into the 32-bit registers that concatenations use. Each of those is a small
//! wrapper here: allocate a libnftnl object, set attributes, serialise it into the batch
//! buffer nftnl hands us. Every `unsafe` block is one of those calls, on a pointer this module
//! allocated (and frees in `Drop`) or on the buffer that `nftnl::Batch` guarantees to be large
//! enough for one message (`nftnl::nft_nlmsg_maxsize`). The rest of `nl` (the socket, the
//! builder, the rule encoder, the parser) is safe code that uses these types.
//!
//! Ownership: libnftnl copies every string and byte buffer it is given, so no Rust borrow has
//! to outlive a setter call. An element added to a set is owned by the set and freed with it;
//! an expression handed back from [`X::to_expr`] is owned by the rule nftnl adds it to. An
//! allocation failure aborts the process, as nftnl itself does.

// The crate denies `unsafe_code`; this file is the FFI boundary for nftables (see above).
#![allow(unsafe_code)]

use std::{
    cell::Cell,
    ffi::{CStr, c_void},
    os::raw::c_char,
    ptr::NonNull,
};

use nftnl::{
    Batch, MsgType, NlMsg, Rule,
    expr::Expression,
    nftnl_sys::{self as sys, libc},
};

use super::{
    ElemOp,
    abi::{
        NFT_FIB_RESULT_ADDRTYPE, NFT_MSG_DELSETELEM, NFT_MSG_DELTABLE, NFT_MSG_NEWSET,
        NFT_MSG_NEWSETELEM, NFT_MSG_NEWTABLE, NFTA_FIB_F_DADDR, NLM_F_ACK, NLM_F_CREATE,
    },
    cstring, family_code,
};
use crate::kernel::firewall::plan::TableFamily;

/// Writes an nftables message header for `family` into `buf` and returns it, for a
/// `nftnl_*_nlmsg_build_payload` to append to.
///
/// # Safety
/// `buf` must have room for one message (what `NlMsg::write` is promised).
unsafe fn build_hdr(
    buf: *mut c_void,
    ty: u16,
    family: TableFamily,
    flags: u16,
    seq: u32,
) -> *mut libc::nlmsghdr {
    // SAFETY: forwarded from the caller.
    unsafe {
        sys::nftnl_nlmsg_build_hdr(
            buf.cast::<c_char>(),
            ty,
            u16::from(family_code(family)),
            flags,
            seq,
        )
    }
}

/// The longest key or data of a set element: the kernel's `NFT_DATA_VALUE_MAXLEN`, the size
/// of libnftnl's buffer for either.
pub(super) const ELEMENT_VALUE_MAX: usize = 64;

/// A table message with optional comment (userdata TLV `NFTNL_UDATA_TABLE_COMMENT`), which
/// `nftnl::Table` cannot carry.
pub(super) struct TableMsg {
    ptr: NonNull<sys::nftnl_table>,
    family: TableFamily,
}

impl TableMsg {
    /// A table of `family` called `name`, with `comment` in its userdata if given.
    pub(super) fn new(family: TableFamily, name: &str, comment: Option<&str>) -> Self {
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
            // One TLV (its length a byte) in the kernel's 256 bytes of table userdata.
            assert!(c.len() + 3 <= 256, "a table comment of {} bytes", c.len());
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
            let nlh = build_hdr(buf, ty, self.family, flags, seq);
            sys::nftnl_table_nlmsg_build_payload(nlh, self.ptr.as_ptr());
        }
    }
}

/// An `nftnl_set` of any shape (the safe `nftnl::set::Set` only knows IP address keys),
/// optionally with elements that carry data.
pub(super) struct RawSet {
    ptr: NonNull<sys::nftnl_set>,
    family: TableFamily,
}

impl RawSet {
    /// Set `name` of `table`; `id` is the batch-local `NFTA_SET_ID` when the set is declared
    /// in this batch (None when only its elements are sent).
    pub(super) fn new(family: TableFamily, table: &str, name: &str, id: Option<u32>) -> Self {
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

    /// Sets a u32 attribute (`NFTNL_SET_FLAGS`, `_KEY_TYPE`, `_KEY_LEN`, ...).
    pub(super) fn set_u32(&mut self, attr: u32, value: u32) {
        // SAFETY: live set.
        unsafe { sys::nftnl_set_set_u32(self.ptr.as_ptr(), attr as u16, value) };
    }

    /// Sets a byte attribute (`NFTNL_SET_USERDATA`).
    pub(super) fn set_data(&mut self, attr: u32, data: &[u8]) {
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

    /// Adds an element (key, and data for a map) to the set's in-memory list. Key and data
    /// are at most [`ELEMENT_VALUE_MAX`] bytes each (ours are at most 40: an IPv6 resolver's
    /// key; what the kernel lists back is at most that too); a longer one is a bug here, and
    /// panics rather than reach libnftnl, some releases of which copy it unchecked into a
    /// 64-byte buffer.
    pub(super) fn add_element(&mut self, key: &[u8], data: Option<&[u8]>) {
        assert!(
            key.len() <= ELEMENT_VALUE_MAX && data.is_none_or(|d| d.len() <= ELEMENT_VALUE_MAX),
            "a set element of {} bytes with {:?} bytes of data",
            key.len(),
            data.map(<[u8]>::len)
        );
        // SAFETY: allocation; checked for NULL. The element is handed to the set, which frees
        // it with itself; libnftnl copies key and data, each within its 64-byte buffer
        // (checked above).
        unsafe {
            let Some(elem) = NonNull::new(sys::nftnl_set_elem_alloc()) else {
                std::process::abort();
            };
            let set = |attr: u32, value: &[u8]| {
                let rc = sys::nftnl_set_elem_set(
                    elem.as_ptr(),
                    attr as u16,
                    value.as_ptr().cast::<c_void>(),
                    value.len() as u32,
                );
                assert_eq!(rc, 0, "libnftnl refused a set element's attribute {attr}");
            };
            set(sys::NFTNL_SET_ELEM_KEY, key);
            if let Some(data) = data {
                set(sys::NFTNL_SET_ELEM_DATA, data);
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
pub(super) struct SetDecl<'a>(pub(super) &'a RawSet);

// SAFETY: one set declaration (name, table, types, lengths, a small userdata) fits the buffer.
unsafe impl NlMsg for SetDecl<'_> {
    unsafe fn write(&self, buf: *mut c_void, seq: u32, _msg_type: MsgType) {
        // SAFETY: the caller guarantees `buf` has room for one message.
        unsafe {
            let nlh = build_hdr(
                buf,
                NFT_MSG_NEWSET,
                self.0.family,
                NLM_F_CREATE | NLM_F_ACK,
                seq,
            );
            sys::nftnl_set_nlmsg_build_payload(nlh, self.0.ptr.as_ptr());
        }
    }
}

/// Adds the elements of `set` to `batch` as `NEWSETELEM` (or `DELSETELEM`) messages: one per
/// ~64 KiB of elements, since libnftnl's iterator fills each message to that limit. 10,000
/// port mappings are a few dozen messages, all in the same batch.
pub(super) fn add_elements(batch: &mut Batch, set: &RawSet, op: ElemOp) {
    // SAFETY: `set` is a live nftnl_set; the iterator is destroyed below, before `set`
    // can be dropped (it borrows it).
    let iter = unsafe { sys::nftnl_set_elems_iter_create(set.ptr.as_ptr()) };
    let Some(iter) = NonNull::new(iter) else {
        std::process::abort(); // out of memory, as nftnl itself does
    };
    let chunk = ElemChunk {
        set,
        iter,
        more: Cell::new(1),
        op,
    };
    // SAFETY: `iter` is valid until destroyed below.
    while chunk.more.get() > 0 && !unsafe { sys::nftnl_set_elems_iter_cur(iter.as_ptr()) }.is_null()
    {
        batch.add(&chunk, MsgType::Add);
    }
    // SAFETY: created above, destroyed once.
    unsafe { sys::nftnl_set_elems_iter_destroy(iter.as_ptr()) };
}

/// One `NEWSETELEM`/`DELSETELEM` message: as many elements from the iterator as fit. Each
/// `write` advances the iterator, so adding the same chunk again writes the next elements.
struct ElemChunk<'a> {
    set: &'a RawSet,
    iter: NonNull<sys::nftnl_set_elems_iter>,
    /// What the last build returned: > 0 while elements remain.
    more: Cell<i32>,
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
            let nlh = build_hdr(buf, ty, self.set.family, flags, seq);
            sys::nftnl_set_elems_nlmsg_build_payload_iter(nlh, self.iter.as_ptr())
        };
        self.more.set(more);
    }
}

// ---- expressions nftnl lacks ----

/// Expressions written directly against libnftnl: loads into any register, set lookups by
/// name (with a data register for maps), `fib`, and NAT from the concatenation registers.
/// See [`super::rule`] for how registers are laid out.
pub(super) enum X<'a> {
    /// `meta <key> => reg`.
    Meta {
        /// `NFT_META_*`.
        key: i32,
        /// Destination register.
        dreg: i32,
    },
    /// `payload load <len>b @ <base> + <offset> => reg`.
    Payload {
        /// `NFT_PAYLOAD_*_HEADER`.
        base: i32,
        /// Byte offset into that header.
        offset: u32,
        /// Bytes to load.
        len: u32,
        /// Destination register.
        dreg: i32,
    },
    /// `fib daddr type => reg 1`.
    FibDaddrType,
    /// `lookup reg 1 set <name> [dreg 1]`.
    Lookup {
        /// The set's name.
        set: &'a CStr,
        /// Its batch-local id, when it is declared in the same batch.
        id: Option<u32>,
        /// For a map: where its data goes.
        dreg: Option<i32>,
    },
    /// `nat dnat <family> addr_min <reg> proto_min <reg>`.
    Dnat {
        /// `NFPROTO_IPV4` or `NFPROTO_IPV6`.
        family: i32,
        /// Register holding the address.
        addr: i32,
        /// Register holding the port.
        proto: i32,
    },
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
