//! Building one batch: the messages that delete weft's tables, create them anew from the
//! plan, and add or delete map elements, in the order the kernel needs them.
//!
//! A batch is one transaction: the kernel applies all of its messages or none, so a change
//! made of one batch can never leave a half-built table behind. The builder appends to an
//! `nftnl::Batch`, which serialises each object into its page buffer as it is added (nothing
//! added here outlives the call that adds it); [`BatchBuilder::finish`] hands the batch to
//! [`super::Socket::send_batch`].
//!
//! Order inside a table: the table, then each set with its elements, then every chain, then
//! the rules (a `jump` needs its target chain, a lookup its set). A rule names a set declared
//! in the same batch both by name and by a batch-local set id (`NFTA_SET_ID`), as `nft` does.
//!
//! Safe code only: the libnftnl objects nftnl has no safe type for (table with comment, sets
//! of any shape, element chunks) are wrapped in [`super::ffi`].

use std::collections::HashMap;

use nftnl::{Batch, Chain, MsgType, ProtoFamily, nftnl_sys as sys};

use super::{
    Element,
    abi::{UDATA_CONCAT_SET, UDATA_IFNAME_SET, UDATA_PORT_MAP},
    cstring,
    ffi::{RawSet, SetDecl, TableMsg, add_elements},
    planned_keys, planned_shape,
    rule::build_rule,
};
use crate::kernel::firewall::plan::{self, ChainType, PlannedTable, SetKind, TableFamily};

/// Builds one batch; objects are serialised into nftnl's buffer as they are added, so nothing
/// here outlives the call that adds it.
pub(in crate::kernel::firewall) struct BatchBuilder {
    batch: Batch,
    /// The next batch-local set id (`NFTA_SET_ID`), unique within this batch.
    next_set_id: u32,
}

impl BatchBuilder {
    /// An empty batch.
    pub(in crate::kernel::firewall) fn new() -> Self {
        Self {
            batch: Batch::new(),
            next_set_id: 1,
        }
    }

    /// The batch, ready for [`super::Socket::send_batch`] (which finalises it).
    pub(in crate::kernel::firewall) fn finish(self) -> Batch {
        self.batch
    }

    /// Deletes a table that may or may not exist: a create (a no-op if it exists) and a
    /// delete, so the batch cannot fail with `ENOENT`.
    pub(in crate::kernel::firewall) fn delete_table(&mut self, family: TableFamily, name: &str) {
        let t = TableMsg::new(family, name, None);
        self.batch.add(&t, MsgType::Add);
        self.batch.add(&t, MsgType::Del);
    }

    /// Creates a planned table with everything in it: the comment, its sets (with planned
    /// members), maps (with `preserved` elements re-added), chains and rules.
    pub(in crate::kernel::firewall) fn create_table(
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
                    SetKind::IfnamePairs(_) | SetKind::Resolvers(..) => UDATA_CONCAT_SET,
                    SetKind::PortMap(_) => UDATA_PORT_MAP,
                },
            );
            self.batch.add(&SetDecl(&set), MsgType::Add);
            match planned_keys(s) {
                Some(keys) => {
                    for k in &keys {
                        set.add_element(k, None);
                    }
                }
                None => {
                    for e in preserved.get(&s.name).into_iter().flatten() {
                        set.add_element(&e.key, e.data.as_deref());
                    }
                }
            }
            add_elements(&mut self.batch, &set, ElemOp::Add);
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

    /// Adds or deletes elements of an existing set or map of `inet weft`. However many there
    /// are, they go as few messages as fit (about 64 KiB each); nothing for an empty list.
    pub(in crate::kernel::firewall) fn elements(
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
        add_elements(&mut self.batch, &raw, op);
    }
}

/// Whether an element message adds or deletes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::kernel::firewall) enum ElemOp {
    /// `NEWSETELEM` with `NLM_F_CREATE` and no `NLM_F_EXCL`: an identical element already
    /// there is fine, one with the same key and other data is `EEXIST`.
    Add,
    /// `DELSETELEM`: a missing key is `ENOENT` (and fails the batch).
    Del,
}

/// nftnl's name for a table family.
fn proto_family(family: TableFamily) -> ProtoFamily {
    match family {
        TableFamily::Inet => ProtoFamily::Inet,
        TableFamily::Bridge => ProtoFamily::Bridge,
    }
}

/// nftnl's name for a planned hook.
fn hook(h: plan::Hook) -> nftnl::Hook {
    use plan::Hook as H;
    match h {
        H::Prerouting => nftnl::Hook::PreRouting,
        H::Input => nftnl::Hook::In,
        H::Output => nftnl::Hook::Out,
        H::Forward => nftnl::Hook::Forward,
        H::Postrouting => nftnl::Hook::PostRouting,
    }
}
