//! Namespace rows: the [`Kind`] of namespaces, and creating one.
//!
//! A namespace row holds its name (unique), labels, and the adopted path if weft did not
//! create it; the reconciler stores where it found the namespace file (`status_path`). A
//! namespace is [`Guarded`]: it cannot be marked for deletion while a link end or an
//! endpoint lives in it (the foreign keys refuse the row's deletion a second time).

use std::{collections::HashMap, path::PathBuf};

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

    /// After the delete: a place read that raced it sees the epoch moved, or is dropped here.
    fn forget_kept(store: &Store, id: &str) {
        store.forget_place(id);
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

/// Where a namespace is: what never changes while its row lives (its uid, the path it was
/// adopted from and which namespace that path named then), so it is kept by name and read by
/// every request and reconcile that enters the namespace without a query
/// ([`Store::namespace_place`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NsPlace {
    /// The row's uid.
    pub id: String,
    /// The adopted path (None for a namespace weft made: it is `<netns-dir>/<name>`).
    pub adopted_path: Option<PathBuf>,
    /// [`NamespaceRow::adopted_identity`].
    pub adopted_identity: Option<String>,
}

/// The places kept by name: at most [`PLACES_CAP`], each dropped when its row is deleted.
/// The epoch moves with every deletion, so a read that raced one keeps nothing.
#[derive(Debug, Default)]
pub(super) struct Places {
    pub(super) by_name: HashMap<String, NsPlace>,
    epoch: u64,
}

/// How many places are kept (about 100 bytes each); a name beyond them is read again.
const PLACES_CAP: usize = 1024;

/// Locks the places, taking them over if a holder panicked (always safe to reuse).
fn places(m: &std::sync::Mutex<Places>) -> std::sync::MutexGuard<'_, Places> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Store {
    /// Where namespace `name` is ([`NsPlace`]), kept after the first read; None for an
    /// unknown name (never kept).
    pub async fn namespace_place(&self, name: &str) -> Result<Option<NsPlace>, StoreError> {
        let epoch = {
            let p = places(&self.places);
            if let Some(place) = p.by_name.get(name) {
                return Ok(Some(place.clone()));
            }
            p.epoch
        };
        let row: Option<(String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT id, adopted_path, adopted_identity FROM namespaces WHERE name = ?",
        )
        .bind(name)
        .fetch_optional(self.reads().await)
        .await?;
        let Some((id, adopted_path, adopted_identity)) = row else {
            return Ok(None);
        };
        let place = NsPlace {
            id,
            adopted_path: adopted_path.map(PathBuf::from),
            adopted_identity,
        };
        self.keep_place(name, &place, epoch);
        Ok(Some(place))
    }

    /// Keeps `place` under `name`, read when the places' epoch was `epoch`: not if a row was
    /// deleted since (it may be this one), and making room when [`PLACES_CAP`] are kept.
    pub(super) fn keep_place(&self, name: &str, place: &NsPlace, epoch: u64) {
        let mut p = places(&self.places);
        if p.epoch != epoch {
            return;
        }
        if p.by_name.len() >= PLACES_CAP
            && let Some(other) = p.by_name.keys().next().cloned()
        {
            p.by_name.remove(&other);
        }
        p.by_name.insert(name.to_string(), place.clone());
    }

    /// The places' epoch now (for [`Store::keep_place`] in tests).
    #[cfg(test)]
    pub(super) fn places_epoch(&self) -> u64 {
        places(&self.places).epoch
    }

    /// Drops the kept place of namespace row `id` (just deleted).
    pub(super) fn forget_place(&self, id: &str) {
        let mut p = places(&self.places);
        p.epoch += 1;
        p.by_name.retain(|_, place| place.id != id);
    }

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
        // Before the row exists: a delete of it can only come after, and moves the epoch.
        let epoch = places(&self.places).epoch;
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
        let row: NamespaceRow = Self::finish_insert(tx, &id, dry_run).await?;
        if !dry_run {
            // Its place, as a read of the row gives it: the Connect that usually follows a
            // namespace's creation finds it kept.
            let place = NsPlace {
                id: row.id.clone(),
                adopted_path: row.spec.adopted_path.clone(),
                adopted_identity: row.adopted_identity.clone(),
            };
            self.keep_place(&row.spec.name, &place, epoch);
        }
        Ok(row)
    }
}
