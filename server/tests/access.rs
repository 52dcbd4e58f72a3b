//! Who may do what on the Unix socket (issue 10, Access 2): every call is authorized from the
//! peer's credentials. Clients run as other uids and gids with `setpriv` (no users or groups
//! are created on the host: weftd gets numeric gids), through the `weft` CLI and grpcurl
//! copied into the sandbox's dir so those uids can run them. Also: the socket's mode and
//! group owner, and the database files' mode under umask 000.

mod common;

use std::{
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::{Command, Output},
};

use common::{Sandbox, grpcurl_bin, run, weft_bin};

/// The gid given as `--socket-group` (no such group needs to exist).
const SOCKET_GID: u32 = 4242;
/// The gid given as `--read-only-group`.
const RO_GID: u32 = 4343;

/// The `weft` CLI and grpcurl, copied (or linked) where any uid can run them, and the
/// .proto files, so grpcurl needs no reflection (which strangers may not call).
struct Tools {
    weft: PathBuf,
    grpcurl: PathBuf,
    protos: PathBuf,
}

/// grpc.health.v1, for grpcurl without reflection.
const HEALTH_PROTO: &str = r#"syntax = "proto3";
package grpc.health.v1;
message HealthCheckRequest { string service = 1; }
message HealthCheckResponse {
  enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; SERVICE_UNKNOWN = 3; }
  ServingStatus status = 1;
}
service Health {
  rpc Check(HealthCheckRequest) returns (HealthCheckResponse);
  rpc Watch(HealthCheckRequest) returns (stream HealthCheckResponse);
}
"#;

impl Tools {
    /// Makes the sandbox dir traversable (its socket is what is being tested, not the dir)
    /// and puts the tools in it.
    fn new(sb: &Sandbox) -> Tools {
        std::fs::set_permissions(sb.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let bin = sb.dir().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let place = |src: PathBuf, name: &str| {
            let dst = bin.join(name);
            if std::fs::hard_link(&src, &dst).is_err() {
                std::fs::copy(&src, &dst).unwrap();
            }
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755)).unwrap();
            dst
        };
        let protos = bin.join("proto");
        let v1 = protos.join("weft/v1");
        std::fs::create_dir_all(&v1).unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto/weft/v1");
        for f in ["common", "namespace", "link", "network", "system"] {
            let name = format!("{f}.proto");
            std::fs::copy(src.join(&name), v1.join(&name)).unwrap();
        }
        std::fs::create_dir_all(protos.join("grpc/health/v1")).unwrap();
        std::fs::write(protos.join("grpc/health/v1/health.proto"), HEALTH_PROTO).unwrap();
        Command::new("chmod")
            .args(["-R", "a+rX"])
            .arg(&protos)
            .status()
            .unwrap();
        Tools {
            weft: place(weft_bin(), "weft"),
            grpcurl: place(grpcurl_bin(), "grpcurl"),
            protos,
        }
    }
}

/// Who runs a client: uid, primary gid, supplementary groups.
#[derive(Clone, Copy, Debug)]
struct As(u32, u32, &'static [u32]);

const ROOT: As = As(0, 0, &[]);
/// In the socket group as a supplementary group.
const MEMBER: As = As(12345, 12345, &[SOCKET_GID]);
/// In the socket group as its primary group.
const PRIMARY_MEMBER: As = As(12350, SOCKET_GID, &[]);
const READER: As = As(12346, 12346, &[RO_GID]);
const STRANGER: As = As(12347, 12347, &[]);

/// `setpriv` around `cmd`: runs it as `who`.
fn as_user(who: As, cmd: &Path, args: &[&str]) -> Output {
    let As(uid, gid, groups) = who;
    let mut c = Command::new("setpriv");
    c.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"));
    if groups.is_empty() {
        c.arg("--clear-groups");
    } else {
        let list: Vec<String> = groups.iter().map(u32::to_string).collect();
        c.arg(format!("--groups={}", list.join(",")));
    }
    run(c.arg("--").arg(cmd).args(args))
}

/// The `weft` CLI on the sandbox's socket, as `who`.
fn weft(sb: &Sandbox, t: &Tools, who: As, args: &[&str]) -> Output {
    let sock = sb.socket().display().to_string();
    let mut full = vec!["--socket", &sock, "--timeout", "20s"];
    full.extend_from_slice(args);
    as_user(who, &t.weft, &full)
}

/// grpcurl on the sandbox's socket, as `who`; `data` is the request JSON. Methods are found
/// in the .proto files; `list` uses reflection.
fn grpcurl(sb: &Sandbox, t: &Tools, who: As, data: Option<&str>, rest: &[&str]) -> Output {
    let sock = sb.socket().display().to_string();
    let protos = t.protos.display().to_string();
    let mut args = vec!["-plaintext", "-unix", "-authority", "localhost"];
    if rest.first() != Some(&"list") {
        args.extend(["-import-path", &protos]);
        for f in [
            "weft/v1/namespace.proto",
            "weft/v1/link.proto",
            "weft/v1/network.proto",
            "weft/v1/system.proto",
            "grpc/health/v1/health.proto",
        ] {
            args.extend(["-proto", f]);
        }
    }
    if let Some(d) = data {
        args.extend(["-d", d]);
    }
    args.push(&sock);
    args.extend_from_slice(rest);
    as_user(who, &t.grpcurl, &args)
}

fn text(o: &Output) -> String {
    format!(
        "exit {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[track_caller]
fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts grpcurl got PERMISSION_DENIED; returns the message.
#[track_caller]
fn denied(o: Output) -> String {
    let all = text(&o);
    assert!(!o.status.success(), "{all}");
    assert!(all.contains("Code: PermissionDenied"), "{all}");
    all
}

/// The names `weft ns ls -q` prints, as root.
fn namespaces(sb: &Sandbox, t: &Tools) -> Vec<String> {
    let mut v: Vec<String> = ok(weft(sb, t, ROOT, &["ns", "ls", "-q"]))
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

const CREATE: &str = "weft.v1.NamespaceService/CreateNamespace";
const LIST: &str = "weft.v1.NamespaceService/ListNamespaces";
const INFO: &str = "weft.v1.SystemService/GetSystemInfo";
const HEALTH: &str = "grpc.health.v1.Health/Check";

#[tokio::test(flavor = "multi_thread")]
async fn socket_group_may_change_read_only_group_may_read_strangers_get_health_only() {
    let sb = Sandbox::builder("acg")
        .args(&[
            "--socket-group",
            &SOCKET_GID.to_string(),
            "--read-only-group",
            &RO_GID.to_string(),
        ])
        .start()
        .await;
    let t = Tools::new(&sb);

    // With a read-only group the socket is 0666 (a file has one group: each call is
    // authorized instead), its group the socket group.
    let meta = std::fs::metadata(sb.socket()).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o666, "socket mode");
    assert_eq!(meta.gid(), SOCKET_GID, "socket group");
    assert_eq!(meta.uid(), 0, "socket owner");

    // Root and the socket group's members (supplementary or primary) may change things.
    ok(weft(&sb, &t, ROOT, &["ns", "create", "byroot"]));
    ok(weft(&sb, &t, MEMBER, &["ns", "create", "bymember"]));
    ok(grpcurl(
        &sb,
        &t,
        PRIMARY_MEMBER,
        Some(r#"{"namespace":{"name":"byprimary"}}"#),
        &[CREATE],
    ));
    ok(weft(&sb, &t, MEMBER, &["ns", "rm", "byprimary"]));

    // The read-only group may list, get, read system info and use reflection...
    let listed = ok(weft(&sb, &t, READER, &["ns", "ls", "-q"]));
    assert!(listed.contains("bymember"), "{listed}");
    ok(weft(&sb, &t, READER, &["ns", "inspect", "byroot"]));
    ok(grpcurl(&sb, &t, READER, Some("{}"), &[INFO]));
    ok(grpcurl(&sb, &t, READER, None, &["list"]));
    // ...and nothing else: PERMISSION_DENIED naming the group to join.
    let msg = denied(grpcurl(
        &sb,
        &t,
        READER,
        Some(r#"{"namespace":{"name":"byreader"}}"#),
        &[CREATE],
    ));
    assert!(msg.contains("read-only"), "{msg}");
    assert!(msg.contains("uid 12346"), "{msg}");
    assert!(
        msg.contains(&format!("join group {SOCKET_GID}")),
        "names the socket group: {msg}"
    );
    let cli = weft(&sb, &t, READER, &["ns", "rm", "byroot"]);
    assert!(!cli.status.success(), "{}", text(&cli));
    assert!(
        text(&cli).contains("read-only access to weftd"),
        "{}",
        text(&cli)
    );

    // A stranger reaches the health check and nothing else.
    let health = ok(grpcurl(&sb, &t, STRANGER, None, &[HEALTH]));
    assert!(health.contains("SERVING"), "{health}");
    for (data, method) in [
        (Some("{}"), LIST),
        (Some("{}"), INFO),
        (Some(r#"{"namespace":{"name":"bystranger"}}"#), CREATE),
        (
            Some(r#"{"name":"byroot"}"#),
            "weft.v1.NamespaceService/DeleteNamespace",
        ),
        (
            Some(r#"{"name":"bridge"}"#),
            "weft.v1.NetworkService/GetNetwork",
        ),
    ] {
        let msg = denied(grpcurl(&sb, &t, STRANGER, data, &[method]));
        assert!(msg.contains("uid 12347"), "{msg}");
        assert!(msg.contains(&format!("join group {SOCKET_GID}")), "{msg}");
        assert!(
            msg.contains(&format!("group {RO_GID} to read only")),
            "{msg}"
        );
    }
    let list = grpcurl(&sb, &t, STRANGER, None, &["list"]);
    assert!(!list.status.success(), "reflection: {}", text(&list));
    let cli = weft(&sb, &t, STRANGER, &["ns", "ls"]);
    assert!(!cli.status.success(), "{}", text(&cli));
    assert!(text(&cli).contains("join group"), "{}", text(&cli));

    // Nothing the refused calls asked for happened.
    assert_eq!(namespaces(&sb, &t), ["bymember", "byroot"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_only_a_socket_group_the_socket_is_0660_and_others_cannot_connect() {
    let sb = Sandbox::builder("acs")
        .args(&["--socket-group", &SOCKET_GID.to_string()])
        .start()
        .await;
    let t = Tools::new(&sb);
    let meta = std::fs::metadata(sb.socket()).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o660, "socket mode");
    assert_eq!(meta.gid(), SOCKET_GID, "socket group");

    ok(weft(&sb, &t, MEMBER, &["ns", "create", "bymember"]));
    // The file mode keeps everyone else out before any call.
    for who in [STRANGER, READER] {
        let o = weft(&sb, &t, who, &["ns", "ls"]);
        assert!(!o.status.success(), "{}", text(&o));
        assert!(text(&o).contains("permission denied"), "{}", text(&o));
        assert!(text(&o).contains("--socket-group"), "{}", text(&o));
        let o = grpcurl(&sb, &t, who, None, &[HEALTH]);
        assert!(!o.status.success(), "{}", text(&o));
    }
    assert_eq!(namespaces(&sb, &t), ["bymember"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn under_umask_000_the_socket_and_database_files_keep_their_modes() {
    let mut sb = Sandbox::builder("acu").umask(0).start().await;
    common::create_ns(&sb.client(), "n1").await;
    let db = sb.database().to_path_buf();
    let side = |s: &str| PathBuf::from(format!("{}{s}", db.display()));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o7777;
    // No socket group: owner-only (0660 if this host has a group `weft`, the default).
    let socket_mode = match nix::unistd::Group::from_name("weft") {
        Ok(Some(_)) => 0o660,
        _ => 0o600,
    };
    assert_eq!(mode(sb.socket()), socket_mode, "socket");
    for p in [db.clone(), side("-wal"), side("-shm")] {
        assert!(p.exists(), "{} missing: WAL mode?", p.display());
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
    // A database left readable by an older weftd is narrowed at start-up.
    sb.stop();
    for p in [db.clone(), side("-wal"), side("-shm")] {
        if p.exists() {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    sb.start().await;
    for p in [db.clone(), side("-wal"), side("-shm")] {
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{} after restart", p.display());
        }
    }
    assert_eq!(mode(sb.socket()), socket_mode, "socket after restart");
}
