//! weftd's memory (issue 14): what an idle Watch stream costs, and VmRSS over a climb to many
//! endpoints, then after a resync pass and after a restart.
//!
//! One weftd in its own scratch host. Idle Watch streams are measured twice, with no objects
//! and at the top of the climb: VmRSS before, with `streams` streams open (half
//! WatchNamespaces, half WatchNetworks, over one connection per 50 streams) once their
//! initial lists have arrived and weftd has settled, and after they are closed. Every stream
//! must then still deliver an event (a probe namespace and network are created, each stream
//! must see its kind's ADDED), so a stream that went deaf cannot look cheap.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use weft::v1::{
    CreateNamespaceRequest, CreateNetworkRequest, DeleteNetworkRequest, GetSystemInfoRequest,
    Namespace, Network, Subnet, WatchNamespacesRequest, WatchNetworksRequest,
};

use super::{Rss, climb, weftd_says_settled};
use crate::{
    methods,
    sandbox::{Run, Weftd, check_stop, run_ok},
    stats::{Table, secs},
};

/// What [`memory`] measured.
#[derive(Debug, Default)]
pub struct Memory {
    /// VmRSS right after start, KiB.
    pub idle: u64,
    /// Idle Watch streams with no objects, and at the top of the climb.
    pub watches: Vec<Watches>,
    /// The climb (readings every `every` endpoints).
    pub climb: Rss,
    /// VmRSS after a whole resync pass that started after the climb finished, KiB.
    pub after_resync: Option<u64>,
    /// VmRSS once a restart has re-checked everything, KiB, and how long that took.
    pub after_restart: Option<(u64, Duration)>,
    /// VmRSS after the one listing of every namespace that proves the restart's Ready, KiB,
    /// and how long that listing took.
    pub after_list: Option<(u64, Duration)>,
}

/// The cost of `streams` idle Watch streams at `objects` namespaces.
#[derive(Debug, Default, Clone)]
pub struct Watches {
    /// Namespaces (and endpoints) weftd held.
    pub objects: usize,
    /// Streams opened.
    pub streams: usize,
    /// VmRSS before, with the streams open, and after they closed, KiB.
    pub before: u64,
    /// With the streams open and their initial lists received.
    pub with: u64,
    /// After closing them.
    pub after: u64,
    /// Messages the streams received in their initial lists, in all.
    pub listed: usize,
}

impl Watches {
    /// KiB per stream: (with - before) / streams.
    pub fn per_stream_kib(&self) -> f64 {
        self.with.saturating_sub(self.before) as f64 / self.streams.max(1) as f64
    }
}

/// weftd's reconcile queue depth now.
async fn queue_depth(c: &weft::Client) -> Result<u64> {
    Ok(c.system()
        .get_system_info(GetSystemInfoRequest {})
        .await?
        .into_inner()
        .queue_depth)
}

/// Reads VmRSS once weftd has been idle for a moment (its queue empty for 1 s).
async fn settled_rss(weftd: &Weftd) -> Result<u64> {
    let c = weftd.client()?;
    let t0 = Instant::now();
    let mut quiet_since = None;
    while t0.elapsed() < Duration::from_secs(120) {
        check_stop()?;
        let depth = queue_depth(&c).await?;
        match (depth, quiet_since) {
            (0, None) => quiet_since = Some(Instant::now()),
            (0, Some(t)) if Instant::now().duration_since(t) >= Duration::from_secs(1) => break,
            (0, Some(_)) => {}
            _ => quiet_since = None,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    weftd.rss_kib()
}

/// Counts the messages of stream `i` until it ends.
async fn count<T>(mut s: tonic::Streaming<T>, counts: Arc<Vec<AtomicUsize>>, i: usize) {
    while let Ok(Some(_)) = s.message().await {
        counts[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// Opens `streams` idle Watch streams, measures, proves each still delivers, closes them.
pub async fn watch_cost(weftd: &Weftd, streams: usize, objects: usize) -> Result<Watches> {
    let before = settled_rss(weftd).await?;
    let mut clients = Vec::new();
    for _ in 0..streams.div_ceil(50) {
        clients.push(weftd.new_client().await?);
    }
    // Messages received per stream; even streams watch namespaces, odd ones networks.
    let counts: Arc<Vec<AtomicUsize>> =
        Arc::new((0..streams).map(|_| AtomicUsize::new(0)).collect());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..streams {
        let c = clients[i / 50].clone();
        if i % 2 == 0 {
            let s = c
                .namespaces()
                .watch_namespaces(WatchNamespacesRequest::default())
                .await
                .context("WatchNamespaces")?
                .into_inner();
            tasks.spawn(count(s, counts.clone(), i));
        } else {
            let s = c
                .networks()
                .watch_networks(WatchNetworksRequest::default())
                .await
                .context("WatchNetworks")?
                .into_inner();
            tasks.spawn(count(s, counts.clone(), i));
        }
    }
    let total = || {
        counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum::<usize>()
    };
    // The initial lists: wait until no stream has received anything for a second.
    let mut last = usize::MAX;
    loop {
        check_stop()?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = total();
        if now == last {
            break;
        }
        last = now;
    }
    let listed = last;
    let with = settled_rss(weftd).await?;
    // Every stream must still hear a change of its kind.
    let seen: Vec<usize> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let c = weftd.client()?;
    let probe = format!("mprobe{objects}");
    // Without waiting for Ready: the streams' ADDED is what counts, and a loaded machine
    // may take longer than a request's wait to converge.
    c.namespaces()
        .create_namespace(CreateNamespaceRequest {
            namespace: Some(Namespace {
                name: probe.clone(),
                ..Default::default()
            }),
            wait: Some(false),
            ..Default::default()
        })
        .await
        .with_context(|| format!("CreateNamespace {probe}"))?;
    c.networks()
        .create_network(CreateNetworkRequest {
            network: Some(Network {
                name: probe.clone(),
                bridge_name: "wmprobe".into(),
                subnets: vec![Subnet {
                    subnet: "10.99.0.0/24".into(),
                    gateway: "10.99.0.1".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            wait: Some(false),
            ..Default::default()
        })
        .await
        .with_context(|| format!("CreateNetwork {probe}"))?;
    let t0 = Instant::now();
    loop {
        check_stop()?;
        let deaf = counts
            .iter()
            .zip(&seen)
            .filter(|(c, s)| c.load(Ordering::Relaxed) <= **s)
            .count();
        if deaf == 0 {
            break;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            bail!("{deaf} of {streams} Watch streams received no event within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    drop(clients);
    // Cleanup: a slow answer (a loaded machine) is not the benchmark's failure.
    let deleted = c
        .networks()
        .delete_network(DeleteNetworkRequest {
            name: probe.clone(),
            ..Default::default()
        })
        .await;
    if let Err(e) = deleted {
        eprintln!("memory: DeleteNetwork {probe}: {e}");
    }
    if let Err(e) = methods::delete_namespace(&c, &probe).await {
        eprintln!("memory: {e:#}");
    }
    let after = settled_rss(weftd).await?;
    Ok(Watches {
        objects,
        streams,
        before,
        with,
        after,
        listed,
    })
}

/// Where the memory benchmark's weftd serves its metrics (in its own scratch host).
const METRICS: &str = "127.0.0.1:9479";

/// weftd's `weft_check_passes_total`: bulk checks finished since it started.
fn check_passes(weftd: &Weftd) -> Result<u64> {
    let text = run_ok(
        std::process::Command::new("nsenter")
            .arg(format!("--net={}", weftd.host_ns().display()))
            .args(["curl", "-sSf", "--max-time", "10"])
            .arg(format!("http://{METRICS}/metrics")),
    )?;
    text.lines()
        .find_map(|l| l.strip_prefix("weft_check_passes_total "))
        .context("no weft_check_passes_total in weftd's metrics")?
        .trim()
        .parse()
        .context("weft_check_passes_total is not a number")
}

/// Waits until a whole resync pass has run since now and finished (weftd's default period,
/// 30 s), then for the queue to be empty ([`settled_rss`]). weftd counts the passes it
/// finished, and two more than now means one began after now: until session 28 this waited
/// 33 s instead, which read VmRSS at a moment of the pass that varied from run to run (a pass
/// at 10,000 endpoints reads for seconds, holding what it read).
async fn after_resync(weftd: &Weftd) -> Result<u64> {
    let t0 = Instant::now();
    let before = check_passes(weftd)?;
    while check_passes(weftd)? < before + 2 {
        check_stop()?;
        if t0.elapsed() > Duration::from_secs(150) {
            bail!("no whole resync pass within 150 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    settled_rss(weftd).await
}

/// The whole memory benchmark: idle streams at 0 objects, the climb to `endpoints`, a
/// resync, idle streams again, a restart.
pub async fn memory(
    run: &Run,
    weftd_bin: &std::path::Path,
    endpoints: usize,
    streams: usize,
) -> Result<Memory> {
    let host = run.scratch_ns("h-mem")?;
    let mut weftd =
        Weftd::new(weftd_bin, &host, run.subdir("mem")?)?.with_args(["--metrics", METRICS]);
    weftd.start().await?;
    let mut out = Memory {
        idle: settled_rss(&weftd).await?,
        ..Default::default()
    };
    if streams > 0 {
        eprintln!("memory: {streams} idle Watch streams, no objects");
        out.watches.push(watch_cost(&weftd, streams, 0).await?);
    }
    eprintln!("memory: climbing to {endpoints} endpoints");
    out.climb = climb(&weftd, endpoints, 1000, 1000).await?;
    weftd.check_alive()?;
    let reached = out.climb.reached;
    eprintln!("memory: waiting for a resync pass at {reached} endpoints");
    out.after_resync = Some(after_resync(&weftd).await?);
    if streams > 0 {
        eprintln!("memory: {streams} idle Watch streams at {reached} endpoints");
        out.watches
            .push(watch_cost(&weftd, streams, reached).await?);
    }
    eprintln!("memory: restart at {reached} endpoints");
    weftd.stop().await?;
    let t0 = Instant::now();
    weftd.start().await?;
    let c = weftd.client()?;
    // Everything was Ready; after a restart it reads Rechecking until re-checked. weftd's own
    // word first (cheap), its VmRSS, then one listing proves it (and VmRSS is read again):
    // listing 10,000 namespaces every 200 ms slowed the restart it timed (5.5-6.7 s at 10,000
    // in session 26; each list 20-110 ms of weftd's time) and left its answers in the heap.
    loop {
        check_stop()?;
        let _ = weftd_says_settled(&c, t0 + Duration::from_secs(300)).await;
        let took = t0.elapsed();
        let rss = settled_rss(&weftd).await?;
        let listing = Instant::now();
        let nss = c
            .list_all_namespaces(tonic::Request::new(Default::default()))
            .await?
            .into_inner()
            .namespaces;
        let listed_in = listing.elapsed();
        let ready = nss.iter().all(|n| {
            n.status
                .as_ref()
                .is_some_and(|s| s.phase() == weft::v1::Phase::Ready)
        });
        if ready && nss.len() >= reached {
            drop(nss);
            out.after_restart = Some((rss, took));
            out.after_list = Some((settled_rss(&weftd).await?, listed_in));
            break;
        }
        if t0.elapsed() > Duration::from_secs(300) {
            bail!("not Ready within 300 s of the restart");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    weftd.check_alive()?;
    Ok(out)
}

impl Memory {
    /// The table of readings: idle, every step of the climb, after the resync, after the
    /// restart.
    pub fn table(&self) -> Table {
        let mib = |k: u64| format!("{:.1}", k as f64 / 1024.0);
        let mut t = Table::new(["weftd", "VmRSS MiB"]);
        t.row(["idle, just started".to_string(), mib(self.idle)]);
        for (n, kib, _, _) in self.climb.readings.iter().skip(1) {
            t.row([format!("{n} endpoints (climb)"), mib(*kib)]);
        }
        let top = self.climb.reached;
        if let Some(k) = self.after_resync {
            t.row([format!("{top} endpoints, after a resync pass"), mib(k)]);
        }
        if let Some((k, took)) = self.after_restart {
            t.row([
                format!(
                    "{top} endpoints, after a restart (all Ready in {} s)",
                    secs(took)
                ),
                mib(k),
            ]);
        }
        if let Some((k, took)) = self.after_list {
            t.row([
                format!(
                    "{top} endpoints, after the restart and one list of every namespace (in {} s)",
                    secs(took)
                ),
                mib(k),
            ]);
        }
        t
    }

    /// The table of idle Watch streams.
    pub fn watch_table(&self) -> Table {
        let mib = |k: u64| format!("{:.1}", k as f64 / 1024.0);
        let mut t = Table::new([
            "namespaces held",
            "streams",
            "messages in their initial lists",
            "VmRSS before MiB",
            "with the streams MiB",
            "after closing them MiB",
            "KiB per stream",
        ]);
        for w in &self.watches {
            t.row([
                w.objects.to_string(),
                w.streams.to_string(),
                w.listed.to_string(),
                mib(w.before),
                mib(w.with),
                mib(w.after),
                format!("{:.0}", w.per_stream_kib()),
            ]);
        }
        t
    }
}
