//! The `weft` CLI against a real weftd: the seed walk-through with `weft ns create` and
//! `weft link create`, JSON output, an in-place change, and errors that exit non-zero with a
//! message saying what is wrong.

mod common;

use std::process::Output;

use common::*;
use serde_json::Value;

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `weft <args>`, panics unless it exits 0, returns stdout.
fn weft_ok(sb: &Sandbox, args: &[&str]) -> String {
    let out = sb.weft_cli(args);
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "weft {args:?} failed ({}):\n{stdout}{stderr}",
        out.status
    );
    stdout
}

fn weft_json(sb: &Sandbox, args: &[&str]) -> Value {
    let mut full = args.to_vec();
    full.extend(["--format", "json"]);
    let out = weft_ok(sb, &full);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("weft {args:?} --format json: {e}: {out}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_runs_the_seed_walk_through() {
    let sb = Sandbox::new("cli").await;

    let out = weft_ok(&sb, &["ns", "create", "ns1"]);
    assert!(out.contains("ns1"), "ns create printed {out:?}");
    let ns2 = weft_json(&sb, &["ns", "create", "ns2"]);
    assert_eq!(ns2["name"], "ns2", "{ns2}");
    assert_eq!(ns2["status"]["phase"], "PHASE_READY", "{ns2}");
    assert!(sb.ns_path("ns1").exists() && sb.ns_path("ns2").exists());

    weft_ok(
        &sb,
        &[
            "link",
            "create",
            "veth1",
            "--ns",
            "ns1",
            "--type",
            "veth",
            "--addr",
            "192.168.1.10/24",
            "--up",
            "--peer",
            "veth2",
            "--peer-ns",
            "ns2",
            "--peer-addr",
            "192.168.1.20/24",
            "--peer-up",
        ],
    );
    assert_eq!(sb.addrs("ns1", "veth1"), ["192.168.1.10/24"]);
    assert_eq!(sb.addrs("ns2", "veth2"), ["192.168.1.20/24"]);
    assert!(has_flag(&sb.must_link("ns2", "veth2"), "UP"));
    sb.assert_ping("ns1", "192.168.1.20").await;

    // `weft link ls --format json` lists the pair with its status and peer.
    let links = weft_json(&sb, &["link", "ls"]);
    let links = links.as_array().expect("a JSON array");
    assert_eq!(links.len(), 1, "{links:?}");
    let l = &links[0];
    assert_eq!(l["name"], "veth1");
    assert_eq!(l["namespace"], "ns1");
    assert_eq!(l["status"]["phase"], "PHASE_READY", "{l}");
    assert_eq!(l["veth"]["peer"]["name"], "veth2", "{l}");
    assert_eq!(l["veth"]["peer"]["namespace"], "ns2", "{l}");
    assert_eq!(l["addresses"][0], "192.168.1.10/24", "{l}");
    let uid = l["uid"].as_str().expect("uid");
    assert_eq!(
        ifalias(&sb.must_link("ns1", "veth1")),
        format!("weft:{uid}")
    );

    // The table form names the link too.
    let table = weft_ok(&sb, &["link", "ls"]);
    assert!(
        table.contains("veth1") && table.contains("veth2"),
        "{table}"
    );
    let table = weft_ok(&sb, &["ns", "ls"]);
    assert!(table.contains("ns1") && table.contains("ns2"), "{table}");

    // Inspect by the peer end; change the MTU in place.
    let got = weft_json(&sb, &["link", "inspect", "veth2", "--ns", "ns2"]);
    let got = if got.is_array() { got[0].clone() } else { got };
    assert_eq!(got["uid"], uid, "{got}");
    weft_ok(
        &sb,
        &["link", "set", "veth1", "--ns", "ns1", "--mtu", "1400"],
    );
    assert_eq!(sb.must_link("ns1", "veth1")["mtu"], 1400);

    // Removing a namespace that still holds a link: a message that says why, exit non-zero,
    // and nothing removed.
    let out = sb.weft_cli(&["ns", "rm", "ns1"]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "weft ns rm ns1 succeeded: {stdout}");
    assert_eq!(out.status.code(), Some(1), "exit code: {stderr}");
    assert!(
        stderr.contains("ns1"),
        "the message does not name ns1: {stderr}"
    );
    assert!(
        stderr.len() > "Error: ".len() + 10,
        "no explanation: {stderr}"
    );
    assert!(sb.ns_path("ns1").exists(), "ns1 was removed");
    assert!(sb.link("ns1", "veth1").is_some(), "veth1 was removed");

    // The documented order works: links first, then namespaces.
    weft_ok(&sb, &["link", "rm", "veth2", "--ns", "ns2"]);
    assert!(sb.link("ns1", "veth1").is_none() && sb.link("ns2", "veth2").is_none());
    weft_ok(&sb, &["ns", "rm", "ns1", "ns2"]);
    assert!(!sb.ns_path("ns1").exists() && !sb.ns_path("ns2").exists());
    let left = weft_json(&sb, &["ns", "ls"]);
    assert_eq!(left, Value::Array(vec![]), "namespaces left: {left}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_errors_say_what_to_fix() {
    let sb = Sandbox::new("clierr").await;

    // Unknown namespace: exit 1, named in the message.
    let out = sb.weft_cli(&["ns", "inspect", "nosuch"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("nosuch"), "{stderr}");

    // A bad interface name is refused by weftd with INVALID_ARGUMENT: exit 1 and a message.
    weft_ok(&sb, &["ns", "create", "ns1"]);
    let out = sb.weft_cli(&[
        "link",
        "create",
        "abcdefghijklmnop",
        "--ns",
        "ns1",
        "--type",
        "bridge",
    ]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success(), "16-byte name accepted");
    assert!(
        stderr.starts_with("Error:") || stderr.contains("error"),
        "{stderr}"
    );
    assert_eq!(sb.link_names("ns1"), ["lo"]);

    // weftd not running: exit 1 and a hint.
    let mut sb = sb;
    sb.stop();
    let out = sb.weft_cli(&["ns", "ls"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("weftd"), "{stderr}");
}

/// `weft ns rm --force` takes a namespace off its networks and deletes its links first, as
/// `docker rm -f` does for a container; without it the same removal is refused and changes
/// nothing. `network rm -f` and `network disconnect -f` do not fail for what is already gone.
#[tokio::test(flavor = "multi_thread")]
async fn ns_rm_force_disconnects_and_deletes_links_first() {
    let sb = Sandbox::new("clirmf").await;
    weft_ok(
        &sb,
        &["network", "create", "web", "--subnet", "10.252.0.0/24"],
    );
    weft_ok(&sb, &["ns", "create", "app"]);
    weft_ok(&sb, &["ns", "create", "side"]);
    weft_ok(&sb, &["network", "connect", "web", "app"]);
    weft_ok(
        &sb,
        &[
            "link",
            "create",
            "vapp",
            "--ns",
            "side",
            "--type",
            "veth",
            "--peer",
            "vapp-p",
            "--peer-ns",
            "app",
        ],
    );
    let out = sb.weft_cli(&["ns", "rm", "app"]);
    assert!(
        !out.status.success(),
        "rm without --force: {:?}",
        text(&out)
    );
    assert!(sb.ns_path("app").exists());
    assert_eq!(sb.link_names("app").len(), 3, "lo, eth0 and vapp-p stay");

    weft_ok(&sb, &["ns", "rm", "--force", "app"]);
    assert!(!sb.ns_path("app").exists(), "the namespace is gone");
    let net: Value = serde_json::from_str(&weft_ok(
        &sb,
        &["--format", "json", "network", "inspect", "web"],
    ))
    .expect("json");
    // proto3 JSON leaves an empty list out.
    assert!(net[0].get("endpoints").is_none(), "{net}");
    assert_eq!(
        sb.link_names("side"),
        ["lo"],
        "the veth with its peer in app went too"
    );
}
