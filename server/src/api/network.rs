//! NetworkService: Docker-style bridge networks, endpoints (Connect / Disconnect), prune and
//! watch. Each handler converts, calls the [`Service`], and converts back; see the service
//! for what is checked.
//!
//! - CreateNetwork: the generic create. No subnet means one from the address pools (and
//!   `enable_ipv6` one more); a bridge name a foreign interface holds is ALREADY_EXISTS.
//! - Connect: the generic create of an endpoint: the store leases addresses and host ports
//!   in the same transaction, so concurrent connects never share one.
//! - Delete, Prune, Disconnect: mark, queue and wait; Prune skips networks in use and the
//!   default network.
//! - Get, List, Watch: a network's message lists its endpoints and per-subnet usage.

use tonic::{Request, Response, Status};
use weft_proto::v1::{self as pb, network_service_server::NetworkService};

use super::{
    Answer, Service, convert,
    watch::{self, WatchStream},
};
use crate::{
    reconcile::Controller,
    service::{Filter, NetworkDefaults, Networks},
};

/// The NetworkService implementation.
#[derive(Clone, Debug)]
pub struct NetworkApi {
    svc: Service,
}

/// Construction: the adapter holds the core service, which holds the address pools.
impl NetworkApi {
    /// A service over the controller; automatic subnets come from `defaults`' pools.
    pub fn new(ctl: Controller, defaults: NetworkDefaults) -> Self {
        Self {
            svc: Service::new(ctl, defaults),
        }
    }
}

/// The RPCs of weft.v1.NetworkService. Every handler is convert, call, convert back;
/// errors become statuses through the one `From<ServiceError>` in `api`.
#[tonic::async_trait]
impl NetworkService for NetworkApi {
    /// Idempotent with a request id; waits for Ready unless `wait` is false.
    async fn create_network(
        &self,
        req: Request<pb::CreateNetworkRequest>,
    ) -> Answer<pb::CreateNetworkResponse> {
        super::create(&self.svc, req).await
    }

    /// One network by name, with its endpoints and usage.
    async fn get_network(
        &self,
        req: Request<pb::GetNetworkRequest>,
    ) -> Answer<pb::GetNetworkResponse> {
        let view = self.svc.network(&req.into_inner().name).await?;
        Ok(Response::new(pb::GetNetworkResponse {
            network: Some(convert::network_out(&view)),
        }))
    }

    /// The networks a label selector picks.
    async fn list_networks(
        &self,
        req: Request<pb::ListNetworksRequest>,
    ) -> Answer<pb::ListNetworksResponse> {
        let selector = req.into_inner().label_selector;
        let networks = super::list::<Networks>(&self.svc, &selector, None).await?;
        Ok(Response::new(pb::ListNetworksResponse { networks }))
    }

    /// Deletes one network; its endpoints must be gone first.
    async fn delete_network(
        &self,
        req: Request<pb::DeleteNetworkRequest>,
    ) -> Answer<pb::DeleteNetworkResponse> {
        let call = convert::call_of(&req, req.get_ref().wait, req.get_ref().dry_run);
        let plan = self
            .svc
            .delete::<Networks>(&req.get_ref().name, call)
            .await?;
        Ok(Response::new(pb::DeleteNetworkResponse {
            planned_changes: convert::planned_out(plan),
        }))
    }

    /// Deletes the unused networks a label selector picks.
    async fn prune_networks(
        &self,
        req: Request<pb::PruneNetworksRequest>,
    ) -> Answer<pb::PruneNetworksResponse> {
        let call = convert::call_of(&req, None, req.get_ref().dry_run);
        let filter = Filter::parse(&req.get_ref().label_selector, None)?;
        let (deleted, plan) = self.svc.prune_networks(&filter, call).await?;
        Ok(Response::new(pb::PruneNetworksResponse {
            planned_changes: convert::planned_out(plan),
            deleted,
        }))
    }

    /// Attaches a namespace; idempotent with a request id; waits unless `wait` is false.
    async fn connect(&self, req: Request<pb::ConnectRequest>) -> Answer<pb::ConnectResponse> {
        super::create(&self.svc, req).await
    }

    /// Detaches a namespace.
    async fn disconnect(
        &self,
        req: Request<pb::DisconnectRequest>,
    ) -> Answer<pb::DisconnectResponse> {
        let call = convert::call_of(&req, req.get_ref().wait, req.get_ref().dry_run);
        let r = req.into_inner();
        let plan = self.svc.disconnect(&r.network, &r.namespace, call).await?;
        Ok(Response::new(pb::DisconnectResponse {
            planned_changes: convert::planned_out(plan),
        }))
    }

    /// The stream of WatchNetworks: `WatchStream` over [`Networks`].
    type WatchNetworksStream = WatchStream<Networks>;

    /// Streams changes of the networks a label selector picks.
    async fn watch_networks(
        &self,
        req: Request<pb::WatchNetworksRequest>,
    ) -> Result<Response<Self::WatchNetworksStream>, Status> {
        let r = req.into_inner();
        watch::answer::<Networks>(&self.svc, &r.label_selector, None, r.since_revision)
    }
}
