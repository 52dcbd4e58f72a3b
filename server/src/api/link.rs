//! LinkService: create, get, list, update, delete and watch interfaces (veth pairs, bridges).

use std::sync::Arc;

use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use weft_proto::v1::{self as pb, link_service_server::LinkService};

use super::{
    ApiError, ApiResult, Idempotency, Pending, convert, idempotency, retry_if_raced, watch,
};
use crate::{
    model::{Invalid, LinkSpec, Selector, is_weft_mark},
    reconcile::{Controller, Key},
    store::LinkRow,
};

fn where_ns(ns: &str) -> String {
    if ns.is_empty() {
        "the host namespace".into()
    } else {
        format!("namespace {ns:?}")
    }
}

/// The LinkService implementation.
#[derive(Clone, Debug)]
pub struct LinkApi {
    ctl: Controller,
}

impl LinkApi {
    /// A service over the controller.
    pub fn new(ctl: Controller) -> Self {
        Self { ctl }
    }

    /// The alias of an interface that exists in the kernel, if it does.
    async fn kernel_alias(&self, namespace: &str, name: &str) -> Option<Option<String>> {
        let ns = self.ctl.ns_ref(namespace).await.ok()?;
        self.ctl
            .kernel()
            .get_link(&ns, name)
            .await
            .ok()
            .flatten()
            .map(|l| l.alias)
    }

    /// Finds the link with an end (`namespace`, `name`). When weft has none, says whether an
    /// interface weft does not own stands there (FAILED_PRECONDITION) or nothing does.
    async fn find(&self, namespace: &str, name: &str, verb: &str) -> ApiResult<LinkRow> {
        if name.is_empty() {
            return Err(Invalid::new("name", "which link? the interface name is empty").into());
        }
        if let Some(row) = self.ctl.store().link_by_end(namespace, name).await? {
            return Ok(row);
        }
        if !namespace.is_empty()
            && self
                .ctl
                .store()
                .namespace_by_name(namespace)
                .await?
                .is_none()
        {
            return Err(ApiError::NotFound(format!(
                "namespace {namespace:?} not found"
            )));
        }
        match self.kernel_alias(namespace, name).await {
            Some(alias) => Err(ApiError::FailedPrecondition(format!(
                "interface {name:?} in {} is not managed by weft ({}); weft will not {verb} it",
                where_ns(namespace),
                if is_weft_mark(alias.as_deref()) {
                    "its weft mark names no known link"
                } else {
                    "it has no weft ownership mark"
                }
            ))),
            None => Err(ApiError::NotFound(format!(
                "link {name:?} not found in {}",
                where_ns(namespace)
            ))),
        }
    }

    async fn reload(&self, id: &str) -> ApiResult<pb::Link> {
        let row = self
            .ctl
            .store()
            .link_by_id(id)
            .await?
            .ok_or_else(|| ApiError::NotFound("the link is gone".into()))?;
        Ok(convert::link_out(&row))
    }

    async fn create(
        &self,
        req: Request<pb::CreateLinkRequest>,
    ) -> ApiResult<(pb::Link, Vec<pb::PlannedChange>)> {
        let pending = Pending::start(&self.ctl, &req, req.get_ref().wait);
        let mut r = req.into_inner();
        let request_id = std::mem::take(&mut r.request_id);
        r.wait = None;
        let dry_run = std::mem::take(&mut r.dry_run);
        let idem = if dry_run {
            Idempotency::New(None)
        } else {
            idempotency(&self.ctl, "CreateLink", &request_id, &r).await?
        };
        let record = match idem {
            Idempotency::New(record) => record,
            Idempotency::Replay(id) => {
                let row = self.ctl.store().link_by_id(&id).await?.ok_or_else(|| {
                    ApiError::NotFound(format!(
                        "what request {request_id:?} made has been deleted since"
                    ))
                })?;
                pending
                    .replay(&self.ctl, Key::Link(id.clone()), row.generation)
                    .await?;
                return Ok((self.reload(&id).await?, Vec::new()));
            }
        };
        let body = r.link.ok_or_else(|| {
            Invalid::new(
                "link",
                "the request needs a link: {\"link\": {\"name\": ...}}",
            )
        })?;
        let spec: LinkSpec = convert::link_in(&body)?;
        spec.validate()?;
        for end in spec.ends() {
            if !end.namespace.is_empty()
                && self
                    .ctl
                    .store()
                    .namespace_by_name(&end.namespace)
                    .await?
                    .is_none()
            {
                return Err(ApiError::NotFound(format!(
                    "namespace {:?} (of interface {:?}) not found; create it first",
                    end.namespace, end.name
                )));
            }
            if self
                .ctl
                .store()
                .link_by_end(&end.namespace, &end.name)
                .await?
                .is_some()
            {
                return Err(ApiError::AlreadyExists(format!(
                    "interface {:?} already exists in {} (a link weft manages)",
                    end.name,
                    where_ns(&end.namespace)
                )));
            }
            if self.kernel_alias(&end.namespace, &end.name).await.is_some() {
                return Err(ApiError::AlreadyExists(format!(
                    "interface {:?} already exists in {} and is not managed by weft; choose another name",
                    end.name,
                    where_ns(&end.namespace)
                )));
            }
        }
        let row = self
            .ctl
            .store()
            .create_link(&spec, record.as_ref(), dry_run)
            .await?;
        if dry_run {
            let plan = self.ctl.plan_link(&row.id, &row.spec).await?;
            return Ok((convert::link_out(&row), convert::planned_out(plan)));
        }
        pending
            .finish(&self.ctl, Key::Link(row.id.clone()), row.generation)
            .await?;
        Ok((self.reload(&row.id).await?, Vec::new()))
    }

    async fn update(
        &self,
        req: Request<pb::UpdateLinkRequest>,
    ) -> ApiResult<(pb::Link, Vec<pb::PlannedChange>)> {
        let pending = Pending::start(&self.ctl, &req, req.get_ref().wait);
        let req = req.into_inner();
        let body = req
            .link
            .ok_or_else(|| Invalid::new("link", "the request needs the link to change"))?;
        let row = self.find(&body.namespace, &body.name, "change").await?;
        if row.deleting {
            return Err(ApiError::FailedPrecondition(format!(
                "link {:?} is being deleted",
                body.name
            )));
        }
        let named_peer = row.spec.end.name != body.name || row.spec.end.namespace != body.namespace;
        let mask = req.update_mask.map(|m| m.paths).unwrap_or_default();
        let spec = convert::apply_update(&row.spec, &body, &mask, named_peer)?;
        spec.validate()?;
        if req.dry_run {
            let plan = self.ctl.plan_link(&row.id, &spec).await?;
            let mut would = row.clone();
            would.spec = spec;
            return Ok((convert::link_out(&would), convert::planned_out(plan)));
        }
        if spec == row.spec {
            return Ok((convert::link_out(&row), Vec::new()));
        }
        let row = self.ctl.store().update_link_spec(&row.id, &spec).await?;
        pending
            .finish(&self.ctl, Key::Link(row.id.clone()), row.generation)
            .await?;
        Ok((self.reload(&row.id).await?, Vec::new()))
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteLinkRequest>,
    ) -> ApiResult<Vec<pb::PlannedChange>> {
        let pending = Pending::start(&self.ctl, &req, req.get_ref().wait);
        let req = req.into_inner();
        let row = self.find(&req.namespace, &req.name, "delete").await?;
        if req.dry_run {
            return Ok(convert::planned_out(
                self.ctl.plan_link_removal(&row.id, &row.spec).await?,
            ));
        }
        self.ctl.store().mark_link_deleting(&row.id).await?;
        pending
            .finish(&self.ctl, Key::Link(row.id.clone()), row.generation + 1)
            .await?;
        Ok(Vec::new())
    }
}

/// Does the link have an end in `ns` (when a namespace filter is given) and match `sel`?
fn matches(r: &LinkRow, ns: Option<&str>, sel: &Selector) -> bool {
    ns.is_none_or(|ns| r.spec.ends().iter().any(|e| e.namespace == ns))
        && sel.matches(&r.spec.labels)
}

fn selected(ctl: &Controller, ns: Option<String>, sel: Selector) -> watch::Source<pb::Link> {
    let filter = Arc::new((ns, sel));
    let (c1, f1) = (ctl.clone(), filter.clone());
    let (c2, f2) = (ctl.clone(), filter);
    watch::Source {
        id_of: |k| match k {
            Key::Link(id) => Some(id),
            _ => None,
        },
        list: Arc::new(move || {
            let (c, f) = (c1.clone(), f1.clone());
            Box::pin(async move {
                Ok(c.store()
                    .list_links()
                    .await?
                    .iter()
                    .filter(|r| matches(r, f.0.as_deref(), &f.1))
                    .map(|r| (r.id.clone(), convert::link_out(r)))
                    .collect())
            })
        }),
        get: Arc::new(move |id| {
            let (c, f) = (c2.clone(), f2.clone());
            Box::pin(async move {
                Ok(c.store()
                    .link_by_id(&id)
                    .await?
                    .filter(|r| matches(r, f.0.as_deref(), &f.1))
                    .map(|r| convert::link_out(&r)))
            })
        }),
        tombstone: |uid| pb::Link {
            uid: uid.to_string(),
            ..Default::default()
        },
    }
}

#[tonic::async_trait]
impl LinkService for LinkApi {
    async fn create_link(
        &self,
        req: Request<pb::CreateLinkRequest>,
    ) -> Result<Response<pb::CreateLinkResponse>, Status> {
        let has_id = !req.get_ref().request_id.is_empty();
        let (link, planned_changes) = retry_if_raced(req, has_id, |r| self.create(r)).await?;
        Ok(Response::new(pb::CreateLinkResponse {
            planned_changes,
            link: Some(link),
        }))
    }

    async fn get_link(
        &self,
        req: Request<pb::GetLinkRequest>,
    ) -> Result<Response<pb::GetLinkResponse>, Status> {
        let req = req.into_inner();
        let row = self.find(&req.namespace, &req.name, "show").await?;
        Ok(Response::new(pb::GetLinkResponse {
            link: Some(convert::link_out(&row)),
        }))
    }

    async fn list_links(
        &self,
        req: Request<pb::ListLinksRequest>,
    ) -> Result<Response<pb::ListLinksResponse>, Status> {
        let req = req.into_inner();
        let sel = Selector::parse(&req.label_selector).map_err(ApiError::from)?;
        let rows = self
            .ctl
            .store()
            .list_links()
            .await
            .map_err(ApiError::from)?;
        let mut links: Vec<pb::Link> = rows
            .iter()
            .filter(|r| matches(r, req.namespace.as_deref(), &sel))
            .map(convert::link_out)
            .collect();
        links.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Ok(Response::new(pb::ListLinksResponse { links }))
    }

    async fn update_link(
        &self,
        req: Request<pb::UpdateLinkRequest>,
    ) -> Result<Response<pb::UpdateLinkResponse>, Status> {
        let (link, planned_changes) = self.update(req).await?;
        Ok(Response::new(pb::UpdateLinkResponse {
            planned_changes,
            link: Some(link),
        }))
    }

    async fn delete_link(
        &self,
        req: Request<pb::DeleteLinkRequest>,
    ) -> Result<Response<pb::DeleteLinkResponse>, Status> {
        let planned_changes = self.delete(req).await?;
        Ok(Response::new(pb::DeleteLinkResponse { planned_changes }))
    }

    type WatchLinksStream = ReceiverStream<Result<pb::WatchLinksResponse, Status>>;

    async fn watch_links(
        &self,
        req: Request<pb::WatchLinksRequest>,
    ) -> Result<Response<Self::WatchLinksStream>, Status> {
        let req = req.into_inner();
        let sel = Selector::parse(&req.label_selector).map_err(ApiError::from)?;
        let start = watch::Start::new(self.ctl.events(), req.since_revision)?;
        Ok(Response::new(watch::spawn(
            selected(&self.ctl, req.namespace, sel),
            start,
            |t, link, revision| pb::WatchLinksResponse {
                r#type: t as i32,
                revision,
                link: Some(link),
            },
        )))
    }
}
