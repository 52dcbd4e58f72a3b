//! From the flags of `weft link` to what it sends, pure and unit tested: the Link of
//! `create` (both ends of a veth pair), the UpdateLink of `set` with its update mask, and the
//! namespace filter of `ls` and `watch`.
//!
//! The update mask is the contract of `set`: it names exactly the fields given on the command
//! line, in proto field order, so weftd leaves every other field alone. `--noaddr`,
//! `--noroute` and `--nomaster` are how a field is set to empty (an empty list in the mask),
//! as opposed to left out of it.

use std::collections::HashMap;

use weft::v1::{Bridge, Link, Route, UpdateLinkRequest, Veth, VethPeer, link::Kind};

use super::args::{CreateArgs, LinkKind, SetArgs};
use crate::cli::parse;

/// Builds the link `weft link create` asks for.
pub fn build_link(a: &CreateArgs) -> Result<Link, String> {
    let mut link = Link {
        name: a.name.clone(),
        namespace: a.ns.clone(),
        labels: parse::labels_map(&a.labels)?,
        mtu: a.mtu.unwrap_or(0),
        mac_address: a.mac.clone().unwrap_or_default(),
        up: a.up,
        master: a.master.clone().unwrap_or_default(),
        addresses: a.addrs.clone(),
        routes: a.routes.clone(),
        ..Default::default()
    };
    link.kind = Some(match a.kind {
        LinkKind::Bridge => {
            if a.peer.is_some() {
                return Err("--peer and the --peer-* flags only apply to --type veth".into());
            }
            Kind::Bridge(Bridge {})
        }
        LinkKind::Veth => {
            let name = a.peer.clone().ok_or("--type veth needs --peer NAME")?;
            Kind::Veth(Veth {
                peer: Some(VethPeer {
                    name,
                    namespace: a.peer_ns.clone().unwrap_or_else(|| a.ns.clone()),
                    mtu: a.peer_mtu.unwrap_or(0),
                    mac_address: a.peer_mac.clone().unwrap_or_default(),
                    up: a.peer_up,
                    master: a.peer_master.clone().unwrap_or_default(),
                    addresses: a.peer_addrs.clone(),
                    routes: a.peer_routes.clone(),
                    ..Default::default()
                }),
            })
        }
    });
    Ok(link)
}

/// The changes `weft link set` asks for; `None` leaves a field alone.
#[derive(Debug, Default, PartialEq)]
pub struct Changes {
    /// New MTU.
    pub mtu: Option<u32>,
    /// New MAC address.
    pub mac: Option<String>,
    /// Up or down.
    pub up: Option<bool>,
    /// New master; empty releases the interface.
    pub master: Option<String>,
    /// New address list.
    pub addresses: Option<Vec<String>>,
    /// New route list.
    pub routes: Option<Vec<Route>>,
    /// New labels (of the whole link).
    pub labels: Option<HashMap<String, String>>,
}

/// Collects the changes from the flags; at least one is needed.
pub fn changes(a: &SetArgs) -> Result<Changes, String> {
    let list = |none: bool, items: &Vec<String>| {
        if none {
            Some(Vec::new())
        } else {
            (!items.is_empty()).then(|| items.clone())
        }
    };
    let c = Changes {
        mtu: a.mtu,
        mac: a.mac.clone(),
        up: if a.up {
            Some(true)
        } else {
            a.down.then_some(false)
        },
        master: if a.nomaster {
            Some(String::new())
        } else {
            a.master.clone()
        },
        addresses: list(a.noaddr, &a.addrs),
        routes: if a.noroute {
            Some(Vec::new())
        } else {
            (!a.routes.is_empty()).then(|| a.routes.clone())
        },
        labels: if a.labels.is_empty() {
            None
        } else {
            Some(parse::labels_map(&a.labels)?)
        },
    };
    if c == Changes::default() {
        return Err(
            "nothing to change: give at least one of --mtu, --mac, --up/--down, \
                    --master/--nomaster, --addr/--noaddr, --route/--noroute, --label"
                .into(),
        );
    }
    Ok(c)
}

/// Builds the UpdateLink request for interface (`ns`, `name`): the given fields set, and the
/// update mask naming exactly those, in proto field order. weftd applies the top-level fields to
/// the end that is named, so naming the far end of a veth pair changes that end.
pub fn update_request(ns: &str, name: &str, c: &Changes, wait: bool) -> UpdateLinkRequest {
    let mut paths = Vec::new();
    let mut link = Link {
        name: name.into(),
        namespace: ns.into(),
        ..Default::default()
    };
    if let Some(v) = c.mtu {
        link.mtu = v;
        paths.push("mtu");
    }
    if let Some(v) = &c.mac {
        link.mac_address.clone_from(v);
        paths.push("mac_address");
    }
    if let Some(v) = c.up {
        link.up = v;
        paths.push("up");
    }
    if let Some(v) = &c.master {
        link.master.clone_from(v);
        paths.push("master");
    }
    if let Some(v) = &c.addresses {
        link.addresses.clone_from(v);
        paths.push("addresses");
    }
    if let Some(v) = &c.routes {
        link.routes.clone_from(v);
        paths.push("routes");
    }
    if let Some(v) = &c.labels {
        link.labels.clone_from(v);
        paths.push("labels");
    }
    UpdateLinkRequest {
        dry_run: false,
        link: Some(link),
        update_mask: Some(prost_types::FieldMask {
            paths: paths.into_iter().map(String::from).collect(),
        }),
        wait: Some(wait),
    }
}

/// The namespace filter of `ls` and `watch`: `--host-ns` is `--ns ""`.
pub fn ns_filter(ns: Option<String>, host: bool) -> Option<String> {
    if host { Some(String::new()) } else { ns }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command, link::LinkCmd};

    /// Parses `weft link ARGS...` into its subcommand.
    fn parse(args: &[&str]) -> Result<LinkCmd, clap::Error> {
        let mut argv = vec!["weft", "link"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).map(|cli| match cli.command {
            Command::Link(cmd) => cmd,
            other => panic!("parsed as {other:?}"),
        })
    }

    /// The Link that `weft link create ARGS...` asks for.
    fn create(args: &[&str]) -> Result<Link, String> {
        let mut argv = vec!["create"];
        argv.extend_from_slice(args);
        match parse(&argv).map_err(|e| e.to_string())? {
            LinkCmd::Create(a) => build_link(&a),
            other => panic!("parsed as {other:?}"),
        }
    }

    /// The flags and changes of `weft link set ARGS...`.
    fn set(args: &[&str]) -> Result<(SetArgs, Changes), String> {
        let mut argv = vec!["set"];
        argv.extend_from_slice(args);
        match parse(&argv).map_err(|e| e.to_string())? {
            LinkCmd::Set(a) => changes(&a).map(|c| (a, c)),
            other => panic!("parsed as {other:?}"),
        }
    }

    /// The paths of a request's update mask.
    fn mask(req: &UpdateLinkRequest) -> Vec<&str> {
        req.update_mask
            .as_ref()
            .unwrap()
            .paths
            .iter()
            .map(String::as_str)
            .collect()
    }

    /// Every flag of `link create --type veth` reaches its field, the `--peer-*` ones on the
    /// peer.
    #[test]
    fn create_veth_maps_both_ends() {
        let l = create(&[
            "veth0",
            "--type",
            "veth",
            "--peer",
            "eth0",
            "--peer-ns",
            "ns1",
            "--mtu",
            "1400",
            "--up",
            "--master",
            "br0",
            "--addr",
            "10.0.0.1/24",
            "--route",
            "10.2.0.0/16,via=10.0.0.2",
            "--peer-addr",
            "10.0.0.2/24",
            "--peer-route",
            "default,via=10.0.0.1",
            "--peer-up",
            "--peer-mac",
            "02:00:00:00:00:02",
            "--label",
            "app=x",
        ])
        .unwrap();
        assert_eq!(
            (l.name.as_str(), l.namespace.as_str(), l.mtu, l.up),
            ("veth0", "", 1400, true)
        );
        assert_eq!(l.master, "br0");
        assert_eq!(l.addresses, ["10.0.0.1/24"]);
        assert_eq!(l.routes[0].gateway, "10.0.0.2");
        assert_eq!(l.labels["app"], "x");
        let Some(Kind::Veth(Veth { peer: Some(p) })) = &l.kind else {
            panic!("{l:?}")
        };
        assert_eq!(
            (p.name.as_str(), p.namespace.as_str(), p.up),
            ("eth0", "ns1", true)
        );
        assert_eq!(p.addresses, ["10.0.0.2/24"]);
        assert_eq!(p.routes[0].destination, "default");
        assert_eq!(p.mac_address, "02:00:00:00:00:02");
    }

    /// Without `--peer-ns` the peer is created next to the link; `--peer-ns ""` puts it in the
    /// host.
    #[test]
    fn veth_peer_defaults_to_the_links_namespace() {
        let l = create(&["a", "--ns", "ns1", "--type", "veth", "--peer", "b"]).unwrap();
        let Some(Kind::Veth(Veth { peer: Some(p) })) = &l.kind else {
            panic!()
        };
        assert_eq!(p.namespace, "ns1");
        let l = create(&[
            "a",
            "--ns",
            "ns1",
            "--type",
            "veth",
            "--peer",
            "b",
            "--peer-ns",
            "",
        ])
        .unwrap();
        let Some(Kind::Veth(Veth { peer: Some(p) })) = &l.kind else {
            panic!()
        };
        assert_eq!(p.namespace, "");
    }

    /// A veth needs `--peer`; a bridge takes none of the `--peer*` flags; route options are
    /// checked by the parser.
    #[test]
    fn create_checks_kind_specific_flags() {
        let l = create(&["br0", "--type", "bridge", "--up"]).unwrap();
        assert!(matches!(l.kind, Some(Kind::Bridge(_))));
        assert!(
            create(&["v0", "--type", "veth"])
                .unwrap_err()
                .contains("--peer")
        );
        assert!(
            create(&["br0", "--type", "bridge", "--peer", "x"])
                .unwrap_err()
                .contains("only apply")
        );
        assert!(
            create(&["br0", "--type", "bridge", "--peer-up"])
                .unwrap_err()
                .contains("--peer")
        );
        assert!(create(&["br0", "--type", "tun"]).is_err());
        assert!(create(&["br0"]).is_err());
        assert!(create(&["br0", "--type", "bridge", "--route", "10.0.0.0/8,dev=x"]).is_err());
    }

    /// `--host-ns` is `--ns ""`; no flag lists every namespace; the two flags conflict.
    #[test]
    fn ls_namespace_choices() {
        let ns_of = |args: &[&str]| match parse(args).unwrap() {
            LinkCmd::Ls(a) => ns_filter(a.ns, a.host_ns),
            LinkCmd::Watch(a) => ns_filter(a.ns, a.host_ns),
            other => panic!("{other:?}"),
        };
        assert_eq!(ns_of(&["ls"]), None);
        assert_eq!(ns_of(&["ls", "--host-ns"]), Some(String::new()));
        // The older spelling, kept for scripts: `--host` after `link ls` is the host namespace.
        assert_eq!(ns_of(&["ls", "--host"]), Some(String::new()));
        assert_eq!(ns_of(&["watch", "--host"]), Some(String::new()));
        assert_eq!(ns_of(&["list", "--ns", ""]), Some(String::new()));
        assert_eq!(ns_of(&["ls", "--ns", "ns1"]), Some("ns1".into()));
        assert!(parse(&["ls", "--ns", "ns1", "--host-ns"]).is_err());
        assert_eq!(ns_of(&["watch", "--host-ns"]), Some(String::new()));
        assert_eq!(ns_of(&["watch", "--ns", "ns1"]), Some("ns1".into()));
        assert_eq!(ns_of(&["ls", "-w", "--ns", "ns1"]), Some("ns1".into()));
        assert!(parse(&["watch", "--ns", "ns1", "--host-ns"]).is_err());
        assert!(parse(&["ls", "-w", "-q"]).is_err());
    }

    /// The update mask names exactly the fields given, in proto order, and nothing else: weftd
    /// leaves every other field as it is.
    #[test]
    fn update_mask_lists_exactly_the_given_fields() {
        let (a, c) = set(&["veth0", "--mtu", "9000"]).unwrap();
        let req = update_request(&a.ns, &a.name, &c, true);
        assert_eq!(mask(&req), ["mtu"]);
        assert_eq!(req.link.as_ref().unwrap().mtu, 9000);

        let (a, c) = set(&[
            "veth0",
            "--ns",
            "ns1",
            "--down",
            "--nomaster",
            "--addr",
            "10.0.0.1/24",
            "--addr",
            "fd00::1/64",
            "--route",
            "default,via=10.0.0.254",
            "--mac",
            "02:00:00:00:00:01",
            "--label",
            "a=b",
        ])
        .unwrap();
        let req = update_request(&a.ns, &a.name, &c, false);
        assert_eq!(
            mask(&req),
            [
                "mac_address",
                "up",
                "master",
                "addresses",
                "routes",
                "labels"
            ]
        );
        let l = req.link.unwrap();
        assert_eq!(
            (
                l.name.as_str(),
                l.namespace.as_str(),
                l.up,
                l.master.as_str()
            ),
            ("veth0", "ns1", false, "")
        );
        assert_eq!(l.addresses, ["10.0.0.1/24", "fd00::1/64"]);
        assert_eq!(req.wait, Some(false));
    }

    /// `--noaddr` and `--noroute` put the field in the mask with an empty list: clear it.
    #[test]
    fn update_mask_can_clear_lists() {
        let (a, c) = set(&["v", "--noaddr", "--noroute", "--up"]).unwrap();
        let req = update_request(&a.ns, &a.name, &c, true);
        assert_eq!(mask(&req), ["up", "addresses", "routes"]);
        let l = req.link.unwrap();
        assert!(l.addresses.is_empty() && l.routes.is_empty() && l.up);
    }

    /// `set` on the far end of a veth pair names that end; weftd applies the top-level fields to
    /// it, so no `kind` is sent.
    #[test]
    fn update_names_the_end_the_user_named() {
        // Either end of a veth: top-level fields, weftd applies them to the named end.
        let (a, c) = set(&["eth0", "--ns", "ns1", "--mtu", "1400", "--label", "k=v"]).unwrap();
        let req = update_request(&a.ns, &a.name, &c, true);
        assert_eq!(mask(&req), ["mtu", "labels"]);
        let l = req.link.unwrap();
        assert_eq!(
            (l.name.as_str(), l.namespace.as_str(), l.mtu),
            ("eth0", "ns1", 1400)
        );
        assert!(l.kind.is_none());
    }

    /// `set` with nothing to change, or with both halves of a pair (`--up --down`), is a usage
    /// error.
    #[test]
    fn set_needs_something_and_refuses_contradictions() {
        assert!(set(&["v"]).unwrap_err().contains("nothing to change"));
        assert!(set(&["v", "--up", "--down"]).is_err());
        assert!(set(&["v", "--master", "br0", "--nomaster"]).is_err());
        assert!(set(&["v", "--addr", "10.0.0.1/24", "--noaddr"]).is_err());
        assert!(
            set(&["v", "--addr", "10.0.0.1"])
                .unwrap_err()
                .contains("CIDR")
        );
    }
}
