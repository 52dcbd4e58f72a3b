//! A restart over a converged host: every key reconciles with zero kernel writes, objects read
//! Pending ("re-checking") until the batch confirmation turns them Ready; drift found at the
//! restart is repaired and counted.
//!
//! A restart is [`H::restart`]: a new controller over the same store and fake kernel, after
//! `Store::mark_unverified` turned every Ready object to Rechecking, as start-up does. The
//! kernel keeps everything the first controller made, so the test asserts what the
//! architecture promises: "a restart on an already-converged host must make zero kernel
//! changes". Rechecking is a phase of its own in the model (the API shows it as Pending with
//! the RECHECKING message); a reconcile that finds the kernel as it was does not write the
//! status itself but hands the key to the re-check flusher, which confirms a batch at once,
//! so 10,000 objects cost a few transactions, not 10,000.

use tokio::task::JoinSet;

use super::{H, rich_veth, tcp};
use crate::{kernel::NsRef, model::Phase, reconcile::Key};

/// Where [`converged_host`] puts the link's key: the one object whose drift tests tamper with.
const LINK: usize = 3;

/// A host with one of everything, converged; returns the keys of its objects.
///
/// A network with its bridge, a namespace, the rich veth into it, an endpoint publishing
/// 8080 -> 80 and one firewall run: one key of every kind, the GC's included. The keys come
/// in an order start-up would use (the bridge first, a namespace before what lives in it),
/// the link's at index [`LINK`].
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

/// Runs the re-check flusher until shutdown (it flushes once more on the way out), so every
/// key a step handed to it is confirmed when this returns. The short sleep only lets the
/// task start; the flush on shutdown does not depend on it.
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
    let Key::Link(link) = &keys[LINK] else {
        unreachable!()
    };
    let s = h.link_status(link).await;
    // A real state, not a message: clients see it as Pending with RECHECKING (api/convert).
    assert_eq!(s.phase, Phase::Rechecking);
    // GetSystemInfo's `rechecking`: every object, until the flusher confirms them.
    let objects = keys
        .iter()
        .filter(|k| !matches!(k, Key::Firewall | Key::Gc))
        .count() as u64;
    assert!(objects >= 4, "{keys:?}");
    assert_eq!(h.store().count_rechecking().await.unwrap(), objects);
    for key in &keys {
        assert_eq!(h.run(key.clone()).await, 0, "{key:?}");
    }
    assert_eq!(h.drift(), 0);
    assert_eq!(
        h.link_status(link).await.phase,
        Phase::Rechecking,
        "confirmed by the flusher, not one by one"
    );
    assert_eq!(h.store().count_rechecking().await.unwrap(), objects);
    flush(&h).await;
    assert_eq!(h.store().count_rechecking().await.unwrap(), 0);
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
    let waiting = h.store().count_rechecking().await.unwrap();
    let Key::Link(link) = &keys[LINK] else {
        unreachable!()
    };
    assert_eq!(h.run(keys[LINK].clone()).await, 1);
    assert_eq!(h.k.link(&NsRef::Host, "vh1").unwrap().mtu, 1400);
    assert_eq!(
        h.drift(),
        1,
        "converged before the restart, so a repair is drift"
    );
    flush(&h).await;
    let s = h.link_status(link).await;
    assert_eq!((s.phase, s.message.as_str()), (Phase::Ready, ""));
    // The repaired link left the count (its reconcile wrote its status); the objects not
    // reconciled here are still waiting.
    assert_eq!(h.store().count_rechecking().await.unwrap(), waiting - 1);
}
