//! Published ports: what a client may ask (a fixed host port or range, a host port left out,
//! one free port of a host range), how a request's shape is checked, and which host ports a
//! port the store must choose may take.
//!
//! The shapes follow Docker's `-p`:
//! - `host:container` (`8080:80`): one fixed mapping;
//! - `container` alone (`80`, `127.0.0.1::80`): weft chooses a free port from the host's
//!   `net.ipv4.ip_local_port_range` ([`HostPorts::Ephemeral`]);
//! - a host range with one container port (`9000-9010:80`): weft chooses one free port of the
//!   range ([`HostPorts::OneOf`]);
//! - equal-length ranges (`9000-9001:90-91`): mapped pairwise, each fixed.
//!
//! Every other shape is INVALID_ARGUMENT naming the field. A port the store chooses is chosen
//! inside the connect's transaction and stored in its place ([`PortSpec::resolved`]), so the
//! endpoint's spec always holds the ports it really has, and they stay the same across
//! restarts. Specs stored before `container_port_end` existed mapped a host range pairwise
//! onto container ports; reading them fills `container_port_end` so they still do.

use std::{net::IpAddr, ops::RangeInclusive};

use serde::{Deserialize, Serialize};

use super::Invalid;

/// A transport protocol of a published port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// Parses "tcp" (also ""), "udp" or "sctp".
    pub fn parse(field: &str, s: &str) -> Result<Protocol, Invalid> {
        match s.to_ascii_lowercase().as_str() {
            "" | "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            "sctp" => Ok(Protocol::Sctp),
            other => Err(Invalid::new(
                field,
                format!("protocol {other:?} is not one of tcp, udp, sctp"),
            )),
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// A published port or port range.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "StoredPort")]
pub struct PortSpec {
    /// Host address; None is every address of the host.
    pub host_ip: Option<IpAddr>,
    /// First host port; 0 when weft chooses it from `ip_local_port_range` (only in a
    /// request: the stored spec holds the chosen port).
    pub host_port: u16,
    /// Last host port (== host_port for a single port; 0 with host_port 0).
    pub host_port_end: u16,
    /// First port in the endpoint.
    pub container_port: u16,
    /// Last port in the endpoint (== container_port for a single port).
    pub container_port_end: u16,
    /// Protocol.
    pub protocol: Protocol,
}

/// A port spec as stored: `container_port_end` is missing in specs written before it
/// existed, when a host range always mapped pairwise onto container ports.
#[derive(Deserialize)]
struct StoredPort {
    host_ip: Option<IpAddr>,
    host_port: u16,
    host_port_end: u16,
    container_port: u16,
    #[serde(default)]
    container_port_end: Option<u16>,
    protocol: Protocol,
}

impl From<StoredPort> for PortSpec {
    fn from(s: StoredPort) -> Self {
        let pairwise = s
            .container_port
            .saturating_add(s.host_port_end.saturating_sub(s.host_port));
        PortSpec {
            host_ip: s.host_ip,
            host_port: s.host_port,
            host_port_end: s.host_port_end,
            container_port: s.container_port,
            container_port_end: s.container_port_end.unwrap_or(pairwise),
            protocol: s.protocol,
        }
    }
}

/// The most ports one published range may span.
pub const MAX_PORT_RANGE: u32 = 1024;

/// Linux's default `net.ipv4.ip_local_port_range`, used where the host's cannot be read.
pub const DEFAULT_LOCAL_PORT_RANGE: RangeInclusive<u16> = 32768..=60999;

/// Where a published port's host port comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostPorts {
    /// Given by the client: `host_port..=host_port_end`, pairwise onto the container ports.
    Fixed,
    /// Left out: one free port of the host's `ip_local_port_range`.
    Ephemeral,
    /// One free port of this host range, for the single container port.
    OneOf(RangeInclusive<u16>),
}

/// INVALID_ARGUMENT unless `a` can be a host address connections arrive at: not multicast
/// or broadcast, not IPv6 loopback (`::1` cannot be NATed to a bridge) or link-local (it
/// would need a scope), not an IPv4-mapped IPv6 address (publish on the IPv4 address).
fn check_host_ip(field: &str, a: IpAddr) -> Result<(), Invalid> {
    let why = match a {
        IpAddr::V4(v) if v.is_multicast() => Some("a multicast address"),
        IpAddr::V4(v) if v.is_broadcast() => Some("the broadcast address"),
        IpAddr::V6(v) if v.is_multicast() => Some("a multicast address"),
        IpAddr::V6(v) if v.is_loopback() => {
            Some("IPv6 loopback, which cannot be forwarded to a bridge (use 127.0.0.1)")
        }
        IpAddr::V6(v) if v.is_unicast_link_local() => Some("a link-local address"),
        IpAddr::V6(v) if v.to_ipv4_mapped().is_some() => {
            Some("an IPv4-mapped IPv6 address (give the IPv4 address)")
        }
        _ => None,
    };
    match why {
        Some(why) => Err(Invalid::new(
            field,
            format!(
                "{a} is {why}; publish on a unicast address of the host, or leave it empty for every address"
            ),
        )),
        None => Ok(()),
    }
}

/// A port number from a wire field: 1..=65535.
fn port(field: &str, name: &str, p: u32) -> Result<u16, Invalid> {
    match u16::try_from(p) {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(Invalid::new(
            format!("{field}.{name}"),
            format!("{p} is not a port (1..65535)"),
        )),
    }
}

/// The end of a range starting at `start` (`end` 0 is a single port): it must not end
/// before it starts nor span more than [`MAX_PORT_RANGE`] ports.
fn range_end(field: &str, name: &str, start: u16, end: u32) -> Result<u16, Invalid> {
    if end == 0 {
        return Ok(start);
    }
    let end = port(field, name, end)?;
    if end < start {
        return Err(Invalid::new(
            format!("{field}.{name}"),
            format!("range {start}-{end} ends before it starts"),
        ));
    }
    let span = u32::from(end - start) + 1;
    if span > MAX_PORT_RANGE {
        return Err(Invalid::new(
            format!("{field}.{name}"),
            format!("a range spans at most {MAX_PORT_RANGE} ports, not {span}"),
        ));
    }
    Ok(end)
}

impl PortSpec {
    /// Builds and checks a published port with a single container port from its wire fields
    /// (`host_port` 0: weft chooses one; a host range: weft chooses one of it).
    pub fn parse(
        field: &str,
        host_ip: &str,
        host_port: u32,
        host_port_end: u32,
        container_port: u32,
        protocol: &str,
    ) -> Result<PortSpec, Invalid> {
        Self::parse_range(
            field,
            host_ip,
            (host_port, host_port_end),
            (container_port, 0),
            protocol,
        )
    }

    /// Builds and checks a published port from its wire fields: `host` is (`host_port`,
    /// `host_port_end`) and `container` (`container_port`, `container_port_end`), an end of
    /// 0 meaning a single port. The shapes allowed are the module's; any other is
    /// INVALID_ARGUMENT naming the field to fix.
    pub fn parse_range(
        field: &str,
        host_ip: &str,
        host: (u32, u32),
        container: (u32, u32),
        protocol: &str,
    ) -> Result<PortSpec, Invalid> {
        let container_port = port(field, "container_port", container.0)?;
        let container_port_end =
            range_end(field, "container_port_end", container_port, container.1)?;
        let cspan = container_port_end - container_port;
        let (host_port, host_port_end) = if host.0 == 0 {
            if host.1 != 0 {
                return Err(Invalid::new(
                    format!("{field}.host_port"),
                    format!(
                        "a host range ending at {} needs its first port; give host_port, or leave both out to get a free port",
                        host.1
                    ),
                ));
            }
            if cspan != 0 {
                return Err(Invalid::new(
                    format!("{field}.host_port"),
                    format!(
                        "container ports {container_port}-{container_port_end} need a host range of the same length; \
                         give host_port and host_port_end, or publish each container port on its own"
                    ),
                ));
            }
            (0, 0)
        } else {
            let h = port(field, "host_port", host.0)?;
            (h, range_end(field, "host_port_end", h, host.1)?)
        };
        let hspan = host_port_end - host_port;
        if cspan != 0 && hspan != cspan {
            return Err(Invalid::new(
                format!("{field}.container_port_end"),
                format!(
                    "container ports {container_port}-{container_port_end} ({} ports) and host ports \
                     {host_port}-{host_port_end} ({} ports) differ in length; give ranges of the same \
                     length, or one container port to take one free port of the host range",
                    u32::from(cspan) + 1,
                    u32::from(hspan) + 1
                ),
            ));
        }
        let host_ip = match host_ip.trim() {
            "" | "0.0.0.0" | "::" => None,
            s => {
                let a = s.parse::<IpAddr>().map_err(|_| {
                    Invalid::new(
                        format!("{field}.host_ip"),
                        format!("{s:?} is not an IP address"),
                    )
                })?;
                check_host_ip(&format!("{field}.host_ip"), a)?;
                Some(a)
            }
        };
        Ok(PortSpec {
            host_ip,
            host_port,
            host_port_end,
            container_port,
            container_port_end,
            protocol: Protocol::parse(&format!("{field}.protocol"), protocol)?,
        })
    }

    /// Where its host port comes from.
    pub fn host_ports(&self) -> HostPorts {
        if self.host_port == 0 {
            HostPorts::Ephemeral
        } else if self.container_port_end == self.container_port
            && self.host_port_end != self.host_port
        {
            HostPorts::OneOf(self.host_port..=self.host_port_end)
        } else {
            HostPorts::Fixed
        }
    }

    /// True when every host port is the client's (nothing to choose).
    pub fn is_fixed(&self) -> bool {
        self.host_ports() == HostPorts::Fixed
    }

    /// How many mappings it makes: one per container port.
    pub fn mapping_count(&self) -> usize {
        usize::from(self.container_port_end.saturating_sub(self.container_port)) + 1
    }

    /// The same port with its host port chosen: `host` for the single container port.
    pub fn resolved(&self, host: u16) -> PortSpec {
        PortSpec {
            host_port: host,
            host_port_end: host,
            ..self.clone()
        }
    }

    /// Each (host port, container port) pair of a fixed port (a resolved one included);
    /// nothing while its host port is still to be chosen.
    pub fn pairs(&self) -> impl Iterator<Item = (u16, u16)> + '_ {
        let fixed = self.is_fixed();
        (self.container_port..=self.container_port_end)
            .filter(move |_| fixed)
            .map(move |c| (self.host_port + (c - self.container_port), c))
    }
}

/// `net.ipv4.ip_local_port_range` as the kernel prints it ("32768\t60999\n"); None when it
/// does not read as two ports, low first.
pub fn parse_local_port_range(text: &str) -> Option<RangeInclusive<u16>> {
    let mut it = text.split_whitespace().map(str::parse::<u16>);
    let (Some(Ok(lo)), Some(Ok(hi)), None) = (it.next(), it.next(), it.next()) else {
        return None;
    };
    (lo != 0 && lo <= hi).then_some(lo..=hi)
}

/// The ports of `range` in the order a choice tries them: from the one `seed` lands on to
/// the end, then from the start (so every port is tried once).
pub fn port_candidates(range: &RangeInclusive<u16>, seed: u64) -> impl Iterator<Item = u16> {
    let (lo, hi) = (u32::from(*range.start()), u32::from(*range.end()));
    let len = (hi + 1).saturating_sub(lo);
    let first = if len == 0 {
        0
    } else {
        (seed % u64::from(len)) as u32
    };
    (0..len).map(move |i| (lo + (first + i) % len) as u16)
}

#[cfg(test)]
mod tests {
    //! Each shape of `-p`, the refusals of the others, stored specs of before, and the
    //! candidates a choice walks.

    use super::*;

    fn p(host: (u32, u32), container: (u32, u32)) -> Result<PortSpec, Invalid> {
        PortSpec::parse_range("p", "", host, container, "tcp")
    }

    /// `8080:80` is fixed, `80` ephemeral, `9000-9010:80` one of the range, and
    /// `9000-9001:90-91` pairwise.
    #[test]
    fn each_shape_means_what_docker_means() {
        let fixed = p((8080, 0), (80, 0)).unwrap();
        assert_eq!(fixed.host_ports(), HostPorts::Fixed);
        assert_eq!(fixed.pairs().collect::<Vec<_>>(), [(8080, 80)]);
        let eph = p((0, 0), (80, 0)).unwrap();
        assert_eq!(eph.host_ports(), HostPorts::Ephemeral);
        assert_eq!(eph.pairs().count(), 0);
        assert_eq!(
            eph.resolved(40000).pairs().collect::<Vec<_>>(),
            [(40000, 80)]
        );
        let one = p((9000, 9010), (80, 0)).unwrap();
        assert_eq!(one.host_ports(), HostPorts::OneOf(9000..=9010));
        assert_eq!(one.mapping_count(), 1);
        assert_eq!(one.resolved(9004).pairs().collect::<Vec<_>>(), [(9004, 80)]);
        let pairwise = p((9000, 9001), (90, 91)).unwrap();
        assert_eq!(pairwise.host_ports(), HostPorts::Fixed);
        assert_eq!(pairwise.mapping_count(), 2);
        assert_eq!(
            pairwise.pairs().collect::<Vec<_>>(),
            [(9000, 90), (9001, 91)]
        );
        let udp = PortSpec::parse("p", "127.0.0.1", 0, 0, 53, "UDP").unwrap();
        assert_eq!((udp.host_port, udp.protocol), (0, Protocol::Udp));
    }

    /// Every other shape names the field to fix.
    #[test]
    fn other_shapes_name_the_field() {
        for (host, container, field, says) in [
            (
                (9000, 9002),
                (90, 91),
                "p.container_port_end",
                "differ in length",
            ),
            (
                (9000, 0),
                (90, 91),
                "p.container_port_end",
                "differ in length",
            ),
            ((0, 0), (90, 91), "p.host_port", "same length"),
            ((0, 9000), (90, 0), "p.host_port", "needs its first port"),
            ((80, 79), (80, 0), "p.host_port_end", "ends before"),
            ((80, 0), (81, 80), "p.container_port_end", "ends before"),
            ((80, 0), (0, 0), "p.container_port", "not a port"),
            ((70000, 0), (80, 0), "p.host_port", "not a port"),
            ((1000, 3000), (80, 0), "p.host_port_end", "at most 1024"),
        ] {
            let e = p(host, container).unwrap_err();
            assert_eq!(e.field, field, "{host:?}:{container:?}");
            assert!(e.problem.contains(says), "{host:?}:{container:?}: {e}");
        }
        let e = PortSpec::parse("p", "", 80, 0, 80, "icmp").unwrap_err();
        assert_eq!(e.field, "p.protocol");
        for ip in [
            "224.0.0.1",
            "255.255.255.255",
            "ff02::1",
            "::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            let e = PortSpec::parse("p[0]", ip, 80, 0, 80, "tcp").unwrap_err();
            assert_eq!(e.field, "p[0].host_ip", "{ip}");
        }
        assert!(PortSpec::parse("p", "127.0.0.1", 80, 0, 80, "tcp").is_ok());
    }

    /// A spec stored before `container_port_end` existed keeps its pairwise meaning
    /// (`9000-9001:90` went to 90 and 91); a new one round-trips as it is.
    #[test]
    fn stored_specs_keep_their_meaning() {
        let old = r#"{"host_ip":null,"host_port":9000,"host_port_end":9001,"container_port":90,"protocol":"tcp"}"#;
        let p: PortSpec = serde_json::from_str(old).unwrap();
        assert_eq!(p.container_port_end, 91);
        assert_eq!(p.host_ports(), HostPorts::Fixed);
        assert_eq!(p.pairs().collect::<Vec<_>>(), [(9000, 90), (9001, 91)]);
        let new = PortSpec::parse("p", "10.0.0.1", 9000, 9010, 80, "udp")
            .unwrap()
            .resolved(9003);
        let back: PortSpec = serde_json::from_str(&serde_json::to_string(&new).unwrap()).unwrap();
        assert_eq!(back, new);
    }

    /// The kernel's text reads as a range; nonsense does not.
    #[test]
    fn local_port_range_parses() {
        assert_eq!(
            parse_local_port_range("32768\t60999\n"),
            Some(32768..=60999)
        );
        assert_eq!(parse_local_port_range("40000 40000"), Some(40000..=40000));
        for bad in ["", "1", "5 4", "0 10", "1 2 3", "a b"] {
            assert_eq!(parse_local_port_range(bad), None, "{bad:?}");
        }
    }

    /// Candidates start where the seed lands, wrap, and cover the range once.
    #[test]
    fn candidates_cover_the_range_once() {
        let c: Vec<u16> = port_candidates(&(10..=14), 7).collect();
        assert_eq!(c, [12, 13, 14, 10, 11]);
        let all: Vec<u16> = port_candidates(&(1..=65535), u64::MAX).collect();
        assert_eq!(all.len(), 65535);
        assert_eq!(port_candidates(&(5..=5), 3).collect::<Vec<_>>(), [5]);
    }
}
