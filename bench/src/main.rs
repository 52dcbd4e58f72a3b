//! weft-bench: weft against plain `ip` commands, the CNI bridge plugin and netavark, in the
//! same run and interleaved, plus benchmarks of weft alone, and weftd's DNS resolver against
//! aardvark-dns with dnsperf ([`dns`]). Prints markdown tables.
//!
//! Run it through `bench/run` (it installs the peers and builds everything in release):
//! `sudo bench/run [--n 100,1000] [--quick]`. Everything happens inside scratch network
//! namespaces this process creates and removes (see [`sandbox`]); the real host's interfaces,
//! routes and firewall are never touched.

mod alone;
mod compare;
mod crowded;
mod dns;
mod floor_grpc;
mod methods;
mod plugins;
mod sandbox;
mod scale;
mod stats;

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use crate::{
    methods::{Kind, Tools},
    sandbox::{Run, STOP},
    stats::{Table, secs},
};

/// weft's benchmark harness.
#[derive(Parser, Debug)]
#[command(name = "weft-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    common: Common,
}

/// Options every benchmark takes.
#[derive(Args, Debug, Clone)]
struct Common {
    /// The weftd binary (default: next to this one).
    #[arg(long, global = true)]
    weftd: Option<PathBuf>,
    /// The netavark binary.
    #[arg(long, global = true, default_value = "/usr/lib/podman/netavark")]
    netavark: PathBuf,
    /// The CNI plugin directory.
    #[arg(long, global = true, default_value = "/usr/lib/cni")]
    cni_dir: PathBuf,
    /// weft's CNI plugin (default: next to weftd).
    #[arg(long, global = true)]
    weft_cni: Option<PathBuf>,
    /// Small sizes for CI: N=50, 200 concurrent connects, 10 drift samples, no RSS climb.
    #[arg(long, global = true)]
    quick: bool,
    /// Also write the report (markdown) to this file.
    #[arg(long, global = true)]
    report: Option<PathBuf>,
    /// Run the bench's own serial work (the comparison's rounds, the floor's serial connects,
    /// each call of weft's client made one after another) on the main thread, as every run
    /// before session 36 did, instead of in a task on a runtime worker (the concurrent
    /// clients and tasks always ran on workers). On the main thread each of the floor's
    /// netlink requests crosses threads twice (the request to the connection task on a
    /// worker, its answer back), which made the in-process floor's connect ~0.2 ms slower at
    /// N=100 on the 2-core VM (BENCHMARKS.md, "Session 36"). For comparing with earlier
    /// sessions' numbers.
    #[arg(long, global = true)]
    main_thread: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Everything: the comparison at each N, then weft alone, then DNS (the default).
    All(AllArgs),
    /// The interleaved comparison only.
    Compare(CompareArgs),
    /// weft alone only: concurrent connects, restart, drift, ports, RSS.
    Alone(AloneArgs),
    /// weftd's resolver against aardvark-dns with dnsperf, and weftd's API latency during
    /// the query storm.
    Dns(DnsArgs),
    /// weftd at rest with many endpoints: idle CPU over a window with the default resync,
    /// VmRSS after resyncs, and a converged restart at that size.
    Idle(IdleArgs),
    /// How weftd's cost grows with its endpoints (issue 14's growth table): VmRSS, idle CPU,
    /// Connect/Disconnect (idle and during a resync), restart, Watch streams, per size.
    Scale(ScaleArgs),
    /// weftd's memory: idle Watch streams (KiB each) with no objects and at the top of a
    /// climb to many endpoints, VmRSS over the climb, after a resync and after a restart.
    Memory(MemoryArgs),
    /// Remove what runs whose process is gone left behind (namespaces, mounts, temp dirs,
    /// weftd processes).
    Cleanup,
}

#[derive(Args, Debug, Clone, Default)]
struct CompareArgs {
    /// Endpoint counts, comma-separated (default 100,1000; 50 with --quick).
    #[arg(long, value_delimiter = ',')]
    n: Vec<usize>,
    /// Methods, comma-separated (default: all of weft, floor, ip, cni, netavark, weft-cni,
    /// cni+portmap).
    #[arg(long, value_delimiter = ',')]
    methods: Vec<String>,
    /// Milliseconds with nothing sent by the bench before each timed connect and disconnect
    /// of the comparison (default 0: back to back; the other rows stay back to back). What a
    /// container's start after a pause meets. Only the comparison takes it, not `alone` or
    /// `dns` under `all`.
    #[arg(long, default_value_t = 0)]
    gap_ms: u64,
}

#[derive(Args, Debug, Clone, Default)]
struct AloneArgs {
    /// Connects in the concurrency benchmark, whose endpoints the restart, drift and RSS
    /// readings then use (default 1000; 200 with --quick).
    #[arg(long)]
    connects: Option<usize>,
    /// Concurrent clients.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Drift repairs to time (default 20; 10 with --quick).
    #[arg(long)]
    drift: Option<usize>,
    /// Samples per point of the published-port benchmark (default 20; 10 with --quick).
    #[arg(long)]
    port_samples: Option<usize>,
    /// Existing mappings for the large point of the port benchmark.
    #[arg(long, default_value_t = 10_000)]
    large_ports: usize,
    /// Endpoints to climb to for weftd's RSS (default 10000; 0 with --quick; 0 skips).
    #[arg(long)]
    rss_endpoints: Option<usize>,
}

#[derive(Args, Debug, Clone)]
struct IdleArgs {
    /// Endpoints (each its own namespace; networks of 1,000).
    #[arg(long, default_value_t = 10_000)]
    endpoints: usize,
    /// The idle window measured, in seconds.
    #[arg(long, default_value_t = 300)]
    window: u64,
}

#[derive(Args, Debug, Clone, Default)]
struct MemoryArgs {
    /// Endpoints to climb to, in networks of 1,000 (default 10000; 100 with --quick).
    #[arg(long)]
    endpoints: Option<usize>,
    /// Idle Watch streams to open (default 200; 20 with --quick; 0 skips).
    #[arg(long)]
    watches: Option<usize>,
}

#[derive(Args, Debug, Clone, Default)]
struct DnsArgs {
    /// Endpoints on weft's network, each a record both resolvers hold (default 100; 10 with
    /// --quick).
    #[arg(long)]
    endpoints: Option<usize>,
    /// dnsperf's run time per case and resolver, in seconds (default 10; 1 with --quick).
    #[arg(long)]
    seconds: Option<u64>,
    /// GetSystemInfo calls for weftd's idle API latency (default 300; 50 with --quick).
    #[arg(long)]
    api_calls: Option<usize>,
    /// The aardvark-dns binary (default /usr/lib/podman/aardvark-dns).
    #[arg(long)]
    aardvark: Option<PathBuf>,
    /// Resolvers to measure, comma-separated: weft, aardvark (default both).
    #[arg(long, value_delimiter = ',')]
    servers: Vec<String>,
}

#[derive(Args, Debug, Clone, Default)]
struct ScaleArgs {
    /// Endpoint counts, ascending, comma-separated; each builds on the previous (default
    /// 100,1000,5000,10000; 20 with --quick).
    #[arg(long, value_delimiter = ',')]
    sizes: Vec<usize>,
    /// The idle window per size, seconds (default 60; 1 with --quick; the target is
    /// over 300).
    #[arg(long)]
    idle_secs: Option<u64>,
    /// Connect/Disconnect samples per size, idle and during a resync (default 50; 3 with
    /// --quick).
    #[arg(long)]
    scale_samples: Option<usize>,
    /// Idle Watch streams for the per-stream memory; 0 skips (default 200; 20 with --quick).
    #[arg(long)]
    watches: Option<usize>,
    /// The size at which the Watch streams are measured (default: the largest).
    #[arg(long)]
    watch_at: Option<usize>,
}

#[derive(Args, Debug, Clone, Default)]
struct AllArgs {
    #[command(flatten)]
    compare: CompareArgs,
    #[command(flatten)]
    alone: AloneArgs,
    #[command(flatten)]
    dns: DnsArgs,
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let serve = args.get(1).is_some_and(|a| a == floor_grpc::SERVE);
    let cli = if serve { None } else { Some(Cli::parse()) };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: tokio runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let Some(cli) = cli else {
        // The floor's gRPC server (floor_grpc.rs), started by a comparison.
        let served = rt.block_on(floor_grpc::serve(&args[2..]));
        // Its reader of stdin may still be blocked in a read: not waited for.
        rt.shutdown_background();
        return match served {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {SERVE}: {e:#}", SERVE = floor_grpc::SERVE);
                std::process::ExitCode::FAILURE
            }
        };
    };
    let result = rt.block_on(async {
        tokio::spawn(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            eprintln!("stopping: cleaning up (again to abort the cleanup)");
            STOP.store(true, Ordering::Relaxed);
        });
        if cli.common.main_thread {
            return main_async(cli).await;
        }
        // On a worker, as a daemon's handlers run: see `Common::main_thread`.
        match tokio::spawn(main_async(cli)).await {
            Ok(done) => done,
            Err(e) => Err(anyhow::anyhow!("the bench's task: {e}")),
        }
    });
    drop(rt);
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn main_async(cli: Cli) -> Result<()> {
    let common = cli.common.clone();
    let command = cli.command.unwrap_or(Command::All(AllArgs::default()));
    if let Command::Cleanup = command {
        for line in sandbox::sweep() {
            eprintln!("cleanup: {line}");
        }
        return Ok(());
    }
    let memory_args = match &command {
        Command::Memory(m) => Some(m.clone()),
        _ => None,
    };
    if !nix::unistd::Uid::effective().is_root() {
        bail!("run as root (sudo): the bench creates network namespaces");
    }
    // Leftovers of runs that died without cleaning up (SIGKILL).
    for line in sandbox::sweep() {
        eprintln!("cleanup of an earlier run: {line}");
    }
    let weftd = match &common.weftd {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("weftd"),
    };
    methods::require(&weftd, "weftd (cargo build --release -p weftd)")?;
    let weft_cni = match &common.weft_cni {
        Some(p) => p.clone(),
        None => weftd.with_file_name("weft-cni"),
    };
    let tools = Tools {
        weftd,
        netavark: common.netavark.clone(),
        cni_dir: common.cni_dir.clone(),
        weft_cni,
    };
    if let Command::Idle(a) = &command {
        let run = Run::new()?;
        let load = loadavg();
        let window = std::time::Duration::from_secs(a.window);
        let r = alone::idle(&run, &tools.weftd, a.endpoints, window).await?;
        drop(run);
        let s = format!(
            "{}\n**Idle** with {} endpoints ({}; load average before: {load}, after: {}). \
             Targets: <= 2% of one core: {} ({:.2}%); converged restart Ready in <= 5 s with 0 \
             kernel writes: {}.\n\n{}\n",
            machine(&tools),
            r.endpoints,
            tools.weftd.display(),
            loadavg(),
            verdict(r.cpu_percent() <= 2.0),
            r.cpu_percent(),
            verdict(r.restart_ready.as_secs_f64() <= 5.0 && r.restart_writes == 0),
            r.table().render()
        );
        print!("{s}");
        save(&common, &s)?;
        return Ok(());
    }
    // `all` runs the growth benchmark only with --quick (a tiny one, so CI proves it works);
    // the full one takes many minutes: `weft-bench scale`.
    let quick_scale = common.quick.then(ScaleArgs::default);
    let (cmp, alone, dns, scale) = match command {
        Command::All(a) => (Some(a.compare), Some(a.alone), Some(a.dns), quick_scale),
        Command::Compare(c) => (Some(c), None, None, None),
        Command::Alone(a) => (None, Some(a), None, None),
        Command::Dns(d) => (None, None, Some(d), None),
        Command::Scale(s) => (None, None, None, Some(s)),
        Command::Memory(_) => (None, None, None, None),
        Command::Cleanup | Command::Idle(_) => unreachable!("handled above"),
    };
    let started = Instant::now();
    let mut report = String::new();
    writeln!(report, "{}", machine(&tools))?;
    print!("{report}");

    let run = Run::new()?;
    if let Some(c) = cmp {
        let ns = if !c.n.is_empty() {
            c.n.clone()
        } else if common.quick {
            vec![50]
        } else {
            vec![100, 1000]
        };
        let kinds = if c.methods.is_empty() {
            Kind::ALL.to_vec()
        } else {
            c.methods
                .iter()
                .map(|m| Kind::parse(m))
                .collect::<Result<Vec<_>>>()?
        };
        for &k in &kinds {
            match k {
                Kind::Cni => {
                    methods::require(&tools.cni_dir.join("bridge"), "containernetworking-plugins")?
                }
                Kind::CniPortmap => {
                    for p in ["bridge", "portmap"] {
                        methods::require(&tools.cni_dir.join(p), "containernetworking-plugins")?
                    }
                }
                Kind::WeftCni => {
                    methods::require(&tools.weft_cni, "weft-cni (cargo build -p weft --bins)")?
                }
                Kind::Netavark => methods::require(&tools.netavark, "netavark")?,
                _ => {}
            }
        }
        for n in ns {
            eprintln!("comparison at N={n}: {}", names(&kinds));
            let load = loadavg();
            // Each N in a fresh scratch area, so one N's leftovers cannot weigh on the next.
            let sub = Run::new()?;
            let gap = Duration::from_millis(c.gap_ms);
            let result = compare::compare(&sub, &tools, &kinds, n, gap).await?;
            drop(sub);
            let mut s = String::new();
            writeln!(
                s,
                "### Comparison at N = {n}\n\nInterleaved round-robin; each method in its own \
                 scratch host namespace{}; load average before: {load}, after: {}; wall {} s.\n",
                if gap.is_zero() {
                    String::new()
                } else {
                    format!(
                        "; {} ms with nothing sent by the bench before each timed connect and \
                         disconnect (the other rows back to back)",
                        c.gap_ms
                    )
                },
                loadavg(),
                secs(result.wall)
            )?;
            writeln!(s, "{}", result.table().render())?;
            // Issue 11's target is for calls back to back.
            if let Some(v) = result.cni_verdict().filter(|_| gap.is_zero()) {
                writeln!(s, "{v}\n")?;
            }
            if let Some(v) = result.floor_verdict() {
                writeln!(s, "{v}\n")?;
            }
            print!("{s}");
            report.push_str(&s);
            save(&common, &report)?;
        }
    }
    if let Some(a) = alone {
        run_alone(&run, &tools, &a, &common, &mut report).await?;
    }
    if let Some(d) = dns {
        eprintln!("dns: weft's resolver against aardvark-dns");
        run_dns(&tools, &d, &common, &mut report).await?;
    }
    if let Some(a) = scale {
        run_scale(&tools, &a, &common, &mut report).await?;
    }
    if let Some(m) = memory_args {
        let s = run_memory(&run, &tools, &m, common.quick).await?;
        print!("{s}");
        report.push_str(&s);
        save(&common, &report)?;
    }
    drop(run);
    let s = format!("Total bench time {} s.\n", secs(started.elapsed()));
    print!("{s}");
    report.push_str(&s);
    save(&common, &report)?;
    if STOP.load(Ordering::Relaxed) {
        bail!("interrupted");
    }
    Ok(())
}

/// Writes the report so far to `--report`, if given.
fn save(common: &Common, report: &str) -> Result<()> {
    if let Some(path) = &common.report {
        std::fs::write(path, report).with_context(|| format!("write {}", path.display()))?;
    }
    Ok(())
}

fn names(kinds: &[Kind]) -> String {
    kinds
        .iter()
        .map(|k| k.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs the weft-alone suite, printing its section and adding it to `report` (saved after
/// each benchmark).
async fn run_alone(
    run: &Run,
    tools: &Tools,
    a: &AloneArgs,
    common: &Common,
    report: &mut String,
) -> Result<()> {
    let quick = common.quick;
    let connects = a.connects.unwrap_or(if quick { 200 } else { 1000 });
    let drift_n = a.drift.unwrap_or(if quick { 10 } else { 20 });
    let port_samples = a.port_samples.unwrap_or(if quick { 10 } else { 20 });
    let rss_n = a.rss_endpoints.unwrap_or(if quick { 0 } else { 10_000 });
    let mut emit = |s: String| {
        print!("{s}");
        report.push_str(&s);
        // Keep what was measured even if a later benchmark fails.
        let _ = save(common, report);
    };
    emit("### weft alone\n\n".into());

    eprintln!("weft alone: {connects} connects from {} clients", a.clients);
    let mut d = alone::Daemon::start(run, &tools.weftd).await?;
    let conc = alone::concurrent(run, &mut d, connects, a.clients).await?;
    emit(format!(
        "**Concurrent connects.** {} connects to weft from {} clients (each its own connection) \
         against {} serial connects at the in-process floor. Target: the concurrent ones finish \
         sooner: {} ({} s vs {} s). The floor's connects from {} in-process tasks at once, the \
         kernel work as concurrent as weft's with nothing of weft's, took {} s.\n\n{}\n",
        conc.n,
        conc.clients,
        conc.n,
        verdict(conc.weft_wall < conc.floor_wall),
        secs(conc.weft_wall),
        secs(conc.floor_wall),
        conc.clients,
        secs(conc.floor_conc_wall),
        conc.table().render()
    ));

    eprintln!(
        "weft alone: converged restart with {} endpoints",
        d.endpoints
    );
    let rs = alone::restart(&mut d).await?;
    emit(format!(
        "**Converged restart** with {} endpoints. After a start, weftd shows every object \
         that was Ready as Pending until its first reconcile has checked the kernel, so the \
         first list with everything Ready is when the re-check is done; the start-up \
         reconcile (every object reconciled once, queue empty) is shown too. Target: Ready in \
         <= 1 s with 0 kernel writes: {} (reconciled in {} s, first all-Ready list at {} s; \
         {} kernel writes then, {} 3 s later).\n\n{}\n",
        rs.endpoints,
        verdict(rs.to_reconciled.max(rs.to_ready).as_secs_f64() <= 1.0 && rs.writes_later == 0),
        secs(rs.to_reconciled),
        secs(rs.to_ready),
        rs.writes_at_done,
        rs.writes_later,
        rs.table().render()
    ));

    eprintln!("weft alone: drift repair x{drift_n}");
    let dr = alone::drift(run, &mut d, drift_n).await?;
    emit(format!(
        "**Drift repair**: `eth0` of an endpoint deleted behind weftd's back (one `RTM_DELLINK`, \
         what `ip link del` sends; it takes the pair), timed from the delete until `eth0` is \
         back, up, with its address and default route; polled every 1 ms from the bench; \
         {} endpoints present. No target in issue 5; README says \"within about a second\".\n\n{}\n",
        d.endpoints,
        dr.table().render()
    ));

    eprintln!("weft alone: published ports, 10 vs {}", a.large_ports);
    let p = alone::ports(run, &tools.weftd, 10, a.large_ports, port_samples).await?;
    let port_ratio =
        p.weft_port_large.p50().as_secs_f64() / p.weft_port_small.p50().as_secs_f64().max(1e-9);
    let fw_ratio = p.fw_large.p50().as_secs_f64() / p.fw_small.p50().as_secs_f64().max(1e-9);
    let eph_ratio =
        p.weft_eph_large.p50().as_secs_f64() / p.weft_eph_small.p50().as_secs_f64().max(1e-9);
    emit(format!(
        "**Published-port add** at {} vs {} existing mappings ({} samples each; both sizes \
         side by side, two weftds and two scratch firewalls, interleaved sample by sample; end \
         to end a port add is a Connect of a new namespace with one published port, since the \
         API adds ports only with a Connect; a Connect without ports in the same state is shown \
         for comparison; the scratch hosts' ip_local_port_range is {}-{}, which holds the \
         existing mappings, so a port left out is picked among them). Target: the add at {} \
         costs at most 1.2x the add at {}: end to end {} ({:.2}x), with the host port left out \
         {} ({:.2}x), kernel layer {} ({:.2}x).\n\n{}\n",
        p.small,
        p.large,
        port_samples,
        alone::EPHEMERAL_RANGE.0,
        alone::EPHEMERAL_RANGE.1,
        p.large,
        p.small,
        verdict(port_ratio <= 1.2),
        port_ratio,
        verdict(eph_ratio <= 1.2),
        eph_ratio,
        verdict(fw_ratio <= 1.2),
        fw_ratio,
        p.table().render()
    ));
    eprintln!("weft alone: Connect and Disconnect taken apart");
    let b = alone::breakdown(&mut d, port_samples).await?;
    emit(format!(
        "**Where a Connect's time goes**, seen from the client: the same call doing less each \
         time ({port_samples} serial samples each, 60 ms pauses so background reconciles do not \
         overlap).\n\n{}\n",
        b.table().render()
    ));
    eprintln!(
        "weft alone: {} disconnects from {} clients",
        d.endpoints, a.clients
    );
    let conc_n = d.endpoints;
    let dc = alone::disconnects(&mut d, a.clients).await?;
    emit(format!(
        "**Concurrent disconnects.** The {} endpoints of the concurrent connects, disconnected \
         from {} clients (each its own connection), against {} serial disconnects and \
         connects at the in-process floor; and the mass disconnect's veths, from the first \
         Disconnect until the scratch host's /proc/net/dev lists none of their host ends \
         (read again 10 ms after each read, or twice as long as the read took, once the last \
         Disconnect has answered, then one request that waits for the kernel's RTNL lock, \
         which the last delete holds after its veths leave that list). Targets: the \
         concurrent disconnects finish sooner than the floor's serial connects: {} ({} s vs \
         {} s; the floor's serial disconnects {} s); no veth left within 2 s: {} ({}).\n\n{}\n",
        dc.n,
        dc.clients,
        conc.n,
        verdict(dc.wall < conc.floor_wall),
        secs(dc.wall),
        secs(conc.floor_wall),
        secs(conc.floor_disc_wall),
        verdict(dc.veths_gone.is_some_and(|g| g.as_secs_f64() <= 2.0)),
        dc.veths_gone
            .map(|g| format!("{} s", secs(g)))
            .unwrap_or_else(|| format!("{} still there", dc.veths_left)),
        dc.table(&conc).render()
    ));
    d.weftd.check_alive()?;
    let mut t = Table::new(["weftd", "VmRSS MiB", "open fds"]);
    t.row([
        "idle, just started".to_string(),
        mib(d.rss_idle),
        d.fds_idle.to_string(),
    ]);
    t.row([
        format!("after {conc_n} concurrent connects"),
        mib(conc.rss_kib),
        conc.fds.to_string(),
    ]);
    t.row([
        format!("after the restart with {conc_n} endpoints"),
        mib(rs.rss_kib),
        rs.fds.to_string(),
    ]);
    drop(d);
    let mut rss_text = format!(
        "**Memory** (VmRSS of /proc/<pid>/status). Target: at most 50 MB at 10,000 endpoints.\n\n{}\n",
        t.render()
    );
    if rss_n > 0 {
        eprintln!("weft alone: RSS climbing to {rss_n} endpoints");
        let r = alone::rss(run, &tools.weftd, rss_n, 1000, 1000).await?;
        let last = r.readings.last().copied().unwrap_or_default();
        let _ = write!(
            rss_text,
            "Climb to {} endpoints ({} reached in {} s; networks of 1,000 endpoints, 4 \
             clients){}: {} at {} endpoints ({} MiB = {:.1} MB).\n\n{}\n",
            r.asked,
            r.reached,
            secs(r.wall),
            r.stopped
                .as_ref()
                .map(|e| format!(", stopped early: {e}"))
                .unwrap_or_default(),
            if r.reached >= 10_000 {
                verdict(last.1 as f64 * 1024.0 <= 50e6)
            } else {
                "not measured at 10,000".to_string()
            },
            last.0,
            mib(last.1),
            last.1 as f64 * 1024.0 / 1e6,
            r.table().render()
        );
        let _ = write!(
            rss_text,
            "Each step of the climb (weftd's periodic resync, every 30 s, queues every object \
             again; the queue depth shows how much work new connects wait behind):\n\n{}\n",
            r.steps_table().render()
        );
    } else {
        rss_text.push_str("(No climb to 10,000 endpoints in this run: --rss-endpoints 0.)\n\n");
    }
    emit(rss_text);
    Ok(())
}

/// Runs the growth benchmark, printing its section and adding it to `report` (saved).
async fn run_scale(
    tools: &Tools,
    a: &ScaleArgs,
    common: &Common,
    report: &mut String,
) -> Result<()> {
    let quick = common.quick;
    let sizes = if !a.sizes.is_empty() {
        a.sizes.clone()
    } else if quick {
        vec![20]
    } else {
        vec![100, 1000, 5000, 10_000]
    };
    let o = scale::Opts {
        watch_at: a
            .watch_at
            .unwrap_or_else(|| sizes.last().copied().unwrap_or(0)),
        sizes,
        idle_secs: a.idle_secs.unwrap_or(if quick { 1 } else { 60 }),
        samples: a.scale_samples.unwrap_or(if quick { 3 } else { 50 }),
        later: Duration::from_secs(if quick { 1 } else { 3 }),
        watches: a.watches.unwrap_or(if quick { 20 } else { 200 }),
    };
    eprintln!("scale: sizes {:?}", o.sizes);
    let load = loadavg();
    let t0 = Instant::now();
    let run = Run::new()?;
    let r = scale::run(&run, &tools.weftd, &o).await;
    drop(run);
    let r = r?;
    let s = r.render(&load, &loadavg(), t0.elapsed());
    print!("{s}");
    report.push_str(&s);
    save(common, report)
}

/// Runs the memory benchmark ([`alone::memory`]) and returns its section.
async fn run_memory(run: &Run, tools: &Tools, m: &MemoryArgs, quick: bool) -> Result<String> {
    let endpoints = m.endpoints.unwrap_or(if quick { 100 } else { 10_000 });
    let watches = m.watches.unwrap_or(if quick { 20 } else { 200 });
    let r = alone::memory(run, &tools.weftd, endpoints, watches).await?;
    // The item's two readings (as the growth table's verdict takes them too), and the highest
    // of every reading, the climb's last and the one after a list included.
    let item = r
        .after_resync
        .into_iter()
        .chain(r.after_restart.map(|(k, _)| k))
        .max();
    let top = item
        .into_iter()
        .chain(r.after_list.map(|(k, _)| k))
        .chain(r.climb.readings.last().map(|x| x.1))
        .max()
        .unwrap_or(0);
    let per = r
        .watches
        .iter()
        .map(|w| w.per_stream_kib())
        .fold(0.0, f64::max);
    Ok(format!(
        "### weftd's memory\n\nVmRSS of /proc/<pid>/status, read once weftd's queue has been \
         empty for 1 s. Climb to {} endpoints in networks of 1,000 (4 clients){}. Target: at \
         most 50 MiB at 10,000 endpoints, after a resync and after a restart: {} (the higher \
         of the two {} MiB; the highest of all readings, the climb's last included, {} MiB); \
         at most 64 KiB per idle Watch stream: {} (highest {:.0} KiB).\n\n{}\n\
         **Idle Watch streams** (half WatchNamespaces, half WatchNetworks, 50 per connection; \
         each then had to deliver an event):\n\n{}\n",
        r.climb.asked,
        r.climb
            .stopped
            .as_ref()
            .map(|e| format!(", stopped early at {}: {e}", r.climb.reached))
            .unwrap_or_default(),
        match item {
            Some(kib) if r.climb.reached >= 10_000 => verdict(kib <= 50 * 1024),
            _ => "not measured at 10,000".to_string(),
        },
        item.map_or_else(|| "–".to_string(), mib),
        mib(top),
        if r.watches.is_empty() {
            "not measured".to_string()
        } else {
            verdict(per <= 64.0)
        },
        per,
        r.table().render(),
        r.watch_table().render()
    ))
}

/// Runs the DNS benchmark, printing its section and adding it to `report` (saved).
async fn run_dns(tools: &Tools, a: &DnsArgs, common: &Common, report: &mut String) -> Result<()> {
    let quick = common.quick;
    let servers = if a.servers.is_empty() {
        vec![dns::Server::Weft, dns::Server::Aardvark]
    } else {
        a.servers
            .iter()
            .map(|s| dns::Server::parse(s))
            .collect::<Result<Vec<_>>>()?
    };
    let o = dns::Opts {
        endpoints: a.endpoints.unwrap_or(if quick { 10 } else { 100 }),
        seconds: a.seconds.unwrap_or(if quick { 1 } else { 10 }),
        api_calls: a.api_calls.unwrap_or(if quick { 50 } else { 300 }),
        aardvark: a
            .aardvark
            .clone()
            .unwrap_or_else(|| PathBuf::from("/usr/lib/podman/aardvark-dns")),
        servers,
    };
    methods::require(Path::new("/usr/bin/dnsperf"), "dnsperf")?;
    let load = loadavg();
    let run = Run::new()?;
    let r = dns::run(&run, &tools.weftd, &o).await?;
    drop(run);
    let mut s = format!(
        "### DNS: weft against aardvark-dns\n\n{} endpoints, their namespace names and aliases \
         the records of both resolvers; dnsperf (`-v`, defaults otherwise) {} s per case and \
         resolver from an endpoint's position, interleaved; p50/p99 from dnsperf's per-answer \
         latencies; load average before: {load}, after: {}.\n\n{}\n**weftd's API latency** \
         (GetSystemInfo on its Unix socket, one call every 5 ms) idle and during each storm; \
         during aardvark-dns's, weftd serves no query: those rows are the control for the \
         busy CPU alone:\n\n{}\n",
        r.records,
        o.seconds,
        loadavg(),
        r.table().render(),
        r.api_table().render()
    );
    for line in r.counted() {
        let _ = writeln!(s, "- {line}.");
    }
    for (what, met) in r.verdicts() {
        let v = met.map_or_else(|| "not measured".to_string(), verdict);
        let _ = writeln!(s, "- Target, {what}: {v}");
    }
    s.push('\n');
    print!("{s}");
    report.push_str(&s);
    save(common, report)
}

fn verdict(met: bool) -> String {
    if met { "**met**" } else { "**missed**" }.to_string()
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The machine and the tools, as a markdown paragraph.
fn machine(tools: &Tools) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|k| format!("{:.0} GiB", k as f64 / 1024.0 / 1024.0))
        .unwrap_or_default();
    let pkg = |p: &str| {
        std::process::Command::new("dpkg-query")
            .args(["-W", "-f=${Version}", p])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| format!("{p} {}", String::from_utf8_lossy(&o.stdout)))
            .unwrap_or_else(|| format!("{p} (not installed)"))
    };
    let build = if tools.weftd.to_string_lossy().contains("/debug/") {
        "debug build (numbers not representative)"
    } else {
        "release build"
    };
    format!(
        "## Machine\n\n- {nproc} CPUs, {cpu}, {mem} RAM; kernel {kernel}; load average at start: {}\n\
         - weftd: {} ({build})\n\
         - peers: {}, {}, {}, {}, {}, {}, {}\n\
         - method: each method in its own scratch host network namespace, all interleaved \
         round-robin per iteration; weft end to end over gRPC on the Unix socket, waiting for \
         Ready; times are wall-clock per operation as the caller sees it.\n",
        loadavg(),
        tools.weftd.display(),
        pkg("iproute2"),
        pkg("nftables"),
        pkg("iptables"),
        pkg("containernetworking-plugins"),
        pkg("netavark"),
        pkg("aardvark-dns"),
        pkg("dnsperf"),
    )
}
