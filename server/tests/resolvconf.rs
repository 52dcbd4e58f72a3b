//! The resolv.conf weft writes for the namespaces it creates (issue 12, "Names"):
//! `<--etc-netns-dir>/<name>/resolv.conf` names the resolver of each connected network with
//! DNS (in connect order) and then the host's search and options; a namespace on no DNS
//! network gets the host's file without loopback nameservers. It follows Connect and
//! Disconnect, goes with the namespace, comes back after a restart if deleted while weftd was
//! stopped, is repaired by the resync if edited, and is what `ip netns exec` shows.
//!
//! Each test runs a sandboxed weftd (tests/common) whose `--etc-netns-dir` and
//! `--host-resolv-conf` are in its temp dir: nothing here writes the real /etc. The
//! `ip netns exec` test lays the sandbox's directory over /etc with a read-only overlay in a
//! private mount namespace that ends with the command; through the same overlay, `getent
//! hosts` (glibc's resolver, as a program in the namespace meets it) resolves names and
//! aliases with weft's resolver.

mod common;
#[path = "common/net.rs"]
mod net;

use std::{
    fs,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::PathBuf,
    process::Command,
    time::Duration,
};

use common::*;
use net::*;
use weft::v1::{DeleteNamespaceRequest, Network};

/// The host resolv.conf the tests give weftd: a loopback stub, a real-looking upstream
/// (never queried here), a search list and options.
const HOST_RESOLV: &str = "# host\nsearch corp.example\nnameserver 127.0.0.53\n\
                           nameserver 192.0.2.53\nnameserver ::1\noptions ndots:2 edns0\n";

/// The file weft writes for `ns`.
fn resolv_path(sb: &Sandbox, ns: &str) -> PathBuf {
    sb.etc_netns_dir().join(ns).join("resolv.conf")
}

/// The file's text (panics when it is missing).
fn resolv(sb: &Sandbox, ns: &str) -> String {
    fs::read_to_string(resolv_path(sb, ns))
        .unwrap_or_else(|e| panic!("{}: {e}", resolv_path(sb, ns).display()))
}

/// The file's `nameserver` addresses, in order.
fn nameservers(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("nameserver "))
        .map(|a| a.trim().to_string())
        .collect()
}

/// The file's lines that are not comments.
fn body(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// Connect `ns` to `net` on interface `ifname` (a namespace on several networks needs one
/// each), without a default route unless it is `eth0`.
fn on(net: &str, ns: &str, ifname: &str) -> weft::v1::ConnectRequest {
    weft::v1::ConnectRequest {
        interface_name: ifname.into(),
        skip_default_route: ifname != "eth0",
        ..connect_req(net, ns)
    }
}

async fn delete_ns(c: &weft::Client, name: &str) {
    rpc(c.namespaces().delete_namespace(DeleteNamespaceRequest {
        name: name.into(),
        ..Default::default()
    }))
    .await
    .unwrap_or_else(|e| panic!("delete namespace {name}: {e}"));
}

/// Three networks (dual-stack with DNS, IPv4 with DNS, IPv4 without), one namespace connected
/// and disconnected in turn: the nameservers follow, in connect order and only for networks
/// with DNS; without one the host's file minus its loopback nameservers; mode 0644; the file
/// and its directory go with the namespace.
#[tokio::test(flavor = "multi_thread")]
async fn resolv_conf_follows_connect_and_disconnect_and_goes_with_the_namespace() {
    let sb = Sandbox::new("rcfol").await;
    fs::write(sb.host_resolv_conf(), HOST_RESOLV).expect("host resolv.conf");
    let c = sb.client();
    create_network(
        &c,
        network("dual", "wb-rcdual", &["10.251.0.0/24", "fd00:251::/64"]),
    )
    .await;
    create_network(&c, network("v4", "wb-rcv4", &["10.251.1.0/24"])).await;
    let off = create_network(
        &c,
        Network {
            dns: Some(false),
            ..network("nodns", "wb-rcoff", &["10.251.2.0/24"])
        },
    )
    .await;
    assert_eq!(off.dns, Some(false));
    assert!(off.dns_servers.is_empty());

    create_ns(&c, "w").await;
    let host_like = [
        "search corp.example",
        "nameserver 192.0.2.53",
        "options ndots:2 edns0",
    ];
    assert_eq!(body(&resolv(&sb, "w")), host_like, "on no network");
    let mode = fs::metadata(resolv_path(&sb, "w"))
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o644);

    let ep = connect(&c, connect_req("dual", "w")).await;
    assert_eq!(ep.dns_servers, ["10.251.0.1", "fd00:251::1"]);
    assert_eq!(
        body(&resolv(&sb, "w")),
        [
            "nameserver 10.251.0.1",
            "nameserver fd00:251::1",
            "search corp.example",
            "options ndots:2 edns0"
        ]
    );
    connect(&c, on("v4", "w", "eth1")).await;
    assert_eq!(
        nameservers(&resolv(&sb, "w")),
        ["10.251.0.1", "fd00:251::1", "10.251.1.1"]
    );
    let ep = connect(&c, on("nodns", "w", "eth2")).await;
    assert!(ep.dns_servers.is_empty());
    assert_eq!(
        nameservers(&resolv(&sb, "w")),
        ["10.251.0.1", "fd00:251::1", "10.251.1.1"],
        "a network without DNS adds no nameserver"
    );

    disconnect(&c, "dual", "w").await;
    assert_eq!(nameservers(&resolv(&sb, "w")), ["10.251.1.1"]);
    connect(&c, connect_req("dual", "w")).await;
    assert_eq!(
        nameservers(&resolv(&sb, "w")),
        ["10.251.1.1", "10.251.0.1", "fd00:251::1"],
        "connect order"
    );
    disconnect(&c, "dual", "w").await;
    disconnect(&c, "v4", "w").await;
    assert_eq!(body(&resolv(&sb, "w")), host_like, "back on no DNS network");

    disconnect(&c, "nodns", "w").await;
    delete_ns(&c, "w").await;
    assert!(!resolv_path(&sb, "w").exists());
    assert!(
        !sb.etc_netns_dir().join("w").exists(),
        "the namespace's directory is left"
    );
}

/// A namespace on the default network only (no DNS, as Docker's default bridge) gets the
/// host's search and options, and no nameserver when the host's are all loopback (the
/// sandbox's is `127.0.0.1`): none is invented. An adopted namespace gets no file.
#[tokio::test(flavor = "multi_thread")]
async fn default_network_gets_the_hosts_options_and_no_loopback_nameserver() {
    let sb = Sandbox::new("rcdef").await;
    fs::write(
        sb.host_resolv_conf(),
        "nameserver 127.0.0.1\nsearch sb.example\noptions timeout:1 attempts:1\n",
    )
    .expect("host resolv.conf");
    let c = sb.client();
    create_ns(&c, "d").await;
    let ep = connect(&c, connect_req("bridge", "d")).await;
    assert!(ep.dns_servers.is_empty(), "the default network has no DNS");
    let text = resolv(&sb, "d");
    assert_eq!(
        body(&text),
        ["search sb.example", "options timeout:1 attempts:1"],
        "{text}"
    );
    assert!(nameservers(&text).is_empty(), "{text}");
    assert!(!text.contains("8.8.8.8"));
}

/// Stopped weftd, a file deleted: the restart writes it again; a file nobody touched is not
/// rewritten (same inode). Running, a file edited by hand is repaired by the resync.
#[tokio::test(flavor = "multi_thread")]
async fn restart_and_resync_converge_the_file() {
    let mut sb = Sandbox::builder("rcrst").resync(1).start().await;
    let c = sb.client();
    create_network(&c, network("n", "wb-rcrst", &["10.251.3.0/24"])).await;
    for ns in ["x", "y"] {
        create_ns(&c, ns).await;
        connect(&c, connect_req("n", ns)).await;
    }
    let want_x = resolv(&sb, "x");
    assert_eq!(nameservers(&want_x), ["10.251.3.1"]);
    let y_inode = fs::metadata(resolv_path(&sb, "y")).expect("meta").ino();

    sb.stop();
    fs::remove_dir_all(sb.etc_netns_dir().join("x")).expect("delete x's");
    sb.start().await;
    let path = resolv_path(&sb, "x");
    wait_for(Duration::from_secs(10), "x's resolv.conf back", || {
        fs::read_to_string(&path).is_ok_and(|t| t == want_x)
    })
    .await;
    assert_eq!(
        fs::metadata(resolv_path(&sb, "y")).expect("meta").ino(),
        y_inode,
        "a converged file was rewritten"
    );

    fs::write(&path, "nameserver 203.0.113.1\n").expect("edit by hand");
    wait_for(Duration::from_secs(10), "x's resolv.conf repaired", || {
        fs::read_to_string(&path).is_ok_and(|t| t == want_x)
    })
    .await;
}

/// The user's path: `ip netns exec NAME cat /etc/resolv.conf` shows weft's file. The
/// namespace lives in the real /run/netns (named with the sandbox's prefix, removed by the
/// sandbox); /etc/netns is the sandbox's directory, laid over /etc by a read-only overlay in
/// a private mount namespace, so the real /etc is never written, even on failure.
#[tokio::test(flavor = "multi_thread")]
async fn ip_netns_exec_shows_the_file_weft_wrote() {
    let sb = Sandbox::builder("rcexe").default_netns_dir().start().await;
    fs::write(sb.host_resolv_conf(), HOST_RESOLV).expect("host resolv.conf");
    let c = sb.client();
    let ns = format!("{}u", sb.prefix);
    create_network(&c, network("n", "wb-rcexe", &["10.251.4.0/24"])).await;
    create_ns(&c, &ns).await;
    connect(&c, connect_req("n", &ns)).await;
    let want = resolv(&sb, &ns);
    assert_eq!(nameservers(&want), ["10.251.4.1"]);

    let lower = etc_overlay_lower(&sb);
    let script = format!(
        "mount -t overlay weft-test -o lowerdir={}:/etc /etc && exec ip netns exec {ns} cat /etc/resolv.conf",
        lower.display()
    );
    let out = run(Command::new("unshare").args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
    ]));
    assert!(
        out.status.success(),
        "ip netns exec: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    assert!(
        !PathBuf::from("/etc/netns").join(&ns).exists(),
        "something wrote the real /etc/netns"
    );
}

/// The lower layer that lays the sandbox's `--etc-netns-dir` over /etc as /etc/netns (a
/// directory holding only the symlink `netns`), made on first use.
fn etc_overlay_lower(sb: &Sandbox) -> PathBuf {
    let lower = sb.dir().join("etc-overlay");
    if !lower.exists() {
        fs::create_dir(&lower).expect("overlay dir");
        std::os::unix::fs::symlink(sb.etc_netns_dir(), lower.join("netns")).expect("symlink");
    }
    lower
}

/// `ip netns exec NS sh -c SCRIPT` with the sandbox's `--etc-netns-dir` as /etc/netns (a
/// read-only overlay over /etc in a private mount namespace that ends with the command).
fn exec_with_weft_etc(sb: &Sandbox, ns: &str, script: &str) -> std::process::Output {
    let lower = etc_overlay_lower(sb);
    let outer = format!(
        "mount -t overlay weft-test -o lowerdir={}:/etc /etc && exec ip netns exec {ns} sh -c '{script}'",
        lower.display()
    );
    run(Command::new("unshare").args(["--mount", "--propagation", "private", "sh", "-c", &outer]))
}

/// The user's path to names: a program in a weft namespace asks glibc (`getent`, as `ping
/// NAME` or `curl` would), which reads the resolv.conf weft wrote and asks weft's resolver.
/// Names and aliases resolve (an alias two namespaces share gives both), a namespace on
/// another network gets nothing, and an unknown name fails at once.
#[tokio::test(flavor = "multi_thread")]
async fn getent_hosts_resolves_through_the_resolv_conf_weft_wrote() {
    let sb = Sandbox::builder("rcget").default_netns_dir().start().await;
    let c = sb.client();
    let p = &sb.prefix;
    let (u, v, w, x) = (
        format!("{p}u"),
        format!("{p}v"),
        format!("{p}w"),
        format!("{p}x"),
    );
    create_network(&c, network("n", "wb-rcget", &["10.251.6.0/24"])).await;
    create_network(&c, network("m", "wb-rcgetm", &["10.251.7.0/24"])).await;
    for ns in [&u, &v, &w, &x] {
        create_ns(&c, ns).await;
    }
    connect(&c, connect_req("n", &u)).await;
    let mut shared = Vec::new();
    for ns in [&v, &w] {
        let mut req = connect_req("n", ns);
        req.aliases = vec!["api".into()];
        shared.push(addr_of(&connect(&c, req).await.ipv4_address).to_string());
    }
    connect(&c, connect_req("m", &x)).await;

    let getent = |ns: &str, name: &str| {
        let out = exec_with_weft_etc(&sb, ns, &format!("getent ahostsv4 {name}"));
        let mut addrs: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(String::from)
            .collect();
        addrs.sort();
        addrs.dedup();
        (out.status.code(), addrs)
    };
    // By namespace name, by name.<network>, and by a shared alias (both holders).
    assert_eq!(
        getent(&u, &v),
        (Some(0), vec![shared[0].clone()]),
        "{v} from {u}"
    );
    assert_eq!(
        getent(&u, &format!("{v}.n")),
        (Some(0), vec![shared[0].clone()])
    );
    shared.sort();
    assert_eq!(
        getent(&u, "api"),
        (Some(0), shared),
        "the alias gives both holders"
    );
    // A namespace on another network resolves none of them.
    assert_eq!(
        getent(&x, &v).0,
        Some(2),
        "{x} (network m) resolved {v} of network n"
    );
    assert_eq!(
        getent(&x, "api").0,
        Some(2),
        "{x} (network m) resolved n's alias"
    );
    // An unknown name: NXDOMAIN at once (a timeout would take glibc 5 s per try).
    let t0 = std::time::Instant::now();
    assert_eq!(getent(&u, "no-such-name").0, Some(2));
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "an unknown name took {:?}: a timeout, not an answer",
        t0.elapsed()
    );
}

/// A process already running under `ip netns exec` sees what later Connects and Disconnects
/// change: `ip netns exec` bind-mounts the file itself over `/etc/resolv.conf`, so weft
/// writes changes into that file (a rename would leave the process reading the old text for
/// as long as it lives). Read through the process's own root (`/proc/PID/root`), as it
/// reads it; the file keeps its inode.
#[tokio::test(flavor = "multi_thread")]
async fn a_process_running_under_ip_netns_exec_sees_later_changes() {
    let sb = Sandbox::builder("rclive").default_netns_dir().start().await;
    fs::write(sb.host_resolv_conf(), HOST_RESOLV).expect("host resolv.conf");
    let c = sb.client();
    let ns = format!("{}l", sb.prefix);
    create_network(&c, network("n", "wb-rclive", &["10.251.8.0/24"])).await;
    create_network(&c, network("m", "wb-rclivm", &["10.251.9.0/24"])).await;
    create_ns(&c, &ns).await;
    connect(&c, connect_req("n", &ns)).await;
    let inode = fs::metadata(resolv_path(&sb, &ns)).expect("meta").ino();

    let lower = etc_overlay_lower(&sb);
    let script = format!(
        "mount -t overlay weft-test -o lowerdir={}:/etc /etc && exec ip netns exec {ns} sleep 120",
        lower.display()
    );
    let mut child = Reaped(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("spawn ip netns exec"),
    );
    let pid = child.0.id();
    // unshare, sh and ip netns exec each exec the next in the same process.
    wait_for(
        Duration::from_secs(10),
        "the process under ip netns exec",
        || {
            if let Ok(Some(status)) = child.0.try_wait() {
                panic!("the overlay mount or ip netns exec failed: {status}");
            }
            fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
        },
    )
    .await;
    let seen = || {
        fs::read_to_string(format!("/proc/{pid}/root/etc/resolv.conf"))
            .expect("read the process's /etc/resolv.conf")
    };
    assert_eq!(nameservers(&seen()), ["10.251.8.1"], "{}", seen());

    connect(&c, on("m", &ns, "eth1")).await;
    assert_eq!(nameservers(&resolv(&sb, &ns)), ["10.251.8.1", "10.251.9.1"]);
    assert_eq!(
        seen(),
        resolv(&sb, &ns),
        "the running process kept the old file"
    );

    disconnect(&c, "n", &ns).await;
    assert_eq!(nameservers(&seen()), ["10.251.9.1"], "{}", seen());
    assert_eq!(seen(), resolv(&sb, &ns));
    assert_eq!(
        fs::metadata(resolv_path(&sb, &ns)).expect("meta").ino(),
        inode,
        "the file was replaced"
    );
    drop(child);
    assert!(
        !PathBuf::from("/etc/netns").join(&ns).exists(),
        "something wrote the real /etc/netns"
    );
}
