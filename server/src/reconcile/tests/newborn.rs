//! The window between creating an interface and marking it (issue 10, item 5).
//!
//! The kernel ignores an alias in the request that creates an interface, so the ownership
//! mark (`weft:<uid>`) comes with a second request. Every interface weft creates is born in
//! interface group `NEWBORN_GROUP` instead, which the kernel does take at creation, on both
//! ends of a veth; the marking request puts it back in group 0. A crash (or a failed
//! request) between the two leaves a *newborn* interface: no alias, newborn group. These
//! tests make that state the way a crash leaves it (the fake's create, then no mark, or a
//! failing `set_link`) and check that weft treats it as its own: the object that plans the
//! name adopts it (Ready after a restart), a delete or disconnect removes it, the GC removes
//! it once no object plans its name, and the namespace can connect again. An interface in the
//! newborn group that carries some other alias is not weft's.

use nix::errno::Errno;

use super::{H, bridge, end, mark, veth, veth_ends};
use crate::{
    kernel::{LinkOps, NEWBORN_GROUP, NsRef},
    model::Phase,
    reconcile::Key,
};

/// A fresh create leaves both ends newborn; the marking request takes them out of the group.
#[tokio::test]
async fn interfaces_are_born_in_the_newborn_group_and_leave_it_when_marked() {
    let h = H::new().await;
    h.namespace("ns1").await;
    h.k.create_veth(&NsRef::Host, "nb0", &h.ns("ns1"), "nb1")
        .await
        .unwrap();
    let (a, b) = (
        h.k.link(&NsRef::Host, "nb0").unwrap(),
        h.k.link(&h.ns("ns1"), "nb1").unwrap(),
    );
    assert!(a.is_newborn() && b.is_newborn());
    let id = h.link(&veth("vh1", "vi1", "ns1")).await;
    for l in [
        h.k.link(&NsRef::Host, "vh1").unwrap(),
        h.k.link(&h.ns("ns1"), "vi1").unwrap(),
    ] {
        assert_eq!((l.alias, l.group), (mark(&id), 0));
    }
}

/// kill -9 right after the create: the pair is there, unmarked. After a restart the link's
/// reconcile takes it as its own and converges without re-creating it.
#[tokio::test]
async fn a_pair_left_unmarked_by_a_crash_is_adopted_after_the_restart() {
    let mut h = H::new().await;
    h.namespace("ns1").await;
    let id = h
        .store()
        .create_link(&veth("vh1", "vi1", "ns1"), None, false)
        .await
        .unwrap()
        .id;
    // What the killed reconcile did: the create, and nothing after it.
    h.k.create_veth(&NsRef::Host, "vh1", &h.ns("ns1"), "vi1")
        .await
        .unwrap();
    let index = h.k.link(&NsRef::Host, "vh1").unwrap().index;
    h.restart().await;
    h.run(Key::Link(id.clone())).await;
    let s = h.link_status(&id).await;
    assert_eq!(s.phase, Phase::Ready, "{}", s.message);
    let l = h.k.link(&NsRef::Host, "vh1").unwrap();
    assert_eq!((l.index, l.alias, l.group), (index, mark(&id), 0));
    assert!(l.up);
    assert_eq!(h.k.link(&h.ns("ns1"), "vi1").unwrap().alias, mark(&id));
}

/// Enslaving fails right after the create (permanently): the pair stays newborn, never
/// someone else's. Deleting the link removes it; nothing leaks.
#[tokio::test]
async fn a_failed_enslave_after_the_create_leaks_nothing_when_the_link_is_deleted() {
    let h = H::new().await;
    h.namespace("ns1").await;
    let br = h.link(&bridge("br0")).await;
    assert_eq!(h.link_status(&br).await.phase, Phase::Ready);
    let mut host = end("vh1", "");
    host.master = Some("br0".into());
    h.k.fail("set_link", None, Errno::EINVAL, 1);
    let id = h.link(&veth_ends(host, end("vi1", "ns1"))).await;
    assert_eq!(h.link_status(&id).await.phase, Phase::Failed);
    assert!(h.k.link(&NsRef::Host, "vh1").unwrap().is_newborn());
    h.store().mark_link_deleting(&id).await.unwrap();
    h.run(Key::Link(id.clone())).await;
    assert!(h.store().link_by_id(&id).await.unwrap().is_none());
    assert!(h.k.link(&NsRef::Host, "vh1").is_none());
    assert!(h.k.link(&h.ns("ns1"), "vi1").is_none());
}

/// The same failure, then a retry: the link converges with the pair it made.
#[tokio::test]
async fn a_failed_enslave_after_the_create_converges_on_the_next_attempt() {
    let h = H::new().await;
    h.namespace("ns1").await;
    h.link(&bridge("br0")).await;
    let mut host = end("vh1", "");
    host.master = Some("br0".into());
    h.k.fail("set_link", None, Errno::EINVAL, 1);
    let id = h.link(&veth_ends(host, end("vi1", "ns1"))).await;
    assert_eq!(h.link_status(&id).await.phase, Phase::Failed);
    h.run(Key::Link(id.clone())).await;
    let s = h.link_status(&id).await;
    assert_eq!(s.phase, Phase::Ready, "{}", s.message);
    let br0 = h.k.link(&NsRef::Host, "br0").unwrap().index;
    assert_eq!(h.k.link(&NsRef::Host, "vh1").unwrap().master, Some(br0));
}

/// An endpoint whose veth was made but not marked when weftd died: Ready after the restart;
/// a disconnect then removes the veth and the namespace connects again.
#[tokio::test]
async fn a_newborn_endpoint_veth_is_adopted_and_the_namespace_reconnects() {
    let mut h = H::new().await;
    h.network("web", "br-web", &["10.88.0.0/24"]).await;
    h.namespace("ns1").await;
    let ep = h.connect_row("web", "ns1", Vec::new()).await;
    h.k.create_veth(&NsRef::Host, &ep.host_ifname, &h.ns("ns1"), "eth0")
        .await
        .unwrap();
    h.restart().await;
    h.run(Key::Endpoint(ep.id.clone())).await;
    let s = h.ep_status(&ep.id).await;
    assert_eq!(s.phase, Phase::Ready, "{}", s.message);
    assert_eq!(h.k.link(&h.ns("ns1"), "eth0").unwrap().alias, mark(&ep.id));
    h.store().mark_endpoint_deleting(&ep.id).await.unwrap();
    h.run(Key::Endpoint(ep.id.clone())).await;
    let again = h.connect("web", "ns1", Vec::new()).await;
    let s = h.ep_status(&again.id).await;
    assert_eq!(s.phase, Phase::Ready, "{}", s.message);
}

/// Disconnecting an endpoint whose veth is still newborn deletes the pair at once (the
/// reaper deletes only marked veths), so the inside name is free for the next connect.
#[tokio::test]
async fn disconnecting_an_endpoint_with_a_newborn_veth_deletes_it_at_once() {
    let h = H::new().await;
    h.network("web", "br-web", &["10.88.0.0/24"]).await;
    h.namespace("ns1").await;
    let ep = h.connect_row("web", "ns1", Vec::new()).await;
    h.k.create_veth(&NsRef::Host, &ep.host_ifname, &h.ns("ns1"), "eth0")
        .await
        .unwrap();
    h.store().mark_endpoint_deleting(&ep.id).await.unwrap();
    h.run(Key::Endpoint(ep.id.clone())).await;
    assert!(h.store().endpoint_by_id(&ep.id).await.unwrap().is_none());
    assert!(h.k.link(&NsRef::Host, &ep.host_ifname).is_none());
    assert!(h.k.link(&h.ns("ns1"), "eth0").is_none());
    assert_eq!(h.ctl.retired_pending(), 0);
}

/// The GC removes a newborn pair whose name no object plans (its object's row went, or its
/// request was never answered), counted once; a newborn interface an object still plans
/// stays for that object's reconcile.
#[tokio::test]
async fn gc_removes_a_newborn_pair_no_object_plans_and_keeps_a_planned_one() {
    let h = H::new().await;
    h.namespace("ns1").await;
    h.k.create_veth(&NsRef::Host, "lost0", &h.ns("ns1"), "lost1")
        .await
        .unwrap();
    h.store()
        .create_link(&veth("vh1", "vi1", "ns1"), None, false)
        .await
        .unwrap();
    h.k.create_veth(&NsRef::Host, "vh1", &h.ns("ns1"), "vi1")
        .await
        .unwrap();
    h.run(Key::Gc).await;
    assert!(h.k.link(&NsRef::Host, "lost0").is_none());
    assert!(h.k.link(&h.ns("ns1"), "lost1").is_none());
    assert_eq!(h.orphans(), 1, "a pair is one orphan");
    assert!(h.k.link(&NsRef::Host, "vh1").unwrap().is_newborn());
    assert!(h.k.link(&h.ns("ns1"), "vi1").is_some());
}

/// The group alone is not weft's mark: an interface in it with an alias of its own, or a
/// foreign one in group 0, is someone else's; refused, never deleted.
#[tokio::test]
async fn an_interface_in_the_newborn_group_with_another_alias_is_not_weft_s() {
    let h = H::new().await;
    h.namespace("ns1").await;
    h.k.add_foreign_link(&NsRef::Host, "vh1", "veth");
    h.k.tamper(&NsRef::Host, "vh1", |l| {
        l.group = NEWBORN_GROUP;
        l.alias = Some("someone else's".into());
    });
    h.k.add_foreign_link(&NsRef::Host, "other", "veth");
    let id = h.link(&veth("vh1", "vi1", "ns1")).await;
    let s = h.link_status(&id).await;
    assert_eq!(s.phase, Phase::Failed);
    assert!(s.message.contains("not owned by weft"), "{}", s.message);
    assert_eq!(h.run(Key::Gc).await, 0);
    let l = h.k.link(&NsRef::Host, "vh1").unwrap();
    assert_eq!(l.alias.as_deref(), Some("someone else's"));
    assert!(h.k.link(&NsRef::Host, "other").is_some());
}

/// Two objects plan one name (a link's end and an endpoint's eth0 in ns1, as two concurrent
/// requests of different kinds can leave): neither takes the newborn interface as its own,
/// and deleting one of them does not delete it; once only one plans it, that one adopts it.
#[tokio::test]
async fn a_newborn_interface_two_objects_plan_is_taken_by_neither() {
    let h = H::new().await;
    h.network("web", "br-web", &["10.88.0.0/24"]).await;
    h.namespace("ns1").await;
    let ep = h.connect_row("web", "ns1", Vec::new()).await;
    let link = h
        .store()
        .create_link(&veth("vh1", "eth0", "ns1"), None, false)
        .await
        .unwrap()
        .id;
    h.k.create_veth(&NsRef::Host, &ep.host_ifname, &h.ns("ns1"), "eth0")
        .await
        .unwrap();
    h.run(Key::Endpoint(ep.id.clone())).await;
    h.run(Key::Link(link.clone())).await;
    for s in [h.ep_status(&ep.id).await, h.link_status(&link).await] {
        assert_eq!(s.phase, Phase::Failed);
        assert!(s.message.contains("plans the same name"), "{}", s.message);
    }
    assert!(h.k.link(&h.ns("ns1"), "eth0").unwrap().is_newborn());
    h.store().mark_link_deleting(&link).await.unwrap();
    h.run(Key::Link(link.clone())).await;
    assert!(h.store().link_by_id(&link).await.unwrap().is_none());
    assert!(
        h.k.link(&h.ns("ns1"), "eth0").is_some(),
        "the link's delete took the interface the endpoint plans"
    );
    h.run(Key::Endpoint(ep.id.clone())).await;
    let s = h.ep_status(&ep.id).await;
    assert_eq!(s.phase, Phase::Ready, "{}", s.message);
}
