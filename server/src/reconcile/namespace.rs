//! Reconciling a namespace: create `<netns_dir>/<name>` (loopback up) or check an adopted path;
//! on delete, unmount and remove what weft created, forget what it adopted.

use super::{Controller, Key, ReconcileError};
use crate::{
    kernel::{LinkChange, NsRef},
    model::{Phase, Status, ownership_mark},
};

impl Controller {
    pub(super) async fn reconcile_namespace(
        &self,
        id: &str,
        attempt: u32,
    ) -> Result<bool, ReconcileError> {
        let Some(row) = self.store().namespace_by_id(id).await? else {
            return Ok(false);
        };
        let key = Key::Namespace(id.to_string());
        let converged_before = row.status.was_converged(row.generation);
        let adopted = row.spec.adopted_path.clone();
        let path = adopted
            .clone()
            .unwrap_or_else(|| self.kernel().netns_dir().join(&row.spec.name));
        if row.deleting {
            // Stop hearing it first: its id in the host namespace may go to a new one.
            self.unwatch_namespace(&NsRef::Path(path.clone()));
            if adopted.is_none() {
                self.kernel().delete_named_netns(&row.spec.name).await?;
            }
            self.kernel().forget(&NsRef::Path(path));
            if self.store().delete_namespace_row(id).await? {
                self.events().send(key, true);
            }
            return Ok(false);
        }
        let result = self
            .converge_namespace(id, &row.spec.name, adopted.is_some(), &path)
            .await;
        let (status, outcome) = match result {
            Ok(recreated) => {
                if recreated {
                    // The id the dead namespace had means nothing now: learn the new one.
                    self.unwatch_namespace(&NsRef::Path(path.clone()));
                }
                self.watch_namespace(NsRef::Path(path.clone()));
                if recreated {
                    // Everything that lived in the old namespace died with it.
                    for link in self.store().link_ids_in_namespace(id).await? {
                        self.enqueue(Key::Link(link));
                    }
                    for ep in self.store().endpoint_ids_in_namespace(id).await? {
                        self.enqueue(Key::Endpoint(ep));
                    }
                }
                (
                    Status {
                        phase: Phase::Ready,
                        observed_generation: row.generation,
                        message: String::new(),
                    },
                    Ok(()),
                )
            }
            Err(e) => (
                Self::failed_status(&e, attempt, row.generation, &row.status),
                Err(e),
            ),
        };
        let status_path = path.display().to_string();
        let unchanged = status_path == row.status_path;
        if !self.confirm_if_rechecked(&key, &row.status, &status, unchanged, None)
            && self
                .store()
                .set_namespace_status(id, &status, &status_path)
                .await?
        {
            self.events().send(key, false);
        }
        outcome.map(|()| converged_before)
    }

    /// Makes the namespace exist, its loopback up and marked (the loopback's alias carries
    /// the namespace's ownership mark, so garbage collection can tell weft's namespace files
    /// from anyone else's); returns true if it had to be (re)created.
    async fn converge_namespace(
        &self,
        id: &str,
        name: &str,
        adopted: bool,
        path: &std::path::Path,
    ) -> Result<bool, ReconcileError> {
        let k = self.kernel();
        if adopted {
            if !k.is_netns(path) {
                return Err(ReconcileError::permanent(format!(
                    "{} is not a network namespace (any more); weft does not recreate adopted namespaces",
                    path.display()
                )));
            }
            return Ok(false);
        }
        let recreated = if k.is_netns(path) {
            false
        } else {
            // A stale socket would still point at the namespace that died.
            k.forget(&NsRef::Path(path.to_path_buf()));
            k.create_named_netns(name).await?;
            true
        };
        let ns = NsRef::Path(path.to_path_buf());
        let mark = ownership_mark(id);
        if let Some(lo) = k.get_link(&ns, "lo").await? {
            let change = LinkChange {
                up: (!lo.up).then_some(true),
                alias: (lo.alias.as_deref() != Some(mark.as_str())).then(|| mark.clone()),
                ..Default::default()
            };
            if change != LinkChange::default() {
                k.set_link(&ns, lo.index, &change).await?;
            }
        }
        Ok(recreated)
    }
}
