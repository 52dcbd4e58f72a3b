//! Links (veth pairs and bridges): the create preconditions, and find, update and delete.
//!
//! A link is found by either of its ends (namespace, interface name). When weft has no link
//! there, [`Service::find_link`] tells a foreign interface (FAILED_PRECONDITION: weft never
//! changes or deletes what it did not make) from nothing at all (NOT_FOUND). Create refuses a
//! name taken in the store or in the kernel before anything is written.
//!
//! An update applies the client's change to the stored spec (the adapter supplies it as a
//! function, since a field mask is a wire notion), validates the result, and writes it only
//! if it differs; a dry run plans the change against the kernel instead.

use super::{
    Call, Filter, Kind, Links, Make, Service, ServiceError, ServiceResult,
    create::Pending,
    kinds::{kind_basics, row_is_view},
};
use crate::{
    model::{Invalid, LinkKind, LinkSpec, PlannedChange, is_weft_mark},
    store::{LinkRow, RequestRecord},
};

/// How a message names where an interface is: "the host namespace" or `namespace "x"`.
fn where_ns(ns: &str) -> String {
    if ns.is_empty() {
        "the host namespace".into()
    } else {
        format!("namespace {ns:?}")
    }
}

impl Kind for Links {
    row_is_view!(LinkRow);

    kind_basics!("link", Link, LinkRow, link_by_id, list_links);

    fn selected(row: &LinkRow, filter: &Filter) -> bool {
        filter.namespace(row.spec.ends().iter().map(|e| e.namespace.as_str()))
            && filter.labels(&row.spec.labels)
    }

    /// Links are listed by the namespace, then the name, of their first end (a NUL between
    /// them, which no name holds, keeps that order).
    fn sort_key(row: &LinkRow) -> String {
        format!("{}\0{}", row.spec.end.namespace, row.spec.end.name)
    }
}

impl Make for Links {
    const METHOD: &'static str = "CreateLink";
    type Spec = LinkSpec;

    async fn persist(
        svc: &Service,
        spec: &LinkSpec,
        record: Option<&RequestRecord>,
        dry_run: bool,
    ) -> ServiceResult<LinkRow> {
        for end in spec.ends() {
            if !end.namespace.is_empty()
                && svc
                    .store()
                    .namespace_by_name(&end.namespace)
                    .await?
                    .is_none()
            {
                return Err(ServiceError::NotFound(format!(
                    "namespace {:?} (of interface {:?}) not found; create it first",
                    end.namespace, end.name
                )));
            }
            if svc
                .store()
                .link_by_end(&end.namespace, &end.name)
                .await?
                .is_some()
            {
                return Err(ServiceError::AlreadyExists(format!(
                    "interface {:?} already exists in {} (a link weft manages)",
                    end.name,
                    where_ns(&end.namespace)
                )));
            }
            if svc
                .interface_alias(&end.namespace, &end.name)
                .await
                .is_some()
            {
                return Err(ServiceError::AlreadyExists(format!(
                    "interface {:?} already exists in {} and is not managed by weft; choose another name",
                    end.name,
                    where_ns(&end.namespace)
                )));
            }
        }
        svc.check_masters(spec, None).await?;
        Ok(svc.store().create_link(spec, record, dry_run).await?)
    }

    async fn plan(svc: &Service, row: LinkRow) -> ServiceResult<(LinkRow, Vec<PlannedChange>)> {
        let plan = svc.ctl.plan_link(&row.id, &row.spec).await?;
        Ok((row, plan))
    }
}

impl Service {
    /// Refuses an end whose `master` names no bridge in the end's namespace, so the link is
    /// not stored only to fail in its reconcile: NOT_FOUND when nothing has the name,
    /// FAILED_PRECONDITION when it is not a bridge or is being deleted. A bridge is a bridge
    /// link weft manages there, a network's bridge (host namespace), or a bridge interface
    /// the kernel has (one weft did not make may still take ports, as `ip link set master`
    /// allows). With `before`, only masters that differ from it are checked (an update).
    async fn check_masters(&self, spec: &LinkSpec, before: Option<&LinkSpec>) -> ServiceResult<()> {
        let fields = ["link.master", "link.veth.peer.master"];
        for (i, end) in spec.ends().into_iter().enumerate() {
            let Some(master) = &end.master else { continue };
            let unchanged = before
                .and_then(|b| b.ends().get(i).map(|e| e.master.as_ref() == Some(master)))
                .unwrap_or(false);
            if unchanged {
                continue;
            }
            let field = fields[i.min(1)];
            let at = where_ns(&end.namespace);
            if let Some(row) = self.store().link_by_end(&end.namespace, master).await? {
                if !matches!(row.spec.kind, LinkKind::Bridge) {
                    return Err(ServiceError::FailedPrecondition(format!(
                        "{field}: {master:?} in {at} is a veth, not a bridge; name a bridge"
                    )));
                }
                if row.deleting {
                    return Err(ServiceError::FailedPrecondition(format!(
                        "{field}: bridge {master:?} in {at} is being deleted"
                    )));
                }
                continue;
            }
            if end.namespace.is_empty()
                && self
                    .store()
                    .list_networks()
                    .await?
                    .iter()
                    .any(|n| &n.spec.bridge_name == master)
            {
                continue;
            }
            match self.interface_kind(&end.namespace, master).await {
                Some(Some(kind)) if kind == "bridge" => {}
                Some(kind) => {
                    return Err(ServiceError::FailedPrecondition(format!(
                        "{field}: interface {master:?} in {at} is not a bridge ({}); name a bridge",
                        kind.as_deref().unwrap_or("no kind")
                    )));
                }
                None => {
                    return Err(ServiceError::NotFound(format!(
                        "{field}: there is no bridge {master:?} in {at}; create it first (a link \
                         of kind bridge), or leave master empty"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Finds the link with an end (`namespace`, `name`). When weft has none, says whether an
    /// interface weft does not own stands there (FAILED_PRECONDITION: weft will not `verb`
    /// it) or nothing does (NOT_FOUND).
    pub async fn find_link(
        &self,
        namespace: &str,
        name: &str,
        verb: &str,
    ) -> ServiceResult<LinkRow> {
        if name.is_empty() {
            return Err(Invalid::new("name", "which link? the interface name is empty").into());
        }
        if let Some(row) = self.store().link_by_end(namespace, name).await? {
            return Ok(row);
        }
        if !namespace.is_empty() && self.store().namespace_by_name(namespace).await?.is_none() {
            return Err(ServiceError::NotFound(format!(
                "namespace {namespace:?} not found"
            )));
        }
        match self.interface_alias(namespace, name).await {
            Some(alias) => Err(ServiceError::FailedPrecondition(format!(
                "interface {name:?} in {} is not managed by weft ({}); weft will not {verb} it",
                where_ns(namespace),
                if is_weft_mark(alias.as_deref()) {
                    "its weft mark names no known link"
                } else {
                    "it has no weft ownership mark"
                }
            ))),
            None => Err(ServiceError::NotFound(format!(
                "link {name:?} not found in {}",
                where_ns(namespace)
            ))),
        }
    }

    /// Changes the link with an end (`namespace`, `name`). `change` gets the stored spec and
    /// whether the request named the peer end, and returns the new spec. Unchanged specs are
    /// not written; a dry run answers the link as it would be and the planned changes.
    pub async fn update_link<F>(
        &self,
        namespace: &str,
        name: &str,
        change: F,
        call: Call,
    ) -> ServiceResult<(LinkRow, Vec<PlannedChange>)>
    where
        F: FnOnce(&LinkSpec, bool) -> Result<LinkSpec, Invalid> + Send,
    {
        let pending = Pending::start(self, call);
        let row = self.find_link(namespace, name, "change").await?;
        if row.deleting {
            return Err(ServiceError::FailedPrecondition(format!(
                "link {name:?} is being deleted"
            )));
        }
        let named_peer = row.spec.end.name != name || row.spec.end.namespace != namespace;
        let spec = change(&row.spec, named_peer)?;
        self.limits.get().check_link(&spec)?;
        spec.validate()?;
        self.check_masters(&spec, Some(&row.spec)).await?;
        if call.dry_run {
            // The store's checks (a bridge's ports) run and roll back.
            if spec != row.spec {
                self.store().update_link_spec(&row.id, &spec, true).await?;
            }
            let plan = self.ctl.plan_link(&row.id, &spec).await?;
            let mut would = row;
            would.spec = spec;
            return Ok((would, plan));
        }
        if spec == row.spec {
            return Ok((row, Vec::new()));
        }
        let row = self.store().update_link_spec(&row.id, &spec, false).await?;
        pending
            .finish(self, Links::key(row.id.clone()), row.generation)
            .await?;
        Ok((self.reload::<Links>(&row).await?, Vec::new()))
    }

    /// Deletes the link with an end (`namespace`, `name`); a dry run answers what the delete
    /// would change.
    pub async fn delete_link(
        &self,
        namespace: &str,
        name: &str,
        call: Call,
    ) -> ServiceResult<Vec<PlannedChange>> {
        let pending = Pending::start(self, call);
        let row = self.find_link(namespace, name, "delete").await?;
        if call.dry_run {
            return Ok(self.ctl.plan_link_removal(&row.id, &row.spec).await?);
        }
        self.store().mark_link_deleting(&row.id).await?;
        pending
            .finish(self, Links::key(row.id), row.generation + 1)
            .await?;
        Ok(Vec::new())
    }
}
