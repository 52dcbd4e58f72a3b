//! `weft ns`: create, list, watch, inspect and remove network namespaces (NamespaceService).
//!
//! `create --network MODE` gives Docker's network modes: `none` creates the namespace only,
//! `bridge` or a network's name creates it and connects it to that network (NetworkService
//! Connect; if that fails the namespace is removed again), and `host` and `container:X` create
//! nothing but say which namespace a workload uses.
//!
//! `create --dry-run` asks weftd for the plan of every step (with a network, the Connect too)
//! and undoes nothing, since nothing was made. `create --request-id ID` makes a retry safe:
//! CreateNamespace carries ID and, with a network, Connect carries `ID/connect`, so that a
//! retried `ns create --network` gets both answers again instead of failing on the endpoint
//! (and removing the namespace).

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use tonic::Code;
use weft::v1::{
    ConnectRequest, CreateNamespaceRequest, DeleteNamespaceRequest, DisconnectRequest,
    GetNamespaceRequest, ListNamespacesRequest, Namespace, Phase, WatchNamespacesRequest,
};

use super::{
    Ctx, Output, each, error, json,
    network::EndpointFlags,
    parse::{self, NetworkMode},
    plan, sh, table, usage,
    watch::{self, WatchFlags},
};

/// The host's network namespace, which `--network host` names: that of PID 1.
pub const HOST_NETNS: &str = "/proc/1/ns/net";

/// `weft ns ...`
#[derive(Debug, Subcommand)]
pub enum NsCmd {
    /// Create a namespace: a bind mount under /run/netns like `ip netns add`, or adopt one
    ///
    /// --network MODE (or --net) gives it one of Docker's network modes, as `docker run
    /// --network MODE` does:
    ///
    ///   none          (the default) a namespace with only loopback, no network attached
    ///   bridge        create it and connect it to the default network, named `bridge`
    ///   NETWORK       any other value: create it and connect it to the network of that name
    ///   host          the workload uses the host namespace (/proc/1/ns/net): nothing is
    ///                 created and NAME is unused; prints that path
    ///   container:X   the workload shares the weft namespace X: nothing is created and NAME
    ///                 is unused; prints X's path (an error if X does not exist)
    ///
    /// With bridge or NETWORK, --ip, --ip6, --mac, --alias, -p/--publish and --interface shape
    /// the endpoint as in `weft network connect`, and the output adds the endpoint. If the
    /// connect fails, the namespace just created is removed again and the error is reported
    /// (exit 1).
    #[command(verbatim_doc_comment)]
    Create(Box<CreateArgs>),
    /// List namespaces (--watch: then every change).
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Watch namespaces: every current one, then every change, one line each as it happens.
    ///
    /// Runs until interrupted or weftd ends the stream; --timeout does not apply.
    Watch(WatchArgs),
    /// Show namespaces in detail.
    Inspect {
        /// Namespace names.
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
    /// Remove namespaces (they must hold no weft links). Adopted ones are only forgotten.
    #[command(visible_alias = "delete")]
    Rm {
        /// Namespace names.
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
        /// Answer at once instead of waiting until the namespace is gone.
        #[arg(long)]
        no_wait: bool,
        /// Plan only: print what weftd would change, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `weft ns create`
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Namespace name (letters, digits, '.', '_', '-'; at most 64 bytes).
    pub name: String,
    /// A label, KEY=VALUE (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse::label)]
    pub labels: Vec<(String, String)>,
    /// Adopt an existing namespace file (e.g. /proc/PID/ns/net) instead of creating one.
    #[arg(long, value_name = "PATH")]
    pub path: Option<String>,
    /// Answer at once (phase Pending) instead of waiting until the namespace is Ready.
    #[arg(long)]
    pub no_wait: bool,
    /// Docker's network mode: none (default), bridge, host, container:NAME, or a network's
    /// name.
    #[arg(long = "network", visible_alias = "net", value_name = "MODE", value_parser = parse::network_mode)]
    pub network: Option<NetworkMode>,
    /// Plan only: print what weftd would change (with --network bridge or NETWORK, for both
    /// steps), and change nothing. With host or container:X, which change nothing anyway, the
    /// command does what it does without.
    #[arg(long)]
    pub dry_run: bool,
    /// Make the call safe to retry: a retry with the same ID gets the first call's answer
    /// instead of making anything again (1 to 128 bytes; with --network, the connect step
    /// uses ID/connect).
    #[arg(long, value_name = "ID", value_parser = parse::request_id)]
    pub request_id: Option<String>,
    /// The endpoint, with --network bridge or NETWORK.
    #[command(
        flatten,
        next_help_heading = "Endpoint options (--network bridge or NETWORK)"
    )]
    pub endpoint: EndpointFlags,
}

/// `weft ns ls`
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Label selector: comma-separated KEY=VALUE, KEY!=VALUE, KEY or !KEY.
    #[arg(long, short = 'l', value_name = "SEL", default_value = "")]
    pub selector: String,
    /// Print only the names.
    #[arg(long, short = 'q', conflicts_with = "watch")]
    pub quiet: bool,
    /// After the list, print every change as it happens (the same as `weft ns watch`).
    #[arg(long, short = 'w')]
    pub watch: bool,
    /// With --watch.
    #[command(flatten, next_help_heading = "Watch options (with --watch)")]
    pub flags: WatchFlags,
}

/// `weft ns watch`
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Label selector: comma-separated KEY=VALUE, KEY!=VALUE, KEY or !KEY.
    #[arg(long, short = 'l', value_name = "SEL", default_value = "")]
    pub selector: String,
    /// Where to start and when to stop.
    #[command(flatten)]
    pub flags: WatchFlags,
}

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

/// Runs `weft ns create`.
async fn create(ctx: &Ctx, a: &CreateArgs) -> Result<()> {
    let plan = create_plan(a).map_err(|m| usage(&["ns", "create"], m))?;
    let (req, connect) = match plan {
        CreatePlan::Host => return print_shared(ctx, &a.name, "host", HOST_NETNS, None),
        CreatePlan::Container(x) => return share(ctx, &a.name, &x).await,
        CreatePlan::Create { namespace, connect } => (namespace, connect),
    };
    if a.dry_run {
        return dry_run_create(ctx, *req, connect.map(|c| *c)).await;
    }
    let what = format!("create namespace {:?}", a.name);
    let inspect = format!("weft ns inspect {}", sh(&a.name));
    let req = ctx.req(*req);
    let resp = ctx
        .write(&what, |c| async move {
            c.namespaces().create_namespace(req).await
        })
        .await?;
    let ns = resp.namespace.unwrap_or_default();
    let Some(connect) = connect else {
        match ctx.output() {
            Output::Json => ctx.print_json(&json::namespace(&ns))?,
            Output::Table => ctx.print(&format!("{}\n", ns.name))?,
        }
        return ctx.check_applied(&what, ns.status.as_ref(), !a.no_wait, &inspect);
    };

    // The namespace exists now: from here on, a failure removes it again.
    if let Err(e) = ctx.check_applied(&what, ns.status.as_ref(), !a.no_wait, &inspect) {
        return Err(undo_create(ctx, &a.name, None, e).await);
    }
    let network = connect.network.clone();
    let what = format!("connect namespace {:?} to network {network:?}", a.name);
    let req = ctx.req(*connect);
    let ep = match ctx
        .write(&what, |c| async move { c.networks().connect(req).await })
        .await
    {
        Ok(resp) => resp.endpoint.unwrap_or_default(),
        Err(e) => {
            let endpoint = error::may_have_applied(&e).then_some(network.as_str());
            return Err(undo_create(ctx, &a.name, endpoint, e).await);
        }
    };
    let inspect = format!("weft network inspect {}", sh(&network));
    if let Err(e) = ctx.check_applied(&what, ep.status.as_ref(), !a.no_wait, &inspect) {
        return Err(undo_create(ctx, &a.name, Some(&network), e).await);
    }
    match ctx.output() {
        Output::Json => ctx.print_json(&json!({
            "namespace": json::namespace(&ns),
            "endpoint": json::endpoint(&ep),
        })),
        Output::Table => ctx.print(&format!(
            "{}\n{}",
            ns.name,
            table::endpoints(std::slice::from_ref(&ep))
        )),
    }
}

/// `weft ns create --dry-run`: plans the CreateNamespace and, with a network, the Connect; as
/// nothing was made, a refusal of either is reported and nothing is undone.
async fn dry_run_create(
    ctx: &Ctx,
    req: CreateNamespaceRequest,
    connect: Option<ConnectRequest>,
) -> Result<()> {
    let name = req.namespace.as_ref().map_or("", |n| n.name.as_str());
    let what = format!("create namespace {name:?} (dry run)");
    let req = ctx.req(req);
    let resp = ctx
        .call(&what, |c| async move {
            c.namespaces().create_namespace(req).await
        })
        .await?;
    let mut changes = resp.planned_changes;
    let mut fields = vec![(
        "namespace",
        resp.namespace.as_ref().map_or(Value::Null, json::namespace),
    )];
    if let Some(connect) = connect {
        let what = format!(
            "connect namespace {:?} to network {:?} (dry run)",
            connect.namespace, connect.network
        );
        let req = ctx.req(connect);
        let resp = ctx
            .call(&what, |c| async move { c.networks().connect(req).await })
            .await?;
        changes.extend(resp.planned_changes);
        fields.push((
            "endpoint",
            resp.endpoint.as_ref().map_or(Value::Null, json::endpoint),
        ));
    }
    plan::print(ctx, &changes, fields)
}

/// Undoes a `weft ns create --network` that failed with `cause` once the namespace `name`
/// existed: disconnects it from `network` (when the endpoint may exist), then removes it.
/// Best-effort: returns `cause`, saying whether the namespace is gone.
async fn undo_create(
    ctx: &Ctx,
    name: &str,
    network: Option<&str>,
    cause: anyhow::Error,
) -> anyhow::Error {
    let undo = async {
        if let Some(network) = network {
            let what = format!("disconnect namespace {name:?} from network {network:?}");
            let req = ctx.req(DisconnectRequest {
                dry_run: false,
                network: network.to_string(),
                namespace: name.to_string(),
                wait: Some(true),
            });
            match ctx
                .write(&what, |c| async move { c.networks().disconnect(req).await })
                .await
            {
                Err(e) if error::code(&e) != Some(Code::NotFound) => return Err(e),
                _ => {}
            }
        }
        let what = format!("remove namespace {name:?}");
        let req = ctx.req(DeleteNamespaceRequest {
            dry_run: false,
            name: name.to_string(),
            wait: Some(true),
        });
        ctx.write(&what, |c| async move {
            c.namespaces().delete_namespace(req).await
        })
        .await
        .map(drop)
    };
    match undo.await {
        Ok(()) => anyhow::anyhow!("{cause:#} (namespace {name:?} was removed again)"),
        Err(e) => anyhow::anyhow!(
            "{cause:#} (and undoing it failed: {e:#}; `weft ns inspect {}` shows what is left)",
            sh(name)
        ),
    }
}

/// `--network container:X`: looks X up and prints it as the namespace to use.
async fn share(ctx: &Ctx, name: &str, x: &str) -> Result<()> {
    let what = format!("share namespace {x:?}");
    let req = ctx.req(GetNamespaceRequest {
        name: x.to_string(),
    });
    let ns = ctx
        .call(
            &what,
            |c| async move { c.namespaces().get_namespace(req).await },
        )
        .await?
        .namespace
        .unwrap_or_default();
    let status = ns.status.as_ref();
    match status.and_then(|s| Phase::try_from(s.phase).ok()) {
        Some(Phase::Deleting) => {
            return Err(anyhow::anyhow!("{what}: it is being deleted"));
        }
        Some(Phase::Failed) => {
            return Err(anyhow::anyhow!(
                "{what}: it is {} (`weft ns inspect {}` shows its state)",
                table::state(status),
                sh(x)
            ));
        }
        _ => {}
    }
    let path = if ns.status_path.is_empty() {
        ns.path.clone()
    } else {
        ns.status_path.clone()
    };
    print_shared(ctx, name, &format!("container:{x}"), &path, Some(&ns))
}

/// Prints the namespace a `host` or `container:X` workload uses: `mode`, its `path`, and the
/// weft namespace (`None` for the host); `name` is the unused NAME argument.
fn print_shared(
    ctx: &Ctx,
    name: &str,
    mode: &str,
    path: &str,
    ns: Option<&Namespace>,
) -> Result<()> {
    match ctx.output() {
        Output::Json => ctx.print_json(&json!({
            "network_mode": mode,
            "created": false,
            "unused_name": name,
            "path": path,
            "namespace": ns.map_or(Value::Null, json::namespace),
        })),
        Output::Table => {
            let which = match ns {
                Some(ns) => format!("namespace {}", ns.name),
                None => "the host namespace".to_string(),
            };
            ctx.print(&format!(
                "{which} at {path}: nothing created (network mode {mode}; the name {name:?} is \
                 unused)\n"
            ))
        }
    }
}

/// Runs `weft ns ...`.
pub async fn run(ctx: &Ctx, cmd: NsCmd) -> Result<()> {
    match cmd {
        NsCmd::Create(a) => create(ctx, &a).await,
        NsCmd::Ls(a) if a.watch => watch_namespaces(ctx, a.selector, &a.flags).await,
        NsCmd::Watch(a) => watch_namespaces(ctx, a.selector, &a.flags).await,
        NsCmd::Ls(a) => {
            a.flags.check(false, &["ns", "ls"])?;
            let req = ctx.req(ListNamespacesRequest {
                label_selector: a.selector,
            });
            let list = ctx
                .call("list namespaces", |c| async move {
                    c.namespaces().list_namespaces(req).await
                })
                .await?
                .namespaces;
            match (ctx.output(), a.quiet) {
                (Output::Json, _) => {
                    ctx.print_json(&Value::Array(list.iter().map(json::namespace).collect()))
                }
                (Output::Table, true) => ctx.print(
                    &list
                        .iter()
                        .map(|n| format!("{}\n", n.name))
                        .collect::<String>(),
                ),
                (Output::Table, false) => ctx.print(&table::namespaces(&list)),
            }
        }
        NsCmd::Inspect { names } => {
            let done = each(names, |name| async move {
                let req = ctx.req(GetNamespaceRequest { name: name.clone() });
                let what = format!("inspect namespace {name:?}");
                let resp = ctx
                    .call(
                        &what,
                        |c| async move { c.namespaces().get_namespace(req).await },
                    )
                    .await?;
                Ok(resp.namespace.unwrap_or_default())
            })
            .await?;
            match ctx.output() {
                Output::Json => {
                    ctx.print_json(&Value::Array(done.ok.iter().map(json::namespace).collect()))?
                }
                Output::Table => ctx.print(
                    &done
                        .ok
                        .iter()
                        .map(table::describe_namespace)
                        .collect::<Vec<_>>()
                        .join("\n"),
                )?,
            }
            done.finish()
        }
        NsCmd::Rm {
            names,
            no_wait,
            dry_run,
        } => {
            let done = each(names, |name| async move {
                let req = ctx.req(DeleteNamespaceRequest {
                    dry_run,
                    name: name.clone(),
                    wait: Some(!no_wait),
                });
                if dry_run {
                    let what = format!("remove namespace {name:?} (dry run)");
                    let resp = ctx
                        .call(&what, |c| async move {
                            c.namespaces().delete_namespace(req).await
                        })
                        .await?;
                    return Ok((name, resp.planned_changes));
                }
                let what = format!("remove namespace {name:?}");
                ctx.write(&what, |c| async move {
                    c.namespaces().delete_namespace(req).await
                })
                .await?;
                if ctx.output() == Output::Table {
                    ctx.print(&format!("{name}\n"))?;
                }
                Ok((name, Vec::new()))
            })
            .await?;
            let (names, changes): (Vec<String>, Vec<_>) = done.ok.iter().cloned().unzip();
            if dry_run {
                plan::print(ctx, &changes.concat(), vec![("deleted", json!(names))])?;
            } else if ctx.output() == Output::Json {
                ctx.print_json(&json!({ "deleted": names }))?;
            }
            done.finish()
        }
    }
}

/// `weft ns watch` and `weft ns ls --watch`.
async fn watch_namespaces(ctx: &Ctx, selector: String, flags: &WatchFlags) -> Result<()> {
    let req = WatchNamespacesRequest {
        label_selector: selector,
        since_revision: flags.since_revision(),
    };
    watch::run(
        ctx,
        "watch namespaces",
        flags,
        |_| true,
        |c| async move { c.namespaces().watch_namespaces(req).await },
    )
    .await
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

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

    #[test]
    fn aliases_parse() {
        for argv in [["weft", "ns", "list"], ["weft", "namespace", "ls"]] {
            assert!(matches!(
                Cli::try_parse_from(argv).unwrap().command,
                Command::Ns(NsCmd::Ls(_))
            ));
        }
        let cli = Cli::try_parse_from(["weft", "ns", "delete", "a", "b"]).unwrap();
        assert!(
            matches!(cli.command, Command::Ns(NsCmd::Rm { names, no_wait: false, dry_run: false }) if names == ["a", "b"])
        );
    }
}
