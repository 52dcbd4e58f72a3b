//! `weft ns rm --force`: as `docker rm -f` takes a container off its networks, the
//! namespace's endpoints are disconnected and the links with an end in it deleted (each
//! waited for) before the namespace itself is removed. A namespace that does not exist is
//! left to the delete to report.

use anyhow::Result;
use weft::v1::{DeleteLinkRequest, DisconnectRequest, ListLinksRequest, ListNetworksRequest, link};

use crate::cli::Ctx;

/// Disconnects `name` from every network and deletes every link with an end in it.
pub async fn clear(ctx: &Ctx, name: &str) -> Result<()> {
    let nets = ctx
        .call("list networks", |c| async move {
            c.list_all_networks(tonic::Request::new(ListNetworksRequest::default()))
                .await
        })
        .await?
        .networks;
    for net in nets {
        if !net.endpoints.iter().any(|e| e.namespace == name) {
            continue;
        }
        let req = ctx.req(DisconnectRequest {
            network: net.name.clone(),
            namespace: name.to_string(),
            wait: Some(true),
            dry_run: false,
        });
        ctx.write(
            &format!("disconnect {name} from {}", net.name),
            |c| async move { c.networks().disconnect(req).await },
        )
        .await?;
    }
    let links = ctx
        .call("list links", |c| async move {
            c.list_all_links(tonic::Request::new(ListLinksRequest::default()))
                .await
        })
        .await?
        .links;
    for l in links {
        let peer_in = matches!(&l.kind, Some(link::Kind::Veth(v))
            if v.peer.as_ref().is_some_and(|p| p.namespace == name));
        if l.namespace != name && !peer_in {
            continue;
        }
        let req = ctx.req(DeleteLinkRequest {
            namespace: l.namespace.clone(),
            name: l.name.clone(),
            wait: Some(true),
            dry_run: false,
        });
        ctx.write(&format!("delete link {}", l.name), |c| async move {
            c.links().delete_link(req).await
        })
        .await?;
    }
    Ok(())
}
