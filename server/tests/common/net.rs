//! Helpers for the NetworkService tests (networks.rs, ports.rs, ipam.rs), on top of the
//! [`Sandbox`](crate::common::Sandbox):
//! - [`Outside`]: an "outside world" namespace linked to the sandbox host by a veth on its own
//!   subnet ([`HOST_IP`] on the host end `outv`, [`OUTSIDE_IP`] on the far end), removed on drop;
//! - [`EchoServer`] and [`tcp_echo`]: a TCP echo server and client on dedicated threads that
//!   `setns` into a namespace file (never the test's own or a tokio thread), every wait bounded;
//!   the server answers with the peer address it saw, so a test can check masquerade;
//! - API helpers (networks, endpoints, readiness), `nft -j` readers and golden-file compare;
//! - [`ExtraDaemon`]: a second weftd with extra flags (say `--no-default-network`) against its own
//!   scratch namespace, named after the sandbox's prefix and removed on drop.
//!
//! Each test file includes this file with `#[path = "common/net.rs"] mod net;` and uses part of
//! it.
#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    fs::{self, File, OpenOptions},
    io::{BufRead, BufReader, Write},
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use ipnet::IpNet;
use nix::sched::{CloneFlags, setns};
use serde_json::Value;
use weft::v1::{
    ConnectRequest, CreateNetworkRequest, DeleteNetworkRequest, DisconnectRequest, Endpoint,
    GetNetworkRequest, Network, Phase, PublishedPort, Subnet,
};

use crate::common::{Sandbox, rpc, run, unmount_under, weftd_bin};

/// The sandbox host's address on the veth to the outside namespace.
pub const HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 1);
/// The outside namespace's address.
pub const OUTSIDE_IP: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 2);
/// The subnet of the link between them.
pub const OUTSIDE_NET: &str = "10.250.0.0/24";
/// The sandbox host's end of that veth.
pub const OUTSIDE_HOST_IF: &str = "outv";

/// Runs `args` inside the namespace file `ns`.
pub fn exec_at(ns: &Path, args: &[&str]) -> Output {
    run(Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .args(args))
}

/// Runs `args` inside the namespace file `ns`; panics unless it succeeds; returns stdout.
pub fn ok_at(ns: &Path, args: &[&str]) -> String {
    let out = exec_at(ns, args);
    assert!(
        out.status.success(),
        "in {}: {args:?} failed ({}): {}{}",
        ns.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Reads a sysctl of the namespace file `ns` ("net/ipv4/ip_forward"), trimmed.
pub fn sysctl_at(ns: &Path, key: &str) -> String {
    ok_at(ns, &["cat", &format!("/proc/sys/{key}")])
        .trim()
        .to_string()
}

/// The real host's value of a sysctl (the test process's own namespace), trimmed.
pub fn real_sysctl(key: &str) -> String {
    fs::read_to_string(format!("/proc/sys/{key}"))
        .unwrap_or_else(|e| panic!("read /proc/sys/{key}: {e}"))
        .trim()
        .to_string()
}

// ---- the outside namespace ----

/// A namespace playing the outside world: `ip netns add <prefix>out`, linked to the sandbox
/// host by the veth `outv` (host, [`HOST_IP`]/24) -- `eth0` (outside, [`OUTSIDE_IP`]/24).
/// Deleted on drop (its end of the veth, and so the pair, goes with it).
pub struct Outside {
    /// Its name in /run/netns.
    pub name: String,
    /// Its namespace file.
    pub path: PathBuf,
}

impl Outside {
    /// Makes the namespace and the link; panics when `ip` fails.
    pub fn new(sb: &Sandbox) -> Outside {
        let name = format!("{}out", sb.prefix);
        let out = run(Command::new("ip").args(["netns", "add", &name]));
        assert!(
            out.status.success(),
            "ip netns add {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let o = Outside {
            path: PathBuf::from("/run/netns").join(&name),
            name,
        };
        sb.host_ok(&[
            "ip",
            "link",
            "add",
            OUTSIDE_HOST_IF,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &o.name,
        ]);
        sb.host_ok(&[
            "ip",
            "addr",
            "add",
            &format!("{HOST_IP}/24"),
            "dev",
            OUTSIDE_HOST_IF,
        ]);
        sb.host_ok(&["ip", "link", "set", OUTSIDE_HOST_IF, "up"]);
        o.ok(&["ip", "link", "set", "lo", "up"]);
        o.ok(&[
            "ip",
            "addr",
            "add",
            &format!("{OUTSIDE_IP}/24"),
            "dev",
            "eth0",
        ]);
        o.ok(&["ip", "link", "set", "eth0", "up"]);
        o
    }

    /// Runs `args` in the outside namespace; panics unless it succeeds.
    pub fn ok(&self, args: &[&str]) -> String {
        ok_at(&self.path, args)
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let out = run(Command::new("ip").args(["netns", "del", &self.name]));
        if !out.status.success() {
            eprintln!(
                "ip netns del {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

// ---- TCP echo over namespaces ----

/// Moves the calling thread into the network namespace of file `ns`. Call it only on a thread
/// made for the purpose, which ends afterwards.
fn enter(ns: &Path) -> Result<(), String> {
    let f = File::open(ns).map_err(|e| format!("open {}: {e}", ns.display()))?;
    setns(&f, CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns {}: {e}", ns.display()))
}

/// A TCP server in a namespace that answers each line `L` with `"<peer ip> L"` (the source
/// address it saw, then the line), one connection at a time, on its own thread. Stopped and
/// joined on drop.
pub struct EchoServer {
    /// The address it listens on.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EchoServer {
    /// Binds `bind` inside namespace file `ns` (on a new thread that `setns`es there) and serves
    /// until dropped. Panics when the bind fails or takes over 5 s.
    pub fn start(ns: &Path, bind: SocketAddr) -> EchoServer {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel::<Result<SocketAddr, String>>();
        let ns_owned = ns.to_path_buf();
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let listener = match enter(&ns_owned).and_then(|()| {
                let l = TcpListener::bind(bind).map_err(|e| format!("bind {bind}: {e}"))?;
                l.set_nonblocking(true)
                    .map_err(|e| format!("nonblocking: {e}"))?;
                Ok(l)
            }) {
                Ok(l) => l,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let _ = tx.send(listener.local_addr().map_err(|e| e.to_string()));
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, peer)) => serve_one(s, peer),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => panic!("echo server in {}: {e}", ns.display()),
            Err(e) => panic!("echo server in {} did not start: {e}", ns.display()),
        };
        EchoServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

fn serve_one(s: TcpStream, peer: SocketAddr) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(3)));
    let mut line = String::new();
    let Ok(mut w) = s.try_clone() else { return };
    if BufReader::new(s).read_line(&mut line).is_ok() && line.ends_with('\n') {
        let _ = write!(w, "{} {line}", peer.ip());
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

static TOKEN: AtomicU64 = AtomicU64::new(0);

fn exchange(ns: &Path, to: SocketAddr, timeout: Duration) -> Result<IpAddr, String> {
    enter(ns)?;
    let s = TcpStream::connect_timeout(&to, timeout).map_err(|e| format!("connect {to}: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let token = format!(
        "hello-{}-{}",
        std::process::id(),
        TOKEN.fetch_add(1, Ordering::Relaxed)
    );
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    writeln!(w, "{token}").map_err(|e| format!("send to {to}: {e}"))?;
    let mut reply = String::new();
    BufReader::new(s)
        .read_line(&mut reply)
        .map_err(|e| format!("read from {to}: {e}"))?;
    let reply = reply.trim_end();
    let (peer, echoed) = reply
        .split_once(' ')
        .ok_or_else(|| format!("{to} answered {reply:?}, not \"<peer> <line>\""))?;
    if echoed != token {
        return Err(format!("{to} echoed {echoed:?}, not {token:?}"));
    }
    peer.parse()
        .map_err(|_| format!("{to} reported peer {peer:?}, not an address"))
}

/// One echo exchange from namespace file `ns` to `to` on a dedicated thread (connect, send a
/// line, read the answer), each step bounded by `timeout`. Ok carries the source address the
/// server saw.
pub async fn tcp_echo(ns: &Path, to: SocketAddr, timeout: Duration) -> Result<IpAddr, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let ns = ns.to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(exchange(&ns, to, timeout));
    });
    match tokio::time::timeout(timeout * 3 + Duration::from_secs(1), rx).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err("the client thread died".into()),
        Err(_) => Err(format!(
            "no answer from the client thread within {timeout:?} x3"
        )),
    }
}

/// Echo exchanges from `ns` to `to` until one succeeds (tries for up to 10 s: a fresh veth,
/// ARP or IPv6 DAD may still be settling); returns the source address the server saw. Panics
/// with the last error, naming `what`.
pub async fn assert_tcp_ok(ns: &Path, to: SocketAddr, what: &str) -> IpAddr {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match tcp_echo(ns, to, Duration::from_secs(2)).await {
            Ok(peer) => return peer,
            Err(e) if Instant::now() > deadline => {
                panic!("{what}: TCP from {} to {to} failed: {e}", ns.display())
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

/// One echo exchange from `ns` to `to` that must fail (1.5 s to connect). Pair it with an
/// [`assert_tcp_ok`] to the same server from elsewhere, so the failure speaks of the path.
pub async fn assert_tcp_fails(ns: &Path, to: SocketAddr, what: &str) {
    if let Ok(peer) = tcp_echo(ns, to, Duration::from_millis(1500)).await {
        panic!(
            "{what}: TCP from {} to {to} succeeded (the server saw {peer}), but must fail",
            ns.display()
        );
    }
}

/// `ip:port` as a socket address.
pub fn sa(ip: impl Into<IpAddr>, port: u16) -> SocketAddr {
    SocketAddr::new(ip.into(), port)
}

/// The address part of a CIDR string ("10.1.0.2/24" -> 10.1.0.2).
pub fn addr_of(cidr: &str) -> IpAddr {
    cidr.parse::<IpNet>()
        .unwrap_or_else(|e| panic!("{cidr:?} is no CIDR: {e}"))
        .addr()
}

/// Pings `addr` from `ns` (`ping -c1 -W1`) until one is answered, for up to `within`; true
/// when one was. For IPv6 right after a connect, DAD on both ends takes a second or two.
pub async fn ping_within(sb: &Sandbox, ns: &str, addr: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if sb
            .exec_in(ns, &["ping", "-c1", "-W1", addr])
            .status
            .success()
        {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

// ---- the API ----

/// A network body: name, bridge, subnets ("cidr" or "cidr gateway").
pub fn network(name: &str, bridge: &str, subnets: &[&str]) -> Network {
    Network {
        name: name.into(),
        bridge_name: bridge.into(),
        subnets: subnets
            .iter()
            .map(|s| {
                let mut parts = s.split_whitespace();
                Subnet {
                    subnet: parts.next().unwrap_or_default().into(),
                    gateway: parts.next().unwrap_or_default().into(),
                    ..Default::default()
                }
            })
            .collect(),
        ..Default::default()
    }
}

/// Creates a network (waiting) and asserts it is Ready; returns it as the daemon answered.
pub async fn create_network(c: &weft::Client, net: Network) -> Network {
    let name = net.name.clone();
    let n = rpc(c.networks().create_network(CreateNetworkRequest {
        network: Some(net),
        wait: None,
        ..Default::default()
    }))
    .await
    .unwrap_or_else(|s| panic!("CreateNetwork {name}: {s:?}"))
    .network
    .expect("CreateNetwork answered no network");
    assert_eq!(n.name, name);
    let s = n
        .status
        .clone()
        .unwrap_or_else(|| panic!("network {name}: no status"));
    assert_eq!(s.phase(), Phase::Ready, "network {name}: {s:?}");
    assert!(
        s.observed_generation >= n.generation,
        "network {name}: {s:?}"
    );
    n
}

/// GetNetwork; panics on error.
pub async fn get_network(c: &weft::Client, name: &str) -> Network {
    rpc(c
        .networks()
        .get_network(GetNetworkRequest { name: name.into() }))
    .await
    .unwrap_or_else(|s| panic!("GetNetwork {name}: {s:?}"))
    .network
    .expect("GetNetwork answered no network")
}

/// DeleteNetwork (waiting); panics on error.
pub async fn delete_network(c: &weft::Client, name: &str) {
    rpc(c.networks().delete_network(DeleteNetworkRequest {
        name: name.into(),
        wait: None,
        ..Default::default()
    }))
    .await
    .unwrap_or_else(|s| panic!("DeleteNetwork {name}: {s:?}"));
}

/// A Connect request of `ns` to `net`, waiting, with nothing else set.
pub fn connect_req(net: &str, ns: &str) -> ConnectRequest {
    ConnectRequest {
        network: net.into(),
        namespace: ns.into(),
        ..Default::default()
    }
}

/// Connects (waiting) and asserts the endpoint is Ready; returns it.
pub async fn connect(c: &weft::Client, req: ConnectRequest) -> Endpoint {
    let what = format!("Connect {} to {}", req.namespace, req.network);
    let ep = rpc(c.networks().connect(req))
        .await
        .unwrap_or_else(|s| panic!("{what}: {s:?}"))
        .endpoint
        .expect("Connect answered no endpoint");
    let s = ep
        .status
        .clone()
        .unwrap_or_else(|| panic!("{what}: no status"));
    assert_eq!(s.phase(), Phase::Ready, "{what}: {s:?}");
    ep
}

/// Disconnects (waiting); panics on error.
pub async fn disconnect(c: &weft::Client, net: &str, ns: &str) {
    rpc(c.networks().disconnect(DisconnectRequest {
        network: net.into(),
        namespace: ns.into(),
        wait: None,
        ..Default::default()
    }))
    .await
    .unwrap_or_else(|s| panic!("Disconnect {ns} from {net}: {s:?}"));
}

/// A published TCP port on every host address.
pub fn tcp_port(host: u32, container: u32) -> PublishedPort {
    PublishedPort {
        host_port: host,
        container_port: container,
        protocol: "tcp".into(),
        ..Default::default()
    }
}

/// Polls GetNetwork until it lists `n` endpoints, all Ready; returns the network. Panics
/// after `timeout`, naming those that are not, or as soon as weftd's log shows a panic.
pub async fn wait_endpoints_ready(sb: &Sandbox, net: &str, n: usize, timeout: Duration) -> Network {
    let c = &sb.client();
    let deadline = Instant::now() + timeout;
    loop {
        // A panicked reconcile worker never finishes its key: say so instead of waiting.
        assert!(
            !sb.log().contains("panicked at"),
            "weftd panicked while waiting for the endpoints of {net} (its log follows)"
        );
        let got = get_network(c, net).await;
        let not_ready: Vec<String> = got
            .endpoints
            .iter()
            .filter(|e| e.status.as_ref().map(|s| s.phase()) != Some(Phase::Ready))
            .map(|e| format!("{} {:?}", e.namespace, e.status))
            .collect();
        if got.endpoints.len() == n && not_ready.is_empty() {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "network {net}: {} endpoints (want {n}) after {timeout:?}; not Ready: {:?}",
            got.endpoints.len(),
            &not_ready[..not_ready.len().min(10)]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Names of the `wv*` interfaces (endpoint host ends) in the sandbox host.
pub fn host_veths(sb: &Sandbox) -> Vec<String> {
    sb.link_names("")
        .into_iter()
        .filter(|n| n.starts_with("wv"))
        .collect()
}

// ---- nftables ----

/// `nft -j <args>` in the sandbox host, parsed.
pub fn nft_json(sb: &Sandbox, args: &[&str]) -> Value {
    let mut full = vec!["nft", "-j"];
    full.extend_from_slice(args);
    let out = sb.host_ok(&full);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("nft -j {args:?}: {e}: {out}"))
}

/// The elements of one map (or set) of `inet weft` in the sandbox host.
pub fn map_elems(sb: &Sandbox, map: &str) -> Vec<Value> {
    let kind = if map.starts_with("dnat") {
        "map"
    } else {
        "set"
    };
    let v = nft_json(sb, &["list", kind, "inet", "weft", map]);
    v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o.get(kind))
        .flat_map(|m| m.get("elem").and_then(Value::as_array).cloned())
        .flatten()
        .collect()
}

/// The four DNAT maps' elements, by map name (only the non-empty ones).
pub fn dnat_elems(sb: &Sandbox) -> BTreeMap<String, Vec<Value>> {
    ["dnat4", "dnat4_any", "dnat6", "dnat6_any"]
        .into_iter()
        .map(|m| (m.to_string(), map_elems(sb, m)))
        .filter(|(_, e)| !e.is_empty())
        .collect()
}

/// `nft -j list ruleset` in the sandbox host with what changes from run to run removed:
/// `handle` keys, the `metainfo` object, the plan fingerprint in table comments (`weft plan
/// <fingerprint>`), and the order of set and map elements (hash sets list in hash order).
pub fn ruleset(sb: &Sandbox) -> Value {
    normalise(nft_json(sb, &["list", "ruleset"]))
}

fn normalise(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| k != "handle" && k != "metainfo")
                .map(|(k, v)| {
                    let v = match (k.as_str(), v) {
                        ("comment", Value::String(s)) if s.starts_with("weft plan ") => {
                            Value::String("weft plan <fingerprint>".into())
                        }
                        ("elem", Value::Array(items)) => {
                            let mut items: Vec<Value> = items.into_iter().map(normalise).collect();
                            items.sort_by_key(|i| i.to_string());
                            Value::Array(items)
                        }
                        (_, v) => normalise(v),
                    };
                    (k, v)
                })
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

/// Asserts every table of the sandbox host's ruleset is one of weft's two (`inet weft`, and
/// `bridge weft` when `bridge_table`) and carries the marker comment `weft plan <16 hex
/// digits>` (`nft -j` of nft 1.0.6 does not show table comments, the text listing does).
pub fn assert_marked_tables(sb: &Sandbox, bridge_table: bool) {
    let text = sb.host_ok(&["nft", "list", "ruleset"]);
    let lines: Vec<&str> = text.lines().collect();
    let mut tables = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if let Some(rest) = l.strip_prefix("table ") {
            let name = rest.trim_end_matches(" {").to_string();
            let comment = lines.get(i + 1).map(|c| c.trim()).unwrap_or_default();
            let fp = comment
                .strip_prefix("comment \"weft plan ")
                .and_then(|c| c.strip_suffix('"'))
                .unwrap_or_default();
            assert!(
                fp.len() == 16 && fp.bytes().all(|b| b.is_ascii_hexdigit()),
                "table {name} lacks the weft marker comment: {comment:?}\n{text}"
            );
            tables.push(name);
        }
    }
    let mut want = vec!["inet weft".to_string()];
    if bridge_table {
        want.push("bridge weft".into());
    }
    assert_eq!(tables, want, "{text}");
}

/// Compares `value` to `tests/golden/networks/<name>`, or rewrites it under `UPDATE_GOLDEN=1`.
pub fn assert_golden(name: &str, value: &Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/networks")
        .join(name);
    let text = serde_json::to_string_pretty(value).expect("json") + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::create_dir_all(path.parent().expect("dir")).expect("mkdir golden dir");
        fs::write(&path, &text).expect("write golden");
        return;
    }
    let want = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    if want != text {
        let wv: Value = serde_json::from_str(&want).unwrap_or(Value::Null);
        panic!(
            "{} drifted (UPDATE_GOLDEN=1 rewrites it); differences (golden -> now):\n{}\n\
             --- now ---\n{text}",
            path.display(),
            crate::common::json_diff(&wv, value)
        );
    }
}

// ---- a second daemon with flags of its own ----

/// A weftd started with extra flags against its own scratch host namespace
/// `/run/netns/<sandbox prefix><tag>`, with its database, socket, netns dir and log under the
/// sandbox's temp dir. Dropping it kills the daemon, unmounts what it mounted under its netns
/// dir and deletes the namespace (the sandbox removes the temp dir afterwards).
pub struct ExtraDaemon {
    /// The scratch host namespace's name.
    pub ns_name: String,
    /// Its file.
    pub ns_path: PathBuf,
    netns_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    client: Option<weft::Client>,
}

impl ExtraDaemon {
    /// Makes the namespace (loopback up), runs `prepare` on its file, then starts weftd with
    /// `args` after the sandbox-style flags and waits (10 s) for its socket to answer.
    pub async fn start(
        sb: &Sandbox,
        tag: &str,
        args: &[&str],
        prepare: impl FnOnce(&Path),
    ) -> ExtraDaemon {
        let ns_name = format!("{}{tag}", sb.prefix);
        let dir = sb.dir().join(tag);
        fs::create_dir_all(dir.join("netns")).expect("mkdir extra daemon dir");
        let out = run(Command::new("ip").args(["netns", "add", &ns_name]));
        assert!(
            out.status.success(),
            "ip netns add {ns_name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut d = ExtraDaemon {
            ns_path: PathBuf::from("/run/netns").join(&ns_name),
            ns_name,
            netns_dir: dir.join("netns"),
            log: dir.join("weftd.log"),
            child: None,
            client: None,
        };
        ok_at(&d.ns_path, &["ip", "link", "set", "lo", "up"]);
        prepare(&d.ns_path);
        let socket = dir.join("weftd.sock");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&d.log)
            .expect("open extra weftd log");
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", d.ns_path.display()))
            .arg(weftd_bin())
            .arg("--host-netns")
            .arg(&d.ns_path)
            .arg("--netns-dir")
            .arg(&d.netns_dir)
            .arg("--database")
            .arg(dir.join("weft.db"))
            .arg("--socket")
            .arg(&socket)
            .arg("--runtime-dir")
            .arg(dir.join("run"))
            .args(args)
            // No forwarding out of the sandbox, no writes to the real /etc/netns.
            .arg("--host-resolv-conf")
            .arg("/dev/null")
            .arg("--etc-netns-dir")
            .arg(dir.join("etc-netns"))
            .env("RUST_LOG", "info,weftd=debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        d.child = Some(cmd.spawn().expect("spawn nsenter weftd"));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = d.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                d.child = None;
                panic!(
                    "extra weftd {args:?} exited at start with {status}\n--- its log ---\n{}",
                    d.log()
                );
            }
            if socket.exists()
                && let Ok(c) = weft::Client::connect_unix(&socket).await
            {
                d.client = Some(c);
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "extra weftd {args:?} did not answer within 10 s\n--- its log ---\n{}",
                d.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Its client.
    pub fn client(&self) -> weft::Client {
        self.client.clone().expect("extra weftd is not running")
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `ip -j <args>` in its host namespace.
    pub fn ip_json(&self, args: &[&str]) -> Value {
        let mut full = vec!["ip", "-j"];
        full.extend_from_slice(args);
        let out = ok_at(&self.ns_path, &full);
        if out.trim().is_empty() {
            return Value::Array(vec![]);
        }
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("ip -j {args:?}: {e}: {out}"))
    }

    /// Names of the interfaces in its host namespace.
    pub fn link_names(&self) -> Vec<String> {
        self.ip_json(&["link", "show"])
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["ifname"].as_str().map(str::to_string))
            .collect()
    }
}

impl Drop for ExtraDaemon {
    fn drop(&mut self) {
        self.client = None;
        let mut crashed = None;
        if let Some(mut child) = self.child.take() {
            crashed = child.try_wait().ok().flatten();
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = self.log();
        let task_panic = log.contains("panicked at");
        if std::thread::panicking() || crashed.is_some() || task_panic {
            eprintln!(
                "--- log of extra weftd {} ---\n{log}--- end ---",
                self.ns_name
            );
        }
        unmount_under(&self.netns_dir);
        let out = run(Command::new("ip").args(["netns", "del", &self.ns_name]));
        if !out.status.success() {
            eprintln!(
                "ip netns del {}: {}",
                self.ns_name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if !std::thread::panicking() {
            if let Some(s) = crashed {
                panic!("extra weftd {} exited on its own: {s}", self.ns_name);
            }
            if task_panic {
                panic!("extra weftd {} panicked (log above)", self.ns_name);
            }
        }
    }
}
