//! The weft client library: a connection to weftd over its Unix socket (or TCP) and typed
//! clients for the weft.v1 services. Lists come a page at a time; `list_all_namespaces`,
//! `list_all_links` and `list_all_networks` page through all of them (see [`page`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use weft::v1::{GetNamespaceRequest};
//! let client = weft::Client::connect_unix("/run/weft/weftd.sock").await?;
//! let ns = client.namespaces().get_namespace(GetNamespaceRequest { name: "ns1".into() }).await?;
//! println!("{:?}", ns.into_inner().namespace);
//! # Ok(()) }
//! ```

#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};
use tower::service_fn;
pub use weft_proto::v1;
use weft_proto::v1::{
    ListLinksRequest, ListLinksResponse, ListNamespacesRequest, ListNamespacesResponse,
    ListNetworksRequest, ListNetworksResponse, link_service_client::LinkServiceClient,
    namespace_service_client::NamespaceServiceClient, network_service_client::NetworkServiceClient,
    system_service_client::SystemServiceClient,
};

pub mod page;

/// The socket weftd listens on by default.
pub const DEFAULT_SOCKET: &str = "/run/weft/weftd.sock";

/// A connection to weftd. Cloning is cheap and shares the connection.
#[derive(Clone, Debug)]
pub struct Client {
    channel: Channel,
}

impl Client {
    /// Connects to weftd's Unix socket at `path`.
    pub async fn connect_unix(path: impl AsRef<Path>) -> Result<Self, tonic::transport::Error> {
        let path: PathBuf = path.as_ref().to_path_buf();
        // The URI is a placeholder: the connector below ignores it and dials the socket. Its
        // authority ("localhost") is what the server sees as :authority.
        let channel = Endpoint::from_static("http://localhost")
            .connect_with_connector(service_fn(move |_| {
                let path = path.clone();
                async move {
                    Ok::<_, std::io::Error>(TokioIo::new(
                        tokio::net::UnixStream::connect(path).await?,
                    ))
                }
            }))
            .await?;
        Ok(Self { channel })
    }

    /// Connects to weftd over TCP, `addr` being `host:port` or a full `http://` URI.
    pub async fn connect_tcp(addr: &str) -> Result<Self, tonic::transport::Error> {
        let uri = if addr.contains("://") {
            addr.to_string()
        } else {
            format!("http://{addr}")
        };
        let channel = Endpoint::from_shared(uri)?.connect().await?;
        Ok(Self { channel })
    }

    /// The NamespaceService client.
    pub fn namespaces(&self) -> NamespaceServiceClient<Channel> {
        NamespaceServiceClient::new(self.channel.clone())
    }

    /// The LinkService client.
    pub fn links(&self) -> LinkServiceClient<Channel> {
        LinkServiceClient::new(self.channel.clone())
    }

    /// The NetworkService client.
    pub fn networks(&self) -> NetworkServiceClient<Channel> {
        NetworkServiceClient::new(self.channel.clone())
    }

    /// The SystemService client (weftd's version, settings and counters).
    pub fn system(&self) -> SystemServiceClient<Channel> {
        SystemServiceClient::new(self.channel.clone())
    }

    /// The underlying channel, for other services (health, reflection).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }
}

/// Defines `Client::$name`, which answers every object a List request selects: the List
/// `$rpc` of `$service`, page after page (from `req.page_token`, `req.page_size` at a time),
/// joined into one response; each page is asked with `req`'s metadata (its deadline).
macro_rules! list_all {
    ($($(#[$doc:meta])* $name:ident: $service:ident.$rpc:ident($req:ty) -> $resp:ty;)*) => {
        impl Client {$(
            $(#[$doc])*
            pub async fn $name(
                &self,
                req: tonic::Request<$req>,
            ) -> Result<tonic::Response<$resp>, tonic::Status> {
                let c = self.$service();
                page::all_pages(req, |r| {
                    let mut c = c.clone();
                    async move { c.$rpc(r).await }
                })
                .await
            }
        )*}
    };
}

list_all! {
    /// Every namespace the request selects, all pages of ListNamespaces joined.
    list_all_namespaces: namespaces.list_namespaces(ListNamespacesRequest) -> ListNamespacesResponse;
    /// Every link the request selects, all pages of ListLinks joined.
    list_all_links: links.list_links(ListLinksRequest) -> ListLinksResponse;
    /// Every network the request selects, all pages of ListNetworks joined.
    list_all_networks: networks.list_networks(ListNetworksRequest) -> ListNetworksResponse;
}
