//! A restart over a converged host: every key reconciles with zero kernel writes, objects read
//! Pending ("re-checking") until the batch confirmation turns them Ready; drift found at the
//! restart is repaired and counted.

use tokio::task::JoinSet;

use super::{H, rich_veth, tcp};
use crate::{kernel::NsRef, model::Phase, reconcile::Key};

/// A host with one of everything, converged; returns the keys of its objects.
async fn converged_host(h: &H) -> Vec<Key> {
    let net = h.network("web", "br-web", &["10.88.0.0/24"]).await;
    let ns = h.namespace("ns1").await;
    let link = h.link(&rich_veth()).await;
    let ep = h.connect("web", "ns1", vec![tcp(8080, 80)]).await;
    h.run(Key::Firewall).await;
    assert_eq!(h.link_status(&link).await.phase, Phase::Ready);
    assert_eq!(h.ep_status(&ep.id).await.phase, Phase::Ready);
    vec![
        Key::Network(net),
        Key::Firewall,
        Key::Namespace(ns),
        Key::Link(link),
        Key::Endpoint(ep.id),
        Key::Gc,
    ]
}

/// Runs the re-check flusher until shutdown (it flushes once more on the way out).
async fn flush(h: &H) {
    let mut set = JoinSet::new();
    h.ctl.spawn_recheck_flusher(&mut set);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    h.ctl.shutdown();
    while set.join_next().await.is_some() {}
}

/// A restart on a converged host makes zero kernel changes; statuses turn Ready through the batch
/// flusher.
#[tokio::test]
async fn converged_restart_makes_zero_writes_and_confirms_ready_in_a_batch() {
    let mut h = H::new().await;
    let keys = converged_host(&h).await;
    h.restart().await;
    let Key::Link(link) = &keys[3] else {
        unreachable!()
    };
    let s = h.link_status(link).await;
    // A real state, not a message: clients see it as Pending with RECHECKING (api/convert).
    assert_eq!(s.phase, Phase::Rechecking);
    for key in &keys {
        assert_eq!(h.run(key.clone()).await, 0, "{key:?}");
    }
    assert_eq!(h.drift(), 0);
    assert_eq!(
        h.link_status(link).await.phase,
        Phase::Rechecking,
        "confirmed by the flusher, not one by one"
    );
    flush(&h).await;
    for key in &keys {
        let status = match key {
            Key::Namespace(id) => h.ns_status(id).await,
            Key::Link(id) => h.link_status(id).await,
            Key::Network(id) => h.net_status(id).await,
            Key::Endpoint(id) => h.ep_status(id).await,
            Key::Firewall | Key::Gc => continue,
        };
        assert_eq!((status.phase, status.message.as_str()), (Phase::Ready, ""));
    }
}

/// Drift found by the first reconcile after a restart is repaired and counted.
#[tokio::test]
async fn drift_found_at_restart_is_repaired_counted_and_confirmed_ready() {
    let mut h = H::new().await;
    let keys = converged_host(&h).await;
    h.k.tamper(&NsRef::Host, "vh1", |l| l.mtu = 1500);
    h.restart().await;
    let Key::Link(link) = &keys[3] else {
        unreachable!()
    };
    assert_eq!(h.run(keys[3].clone()).await, 1);
    assert_eq!(h.k.link(&NsRef::Host, "vh1").unwrap().mtu, 1400);
    assert_eq!(
        h.drift(),
        1,
        "converged before the restart, so a repair is drift"
    );
    flush(&h).await;
    let s = h.link_status(link).await;
    assert_eq!((s.phase, s.message.as_str()), (Phase::Ready, ""));
}
