//! Self-healing on the real kernel (issue 4):
//! - drift repaired by a running weftd within 2 s and counted in GetSystemInfo.drift_repairs:
//!   an endpoint's veth deleted from either side, a leased address removed, weft's nftables
//!   table flushed or deleted (also while a network's own repair runs), a DNAT map flushed, a
//!   LinkService veth deleted;
//! - garbage collection of marked orphans (interfaces, a namespace file, a DNAT element) at
//!   start-up and at a resync, while unmarked look-alikes survive;
//! - client request ids: a retry creates nothing new (also after a restart), a reused id with
//!   another body is INVALID_ARGUMENT, concurrent duplicates make one object.
//!
//! The drift tests run weftd with `--resync 3600`, so only the event-driven repair (netlink
//! notifications, the 1 s firewall check) can have repaired anything; each repair is timed from
//! just before the breaking command. Traffic goes only to addresses these tests assign inside
//! their own namespaces.

mod common;
mod heal;

use std::{
    process::Command,
    time::{Duration, Instant},
};

use common::*;
use heal::*;
use weft::v1::{
    ConnectRequest, CreateLinkRequest, CreateNamespaceRequest, Endpoint, GetNetworkRequest,
    ListLinksRequest, ListNamespacesRequest,
};

/// The bound issue 4 sets on a repair.
const REPAIR_BOUND: Duration = Duration::from_secs(2);
/// How long to keep polling before calling something not repaired at all.
const GIVE_UP: Duration = Duration::from_secs(10);

const NET: &str = "heal";
const BRIDGE: &str = "wheal";
const SUBNET: &str = "10.241.0.0/24";
const GATEWAY: &str = "10.241.0.1";

/// An endpoint of the drift tests, with what identifies it in the kernel.
#[derive(Clone, Debug)]
struct Ep {
    ns: String,
    /// The endpoint's uid (the mark on both ends of its veth).
    uid: String,
    /// The leased address with prefix.
    cidr: String,
    /// The host end, `wv<uid[..12]>`.
    host_if: String,
    /// Its published port's DNAT element in dnat4_any.
    elem: String,
}

/// Connects `ns` (made here) to the drift network publishing `host_port` -> 80.
async fn endpoint(sb: &Sandbox, ns: &str, host_port: u32) -> Ep {
    let c = sb.client();
    create_ns(&c, ns).await;
    let e: Endpoint = connect_ok(&c, connect_req(NET, ns, vec![tcp(host_port, 80)])).await;
    let eth0 = sb.must_link(ns, "eth0");
    let uid = ifalias(&eth0)
        .strip_prefix("weft:")
        .unwrap_or_else(|| panic!("eth0 in {ns} is not marked: {eth0}"))
        .to_string();
    let host_if = format!("wv{}", &uid[..12]);
    let (map, elem) = dnat_elem("", "tcp", host_port, addr_part(&e.ipv4_address), 80);
    assert_eq!(map, "dnat4_any");
    let ep = Ep {
        ns: ns.into(),
        uid,
        cidr: e.ipv4_address.clone(),
        host_if,
        elem,
    };
    endpoint_whole(sb, &ep).unwrap_or_else(|e| panic!("fresh endpoint {ns}: {e}"));
    ep
}

/// A sandbox with `--resync 3600`, the drift network and two connected namespaces `a` and `b`
/// publishing 18080 and 18081.
async fn drift_setup(tag: &str) -> (Sandbox, Ep, Ep) {
    let sb = Sandbox::builder(tag).resync(3600).start().await;
    create_net(&sb.client(), NET, BRIDGE, SUBNET).await;
    let a = endpoint(&sb, "a", 18080).await;
    let b = endpoint(&sb, "b", 18081).await;
    settle(&sb).await;
    (sb, a, b)
}

/// Waits until every object is Ready and the reconciles the set-up's own notifications
/// trigger are over -- a new bridge port, IPv6 duplicate address detection finishing on an
/// interface up to about 2 s after it came up: each re-queues its owner -- until only the 1 s
/// firewall check runs (at most two reconciles in each of two 1.5 s windows in a row). The
/// repair measured afterwards is then the drift watch's alone.
async fn settle(sb: &Sandbox) {
    wait_all_ready(sb, Duration::from_secs(20)).await;
    let c = sb.client();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = info(&c).await.reconciles;
    let mut quiet = 0;
    while quiet < 2 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let now = info(&c).await.reconciles;
        if now - last <= 2 {
            quiet += 1;
        } else {
            quiet = 0;
        }
        assert!(
            Instant::now() < deadline,
            "weftd keeps reconciling on an idle host: {} reconciles in the last 1.5 s",
            now - last
        );
        last = now;
    }
}

/// Ok when the endpoint is whole in the kernel: eth0 up, marked, holding exactly its lease,
/// with the default route via the gateway; the host end up, marked, a port of the bridge; the
/// DNAT element in place.
fn endpoint_whole(sb: &Sandbox, ep: &Ep) -> Result<(), String> {
    let inside = ifaces(sb, &ep.ns)?;
    let eth0 = inside
        .iter()
        .find(|i| i.name == "eth0")
        .ok_or_else(|| format!("no eth0 in {}", ep.ns))?;
    if !eth0.up || eth0.mark() != Some(&ep.uid) || eth0.addrs != [ep.cidr.clone()] {
        return Err(format!("eth0 in {} is {eth0:?}", ep.ns));
    }
    let routes = sb.ip_json(&ep.ns, &["-4", "route", "show", "default"]);
    if !routes
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| r["gateway"] == GATEWAY && r["dev"] == "eth0")
    {
        return Err(format!(
            "no default route via {GATEWAY} in {}: {routes}",
            ep.ns
        ));
    }
    let host = ifaces(sb, "")?;
    let h = host
        .iter()
        .find(|i| i.name == ep.host_if)
        .ok_or_else(|| format!("no {} in the host", ep.host_if))?;
    if !h.up || h.mark() != Some(&ep.uid) || h.master != BRIDGE {
        return Err(format!("host end is {h:?}"));
    }
    let elems = dnat_map(sb, "dnat4_any")?;
    if !elems.contains(&ep.elem) {
        return Err(format!("no DNAT element {:?} in {elems:?}", ep.elem));
    }
    Ok(())
}

/// Polls `check` every 20 ms from `t0` until it passes; returns how long that took. Panics
/// with the last error when it has not passed after [`GIVE_UP`].
async fn time_repair(
    sb: &Sandbox,
    what: &str,
    t0: Instant,
    mut check: impl FnMut() -> Result<(), String>,
) -> Duration {
    loop {
        let r = check();
        let elapsed = t0.elapsed();
        match r {
            Ok(()) => {
                eprintln!("{what}: repaired after {elapsed:?}");
                return elapsed;
            }
            Err(e) if elapsed > GIVE_UP => panic!(
                "{what}: not repaired after {elapsed:?} (resync is 3600 s): {e}\n\
                 weftd's reconcile lines:\n{}",
                log_lines(sb, "repair")
            ),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Asserts the repair took under [`REPAIR_BOUND`] and was counted in drift_repairs (which
/// may be bumped just after the kernel is whole: polled for up to 2 s).
async fn assert_repaired(sb: &Sandbox, what: &str, took: Duration, drift_before: u64) {
    assert!(
        took < REPAIR_BOUND,
        "{what}: repaired after {took:?}, over the {REPAIR_BOUND:?} bound"
    );
    let c = sb.client();
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let now = info(&c).await.drift_repairs;
        if now > drift_before {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: repaired, but drift_repairs stayed at {now} (was {drift_before})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `args` in namespace `ns` (`""` the host), asserting it succeeded: the proof that it
/// changed the kernel, since weftd may undo it within milliseconds.
fn break_it(sb: &Sandbox, ns: &str, args: &[&str]) {
    sb.ok_in(ns, args);
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoint_eth0_deleted_in_its_namespace_is_back_within_2s() {
    let (sb, a, b) = drift_setup("healeth").await;
    let drift = info(&sb.client()).await.drift_repairs;
    let old = sb.must_link("a", "eth0")["ifindex"].clone();

    let t0 = Instant::now();
    break_it(&sb, "a", &["ip", "link", "del", "eth0"]);
    let took = time_repair(&sb, "eth0 deleted in a", t0, || {
        endpoint_whole(&sb, &a)?;
        (sb.must_link("a", "eth0")["ifindex"] != old)
            .then_some(())
            .ok_or_else(|| "eth0 has its old index".to_string())
    })
    .await;
    assert_repaired(&sb, "eth0 deleted in a", took, drift).await;
    endpoint_whole(&sb, &b).expect("b untouched");
    sb.assert_ping("a", addr_part(&b.cidr)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoint_host_end_deleted_is_back_within_2s() {
    let (sb, a, b) = drift_setup("healhost").await;
    let drift = info(&sb.client()).await.drift_repairs;

    let t0 = Instant::now();
    break_it(&sb, "", &["ip", "link", "del", &a.host_if]);
    let took = time_repair(&sb, "host end of a deleted", t0, || endpoint_whole(&sb, &a)).await;
    assert_repaired(&sb, "host end of a deleted", took, drift).await;
    endpoint_whole(&sb, &b).expect("b untouched");
    sb.assert_ping("b", addr_part(&a.cidr)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn leased_address_deleted_is_back_within_2s_in_place() {
    let (sb, a, b) = drift_setup("healaddr").await;
    let drift = info(&sb.client()).await.drift_repairs;
    let old = sb.must_link("a", "eth0")["ifindex"].clone();

    let t0 = Instant::now();
    break_it(&sb, "a", &["ip", "addr", "del", &a.cidr, "dev", "eth0"]);
    let took = time_repair(&sb, "lease of a deleted", t0, || endpoint_whole(&sb, &a)).await;
    assert_repaired(&sb, "lease of a deleted", took, drift).await;
    assert_eq!(
        sb.must_link("a", "eth0")["ifindex"],
        old,
        "repaired by re-creating eth0, not in place"
    );
    sb.assert_ping("a", addr_part(&b.cidr)).await;
}

/// `nft flush table` drops the rules (not the map elements); the 1 s check rebuilds them.
#[tokio::test(flavor = "multi_thread")]
async fn flushed_weft_table_is_back_within_2s() {
    let (sb, a, b) = drift_setup("healfl").await;
    let drift = info(&sb.client()).await.drift_repairs;
    let rules = weft_table_rules(&sb).expect("inet weft");
    let elems = dnat_map(&sb, "dnat4_any").expect("dnat4_any");
    assert!(
        rules.to_string().contains("\"rule\""),
        "inet weft has no rules to flush: {rules}"
    );

    let t0 = Instant::now();
    break_it(&sb, "", &["nft", "flush", "table", "inet", "weft"]);
    let took = time_repair(&sb, "inet weft flushed", t0, || {
        let now = weft_table_rules(&sb)?;
        if now != rules {
            return Err(format!("rules differ: {}", json_diff(&rules, &now)));
        }
        let now = dnat_map(&sb, "dnat4_any")?;
        (now == elems)
            .then_some(())
            .ok_or_else(|| format!("elements {now:?}, were {elems:?}"))
    })
    .await;
    assert_repaired(&sb, "inet weft flushed", took, drift).await;
    endpoint_whole(&sb, &a).expect("a after the repair");
    endpoint_whole(&sb, &b).expect("b after the repair");
}

/// A firewall reload that deletes weft's table (what `nft flush ruleset` does to it): the
/// table is rebuilt and every published port's element is added back.
#[tokio::test(flavor = "multi_thread")]
async fn deleted_weft_table_is_back_with_every_port_mapping_within_2s() {
    let (sb, a, b) = drift_setup("healdel").await;
    let drift = info(&sb.client()).await.drift_repairs;
    let rules = weft_table_rules(&sb).expect("inet weft");
    let elems = dnat_map(&sb, "dnat4_any").expect("dnat4_any");
    assert_eq!(elems.len(), 2, "{elems:?}");

    let t0 = Instant::now();
    break_it(&sb, "", &["nft", "delete", "table", "inet", "weft"]);
    let took = time_repair(&sb, "inet weft deleted", t0, || {
        let now = weft_table_rules(&sb)?;
        if now != rules {
            return Err(format!("rules differ: {}", json_diff(&rules, &now)));
        }
        let now = dnat_map(&sb, "dnat4_any")?;
        (now == elems)
            .then_some(())
            .ok_or_else(|| format!("elements {now:?}, were {elems:?}"))
    })
    .await;
    assert_repaired(&sb, "inet weft deleted", took, drift).await;
    endpoint_whole(&sb, &a).expect("a after the repair");
    endpoint_whole(&sb, &b).expect("b after the repair");
}

/// weft's table deleted while the network's own reconcile runs (here triggered by a stray
/// address put on the bridge at the same moment; a bridge's IPv6 DAD finishing does the same
/// by itself): whichever reconcile rebuilds the table, the published ports come back.
#[tokio::test(flavor = "multi_thread")]
async fn deleted_weft_table_rebuilt_by_a_network_repair_gets_its_port_mappings_back() {
    let (sb, a, b) = drift_setup("healnet").await;
    let drift = info(&sb.client()).await.drift_repairs;
    let rules = weft_table_rules(&sb).expect("inet weft");
    let elems = dnat_map(&sb, "dnat4_any").expect("dnat4_any");
    assert_eq!(elems.len(), 2, "{elems:?}");

    let t0 = Instant::now();
    break_it(&sb, "", &["nft", "delete", "table", "inet", "weft"]);
    break_it(
        &sb,
        "",
        &["ip", "addr", "add", "10.241.0.250/32", "dev", BRIDGE],
    );
    let took = time_repair(&sb, "inet weft deleted, bridge changed", t0, || {
        if sb.addrs("", BRIDGE) != [format!("{GATEWAY}/24")] {
            return Err(format!("bridge addresses {:?}", sb.addrs("", BRIDGE)));
        }
        let now = weft_table_rules(&sb)?;
        if now != rules {
            return Err(format!("rules differ: {}", json_diff(&rules, &now)));
        }
        let now = dnat_map(&sb, "dnat4_any")?;
        (now == elems)
            .then_some(())
            .ok_or_else(|| format!("elements {now:?}, were {elems:?}"))
    })
    .await;
    assert_repaired(&sb, "inet weft deleted, bridge changed", took, drift).await;
    endpoint_whole(&sb, &a).expect("a after the repair");
    endpoint_whole(&sb, &b).expect("b after the repair");
}

/// The published ports' elements removed behind weft's back, the table itself intact.
#[tokio::test(flavor = "multi_thread")]
async fn flushed_dnat_map_is_refilled_within_2s() {
    let (sb, a, b) = drift_setup("healmap").await;
    let drift = info(&sb.client()).await.drift_repairs;
    let elems = dnat_map(&sb, "dnat4_any").expect("dnat4_any");
    assert_eq!(elems.len(), 2, "{elems:?}");

    let t0 = Instant::now();
    break_it(
        &sb,
        "",
        &["nft", "flush", "map", "inet", "weft", "dnat4_any"],
    );
    let took = time_repair(&sb, "dnat4_any flushed", t0, || {
        let now = dnat_map(&sb, "dnat4_any")?;
        (now == elems)
            .then_some(())
            .ok_or_else(|| format!("elements {now:?}, were {elems:?}"))
    })
    .await;
    assert_repaired(&sb, "dnat4_any flushed", took, drift).await;
    endpoint_whole(&sb, &a).expect("a after the repair");
    endpoint_whole(&sb, &b).expect("b after the repair");
}

#[tokio::test(flavor = "multi_thread")]
async fn link_service_veth_deleted_by_hand_is_back_within_2s() {
    let sb = Sandbox::builder("heallink").resync(3600).start().await;
    let c = sb.client();
    create_ns(&c, "l").await;
    let link = create_link(
        &c,
        veth(
            ("", "hl0", &["10.240.9.1/24"]),
            ("l", "lv0", &["10.240.9.2/24"]),
        ),
    )
    .await;
    let mark = format!("weft:{}", link.uid);
    let whole = || -> Result<(), String> {
        let h = ifaces(&sb, "")?;
        let h = h
            .iter()
            .find(|i| i.name == "hl0")
            .ok_or("no hl0 in the host")?;
        let l = ifaces(&sb, "l")?;
        let l = l.iter().find(|i| i.name == "lv0").ok_or("no lv0 in l")?;
        for (i, addr) in [(h, "10.240.9.1/24"), (l, "10.240.9.2/24")] {
            if !i.up || i.alias != mark || i.addrs != [addr] {
                return Err(format!("{i:?}"));
            }
        }
        Ok(())
    };
    whole().expect("the fresh veth");
    settle(&sb).await;
    let old = sb.must_link("l", "lv0")["ifindex"].clone();
    let drift = info(&c).await.drift_repairs;

    let t0 = Instant::now();
    break_it(&sb, "l", &["ip", "link", "del", "lv0"]);
    let took = time_repair(&sb, "veth hl0/lv0 deleted", t0, || {
        whole()?;
        (sb.must_link("l", "lv0")["ifindex"] != old)
            .then_some(())
            .ok_or_else(|| "lv0 has its old index".to_string())
    })
    .await;
    assert_repaired(&sb, "veth hl0/lv0 deleted", took, drift).await;
    sb.assert_ping("l", "10.240.9.1").await;
}

// ---- garbage collection ----

/// Makes an unmarked network namespace file `name` in weftd's netns dir, as a runtime would
/// (`unshare --net=FILE`), its loopback carrying `lo_alias` unless empty.
fn foreign_netns(sb: &Sandbox, name: &str, lo_alias: &str) {
    let path = sb.ns_path(name);
    std::fs::write(&path, b"").expect("create the namespace file");
    let out = run(Command::new("unshare")
        .arg(format!("--net={}", path.display()))
        .arg("true"));
    assert!(
        out.status.success(),
        "unshare --net={}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    if !lo_alias.is_empty() {
        sb.ok_in(name, &["ip", "link", "set", "lo", "alias", lo_alias]);
    }
}

/// A bridge `name` in `ns` with alias `alias` (none when empty).
fn plant_bridge(sb: &Sandbox, ns: &str, name: &str, alias: &str) {
    sb.ok_in(ns, &["ip", "link", "add", name, "type", "bridge"]);
    if !alias.is_empty() {
        sb.ok_in(ns, &["ip", "link", "set", name, "alias", alias]);
    }
}

/// Ifindex and alias of an interface that must survive.
fn identity(sb: &Sandbox, ns: &str, name: &str) -> (serde_json::Value, String) {
    let l = sb.must_link(ns, name);
    (l["ifindex"].clone(), ifalias(&l).to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn start_up_gc_removes_marked_orphans_and_spares_unmarked_lookalikes() {
    let mut sb = Sandbox::builder("gcstart").resync(3600).start().await;
    let c = sb.client();
    create_net(&c, "gcn", "wgcn", "10.239.0.0/24").await;
    create_ns(&c, "keep").await;
    create_ns(&c, "gone").await;
    // A LinkService veth and an endpoint whose rows will be lost, and a veth that stays.
    let lost_link = create_link(&c, veth(("", "gl0", &[]), ("keep", "gl1", &[]))).await;
    let kept_link = create_link(&c, veth(("", "gk0", &[]), ("keep", "gk1", &[]))).await;
    let ep = connect_ok(&c, connect_req("gcn", "keep", vec![tcp(19090, 90)])).await;
    let ep_uid = ifalias(&sb.must_link("keep", "eth0"))
        .strip_prefix("weft:")
        .expect("eth0 marked")
        .to_string();
    let ep_host = format!("wv{}", &ep_uid[..12]);
    let (_, ep_elem) = dnat_elem("", "tcp", 19090, addr_part(&ep.ipv4_address), 90);
    assert!(dnat_map(&sb, "dnat4_any").unwrap().contains(&ep_elem));
    let status = sb.stop();
    assert!(status.success(), "weftd exited with {status} on SIGTERM");

    // Marked orphans: bridges in the host and in a live namespace.
    plant_bridge(&sb, "", "orph0", "weft:0123456789abcdef");
    plant_bridge(&sb, "keep", "orph1", "weft:fedcba9876543210");
    // Unmarked look-alikes: weft-style names, no alias or an alias that is not weft's mark.
    plant_bridge(&sb, "", "wv0123456789ab", "");
    plant_bridge(&sb, "", "wv0123456789ac", "weft-0123456789abcdef");
    plant_bridge(&sb, "", "br-0123456789ab", "weft");
    plant_bridge(&sb, "keep", "eth9", "xweft:0123456789abcdef");
    foreign_netns(&sb, "plain", "");
    foreign_netns(&sb, "aliased", "weft-0123456789abcdef");
    // A restored (older) database: the rows of `gone`, the lost veth and the endpoint are
    // gone, their kernel objects (marked) are not.
    {
        let mut db = open_db(&sb.dir().join("weft.db")).await;
        for (sql, arg) in [
            ("DELETE FROM endpoints WHERE id = ?", ep_uid.as_str()),
            ("DELETE FROM links WHERE id = ?", lost_link.uid.as_str()),
            ("DELETE FROM namespaces WHERE name = ?", "gone"),
        ] {
            let r = sqlx::query(sql)
                .bind(arg)
                .execute(&mut db)
                .await
                .unwrap_or_else(|e| panic!("{sql} {arg}: {e}"));
            assert_eq!(r.rows_affected(), 1, "{sql} {arg}");
        }
        sqlx::Connection::close(db)
            .await
            .expect("close the database");
    }
    let survivors = [
        ("", "wv0123456789ab"),
        ("", "wv0123456789ac"),
        ("", "br-0123456789ab"),
        ("keep", "eth9"),
        ("", "gk0"),
        ("keep", "gk1"),
    ];
    let before: Vec<_> = survivors
        .iter()
        .map(|(ns, n)| identity(&sb, ns, n))
        .collect();
    let plain_lo = sb.must_link("plain", "lo")["ifindex"].clone();

    sb.start().await;
    let c = sb.client();
    let orphans_gone = || -> Result<(), String> {
        let host = sb.link_names("");
        let keep = sb.link_names("keep");
        for (list, name) in [
            (&host, "orph0"),
            (&keep, "orph1"),
            (&host, "gl0"),
            (&keep, "gl1"),
            (&host, ep_host.as_str()),
            (&keep, "eth0"),
        ] {
            if list.iter().any(|n| n == name) {
                return Err(format!("{name} is still there"));
            }
        }
        if sb.ns_path("gone").exists() {
            return Err("the namespace file gone is still there".into());
        }
        if dnat_map(&sb, "dnat4_any")?.contains(&ep_elem) {
            return Err(format!("the DNAT element {ep_elem:?} is still there"));
        }
        Ok(())
    };
    let t0 = Instant::now();
    loop {
        match orphans_gone() {
            Ok(()) => break,
            Err(e) if t0.elapsed() > GIVE_UP => panic!(
                "orphans not collected {GIVE_UP:?} after start-up: {e}\n{}",
                log_lines(&sb, "orphan")
            ),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert!(
        !mount_points().contains(&sb.ns_path("gone")),
        "gone is still mounted"
    );
    // Every look-alike is untouched, and so is what still has its row.
    for ((ns, n), b) in survivors.iter().zip(&before) {
        assert_eq!(
            &identity(&sb, ns, n),
            b,
            "{n} in {ns:?} was changed or re-created"
        );
    }
    for f in ["plain", "aliased", "keep"] {
        assert!(
            mount_points().contains(&sb.ns_path(f)),
            "the namespace file {f} was removed"
        );
    }
    assert_eq!(sb.must_link("plain", "lo")["ifindex"], plain_lo);
    assert_eq!(
        ifalias(&sb.must_link("aliased", "lo")),
        "weft-0123456789abcdef"
    );
    assert!(ifalias(&sb.must_link("plain", "lo")).is_empty());
    let v = wait_all_ready(&sb, Duration::from_secs(20)).await;
    assert_eq!(v.links.len(), 1);
    assert_eq!(v.links[0].uid, kept_link.uid);
    // Five things were removed: orph0, orph1, the lost veth pair, the endpoint's veth pair,
    // the namespace `gone`. A pair may be counted once (deleting one end takes the other) or
    // per end.
    let n = info(&c).await.orphans_removed;
    assert!(
        (5..=7).contains(&n),
        "orphans_removed is {n}, want 5 (7 if each end of a pair counts)\n{}",
        log_lines(&sb, "orphan")
    );
    eprintln!("orphans_removed after start-up: {n}");

    // Converged and collected: a second restart finds nothing more to remove.
    sb.restart().await;
    wait_all_ready(&sb, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let i = info(&sb.client()).await;
    assert_eq!(i.orphans_removed, 0, "a second start-up removed more");
    for ((ns, n), b) in survivors.iter().zip(&before) {
        assert_eq!(
            &identity(&sb, ns, n),
            b,
            "{n} in {ns:?} after the 2nd start"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn resync_gc_removes_a_marked_orphan_and_spares_unmarked_lookalikes() {
    let sb = Sandbox::builder("gcresync").resync(1).start().await;
    let c = sb.client();
    create_ns(&c, "n1").await;
    let removed0 = info(&c).await.orphans_removed;
    plant_bridge(&sb, "", "orph0", "weft:00000000000000aa");
    plant_bridge(&sb, "n1", "orph1", "weft:00000000000000bb");
    plant_bridge(&sb, "", "wv00000000aaaa", "");
    plant_bridge(&sb, "n1", "wv00000000bbbb", "weft.00000000000000bb");
    let look = [
        identity(&sb, "", "wv00000000aaaa"),
        identity(&sb, "n1", "wv00000000bbbb"),
    ];

    let t0 = Instant::now();
    loop {
        let left: Vec<&str> = [("", "orph0"), ("n1", "orph1")]
            .into_iter()
            .filter(|(ns, n)| sb.link(ns, n).is_some())
            .map(|(_, n)| n)
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(8),
            "{left:?} still there {:?} after planting, with --resync 1\n{}",
            t0.elapsed(),
            log_lines(&sb, "orphan")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Two more resyncs leave the look-alikes alone.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(identity(&sb, "", "wv00000000aaaa"), look[0]);
    assert_eq!(identity(&sb, "n1", "wv00000000bbbb"), look[1]);
    let removed = info(&c).await.orphans_removed - removed0;
    assert_eq!(removed, 2, "orphans_removed grew by {removed}, not 2");
}

// ---- request ids ----

fn ns_req(name: &str, id: &str) -> CreateNamespaceRequest {
    CreateNamespaceRequest {
        namespace: Some(ns_msg(name)),
        request_id: id.into(),
        ..Default::default()
    }
}

fn link_req(link: weft::v1::Link, id: &str) -> CreateLinkRequest {
    CreateLinkRequest {
        link: Some(link),
        request_id: id.into(),
        ..Default::default()
    }
}

fn conn_req(ns: &str, port: u32, id: &str) -> ConnectRequest {
    ConnectRequest {
        request_id: id.into(),
        ..connect_req("rq", ns, vec![tcp(port, 80)])
    }
}

/// Names of the namespaces weftd lists.
async fn ns_names(c: &weft::Client) -> Vec<String> {
    rpc(c
        .namespaces()
        .list_namespaces(ListNamespacesRequest::default()))
    .await
    .expect("ListNamespaces")
    .namespaces
    .into_iter()
    .map(|n| n.name)
    .collect()
}

/// The interfaces (namespace, name) carrying `weft:<uid>` anywhere in the sandbox.
fn marked_with(sb: &Sandbox, uid: &str) -> Vec<(String, String)> {
    KernelView::read(sb)
        .marked()
        .into_iter()
        .filter(|(_, i)| i.mark() == Some(uid))
        .map(|(ns, i)| (ns, i.name.clone()))
        .collect()
}

/// What a Connect made, as a test sees it: endpoints and leases of `rq`, `wv*` in the host,
/// DNAT elements.
async fn connect_footprint(sb: &Sandbox) -> (usize, u64, usize, usize) {
    let n = rpc(sb
        .client()
        .networks()
        .get_network(GetNetworkRequest { name: "rq".into() }))
    .await
    .expect("GetNetwork rq")
    .network
    .expect("network");
    let wv = sb
        .link_names("")
        .iter()
        .filter(|l| l.starts_with("wv"))
        .count();
    let elems = dnat_map(sb, "dnat4_any").expect("dnat4_any").len();
    (n.endpoints.len(), n.usage[0].leased, wv, elems)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retried_request_id_creates_nothing_new() {
    let mut sb = Sandbox::builder("reqid").resync(3600).start().await;
    let c = sb.client();
    create_net(&c, "rq", "wrq", "10.238.0.0/24").await;

    // CreateNamespace.
    let first = rpc(c.namespaces().create_namespace(ns_req("r1", "id-ns")))
        .await
        .expect("CreateNamespace r1")
        .namespace
        .expect("namespace");
    assert_ready("namespace r1", first.generation, first.status.as_ref());
    let again = rpc(c.namespaces().create_namespace(CreateNamespaceRequest {
        wait: Some(false),
        ..ns_req("r1", "id-ns")
    }))
    .await
    .expect("retried CreateNamespace r1")
    .namespace
    .expect("namespace");
    assert_eq!(again.uid, first.uid, "the retry made another namespace");
    let s = expect_code(
        rpc(c.namespaces().create_namespace(ns_req("r2", "id-ns"))).await,
        tonic::Code::InvalidArgument,
    );
    assert!(s.message().contains("id-ns"), "{s:?}");
    assert_eq!(ns_names(&c).await, ["r1"]);
    assert_eq!(netns_files(&sb), ["r1"]);

    // CreateLink.
    let pair = || {
        veth(
            ("", "rq0", &["10.237.0.1/24"]),
            ("r1", "rq1", &["10.237.0.2/24"]),
        )
    };
    let first_link = rpc(c.links().create_link(link_req(pair(), "id-link")))
        .await
        .expect("CreateLink rq0")
        .link
        .expect("link");
    assert_ready(
        "link rq0",
        first_link.generation,
        first_link.status.as_ref(),
    );
    let again = rpc(c.links().create_link(link_req(pair(), "id-link")))
        .await
        .expect("retried CreateLink rq0")
        .link
        .expect("link");
    assert_eq!(again.uid, first_link.uid, "the retry made another link");
    let mut other = pair();
    other.mtu = 1400;
    expect_code(
        rpc(c.links().create_link(link_req(other, "id-link"))).await,
        tonic::Code::InvalidArgument,
    );
    let links = rpc(c.links().list_links(ListLinksRequest::default()))
        .await
        .expect("ListLinks")
        .links;
    assert_eq!(links.len(), 1, "{links:?}");
    let mut ends = marked_with(&sb, &first_link.uid);
    ends.sort();
    assert_eq!(
        ends,
        [
            (String::new(), "rq0".to_string()),
            ("r1".to_string(), "rq1".to_string())
        ]
    );
    assert_eq!(
        sb.must_link("", "rq0")["mtu"],
        1500,
        "the refused body changed the link"
    );

    // Connect.
    let ep = connect_ok(&c, conn_req("r1", 18500, "id-conn")).await;
    let again = connect_ok(&c, conn_req("r1", 18500, "id-conn")).await;
    assert_eq!(again.ipv4_address, ep.ipv4_address);
    assert_eq!(again.mac_address, ep.mac_address);
    let s = expect_code(
        rpc(c.networks().connect(conn_req("r1", 18501, "id-conn"))).await,
        tonic::Code::InvalidArgument,
    );
    assert!(s.message().contains("id-conn"), "{s:?}");
    // An id is one request, whatever the method.
    expect_code(
        rpc(c.namespaces().create_namespace(ns_req("r3", "id-conn"))).await,
        tonic::Code::InvalidArgument,
    );
    assert_eq!(connect_footprint(&sb).await, (1, 1, 1, 1));
    assert_eq!(
        sb.addrs("r1", "eth0"),
        std::slice::from_ref(&ep.ipv4_address)
    );

    // The ids outlive a restart.
    sb.restart().await;
    let c = sb.client();
    let ns = rpc(c.namespaces().create_namespace(ns_req("r1", "id-ns")))
        .await
        .expect("CreateNamespace r1 after a restart")
        .namespace
        .expect("namespace");
    assert_eq!(ns.uid, first.uid);
    let l = rpc(c.links().create_link(link_req(pair(), "id-link")))
        .await
        .expect("CreateLink after a restart")
        .link
        .expect("link");
    assert_eq!(l.uid, first_link.uid);
    let again = connect_ok(&c, conn_req("r1", 18500, "id-conn")).await;
    assert_eq!(again.ipv4_address, ep.ipv4_address);
    wait_all_ready(&sb, Duration::from_secs(20)).await;
    assert_eq!(ns_names(&c).await, ["r1"]);
    assert_eq!(marked_with(&sb, &first_link.uid).len(), 2);
    assert_eq!(connect_footprint(&sb).await, (1, 1, 1, 1));
    assert_eq!(
        info(&c).await.kernel_writes,
        0,
        "kernel writes since the restart: a converged restart and three retries make none"
    );
}

/// What concurrent calls with one request id answered that is neither OK nor ABORTED.
fn unexpected<T>(answers: &[Result<T, tonic::Status>]) -> Vec<(tonic::Code, String)> {
    answers
        .iter()
        .filter_map(|r| r.as_ref().err())
        .filter(|s| s.code() != tonic::Code::Aborted)
        .map(|s| (s.code(), s.message().to_string()))
        .collect()
}

/// Eight concurrent calls with one request id (a client library retrying on a timeout, say):
/// each gets the first call's answer or ABORTED ("retry the call to get its answer"), and one
/// object is made.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_duplicates_of_a_request_id_make_one_object() {
    let sb = Sandbox::builder("reqdup").resync(3600).start().await;
    let c = sb.client();
    create_net(&c, "rq", "wrq", "10.236.0.0/24").await;
    let mut problems = Vec::new();

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let c = c.clone();
        tasks.spawn(async move {
            rpc(c.namespaces().create_namespace(ns_req("d1", "dup-ns")))
                .await
                .map(|r| r.namespace.expect("namespace").uid)
        });
    }
    let answers = tasks.join_all().await;
    let uids: std::collections::BTreeSet<_> =
        answers.iter().filter_map(|r| r.as_ref().ok()).collect();
    let other = unexpected(&answers);
    if !other.is_empty() {
        problems.push(format!(
            "8 concurrent CreateNamespace d1 with request_id dup-ns: {} OK, the others not \
             ABORTED: {other:?}",
            answers.iter().filter(|r| r.is_ok()).count()
        ));
    }
    assert_eq!(uids.len(), 1, "answers: {answers:?}");
    assert_eq!(ns_names(&c).await, ["d1"]);
    // A client that was not answered OK retries and gets the first call's answer.
    let retry = rpc(c.namespaces().create_namespace(ns_req("d1", "dup-ns")))
        .await
        .map(|r| r.namespace.expect("namespace").uid);
    match &retry {
        Ok(uid) if uids.contains(uid) => {}
        other => problems.push(format!("a later retry of dup-ns answered {other:?}")),
    }

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let c = c.clone();
        tasks.spawn(async move {
            let pair = veth(("", "dq0", &[]), ("d1", "dq1", &[]));
            rpc(c.links().create_link(link_req(pair, "dup-link")))
                .await
                .map(|r| r.link.expect("link").uid)
        });
    }
    let answers = tasks.join_all().await;
    let links: std::collections::BTreeSet<_> =
        answers.iter().filter_map(|r| r.as_ref().ok()).collect();
    let other = unexpected(&answers);
    if !other.is_empty() {
        problems.push(format!(
            "8 concurrent CreateLink dq0 with request_id dup-link: {} OK, the others not \
             ABORTED: {other:?}",
            answers.iter().filter(|r| r.is_ok()).count()
        ));
    }
    assert_eq!(links.len(), 1, "answers: {answers:?}");
    let uid = links.first().expect("one link");
    assert_eq!(marked_with(&sb, uid).len(), 2, "one veth pair");

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let c = c.clone();
        tasks.spawn(async move {
            rpc(c.networks().connect(conn_req("d1", 18600, "dup-conn")))
                .await
                .map(|r| r.endpoint.expect("endpoint").ipv4_address)
        });
    }
    let answers = tasks.join_all().await;
    let addrs: std::collections::BTreeSet<_> =
        answers.iter().filter_map(|r| r.as_ref().ok()).collect();
    let other = unexpected(&answers);
    if !other.is_empty() {
        problems.push(format!(
            "8 concurrent Connect d1 with request_id dup-conn: {} OK, the others not ABORTED: \
             {other:?}",
            answers.iter().filter(|r| r.is_ok()).count()
        ));
    }
    assert_eq!(addrs.len(), 1, "answers: {answers:?}");
    let ep = connect_ok(&c, conn_req("d1", 18600, "dup-conn")).await;
    assert!(addrs.contains(&ep.ipv4_address));
    wait_all_ready(&sb, Duration::from_secs(20)).await;
    assert_eq!(connect_footprint(&sb).await, (1, 1, 1, 1));
    assert_no_problems("concurrent duplicates", &problems);
}
