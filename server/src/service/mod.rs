//! The core service: every flow a client can start, with no gRPC and no proto types in sight.
//! `api/` is a thin adapter over it: it turns a request into model values (see
//! `api::convert`), calls one method here, and turns the answer (or the [`ServiceError`]) back
//! into a response. Everything a request must satisfy is checked here, in this order:
//!
//! 1. **Validate in the model**: `spec.validate()` and the parsers of [`crate::model`]; any
//!    problem is INVALID_ARGUMENT before anything is read or written.
//! 2. **Preconditions**: the store (the namespace a link names exists, the name is free) and
//!    the kernel (no foreign interface stands where weft would create one, an adopted path is
//!    a network namespace). The kernel reads all live in `kernel`, so the rest
//!    of the service never touches the kernel handle.
//! 3. **Persist** in one store transaction (or, for a dry run, a transaction rolled back that
//!    still tells what the store would have decided: leases, generated names).
//! 4. **Enqueue** the object's key for the reconcile workers and announce the write.
//! 5. **Wait**, unless the call said not to, until the object settles (Ready or Failed at the
//!    new generation), disappears, or the call's budget runs out; then answer with the object
//!    as it is now.
//!
//! Every Create and Connect runs through one idempotent helper ([`Service::create`], in
//! `create.rs`): a request id already seen replays the stored answer, a dry run plans instead
//! of writing, and a race lost to a concurrent twin with the same id is retried once so the
//! twin's answer is replayed. The kinds differ only in the small [`Make`] and [`Kind`] impls
//! next to their other flows (`namespace.rs`, `link.rs`, `network.rs`, `endpoint.rs`).
//! Deleting by name (namespaces, networks) is one generic flow too, [`Service::delete`] over
//! [`Removable`] (`remove.rs`); links are deleted by either end, endpoints by Disconnect.
//!
//! Reading goes the same generic way: [`Service::list_page`] and [`WatchSource`] serve every kind
//! through [`Kind`], with a [`Filter`] (label selector, namespace).

mod create;
mod endpoint;
mod error;
mod kernel;
mod kinds;
mod link;
mod namespace;
mod network;
mod remove;
mod system;
mod watch;

use std::time::Duration;

pub use create::{Checked, Make, RequestId, fingerprint};
pub use endpoint::EndpointView;
pub use error::{ServiceError, ServiceResult};
pub use kinds::{Endpoints, Filter, Kind, Links, Namespaces, Networks, Page};
pub use network::{NetworkDefaults, NetworkView, NewNetwork};
pub use remove::Removable;
pub use system::SystemInfo;
pub use watch::{Start, WatchSource};

use crate::{reconcile::Controller, reload::LiveLimits, store::Store};

/// How one write call runs: how long it may wait for its result, whether it waits at all,
/// and whether it only plans.
#[derive(Clone, Copy, Debug)]
pub struct Call {
    /// How long to wait for the object to settle, counted from when the flow starts.
    pub budget: Duration,
    /// Wait for the reconciler's verdict (the default), or answer as soon as it is persisted.
    pub wait: bool,
    /// Check and plan only: nothing is written, the answer lists the planned changes.
    pub dry_run: bool,
}

/// The core service: the controller it drives and the settings networks are made with.
/// Cheap to clone; every gRPC service holds one.
#[derive(Clone, Debug)]
pub struct Service {
    ctl: Controller,
    defaults: NetworkDefaults,
    /// How big one request may be (SIGHUP may change it).
    limits: LiveLimits,
}

impl Service {
    /// A service over the controller. `defaults` gives the pools automatic subnets come from;
    /// a service that never creates networks may pass [`NetworkDefaults::default`]. Requests
    /// are held to the default [`RequestLimits`] until [`Service::with_limits`].
    pub fn new(ctl: Controller, defaults: NetworkDefaults) -> Self {
        Self {
            ctl,
            defaults,
            limits: LiveLimits::default(),
        }
    }

    /// The same service with these limits on the size of a request (shared with whoever
    /// changes them: SIGHUP).
    pub fn with_limits(mut self, limits: LiveLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The store, for the flows' reads and writes.
    fn store(&self) -> &Store {
        self.ctl.store()
    }
}

/// A service on the fake kernel with a store in `dir`, and a call that does not wait: for the
/// flows' own tests.
#[cfg(test)]
pub(crate) async fn fake_service(
    dir: &std::path::Path,
) -> (
    Service,
    std::sync::Arc<crate::kernel::fake::FakeKernel>,
    Call,
) {
    let store = Store::open(&dir.join("weft.db")).await.unwrap();
    let k = std::sync::Arc::new(crate::kernel::fake::FakeKernel::new(dir.join("netns")));
    let svc = Service::new(
        Controller::new(store, k.clone()),
        NetworkDefaults::default(),
    );
    let call = Call {
        budget: Duration::from_secs(1),
        wait: false,
        dry_run: false,
    };
    (svc, k, call)
}
