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
use weft::v1::{
    ConnectRequest, CreateNamespaceRequest, Endpoint, GetNamespaceRequest, Namespace, Phase,
};

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

/// Points b's neighbour entry (`ip -4`/`-6`) for `addr` at a MAC nobody has, deletes a's
/// eth0 and waits up to `within` for a's announcement to correct the entry to `want` (b sends
/// nothing meanwhile, so nothing else can); returns how long that took after the delete.
async fn corrected_after_delete(
    sb: &Sandbox,
    family: &str,
    addr: &str,
    want: &str,
    within: Duration,
) -> Duration {
    let wrong = [
        "ip",
        family,
        "neigh",
        "replace",
        addr,
        "lladdr",
        "02:00:00:00:00:99",
        "dev",
        "eth0",
        "nud",
        "stale",
    ];
    sb.ok_in("b", &wrong);
    let t0 = Instant::now();
    sb.ok_in("a", &["ip", "link", "del", "eth0"]);
    let mut seen = String::new();
    while t0.elapsed() < within {
        let neigh = sb.ip_json("b", &[family, "neigh", "show", addr, "dev", "eth0"]);
        seen = neigh.to_string();
        if neigh[0]["lladdr"] == want {
            return t0.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("b's neighbour entry for {addr} was never corrected to {want}: {seen}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recreated_endpoint_announces_itself_to_its_neighbours() {
    let (sb, a, a_ip) = neighbours("announce").await;
    assert!(ping_within(&sb, "b", &a_ip, Duration::from_secs(10)).await);
    let took =
        corrected_after_delete(&sb, "-4", &a_ip, &a.mac_address, Duration::from_secs(5)).await;
    eprintln!("b learnt a's MAC {took:?} after the delete");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recreated_endpoint_announces_its_ipv6_address_too() {
    let sb = Sandbox::builder("annsix").resync(3600).start().await;
    let c = sb.client();
    create_network(&c, network(NET, BRIDGE, &[SUBNET, "fd00:243::/64"])).await;
    create_ns(&c, "a").await;
    create_ns(&c, "b").await;
    let a = join(&c, "a").await;
    join(&c, "b").await;
    let a6 = addr_of(&a.ipv6_address).to_string();
    assert!(
        ping_within(&sb, "b", &a6, Duration::from_secs(10)).await,
        "b cannot ping a's IPv6 address"
    );
    // The new address is usable (and announced) once duplicate address detection is done.
    let took = corrected_after_delete(&sb, "-6", &a6, &a.mac_address, Duration::from_secs(8)).await;
    eprintln!("b learnt a's MAC for {a6} {took:?} after the delete");
}

/// The last lines of weftd's log.
fn log_tail(sb: &Sandbox) -> String {
    let log = sb.log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// The bound item 8 sets: from the process's exit to everything released.
const RELEASE_BOUND: Duration = Duration::from_secs(2);

/// A process in a network namespace of its own (`unshare -n sleep`), killed on drop.
struct Holder {
    child: Child,
}

impl Holder {
    /// Starts it and waits until it is in its new namespace; returns it and the namespace's
    /// identity (`net:[inode]`).
    async fn start() -> (Holder, String) {
        let child = Command::new("unshare")
            .args(["-n", "sleep", "1000"])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn unshare -n sleep");
        let holder = Holder { child };
        let own = std::fs::read_link("/proc/self/ns/net").expect("own netns");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(ns) = std::fs::read_link(holder.ns_file())
                && ns != own
            {
                return (holder, ns.display().to_string());
            }
            assert!(
                Instant::now() < deadline,
                "unshare never entered its namespace"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn ns_file(&self) -> String {
        format!("/proc/{}/ns/net", self.child.id())
    }

    /// SIGKILL, and reaped, so its /proc entry is gone.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The pid of the sandbox's weftd: the process running weftd's binary with its socket.
fn weftd_pid(sb: &Sandbox) -> u32 {
    let socket = sb.socket().display().to_string();
    std::fs::read_dir("/proc")
        .expect("read /proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            cmd.starts_with(&*weftd_bin().display().to_string()) && cmd.contains(&socket)
        })
        .expect("no weftd process")
}

/// The descriptors of process `pid` that point at `target` (`net:[inode]`).
fn fds_to(pid: u32, target: &str) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    std::fs::read_link(e.path()).is_ok_and(|l| l.display().to_string() == target)
                })
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The namespace ids the scratch host knows (`ip netns list-id`).
fn nsids(sb: &Sandbox) -> Vec<i64> {
    sb.ip_json("", &["netns", "list-id"])
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["nsid"].as_i64())
        .collect()
}

async fn namespace(c: &weft::Client, name: &str) -> Namespace {
    rpc(c
        .namespaces()
        .get_namespace(GetNamespaceRequest { name: name.into() }))
    .await
    .unwrap_or_else(|s| panic!("GetNamespace {name}: {s:?}"))
    .namespace
    .expect("GetNamespace answered no namespace")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_adopted_namespace_whose_process_exits_is_failed_and_released_within_2s() {
    let sb = Sandbox::builder("deadns").resync(3600).start().await;
    let c = sb.client();
    create_network(&c, network(NET, BRIDGE, &[SUBNET])).await;
    let (mut holder, identity) = Holder::start().await;
    let adopted = rpc(c.namespaces().create_namespace(CreateNamespaceRequest {
        namespace: Some(Namespace {
            name: "ctr".into(),
            path: holder.ns_file(),
            ..Default::default()
        }),
        ..Default::default()
    }))
    .await
    .expect("adopt the process's namespace")
    .namespace
    .expect("namespace");
    assert_eq!(phase(adopted.status.as_ref()), Phase::Ready, "{adopted:?}");
    let req = ConnectRequest {
        ipv4_address: "10.243.0.50".into(),
        published_ports: vec![tcp_port(18090, 80)],
        ..connect_req(NET, "ctr")
    };
    let ep = connect(&c, req.clone()).await;
    assert_eq!(ep.ipv4_address, "10.243.0.50/24");
    let inside = ok_at(
        std::path::Path::new(&holder.ns_file()),
        &["ip", "-j", "link", "show", "eth0"],
    );
    let inside: serde_json::Value = serde_json::from_str(&inside).expect("ip -j");
    let uid = ifalias(&inside[0]).trim_start_matches("weft:").to_string();
    let host_if = format!("wv{}", &uid[..12]);
    let nsid = sb.must_link("", &host_if)["link_netnsid"]
        .as_i64()
        .expect("the host end names its peer's namespace id");
    assert!(nsids(&sb).contains(&nsid));
    let weftd = weftd_pid(&sb);

    let t0 = Instant::now();
    holder.kill();
    let mut last = String::new();
    let took = loop {
        let ns = namespace(&c, "ctr").await;
        let net = get_network(&c, NET).await;
        let e = net.endpoints.iter().find(|e| e.namespace == "ctr");
        let fds = fds_to(weftd, &identity);
        let problems: Vec<String> = [
            (phase(ns.status.as_ref()) != Phase::Failed)
                .then(|| format!("namespace {:?}", ns.status)),
            e.is_none_or(|e| {
                phase(e.status.as_ref()) != Phase::Failed || !e.ipv4_address.is_empty()
            })
            .then(|| format!("endpoint {e:?}")),
            sb.link("", &host_if)
                .is_some()
                .then(|| format!("host end {host_if} still there")),
            nsids(&sb)
                .contains(&nsid)
                .then(|| format!("namespace id {nsid} still there (the namespace lives)")),
            (!fds.is_empty()).then(|| format!("weftd fds {fds:?} point at {identity}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        if problems.is_empty() {
            break t0.elapsed();
        }
        last = problems.join("; ");
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "not released 15 s after the process exited: {last}\n--- weftd log ---\n{}",
            log_tail(&sb)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("dead adopted namespace released {took:?} after its process was killed");
    assert!(
        took < RELEASE_BOUND,
        "released only after {took:?}: last seen {last}"
    );
    let ns = namespace(&c, "ctr").await;
    let msg = ns.status.map(|s| s.message).unwrap_or_default();
    assert!(msg.contains("not a network namespace any more"), "{msg}");

    // The address and the host port are free: another namespace gets them at once.
    create_ns(&c, "next").await;
    let again = connect(
        &c,
        ConnectRequest {
            namespace: "next".into(),
            ..req
        },
    )
    .await;
    assert_eq!(again.ipv4_address, "10.243.0.50/24");
}

fn phase(s: Option<&weft::v1::Status>) -> Phase {
    s.map(|s| s.phase()).unwrap_or_default()
}

/// A bind mount of one namespace file onto a path in the sandbox's dir, undone on drop (even
/// when the test fails), so the path can be re-pointed at another namespace.
struct BindMount(std::path::PathBuf);

impl BindMount {
    fn new(target: std::path::PathBuf, source: &str) -> BindMount {
        std::fs::write(&target, "").expect("mount point");
        let m = BindMount(target);
        m.point_at(source);
        m
    }

    /// Makes the path name `source`'s namespace instead.
    fn point_at(&self, source: &str) {
        let _ = Command::new("umount").arg(&self.0).status();
        let st = Command::new("mount")
            .arg("--bind")
            .arg(source)
            .arg(&self.0)
            .status()
            .expect("mount");
        assert!(st.success(), "mount --bind {source} {}", self.0.display());
    }
}

impl Drop for BindMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// An adopted path that names another namespace after a restart (a runtime's file
/// re-pointed, as a reused pid re-points `/proc/<pid>/ns/net`) is never followed: weft made
/// nothing in the other namespace, the adopted one reads Failed, and its address is free.
#[tokio::test(flavor = "multi_thread")]
async fn an_adopted_path_that_names_another_namespace_after_a_restart_is_not_followed() {
    let mut sb = Sandbox::builder("reuse").resync(3600).start().await;
    let c = sb.client();
    create_network(&c, network(NET, BRIDGE, &[SUBNET])).await;
    let (mut first, _) = Holder::start().await;
    let (mut second, _) = Holder::start().await;
    let file = BindMount::new(sb.dir().join("ctr.netns"), &first.ns_file());
    let path = file.0.display().to_string();
    rpc(c.namespaces().create_namespace(CreateNamespaceRequest {
        namespace: Some(Namespace {
            name: "ctr".into(),
            path: path.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }))
    .await
    .expect("adopt the file");
    let req = ConnectRequest {
        ipv4_address: "10.243.0.60".into(),
        ..connect_req(NET, "ctr")
    };
    connect(&c, req.clone()).await;
    assert!(
        ok_at(
            std::path::Path::new(&first.ns_file()),
            &["ip", "-o", "link"]
        )
        .contains("eth0")
    );

    drop(c);
    sb.stop();
    file.point_at(&second.ns_file());
    sb.start().await;
    let c = sb.client();
    let t0 = Instant::now();
    loop {
        let ns = namespace(&c, "ctr").await;
        if phase(ns.status.as_ref()) == Phase::Failed {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "the namespace never read Failed: {ns:?}\n{}",
            log_tail(&sb)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let links = ok_at(
        std::path::Path::new(&second.ns_file()),
        &["ip", "-o", "link"],
    );
    assert!(
        !links.contains("eth0") && !links.contains("weft:"),
        "weft followed the path into another namespace: {links}"
    );
    // The endpoint follows (its own reconcile, queued by the namespace's): Failed, its
    // address released, and free for another namespace.
    loop {
        let net = get_network(&c, NET).await;
        let e = net.endpoints.iter().find(|e| e.namespace == "ctr");
        if e.is_some_and(|e| phase(e.status.as_ref()) == Phase::Failed && e.ipv4_address.is_empty())
        {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "the endpoint was never released: {e:?}\n{}",
            log_tail(&sb)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    create_ns(&c, "next").await;
    let again = connect(
        &c,
        ConnectRequest {
            namespace: "next".into(),
            ..req
        },
    )
    .await;
    assert_eq!(again.ipv4_address, "10.243.0.60/24");
    drop(file);
    first.kill();
    second.kill();
}
