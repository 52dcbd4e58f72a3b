//! Endpoints: a namespace attached to a network (Connect and Disconnect).
//!
//! Connect validates the request in the model, starts making the endpoint's veth (a task of
//! its own, `reconcile::prepare`), refuses an interface name a foreign interface already
//! holds inside the namespace (unless it is this very endpoint's), and lets the store settle
//! addresses and ports in one transaction (its UNIQUE constraints make two concurrent
//! connects never get the same address or host port), the veth being made meanwhile. The
//! look before the transaction reads the namespace's listing of interfaces, which leaves out
//! alternative names; where the veth's create then finds the name taken, the Connect looks
//! again and takes its commit back (`PrepareGuard::settle`) before it answers. Both
//! verbs announce the network too, since a network's answer lists its endpoints.

use super::{
    Call, Endpoints, Filter, Kind, Make, Service, ServiceError, ServiceResult, create::Pending,
    kinds::kind_basics,
};
use crate::{
    model::{
        ConnectSpec, HostPorts, Labels, NetworkSpec, PlannedChange, port::DEFAULT_LOCAL_PORT_RANGE,
    },
    reconcile::Key,
    store::{EndpointRow, NetworkRow, RequestRecord},
};

/// The refusal of a Connect whose interface name another interface holds in the namespace.
fn interface_taken(spec: &ConnectSpec) -> ServiceError {
    ServiceError::AlreadyExists(format!(
        "interface {:?} already exists in namespace {:?}; pick another interface_name",
        spec.endpoint.ifname, spec.namespace
    ))
}

/// An endpoint as answers show it: its row, and the spec of its network (for the gateways).
#[derive(Clone, Debug)]
pub struct EndpointView {
    /// The stored endpoint.
    pub row: EndpointRow,
    /// Its network's spec.
    pub network: NetworkSpec,
}

/// Endpoints carry no labels of their own.
static NO_LABELS: Labels = Labels::new();

impl Kind for Endpoints {
    type Row = EndpointRow;
    type View = EndpointView;

    kind_basics!("endpoint", Endpoint, EndpointRow);

    fn labels(_row: &EndpointRow) -> &Labels {
        &NO_LABELS
    }

    fn selected(row: &EndpointRow, filter: &Filter) -> bool {
        filter.namespace(std::iter::once(row.namespace.as_str()))
    }

    async fn by_id(svc: &Service, id: &str) -> ServiceResult<Option<EndpointRow>> {
        Ok(svc.store().endpoint_by_id(id).await?)
    }

    async fn all(svc: &Service) -> ServiceResult<Vec<EndpointRow>> {
        Ok(svc.store().list_endpoints(None).await?)
    }

    async fn view(svc: &Service, row: EndpointRow) -> ServiceResult<EndpointView> {
        let network = svc.network_of(&row).await?.spec;
        Ok(EndpointView { row, network })
    }
}

impl Make for Endpoints {
    const METHOD: &'static str = "Connect";
    type Spec = ConnectSpec;

    fn replay_gone(request_id: &str) -> ServiceError {
        ServiceError::NotFound(format!(
            "the endpoint request {request_id:?} made has been disconnected since"
        ))
    }

    async fn persist(
        svc: &Service,
        spec: &ConnectSpec,
        record: Option<&RequestRecord>,
        dry_run: bool,
    ) -> ServiceResult<EndpointRow> {
        let mut prepared = None;
        if !dry_run {
            // The veth needs nothing the transaction decides: it is made meanwhile (newborn,
            // unmarked; see `reconcile::prepare`), in a task of its own since the transaction
            // takes this thread (`block_in_place`), and deleted again if the transaction
            // fails. Its task starts before the check below, and either may reach the kernel
            // first: its create is exclusive, so it fails where a foreign interface holds the
            // name, and the check passes by the newborn pair it may meet.
            let id = svc.store().fresh_uid();
            let mut guard = svc.ctl.prepare_guard(&id);
            guard.start(&spec.network, &spec.namespace, &spec.endpoint.ifname);
            prepared = Some((id, guard));
        }
        if let Err(e) = svc.refuse_foreign_interface(spec).await {
            if let Some((_, mut guard)) = prepared {
                guard.discard().await;
            }
            return Err(e);
        }
        let local = if spec
            .endpoint
            .ports
            .iter()
            .any(|p| p.host_ports() == HostPorts::Ephemeral)
        {
            svc.local_port_range().await
        } else {
            DEFAULT_LOCAL_PORT_RANGE
        };
        let Some((id, mut guard)) = prepared else {
            return Ok(svc
                .store()
                .connect_in(spec, &local, record, dry_run)
                .await?);
        };
        let (row, undo) = match svc
            .store()
            .connect_undoable(&id, spec, &local, record, false)
            .await
        {
            Ok(done) => done,
            Err(e) => {
                guard.discard().await;
                return Err(e.into());
            }
        };
        guard.committed(undo, &spec.namespace, &spec.endpoint.ifname);
        if guard.settle().await {
            return Err(interface_taken(spec));
        }
        Ok(row)
    }

    async fn plan(
        svc: &Service,
        row: EndpointRow,
    ) -> ServiceResult<(EndpointView, Vec<PlannedChange>)> {
        let net = svc.network_of(&row).await?;
        let plan = svc.ctl.plan_endpoint(&row, &net).await?;
        Ok((
            EndpointView {
                row,
                network: net.spec,
            },
            plan,
        ))
    }

    fn announce(svc: &Service, row: &EndpointRow) {
        svc.ctl
            .events()
            .send(Key::Network(row.network_id.clone()), false);
    }
}

impl Service {
    /// ALREADY_EXISTS when a foreign interface holds the interface name `spec` asks for in
    /// its namespace (one that is this very endpoint's, or a newborn one weft is making,
    /// does not count).
    async fn refuse_foreign_interface(&self, spec: &ConnectSpec) -> ServiceResult<()> {
        // Most names asked for are free, and the namespace's listing says so without a
        // netlink read, which waits for RTNL (this Connect's own veth create may hold it, and
        // so may other Connects'). A name it does not list may still be another interface's
        // alternative name: the create then refuses it, and the Connect looks again after
        // its commit (`PrepareGuard::settle`).
        if self
            .name_unlisted(&spec.namespace, &spec.endpoint.ifname)
            .await
        {
            return Ok(());
        }
        if self
            .interface_alias(&spec.namespace, &spec.endpoint.ifname)
            .await
            .is_some()
            && self
                .store()
                .endpoint_by_names(&spec.network, &spec.namespace)
                .await?
                .is_none()
        {
            return Err(interface_taken(spec));
        }
        Ok(())
    }

    /// The network endpoint `row` is on.
    async fn network_of(&self, row: &EndpointRow) -> ServiceResult<NetworkRow> {
        self.store()
            .network_by_id(&row.network_id)
            .await?
            .ok_or_else(|| ServiceError::NotFound("the network is gone".into()))
    }

    /// Disconnects namespace `namespace` from network `network`; a dry run answers what it
    /// would change. NOT_FOUND says which is missing: the network, or the endpoint.
    pub async fn disconnect(
        &self,
        network: &str,
        namespace: &str,
        call: Call,
    ) -> ServiceResult<Vec<PlannedChange>> {
        let pending = Pending::start(self, call);
        let Some(row) = self.store().endpoint_by_names(network, namespace).await? else {
            return Err(ServiceError::NotFound(
                if self.has_network(network).await? {
                    format!("namespace {namespace:?} is not connected to network {network:?}")
                } else {
                    format!("network {network:?} not found")
                },
            ));
        };
        if call.dry_run {
            let net = self.network_of(&row).await?;
            return Ok(self.ctl.plan_endpoint_removal(&row, &net).await?);
        }
        self.store().mark_endpoint_deleting_kept(&row.id).await?;
        Endpoints::announce(self, &row);
        pending
            .finish(self, Endpoints::key(row.id), row.generation + 1)
            .await?;
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    //! The Connect's own handling of the pair its task makes, against the fake kernel.

    use super::*;
    use crate::{
        kernel::{LinkOps, NetnsOps, NsRef},
        model::{NamespaceSpec, endpoint_host_ifname},
        service::{Namespaces, RequestId},
    };

    /// A Connect whose transaction fails (no such network) deletes the pair its task made,
    /// even when the task failed after its create and so answered nothing (here: a panic in
    /// the host end's IPv6 switch-off).
    #[tokio::test]
    async fn a_failed_connect_deletes_a_pair_whose_task_failed_after_its_create() {
        let dir = tempfile::tempdir().unwrap();
        let (svc, k, call) = with_ns1(dir.path()).await;
        k.panic_next("ensure_sysctl");
        let refused = svc
            .create::<Endpoints>(
                Ok(ConnectSpec::plain("nowhere", "ns1")),
                &RequestId::default(),
                call,
            )
            .await;
        assert!(
            matches!(refused, Err(ServiceError::NotFound(_))),
            "{refused:?}"
        );
        assert!(
            k.calls().iter().any(|c| c.starts_with("create_veth wv")),
            "the pair was not made: {:?}",
            k.calls()
        );
        let ns1 = NsRef::path(k.named_netns_path("ns1"));
        assert!(k.get_link_bare(&ns1, "eth0").await.unwrap().is_none());
        assert!(
            host_ends(&k).is_empty(),
            "left in the host: {:?}",
            host_ends(&k)
        );
    }

    /// A service, its fake kernel and a call's settings.
    type Fake = (
        Service,
        std::sync::Arc<crate::kernel::fake::FakeKernel>,
        Call,
    );

    /// A service on the fake kernel with namespace "ns1" (recorded and made), nothing
    /// reconciled (no workers run).
    async fn with_ns1(dir: &std::path::Path) -> Fake {
        let (svc, k, call) = crate::service::fake_service(dir).await;
        svc.create::<Namespaces>(
            Ok(NamespaceSpec {
                name: "ns1".into(),
                labels: Default::default(),
                adopted_path: None,
            }),
            &RequestId::default(),
            call,
        )
        .await
        .unwrap();
        k.create_named_netns("ns1").await.unwrap();
        (svc, k, call)
    }

    /// [`with_ns1`], and network "web" (10.88.0.0/24).
    async fn web_and_ns1(dir: &std::path::Path) -> Fake {
        let (svc, k, call) = with_ns1(dir).await;
        let web = crate::model::NetworkSpec {
            name: "web".into(),
            labels: Default::default(),
            bridge_name: "br-web".into(),
            subnets: vec![
                crate::model::SubnetSpec::parse("subnet", "10.88.0.0/24", "", "", &[]).unwrap(),
            ],
            internal: false,
            icc: true,
            masquerade: true,
            mtu: 0,
            dns: true,
        };
        svc.store()
            .create_network(&web, &Default::default(), false, None, false)
            .await
            .unwrap();
        (svc, k, call)
    }

    /// The endpoint interfaces (host ends) the fake kernel has in the host.
    fn host_ends(k: &crate::kernel::fake::FakeKernel) -> Vec<String> {
        k.links(&NsRef::Host)
            .into_iter()
            .map(|l| l.name)
            .filter(|n| n.starts_with(&endpoint_host_ifname("")))
            .collect()
    }

    /// A Connect whose look before its transaction finds the name free, and whose veth
    /// create then finds it taken (here a foreign interface the listing leaves out, as the
    /// kernel's leaves out an alternative name), is refused with ALREADY_EXISTS once the
    /// create has said so, and taken back: no endpoint, no pair, and its request id and
    /// address free again for the Connect that follows under another name.
    #[tokio::test]
    async fn a_connect_whose_create_finds_the_name_taken_is_refused_and_taken_back() {
        let dir = tempfile::tempdir().unwrap();
        let (svc, k, call) = web_and_ns1(dir.path()).await;
        let ns1 = NsRef::path(k.named_netns_path("ns1"));
        let foreign = k.add_foreign_link(&ns1, "eth0", "dummy");
        k.unlist("eth0");
        let rid = |spec: &ConnectSpec| RequestId {
            id: "once".into(),
            fingerprint: format!("{spec:?}"),
        };
        let mut events = svc.ctl.events().subscribe();

        let spec = ConnectSpec::plain("web", "ns1");
        let refused = svc
            .create::<Endpoints>(Ok(spec.clone()), &rid(&spec), call)
            .await;
        match refused {
            Err(ServiceError::AlreadyExists(m)) => {
                assert!(m.contains("pick another interface_name"), "{m}")
            }
            other => panic!("not refused: {other:?}"),
        }
        assert!(
            k.calls().iter().any(|c| c.starts_with("create_veth wv")),
            "the create was tried: {:?}",
            k.calls()
        );
        assert!(svc.store().list_endpoints(None).await.unwrap().is_empty());
        assert!(
            svc.store().past_request("once").await.unwrap().is_none(),
            "the request id is still taken"
        );
        let eth0 = k.get_link_bare(&ns1, "eth0").await.unwrap().unwrap();
        assert_eq!(eth0.index, foreign, "the foreign interface is as it was");
        assert!(
            host_ends(&k).is_empty(),
            "left in the host: {:?}",
            host_ends(&k)
        );
        let mut deleted = false;
        while let Ok(ev) = events.try_recv() {
            deleted |= matches!(&ev.key, Key::Endpoint(_)) && ev.deleted;
        }
        assert!(deleted, "no event told of the endpoint's removal");

        let mut other = ConnectSpec::plain("web", "ns1");
        other.endpoint.ifname = "eth1".into();
        svc.create::<Endpoints>(Ok(other.clone()), &rid(&other), call)
            .await
            .unwrap();
        let made = svc.store().endpoint_by_names("web", "ns1").await.unwrap();
        let made = made.expect("the second Connect made its endpoint");
        assert_eq!(made.addresses[0].addr().to_string(), "10.88.0.2");
    }

    /// A create refused for a taken name whose look after the commit finds the name free
    /// again (the holder went meanwhile) keeps the endpoint: the Connect answers it, for its
    /// reconcile to make the pair.
    #[tokio::test]
    async fn a_connect_whose_taken_name_is_free_again_keeps_its_endpoint() {
        let dir = tempfile::tempdir().unwrap();
        let (svc, k, call) = web_and_ns1(dir.path()).await;
        k.fail("create_veth", None, nix::errno::Errno::EEXIST, 1);
        let (view, _) = svc
            .create::<Endpoints>(
                Ok(ConnectSpec::plain("web", "ns1")),
                &RequestId::default(),
                call,
            )
            .await
            .unwrap();
        assert_eq!(view.row.spec.ifname, "eth0");
        let kept = svc.store().endpoint_by_names("web", "ns1").await.unwrap();
        assert_eq!(kept.map(|r| r.id), Some(view.row.id));
    }

    /// Drives `connect` until the endpoint of ns1 on web is committed (panics if the call
    /// ends first), and hands the call back still running.
    async fn until_committed<F: std::future::Future>(
        svc: &Service,
        connect: F,
    ) -> std::pin::Pin<Box<F>>
    where
        F::Output: std::fmt::Debug,
    {
        let mut connect = Box::pin(connect);
        loop {
            tokio::select! {
                ended = &mut connect => panic!("the Connect ended before its create: {ended:?}"),
                () = tokio::time::sleep(std::time::Duration::from_millis(5)) => {}
            }
            if svc
                .store()
                .endpoint_by_names("web", "ns1")
                .await
                .unwrap()
                .is_some()
            {
                return connect;
            }
        }
    }

    /// Waits (up to 10 s) until ns1 has no endpoint on web.
    async fn until_taken_back(svc: &Service) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while svc
            .store()
            .endpoint_by_names("web", "ns1")
            .await
            .unwrap()
            .is_some()
        {
            assert!(std::time::Instant::now() < deadline, "the endpoint stayed");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// A Connect dropped (its client gone) after its commit, while its create is still in
    /// flight, is still taken back when the create finds the name taken: the dropped
    /// guard's settling looks again and undoes it, where it would have queued the endpoint.
    #[tokio::test]
    async fn a_dropped_connect_whose_create_finds_the_name_taken_is_taken_back() {
        let dir = tempfile::tempdir().unwrap();
        let (svc, k, call) = web_and_ns1(dir.path()).await;
        let ns1 = NsRef::path(k.named_netns_path("ns1"));
        k.add_foreign_link(&ns1, "eth0", "dummy");
        k.unlist("eth0");
        k.delay_creates(std::time::Duration::from_millis(1500));
        let rid = RequestId::default();
        let connect = svc.create::<Endpoints>(Ok(ConnectSpec::plain("web", "ns1")), &rid, call);
        drop(until_committed(&svc, connect).await);
        until_taken_back(&svc).await;
        assert!(
            host_ends(&k).is_empty(),
            "left in the host: {:?}",
            host_ends(&k)
        );
    }

    /// A retry of a Connect (the same request id) that arrives while the first is settling
    /// waits for it instead of answering with its endpoint, and once the first has taken the
    /// endpoint back, is refused as the first was: it is not told of an endpoint that is
    /// about to go.
    #[tokio::test]
    async fn a_retry_during_a_take_back_is_refused_not_answered_with_the_endpoint() {
        let dir = tempfile::tempdir().unwrap();
        let (svc, k, call) = web_and_ns1(dir.path()).await;
        let ns1 = NsRef::path(k.named_netns_path("ns1"));
        k.add_foreign_link(&ns1, "eth0", "dummy");
        k.unlist("eth0");
        k.delay_creates(std::time::Duration::from_millis(500));
        let spec = ConnectSpec::plain("web", "ns1");
        let rid = RequestId {
            id: "retried".into(),
            fingerprint: format!("{spec:?}"),
        };
        let first = svc.create::<Endpoints>(Ok(spec.clone()), &rid, call);
        let first = until_committed(&svc, first).await;
        let retry = svc.create::<Endpoints>(Ok(spec.clone()), &rid, call);
        let (first, retry) = tokio::join!(first, retry);
        for (which, answer) in [("first", first), ("retry", retry)] {
            assert!(
                matches!(answer, Err(ServiceError::AlreadyExists(_))),
                "{which}: {answer:?}"
            );
        }
        assert!(svc.store().list_endpoints(None).await.unwrap().is_empty());
    }
}
