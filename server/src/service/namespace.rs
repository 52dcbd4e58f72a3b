//! Namespaces: the create preconditions (an adopted path must be a network namespace, and not
//! the host's, weftd's own or one weft manages under another name: see
//! [`NamespaceSpec::check_adoption`]; a namespace weft makes must not collide with a netns
//! file it does not own), get and delete.
//!
//! A namespace weft creates is a bind mount under the netns dir, like `ip netns add`; an
//! adopted one (`path` set) is only recorded, and never deleted. Deleting marks the row, and
//! the reconciler removes the namespace once the links and endpoints in it are gone.

use super::{
    Kind, Make, Namespaces, Removable, Service, ServiceError, ServiceResult,
    kinds::{kind_basics, row_is_view},
};
use crate::{
    model::{Invalid, NamespaceSpec, PlannedChange},
    store::{NamespaceRow, RequestRecord},
};

impl Kind for Namespaces {
    row_is_view!(NamespaceRow);

    kind_basics!(
        "namespace",
        Namespace,
        NamespaceRow,
        namespace_by_id,
        list_namespaces,
        named
    );
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
        match &spec.adopted_path {
            Some(p) => {
                if !svc.path_exists(p) {
                    return Err(ServiceError::NotFound(format!(
                        "namespace.path: {} does not exist; give the path of a network namespace to adopt",
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
                spec.check_adoption(&svc.adopt_facts(p).await?)?;
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

impl Removable for Namespaces {
    async fn mark(svc: &Service, name: &str, dry_run: bool) -> ServiceResult<NamespaceRow> {
        Ok(svc.store().mark_namespace_deleting(name, dry_run).await?)
    }

    async fn plan_removal(svc: &Service, row: &NamespaceRow) -> ServiceResult<Vec<PlannedChange>> {
        Ok(svc.ctl.plan_namespace_removal(row))
    }
}
