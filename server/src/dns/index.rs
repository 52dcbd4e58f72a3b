//! The resolver's in-memory index of networks and endpoints, and the pure answer to "what
//! does this querier get for this name?". No I/O: `feed` keeps it current from the store's
//! change notifications, the server reads it under a read lock for each query.
//!
//! # Who sees what
//! A querier is found by its source address: the endpoint that holds it, hence its namespace,
//! sees the names of every DNS-enabled network that namespace is connected to (as
//! aardvark-dns does), whichever of them it asked. A source address no endpoint holds (the
//! host itself) sees the names of the network whose resolver it asked. An address several
//! namespaces hold (overlapping subnets on different networks) counts as the one on the asked
//! network, and otherwise as nobody: it sees no names.
//!
//! # Names
//! An endpoint answers to its namespace's name and to each of its aliases, as `name.` and as
//! `name.<network>.`, case-insensitively. Every visible endpoint that holds a name is
//! returned. A name that is not there answers NXDOMAIN when it has one label or ends in the
//! name of a DNS-enabled network (any: it does not tell a querier that a network it is not on
//! exists); everything else is not weft's and is forwarded. PTR of an endpoint's address
//! gives `<namespace>.<network>.` (the network's name as created); of any other address in
//! a DNS-enabled network's subnet (or of an endpoint the querier does not see), NXDOMAIN.

use std::{
    collections::{BTreeSet, HashMap},
    net::IpAddr,
    sync::Arc,
};

use ipnet::IpNet;

use crate::{model::NetworkSpec, store::EndpointRow};

/// What the index keeps of a network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetInfo {
    /// Its name as created (answers use it).
    pub name: String,
    /// Serves DNS.
    pub dns: bool,
    /// No outside access: nothing is forwarded for a querier on internal networks only.
    pub internal: bool,
    /// The resolver's addresses (the gateways when `dns`).
    pub servers: Vec<IpAddr>,
    /// Its subnets.
    pub subnets: Vec<IpNet>,
}

impl NetInfo {
    /// From a network's spec.
    pub fn of(spec: &NetworkSpec) -> Self {
        Self {
            name: spec.name.clone(),
            dns: spec.dns,
            internal: spec.internal,
            servers: spec.dns_servers(),
            subnets: spec.subnets.iter().map(|s| s.subnet).collect(),
        }
    }
}

/// What the index keeps of an endpoint (one per endpoint: 10,000 on a busy host): 64 bytes,
/// its network's id shared with the index's other tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpInfo {
    /// The network's id (the index's own copy once set: one allocation per network).
    pub network: Arc<str>,
    /// The namespace's name (one allocation for this endpoint's entries keyed by it).
    pub namespace: Arc<str>,
    /// The names it answers to, lower case: the namespace's, then the aliases (the first is
    /// `namespace` itself, shared, when that is lower case already).
    pub names: Box<[Arc<str>]>,
    /// Its leased addresses.
    pub addrs: Box<[IpAddr]>,
}

impl EpInfo {
    /// From a stored endpoint.
    pub fn of(row: &EndpointRow) -> Self {
        let namespace: Arc<str> = Arc::from(row.namespace.as_str());
        let mut names = vec![lower(&namespace)];
        for a in &row.spec.aliases {
            let a = a.to_ascii_lowercase();
            if !names.iter().any(|n| **n == *a) {
                names.push(Arc::from(a));
            }
        }
        Self {
            network: Arc::from(row.network_id.as_str()),
            namespace,
            names: names.into_boxed_slice(),
            addrs: row.addresses.iter().map(|a| a.addr()).collect(),
        }
    }
}

/// `name` in lower case: `name` itself (shared) when it is already.
fn lower(name: &Arc<str>) -> Arc<str> {
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Arc::from(name.to_ascii_lowercase())
    } else {
        name.clone()
    }
}

/// Who asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Querier {
    /// A namespace weft connects (by name).
    Namespace(String),
    /// An address no endpoint holds: sees the asked network.
    Outsider,
    /// An address held on several networks, none of them the asked one: sees nothing.
    Ambiguous,
}

/// The record type asked for, as far as the index cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// IPv4 addresses.
    A,
    /// IPv6 addresses.
    Aaaa,
    /// Both (ANY).
    Any,
    /// Anything else: a name that exists has none of it.
    Other,
}

/// What the index answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The name is weft's and has these addresses (in rotated order; empty: NODATA).
    Addrs(Vec<IpAddr>),
    /// PTR: these names (`<namespace>.<network>.`).
    Names(Vec<String>),
    /// The name is weft's and does not exist.
    NxDomain,
    /// Not weft's: forward (if the querier may).
    Forward,
}

/// Endpoint ids, sorted, each shared with the index's other tables. Nearly every name,
/// address and namespace has one endpoint, kept in place: a `BTreeSet<String>` held it in a
/// node of eleven slots (~290 bytes) and a copy of the id, three times per endpoint, and a
/// `Vec` in an allocation of four (80 bytes with malloc's header).
#[derive(Clone, Debug)]
enum Ids {
    /// Exactly one.
    One(Arc<str>),
    /// None, or two and more, sorted.
    Many(Vec<Arc<str>>),
}

impl Default for Ids {
    fn default() -> Self {
        Ids::Many(Vec::new())
    }
}

impl Ids {
    fn insert(&mut self, id: &Arc<str>) {
        match self {
            Ids::Many(v) if v.is_empty() => *self = Ids::One(id.clone()),
            Ids::One(x) if x == id => {}
            Ids::One(x) => {
                let mut v = vec![x.clone(), id.clone()];
                v.sort_unstable();
                *self = Ids::Many(v);
            }
            Ids::Many(v) => {
                if let Err(at) = v.binary_search(id) {
                    v.insert(at, id.clone());
                }
            }
        }
    }

    fn remove(&mut self, id: &str) {
        match self {
            Ids::One(x) if **x == *id => *self = Ids::default(),
            Ids::One(_) => {}
            Ids::Many(v) => {
                if let Ok(at) = v.binary_search_by(|x| (**x).cmp(id)) {
                    v.remove(at);
                }
                if v.len() == 1 {
                    *self = Ids::One(v.remove(0));
                }
            }
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self, Ids::Many(v) if v.is_empty())
    }

    fn iter(&self) -> impl Iterator<Item = &str> {
        let ids: &[Arc<str>] = match self {
            Ids::One(x) => std::slice::from_ref(x),
            Ids::Many(v) => v,
        };
        ids.iter().map(|id| &**id)
    }
}

/// Networks and endpoints by id, with the lookup tables the answers need.
#[derive(Clone, Debug, Default)]
pub struct Index {
    /// Network id -> what it is; the key is the copy of the id every table shares.
    nets: HashMap<Arc<str>, NetInfo>,
    /// Lower-case network name -> id.
    net_by_name: HashMap<String, Arc<str>>,
    eps: HashMap<Arc<str>, EpInfo>,
    /// Network id -> lower-case name -> endpoint ids.
    names: HashMap<Arc<str>, HashMap<Arc<str>, Ids>>,
    /// Address -> endpoint ids.
    by_addr: HashMap<IpAddr, Ids>,
    /// Namespace name -> endpoint ids.
    by_ns: HashMap<Arc<str>, Ids>,
}

impl Index {
    /// Sets network `id`; true if what the resolver serves for it (DNS on, its addresses)
    /// changed.
    pub fn set_network(&mut self, id: &str, info: NetInfo) -> bool {
        let id = self.network_id(id).unwrap_or_else(|| Arc::from(id));
        let old = self.nets.insert(id.clone(), info.clone());
        if let Some(o) = &old {
            self.net_by_name.remove(&o.name.to_ascii_lowercase());
        }
        self.net_by_name.insert(info.name.to_ascii_lowercase(), id);
        old.map(|o| o.servers).unwrap_or_default() != info.servers
    }

    /// Forgets network `id` and its endpoints; true if it served DNS.
    pub fn remove_network(&mut self, id: &str) -> bool {
        let Some(old) = self.nets.remove(id) else {
            return false;
        };
        self.net_by_name.remove(&old.name.to_ascii_lowercase());
        let eps: Vec<Arc<str>> = self
            .eps
            .iter()
            .filter(|(_, e)| *e.network == *id)
            .map(|(k, _)| k.clone())
            .collect();
        for e in eps {
            self.remove_endpoint(&e);
        }
        self.names.remove(id);
        !old.servers.is_empty()
    }

    /// The index's own copy of network id `id`, if it knows the network.
    fn network_id(&self, id: &str) -> Option<Arc<str>> {
        self.nets.get_key_value(id).map(|(k, _)| k.clone())
    }

    /// Sets endpoint `id`.
    pub fn set_endpoint(&mut self, id: &str, mut info: EpInfo) {
        if self.eps.get(id) == Some(&info) {
            return;
        }
        self.remove_endpoint(id);
        if let Some(shared) = self.network_id(&info.network) {
            info.network = shared;
        }
        let id: Arc<str> = Arc::from(id);
        let names = self.names.entry(info.network.clone()).or_default();
        for n in &info.names {
            names.entry(n.clone()).or_default().insert(&id);
        }
        for a in &info.addrs {
            self.by_addr.entry(*a).or_default().insert(&id);
        }
        self.by_ns
            .entry(info.namespace.clone())
            .or_default()
            .insert(&id);
        self.eps.insert(id, info);
    }

    /// Forgets endpoint `id`.
    pub fn remove_endpoint(&mut self, id: &str) {
        let Some(old) = self.eps.remove(id) else {
            return;
        };
        if let Some(names) = self.names.get_mut(&old.network) {
            for n in &old.names {
                drop_from(names, n, id);
            }
        }
        for a in &old.addrs {
            drop_from(&mut self.by_addr, a, id);
        }
        drop_from(&mut self.by_ns, &old.namespace, id);
    }

    /// Every (network id, address) the resolver should listen on.
    pub fn servers(&self) -> BTreeSet<(String, IpAddr)> {
        self.nets
            .iter()
            .flat_map(|(id, n)| n.servers.iter().map(move |a| (id.to_string(), *a)))
            .collect()
    }

    /// The endpoint ids a network id holds (for tests and reloads).
    pub fn endpoint_ids(&self) -> impl Iterator<Item = &str> {
        self.eps.keys().map(|id| &**id)
    }

    /// The network ids (for reloads).
    pub fn network_ids(&self) -> impl Iterator<Item = &str> {
        self.nets.keys().map(|id| &**id)
    }

    /// Who sent from `src` to the resolver of network `asked`.
    pub fn querier(&self, src: IpAddr, asked: &str) -> Querier {
        let src = src.to_canonical();
        let Some(eps) = self.by_addr.get(&src) else {
            return Querier::Outsider;
        };
        let mut namespaces: BTreeSet<&str> = BTreeSet::new();
        for id in eps.iter() {
            let Some(e) = self.eps.get(id) else { continue };
            if *e.network == *asked {
                return Querier::Namespace(e.namespace.to_string());
            }
            namespaces.insert(&e.namespace);
        }
        match namespaces.len() {
            0 => Querier::Outsider,
            1 => Querier::Namespace(
                namespaces
                    .into_iter()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            ),
            _ => Querier::Ambiguous,
        }
    }

    /// The DNS-enabled networks `q` sees, having asked network `asked`'s resolver.
    pub fn visible<'a>(&'a self, q: &Querier, asked: &'a str) -> Vec<&'a str> {
        let mut out: Vec<&str> = match q {
            Querier::Namespace(ns) => self
                .by_ns
                .get(ns.as_str())
                .into_iter()
                .flat_map(Ids::iter)
                .filter_map(|id| self.eps.get(id))
                .map(|e| &*e.network)
                .collect(),
            Querier::Outsider => vec![asked],
            Querier::Ambiguous => Vec::new(),
        };
        out.sort_unstable();
        out.dedup();
        out.retain(|id| self.nets.get(*id).is_some_and(|n| n.dns));
        out
    }

    /// May queries of `q` (asking network `asked`) be forwarded? Not when every network it is
    /// on is internal (a namespace) or the asked network is internal (an outsider), or when
    /// it is ambiguous.
    pub fn may_forward(&self, q: &Querier, asked: &str) -> bool {
        let open = |id: &str| self.nets.get(id).is_some_and(|n| !n.internal);
        match q {
            Querier::Namespace(ns) => self
                .by_ns
                .get(ns.as_str())
                .into_iter()
                .flat_map(Ids::iter)
                .filter_map(|id| self.eps.get(id))
                .any(|e| open(&e.network)),
            Querier::Outsider => open(asked),
            Querier::Ambiguous => false,
        }
    }

    /// The addresses (or names, for a PTR) `q` gets for `name` (lower case, without the
    /// trailing dot), `rotate` picking where the rotated list starts.
    pub fn lookup(
        &self,
        q: &Querier,
        asked: &str,
        name: &str,
        want: Want,
        rotate: usize,
    ) -> Answer {
        let visible = self.visible(q, asked);
        let mut found: BTreeSet<&str> = BTreeSet::new();
        let mut exists = false;
        for net in &visible {
            if let Some(ids) = self.names.get(*net).and_then(|m| m.get(name)) {
                exists = true;
                found.extend(ids.iter());
            }
        }
        // `name.<network>`: every split at a dot, as names and networks may hold dots.
        for (i, _) in name.match_indices('.') {
            let (host, net_name) = (&name[..i], &name[i + 1..]);
            let Some(net) = self.net_by_name.get(net_name) else {
                continue;
            };
            if !visible.contains(&&**net) {
                continue;
            }
            if let Some(ids) = self.names.get(net).and_then(|m| m.get(host)) {
                exists = true;
                found.extend(ids.iter());
            }
        }
        if !exists {
            return if self.is_ours(name) {
                Answer::NxDomain
            } else {
                Answer::Forward
            };
        }
        let mut addrs: Vec<IpAddr> = found
            .iter()
            .filter_map(|id| self.eps.get(*id))
            .flat_map(|e| e.addrs.iter().copied())
            .filter(|a| match want {
                Want::A => a.is_ipv4(),
                Want::Aaaa => a.is_ipv6(),
                Want::Any => true,
                Want::Other => false,
            })
            .collect();
        addrs.dedup();
        if !addrs.is_empty() {
            let n = rotate % addrs.len();
            addrs.rotate_left(n);
        }
        Answer::Addrs(addrs)
    }

    /// PTR of `addr` for `q`.
    pub fn reverse(&self, q: &Querier, asked: &str, addr: IpAddr) -> Answer {
        let visible = self.visible(q, asked);
        let names: BTreeSet<String> = self
            .by_addr
            .get(&addr)
            .into_iter()
            .flat_map(Ids::iter)
            .filter_map(|id| self.eps.get(id))
            .filter(|e| visible.contains(&&*e.network))
            .filter_map(|e| {
                let net = self.nets.get(&e.network)?;
                Some(format!("{}.{}.", e.namespace, net.name))
            })
            .collect();
        if !names.is_empty() {
            return Answer::Names(names.into_iter().collect());
        }
        // An address in any DNS network's subnet is weft's to answer: a querier not on that
        // network learns nothing, not even that the address is in use.
        let inside = self
            .nets
            .values()
            .any(|n| n.dns && n.subnets.iter().any(|s| s.contains(&addr)));
        if inside {
            Answer::NxDomain
        } else {
            Answer::Forward
        }
    }

    /// True if `name` is weft's to answer: one label, or under a DNS-enabled network's name.
    fn is_ours(&self, name: &str) -> bool {
        if !name.contains('.') {
            return true;
        }
        name.match_indices('.').any(|(i, _)| {
            self.net_by_name
                .get(&name[i + 1..])
                .and_then(|id| self.nets.get(id))
                .is_some_and(|n| n.dns)
        })
    }
}

/// Removes `id` from the set at `key`, and the set when it empties.
fn drop_from<K, Q>(map: &mut HashMap<K, Ids>, key: &Q, id: &str)
where
    K: std::borrow::Borrow<Q> + std::hash::Hash + Eq,
    Q: std::hash::Hash + Eq + ?Sized,
{
    if let Some(set) = map.get_mut(key) {
        set.remove(id);
        if set.is_empty() {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(name: &str, dns: bool, internal: bool, subnet: &str, gw: &str) -> NetInfo {
        NetInfo {
            name: name.into(),
            dns,
            internal,
            servers: if dns {
                vec![gw.parse().unwrap()]
            } else {
                vec![]
            },
            subnets: vec![subnet.parse().unwrap()],
        }
    }

    fn ep(net: &str, ns: &str, aliases: &[&str], addrs: &[&str]) -> EpInfo {
        let mut names: Vec<Arc<str>> = vec![Arc::from(ns.to_ascii_lowercase())];
        names.extend(aliases.iter().map(|a| Arc::from(a.to_ascii_lowercase())));
        EpInfo {
            network: net.into(),
            namespace: ns.into(),
            names: names.into_boxed_slice(),
            addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        }
    }

    /// Two DNS networks (front with a, b; back with c, and b on both), one without DNS.
    fn sample() -> Index {
        let mut ix = Index::default();
        assert!(ix.set_network("n1", net("Front", true, false, "10.1.0.0/24", "10.1.0.1")));
        assert!(ix.set_network("n2", net("back", true, true, "10.2.0.0/24", "10.2.0.1")));
        assert!(!ix.set_network("n3", net("bridge", false, false, "10.3.0.0/24", "10.3.0.1")));
        ix.set_endpoint("e1", ep("n1", "a", &["api"], &["10.1.0.2", "fd00::2"]));
        ix.set_endpoint("e2", ep("n1", "b", &["API", "web.v1"], &["10.1.0.3"]));
        ix.set_endpoint("e3", ep("n2", "c", &[], &["10.2.0.2"]));
        ix.set_endpoint("e4", ep("n2", "b", &[], &["10.2.0.3"]));
        ix.set_endpoint("e5", ep("n3", "d", &[], &["10.3.0.2"]));
        ix
    }

    fn addrs(v: &[&str]) -> Answer {
        Answer::Addrs(v.iter().map(|a| a.parse().unwrap()).collect())
    }

    fn ns(n: &str) -> Querier {
        Querier::Namespace(n.into())
    }

    #[test]
    fn names_match_bare_and_under_the_network_case_insensitively() {
        let ix = sample();
        let q = ix.querier("10.1.0.3".parse().unwrap(), "n1");
        assert_eq!(q, ns("b"));
        assert_eq!(ix.lookup(&q, "n1", "a", Want::A, 0), addrs(&["10.1.0.2"]));
        assert_eq!(
            ix.lookup(&q, "n1", "a.front", Want::A, 0),
            addrs(&["10.1.0.2"])
        );
        assert_eq!(ix.lookup(&q, "n1", "a", Want::Aaaa, 0), addrs(&["fd00::2"]));
        assert_eq!(
            ix.lookup(&q, "n1", "web.v1", Want::A, 0),
            addrs(&["10.1.0.3"])
        );
        assert_eq!(
            ix.lookup(&q, "n1", "web.v1.front", Want::A, 0),
            addrs(&["10.1.0.3"])
        );
        // b is on back too: it sees c there, whichever resolver it asked.
        assert_eq!(ix.lookup(&q, "n1", "c", Want::A, 0), addrs(&["10.2.0.2"]));
        assert_eq!(
            ix.lookup(&q, "n1", "c.back", Want::A, 0),
            addrs(&["10.2.0.2"])
        );
        // A name that exists but has no such record: NODATA, not NXDOMAIN.
        assert_eq!(ix.lookup(&q, "n1", "c", Want::Aaaa, 0), addrs(&[]));
        assert_eq!(ix.lookup(&q, "n1", "c", Want::Other, 0), addrs(&[]));
        // "c.front": c is not on front.
        assert_eq!(ix.lookup(&q, "n1", "c.front", Want::A, 0), Answer::NxDomain);
    }

    #[test]
    fn a_shared_alias_returns_every_endpoint_rotated() {
        let ix = sample();
        let q = ns("a");
        assert_eq!(
            ix.lookup(&q, "n1", "api", Want::A, 0),
            addrs(&["10.1.0.2", "10.1.0.3"])
        );
        assert_eq!(
            ix.lookup(&q, "n1", "api", Want::A, 1),
            addrs(&["10.1.0.3", "10.1.0.2"])
        );
        assert_eq!(
            ix.lookup(&q, "n1", "api", Want::A, 2),
            addrs(&["10.1.0.2", "10.1.0.3"])
        );
        // b is on both networks: one name, both addresses.
        assert_eq!(
            ix.lookup(&ns("b"), "n1", "b", Want::A, 0),
            addrs(&["10.1.0.3", "10.2.0.3"])
        );
    }

    #[test]
    fn other_networks_see_nothing_even_through_this_gateway() {
        let ix = sample();
        // d is on bridge (no DNS) and asks front's resolver through the host.
        let q = ix.querier("10.3.0.2".parse().unwrap(), "n1");
        assert_eq!(q, ns("d"));
        assert!(ix.visible(&q, "n1").is_empty());
        assert_eq!(ix.lookup(&q, "n1", "a", Want::A, 0), Answer::NxDomain);
        assert_eq!(ix.lookup(&q, "n1", "a.front", Want::A, 0), Answer::NxDomain);
        assert_eq!(
            ix.lookup(&q, "n1", "example.org", Want::A, 0),
            Answer::Forward
        );
        // c (back only) does not see front's a.
        assert_eq!(ix.lookup(&ns("c"), "n2", "a", Want::A, 0), Answer::NxDomain);
        // The host (no endpoint's address) sees the asked network.
        let host = ix.querier("10.1.0.1".parse().unwrap(), "n1");
        assert_eq!(host, Querier::Outsider);
        assert_eq!(
            ix.lookup(&host, "n1", "a", Want::A, 0),
            addrs(&["10.1.0.2"])
        );
        assert_eq!(ix.lookup(&host, "n2", "a", Want::A, 0), Answer::NxDomain);
    }

    #[test]
    fn forwarding_is_refused_for_internal_only_queriers() {
        let ix = sample();
        assert!(
            !ix.may_forward(&ns("c"), "n2"),
            "c is on back (internal) only"
        );
        assert!(ix.may_forward(&ns("b"), "n2"), "b is on front too");
        assert!(ix.may_forward(&ns("d"), "n1"));
        assert!(!ix.may_forward(&Querier::Outsider, "n2"));
        assert!(ix.may_forward(&Querier::Outsider, "n1"));
        assert!(!ix.may_forward(&Querier::Ambiguous, "n1"));
    }

    #[test]
    fn reverse_names_the_namespace_on_its_network() {
        let ix = sample();
        let q = ns("a");
        assert_eq!(
            ix.reverse(&q, "n1", "10.1.0.3".parse().unwrap()),
            Answer::Names(vec!["b.Front.".into()])
        );
        assert_eq!(
            ix.reverse(&q, "n1", "10.1.0.99".parse().unwrap()),
            Answer::NxDomain
        );
        assert_eq!(
            ix.reverse(&q, "n1", "10.2.0.2".parse().unwrap()),
            Answer::NxDomain
        );
        assert_eq!(
            ix.reverse(&q, "n1", "10.3.0.2".parse().unwrap()),
            Answer::Forward
        );
        assert_eq!(
            ix.reverse(&q, "n1", "192.0.2.1".parse().unwrap()),
            Answer::Forward
        );
    }

    #[test]
    fn updates_move_names_and_addresses() {
        let mut ix = sample();
        let q = ns("a");
        ix.remove_endpoint("e2");
        assert_eq!(ix.lookup(&q, "n1", "api", Want::A, 0), addrs(&["10.1.0.2"]));
        // A dotted alias that is gone is no longer weft's name: forwarded.
        assert_eq!(ix.lookup(&q, "n1", "web.v1", Want::A, 0), Answer::Forward);
        assert_eq!(ix.lookup(&q, "n1", "b", Want::A, 0), Answer::NxDomain);
        // The same endpoint, re-set with another alias and address.
        ix.set_endpoint("e1", ep("n1", "a", &["db"], &["10.1.0.9"]));
        assert_eq!(ix.lookup(&q, "n1", "api", Want::A, 0), Answer::NxDomain);
        assert_eq!(ix.lookup(&q, "n1", "db", Want::A, 0), addrs(&["10.1.0.9"]));
        assert_eq!(
            ix.querier("10.1.0.2".parse().unwrap(), "n1"),
            Querier::Outsider
        );
        // DNS turned off: the servers go, the names are no longer visible.
        assert!(ix.set_network("n1", net("front", false, false, "10.1.0.0/24", "10.1.0.1")));
        assert_eq!(ix.lookup(&q, "n1", "db", Want::A, 0), Answer::NxDomain);
        assert_eq!(ix.servers().len(), 1);
        assert!(ix.remove_network("n2"));
        assert!(ix.servers().is_empty());
        assert_eq!(
            ix.querier("10.2.0.2".parse().unwrap(), "n2"),
            Querier::Outsider
        );
    }

    #[test]
    fn ambiguous_sources_see_nothing() {
        let mut ix = sample();
        ix.set_network("n4", net("other", true, false, "10.3.0.0/24", "10.3.0.1"));
        ix.set_endpoint("e6", ep("n4", "x", &[], &["10.3.0.2"]));
        assert_eq!(ix.querier("10.3.0.2".parse().unwrap(), "n4"), ns("x"));
        let q = ix.querier("10.3.0.2".parse().unwrap(), "n1");
        assert_eq!(q, Querier::Ambiguous);
        assert_eq!(ix.lookup(&q, "n1", "a", Want::A, 0), Answer::NxDomain);
    }

    /// The id sets kept in place for one id: inserting twice keeps one, a second id makes a
    /// sorted list, removing back to one and to none, and removing an absent id changes
    /// nothing.
    #[test]
    fn id_sets_go_from_one_to_many_and_back() {
        let ids = |s: &Ids| s.iter().map(str::to_string).collect::<Vec<_>>();
        let (a, b, c): (Arc<str>, Arc<str>, Arc<str>) = ("a".into(), "b".into(), "c".into());
        let mut s = Ids::default();
        assert!(s.is_empty());
        s.insert(&b);
        s.insert(&b);
        assert!(matches!(s, Ids::One(_)));
        assert_eq!(ids(&s), ["b"]);
        s.remove("a");
        assert_eq!(ids(&s), ["b"]);
        s.insert(&a);
        assert_eq!(ids(&s), ["a", "b"], "sorted from the second");
        s.insert(&c);
        assert_eq!(ids(&s), ["a", "b", "c"]);
        s.remove("b");
        s.remove("zz");
        assert_eq!(ids(&s), ["a", "c"]);
        s.remove("a");
        assert!(matches!(s, Ids::One(_)));
        assert_eq!(ids(&s), ["c"]);
        s.remove("c");
        assert!(s.is_empty());
        assert_eq!(ids(&s), Vec::<String>::new());
    }

    /// An endpoint's name list shares its namespace's name when that is lower case, and
    /// lowers it otherwise; aliases follow, lowered, without repeats.
    #[test]
    fn names_share_the_namespace_when_lower_case() {
        let row = |namespace: &str, aliases: &[&str]| EndpointRow {
            id: "e1".into(),
            network_id: "n1".into(),
            network: "front".into(),
            namespace: namespace.into(),
            host_ifname: "wv-e1".into(),
            spec: crate::model::EndpointSpec {
                ifname: "eth0".into(),
                mac: None,
                aliases: aliases.iter().map(|a| a.to_string()).collect(),
                ports: Vec::new(),
                default_route: true,
            },
            addresses: vec!["10.0.0.2/24".parse().unwrap()],
            mac: None,
            generation: 1,
            deleting: false,
            status: crate::model::Status {
                phase: crate::model::Phase::Ready,
                observed_generation: 1,
                message: String::new(),
            },
            observed: Default::default(),
        };
        let e = EpInfo::of(&row("web-1", &["Db", "web-1"]));
        assert!(Arc::ptr_eq(&e.names[0], &e.namespace));
        assert_eq!(
            e.names.iter().map(|n| &**n).collect::<Vec<_>>(),
            ["web-1", "db"]
        );
        let e = EpInfo::of(&row("Web-1", &[]));
        assert_eq!((&*e.namespace, &*e.names[0]), ("Web-1", "web-1"));
    }

    /// Endpoints hold the index's one copy of their network's id (10,000 endpoints on ten
    /// networks: ten allocations, not 10,000), also when the network is set again, and
    /// answers are unchanged by it.
    #[test]
    fn endpoints_share_their_networks_id() {
        let mut ix = sample();
        let id = |ix: &Index, e: &str| ix.eps.get(e).unwrap().network.clone();
        let held = ix.network_id("n1").unwrap();
        assert!(Arc::ptr_eq(&id(&ix, "e1"), &held));
        assert!(Arc::ptr_eq(&id(&ix, "e2"), &held));
        assert!(ix.set_network("n1", net("Front", true, false, "10.1.0.0/24", "10.1.0.9")));
        assert!(Arc::ptr_eq(&ix.network_id("n1").unwrap(), &held));
        assert!(Arc::ptr_eq(ix.net_by_name.get("front").unwrap(), &held));
        assert!(Arc::ptr_eq(ix.names.get_key_value("n1").unwrap().0, &held));
        ix.set_endpoint("e6", ep("n1", "f", &[], &["10.1.0.6"]));
        assert!(Arc::ptr_eq(&id(&ix, "e6"), &held));
        let q = ix.querier("10.1.0.6".parse().unwrap(), "n1");
        assert_eq!(q, ns("f"));
        assert_eq!(ix.lookup(&q, "n1", "a", Want::A, 0), addrs(&["10.1.0.2"]));
        // An endpoint of a network the index does not know yet keeps its own copy.
        ix.set_endpoint("e7", ep("n9", "g", &[], &["10.9.0.2"]));
        assert_eq!(&*id(&ix, "e7"), "n9");
    }
}
