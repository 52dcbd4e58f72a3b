//! The steps of one size of the growth benchmark ([`super`]): build-up, a resync on demand,
//! the idle window, Connect/Disconnect samples, the restart and the Watch streams.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};
use ipnet::Ipv4Net;
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use weft::v1::{GetSystemInfoResponse, WatchNamespacesRequest};

use super::{DEFAULT_RESYNC, NETWORKS, Opts, Row, Scale, Watches};
use crate::{
    alone::{all_ready, system_info},
    methods,
    sandbox::{DevList, Run, Weftd, check_stop, mem_available_kib, poll_pause, rtnl_passed},
    stats::Samples,
};

/// Queue depth from which a resync pass counts as in progress (see the module docs of
/// [`super`]).
pub const BUSY_DEPTH: u64 = 5;
/// How long after a resync pass starts the Connect of a "during a resync" sample is sent.
pub const AFTER_TICK: Duration = Duration::from_millis(10);
/// Concurrent clients of the build-up.
const CLIENTS: usize = 4;

/// The benchmark's weftd, its config file and its networks `s0`..`s9`.
pub struct Daemon {
    /// The daemon.
    pub weftd: Weftd,
    config: PathBuf,
    /// Endpoints connected (`e0`..`e{n-1}`, endpoint `i` on network `s{i % 10}`).
    pub endpoints: usize,
    nets: Vec<String>,
    /// The in-process floor in weftd's own scratch host (its bridge `wbr`, no firewall), so
    /// its connects meet the kernel as weftd leaves it: every namespace with an id there,
    /// weftd's monitor listening to all of them.
    floor: Option<methods::FloorM>,
    /// The floor's next namespace number.
    floor_next: usize,
}

fn net_name(k: usize) -> String {
    format!("s{k}")
}

impl Daemon {
    /// Starts weftd in scratch host `h-scale` with `--config` (resync off for the build-up)
    /// and creates the networks.
    pub async fn start(run: &Run, bin: &Path) -> Result<Self> {
        let host = run.scratch_ns("h-scale")?;
        let dir = run.subdir("scale")?;
        let config = dir.join("weftd.toml");
        write_resync(&config, 0)?;
        let mut weftd = Weftd::new(bin, &host, dir)?.with_args([
            std::ffi::OsString::from("--config"),
            config.clone().into_os_string(),
        ]);
        weftd.start().await?;
        let c = weftd.client()?;
        let mut nets = Vec::new();
        for k in 0..NETWORKS {
            let subnet: Ipv4Net = format!("10.{}.0.0/16", 160 + k).parse()?;
            methods::create_network(&c, &net_name(k), &format!("wsc{k}"), subnet).await?;
            nets.push(net_name(k));
        }
        let mut d = Self {
            weftd,
            config,
            endpoints: 0,
            nets,
            floor: None,
            floor_next: 0,
        };
        // After weftd's start-up GC, which removes newborn interfaces no object plans (the
        // floor's bridge is born in weft's newborn group, and leaves it right after).
        d.drained(Duration::from_secs(60), u64::MAX).await?;
        d.floor =
            Some(methods::FloorM::setup_with(run, &host, "10.250.0.0/16".parse()?, true).await?);
        Ok(d)
    }

    /// Sets weftd's resync period through its config file and SIGHUP (0: off).
    async fn set_resync(&self, secs: u64) -> Result<()> {
        write_resync(&self.config, secs)?;
        let pid = self
            .weftd
            .pid()
            .ok_or_else(|| anyhow!("weftd is not running"))?;
        kill(Pid::from_raw(pid as i32), Signal::SIGHUP).context("SIGHUP to weftd")?;
        // The reload runs on weftd's signal task: give it a moment.
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok(())
    }

    /// The in-process floor, set up by [`Daemon::start`].
    fn floor(&mut self) -> Result<&mut methods::FloorM> {
        self.floor
            .as_mut()
            .ok_or_else(|| anyhow!("the floor was not set up"))
    }

    async fn info(&self) -> Result<GetSystemInfoResponse> {
        system_info(&self.weftd.client()?).await
    }

    /// Waits until the reconcile queue is empty, or `reconciles` reaches `enough` (a pass
    /// over everything done, if the next one has already begun); false after `limit`.
    async fn drained(&self, limit: Duration, enough: u64) -> Result<bool> {
        let t0 = Instant::now();
        loop {
            check_stop()?;
            let i = self.info().await?;
            if i.queue_depth == 0 || i.reconciles >= enough {
                return Ok(true);
            }
            if t0.elapsed() > limit {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until no resync pass runs: weftd under 20% of a core over 200 ms with an empty
    /// queue, or a pass's reconciles queued (depth >= [`BUSY_DEPTH`]: a new pass only
    /// re-queues them). False after `limit`.
    async fn settled(&self, limit: Duration) -> Result<bool> {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            check_stop()?;
            let depth = self.info().await?.queue_depth;
            if depth >= BUSY_DEPTH {
                return Ok(true);
            }
            if depth == 0 && self.quiet().await? {
                return Ok(true);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(false)
    }

    /// True when weftd used under 20% of a core over the next 200 ms.
    async fn quiet(&self) -> Result<bool> {
        let cpu0 = self.weftd.cpu()?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(self.weftd.cpu()?.saturating_sub(cpu0) < Duration::from_millis(40))
    }

    /// Objects weftd holds: a resync queues each (networks, firewall, garbage collector,
    /// namespaces, endpoints).
    fn objects(&self) -> u64 {
        (2 * self.endpoints + NETWORKS + 2) as u64
    }
}

fn write_resync(path: &Path, secs: u64) -> Result<()> {
    std::fs::write(path, format!("resync = {secs}\n"))
        .with_context(|| format!("write {}", path.display()))
}

/// One size: build up to `n`, then measure everything; the Watch streams too at
/// `o.watch_at`.
pub async fn size(d: &mut Daemon, n: usize, o: &Opts, out: &mut Scale) -> Result<Row> {
    let mut row = Row {
        endpoints: n,
        ..Default::default()
    };
    eprintln!("scale: building up to {n} endpoints");
    let t0 = Instant::now();
    build_up(d, n).await?;
    row.build = t0.elapsed();
    d.weftd.check_alive()?;

    eprintln!("scale: {n}: a resync over everything");
    resync_once(d).await?;
    row.rss_resync = d.weftd.rss_kib()?;

    eprintln!("scale: {n}: idle for {} s", o.idle_secs);
    let (cpu0, w0) = (d.weftd.cpu()?, Instant::now());
    let until = w0 + Duration::from_secs(o.idle_secs);
    while Instant::now() < until {
        check_stop()?;
        tokio::time::sleep(Duration::from_millis(250).min(until - Instant::now())).await;
    }
    row.idle_window = w0.elapsed();
    let cpu = d.weftd.cpu()?.saturating_sub(cpu0);
    row.idle_cpu = cpu.as_secs_f64() / row.idle_window.as_secs_f64().max(1e-9) * 100.0;

    eprintln!("scale: {n}: {} Connect/Disconnect samples, idle", o.samples);
    let (c, dis, busy) = samples_idle(d, n, o.samples).await?;
    (row.connect, row.disconnect, row.idle_busy) = (c, dis, busy);
    eprintln!("scale: {n}: {} floor connects in the same host", o.samples);
    row.floor_connect = samples_floor(d, o.samples).await?;
    eprintln!("scale: {n}: {} samples during a resync", o.samples);
    let rs = samples_resync(d, n, o.samples).await?;
    (row.connect_rs, row.disconnect_rs, row.connect_wait) =
        (rs.connect, rs.disconnect, rs.connect_wait);

    eprintln!("scale: {n}: {} Disconnects at once", MASS.min(n / 2));
    if let Some((answered, gone)) = mass_disconnect(d).await? {
        (row.mass_answered, row.mass_gone) = (Some(answered), Some(gone));
    }

    eprintln!("scale: {n}: converged restart");
    restart(d, &mut row, o.later).await?;
    if o.watches > 0 && n == o.watch_at {
        eprintln!("scale: {n}: {} idle Watch streams", o.watches);
        out.watches = Some(watches(d, o.watches).await?);
    }
    // The next build-up runs without resyncs (applied by the next reload).
    d.set_resync(0).await?;
    eprintln!(
        "scale: {n} endpoints: VmRSS {} / {} MiB, idle CPU {:.2}%, Connect p50 {:.2} ms, restart {:.2} s",
        row.rss_resync / 1024,
        row.rss_restart / 1024,
        row.idle_cpu,
        row.connect.p50().as_secs_f64() * 1e3,
        row.restart_ready.as_secs_f64()
    );
    Ok(row)
}

/// Creates and connects endpoints `d.endpoints..n` from 4 clients (`e{i}` on network
/// `s{i % 10}`), with the resync off.
async fn build_up(d: &mut Daemon, n: usize) -> Result<()> {
    d.set_resync(0).await?;
    let from = d.endpoints;
    // The kernel's share (namespaces, veths) is what grows fastest: stop with room left.
    let need_kib = (n - from) as u64 * 200;
    if mem_available_kib() < need_kib + 2 * 1024 * 1024 {
        bail!(
            "{} MiB of memory available, too little for {} more endpoints",
            mem_available_kib() / 1024,
            n - from
        );
    }
    let mut tasks = Vec::new();
    for j in 0..CLIENTS {
        let c = d.weftd.new_client().await?;
        tasks.push(tokio::spawn(async move {
            for i in (from + j..n).step_by(CLIENTS) {
                check_stop()?;
                let name = format!("e{i}");
                methods::create_namespace(&c, &name).await?;
                methods::connect(&c, &net_name(i % NETWORKS), &name, Vec::new()).await?;
                if (i + 1) % 1000 == 0 {
                    eprintln!("  scale: {} endpoints", i + 1);
                }
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    let mut first_err = None;
    for t in tasks {
        if let Err(e) = t.await.context("a client task panicked").and_then(|r| r) {
            first_err.get_or_insert(e);
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    d.endpoints = n;
    Ok(())
}

/// Starts a resync pass (period 1 s for 1.4 s), sets the default period back, and waits it
/// out: the queue empty (or a pass's worth of reconciles run), weftd quiet, then 1 s.
async fn resync_once(d: &mut Daemon) -> Result<()> {
    d.drained(Duration::from_secs(120), u64::MAX).await?;
    let r0 = d.info().await?.reconciles;
    // A new period restarts weftd's resync timer: the pass starts 1 s after the reload. A
    // periodic check that runs in the timer's task takes the next reload after it.
    d.set_resync(1).await?;
    tokio::time::sleep(Duration::from_millis(1400)).await;
    d.set_resync(DEFAULT_RESYNC).await?;
    // A pass at 10,000 endpoints took most of 30 s before issue 14: the queue may not empty
    // before the next one, so a pass's worth of reconciles counts as done too.
    if !d
        .drained(Duration::from_secs(300), r0 + d.objects())
        .await?
    {
        bail!("a resync pass did not finish within 300 s");
    }
    // A check that queues little shows in weftd's CPU: wait until it is quiet.
    let t0 = Instant::now();
    while !d.quiet().await? && t0.elapsed() < Duration::from_secs(120) {}
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(())
}

/// Connect and Disconnect of a fresh namespace `ns` on `net`: created, then `ready` awaited
/// (untimed), both calls timed, then deleted (untimed).
async fn sample<F: std::future::Future<Output = Result<()>>>(
    c: &weft::Client,
    ns: &str,
    net: &str,
    ready: F,
) -> Result<(Duration, Duration)> {
    check_stop()?;
    methods::create_namespace(c, ns).await?;
    ready.await?;
    let t = Instant::now();
    methods::connect(c, net, ns, Vec::new()).await?;
    let conn = t.elapsed();
    let t = Instant::now();
    methods::disconnect(c, net, ns).await?;
    let disc = t.elapsed();
    methods::delete_namespace(c, ns).await?;
    Ok((conn, disc))
}

/// `count` samples ([`sample`]) on the networks in turn, each once the reconcile queue is
/// empty (no resync pass in progress, its own namespace's reconcile done). If the queue does
/// not empty within 60 s (a pass longer than its period), the rest are taken without waiting:
/// the third value says so.
async fn samples_idle(d: &Daemon, n: usize, count: usize) -> Result<(Samples, Samples, bool)> {
    let c = d.weftd.client()?;
    let (mut conn, mut disc) = (Samples::default(), Samples::default());
    let mut busy = false;
    for s in 0..count {
        let wait = async {
            if !busy && !d.drained(Duration::from_secs(60), u64::MAX).await? {
                busy = true;
            }
            Ok(())
        };
        let (a, b) = sample(&c, &format!("q{n}-{s}"), &net_name(s % NETWORKS), wait).await?;
        conn.push(a);
        disc.push(b);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    Ok((conn, disc, busy))
}

/// `count` connects at the in-process floor in weftd's scratch host, each of a fresh
/// namespace (created before, disconnected and deleted after, untimed), once the reconcile
/// queue is empty. Its bridge first gets as many ports as each of weftd's networks has
/// (`endpoints / NETWORKS`, at most [`super::PER_NETWORK`]; [`methods::FloorM::fill_bridge`]):
/// adding a port to a bridge walks its ports, so a floor on an empty bridge at 10,000
/// endpoints did less than weft's
/// Connect to a bridge of 1,000 (sessions 11-22 compared against that). They go again after
/// the samples.
/// The resync is off meanwhile: a pass's GC could take a floor veth, born in weft's newborn
/// group, for a crash's leftover in the millisecond before it leaves the group.
async fn samples_floor(d: &mut Daemon, count: usize) -> Result<Samples> {
    d.set_resync(0).await?;
    // At most PER_NETWORK: the sizes are checked against it.
    let ports = d.endpoints / NETWORKS;
    d.floor()?
        .fill_bridge(ports)
        .await
        .context("filling the floor's bridge")?;
    let mut conn = Samples::default();
    for _ in 0..count {
        check_stop()?;
        let i = d.floor_next;
        d.floor_next += 1;
        d.drained(Duration::from_secs(60), u64::MAX).await?;
        let floor = d.floor()?;
        floor.ns_create(i).await?;
        let t = Instant::now();
        floor.connect(i).await?;
        conn.push(t.elapsed());
        floor.disconnect(i).await?;
        floor.ns_delete(i).await?;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    // The rest of the size, and the next sizes, meet weftd's host as before the floor came.
    d.floor()?
        .clear_bridge()
        .await
        .context("clearing the floor's bridge")?;
    d.set_resync(DEFAULT_RESYNC).await?;
    Ok(conn)
}

/// Endpoints disconnected at once by [`mass_disconnect`] (at most half of those held).
pub const MASS: usize = 100;

/// The last [`MASS`] endpoints (at most half of those held, over all the networks)
/// disconnected at once by [`CLIENTS`] clients, as a node drain or a CI runner's teardown
/// does: the time until every call has answered, and until none of their host veths is left
/// (the host's `/proc/net/dev` read again 10 ms after each read, or twice as long as the read
/// took, once the last call has answered, since none can go before its Disconnect retires
/// it; then one request that waits for RTNL, which the last delete holds after its veths
/// leave that list; a dump of the host's links would cost the kernel the nsid walk per veth,
/// under RTNL, which the reaper's deletes need). The resync is off meanwhile. They are
/// connected again afterwards (untimed), so the size stays. None when fewer than two
/// endpoints are held.
pub async fn mass_disconnect(d: &mut Daemon) -> Result<Option<(Duration, Duration)>> {
    let n = d.endpoints;
    let m = MASS.min(n / 2);
    if m == 0 {
        return Ok(None);
    }
    d.drained(Duration::from_secs(60), u64::MAX).await?;
    let picked: Vec<(String, String)> = (n - m..n)
        .map(|i| (net_name(i % NETWORKS), format!("e{i}")))
        .collect();
    let namespaces: std::collections::HashSet<&str> =
        picked.iter().map(|(_, ns)| ns.as_str()).collect();
    let c = d.weftd.client()?;
    let mut host_ends: Vec<String> = Vec::new();
    for net in &d.nets {
        let got = c
            .networks()
            .get_network(weft::v1::GetNetworkRequest { name: net.clone() })
            .await?
            .into_inner()
            .network
            .ok_or_else(|| anyhow!("GetNetwork {net} answered no network"))?;
        host_ends.extend(
            got.endpoints
                .into_iter()
                .filter(|e| namespaces.contains(e.namespace.as_str()))
                .map(|e| e.host_interface_name),
        );
    }
    if host_ends.len() != m {
        bail!(
            "found {} of the {m} endpoints to disconnect",
            host_ends.len()
        );
    }
    let devs = DevList::open(d.weftd.host_ns())?;
    // No resync pass in the timed window (as for the floor's samples).
    d.set_resync(0).await?;
    let clients = new_clients(d).await?;
    let t0 = Instant::now();
    on_clients(clients, &picked, false).await?;
    let answered = t0.elapsed();
    // The host's `/proc/net/dev`, not a netlink lookup per name: each lookup waits for RTNL,
    // which each of the reaper's group deletes holds for ~0.1 s, and a round of 100 of them
    // could see the last group gone a round late. The kernel lists `/proc/net/dev` under
    // RCU, never waiting for RTNL (a read of 10,000 interfaces costs ~21 ms of CPU,
    // BENCHMARKS.md, session 35).
    let gone = loop {
        // A veth gone stays gone: only the rest are looked for again.
        let read = Instant::now();
        let listed: std::collections::HashSet<String> = devs.names()?.into_iter().collect();
        host_ends.retain(|name| listed.contains(name));
        if host_ends.is_empty() {
            // Unlisted when its delete starts; gone once that delete lets RTNL go.
            rtnl_passed(&d.floor()?.kernel).await?;
            break t0.elapsed();
        }
        if t0.elapsed() > Duration::from_secs(60) {
            bail!(
                "{} of {m} disconnected endpoints' veths still there after 60 s",
                host_ends.len()
            );
        }
        tokio::time::sleep(poll_pause(read.elapsed())).await;
    };
    on_clients(new_clients(d).await?, &picked, true).await?;
    d.set_resync(DEFAULT_RESYNC).await?;
    d.drained(Duration::from_secs(60), u64::MAX).await?;
    Ok(Some((answered, gone)))
}

/// [`CLIENTS`] clients, each on a connection of its own.
async fn new_clients(d: &Daemon) -> Result<Vec<weft::Client>> {
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(d.weftd.new_client().await?);
    }
    Ok(clients)
}

/// Connects (or disconnects) each (network, namespace) of `picked` from `clients`, client j
/// taking j, j + k, ...
async fn on_clients(
    clients: Vec<weft::Client>,
    picked: &[(String, String)],
    connect: bool,
) -> Result<()> {
    let k = clients.len();
    let mut tasks = Vec::new();
    for (j, c) in clients.into_iter().enumerate() {
        let mine: Vec<(String, String)> = picked.iter().skip(j).step_by(k).cloned().collect();
        tasks.push(tokio::spawn(async move {
            for (net, ns) in mine {
                check_stop()?;
                if connect {
                    methods::connect(&c, &net, &ns, Vec::new()).await?;
                } else {
                    methods::disconnect(&c, &net, &ns).await?;
                }
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await.context("a client task panicked")??;
    }
    Ok(())
}

/// Samples during a resync, and their control.
#[derive(Debug, Default)]
pub struct ResyncSamples {
    /// Connect sent [`AFTER_TICK`] after a pass started.
    pub connect: Samples,
    /// Disconnect right after it.
    pub disconnect: Samples,
    /// Connect after the same wait from a settled weftd, without a pass.
    pub connect_wait: Samples,
}

/// `count` samples ([`sample`]) during a resync pass, each paired with a control sample
/// taken the same way without the pass, in alternating order. A resync sample's Connect is
/// sent [`AFTER_TICK`] after a pass starts, and its Disconnect right after it. The pass is
/// started by setting the period to 1 s (SIGHUP), since a new period restarts weftd's resync
/// timer: the pass begins 1 s after the reload; the period goes back to the default after
/// each sample. Before each sample, the previous pass is let finish: weftd quiet (under 20% of
/// a core over 200 ms), or a pass's reconciles still queued (queue depth >= [`BUSY_DEPTH`]),
/// which a new pass only re-queues. The control waits as long from the same point and sends
/// its Connect without a reload: a Connect after a second of quiet is slower than one right
/// after other calls (cold caches, parked threads; +1.1-1.3 ms at 100 endpoints), and that is
/// no cost of the pass.
async fn samples_resync(d: &Daemon, n: usize, count: usize) -> Result<ResyncSamples> {
    let c = d.weftd.client()?;
    let mut out = ResyncSamples::default();
    for s in 0..count {
        for pass in [s % 2 == 0, s % 2 == 1] {
            let trigger = async {
                d.settled(Duration::from_secs(60)).await?;
                let t0 = Instant::now();
                if pass {
                    d.set_resync(1).await?;
                }
                let at = t0 + Duration::from_secs(1) + AFTER_TICK;
                tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
                Ok(())
            };
            let name = format!("{}{n}-{s}", if pass { "r" } else { "w" });
            let r = sample(&c, &name, &net_name(s % NETWORKS), trigger).await;
            if pass {
                d.set_resync(DEFAULT_RESYNC).await?;
            }
            let (a, b) = r?;
            if pass {
                out.connect.push(a);
                out.disconnect.push(b);
            } else {
                out.connect_wait.push(a);
            }
        }
    }
    Ok(out)
}

/// SIGTERM, start again on the same database and namespaces (default resync), until
/// GetSystemInfo counts nothing re-checking and an empty queue, and one listing then shows
/// everything Ready; kernel writes then and `later`; VmRSS after it.
async fn restart(d: &mut Daemon, row: &mut Row, later: Duration) -> Result<()> {
    let n = d.endpoints;
    let nets = d.nets.clone();
    let nets: Vec<&str> = nets.iter().map(String::as_str).collect();
    d.drained(Duration::from_secs(60), u64::MAX).await?;
    if !all_ready(&d.weftd.client()?, &nets, n).await? {
        bail!("not converged before the restart");
    }
    write_resync(&d.config, DEFAULT_RESYNC)?;
    d.weftd.stop().await?;
    let t0 = Instant::now();
    d.weftd.start().await?;
    let c = d.weftd.client()?;
    loop {
        check_stop()?;
        // weftd counts what its re-check has not confirmed yet (GetSystemInfo `rechecking`,
        // read from the store): poll that cheaply, then prove it with one listing of every
        // object. Listing 10,000 objects costs weftd ~0.2 s each: polled, it slowed the very
        // restart it timed. The time is taken when the count said so, once the listing agrees.
        while t0.elapsed() < Duration::from_secs(300)
            && !system_info(&c)
                .await
                .is_ok_and(|i| i.rechecking == 0 && i.queue_depth == 0)
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let settled = t0.elapsed();
        // A call can fail while weftd is still starting its services: try again.
        if matches!(all_ready(&c, &nets, n).await, Ok(true)) {
            row.restart_ready = settled;
            break;
        }
        if t0.elapsed() > Duration::from_secs(300) {
            bail!(
                "not Ready within 300 s of the restart; weftd's log:\n{}",
                d.weftd.log_tail(20)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    row.restart_writes = d.info().await?.kernel_writes;
    tokio::time::sleep(later).await;
    row.restart_writes_later = d.info().await?.kernel_writes;
    d.drained(Duration::from_secs(60), u64::MAX).await?;
    row.rss_restart = d.weftd.rss_kib()?;
    d.weftd.check_alive()?;
    Ok(())
}

/// VmRSS with `streams` idle WatchNamespaces streams open (a selector nothing matches, so
/// nothing is sent), spread over 10 connections opened beforehand, minus without them.
async fn watches(d: &Daemon, streams: usize) -> Result<Watches> {
    const CONNECTIONS: usize = 10;
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        let c = d.weftd.new_client().await?;
        system_info(&c).await?;
        clients.push(c);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut out = Watches {
        endpoints: d.endpoints,
        streams,
        connections: CONNECTIONS,
        rss_without: d.weftd.rss_kib()?,
        ..Default::default()
    };
    let mut open = Vec::new();
    for s in 0..streams {
        check_stop()?;
        let stream = clients[s % CONNECTIONS]
            .namespaces()
            .watch_namespaces(WatchNamespacesRequest {
                label_selector: "weft-bench=idle-watch".into(),
                ..Default::default()
            })
            .await
            .with_context(|| format!("WatchNamespaces stream {s}"))?
            .into_inner();
        open.push(stream);
    }
    // What an idle stream keeps, not its opening's garbage: weftd gives freed memory back
    // within 2 s of its resident size growing (weftd::alloc::watch), so wait that out.
    tokio::time::sleep(Duration::from_secs(5)).await;
    out.rss_with = d.weftd.rss_kib()?;
    drop(open);
    Ok(out)
}
