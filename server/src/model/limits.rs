//! How big one request and how many objects of a kind weftd accepts: the configurable limits
//! (`--max-labels`, `--max-namespaces`, ...), and the pure checks of a request against them.
//!
//! A request that is too big is INVALID_ARGUMENT ([`Invalid`]); the message names the field,
//! the limit and the flag that raises it, e.g. `link.labels: 300 labels; weftd accepts at most
//! 256 per object (raise it with --max-labels)`. A count of stored objects at its limit is
//! RESOURCE_EXHAUSTED, worded by [`ObjectLimits::exhausted`]; the store applies it inside the
//! create's transaction, so concurrent creates cannot overshoot.
//!
//! The defaults are far above what a Docker user meets (Docker has no such limits, and its
//! busiest hosts run a few thousand containers); they exist so that one client cannot grow
//! weftd's database, memory or answers without bound.

use super::{
    ConnectSpec, EndSpec, Invalid, Labels, LinkKind, LinkSpec, NamespaceSpec, NetworkSpec, PortSpec,
};

/// Declares a struct of limits (every one a `usize`): each field with its doc and its default,
/// a `pub const` of that value, and `Default` made of them.
macro_rules! limits {
    ($(#[$doc:meta])* $name:ident {
        $($(#[$fdoc:meta])* $field:ident = $default:ident($value:expr);)*
    }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name {
            $($(#[$fdoc])* pub $field: usize,)*
        }
        $(
            #[doc = concat!("The default of `", stringify!($name), "::", stringify!($field), "`.")]
            pub const $default: usize = $value;
        )*
        impl Default for $name {
            fn default() -> Self {
                Self { $($field: $default,)* }
            }
        }
    };
}
pub(crate) use limits;

limits! {
    /// The limits on one request (INVALID_ARGUMENT when exceeded).
    RequestLimits {
        /// Labels on one object (`--max-labels`).
        labels = DEFAULT_MAX_LABELS(256);
        /// Bytes of all label keys and values of one object (`--max-label-bytes`): 32 KiB.
        label_bytes = DEFAULT_MAX_LABEL_BYTES(32 * 1024);
        /// Aliases of one endpoint (`--max-aliases`).
        aliases = DEFAULT_MAX_ALIASES(64);
        /// Addresses of one interface, and reserved addresses of one subnet
        /// (`--max-addresses`).
        addresses = DEFAULT_MAX_ADDRESSES(256);
        /// Routes of one interface (`--max-routes`).
        routes = DEFAULT_MAX_ROUTES(1024);
        /// Host ports one Connect publishes, each port of a range counted
        /// (`--max-published-ports`).
        published_ports = DEFAULT_MAX_PUBLISHED_PORTS(65536);
    }
}

/// The refusal of `field` holding `count` `what`s where `max` `per` are accepted.
fn too_many(field: &str, count: usize, what: &str, max: usize, per: &str, flag: &str) -> Invalid {
    Invalid::new(
        field,
        format!("{count} {what}; weftd accepts at most {max} {per} (raise it with {flag})"),
    )
}

/// Fails when `count` is above `max`.
fn at_most(
    field: &str,
    count: usize,
    what: &str,
    max: usize,
    per: &str,
    flag: &str,
) -> Result<(), Invalid> {
    if count > max {
        Err(too_many(field, count, what, max, per, flag))
    } else {
        Ok(())
    }
}

impl RequestLimits {
    /// Checks one object's labels: how many, and their bytes (keys and values).
    pub fn check_labels(&self, field: &str, labels: &Labels) -> Result<(), Invalid> {
        at_most(
            field,
            labels.len(),
            "labels",
            self.labels,
            "per object",
            "--max-labels",
        )?;
        let bytes: usize = labels.iter().map(|(k, v)| k.len() + v.len()).sum();
        at_most(
            field,
            bytes,
            "bytes of label keys and values",
            self.label_bytes,
            "per object",
            "--max-label-bytes",
        )
    }

    /// Checks one interface's addresses and routes; `field` is the end's path ("link").
    fn check_end(&self, field: &str, end: &EndSpec) -> Result<(), Invalid> {
        at_most(
            &format!("{field}.addresses"),
            end.addresses.len(),
            "addresses",
            self.addresses,
            "per interface",
            "--max-addresses",
        )?;
        at_most(
            &format!("{field}.routes"),
            end.routes.len(),
            "routes",
            self.routes,
            "per interface",
            "--max-routes",
        )
    }

    /// Checks a namespace to create.
    pub fn check_namespace(&self, spec: &NamespaceSpec) -> Result<(), Invalid> {
        self.check_labels("namespace.labels", &spec.labels)
    }

    /// Checks a link to create, or a link as an update would leave it.
    pub fn check_link(&self, spec: &LinkSpec) -> Result<(), Invalid> {
        self.check_labels("link.labels", &spec.labels)?;
        self.check_end("link", &spec.end)?;
        if let LinkKind::Veth { peer } = &spec.kind {
            self.check_end("link.veth.peer", peer)?;
        }
        Ok(())
    }

    /// Checks a network to create: its labels and each subnet's reserved addresses.
    pub fn check_network(&self, spec: &NetworkSpec) -> Result<(), Invalid> {
        self.check_labels("network.labels", &spec.labels)?;
        for (i, s) in spec.subnets.iter().enumerate() {
            at_most(
                &format!("network.subnets[{i}].reserved"),
                s.reserved.len(),
                "reserved addresses",
                self.addresses,
                "per subnet",
                "--max-addresses",
            )?;
        }
        Ok(())
    }

    /// Checks a Connect: its aliases, and its published host ports (each mapped port of a
    /// range counts, as each is a mapping of its own; one free port of a range is one).
    pub fn check_connect(&self, spec: &ConnectSpec) -> Result<(), Invalid> {
        at_most(
            "aliases",
            spec.endpoint.aliases.len(),
            "aliases",
            self.aliases,
            "per endpoint",
            "--max-aliases",
        )?;
        let ports: usize = spec
            .endpoint
            .ports
            .iter()
            .map(PortSpec::mapping_count)
            .sum();
        at_most(
            "published_ports",
            ports,
            "host ports (each port of a range counts)",
            self.published_ports,
            "per endpoint",
            "--max-published-ports",
        )
    }
}

limits! {
    /// The limits on stored objects per kind (RESOURCE_EXHAUSTED when reached).
    ObjectLimits {
        /// Namespaces (`--max-namespaces`).
        namespaces = DEFAULT_MAX_NAMESPACES(65536);
        /// Links (`--max-links`).
        links = DEFAULT_MAX_LINKS(65536);
        /// Networks (`--max-networks`).
        networks = DEFAULT_MAX_NETWORKS(4096);
        /// Endpoints, over all networks (`--max-endpoints`).
        endpoints = DEFAULT_MAX_ENDPOINTS(65536);
    }
}

impl ObjectLimits {
    /// The limit on objects called `noun` ("namespace", "link", "network", "endpoint") and
    /// the flag that raises it; None for a noun without a limit.
    pub fn of(&self, noun: &str) -> Option<(usize, &'static str)> {
        match noun {
            "namespace" => Some((self.namespaces, "--max-namespaces")),
            "link" => Some((self.links, "--max-links")),
            "network" => Some((self.networks, "--max-networks")),
            "endpoint" => Some((self.endpoints, "--max-endpoints")),
            _ => None,
        }
    }

    /// The RESOURCE_EXHAUSTED message when `count` objects called `noun` exist and the limit
    /// is `max` (raised by `flag`).
    pub fn exhausted(noun: &str, count: usize, max: usize, flag: &str) -> String {
        format!(
            "{count} {noun}s exist and weftd keeps at most {max}: delete some first, or raise \
             the limit with {flag}"
        )
    }
}

#[cfg(test)]
mod tests {
    //! Each limit refuses one past it, names field, limit and flag, and accepts the limit.

    use super::*;
    use crate::model::{EndpointSpec, PortSpec, Protocol, RouteSpec};

    /// Small limits, so tests build small requests.
    fn small() -> RequestLimits {
        RequestLimits {
            labels: 2,
            label_bytes: 10,
            aliases: 1,
            addresses: 1,
            routes: 1,
            published_ports: 3,
        }
    }

    /// Labels from pairs.
    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn labels_are_limited_by_count_and_bytes() {
        let l = small();
        assert!(
            l.check_labels("x", &labels(&[("a", "1"), ("b", "2")]))
                .is_ok()
        );
        let e = l
            .check_labels(
                "namespace.labels",
                &labels(&[("a", ""), ("b", ""), ("c", "")]),
            )
            .unwrap_err();
        assert_eq!(e.field, "namespace.labels");
        assert!(e.problem.contains("3 labels"), "{e}");
        assert!(e.problem.contains("at most 2"), "{e}");
        assert!(e.problem.contains("--max-labels"), "{e}");
        let e = l
            .check_labels("link.labels", &labels(&[("key", "12345678")]))
            .unwrap_err();
        assert!(e.problem.contains("11 bytes"), "{e}");
        assert!(e.problem.contains("--max-label-bytes"), "{e}");
        // Exactly at the limit is fine.
        assert!(l.check_labels("x", &labels(&[("key", "1234567")])).is_ok());
    }

    #[test]
    fn link_ends_are_limited_each() {
        let l = small();
        let end = |name: &str, addrs: &[&str], routes: usize| EndSpec {
            name: name.into(),
            addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            routes: (0..routes)
                .map(|i| RouteSpec {
                    destination: format!("10.{i}.0.0/16").parse().unwrap(),
                    gateway: None,
                    metric: 0,
                })
                .collect(),
            ..Default::default()
        };
        let mut spec = LinkSpec {
            labels: Labels::new(),
            end: end("a", &["10.0.0.1/24"], 1),
            kind: LinkKind::Veth {
                peer: end("b", &["10.0.0.2/24"], 1),
            },
        };
        assert!(l.check_link(&spec).is_ok());
        spec.kind = LinkKind::Veth {
            peer: end("b", &["10.0.0.2/24", "10.0.0.3/24"], 0),
        };
        let e = l.check_link(&spec).unwrap_err();
        assert_eq!(e.field, "link.veth.peer.addresses");
        assert!(e.problem.contains("--max-addresses"), "{e}");
        spec.end = end("a", &[], 2);
        let e = l.check_link(&spec).unwrap_err();
        assert_eq!(e.field, "link.routes");
        assert!(e.problem.contains("at most 1 per interface"), "{e}");
        assert!(e.problem.contains("--max-routes"), "{e}");
    }

    #[test]
    fn connect_counts_aliases_and_each_port_of_a_range() {
        let l = small();
        let port = |from: u16, to: u16| PortSpec {
            host_ip: None,
            host_port: from,
            host_port_end: to,
            container_port: from,
            container_port_end: to,
            protocol: Protocol::Tcp,
        };
        let mut spec = ConnectSpec {
            network: "n".into(),
            namespace: "s".into(),
            ipv4: None,
            ipv6: None,
            endpoint: EndpointSpec {
                ifname: "eth0".into(),
                mac: None,
                aliases: vec!["a".into()],
                ports: vec![port(80, 81), port(443, 443)],
                default_route: true,
            },
        };
        assert!(l.check_connect(&spec).is_ok());
        spec.endpoint.ports.push(port(8080, 8080));
        let e = l.check_connect(&spec).unwrap_err();
        assert_eq!(e.field, "published_ports");
        assert!(e.problem.contains("4 host ports"), "{e}");
        assert!(e.problem.contains("--max-published-ports"), "{e}");
        spec.endpoint.ports.pop();
        spec.endpoint.aliases.push("b".into());
        let e = l.check_connect(&spec).unwrap_err();
        assert_eq!(e.field, "aliases");
        assert!(e.problem.contains("--max-aliases"), "{e}");
    }

    #[test]
    fn object_limits_name_their_flag() {
        let o = ObjectLimits::default();
        assert_eq!(
            o.of("network"),
            Some((DEFAULT_MAX_NETWORKS, "--max-networks"))
        );
        assert_eq!(o.of("nothing"), None);
        let m = ObjectLimits::exhausted("namespace", 3, 3, "--max-namespaces");
        assert!(m.contains("3 namespaces exist"), "{m}");
        assert!(m.contains("--max-namespaces"), "{m}");
    }
}
