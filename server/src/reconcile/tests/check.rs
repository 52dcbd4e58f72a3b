//! The bulk check: the pure comparison ([`compare`]) against each kind of drift it must
//! catch and the converged case where it must queue nothing, then the check as the resync
//! and start-up run it (what it queues, what it confirms, with zero kernel writes).
//!
//! The comparison's input is built the way the check builds it: the store's lists, and one
//! snapshot per namespace read from the fake kernel of a converged host. Each drift test then
//! changes that snapshot (plain data: no kernel, no store) and asks the comparison again.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use super::{H, rich_veth, tcp};
use crate::{
    kernel::{KernelOps, LinkState, NEWBORN_GROUP, NetnsOps, NsRef, snapshot::NsSnapshot},
    model::Phase,
    reconcile::{
        Key,
        check::Pass,
        drift::{Desired, Space, Verdict, compare},
    },
    store::{EndpointRow, LinkRow, NamespaceRow, NetworkRow},
};

/// A change made to a [`World`]'s snapshot: one kind of drift.
type Change<'a> = Box<dyn Fn(&mut World) + 'a>;

/// A converged host's desired state and kernel snapshots, for the comparison.
struct World {
    namespaces: Vec<NamespaceRow>,
    links: Vec<LinkRow>,
    networks: Vec<NetworkRow>,
    endpoints: Vec<EndpointRow>,
    snaps: HashMap<String, NsSnapshot>,
    owner: String,
    dir: std::path::PathBuf,
    stale: HashSet<String>,
    quiet: HashSet<String>,
}

impl World {
    /// The comparison of what the world holds now.
    fn verdict(&self) -> Verdict {
        let spaces: HashMap<String, Space> = self
            .snaps
            .iter()
            .map(|(n, s)| (n.clone(), Space::new(s)))
            .collect();
        compare(
            &Desired {
                namespaces: &self.namespaces,
                links: &self.links,
                networks: &self.networks,
                endpoints: &self.endpoints,
                owner: &self.owner,
                netns_dir: &self.dir,
                resolv_stale: &self.stale,
                quiet: &self.quiet,
            },
            &spaces,
        )
    }

    /// The keys the comparison says differ.
    fn differ(&self) -> Vec<Key> {
        let mut keys: Vec<Key> = self.verdict().differ.into_iter().map(|(k, _)| k).collect();
        keys.sort_by_key(|k| format!("{k:?}"));
        keys
    }

    /// Interface `name` in namespace `ns` ("" the host) of the snapshot, to change.
    fn link(&mut self, ns: &str, name: &str) -> &mut LinkState {
        self.snaps
            .get_mut(ns)
            .and_then(|s| s.links.iter_mut().find(|l| l.name == name))
            .unwrap_or_else(|| panic!("no {name} in {ns:?}"))
    }
}

/// The keys of a converged host: a network, namespace "ns1", the rich veth into it, and an
/// endpoint of the network in it publishing a port.
struct Keys {
    ns: Key,
    link: Key,
    ep: Key,
    ep_row: EndpointRow,
}

async fn converged(h: &H) -> Keys {
    h.network("web", "br-web", &["10.88.0.0/24"]).await;
    let ns = h.namespace("ns1").await;
    let link = h.link(&rich_veth()).await;
    let ep = h.connect("web", "ns1", vec![tcp(8080, 80)]).await;
    h.run(Key::Firewall).await;
    assert_eq!(h.link_status(&link).await.phase, Phase::Ready);
    assert_eq!(h.ep_status(&ep.id).await.phase, Phase::Ready);
    Keys {
        ns: Key::Namespace(ns),
        link: Key::Link(link),
        ep: Key::Endpoint(ep.id.clone()),
        ep_row: ep,
    }
}

/// The store's lists and a snapshot of every namespace (with routes), as the check reads them.
async fn world(h: &H) -> World {
    let s = h.store();
    let namespaces = s.list_namespaces().await.unwrap();
    let view = h
        .ctl
        .read_view(
            &namespaces,
            true,
            crate::kernel::snapshot::Pace::Background,
            None,
        )
        .await
        .unwrap();
    World {
        links: s.list_links().await.unwrap(),
        networks: s.list_networks().await.unwrap(),
        endpoints: s.list_endpoints(None).await.unwrap(),
        namespaces,
        snaps: view
            .spaces
            .into_iter()
            .map(|(n, (_, snap))| (n, snap))
            .collect(),
        owner: h.ctl.owner().to_string(),
        dir: h.k.netns_dir().to_path_buf(),
        stale: HashSet::new(),
        quiet: HashSet::new(),
    }
}

impl World {
    /// Leaves namespace `name` ("" the host) unread, as a quiet one.
    fn quiet(&mut self, name: &str) {
        self.snaps.remove(name);
        self.quiet.insert(name.to_string());
    }
}

/// On a converged host nothing differs, and every namespace, link and endpoint matches.
#[tokio::test]
async fn a_converged_host_differs_in_nothing() {
    let h = H::new().await;
    let k = converged(&h).await;
    let w = world(&h).await;
    let v = w.verdict();
    assert_eq!(v.differ, vec![], "{v:?}");
    let matching: Vec<Key> = v.matching.iter().map(|(k, _, _)| k.clone()).collect();
    for key in [&k.ns, &k.link, &k.ep] {
        assert!(matching.contains(key), "{key:?} in {matching:?}");
    }
    // The endpoint's network hears of its confirmation too.
    assert!(
        v.matching
            .iter()
            .any(|(key, also, _)| key == &k.ep && matches!(also, Some(Key::Network(_))))
    );
}

/// Each kind of drift on a link's ends makes that link (and only it) differ.
#[tokio::test]
async fn every_kind_of_link_drift_is_caught() {
    let h = H::new().await;
    let k = converged(&h).await;
    let base = world(&h).await;
    let changes: Vec<(&str, Change)> = vec![
        ("mtu", Box::new(|w| w.link("", "vh1").mtu = 1500)),
        (
            "mac",
            Box::new(|w| w.link("ns1", "vi1").mac = Some("02:00:00:00:00:99".into())),
        ),
        ("down", Box::new(|w| w.link("ns1", "vi1").up = false)),
        ("mark", Box::new(|w| w.link("", "vh1").alias = None)),
        (
            "newborn",
            Box::new(|w| w.link("", "vh1").group = NEWBORN_GROUP),
        ),
        (
            "kind",
            Box::new(|w| w.link("", "vh1").kind = Some("dummy".into())),
        ),
        (
            "address gone",
            Box::new(|w| w.link("ns1", "vi1").addresses.clear()),
        ),
        (
            "extra address",
            Box::new(|w| {
                w.link("ns1", "vi1")
                    .addresses
                    .push("10.9.0.77/24".parse().unwrap())
            }),
        ),
        ("route gone", Box::new(|w| route_drift(w, "vi1", None))),
        (
            "extra route",
            Box::new(|w| route_drift(w, "vi1", Some("10.11.0.0/16"))),
        ),
        (
            "missing",
            Box::new(|w| {
                if let Some(s) = w.snaps.get_mut("ns1") {
                    s.links.retain(|l| l.name != "vi1");
                }
            }),
        ),
        ("index", Box::new(|w| w.link("", "vh1").index += 1000)),
    ];
    for (what, change) in changes {
        let mut w = world(&h).await;
        change(&mut w);
        assert_eq!(w.differ(), vec![k.link.clone()], "{what}");
    }
    assert_eq!(base.differ(), vec![]);
}

/// Removes weft's routes of interface `name` in "ns1", then adds `extra` (via 10.9.0.1) if
/// given after putting the real ones back.
fn route_drift(w: &mut World, name: &str, extra: Option<&str>) {
    let index = w.link("ns1", name).index;
    let routes = w
        .snaps
        .get_mut("ns1")
        .and_then(|s| s.routes.as_mut())
        .expect("routes were read");
    match extra {
        None => routes.retain(|(oif, _)| *oif != index),
        Some(dest) => routes.push((
            index,
            crate::kernel::RouteState {
                destination: dest.parse().unwrap(),
                gateway: Some("10.9.0.1".parse().unwrap()),
                metric: 0,
            },
        )),
    }
}

/// An endpoint's drift: its host end off the bridge, its hairpin mode flipped, its inside end's route or
/// address gone, its veth gone; each makes the endpoint differ.
#[tokio::test]
async fn every_kind_of_endpoint_drift_is_caught() {
    let h = H::new().await;
    let k = converged(&h).await;
    let host = k.ep_row.host_ifname.clone();
    let changes: Vec<(&str, Change)> = vec![
        ("master", Box::new(|w| w.link("", &host).master = None)),
        (
            "hairpin",
            Box::new(|w| {
                let port = w.link("", &host);
                port.hairpin = !port.hairpin;
            }),
        ),
        ("down", Box::new(|w| w.link("ns1", "eth0").up = false)),
        (
            "address",
            Box::new(|w| w.link("ns1", "eth0").addresses.clear()),
        ),
        ("default route", Box::new(|w| route_drift(w, "eth0", None))),
        (
            "veth gone",
            Box::new(|w| {
                for s in w.snaps.values_mut() {
                    s.links.retain(|l| l.name != "eth0" && l.name != host);
                }
            }),
        ),
        (
            "inside mac",
            Box::new(|w| w.link("ns1", "eth0").mac = Some("02:00:00:00:00:42".into())),
        ),
    ];
    for (what, change) in changes {
        let mut w = world(&h).await;
        change(&mut w);
        assert_eq!(w.differ(), vec![k.ep.clone()], "{what}");
    }
}

/// A namespace: loopback down or unmarked, resolv.conf stale, its file gone (then what lives
/// in it differs too); an object not converged or being deleted always differs.
#[tokio::test]
async fn namespace_drift_and_unconverged_objects_are_caught() {
    let h = H::new().await;
    let k = converged(&h).await;
    let mut w = world(&h).await;
    w.link("ns1", "lo").up = false;
    assert_eq!(w.differ(), vec![k.ns.clone()], "lo down");
    let mut w = world(&h).await;
    w.link("ns1", "lo").alias = Some("weft:someone-else".into());
    assert_eq!(w.differ(), vec![k.ns.clone()], "lo mark");
    let mut w = world(&h).await;
    w.stale.insert("ns1".into());
    assert_eq!(w.differ(), vec![k.ns.clone()], "resolv.conf");
    let mut w = world(&h).await;
    w.snaps.remove("ns1");
    let mut all = vec![k.ep.clone(), k.link.clone(), k.ns.clone()];
    all.sort_by_key(|k| format!("{k:?}"));
    assert_eq!(w.differ(), all, "namespace gone");
    let mut w = world(&h).await;
    w.links[0].status.phase = Phase::Pending;
    assert_eq!(w.differ(), vec![k.link.clone()], "pending");
    let mut w = world(&h).await;
    w.endpoints[0].deleting = true;
    assert_eq!(w.differ(), vec![k.ep.clone()], "deleting");
    let mut w = world(&h).await;
    w.links[0].generation += 1;
    assert_eq!(w.differ(), vec![k.link.clone()], "new generation");
}

/// Quiet namespaces (unread, found clean before) hold what they held: nothing in them
/// differs, but a stale resolv.conf still does (files are read every pass). What differs in
/// a namespace that was read marks it, and only it, unclean.
#[tokio::test]
async fn quiet_namespaces_are_taken_as_found_and_drift_marks_its_namespaces_unclean() {
    let h = H::new().await;
    let k = converged(&h).await;
    let mut w = world(&h).await;
    w.quiet("");
    w.quiet("ns1");
    let v = w.verdict();
    assert_eq!(v.differ, vec![], "{v:?}");
    assert!(v.unclean.is_empty());
    w.stale.insert("ns1".into());
    assert_eq!(w.differ(), vec![k.ns.clone()], "resolv.conf");
    // The host read, the container quiet: the port's drift is caught, the endpoint's two
    // namespaces are unclean, the link (host and ns1 too) matches.
    let mut w = world(&h).await;
    w.quiet("ns1");
    w.link("", &k.ep_row.host_ifname).master = None;
    let v = w.verdict();
    let differ: Vec<Key> = v.differ.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(differ, vec![k.ep.clone()]);
    let unclean: HashSet<&str> = v.unclean.iter().map(String::as_str).collect();
    assert_eq!(unclean, HashSet::from(["", "ns1"]));
}

/// Empties the queue without reconciling.
async fn drain(h: &H) {
    while h.ctl.queue_depth() > 0 {
        if let Some(k) = h.ctl.inner.queue.next().await {
            h.ctl.inner.queue.done(&k);
        }
    }
}

/// One periodic pass on an empty queue: true if it found the link's drift (it queues one
/// network, the firewall, and the link when it differs).
async fn pass_finds_drift(h: &H) -> bool {
    drain(h).await;
    h.ctl.check_all(Pass::Background).await;
    let depth = h.ctl.queue_depth();
    drain(h).await;
    assert!(depth == 2 || depth == 3, "{depth}");
    depth == 3
}

/// With the monitor live, a pass leaves what it found clean unread: a change the kernel made
/// without a notification (the fake sends none) is not seen until the monitor is heard from
/// that namespace, or the namespace's turn for a full read comes (every FULL_EVERY passes).
/// Without the monitor, every pass reads everything.
#[tokio::test]
async fn a_live_monitor_lets_the_check_skip_quiet_namespaces_until_heard_or_due() {
    use crate::reconcile::quiet::FULL_EVERY;
    let h = H::new().await;
    let _k = converged(&h).await;
    let mtu = h.k.link(&NsRef::Host, "vh1").unwrap().mtu;
    let drift = |on: bool| {
        h.k.tamper(&NsRef::Host, "vh1", |l| l.mtu = if on { 1500 } else { mtu })
    };
    let q = &h.ctl.inner.quiet;
    drift(true);
    assert!(pass_finds_drift(&h).await, "no monitor: the host is read");
    assert!(
        pass_finds_drift(&h).await,
        "no monitor: the host is read again"
    );
    drift(false);
    q.set_live(true);
    // Pass 1 reads everything and finds it clean; pass 2 leaves the host unread.
    assert!(!pass_finds_drift(&h).await);
    drift(true);
    assert!(!pass_finds_drift(&h).await, "quiet: the host is not read");
    // Heard from the host (pass 3): read, and the drift found; pass 4 reads it again.
    q.heard(None);
    assert!(pass_finds_drift(&h).await, "heard: read");
    assert!(pass_finds_drift(&h).await, "unclean: read again");
    drift(false);
    assert!(!pass_finds_drift(&h).await, "pass 5: clean again");
    // Passes 6 to 9 leave it unread; pass 10 is the host's full read.
    drift(true);
    for n in 6..FULL_EVERY {
        assert!(!pass_finds_drift(&h).await, "pass {n}");
    }
    assert!(
        pass_finds_drift(&h).await,
        "pass {FULL_EVERY}: the full read"
    );
    // The monitor stopped: everything is read again.
    drift(false);
    assert!(!pass_finds_drift(&h).await);
    drift(true);
    q.set_live(false);
    assert!(pass_finds_drift(&h).await, "no monitor any more");
}

/// An echo the monitor took over (`Quiet::echoed`) leaves the host quiet, and the next pass
/// queues its owner instead: a change made right after weft's own reconcile of the same link
/// is found by that reconcile within a resync, where ten passes would pass before the host's
/// full read found it.
#[tokio::test]
async fn an_echo_taken_over_is_queued_by_the_next_pass_without_a_host_read() {
    let h = H::new().await;
    let k = converged(&h).await;
    let mtu = h.k.link(&NsRef::Host, "vh1").unwrap().mtu;
    let q = &h.ctl.inner.quiet;
    let host_reads = || {
        h.ctl
            .stats()
            .check_host_reads
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    q.set_live(true);
    assert!(
        !pass_finds_drift(&h).await,
        "pass 1 reads and finds it clean"
    );
    let read = host_reads();
    h.k.tamper(&NsRef::Host, "vh1", |l| l.mtu = mtu + 1);
    assert!(q.echoed(&k.link, None));
    assert!(pass_finds_drift(&h).await, "pass 2 queues the link");
    assert_eq!(host_reads(), read, "the host stays unread");
    assert!(!pass_finds_drift(&h).await, "taken once");
    assert_eq!(
        h.ctl
            .stats()
            .check_echoes
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

/// The resync's check on a converged host queues only the networks and the firewall (always
/// reconciled), writes nothing; a change behind weft's back queues just its object.
#[tokio::test]
async fn the_resync_check_queues_only_what_differs() {
    let h = H::new().await;
    let _k = converged(&h).await;
    let before = h.k.writes();
    h.ctl.check_all(Pass::Background).await;
    assert_eq!(h.k.writes(), before, "a check only reads");
    // One network and the firewall.
    assert_eq!(h.ctl.queue_depth(), 2);
    h.k.tamper(&NsRef::Host, "vh1", |l| l.mtu = 1500);
    h.ctl.check_all(Pass::Background).await;
    assert_eq!(h.ctl.queue_depth(), 3);
    assert_eq!(h.k.writes(), before);
}

/// After a restart the check confirms every matching object Ready without reconciling it
/// and with zero kernel writes; an object that drifted while weftd was down is queued and
/// stays Rechecking until its reconcile.
#[tokio::test]
async fn a_restart_check_confirms_what_matches_without_reconciling() {
    let mut h = H::new().await;
    let k = converged(&h).await;
    h.restart().await;
    h.k.tamper(&NsRef::Host, "vh1", |l| l.up = false);
    let before = h.k.writes();
    h.ctl.check_all(Pass::Startup).await;
    // Network, firewall, the drifted link, the GC.
    assert_eq!(h.ctl.queue_depth(), 4);
    let mut set = tokio::task::JoinSet::new();
    h.ctl.spawn_recheck_flusher(&mut set);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    h.ctl.shutdown();
    while set.join_next().await.is_some() {}
    assert_eq!(h.k.writes(), before);
    assert_eq!(
        h.ctl
            .stats()
            .reconciles
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    let (Key::Namespace(ns), Key::Link(link), Key::Endpoint(ep)) = (&k.ns, &k.link, &k.ep) else {
        unreachable!()
    };
    assert_eq!(h.ns_status(ns).await.phase, Phase::Ready);
    assert_eq!(h.ep_status(ep).await.phase, Phase::Ready);
    assert_eq!(
        h.link_status(link).await.phase,
        Phase::Rechecking,
        "drifted: not confirmed"
    );
}

/// The bulk check's cache of namespace ids keeps the monitor's copy of each path: one
/// allocation per namespace for both tables (three copies of 10,000 paths were ~1.2 MB),
/// also after the namespace under a path was made again.
#[tokio::test]
async fn the_check_and_the_monitor_share_a_namespaces_path() {
    /// Asserts that the check's cache and the monitor hold one copy of `ns1`'s path.
    async fn one_copy(h: &H, when: &str) {
        let ns = h.ns("ns1");
        // The namespace's reconcile learns the id for the monitor; it may still be running.
        for _ in 0..100 {
            if h.ctl
                .watched_copies(&ns)
                .is_some_and(|(_, id)| id.is_some())
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let cached = h
            .ctl
            .cached_nsid_path(&h.ns_path("ns1"))
            .expect("the check cached an id");
        let (NsRef::Path(key), Some(NsRef::Path(by_id))) =
            h.ctl.watched_copies(&ns).expect("watched")
        else {
            panic!("{when}: ns1 is watched with its id");
        };
        assert!(
            Arc::ptr_eq(&cached, &key),
            "{when}: the check's copy is the monitor's"
        );
        assert!(Arc::ptr_eq(&key, &by_id), "{when}: one copy in the monitor");
    }
    let h = H::new().await;
    h.k.give_nsids();
    let keys = converged(&h).await;
    h.ctl.check_all(Pass::Background).await;
    one_copy(&h, "first check").await;
    // The namespace is gone behind weft's back and made again under the same path.
    h.k.delete_named_netns("ns1").await.unwrap();
    h.run(keys.ns.clone()).await;
    h.ctl.check_all(Pass::Background).await;
    one_copy(&h, "after the namespace was made again").await;
}

/// The id the monitor knows `name` by, once it has one.
fn watched_id(h: &H, name: &str) -> Option<i32> {
    let (_, by_id) = h.ctl.watched_copies(&h.ns(name))?;
    by_id?;
    h.ctl
        .cached_nsid(&h.ns_path(name), h.k.netns_identity(&h.ns_path(name)).ok()?)
}

/// A restart's check takes each connected namespace's id from the host's veths, asking the
/// kernel only for the namespace that has none (each ask walks every id the host has given
/// out: 1.4 s of a restart at 10,000 endpoints), and the monitor then hears each namespace
/// by its own id.
#[tokio::test]
async fn a_restart_takes_namespace_ids_from_the_hosts_veths() {
    let mut h = H::new().await;
    h.k.give_nsids();
    h.network("web", "br-web", &["10.88.0.0/24"]).await;
    for ns in ["ns1", "ns2", "ns3"] {
        h.namespace(ns).await;
    }
    h.connect("web", "ns1", vec![]).await;
    h.connect("web", "ns2", vec![]).await;
    h.restart().await;
    let before = h.k.nsid_lookups();
    h.ctl.check_all(Pass::Startup).await;
    assert_eq!(
        h.k.nsid_lookups() - before,
        1,
        "only ns3, which no veth joins to the host, is asked"
    );
    for ns in ["ns1", "ns2", "ns3"] {
        let want = h.k.netns_id(&h.ns(ns)).await.unwrap();
        assert!(want.is_some());
        assert_eq!(
            watched_id(&h, ns),
            want,
            "{ns}: the monitor hears it by its id"
        );
    }
}

/// The ids a host read shows: a namespace takes its peer's id only when both ends name each
/// other; an id two namespaces would take, a namespace without such a veth, and every one
/// without the host's read are left to the kernel.
#[test]
fn ids_from_veths_takes_only_ids_both_ends_agree_on() {
    use crate::reconcile::check::ids_from_veths;
    let veth = |index: u32, link: u32, netnsid: i32| LinkState {
        index,
        name: format!("v{index}"),
        kind: Some("veth".into()),
        link: Some(link),
        link_netnsid: Some(netnsid),
        ..LinkState::default()
    };
    let snap = |links: Vec<LinkState>| NsSnapshot {
        links,
        routes: None,
    };
    // Host veths 10, 11, 12, 13 with peers at index 2 in namespaces 100, 101, 102, 102.
    let host = snap(vec![
        veth(10, 2, 100),
        veth(11, 2, 101),
        veth(12, 2, 102),
        veth(13, 3, 102),
    ]);
    let a = snap(vec![veth(2, 10, 0)]);
    // Names host veth 11 as its peer, but at another index than 11's peer: not its pair.
    let b = snap(vec![veth(5, 11, 0)]);
    // Two ends of namespace 102, both agreeing.
    let c = snap(vec![veth(2, 12, 0), veth(3, 13, 0)]);
    let none = snap(vec![]);
    // Not a veth: its IFLA_LINK names a lower device, whatever the numbers say.
    let macvlan = snap(vec![LinkState {
        kind: Some("macvlan".into()),
        ..veth(2, 10, 0)
    }]);
    assert_eq!(
        ids_from_veths(
            Some(&host),
            [
                Some(&a),
                Some(&b),
                Some(&c),
                Some(&none),
                None,
                Some(&macvlan)
            ]
            .into_iter()
        ),
        vec![Some(100), None, Some(102), None, None, None]
    );
    // A copy of `a`'s interfaces elsewhere would take its id too: neither gets it.
    assert_eq!(
        ids_from_veths(Some(&host), [Some(&a), Some(&a.clone())].into_iter()),
        vec![None, None]
    );
    assert_eq!(ids_from_veths(None, [Some(&a)].into_iter()), vec![None]);
}

/// What changed in a namespace between its read and the moment the monitor learnt its id
/// was not heard for it: such a namespace, known by a change heard under its id since the
/// read began, is read again; one heard of only before is not.
#[tokio::test]
async fn a_namespace_heard_of_while_its_id_was_unknown_is_read_again() {
    let mut h = H::new().await;
    h.k.give_nsids();
    h.network("web", "br-web", &["10.88.0.0/24"]).await;
    h.namespace("ns1").await;
    h.connect("web", "ns1", vec![]).await;
    h.restart().await;
    let targets = [
        crate::kernel::snapshot::SnapshotTarget {
            ns: NsRef::Host,
            routes: true,
        },
        crate::kernel::snapshot::SnapshotTarget {
            ns: h.ns("ns1"),
            routes: true,
        },
    ];
    let pace = crate::kernel::snapshot::Pace::Background;
    let id = h.k.netns_id(&h.ns("ns1")).await.unwrap().unwrap();
    for heard in [false, true] {
        h.restart().await;
        let q = &h.ctl.inner.quiet;
        q.heard(Some(id));
        let since = q.now();
        let read = h.k.snapshot(&targets, pace).await.unwrap();
        let mut snaps = read.into_iter().map(Result::unwrap);
        let mut view = crate::reconcile::check::View {
            spaces: HashMap::from([
                (String::new(), (NsRef::Host, snaps.next().unwrap())),
                ("ns1".to_string(), (h.ns("ns1"), snaps.next().unwrap())),
            ]),
            others: HashMap::new(),
            quiet: HashSet::new(),
            ids: HashMap::new(),
            files: Vec::new(),
        };
        // eth0 goes down after the read, before the id is known.
        h.k.tamper(&h.ns("ns1"), "eth0", |l| l.up = !l.up);
        if heard {
            q.heard(Some(id));
        }
        let names = vec![String::new(), "ns1".to_string()];
        let identity = h.k.netns_identity(&h.ns_path("ns1")).unwrap();
        h.ctl
            .ids_after_read(
                &mut view,
                &names,
                vec![(1, h.ns_path("ns1"), identity)],
                since,
                pace,
            )
            .await
            .unwrap();
        assert_eq!(view.ids["ns1"], Some(id));
        let eth0 = |v: &crate::reconcile::check::View| {
            v.spaces["ns1"]
                .1
                .links
                .iter()
                .find(|l| l.name == "eth0")
                .unwrap()
                .up
        };
        let now = crate::kernel::LinkOps::get_link(&*h.k, &h.ns("ns1"), "eth0")
            .await
            .unwrap()
            .unwrap()
            .up;
        assert_eq!(
            eth0(&view) == now,
            heard,
            "heard since the read: read again (and only then)"
        );
    }
}

/// An id the cache already holds for another namespace is not taken from the veths: the
/// namespace is asked instead.
#[tokio::test]
async fn an_id_cached_for_another_namespace_is_asked_not_taken() {
    let mut h = H::new().await;
    h.k.give_nsids();
    h.network("web", "br-web", &["10.88.0.0/24"]).await;
    for ns in ["ns1", "ns2"] {
        h.namespace(ns).await;
        h.connect("web", ns, vec![]).await;
    }
    h.restart().await;
    let id1 = h.k.netns_id(&h.ns("ns1")).await.unwrap().unwrap();
    let ns2 = h.ns_path("ns2");
    h.ctl
        .remember_nsid(&h.ns("ns2"), h.k.netns_identity(&ns2).unwrap(), id1);
    let before = h.k.nsid_lookups();
    h.ctl.check_all(Pass::Startup).await;
    assert_eq!(h.k.nsid_lookups() - before, 1, "ns1 is asked");
    assert_eq!(watched_id(&h, "ns1"), Some(id1));
}

/// A periodic pass hands back the SQLite page caches (its own reads' and the API's): between
/// passes weftd holds only what the API reads again. At 10,000 endpoints the pooled caches
/// were most of the 5-7 MiB by which VmRSS after a pass exceeded VmRSS at rest
/// (BENCHMARKS.md, session 28). The start-up check leaves them to the GC that follows it.
#[tokio::test]
async fn a_periodic_pass_hands_back_the_page_caches() {
    use crate::{
        store::release_tests::{fill_a_page_cache, pooled_page_caches},
        testing::alone,
    };
    if !alone!(a_periodic_pass_hands_back_the_page_caches) {
        return;
    }
    let h = H::new().await;
    let filled = fill_a_page_cache(h.store()).await;
    assert!(filled > 500_000, "the read filled a cache: {filled} bytes");
    let before = pooled_page_caches(h.store()).await;
    assert!(before >= filled, "{before} < {filled}");
    h.ctl.check_all(Pass::Background).await;
    let after = pooled_page_caches(h.store()).await;
    assert!(
        after < before / 10,
        "a periodic pass left {after} bytes of {before} in the page caches"
    );
}
