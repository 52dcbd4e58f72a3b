//! Disconnecting an endpoint: its published ports go first, the veth is cut off (inside end
//! down and renamed, host end into a retired group) and the row goes; the reaper deletes a
//! few one by one and a burst by whole groups, a request per group.
//!
//! The order matters and is asserted: DNAT elements before the veth (no packet may be sent to
//! an address about to vanish), the inside end renamed at once (the container's interface
//! name is free as soon as the call answers), the host end only regrouped (no bridge or link
//! change that would cost an RCU grace period). The reaper is driven through its public
//! entry point (`spawn_reaper`, then `shutdown`, which flushes once more). A burst is deleted
//! once it pauses, a group (a chunk of it) per request.

use nix::errno::Errno;
use tokio::task::JoinSet;

use super::{H, tcp};
use crate::{
    kernel::NsRef,
    model::Phase,
    reconcile::{
        Key, ONE_BY_ONE_UP_TO, REAP_CHUNK, RETIRED_GROUP, RETIRED_GROUPS, is_retired_group,
    },
    store::EndpointRow,
};

/// A network, namespace `ns` on it publishing 8080 -> 80 (when `ports`), converged.
///
/// The network "web" is made on the first call only, so two calls give two endpoints on
/// one bridge, as the reaper's batch test needs; asserts the endpoint Ready.
async fn connected(h: &H, ns: &str, ports: bool) -> EndpointRow {
    if h.store().network_by_name("web").await.unwrap().is_none() {
        h.network("web", "br-web", &["10.88.0.0/24"]).await;
    }
    h.namespace(ns).await;
    let ports = if ports {
        vec![tcp(8080, 80)]
    } else {
        Vec::new()
    };
    let ep = h.connect("web", ns, ports).await;
    assert_eq!(h.ep_status(&ep.id).await.phase, Phase::Ready);
    ep
}

/// The name a retired inside end of endpoint `id` takes (`wr` and the first 12 characters of
/// its id), restated here so a test fails if reconcile/retire.rs changes it unnoticed.
fn retired_name(id: &str) -> String {
    format!("wr{}", &id[..12])
}

/// A disconnect: ports first, then the veth cut off (renamed, down, retired group), then the row
/// and leases.
#[tokio::test]
async fn disconnect_unpublishes_cuts_the_veth_off_and_drops_the_row() {
    let h = H::new().await;
    let ep = connected(&h, "ns1", true).await;
    assert_eq!(h.k.mappings().len(), 1);
    h.store().mark_endpoint_deleting(&ep.id).await.unwrap();
    assert_eq!(h.ep_status(&ep.id).await.phase, Phase::Deleting);
    h.run(Key::Endpoint(ep.id.clone())).await;
    assert!(h.k.mappings().is_empty(), "DNAT elements removed");
    assert!(h.k.link(&h.ns("ns1"), "eth0").is_none(), "the name is free");
    let inside = h.k.link(&h.ns("ns1"), &retired_name(&ep.id)).unwrap();
    assert!(!inside.up);
    let host = h.k.link(&NsRef::Host, &ep.host_ifname).unwrap();
    assert_eq!(host.group, RETIRED_GROUP);
    assert!(h.store().endpoint_by_id(&ep.id).await.unwrap().is_none());
    assert!(h.store().port_mappings(None).await.unwrap().is_empty());
    let leases = h.store().lease_counts(&ep.network_id).await.unwrap();
    assert!(leases.iter().all(|(_, n)| *n == 0), "{leases:?}");
    assert_eq!(h.ctl.retired_pending(), 1);
    let calls = h.k.calls();
    let unmap = calls
        .iter()
        .position(|c| c.starts_with("del_port_mappings"));
    let cut = calls.iter().rposition(|c| c.starts_with("set_link"));
    assert!(unmap < cut, "ports go before the veth: {calls:?}");
}

/// EBUSY on the rename (older kernels) falls back to down, then rename; not a failure.
/// The fault targets the inside end by index (`#<index>`), the form `set_link` logs.
#[tokio::test]
async fn disconnect_rename_refused_with_ebusy_falls_back_to_down_then_rename() {
    let h = H::new().await;
    let ep = connected(&h, "ns1", false).await;
    let inside = h.k.link(&h.ns("ns1"), "eth0").unwrap().index;
    h.store().mark_endpoint_deleting(&ep.id).await.unwrap();
    h.k.fail("set_link", Some(&format!("#{inside}")), Errno::EBUSY, 1);
    let before = h.k.calls().len();
    h.run(Key::Endpoint(ep.id.clone())).await;
    let l = h.k.link(&h.ns("ns1"), &retired_name(&ep.id)).unwrap();
    assert_eq!(l.index, inside);
    assert!(!l.up);
    let target = format!("set_link #{inside}");
    let on_inside = h.k.calls()[before..]
        .iter()
        .filter(|c| **c == target)
        .count();
    assert_eq!(on_inside, 2, "down, then the name, as two requests");
    assert!(h.store().endpoint_by_id(&ep.id).await.unwrap().is_none());
    assert_eq!(h.failures(), 0, "the fallback is not a failure");
}

/// An inside interface without the endpoint's mark is not renamed or downed.
#[tokio::test]
async fn disconnect_leaves_an_inside_interface_without_the_endpoint_mark_alone() {
    let h = H::new().await;
    let ep = connected(&h, "ns1", false).await;
    h.k.tamper(&h.ns("ns1"), "eth0", |l| l.alias = None);
    h.store().mark_endpoint_deleting(&ep.id).await.unwrap();
    h.run(Key::Endpoint(ep.id.clone())).await;
    let eth0 = h.k.link(&h.ns("ns1"), "eth0").unwrap();
    assert!(eth0.up, "not renamed, not downed");
    assert_eq!(
        h.k.link(&NsRef::Host, &ep.host_ifname).unwrap().group,
        RETIRED_GROUP
    );
    assert!(h.store().endpoint_by_id(&ep.id).await.unwrap().is_none());
}

/// With the namespace gone the veth is gone too: the disconnect finishes with nothing to reap.
#[tokio::test]
async fn disconnect_from_a_vanished_namespace_still_finishes() {
    let h = H::new().await;
    let ep = connected(&h, "ns1", false).await;
    h.k.vanish_namespace(&h.ns_path("ns1"));
    h.store().mark_endpoint_deleting(&ep.id).await.unwrap();
    h.run(Key::Endpoint(ep.id.clone())).await;
    assert!(h.store().endpoint_by_id(&ep.id).await.unwrap().is_none());
    assert!(h.k.link(&NsRef::Host, &ep.host_ifname).is_none());
    assert_eq!(h.ctl.retired_pending(), 0, "nothing left to reap");
}

/// A failed disconnect keeps the row Deleting and cuts nothing off; the retry finishes.
/// The ports go first, so a failure there leaves the endpoint whole, not half removed.
#[tokio::test]
async fn disconnect_error_keeps_the_row_deleting_and_a_retry_finishes() {
    let h = H::new().await;
    let ep = connected(&h, "ns1", true).await;
    h.store().mark_endpoint_deleting(&ep.id).await.unwrap();
    h.k.fail("del_port_mappings", None, Errno::EPERM, 1);
    h.run(Key::Endpoint(ep.id.clone())).await;
    assert_eq!(h.failures(), 1);
    let row = h.store().endpoint_by_id(&ep.id).await.unwrap().unwrap();
    assert_eq!(row.status.phase, Phase::Deleting);
    assert_eq!(h.k.mappings().len(), 1, "nothing was cut off yet");
    assert!(h.k.link(&h.ns("ns1"), "eth0").is_some());
    h.run(Key::Endpoint(ep.id.clone())).await;
    assert!(h.store().endpoint_by_id(&ep.id).await.unwrap().is_none());
    assert!(h.k.mappings().is_empty());
}

/// The point of retiring: the inside name is free at once, so a reconnect converges while
/// the old veth still waits for the reaper.
#[tokio::test]
async fn reconnect_right_after_disconnect_converges_before_the_reaper_runs() {
    let h = H::new().await;
    let old = connected(&h, "ns1", true).await;
    h.store().mark_endpoint_deleting(&old.id).await.unwrap();
    h.run(Key::Endpoint(old.id.clone())).await;
    assert_eq!(h.ctl.retired_pending(), 1);
    let new = h.connect("web", "ns1", vec![tcp(8080, 80)]).await;
    assert_eq!(h.ep_status(&new.id).await.phase, Phase::Ready);
    let eth0 = h.k.link(&h.ns("ns1"), "eth0").unwrap();
    assert_eq!(eth0.alias, super::mark(&new.id));
    assert_eq!(eth0.addresses, new.addresses);
    assert_eq!(h.k.mappings().len(), 1);
    assert_eq!(h.k.mappings()[0].dest, new.addresses[0].addr());
    assert!(h.k.link(&h.ns("ns1"), &retired_name(&old.id)).is_some());
}

/// Runs the reaper until shutdown (it flushes once more on the way out). The sleep is well
/// past the reaper's gathering window (`REAP_GATHER`, 20 ms), so the batch is complete.
async fn reap(h: &H) {
    let mut set = JoinSet::new();
    h.ctl.spawn_reaper(&mut set);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    h.ctl.shutdown();
    while set.join_next().await.is_some() {}
}

/// Connects `n` endpoints (in namespaces ns0, ns1, ...) and disconnects them again: their
/// veths wait for the reaper.
async fn retired(h: &H, n: usize) -> Vec<EndpointRow> {
    let mut eps = Vec::new();
    for i in 0..n {
        eps.push(connected(h, &format!("ns{i}"), false).await);
    }
    for ep in &eps {
        h.store().mark_endpoint_deleting(&ep.id).await.unwrap();
        h.run(Key::Endpoint(ep.id.clone())).await;
    }
    eps
}

/// A few retired veths are deleted one by one, by name: no group delete (which would need a
/// dump of every host interface first).
#[tokio::test]
async fn reaper_deletes_a_few_retired_veths_one_by_one() {
    let h = H::new().await;
    let eps = retired(&h, 2).await;
    assert_eq!(h.ctl.retired_pending(), 2);
    let before = h.k.calls().len();
    reap(&h).await;
    let calls = h.k.calls()[before..].to_vec();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(
        calls.iter().all(|c| c.starts_with("delete_link #")),
        "{calls:?}"
    );
    for ep in &eps {
        assert!(h.k.link(&NsRef::Host, &ep.host_ifname).is_none());
    }
    assert!(h.k.link(&NsRef::Host, "br-web").is_some());
    assert_eq!(h.ctl.retired_pending(), 0);
}

/// More than a few retired veths go with one group delete.
#[tokio::test]
async fn reaper_deletes_every_retired_veth_in_one_group_delete() {
    let h = H::new().await;
    let eps = retired(&h, ONE_BY_ONE_UP_TO + 1).await;
    assert_eq!(h.ctl.retired_pending(), ONE_BY_ONE_UP_TO + 1);
    let before = h.k.calls().len();
    reap(&h).await;
    let calls = h.k.calls()[before..].to_vec();
    assert_eq!(calls, vec![format!("delete_link_group {RETIRED_GROUP}")]);
    for ep in &eps {
        assert!(h.k.link(&NsRef::Host, &ep.host_ifname).is_none());
    }
    assert!(h.k.link(&NsRef::Host, "br-web").is_some());
    assert_eq!(h.ctl.retired_pending(), 0);
    assert_eq!(dumps(&h), 1, "the group is looked at first");
}

/// A burst's batch is gathered longer on a host whose dumps are slow (four times the last
/// dump, up to `REAP_BURST_GATHER_MAX`), so it pays fewer of them; a few retired veths still
/// go after `REAP_GATHER`.
#[tokio::test]
async fn reaper_gathers_a_burst_as_long_as_its_last_dump_took() {
    use std::time::{Duration, Instant};
    let h = H::new().await;
    let t0 = Instant::now();
    let (mut set, _) = gathering(&h).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        h.ctl.retired_pending(),
        ONE_BY_ONE_UP_TO + 1,
        "reaped before the burst's gathering ended"
    );
    while h.ctl.retired_pending() > 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the burst was never reaped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // At most REAP_BURST_GATHER_MAX (1 s), however long the dump took.
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert_eq!(dumps(&h), 1);
    h.ctl.shutdown();
    while set.join_next().await.is_some() {}

    // A few go after the short gathering, one by one, however long the last dump took.
    let h = H::new().await;
    h.ctl.set_last_dump(Duration::from_secs(5));
    let few = retired(&h, 2).await;
    let mut set = JoinSet::new();
    h.ctl.spawn_reaper(&mut set);
    let t0 = Instant::now();
    while h.ctl.retired_pending() > 0 {
        assert!(t0.elapsed() < Duration::from_secs(10), "never reaped");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        t0.elapsed() < Duration::from_millis(900),
        "a few waited for a burst's gathering: {:?}",
        t0.elapsed()
    );
    for ep in &few {
        assert!(h.k.link(&NsRef::Host, &ep.host_ifname).is_none());
    }
    assert_eq!(dumps(&h), 0);
    h.ctl.shutdown();
    while set.join_next().await.is_some() {}
}

/// A burst's gathering: at least `REAP_BURST_GATHER_MIN` however fast the host's last dump
/// was (each batch pays a dump and grace periods), four times the dump on a slow host, and
/// never past `REAP_BURST_GATHER_MAX`.
#[test]
fn a_burst_is_gathered_a_few_dumps_long_within_its_bounds() {
    use std::time::Duration;

    use crate::reconcile::retire::{REAP_BURST_GATHER_MAX, REAP_BURST_GATHER_MIN, burst_gathering};
    assert_eq!(burst_gathering(Duration::ZERO), REAP_BURST_GATHER_MIN);
    assert_eq!(
        burst_gathering(Duration::from_millis(5)),
        REAP_BURST_GATHER_MIN
    );
    assert_eq!(
        burst_gathering(Duration::from_millis(100)),
        Duration::from_millis(400)
    );
    assert_eq!(
        burst_gathering(Duration::from_secs(5)),
        REAP_BURST_GATHER_MAX
    );
    assert_eq!(burst_gathering(Duration::MAX), REAP_BURST_GATHER_MAX);
}

/// On a host whose dumps are fast, a burst still waits for more before its dump and group
/// delete, and then goes in one.
#[tokio::test]
async fn a_burst_waits_for_more_even_when_dumps_are_fast() {
    use std::time::{Duration, Instant};
    let h = H::new().await;
    h.ctl.set_last_dump(Duration::from_millis(1));
    let eps = retired(&h, ONE_BY_ONE_UP_TO + 1).await;
    let mut set = JoinSet::new();
    let t0 = Instant::now();
    h.ctl.spawn_reaper(&mut set);
    tokio::time::sleep(Duration::from_millis(100)).await;
    if t0.elapsed() < Duration::from_millis(200) {
        assert_eq!(
            h.ctl.retired_pending(),
            ONE_BY_ONE_UP_TO + 1,
            "a burst was reaped after {:?}, before its gathering ended",
            t0.elapsed()
        );
    }
    while h.ctl.retired_pending() > 0 {
        assert!(t0.elapsed() < Duration::from_secs(10), "never reaped");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for ep in &eps {
        assert!(h.k.link(&NsRef::Host, &ep.host_ifname).is_none());
    }
    assert_eq!(dumps(&h), 1);
    h.ctl.shutdown();
    while set.join_next().await.is_some() {}
}

/// A reap that was not gathered as a burst (the reaper counted a few before it began) and
/// finds more than a few waiting leaves them for the next round, which gathers them: it
/// neither deletes them one by one nor dumps the host without the gathering.
#[tokio::test]
async fn a_burst_that_grew_after_the_count_is_left_for_a_gathered_round() {
    let h = H::new().await;
    let eps = retired(&h, ONE_BY_ONE_UP_TO + 1).await;
    // The retirements' own wakes (no reaper task runs here to take them).
    let _ = h.ctl.reaper_woken();
    let before = h.k.calls().len();
    h.ctl.reap_ungathered().await.unwrap();
    assert_eq!(h.k.calls().len(), before, "{:?}", &h.k.calls()[before..]);
    assert_eq!(dumps(&h), 0);
    assert_eq!(h.ctl.retired_pending(), eps.len());
    assert!(
        h.ctl.reaper_woken(),
        "the set was left with no round to come for it"
    );
    h.ctl.reap_now().await.unwrap();
    assert_eq!(h.ctl.retired_pending(), 0);
    assert_eq!(dumps(&h), 1);
}

/// A burst (more than a few retired veths) the reaper is gathering for as long as a slow
/// last dump (5 s, so the 1-s cap): its task, and the endpoints, 100 ms in, none reaped.
async fn gathering(h: &H) -> (JoinSet<()>, Vec<EndpointRow>) {
    h.ctl.set_last_dump(std::time::Duration::from_secs(5));
    let eps = retired(h, ONE_BY_ONE_UP_TO + 1).await;
    let mut set = JoinSet::new();
    h.ctl.spawn_reaper(&mut set);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(h.ctl.retired_pending(), ONE_BY_ONE_UP_TO + 1);
    (set, eps)
}

/// A Connect whose bridge has no port left (`EXFULL`) ends a burst's gathering at once:
/// retired veths may hold the ports, and its retries would not outlast a long wait.
#[tokio::test]
async fn a_bridge_without_a_free_port_hurries_the_reaper() {
    use std::time::{Duration, Instant};
    let h = H::new().await;
    let (mut set, _) = gathering(&h).await;
    h.namespace("late").await;
    h.k.fail("set_link", None, Errno::EXFULL, 1);
    let t0 = Instant::now();
    let ep = h.connect("web", "late", Vec::new()).await;
    assert_ne!(h.ep_status(&ep.id).await.phase, Phase::Ready);
    while h.ctl.retired_pending() > 0 {
        assert!(
            t0.elapsed() < Duration::from_millis(600),
            "the reaper kept gathering after EXFULL"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    h.ctl.shutdown();
    while set.join_next().await.is_some() {}
}

/// A shutdown ends a burst's gathering: the reaper deletes what it holds and stops.
#[tokio::test]
async fn shutdown_ends_a_bursts_gathering() {
    use std::time::{Duration, Instant};
    let h = H::new().await;
    let (mut set, eps) = gathering(&h).await;
    let t0 = Instant::now();
    h.ctl.shutdown();
    while set.join_next().await.is_some() {}
    assert!(
        t0.elapsed() < Duration::from_millis(600),
        "the shutdown waited for the gathering: {:?}",
        t0.elapsed()
    );
    assert_eq!(h.ctl.retired_pending(), 0);
    for ep in &eps {
        assert!(h.k.link(&NsRef::Host, &ep.host_ifname).is_none());
    }
}

/// Dumps of every host interface the reaper took.
fn dumps(h: &H) -> u64 {
    h.ctl
        .stats()
        .reaper_host_dumps
        .load(std::sync::atomic::Ordering::Relaxed)
}

/// A foreign interface in the first retired group (where a small burst goes) makes the reaper
/// delete its own one by one.
#[tokio::test]
async fn reaper_deletes_only_its_own_when_the_group_holds_a_foreign_interface() {
    let h = H::new().await;
    let eps = retired(&h, ONE_BY_ONE_UP_TO + 1).await;
    h.k.add_foreign_link(&NsRef::Host, "theirs0", "dummy");
    h.k.tamper(&NsRef::Host, "theirs0", |l| l.group = RETIRED_GROUP);
    reap(&h).await;
    for ep in &eps {
        assert!(h.k.link(&NsRef::Host, &ep.host_ifname).is_none());
    }
    assert!(h.k.link(&NsRef::Host, "theirs0").is_some());
    assert!(
        !h.k.calls()
            .iter()
            .any(|c| c.starts_with("delete_link_group")),
        "{:?}",
        h.k.calls()
    );
}

/// Retires one more endpoint, in namespace `ns` (connected first).
async fn retire_one(h: &H, ns: &str) -> EndpointRow {
    let ep = connected(h, ns, false).await;
    h.store().mark_endpoint_deleting(&ep.id).await.unwrap();
    h.run(Key::Endpoint(ep.id.clone())).await;
    ep
}

/// A burst is deleted once it pauses: while veths keep being retired (here one every 100 ms,
/// past the least gathering of 250 ms), none is deleted; once none was for the quiet time,
/// all of them go after one dump, in one group delete.
#[tokio::test]
async fn a_burst_is_deleted_once_it_pauses() {
    use std::time::{Duration, Instant};
    let h = H::new().await;
    h.ctl.set_last_dump(Duration::from_millis(1));
    // Much longer than the 100 ms between retirements, so that a loaded machine's slow one
    // does not end the gathering; the cap far beyond the test.
    let quiet = Duration::from_millis(600);
    h.ctl.set_reap_timing(quiet, Duration::from_secs(60));
    let mut eps = retired(&h, ONE_BY_ONE_UP_TO + 1).await;
    let mut set = JoinSet::new();
    let t0 = Instant::now();
    h.ctl.spawn_reaper(&mut set);
    let mut last = t0;
    for i in 0..6 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            h.ctl.retired_pending(),
            eps.len(),
            "deleted {:?} in, while the burst went on",
            t0.elapsed()
        );
        // Before the retirement, so the reaper's quiet time (from its handing over) is over
        // no sooner than `quiet` after this.
        last = Instant::now();
        eps.push(retire_one(&h, &format!("late{i}")).await);
    }
    assert!(
        last - t0 > Duration::from_millis(500),
        "the burst did not outlast the least gathering"
    );
    while h.ctl.retired_pending() > 0 {
        assert!(t0.elapsed() < Duration::from_secs(10), "never reaped");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        last.elapsed() >= quiet,
        "deleted {:?} after the last retirement, before the burst had paused",
        last.elapsed()
    );
    for ep in &eps {
        assert!(h.k.link(&NsRef::Host, &ep.host_ifname).is_none());
    }
    assert_eq!(dumps(&h), 1);
    let groups: Vec<_> =
        h.k.calls()
            .into_iter()
            .filter(|c| c.starts_with("delete_link"))
            .collect();
    assert_eq!(groups, vec![format!("delete_link_group {RETIRED_GROUP}")]);
    h.ctl.shutdown();
    while set.join_next().await.is_some() {}
}

/// A burst that does not pause is still deleted, at `REAP_BURST_GATHER_LONGEST` (2 s): here
/// its quiet time (60 s) outlasts the test, as a burst that goes on would.
#[tokio::test]
async fn a_burst_that_goes_on_is_deleted_at_the_longest_gathering() {
    use std::time::{Duration, Instant};

    use crate::reconcile::retire::REAP_BURST_GATHER_LONGEST;
    let h = H::new().await;
    h.ctl.set_last_dump(Duration::from_millis(1));
    h.ctl
        .set_reap_timing(Duration::from_secs(60), REAP_BURST_GATHER_LONGEST);
    let eps = retired(&h, ONE_BY_ONE_UP_TO + 1).await;
    let mut set = JoinSet::new();
    let t0 = Instant::now();
    h.ctl.spawn_reaper(&mut set);
    while h.ctl.retired_pending() > 0 {
        assert!(t0.elapsed() < Duration::from_secs(10), "never reaped");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        t0.elapsed() >= Duration::from_millis(1900),
        "deleted after {:?}, before the longest gathering",
        t0.elapsed()
    );
    for ep in &eps {
        assert!(h.k.link(&NsRef::Host, &ep.host_ifname).is_none());
    }
    h.ctl.shutdown();
    while set.join_next().await.is_some() {}
}

/// A burst's veths fill the retired groups a chunk at a time, and each group goes with a
/// request of its own, so no request waiting for RTNL waits for a whole burst's delete.
#[tokio::test]
async fn a_large_burst_is_deleted_a_chunk_at_a_time() {
    let h = H::new().await;
    let eps = retired(&h, REAP_CHUNK + 2).await;
    for (i, ep) in eps.iter().enumerate() {
        let group = h.k.link(&NsRef::Host, &ep.host_ifname).unwrap().group;
        let chunk = if i < REAP_CHUNK { 0 } else { 1 };
        assert_eq!(group, RETIRED_GROUP + chunk, "the {i}th retired veth");
    }
    let before = h.k.calls().len();
    reap(&h).await;
    let calls = h.k.calls()[before..].to_vec();
    assert_eq!(
        calls,
        vec![
            format!("delete_link_group {RETIRED_GROUP}"),
            format!("delete_link_group {}", RETIRED_GROUP + 1),
        ]
    );
    for ep in &eps {
        assert!(h.k.link(&NsRef::Host, &ep.host_ifname).is_none());
    }
    assert!(h.k.link(&NsRef::Host, "br-web").is_some());
    assert_eq!(h.ctl.retired_pending(), 0);
    assert_eq!(dumps(&h), 1);
}

/// A foreign interface in one retired group spares that group only: the others go whole,
/// weft's members of that one one by one.
#[tokio::test]
async fn a_foreign_interface_in_the_second_group_spares_that_group_only() {
    let h = H::new().await;
    let eps = retired(&h, REAP_CHUNK + 2).await;
    h.k.add_foreign_link(&NsRef::Host, "theirs1", "dummy");
    h.k.tamper(&NsRef::Host, "theirs1", |l| l.group = RETIRED_GROUP + 1);
    let before = h.k.calls().len();
    reap(&h).await;
    let calls = h.k.calls()[before..].to_vec();
    assert_eq!(calls[0], format!("delete_link_group {RETIRED_GROUP}"));
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert!(
        calls[1..].iter().all(|c| c.starts_with("delete_link #")),
        "{calls:?}"
    );
    for ep in &eps {
        assert!(h.k.link(&NsRef::Host, &ep.host_ifname).is_none());
    }
    assert!(h.k.link(&NsRef::Host, "theirs1").is_some());
    assert_eq!(h.ctl.retired_pending(), 0);
}

/// Once the reaper has deleted all it held, the next burst fills the groups from the first
/// again (here the first burst filled the first group and began the second).
#[tokio::test]
async fn the_next_burst_starts_again_at_the_first_group() {
    use std::time::{Duration, Instant};
    let h = H::new().await;
    h.ctl.set_last_dump(Duration::from_millis(1));
    let first = retired(&h, REAP_CHUNK + 1).await;
    let last =
        h.k.link(&NsRef::Host, &first[REAP_CHUNK].host_ifname)
            .unwrap();
    assert_eq!(last.group, RETIRED_GROUP + 1);
    let mut set = JoinSet::new();
    h.ctl.spawn_reaper(&mut set);
    let t0 = Instant::now();
    while h.ctl.retired_pending() > 0 {
        assert!(t0.elapsed() < Duration::from_secs(10), "never reaped");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ep = retire_one(&h, "again").await;
    assert_eq!(
        h.k.link(&NsRef::Host, &ep.host_ifname).unwrap().group,
        RETIRED_GROUP
    );
    h.ctl.shutdown();
    while set.join_next().await.is_some() {}
}

/// The retired groups: a run of `RETIRED_GROUPS` from `RETIRED_GROUP`, filled a chunk at a
/// time and used again from the first once all are (a burst that large shares groups).
#[test]
fn retired_veths_fill_the_groups_a_chunk_at_a_time_and_wrap() {
    use crate::reconcile::retire::retired_group_for;
    assert_eq!(retired_group_for(0), RETIRED_GROUP);
    assert_eq!(retired_group_for(REAP_CHUNK - 1), RETIRED_GROUP);
    assert_eq!(retired_group_for(REAP_CHUNK), RETIRED_GROUP + 1);
    let last = RETIRED_GROUP + RETIRED_GROUPS - 1;
    assert_eq!(
        retired_group_for(REAP_CHUNK * RETIRED_GROUPS as usize - 1),
        last
    );
    assert_eq!(
        retired_group_for(REAP_CHUNK * RETIRED_GROUPS as usize),
        RETIRED_GROUP
    );
    assert!(is_retired_group(RETIRED_GROUP) && is_retired_group(last));
    assert!(!is_retired_group(RETIRED_GROUP - 1) && !is_retired_group(last + 1));
    assert!(!is_retired_group(0));
}

/// A full bridge with no retired veth waiting has nothing to hurry, and leaves no reason for
/// later: the next burst is still gathered.
#[tokio::test]
async fn a_hurry_with_nothing_waiting_does_not_cut_the_next_burst_short() {
    let h = H::new().await;
    h.ctl.hurry_reaper();
    let (mut set, _) = gathering(&h).await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(
        h.ctl.retired_pending(),
        ONE_BY_ONE_UP_TO + 1,
        "the burst was deleted at once"
    );
    h.ctl.shutdown();
    while set.join_next().await.is_some() {}
}

/// A hurry that came while the reaper held veths is spent once it has deleted them all: the
/// next burst is still gathered, not deleted 20 ms in.
#[tokio::test]
async fn a_hurry_is_spent_once_all_it_was_for_is_deleted() {
    use std::time::Duration;
    let h = H::new().await;
    let _ = retired(&h, 2).await;
    // Nothing waits on the hurry now: it is kept as a permit, until the reap spends it.
    h.ctl.hurry_reaper();
    h.ctl.reap_now().await.unwrap();
    assert_eq!(h.ctl.retired_pending(), 0);
    let mut next = Vec::new();
    for i in 0..=ONE_BY_ONE_UP_TO {
        next.push(connected(&h, &format!("next{i}"), false).await);
    }
    for ep in &next {
        h.store().mark_endpoint_deleting(&ep.id).await.unwrap();
        h.run(Key::Endpoint(ep.id.clone())).await;
    }
    h.ctl.set_last_dump(Duration::from_secs(5));
    let mut set = JoinSet::new();
    h.ctl.spawn_reaper(&mut set);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        h.ctl.retired_pending(),
        next.len(),
        "the next burst was deleted at once"
    );
    h.ctl.shutdown();
    while set.join_next().await.is_some() {}
}

/// A group whose delete fails does not stop the others: they go, its veths stay waiting for
/// the next try, and the error is reported.
#[tokio::test]
async fn a_failed_group_delete_leaves_that_group_waiting_and_the_rest_deleted() {
    let h = H::new().await;
    let eps = retired(&h, REAP_CHUNK + 2).await;
    h.k.fail("delete_link_group", None, Errno::EBUSY, 1);
    assert!(h.ctl.reap_now().await.is_err());
    assert_eq!(h.ctl.retired_pending(), REAP_CHUNK);
    for (i, ep) in eps.iter().enumerate() {
        let there = h.k.link(&NsRef::Host, &ep.host_ifname).is_some();
        assert_eq!(there, i < REAP_CHUNK, "the {i}th retired veth");
    }
    h.ctl.reap_now().await.unwrap();
    assert_eq!(h.ctl.retired_pending(), 0);
    for ep in &eps {
        assert!(h.k.link(&NsRef::Host, &ep.host_ifname).is_none());
    }
}
