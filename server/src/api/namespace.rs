//! NamespaceService: create, get, list, delete and watch network namespaces.

use std::sync::Arc;

use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use weft_proto::v1::{self as pb, namespace_service_server::NamespaceService};

use super::{
    ApiError, ApiResult, Idempotency, Pending, convert, idempotency, retry_if_raced, watch,
};
use crate::{
    model::{Invalid, Selector},
    reconcile::{Controller, Key},
};

/// The NamespaceService implementation.
#[derive(Clone, Debug)]
pub struct NamespaceApi {
    ctl: Controller,
}

impl NamespaceApi {
    /// A service over the controller.
    pub fn new(ctl: Controller) -> Self {
        Self { ctl }
    }

    async fn get(&self, name: &str) -> ApiResult<pb::Namespace> {
        let row = self
            .ctl
            .store()
            .namespace_by_name(name)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("namespace {name:?} not found")))?;
        Ok(convert::namespace_out(&row))
    }

    async fn create(
        &self,
        req: Request<pb::CreateNamespaceRequest>,
    ) -> ApiResult<(pb::Namespace, Vec<pb::PlannedChange>)> {
        let pending = Pending::start(&self.ctl, &req, req.get_ref().wait);
        let mut r = req.into_inner();
        let request_id = std::mem::take(&mut r.request_id);
        r.wait = None;
        let dry_run = std::mem::take(&mut r.dry_run);
        let idem = if dry_run {
            Idempotency::New(None)
        } else {
            idempotency(&self.ctl, "CreateNamespace", &request_id, &r).await?
        };
        let record = match idem {
            Idempotency::New(record) => record,
            Idempotency::Replay(id) => {
                let row = self
                    .ctl
                    .store()
                    .namespace_by_id(&id)
                    .await?
                    .ok_or_else(|| {
                        ApiError::NotFound(format!(
                            "what request {request_id:?} made has been deleted since"
                        ))
                    })?;
                pending
                    .replay(&self.ctl, Key::Namespace(id.clone()), row.generation)
                    .await?;
                return Ok((self.get(&row.spec.name).await?, Vec::new()));
            }
        };
        let body = r.namespace.ok_or_else(|| {
            Invalid::new(
                "namespace",
                "the request needs a namespace: {\"namespace\": {\"name\": ...}}",
            )
        })?;
        let spec = convert::namespace_in(&body);
        spec.validate()?;
        let kernel = self.ctl.kernel();
        match &spec.adopted_path {
            Some(p) => {
                if !p.exists() {
                    return Err(ApiError::NotFound(format!(
                        "{} does not exist; give the path of a network namespace to adopt",
                        p.display()
                    )));
                }
                if !kernel.is_netns(p) {
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
                let file = kernel.netns_dir().join(&spec.name);
                if file.symlink_metadata().is_ok()
                    && self
                        .ctl
                        .store()
                        .namespace_by_name(&spec.name)
                        .await?
                        .is_none()
                {
                    return Err(ApiError::AlreadyExists(format!(
                        "{} already exists and is not managed by weft; choose another name, or adopt it with \"path\"",
                        file.display()
                    )));
                }
            }
        }
        let row = self
            .ctl
            .store()
            .create_namespace(&spec, record.as_ref(), dry_run)
            .await?;
        if dry_run {
            let plan = self.ctl.plan_namespace(&row).await;
            return Ok((convert::namespace_out(&row), convert::planned_out(plan)));
        }
        pending
            .finish(&self.ctl, Key::Namespace(row.id.clone()), row.generation)
            .await?;
        Ok((self.get(&spec.name).await?, Vec::new()))
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteNamespaceRequest>,
    ) -> ApiResult<Vec<pb::PlannedChange>> {
        let pending = Pending::start(&self.ctl, &req, req.get_ref().wait);
        let pb::DeleteNamespaceRequest { name, dry_run, .. } = req.into_inner();
        if name.is_empty() {
            return Err(Invalid::new("name", "which namespace? the name is empty").into());
        }
        let row = self
            .ctl
            .store()
            .mark_namespace_deleting(&name, dry_run)
            .await?;
        if dry_run {
            return Ok(convert::planned_out(self.ctl.plan_namespace_removal(&row)));
        }
        pending
            .finish(&self.ctl, Key::Namespace(row.id), row.generation)
            .await?;
        Ok(Vec::new())
    }
}

fn selected(ctl: &Controller, sel: Selector) -> watch::Source<pb::Namespace> {
    let sel = Arc::new(sel);
    let (c1, s1) = (ctl.clone(), sel.clone());
    let (c2, s2) = (ctl.clone(), sel);
    watch::Source {
        id_of: |k| match k {
            Key::Namespace(id) => Some(id),
            _ => None,
        },
        list: Arc::new(move || {
            let (c, s) = (c1.clone(), s1.clone());
            Box::pin(async move {
                Ok(c.store()
                    .list_namespaces()
                    .await?
                    .iter()
                    .filter(|r| s.matches(&r.spec.labels))
                    .map(|r| (r.id.clone(), convert::namespace_out(r)))
                    .collect())
            })
        }),
        get: Arc::new(move |id| {
            let (c, s) = (c2.clone(), s2.clone());
            Box::pin(async move {
                Ok(c.store()
                    .namespace_by_id(&id)
                    .await?
                    .filter(|r| s.matches(&r.spec.labels))
                    .map(|r| convert::namespace_out(&r)))
            })
        }),
        tombstone: |uid| pb::Namespace {
            uid: uid.to_string(),
            ..Default::default()
        },
    }
}

#[tonic::async_trait]
impl NamespaceService for NamespaceApi {
    async fn create_namespace(
        &self,
        req: Request<pb::CreateNamespaceRequest>,
    ) -> Result<Response<pb::CreateNamespaceResponse>, Status> {
        let has_id = !req.get_ref().request_id.is_empty();
        let (ns, planned_changes) = retry_if_raced(req, has_id, |r| self.create(r)).await?;
        Ok(Response::new(pb::CreateNamespaceResponse {
            planned_changes,
            namespace: Some(ns),
        }))
    }

    async fn get_namespace(
        &self,
        req: Request<pb::GetNamespaceRequest>,
    ) -> Result<Response<pb::GetNamespaceResponse>, Status> {
        let ns = self.get(&req.into_inner().name).await?;
        Ok(Response::new(pb::GetNamespaceResponse {
            namespace: Some(ns),
        }))
    }

    async fn list_namespaces(
        &self,
        req: Request<pb::ListNamespacesRequest>,
    ) -> Result<Response<pb::ListNamespacesResponse>, Status> {
        let sel = Selector::parse(&req.into_inner().label_selector).map_err(ApiError::from)?;
        let rows = self
            .ctl
            .store()
            .list_namespaces()
            .await
            .map_err(ApiError::from)?;
        let namespaces = rows
            .iter()
            .filter(|r| sel.matches(&r.spec.labels))
            .map(convert::namespace_out)
            .collect();
        Ok(Response::new(pb::ListNamespacesResponse { namespaces }))
    }

    async fn delete_namespace(
        &self,
        req: Request<pb::DeleteNamespaceRequest>,
    ) -> Result<Response<pb::DeleteNamespaceResponse>, Status> {
        let planned_changes = self.delete(req).await?;
        Ok(Response::new(pb::DeleteNamespaceResponse {
            planned_changes,
        }))
    }

    type WatchNamespacesStream = ReceiverStream<Result<pb::WatchNamespacesResponse, Status>>;

    async fn watch_namespaces(
        &self,
        req: Request<pb::WatchNamespacesRequest>,
    ) -> Result<Response<Self::WatchNamespacesStream>, Status> {
        let req = req.into_inner();
        let sel = Selector::parse(&req.label_selector).map_err(ApiError::from)?;
        let start = watch::Start::new(self.ctl.events(), req.since_revision)?;
        Ok(Response::new(watch::spawn(
            selected(&self.ctl, sel),
            start,
            |t, ns, revision| pb::WatchNamespacesResponse {
                r#type: t as i32,
                revision,
                namespace: Some(ns),
            },
        )))
    }
}
