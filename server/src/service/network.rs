//! Networks: create (with subnets taken from the pools when none is given), get, delete,
//! prune, and the default network weftd makes at start-up.
//!
//! A network to create is settled first ([`NewNetwork::new`]: an empty bridge name becomes
//! `br-<12 hex>`), then validated. A bridge name a foreign interface already holds in the host
//! is refused (ALREADY_EXISTS). Automatic subnets avoid the host's routes, so the kernel's
//! route table is read only when the network asks for one. The default network goes through
//! the very same steps, from a model [`NetworkSpec`] built from the configuration.

use ipnet::IpNet;

use super::{
    Call, Filter, Kind, Make, Networks, Removable, Service, ServiceError, ServiceResult,
    create::Checked, create::Pending, kinds::kind_basics,
};
use crate::{
    model::{
        AddressPool, Invalid, NetworkSpec, PlannedChange, RequestLimits, network::check_deletable,
        new_uid,
    },
    reconcile::Key,
    store::{AutoSubnets, EndpointRow, NetworkRow, RequestRecord},
};

/// Settings of network creation that come from weftd's configuration.
#[derive(Clone, Debug, Default)]
pub struct NetworkDefaults {
    /// Pools for automatic IPv4 subnets.
    pub pools_v4: Vec<AddressPool>,
    /// Pools for automatic IPv6 subnets.
    pub pools_v6: Vec<AddressPool>,
}

/// A network to create, as the client asked for it; made with [`NewNetwork::new`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewNetwork {
    /// The spec, with its bridge name settled; no subnet means an automatic IPv4 one.
    pub spec: NetworkSpec,
    /// Also take an IPv6 subnet from the pools, unless the spec has one.
    pub enable_ipv6: bool,
}

impl NewNetwork {
    /// A network to create from `spec`: an empty bridge name becomes `br-<12 hex>`.
    pub fn new(mut spec: NetworkSpec, enable_ipv6: bool) -> Self {
        if spec.bridge_name.is_empty() {
            let uid = new_uid();
            spec.bridge_name = format!("br-{}", uid.get(..12).unwrap_or(&uid));
        }
        Self { spec, enable_ipv6 }
    }
}

/// A network validates as its spec does.
impl Checked for NewNetwork {
    fn check(&self) -> Result<(), Invalid> {
        self.spec.validate()
    }
    fn within(&self, limits: &RequestLimits) -> Result<(), Invalid> {
        limits.check_network(&self.spec)
    }
}

/// A network as answers show it: its row, its endpoints, and how many leases each subnet has.
#[derive(Clone, Debug)]
pub struct NetworkView {
    /// The stored network.
    pub row: NetworkRow,
    /// Its endpoints.
    pub endpoints: Vec<EndpointRow>,
    /// Leases per subnet.
    pub leases: Vec<(IpNet, u64)>,
}

impl Kind for Networks {
    /// Listed by name (unique, indexed): a List reads one page of rows, not all of them.
    const SORT_COLUMN: Option<&'static str> = Some("name");
    type Row = NetworkRow;
    type View = NetworkView;

    kind_basics!(
        "network",
        Network,
        NetworkRow,
        network_by_id,
        list_networks,
        named
    );

    async fn view(svc: &Service, row: NetworkRow) -> ServiceResult<NetworkView> {
        let endpoints = svc.store().list_endpoints(Some(&row.id)).await?;
        let leases = svc.store().lease_counts(&row.id).await?;
        Ok(NetworkView {
            row,
            endpoints,
            leases,
        })
    }
}

impl Make for Networks {
    const METHOD: &'static str = "CreateNetwork";
    type Spec = NewNetwork;

    async fn persist(
        svc: &Service,
        new: &NewNetwork,
        record: Option<&RequestRecord>,
        dry_run: bool,
    ) -> ServiceResult<NetworkRow> {
        svc.persist_network(new, false, record, dry_run).await
    }

    async fn plan(
        svc: &Service,
        row: NetworkRow,
    ) -> ServiceResult<(NetworkView, Vec<PlannedChange>)> {
        let plan = svc.ctl.plan_network(&row).await?;
        let mut view = Networks::view(svc, row).await?;
        view.endpoints.clear();
        Ok((view, plan))
    }
}

impl Service {
    /// Settles, validates, checks and persists a network (see the module docs).
    async fn persist_network(
        &self,
        new: &NewNetwork,
        is_default: bool,
        record: Option<&RequestRecord>,
        dry_run: bool,
    ) -> ServiceResult<NetworkRow> {
        let spec = &new.spec;
        let auto_v4 = spec.subnets.is_empty();
        let auto_v6 = new.enable_ipv6 && spec.v6().is_none();
        if self.interface_alias("", &spec.bridge_name).await.is_some()
            && self
                .store()
                .list_networks()
                .await?
                .iter()
                .all(|n| n.spec.bridge_name != spec.bridge_name)
        {
            return Err(ServiceError::AlreadyExists(format!(
                "interface {:?} already exists in the host namespace and is not a weft network's bridge; choose another bridge_name",
                spec.bridge_name
            )));
        }
        let host_routes = if auto_v4 || auto_v6 {
            self.host_routes().await?
        } else {
            Vec::new()
        };
        let pools = |wanted: bool, pools: &Vec<AddressPool>| {
            if wanted { pools.clone() } else { Vec::new() }
        };
        let auto = AutoSubnets {
            v4: pools(auto_v4, &self.defaults.pools_v4),
            v6: pools(auto_v6, &self.defaults.pools_v6),
            host_routes,
        };
        Ok(self
            .store()
            .create_network(spec, &auto, is_default, record, dry_run)
            .await?)
    }

    /// Creates the default network (the docker0 of weft) from `new` (made from a model
    /// spec with an automatic IPv4 subnet when it names none), and queues it and the
    /// firewall. Does not wait.
    pub async fn create_default_network(&self, new: &NewNetwork) -> ServiceResult<NetworkRow> {
        new.check()?;
        let row = self.persist_network(new, true, None, false).await?;
        self.ctl.enqueue(Networks::key(row.id.clone()));
        self.ctl.enqueue(Key::Firewall);
        Ok(row)
    }

    /// True if a network called `name` exists.
    pub async fn has_network(&self, name: &str) -> ServiceResult<bool> {
        Ok(self.store().network_by_name(name).await?.is_some())
    }

    /// Deletes every unused network `filter` selects: those with no endpoint, never the
    /// default one nor one already being deleted. Each delete waits in turn (the call's
    /// `wait` is ignored). Answers the names deleted and, for a dry run, the planned changes.
    pub async fn prune_networks(
        &self,
        filter: &Filter,
        call: Call,
    ) -> ServiceResult<(Vec<String>, Vec<PlannedChange>)> {
        let call = Call { wait: true, ..call };
        let mut deleted = Vec::new();
        let mut planned = Vec::new();
        for r in self.store().list_networks().await? {
            if r.is_default || r.deleting || !Networks::selected(&r, filter) {
                continue;
            }
            if !self.store().list_endpoints(Some(&r.id)).await?.is_empty() {
                continue;
            }
            let pending = Pending::start(self, call);
            match Networks::mark(self, &r.spec.name, call.dry_run).await {
                Ok(row) => {
                    planned.extend(self.remove::<Networks>(pending, row, call.dry_run).await?);
                    deleted.push(r.spec.name);
                }
                // Connected to in the meantime: not unused any more.
                Err(ServiceError::FailedPrecondition(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok((deleted, planned))
    }
}

impl Removable for Networks {
    /// Refuses the default network (FAILED_PRECONDITION, [`check_deletable`]), as Prune
    /// skips it, then marks the row.
    async fn mark(svc: &Service, name: &str, dry_run: bool) -> ServiceResult<NetworkRow> {
        if let Some(row) = svc.store().network_by_name(name).await? {
            check_deletable(name, row.is_default)?;
        }
        Ok(svc.store().mark_network_deleting(name, dry_run).await?)
    }

    async fn plan_removal(svc: &Service, row: &NetworkRow) -> ServiceResult<Vec<PlannedChange>> {
        Ok(svc.ctl.plan_network_removal(row).await?)
    }
}
