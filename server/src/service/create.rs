//! The write path every flow shares, and the one idempotent-create helper that every Create
//! and Connect runs through.
//!
//! A write subscribes to the event broadcast *before* it touches the store ([`Pending`]), so
//! the reconciler's verdict cannot slip by between the write and the wait. After the store
//! write it announces the key, enqueues it, and (unless told not to) waits.
//!
//! [`Service::create`] adds what makes a Create safe to retry:
//! - a **request id** the client sends is looked up first; one already recorded for the same
//!   method and body *replays*: the call waits for the object that request made and answers
//!   with it, writing nothing. The same id with another body is INVALID_ARGUMENT;
//! - a **dry run** skips the id (nothing is recorded), persists in a transaction that is
//!   rolled back, and answers with the planned changes;
//! - a **race** with a concurrent twin carrying the same id ends, for the loser, in
//!   ALREADY_EXISTS or ABORTED; the helper then runs once more if the twin's record is
//!   there now, and replays its answer (a refusal with no twin is not run again);
//! - a replay of a **Connect still settling** (committed, its answer not given: one whose
//!   veth create found the interface name taken may yet take its endpoint back) waits for it
//!   to settle, then looks the id up again.
//!
//! What differs by kind (how to validate, check and persist; how to plan) is the [`Make`]
//! trait, implemented next to each kind's other flows.

use std::future::Future;

use tokio::{sync::broadcast, time::Instant};

use super::{Call, Kind, Service, ServiceError, ServiceResult};
use crate::{
    model::{ConnectSpec, Invalid, LinkSpec, NamespaceSpec, PlannedChange, RequestLimits},
    reconcile::{Event, Key, WaitOutcome},
    store::RequestRecord,
};

/// The longest request id a client may send, in bytes.
const MAX_REQUEST_ID: usize = 128;

/// A client's request id and the fingerprint of the body it came with (computed by the
/// adapter from the wire form, with the id, `wait` and `dry_run` cleared). An empty id means
/// the call is not idempotent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestId {
    /// The id, as the client sent it ("" for none).
    pub id: String,
    /// A stable fingerprint of the request body.
    pub fingerprint: String,
}

/// What a request id says about a Create or Connect.
enum Idempotency {
    /// A new request: make the object, recording this (if the client gave an id).
    New(Option<RequestRecord>),
    /// A retry of an earlier request: answer with the object it made (this uid).
    Replay(String),
}

/// One kind of object a Create or Connect makes: the steps of [`Service::create`] that differ
/// by kind.
pub trait Make: Kind {
    /// The RPC name recorded with a request id ("CreateLink"): an id is only replayed for the
    /// same method.
    const METHOD: &'static str;
    /// What the client asked for, as model values (validated by the helper before
    /// [`Make::persist`] sees it).
    type Spec: Checked + Send + Sync + 'static;

    /// The error when what a replayed request made is gone since.
    fn replay_gone(request_id: &str) -> ServiceError {
        ServiceError::NotFound(format!(
            "what request {request_id:?} made has been deleted since"
        ))
    }

    /// Checks the preconditions of a valid `spec`, and persists it with `record` (or, for a
    /// dry run, in a transaction that is rolled back).
    fn persist(
        svc: &Service,
        spec: &Self::Spec,
        record: Option<&RequestRecord>,
        dry_run: bool,
    ) -> impl Future<Output = ServiceResult<Self::Row>> + Send;

    /// A dry run's answer: the object as it would be, and what making it would change.
    fn plan(
        svc: &Service,
        row: Self::Row,
    ) -> impl Future<Output = ServiceResult<(Self::View, Vec<PlannedChange>)>> + Send;

    /// Announces a persisted object beyond its own key (Connect: its network changed too).
    fn announce(_svc: &Service, _row: &Self::Row) {}
}

/// A spec that validates itself in the model: the first step of every Create and Connect.
pub trait Checked {
    /// Checks what can be checked without the store or the kernel.
    fn check(&self) -> Result<(), Invalid>;
    /// Checks the request's size against the configured [`RequestLimits`].
    fn within(&self, limits: &RequestLimits) -> Result<(), Invalid>;
}

/// Implements [`Checked`] with the model type's own `validate` and the limits' check of it.
macro_rules! checked_by_validate {
    ($($spec:ty => $limit:ident),*) => {$(
        impl Checked for $spec {
            fn check(&self) -> Result<(), Invalid> {
                self.validate()
            }
            fn within(&self, limits: &RequestLimits) -> Result<(), Invalid> {
                limits.$limit(self)
            }
        }
    )*};
}
checked_by_validate!(
    NamespaceSpec => check_namespace,
    LinkSpec => check_link,
    ConnectSpec => check_connect
);

/// A write in progress: subscribed to the events before the store write, so the wait that
/// follows misses nothing.
pub(super) struct Pending {
    rx: broadcast::Receiver<Event>,
    deadline: Instant,
    wait: bool,
}

impl Pending {
    /// Starts a write: call it before the store write.
    pub(super) fn start(svc: &Service, call: Call) -> Pending {
        Pending {
            rx: svc.ctl.events().subscribe(),
            deadline: Instant::now() + call.budget,
            wait: call.wait,
        }
    }

    /// Waits (when the call asked to) for `key` to settle at `generation`, without writing:
    /// for an object an earlier call made.
    async fn replay(self, svc: &Service, key: Key, generation: i64) -> ServiceResult<WaitOutcome> {
        if !self.wait {
            return Ok(WaitOutcome::TimedOut);
        }
        Ok(svc
            .ctl
            .wait(&key, generation, self.deadline, self.rx)
            .await?)
    }

    /// Announces the write of `key`, queues its reconcile, and waits (when asked to) for it
    /// to settle at `generation`.
    pub(super) async fn finish(
        self,
        svc: &Service,
        key: Key,
        generation: i64,
    ) -> ServiceResult<WaitOutcome> {
        svc.ctl.events().send(key.clone(), false);
        svc.ctl.enqueue(key.clone());
        self.replay(svc, key, generation).await
    }
}

/// FNV-1a, 64 bits: a stable fingerprint of a request body (std's hasher is not stable
/// across releases, and this needs none of a cryptographic hash's strength).
pub fn fingerprint(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

impl Service {
    /// Creates an object of kind `K` (or connects an endpoint) idempotently: see the module
    /// docs. `spec` is the converted request body; a conversion error is reported only after
    /// the request id was checked, as the wire contract has always done. Answers with the
    /// object as it is after the wait, and (for a dry run) the planned changes.
    pub async fn create<K: Make>(
        &self,
        spec: Result<K::Spec, Invalid>,
        request: &RequestId,
        call: Call,
    ) -> ServiceResult<(K::View, Vec<PlannedChange>)> {
        match self.create_once::<K>(&spec, request, call).await {
            // A concurrent call with the same id may have won the race: replay its answer,
            // once its record is there (a refusal of this call's own, such as a name taken,
            // is not run again).
            Err(e)
                if e.is_conflict()
                    && !request.id.is_empty()
                    && matches!(self.store().past_request(&request.id).await, Ok(Some(_))) =>
            {
                self.create_once::<K>(&spec, request, call).await
            }
            result => result,
        }
    }

    /// One run of [`Service::create`].
    async fn create_once<K: Make>(
        &self,
        spec: &Result<K::Spec, Invalid>,
        request: &RequestId,
        call: Call,
    ) -> ServiceResult<(K::View, Vec<PlannedChange>)> {
        let started = std::time::Instant::now();
        let pending = Pending::start(self, call);
        let mut idempotency = if call.dry_run {
            Idempotency::New(None)
        } else {
            self.idempotency(K::METHOD, request).await?
        };
        // A Connect still settling may yet take its endpoint back, and its request id with
        // it: once it has settled, the id says again what it made.
        if let Idempotency::Replay(id) = &idempotency
            && self.ctl.connect_settled(id).await
        {
            idempotency = self.idempotency(K::METHOD, request).await?;
        }
        let record = match idempotency {
            Idempotency::New(record) => record,
            Idempotency::Replay(id) => {
                let row = K::by_id(self, &id)
                    .await?
                    .ok_or_else(|| K::replay_gone(&request.id))?;
                pending
                    .replay(self, K::key(id), K::generation(&row))
                    .await?;
                return Ok((self.reload::<K>(&row).await?, Vec::new()));
            }
        };
        let spec = spec.as_ref().map_err(|e| ServiceError::from(e.clone()))?;
        spec.within(&self.limits.get())?;
        spec.check()?;
        let row = K::persist(self, spec, record.as_ref(), call.dry_run).await?;
        if call.dry_run {
            return K::plan(self, row).await;
        }
        K::announce(self, &row);
        let stored = started.elapsed();
        pending
            .finish(self, K::key(K::id(&row).to_string()), K::generation(&row))
            .await?;
        let settled = started.elapsed();
        let view = self.reload::<K>(&row).await?;
        // Where a create's time went (checks, kernel precheck and the store transaction; the
        // wait for its reconcile; the answer), for the "converged" line of its reconcile.
        tracing::debug!(
            method = K::METHOD,
            ?stored,
            ?settled,
            answered = ?started.elapsed(),
            "create laps"
        );
        Ok((view, Vec::new()))
    }

    /// Looks a request id up: new (to be recorded with the object), or a replay.
    async fn idempotency(
        &self,
        method: &'static str,
        request: &RequestId,
    ) -> ServiceResult<Idempotency> {
        let id = &request.id;
        if id.is_empty() {
            return Ok(Idempotency::New(None));
        }
        if id.len() > MAX_REQUEST_ID {
            return Err(Invalid::new("request_id", "a request id is at most 128 bytes").into());
        }
        match self.store().past_request(id).await? {
            Some(p) if p.method == method && p.fingerprint == request.fingerprint => {
                Ok(Idempotency::Replay(p.object_id))
            }
            Some(p) => Err(Invalid::new(
                "request_id",
                format!(
                    "request id {id:?} was already used for a different {} request; use a new id",
                    p.method
                ),
            )
            .into()),
            None => Ok(Idempotency::New(Some(RequestRecord {
                id: id.clone(),
                method,
                fingerprint: request.fingerprint.clone(),
            }))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_fnv1a() {
        assert_eq!(fingerprint(b""), "cbf29ce484222325");
        assert_eq!(fingerprint(b"a"), "af63dc4c8601ec8c");
        assert_ne!(fingerprint(b"ab"), fingerprint(b"ba"));
    }
}
