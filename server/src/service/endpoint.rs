//! Endpoints: a namespace attached to a network (Connect and Disconnect).
//!
//! Connect validates the request in the model, starts making the endpoint's veth (a task of
//! its own, `reconcile::prepare`), refuses an interface name a foreign interface already
//! holds inside the namespace (unless it is this very endpoint's), and lets the store settle
//! addresses and ports in one transaction (its UNIQUE constraints make two concurrent
//! connects never get the same address or host port), the veth being made meanwhile. Both
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
        let row = svc
            .store()
            .connect_as(&id, spec, &local, record, false)
            .await;
        if row.is_err() {
            guard.discard().await;
        } else {
            guard.made().await;
            guard.disarm();
        }
        Ok(row?)
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
            return Err(ServiceError::AlreadyExists(format!(
                "interface {:?} already exists in namespace {:?}; pick another interface_name",
                spec.endpoint.ifname, spec.namespace
            )));
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
        let (svc, k, call) = crate::service::fake_service(dir.path()).await;
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
        let left: Vec<String> = k
            .links(&NsRef::Host)
            .into_iter()
            .map(|l| l.name)
            .filter(|n| n.starts_with(&endpoint_host_ifname("")))
            .collect();
        assert!(left.is_empty(), "left in the host: {left:?}");
    }
}
