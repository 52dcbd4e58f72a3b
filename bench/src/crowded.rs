//! Checking an endpoint on a crowded bridge: one with at least as many ports as the kernel's
//! per-CPU receive backlog holds (`net.core.netdev_max_backlog`, 1,000 by default). A
//! broadcast there (an ARP request for the gateway) is cloned to every port within one
//! softirq, each copy queued on the backlog of the port's peer, and the copies past the
//! backlog are dropped, among them the gateway's ARP reply to the querier, which queues
//! behind them: every bridge-based method fails its ping at N = 1,000 (1,001 ports with the
//! warm-up endpoint) on every try, weft and the in-process floor alike (BENCHMARKS.md,
//! "Surprises"). There the check seeds both neighbour entries (the endpoint's for its
//! gateway, the host's for the endpoint, in the bench's own namespaces), pings over unicast
//! alone, and removes the entries again: that still proves the port, the address and the
//! route, and says so.

use std::{net::Ipv4Addr, path::Path, process::Command};

use anyhow::{Context, Result, anyhow};

use crate::sandbox::run_ok;

/// An endpoint's host side when its bridge is crowded.
#[derive(Debug)]
pub struct Crowded {
    /// The named namespace of the endpoint's host.
    host: String,
    /// The bridge holding the gateway address.
    bridge: String,
    /// Its ports.
    pub ports: usize,
    /// `net.core.netdev_max_backlog`.
    pub backlog: usize,
}

/// The token after `key` in `text` (`ip -o` output: a `\\` ends each folded line).
fn after<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let mut words = text.split_whitespace();
    words.find(|w| *w == key)?;
    words.next().map(|w| w.trim_end_matches('\\'))
}

/// Where the endpoint in namespace file `ns` (interface `eth0`, gateway `gw`) is bridged,
/// when that bridge has at least as many ports as the backlog holds; None otherwise.
pub fn crowded(ns: &Path, gw: Ipv4Addr) -> Result<Option<Crowded>> {
    let net = format!("--net={}", ns.display());
    let eth0 = run_ok(Command::new("nsenter").args([&net, "ip", "-o", "link", "show", "eth0"]))?;
    let host = after(&eth0, "link-netns")
        .ok_or_else(|| anyhow!("eth0's peer is in no named namespace: {eth0}"))?
        .to_string();
    let owner = run_ok(Command::new("ip").args([
        "-n",
        &host,
        "-o",
        "-4",
        "addr",
        "show",
        "to",
        &format!("{gw}/32"),
    ]))?;
    let bridge = owner
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow!("no interface in {host} holds {gw}"))?
        .to_string();
    let ports =
        run_ok(Command::new("ip").args(["-n", &host, "-o", "link", "show", "master", &bridge]))?
            .lines()
            .count();
    let backlog: usize = std::fs::read_to_string("/proc/sys/net/core/netdev_max_backlog")
        .context("read netdev_max_backlog")?
        .trim()
        .parse()
        .context("parse netdev_max_backlog")?;
    Ok((ports >= backlog).then_some(Crowded {
        host,
        bridge,
        ports,
        backlog,
    }))
}

impl Crowded {
    /// Pings `gw` from the endpoint in `ns` (address `addr`) with both neighbour entries
    /// seeded, then removes them.
    pub fn seeded_ping(&self, ns: &Path, gw: Ipv4Addr, addr: Ipv4Addr) -> Result<()> {
        let net = format!("--net={}", ns.display());
        let mac_of = |out: String| {
            after(&out, "link/ether")
                .map(str::to_string)
                .ok_or_else(|| anyhow!("no MAC in {out}"))
        };
        let gw_mac = mac_of(run_ok(Command::new("ip").args([
            "-n",
            &self.host,
            "-o",
            "link",
            "show",
            &self.bridge,
        ]))?)?;
        let ep_mac = mac_of(run_ok(
            Command::new("nsenter").args([&net, "ip", "-o", "link", "show", "eth0"]),
        )?)?;
        let (gw, addr) = (gw.to_string(), addr.to_string());
        let seed_ep = [
            "ip", "neigh", "replace", &gw, "lladdr", &gw_mac, "dev", "eth0",
        ];
        run_ok(
            Command::new("nsenter")
                .arg(&net)
                .args(seed_ep)
                .args(["nud", "permanent"]),
        )?;
        let seed_host = [
            "neigh",
            "replace",
            &addr,
            "lladdr",
            &ep_mac,
            "dev",
            &self.bridge,
        ];
        let seeded = run_ok(
            Command::new("ip")
                .args(["-n", &self.host])
                .args(seed_host)
                .args(["nud", "permanent"]),
        )
        .and_then(|_| {
            run_ok(Command::new("nsenter").args([&net, "ping", "-q", "-c1", "-W2", &gw]))
        });
        let _ =
            run_ok(Command::new("nsenter").args([&net, "ip", "neigh", "del", &gw, "dev", "eth0"]));
        let _ = run_ok(Command::new("ip").args([
            "-n",
            &self.host,
            "neigh",
            "del",
            &addr,
            "dev",
            &self.bridge,
        ]));
        seeded.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_after_keys() {
        let line = "2: eth0@if4: <UP> mtu 1500 qdisc noqueue state UP \\    link/ether 02:42:0a:c8:00:03 brd ff:ff:ff:ff:ff:ff link-netns wbench1-h-weft\\    alias weft:1";
        assert_eq!(after(line, "link-netns"), Some("wbench1-h-weft"));
        assert_eq!(after(line, "link/ether"), Some("02:42:0a:c8:00:03"));
        assert_eq!(after(line, "alias"), Some("weft:1"));
        assert_eq!(after(line, "master"), None);
    }
}
