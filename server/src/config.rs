//! weftd's configuration: built-in defaults, overridden by a TOML file (`--config`), overridden
//! by command-line flags. The file uses the flags' names with '_' for '-'.

use std::{net::SocketAddr, path::PathBuf};

use serde::Deserialize;

/// Default Unix socket.
pub const DEFAULT_SOCKET: &str = "/run/weft/weftd.sock";
/// Default database file.
pub const DEFAULT_DATABASE: &str = "/var/lib/weft/weft.db";
/// Default directory for named namespaces (the one `ip netns` uses).
pub const DEFAULT_NETNS_DIR: &str = "/run/netns";
/// Default resync period in seconds.
pub const DEFAULT_RESYNC: u64 = 30;
/// Default worker count.
pub const DEFAULT_WORKERS: usize = 4;

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
    /// Namespace file that plays the host.
    pub host_netns: Option<PathBuf>,
    /// TCP listen address.
    pub tcp: Option<SocketAddr>,
    /// Reconcile workers.
    pub workers: Option<usize>,
    /// Resync period, seconds.
    pub resync: Option<u64>,
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
    /// Namespace file that plays the host; None is weftd's own namespace.
    pub host_netns: Option<PathBuf>,
    /// TCP listen address, off when None.
    pub tcp: Option<SocketAddr>,
    /// Reconcile workers.
    pub workers: usize,
    /// Resync period, seconds (0 turns the periodic resync off).
    pub resync: u64,
}

impl Config {
    /// Layers flags (`cli`) over the file (`file`) over the defaults.
    pub fn merge(cli: FileConfig, file: FileConfig) -> Config {
        Config {
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
            host_netns: cli.host_netns.or(file.host_netns),
            tcp: cli.tcp.or(file.tcp),
            workers: cli
                .workers
                .or(file.workers)
                .unwrap_or(DEFAULT_WORKERS)
                .max(1),
            resync: cli.resync.or(file.resync).unwrap_or(DEFAULT_RESYNC),
        }
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
        let c = Config::merge(cli, file);
        assert_eq!(c.socket, PathBuf::from("/tmp/f.sock"));
        assert_eq!(c.workers, 2);
        assert_eq!(c.resync, 5);
        assert_eq!(c.database, PathBuf::from(DEFAULT_DATABASE));
        assert_eq!(c.netns_dir, PathBuf::from(DEFAULT_NETNS_DIR));
        assert_eq!(c.tcp, None);
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(Config::parse_file("sockett = \"/x\"").is_err());
    }
}
