//! LinkService: create, get, list, update, delete and watch interfaces (veth pairs, bridges).
//! Each handler converts, calls the [`Service`], and converts back; see the service for what
//! is checked. UpdateLink hands the service a closure that applies the request's field mask
//! (a wire notion, so it stays in `convert`) to the stored spec.
//!
//! - CreateLink: the generic create. Both ends' names must be free, in the store and in the
//!   kernel; a namespace an end names must exist.
//! - Get, Update, Delete: find the link by either end first; an interface weft does not own
//!   is FAILED_PRECONDITION, never touched.
//! - List, Watch: by label selector and, optionally, a namespace one end is in.

use tonic::{Request, Response};
use weft_proto::v1::{self as pb, link_service_server::LinkService};

use super::{Answer, convert};
use crate::{
    model::Invalid,
    service::{Links, ServiceError},
};

super::service_impl! {
    impl LinkService {
        create create_link(pb::CreateLinkRequest) -> pb::CreateLinkResponse;
        list list_links(pb::ListLinksRequest) -> pb::ListLinksResponse;
        watch watch_links(pb::WatchLinksRequest) -> WatchLinksStream<Links>;
    }

    /// One link, by either end.
    async fn get_link(&self, req: Request<pb::GetLinkRequest>) -> Answer<pb::GetLinkResponse> {
        let r = req.into_inner();
        let row = self.svc.find_link(&r.namespace, &r.name, "show").await?;
        Ok(Response::new(pb::GetLinkResponse {
            link: Some(convert::link_out(&row)),
        }))
    }

    /// Changes the fields the mask names (or, without a mask, those the body sets).
    async fn update_link(
        &self,
        req: Request<pb::UpdateLinkRequest>,
    ) -> Answer<pb::UpdateLinkResponse> {
        let call = convert::call_of(&req, req.get_ref().wait, req.get_ref().dry_run);
        let r = req.into_inner();
        let body = r
            .link
            .ok_or_else(|| Invalid::new("link", "the request needs the link to change"))
            .map_err(ServiceError::from)?;
        let mask = r.update_mask.map(|m| m.paths).unwrap_or_default();
        let change =
            |current: &_, named_peer| convert::apply_update(current, &body, &mask, named_peer);
        let (row, plan) = self
            .svc
            .update_link(&body.namespace, &body.name, change, call)
            .await?;
        Ok(Response::new(pb::UpdateLinkResponse {
            planned_changes: convert::planned_out(plan),
            link: Some(convert::link_out(&row)),
        }))
    }

    /// Deletes one link (both ends of a veth).
    async fn delete_link(
        &self,
        req: Request<pb::DeleteLinkRequest>,
    ) -> Answer<pb::DeleteLinkResponse> {
        let (call, r) = convert::write_parts(req);
        super::planned(self.svc.delete_link(&r.namespace, &r.name, call).await?)
    }
}
