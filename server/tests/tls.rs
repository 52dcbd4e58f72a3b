//! TCP only with TLS and client certificates (issue 10, Access 1). Certificates are made with
//! the openssl commands README's "Security model" shows; weftd listens on 127.0.0.1 inside the
//! sandbox's scratch namespace, and clients (the `weft` CLI, grpcurl, the client library) run
//! in that namespace too: nothing listens on or connects to the real host's addresses.

mod common;

use std::{
    path::Path,
    process::{Command, Output},
};

use common::{Sandbox, grpcurl_bin, run, weft_bin, weftd_bin};
use weft::{Client, TlsFiles, v1::ListNamespacesRequest};

/// Where weftd listens, inside the scratch namespace.
const ADDR: &str = "127.0.0.1:7443";

/// Makes a CA `<name>-ca.pem`/`.key` in `dir`, as README says.
fn make_ca(dir: &Path, name: &str) {
    sh(
        dir,
        &format!(
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
             -days 3650 -subj '/CN={name} CA' -keyout {name}-ca.key -out {name}-ca.pem"
        ),
    );
}

/// Makes `<out>.pem`/`.key` signed by CA `ca`: a server certificate for 127.0.0.1 when
/// `server`, else a client certificate; as README says.
fn make_cert(dir: &Path, ca: &str, out: &str, server: bool) {
    let ext = if server {
        "subjectAltName=DNS:localhost,IP:127.0.0.1\\nextendedKeyUsage=serverAuth"
    } else {
        "extendedKeyUsage=clientAuth"
    };
    sh(
        dir,
        &format!(
            "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
             -subj '/CN={out}' -keyout {out}.key -out {out}.csr && \
             printf '{ext}\\n' > {out}.ext && \
             openssl x509 -req -in {out}.csr -CA {ca}-ca.pem -CAkey {ca}-ca.key \
             -CAcreateserial -days 825 -extfile {out}.ext -out {out}.pem"
        ),
    );
}

fn sh(dir: &Path, script: &str) {
    let o = run(Command::new("sh").arg("-c").arg(script).current_dir(dir));
    assert!(o.status.success(), "{script}: {}", text(&o));
}

fn text(o: &Output) -> String {
    format!(
        "exit {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A CA `good` with a server and a client certificate, and another CA `evil` with a client
/// certificate of its own.
fn certificates() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    make_ca(dir.path(), "good");
    make_cert(dir.path(), "good", "server", true);
    make_cert(dir.path(), "good", "client", false);
    make_ca(dir.path(), "evil");
    make_cert(dir.path(), "evil", "intruder", false);
    dir
}

fn p(dir: &Path, f: &str) -> String {
    dir.join(f).display().to_string()
}

/// A sandbox whose weftd also serves TLS on [`ADDR`], trusting client certificates of `good`.
async fn tls_sandbox(tag: &str, certs: &Path) -> Sandbox {
    Sandbox::builder(tag)
        .args(&[
            "--tcp",
            ADDR,
            "--tls-cert",
            &p(certs, "server.pem"),
            "--tls-key",
            &p(certs, "server.key"),
            "--tls-client-ca",
            &p(certs, "good-ca.pem"),
        ])
        .start()
        .await
}

/// The `weft` CLI inside the scratch namespace, with `env` set.
fn weft_in(sb: &Sandbox, env: &[(&str, String)], args: &[&str]) -> Output {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net={}", sb.host_ns_path().display()))
        .arg(weft_bin())
        .args(["--timeout", "10s"])
        .args(args)
        .env_remove("WEFT_HOST")
        .env_remove("WEFT_SOCKET");
    for (k, v) in env {
        c.env(k, v);
    }
    run(&mut c)
}

/// grpcurl inside the scratch namespace against [`ADDR`], with `flags` before the address.
fn grpcurl_in(sb: &Sandbox, flags: &[&str], rest: &[&str]) -> Output {
    run(Command::new("nsenter")
        .arg(format!("--net={}", sb.host_ns_path().display()))
        .arg(grpcurl_bin())
        .args(flags)
        .arg(ADDR)
        .args(rest))
}

/// grpcurl as [`grpcurl_in`], expecting a refusal: returns its output. A refused dial is
/// retried until grpcurl's connect timeout, so that is short here.
#[track_caller]
fn grpcurl_refused(sb: &Sandbox, flags: &[&str], rest: &[&str]) -> String {
    let mut all = vec!["-connect-timeout", "3"];
    all.extend_from_slice(flags);
    let o = grpcurl_in(sb, &all, rest);
    assert!(!o.status.success(), "{}", text(&o));
    text(&o)
}

/// `weft ns ls -q` as root on the Unix socket.
fn namespaces(sb: &Sandbox) -> Vec<String> {
    let o = sb.weft_cli(&["ns", "ls", "-q"]);
    assert!(o.status.success(), "{}", text(&o));
    let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_serves_only_clients_with_a_certificate_of_the_client_ca() {
    let certs = certificates();
    let c = certs.path();
    let sb = tls_sandbox("tls", c).await;
    let good = [
        "--tls-cert",
        &p(c, "client.pem"),
        "--tls-key",
        &p(c, "client.key"),
        "--tls-ca",
        &p(c, "good-ca.pem"),
    ]
    .map(str::to_string);
    let good: Vec<&str> = good.iter().map(String::as_str).collect();

    // A good certificate: full access, with --host ...
    let mut args = vec!["--host", "tcp://127.0.0.1:7443"];
    args.extend(&good);
    args.extend(["ns", "create", "overtls"]);
    let o = weft_in(&sb, &[], &args);
    assert!(o.status.success(), "{}", text(&o));
    // ... with WEFT_HOST and the WEFT_TLS_* variables ...
    let env = [
        ("WEFT_HOST", "tcp://127.0.0.1:7443".to_string()),
        ("WEFT_TLS_CERT", p(c, "client.pem")),
        ("WEFT_TLS_KEY", p(c, "client.key")),
        ("WEFT_TLS_CA", p(c, "good-ca.pem")),
    ];
    let o = weft_in(&sb, &env, &["ns", "ls", "-q"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("overtls"),
        "{}",
        text(&o)
    );
    // ... and grpcurl.
    let cacert = p(c, "good-ca.pem");
    let cert = p(c, "client.pem");
    let key = p(c, "client.key");
    let tls_flags = ["-cacert", &cacert, "-cert", &cert, "-key", &key];
    let o = grpcurl_in(
        &sb,
        &tls_flags,
        &["weft.v1.NamespaceService/ListNamespaces"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("overtls"),
        "{}",
        text(&o)
    );

    // No client certificate: refused in the handshake.
    grpcurl_refused(
        &sb,
        &[
            "-cacert",
            &cacert,
            "-d",
            r#"{"namespace":{"name":"nocert"}}"#,
        ],
        &["weft.v1.NamespaceService/CreateNamespace"],
    );
    // A certificate of another CA: refused, by the CLI and by grpcurl.
    let evil_cert = p(c, "intruder.pem");
    let evil_key = p(c, "intruder.key");
    let o = weft_in(
        &sb,
        &[],
        &[
            "--host",
            "tcp://127.0.0.1:7443",
            "--tls-cert",
            &evil_cert,
            "--tls-key",
            &evil_key,
            "--tls-ca",
            &cacert,
            "ns",
            "create",
            "evil",
        ],
    );
    assert!(!o.status.success(), "{}", text(&o));
    // The reason shown is the server's alert (UnknownCA) or, when the server closed first, a
    // closed connection: TLS 1.3 checks the client's certificate after the client's handshake.
    assert!(
        text(&o).contains("create namespace \"evil\""),
        "{}",
        text(&o)
    );
    grpcurl_refused(
        &sb,
        &[
            "-cacert",
            &cacert,
            "-cert",
            &evil_cert,
            "-key",
            &evil_key,
            "-d",
            r#"{"namespace":{"name":"evil2"}}"#,
        ],
        &["weft.v1.NamespaceService/CreateNamespace"],
    );
    // Plaintext: refused (the CLI's old --tcp without TLS files, and grpcurl -plaintext).
    let o = weft_in(&sb, &[], &["--tcp", ADDR, "ns", "create", "plain"]);
    assert!(!o.status.success(), "{}", text(&o));

    grpcurl_refused(
        &sb,
        &["-plaintext", "-d", r#"{"namespace":{"name":"plain2"}}"#],
        &["weft.v1.NamespaceService/CreateNamespace"],
    );

    // The client library, from a thread inside the scratch namespace.
    let ns = sb.host_ns_path().to_path_buf();
    let files = |cert: &str, key: &str| TlsFiles {
        cert: Some(c.join(cert)),
        key: Some(c.join(key)),
        ca: Some(c.join("good-ca.pem")),
    };
    let networks = in_namespace(&ns, files("client.pem", "client.key")).expect("good certificate");
    assert_eq!(networks, 1, "the default network");
    let err = in_namespace(&ns, files("intruder.pem", "intruder.key")).unwrap_err();
    assert!(!err.is_empty());

    // Only the good clients' namespace exists.
    assert_eq!(namespaces(&sb), ["overtls"]);
}

/// Connects with the client library from a thread that has entered `ns`, lists namespaces
/// and networks; returns how many networks there are, or the error.
fn in_namespace(ns: &Path, tls: TlsFiles) -> Result<usize, String> {
    let ns = ns.to_path_buf();
    std::thread::spawn(move || {
        let f = std::fs::File::open(&ns).unwrap();
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let client = Client::connect_tls(ADDR, &tls)
                .await
                .map_err(|e| e.to_string())?;
            client
                .namespaces()
                .list_namespaces(ListNamespacesRequest::default())
                .await
                .map_err(|e| e.to_string())?;
            let nets = client
                .networks()
                .list_networks(weft::v1::ListNetworksRequest::default())
                .await
                .map_err(|e| e.to_string())?;
            Ok(nets.into_inner().networks.len())
        })
    })
    .join()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn weftd_refuses_tcp_without_tls() {
    let certs = certificates();
    let c = certs.path();
    let sb = Sandbox::new("tlsno").await;
    let dir = sb.dir().to_path_buf();
    let weftd = |extra: &[&str]| {
        let socket = dir.join("other.sock");
        let db = dir.join("other.db");
        // `timeout`: a weftd that wrongly started would serve forever; its own runtime dir,
        // so even a regression never writes under the real /run/weft.
        let o = run(Command::new("timeout")
            .arg("20")
            .arg("nsenter")
            .arg(format!("--net={}", sb.host_ns_path().display()))
            .arg(weftd_bin())
            .arg("--host-netns")
            .arg(sb.host_ns_path())
            .arg("--netns-dir")
            .arg(sb.netns_dir())
            .arg("--runtime-dir")
            .arg(dir.join("run"))
            // No forwarding out of the sandbox, no writes to the real /etc/netns.
            .arg("--host-resolv-conf")
            .arg("/dev/null")
            .arg("--etc-netns-dir")
            .arg(dir.join("etc-netns"))
            .arg("--socket")
            .arg(&socket)
            .arg("--database")
            .arg(&db)
            .args(extra));
        // It stopped before touching anything.
        assert!(!socket.exists(), "socket made: {}", text(&o));
        assert!(!db.exists(), "database made: {}", text(&o));
        o
    };
    let o = weftd(&["--tcp", "127.0.0.1:7444"]);
    assert!(!o.status.success(), "{}", text(&o));
    let all = text(&o);
    assert!(all.contains("--tcp 127.0.0.1:7444 needs TLS"), "{all}");
    assert!(all.contains("--tls-client-ca"), "{all}");
    // All three or nothing.
    let o = weftd(&[
        "--tcp",
        "127.0.0.1:7444",
        "--tls-cert",
        &p(c, "server.pem"),
        "--tls-key",
        &p(c, "server.key"),
    ]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("needs TLS"), "{}", text(&o));
    // A key that is not one: refused at start-up, not at the first client.
    let o = weftd(&[
        "--tcp",
        "127.0.0.1:7444",
        "--tls-cert",
        &p(c, "server.pem"),
        "--tls-key",
        &p(c, "server.csr"),
        "--tls-client-ca",
        &p(c, "good-ca.pem"),
    ]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("TLS"), "{}", text(&o));
}
