//! Namespaces are made the way `ip netns add` makes them: a bind mount of a fresh network
//! namespace at `<netns-dir>/<name>`, loopback up; with the default netns dir `ip netns` sees
//! and enters them. Also: label selectors, and that a sandbox leaves nothing behind.

mod common;

use std::collections::HashMap;
use std::process::Command;

use common::*;
use weft::v1::{
    CreateNamespaceRequest, DeleteNamespaceRequest, GetNamespaceRequest, ListNamespacesRequest,
    Namespace,
};

fn ip_netns_names() -> Vec<String> {
    let out = run(Command::new("ip").args(["-j", "netns", "list"]));
    assert!(out.status.success(), "ip netns list: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim().is_empty() {
        return Vec::new();
    }
    let v: serde_json::Value = serde_json::from_str(&text).expect("ip -j netns list");
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Two weftds on two host namespaces share `/run/netns` (as two sandboxes do here, or a
/// sandbox and a weftd already running on the host): the second one's start-up garbage
/// collection must not take the first one's namespace for an orphan of its own.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_weftd_sharing_the_netns_dir_leaves_the_first_ones_namespaces_alone() {
    let first = Sandbox::builder("share").default_netns_dir().start().await;
    let name = format!("{}a", first.prefix);
    let ns = create_ns(&first.client(), &name).await;
    let mark = run(Command::new("ip").args(["-n", &name, "-j", "link", "show", "lo"]));
    let uid = ns.uid.clone();
    assert!(
        String::from_utf8_lossy(&mark.stdout).contains(&format!("weft:{uid}@")),
        "the loopback's mark names its weftd: {mark:?}"
    );
    let second = Sandbox::builder("share").default_netns_dir().start().await;
    // Its start-up garbage collection runs right after the start-up reconcile of an empty
    // store: give it ample time.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let info = rpc(second
        .client()
        .system()
        .get_system_info(weft::v1::GetSystemInfoRequest {}))
    .await
    .expect("GetSystemInfo");
    assert_eq!(
        info.orphans_removed, 0,
        "the second weftd removed something: {info:?}"
    );
    assert!(
        ip_netns_names().contains(&name),
        "the second weftd removed the first one's namespace {name}"
    );
    assert_eq!(
        first.link_names(&name),
        ["lo"],
        "the first one's namespace is intact"
    );
    drop(second);
}

#[tokio::test(flavor = "multi_thread")]
async fn ip_netns_sees_a_namespace_made_in_the_default_dir() {
    let sb = Sandbox::builder("defdir").default_netns_dir().start().await;
    let c = sb.client();
    let name = format!("{}d", sb.prefix);
    let ns = create_ns(&c, &name).await;
    assert_eq!(ns.status_path, format!("/run/netns/{name}"));

    assert!(
        ip_netns_names().contains(&name),
        "ip netns list lacks {name}: {:?}",
        ip_netns_names()
    );
    let out =
        run(Command::new("ip").args(["netns", "exec", &name, "ip", "-j", "link", "show", "lo"]));
    assert!(out.status.success(), "ip netns exec {name}: {out:?}");
    let lo: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j link show lo");
    assert!(has_flag(&lo[0], "UP"), "lo is down in {name}: {lo}");
    // The only interface in it is lo: it is a fresh namespace, not the host's.
    assert_eq!(sb.link_names(&name), ["lo"]);

    rpc(c.namespaces().delete_namespace(DeleteNamespaceRequest {
        dry_run: false,
        name: name.clone(),
        wait: None,
    }))
    .await
    .expect("DeleteNamespace");
    assert!(
        !ip_netns_names().contains(&name),
        "ip netns list still shows {name}"
    );
    assert!(!sb.ns_path(&name).exists());
    assert!(
        sb.own_mounts().is_empty(),
        "mounts left: {:?}",
        sb.own_mounts()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_namespace_is_a_bind_mount_with_loopback_up() {
    let sb = Sandbox::new("nsmount").await;
    let c = sb.client();
    let ns = create_ns(&c, "blue").await;
    let path = sb.ns_path("blue");
    assert_eq!(ns.status_path, path.display().to_string());
    assert!(
        mount_points().contains(&path),
        "{} is no mount",
        path.display()
    );
    let lo = sb.must_link("blue", "lo");
    assert!(has_flag(&lo, "UP"), "lo down: {lo}");
    assert_eq!(sb.link_names("blue"), ["lo"]);
    // A different namespace from the scratch host and from another weft namespace.
    create_ns(&c, "green").await;
    let ino = |p: &std::path::Path| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(p).expect("stat netns").ino()
    };
    assert_ne!(ino(&path), ino(&sb.ns_path("")));
    assert_ne!(ino(&path), ino(&sb.ns_path("green")));

    let got = rpc(c.namespaces().get_namespace(GetNamespaceRequest {
        name: "blue".into(),
    }))
    .await
    .expect("GetNamespace")
    .namespace
    .expect("namespace");
    assert_eq!(got.uid, ns.uid);
    assert_ready("blue", got.generation, got.status.as_ref());

    rpc(c.namespaces().delete_namespace(DeleteNamespaceRequest {
        dry_run: false,
        name: "blue".into(),
        wait: None,
    }))
    .await
    .expect("DeleteNamespace");
    assert!(!path.exists(), "{} still exists", path.display());
    assert!(
        !mount_points().contains(&path),
        "{} still mounted",
        path.display()
    );
    assert!(sb.ns_path("green").exists(), "green went too");
}

#[tokio::test(flavor = "multi_thread")]
async fn list_namespaces_filters_by_label_selector() {
    let sb = Sandbox::new("labels").await;
    let c = sb.client();
    for (name, labels) in [
        ("a", vec![("team", "red"), ("tier", "web")]),
        ("b", vec![("team", "blue")]),
        ("c", vec![]),
    ] {
        let ns = Namespace {
            name: name.into(),
            labels: labels
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>(),
            ..Default::default()
        };
        let got = rpc(c.namespaces().create_namespace(CreateNamespaceRequest {
            dry_run: false,
            request_id: String::new(),
            namespace: Some(ns),
            wait: None,
        }))
        .await
        .expect("CreateNamespace")
        .namespace
        .expect("namespace");
        assert_ready(name, got.generation, got.status.as_ref());
    }
    for (selector, want) in [
        ("", vec!["a", "b", "c"]),
        ("team=red", vec!["a"]),
        ("team!=red", vec!["b", "c"]),
        ("team", vec!["a", "b"]),
        ("!team", vec!["c"]),
        ("team=red,tier=web", vec!["a"]),
        ("team=blue,tier", vec![]),
    ] {
        let names: Vec<String> = rpc(c.namespaces().list_namespaces(ListNamespacesRequest {
            label_selector: selector.into(),
            ..Default::default()
        }))
        .await
        .unwrap_or_else(|s| panic!("ListNamespaces {selector:?}: {s:?}"))
        .namespaces
        .into_iter()
        .map(|n| n.name)
        .collect();
        assert_eq!(names, want, "selector {selector:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sandbox_teardown_leaves_nothing_behind() {
    let sb = Sandbox::new("teardown").await;
    let c = sb.client();
    create_ns(&c, "ns1").await;
    create_ns(&c, "ns2").await;
    create_link(&c, seed_link()).await;
    let dir = sb.dir().to_path_buf();
    let host = sb.host_ns.clone();
    assert!(!sb.own_mounts().is_empty(), "the namespaces are no mounts");
    assert!(ip_netns_names().contains(&host));
    drop(sb);

    let left: Vec<_> = mount_points()
        .into_iter()
        .filter(|m| m.starts_with(&dir))
        .collect();
    assert!(left.is_empty(), "mounts left behind: {left:?}");
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(!ip_netns_names().contains(&host), "{host} left behind");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_shuts_down_cleanly_and_state_survives() {
    let mut sb = Sandbox::new("sigterm").await;
    let c = sb.client();
    let ns = create_ns(&c, "keep").await;
    drop(c);
    // An idle daemon has nothing to wait for: it should be gone at once, not after a timeout.
    let t = std::time::Instant::now();
    let status = sb.stop();
    let took = t.elapsed();
    assert!(status.success(), "weftd exited with {status} on SIGTERM");
    // The namespace outlives the daemon, and the store still has it after a start.
    assert!(mount_points().contains(&sb.ns_path("keep")));
    sb.start().await;
    let got = rpc(sb.client().namespaces().get_namespace(GetNamespaceRequest {
        name: "keep".into(),
    }))
    .await
    .expect("GetNamespace after restart")
    .namespace
    .expect("namespace");
    assert_eq!(got.uid, ns.uid);
    assert!(
        took < std::time::Duration::from_secs(3),
        "an idle weftd took {took:?} to shut down after SIGTERM"
    );
}

/// A test process that is killed (by its timeout, nextest's SIGTERM, by hand) drops none of its
/// sandboxes. The next sandbox sweeps what a gone process left: the processes naming its temp
/// dir, the mounts under it, its namespace files, the dir. A live process's stay. Fixtures
/// shaped as sandboxes leave, one for a process that exited, one for this live one, in a
/// root of the test's own (so no other test process's sweep of the temp dir finds them).
#[test]
fn a_gone_test_process_sandbox_leftovers_are_swept_and_a_live_ones_are_not() {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    for name in [
        "weft-abcdefghi1-1xj-x",
        "weft-ab-1xj-x",
        "weft-1-1xj-x",
        "weft-ab1-1xj",
        "weft-ab1--x",
        "weft-Ab1-1xj-x",
        "weft-ab1-1Xj-x",
        "weft-alone-ran-123",
        "wbench1xj-x",
    ] {
        assert_eq!(sandbox_of_dir(name), None, "{name} is not a sandbox's dir");
    }
    assert_eq!(
        sandbox_of_dir("weft-podns12-1xj-podmanQ1w2e3"),
        Some(("podns12-1xj-".to_string(), 2503))
    );

    let ok = |c: &mut Command| {
        let out = run(c);
        assert!(
            out.status.success(),
            "{c:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let root = tempfile::Builder::new()
        .prefix("sweeptest-")
        .tempdir()
        .expect("a root for the fixtures");
    let mut gone = Command::new("true").spawn().expect("spawn true");
    gone.wait().expect("reap true");
    let gone = gone.id();
    assert!(
        !Path::new(&format!("/proc/{gone}")).exists(),
        "pid {gone} came back at once"
    );
    struct Fixture {
        dir: PathBuf,
        ns: String,
        mount: PathBuf,
        child: std::process::Child,
    }
    let fixture = |pid: u32| {
        let prefix = format!("sweep0-{}-", base36(pid));
        let dir = tempfile::Builder::new()
            .prefix(&format!("weft-{prefix}"))
            .tempdir_in(root.path())
            .expect("temp dir")
            .keep();
        assert_eq!(
            sandbox_of_dir(&dir.file_name().unwrap().to_string_lossy()),
            Some((prefix.clone(), pid))
        );
        let ns = format!("{prefix}h");
        ok(Command::new("ip").args(["netns", "add", &ns]));
        let mount = dir.join("m");
        std::fs::create_dir(&mount).expect("mkdir");
        ok(Command::new("mount")
            .args(["-t", "tmpfs", "none"])
            .arg(&mount));
        let log = dir.join("log");
        std::fs::write(&log, "").expect("write");
        // A stand-in for the sandbox's weftd: named so, the dir on its command line.
        let child = Command::new("tail")
            .arg0("weftd")
            .arg("-f")
            .arg(&log)
            .spawn()
            .expect("spawn tail");
        Fixture {
            dir,
            ns,
            mount,
            child,
        }
    };
    let mut dead = fixture(gone);
    let mut live = fixture(std::process::id());
    // A process that only names the gone dir is not one of a sandbox's: it stays.
    let mut reader = Command::new("tail")
        .arg("-f")
        .arg(dead.dir.join("log"))
        .spawn()
        .expect("spawn a reader");

    let swept = sweep_dead_sandboxes_in(root.path());

    // Killed by the sweep, it has exited by now (or soon: a signal is delivered at once).
    let t0 = Instant::now();
    let status = loop {
        match dead.child.try_wait().expect("try_wait") {
            Some(status) => break Some(status),
            None if t0.elapsed() > Duration::from_secs(5) => break None,
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    if status.is_none() {
        let _ = dead.child.kill();
        let _ = dead.child.wait();
    }
    let reader_left = reader.try_wait().expect("try_wait").is_none();
    let _ = reader.kill();
    let _ = reader.wait();
    let dead_left = (
        dead.dir.exists(),
        mount_points().contains(&dead.mount),
        Path::new("/run/netns").join(&dead.ns).exists(),
    );
    let live_kept = (
        live.child.try_wait().expect("try_wait").is_none(),
        live.dir.exists(),
        mount_points().contains(&live.mount),
        Path::new("/run/netns").join(&live.ns).exists(),
    );
    // Everything of both fixtures goes before any assertion, whatever the sweep did.
    for f in [&mut dead, &mut live] {
        let _ = f.child.kill();
        let _ = f.child.wait();
        let _ = nix::mount::umount2(&f.mount, nix::mount::MntFlags::MNT_DETACH);
        let _ = run(Command::new("ip").args(["netns", "del", &f.ns]));
    }
    drop(root);

    assert_eq!(
        status.and_then(|s| s.signal()),
        Some(9),
        "the gone sandbox's process was not killed: {swept:?}"
    );
    assert!(reader_left, "a process not of a sandbox's was killed");
    assert_eq!(
        dead_left,
        (false, false, false),
        "the gone sandbox's dir, mount or namespace is left: {swept:?}"
    );
    assert_eq!(
        live_kept,
        (true, true, true, true),
        "a live process's sandbox was touched (process, dir, mount, namespace): {swept:?}"
    );
}
