//! `--log-format json`: every line weftd writes is a JSON object with timestamp, level, target
//! and message; a gRPC call's lines carry the `grpc` span's method and request id (the
//! client's `x-request-id`), a reconcile's the `reconcile` span's kind and key.

mod common;

use common::*;
use serde_json::Value;
use weft::v1::{CreateNamespaceRequest, Namespace};

#[tokio::test(flavor = "multi_thread")]
async fn json_log_lines_carry_method_request_id_kind_and_key() {
    let sb = Sandbox::builder("jsonlog")
        .args(&["--log-format", "json"])
        .start()
        .await;
    let mut req = tonic::Request::new(CreateNamespaceRequest {
        namespace: Some(Namespace {
            name: "logged".into(),
            ..Default::default()
        }),
        ..Default::default()
    });
    req.metadata_mut()
        .insert("x-request-id", "log-test-7".parse().unwrap());
    let ns = rpc(sb.client().namespaces().create_namespace(req))
        .await
        .expect("create")
        .namespace
        .expect("the namespace");
    let method = "/weft.v1.NamespaceService/CreateNamespace";
    let has_span = |line: &Value, want: &[(&str, &str)]| {
        line["spans"].as_array().is_some_and(|spans| {
            spans
                .iter()
                .any(|s| want.iter().all(|(k, v)| s[*k].as_str() == Some(*v)))
        })
    };
    // The reconcile's lines may follow the answer by a moment.
    let mut lines = Vec::new();
    wait_for(std::time::Duration::from_secs(10), "the log lines", || {
        // Only whole lines: the last one may be half written.
        let text = sb.log();
        let whole = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        lines = whole
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str::<Value>(l)
                    .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {l}"))
            })
            .collect();
        let call = lines.iter().any(|l| {
            has_span(
                l,
                &[
                    ("name", "grpc"),
                    ("method", method),
                    ("request_id", "log-test-7"),
                ],
            )
        });
        let reconcile = lines.iter().any(|l| {
            has_span(
                l,
                &[
                    ("name", "reconcile"),
                    ("kind", "namespace"),
                    ("key", &ns.uid),
                ],
            )
        });
        call && reconcile
    })
    .await;
    for l in &lines {
        for key in ["timestamp", "level", "target"] {
            assert!(l[key].is_string(), "no {key}: {l}");
        }
        assert!(l["fields"]["message"].is_string(), "no message: {l}");
    }
    // The one line per call that says how it went, in its span.
    assert!(
        lines.iter().any(|l| l["fields"]["message"] == "answered"
            && l["span"]["method"] == method
            && l["span"]["request_id"] == "log-test-7"),
        "no \"answered\" line for the call"
    );
}
