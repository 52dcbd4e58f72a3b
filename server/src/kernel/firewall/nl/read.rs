//! Typed reads: what the kernel holds of tables, chains, rules, sets and elements, turned
//! from dump replies into the small structs `sync_firewall` compares with the plan.
//!
//! Chains, rules and sets are all listed the same way: a dump of one family filtered by the
//! table attribute (`NFTA_*_TABLE`, number 1 for each kind), each reply then read into the
//! kind's struct. That shared part is [`Socket::dump_table`], driven by a [`Listing`] per
//! kind; a reply that names another table is skipped, so the result does not depend on the
//! kernel honouring the filter.
//!
//! Only what weft compares is read: names, hooks, types, policies, set shapes, rule counts
//! per chain. Rules themselves are never decoded: the plan's fingerprint in the table comment
//! stands for their content, and the counts catch a rule added or removed by hand. Missing
//! attributes read as empty or zero, so a foreign object shaped in a way weft does not
//! expect simply fails to match and the table is rebuilt.

use std::collections::HashMap;

use super::{
    Element, SetShape,
    abi::{
        NFT_MSG_GETCHAIN, NFT_MSG_GETRULE, NFT_MSG_GETSET, NFT_MSG_GETSETELEM, NFT_MSG_GETTABLE,
        attr,
    },
    cstring_bytes, family_code,
    socket::Socket,
    wire::{Attrs, parse_elements, udata_comment},
};
use crate::kernel::{KernelError, firewall::plan::TableFamily};

/// One table as the kernel reports it.
#[derive(Debug)]
pub(in crate::kernel::firewall) struct TableInfo {
    /// `NFPROTO_*`.
    pub family: u8,
    /// Name.
    pub name: String,
    /// The comment in its userdata, if any: weft's marker on weft's tables.
    pub comment: Option<String>,
}

/// One chain as the kernel reports it.
#[derive(Debug, PartialEq, Eq)]
pub(in crate::kernel::firewall) struct ChainInfo {
    /// Name.
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
pub(in crate::kernel::firewall) struct SetInfo {
    /// Name.
    pub name: String,
    /// Flags, key and data types and lengths: compared with [`super::planned_shape`].
    pub shape: SetShape,
}

/// One kind of per-table object: how to ask for it and how to name the request in errors.
struct Listing {
    /// `NFT_MSG_GET*`.
    msg_type: u16,
    /// The kind's `NFTA_*_TABLE` attribute: the filter in the request and the check on
    /// each reply.
    table_attr: u16,
    /// The operation, for error messages.
    what: &'static str,
}

/// `NFT_MSG_GETCHAIN`.
const CHAINS: Listing = Listing {
    msg_type: NFT_MSG_GETCHAIN,
    table_attr: attr::CHAIN_TABLE,
    what: "list nftables chains",
};
/// `NFT_MSG_GETRULE`.
const RULES: Listing = Listing {
    msg_type: NFT_MSG_GETRULE,
    table_attr: attr::RULE_TABLE,
    what: "list nftables rules",
};
/// `NFT_MSG_GETSET`.
const SETS: Listing = Listing {
    msg_type: NFT_MSG_GETSET,
    table_attr: attr::SET_TABLE,
    what: "list nftables sets",
};

impl Socket {
    /// Dumps one kind of object of one table and reads each reply that belongs to `table`
    /// with `read` (None skips it).
    fn dump_table<T>(
        &mut self,
        of: &Listing,
        family: TableFamily,
        table: &str,
        mut read: impl FnMut(&Attrs<'_>) -> Option<T>,
    ) -> Result<Vec<T>, KernelError> {
        let name = cstring_bytes(table);
        let replies = self.dump(
            of.msg_type,
            family_code(family),
            &[(of.table_attr, &name)],
            of.what,
        )?;
        Ok(replies
            .iter()
            .filter_map(|r| {
                let a = Attrs::parse(r.attrs());
                if a.string(of.table_attr).as_deref() != Some(table) {
                    return None;
                }
                read(&a)
            })
            .collect())
    }

    /// Every table of every family: (family, name, comment).
    pub(in crate::kernel::firewall) fn tables(&mut self) -> Result<Vec<TableInfo>, KernelError> {
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
    pub(in crate::kernel::firewall) fn chains(
        &mut self,
        family: TableFamily,
        table: &str,
    ) -> Result<Vec<ChainInfo>, KernelError> {
        self.dump_table(&CHAINS, family, table, |a| {
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
    }

    /// How many rules each chain of one table holds.
    pub(in crate::kernel::firewall) fn rule_counts(
        &mut self,
        family: TableFamily,
        table: &str,
    ) -> Result<HashMap<String, usize>, KernelError> {
        let chains = self.dump_table(&RULES, family, table, |a| a.string(attr::RULE_CHAIN))?;
        let mut counts = HashMap::new();
        for chain in chains {
            *counts.entry(chain).or_insert(0) += 1;
        }
        Ok(counts)
    }

    /// The sets and maps of one table.
    pub(in crate::kernel::firewall) fn sets(
        &mut self,
        family: TableFamily,
        table: &str,
    ) -> Result<Vec<SetInfo>, KernelError> {
        self.dump_table(&SETS, family, table, |a| {
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
    }

    /// Every element of one set or map: (key, data) as raw bytes. Element replies carry no
    /// per-element table to check: the request names table and set, and a missing one is an
    /// empty list.
    pub(in crate::kernel::firewall) fn elements(
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
}
