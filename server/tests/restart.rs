//! Reconciliation over time: a restart and the periodic resync repair what was changed by
//! hand, and a restart of an already converged daemon changes nothing in the kernel.

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use weft::v1::Route;

/// How long a repair may take once its trigger (start-up or a resync tick) has happened.
const REPAIR_TIMEOUT: Duration = Duration::from_secs(15);

/// True when the seed pair is whole: both ends in place, up, with their addresses.
fn seed_is_whole(sb: &Sandbox) -> bool {
    let (Some(v1), Some(v2)) = (sb.link("ns1", "veth1"), sb.link("ns2", "veth2")) else {
        return false;
    };
    has_flag(&v1, "UP")
        && has_flag(&v2, "UP")
        && sb.addrs("ns1", "veth1") == ["192.168.1.10/24"]
        && sb.addrs("ns2", "veth2") == ["192.168.1.20/24"]
}

async fn seed(sb: &Sandbox) -> weft::v1::Link {
    let c = sb.client();
    create_ns(&c, "ns1").await;
    create_ns(&c, "ns2").await;
    let l = create_link(&c, seed_link()).await;
    assert!(seed_is_whole(sb), "the seed pair is not whole after create");
    l
}

/// Deletes veth1 by hand (which takes veth2 with it); returns veth1's old ifindex. (A running
/// weftd may put it back within milliseconds, so `ip link del` succeeding is the proof.)
fn delete_veth1_by_hand(sb: &Sandbox) -> serde_json::Value {
    let index = sb.must_link("ns1", "veth1")["ifindex"].clone();
    sb.ok_in("ns1", &["ip", "link", "del", "veth1"]);
    index
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_recreates_a_veth_deleted_while_stopped() {
    let mut sb = Sandbox::new("rstop").await;
    let link = seed(&sb).await;

    let status = sb.stop();
    assert!(status.success(), "weftd exited with {status} on SIGTERM");
    delete_veth1_by_hand(&sb);
    assert!(sb.link("ns1", "veth1").is_none());
    assert!(sb.link("ns2", "veth2").is_none(), "veth2 outlived its peer");
    assert!(!sb.ping("ns1", "192.168.1.20"));

    sb.start().await;
    wait_for(REPAIR_TIMEOUT, "veth1/veth2 back after the restart", || {
        seed_is_whole(&sb)
    })
    .await;
    let v1 = sb.must_link("ns1", "veth1");
    assert_eq!(
        ifalias(&v1),
        format!("weft:{}", link.uid),
        "same object, same mark"
    );
    sb.assert_ping("ns1", "192.168.1.20").await;
}

/// With `--resync 1`, the next resync (or weftd's netlink watcher, whichever is first) repairs
/// what was deleted by hand while it runs.
#[tokio::test(flavor = "multi_thread")]
async fn a_running_weftd_recreates_a_veth_deleted_by_hand() {
    let sb = Sandbox::builder("resync").resync(1).start().await;
    seed(&sb).await;

    let old = delete_veth1_by_hand(&sb);
    wait_for(REPAIR_TIMEOUT, "veth1/veth2 back while weftd runs", || {
        seed_is_whole(&sb) && sb.must_link("ns1", "veth1")["ifindex"] != old
    })
    .await;
    sb.assert_ping("ns1", "192.168.1.20").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_weftd_restores_an_address_and_the_admin_state() {
    let sb = Sandbox::builder("resaddr").resync(1).start().await;
    seed(&sb).await;
    let index = sb.must_link("ns1", "veth1")["ifindex"].clone();

    // Both commands succeeding is the proof they took effect; weftd may undo them at once.
    sb.ok_in(
        "ns1",
        &["ip", "addr", "del", "192.168.1.10/24", "dev", "veth1"],
    );
    sb.ok_in("ns2", &["ip", "link", "set", "veth2", "down"]);
    wait_for(REPAIR_TIMEOUT, "address and up state restored", || {
        seed_is_whole(&sb)
    })
    .await;
    assert_eq!(
        sb.must_link("ns1", "veth1")["ifindex"],
        index,
        "repaired by recreating instead of in place"
    );
    sb.assert_ping("ns1", "192.168.1.20").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_after_a_crash_recreates_a_namespace_removed_by_hand() {
    let mut sb = Sandbox::new("rcrash").await;
    seed(&sb).await;

    sb.kill9();
    // Remove ns2 the way `ip netns del` would: unmount and unlink. Its veth end dies with it,
    // and so does veth1 in ns1.
    let path = sb.ns_path("ns2");
    nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH).expect("umount ns2");
    fs::remove_file(&path).expect("rm ns2");
    wait_for(Duration::from_secs(10), "veth1 to die with ns2", || {
        sb.link("ns1", "veth1").is_none()
    })
    .await;

    sb.start().await;
    wait_for(
        REPAIR_TIMEOUT,
        "ns2 and the pair back after the restart",
        || sb.ns_path("ns2").exists() && seed_is_whole(&sb),
    )
    .await;
    assert!(
        mount_points().contains(&sb.ns_path("ns2")),
        "ns2 is no mount"
    );
    assert!(
        has_flag(&sb.must_link("ns2", "lo"), "UP"),
        "lo of the new ns2 is down"
    );
    sb.assert_ping("ns1", "192.168.1.20").await;
}

/// What a [`Monitor`] listens to.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Watch {
    /// `ip monitor link address route`.
    Netlink,
    /// `nft monitor`: every nftables change.
    Nftables,
}

/// A monitor of kernel changes running in one namespace, writing to a file.
struct Monitor {
    ns: String,
    watch: Watch,
    file: PathBuf,
    child: Child,
}

impl Monitor {
    fn start(sb: &Sandbox, ns: &str, watch: Watch) -> Monitor {
        let file = sb.dir().join(format!(
            "monitor-{watch:?}-{}.txt",
            if ns.is_empty() { "host" } else { ns }
        ));
        let out = fs::File::create(&file).expect("create monitor file");
        let args: &[&str] = match watch {
            Watch::Netlink => &["ip", "-ts", "monitor", "link", "address", "route"],
            Watch::Nftables => &["nft", "monitor"],
        };
        let child = Command::new("nsenter")
            .arg(format!("--net={}", sb.ns_path(ns).display()))
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn a monitor");
        Monitor {
            ns: ns.to_string(),
            watch,
            file,
            child,
        }
    }

    /// Makes and removes an object named `probe0` by hand, which the monitor reports.
    fn probe(&self, sb: &Sandbox) {
        match self.watch {
            Watch::Netlink => {
                sb.ok_in(&self.ns, &["ip", "link", "add", "probe0", "type", "bridge"]);
                sb.ok_in(&self.ns, &["ip", "link", "del", "probe0"]);
            }
            Watch::Nftables => {
                sb.ok_in(&self.ns, &["nft", "add", "table", "inet", "probe0"]);
                sb.ok_in(&self.ns, &["nft", "delete", "table", "inet", "probe0"]);
            }
        }
    }

    fn text(&self) -> String {
        fs::read_to_string(&self.file).unwrap_or_default()
    }

    /// Events (a line and its indented continuation lines) that do not mention `skip`, less
    /// nft's `# new generation` lines that only close a batch.
    fn events_without(&self, skip: &str) -> Vec<String> {
        let mut events: Vec<String> = Vec::new();
        for line in self.text().lines() {
            if line.starts_with(char::is_whitespace)
                && let Some(last) = events.last_mut()
            {
                last.push('\n');
                last.push_str(line);
                continue;
            }
            events.push(line.to_string());
        }
        events.retain(|e| !e.contains(skip) && !e.starts_with("# new generation"));
        events
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn converged_restart_changes_nothing_in_the_kernel() {
    let mut sb = Sandbox::builder("noop").resync(1).start().await;
    let c = sb.client();
    seed(&sb).await;
    // More kinds of state than the seed: a bridge with a port, IPv6, routes, MTU, a MAC.
    create_ns(&c, "ns3").await;
    create_link(&c, bridge("", "br0")).await;
    let mut port = veth(
        ("", "h3", &[]),
        ("ns3", "eth0", &["192.168.78.3/24", "fd00:78::3/64"]),
    );
    port.master = "br0".into();
    port.mtu = 1450;
    if let Some(weft::v1::link::Kind::Veth(v)) = port.kind.as_mut() {
        let peer = v.peer.as_mut().expect("peer");
        peer.mac_address = "02:00:5e:78:00:03".into();
        peer.routes = vec![Route {
            destination: "default".into(),
            gateway: "192.168.78.1".into(),
            metric: 0,
        }];
    }
    let mut br = bridge("", "br0");
    br.addresses = vec!["192.168.78.1/24".into()];
    create_link(&c, port).await;
    rpc(c.links().update_link(weft::v1::UpdateLinkRequest {
        dry_run: false,
        link: Some(br),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["addresses".into()],
        }),
        wait: None,
    }))
    .await
    .expect("UpdateLink br0 addresses");
    sb.assert_ping("ns3", "192.168.78.1").await;

    let nss = ["ns1", "ns2", "ns3"];
    let before = sb.settled_snapshot(&nss).await;

    // Watch for netlink changes in every namespace. A bridge made and deleted by hand proves
    // each monitor is listening before the restart; its events are ignored afterwards.
    let mut monitors: Vec<Monitor> = ["", "ns1", "ns2", "ns3"]
        .iter()
        .map(|ns| Monitor::start(&sb, ns, Watch::Netlink))
        .collect();
    monitors.push(Monitor::start(&sb, "", Watch::Nftables));
    wait_for(Duration::from_secs(10), "the monitors to listen", || {
        monitors.iter().all(|m| {
            m.probe(&sb);
            m.text().contains("probe0")
        })
    })
    .await;

    sb.restart().await;
    // Start-up reconciles everything; with --resync 1, three more passes run in this window.
    // Nothing of this must reach the kernel.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = sb.snapshot_all(&nss);

    for (ns, b) in &before {
        let a = &after[ns];
        assert!(
            a == b,
            "namespace {ns} changed across a converged restart:\n{}",
            json_diff(b, a)
        );
    }
    for m in &monitors {
        let events = m.events_without("probe0");
        assert!(
            events.is_empty(),
            "the restart wrote to the kernel ({:?}) in namespace {:?}:\n{}",
            m.watch,
            m.ns,
            events.join("\n")
        );
    }
    sb.assert_ping("ns1", "192.168.1.20").await;
}
