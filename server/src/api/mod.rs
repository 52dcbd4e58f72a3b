//! The gRPC adapter: weft.v1's services over the core [`crate::service`]. This layer owns
//! nothing but the wire; a request goes through it like this:
//!
//! 1. The handler splits the request into model values and call options with
//!    `convert`: a body becomes a spec (`convert::link_in`, ...), the `grpc-timeout`
//!    header, `wait` and `dry_run` become a [`crate::service::Call`], and for a Create or
//!    Connect the request id and a fingerprint of the body become a
//!    [`crate::service::RequestId`]. Parsing text (CIDRs, MACs, ports) fails here with
//!    INVALID_ARGUMENT naming the field.
//! 2. It calls one method of [`Service`]: `create::<Links>`, `delete_link`, `list::<Networks>`,
//!    `disconnect`... The service validates in the model, checks preconditions against the
//!    store and the kernel, persists, enqueues and waits (see its module docs).
//! 3. It converts the answer back with `convert`, or the [`ServiceError`] into a
//!    [`Status`] through the one `From` impl below: each variant is exactly one gRPC code.
//!
//! Lists go through one generic `list` over `ListRpc`: the service answers one page, and
//! the adapter ends it early rather than carry more than `PAGE_BYTES` of objects.
//! Watches go through one generic path too: each first takes a place among its peer's open
//! Watch streams (`Api::watch_slot`; RESOURCE_EXHAUSTED when there is none), the service supplies a generic source and a starting point, and
//! `watch.rs` streams it as ADDED / MODIFIED / DELETED messages.
//!
//! For example, `CreateLink {link: {...}, request_id: "r1", wait: true}` runs `create`:
//! `convert::create_parts` takes `r1` and `wait` out and fingerprints the rest,
//! `CreateRpc::spec` turns the body into a `LinkSpec`, and `Service::create::<Links>` looks
//! `r1` up, validates the spec, checks that neither end's name is taken (in the store or in
//! the kernel), writes the row and the request record in one transaction, queues the link and
//! waits for it to settle; `CreateRpc::response` turns the row it answers with into a
//! `CreateLinkResponse`. A second call with `r1` and the same body replays that answer.
//!
//! Nothing here reads the store or the kernel, and nothing in the service sees a proto type:
//! a new RPC is a conversion in `convert` plus a call, and a new rule is a change in the
//! service that every RPC using it picks up.

mod convert;
mod link;
mod namespace;
mod network;
pub mod precheck;
mod system;
mod watch;
use watch::WatchStream;

use convert::{CreateRpc, GetRpc, Planned, Wire};
pub use convert::{DEFAULT_WAIT, parse_grpc_timeout};
pub use system::SystemApi;
use tonic::{Request, Response, Status};

pub use crate::service::NetworkDefaults;
use crate::{
    admission::{ConnLimits, Slots, peer_of_request},
    model::PlannedChange,
    reconcile::Controller,
    service::{Filter, Service, ServiceError},
};

/// The adapter of weft.v1's NamespaceService, LinkService and NetworkService: one value
/// serves all three (their handlers are in `namespace.rs`, `link.rs` and `network.rs`), and
/// holds nothing but the core service, the Watch slots and the messages Watch streams share.
#[derive(Clone, Debug)]
pub struct Api {
    /// The core service every handler calls.
    svc: Service,
    /// The open Watch streams, per peer and in all.
    watches: Slots,
    /// The messages Watch streams hold, shared between them.
    shared: watch::Shared,
}

/// Construction.
impl Api {
    /// The services over the controller; automatic subnets come from `defaults`' pools.
    /// Requests and Watch streams are held to the default limits until
    /// [`Api::with_limits`].
    pub fn new(ctl: Controller, defaults: NetworkDefaults) -> Self {
        Self {
            svc: Service::new(ctl, defaults),
            watches: ConnLimits::default().watches(),
            shared: watch::Shared::default(),
        }
    }

    /// The same services with these limits on requests and on Watch streams.
    pub fn with_limits(mut self, request: crate::reload::LiveLimits, conns: &ConnLimits) -> Self {
        self.svc = self.svc.with_limits(request);
        self.watches = conns.watches();
        self
    }

    /// Runs a Watch: a slot for the stream (RESOURCE_EXHAUSTED, naming the limit and its
    /// flag, when the peer or weftd has none left), then the stream of the objects the
    /// request's label selector (and namespace) picks, from its `since_revision`.
    fn watch<R: WatchRpc>(&self, req: Request<R>) -> Answer<WatchStream<R::Kind>> {
        let slot = self
            .watches
            .take(peer_of_request(&req))
            .map_err(Status::resource_exhausted)?;
        let (label_selector, namespace, since_revision) = req.into_inner().ask();
        watch::answer::<R::Kind>(
            &self.svc,
            &self.shared,
            slot,
            &label_selector,
            namespace,
            since_revision,
        )
    }
}

/// Writes `impl $service for Api` (a tonic service trait, async): first the RPCs that every
/// kind serves through the generic handlers, one line each (`create`, `get`, `list`: the
/// functions of this module; `watch`: [`Api::watch`], with the stream type it names over
/// the kind), then the service's own handlers, as written. So no service repeats the same
/// delegation bodies, and every generic RPC is visibly one.
macro_rules! service_impl {
    (
        impl $service:ident {
            $(create $create:ident($creq:ty) -> $cres:ty;)*
            $(get $get:ident($greq:ty) -> $gres:ty;)*
            $(list $list:ident($lreq:ty) -> $lres:ty;)*
            $(watch $watch:ident($wreq:ty) -> $stream:ident<$kind:ty>;)*
        }
        $($own:tt)*
    ) => {
        #[tonic::async_trait]
        impl $service for $crate::api::Api {
            $(async fn $create(&self, req: tonic::Request<$creq>) -> $crate::api::Answer<$cres> {
                $crate::api::create(&self.svc, req).await
            })*
            $(async fn $get(&self, req: tonic::Request<$greq>) -> $crate::api::Answer<$gres> {
                $crate::api::get(&self.svc, req).await
            })*
            $(async fn $list(&self, req: tonic::Request<$lreq>) -> $crate::api::Answer<$lres> {
                $crate::api::list(&self.svc, req).await
            })*
            $(
                type $stream = $crate::api::watch::WatchStream<$kind>;
                async fn $watch(
                    &self,
                    req: tonic::Request<$wreq>,
                ) -> $crate::api::Answer<Self::$stream> {
                    self.watch(req)
                }
            )*
            $($own)*
        }
    };
}
use service_impl;

/// The one conversion of errors into gRPC statuses: the code is the variant, the message is
/// the error's text, unchanged:
///
/// | variant              | code                | e.g.                                  |
/// |----------------------|---------------------|---------------------------------------|
/// | `InvalidArgument`    | INVALID_ARGUMENT    | `link.name: ...` (field: what to fix) |
/// | `NotFound`           | NOT_FOUND           | `namespace "x" not found`             |
/// | `AlreadyExists`      | ALREADY_EXISTS      | an interface already has the name     |
/// | `FailedPrecondition` | FAILED_PRECONDITION | not owned by weft; still in use       |
/// | `ResourceExhausted`  | RESOURCE_EXHAUSTED  | no address, subnet or port left       |
/// | `Aborted`            | ABORTED             | a twin with the same request id       |
/// | `Unavailable`        | UNAVAILABLE         | the kernel could not be read          |
/// | `Internal`           | INTERNAL            | the database failed                   |
impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Status {
        match e {
            ServiceError::InvalidArgument(m) => Status::invalid_argument(m),
            ServiceError::NotFound(m) => Status::not_found(m),
            ServiceError::AlreadyExists(m) => Status::already_exists(m),
            ServiceError::FailedPrecondition(m) => Status::failed_precondition(m),
            ServiceError::ResourceExhausted(m) => Status::resource_exhausted(m),
            ServiceError::Aborted(m) => Status::aborted(m),
            ServiceError::Unavailable(m) => Status::unavailable(m),
            ServiceError::Internal(m) => Status::internal(m),
        }
    }
}

/// Shorthand for a handler's result.
type Answer<T> = Result<Response<T>, Status>;

/// Runs a Create or Connect: splits the request into body, request id and call options,
/// converts the body, and lets the service's one idempotent helper make the object (or
/// replay, or plan).
async fn create<R: CreateRpc>(svc: &Service, req: Request<R>) -> Answer<R::Response> {
    let (body, request, call) = convert::create_parts(req);
    let (view, plan) = svc.create::<R::Kind>(body.spec(), &request, call).await?;
    Ok(Response::new(R::response(
        &view,
        convert::planned_out(plan),
    )))
}

/// Runs a Get by name: the message of the object the request names.
async fn get<R: GetRpc>(svc: &Service, req: Request<R>) -> Answer<R::Response>
where
    <R::Kind as crate::service::Kind>::Row: crate::store::Named,
{
    let view = svc.get::<R::Kind>(req.get_ref().name()).await?;
    Ok(Response::new(R::response(R::Kind::message(&view))))
}

/// Answers a Delete or Disconnect, whose response is nothing but the planned changes.
fn planned<T: Planned>(plan: Vec<PlannedChange>) -> Answer<T> {
    Ok(Response::new(T::planned(convert::planned_out(plan))))
}

/// A List RPC: where its request keeps the filter and the page, and how its response holds
/// one page.
trait ListRpc: Send + 'static {
    /// The kind it lists.
    type Kind: Wire;
    /// Its response.
    type Response;
    /// The label selector, the namespace (kinds in namespaces), `page_size`, `page_token`.
    fn ask(self) -> (String, Option<String>, i32, String);
    /// The response holding `items` and `next_page_token`.
    fn response(
        items: Vec<<Self::Kind as Wire>::Message>,
        next_page_token: String,
    ) -> Self::Response;
}

/// Implements [`ListRpc`] for a List request of `$kind` whose response keeps its objects in
/// `$items`; `$ns` reads the namespace from the request `r` (or is None).
macro_rules! list_rpc {
    ($($req:ident => $kind:ty, $resp:ident { $items:ident }, |$r:ident| $ns:expr;)*) => {$(
        impl ListRpc for weft_proto::v1::$req {
            type Kind = $kind;
            type Response = weft_proto::v1::$resp;
            fn ask(self) -> (String, Option<String>, i32, String) {
                let $r = self;
                ($r.label_selector.clone(), $ns, $r.page_size, $r.page_token)
            }
            fn response(
                $items: Vec<<$kind as Wire>::Message>,
                next_page_token: String,
            ) -> weft_proto::v1::$resp {
                weft_proto::v1::$resp { $items, next_page_token }
            }
        }
    )*};
}

list_rpc! {
    ListNamespacesRequest => crate::service::Namespaces, ListNamespacesResponse { namespaces },
        |r| None;
    ListLinksRequest => crate::service::Links, ListLinksResponse { links }, |r| r.namespace.clone();
    ListNetworksRequest => crate::service::Networks, ListNetworksResponse { networks },
        |r| None;
}

/// A Watch RPC: where its request keeps the filter and the revision to start after.
trait WatchRpc: Send + 'static {
    /// The kind it watches.
    type Kind: Wire;
    /// The label selector, the namespace (kinds in namespaces), `since_revision`.
    fn ask(self) -> (String, Option<String>, u64);
}

/// Implements [`WatchRpc`] for a Watch request of `$kind`; `$ns` reads the namespace from the
/// request `r` (or is None).
macro_rules! watch_rpc {
    ($($req:ident => $kind:ty, |$r:ident| $ns:expr;)*) => {$(
        impl WatchRpc for weft_proto::v1::$req {
            type Kind = $kind;
            fn ask(self) -> (String, Option<String>, u64) {
                let $r = self;
                let namespace = $ns;
                ($r.label_selector, namespace, $r.since_revision)
            }
        }
    )*};
}

watch_rpc! {
    WatchNamespacesRequest => crate::service::Namespaces, |r| None;
    WatchLinksRequest => crate::service::Links, |r| r.namespace;
    WatchNetworksRequest => crate::service::Networks, |r| None;
}

/// The most bytes of objects one List page carries: half the 4 MiB a gRPC client accepts
/// by default, so no set of objects makes a List answer too big to read.
pub const PAGE_BYTES: usize = 2 * 1024 * 1024;

/// Runs a List: one page (`page_size` after `page_token`) of the messages of the objects
/// that the label selector (and, for kinds in namespaces, the namespace) picks, with the
/// `next_page_token`. A page ends early, before the object that would take it past
/// [`PAGE_BYTES`] (but never empty).
async fn list<R: ListRpc>(svc: &Service, req: Request<R>) -> Answer<R::Response> {
    let (label_selector, namespace, page_size, page_token) = req.into_inner().ask();
    let filter = Filter::parse(&label_selector, namespace)?;
    let page = svc
        .list_page::<R::Kind>(&filter, page_size, &page_token)
        .await?;
    let mut out = Vec::with_capacity(page.items.len());
    let mut bytes = 0;
    let mut last: Option<&str> = None;
    for (key, view) in &page.items {
        let m = R::Kind::message(view);
        // The message, its field tag and its length prefix.
        let len = prost::Message::encoded_len(&m) + 16;
        if let Some(last) = last
            && bytes + len > PAGE_BYTES
        {
            return Ok(Response::new(R::response(out, page.token_after(last))));
        }
        bytes += len;
        out.push(m);
        last = Some(key);
    }
    let next = match last {
        Some(last) if page.more => page.token_after(last),
        _ => String::new(),
    };
    Ok(Response::new(R::response(out, next)))
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;
    use crate::{model::Invalid, store::StoreError};

    #[test]
    /// Each error keeps the code and message clients have always seen.
    fn each_error_keeps_its_code_and_message() {
        let s: Status = ServiceError::from(StoreError::AlreadyExists("x".into())).into();
        assert_eq!(s.code(), Code::AlreadyExists);
        let s: Status = ServiceError::from(StoreError::FailedPrecondition("x".into())).into();
        assert_eq!(s.code(), Code::FailedPrecondition);
        let s: Status = ServiceError::from(StoreError::Exhausted("x".into())).into();
        assert_eq!(s.code(), Code::ResourceExhausted);
        let s: Status = ServiceError::from(StoreError::Invalid("x".into())).into();
        assert_eq!(s.code(), Code::InvalidArgument);
        let s: Status = ServiceError::from(StoreError::DuplicateRequest("r".into())).into();
        assert_eq!(s.code(), Code::Aborted);
        let s: Status = ServiceError::from(Invalid::new("link.name", "too long")).into();
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(s.message(), "link.name: too long");
        let s: Status = ServiceError::Unavailable("netlink".into()).into();
        assert_eq!(s.code(), Code::Unavailable);
        let s: Status = ServiceError::Internal("db".into()).into();
        assert_eq!(s.code(), Code::Internal);
    }
}
