//! weft against the floor (in-process, and behind gRPC), ip, CNI and netavark (and weft-cni
//! against bridge+portmap), in one run, interleaved.
//!
//! Every method gets its own scratch host namespace and does the same work. Iteration `i`
//! visits every method once, starting at a different one each time (round-robin: `i`, `i+1`,
//! ... modulo the number of methods), so machine noise lands on all of them alike:
//! 1. warm-up (untimed): one endpoint per method, created and connected, left connected;
//! 2. for i in 0..N, for each method: create namespace i, connect it (both timed);
//! 3. check endpoints 0 and N-1 of each method (address, default route, ping the gateway);
//! 4. for i in 0..N, for each method: disconnect i, delete namespace i (both timed).
//!
//! So each method's host holds 1 to N+1 endpoints during the run: the numbers are "at N".

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

use crate::{
    methods::{Kind, Method, Tools},
    sandbox::{Run, check_stop},
    stats::{Samples, Table, ms, ratio, secs},
};

/// The four timed operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    /// Namespace create.
    NsCreate,
    /// Connect.
    Connect,
    /// Disconnect.
    Disconnect,
    /// Namespace delete.
    NsDelete,
    /// weft-cni VERSION: starting the plugin's process, no gRPC.
    Exec,
    /// weft-cni STATUS: the process, a gRPC connect to weftd and one GetNetwork.
    Status,
}

impl Op {
    /// Every operation, in table order.
    pub const ALL: [Op; 6] = [
        Op::Connect,
        Op::Disconnect,
        Op::NsCreate,
        Op::NsDelete,
        Op::Exec,
        Op::Status,
    ];

    /// The operation's name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Op::NsCreate => "ns create",
            Op::Connect => "connect",
            Op::Disconnect => "disconnect",
            Op::NsDelete => "ns delete",
            Op::Exec => "VERSION (process only)",
            Op::Status => "STATUS (process + gRPC connect + 1 call)",
        }
    }
}

/// The samples of one comparison at one N.
#[derive(Debug, Default)]
pub struct Comparison {
    /// Samples per (method, operation).
    pub samples: BTreeMap<(Kind, Op), Samples>,
    /// Wall time of the whole comparison (setup and checks included).
    pub wall: std::time::Duration,
}

/// The warm-up endpoint's index (outside 0..N).
const WARM: usize = 60_000;

/// Runs the comparison at `n` for `kinds`.
/// `gap` of quiet (nothing sent by the bench) precedes each timed connect and disconnect.
pub async fn compare(
    run: &Run,
    tools: &Tools,
    kinds: &[Kind],
    n: usize,
    gap: Duration,
) -> Result<Comparison> {
    let t0 = Instant::now();
    let mut methods: Vec<(Kind, Method)> = Vec::new();
    for &k in kinds {
        let m = Method::setup(k, run, tools)
            .await
            .with_context(|| format!("set up {}", k.name()))?;
        methods.push((k, m));
    }
    let mut out = Comparison::default();
    for (k, m) in &mut methods {
        m.ns_create(WARM)
            .await
            .with_context(|| format!("{}: warm-up namespace", k.name()))?;
        m.connect(WARM)
            .await
            .with_context(|| format!("{}: warm-up connect", k.name()))?;
    }
    let count = methods.len();
    let progress = |phase: &str, i: usize| {
        if n >= 10 && (i + 1).is_multiple_of((n / 10).max(1)) {
            eprintln!("  N={n} {phase}: {}/{n}", i + 1);
        }
    };
    for i in 0..n {
        for j in 0..count {
            check_stop()?;
            let (k, m) = &mut methods[(i + j) % count];
            let t = Instant::now();
            m.ns_create(i)
                .await
                .with_context(|| format!("{}: create namespace {i}", k.name()))?;
            let d = t.elapsed();
            out.samples.entry((*k, Op::NsCreate)).or_default().push(d);
            quiet(gap).await;
            let t = Instant::now();
            m.connect(i)
                .await
                .with_context(|| format!("{}: connect {i}", k.name()))?;
            let d = t.elapsed();
            out.samples.entry((*k, Op::Connect)).or_default().push(d);
            if let Method::WeftCni(w) = m {
                let [exec, status] = w
                    .probes(i)
                    .await
                    .with_context(|| format!("{}: VERSION and STATUS {i}", k.name()))?;
                out.samples.entry((*k, Op::Exec)).or_default().push(exec);
                out.samples
                    .entry((*k, Op::Status))
                    .or_default()
                    .push(status);
            }
        }
        progress("create+connect", i);
    }
    for (k, m) in &mut methods {
        m.check_alive()?;
        for i in [0, n.saturating_sub(1)] {
            if i < n {
                m.verify(*k, i)?;
                m.check_port(i)
                    .await
                    .with_context(|| format!("{}: port mapping", k.name()))?;
            }
        }
    }
    for i in 0..n {
        for j in 0..count {
            check_stop()?;
            let (k, m) = &mut methods[(i + j) % count];
            quiet(gap).await;
            let t = Instant::now();
            m.disconnect(i)
                .await
                .with_context(|| format!("{}: disconnect {i}", k.name()))?;
            let d = t.elapsed();
            out.samples.entry((*k, Op::Disconnect)).or_default().push(d);
            let t = Instant::now();
            m.ns_delete(i)
                .await
                .with_context(|| format!("{}: delete namespace {i}", k.name()))?;
            let d = t.elapsed();
            out.samples.entry((*k, Op::NsDelete)).or_default().push(d);
        }
        progress("disconnect+delete", i);
    }
    for (_, m) in &mut methods {
        m.check_alive()?;
    }
    drop(methods);
    out.wall = t0.elapsed();
    Ok(out)
}

/// Waits out `gap` (nothing when zero).
async fn quiet(gap: Duration) {
    if !gap.is_zero() {
        tokio::time::sleep(gap).await;
    }
}

impl Comparison {
    /// The samples of one method and operation.
    pub fn get(&self, k: Kind, op: Op) -> Option<&Samples> {
        self.samples.get(&(k, op)).filter(|s| !s.is_empty())
    }

    /// The table: one row per operation and method; the last column is the method's p50
    /// divided by weft's (above 1: slower than weft).
    pub fn table(&self) -> Table {
        let mut t = Table::new([
            "operation",
            "method",
            "p50 ms",
            "p99 ms",
            "total s",
            "p50 vs weft",
        ]);
        for op in Op::ALL {
            let weft = self.get(Kind::Weft, op).map(Samples::p50);
            for k in Kind::ALL {
                let Some(s) = self.get(k, op) else { continue };
                let name = match (k, op) {
                    (
                        Kind::Cni | Kind::Netavark | Kind::WeftCni | Kind::CniPortmap,
                        Op::NsCreate | Op::NsDelete,
                    ) => {
                        format!("{} (ip netns)", k.name())
                    }
                    (Kind::FloorGrpc, Op::NsCreate | Op::NsDelete) => {
                        format!("{} (in-process)", k.name())
                    }
                    _ => k.name().to_string(),
                };
                t.row([
                    op.name().to_string(),
                    name,
                    ms(s.p50()),
                    ms(s.p99()),
                    secs(s.total()),
                    weft.map(|w| ratio(s.p50(), w))
                        .unwrap_or_else(|| "–".into()),
                ]);
            }
        }
        t
    }
}

impl Comparison {
    /// Issue 14's item 5, when weft and the floor ran: weft's Connect p50 at most 1.25x the
    /// in-process floor's in this run; and, when `floor+grpc` ran, weft's Connect over the
    /// floor's behind gRPC (what is weft's own, not gRPC's).
    pub fn floor_verdict(&self) -> Option<String> {
        let p50 = |k| self.get(k, Op::Connect).map(Samples::p50);
        let (weft, floor) = (p50(Kind::Weft)?, p50(Kind::Floor)?);
        let r = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
        let mut v = format!(
            "Connect p50 (same run): weft {} ms, the in-process floor {} ms = {:.2}x. Target \
             (issue 14, item 5: at most 1.25x): {}.",
            ms(weft),
            ms(floor),
            r(weft, floor),
            if r(weft, floor) <= 1.25 {
                "**met**"
            } else {
                "**missed**"
            }
        );
        if let Some(grpc) = p50(Kind::FloorGrpc) {
            v.push_str(&format!(
                " The floor behind gRPC (a server of its own doing only the floor's work): {} \
                 ms, {:.2}x the floor; weft {:.2}x it.",
                ms(grpc),
                r(grpc, floor),
                r(weft, grpc)
            ));
        }
        Some(v)
    }

    /// issue 11's target, when both weft-cni and cni+portmap ran: weft-cni's ADD and DEL p50
    /// each at most a fifth of bridge+portmap's, in this run.
    pub fn cni_verdict(&self) -> Option<String> {
        let p50 = |k, op| self.get(k, op).map(Samples::p50);
        let add = (
            p50(Kind::WeftCni, Op::Connect)?,
            p50(Kind::CniPortmap, Op::Connect)?,
        );
        let del = (
            p50(Kind::WeftCni, Op::Disconnect)?,
            p50(Kind::CniPortmap, Op::Disconnect)?,
        );
        let r = |(w, c): (std::time::Duration, std::time::Duration)| {
            w.as_secs_f64() / c.as_secs_f64().max(1e-9)
        };
        let (ra, rd) = (r(add), r(del));
        let met = ra <= 0.2 && rd <= 0.2;
        Some(format!(
            "weft-cni vs cni+portmap (same run, p50): ADD {} ms vs {} ms = {ra:.2}x, DEL {} ms \
             vs {} ms = {rd:.2}x. Target (each at most 0.20x): {}.",
            ms(add.0),
            ms(add.1),
            ms(del.0),
            ms(del.1),
            if met { "**met**" } else { "**missed**" }
        ))
    }
}
