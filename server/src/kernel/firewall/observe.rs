//! The "observe" half of
//! [`Kernel::sync_firewall`](crate::kernel::FirewallOps::sync_firewall): reads weft's tables
//! back from the kernel and decides whether they already are what the plan wants.
//!
//! Sync is observe-then-act so that a converged host costs only reads. The answer is
//! [`Observed::Current`] (write nothing) or [`Observed::Stale`], which carries what the one
//! rebuild batch needs: which of weft's tables to delete, and the port-map elements to put
//! back into the new maps, so published ports survive a structure change.
//!
//! "Current" means every planned table exists with the plan's fingerprint in its comment and
//! its chains, rule counts, sets and the members of its planned sets match (see [`table_matches`]);
//! a table that is not planned (`bridge weft` when every network has ICC on) must be absent.
//! The fingerprint catches a change in the rules' text; the member and count checks catch
//! someone editing the tables by hand after weft wrote them.
//!
//! Nothing here writes. Every read goes through the caller's [`Socket`], on the thread that
//! entered the host namespace.

use std::collections::HashMap;

use nix::errno::Errno;

use super::{
    FirewallPlan, KernelError, MARKER, PlannedSet, PlannedTable, PortMap, SetKind, TABLE,
    TableFamily,
    nl::{self, Element, Socket},
};

/// What a look at the kernel found, for sync.
pub(super) enum Observed {
    /// The tables match the plan.
    Current,
    /// They do not: which of weft's tables exist, and the port-map elements to carry over.
    Stale {
        /// weft's (marked) tables that exist now: the batch deletes exactly these.
        existing: Vec<TableFamily>,
        /// Port-map elements by map name, re-added into the rebuilt maps in the same batch.
        preserved: HashMap<String, Vec<Element>>,
    },
}

/// Whether a table's comment carries weft's [`MARKER`]: the only proof a table called `weft`
/// is weft's to change or delete.
pub(super) fn is_marked(comment: Option<&str>) -> bool {
    comment.is_some_and(|c| c.starts_with(MARKER))
}

/// Looks at weft's tables and compares them to `plan` (see
/// [`Kernel::sync_firewall`](crate::kernel::FirewallOps::sync_firewall)).
///
/// `EEXIST` if a table called `weft` lacks the marker: that table is someone else's, and
/// rebuilding would destroy it. Port-map elements are read only when the answer is `Stale`
/// and only from maps whose key and data types are the planned ones.
pub(super) fn observe(sock: &mut Socket, plan: &FirewallPlan) -> Result<Observed, KernelError> {
    let tables = sock.tables()?;
    let mut existing = Vec::new();
    let mut current = true;
    for family in [TableFamily::Inet, TableFamily::Bridge] {
        let found = tables
            .iter()
            .find(|t| t.family == nl::family_code(family) && t.name == TABLE);
        if let Some(t) = found {
            if !is_marked(t.comment.as_deref()) {
                return Err(KernelError::Netlink {
                    op: format!("table {} {TABLE}", family.as_str()),
                    errno: Some(Errno::EEXIST as i32),
                    message: format!(
                        "exists but is not weft's (its comment does not start with {MARKER:?}); \
                         remove or rename it"
                    ),
                });
            }
            existing.push(family);
        }
        current &= match (found, plan.table(family)) {
            (None, None) => true,
            (Some(_), None) | (None, Some(_)) => false,
            (Some(t), Some(p)) => {
                current
                    && t.comment.as_deref() == Some(plan.comment().as_str())
                    && table_matches(sock, p)?
            }
        };
    }
    if current {
        return Ok(Observed::Current);
    }
    let mut preserved = HashMap::new();
    if existing.contains(&TableFamily::Inet) {
        let sets = sock.sets(TableFamily::Inet, TABLE)?;
        for map in PortMap::ALL {
            let planned = nl::planned_shape(&PlannedSet {
                name: map.name().into(),
                kind: SetKind::PortMap(map),
            });
            // A map of another shape cannot hold weft's elements; its contents are dropped.
            if sets
                .iter()
                .any(|s| s.name == map.name() && s.shape == planned)
            {
                preserved.insert(
                    map.name().to_string(),
                    sock.elements(TableFamily::Inet, TABLE, map.name())?,
                );
            }
        }
    }
    Ok(Observed::Stale {
        existing,
        preserved,
    })
}

/// Whether an existing (marked) table has the planned chains, rule counts, sets and members.
///
/// Chains compare by name, hook, priority, type and policy; rules only by count per chain
/// (the fingerprint in the comment vouches for their content); sets by name and shape; the
/// interface sets also by their members, which change when networks come and go.
fn table_matches(sock: &mut Socket, p: &PlannedTable) -> Result<bool, KernelError> {
    let chains = sock.chains(p.family, &p.name)?;
    if chains.len() != p.chains.len() {
        return Ok(false);
    }
    for c in &p.chains {
        let want = nl::ChainInfo {
            name: c.name.clone(),
            hook: c.base.map(|b| (b.hook.number(), b.priority)),
            kind: c.base.map(|b| b.kind.as_str().to_string()),
            policy: c.base.map(|_| 1),
        };
        if !chains.contains(&want) {
            return Ok(false);
        }
    }
    let counts = sock.rule_counts(p.family, &p.name)?;
    for c in &p.chains {
        if counts.get(&c.name).copied().unwrap_or(0) != c.rules.len() {
            return Ok(false);
        }
    }
    let sets = sock.sets(p.family, &p.name)?;
    if sets.len() != p.sets.len() {
        return Ok(false);
    }
    for s in &p.sets {
        let shape = nl::planned_shape(s);
        if !sets.iter().any(|k| k.name == s.name && k.shape == shape) {
            return Ok(false);
        }
        if let Some(mut want) = nl::planned_keys(s) {
            let mut have: Vec<Vec<u8>> = sock
                .elements(p.family, &p.name, &s.name)?
                .into_iter()
                .map(|e| e.key)
                .collect();
            have.sort();
            want.sort();
            want.dedup();
            if have != want {
                return Ok(false);
            }
        }
    }
    Ok(true)
}
