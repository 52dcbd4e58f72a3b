//! Unit tests of the reconcilers, run against the in-memory [`FakeKernel`] and a real SQLite
//! store in a temp dir: no root, no real kernel.
//!
//! They go through the entry points a user of the controller meets: desired state is written
//! with the store's public methods (as `api/` does), one reconcile is driven with the worker
//! step `Controller::work` (which also writes status and decides the retry), dry runs with the
//! `plan_*` methods. Assertions read the fake kernel's state and the status stored back.
//!
//! # The harness
//!
//! [`H::new`] builds the three parts a daemon has, minus the threads:
//! - a real [`Store`] on a fresh `weft.db` in a temp dir, with the migrations applied, so the
//!   rows, generations, leases and UNIQUE constraints are exactly the daemon's;
//! - a [`FakeKernel`]: plain maps that follow the real kernel's conventions (strict creates,
//!   idempotent deletes, a veth's peer going with it), count every write, log each one in
//!   words (`calls()`), and fail on demand (`fail(op, target, errno, times)`);
//! - a [`Controller`] over both, with no workers, no resync timer and no monitor running.
//!
//! Nothing runs by itself: a test drives each reconcile with [`H::run`], which calls
//! `ctl.work(0, key)`, exactly one worker step (worker number 0 only labels the trace span):
//! reconcile or clean up the object, write its status, tell the queue. The queue is never
//! drained, so whatever a step enqueues (a retry after its backoff, an endpoint of a
//! re-created bridge) only shows in `ctl.queue_depth()`; the test runs the next step itself.
//!
//! # Attempts and the error policy
//!
//! A step's attempt number is the queue's count of the key's consecutive retried failures,
//! plus one. What a failure writes follows `error_policy` (reconcile/error.rs):
//! - a transient error (a kernel race such as EEXIST or EBUSY, a namespace or bridge not
//!   there yet) is retried with backoff and reads Pending, keeping the last converged
//!   `observed_generation`, for attempts below `FAILED_AFTER_ATTEMPTS` (3); from then on it
//!   reads Failed at the object's generation, and is still retried;
//! - a permanent error (EPERM, EINVAL, an interface without weft's mark) reads Failed at
//!   once and is not retried; the count is not kept, so the next attempt is attempt 1 again;
//! - a success reads Ready at the object's generation and resets the count.
//!
//! `errors.rs` walks through each case attempt by attempt.
//!
//! # The files
//!
//! One file per kind: `namespace`, `link`, `network` (with the firewall key), `endpoint`,
//! `retire` (disconnect and the reaper), `restart`, `gc`, `errors` (each error kind's retry
//! decision), `newborn` (the window between creating an interface and marking it) and
//! `dryrun`. This file holds the harness [`H`] and the spec builders they share.
//! The builders make the smallest valid spec (a veth with both ends up and nothing else, a
//! bridge network with Docker's default switches), and a test changes only the fields its
//! point is about, so whatever differs from a builder's default is what the test is about.
//!
//! Tests marked `#[ignore = "known bug, ..."]` pin a bug found while writing them: they fail
//! today and pass once it is fixed (`cargo test -p weftd --lib reconcile::tests -- --ignored`).

mod check;
mod dryrun;
mod endpoint;
mod errors;
mod gc;
mod link;
mod namespace;
mod network;
mod newborn;
mod prepare;
mod restart;
mod retire;

use std::{
    net::IpAddr,
    sync::{Arc, atomic::Ordering::Relaxed},
};

use super::{Controller, Key};
use crate::{
    kernel::{KernelOps, NetnsOps, NsRef, fake::FakeKernel},
    model::{
        ConnectSpec, EndSpec, LinkKind, LinkSpec, NamespaceSpec, NetworkSpec, Phase, PortSpec,
        RouteSpec, Status, SubnetSpec,
    },
    store::{AutoSubnets, EndpointRow, NamespaceRow, NetworkRow, Store},
};

/// A controller over a fresh store and a fresh fake kernel: one test's whole world.
///
/// Its helpers come in pairs: `*_row` records an object as the API would and stops there
/// (for tests about what the first reconcile does, or about ordering), while the plain name
/// also runs the object's key once (for tests that need the object as a precondition).
pub(super) struct H {
    /// The controller under test.
    pub ctl: Controller,
    /// The same kernel the controller uses, to inspect and to tamper with.
    pub k: Arc<FakeKernel>,
    /// Holds the database file; the temp dir is removed when the harness drops.
    _dir: tempfile::TempDir,
}

impl H {
    /// A store in a temp dir and an empty fake kernel whose named namespaces live under
    /// `<tempdir>/netns` (nothing is created there on disk).
    pub async fn new() -> H {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("weft.db")).await.unwrap();
        let k = Arc::new(FakeKernel::new(dir.path().join("netns")));
        let ctl = Controller::new(store, k.clone());
        H { ctl, k, _dir: dir }
    }

    /// A weftd restart: a new controller over the same store and kernel (fresh counters and
    /// caches), with every Ready object marked for re-checking as start-up does.
    ///
    /// The kernel is kept as it was, as a restarted daemon finds it; the queue's failure
    /// counts start from zero again, and [`H::drift`] and the other counters read 0.
    pub async fn restart(&mut self) {
        let store = self.store().clone();
        store.mark_unverified().await.unwrap();
        self.ctl = Controller::new(store, self.k.clone());
    }

    /// The store, shared with the controller: writes here are what the API would write.
    pub fn store(&self) -> &Store {
        self.ctl.store()
    }

    /// Runs one reconcile of `key` as a worker would; returns the kernel writes it made.
    ///
    /// This is `ctl.work(0, key)`: the attempt number comes from the queue's failure count,
    /// the status is written, and a retry is scheduled on the queue but never run by itself.
    /// The write count is what "converged means zero writes" and drift tests assert on.
    pub async fn run(&self, key: Key) -> u64 {
        let before = self.k.writes();
        self.ctl.work(0, key).await;
        self.k.writes() - before
    }

    /// The file of named namespace `name`: under the fake's netns dir, never made on disk.
    pub fn ns_path(&self, name: &str) -> std::path::PathBuf {
        self.k.netns_dir().join(name)
    }

    /// Named namespace `name`, as the kernel layer addresses it (for reading the fake).
    pub fn ns(&self, name: &str) -> NsRef {
        NsRef::path(self.ns_path(name))
    }

    /// Records namespace `name` without reconciling it: its row reads Pending, and nothing
    /// exists in the kernel yet.
    pub async fn namespace_row(&self, name: &str) -> NamespaceRow {
        self.store()
            .create_namespace(&ns_spec(name), None, false)
            .await
            .unwrap()
    }

    /// Records namespace `name` and reconciles it to Ready; returns its id. Asserts Ready, so
    /// a test that needs the namespace fails here, at the cause, if it cannot be made.
    pub async fn namespace(&self, name: &str) -> String {
        let id = self.namespace_row(name).await.id;
        self.run(Key::Namespace(id.clone())).await;
        assert_eq!(self.ns_status(&id).await.phase, Phase::Ready);
        id
    }

    /// Records link `spec` and reconciles it once; returns its id. Does not assert Ready:
    /// link tests are often about a first attempt that fails.
    pub async fn link(&self, spec: &LinkSpec) -> String {
        let id = self
            .store()
            .create_link(spec, None, false)
            .await
            .unwrap()
            .id;
        self.run(Key::Link(id.clone())).await;
        id
    }

    /// Replaces link `id`'s spec as UpdateLink does (its masters' ports checked).
    pub async fn update_link(&self, id: &str, spec: &LinkSpec) -> crate::store::LinkRow {
        self.store()
            .update_link_spec(id, spec, false)
            .await
            .unwrap()
    }

    /// Records a network (no automatic subnets) without reconciling it. No pool is
    /// configured, so the network has exactly the subnets its spec names.
    pub async fn network_row(&self, spec: &NetworkSpec) -> NetworkRow {
        self.store()
            .create_network(spec, &AutoSubnets::default(), false, None, false)
            .await
            .unwrap()
    }

    /// Records network `name` (bridge `bridge`, the given subnets) and reconciles it to
    /// Ready; returns its id.
    pub async fn network(&self, name: &str, bridge: &str, subnets: &[&str]) -> String {
        let id = self.network_row(&net_spec(name, bridge, subnets)).await.id;
        self.run(Key::Network(id.clone())).await;
        assert_eq!(self.net_status(&id).await.phase, Phase::Ready);
        id
    }

    /// Connects namespace `ns` to network `net` (publishing `ports`) without reconciling.
    /// The store leases the addresses and host ports here, as the Connect RPC does.
    pub async fn connect_row(&self, net: &str, ns: &str, ports: Vec<PortSpec>) -> EndpointRow {
        self.store()
            .connect(&connect_spec(net, ns, ports), None, false)
            .await
            .unwrap()
    }

    /// Connects and reconciles the endpoint once; returns its row as stored before, whose
    /// leased addresses and host interface name tests compare the kernel against.
    pub async fn connect(&self, net: &str, ns: &str, ports: Vec<PortSpec>) -> EndpointRow {
        let row = self.connect_row(net, ns, ports).await;
        self.run(Key::Endpoint(row.id.clone())).await;
        row
    }

    /// A namespace's stored status.
    pub async fn ns_status(&self, id: &str) -> Status {
        self.store()
            .namespace_by_id(id)
            .await
            .unwrap()
            .unwrap()
            .status
    }

    /// A link's stored status: the model's phase, so a restart's re-check reads Rechecking
    /// here (clients see it as Pending; api/convert maps it).
    pub async fn link_status(&self, id: &str) -> Status {
        self.store().link_by_id(id).await.unwrap().unwrap().status
    }

    /// A network's stored status.
    pub async fn net_status(&self, id: &str) -> Status {
        self.store()
            .network_by_id(id)
            .await
            .unwrap()
            .unwrap()
            .status
    }

    /// An endpoint's stored status.
    pub async fn ep_status(&self, id: &str) -> Status {
        self.store()
            .endpoint_by_id(id)
            .await
            .unwrap()
            .unwrap()
            .status
    }

    /// Drift repairs counted so far: steps that wrote to the kernel for an object that was
    /// already converged at its generation (a spec change is not drift).
    pub fn drift(&self) -> u64 {
        self.ctl.stats().drift_repairs.load(Relaxed)
    }

    /// Failed reconciles counted so far, transient or permanent, of any key.
    pub fn failures(&self) -> u64 {
        self.ctl.stats().failures.load(Relaxed)
    }

    /// Orphans removed so far by the GC key (a veth pair counts once).
    pub fn orphans(&self) -> u64 {
        self.ctl.stats().orphans_removed.load(Relaxed)
    }

    /// GC runs that listed the whole store.
    pub fn gc_store_lists(&self) -> u64 {
        self.ctl.stats().gc_store_lists.load(Relaxed)
    }
}

/// The ownership mark of object `id`, as the interface alias reads; `Some` so it compares
/// directly with `LinkState::alias`.
pub(super) fn mark(id: &str) -> Option<String> {
    Some(format!("weft:{id}"))
}

/// A parsed IP network; panics on a typo in the test itself.
pub(super) fn net(s: &str) -> ipnet::IpNet {
    s.parse().unwrap()
}

/// A parsed IP address.
pub(super) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A named namespace's spec: no labels, and not adopted, so weft creates the file.
pub(super) fn ns_spec(name: &str) -> NamespaceSpec {
    NamespaceSpec {
        name: name.into(),
        labels: Default::default(),
        adopted_path: None,
    }
}

/// An interface `name` in namespace `ns` ("" = host): up, nothing else asked.
///
/// MTU 0 (the kernel's default; a veth's peer then takes the first end's), no MAC, master,
/// addresses or routes: the end asks for nothing beyond existing, up and marked.
pub(super) fn end(name: &str, ns: &str) -> EndSpec {
    EndSpec {
        name: name.into(),
        namespace: ns.into(),
        mtu: 0,
        mac: None,
        up: true,
        master: None,
        hairpin: false,
        ipv6_off: false,
        nodad: false,
        addresses: Vec::new(),
        routes: Vec::new(),
    }
}

/// A veth from `host` in the host namespace to `peer` in namespace `ns`.
pub(super) fn veth(host: &str, peer: &str, ns: &str) -> LinkSpec {
    veth_ends(end(host, ""), end(peer, ns))
}

/// A veth with two given ends, no labels; for tests that set fields on either end.
pub(super) fn veth_ends(a: EndSpec, b: EndSpec) -> LinkSpec {
    LinkSpec {
        labels: Default::default(),
        end: a,
        kind: LinkKind::Veth { peer: b },
    }
}

/// A bridge `name` in the host namespace, up, with no address: a master for ports.
pub(super) fn bridge(name: &str) -> LinkSpec {
    LinkSpec {
        labels: Default::default(),
        end: end(name, ""),
        kind: LinkKind::Bridge,
    }
}

/// The veth most link tests use: `vh1` in the host, `vi1` in namespace "ns1" with
/// 10.9.0.2/24, a route to 10.10.0.0/16 via 10.9.0.1, MTU 1400.
pub(super) fn rich_veth() -> LinkSpec {
    let mut inside = end("vi1", "ns1");
    inside.addresses = vec![net("10.9.0.2/24")];
    inside.routes = vec![RouteSpec {
        destination: net("10.10.0.0/16"),
        gateway: Some(ip("10.9.0.1")),
        metric: 0,
    }];
    let mut spec = veth_ends(end("vh1", ""), inside);
    spec.end.mtu = 1400;
    spec
}

/// A bridge network with the given subnets (gateway the first address).
///
/// ICC and masquerade on and not internal, as a `docker network create` without flags;
/// MTU 0 (the kernel's default).
pub(super) fn net_spec(name: &str, bridge: &str, subnets: &[&str]) -> NetworkSpec {
    NetworkSpec {
        name: name.into(),
        labels: Default::default(),
        bridge_name: bridge.into(),
        subnets: subnets
            .iter()
            .map(|s| SubnetSpec::parse("subnet", s, "", "", &[]).unwrap())
            .collect(),
        internal: false,
        icc: true,
        masquerade: true,
        mtu: 0,
        dns: true,
    }
}

/// A connect request as the API builds it by default (eth0, default route).
///
/// No static address or MAC (the store leases the next free address), no aliases.
pub(super) fn connect_spec(net: &str, ns: &str, ports: Vec<PortSpec>) -> ConnectSpec {
    let mut spec = ConnectSpec::plain(net, ns);
    spec.endpoint.ports = ports;
    spec
}

/// A published TCP port on every host address: one port, no range (end 0).
pub(super) fn tcp(host: u32, container: u32) -> PortSpec {
    PortSpec::parse("port", "", host, 0, container, "tcp").unwrap()
}
