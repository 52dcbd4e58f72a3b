//! The weft client library: a connection to weftd over its Unix socket (or TCP with TLS) and
//! typed clients for the weft.v1 services.
//!
//! Where weftd is can be given as a [`Host`], parsed from the same strings as the CLI's
//! `--host` and `WEFT_HOST` (`unix:///run/weft/weftd.sock`, `tcp://10.0.0.1:7443`), and
//! connected to with [`Client::connect`]; weftd's TCP listener needs a client certificate
//! ([`TlsFiles`]).
//!
//! Lists come a page at a time; `list_all_namespaces`, `list_all_links` and
//! `list_all_networks` page through all of them (see [`page`]).
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
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tower::service_fn;
pub use weft_proto::v1;
use weft_proto::v1::{
    ListLinksRequest, ListLinksResponse, ListNamespacesRequest, ListNamespacesResponse,
    ListNetworksRequest, ListNetworksResponse, link_service_client::LinkServiceClient,
    namespace_service_client::NamespaceServiceClient, network_service_client::NetworkServiceClient,
    system_service_client::SystemServiceClient,
};

pub mod cni;
pub mod page;

/// The socket weftd listens on by default.
pub const DEFAULT_SOCKET: &str = "/run/weft/weftd.sock";

/// Where weftd listens: its Unix socket or a TCP address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    /// A Unix socket path (`unix:///run/weft/weftd.sock`).
    Unix(PathBuf),
    /// A TCP `host:port` (`tcp://10.0.0.1:7443`).
    Tcp(String),
}

impl std::str::FromStr for Host {
    type Err = String;

    /// Parses `unix:///path` or `tcp://host:port`, as Docker's `DOCKER_HOST`.
    fn from_str(s: &str) -> Result<Host, String> {
        if let Some(path) = s.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(format!(
                    "{s:?}: unix:// needs a socket path (unix:///run/weft/weftd.sock)"
                ));
            }
            return Ok(Host::Unix(path.into()));
        }
        if let Some(addr) = s.strip_prefix("tcp://") {
            let addr = addr.trim_end_matches('/');
            if addr.is_empty() || !addr.contains(':') {
                return Err(format!(
                    "{s:?}: tcp:// needs host:port (tcp://10.0.0.1:7443)"
                ));
            }
            return Ok(Host::Tcp(addr.to_string()));
        }
        Err(format!(
            "{s:?}: give unix:///path/to/weftd.sock or tcp://host:port"
        ))
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Unix(p) => write!(f, "unix://{}", p.display()),
            Host::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

/// A client's TLS files (PEM) for weftd's TCP listener: the client certificate and key weftd
/// checks against its `--tls-client-ca`, and the CA that signed weftd's own certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// The client certificate (`--tls-cert`).
    pub cert: Option<PathBuf>,
    /// Its private key (`--tls-key`).
    pub key: Option<PathBuf>,
    /// The CA of weftd's certificate (`--tls-ca`).
    pub ca: Option<PathBuf>,
}

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A TLS file could not be read, or the set is incomplete.
    #[error("{0}")]
    Tls(String),
    /// Dialling or the handshake failed.
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
}

impl TlsFiles {
    /// Whether any file is given (TLS is then used).
    pub fn is_set(&self) -> bool {
        self.cert.is_some() || self.key.is_some() || self.ca.is_some()
    }

    /// The tonic TLS settings, verifying weftd's certificate for `domain`.
    fn config(&self, domain: &str) -> Result<ClientTlsConfig, ConnectError> {
        let read = |p: &Option<PathBuf>, flag: &str| -> Result<Vec<u8>, ConnectError> {
            let p = p.as_ref().ok_or_else(|| {
                ConnectError::Tls(format!(
                    "TLS needs --tls-cert, --tls-key and --tls-ca together; {flag} is missing"
                ))
            })?;
            std::fs::read(p)
                .map_err(|e| ConnectError::Tls(format!("reading {flag} {}: {e}", p.display())))
        };
        let cert = read(&self.cert, "--tls-cert")?;
        let key = read(&self.key, "--tls-key")?;
        let ca = read(&self.ca, "--tls-ca")?;
        Ok(ClientTlsConfig::new()
            .domain_name(domain)
            .ca_certificate(Certificate::from_pem(ca))
            .identity(Identity::from_pem(cert, key)))
    }
}

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

    /// Connects to weftd at `host`; over TCP with TLS when `tls` names files (weftd serves TCP
    /// only so), in plaintext otherwise.
    pub async fn connect(host: &Host, tls: &TlsFiles) -> Result<Self, ConnectError> {
        match host {
            Host::Unix(path) => Ok(Self::connect_unix(path).await?),
            Host::Tcp(addr) if tls.is_set() => Self::connect_tls(addr, tls).await,
            Host::Tcp(addr) => Ok(Self::connect_tcp(addr).await?),
        }
    }

    /// Connects to weftd over TCP with TLS at `addr` (`host:port`), presenting the client
    /// certificate of `tls` and checking weftd's against its CA (for the name or address
    /// `host`).
    pub async fn connect_tls(addr: &str, tls: &TlsFiles) -> Result<Self, ConnectError> {
        let addr = addr.strip_prefix("https://").unwrap_or(addr);
        let domain = match addr.rsplit_once(':') {
            Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
            None => addr,
        };
        let config = tls.config(domain)?;
        let channel = Endpoint::from_shared(format!("https://{addr}"))?
            .tls_config(config)?
            .connect()
            .await?;
        Ok(Self { channel })
    }

    /// Connects to weftd over TCP in plaintext, `addr` being `host:port` or a full `http://`
    /// URI. weftd itself serves TCP only with TLS ([`Client::connect_tls`]).
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
