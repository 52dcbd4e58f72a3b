//! Namespaces: the create preconditions (an adopted path must be a network namespace; a
//! namespace weft makes must not collide with a netns file it does not own), get and delete.
//!
//! A namespace weft creates is a bind mount under the netns dir, like `ip netns add`; an
//! adopted one (`path` set) is only recorded, and never deleted. Deleting marks the row, and
//! the reconciler removes the namespace once the links and endpoints in it are gone.

use super::{
    Call, Filter, Kind, Make, Service, ServiceError, ServiceResult, create::Pending,
    kinds::kind_basics,
};
use crate::{
    model::{Invalid, NamespaceSpec, PlannedChange},
    store::{NamespaceRow, RequestRecord},
};

/// The namespace kind.
#[derive(Clone, Copy, Debug)]
pub struct Namespaces;

impl Kind for Namespaces {
    type Row = NamespaceRow;
    type View = NamespaceRow;

    kind_basics!(Namespace, NamespaceRow);

    fn selected(row: &NamespaceRow, filter: &Filter) -> bool {
        filter.labels(&row.spec.labels)
    }

    fn gone(row: &NamespaceRow) -> ServiceError {
        not_found(&row.spec.name)
    }

    async fn by_id(svc: &Service, id: &str) -> ServiceResult<Option<NamespaceRow>> {
        Ok(svc.store().namespace_by_id(id).await?)
    }

    async fn all(svc: &Service) -> ServiceResult<Vec<NamespaceRow>> {
        Ok(svc.store().list_namespaces().await?)
    }

    async fn view(_svc: &Service, row: NamespaceRow) -> ServiceResult<NamespaceRow> {
        Ok(row)
    }
}

impl Make for Namespaces {
    const METHOD: &'static str = "CreateNamespace";
    type Spec = NamespaceSpec;

    async fn persist(
        svc: &Service,
        spec: &NamespaceSpec,
        record: Option<&RequestRecord>,
        dry_run: bool,
    ) -> ServiceResult<NamespaceRow> {
        spec.validate()?;
        match &spec.adopted_path {
            Some(p) => {
                if !svc.path_exists(p) {
                    return Err(ServiceError::NotFound(format!(
                        "{} does not exist; give the path of a network namespace to adopt",
                        p.display()
                    )));
                }
                if !svc.is_netns(p) {
                    return Err(Invalid::new(
                        "namespace.path",
                        format!(
                            "{} is not a network namespace file (like /proc/<pid>/ns/net)",
                            p.display()
                        ),
                    )
                    .into());
                }
            }
            None => {
                if let Some(file) = svc.netns_file_taken(&spec.name)
                    && svc.store().namespace_by_name(&spec.name).await?.is_none()
                {
                    return Err(ServiceError::AlreadyExists(format!(
                        "{} already exists and is not managed by weft; choose another name, or adopt it with \"path\"",
                        file.display()
                    )));
                }
            }
        }
        Ok(svc.store().create_namespace(spec, record, dry_run).await?)
    }

    async fn plan(
        svc: &Service,
        row: NamespaceRow,
    ) -> ServiceResult<(NamespaceRow, Vec<PlannedChange>)> {
        let plan = svc.ctl.plan_namespace(&row).await;
        Ok((row, plan))
    }
}

/// The error for a namespace name nobody recorded.
fn not_found(name: &str) -> ServiceError {
    ServiceError::NotFound(format!("namespace {name:?} not found"))
}

impl Service {
    /// The namespace called `name`.
    pub async fn namespace(&self, name: &str) -> ServiceResult<NamespaceRow> {
        self.store()
            .namespace_by_name(name)
            .await?
            .ok_or_else(|| not_found(name))
    }

    /// Deletes the namespace called `name` (FAILED_PRECONDITION while links or endpoints
    /// still live in it); a dry run answers what the delete would change.
    pub async fn delete_namespace(
        &self,
        name: &str,
        call: Call,
    ) -> ServiceResult<Vec<PlannedChange>> {
        let pending = Pending::start(self, call);
        if name.is_empty() {
            return Err(Invalid::new("name", "which namespace? the name is empty").into());
        }
        let row = self
            .store()
            .mark_namespace_deleting(name, call.dry_run)
            .await?;
        if call.dry_run {
            return Ok(self.ctl.plan_namespace_removal(&row));
        }
        pending
            .finish(self, Namespaces::key(row.id), row.generation)
            .await?;
        Ok(Vec::new())
    }
}
