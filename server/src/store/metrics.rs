//! What a metrics scrape reads from the store: object counts by kind and phase, and each
//! network's leases and capacity, one query each.

use sqlx::Row;

use super::{Store, StoreError};
use crate::model::NetworkSpec;

/// Counts for the metrics' gauges.
#[derive(Debug, Default)]
pub struct MetricsSnapshot {
    /// (kind, phase, count).
    pub objects: Vec<(String, String, i64)>,
    /// One per network.
    pub networks: Vec<NetworkGauge>,
}

/// One network's IPAM numbers.
#[derive(Debug)]
pub struct NetworkGauge {
    /// The network's name.
    pub name: String,
    /// Addresses leased.
    pub leases: i64,
    /// Addresses that can be leased in all subnets (gateways and reserved ones excluded).
    pub capacity: f64,
}

impl Store {
    /// Reads the counts a metrics scrape reports: two queries.
    pub async fn metrics_snapshot(&self) -> Result<MetricsSnapshot, StoreError> {
        let objects = sqlx::query(
            "SELECT 'namespace' AS kind, phase, COUNT(*) AS n FROM namespaces GROUP BY phase \
             UNION ALL SELECT 'link', phase, COUNT(*) FROM links GROUP BY phase \
             UNION ALL SELECT 'network', phase, COUNT(*) FROM networks GROUP BY phase \
             UNION ALL SELECT 'endpoint', phase, COUNT(*) FROM endpoints GROUP BY phase",
        )
        .fetch_all(self.reads().await)
        .await?
        .iter()
        .map(|r| (r.get("kind"), r.get("phase"), r.get("n")))
        .collect();
        let networks = sqlx::query(
            "SELECT w.name, w.spec, (SELECT COUNT(*) FROM leases l WHERE l.network_id = w.id) \
             AS leases FROM networks w",
        )
        .fetch_all(self.reads().await)
        .await?
        .iter()
        .map(|r| {
            let spec: Option<NetworkSpec> = serde_json::from_str(r.get("spec")).ok();
            NetworkGauge {
                name: r.get("name"),
                leases: r.get("leases"),
                capacity: spec.map_or(0.0, |s| s.subnets.iter().map(|s| s.capacity() as f64).sum()),
            }
        })
        .collect();
        Ok(MetricsSnapshot { objects, networks })
    }
}
