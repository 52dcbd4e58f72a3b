//! From the flags of `weft network` to what it sends, pure and unit tested: the Network of
//! `create` (docker's subnet, gateway and range pairing, and its bridge driver options), the
//! Connect request, and the label selector of `ls` and `watch`.
//!
//! Pairing follows `docker network create`: each `--gateway` and `--ip-range` goes to the
//! `--subnet` that contains it, one of each per subnet, so IPv4 and IPv6 flags may be given in
//! any order. A flag that fits no subnet, or a second gateway for one subnet, is a usage error
//! (exit 2) naming both values.

use std::net::IpAddr;

use weft::v1::{ConnectRequest, Network, Subnet};

use super::args::{ConnectArgs, CreateArgs, opt};
use crate::cli::parse::{self, Filter};

/// Whether `net` (address and prefix) contains `ip`; addresses of different families never
/// match, and a /0 contains every address of its family.
fn contains((net, prefix): (IpAddr, u8), ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

/// Pairs gateways and ranges with subnets the way docker does: each goes to the subnet that
/// contains it, one per subnet.
pub fn subnets(
    subnets: &[String],
    gateways: &[String],
    ranges: &[String],
) -> Result<Vec<Subnet>, String> {
    if subnets.is_empty() && !(gateways.is_empty() && ranges.is_empty()) {
        return Err("--gateway and --ip-range need the --subnet they belong to".into());
    }
    let nets = subnets
        .iter()
        .map(|s| parse::cidr_parts(s))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out: Vec<Subnet> = subnets
        .iter()
        .map(|s| Subnet {
            subnet: s.clone(),
            ..Default::default()
        })
        .collect();
    // Puts `value` into the first subnet that contains `ip` (and `prefix`) and has none yet.
    let mut assign = |value: &str,
                      ip: IpAddr,
                      prefix: Option<u8>,
                      what: &str,
                      field: fn(&mut Subnet) -> &mut String|
     -> Result<(), String> {
        let fits = |i: usize| contains(nets[i], ip) && prefix.is_none_or(|p| p >= nets[i].1);
        let candidates: Vec<usize> = (0..nets.len()).filter(|&i| fits(i)).collect();
        let Some(&first) = candidates.first() else {
            return Err(format!(
                "{what} {value} is in none of the subnets ({})",
                subnets.join(", ")
            ));
        };
        match candidates
            .into_iter()
            .find(|&i| field(&mut out[i]).is_empty())
        {
            Some(i) => {
                *field(&mut out[i]) = value.to_string();
                Ok(())
            }
            None => Err(format!(
                "subnet {} is given more than one {what} ({} and {value})",
                subnets[first],
                field(&mut out[first])
            )),
        }
    };
    for gw in gateways {
        let ip: IpAddr = gw
            .parse()
            .map_err(|_| format!("gateway {gw:?} is not an IP address"))?;
        assign(gw, ip, None, "--gateway", |s| &mut s.gateway)?;
    }
    for range in ranges {
        let (ip, prefix) = parse::cidr_parts(range)?;
        assign(range, ip, Some(prefix), "--ip-range", |s| &mut s.ip_range)?;
    }
    Ok(out)
}

/// Docker's `--aux-address NAME=IP`: each IP joins the `reserved` addresses of the subnet
/// that contains it (the name is not kept: weft has no field for it).
fn aux_addresses(mut out: Vec<Subnet>, aux: &[(String, String)]) -> Result<Vec<Subnet>, String> {
    for (name, value) in aux {
        let given = format!("--aux-address {name}={value}");
        let ip = parse::ip(value).map_err(|e| format!("{given}: {e}"))?;
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| format!("{given}: {value:?} is not an IP address"))?;
        let mut home = None;
        for (i, s) in out.iter().enumerate() {
            if contains(parse::cidr_parts(&s.subnet)?, ip) {
                home = Some(i);
                break;
            }
        }
        let Some(i) = home else {
            return Err(format!(
                "{given}: {ip} is in none of the subnets; give the --subnet it belongs to"
            ));
        };
        out[i].reserved.push(ip.to_string());
    }
    Ok(out)
}

/// Builds the network `weft network create` asks for.
pub fn build_network(a: &CreateArgs) -> Result<Network, String> {
    let mut net = Network {
        name: a.name.clone(),
        labels: parse::labels_map(&a.labels)?,
        subnets: aux_addresses(
            subnets(&a.subnets, &a.gateways, &a.ip_ranges)?,
            &a.aux_addresses,
        )?,
        internal: a.internal,
        enable_ipv6: a.ipv6,
        // Unset unless asked: weftd's default (on) applies.
        dns: match (a.dns, a.no_dns) {
            (_, true) => Some(false),
            (true, false) => Some(true),
            (false, false) => None,
        },
        ..Default::default()
    };
    let mut bridge = a
        .bridge_name
        .clone()
        .map(|b| (b, "--bridge-name".to_string()));
    let mut mtu = a.mtu.map(|m| (m, "--mtu".to_string()));
    for (key, value) in &a.opts {
        let given = format!("--opt {key}={value}");
        let bool_opt = || parse::go_bool(value).map_err(|e| format!("{given}: {e}"));
        match key.as_str() {
            opt::ENABLE_ICC => net.enable_icc = Some(bool_opt()?),
            opt::MASQUERADE => net.masquerade = Some(bool_opt()?),
            opt::BRIDGE_NAME => set_once(&mut bridge, value.clone(), given)?,
            opt::MTU => {
                let m = value
                    .parse()
                    .map_err(|_| format!("{given}: the MTU must be a number"))?;
                set_once(&mut mtu, m, given)?;
            }
            _ => {
                return Err(format!(
                    "unsupported option {key:?}; weft understands {}, {}, {} and {}",
                    opt::ENABLE_ICC,
                    opt::MASQUERADE,
                    opt::BRIDGE_NAME,
                    opt::MTU
                ));
            }
        }
    }
    net.bridge_name = bridge.map(|(b, _)| b).unwrap_or_default();
    net.mtu = mtu.map_or(0, |(m, _)| m);
    Ok(net)
}

/// Sets a value that two flags may give (`--mtu` and `--opt ...driver.mtu=`), refusing two
/// different ones: `from` names the flag, for the message.
fn set_once<T: PartialEq + std::fmt::Display>(
    slot: &mut Option<(T, String)>,
    value: T,
    from: String,
) -> Result<(), String> {
    match slot {
        Some((old, old_from)) if *old != value => {
            Err(format!("{old_from} ({old}) and {from} disagree"))
        }
        Some(_) => Ok(()),
        None => {
            *slot = Some((value, from));
            Ok(())
        }
    }
}

/// Builds the Connect request.
pub fn connect_request(a: &ConnectArgs) -> ConnectRequest {
    let mut req =
        a.endpoint
            .connect_request(&a.network, &a.namespace, a.no_default_route, !a.no_wait);
    req.dry_run = a.dry_run;
    req.request_id = a.request_id.clone().unwrap_or_default();
    req
}

/// The label selector for weftd (`--selector` and the label filters, all of which must match)
/// and the name substrings the CLI matches itself.
pub fn selection(selector: &str, filters: &[Filter]) -> (String, Vec<String>) {
    let (terms, names) = parse::split_filters(filters);
    let sel = [selector, terms.as_str()]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(",");
    (sel, names)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command, network::NetworkCmd};

    /// Parses `weft network ARGS...` into its subcommand.
    fn parse(args: &[&str]) -> Result<NetworkCmd, String> {
        let mut argv = vec!["weft", "network"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv)
            .map_err(|e| e.to_string())
            .map(|cli| match cli.command {
                Command::Network(cmd) => cmd,
                other => panic!("parsed as {other:?}"),
            })
    }

    /// The Network that `weft network create n1 ARGS...` asks for.
    fn create(args: &[&str]) -> Result<Network, String> {
        let mut argv = vec!["create", "n1"];
        argv.extend_from_slice(args);
        match parse(&argv)? {
            NetworkCmd::Create(a) => build_network(&a),
            other => panic!("parsed as {other:?}"),
        }
    }

    /// A Subnet with a gateway and a range (empty for none).
    fn sub(s: &str, gw: &str, range: &str) -> Subnet {
        Subnet {
            subnet: s.into(),
            gateway: gw.into(),
            ip_range: range.into(),
            reserved: vec![],
        }
    }

    /// `--aux-address NAME=IP` reserves IP in the subnet that contains it, as Docker's; one
    /// in no subnet is refused, naming the flag.
    #[test]
    fn aux_addresses_are_reserved_in_their_subnet() {
        let n = create(&[
            "--subnet",
            "10.1.0.0/24",
            "--subnet",
            "fd00:1::/64",
            "--aux-address",
            "router=10.1.0.5",
            "--aux-address",
            "dns6=fd00:1::53",
            "--aux-address",
            "printer=10.1.0.9",
        ])
        .unwrap();
        assert_eq!(n.subnets[0].reserved, ["10.1.0.5", "10.1.0.9"]);
        assert_eq!(n.subnets[1].reserved, ["fd00:1::53"]);
        let e = create(&["--subnet", "10.1.0.0/24", "--aux-address", "x=10.2.0.1"]).unwrap_err();
        assert!(
            e.contains("--aux-address x=10.2.0.1") && e.contains("none of the subnets"),
            "{e}"
        );
        assert!(create(&["--aux-address", "x=10.2.0.1"]).is_err());
    }

    /// Gateways and ranges go to the subnet that contains them, whatever the order of the flags,
    /// as `docker network create` pairs them.
    #[test]
    fn subnet_gateway_and_range_pair_up() {
        let n = create(&[
            "--subnet",
            "172.20.0.0/16",
            "--gateway",
            "172.20.0.1",
            "--ip-range",
            "172.20.5.0/24",
        ])
        .unwrap();
        assert_eq!(
            n.subnets,
            [sub("172.20.0.0/16", "172.20.0.1", "172.20.5.0/24")]
        );

        // By position...
        let n = create(&[
            "--subnet",
            "10.1.0.0/24",
            "--subnet",
            "fd00:1::/64",
            "--gateway",
            "10.1.0.254",
            "--gateway",
            "fd00:1::1",
            "--ipv6",
        ])
        .unwrap();
        assert_eq!(
            n.subnets,
            [
                sub("10.1.0.0/24", "10.1.0.254", ""),
                sub("fd00:1::/64", "fd00:1::1", "")
            ]
        );

        // ...and, like docker, by containment when the order differs or one is left out.
        let n = create(&[
            "--subnet",
            "10.1.0.0/24",
            "--subnet",
            "fd00:1::/64",
            "--gateway",
            "fd00:1::1",
            "--ip-range",
            "10.1.0.128/25",
        ])
        .unwrap();
        assert_eq!(
            n.subnets,
            [
                sub("10.1.0.0/24", "", "10.1.0.128/25"),
                sub("fd00:1::/64", "fd00:1::1", "")
            ]
        );
    }

    /// A gateway or range outside every subnet, or two for one subnet, is refused before weftd
    /// is asked, with both values in the message.
    #[test]
    fn pairing_errors() {
        assert!(
            create(&["--gateway", "10.0.0.1"])
                .unwrap_err()
                .contains("need the --subnet")
        );
        assert!(
            create(&["--subnet", "10.1.0.0/24", "--gateway", "10.2.0.1"])
                .unwrap_err()
                .contains("none of the subnets")
        );
        assert!(
            create(&[
                "--subnet",
                "10.1.0.0/24",
                "--gateway",
                "10.1.0.1",
                "--gateway",
                "10.1.0.2"
            ])
            .unwrap_err()
            .contains("more than one --gateway")
        );
        assert!(
            create(&["--subnet", "10.1.0.0/24", "--ip-range", "10.1.0.0/16"])
                .unwrap_err()
                .contains("none of the subnets")
        );
        assert!(
            create(&["--subnet", "10.1.0.0"])
                .unwrap_err()
                .contains("CIDR")
        );
        // --ipv6 without an IPv6 subnet asks weftd's pool for one.
        let n = create(&["--subnet", "10.1.0.0/24", "--ipv6"]).unwrap();
        assert!(n.enable_ipv6);
        assert!(!create(&[]).unwrap().enable_ipv6);
    }

    /// docker's bridge driver options set the same fields as weft's own flags; the two may agree
    /// but not disagree, and an option weft does not know is refused, not ignored.
    #[test]
    fn docker_options_map_onto_fields() {
        let n = create(&[
            "--opt",
            "com.docker.network.bridge.enable_icc=false",
            "--opt",
            "com.docker.network.bridge.enable_ip_masquerade=false",
            "--opt",
            "com.docker.network.bridge.name=br-test",
            "--opt",
            "com.docker.network.driver.mtu=1450",
            "--internal",
            "--label",
            "env=test",
        ])
        .unwrap();
        assert_eq!(n.enable_icc, Some(false));
        assert_eq!(n.masquerade, Some(false));
        assert_eq!(n.bridge_name, "br-test");
        assert_eq!(n.mtu, 1450);
        assert!(n.internal);
        assert_eq!(n.labels["env"], "test");
        assert!(n.subnets.is_empty());

        let n = create(&["--bridge-name", "br1", "--mtu", "9000"]).unwrap();
        assert_eq!(
            (n.bridge_name.as_str(), n.mtu, n.enable_icc, n.masquerade),
            ("br1", 9000, None, None)
        );
        // The same value twice is fine; two different ones are not.
        assert!(
            create(&[
                "--bridge-name",
                "br1",
                "--opt",
                "com.docker.network.bridge.name=br1"
            ])
            .is_ok()
        );
        assert!(
            create(&[
                "--bridge-name",
                "br1",
                "--opt",
                "com.docker.network.bridge.name=br2"
            ])
            .unwrap_err()
            .contains("disagree")
        );
        assert!(
            create(&[
                "--mtu",
                "1500",
                "--opt",
                "com.docker.network.driver.mtu=9000"
            ])
            .unwrap_err()
            .contains("disagree")
        );
        assert!(
            create(&["--opt", "com.docker.network.bridge.enable_icc=maybe"])
                .unwrap_err()
                .contains("boolean")
        );
        assert!(
            create(&["--opt", "com.docker.network.driver.mtu=big"])
                .unwrap_err()
                .contains("number")
        );
        assert!(
            create(&[
                "--opt",
                "com.docker.network.bridge.host_binding_ipv4=0.0.0.0"
            ])
            .unwrap_err()
            .contains("unsupported option")
        );
        assert!(create(&["--opt", "novalue"]).is_err());
        assert!(create(&["-d", "overlay"]).is_err());
    }

    /// Every endpoint flag reaches its field of the Connect request.
    #[test]
    fn connect_maps_flags() {
        let NetworkCmd::Connect(a) = parse(&[
            "connect",
            "n1",
            "ns1",
            "--ip",
            "172.20.0.10",
            "--ip6",
            "fd00:1::10",
            "--mac",
            "02:42:ac:14:00:0a",
            "--alias",
            "web",
            "--alias",
            "www",
            "-p",
            "8080:80/tcp",
            "-p",
            "127.0.0.1:8000-8010:80/udp",
            "--interface",
            "eth1",
            "--no-default-route",
        ])
        .unwrap() else {
            panic!()
        };
        let req = connect_request(&a);
        assert_eq!(
            (req.network.as_str(), req.namespace.as_str()),
            ("n1", "ns1")
        );
        assert_eq!(
            (req.ipv4_address.as_str(), req.ipv6_address.as_str()),
            ("172.20.0.10", "fd00:1::10")
        );
        assert_eq!(req.mac_address, "02:42:ac:14:00:0a");
        assert_eq!(req.aliases, ["web", "www"]);
        assert_eq!(req.published_ports.len(), 2);
        assert_eq!(req.published_ports[1].host_port_end, 8010);
        assert_eq!(req.interface_name, "eth1");
        assert!(req.skip_default_route);
        assert_eq!(req.wait, Some(true));
        assert!(parse(&["connect", "n1", "ns1", "--ip", "fd00::1"]).is_err());
        assert!(parse(&["connect", "n1", "ns1", "-p", "80:80/icmp"]).is_err());
    }

    /// `-f` filters split into weftd's label selector and the CLI's name match; prune takes
    /// label filters only.
    #[test]
    fn ls_and_prune_filters() {
        let NetworkCmd::Ls(a) =
            parse(&["ls", "-f", "label=env=prod", "--filter", "name=web"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            parse::split_filters(&a.filters),
            ("env=prod".into(), vec!["web".into()])
        );
        let NetworkCmd::Prune(a) = parse(&["prune", "--filter", "label!=keep", "-f"]).unwrap()
        else {
            panic!()
        };
        assert!(a.force);
        assert_eq!(parse::split_filters(&a.filters).0, "!keep");
        assert!(parse(&["ls", "--filter", "driver=bridge"]).is_err());
    }

    /// `-l` and `--filter label=...` are one selector (all terms must match), and watch takes
    /// the same selection with its own flags.
    #[test]
    fn selector_and_filters_combine() {
        let NetworkCmd::Watch(a) = parse(&[
            "watch",
            "-l",
            "env=prod,!old",
            "-f",
            "label=tier=web",
            "-f",
            "name=shop",
            "--since",
            "42",
            "--max-events",
            "3",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            selection(&a.selector, &a.filters),
            ("env=prod,!old,tier=web".into(), vec!["shop".into()])
        );
        assert_eq!((a.flags.since, a.flags.max_events), (Some(42), Some(3)));
        assert_eq!(selection("", &[]), (String::new(), vec![]));
        assert!(parse(&["watch", "--max-events", "0"]).is_err());
        assert!(parse(&["ls", "-w", "-q"]).is_err());
    }

    /// `--dry-run` and `--request-id` reach the Connect request; without them the fields stay at
    /// their defaults, and an empty or too long id is a usage error.
    #[test]
    fn dry_run_and_request_id_reach_the_requests() {
        let NetworkCmd::Connect(a) =
            parse(&["connect", "n1", "ns1", "--dry-run", "--request-id", "r-1"]).unwrap()
        else {
            panic!()
        };
        let req = connect_request(&a);
        assert!(req.dry_run);
        assert_eq!(req.request_id, "r-1");
        let NetworkCmd::Connect(a) = parse(&["connect", "n1", "ns1"]).unwrap() else {
            panic!()
        };
        let req = connect_request(&a);
        assert!(!req.dry_run);
        assert_eq!(req.request_id, "");
        assert!(parse(&["connect", "n1", "ns1", "--request-id", ""]).is_err());
        let long = "x".repeat(129);
        assert!(parse(&["create", "n1", "--request-id", &long]).is_err());
    }
}
