//! What GetSystemInfo reports about the running weftd: its version, the reconciler's
//! counters, the queue, and where it acts in the kernel.

use std::{path::PathBuf, sync::atomic::Ordering::Relaxed};

use super::{Service, ServiceError};

/// A snapshot of weftd's counters and settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemInfo {
    /// weftd's version.
    pub version: &'static str,
    /// Netlink and nftables writes so far.
    pub kernel_writes: u64,
    /// Reconciles run.
    pub reconciles: u64,
    /// Reconciles that failed.
    pub reconcile_failures: u64,
    /// Converged objects found changed in the kernel and repaired.
    pub drift_repairs: u64,
    /// Orphaned kernel objects removed.
    pub orphans_removed: u64,
    /// DNS queries received.
    pub dns_queries: u64,
    /// DNS queries answered from weft's records (NXDOMAIN and NODATA included).
    pub dns_answers: u64,
    /// DNS queries forwarded upstream.
    pub dns_forwards: u64,
    /// Keys waiting in the work queue.
    pub queue_depth: u64,
    /// Objects a restart marked Rechecking that no re-check has confirmed yet: 0 once the
    /// start-up check is done (what differed then is in the queue, or failed).
    pub rechecking: u64,
    /// The host namespace file weftd acts in (None: its own).
    pub host_netns: Option<PathBuf>,
    /// Where namespaces weft creates are mounted.
    pub netns_dir: PathBuf,
}

impl Service {
    /// The counters and settings of this weftd, now. Fails only if the store cannot be read
    /// (for `rechecking`, the one figure kept there).
    pub async fn system_info(&self) -> Result<SystemInfo, ServiceError> {
        let rechecking = self.store().count_rechecking().await?;
        let stats = self.ctl.stats();
        let (kernel_writes, host_netns, netns_dir) = self.kernel_facts();
        Ok(SystemInfo {
            version: env!("CARGO_PKG_VERSION"),
            kernel_writes,
            reconciles: stats.reconciles.load(Relaxed),
            reconcile_failures: stats.failures.load(Relaxed),
            drift_repairs: stats.drift_repairs.load(Relaxed),
            orphans_removed: stats.orphans_removed.load(Relaxed),
            dns_queries: stats.dns_queries.load(Relaxed),
            dns_answers: stats.dns_answers.load(Relaxed),
            dns_forwards: stats.dns_forwards.load(Relaxed),
            queue_depth: self.ctl.queue_depth() as u64,
            rechecking,
            host_netns,
            netns_dir,
        })
    }
}
