//! Running `weft ns create` in each of Docker's network modes (see [`super::request::CreatePlan`]):
//!
//! - `none`: one CreateNamespace, through the shared skeleton ([`Verb::apply`]): the
//!   namespace is printed (its name, or its JSON) and its phase checked.
//! - `bridge` or `NETWORK`: CreateNamespace, then Connect. Once the namespace exists, any
//!   failure (the namespace not Ready, the Connect refused, the endpoint not Ready) undoes the
//!   command: the endpoint is disconnected if it may exist and the namespace removed, and the
//!   error says whether that worked. The output is the namespace's name and the endpoint row,
//!   or `{"namespace": ..., "endpoint": ...}`.
//! - `host` and `container:X`: nothing is created; the command prints which namespace file a
//!   workload should use (for `container:X`, after a GetNamespace that checks X is usable).
//!
//! A dry run sends both planning requests and prints their changes together; as nothing was
//! made, nothing is undone.

use anyhow::Result;
use serde_json::{Value, json};
use tonic::Code;
use weft::v1::{
    ConnectRequest, CreateNamespaceRequest, DeleteNamespaceRequest, DisconnectRequest, Namespace,
    Phase,
};

use super::{
    args::CreateArgs,
    request::{CreatePlan, create_plan},
};
use crate::cli::{
    Ctx, error,
    format::Shown,
    mutate::{Answer, Verb},
    plan, sh, table, usage,
};

/// The host's network namespace, which `--network host` names: that of PID 1.
pub const HOST_NETNS: &str = "/proc/1/ns/net";

/// Runs `weft ns create`.
pub async fn create(ctx: &Ctx, a: &CreateArgs) -> Result<()> {
    let plan = create_plan(a).map_err(|m| usage(&["ns", "create"], m))?;
    let (req, connect) = match plan {
        CreatePlan::Host => return print_shared(ctx, &a.name, "host", HOST_NETNS, None),
        CreatePlan::Container(x) => return share(ctx, &a.name, &x).await,
        CreatePlan::Create { namespace, connect } => (namespace, connect),
    };
    let verb = Verb::new(
        format!("create namespace {:?}", a.name),
        a.dry_run,
        a.no_wait,
    );
    let inspect = format!("weft ns inspect {}", sh(&a.name));
    let rpc = |c: weft::Client, r| async move { c.namespaces().create_namespace(r).await };
    let Some(connect) = connect else {
        let table = |ns: &Namespace| format!("{}\n", ns.name);
        return verb.apply(ctx, *req, rpc, &inspect, table).await;
    };
    if a.dry_run {
        return dry_run_create(ctx, &verb, *req, *connect).await;
    }
    let ns = verb
        .send(ctx, *req, rpc)
        .await?
        .namespace
        .unwrap_or_default();

    // The namespace exists now: from here on, a failure removes it again.
    if let Err(e) = ctx.check_applied(&verb.what, ns.status.as_ref(), verb.wait, &inspect) {
        return Err(undo_create(ctx, &a.name, None, e).await);
    }
    let network = connect.network.clone();
    let what = format!("connect namespace {:?} to network {network:?}", a.name);
    let verb = Verb::new(what, false, a.no_wait);
    let ep = match verb
        .send(ctx, *connect, |c, r| async move {
            c.networks().connect(r).await
        })
        .await
    {
        Ok(resp) => resp.endpoint.unwrap_or_default(),
        Err(e) => {
            let endpoint = error::may_have_applied(&e).then_some(network.as_str());
            return Err(undo_create(ctx, &a.name, endpoint, e).await);
        }
    };
    let inspect = format!("weft network inspect {}", sh(&network));
    if let Err(e) = ctx.check_applied(&verb.what, ep.status.as_ref(), verb.wait, &inspect) {
        return Err(undo_create(ctx, &a.name, Some(&network), e).await);
    }
    let v = || json!({ "namespace": ns.json(), "endpoint": ep.json() });
    ctx.print_value(v, || {
        format!(
            "{}\n{}",
            ns.name,
            table::endpoints(std::slice::from_ref(&ep))
        )
    })
}

/// `weft ns create --network ... --dry-run`: plans the CreateNamespace (`verb`) and the
/// Connect and prints both plans as one; as nothing was made, a refusal of either is reported
/// and nothing is undone.
async fn dry_run_create(
    ctx: &Ctx,
    verb: &Verb,
    req: CreateNamespaceRequest,
    connect: ConnectRequest,
) -> Result<()> {
    let mut resp = verb
        .send(ctx, req, |c, r| async move {
            c.namespaces().create_namespace(r).await
        })
        .await?;
    let mut changes = resp.take_plan();
    let namespace = resp.namespace.take();
    let what = format!(
        "connect namespace {:?} to network {:?}",
        connect.namespace, connect.network
    );
    let mut resp = Verb::new(what, true, false)
        .send(
            ctx,
            connect,
            |c, r| async move { c.networks().connect(r).await },
        )
        .await?;
    changes.extend(resp.take_plan());
    let json = || {
        vec![
            (
                "namespace",
                namespace.as_ref().map_or(Value::Null, Shown::json),
            ),
            (
                "endpoint",
                resp.endpoint.as_ref().map_or(Value::Null, Shown::json),
            ),
        ]
    };
    plan::print(ctx, &changes, json)
}

/// Undoes a `weft ns create --network` that failed with `cause` once the namespace `name`
/// existed: disconnects it from `network` (when the endpoint may exist; NOT_FOUND there means
/// it never did), then removes the namespace, waiting for each. Best-effort: returns `cause`,
/// saying whether the namespace is gone or what is left.
async fn undo_create(
    ctx: &Ctx,
    name: &str,
    network: Option<&str>,
    cause: anyhow::Error,
) -> anyhow::Error {
    let undo = async {
        if let Some(network) = network {
            let what = format!("disconnect namespace {name:?} from network {network:?}");
            let req = DisconnectRequest {
                dry_run: false,
                network: network.to_string(),
                namespace: name.to_string(),
                wait: Some(true),
            };
            match Verb::new(what, false, false)
                .send(
                    ctx,
                    req,
                    |c, r| async move { c.networks().disconnect(r).await },
                )
                .await
            {
                Err(e) if error::code(&e) != Some(Code::NotFound) => return Err(e),
                _ => {}
            }
        }
        let req = DeleteNamespaceRequest {
            dry_run: false,
            name: name.to_string(),
            wait: Some(true),
        };
        Verb::new(format!("remove namespace {name:?}"), false, false)
            .send(ctx, req, |c, r| async move {
                c.namespaces().delete_namespace(r).await
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
    let ns = super::get_namespace(ctx, &what, x).await?;
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
    let v = || {
        json!({
            "networkMode": mode,
            "created": false,
            "unusedName": name,
            "path": path,
            "namespace": ns.map_or(Value::Null, Shown::json),
        })
    };
    ctx.print_value(v, || {
        let which = match ns {
            Some(ns) => format!("namespace {}", ns.name),
            None => "the host namespace".to_string(),
        };
        format!(
            "{which} at {path}: nothing created (network mode {mode}; the name {name:?} is \
             unused)\n"
        )
    })
}
