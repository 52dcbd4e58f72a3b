//! Signals (issue 10, item 9): SIGHUP used to kill weftd without a log line and leave its
//! socket behind. Now it is logged (with a check of the config file) and weftd keeps serving;
//! since issue 13 it also applies the file's reloadable keys (log_level, resync, request
//! limits). SIGTERM and SIGINT still shut it down cleanly: exit 0, the socket removed, and both lock
//! files released (another process can flock them at once).

mod common;

use std::{fs::File, path::Path, time::Duration};

use common::*;
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};

/// Sends `signal` to the sandbox's weftd.
fn signal(sb: &Sandbox, signal: Signal) {
    let pid = sb.pid().expect("weftd runs");
    kill(Pid::from_raw(pid as i32), signal).expect("kill");
}

/// Waits (10 s) until weftd's log has `n` lines containing `needle`.
async fn wait_log(sb: &Sandbox, needle: &str, n: usize) {
    wait_for(Duration::from_secs(10), needle, || {
        sb.log().lines().filter(|l| l.contains(needle)).count() >= n
    })
    .await;
}

/// After weftd exited: its socket is gone and nobody holds its lock files.
fn assert_released(sb: &Sandbox, how: &str) {
    assert!(
        !sb.socket().exists(),
        "{how}: the socket {} is left behind",
        sb.socket().display()
    );
    let database = weftd::lock::database_lock_path(sb.database());
    let mut locks = vec![database];
    locks.extend(
        std::fs::read_dir(sb.runtime_dir())
            .expect("the runtime dir")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "lock")),
    );
    assert_eq!(locks.len(), 2, "{how}: lock files {locks:?}");
    for path in &locks {
        try_lock(path).unwrap_or_else(|e| panic!("{how}: {} is still locked: {e}", path.display()));
    }
}

/// While weftd runs: both lock files exist and are held (so the release checked after it
/// exits is of locks that were weftd's).
fn assert_held(sb: &Sandbox) {
    let database = weftd::lock::database_lock_path(sb.database());
    assert!(
        try_lock(&database).is_err(),
        "the database lock is not held"
    );
    let host: Vec<_> = std::fs::read_dir(sb.runtime_dir())
        .expect("the runtime dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "lock"))
        .collect();
    assert_eq!(host.len(), 1, "host lock files {host:?}");
    assert!(try_lock(&host[0]).is_err(), "the host lock is not held");
}

/// Takes and drops an exclusive flock on `path`.
fn try_lock(path: &Path) -> Result<(), String> {
    let f = File::open(path).map_err(|e| e.to_string())?;
    f.try_lock().map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_is_logged_and_weftd_keeps_serving_then_sigterm_and_sigint_clean_up() {
    let mut sb = Sandbox::builder("hup").config_file().start().await;
    create_ns(&sb.client(), "h1").await;

    signal(&sb, Signal::SIGHUP);
    wait_log(&sb, "SIGHUP: the config file parses", 1).await;
    create_ns(&sb.client(), "h2").await;

    // An operator breaks the file, then sends SIGHUP: told, and weftd keeps running.
    let file = sb.dir().join("weftd.toml");
    let good = std::fs::read_to_string(&file).expect("weftd.toml");
    std::fs::write(&file, "workers = \"many\"\n").expect("write");
    signal(&sb, Signal::SIGHUP);
    wait_log(&sb, "SIGHUP: the config file does not parse", 1).await;
    create_ns(&sb.client(), "h3").await;
    std::fs::write(&file, good).expect("write");

    assert_held(&sb);
    let status = sb.stop();
    assert!(status.success(), "SIGTERM: exit {status}\n{}", sb.log());
    assert_released(&sb, "after SIGTERM");

    sb.start().await;
    assert_eq!(
        sb.client()
            .namespaces()
            .list_namespaces(weft::v1::ListNamespacesRequest::default())
            .await
            .expect("ListNamespaces")
            .into_inner()
            .namespaces
            .len(),
        3
    );
    assert_held(&sb);
    let status = sb.stop_with(Signal::SIGINT);
    assert!(status.success(), "SIGINT: exit {status}\n{}", sb.log());
    assert_released(&sb, "after SIGINT");
}

/// Issue 13: SIGHUP applies the file's reloadable keys. A lower `[limits]` `max_labels` refuses
/// the next request over it (naming the new limit), a new `log_level` silences weftd's debug
/// lines, and the log names each change (`key: old -> new`) and each key that waits for a
/// restart.
#[tokio::test]
async fn sighup_reloads_limits_log_level_and_resync_and_names_what_changed() {
    let mut sb = Sandbox::builder("hupld").config_file().start().await;
    let c = sb.client();
    let three = |name: &str| weft::v1::Namespace {
        labels: [("a", "1"), ("b", "2"), ("c", "3")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..ns_msg(name)
    };
    let create = |ns: weft::v1::Namespace| {
        let c = c.clone();
        async move {
            rpc(c
                .namespaces()
                .create_namespace(weft::v1::CreateNamespaceRequest {
                    namespace: Some(ns),
                    ..Default::default()
                }))
            .await
            .map(|_| ())
        }
    };
    create(three("l1"))
        .await
        .expect("3 labels under the default limit");

    let file = sb.dir().join("weftd.toml");
    let text = std::fs::read_to_string(&file).expect("weftd.toml");
    let mut new: String = text
        .lines()
        .map(|l| {
            if l.starts_with("resync = ") {
                "resync = 7"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    new.push_str("\nlog_level = \"info\"\n[limits]\nmax_labels = 2\nmax_networks = 5\n");
    std::fs::write(&file, new).expect("write");
    signal(&sb, Signal::SIGHUP);
    wait_log(&sb, "SIGHUP: the config file parses", 1).await;
    let log = sb.log();
    for line in [
        "SIGHUP: limits.max_labels: (unset) -> 2",
        "SIGHUP: resync: 30 -> 7",
        "SIGHUP: log_level: (unset) -> \"info\"",
        "SIGHUP: limits.max_networks: (unset) -> 5 ignored until restart",
    ] {
        assert!(log.contains(line), "log lacks {line:?}:\n{log}");
    }
    let debug_lines = || sb.log().lines().filter(|l| l.contains(" DEBUG ")).count();
    let debug_before = debug_lines();

    let err = create(three("l2"))
        .await
        .expect_err("3 labels over the new limit");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    for w in ["namespace.labels", "at most 2", "--max-labels"] {
        assert!(err.message().contains(w), "{:?} lacks {w:?}", err.message());
    }
    let two = weft::v1::Namespace {
        labels: [("a".to_string(), "1".to_string())].into(),
        ..ns_msg("l3")
    };
    create(two).await.expect("1 label under the new limit");
    assert_eq!(
        debug_lines(),
        debug_before,
        "log_level info still lets weftd's debug lines through"
    );
    assert!(sb.stop().success(), "{}", sb.log());
}

/// Issue 13: a new `resync` takes effect at once. The sandbox starts with 30 s between
/// resyncs; after SIGHUP sets 1 s, the timer fires well within 30 s of the start (twice, so it
/// is periodic, not a one-off).
#[tokio::test]
async fn sighup_shortens_the_resync_period_at_once() {
    let mut sb = Sandbox::builder("hupsync").config_file().start().await;
    let started = std::time::Instant::now();
    let needle = "weftd::reconcile: resync";
    assert_eq!(sb.log().matches(needle).count(), 0, "{}", sb.log());
    let file = sb.dir().join("weftd.toml");
    let text = std::fs::read_to_string(&file).expect("weftd.toml");
    assert!(text.contains("resync = 30\n"), "{text}");
    std::fs::write(&file, text.replace("resync = 30\n", "resync = 1\n")).expect("write");
    signal(&sb, Signal::SIGHUP);
    wait_log(&sb, "SIGHUP: resync: 30 -> 1", 1).await;
    wait_log(&sb, needle, 2).await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "two resyncs only after {:?}: the old 30 s period was still in force",
        started.elapsed()
    );
    assert!(sb.stop().success(), "{}", sb.log());
}
