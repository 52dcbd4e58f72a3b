//! A Connect's veth made beside its transaction (`reconcile::prepare`): the endpoint's first
//! reconcile takes the pair as made; a pair whose transaction failed is deleted; the GC
//! leaves a pair being prepared alone, and removes one a crash left before its commit; a
//! Connect dropped mid-call has its pair settled.
//!
//! The tests call what the Connect calls (the guard's `start` and `made`, or
//! `prepare_endpoint_veth`, its registration and task in one call; the store's `connect_as`
//! with the same uid, `discard_prepared`, `prepare_guard`) in the orders the races allow.

use nix::errno::Errno;

use super::{H, connect_spec};
use crate::{
    kernel::NsRef,
    model::{Phase, endpoint_host_ifname, port::DEFAULT_LOCAL_PORT_RANGE},
    reconcile::{Key, PrepareOutcome},
    store::EndpointRow,
};

/// Network "web" and namespace "ns1", both Ready.
async fn world() -> H {
    let h = H::new().await;
    h.network("web", "br-web", &["10.88.0.0/24"]).await;
    h.namespace("ns1").await;
    h
}

/// Commits the endpoint of ns1 on web under uid `id`, as the Connect's transaction does.
async fn commit(h: &H, id: &str) -> EndpointRow {
    h.store()
        .connect_as(
            id,
            &connect_spec("web", "ns1", Vec::new()),
            &DEFAULT_LOCAL_PORT_RANGE,
            None,
            false,
        )
        .await
        .unwrap()
}

/// The pair's ends as the fake holds them: (host end, peer), if each is there.
fn ends(
    h: &H,
    id: &str,
) -> (
    Option<crate::kernel::LinkState>,
    Option<crate::kernel::LinkState>,
) {
    (
        h.k.link(&NsRef::Host, &endpoint_host_ifname(id)),
        h.k.link(&h.ns("ns1"), "eth0"),
    )
}

/// The pair is made newborn with the host end's IPv6 off; the first reconcile marks and
/// wires that very pair, with no create of its own, and nothing stays registered.
#[tokio::test]
async fn the_first_reconcile_takes_the_prepared_pair_without_creating_one() {
    let h = world().await;
    let id = h.store().fresh_uid();
    assert!(h.ctl.prepare_endpoint_veth(&id, "web", "ns1", "eth0").await);
    let (host, peer) = ends(&h, &id);
    let (host, peer) = (host.unwrap(), peer.unwrap());
    assert!(host.is_newborn() && peer.is_newborn());
    let host_ifname = endpoint_host_ifname(&id);
    assert_eq!(
        h.k.sysctl(
            &NsRef::Host,
            &format!("net/ipv6/conf/{host_ifname}/disable_ipv6")
        )
        .as_deref(),
        Some("1")
    );
    assert!(
        h.k.addr_gen_none(&h.ns("ns1"), "eth0"),
        "web has no IPv6 subnet: the peer's IPv6 is off before the commit"
    );
    let row = commit(&h, &id).await;
    let calls_before = h.k.calls().len();
    h.run(Key::Endpoint(id.clone())).await;
    let s = h.ep_status(&id).await;
    assert_eq!(s.phase, Phase::Ready, "{}", s.message);
    let run: Vec<String> = h.k.calls()[calls_before..].to_vec();
    assert!(
        !run.iter().any(|c| c.starts_with("create_veth")),
        "the reconcile created the pair again: {run:?}"
    );
    let (now_host, now_peer) = ends(&h, &id);
    let (now_host, now_peer) = (now_host.unwrap(), now_peer.unwrap());
    assert_eq!((now_host.index, now_peer.index), (host.index, peer.index));
    let mark = Some(format!("weft:{id}"));
    assert_eq!((&now_host.alias, now_host.group), (&mark, 0));
    assert_eq!((&now_peer.alias, now_peer.group), (&mark, 0));
    assert!(now_host.master.is_some() && now_host.up && now_peer.up);
    assert_eq!(now_peer.addresses, row.addresses);
    assert!(h.k.addr_gen_none(&h.ns("ns1"), "eth0"));
    assert!(h.ctl.preparing_names().is_empty());
}

/// The host end is known from the create's echo, not read: a read of it that would fail
/// does not stop the pair being taken. Where the kernel echoes nothing (before Linux 6.1),
/// the end is read, and a failed read leaves the pair to the reconcile, which makes it.
#[tokio::test]
async fn the_host_end_comes_from_the_creates_echo_and_is_read_without_one() {
    for echo in [true, false] {
        let h = world().await;
        if !echo {
            h.k.no_echo();
        }
        let id = h.store().fresh_uid();
        let host_ifname = endpoint_host_ifname(&id);
        h.k.fail("get_link_bare", Some(&host_ifname), Errno::EIO, 1);
        assert!(h.ctl.prepare_endpoint_veth(&id, "web", "ns1", "eth0").await);
        commit(&h, &id).await;
        let calls_before = h.k.calls().len();
        h.run(Key::Endpoint(id.clone())).await;
        let s = h.ep_status(&id).await;
        assert_eq!(s.phase, Phase::Ready, "echo {echo}: {}", s.message);
        let created = h.k.calls()[calls_before..]
            .iter()
            .any(|c| c.starts_with("create_veth"));
        assert_eq!(created, !echo, "echo {echo}: {:?}", h.k.calls());
        let (host, peer) = ends(&h, &id);
        assert!(host.unwrap().up && peer.unwrap().up);
    }
}

/// A network with IPv6 keeps its endpoints' inner IPv6: the pair made for it leaves the
/// peer's address generation alone. And where the controller took a network for IPv4-only
/// wrongly (its name reused by one with IPv6 since its last reconcile), the reconcile makes
/// the pair anew rather than leave the inner end without IPv6.
#[tokio::test]
async fn the_peer_keeps_ipv6_where_its_network_has_it() {
    let h = H::new().await;
    h.network("dual", "br-dual", &["10.89.0.0/24", "fd00:89::/64"])
        .await;
    h.namespace("ns1").await;
    h.namespace("ns2").await;
    let id = h.store().fresh_uid();
    assert!(
        h.ctl
            .prepare_endpoint_veth(&id, "dual", "ns1", "eth0")
            .await
    );
    assert!(!h.k.addr_gen_none(&h.ns("ns1"), "eth0"));

    h.ctl.note_network_families("dual", true);
    let wrong = h.store().fresh_uid();
    assert!(
        h.ctl
            .prepare_endpoint_veth(&wrong, "dual", "ns2", "eth0")
            .await
    );
    assert!(h.k.addr_gen_none(&h.ns("ns2"), "eth0"));
    let prepared = h.k.link(&h.ns("ns2"), "eth0").unwrap().index;
    h.store()
        .connect_as(
            &wrong,
            &connect_spec("dual", "ns2", Vec::new()),
            &DEFAULT_LOCAL_PORT_RANGE,
            None,
            false,
        )
        .await
        .unwrap();
    h.run(Key::Endpoint(wrong.clone())).await;
    let s = h.ep_status(&wrong).await;
    assert_eq!(s.phase, Phase::Ready, "{}", s.message);
    let peer = h.k.link(&h.ns("ns2"), "eth0").unwrap();
    assert_ne!(peer.index, prepared, "the wrongly prepared pair was kept");
    assert!(!h.k.addr_gen_none(&h.ns("ns2"), "eth0"));
}

/// A transaction that failed: the Connect deletes the pair it made, both ends, and forgets it.
#[tokio::test]
async fn a_pair_prepared_for_a_failed_transaction_is_deleted() {
    let h = world().await;
    let id = h.store().fresh_uid();
    assert!(h.ctl.prepare_endpoint_veth(&id, "web", "ns1", "eth0").await);
    h.ctl.discard_prepared(&id).await;
    let (host, peer) = ends(&h, &id);
    assert!(host.is_none() && peer.is_none(), "{host:?} {peer:?}");
    assert!(h.ctl.preparing_names().is_empty());
}

/// The GC meets the pair between its create and its commit: newborn, and no row plans it.
/// It stays, the commit follows, and the endpoint converges on it.
#[tokio::test]
async fn the_gc_leaves_a_pair_being_prepared_alone() {
    let h = world().await;
    let id = h.store().fresh_uid();
    assert!(h.ctl.prepare_endpoint_veth(&id, "web", "ns1", "eth0").await);
    let index = ends(&h, &id).0.unwrap().index;
    assert_eq!(h.run(Key::Gc).await, 0, "the GC wrote");
    assert_eq!(h.orphans(), 0);
    commit(&h, &id).await;
    h.run(Key::Endpoint(id.clone())).await;
    assert_eq!(h.ep_status(&id).await.phase, Phase::Ready);
    assert_eq!(ends(&h, &id).0.unwrap().index, index);
}

/// A crash after the create and before the commit: no row plans the pair and nothing has it
/// registered after the restart, so the GC removes it (one orphan), and the namespace
/// connects again.
#[tokio::test]
async fn a_pair_a_crash_left_before_its_commit_is_collected() {
    let mut h = world().await;
    let id = h.store().fresh_uid();
    assert!(h.ctl.prepare_endpoint_veth(&id, "web", "ns1", "eth0").await);
    h.restart().await;
    h.run(Key::Gc).await;
    let (host, peer) = ends(&h, &id);
    assert!(host.is_none() && peer.is_none(), "{host:?} {peer:?}");
    assert_eq!(h.orphans(), 1);
    let again = h.connect("web", "ns1", Vec::new()).await;
    assert_eq!(h.ep_status(&again.id).await.phase, Phase::Ready);
}

/// Nothing is made where the namespace is unknown or the name is taken, and nothing stays
/// registered: the reconcile does the work as it would without this.
#[tokio::test]
async fn nothing_is_prepared_where_it_cannot_be() {
    let h = world().await;
    let id = h.store().fresh_uid();
    assert!(
        !h.ctl
            .prepare_endpoint_veth(&id, "web", "nowhere", "eth0")
            .await
    );
    h.k.add_foreign_link(&h.ns("ns1"), "eth0", "dummy");
    assert!(!h.ctl.prepare_endpoint_veth(&id, "web", "ns1", "eth0").await);
    assert!(ends(&h, &id).0.is_none());
    assert!(h.ctl.preparing_names().is_empty());
}

/// Waits (at most 2 s) until `done` holds: the dropped guard settles in a task of its own.
async fn settled(done: impl Fn() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}

/// A Connect dropped before it settled its pair (its client went away mid-call): without a
/// row the pair is deleted; with one the endpoint is queued, and the pair kept for it.
#[tokio::test]
async fn a_dropped_connect_s_pair_is_settled() {
    let h = world().await;
    let lost = h.store().fresh_uid();
    let guard = h.ctl.prepare_guard(&lost);
    assert!(
        h.ctl
            .prepare_endpoint_veth(&lost, "web", "ns1", "eth0")
            .await
    );
    drop(guard);
    settled(|| ends(&h, &lost).0.is_none()).await;
    assert!(ends(&h, &lost).0.is_none() && ends(&h, &lost).1.is_none());
    assert!(h.ctl.preparing_names().is_empty());

    let kept = h.store().fresh_uid();
    let guard = h.ctl.prepare_guard(&kept);
    assert!(
        h.ctl
            .prepare_endpoint_veth(&kept, "web", "ns1", "eth0")
            .await
    );
    commit(&h, &kept).await;
    let depth = h.ctl.queue_depth();
    drop(guard);
    settled(|| h.ctl.queue_depth() > depth).await;
    assert_eq!(
        h.ctl.queue_depth(),
        depth + 1,
        "the endpoint was not queued"
    );
    assert!(ends(&h, &kept).0.is_some());
    h.run(Key::Endpoint(kept.clone())).await;
    assert_eq!(h.ep_status(&kept).await.phase, Phase::Ready);
}

/// A Connect dropped while its pair is still being made in the guard's task (its client went
/// away during the transaction): the settling waits for the task, so the pair made after the
/// drop is deleted too, not left behind unregistered.
#[tokio::test]
async fn a_connect_dropped_while_its_pair_is_made_has_it_settled_once_made() {
    let h = world().await;
    h.k.delay_creates(std::time::Duration::from_millis(100));
    let lost = h.store().fresh_uid();
    let mut guard = h.ctl.prepare_guard(&lost);
    guard.start("web", "ns1", "eth0");
    // Let the task reach its create, then drop the Connect while the create waits.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert!(
        ends(&h, &lost).0.is_none(),
        "the create did not wait as the fake was told"
    );
    drop(guard);
    settled(|| h.ctl.preparing_names().is_empty()).await;
    // Well past the create's end, whatever the settling did.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        ends(&h, &lost).0.is_none() && ends(&h, &lost).1.is_none(),
        "the pair made after the Connect was dropped is still there"
    );
    assert!(h.ctl.preparing_names().is_empty());
}

/// A guard's task answers whether the kernel made the pair, as the direct call does; a
/// create refused for a taken name answers so and leaves nothing registered; another failure
/// answers not made.
#[tokio::test]
async fn the_guard_s_task_answers_what_the_create_made() {
    let h = world().await;
    let id = h.store().fresh_uid();
    let mut guard = h.ctl.prepare_guard(&id);
    guard.start("web", "ns1", "eth0");
    assert_eq!(guard.made().await, PrepareOutcome::Made);
    assert_eq!(guard.made().await, PrepareOutcome::NotMade, "answered once");
    assert!(ends(&h, &id).0.is_some_and(|l| l.is_newborn()));
    guard.disarm();

    // eth0 is taken in ns1 now: the next pair for it is refused by the kernel.
    let other = h.store().fresh_uid();
    let mut guard = h.ctl.prepare_guard(&other);
    guard.start("web", "ns1", "eth0");
    assert_eq!(guard.made().await, PrepareOutcome::NameTaken);
    assert!(
        h.k.link(&NsRef::Host, &endpoint_host_ifname(&other))
            .is_none()
    );
    assert!(
        !h.ctl
            .preparing_names()
            .iter()
            .any(|(_, name)| *name == endpoint_host_ifname(&other))
    );
    guard.disarm();
    // A create that fails for another reason.
    h.k.fail("create_veth", None, Errno::EPERM, 1);
    let denied = h.store().fresh_uid();
    let mut guard = h.ctl.prepare_guard(&denied);
    guard.start("web", "ns1", "eth1");
    assert_eq!(guard.made().await, PrepareOutcome::NotMade);
    assert!(
        h.k.link(&NsRef::Host, &endpoint_host_ifname(&denied))
            .is_none()
    );
    guard.disarm();
    // Not started at all: nothing was made.
    let mut idle = h.ctl.prepare_guard(&h.store().fresh_uid());
    assert_eq!(idle.made().await, PrepareOutcome::NotMade);
    idle.disarm();
}

/// The pair's names are registered when the guard's task is started, before the commit: a
/// reconcile that runs while the task's create is still under way (the endpoint queued by
/// someone else) takes the registration and makes or adopts the pair itself, and nothing of
/// the task's lingers for a later reconcile.
#[tokio::test]
async fn a_started_pair_is_registered_at_once_and_a_reconcile_before_its_create_takes_it() {
    let h = world().await;
    h.k.delay_creates(std::time::Duration::from_millis(50));
    let id = h.store().fresh_uid();
    let host = endpoint_host_ifname(&id);
    let mut guard = h.ctl.prepare_guard(&id);
    guard.start("web", "ns1", "eth0");
    assert!(
        h.ctl
            .preparing_names()
            .contains(&(String::new(), host.clone())),
        "not registered when start returned"
    );
    commit(&h, &id).await;
    h.run(Key::Endpoint(id.clone())).await;
    let s = h.ep_status(&id).await;
    assert_eq!(s.phase, Phase::Ready, "{}", s.message);
    guard.made().await;
    guard.disarm();
    assert!(h.ctl.preparing_names().is_empty(), "a registration lingers");
    assert!(h.ctl.take_prepared(&id).is_none(), "a made pair lingers");
    let (host_end, peer) = ends(&h, &id);
    assert!(host_end.is_some_and(|l| !l.is_newborn()) && peer.is_some_and(|l| !l.is_newborn()));
}

/// A disarmed guard settles nothing: the Connect did.
#[tokio::test]
async fn a_disarmed_guard_leaves_the_pair_to_the_reconcile() {
    let h = world().await;
    let id = h.store().fresh_uid();
    let mut guard = h.ctl.prepare_guard(&id);
    assert!(h.ctl.prepare_endpoint_veth(&id, "web", "ns1", "eth0").await);
    commit(&h, &id).await;
    guard.disarm();
    let depth = h.ctl.queue_depth();
    drop(guard);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(h.ctl.queue_depth(), depth);
    assert!(ends(&h, &id).0.is_some());
}
