//! Concurrency (issue 4): 32 clients churn create namespace -> connect (publishing a port of
//! their own) -> disconnect -> delete against one /24 network for a bounded time, each ending
//! connected. Every call must succeed; no two live endpoints ever hold the same address (as
//! their Connect answers say, and as GetNetwork lists them while the churn runs); at the end
//! nothing leaked (veths, leases, DNAT elements, namespace files) and the store agrees with
//! the kernel (each live endpoint's eth0 holds exactly its lease).

mod common;
mod heal;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use common::*;
use heal::*;
use weft::v1::{
    CreateNamespaceRequest, DeleteNamespaceRequest, DisconnectRequest, GetNetworkRequest, Phase,
};

const NET: &str = "churn";
const SUBNET: &str = "10.232.0.0/24";
/// Clients churning at once (so at most this many live endpoints: the /24 holds 253).
const CLIENTS: u32 = 32;
/// How long the clients keep starting new rounds.
const CHURN_FOR: Duration = Duration::from_secs(15);
/// At most this many rounds per client (host ports are 40000 + client * 100 + round).
const MAX_ROUNDS: u32 = 60;

/// A live endpoint at the end: namespace, address (CIDR), host port.
type Live = (String, String, u32);

/// One client: rounds of create -> connect -> disconnect -> delete until the time is up; the
/// last round stays connected. Failures are recorded, not panicked, so every client's are seen.
async fn client(
    c: weft::Client,
    n: u32,
    until: Instant,
    holders: Arc<Mutex<HashMap<String, String>>>,
    failures: Arc<Mutex<Vec<String>>>,
) -> (u32, Option<Live>) {
    let fail = |m: String| failures.lock().unwrap().push(m);
    for round in 0..MAX_ROUNDS {
        let ns = format!("c{n}r{round}");
        let port = 40000 + n * 100 + round;
        let r = rpc(c.namespaces().create_namespace(CreateNamespaceRequest {
            namespace: Some(ns_msg(&ns)),
            ..Default::default()
        }))
        .await;
        match r.map(|r| r.namespace.and_then(|n| n.status).map(|s| s.phase())) {
            Ok(Some(Phase::Ready)) => {}
            other => {
                fail(format!("CreateNamespace {ns}: {other:?}"));
                return (round, None);
            }
        }
        let ep = match rpc(c
            .networks()
            .connect(connect_req(NET, &ns, vec![tcp(port, 80)])))
        .await
        {
            Ok(r) => r.endpoint.expect("endpoint"),
            Err(s) => {
                fail(format!("Connect {ns}: {s:?}"));
                return (round, None);
            }
        };
        let phase = ep.status.as_ref().map(|s| s.phase());
        if phase != Some(Phase::Ready) {
            fail(format!("Connect {ns}: answered {:?}", ep.status));
        }
        let addr = ep.ipv4_address.clone();
        if let Some(other) = holders.lock().unwrap().insert(addr.clone(), ns.clone()) {
            fail(format!(
                "{ns} was given {addr}, which {other} holds (not yet disconnected)"
            ));
        }
        let last = round + 1 == MAX_ROUNDS || Instant::now() >= until;
        if last {
            return (round + 1, Some((ns, addr, port)));
        }
        // The address is free from the moment the disconnect may release it.
        holders.lock().unwrap().remove(&addr);
        if let Err(s) = rpc(c.networks().disconnect(DisconnectRequest {
            network: NET.into(),
            namespace: ns.clone(),
            ..Default::default()
        }))
        .await
        {
            fail(format!("Disconnect {ns}: {s:?}"));
            return (round, None);
        }
        if let Err(s) = rpc(c.namespaces().delete_namespace(DeleteNamespaceRequest {
            name: ns.clone(),
            ..Default::default()
        }))
        .await
        {
            fail(format!("DeleteNamespace {ns}: {s:?}"));
            return (round, None);
        }
    }
    unreachable!("the last round returns")
}

#[tokio::test(flavor = "multi_thread")]
async fn thirty_two_clients_churn_without_leaks_or_duplicate_addresses() {
    let mut sb = Sandbox::builder("churn").start().await;
    let c = sb.client();
    create_net(&c, NET, "wchurn", SUBNET).await;

    let holders: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let t0 = Instant::now();
    let until = t0 + CHURN_FOR;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..CLIENTS {
        tasks.spawn(client(
            c.clone(),
            n,
            until,
            holders.clone(),
            failures.clone(),
        ));
    }
    // Meanwhile, GetNetwork never lists one address twice.
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (c, stop, failures) = (c.clone(), stop.clone(), failures.clone());
        tokio::spawn(async move {
            let mut samples = 0;
            while !stop.load(Ordering::Relaxed) {
                let n = rpc(c
                    .networks()
                    .get_network(GetNetworkRequest { name: NET.into() }))
                .await
                .expect("GetNetwork")
                .network
                .expect("network");
                let mut seen = BTreeMap::new();
                for e in &n.endpoints {
                    if let Some(o) = seen.insert(e.ipv4_address.clone(), e.namespace.clone()) {
                        failures.lock().unwrap().push(format!(
                            "GetNetwork lists {} for both {o} and {}",
                            e.ipv4_address, e.namespace
                        ));
                    }
                }
                samples += 1;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            samples
        })
    };
    let results = tokio::time::timeout(CHURN_FOR + Duration::from_secs(120), tasks.join_all())
        .await
        .expect("the clients did not finish within 2 min of the churn's end");
    stop.store(true, Ordering::Relaxed);
    let samples = watcher.await.expect("the watcher");
    let rounds: u32 = results.iter().map(|r| r.0).sum();
    eprintln!(
        "{CLIENTS} clients ran {rounds} rounds ({} requests) in {:?}; {samples} GetNetwork samples",
        rounds * 4 - CLIENTS * 2,
        t0.elapsed()
    );
    let failures = failures.lock().unwrap().clone();
    assert_no_problems("the churn", &failures);
    assert!(
        rounds >= 2 * CLIENTS,
        "only {rounds} rounds ran: the churn churned too little to prove anything"
    );
    let live: Vec<Live> = results.into_iter().filter_map(|r| r.1).collect();
    assert_eq!(live.len(), CLIENTS as usize);

    // The API: exactly the live namespaces and endpoints, as answered.
    let view = wait_all_ready(&sb, Duration::from_secs(30)).await;
    let want_ns: BTreeSet<&str> = live.iter().map(|l| l.0.as_str()).collect();
    let have_ns: BTreeSet<&str> = view.namespaces.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(have_ns, want_ns, "ListNamespaces after the churn");
    let net = view.network(NET);
    let mut problems = Vec::new();
    for (ns, cidr, port) in &live {
        match net.endpoints.iter().find(|e| &e.namespace == ns) {
            Some(e) if &e.ipv4_address == cidr && e.published_ports[0].host_port == *port => {}
            other => problems.push(format!(
                "{ns}: answered {cidr} port {port}, lists {other:?}"
            )),
        }
    }
    if net.endpoints.len() != live.len() {
        problems.push(format!(
            "{} endpoints listed, {} live",
            net.endpoints.len(),
            live.len()
        ));
    }
    if net.usage[0].leased != live.len() as u64 {
        problems.push(format!(
            "{} leases for {} live endpoints",
            net.usage[0].leased,
            live.len()
        ));
    }
    let addrs: BTreeSet<&str> = live.iter().map(|l| l.1.as_str()).collect();
    if addrs.len() != live.len() {
        problems.push(format!(
            "duplicate addresses among the live endpoints: {live:?}"
        ));
    }
    assert_no_problems("the API after the churn", &problems);

    // The kernel: no leaks, and it matches the store.
    let (k, db) = stop_and_read(&mut sb).await;
    let mut problems = consistency_problems(&k, &db, &[]);
    let wv = k.host.iter().filter(|i| i.name.starts_with("wv")).count();
    if wv != live.len() {
        problems.push(format!(
            "{wv} wv* interfaces in the host for {} endpoints",
            live.len()
        ));
    }
    let elems = k.dnat_elems();
    let want: BTreeSet<(String, String)> = live
        .iter()
        .map(|(_, cidr, port)| {
            let (m, e) = dnat_elem("", "tcp", *port, addr_part(cidr), 80);
            (m.to_string(), e)
        })
        .collect();
    if elems != want {
        problems.push(format!(
            "DNAT elements: extra {:?}, missing {:?}",
            elems.difference(&want).collect::<Vec<_>>(),
            want.difference(&elems).collect::<Vec<_>>()
        ));
    }
    if k.ns.len() != live.len() {
        problems.push(format!(
            "{} files in the netns dir for {} live namespaces",
            k.ns.len(),
            live.len()
        ));
    }
    if db.leases.len() != live.len() || db.mappings.len() != live.len() {
        problems.push(format!(
            "{} leases and {} port mappings stored for {} endpoints",
            db.leases.len(),
            db.mappings.len(),
            live.len()
        ));
    }
    assert_no_problems("store vs kernel after the churn", &problems);
}
