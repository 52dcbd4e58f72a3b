//! Prometheus metrics (`--metrics ADDR`): `GET /metrics` on a plain HTTP listener in weftd's
//! own namespace answers in the OpenMetrics text format, encoded by `prometheus-client`.
//!
//! Counters live in memory and a scrape only reads them: the gRPC families here (fed by
//! [`crate::logging::RequestSpanLayer`]), the reconciler's [`crate::reconcile::Stats`] (the
//! same atomics GetSystemInfo reports, plus per-kind families) and the kernel's write count.
//! The object and IPAM gauges come from the store, one query each per scrape.

use std::{sync::Arc, time::Duration};

use prometheus_client::{
    encoding::text::encode,
    metrics::{
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::reconcile::Controller;

/// Label sets: `(name, value)` pairs.
pub type Labels = Vec<(&'static str, String)>;
/// A family of histograms made by [`latency_histogram`].
pub type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// Latency buckets from 0.5 ms to about 16 s, doubling.
pub fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// A new empty [`Histograms`] family.
pub fn histograms() -> Histograms {
    Family::new_with_constructor(latency_histogram)
}

/// The gRPC calls answered: counts by method and code, and latencies by method.
#[derive(Debug)]
pub struct GrpcMetrics {
    /// `weft_grpc_requests_total{method,code}`.
    pub requests: Family<Labels, Counter>,
    /// `weft_grpc_request_duration_seconds{method}`.
    pub duration: Histograms,
    /// The methods labelled so far (at most [`MAX_METHODS`]).
    methods: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// Distinct `method` labels kept; calls to further paths (which only a client making up
/// method names sends) count as `method="other"`, so no client can grow the series unbounded.
pub const MAX_METHODS: usize = 128;

impl Default for GrpcMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            duration: histograms(),
            methods: Default::default(),
        }
    }
}

impl GrpcMetrics {
    /// The `method` label of a call to `path`.
    fn method_label(&self, path: &str) -> String {
        let Ok(mut seen) = self.methods.lock() else {
            return "other".into();
        };
        if seen.contains(path) || (seen.len() < MAX_METHODS && seen.insert(path.to_owned())) {
            path.to_owned()
        } else {
            "other".into()
        }
    }

    /// Records one answered call: its path, its `grpc-status` number and how long it took.
    pub fn observe(&self, path: &str, code: &str, elapsed: Duration) {
        let method = self.method_label(path);
        let method = method.as_str();
        let code = code.parse::<i32>().map_or("UNKNOWN", code_name);
        self.requests
            .get_or_create(&vec![
                ("method", method.to_owned()),
                ("code", code.to_owned()),
            ])
            .inc();
        self.duration
            .get_or_create(&vec![("method", method.to_owned())])
            .observe(elapsed.as_secs_f64());
    }
}

/// The canonical name of a gRPC status code (`OK`, `NOT_FOUND`, ...).
pub fn code_name(code: i32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("UNKNOWN")
}

/// Per-kind reconcile counts and latencies (kept in [`crate::reconcile::Stats`]).
#[derive(Debug)]
pub struct ReconcileMetrics {
    /// `weft_reconciles_total{kind,result}` (`result` is `ok` or `error`).
    pub reconciles: Family<Labels, Counter>,
    /// `weft_reconcile_duration_seconds{kind}`.
    pub duration: Histograms,
}

impl Default for ReconcileMetrics {
    fn default() -> Self {
        Self {
            reconciles: Family::default(),
            duration: histograms(),
        }
    }
}

impl ReconcileMetrics {
    /// Records one reconcile of `kind`.
    pub fn observe(&self, kind: &'static str, ok: bool, elapsed: Duration) {
        let result = if ok { "ok" } else { "error" };
        self.reconciles
            .get_or_create(&vec![
                ("kind", kind.to_owned()),
                ("result", result.to_owned()),
            ])
            .inc();
        self.duration
            .get_or_create(&vec![("kind", kind.to_owned())])
            .observe(elapsed.as_secs_f64());
    }
}

/// Renders every metric, now: the in-memory counters, and the store's object and IPAM
/// gauges (one query each).
pub async fn render(ctl: &Controller, grpc: &GrpcMetrics) -> anyhow::Result<String> {
    use std::sync::atomic::Ordering::Relaxed;
    let mut reg = Registry::with_prefix("weft");
    reg.register(
        "grpc_requests",
        "gRPC calls answered, by method and status code",
        grpc.requests.clone(),
    );
    reg.register(
        "grpc_request_duration_seconds",
        "Time to answer a gRPC call (until the response headers), by method",
        grpc.duration.clone(),
    );
    let stats = ctl.stats();
    reg.register(
        "reconciles",
        "Reconciles run, by kind and result",
        stats.by_kind.reconciles.clone(),
    );
    reg.register(
        "reconcile_duration_seconds",
        "Time one reconcile took, by kind",
        stats.by_kind.duration.clone(),
    );
    let counters = [
        (
            "kernel_writes",
            "Netlink and nftables writes",
            ctl.kernel().writes(),
        ),
        (
            "drift_repairs",
            "Converged objects found changed in the kernel and repaired",
            stats.drift_repairs.load(Relaxed),
        ),
        (
            "orphans_removed",
            "Orphaned kernel objects weft made, removed",
            stats.orphans_removed.load(Relaxed),
        ),
        (
            "check_passes",
            "Bulk checks of the kernel finished: the start-up one, then one per resync period",
            stats.check_passes.load(Relaxed),
        ),
        (
            "check_namespaces_read",
            "Namespaces (and the host) the bulk checks read",
            stats.check_reads.load(Relaxed),
        ),
        (
            "check_namespaces_quiet",
            "Namespaces (and the host) the periodic checks left unread: nothing heard from them since a check found them clean",
            stats.check_quiet.load(Relaxed),
        ),
        (
            "check_host_reads",
            "Bulk checks (start-up and periodic) that read the host namespace: a periodic one leaves it unread, like any namespace, while nothing but weft's own writes was heard from it",
            stats.check_host_reads.load(Relaxed),
        ),
        (
            "reaper_host_dumps",
            "Dumps of every host interface the veth reaper took to check the retired groups before deleting them (one per batch of more than a few retired veths)",
            stats.reaper_host_dumps.load(Relaxed),
        ),
        (
            "check_echoes_queued",
            "Objects the periodic checks queued because the monitor took changes to them for the echo of their own reconcile and did not count them as heard",
            stats.check_echoes.load(Relaxed),
        ),
        (
            "dns_queries",
            "DNS queries the resolver received",
            stats.dns_queries.load(Relaxed),
        ),
        (
            "dns_answers",
            "DNS queries answered from weft's records (NXDOMAIN and NODATA included)",
            stats.dns_answers.load(Relaxed),
        ),
        (
            "dns_forwards",
            "DNS queries forwarded upstream",
            stats.dns_forwards.load(Relaxed),
        ),
        (
            "dns_index_loads",
            "Times the resolver loaded every network and endpoint into its index: at start-up, then after a burst of changes too large to read one by one or after change events it missed (status changes alone, such as a restart's confirmations, cost none)",
            stats.dns_index_loads.load(Relaxed),
        ),
    ];
    for (name, help, value) in counters {
        reg.register(name, help, ConstCounter::new(value));
    }
    let depth = Gauge::<i64>::default();
    depth.set(i64::try_from(ctl.queue_depth()).unwrap_or(i64::MAX));
    reg.register("queue_depth", "Keys waiting in the work queue", depth);

    // The gauges need the store; the counters above do not, and are served without them
    // when it fails.
    let snap = match ctl.store().metrics_snapshot().await {
        Ok(snap) => snap,
        Err(e) => {
            tracing::warn!(error = %e, "metrics: reading the object and IPAM gauges failed");
            Default::default()
        }
    };
    let objects = Family::<Labels, Gauge>::default();
    for (kind, phase, n) in snap.objects {
        objects
            .get_or_create(&vec![("kind", kind), ("phase", phase)])
            .set(n);
    }
    reg.register(
        "objects",
        "Objects in the store, by kind and phase",
        objects,
    );
    let leases = Family::<Labels, Gauge>::default();
    let capacity = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    for net in snap.networks {
        let l = vec![("network", net.name)];
        leases.get_or_create(&l).set(net.leases);
        capacity.get_or_create(&l).set(net.capacity);
    }
    reg.register("ipam_leases", "Addresses leased, by network", leases);
    reg.register(
        "ipam_capacity",
        "Addresses that can be leased in all, by network",
        capacity,
    );
    let mut out = String::new();
    encode(&mut out, &reg)?;
    Ok(out)
}

/// The same metrics in the Prometheus text format 0.0.4 (for clients that do not ask for
/// OpenMetrics, and for `promtool check metrics`): a counter's `# HELP` and `# TYPE` name
/// its samples' `_total` name, and OpenMetrics' `# UNIT` and `# EOF` lines go.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let rest = line
            .strip_prefix("# HELP ")
            .map(|r| ("# HELP ", r))
            .or_else(|| line.strip_prefix("# TYPE ").map(|r| ("# TYPE ", r)));
        match rest.and_then(|(tag, r)| Some((tag, r.split_once(' ')?))) {
            Some((tag, (name, tail))) if counters.contains(name) => {
                out.push_str(&format!("{tag}{name}_total {tail}\n"));
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// Serves `GET /metrics` on `listener` until `stop` resolves: one request per connection
/// (`Connection: close`), anything else is 404.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ctl: Controller,
    grpc: Arc<GrpcMetrics>,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => {
                let Ok((conn, _)) = accepted else { continue };
                let (ctl, grpc) = (ctl.clone(), grpc.clone());
                tokio::spawn(async move {
                    let answer = tokio::time::timeout(Duration::from_secs(10), answer(conn, &ctl, &grpc));
                    if let Ok(Err(e)) = answer.await {
                        tracing::debug!(error = %e, "metrics request failed");
                    }
                });
            }
        }
    }
}

/// Reads one request head and answers it.
async fn answer(
    mut conn: tokio::net::TcpStream,
    ctl: &Controller,
    grpc: &GrpcMetrics,
) -> anyhow::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf).await?;
        if n == 0 || head.len() > 16 * 1024 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, path) = (parts.next(), parts.next());
    // Prometheus asks for OpenMetrics in its Accept header; curl and promtool get 0.0.4.
    let openmetrics = String::from_utf8_lossy(&head)
        .to_ascii_lowercase()
        .lines()
        .any(|l| l.starts_with("accept:") && l.contains("application/openmetrics-text"));
    let path = path.map(|p| p.split(|&b| b == b'?').next().unwrap_or(p));
    let (status, ctype, body) = match (method, path) {
        (Some(b"GET"), Some(b"/metrics")) => match render(ctl, grpc).await {
            Ok(text) if openmetrics => (
                "200 OK",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                text,
            ),
            Ok(text) => (
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                to_prometheus_text(&text),
            ),
            Err(e) => (
                "500 Internal Server Error",
                "text/plain",
                format!("{e:#}\n"),
            ),
        },
        _ => (
            "404 Not Found",
            "text/plain",
            "only GET /metrics is served\n".into(),
        ),
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(reply.as_bytes()).await?;
    conn.shutdown().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_their_canonical_names() {
        assert_eq!(code_name(0), "OK");
        assert_eq!(code_name(5), "NOT_FOUND");
        assert_eq!(code_name(16), "UNAUTHENTICATED");
        assert_eq!(code_name(17), "UNKNOWN");
        assert_eq!(code_name(-1), "UNKNOWN");
    }

    #[tokio::test]
    async fn counters_are_served_without_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("weft.db"))
            .await
            .unwrap();
        let k = Arc::new(crate::kernel::fake::FakeKernel::new(
            dir.path().join("netns"),
        ));
        let spec = crate::model::NamespaceSpec {
            name: "one".into(),
            labels: Default::default(),
            adopted_path: None,
        };
        store.create_namespace(&spec, None, false).await.unwrap();
        let ctl = Controller::new(store.clone(), k);
        ctl.stats()
            .dns_queries
            .fetch_add(7, std::sync::atomic::Ordering::Relaxed);
        ctl.stats()
            .by_kind
            .observe("network", true, Duration::from_millis(3));
        let grpc = GrpcMetrics::default();
        grpc.observe(
            "/weft.v1.NetworkService/Connect",
            "6",
            Duration::from_millis(2),
        );
        let open = render(&ctl, &grpc).await.unwrap();
        assert!(
            open.contains("weft_objects{kind=\"namespace\",phase=\"pending\"} 1"),
            "{open}"
        );
        // With the database closed, every counter is still there, and only the gauges go.
        store.close().await;
        let closed = render(&ctl, &grpc).await.unwrap();
        for line in [
            "weft_dns_queries_total 7",
            "weft_reconciles_total{kind=\"network\",result=\"ok\"} 1",
            "weft_reconcile_duration_seconds_count{kind=\"network\"} 1",
            "weft_grpc_requests_total{method=\"/weft.v1.NetworkService/Connect\",code=\"ALREADY_EXISTS\"} 1",
            "weft_kernel_writes_total 0",
            "weft_queue_depth 0",
        ] {
            assert!(closed.contains(line), "{line} missing:\n{closed}");
        }
        assert!(!closed.contains("weft_objects{"), "{closed}");
    }

    #[test]
    fn made_up_methods_beyond_the_cap_count_as_other() {
        let g = GrpcMetrics::default();
        for i in 0..MAX_METHODS + 5 {
            g.observe(&format!("/x.Y/M{i}"), "12", Duration::ZERO);
        }
        g.observe("/x.Y/M0", "0", Duration::ZERO);
        let other = vec![
            ("method", "other".to_owned()),
            ("code", "UNIMPLEMENTED".to_owned()),
        ];
        assert_eq!(g.requests.get_or_create(&other).get(), 5);
        let first = vec![("method", "/x.Y/M0".to_owned()), ("code", "OK".to_owned())];
        assert_eq!(g.requests.get_or_create(&first).get(), 1);
    }

    #[test]
    fn the_004_text_names_counters_by_their_samples() {
        let om = "# HELP weft_x Things.\n# TYPE weft_x counter\nweft_x_total 3\n\
                  # HELP weft_d Seconds.\n# TYPE weft_d gauge\n# UNIT weft_d seconds\nweft_d 1\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP weft_x_total Things.\n# TYPE weft_x_total counter\nweft_x_total 3\n\
             # HELP weft_d Seconds.\n# TYPE weft_d gauge\nweft_d 1\n"
        );
    }
}
