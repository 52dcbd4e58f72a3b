//! Retiring endpoint veths: a disconnect answers once the endpoint is cut off, and the veths
//! are deleted in batches behind it.
//!
//! Deleting a veth costs the caller an RCU grace period in the kernel (about 20 ms here,
//! whatever weft does), while deleting a whole interface group costs one grace period for all
//! of them. So removing an endpoint (1) takes its DNAT elements out (the caller), (2) sets the
//! inside end down and renames it out of the way (`wr<id>`) in one request, so the
//! container's interface name is free at once and its routes go with the interface going
//! down, (3) puts the host end into one of the retired groups ([`RETIRED_GROUP`] and the
//! [`RETIRED_GROUPS`] `- 1` after it; with its peer down it has no carrier: the bridge
//! forwards nothing to it); then the endpoint's row goes and the
//! call answers. The reaper deletes them every [`REAP_GATHER`] while it has some: up to
//! [`ONE_BY_ONE_UP_TO`] one by one (each looked up by name and checked for weft's mark), more
//! as whole groups, after checking every member carries weft's mark (a dump of every host
//! interface: no notification tells when a down interface joins a group).
//!
//! A burst (a mass disconnect) is deleted once it pauses: its batch is gathered until no veth
//! was retired for [`REAP_QUIET`], for at least [`burst_gathering`] (four times as long as
//! the last dump took, within [`REAP_BURST_GATHER_MIN`] and [`REAP_BURST_GATHER_MAX`], so
//! the dumps stay a small share) and at most [`REAP_BURST_GATHER_LONGEST`] while it goes on.
//! A group delete holds the kernel's RTNL lock for all of its veths (0.6-0.8 ms each on a
//! bridge of 1,000 ports), and every Disconnect's cut-off needs that lock: deleted in the
//! middle of the burst, each batch stalled all the Disconnects while the other CPU idled,
//! about a third of a mass disconnect of 1,000 from 4 clients (BENCHMARKS.md, sessions 33
//! and 34). So the veths wait until the burst's answers are out, and then go a chunk at a
//! time: a burst's veths fill the [`RETIRED_GROUPS`] groups in turn, [`REAP_CHUNK`] to a
//! group, and each group is deleted with a request of its own, [`REAP_BETWEEN_GROUPS`]
//! apart, so that a request waiting for RTNL meanwhile waits for about one chunk, not for
//! the whole burst.
//!
//! Timing: a disconnect answers after two small requests (about 1 ms), where deleting the
//! veth would cost it about 20 ms; the veth itself is gone within `REAP_GATHER` plus one
//! grace period (in a burst, once the burst has paused for `REAP_QUIET`, plus a dump and a
//! group delete per chunk; a Connect that meets a full bridge cuts the gathering short). A
//! reconnect of the same namespace meanwhile is safe: the retired inside end no longer has
//! the container's interface name, so the new veth can take it at once.
//!
//! A crash between (3) and the reaper leaves marked veths whose endpoint is gone: the GC
//! removes them as orphans at start-up. The reaper never deletes a group that its dump shows
//! holding an interface weft does not own; it then deletes its own members one by one. What
//! joins a group after that dump is not seen: the group deletes of a burst follow one dump,
//! so an interface someone puts into one of weft's groups (down: no notification tells) while
//! they run, within a second of the dump for a burst of 1,000, would go with it.

use std::{collections::HashSet, time::Duration};

use tokio::task::JoinSet;

use super::{Controller, ReconcileError};
use crate::{
    kernel::{ErrorKind, LinkChange, NsRef},
    model::{LinkKind, LinkSpec, endpoint_host_ifname, ownership_mark},
};

/// The first interface group of retired endpoint veths waiting for the reaper ("WEFT" in
/// ASCII); they use [`RETIRED_GROUPS`] groups from this one on.
pub const RETIRED_GROUP: u32 = 0x5745_4654;

/// How many interface groups retired veths use ([`RETIRED_GROUP`] and the ones after it): a
/// burst's veths fill them [`REAP_CHUNK`] at a time, and each is deleted with a request of
/// its own. After `RETIRED_GROUPS * REAP_CHUNK` (2,048) retirements with some always
/// waiting, the first is used again (and may be shared).
pub const RETIRED_GROUPS: u32 = 16;

/// Retired veths per group before the next group is used: a chunk the reaper deletes in one
/// request, holding RTNL for ~0.1 s on a bridge of 1,000 ports (0.6-0.8 ms a veth measured
/// after a burst; one of the burst's batches held it for ~160 ms before bursts were deleted
/// once they paused).
pub const REAP_CHUNK: usize = 128;

/// True if `group` is one of the groups retired veths wait in.
pub fn is_retired_group(group: u32) -> bool {
    (RETIRED_GROUP..RETIRED_GROUP + RETIRED_GROUPS).contains(&group)
}

/// The group of the `n`th veth retired since none was waiting: a burst fills the first
/// group, then the next, [`REAP_CHUNK`] to each, and after the last the first again.
pub(super) fn retired_group_for(n: usize) -> u32 {
    // RETIRED_GROUPS is small, so the remainder fits in u32.
    RETIRED_GROUP + ((n / REAP_CHUNK) % RETIRED_GROUPS as usize) as u32
}

/// The reaper's pause between two group deletes: a request waiting for RTNL gets it first.
pub const REAP_BETWEEN_GROUPS: Duration = Duration::from_millis(1);

/// How long the reaper gathers retired veths before deleting them as one batch.
pub const REAP_GATHER: Duration = Duration::from_millis(20);

/// The longest [`burst_gathering`] asks a burst's batch to be gathered for however long the
/// last dump took (see [`Reaper::last_dump`]).
pub const REAP_BURST_GATHER_MAX: Duration = Duration::from_secs(1);

/// A burst's batch is gathered until no veth was retired for this long: the burst has paused
/// (4 clients retire one every ~1.5 ms; one client, one every few ms).
pub const REAP_QUIET: Duration = Duration::from_millis(50);

/// The longest a burst's batch is gathered while veths keep being retired: a burst that
/// goes on longer has its veths deleted this often.
pub const REAP_BURST_GATHER_LONGEST: Duration = Duration::from_secs(2);

/// The shortest a burst's batch is gathered, however fast the last dump of the host was. A
/// batch's cost is mostly per batch, not per veth: the dump that checks the group (every
/// host interface, so at 1,000 endpoints 1,000 messages to read and parse) and the grace
/// periods of the delete. Gathering for 20 ms, a mass disconnect of 1,000 paid about 50
/// batches, weftd 3.6-5.7 ms of CPU per Disconnect, and the 1,000 Disconnects from 4 clients
/// took 3.1-5.2 s; gathering for 250 ms, 3.0-4.0 ms and 2.5-3.4 s (BENCHMARKS.md, session 28).
/// Since session 34 a burst is also gathered until it pauses ([`REAP_QUIET`]), which is
/// usually longer; this is the least for a short one.
pub const REAP_BURST_GATHER_MIN: Duration = Duration::from_millis(250);

/// A burst's batch is gathered at least this many times as long as the last dump of the
/// host took (within [`REAP_BURST_GATHER_MIN`] and [`REAP_BURST_GATHER_MAX`]), so the dumps
/// stay a small share of the reaper's time on a host of many interfaces, where a dump takes
/// longest.
pub const REAP_GATHER_PER_DUMP: u32 = 4;

/// How long a burst's batch is gathered when the last dump of the host took `dump`.
pub fn burst_gathering(dump: Duration) -> Duration {
    dump.saturating_mul(REAP_GATHER_PER_DUMP)
        .clamp(REAP_BURST_GATHER_MIN, REAP_BURST_GATHER_MAX)
}

/// Batches up to this many retired veths are deleted one by one, looked up by name. A group
/// delete needs a dump of every host interface first (to be sure the group holds only weft's),
/// and at 10,000 endpoints that dump costs the kernel ~0.5 s (BENCHMARKS.md, "Surprises":
/// `peernet2id` per veth), during which Connects waited: the p50 of a Connect right after a
/// Disconnect was 776 ms there. A few single deletes cost a grace period each, off the API's
/// path; a burst (a mass disconnect) still goes by whole groups.
pub const ONE_BY_ONE_UP_TO: usize = 8;

/// The retired veths not yet deleted, by host-end name.
#[derive(Debug, Default)]
pub(super) struct Reaper {
    pending: std::sync::Mutex<HashSet<String>>,
    wake: tokio::sync::Notify,
    /// How long the last dump of the host's interfaces (before a group delete) took. A
    /// burst's batch (more than [`ONE_BY_ONE_UP_TO`]) is gathered at least
    /// [`REAP_GATHER_PER_DUMP`] times that long (see [`burst_gathering`]): each host veth in
    /// that dump is described with its peer's namespace id, a linear walk in the kernel, so
    /// at 10,000 endpoints one dump takes ~0.4 s; gathering for [`REAP_GATHER`] alone, a
    /// burst of 100 Disconnects paid one dump per batch of 20-30 and took 1.9 s to answer
    /// (BENCHMARKS.md, session 19).
    last_dump: std::sync::Mutex<Duration>,
    /// Ends a burst's gathering at once: a Connect met a bridge whose ports are all taken,
    /// some perhaps by retired veths waiting here.
    hurry: tokio::sync::Notify,
    /// When the last veth was handed over: a burst's gathering ends [`REAP_QUIET`] after it.
    last_retired: std::sync::Mutex<Option<tokio::time::Instant>>,
    /// Veths retired since none was waiting: which group the next one goes into
    /// ([`retired_group_for`]). Back to 0 when the reaper has deleted all it held.
    filled: std::sync::atomic::AtomicUsize,
    /// [`REAP_QUIET`] and [`REAP_BURST_GATHER_LONGEST`], changed by tests only.
    #[cfg(test)]
    timing: std::sync::Mutex<Option<(Duration, Duration)>>,
}

/// The name a retired inside end takes: unique per endpoint, so it never clashes.
fn retired_name(id: &str) -> String {
    format!("wr{}", &id[..id.len().min(12)])
}

impl Controller {
    /// Cuts the veth of endpoint `id` (spec `spec`) off and hands it to the reaper. Writes
    /// nothing when that is done already; skips ends that are gone or not marked as the
    /// endpoint's.
    pub(super) async fn retire_endpoint_veth(
        &self,
        id: &str,
        spec: &LinkSpec,
    ) -> Result<(), ReconcileError> {
        let k = self.kernel();
        let mark = ownership_mark(id);
        let host = NsRef::Host;
        let host_end = k.get_link_bare(&host, &spec.end.name).await?;
        if let Some(state) = &host_end
            && state.is_newborn()
        {
            // Made but never marked (a crash or a failure right after the create): it never
            // carried traffic, and the reaper deletes only marked veths. It goes now, with
            // its peer.
            return match k.delete_link(&host, state.index).await {
                Err(e) if !e.is_not_found() => Err(e.into()),
                _ => Ok(()),
            };
        }
        if let LinkKind::Veth { peer } = &spec.kind
            && let Ok(ns) = self.ns_ref(&peer.namespace).await
            && let Some(inside) = k.get_link_bare(&ns, &peer.name).await?
            && super::link::owned(&inside, &mark)
        {
            let retire = LinkChange {
                up: inside.up.then_some(false),
                name: Some(retired_name(id)),
                ..Default::default()
            };
            match k.set_link(&ns, inside.index, &retire).await {
                // Older kernels refuse to rename an interface that is up (the name is
                // applied before the flags): down first, then the name.
                Err(e) if e.kind() == ErrorKind::Busy => {
                    let down = LinkChange {
                        up: Some(false),
                        ..Default::default()
                    };
                    k.set_link(&ns, inside.index, &down).await?;
                    let rename = LinkChange {
                        name: retire.name,
                        ..Default::default()
                    };
                    k.set_link(&ns, inside.index, &rename).await?;
                }
                other => other?,
            }
        }
        let Some(state) = host_end else {
            return Ok(());
        };
        if state.alias.as_deref() != Some(mark.as_str()) {
            tracing::warn!(name = %spec.end.name, "not retiring an interface without our mark");
            return Ok(());
        }
        // Only the group: with its peer down the host end has no carrier, so the bridge
        // forwards nothing to it, and leaving the bridge or going down would each cost a
        // synchronize_net() in the kernel for nothing (the delete does both anyway).
        let reaper = &self.inner.reaper;
        // Counted only when it joins a group (not again for a retry that finds it in one).
        let group = (!is_retired_group(state.group)).then(|| {
            retired_group_for(
                reaper
                    .filled
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            )
        });
        let change = LinkChange {
            group,
            ..Default::default()
        };
        k.set_link(&host, state.index, &change).await?;
        reaper
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(spec.end.name.clone());
        *reaper
            .last_retired
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(tokio::time::Instant::now());
        reaper.wake.notify_one();
        Ok(())
    }

    /// Waits while a burst of retired veths is being gathered: until no veth was retired for
    /// [`REAP_QUIET`] (the burst has paused), for at least [`burst_gathering`] of the last
    /// dump and at most [`REAP_BURST_GATHER_LONGEST`], counted from `began`; a shutdown or a
    /// full bridge ([`Controller::hurry_reaper`]) ends it at once.
    async fn gather_burst(&self, began: tokio::time::Instant) {
        let reaper = &self.inner.reaper;
        #[cfg(not(test))]
        let (quiet, longest) = (REAP_QUIET, REAP_BURST_GATHER_LONGEST);
        #[cfg(test)]
        let (quiet, longest) = reaper
            .timing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or((REAP_QUIET, REAP_BURST_GATHER_LONGEST));
        let least = began + burst_gathering(*self.last_dump());
        let most = began + longest;
        let mut stop = self.inner.stopping.subscribe();
        loop {
            let last = *reaper
                .last_retired
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let paused = last.map_or(began, |t| t + quiet);
            let until = least.max(paused).min(most);
            if tokio::time::Instant::now() >= until {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                _ = stop.wait_for(|s| *s) => return,
                _ = reaper.hurry.notified() => return,
            }
        }
    }

    /// A bridge refused a port (`EXFULL`): retired veths may hold ports of it, so the reaper
    /// stops gathering a burst and deletes them now (the endpoint's retry then finds the port
    /// free, where a wait of up to [`REAP_BURST_GATHER_LONGEST`] could outlast its retries).
    /// With none waiting there is nothing to hurry, and no reason is kept for later (a
    /// stored one would cut the next burst's gathering short; a retry that meets `EXFULL`
    /// again hurries again).
    pub(super) fn hurry_reaper(&self) {
        let reaper = &self.inner.reaper;
        // Under the lock that `forget_reaped` spends a stored hurry under, so none is kept
        // past the moment the last waiting veth is deleted.
        let pending = reaper.pending.lock().unwrap_or_else(|p| p.into_inner());
        if !pending.is_empty() {
            reaper.hurry.notify_one();
        }
    }

    /// True if the reaper is about to delete the veth of the endpoint with uid `uid`.
    pub(super) fn retiring_uid(&self, uid: &str) -> bool {
        self.inner
            .reaper
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&endpoint_host_ifname(uid))
    }

    /// Retired veths waiting for the reaper.
    pub fn retired_pending(&self) -> usize {
        self.inner
            .reaper
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Starts the reaper; it stops after [`Controller::shutdown`], deleting what it holds.
    pub fn spawn_reaper(&self, set: &mut JoinSet<()>) {
        self.spawn_batcher(
            set,
            |i| &i.reaper.wake,
            REAP_GATHER,
            |c| async move {
                let stopping = *c.inner.stopping.borrow();
                let burst = c.retired_pending() > ONE_BY_ONE_UP_TO;
                if burst && !stopping {
                    // The batch began when the reaper woke, REAP_GATHER ago.
                    let began = tokio::time::Instant::now()
                        .checked_sub(REAP_GATHER)
                        .unwrap_or_else(tokio::time::Instant::now);
                    c.gather_burst(began).await;
                }
                if c.retired_pending() > 0
                    && let Err(e) = c.reap(burst || stopping).await
                {
                    tracing::warn!(error = %e, "could not delete retired veths; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    c.inner.reaper.wake.notify_one();
                }
            },
        );
    }

    /// Deletes the retired veths: a few one by one, by name; more as whole retired groups, a
    /// request per group (or, where a group holds an interface weft does not own, weft's
    /// members of it one by one). More than a few only when `gathered` (the caller saw a
    /// burst and gathered it, or is shutting down): veths retired between the caller's count
    /// and this may have made a burst of a few, which would skip its gathering (and go with a
    /// dump of the host in the middle of the burst); the reaper then comes back for it.
    async fn reap(&self, gathered: bool) -> Result<(), ReconcileError> {
        let k = self.kernel();
        let host = NsRef::Host;
        let taken: HashSet<String> = self
            .inner
            .reaper
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if taken.len() > ONE_BY_ONE_UP_TO && !gathered {
            self.inner.reaper.wake.notify_one();
            return Ok(());
        }
        if taken.len() <= ONE_BY_ONE_UP_TO {
            for name in &taken {
                match k.get_link_bare(&host, name).await? {
                    Some(l) if is_retired_group(l.group) && is_ours(&l) => {
                        self.delete_each(std::iter::once(&l)).await?;
                    }
                    // Gone already (with its namespace), or no longer ours to delete.
                    _ => {}
                }
            }
            self.forget_reaped(&taken);
            return Ok(());
        }
        let started = std::time::Instant::now();
        self.inner
            .stats
            .reaper_host_dumps
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut groups: std::collections::BTreeMap<u32, Vec<crate::kernel::LinkState>> =
            Default::default();
        for l in k.list_links(&host).await? {
            if is_retired_group(l.group) {
                groups.entry(l.group).or_default().push(l);
            }
        }
        *self.last_dump() = started.elapsed();
        // Every group is tried; the first error is returned once all were (the reaper tries
        // again), and only what is surely gone is forgotten.
        let mut first_error = None;
        let mut gone = taken;
        for (i, (group, members)) in groups.iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(REAP_BETWEEN_GROUPS).await;
            }
            let deleted = if members.iter().all(is_ours) {
                k.delete_link_group(&host, *group).await.map(|()| {
                    tracing::debug!(group, count = members.len(), "deleted retired veths");
                })
            } else {
                tracing::warn!(
                    group,
                    "interface group holds interfaces weft does not own; deleting weft's one by one"
                );
                self.delete_each(members.iter().filter(|l| is_ours(l)))
                    .await
            };
            match deleted {
                // Veths retired since `taken` was read went too, if the dump saw them.
                Ok(()) => gone.extend(members.iter().map(|l| l.name.clone())),
                Err(e) => {
                    // This group's veths stay pending, to be tried again.
                    for l in members {
                        gone.remove(&l.name);
                    }
                    first_error.get_or_insert(e);
                }
            }
        }
        self.forget_reaped(&gone);
        first_error.map_or(Ok(()), |e| Err(e.into()))
    }

    /// Deletes the host interfaces `links`, one request each; one already gone is no error.
    async fn delete_each(
        &self,
        links: impl Iterator<Item = &crate::kernel::LinkState>,
    ) -> Result<(), crate::kernel::KernelError> {
        let k = self.kernel();
        for l in links {
            match k.delete_link(&NsRef::Host, l.index).await {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// How long the reaper's last dump of the host took ([`Reaper::last_dump`]).
    fn last_dump(&self) -> std::sync::MutexGuard<'_, Duration> {
        self.inner
            .reaper
            .last_dump
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Sets how long the last dump of the host took (for tests of the burst's gathering).
    #[cfg(test)]
    pub(super) fn set_last_dump(&self, took: Duration) {
        *self.last_dump() = took;
    }

    /// Deletes what the reaper holds now, as its task would (for tests).
    #[cfg(test)]
    pub(super) async fn reap_now(&self) -> Result<(), ReconcileError> {
        self.reap(true).await
    }

    /// Deletes what the reaper holds now, as its task would after counting a few (for tests).
    #[cfg(test)]
    pub(super) async fn reap_ungathered(&self) -> Result<(), ReconcileError> {
        self.reap(false).await
    }

    /// True if the reaper's task would wake now (a wake is stored); takes it (for tests).
    #[cfg(test)]
    pub(super) fn reaper_woken(&self) -> bool {
        futures::FutureExt::now_or_never(self.inner.reaper.wake.notified()).is_some()
    }

    /// Sets how long a burst must pause before it is deleted and how long at most it is
    /// gathered while it goes on (for tests: [`REAP_QUIET`] and [`REAP_BURST_GATHER_LONGEST`]
    /// otherwise).
    #[cfg(test)]
    pub(super) fn set_reap_timing(&self, quiet: Duration, longest: Duration) {
        *self
            .inner
            .reaper
            .timing
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some((quiet, longest));
    }

    /// Takes `reaped` out of the pending set (what was retired meanwhile stays). With none
    /// left, the next burst fills the groups from the first again, and a hurry that came
    /// while these were deleted is spent.
    fn forget_reaped(&self, reaped: &HashSet<String>) {
        let reaper = &self.inner.reaper;
        let mut pending = reaper.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|n| !reaped.contains(n));
        if pending.is_empty() {
            reaper.filled.store(0, std::sync::atomic::Ordering::Relaxed);
            // Polling the future once takes a stored permit, if there is one.
            let _ = futures::FutureExt::now_or_never(reaper.hurry.notified());
        }
    }
}

/// True when `l` carries weft's mark.
fn is_ours(l: &crate::kernel::LinkState) -> bool {
    l.alias.as_deref().is_some_and(|a| a.starts_with("weft:"))
}
