//! Encoding one planned rule into nftables expressions, register for register as `nft`
//! 1.0.6 encodes the same text (checked with `nft --debug=netlink`), so `nft list` prints
//! weft's rules back as the listing in the firewall module's docs.
//!
//! # Registers
//! nftables expressions communicate through registers: a `meta` or `payload` expression loads
//! into one, `cmp`/`bitwise`/`lookup` read it, `nat` takes its address and port from them.
//! There are four 128-bit registers (`NFT_REG_1`..`NFT_REG_4`) which also address as sixteen
//! 32-bit ones (`NFT_REG32_00`..`NFT_REG32_15`). A single-value match uses register 1. A
//! concatenation (`ip daddr . meta l4proto . th dport`) is laid out from register 1 on in
//! 32-bit slots, each part padded to 4 bytes: an IPv4 address fills one slot (16 bytes of
//! IPv6 four), the protocol the next, the port the one after. Interface name pairs take two
//! whole 128-bit registers (16 bytes each). A map's data (`addr . port`) is written back from
//! register 1 the same way, and `dnat` reads it there.
//!
//! nftnl's safe expressions always use register 1; the ones that need another register, a
//! set lookup by name, `fib` or `nat` from registers come from [`super::ffi::X`].

use std::{collections::HashMap, net::IpAddr};

use ipnet::IpNet;
use nftnl::{
    Chain, ProtoFamily, Rule,
    expr::{
        Bitwise, Cmp, CmpOp, Conntrack, Immediate, Masquerade, Meta, Nat, NatType, Register,
        Verdict,
    },
    nftnl_sys::libc,
};

use super::{cstring, ffi::X, ifname};
use crate::kernel::firewall::plan::{Action, IpFamily, Match, PlannedRule, PortMap, TableFamily};

/// 32-bit registers, as concatenations use them (`NFT_REG32_00` + n).
const fn reg32(n: i32) -> i32 {
    libc::NFT_REG32_00 + n
}

/// Encodes one planned rule exactly as `nft` 1.0.6 encodes the same text (checked with
/// `nft --debug=netlink`), so `nft list` reads it back as that text. `set_ids` holds the
/// batch-local ids of the sets declared in the same batch.
pub(super) fn build_rule<'a>(
    chain: &'a Chain<'a>,
    family: TableFamily,
    planned: &PlannedRule,
    set_ids: &HashMap<String, u32>,
) -> Rule<'a> {
    let mut rule = Rule::new(chain);
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
            Match::IifInSet(s) => {
                rule.add_expr(&Meta::IifName);
                lookup(&mut rule, s, set_ids, None);
            }
            Match::OifInSet(s) => {
                rule.add_expr(&Meta::OifName);
                lookup(&mut rule, s, set_ids, None);
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
                lookup(&mut rule, s, set_ids, None);
            }
            Match::Saddr(net) => saddr(&mut rule, family, net),
            Match::Icmpv6Type(t) => {
                // nft's dependencies first: IPv6, then ICMPv6; then the type byte.
                nfproto(&mut rule, IpFamily::V6);
                rule.add_expr(&Meta::L4Proto);
                rule.add_expr(&Cmp::new(
                    CmpOp::Eq,
                    [libc::IPPROTO_ICMPV6 as u8].as_slice(),
                ));
                rule.add_expr(&X::Payload {
                    base: libc::NFT_PAYLOAD_TRANSPORT_HEADER,
                    offset: 0,
                    len: 1,
                    dreg: libc::NFT_REG_1,
                });
                rule.add_expr(&Cmp::new(CmpOp::Eq, [*t].as_slice()));
            }
            Match::IifDaddrProtoPortInSet(f, s) => iif_daddr_proto_port(&mut rule, *f, s, set_ids),
            Match::Daddr(net) => addr_match(&mut rule, net, true),
            Match::CtEstablishedRelated | Match::CtStatusDnat => {
                // `ct state established,related` / `ct status dnat`: the bits masked, then
                // compared with zero.
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
        Action::Snat(a) => {
            // `immediate reg 1 <address>`, then `nat snat ip|ip6 addr_min reg 1`.
            let family = match a {
                IpAddr::V4(v4) => {
                    rule.add_expr(&Immediate::new(v4.octets(), Register::Reg1));
                    ProtoFamily::Ipv4
                }
                IpAddr::V6(v6) => {
                    rule.add_expr(&Immediate::new(v6.octets(), Register::Reg1));
                    ProtoFamily::Ipv6
                }
            };
            rule.add_expr(&Nat {
                nat_type: NatType::SNat,
                family,
                ip_register: Register::Reg1,
                port_register: None,
            });
        }
        Action::Jump(c) => rule.add_expr(&Verdict::Jump { chain: cstring(c) }),
        Action::DnatMap(m) => dnat_map(&mut rule, *m, set_ids),
    }
    rule
}

/// The register that 32-bit slot `n` of a concatenation starts in, numbered as nft numbers
/// it: a slot on a 128-bit boundary by its 128-bit register (`NFT_REG_1` + n/4), any other by
/// its 32-bit one.
const fn slot_reg(n: i32) -> i32 {
    if n % 4 == 0 {
        libc::NFT_REG_1 + n / 4
    } else {
        reg32(n)
    }
}

/// `iifname . ip daddr . meta l4proto . th dport @set` (or `ip6 daddr`): the family check,
/// then the name in slots 0-3, the address after it, the protocol and port in the next
/// slots, and one lookup (checked against `nft --debug=netlink`).
fn iif_daddr_proto_port(
    rule: &mut Rule<'_>,
    f: IpFamily,
    set: &str,
    set_ids: &HashMap<String, u32>,
) {
    let (offset, len) = match f {
        IpFamily::V4 => (16, 4u32),
        IpFamily::V6 => (24, 16u32),
    };
    nfproto(rule, f);
    rule.add_expr(&X::Meta {
        key: libc::NFT_META_IIFNAME,
        dreg: libc::NFT_REG_1,
    });
    rule.add_expr(&X::Payload {
        base: libc::NFT_PAYLOAD_NETWORK_HEADER,
        offset,
        len,
        dreg: slot_reg(4),
    });
    let proto_slot = 4 + (len / 4) as i32;
    rule.add_expr(&X::Meta {
        key: libc::NFT_META_L4PROTO,
        dreg: slot_reg(proto_slot),
    });
    rule.add_expr(&X::Payload {
        base: libc::NFT_PAYLOAD_TRANSPORT_HEADER,
        offset: 2,
        len: 2,
        dreg: slot_reg(proto_slot + 1),
    });
    lookup(rule, set, set_ids, None);
}

/// `lookup reg 1 set @<set> [dreg <dreg>]`: the key starts in register 1; a map writes its
/// data to `dreg`. The expression copies the name, so it lives only for this call.
fn lookup(rule: &mut Rule<'_>, set: &str, set_ids: &HashMap<String, u32>, dreg: Option<i32>) {
    let name = cstring(set);
    rule.add_expr(&X::Lookup {
        set: &name,
        id: set_ids.get(set).copied(),
        dreg,
    });
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
    let f = IpFamily::of(&net.addr());
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
    addr_match(rule, net, false);
}

/// The address part of `ip saddr|daddr <net>` (no family check): the prefix bytes of the
/// source (IPv4 offset 12, IPv6 8) or destination (16, 24) address, whole bytes compared
/// directly, otherwise the whole address masked.
fn addr_match(rule: &mut Rule<'_>, net: &IpNet, daddr: bool) {
    let (offset, addr): (u32, Vec<u8>) = match (net, daddr) {
        (IpNet::V4(n), false) => (12, n.network().octets().to_vec()),
        (IpNet::V4(n), true) => (16, n.network().octets().to_vec()),
        (IpNet::V6(n), false) => (8, n.network().octets().to_vec()),
        (IpNet::V6(n), true) => (24, n.network().octets().to_vec()),
    };
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
    lookup(rule, m.name(), set_ids, Some(libc::NFT_REG_1));
    rule.add_expr(&X::Dnat {
        family,
        addr: libc::NFT_REG_1,
        proto: reg32((addr_len / 4) as i32),
    });
}
