//! Two weftd never manage one thing (issue 10, item 6): a second weftd on the host namespace a
//! first one manages (with its own database and socket), or on the first one's database (in
//! another namespace), exits non-zero at start-up with a message naming the first one's pid,
//! before it touches anything: the first one's published port still carries TCP traffic, its
//! nftables ruleset is exactly as it was (handles included), and it keeps answering calls.
//!
//! The second weftd runs under `nsenter --net=<namespace>` like the sandbox's own, with its
//! files in the sandbox's temp dir. Traffic goes only to addresses these tests assign inside
//! their own namespaces.

mod common;
#[path = "common/net.rs"]
mod net;

use std::{
    fs,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use common::*;
use net::*;

/// Runs a second weftd in namespace file `ns` (also its `--host-netns`), its database at
/// `database`, its socket, netns dir and log under `dir`, its runtime dir `runtime_dir`;
/// waits (at most 20 s) for it to exit and returns its status and log.
fn second_weftd(
    ns: &Path,
    dir: &Path,
    database: &Path,
    runtime_dir: &Path,
) -> (ExitStatus, String) {
    fs::create_dir_all(dir.join("netns")).expect("mkdir");
    let log_path = dir.join("weftd.log");
    let log = fs::File::create(&log_path).expect("create the log");
    let mut child = Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .arg(weftd_bin())
        .arg("--host-netns")
        .arg(ns)
        .arg("--netns-dir")
        .arg(dir.join("netns"))
        .arg("--database")
        .arg(database)
        .arg("--socket")
        .arg(dir.join("weftd.sock"))
        .arg("--runtime-dir")
        .arg(runtime_dir)
        // No forwarding out of the sandbox, no writes to the real /etc/netns.
        .arg("--host-resolv-conf")
        .arg("/dev/null")
        .arg("--etc-netns-dir")
        .arg(dir.join("etc-netns"))
        .env("RUST_LOG", "info,weftd=debug")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("dup"))
        .stderr(log)
        .spawn()
        .expect("spawn the second weftd");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the second weftd is still running after 20 s\n--- its log ---\n{}",
                fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, fs::read_to_string(&log_path).unwrap_or_default())
}

/// A scratch namespace `/run/netns/<name>`, deleted on drop.
struct ScratchNs(String);

impl ScratchNs {
    fn new(name: String) -> ScratchNs {
        let out = run(Command::new("ip").args(["netns", "add", &name]));
        assert!(out.status.success(), "ip netns add {name}");
        ScratchNs(name)
    }

    fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.0)
    }
}

impl Drop for ScratchNs {
    fn drop(&mut self) {
        let _ = run(Command::new("ip").args(["netns", "del", &self.0]));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_weftd_on_the_same_host_namespace_exits_and_the_first_keeps_its_ports() {
    let sb = Sandbox::new("lockns").await;
    let outside = Outside::new(&sb);
    let c = sb.client();
    create_network(&c, network("web", "wb-lock", &["10.237.0.0/24"])).await;
    create_ns(&c, "srv").await;
    let mut req = connect_req("web", "srv");
    req.published_ports = vec![tcp_port(8090, 80)];
    connect(&c, req).await;
    let _server = EchoServer::start(&sb.ns_path("srv"), sa(Ipv4Addr::UNSPECIFIED, 80));
    let port = sa(HOST_IP, 8090);
    assert_tcp_ok(&outside.path, port, "through the published port, before").await;
    let before = nft_json(&sb, &["list", "ruleset"]);
    let elems = dnat_elems(&sb);
    assert!(!elems.is_empty(), "no DNAT element to lose");

    let second = sb.dir().join("second");
    let (status, log) = second_weftd(
        &sb.ns_path(""),
        &second,
        &second.join("weft.db"),
        &sb.runtime_dir(),
    );
    assert!(
        !status.success(),
        "the second weftd exited with {status}\n{log}"
    );
    let pid = sb.pid().expect("the first weftd runs");
    assert!(
        log.contains(&format!("pid {pid}")) && log.contains("host network namespace"),
        "the message does not name the first weftd's pid {pid}:\n{log}"
    );
    assert!(
        !second.join("weft.db").exists() && !second.join("weftd.sock").exists(),
        "the second weftd made its database or socket before it gave up"
    );
    // Its own runtime dir too (so its own lock file): the namespace's abstract socket
    // still keeps it out, naming the first weftd's pid.
    let third = sb.dir().join("third");
    let (status, log) = second_weftd(
        &sb.ns_path(""),
        &third,
        &third.join("weft.db"),
        &third.join("run"),
    );
    assert!(
        !status.success(),
        "the third weftd exited with {status}\n{log}"
    );
    assert!(
        log.contains(&format!("pid {pid}")) && log.contains("abstract socket"),
        "the message does not name the first weftd's pid {pid}:\n{log}"
    );
    assert!(
        !third.join("weft.db").exists(),
        "the third weftd made its database before it gave up"
    );

    assert_eq!(
        nft_json(&sb, &["list", "ruleset"]),
        before,
        "the ruleset changed"
    );
    assert_eq!(dnat_elems(&sb), elems);
    assert_tcp_ok(&outside.path, port, "through the published port, after").await;
    get_network(&c, "web").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_weftd_on_the_same_database_exits_naming_the_first() {
    let sb = Sandbox::new("lockdb").await;
    let c = sb.client();
    create_ns(&c, "n1").await;
    let other = ScratchNs::new(format!("{}x", sb.prefix));
    run(Command::new("ip").args(["-n", &other.0, "link", "set", "lo", "up"]));
    let second = sb.dir().join("second");
    let (status, log) = second_weftd(&other.path(), &second, sb.database(), &second.join("run"));
    assert!(
        !status.success(),
        "the second weftd exited with {status}\n{log}"
    );
    let pid = sb.pid().expect("the first weftd runs");
    assert!(
        log.contains(&format!("pid {pid}"))
            && log.contains(&format!("database {}", sb.database().display())),
        "the message does not name the database and the first weftd's pid {pid}:\n{log}"
    );
    // Nothing of weft's in the other namespace: only its loopback.
    let names = ok_at(&other.path(), &["ip", "-o", "link", "show"]);
    assert_eq!(names.lines().count(), 1, "{names}");
    // The first one still serves, and its database is its own.
    create_ns(&c, "n2").await;
    assert_eq!(
        fs::read_to_string(lock_file(sb.database()))
            .expect("lock file")
            .trim(),
        pid.to_string()
    );
}

/// `<database>.lock`.
fn lock_file(database: &Path) -> PathBuf {
    weftd::lock::database_lock_path(database)
}
