//! Endpoint veths made while their Connect's transaction commits.
//!
//! A Connect's kernel work starts with the veth pair, its dearest request, and the pair needs
//! nothing the store decides: its host end is named after the endpoint's uid, which the
//! Connect draws before its transaction, and its peer goes into the namespace the request
//! names, under the interface name it asks for. So the Connect makes the pair while its
//! transaction runs ([`Controller::prepare_endpoint_veth`], in a task of its own started by
//! [`PrepareGuard::start`]: the transaction holds the Connect's thread): created (the host
//! end as the create's echo shows it, read where the kernel echoes nothing), the peer read,
//! IPv6 off on the host end (and on the peer when its network has no IPv6 subnet, as the
//! network's last reconcile saw it); and the endpoint's first reconcile, after the commit,
//! takes the pair as made ([`Controller::take_prepared`]) and goes on with the
//! mark, the bridge, the addresses and the routes. The Connect starts the pair's task before
//! it looks for a foreign interface holding the name, and either may reach the kernel first:
//! the create is exclusive (`EEXIST` where such an interface is, nothing made), and the look
//! passes by the newborn pair it may meet, so neither order touches a foreign interface.
//!
//! What weft owns does not change: only the reconcile marks an interface, and only after the
//! row that plans it is committed. Until then the pair is newborn (`NEWBORN_GROUP`, no
//! alias), as after a crash between a create and its mark:
//! - a transaction that fails, or a Connect the look refuses: the Connect deletes the pair
//!   ([`Controller::discard_prepared`], which reads first and deletes only a newborn host end
//!   of the uid's name) before it answers, whatever the pair's task said it made (a task that
//!   failed after its create said nothing);
//! - a create refused for a taken name (`EEXIST`) although the look passed (an alternative
//!   name, which the namespace's listing leaves out, or an interface made since the look):
//!   the create made nothing, and the Connect, once committed, looks again by netlink and
//!   takes the connect back where an interface holds the name ([`PrepareGuard::settle`]);
//! - a crash before the commit: no row plans the pair, and the GC removes it as it removes
//!   any newborn interface no object plans;
//! - a GC pass while a Connect prepares: the pair's names are registered here *before* it is
//!   created and stay until the reconcile takes it or the Connect deletes it. The GC reads
//!   them ([`Controller::preparing_names`]) after it read the kernel and before it reads the
//!   store, so a pair it saw is either registered then or planned by a committed row;
//! - a Connect dropped mid-call (its client went away): its [`PrepareGuard`] settles the pair
//!   in a task, once the pair's own task has ended, queueing a committed endpoint or deleting
//!   a pair no row plans, and taking back a committed endpoint whose create found the name
//!   taken (as [`PrepareGuard::settle`] does). A replay of the Connect's request id waits
//!   for that settling ([`Controller::connect_settled`]).

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
    time::{Duration, Instant},
};

use super::{Controller, link::ipv6_off_before_up};
use crate::{
    kernel::{LinkState, NsRef},
    model::{endpoint_host_ifname, ownership_mark},
    store::ConnectUndo,
};

/// An entry older than this is dropped when another is added. A safety net: the reconcile,
/// the discard and an endpoint's cleanup each remove theirs, but a dropped Connect whose
/// settling could not read the store leaves one nothing takes.
const STALE: Duration = Duration::from_secs(300);

/// The pairs being made or made and not taken yet, by endpoint uid; and what the
/// controller knows of each network's address families.
#[derive(Debug, Default)]
pub(super) struct Prepared {
    by_uid: Mutex<HashMap<String, Entry>>,
    /// Network name -> it has no IPv6 subnet, as its last reconcile saw it: its endpoints'
    /// inner ends then get no IPv6 at all (`EndSpec::ipv6_off`), which a prepared pair can
    /// set before the commit. A name reused since by a network with IPv6 is found out by
    /// the reconcile, which then makes the pair anew.
    v4_only: Mutex<HashMap<String, bool>>,
    /// Uids of committed endpoints whose Connect has not settled yet: one whose create found
    /// the name taken may still be taken back, so a replay of its request waits.
    settling: Mutex<HashSet<String>>,
    /// Told whenever one leaves `settling`.
    settled: tokio::sync::Notify,
}

/// One endpoint's pair.
#[derive(Debug)]
struct Entry {
    /// (namespace name, "" for the host; interface name) of the host end and the peer.
    names: [(String, String); 2],
    /// The ends as read right after the create; None while it is being made, or when it
    /// could not be read.
    made: Option<Made>,
    /// When the entry was added.
    since: Instant,
}

/// A pair a Connect made: both ends as read right after the create (newborn, down, no
/// addresses), the host end's first; IPv6 is off on the host end.
#[derive(Clone, Debug)]
pub(super) struct Made {
    /// The host end and the peer, in that order.
    pub ends: [LinkState; 2],
    /// IPv6 is off on the peer too (its network had no IPv6 subnet when it was made).
    pub peer_ipv6_off: bool,
}

impl Prepared {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.by_uid.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn families(&self) -> std::sync::MutexGuard<'_, HashMap<String, bool>> {
        self.v4_only.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Controller {
    /// Makes the veth of endpoint `uid` (not committed yet) into namespace `namespace` as
    /// `ifname`, for the endpoint's first reconcile to take (see the module docs): in one call
    /// what a Connect does through [`PrepareGuard::start`] (the registration) and its task.
    /// Answers whether the kernel made a pair. Any failure leaves the work to the reconcile,
    /// as before this existed: a namespace not ready, a name taken, a read that failed.
    #[cfg(test)]
    pub(crate) async fn prepare_endpoint_veth(
        &self,
        uid: &str,
        network: &str,
        namespace: &str,
        ifname: &str,
    ) -> bool {
        self.register_prepared(uid, namespace, ifname)
            && self.make_prepared(uid, network, namespace, ifname).await == Outcome::Made
    }

    /// The first half of [`Controller::prepare_endpoint_veth`]: registers the pair's names
    /// (for the GC, and for the reconcile to take), before anything is made; false where no
    /// pair is made at all (a dry run, the host as the namespace).
    fn register_prepared(&self, uid: &str, namespace: &str, ifname: &str) -> bool {
        if self.kernel().is_dry() || namespace.is_empty() {
            return false;
        }
        let mut map = self.inner.prepared.lock();
        map.retain(|_, e| e.since.elapsed() < STALE);
        map.insert(
            uid.to_string(),
            Entry {
                names: [
                    (String::new(), endpoint_host_ifname(uid)),
                    (namespace.to_string(), ifname.to_string()),
                ],
                made: None,
                since: Instant::now(),
            },
        );
        true
    }

    /// The second half of [`Controller::prepare_endpoint_veth`], once registered: the
    /// create, the reads and IPv6. A reconcile that took the registration meanwhile (the
    /// endpoint committed and queued by someone else) makes the pair itself; what this
    /// makes then is not kept for it.
    async fn make_prepared(
        &self,
        uid: &str,
        network: &str,
        namespace: &str,
        ifname: &str,
    ) -> Outcome {
        let host = endpoint_host_ifname(uid);
        let t0 = Instant::now();
        let Ok(ns) = self.ns_ref(namespace).await else {
            self.inner.prepared.lock().remove(uid);
            return Outcome::NotMade;
        };
        let k = self.kernel();
        // The create's echo is the host end as a read right after it would show it (Linux
        // 6.1 and later; before, the end is read): one RTNL holder fewer beside the host
        // end's `disable_ipv6`, which spins while another holds the lock.
        let echoed = match k.create_veth_echoed(&NsRef::Host, &host, &ns, ifname).await {
            Ok(echoed) => echoed,
            Err(e) => {
                // Still registered, the refusal is about this Connect's own names: a
                // reconcile that took the registration meanwhile makes the pair itself (and
                // its create may be what this one met).
                let ours = self.inner.prepared.lock().remove(uid).is_some();
                return if ours && e.is_exists() {
                    Outcome::NameTaken
                } else {
                    Outcome::NotMade
                };
            }
        };
        let t1 = t0.elapsed();
        super::fault::after_prepare(&[host.as_str(), ifname]);
        // The reads go beside the IPv6 switch-offs: the host end's is a sysctl by name, of a
        // name only this endpoint's uid gives and that the create just took; the peer's
        // (netlink, by index) follows its own read.
        let peer_ipv6_off = self.network_is_v4_only(network);
        let host_end = async {
            match echoed {
                Some(h) => {
                    ipv6_off_before_up(k, &NsRef::Host, &host, 0).await;
                    Ok(Some(h))
                }
                None => {
                    let (h, ()) = tokio::join!(
                        k.get_link_bare(&NsRef::Host, &host),
                        ipv6_off_before_up(k, &NsRef::Host, &host, 0)
                    );
                    h
                }
            }
        };
        let peer_end = async {
            let p = k.get_link_bare(&ns, ifname).await;
            if peer_ipv6_off
                && let Ok(Some(p)) = &p
                && p.is_newborn()
            {
                ipv6_off_before_up(k, &ns, ifname, p.index).await;
            }
            p
        };
        let (h, p) = tokio::join!(host_end, peer_end);
        let made = match (h, p) {
            (Ok(Some(h)), Ok(Some(p))) if h.is_newborn() && p.is_newborn() => Some(Made {
                ends: [h, p],
                peer_ipv6_off,
            }),
            // Left to the reconcile, which reads the ends itself (or to the discard).
            _ => None,
        };
        // Where a Connect's own kernel lap went (the create, then the reads and IPv6).
        tracing::debug!(created = ?t1, done = ?t0.elapsed(), ready = made.is_some(), "veth prepared");
        if let Some(e) = self.inner.prepared.lock().get_mut(uid) {
            e.made = made;
        }
        Outcome::Made
    }

    /// Deletes the pair [`Controller::prepare_endpoint_veth`] made for endpoint `uid`, whose
    /// transaction failed, and forgets it. Only a newborn host end of that name is deleted
    /// (its peer goes with it); a failure is logged, and the GC removes what is left.
    pub async fn discard_prepared(&self, uid: &str) {
        let host = endpoint_host_ifname(uid);
        let k = self.kernel();
        match k.get_link_bare(&NsRef::Host, &host).await {
            Ok(Some(l)) if l.is_newborn() => {
                if let Err(e) = k.delete_link(&NsRef::Host, l.index).await
                    && !e.is_not_found()
                {
                    tracing::warn!(interface = host, error = %e, "could not delete a veth made for a failed Connect");
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(interface = host, error = %e, "could not read a veth made for a failed Connect");
            }
        }
        self.inner.prepared.lock().remove(uid);
    }

    /// The pair prepared for endpoint `uid`, taken (None when there is none, or it could not
    /// be read after its create).
    pub(super) fn take_prepared(&self, uid: &str) -> Option<Made> {
        self.inner.prepared.lock().remove(uid)?.made
    }

    /// Forgets whatever was prepared for endpoint `uid` (its row is being removed).
    pub(super) fn forget_prepared(&self, uid: &str) {
        self.inner.prepared.lock().remove(uid);
    }

    /// Network `name` has `v4_only` (no IPv6 subnet), as its reconcile sees it.
    pub(super) fn note_network_families(&self, name: &str, v4_only: bool) {
        self.inner
            .prepared
            .families()
            .insert(name.to_string(), v4_only);
    }

    /// Network `name` is gone.
    pub(super) fn forget_network_families(&self, name: &str) {
        self.inner.prepared.families().remove(name);
    }

    /// Whether network `name` was IPv4 only at its last reconcile (false when unknown).
    fn network_is_v4_only(&self, name: &str) -> bool {
        self.inner
            .prepared
            .families()
            .get(name)
            .copied()
            .unwrap_or(false)
    }

    /// The (namespace name, interface name) of every end being prepared or prepared and not
    /// taken: newborn interfaces the GC leaves alone.
    pub(super) fn preparing_names(&self) -> HashSet<(String, String)> {
        self.inner
            .prepared
            .lock()
            .values()
            .flat_map(|e| e.names.iter().cloned())
            .collect()
    }
}

/// Settles what a Connect prepared if the Connect is dropped before it knows its
/// transaction's outcome (its client went away mid-call): see [`Controller::prepare_guard`].
#[derive(Debug)]
pub struct PrepareGuard {
    ctl: Controller,
    uid: Option<String>,
    /// The task making the pair ([`PrepareGuard::start`]), until its outcome is taken.
    task: Option<tokio::task::JoinHandle<Outcome>>,
    /// Once the Connect's transaction has committed: how to take it back.
    committed: Option<Committed>,
}

/// A Connect's committed endpoint, and how to take it back ([`Controller::take_back_if_taken`]).
#[derive(Clone, Debug)]
struct Committed {
    undo: ConnectUndo,
    namespace: String,
    ifname: String,
}

/// What a Connect's veth task did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The kernel made the pair (whether or not its reads after the create worked).
    Made,
    /// The create was refused because a name is taken (`EEXIST`; it made nothing) while the
    /// pair was still this task's to make: most likely the interface name in the namespace,
    /// held by an interface the look before the transaction did not see (an alternative
    /// name, which the namespace's listing leaves out, or one made since the look).
    NameTaken,
    /// Nothing was made: none was started (a dry run, the host as the namespace), the
    /// namespace could not be entered, or the create failed otherwise. The reconcile tries.
    NotMade,
}

impl PrepareGuard {
    /// Makes the pair ([`Controller::prepare_endpoint_veth`]) in a task of its own, so that
    /// all of it (the create, then the reads and IPv6) goes on while the Connect's
    /// transaction holds the Connect's thread (`block_in_place`): a future polled beside the
    /// transaction got its create sent first, but nothing after that until the commit.
    /// The pair's names are registered here, before this returns (so before the commit), and
    /// the kernel work goes to the task.
    pub fn start(&mut self, network: &str, namespace: &str, ifname: &str) {
        let Some(uid) = self.uid.clone() else {
            return;
        };
        if !self.ctl.register_prepared(&uid, namespace, ifname) {
            return;
        }
        let ctl = self.ctl.clone();
        let (network, namespace, ifname) = (
            network.to_string(),
            namespace.to_string(),
            ifname.to_string(),
        );
        self.task = Some(tokio::spawn(async move {
            ctl.make_prepared(&uid, &network, &namespace, &ifname).await
        }));
    }

    /// Waits for the task [`PrepareGuard::start`] began: what it did ([`Outcome::NotMade`]
    /// when none was started, or once this has answered). A Connect dropped meanwhile leaves
    /// the task to the guard's settling, which waits for it too.
    pub async fn made(&mut self) -> Outcome {
        let Some(task) = self.task.as_mut() else {
            return Outcome::NotMade;
        };
        let made = task.await.unwrap_or_else(|e| {
            // It may have made a pair: a failed Connect discards whatever this answers.
            tracing::warn!(error = %e, "a Connect's veth task failed");
            Outcome::NotMade
        });
        self.task = None;
        made
    }

    /// For a Connect that failed (its transaction, or the look for a foreign interface):
    /// waits for the task, deletes what it may have made ([`Controller::discard_prepared`]
    /// reads first, whatever the task answered: one that failed after its create answered
    /// nothing), and disarms.
    pub async fn discard(&mut self) {
        self.made().await;
        if let Some(uid) = &self.uid {
            self.ctl.discard_prepared(uid).await;
        }
        self.disarm();
    }

    /// The Connect settled it itself (took the row, or discarded the pair).
    pub fn disarm(&mut self) {
        self.uid = None;
    }

    /// The Connect's transaction committed the endpoint, of `namespace` under `ifname`;
    /// `undo` takes it back ([`PrepareGuard::settle`]).
    pub fn committed(&mut self, undo: ConnectUndo, namespace: &str, ifname: &str) {
        self.ctl.settling(undo.id(), true);
        self.committed = Some(Committed {
            undo,
            namespace: namespace.to_string(),
            ifname: ifname.to_string(),
        });
    }

    /// After [`PrepareGuard::committed`]: waits for the pair's task and disarms. Where its
    /// create found the name taken ([`Outcome::NameTaken`]), looks again and, where an
    /// interface holds the name in the namespace, takes the connect back: true then, and
    /// the Connect answers ALREADY_EXISTS ([`Controller::take_back_if_taken`]). That look
    /// and undo run in a task of their own, so a Connect dropped meanwhile does not cut them
    /// short; the task then queues a kept endpoint for its reconcile, as a dropped guard's
    /// settling does.
    pub async fn settle(&mut self) -> bool {
        let outcome = self.made().await;
        let committed = self.committed.take();
        self.disarm();
        let c = match (outcome, committed) {
            (Outcome::NameTaken, Some(c)) => c,
            (_, Some(c)) => {
                self.ctl.settling(c.undo.id(), false);
                return false;
            }
            (_, None) => return false,
        };
        let ctl = self.ctl.clone();
        let (answer, answered) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            // A kept endpoint is queued here too: the Connect may go away after this answer
            // is sent and before it reads it (the queue takes a key once).
            let uid = c.undo.id().to_string();
            let _ = answer.send(
                ctl.settle_committed(&uid, Outcome::NameTaken, Some(c))
                    .await,
            );
        });
        answered.await.unwrap_or(false)
    }
}

impl Drop for PrepareGuard {
    fn drop(&mut self) {
        let Some(uid) = self.uid.take() else {
            return;
        };
        let ctl = self.ctl.clone();
        let task = self.task.take();
        let committed = self.committed.take();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                // Settled once made: a pair still being created would outlive a discard.
                let outcome = match task {
                    Some(task) => task.await.unwrap_or(Outcome::NotMade),
                    None => Outcome::NotMade,
                };
                ctl.settle_committed(&uid, outcome, committed).await;
            });
        }
    }
}

impl Controller {
    /// A guard for endpoint `uid`'s Connect, to hold across its transaction and
    /// [`Controller::prepare_endpoint_veth`], and disarm once it has settled the pair.
    /// Dropped armed, it settles the pair in a task of its own: a committed endpoint gets its
    /// reconcile (its Connect may not have queued it), or is taken back where its create
    /// found the name taken and an interface holds it; a pair no row plans is deleted.
    pub fn prepare_guard(&self, uid: &str) -> PrepareGuard {
        PrepareGuard {
            ctl: self.clone(),
            uid: Some(uid.to_string()),
            task: None,
            committed: None,
        }
    }

    /// Settles endpoint `uid`'s pair for a Connect that will not (a dropped one) or that
    /// found the name taken, once the pair's task said `outcome`: takes a `committed`
    /// endpoint back where its create found the name taken and an interface holds it
    /// (true); otherwise queues a committed endpoint or deletes a pair no row plans
    /// ([`Controller::settle_prepared`]). Either way the Connect has settled then.
    async fn settle_committed(
        &self,
        uid: &str,
        outcome: Outcome,
        committed: Option<Committed>,
    ) -> bool {
        let taken_back = match &committed {
            Some(c) if outcome == Outcome::NameTaken => self.take_back_if_taken(c).await,
            _ => false,
        };
        if !taken_back {
            self.settle_prepared(uid).await;
        }
        if let Some(c) = &committed {
            self.settling(c.undo.id(), false);
        }
        taken_back
    }

    /// Notes that the Connect of committed endpoint `uid` is settling (`on`), or has settled.
    fn settling(&self, uid: &str, on: bool) {
        let p = &self.inner.prepared;
        let mut set = p.settling.lock().unwrap_or_else(|e| e.into_inner());
        if on {
            set.insert(uid.to_string());
        } else if set.remove(uid) {
            p.settled.notify_waiters();
        }
    }

    /// Waits until the Connect that committed the object of uid `uid` (any kind: only
    /// endpoints ever wait) has settled: answered, or taken the endpoint back because its
    /// interface name was taken. A replay of that Connect's request id calls this before it
    /// reads the object, so it never answers with an endpoint about to be taken back.
    /// Answers whether it waited.
    pub async fn connect_settled(&self, uid: &str) -> bool {
        let p = &self.inner.prepared;
        let mut waited = false;
        loop {
            let told = p.settled.notified();
            tokio::pin!(told);
            told.as_mut().enable();
            if !p
                .settling
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(uid)
            {
                return waited;
            }
            told.await;
            waited = true;
        }
    }

    /// For a committed Connect whose pair's create found the name taken: whether an
    /// interface holds its interface name in its namespace, other than a newborn one (a pair
    /// another Connect is making) or the endpoint's own (made by its reconcile, queued by
    /// someone else); if so, takes the connect back ([`Store::undo_connect`]) and says so
    /// (true, also when the row was gone already), with the events a delete sends.
    /// Otherwise, and where the namespace cannot be entered, the read fails or the undo
    /// fails, the endpoint stays (false), for its reconcile, which reports what is in its way.
    ///
    /// [`Store::undo_connect`]: crate::store::Store::undo_connect
    async fn take_back_if_taken(&self, c: &Committed) -> bool {
        let Ok(ns) = self.ns_ref(&c.namespace).await else {
            return false;
        };
        let mark = ownership_mark(c.undo.id());
        let held = matches!(
            self.kernel().get_link_bare(&ns, &c.ifname).await,
            Ok(Some(l)) if !super::link::owned(&l, &mark)
        );
        if !held {
            return false;
        }
        match self.store().undo_connect(&c.undo).await {
            Ok(gone) => {
                if gone {
                    self.events()
                        .send(super::Key::Endpoint(c.undo.id().to_string()), true);
                    self.events()
                        .send(super::Key::Network(c.undo.network_id().to_string()), false);
                }
                // A reconcile of the endpoint in the meantime (a resync, its namespace's) may
                // have named its network's resolver in the namespace's resolv.conf.
                if let Err(e) = self.converge_resolv_conf(&c.namespace).await {
                    tracing::debug!(namespace = %c.namespace, error = %e, "resolv.conf after a taken-back Connect");
                }
                true
            }
            Err(e) => {
                tracing::warn!(endpoint = c.undo.id(), error = %e, "could not take back a Connect whose interface name is taken");
                false
            }
        }
    }

    /// The body of a dropped [`PrepareGuard`].
    async fn settle_prepared(&self, uid: &str) {
        match self.store().endpoint_by_id(uid).await {
            Ok(Some(_)) => self.enqueue(super::Key::Endpoint(uid.to_string())),
            Ok(None) => self.discard_prepared(uid).await,
            // Left to the GC (newborn, and no longer registered after the STALE period).
            Err(e) => {
                tracing::warn!(endpoint = uid, error = %e, "could not settle a dropped Connect's veth")
            }
        }
    }
}
