//! Links (veth pairs and bridges): create, converge with zero writes, spec updates, drift
//! repair, delete, and never adopting or deleting an interface without weft's mark.
//!
//! Drift is made with the fake kernel's `tamper` (change an interface's state behind weft's
//! back) and `remove_behind_back` (delete it, and its veth peer); a repair must write only
//! what differs (asserted as the write count) and is counted in `stats().drift_repairs`
//! because the link was Ready at its generation before.
//!
//! Most tests use `rich_veth` (host end `vh1`, `vi1` in "ns1" with an address, a route and
//! MTU 1400): one spec that makes every kind of kernel call, so "zero writes when converged"
//! and "one write per difference" cover them all. A spec change goes through
//! `Store::update_link_spec` (generation + 1) and is not drift; the tests on ownership check
//! both the status (Failed at the first attempt, with the name in the message) and that the
//! foreign interface is exactly as it was.

use nix::errno::Errno;

use super::{H, bridge, end, ip, mark, net, rich_veth, veth, veth_ends};
use crate::{
    kernel::{NsRef, RouteState},
    model::Phase,
    reconcile::Key,
};

/// A new veth: both ends marked, up, at the link's MTU; addresses and routes inside; indexes
/// recorded.
#[tokio::test]
async fn veth_create_makes_both_ends_marked_up_with_mtu_addresses_and_routes() {
    let h = H::new().await;
    h.namespace("ns1").await;
    let id = h.link(&rich_veth()).await;
    let outside = h.k.link(&NsRef::Host, "vh1").unwrap();
    let inside = h.k.link(&h.ns("ns1"), "vi1").unwrap();
    for l in [&outside, &inside] {
        assert_eq!(l.kind.as_deref(), Some("veth"));
        assert_eq!(l.alias, mark(&id));
        assert!(l.up);
        assert_eq!(l.mtu, 1400, "an end without an MTU takes the link's");
    }
    assert_eq!(inside.addresses, vec![net("10.9.0.2/24")]);
    assert!(outside.addresses.is_empty());
    assert_eq!(
        h.k.routes(&h.ns("ns1"), "vi1"),
        vec![RouteState {
            destination: net("10.10.0.0/16"),
            gateway: Some(ip("10.9.0.1")),
            metric: 0
        }]
    );
    let row = h.store().link_by_id(&id).await.unwrap().unwrap();
    assert_eq!(row.status.phase, Phase::Ready);
    assert_eq!(row.status.observed_generation, row.generation);
    assert_eq!(row.observed.ends.len(), 2);
    assert_eq!(row.observed.ends[0].index, outside.index);
    assert_eq!(row.observed.ends[1].index, inside.index);
    assert_eq!(Some(row.observed.ends[1].mac.clone()), inside.mac);
}

/// A veth's first end is known from its create's echo and not read again; where the kernel
/// echoes nothing (before Linux 6.1), it is read, and a failed read is retried.
#[tokio::test]
async fn a_new_veths_first_end_comes_from_the_creates_echo_and_is_read_without_one() {
    for echo in [true, false] {
        let h = H::new().await;
        h.namespace("ns1").await;
        if !echo {
            h.k.no_echo();
        }
        h.k.fail("get_link_bare", Some("vh1"), Errno::EIO, 1);
        let id = h.link(&rich_veth()).await;
        let first = h.link_status(&id).await;
        assert_eq!(first.phase == Phase::Ready, echo, "echo {echo}: {first:?}");
        h.run(Key::Link(id.clone())).await;
        assert_eq!(h.link_status(&id).await.phase, Phase::Ready, "echo {echo}");
        let outside = h.k.link(&NsRef::Host, "vh1").unwrap();
        assert!(
            outside.up && outside.alias == mark(&id),
            "echo {echo}: {outside:?}"
        );
    }
}

/// A converged veth is observed, not written: two runs, zero writes and the same call log,
/// so neither the reconcile nor its observation of the peer changes anything.
#[tokio::test]
async fn converged_veth_reconciles_with_zero_writes() {
    let h = H::new().await;
    h.namespace("ns1").await;
    let id = h.link(&rich_veth()).await;
    let calls = h.k.calls();
    assert_eq!(h.run(Key::Link(id.clone())).await, 0);
    assert_eq!(h.run(Key::Link(id.clone())).await, 0);
    assert_eq!(h.k.calls(), calls);
    assert_eq!(h.drift(), 0);
    assert_eq!(h.link_status(&id).await.phase, Phase::Ready);
}

/// A bridge link gets its mark, MAC and address, then reconciles quietly.
#[tokio::test]
async fn bridge_create_makes_a_marked_bridge_with_its_mac_and_is_then_quiet() {
    let h = H::new().await;
    let mut spec = bridge("br9");
    spec.end.mac = Some("02:00:00:00:00:09".into());
    spec.end.addresses = vec![net("10.99.0.1/24")];
    let id = h.link(&spec).await;
    let br = h.k.link(&NsRef::Host, "br9").unwrap();
    assert_eq!(br.kind.as_deref(), Some("bridge"));
    assert_eq!(br.alias, mark(&id));
    assert!(br.up);
    assert_eq!(br.mac.as_deref(), Some("02:00:00:00:00:09"));
    assert_eq!(br.addresses, vec![net("10.99.0.1/24")]);
    assert_eq!(h.link_status(&id).await.phase, Phase::Ready);
    assert_eq!(h.run(Key::Link(id)).await, 0);
}

/// An end with a master is enslaved to that bridge; the other end is not.
#[tokio::test]
async fn veth_end_with_a_master_becomes_a_port_of_that_bridge() {
    let h = H::new().await;
    h.namespace("ns1").await;
    h.link(&bridge("br9")).await;
    let mut spec = veth("vh1", "vi1", "ns1");
    spec.end.master = Some("br9".into());
    let id = h.link(&spec).await;
    let br = h.k.link(&NsRef::Host, "br9").unwrap();
    assert_eq!(
        h.k.link(&NsRef::Host, "vh1").unwrap().master,
        Some(br.index)
    );
    assert_eq!(h.k.link(&h.ns("ns1"), "vi1").unwrap().master, None);
    assert_eq!(h.link_status(&id).await.phase, Phase::Ready);
}

/// An update converges MTU and addresses and reports the new generation; it is not drift:
/// the link was converged at generation 1, not at 2, when the step wrote.
#[tokio::test]
async fn spec_update_converges_mtu_and_addresses_at_the_new_generation() {
    let h = H::new().await;
    h.namespace("ns1").await;
    let id = h.link(&rich_veth()).await;
    let mut spec = rich_veth();
    spec.end.mtu = 9000;
    if let crate::model::LinkKind::Veth { peer } = &mut spec.kind {
        peer.addresses = vec![net("10.9.0.3/24")];
    }
    let row = h.update_link(&id, &spec).await;
    assert_eq!(row.generation, 2);
    assert!(h.run(Key::Link(id.clone())).await > 0);
    let inside = h.k.link(&h.ns("ns1"), "vi1").unwrap();
    assert_eq!(inside.mtu, 9000);
    assert_eq!(inside.addresses, vec![net("10.9.0.3/24")]);
    assert_eq!(h.k.link(&NsRef::Host, "vh1").unwrap().mtu, 9000);
    let s = h.link_status(&id).await;
    assert_eq!((s.phase, s.observed_generation), (Phase::Ready, 2));
    assert_eq!(h.drift(), 0, "a spec change is not drift");
}

/// A spec update that drops the master releases the port from its bridge.
#[tokio::test]
async fn update_without_a_master_releases_the_port() {
    let h = H::new().await;
    h.namespace("ns1").await;
    h.link(&bridge("br9")).await;
    let mut spec = veth("vh1", "vi1", "ns1");
    spec.end.master = Some("br9".into());
    let id = h.link(&spec).await;
    assert!(h.k.link(&NsRef::Host, "vh1").unwrap().master.is_some());
    spec.end.master = None;
    h.update_link(&id, &spec).await;
    assert_eq!(h.run(Key::Link(id.clone())).await, 1);
    assert_eq!(h.k.link(&NsRef::Host, "vh1").unwrap().master, None);
    assert_eq!(h.link_status(&id).await.observed_generation, 2);
}

/// MTU and up flag changed by hand are put back in one request and counted as drift.
#[tokio::test]
async fn mtu_and_flag_changed_behind_back_are_repaired_and_counted_as_drift() {
    let h = H::new().await;
    h.namespace("ns1").await;
    let id = h.link(&rich_veth()).await;
    h.k.tamper(&NsRef::Host, "vh1", |l| {
        l.mtu = 1500;
        l.up = false;
    });
    assert_eq!(h.run(Key::Link(id.clone())).await, 1, "one set_link");
    let l = h.k.link(&NsRef::Host, "vh1").unwrap();
    assert_eq!((l.mtu, l.up), (1400, true));
    assert_eq!(h.drift(), 1);
    assert_eq!(h.link_status(&id).await.phase, Phase::Ready);
}

/// An address and a route removed by hand are added back, one request each.
#[tokio::test]
async fn address_and_route_removed_behind_back_are_restored() {
    let h = H::new().await;
    h.namespace("ns1").await;
    let id = h.link(&rich_veth()).await;
    // Deleting the address takes the route through it too, as the kernel does.
    h.k.tamper(&h.ns("ns1"), "vi1", |l| l.addresses.clear());
    let idx = h.k.link(&h.ns("ns1"), "vi1").unwrap().index;
    use crate::kernel::RouteOps;
    h.k.del_route(
        &h.ns("ns1"),
        idx,
        &RouteState {
            destination: net("10.10.0.0/16"),
            gateway: Some(ip("10.9.0.1")),
            metric: 0,
        },
    )
    .await
    .unwrap();
    assert!(h.k.routes(&h.ns("ns1"), "vi1").is_empty());
    assert_eq!(h.run(Key::Link(id)).await, 2, "one address, one route");
    assert_eq!(
        h.k.link(&h.ns("ns1"), "vi1").unwrap().addresses,
        vec![net("10.9.0.2/24")]
    );
    assert_eq!(h.k.routes(&h.ns("ns1"), "vi1").len(), 1);
    assert_eq!(h.drift(), 1);
}

/// Half a pair is no pair: a deleted veth comes back whole, with new indexes recorded.
#[tokio::test]
async fn veth_deleted_behind_back_is_recreated_whole() {
    let h = H::new().await;
    h.namespace("ns1").await;
    let id = h.link(&rich_veth()).await;
    let old = h.k.link(&h.ns("ns1"), "vi1").unwrap().index;
    h.k.remove_behind_back(&h.ns("ns1"), "vi1");
    assert!(h.k.link(&NsRef::Host, "vh1").is_none());
    assert!(h.run(Key::Link(id.clone())).await > 0);
    let inside = h.k.link(&h.ns("ns1"), "vi1").unwrap();
    assert_ne!(inside.index, old);
    assert_eq!(inside.alias, mark(&id));
    assert_eq!(inside.addresses, vec![net("10.9.0.2/24")]);
    assert_eq!(h.k.routes(&h.ns("ns1"), "vi1").len(), 1);
    assert_eq!(h.k.link(&NsRef::Host, "vh1").unwrap().alias, mark(&id));
    assert_eq!(h.drift(), 1);
    let row = h.store().link_by_id(&id).await.unwrap().unwrap();
    assert_eq!(
        row.observed.ends[1].index, inside.index,
        "new index recorded"
    );
}

/// A marked interface of the wrong kind is re-created, and the bridge's ports are queued:
/// a new bridge has no ports, so each veth enslaved to it must be reconciled again.
#[tokio::test]
async fn bridge_whose_kind_changed_behind_back_is_recreated_and_its_ports_requeued() {
    let h = H::new().await;
    h.namespace("ns1").await;
    let br = h.link(&bridge("br9")).await;
    let mut port = veth("vh1", "vi1", "ns1");
    port.end.master = Some("br9".into());
    h.link(&port).await;
    h.k.tamper(&NsRef::Host, "br9", |l| l.kind = Some("dummy".into()));
    let depth = h.ctl.queue_depth();
    h.run(Key::Link(br.clone())).await;
    let l = h.k.link(&NsRef::Host, "br9").unwrap();
    assert_eq!(l.kind.as_deref(), Some("bridge"));
    assert_eq!(l.alias, mark(&br));
    assert_eq!(h.ctl.queue_depth(), depth + 1, "its port is queued again");
}

/// Deleting a link removes both ends, then the row: the row goes only once the kernel
/// objects are gone, so a crash in between leaves a delete that a restart finishes.
#[tokio::test]
async fn link_delete_removes_both_ends_and_the_row() {
    let h = H::new().await;
    h.namespace("ns1").await;
    let id = h.link(&rich_veth()).await;
    h.store().mark_link_deleting(&id).await.unwrap();
    assert_eq!(h.link_status(&id).await.phase, Phase::Deleting);
    h.run(Key::Link(id.clone())).await;
    assert!(h.k.link(&NsRef::Host, "vh1").is_none());
    assert!(h.k.link(&h.ns("ns1"), "vi1").is_none());
    assert!(h.store().link_by_id(&id).await.unwrap().is_none());
}

/// A namespace that is gone took the link's interfaces with it: the delete still finishes.
#[tokio::test]
async fn link_delete_finishes_when_its_namespace_is_already_gone() {
    let h = H::new().await;
    h.namespace("ns1").await;
    let id = h.link(&rich_veth()).await;
    h.k.vanish_namespace(&h.ns_path("ns1"));
    h.store().mark_link_deleting(&id).await.unwrap();
    h.run(Key::Link(id.clone())).await;
    assert!(h.store().link_by_id(&id).await.unwrap().is_none());
    assert!(h.k.link(&NsRef::Host, "vh1").is_none());
    assert_eq!(h.failures(), 0);
}

/// An unmarked interface with the link's name is refused (Failed at once) and never touched.
#[tokio::test]
async fn link_refuses_to_adopt_an_interface_without_weft_mark() {
    let h = H::new().await;
    h.k.add_foreign_link(&NsRef::Host, "eth9", "veth");
    h.namespace("ns1").await;
    let id = h.link(&veth("eth9", "vi1", "ns1")).await;
    let s = h.link_status(&id).await;
    assert_eq!(
        s.phase,
        Phase::Failed,
        "permanent: Failed at the first attempt"
    );
    assert!(
        s.message.contains("not owned by weft") && s.message.contains("eth9"),
        "{}",
        s.message
    );
    let eth9 = h.k.link(&NsRef::Host, "eth9").unwrap();
    assert_eq!((eth9.alias, eth9.up), (None, false), "left as it was");
    assert!(h.k.link(&h.ns("ns1"), "vi1").is_none(), "nothing half made");
    assert!(
        !h.k.calls().iter().any(|c| c.starts_with("create_veth")),
        "{:?}",
        h.k.calls()
    );
}

/// Deleting a link spares an unmarked interface that took its name.
#[tokio::test]
async fn link_delete_never_touches_a_foreign_interface_with_its_name() {
    let h = H::new().await;
    let id = h.link(&bridge("br9")).await;
    // Someone replaced weft's bridge with their own.
    h.k.remove_behind_back(&NsRef::Host, "br9");
    h.k.add_foreign_link(&NsRef::Host, "br9", "bridge");
    h.store().mark_link_deleting(&id).await.unwrap();
    h.run(Key::Link(id.clone())).await;
    assert!(h.store().link_by_id(&id).await.unwrap().is_none());
    let br = h.k.link(&NsRef::Host, "br9").unwrap();
    assert_eq!(br.alias, None, "the foreign bridge is still there");
}

/// A master that is not a bridge is a spec problem: Failed at once.
#[tokio::test]
async fn master_that_is_not_a_bridge_fails_permanently() {
    let h = H::new().await;
    h.namespace("ns1").await;
    h.link(&veth("vx1", "vx2", "ns1")).await;
    let mut spec = veth_ends(end("vh1", ""), end("vi1", "ns1"));
    spec.end.master = Some("vx1".into());
    let id = h.link(&spec).await;
    let s = h.link_status(&id).await;
    assert_eq!(s.phase, Phase::Failed);
    assert!(s.message.contains("is not a bridge"), "{}", s.message);
}

/// A port whose master bridge does not exist yet is Pending (a bridge may come) and creates
/// nothing; once the bridge exists the next attempt makes the veth and enslaves it. Guards a
/// fixed bug: the veth used to be created before the master lookup failed, left unmarked,
/// and then refused by the retry as not weft's.
#[tokio::test]
async fn port_of_a_missing_bridge_waits_pending_and_converges_once_it_exists() {
    let h = H::new().await;
    h.namespace("ns1").await;
    let mut spec = veth("vh1", "vi1", "ns1");
    spec.end.master = Some("br9".into());
    let id = h.link(&spec).await;
    let s = h.link_status(&id).await;
    assert_eq!(s.phase, Phase::Pending, "transient: a bridge may come");
    assert!(
        s.message.contains("master bridge \"br9\" not found"),
        "{}",
        s.message
    );
    h.link(&bridge("br9")).await;
    h.run(Key::Link(id.clone())).await;
    let s = h.link_status(&id).await;
    assert_eq!(s.phase, Phase::Ready, "{}", s.message);
    let br = h.k.link(&NsRef::Host, "br9").unwrap().index;
    assert_eq!(h.k.link(&NsRef::Host, "vh1").unwrap().master, Some(br));
}

/// A link reconciled before its namespace waits as Pending, then converges.
#[tokio::test]
async fn link_queued_before_its_namespace_is_pending_not_failed() {
    let h = H::new().await;
    let ns = h.namespace_row("ns1").await;
    let id = h.link(&veth("vh1", "vi1", "ns1")).await;
    let s = h.link_status(&id).await;
    assert_eq!(s.phase, Phase::Pending);
    assert_eq!(s.observed_generation, 0);
    assert!(s.message.contains("not ready yet"), "{}", s.message);
    h.run(Key::Namespace(ns.id)).await;
    h.run(Key::Link(id.clone())).await;
    assert_eq!(h.link_status(&id).await.phase, Phase::Ready);
}

/// A missing master bridge is transient, and the status names it.
#[tokio::test]
async fn port_of_a_missing_bridge_is_pending_with_a_message_naming_the_bridge() {
    let h = H::new().await;
    h.namespace("ns1").await;
    let mut spec = veth("vh1", "vi1", "ns1");
    spec.end.master = Some("br9".into());
    let id = h.link(&spec).await;
    let s = h.link_status(&id).await;
    assert_eq!((s.phase, s.observed_generation), (Phase::Pending, 0));
    assert!(
        s.message
            .contains("master bridge \"br9\" not found in the host namespace"),
        "{}",
        s.message
    );
    assert_eq!(h.failures(), 1);
}
