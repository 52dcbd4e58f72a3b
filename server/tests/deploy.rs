//! The operator-facing files stay true to weftd: deploy/weftd.toml names every config key with
//! its real default, the README's flag table matches `weftd --help`, the systemd unit starts
//! weftd the documented way, and weftd really runs from a config file.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use common::*;
use weftd::config::{
    Config, DEFAULT_DATABASE, DEFAULT_NETNS_DIR, DEFAULT_RESYNC, DEFAULT_SOCKET, DEFAULT_WORKERS,
    FileConfig,
};

fn repo_file(rel: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// The flags weftd itself lists in `--help` (without --help and --version).
fn weftd_flags() -> BTreeSet<String> {
    let out = run(Command::new(weftd_bin()).arg("--help"));
    assert!(out.status.success(), "weftd --help: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| {
            w.trim_end_matches(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .to_string()
        })
        .filter(|w| w != "--help" && w != "--version")
        .collect()
}

/// The keys weftd's strict parser knows after `table` (a table header, or "" for the top
/// level): it names them all when it refuses an unknown one. `one` must be among them.
fn keys_known_by_the_parser(table: &str, one: &str) -> Vec<String> {
    let err = Config::parse_file(&format!("{table}no_such_key = 1"))
        .expect_err("weftd accepted an unknown config key")
        .to_string();
    let expected = err.split_once("expected").map_or("", |(_, e)| e);
    let known: Vec<String> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    assert!(
        known.iter().any(|k| k == one),
        "cannot read the keys from: {err}"
    );
    known
}

#[test]
fn default_config_names_every_key_with_its_default() {
    let text = repo_file("deploy/weftd.toml");
    // As shipped, everything is commented out: the file changes nothing.
    assert_eq!(
        Config::parse_file(&text).expect("deploy/weftd.toml parses"),
        FileConfig::default()
    );
    // With every `#key = value` line uncommented, weftd's own (strict) parser accepts it and
    // the values are the built-in defaults.
    let uncommented: String = text
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest)
                if (rest.contains(" = ") || rest.starts_with('[')) && !rest.starts_with(' ') =>
            {
                rest
            }
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let f = Config::parse_file(&uncommented)
        .unwrap_or_else(|e| panic!("uncommented deploy/weftd.toml: {e}\n{uncommented}"));
    assert_eq!(f.socket, Some(DEFAULT_SOCKET.into()));
    assert_eq!(f.database, Some(DEFAULT_DATABASE.into()));
    assert_eq!(f.netns_dir, Some(DEFAULT_NETNS_DIR.into()));
    assert_eq!(f.workers, Some(DEFAULT_WORKERS));
    assert_eq!(f.resync, Some(DEFAULT_RESYNC));
    assert!(f.host_netns.is_some(), "host_netns is not documented");
    assert!(f.tcp.is_some(), "tcp is not documented");
    assert!(f.metrics.is_some(), "metrics is not documented");
    assert!(f.tls_client_ca.is_some(), "tls_client_ca is not documented");
    // Apart from the keys that are off by default (shown with example values), the
    // uncommented file settles to exactly the built-in configuration.
    let defaults = Config::merge(FileConfig::default(), FileConfig::default())
        .expect("the built-in configuration");
    let shown = Config::merge(
        FileConfig::default(),
        FileConfig {
            host_netns: None,
            tcp: None,
            metrics: None,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            socket_group: None,
            read_only_group: None,
            log_format: None,
            ..f
        },
    )
    .expect("the documented configuration");
    assert_eq!(
        shown, defaults,
        "deploy/weftd.toml shows other defaults than weftd has"
    );
    // Every key weftd's parser knows is documented. Its strict parser names them all when it
    // refuses an unknown one.
    let known = keys_known_by_the_parser("", "socket");
    for key in &known {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("#{key} = ")) || l == format!("#[{key}]")),
            "deploy/weftd.toml does not document key {key} (weftd knows {known:?})"
        );
    }
    // The same for the keys of the [limits] table.
    let limits = keys_known_by_the_parser("[limits]\n", "max_labels");
    for key in &limits {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("#{key} = "))),
            "deploy/weftd.toml does not document limit {key} (weftd knows {limits:?})"
        );
    }
    // Every flag (but --config) is a key of the file.
    for flag in weftd_flags() {
        let key = match flag.as_str() {
            "--config" => continue,
            "--no-default-network" => "default_network".to_string(),
            "--address-pool" => "address_pools".to_string(),
            "--address-pool-v6" => "address_pools_v6".to_string(),
            f => f.trim_start_matches("--").replace('-', "_"),
        };
        assert!(
            uncommented
                .lines()
                .any(|l| l.starts_with(&format!("{key} = "))),
            "deploy/weftd.toml lacks {key} (flag {flag})"
        );
    }
}

#[test]
fn readme_flag_table_matches_weftd_help() {
    let readme = repo_file("README.md");
    let documented: BTreeSet<String> = readme
        .lines()
        .filter(|l| l.starts_with("| `--"))
        .filter_map(|l| {
            l.trim_start_matches("| `")
                .split([' ', '`'])
                .next()
                .map(str::to_string)
        })
        .collect();
    let actual = weftd_flags();
    assert_eq!(
        documented, actual,
        "README.md's flag table and `weftd --help` disagree"
    );
}

#[test]
fn systemd_unit_starts_weftd_with_the_shipped_config() {
    let unit = repo_file("deploy/weftd.service");
    let has = |line: &str| unit.lines().any(|l| l.trim() == line);
    assert!(has(
        "ExecStart=/usr/local/bin/weftd --config /etc/weft/weftd.toml"
    ));
    assert!(has("RuntimeDirectory=weft"), "the socket dir /run/weft");
    assert!(has("StateDirectory=weft"), "the database dir /var/lib/weft");
    let caps = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("CapabilityBoundingSet");
    for cap in ["CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_CHOWN"] {
        assert!(caps.split_whitespace().any(|c| c == cap), "{cap} missing");
    }
    // These would give weftd a private mount namespace, hiding /run/netns mounts from the host.
    for key in [
        "ProtectSystem=",
        "PrivateTmp=",
        "ReadWritePaths=",
        "PrivateMounts=",
    ] {
        assert!(
            !unit.lines().any(|l| l.starts_with(key)),
            "{key} hides weftd's netns mounts"
        );
    }
    assert!(DEFAULT_SOCKET.starts_with("/run/weft/"));
    assert!(DEFAULT_DATABASE.starts_with("/var/lib/weft/"));
}

#[tokio::test(flavor = "multi_thread")]
async fn weftd_runs_from_a_config_file() {
    // Only `--config`: socket, database, netns dir, host namespace and resync come from the
    // file (the socket answering at all proves `socket` was read).
    let sb = Sandbox::builder("config").config_file().start().await;
    let c = sb.client();
    create_ns(&c, "ns1").await;
    create_ns(&c, "ns2").await;
    assert!(
        mount_points().contains(&sb.ns_path("ns1")),
        "no namespace mounted at {}: netns_dir not taken from the file",
        sb.ns_path("ns1").display()
    );
    assert!(
        sb.dir().join("weft.db").exists(),
        "database not taken from the file"
    );
    create_link(&c, seed_link()).await;
    // The links live in namespaces of the sandbox, so host_netns and netns_dir were honoured.
    sb.assert_ping("ns1", "192.168.1.20").await;
}

/// deploy/Containerfile's build stage copies a complete workspace: with only the files its
/// `COPY` lines name, `cargo metadata --offline --locked --no-deps` loads every member's
/// manifest and path dependency (a member left out, as `bench` once was, fails the image
/// build at its first cargo step). `--no-deps`: registry crates are the image's to download.
#[test]
fn containerfile_copies_a_complete_workspace() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = repo_file("deploy/Containerfile");
    let build_stage = text
        .split("\nFROM ")
        .nth(1)
        .expect("the Containerfile has a build stage");
    let copied: Vec<&str> = build_stage
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter(|l| !l.starts_with("--from"))
        .flat_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words[..words.len() - 1].to_vec()
        })
        .collect();
    assert!(copied.contains(&"Cargo.toml"), "{copied:?}");
    let dir = tempfile::tempdir().expect("tempdir");
    for src in &copied {
        let out = run(Command::new("cp")
            .arg("-a")
            .arg(repo.join(src))
            .arg(dir.path().join(src)));
        assert!(out.status.success(), "cp {src}: {out:?}");
    }
    let out = run(Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--offline",
            "--locked",
            "--no-deps",
            "--format-version",
            "1",
            "--manifest-path",
        ])
        .arg(dir.path().join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", dir.path().join("target")));
    assert!(
        out.status.success(),
        "cargo metadata on the Containerfile's files ({copied:?}) failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
