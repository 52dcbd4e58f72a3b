//! Deleting by name, for the kinds a client deletes by name (namespaces, networks): the store
//! marks the row deleting in one transaction (refusing while something still depends on it),
//! the key is queued, and the reconciler removes the kernel objects and then the row. The
//! wait ends when the row is gone. A dry run marks nothing: the store checks the delete in a
//! transaction it rolls back, and the planner says what would go.

use std::future::Future;

use super::{Call, Kind, Service, ServiceResult, create::Pending};
use crate::model::{Invalid, PlannedChange};

/// A kind deleted by name.
pub trait Removable: Kind {
    /// Marks the row called `name` deleting (checks only, for a dry run) and returns it.
    fn mark(
        svc: &Service,
        name: &str,
        dry_run: bool,
    ) -> impl Future<Output = ServiceResult<Self::Row>> + Send;

    /// What removing `row` would change.
    fn plan_removal(
        svc: &Service,
        row: &Self::Row,
    ) -> impl Future<Output = ServiceResult<Vec<PlannedChange>>> + Send;
}

impl Service {
    /// Deletes the object of kind `K` called `name`; a dry run answers what the delete would
    /// change.
    pub async fn delete<K: Removable>(
        &self,
        name: &str,
        call: Call,
    ) -> ServiceResult<Vec<PlannedChange>> {
        let pending = Pending::start(self, call);
        if name.is_empty() {
            let problem = format!("which {}? the name is empty", K::NOUN);
            return Err(Invalid::new("name", problem).into());
        }
        let row = K::mark(self, name, call.dry_run).await?;
        self.remove::<K>(pending, row, call.dry_run).await
    }

    /// The rest of a delete once `row` is marked: plan it (dry run), or queue it and wait.
    pub(super) async fn remove<K: Removable>(
        &self,
        pending: Pending,
        row: K::Row,
        dry_run: bool,
    ) -> ServiceResult<Vec<PlannedChange>> {
        if dry_run {
            return K::plan_removal(self, &row).await;
        }
        let key = K::key(K::id(&row).to_string());
        pending.finish(self, key, K::generation(&row)).await?;
        Ok(Vec::new())
    }
}
