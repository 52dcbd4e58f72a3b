//! NetworkService: Docker-style bridge networks, endpoints (connect/disconnect), prune, watch.

use std::{net::IpAddr, sync::Arc};

use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use weft_proto::v1::{self as pb, network_service_server::NetworkService};

use super::{
    ApiError, ApiResult, Idempotency, Pending, convert, idempotency, retry_if_raced, watch,
};
use crate::{
    kernel::NsRef,
    model::{
        AddressPool, ConnectSpec, EndpointSpec, Invalid, NetworkSpec, PortSpec, Selector,
        SubnetSpec, link::parse_mac, new_uid,
    },
    reconcile::{Controller, Key},
    store::{AutoSubnets, EndpointRow, NetworkRow, RequestRecord},
};

/// Settings of the network service that come from weftd's configuration.
#[derive(Clone, Debug)]
pub struct NetworkDefaults {
    /// Pools for automatic IPv4 subnets.
    pub pools_v4: Vec<AddressPool>,
    /// Pools for automatic IPv6 subnets.
    pub pools_v6: Vec<AddressPool>,
}

/// How [`NetworkApi::create_spec`] makes a network.
#[derive(Clone, Copy, Debug, Default)]
pub struct Creation<'a> {
    /// Take an IPv4 subnet from the pools.
    pub auto_v4: bool,
    /// Take an IPv6 subnet from the pools.
    pub auto_v6: bool,
    /// This is the default network.
    pub is_default: bool,
    /// The client's request id, recorded with it.
    pub request: Option<&'a RequestRecord>,
    /// Check and plan only.
    pub dry_run: bool,
}

/// The NetworkService implementation.
#[derive(Clone, Debug)]
pub struct NetworkApi {
    ctl: Controller,
    defaults: NetworkDefaults,
}

/// Builds a settled network spec from a request body: subnets parsed, defaults applied, bridge
/// name generated when empty. Returns the spec and whether an IPv4 and an IPv6 subnet must be
/// chosen automatically.
pub fn network_in(body: &pb::Network) -> Result<(NetworkSpec, bool, bool), Invalid> {
    let subnets = body
        .subnets
        .iter()
        .enumerate()
        .map(|(i, s)| {
            SubnetSpec::parse(
                &format!("network.subnets[{i}]"),
                &s.subnet,
                &s.gateway,
                &s.ip_range,
                &s.reserved,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let auto_v4 = subnets.is_empty();
    let auto_v6 = body.enable_ipv6 && !subnets.iter().any(|s| !s.is_v4());
    let bridge_name = if body.bridge_name.is_empty() {
        format!("br-{}", &new_uid()[..12])
    } else {
        body.bridge_name.clone()
    };
    let spec = NetworkSpec {
        name: body.name.clone(),
        labels: body
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        bridge_name,
        subnets,
        internal: body.internal,
        icc: body.enable_icc.unwrap_or(true),
        masquerade: body.masquerade.unwrap_or(true),
        mtu: body.mtu,
    };
    spec.validate()?;
    Ok((spec, auto_v4, auto_v6))
}

fn ports_out(ports: &[PortSpec]) -> Vec<pb::PublishedPort> {
    ports
        .iter()
        .map(|p| pb::PublishedPort {
            host_ip: p.host_ip.map(|a| a.to_string()).unwrap_or_default(),
            host_port: u32::from(p.host_port),
            host_port_end: if p.host_port_end == p.host_port {
                0
            } else {
                u32::from(p.host_port_end)
            },
            container_port: u32::from(p.container_port),
            protocol: p.protocol.as_str().into(),
        })
        .collect()
}

/// A stored endpoint to proto.
pub fn endpoint_out(e: &EndpointRow, net: &NetworkSpec) -> pb::Endpoint {
    let addr = |v4: bool| {
        e.addresses
            .iter()
            .find(|a| a.addr().is_ipv4() == v4)
            .map(|a| a.to_string())
            .unwrap_or_default()
    };
    let gw = |v4: bool| {
        if e.addresses.iter().any(|a| a.addr().is_ipv4() == v4) {
            net.subnets
                .iter()
                .find(|s| s.is_v4() == v4)
                .map(|s| s.gateway.to_string())
                .unwrap_or_default()
        } else {
            String::new()
        }
    };
    pb::Endpoint {
        network: e.network.clone(),
        namespace: e.namespace.clone(),
        interface_name: e.spec.ifname.clone(),
        ipv4_address: addr(true),
        ipv6_address: addr(false),
        mac_address: if e.observed.mac.is_empty() {
            e.spec.mac.clone().unwrap_or_default()
        } else {
            e.observed.mac.clone()
        },
        ipv4_gateway: gw(true),
        ipv6_gateway: gw(false),
        aliases: e.spec.aliases.clone(),
        published_ports: ports_out(&e.spec.ports),
        status: Some(convert::status_out(&e.status)),
    }
}

impl NetworkApi {
    /// A service over the controller.
    pub fn new(ctl: Controller, defaults: NetworkDefaults) -> Self {
        Self { ctl, defaults }
    }

    async fn network_out(ctl: &Controller, r: &NetworkRow) -> ApiResult<pb::Network> {
        let endpoints = ctl.store().list_endpoints(Some(&r.id)).await?;
        let counts = ctl.store().lease_counts(&r.id).await?;
        let usage = r
            .spec
            .subnets
            .iter()
            .map(|s| pb::SubnetUsage {
                subnet: s.subnet.to_string(),
                leased: counts
                    .iter()
                    .find(|(c, _)| *c == s.subnet)
                    .map(|(_, n)| *n)
                    .unwrap_or(0),
                capacity: u64::try_from(s.capacity()).unwrap_or(u64::MAX),
            })
            .collect();
        Ok(pb::Network {
            name: r.spec.name.clone(),
            labels: r
                .spec
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            bridge_name: r.spec.bridge_name.clone(),
            subnets: r
                .spec
                .subnets
                .iter()
                .map(|s| pb::Subnet {
                    subnet: s.subnet.to_string(),
                    gateway: s.gateway.to_string(),
                    ip_range: s.ip_range.map(|r| r.to_string()).unwrap_or_default(),
                    reserved: s.reserved.iter().map(|a| a.to_string()).collect(),
                })
                .collect(),
            internal: r.spec.internal,
            enable_icc: Some(r.spec.icc),
            masquerade: Some(r.spec.masquerade),
            mtu: r.spec.mtu,
            generation: r.generation,
            status: Some(convert::status_out(&r.status)),
            uid: r.id.clone(),
            create_time: Some(convert::timestamp(r.created_at)),
            endpoints: endpoints.iter().map(|e| endpoint_out(e, &r.spec)).collect(),
            usage,
            enable_ipv6: r.spec.v6().is_some(),
            default: r.is_default,
        })
    }

    async fn get(&self, name: &str) -> ApiResult<pb::Network> {
        let row = self
            .ctl
            .store()
            .network_by_name(name)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("network {name:?} not found")))?;
        Self::network_out(&self.ctl, &row).await
    }

    /// Creates a network from a settled spec (used by the API and for the default network).
    pub async fn create_spec(
        ctl: &Controller,
        defaults: &NetworkDefaults,
        spec: &NetworkSpec,
        how: Creation<'_>,
    ) -> ApiResult<NetworkRow> {
        let taken_in_kernel = ctl
            .kernel()
            .get_link(&NsRef::Host, &spec.bridge_name)
            .await
            .ok()
            .flatten()
            .is_some();
        if taken_in_kernel
            && ctl
                .store()
                .list_networks()
                .await?
                .iter()
                .all(|n| n.spec.bridge_name != spec.bridge_name)
        {
            return Err(ApiError::AlreadyExists(format!(
                "interface {:?} already exists in the host namespace and is not a weft network's bridge; choose another bridge_name",
                spec.bridge_name
            )));
        }
        let Creation {
            auto_v4,
            auto_v6,
            is_default,
            request,
            dry_run,
        } = how;
        let host_routes = if auto_v4 || auto_v6 {
            ctl.kernel()
                .route_destinations(&NsRef::Host)
                .await
                .map_err(|e| ApiError::Unavailable(e.to_string()))?
        } else {
            Vec::new()
        };
        let auto = AutoSubnets {
            v4: if auto_v4 {
                defaults.pools_v4.clone()
            } else {
                Vec::new()
            },
            v6: if auto_v6 {
                defaults.pools_v6.clone()
            } else {
                Vec::new()
            },
            host_routes,
        };
        Ok(ctl
            .store()
            .create_network(spec, &auto, is_default, request, dry_run)
            .await?)
    }

    async fn create(
        &self,
        req: Request<pb::CreateNetworkRequest>,
    ) -> ApiResult<(pb::Network, Vec<pb::PlannedChange>)> {
        let pending = Pending::start(&self.ctl, &req, req.get_ref().wait);
        let mut r = req.into_inner();
        let request_id = std::mem::take(&mut r.request_id);
        r.wait = None;
        let dry_run = std::mem::take(&mut r.dry_run);
        let idem = if dry_run {
            Idempotency::New(None)
        } else {
            idempotency(&self.ctl, "CreateNetwork", &request_id, &r).await?
        };
        let record = match idem {
            Idempotency::New(record) => record,
            Idempotency::Replay(id) => {
                let row = self.ctl.store().network_by_id(&id).await?.ok_or_else(|| {
                    ApiError::NotFound(format!(
                        "what request {request_id:?} made has been deleted since"
                    ))
                })?;
                pending
                    .replay(&self.ctl, Key::Network(id), row.generation)
                    .await?;
                return Ok((Self::network_out(&self.ctl, &row).await?, Vec::new()));
            }
        };
        let body = r.network.ok_or_else(|| {
            Invalid::new(
                "network",
                "the request needs a network: {\"network\": {\"name\": ...}}",
            )
        })?;
        let (spec, auto_v4, auto_v6) = network_in(&body)?;
        let row = Self::create_spec(
            &self.ctl,
            &self.defaults,
            &spec,
            Creation {
                auto_v4,
                auto_v6,
                is_default: false,
                request: record.as_ref(),
                dry_run,
            },
        )
        .await?;
        if dry_run {
            let plan = self.ctl.plan_network(&row).await?;
            let mut out = Self::network_out(&self.ctl, &row).await?;
            out.endpoints.clear();
            return Ok((out, convert::planned_out(plan)));
        }
        pending
            .finish(&self.ctl, Key::Network(row.id.clone()), row.generation)
            .await?;
        Ok((self.get(&spec.name).await?, Vec::new()))
    }

    /// Deletes a network by name; with `dry_run`, checks and plans only.
    async fn delete_by_name(
        &self,
        name: &str,
        pending: Pending,
        dry_run: bool,
    ) -> ApiResult<Vec<pb::PlannedChange>> {
        let row = self
            .ctl
            .store()
            .mark_network_deleting(name, dry_run)
            .await?;
        if dry_run {
            return Ok(convert::planned_out(
                self.ctl.plan_network_removal(&row).await?,
            ));
        }
        pending
            .finish(&self.ctl, Key::Network(row.id), row.generation)
            .await?;
        Ok(Vec::new())
    }

    async fn connect(
        &self,
        req: Request<pb::ConnectRequest>,
    ) -> ApiResult<(pb::Endpoint, Vec<pb::PlannedChange>)> {
        let pending = Pending::start(&self.ctl, &req, req.get_ref().wait);
        let mut r = req.into_inner();
        let request_id = std::mem::take(&mut r.request_id);
        r.wait = None;
        let dry_run = std::mem::take(&mut r.dry_run);
        let idem = if dry_run {
            Idempotency::New(None)
        } else {
            idempotency(&self.ctl, "Connect", &request_id, &r).await?
        };
        let record = match idem {
            Idempotency::New(record) => record,
            Idempotency::Replay(id) => {
                let row = self.ctl.store().endpoint_by_id(&id).await?.ok_or_else(|| {
                    ApiError::NotFound(format!(
                        "the endpoint request {request_id:?} made has been disconnected since"
                    ))
                })?;
                pending
                    .replay(&self.ctl, Key::Endpoint(id.clone()), row.generation)
                    .await?;
                return Ok((self.endpoint_answer(&id).await?, Vec::new()));
            }
        };
        let ipv4 = match r.ipv4_address.trim() {
            "" => None,
            s => match s.parse::<IpAddr>() {
                Ok(IpAddr::V4(a)) => Some(a),
                _ => {
                    return Err(Invalid::new(
                        "ipv4_address",
                        format!("{s:?} is not an IPv4 address (give it without a prefix)"),
                    )
                    .into());
                }
            },
        };
        let ipv6 = match r.ipv6_address.trim() {
            "" => None,
            s => match s.parse::<IpAddr>() {
                Ok(IpAddr::V6(a)) => Some(a),
                _ => {
                    return Err(Invalid::new(
                        "ipv6_address",
                        format!("{s:?} is not an IPv6 address (give it without a prefix)"),
                    )
                    .into());
                }
            },
        };
        let mac = if r.mac_address.is_empty() {
            None
        } else {
            Some(parse_mac("mac_address", &r.mac_address)?)
        };
        let ports = r
            .published_ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                PortSpec::parse(
                    &format!("published_ports[{i}]"),
                    &p.host_ip,
                    p.host_port,
                    p.host_port_end,
                    p.container_port,
                    &p.protocol,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let spec = ConnectSpec {
            network: r.network.clone(),
            namespace: r.namespace.clone(),
            ipv4,
            ipv6,
            endpoint: EndpointSpec {
                ifname: if r.interface_name.is_empty() {
                    "eth0".into()
                } else {
                    r.interface_name.clone()
                },
                mac,
                aliases: r.aliases.clone(),
                ports,
                default_route: !r.skip_default_route,
            },
        };
        spec.validate()?;
        if let Ok(ns) = self.ctl.ns_ref(&spec.namespace).await
            && self
                .ctl
                .kernel()
                .get_link(&ns, &spec.endpoint.ifname)
                .await
                .ok()
                .flatten()
                .is_some()
            && self
                .ctl
                .store()
                .endpoint_by_names(&spec.network, &spec.namespace)
                .await?
                .is_none()
        {
            return Err(ApiError::AlreadyExists(format!(
                "interface {:?} already exists in namespace {:?}; pick another interface_name",
                spec.endpoint.ifname, spec.namespace
            )));
        }
        let row = self
            .ctl
            .store()
            .connect(&spec, record.as_ref(), dry_run)
            .await?;
        if dry_run {
            let net = self
                .ctl
                .store()
                .network_by_id(&row.network_id)
                .await?
                .ok_or_else(|| ApiError::NotFound("the network is gone".into()))?;
            let plan = self.ctl.plan_endpoint(&row, &net).await?;
            return Ok((endpoint_out(&row, &net.spec), convert::planned_out(plan)));
        }
        self.ctl
            .events()
            .send(Key::Network(row.network_id.clone()), false);
        pending
            .finish(&self.ctl, Key::Endpoint(row.id.clone()), row.generation)
            .await?;
        Ok((self.endpoint_answer(&row.id).await?, Vec::new()))
    }

    /// The endpoint with this uid, as Connect answers it.
    async fn endpoint_answer(&self, id: &str) -> ApiResult<pb::Endpoint> {
        let row = self
            .ctl
            .store()
            .endpoint_by_id(id)
            .await?
            .ok_or_else(|| ApiError::NotFound("the endpoint is gone".into()))?;
        let net = self
            .ctl
            .store()
            .network_by_id(&row.network_id)
            .await?
            .ok_or_else(|| ApiError::NotFound("the network is gone".into()))?;
        Ok(endpoint_out(&row, &net.spec))
    }

    async fn disconnect(
        &self,
        req: Request<pb::DisconnectRequest>,
    ) -> ApiResult<Vec<pb::PlannedChange>> {
        let pending = Pending::start(&self.ctl, &req, req.get_ref().wait);
        let r = req.into_inner();
        let Some(row) = self
            .ctl
            .store()
            .endpoint_by_names(&r.network, &r.namespace)
            .await?
        else {
            // Say which is missing: the network, or its endpoint for this namespace.
            let network = self.ctl.store().network_by_name(&r.network).await?;
            return Err(ApiError::NotFound(match network {
                None => format!("network {:?} not found", r.network),
                Some(_) => format!(
                    "namespace {:?} is not connected to network {:?}",
                    r.namespace, r.network
                ),
            }));
        };
        if r.dry_run {
            let net = self
                .ctl
                .store()
                .network_by_id(&row.network_id)
                .await?
                .ok_or_else(|| ApiError::NotFound("the network is gone".into()))?;
            return Ok(convert::planned_out(
                self.ctl.plan_endpoint_removal(&row, &net).await?,
            ));
        }
        self.ctl.store().mark_endpoint_deleting(&row.id).await?;
        self.ctl
            .events()
            .send(Key::Network(row.network_id.clone()), false);
        pending
            .finish(&self.ctl, Key::Endpoint(row.id.clone()), row.generation + 1)
            .await?;
        Ok(Vec::new())
    }
}

fn selected(ctl: &Controller, sel: Selector) -> watch::Source<pb::Network> {
    let sel = Arc::new(sel);
    let (c1, s1) = (ctl.clone(), sel.clone());
    let (c2, s2) = (ctl.clone(), sel);
    watch::Source {
        id_of: |k| match k {
            Key::Network(id) => Some(id),
            _ => None,
        },
        list: Arc::new(move || {
            let (c, s) = (c1.clone(), s1.clone());
            Box::pin(async move {
                let mut out = Vec::new();
                for r in c.store().list_networks().await? {
                    if s.matches(&r.spec.labels) {
                        out.push((r.id.clone(), NetworkApi::network_out(&c, &r).await?));
                    }
                }
                Ok(out)
            })
        }),
        get: Arc::new(move |id| {
            let (c, s) = (c2.clone(), s2.clone());
            Box::pin(async move {
                match c.store().network_by_id(&id).await? {
                    Some(r) if s.matches(&r.spec.labels) => {
                        Ok(Some(NetworkApi::network_out(&c, &r).await?))
                    }
                    _ => Ok(None),
                }
            })
        }),
        tombstone: |uid| pb::Network {
            uid: uid.to_string(),
            ..Default::default()
        },
    }
}

#[tonic::async_trait]
impl NetworkService for NetworkApi {
    async fn create_network(
        &self,
        req: Request<pb::CreateNetworkRequest>,
    ) -> Result<Response<pb::CreateNetworkResponse>, Status> {
        let has_id = !req.get_ref().request_id.is_empty();
        let (network, planned_changes) = retry_if_raced(req, has_id, |r| self.create(r)).await?;
        Ok(Response::new(pb::CreateNetworkResponse {
            planned_changes,
            network: Some(network),
        }))
    }

    async fn get_network(
        &self,
        req: Request<pb::GetNetworkRequest>,
    ) -> Result<Response<pb::GetNetworkResponse>, Status> {
        let network = self.get(&req.into_inner().name).await?;
        Ok(Response::new(pb::GetNetworkResponse {
            network: Some(network),
        }))
    }

    async fn list_networks(
        &self,
        req: Request<pb::ListNetworksRequest>,
    ) -> Result<Response<pb::ListNetworksResponse>, Status> {
        let sel = Selector::parse(&req.into_inner().label_selector).map_err(ApiError::from)?;
        let mut networks = Vec::new();
        for r in self
            .ctl
            .store()
            .list_networks()
            .await
            .map_err(ApiError::from)?
        {
            if sel.matches(&r.spec.labels) {
                networks.push(Self::network_out(&self.ctl, &r).await?);
            }
        }
        Ok(Response::new(pb::ListNetworksResponse { networks }))
    }

    async fn delete_network(
        &self,
        req: Request<pb::DeleteNetworkRequest>,
    ) -> Result<Response<pb::DeleteNetworkResponse>, Status> {
        let pending = Pending::start(&self.ctl, &req, req.get_ref().wait);
        let pb::DeleteNetworkRequest { name, dry_run, .. } = req.into_inner();
        if name.is_empty() {
            return Err(
                ApiError::from(Invalid::new("name", "which network? the name is empty")).into(),
            );
        }
        let planned_changes = self.delete_by_name(&name, pending, dry_run).await?;
        Ok(Response::new(pb::DeleteNetworkResponse { planned_changes }))
    }

    async fn prune_networks(
        &self,
        req: Request<pb::PruneNetworksRequest>,
    ) -> Result<Response<pb::PruneNetworksResponse>, Status> {
        let sel = Selector::parse(&req.get_ref().label_selector).map_err(ApiError::from)?;
        let dry_run = req.get_ref().dry_run;
        let mut deleted = Vec::new();
        let mut planned_changes = Vec::new();
        for r in self
            .ctl
            .store()
            .list_networks()
            .await
            .map_err(ApiError::from)?
        {
            if r.is_default || r.deleting || !sel.matches(&r.spec.labels) {
                continue;
            }
            if !self
                .ctl
                .store()
                .list_endpoints(Some(&r.id))
                .await
                .map_err(ApiError::from)?
                .is_empty()
            {
                continue;
            }
            let pending = Pending::start(&self.ctl, &req, None);
            match self.delete_by_name(&r.spec.name, pending, dry_run).await {
                Ok(plan) => {
                    deleted.push(r.spec.name.clone());
                    planned_changes.extend(plan);
                }
                // Connected to in the meantime: not unused any more.
                Err(ApiError::Store(crate::store::StoreError::FailedPrecondition(_))) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Response::new(pb::PruneNetworksResponse {
            planned_changes,
            deleted,
        }))
    }

    async fn connect(
        &self,
        req: Request<pb::ConnectRequest>,
    ) -> Result<Response<pb::ConnectResponse>, Status> {
        let has_id = !req.get_ref().request_id.is_empty();
        let (endpoint, planned_changes) =
            retry_if_raced(req, has_id, |r| NetworkApi::connect(self, r)).await?;
        Ok(Response::new(pb::ConnectResponse {
            planned_changes,
            endpoint: Some(endpoint),
        }))
    }

    async fn disconnect(
        &self,
        req: Request<pb::DisconnectRequest>,
    ) -> Result<Response<pb::DisconnectResponse>, Status> {
        let planned_changes = NetworkApi::disconnect(self, req).await?;
        Ok(Response::new(pb::DisconnectResponse { planned_changes }))
    }

    type WatchNetworksStream = ReceiverStream<Result<pb::WatchNetworksResponse, Status>>;

    async fn watch_networks(
        &self,
        req: Request<pb::WatchNetworksRequest>,
    ) -> Result<Response<Self::WatchNetworksStream>, Status> {
        let req = req.into_inner();
        let sel = Selector::parse(&req.label_selector).map_err(ApiError::from)?;
        let start = watch::Start::new(self.ctl.events(), req.since_revision)?;
        Ok(Response::new(watch::spawn(
            selected(&self.ctl, sel),
            start,
            |t, n, revision| pb::WatchNetworksResponse {
                r#type: t as i32,
                revision,
                network: Some(n),
            },
        )))
    }
}
