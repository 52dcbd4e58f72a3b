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

use tonic::{Request, Response};
use weft_proto::v1::{self as pb, network_service_server::NetworkService};

use super::{Answer, convert};
use crate::service::{Filter, Networks};

super::service_impl! {
    impl NetworkService {
        create create_network(pb::CreateNetworkRequest) -> pb::CreateNetworkResponse;
        create connect(pb::ConnectRequest) -> pb::ConnectResponse;
        get get_network(pb::GetNetworkRequest) -> pb::GetNetworkResponse;
        list list_networks(pb::ListNetworksRequest) -> pb::ListNetworksResponse;
        watch watch_networks(pb::WatchNetworksRequest) -> WatchNetworksStream<Networks>;
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

    /// Detaches a namespace.
    async fn disconnect(
        &self,
        req: Request<pb::DisconnectRequest>,
    ) -> Answer<pb::DisconnectResponse> {
        let (call, r) = convert::write_parts(req);
        super::planned(self.svc.disconnect(&r.network, &r.namespace, call).await?)
    }
}
