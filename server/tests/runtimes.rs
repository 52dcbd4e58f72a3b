//! weft-cni under the real container runtimes of Debian 12 (issue 11, "Proven with real
//! runtimes"): podman 4.3 with its CNI backend and containerd 1.6 with `ctr run --cni`, each with
//! a private configuration (common/runtimes.rs) against the test's own weftd and scratch host
//! namespace. Traffic goes only between the test's containers and its scratch host.
//!
//! What is proven: two podman containers on a weft network ping each other, `--ip` and
//! `--mac-address` give the static address and MAC; `-p 18080:80` reaches a busybox httpd from the scratch host; `podman rm -f`
//! and a `kill -9` of the container's process both leave no endpoint, no lease and no host
//! interface behind; `podman run --network a,b` gets one interface per network; a ctr container
//! gets an address, pings a podman container, and kill + rm (which sends no DEL) releases it
//! through weftd's dead-namespace handling, while a foreground `ctr run --cni` releases through
//! its DEL with an empty `CNI_NETNS`; a weftd restart while containers run changes nothing
//! in their networking.
mod common;
#[path = "common/net.rs"]
mod net;
#[path = "common/runtimes.rs"]
mod runtimes;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use net::*;
use runtimes::*;

/// How long a runtime's release (DEL, or a namespace's death) may take to show in weftd. The
/// issue asks for 2 s after the namespace dies; the bound is generous for a loaded 2-core
/// machine and the tests print what they measured.
const RELEASE_WITHIN: Duration = Duration::from_secs(8);

/// A sandbox, a weft network `<prefix>web` on `subnet` and a podman that knows it (same name).
async fn podman_on_network(tag: &str, subnet: &str) -> (Sandbox, Podman, String) {
    require_plugin();
    let sb = Sandbox::new(tag).await;
    let name = format!("{}web", sb.prefix);
    create_network(&sb.client(), network(&name, "", &[subnet])).await;
    let mut pm = Podman::new(&sb);
    pm.add_network(&weft_conflist(&name, &name, sb.socket()));
    (sb, pm, name)
}

/// Waits until network `net` has no endpoint, no lease and the host no `wv*` interface;
/// returns how long that took from `since`.
async fn wait_released(sb: &Sandbox, net: &str, since: Instant) -> Duration {
    wait_released_leaving(sb, net, since, 0).await
}

/// [`wait_released`] when `veths_left` host interfaces of other networks' endpoints stay.
async fn wait_released_leaving(
    sb: &Sandbox,
    net: &str,
    since: Instant,
    veths_left: usize,
) -> Duration {
    let deadline = Instant::now() + RELEASE_WITHIN;
    loop {
        let n = get_network(&sb.client(), net).await;
        let leased: u64 = n.usage.iter().map(|u| u.leased).sum();
        let veths = host_veths(sb);
        if n.endpoints.is_empty() && leased == 0 && veths.len() == veths_left {
            return since.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "network {net} still has endpoints {:?}, {leased} leases, host interfaces {veths:?} \
             {RELEASE_WITHIN:?} after the container went",
            n.endpoints
                .iter()
                .map(|e| format!("{} {}", e.namespace, e.ipv4_address))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Removes `"tentative"` flags (IPv6 DAD in progress) from `ip -j addr` output.
fn scrub_tentative(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.remove("tentative");
            m.values_mut().for_each(scrub_tentative);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(scrub_tentative),
        _ => {}
    }
}

/// The IPv4 address (no prefix) of `ifname` in container `name`; panics unless there is one.
#[track_caller]
fn addr_in(pm: &Podman, name: &str, ifname: &str) -> String {
    let addrs = pm.ipv4(name, ifname);
    let first = addrs
        .first()
        .unwrap_or_else(|| panic!("{name} has no IPv4 address on {ifname}"));
    first.split('/').next().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_containers_ping_each_other_and_ip_and_mac_are_kept() {
    let t0 = Instant::now();
    let (sb, pm, net) = podman_on_network("rtping", "10.77.1.0/24").await;
    pm.run_sleeper("a", &["--network", &net]);
    let mac = "02:aa:0a:4d:01:50";
    pm.run_sleeper(
        "b",
        &[
            "--network",
            &net,
            "--ip",
            "10.77.1.50",
            "--mac-address",
            mac,
        ],
    );
    assert_eq!(pm.ipv4("b", "eth0"), vec!["10.77.1.50/24"], "--ip");
    let link = pm.ip_json("b", &["link", "show", "eth0"]);
    assert_eq!(link[0]["address"], mac, "--mac-address");
    let a = addr_in(&pm, "a", "eth0");
    assert!(a.starts_with("10.77.1."), "a got {a}");
    let n = wait_endpoints_ready(&sb, &net, 2, Duration::from_secs(10)).await;
    let mut leased: Vec<_> = n.endpoints.iter().map(|e| e.ipv4_address.clone()).collect();
    leased.sort();
    let mut want = vec![format!("{a}/24"), "10.77.1.50/24".to_string()];
    want.sort();
    assert_eq!(leased, want, "weft's endpoints are the containers'");
    assert!(
        n.endpoints.iter().any(|e| e.mac_address == mac),
        "weft does not record b's MAC {mac}: {:?}",
        n.endpoints
    );
    assert!(
        pm.ping_within("a", "10.77.1.50", Duration::from_secs(5))
            .await,
        "a cannot ping b"
    );
    assert!(
        pm.ping_within("b", &a, Duration::from_secs(5)).await,
        "b cannot ping a"
    );
    eprintln!("measured: {:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_published_port_reaches_busybox_httpd_from_the_host() {
    let t0 = Instant::now();
    let (sb, pm, net) = podman_on_network("rtport", "10.77.2.0/24").await;
    pm.run_detached(
        "web",
        &["--network", &net, "-p", "18080:80"],
        &["httpd", "-f", "-p", "80", "-h", "/www"],
    );
    let n = wait_endpoints_ready(&sb, &net, 1, Duration::from_secs(10)).await;
    let ports = &n.endpoints[0].published_ports;
    assert_eq!(ports.len(), 1, "published ports {ports:?}");
    assert_eq!((ports[0].host_port, ports[0].container_port), (18080, 80));
    let gateway = n.endpoints[0].ipv4_gateway.clone();
    for host in ["127.0.0.1", gateway.as_str()] {
        let url = format!("http://{host}:18080/index.html");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // bash's /dev/tcp: static busybox's wget crashes outside its image (glibc NSS).
            let script = format!(
                "exec 3<>/dev/tcp/{host}/18080 && \
                 printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3"
            );
            let out = sb.exec_host(&["timeout", "3", "bash", "-c", &script]);
            let text = String::from_utf8_lossy(&out.stdout);
            if out.status.success() && text.starts_with("HTTP/1.") {
                assert!(
                    text.contains(" 200 ") && text.ends_with(INDEX_HTML),
                    "{url}: {text}"
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{url} from the scratch host: {} {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // Removing the container takes the mapping with it.
    pm.rm("web");
    wait_released(&sb, &net, Instant::now()).await;
    assert!(
        dnat_elems(&sb).values().all(Vec::is_empty),
        "DNAT entries left: {:?}",
        dnat_elems(&sb)
    );
    eprintln!("measured: {:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_rm_and_kill_9_leave_no_endpoint_and_no_lease() {
    let t0 = Instant::now();
    let (sb, pm, net) = podman_on_network("rtgone", "10.77.3.0/24").await;

    pm.run_sleeper("a", &["--network", &net]);
    wait_endpoints_ready(&sb, &net, 1, Duration::from_secs(10)).await;
    let since = Instant::now();
    pm.rm("a");
    let took = wait_released(&sb, &net, since).await;
    eprintln!("measured: podman rm -f released in {took:?}");
    assert!(pm.cached_results().is_empty(), "podman kept its CNI cache");

    pm.run_sleeper("b", &["--network", &net]);
    wait_endpoints_ready(&sb, &net, 1, Duration::from_secs(10)).await;
    let pid = pm.pid("b");
    let since = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9 the container's process");
    let took = wait_released(&sb, &net, since).await;
    eprintln!("measured: kill -9 released in {took:?}");
    // podman's later cleanup (its DEL) still succeeds: the container is stopped and clean.
    let state = pm.ok(&["inspect", "--format", "{{.State.Status}}", "b"]);
    assert_eq!(state, "exited");
    pm.rm("b");
    assert!(pm.cached_results().is_empty(), "podman kept its CNI cache");
    eprintln!("measured: {:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_run_with_two_networks_gets_two_interfaces() {
    let t0 = Instant::now();
    let (sb, mut pm, web) = podman_on_network("rttwo", "10.77.4.0/24").await;
    let db = format!("{}db", sb.prefix);
    create_network(&sb.client(), network(&db, "", &["10.77.5.0/24"])).await;
    pm.add_network(&weft_conflist(&db, &db, sb.socket()));
    pm.run_sleeper("a", &["--network", &format!("{web},{db}")]);
    pm.run_sleeper("b", &["--network", &db]);
    // podman names the interfaces in an order of its own (not always the order given):
    // one of eth0 and eth1 is on each network.
    let mut addrs = [addr_in(&pm, "a", "eth0"), addr_in(&pm, "a", "eth1")];
    addrs.sort();
    let [on_web, on_db] = addrs;
    assert!(on_web.starts_with("10.77.4."), "eth0/eth1 {on_web} {on_db}");
    assert!(on_db.starts_with("10.77.5."), "eth0/eth1 {on_web} {on_db}");
    let mut links: Vec<String> = pm
        .ip_json("a", &["link", "show"])
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["ifname"].as_str().map(str::to_string))
        .collect();
    links.sort();
    assert_eq!(links, ["eth0", "eth1", "lo"], "interfaces of a");
    // One adopted namespace with an endpoint on each network.
    let w = wait_endpoints_ready(&sb, &web, 1, Duration::from_secs(10)).await;
    let d = wait_endpoints_ready(&sb, &db, 2, Duration::from_secs(10)).await;
    let ns = &w.endpoints[0].namespace;
    assert!(
        d.endpoints.iter().any(|e| &e.namespace == ns),
        "a's namespace {ns} is not on {db}: {:?}",
        d.endpoints
    );
    assert!(
        pm.ping_within("b", &on_db, Duration::from_secs(5)).await,
        "b cannot ping a over {db}"
    );
    pm.rm("a");
    wait_released_leaving(&sb, &web, Instant::now(), 1).await;
    wait_endpoints_ready(&sb, &db, 1, Duration::from_secs(10)).await;
    eprintln!("measured: {:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctr_container_gets_an_address_pings_podman_and_kill_rm_releases_it() {
    let t0 = Instant::now();
    let (sb, pm, net) = podman_on_network("rtctr", "10.77.6.0/24").await;
    pm.run_sleeper("p", &["--network", &net, "--ip", "10.77.6.20"]);
    let cd = Containerd::start(&sb, &weft_conflist(&net, &net, sb.socket())).await;
    must("ctr run --cni", cd.run_cni("c1", &["sleep", "600"]));
    let pid = cd.pid("c1").expect("c1 runs");
    let inside = format!("/proc/{pid}/ns/net");
    let n = wait_endpoints_ready(&sb, &net, 2, Duration::from_secs(10)).await;
    let ctr_ep = n
        .endpoints
        .iter()
        .find(|e| e.ipv4_address != "10.77.6.20/24")
        .expect("the ctr container's endpoint");
    let addrs = ok_at(
        std::path::Path::new(&inside),
        &["ip", "-4", "-o", "addr", "show", "eth0"],
    );
    assert!(
        addrs.contains(&ctr_ep.ipv4_address),
        "eth0 of c1: {addrs} (weft leased {})",
        ctr_ep.ipv4_address
    );
    assert!(
        exec_at(
            std::path::Path::new(&inside),
            &["ping", "-c1", "-W2", "10.77.6.20"]
        )
        .status
        .success(),
        "the ctr container cannot ping the podman one"
    );
    // ctr sends no DEL after kill + rm: the namespace's death alone must release it (lease,
    // host end; the endpoint object may stay, Failed, until something deletes it).
    let since = Instant::now();
    cd.kill_and_rm("c1").await;
    let deadline = Instant::now() + RELEASE_WITHIN;
    loop {
        let n = get_network(&sb.client(), &net).await;
        let leased: u64 = n.usage.iter().map(|u| u.leased).sum();
        let ready = n
            .endpoints
            .iter()
            .filter(|e| e.status.as_ref().map(|s| s.phase()) == Some(weft::v1::Phase::Ready))
            .count();
        if ready == 1 && leased == 1 && host_veths(&sb).len() == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ctr container not released {RELEASE_WITHIN:?} after kill + rm: {:?}",
            n.endpoints
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("measured: ctr kill + rm released in {:?}", since.elapsed());

    // A foreground `ctr run --cni` pings from inside with the image's own ping, and sends DEL
    // with an empty CNI_NETNS when its task exits; ctr fails unless that DEL succeeds.
    let since = Instant::now();
    let out = cd.run_cni_foreground("c2", &["ping", "-c1", "-W2", "10.77.6.20"]);
    let text = must("ctr run --rm --cni (foreground ping)", out);
    assert!(text.contains("1 packets received"), "ping from c2: {text}");
    eprintln!(
        "measured: foreground ctr run + DEL in {:?}",
        since.elapsed()
    );
    let n = get_network(&sb.client(), &net).await;
    let leased: u64 = n.usage.iter().map(|u| u.leased).sum();
    assert_eq!(leased, 1, "c2's lease after its DEL: {:?}", n.endpoints);
    assert!(
        // ctr's container id is "<namespace>-<id>", so c2 is `cni-default-c2` (a bare
        // "c2" would also match podman's random hex ids).
        !n.endpoints.iter().any(|e| e.namespace == "cni-default-c2"),
        "c2's endpoint after its DEL: {:?}",
        n.endpoints
    );
    assert!(
        pm.ping_within("p", "10.77.6.1", Duration::from_secs(5))
            .await,
        "the podman container lost its network"
    );
    eprintln!("measured: {:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weftd_restart_changes_nothing_in_running_containers() {
    let t0 = Instant::now();
    let (mut sb, pm, net) = podman_on_network("rtrest", "10.77.7.0/24").await;
    pm.run_sleeper("a", &["--network", &net, "-p", "18081:80"]);
    pm.run_sleeper("b", &["--network", &net, "--ip", "10.77.7.50"]);
    let before = wait_endpoints_ready(&sb, &net, 2, Duration::from_secs(10)).await;
    assert!(
        pm.ping_within("a", "10.77.7.50", Duration::from_secs(5))
            .await
    );
    let snap = |pm: &Podman| {
        let mut v = serde_json::json!({
            "a": pm.ip_json("a", &["-d", "addr", "show"]),
            "b": pm.ip_json("b", &["-d", "addr", "show"]),
            "ar": pm.ip_json("a", &["route", "show"]),
        });
        scrub_volatile(&mut v);
        // IPv6 duplicate address detection of the link-local addresses ends by itself.
        scrub_tentative(&mut v);
        v
    };
    let inside_before = snap(&pm);
    let host_before = host_veths(&sb);
    // A ping runs all through the restart (25 probes, 0.2 s apart).
    let ping = pm
        .command(&[
            "exec",
            "a",
            "ping",
            "-c",
            "25",
            "-i",
            "0.2",
            "-W",
            "1",
            "10.77.7.50",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn podman exec ping");
    tokio::time::sleep(Duration::from_millis(500)).await;
    sb.restart().await;
    let out = ping.wait_with_output().expect("wait for the ping");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(" 0% packet loss"),
        "ping across the restart: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = wait_endpoints_ready(&sb, &net, 2, Duration::from_secs(10)).await;
    let key = |n: &weft::v1::Network| {
        let mut v: Vec<_> = n
            .endpoints
            .iter()
            .map(|e| {
                (
                    e.namespace.clone(),
                    e.ipv4_address.clone(),
                    e.mac_address.clone(),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        key(&before),
        key(&after),
        "endpoints changed over the restart"
    );
    let inside_after = snap(&pm);
    assert_eq!(
        inside_before,
        inside_after,
        "the containers' interfaces changed:\n{}",
        json_diff(&inside_before, &inside_after)
    );
    assert_eq!(host_before, host_veths(&sb), "host interfaces changed");
    eprintln!("measured: {:?}", t0.elapsed());
}
