//! The Connect path's store (issue 14): the connect transaction in fewer round trips, the
//! endpoint rows it keeps for the reconcile and the waiting request, the object counts that
//! triggers keep, and concurrent connects serialised by the store's write turn.

use std::{collections::HashSet, path::Path};

use super::*;
use crate::model::{
    ConnectSpec, NamespaceSpec, NetworkSpec, Phase, Status, SubnetSpec, connect::derived_mac,
};

fn ns_spec(name: &str) -> NamespaceSpec {
    NamespaceSpec {
        name: name.into(),
        labels: Default::default(),
        adopted_path: None,
    }
}

fn net_spec(name: &str, subnets: &[&str]) -> NetworkSpec {
    NetworkSpec {
        name: name.into(),
        labels: Default::default(),
        bridge_name: format!("br-{name}"),
        subnets: subnets
            .iter()
            .map(|s| SubnetSpec::parse("subnet", s, "", "", &[]).unwrap())
            .collect(),
        internal: false,
        icc: true,
        masquerade: true,
        mtu: 0,
        dns: true,
    }
}

fn connect_spec(net: &str, ns: &str) -> ConnectSpec {
    ConnectSpec::plain(net, ns)
}

/// A store at `path` with network "web" (`subnets`) and namespaces `ns0`..`ns{n-1}`.
async fn store_with(path: &Path, subnets: &[&str], n: usize) -> Store {
    let s = Store::open(path).await.unwrap();
    add_network(&s, "web", subnets).await;
    for i in 0..n {
        s.create_namespace(&ns_spec(&format!("ns{i}")), None, false)
            .await
            .unwrap();
    }
    s
}

/// A store at `path` with namespace `ns0` connected to network "web" (10.88.0.0/24).
async fn store_with_endpoint(path: &Path) -> (Store, EndpointRow) {
    let s = store_with(path, &["10.88.0.0/24"], 1).await;
    let ep = s
        .connect(&connect_spec("web", "ns0"), None, false)
        .await
        .unwrap();
    (s, ep)
}

/// Records network `name` with `subnets`.
async fn add_network(s: &Store, name: &str, subnets: &[&str]) -> NetworkRow {
    s.create_network(
        &net_spec(name, subnets),
        &AutoSubnets::default(),
        false,
        None,
        false,
    )
    .await
    .unwrap()
}

/// Endpoint `id` read from the database itself, past the cache.
async fn stored(s: &Store, id: &str) -> EndpointRow {
    s.find_one::<EndpointRow>("e.id = ?", &[id])
        .await
        .unwrap()
        .unwrap()
}

/// The row a connect answers with is built without reading it back: it must be what the
/// database holds, field for field (single and dual stack), and what the cache serves.
#[tokio::test]
async fn connect_answers_the_row_the_database_holds() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with(
        &dir.path().join("t.db"),
        &["10.88.0.0/24", "fd00:88::/64"],
        2,
    )
    .await;
    for ns in ["ns0", "ns1"] {
        let row = s
            .connect(&connect_spec("web", ns), None, false)
            .await
            .unwrap();
        assert_eq!(row.addresses.len(), 2);
        assert!(row.mac.is_some());
        assert_eq!(row, stored(&s, &row.id).await);
        assert_eq!(Some(row.clone()), s.endpoint_by_id(&row.id).await.unwrap());
    }
    // The cursors moved: the two endpoints hold different addresses in both subnets.
    let all = s.list_endpoints(None).await.unwrap();
    let addrs: HashSet<_> = all.iter().flat_map(|e| e.addresses.clone()).collect();
    assert_eq!(addrs.len(), 4);
}

/// A dry run answers the row it would make and leaves nothing behind, in the database or
/// in the cache.
#[tokio::test]
async fn a_dry_run_connect_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with(&dir.path().join("t.db"), &["10.88.0.0/24"], 1).await;
    let row = s
        .connect(&connect_spec("web", "ns0"), None, true)
        .await
        .unwrap();
    assert_eq!(row.status.phase, Phase::Pending);
    assert_eq!(s.endpoint_by_id(&row.id).await.unwrap(), None);
    assert!(s.list_endpoints(None).await.unwrap().is_empty());
    let real = s
        .connect(&connect_spec("web", "ns0"), None, false)
        .await
        .unwrap();
    assert_eq!(
        real.addresses, row.addresses,
        "the rolled-back cursor did not move"
    );
}

/// A connect refused at its last step (a host port another endpoint holds, found after
/// its row, lease and cursor were written in the same transaction) leaves nothing: no row,
/// no lease, the cursor where it was, the request id free; and the writer connection goes
/// on (the next connect commits).
#[tokio::test]
async fn a_connect_refused_at_its_last_step_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with(&dir.path().join("t.db"), &["10.88.0.0/24"], 2).await;
    let port = crate::model::PortSpec {
        host_ip: None,
        host_port: 8080,
        host_port_end: 8080,
        container_port: 80,
        container_port_end: 80,
        protocol: crate::model::Protocol::Tcp,
    };
    let mut first = connect_spec("web", "ns0");
    first.endpoint.ports = vec![port.clone()];
    s.connect(&first, None, false).await.unwrap();
    let mut second = connect_spec("web", "ns1");
    second.endpoint.ports = vec![port];
    let record = RequestRecord {
        id: "req-1".into(),
        method: "Connect",
        fingerprint: "f".into(),
    };
    let e = s.connect(&second, Some(&record), false).await.unwrap_err();
    assert!(
        matches!(e, StoreError::AlreadyExists(ref m) if m.contains("8080")),
        "{e}"
    );
    assert_eq!(s.list_endpoints(None).await.unwrap().len(), 1);
    let leases: i64 = sqlx::query_scalar("SELECT count(*) FROM leases")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(leases, 1);
    assert_eq!(s.past_request("req-1").await.unwrap(), None);
    // The cursor did not move: the next connect gets the address the refused one had.
    let refused_would_have = {
        let dry = s
            .connect(&connect_spec("web", "ns1"), None, true)
            .await
            .unwrap();
        dry.addresses
    };
    let ok = s
        .connect(&connect_spec("web", "ns1"), Some(&record), false)
        .await
        .unwrap();
    assert_eq!(ok.addresses, refused_would_have);
    assert_eq!(ok.addresses[0].addr().to_string(), "10.88.0.3");
    assert_eq!(
        s.past_request("req-1").await.unwrap().unwrap().object_id,
        ok.id
    );
}

/// The derived MAC is tried in the insert itself; when another endpoint of the network
/// holds it (here a client asked for it), the next one is taken and nothing half-written
/// stays behind.
#[tokio::test]
async fn a_taken_derived_mac_is_skipped_in_the_same_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with(&dir.path().join("t.db"), &["10.88.0.0/24"], 2).await;
    // ns1 will get the first address; ns0 takes the MAC that address derives first.
    let first: std::net::IpAddr = "10.88.0.2".parse().unwrap();
    let taken = derived_mac(&[first], 0).unwrap();
    let mut asks = connect_spec("web", "ns0");
    asks.ipv4 = Some("10.88.0.200".parse().unwrap());
    asks.endpoint.mac = Some(taken.clone());
    s.connect(&asks, None, false).await.unwrap();
    let row = s
        .connect(&connect_spec("web", "ns1"), None, false)
        .await
        .unwrap();
    assert_eq!(row.addresses[0].addr(), first);
    assert_eq!(row.mac, derived_mac(&[first], 1));
    assert_eq!(row, stored(&s, &row.id).await);
    // A client asking for a held MAC is refused, naming the holder, and nothing is written.
    s.create_namespace(&ns_spec("ns2"), None, false)
        .await
        .unwrap();
    let mut again = connect_spec("web", "ns2");
    again.endpoint.mac = Some(taken);
    let err = s.connect(&again, None, false).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::AlreadyExists(m) if m.contains("ns0")),
        "{err}"
    );
    assert_eq!(s.list_endpoints(None).await.unwrap().len(), 2);
}

/// Concurrent connects (each its own task, as concurrent API calls are) take the store's
/// write turn one after another: every one succeeds with its own address and MAC, and all
/// of them are in the database file when it is opened again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_connects_are_distinct_and_all_durable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let n = 40;
    let s = store_with(&path, &["10.88.0.0/24"], n).await;
    let mut tasks = Vec::new();
    for i in 0..n {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.connect(&connect_spec("web", &format!("ns{i}")), None, false)
                .await
                .unwrap()
        }));
    }
    let mut answered = Vec::new();
    for t in tasks {
        answered.push(t.await.unwrap());
    }
    s.close().await;
    let s = Store::open(&path).await.unwrap();
    let all = s.list_endpoints(None).await.unwrap();
    assert_eq!(all.len(), n);
    let addrs: HashSet<_> = all.iter().map(|e| e.addresses[0]).collect();
    let macs: HashSet<_> = all.iter().map(|e| e.mac.clone().unwrap()).collect();
    assert_eq!((addrs.len(), macs.len()), (n, n));
    for row in answered {
        assert_eq!(row, stored(&s, &row.id).await, "answered as stored");
    }
}

/// The object limit reads the count the triggers keep: it follows inserts and deletes, and
/// a database from before migration 0013 starts with its rows counted.
#[tokio::test]
async fn the_endpoint_limit_follows_connects_and_removals() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with(&dir.path().join("t.db"), &["10.88.0.0/24"], 3)
        .await
        .with_limits(crate::model::ObjectLimits {
            endpoints: 2,
            ..Default::default()
        });
    let a = s
        .connect(&connect_spec("web", "ns0"), None, false)
        .await
        .unwrap();
    s.connect(&connect_spec("web", "ns1"), None, false)
        .await
        .unwrap();
    let err = s
        .connect(&connect_spec("web", "ns2"), None, false)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Exhausted(m) if m.contains("--max-endpoints")),
        "{err}"
    );
    s.mark_endpoint_deleting_kept(&a.id).await.unwrap();
    let err = s
        .connect(&connect_spec("web", "ns2"), None, false)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Exhausted(_)),
        "a row being deleted still counts"
    );
    assert!(s.delete_endpoint_row(&a.id).await.unwrap());
    s.connect(&connect_spec("web", "ns2"), None, false)
        .await
        .unwrap();
}

/// A disconnect's marked row is kept for its reconcile, as the database holds it; a status
/// write updates the kept row; the row's delete drops it.
#[tokio::test]
async fn kept_endpoint_rows_follow_every_write() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with(&dir.path().join("t.db"), &["10.88.0.0/24"], 1).await;
    let row = s
        .connect(&connect_spec("web", "ns0"), None, false)
        .await
        .unwrap();
    let ready = crate::model::Status {
        phase: Phase::Ready,
        observed_generation: 1,
        message: String::new(),
    };
    let seen = EndpointObserved {
        mac: "02:42:0a:58:00:02".into(),
    };
    assert!(s.set_endpoint_status(&row.id, &ready, &seen).await.unwrap());
    let now = s.endpoint_by_id(&row.id).await.unwrap().unwrap();
    assert_eq!(
        (now.status.phase, now.observed.mac.as_str()),
        (Phase::Ready, seen.mac.as_str())
    );
    assert_eq!(now, stored(&s, &row.id).await);
    s.mark_endpoint_deleting_kept(&now.id).await.unwrap();
    let marked = s.endpoint_by_id(&row.id).await.unwrap().unwrap();
    assert!(marked.deleting);
    assert_eq!(marked, stored(&s, &row.id).await);
    // Marking twice changes nothing, and keeps what is stored.
    s.mark_endpoint_deleting_kept(&now.id).await.unwrap();
    assert_eq!(s.endpoint_by_id(&row.id).await.unwrap().unwrap(), marked);
    assert!(s.release_endpoint(&row.id).await.unwrap());
    assert_eq!(
        s.endpoint_by_id(&row.id).await.unwrap().unwrap(),
        stored(&s, &row.id).await
    );
    assert!(s.delete_endpoint_row(&row.id).await.unwrap());
    assert_eq!(s.endpoint_by_id(&row.id).await.unwrap(), None);
}

/// The GC's lookup of a newborn interface's name: every kind of object that plans a name is
/// found (a link's end in the host and in a namespace, a network's bridge, an endpoint's
/// host and inside ends), in its own namespace only, and an unplanned name is not.
#[tokio::test]
async fn plans_interface_finds_each_planned_name_in_its_namespace_only() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with(&dir.path().join("t.db"), &["10.1.0.0/24"], 2).await;
    let end = |name: &str, ns: &str| crate::model::EndSpec {
        name: name.into(),
        namespace: ns.into(),
        ..Default::default()
    };
    let link = crate::model::LinkSpec {
        labels: Default::default(),
        end: end("vh0", ""),
        kind: crate::model::LinkKind::Veth {
            peer: end("vi0", "ns1"),
        },
    };
    s.create_link(&link, None, false).await.unwrap();
    let e = s
        .connect(&connect_spec("web", "ns0"), None, false)
        .await
        .unwrap();
    let planned = [
        ("", "vh0"),
        ("ns1", "vi0"),
        ("", "br-web"),
        ("", e.host_ifname.as_str()),
        ("ns0", "eth0"),
    ];
    for (ns, name) in planned {
        assert!(s.plans_interface(ns, name).await.unwrap(), "{ns:?} {name}");
    }
    let elsewhere = [
        ("ns0", "vh0"),
        ("", "vi0"),
        ("ns0", "vi0"),
        ("ns1", "br-web"),
        ("ns1", e.host_ifname.as_str()),
        ("ns1", "eth0"),
        ("", "eth0"),
        ("nope", "eth0"),
        ("", "lost0"),
    ];
    for (ns, name) in elsewhere {
        assert!(!s.plans_interface(ns, name).await.unwrap(), "{ns:?} {name}");
    }
}

/// A Linux bridge takes 1,023 ports, whoever attaches them: link interfaces whose master is a
/// network's bridge count with its endpoints. A Connect past the last port is refused naming
/// both counts; a link onto a full bridge is refused at create and at update (its dry run
/// too), naming the bridge and its network; a link taken off the bridge frees its port. A
/// veth whose two ends join one bridge takes two. Nothing refused is stored.
#[tokio::test]
async fn link_interfaces_on_a_networks_bridge_take_its_ports() {
    let dir = tempfile::tempdir().unwrap();
    let n = crate::model::BRIDGE_PORTS as usize;
    let s = store_with(&dir.path().join("t.db"), &["10.1.0.0/21"], n).await;
    let end = |name: &str, master: Option<&str>| crate::model::EndSpec {
        name: name.into(),
        master: master.map(str::to_string),
        ..Default::default()
    };
    let veth = |a: crate::model::EndSpec, b: crate::model::EndSpec| crate::model::LinkSpec {
        labels: Default::default(),
        end: a,
        kind: crate::model::LinkKind::Veth { peer: b },
    };
    let on = veth(end("vx0", Some("br-web")), end("vx1", None));
    let link = s.create_link(&on, None, false).await.unwrap();
    for i in 0..n - 1 {
        s.connect(&connect_spec("web", &format!("ns{i}")), None, false)
            .await
            .unwrap();
    }
    let last = connect_spec("web", &format!("ns{}", n - 1));
    for dry_run in [true, false] {
        let err = s.connect(&last, None, dry_run).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Exhausted(m)
                if m.contains("1022 endpoints and 1 link interfaces") && m.contains("take a link off")),
            "{err}"
        );
    }
    // Its own port is its own: an update that keeps it (an MTU) is fine, one that also puts
    // its peer on the full bridge is not.
    let mut mtu = on.clone();
    mtu.end.mtu = 1400;
    s.update_link_spec(&link.id, &mtu, false).await.unwrap();
    let peer_too = veth(end("vx0", Some("br-web")), end("vx1", Some("br-web")));
    let err = s
        .update_link_spec(&link.id, &peer_too, false)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Exhausted(m) if m.starts_with("link.veth.peer.master: ")),
        "{err}"
    );
    s.update_link_spec(&link.id, &on, false).await.unwrap();
    // Another link onto the full bridge: refused, naming it and its network.
    let count = |s: &Store| {
        let s = s.clone();
        async move { s.list_links().await.unwrap().len() }
    };
    let links = count(&s).await;
    let more = veth(end("vy0", Some("br-web")), end("vy1", None));
    let err = s.create_link(&more, None, false).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Exhausted(m)
            if m.starts_with("link.master: bridge \"br-web\" in the host namespace (the bridge of \
                              network \"web\", with 1022 endpoints) has 1023 ports taken, 1 of \
                              them by link interfaces")
                && m.contains("attach \"vy0\" to another bridge")),
        "{err}"
    );
    assert_eq!(count(&s).await, links, "a refused link was stored");
    // The link taken off the bridge frees its port: the Connect works, and putting the link
    // back is refused (its dry run too), leaving its spec as it was.
    let off = veth(end("vx0", None), end("vx1", None));
    s.update_link_spec(&link.id, &off, false).await.unwrap();
    s.connect(&last, None, false).await.unwrap();
    for dry_run in [true, false] {
        let err = s
            .update_link_spec(&link.id, &on, dry_run)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Exhausted(m) if m.contains("1023 endpoints")),
            "{err}"
        );
    }
    assert_eq!(s.link_by_id(&link.id).await.unwrap().unwrap().spec, off);
    // A bridge of a link's own, in the host: a veth with both ends on it takes two ports.
    let both = veth(end("vz0", Some("br-own")), end("vz1", Some("br-own")));
    s.create_link(&both, None, false).await.unwrap();
    let ports: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM link_ifaces WHERE ns_key = '' AND master = 'br-own'",
    )
    .fetch_one(&s.pool)
    .await
    .unwrap();
    assert_eq!(ports, 2);
}

/// The bulk check's list: exactly the rows the per-kind lists give (NULL and
/// set optional columns, statuses, rows being deleted, a link, a lease-less endpoint's
/// addresses), stepped in place on a thread at nice 19 and SCHED_IDLE whose connection's
/// SQLite thread runs so too (sqlx starts it from the reading thread, which took the lowest priority
/// first), kept for the next read.
#[tokio::test]
async fn list_all_in_background_reads_every_row_on_a_sqlite_thread_at_nice_19() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with(&dir.path().join("t.db"), &["10.1.0.0/24"], 3).await;
    let mut eps = Vec::new();
    for ns in ["ns0", "ns2", "ns1"] {
        eps.push(
            s.connect(&connect_spec("web", ns), None, false)
                .await
                .unwrap(),
        );
    }
    let end = |name: &str, ns: &str| crate::model::EndSpec {
        name: name.into(),
        namespace: ns.into(),
        ..Default::default()
    };
    let link = s
        .create_link(
            &crate::model::LinkSpec {
                labels: Default::default(),
                end: end("vh0", ""),
                kind: crate::model::LinkKind::Veth {
                    peer: end("vi0", "ns1"),
                },
            },
            None,
            false,
        )
        .await
        .unwrap();
    let ready = Status {
        phase: Phase::Ready,
        observed_generation: 1,
        message: "fine".into(),
    };
    s.set_status::<EndpointRow>(
        &eps[0].id,
        &ready,
        &EndpointObserved {
            mac: "02:00:00:00:00:09".into(),
        },
    )
    .await
    .unwrap();
    s.set_status::<LinkRow>(&link.id, &ready, &LinkObserved::default())
        .await
        .unwrap();
    s.mark_deleting::<EndpointRow>(&eps[1].id).await.unwrap();
    s.mark_unverified().await.unwrap();
    let niced_sqlite_threads = || {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .filter(|t| {
                let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
                let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
                // Field 19 is the nice value, field 41 the policy (5: SCHED_IDLE); fields
                // after the `(comm)` one are split on spaces.
                let field = |n: usize| {
                    stat.rsplit_once(") ")
                        .and_then(|(_, rest)| rest.split(' ').nth(n - 3).map(str::to_string))
                };
                comm.starts_with("sqlx-sqlite")
                    && field(19).as_deref() == Some("19")
                    && field(41).as_deref() == Some("5")
            })
            .count()
    };
    assert_eq!(niced_sqlite_threads(), 0);
    let all = s
        .list_all_in_background(std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(all.namespaces, s.list_namespaces().await.unwrap());
    assert_eq!(all.endpoints, s.list_endpoints(None).await.unwrap());
    assert_eq!(all.networks, s.list_networks().await.unwrap());
    assert_eq!(all.links, s.list_links().await.unwrap());
    assert_eq!(
        (
            all.namespaces.len(),
            all.endpoints.len(),
            all.networks.len(),
            all.links.len()
        ),
        (3, 3, 1, 1)
    );
    assert_eq!(all.networks[0].spec.bridge_name, "br-web");
    // Listings decode in place, look-ups through sqlx's rows: the same rows either way.
    async fn looked_up<K: Kind + PartialEq + std::fmt::Debug>(
        s: &Store,
        rows: &[K],
        id: fn(&K) -> &str,
    ) {
        for r in rows {
            let cond = format!("{} = ?", K::ID);
            assert_eq!(
                s.find_one::<K>(&cond, &[id(r)]).await.unwrap().as_ref(),
                Some(r)
            );
        }
    }
    looked_up(&s, &all.namespaces, |r| &r.id).await;
    looked_up(&s, &all.endpoints, |r| &r.id).await;
    looked_up(&s, &all.networks, |r| &r.id).await;
    looked_up(&s, &all.links, |r| &r.id).await;
    assert!(all.endpoints.iter().any(|e| e.deleting));
    assert!(all.endpoints.iter().all(|e| !e.addresses.is_empty()));
    assert!(
        all.endpoints
            .iter()
            .any(|e| e.status.phase == Phase::Rechecking && e.observed.mac == "02:00:00:00:00:09")
    );
    assert_eq!(
        niced_sqlite_threads(),
        1,
        "its SQLite thread runs at nice 19, SCHED_IDLE"
    );
    // The connection is kept: a second read opens no other.
    let again = s
        .list_all_in_background(std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(again.namespaces.len(), 3);
    assert_eq!(niced_sqlite_threads(), 1);

    // While an API call is in flight it gives way, for its budget at most.
    let call = crate::busy::REQUESTS.enter();
    let started = std::time::Instant::now();
    let paused = s
        .list_all_in_background(std::time::Duration::from_millis(150))
        .await
        .unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_millis(150));
    drop(call);
    assert_eq!(paused.namespaces, all.namespaces);

    // A value of the wrong storage class (a hand-edited database) is an error naming the
    // column, not a panic; so is text that is not UTF-8.
    for damage in [
        "UPDATE namespaces SET generation = 'x' WHERE name = 'ns1'",
        "UPDATE namespaces SET name = CAST(X'ff00' AS TEXT) WHERE name = 'ns1'",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(damage))
            .execute(&s.pool)
            .await
            .unwrap();
        let e = s
            .list_all_in_background(std::time::Duration::ZERO)
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Corrupt(_)), "{damage}: {e}");
        sqlx::query("UPDATE namespaces SET generation = 1, name = 'ns1' WHERE id = ?")
            .bind(
                &all.namespaces
                    .iter()
                    .find(|n| n.spec.name == "ns1")
                    .unwrap()
                    .id,
            )
            .execute(&s.pool)
            .await
            .unwrap();
        assert_eq!(
            s.list_all_in_background(std::time::Duration::ZERO)
                .await
                .unwrap()
                .namespaces
                .len(),
            3
        );
    }
    s.close().await;
}

/// A namespace's resolv.conf sources come in one query: whether weft writes its file, and
/// its live endpoints' networks and leases in connect order; a disconnecting endpoint is
/// left out, an adopted or deleting namespace is not written, an unknown one is None.
#[tokio::test]
async fn resolv_sources_are_the_live_endpoints_in_connect_order() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with(&dir.path().join("t.db"), &["10.7.0.0/24"], 2).await;
    let other = add_network(&s, "db", &["10.8.0.0/24"]).await;
    assert_eq!(s.resolv_sources("nope").await.unwrap(), None);
    let alone = s.resolv_sources("ns0").await.unwrap().unwrap();
    assert_eq!((alone.written, alone.endpoints.len()), (true, 0));

    let web = s
        .connect(&connect_spec("web", "ns0"), None, false)
        .await
        .unwrap();
    // Connect order is creation time (milliseconds), then the random id: a millisecond apart.
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    let mut second = connect_spec("db", "ns0");
    second.endpoint.ifname = "eth1".into();
    let db = s.connect(&second, None, false).await.unwrap();
    s.connect(&connect_spec("web", "ns1"), None, false)
        .await
        .unwrap();
    let got = s.resolv_sources("ns0").await.unwrap().unwrap();
    assert!(got.written);
    assert_eq!(
        got.endpoints,
        vec![
            (web.network_id.clone(), web.addresses.clone()),
            (other.id.clone(), db.addresses.clone()),
        ]
    );
    assert_eq!(db.network_id, other.id);

    s.mark_deleting::<EndpointRow>(&web.id).await.unwrap();
    let got = s.resolv_sources("ns0").await.unwrap().unwrap();
    assert_eq!(
        got.endpoints,
        vec![(other.id.clone(), db.addresses.clone())]
    );

    let adopted = NamespaceSpec {
        adopted_path: Some("/proc/1/ns/net".into()),
        ..ns_spec("ad")
    };
    s.create_namespace(&adopted, None, false).await.unwrap();
    assert!(!s.resolv_sources("ad").await.unwrap().unwrap().written);
    let ns1 = s.namespace_by_name("ns1").await.unwrap().unwrap();
    sqlx::query("UPDATE namespaces SET deleting = 1 WHERE id = ?")
        .bind(&ns1.id)
        .execute(&s.pool)
        .await
        .unwrap();
    assert!(!s.resolv_sources("ns1").await.unwrap().unwrap().written);
}

/// A namespace's place is read once and kept by name (a change behind the store's back is
/// not seen), and dropped when its row is deleted, so a namespace made again under the same
/// name is found where it is now; other places stay kept. At most `PLACES_CAP` are kept.
#[tokio::test]
async fn namespace_places_are_kept_until_their_row_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with(&dir.path().join("t.db"), &["10.7.0.0/24"], 2).await;
    assert_eq!(s.namespace_place("nope").await.unwrap(), None);
    let first = s.namespace_place("ns0").await.unwrap().unwrap();
    assert_eq!(
        (first.adopted_path.as_ref(), first.adopted_identity.as_ref()),
        (None, None)
    );
    let ns1 = s.namespace_place("ns1").await.unwrap().unwrap();
    sqlx::query("UPDATE namespaces SET adopted_path = '/elsewhere'")
        .execute(&s.pool)
        .await
        .unwrap();
    assert_eq!(
        s.namespace_place("ns0").await.unwrap().as_ref(),
        Some(&first)
    );

    s.mark_deleting::<NamespaceRow>(&first.id).await.unwrap();
    assert!(s.delete_row::<NamespaceRow>(&first.id).await.unwrap());
    assert_eq!(s.namespace_place("ns0").await.unwrap(), None);
    let adopted = NamespaceSpec {
        adopted_path: Some("/proc/1/ns/net".into()),
        ..ns_spec("ns0")
    };
    let again = s.create_namespace(&adopted, None, false).await.unwrap();
    let place = s.namespace_place("ns0").await.unwrap().unwrap();
    assert_eq!(place.id, again.id);
    assert_eq!(
        place.adopted_path.as_deref(),
        Some(Path::new("/proc/1/ns/net"))
    );
    // ns1's place was kept through the other's deletion: still the one read before.
    assert_eq!(s.namespace_place("ns1").await.unwrap().as_ref(), Some(&ns1));

    for i in 2..1100 {
        s.create_namespace(&ns_spec(&format!("ns{i}")), None, false)
            .await
            .unwrap();
        s.namespace_place(&format!("ns{i}")).await.unwrap().unwrap();
    }
    assert!(s.places.lock().unwrap().by_name.len() <= 1024);
}

/// A namespace's creation keeps its place (the Connect that follows finds it without a
/// query), equal to what a read of the row gives; a dry run keeps nothing.
#[tokio::test]
async fn a_created_namespace_s_place_is_kept_as_a_read_gives_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with(&dir.path().join("t.db"), &["10.7.0.0/24"], 0).await;
    let adopted = NamespaceSpec {
        adopted_path: Some("/proc/1/ns/net".into()),
        ..ns_spec("adopted")
    };
    s.create_namespace(&ns_spec("made"), None, false)
        .await
        .unwrap();
    s.create_namespace_as(&adopted, Some("4026531840:4".into()), None, false)
        .await
        .unwrap();
    s.create_namespace(&ns_spec("planned"), None, true)
        .await
        .unwrap();
    let kept = |name: &str| s.places.lock().unwrap().by_name.get(name).cloned();
    assert!(kept("planned").is_none(), "a dry run keeps no place");
    for name in ["made", "adopted"] {
        let at_create = kept(name).expect("kept at its creation");
        s.places.lock().unwrap().by_name.remove(name);
        let read = s.namespace_place(name).await.unwrap().unwrap();
        assert_eq!(at_create, read, "{name}");
    }
}

/// A creation keeps its place only if no row was deleted while it waited for the write turn
/// (the epoch is read before it): the deletion may have been of a row of that name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_creation_that_met_a_deletion_keeps_no_place() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with(&dir.path().join("t.db"), &["10.7.0.0/24"], 0).await;
    let turn = s.writer().await.unwrap();
    let create = tokio::spawn({
        let s = s.clone();
        async move { s.create_namespace(&ns_spec("late"), None, false).await }
    });
    // The create has read the epoch and waits for the write turn.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!create.is_finished());
    s.forget_place("some deleted row");
    drop(turn);
    create.await.unwrap().unwrap();
    assert!(!s.places.lock().unwrap().by_name.contains_key("late"));
}

/// A place read before a namespace row was deleted is not kept after it (the deletion may be
/// of that very row): the epoch moved. One read after the deletion is kept.
#[tokio::test]
async fn a_place_read_before_a_deletion_is_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with(&dir.path().join("t.db"), &["10.7.0.0/24"], 2).await;
    let row = s.namespace_by_name("ns0").await.unwrap().unwrap();
    let stale = NsPlace {
        id: row.id.clone(),
        adopted_path: None,
        adopted_identity: None,
    };
    let before = s.places_epoch();
    s.mark_deleting::<NamespaceRow>(&row.id).await.unwrap();
    assert!(s.delete_row::<NamespaceRow>(&row.id).await.unwrap());
    s.keep_place("ns0", &stale, before);
    assert!(!s.places.lock().unwrap().by_name.contains_key("ns0"));
    s.keep_place("ns0", &stale, s.places_epoch());
    assert!(s.places.lock().unwrap().by_name.contains_key("ns0"));
}

/// The writer keeps the statements its in-place transactions prepared: a second connect
/// prepares nothing new. Whether the store is closed or only dropped, they are finalized
/// before the connection closes: no file descriptor of the database is left open (SQLite
/// refuses to close a connection with statements left, and keeps its file open). Closed,
/// the connections close one after another and the last one removes the WAL file; dropped,
/// they close at once, and two that close together can each find the other still open and
/// leave the file (harmless: the next open takes it up), so only the descriptors count.
#[tokio::test]
async fn kept_statements_are_reused_and_finalized_before_the_connection_closes() {
    for close in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let s = store_with(&path, &["10.88.0.0/24"], 3).await;
        let kept = |s: &Store| {
            let s = s.clone();
            async move { s.writer().await.unwrap().statements.borrow().len() }
        };
        s.connect(&connect_spec("web", "ns0"), None, false)
            .await
            .unwrap();
        let after_one = kept(&s).await;
        assert!(after_one >= 5, "{after_one} statements kept");
        s.connect(&connect_spec("web", "ns1"), None, false)
            .await
            .unwrap();
        assert_eq!(kept(&s).await, after_one, "the second connect reused them");
        if close {
            s.close().await;
        } else {
            drop(s);
        }
        let open_files = || {
            std::fs::read_dir("/proc/self/fd")
                .unwrap()
                .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                .filter(|target| target.starts_with(dir.path()))
                .count()
        };
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while open_files() > 0 && std::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(open_files(), 0, "a connection stayed open (close: {close})");
        if close {
            assert!(
                !dir.path().join("t.db-wal").exists(),
                "the last close kept the WAL"
            );
        }
        let again = Store::open(&path).await.unwrap();
        assert_eq!(again.list_endpoints(None).await.unwrap().len(), 2);
        again.close().await;
    }
}

/// A write transaction dropped before it ended (an error, a cancelled call) is rolled back
/// by the next writer: what it wrote is gone, and writes go on.
#[tokio::test]
async fn a_dropped_write_transaction_is_rolled_back_by_the_next_writer() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with(&dir.path().join("t.db"), &["10.88.0.0/24"], 1).await;
    {
        let mut tx = s.begin_write().await.unwrap();
        sqlx::query("DELETE FROM namespaces")
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    s.create_namespace(&ns_spec("later"), None, false)
        .await
        .unwrap();
    assert_eq!(namespace_names(&s).await, ["later", "ns0"]);
}

/// The names of every namespace, in listing order.
async fn namespace_names(s: &Store) -> Vec<String> {
    let rows = s.list_namespaces().await.unwrap();
    rows.into_iter().map(|n| n.spec.name).collect()
}

/// A long listing, stepped with the worker's other tasks handed over (`block_in_place` on
/// a multi-threaded runtime), gives every row, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_listing_gives_every_row_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("t.db")).await.unwrap();
    let n = 197;
    for i in 0..n {
        s.create_namespace(&ns_spec(&format!("ns{i:04}")), None, false)
            .await
            .unwrap();
    }
    let want: Vec<String> = (0..n).map(|i| format!("ns{i:04}")).collect();
    assert_eq!(namespace_names(&s).await, want);
}

/// A Connect's kept statements are prepared once: at later uses SQLite runs them as they are
/// (`SQLITE_STMTSTATUS_REPREPARE` stays 0). A subquery's `LIMIT` bound as a parameter made it
/// prepare the precondition query again at every Connect.
#[tokio::test]
async fn a_connects_kept_statements_are_never_prepared_again() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with(&dir.path().join("t.db"), &["10.88.0.0/16"], 20).await;
    for i in 0..20 {
        s.connect(&connect_spec("web", &format!("ns{i}")), None, false)
            .await
            .unwrap();
    }
    let w = s.writer().await.unwrap();
    let kept = w.statements.borrow().reprepares();
    assert!(kept.len() >= 5, "{} statements kept", kept.len());
    let again: Vec<_> = kept.iter().filter(|(_, n)| *n > 0).collect();
    assert!(again.is_empty(), "prepared again: {again:?}");
}

/// A row this store deleted reads as none, for every kind, without a query: with the pool
/// closed, reads of it still answer, where a read of a row it did not delete fails
/// (store/gone.rs; a Disconnect's echoes read its uid three times per notification).
#[tokio::test]
async fn a_row_deleted_lately_reads_as_none_without_a_query() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with(&dir.path().join("t.db"), &["10.88.0.0/24"], 2).await;
    let gone = s
        .connect(&connect_spec("web", "ns0"), None, false)
        .await
        .unwrap();
    let kept = s
        .connect(&connect_spec("web", "ns1"), None, false)
        .await
        .unwrap();
    s.mark_deleting::<EndpointRow>(&gone.id).await.unwrap();
    assert!(s.delete_row::<EndpointRow>(&gone.id).await.unwrap());
    // The live one out of the kept rows, so a read of it has to query.
    s.forget::<EndpointRow>(&kept.id);
    s.pool.close().await;
    assert!(s.endpoint_by_id(&gone.id).await.unwrap().is_none());
    assert!(s.link_by_id(&gone.id).await.unwrap().is_none());
    assert!(s.network_by_id(&gone.id).await.unwrap().is_none());
    assert!(s.namespace_by_id(&gone.id).await.unwrap().is_none());
    assert!(
        s.endpoint_by_id(&kept.id).await.is_err(),
        "a row it did not delete is read from the database"
    );
}

/// A delete that removed nothing (the row was not marked) leaves its uid readable: only a
/// row really deleted reads as gone.
#[tokio::test]
async fn a_delete_that_removed_nothing_leaves_the_row_readable() {
    let dir = tempfile::tempdir().unwrap();
    let (s, live) = store_with_endpoint(&dir.path().join("t.db")).await;
    assert!(!s.delete_row::<EndpointRow>(&live.id).await.unwrap());
    let read = s.endpoint_by_id(&live.id).await.unwrap();
    assert_eq!(read.map(|r| r.id), Some(live.id));
}

/// A Ready status for an endpoint at generation 1, with `mac` observed.
fn ready_with(mac: &str) -> (Status, EndpointObserved) {
    (
        Status {
            phase: Phase::Ready,
            observed_generation: 1,
            message: String::new(),
        },
        EndpointObserved { mac: mac.into() },
    )
}

/// The phase column of endpoint `id`, read straight from the database.
async fn stored_phase(s: &Store, id: &str) -> String {
    sqlx::query_scalar("SELECT phase FROM endpoints WHERE id = ?")
        .bind(id)
        .fetch_one(&s.pool)
        .await
        .unwrap()
}

/// The status write of a cached endpoint goes behind its answer (store/behind.rs): the call
/// returns while the UPDATE is held, the cached copy already reads the new status, a
/// listing waits for the write, and a status the row already has writes nothing.
#[tokio::test]
async fn a_cached_endpoints_status_is_written_behind_and_a_later_listing_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let (s, ep) = store_with_endpoint(&dir.path().join("t.db")).await;
    let (ready, seen) = ready_with("02:00:00:00:00:01");
    let hold = s.behind.gate.clone().write_owned().await;
    let changed = tokio::time::timeout(
        Duration::from_secs(5),
        s.set_status::<EndpointRow>(&ep.id, &ready, &seen),
    )
    .await
    .expect("the status write waited for its UPDATE");
    assert!(changed.unwrap());
    let cached = s.endpoint_by_id(&ep.id).await.unwrap().unwrap();
    assert_eq!(
        (cached.status, cached.observed),
        (ready.clone(), seen.clone())
    );
    assert_eq!(
        stored_phase(&s, &ep.id).await,
        "pending",
        "the UPDATE is held"
    );
    let mut listing = tokio::spawn({
        let s = s.clone();
        async move { s.list_endpoints(None).await.unwrap() }
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(100), &mut listing)
            .await
            .is_err(),
        "a listing read the database while a status write was in flight"
    );
    drop(hold);
    let listed = listing.await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].status.clone(), listed[0].observed.clone()),
        (ready.clone(), seen.clone())
    );
    assert_eq!(stored_phase(&s, &ep.id).await, "ready");
    // The same status again: nothing differs, nothing is written.
    assert!(
        !s.set_status::<EndpointRow>(&ep.id, &ready, &seen)
            .await
            .unwrap()
    );
}

/// A clean stop waits for a status write in flight: the write turn it holds is the one
/// `close` takes, so the status is in the file when the store opens again.
#[tokio::test]
async fn close_waits_for_a_status_write_sent_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let (s, ep) = store_with_endpoint(&path).await;
    let (ready, seen) = ready_with("02:00:00:00:00:02");
    let hold = s.behind.gate.clone().write_owned().await;
    assert!(
        s.set_status::<EndpointRow>(&ep.id, &ready, &seen)
            .await
            .unwrap()
    );
    let mut closing = tokio::spawn({
        let s = s.clone();
        async move { s.close().await }
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(100), &mut closing)
            .await
            .is_err(),
        "close went ahead of a status write in flight"
    );
    drop(hold);
    closing.await.unwrap();
    drop(s);
    let again = Store::open(&path).await.unwrap();
    let row = again.endpoint_by_id(&ep.id).await.unwrap().unwrap();
    assert_eq!((row.status, row.observed), (ready, seen));
}

/// The rows whose status write sent behind did not land, as `s` tells of them.
fn told_of_failed_writes(
    s: &Store,
) -> std::sync::Arc<std::sync::Mutex<Vec<(&'static str, String)>>> {
    let failed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    s.on_failed_status_write(Box::new({
        let failed = failed.clone();
        move |table, id| failed.lock().unwrap().push((table, id.to_string()))
    }));
    failed
}

/// A status write that fails behind its answer drops the cached copy, so reads go back to
/// what the database holds (the earlier status), tells of the row (the controller queues its
/// reconcile again), and the next write is not skipped.
#[tokio::test]
async fn a_status_write_that_fails_behind_drops_the_cached_copy() {
    let dir = tempfile::tempdir().unwrap();
    let (s, ep) = store_with_endpoint(&dir.path().join("t.db")).await;
    let failed = told_of_failed_writes(&s);
    s.execute_for_tests(Store::REFUSE_STATUS).await;
    let (ready, seen) = ready_with("02:00:00:00:00:03");
    assert!(
        s.set_status::<EndpointRow>(&ep.id, &ready, &seen)
            .await
            .unwrap()
    );
    assert_eq!(
        s.list_endpoints(None).await.unwrap()[0].status.phase,
        Phase::Pending
    );
    assert_eq!(*failed.lock().unwrap(), [("endpoints", ep.id.clone())]);
    let read = s.endpoint_by_id(&ep.id).await.unwrap().unwrap();
    assert_eq!(read.status.phase, Phase::Pending);
    assert!(s.cached::<EndpointRow>(&ep.id).is_none());
    s.execute_for_tests("DROP TRIGGER refuse_status").await;
    assert!(
        s.set_status::<EndpointRow>(&ep.id, &ready, &seen)
            .await
            .unwrap()
    );
    assert_eq!(stored_phase(&s, &ep.id).await, "ready");
}

/// A write that comes after a status write sent behind lands after it (it waits for the
/// write turn the status write holds): a Disconnect's mark, here, which the row keeps.
#[tokio::test]
async fn a_write_after_a_status_write_sent_behind_lands_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let (s, ep) = store_with_endpoint(&dir.path().join("t.db")).await;
    let (ready, seen) = ready_with("02:00:00:00:00:04");
    let hold = s.behind.gate.clone().write_owned().await;
    assert!(
        s.set_status::<EndpointRow>(&ep.id, &ready, &seen)
            .await
            .unwrap()
    );
    let mut marking = tokio::spawn({
        let (s, id) = (s.clone(), ep.id.clone());
        async move { s.mark_endpoint_deleting_kept(&id).await.unwrap() }
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(100), &mut marking)
            .await
            .is_err(),
        "a write went ahead of a status write in flight"
    );
    drop(hold);
    marking.await.unwrap();
    let row = s.list_endpoints(None).await.unwrap().remove(0);
    assert!(row.deleting);
    assert_eq!(row.observed, seen);
    // Had the mark gone first, the status write would have turned it back to Ready.
    assert_eq!(row.status.phase, Phase::Deleting);
    assert_eq!(stored_phase(&s, &ep.id).await, "deleting");
}

/// A status write whose task is dropped before it ran (a runtime shutting down) drops the
/// row's cached copy, tells of the row, and ends its number, so no later read waits for it.
#[test]
fn a_status_write_dropped_unrun_drops_the_cached_copy_and_is_told_of() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let rt = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let first = rt();
    let (s, ep, failed) = first.block_on(async {
        let (s, ep) = store_with_endpoint(&path).await;
        let failed = told_of_failed_writes(&s);
        let hold = s.behind.gate.clone().write_owned().await;
        let (ready, seen) = ready_with("02:00:00:00:00:05");
        assert!(
            s.set_status::<EndpointRow>(&ep.id, &ready, &seen)
                .await
                .unwrap()
        );
        assert_eq!(s.cached::<EndpointRow>(&ep.id).unwrap().status, ready);
        // The gate stays shut: the runtime goes with the write's task still waiting at it.
        std::mem::forget(hold);
        (s, ep, failed)
    });
    drop(first);
    assert!(s.cached::<EndpointRow>(&ep.id).is_none());
    assert_eq!(*failed.lock().unwrap(), [("endpoints", ep.id.clone())]);
    rt().block_on(async {
        let listed = tokio::time::timeout(Duration::from_secs(5), s.list_endpoints(None))
            .await
            .expect("a read waited for a write that will never run")
            .unwrap();
        assert_eq!(listed[0].status.phase, Phase::Pending);
    });
}

/// `undo_connect` takes a committed connect back whole: the row, its leases and published
/// ports, its request id, and its subnets' cursors where they still are where it moved them.
/// A cursor another connect has moved on since stays where that one put it.
#[tokio::test]
async fn undo_connect_takes_back_the_row_its_request_and_its_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with(
        &dir.path().join("w.db"),
        &["10.88.0.0/24", "fd00:88::/64"],
        3,
    )
    .await;
    let record = RequestRecord {
        id: "req-undo".into(),
        method: "Connect",
        fingerprint: "f".into(),
    };
    let mut spec = connect_spec("web", "ns0");
    spec.endpoint.ports = vec![crate::model::PortSpec {
        host_ip: None,
        host_port: 8080,
        host_port_end: 8080,
        container_port: 80,
        container_port_end: 80,
        protocol: crate::model::Protocol::Tcp,
    }];
    let id = s.fresh_uid();
    let (row, undo) = s
        .connect_undoable(
            &id,
            &spec,
            &crate::model::port::DEFAULT_LOCAL_PORT_RANGE,
            Some(&record),
            false,
        )
        .await
        .unwrap();
    assert_eq!(row.addresses[0].addr().to_string(), "10.88.0.2");
    assert!(s.undo_connect(&undo).await.unwrap());
    assert!(s.endpoint_by_id(&id).await.unwrap().is_none());
    assert!(s.endpoint_by_names("web", "ns0").await.unwrap().is_none());
    assert_eq!(s.past_request("req-undo").await.unwrap(), None);
    assert!(s.port_mappings(None).await.unwrap().is_empty());
    assert!(
        !s.undo_connect(&undo).await.unwrap(),
        "nothing left to undo"
    );

    // The same request id, the same ports and the same addresses are free again.
    let again = s.connect(&spec, Some(&record), false).await.unwrap();
    let addrs: Vec<String> = again
        .addresses
        .iter()
        .map(|a| a.addr().to_string())
        .collect();
    assert_eq!(addrs, ["10.88.0.2", "fd00:88::2"]);

    // A cursor moved on by a later connect is not moved back.
    let id = s.fresh_uid();
    let (_, undo) = s
        .connect_undoable(
            &id,
            &connect_spec("web", "ns1"),
            &crate::model::port::DEFAULT_LOCAL_PORT_RANGE,
            None,
            false,
        )
        .await
        .unwrap();
    let later = s
        .connect(&connect_spec("web", "ns2"), None, false)
        .await
        .unwrap();
    assert_eq!(later.addresses[0].addr().to_string(), "10.88.0.4");
    assert!(s.undo_connect(&undo).await.unwrap());
    let next = s
        .connect(&connect_spec("web", "ns1"), None, false)
        .await
        .unwrap();
    assert_eq!(
        next.addresses[0].addr().to_string(),
        "10.88.0.5",
        "the cursor stayed where the later connect put it"
    );
}
