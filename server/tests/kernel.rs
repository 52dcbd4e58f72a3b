//! Real-kernel tests of `weftd::kernel` (run as root).
//!
//! Every test builds a [`Sandbox`]: a scratch namespace made with `ip netns add wk-<test>-<pid>`
//! that plays the host (`host_netns`), and a temporary directory as the netns dir, so nothing on
//! the real host is touched. The sandbox's `Drop` unmounts and removes everything it or the
//! kernel layer made, even when the test panics. Observations go through `ip -j` inside the
//! namespaces (`nsenter --net=FILE`), independently of the code under test; traffic goes only to
//! addresses the test assigned inside its own namespaces.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use ipnet::IpNet;
use nix::{
    errno::Errno,
    mount::{MntFlags, umount2},
};
use serde_json::Value;
use weftd::kernel::prelude::*;
use weftd::kernel::{
    Kernel, KernelError, LinkChange, LinkState, NEWBORN_GROUP, NsRef, RTPROT_WEFT, RouteState,
};

// ---------------------------------------------------------------------------------------------
// The sandbox
// ---------------------------------------------------------------------------------------------

/// A scratch host namespace, a temporary netns dir and a `Kernel` pointed at them.
struct Sandbox {
    /// `ip netns` name of the scratch host namespace.
    host_name: String,
    /// Prefix for named namespaces this test creates.
    prefix: String,
    kernel: Kernel,
    netns_dir: PathBuf,
    // Dropped last, after `Drop::drop` unmounted everything inside it.
    _tmp: tempfile::TempDir,
}

impl Sandbox {
    fn new(test: &str) -> Self {
        let prefix = format!("wk-{test}-{}", std::process::id());
        let host_name = format!("{prefix}-host");
        run("ip", &["netns", "add", &host_name]);
        let tmp = tempfile::tempdir().expect("temp dir");
        let netns_dir = tmp.path().join("netns");
        let kernel = Kernel::new(Some(host_path(&host_name)), netns_dir.clone())
            .expect("Kernel::new on a scratch host namespace");
        Sandbox {
            host_name,
            prefix,
            kernel,
            netns_dir,
            _tmp: tmp,
        }
    }

    /// The scratch host namespace's file.
    fn host_file(&self) -> PathBuf {
        host_path(&self.host_name)
    }

    /// A unique named-namespace name for this test.
    fn ns_name(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.prefix)
    }

    /// Creates a named namespace through the code under test.
    async fn named(&self, suffix: &str) -> (PathBuf, NsRef) {
        let path = self
            .kernel
            .create_named_netns(&self.ns_name(suffix))
            .await
            .expect("create named netns");
        (path.clone(), NsRef::path(&path))
    }

    async fn link(&self, ns: &NsRef, name: &str) -> LinkState {
        self.kernel
            .get_link(ns, name)
            .await
            .expect("get_link")
            .unwrap_or_else(|| panic!("link {name} missing"))
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // Named namespaces: unmount (lazily, like `ip netns del`) and remove.
        if let Ok(entries) = std::fs::read_dir(&self.netns_dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                while umount2(&path, MntFlags::MNT_DETACH).is_ok() {}
                let _ = std::fs::remove_file(&path);
            }
        }
        // The netns dir itself was bind-mounted onto itself to make it shared.
        while umount2(&self.netns_dir, MntFlags::MNT_DETACH).is_ok() {}
        // What the test made with `ip netns add` under its prefix, then the scratch host.
        let mine = format!("{}-", self.prefix);
        let others = std::fs::read_dir("/run/netns")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.starts_with(&mine) && *n != self.host_name);
        for name in others.chain([self.host_name.clone()]) {
            let _ = Command::new("ip").args(["netns", "del", &name]).status();
        }
    }
}

fn host_path(name: &str) -> PathBuf {
    Path::new("/run/netns").join(name)
}

// ---------------------------------------------------------------------------------------------
// Observing the kernel independently
// ---------------------------------------------------------------------------------------------

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// `ip -j <args>` inside the namespace file `ns`.
fn ip_json(ns: &Path, args: &[&str]) -> Value {
    let net = format!("--net={}", ns.display());
    let mut all = vec![net.as_str(), "ip", "-j"];
    all.extend_from_slice(args);
    let text = run("nsenter", &all);
    if text.trim().is_empty() {
        return Value::Array(Vec::new());
    }
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("ip -j {args:?}: {e}: {text}"))
}

/// The names of all interfaces in `ns`.
fn link_names(ns: &Path) -> Vec<String> {
    ip_json(ns, &["link", "show"])
        .as_array()
        .expect("array")
        .iter()
        .map(|l| l["ifname"].as_str().expect("ifname").to_string())
        .collect()
}

/// `ip -j -d link show <name>` in `ns`, as one object.
fn ip_link(ns: &Path, name: &str) -> Value {
    let v = ip_json(ns, &["-d", "link", "show", "dev", name]);
    v.as_array()
        .and_then(|a| a.first())
        .cloned()
        .expect("one link")
}

fn has_flag(link: &Value, flag: &str) -> bool {
    link["flags"]
        .as_array()
        .is_some_and(|f| f.iter().any(|x| x == flag))
}

fn net(text: &str) -> IpNet {
    text.parse().expect("ip net")
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("ip")
}

fn errno(e: &KernelError) -> Errno {
    Errno::from_raw(e.errno().unwrap_or_else(|| panic!("no errno in {e}")))
}

const UP: LinkChange = LinkChange {
    mtu: None,
    mac: None,
    up: Some(true),
    master: None,
    alias: None,
    name: None,
    group: None,
    hairpin: None,
    ipv6_addr_gen_none: false,
};

// ---------------------------------------------------------------------------------------------
// Namespaces
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_netns_is_created_like_ip_netns_add_idempotently_and_deleted() {
    let sb = Sandbox::new("netns");
    let k = &sb.kernel;
    let name = sb.ns_name("a");

    let path = k.create_named_netns(&name).await.expect("create");
    assert_eq!(path, sb.netns_dir.join(&name));
    assert_eq!(path, k.named_netns_path(&name));
    assert!(k.is_netns(&path), "the file is an nsfs mount");
    assert!(!k.is_netns(&sb.netns_dir), "a directory is not a namespace");
    assert!(!k.is_netns(&sb.netns_dir.join("absent")));
    // One write for the namespace, one for `lo up`.
    assert_eq!(k.writes(), 2);

    // A namespace of its own (not the host's), with only loopback, and loopback up.
    assert_eq!(link_names(&path), vec!["lo".to_string()]);
    let lo = ip_link(&path, "lo");
    assert!(has_flag(&lo, "UP"), "lo is up: {lo}");
    let host_ino =
        std::fs::metadata(sb.host_file()).map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    let ns_ino = std::fs::metadata(&path).map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    assert_ne!(
        host_ino.unwrap(),
        ns_ino.unwrap(),
        "a new namespace, not the host's"
    );

    // The netns dir is a shared mount point, as `ip netns add` leaves /run/netns, and so is
    // each namespace's file, so both propagate to other mount namespaces.
    let dir = sb.netns_dir.to_string_lossy().to_string();
    let shared = |mount_point: &str| {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(mount_point) && l.contains("shared:"))
    };
    assert!(shared(&dir), "{dir} is a shared mount point");
    assert!(
        shared(&path.to_string_lossy()),
        "{} is shared",
        path.display()
    );

    // Idempotent: a second create changes nothing.
    let again = k.create_named_netns(&name).await.expect("create again");
    assert_eq!(again, path);
    assert_eq!(
        k.writes(),
        2,
        "re-creating an existing namespace makes no write"
    );

    // ...but repairs a namespace whose loopback went down.
    run(
        "nsenter",
        &[
            &format!("--net={}", path.display()),
            "ip",
            "link",
            "set",
            "lo",
            "down",
        ],
    );
    k.create_named_netns(&name)
        .await
        .expect("create repairs lo");
    assert!(has_flag(&ip_link(&path, "lo"), "UP"));
    assert_eq!(k.writes(), 3);

    // Delete, then delete again (Ok when absent).
    k.delete_named_netns(&name).await.expect("delete");
    assert!(!path.exists(), "the file is gone");
    assert!(!k.is_netns(&path));
    assert_eq!(k.writes(), 4);
    k.delete_named_netns(&name).await.expect("delete again");
    assert_eq!(k.writes(), 4, "deleting nothing makes no write");

    // Made private by someone else, the dir is shared again by the next create (the mounts
    // under it are made shared recursively only the first time), and the new namespace's
    // file is shared too.
    run("mount", &["--make-private", &dir]);
    assert!(!shared(&dir));
    let other = k
        .create_named_netns(&sb.ns_name("b"))
        .await
        .expect("create b");
    assert!(shared(&dir), "{dir} is shared again");
    assert!(
        shared(&other.to_string_lossy()),
        "{} is shared",
        other.display()
    );
    k.delete_named_netns(&sb.ns_name("b"))
        .await
        .expect("delete b");
}

/// The first create makes every mount already under the netns dir shared, as `ip netns add`
/// does at each create (later creates make only the dir shared: a mount made under a shared
/// mount is shared itself). The sandbox's drop unmounts what is under the dir.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_create_shares_the_mounts_already_under_the_netns_dir() {
    let sb = Sandbox::new("rshared");
    let k = &sb.kernel;
    let dir = sb.netns_dir.to_string_lossy().to_string();
    std::fs::create_dir_all(&sb.netns_dir).unwrap();
    run("mount", &["--bind", &dir, &dir]);
    run("mount", &["--make-private", &dir]);
    let sub = sb.netns_dir.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let sub = sub.to_string_lossy().to_string();
    run("mount", &["-t", "tmpfs", "-o", "size=1m", "none", &sub]);
    run("mount", &["--make-private", &sub]);
    let shared = |mount_point: &str| {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(mount_point) && l.contains("shared:"))
    };
    assert!(!shared(&sub) && !shared(&dir));
    k.create_named_netns(&sb.ns_name("a"))
        .await
        .expect("create a");
    assert!(shared(&dir), "{dir} is shared");
    assert!(shared(&sub), "{sub} under it was made shared too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_netns_replaces_a_leftover_placeholder_and_refuses_other_files() {
    let sb = Sandbox::new("placeholder");
    let k = &sb.kernel;

    // A crash between creating the file and mounting on it leaves an empty file.
    let first = k
        .create_named_netns(&sb.ns_name("a"))
        .await
        .expect("create");
    let leftover = sb.netns_dir.join(sb.ns_name("b"));
    std::fs::write(&leftover, b"").unwrap();
    let path = k
        .create_named_netns(&sb.ns_name("b"))
        .await
        .expect("replace placeholder");
    assert_eq!(path, leftover);
    assert!(k.is_netns(&path));
    assert_ne!(
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&first).unwrap()),
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap()),
    );

    // A directory in the way is an error, and is left alone.
    let dir = sb.netns_dir.join(sb.ns_name("c"));
    std::fs::create_dir(&dir).unwrap();
    let err = k.create_named_netns(&sb.ns_name("c")).await.unwrap_err();
    assert_eq!(errno(&err), Errno::EEXIST, "{err}");
    assert!(err.is_exists());
    assert!(err.to_string().contains("not a network namespace"), "{err}");
    assert!(dir.is_dir());
    std::fs::remove_dir(&dir).unwrap();

    // Names are single path components.
    for bad in ["", ".", "..", "x/y"] {
        let err = k.create_named_netns(bad).await.unwrap_err();
        assert_eq!(errno(&err), Errno::EINVAL, "{bad:?}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kernel_new_rejects_a_host_netns_that_is_not_a_namespace() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-netns");
    std::fs::write(&file, b"").unwrap();
    let err = Kernel::new(Some(file), tmp.path().join("netns")).unwrap_err();
    assert_eq!(errno(&err), Errno::EINVAL, "{err}");
    let err = Kernel::new(Some(tmp.path().join("absent")), tmp.path().join("netns")).unwrap_err();
    assert_eq!(errno(&err), Errno::EINVAL, "{err}");

    fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync_clone::<Kernel>();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_file_recreated_behind_our_back_gets_a_fresh_socket() {
    let sb = Sandbox::new("stale");
    let k = &sb.kernel;
    let (path, ns) = sb.named("a").await;
    k.create_bridge(&ns, "old0")
        .await
        .expect("bridge in the first namespace");

    // Someone else deletes the namespace (weft's cached socket keeps it alive)...
    umount2(&path, MntFlags::MNT_DETACH).unwrap();
    std::fs::remove_file(&path).unwrap();
    // ...and a brand-new namespace takes its name.
    k.create_named_netns(&sb.ns_name("a"))
        .await
        .expect("re-create");

    // The cached socket still points at the old namespace; the layer must notice.
    assert!(
        k.get_link(&ns, "old0").await.unwrap().is_none(),
        "old0 was in the old namespace"
    );
    k.create_bridge(&ns, "new0")
        .await
        .expect("bridge in the new namespace");
    let names = link_names(&path);
    assert!(names.contains(&"new0".to_string()), "{names:?}");
    assert!(!names.contains(&"old0".to_string()), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_are_safe_and_tokio_threads_never_change_namespace() {
    let sb = Sandbox::new("concurrent");
    let name = sb.ns_name("a");

    // Sixteen callers create the same namespace at once: one namespace, all succeed.
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (k, name) = (sb.kernel.clone(), name.clone());
        set.spawn(async move { k.create_named_netns(&name).await });
    }
    let paths: Vec<PathBuf> = set
        .join_all()
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert!(paths.iter().all(|p| *p == paths[0]));
    assert!(sb.kernel.is_netns(&paths[0]));
    // One mount, at least one `lo up` (a caller may repeat it while the first is in flight).
    assert!(
        (2..=17).contains(&sb.kernel.writes()),
        "{}",
        sb.kernel.writes()
    );
    assert!(has_flag(&ip_link(&paths[0], "lo"), "UP"));

    // Eight namespaces, each getting a veth from the host, all at once.
    let mut set = tokio::task::JoinSet::new();
    for i in 0..8 {
        let k = sb.kernel.clone();
        let name = sb.ns_name(&format!("c{i}"));
        set.spawn(async move {
            let path = k.create_named_netns(&name).await?;
            let ns = NsRef::path(&path);
            k.create_veth(&NsRef::Host, &format!("wc{i}"), &ns, "eth0")
                .await?;
            Ok::<_, KernelError>((i, path))
        });
    }
    for (i, path) in set.join_all().await.into_iter().map(|r| r.unwrap()) {
        assert!(link_names(&path).contains(&"eth0".to_string()));
        assert!(link_names(&sb.host_file()).contains(&format!("wc{i}")));
    }

    // No tokio thread was ever moved into another namespace.
    let own = std::fs::read_link("/proc/self/ns/net").unwrap();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..32 {
        set.spawn(async { std::fs::read_link("/proc/thread-self/ns/net").unwrap() });
        set.spawn_blocking(|| std::fs::read_link("/proc/thread-self/ns/net").unwrap());
    }
    for link in set.join_all().await {
        assert_eq!(link, own);
    }
}

/// The kernel runs one dump at a time per netlink socket and answers a second with EBUSY; reads
/// share one socket per namespace, so they must take turns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_on_one_namespace_do_not_get_ebusy() {
    let sb = Sandbox::new("ebusy");
    let h = NsRef::Host;
    sb.kernel.create_bridge(&h, "wbr0").await.unwrap();
    let br = sb.link(&h, "wbr0").await;
    sb.kernel
        .add_address(&h, br.index, net("10.3.0.1/24"), false)
        .await
        .unwrap();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..200 {
        let k = sb.kernel.clone();
        let h = h.clone();
        set.spawn(async move {
            match i % 3 {
                0 => k.get_link(&h, "wbr0").await.map(|l| l.is_some()),
                1 => k.get_link_by_index(&h, 1).await.map(|l| l.is_some()),
                _ => k.list_routes(&h, br.index).await.map(|r| r.is_empty()),
            }
        });
    }
    for result in set.join_all().await {
        assert!(result.expect("concurrent read"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_defaults_to_weftds_own_namespace() {
    // Read-only on the real host: look at loopback, change nothing.
    let tmp = tempfile::tempdir().unwrap();
    let k = Kernel::new(None, tmp.path().join("netns")).unwrap();
    assert_eq!(k.host_netns(), None);
    let lo = k.get_link(&NsRef::Host, "lo").await.unwrap().expect("lo");
    assert_eq!(lo.index, 1);
    assert!(
        lo.addresses.contains(&net("127.0.0.1/8")),
        "{:?}",
        lo.addresses
    );
    assert_eq!(k.writes(), 0);
    assert!(
        !tmp.path().join("netns").exists(),
        "nothing created before it is needed"
    );
}

/// The id the scratch host gives the namespace named `name` in /run/netns (`ip netns
/// list-id`, read independently of the code under test).
fn listed_nsid(sb: &Sandbox, name: &str) -> Option<i64> {
    let listed = ip_json(&sb.host_file(), &["netns", "list-id"]);
    listed
        .as_array()?
        .iter()
        .find(|e| e["name"].as_str() == Some(name))?["nsid"]
        .as_i64()
}

/// weft's namespace ids count down from the top of its range, so the newest namespace has
/// the lowest of them (the kernel's walks of the host's ids, in ascending order, meet it
/// first); an id another tool holds is skipped, a namespace that already has an id keeps
/// it, and a second weftd on the same host (a restart) goes on below the lowest id there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_ids_count_down_below_the_lowest_weft_gave_and_skip_taken_ones() {
    let sb = Sandbox::new("nsid");
    let k = &sb.kernel;
    let (_, a) = sb.named("a").await;
    let (_, b) = sb.named("b").await;
    let id_a = k.netns_id(&a).await.expect("id of a").expect("a has an id");
    assert_eq!(
        id_a,
        (1 << 30) - 1,
        "the first id is the top of weft's range"
    );
    let id_b = k.netns_id(&b).await.expect("id of b").expect("b has an id");
    assert_eq!(id_b, id_a - 1, "the next one is one lower");
    assert_eq!(
        k.netns_id(&a).await.unwrap(),
        Some(id_a),
        "asked again: kept"
    );

    // Another tool takes the id weft would give next, and gives one namespace an id of the
    // kernel's choosing (the lowest free one).
    let taken = sb.ns_name("taken");
    let auto = sb.ns_name("auto");
    run("ip", &["netns", "add", &taken]);
    run("ip", &["netns", "add", &auto]);
    let host = sb.host_name.clone();
    run(
        "ip",
        &["-n", &host, "netns", "set", &taken, &(id_b - 1).to_string()],
    );
    run("ip", &["-n", &host, "netns", "set", &auto, "auto"]);
    assert_eq!(listed_nsid(&sb, &taken), Some(i64::from(id_b - 1)));
    let (_, c) = sb.named("c").await;
    let writes = k.writes();
    let id_c = k.netns_id(&c).await.unwrap().expect("c has an id");
    assert_eq!(id_c, id_b - 2, "the id another tool holds is skipped");
    assert_eq!(k.writes(), writes + 1, "the skipped id is no write");
    let auto_id = listed_nsid(&sb, &auto).expect("auto has an id");
    assert!(auto_id < 1 << 29, "the kernel's own pick: {auto_id}");
    assert_eq!(
        k.netns_id(&NsRef::path(host_path(&auto))).await.unwrap(),
        Some(auto_id as i32),
        "a namespace with an id keeps it"
    );

    // A restart: a new kernel layer on the same host starts below the lowest id there.
    let again = Kernel::new(Some(sb.host_file()), sb.netns_dir.clone()).unwrap();
    let (_, d) = sb.named("d").await;
    let id_d = again.netns_id(&d).await.unwrap().expect("d has an id");
    assert_eq!(id_d, id_c - 1, "after a restart: below the lowest");
    // Two callers at once for one namespace get one id: whichever took, the other reads it.
    let (_, e) = sb.named("e").await;
    let (e1, e2) = tokio::join!(again.netns_id(&e), again.netns_id(&e));
    let id_e = e1.unwrap().expect("e has an id");
    assert_eq!(e2.unwrap(), Some(id_e), "the same id for both callers");
    assert!(
        [id_d - 1, id_d - 2].contains(&id_e),
        "{id_e} against {id_d}"
    );
    again.forget(&d);
    again.forget(&e);
    // What the kernel says, read independently: every id as weft gave it.
    let listed = ip_json(&sb.host_file(), &["netns", "list-id"]);
    let mut ids: Vec<i64> = listed
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|e| e["nsid"].as_i64())
        .collect();
    ids.sort_unstable();
    let want = [id_e, id_d, id_c, id_b - 1, id_b, id_a].map(i64::from);
    assert!(ids.ends_with(&want), "{ids:?}");
    assert_eq!(ids.len(), want.len() + 1, "and the kernel's pick: {ids:?}");
}

// ---------------------------------------------------------------------------------------------
// Links
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn veth_peer_is_born_in_its_namespace() {
    let sb = Sandbox::new("veth");
    let k = &sb.kernel;
    let host = sb.host_file();
    let (a_path, a) = sb.named("a").await;
    let before = k.writes();

    // Host end in the (scratch) host, peer born in A.
    k.create_veth(&NsRef::Host, "wv0", &a, "wv1")
        .await
        .expect("veth host->a");
    assert_eq!(k.writes(), before + 1, "one request");
    let host_links = link_names(&host);
    let a_links = link_names(&a_path);
    assert!(host_links.contains(&"wv0".into()), "{host_links:?}");
    assert!(!host_links.contains(&"wv1".into()), "{host_links:?}");
    assert!(a_links.contains(&"wv1".into()), "{a_links:?}");
    assert!(!a_links.contains(&"wv0".into()), "{a_links:?}");

    let wv0 = sb.link(&NsRef::Host, "wv0").await;
    let wv1 = sb.link(&a, "wv1").await;
    assert_eq!(wv0.kind.as_deref(), Some("veth"));
    assert_eq!(wv1.kind.as_deref(), Some("veth"));
    assert!(!wv0.up && !wv1.up, "created down");
    assert_eq!(
        wv0.mac.as_deref(),
        ip_link(&host, "wv0")["address"].as_str()
    );
    assert_eq!(
        wv1.mac.as_deref(),
        ip_link(&a_path, "wv1")["address"].as_str()
    );
    assert_eq!(wv1.mtu, 1500);
    assert_eq!(
        Some(wv1.index),
        ip_link(&a_path, "wv1")["ifindex"]
            .as_u64()
            .map(|i| i as u32)
    );
    assert_eq!(
        k.get_link_by_index(&a, wv1.index).await.unwrap().as_ref(),
        Some(&wv1)
    );

    // The other direction: first end in A, peer born in the host.
    k.create_veth(&a, "wr0", &NsRef::Host, "wr1")
        .await
        .expect("veth a->host");
    assert!(link_names(&a_path).contains(&"wr0".into()));
    assert!(link_names(&host).contains(&"wr1".into()));

    // Both ends in one namespace.
    k.create_veth(&a, "ws0", &a, "ws1")
        .await
        .expect("veth a->a");
    let a_links = link_names(&a_path);
    assert!(a_links.contains(&"ws0".into()) && a_links.contains(&"ws1".into()));

    // Between two named namespaces, neither of them the host.
    let (b_path, b) = sb.named("b").await;
    k.create_veth(&a, "wt0", &b, "wt1")
        .await
        .expect("veth a->b");
    assert!(link_names(&a_path).contains(&"wt0".into()));
    assert!(link_names(&b_path).contains(&"wt1".into()));
    assert!(!link_names(&host).contains(&"wt1".into()));

    // Names are taken: EEXIST, with a helpful op text.
    let err = k
        .create_veth(&NsRef::Host, "wv0", &a, "zz1")
        .await
        .unwrap_err();
    assert!(err.is_exists(), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("create veth wv0") && text.contains("peer zz1"),
        "{text}"
    );
    let err = k
        .create_veth(&NsRef::Host, "zz0", &a, "wv1")
        .await
        .unwrap_err();
    assert!(err.is_exists(), "peer name taken in A: {err}");
    assert!(
        !link_names(&host).contains(&"zz0".into()),
        "nothing half-made"
    );

    // Deleting one end removes the pair; deleting again is Ok.
    k.delete_link(&NsRef::Host, wv0.index)
        .await
        .expect("delete");
    assert!(k.get_link(&a, "wv1").await.unwrap().is_none());
    assert!(!link_names(&a_path).contains(&"wv1".into()));
    k.delete_link(&NsRef::Host, wv0.index)
        .await
        .expect("delete again is Ok");
}

/// A veth create with `NLM_F_ECHO` answers the host end as a read right after it would show
/// it (the read a Connect's prepare no longer makes), its `link` the peer's index in the
/// peer's namespace; a taken name is still `EEXIST` with nothing made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_echoed_veth_create_answers_the_host_end_as_a_read_would() {
    let sb = Sandbox::new("vecho");
    let k = &sb.kernel;
    let host = sb.host_file();
    let (a_path, a) = sb.named("a").await;
    let before = k.writes();

    let echoed = k
        .create_veth_echoed(&NsRef::Host, "we0", &a, "we1")
        .await
        .expect("veth host->a")
        .expect("Linux 6.1 and later echo the new interface");
    assert_eq!(k.writes(), before + 1, "one request");
    let read = sb.link(&NsRef::Host, "we0").await;
    assert_eq!(
        echoed,
        LinkState {
            addresses: Vec::new(),
            ..read
        },
        "the echo is the read"
    );
    assert_eq!(echoed.name, "we0");
    assert!(echoed.is_newborn() && !echoed.up, "{echoed:?}");
    assert_eq!(echoed.kind.as_deref(), Some("veth"));
    assert_eq!(
        echoed.mac.as_deref(),
        ip_link(&host, "we0")["address"].as_str()
    );
    let peer = sb.link(&a, "we1").await;
    assert_eq!(
        echoed.link,
        Some(peer.index),
        "the peer's index in its namespace"
    );
    assert_eq!(
        Some(u64::from(peer.index)),
        ip_link(&a_path, "we1")["ifindex"].as_u64()
    );
    assert!(echoed.link_netnsid.is_some(), "the peer is elsewhere");

    // Names taken: EEXIST, nothing made, nothing echoed.
    let err = k
        .create_veth_echoed(&NsRef::Host, "we0", &a, "zz1")
        .await
        .unwrap_err();
    assert!(err.is_exists(), "{err}");
    assert!(err.to_string().contains("create veth we0"), "{err}");
    let err = k
        .create_veth_echoed(&NsRef::Host, "zz0", &a, "we1")
        .await
        .unwrap_err();
    assert!(err.is_exists(), "peer name taken in A: {err}");
    assert!(
        !link_names(&host).contains(&"zz0".into()),
        "nothing half-made"
    );
}

/// `name_listed` answers from each named namespace's own `/proc/net/dev` (kept open beside
/// its socket: what a Connect's look for a foreign interface asks first): it sees each end in
/// its own namespace only, sees a name go with its interface and a rename take effect, never
/// lists an alternative name (the gap a Connect closes after its commit), cannot tell for the
/// host (whose listing holds every endpoint's host end), and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_listed_answers_per_namespace_from_its_listing() {
    let sb = Sandbox::new("vlisted");
    let k = &sb.kernel;
    let (a_path, a) = sb.named("a").await;
    let (b_path, b) = sb.named("b").await;
    k.create_veth(&a, "wl0", &b, "wl1")
        .await
        .expect("veth a->b");
    let net = format!("--net={}", a_path.display());
    run(
        "nsenter",
        &[&net, "ip", "link", "add", "wd0", "type", "bridge"],
    );
    run(
        "nsenter",
        &[
            &net, "ip", "link", "property", "add", "dev", "wd0", "altname", "walt0",
        ],
    );
    assert!(
        ip_link(&a_path, "wd0")["altnames"]
            .as_array()
            .is_some_and(|n| n.iter().any(|n| n == "walt0")),
        "the kernel took the alternative name"
    );
    let before = k.writes();

    let listed = |ns: NsRef, name: &'static str| async move {
        k.name_listed(&ns, name).await.expect("name_listed")
    };
    assert_eq!(listed(a.clone(), "wl0").await, Some(true), "its end, in a");
    assert_eq!(
        listed(a.clone(), "lo").await,
        Some(true),
        "every namespace has lo"
    );
    assert_eq!(
        listed(a.clone(), "wl1").await,
        Some(false),
        "the peer is in b"
    );
    assert_eq!(listed(b.clone(), "wl1").await, Some(true), "the peer, in b");
    assert_eq!(listed(b.clone(), "wl0").await, Some(false));
    assert_eq!(
        listed(a.clone(), "wl").await,
        Some(false),
        "a prefix is not a name"
    );
    assert_eq!(listed(a.clone(), "wd0").await, Some(true));
    assert_eq!(
        listed(a.clone(), "walt0").await,
        Some(false),
        "an alternative name is not listed"
    );
    assert!(
        k.get_link_bare(&a, "walt0").await.expect("read").is_some(),
        "while a netlink read by that name finds its interface"
    );
    assert_eq!(
        listed(NsRef::Host, "lo").await,
        None,
        "the host: can't tell"
    );
    assert_eq!(k.writes(), before, "reads only");

    let index = sb.link(&a, "wl0").await.index;
    k.set_link(
        &a,
        index,
        &LinkChange {
            name: Some("wl9".into()),
            ..Default::default()
        },
    )
    .await
    .expect("rename");
    assert_eq!(listed(a.clone(), "wl0").await, Some(false), "renamed away");
    assert_eq!(
        listed(a.clone(), "wl9").await,
        Some(true),
        "under its new name"
    );
    k.delete_link(&a, index).await.expect("delete");
    assert_eq!(listed(a.clone(), "wl9").await, Some(false), "gone");
    assert_eq!(
        listed(b.clone(), "wl1").await,
        Some(false),
        "its peer went with it"
    );
    assert!(
        !link_names(&a_path).contains(&"wl9".to_string()),
        "as `ip` sees a"
    );

    // A listing longer than one read (the kernel gives a page at a time, ~30 lines), then
    // one longer than the look reads at all (16 KiB): it can't tell, and a read decides.
    let pairs = |from: usize, to: usize| {
        let batch = sb._tmp.path().join(format!("pairs-{from}"));
        let lines: Vec<String> = (from..to)
            .map(|i| format!("link add wm{i}a type veth peer name wm{i}b\n"))
            .collect();
        std::fs::write(&batch, lines.concat()).expect("batch file");
        let net = format!("--net={}", b_path.display());
        run("nsenter", &[&net, "ip", "-batch", &batch.to_string_lossy()]);
    };
    pairs(0, 25);
    assert_eq!(link_names(&b_path).len(), 51, "lo and 25 pairs");
    for name in ["wm0a", "wm12b", "wm24a", "wm24b"] {
        assert_eq!(listed(b.clone(), name).await, Some(true), "{name}");
    }
    assert_eq!(listed(b.clone(), "wm25a").await, Some(false));
    pairs(25, 100);
    assert_eq!(listed(b.clone(), "wm0a").await, None, "too long to read");
    assert_eq!(listed(b.clone(), "wm99z").await, None);
}

/// An rtnetlink handle whose socket lives in namespace file `ns` (made on a short-lived
/// thread that entered it; the connection runs on the test's runtime).
fn rtnetlink_in(ns: &Path) -> rtnetlink::Handle {
    let file = std::fs::File::open(ns).expect("open the namespace file");
    let rt = tokio::runtime::Handle::current();
    let (conn, handle) = std::thread::spawn(move || {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let _entered = rt.enter();
        let (conn, handle, _) = rtnetlink::new_connection().expect("netlink socket");
        (conn, handle)
    })
    .join()
    .expect("the helper thread");
    tokio::spawn(conn);
    handle
}

/// Why weft marks a new interface with a group and not with its alias (issue 10, item 5):
/// in the `RTM_NEWLINK` that creates a veth (with the peer's own message in
/// `IFLA_INFO_DATA`/`VETH_INFO_PEER`, as the pinned rtnetlink/netlink-packet-route build
/// it), the kernel ignores `IFLA_IFALIAS` on both ends but applies `IFLA_GROUP` on both,
/// the peer born in another namespace included. So weft's creates carry `NEWBORN_GROUP`,
/// on a bridge too, and a crash before the mark leaves an interface weft can tell is its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kernel_ignores_an_alias_at_create_but_gives_both_veth_ends_the_group() {
    use netlink_packet_route::link::{InfoData, InfoVeth};
    use rtnetlink::{LinkUnspec, LinkVeth};
    let sb = Sandbox::new("born");
    let k = &sb.kernel;
    let host = sb.host_file();
    let (a_path, a) = sb.named("a").await;

    // The raw request: alias and group on both ends, peer born in A.
    let peer_ns = std::fs::File::open(&a_path).expect("open A");
    let peer = LinkUnspec::new_with_name("wb1")
        .alias("weft:peer".to_string())
        .link_group(7)
        .setns_by_fd(std::os::fd::AsRawFd::as_raw_fd(&peer_ns))
        .build();
    let message = LinkVeth::new("wb0", "wb1")
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .alias("weft:first".to_string())
        .link_group(7)
        .build();
    rtnetlink_in(&host)
        .link()
        .add(message)
        .execute()
        .await
        .expect("create the veth with alias and group");
    drop(peer_ns);
    for (path, ns, name) in [(&host, &NsRef::Host, "wb0"), (&a_path, &a, "wb1")] {
        let seen = ip_link(path, name);
        assert!(
            seen.get("ifalias").is_none(),
            "alias applied at create: {seen}"
        );
        assert_eq!(seen["group"], "7", "{seen}");
        let l = sb.link(ns, name).await;
        assert_eq!((l.alias, l.group), (None, 7));
    }

    // weft's own creates: every end born in the newborn group, unmarked.
    k.create_veth(&NsRef::Host, "wn0", &a, "wn1")
        .await
        .expect("veth");
    k.create_bridge(&NsRef::Host, "wnbr").await.expect("bridge");
    let newborn = NEWBORN_GROUP.to_string();
    for (path, ns, name) in [
        (&host, &NsRef::Host, "wn0"),
        (&a_path, &a, "wn1"),
        (&host, &NsRef::Host, "wnbr"),
    ] {
        let l = sb.link(ns, name).await;
        assert!(l.is_newborn(), "{name}: {l:?}");
        assert_eq!(ip_link(path, name)["group"], newborn.as_str(), "{name}");
    }
    // The mark and group 0 in one request: no longer newborn.
    let wn0 = sb.link(&NsRef::Host, "wn0").await;
    let mark = LinkChange {
        alias: Some("weft:0123".into()),
        group: Some(0),
        ..UP
    };
    k.set_link(&NsRef::Host, wn0.index, &mark)
        .await
        .expect("mark");
    let wn0 = sb.link(&NsRef::Host, "wn0").await;
    assert!(!wn0.is_newborn());
    assert_eq!((wn0.alias.as_deref(), wn0.group), (Some("weft:0123"), 0));
    assert_eq!(ip_link(&host, "wn0")["group"], "default");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_link_changes_mtu_mac_up_master_and_alias_in_one_request() {
    let sb = Sandbox::new("setlink");
    let k = &sb.kernel;
    let host = sb.host_file();
    let h = NsRef::Host;
    let (_a_path, a) = sb.named("a").await;

    k.create_bridge(&h, "wbr0").await.expect("bridge");
    let br = sb.link(&h, "wbr0").await;
    assert_eq!(br.kind.as_deref(), Some("bridge"));
    assert!(!br.up, "bridges start down too");
    k.set_link(&h, br.index, &UP).await.expect("bridge up");

    k.create_veth(&h, "wp0", &a, "wp1").await.expect("veth");
    let port = sb.link(&h, "wp0").await;
    let before = k.writes();
    let change = LinkChange {
        mtu: Some(1400),
        mac: Some("02:AA:bb:00:00:01".into()),
        up: Some(true),
        master: Some(Some(br.index)),
        alias: Some("weft:1234".into()),
        ..Default::default()
    };
    k.set_link(&h, port.index, &change).await.expect("set_link");
    assert_eq!(k.writes(), before + 1, "one request for all five fields");

    let got = sb.link(&h, "wp0").await;
    assert_eq!(got.mtu, 1400);
    assert_eq!(got.mac.as_deref(), Some("02:aa:bb:00:00:01"));
    assert!(got.up);
    assert_eq!(got.master, Some(br.index));
    assert_eq!(got.alias.as_deref(), Some("weft:1234"));
    // And as `ip` sees it.
    let seen = ip_link(&host, "wp0");
    assert_eq!(seen["mtu"], 1400);
    assert_eq!(seen["address"], "02:aa:bb:00:00:01");
    assert_eq!(seen["master"], "wbr0");
    assert_eq!(seen["ifalias"], "weft:1234");
    assert!(has_flag(&seen, "UP"));
    assert_eq!(seen["linkinfo"]["info_slave_kind"], "bridge");
    assert!(!got.hairpin, "a new bridge port starts with hairpin off");
    assert_eq!(seen["linkinfo"]["info_slave_data"]["hairpin"], false);

    // Hairpin mode is port data: a second request (RTM_NEWLINK through the master), read
    // back from the link's own attributes and as `ip` sees it.
    let before = k.writes();
    let hairpin = LinkChange {
        hairpin: Some(true),
        ..Default::default()
    };
    k.set_link(&h, port.index, &hairpin)
        .await
        .expect("hairpin on");
    assert_eq!(k.writes(), before + 1, "one request for the hairpin mode");
    assert!(sb.link(&h, "wp0").await.hairpin);
    assert_eq!(
        ip_link(&host, "wp0")["linkinfo"]["info_slave_data"]["hairpin"],
        true
    );
    // Hairpin with a new master in one change: the master first, then the port data.
    let both = LinkChange {
        master: Some(None),
        ..Default::default()
    };
    k.set_link(&h, port.index, &both).await.expect("nomaster");
    let both = LinkChange {
        master: Some(Some(br.index)),
        hairpin: Some(true),
        ..Default::default()
    };
    let before = k.writes();
    k.set_link(&h, port.index, &both)
        .await
        .expect("master + hairpin");
    assert_eq!(k.writes(), before + 2, "the master, then the port data");
    let got = sb.link(&h, "wp0").await;
    assert_eq!((got.master, got.hairpin), (Some(br.index), true));

    // Release from the bridge and bring down; untouched fields stay.
    let change = LinkChange {
        up: Some(false),
        master: Some(None),
        ..Default::default()
    };
    k.set_link(&h, port.index, &change)
        .await
        .expect("nomaster, down");
    let got = sb.link(&h, "wp0").await;
    assert!(!got.up);
    assert_eq!(got.master, None);
    assert_eq!(got.mtu, 1400);
    assert_eq!(got.alias.as_deref(), Some("weft:1234"));
    assert!(ip_link(&host, "wp0").get("master").is_none());

    // An empty change sends nothing; a bad MAC is refused before sending.
    let before = k.writes();
    k.set_link(&h, port.index, &LinkChange::default())
        .await
        .expect("no-op");
    let bad = LinkChange {
        mac: Some("02:aa".into()),
        ..Default::default()
    };
    let err = k.set_link(&h, port.index, &bad).await.unwrap_err();
    assert_eq!(errno(&err), Errno::EINVAL, "{err}");
    assert_eq!(k.writes(), before);

    // A missing interface is ENODEV.
    let err = k.set_link(&h, 999_999, &UP).await.unwrap_err();
    assert_eq!(errno(&err), Errno::ENODEV, "{err}");
    assert!(err.is_not_found());
    assert!(err.to_string().contains("set link #999999"), "{err}");
}

/// The IPv6 address generation mode none, set in its own request on a down interface, is
/// what `ip link set .. addrgenmode none` sets: once up, that end has no IPv6 address at all,
/// while its peer, left alone, gets its link-local one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addrgenmode_none_before_up_leaves_an_interface_without_ipv6_addresses() {
    let sb = Sandbox::new("addrgen");
    let k = &sb.kernel;
    let host = sb.host_file();
    let h = NsRef::Host;
    let (a_path, a) = sb.named("a").await;
    k.create_veth(&h, "wg0", &a, "wg1").await.expect("veth");
    let inside = sb.link(&a, "wg1").await;
    let quiet = LinkChange {
        ipv6_addr_gen_none: true,
        ..Default::default()
    };
    let before = k.writes();
    k.set_link(&a, inside.index, &quiet).await.expect("mode");
    assert_eq!(k.writes(), before + 1, "one request");
    assert_eq!(ip_link(&a_path, "wg1")["inet6_addr_gen_mode"], "none");
    assert_ne!(ip_link(&host, "wg0")["inet6_addr_gen_mode"], "none");
    k.set_link(&a, inside.index, &UP).await.expect("up");
    let port = sb.link(&h, "wg0").await;
    k.set_link(&h, port.index, &UP).await.expect("up");
    let link_local = |ns: &Path, dev: &str| {
        ip_json(ns, &["-6", "addr", "show", "dev", dev])[0]["addr_info"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !link_local(&host, "wg0") {
        assert!(
            std::time::Instant::now() < deadline,
            "the peer never got its link-local address"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(!link_local(&a_path, "wg1"), "{:?}", ip_link(&a_path, "wg1"));
    assert!(sb.link(&a, "wg1").await.addresses.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_veths_is_deleted_in_one_request_and_other_groups_stay() {
    let sb = Sandbox::new("group");
    let k = &sb.kernel;
    let h = NsRef::Host;
    let host = sb.host_file();
    let (_, a) = sb.named("a").await;
    const GROUP: u32 = 0x5745_4654;
    for i in 0..5 {
        k.create_veth(&h, &format!("wg{i}"), &a, &format!("in{i}"))
            .await
            .expect("veth");
    }
    // Four go into the group (the last renamed inside first, as a retired endpoint is);
    // wg4 stays in the default group.
    for i in 0..4 {
        let port = sb.link(&h, &format!("wg{i}")).await;
        let change = LinkChange {
            group: Some(GROUP),
            ..Default::default()
        };
        k.set_link(&h, port.index, &change).await.expect("group");
        assert_eq!(sb.link(&h, &format!("wg{i}")).await.group, GROUP);
    }
    let inside = sb.link(&a, "in3").await;
    let rename = LinkChange {
        name: Some("gone3".into()),
        ..Default::default()
    };
    k.set_link(&a, inside.index, &rename).await.expect("rename");
    assert!(k.get_link(&a, "in3").await.unwrap().is_none());
    assert_eq!(sb.link(&a, "gone3").await.index, inside.index);
    // Down and renamed in one request, as weft retires an endpoint's inside end (kernels
    // before 6.x refuse to rename an interface that is up: weft falls back to two requests).
    let inside = sb.link(&a, "in2").await;
    k.set_link(&a, inside.index, &UP).await.expect("up");
    let retire = LinkChange {
        up: Some(false),
        name: Some("gone2".into()),
        ..Default::default()
    };
    k.set_link(&a, inside.index, &retire)
        .await
        .expect("down and rename");
    let got = sb.link(&a, "gone2").await;
    assert!(!got.up);
    assert_eq!(got.index, inside.index);

    let before = k.writes();
    k.delete_link_group(&h, GROUP).await.expect("delete group");
    assert_eq!(k.writes(), before + 1, "one request");
    let names = link_names(&host);
    assert!(
        names.iter().all(|n| !n.starts_with("wg") || n == "wg4"),
        "{names:?}"
    );
    assert!(names.contains(&"wg4".to_string()), "{names:?}");
    // The peers went with them, renamed or not; wg4's stays.
    let inside = link_names(&sb.netns_dir.join(sb.ns_name("a")));
    assert_eq!(inside, vec!["lo".to_string(), "in4".to_string()]);
    // An empty group is fine.
    k.delete_link_group(&h, GROUP).await.expect("empty group");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_into_named_namespaces_are_bounded_and_reopened_on_use() {
    let sb = Sandbox::new("lru");
    let k = &sb.kernel;
    let mut spaces = Vec::new();
    for i in 0..80 {
        // Creating one brings its loopback up through its own socket.
        spaces.push(sb.named(&format!("n{i}")).await.1);
    }
    // The host's lanes (4 ordinary and 1 slow) at most, and 64 named namespaces.
    assert!(
        k.open_sockets() <= 5 + 64,
        "{} sockets open",
        k.open_sockets()
    );
    assert!(k.open_sockets() >= 64, "{} sockets open", k.open_sockets());
    // The first namespace's socket was closed; using it opens a new one that works.
    let lo = sb.link(&spaces[0], "lo").await;
    assert!(lo.up);
    assert!(k.open_sockets() <= 5 + 64);
}

// The default current-thread runtime: sockets opened on helper threads must still register
// with this runtime's reactor.
#[tokio::test]
async fn missing_links_are_none_and_reads_do_not_count_as_writes() {
    let sb = Sandbox::new("missing");
    let k = &sb.kernel;
    let h = NsRef::Host;
    let before = k.writes();
    assert_eq!(k.get_link(&h, "nope0").await.unwrap(), None);
    assert_eq!(
        k.get_link(&h, "a-name-far-too-long-for-linux")
            .await
            .unwrap(),
        None
    );
    assert_eq!(k.get_link_by_index(&h, 424_242).await.unwrap(), None);
    assert_eq!(k.list_routes(&h, 424_242).await.unwrap(), vec![]);
    let lo = sb.link(&h, "lo").await;
    assert_eq!(lo.index, 1);
    assert_eq!(lo.mac.as_deref(), Some("00:00:00:00:00:00"));
    assert_eq!(k.writes(), before, "reads make no writes");

    // A namespace file that does not exist is ENOENT, not a silent fallback to the host.
    let gone = NsRef::path(sb.netns_dir.join("never-made"));
    let err = k.get_link(&gone, "lo").await.unwrap_err();
    assert_eq!(errno(&err), Errno::ENOENT, "{err}");
    assert!(err.is_not_found());
}

// ---------------------------------------------------------------------------------------------
// Addresses and routes
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_v4_and_v6_are_added_listed_and_removed() {
    let sb = Sandbox::new("addr");
    let k = &sb.kernel;
    let (a_path, a) = sb.named("a").await;
    k.create_bridge(&a, "wb0").await.unwrap();
    let br = sb.link(&a, "wb0").await;

    let v4 = net("10.1.2.3/24");
    let v6 = net("fd00:1::5/64");
    let v6_nodad = net("fd00:1::6/64");
    let before = k.writes();
    k.add_address(&a, br.index, v4, true).await.expect("add v4");
    k.add_address(&a, br.index, v6, false)
        .await
        .expect("add v6");
    k.add_address(&a, br.index, v6_nodad, true)
        .await
        .expect("add v6 nodad");
    assert_eq!(k.writes(), before + 3);

    let got = sb.link(&a, "wb0").await;
    assert!(got.addresses.contains(&v4), "{:?}", got.addresses);
    assert!(got.addresses.contains(&v6), "{:?}", got.addresses);
    // Only this interface's addresses: lo's 127.0.0.1 is not among them.
    assert!(!got.addresses.contains(&net("127.0.0.1/8")));
    assert!(
        sb.link(&a, "lo")
            .await
            .addresses
            .contains(&net("127.0.0.1/8"))
    );

    // As `ip addr` sees it: the broadcast is set like `ip addr add` does.
    let seen = ip_json(&a_path, &["addr", "show", "dev", "wb0"]);
    let infos = seen[0]["addr_info"].as_array().unwrap();
    let v4_info = infos
        .iter()
        .find(|i| i["local"] == "10.1.2.3")
        .expect("v4 in ip addr");
    assert_eq!(v4_info["prefixlen"], 24);
    assert_eq!(v4_info["broadcast"], "10.1.2.255");
    let v6_info = |ip: &str| {
        infos
            .iter()
            .find(|i| i["local"] == ip && i["prefixlen"] == 64)
            .unwrap_or_else(|| panic!("{ip} in ip addr: {infos:?}"))
    };
    // Duplicate address detection: on a bridge that is down, an address added without
    // `nodad` waits tentative (no source, no destination); one with it is usable at once,
    // and nodad has no meaning for IPv4.
    assert_eq!(v6_info("fd00:1::5")["tentative"], true, "{infos:?}");
    assert!(v6_info("fd00:1::5").get("nodad").is_none(), "{infos:?}");
    assert!(v6_info("fd00:1::6").get("tentative").is_none(), "{infos:?}");
    assert_eq!(v6_info("fd00:1::6")["nodad"], true, "{infos:?}");
    assert!(v4_info.get("nodad").is_none(), "{v4_info:?}");

    // Adding twice is EEXIST.
    let err = k.add_address(&a, br.index, v4, false).await.unwrap_err();
    assert!(err.is_exists(), "{err}");
    let err = k.add_address(&a, br.index, v6, true).await.unwrap_err();
    assert!(err.is_exists(), "{err}");
    k.del_address(&a, br.index, v6_nodad).await.expect("del");

    // Remove both; removing again is Ok.
    k.del_address(&a, br.index, v4).await.expect("del v4");
    k.del_address(&a, br.index, v6).await.expect("del v6");
    let got = sb.link(&a, "wb0").await;
    assert!(
        !got.addresses.contains(&v4) && !got.addresses.contains(&v6),
        "{:?}",
        got.addresses
    );
    k.del_address(&a, br.index, v4).await.expect("del v4 again");
    k.del_address(&a, br.index, v6).await.expect("del v6 again");

    // A /32 gets no broadcast.
    k.add_address(&a, br.index, net("10.9.9.9/32"), false)
        .await
        .unwrap();
    let seen = ip_json(&a_path, &["addr", "show", "dev", "wb0"]);
    let info = seen[0]["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["local"] == "10.9.9.9")
        .cloned()
        .unwrap();
    assert!(info.get("broadcast").is_none(), "{info}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_are_added_listed_and_removed_including_default_via_gateway() {
    let sb = Sandbox::new("route");
    let k = &sb.kernel;
    let h = NsRef::Host;
    let (a_path, a) = sb.named("a").await;
    k.create_veth(&a, "eth0", &h, "wr0").await.unwrap();
    let eth0 = sb.link(&a, "eth0").await;
    let peer = sb.link(&h, "wr0").await;
    k.set_link(&h, peer.index, &UP).await.unwrap();
    k.set_link(&a, eth0.index, &UP).await.unwrap();
    k.add_address(&a, eth0.index, net("10.9.0.2/24"), false)
        .await
        .unwrap();
    // Nothing of ours yet: the kernel's connected route is not listed.
    assert_eq!(k.list_routes(&a, eth0.index).await.unwrap(), vec![]);

    let default_v4 = RouteState {
        destination: net("0.0.0.0/0"),
        gateway: Some(ip("10.9.0.1")),
        metric: 0,
    };
    let onlink_v4 = RouteState {
        destination: net("10.50.0.0/16"),
        gateway: None,
        metric: 0,
    };
    let metric_v4 = RouteState {
        destination: net("192.168.77.0/24"),
        gateway: Some(ip("10.9.0.1")),
        metric: 20,
    };
    let default_v6 = RouteState {
        destination: net("::/0"),
        gateway: Some(ip("fe80::1")),
        metric: 0,
    };
    let onlink_v6 = RouteState {
        destination: net("fd00:50::/64"),
        gateway: None,
        metric: 300,
    };
    let all = [&default_v4, &onlink_v4, &metric_v4, &default_v6, &onlink_v6];
    let before = k.writes();
    for r in all {
        k.add_route(&a, eth0.index, r)
            .await
            .unwrap_or_else(|e| panic!("add {r:?}: {e}"));
    }
    assert_eq!(k.writes(), before + all.len() as u64);

    let listed = k.list_routes(&a, eth0.index).await.unwrap();
    assert_eq!(listed.len(), all.len(), "{listed:?}");
    for r in all {
        let want = RouteState {
            metric: r.kernel_metric(),
            ..r.clone()
        };
        assert!(listed.contains(&want), "{want:?} not in {listed:?}");
    }
    // IPv6 has no metric 0: the kernel stored 1024.
    assert_eq!(default_v6.kernel_metric(), 1024);
    assert!(
        listed
            .iter()
            .any(|r| r.destination == net("::/0") && r.metric == 1024)
    );

    // As `ip route` sees it: the default route via the gateway, with weft's protocol.
    let v4 = ip_json(
        &a_path,
        &[
            "route",
            "show",
            "table",
            "main",
            "proto",
            &RTPROT_WEFT.to_string(),
        ],
    );
    let default = v4
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["dst"] == "default")
        .expect("default route");
    assert_eq!(default["gateway"], "10.9.0.1");
    assert_eq!(default["dev"], "eth0");
    let onlink = v4
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["dst"] == "10.50.0.0/16")
        .unwrap();
    assert_eq!(onlink["scope"], "link");
    let v6 = ip_json(
        &a_path,
        &["-6", "route", "show", "proto", &RTPROT_WEFT.to_string()],
    );
    assert!(
        v6.as_array()
            .unwrap()
            .iter()
            .any(|r| r["dst"] == "default" && r["gateway"] == "fe80::1")
    );

    // Adding again is EEXIST.
    let err = k.add_route(&a, eth0.index, &default_v4).await.unwrap_err();
    assert!(err.is_exists(), "{err}");

    // Somebody else's route on the same interface is neither listed nor deleted.
    let ns = format!("--net={}", a_path.display());
    run(
        "nsenter",
        &[
            &ns,
            "ip",
            "route",
            "add",
            "10.60.0.0/16",
            "dev",
            "eth0",
            "proto",
            "static",
        ],
    );
    let foreign = RouteState {
        destination: net("10.60.0.0/16"),
        gateway: None,
        metric: 0,
    };
    assert!(
        !k.list_routes(&a, eth0.index)
            .await
            .unwrap()
            .contains(&foreign)
    );
    k.del_route(&a, eth0.index, &foreign)
        .await
        .expect("Ok: no such route of ours");
    let still = ip_json(&a_path, &["route", "show", "10.60.0.0/16"]);
    assert_eq!(
        still.as_array().unwrap().len(),
        1,
        "the static route survives"
    );

    // Gateway not on the link: ENETUNREACH.
    let unreachable = RouteState {
        destination: net("10.70.0.0/16"),
        gateway: Some(ip("172.31.0.1")),
        metric: 0,
    };
    let err = k.add_route(&a, eth0.index, &unreachable).await.unwrap_err();
    assert_eq!(errno(&err), Errno::ENETUNREACH, "{err}");
    // A gateway of the other family is refused before sending.
    let mixed = RouteState {
        destination: net("10.71.0.0/16"),
        gateway: Some(ip("fd00::1")),
        metric: 0,
    };
    assert_eq!(
        errno(&k.add_route(&a, eth0.index, &mixed).await.unwrap_err()),
        Errno::EINVAL
    );

    // Delete ours (with the metric we asked for, even IPv6 0); deleting again is Ok.
    for r in all {
        k.del_route(&a, eth0.index, r)
            .await
            .unwrap_or_else(|e| panic!("del {r:?}: {e}"));
    }
    assert_eq!(k.list_routes(&a, eth0.index).await.unwrap(), vec![]);
    for r in all {
        k.del_route(&a, eth0.index, r)
            .await
            .unwrap_or_else(|e| panic!("del again {r:?}: {e}"));
    }
}

// ---------------------------------------------------------------------------------------------
// Traffic
// ---------------------------------------------------------------------------------------------

/// `ping -c 1` from inside `ns` to `target` (an address the test assigned).
fn ping(ns: &Path, target: &str) -> bool {
    Command::new("nsenter")
        .args([
            &format!("--net={}", ns.display()),
            "ping",
            "-c",
            "1",
            "-W",
            "2",
            target,
        ])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_crosses_a_veth_between_two_namespaces() {
    let sb = Sandbox::new("ping");
    let k = &sb.kernel;
    let (a_path, a) = sb.named("a").await;
    let (b_path, b) = sb.named("b").await;
    k.create_veth(&a, "p0", &b, "p1").await.unwrap();
    let p0 = sb.link(&a, "p0").await;
    let p1 = sb.link(&b, "p1").await;
    k.add_address(&a, p0.index, net("10.77.0.1/24"), false)
        .await
        .unwrap();
    k.add_address(&b, p1.index, net("10.77.0.2/24"), false)
        .await
        .unwrap();
    k.set_link(&a, p0.index, &UP).await.unwrap();
    k.set_link(&b, p1.index, &UP).await.unwrap();
    assert!(ping(&a_path, "10.77.0.2"), "A -> B");
    assert!(ping(&b_path, "10.77.0.1"), "B -> A");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_ports_carry_traffic_between_namespaces_and_default_route_works() {
    let sb = Sandbox::new("bridge");
    let k = &sb.kernel;
    let h = NsRef::Host;
    k.create_bridge(&h, "wbr0").await.unwrap();
    let br = sb.link(&h, "wbr0").await;
    k.set_link(&h, br.index, &UP).await.unwrap();
    k.add_address(&h, br.index, net("10.88.0.1/24"), false)
        .await
        .unwrap();

    let mut inside = Vec::new();
    for (suffix, port, addr) in [("a", "pa", "10.88.0.2/24"), ("b", "pb", "10.88.0.3/24")] {
        let (path, ns) = sb.named(suffix).await;
        k.create_veth(&h, port, &ns, "eth0").await.unwrap();
        let host_end = sb.link(&h, port).await;
        let change = LinkChange {
            up: Some(true),
            master: Some(Some(br.index)),
            alias: Some(format!("weft:{suffix}")),
            ..Default::default()
        };
        k.set_link(&h, host_end.index, &change).await.unwrap();
        let eth0 = sb.link(&ns, "eth0").await;
        k.add_address(&ns, eth0.index, net(addr), false)
            .await
            .unwrap();
        k.set_link(&ns, eth0.index, &UP).await.unwrap();
        let default = RouteState {
            destination: net("0.0.0.0/0"),
            gateway: Some(ip("10.88.0.1")),
            metric: 0,
        };
        k.add_route(&ns, eth0.index, &default).await.unwrap();
        inside.push(path);
    }
    let seen = ip_json(&sb.host_file(), &["link", "show", "master", "wbr0"]);
    let ports: Vec<_> = seen
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["ifname"].clone())
        .collect();
    assert_eq!(ports.len(), 2, "{ports:?}");

    assert!(ping(&inside[0], "10.88.0.3"), "A -> B across the bridge");
    assert!(ping(&inside[1], "10.88.0.2"), "B -> A across the bridge");
    assert!(ping(&inside[0], "10.88.0.1"), "A -> the bridge (gateway)");
}

// ---------------------------------------------------------------------------------------------
// Measurement (run with: cargo test -p weftd --test kernel -- --ignored --nocapture)
// ---------------------------------------------------------------------------------------------

/// Times a whole endpoint connect (namespace, veth with the peer born inside, addresses, up,
/// default route, bridge port) for N endpoints, and the teardown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; prints timings"]
async fn measure_endpoint_connect() {
    let n: usize = std::env::var("WK_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let sb = Sandbox::new("measure");
    let k = &sb.kernel;
    let h = NsRef::Host;
    k.create_bridge(&h, "wbr0").await.unwrap();
    let br = sb.link(&h, "wbr0").await;
    k.set_link(&h, br.index, &UP).await.unwrap();
    k.add_address(&h, br.index, net("10.128.0.1/16"), false)
        .await
        .unwrap();

    let mut netns_times = Vec::new();
    let mut connect_times = Vec::new();
    for i in 0..n {
        let t = Instant::now();
        let (_path, ns) = sb.named(&i.to_string()).await;
        netns_times.push(t.elapsed());

        let t = Instant::now();
        let port = format!("wp{i}");
        k.create_veth(&h, &port, &ns, "eth0").await.unwrap();
        let host_end = k.get_link(&h, &port).await.unwrap().unwrap();
        let change = LinkChange {
            up: Some(true),
            master: Some(Some(br.index)),
            alias: Some(format!("weft:{i}")),
            ..Default::default()
        };
        k.set_link(&h, host_end.index, &change).await.unwrap();
        let eth0 = k.get_link(&ns, "eth0").await.unwrap().unwrap();
        let addr = format!("10.128.{}.{}/16", (i + 2) / 256, (i + 2) % 256);
        k.add_address(&ns, eth0.index, net(&addr), false)
            .await
            .unwrap();
        k.set_link(&ns, eth0.index, &UP).await.unwrap();
        let default = RouteState {
            destination: net("0.0.0.0/0"),
            gateway: Some(ip("10.128.0.1")),
            metric: 0,
        };
        k.add_route(&ns, eth0.index, &default).await.unwrap();
        connect_times.push(t.elapsed());
    }
    let t = Instant::now();
    for i in 0..n {
        k.delete_named_netns(&sb.ns_name(&i.to_string()))
            .await
            .unwrap();
    }
    let teardown = t.elapsed();
    // The kernel reaps the veths asynchronously; wait until the host side is clean.
    let t = Instant::now();
    while k
        .get_link(&h, &format!("wp{}", n - 1))
        .await
        .unwrap()
        .is_some()
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let reaped = t.elapsed() + teardown;
    println!("n = {n}");
    println!("create_named_netns: {}", summary(&mut netns_times));
    println!(
        "connect (veth born inside, port, address, up, default route): {}",
        summary(&mut connect_times)
    );
    println!(
        "teardown: delete_named_netns x{n} {:.1} ms total; veths gone after {:.1} ms",
        teardown.as_secs_f64() * 1e3,
        reaped.as_secs_f64() * 1e3
    );
}

fn summary(times: &mut [Duration]) -> String {
    times.sort();
    let pct = |p: f64| {
        let i = ((times.len() as f64 - 1.0) * p).round() as usize;
        times[i].as_secs_f64() * 1e3
    };
    format!(
        "p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0)
    )
}
