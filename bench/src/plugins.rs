//! The methods that run a runtime's network plugins: the CNI ones as libcni runs them (one
//! process per plugin and command, `CNI_*` in the environment, the plugin's configuration on
//! stdin), and netavark as podman runs it.
//!
//! - `cni`: the reference `bridge` plugin alone, host-local IPAM, `ipMasq`.
//! - `cni+portmap`: the same, chained with `portmap` as podman chains it: ADD runs `bridge`
//!   then `portmap` (given `bridge`'s result as `prevResult`), DEL runs them in reverse; one
//!   port mapping per endpoint in `runtimeConfig`.
//! - `weft-cni`: weft's plugin against a weftd in the method's scratch host, doing the same
//!   work (adopt the namespace, Connect it with the same port mapping; DEL releases both).
//!   Besides ADD and DEL, each iteration times two calls that take its cost apart: VERSION
//!   (process start only) and STATUS (start, gRPC connect, one GetNetwork).
//! - `netavark`: `netavark setup` / `teardown` with the network and a static address on stdin.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, ensure};
use ipnet::{IpNet, Ipv4Net};
use serde_json::{Value, json};

use crate::{
    methods::{Cmds, Tools, WeftM, address, create_network, gateway},
    sandbox::{Cmd, Run, Weftd},
};

/// The host port of endpoint `i`'s port mapping (container port 80, TCP). The warm-up endpoint
/// (60,000) gets 40,000, clear of 20,000 + N for any N the bench runs.
pub fn host_port(i: usize) -> u16 {
    (20_000 + i % 40_000) as u16
}

/// The `runtimeConfig` a runtime sends for endpoint `i`: one port mapping.
fn runtime_config(i: usize) -> Value {
    json!({"portMappings": [{"hostPort": host_port(i), "containerPort": 80, "protocol": "tcp"}]})
}

/// Fails unless the firewall of the scratch host of `cmds` has endpoint `i`'s port mapping
/// (in `nft list ruleset`, which shows iptables-nft's rules too).
async fn check_port(cmds: &Cmds, i: usize) -> Result<()> {
    let rules = cmds
        .runner
        .ok(Cmd::new("nft").args(["list", "ruleset"]))
        .await?;
    let port = host_port(i);
    // portmap: a `tcp dport <port>` rule per mapping; weft: an element `tcp . <port> : ...`
    // of its dnat map.
    ensure!(
        rules.contains(&format!("dport {port} ")) || rules.contains(&format!(". {port} : ")),
        "endpoint {i}: no rule for host port {port} in the scratch host's firewall"
    );
    Ok(())
}

/// A plugin invocation for container `wbench-<i>`, interface `eth0`.
fn invoke(plugin: &Path, cni_path: &str, verb: &str, netns: &Path, i: usize, conf: &Value) -> Cmd {
    Cmd::new(plugin.display().to_string())
        .env("CNI_COMMAND", verb)
        .env("CNI_CONTAINERID", format!("wbench-{i}"))
        .env("CNI_NETNS", netns.display().to_string())
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", cni_path.to_string())
        .stdin(conf.to_string())
}

/// The first IPv4 address of a CNI result.
fn result_address(v: &Value) -> Option<Ipv4Net> {
    match v["ips"][0]["address"].as_str().map(str::parse::<IpNet>) {
        Some(Ok(IpNet::V4(a))) => Some(a),
        _ => None,
    }
}

/// `conf` with `extra`'s keys added.
fn with(conf: &Value, extra: Value) -> Value {
    let mut c = conf.clone();
    if let (Some(c), Value::Object(e)) = (c.as_object_mut(), extra) {
        c.extend(e);
    }
    c
}

/// The CNI bridge plugin (Debian's containernetworking-plugins) with host-local IPAM (its
/// data in the temp dir) and ipMasq, optionally chained with `portmap`.
pub struct CniM {
    /// Namespaces and the runner in the scratch host.
    pub cmds: Cmds,
    bridge: PathBuf,
    portmap: Option<PathBuf>,
    cni_path: String,
    config: Value,
    /// `bridge`'s ADD result per endpoint: the `prevResult` of later calls, as libcni caches it.
    results: HashMap<usize, Value>,
}

impl CniM {
    /// The bridge network `wbench` on `wbr`, and `portmap` if `portmap`.
    pub fn setup(
        run: &Run,
        tools: &Tools,
        host: &Path,
        subnet: Ipv4Net,
        portmap: bool,
    ) -> Result<Self> {
        let bridge = tools.cni_dir.join("bridge");
        let pm = tools.cni_dir.join("portmap");
        for p in std::iter::once(&bridge).chain(portmap.then_some(&pm)) {
            ensure!(
                p.exists(),
                "{} is missing (Debian package containernetworking-plugins)",
                p.display()
            );
        }
        let config = json!({
            "cniVersion": "1.0.0",
            "name": "wbench",
            "type": "bridge",
            "bridge": "wbr",
            "isGateway": true,
            "ipMasq": true,
            "ipam": {
                "type": "host-local",
                "subnet": subnet.to_string(),
                "gateway": gateway(subnet).to_string(),
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": run.subdir(&format!("cni-ipam-{}", subnet.network()))?,
            },
        });
        let letter = if portmap { "p" } else { "c" };
        Ok(Self {
            cmds: Cmds::new(run, host, letter, subnet)?,
            bridge,
            portmap: portmap.then_some(pm),
            cni_path: tools.cni_dir.display().to_string(),
            config,
            results: HashMap::new(),
        })
    }

    /// The address endpoint `i` got.
    pub fn address_of(&self, i: usize) -> Option<Ipv4Net> {
        self.results.get(&i).and_then(result_address)
    }

    fn portmap_conf(&self, prev: &Value, i: usize) -> Value {
        json!({
            "cniVersion": "1.0.0",
            "name": "wbench",
            "type": "portmap",
            "capabilities": {"portMappings": true},
            "runtimeConfig": runtime_config(i),
            "prevResult": prev,
        })
    }

    async fn call(&self, plugin: &Path, verb: &str, i: usize, conf: &Value) -> Result<String> {
        let cmd = invoke(plugin, &self.cni_path, verb, &self.cmds.path(i), i, conf);
        self.cmds.runner.ok(cmd).await
    }

    /// Checks endpoint `i`'s port mapping (chained with portmap only).
    pub async fn check_port(&self, i: usize) -> Result<()> {
        match self.portmap {
            Some(_) => check_port(&self.cmds, i).await,
            None => Ok(()),
        }
    }

    /// ADD: `bridge`, then `portmap` with `bridge`'s result.
    pub async fn connect(&mut self, i: usize) -> Result<()> {
        let out = self.call(&self.bridge, "ADD", i, &self.config).await?;
        let v: Value =
            serde_json::from_str(&out).with_context(|| format!("bridge ADD answered {out}"))?;
        if let Some(pm) = &self.portmap {
            self.call(pm, "ADD", i, &self.portmap_conf(&v, i))
                .await
                .context("portmap ADD")?;
        }
        self.results.insert(i, v);
        Ok(())
    }

    /// DEL: `portmap`, then `bridge` (with the cached result when chained, as libcni does).
    pub async fn disconnect(&mut self, i: usize) -> Result<()> {
        let prev = self.results.remove(&i).unwrap_or(Value::Null);
        if let Some(pm) = &self.portmap {
            self.call(pm, "DEL", i, &self.portmap_conf(&prev, i))
                .await
                .context("portmap DEL")?;
            let conf = with(&self.config, json!({"prevResult": prev}));
            self.call(&self.bridge, "DEL", i, &conf).await?;
        } else {
            self.call(&self.bridge, "DEL", i, &self.config).await?;
        }
        Ok(())
    }
}

/// weft-cni against its own weftd, network `bench` on `wbr`.
pub struct WeftCniM {
    /// The daemon.
    pub weftd: Weftd,
    /// Namespaces and the runner in the scratch host.
    pub cmds: Cmds,
    plugin: PathBuf,
    config: Value,
    results: HashMap<usize, Value>,
}

impl WeftCniM {
    /// Starts weftd in `host` and creates the network.
    pub async fn setup(run: &Run, tools: &Tools, host: &Path, subnet: Ipv4Net) -> Result<Self> {
        ensure!(
            tools.weft_cni.exists(),
            "{} is missing (cargo build --release -p weft --bins)",
            tools.weft_cni.display()
        );
        let mut weftd = Weftd::new(&tools.weftd, host, run.subdir("weft-cni")?)?;
        weftd.start().await?;
        create_network(&weftd.client()?, WeftM::NETWORK, "wbr", subnet).await?;
        let config = json!({
            "cniVersion": "1.0.0",
            "name": "wbench",
            "type": "weft-cni",
            "network": WeftM::NETWORK,
            "socket": weftd.socket().display().to_string(),
            "capabilities": {"portMappings": true},
        });
        Ok(Self {
            cmds: Cmds::new(run, host, "k", subnet)?,
            weftd,
            plugin: tools.weft_cni.clone(),
            config,
            results: HashMap::new(),
        })
    }

    /// The address endpoint `i` got.
    pub fn address_of(&self, i: usize) -> Option<Ipv4Net> {
        self.results.get(&i).and_then(result_address)
    }

    async fn call(&self, verb: &str, i: usize, conf: &Value) -> Result<String> {
        let cmd = invoke(&self.plugin, "", verb, &self.cmds.path(i), i, conf);
        self.cmds.runner.ok(cmd).await
    }

    /// Checks endpoint `i`'s port mapping.
    pub async fn check_port(&self, i: usize) -> Result<()> {
        check_port(&self.cmds, i).await
    }

    /// ADD with one port mapping.
    pub async fn connect(&mut self, i: usize) -> Result<()> {
        let conf = with(&self.config, json!({"runtimeConfig": runtime_config(i)}));
        let out = self.call("ADD", i, &conf).await?;
        let v: Value =
            serde_json::from_str(&out).with_context(|| format!("weft-cni ADD answered {out}"))?;
        self.results.insert(i, v);
        Ok(())
    }

    /// DEL with the cached result, as a runtime sends it.
    pub async fn disconnect(&mut self, i: usize) -> Result<()> {
        let prev = self.results.remove(&i).unwrap_or(Value::Null);
        let conf = with(
            &self.config,
            json!({"runtimeConfig": runtime_config(i), "prevResult": prev}),
        );
        self.call("DEL", i, &conf).await?;
        Ok(())
    }

    /// Times VERSION (the process alone) and STATUS (process, gRPC connect, one GetNetwork).
    pub async fn probes(&mut self, i: usize) -> Result<[Duration; 2]> {
        let conf = with(&self.config, json!({"cniVersion": "1.1.0"}));
        let t = Instant::now();
        self.call("VERSION", i, &conf).await?;
        let version = t.elapsed();
        let t = Instant::now();
        self.call("STATUS", i, &conf).await?;
        Ok([version, t.elapsed()])
    }
}

/// netavark (Debian's 1.4, iptables driver), given the network and a static address on stdin
/// as podman gives them.
pub struct NetavarkM {
    /// Namespaces and the runner in the scratch host.
    pub cmds: Cmds,
    bin: PathBuf,
    config_dir: PathBuf,
}

impl NetavarkM {
    /// Checks netavark is there; its config dir in the temp dir.
    pub fn setup(run: &Run, tools: &Tools, host: &Path, subnet: Ipv4Net) -> Result<Self> {
        ensure!(
            tools.netavark.exists(),
            "{} is missing (Debian package netavark)",
            tools.netavark.display()
        );
        Ok(Self {
            cmds: Cmds::new(run, host, "n", subnet)?,
            bin: tools.netavark.clone(),
            config_dir: run.subdir("netavark")?,
        })
    }

    fn options(&self, i: usize) -> String {
        let s = self.cmds.subnet();
        json!({
            "container_id": format!("wbench{i:058}"),
            "container_name": format!("wbench-{i}"),
            "networks": {
                "wbench": {
                    "interface_name": "eth0",
                    "static_ips": [address(s, i).addr().to_string()],
                }
            },
            "network_info": {
                "wbench": {
                    "dns_enabled": false,
                    "driver": "bridge",
                    "id": "7765667462656e636800000000000000000000000000000000000000000000ff",
                    "internal": false,
                    "ipv6_enabled": false,
                    "name": "wbench",
                    "network_interface": "wbr",
                    "subnets": [{"subnet": s.to_string(), "gateway": gateway(s).to_string()}],
                }
            },
            "port_mappings": null,
        })
        .to_string()
    }

    async fn run(&self, verb: &str, i: usize) -> Result<()> {
        let cmd = Cmd::new(self.bin.display().to_string())
            .args([
                "--config".to_string(),
                self.config_dir.display().to_string(),
                verb.to_string(),
                self.cmds.path(i).display().to_string(),
            ])
            .stdin(self.options(i));
        self.cmds.runner.ok(cmd).await?;
        Ok(())
    }

    /// `netavark setup`.
    pub async fn connect(&mut self, i: usize) -> Result<()> {
        self.run("setup", i).await
    }

    /// `netavark teardown`.
    pub async fn disconnect(&mut self, i: usize) -> Result<()> {
        self.run("teardown", i).await
    }
}
