//! The `resolv.conf` weft writes for the namespaces it creates
//! (`<etc-netns-dir>/<name>/resolv.conf`, which `ip netns exec` bind-mounts over
//! `/etc/resolv.conf`): which nameservers a namespace gets, and the file's text. Pure: the
//! caller reads the host's resolv.conf and the store, and writes the result.
//!
//! # What the file says
//! - On at least one network with DNS: one `nameserver` line per resolver of each such
//!   network the namespace is connected to (the network's gateways, [`NetworkSpec::dns_servers`],
//!   restricted to the families the endpoint has an address in; networks in connect order,
//!   duplicates dropped), then the host's `search`, `domain` and `options` lines, as Docker
//!   writes it for a user-defined network. glibc reads at most three nameservers (`MAXNS`);
//!   later ones are written but ignored by it.
//! - On no network with DNS (none at all, or only the default network `bridge`): what Docker
//!   does for its default bridge: the host's file with its loopback nameservers (`127/8`,
//!   `::1`) removed, since inside the namespace they would be the namespace's own loopback.
//!   When none remain, the file has no nameserver and says so in a comment; no public
//!   resolver is invented (Docker would add Google's). glibc then tries `127.0.0.1` inside
//!   the namespace, where nothing listens, so lookups fail at once. A host that runs a local
//!   stub (systemd-resolved's `127.0.0.53`) should point `--host-resolv-conf` at the file
//!   with the real upstreams (`/run/systemd/resolve/resolv.conf`).

use std::net::IpAddr;

use ipnet::IpNet;

use super::NetworkSpec;

/// The first line of every file weft writes: says who wrote it and that edits are lost.
pub const HEADER: &str = "# Written by weftd for network namespace";

/// The resolvers an endpoint with `addresses` on network `net` uses: the network's
/// [`NetworkSpec::dns_servers`] of the families it has an address in (none when the network
/// has no DNS).
pub fn endpoint_dns_servers(net: &NetworkSpec, addresses: &[IpNet]) -> Vec<IpAddr> {
    net.dns_servers()
        .into_iter()
        .filter(|s| addresses.iter().any(|a| a.addr().is_ipv4() == s.is_ipv4()))
        .collect()
}

/// The text of namespace `name`'s resolv.conf: `nameservers` (the resolvers of its DNS
/// networks, in connect order; see the module docs) and the host's resolv.conf `host`.
pub fn render(name: &str, nameservers: &[IpAddr], host: &str) -> String {
    let mut out = format!("{HEADER} {name}; changes are overwritten.\n");
    let mut seen: Vec<IpAddr> = Vec::new();
    for s in nameservers {
        if !seen.contains(s) {
            seen.push(*s);
        }
    }
    if !seen.is_empty() {
        for s in &seen {
            out.push_str(&format!("nameserver {s}\n"));
        }
        for line in host.lines() {
            if matches!(keyword(line), Some("search" | "domain" | "options")) {
                out.push_str(line.trim());
                out.push('\n');
            }
        }
        return out;
    }
    out.push_str(
        "# On no network with DNS: the host's resolv.conf without loopback nameservers.\n",
    );
    let mut kept = 0;
    for line in host.lines() {
        if keyword(line) == Some("nameserver") {
            if nameserver_is_loopback(line) {
                continue;
            }
            kept += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    if kept == 0 {
        out.push_str(
            "# The host has no nameserver but loopback ones, which do not answer here: \
             no nameserver.\n",
        );
    }
    out
}

/// The first word of a resolv.conf line, if it is not a comment.
fn keyword(line: &str) -> Option<&str> {
    let word = line.split_whitespace().next()?;
    (!word.starts_with('#') && !word.starts_with(';')).then_some(word)
}

/// Whether a `nameserver` line names a loopback address (`127/8`, `::1`; a zone suffix
/// `%eth0` is ignored). A line whose address does not parse is kept.
fn nameserver_is_loopback(line: &str) -> bool {
    line.split_whitespace()
        .nth(1)
        .and_then(|a| a.split('%').next())
        .and_then(|a| a.parse::<IpAddr>().ok())
        .is_some_and(|a| a.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SubnetSpec;

    const HOST: &str = "# the host's\nsearch example.com corp.example\n\
                        nameserver 127.0.0.53\nnameserver 192.0.2.53\nnameserver ::1\n\
                        options edns0 trust-ad\n";

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn net(dns: bool, subnets: &[(&str, &str)]) -> NetworkSpec {
        NetworkSpec {
            name: "x".into(),
            labels: Default::default(),
            bridge_name: "br-x".into(),
            subnets: subnets
                .iter()
                .map(|(s, g)| SubnetSpec {
                    subnet: s.parse().expect("subnet"),
                    gateway: ip(g),
                    ip_range: None,
                    reserved: Vec::new(),
                })
                .collect(),
            internal: false,
            icc: true,
            masquerade: true,
            mtu: 0,
            dns,
        }
    }

    /// Networks with DNS: their resolvers in the order given, then the host's search and
    /// options, and none of the host's nameservers.
    #[test]
    fn dns_networks_give_their_resolvers_and_the_hosts_options() {
        let text = render(
            "web",
            &[ip("10.1.0.1"), ip("fd00::1"), ip("10.2.0.1")],
            HOST,
        );
        assert_eq!(
            text,
            "# Written by weftd for network namespace web; changes are overwritten.\n\
             nameserver 10.1.0.1\nnameserver fd00::1\nnameserver 10.2.0.1\n\
             search example.com corp.example\noptions edns0 trust-ad\n"
        );
    }

    /// The same resolver twice (two endpoints on one network cannot happen, but two
    /// networks never share a gateway either): written once.
    #[test]
    fn duplicate_resolvers_are_written_once() {
        let text = render("a", &[ip("10.1.0.1"), ip("10.1.0.1")], "");
        assert_eq!(text.matches("nameserver").count(), 1);
    }

    /// No DNS network: the host's file, loopback nameservers (v4, v6, with a zone) removed,
    /// everything else kept in order.
    #[test]
    fn no_dns_network_gives_the_hosts_file_without_loopback_nameservers() {
        let text = render("b", &[], &format!("{HOST}nameserver 127.0.0.1%lo\n"));
        let body: Vec<&str> = text.lines().skip(2).collect();
        assert_eq!(
            body,
            [
                "# the host's",
                "search example.com corp.example",
                "nameserver 192.0.2.53",
                "options edns0 trust-ad"
            ]
        );
        assert!(!text.contains("no nameserver."));
    }

    /// Only loopback nameservers on the host: none is written, no public one invented, and
    /// the file says why.
    #[test]
    fn only_loopback_nameservers_leave_none_and_invent_nothing() {
        let text = render("c", &[], "nameserver 127.0.0.53\noptions ndots:2\n");
        assert!(!text.contains("\nnameserver"), "{text}");
        assert!(text.contains("options ndots:2"));
        assert!(text.contains("no nameserver."), "{text}");
        assert!(!text.contains("8.8.8.8"));
    }

    /// An endpoint's resolvers: the gateways of the families it has an address in, none on a
    /// network without DNS.
    #[test]
    fn endpoint_resolvers_follow_its_families_and_the_dns_switch() {
        let dual = net(
            true,
            &[("10.1.0.0/24", "10.1.0.1"), ("fd00::/64", "fd00::1")],
        );
        let v4: Vec<IpNet> = vec!["10.1.0.2/24".parse().expect("net")];
        let both: Vec<IpNet> = vec![
            "10.1.0.2/24".parse().expect("net"),
            "fd00::2/64".parse().expect("net"),
        ];
        assert_eq!(endpoint_dns_servers(&dual, &v4), [ip("10.1.0.1")]);
        assert_eq!(
            endpoint_dns_servers(&dual, &both),
            [ip("10.1.0.1"), ip("fd00::1")]
        );
        let off = net(false, &[("10.1.0.0/24", "10.1.0.1")]);
        assert!(endpoint_dns_servers(&off, &both).is_empty());
    }
}
