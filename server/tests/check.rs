//! The bulk check on the real kernel (issue 14): the periodic resync and the start-up
//! re-check read each namespace once, from inside (interfaces, addresses, weft's IPv4 and
//! IPv6 routes), and reconcile only what differs.
//!
//! - drift made behind weftd's back (a link's MTU, an endpoint's address, its default route,
//!   its whole veth, a bridge port's hairpin mode) is found and repaired, while the
//!   converged objects see no reconcile: GetSystemInfo's reconciles counter moves only by
//!   the keys every pass queues (the network, the firewall) and the repairs, where a
//!   reconcile of every object per pass moved it by more than a dozen;
//! - weft's own writes (a Connect's) do not make the next pass read the host; a change made
//!   right after one is still repaired within a pass or two;
//! - a converged restart comes back Ready with zero kernel writes and without reconciling
//!   the namespaces and endpoints the check found matching, and the monitor then hears each
//!   namespace by the id the check took from the host's veths.
//!
//! Counter bounds scale with the time measured, so a loaded machine only makes them looser.

mod common;
mod heal;

use std::time::{Duration, Instant};

use common::*;
use heal::*;

const NET: &str = "chk";
const BRIDGE: &str = "wchk";
const SUBNET: &str = "10.243.0.0/24";
/// The network is dual-stack, so the check's one route dump must bring both families: a
/// missed IPv6 default route would make every endpoint differ on every pass.
const SUBNET6: &str = "fd00:243::/64";
/// Namespaces connected to the network: the converged objects the counter bounds are about.
const SPACES: usize = 6;
/// Where weftd serves its metrics, in the sandbox's host namespace.
const METRICS: &str = "127.0.0.1:9465";

/// The bulk checks' counters from `/metrics`: (namespaces read, namespaces left quiet).
fn check_counters(sb: &Sandbox) -> (f64, f64) {
    let v = sb.metrics(
        METRICS,
        &[
            "weft_check_namespaces_read_total",
            "weft_check_namespaces_quiet_total",
        ],
    );
    (v[0], v[1])
}

/// A sandbox with `--resync resync`, the dual-stack network, [`SPACES`] connected namespaces `c0`..,
/// and a LinkService veth `vchk` (MTU 1450) into namespace `l1`; all Ready and settled.
async fn setup(tag: &str, resync: u64) -> Sandbox {
    let sb = Sandbox::builder(tag)
        .resync(resync)
        .args(&["--metrics", METRICS])
        .start()
        .await;
    let c = sb.client();
    let subnet = |s: &str| weft::v1::Subnet {
        subnet: s.into(),
        ..Default::default()
    };
    rpc(c.networks().create_network(weft::v1::CreateNetworkRequest {
        network: Some(weft::v1::Network {
            name: NET.into(),
            bridge_name: BRIDGE.into(),
            subnets: vec![subnet(SUBNET), subnet(SUBNET6)],
            ..Default::default()
        }),
        ..Default::default()
    }))
    .await
    .unwrap_or_else(|s| panic!("CreateNetwork {NET}: {s:?}"));
    for i in 0..SPACES {
        let ns = format!("c{i}");
        create_ns(&c, &ns).await;
        connect_ok(&c, connect_req(NET, &ns, vec![])).await;
    }
    create_ns(&c, "l1").await;
    let mut l = veth(("", "vchk", &[]), ("l1", "vchk1", &["10.244.0.2/24"]));
    l.mtu = 1450;
    create_link(&c, l).await;
    wait_all_ready(&sb, Duration::from_secs(30)).await;
    // Late notifications (a new port's, the link-local addresses' end of duplicate address
    // detection, which the monitor drops) come for a second or two after they came up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    sb
}

/// Reconciles since start-up.
async fn reconciles(sb: &Sandbox) -> u64 {
    info(&sb.client()).await.reconciles
}

/// The most reconciles an idle window of `elapsed` may show with `--resync 1`: per pass the
/// network and the firewall, plus the firewall's own 1 s check, with a pass of slack at each
/// end. A reconcile of every object per pass adds more than `SPACES * 2` per second.
fn idle_bound(elapsed: Duration) -> u64 {
    3 * (elapsed.as_secs() + 2)
}

/// The host end of the endpoint in `ns`: `wv` and the first 12 characters of its mark.
fn host_end(sb: &Sandbox, ns: &str) -> String {
    let eth0 = sb.must_link(ns, "eth0");
    let uid = ifalias(&eth0)
        .strip_prefix("weft:")
        .unwrap_or_else(|| panic!("eth0 in {ns} is not marked: {eth0}"))
        .to_string();
    format!("wv{}", &uid[..12])
}

/// True when `dev` in the host is a bridge port in hairpin mode.
fn hairpin(sb: &Sandbox, dev: &str) -> bool {
    let v = sb.ip_json("", &["-d", "link", "show", "dev", dev]);
    v[0]["linkinfo"]["info_slave_data"]["hairpin"] == serde_json::Value::Bool(true)
}

/// An idle converged host: the resync passes reconcile only the network and the firewall,
/// and read mostly nothing: the namespaces (and the host) they found clean, which the
/// monitor has not heard from since, stay unread but for their turn every tenth pass. Then a
/// port's hairpin mode turned on by hand (only the bridge's own port message tells) is
/// found and repaired.
#[tokio::test(flavor = "multi_thread")]
async fn an_idle_check_reconciles_nothing_converged_and_a_hairpin_set_by_hand_is_repaired() {
    let sb = setup("chkidle", 1).await;
    let started = Instant::now();
    let before = reconciles(&sb).await;
    let (read0, quiet0) = check_counters(&sb);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (read1, quiet1) = check_counters(&sb);
    // 8 namespaces and the host per pass: a pass that read them all would make `read` grow
    // at least as fast as `quiet`.
    let (read, quiet) = (read1 - read0, quiet1 - quiet0);
    eprintln!("6 s of --resync 1: {read} namespaces read, {quiet} left quiet");
    assert!(
        quiet >= 9.0 && quiet > 3.0 * read,
        "over 6 s of --resync 1: {read} namespaces read, {quiet} left quiet"
    );
    let moved = reconciles(&sb).await - before;
    let bound = idle_bound(started.elapsed());
    assert!(
        moved <= bound,
        "{moved} reconciles in {:?} of idle with --resync 1 (at most {bound}: the converged \
         namespaces, endpoints and link must not be reconciled)",
        started.elapsed()
    );

    // c0 publishes no port: its bridge port is out of hairpin mode, and is put back out.
    let dev = host_end(&sb, "c0");
    assert!(
        !hairpin(&sb, &dev),
        "{dev} is in hairpin mode to begin with"
    );
    let drift_before = info(&sb.client()).await.drift_repairs;
    sb.host_ok(&[
        "ip",
        "link",
        "set",
        "dev",
        &dev,
        "type",
        "bridge_slave",
        "hairpin",
        "on",
    ]);
    assert!(hairpin(&sb, &dev), "hairpin on did not take");
    wait_for(Duration::from_secs(15), "hairpin mode back off", || {
        !hairpin(&sb, &dev)
    })
    .await;
    assert!(info(&sb.client()).await.drift_repairs > drift_before);
}

/// weft's own writes do not make the periodic check read the host: a Connect's veth, port
/// and marks are the echo of its reconcile, so the next pass leaves the host unread and
/// queues the new objects instead (reconciles that write nothing). Over Connects a second
/// apart with `--resync 1`, the host is read on its full-read turn (one pass in ten) and
/// hardly otherwise; before, every pass after a Connect read it (a dump of every host veth).
/// A change an admin makes right after a reconcile, taken for its echo too, is still
/// repaired within a pass or two, by the reconcile the pass queues (the host's full read
/// comes only every tenth pass).
#[tokio::test(flavor = "multi_thread")]
async fn own_echoes_leave_the_host_unread_and_a_change_right_after_a_reconcile_is_repaired() {
    const CONNECTS: usize = 6;
    let sb = setup("chkecho", 1).await;
    let c = sb.client();
    let counters = || {
        let v = sb.metrics(
            METRICS,
            &[
                "weft_check_host_reads_total",
                "weft_check_echoes_queued_total",
            ],
        );
        (v[0], v[1])
    };
    let (hosts0, echoes0) = counters();
    let started = Instant::now();
    for i in 0..CONNECTS {
        let ns = format!("e{i}");
        create_ns(&c, &ns).await;
        connect_ok(&c, connect_req(NET, &ns, vec![])).await;
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    let (hosts1, echoes1) = counters();
    let (hosts, echoes) = (hosts1 - hosts0, echoes1 - echoes0);
    let passes = started.elapsed().as_secs_f64();
    eprintln!(
        "{CONNECTS} connects over ~{passes:.0} passes: the host read {hosts} times, {echoes} echoes' owners queued"
    );
    // Its full-read turn, and a pass of slack.
    let most = (passes / 10.0).ceil() + 1.0;
    assert!(
        hosts <= most,
        "the host was read by {hosts} of ~{passes:.0} passes over {CONNECTS} connects (at most {most})"
    );
    assert!(
        echoes >= CONNECTS as f64,
        "{echoes} echoes' owners queued for {CONNECTS} connects"
    );

    // Right after a link's reconcile (within its echo window), its MTU changed. A veth with
    // IPv4 addresses only: an IPv6 address finishing duplicate address detection a second
    // later would re-queue it through the monitor and hide what this is about.
    let mut l = veth(("", "vecho", &[]), ("l1", "vecho1", &["10.244.1.2/24"]));
    l.mtu = 1450;
    let made = Instant::now();
    create_link(&c, l).await;
    sb.host_ok(&["ip", "link", "set", "dev", "vecho", "mtu", "1300"]);
    let after = made.elapsed();
    assert_eq!(
        sb.must_link("", "vecho")["mtu"],
        1300,
        "the MTU did not take"
    );
    eprintln!("MTU changed {after:?} after CreateLink was sent");
    // Within 3 s: the pass after the change queues the link (the host's own full read is
    // one pass in ten, so waiting longer would let it pass without the queueing).
    wait_for(Duration::from_secs(3), "the MTU back", || {
        sb.must_link("", "vecho")["mtu"] == 1450
    })
    .await;
}

/// A dual-stack Connect is reconciled once. Its IPv6 address is added without duplicate
/// address detection (IPAM made it unique), so no notification follows a second or two
/// later: when detection ended, the kernel announced the address again, past the monitor's
/// echo window, and the endpoint was re-queued for a reconcile that wrote nothing (and its
/// namespace marked for the next resync to read).
#[tokio::test(flavor = "multi_thread")]
async fn a_dual_stack_connect_is_reconciled_once() {
    const CONNECTS: usize = 3;
    let sb = setup("chkdad", 3600).await;
    let c = sb.client();
    let endpoints = || {
        sb.metrics(
            METRICS,
            &["weft_reconciles_total{kind=\"endpoint\",result=\"ok\"}"],
        )[0]
    };
    let before = endpoints();
    let mut leased = Vec::new();
    for i in 0..CONNECTS {
        let ns = format!("d{i}");
        create_ns(&c, &ns).await;
        let ep = connect_ok(&c, connect_req(NET, &ns, vec![])).await;
        leased.push(ep.ipv6_address);
    }
    assert!(leased.iter().all(|a| !a.is_empty()), "{leased:?}");
    // Detection takes one to two seconds (a random delay of up to a second, then one probe
    // and a second's wait).
    tokio::time::sleep(Duration::from_secs(4)).await;
    // One each, and a stray re-queue of slack (the end of detection re-queued every one).
    let moved = endpoints() - before;
    assert!(
        moved >= CONNECTS as f64 && moved <= CONNECTS as f64 + 1.0,
        "{moved} endpoint reconciles for {CONNECTS} dual-stack connects over 4 s"
    );
}

/// A link's MTU, an endpoint's address, another's default route and a third one's whole
/// veth changed behind weftd's back are all repaired; the other endpoints and namespaces are
/// not reconciled meanwhile (the counter stays within the idle bound plus a few reconciles
/// per repaired object), and traffic flows again.
#[tokio::test(flavor = "multi_thread")]
async fn drift_is_repaired_and_converged_objects_are_left_alone() {
    let sb = setup("chkdrift", 1).await;
    let addr1 = sb.addrs("c1", "eth0");
    assert_eq!(addr1.len(), 2, "one address per family: {addr1:?}");
    let started = Instant::now();
    let before = reconciles(&sb).await;
    sb.host_ok(&["ip", "link", "set", "dev", "vchk", "mtu", "1300"]);
    sb.ok_in("c1", &["ip", "addr", "del", &addr1[0], "dev", "eth0"]);
    sb.ok_in("c2", &["ip", "route", "del", "default"]);
    sb.ok_in("c3", &["ip", "link", "del", "eth0"]);
    let whole = || {
        sb.must_link("", "vchk")["mtu"] == 1450
            && sb.addrs("c1", "eth0") == addr1
            && sb.routes("c2").iter().any(|r| r["dst"] == "default")
            && sb.link("c3", "eth0").is_some()
    };
    wait_for(Duration::from_secs(15), "every drift repaired", whole).await;
    let gateway = "10.243.0.1";
    for ns in ["c1", "c2", "c3"] {
        sb.assert_ping(ns, gateway).await;
    }
    // Let the repairs' own notifications settle, then count.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let moved = reconciles(&sb).await - before;
    let bound = idle_bound(started.elapsed()) + 4 * 4;
    assert!(
        moved <= bound,
        "{moved} reconciles in {:?} (at most {bound}): converged objects were reconciled",
        started.elapsed()
    );
}

/// A converged restart is Ready with zero kernel writes, and the namespaces, endpoints and
/// link the start-up check found matching were confirmed without a reconcile of their own.
#[tokio::test(flavor = "multi_thread")]
async fn a_converged_restart_confirms_ready_without_reconciling_or_writing() {
    let mut sb = setup("chkrst", 3600).await;
    sb.restart().await;
    let started = Instant::now();
    // GetSystemInfo's `rechecking` is the cheap way to know the re-check is done: once it
    // and the queue say 0, one listing shows everything Ready, with no wait.
    let c = sb.client();
    loop {
        let i = info(&c).await;
        if i.rechecking == 0 && i.queue_depth == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "still {} objects re-checking, queue depth {}",
            i.rechecking,
            i.queue_depth
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let bad = ApiView::read(&c).await.not_ready();
    assert!(bad.is_empty(), "rechecking said 0, yet not Ready: {bad:#?}");
    let i = info(&c).await;
    assert_eq!(
        i.kernel_writes, 0,
        "a converged restart wrote to the kernel"
    );
    // The network, the GC and the firewall's 1 s checks; never the 2 * SPACES + 2 others.
    let bound = 2 + started.elapsed().as_secs() + 3;
    assert!(
        i.reconciles <= bound,
        "{} reconciles after a converged restart (at most {bound})",
        i.reconciles
    );
    sb.assert_ping("c0", "10.243.0.1").await;
    // The monitor hears each namespace by the id the start-up check gave it (taken from the
    // host's veths, not asked one by one): a change made now in two of them is repaired at
    // once, an hour before the next resync would find it.
    let addr1 = sb.addrs("c1", "eth0");
    sb.ok_in("c1", &["ip", "addr", "del", &addr1[0], "dev", "eth0"]);
    sb.ok_in("c4", &["ip", "route", "del", "default"]);
    wait_for(
        Duration::from_secs(10),
        "the monitor heard c1 and c4 and their endpoints were repaired",
        || sb.addrs("c1", "eth0") == addr1 && sb.routes("c4").iter().any(|r| r["dst"] == "default"),
    )
    .await;
    for ns in ["c1", "c4"] {
        sb.assert_ping(ns, "10.243.0.1").await;
    }
}
