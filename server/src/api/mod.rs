//! The gRPC services. Each handler validates (turning every problem into a precise status
//! before anything is written), persists through the store in one transaction, enqueues the
//! object and, unless the request says `wait: false`, waits for the reconciler's verdict up to
//! the call's deadline. This is the one place that converts proto <-> model and errors ->
//! `tonic::Status`.

mod convert;
mod link;
mod namespace;
mod network;
mod system;
mod watch;

use std::time::Duration;

pub use link::LinkApi;
pub use namespace::NamespaceApi;
pub use network::{Creation, NetworkApi, NetworkDefaults, network_in};
pub use system::SystemApi;
use tokio::time::Instant;
use tonic::{Code, Status};

use crate::{
    model::Invalid,
    reconcile::{Controller, Event, Key, WaitOutcome},
    store::{RequestRecord, StoreError},
};

/// How long a request waits for its result when the client set no deadline.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);

/// Room left before the client's deadline to send the answer.
const DEADLINE_MARGIN: Duration = Duration::from_millis(100);

/// Every error a handler can end with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Bad input.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// A named object does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The object exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request conflicts with the current state.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The kernel could not be read to answer.
    #[error("{0}")]
    Unavailable(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<crate::reconcile::ReconcileError> for ApiError {
    fn from(e: crate::reconcile::ReconcileError) -> Self {
        ApiError::FailedPrecondition(format!("cannot plan the change: {e}"))
    }
}

/// The one conversion of errors into gRPC statuses.
impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        match e {
            ApiError::Invalid(i) => Status::invalid_argument(i.to_string()),
            ApiError::NotFound(m) | ApiError::Store(StoreError::NotFound(m)) => {
                Status::not_found(m)
            }
            ApiError::AlreadyExists(m) | ApiError::Store(StoreError::AlreadyExists(m)) => {
                Status::already_exists(m)
            }
            ApiError::FailedPrecondition(m)
            | ApiError::Store(StoreError::FailedPrecondition(m)) => Status::failed_precondition(m),
            ApiError::Unavailable(m) => Status::unavailable(m),
            ApiError::Store(e @ StoreError::DuplicateRequest(_)) => {
                Status::aborted(format!("{e}; retry the call to get its answer"))
            }
            ApiError::Store(StoreError::Exhausted(m)) => Status::resource_exhausted(m),
            ApiError::Store(StoreError::Invalid(m)) => Status::invalid_argument(m),
            ApiError::Store(e) => {
                tracing::error!(error = %e, "store failure");
                Status::new(
                    Code::Internal,
                    format!("weftd could not use its database: {e}"),
                )
            }
        }
    }
}

/// What a request id says about a Create or Connect.
pub(crate) enum Idempotency {
    /// A new request: make the object, recording this (if the client gave an id).
    New(Option<RequestRecord>),
    /// A retry of an earlier request: answer with the object it made (this uid).
    Replay(String),
}

/// FNV-1a, 64 bits: a stable fingerprint of a request body (std's hasher is not stable
/// across releases, and this needs none of a cryptographic hash's strength).
fn fnv1a(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Looks a request id up. `body` is the request with its id and `wait` cleared.
pub(crate) async fn idempotency<M: prost::Message>(
    ctl: &Controller,
    method: &'static str,
    request_id: &str,
    body: &M,
) -> ApiResult<Idempotency> {
    if request_id.is_empty() {
        return Ok(Idempotency::New(None));
    }
    if request_id.len() > 128 {
        return Err(Invalid::new("request_id", "a request id is at most 128 bytes").into());
    }
    let fingerprint = fnv1a(&body.encode_to_vec());
    match ctl.store().past_request(request_id).await? {
        Some(p) if p.method == method && p.fingerprint == fingerprint => Ok(Idempotency::Replay(p.object_id)),
        Some(p) => Err(Invalid::new(
            "request_id",
            format!("request id {request_id:?} was already used for a different {} request; use a new id", p.method),
        )
        .into()),
        None => Ok(Idempotency::New(Some(RequestRecord { id: request_id.to_string(), method, fingerprint }))),
    }
}

/// Runs a Create or Connect handler; if it fails on a conflict while the request carries a
/// request id, runs it once more: the conflict may be a concurrent call with the same id that
/// won the race, whose answer the second run then replays.
pub(crate) async fn retry_if_raced<M, T, F, Fut>(
    req: tonic::Request<M>,
    has_request_id: bool,
    f: F,
) -> ApiResult<T>
where
    M: Clone,
    F: Fn(tonic::Request<M>) -> Fut,
    Fut: std::future::Future<Output = ApiResult<T>>,
{
    let again = has_request_id.then(|| (req.metadata().clone(), req.get_ref().clone()));
    match (f(req).await, again) {
        (
            Err(
                ApiError::AlreadyExists(_)
                | ApiError::Store(StoreError::AlreadyExists(_) | StoreError::DuplicateRequest(_)),
            ),
            Some((metadata, message)),
        ) => {
            f(tonic::Request::from_parts(
                metadata,
                Default::default(),
                message,
            ))
            .await
        }
        (result, _) => result,
    }
}

/// Shorthand for a handler result.
type ApiResult<T> = Result<T, ApiError>;

/// Parses the `grpc-timeout` header ("100m", "5S", ...) into a duration.
pub fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (num, unit) = v.split_at(v.len() - 1);
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// When a waiting request must answer: just before the client's deadline, or after
/// [`DEFAULT_WAIT`].
fn deadline_of<T>(req: &tonic::Request<T>) -> Instant {
    let budget = req
        .metadata()
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout)
        .map(|d| d.saturating_sub(DEADLINE_MARGIN))
        .unwrap_or(DEFAULT_WAIT);
    Instant::now() + budget
}

/// A write that was persisted: subscribe, write, then enqueue and (maybe) wait.
struct Pending {
    rx: tokio::sync::broadcast::Receiver<Event>,
    deadline: Instant,
    wait: bool,
}

impl Pending {
    /// Call before the store write so no event is missed.
    fn start<T>(ctl: &Controller, req: &tonic::Request<T>, wait: Option<bool>) -> Pending {
        Pending {
            rx: ctl.events().subscribe(),
            deadline: deadline_of(req),
            wait: wait.unwrap_or(true),
        }
    }

    /// Waits for an object an earlier call with the same request id made (no write).
    async fn replay(self, ctl: &Controller, key: Key, generation: i64) -> ApiResult<WaitOutcome> {
        if !self.wait {
            return Ok(WaitOutcome::TimedOut);
        }
        Ok(ctl.wait(&key, generation, self.deadline, self.rx).await?)
    }

    /// Announces the write, queues the reconcile and waits for it when asked to.
    async fn finish(self, ctl: &Controller, key: Key, generation: i64) -> ApiResult<WaitOutcome> {
        ctl.events().send(key.clone(), false);
        ctl.enqueue(key.clone());
        if !self.wait {
            return Ok(WaitOutcome::TimedOut);
        }
        Ok(ctl.wait(&key, generation, self.deadline, self.rx).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_units() {
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("S"), None);
        assert_eq!(parse_grpc_timeout("10x"), None);
    }

    #[test]
    fn store_errors_keep_their_codes() {
        let s: Status = ApiError::Store(StoreError::AlreadyExists("x".into())).into();
        assert_eq!(s.code(), Code::AlreadyExists);
        let s: Status = ApiError::Store(StoreError::FailedPrecondition("x".into())).into();
        assert_eq!(s.code(), Code::FailedPrecondition);
        let s: Status = ApiError::Invalid(Invalid::new("link.name", "too long")).into();
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(s.message(), "link.name: too long");
    }
}
