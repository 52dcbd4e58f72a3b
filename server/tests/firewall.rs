//! `kernel::firewall` against the real kernel and the real `nft`, in scratch namespaces.
//!
//! Each test makes its own namespace with `ip netns add wfw<pid>-<tag>` and a [`Kernel`] whose
//! host namespace is that one, so weft's tables land there and nowhere else; a guard deletes the
//! namespace when the test ends, panicking or not. Reads go through `ip netns exec <ns> nft -j`,
//! normalised (handles dropped) and compared to golden files in `tests/golden/firewall/`
//! (`UPDATE_GOLDEN=1` rewrites them). Traffic goes only to addresses assigned here, inside the
//! scratch namespaces.
//!
//! Needs root (`ip netns add`, nftables); without it every test says so and passes.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use serde_json::Value;
use weftd::kernel::prelude::*;
use weftd::kernel::{
    Kernel, NsRef,
    firewall::{FirewallNetwork, PortMapping, Proto},
};

// ---- sandbox ----

/// A scratch namespace (and a kernel whose "host" it is), removed on drop.
struct Scratch {
    name: String,
    kernel: Kernel,
    _dir: tempfile::TempDir,
}

fn root() -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("skipped: needs root for ip netns and nftables");
    }
    root
}

impl Scratch {
    fn new(tag: &str) -> Self {
        let name = format!("wfw{}-{tag}", std::process::id());
        let _ = run("ip", &["netns", "del", &name]);
        run_ok("ip", &["netns", "add", &name]);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = PathBuf::from("/run/netns").join(&name);
        let kernel = Kernel::new(Some(path), dir.path().join("netns")).expect("kernel");
        Self {
            name,
            kernel,
            _dir: dir,
        }
    }

    fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// `nft <args>` inside the namespace; panics on failure.
    fn nft(&self, args: &[&str]) -> String {
        let mut all = vec!["netns", "exec", &self.name, "nft"];
        all.extend_from_slice(args);
        run_ok("ip", &all)
    }

    /// `nft -j list ruleset`, normalised.
    fn ruleset(&self) -> Value {
        normalise(serde_json::from_str(&self.nft(&["-j", "list", "ruleset"])).expect("json"))
    }

    /// Number of elements `nft` lists in one map of `inet weft`.
    fn map_len(&self, map: &str) -> usize {
        let v: Value = serde_json::from_str(&self.nft(&["-j", "list", "map", "inet", "weft", map]))
            .expect("json");
        v["nftables"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o.get("map"))
            .map(|m| m.get("elem").and_then(Value::as_array).map_or(0, Vec::len))
            .sum()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.kernel.forget(&NsRef::Host);
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}

fn run(cmd: &str, args: &[&str]) -> std::io::Result<std::process::Output> {
    Command::new(cmd).args(args).output()
}

fn run_ok(cmd: &str, args: &[&str]) -> String {
    let out = run(cmd, args).unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Drops `handle` keys and the metainfo object, which change from run to run.
fn normalise(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| k != "handle" && k != "metainfo")
                .map(|(k, v)| (k, normalise(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .filter(|i| i.get("metainfo").is_none())
                .map(normalise)
                .collect(),
        ),
        other => other,
    }
}

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/firewall")
        .join(name)
}

/// Compares `value` to the golden file `name`, or rewrites it under `UPDATE_GOLDEN=1`.
fn assert_golden_json(name: &str, value: &Value) {
    let path = golden(name);
    let text = serde_json::to_string_pretty(value).expect("json") + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
        std::fs::write(&path, &text).expect("write golden");
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert_eq!(
        want,
        text,
        "{} drifted (UPDATE_GOLDEN=1 rewrites it)",
        path.display()
    );
}

// ---- the option matrix (same names and networks as the unit tests' golden plans) ----

fn net(bridge: &str, subnets: &[&str], internal: bool, icc: bool, masq: bool) -> FirewallNetwork {
    let subnets: Vec<ipnet::IpNet> = subnets.iter().map(|s| s.parse().expect("subnet")).collect();
    FirewallNetwork {
        bridge: bridge.into(),
        // DNS on the first address, as the unit tests' matrix has it.
        dns_servers: subnets
            .iter()
            .filter_map(|s| s.hosts().find(|a| *a != s.network()))
            .collect(),
        subnets,
        internal,
        icc,
        masquerade: masq,
    }
}

fn matrix() -> Vec<(&'static str, Vec<FirewallNetwork>)> {
    vec![
        ("empty", vec![]),
        (
            "v4",
            vec![net("wb-v4", &["10.10.0.1/24"], false, true, true)],
        ),
        (
            "internal",
            vec![net(
                "wb-int",
                &["10.11.0.1/24", "fd00:11::1/64"],
                true,
                true,
                true,
            )],
        ),
        (
            "icc_off",
            vec![net("wb-noicc", &["10.12.0.1/24"], false, false, true)],
        ),
        (
            "no_masq",
            vec![net("wb-nomasq", &["10.13.0.1/24"], false, true, false)],
        ),
        (
            "dual_stack",
            vec![net(
                "wb-dual",
                &["10.14.0.1/24", "fd00:14::1/64"],
                false,
                true,
                true,
            )],
        ),
        (
            "v6_only",
            vec![net("wb-v6", &["fd00:15::1/64"], false, false, true)],
        ),
        (
            "mixed",
            vec![
                net("wb-c", &["fd00:3::/56"], false, false, false),
                net("wb-a", &["fd00:1::1/64", "10.1.0.1/24"], false, true, true),
                net("wb-b", &["10.2.16.0/20"], true, false, true),
            ],
        ),
    ]
}

fn mapping(host: Option<&str>, proto: Proto, hp: u16, dest: &str, dp: u16) -> PortMapping {
    PortMapping {
        host_ip: host.map(|h| h.parse::<IpAddr>().expect("ip")),
        proto,
        host_port: hp,
        dest: dest.parse().expect("ip"),
        dest_port: dp,
    }
}

/// `n` distinct wildcard TCP mappings to 10.99.x.y:80, host ports from `first`.
fn many(n: usize, first: u16) -> Vec<PortMapping> {
    (0..n)
        .map(|i| {
            let port = first + i as u16;
            PortMapping {
                host_ip: None,
                proto: Proto::Tcp,
                host_port: port,
                dest: IpAddr::from([10, 99, (i / 250) as u8, (i % 250 + 2) as u8]),
                dest_port: 80,
            }
        })
        .collect()
}

// ---- tests ----

#[tokio::test]
async fn sync_matches_golden_json_across_the_option_matrix() {
    if !root() {
        return;
    }
    for (case, networks) in matrix() {
        let s = Scratch::new(&format!("g{case}"));
        assert!(
            s.kernel.sync_firewall(&networks).await.expect("sync"),
            "{case}"
        );
        assert_golden_json(&format!("{case}.json"), &s.ruleset());
        // Converged: nothing is written the second time.
        let before = s.kernel.writes();
        assert!(
            !s.kernel.sync_firewall(&networks).await.expect("resync"),
            "{case}"
        );
        assert_eq!(s.kernel.writes(), before, "{case}: a converged sync wrote");
    }
}

#[tokio::test]
async fn switching_plans_rebuilds_in_one_write_and_keeps_port_mappings() {
    if !root() {
        return;
    }
    let s = Scratch::new("switch");
    let cases = matrix();
    s.kernel
        .sync_firewall(&cases[0].1)
        .await
        .expect("first sync");
    let kept = vec![
        mapping(Some("192.0.2.1"), Proto::Tcp, 8080, "10.1.0.2", 80),
        mapping(None, Proto::Udp, 53, "10.1.0.3", 5353),
        mapping(Some("2001:db8::1"), Proto::Sctp, 9, "fd00:1::2", 99),
        mapping(None, Proto::Tcp, 443, "fd00:1::3", 8443),
    ];
    s.kernel.add_port_mappings(&kept).await.expect("add");
    for (case, networks) in cases.iter().skip(1).chain(cases.iter().take(1)) {
        let before = s.kernel.writes();
        assert!(
            s.kernel.sync_firewall(networks).await.expect("sync"),
            "{case}"
        );
        assert_eq!(s.kernel.writes(), before + 1, "{case}: one batch per sync");
        let mut rules = s.ruleset();
        strip_elements(&mut rules);
        assert_golden_json(&format!("{case}.json"), &rules);
        let mut want = kept.clone();
        want.sort();
        assert_eq!(
            s.kernel.list_port_mappings().await.expect("list"),
            want,
            "{case}"
        );
    }
}

/// Removes port-map elements from a ruleset listing, for comparing structure only.
fn strip_elements(v: &mut Value) {
    for o in v["nftables"].as_array_mut().into_iter().flatten() {
        if let Some(m) = o.get_mut("map").and_then(Value::as_object_mut) {
            m.remove("elem");
        }
    }
}

#[tokio::test]
async fn sync_repairs_a_table_flushed_or_altered_by_hand() {
    if !root() {
        return;
    }
    let s = Scratch::new("repair");
    let (case, networks) = matrix().pop().expect("mixed");
    s.kernel.sync_firewall(&networks).await.expect("sync");
    let m = vec![mapping(None, Proto::Tcp, 8080, "10.1.0.2", 80)];
    s.kernel.add_port_mappings(&m).await.expect("add");
    let golden_rules = |s: &Scratch| {
        let mut r = s.ruleset();
        strip_elements(&mut r);
        assert_golden_json(&format!("{case}.json"), &r);
    };

    // `flush table` empties every chain (and, with nft 1.0.6, keeps sets and maps).
    s.nft(&["flush", "table", "inet", "weft"]);
    let before = s.kernel.writes();
    assert!(s.kernel.sync_firewall(&networks).await.expect("repair"));
    assert_eq!(s.kernel.writes(), before + 1);
    golden_rules(&s);
    assert_eq!(s.kernel.list_port_mappings().await.expect("list"), m);

    // A member removed from a set, a chain deleted, a rule added.
    let edits: [&[&str]; 3] = [
        &[
            "delete",
            "element",
            "inet",
            "weft",
            "bridges",
            "{ \"wb-a\" }",
        ],
        &["delete", "chain", "inet", "weft", "output"],
        &["add", "rule", "inet", "weft", "forward", "accept"],
    ];
    for edit in edits {
        s.nft(edit);
        assert!(
            s.kernel.sync_firewall(&networks).await.expect("repair"),
            "{edit:?}"
        );
        golden_rules(&s);
    }
    // The bridge table deleted by hand.
    s.nft(&["delete", "table", "bridge", "weft"]);
    assert!(s.kernel.sync_firewall(&networks).await.expect("repair"));
    golden_rules(&s);
    assert!(!s.kernel.sync_firewall(&networks).await.expect("converged"));
    assert_eq!(s.kernel.list_port_mappings().await.expect("list"), m);
}

#[tokio::test]
async fn port_mappings_add_list_and_delete() {
    if !root() {
        return;
    }
    let s = Scratch::new("ports");
    s.kernel.sync_firewall(&matrix()[5].1).await.expect("sync");
    let all = vec![
        mapping(Some("192.0.2.1"), Proto::Tcp, 8080, "10.14.0.2", 80),
        mapping(Some("192.0.2.1"), Proto::Udp, 8080, "10.14.0.2", 80),
        mapping(None, Proto::Udp, 53, "10.14.0.3", 5353),
        mapping(None, Proto::Sctp, 7, "10.14.0.4", 7),
        mapping(Some("2001:db8::1"), Proto::Tcp, 8080, "fd00:14::2", 80),
        mapping(None, Proto::Tcp, 443, "fd00:14::3", 8443),
    ];
    let before = s.kernel.writes();
    s.kernel.add_port_mappings(&all).await.expect("add");
    assert_eq!(s.kernel.writes(), before + 1, "one batch");
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(s.kernel.list_port_mappings().await.expect("list"), sorted);
    // nft reads our elements back as it would its own.
    let text = s.nft(&["list", "map", "inet", "weft", "dnat4"]);
    assert!(
        text.contains("192.0.2.1 . tcp . 8080 : 10.14.0.2 . 80"),
        "{text}"
    );
    let text = s.nft(&["list", "map", "inet", "weft", "dnat6_any"]);
    assert!(text.contains("tcp . 443 : fd00:14::3 . 8443"), "{text}");

    // Identical again: fine. Same key, other destination: EEXIST, and nothing changes.
    s.kernel.add_port_mappings(&all[..2]).await.expect("re-add");
    let clash = [
        mapping(None, Proto::Tcp, 9999, "10.14.0.9", 1),
        mapping(Some("192.0.2.1"), Proto::Tcp, 8080, "10.14.0.9", 80),
    ];
    let err = s.kernel.add_port_mappings(&clash).await.expect_err("clash");
    assert!(err.is_exists(), "{err}");
    assert_eq!(s.kernel.list_port_mappings().await.expect("list"), sorted);

    // Invalid input is refused before anything is sent.
    let before = s.kernel.writes();
    let bad = [mapping(Some("192.0.2.1"), Proto::Tcp, 1, "fd00::1", 1)];
    let err = s.kernel.add_port_mappings(&bad).await.expect_err("bad");
    assert_eq!(err.errno(), Some(nix::libc::EINVAL));
    assert_eq!(s.kernel.writes(), before);

    // Delete two present, one missing, one whose key maps elsewhere: no ENOENT, one write.
    let del = vec![
        all[0].clone(),
        all[5].clone(),
        mapping(None, Proto::Tcp, 1, "10.14.0.9", 1),
        mapping(None, Proto::Udp, 53, "10.14.0.99", 5353),
    ];
    let before = s.kernel.writes();
    s.kernel.del_port_mappings(&del).await.expect("del");
    assert_eq!(s.kernel.writes(), before + 1);
    let rest: Vec<PortMapping> = sorted
        .iter()
        .filter(|m| **m != all[0] && **m != all[5])
        .cloned()
        .collect();
    assert_eq!(s.kernel.list_port_mappings().await.expect("list"), rest);
    // Nothing left to delete: no write at all.
    let before = s.kernel.writes();
    s.kernel.del_port_mappings(&del).await.expect("del again");
    assert_eq!(s.kernel.writes(), before);

    // Without weft's table: listing is empty, deleting is fine, adding says ENOENT.
    s.kernel.delete_firewall().await.expect("delete");
    assert!(
        s.kernel
            .list_port_mappings()
            .await
            .expect("list")
            .is_empty()
    );
    s.kernel
        .del_port_mappings(&all)
        .await
        .expect("del without table");
    let err = s
        .kernel
        .add_port_mappings(&all)
        .await
        .expect_err("no table");
    assert!(err.is_not_found(), "{err}");
}

/// The sockets among this process's open files (`socket:[inode]`).
fn socket_fds() -> std::collections::BTreeSet<String> {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|t| t.display().to_string())
        .filter(|t| t.starts_with("socket:"))
        .collect()
}

/// The host's netfilter socket is kept between calls: a socket closed right after a batch
/// that deleted something waits in `close` for the kernel's deferred frees (an RCU grace
/// period), which every Disconnect of an endpoint with published ports paid when each call
/// made its own. After the first call one socket stays open, and adds, deletes (the closes
/// that waited), lists and syncs all use that same socket.
#[tokio::test]
async fn one_netfilter_socket_serves_call_after_call() {
    if !root() {
        return;
    }
    let s = Scratch::new("keep");
    let before = socket_fds();
    s.kernel.sync_firewall(&matrix()[1].1).await.expect("sync");
    let kept = socket_fds();
    assert_eq!(
        kept.difference(&before).count(),
        1,
        "not one socket kept after the first call: {before:?} -> {kept:?}"
    );
    for round in 0..3 {
        let m = many(3, 7000 + round * 10);
        s.kernel.add_port_mappings(&m).await.expect("add");
        assert_eq!(s.kernel.list_port_mappings().await.expect("list"), m);
        s.kernel.del_port_mappings(&m).await.expect("del");
        assert!(
            s.kernel
                .list_port_mappings()
                .await
                .expect("list")
                .is_empty()
        );
        s.kernel.sync_firewall(&matrix()[1].1).await.expect("sync");
        assert_eq!(socket_fds(), kept, "round {round}: a socket made or closed");
    }
    assert_eq!(s.map_len("dnat4_any"), 0, "nft still sees mappings");
}

#[tokio::test]
async fn ten_thousand_mappings_in_one_call() {
    if !root() {
        return;
    }
    let s = Scratch::new("10k");
    s.kernel.sync_firewall(&matrix()[1].1).await.expect("sync");

    // One element added next to 10 existing ones...
    s.kernel
        .add_port_mappings(&many(10, 1000))
        .await
        .expect("add 10");
    let one_small = time_one_add(&s, 60000).await;
    s.kernel
        .del_port_mappings(&many(10, 1000))
        .await
        .expect("del 10");

    let big = many(10_000, 20000);
    let before = s.kernel.writes();
    let t = Instant::now();
    s.kernel.add_port_mappings(&big).await.expect("add 10,000");
    let add_big = t.elapsed();
    assert_eq!(s.kernel.writes(), before + 1, "one batch");
    assert_eq!(s.map_len("dnat4_any"), 10_000, "nft sees them all");
    let t = Instant::now();
    let listed = s.kernel.list_port_mappings().await.expect("list");
    let list_big = t.elapsed();
    let mut want = big.clone();
    want.sort();
    assert_eq!(listed, want);

    // ...and next to 10,000: about the same.
    let one_big = time_one_add(&s, 60000).await;

    // A structural sync keeps all of them.
    let t = Instant::now();
    assert!(
        s.kernel
            .sync_firewall(&matrix()[5].1)
            .await
            .expect("resync")
    );
    let resync_big = t.elapsed();
    assert_eq!(s.map_len("dnat4_any"), 10_000);

    let t = Instant::now();
    s.kernel.del_port_mappings(&big).await.expect("del 10,000");
    let del_big = t.elapsed();
    assert_eq!(s.map_len("dnat4_any"), 0);

    eprintln!(
        "timings: add 10,000 in one call {add_big:?}; list 10,000 {list_big:?}; \
         rebuild keeping 10,000 {resync_big:?}; delete 10,000 {del_big:?}; \
         add one next to 10: {one_small:?}; add one next to 10,000: {one_big:?}"
    );
    assert!(add_big < Duration::from_secs(10), "{add_big:?}");
}

/// Median time of 15 calls that each add one mapping (removed again afterwards, in one call,
/// so no delete's deferred cleanup lands inside a timed add).
async fn time_one_add(s: &Scratch, port: u16) -> Duration {
    let mut times = Vec::new();
    let mut added = Vec::new();
    for i in 0..15 {
        let m = [mapping(None, Proto::Udp, port + i, "10.98.0.2", 53)];
        let t = Instant::now();
        s.kernel.add_port_mappings(&m).await.expect("add one");
        times.push(t.elapsed());
        added.extend(m);
    }
    s.kernel.del_port_mappings(&added).await.expect("del");
    times.sort();
    times[times.len() / 2]
}

#[tokio::test]
async fn delete_firewall_leaves_no_table() {
    if !root() {
        return;
    }
    let s = Scratch::new("del");
    s.kernel.sync_firewall(&matrix()[3].1).await.expect("sync");
    s.kernel
        .add_port_mappings(&many(3, 5000))
        .await
        .expect("add");
    let before = s.kernel.writes();
    s.kernel.delete_firewall().await.expect("delete");
    assert_eq!(s.kernel.writes(), before + 1, "one batch for both tables");
    let tables = s.nft(&["list", "tables"]);
    assert!(tables.trim().is_empty(), "left behind: {tables}");
    // Absent: Ok, and nothing written.
    let before = s.kernel.writes();
    s.kernel.delete_firewall().await.expect("delete again");
    assert_eq!(s.kernel.writes(), before);
}

#[tokio::test]
async fn a_foreign_table_called_weft_is_left_alone() {
    if !root() {
        return;
    }
    let s = Scratch::new("foreign");
    s.nft(&["add", "table", "inet", "weft"]);
    s.nft(&["add", "chain", "inet", "weft", "mine"]);
    let err = s
        .kernel
        .sync_firewall(&matrix()[1].1)
        .await
        .expect_err("not ours");
    assert!(err.is_exists(), "{err}");
    s.kernel.delete_firewall().await.expect("delete");
    let text = s.nft(&["list", "table", "inet", "weft"]);
    assert!(text.contains("chain mine"), "{text}");
}

#[tokio::test]
async fn bad_bridge_names_are_refused_before_anything_is_sent() {
    if !root() {
        return;
    }
    let s = Scratch::new("badname");
    let before = s.kernel.writes();
    let err = s
        .kernel
        .sync_firewall(&[net(
            "a-name-far-too-long",
            &["10.0.0.0/24"],
            false,
            true,
            true,
        )])
        .await
        .expect_err("too long");
    assert_eq!(err.errno(), Some(nix::libc::EINVAL), "{err}");
    assert_eq!(s.kernel.writes(), before);
}

#[tokio::test]
async fn ensure_sysctl_writes_only_inside_the_scratch_namespaces() {
    if !root() {
        return;
    }
    let host_before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").expect("read");
    let s = Scratch::new("sysctl");
    let other = Scratch::new("sysctl2");
    let read_in = |ns: &str, key: &str| {
        run_ok(
            "ip",
            &["netns", "exec", ns, "cat", &format!("/proc/sys/{key}")],
        )
        .trim()
        .to_string()
    };
    let write_in = |ns: &str, key: &str, value: &str| {
        let file = format!("/proc/sys/{key}");
        run_ok(
            "ip",
            &[
                "netns",
                "exec",
                ns,
                "sh",
                "-c",
                &format!("echo {value} > {file}"),
            ],
        );
        assert_eq!(read_in(ns, key), value, "{key} in {ns}");
    };
    // A new namespace inherits the real host's IPv4 settings (on a host where weftd or
    // Docker runs, forwarding is on), and IPv6 ones too when net.core.devconf_inherit_init_net
    // says so: never assume. This test's starting point is forwarding off in both scratch
    // namespaces, so it writes that itself (there, never on the host).
    for ns in [&s.name, &other.name] {
        for key in ["net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"] {
            write_in(ns, key, "0");
        }
    }
    assert_eq!(read_in(&s.name, "net/ipv4/ip_forward"), "0");

    let before = s.kernel.writes();
    assert!(
        s.kernel
            .ensure_sysctl(&NsRef::Host, "net/ipv4/ip_forward", "1")
            .await
            .expect("set")
    );
    assert_eq!(s.kernel.writes(), before + 1);
    assert_eq!(read_in(&s.name, "net/ipv4/ip_forward"), "1");
    assert!(
        !s.kernel
            .ensure_sysctl(&NsRef::Host, "net/ipv4/ip_forward", "1")
            .await
            .expect("again")
    );
    assert_eq!(s.kernel.writes(), before + 1, "no write when equal");

    // Another namespace, by path; the IPv6 knob too.
    let p = NsRef::path(other.path());
    assert_eq!(read_in(&other.name, "net/ipv6/conf/all/forwarding"), "0");
    assert!(
        s.kernel
            .ensure_sysctl(&p, "net/ipv6/conf/all/forwarding", "1")
            .await
            .expect("v6")
    );
    assert_eq!(read_in(&other.name, "net/ipv6/conf/all/forwarding"), "1");
    assert_eq!(read_in(&other.name, "net/ipv4/ip_forward"), "0");

    // Unknown keys and paths that escape /proc/sys are errors.
    let err = s
        .kernel
        .ensure_sysctl(&NsRef::Host, "net/ipv4/no_such_knob", "1")
        .await
        .expect_err("unknown");
    assert!(err.is_not_found(), "{err}");
    let err = s
        .kernel
        .ensure_sysctl(&NsRef::Host, "../../etc/passwd", "x")
        .await
        .expect_err("escape");
    assert_eq!(err.errno(), Some(nix::libc::EINVAL));

    let host_after = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").expect("read");
    assert_eq!(
        host_before, host_after,
        "the real host's ip_forward changed"
    );
}

// ---- traffic ----

/// A TCP server inside a namespace that answers every connection with the peer address it
/// sees, then closes. Stops when dropped.
struct Server {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(ns: &str, addr: &str) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let (ns, addr, flag) = (ns.to_string(), addr.to_string(), stop.clone());
        let thread = std::thread::spawn(move || {
            enter(&ns);
            let listener = std::net::TcpListener::bind(&addr).expect("bind");
            listener.set_nonblocking(true).expect("nonblocking");
            tx.send(()).expect("ready");
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, peer)) => {
                        use std::io::Write;
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.write_all(peer.ip().to_string().as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        rx.recv().expect("server started");
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Moves the calling (fresh, short-lived) thread into namespace `ns`.
fn enter(ns: &str) {
    let f = std::fs::File::open(format!("/run/netns/{ns}")).expect("open netns");
    nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
}

/// Connects from namespace `ns` to `addr` and returns what the server said (the source
/// address it saw), or None if no connection could be made within a second.
fn connect_from(ns: &str, addr: &str) -> Option<String> {
    let (ns, addr) = (
        ns.to_string(),
        addr.parse::<std::net::SocketAddr>().expect("addr"),
    );
    std::thread::spawn(move || {
        use std::io::Read;
        enter(&ns);
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    })
    .join()
    .expect("client thread")
}

/// The sandbox for traffic: `h` plays the host (weft's tables), `o` the outside world
/// (192.168.77.2, linked to the host's 192.168.77.1), bridges `wb-a` (10.77.1.0/24, endpoints
/// `e1` .2 and `e2` .3) and `wb-b` (10.77.2.0/24, endpoint `e3` .2).
struct Topology {
    host: Scratch,
    names: Vec<String>,
    prefix: String,
}

impl Topology {
    fn new(tag: &str) -> Self {
        let host = Scratch::new(&format!("t{tag}h"));
        let p = format!("wfw{}-t{tag}", std::process::id());
        let names: Vec<String> = ["o", "e1", "e2", "e3"]
            .iter()
            .map(|n| format!("{p}{n}"))
            .collect();
        let t = Self {
            host,
            names,
            prefix: p,
        };
        for n in &t.names {
            let _ = run("ip", &["netns", "del", n]);
            run_ok("ip", &["netns", "add", n]);
            t.ip(n, "link set lo up");
        }
        let h = t.host.name.clone();
        t.ip(&h, "link set lo up");
        t.ip(
            &h,
            &format!("link add hout type veth peer name out0 netns {}", t.ns("o")),
        );
        t.ip(&h, "addr add 192.168.77.1/24 dev hout");
        t.ip(&h, "link set hout up");
        t.ip(&t.ns("o"), "addr add 192.168.77.2/24 dev out0");
        t.ip(&t.ns("o"), "link set out0 up");
        for (br, gw) in [("wb-a", "10.77.1.1/24"), ("wb-b", "10.77.2.1/24")] {
            t.ip(&h, &format!("link add {br} type bridge"));
            t.ip(&h, &format!("addr add {gw} dev {br}"));
            t.ip(&h, &format!("link set {br} up"));
        }
        for (ep, br, addr, gw) in [
            ("e1", "wb-a", "10.77.1.2/24", "10.77.1.1"),
            ("e2", "wb-a", "10.77.1.3/24", "10.77.1.1"),
            ("e3", "wb-b", "10.77.2.2/24", "10.77.2.1"),
        ] {
            let port = format!("v{ep}");
            t.ip(
                &h,
                &format!(
                    "link add {port} type veth peer name eth0 netns {}",
                    t.ns(ep)
                ),
            );
            t.ip(&h, &format!("link set {port} master {br} up"));
            t.ip(&t.ns(ep), &format!("addr add {addr} dev eth0"));
            t.ip(&t.ns(ep), "link set eth0 up");
            t.ip(&t.ns(ep), &format!("route add default via {gw}"));
        }
        t
    }

    fn ns(&self, short: &str) -> String {
        format!("{}{short}", self.prefix)
    }

    fn ip(&self, ns: &str, args: &str) {
        let mut all = vec!["-n", ns];
        all.extend(args.split_whitespace());
        run_ok("ip", &all);
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = run("ip", &["netns", "del", n]);
        }
    }
}

#[tokio::test]
async fn traffic_with_br_netfilter_on() {
    // br_netfilter is built into this kernel and on by default in every namespace: bridged
    // IP traffic then also crosses the inet hooks, with the bridge as both iif and oif.
    traffic(true).await;
}

#[tokio::test]
async fn traffic_with_br_netfilter_off() {
    // As on a host where br_netfilter is not loaded: bridged traffic stays at layer 2.
    traffic(false).await;
}

/// Published ports (outside, host, loopback, hairpin), masquerade, internal networks,
/// isolation and the inter-container switch, by real TCP connections between scratch
/// namespaces.
async fn traffic(br_netfilter: bool) {
    if !root() {
        return;
    }
    let t = Topology::new(if br_netfilter { "n" } else { "f" });
    let k = &t.host.kernel;
    let h = t.host.name.clone();
    k.ensure_sysctl(&NsRef::Host, "net/ipv4/ip_forward", "1")
        .await
        .expect("forwarding");
    let nf = if br_netfilter { "1" } else { "0" };
    k.ensure_sysctl(&NsRef::Host, "net/bridge/bridge-nf-call-iptables", nf)
        .await
        .expect("br_netfilter");
    let a = net("wb-a", &["10.77.1.0/24"], false, true, true);
    let b = net("wb-b", &["10.77.2.0/24"], true, true, true);
    k.sync_firewall(&[a.clone(), b.clone()])
        .await
        .expect("sync");
    k.add_port_mappings(&[
        mapping(None, Proto::Tcp, 8080, "10.77.1.2", 7000),
        mapping(Some("192.168.77.1"), Proto::Tcp, 8081, "10.77.1.2", 7000),
    ])
    .await
    .expect("publish");

    let _e1 = Server::start(&t.ns("e1"), "0.0.0.0:7000");
    let _o = Server::start(&t.ns("o"), "0.0.0.0:9000");
    let _gw = Server::start(&h, "10.77.1.1:9100");
    let _e3 = Server::start(&t.ns("e3"), "0.0.0.0:7000");

    // Published port from outside (wildcard and host-specific): the endpoint sees the client.
    assert_eq!(
        connect_from(&t.ns("o"), "192.168.77.1:8080").as_deref(),
        Some("192.168.77.2")
    );
    assert_eq!(
        connect_from(&t.ns("o"), "192.168.77.1:8081").as_deref(),
        Some("192.168.77.2")
    );
    // From the host itself, to its own address.
    assert!(
        connect_from(&h, "192.168.77.1:8080").is_some(),
        "from the host"
    );
    // Hairpin: from another endpoint of the same bridge, and from the endpoint itself.
    assert!(
        connect_from(&t.ns("e2"), "192.168.77.1:8080").is_some(),
        "hairpin e2"
    );
    // An endpoint reaching its *own* published port: routed when bridged traffic stays at
    // layer 2. With br_netfilter the DNAT happens at the bridge and the frame would have to
    // leave by the port it came in; this kernel drops it even with the port in hairpin mode.
    if !br_netfilter {
        assert!(
            connect_from(&t.ns("e1"), "192.168.77.1:8080").is_some(),
            "hairpin e1"
        );
    }
    // From the host's loopback, once the bridge routes 127/8 (route_localnet).
    k.ensure_sysctl(&NsRef::Host, "net/ipv4/conf/wb-a/route_localnet", "1")
        .await
        .expect("route_localnet");
    assert!(
        connect_from(&h, "127.0.0.1:8080").is_some(),
        "from host loopback"
    );
    // An internal network reaches no other network, not even through a published port (by
    // the host's outside address, wildcard or host-specific, or by the other bridge's
    // gateway address); the same ports still work from outside and from network a itself.
    for to in ["192.168.77.1:8080", "192.168.77.1:8081", "10.77.1.1:8080"] {
        assert!(
            connect_from(&t.ns("e3"), to).is_none(),
            "internal e3 reached network a's endpoint through published port {to}"
        );
    }
    assert!(
        connect_from(&t.ns("o"), "192.168.77.1:8081").is_some(),
        "outside -> published port, after the internal attempt"
    );
    assert!(
        connect_from(&t.ns("e2"), "10.77.1.1:8080").is_some(),
        "e2 -> published port by its gateway address"
    );
    // An unpublished port is not forwarded.
    assert!(connect_from(&t.ns("o"), "192.168.77.1:8082").is_none());
    // Removing the mapping closes it.
    k.del_port_mappings(&[mapping(None, Proto::Tcp, 8080, "10.77.1.2", 7000)])
        .await
        .expect("unpublish");
    assert!(connect_from(&t.ns("o"), "192.168.77.1:8080").is_none());

    // Masquerade: the outside sees the host's address; nothing from outside gets in directly.
    assert_eq!(
        connect_from(&t.ns("e1"), "192.168.77.2:9000").as_deref(),
        Some("192.168.77.1")
    );
    t.ip(&t.ns("o"), "route add 10.77.0.0/16 via 192.168.77.1");
    assert!(
        connect_from(&t.ns("o"), "10.77.1.2:7000").is_none(),
        "outside in, unpublished"
    );
    // Internal network: no way out, but its gateway answers.
    assert!(
        connect_from(&t.ns("e3"), "192.168.77.2:9000").is_none(),
        "internal out"
    );
    // Isolation between networks, both ways.
    assert!(
        connect_from(&t.ns("e1"), "10.77.2.2:7000").is_none(),
        "a -> b"
    );
    assert!(
        connect_from(&t.ns("e3"), "10.77.1.2:7000").is_none(),
        "b -> a"
    );

    // Inter-container traffic: on, then off (the gateway still answers).
    assert_eq!(
        connect_from(&t.ns("e2"), "10.77.1.2:7000").as_deref(),
        Some("10.77.1.3")
    );
    let a_no_icc = FirewallNetwork { icc: false, ..a };
    k.sync_firewall(&[a_no_icc, b]).await.expect("icc off");
    assert!(
        connect_from(&t.ns("e2"), "10.77.1.2:7000").is_none(),
        "icc off"
    );
    assert_eq!(
        connect_from(&t.ns("e2"), "10.77.1.1:9100").as_deref(),
        Some("10.77.1.3")
    );
    // Published ports survive the rebuild.
    assert!(
        connect_from(&t.ns("o"), "192.168.77.1:8081").is_some(),
        "after rebuild"
    );
}
