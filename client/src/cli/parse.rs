//! Local parsing of flag values: labels, route specs, published-port specs, CIDRs, addresses,
//! MACs, durations, docker-style filters and network modes.
//!
//! Each parser checks only what is cheap and unambiguous (the shape of the value) and returns a
//! one-line message that says what to type instead; clap turns an `Err` into a usage error (exit
//! code 2). Everything deeper (is the MAC unicast, does the bridge exist, is the port free) is
//! the server's to decide. Parsers pass the user's text through unchanged wherever the wire
//! format is a string, so what weftd sees is what the user typed.
//!
//! The parsers are plain `fn(&str) -> Result<T, String>` so that clap can use them directly as
//! `value_parser = parse::cidr`; the few checks that span several flags (a label given twice,
//! `--gateway` without its `--subnet`) run after clap, in each noun's `request` module, and
//! become usage errors there through [`super::usage`].

use std::{collections::HashMap, net::IpAddr, time::Duration};

use ipnet::IpNet;
use weft::v1::{PublishedPort, Route};

/// Parses a `KEY=VALUE` label. The value may be empty (`KEY=`); the key may not, and may not
/// contain whitespace or the selector's operators (`,`, `=`, `!`).
pub fn label(s: &str) -> Result<(String, String), String> {
    let Some((key, value)) = s.split_once('=') else {
        return Err(format!("label {s:?} must be KEY=VALUE"));
    };
    check_label_key(key)?;
    Ok((key.to_string(), value.to_string()))
}

/// A label key is non-empty and has no whitespace and none of `,`, `=`, `!`: those would make
/// the key ambiguous inside a label selector (`-l KEY!=VALUE,...`).
fn check_label_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("label key must not be empty (KEY=VALUE)".into());
    }
    if key
        .chars()
        .any(|c| c.is_whitespace() || matches!(c, ',' | '=' | '!'))
    {
        return Err(format!(
            "label key {key:?} must not contain whitespace, ',', '=' or '!'"
        ));
    }
    Ok(())
}

/// Collects labels into a map, refusing a key given twice.
pub fn labels_map(labels: &[(String, String)]) -> Result<HashMap<String, String>, String> {
    let mut map = HashMap::with_capacity(labels.len());
    for (k, v) in labels {
        if map.insert(k.clone(), v.clone()).is_some() {
            return Err(format!("label {k:?} is given more than once"));
        }
    }
    Ok(map)
}

/// Parses a generic `KEY=VALUE` pair (for `--opt`), where the value may be empty.
pub fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} must be KEY=VALUE")),
    }
}

/// Parses `ADDR/PREFIX` (host bits may be set, as in an interface address) into its parts.
pub fn cidr_parts(s: &str) -> Result<(IpAddr, u8), String> {
    let net: IpNet = s.parse().map_err(|_| match s.split_once('/') {
        None => format!("{s:?} is not in CIDR notation (ADDRESS/PREFIX, e.g. 10.1.0.5/24)"),
        Some((addr, _)) => match addr.parse::<IpAddr>() {
            Err(_) => format!("{addr:?} in {s:?} is not an IP address"),
            Ok(ip) => format!(
                "prefix length in {s:?} must be a number from 0 to {}",
                if ip.is_ipv4() { 32 } else { 128 }
            ),
        },
    })?;
    Ok((net.addr(), net.prefix_len()))
}

/// Validates a CIDR (`10.1.0.5/24`, `fd00::1/64`) and returns it as typed.
pub fn cidr(s: &str) -> Result<String, String> {
    cidr_parts(s).map(|_| s.to_string())
}

/// Validates a plain IP address (no prefix) and returns it as typed.
pub fn ip(s: &str) -> Result<String, String> {
    if s.contains('/') {
        return Err(format!("{s:?} must be an address without a prefix length"));
    }
    s.parse::<IpAddr>()
        .map(|_| s.to_string())
        .map_err(|_| format!("{s:?} is not an IP address"))
}

/// Validates an IPv4 address (no prefix).
pub fn ipv4(s: &str) -> Result<String, String> {
    match s.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => Ok(s.to_string()),
        _ => Err(format!("{s:?} is not an IPv4 address (e.g. 172.18.0.10)")),
    }
}

/// Validates an IPv6 address (no prefix).
pub fn ipv6(s: &str) -> Result<String, String> {
    match s.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => Ok(s.to_string()),
        _ => Err(format!("{s:?} is not an IPv6 address (e.g. fd00:1::10)")),
    }
}

/// Validates the shape of a MAC address: six two-digit hex octets separated by ':'.
pub fn mac(s: &str) -> Result<String, String> {
    let octets: Vec<&str> = s.split(':').collect();
    let ok = octets.len() == 6
        && octets
            .iter()
            .all(|o| o.len() == 2 && o.chars().all(|c| c.is_ascii_hexdigit()));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not a MAC address (six hex octets, e.g. 02:42:ac:11:00:02)"
        ))
    }
}

/// Parses a route spec `DEST[,via=GW][,metric=N]`, DEST being a CIDR or `default`.
pub fn route(s: &str) -> Result<Route, String> {
    const SHAPE: &str = "DEST[,via=GATEWAY][,metric=N]";
    let mut parts = s.split(',');
    let dest = parts.next().unwrap_or_default();
    if dest.is_empty() {
        return Err(format!("route {s:?} has no destination: use {SHAPE}"));
    }
    let dest_ip = if dest == "default" {
        None
    } else {
        let (ip, _) = cidr_parts(dest).map_err(|e| {
            format!("route destination: {e}; use a CIDR such as 10.1.0.0/16, or `default`")
        })?;
        Some(ip)
    };
    let mut route = Route {
        destination: dest.to_string(),
        ..Default::default()
    };
    let (mut seen_via, mut seen_metric) = (false, false);
    for opt in parts {
        match opt.split_once('=') {
            Some(("via", gw)) if !seen_via => {
                let gw_ip: IpAddr = gw
                    .parse()
                    .map_err(|_| format!("route gateway {gw:?} is not an IP address"))?;
                if dest_ip.is_some_and(|d| d.is_ipv4() != gw_ip.is_ipv4()) {
                    return Err(format!(
                        "route {s:?} mixes IPv4 and IPv6 (destination {dest}, gateway {gw})"
                    ));
                }
                route.gateway = gw.to_string();
                seen_via = true;
            }
            Some(("metric", n)) if !seen_metric => {
                route.metric = n.parse().map_err(|_| {
                    format!("route metric {n:?} must be a number from 0 to {}", u32::MAX)
                })?;
                seen_metric = true;
            }
            Some(("via" | "metric", _)) => {
                return Err(format!("route {s:?} gives {opt:?} twice"));
            }
            _ => {
                return Err(format!(
                    "unknown route option {opt:?} in {s:?}: use {SHAPE}"
                ));
            }
        }
    }
    Ok(route)
}

/// Parses a published-port spec `[HOST_IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/PROTO]`,
/// docker style. An IPv6 host address goes in brackets (`[::1]:8080:80`). Without a host port
/// (`80`, `127.0.0.1::80`) weftd picks a free one from the host's ip_local_port_range; a host
/// range with one container port (`9000-9010:80`) takes one free port of the range; a
/// container range needs a host range of the same length (`9000-9001:90-91`, pairwise).
pub fn port(s: &str) -> Result<PublishedPort, String> {
    const SHAPE: &str = "[HOST_IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/tcp|udp|sctp]";
    let (spec, protocol) = match s.rsplit_once('/') {
        Some((spec, proto)) => {
            let proto = proto.to_ascii_lowercase();
            if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
                return Err(format!(
                    "protocol {proto:?} in {s:?} must be tcp, udp or sctp"
                ));
            }
            (spec, proto)
        }
        None => (s, "tcp".to_string()),
    };
    // Split off the host address: bracketed IPv6 first, otherwise from the right so that an
    // unbracketed IPv6 address keeps its colons.
    let (host_ip, host_port, container) = if let Some(rest) = spec.strip_prefix('[') {
        let (addr, rest) = rest
            .split_once(']')
            .ok_or_else(|| format!("unclosed '[' in {s:?}: use [IPV6]:HOST_PORT:CONTAINER_PORT"))?;
        let rest = rest
            .strip_prefix(':')
            .ok_or_else(|| format!("expected ':' after ']' in {s:?}: use {SHAPE}"))?;
        let (hp, cp) = rest
            .split_once(':')
            .ok_or_else(|| format!("missing container port in {s:?}: use {SHAPE}"))?;
        (Some(addr), hp, cp)
    } else {
        let mut it = spec.rsplitn(3, ':');
        let cp = it.next().unwrap_or_default();
        match (it.next(), it.next()) {
            (None, _) => (None, "", cp),
            (Some(hp), None) => (None, hp, cp),
            (Some(hp), Some(addr)) => (Some(addr), hp, cp),
        }
    };
    let host_ip = match host_ip {
        None | Some("") => String::new(),
        Some(addr) => addr
            .parse::<IpAddr>()
            .map(|_| addr.to_string())
            .map_err(|_| format!("host address {addr:?} in {s:?} is not an IP address"))?,
    };
    let (cstart, cend) = port_range(container, "container port", s)?;
    let (host_port, host_port_end) = if host_port.is_empty() {
        if cend.is_some() {
            return Err(format!(
                "a container port range in {s:?} needs a host port range of the same length"
            ));
        }
        (0, 0)
    } else {
        let (hstart, hend) = port_range(host_port, "host port", s)?;
        if let Some(cend) = cend {
            let hend = hend.unwrap_or(hstart);
            if hend - hstart != cend - cstart {
                return Err(format!(
                    "host range {hstart}-{hend} and container range {cstart}-{cend} in {s:?} \
                     differ in length: give ranges of the same length, or one container port \
                     to take one free port of the host range"
                ));
            }
        }
        (hstart, hend.unwrap_or(0))
    };
    Ok(PublishedPort {
        host_ip,
        host_port,
        host_port_end,
        container_port: cstart,
        container_port_end: cend.unwrap_or(0),
        protocol,
    })
}

/// Parses `PORT` or `START-END` (END > START), each 1 to 65535.
fn port_range(s: &str, what: &str, spec: &str) -> Result<(u32, Option<u32>), String> {
    let one = |p: &str| -> Result<u32, String> {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .map(u32::from)
            .ok_or_else(|| format!("{what} {p:?} in {spec:?} must be a number from 1 to 65535"))
    };
    match s.split_once('-') {
        None => Ok((one(s)?, None)),
        Some((a, b)) => {
            let (a, b) = (one(a)?, one(b)?);
            if b <= a {
                return Err(format!(
                    "{what} range {a}-{b} in {spec:?} must end above its start"
                ));
            }
            Ok((a, Some(b)))
        }
    }
}

/// Parses a duration with humantime (`500ms`, `30s`, `2m`, `1h 30m`, `1d`), or a bare number
/// of seconds; zero is refused.
pub fn duration(s: &str) -> Result<Duration, String> {
    let d = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse()
            .map(Duration::from_secs)
            .map_err(|e| format!("{s:?}: {e}"))?
    } else {
        humantime::parse_duration(s)
            .map_err(|e| format!("{s:?} is not a duration (e.g. 30s, 500ms, 2m): {e}"))?
    };
    if d.is_zero() {
        return Err("the timeout must be more than zero".into());
    }
    Ok(d)
}

/// The longest `--request-id` weftd accepts, in bytes.
pub const MAX_REQUEST_ID: usize = 128;

/// Parses a `--request-id`: 1 to 128 bytes. weftd remembers the answer to each id and gives it
/// again to a retry with the same id, so a script can repeat a create after a lost
/// connection without making a second object.
pub fn request_id(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("the request id must not be empty (leave --request-id out for none)".into());
    }
    if s.len() > MAX_REQUEST_ID {
        return Err(format!(
            "the request id is {} bytes; weftd takes at most {MAX_REQUEST_ID}",
            s.len()
        ));
    }
    Ok(s.to_string())
}

/// Parses a boolean the way docker's option parser (Go's strconv.ParseBool) does.
pub fn go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("{s:?} is not a boolean (true or false)")),
    }
}

/// The name of the network weftd creates at start-up, which `--network bridge` connects to.
pub const DEFAULT_NETWORK: &str = "bridge";

/// The `--network` of `weft ns create`: one of Docker's four network modes, or a network's
/// name (`docker run --network MODE`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkMode {
    /// `none`: a namespace with only loopback, no network attached.
    None,
    /// `host`: the host namespace; nothing is created.
    Host,
    /// `container:X`: share the weft namespace X; nothing is created.
    Container(String),
    /// `bridge` (the default network, [`DEFAULT_NETWORK`]) or any other value, a network's
    /// name: create the namespace and connect it to that network.
    Network(String),
}

impl std::fmt::Display for NetworkMode {
    /// The mode as it is typed: `none`, `host`, `container:X`, or the network's name.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetworkMode::None => f.write_str("none"),
            NetworkMode::Host => f.write_str("host"),
            NetworkMode::Container(x) => write!(f, "container:{x}"),
            NetworkMode::Network(n) => f.write_str(n),
        }
    }
}

/// Parses a network mode: `none`, `bridge`, `host`, `container:NAME`, or a network's name (as
/// Docker does, the modes are matched exactly, lower case).
pub fn network_mode(s: &str) -> Result<NetworkMode, String> {
    const MODES: &str = "none, bridge, host, container:NAME or a network's name";
    match s {
        "" => Err(format!("the network mode must not be empty: use {MODES}")),
        "none" => Ok(NetworkMode::None),
        "host" => Ok(NetworkMode::Host),
        "bridge" => Ok(NetworkMode::Network(DEFAULT_NETWORK.to_string())),
        _ => match s.strip_prefix("container:") {
            Some("") => Err(format!(
                "{s:?} names no namespace: use container:NAME, NAME being the weft namespace to \
                 share"
            )),
            Some(x) => Ok(NetworkMode::Container(x.to_string())),
            None => Ok(NetworkMode::Network(s.to_string())),
        },
    }
}

/// One docker-style `--filter` of `weft network ls` / `prune`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    /// A term of the label selector sent to weftd (`k`, `k=v`, `!k`, `k!=v`).
    Selector(String),
    /// `name=SUBSTRING`, applied by the CLI to the listed names (docker matches substrings).
    Name(String),
}

/// Parses `label=KEY`, `label=KEY=VALUE`, `label!=KEY`, `label!=KEY=VALUE` or `name=NAME`.
pub fn filter(s: &str) -> Result<Filter, String> {
    let (negated, rest) = if let Some(rest) = s.strip_prefix("label!=") {
        (true, rest)
    } else if let Some(rest) = s.strip_prefix("label=") {
        (false, rest)
    } else if let Some(name) = s.strip_prefix("name=") {
        return Ok(Filter::Name(name.to_string()));
    } else {
        return Err(format!(
            "unsupported filter {s:?}: use label=KEY, label=KEY=VALUE, label!=KEY[=VALUE] or \
             name=NAME"
        ));
    };
    let term = match rest.split_once('=') {
        None => {
            check_label_key(rest)?;
            if negated {
                format!("!{rest}")
            } else {
                rest.to_string()
            }
        }
        Some((k, v)) => {
            check_label_key(k)?;
            if negated {
                format!("{k}!={v}")
            } else {
                format!("{k}={v}")
            }
        }
    };
    Ok(Filter::Selector(term))
}

/// Splits filters into the label selector for weftd and the name substrings for the CLI.
/// The selector terms are joined with `,`, so all of them must match, as all of docker's
/// `--filter label=...` must.
pub fn split_filters(filters: &[Filter]) -> (String, Vec<String>) {
    let mut terms = Vec::new();
    let mut names = Vec::new();
    for f in filters {
        match f {
            Filter::Selector(t) => terms.push(t.as_str()),
            Filter::Name(n) => names.push(n.clone()),
        }
    }
    (terms.join(","), names)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A published port, briefly: host IP, host port, end of the host range, container port,
    /// protocol.
    fn pp(host_ip: &str, hp: u32, hpe: u32, cp: u32, proto: &str) -> PublishedPort {
        PublishedPort {
            host_ip: host_ip.into(),
            host_port: hp,
            host_port_end: hpe,
            container_port: cp,
            container_port_end: 0,
            protocol: proto.into(),
        }
    }

    /// Only the first `=` splits (a value may contain `=`); keys with selector operators are
    /// refused.
    #[test]
    fn labels_parse_and_reject_bad_keys() {
        assert_eq!(label("app=web").unwrap(), ("app".into(), "web".into()));
        assert_eq!(label("empty=").unwrap(), ("empty".into(), "".into()));
        assert_eq!(label("k=a=b").unwrap(), ("k".into(), "a=b".into()));
        assert!(label("novalue").unwrap_err().contains("KEY=VALUE"));
        assert!(label("=v").is_err());
        assert!(label("a b=c").is_err());
        assert!(label("a,b=c").is_err());
    }

    /// `--label a=1 --label a=2` is a mistake to report, not a case of "the last one wins".
    #[test]
    fn labels_map_refuses_duplicate_keys() {
        let ok = labels_map(&[("a".into(), "1".into()), ("b".into(), "2".into())]).unwrap();
        assert_eq!(ok.len(), 2);
        let err = labels_map(&[("a".into(), "1".into()), ("a".into(), "2".into())]).unwrap_err();
        assert!(err.contains("\"a\""));
    }

    /// `DEST[,via=GW][,metric=N]`, with `default` and IPv6 destinations and gateways.
    #[test]
    fn route_specs() {
        let r = route("default").unwrap();
        assert_eq!(
            (r.destination.as_str(), r.gateway.as_str(), r.metric),
            ("default", "", 0)
        );
        let r = route("default,via=10.0.0.1").unwrap();
        assert_eq!(
            (r.destination.as_str(), r.gateway.as_str()),
            ("default", "10.0.0.1")
        );
        let r = route("10.1.0.0/16,via=10.0.0.1,metric=100").unwrap();
        assert_eq!(
            (r.destination.as_str(), r.gateway.as_str(), r.metric),
            ("10.1.0.0/16", "10.0.0.1", 100)
        );
        let r = route("fd00:1::/64,metric=5").unwrap();
        assert_eq!(
            (r.destination.as_str(), r.gateway.as_str(), r.metric),
            ("fd00:1::/64", "", 5)
        );
        let r = route("default,via=fe80::1").unwrap();
        assert_eq!(r.gateway, "fe80::1");
    }

    /// Each malformed route says which part is wrong: the destination, the gateway, the metric, an
    /// unknown or repeated option, or a gateway of the other family.
    #[test]
    fn route_spec_errors_say_what_to_fix() {
        assert!(route("").unwrap_err().contains("no destination"));
        assert!(route("10.1.0.0").unwrap_err().contains("CIDR"));
        assert!(route("10.1.0.0/33").unwrap_err().contains("0 to 32"));
        assert!(
            route("10.0.0.0/8,via=nope")
                .unwrap_err()
                .contains("not an IP address")
        );
        assert!(
            route("10.0.0.0/8,metric=-1")
                .unwrap_err()
                .contains("metric")
        );
        assert!(
            route("10.0.0.0/8,dev=eth0")
                .unwrap_err()
                .contains("unknown route option")
        );
        assert!(
            route("10.0.0.0/8,via=10.0.0.1,via=10.0.0.2")
                .unwrap_err()
                .contains("twice")
        );
        assert!(
            route("10.0.0.0/8,via=fd00::1")
                .unwrap_err()
                .contains("mixes")
        );
    }

    /// The forms of `docker run -p`: a bare container port, host ranges, a host IP (IPv6 with or
    /// without brackets), an empty host port, and the protocol in any case.
    #[test]
    fn port_specs() {
        assert_eq!(port("8080:80/tcp").unwrap(), pp("", 8080, 0, 80, "tcp"));
        assert_eq!(port("8080:80").unwrap(), pp("", 8080, 0, 80, "tcp"));
        assert_eq!(port("80").unwrap(), pp("", 0, 0, 80, "tcp"));
        assert_eq!(port("53/UDP").unwrap(), pp("", 0, 0, 53, "udp"));
        assert_eq!(
            port("127.0.0.1:8000-8010:80/udp").unwrap(),
            pp("127.0.0.1", 8000, 8010, 80, "udp")
        );
        assert_eq!(
            port("8000-8002:80-82").unwrap(),
            PublishedPort {
                container_port_end: 82,
                ..pp("", 8000, 8002, 80, "tcp")
            }
        );
        assert_eq!(
            port("9000-9010:80").unwrap(),
            pp("", 9000, 9010, 80, "tcp"),
            "a host range with one container port: one free port of the range"
        );
        assert_eq!(
            port("127.0.0.1::80").unwrap(),
            pp("127.0.0.1", 0, 0, 80, "tcp")
        );
        assert_eq!(
            port("[::1]:8080:80/sctp").unwrap(),
            pp("::1", 8080, 0, 80, "sctp")
        );
        assert_eq!(port("::1:8080:80").unwrap(), pp("::1", 8080, 0, 80, "tcp"));
        assert_eq!(
            port("0.0.0.0:443:8443").unwrap(),
            pp("0.0.0.0", 443, 0, 8443, "tcp")
        );
    }

    /// Unknown protocols, ports out of 1 to 65535 and backward ranges each say what to type.
    #[test]
    fn port_spec_errors_say_what_to_fix() {
        assert!(
            port("8080:80/icmp")
                .unwrap_err()
                .contains("tcp, udp or sctp")
        );
        assert!(port("8080:0").unwrap_err().contains("1 to 65535"));
        assert!(port("70000:80").unwrap_err().contains("1 to 65535"));
        assert!(port("8010-8000:80").unwrap_err().contains("end above"));
        assert!(
            port("8000-8010:80-81")
                .unwrap_err()
                .contains("differ in length")
        );
        assert!(port("80-81").unwrap_err().contains("host port range"));
        assert!(port("9000:90-91").unwrap_err().contains("differ in length"));
        assert!(
            port("host:8080:80")
                .unwrap_err()
                .contains("not an IP address")
        );
        assert!(port("[::1]8080:80").unwrap_err().contains("expected ':'"));
        assert!(port("x").is_err());
    }

    /// Addresses are checked for shape only (CIDR or not, family, MAC with colons) and passed on
    /// exactly as typed.
    #[test]
    fn cidrs_addresses_and_macs() {
        assert_eq!(cidr("192.168.1.10/24").unwrap(), "192.168.1.10/24");
        assert_eq!(cidr("fd00::1/64").unwrap(), "fd00::1/64");
        assert!(cidr("192.168.1.10").unwrap_err().contains("CIDR"));
        assert!(cidr("fd00::1/129").is_err());
        assert!(ip("10.0.0.1/24").unwrap_err().contains("without a prefix"));
        assert!(ipv4("fd00::1").is_err());
        assert!(ipv6("10.0.0.1").is_err());
        assert_eq!(mac("02:42:ac:11:00:02").unwrap(), "02:42:ac:11:00:02");
        assert!(mac("02:42:ac:11:00").is_err());
        assert!(mac("02-42-ac-11-00-02").is_err());
    }

    /// `--timeout` takes humantime's durations or bare seconds; zero and unknown units are
    /// refused.
    #[test]
    fn durations() {
        assert_eq!(duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(duration("45").unwrap(), Duration::from_secs(45));
        assert_eq!(duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(duration("2m").unwrap(), Duration::from_secs(120));
        assert!(duration("0s").is_err());
        assert!(duration("fast").is_err());
        // humantime's units, days and compound durations included.
        assert_eq!(duration("3d").unwrap(), Duration::from_secs(3 * 86_400));
        assert_eq!(duration("1m 30s").unwrap(), Duration::from_secs(90));
        assert!(duration("3x").is_err());
        assert!(duration("").is_err());
    }

    /// docker's `label=` and `label!=` filters become selector terms for weftd; `name=` stays with
    /// the CLI, which matches names itself.
    #[test]
    fn docker_filters_become_selector_terms() {
        assert_eq!(filter("label=env").unwrap(), Filter::Selector("env".into()));
        assert_eq!(
            filter("label=env=prod").unwrap(),
            Filter::Selector("env=prod".into())
        );
        assert_eq!(
            filter("label!=env").unwrap(),
            Filter::Selector("!env".into())
        );
        assert_eq!(
            filter("label!=env=prod").unwrap(),
            Filter::Selector("env!=prod".into())
        );
        assert_eq!(filter("name=web").unwrap(), Filter::Name("web".into()));
        assert!(
            filter("driver=bridge")
                .unwrap_err()
                .contains("unsupported filter")
        );
        let (sel, names) = split_filters(&[
            filter("label=a=1").unwrap(),
            filter("name=x").unwrap(),
            filter("label!=b").unwrap(),
        ]);
        assert_eq!(sel, "a=1,!b");
        assert_eq!(names, vec!["x".to_string()]);
    }

    /// Docker's mode words are matched exactly; anything else is a network's name, and every mode
    /// prints back as it was typed (the usage errors quote it).
    #[test]
    fn network_modes() {
        assert_eq!(network_mode("none").unwrap(), NetworkMode::None);
        assert_eq!(network_mode("host").unwrap(), NetworkMode::Host);
        assert_eq!(
            network_mode("bridge").unwrap(),
            NetworkMode::Network(DEFAULT_NETWORK.into())
        );
        assert_eq!(
            network_mode("mynet").unwrap(),
            NetworkMode::Network("mynet".into())
        );
        assert_eq!(
            network_mode("container:web").unwrap(),
            NetworkMode::Container("web".into())
        );
        // Matched exactly, like Docker: anything else is a network's name.
        assert_eq!(
            network_mode("Host").unwrap(),
            NetworkMode::Network("Host".into())
        );
        assert_eq!(
            network_mode("container").unwrap(),
            NetworkMode::Network("container".into())
        );
        assert!(
            network_mode("container:")
                .unwrap_err()
                .contains("container:NAME")
        );
        assert!(network_mode("").unwrap_err().contains("must not be empty"));
        for m in ["none", "host", "bridge", "mynet", "container:web"] {
            assert_eq!(network_mode(m).unwrap().to_string(), m);
        }
    }

    /// `--opt` values are booleans as Go's strconv.ParseBool reads them, which is what docker does.
    #[test]
    fn go_booleans() {
        assert_eq!(go_bool("false"), Ok(false));
        assert_eq!(go_bool("1"), Ok(true));
        assert!(go_bool("no").is_err());
    }
}
