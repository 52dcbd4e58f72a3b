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
    Answer, Api, convert,
    watch::{self, WatchStream},
};
use crate::service::{Filter, Networks};

/// The RPCs of weft.v1.NetworkService. Every handler is convert, call, convert back;
/// errors become statuses through the one `From<ServiceError>` in `api`.
#[tonic::async_trait]
impl NetworkService for Api {
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
        super::get(&self.svc, req).await
    }

    /// The networks a label selector picks.
    async fn list_networks(
        &self,
        req: Request<pb::ListNetworksRequest>,
    ) -> Answer<pb::ListNetworksResponse> {
        super::list(&self.svc, req).await
    }

    /// Deletes one network; its endpoints must be gone first.
    async fn delete_network(
        &self,
        req: Request<pb::DeleteNetworkRequest>,
    ) -> Answer<pb::DeleteNetworkResponse> {
        let (call, r) = convert::write_parts(req);
        super::planned(self.svc.delete::<Networks>(&r.name, call).await?)
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
        let (call, r) = convert::write_parts(req);
        super::planned(self.svc.disconnect(&r.network, &r.namespace, call).await?)
    }

    /// The stream of WatchNetworks: `WatchStream` over [`Networks`].
    type WatchNetworksStream = WatchStream<Networks>;

    /// Streams changes of the networks a label selector picks.
    async fn watch_networks(
        &self,
        req: Request<pb::WatchNetworksRequest>,
    ) -> Result<Response<Self::WatchNetworksStream>, Status> {
        let slot = self.watch_slot(&req)?;
        let r = req.into_inner();
        watch::answer::<Networks>(
            &self.svc,
            &self.shared,
            slot,
            &r.label_selector,
            None,
            r.since_revision,
        )
    }
}
