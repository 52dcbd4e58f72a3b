//! Any gRPC client with its defaults, against a real weftd on its Unix socket: grpcio's default
//! channel (`grpc.insecure_channel("unix:PATH")`, which sends the socket path as HTTP/2
//! `:authority`) with stubs generated from proto/ here, grpcurl 1.8.6 without `-authority`
//! (it does the same), and the Python example of examples/python/.
//!
//! Without weftd's `:authority` rewrite (server/src/any_authority.rs) every one of these calls
//! fails with RST_STREAM PROTOCOL_ERROR; a tonic or h2 upgrade that brought that back fails
//! here. grpcio (pip `grpcio`, `grpcio-tools`) or grpcurl missing is a failure, not a skip:
//! scripts/test installs them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use weft::v1::GetNamespaceRequest;

/// The Python that has grpcio: `$PYTHON`, else `python3`.
fn python() -> Command {
    Command::new(std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into()))
}

/// The repository's root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the server crate is in the workspace")
        .to_path_buf()
}

fn assert_ok(what: &str, out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Generates the Python stubs from proto/ into a temp dir, as a user would.
fn python_stubs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temp dir for the stubs");
    let proto = repo().join("proto");
    let script = r#"
import pathlib, sys
from grpc_tools import protoc
proto, out = sys.argv[1], sys.argv[2]
files = sorted(str(p) for p in pathlib.Path(proto, "weft", "v1").glob("*.proto"))
well_known = pathlib.Path(protoc.__file__).parent / "_proto"
sys.exit(protoc.main(["protoc", f"-I{proto}", f"-I{well_known}", f"--python_out={out}",
                      f"--grpc_python_out={out}", *files]))
"#;
    let out = run(python().arg("-c").arg(script).arg(&proto).arg(dir.path()));
    assert_ok(
        "python3 -m grpc_tools.protoc (is grpcio-tools installed? scripts/test installs it)",
        &out,
    );
    dir
}

/// grpcio's default channel: a unary call, creates, and a server-streaming Watch that shows
/// them, all on one channel (so later requests use HPACK's dynamic table).
#[tokio::test(flavor = "multi_thread")]
async fn grpcio_default_channel_completes_unary_and_streaming_calls() {
    let sb = Sandbox::new("pyclient").await;
    let stubs = python_stubs();
    let script = r#"
import sys
sys.path.insert(0, sys.argv[2])
import grpc
from weft.v1 import common_pb2, namespace_pb2, namespace_pb2_grpc, system_pb2, system_pb2_grpc

print("grpcio", grpc.__version__)
with grpc.insecure_channel("unix:" + sys.argv[1]) as channel:
    system = system_pb2_grpc.SystemServiceStub(channel)
    info = system.GetSystemInfo(system_pb2.GetSystemInfoRequest(), timeout=30)
    print("unary ok, weftd", info.version)
    namespaces = namespace_pb2_grpc.NamespaceServiceStub(channel)
    for name in ("pyc-1", "pyc-2"):
        namespaces.CreateNamespace(namespace_pb2.CreateNamespaceRequest(
            namespace=namespace_pb2.Namespace(name=name, labels={"t": "py"})), timeout=30)
    stream = namespaces.WatchNamespaces(
        namespace_pb2.WatchNamespacesRequest(label_selector="t=py"), timeout=30)
    seen = set()
    for event in stream:
        assert event.type == common_pb2.EVENT_TYPE_ADDED, event
        seen.add(event.namespace.name)
        if seen == {"pyc-1", "pyc-2"}:
            stream.cancel()
            break
    print("watch ok", sorted(seen))
    for _ in range(20):
        system.GetSystemInfo(system_pb2.GetSystemInfoRequest(), timeout=30)
    print("repeated calls ok")
"#;
    let out = run(python()
        .arg("-c")
        .arg(script)
        .arg(sb.socket())
        .arg(stubs.path()));
    let stdout = assert_ok("the grpcio client", &out);
    eprintln!("{stdout}");
    assert!(stdout.contains("unary ok"), "{stdout}");
    assert!(stdout.contains("watch ok ['pyc-1', 'pyc-2']"), "{stdout}");
    assert!(stdout.contains("repeated calls ok"), "{stdout}");
    // The creates took effect: the namespaces are there, as weftd reports them.
    let c = sb.client();
    for name in ["pyc-1", "pyc-2"] {
        let ns = rpc(c
            .namespaces()
            .get_namespace(GetNamespaceRequest { name: name.into() }))
        .await
        .expect("the namespace grpcio created")
        .namespace
        .expect("a namespace");
        assert_ready(name, ns.generation, ns.status.as_ref());
        assert!(sb.ns_path(name).exists(), "{}", sb.ns_path(name).display());
    }
}

/// grpcurl 1.8.6 without `-authority` (so it sends the socket path as `:authority`).
#[tokio::test(flavor = "multi_thread")]
async fn grpcurl_without_authority_completes_calls() {
    let sb = Sandbox::new("noauth").await;
    let grpcurl = |data: Option<&str>, rest: &[&str]| {
        let mut cmd = Command::new(grpcurl_bin());
        cmd.args(["-plaintext", "-unix", "-max-time", "30"]);
        if let Some(d) = data {
            cmd.args(["-d", d]);
        }
        cmd.arg(sb.socket()).args(rest);
        assert_ok(&format!("grpcurl {rest:?}"), &run(&mut cmd))
    };
    let list = grpcurl(None, &["list"]);
    assert!(list.contains("weft.v1.NetworkService"), "{list}");
    let info = grpcurl(None, &["weft.v1.SystemService/GetSystemInfo"]);
    assert!(info.contains("\"version\""), "{info}");
    let created = grpcurl(
        Some(r#"{"namespace": {"name": "gc-1"}}"#),
        &["weft.v1.NamespaceService/CreateNamespace"],
    );
    assert!(created.contains("PHASE_READY"), "{created}");
}

/// examples/python/ runs against a sandboxed weftd: it generates its stubs, creates a network
/// and two namespaces, connects both, sees them in a watch, and cleans up.
#[tokio::test(flavor = "multi_thread")]
async fn python_example_runs_against_a_sandbox() {
    let sb = Sandbox::new("pyex").await;
    let example = repo().join("examples/python/weft_example.py");
    let out = run(python()
        .arg(&example)
        .arg("--socket")
        .arg(sb.socket())
        .arg("--prefix")
        .arg("ex"));
    let stdout = assert_ok("examples/python/weft_example.py", &out);
    eprintln!("{stdout}");
    assert!(
        stdout.contains("network ex-net has 2 endpoints"),
        "{stdout}"
    );
    assert!(
        stdout.contains("watch: saw the network with both endpoints"),
        "{stdout}"
    );
    // Cleaned up: nothing of the example is left.
    let c = sb.client();
    let left = rpc(c.networks().list_networks(weft::v1::ListNetworksRequest {
        label_selector: "example=ex".into(),
        ..Default::default()
    }))
    .await
    .expect("list networks");
    assert!(left.networks.is_empty(), "{:?}", left.networks);
    let left = rpc(c
        .namespaces()
        .list_namespaces(weft::v1::ListNamespacesRequest {
            label_selector: "example=ex".into(),
            ..Default::default()
        }))
    .await
    .expect("list namespaces");
    assert!(left.namespaces.is_empty(), "{:?}", left.namespaces);
}

/// A grpcio connection past a connection limit gets the RESOURCE_EXHAUSTED answer that names
/// the flag (the minimal HTTP/2 responder of admission.rs reads through the same rewrite), not
/// a PROTOCOL_ERROR.
#[tokio::test(flavor = "multi_thread")]
async fn grpcio_past_a_connection_limit_is_told_which_limit() {
    let sb = Sandbox::builder("pylimit")
        .args(&["--max-connections-per-peer", "1"])
        .start()
        .await;
    // The sandbox's own client holds uid 0's one place.
    rpc(sb
        .client()
        .system()
        .get_system_info(weft::v1::GetSystemInfoRequest {}))
    .await
    .expect("the sandbox's client");
    let stubs = python_stubs();
    let script = r#"
import sys
sys.path.insert(0, sys.argv[2])
import grpc
from weft.v1 import system_pb2, system_pb2_grpc

with grpc.insecure_channel("unix:" + sys.argv[1]) as channel:
    try:
        system_pb2_grpc.SystemServiceStub(channel).GetSystemInfo(
            system_pb2.GetSystemInfoRequest(), timeout=30)
        print("answered")
    except grpc.RpcError as e:
        print(e.code().name, e.details())
"#;
    let out = run(python()
        .arg("-c")
        .arg(script)
        .arg(sb.socket())
        .arg(stubs.path()));
    let stdout = assert_ok("the grpcio client", &out);
    assert!(
        stdout.starts_with("RESOURCE_EXHAUSTED too many connections from uid 0")
            && stdout.contains("--max-connections-per-peer"),
        "{stdout}"
    );
}
