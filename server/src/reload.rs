//! What SIGHUP changes while weftd runs: the config file's reloadable keys (`log_level`,
//! `resync` and the `[limits]` on the size of a request) are read again and applied to the
//! running parts through the handles here; every other key shapes something start-up built
//! (the store, the listeners, the worker pool, the object and connection budgets) and is
//! logged as ignored until a restart.
//!
//! A flag given on the command line still wins over the file, as at start-up: changing in the
//! file a key that a flag set changes nothing.

use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use crate::{
    config::{Config, DEFAULT_RESYNC, FileConfig, LimitSettings},
    logging::LevelHandle,
    model::RequestLimits,
};

/// The request limits the core service checks, swappable while it serves. Cheap to clone;
/// every clone sees the same value.
#[derive(Clone, Debug, Default)]
pub struct LiveLimits(Arc<RwLock<RequestLimits>>);

impl LiveLimits {
    /// Limits that start as `limits`.
    pub fn new(limits: RequestLimits) -> Self {
        Self(Arc::new(RwLock::new(limits)))
    }

    /// The limits in force now.
    pub fn get(&self) -> RequestLimits {
        match self.0.read() {
            Ok(g) => *g,
            Err(poisoned) => **poisoned.get_ref(),
        }
    }

    /// Puts `limits` in force for the requests that come next.
    pub fn set(&self, limits: RequestLimits) {
        match self.0.write() {
            Ok(mut g) => *g = limits,
            Err(poisoned) => *poisoned.into_inner() = limits,
        }
    }
}

/// The handles SIGHUP reaches the running parts through.
#[derive(Clone, Debug)]
pub struct Live {
    /// The request limits of the core service.
    pub request: LiveLimits,
    /// The resync period in seconds (0: off), read by the resync timer.
    pub resync: watch::Sender<u64>,
}

impl Live {
    /// Handles holding what `config` settled at start-up.
    pub fn new(config: &Config) -> Self {
        Self {
            request: LiveLimits::new(config.limits.request),
            resync: watch::Sender::new(config.resync),
        }
    }
}

/// The keys SIGHUP applies while weftd runs; the others need a restart.
pub const RELOADABLE: [&str; 3] = ["log_level", "resync", "limits"];

/// The limits under `[limits]` SIGHUP applies (the size of a request); the others (object
/// and connection budgets) need a restart.
const RELOADABLE_LIMITS: [&str; 6] = [
    "max_labels",
    "max_label_bytes",
    "max_aliases",
    "max_addresses",
    "max_routes",
    "max_published_ports",
];

/// One key's change between two versions of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The key (`resync`, `limits.max_labels`).
    pub key: String,
    /// Its old value, `(unset)` when the file did not have it.
    pub old: String,
    /// Its new value, `(unset)` when the file no longer has it.
    pub new: String,
    /// Whether SIGHUP applied it (false: it waits for a restart).
    pub applied: bool,
}

/// The keys that differ between the `old` and `new` text of the file (both parse as TOML
/// tables), with whether each is reloadable.
pub fn diff(old: &toml::Table, new: &toml::Table) -> Vec<Change> {
    let mut out = Vec::new();
    let show = |v: Option<&toml::Value>| v.map_or_else(|| "(unset)".to_owned(), |v| v.to_string());
    let empty = toml::Table::new();
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let (o, n) = (old.get(key), new.get(key));
        if key == "limits" {
            let table = |v: Option<&toml::Value>| {
                v.and_then(toml::Value::as_table).unwrap_or(&empty).clone()
            };
            let (ot, nt) = (table(o), table(n));
            let mut sub: Vec<&String> = ot.keys().chain(nt.keys()).collect();
            sub.sort();
            sub.dedup();
            for s in sub {
                if ot.get(s) != nt.get(s) {
                    out.push(Change {
                        key: format!("limits.{s}"),
                        old: show(ot.get(s)),
                        new: show(nt.get(s)),
                        applied: RELOADABLE_LIMITS.contains(&s.as_str()),
                    });
                }
            }
        } else if o != n {
            out.push(Change {
                key: key.clone(),
                old: show(o),
                new: show(n),
                applied: RELOADABLE.contains(&key.as_str()),
            });
        }
    }
    out
}

/// What start-up read: the flags' limits and resync (they win over the file), the file's text
/// as last applied, and the log level handle.
#[derive(Debug)]
pub struct Reloader {
    /// The `[limits]` given as flags.
    pub cli_limits: LimitSettings,
    /// `--resync`, if given.
    pub cli_resync: Option<u64>,
    /// The file as last applied.
    pub applied: toml::Table,
    /// The running parts.
    pub live: Live,
    /// The log filter.
    pub level: Option<LevelHandle>,
}

impl Reloader {
    /// Reads `text` (the file's new content) and applies its reloadable keys; logs each change
    /// (`key: old -> new`) and each key that waits for a restart. An error (the file does not
    /// parse, or a log level is not a filter) changes nothing.
    pub fn reload(&mut self, text: &str) -> Result<Vec<Change>, String> {
        let file: FileConfig = Config::parse_file(text).map_err(|e| e.to_string())?;
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
        let filter = file.log_level.as_deref().map(crate::logging::filter_from);
        let filter = filter.transpose()?;
        let changes = diff(&self.applied, &table);
        // Told before a new log filter can silence it.
        for c in &changes {
            let (key, old, new) = (&c.key, &c.old, &c.new);
            if c.applied {
                tracing::info!(%key, %old, %new, "SIGHUP: {key}: {old} -> {new}");
            } else {
                tracing::warn!(%key, %old, %new, "SIGHUP: {key}: {old} -> {new} ignored until restart");
            }
        }
        if changes.iter().any(|c| c.key == "log_level") {
            let filter = filter.unwrap_or_else(crate::logging::default_filter);
            if let Some(h) = &self.level {
                h.set(filter)?;
            }
        }
        let limits = LimitSettings::merge(self.cli_limits.clone(), file.limits.unwrap_or_default());
        self.live.request.set(limits.request);
        let resync = self.cli_resync.or(file.resync).unwrap_or(DEFAULT_RESYNC);
        self.live.resync.send_replace(resync);
        self.applied = table;
        Ok(changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_names_reloadable_and_restart_keys() {
        let old: toml::Table =
            "resync = 30\nworkers = 2\n[limits]\nmax_labels = 64\nmax_networks = 9\n"
                .parse()
                .unwrap();
        let new: toml::Table = "resync = 5\nworkers = 3\nlog_level = \"debug\"\n[limits]\nmax_labels = 2\nmax_networks = 8\n"
            .parse()
            .unwrap();
        let got: Vec<(String, String, String, bool)> = diff(&old, &new)
            .into_iter()
            .map(|c| (c.key, c.old, c.new, c.applied))
            .collect();
        let s = |x: &str| x.to_owned();
        assert_eq!(
            got,
            vec![
                (s("limits.max_labels"), s("64"), s("2"), true),
                (s("limits.max_networks"), s("9"), s("8"), false),
                (s("log_level"), s("(unset)"), s("\"debug\""), true),
                (s("resync"), s("30"), s("5"), true),
                (s("workers"), s("2"), s("3"), false),
            ]
        );
    }

    fn reloader() -> Reloader {
        let config = Config::merge(FileConfig::default(), FileConfig::default()).unwrap();
        Reloader {
            cli_limits: LimitSettings {
                max_aliases: Some(3),
                ..Default::default()
            },
            cli_resync: None,
            applied: toml::Table::new(),
            live: Live::new(&config),
            level: None,
        }
    }

    #[test]
    fn reload_applies_the_file_under_the_flags_and_a_bad_file_changes_nothing() {
        let mut r = reloader();
        let changes = r
            .reload("resync = 0\n[limits]\nmax_labels = 2\nmax_aliases = 9\n")
            .unwrap();
        assert_eq!(changes.len(), 3, "{changes:?}");
        assert_eq!(r.live.request.get().labels, 2);
        assert_eq!(
            r.live.request.get().aliases,
            3,
            "the flag wins over the file"
        );
        assert_eq!(*r.live.resync.borrow(), 0);

        for bad in [
            "log_level = \"info,,=x[\"\n[limits]\nmax_labels = 1\n",
            "resync = \"soon\"\n",
        ] {
            assert!(r.reload(bad).is_err(), "{bad}");
            assert_eq!(r.live.request.get().labels, 2, "{bad}");
            assert_eq!(*r.live.resync.borrow(), 0, "{bad}");
        }
        // Back to no file keys: the defaults again.
        r.reload("").unwrap();
        assert_eq!(r.live.request.get().labels, RequestLimits::default().labels);
        assert_eq!(*r.live.resync.borrow(), DEFAULT_RESYNC);
    }

    #[test]
    fn live_limits_are_shared_between_clones() {
        let a = LiveLimits::default();
        let b = a.clone();
        a.set(RequestLimits {
            labels: 1,
            ..Default::default()
        });
        assert_eq!(b.get().labels, 1);
    }
}
