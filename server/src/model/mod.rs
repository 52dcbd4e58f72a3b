//! Domain types: each object's desired spec and observed status, name and address validation,
//! label selectors. Pure: no I/O, no proto, no SQL. `api/` converts proto to these types and
//! every check that can be made without the store or the kernel lives here.
//!
//! Every object has a spec (what the client asked for) and a [`Status`] (what the reconciler
//! last saw of the kernel). Its [`Phase`] moves Pending -> Ready or Failed as reconciles run,
//! to Deleting when deletion is asked, and to Rechecking when weftd starts on a database in
//! which it was Ready, until its first reconcile has looked again.

pub mod connect;
pub mod labels;
pub mod limits;
pub mod link;
pub mod names;
pub mod namespace;
pub mod network;
pub mod page;
pub mod port;
pub mod resolv;

use std::fmt;

pub use connect::{BRIDGE_PORTS, ConnectFacts, LeaseAsk, Refusal};
pub use labels::{Labels, Selector};
pub use limits::{ObjectLimits, RequestLimits};
pub use link::{EndSpec, LinkKind, LinkSpec, RouteSpec};
pub use namespace::{AdoptFacts, NamespaceSpec};
pub use network::{AddressPool, ConnectSpec, EndpointSpec, NetworkSpec, SubnetSpec};
pub use page::PageRequest;
pub use port::{HostPorts, PortSpec, Protocol};

/// Where an object stands on its way to (or away from) the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Stored; the kernel has not been confirmed to match yet.
    Pending,
    /// The kernel was checked and matches the spec at `observed_generation`.
    Ready,
    /// The last reconcile failed; the message says why.
    Failed,
    /// Deletion requested; kernel objects are being removed.
    Deleting,
    /// Ready when weftd stopped, and not checked since: its first reconcile after the start
    /// has not looked at the kernel yet. Clients see it as Pending with the message
    /// [`RECHECKING`]; it counts as converged ([`Status::was_converged`]), and a waiting call
    /// waits on as for Pending.
    Rechecking,
}

impl Phase {
    /// The phase's name (SQLite's phase column stores it, but for Rechecking: see
    /// `store::kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::Ready => "ready",
            Phase::Failed => "failed",
            Phase::Deleting => "deleting",
            Phase::Rechecking => "rechecking",
        }
    }

    /// Parses a phase's name; unknown text reads as Pending.
    pub fn parse(s: &str) -> Phase {
        match s {
            "ready" => Phase::Ready,
            "failed" => Phase::Failed,
            "deleting" => Phase::Deleting,
            "rechecking" => Phase::Rechecking,
            _ => Phase::Pending,
        }
    }
}

/// Shows the phase's name ([`Phase::as_str`]), as logs and messages spell it.
impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Observed state of an object, written by the reconciler after it checked the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// Where the object stands.
    pub phase: Phase,
    /// The generation of the spec the reconciler last acted on.
    pub observed_generation: i64,
    /// Why it is not Ready, when it is not.
    pub message: String,
}

/// The message clients read for an object in [`Phase::Rechecking`] (which they see as
/// Pending): until its first reconcile after the start, nobody has checked the kernel, so it
/// does not say Ready.
pub const RECHECKING: &str = "weftd restarted; checking the kernel again";

impl Status {
    /// True if the object was converged at `generation` when last checked (Ready; or Ready
    /// before a restart and not re-checked yet): a reconcile that writes then repairs drift.
    pub fn was_converged(&self, generation: i64) -> bool {
        let ready = match self.phase {
            Phase::Ready | Phase::Rechecking => true,
            Phase::Pending | Phase::Failed | Phase::Deleting => false,
        };
        ready && self.observed_generation == generation
    }
}

/// A new object's status: Pending, nothing observed yet (generation 0 was never acted on).
impl Default for Status {
    fn default() -> Self {
        Self {
            phase: Phase::Pending,
            observed_generation: 0,
            message: String::new(),
        }
    }
}

/// A validation failure: which field, and what to fix. The API turns it into INVALID_ARGUMENT.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct Invalid {
    /// The field, as a path in the request ("link.veth.peer.name").
    pub field: String,
    /// What is wrong and how to fix it.
    pub problem: String,
}

impl Invalid {
    /// A failure of `field`.
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// One change a dry run says a call would make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedChange {
    /// "create", "delete", "set", "add" or "remove".
    pub action: &'static str,
    /// "namespace", "link", "address", "route", "lease", "port-mapping", "firewall", "sysctl".
    pub kind: &'static str,
    /// Which one.
    pub target: String,
    /// Details.
    pub detail: String,
}

/// Makes a new opaque object id: 16 random hex digits. Ids are never reused, so an ownership
/// mark left behind by a deleted object can never be mistaken for a live one.
pub fn new_uid() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// The host end of endpoint `uid`'s veth: `wv` and the uid's first 12 characters.
pub fn endpoint_host_ifname(uid: &str) -> String {
    format!("wv{}", &uid[..uid.len().min(12)])
}

/// The ownership mark weft puts on an interface it creates (its alias).
pub fn ownership_mark(uid: &str) -> String {
    format!("weft:{uid}")
}

/// The mark on the loopback of a namespace weft creates: `weft:<uid>@<owner>`, where owner
/// names the weftd that made it (its host namespace's device and inode, `<dev>-<ino>`). The
/// netns directory is shared (`/run/netns`): another weftd, on another host namespace with
/// its own database, must never take this namespace for an orphan of its own. An empty
/// owner gives the plain mark (as before owners were written; such a file counts as any
/// weftd's).
pub fn namespace_mark(uid: &str, owner: &str) -> String {
    if owner.is_empty() {
        ownership_mark(uid)
    } else {
        format!("weft:{uid}@{owner}")
    }
}

/// The uid and the owner (if any) of an ownership mark: `weft:<uid>` -> (uid, None),
/// `weft:<uid>@<owner>` -> (uid, Some(owner)); None for any other alias.
pub fn parse_mark(alias: Option<&str>) -> Option<(&str, Option<&str>)> {
    let rest = alias?.strip_prefix("weft:")?;
    Some(match rest.split_once('@') {
        Some((uid, owner)) => (uid, Some(owner)),
        None => (rest, None),
    })
}

/// True if an interface alias is a weft ownership mark (of any object).
pub fn is_weft_mark(alias: Option<&str>) -> bool {
    alias.is_some_and(|a| a.starts_with("weft:"))
}
