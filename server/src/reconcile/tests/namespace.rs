//! Namespaces: create, converge, drift (the file or the loopback mark gone), delete, and
//! adopted namespaces.
//!
//! A named namespace is a file under the fake kernel's netns dir (nothing is made on disk);
//! its loopback carries the namespace's mark, which is how the GC tells weft's namespace
//! files from anyone else's. An adopted namespace is a path weft was given and never
//! creates, marks or deletes.
//!
//! Drift here is the file vanishing (`FakeKernel::vanish_namespace`, which takes every
//! interface inside with it, so a veth's host end dies too) or the loopback's flag and mark
//! changed with `tamper`. A re-created namespace queues the links and endpoints that lived
//! in it, since their interfaces are gone; the tests check the queue depth for that.

use super::{H, mark, ns_spec, veth};
use crate::{
    kernel::{NetnsOps, NsRef},
    model::Phase,
    reconcile::Key,
};

/// Records namespace "runtime" adopting `path`, without reconciling it. Whether the path
/// exists is up to the test: `FakeKernel::add_namespace` makes it, as a runtime would.
async fn adopted(h: &H, path: &std::path::Path) -> crate::store::NamespaceRow {
    let mut spec = ns_spec("runtime");
    spec.adopted_path = Some(path.to_path_buf());
    h.store()
        .create_namespace(&spec, None, false)
        .await
        .unwrap()
}

/// A new namespace: the file, loopback up and marked, Ready with its path. At least two
/// writes: the namespace file, then the loopback's flag and mark in one request.
#[tokio::test]
async fn namespace_create_makes_the_file_with_loopback_up_and_marked() {
    let h = H::new().await;
    let row = h.namespace_row("ns1").await;
    assert_eq!(row.status.phase, Phase::Pending);
    let writes = h.run(Key::Namespace(row.id.clone())).await;
    assert!(writes >= 2, "create the file, then mark the loopback");
    let path = h.k.netns_dir().join("ns1");
    assert!(h.k.is_netns(&path));
    let lo = h.k.link(&h.ns("ns1"), "lo").unwrap();
    assert!(lo.up);
    assert_eq!(lo.alias, mark(&row.id));
    let stored = h.store().namespace_by_id(&row.id).await.unwrap().unwrap();
    assert_eq!(stored.status.phase, Phase::Ready);
    assert_eq!(stored.status.observed_generation, stored.generation);
    assert_eq!(stored.status.message, "");
    assert_eq!(stored.status_path, path.display().to_string());
}

/// A converged namespace is observed, not written.
#[tokio::test]
async fn converged_namespace_reconciles_with_zero_writes() {
    let h = H::new().await;
    let id = h.namespace("ns1").await;
    let calls = h.k.calls().len();
    assert_eq!(h.run(Key::Namespace(id.clone())).await, 0);
    assert_eq!(h.k.calls().len(), calls);
    assert_eq!(h.ns_status(&id).await.phase, Phase::Ready);
    assert_eq!(h.drift(), 0);
}

/// A namespace deleted by hand is re-created, counted as drift, and its links queued again.
#[tokio::test]
async fn vanished_namespace_is_recreated_counted_as_drift_and_requeues_its_links() {
    let h = H::new().await;
    let id = h.namespace("ns1").await;
    let link = h.link(&veth("vh1", "vi1", "ns1")).await;
    assert_eq!(h.link_status(&link).await.phase, Phase::Ready);
    let path = h.k.netns_dir().join("ns1");
    h.k.vanish_namespace(&path);
    assert!(h.k.link(&NsRef::Host, "vh1").is_none(), "the peer died too");
    let depth = h.ctl.queue_depth();
    assert!(h.run(Key::Namespace(id.clone())).await > 0);
    assert!(h.k.is_netns(&path));
    assert_eq!(h.k.link(&h.ns("ns1"), "lo").unwrap().alias, mark(&id));
    assert_eq!(h.drift(), 1);
    assert_eq!(h.ns_status(&id).await.phase, Phase::Ready);
    assert_eq!(
        h.ctl.queue_depth(),
        depth + 1,
        "the link that lived in it is queued again"
    );
    // And the link's own reconcile brings the pair back.
    h.run(Key::Link(link.clone())).await;
    assert!(h.k.link(&h.ns("ns1"), "vi1").is_some());
    assert!(h.k.link(&NsRef::Host, "vh1").is_some());
}

/// The loopback's flag and mark are put back in one request.
#[tokio::test]
async fn loopback_mark_and_flag_removed_behind_back_are_restored_as_drift() {
    let h = H::new().await;
    let id = h.namespace("ns1").await;
    h.k.tamper(&h.ns("ns1"), "lo", |l| {
        l.alias = None;
        l.up = false;
    });
    assert_eq!(h.run(Key::Namespace(id.clone())).await, 1, "one set_link");
    let lo = h.k.link(&h.ns("ns1"), "lo").unwrap();
    assert!(lo.up);
    assert_eq!(lo.alias, mark(&id));
    assert_eq!(h.drift(), 1);
}

/// Deleting a namespace unmounts its file, then drops the row.
#[tokio::test]
async fn namespace_delete_removes_the_file_and_the_row() {
    let h = H::new().await;
    let id = h.namespace("ns1").await;
    let row = h
        .store()
        .mark_namespace_deleting("ns1", false)
        .await
        .unwrap();
    assert_eq!(row.status.phase, Phase::Deleting);
    h.run(Key::Namespace(id.clone())).await;
    assert!(!h.k.is_netns(&h.k.netns_dir().join("ns1")));
    assert!(h.store().namespace_by_id(&id).await.unwrap().is_none());
    assert!(
        h.k.calls().iter().any(|c| c == "delete_named_netns ns1"),
        "{:?}",
        h.k.calls()
    );
}

/// An adopted namespace is only checked: no write, not even the loopback mark, so the GC
/// can never take it for one of weft's files; its reported path is the one it was given.
#[tokio::test]
async fn adopted_namespace_is_checked_never_created() {
    let h = H::new().await;
    let path = std::path::PathBuf::from("/proc/4242/ns/net");
    h.k.add_namespace(path.clone());
    let row = adopted(&h, &path).await;
    assert_eq!(h.run(Key::Namespace(row.id.clone())).await, 0);
    let stored = h.store().namespace_by_id(&row.id).await.unwrap().unwrap();
    assert_eq!(stored.status.phase, Phase::Ready);
    assert_eq!(stored.status_path, path.display().to_string());
    assert!(h.k.calls().is_empty(), "{:?}", h.k.calls());
    assert_eq!(
        h.k.link(&NsRef::Path(path.into()), "lo").unwrap().alias,
        None,
        "an adopted namespace's loopback is not marked"
    );
}

/// An adopted namespace that is gone is Failed at once; weft does not re-create it.
#[tokio::test]
async fn adopted_namespace_that_is_gone_fails_at_once_and_is_not_recreated() {
    let h = H::new().await;
    let row = adopted(&h, std::path::Path::new("/proc/4243/ns/net")).await;
    h.run(Key::Namespace(row.id.clone())).await;
    let s = h.ns_status(&row.id).await;
    assert_eq!(
        s.phase,
        Phase::Failed,
        "permanent: Failed on the first attempt"
    );
    assert_eq!(s.observed_generation, row.generation);
    assert!(
        s.message
            .contains("weft does not recreate adopted namespaces"),
        "{}",
        s.message
    );
    assert!(h.k.calls().is_empty());
    assert!(!h.k.is_netns(std::path::Path::new("/proc/4243/ns/net")));
}

/// Deleting an adopted namespace forgets it and leaves the file.
#[tokio::test]
async fn adopted_namespace_delete_forgets_it_and_leaves_the_file() {
    let h = H::new().await;
    let path = std::path::PathBuf::from("/proc/4244/ns/net");
    h.k.add_namespace(path.clone());
    let row = adopted(&h, &path).await;
    h.run(Key::Namespace(row.id.clone())).await;
    h.store()
        .mark_namespace_deleting("runtime", false)
        .await
        .unwrap();
    assert_eq!(h.run(Key::Namespace(row.id.clone())).await, 0);
    assert!(h.store().namespace_by_id(&row.id).await.unwrap().is_none());
    assert!(h.k.is_netns(&path), "weft never deletes what it adopted");
}

/// An adopted namespace whose process exits (issue 10, item 8): the namespace's next
/// reconcile marks it Failed and queues its endpoint; the endpoint's marks it Failed, takes
/// its published port out of the DNAT map, deletes its host end and releases its lease,
/// port and MAC, so a new connect gets the same address and host port at once.
#[tokio::test]
async fn endpoint_of_a_dead_adopted_namespace_is_failed_and_its_lease_and_port_released() {
    let h = H::new().await;
    h.network("web", "br-web", &["10.88.0.0/24"]).await;
    let path = std::path::PathBuf::from("/proc/4245/ns/net");
    h.k.add_namespace(path.clone());
    let row = adopted(&h, &path).await;
    h.run(Key::Namespace(row.id.clone())).await;
    let mut req = super::connect_spec("web", "runtime", vec![super::tcp(8080, 80)]);
    req.ipv4 = Some("10.88.0.5".parse().unwrap());
    let ep = h.store().connect(&req, None, false).await.unwrap();
    h.run(Key::Endpoint(ep.id.clone())).await;
    assert_eq!(h.ep_status(&ep.id).await.phase, Phase::Ready);
    assert_eq!(h.k.mappings().len(), 1);

    h.k.vanish_namespace(&path);
    let depth = h.ctl.queue_depth();
    h.run(Key::Namespace(row.id.clone())).await;
    let s = h.ns_status(&row.id).await;
    assert_eq!(s.phase, Phase::Failed);
    assert!(
        s.message.contains("not a network namespace any more"),
        "{}",
        s.message
    );
    assert!(h.ctl.queue_depth() > depth, "its endpoint is queued");

    h.run(Key::Endpoint(ep.id.clone())).await;
    let s = h.ep_status(&ep.id).await;
    assert_eq!(s.phase, Phase::Failed, "{}", s.message);
    assert!(s.message.contains("were released"), "{}", s.message);
    let stored = h.store().endpoint_by_id(&ep.id).await.unwrap().unwrap();
    assert!(
        stored.addresses.is_empty() && stored.mac.is_none(),
        "{stored:?}"
    );
    assert!(h.k.mappings().is_empty(), "{:?}", h.k.mappings());
    assert!(h.k.link(&NsRef::Host, &ep.host_ifname).is_none());
    // Failed again on the next look, without a write.
    assert_eq!(h.run(Key::Endpoint(ep.id.clone())).await, 0);

    h.namespace("ns2").await;
    let mut req = super::connect_spec("web", "ns2", vec![super::tcp(8080, 80)]);
    req.ipv4 = Some("10.88.0.5".parse().unwrap());
    let again = h.store().connect(&req, None, false).await.unwrap();
    assert_eq!(again.mac, ep.mac, "the same address derives the same MAC");
}

/// The namespace may die between the create of an endpoint's veth and its mark: the host
/// end, still newborn (unmarked, in weft's group), goes with the release too.
#[tokio::test]
async fn a_newborn_host_end_of_a_dead_adopted_namespace_is_removed_too() {
    let h = H::new().await;
    h.network("web", "br-web", &["10.88.0.0/24"]).await;
    let path = std::path::PathBuf::from("/proc/4247/ns/net");
    h.k.add_namespace(path.clone());
    let row = adopted(&h, &path).await;
    h.run(Key::Namespace(row.id.clone())).await;
    let req = super::connect_spec("web", "runtime", vec![]);
    let ep = h.store().connect(&req, None, false).await.unwrap();
    h.run(Key::Endpoint(ep.id.clone())).await;
    // The namespace's file is gone while something else still pins the namespace, so the
    // veth pair lives on; its host end never got its mark.
    h.k.vanish_namespace(&path);
    h.k.add_foreign_link(&NsRef::Host, &ep.host_ifname, "veth");
    h.k.tamper(&NsRef::Host, &ep.host_ifname, |l| {
        l.alias = None;
        l.group = crate::kernel::NEWBORN_GROUP;
    });
    h.run(Key::Namespace(row.id.clone())).await;
    h.run(Key::Endpoint(ep.id.clone())).await;
    assert_eq!(h.ep_status(&ep.id).await.phase, Phase::Failed);
    assert!(
        h.k.link(&NsRef::Host, &ep.host_ifname).is_none(),
        "the newborn host end was left behind"
    );
}

/// A `/proc/<pid>/ns/net` whose pid was reused (while weftd was down, say) names another
/// namespace: weft never follows it there. The namespace is Failed, its endpoint released,
/// and nothing is made in the stranger's namespace.
#[tokio::test]
async fn an_adopted_path_that_names_another_namespace_now_is_not_followed() {
    let h = H::new().await;
    h.network("web", "br-web", &["10.88.0.0/24"]).await;
    let path = std::path::PathBuf::from("/proc/4248/ns/net");
    h.k.add_namespace(path.clone());
    let mut spec = ns_spec("runtime");
    spec.adopted_path = Some(path.clone());
    let identity = h.k.netns_identity(&path).unwrap().to_string();
    let row = h
        .store()
        .create_namespace_as(&spec, Some(identity), None, false)
        .await
        .unwrap();
    h.run(Key::Namespace(row.id.clone())).await;
    assert_eq!(h.ns_status(&row.id).await.phase, Phase::Ready);
    let req = super::connect_spec("web", "runtime", vec![super::tcp(8080, 80)]);
    let ep = h.store().connect(&req, None, false).await.unwrap();
    h.run(Key::Endpoint(ep.id.clone())).await;
    assert_eq!(h.ep_status(&ep.id).await.phase, Phase::Ready);

    // The process exits and another one, in another namespace, gets its pid.
    h.k.vanish_namespace(&path);
    h.k.add_namespace(path.clone());
    assert!(h.k.is_netns(&path));
    h.run(Key::Namespace(row.id.clone())).await;
    let s = h.ns_status(&row.id).await;
    assert_eq!(s.phase, Phase::Failed, "{}", s.message);
    h.run(Key::Endpoint(ep.id.clone())).await;
    let s = h.ep_status(&ep.id).await;
    assert_eq!(s.phase, Phase::Failed, "{}", s.message);
    assert!(s.message.contains("were released"), "{}", s.message);
    assert!(h.k.mappings().is_empty(), "{:?}", h.k.mappings());
    let inside = NsRef::path(&path);
    assert!(
        h.k.link(&inside, "eth0").is_none(),
        "an interface was made in the stranger's namespace"
    );
    // A resync changes nothing: Failed stays Failed.
    h.run(Key::Namespace(row.id.clone())).await;
    h.run(Key::Endpoint(ep.id.clone())).await;
    assert_eq!(h.ep_status(&ep.id).await.phase, Phase::Failed);
    assert!(h.k.link(&inside, "eth0").is_none());
}

/// Two adoptions of one namespace under two names, racing past the service's checks, are
/// told apart in the create's transaction: the second is FAILED_PRECONDITION naming the
/// first. A Failed one (its namespace died; the inode may be reused) does not count.
#[tokio::test]
async fn a_second_adoption_of_one_namespace_is_refused_in_the_transaction() {
    let h = H::new().await;
    let adopt = |name: &str, path: &str| {
        let mut spec = ns_spec(name);
        spec.adopted_path = Some(path.into());
        spec
    };
    let store = h.store();
    let first = store
        .create_namespace_as(
            &adopt("a", "/proc/1/ns/net"),
            Some("4:77".into()),
            None,
            false,
        )
        .await
        .unwrap();
    let err = store
        .create_namespace_as(&adopt("b", "/run/x"), Some("4:77".into()), None, false)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, crate::store::StoreError::FailedPrecondition(m)
            if m.contains("already manages as \"a\"") && m.starts_with("namespace.path: /run/x")),
        "{err:?}"
    );
    assert!(store.namespace_by_name("b").await.unwrap().is_none());
    // Another namespace is fine; so is this one once the first is Failed.
    store
        .create_namespace_as(&adopt("c", "/run/y"), Some("4:78".into()), None, false)
        .await
        .unwrap();
    let failed = crate::model::Status {
        phase: Phase::Failed,
        ..Default::default()
    };
    store
        .set_namespace_status(&first.id, &failed, "")
        .await
        .unwrap();
    store
        .create_namespace_as(&adopt("b", "/run/x"), Some("4:77".into()), None, false)
        .await
        .unwrap();
}

/// The twice-a-second check of adopted namespaces' files leaves a live one alone and queues
/// one whose file vanished (a process's exit makes no netlink event while weft's socket
/// pins its namespace), once.
#[tokio::test]
async fn liveness_check_queues_an_adopted_namespace_whose_file_vanished() {
    let h = H::new().await;
    let path = std::path::PathBuf::from("/proc/4246/ns/net");
    h.k.add_namespace(path.clone());
    let row = adopted(&h, &path).await;
    h.run(Key::Namespace(row.id.clone())).await;
    let mut set = tokio::task::JoinSet::new();
    h.ctl.spawn_liveness(&mut set);
    let wait = crate::reconcile::adopted::LIVENESS_EVERY * 3;
    let depth = h.ctl.queue_depth();
    tokio::time::sleep(wait).await;
    assert_eq!(h.ctl.queue_depth(), depth, "a live namespace is not queued");
    h.k.vanish_namespace(&path);
    tokio::time::sleep(wait).await;
    assert_eq!(
        h.ctl.queue_depth(),
        depth + 1,
        "the dead one is queued once"
    );
    h.run(Key::Namespace(row.id.clone())).await;
    assert_eq!(h.ns_status(&row.id).await.phase, Phase::Failed);
}
