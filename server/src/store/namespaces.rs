//! Namespace rows.

use std::path::PathBuf;

use sqlx::{Row, SqliteConnection};

use super::{RequestRecord, Store, StoreError, decode, encode, is_unique_violation, now_ms};
use crate::model::{Labels, NamespaceSpec, Phase, Status, new_uid};

/// A stored namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespaceRow {
    /// Opaque uid.
    pub id: String,
    /// What the client asked for.
    pub spec: NamespaceSpec,
    /// Bumped on every spec change.
    pub generation: i64,
    /// Deletion requested.
    pub deleting: bool,
    /// What the reconciler last saw.
    pub status: Status,
    /// Where the namespace file is, once known.
    pub status_path: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

const COLUMNS: &str = "id, name, labels, adopted_path, generation, deleting, phase, observed_generation, message, status_path, created_at";

fn from_row(r: &sqlx::sqlite::SqliteRow) -> Result<NamespaceRow, StoreError> {
    let labels: String = r.get("labels");
    Ok(NamespaceRow {
        id: r.get("id"),
        spec: NamespaceSpec {
            name: r.get("name"),
            labels: decode::<Labels>("namespace labels", &labels)?,
            adopted_path: r
                .get::<Option<String>, _>("adopted_path")
                .map(PathBuf::from),
        },
        generation: r.get("generation"),
        deleting: r.get::<i64, _>("deleting") != 0,
        status: Status {
            phase: Phase::parse(r.get("phase")),
            observed_generation: r.get("observed_generation"),
            message: r.get("message"),
        },
        status_path: r.get("status_path"),
        created_at: r.get("created_at"),
    })
}

impl Store {
    /// Records a new namespace; ALREADY_EXISTS if the name is taken.
    pub async fn create_namespace(
        &self,
        spec: &NamespaceSpec,
        request: Option<&RequestRecord>,
        dry_run: bool,
    ) -> Result<NamespaceRow, StoreError> {
        let id = new_uid();
        let now = now_ms();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // First, so a concurrent call with the same request id fails here (and replays).
        super::requests::record(&mut tx, request, &id).await?;
        let res = sqlx::query(
            "INSERT INTO namespaces (id, name, labels, adopted_path, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(&spec.name)
        .bind(encode(&spec.labels))
        .bind(spec.adopted_path.as_ref().map(|p| p.display().to_string()))
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await;
        match res {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::AlreadyExists(format!(
                    "namespace {:?} already exists",
                    spec.name
                )));
            }
            Err(e) => return Err(e.into()),
        }
        let row = Self::namespace_by_id_in(&mut tx, &id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("inserted namespace vanished".into()))?;
        super::finish(tx, dry_run).await?;
        Ok(row)
    }

    /// The namespace with this uid.
    pub async fn namespace_by_id(&self, id: &str) -> Result<Option<NamespaceRow>, StoreError> {
        Self::namespace_by_id_in(&mut *self.pool.acquire().await?, id).await
    }

    /// The same, inside a transaction.
    pub(crate) async fn namespace_by_id_in(
        conn: &mut SqliteConnection,
        id: &str,
    ) -> Result<Option<NamespaceRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM namespaces WHERE id = ?");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The namespace with this name.
    pub async fn namespace_by_name(&self, name: &str) -> Result<Option<NamespaceRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM namespaces WHERE name = ?");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Every namespace, by name.
    pub async fn list_namespaces(&self) -> Result<Vec<NamespaceRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM namespaces ORDER BY name");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Marks a namespace for deletion. FAILED_PRECONDITION while links live in it.
    pub async fn mark_namespace_deleting(
        &self,
        name: &str,
        dry_run: bool,
    ) -> Result<NamespaceRow, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let id: Option<String> = sqlx::query_scalar("SELECT id FROM namespaces WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        let id = id.ok_or_else(|| StoreError::NotFound(format!("namespace {name:?} not found")))?;
        let holders: Vec<String> = sqlx::query_scalar(
            "SELECT 'link ' || name FROM link_ifaces WHERE namespace_id = ?1 \
             UNION ALL SELECT 'endpoint on network ' || w.name FROM endpoints e \
             JOIN networks w ON w.id = e.network_id WHERE e.namespace_id = ?1 ORDER BY 1",
        )
        .bind(&id)
        .fetch_all(&mut *tx)
        .await?;
        if !holders.is_empty() {
            return Err(StoreError::FailedPrecondition(format!(
                "namespace {name:?} still holds links weft manages ({}); delete or disconnect them first",
                holders.join(", ")
            )));
        }
        sqlx::query(
            "UPDATE namespaces SET deleting = 1, phase = 'deleting', generation = generation + 1, updated_at = ? \
             WHERE id = ? AND deleting = 0",
        )
        .bind(now_ms())
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        let row = Self::namespace_by_id_in(&mut tx, &id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("{name:?} not found")))?;
        super::finish(tx, dry_run).await?;
        Ok(row)
    }

    /// Removes a namespace row that was marked for deletion. Returns false if there was none.
    pub async fn delete_namespace_row(&self, id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM namespaces WHERE id = ? AND deleting = 1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Writes the observed status; returns true if anything changed.
    pub async fn set_namespace_status(
        &self,
        id: &str,
        status: &Status,
        status_path: &str,
    ) -> Result<bool, StoreError> {
        self.write_status("namespaces", id, status, Some(("status_path", status_path)))
            .await
    }
}
