//! From the flags of `weft ns create` to what it sends: decided before anything is dialled,
//! so every flag combination that makes no sense is a usage error (exit 2) and every one that
//! does is a unit test here, not a round trip to weftd.
//!
//! `ns create` sends at most two requests: CreateNamespace (always, unless the mode is `host`
//! or `container:X`) and, with `--network bridge` or `--network NETWORK`, a Connect of the new
//! namespace to that network, shaped by the endpoint flags as `weft network connect` would.

use weft::v1::{ConnectRequest, CreateNamespaceRequest, Namespace};

use super::args::CreateArgs;
use crate::cli::parse::{self, NetworkMode};

/// Builds the CreateNamespace request.
pub fn create_request(a: &CreateArgs) -> Result<CreateNamespaceRequest, String> {
    Ok(CreateNamespaceRequest {
        request_id: a.request_id.clone().unwrap_or_default(),
        dry_run: a.dry_run,
        namespace: Some(Namespace {
            name: a.name.clone(),
            labels: parse::labels_map(&a.labels)?,
            path: a.path.clone().unwrap_or_default(),
            ..Default::default()
        }),
        wait: Some(!a.no_wait),
    })
}

/// What `weft ns create` does, decided from its flags before anything is dialled.
#[derive(Debug)]
pub enum CreatePlan {
    /// Create the namespace; then, with `bridge` or a network's name, connect it.
    Create {
        /// The CreateNamespace request.
        namespace: Box<CreateNamespaceRequest>,
        /// The Connect request, if the mode names a network.
        connect: Option<Box<ConnectRequest>>,
    },
    /// `--network host`: nothing to create or look up.
    Host,
    /// `--network container:X`: nothing to create; look X up.
    Container(String),
}

/// Turns the flags of `weft ns create` into what to do, refusing flags the mode has no use
/// for (a usage error).
pub fn create_plan(a: &CreateArgs) -> Result<CreatePlan, String> {
    let mode = a.network.clone().unwrap_or(NetworkMode::None);
    let endpoint_flag = a.endpoint.first_given();
    match &mode {
        NetworkMode::None => {
            if let Some(flag) = endpoint_flag {
                return Err(format!(
                    "{flag} shapes the namespace's endpoint on a network: it needs --network \
                     bridge or --network NETWORK"
                ));
            }
            Ok(CreatePlan::Create {
                namespace: Box::new(create_request(a)?),
                connect: None,
            })
        }
        NetworkMode::Host | NetworkMode::Container(_) => {
            let given = endpoint_flag
                .or(a.path.is_some().then_some("--path"))
                .or((!a.labels.is_empty()).then_some("--label"));
            if let Some(flag) = given {
                return Err(format!(
                    "{flag} has no use with --network {mode}: that mode creates no namespace"
                ));
            }
            Ok(match mode {
                NetworkMode::Container(x) => CreatePlan::Container(x),
                _ => CreatePlan::Host,
            })
        }
        NetworkMode::Network(net) => {
            let mut connect = a.endpoint.connect_request(net, &a.name, false, !a.no_wait);
            connect.dry_run = a.dry_run;
            if let Some(id) = &a.request_id {
                connect.request_id = connect_request_id(id)?;
            }
            Ok(CreatePlan::Create {
                namespace: Box::new(create_request(a)?),
                connect: Some(Box::new(connect)),
            })
        }
    }
}

/// The request id of the Connect step of `ns create --network --request-id ID`: weftd keeps
/// one answer per id, whatever the method, so the second call needs an id of its own.
fn connect_request_id(id: &str) -> Result<String, String> {
    let derived = format!("{id}/connect");
    if derived.len() > parse::MAX_REQUEST_ID {
        return Err(format!(
            "with --network, --request-id is at most {} bytes: the connect step uses ID/connect",
            parse::MAX_REQUEST_ID - "/connect".len()
        ));
    }
    Ok(derived)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command, ns::NsCmd, usage};

    /// The CreateNamespace request of `weft ns create ARGS...`.
    fn create(args: &[&str]) -> Result<CreateNamespaceRequest, String> {
        let mut argv = vec!["weft", "ns", "create"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .command
        {
            Command::Ns(NsCmd::Create(a)) => create_request(&a),
            other => panic!("parsed as {other:?}"),
        }
    }

    /// Labels, `--path` and `--no-wait` reach the CreateNamespace request; a label given twice
    /// is refused.
    #[test]
    fn create_maps_flags() {
        let req = create(&["ns1", "--label", "app=web", "--label", "tier=", "--no-wait"]).unwrap();
        let ns = req.namespace.unwrap();
        assert_eq!(ns.name, "ns1");
        assert_eq!(ns.labels.get("app").map(String::as_str), Some("web"));
        assert_eq!(ns.labels.get("tier").map(String::as_str), Some(""));
        assert_eq!(ns.path, "");
        assert_eq!(req.wait, Some(false));
        let req = create(&["c1", "--path", "/proc/42/ns/net"]).unwrap();
        assert_eq!(req.namespace.unwrap().path, "/proc/42/ns/net");
        assert_eq!(req.wait, Some(true));
        assert!(
            create(&["x", "--label", "a=1", "--label", "a=2"])
                .unwrap_err()
                .contains("more than once")
        );
    }

    /// What `weft ns create ARGS...` would do.
    fn plan(args: &[&str]) -> Result<CreatePlan, String> {
        let mut argv = vec!["weft", "ns", "create"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .command
        {
            Command::Ns(NsCmd::Create(a)) => create_plan(&a),
            other => panic!("parsed as {other:?}"),
        }
    }

    /// No `--network`, or `none`, is one CreateNamespace and no Connect.
    #[test]
    fn network_none_is_the_default_and_creates_only() {
        for args in [&["web"][..], &["web", "--network", "none"]] {
            let Ok(CreatePlan::Create { namespace, connect }) = plan(args) else {
                panic!("{args:?}")
            };
            assert_eq!(*namespace, create(&["web"]).unwrap());
            assert!(connect.is_none());
        }
    }

    /// `bridge` or a network's name adds a Connect of the new namespace, shaped by the endpoint
    /// flags exactly as `weft network connect` would shape it.
    #[test]
    fn network_bridge_or_a_name_creates_then_connects() {
        let Ok(CreatePlan::Create { namespace, connect }) =
            plan(&["web", "--network", "bridge", "--label", "app=web"])
        else {
            panic!()
        };
        assert_eq!(namespace.namespace.unwrap().labels["app"], "web");
        let c = connect.unwrap();
        assert_eq!(
            (c.network.as_str(), c.namespace.as_str()),
            (parse::DEFAULT_NETWORK, "web")
        );
        assert_eq!(c.wait, Some(true));
        assert!(!c.skip_default_route);

        let Ok(CreatePlan::Create { namespace, connect }) = plan(&[
            "web",
            "--net",
            "mynet",
            "--ip",
            "172.20.0.10",
            "--ip6",
            "fd00:1::10",
            "--mac",
            "02:42:ac:14:00:0a",
            "--alias",
            "www",
            "-p",
            "8080:80",
            "--publish",
            "127.0.0.1:53:53/udp",
            "--interface",
            "eth1",
            "--no-wait",
        ]) else {
            panic!()
        };
        assert_eq!(namespace.wait, Some(false));
        let c = connect.unwrap();
        assert_eq!((c.network.as_str(), c.namespace.as_str()), ("mynet", "web"));
        assert_eq!(
            (c.ipv4_address.as_str(), c.ipv6_address.as_str()),
            ("172.20.0.10", "fd00:1::10")
        );
        assert_eq!(c.mac_address, "02:42:ac:14:00:0a");
        assert_eq!(c.aliases, ["www"]);
        assert_eq!(
            c.published_ports
                .iter()
                .map(|p| (p.host_port, p.container_port, p.protocol.as_str()))
                .collect::<Vec<_>>(),
            [(8080, 80, "tcp"), (53, 53, "udp")]
        );
        assert_eq!(c.interface_name, "eth1");
        assert_eq!(c.wait, Some(false));
    }

    /// `--dry-run` plans both steps, and `--request-id ID` gives the Connect `ID/connect`: a
    /// retried create gets both answers again.
    #[test]
    fn dry_run_and_request_id_reach_both_steps() {
        let Ok(CreatePlan::Create { namespace, connect }) = plan(&[
            "web",
            "--network",
            "bridge",
            "--dry-run",
            "--request-id",
            "r1",
        ]) else {
            panic!()
        };
        assert!(namespace.dry_run);
        assert_eq!(namespace.request_id, "r1");
        let c = connect.unwrap();
        assert!(c.dry_run);
        assert_eq!(c.request_id, "r1/connect");

        // Without the flags: no dry run, and no request id at all.
        let Ok(CreatePlan::Create { namespace, connect }) = plan(&["web", "--net", "bridge"])
        else {
            panic!()
        };
        assert!(!namespace.dry_run && !connect.as_ref().unwrap().dry_run);
        assert_eq!(namespace.request_id, "");
        assert_eq!(connect.unwrap().request_id, "");

        // The connect step's id must fit in weftd's 128 bytes too.
        let id = "x".repeat(121);
        let e = plan(&["web", "--network", "bridge", "--request-id", &id]).unwrap_err();
        assert!(e.contains("at most 120 bytes"), "{e}");
        assert!(plan(&["web", "--request-id", &id]).is_ok());
        assert!(plan(&["web", "--request-id", ""]).is_err());
    }

    /// `host` and `container:X` make no request at all.
    #[test]
    fn network_host_and_container_create_nothing() {
        assert!(matches!(
            plan(&["web", "--network", "host"]),
            Ok(CreatePlan::Host)
        ));
        assert!(
            matches!(plan(&["web", "--net", "container:db"]), Ok(CreatePlan::Container(x)) if x == "db")
        );
        // --no-wait has nothing to wait for, and is harmless.
        assert!(matches!(
            plan(&["web", "--network", "host", "--no-wait"]),
            Ok(CreatePlan::Host)
        ));
    }

    /// Flags the mode has no use for are usage errors (exit 2) before anything is dialled,
    /// naming the flag and the mode.
    #[test]
    fn network_mode_usage_errors() {
        // `container:` without a namespace is refused by clap: exit 2, before anything is
        // dialled.
        let err = Cli::try_parse_from(["weft", "ns", "create", "web", "--network", "container:"])
            .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("container:NAME"), "{err}");
        let err =
            Cli::try_parse_from(["weft", "ns", "create", "web", "--network", ""]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        // NAME is still required.
        let err = Cli::try_parse_from(["weft", "ns", "create", "--network", "host"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);

        // Endpoint flags need a network to connect to.
        for flag in [
            &["--ip", "10.0.0.2"][..],
            &["--ip6", "fd00::2"],
            &["--mac", "02:00:00:00:00:01"],
            &["--alias", "a"],
            &["-p", "80"],
            &["--interface", "eth1"],
        ] {
            let mut args = vec!["web"];
            args.extend_from_slice(flag);
            assert!(
                plan(&args).unwrap_err().contains("needs --network"),
                "{flag:?}"
            );
            for (mode, why) in [
                ("none", "needs --network"),
                ("host", "creates no namespace"),
                ("container:db", "creates no namespace"),
            ] {
                let mut args = args.clone();
                args.extend_from_slice(&["--network", mode]);
                assert!(plan(&args).unwrap_err().contains(why), "{args:?}");
            }
        }
        // So do the namespace's own flags in the modes that create none.
        for mode in ["host", "container:db"] {
            let e = plan(&["web", "--network", mode, "--label", "a=b"]).unwrap_err();
            assert!(e.starts_with("--label has no use"), "{e}");
            let e = plan(&["web", "--network", mode, "--path", "/proc/1/ns/net"]).unwrap_err();
            assert!(e.starts_with("--path has no use"), "{e}");
        }
        // A usage error from the plan carries `weft ns create`'s usage and exits 2.
        let e = usage(&["ns", "create"], plan(&["web", "-p", "80"]).unwrap_err());
        let e = e.downcast_ref::<clap::Error>().unwrap();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("-p/--publish"), "{e}");
        assert!(e.to_string().contains("weft ns create"), "{e}");
    }
}
