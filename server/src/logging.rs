//! Logging: the format of weftd's log lines (`--log-format text|json`) and the span every
//! gRPC call runs in, so each line a call logs names its method and request id.
//!
//! `json` writes one JSON object per line (tracing-subscriber's JSON formatter): `timestamp`,
//! `level`, `target`, `fields.message` and the other fields of the event, `span` (the
//! innermost) and `spans` (all of them, outermost first) with their fields: `grpc` spans carry
//! `method` (the gRPC path) and `request_id`, `reconcile` spans `kind`, `key` (the object's
//! uid), `worker` and `attempt`. `text` is the human form. Without the flag weftd writes text
//! when stderr is a terminal and JSON otherwise (journald, a container runtime, a file), so
//! what a log shipper reads is structured unless someone is watching.

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use tonic::codegen::http;
use tower::Service;
use tracing::Instrument;

use crate::{
    layer::{ShareLayer, Shared},
    metrics::GrpcMetrics,
};

/// The format of the log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

impl LogFormat {
    /// The default: text on a terminal, JSON otherwise.
    pub fn default_for_stderr() -> LogFormat {
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            LogFormat::Text
        } else {
            LogFormat::Json
        }
    }
}

/// The handle SIGHUP changes the log filter through.
#[derive(Clone)]
pub struct LevelHandle(
    tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>,
);

impl std::fmt::Debug for LevelHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LevelHandle")
    }
}

impl LevelHandle {
    /// Puts `filter` in force.
    pub fn set(&self, filter: tracing_subscriber::EnvFilter) -> Result<(), String> {
        self.0
            .reload(filter)
            .map_err(|e| format!("changing the log filter: {e}"))
    }
}

/// The filter a `log_level` directive names (with hickory's chatter quieted, as at start-up);
/// an error names the key when it is not a filter.
pub fn filter_from(directive: &str) -> Result<tracing_subscriber::EnvFilter, String> {
    tracing_subscriber::EnvFilter::try_new(directive)
        .map(crate::dns::quiet_hickory)
        .map_err(|e| format!("log_level {directive:?} is not a log filter (e.g. \"info\" or \"weftd=debug,info\"): {e}"))
}

/// The filter without `RUST_LOG` or `log_level`: `info`.
pub fn default_filter() -> tracing_subscriber::EnvFilter {
    crate::dns::quiet_hickory("info".into())
}

/// Installs the global subscriber: lines on stderr in `format`, filtered by `RUST_LOG`, else
/// by `level` (the file's `log_level`), else `info`. Returns the handle SIGHUP changes the
/// filter through; a `level` that is not a filter is an error.
pub fn init(format: LogFormat, level: Option<&str>) -> Result<LevelHandle, String> {
    use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt};
    let filter = match (tracing_subscriber::EnvFilter::try_from_default_env(), level) {
        (Ok(env), _) => crate::dns::quiet_hickory(env),
        (Err(_), Some(level)) => filter_from(level)?,
        (Err(_), None) => default_filter(),
    };
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Json => registry
            .with(fmt.json().with_current_span(true).with_span_list(true))
            .init(),
        LogFormat::Text => registry
            .with(fmt.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())))
            .init(),
    }
    Ok(LevelHandle(handle))
}

/// The header a client may set to choose a call's request id (at most 64 printable ASCII
/// characters); weftd makes one up otherwise.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The request id of a call: the client's `x-request-id`, or 16 random hex digits.
fn request_id<B>(req: &http::Request<B>) -> String {
    req.headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| format!("{:016x}", rand::random::<u64>()), str::to_owned)
}

/// The tower layer that runs every call in a `grpc` span (`method`, `request_id`), logs, at
/// debug, when it answered, and counts it in the `--metrics` families.
///
/// The status code is the response headers' `grpc-status`: set there on errors (a
/// trailers-only answer); a success carries it in the trailers, so a call whose headers have
/// none counts as `OK` (a stream that fails after its first message counts as `OK` too).
/// The latency is until the response headers.
pub type RequestSpanLayer = ShareLayer<GrpcMetrics>;

/// The service [`RequestSpanLayer`] makes.
pub type RequestSpan<S> = Shared<S, GrpcMetrics>;

impl<S, B, R> Service<http::Request<B>> for Shared<S, GrpcMetrics>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let span = tracing::info_span!(
            "grpc",
            method = req.uri().path(),
            request_id = request_id(&req)
        );
        let started = Instant::now();
        let method = req.uri().path().to_owned();
        let metrics = self.value.clone();
        let call = span.in_scope(|| self.inner.call(req));
        // Background work gives way while it is in flight (crate::busy).
        let entered = crate::busy::REQUESTS.enter();
        Box::pin(
            async move {
                let res = call.await;
                drop(entered);
                if let Ok(r) = &res {
                    // Set on errors (a trailers-only answer); a success's is in the trailers.
                    let code = r
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("0");
                    let elapsed = started.elapsed();
                    metrics.observe(&method, code, elapsed);
                    tracing::debug!(grpc_status = code, ?elapsed, "answered");
                }
                res
            }
            .instrument(span),
        )
    }
}

/// Keeps a kind of warning from flooding the log: the first is written, then at most one per
/// period, which says how many were left out since the line before. Used for what a client
/// can cause at will (refused connections, broken HTTP/2), so a flood of them costs a line
/// per period, not a line each.
#[derive(Debug)]
pub struct Throttle {
    every: std::time::Duration,
    /// When the last line was written, and how many were left out since.
    state: std::sync::Mutex<(Option<Instant>, u64)>,
}

impl Throttle {
    /// A throttle writing at most one line per `every`.
    pub const fn new(every: std::time::Duration) -> Self {
        Self {
            every,
            state: std::sync::Mutex::new((None, 0)),
        }
    }

    /// Notes one occurrence. `Some(n)` when a line is due now (`n` occurrences were left out
    /// since the last line), `None` when this one is left out.
    pub fn note(&self) -> Option<u64> {
        self.note_at(Instant::now())
    }

    fn note_at(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (last, unlogged) = &mut *state;
        if last.is_some_and(|t| now.saturating_duration_since(t) < self.every) {
            *unlogged += 1;
            return None;
        }
        *last = Some(now);
        Some(std::mem::take(unlogged))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_the_clients_when_sane() {
        let req = |v: Option<&str>| {
            let mut b = http::Request::builder();
            if let Some(v) = v {
                b = b.header(REQUEST_ID_HEADER, v);
            }
            b.body(()).unwrap()
        };
        assert_eq!(request_id(&req(Some("abc-123"))), "abc-123");
        for bad in [None, Some(""), Some("a b"), Some(&"x".repeat(65)[..])] {
            let id = request_id(&req(bad));
            assert_eq!(id.len(), 16, "{id}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        }
    }

    /// A call counts as in flight (crate::busy) from its request until its answer.
    #[tokio::test]
    async fn calls_count_as_in_flight_until_answered() {
        use tower::{Layer, ServiceExt};
        let inner = tower::service_fn(|_req: http::Request<()>| async {
            // What the resync's readers see while this call is answered.
            let seen = crate::busy::REQUESTS.now();
            Ok::<_, std::convert::Infallible>(http::Response::new(seen))
        });
        let svc = RequestSpanLayer::new(std::sync::Arc::new(GrpcMetrics::default())).layer(inner);
        let req = http::Request::builder()
            .uri("/weft.v1.X/Y")
            .body(())
            .unwrap();
        let seen = svc.oneshot(req).await.unwrap().into_body();
        assert!(seen >= 1, "in flight while answered: {seen}");
    }

    #[test]
    fn formats_parse_from_the_file() {
        #[derive(serde::Deserialize)]
        struct F {
            log_format: LogFormat,
        }
        let f: F = toml::from_str("log_format = \"json\"").unwrap();
        assert_eq!(f.log_format, LogFormat::Json);
        assert!(toml::from_str::<F>("log_format = \"xml\"").is_err());
    }

    #[test]
    fn a_throttle_writes_the_first_then_one_per_period_with_the_count_left_out() {
        let t = Throttle::new(std::time::Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(t.note_at(t0), Some(0));
        assert_eq!(t.note_at(t0 + std::time::Duration::from_secs(1)), None);
        assert_eq!(t.note_at(t0 + std::time::Duration::from_secs(9)), None);
        // The period counts from the last line written, not from the last left out.
        assert_eq!(t.note_at(t0 + std::time::Duration::from_secs(10)), Some(2));
        assert_eq!(t.note_at(t0 + std::time::Duration::from_secs(15)), None);
        assert_eq!(t.note_at(t0 + std::time::Duration::from_secs(21)), Some(1));
        assert_eq!(t.note_at(t0 + std::time::Duration::from_secs(40)), Some(0));
    }
}
