//! Benchmarks of weft alone: concurrent connects against the floor's (serial, and from as many
//! tasks at once), a converged restart, drift repair, published ports at 10 and 10,000
//! mappings, and weftd's memory.
//!
//! They share one weftd (its own scratch host, network `conc`): [`concurrent`] leaves N
//! endpoints connected, which [`restart`], [`drift`] and the RSS readings then use; [`ports`]
//! adds a second network. [`rss`] runs its own weftd up to many endpoints.

use std::{
    collections::HashSet,
    net::{IpAddr, Ipv4Addr},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail, ensure};
use ipnet::{IpNet, Ipv4Net};
use weft::v1::{
    GetNetworkRequest, GetSystemInfoRequest, ListNamespacesRequest, Phase, PublishedPort,
};
use weftd::kernel::prelude::*;
use weftd::kernel::{
    Kernel, NsRef,
    firewall::{FirewallNetwork, PortMapping, Proto},
};

use crate::{
    methods::{self, FloorM},
    sandbox::{Run, Weftd, check_stop, cpu_time, mem_available_kib},
    stats::{Samples, Table, ms, ratio, secs},
};

/// The subnet of the alone suite's network `conc`.
mod disconnect;
mod idle;
mod memory;
mod ports;
pub use disconnect::disconnects;
pub use idle::idle;
pub use memory::memory;
pub use ports::{EPHEMERAL_RANGE, ports};

fn conc_subnet() -> Ipv4Net {
    "10.210.0.0/16".parse().expect("valid")
}

/// A weftd for the alone suite, with network `conc` on bridge `wbc`.
pub struct Daemon {
    /// The daemon.
    pub weftd: Weftd,
    /// Namespaces connected to `conc` (`c0`..`c{n-1}`).
    pub endpoints: usize,
    /// Networks weftd holds.
    pub networks: usize,
    /// VmRSS right after start, KiB.
    pub rss_idle: u64,
    /// Open file descriptors right after start.
    pub fds_idle: usize,
}

impl Daemon {
    /// Starts weftd in scratch host `h-alone` and creates network `conc`.
    pub async fn start(run: &Run, weftd_bin: &std::path::Path) -> Result<Self> {
        let host = run.scratch_ns("h-alone")?;
        let mut weftd = Weftd::new(weftd_bin, &host, run.subdir("alone")?)?;
        weftd.start().await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (rss_idle, fds_idle) = (weftd.rss_kib()?, weftd.fds()?);
        methods::create_network(&weftd.client()?, "conc", "wbc", conc_subnet()).await?;
        Ok(Self {
            weftd,
            endpoints: 0,
            networks: 1,
            rss_idle,
            fds_idle,
        })
    }
}

/// The result of [`concurrent`].
#[derive(Debug, Default)]
pub struct Concurrent {
    /// Connects in all.
    pub n: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Wall time of the concurrent weft connects.
    pub weft_wall: Duration,
    /// Each concurrent connect's latency.
    pub weft: Samples,
    /// Wall time of as many serial connects at the floor.
    pub floor_wall: Duration,
    /// Each floor connect's latency.
    pub floor: Samples,
    /// weftd's VmRSS after the connects, KiB.
    pub rss_kib: u64,
    /// weftd's open file descriptors then.
    pub fds: usize,
    /// CPU weftd used during the concurrent connects.
    pub weft_cpu: Duration,
    /// CPU the bench (the clients) used meanwhile.
    pub client_cpu: Duration,
    /// CPU the bench used for the serial floor connects.
    pub floor_cpu: Duration,
    /// The floor's kernel writes over its serial connects (as weftd's kernel layer counts
    /// them).
    pub floor_writes: u64,
    /// Wall time of as many serial disconnects at the floor.
    pub floor_disc_wall: Duration,
    /// Each floor disconnect's latency.
    pub floor_disc: Samples,
    /// Wall time of as many floor connects from as many in-process tasks at once as there
    /// are clients: the kernel's part made as concurrent as weft's.
    pub floor_conc_wall: Duration,
    /// Each of those connects' latency.
    pub floor_conc: Samples,
    /// CPU the bench used for them.
    pub floor_conc_cpu: Duration,
    /// Wall time of as many floor disconnects from as many tasks at once.
    pub floor_conc_disc_wall: Duration,
    /// Each of those disconnects' latency.
    pub floor_conc_disc: Samples,
    /// Reconciles weftd ran during the concurrent connects (GetSystemInfo).
    pub weft_reconciles: u64,
    /// Kernel writes weftd made meanwhile.
    pub weft_writes: u64,
}

/// weftd's GetSystemInfo answer (counters, queue depth).
pub async fn system_info(c: &weft::Client) -> Result<weft::v1::GetSystemInfoResponse> {
    Ok(c.system()
        .get_system_info(GetSystemInfoRequest {})
        .await?
        .into_inner())
}

/// Waits (until `deadline`) for weftd's own word that it has settled: nothing re-checking
/// and an empty queue (GetSystemInfo, a small answer polled every 5 ms). Listing every object
/// instead costs weftd real work at 10,000 (~0.1 s each): polled, the lists slowed the restart
/// they timed and left their answers' pages in its heap. Callers prove Ready with one listing
/// after this.
pub async fn weftd_says_settled(c: &weft::Client, deadline: Instant) -> Result<()> {
    loop {
        crate::sandbox::check_stop()?;
        if system_info(c)
            .await
            .is_ok_and(|i| i.rechecking == 0 && i.queue_depth == 0)
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("weftd still re-checking or queueing work at the deadline");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `n` connects to weft from `clients` concurrent clients (each its own connection), against
/// `n` serial connects at the in-process floor. Namespaces are made beforehand, untimed.
pub async fn concurrent(run: &Run, d: &mut Daemon, n: usize, clients: usize) -> Result<Concurrent> {
    ensure!(
        n <= 1000,
        "one bridge takes at most 1023 ports; use n <= 1000"
    );
    ensure!(clients >= 1, "at least one client");
    let c = d.weftd.client()?;
    for i in 0..n {
        check_stop()?;
        methods::create_namespace(&c, &format!("c{i}")).await?;
    }
    // Let the namespaces' own reconciles and echoes settle first.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let info0 = system_info(&c).await?;
    let (cpu0, self0) = (d.weftd.cpu()?, cpu_time("self")?);
    let mut conns = Vec::new();
    for _ in 0..clients {
        conns.push(d.weftd.new_client().await?);
    }
    let t0 = Instant::now();
    let mut out = Concurrent {
        n,
        clients,
        weft: disconnect::from_clients(conns, n, true).await?,
        ..Default::default()
    };
    out.weft_wall = t0.elapsed();
    out.weft_cpu = d.weftd.cpu()?.saturating_sub(cpu0);
    out.client_cpu = cpu_time("self")?.saturating_sub(self0);
    // Echo reconciles (from weftd's own netlink notifications) come within its 50 ms debounce.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let info1 = system_info(&c).await?;
    out.weft_reconciles = info1.reconciles.saturating_sub(info0.reconciles);
    out.weft_writes = info1.kernel_writes.saturating_sub(info0.kernel_writes);
    d.endpoints = n;
    d.weftd.check_alive()?;
    out.rss_kib = d.weftd.rss_kib()?;
    out.fds = d.weftd.fds()?;

    // The floor, serial, in its own scratch host.
    let host = run.scratch_ns("h-alone-floor")?;
    let mut floor = FloorM::setup(run, &host, "10.211.0.0/16".parse()?).await?;
    for i in 0..n {
        check_stop()?;
        floor.ns_create(i).await?;
    }
    let self0 = cpu_time("self")?;
    let writes0 = floor.kernel.writes();
    let t0 = Instant::now();
    for i in 0..n {
        check_stop()?;
        let t = Instant::now();
        floor.connect(i).await?;
        out.floor.push(t.elapsed());
    }
    out.floor_wall = t0.elapsed();
    out.floor_cpu = cpu_time("self")?.saturating_sub(self0);
    out.floor_writes = floor.kernel.writes().saturating_sub(writes0);
    // The floor's serial disconnects, against which the concurrent ones are measured.
    let t0 = Instant::now();
    for i in 0..n {
        check_stop()?;
        let t = Instant::now();
        floor.disconnect(i).await?;
        out.floor_disc.push(t.elapsed());
    }
    out.floor_disc_wall = t0.elapsed();
    // The same connects and disconnects from as many tasks at once as weft had clients: how
    // much the kernel's part gains from concurrency (RTNL serializes most of it), so weft's
    // concurrent calls can be read against what the same kernel work allows.
    let self0 = cpu_time("self")?;
    let t0 = Instant::now();
    out.floor_conc = floor.connect_concurrently(n, clients).await?;
    out.floor_conc_wall = t0.elapsed();
    out.floor_conc_cpu = cpu_time("self")?.saturating_sub(self0);
    let t0 = Instant::now();
    out.floor_conc_disc = floor.disconnect_concurrently(n, clients).await?;
    out.floor_conc_disc_wall = t0.elapsed();
    // Free the floor's namespaces now, so they do not weigh on what follows.
    for i in 0..n {
        floor.ns_delete(i).await?;
    }
    Ok(out)
}

impl Concurrent {
    /// The table.
    pub fn table(&self) -> Table {
        let per = |d: Duration| ms(d / self.n.max(1) as u32);
        let mut t = Table::new([
            "what",
            "wall s",
            "per connect p50 ms",
            "p99 ms",
            "CPU ms per connect",
            "reconciles, kernel writes per connect",
        ]);
        t.row([
            format!(
                "weft, {} connects from {} concurrent clients",
                self.n, self.clients
            ),
            secs(self.weft_wall),
            ms(self.weft.p50()),
            ms(self.weft.p99()),
            format!(
                "{} weftd + {} client",
                per(self.weft_cpu),
                per(self.client_cpu)
            ),
            format!(
                "{:.2}, {:.2}",
                self.weft_reconciles as f64 / self.n.max(1) as f64,
                self.weft_writes as f64 / self.n.max(1) as f64
            ),
        ]);
        t.row([
            format!("floor, {} serial connects in-process", self.n),
            secs(self.floor_wall),
            ms(self.floor.p50()),
            ms(self.floor.p99()),
            per(self.floor_cpu),
            format!("–, {:.2}", self.floor_writes as f64 / self.n.max(1) as f64),
        ]);
        t.row([
            format!(
                "floor, {} connects from {} concurrent in-process tasks",
                self.n, self.clients
            ),
            secs(self.floor_conc_wall),
            ms(self.floor_conc.p50()),
            ms(self.floor_conc.p99()),
            per(self.floor_conc_cpu),
            "–, –".into(),
        ]);
        t
    }
}

/// The result of [`restart`].
#[derive(Debug, Default)]
pub struct Restart {
    /// Endpoints (and namespaces) weftd held.
    pub endpoints: usize,
    /// SIGTERM to exit.
    pub stop: Duration,
    /// Spawn to the socket answering.
    pub to_socket: Duration,
    /// Spawn to the first list in which every namespace and endpoint is Ready.
    pub to_ready: Duration,
    /// GetSystemInfo.kernel_writes at that moment.
    pub writes_at_ready: u64,
    /// GetSystemInfo.reconciles at that moment.
    pub reconciles_at_ready: u64,
    /// Spawn to the start-up re-check done: everything Ready and an empty queue.
    pub to_reconciled: Duration,
    /// Objects queued at start-up.
    pub objects: u64,
    /// GetSystemInfo.kernel_writes then.
    pub writes_at_done: u64,
    /// ... and 3 s later (the firewall check runs every second).
    pub writes_later: u64,
    /// Reconciles run by then.
    pub reconciles: u64,
    /// VmRSS after the restart, KiB.
    pub rss_kib: u64,
    /// Open file descriptors then.
    pub fds: usize,
}

/// True when every namespace (at least `endpoints` of them) is Ready and re-checked, and each
/// network of `nets` is Ready with all its endpoints (at least `endpoints` in all) Ready.
pub async fn all_ready(c: &weft::Client, nets: &[&str], endpoints: usize) -> Result<bool> {
    let nss = c
        .list_all_namespaces(tonic::Request::new(ListNamespacesRequest::default()))
        .await?
        .into_inner()
        .namespaces;
    let ns_ok = nss.iter().all(|n| {
        n.status
            .as_ref()
            .is_some_and(|s| s.phase() == Phase::Ready && s.observed_generation >= n.generation)
    });
    if !ns_ok || nss.len() < endpoints {
        return Ok(false);
    }
    let mut eps = 0;
    for net in nets {
        let Some(network) = c
            .networks()
            .get_network(GetNetworkRequest {
                name: (*net).into(),
            })
            .await?
            .into_inner()
            .network
        else {
            return Ok(false);
        };
        let net_ok = network
            .status
            .as_ref()
            .is_some_and(|s| s.phase() == Phase::Ready);
        let eps_ok = network
            .endpoints
            .iter()
            .all(|e| e.status.as_ref().is_some_and(|s| s.phase() == Phase::Ready));
        if !net_ok || !eps_ok {
            return Ok(false);
        }
        eps += network.endpoints.len();
    }
    Ok(eps >= endpoints)
}

/// Restarts weftd on a converged host: time to Ready and kernel writes.
pub async fn restart(d: &mut Daemon) -> Result<Restart> {
    let c = d.weftd.client()?;
    ensure!(
        all_ready(&c, &["conc"], d.endpoints).await?,
        "not converged before the restart"
    );
    let mut out = Restart {
        endpoints: d.endpoints,
        ..Default::default()
    };
    out.stop = d.weftd.stop().await?;
    let t0 = Instant::now();
    out.to_socket = d.weftd.start().await?;
    let c = d.weftd.client()?;
    let info = |c: weft::Client| async move {
        Ok::<_, anyhow::Error>(
            c.system()
                .get_system_info(GetSystemInfoRequest {})
                .await?
                .into_inner(),
        )
    };
    // Every stored object, what a start-up that reconciled everything ran: namespaces,
    // networks, endpoints, the firewall key and the garbage collector.
    let objects = (2 * d.endpoints + d.networks + 2) as u64;
    let (mut ready_at, mut done_at) = (None, None);
    while ready_at.is_none() || done_at.is_none() {
        check_stop()?;
        // weftd counts what its re-check has not confirmed yet (GetSystemInfo `rechecking`):
        // a cheap poll, proved by one listing; listing everything every 2 ms slowed the
        // restart it timed. A call can fail while weftd is still starting: try again.
        let confirmed =
            ready_at.is_none() && info(c.clone()).await.is_ok_and(|i| i.rechecking == 0);
        let settled = t0.elapsed();
        if confirmed && matches!(all_ready(&c, &["conc"], d.endpoints).await, Ok(true)) {
            ready_at = Some(settled);
            if let Ok(i) = info(c.clone()).await {
                out.reconciles_at_ready = i.reconciles;
                out.writes_at_ready = i.kernel_writes;
            }
        }
        // The start-up check reconciles only what differs: done once everything is Ready
        // and the queue is empty.
        if done_at.is_none()
            && ready_at.is_some()
            && let Ok(i) = info(c.clone()).await
            && i.queue_depth == 0
        {
            done_at = Some(t0.elapsed());
            out.writes_at_done = i.kernel_writes;
        }
        if t0.elapsed() > Duration::from_secs(120) {
            bail!(
                "not Ready within 120 s of the restart; weftd's log:\n{}",
                d.weftd.log_tail(20)
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    out.to_ready = ready_at.unwrap_or_default();
    out.to_reconciled = done_at.unwrap_or_default();
    out.objects = objects;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let i = info(c).await?;
    out.writes_later = i.kernel_writes;
    out.reconciles = i.reconciles;
    out.rss_kib = d.weftd.rss_kib()?;
    out.fds = d.weftd.fds()?;
    Ok(out)
}

impl Restart {
    /// The table.
    pub fn table(&self) -> Table {
        let mut t = Table::new(["what", "value"]);
        t.row([
            "endpoints (and namespaces) held".to_string(),
            self.endpoints.to_string(),
        ]);
        t.row(["stop (SIGTERM to exit) s".into(), secs(self.stop)]);
        t.row(["start to socket answering s".into(), secs(self.to_socket)]);
        t.row([
            "start to everything Ready (first full list) s".into(),
            secs(self.to_ready),
        ]);
        t.row([
            "reconciles done at that moment".into(),
            format!("{} of {}", self.reconciles_at_ready, self.objects),
        ]);
        t.row([
            "kernel writes at that moment".into(),
            self.writes_at_ready.to_string(),
        ]);
        t.row([
            "start to start-up re-check done (everything Ready, queue empty) s".into(),
            secs(self.to_reconciled),
        ]);
        t.row(["kernel writes then".into(), self.writes_at_done.to_string()]);
        t.row([
            "kernel writes 3 s later".into(),
            self.writes_later.to_string(),
        ]);
        t.row(["reconciles by then".into(), self.reconciles.to_string()]);
        t
    }
}

/// The result of [`drift`].
#[derive(Debug, Default)]
pub struct Drift {
    /// Delete (the netlink call, as `ip link del` makes it) to repaired: `eth0` back in the
    /// namespace with its address and default route.
    pub repair: Samples,
    /// How long the delete call itself took (part of `repair`).
    pub delete_call: Samples,
    /// GetSystemInfo.drift_repairs gained.
    pub repairs_counted: u64,
}

/// Deletes an endpoint's veth behind weftd's back (`RTM_DELLINK` of `eth0` in its namespace,
/// which takes the pair) `samples` times, each on another endpoint, and times until weftd has
/// put it back: `eth0` exists, is up, has its address and the default route.
pub async fn drift(run: &Run, d: &mut Daemon, samples: usize) -> Result<Drift> {
    ensure!(d.endpoints > 0, "no endpoints to break");
    let c = d.weftd.client()?;
    let before = c
        .system()
        .get_system_info(GetSystemInfoRequest {})
        .await?
        .into_inner()
        .drift_repairs;
    let kernel = Kernel::new(
        Some(d.weftd.host_ns().to_path_buf()),
        run.subdir("drift-netns")?,
    )?;
    let mut out = Drift::default();
    let step = (d.endpoints / samples.max(1)).max(1);
    for s in 0..samples {
        check_stop()?;
        let i = (s * step) % d.endpoints;
        let ns = NsRef::path(d.weftd.netns_dir().join(format!("c{i}")));
        let eth0 = kernel
            .get_link(&ns, "eth0")
            .await?
            .ok_or_else(|| anyhow!("c{i} has no eth0"))?;
        let want: HashSet<IpNet> = eth0
            .addresses
            .iter()
            .copied()
            .filter(|a| a.addr().is_ipv4())
            .collect();
        let routes = kernel.list_routes(&ns, eth0.index).await?.len();
        ensure!(
            !want.is_empty() && routes > 0,
            "c{i} is not connected as expected"
        );
        let t0 = Instant::now();
        kernel.delete_link(&ns, eth0.index).await?;
        out.delete_call.push(t0.elapsed());
        loop {
            if let Some(l) = kernel.get_link(&ns, "eth0").await?
                && l.up
                && want.iter().all(|a| l.addresses.contains(a))
                && kernel.list_routes(&ns, l.index).await?.len() >= routes
            {
                out.repair.push(t0.elapsed());
                break;
            }
            if t0.elapsed() > Duration::from_secs(60) {
                bail!("c{i} was not repaired within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Let the repair's own notifications settle before the next one.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = c
        .system()
        .get_system_info(GetSystemInfoRequest {})
        .await?
        .into_inner()
        .drift_repairs;
    out.repairs_counted = after.saturating_sub(before);
    Ok(out)
}

impl Drift {
    /// The table.
    pub fn table(&self) -> Table {
        let mut t = Table::new(["what", "samples", "p50 ms", "p99 ms", "max ms"]);
        t.row([
            "veth deleted -> repaired (eth0 up, address, default route)".into(),
            self.repair.len().to_string(),
            ms(self.repair.p50()),
            ms(self.repair.p99()),
            ms(self.repair.max()),
        ]);
        t.row([
            "of which the delete call itself".to_string(),
            self.delete_call.len().to_string(),
            ms(self.delete_call.p50()),
            ms(self.delete_call.p99()),
            ms(self.delete_call.max()),
        ]);
        t.row([
            "drift_repairs counted by weftd".to_string(),
            self.repairs_counted.to_string(),
            String::new(),
            String::new(),
            String::new(),
        ]);
        t
    }
}

/// The result of [`rss`].
#[derive(Debug, Default)]
pub struct Rss {
    /// (endpoints, VmRSS KiB, open fds, MemAvailable KiB) readings.
    pub readings: Vec<(usize, u64, usize, u64)>,
    /// Per step of one network: (endpoints after it, seconds it took, the deepest reconcile
    /// queue GetSystemInfo showed meanwhile, sampled every 250 ms).
    pub steps: Vec<(usize, f64, u64)>,
    /// Endpoints reached.
    pub reached: usize,
    /// Endpoints asked for.
    pub asked: usize,
    /// Wall time to create and connect them.
    pub wall: Duration,
    /// Why it stopped early, if it did.
    pub stopped: Option<String>,
}

/// weftd's VmRSS as endpoints grow to `endpoints` (networks of `per_network` endpoints each,
/// connected by 4 concurrent clients), read every `every` endpoints. A failure past the first
/// network ends the climb and is reported, not fatal: the readings so far stand.
pub async fn rss(
    run: &Run,
    weftd_bin: &std::path::Path,
    endpoints: usize,
    per_network: usize,
    every: usize,
) -> Result<Rss> {
    let host = run.scratch_ns("h-rss")?;
    let mut weftd = Weftd::new(weftd_bin, &host, run.subdir("rss")?)?;
    weftd.start().await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let out = climb(&weftd, endpoints, per_network, every).await?;
    weftd.check_alive()?;
    Ok(out)
}

/// The climb of [`rss`] on a running `weftd` (networks `r0`, `r1`, ... on bridges `wbr0`,
/// ..., subnets 10.100.0.0/16 up; namespaces `r0`, `r1`, ...).
pub async fn climb(
    weftd: &Weftd,
    endpoints: usize,
    per_network: usize,
    every: usize,
) -> Result<Rss> {
    ensure!(
        (1..=1000).contains(&per_network),
        "per network: 1 to 1000 (a bridge takes 1023 ports)"
    );
    let mut out = Rss {
        asked: endpoints,
        readings: vec![(0, weftd.rss_kib()?, weftd.fds()?, mem_available_kib())],
        ..Default::default()
    };
    let t0 = Instant::now();
    let clients = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(weftd.new_client().await?);
        }
        v
    };
    let mut done = 0;
    let mut net_no = 0;
    while done < endpoints {
        // The kernel's share (namespaces, veths) is what grows fastest: stop with room left.
        if mem_available_kib() < 4 * 1024 * 1024 {
            out.stopped = Some(format!(
                "less than 4 GiB of memory available ({} MiB)",
                mem_available_kib() / 1024
            ));
            break;
        }
        let count = per_network.min(endpoints - done);
        let net = format!("r{net_no}");
        let subnet: Ipv4Net = format!("10.{}.0.0/16", 100 + net_no).parse()?;
        let t_step = Instant::now();
        let deepest = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let sampler = {
            let c = clients[0].clone();
            let deepest = deepest.clone();
            tokio::spawn(async move {
                loop {
                    if let Ok(i) = system_info(&c).await {
                        deepest.fetch_max(i.queue_depth, std::sync::atomic::Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            })
        };
        let step = async {
            methods::create_network(&clients[0], &net, &format!("wbr{net_no}"), subnet).await?;
            let mut tasks = Vec::new();
            for (j, c) in clients.iter().enumerate() {
                let c = c.clone();
                let net = net.clone();
                tasks.push(tokio::spawn(async move {
                    for i in (done + j..done + count).step_by(4) {
                        check_stop()?;
                        let name = format!("r{i}");
                        methods::create_namespace(&c, &name).await?;
                        methods::connect(&c, &net, &name, Vec::new()).await?;
                    }
                    Ok::<_, anyhow::Error>(())
                }));
            }
            for t in tasks {
                t.await.context("a client task panicked")??;
            }
            Ok::<_, anyhow::Error>(())
        }
        .await;
        sampler.abort();
        let deepest = deepest.load(std::sync::atomic::Ordering::Relaxed);
        out.steps
            .push((done + count, t_step.elapsed().as_secs_f64(), deepest));
        if let Err(e) = step {
            if crate::sandbox::STOP.load(std::sync::atomic::Ordering::Relaxed) {
                // Keep the readings so far in the report; the run still ends in an error.
                out.stopped = Some("interrupted (SIGINT/SIGTERM)".into());
                break;
            }
            if done == 0 {
                return Err(e);
            }
            out.stopped = Some(format!("{e:#}"));
            break;
        }
        done += count;
        net_no += 1;
        if done.is_multiple_of(every.max(1)) || done == endpoints {
            let r = (done, weftd.rss_kib()?, weftd.fds()?, mem_available_kib());
            out.readings.push(r);
            eprintln!(
                "  rss: {done} endpoints, VmRSS {} MiB, {} fds, {} MiB available, {:.0} s",
                r.1 / 1024,
                r.2,
                r.3 / 1024,
                t0.elapsed().as_secs_f64()
            );
        }
    }
    out.reached = done;
    out.wall = t0.elapsed();
    Ok(out)
}

impl Rss {
    /// How long each network's step took and how deep weftd's queue got meanwhile.
    pub fn steps_table(&self) -> Table {
        let mut t = Table::new([
            "endpoints after the step",
            "step s (1,000 namespaces + connects)",
            "deepest reconcile queue seen",
        ]);
        for (n, secs, deepest) in &self.steps {
            t.row([n.to_string(), format!("{secs:.1}"), deepest.to_string()]);
        }
        t
    }

    /// The table.
    pub fn table(&self) -> Table {
        let mut t = Table::new([
            "endpoints (namespaces)",
            "weftd VmRSS MiB",
            "weftd open fds",
            "machine MemAvailable GiB",
        ]);
        for (n, kib, fds, avail) in &self.readings {
            t.row([
                n.to_string(),
                format!("{:.1}", *kib as f64 / 1024.0),
                fds.to_string(),
                format!("{:.1}", *avail as f64 / 1024.0 / 1024.0),
            ]);
        }
        t
    }
}

/// The result of [`breakdown`].
#[derive(Debug, Default)]
pub struct Breakdown {
    /// GetSystemInfo: a gRPC round trip over the socket, nothing else.
    pub rtt: Samples,
    /// Connect with `dry_run`: validation and the plan (reads the kernel), store rolled back.
    pub dry_run: Samples,
    /// Connect with `wait: false`: validation and the store transaction; answers before the
    /// reconcile.
    pub no_wait: Samples,
    /// Connect, waiting for Ready.
    pub full: Samples,
    /// Disconnect with `wait: false`.
    pub disconnect_no_wait: Samples,
    /// Disconnect, waiting until the endpoint is gone.
    pub disconnect_full: Samples,
}

/// Waits (at most 10 s) until network `net` no longer lists an endpoint of `ns`.
async fn gone_from(c: &weft::Client, net: &str, ns: &str) -> Result<()> {
    let t = Instant::now();
    loop {
        let n = c
            .networks()
            .get_network(weft::v1::GetNetworkRequest { name: net.into() })
            .await?
            .into_inner()
            .network;
        if !n.is_some_and(|n| n.endpoints.iter().any(|e| e.namespace == ns)) {
            return Ok(());
        }
        if t.elapsed() > Duration::from_secs(10) {
            bail!("the endpoint of {ns} on {net} was still there 10 s after its Disconnect");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Takes weft's Connect and Disconnect apart from the outside: the same call with less of the
/// work each time, serial, `samples` each, on a network of its own (`bd`).
pub async fn breakdown(d: &mut Daemon, samples: usize) -> Result<Breakdown> {
    let c = d.weftd.client()?;
    methods::create_network(&c, "bd", "wbd", "10.214.0.0/16".parse()?).await?;
    for s in 0..samples {
        methods::create_namespace(&c, &format!("b{s}")).await?;
    }
    let mut out = Breakdown::default();
    let req = |s: usize, wait: Option<bool>, dry_run: bool| weft::v1::ConnectRequest {
        network: "bd".into(),
        namespace: format!("b{s}"),
        wait,
        dry_run,
        ..Default::default()
    };
    let disc = |s: usize, wait: Option<bool>| weft::v1::DisconnectRequest {
        network: "bd".into(),
        namespace: format!("b{s}"),
        wait,
        ..Default::default()
    };
    // Lets a call's background reconcile finish before the next sample.
    let settle = || tokio::time::sleep(Duration::from_millis(60));
    for s in 0..samples {
        check_stop()?;
        let t = Instant::now();
        c.system().get_system_info(GetSystemInfoRequest {}).await?;
        out.rtt.push(t.elapsed());
        let t = Instant::now();
        c.networks().connect(req(s, None, true)).await?;
        out.dry_run.push(t.elapsed());
        let t = Instant::now();
        c.networks().connect(req(s, Some(false), false)).await?;
        out.no_wait.push(t.elapsed());
        settle().await;
        let t = Instant::now();
        c.networks().disconnect(disc(s, Some(false))).await?;
        out.disconnect_no_wait.push(t.elapsed());
        settle().await;
        // Its removal may outlast the pause on a loaded machine: the next Connect of the
        // same namespace would find the endpoint still there (ALREADY_EXISTS).
        gone_from(&c, "bd", &format!("b{s}")).await?;
        let t = Instant::now();
        methods::connect(&c, "bd", &format!("b{s}"), Vec::new()).await?;
        out.full.push(t.elapsed());
        settle().await;
        let t = Instant::now();
        c.networks().disconnect(disc(s, None)).await?;
        out.disconnect_full.push(t.elapsed());
        settle().await;
    }
    Ok(out)
}

impl Breakdown {
    /// The table.
    pub fn table(&self) -> Table {
        let mut t = Table::new(["call", "p50 ms", "p99 ms"]);
        let rows: [(&str, &Samples); 6] = [
            ("GetSystemInfo (a gRPC round trip)", &self.rtt),
            (
                "Connect dry_run (validation, plan from kernel reads, store rolled back)",
                &self.dry_run,
            ),
            (
                "Connect wait=false (validation, store transaction; no reconcile)",
                &self.no_wait,
            ),
            ("Connect (waits for Ready)", &self.full),
            ("Disconnect wait=false", &self.disconnect_no_wait),
            ("Disconnect (waits until gone)", &self.disconnect_full),
        ];
        for (what, s) in rows {
            t.row([what.to_string(), ms(s.p50()), ms(s.p99())]);
        }
        t
    }
}
