//! Link rows (the [`Kind`] of links), and the per-interface rows that keep names unique per
//! namespace.
//!
//! A link row stores its whole spec as JSON; beside it, `link_ifaces` holds one row per end
//! (name and namespace), whose unique index refuses a second interface of the same name in a
//! namespace, whoever asks. The reconciler stores each end's index and MAC
//! ([`LinkObserved`]) with the status.

use serde::{Deserialize, Serialize};

use super::{
    Columns, Kind, RequestRecord, Store, StoreError, decode, encode, is_fk_violation,
    is_unique_violation, kind::status_of, now_ms,
};
use crate::model::{BRIDGE_PORTS, LinkKind, LinkSpec, Status, connect::bridge_ports};

/// What the reconciler saw of one interface.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndObserved {
    /// ifindex in its namespace.
    pub index: u32,
    /// MAC address.
    pub mac: String,
}

/// What the reconciler saw of a link: one entry per end, in spec order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LinkObserved {
    /// The ends.
    pub ends: Vec<EndObserved>,
}

/// A stored link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkRow {
    /// Opaque uid; the ownership mark is `weft:<id>`.
    pub id: String,
    /// What the client asked for.
    pub spec: LinkSpec,
    /// Bumped on every spec change.
    pub generation: i64,
    /// Deletion requested.
    pub deleting: bool,
    /// What the reconciler last saw.
    pub status: Status,
    /// Observed indexes and MACs.
    pub observed: LinkObserved,
    /// Unix milliseconds.
    pub created_at: i64,
}

impl Kind for LinkRow {
    const TABLE: &'static str = "links";
    const NOUN: &'static str = "link";
    const SELECT: &'static str = "SELECT id, spec, generation, deleting, phase, \
         rechecking, observed_generation, message, status, created_at FROM links";
    const ID: &'static str = "id";
    const ORDER: &'static str = "created_at, id";
    /// Indexes and MACs of the ends.
    type Observed = LinkObserved;

    fn decode(r: &impl Columns) -> Result<Self, StoreError> {
        let id: String = r.get("id")?;
        Ok(LinkRow {
            spec: decode(|| format!("link {id} spec"), r.get("spec")?)?,
            observed: decode(|| format!("link {id} status"), r.get("status")?)?,
            generation: r.get("generation")?,
            deleting: r.get::<i64>("deleting")? != 0,
            status: status_of(r)?,
            created_at: r.get("created_at")?,
            id,
        })
    }

    fn observed_column(
        observed: &LinkObserved,
    ) -> Result<Option<(&'static str, String)>, StoreError> {
        Ok(Some(("status", encode(observed)?)))
    }
}

/// Where an interface lives, for messages.
fn where_ns(ns: &str) -> String {
    if ns.is_empty() {
        "the host namespace".into()
    } else {
        format!("namespace {ns:?}")
    }
}

impl Store {
    /// Records a new link and its interface names in one transaction. NOT_FOUND for an unknown
    /// namespace, FAILED_PRECONDITION for one being deleted, ALREADY_EXISTS for a taken name.
    pub async fn create_link(
        &self,
        spec: &LinkSpec,
        request: Option<&RequestRecord>,
        dry_run: bool,
    ) -> Result<LinkRow, StoreError> {
        let (id, mut tx) = self.begin_create::<LinkRow>(request).await?;
        let now = now_ms();
        let mut ns_ids = Vec::new();
        for end in spec.ends() {
            if end.namespace.is_empty() {
                ns_ids.push(None);
                continue;
            }
            let row: Option<(String, i64)> =
                sqlx::query_as("SELECT id, deleting FROM namespaces WHERE name = ?")
                    .bind(&end.namespace)
                    .fetch_optional(&mut *tx)
                    .await?;
            match row {
                None => {
                    return Err(StoreError::NotFound(format!(
                        "namespace {:?} (of interface {:?}) not found; create it first",
                        end.namespace, end.name
                    )));
                }
                Some((_, 1)) => {
                    return Err(StoreError::FailedPrecondition(format!(
                        "namespace {:?} is being deleted",
                        end.namespace
                    )));
                }
                Some((ns_id, _)) => ns_ids.push(Some(ns_id)),
            }
        }
        check_bridge_ports(&mut tx, spec, None, &ns_ids, &id).await?;
        let kind = match spec.kind {
            LinkKind::Veth { .. } => "veth",
            LinkKind::Bridge => "bridge",
        };
        sqlx::query(
            "INSERT INTO links (id, kind, spec, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(kind)
        .bind(encode(spec)?)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        for (i, (end, ns_id)) in spec.ends().into_iter().zip(ns_ids).enumerate() {
            let res = sqlx::query(
                "INSERT INTO link_ifaces (link_id, end_index, namespace_id, name, master) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(&id)
            .bind(i as i64)
            .bind(ns_id)
            .bind(&end.name)
            .bind(&end.master)
            .execute(&mut *tx)
            .await;
            match res {
                Ok(_) => {}
                Err(e) if is_unique_violation(&e) => {
                    return Err(StoreError::AlreadyExists(format!(
                        "interface {:?} already exists in {} (a link weft manages)",
                        end.name,
                        where_ns(&end.namespace)
                    )));
                }
                Err(e) if is_fk_violation(&e) => {
                    return Err(StoreError::NotFound(format!(
                        "namespace {:?} not found",
                        end.namespace
                    )));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Self::finish_insert(tx, &id, dry_run).await
    }

    /// The link with an interface named `name` in namespace `namespace` ("" = host).
    pub async fn link_by_end(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<LinkRow>, StoreError> {
        let cond = "id = (SELECT i.link_id FROM link_ifaces i \
             LEFT JOIN namespaces n ON n.id = i.namespace_id \
             WHERE i.name = ? AND IFNULL(n.name, '') = ?)";
        self.find_one(cond, &[name, namespace]).await
    }

    /// Whether any object plans an interface named `name` in namespace `namespace` ("" =
    /// host): a link's end, a network's bridge, an endpoint's host or inside end. Rows being
    /// deleted count (they own what they made until their cleanup ran). One query, each part
    /// a lookup in a unique index; the GC asks it for the few new interfaces its rows did not
    /// explain instead of listing every row again.
    pub async fn plans_interface(&self, namespace: &str, name: &str) -> Result<bool, StoreError> {
        let q = "SELECT \
               EXISTS (SELECT 1 FROM link_ifaces \
                       WHERE name = ?1 AND ns_key = CASE WHEN ?2 = '' THEN '' \
                           ELSE (SELECT id FROM namespaces WHERE name = ?2) END) \
            OR (?2 = '' AND EXISTS (SELECT 1 FROM networks WHERE bridge_name = ?1)) \
            OR (?2 = '' AND EXISTS (SELECT 1 FROM endpoints WHERE host_ifname = ?1)) \
            OR EXISTS (SELECT 1 FROM endpoints \
                       WHERE namespace_id = (SELECT id FROM namespaces WHERE name = ?2) \
                         AND ifname = ?1)";
        Ok(sqlx::query_scalar(q)
            .bind(name)
            .bind(namespace)
            .fetch_one(self.reads().await)
            .await?)
    }

    /// Ids of the links with an end in the namespace with this id.
    pub async fn link_ids_in_namespace(
        &self,
        namespace_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT DISTINCT link_id FROM link_ifaces WHERE namespace_id = ?")
                .bind(namespace_id)
                .fetch_all(self.reads().await)
                .await?,
        )
    }

    /// Replaces a link's spec (names and namespaces must not change) and bumps its generation,
    /// keeping each interface's master beside it. FAILED_PRECONDITION if the link is being
    /// deleted; RESOURCE_EXHAUSTED if an interface moves onto a bridge with no port left
    /// (the masters stored in the same transaction tell which moved). A `dry_run` checks all
    /// that and changes nothing (the row answered is the one it would have written).
    pub async fn update_link_spec(
        &self,
        id: &str,
        spec: &LinkSpec,
        dry_run: bool,
    ) -> Result<LinkRow, StoreError> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query(
            "UPDATE links SET spec = ?, generation = generation + 1, updated_at = ? WHERE id = ? AND deleting = 0",
        )
        .bind(encode(spec)?)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::FailedPrecondition(
                "the link is being deleted".into(),
            ));
        }
        let stored: Vec<(Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT namespace_id, master FROM link_ifaces WHERE link_id = ? ORDER BY end_index",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        let (ns_ids, masters): (Vec<_>, Vec<_>) = stored.into_iter().unzip();
        check_bridge_ports(&mut tx, spec, Some(&masters), &ns_ids, id).await?;
        for (i, end) in spec.ends().into_iter().enumerate() {
            if masters.get(i) == Some(&end.master) {
                continue;
            }
            sqlx::query("UPDATE link_ifaces SET master = ? WHERE link_id = ? AND end_index = ?")
                .bind(&end.master)
                .bind(id)
                .bind(i as i64)
                .execute(&mut *tx)
                .await?;
        }
        let row = Self::by_id_in::<LinkRow>(&mut tx, id)
            .await?
            .ok_or_else(|| StoreError::NotFound("link not found".into()))?;
        tx.finish(dry_run).await?;
        Ok(row)
    }
}

/// Refuses (RESOURCE_EXHAUSTED) a link whose interfaces would take a port a bridge does not
/// have: a Linux bridge takes [`BRIDGE_PORTS`], counting the link interfaces whose master it
/// is (but link `id`'s own) and, for a network's bridge in the host, the network's endpoints
/// (those being removed too, as a Connect counts them). `ns_ids` holds each end's namespace
/// id (None: the host). With `stored` (each end's master as stored, for an update), an end
/// whose master did not change is not checked: it holds its port already.
async fn check_bridge_ports(
    conn: &mut sqlx::SqliteConnection,
    spec: &LinkSpec,
    stored: Option<&[Option<String>]>,
    ns_ids: &[Option<String>],
    id: &str,
) -> Result<(), StoreError> {
    let ends = spec.ends();
    for (i, end) in ends.iter().enumerate() {
        let Some(master) = &end.master else { continue };
        if stored
            .and_then(|s| s.get(i))
            .is_some_and(|m| m.as_ref() == Some(master))
        {
            continue;
        }
        let ns_id = ns_ids.get(i).cloned().flatten();
        // This link's interfaces on the same bridge, as the spec has them (a veth's two ends
        // may share one); the count below leaves out every row of this link.
        let mine = ends
            .iter()
            .enumerate()
            .filter(|(j, e)| {
                e.master.as_ref() == Some(master) && ns_ids.get(*j).cloned().flatten() == ns_id
            })
            .count() as i64;
        let (links, endpoints, network): (i64, i64, Option<String>) = sqlx::query_as(concat!(
            "SELECT \
               (SELECT count(*) FROM (SELECT 1 FROM link_ifaces \
                  WHERE ns_key = IFNULL(?1, '') AND master = ?2 AND link_id != ?3 LIMIT ",
            bridge_ports!(),
            ")), (SELECT count(*) FROM (SELECT 1 FROM endpoints \
                  WHERE ?1 IS NULL \
                    AND network_id = (SELECT id FROM networks WHERE bridge_name = ?2) LIMIT ",
            bridge_ports!(),
            ")), (SELECT name FROM networks WHERE ?1 IS NULL AND bridge_name = ?2)"
        ))
        .bind(&ns_id)
        .bind(master)
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
        if links + endpoints + mine > i64::from(BRIDGE_PORTS) {
            let field = if i == 0 {
                "link.master"
            } else {
                "link.veth.peer.master"
            };
            let network = match network {
                Some(n) => format!(" (the bridge of network {n:?}, with {endpoints} endpoints)"),
                None => String::new(),
            };
            return Err(StoreError::Exhausted(format!(
                "{field}: bridge {master:?} in {}{network} has {} ports taken, {links} of them \
                 by link interfaces, and one Linux bridge takes {BRIDGE_PORTS}; attach {:?} to \
                 another bridge",
                where_ns(&end.namespace),
                links + endpoints,
                end.name
            )));
        }
    }
    Ok(())
}
