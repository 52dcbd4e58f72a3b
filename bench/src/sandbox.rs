//! Where the benchmark runs: scratch namespaces, temp dirs, helper threads that run commands
//! inside a scratch "host" namespace, weftd processes, and the cleanup that removes all of it.
//!
//! Every name the bench puts outside its temp dir starts with its *tag*, `wbench<pid>`:
//! namespace files `/run/netns/wbench<pid>-*`, the temp dir `/tmp/wbench<pid>-*`. Nothing else
//! is ever touched. [`Run`] removes everything of its own tag when dropped (also on an error or
//! Ctrl-C); [`sweep`] removes what a run whose process is gone left behind (`weft-bench
//! cleanup`, which `bench/run` calls on exit), weftd and aardvark-dns processes included.
//!
//! The real host's interfaces, routes and firewall are never changed: every command that acts
//! on "the host" runs on a [`NsRunner`] thread that has `setns`ed into a scratch namespace
//! (the children it spawns inherit that namespace, as under `nsenter --net`), and every weftd
//! runs under `nsenter --net=<scratch>` with `--host-netns` naming the same file.

use std::{
    fs::{self, File, OpenOptions},
    io::{Read, Write},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};
use nix::{
    mount::{MntFlags, umount2},
    sched::{CloneFlags, setns},
    sys::signal::{Signal, kill},
    unistd::Pid,
};

/// Where `ip netns add` puts namespace files.
pub const RUN_NETNS: &str = "/run/netns";

/// Set by SIGINT/SIGTERM: every loop checks it between operations and stops.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// Fails with "interrupted" once a stop was requested.
pub fn check_stop() -> Result<()> {
    if STOP.load(Ordering::Relaxed) {
        bail!("interrupted");
    }
    Ok(())
}

/// The tag of this process's objects: `wbench<pid>`.
pub fn tag() -> String {
    format!("wbench{}", std::process::id())
}

/// One benchmark process's scratch area: its temp dir and the scratch namespaces it made.
/// Dropping it removes all of them (see the module docs).
pub struct Run {
    tag: String,
    dir: Option<tempfile::TempDir>,
    /// Scratch namespaces made in /run/netns (names).
    made: Mutex<Vec<String>>,
}

impl Run {
    /// Creates the temp dir `/tmp/wbench<pid>-XXXX`.
    pub fn new() -> Result<Self> {
        let tag = tag();
        let dir = tempfile::Builder::new()
            .prefix(&format!("{tag}-"))
            .tempdir_in("/tmp")
            .context("create the bench temp dir")?;
        Ok(Self {
            tag,
            dir: Some(dir),
            made: Mutex::new(Vec::new()),
        })
    }

    /// The temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("temp dir").path()
    }

    /// A fresh subdirectory of the temp dir.
    pub fn subdir(&self, name: &str) -> Result<PathBuf> {
        let p = self.dir().join(name);
        fs::create_dir_all(&p).with_context(|| format!("create {}", p.display()))?;
        Ok(p)
    }

    /// The name of a namespace of this run in /run/netns: `<tag>-<suffix>`.
    pub fn ns_name(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.tag)
    }

    /// Makes a scratch namespace `/run/netns/<tag>-<suffix>` with `ip netns add`, loopback up;
    /// returns its path. It is deleted when the run is dropped (or by `ip netns del`).
    pub fn scratch_ns(&self, suffix: &str) -> Result<PathBuf> {
        let name = self.ns_name(suffix);
        run_ok(Command::new("ip").args(["netns", "add", &name]))?;
        self.made.lock().expect("lock").push(name.clone());
        run_ok(Command::new("ip").args(["-n", &name, "link", "set", "lo", "up"]))?;
        Ok(Path::new(RUN_NETNS).join(name))
    }

    /// Removes everything of this run: mounts under the temp dir, namespace files of its tag
    /// in /run/netns, the temp dir. Returns what it could not undo.
    pub fn cleanup(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(dir) = self.dir.take() {
            unmount_under(dir.path());
            let path = dir.path().to_path_buf();
            if let Err(e) = dir.close() {
                problems.push(format!("remove {}: {e}", path.display()));
            }
        }
        problems.extend(remove_netns_files(|name| {
            name.starts_with(&format!("{}-", self.tag))
        }));
        self.made.lock().expect("lock").clear();
        problems
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        for p in self.cleanup() {
            eprintln!("cleanup: {p}");
        }
    }
}

/// Unmounts (lazily, deepest first) every mount point at or under `root`.
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

/// Unmounts and removes the files in /run/netns whose name `pick` accepts (what `ip netns
/// del` does); the kernel then frees each namespace and the interfaces in it.
fn remove_netns_files(pick: impl Fn(&str) -> bool) -> Vec<String> {
    let mut problems = Vec::new();
    let Ok(entries) = fs::read_dir(RUN_NETNS) else {
        return problems;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !pick(&name) {
            continue;
        }
        let path = e.path();
        let _ = umount2(&path, MntFlags::MNT_DETACH);
        if let Err(err) = fs::remove_file(&path) {
            problems.push(format!("remove {}: {err}", path.display()));
        }
    }
    problems
}

/// Removes what bench runs whose process is gone left behind: their weftd processes (killed by
/// pid), namespace files `/run/netns/wbench<pid>-*`, and temp dirs `/tmp/wbench<pid>-*` (after
/// unmounting everything under them). Runs of live processes are left alone. Returns a line
/// per thing removed.
pub fn sweep() -> Vec<String> {
    let mut done = Vec::new();
    let dead = |name: &str| -> bool { tag_pid(name).is_some_and(|pid| !bench_alive(pid)) };
    // weftd, aardvark-dns and floor-server processes started by a dead run: their command
    // line names its temp dir.
    if let Ok(procs) = fs::read_dir("/proc") {
        for p in procs.flatten() {
            let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(cmdline) = fs::read(p.path().join("cmdline")) else {
                continue;
            };
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let ours = (args
                .first()
                .is_some_and(|a| a.ends_with("weftd") || a.ends_with("aardvark-dns"))
                || args.get(1).is_some_and(|a| a == crate::floor_grpc::SERVE))
                && args.iter().any(|a| {
                    a.strip_prefix("/tmp/")
                        .and_then(|rest| rest.split('/').next())
                        .is_some_and(&dead)
                });
            if ours {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                let what = match args.get(1) {
                    Some(a) if a == crate::floor_grpc::SERVE => a.as_str(),
                    _ => args.first().map(String::as_str).unwrap_or_default(),
                };
                done.push(format!("killed {what} {pid}"));
            }
        }
    }
    if let Ok(entries) = fs::read_dir("/tmp") {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if dead(&name) {
                unmount_under(&e.path());
                let _ = fs::remove_dir_all(e.path());
                done.push(format!("removed {}", e.path().display()));
            }
        }
    }
    let mut names = Vec::new();
    if let Ok(entries) = fs::read_dir(RUN_NETNS) {
        names = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| dead(n))
            .collect();
    }
    for p in remove_netns_files(|n| dead(n)) {
        done.push(p);
    }
    done.extend(
        names
            .into_iter()
            .map(|n| format!("removed {RUN_NETNS}/{n}")),
    );
    done
}

/// True while `pid` is a live weft-bench process (not gone, not a zombie, not a reused pid).
fn bench_alive(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "<pid> (<comm>) <state> ...": comm is cut to 15 bytes by the kernel.
    let Some((head, rest)) = stat.rsplit_once(')') else {
        return false;
    };
    let comm = head.split_once('(').map(|(_, c)| c).unwrap_or_default();
    let state = rest.split_whitespace().next().unwrap_or_default();
    comm == "weft-bench" && state != "Z" && state != "X"
}

/// The pid in a name `wbench<pid>-...`.
fn tag_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("wbench")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    if digits.is_empty() || !rest[digits.len()..].starts_with('-') {
        return None;
    }
    digits.parse().ok()
}

/// MemAvailable of /proc/meminfo, in KiB.
pub fn mem_available_kib() -> u64 {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Every mount point in this process's mount namespace.
fn mount_points() -> Vec<PathBuf> {
    let mut s = String::new();
    if File::open("/proc/self/mountinfo")
        .and_then(|mut f| f.read_to_string(&mut s))
        .is_err()
    {
        return Vec::new();
    }
    s.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(m.replace("\\040", " ")))
        .collect()
}

/// CPU time (user + system) a process has used so far, from `/proc/<pid>/stat` (clock-tick
/// resolution, 10 ms here: read it around whole phases, not single operations). Includes its
/// threads, also those that exited; not its children.
pub fn cpu_time(pid: &str) -> Result<Duration> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces: fields count from after its ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("malformed /proc/{pid}/stat"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15, i.e. 12th and 13th after the name.
    let ticks: u64 = f
        .get(11..13)
        .ok_or_else(|| anyhow!("short /proc/{pid}/stat"))?
        .iter()
        .map(|v| v.parse::<u64>().unwrap_or(0))
        .sum();
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100)
        .max(1) as u64;
    Ok(Duration::from_micros(ticks * 1_000_000 / hz))
}

/// Runs a command to completion; fails (with its stderr) unless it exits 0. Returns stdout.
pub fn run_ok(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {cmd:?}"))?;
    check(&format!("{cmd:?}"), out)
}

/// Turns a finished command into its stdout, or an error with what it printed.
fn check(what: &str, out: Output) -> Result<String> {
    if !out.status.success() {
        bail!(
            "{what}: {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A command for a [`NsRunner`]: program, arguments, extra environment, stdin.
#[derive(Clone, Debug, Default)]
pub struct Cmd {
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<Vec<u8>>,
}

impl Cmd {
    /// A command running `program`.
    pub fn new(program: impl Into<String>) -> Self {
        Self {
            program: program.into(),
            ..Default::default()
        }
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_string(), value.into()));
        self
    }

    /// Feeds `data` on stdin.
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self
    }

    fn describe(&self) -> String {
        let mut s = self.program.clone();
        for a in &self.args {
            s.push(' ');
            s.push_str(a);
        }
        s
    }

    fn execute(&self) -> std::io::Result<Output> {
        let mut c = Command::new(&self.program);
        c.args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        let mut child = c.spawn()?;
        if let Some(data) = &self.stdin {
            let mut w = child.stdin.take().expect("piped stdin");
            w.write_all(data)?;
        }
        child.wait_with_output()
    }
}

struct Job {
    cmd: Cmd,
    reply: tokio::sync::oneshot::Sender<std::io::Result<Output>>,
}

/// A thread that has entered a network namespace (`setns`) and runs commands there: the
/// processes it spawns start in that namespace, as under `nsenter --net=<file>`, without an
/// extra `nsenter` process per command. It exits when the runner is dropped.
pub struct NsRunner {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NsRunner {
    /// Starts the thread and waits until it is inside the namespace of `ns_file`.
    pub fn new(ns_file: &Path) -> Result<Self> {
        let file = File::open(ns_file).with_context(|| format!("open {}", ns_file.display()))?;
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let label = ns_file.display().to_string();
        let thread = std::thread::Builder::new()
            .name("ns-runner".into())
            .spawn(move || {
                if let Err(e) = setns(&file, CloneFlags::CLONE_NEWNET) {
                    let _ = ready_tx.send(Err(format!("setns into {label}: {e}")));
                    return;
                }
                drop(file);
                let _ = ready_tx.send(Ok(()));
                while let Ok(job) = rx.recv() {
                    let _ = job.reply.send(job.cmd.execute());
                }
            })
            .context("spawn a runner thread")?;
        ready_rx
            .recv()
            .map_err(|_| anyhow!("runner thread died"))?
            .map_err(|e| anyhow!(e))?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Runs `cmd` in the namespace; its output, whatever its exit status.
    pub async fn output(&self, cmd: Cmd) -> Result<Output> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let what = cmd.describe();
        self.tx
            .as_ref()
            .expect("runner")
            .send(Job { cmd, reply })
            .map_err(|_| anyhow!("runner thread is gone"))?;
        rx.await
            .map_err(|_| anyhow!("runner thread is gone"))?
            .with_context(|| format!("run {what}"))
    }

    /// Runs `cmd` in the namespace; its stdout, or an error unless it exits 0.
    pub async fn ok(&self, cmd: Cmd) -> Result<String> {
        let what = cmd.describe();
        check(&what, self.output(cmd).await?)
    }
}

impl Drop for NsRunner {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The interface names a network namespace lists, read from its `/proc/net/dev`: the file
/// is opened by a thread inside the namespace (`/proc/thread-self/net/dev` keeps the
/// namespace it was opened in), and each [`DevList::names`] reads it again. The kernel walks
/// that list under RCU, so a poll never waits for RTNL nor holds it, unlike `ip link` (a
/// netlink dump, which on 6.18 holds RTNL and, with 1,000 veths in the namespace, costs tens
/// of milliseconds: `peernet2id` per veth), and spawns no process. A device leaves this list
/// when its unregistering starts, while the kernel still holds RTNL for the rest of the
/// delete (the bridge port's removal, the address families' teardown): to see a delete
/// finished, follow an empty listing with one request that waits for RTNL
/// ([`rtnl_passed`]).
pub struct DevList {
    file: Mutex<File>,
}

impl DevList {
    /// Opens the `/proc/net/dev` of the namespace whose file is `ns_file`.
    pub fn open(ns_file: &Path) -> Result<Self> {
        let ns = File::open(ns_file).with_context(|| format!("open {}", ns_file.display()))?;
        let label = ns_file.display().to_string();
        let file = std::thread::Builder::new()
            .name("devlist".into())
            .spawn(move || -> Result<File> {
                setns(&ns, CloneFlags::CLONE_NEWNET)
                    .with_context(|| format!("setns into {label}"))?;
                File::open("/proc/thread-self/net/dev")
                    .with_context(|| format!("open /proc/net/dev in {label}"))
            })
            .context("spawn a devlist thread")?
            .join()
            .map_err(|_| anyhow!("the devlist thread panicked"))??;
        Ok(Self {
            file: Mutex::new(file),
        })
    }

    /// The names listed now.
    pub fn names(&self) -> Result<Vec<String>> {
        use std::io::{Seek, SeekFrom};
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        f.seek(SeekFrom::Start(0)).context("rewind /proc/net/dev")?;
        let mut text = String::new();
        f.read_to_string(&mut text).context("read /proc/net/dev")?;
        Ok(dev_names(&text))
    }
}

/// Returns once the kernel's RTNL lock has been free since the call: one `RTM_GETLINK` of
/// `lo` through `kernel` (any namespace: the lock is global), which waits for whatever
/// delete holds it.
pub async fn rtnl_passed(kernel: &weftd::kernel::Kernel) -> Result<()> {
    use weftd::kernel::prelude::*;
    kernel
        .get_link_bare(&weftd::kernel::NsRef::Host, "lo")
        .await
        .context("look up lo (to wait for RTNL)")?;
    Ok(())
}

/// How long a poll of a [`DevList`] waits before its next read, when the last read took
/// `read`: 10 ms, or twice the read where that is longer. A read costs the kernel about 2 µs
/// an interface (21 ms at 10,000 here: BENCHMARKS.md, session 35), so the poll takes at most
/// a third of a CPU from what it times, and finds a change within about three reads.
pub fn poll_pause(read: Duration) -> Duration {
    read.saturating_mul(2).max(Duration::from_millis(10))
}

/// The interface names in the text of a `/proc/net/dev` (two header lines, then
/// `name: counters` per interface).
fn dev_names(text: &str) -> Vec<String> {
    text.lines()
        .skip(2)
        .filter_map(|l| l.split_once(':'))
        .map(|(name, _)| name.trim().to_string())
        .collect()
}

/// A weftd process against a scratch host namespace, in the run's temp dir (the integration
/// tests' sandbox, tests/common/mod.rs, does the same). Killed when dropped.
pub struct Weftd {
    bin: PathBuf,
    host_ns: PathBuf,
    dir: PathBuf,
    child: Option<Child>,
    client: Option<weft::Client>,
    /// Extra arguments for every start ([`Weftd::with_args`]).
    extra: Vec<std::ffi::OsString>,
}

impl Weftd {
    /// How long weftd gets to open its socket.
    const START_TIMEOUT: Duration = Duration::from_secs(30);

    /// Prepares (does not start) a weftd whose files live in `dir` (netns dir, database,
    /// socket, log) and whose host namespace is `host_ns`.
    pub fn new(bin: &Path, host_ns: &Path, dir: PathBuf) -> Result<Self> {
        fs::create_dir_all(dir.join("netns")).context("create weftd's netns dir")?;
        Ok(Self {
            bin: bin.to_path_buf(),
            host_ns: host_ns.to_path_buf(),
            dir,
            child: None,
            client: None,
            extra: Vec::new(),
        })
    }

    /// Adds arguments to every start of this weftd (e.g. `--config FILE`).
    pub fn with_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<std::ffi::OsString>,
    {
        self.extra.extend(args.into_iter().map(Into::into));
        self
    }

    /// weftd's netns dir (`--netns-dir`).
    pub fn netns_dir(&self) -> PathBuf {
        self.dir.join("netns")
    }

    /// The scratch host namespace file.
    pub fn host_ns(&self) -> &Path {
        &self.host_ns
    }

    /// weftd's socket (`--socket`).
    pub fn socket(&self) -> PathBuf {
        self.dir.join("weftd.sock")
    }

    /// weftd's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("weftd.log")
    }

    /// The last `lines` lines of weftd's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Starts weftd under `nsenter --net=<host>` (its own process group, so a Ctrl-C at the
    /// terminal reaches the bench, which stops weftd itself) and waits until its socket
    /// answers. Returns how long that took from the spawn.
    pub async fn start(&mut self) -> Result<Duration> {
        if self.child.is_some() {
            bail!("weftd is already running");
        }
        let socket = self.socket();
        let _ = fs::remove_file(&socket);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .context("open weftd.log")?;
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.host_ns.display()))
            .arg(&self.bin)
            .arg("--host-netns")
            .arg(&self.host_ns)
            .arg("--netns-dir")
            .arg(self.netns_dir())
            .arg("--database")
            .arg(self.dir.join("weft.db"))
            .arg("--socket")
            .arg(&socket)
            .arg("--no-default-network");
        // Its lock files under the bench's dir, never the real /run/weft (a weftd from before
        // the flag, which the before/after comparisons run, has no locks to put anywhere).
        if knows_flag(&self.bin, "--runtime-dir") {
            cmd.arg("--runtime-dir").arg(self.dir.join("run"));
        }
        // No DNS forwarding out of the bench's namespaces (an empty resolv.conf has no
        // nameservers) and no writes to the real /etc/netns.
        if knows_flag(&self.bin, "--etc-netns-dir") {
            cmd.arg("--host-resolv-conf")
                .arg("/dev/null")
                .arg("--etc-netns-dir")
                .arg(self.dir.join("etc-netns"));
        }
        cmd.args(&self.extra);
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().context("dup log")?)
            .stderr(log)
            .process_group(0);
        let t0 = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("start {}", self.bin.display()))?;
        self.child = Some(child);
        loop {
            check_stop()?;
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                bail!(
                    "weftd exited at start with {status}; its log:\n{}",
                    self.log_tail(30)
                );
            }
            if socket.exists()
                && let Ok(c) = weft::Client::connect_unix(&socket).await
            {
                self.client = Some(c);
                return Ok(t0.elapsed());
            }
            if t0.elapsed() > Self::START_TIMEOUT {
                bail!(
                    "weftd did not open its socket within {:?}; its log:\n{}",
                    Self::START_TIMEOUT,
                    self.log_tail(30)
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// A connected client (shares one connection).
    pub fn client(&self) -> Result<weft::Client> {
        self.client
            .clone()
            .ok_or_else(|| anyhow!("weftd is not running"))
    }

    /// A new, separate connection to weftd.
    pub async fn new_client(&self) -> Result<weft::Client> {
        Ok(weft::Client::connect_unix(self.dir.join("weftd.sock")).await?)
    }

    /// weftd's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// CPU time weftd has used since it started (see [`cpu_time`]).
    pub fn cpu(&self) -> Result<Duration> {
        let pid = self.pid().ok_or_else(|| anyhow!("weftd is not running"))?;
        cpu_time(&pid.to_string())
    }

    /// weftd's resident set size in KiB (VmRSS of /proc/<pid>/status).
    pub fn rss_kib(&self) -> Result<u64> {
        let pid = self.pid().ok_or_else(|| anyhow!("weftd is not running"))?;
        let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow!("no VmRSS in /proc/{pid}/status"))
    }

    /// How many file descriptors weftd holds (sockets, namespace files, the database).
    pub fn fds(&self) -> Result<usize> {
        let pid = self.pid().ok_or_else(|| anyhow!("weftd is not running"))?;
        Ok(fs::read_dir(format!("/proc/{pid}/fd"))?.count())
    }

    /// Fails, with the log's tail, if weftd has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
        {
            self.child = None;
            bail!(
                "weftd exited with {status}; its log:\n{}",
                self.log_tail(30)
            );
        }
        Ok(())
    }

    /// SIGTERM, then waits for the exit (SIGKILL after 30 s). Returns how long it took.
    ///
    /// It waits without blocking its thread: weftd's graceful shutdown ends each client
    /// connection with a GOAWAY and a PING, and a connection the bench still holds answers
    /// that PING only if its task runs. A blocked worker held that task and weftd's stop took
    /// its full 5 s of grace.
    pub async fn stop(&mut self) -> Result<Duration> {
        self.client = None;
        let Some(mut child) = self.child.take() else {
            bail!("weftd is not running");
        };
        let t0 = Instant::now();
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    bail!("weftd exited with {status} on SIGTERM");
                }
                return Ok(t0.elapsed());
            }
            if t0.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                let _ = child.wait();
                bail!("weftd did not exit within 30 s of SIGTERM (killed)");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Weftd {
    fn drop(&mut self) {
        self.client = None;
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // For profiling: keep weftd's log (run with RUST_LOG=weftd=debug for its spans).
        if let Some(dir) = std::env::var_os("WEFT_BENCH_KEEP_LOGS") {
            let name = self
                .dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let to = Path::new(&dir).join(format!("weftd-{name}-{}.log", std::process::id()));
            let _ = fs::create_dir_all(&dir);
            let _ = fs::copy(self.log_path(), &to);
        }
    }
}

/// True if `bin --help` lists `flag`.
fn knows_flag(bin: &std::path::Path, flag: &str) -> bool {
    Command::new(bin)
        .arg("--help")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(flag))
}

#[cfg(test)]
mod tests {
    use super::{DevList, dev_names, tag_pid};

    #[test]
    fn dev_names_are_the_names_before_the_colons() {
        let text = "Inter-|   Receive |  Transmit\n face |bytes packets|bytes packets\n    lo:   15965     145\n  veth-a1:0 0\nwh0123456789ab:    1 2\n";
        assert_eq!(dev_names(text), ["lo", "veth-a1", "wh0123456789ab"]);
        assert!(dev_names("Inter-|\n face |\n").is_empty());
    }

    #[test]
    fn a_dev_list_lists_its_namespace_again_at_each_read() {
        // `setns` needs CAP_SYS_ADMIN, even into the namespace the thread is in; the suite
        // runs as root (scripts/test).
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        // This process's own namespace, read only: it has a loopback interface.
        let list = DevList::open(std::path::Path::new("/proc/self/ns/net")).unwrap();
        for _ in 0..2 {
            assert!(list.names().unwrap().iter().any(|n| n == "lo"));
        }
    }

    #[test]
    fn tags() {
        assert_eq!(tag_pid("wbench123-h-ip"), Some(123));
        assert_eq!(tag_pid("wbench123-abc"), Some(123));
        assert_eq!(tag_pid("wbench-1"), None);
        assert_eq!(tag_pid("wbench12"), None);
        assert_eq!(tag_pid("wsmokeh"), None);
    }
}
