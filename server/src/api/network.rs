//! NetworkService: declared so the API is whole; every RPC answers UNIMPLEMENTED until the
//! networks work (issue 3) lands.

use tonic::{Request, Response, Status};
use weft_proto::v1::{self as pb, network_service_server::NetworkService};

/// The NetworkService placeholder.
#[derive(Clone, Debug, Default)]
pub struct NetworkApi;

fn unimplemented(rpc: &str) -> Status {
    Status::unimplemented(format!(
        "NetworkService.{rpc} is not implemented yet in this weftd; networks are planned (see README)"
    ))
}

#[tonic::async_trait]
impl NetworkService for NetworkApi {
    async fn create_network(
        &self,
        _: Request<pb::CreateNetworkRequest>,
    ) -> Result<Response<pb::CreateNetworkResponse>, Status> {
        Err(unimplemented("CreateNetwork"))
    }
    async fn get_network(
        &self,
        _: Request<pb::GetNetworkRequest>,
    ) -> Result<Response<pb::GetNetworkResponse>, Status> {
        Err(unimplemented("GetNetwork"))
    }
    async fn list_networks(
        &self,
        _: Request<pb::ListNetworksRequest>,
    ) -> Result<Response<pb::ListNetworksResponse>, Status> {
        Err(unimplemented("ListNetworks"))
    }
    async fn delete_network(
        &self,
        _: Request<pb::DeleteNetworkRequest>,
    ) -> Result<Response<pb::DeleteNetworkResponse>, Status> {
        Err(unimplemented("DeleteNetwork"))
    }
    async fn prune_networks(
        &self,
        _: Request<pb::PruneNetworksRequest>,
    ) -> Result<Response<pb::PruneNetworksResponse>, Status> {
        Err(unimplemented("PruneNetworks"))
    }
    async fn connect(
        &self,
        _: Request<pb::ConnectRequest>,
    ) -> Result<Response<pb::ConnectResponse>, Status> {
        Err(unimplemented("Connect"))
    }
    async fn disconnect(
        &self,
        _: Request<pb::DisconnectRequest>,
    ) -> Result<Response<pb::DisconnectResponse>, Status> {
        Err(unimplemented("Disconnect"))
    }
    type WatchNetworksStream = tokio_stream::Empty<Result<pb::WatchNetworksResponse, Status>>;
    async fn watch_networks(
        &self,
        _: Request<pb::WatchNetworksRequest>,
    ) -> Result<Response<Self::WatchNetworksStream>, Status> {
        Err(unimplemented("WatchNetworks"))
    }
}
