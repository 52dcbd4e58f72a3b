//! Helpers for the self-healing tests (selfheal.rs, crash.rs, churn.rs), on top of the
//! [`Sandbox`](crate::common::Sandbox):
//! - [`info`]: GetSystemInfo's counters;
//! - [`KernelView`]: everything weft could own in a sandbox, read with `ip -j` and `nft -j`:
//!   the interfaces of the scratch host and of every file in weftd's netns dir, and the
//!   elements of the DNAT maps;
//! - [`DbView`]: weftd's SQLite database, read with sqlx once the daemon is stopped, with
//!   `PRAGMA integrity_check` and `PRAGMA foreign_key_check`;
//! - [`consistency_problems`]: the full leak and consistency list of issue 4 (every object
//!   converged in the kernel, nothing marked without an owner, no lease or DNAT element
//!   without an endpoint), comparing the two views;
//! - API helpers: listing everything, waiting until every object is Ready.
//!
//! Each test file includes it with `mod heal;` and uses part of it.
#![allow(dead_code)]

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fs,
    path::Path,
    time::{Duration, Instant},
};

use serde_json::Value;
use sqlx::{Connection, SqliteConnection, sqlite::SqliteConnectOptions};
use weft::v1::{
    GetSystemInfoRequest, GetSystemInfoResponse, Link, ListLinksRequest, ListNamespacesRequest,
    ListNetworksRequest, Namespace, Network, Phase, system_service_client::SystemServiceClient,
};

use crate::common::{Sandbox, mount_points, rpc};

/// The DNAT maps of `inet weft`.
pub const DNAT_MAPS: [&str; 4] = ["dnat4", "dnat4_any", "dnat6", "dnat6_any"];

/// GetSystemInfo; panics on error.
pub async fn info(c: &weft::Client) -> GetSystemInfoResponse {
    let mut s = SystemServiceClient::new(c.channel());
    rpc(s.get_system_info(GetSystemInfoRequest {}))
        .await
        .expect("GetSystemInfo")
}

// ---- the API ----

/// Every namespace, link and network (with endpoints) as the API lists them.
#[derive(Clone, Debug, Default)]
pub struct ApiView {
    /// ListNamespaces.
    pub namespaces: Vec<Namespace>,
    /// ListLinks (all namespaces).
    pub links: Vec<Link>,
    /// ListNetworks, each with its endpoints and usage.
    pub networks: Vec<Network>,
}

impl ApiView {
    /// Lists everything; panics on an RPC error.
    pub async fn read(c: &weft::Client) -> ApiView {
        let namespaces = rpc(c
            .namespaces()
            .list_namespaces(ListNamespacesRequest::default()))
        .await
        .expect("ListNamespaces")
        .namespaces;
        let links = rpc(c.links().list_links(ListLinksRequest::default()))
            .await
            .expect("ListLinks")
            .links;
        let networks = rpc(c.networks().list_networks(ListNetworksRequest::default()))
            .await
            .expect("ListNetworks")
            .networks;
        ApiView {
            namespaces,
            links,
            networks,
        }
    }

    /// The objects that are not Ready at their generation, with their status.
    pub fn not_ready(&self) -> Vec<String> {
        fn bad(s: Option<&weft::v1::Status>, generation: Option<i64>) -> bool {
            match s {
                None => true,
                Some(s) => {
                    s.phase() != Phase::Ready
                        || generation.is_some_and(|g| s.observed_generation < g)
                }
            }
        }
        let mut out = Vec::new();
        for n in &self.namespaces {
            if bad(n.status.as_ref(), Some(n.generation)) {
                out.push(format!("namespace {}: {:?}", n.name, n.status));
            }
        }
        for l in &self.links {
            if bad(l.status.as_ref(), Some(l.generation)) {
                out.push(format!("link {}/{}: {:?}", l.namespace, l.name, l.status));
            }
        }
        for n in &self.networks {
            if bad(n.status.as_ref(), Some(n.generation)) {
                out.push(format!("network {}: {:?}", n.name, n.status));
            }
            for e in &n.endpoints {
                if bad(e.status.as_ref(), None) {
                    out.push(format!(
                        "endpoint {}/{}: {:?}",
                        n.name, e.namespace, e.status
                    ));
                }
            }
        }
        out
    }

    /// One network by name; panics when missing.
    pub fn network(&self, name: &str) -> &Network {
        self.networks
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no network {name} in {:?}", self.networks))
    }
}

/// Polls the API until every object is Ready and the reconcile queue is empty; returns that
/// view. Panics after `timeout` naming what is not Ready (or at once when weftd panicked).
pub async fn wait_all_ready(sb: &Sandbox, timeout: Duration) -> ApiView {
    let c = sb.client();
    let deadline = Instant::now() + timeout;
    loop {
        assert!(
            !sb.log().contains("panicked at"),
            "weftd panicked while converging (its log follows)"
        );
        let v = ApiView::read(&c).await;
        let bad = v.not_ready();
        let depth = info(&c).await.queue_depth;
        if bad.is_empty() && depth == 0 {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "not converged after {timeout:?}: queue depth {depth}, {} objects not Ready: {:#?}",
            bad.len(),
            &bad[..bad.len().min(20)]
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

// ---- the kernel ----

/// One interface as `ip -j -d link` and `ip -j addr` show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iface {
    /// Its name.
    pub name: String,
    /// Its index.
    pub index: u64,
    /// Its alias ("" without one).
    pub alias: String,
    /// Its bridge ("" without one).
    pub master: String,
    /// Administratively up.
    pub up: bool,
    /// `linkinfo.info_kind` ("veth", "bridge", "" for loopback).
    pub kind: String,
    /// Global addresses as "addr/prefix", sorted.
    pub addrs: Vec<String>,
}

impl Iface {
    /// The uid of the mark `weft:<uid>`, if the alias is one.
    pub fn mark(&self) -> Option<&str> {
        self.alias.strip_prefix("weft:")
    }
}

/// The interfaces of a namespace file (`""` is the scratch host); Err when the file is no
/// namespace (nsenter or ip fails) or the output is not what `ip -j` prints.
pub fn ifaces(sb: &Sandbox, ns: &str) -> Result<Vec<Iface>, String> {
    let out = sb.exec_in(
        ns,
        &["sh", "-c", "ip -j -d link show && echo && ip -j addr show"],
    );
    if !out.status.success() {
        return Err(format!(
            "ip in {ns:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut docs = text.lines().filter(|l| !l.trim().is_empty());
    let parse = |s: Option<&str>| -> Result<Vec<Value>, String> {
        let s = s.ok_or("ip printed too little")?;
        match serde_json::from_str(s).map_err(|e| format!("{e}: {s}"))? {
            Value::Array(a) => Ok(a),
            other => Err(format!("not an array: {other}")),
        }
    };
    let links = parse(docs.next())?;
    let addrs = parse(docs.next())?;
    let mut by_index: HashMap<u64, Vec<String>> = HashMap::new();
    for l in &addrs {
        let idx = l["ifindex"].as_u64().unwrap_or_default();
        for a in l["addr_info"].as_array().into_iter().flatten() {
            if a["scope"] == "link" || a["scope"] == "host" {
                continue;
            }
            by_index.entry(idx).or_default().push(format!(
                "{}/{}",
                a["local"].as_str().unwrap_or_default(),
                a["prefixlen"]
            ));
        }
    }
    Ok(links
        .iter()
        .map(|l| {
            let index = l["ifindex"].as_u64().unwrap_or_default();
            let mut addrs = by_index.remove(&index).unwrap_or_default();
            addrs.sort();
            Iface {
                name: l["ifname"].as_str().unwrap_or_default().to_string(),
                index,
                alias: l["ifalias"].as_str().unwrap_or_default().to_string(),
                master: l["master"].as_str().unwrap_or_default().to_string(),
                up: l["flags"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|x| x == "UP")),
                kind: l["linkinfo"]["info_kind"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                addrs,
            }
        })
        .collect())
}

/// The names of the entries of weftd's netns dir.
pub fn netns_files(sb: &Sandbox) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(sb.netns_dir())
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// One element of a DNAT map as "key : value", the parts of each joined with " . " as nft
/// prints them ("tcp . 8080 : 10.1.0.2 . 80").
fn elem_string(e: &Value) -> String {
    fn part(v: &Value) -> String {
        match v {
            Value::Object(m) if m.contains_key("concat") => m["concat"]
                .as_array()
                .into_iter()
                .flatten()
                .map(part)
                .collect::<Vec<_>>()
                .join(" . "),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
    match e {
        Value::Array(kv) if kv.len() == 2 => format!("{} : {}", part(&kv[0]), part(&kv[1])),
        other => format!("<unexpected element {other}>"),
    }
}

/// The elements of one DNAT map of `inet weft` in the scratch host; Err when nft cannot list
/// it (the table or map is missing).
pub fn dnat_map(sb: &Sandbox, map: &str) -> Result<BTreeSet<String>, String> {
    let out = sb.exec_host(&["nft", "-j", "list", "map", "inet", "weft", map]);
    if !out.status.success() {
        return Err(format!(
            "nft list map inet weft {map}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    Ok(v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o.get("map"))
        .flat_map(|m| m.get("elem").and_then(Value::as_array).cloned())
        .flatten()
        .map(|e| elem_string(&e))
        .collect())
}

/// The DNAT element a published port of `addr` (no prefix) should be, in [`dnat_map`]'s
/// format, with the map it belongs in.
pub fn dnat_elem(
    host_ip: &str,
    proto: &str,
    host_port: u32,
    addr: &str,
    port: u32,
) -> (&'static str, String) {
    let v4 = !addr.contains(':');
    let value = format!("{addr} . {port}");
    match (host_ip.is_empty(), v4) {
        (true, true) => ("dnat4_any", format!("{proto} . {host_port} : {value}")),
        (true, false) => ("dnat6_any", format!("{proto} . {host_port} : {value}")),
        (false, true) => (
            "dnat4",
            format!("{host_ip} . {proto} . {host_port} : {value}"),
        ),
        (false, false) => (
            "dnat6",
            format!("{host_ip} . {proto} . {host_port} : {value}"),
        ),
    }
}

/// `nft -j list ruleset` of the scratch host, with handles, less the metainfo object.
pub fn ruleset_with_handles(sb: &Sandbox) -> Value {
    let out = sb.host_ok(&["nft", "-j", "list", "ruleset"]);
    let mut v: Value = serde_json::from_str(&out).expect("nft -j list ruleset");
    if let Some(a) = v["nftables"].as_array_mut() {
        a.retain(|o| o.get("metainfo").is_none());
    }
    v
}

/// `inet weft` in the scratch host (`nft -j list table`) without handles, the metainfo
/// object and map elements: its structure and rules. Err when nft cannot list it.
pub fn weft_table_rules(sb: &Sandbox) -> Result<Value, String> {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.retain(|k, _| k != "handle" && k != "elem" && k != "metainfo");
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => {
                a.retain(|o| o.get("metainfo").is_none());
                a.iter_mut().for_each(strip);
            }
            _ => {}
        }
    }
    let out = sb.exec_host(&["nft", "-j", "list", "table", "inet", "weft"]);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    let mut v: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    strip(&mut v);
    Ok(v)
}

/// What the kernel of a sandbox holds that weft could own.
#[derive(Clone, Debug, Default)]
pub struct KernelView {
    /// The scratch host's interfaces.
    pub host: Vec<Iface>,
    /// Every entry of the netns dir: its interfaces, or why they could not be read.
    pub ns: BTreeMap<String, Result<Vec<Iface>, String>>,
    /// Entries of the netns dir that are mount points (live namespace files).
    pub mounted: BTreeSet<String>,
    /// The DNAT maps' elements (an error when a map could not be listed).
    pub dnat: BTreeMap<String, Result<BTreeSet<String>, String>>,
}

impl KernelView {
    /// Reads it all.
    pub fn read(sb: &Sandbox) -> KernelView {
        let host = ifaces(sb, "").expect("the scratch host's interfaces");
        let mounts = mount_points();
        let mut ns = BTreeMap::new();
        let mut mounted = BTreeSet::new();
        for name in netns_files(sb) {
            if mounts.contains(&sb.ns_path(&name)) {
                mounted.insert(name.clone());
            }
            let v = ifaces(sb, &name);
            ns.insert(name, v);
        }
        let dnat = DNAT_MAPS
            .iter()
            .map(|m| (m.to_string(), dnat_map(sb, m)))
            .collect();
        KernelView {
            host,
            ns,
            mounted,
            dnat,
        }
    }

    /// The interfaces of namespace `ns` (`""` is the host), if it could be read.
    pub fn ifaces_of(&self, ns: &str) -> Option<&[Iface]> {
        if ns.is_empty() {
            return Some(&self.host);
        }
        self.ns
            .get(ns)
            .and_then(|r| r.as_ref().ok())
            .map(Vec::as_slice)
    }

    /// Interface `name` in `ns`.
    pub fn iface(&self, ns: &str, name: &str) -> Option<&Iface> {
        self.ifaces_of(ns)?.iter().find(|i| i.name == name)
    }

    /// Every marked interface but loopbacks, as (namespace, interface).
    pub fn marked(&self) -> Vec<(String, &Iface)> {
        let mut out: Vec<(String, &Iface)> = self
            .host
            .iter()
            .filter(|i| i.mark().is_some() && i.index != 1)
            .map(|i| (String::new(), i))
            .collect();
        for (ns, r) in &self.ns {
            for i in r.iter().flatten() {
                if i.mark().is_some() && i.index != 1 {
                    out.push((ns.clone(), i));
                }
            }
        }
        out
    }

    /// All elements of all DNAT maps, as (map, element).
    pub fn dnat_elems(&self) -> BTreeSet<(String, String)> {
        self.dnat
            .iter()
            .flat_map(|(m, r)| {
                r.iter()
                    .flatten()
                    .map(move |e| (m.clone(), e.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

// ---- the database ----

/// An endpoint row.
#[derive(Clone, Debug)]
pub struct DbEndpoint {
    /// Its uid (the mark of its veth).
    pub id: String,
    /// Its network's uid.
    pub network_id: String,
    /// Its namespace's name.
    pub namespace: String,
    /// The inside interface.
    pub ifname: String,
    /// The host end (`wv…`).
    pub host_ifname: String,
    /// Marked for deletion.
    pub deleting: bool,
}

/// A published port row.
#[derive(Clone, Debug)]
pub struct DbMapping {
    /// The endpoint's uid.
    pub endpoint_id: String,
    /// '' for every host address.
    pub host_ip: String,
    /// "tcp", "udp", "sctp".
    pub protocol: String,
    /// Host port.
    pub host_port: u32,
    /// Container port.
    pub container_port: u32,
}

/// weftd's database, read after the daemon stopped.
#[derive(Clone, Debug, Default)]
pub struct DbView {
    /// `PRAGMA integrity_check` rows ("ok" alone when sound).
    pub integrity: Vec<String>,
    /// Rows of `PRAGMA foreign_key_check`, as text.
    pub fk_violations: Vec<String>,
    /// (uid, name, adopted path).
    pub namespaces: Vec<(String, String, Option<String>)>,
    /// Link uids.
    pub links: Vec<String>,
    /// (link uid, namespace name or "" for the host, interface name), one per end.
    pub link_ends: Vec<(String, String, String)>,
    /// (uid, name, bridge).
    pub networks: Vec<(String, String, String)>,
    /// Endpoint rows.
    pub endpoints: Vec<DbEndpoint>,
    /// (network uid, address, prefix length, endpoint uid).
    pub leases: Vec<(String, String, i64, String)>,
    /// Published ports.
    pub mappings: Vec<DbMapping>,
    /// Remembered request ids: (id, method, object uid).
    pub requests: Vec<(String, String, String)>,
}

/// Opens weftd's database file (the daemon must be stopped).
pub async fn open_db(path: &Path) -> SqliteConnection {
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .foreign_keys(true);
    SqliteConnection::connect_with(&opts)
        .await
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

impl DbView {
    /// Reads the database at `path`.
    pub async fn read(path: &Path) -> DbView {
        let mut db = open_db(path).await;
        let integrity: Vec<(String,)> = sqlx::query_as("PRAGMA integrity_check")
            .fetch_all(&mut db)
            .await
            .expect("PRAGMA integrity_check");
        let fk: Vec<(String, Option<i64>, String, Option<i64>)> =
            sqlx::query_as("PRAGMA foreign_key_check")
                .fetch_all(&mut db)
                .await
                .expect("PRAGMA foreign_key_check");
        let namespaces = sqlx::query_as("SELECT id, name, adopted_path FROM namespaces")
            .fetch_all(&mut db)
            .await
            .expect("namespaces");
        let links: Vec<(String,)> = sqlx::query_as("SELECT id FROM links")
            .fetch_all(&mut db)
            .await
            .expect("links");
        let link_ends = sqlx::query_as(
            "SELECT i.link_id, IFNULL(n.name, ''), i.name FROM link_ifaces i \
             LEFT JOIN namespaces n ON n.id = i.namespace_id",
        )
        .fetch_all(&mut db)
        .await
        .expect("link_ifaces");
        let networks = sqlx::query_as("SELECT id, name, bridge_name FROM networks")
            .fetch_all(&mut db)
            .await
            .expect("networks");
        let endpoints: Vec<(String, String, String, String, String, i64)> = sqlx::query_as(
            "SELECT e.id, e.network_id, n.name, e.ifname, e.host_ifname, e.deleting \
             FROM endpoints e JOIN namespaces n ON n.id = e.namespace_id",
        )
        .fetch_all(&mut db)
        .await
        .expect("endpoints");
        let leases =
            sqlx::query_as("SELECT network_id, address, prefix_len, endpoint_id FROM leases")
                .fetch_all(&mut db)
                .await
                .expect("leases");
        let mappings: Vec<(String, String, String, i64, i64)> = sqlx::query_as(
            "SELECT endpoint_id, host_ip, protocol, host_port, container_port FROM port_mappings",
        )
        .fetch_all(&mut db)
        .await
        .expect("port_mappings");
        let requests = sqlx::query_as("SELECT request_id, method, object_id FROM requests")
            .fetch_all(&mut db)
            .await
            .expect("requests");
        let _ = db.close().await;
        DbView {
            integrity: integrity.into_iter().map(|r| r.0).collect(),
            fk_violations: fk.into_iter().map(|r| format!("{r:?}")).collect(),
            namespaces,
            links: links.into_iter().map(|r| r.0).collect(),
            link_ends,
            networks,
            endpoints: endpoints
                .into_iter()
                .map(
                    |(id, network_id, namespace, ifname, host_ifname, deleting)| DbEndpoint {
                        id,
                        network_id,
                        namespace,
                        ifname,
                        host_ifname,
                        deleting: deleting != 0,
                    },
                )
                .collect(),
            leases,
            mappings: mappings
                .into_iter()
                .map(|(endpoint_id, host_ip, protocol, hp, cp)| DbMapping {
                    endpoint_id,
                    host_ip,
                    protocol,
                    host_port: hp as u32,
                    container_port: cp as u32,
                })
                .collect(),
            requests,
        }
    }

    /// The leased addresses of an endpoint, as "addr/prefix", sorted.
    pub fn leases_of(&self, endpoint_id: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .leases
            .iter()
            .filter(|l| l.3 == endpoint_id)
            .map(|l| format!("{}/{}", l.1, l.2))
            .collect();
        v.sort();
        v
    }

    /// The DNAT elements the published ports call for, as (map, element).
    pub fn expected_dnat(&self) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for m in &self.mappings {
            for l in self.leases.iter().filter(|l| l.3 == m.endpoint_id) {
                let v4 = !l.1.contains(':');
                if !m.host_ip.is_empty() && m.host_ip.contains(':') == v4 {
                    continue;
                }
                let (map, e) =
                    dnat_elem(&m.host_ip, &m.protocol, m.host_port, &l.1, m.container_port);
                out.insert((map.to_string(), e));
            }
        }
        out
    }
}

// ---- the consistency check ----

/// Everything wrong between the database and the kernel, with the daemon stopped (or idle):
/// - the database is sound (`integrity_check` ok, no foreign key violations);
/// - every namespace row has its live, mounted file with loopback up and marked with its uid,
///   and every file in the netns dir is a namespace row's (but those in `foreign_files`);
/// - every link, network and endpoint row is whole in the kernel: each interface where it
///   belongs, marked with its uid, up; an endpoint's host end on its network's bridge and its
///   inside end holding exactly its leases;
/// - nothing marked is left over: every interface with a `weft:` alias is one of those;
///   no `wv*` interface in the host but endpoints' host ends;
/// - every lease belongs to an endpoint, and no address is leased twice in a network;
/// - the DNAT maps hold exactly the elements the published ports call for.
pub fn consistency_problems(k: &KernelView, db: &DbView, foreign_files: &[&str]) -> Vec<String> {
    let mut p = Vec::new();
    if db.integrity != ["ok"] {
        p.push(format!("PRAGMA integrity_check: {:?}", db.integrity));
    }
    if !db.fk_violations.is_empty() {
        p.push(format!("PRAGMA foreign_key_check: {:?}", db.fk_violations));
    }

    // Namespaces and their files.
    let ns_uid: HashMap<&str, &str> = db
        .namespaces
        .iter()
        .map(|(id, name, _)| (name.as_str(), id.as_str()))
        .collect();
    for (id, name, adopted) in &db.namespaces {
        if adopted.is_some() {
            continue;
        }
        if !k.mounted.contains(name) {
            p.push(format!(
                "namespace {name}: its file is not a mounted namespace"
            ));
        }
        match k.ns.get(name) {
            None => p.push(format!("namespace {name}: no file in the netns dir")),
            Some(Err(e)) => p.push(format!("namespace {name}: unreadable: {e}")),
            Some(Ok(ifs)) => match ifs.iter().find(|i| i.index == 1) {
                // `weft:<uid>@<owner>`: the owner is the weftd's host namespace.
                Some(lo) if lo.alias.starts_with(&format!("weft:{id}@")) && lo.up => {}
                other => p.push(format!(
                    "namespace {name}: loopback should be up and marked weft:{id}@<owner>, is {other:?}"
                )),
            },
        }
    }
    for (name, r) in &k.ns {
        if ns_uid.contains_key(name.as_str()) || foreign_files.contains(&name.as_str()) {
            continue;
        }
        let lo = r
            .as_ref()
            .ok()
            .and_then(|v| v.iter().find(|i| i.index == 1).cloned());
        p.push(format!(
            "file {name} in the netns dir belongs to no namespace (loopback {lo:?})"
        ));
    }

    // Where each owner's interfaces must be: (namespace, name) -> uid.
    let mut owned: BTreeMap<(String, String), String> = BTreeMap::new();
    for (id, ns, name) in &db.link_ends {
        owned.insert((ns.clone(), name.clone()), id.clone());
    }
    let mut bridge_of: HashMap<&str, &str> = HashMap::new();
    for (id, _, bridge) in &db.networks {
        owned.insert((String::new(), bridge.clone()), id.clone());
        bridge_of.insert(id.as_str(), bridge.as_str());
    }
    for e in &db.endpoints {
        owned.insert((String::new(), e.host_ifname.clone()), e.id.clone());
        owned.insert((e.namespace.clone(), e.ifname.clone()), e.id.clone());
    }
    for ((ns, name), uid) in &owned {
        match k.iface(ns, name) {
            None => p.push(format!("{name} in {} (owner {uid}) is missing", where_(ns))),
            Some(i) => {
                if i.mark() != Some(uid.as_str()) {
                    p.push(format!(
                        "{name} in {} carries alias {:?}, not weft:{uid}",
                        where_(ns),
                        i.alias
                    ));
                }
                if !i.up {
                    p.push(format!("{name} in {} is down", where_(ns)));
                }
            }
        }
    }
    for (ns, i) in k.marked() {
        let uid = i.mark().unwrap_or_default();
        match owned.get(&(ns.clone(), i.name.clone())) {
            Some(o) if o == uid => {}
            Some(o) => p.push(format!(
                "{} in {} is marked weft:{uid} but belongs to {o}",
                i.name,
                where_(&ns)
            )),
            None => p.push(format!(
                "{} in {} is marked weft:{uid}, which owns no such interface (half-made or orphan)",
                i.name,
                where_(&ns)
            )),
        }
    }
    let host_ends: BTreeSet<&str> = db
        .endpoints
        .iter()
        .map(|e| e.host_ifname.as_str())
        .collect();
    for i in &k.host {
        if i.name.starts_with("wv") && !host_ends.contains(i.name.as_str()) {
            p.push(format!(
                "host interface {} (alias {:?}) is no endpoint's",
                i.name, i.alias
            ));
        }
    }

    // Endpoints: bridge port, leases on the inside end.
    for e in &db.endpoints {
        if let Some(h) = k.iface("", &e.host_ifname) {
            let want = bridge_of.get(e.network_id.as_str()).copied().unwrap_or("?");
            if h.master != want {
                p.push(format!(
                    "endpoint {} ({}): host end {} has master {:?}, not {want:?}",
                    e.id, e.namespace, e.host_ifname, h.master
                ));
            }
        }
        let leases = db.leases_of(&e.id);
        if leases.is_empty() {
            p.push(format!(
                "endpoint {} ({}) holds no lease",
                e.id, e.namespace
            ));
        }
        if let Some(i) = k.iface(&e.namespace, &e.ifname)
            && i.addrs != leases
        {
            p.push(format!(
                "endpoint {} ({}): {} holds {:?}, its leases are {leases:?}",
                e.id, e.namespace, e.ifname, i.addrs
            ));
        }
    }

    // Leases.
    let ep_ids: BTreeSet<&str> = db.endpoints.iter().map(|e| e.id.as_str()).collect();
    let mut seen: BTreeMap<(&str, &str), &str> = BTreeMap::new();
    for (net, addr, _, ep) in &db.leases {
        if !ep_ids.contains(ep.as_str()) {
            p.push(format!(
                "lease {addr} of network {net} has no endpoint ({ep})"
            ));
        }
        if let Some(other) = seen.insert((net.as_str(), addr.as_str()), ep.as_str()) {
            p.push(format!("address {addr} leased twice: {other} and {ep}"));
        }
    }

    // DNAT elements.
    for (m, r) in &k.dnat {
        if let Err(e) = r {
            p.push(format!("DNAT map {m}: {e}"));
        }
    }
    let want = db.expected_dnat();
    let have = k.dnat_elems();
    for (m, e) in have.difference(&want) {
        p.push(format!("DNAT element without an endpoint in {m}: {e}"));
    }
    for (m, e) in want.difference(&have) {
        p.push(format!("DNAT element missing from {m}: {e}"));
    }
    p
}

fn where_(ns: &str) -> String {
    if ns.is_empty() {
        "the host".into()
    } else {
        format!("namespace {ns}")
    }
}

/// Stops weftd (SIGTERM, asserting a clean exit), then reads the kernel and the database.
pub async fn stop_and_read(sb: &mut Sandbox) -> (KernelView, DbView) {
    let status = sb.stop();
    assert!(
        status.success(),
        "weftd exited with {status} on SIGTERM\n--- weftd log ---\n{}",
        sb.log()
    );
    let k = KernelView::read(sb);
    let db = DbView::read(&sb.dir().join("weft.db")).await;
    (k, db)
}

/// Panics listing `problems` (at most 40) unless it is empty.
#[track_caller]
pub fn assert_no_problems(what: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{what}: {} problems:\n{}",
        problems.len(),
        problems
            .iter()
            .take(40)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The weftd log lines that mention `needle` (at most 20), for failure messages.
pub fn log_lines(sb: &Sandbox, needle: &str) -> String {
    sb.log()
        .lines()
        .filter(|l| l.contains(needle))
        .take(20)
        .collect::<Vec<_>>()
        .join("\n")
}

// ---- API shorthands ----

/// Creates a network with one IPv4 subnet (gateway: the first address), waiting; asserts it
/// is Ready.
pub async fn create_net(c: &weft::Client, name: &str, bridge: &str, subnet: &str) -> Network {
    let n = rpc(c.networks().create_network(weft::v1::CreateNetworkRequest {
        network: Some(Network {
            name: name.into(),
            bridge_name: bridge.into(),
            subnets: vec![weft::v1::Subnet {
                subnet: subnet.into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }))
    .await
    .unwrap_or_else(|s| panic!("CreateNetwork {name}: {s:?}"))
    .network
    .expect("CreateNetwork answered no network");
    crate::common::assert_ready(&format!("network {name}"), n.generation, n.status.as_ref());
    n
}

/// A published TCP port on every host address.
pub fn tcp(host_port: u32, container_port: u32) -> weft::v1::PublishedPort {
    weft::v1::PublishedPort {
        host_port,
        container_port,
        protocol: "tcp".into(),
        ..Default::default()
    }
}

/// A Connect request (waiting) of `ns` to `net` publishing `ports`.
pub fn connect_req(
    net: &str,
    ns: &str,
    ports: Vec<weft::v1::PublishedPort>,
) -> weft::v1::ConnectRequest {
    weft::v1::ConnectRequest {
        network: net.into(),
        namespace: ns.into(),
        published_ports: ports,
        ..Default::default()
    }
}

/// Connects (waiting) and asserts the endpoint is Ready; returns it.
pub async fn connect_ok(c: &weft::Client, req: weft::v1::ConnectRequest) -> weft::v1::Endpoint {
    let what = format!("Connect {} to {}", req.namespace, req.network);
    let ep = rpc(c.networks().connect(req))
        .await
        .unwrap_or_else(|s| panic!("{what}: {s:?}"))
        .endpoint
        .expect("Connect answered no endpoint");
    let s = ep.status.clone().unwrap_or_default();
    assert_eq!(s.phase(), Phase::Ready, "{what}: {s:?}");
    ep
}

/// The address part of "addr/prefix".
pub fn addr_part(cidr: &str) -> &str {
    cidr.split('/').next().unwrap_or_default()
}
