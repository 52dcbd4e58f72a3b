//! Endpoint rows (the [`Kind`] of endpoints) with their leases and published ports, and
//! `connect`, which makes them. Lease picking and port checks run inside one
//! `BEGIN IMMEDIATE` transaction per request, so two concurrent requests are serialised and
//! can never take the same address or host port; the primary keys on leases and mappings
//! guard the same invariants a second time.
//!
//! An endpoint row is read joined with its network's and namespace's names and with its
//! leases (one per subnet), so an [`EndpointRow`] is everything a reconcile of it needs. Its
//! leases and port mappings are deleted with it (`ON DELETE CASCADE`). The rules of a connect
//! (preconditions, lease choice, refusals) are [`crate::model::connect`]'s.

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    sync::Mutex,
};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{
    Columns, Kind, RequestRecord, RowCache, Store, StoreError, decode, encode,
    kind::status_of,
    now_ms,
    ports::{publish_ports, resolve_ports},
    raw::{Arg, Failure, Raw},
};
use crate::model::{
    BRIDGE_PORTS, ConnectFacts, ConnectSpec, EndpointSpec, LeaseAsk, NetworkSpec, Phase, Protocol,
    Status, SubnetSpec,
    connect::bridge_ports,
    connect::{LEASE_BATCH, MAC_ATTEMPTS, derived_mac, first_free},
    port::DEFAULT_LOCAL_PORT_RANGE,
};

/// What the reconciler saw of an endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EndpointObserved {
    /// The inside interface's MAC.
    pub mac: String,
}

/// What a namespace's resolv.conf is made of ([`Store::resolv_sources`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolvSources {
    /// weft writes the namespace's resolv.conf: it is not adopted, nor being deleted.
    pub written: bool,
    /// The network uid and leased addresses of each live endpoint, in connect order.
    pub endpoints: Vec<(String, Vec<IpNet>)>,
}

/// An endpoint's leases as its query returns them (`addr/len` separated by spaces, or NULL
/// for none), IPv4 first.
fn leases(text: Option<String>) -> Result<Vec<IpNet>, StoreError> {
    let mut addresses = text
        .unwrap_or_default()
        .split_whitespace()
        .map(|a| {
            a.parse::<IpNet>()
                .map_err(|e| StoreError::Corrupt(format!("lease {a}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    addresses.sort_by_key(|a| a.addr().is_ipv6());
    Ok(addresses)
}

/// A stored endpoint, with its leases and its network's and namespace's names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointRow {
    /// Opaque uid; the ownership mark of its veth is `weft:<id>`.
    pub id: String,
    /// The network's uid.
    pub network_id: String,
    /// The network's name.
    pub network: String,
    /// The namespace's name.
    pub namespace: String,
    /// The host end of the veth (a port of the bridge).
    pub host_ifname: String,
    /// The spec.
    pub spec: EndpointSpec,
    /// Leased addresses with the subnet's prefix length.
    pub addresses: Vec<IpNet>,
    /// The inside interface's MAC, chosen at connect time (the client's, or derived from the
    /// lease; unique on the network) and set again whenever the interface is re-created.
    /// None only for an endpoint from before weft kept MACs whose MAC was unknown or shared.
    pub mac: Option<String>,
    /// Bumped on every spec change.
    pub generation: i64,
    /// Disconnect requested.
    pub deleting: bool,
    /// Observed state.
    pub status: Status,
    /// Observed details.
    pub observed: EndpointObserved,
}

impl Kind for EndpointRow {
    const TABLE: &'static str = "endpoints";
    const NOUN: &'static str = "endpoint";
    const SELECT: &'static str = "SELECT e.id, e.network_id, w.name AS network, \
         n.name AS namespace, e.host_ifname, e.spec, e.mac, e.generation, e.deleting, e.phase, \
         e.rechecking, e.observed_generation, e.message, e.status, \
         (SELECT group_concat(l.address || '/' || l.prefix_len, ' ') FROM leases l \
          WHERE l.endpoint_id = e.id) AS addrs \
         FROM endpoints e JOIN networks w ON w.id = e.network_id \
         JOIN namespaces n ON n.id = e.namespace_id";
    const ID: &'static str = "e.id";
    const ORDER: &'static str = "e.created_at, e.id";
    /// The inside interface's MAC.
    type Observed = EndpointObserved;

    fn decode(r: &impl Columns) -> Result<Self, StoreError> {
        let id: String = r.get("id")?;
        let addresses = leases(r.get("addrs")?)?;
        Ok(EndpointRow {
            network_id: r.get("network_id")?,
            network: r.get("network")?,
            namespace: r.get("namespace")?,
            host_ifname: r.get("host_ifname")?,
            spec: decode(|| format!("endpoint {id} spec"), r.get("spec")?)?,
            addresses,
            mac: r.get("mac")?,
            generation: r.get("generation")?,
            deleting: r.get::<i64>("deleting")? != 0,
            status: status_of(r)?,
            observed: decode(|| format!("endpoint {id} status"), r.get("status")?)?,
            id,
        })
    }

    fn observed_column(
        observed: &EndpointObserved,
    ) -> Result<Option<(&'static str, String)>, StoreError> {
        Ok(Some(("status", encode(observed)?)))
    }

    /// The rows a connect or disconnect just wrote, for the reconcile and the waiting
    /// request that read them next.
    fn cache(store: &Store) -> Option<&Mutex<RowCache<Self>>> {
        Some(&store.endpoints)
    }

    /// Only writes fill it: a resync reading every endpoint would churn it for nothing.
    const CACHE_READS: bool = false;

    /// A few requests' worth (a row is well under 1 KiB).
    const CACHE_CAP: usize = 1024;

    fn set_observed(&mut self, status: &Status, observed: &EndpointObserved) -> bool {
        self.status = status.clone();
        self.observed = observed.clone();
        true
    }

    fn has_status(&self, status: &Status, observed: &EndpointObserved) -> Option<bool> {
        Some(self.status == *status && self.observed == *observed)
    }
}

/// What `connect` reads first, in one row: network id, spec and deleting; namespace id and
/// deleting; already connected, interface name taken, already routed by default; the
/// network's subnet cursors (`<cidr> <address or ->` joined by `,`).
/// Where a connect that met its preconditions goes.
struct Admitted {
    /// The network's uid.
    net_id: String,
    /// The network's spec (its subnets).
    net_spec: NetworkSpec,
    /// The namespace's uid.
    ns_id: String,
    /// The endpoint as it will be stored ([`ConnectSpec::admit`]).
    endpoint: EndpointSpec,
    /// Each subnet's lease cursor (the last address handed out), by CIDR.
    cursors: HashMap<String, Option<IpAddr>>,
}

/// What [`Store::undo_connect`] needs to take a connect back.
#[derive(Clone, Debug)]
pub struct ConnectUndo {
    /// The endpoint's uid.
    id: String,
    /// Its network's uid.
    network_id: String,
    /// The request id the connect recorded, if any.
    request_id: Option<String>,
    /// Each subnet whose lease cursor the connect moved: CIDR, the cursor before, after.
    cursors: Vec<(String, Option<IpAddr>, IpAddr)>,
}

impl ConnectUndo {
    /// The endpoint's uid.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its network's uid.
    pub fn network_id(&self) -> &str {
        &self.network_id
    }
}

/// Reads every precondition of `req` in one statement (the network, the namespace, and
/// whether the namespace is on the network already, has the interface name taken, or routes
/// by default through another network) and checks them ([`ConnectSpec::admit`]). The same
/// statement reads the subnets' lease cursors.
fn admit(raw: Raw<'_>, req: &ConnectSpec) -> Result<Admitted, StoreError> {
    let found = raw.optional(
        concat!(
            "SELECT w.id, w.spec, w.deleting, n.id, n.deleting, \
             EXISTS (SELECT 1 FROM endpoints WHERE network_id = w.id AND namespace_id = n.id), \
             EXISTS (SELECT 1 FROM endpoints WHERE namespace_id = n.id AND ifname = ?3 \
                     UNION ALL SELECT 1 FROM link_ifaces WHERE namespace_id = n.id AND name = ?3), \
             EXISTS (SELECT 1 FROM endpoints WHERE namespace_id = n.id \
                     AND json_extract(spec, '$.default_route') = 1), \
             (SELECT group_concat(cidr || ' ' || IFNULL(cursor, '-'), ',') FROM subnets \
              WHERE network_id = w.id), \
             (SELECT count(*) FROM (SELECT 1 FROM endpoints WHERE network_id = w.id LIMIT ",
            bridge_ports!(),
            ")), (SELECT count(*) FROM (SELECT 1 FROM link_ifaces \
                                WHERE ns_key = '' AND master = w.bridge_name LIMIT ",
            bridge_ports!(),
            ")) FROM networks w, namespaces n WHERE w.name = ?1 AND n.name = ?2"
        ),
        &[
            (&req.network).into(),
            (&req.namespace).into(),
            (&req.endpoint.ifname).into(),
        ],
        |r| {
            let facts = ConnectFacts {
                network_deleting: r.at::<i64>(2)? != 0,
                namespace_deleting: r.at::<i64>(4)? != 0,
                already_connected: r.at::<i64>(5)? != 0,
                ifname_taken: r.at::<i64>(6)? != 0,
                routed_by_default: r.at::<i64>(7)? != 0,
                endpoints: u32::try_from(r.at::<i64>(9)?).unwrap_or(BRIDGE_PORTS),
                bridge_links: u32::try_from(r.at::<i64>(10)?).unwrap_or(BRIDGE_PORTS),
            };
            let net_spec: String = r.at(1)?;
            let cursors = r
                .at::<Option<&str>>(8)?
                .unwrap_or_default()
                .split(',')
                .filter_map(|c| c.split_once(' '))
                .map(|(cidr, at)| (cidr.to_string(), at.parse().ok()))
                .collect();
            Ok((
                r.at::<String>(0)?,
                net_spec,
                r.at::<String>(3)?,
                facts,
                cursors,
            ))
        },
    )?;
    let Some((net_id, net_spec, ns_id, facts, cursors)) = found else {
        let net = raw.optional(
            "SELECT 1 FROM networks WHERE name = ?",
            &[(&req.network).into()],
            |_| Ok(()),
        )?;
        return Err(req.not_found(net.is_some()).into());
    };
    let endpoint = req.admit(&facts)?;
    let net_spec: NetworkSpec = decode(|| "network spec".into(), &net_spec)?;
    req.check_ports(&net_spec)?;
    Ok(Admitted {
        net_id,
        net_spec,
        ns_id,
        endpoint,
        cursors,
    })
}

/// The leases a connect chose: one address (with its prefix length) per subnet, and the
/// subnets whose cursor moves (CIDR, new cursor).
#[derive(Default)]
struct Chosen {
    leases: Vec<(IpAddr, u8)>,
    cursors: Vec<(String, IpAddr)>,
}

/// One address per subnet of the network: the static one asked for, if no one holds it, or
/// the next free one after the subnet's cursor, which then moves to it.
fn lease(raw: Raw<'_>, req: &ConnectSpec, to: &Admitted) -> Result<Chosen, StoreError> {
    let mut chosen = Chosen::default();
    for s in &to.net_spec.subnets {
        let addr = match req.lease_ask(s)? {
            LeaseAsk::Static(a) => {
                let holder = raw.optional(
                    "SELECT n.name FROM leases l JOIN endpoints e ON e.id = l.endpoint_id \
                     JOIN namespaces n ON n.id = e.namespace_id \
                     WHERE l.network_id = ? AND l.address = ?",
                    &[(&to.net_id).into(), (&a.to_string()).into()],
                    |r| r.at::<String>(0),
                )?;
                if let Some(holder) = holder {
                    return Err(req.address_taken(a, &holder).into());
                }
                a
            }
            LeaseAsk::Next => {
                let cidr = s.subnet.to_string();
                let cursor = to.cursors.get(&cidr).copied().flatten();
                let a = next_free(raw, req, &to.net_id, s, cursor)?;
                chosen.cursors.push((cidr, a));
                a
            }
        };
        chosen.leases.push((addr, s.subnet.prefix_len()));
    }
    req.check_families(&to.net_spec)?;
    Ok(chosen)
}

/// The next free address of subnet `s` after its `cursor` (the insert then moves the cursor
/// to it). The candidates are checked a batch at a time with primary-key lookups: a
/// round-robin cursor almost always finds the first one free, so a connect reads a handful
/// of rows, not every lease.
fn next_free(
    raw: Raw<'_>,
    req: &ConnectSpec,
    net_id: &str,
    s: &SubnetSpec,
    cursor: Option<IpAddr>,
) -> Result<IpAddr, StoreError> {
    let mut candidates = s.candidates(cursor).peekable();
    while candidates.peek().is_some() {
        let batch: Vec<IpAddr> = candidates.by_ref().take(LEASE_BATCH).collect();
        let marks = vec!["?"; batch.len()].join(", ");
        let sql =
            format!("SELECT address FROM leases WHERE network_id = ? AND address IN ({marks})");
        let texts: Vec<String> = batch.iter().map(ToString::to_string).collect();
        let mut args: Vec<Arg<'_>> = vec![net_id.into()];
        args.extend(texts.iter().map(Arg::from));
        // Only "?" placeholders are formatted in; the addresses are bound.
        let leased: HashSet<IpAddr> = raw
            .rows(&sql, &args, |r| Ok(r.at::<&str>(0)?.parse().ok()))?
            .into_iter()
            .flatten()
            .collect();
        if let Some(a) = first_free(&batch, &leased) {
            return Ok(a);
        }
    }
    let in_use = raw
        .optional(
            "SELECT count(*) FROM leases WHERE network_id = ?",
            &[net_id.into()],
            |r| r.at::<i64>(0),
        )?
        .unwrap_or(0);
    Err(req.subnet_full(s, in_use).into())
}

/// The namespace on network `net_id` whose endpoint has MAC `mac`, if any.
fn mac_holder(raw: Raw<'_>, net_id: &str, mac: &str) -> Result<Option<String>, StoreError> {
    raw.optional(
        "SELECT n.name FROM endpoints e JOIN namespaces n ON n.id = e.namespace_id \
         WHERE e.network_id = ? AND e.mac = ?",
        &[net_id.into(), mac.into()],
        |r| r.at::<String>(0),
    )
}

/// The MAC of a new endpoint: the client's, if no endpoint of the network has it
/// (ALREADY_EXISTS otherwise), or the first free one [`derived_mac`] gives for its leases.
/// One indexed lookup per attempt; the first is nearly always free.
fn choose_mac(
    raw: Raw<'_>,
    req: &ConnectSpec,
    to: &Admitted,
    leases: &[(IpAddr, u8)],
) -> Result<Option<String>, StoreError> {
    if let Some(mac) = &to.endpoint.mac {
        if let Some(holder) = mac_holder(raw, &to.net_id, mac)? {
            return Err(req.mac_taken(mac, &holder).into());
        }
        return Ok(Some(mac.clone()));
    }
    let addrs: Vec<IpAddr> = leases.iter().map(|(a, _)| *a).collect();
    for attempt in 0..MAC_ATTEMPTS {
        let Some(mac) = derived_mac(&addrs, attempt) else {
            return Ok(None);
        };
        if mac_holder(raw, &to.net_id, &mac)?.is_none() {
            return Ok(Some(mac));
        }
    }
    Err(req.no_free_mac().into())
}

/// Writes the endpoint row `id` (its spec encoded as `spec`) with its MAC. A MAC another
/// endpoint of the network holds fails it (the unique index) with nothing written.
fn insert_endpoint(
    raw: Raw<'_>,
    id: &str,
    to: &Admitted,
    spec: &str,
    mac: Option<&str>,
) -> Result<(), Failure> {
    let now = now_ms();
    let host_ifname = crate::model::endpoint_host_ifname(id);
    raw.execute(
        "INSERT INTO endpoints (id, network_id, namespace_id, ifname, host_ifname, spec, mac, \
         created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        &[
            id.into(),
            (&to.net_id).into(),
            (&to.ns_id).into(),
            (&to.endpoint.ifname).into(),
            (&host_ifname).into(),
            spec.into(),
            mac.into(),
            now.into(),
            now.into(),
        ],
    )?;
    Ok(())
}

/// Writes endpoint `id`'s leases and moves the subnets' cursors to the addresses chosen.
fn insert_leases(raw: Raw<'_>, id: &str, to: &Admitted, chosen: &Chosen) -> Result<(), Failure> {
    for (a, p) in &chosen.leases {
        raw.execute(
            "INSERT INTO leases (network_id, address, prefix_len, endpoint_id) \
             VALUES (?, ?, ?, ?)",
            &[
                (&to.net_id).into(),
                (&a.to_string()).into(),
                i64::from(*p).into(),
                id.into(),
            ],
        )?;
    }
    for (cidr, a) in &chosen.cursors {
        raw.execute(
            "UPDATE subnets SET cursor = ? WHERE network_id = ? AND cidr = ?",
            &[(&a.to_string()).into(), (&to.net_id).into(), cidr.into()],
        )?;
    }
    Ok(())
}

/// Whether `f` is the unique index on (network, MAC) refusing an endpoint's MAC.
fn is_mac_taken(f: &Failure) -> bool {
    f.is_unique_violation() && f.message().contains("endpoints.mac")
}

impl Store {
    /// Connects a namespace to a network: the endpoint row, one lease per subnet (static or
    /// the next free one after the subnet's cursor) and the published ports, in one
    /// transaction. The rules are [`ConnectSpec`]'s ([`crate::model::connect`]).
    /// Host ports left out of the request are chosen from Linux's default
    /// ip_local_port_range; [`Store::connect_in`] takes the host's.
    pub async fn connect(
        &self,
        req: &ConnectSpec,
        request: Option<&RequestRecord>,
        dry_run: bool,
    ) -> Result<EndpointRow, StoreError> {
        self.connect_in(req, &DEFAULT_LOCAL_PORT_RANGE, request, dry_run)
            .await
    }

    /// [`Store::connect`], choosing host ports left out of the request from `local` (the
    /// host's `net.ipv4.ip_local_port_range`). Chosen ports are stored in the endpoint's spec
    /// in place of what was asked, so answers show them and restarts keep them.
    pub async fn connect_in(
        &self,
        req: &ConnectSpec,
        local: &std::ops::RangeInclusive<u16>,
        request: Option<&RequestRecord>,
        dry_run: bool,
    ) -> Result<EndpointRow, StoreError> {
        self.connect_as(&self.fresh_uid(), req, local, request, dry_run)
            .await
    }

    /// [`Store::connect_in`], the new endpoint's uid `id` drawn by the caller (from
    /// [`Store::fresh_uid`]): a Connect makes the endpoint's veth, named after it, while
    /// this transaction runs.
    pub async fn connect_as(
        &self,
        id: &str,
        req: &ConnectSpec,
        local: &std::ops::RangeInclusive<u16>,
        request: Option<&RequestRecord>,
        dry_run: bool,
    ) -> Result<EndpointRow, StoreError> {
        Ok(self
            .connect_undoable(id, req, local, request, dry_run)
            .await?
            .0)
    }

    /// [`Store::connect_as`], with what [`Store::undo_connect`] needs to take the connect
    /// back before its Connect answers.
    pub async fn connect_undoable(
        &self,
        id: &str,
        req: &ConnectSpec,
        local: &std::ops::RangeInclusive<u16>,
        request: Option<&RequestRecord>,
        dry_run: bool,
    ) -> Result<(EndpointRow, ConnectUndo), StoreError> {
        let id = id.to_string();
        let ((to, chosen, mac), _turn) = self
            .write_in_place(dry_run, |raw| {
                self.create_checks::<EndpointRow>(raw, request, &id)?;
                let mut to = admit(raw, req)?;
                to.endpoint.ports = resolve_ports(raw, &id, &to.endpoint.ports, local)?;
                let chosen = lease(raw, req, &to)?;
                let addrs: Vec<IpAddr> = chosen.leases.iter().map(|(a, _)| *a).collect();
                // The MAC it nearly always gets: the client's, or the first derived one. The
                // unique index checks it in the insert; only when it is taken is it looked
                // for (and a refusal worded) with queries.
                let mut mac = to.endpoint.mac.clone().or_else(|| derived_mac(&addrs, 0));
                let spec = encode(&to.endpoint)?;
                match insert_endpoint(raw, &id, &to, &spec, mac.as_deref()) {
                    Ok(()) => {}
                    Err(f) if is_mac_taken(&f) => {
                        mac = choose_mac(raw, req, &to, &chosen.leases)?;
                        insert_endpoint(raw, &id, &to, &spec, mac.as_deref())?;
                    }
                    Err(f) => return Err(f.into()),
                }
                insert_leases(raw, &id, &to, &chosen)?;
                publish_ports(raw, &id, &to.endpoint)?;
                Ok((to, chosen, mac))
            })
            .await?;
        let mut addresses: Vec<IpNet> = chosen
            .leases
            .iter()
            .filter_map(|(a, p)| IpNet::new(*a, *p).ok())
            .collect();
        addresses.sort_by_key(|a| a.addr().is_ipv6());
        // The row as the database now holds it (what reading it back gave, without the read).
        let row = EndpointRow {
            id: id.clone(),
            network_id: to.net_id,
            network: req.network.clone(),
            namespace: req.namespace.clone(),
            host_ifname: crate::model::endpoint_host_ifname(&id),
            spec: to.endpoint,
            addresses,
            mac,
            generation: 1,
            deleting: false,
            status: Status {
                phase: Phase::Pending,
                observed_generation: 0,
                message: String::new(),
            },
            observed: EndpointObserved::default(),
        };
        let undo = ConnectUndo {
            id: id.clone(),
            network_id: row.network_id.clone(),
            request_id: request.map(|r| r.id.clone()),
            cursors: chosen
                .cursors
                .iter()
                .map(|(cidr, new)| {
                    let old = to.cursors.get(cidr).copied().flatten();
                    (cidr.clone(), old, *new)
                })
                .collect(),
        };
        if !dry_run {
            self.prime(&id, row.clone());
        }
        Ok((row, undo))
    }

    /// Takes back the connect that gave `undo` before its Connect answers (the Connect found
    /// the interface name taken only once it had committed): the endpoint row with its
    /// leases and published ports, the request id it recorded, and each subnet's lease
    /// cursor where it still is where the connect moved it. False when the row was gone.
    /// Between the commit and this, reads (lists, a Watch, the preconditions of other
    /// requests) may have seen the endpoint; the caller sends the events a delete sends.
    pub async fn undo_connect(&self, undo: &ConnectUndo) -> Result<bool, StoreError> {
        let (n, _turn) = self
            .write_in_place(false, |raw| {
                let n = raw.execute("DELETE FROM endpoints WHERE id = ?", &[(&undo.id).into()])?;
                if let Some(rid) = &undo.request_id {
                    raw.execute(
                        "DELETE FROM requests WHERE request_id = ? AND object_id = ?",
                        &[rid.into(), (&undo.id).into()],
                    )?;
                }
                for (cidr, old, new) in &undo.cursors {
                    let old = old.map(|a| a.to_string());
                    raw.execute(
                        "UPDATE subnets SET cursor = ? \
                         WHERE network_id = ? AND cidr = ? AND cursor = ?",
                        &[
                            old.as_deref().into(),
                            (&undo.network_id).into(),
                            cidr.into(),
                            (&new.to_string()).into(),
                        ],
                    )?;
                }
                Ok(n)
            })
            .await?;
        if n > 0 {
            self.note_gone(&undo.id);
        }
        self.forget::<EndpointRow>(&undo.id);
        EndpointRow::forget_kept(self, &undo.id);
        Ok(n > 0)
    }

    /// Marks endpoint `id` for removal (idempotent; a Disconnect). When its row is kept
    /// (a connect or status write put it there, so it is exactly what the database holds),
    /// the marked row is kept in its place for the reconcile and the waiting request.
    pub async fn mark_endpoint_deleting_kept(&self, id: &str) -> Result<(), StoreError> {
        let mut w = self.writer().await?;
        let marked = Self::mark_deleting_in::<EndpointRow>(w.conn()?, id).await;
        let kept = self.cached::<EndpointRow>(id);
        self.forget::<EndpointRow>(id);
        if marked? && let Some(row) = kept {
            // What the UPDATE wrote, on the row as it was.
            let marked = EndpointRow {
                generation: row.generation + 1,
                deleting: true,
                status: Status {
                    phase: Phase::Deleting,
                    ..row.status.clone()
                },
                ..row
            };
            self.prime(id, marked);
        }
        Ok(())
    }

    /// Gives endpoint `row`, which has no MAC (it is older than weft keeping them, and weft
    /// never saw its interface or another endpoint had the same), the first free one [`derived_mac`] gives for its leases, and
    /// returns it. None, and nothing written, when it has one already, asked for one, has no
    /// lease, or another request took the candidate meanwhile (the next reconcile tries again).
    pub async fn assign_endpoint_mac(
        &self,
        row: &EndpointRow,
    ) -> Result<Option<String>, StoreError> {
        if row.mac.is_some() || row.spec.mac.is_some() || row.addresses.is_empty() {
            return Ok(None);
        }
        let addrs: Vec<IpAddr> = row.addresses.iter().map(|a| a.addr()).collect();
        let (mac, _turn) = self
            .write_in_place(false, |raw| {
                self.forget::<EndpointRow>(&row.id);
                for attempt in 0..MAC_ATTEMPTS {
                    let Some(mac) = derived_mac(&addrs, attempt) else {
                        return Ok(None);
                    };
                    if mac_holder(raw, &row.network_id, &mac)?.is_some() {
                        continue;
                    }
                    return match raw.execute(
                        "UPDATE endpoints SET mac = ? WHERE id = ? AND mac IS NULL",
                        &[(&mac).into(), (&row.id).into()],
                    ) {
                        Ok(1) => Ok(Some(mac)),
                        Ok(_) => Ok(None),
                        Err(f) if f.is_unique_violation() => Ok(None),
                        Err(f) => Err(f.into()),
                    };
                }
                Ok(None)
            })
            .await?;
        if mac.is_some() {
            self.forget::<EndpointRow>(&row.id);
        }
        Ok(mac)
    }

    /// Releases what endpoint `id` holds on its network (its leases, published ports and
    /// MAC) while its row stays: its namespace is gone. Returns whether it held anything.
    pub async fn release_endpoint(&self, id: &str) -> Result<bool, StoreError> {
        self.forget::<EndpointRow>(id);
        let (n, _turn) = self
            .write_in_place(false, |raw| {
                let mut n = 0;
                for sql in [
                    "DELETE FROM leases WHERE endpoint_id = ?",
                    "DELETE FROM port_mappings WHERE endpoint_id = ?",
                    "UPDATE endpoints SET mac = NULL WHERE id = ? AND mac IS NOT NULL",
                ] {
                    n += raw.execute(sql, &[id.into()])?;
                }
                Ok(n)
            })
            .await?;
        self.forget::<EndpointRow>(id);
        Ok(n > 0)
    }

    /// The endpoint of `namespace` on `network`.
    pub async fn endpoint_by_names(
        &self,
        network: &str,
        namespace: &str,
    ) -> Result<Option<EndpointRow>, StoreError> {
        self.find_one("w.name = ? AND n.name = ?", &[network, namespace])
            .await
    }

    /// Every endpoint, or those of one network.
    pub async fn list_endpoints(
        &self,
        network_id: Option<&str>,
    ) -> Result<Vec<EndpointRow>, StoreError> {
        match network_id {
            Some(n) => self.find_all("e.network_id = ?", &[n], "n.name").await,
            None => self.list().await,
        }
    }

    /// What namespace `name`'s resolv.conf is made of, in one query: whether weft writes it
    /// (not adopted, not being deleted) and its endpoints that are not being disconnected, in
    /// connect order (the order of the nameservers). None for an unknown namespace.
    pub async fn resolv_sources(&self, name: &str) -> Result<Option<ResolvSources>, StoreError> {
        let rows = sqlx::query(
            "SELECT n.adopted_path IS NULL AND n.deleting = 0 AS written, e.network_id, \
             (SELECT group_concat(l.address || '/' || l.prefix_len, ' ') FROM leases l \
              WHERE l.endpoint_id = e.id) AS addrs \
             FROM namespaces n LEFT JOIN endpoints e ON e.namespace_id = n.id AND e.deleting = 0 \
             WHERE n.name = ? ORDER BY e.created_at, e.id",
        )
        .bind(name)
        .fetch_all(self.reads().await)
        .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let mut sources = ResolvSources {
            written: first.get::<i64>("written")? != 0,
            endpoints: Vec::with_capacity(rows.len()),
        };
        for r in &rows {
            // The namespace alone (no live endpoint) is one row without an endpoint.
            if let Some(network_id) = r.get::<Option<String>>("network_id")? {
                sources
                    .endpoints
                    .push((network_id, leases(r.get("addrs")?)?));
            }
        }
        Ok(Some(sources))
    }

    /// Ids of the endpoints in a namespace.
    pub async fn endpoint_ids_in_namespace(
        &self,
        namespace_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT id FROM endpoints WHERE namespace_id = ?")
                .bind(namespace_id)
                .fetch_all(self.reads().await)
                .await?,
        )
    }

    /// Leased and total addresses of each subnet of a network.
    pub async fn lease_counts(&self, network_id: &str) -> Result<Vec<(IpNet, u64)>, StoreError> {
        let mut conn = self.reads().await.acquire().await?;
        // One lease a row: stepped in place, each address parsed where SQLite holds it.
        let addrs: Vec<Option<IpAddr>> = Self::rows_in(
            &mut conn,
            "SELECT address FROM leases WHERE network_id = ?",
            &[network_id.into()],
            |row| Ok(row.at::<&str>(0)?.parse().ok()),
        )
        .await?;
        let cidrs: Vec<String> =
            sqlx::query_scalar("SELECT cidr FROM subnets WHERE network_id = ?")
                .bind(network_id)
                .fetch_all(&mut *conn)
                .await?;
        let addrs: Vec<IpAddr> = addrs.into_iter().flatten().collect();
        Ok(cidrs
            .iter()
            .filter_map(|c| c.parse::<IpNet>().ok())
            .map(|c| (c, addrs.iter().filter(|a| c.contains(*a)).count() as u64))
            .collect())
    }

    /// Published ports of live endpoints: (endpoint id, host ip, protocol, host port,
    /// container port).
    pub async fn port_mappings(
        &self,
        endpoint_id: Option<&str>,
    ) -> Result<Vec<StoredMapping>, StoreError> {
        let rows: Vec<(String, String, String, i64, i64)> = match endpoint_id {
            Some(id) => {
                sqlx::query_as(
                    "SELECT endpoint_id, host_ip, protocol, host_port, container_port FROM port_mappings WHERE endpoint_id = ?",
                )
                .bind(id)
                .fetch_all(self.reads().await)
                .await?
            }
            None => {
                sqlx::query_as(
                    "SELECT m.endpoint_id, m.host_ip, m.protocol, m.host_port, m.container_port FROM port_mappings m \
                     JOIN endpoints e ON e.id = m.endpoint_id WHERE e.deleting = 0",
                )
                .fetch_all(self.reads().await)
                .await?
            }
        };
        rows.into_iter()
            .map(|(endpoint_id, ip, proto, h, c)| {
                Ok(StoredMapping {
                    endpoint_id,
                    host_ip: if ip.is_empty() {
                        None
                    } else {
                        Some(
                            ip.parse()
                                .map_err(|_| StoreError::Corrupt(format!("host ip {ip}")))?,
                        )
                    },
                    protocol: Protocol::parse("protocol", &proto)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    host_port: h as u16,
                    container_port: c as u16,
                })
            })
            .collect()
    }
}

/// One published host port as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMapping {
    /// The endpoint publishing it.
    pub endpoint_id: String,
    /// Host address; None is every address.
    pub host_ip: Option<IpAddr>,
    /// Protocol.
    pub protocol: Protocol,
    /// Host port.
    pub host_port: u16,
    /// Port in the endpoint.
    pub container_port: u16,
}
