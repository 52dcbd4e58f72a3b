//! The DNS benchmark (issue 12): weftd's resolver against Debian's `aardvark-dns` (podman's
//! resolver) serving the same records, both driven by Debian's `dnsperf` for the same time
//! per case, interleaved; and weftd's API latency idle against during the query storm.
//!
//! - **weft**: a weftd in scratch host `h-dns` with network `dnsb` (subnet
//!   [`SUBNET`], DNS on, the default) and N namespaces `d0..d{N-1}` connected to it, every
//!   tenth with an alias `svc<k>` and `d1..d3` sharing the alias `api`. weftd serves the
//!   resolver on the gateway, port 53, in its scratch host. `dnsperf` runs inside `d0` (the
//!   querier must be an endpoint of the network for weft to answer its names).
//! - **aardvark-dns**: the same records (names, aliases and the addresses weft leased), in
//!   aardvark's configuration format ([`aardvark_config`]), served on the same gateway address
//!   on a bridge of its own scratch host `h-aard`; `dnsperf` runs in scratch namespace
//!   `aclient`, on that bridge through a veth with `d0`'s address: the same position.
//! - Neither has an upstream: weftd runs with `--host-resolv-conf /dev/null` (see
//!   [`crate::sandbox::Weftd`]), aardvark-dns in a private mount namespace whose
//!   `/etc/resolv.conf` is an empty file. No query leaves the bench's namespaces (and both
//!   answer an unknown single-label name themselves, NXDOMAIN, without forwarding).
//! - The cases: a local name (the data file cycles through every namespace name and unique
//!   alias, A) and an unknown single-label name (`nope<i>`, A: NXDOMAIN). `dnsperf` runs with
//!   its defaults (one UDP socket, up to 100 queries outstanding) for `--seconds`, with `-v`:
//!   the rate is dnsperf's "Queries per second", the p50 and p99 are computed here from the
//!   latency it prints for every answer (Debian's dnsperf 2.10 has no latency histogram).
//! - weftd's API latency: GetSystemInfo over its Unix socket, one call every 5 ms, idle
//!   (before the storms, 2 s after the last connect) and while each weft storm runs, on a
//!   connection of its own.

use std::{
    fmt::Write as _,
    fs,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail, ensure};
use ipnet::{IpNet, Ipv4Net};
use weft::v1::{ConnectRequest, GetSystemInfoRequest};

pub use self::peers::{Aardvark, Dnsperf, aardvark_config, parse_dnsperf};
use crate::{
    methods::{self, gateway},
    sandbox::{Cmd, NsRunner, Run, Weftd, check_stop, cpu_time, run_ok},
    stats::{Samples, Table, ms, ratio},
};

mod peers;

/// The subnet of both servers' networks (each in its own scratch namespaces).
pub const SUBNET: &str = "10.212.0.0/16";

/// What to run.
#[derive(Clone, Debug)]
pub struct Opts {
    /// Endpoints (namespaces) on weft's network: each one a record.
    pub endpoints: usize,
    /// dnsperf's run time per case and server.
    pub seconds: u64,
    /// Idle API calls.
    pub api_calls: usize,
    /// The aardvark-dns binary.
    pub aardvark: PathBuf,
    /// Which servers to measure (`weft`, `aardvark`).
    pub servers: Vec<Server>,
}

/// A resolver under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    /// weftd's resolver.
    Weft,
    /// Debian's aardvark-dns.
    Aardvark,
}

impl Server {
    /// Parses `weft` or `aardvark`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "weft" => Ok(Self::Weft),
            "aardvark" | "aardvark-dns" => Ok(Self::Aardvark),
            _ => bail!("unknown server {s:?}: use weft or aardvark"),
        }
    }

    /// Its name in the tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::Weft => "weft",
            Self::Aardvark => "aardvark-dns",
        }
    }
}

/// One name the resolvers answer for: an endpoint's namespace name, its aliases, its address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The namespace name.
    pub name: String,
    /// Its aliases on the network.
    pub aliases: Vec<String>,
    /// The leased IPv4 address.
    pub addr: Ipv4Addr,
}

/// The aliases endpoint `i` gets: `svc<i/10>` for every tenth, `api` for 1..=3.
fn aliases_of(i: usize) -> Vec<String> {
    let mut a = Vec::new();
    if i.is_multiple_of(10) {
        a.push(format!("svc{}", i / 10));
    }
    if (1..=3).contains(&i) {
        a.push("api".to_string());
    }
    a
}

/// dnsperf's data file for a case: the local names (every namespace name and every alias that
/// only one endpoint has), or as many unknown single-label names.
pub fn query_file(records: &[Record], local: bool) -> String {
    let mut s = String::new();
    for (i, r) in records.iter().enumerate() {
        if local {
            let _ = writeln!(s, "{} A", r.name);
            for a in r.aliases.iter().filter(|a| a.as_str() != "api") {
                let _ = writeln!(s, "{a} A");
            }
        } else {
            let _ = writeln!(s, "nope{i} A");
        }
    }
    s
}

/// A server set up and ready: where its client runs and what to watch.
struct Setup {
    server: Server,
    client: NsRunner,
    /// The server's process (CPU time).
    pid: Option<String>,
}

/// One measured run.
#[derive(Debug)]
pub struct Case {
    /// Which server.
    pub server: Server,
    /// Local names (true) or unknown ones.
    pub local: bool,
    /// What dnsperf reported.
    pub perf: Dnsperf,
    /// CPU the server used during the run.
    pub cpu: Duration,
    /// The run's wall time.
    pub wall: Duration,
    /// weftd's API latency during the run (during aardvark-dns's: the control).
    pub api: Samples,
    /// Queries weftd counted during the run (GetSystemInfo's `dns_queries`; weft only).
    pub counted: Option<u64>,
}

/// The result of [`run`].
#[derive(Debug, Default)]
pub struct DnsResult {
    /// Records each server holds.
    pub records: usize,
    /// Every run, in the order they ran.
    pub cases: Vec<Case>,
    /// weftd's API latency idle.
    pub api_idle: Samples,
}

/// Runs the benchmark (see the module docs).
pub async fn run(run: &Run, weftd_bin: &Path, o: &Opts) -> Result<DnsResult> {
    ensure!(
        (2..=1000).contains(&o.endpoints),
        "--endpoints: 2 to 1000 (one bridge)"
    );
    let subnet: Ipv4Net = SUBNET.parse()?;
    let gw = gateway(subnet);
    let host = run.scratch_ns("h-dns")?;
    let mut weftd = Weftd::new(weftd_bin, &host, run.subdir("dns-weft")?)?;
    weftd.start().await?;
    let c = weftd.client()?;
    methods::create_network(&c, "dnsb", "wbd", subnet).await?;
    let mut records = Vec::new();
    eprintln!("dns: {} endpoints on weft's network dnsb", o.endpoints);
    for i in 0..o.endpoints {
        check_stop()?;
        let name = format!("d{i}");
        methods::create_namespace(&c, &name).await?;
        let aliases = aliases_of(i);
        let ep = c
            .networks()
            .connect(ConnectRequest {
                network: "dnsb".into(),
                namespace: name.clone(),
                aliases: aliases.clone(),
                ..Default::default()
            })
            .await
            .with_context(|| format!("Connect {name} to dnsb"))?
            .into_inner()
            .endpoint
            .ok_or_else(|| anyhow!("Connect {name}: no endpoint in the answer"))?;
        methods::ready(&format!("endpoint {name}"), ep.status.as_ref())?;
        let addr = match ep.ipv4_address.parse::<IpNet>() {
            Ok(IpNet::V4(a)) => a.addr(),
            _ => bail!("endpoint {name}: no IPv4 address ({:?})", ep.ipv4_address),
        };
        records.push(Record {
            name,
            aliases,
            addr,
        });
    }
    let dir = run.subdir("dns")?;
    let local_file = dir.join("local.txt");
    let unknown_file = dir.join("unknown.txt");
    fs::write(&local_file, query_file(&records, true))?;
    fs::write(&unknown_file, query_file(&records, false))?;

    // aardvark-dns: its own scratch host with a bridge holding the gateway, and a client
    // namespace on it with d0's address.
    let mut setups = Vec::new();
    let mut _aardvark = None;
    for &server in &o.servers {
        let setup = match server {
            Server::Weft => Setup {
                server,
                client: NsRunner::new(&weftd.netns_dir().join(&records[0].name))?,
                pid: weftd.pid().map(|p| p.to_string()),
            },
            Server::Aardvark => {
                methods::require(&o.aardvark, "aardvark-dns")?;
                let (aard_host, client) = aardvark_sandbox(run, subnet, records[0].addr)?;
                let config = run.subdir("aardvark")?;
                fs::write(config.join("dnsb"), aardvark_config(&[gw], &[], &records))?;
                let resolv = dir.join("empty-resolv.conf");
                fs::write(&resolv, "")?;
                let a = Aardvark::start(&o.aardvark, &aard_host, &config, &resolv)?;
                let pid = a.pid().map(|p| p.to_string());
                _aardvark = Some(a);
                Setup {
                    server,
                    client: NsRunner::new(&client)?,
                    pid,
                }
            }
        };
        wait_answering(&setup, gw, &dir.join("probe.txt"), &records[1].name).await?;
        setups.push(setup);
    }

    // Let the connects' own follow-up work (echo reconciles) settle: idle means idle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    eprintln!("dns: weftd's API latency, idle ({} calls)", o.api_calls);
    let mut out = DnsResult {
        records: records.len(),
        ..Default::default()
    };
    let api_client = weftd.new_client().await?;
    out.api_idle = api_samples(api_client.clone(), None, o.api_calls).await?;

    // Interleaved: each case visits every server, starting with a different one.
    for (k, local) in [true, false].into_iter().enumerate() {
        let file = if local { &local_file } else { &unknown_file };
        for j in 0..setups.len() {
            check_stop()?;
            let s = &setups[(j + k) % setups.len()];
            eprintln!(
                "dns: {} names against {} for {} s",
                if local { "local" } else { "unknown" },
                s.server.name(),
                o.seconds
            );
            let stop = Arc::new(AtomicBool::new(false));
            // During aardvark-dns's runs too: weftd then serves no query, so those rows show
            // what the busy CPU alone does to the API (the control).
            let api = tokio::spawn(api_samples(
                api_client.clone(),
                Some(stop.clone()),
                usize::MAX,
            ));
            let counted0 = dns_queries(&api_client, s.server).await?;
            let cpu0 = s.pid.as_deref().map(cpu_time).transpose()?;
            let t0 = Instant::now();
            let res = s.client.output(dnsperf(gw, file, o.seconds)).await;
            let wall = t0.elapsed();
            stop.store(true, Ordering::Relaxed);
            let cpu = match (cpu0, s.pid.as_deref()) {
                (Some(c0), Some(p)) => cpu_time(p)?.saturating_sub(c0),
                _ => Duration::ZERO,
            };
            let api = api.await.context("the API task panicked")??;
            let counted = match (counted0, dns_queries(&api_client, s.server).await?) {
                (Some(a), Some(b)) => Some(b.saturating_sub(a)),
                _ => None,
            };
            let res = res?;
            let perf = parse_dnsperf(&String::from_utf8_lossy(&res.stdout))
                .with_context(|| String::from_utf8_lossy(&res.stderr).trim().to_string())?;
            let want = if local { "NOERROR" } else { "NXDOMAIN" };
            ensure!(
                perf.rcode(want) == perf.completed && perf.completed > 0,
                "{}: expected only {want} answers, got {:?} ({} lost)",
                s.server.name(),
                perf.rcodes,
                perf.lost
            );
            out.cases.push(Case {
                server: s.server,
                local,
                perf,
                cpu,
                wall,
                api,
                counted,
            });
        }
    }
    weftd.check_alive()?;
    Ok(out)
}

/// dnsperf against `gw`:53 with the data file, for `seconds`, printing every latency.
fn dnsperf(gw: Ipv4Addr, file: &Path, seconds: u64) -> Cmd {
    Cmd::new("dnsperf").args([
        "-s".to_string(),
        gw.to_string(),
        "-d".into(),
        file.display().to_string(),
        "-l".into(),
        seconds.to_string(),
        "-v".into(),
    ])
}

/// Waits (up to 10 s) until the server answers `name` from its client position.
async fn wait_answering(s: &Setup, gw: Ipv4Addr, file: &Path, name: &str) -> Result<()> {
    fs::write(file, format!("{name} A\n"))?;
    let t0 = Instant::now();
    loop {
        check_stop()?;
        let cmd = Cmd::new("dnsperf").args([
            "-s".to_string(),
            gw.to_string(),
            "-d".into(),
            file.display().to_string(),
            "-n".into(),
            "1".into(),
            "-t".into(),
            "1".into(),
        ]);
        let out = s.client.output(cmd).await?;
        if let Ok(p) = parse_dnsperf(&String::from_utf8_lossy(&out.stdout))
            && p.rcode("NOERROR") == 1
        {
            return Ok(());
        }
        if t0.elapsed() > Duration::from_secs(10) {
            bail!(
                "{} did not answer {name} A at {gw}:53 within 10 s{}",
                s.server.name(),
                if s.server == Server::Weft {
                    " (is this weftd built with its resolver?)"
                } else {
                    ""
                }
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// aardvark-dns's scratch host (a bridge `wba` with the gateway of `subnet`, up) and its
/// client namespace (`eth0` on the bridge with `client_addr`); returns both namespace files.
fn aardvark_sandbox(
    run: &Run,
    subnet: Ipv4Net,
    client_addr: Ipv4Addr,
) -> Result<(PathBuf, PathBuf)> {
    let host = run.scratch_ns("h-aard")?;
    let client = run.scratch_ns("aclient")?;
    let (h, c) = (run.ns_name("h-aard"), run.ns_name("aclient"));
    let gw = format!("{}/{}", gateway(subnet), subnet.prefix_len());
    let addr = format!("{client_addr}/{}", subnet.prefix_len());
    for args in [
        vec!["-n", &h, "link", "add", "wba", "type", "bridge"],
        vec!["-n", &h, "addr", "add", &gw, "dev", "wba"],
        vec!["-n", &h, "link", "set", "wba", "up"],
        vec![
            "-n", &h, "link", "add", "va0", "type", "veth", "peer", "name", "eth0", "netns", &c,
        ],
        vec!["-n", &h, "link", "set", "va0", "master", "wba", "up"],
        vec!["-n", &c, "addr", "add", &addr, "dev", "eth0"],
        vec!["-n", &c, "link", "set", "eth0", "up"],
    ] {
        run_ok(Command::new("ip").args(args))?;
    }
    Ok((host, client))
}

/// weftd's `dns_queries` counter (GetSystemInfo), for weft's runs.
async fn dns_queries(c: &weft::Client, server: Server) -> Result<Option<u64>> {
    if server != Server::Weft {
        return Ok(None);
    }
    let info = c
        .system()
        .get_system_info(GetSystemInfoRequest {})
        .await
        .context("GetSystemInfo")?
        .into_inner();
    Ok(Some(info.dns_queries))
}

/// GetSystemInfo calls, one every 5 ms, until `stop` is set or `max` calls are made.
async fn api_samples(
    c: weft::Client,
    stop: Option<Arc<AtomicBool>>,
    max: usize,
) -> Result<Samples> {
    let mut s = Samples::default();
    while s.len() < max && !stop.as_ref().is_some_and(|f| f.load(Ordering::Relaxed)) {
        check_stop()?;
        let t = Instant::now();
        c.system()
            .get_system_info(GetSystemInfoRequest {})
            .await
            .context("GetSystemInfo")?;
        s.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(s)
}

impl DnsResult {
    fn find(&self, server: Server, local: bool) -> Option<&Case> {
        self.cases
            .iter()
            .find(|c| c.server == server && c.local == local)
    }

    /// The resolvers' table: per case and server, the rate, latency and CPU, against
    /// aardvark-dns.
    pub fn table(&self) -> Table {
        let mut t = Table::new([
            "case",
            "server",
            "queries/s",
            "p50 ms",
            "p99 ms",
            "avg ms",
            "lost",
            "server CPU",
            "rate vs aardvark-dns",
            "p99 vs aardvark-dns",
        ]);
        for local in [true, false] {
            let peer = self.find(Server::Aardvark, local);
            for server in [Server::Weft, Server::Aardvark] {
                let Some(c) = self.find(server, local) else {
                    continue;
                };
                let l = &c.perf.latency;
                let (rate_vs, p99_vs) = match peer {
                    Some(p) if p.perf.qps > 0.0 => (
                        format!("{:.2}×", c.perf.qps / p.perf.qps),
                        ratio(l.p99(), p.perf.latency.p99()),
                    ),
                    _ => ("–".into(), "–".into()),
                };
                t.row([
                    if local {
                        "local name (A)"
                    } else {
                        "unknown name (NXDOMAIN)"
                    }
                    .to_string(),
                    server.name().to_string(),
                    format!("{:.0}", c.perf.qps),
                    ms(l.p50()),
                    ms(l.p99()),
                    ms(c.perf.avg),
                    c.perf.lost.to_string(),
                    format!(
                        "{:.0} %",
                        100.0 * c.cpu.as_secs_f64() / c.wall.as_secs_f64().max(1e-9)
                    ),
                    rate_vs,
                    p99_vs,
                ]);
            }
        }
        t
    }

    /// weftd's API latency table: idle and during each storm.
    pub fn api_table(&self) -> Table {
        let mut t = Table::new([
            "GetSystemInfo",
            "calls",
            "p50 ms",
            "p99 ms",
            "p50 vs idle",
            "p99 vs idle",
        ]);
        let idle = &self.api_idle;
        t.row([
            "idle".to_string(),
            idle.len().to_string(),
            ms(idle.p50()),
            ms(idle.p99()),
            "1.00×".into(),
            "1.00×".into(),
        ]);
        for c in &self.cases {
            let a = &c.api;
            t.row([
                format!(
                    "during {}'s {} storm{}",
                    c.server.name(),
                    if c.local {
                        "local-name"
                    } else {
                        "unknown-name"
                    },
                    if c.server == Server::Weft {
                        ""
                    } else {
                        " (control: weftd serves no query)"
                    }
                ),
                a.len().to_string(),
                ms(a.p50()),
                ms(a.p99()),
                ratio(a.p50(), idle.p50()),
                ratio(a.p99(), idle.p99()),
            ]);
        }
        t
    }

    /// A line per weft run: the queries weftd counted against those dnsperf sent.
    pub fn counted(&self) -> Vec<String> {
        self.cases
            .iter()
            .filter_map(|c| {
                c.counted.map(|n| {
                    format!(
                        "weftd counted {n} queries during the {} run; dnsperf sent {}",
                        if c.local {
                            "local-name"
                        } else {
                            "unknown-name"
                        },
                        c.perf.sent
                    )
                })
            })
            .collect()
    }

    /// The targets: per case, weft's rate at least aardvark-dns's with a lower p99; the API's
    /// p50 (and, stricter, p99) during every weft storm within 2× idle. `None` where a side was not measured.
    pub fn verdicts(&self) -> Vec<(String, Option<bool>)> {
        let mut v = Vec::new();
        for local in [true, false] {
            let what = if local { "local name" } else { "unknown name" };
            let met = match (
                self.find(Server::Weft, local),
                self.find(Server::Aardvark, local),
            ) {
                (Some(w), Some(a)) => {
                    Some(w.perf.qps >= a.perf.qps && w.perf.latency.p99() < a.perf.latency.p99())
                }
                _ => None,
            };
            v.push((
                format!("{what}: rate >= aardvark-dns's and a lower p99"),
                met,
            ));
        }
        let storms: Vec<_> = self
            .cases
            .iter()
            .filter(|c| c.server == Server::Weft)
            .map(|c| &c.api)
            .collect();
        for (what, q) in [("p50", 0.5), ("p99", 0.99)] {
            let idle = self.api_idle.quantile(q).as_secs_f64();
            v.push((
                format!("weftd's API {what} during its storms within 2× idle"),
                (!storms.is_empty()).then(|| {
                    storms
                        .iter()
                        .all(|a| a.quantile(q).as_secs_f64() <= 2.0 * idle)
                }),
            ));
        }
        v
    }
}

/// A record from literals, for the tests of this module and [`peers`].
#[cfg(test)]
fn rec(name: &str, aliases: &[&str], addr: &str) -> Record {
    Record {
        name: name.into(),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        addr: addr.parse().expect("addr"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_files() {
        let recs = [
            rec("d0", &["svc0"], "10.0.0.2"),
            rec("d1", &["api"], "10.0.0.3"),
        ];
        assert_eq!(query_file(&recs, true), "d0 A\nsvc0 A\nd1 A\n");
        assert_eq!(query_file(&recs, false), "nope0 A\nnope1 A\n");
        assert_eq!(aliases_of(0), ["svc0"]);
        assert_eq!(aliases_of(2), ["api"]);
        assert!(aliases_of(5).is_empty());
        assert_eq!(aliases_of(20), ["svc2"]);
    }
}
