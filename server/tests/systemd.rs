//! systemd's readiness protocol: a weftd started with `NOTIFY_SOCKET` (a datagram socket the
//! test binds, as systemd does for a `Type=notify` unit) and `WATCHDOG_USEC` sends `READY=1`
//! once it serves, `WATCHDOG=1` at half the period while it runs, and `STOPPING=1` on SIGTERM.
//! deploy/weftd.service passes `systemd-analyze verify`, and its hardening keeps
//! `systemd-analyze security` at 4.9 (issue 13; it was 6.3 before the syscall filter).

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::net::UnixDatagram;
use weft::v1::GetSystemInfoRequest;

/// The messages received within `within`, until `until` holds for what was received.
async fn receive(
    sock: &UnixDatagram,
    got: &mut Vec<String>,
    within: Duration,
    until: impl Fn(&[String]) -> bool,
) {
    let deadline = Instant::now() + within;
    let mut buf = vec![0u8; 4096];
    while !until(got) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "timed out; received {got:?}");
        if let Ok(Ok(n)) = tokio::time::timeout(left, sock.recv(&mut buf)).await {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
}

fn count(got: &[String], line: &str) -> usize {
    got.iter().filter(|m| m.lines().any(|l| l == line)).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn notify_socket_gets_ready_watchdog_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&path).unwrap();
    let mut sb = Sandbox::builder("notify")
        .env("NOTIFY_SOCKET", path.to_str().unwrap())
        .env("WATCHDOG_USEC", "400000")
        .start()
        .await;
    let mut got = Vec::new();
    receive(&sock, &mut got, Duration::from_secs(10), |g| {
        count(g, "READY=1") > 0
    })
    .await;
    assert_eq!(count(&got, "READY=1"), 1, "{got:?}");
    assert_eq!(count(&got, "STOPPING=1"), 0, "{got:?}");
    // Ready means serving.
    rpc(sb
        .client()
        .system()
        .get_system_info(GetSystemInfoRequest {}))
    .await
    .expect("a call after READY=1");
    // Every 200 ms: two within 10 s is a generous bound on a loaded machine.
    receive(&sock, &mut got, Duration::from_secs(10), |g| {
        count(g, "WATCHDOG=1") >= 2
    })
    .await;
    let status = sb.stop();
    assert!(status.success(), "SIGTERM: {status}");
    receive(&sock, &mut got, Duration::from_secs(5), |g| {
        count(g, "STOPPING=1") > 0
    })
    .await;
    assert_eq!(count(&got, "READY=1"), 1, "{got:?}");
}

/// deploy/weftd.service, its ExecStart pointed at the weftd under test (verify checks that the
/// binary exists), in a temporary directory.
fn unit_copy() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/weftd.service"),
    )
    .expect("deploy/weftd.service");
    assert!(text.contains("ExecStart=/usr/local/bin/weftd "), "{text}");
    let text = text.replace(
        "ExecStart=/usr/local/bin/weftd ",
        &format!("ExecStart={} ", weftd_bin().display()),
    );
    let path = dir.path().join("weftd.service");
    std::fs::write(&path, text).expect("write unit");
    (dir, path)
}

/// `systemd-analyze verify` accepts the unit (directives, syscall filter groups, ExecStart and
/// ExecReload binaries) without a word about it, and `systemd-analyze security --offline`
/// scores it no worse than the 4.9 deploy/README.md reports.
#[test]
fn unit_passes_systemd_analyze_verify_and_keeps_its_security_score() {
    let (_dir, unit) = unit_copy();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze (scripts/lib.sh installs systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "verify failed: {stderr}");
    assert!(
        !stderr.contains("weftd.service"),
        "verify warns about the unit: {stderr}"
    );

    let out = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze security");
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| l.split("weftd.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure level in: {text}"));
    assert!(score <= 4.9, "exposure {score} > 4.9:\n{text}");
}
