//! weftd's configuration: built-in defaults, overridden by a TOML file (`--config`), overridden
//! by command-line flags. The file uses the flags' names with '_' for '-'.
//!
//! Limits (`--max-labels`, `--max-connections`, ...) live in the file's `[limits]` table, under
//! the flags' names with '_' for '-' (`[limits]` `max_labels = 512`); their defaults are in
//! [`crate::model::limits`] and [`crate::admission`].
//!
//! Every value has one default, here; `weftd --help` and README's flag table name the same
//! defaults. A key the file does not know is an error at start-up, not silently ignored, so
//! a typo in deploy/weftd.toml is found before it matters.

use std::{net::SocketAddr, path::PathBuf};

use serde::Deserialize;

use crate::{
    admission::ConnLimits,
    logging::LogFormat,
    model::{
        AddressPool, ObjectLimits, RequestLimits,
        network::{default_pools, default_v6_pools},
    },
};

/// Default Unix socket.
pub const DEFAULT_SOCKET: &str = "/run/weft/weftd.sock";
/// Default database file.
pub const DEFAULT_DATABASE: &str = "/var/lib/weft/weft.db";
/// Default runtime directory: weftd's lock file for the host namespace lives there.
pub const DEFAULT_RUNTIME_DIR: &str = "/run/weft";
/// Default directory for named namespaces (the one `ip netns` uses).
pub const DEFAULT_NETNS_DIR: &str = "/run/netns";
/// Default resync period in seconds.
pub const DEFAULT_RESYNC: u64 = 30;
/// Default worker count.
pub const DEFAULT_WORKERS: usize = 4;
/// Default host resolv.conf: its nameservers are the DNS upstreams unless `--dns-upstream`
/// names some, and its options go into the resolv.conf weft writes for namespaces.
pub const DEFAULT_HOST_RESOLV_CONF: &str = "/etc/resolv.conf";
/// Default directory of per-namespace /etc files (`ip netns exec` bind-mounts
/// `<dir>/<name>/resolv.conf` over /etc/resolv.conf).
pub const DEFAULT_ETC_NETNS_DIR: &str = "/etc/netns";

/// The file form: every key optional.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Unix socket path.
    pub socket: Option<PathBuf>,
    /// SQLite database path.
    pub database: Option<PathBuf>,
    /// Directory of named namespaces.
    pub netns_dir: Option<PathBuf>,
    /// Runtime directory (the host namespace's lock file).
    pub runtime_dir: Option<PathBuf>,
    /// Namespace file that plays the host.
    pub host_netns: Option<PathBuf>,
    /// TCP listen address.
    pub tcp: Option<SocketAddr>,
    /// Address of the Prometheus `/metrics` listener.
    pub metrics: Option<SocketAddr>,
    /// Reconcile workers.
    pub workers: Option<usize>,
    /// Resync period, seconds.
    pub resync: Option<u64>,
    /// Create the default network `bridge` at start-up.
    pub default_network: Option<bool>,
    /// Bridge name of the default network.
    pub default_bridge: Option<String>,
    /// Subnet of the default network; empty picks one from the pools.
    pub default_subnet: Option<String>,
    /// Pools for automatic IPv4 subnets, "BASE/SIZE" or "base=BASE,size=SIZE".
    pub address_pools: Option<Vec<String>>,
    /// Pools for automatic IPv6 subnets.
    pub address_pools_v6: Option<Vec<String>>,
    /// weftd's TLS certificate (PEM) for `tcp`.
    pub tls_cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// The CA (PEM) that must have signed every TCP client's certificate.
    pub tls_client_ca: Option<PathBuf>,
    /// Group (name or gid) with full access on the Unix socket.
    pub socket_group: Option<String>,
    /// Group (name or gid) that may only read on the Unix socket.
    pub read_only_group: Option<String>,
    /// DNS upstreams (`ADDR` or `ADDR:PORT`) for names not on a network; none means the
    /// host resolv.conf's nameservers.
    pub dns_upstream: Option<Vec<String>>,
    /// The host's resolv.conf (its nameservers and options).
    pub host_resolv_conf: Option<PathBuf>,
    /// Where weft writes `<name>/resolv.conf` for the namespaces it creates.
    pub etc_netns_dir: Option<PathBuf>,
    /// The `[limits]` table.
    pub limits: Option<LimitSettings>,
    /// The format of the log lines, `text` or `json`.
    pub log_format: Option<LogFormat>,
    /// The log filter (an `EnvFilter` directive such as `info` or `weftd=debug,info`);
    /// `RUST_LOG` wins at start-up, SIGHUP applies the file's. File only, reloadable.
    #[serde(default)]
    pub log_level: Option<String>,
}

/// The limits as flags (`--max-labels`) and as the file's `[limits]` table (`max_labels`):
/// every one optional, a flag winning over the file, the file over the default.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Labels on one object [default: 256]
    #[arg(long)]
    pub max_labels: Option<usize>,
    /// Bytes of one object's label keys and values together [default: 32768]
    #[arg(long)]
    pub max_label_bytes: Option<usize>,
    /// Aliases of one endpoint [default: 64]
    #[arg(long)]
    pub max_aliases: Option<usize>,
    /// Addresses of one interface, and reserved addresses of one subnet [default: 256]
    #[arg(long)]
    pub max_addresses: Option<usize>,
    /// Routes of one interface [default: 1024]
    #[arg(long)]
    pub max_routes: Option<usize>,
    /// Host ports one endpoint publishes, each port of a range counted [default: 65536]
    #[arg(long)]
    pub max_published_ports: Option<usize>,
    /// Namespaces weftd keeps [default: 65536]
    #[arg(long)]
    pub max_namespaces: Option<usize>,
    /// Links weftd keeps [default: 65536]
    #[arg(long)]
    pub max_links: Option<usize>,
    /// Networks weftd keeps [default: 4096]
    #[arg(long)]
    pub max_networks: Option<usize>,
    /// Endpoints weftd keeps, over all networks [default: 65536]
    #[arg(long)]
    pub max_endpoints: Option<usize>,
    /// Open client connections in all [default: 1024]
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Open connections of one peer (a uid on the socket, an address over TCP) [default: 256]
    #[arg(long)]
    pub max_connections_per_peer: Option<usize>,
    /// Open Watch streams in all [default: 1024]
    #[arg(long)]
    pub max_watches: Option<usize>,
    /// Open Watch streams of one peer [default: 256]
    #[arg(long)]
    pub max_watches_per_peer: Option<usize>,
}

/// Every limit weftd applies, settled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// The size of one request.
    pub request: RequestLimits,
    /// Stored objects per kind.
    pub objects: ObjectLimits,
    /// Open connections and Watch streams.
    pub conns: ConnLimits,
}

impl LimitSettings {
    /// Layers flags (`cli`) over the file (`file`) over the defaults.
    pub fn merge(cli: LimitSettings, file: LimitSettings) -> Limits {
        let (r, o, c) = (
            RequestLimits::default(),
            ObjectLimits::default(),
            ConnLimits::default(),
        );
        macro_rules! pick {
            ($field:ident, $default:expr) => {
                cli.$field.or(file.$field).unwrap_or($default)
            };
        }
        Limits {
            request: RequestLimits {
                labels: pick!(max_labels, r.labels),
                label_bytes: pick!(max_label_bytes, r.label_bytes),
                aliases: pick!(max_aliases, r.aliases),
                addresses: pick!(max_addresses, r.addresses),
                routes: pick!(max_routes, r.routes),
                published_ports: pick!(max_published_ports, r.published_ports),
            },
            objects: ObjectLimits {
                namespaces: pick!(max_namespaces, o.namespaces),
                links: pick!(max_links, o.links),
                networks: pick!(max_networks, o.networks),
                endpoints: pick!(max_endpoints, o.endpoints),
            },
            conns: ConnLimits {
                connections: pick!(max_connections, c.connections),
                connections_per_peer: pick!(max_connections_per_peer, c.connections_per_peer),
                watches: pick!(max_watches, c.watches),
                watches_per_peer: pick!(max_watches_per_peer, c.watches_per_peer),
            },
        }
    }
}

/// The settled configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Unix socket path.
    pub socket: PathBuf,
    /// SQLite database path.
    pub database: PathBuf,
    /// Directory of named namespaces.
    pub netns_dir: PathBuf,
    /// Runtime directory: `host-<dev>-<ino>.lock` keeps a second weftd off the same host
    /// namespace (see [`crate::lock`]).
    pub runtime_dir: PathBuf,
    /// Namespace file that plays the host; None is weftd's own namespace.
    pub host_netns: Option<PathBuf>,
    /// TCP listen address, off when None.
    pub tcp: Option<SocketAddr>,
    /// `--metrics`: where `GET /metrics` is served (plain HTTP), off when None.
    pub metrics: Option<SocketAddr>,
    /// Reconcile workers.
    pub workers: usize,
    /// Resync period, seconds (0 turns the periodic resync off).
    pub resync: u64,
    /// Create the default network `bridge` at start-up.
    pub default_network: bool,
    /// Bridge name of the default network.
    pub default_bridge: String,
    /// Subnet of the default network; None picks one from the pools.
    pub default_subnet: Option<String>,
    /// Pools for automatic IPv4 subnets.
    pub address_pools: Vec<AddressPool>,
    /// Pools for automatic IPv6 subnets.
    pub address_pools_v6: Vec<AddressPool>,
    /// The TCP listener's TLS files; always Some when `tcp` is.
    pub tls: Option<TlsFiles>,
    /// `--socket-group`; None means group `weft` if it exists.
    pub socket_group: Option<String>,
    /// `--read-only-group`; None means none.
    pub read_only_group: Option<String>,
    /// Every limit on requests, objects, connections and Watch streams.
    pub limits: Limits,
    /// `--dns-upstream`: where names not on a network are forwarded; empty means the
    /// nameservers of `host_resolv_conf` (re-read when it changes).
    pub dns_upstream: Vec<SocketAddr>,
    /// `--host-resolv-conf`: the host's resolv.conf.
    pub host_resolv_conf: PathBuf,
    /// `--etc-netns-dir`: weft writes `<dir>/<namespace>/resolv.conf` for the namespaces it
    /// creates.
    pub etc_netns_dir: PathBuf,
    /// `--log-format`; None: text when stderr is a terminal, JSON otherwise.
    pub log_format: Option<LogFormat>,
}

/// One `--dns-upstream`: an IP address (port 53) or a socket address (`[::1]:5353`).
pub fn parse_dns_upstream(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(a) = s.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(a, 53));
    }
    s.parse::<SocketAddr>().map_err(|_| {
        format!(
            "bad --dns-upstream {s:?}: give an IP address (port 53) or ADDR:PORT \
             (\"192.0.2.53\", \"[2001:db8::53]:5353\")"
        )
    })
}

/// The TLS files of the TCP listener (`--tls-cert`, `--tls-key`, `--tls-client-ca`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// weftd's certificate chain, PEM.
    pub cert: PathBuf,
    /// weftd's private key, PEM.
    pub key: PathBuf,
    /// The CA that signs client certificates, PEM.
    pub client_ca: PathBuf,
}

impl TlsFiles {
    /// TCP is served only with TLS and client certificates: all three files, or none of them
    /// and no `tcp`.
    fn settle(
        tcp: Option<SocketAddr>,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        client_ca: Option<PathBuf>,
    ) -> Result<Option<TlsFiles>, String> {
        match (tcp, cert, key, client_ca) {
            (Some(_), Some(cert), Some(key), Some(client_ca)) => Ok(Some(TlsFiles {
                cert,
                key,
                client_ca,
            })),
            (None, None, None, None) => Ok(None),
            (Some(addr), ..) => Err(format!(
                "--tcp {addr} needs TLS with client certificates: give --tls-cert, --tls-key \
                 and --tls-client-ca (README, \"Security model\", shows how to make them); \
                 weftd never serves its API on TCP without them"
            )),
            (None, ..) => Err("--tls-cert, --tls-key and --tls-client-ca are for --tcp, \
                 which is not set: add --tcp ADDR or drop them"
                .into()),
        }
    }
}

/// Default name of the default network's bridge (Docker's is docker0).
pub const DEFAULT_BRIDGE: &str = "weft0";

impl Config {
    /// Layers flags (`cli`) over the file (`file`) over the defaults.
    pub fn merge(cli: FileConfig, file: FileConfig) -> Result<Config, String> {
        let pools = |v: Option<Vec<String>>,
                     default: Vec<AddressPool>|
         -> Result<Vec<AddressPool>, String> {
            match v {
                None => Ok(default),
                Some(v) => v
                    .iter()
                    .map(|p| AddressPool::parse(p).map_err(|e| format!("bad address pool: {e}")))
                    .collect(),
            }
        };
        let tcp = cli.tcp.or(file.tcp);
        let dns_upstream = cli
            .dns_upstream
            .or(file.dns_upstream)
            .unwrap_or_default()
            .iter()
            .map(|s| parse_dns_upstream(s))
            .collect::<Result<Vec<_>, _>>()?;
        let tls = TlsFiles::settle(
            tcp,
            cli.tls_cert.or(file.tls_cert),
            cli.tls_key.or(file.tls_key),
            cli.tls_client_ca.or(file.tls_client_ca),
        )?;
        Ok(Config {
            socket: cli
                .socket
                .or(file.socket)
                .unwrap_or_else(|| DEFAULT_SOCKET.into()),
            database: cli
                .database
                .or(file.database)
                .unwrap_or_else(|| DEFAULT_DATABASE.into()),
            netns_dir: cli
                .netns_dir
                .or(file.netns_dir)
                .unwrap_or_else(|| DEFAULT_NETNS_DIR.into()),
            runtime_dir: cli
                .runtime_dir
                .or(file.runtime_dir)
                .unwrap_or_else(|| DEFAULT_RUNTIME_DIR.into()),
            host_netns: cli.host_netns.or(file.host_netns),
            tcp,
            metrics: cli.metrics.or(file.metrics),
            tls,
            socket_group: cli.socket_group.or(file.socket_group),
            read_only_group: cli.read_only_group.or(file.read_only_group),
            workers: cli
                .workers
                .or(file.workers)
                .unwrap_or(DEFAULT_WORKERS)
                .max(1),
            resync: cli.resync.or(file.resync).unwrap_or(DEFAULT_RESYNC),
            default_network: cli.default_network.or(file.default_network).unwrap_or(true),
            default_bridge: cli
                .default_bridge
                .or(file.default_bridge)
                .unwrap_or_else(|| DEFAULT_BRIDGE.into()),
            default_subnet: cli
                .default_subnet
                .or(file.default_subnet)
                .filter(|s| !s.is_empty()),
            address_pools: pools(cli.address_pools.or(file.address_pools), default_pools())?,
            address_pools_v6: pools(
                cli.address_pools_v6.or(file.address_pools_v6),
                default_v6_pools(),
            )?,
            limits: LimitSettings::merge(
                cli.limits.unwrap_or_default(),
                file.limits.unwrap_or_default(),
            ),
            dns_upstream,
            host_resolv_conf: cli
                .host_resolv_conf
                .or(file.host_resolv_conf)
                .unwrap_or_else(|| DEFAULT_HOST_RESOLV_CONF.into()),
            etc_netns_dir: cli
                .etc_netns_dir
                .or(file.etc_netns_dir)
                .unwrap_or_else(|| DEFAULT_ETC_NETNS_DIR.into()),
            log_format: cli.log_format.or(file.log_format),
        })
    }

    /// Parses a config file's text.
    pub fn parse_file(text: &str) -> Result<FileConfig, toml::de::Error> {
        toml::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_override_defaults() {
        let file =
            Config::parse_file("socket = \"/tmp/f.sock\"\nworkers = 8\nresync = 5\n").unwrap();
        let cli = FileConfig {
            workers: Some(2),
            ..Default::default()
        };
        let c = Config::merge(cli, file).unwrap();
        assert_eq!(c.socket, PathBuf::from("/tmp/f.sock"));
        assert_eq!(c.workers, 2);
        assert_eq!(c.resync, 5);
        assert_eq!(c.database, PathBuf::from(DEFAULT_DATABASE));
        assert_eq!(c.netns_dir, PathBuf::from(DEFAULT_NETNS_DIR));
        assert_eq!(c.runtime_dir, PathBuf::from(DEFAULT_RUNTIME_DIR));
        assert_eq!(c.tcp, None);
        assert!(c.default_network);
        assert_eq!(c.default_bridge, DEFAULT_BRIDGE);
        assert_eq!(c.address_pools, default_pools());
    }

    #[test]
    fn pools_and_default_network_come_from_the_file() {
        let file = Config::parse_file(
            "default_network = false\naddress_pools = [\"10.99.0.0/16/24\"]\ndefault_subnet = \"10.1.0.0/24\"\n",
        )
        .unwrap();
        let c = Config::merge(FileConfig::default(), file).unwrap();
        assert!(!c.default_network);
        assert_eq!(c.address_pools[0].size, 24);
        assert_eq!(c.default_subnet.as_deref(), Some("10.1.0.0/24"));
        let bad = Config::parse_file("address_pools = [\"10.0.0.0/16/8\"]").unwrap();
        assert!(Config::merge(FileConfig::default(), bad).is_err());
    }

    #[test]
    fn tcp_needs_all_three_tls_files() {
        let file = Config::parse_file(
            "tcp = \"127.0.0.1:5000\"\ntls_cert = \"/c\"\ntls_key = \"/k\"\n\
             tls_client_ca = \"/ca\"\nsocket_group = \"weft\"\nread_only_group = \"1234\"\n",
        )
        .unwrap();
        let c = Config::merge(FileConfig::default(), file.clone()).unwrap();
        assert_eq!(
            c.tls.as_ref().map(|t| t.client_ca.clone()),
            Some("/ca".into())
        );
        assert_eq!(c.socket_group.as_deref(), Some("weft"));
        assert_eq!(c.read_only_group.as_deref(), Some("1234"));
        let no_ca = FileConfig {
            tls_client_ca: None,
            ..file
        };
        let err = Config::merge(FileConfig::default(), no_ca).unwrap_err();
        assert!(err.contains("--tcp 127.0.0.1:5000 needs TLS"), "{err}");
        assert!(err.contains("--tls-client-ca"), "{err}");
        let only_tls = FileConfig {
            tls_cert: Some("/c".into()),
            ..Default::default()
        };
        let err = Config::merge(only_tls, FileConfig::default()).unwrap_err();
        assert!(err.contains("--tcp"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(Config::parse_file("sockett = \"/x\"").is_err());
        assert!(Config::parse_file("[limits]\nmax_lables = 3").is_err());
    }

    #[test]
    fn limits_come_from_flags_then_the_limits_table_then_defaults() {
        let file =
            Config::parse_file("[limits]\nmax_labels = 7\nmax_watches_per_peer = 3\n").unwrap();
        let cli = FileConfig {
            limits: Some(LimitSettings {
                max_watches_per_peer: Some(1),
                ..Default::default()
            }),
            ..Default::default()
        };
        let c = Config::merge(cli, file).unwrap();
        assert_eq!(c.limits.request.labels, 7);
        assert_eq!(c.limits.conns.watches_per_peer, 1);
        assert_eq!(c.limits.objects, ObjectLimits::default());
        assert_eq!(
            c.limits.conns.connections,
            ConnLimits::default().connections
        );
        let none = Config::merge(FileConfig::default(), FileConfig::default()).unwrap();
        assert_eq!(none.limits, Limits::default());
    }
}
