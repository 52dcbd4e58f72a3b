//! SystemService: version, settings and counters of the running weftd.

use std::sync::atomic::Ordering::Relaxed;

use tonic::{Request, Response, Status};
use weft_proto::v1::{self as pb, system_service_server::SystemService};

use crate::reconcile::Controller;

/// The SystemService implementation.
#[derive(Clone, Debug)]
pub struct SystemApi {
    ctl: Controller,
    started: std::time::SystemTime,
    database: String,
}

impl SystemApi {
    /// A service over the controller; `database` is shown as is.
    pub fn new(ctl: Controller, database: String) -> Self {
        Self {
            ctl,
            started: std::time::SystemTime::now(),
            database,
        }
    }
}

#[tonic::async_trait]
impl SystemService for SystemApi {
    async fn get_system_info(
        &self,
        _: Request<pb::GetSystemInfoRequest>,
    ) -> Result<Response<pb::GetSystemInfoResponse>, Status> {
        let stats = self.ctl.stats();
        let k = self.ctl.kernel();
        Ok(Response::new(pb::GetSystemInfoResponse {
            version: env!("CARGO_PKG_VERSION").into(),
            start_time: Some(prost_types::Timestamp::from(self.started)),
            kernel_writes: k.writes(),
            reconciles: stats.reconciles.load(Relaxed),
            reconcile_failures: stats.failures.load(Relaxed),
            drift_repairs: stats.drift_repairs.load(Relaxed),
            orphans_removed: stats.orphans_removed.load(Relaxed),
            queue_depth: self.ctl.queue_depth() as u64,
            host_netns: k
                .host_netns()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            netns_dir: k.netns_dir().display().to_string(),
            database: self.database.clone(),
        }))
    }
}
