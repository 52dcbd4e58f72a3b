//! Garbage collection: marked interfaces and namespace files that no object owns go; what
//! a live object owns stays; anything without weft's mark is never touched.
//!
//! Orphans are made the way a crash or a restored database leaves them: interfaces or
//! namespace files carrying `weft:<uid>` for a uid no row has. The mark is the only thing
//! that counts, never a name: `wv...` interfaces without the mark stay.
//!
//! The GC is a key like any other (`Key::Gc`), so one `H::run(Key::Gc)` is one pass: it lists
//! the interfaces of the host and of every recorded namespace and the files of the netns
//! dir, and removes those whose mark names no row. The write count it returns, and
//! `H::orphans`, are what the tests assert; a pass that finds nothing writes nothing. A
//! retired veth (a disconnect's, still waiting for the reaper) has no row either, and must
//! be left to the reaper.

use super::{H, rich_veth};
use crate::{
    kernel::{LinkOps, NetnsOps, NsRef},
    model::Phase,
    reconcile::Key,
};

/// The mark of a uid no object has: what a crash between deleting a row and deleting its
/// interface, or a database restored from an older backup, leaves behind.
const GHOST: &str = "weft:00000000deadbeef";

/// A marked interface whose object is gone is an orphan: removed and counted.
#[tokio::test]
async fn gc_removes_a_marked_interface_no_object_owns_and_counts_it() {
    let h = H::new().await;
    h.k.add_foreign_link(&NsRef::Host, "wv00000000dead", "veth");
    h.k.tamper(&NsRef::Host, "wv00000000dead", |l| {
        l.alias = Some(GHOST.into())
    });
    assert_eq!(h.run(Key::Gc).await, 1);
    assert!(h.k.link(&NsRef::Host, "wv00000000dead").is_none());
    assert_eq!(h.orphans(), 1);
}

/// Names that look like weft's and aliases that nearly match are not weft's mark.
#[tokio::test]
async fn gc_never_touches_an_unmarked_interface_whatever_its_name() {
    let h = H::new().await;
    h.k.add_foreign_link(&NsRef::Host, "wv0123456789ab", "veth");
    h.k.add_foreign_link(&NsRef::Host, "eth0", "veth");
    h.k.add_foreign_link(&NsRef::Host, "tagged", "dummy");
    h.k.tamper(&NsRef::Host, "tagged", |l| l.alias = Some("weftish".into()));
    assert_eq!(h.run(Key::Gc).await, 0);
    for name in ["wv0123456789ab", "eth0", "tagged"] {
        assert!(h.k.link(&NsRef::Host, name).is_some(), "{name}");
    }
    assert_eq!(h.orphans(), 0);
}

/// On a converged host the GC finds nothing to remove and writes nothing.
#[tokio::test]
async fn gc_keeps_everything_live_objects_own_with_zero_writes() {
    let h = H::new().await;
    h.network("web", "br-web", &["10.88.0.0/24"]).await;
    h.namespace("ns1").await;
    h.namespace("ns2").await;
    h.connect("web", "ns1", Vec::new()).await;
    let mut spec = rich_veth();
    if let crate::model::LinkKind::Veth { peer } = &mut spec.kind {
        peer.namespace = "ns2".into();
    }
    let link = h.link(&spec).await;
    assert_eq!(h.link_status(&link).await.phase, Phase::Ready);
    let host = h.k.links(&NsRef::Host).len();
    assert_eq!(h.run(Key::Gc).await, 0);
    assert_eq!(h.k.links(&NsRef::Host).len(), host);
    assert!(h.k.is_netns(&h.ns_path("ns1")) && h.k.is_netns(&h.ns_path("ns2")));
    assert_eq!(h.orphans(), 0);
}

/// Both ends of an orphaned pair go, counted as one orphan; the loopback stays.
#[tokio::test]
async fn gc_removes_an_orphaned_veth_pair_in_a_namespace_as_one_orphan() {
    let h = H::new().await;
    h.namespace("ns1").await;
    let ns = h.ns("ns1");
    h.k.create_veth(&NsRef::Host, "left", &ns, "right")
        .await
        .unwrap();
    h.k.tamper(&NsRef::Host, "left", |l| l.alias = Some(GHOST.into()));
    h.k.tamper(&ns, "right", |l| l.alias = Some(GHOST.into()));
    h.run(Key::Gc).await;
    assert!(h.k.link(&NsRef::Host, "left").is_none());
    assert!(h.k.link(&ns, "right").is_none());
    assert!(
        h.k.link(&ns, "lo").is_some(),
        "the namespace's loopback stays"
    );
    assert_eq!(h.orphans(), 1, "a pair is one orphan");
}

/// A namespace file whose loopback carries a dead object's mark is removed.
#[tokio::test]
async fn gc_removes_a_namespace_file_weft_marked_for_an_object_that_is_gone() {
    let h = H::new().await;
    h.k.create_named_netns("ghost").await.unwrap();
    h.k.tamper(&h.ns("ghost"), "lo", |l| l.alias = Some(GHOST.into()));
    let kept = h.namespace("kept").await;
    h.run(Key::Gc).await;
    assert!(!h.k.is_netns(&h.ns_path("ghost")));
    assert!(h.k.is_netns(&h.ns_path("kept")));
    assert_eq!(h.ns_status(&kept).await.phase, Phase::Ready);
    assert_eq!(h.orphans(), 1);
}

/// The netns directory is shared: a namespace file another weftd marked (`weft:<uid>@<its
/// owner>`) is never this one's orphan, while one this weftd marked for a dead object is;
/// and the namespaces this weftd makes carry its owner.
#[tokio::test]
async fn gc_leaves_another_weftds_namespace_file_alone() {
    let h = H::new().await;
    h.ctl.set_owner("64768-4026531840".into());
    let kept = h.namespace("kept").await;
    let mark = h.k.link(&h.ns("kept"), "lo").and_then(|l| l.alias);
    assert_eq!(
        mark,
        Some(format!("weft:{kept}@64768-4026531840")),
        "the namespace's mark names its owner"
    );
    h.k.create_named_netns("theirs").await.unwrap();
    h.k.tamper(&h.ns("theirs"), "lo", |l| {
        l.alias = Some(format!("{GHOST}@64768-4026532999"))
    });
    h.k.create_named_netns("mine").await.unwrap();
    h.k.tamper(&h.ns("mine"), "lo", |l| {
        l.alias = Some(format!("{GHOST}@64768-4026531840"))
    });
    h.run(Key::Gc).await;
    assert!(
        h.k.is_netns(&h.ns_path("theirs")),
        "another weftd's namespace was removed"
    );
    assert!(
        !h.k.is_netns(&h.ns_path("mine")),
        "this weftd's orphan stayed"
    );
    assert!(h.k.is_netns(&h.ns_path("kept")));
    assert_eq!(h.orphans(), 1);
}

/// A namespace file in the netns dir that weft never marked is not weft's.
#[tokio::test]
async fn gc_leaves_an_unmarked_namespace_file_alone() {
    let h = H::new().await;
    h.k.create_named_netns("someone-elses").await.unwrap();
    assert_eq!(h.run(Key::Gc).await, 0);
    assert!(h.k.is_netns(&h.ns_path("someone-elses")));
}

/// A retired veth has no row any more but is the reaper's, not an orphan: the GC skips a
/// mark whose uid the reaper still holds.
#[tokio::test]
async fn gc_leaves_a_retired_veth_to_the_reaper() {
    let h = H::new().await;
    h.network("web", "br-web", &["10.88.0.0/24"]).await;
    h.namespace("ns1").await;
    let ep = h.connect("web", "ns1", Vec::new()).await;
    h.store().mark_endpoint_deleting(&ep.id).await.unwrap();
    h.run(Key::Endpoint(ep.id.clone())).await;
    assert!(h.store().endpoint_by_id(&ep.id).await.unwrap().is_none());
    assert_eq!(h.ctl.retired_pending(), 1);
    // Marked, its endpoint gone, but the reaper holds it: not an orphan.
    assert_eq!(h.run(Key::Gc).await, 0);
    assert!(h.k.link(&NsRef::Host, &ep.host_ifname).is_some());
    assert_eq!(h.orphans(), 0);
}

/// A kernel error stops the GC before it removes anything; the next run does it. The GC
/// reads everything before it deletes, so a failed read can never delete on half a view.
#[tokio::test]
async fn gc_error_is_a_failed_reconcile_that_removes_nothing() {
    let h = H::new().await;
    h.k.add_foreign_link(&NsRef::Host, "orphan0", "veth");
    h.k.tamper(&NsRef::Host, "orphan0", |l| l.alias = Some(GHOST.into()));
    h.k.fail("list_links", None, nix::errno::Errno::EPERM, 1);
    assert_eq!(h.run(Key::Gc).await, 0);
    assert_eq!(h.failures(), 1);
    assert!(h.k.link(&NsRef::Host, "orphan0").is_some());
    h.run(Key::Gc).await;
    assert!(h.k.link(&NsRef::Host, "orphan0").is_none());
}

/// The bulk check hands the GC the rows it listed *before* its kernel read. An object made
/// between that list and the read is not in them; its interfaces must survive (the GC reads
/// the store again for anything those rows do not explain).
#[tokio::test]
async fn gc_on_rows_listed_before_an_object_was_made_keeps_that_object() {
    let h = H::new().await;
    h.namespace("ns1").await;
    let before = Rows::now(&h).await;
    let mut spec = rich_veth();
    if let crate::model::LinkKind::Veth { peer } = &mut spec.kind {
        peer.namespace = "ns1".into();
    }
    let link = h.link(&spec).await;
    assert_eq!(h.link_status(&link).await.phase, Phase::Ready);
    let host = h.k.links(&NsRef::Host).len();
    let inside = h.k.links(&h.ns("ns1")).len();
    let lists = h.gc_store_lists();
    gc_on_a_read_after(&h, before).await;
    assert_eq!(h.k.links(&NsRef::Host).len(), host);
    assert_eq!(h.k.links(&h.ns("ns1")).len(), inside);
    assert_eq!(h.orphans(), 0);
    assert_eq!(h.gc_store_lists(), lists, "the new uid was looked up by id");
}

/// A Connect racing the resync: its row was written after the check listed, and its veth is
/// still newborn (made, not yet marked) when the kernel is read. The GC looks its two names
/// up in the store (not the whole store again) and keeps both ends.
#[tokio::test]
async fn gc_on_rows_listed_before_a_connect_looks_its_newborn_veth_up_by_name() {
    let h = H::new().await;
    h.network("web", "br-web", &["10.88.0.0/24"]).await;
    h.namespace("ns1").await;
    let before = Rows::now(&h).await;
    let row = h.connect_row("web", "ns1", Vec::new()).await;
    h.k.create_veth(
        &NsRef::Host,
        &row.host_ifname,
        &h.ns("ns1"),
        &row.spec.ifname,
    )
    .await
    .unwrap();
    let lists = h.gc_store_lists();
    gc_on_a_read_after(&h, before).await;
    assert!(
        h.k.link(&NsRef::Host, &row.host_ifname)
            .unwrap()
            .is_newborn()
    );
    assert!(h.k.link(&h.ns("ns1"), &row.spec.ifname).is_some());
    assert_eq!(h.orphans(), 0);
    assert_eq!(h.gc_store_lists(), lists, "two names looked up, no listing");
}

/// A Connect and its Disconnect both inside one pass: the read saw the marked veth, and by
/// the GC the row and the veth are gone. Nothing is left to collect, and the GC finds that
/// by asking the kernel for the interface, not by listing the store again.
#[tokio::test]
async fn gc_on_rows_listed_before_an_object_made_and_removed_during_the_pass_lists_nothing() {
    let h = H::new().await;
    let (before, view) = connected_and_removed_after_the_read(&h).await;
    let lists = h.gc_store_lists();
    gc_on(&h, &view, before).await;
    assert_eq!(h.orphans(), 0);
    assert_eq!(
        h.gc_store_lists(),
        lists,
        "the interface was looked up, not the store"
    );
}

/// The namespace of an unexplained interface deleted between the read and the GC (a
/// Disconnect and a DeleteNamespace inside one pass): the GC does not fail the pass.
#[tokio::test]
async fn gc_on_rows_listed_before_survives_a_namespace_deleted_since_the_read() {
    let h = H::new().await;
    let (before, view) = connected_and_removed_after_the_read(&h).await;
    h.k.delete_named_netns("ns1").await.unwrap();
    gc_on(&h, &view, before).await;
    assert_eq!(h.orphans(), 0);
}

/// Rows listed, then an endpoint connected in ns1, the kernel read, then the endpoint's veth
/// and row removed: a Connect and its Disconnect inside one pass. The rows and the read.
async fn connected_and_removed_after_the_read(h: &H) -> (Rows, crate::reconcile::check::View) {
    h.network("web", "br-web", &["10.88.0.0/24"]).await;
    h.namespace("ns1").await;
    let before = Rows::now(h).await;
    let ep = h.connect("web", "ns1", Vec::new()).await;
    let view = read_now(h).await;
    let host = h.k.link(&NsRef::Host, &ep.host_ifname).unwrap();
    h.k.delete_link(&NsRef::Host, host.index).await.unwrap();
    h.store().mark_endpoint_deleting(&ep.id).await.unwrap();
    assert!(h.store().delete_endpoint_row(&ep.id).await.unwrap());
    (before, view)
}

/// A namespace created while the pass ran (after its rows were listed): its marked file is
/// looked up by uid and kept, without listing the store.
#[tokio::test]
async fn gc_on_rows_listed_before_a_namespace_was_made_keeps_it_without_listing() {
    let h = H::new().await;
    h.namespace("ns1").await;
    let before = Rows::now(&h).await;
    let id = h.namespace("ns2").await;
    let lists = h.gc_store_lists();
    let forgotten = h.k.forgotten().len();
    gc_on_a_read_after(&h, before).await;
    assert!(h.k.is_netns(&h.ns_path("ns2")));
    assert_eq!(h.ns_status(&id).await.phase, Phase::Ready);
    assert_eq!(h.orphans(), 0);
    assert_eq!(h.gc_store_lists(), lists, "its uid was looked up");
    // Its socket stays cached for the Connect that usually follows a create.
    let by_gc = &h.k.forgotten()[forgotten..];
    assert!(!by_gc.contains(&h.ns("ns2")), "{by_gc:?}");
}

/// A namespace file read as an orphan that names another namespace by the time the GC acts
/// (deleted and made again under the same name, now owned by a row) is left alone.
#[tokio::test]
async fn gc_leaves_a_namespace_file_made_again_since_the_read() {
    let h = H::new().await;
    h.k.create_named_netns("x").await.unwrap();
    h.k.tamper(&h.ns("x"), "lo", |l| l.alias = Some(GHOST.into()));
    let view = read_now(&h).await;
    h.k.delete_named_netns("x").await.unwrap();
    let id = h.namespace("x").await;
    h.ctl.collect_garbage_in(&view, None).await.unwrap();
    assert!(h.k.is_netns(&h.ns_path("x")));
    assert_eq!(h.ns_status(&id).await.phase, Phase::Ready);
    assert_eq!(h.orphans(), 0);
}

/// The lookup by name does not keep what nobody plans: a newborn pair made after the rows
/// were listed, whose names no object plans, is still removed (after a full listing).
#[tokio::test]
async fn gc_on_rows_listed_before_the_read_removes_a_newborn_pair_nobody_plans() {
    let h = H::new().await;
    h.namespace("ns1").await;
    let before = Rows::now(&h).await;
    h.k.create_veth(&NsRef::Host, "lost0", &h.ns("ns1"), "lost1")
        .await
        .unwrap();
    let lists = h.gc_store_lists();
    gc_on_a_read_after(&h, before).await;
    assert!(h.k.link(&NsRef::Host, "lost0").is_none());
    assert!(h.k.link(&h.ns("ns1"), "lost1").is_none());
    assert_eq!(h.orphans(), 1);
    assert_eq!(h.gc_store_lists(), lists + 1);
}

/// Rows listed before the read do not hide a true orphan: a marked interface no row owns
/// goes, as on the GC's own pass.
#[tokio::test]
async fn gc_on_rows_listed_before_the_read_still_removes_an_orphan() {
    let h = H::new().await;
    h.network("web", "br-web", &["10.88.0.0/24"]).await;
    h.namespace("ns1").await;
    h.connect("web", "ns1", Vec::new()).await;
    h.k.add_foreign_link(&NsRef::Host, "wv00000000dead", "veth");
    h.k.tamper(&NsRef::Host, "wv00000000dead", |l| {
        l.alias = Some(GHOST.into())
    });
    let before = Rows::now(&h).await;
    gc_on_a_read_after(&h, before).await;
    assert!(h.k.link(&NsRef::Host, "wv00000000dead").is_none());
    assert_eq!(h.orphans(), 1);
}

/// Reads the kernel now and collects garbage on that view with `before`, as the bulk check
/// does with the rows it listed before its read.
async fn gc_on_a_read_after(h: &H, before: Rows) {
    let view = read_with(h, &before.namespaces).await;
    gc_on(h, &view, before).await;
}

/// The kernel as the bulk check reads it, with the namespace rows the store holds now.
async fn read_now(h: &H) -> crate::reconcile::check::View {
    read_with(h, &h.store().list_namespaces().await.unwrap()).await
}

/// The kernel as the bulk check reads it with namespace rows `rows` (listed before the read,
/// as the check does).
async fn read_with(h: &H, rows: &[crate::store::NamespaceRow]) -> crate::reconcile::check::View {
    h.ctl
        .read_view(rows, false, crate::kernel::snapshot::Pace::Background, None)
        .await
        .unwrap()
}

/// Collects garbage on `view` with `before`, the rows listed before it was read.
async fn gc_on(h: &H, view: &crate::reconcile::check::View, before: Rows) {
    let listed = crate::reconcile::gc::Listed {
        links: &before.links,
        networks: &before.networks,
        endpoints: &before.endpoints,
        namespaces: &before.namespaces,
    };
    h.ctl.collect_garbage_in(view, Some(listed)).await.unwrap();
}

/// The rows the store holds now, as the bulk check lists them.
struct Rows {
    links: Vec<crate::store::LinkRow>,
    networks: Vec<crate::store::NetworkRow>,
    endpoints: Vec<crate::store::EndpointRow>,
    namespaces: Vec<crate::store::NamespaceRow>,
}

impl Rows {
    async fn now(h: &H) -> Rows {
        let s = h.store();
        Rows {
            links: s.list_links().await.unwrap(),
            networks: s.list_networks().await.unwrap(),
            endpoints: s.list_endpoints(None).await.unwrap(),
            namespaces: s.list_namespaces().await.unwrap(),
        }
    }
}
