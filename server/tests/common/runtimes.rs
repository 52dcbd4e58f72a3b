//! Real container runtimes for the CNI tests (runtimes.rs): podman 4.3 with its CNI backend and
//! containerd 1.6 with `ctr run --cni`, each with a private configuration so a test changes
//! nothing global, both calling a CNI plugin (weft's `weft-cni`) against the test's
//! [`Sandbox`](crate::common::Sandbox).
//!
//! - [`require_runtimes`]: fails (never skips) when the Debian packages are missing;
//!   `scripts/test` installs them (`WEFT_TEST_DEB_PACKAGES` in scripts/lib.sh).
//! - [`busybox_rootfs`]: a root filesystem made of static busybox and its applet links, with
//!   `/www/index.html` for `httpd`. podman imports it as an image; ctr runs it as `--rootfs`.
//! - [`Podman`]: a temp dir with `containers.conf` (`network_backend="cni"`, runc, ulimits,
//!   the plugin dir, the network config dir), `storage.conf` (vfs graphroot and runroot in the
//!   temp dir) and the image `localhost/bb:1`. Every podman command runs under
//!   `nsenter --net=<scratch host>` (not `ip netns exec`: that remounts /sys and runc then finds
//!   no cgroup mount), so the runtime's "host" is the sandbox's. On drop: `podman rm -f -t 0`
//!   of every container, lazy unmount of anything left under the temp dir, and removal of the
//!   CNI result cache files of the test's networks (podman 4.3 keeps them in the global
//!   `/var/lib/cni/results`, named `<network>-<container id>-<ifname>`).
//! - [`Containerd`]: a private containerd (`root`, `state`, socket and `opt` in a temp dir, the
//!   CRI plugin off), started under `nsenter --net=<scratch host>` and killed on drop. ctr has no
//!   flag or environment variable for CNI paths: it reads the first conflist in
//!   `/etc/cni/net.d`, looks plugins up only in `/opt/cni/bin` and `/usr/lib/cni`, and caches
//!   results in `/var/lib/cni`, all hard-coded. So [`Containerd::run_cni`] runs ctr in a
//!   private mount namespace (`unshare --mount --propagation private`) where the test's own
//!   conf, plugin and cache dirs are bind-mounted over those paths: the host's files are never
//!   written or even shadowed outside that one ctr process (and the plugin it execs).
//!   `CNI_NETNS` is `/proc/<pid>/ns/net`, which weftd opens from its own mount namespace.
//!   ctr's fifos and runc's state go to the temp dir too (`--fifo-dir`, `--runc-root`); only
//!   the shim sockets land in containerd 1.6's hard-coded `/run/containerd/s`, and go with
//!   their tasks.
//!
//! Each test file that needs it includes this file with
//! `#[path = "common/runtimes.rs"] mod runtimes;`.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::mount::{MntFlags, umount2};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::common::{Sandbox, mount_points, run, weftd_bin};

/// The image [`Podman::new`] imports.
pub const IMAGE: &str = "localhost/bb:1";
/// The page busybox `httpd -h /www` serves at `/index.html`.
pub const INDEX_HTML: &str = "hello from weft\n";
/// The global CNI result cache podman 4.3 writes (one file per attachment).
const CNI_CACHE: &str = "/var/lib/cni/results";
/// How long containerd gets to open its socket.
const CONTAINERD_START: Duration = Duration::from_secs(15);

/// The `weft-cni` plugin cargo built beside weftd (`cargo build --workspace --bins`).
pub fn weft_cni_bin() -> PathBuf {
    weftd_bin().with_file_name("weft-cni")
}

/// Panics, naming what to install, unless podman, runc, containerd, ctr, static busybox and
/// the reference plugins are all there.
pub fn require_runtimes() {
    let tools = [
        ("/usr/bin/podman", "podman"),
        ("/usr/sbin/runc", "runc"),
        ("/usr/bin/containerd", "containerd"),
        ("/usr/bin/ctr", "containerd"),
        ("/bin/busybox", "busybox-static"),
        ("/usr/lib/cni/host-local", "containernetworking-plugins"),
        ("/etc/cni/net.d", "podman"),
    ];
    let missing: Vec<_> = tools
        .iter()
        .filter(|(path, _)| !Path::new(path).exists())
        .map(|(path, pkg)| format!("{path} (Debian package {pkg})"))
        .collect();
    assert!(
        missing.is_empty(),
        "container runtime tests need {missing:?}: scripts/test installs them \
         (WEFT_TEST_DEB_PACKAGES in scripts/lib.sh)"
    );
}

/// Panics unless the weft-cni binary was built.
pub fn require_plugin() {
    let plugin = weft_cni_bin();
    assert!(
        plugin.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        plugin.display()
    );
}

/// Makes a busybox root filesystem in `dir` (made if missing): `/bin/busybox` (static), a link
/// per applet, `/www/index.html`, and empty `/etc /proc /sys /dev /tmp` for the runtime.
pub fn busybox_rootfs(dir: &Path) {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).expect("create rootfs/bin");
    for d in ["etc", "proc", "sys", "dev", "tmp", "www"] {
        fs::create_dir_all(dir.join(d)).expect("create a rootfs dir");
    }
    fs::copy("/bin/busybox", bin.join("busybox")).expect("copy /bin/busybox (busybox-static)");
    let list = run(Command::new("/bin/busybox").arg("--list"));
    assert!(list.status.success(), "busybox --list failed");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        // The list names busybox itself: linking it would replace the binary with a loop.
        if applet.is_empty() || applet == "busybox" {
            continue;
        }
        symlink("busybox", bin.join(applet)).expect("link a busybox applet");
    }
    fs::write(dir.join("www/index.html"), INDEX_HTML).expect("write index.html");
    fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").expect("write passwd");
}

/// A CNI network configuration list naming weft-cni, as deploy/ ships it: `name` is the
/// runtime's network name, `network` the weft network, `socket` the sandbox's weftd.
pub fn weft_conflist(name: &str, network: &str, socket: &Path) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": name,
        "plugins": [{
            "type": "weft-cni",
            "network": network,
            "socket": socket,
            "capabilities": {"portMappings": true, "ips": true, "mac": true, "aliases": true},
        }],
    })
}

/// Asserts a command succeeded; returns its stdout, trimmed.
#[track_caller]
pub fn must(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Lazily unmounts every mount point under `dir`, deepest first (a few rounds: one mount
/// may hide another).
fn unmount_under(dir: &Path) {
    for _ in 0..3 {
        let mut mounts: Vec<_> = mount_points();
        mounts.retain(|m| m.starts_with(dir));
        mounts.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
        for m in &mounts {
            let _ = umount2(m, MntFlags::MNT_DETACH);
        }
    }
}

/// Waits (up to `timeout`) until no process names `dir` on its command line.
fn wait_for_processes_using(dir: &Path, timeout: Duration) {
    let needle = dir.to_string_lossy().into_owned();
    let me = std::process::id().to_string();
    let deadline = Instant::now() + timeout;
    loop {
        let users: Vec<String> = fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.bytes().all(|b| b.is_ascii_digit()) && name != me.as_str()
            })
            .filter_map(|e| {
                let cmd = fs::read(e.path().join("cmdline")).ok()?;
                let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                cmd.contains(&needle).then_some(cmd)
            })
            .collect();
        if users.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            eprintln!("processes still using {needle}: {users:?}");
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A plugin dir holding a link to weft-cni (and whatever [`add_plugin`] adds).
fn plugin_dir(dir: &Path) -> PathBuf {
    let bin = dir.join("cni-bin");
    fs::create_dir_all(&bin).expect("create the plugin dir");
    symlink(weft_cni_bin(), bin.join("weft-cni")).expect("link weft-cni");
    bin
}

/// Copies another plugin binary (`/usr/lib/cni/<name>` when relative) into a plugin dir: a
/// copy, not a link, because ctr sees that dir *as* /usr/lib/cni, where a link would point at
/// itself.
pub fn add_plugin(bin_dir: &Path, plugin: &str) {
    let src = if plugin.starts_with('/') {
        PathBuf::from(plugin)
    } else {
        Path::new("/usr/lib/cni").join(plugin)
    };
    let name = src.file_name().expect("plugin file name");
    fs::copy(&src, bin_dir.join(name)).expect("copy a plugin");
}

/// podman with a private configuration, run in the sandbox's scratch host namespace. See the
/// module docs.
pub struct Podman {
    dir: Option<TempDir>,
    host_ns: PathBuf,
    containers_conf: PathBuf,
    storage_conf: PathBuf,
    net_dir: PathBuf,
    bin_dir: PathBuf,
    networks: Vec<String>,
}

impl Podman {
    /// Writes the private configuration and imports [`IMAGE`].
    pub fn new(sb: &Sandbox) -> Podman {
        require_runtimes();
        let dir = tempfile::Builder::new()
            .prefix(&format!("weft-{}podman", sb.prefix))
            .tempdir()
            .expect("create the podman temp dir");
        let root = dir.path().to_path_buf();
        let net_dir = root.join("cni-net.d");
        fs::create_dir(&net_dir).expect("create the network config dir");
        let bin_dir = plugin_dir(&root);
        let containers_conf = root.join("containers.conf");
        let storage_conf = root.join("storage.conf");
        fs::write(
            &containers_conf,
            format!(
                "[containers]\n\
                 default_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n\
                 log_driver = \"k8s-file\"\n\
                 [network]\n\
                 network_backend = \"cni\"\n\
                 cni_plugin_dirs = [{bin:?}, \"/usr/lib/cni\"]\n\
                 network_config_dir = {net:?}\n\
                 default_network = \"weftdefault\"\n\
                 [engine]\n\
                 runtime = \"runc\"\n\
                 cgroup_manager = \"cgroupfs\"\n\
                 events_logger = \"file\"\n\
                 tmp_dir = {tmp:?}\n\
                 volume_path = {vol:?}\n",
                bin = bin_dir,
                net = net_dir,
                tmp = root.join("libpod-tmp"),
                vol = root.join("volumes"),
            ),
        )
        .expect("write containers.conf");
        fs::write(
            &storage_conf,
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = {:?}\nrunroot = {:?}\n",
                root.join("graphroot"),
                root.join("runroot"),
            ),
        )
        .expect("write storage.conf");
        let rootfs = root.join("rootfs");
        busybox_rootfs(&rootfs);
        let p = Podman {
            dir: Some(dir),
            host_ns: sb.host_ns_path().to_path_buf(),
            containers_conf,
            storage_conf,
            net_dir,
            bin_dir,
            networks: Vec::new(),
        };
        // An image from a tar of the rootfs; no registry is involved.
        let tar = p.dir.as_ref().expect("temp dir").path().join("rootfs.tar");
        must(
            "tar the rootfs",
            run(Command::new("tar")
                .arg("-C")
                .arg(&rootfs)
                .arg("-cf")
                .arg(&tar)
                .arg(".")),
        );
        let tar = tar.to_string_lossy().into_owned();
        let out = p.exec(&["import", "-q", "--change", "ENV PATH=/bin", &tar, IMAGE]);
        must("podman import", out);
        p
    }

    /// The plugin dir in `cni_plugin_dirs` (holds weft-cni; /usr/lib/cni comes after it).
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// Writes a conflist into the private network config dir (`<name>.conflist`); podman
    /// sees it as network `name`.
    pub fn add_network(&mut self, conflist: &Value) {
        let name = conflist["name"]
            .as_str()
            .expect("conflist name")
            .to_string();
        fs::write(
            self.net_dir.join(format!("{name}.conflist")),
            serde_json::to_vec_pretty(conflist).expect("conflist json"),
        )
        .expect("write the conflist");
        self.networks.push(name);
    }

    /// A podman command with the private configuration, under `nsenter --net=<scratch host>`.
    pub fn command(&self, args: &[&str]) -> Command {
        let root = self.dir.as_ref().expect("temp dir").path();
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.host_ns.display()))
            .arg("podman")
            .arg("--root")
            .arg(root.join("graphroot"))
            .arg("--runroot")
            .arg(root.join("runroot"))
            .arg("--network-config-dir")
            .arg(&self.net_dir)
            .args(args)
            .env("CONTAINERS_CONF", &self.containers_conf)
            .env("CONTAINERS_STORAGE_CONF", &self.storage_conf)
            .env_remove("CONTAINERS_REGISTRIES_CONF")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs podman with `args`.
    pub fn exec(&self, args: &[&str]) -> Output {
        let mut cmd = self.command(args);
        cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"))
    }

    /// Runs podman with `args`; panics unless it succeeds; returns stdout, trimmed.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        must(&format!("podman {args:?}"), self.exec(args))
    }

    /// `podman run -d --name <name> <opts> IMAGE <cmd>` with `--cap-add NET_RAW` (for ping);
    /// returns the container id.
    #[track_caller]
    pub fn run_detached(&self, name: &str, opts: &[&str], cmd: &[&str]) -> String {
        let mut args = vec!["run", "-d", "--name", name, "--cap-add", "NET_RAW"];
        args.extend_from_slice(opts);
        args.push(IMAGE);
        args.extend_from_slice(cmd);
        self.ok(&args)
    }

    /// A container that sleeps for ten minutes (`sleep 600`).
    #[track_caller]
    pub fn run_sleeper(&self, name: &str, opts: &[&str]) -> String {
        self.run_detached(name, opts, &["sleep", "600"])
    }

    /// `podman exec <name> <args>`.
    pub fn exec_in(&self, name: &str, args: &[&str]) -> Output {
        let mut full = vec!["exec", name];
        full.extend_from_slice(args);
        self.exec(&full)
    }

    /// True when `ping -c1 -W1 <addr>` from inside container `name` is answered, trying for
    /// up to `within`.
    pub async fn ping_within(&self, name: &str, addr: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let ping = ["ping", "-c1", "-W1", addr];
        while !self.exec_in(name, &ping).status.success() {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        true
    }

    /// The container's main process id (`podman inspect`).
    #[track_caller]
    pub fn pid(&self, name: &str) -> u32 {
        let out = self.ok(&["inspect", "--format", "{{.State.Pid}}", name]);
        out.parse()
            .unwrap_or_else(|e| panic!("pid of {name}: {out:?}: {e}"))
    }

    /// The container's network namespace path (`/run/netns/netns-...`, podman's).
    #[track_caller]
    pub fn netns_path(&self, name: &str) -> String {
        self.ok(&[
            "inspect",
            "--format",
            "{{.NetworkSettings.SandboxKey}}",
            name,
        ])
    }

    /// `ip -j <args>` inside the container's network namespace, parsed.
    #[track_caller]
    pub fn ip_json(&self, name: &str, args: &[&str]) -> Value {
        let pid = self.pid(name);
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/proc/{pid}/ns/net"))
            .args(["ip", "-j"]);
        cmd.args(args);
        let out = must(&format!("ip -j {args:?} in {name}"), run(&mut cmd));
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("ip -j {args:?}: {e}: {out}"))
    }

    /// The IPv4 addresses (`a.b.c.d/len`) of interface `ifname` in the container.
    #[track_caller]
    pub fn ipv4(&self, name: &str, ifname: &str) -> Vec<String> {
        let v = self.ip_json(name, &["-4", "addr", "show", "dev", ifname]);
        v.as_array()
            .into_iter()
            .flatten()
            .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
            .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or(""), a["prefixlen"]))
            .collect()
    }

    /// `podman rm -f -t 0 <name>` (no 10 s SIGTERM grace: busybox as pid 1 ignores SIGTERM).
    #[track_caller]
    pub fn rm(&self, name: &str) {
        self.ok(&["rm", "-f", "-t", "0", name]);
    }

    /// The CNI cache files podman still holds for the test's networks.
    pub fn cached_results(&self) -> Vec<String> {
        cache_files(&self.networks)
    }
}

/// Files in podman's global CNI cache whose names start with one of `networks` and a `-`.
fn cache_files(networks: &[String]) -> Vec<String> {
    let Ok(entries) = fs::read_dir(CNI_CACHE) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| networks.iter().any(|n| f.starts_with(&format!("{n}-"))))
        .collect()
}

impl Drop for Podman {
    fn drop(&mut self) {
        let out = self.exec(&["rm", "-a", "-f", "-t", "0"]);
        if !out.status.success() {
            eprintln!(
                "podman rm -a -f: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        for f in cache_files(&self.networks) {
            let _ = fs::remove_file(Path::new(CNI_CACHE).join(f));
        }
        if let Some(dir) = self.dir.take() {
            // conmon's exit command (`podman container cleanup`) can still be running; it
            // would re-create the storage dirs after the temp dir is gone.
            wait_for_processes_using(dir.path(), Duration::from_secs(10));
            unmount_under(dir.path());
            let path = dir.path().to_path_buf();
            if let Err(e) = dir.close() {
                eprintln!("remove {}: {e}", path.display());
            }
        }
    }
}

/// A private containerd and ctr with a private CNI configuration. See the module docs.
pub struct Containerd {
    dir: Option<TempDir>,
    child: Option<Child>,
    host_ns: PathBuf,
    socket: PathBuf,
    rootfs: PathBuf,
    conf_dir: PathBuf,
    bin_dir: PathBuf,
    cache_dir: PathBuf,
}

impl Containerd {
    /// Starts containerd in the scratch host namespace with `conflist` as ctr's only CNI
    /// network; waits until it answers.
    pub async fn start(sb: &Sandbox, conflist: &Value) -> Containerd {
        require_runtimes();
        let dir = tempfile::Builder::new()
            .prefix(&format!("weft-{}ctrd", sb.prefix))
            .tempdir()
            .expect("create the containerd temp dir");
        let root = dir.path().to_path_buf();
        let conf_dir = root.join("cni-net.d");
        let cache_dir = root.join("cni-cache");
        for d in [&conf_dir, &cache_dir] {
            fs::create_dir(d).expect("create a containerd dir");
        }
        let bin_dir = plugin_dir(&root);
        fs::write(
            conf_dir.join("10-weft.conflist"),
            serde_json::to_vec_pretty(conflist).expect("conflist json"),
        )
        .expect("write the conflist");
        let rootfs = root.join("rootfs");
        busybox_rootfs(&rootfs);
        let socket = root.join("containerd.sock");
        let config = root.join("config.toml");
        fs::write(
            &config,
            format!(
                "version = 2\nroot = {:?}\nstate = {:?}\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = {:?}\n\
                 [plugins.\"io.containerd.internal.v1.opt\"]\n  path = {:?}\n",
                root.join("root"),
                root.join("state"),
                socket,
                root.join("opt"),
            ),
        )
        .expect("write containerd's config.toml");
        let log = fs::File::create(root.join("containerd.log")).expect("create containerd.log");
        let child = Command::new("nsenter")
            .arg(format!("--net={}", sb.host_ns_path().display()))
            .arg("containerd")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("spawn containerd");
        let mut c = Containerd {
            dir: Some(dir),
            child: Some(child),
            host_ns: sb.host_ns_path().to_path_buf(),
            socket,
            rootfs,
            conf_dir,
            bin_dir,
            cache_dir,
        };
        let deadline = Instant::now() + CONTAINERD_START;
        loop {
            if c.socket.exists() && c.ctr(&["version"]).status.success() {
                return c;
            }
            if let Some(status) = c.child.as_mut().and_then(|ch| ch.try_wait().ok().flatten()) {
                panic!("containerd exited at start ({status}):\n{}", c.log());
            }
            assert!(
                Instant::now() < deadline,
                "containerd did not answer within {CONTAINERD_START:?}:\n{}",
                c.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// containerd's log so far.
    pub fn log(&self) -> String {
        let dir = self.dir.as_ref().expect("temp dir").path();
        fs::read_to_string(dir.join("containerd.log")).unwrap_or_default()
    }

    /// The plugin dir ctr sees as `/usr/lib/cni` (and `/opt/cni/bin`).
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// Replaces ctr's CNI network (the only conflist in its conf dir).
    pub fn set_conflist(&self, conflist: &Value) {
        fs::write(
            self.conf_dir.join("10-weft.conflist"),
            serde_json::to_vec_pretty(conflist).expect("conflist json"),
        )
        .expect("write the conflist");
    }

    /// `ctr -a <socket> <args>` (no CNI involved: tasks, containers).
    pub fn ctr(&self, args: &[&str]) -> Output {
        run(Command::new("ctr").arg("-a").arg(&self.socket).args(args))
    }

    /// `ctr run -d --cni --rootfs <busybox> <id> <cmd>`: returns once the task runs. ctr never
    /// sends DEL for it (see [`Containerd::kill_and_rm`]).
    pub fn run_cni(&self, id: &str, cmd: &[&str]) -> Output {
        self.ctr_run_cni("-d", id, cmd)
    }

    /// `ctr run --rm --cni --rootfs <busybox> <id> <cmd>` in the foreground: when the task
    /// exits ctr sends DEL (with an empty `CNI_NETNS`) and fails if DEL fails.
    pub fn run_cni_foreground(&self, id: &str, cmd: &[&str]) -> Output {
        self.ctr_run_cni("--rm", id, cmd)
    }

    /// `ctr run <mode> --cni ...` in the scratch host namespace and a private mount namespace
    /// where the test's conf, plugin and cache dirs hide ctr's hard-coded CNI paths (see the
    /// module docs).
    fn ctr_run_cni(&self, mode: &str, id: &str, cmd: &[&str]) -> Output {
        // ctr and the plugin it runs need nothing else from /var/lib, so when /var/lib/cni is
        // missing a tmpfs over /var/lib stands in (in this mount namespace only); /opt/cni/bin
        // is hidden only when it exists (ctr finds nothing there otherwise).
        let script = format!(
            "set -e\n\
             mount --bind {conf:?} /etc/cni/net.d\n\
             mount --bind {bin:?} /usr/lib/cni\n\
             if [ -d /opt/cni/bin ]; then mount --bind {bin:?} /opt/cni/bin; fi\n\
             if [ ! -d /var/lib/cni ]; then mount -t tmpfs tmpfs /var/lib; mkdir /var/lib/cni; fi\n\
             mount --bind {cache:?} /var/lib/cni\n\
             exec \"$@\"\n",
            conf = self.conf_dir,
            bin = self.bin_dir,
            cache = self.cache_dir,
        );
        let dir = self.dir.as_ref().expect("temp dir").path();
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.host_ns.display()))
            .args(["unshare", "--mount", "--propagation", "private", "sh", "-c"])
            .arg(script)
            .arg("sh")
            .arg("ctr")
            .arg("-a")
            .arg(&self.socket)
            .args(["run", mode, "--cni", "--env", "PATH=/bin", "--fifo-dir"])
            .arg(dir.join("fifo"))
            .arg("--runc-root")
            .arg(dir.join("runc"))
            .arg("--rootfs")
            .arg(&self.rootfs)
            .arg(id)
            .args(cmd);
        run(&mut c)
    }

    /// The pid of task `id`, if it runs.
    pub fn pid(&self, id: &str) -> Option<u32> {
        let out = self.ctr(&["task", "ls"]);
        String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some(id))
                .then(|| f.next().and_then(|p| p.parse().ok()))
                .flatten()
        })
    }

    /// `ctr task kill -s SIGKILL`, `ctr task rm` and `ctr container rm` of `id`: what a user
    /// does, and (as observed) no CNI DEL at all.
    pub async fn kill_and_rm(&self, id: &str) {
        let _ = self.ctr(&["task", "kill", "-s", "SIGKILL", id]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.ctr(&["task", "rm", id]).status.success() {
            assert!(Instant::now() < deadline, "ctr task rm {id} kept failing");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        must(
            &format!("ctr container rm {id}"),
            self.ctr(&["container", "rm", id]),
        );
    }

    /// The result cache files ctr's CNI library left (in the private cache dir).
    pub fn cached_results(&self) -> Vec<String> {
        fs::read_dir(self.cache_dir.join("results"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let out = self.ctr(&["task", "ls", "-q"]);
        for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = self.ctr(&["task", "kill", "-s", "SIGKILL", id]);
            let _ = self.ctr(&["task", "rm", "-f", id]);
        }
        let out = self.ctr(&["container", "ls", "-q"]);
        for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = self.ctr(&["container", "rm", id]);
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(dir) = self.dir.take() {
            unmount_under(dir.path());
            let path = dir.path().to_path_buf();
            if let Err(e) = dir.close() {
                eprintln!("remove {}: {e}", path.display());
            }
        }
    }
}
