//! Paging through a List: weftd answers a List one page at a time (AIP-158: `page_size`,
//! `page_token`, `next_page_token`); [`crate::Client`]'s `list_all_*` methods ask for page after
//! page until the last and answer with one response holding every object, as a List did
//! before it had pages.

use std::future::Future;

use tonic::{Extensions, Request, Response, Status};
use weft_proto::v1::{
    ListLinksRequest, ListLinksResponse, ListNamespacesRequest, ListNamespacesResponse,
    ListNetworksRequest, ListNetworksResponse,
};

/// A List request: it can be pointed at the next page.
pub trait PagedRequest: Clone {
    /// Asks for the page after `token`.
    fn set_page_token(&mut self, token: String);
}

/// A List response: one page, which knows the token of the next.
pub trait PagedResponse {
    /// The token of the next page; empty on the last.
    fn next_page_token(&self) -> &str;
    /// Appends the objects of a later page, taking its token.
    fn append(&mut self, later: Self);
}

/// Implements the paging traits for a List's request and response, whose objects are in
/// field `$items`.
macro_rules! paged {
    ($($req:ty => $resp:ty { $items:ident }),*) => {$(
        impl PagedRequest for $req {
            fn set_page_token(&mut self, token: String) {
                self.page_token = token;
            }
        }
        impl PagedResponse for $resp {
            fn next_page_token(&self) -> &str {
                &self.next_page_token
            }
            fn append(&mut self, later: Self) {
                self.$items.extend(later.$items);
                self.next_page_token = later.next_page_token;
            }
        }
    )*};
}

paged!(
    ListNamespacesRequest => ListNamespacesResponse { namespaces },
    ListLinksRequest => ListLinksResponse { links },
    ListNetworksRequest => ListNetworksResponse { networks }
);

/// Calls `call` for the page `req` asks for and for every page after it, each with `req`'s
/// metadata (its deadline, say); answers with every object in one response whose
/// `next_page_token` is empty. A server that hands the same token back twice would loop
/// forever: that is an INTERNAL error instead.
pub async fn all_pages<Q, R, F, Fut>(req: Request<Q>, mut call: F) -> Result<Response<R>, Status>
where
    Q: PagedRequest,
    R: PagedResponse,
    F: FnMut(Request<Q>) -> Fut,
    Fut: Future<Output = Result<Response<R>, Status>>,
{
    let (meta, _, mut msg) = req.into_parts();
    let mut all: Option<R> = None;
    let mut last_token = String::new();
    loop {
        let page = call(Request::from_parts(
            meta.clone(),
            Extensions::default(),
            msg.clone(),
        ))
        .await?
        .into_inner();
        let next = page.next_page_token().to_string();
        match &mut all {
            None => all = Some(page),
            Some(all) => all.append(page),
        }
        if next.is_empty() {
            break;
        }
        if next == last_token {
            return Err(Status::internal(
                "weftd returned the same page token twice; the List cannot go on",
            ));
        }
        msg.set_page_token(next.clone());
        last_token = next;
    }
    all.map(Response::new)
        .ok_or_else(|| Status::internal("a List answered no page"))
}

#[cfg(test)]
mod tests {
    //! Paging against a scripted server.

    use std::sync::{Arc, Mutex};

    use weft_proto::v1::Namespace;

    use super::*;

    /// Three pages are joined in order; every page is asked with the token of the last.
    #[tokio::test]
    async fn pages_are_joined_in_order() {
        let asked = Arc::new(Mutex::new(Vec::new()));
        let a = asked.clone();
        let call = move |r: Request<ListNamespacesRequest>| {
            let a = a.clone();
            async move {
                let token = r.into_inner().page_token;
                a.lock().unwrap().push(token.clone());
                let (name, next) = match token.as_str() {
                    "" => ("a", "t1"),
                    "t1" => ("b", "t2"),
                    _ => ("c", ""),
                };
                Ok(Response::new(ListNamespacesResponse {
                    namespaces: vec![Namespace {
                        name: name.into(),
                        ..Default::default()
                    }],
                    next_page_token: next.into(),
                }))
            }
        };
        let all = all_pages(Request::new(ListNamespacesRequest::default()), call)
            .await
            .unwrap()
            .into_inner();
        let names: Vec<_> = all.namespaces.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert!(all.next_page_token.is_empty());
        assert_eq!(*asked.lock().unwrap(), ["", "t1", "t2"]);
    }

    /// A server that repeats a token is an error, not an endless loop.
    #[tokio::test]
    async fn a_repeated_token_stops() {
        let call = |_: Request<ListNamespacesRequest>| async {
            Ok(Response::new(ListNamespacesResponse {
                namespaces: Vec::new(),
                next_page_token: "same".into(),
            }))
        };
        let e = all_pages(Request::new(ListNamespacesRequest::default()), call)
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::Internal);
    }
}
