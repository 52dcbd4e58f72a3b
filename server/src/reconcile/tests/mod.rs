//! Unit tests of the reconcilers, run against the in-memory [`FakeKernel`] and a real SQLite
//! store in a temp dir: no root, no real kernel.
//!
//! They go through the entry points a user of the controller meets: desired state is written
//! with the store's public methods (as `api/` does), one reconcile is driven with the worker
//! step `Controller::work` (which also writes status and decides the retry), dry runs with the
//! `plan_*` methods. Assertions read the fake kernel's state and the status stored back.
//!
//! One file per kind: `namespace`, `link`, `network` (with the firewall key), `endpoint`,
//! `retire` (disconnect and the reaper), `restart`, `gc`, `errors` (each error kind's retry
//! decision) and `dryrun`. This file holds the harness [`H`] and the spec builders they share.
//!
//! Tests marked `#[ignore = "bug: ..."]` pin a bug found while writing them: they fail today
//! and pass once it is fixed (`cargo test -p weftd --lib reconcile::tests -- --ignored`).

mod dryrun;
mod endpoint;
mod errors;
mod gc;
mod link;
mod namespace;
mod network;
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
        ConnectSpec, EndSpec, EndpointSpec, LinkKind, LinkSpec, NamespaceSpec, NetworkSpec, Phase,
        PortSpec, RouteSpec, Status, SubnetSpec,
    },
    store::{AutoSubnets, EndpointRow, NamespaceRow, NetworkRow, Store},
};

/// A controller over a fresh store and a fresh fake kernel.
pub(super) struct H {
    /// The controller under test.
    pub ctl: Controller,
    /// The same kernel the controller uses, to inspect and to tamper with.
    pub k: Arc<FakeKernel>,
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
    pub async fn restart(&mut self) {
        let store = self.store().clone();
        store.mark_unverified().await.unwrap();
        self.ctl = Controller::new(store, self.k.clone());
    }

    /// The store.
    pub fn store(&self) -> &Store {
        self.ctl.store()
    }

    /// Runs one reconcile of `key` as a worker would; returns the kernel writes it made.
    pub async fn run(&self, key: Key) -> u64 {
        let before = self.k.writes();
        self.ctl.work(0, key).await;
        self.k.writes() - before
    }

    /// The file of named namespace `name`.
    pub fn ns_path(&self, name: &str) -> std::path::PathBuf {
        self.k.netns_dir().join(name)
    }

    /// Named namespace `name`, as the kernel layer addresses it.
    pub fn ns(&self, name: &str) -> NsRef {
        NsRef::Path(self.ns_path(name))
    }

    /// Records namespace `name` without reconciling it.
    pub async fn namespace_row(&self, name: &str) -> NamespaceRow {
        self.store()
            .create_namespace(&ns_spec(name), None, false)
            .await
            .unwrap()
    }

    /// Records namespace `name` and reconciles it to Ready; returns its id.
    pub async fn namespace(&self, name: &str) -> String {
        let id = self.namespace_row(name).await.id;
        self.run(Key::Namespace(id.clone())).await;
        assert_eq!(self.ns_status(&id).await.phase, Phase::Ready);
        id
    }

    /// Records link `spec` and reconciles it once; returns its id.
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

    /// Records a network (no automatic subnets) without reconciling it.
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
    pub async fn connect_row(&self, net: &str, ns: &str, ports: Vec<PortSpec>) -> EndpointRow {
        self.store()
            .connect(&connect_spec(net, ns, ports), None, false)
            .await
            .unwrap()
    }

    /// Connects and reconciles the endpoint once; returns its row as stored before.
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

    /// A link's stored status.
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

    /// Drift repairs counted so far.
    pub fn drift(&self) -> u64 {
        self.ctl.stats().drift_repairs.load(Relaxed)
    }

    /// Failed reconciles counted so far.
    pub fn failures(&self) -> u64 {
        self.ctl.stats().failures.load(Relaxed)
    }

    /// Orphans removed so far.
    pub fn orphans(&self) -> u64 {
        self.ctl.stats().orphans_removed.load(Relaxed)
    }
}

/// The ownership mark of object `id`.
pub(super) fn mark(id: &str) -> Option<String> {
    Some(format!("weft:{id}"))
}

/// A parsed IP network.
pub(super) fn net(s: &str) -> ipnet::IpNet {
    s.parse().unwrap()
}

/// A parsed IP address.
pub(super) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A named namespace's spec.
pub(super) fn ns_spec(name: &str) -> NamespaceSpec {
    NamespaceSpec {
        name: name.into(),
        labels: Default::default(),
        adopted_path: None,
    }
}

/// An interface `name` in namespace `ns` ("" = host): up, nothing else asked.
pub(super) fn end(name: &str, ns: &str) -> EndSpec {
    EndSpec {
        name: name.into(),
        namespace: ns.into(),
        mtu: 0,
        mac: None,
        up: true,
        master: None,
        addresses: Vec::new(),
        routes: Vec::new(),
    }
}

/// A veth from `host` in the host namespace to `peer` in namespace `ns`.
pub(super) fn veth(host: &str, peer: &str, ns: &str) -> LinkSpec {
    veth_ends(end(host, ""), end(peer, ns))
}

/// A veth with two given ends.
pub(super) fn veth_ends(a: EndSpec, b: EndSpec) -> LinkSpec {
    LinkSpec {
        labels: Default::default(),
        end: a,
        kind: LinkKind::Veth { peer: b },
    }
}

/// A bridge `name` in the host namespace.
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
    }
}

/// A connect request as the API builds it by default (eth0, default route).
pub(super) fn connect_spec(net: &str, ns: &str, ports: Vec<PortSpec>) -> ConnectSpec {
    ConnectSpec {
        network: net.into(),
        namespace: ns.into(),
        ipv4: None,
        ipv6: None,
        endpoint: EndpointSpec {
            ifname: "eth0".into(),
            mac: None,
            aliases: Vec::new(),
            ports,
            default_route: true,
        },
    }
}

/// A published TCP port on every host address.
pub(super) fn tcp(host: u32, container: u32) -> PortSpec {
    PortSpec::parse("port", "", host, 0, container, "tcp").unwrap()
}
