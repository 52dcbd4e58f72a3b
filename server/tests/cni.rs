//! `weft-cni`, the CNI plugin, driven alone as a runtime would: the real binary with `CNI_*`
//! variables and the configuration on stdin, against a real weftd in a sandbox. Containers
//! are namespaces the tests make with `ip netns add` under their sandbox's prefix (removed on
//! drop, also on failure): VERSION, ADD and traffic between two containers, a retried ADD,
//! CHECK before and after the container's interface is deleted by hand, DEL twice and with an
//! empty CNI_NETNS, GC with a partial list, STATUS with weftd up and down, and each error code.

mod common;
#[path = "common/net.rs"]
mod net;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use net::*;
use serde_json::{Value, json};

/// The plugin binary, built next to weftd (`cargo build --workspace --bins`).
fn cni_bin() -> PathBuf {
    let bin = weftd_bin().with_file_name("weft-cni");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        bin.display()
    );
    bin
}

/// A container's namespace made with `ip netns add`, deleted when dropped.
struct Container {
    id: String,
    path: PathBuf,
}

impl Container {
    fn new(sb: &Sandbox, tag: &str) -> Container {
        let name = format!("{}{tag}", sb.prefix);
        let out = run(Command::new("ip").args(["netns", "add", &name]));
        assert!(out.status.success(), "ip netns add {name}: {out:?}");
        Container {
            id: name.clone(),
            path: PathBuf::from("/run/netns").join(&name),
        }
    }

    fn netns(&self) -> &str {
        self.path.to_str().expect("utf-8 path")
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = run(Command::new("ip").args(["netns", "del", &self.id]));
    }
}

/// One plugin run: exit status 0 or not, and stdout parsed (Null when empty).
struct Reply {
    ok: bool,
    json: Value,
    raw: String,
}

/// Runs weft-cni with `vars` and `stdin`.
fn cni(vars: &[(&str, &str)], stdin: &str) -> Reply {
    let mut cmd = Command::new(cni_bin());
    cmd.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn weft-cni");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("weft-cni");
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    let json = if raw.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&raw)
            .unwrap_or_else(|e| panic!("weft-cni stdout is not JSON ({e}): {raw}"))
    };
    Reply {
        ok: out.status.success(),
        json,
        raw,
    }
}

/// The plugin's configuration for weft network `network` over the sandbox's socket.
fn conf(sb: &Sandbox, version: &str, network: &str, extra: Value) -> Value {
    let mut c = json!({
        "cniVersion": version, "name": network, "type": "weft-cni",
        "socket": sb.socket().to_str().expect("utf-8"),
    });
    if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    c
}

fn call(
    cmd: &str,
    ctr: Option<&Container>,
    ifname: &str,
    netns: Option<&str>,
    conf: &Value,
) -> Reply {
    let id = ctr.map(|c| c.id.clone()).unwrap_or_default();
    let ns = netns
        .map(str::to_string)
        .or_else(|| ctr.map(|c| c.netns().to_string()))
        .unwrap_or_default();
    as_id(cmd, &id, &ns, ifname, "", conf)
}

/// Runs `cmd` for container id `id` in `netns` with `CNI_ARGS` `args`.
fn as_id(cmd: &str, id: &str, netns: &str, ifname: &str, args: &str, conf: &Value) -> Reply {
    cni(
        &[
            ("CNI_COMMAND", cmd),
            ("CNI_CONTAINERID", id),
            ("CNI_NETNS", netns),
            ("CNI_IFNAME", ifname),
            ("CNI_ARGS", args),
            ("CNI_PATH", "/opt/cni/bin"),
        ],
        &conf.to_string(),
    )
}

/// A sandbox with weft networks `nets` (name, subnet), their bridges named after its prefix.
async fn sandbox_with(tag: &str, nets: &[(&str, &str)]) -> Sandbox {
    let sb = Sandbox::new(tag).await;
    for (i, (name, subnet)) in nets.iter().enumerate() {
        let bridge = format!("{}b{i}", sb.prefix);
        create_network(&sb.client(), network(name, &bridge, &[subnet])).await;
    }
    sb
}

/// Panics unless weft has no namespace object for container `id`.
async fn assert_no_object(sb: &Sandbox, id: &str) {
    let name = format!("cni-{id}");
    let r = sb
        .client()
        .namespaces()
        .get_namespace(weft::v1::GetNamespaceRequest { name: name.clone() })
        .await;
    assert_eq!(r.expect_err(&name).code(), tonic::Code::NotFound);
}

fn ok(r: Reply, what: &str) -> Value {
    assert!(r.ok, "{what} failed: {}", r.raw);
    r.json
}

fn err_code(r: &Reply, what: &str) -> u64 {
    assert!(!r.ok, "{what} succeeded: {}", r.raw);
    r.json["code"]
        .as_u64()
        .unwrap_or_else(|| panic!("{what}: no code in {}", r.raw))
}

/// The endpoints of `network` whose namespace is the container's object.
async fn endpoints_of(sb: &Sandbox, network: &str, ctr: &Container) -> Vec<weft::v1::Endpoint> {
    let ns = format!("cni-{}", ctr.id);
    get_network(&sb.client(), network)
        .await
        .endpoints
        .into_iter()
        .filter(|e| e.namespace == ns)
        .collect()
}

fn ipv4_of(result: &Value) -> String {
    result["ips"][0]["address"]
        .as_str()
        .expect("an IPv4 address")
        .split('/')
        .next()
        .expect("addr")
        .to_string()
}

fn ping_at(path: &Path, addr: &str) -> bool {
    exec_at(path, &["ping", "-c", "1", "-W", "2", addr])
        .status
        .success()
}

#[tokio::test(flavor = "multi_thread")]
async fn version_add_ping_retry_check_del() {
    let mut sb = sandbox_with("cni", &[("web", "10.243.0.0/24")]).await;
    let c = sb.client();
    let a = Container::new(&sb, "a");
    let b = Container::new(&sb, "b");
    let cf = conf(&sb, "1.0.0", "web", json!({}));

    let v = ok(
        cni(
            &[("CNI_COMMAND", "VERSION"), ("CNI_NETNS", "dummy")],
            r#"{"cniVersion":"1.0.0"}"#,
        ),
        "VERSION",
    );
    assert_eq!(v["cniVersion"], "1.0.0");
    let vs: Vec<&str> = v["supportedVersions"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        vs,
        [
            "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"
        ]
    );

    let ra = ok(call("ADD", Some(&a), "eth0", None, &cf), "ADD a");
    assert_eq!(ra["cniVersion"], "1.0.0");
    assert_eq!(ra["interfaces"][1]["name"], "eth0");
    assert_eq!(ra["interfaces"][1]["sandbox"], a.netns());
    assert!(
        ra["interfaces"][0]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("wv")),
        "{ra}"
    );
    assert_eq!(ra["ips"][0]["gateway"], "10.243.0.1");
    assert_eq!(ra["ips"][0]["interface"], 1);
    assert_eq!(ra["routes"], json!([{"dst":"0.0.0.0/0","gw":"10.243.0.1"}]));
    // The network's resolver (weftd's DNS on its gateway) is the container's nameserver.
    assert_eq!(ra["dns"], json!({"nameservers": ["10.243.0.1"]}));
    let rb = ok(call("ADD", Some(&b), "eth0", None, &cf), "ADD b");
    let (ipa, ipb) = (ipv4_of(&ra), ipv4_of(&rb));
    assert_ne!(ipa, ipb);
    assert!(ping_at(&a.path, &ipb), "a cannot ping b at {ipb}");
    assert!(ping_at(&b.path, &ipa), "b cannot ping a at {ipa}");
    // The namespace object carries the container's labels.
    let ns = sb
        .client()
        .namespaces()
        .get_namespace(weft::v1::GetNamespaceRequest {
            name: format!("cni-{}", a.id),
        })
        .await
        .expect("ns")
        .into_inner()
        .namespace
        .expect("ns");
    assert_eq!(ns.labels.get("cni.weft.dev/container-id"), Some(&a.id));
    assert_eq!(
        ns.labels.get("cni.weft.dev/ifname").map(String::as_str),
        Some("eth0")
    );
    assert_eq!(ns.path, a.netns());

    // A retried ADD answers the same and makes nothing new.
    let again = ok(call("ADD", Some(&a), "eth0", None, &cf), "ADD a again");
    assert_eq!(again, ra);
    assert_eq!(endpoints_of(&sb, "web", &a).await.len(), 1);
    assert_eq!(get_network(&c, "web").await.endpoints.len(), 2);

    // CHECK with the prevResult passes.
    let mut chk = cf.clone();
    chk["prevResult"] = ra.clone();
    assert!(ok(call("CHECK", Some(&a), "eth0", None, &chk), "CHECK").is_null());
    // A prevResult that differs fails.
    let mut wrong = chk.clone();
    wrong["prevResult"]["ips"][0]["address"] = json!("10.243.0.250/24");
    assert_eq!(
        err_code(
            &call("CHECK", Some(&a), "eth0", None, &wrong),
            "CHECK wrong"
        ),
        101
    );
    // The interface deleted by hand while weftd is down (so nothing heals it): CHECK fails.
    sb.stop();
    ok_at(&a.path, &["ip", "link", "del", "eth0"]);
    let r = call("CHECK", Some(&a), "eth0", None, &chk);
    assert_eq!(err_code(&r, "CHECK after ip link del"), 101);
    assert!(
        r.json["msg"].as_str().is_some_and(|m| m.contains("gone")),
        "{}",
        r.raw
    );
    // DEL while weftd is down must not claim success.
    assert_eq!(
        err_code(
            &call("DEL", Some(&a), "eth0", None, &chk),
            "DEL with weftd down"
        ),
        11
    );
    sb.start().await;
    // weftd puts the interface back (same MAC and address): CHECK passes again.
    let healed = wait_check(&a, &chk).await;
    assert!(healed, "CHECK never passed again after weftd restarted");

    // DEL twice succeeds; the namespace file stays (adopted namespaces are only forgotten).
    assert!(ok(call("DEL", Some(&a), "eth0", None, &chk), "DEL").is_null());
    assert!(ok(call("DEL", Some(&a), "eth0", None, &chk), "DEL again").is_null());
    assert!(endpoints_of(&sb, "web", &a).await.is_empty());
    assert!(
        a.path.exists(),
        "DEL removed the container's namespace file"
    );
    assert_no_object(&sb, &a.id).await;
    // DEL with an empty CNI_NETNS (containerd after the container died) releases b.
    assert!(
        ok(
            call("DEL", Some(&b), "eth0", Some(""), &cf),
            "DEL empty netns"
        )
        .is_null()
    );
    assert!(get_network(&c, "web").await.endpoints.is_empty());
    // ADD again after DEL: a new life gets a new endpoint.
    let r2 = ok(call("ADD", Some(&a), "eth0", None, &cf), "ADD after DEL");
    assert_eq!(endpoints_of(&sb, "web", &a).await.len(), 1, "{r2}");
    ok(call("DEL", Some(&a), "eth0", None, &cf), "final DEL");
}

/// CHECK until it passes (weftd heals within seconds), at most 15 s.
async fn wait_check(ctr: &Container, chk: &Value) -> bool {
    for _ in 0..75 {
        if call("CHECK", Some(ctr), "eth0", None, chk).ok {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_status_and_error_codes() {
    let mut sb = sandbox_with("cnigc", &[("web", "10.244.0.0/24")]).await;
    let c = sb.client();
    let bad_bridge = format!("{}bx", sb.prefix);
    create_network(&c, network("bad", &bad_bridge, &["10.249.0.0/24"])).await;
    let x = Container::new(&sb, "x");
    let y = Container::new(&sb, "y");
    let cf = conf(&sb, "1.1.0", "web", json!({}));
    ok(call("ADD", Some(&x), "eth0", None, &cf), "ADD x");
    ok(call("ADD", Some(&y), "eth0", None, &cf), "ADD y");
    // A weft namespace not made by the plugin is never collected.
    create_ns(&c, "mine").await;
    connect(&c, connect_req("web", "mine")).await;

    // GC without the list is refused and removes nothing.
    assert_eq!(
        err_code(&call("GC", None, "", None, &cf), "GC without a list"),
        7
    );
    assert_eq!(endpoints_of(&sb, "web", &y).await.len(), 1);
    // GC keeps x (listed) and removes y (not listed).
    let mut gc = cf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": x.id, "ifname": "eth0"}]);
    assert!(ok(call("GC", None, "", None, &gc), "GC").is_null());
    assert_eq!(endpoints_of(&sb, "web", &x).await.len(), 1);
    assert!(endpoints_of(&sb, "web", &y).await.is_empty());
    let names: Vec<String> = get_network(&c, "web")
        .await
        .endpoints
        .into_iter()
        .map(|e| e.namespace)
        .collect();
    assert!(names.contains(&"mine".to_string()), "{names:?}");

    // STATUS: fine with weftd up; 50 for a missing network.
    assert!(ok(call("STATUS", None, "", None, &cf), "STATUS").is_null());
    let nope = conf(&sb, "1.1.0", "nope", json!({}));
    assert_eq!(
        err_code(
            &call("STATUS", None, "", None, &nope),
            "STATUS missing network"
        ),
        50
    );

    // Error codes: bad JSON 6, missing network 7 (naming `weft network create`), bad env 4,
    // unsupported version 1.
    let r = cni(
        &[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", &x.id),
            ("CNI_NETNS", x.netns()),
            ("CNI_IFNAME", "eth1"),
        ],
        "{not json",
    );
    assert_eq!(err_code(&r, "bad JSON"), 6);
    let r = call("ADD", Some(&x), "eth1", None, &nope);
    assert_eq!(err_code(&r, "missing network"), 7);
    assert!(
        r.json["msg"]
            .as_str()
            .is_some_and(|m| m.contains("weft network create")),
        "{}",
        r.raw
    );
    let r = as_id("ADD", &x.id, "", "eth1", "", &cf);
    assert_eq!(err_code(&r, "ADD without CNI_NETNS"), 4);
    let r = as_id("ADD", &x.id, x.netns(), "this-is-too-long", "", &cf);
    assert_eq!(err_code(&r, "ifname too long"), 4);
    let old = conf(&sb, "0.0.9", "web", json!({}));
    assert_eq!(
        err_code(
            &call("ADD", Some(&x), "eth1", None, &old),
            "unsupported version"
        ),
        1
    );
    // An address another container holds: weftd refuses (100, its message), and the failed
    // ADD leaves no namespace object behind.
    let taken = endpoints_of(&sb, "web", &x).await[0].ipv4_address.clone();
    let z = Container::new(&sb, "z");
    let ip_arg = format!("IP={}", taken.split('/').next().expect("addr"));
    let r = as_id("ADD", &z.id, z.netns(), "eth0", &ip_arg, &cf);
    assert_eq!(err_code(&r, "ADD with a taken address"), 100);
    assert_no_object(&sb, &z.id).await;
    // Nothing changed by any of them.
    assert_eq!(endpoints_of(&sb, "web", &x).await.len(), 1);

    // weftd down: STATUS 50, ADD 11, DEL 11.
    sb.stop();
    assert_eq!(
        err_code(&call("STATUS", None, "", None, &cf), "STATUS weftd down"),
        50
    );
    assert_eq!(
        err_code(&call("ADD", Some(&y), "eth0", None, &cf), "ADD weftd down"),
        11
    );
    assert_eq!(
        err_code(&call("DEL", Some(&x), "eth0", None, &cf), "DEL weftd down"),
        11
    );
    // STATUS: 50 for a network that is not Ready: while weftd is down, an interface weft
    // does not own takes the name of network bad's bridge.
    sb.host_ok(&["ip", "link", "del", &bad_bridge]);
    let peer = format!("{}by", sb.prefix);
    sb.host_ok(&[
        "ip",
        "link",
        "add",
        &bad_bridge,
        "type",
        "veth",
        "peer",
        "name",
        &peer,
    ]);
    sb.start().await;
    let r = call(
        "STATUS",
        None,
        "",
        None,
        &conf(&sb, "1.1.0", "bad", json!({})),
    );
    assert_eq!(err_code(&r, "STATUS network not Ready"), 50);
    assert!(r.raw.contains("PHASE_"), "{}", r.raw);
    ok(call("DEL", Some(&x), "eth0", None, &cf), "DEL x");
    disconnect(&sb.client(), "web", "mine").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_networks_static_addresses_inspect_and_a_dead_namespace() {
    let sb = sandbox_with("cnimn", &[("a", "10.245.0.0/24"), ("b", "10.246.0.0/24")]).await;
    let c = sb.client();
    let k = Container::new(&sb, "k");
    let peer = Container::new(&sb, "p");
    // podman's way: IP and MAC only in CNI_ARGS; aliases and ports in runtimeConfig.
    let ca = conf(
        &sb,
        "1.0.0",
        "a",
        json!({"runtimeConfig": {"aliases": {"a": ["db"]},
            "portMappings": [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]},
            "dns": {"nameservers": ["192.0.2.53"], "search": ["corp.example"],
                    "options": ["ndots:1"]}}),
    );
    let args = "IgnoreUnknown=1;K8S_POD_NAME=web-0;K8S_POD_NAMESPACE=prod;IP=10.245.0.77;MAC=02:00:0a:f5:00:4d";
    let ra = ok(as_id("ADD", &k.id, k.netns(), "eth0", args, &ca), "ADD a");
    assert_eq!(ra["ips"][0]["address"], "10.245.0.77/24");
    assert_eq!(ra["interfaces"][1]["mac"], "02:00:0a:f5:00:4d");
    // weft's resolver for the network, the configuration's search and options.
    assert_eq!(
        ra["dns"],
        json!({"nameservers": ["10.245.0.1"], "search": ["corp.example"],
               "options": ["ndots:1"]})
    );
    let ep = &endpoints_of(&sb, "a", &k).await[0];
    assert_eq!(ep.aliases, vec!["db"]);
    // The `aliases` capability's name resolves on the network, with weft's resolver (the
    // result's nameserver), from another container on it; so does the namespace's name.
    let q = Container::new(&sb, "q");
    ok(
        call(
            "ADD",
            Some(&q),
            "eth0",
            None,
            &conf(&sb, "1.0.0", "a", json!({})),
        ),
        "ADD q to a",
    );
    let dig = |name: &str| {
        let out = exec_at(
            &q.path,
            &["dig", "+short", "+tries=1", "+time=2", "@10.245.0.1", name],
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(dig("db"), "10.245.0.77", "the CNI alias db from q");
    assert_eq!(
        dig(&format!("cni-{}", k.id)),
        "10.245.0.77",
        "k's namespace name"
    );
    assert_eq!(ep.published_ports.len(), 1);
    assert_eq!(ep.published_ports[0].host_port, 18080);
    let cb = conf(&sb, "1.0.0", "b", json!({}));
    let rb = ok(
        as_id("ADD", &k.id, k.netns(), "eth1", "IgnoreUnknown=1", &cb),
        "ADD b",
    );
    assert_eq!(rb["interfaces"][1]["name"], "eth1");
    assert_eq!(rb["dns"], json!({"nameservers": ["10.246.0.1"]}));
    // One namespace object, two interfaces.
    let nss = c
        .list_all_namespaces(tonic::Request::new(weft::v1::ListNamespacesRequest {
            label_selector: format!("cni.weft.dev/container-id={}", k.id),
            ..Default::default()
        }))
        .await
        .expect("list")
        .into_inner()
        .namespaces;
    assert_eq!(nss.len(), 1, "{nss:?}");
    assert_eq!(
        nss[0]
            .labels
            .get("cni.weft.dev/pod-name")
            .map(String::as_str),
        Some("web-0")
    );
    assert_eq!(
        nss[0]
            .labels
            .get("cni.weft.dev/pod-namespace")
            .map(String::as_str),
        Some("prod")
    );
    let inside =
        String::from_utf8_lossy(&exec_at(&k.path, &["ip", "-br", "link"]).stdout).into_owned();
    assert!(
        inside.contains("eth0") && inside.contains("eth1"),
        "{inside}"
    );
    // A peer on b reaches k's eth1.
    ok(call("ADD", Some(&peer), "eth0", None, &cb), "ADD peer");
    assert!(
        ping_at(&peer.path, &ipv4_of(&rb)),
        "peer cannot ping k on b"
    );

    // inspect shows the container id and interface of CNI endpoints.
    let out = sb.weft_cli(&["network", "inspect", "a"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("CNI containers:") && text.contains(&k.id),
        "{text}"
    );
    let out = sb.weft_cli(&["network", "inspect", "a", "--format", "json"]);
    let j: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        j[0]["endpoints"][0]["cni"],
        json!({"containerId": k.id, "ifname": "eth0"})
    );

    // DEL from a releases the published port; the namespace object stays for b.
    assert!(
        !dnat_elems(&sb).is_empty(),
        "no DNAT entry for hostPort 18080"
    );
    ok(call("DEL", Some(&k), "eth0", None, &ca), "DEL a");
    assert!(endpoints_of(&sb, "a", &k).await.is_empty());
    assert!(dnat_elems(&sb).is_empty(), "{:?}", dnat_elems(&sb));
    assert_eq!(endpoints_of(&sb, "b", &k).await.len(), 1);
    // The container dies (its namespace file goes) before its DEL: DEL still succeeds and
    // leaves nothing.
    let kid = k.id.clone();
    drop(k);
    let r = as_id("DEL", &kid, "", "eth1", "", &cb);
    ok(r, "DEL b after the namespace died");
    let left: Vec<_> = get_network(&c, "b")
        .await
        .endpoints
        .into_iter()
        .filter(|e| e.namespace == format!("cni-{kid}"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_no_object(&sb, &kid).await;
    ok(call("DEL", Some(&peer), "eth0", None, &cb), "DEL peer");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_life_without_del_gets_a_fresh_attachment() {
    // ctr sends no DEL after `ctr task kill` + `ctr container rm`: the next container with the
    // same id comes with another namespace file, and must get a working attachment.
    let sb = sandbox_with("cnilife", &[("web", "10.247.0.0/24")]).await;
    let c = sb.client();
    let first = Container::new(&sb, "l1");
    let peer = Container::new(&sb, "pe");
    let cf = conf(&sb, "1.0.0", "web", json!({}));
    let id = format!("{}ctr", sb.prefix);
    let add = |netns: &str| as_id("ADD", &id, netns, "eth0", "", &cf);
    ok(add(first.netns()), "ADD first life");
    ok(call("ADD", Some(&peer), "eth0", None, &cf), "ADD peer");
    drop(first);
    let second = Container::new(&sb, "l2");
    let r = ok(add(second.netns()), "ADD second life");
    assert_eq!(r["interfaces"][1]["sandbox"], second.netns());
    let mine: Vec<_> = get_network(&c, "web")
        .await
        .endpoints
        .into_iter()
        .filter(|e| e.namespace == format!("cni-{id}"))
        .collect();
    assert_eq!(mine.len(), 1, "{mine:?}");
    let peer_ip = addr_of(&endpoints_of(&sb, "web", &peer).await[0].ipv4_address).to_string();
    assert!(
        ping_at(&second.path, &peer_ip),
        "the second life cannot ping the peer"
    );
    ok(
        as_id("DEL", &id, second.netns(), "eth0", "", &cf),
        "DEL second life",
    );
    ok(call("DEL", Some(&peer), "eth0", None, &cf), "DEL peer");
    assert!(get_network(&c, "web").await.endpoints.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_deploy_conflists_work_as_shipped() {
    // libcni hands each plugin its entry of the list with the list's name and cniVersion.
    let sb = sandbox_with("cnidep", &[("web", "10.248.0.0/24")]).await;
    for file in ["weft-podman.conflist", "weft-containerd.conflist"] {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy")
            .join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        let list: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(list["cniVersion"], "1.0.0", "{file}");
        let mut plugin = list["plugins"][0].clone();
        assert_eq!(plugin["type"], "weft-cni", "{file}");
        assert_eq!(plugin["socket"], "/run/weft/weftd.sock", "{file}");
        plugin["name"] = list["name"].clone();
        plugin["cniVersion"] = list["cniVersion"].clone();
        // The sandbox's weftd instead of the real one; everything else as shipped.
        plugin["socket"] = json!(sb.socket().to_str().expect("utf-8"));
        let ctr = Container::new(&sb, &file[5..9]);
        let r = ok(call("ADD", Some(&ctr), "eth0", None, &plugin), file);
        assert!(
            r["ips"][0]["address"]
                .as_str()
                .is_some_and(|a| a.starts_with("10.248.0.")),
            "{r}"
        );
        ok(call("DEL", Some(&ctr), "eth0", None, &plugin), file);
    }
    assert!(get_network(&sb.client(), "web").await.endpoints.is_empty());
}
