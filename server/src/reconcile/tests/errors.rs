//! Each error kind's retry decision, as the status shows it: a kernel race is transient
//! (Pending for the first attempts, Failed from attempt `FAILED_AFTER_ATTEMPTS` on, retried
//! all along), a request the kernel refuses or an interface weft does not own is permanent
//! (Failed at once, not retried), and a clean attempt afterwards converges.
//!
//! What the status shows, attempt by attempt (attempt = consecutive retried failures of the
//! key + 1, as the queue counts them):
//! - transient (EEXIST, ENODEV, ENOENT, EBUSY, EAGAIN, ENETUNREACH, from any call, the
//!   firewall sync's included; a namespace not ready or gone; a missing master bridge):
//!   Pending with the message and `observed_generation` unchanged on attempts 1 and 2,
//!   Failed at the object's generation from attempt 3 (`FAILED_AFTER_ATTEMPTS`) on;
//! - permanent (EPERM and EACCES: the host must change; EINVAL and EOPNOTSUPP: the request
//!   must; an interface without weft's mark, a master that is not a bridge, an adopted
//!   namespace that is gone): Failed at the object's generation at once, and not retried
//!   until something changes (a spec update, a netlink event, the resync).
//!
//! Transient failures are queued again after the backoff (100 ms, doubling, capped at
//! 30 s); a success resets the count. A permanent failure resets it too, so a later
//! transient failure starts again at Pending. The mapping from error to decision is
//! `error_policy` in reconcile/error.rs, from the [`ErrorKind`] a [`KernelError`] carries;
//! these tests check what it means for the stored status, one `H::run` per attempt.
//!
//! Faults are injected with `FakeKernel::fail(op, target, errno, times)`: the next `times`
//! calls of `op` whose target contains `target` fail, so "fail three times, then work" is
//! one line. The fault is consumed by calls, not by attempts: a step that never reaches
//! `op` leaves it armed.
//!
//! [`ErrorKind`]: crate::kernel::ErrorKind
//! [`KernelError`]: crate::kernel::KernelError

use nix::errno::Errno;

use super::{H, rich_veth, veth};
use crate::{
    kernel::{FirewallOps, NsRef},
    model::{LinkKind, Phase, RouteSpec},
    reconcile::{Key, driver::FAILED_AFTER_ATTEMPTS},
};

/// Records `rich_veth` without reconciling it; returns its id. The veth makes every kind of
/// kernel call (create, set, address, route), so any of them can be the one that fails.
async fn stored_link(h: &H) -> String {
    h.store()
        .create_link(&rich_veth(), None, false)
        .await
        .unwrap()
        .id
}

/// Runs `attempts` steps of link `id` back to back and returns the phase stored after each,
/// so a test states the whole Pending/Failed/Ready sequence as one vector.
async fn phases(h: &H, id: &str, attempts: u32) -> Vec<Phase> {
    let mut out = Vec::new();
    for _ in 0..attempts {
        h.run(Key::Link(id.to_string())).await;
        out.push(h.link_status(id).await.phase);
    }
    out
}

/// EEXIST from create: Pending, Pending, then Failed at the object's generation; then Ready.
/// The status message carries the failed call and its target, so a user sees what failed.
#[tokio::test]
async fn eexist_on_create_is_pending_twice_then_failed_then_converges() {
    assert_eq!(FAILED_AFTER_ATTEMPTS, 3, "the tests below count on it");
    let h = H::new().await;
    h.namespace("ns1").await;
    h.k.fail("create_veth", Some("vh1"), Errno::EEXIST, 3);
    let id = stored_link(&h).await;
    h.run(Key::Link(id.clone())).await;
    let s = h.link_status(&id).await;
    assert_eq!((s.phase, s.observed_generation), (Phase::Pending, 0));
    assert!(
        s.message.contains("create_veth vh1 (injected)"),
        "{}",
        s.message
    );
    h.run(Key::Link(id.clone())).await;
    assert_eq!(h.link_status(&id).await.phase, Phase::Pending);
    h.run(Key::Link(id.clone())).await;
    let s = h.link_status(&id).await;
    assert_eq!((s.phase, s.observed_generation), (Phase::Failed, 1));
    assert_eq!(h.failures(), 3);
    h.run(Key::Link(id.clone())).await;
    let s = h.link_status(&id).await;
    assert_eq!((s.phase, s.message.as_str()), (Phase::Ready, ""));
    assert!(h.k.link(&h.ns("ns1"), "vi1").is_some());
}

/// ENODEV while repairing a Ready link: Pending keeping the old generation, then Failed, then
/// Ready.
#[tokio::test]
async fn enodev_while_repairing_drift_reads_pending_then_failed_then_repairs() {
    let h = H::new().await;
    h.namespace("ns1").await;
    let id = h.link(&rich_veth()).await;
    h.k.tamper(&NsRef::Host, "vh1", |l| l.mtu = 1500);
    h.k.fail("set_link", None, Errno::ENODEV, 3);
    h.run(Key::Link(id.clone())).await;
    let s = h.link_status(&id).await;
    assert_eq!(s.phase, Phase::Pending);
    assert_eq!(
        s.observed_generation, 1,
        "the last converged generation stays"
    );
    assert!(s.message.contains("set_link"), "{}", s.message);
    assert_eq!(
        phases(&h, &id, 3).await,
        vec![Phase::Pending, Phase::Failed, Phase::Ready]
    );
    assert_eq!(h.k.link(&NsRef::Host, "vh1").unwrap().mtu, 1400);
}

/// EBUSY is transient: two failed attempts stay Pending and the third converges. The fault
/// targets the address, so the create and the marks succeed and only the address is retried.
#[tokio::test]
async fn ebusy_on_add_address_is_transient_and_retried_to_ready() {
    let h = H::new().await;
    h.namespace("ns1").await;
    h.k.fail("add_address", Some("10.9.0.2"), Errno::EBUSY, 2);
    let id = stored_link(&h).await;
    assert_eq!(
        phases(&h, &id, 3).await,
        vec![Phase::Pending, Phase::Pending, Phase::Ready]
    );
    assert_eq!(
        h.k.link(&h.ns("ns1"), "vi1").unwrap().addresses,
        vec![super::net("10.9.0.2/24")]
    );
}

/// EPERM means the host must change: the error policy does not retry it, so the object reads
/// Failed at the first attempt (the status never claims Ready), and converges once a later
/// attempt (a change, the resync) finds the permission back.
#[tokio::test]
async fn eperm_fails_at_once_then_converges_when_permitted() {
    let h = H::new().await;
    h.namespace("ns1").await;
    h.k.fail("add_address", None, Errno::EPERM, 4);
    let id = stored_link(&h).await;
    assert_eq!(
        phases(&h, &id, 5).await,
        vec![
            Phase::Failed,
            Phase::Failed,
            Phase::Failed,
            Phase::Failed,
            Phase::Ready
        ]
    );
    assert_eq!(h.failures(), 4);
}

/// EINVAL on a spec change: the request itself is wrong, so the first attempt reports Failed at
/// the new generation (no retry hides it as Pending); a later clean attempt converges.
#[tokio::test]
async fn einval_on_a_spec_change_fails_at_the_new_generation_at_once() {
    let h = H::new().await;
    h.namespace("ns1").await;
    let id = h.link(&rich_veth()).await;
    let mut spec = rich_veth();
    spec.end.mtu = 9000;
    h.update_link(&id, &spec).await;
    h.k.fail("set_link", None, Errno::EINVAL, 1);
    h.run(Key::Link(id.clone())).await;
    let s = h.link_status(&id).await;
    assert_eq!((s.phase, s.observed_generation), (Phase::Failed, 2));
    assert!(s.message.contains("Invalid argument"), "{}", s.message);
    h.run(Key::Link(id.clone())).await;
    let s = h.link_status(&id).await;
    assert_eq!((s.phase, s.observed_generation), (Phase::Ready, 2));
    assert_eq!(h.k.link(&NsRef::Host, "vh1").unwrap().mtu, 9000);
}

/// One success resets the count: a later single failure reads Pending, not Failed, so an
/// object that converged once does not flap to Failed on its next short race.
#[tokio::test]
async fn a_success_resets_the_attempt_count() {
    let h = H::new().await;
    h.namespace("ns1").await;
    h.k.fail("add_address", None, Errno::EAGAIN, 2);
    let id = stored_link(&h).await;
    assert_eq!(
        phases(&h, &id, 3).await,
        vec![Phase::Pending, Phase::Pending, Phase::Ready]
    );
    // A new failure starts counting from one again: Pending, not Failed.
    h.k.tamper(&h.ns("ns1"), "vi1", |l| l.addresses.clear());
    h.k.fail("add_address", None, Errno::EAGAIN, 1);
    assert_eq!(phases(&h, &id, 2).await, vec![Phase::Pending, Phase::Ready]);
}

/// A link whose namespace vanished waits, then reads Failed, and recovers once the namespace is
/// back.
#[tokio::test]
async fn namespace_gone_under_a_link_is_pending_then_failed_and_recovers() {
    let h = H::new().await;
    let ns = h.namespace("ns1").await;
    let id = h.link(&veth("vh1", "vi1", "ns1")).await;
    h.k.vanish_namespace(&h.ns_path("ns1"));
    let got = phases(&h, &id, 3).await;
    assert_eq!(got, vec![Phase::Pending, Phase::Pending, Phase::Failed]);
    assert!(
        h.link_status(&id).await.message.contains("not ready yet"),
        "{}",
        h.link_status(&id).await.message
    );
    h.run(Key::Namespace(ns)).await;
    assert_eq!(phases(&h, &id, 1).await, vec![Phase::Ready]);
    assert!(h.k.link(&h.ns("ns1"), "vi1").is_some());
}

/// ENETUNREACH names the route in the status; a corrected spec converges at the new generation.
#[tokio::test]
async fn unreachable_gateway_is_pending_with_the_route_named_and_a_spec_fix_converges() {
    let h = H::new().await;
    h.namespace("ns1").await;
    let mut spec = rich_veth();
    if let LinkKind::Veth { peer } = &mut spec.kind {
        peer.routes = vec![RouteSpec {
            destination: super::net("10.10.0.0/16"),
            gateway: Some(super::ip("192.0.2.1")),
            metric: 0,
        }];
    }
    let id = h.link(&spec).await;
    let s = h.link_status(&id).await;
    assert_eq!(s.phase, Phase::Pending);
    assert!(
        s.message
            .contains("route 10.10.0.0/16 via 192.0.2.1 on \"vi1\""),
        "{}",
        s.message
    );
    h.update_link(&id, &rich_veth()).await;
    h.run(Key::Link(id.clone())).await;
    let s = h.link_status(&id).await;
    assert_eq!((s.phase, s.observed_generation), (Phase::Ready, 2));
}

/// Only transient failures come back after the backoff; a permanent one waits for a change.
///
/// The retry is a delayed add to the queue; with no workers running, the queue depth after
/// the first backoff (100 ms; the test waits 300 ms) shows which keys came back.
#[tokio::test]
async fn permanent_failure_is_not_retried_and_transient_one_is() {
    let h = H::new().await;
    h.namespace("ns1").await;
    h.k.add_foreign_link(&NsRef::Host, "eth9", "veth");
    let foreign = h.link(&veth("eth9", "vi9", "ns1")).await;
    assert_eq!(h.link_status(&foreign).await.phase, Phase::Failed);
    h.k.fail("create_veth", None, Errno::EBUSY, 1);
    let busy = h.link(&veth("vh1", "vi1", "ns1")).await;
    assert_eq!(h.link_status(&busy).await.phase, Phase::Pending);
    // The backoff starts at 100 ms: then only the transient one is back in the queue.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(h.ctl.queue_depth(), 1);
}

/// A firewall error fails the network's attempt (and the firewall key's) until a clean attempt.
#[tokio::test]
async fn firewall_error_fails_the_network_attempt_and_the_next_one_writes_the_rules() {
    let h = H::new().await;
    h.k.fail("sync_firewall", None, Errno::EAGAIN, 1);
    let id = h
        .network_row(&super::net_spec("web", "br-web", &["10.88.0.0/24"]))
        .await
        .id;
    h.run(Key::Network(id.clone())).await;
    let s = h.net_status(&id).await;
    assert_eq!(s.phase, Phase::Pending);
    assert!(s.message.contains("sync_firewall"), "{}", s.message);
    assert!(h.k.firewall().is_none());
    h.run(Key::Network(id.clone())).await;
    assert_eq!(h.net_status(&id).await.phase, Phase::Ready);
    assert_eq!(h.k.firewall().unwrap()[0].bridge, "br-web");
    // The firewall key meets the same error kinds and retries the same way.
    h.k.delete_firewall().await.unwrap();
    h.k.fail("sync_firewall", None, Errno::EBUSY, 1);
    let failed = h.failures();
    h.run(Key::Firewall).await;
    assert_eq!(h.failures(), failed + 1);
    assert!(h.k.firewall().is_none());
    h.run(Key::Firewall).await;
    assert!(h.k.firewall().is_some());
}

/// The new veth is made, then marking it fails once: the retry must take the pair as its own
/// (issue 10 item 5 create-then-mark window: the pair is born in the newborn group, which
/// says weft made it; see newborn.rs).
#[tokio::test]
async fn failure_right_after_create_is_retried_to_ready() {
    let h = H::new().await;
    h.namespace("ns1").await;
    h.k.fail("set_link", None, Errno::EBUSY, 1);
    let id = h.link(&veth("vh1", "vi1", "ns1")).await;
    assert_eq!(h.link_status(&id).await.phase, Phase::Pending);
    h.run(Key::Link(id.clone())).await;
    let s = h.link_status(&id).await;
    assert_eq!(s.phase, Phase::Ready, "{}", s.message);
}
