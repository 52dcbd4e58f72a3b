//! Namespace rows: the [`Kind`] of namespaces, and creating one.
//!
//! A namespace row holds its name (unique), labels, and the adopted path if weft did not
//! create it; the reconciler stores where it found the namespace file (`status_path`). A
//! namespace is [`Guarded`]: it cannot be marked for deletion while a link end or an
//! endpoint lives in it (the foreign keys refuse the row's deletion a second time).

use std::path::PathBuf;

use super::{
    Columns, Guarded, Kind, Named, RequestRecord, Store, StoreError, decode, encode,
    is_unique_violation, kind::status_of, now_ms,
};
use crate::model::{Labels, NamespaceSpec, Status};

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
    /// For an adopted namespace, which namespace its path named at adoption (`dev:ino`,
    /// [`crate::kernel::NsIdentity`]'s text): the path is trusted only while it names that
    /// one. None for one weft made, or adopted before weft kept it.
    pub adopted_identity: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
}

impl Kind for NamespaceRow {
    const TABLE: &'static str = "namespaces";
    const NOUN: &'static str = "namespace";
    const SELECT: &'static str = "SELECT id, name, labels, adopted_path, generation, deleting, \
         phase, rechecking, observed_generation, message, status_path, adopted_identity, created_at \
         FROM namespaces";
    const ID: &'static str = "id";
    const ORDER: &'static str = "name";
    /// Where the namespace file was found.
    type Observed = str;

    fn decode(r: &impl Columns) -> Result<Self, StoreError> {
        let labels: String = r.get("labels")?;
        Ok(NamespaceRow {
            id: r.get("id")?,
            spec: NamespaceSpec {
                name: r.get("name")?,
                labels: decode::<Labels>(|| "namespace labels".into(), &labels)?,
                adopted_path: r.get::<Option<String>>("adopted_path")?.map(PathBuf::from),
            },
            generation: r.get("generation")?,
            deleting: r.get::<i64>("deleting")? != 0,
            status: status_of(r)?,
            status_path: r.get("status_path")?,
            adopted_identity: r.get("adopted_identity")?,
            created_at: r.get("created_at")?,
        })
    }

    fn observed_column(status_path: &str) -> Result<Option<(&'static str, String)>, StoreError> {
        Ok(Some(("status_path", status_path.to_string())))
    }
}

impl Named for NamespaceRow {
    const NAME: &'static str = "name";
}

impl Guarded for NamespaceRow {
    const HOLDERS: &'static str = "SELECT 'link ' || name FROM link_ifaces WHERE namespace_id = ?1 \
         UNION ALL SELECT 'endpoint on network ' || w.name FROM endpoints e \
         JOIN networks w ON w.id = e.network_id WHERE e.namespace_id = ?1 ORDER BY 1";

    fn still_held(name: &str, holders: &[String]) -> String {
        format!(
            "namespace {name:?} still holds links weft manages ({}); delete or disconnect them first",
            holders.join(", ")
        )
    }
}

impl Store {
    /// Records a new namespace; ALREADY_EXISTS if the name is taken.
    pub async fn create_namespace(
        &self,
        spec: &NamespaceSpec,
        request: Option<&RequestRecord>,
        dry_run: bool,
    ) -> Result<NamespaceRow, StoreError> {
        self.create_namespace_as(spec, None, request, dry_run).await
    }

    /// [`Store::create_namespace`] for an adopted namespace: `identity` is which namespace
    /// its path names now (see [`NamespaceRow::adopted_identity`]).
    pub async fn create_namespace_as(
        &self,
        spec: &NamespaceSpec,
        identity: Option<String>,
        request: Option<&RequestRecord>,
        dry_run: bool,
    ) -> Result<NamespaceRow, StoreError> {
        let (id, mut tx) = self.begin_create::<NamespaceRow>(request).await?;
        // The service compared the path with every stored namespace before; two adoptions of
        // one namespace racing each other are told apart here, in the create's transaction.
        if let Some(ident) = &identity {
            let other: Option<String> = sqlx::query_scalar(
                "SELECT name FROM namespaces WHERE adopted_identity = ? AND phase != 'failed' \
                 AND name != ? LIMIT 1",
            )
            .bind(ident)
            .bind(&spec.name)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(other) = other {
                let path = spec
                    .adopted_path
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                return Err(StoreError::FailedPrecondition(format!(
                    "namespace.path: {path} is the namespace weft already manages as {other:?}; \
                     use that name instead of adopting it twice"
                )));
            }
        }
        let now = now_ms();
        let res = sqlx::query(
            "INSERT INTO namespaces (id, name, labels, adopted_path, adopted_identity, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(&spec.name)
        .bind(encode(&spec.labels)?)
        .bind(spec.adopted_path.as_ref().map(|p| p.display().to_string()))
        .bind(identity)
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
        Self::finish_insert(tx, &id, dry_run).await
    }
}
