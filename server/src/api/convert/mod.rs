//! Every conversion between weft.v1 messages and the core's values, and nothing else: the
//! handlers call a function here to turn a request into model values, call the service, and
//! call one here to turn its answer into a response.
//!
//! - *In*: a request body becomes a model spec (`namespace_in`, [`link_in`], [`network_in`],
//!   [`connect_in`]), parsing what the wire carries as text (CIDRs, MACs, ports). These are
//!   pure and may fail with [`Invalid`]; validating the whole spec is the service's job.
//! - *Options*: a call's deadline (`grpc-timeout`), `wait` and `dry_run` become a
//!   [`Call`]; a Create's request id and the fingerprint of its body become a [`RequestId`].
//! - *Out*: rows and views become messages (`namespace_out`, [`link_out`], [`network_out`],
//!   [`endpoint_out`]), planned changes and system info likewise.
//! - *Watch*: [`Wire`] says, per kind, which message a Watch streams and how it wraps it.
//!
//! Links (with the UpdateLink field mask) live in `link.rs`, networks and endpoints in
//! `network.rs`; what all kinds share is here.

mod link;
mod network;

use std::{collections::HashMap, path::PathBuf, time::Duration};

pub use link::{apply_update, link_in, link_out};
pub use network::{connect_in, endpoint_out, network_in, network_out};
use prost::Message;
use tonic::Request;
use weft_proto::v1::{self as pb, EventType};

use crate::{
    model::{Invalid, Labels, NamespaceSpec, Phase, PlannedChange, Status},
    service::{Call, Kind, Namespaces, RequestId, SystemInfo, fingerprint},
    store::NamespaceRow,
};

/// How long a request waits for its result when the client set no deadline.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);

/// Room left before the client's deadline to send the answer.
const DEADLINE_MARGIN: Duration = Duration::from_millis(100);

/// Labels from the wire.
fn labels_in(l: &HashMap<String, String>) -> Labels {
    l.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Labels to the wire.
fn labels_out(l: &Labels) -> HashMap<String, String> {
    l.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Milliseconds since the epoch to a protobuf timestamp.
pub fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// Model status to proto.
pub fn status_out(s: &Status) -> pb::Status {
    let phase = match s.phase {
        Phase::Pending => pb::Phase::Pending,
        Phase::Ready => pb::Phase::Ready,
        Phase::Failed => pb::Phase::Failed,
        Phase::Deleting => pb::Phase::Deleting,
    };
    pb::Status {
        phase: phase as i32,
        observed_generation: s.observed_generation,
        message: s.message.clone(),
    }
}

/// Planned changes to proto.
pub fn planned_out(changes: Vec<PlannedChange>) -> Vec<pb::PlannedChange> {
    changes
        .into_iter()
        .map(|c| pb::PlannedChange {
            action: c.action.into(),
            kind: c.kind.into(),
            target: c.target,
            detail: c.detail,
        })
        .collect()
}

/// The error for a Create whose body message (`field`) is missing.
pub fn missing(field: &str) -> Invalid {
    Invalid::new(
        field,
        format!("the request needs a {field}: {{\"{field}\": {{\"name\": ...}}}}"),
    )
}

/// A Namespace request body to its spec.
pub fn namespace_in(ns: &pb::Namespace) -> NamespaceSpec {
    NamespaceSpec {
        name: ns.name.clone(),
        labels: labels_in(&ns.labels),
        adopted_path: (!ns.path.is_empty()).then(|| PathBuf::from(&ns.path)),
    }
}

/// A stored namespace to proto.
pub fn namespace_out(r: &NamespaceRow) -> pb::Namespace {
    pb::Namespace {
        name: r.spec.name.clone(),
        labels: labels_out(&r.spec.labels),
        path: r
            .spec
            .adopted_path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        generation: r.generation,
        status: Some(status_out(&r.status)),
        status_path: r.status_path.clone(),
        uid: r.id.clone(),
        create_time: Some(timestamp(r.created_at)),
    }
}

/// The service's system info to proto, with what only the adapter knows: when it started
/// and how the database was named.
pub fn system_info_out(
    info: SystemInfo,
    started: std::time::SystemTime,
    database: &str,
) -> pb::GetSystemInfoResponse {
    pb::GetSystemInfoResponse {
        version: info.version.into(),
        start_time: Some(prost_types::Timestamp::from(started)),
        kernel_writes: info.kernel_writes,
        reconciles: info.reconciles,
        reconcile_failures: info.reconcile_failures,
        drift_repairs: info.drift_repairs,
        orphans_removed: info.orphans_removed,
        queue_depth: info.queue_depth,
        host_netns: info
            .host_netns
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        netns_dir: info.netns_dir.display().to_string(),
        database: database.to_string(),
    }
}

/// A kind as its Watch RPC streams it.
pub trait Wire: Kind {
    /// The message of one object (`pb::Link`).
    type Message: Clone + PartialEq + Send + Sync + 'static;
    /// The streamed response (`pb::WatchLinksResponse`).
    type Response: Send + 'static;
    /// The message of a view.
    fn message(view: &Self::View) -> Self::Message;
    /// The message of an object that is gone and whose last state is unknown: its uid only.
    fn tombstone(uid: &str) -> Self::Message;
    /// The response reporting `message` as `event` at `revision`.
    fn response(event: EventType, message: Self::Message, revision: u64) -> Self::Response;
}

impl Wire for Namespaces {
    type Message = pb::Namespace;
    type Response = pb::WatchNamespacesResponse;

    fn message(view: &NamespaceRow) -> pb::Namespace {
        namespace_out(view)
    }

    fn tombstone(uid: &str) -> pb::Namespace {
        pb::Namespace {
            uid: uid.to_string(),
            ..Default::default()
        }
    }

    fn response(event: EventType, ns: pb::Namespace, revision: u64) -> Self::Response {
        pb::WatchNamespacesResponse {
            r#type: event as i32,
            revision,
            namespace: Some(ns),
        }
    }
}

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

/// A write call's options: it may wait until just before the client's deadline (or
/// [`DEFAULT_WAIT`] without one); `wait` defaults to true.
pub fn call_of<T>(req: &Request<T>, wait: Option<bool>, dry_run: bool) -> Call {
    let budget = req
        .metadata()
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout)
        .map(|d| d.saturating_sub(DEADLINE_MARGIN))
        .unwrap_or(DEFAULT_WAIT);
    Call {
        budget,
        wait: wait.unwrap_or(true),
        dry_run,
    }
}

/// A Create or Connect request: it carries a request id, `wait` and `dry_run` next to its
/// body.
pub trait CreateRequest: Message + Sized {
    /// Takes the request id, `wait` and `dry_run` out, leaving them at their defaults.
    fn take_options(&mut self) -> (String, Option<bool>, bool);
}

/// Implements [`CreateRequest`] for request messages with the three usual fields.
macro_rules! create_request {
    ($($t:ty),*) => {$(
        impl CreateRequest for $t {
            fn take_options(&mut self) -> (String, Option<bool>, bool) {
                (
                    std::mem::take(&mut self.request_id),
                    self.wait.take(),
                    std::mem::take(&mut self.dry_run),
                )
            }
        }
    )*};
}
create_request!(
    pb::CreateNamespaceRequest,
    pb::CreateLinkRequest,
    pb::CreateNetworkRequest,
    pb::ConnectRequest
);

/// Splits a Create or Connect into its body, its request id (fingerprinted over the body
/// without id, `wait` and `dry_run`, so a retry that only changes those still replays) and
/// its call options.
pub fn create_parts<M: CreateRequest>(req: Request<M>) -> (M, RequestId, Call) {
    let budget = call_of(&req, None, false).budget;
    let mut body = req.into_inner();
    let (id, wait, dry_run) = body.take_options();
    let request = RequestId {
        id,
        fingerprint: fingerprint(&body.encode_to_vec()),
    };
    let call = Call {
        budget,
        wait: wait.unwrap_or(true),
        dry_run,
    };
    (body, request, call)
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
    fn a_create_is_split_and_fingerprinted_without_its_options() {
        let body = pb::CreateNamespaceRequest {
            namespace: Some(pb::Namespace {
                name: "a".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut with_options = body.clone();
        with_options.request_id = "r1".into();
        with_options.wait = Some(false);
        with_options.dry_run = true;
        let (rest, request, call) = create_parts(Request::new(with_options));
        assert_eq!(rest, body);
        assert_eq!(request.id, "r1");
        assert_eq!(request.fingerprint, fingerprint(&body.encode_to_vec()));
        assert!(!call.wait && call.dry_run);
        assert_eq!(call.budget, DEFAULT_WAIT);
    }

    #[test]
    fn the_deadline_leaves_a_margin() {
        let mut req = Request::new(());
        req.metadata_mut()
            .insert("grpc-timeout", "2S".parse().unwrap());
        let call = call_of(&req, None, false);
        assert_eq!(call.budget, Duration::from_millis(1900));
        assert!(call.wait);
    }
}
