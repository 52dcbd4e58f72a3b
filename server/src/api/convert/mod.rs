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
//!
//! # Absent fields
//!
//! weft.v1 is proto3: a plain scalar cannot be told apart from its default, so "" and 0
//! mean "not set" and read as the documented default ("" namespace is the host, MTU 0 the
//! kernel's, "" MAC lets the kernel pick, "" interface name is `eth0`). Only a few fields
//! are declared `optional`, where false must differ from unset:
//! - `wait` on every write request: unset is true (wait for Ready or Failed);
//! - `enable_icc` and `masquerade` on a Network: unset is true, as in Docker.
//!
//! Message fields are optional by nature. A Create without its body (`namespace`, `link`,
//! `network`) is refused; so is a Link without a kind, or a veth without `veth.peer`.
//! Output-only fields (`status`, `generation`, `uid`, `create_time`, ...) are ignored on
//! requests and always set on answers.
//!
//! # Errors in a request body
//!
//! A conversion that fails returns [`Invalid`] `{ field, problem }`; the service turns it
//! into INVALID_ARGUMENT with the message `"<field>: <problem>"`, the problem saying what to
//! fix. The field is the path in the request as the client wrote it, with indexes:
//! `link.veth.peer.addresses[1]`, `link.routes[0].gateway`, `network.subnets[2].ip_range`,
//! `published_ports[0].protocol`, `mac_address`. A ConnectRequest's fields are top level,
//! so they carry no prefix; a bad UpdateLink mask path is reported as `update_mask`, and a
//! missing body by its own name (`link`). Checks of the whole spec (name rules, ranges,
//! overlaps) are the service's, and report their fields the same way.
//!
//! # Status
//!
//! [`status_out`] maps phases one to one, except [`Phase::Rechecking`] (Ready before a
//! restart, not checked since), which the wire has no value for: it goes out as
//! PHASE_PENDING with the [`RECHECKING`] message and the old `observed_generation`, so a
//! client never reads Ready before weftd has looked at the kernel, and a call that waits
//! keeps waiting, as for any Pending object.

mod link;
mod network;

use std::{collections::HashMap, path::PathBuf, time::Duration};

pub use link::{apply_update, link_in, link_out};
pub use network::{connect_in, endpoint_out, network_in, network_out};
use prost::Message;
use tonic::Request;
use weft_proto::v1::{self as pb, EventType};

use crate::{
    model::{Invalid, Labels, LinkSpec, NamespaceSpec, Phase, PlannedChange, RECHECKING, Status},
    service::{
        Call, Endpoints, Kind, Links, Make, Namespaces, Networks, NewNetwork, RequestId,
        SystemInfo, fingerprint,
    },
    store::NamespaceRow,
};

/// How long a request waits for its result when the client set no deadline. An object not
/// settled by then is answered as it stands (usually Pending); the work goes on.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);

/// Room left before the client's deadline to send the answer: without it, a call that waits
/// its whole budget would be answered after the client gave up (DEADLINE_EXCEEDED).
const DEADLINE_MARGIN: Duration = Duration::from_millis(100);

/// Labels from the wire, copied as they are; their keys and values are validated with the
/// spec.
fn labels_in(l: &HashMap<String, String>) -> Labels {
    l.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Labels to the wire (the model keeps them ordered; the proto map has no order).
fn labels_out(l: &Labels) -> HashMap<String, String> {
    l.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Milliseconds since the epoch (as the store keeps times) to a protobuf timestamp. The
/// Euclidean split keeps `nanos` in 0..1e9 for times before 1970, as the type requires.
pub fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// Model status to proto: the phase (Rechecking as Pending with [`RECHECKING`], see the
/// module docs), the generation last converged or failed at, and the message.
pub fn status_out(s: &Status) -> pb::Status {
    let (phase, message) = match s.phase {
        Phase::Pending => (pb::Phase::Pending, s.message.clone()),
        Phase::Ready => (pb::Phase::Ready, s.message.clone()),
        Phase::Failed => (pb::Phase::Failed, s.message.clone()),
        Phase::Deleting => (pb::Phase::Deleting, s.message.clone()),
        // Clients see the re-check after a restart as Pending, saying why.
        Phase::Rechecking => (pb::Phase::Pending, RECHECKING.to_string()),
    };
    pb::Status {
        phase: phase as i32,
        observed_generation: s.observed_generation,
        message,
    }
}

/// Planned changes to proto (a dry run's answer; empty for a real call). Action and kind go
/// out as their lowercase names ("create", "link"), in the order the call would make them.
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

/// A Namespace request body to its spec. An empty `path` makes a named namespace weft creates
/// under its netns dir; any other path adopts that namespace (weft never deletes it).
/// Cannot fail: every field is text the service validates.
pub fn namespace_in(ns: &pb::Namespace) -> NamespaceSpec {
    NamespaceSpec {
        name: ns.name.clone(),
        labels: labels_in(&ns.labels),
        adopted_path: (!ns.path.is_empty()).then(|| PathBuf::from(&ns.path)),
    }
}

/// A stored namespace to proto. `path` is the adopted path as requested ("" for one weft
/// made), `status_path` the file the reconciler found the namespace at, for either kind.
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
/// and how the database was named. An unset `host_netns` (weftd runs in its own namespace)
/// goes out as "".
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
        dns_queries: info.dns_queries,
        dns_answers: info.dns_answers,
        dns_forwards: info.dns_forwards,
        git_commit: weft_proto::GIT_COMMIT.to_string(),
        queue_depth: info.queue_depth,
        rechecking: info.rechecking,
        host_netns: info
            .host_netns
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        netns_dir: info.netns_dir.display().to_string(),
        database: database.to_string(),
    }
}

/// A kind as its List and Watch RPCs send it: which message shows one object, and how a
/// Watch wraps it.
pub trait Wire: Kind {
    /// The message of one object (`pb::Link`).
    type Message: prost::Message + Clone + PartialEq + Send + Sync + 'static;
    /// The streamed Watch response (`pb::WatchLinksResponse`).
    type Response: Send + 'static;
    /// The message of a view.
    fn message(view: &Self::View) -> Self::Message;
    /// The message of an object that is gone and whose last state is unknown: its uid only.
    fn tombstone(uid: &str) -> Self::Message;
    /// The response reporting `message` as `event` at `revision`.
    fn response(event: EventType, message: Self::Message, revision: u64) -> Self::Response;
}

/// Implements [`Wire`] for a kind: its message, the function that converts its view, its
/// Watch response and the field of the response that holds the message.
macro_rules! wire {
    ($kind:ty, $message:ident, $out:path, $response:ident { $field:ident }) => {
        impl Wire for $kind {
            type Message = pb::$message;
            type Response = pb::$response;

            fn message(view: &<$kind as Kind>::View) -> pb::$message {
                $out(view)
            }

            fn tombstone(uid: &str) -> pb::$message {
                pb::$message {
                    uid: uid.to_string(),
                    ..Default::default()
                }
            }

            fn response(event: EventType, message: pb::$message, revision: u64) -> pb::$response {
                pb::$response {
                    r#type: event as i32,
                    revision,
                    $field: Some(message),
                }
            }
        }
    };
}
wire!(
    Namespaces,
    Namespace,
    namespace_out,
    WatchNamespacesResponse { namespace }
);
wire!(Links, Link, link_out, WatchLinksResponse { link });
wire!(
    Networks,
    Network,
    network_out,
    WatchNetworksResponse { network }
);

/// Parses the `grpc-timeout` header ("100m", "5S", ...) into a duration: at most eight
/// digits and one unit (H, M, S, m, u, n), as the gRPC wire spec defines it. Anything else
/// is `None`, and the call then waits [`DEFAULT_WAIT`] rather than failing.
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
///
/// The budget is a duration, not an instant: the service counts it from when each flow
/// starts (Prune starts one per network it deletes).
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

/// A Get of a kind with names of its own: the request names the object, the response holds
/// its message.
pub trait GetRpc {
    /// The kind the RPC reads.
    type Kind: Wire;
    /// The RPC's response.
    type Response;
    /// The name asked for.
    fn name(&self) -> &str;
    /// The response showing `message`.
    fn response(message: <Self::Kind as Wire>::Message) -> Self::Response;
}

/// Implements [`GetRpc`]: the request, the kind, and the response with its field.
macro_rules! get_rpc {
    ($request:ident => $kind:ty, $response:ident { $field:ident }) => {
        impl GetRpc for pb::$request {
            type Kind = $kind;
            type Response = pb::$response;

            fn name(&self) -> &str {
                &self.name
            }

            fn response(message: <$kind as Wire>::Message) -> pb::$response {
                pb::$response {
                    $field: Some(message),
                }
            }
        }
    };
}
get_rpc!(GetNamespaceRequest => Namespaces, GetNamespaceResponse { namespace });
get_rpc!(GetNetworkRequest => Networks, GetNetworkResponse { network });

/// A Delete, Disconnect or Update request: it carries `wait` and `dry_run` next to what it
/// names, and its response carries the planned changes.
pub trait WriteRpc: Sized {
    /// The RPC's response.
    type Response;
    /// The request's `wait` and `dry_run`.
    fn options(&self) -> (Option<bool>, bool);
}

/// Implements [`WriteRpc`] for requests whose response holds nothing but the planned
/// changes, and [`Planned`] for those responses.
macro_rules! write_rpc {
    ($($request:ident => $response:ident),* $(,)?) => {$(
        impl WriteRpc for pb::$request {
            type Response = pb::$response;

            fn options(&self) -> (Option<bool>, bool) {
                (self.wait, self.dry_run)
            }
        }

        impl Planned for pb::$response {
            fn planned(planned_changes: Vec<pb::PlannedChange>) -> Self {
                pb::$response { planned_changes }
            }
        }
    )*};
}
write_rpc!(
    DeleteNamespaceRequest => DeleteNamespaceResponse,
    DeleteLinkRequest => DeleteLinkResponse,
    DeleteNetworkRequest => DeleteNetworkResponse,
    DisconnectRequest => DisconnectResponse,
);

/// A response that is nothing but the planned changes.
pub trait Planned {
    /// The response with these changes.
    fn planned(planned_changes: Vec<pb::PlannedChange>) -> Self;
}

/// Splits a write request into its call options and its body.
pub fn write_parts<R: WriteRpc>(req: Request<R>) -> (Call, R) {
    let (wait, dry_run) = req.get_ref().options();
    let call = call_of(&req, wait, dry_run);
    (call, req.into_inner())
}

/// A Create or Connect RPC. Its request carries a request id, `wait` and `dry_run` next to
/// its body; the body converts to the spec of one kind ([`CreateRpc::Kind`]), and the answer
/// is that kind's message with the planned changes.
pub trait CreateRpc: Message + Clone + Sized {
    /// The kind the RPC makes.
    type Kind: Make;
    /// The RPC's response.
    type Response;
    /// Takes the request id, `wait` and `dry_run` out, leaving them at their defaults.
    fn take_options(&mut self) -> (String, Option<bool>, bool);
    /// The body as a spec.
    fn spec(&self) -> Result<<Self::Kind as Make>::Spec, Invalid>;
    /// The body's labels, if it has any field of labels (taken out for the fingerprint).
    fn labels_mut(&mut self) -> Option<&mut HashMap<String, String>>;
    /// The response for the object made (or that would be made) and the planned changes.
    fn response(
        view: &<Self::Kind as Kind>::View,
        planned_changes: Vec<pb::PlannedChange>,
    ) -> Self::Response;
}

/// Implements [`CreateRpc`]: the request, the kind it makes and the function that converts
/// its body, and the response with the field that holds the answer and its conversion.
macro_rules! create_rpc {
    ($request:ident => $kind:ty, $spec:path, $response:ident { $field:ident: $out:path }) => {
        create_rpc!($request => $kind, $spec, $response { $field: $out }, |_r| None);
    };
    ($request:ident => $kind:ty, $spec:path, $response:ident { $field:ident: $out:path },
     labels: $body:ident) => {
        create_rpc!($request => $kind, $spec, $response { $field: $out },
            |r| r.$body.as_mut().map(|b| &mut b.labels));
    };
    ($request:ident => $kind:ty, $spec:path, $response:ident { $field:ident: $out:path },
     |$r:ident| $labels:expr) => {
        impl CreateRpc for pb::$request {
            type Kind = $kind;
            type Response = pb::$response;

            fn take_options(&mut self) -> (String, Option<bool>, bool) {
                (
                    std::mem::take(&mut self.request_id),
                    self.wait.take(),
                    std::mem::take(&mut self.dry_run),
                )
            }

            fn spec(&self) -> Result<<$kind as Make>::Spec, Invalid> {
                $spec(self)
            }

            fn labels_mut(&mut self) -> Option<&mut HashMap<String, String>> {
                let $r = self;
                $labels
            }

            fn response(
                view: &<$kind as Kind>::View,
                planned_changes: Vec<pb::PlannedChange>,
            ) -> pb::$response {
                pb::$response {
                    planned_changes,
                    $field: Some($out(view)),
                }
            }
        }
    };
}
create_rpc!(CreateNamespaceRequest => Namespaces, namespace_request, CreateNamespaceResponse { namespace: namespace_out }, labels: namespace);
create_rpc!(CreateLinkRequest => Links, link_request, CreateLinkResponse { link: link_out }, labels: link);
create_rpc!(CreateNetworkRequest => Networks, network_request, CreateNetworkResponse { network: network_out }, labels: network);
create_rpc!(ConnectRequest => Endpoints, connect_in, ConnectResponse { endpoint: endpoint_out });

/// The body of a Create, or the error that names the missing `field`. The message shows the
/// JSON shape the body takes, which is what a grpcurl user needs to fix the request.
fn body<'a, T>(body: Option<&'a T>, field: &str) -> Result<&'a T, Invalid> {
    body.ok_or_else(|| {
        Invalid::new(
            field,
            format!("the request needs a {field}: {{\"{field}\": {{\"name\": ...}}}}"),
        )
    })
}

/// A CreateNamespace body as a spec; only a missing body can fail here.
fn namespace_request(r: &pb::CreateNamespaceRequest) -> Result<NamespaceSpec, Invalid> {
    body(r.namespace.as_ref(), "namespace").map(namespace_in)
}

/// A CreateLink body as a spec; errors name fields under `link.`.
fn link_request(r: &pb::CreateLinkRequest) -> Result<LinkSpec, Invalid> {
    body(r.link.as_ref(), "link").and_then(link_in)
}

/// A CreateNetwork body as what the service creates; errors name fields under `network.`.
fn network_request(r: &pb::CreateNetworkRequest) -> Result<NewNetwork, Invalid> {
    body(r.network.as_ref(), "network").and_then(network_in)
}

/// The bytes a body's fingerprint is taken over: a canonical form, the same for every
/// encoding of one request.
///
/// prost encodes a `map<string, string>` in the iteration order of its `HashMap`, which is
/// random per decoded message: two retries of one request with labels encoded differently
/// five times out of six. So the labels are taken out, the rest encoded (prost encodes
/// everything else in field order), and the labels appended sorted by key: a zero byte
/// (a protobuf tag of field 0, which no encoding of a message holds, so the two parts can
/// never run into each other), then per label the key's and the value's length (u32, little
/// endian) and bytes. A body without labels is its plain encoding, as before.
fn canonical<M: CreateRpc>(body: &M) -> Vec<u8> {
    let mut body = body.clone();
    let labels: std::collections::BTreeMap<String, String> = body
        .labels_mut()
        .map(std::mem::take)
        .unwrap_or_default()
        .into_iter()
        .collect();
    let mut out = body.encode_to_vec();
    if !labels.is_empty() {
        out.push(0);
        for (k, v) in &labels {
            for part in [k, v] {
                out.extend_from_slice(&(part.len() as u32).to_le_bytes());
                out.extend_from_slice(part.as_bytes());
            }
        }
    }
    out
}

/// Splits a Create or Connect into its body, its request id (fingerprinted over the body
/// without id, `wait` and `dry_run`, so a retry that only changes those still replays) and
/// its call options.
///
/// The fingerprint is over the body's canonical form ([`canonical`]: the protobuf encoding,
/// labels sorted), which is the same for every encoding of one request and one weftd
/// version; a request id recorded by an older weftd that encoded differently would read as
/// "used for a different request", never replay wrongly.
pub fn create_parts<M: CreateRpc>(req: Request<M>) -> (M, RequestId, Call) {
    let budget = call_of(&req, None, false).budget;
    let mut body = req.into_inner();
    let (id, wait, dry_run) = body.take_options();
    let request = RequestId {
        id,
        fingerprint: fingerprint(&canonical(&body)),
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
    /// Every unit of the `grpc-timeout` header parses; junk does not.
    fn grpc_timeout_units() {
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("S"), None);
        assert_eq!(parse_grpc_timeout("10x"), None);
    }

    #[test]
    /// A retry that only changes `wait` or `dry_run` has the same fingerprint.
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
    /// Labels decode into a hash map whose order differs from one decoding to the next; the
    /// fingerprint does not. 200 decodings of one request with 40 labels, each of every kind
    /// with labels, give one fingerprint; a changed label value gives another.
    fn the_fingerprint_does_not_depend_on_label_order() {
        let labels: HashMap<String, String> = (0..40)
            .map(|i| (format!("key{i}"), format!("v{i}")))
            .collect();
        let ns = pb::CreateNamespaceRequest {
            namespace: Some(pb::Namespace {
                name: "a".into(),
                labels: labels.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let net = pb::CreateNetworkRequest {
            network: Some(pb::Network {
                name: "n".into(),
                labels: labels.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let link = pb::CreateLinkRequest {
            link: Some(pb::Link {
                name: "v".into(),
                labels: labels.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        /// The fingerprints of `n` fresh decodings of `m`'s encoding.
        fn prints<M: CreateRpc + Default>(m: &M, n: usize) -> std::collections::HashSet<String> {
            let bytes = m.encode_to_vec();
            (0..n)
                .map(|_| {
                    let m = M::decode(bytes.as_slice()).unwrap();
                    create_parts(Request::new(m)).1.fingerprint
                })
                .collect()
        }
        // The encodings do differ (else this test proves nothing).
        let encodings: std::collections::HashSet<Vec<u8>> = (0..50)
            .map(|_| {
                pb::CreateNamespaceRequest::decode(ns.encode_to_vec().as_slice())
                    .unwrap()
                    .encode_to_vec()
            })
            .collect();
        assert!(encodings.len() > 1, "the label order never changed");
        assert_eq!(prints(&ns, 200).len(), 1);
        assert_eq!(prints(&net, 200).len(), 1);
        assert_eq!(prints(&link, 200).len(), 1);
        let mut other = ns.clone();
        if let Some(n) = other.namespace.as_mut() {
            n.labels.insert("key7".into(), "changed".into());
        }
        assert_ne!(prints(&ns, 1), prints(&other, 1));
        // Without labels the fingerprint is the plain encoding's, as before.
        let plain = pb::CreateNamespaceRequest {
            namespace: Some(pb::Namespace {
                name: "a".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (_, request, _) = create_parts(Request::new(plain.clone()));
        assert_eq!(request.fingerprint, fingerprint(&plain.encode_to_vec()));
    }

    #[test]
    /// A call answers a little before its deadline, so the answer arrives in time.
    fn the_deadline_leaves_a_margin() {
        let mut req = Request::new(());
        req.metadata_mut()
            .insert("grpc-timeout", "2S".parse().unwrap());
        let call = call_of(&req, None, false);
        assert_eq!(call.budget, Duration::from_millis(1900));
        assert!(call.wait);
    }
}
