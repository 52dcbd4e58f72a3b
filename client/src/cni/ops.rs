//! The CNI operations as calls to weftd: ADD (adopt the namespace, Connect), DEL (Disconnect,
//! forget the namespace once it has no endpoint left), CHECK, GC and STATUS. Every gRPC failure
//! becomes a CNI error: weftd unreachable is "try again later" (11; 50 for STATUS), a missing
//! network is "invalid network config" (7) naming `weft network create`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use serde_json::{Value, json};
use tonic::Code;

use super::config::{self, Command, Invocation, NetConf};
use super::{CniError, code, netns, result};
use crate::Client;
use crate::v1::{
    ConnectRequest, CreateNamespaceRequest, DeleteNamespaceRequest, DisconnectRequest, Endpoint,
    GetNamespaceRequest, GetNetworkRequest, ListNamespacesRequest, ListNetworksRequest, Namespace,
    Network, Phase, PublishedPort,
};

/// The label naming the container whose namespace a namespace object is.
pub const LABEL_CONTAINER: &str = "cni.weft.dev/container-id";
/// The label naming the interface of the ADD that adopted the namespace.
pub const LABEL_IFNAME: &str = "cni.weft.dev/ifname";
/// The label with `K8S_POD_NAME` of `CNI_ARGS`.
pub const LABEL_POD_NAME: &str = "cni.weft.dev/pod-name";
/// The label with `K8S_POD_NAMESPACE` of `CNI_ARGS`.
pub const LABEL_POD_NAMESPACE: &str = "cni.weft.dev/pod-namespace";

/// How long one invocation may wait for weftd in all. Connect, Disconnect and the
/// namespace calls are sent with `wait`, so this bounds the kernel work too; past it the
/// answer is 11, try again later (50 for STATUS), and a retried ADD replays the same Connect.
const DEADLINE: Duration = Duration::from_secs(60);

/// Runs the invocation's command; `version` is the one errors are written in. VERSION
/// answers without parsing stdin; CHECK reads the container's namespace before it connects
/// to weftd. `Ok(None)` is success with nothing to print (DEL, CHECK, GC, STATUS).
pub async fn dispatch(
    inv: &Invocation,
    stdin: &[u8],
    version: &str,
) -> Result<Option<Value>, CniError> {
    if inv.command == Command::Version {
        return Ok(Some(json!({
            "cniVersion": version,
            "supportedVersions": config::SUPPORTED_VERSIONS,
        })));
    }
    let conf = NetConf::parse(stdin, inv)?;
    if inv.command == Command::Check
        && conf.cni_version.starts_with("0.")
        && conf.cni_version.as_str() < "0.4.0"
    {
        return Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!(
                "CHECK needs cniVersion 0.4.0 or newer, the configuration says {}",
                conf.cni_version
            ),
        ));
    }
    if inv.command == Command::Check {
        // The namespace first: a container whose interface is gone fails CHECK even while
        // weftd is unreachable.
        check_netns(inv, &conf)?;
    }
    let work = async {
        let c = connect(&conf, inv.command).await?;
        match inv.command {
            Command::Add => add(&c, inv, &conf).await.map(Some),
            Command::Del => del(&c, inv, &conf).await.map(|()| None),
            Command::Check => check(&c, inv, &conf).await.map(|()| None),
            Command::Gc => gc(&c, &conf).await.map(|()| None),
            Command::Status => status(&c, &conf).await.map(|()| None),
            Command::Version => Ok(None),
        }
    };
    match tokio::time::timeout(DEADLINE, work).await {
        Ok(r) => r,
        Err(_) => Err(unreachable_err(
            inv.command,
            "weftd did not answer within 60 s".into(),
        )),
    }
}

/// weftd unreachable: try again later (11), or "not available" (50) for STATUS.
fn unreachable_err(cmd: Command, why: String) -> CniError {
    let c = if cmd == Command::Status {
        code::NOT_AVAILABLE
    } else {
        code::TRY_AGAIN_LATER
    };
    CniError::new(
        c,
        format!("weftd is not reachable: {why}; start weftd (or fix `socket`) and retry"),
    )
}

/// A client on the socket the configuration names; an unreachable weftd is error 11 (try
/// again later), or 50 for STATUS (see `unreachable_err`).
async fn connect(conf: &NetConf, cmd: Command) -> Result<Client, CniError> {
    Client::connect_unix(&conf.socket)
        .await
        .map_err(|e| unreachable_err(cmd, format!("{}: {e}", conf.socket.display())))
}

/// A gRPC failure of `what` as a CNI error: statuses that may pass (weftd restarting,
/// overloaded, aborted by a concurrent change) are 11 so the runtime retries; any other is
/// weftd refusing on the merits, 100, with weftd's message (which names the field and fix).
fn rpc_err(what: &str, s: &tonic::Status) -> CniError {
    let c = match s.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => {
            code::TRY_AGAIN_LATER
        }
        Code::ResourceExhausted | Code::Aborted => code::TRY_AGAIN_LATER,
        _ => code::WEFTD_REFUSED,
    };
    CniError::new(
        c,
        format!("{what}: weftd answered {:?}: {}", s.code(), s.message()),
    )
}

/// The weft network, or error 7 telling how to make it.
async fn network(c: &Client, conf: &NetConf) -> Result<Network, CniError> {
    match c
        .networks()
        .get_network(GetNetworkRequest {
            name: conf.network.clone(),
        })
        .await
    {
        Ok(r) => r
            .into_inner()
            .network
            .ok_or_else(|| CniError::new(code::WEFTD_REFUSED, "weftd sent no network")),
        Err(s) if s.code() == Code::NotFound => Err(CniError::new(
            code::INVALID_CONFIG,
            format!(
                "weft network {:?} does not exist: run `weft network create {}` first (or set \
                 \"network\" in the CNI configuration)",
                conf.network, conf.network
            ),
        )),
        Err(s) => Err(rpc_err(&format!("getting network {:?}", conf.network), &s)),
    }
}

/// The namespace object `name`, or None when weftd has none by that name.
async fn get_namespace(c: &Client, name: &str) -> Result<Option<Namespace>, CniError> {
    match c
        .namespaces()
        .get_namespace(GetNamespaceRequest { name: name.into() })
        .await
    {
        Ok(r) => Ok(r.into_inner().namespace),
        Err(s) if s.code() == Code::NotFound => Ok(None),
        Err(s) => Err(rpc_err(&format!("getting namespace {name:?}"), &s)),
    }
}

/// An object's phase and status message (Pending and "" when it has no status yet).
fn phase_of(status: Option<&crate::v1::Status>) -> (Phase, String) {
    status.map_or((Phase::Unspecified, String::new()), |s| {
        (
            Phase::try_from(s.phase).unwrap_or(Phase::Unspecified),
            s.message.clone(),
        )
    })
}

/// The namespace object for the container, adopted from `CNI_NETNS` or reused: one per
/// container, whatever the number of networks it joins. An object left from an earlier life
/// of the container (another namespace file) is released and made again. It is labelled
/// with the container id, the ifname and the pod's name and namespace from `CNI_ARGS`; GC
/// finds CNI-made objects by [`LABEL_CONTAINER`]. weftd's NotFound (the path is no network
/// namespace) is code 3, its InvalidArgument (a malformed path) code 4.
async fn adopt(c: &Client, inv: &Invocation) -> Result<Namespace, CniError> {
    let name = config::namespace_name(&inv.container_id);
    if let Some(ns) = get_namespace(c, &name).await? {
        let (phase, _) = phase_of(ns.status.as_ref());
        // The same file, still a live namespace: the container's other network, or a retry.
        if ns.path == inv.netns && phase != Phase::Failed {
            return Ok(ns);
        }
        // An earlier life of the container that got no DEL (ctr sends none): its namespace
        // file is another one now, or dead.
        release(c, &name, None).await?;
    }
    let mut labels = BTreeMap::new();
    labels.insert(LABEL_CONTAINER.to_string(), inv.container_id.clone());
    labels.insert(LABEL_IFNAME.to_string(), inv.ifname.clone());
    for (arg, label) in [
        ("K8S_POD_NAME", LABEL_POD_NAME),
        ("K8S_POD_NAMESPACE", LABEL_POD_NAMESPACE),
    ] {
        if let Some(v) = inv.args.get(arg).filter(|v| !v.is_empty()) {
            labels.insert(label.to_string(), v.clone());
        }
    }
    let req = CreateNamespaceRequest {
        namespace: Some(Namespace {
            name: name.clone(),
            labels: labels.into_iter().collect(),
            path: inv.netns.clone(),
            ..Default::default()
        }),
        wait: Some(true),
        ..Default::default()
    };
    let ns = match c.namespaces().create_namespace(req).await {
        Ok(r) => r.into_inner().namespace,
        // Another ADD of the same container (its other network) made it meanwhile.
        Err(s) if s.code() == Code::AlreadyExists => get_namespace(c, &name).await?,
        Err(s) if s.code() == Code::NotFound => {
            return Err(CniError::new(
                code::UNKNOWN_CONTAINER,
                format!(
                    "CNI_NETNS {:?} is not a network namespace: {}",
                    inv.netns,
                    s.message()
                ),
            ));
        }
        Err(s) if s.code() == Code::InvalidArgument => {
            return Err(CniError::new(
                code::INVALID_ENV,
                format!("CNI_NETNS {:?}: {}", inv.netns, s.message()),
            ));
        }
        Err(s) => {
            return Err(rpc_err(
                &format!("adopting {} as namespace {name:?}", inv.netns),
                &s,
            ));
        }
    };
    ns.ok_or_else(|| CniError::new(code::WEFTD_REFUSED, "weftd sent no namespace"))
}

/// The endpoint of namespace `ns` on `net` with the inside interface `ifname`.
fn find_endpoint<'a>(net: &'a Network, ns: &str, ifname: &str) -> Option<&'a Endpoint> {
    net.endpoints
        .iter()
        .find(|e| e.namespace == ns && e.interface_name == ifname)
}

/// ADD: adopts the container's namespace, connects it (idempotent by request id), and
/// answers the spec's result: interfaces, IPs, routes and DNS of the endpoint. A retried ADD
/// that finds the endpoint answers the same result again; a second interface of the same
/// container on the same network is refused (code 7).
async fn add(c: &Client, inv: &Invocation, conf: &NetConf) -> Result<Value, CniError> {
    let net = network(c, conf).await?;
    let ns = adopt(c, inv).await?;
    // A retried ADD: the endpoint is there already.
    let net = network(c, conf).await.unwrap_or(net);
    if let Some(ep) = find_endpoint(&net, &ns.name, &inv.ifname) {
        return Ok(result::add_result(
            ep,
            &inv.netns,
            &conf.cni_version,
            conf.dns.as_ref(),
        ));
    }
    if let Some(other) = net.endpoints.iter().find(|e| e.namespace == ns.name) {
        return Err(CniError::new(
            code::INVALID_CONFIG,
            format!(
                "container {} is on network {:?} already, as {}: one interface per network",
                inv.container_id, conf.network, other.interface_name
            ),
        ));
    }
    let ip = |v4: bool| {
        conf.ips
            .iter()
            .find(|a| a.is_ipv4() == v4)
            .map(IpAddr::to_string)
            .unwrap_or_default()
    };
    let req = ConnectRequest {
        network: conf.network.clone(),
        namespace: ns.name.clone(),
        interface_name: inv.ifname.clone(),
        ipv4_address: ip(true),
        ipv6_address: ip(false),
        mac_address: conf.mac.clone(),
        aliases: conf.aliases.clone(),
        published_ports: conf
            .port_mappings
            .iter()
            .map(|p| PublishedPort {
                host_ip: p.host_ip.clone(),
                host_port: p.host_port,
                host_port_end: 0,
                container_port: p.container_port,
                container_port_end: 0,
                protocol: p.protocol.clone(),
            })
            .collect(),
        wait: Some(true),
        request_id: config::request_id(&inv.container_id, &inv.ifname, &conf.network, &ns.uid),
        ..Default::default()
    };
    match connect_endpoint(c, req, inv, conf).await {
        Ok(ep) => Ok(result::add_result(
            &ep,
            &inv.netns,
            &conf.cni_version,
            conf.dns.as_ref(),
        )),
        Err(e) => {
            // A failed ADD leaves nothing behind: the endpoint (if weftd made one) and the
            // namespace object, unless the container is on another network.
            let _ = release(c, &ns.name, Some(&conf.network)).await;
            Err(e)
        }
    }
}

/// Connect, and the endpoint it made when it is Ready; an endpoint weftd answers in any
/// other phase (Failed, say) is code 100 with its status message.
async fn connect_endpoint(
    c: &Client,
    req: ConnectRequest,
    inv: &Invocation,
    conf: &NetConf,
) -> Result<Endpoint, CniError> {
    let what = format!(
        "connecting {} to network {:?}",
        inv.container_id, conf.network
    );
    let ep = c
        .networks()
        .connect(req)
        .await
        .map_err(|s| rpc_err(&what, &s))?
        .into_inner()
        .endpoint
        .ok_or_else(|| CniError::new(code::WEFTD_REFUSED, "weftd sent no endpoint"))?;
    let (phase, msg) = phase_of(ep.status.as_ref());
    if phase != Phase::Ready {
        return Err(CniError::new(
            code::WEFTD_REFUSED,
            format!("{what}: the endpoint is {}: {msg}", phase.as_str_name()),
        ));
    }
    Ok(ep)
}

/// Every endpoint of every network, by namespace name.
async fn endpoints_by_namespace(c: &Client) -> Result<BTreeMap<String, Vec<Endpoint>>, CniError> {
    let nets = c
        .list_all_networks(tonic::Request::new(ListNetworksRequest::default()))
        .await
        .map_err(|s| rpc_err("listing networks", &s))?
        .into_inner()
        .networks;
    let mut out: BTreeMap<String, Vec<Endpoint>> = BTreeMap::new();
    for e in nets.into_iter().flat_map(|n| n.endpoints) {
        out.entry(e.namespace.clone()).or_default().push(e);
    }
    Ok(out)
}

/// Disconnects `ns` from `network`, waiting until the endpoint is gone; already gone is
/// success (DEL must be idempotent).
async fn disconnect(c: &Client, network: &str, ns: &str) -> Result<(), CniError> {
    let req = DisconnectRequest {
        network: network.into(),
        namespace: ns.into(),
        wait: Some(true),
        ..Default::default()
    };
    match c.networks().disconnect(req).await {
        Ok(_) => Ok(()),
        Err(s) if s.code() == Code::NotFound => Ok(()),
        Err(s) => Err(rpc_err(
            &format!("disconnecting {ns:?} from {network:?}"),
            &s,
        )),
    }
}

/// Disconnects namespace object `name` from `only` (every network when `None`), then deletes
/// the object when no endpoint is left in it. Deleting an adopted object only forgets it:
/// weftd never removes the namespace file of an adopted namespace.
async fn release(c: &Client, name: &str, only: Option<&str>) -> Result<(), CniError> {
    let eps = endpoints_by_namespace(c).await?;
    let mine = eps.get(name).cloned().unwrap_or_default();
    let mut left = 0;
    for e in &mine {
        if only.is_none_or(|n| n == e.network) {
            disconnect(c, &e.network, name).await?;
        } else {
            left += 1;
        }
    }
    if left > 0 {
        return Ok(());
    }
    let req = DeleteNamespaceRequest {
        name: name.into(),
        wait: Some(true),
        ..Default::default()
    };
    match c.namespaces().delete_namespace(req).await {
        Ok(_) => Ok(()),
        // Gone already, or links a user made still live in it: not ours to remove.
        Err(s) if matches!(s.code(), Code::NotFound | Code::FailedPrecondition) => Ok(()),
        Err(s) => Err(rpc_err(&format!("deleting namespace {name:?}"), &s)),
    }
}

/// DEL: disconnects the container from this network and forgets the adopted namespace
/// when no endpoint is left in it; a namespace gone, or one weft-cni did not adopt for this
/// container, is success (left alone).
async fn del(c: &Client, inv: &Invocation, conf: &NetConf) -> Result<(), CniError> {
    let name = config::namespace_name(&inv.container_id);
    let Some(ns) = get_namespace(c, &name).await? else {
        return Ok(());
    };
    if ns.labels.get(LABEL_CONTAINER) != Some(&inv.container_id) {
        // Not a namespace weft-cni adopted for this container: leave it alone.
        return Ok(());
    }
    release(c, &name, Some(&conf.network)).await
}

/// A CHECK failure: weft-cni's own code 101 (codes of 100 and up are the plugin's), for a
/// container or endpoint that differs from the prevResult.
fn check_err(msg: String) -> CniError {
    CniError::new(code::CHECK_FAILED, msg)
}

/// The prevResult's addresses and container MAC.
fn prev_of(conf: &NetConf) -> Result<(BTreeSet<String>, String), CniError> {
    let prev = conf.prev_result.as_ref().ok_or_else(|| {
        CniError::new(
            code::INVALID_CONFIG,
            "CHECK needs the ADD's result as \"prevResult\"",
        )
    })?;
    let want = result::prev_addresses(prev).into_iter().collect();
    let mac = result::prev_container_interface(prev)
        .map(|(_, m)| m)
        .unwrap_or_default();
    Ok((want, mac))
}

/// CHECK's first half, before weftd is asked: what the container's namespace really has
/// (read only) against the prevResult.
fn check_netns(inv: &Invocation, conf: &NetConf) -> Result<(), CniError> {
    let (want, want_mac) = prev_of(conf)?;
    let seen = netns::interface(&inv.netns, &inv.ifname)
        .map_err(|e| CniError::new(code::UNKNOWN_CONTAINER, e))?
        .ok_or_else(|| {
            check_err(format!(
                "interface {} is gone from {}",
                inv.ifname, inv.netns
            ))
        })?;
    if !want_mac.is_empty() && !seen.mac.eq_ignore_ascii_case(&want_mac) {
        return Err(check_err(format!(
            "{} has MAC {}, the ADD gave {want_mac}",
            inv.ifname, seen.mac
        )));
    }
    for a in &want {
        let host = a.split_once('/').map_or(a.as_str(), |(h, _)| h);
        if !seen.addrs.iter().any(|s| s.to_string() == host) {
            return Err(check_err(format!(
                "{} lacks {a} in {}",
                inv.ifname, inv.netns
            )));
        }
    }
    Ok(())
}

/// CHECK's second half, after `check_netns`: weftd's endpoint of this container and
/// interface must exist, be Ready, and have the prevResult's addresses (compared as a set of
/// CIDR strings) and, when the prevResult names one, its MAC. Any difference is code 101.
async fn check(c: &Client, inv: &Invocation, conf: &NetConf) -> Result<(), CniError> {
    let (want, want_mac) = prev_of(conf)?;
    // Then weftd's view of the endpoint.
    let net = network(c, conf).await?;
    let name = config::namespace_name(&inv.container_id);
    let ep = find_endpoint(&net, &name, &inv.ifname).ok_or_else(|| {
        check_err(format!(
            "weftd has no endpoint of {} on {:?} as {}",
            inv.container_id, conf.network, inv.ifname
        ))
    })?;
    let (phase, msg) = phase_of(ep.status.as_ref());
    if phase != Phase::Ready {
        return Err(check_err(format!(
            "the endpoint is {}: {msg}",
            phase.as_str_name()
        )));
    }
    let has: BTreeSet<String> = [&ep.ipv4_address, &ep.ipv6_address]
        .into_iter()
        .filter(|a| !a.is_empty())
        .cloned()
        .collect();
    if has != want {
        return Err(check_err(format!(
            "weftd's endpoint has {has:?}, the ADD gave {want:?}"
        )));
    }
    if !want_mac.is_empty() && !ep.mac_address.eq_ignore_ascii_case(&want_mac) {
        return Err(check_err(format!(
            "weftd's endpoint has MAC {}, the ADD gave {want_mac}",
            ep.mac_address
        )));
    }
    Ok(())
}

/// GC (CNI 1.1): every endpoint on this network whose namespace object carries
/// [`LABEL_CONTAINER`] and whose (container id, interface) is not in
/// `cni.dev/valid-attachments` is released, as DEL would release it. Endpoints weft-cni did
/// not make (no such label) are never touched.
async fn gc(c: &Client, conf: &NetConf) -> Result<(), CniError> {
    // Without the list every CNI endpoint would look stale: refuse rather than remove them.
    let valid: BTreeSet<&(String, String)> = conf
        .valid_attachments
        .as_ref()
        .ok_or_else(|| {
            CniError::new(
                code::INVALID_CONFIG,
                "GC needs \"cni.dev/valid-attachments\" (an empty list removes every attachment)",
            )
        })?
        .iter()
        .collect();
    let net = network(c, conf).await?;
    let ours = c
        .list_all_namespaces(tonic::Request::new(ListNamespacesRequest {
            label_selector: LABEL_CONTAINER.into(),
            ..Default::default()
        }))
        .await
        .map_err(|s| rpc_err("listing namespaces", &s))?
        .into_inner()
        .namespaces;
    let cid: BTreeMap<&str, &str> = ours
        .iter()
        .filter_map(|n| Some((n.name.as_str(), n.labels.get(LABEL_CONTAINER)?.as_str())))
        .collect();
    for ep in &net.endpoints {
        let Some(id) = cid.get(ep.namespace.as_str()) else {
            continue;
        };
        if !valid.contains(&(id.to_string(), ep.interface_name.clone())) {
            release(c, &ep.namespace, Some(&conf.network)).await?;
        }
    }
    Ok(())
}

/// STATUS (CNI 1.1): success when weftd answers and the network is Ready; weftd unreachable,
/// the network missing or not Ready is code 50, the spec's "cannot service ADD requests".
async fn status(c: &Client, conf: &NetConf) -> Result<(), CniError> {
    let net = network(c, conf)
        .await
        .map_err(|e| CniError::new(code::NOT_AVAILABLE, e.msg))?;
    let (phase, msg) = phase_of(net.status.as_ref());
    if phase != Phase::Ready {
        return Err(CniError::new(
            code::NOT_AVAILABLE,
            format!(
                "weft network {:?} is {}: {msg}",
                conf.network,
                phase.as_str_name()
            ),
        ));
    }
    Ok(())
}
