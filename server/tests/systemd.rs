//! systemd's readiness protocol: a weftd started with `NOTIFY_SOCKET` (a datagram socket the
//! test binds, as systemd does for a `Type=notify` unit) and `WATCHDOG_USEC` sends `READY=1`
//! once it serves, `WATCHDOG=1` at half the period while it runs, and `STOPPING=1` on SIGTERM.

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
