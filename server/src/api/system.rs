//! SystemService: version, settings and counters of the running weftd. The service gathers
//! the counters (reconciles, kernel writes, queue depth, objects still re-checking); only the start time and the
//! database name are the adapter's own.

use tonic::{Request, Response};
use weft_proto::v1::{self as pb, system_service_server::SystemService};

use super::{Answer, Service, convert};
use crate::{reconcile::Controller, service::NetworkDefaults};

/// The SystemService implementation.
#[derive(Clone, Debug)]
pub struct SystemApi {
    /// The core service.
    svc: Service,
    /// When this weftd started serving.
    started: std::time::SystemTime,
    /// The database, as configured.
    database: String,
}

/// Construction: the start time is taken here.
impl SystemApi {
    /// A service over the controller; `database` is shown as is.
    pub fn new(ctl: Controller, database: String) -> Self {
        Self {
            svc: Service::new(ctl, NetworkDefaults::default()),
            started: std::time::SystemTime::now(),
            database,
        }
    }
}

/// The one RPC of weft.v1.SystemService.
#[tonic::async_trait]
impl SystemService for SystemApi {
    /// The counters and settings of this weftd.
    async fn get_system_info(
        &self,
        _: Request<pb::GetSystemInfoRequest>,
    ) -> Answer<pb::GetSystemInfoResponse> {
        let info = self.svc.system_info().await?;
        Ok(Response::new(convert::system_info_out(
            info,
            self.started,
            &self.database,
        )))
    }
}
