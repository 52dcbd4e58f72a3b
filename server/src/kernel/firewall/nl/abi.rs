//! The numbers the kernel and `nft` agree on: netlink message types and flags, `NFTA_*`
//! attribute numbers, nft's data types and the set userdata blobs `nft` writes.
//!
//! Everything here is ABI: a value is copied from the kernel's uapi headers
//! (`linux/netlink.h`, `linux/netfilter/nf_tables.h`) or read off `nft --debug=mnl`, and must
//! never be "tidied". `libc` and `nftnl-sys` define some of them too, but not all, and not with
//! the integer widths the hand-written parser and request encoder want, so the ones those use
//! are spelled out once here.

// ---- netlink (linux/netlink.h) ----

/// `nlmsghdr.nlmsg_type` of an ack or error: the payload is a negative errno (0 for a plain
/// ack) followed by the header of the request it answers.
pub(super) const NLMSG_ERROR: u16 = 2;
/// `nlmsghdr.nlmsg_type` that ends a multi-part dump.
pub(super) const NLMSG_DONE: u16 = 3;
/// Every request to the kernel carries this flag.
pub(super) const NLM_F_REQUEST: u16 = 1;
/// Ask for an ack even on success, so every message of a batch is answered.
pub(super) const NLM_F_ACK: u16 = 4;
/// `NLM_F_ROOT | NLM_F_MATCH`: list every object of the kind, as a multi-part reply.
pub(super) const NLM_F_DUMP: u16 = 0x300;
/// Create the object if it is missing. Without `NLM_F_EXCL` (which weft never sets) an
/// existing identical object is not an error, which is what makes "create, then delete" a
/// delete that cannot fail with `ENOENT`.
pub(super) const NLM_F_CREATE: u16 = 0x400;
/// Set on the type of a nested attribute in a request (`NLA_F_NESTED`); the parser masks it
/// (and `NLA_F_NET_BYTEORDER`) off with `0x3fff`.
pub(super) const NLA_F_NESTED: u16 = 0x8000;

// ---- nfnetlink (linux/netfilter/nfnetlink.h, nf_tables.h) ----

/// The nfnetlink subsystem of nftables: the high byte of every nftables message type.
pub(super) const NFNL_SUBSYS_NFTABLES: u16 = 10;

/// `NFT_MSG_NEWTABLE`: create (or, with `NLM_F_CREATE` and no `EXCL`, keep) a table.
pub(super) const NFT_MSG_NEWTABLE: u16 = 0;
/// `NFT_MSG_GETTABLE`: dumped with family 0 to list the tables of every family.
pub(super) const NFT_MSG_GETTABLE: u16 = 1;
/// `NFT_MSG_DELTABLE`: deletes a table and everything in it.
pub(super) const NFT_MSG_DELTABLE: u16 = 2;
/// `NFT_MSG_NEWCHAIN`, named in error messages only (nftnl encodes chains itself).
pub(super) const NFT_MSG_NEWCHAIN: u16 = 3;
/// `NFT_MSG_GETCHAIN`.
pub(super) const NFT_MSG_GETCHAIN: u16 = 4;
/// `NFT_MSG_NEWRULE`, named in error messages only (nftnl encodes rules itself).
pub(super) const NFT_MSG_NEWRULE: u16 = 6;
/// `NFT_MSG_GETRULE`: weft only counts the replies per chain.
pub(super) const NFT_MSG_GETRULE: u16 = 7;
/// `NFT_MSG_NEWSET`: declares a set or map.
pub(super) const NFT_MSG_NEWSET: u16 = 9;
/// `NFT_MSG_GETSET`.
pub(super) const NFT_MSG_GETSET: u16 = 10;
/// `NFT_MSG_NEWSETELEM`: adds elements, as many as fit in one message.
pub(super) const NFT_MSG_NEWSETELEM: u16 = 12;
/// `NFT_MSG_GETSETELEM`: a dump of a whole set, or (without `NLM_F_DUMP`) a lookup of the
/// keys the request names.
pub(super) const NFT_MSG_GETSETELEM: u16 = 13;
/// `NFT_MSG_DELSETELEM`: a missing key fails the whole batch with `ENOENT`.
pub(super) const NFT_MSG_DELSETELEM: u16 = 14;

/// `NFTA_*` attribute numbers, as they appear in dump replies and in the GET requests weft
/// writes by hand. Each `NFTA_<OBJECT>_*` enum restarts at 1, hence the prefixes.
pub(super) mod attr {
    /// `NFTA_TABLE_NAME`.
    pub const TABLE_NAME: u16 = 1;
    /// `NFTA_TABLE_USERDATA`: TLVs, of which weft reads the comment (its marker).
    pub const TABLE_USERDATA: u16 = 6;
    /// `NFTA_CHAIN_TABLE`.
    pub const CHAIN_TABLE: u16 = 1;
    /// `NFTA_CHAIN_NAME`.
    pub const CHAIN_NAME: u16 = 3;
    /// `NFTA_CHAIN_HOOK`: nested, present on base chains only.
    pub const CHAIN_HOOK: u16 = 4;
    /// `NFTA_CHAIN_POLICY`: `NF_ACCEPT` (1) or `NF_DROP` (0), big endian.
    pub const CHAIN_POLICY: u16 = 5;
    /// `NFTA_CHAIN_TYPE`: "filter", "nat", "route".
    pub const CHAIN_TYPE: u16 = 7;
    /// `NFTA_HOOK_HOOKNUM`, inside `CHAIN_HOOK`.
    pub const HOOK_HOOKNUM: u16 = 1;
    /// `NFTA_HOOK_PRIORITY`, inside `CHAIN_HOOK`: a signed value sent as big-endian u32.
    pub const HOOK_PRIORITY: u16 = 2;
    /// `NFTA_RULE_TABLE`.
    pub const RULE_TABLE: u16 = 1;
    /// `NFTA_RULE_CHAIN`.
    pub const RULE_CHAIN: u16 = 2;
    /// `NFTA_SET_TABLE`.
    pub const SET_TABLE: u16 = 1;
    /// `NFTA_SET_NAME`.
    pub const SET_NAME: u16 = 2;
    /// `NFTA_SET_FLAGS`: `NFT_SET_MAP` and friends.
    pub const SET_FLAGS: u16 = 3;
    /// `NFTA_SET_KEY_TYPE`: nft's data type number (see `TYPE_*`).
    pub const SET_KEY_TYPE: u16 = 4;
    /// `NFTA_SET_KEY_LEN`: bytes.
    pub const SET_KEY_LEN: u16 = 5;
    /// `NFTA_SET_DATA_TYPE`: maps only.
    pub const SET_DATA_TYPE: u16 = 6;
    /// `NFTA_SET_DATA_LEN`: maps only.
    pub const SET_DATA_LEN: u16 = 7;
    /// `NFTA_SET_ELEM_LIST_TABLE`.
    pub const ELEM_LIST_TABLE: u16 = 1;
    /// `NFTA_SET_ELEM_LIST_SET`.
    pub const ELEM_LIST_SET: u16 = 2;
    /// `NFTA_SET_ELEM_LIST_ELEMENTS`: nested list of `LIST_ELEM`.
    pub const ELEM_LIST_ELEMENTS: u16 = 3;
    /// `NFTA_LIST_ELEM`: one element of the list.
    pub const LIST_ELEM: u16 = 1;
    /// `NFTA_SET_ELEM_KEY`: nested `DATA_VALUE`.
    pub const ELEM_KEY: u16 = 1;
    /// `NFTA_SET_ELEM_DATA`: nested `DATA_VALUE`, maps only.
    pub const ELEM_DATA: u16 = 2;
    /// `NFTA_DATA_VALUE`: the raw register bytes of a key or of data.
    pub const DATA_VALUE: u16 = 1;
}

// ---- expressions ----

/// `fib ... type`: the route type of the looked-up address (`enum nft_fib_result`).
pub(super) const NFT_FIB_RESULT_ADDRTYPE: u32 = 3;
/// `fib daddr`: look up the destination address (`enum nft_fib_flags`).
pub(super) const NFTA_FIB_F_DADDR: u32 = 1 << 1;

// ---- nft's data types (set keys and data) ----

/// `IFNAMSIZ`: an interface name in a register or set key is 16 bytes, NUL padded.
pub(super) const IFNAMSIZ: usize = 16;
/// `TYPE_IPADDR` in nft's `enum datatypes`.
pub(super) const TYPE_IPV4: u32 = 7;
/// `TYPE_IP6ADDR`.
pub(super) const TYPE_IPV6: u32 = 8;
/// `TYPE_INET_PROTOCOL`: the l4 protocol number, one byte in a 4-byte register slot.
pub(super) const TYPE_INET_PROTO: u32 = 12;
/// `TYPE_INET_SERVICE`: a port, two bytes in network order in a 4-byte slot.
pub(super) const TYPE_INET_SERVICE: u32 = 13;
/// `TYPE_IFNAME`.
pub(super) const TYPE_IFNAME: u32 = 41;
/// Concatenated types: each part is shifted in by this many bits (nft's `TYPE_BITS`), so
/// `ifname . ifname` is `(41 << 6) | 41`. The kernel only stores the number; `nft list`
/// decodes it to print the `type` line.
pub(super) const TYPE_BITS: u32 = 6;

// ---- set userdata ----
//
// Set userdata as `nft` 1.0.6 writes it (read off `nft --debug=mnl`), so `nft list` prints
// what weft made exactly as it prints what it would have made itself. TLVs of (type u8,
// len u8, value). The kernel stores them without looking; only `nft` reads them back.

/// `type ifname`: KEYBYTEORDER = host endian (1).
pub(super) const UDATA_IFNAME_SET: &[u8] = &[0x00, 0x04, 0x01, 0x00, 0x00, 0x00];
/// A set of a concatenated `type` (`ifname . ifname`, `ifname . ipv4_addr . inet_proto .
/// inet_service`): KEYBYTEORDER = 0 (a concatenation) and the KEY_TYPEOF blob nft emits for
/// concatenated `type` declarations (the same bytes for both, read off `nft --debug=mnl`).
pub(super) const UDATA_CONCAT_SET: &[u8] = &[
    0x00, 0x04, 0x00, 0x00, 0x00, 0x00, // key byte order
    0x03, 0x08, 0x00, 0x04, 0x0d, 0x00, 0x00, 0x00, 0x01, 0x00, // key typeof
];
/// Port maps: KEY/DATABYTEORDER = 0 (concatenations mix byte orders), the KEY/DATA_TYPEOF
/// blobs, DATA_INTERVAL = 0.
pub(super) const UDATA_PORT_MAP: &[u8] = &[
    0x00, 0x04, 0x00, 0x00, 0x00, 0x00, // key byte order
    0x01, 0x04, 0x00, 0x00, 0x00, 0x00, // data byte order
    0x03, 0x08, 0x00, 0x04, 0x0d, 0x00, 0x00, 0x00, 0x01, 0x00, // key typeof
    0x04, 0x08, 0x00, 0x04, 0x0d, 0x00, 0x00, 0x00, 0x01, 0x00, // data typeof
    0x06, 0x04, 0x00, 0x00, 0x00, 0x00, // data interval
];
