//! NamespaceService: create, get, list, delete and watch network namespaces. Each handler
//! converts, calls the [`Service`], and converts back; see the service for what is checked.
//!
//! - CreateNamespace: the generic create (request id, dry run, wait). The service refuses a
//!   name whose netns file exists and is not weft's, and a `path` to adopt that is not a
//!   network namespace.
//! - DeleteNamespace: the generic delete by name; FAILED_PRECONDITION while links or
//!   endpoints still live in it.
//! - Get, List, Watch: reads, by name or by label selector.

use tonic::{Request, Response, Status};
use weft_proto::v1::{self as pb, namespace_service_server::NamespaceService};

use super::{
    Answer, Api, convert,
    watch::{self, WatchStream},
};
use crate::service::Namespaces;

/// The RPCs of weft.v1.NamespaceService. Every handler is convert, call, convert back;
/// errors become statuses through the one `From<ServiceError>` in `api`.
#[tonic::async_trait]
impl NamespaceService for Api {
    /// Idempotent with a request id; waits for Ready unless `wait` is false.
    async fn create_namespace(
        &self,
        req: Request<pb::CreateNamespaceRequest>,
    ) -> Answer<pb::CreateNamespaceResponse> {
        super::create(&self.svc, req).await
    }

    /// One namespace by name.
    async fn get_namespace(
        &self,
        req: Request<pb::GetNamespaceRequest>,
    ) -> Answer<pb::GetNamespaceResponse> {
        super::get(&self.svc, req).await
    }

    /// The namespaces a label selector picks.
    async fn list_namespaces(
        &self,
        req: Request<pb::ListNamespacesRequest>,
    ) -> Answer<pb::ListNamespacesResponse> {
        super::list(&self.svc, req).await
    }

    /// Deletes one namespace; its links and endpoints must be gone first.
    async fn delete_namespace(
        &self,
        req: Request<pb::DeleteNamespaceRequest>,
    ) -> Answer<pb::DeleteNamespaceResponse> {
        let (call, r) = convert::write_parts(req);
        super::planned(self.svc.delete::<Namespaces>(&r.name, call).await?)
    }

    /// The stream of WatchNamespaces: `WatchStream` over [`Namespaces`].
    type WatchNamespacesStream = WatchStream<Namespaces>;

    /// Streams changes of the namespaces a label selector picks.
    async fn watch_namespaces(
        &self,
        req: Request<pb::WatchNamespacesRequest>,
    ) -> Result<Response<Self::WatchNamespacesStream>, Status> {
        let slot = self.watch_slot(&req)?;
        let r = req.into_inner();
        watch::answer::<Namespaces>(
            &self.svc,
            &self.shared,
            slot,
            &r.label_selector,
            None,
            r.since_revision,
        )
    }
}
