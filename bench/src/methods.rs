//! The ways of doing the same work, each in its own scratch host namespace: N namespaces,
//! each connected to one bridge network with an address, a default route and masquerade
//! (`weft-cni` and `cni+portmap` also publish one port per endpoint; see [`crate::plugins`]).
//!
//! | method | namespace create/delete | connect | disconnect |
//! | --- | --- | --- | --- |
//! | weft | `CreateNamespace`/`DeleteNamespace` | `Connect` | `Disconnect` |
//! | floor | [`Kernel::create_named_netns`] | veth with the peer born inside, IPv6 off on both ends, bridge port, up, address, up, default route; in-process netlink | [`Kernel::delete_link`] |
//! | floor+grpc | as floor | the floor's connect in a server of its own, called over gRPC ([`crate::floor_grpc`]) | the floor's, over gRPC |
//! | ip | `ip netns add` + `ip -n X link set lo up` / `ip netns del` | 8 commands: veth, move, rename, address, up, route, master+up, `nft` masquerade rule | `nft delete rule`, `ip link del` |
//! | cni | as ip | the `bridge` plugin, `CNI_COMMAND=ADD`, host-local IPAM, `ipMasq` | `CNI_COMMAND=DEL` |
//! | netavark | as ip | `netavark setup` (Debian's, iptables) | `netavark teardown` |
//! | weft-cni | as ip | `weft-cni` ADD (adopt + Connect), one port mapping | `weft-cni` DEL |
//! | cni+portmap | as ip | `bridge` ADD then `portmap` ADD, one port mapping | `portmap` DEL then `bridge` DEL |
//!
//! weft is measured end to end: gRPC over weftd's Unix socket through the `weft` client
//! library, each call waiting for Ready (the default). Method `k` uses subnet
//! `10.(200+k).0.0/16` with gateway `.0.1` on a bridge `wbr` in its own scratch host.

use std::{
    collections::HashMap,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context, Result, anyhow, bail, ensure};
use ipnet::{IpNet, Ipv4Net};
use weft::v1::{
    ConnectRequest, CreateNamespaceRequest, CreateNetworkRequest, DeleteNamespaceRequest,
    DisconnectRequest, Namespace, Network, Phase, Status, Subnet,
};
use weftd::kernel::prelude::*;
use weftd::kernel::{Kernel, LinkChange, NsRef, RouteState, firewall::FirewallNetwork};

use crate::floor_grpc::FloorGrpcM;
use crate::plugins::{CniM, NetavarkM, WeftCniM};
use crate::sandbox::{Cmd, NsRunner, Run, Weftd, check_stop, run_ok};
use crate::stats::Samples;

/// The methods, in table order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// weftd end to end.
    Weft,
    /// In-process netlink through `weftd::kernel::Kernel`, peer born in its namespace.
    Floor,
    /// The floor's connect behind a minimal gRPC server of its own.
    FloorGrpc,
    /// Plain `ip` and `nft` commands.
    Ip,
    /// The CNI bridge plugin with host-local IPAM and ipMasq.
    Cni,
    /// netavark.
    Netavark,
    /// The `weft-cni` plugin against weftd, one port mapping per endpoint.
    WeftCni,
    /// The CNI bridge plugin chained with `portmap`, one port mapping per endpoint.
    CniPortmap,
}

impl Kind {
    /// Every method, in table order.
    pub const ALL: [Kind; 8] = [
        Kind::Weft,
        Kind::Floor,
        Kind::FloorGrpc,
        Kind::Ip,
        Kind::Cni,
        Kind::Netavark,
        Kind::WeftCni,
        Kind::CniPortmap,
    ];

    /// The method's name in tables and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Weft => "weft",
            Kind::Floor => "floor",
            Kind::FloorGrpc => "floor+grpc",
            Kind::Ip => "ip",
            Kind::Cni => "cni",
            Kind::Netavark => "netavark",
            Kind::WeftCni => "weft-cni",
            Kind::CniPortmap => "cni+portmap",
        }
    }

    /// Parses a name given by [`Kind::name`].
    pub fn parse(s: &str) -> Result<Self> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                anyhow!(
                    "unknown method {s:?} (weft, floor, floor+grpc, ip, cni, netavark, weft-cni, \
                     cni+portmap)"
                )
            })
    }

    fn index(self) -> u8 {
        Kind::ALL.iter().position(|k| *k == self).expect("listed") as u8
    }

    /// The method's subnet.
    pub fn subnet(self) -> Ipv4Net {
        Ipv4Net::new(Ipv4Addr::new(10, 200 + self.index(), 0, 0), 16).expect("valid")
    }
}

/// Where the peers' binaries are.
#[derive(Clone, Debug)]
pub struct Tools {
    /// weftd.
    pub weftd: PathBuf,
    /// netavark (Debian: /usr/lib/podman/netavark).
    pub netavark: PathBuf,
    /// The CNI plugin directory (Debian: /usr/lib/cni).
    pub cni_dir: PathBuf,
    /// weft's CNI plugin, `weft-cni`.
    pub weft_cni: PathBuf,
}

/// The gateway of a subnet: its first address.
pub fn gateway(subnet: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()) + 1)
}

/// The address of endpoint `i`: gateway + 1 + i.
pub fn address(subnet: Ipv4Net, i: usize) -> Ipv4Net {
    let a = Ipv4Addr::from(u32::from(subnet.network()) + 2 + i as u32);
    Ipv4Net::new(a, subnet.prefix_len()).expect("valid")
}

/// Fails unless a status says Ready.
pub fn ready(what: &str, status: Option<&Status>) -> Result<()> {
    let s = status.ok_or_else(|| anyhow!("{what}: no status"))?;
    match s.phase() {
        Phase::Ready => Ok(()),
        Phase::Pending if s.message.is_empty() => bail!(
            "{what}: still Pending when weftd answered (its wait for Ready, 30 s by default, \
             ran out first)"
        ),
        p => bail!("{what}: {p:?}: {}", s.message),
    }
}

/// One method, set up in its own scratch host namespace.
pub enum Method {
    /// weftd end to end.
    Weft(WeftM),
    /// The in-process floor.
    Floor(FloorM),
    /// The floor behind gRPC.
    FloorGrpc(FloorGrpcM),
    /// ip commands.
    Ip(IpM),
    /// The CNI bridge plugin, alone or chained with portmap.
    Cni(CniM),
    /// weft-cni against weftd.
    WeftCni(WeftCniM),
    /// netavark.
    Netavark(NetavarkM),
}

impl Method {
    /// Makes the method's scratch host and whatever it needs before the first endpoint
    /// (weftd and its network, the bridge of ip and floor, configuration files).
    pub async fn setup(kind: Kind, run: &Run, tools: &Tools) -> Result<Self> {
        let host = run.scratch_ns(&format!("h-{}", kind.name()))?;
        Ok(match kind {
            Kind::Weft => Method::Weft(WeftM::setup(run, tools, &host, kind.subnet()).await?),
            Kind::Floor => Method::Floor(FloorM::setup(run, &host, kind.subnet()).await?),
            Kind::FloorGrpc => {
                Method::FloorGrpc(FloorGrpcM::setup(run, &host, kind.subnet()).await?)
            }
            Kind::Ip => Method::Ip(IpM::setup(run, &host, kind.subnet()).await?),
            Kind::Cni | Kind::CniPortmap => Method::Cni(CniM::setup(
                run,
                tools,
                &host,
                kind.subnet(),
                kind == Kind::CniPortmap,
            )?),
            Kind::WeftCni => {
                Method::WeftCni(WeftCniM::setup(run, tools, &host, kind.subnet()).await?)
            }
            Kind::Netavark => Method::Netavark(NetavarkM::setup(run, tools, &host, kind.subnet())?),
        })
    }

    /// Creates namespace `i`.
    pub async fn ns_create(&mut self, i: usize) -> Result<()> {
        match self {
            Method::Weft(m) => m.ns_create(i).await,
            Method::Floor(m) => m.ns_create(i).await,
            Method::FloorGrpc(m) => m.ns_create(i).await,
            Method::Ip(m) => m.cmds.ns_create(i).await,
            Method::Cni(m) => m.cmds.ns_create(i).await,
            Method::WeftCni(m) => m.cmds.ns_create(i).await,
            Method::Netavark(m) => m.cmds.ns_create(i).await,
        }
    }

    /// Connects namespace `i` to the method's network.
    pub async fn connect(&mut self, i: usize) -> Result<()> {
        match self {
            Method::Weft(m) => m.connect(i).await,
            Method::Floor(m) => m.connect(i).await,
            Method::FloorGrpc(m) => m.connect(i).await,
            Method::Ip(m) => m.connect(i).await,
            Method::Cni(m) => m.connect(i).await,
            Method::WeftCni(m) => m.connect(i).await,
            Method::Netavark(m) => m.connect(i).await,
        }
    }

    /// Disconnects namespace `i`.
    pub async fn disconnect(&mut self, i: usize) -> Result<()> {
        match self {
            Method::Weft(m) => m.disconnect(i).await,
            Method::Floor(m) => m.disconnect(i).await,
            Method::FloorGrpc(m) => m.disconnect(i).await,
            Method::Ip(m) => m.disconnect(i).await,
            Method::Cni(m) => m.disconnect(i).await,
            Method::WeftCni(m) => m.disconnect(i).await,
            Method::Netavark(m) => m.disconnect(i).await,
        }
    }

    /// Deletes namespace `i`.
    pub async fn ns_delete(&mut self, i: usize) -> Result<()> {
        match self {
            Method::Weft(m) => m.ns_delete(i).await,
            Method::Floor(m) => m.ns_delete(i).await,
            Method::FloorGrpc(m) => m.ns_delete(i).await,
            Method::Ip(m) => m.cmds.ns_delete(i).await,
            Method::Cni(m) => m.cmds.ns_delete(i).await,
            Method::WeftCni(m) => m.cmds.ns_delete(i).await,
            Method::Netavark(m) => m.cmds.ns_delete(i).await,
        }
    }

    /// The file of namespace `i`.
    pub fn ns_path(&self, i: usize) -> PathBuf {
        match self {
            Method::Weft(m) => m.weftd.netns_dir().join(WeftM::name(i)),
            Method::Floor(m) => m.kernel.named_netns_path(&FloorM::name(i)),
            Method::FloorGrpc(m) => m.ns_path(i),
            Method::Ip(m) => m.cmds.path(i),
            Method::Cni(m) => m.cmds.path(i),
            Method::WeftCni(m) => m.cmds.path(i),
            Method::Netavark(m) => m.cmds.path(i),
        }
    }

    /// The address endpoint `i` should have.
    pub fn address_of(&self, i: usize) -> Option<Ipv4Net> {
        match self {
            Method::Cni(m) => m.address_of(i),
            Method::WeftCni(m) => m.address_of(i),
            Method::Weft(m) => m.leases.get(&i).copied(),
            Method::Floor(m) => Some(address(m.subnet, i)),
            Method::FloorGrpc(m) => Some(address(m.subnet, i)),
            Method::Ip(m) => Some(address(m.cmds.subnet, i)),
            Method::Netavark(m) => Some(address(m.cmds.subnet, i)),
        }
    }

    /// Checks, outside the timing, that endpoint `i` works: `eth0` has its address and a
    /// default route via the gateway, and the gateway answers a ping (traffic that stays inside
    /// the bench's own namespaces).
    pub fn verify(&self, kind: Kind, i: usize) -> Result<()> {
        let path = self.ns_path(i);
        let net = format!("--net={}", path.display());
        let gw = gateway(kind.subnet()).to_string();
        let addrs = run_ok(
            Command::new("nsenter").args([&net, "ip", "-4", "-o", "addr", "show", "dev", "eth0"]),
        )?;
        if let Some(a) = self.address_of(i) {
            ensure!(
                addrs.contains(&format!("inet {a} ")),
                "{}: endpoint {i} has no {a} on eth0: {addrs}",
                kind.name()
            );
        }
        let routes =
            run_ok(Command::new("nsenter").args([&net, "ip", "route", "show", "default"]))?;
        ensure!(
            routes.contains(&format!("via {gw} ")),
            "{}: endpoint {i} has no default route via {gw}: {routes}",
            kind.name()
        );
        // A bridge with a thousand ports drops the odd packet (every new port's IPv6 chatter
        // floods all of them; see KERNEL-NOTES): a few tries, as the integration tests do.
        let mut last = None;
        for _ in 0..3 {
            match run_ok(Command::new("nsenter").args([&net, "ping", "-q", "-c1", "-W2", &gw])) {
                Ok(_) => return Ok(()),
                Err(e) => last = Some(e),
            }
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        let failed = || format!("{}: ping from endpoint {i} to {gw}, 3 tries", kind.name());
        let gw_ip = gateway(kind.subnet());
        // A failure to tell whether the bridge is crowded leaves the ping's own error.
        let crowd = crate::crowded::crowded(&path, gw_ip).ok().flatten();
        let (Some(crowd), Some(a)) = (crowd, self.address_of(i)) else {
            return Err(last.expect("tried")).with_context(failed);
        };
        crowd
            .seeded_ping(&path, gw_ip, a.addr())
            .with_context(|| format!("{}, and with both neighbours seeded", failed()))?;
        eprintln!(
            "  {}: endpoint {i} answers over unicast; its ARP broadcast got no answer on a \
             bridge of {} ports (backlog {}: see crowded.rs)",
            kind.name(),
            crowd.ports,
            crowd.backlog
        );
        Ok(())
    }

    /// Checks, outside the timing, that endpoint `i`'s port mapping is in its host's firewall
    /// (the methods that map a port).
    pub async fn check_port(&self, i: usize) -> Result<()> {
        match self {
            Method::Cni(m) => m.check_port(i).await,
            Method::WeftCni(m) => m.check_port(i).await,
            _ => Ok(()),
        }
    }

    /// Fails if the method's daemon (weftd) died.
    pub fn check_alive(&mut self) -> Result<()> {
        match self {
            Method::Weft(m) => m.weftd.check_alive(),
            Method::WeftCni(m) => m.weftd.check_alive(),
            Method::FloorGrpc(m) => m.check_alive(),
            _ => Ok(()),
        }
    }
}

/// weft end to end.
pub struct WeftM {
    /// The daemon.
    pub weftd: Weftd,
    client: weft::Client,
    leases: HashMap<usize, Ipv4Net>,
}

impl WeftM {
    /// The network's name.
    pub const NETWORK: &'static str = "bench";

    async fn setup(run: &Run, tools: &Tools, host: &Path, subnet: Ipv4Net) -> Result<Self> {
        let mut weftd = Weftd::new(&tools.weftd, host, run.subdir("weft")?)?;
        weftd.start().await?;
        let client = weftd.client()?;
        create_network(&client, Self::NETWORK, "wbr", subnet).await?;
        Ok(Self {
            weftd,
            client,
            leases: HashMap::new(),
        })
    }

    fn name(i: usize) -> String {
        format!("w{i}")
    }

    async fn ns_create(&mut self, i: usize) -> Result<()> {
        create_namespace(&self.client, &Self::name(i)).await
    }

    async fn connect(&mut self, i: usize) -> Result<()> {
        let ep = connect(&self.client, Self::NETWORK, &Self::name(i), Vec::new()).await?;
        if let Ok(IpNet::V4(a)) = ep.ipv4_address.parse::<IpNet>() {
            self.leases.insert(i, a);
        }
        Ok(())
    }

    async fn disconnect(&mut self, i: usize) -> Result<()> {
        disconnect(&self.client, Self::NETWORK, &Self::name(i)).await
    }

    async fn ns_delete(&mut self, i: usize) -> Result<()> {
        delete_namespace(&self.client, &Self::name(i)).await
    }
}

/// CreateNetwork with one IPv4 subnet and a given bridge name; waits for Ready.
pub async fn create_network(
    client: &weft::Client,
    name: &str,
    bridge: &str,
    subnet: Ipv4Net,
) -> Result<()> {
    let net = client
        .networks()
        .create_network(CreateNetworkRequest {
            network: Some(Network {
                name: name.into(),
                bridge_name: bridge.into(),
                subnets: vec![Subnet {
                    subnet: subnet.to_string(),
                    gateway: gateway(subnet).to_string(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .with_context(|| format!("CreateNetwork {name}"))?
        .into_inner()
        .network
        .ok_or_else(|| anyhow!("CreateNetwork {name}: no network in the answer"))?;
    ready(&format!("network {name}"), net.status.as_ref())
}

/// CreateNamespace; waits for Ready.
pub async fn create_namespace(client: &weft::Client, name: &str) -> Result<()> {
    let ns = client
        .namespaces()
        .create_namespace(CreateNamespaceRequest {
            namespace: Some(Namespace {
                name: name.into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .with_context(|| format!("CreateNamespace {name}"))?
        .into_inner()
        .namespace
        .ok_or_else(|| anyhow!("CreateNamespace {name}: no namespace in the answer"))?;
    ready(&format!("namespace {name}"), ns.status.as_ref())
}

/// Connect; waits for Ready and returns the endpoint.
pub async fn connect(
    client: &weft::Client,
    network: &str,
    ns: &str,
    published_ports: Vec<weft::v1::PublishedPort>,
) -> Result<weft::v1::Endpoint> {
    let ep = client
        .networks()
        .connect(ConnectRequest {
            network: network.into(),
            namespace: ns.into(),
            published_ports,
            ..Default::default()
        })
        .await
        .with_context(|| format!("Connect {ns} to {network}"))?
        .into_inner()
        .endpoint
        .ok_or_else(|| anyhow!("Connect {ns}: no endpoint in the answer"))?;
    ready(&format!("endpoint {ns}"), ep.status.as_ref())?;
    Ok(ep)
}

/// Disconnect; waits until the endpoint is gone.
pub async fn disconnect(client: &weft::Client, network: &str, ns: &str) -> Result<()> {
    client
        .networks()
        .disconnect(DisconnectRequest {
            network: network.into(),
            namespace: ns.into(),
            ..Default::default()
        })
        .await
        .with_context(|| format!("Disconnect {ns} from {network}"))?;
    Ok(())
}

/// DeleteNamespace; waits until it is gone.
pub async fn delete_namespace(client: &weft::Client, name: &str) -> Result<()> {
    client
        .namespaces()
        .delete_namespace(DeleteNamespaceRequest {
            name: name.into(),
            ..Default::default()
        })
        .await
        .with_context(|| format!("DeleteNamespace {name}"))?;
    Ok(())
}

/// The in-process floor: what a daemon can do at best per endpoint, through weftd's own kernel
/// layer (one rtnetlink socket per namespace, opened on a helper thread and cached).
pub struct FloorM {
    /// The kernel layer, with the scratch host as its host namespace.
    pub kernel: Kernel,
    subnet: Ipv4Net,
    bridge: u32,
    host_ends: HashMap<usize, u32>,
    /// The group the host ends are moved to (beside a weftd: out of its newborn group).
    ungroup: Option<u32>,
    /// Ports of `wbr` that only fill it ([`FloorM::fill_bridge`]).
    filled: usize,
}

impl FloorM {
    /// Sets up a bridge `wbr` with the gateway address, up, and weft's firewall for it (so
    /// masquerade is in place as for the others), in the scratch host `host`.
    pub async fn setup(run: &Run, host: &Path, subnet: Ipv4Net) -> Result<Self> {
        Self::setup_with(run, host, subnet, false).await
    }

    /// [`FloorM::setup`], or (`beside_weftd`) for a host a weftd manages: without weft's
    /// firewall (a second writer of its ruleset would fight weftd over it), and with the host
    /// interfaces taken out of weft's newborn group (weftd's GC removes newborn interfaces no
    /// object of its own plans, as a crash's leftovers), the veth's in the request that makes
    /// it a port, at no extra cost.
    pub async fn setup_with(
        run: &Run,
        host: &Path,
        subnet: Ipv4Net,
        beside_weftd: bool,
    ) -> Result<Self> {
        let dir = run.subdir(&format!("floor-{}", subnet.network()))?;
        Self::setup_in(dir, host, subnet, beside_weftd).await
    }

    /// [`FloorM::setup_with`], its namespaces' files in `netns_dir`.
    pub async fn setup_in(
        netns_dir: PathBuf,
        host: &Path,
        subnet: Ipv4Net,
        beside_weftd: bool,
    ) -> Result<Self> {
        let kernel = Kernel::new(Some(host.to_path_buf()), netns_dir)?;
        let h = NsRef::Host;
        kernel.create_bridge(&h, "wbr").await?;
        let br = kernel
            .get_link(&h, "wbr")
            .await?
            .ok_or_else(|| anyhow!("bridge wbr vanished"))?
            .index;
        kernel
            .add_address(
                &h,
                br,
                IpNet::V4(Ipv4Net::new(gateway(subnet), subnet.prefix_len())?),
                true,
            )
            .await?;
        let ungroup = beside_weftd.then_some(0);
        kernel
            .set_link(
                &h,
                br,
                &LinkChange {
                    group: ungroup,
                    ..up()
                },
            )
            .await?;
        if beside_weftd {
            return Ok(Self {
                kernel,
                subnet,
                bridge: br,
                host_ends: HashMap::new(),
                ungroup,
                filled: 0,
            });
        }
        kernel.ensure_sysctl(&h, "net/ipv4/ip_forward", "1").await?;
        kernel
            .sync_firewall(&[FirewallNetwork {
                bridge: "wbr".into(),
                subnets: vec![IpNet::V4(subnet)],
                internal: false,
                icc: true,
                masquerade: true,
                dns_servers: Vec::new(),
            }])
            .await?;
        Ok(Self {
            kernel,
            subnet,
            bridge: br,
            host_ends: HashMap::new(),
            ungroup,
            filled: 0,
        })
    }

    /// Adds ports to the bridge until `ports` of them only fill it, so the connects that
    /// follow meet a bridge as large as a weft network's (the kernel's port add and delete
    /// walk a bridge's ports). Each filler is a veth made as the connect makes one, with no
    /// address, MAC or route: `fp<k>` a port of the bridge, its peer `fq<k>` in the one
    /// namespace `fx` the fillers share, IPv6 off on both ends (no chatter flooding the
    /// bridge), both up. [`FloorM::clear_bridge`] removes them.
    pub async fn fill_bridge(&mut self, ports: usize) -> Result<()> {
        let fx = NsRef::path(self.kernel.named_netns_path("fx"));
        if self.filled == 0 && ports > 0 {
            self.kernel.create_named_netns("fx").await?;
        }
        while self.filled < ports {
            let (host_end, peer) = (format!("fp{}", self.filled), format!("fq{}", self.filled));
            let (_, pi) = self.wiring().quiet_port(&host_end, &fx, &peer).await?;
            self.kernel.set_link(&fx, pi, &up()).await?;
            self.filled += 1;
        }
        Ok(())
    }

    /// Removes the ports [`FloorM::fill_bridge`] added: deletes the namespace `fx`, whose
    /// veths the kernel then frees, and waits (at most 30 s) until the host lists none of them.
    pub async fn clear_bridge(&mut self) -> Result<()> {
        if self.filled == 0 {
            return Ok(());
        }
        self.kernel.delete_named_netns("fx").await?;
        let t0 = std::time::Instant::now();
        for k in 0..self.filled {
            let name = format!("fp{k}");
            while self.host_link(&name).await?.is_some() {
                ensure!(
                    t0.elapsed() < std::time::Duration::from_secs(30),
                    "{name} is still there 30 s after its namespace went"
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
        self.filled = 0;
        Ok(())
    }

    /// What a connect of this floor needs, for a task of its own.
    fn wiring(&self) -> Wiring {
        Wiring {
            kernel: self.kernel.clone(),
            subnet: self.subnet,
            bridge: self.bridge,
            ungroup: self.ungroup,
        }
    }

    /// The name of namespace `i`.
    pub fn name(i: usize) -> String {
        format!("f{i}")
    }

    /// Creates namespace `i` (like `ip netns add`, loopback up).
    pub async fn ns_create(&mut self, i: usize) -> Result<()> {
        self.kernel.create_named_netns(&Self::name(i)).await?;
        Ok(())
    }

    /// The connect: veth `fv<i>` with `eth0` born in the namespace, IPv6 off on both ends
    /// before they come up (as weft does on an IPv4 network), host end a bridge port and up,
    /// `eth0` with its address, up, default route via the gateway.
    ///
    /// Without the IPv6 off (until session 23), each end's IPv6 chatter as it came up (DAD,
    /// MLD, router solicitations) was flooded to every port of the bridge inside the
    /// request that brought it up: at 1,000 ports the floor's two ups took ~1 ms more than
    /// at 10, and the flood slowed every method interleaved with it (`compare --n 1000`:
    /// weft 2.40 ms beside the old floor, 1.40 beside this one). At N=100 the two requests
    /// cost the floor ~0.04 ms more than it saves. The two ends are read without their
    /// addresses (one `RTM_GETLINK` each), as weft reads a link it has just made; until
    /// session 23 each read dumped the end's addresses too.
    pub async fn connect(&mut self, i: usize) -> Result<()> {
        let hi = self.wiring().connect(i).await?;
        self.host_ends.insert(i, hi);
        Ok(())
    }

    /// Connects namespaces `0..n` from `workers` tasks at once, worker j taking i = j,
    /// j + workers, ... one after another, as weft's concurrent clients do: the floor's
    /// kernel work as concurrent as theirs, with nothing of weft's (the kernel serializes
    /// most of it under RTNL). Returns each connect's latency.
    pub async fn connect_concurrently(&mut self, n: usize, workers: usize) -> Result<Samples> {
        let workers = workers.max(1);
        // The host ends made, recorded as they come, so a failure keeps what was made.
        let made = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = tokio::task::JoinSet::new();
        for j in 0..workers {
            let (w, made) = (self.wiring(), made.clone());
            tasks.spawn(async move {
                let mut lat = Vec::new();
                for i in (j..n).step_by(workers) {
                    check_stop()?;
                    let t = Instant::now();
                    let hi = w.connect(i).await?;
                    lat.push(t.elapsed());
                    made.lock().unwrap_or_else(|p| p.into_inner()).push((i, hi));
                }
                Ok::<_, anyhow::Error>(lat)
            });
        }
        let out = Samples::gather(tasks, "a floor").await;
        self.host_ends
            .extend(made.lock().unwrap_or_else(|p| p.into_inner()).drain(..));
        out
    }

    /// Disconnects namespaces `0..n` from `workers` tasks at once (as
    /// [`FloorM::connect_concurrently`] shares them out). Returns each disconnect's latency.
    pub async fn disconnect_concurrently(&mut self, n: usize, workers: usize) -> Result<Samples> {
        let workers = workers.max(1);
        if let Some(i) = (0..n).find(|i| !self.host_ends.contains_key(i)) {
            bail!("endpoint {i} is not connected");
        }
        let mut tasks = tokio::task::JoinSet::new();
        for j in 0..workers {
            let ends: Vec<u32> = (j..n)
                .step_by(workers)
                .filter_map(|i| self.host_ends.remove(&i))
                .collect();
            let kernel = self.kernel.clone();
            tasks.spawn(async move {
                let mut lat = Vec::new();
                for hi in ends {
                    check_stop()?;
                    let t = Instant::now();
                    kernel.delete_link(&NsRef::Host, hi).await?;
                    lat.push(t.elapsed());
                }
                Ok::<_, anyhow::Error>(lat)
            });
        }
        Samples::gather(tasks, "a floor").await
    }

    /// Interface `name` in the host (one `RTM_GETLINK` by name), if it is there.
    pub async fn host_link(&self, name: &str) -> Result<Option<u32>> {
        Ok(self
            .kernel
            .get_link_bare(&NsRef::Host, name)
            .await?
            .map(|l| l.index))
    }

    /// Deletes the veth (by its host end).
    pub async fn disconnect(&mut self, i: usize) -> Result<()> {
        let hi = self
            .host_ends
            .remove(&i)
            .ok_or_else(|| anyhow!("endpoint {i} is not connected"))?;
        self.kernel.delete_link(&NsRef::Host, hi).await?;
        Ok(())
    }

    /// Deletes namespace `i`.
    pub async fn ns_delete(&mut self, i: usize) -> Result<()> {
        self.kernel.delete_named_netns(&Self::name(i)).await?;
        Ok(())
    }
}

/// The part of [`FloorM`] a connect uses, cheap to clone (the kernel layer is one `Arc`),
/// so concurrent tasks can each connect ([`FloorM::connect_concurrently`]).
struct Wiring {
    kernel: Kernel,
    subnet: Ipv4Net,
    bridge: u32,
    ungroup: Option<u32>,
}

impl Wiring {
    /// A veth `host_end` with its peer `peer` born in `ns`, IPv6 off on both ends (the host
    /// end's `disable_ipv6`, the peer's address generation none), the host end a port of the
    /// bridge and up; the peer left down. Returns both ends' indexes.
    async fn quiet_port(&self, host_end: &str, ns: &NsRef, peer: &str) -> Result<(u32, u32)> {
        let k = &self.kernel;
        let h = NsRef::Host;
        k.create_veth(&h, host_end, ns, peer).await?;
        let hi = k
            .get_link_bare(&h, host_end)
            .await?
            .ok_or_else(|| anyhow!("{host_end} vanished"))?
            .index;
        k.ensure_sysctl(&h, &format!("net/ipv6/conf/{host_end}/disable_ipv6"), "1")
            .await?;
        k.set_link(
            &h,
            hi,
            &LinkChange {
                master: Some(Some(self.bridge)),
                up: Some(true),
                group: self.ungroup,
                ..Default::default()
            },
        )
        .await?;
        let pi = k
            .get_link_bare(ns, peer)
            .await?
            .ok_or_else(|| anyhow!("{peer} vanished"))?
            .index;
        let no_link_local = LinkChange {
            ipv6_addr_gen_none: true,
            ..Default::default()
        };
        k.set_link(ns, pi, &no_link_local).await?;
        Ok((hi, pi))
    }

    /// The connect of namespace `i`; returns its host end's index (see [`FloorM::connect`]).
    async fn connect(&self, i: usize) -> Result<u32> {
        let ns = NsRef::path(self.kernel.named_netns_path(&FloorM::name(i)));
        let (hi, ei) = self.quiet_port(&format!("fv{i}"), &ns, "eth0").await?;
        let k = &self.kernel;
        k.add_address(&ns, ei, IpNet::V4(address(self.subnet, i)), true)
            .await?;
        k.set_link(&ns, ei, &up()).await?;
        k.add_route(
            &ns,
            ei,
            &RouteState {
                destination: "0.0.0.0/0".parse()?,
                gateway: Some(gateway(self.subnet).into()),
                metric: 0,
            },
        )
        .await?;
        Ok(hi)
    }
}

fn up() -> LinkChange {
    LinkChange {
        up: Some(true),
        ..Default::default()
    }
}

/// What the command-line methods share: a runner in their scratch host, and namespaces made
/// with `ip netns add` (loopback up) and removed with `ip netns del`.
pub struct Cmds {
    /// Runs commands in the method's scratch host.
    pub runner: NsRunner,
    prefix: String,
    subnet: Ipv4Net,
}

impl Cmds {
    /// Namespaces `<run prefix><letter><i>`, commands run in `host`.
    pub fn new(run: &Run, host: &Path, letter: &str, subnet: Ipv4Net) -> Result<Self> {
        Ok(Self {
            runner: NsRunner::new(host)?,
            prefix: run.ns_name(letter),
            subnet,
        })
    }

    fn name(&self, i: usize) -> String {
        format!("{}{i}", self.prefix)
    }

    /// The method's subnet.
    pub fn subnet(&self) -> Ipv4Net {
        self.subnet
    }

    /// The file of namespace `i`.
    pub fn path(&self, i: usize) -> PathBuf {
        Path::new(crate::sandbox::RUN_NETNS).join(self.name(i))
    }

    /// `ip netns add`, loopback up.
    pub async fn ns_create(&self, i: usize) -> Result<()> {
        let n = self.name(i);
        self.runner
            .ok(Cmd::new("ip").args(["netns", "add", &n]))
            .await?;
        self.runner
            .ok(Cmd::new("ip").args(["-n", &n, "link", "set", "lo", "up"]))
            .await?;
        Ok(())
    }

    /// `ip netns del`.
    pub async fn ns_delete(&self, i: usize) -> Result<()> {
        self.runner
            .ok(Cmd::new("ip").args(["netns", "del", &self.name(i)]))
            .await?;
        Ok(())
    }

    async fn ip(&self, args: &[&str]) -> Result<String> {
        self.runner
            .ok(Cmd::new("ip").args(args.iter().copied()))
            .await
    }
}

/// Plain `ip` commands, as a shell script would do it: veth in the host, peer moved.
pub struct IpM {
    cmds: Cmds,
    /// nft rule handle of each endpoint's masquerade rule.
    handles: HashMap<usize, String>,
}

impl IpM {
    async fn setup(run: &Run, host: &Path, subnet: Ipv4Net) -> Result<Self> {
        let cmds = Cmds::new(run, host, "i", subnet)?;
        let gw = format!("{}/{}", gateway(subnet), subnet.prefix_len());
        cmds.ip(&["link", "add", "wbr", "type", "bridge"]).await?;
        cmds.ip(&["addr", "add", &gw, "dev", "wbr"]).await?;
        cmds.ip(&["link", "set", "wbr", "up"]).await?;
        cmds.runner
            .ok(Cmd::new("sysctl").args(["-qw", "net.ipv4.ip_forward=1"]))
            .await?;
        cmds.runner
            .ok(Cmd::new("nft").args(["add", "table", "ip", "wbench"]))
            .await?;
        cmds.runner
            .ok(Cmd::new("nft").args([
                "add",
                "chain",
                "ip",
                "wbench",
                "post",
                "{ type nat hook postrouting priority 100 ; }",
            ]))
            .await?;
        Ok(Self {
            cmds,
            handles: HashMap::new(),
        })
    }

    async fn connect(&mut self, i: usize) -> Result<()> {
        let c = &self.cmds;
        let ns = c.name(i);
        let (h, p) = (format!("h{i}"), format!("p{i}"));
        let a = address(c.subnet, i);
        let gw = gateway(c.subnet).to_string();
        c.ip(&["link", "add", &h, "type", "veth", "peer", "name", &p])
            .await?;
        c.ip(&["link", "set", &p, "netns", &ns]).await?;
        c.ip(&["-n", &ns, "link", "set", &p, "name", "eth0"])
            .await?;
        c.ip(&["-n", &ns, "addr", "add", &a.to_string(), "dev", "eth0"])
            .await?;
        c.ip(&["-n", &ns, "link", "set", "eth0", "up"]).await?;
        c.ip(&["-n", &ns, "route", "add", "default", "via", &gw])
            .await?;
        c.ip(&["link", "set", &h, "master", "wbr", "up"]).await?;
        let out = c
            .runner
            .ok(Cmd::new("nft").args([
                "--echo",
                "--handle",
                "add",
                "rule",
                "ip",
                "wbench",
                "post",
                "ip",
                "saddr",
                &a.addr().to_string(),
                "oifname",
                "!=",
                "wbr",
                "masquerade",
            ]))
            .await?;
        let handle: String = out
            .split_once("# handle ")
            .map(|(_, rest)| rest.chars().take_while(char::is_ascii_digit).collect())
            .unwrap_or_default();
        ensure!(!handle.is_empty(), "no rule handle in nft's answer: {out}");
        self.handles.insert(i, handle);
        Ok(())
    }

    async fn disconnect(&mut self, i: usize) -> Result<()> {
        let handle = self
            .handles
            .remove(&i)
            .ok_or_else(|| anyhow!("endpoint {i} is not connected"))?;
        self.cmds
            .runner
            .ok(Cmd::new("nft").args(["delete", "rule", "ip", "wbench", "post", "handle", &handle]))
            .await?;
        self.cmds.ip(&["link", "del", &format!("h{i}")]).await?;
        Ok(())
    }
}

/// Fails unless `path` exists (a tool the bench compares against).
pub fn require(path: &Path, package: &str) -> Result<()> {
    if !path.exists() {
        bail!(
            "{} is missing: install the Debian package {package} (bench/run does)",
            path.display()
        );
    }
    Ok(())
}
