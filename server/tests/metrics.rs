//! `--metrics ADDR`: weftd serves Prometheus metrics on `GET /metrics`, scraped with curl from
//! inside the sandbox's host namespace (where weftd runs), after a network, a namespace, a
//! connect and a DNS query; the series move, and `promtool check metrics` (Debian's
//! `prometheus` package) accepts the text.

mod common;
#[path = "common/net.rs"]
mod net;

use std::{
    io::Write,
    process::{Command, Stdio},
};

use common::*;
use net::*;

const ADDR: &str = "127.0.0.1:9464";

/// Scrapes `/metrics` from inside the sandbox's host namespace.
fn scrape(sb: &Sandbox) -> String {
    sb.host_ok(&[
        "curl",
        "-sSf",
        "--max-time",
        "10",
        &format!("http://{ADDR}/metrics"),
    ])
}

/// The value of the sample written exactly `series` (name and labels), if any.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| {
            v.trim()
                .parse()
                .unwrap_or_else(|e| panic!("{series}: {v}: {e}"))
        })
}

fn must(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_served_and_move_with_the_work() {
    let sb = Sandbox::builder("metr")
        .args(&["--metrics", ADDR])
        .start()
        .await;
    let c = sb.client();
    let before = scrape(&sb);
    assert_eq!(sample(&before, "weft_ipam_leases{network=\"mtr\"}"), None);

    create_network(&c, network("mtr", "mtr0", &["10.79.3.0/24"])).await;
    create_ns(&c, "box").await;
    let ep = connect(&c, connect_req("mtr", "box")).await;
    assert!(!ep.ipv4_address.is_empty(), "{ep:?}");
    // One DNS query to the network's resolver (its gateway).
    sb.ok_in("box", &["dig", "+short", "+time=5", "@10.79.3.1", "box"]);

    let text = scrape(&sb);
    let create =
        "weft_grpc_requests_total{method=\"/weft.v1.NetworkService/CreateNetwork\",code=\"OK\"}";
    assert!(must(&text, create) >= 1.0, "{text}");
    assert!(
        must(
            &text,
            "weft_grpc_request_duration_seconds_count{method=\"/weft.v1.NetworkService/CreateNetwork\"}"
        ) >= 1.0
    );
    assert_eq!(
        must(&text, "weft_objects{kind=\"network\",phase=\"ready\"}"),
        2.0,
        "mtr and bridge"
    );
    assert_eq!(
        must(&text, "weft_objects{kind=\"namespace\",phase=\"ready\"}"),
        1.0
    );
    assert_eq!(
        must(&text, "weft_objects{kind=\"endpoint\",phase=\"ready\"}"),
        1.0
    );
    assert_eq!(must(&text, "weft_ipam_leases{network=\"mtr\"}"), 1.0);
    // A /24 less the network address, broadcast and gateway.
    assert_eq!(must(&text, "weft_ipam_capacity{network=\"mtr\"}"), 253.0);
    for kind in ["network", "namespace", "endpoint"] {
        let ok = format!("weft_reconciles_total{{kind=\"{kind}\",result=\"ok\"}}");
        assert!(must(&text, &ok) >= 1.0, "{ok}");
        let n = format!("weft_reconcile_duration_seconds_count{{kind=\"{kind}\"}}");
        assert!(must(&text, &n) >= 1.0, "{n}");
    }
    assert!(must(&text, "weft_kernel_writes_total") > must(&before, "weft_kernel_writes_total"));
    assert!(must(&text, "weft_dns_queries_total") >= 1.0);
    assert!(must(&text, "weft_dns_answers_total") >= 1.0);
    assert!(must(&text, "weft_dns_index_loads_total") >= 1.0);
    // The start-up check (of an empty store: done long before this scrape).
    assert!(must(&text, "weft_check_passes_total") >= 1.0);
    for series in [
        "weft_queue_depth",
        "weft_drift_repairs_total",
        "weft_orphans_removed_total",
        "weft_check_namespaces_read_total",
        "weft_check_namespaces_quiet_total",
        "weft_check_host_reads_total",
        "weft_check_echoes_queued_total",
        "weft_reaper_host_dumps_total",
        "weft_dns_forwards_total",
    ] {
        must(&text, series);
    }

    // A refused call counts under its code.
    let missing = rpc(c.networks().get_network(weft::v1::GetNetworkRequest {
        name: "nope".into(),
    }))
    .await;
    assert!(missing.is_err());
    let text = scrape(&sb);
    let get = "weft_grpc_requests_total{method=\"/weft.v1.NetworkService/GetNetwork\",code=\"NOT_FOUND\"}";
    assert_eq!(must(&text, get), 1.0, "{text}");

    // Prometheus, asking for OpenMetrics, gets it.
    let om = sb.host_ok(&[
        "curl",
        "-sSf",
        "-H",
        "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        &format!("http://{ADDR}/metrics"),
    ]);
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(om.contains("# TYPE weft_grpc_requests counter\n"), "{om}");

    // Anything but GET /metrics is 404.
    let other = sb.exec_host(&[
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://{ADDR}/"),
    ]);
    assert_eq!(String::from_utf8_lossy(&other.stdout), "404");

    // promtool accepts the text (its lint included).
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package) must be installed");
    promtool
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("writing to promtool");
    let out = promtool.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
