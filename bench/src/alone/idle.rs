//! weftd at rest with many endpoints (`weft-bench idle`): the CPU a converged host costs over
//! a window with the default resync (30 s), its VmRSS after resyncs, and a converged restart
//! at that size (time to everything Ready, kernel writes, reconciles).
//!
//! CPU is weftd's utime + stime from `/proc/<pid>/stat` at both ends of the window, divided
//! by the window: the share of one core. The endpoints are made by 4 clients (namespaces
//! `i0`.. on networks of at most 1,000 endpoints each, bridges `wbi<n>`).

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use ipnet::Ipv4Net;
use weft::v1::{GetNetworkRequest, ListNamespacesRequest, Phase};

use super::{system_info, weftd_says_settled};
use crate::{
    methods,
    sandbox::{Run, Weftd, check_stop},
    stats::{Table, secs},
};

/// What [`idle`] measured.
#[derive(Debug, Default)]
pub struct Idle {
    /// Endpoints (and namespaces) held.
    pub endpoints: usize,
    /// Time to make them.
    pub build: Duration,
    /// The measured window.
    pub window: Duration,
    /// weftd's CPU over the window.
    pub cpu: Duration,
    /// Reconciles weftd ran in the window.
    pub reconciles: u64,
    /// Kernel writes weftd made in the window.
    pub writes: u64,
    /// VmRSS at the end of the window (after its resyncs), KiB.
    pub rss_kib: u64,
    /// Start (spawn) to everything Ready after a restart.
    pub restart_ready: Duration,
    /// Kernel writes when everything was Ready again.
    pub restart_writes: u64,
    /// Reconciles run by then.
    pub restart_reconciles: u64,
    /// VmRSS after the restart, once Ready, KiB.
    pub restart_rss_kib: u64,
}

impl Idle {
    /// weftd's share of one core over the window, in percent.
    pub fn cpu_percent(&self) -> f64 {
        100.0 * self.cpu.as_secs_f64() / self.window.as_secs_f64().max(1e-9)
    }

    /// The table.
    pub fn table(&self) -> Table {
        let mut t = Table::new(["what", "value"]);
        let rows = [
            (
                "endpoints (and namespaces) held",
                self.endpoints.to_string(),
            ),
            ("time to make them s", secs(self.build)),
            ("idle window s (default resync: 30 s)", secs(self.window)),
            ("weftd CPU in the window s", secs(self.cpu)),
            (
                "weftd CPU, % of one core",
                format!("{:.2}", self.cpu_percent()),
            ),
            ("reconciles in the window", self.reconciles.to_string()),
            ("kernel writes in the window", self.writes.to_string()),
            ("VmRSS after the window's resyncs MiB", mib(self.rss_kib)),
            (
                "restart: start to everything Ready s",
                secs(self.restart_ready),
            ),
            (
                "restart: kernel writes then",
                self.restart_writes.to_string(),
            ),
            (
                "restart: reconciles then",
                self.restart_reconciles.to_string(),
            ),
            ("restart: VmRSS once Ready MiB", mib(self.restart_rss_kib)),
        ];
        for (what, value) in rows {
            t.row([what.to_string(), value]);
        }
        t
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// Builds `endpoints` endpoints on a fresh weftd, lets one resync pass, measures `window`
/// of idle, then restarts weftd and times it back to everything Ready.
pub async fn idle(
    run: &Run,
    weftd_bin: &std::path::Path,
    endpoints: usize,
    window: Duration,
) -> Result<Idle> {
    let host = run.scratch_ns("h-idle")?;
    let mut weftd = Weftd::new(weftd_bin, &host, run.subdir("idle")?)?;
    weftd.start().await?;
    let mut out = Idle {
        endpoints,
        ..Default::default()
    };
    let t0 = Instant::now();
    build(&weftd, endpoints).await?;
    settle(&weftd, endpoints, Duration::from_secs(600), Instant::now()).await?;
    out.build = t0.elapsed();
    eprintln!(
        "  idle: {endpoints} endpoints in {:.0} s; one resync first",
        out.build.as_secs_f64()
    );
    // One resync pass (30 s) and its work out of the way before the window.
    tokio::time::sleep(Duration::from_secs(35)).await;
    let c = weftd.client()?;
    let (i0, cpu0, w0) = (system_info(&c).await?, weftd.cpu()?, Instant::now());
    while w0.elapsed() < window {
        check_stop()?;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let (i1, cpu1) = (system_info(&c).await?, weftd.cpu()?);
    out.window = w0.elapsed();
    out.cpu = cpu1.saturating_sub(cpu0);
    out.reconciles = i1.reconciles - i0.reconciles;
    out.writes = i1.kernel_writes - i0.kernel_writes;
    out.rss_kib = weftd.rss_kib()?;
    eprintln!("  idle: {:.2}% of a core; restarting", out.cpu_percent());
    weftd.stop().await?;
    let t = Instant::now();
    weftd.start().await?;
    out.restart_ready = settle(&weftd, endpoints, Duration::from_secs(120), t).await?;
    let i = system_info(&weftd.client()?).await?;
    out.restart_writes = i.kernel_writes;
    out.restart_reconciles = i.reconciles;
    out.restart_rss_kib = weftd.rss_kib()?;
    weftd.check_alive()?;
    Ok(out)
}

/// Makes `n` namespaces `i<k>`, each connected to network `idle<k / 1000>`, from 4 clients
/// taking the next number in turn.
async fn build(weftd: &Weftd, n: usize) -> Result<()> {
    let c = weftd.client()?;
    for net in 0..n.div_ceil(1000) {
        let subnet: Ipv4Net = format!("10.{}.0.0/16", 150 + net).parse()?;
        methods::create_network(&c, &format!("idle{net}"), &format!("wbi{net}"), subnet).await?;
    }
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (c, next) = (weftd.new_client().await?, next.clone());
        tasks.spawn(async move {
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= n {
                    return Ok::<_, anyhow::Error>(());
                }
                check_stop()?;
                let name = format!("i{k}");
                methods::create_namespace(&c, &name).await?;
                methods::connect(&c, &format!("idle{}", k / 1000), &name, Vec::new()).await?;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.context("a client task panicked")??;
    }
    Ok(())
}

/// Waits until every namespace, network and endpoint is Ready (at least `n` of each of
/// namespaces and endpoints) and the queue is empty; returns how long after `since` weftd
/// said so (GetSystemInfo: nothing re-checking, an empty queue), proved by one listing.
async fn settle(weftd: &Weftd, n: usize, timeout: Duration, since: Instant) -> Result<Duration> {
    let c = weftd.client()?;
    let t0 = Instant::now();
    let ready = |s: Option<&weft::v1::Status>| s.is_some_and(|s| s.phase() == Phase::Ready);
    loop {
        check_stop()?;
        // The lists below cost weftd real work at 10,000 objects: wait for its own word first.
        // Past the timeout, the listing below decides and the error says why.
        let _ = weftd_says_settled(&c, t0 + timeout).await;
        let settled = since.elapsed();
        let ok = async {
            let nss = c
                .list_all_namespaces(tonic::Request::new(ListNamespacesRequest::default()))
                .await?
                .into_inner()
                .namespaces;
            let mut nets = Vec::new();
            for k in 0..n.div_ceil(1000) {
                let req = GetNetworkRequest {
                    name: format!("idle{k}"),
                };
                nets.extend(c.networks().get_network(req).await?.into_inner().network);
            }
            let eps: usize = nets.iter().map(|n| n.endpoints.len()).sum();
            Ok::<_, anyhow::Error>(
                nss.len() >= n
                    && eps >= n
                    && nss.iter().all(|x| ready(x.status.as_ref()))
                    && nets.iter().all(|x| ready(x.status.as_ref()))
                    && nets
                        .iter()
                        .flat_map(|x| &x.endpoints)
                        .all(|e| ready(e.status.as_ref()))
                    && system_info(&c).await?.queue_depth == 0,
            )
        }
        .await;
        if matches!(ok, Ok(true)) {
            return Ok(settled);
        }
        if t0.elapsed() > timeout {
            bail!(
                "not Ready within {timeout:?}; weftd's log:\n{}",
                weftd.log_tail(20)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
