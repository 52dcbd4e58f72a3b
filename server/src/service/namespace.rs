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
    /// Listed by name (unique, indexed): a List reads one page of rows, not all of them.
    const SORT_COLUMN: Option<&'static str> = Some("name");
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
        let mut identity = None;
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
                let (facts, id) = svc.adopt_facts(p).await?;
                spec.check_adoption(&facts)?;
                identity = Some(id.to_string());
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
        Ok(svc
            .store()
            .create_namespace_as(spec, identity, record, dry_run)
            .await?)
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

#[cfg(test)]
mod tests {
    //! Adoption against the fake kernel: the identities of the host, weftd's own namespace
    //! and managed namespaces decide, never the path.

    use super::*;
    use crate::{
        kernel::{NetnsOps, fake::FakeKernel},
        service::RequestId,
    };

    /// A namespace `name` adopting `path`.
    fn adopt(name: &str, path: &str) -> NamespaceSpec {
        NamespaceSpec {
            name: name.into(),
            labels: Default::default(),
            adopted_path: Some(path.into()),
        }
    }

    #[tokio::test]
    async fn adoption_refuses_the_host_weftd_s_own_and_managed_namespaces() {
        let dir = tempfile::tempdir().unwrap();
        let (svc, k, call) = crate::service::fake_service(dir.path()).await;
        let create = |spec: NamespaceSpec| {
            let svc = svc.clone();
            async move {
                svc.create::<Namespaces>(Ok(spec), &RequestId::default(), call)
                    .await
                    .map(|_| ())
            }
        };
        // path_exists looks at the file system: the paths are files in the temp dir, which
        // the fake kernel then calls namespaces.
        let p = |name: &str| {
            let f = dir.path().join(name);
            std::fs::write(&f, "").unwrap();
            f.display().to_string()
        };
        let (foreign, by_pid, host, own) = (p("foreign"), p("pid77"), p("pid1"), p("pid9"));
        k.add_namespace(&foreign);
        create(adopt("fa", &foreign)).await.unwrap();
        k.alias_namespace(&by_pid, k.inode_of(foreign.as_ref()).unwrap());
        k.alias_namespace(&host, FakeKernel::HOST_INODE);
        k.alias_namespace(&own, FakeKernel::OWN_INODE);
        for (path, says) in [
            (&by_pid, "already manages as \"fa\""),
            (&foreign, "already manages as \"fa\""),
            (&host, "host namespace weftd manages"),
            (&own, "weftd itself runs in"),
        ] {
            match create(adopt("fb", path)).await {
                Err(ServiceError::FailedPrecondition(m)) => {
                    assert!(m.starts_with("namespace.path: ") && m.contains(says), "{m}")
                }
                other => panic!("{path}: {other:?}"),
            }
        }
        // A namespace weft made is managed too, under its name.
        create(NamespaceSpec {
            name: "made".into(),
            labels: Default::default(),
            adopted_path: None,
        })
        .await
        .unwrap();
        // What its reconcile does.
        let made = k.create_named_netns("made").await.unwrap();

        let pid5 = p("pid5");
        k.alias_namespace(&pid5, k.inode_of(&made).unwrap());
        match create(adopt("fc", &pid5)).await {
            Err(ServiceError::FailedPrecondition(m)) => assert!(m.contains("\"made\""), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(svc.store().namespace_by_name("fb").await.unwrap().is_none());
    }
}
