//! NamespaceService: create, get, list, delete and watch network namespaces. Each handler
//! converts, calls the [`Service`], and converts back; see the service for what is checked.
//!
//! - CreateNamespace: the generic create (request id, dry run, wait). The service refuses a
//!   name whose netns file exists and is not weft's, and a `path` to adopt that is not a
//!   network namespace.
//! - DeleteNamespace: the generic delete by name; FAILED_PRECONDITION while links or
//!   endpoints still live in it.
//! - Get, List, Watch: reads, by name or by label selector.

use tonic::Request;
use weft_proto::v1::{self as pb, namespace_service_server::NamespaceService};

use super::{Answer, convert};
use crate::service::Namespaces;

super::service_impl! {
    impl NamespaceService {
        create create_namespace(pb::CreateNamespaceRequest) -> pb::CreateNamespaceResponse;
        get get_namespace(pb::GetNamespaceRequest) -> pb::GetNamespaceResponse;
        list list_namespaces(pb::ListNamespacesRequest) -> pb::ListNamespacesResponse;
        watch watch_namespaces(pb::WatchNamespacesRequest) -> WatchNamespacesStream<Namespaces>;
    }

    /// Deletes one namespace; its links and endpoints must be gone first.
    async fn delete_namespace(
        &self,
        req: Request<pb::DeleteNamespaceRequest>,
    ) -> Answer<pb::DeleteNamespaceResponse> {
        let (call, r) = convert::write_parts(req);
        super::planned(self.svc.delete::<Namespaces>(&r.name, call).await?)
    }
}
