//! Network rows (the [`Kind`] of networks) and their subnets. A new network's subnets are
//! checked against, or chosen around, every other network's inside one `BEGIN IMMEDIATE`
//! transaction, so two concurrent creates can never take overlapping subnets.
//!
//! A network row stores its settled spec (subnets with gateways) as JSON; `subnets` holds
//! one row per subnet with the round-robin lease cursor. Network rows are read by every
//! endpoint reconcile and answer, so they are the one kind kept in a [`RowCache`]; every
//! write to a network row goes through the generic methods, which drop it from the cache.

use std::sync::Mutex;

use ipnet::IpNet;
use sqlx::SqliteConnection;

use super::{
    Columns, Guarded, Kind, Named, RequestRecord, RowCache, Store, StoreError, decode, encode,
    is_unique_violation, kind::status_of, now_ms,
};
use crate::model::{AddressPool, NetworkSpec, Status, SubnetSpec, network::overlaps};

/// A stored network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkRow {
    /// Opaque uid.
    pub id: String,
    /// The settled spec.
    pub spec: NetworkSpec,
    /// The default network (`bridge`).
    pub is_default: bool,
    /// Bumped on every spec change.
    pub generation: i64,
    /// Deletion requested.
    pub deleting: bool,
    /// Observed state.
    pub status: Status,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// Where an automatic subnet may come from, and what it must not overlap.
#[derive(Clone, Debug, Default)]
pub struct AutoSubnets {
    /// IPv4 pools; empty means no automatic IPv4 subnet.
    pub v4: Vec<AddressPool>,
    /// IPv6 pools; empty means no automatic IPv6 subnet.
    pub v6: Vec<AddressPool>,
    /// Routes in the host namespace that a new subnet must not overlap.
    pub host_routes: Vec<IpNet>,
}

impl Kind for NetworkRow {
    const TABLE: &'static str = "networks";
    const NOUN: &'static str = "network";
    const SELECT: &'static str = "SELECT id, spec, is_default, generation, deleting, phase, \
         rechecking, observed_generation, message, created_at FROM networks";
    const ID: &'static str = "id";
    const ORDER: &'static str = "name";
    /// A network stores nothing beside its status.
    type Observed = ();

    fn decode(r: &impl Columns) -> Result<Self, StoreError> {
        let id: String = r.get("id")?;
        Ok(NetworkRow {
            spec: decode(|| format!("network {id} spec"), r.get("spec")?)?,
            is_default: r.get::<i64>("is_default")? != 0,
            generation: r.get("generation")?,
            deleting: r.get::<i64>("deleting")? != 0,
            status: status_of(r)?,
            created_at: r.get("created_at")?,
            id,
        })
    }

    fn observed_column(_: &()) -> Result<Option<(&'static str, String)>, StoreError> {
        Ok(None)
    }

    /// Read by every endpoint reconcile and answer, written rarely: cached.
    fn cache(store: &Store) -> Option<&Mutex<RowCache<Self>>> {
        Some(&store.nets)
    }
}

impl Named for NetworkRow {
    const NAME: &'static str = "name";
}

impl Guarded for NetworkRow {
    const HOLDERS: &'static str = "SELECT n.name FROM endpoints e \
         JOIN namespaces n ON n.id = e.namespace_id WHERE e.network_id = ? ORDER BY n.name";

    fn still_held(name: &str, holders: &[String]) -> String {
        format!(
            "network {name:?} still has endpoints ({}); disconnect them first",
            holders.join(", ")
        )
    }
}

/// Every subnet of every network with its network's name, for overlap checks.
async fn taken_subnets(tx: &mut SqliteConnection) -> Result<Vec<(String, IpNet)>, StoreError> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT w.name, s.cidr FROM subnets s JOIN networks w ON w.id = s.network_id",
    )
    .fetch_all(&mut *tx)
    .await?;
    rows.into_iter()
        .map(|(n, c)| {
            c.parse()
                .map(|c| (n, c))
                .map_err(|e| StoreError::Corrupt(format!("subnet {c}: {e}")))
        })
        .collect()
}

impl Store {
    /// Records a network. Given subnets must not overlap another network's
    /// (FAILED_PRECONDITION naming it); without subnets, one is taken from `auto` that overlaps
    /// neither a network nor a host route (RESOURCE_EXHAUSTED when the pools are used up).
    pub async fn create_network(
        &self,
        spec: &NetworkSpec,
        auto: &AutoSubnets,
        is_default: bool,
        request: Option<&RequestRecord>,
        dry_run: bool,
    ) -> Result<NetworkRow, StoreError> {
        let (id, mut tx) = self.begin_create::<NetworkRow>(request).await?;
        let now = now_ms();
        let mut spec = spec.clone();
        let taken = taken_subnets(&mut tx).await?;
        for s in &spec.subnets {
            if let Some((other, net)) = taken.iter().find(|(_, t)| overlaps(t, &s.subnet)) {
                return Err(StoreError::FailedPrecondition(format!(
                    "subnet {} overlaps {net} of network {other:?}; choose another subnet",
                    s.subnet
                )));
            }
        }
        let mut avoid: Vec<IpNet> = taken.iter().map(|(_, t)| *t).collect();
        avoid.extend(auto.host_routes.iter().filter(|r| r.prefix_len() > 0));
        for (pools, family) in [(&auto.v4, "IPv4"), (&auto.v6, "IPv6")] {
            if pools.is_empty() {
                continue;
            }
            let net = pools.iter().find_map(|p| p.first_free(&avoid)).ok_or_else(|| {
                StoreError::Exhausted(format!(
                    "no free {family} subnet left in the address pools; give a subnet or widen the pools"
                ))
            })?;
            let s = SubnetSpec::parse("subnet", &net.to_string(), "", "", &[])
                .map_err(|e| StoreError::Corrupt(format!("pool subnet {net}: {e}")))?;
            avoid.push(net);
            spec.subnets.push(s);
        }
        let res = sqlx::query(
            "INSERT INTO networks (id, name, bridge_name, spec, is_default, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(&spec.name)
        .bind(&spec.bridge_name)
        .bind(encode(&spec)?)
        .bind(is_default as i64)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await;
        match res {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                let name_taken: Option<String> =
                    sqlx::query_scalar("SELECT name FROM networks WHERE name = ?")
                        .bind(&spec.name)
                        .fetch_optional(&mut *tx)
                        .await?;
                return Err(StoreError::AlreadyExists(if name_taken.is_some() {
                    format!("network {:?} already exists", spec.name)
                } else {
                    format!(
                        "bridge {:?} is already used by another network",
                        spec.bridge_name
                    )
                }));
            }
            Err(e) => return Err(e.into()),
        }
        for s in &spec.subnets {
            sqlx::query("INSERT INTO subnets (network_id, cidr) VALUES (?, ?)")
                .bind(&id)
                .bind(s.subnet.to_string())
                .execute(&mut *tx)
                .await?;
        }
        Self::finish_insert(tx, &id, dry_run).await
    }
}

#[cfg(test)]
mod tests {
    //! The network cache and the re-check state against a real (temporary) database.

    use super::*;
    use crate::model::{Phase, Status};

    fn spec(name: &str) -> NetworkSpec {
        NetworkSpec {
            name: name.into(),
            labels: Default::default(),
            bridge_name: format!("br-{name}"),
            subnets: Vec::new(),
            internal: false,
            icc: true,
            masquerade: true,
            mtu: 0,
            dns: true,
        }
    }

    /// The network cache never serves a row older than the last write to it.
    #[tokio::test]
    async fn cached_network_rows_follow_every_write() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("t.db")).await.unwrap();
        let auto = AutoSubnets {
            v4: vec![crate::model::AddressPool::parse("10.9.0.0/16/24").unwrap()],
            ..Default::default()
        };
        let id = s
            .create_network(&spec("n"), &auto, false, None, false)
            .await
            .unwrap()
            .id;
        let first = s.network_by_id(&id).await.unwrap().unwrap();
        assert_eq!(first.status.phase, Phase::Pending);
        assert_eq!(s.network_by_id(&id).await.unwrap().as_ref(), Some(&first));
        let ready = Status {
            phase: Phase::Ready,
            observed_generation: first.generation,
            message: String::new(),
        };
        assert!(s.set_network_status(&id, &ready).await.unwrap());
        assert_eq!(
            s.network_by_id(&id).await.unwrap().unwrap().status.phase,
            Phase::Ready
        );
        // A dry run changes nothing, a real mark does.
        s.mark_network_deleting("n", true).await.unwrap();
        assert!(!s.network_by_id(&id).await.unwrap().unwrap().deleting);
        s.mark_network_deleting("n", false).await.unwrap();
        assert!(s.network_by_id(&id).await.unwrap().unwrap().deleting);
        assert!(s.delete_network_row(&id).await.unwrap());
        assert_eq!(s.network_by_id(&id).await.unwrap(), None);
    }

    /// After a restart nothing reads Ready until it was checked again, and a check that
    /// repairs something still counts as drift.
    #[tokio::test]
    async fn ready_objects_are_pending_until_rechecked_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("t.db")).await.unwrap();
        let auto = AutoSubnets {
            v4: vec![crate::model::AddressPool::parse("10.9.0.0/16/24").unwrap()],
            ..Default::default()
        };
        let mut ids = Vec::new();
        for name in ["ready", "failed"] {
            ids.push(
                s.create_network(&spec(name), &auto, false, None, false)
                    .await
                    .unwrap()
                    .id,
            );
        }
        let status = |phase| Status {
            phase,
            observed_generation: 1,
            message: String::new(),
        };
        s.set_network_status(&ids[0], &status(Phase::Ready))
            .await
            .unwrap();
        s.set_network_status(&ids[1], &status(Phase::Failed))
            .await
            .unwrap();
        assert_eq!(
            s.network_by_id(&ids[0])
                .await
                .unwrap()
                .unwrap()
                .status
                .phase,
            Phase::Ready
        );
        assert_eq!(s.mark_unverified().await.unwrap(), 1);
        let n = s.network_by_id(&ids[0]).await.unwrap().unwrap();
        assert_eq!(n.status.phase, Phase::Rechecking);
        assert_eq!(n.status.message, "");
        assert!(n.status.was_converged(n.generation));
        // Any status written over the re-check replaces it; writing it back restores it.
        let retry = Status {
            phase: Phase::Pending,
            observed_generation: 1,
            message: "bridge busy".into(),
        };
        assert!(s.set_network_status(&ids[0], &retry).await.unwrap());
        assert_eq!(
            s.network_by_id(&ids[0]).await.unwrap().unwrap().status,
            retry
        );
        assert!(s.set_network_status(&ids[0], &n.status).await.unwrap());
        assert_eq!(
            s.network_by_id(&ids[0]).await.unwrap().unwrap().status,
            n.status
        );
        assert!(!s.set_network_status(&ids[0], &n.status).await.unwrap());
        let f = s.network_by_id(&ids[1]).await.unwrap().unwrap();
        assert_eq!(f.status.phase, Phase::Failed, "failures stay visible");
        assert!(!f.status.was_converged(f.generation));
        // The re-check confirms in one statement, only what still waits for it.
        let changed = s.confirm_rechecked("networks", &ids).await.unwrap();
        assert_eq!(changed, vec![ids[0].clone()]);
        let n = s.network_by_id(&ids[0]).await.unwrap().unwrap();
        assert_eq!(n.status.phase, Phase::Ready);
        assert_eq!(n.status.message, "");
        assert!(
            s.confirm_rechecked("networks", &ids)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
