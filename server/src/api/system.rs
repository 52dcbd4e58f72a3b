//! SystemService: version, settings and counters of the running weftd.

use tonic::{Request, Response};
use weft_proto::v1::{self as pb, system_service_server::SystemService};

use super::{Answer, Service, convert};
use crate::{reconcile::Controller, service::NetworkDefaults};

/// The SystemService implementation.
#[derive(Clone, Debug)]
pub struct SystemApi {
    svc: Service,
    started: std::time::SystemTime,
    database: String,
}

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

#[tonic::async_trait]
impl SystemService for SystemApi {
    /// The counters and settings of this weftd.
    async fn get_system_info(
        &self,
        _: Request<pb::GetSystemInfoRequest>,
    ) -> Answer<pb::GetSystemInfoResponse> {
        let info = self.svc.system_info();
        Ok(Response::new(convert::system_info_out(
            info,
            self.started,
            &self.database,
        )))
    }
}
