//! The skeleton every mutating verb shares: `create`, `set`, `rm`, `connect`, `disconnect` and
//! `prune` of `weft ns`, `weft link` and `weft network` are all built from the pieces here.
//!
//! A mutating verb goes through the same steps whatever it changes:
//!
//! 1. Its flags become a proto request (done by the verb: each noun has its own builder, unit
//!    tested without a weftd). The builder copies `--dry-run` into the request's `dry_run`,
//!    `--no-wait` into `wait: Some(false)`, and `--request-id` (where the verb has it) into
//!    `request_id`, so that a retried call gets the first call's answer.
//! 2. [`Verb::send`] wraps the request with the `--timeout` deadline and calls weftd. A dry run
//!    is sent as a read named `<what> (dry run)`; a real one as a write named `<what>`. The
//!    difference shows only when the call fails: the error line is `Error: <what>: <why>`, and
//!    a write that timed out adds that the change may still be applied (see
//!    [`super::error::rpc`]). weftd unreachable is an [`super::error::Unreachable`], which stops
//!    a verb working through a list of names.
//! 3. The answer is printed. With `--dry-run`, weftd's `planned_changes` and the fields the verb
//!    would print in JSON (see [`super::plan`]); otherwise the object (table or JSON) or, for
//!    verbs without one, a JSON object of fields.
//! 4. A write that waited checks the object's phase: Ready is success, Failed or still Pending
//!    is `Error: ...`, exit 1, naming the command that shows the object
//!    ([`Ctx::check_applied`]). This happens after printing, so the object is shown either way.
//!
//! [`Verb::apply`] is steps 2 to 4 for verbs that answer with one object (create, set,
//! connect); [`remove_each`] is the `rm NAME...` loop ([`remove_named`] where a name is all
//! a Delete needs); disconnect and prune use
//! [`Verb::send`] and [`print_fields`].

use std::future::Future;

use anyhow::Result;
use serde_json::{Map, Value, json};
use weft::{
    Client,
    v1::{
        ConnectResponse, CreateLinkResponse, CreateNamespaceResponse, CreateNetworkResponse,
        DeleteLinkResponse, DeleteNamespaceRequest, DeleteNamespaceResponse, DeleteNetworkRequest,
        DeleteNetworkResponse, DisconnectResponse, Endpoint, Link, Namespace, Network,
        PlannedChange, PruneNetworksResponse, Status, UpdateLinkResponse,
    },
};

use super::{Ctx, each, format::Shown, plan};

/// The answer to a mutating call: every one carries the changes weftd planned, which are
/// filled in only when the request had `dry_run` set.
pub trait Answer {
    /// Takes the planned changes out of the answer.
    fn take_plan(&mut self) -> Vec<PlannedChange>;
}

/// An object a mutating call answers with (the namespace, link, network or endpoint as weftd
/// stored it), and how the CLI shows it.
pub trait Object: Default + Shown {
    /// Its key in the JSON of a dry run: `{"dryRun": true, "<KEY>": {...}, ...}`.
    const KEY: &'static str;
    /// Its status, for [`Ctx::check_applied`].
    fn status(&self) -> Option<&Status>;
}

/// An answer that carries one [`Object`]: that of create, update and connect.
pub trait Carries: Answer {
    /// The kind of object.
    type Object: Object;
    /// Takes the object out of the answer (`None` if weftd sent none).
    fn take_object(&mut self) -> Option<Self::Object>;
}

/// Implements [`Answer`] for responses whose planned changes are in `planned_changes`.
macro_rules! answers {
    ($($resp:ty),* $(,)?) => {$(
        impl Answer for $resp {
            fn take_plan(&mut self) -> Vec<PlannedChange> {
                std::mem::take(&mut self.planned_changes)
            }
        }
    )*};
}

answers!(
    CreateNamespaceResponse,
    DeleteNamespaceResponse,
    CreateLinkResponse,
    UpdateLinkResponse,
    DeleteLinkResponse,
    CreateNetworkResponse,
    DeleteNetworkResponse,
    PruneNetworksResponse,
    ConnectResponse,
    DisconnectResponse,
);

/// Implements [`Carries`] for a response whose object is in the field `$field`.
macro_rules! carries {
    ($($resp:ty => $field:ident: $obj:ty),* $(,)?) => {$(
        impl Carries for $resp {
            type Object = $obj;
            fn take_object(&mut self) -> Option<$obj> {
                self.$field.take()
            }
        }
    )*};
}

carries!(
    CreateNamespaceResponse => namespace: Namespace,
    CreateLinkResponse => link: Link,
    UpdateLinkResponse => link: Link,
    CreateNetworkResponse => network: Network,
    ConnectResponse => endpoint: Endpoint,
);

/// Implements [`Object`] for a proto object: its dry-run key.
macro_rules! object {
    ($($obj:ty => $key:literal),* $(,)?) => {$(
        impl Object for $obj {
            const KEY: &'static str = $key;
            fn status(&self) -> Option<&Status> {
                self.status.as_ref()
            }
        }
    )*};
}

object!(
    Namespace => "namespace",
    Link => "link",
    Network => "network",
    Endpoint => "endpoint",
);

/// One mutating call as the user asked for it: its name in messages and the two flags every
/// mutating verb has.
#[derive(Clone, Debug)]
pub struct Verb {
    /// The operation in error messages: `create namespace "ns1"`, `set link "veth0" in the
    /// host namespace`... A dry run adds ` (dry run)`.
    pub what: String,
    /// `--dry-run`: weftd plans and changes nothing.
    pub dry_run: bool,
    /// Not `--no-wait`: weftd answered once the kernel matched (or the deadline passed), so
    /// the object's phase says whether it worked.
    pub wait: bool,
}

impl Verb {
    /// A verb named `what`, from its `--dry-run` and `--no-wait` flags.
    pub fn new(what: String, dry_run: bool, no_wait: bool) -> Self {
        Self {
            what,
            dry_run,
            wait: !no_wait,
        }
    }

    /// Sends `msg` through `rpc` (e.g. `|c, r| async move { c.links().create_link(r).await }`)
    /// with the `--timeout` deadline, and returns weftd's answer. A dry run is a read, a real
    /// call a write; they differ only in the error they give (see the module docs).
    pub async fn send<M, R, F, Fut>(&self, ctx: &Ctx, msg: M, rpc: F) -> Result<R>
    where
        F: FnOnce(Client, tonic::Request<M>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<R>, tonic::Status>>,
    {
        let req = ctx.req(msg);
        if self.dry_run {
            let what = format!("{} (dry run)", self.what);
            ctx.call(&what, |c| rpc(c, req)).await
        } else {
            ctx.write(&self.what, |c| rpc(c, req)).await
        }
    }

    /// Runs a verb that answers with one object (create, set, connect): sends `msg`, then
    /// prints the plan (dry run), or the object, as JSON or as `table` renders it, and checks
    /// that it was applied; `inspect` is the command that shows the object, for that message.
    pub async fn apply<M, R, F, Fut>(
        &self,
        ctx: &Ctx,
        msg: M,
        rpc: F,
        inspect: &str,
        table: impl FnOnce(&R::Object) -> String,
    ) -> Result<()>
    where
        R: Carries,
        F: FnOnce(Client, tonic::Request<M>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<R>, tonic::Status>>,
    {
        let mut resp = self.send(ctx, msg, rpc).await?;
        let obj = resp.take_object();
        if self.dry_run {
            let json = || {
                vec![(
                    R::Object::KEY,
                    obj.as_ref().map_or(Value::Null, Shown::json),
                )]
            };
            return plan::print(ctx, &resp.take_plan(), json);
        }
        let obj = obj.unwrap_or_default();
        ctx.print_one(&obj, || table(&obj))?;
        ctx.check_applied(&self.what, obj.status(), self.wait, inspect)
    }
}

/// Prints the answer of a verb whose JSON is an object of `fields` (disconnect, prune, rm):
/// with `dry_run` the `changes` and those fields (see [`plan::print`]); otherwise the fields
/// as JSON, or `table`, which may be empty (then nothing is printed).
pub fn print_fields(
    ctx: &Ctx,
    dry_run: bool,
    changes: &[PlannedChange],
    fields: Vec<(&str, Value)>,
    table: &str,
) -> Result<()> {
    if dry_run {
        return plan::print(ctx, changes, || fields);
    }
    if ctx.is_table() && table.is_empty() {
        return Ok(());
    }
    ctx.print_value(|| fields_object(fields), || table.to_string())
}

/// A JSON object of `fields`; like every object the CLI prints, its keys come out sorted.
fn fields_object(fields: Vec<(&str, Value)>) -> Value {
    Value::Object(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<Map<_, _>>(),
    )
}

/// How `rm NAME...` addresses one name: its message, its entry in `deleted`, and its request.
pub struct Removal<M> {
    /// The operation in messages: `remove namespace "ns1"`.
    pub what: String,
    /// What `deleted` lists for it in JSON: the name, or `{"namespace": .., "name": ..}`.
    pub deleted: Value,
    /// The Delete request (its `dry_run` and `wait` set from the flags).
    pub msg: M,
}

/// Runs `rm NAME...`: one Delete call per name through `rpc`, `removal` saying how each name
/// is named and asked for. It goes on after a name fails (printing the error; exit 1 at the
/// end) but stops at once if weftd is unreachable. In table mode each name is printed as it
/// goes; in JSON `{"deleted": [...]}` lists what went; a dry run prints the plans of all of
/// them and, under `deleted`, what would go.
pub async fn remove_each<M, R, F, Fut>(
    ctx: &Ctx,
    names: Vec<String>,
    dry_run: bool,
    no_wait: bool,
    removal: impl Fn(&str) -> Removal<M>,
    rpc: F,
) -> Result<()>
where
    R: Answer,
    F: Fn(Client, tonic::Request<M>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<R>, tonic::Status>>,
{
    let (removal, rpc) = (&removal, &rpc);
    let done = each(names, |name| async move {
        let Removal { what, deleted, msg } = removal(&name);
        let verb = Verb::new(what, dry_run, no_wait);
        let mut resp = verb.send(ctx, msg, rpc).await?;
        if dry_run {
            return Ok((deleted, resp.take_plan()));
        }
        if ctx.is_table() {
            ctx.print(&format!("{name}\n"))?;
        }
        Ok((deleted, Vec::new()))
    })
    .await?;
    let (deleted, changes): (Vec<Value>, Vec<_>) = done.ok.iter().cloned().unzip();
    let fields = vec![("deleted", json!(deleted))];
    print_fields(ctx, dry_run, &changes.concat(), fields, "")?;
    done.finish()
}

/// A Delete request that names its object by name alone (namespaces and networks; a link
/// also needs its namespace), so that [`remove_named`] can build it.
pub trait DeleteByName {
    /// The request that deletes `name`, planning only with `dry_run`, waiting until it is gone
    /// with `wait`.
    fn by_name(name: &str, dry_run: bool, wait: bool) -> Self;
}

/// Implements [`DeleteByName`] for requests with `name`, `dry_run` and `wait` fields.
macro_rules! delete_by_name {
    ($($req:ty),* $(,)?) => {$(
        impl DeleteByName for $req {
            fn by_name(name: &str, dry_run: bool, wait: bool) -> Self {
                Self {
                    name: name.to_string(),
                    dry_run,
                    wait: Some(wait),
                }
            }
        }
    )*};
}

delete_by_name!(DeleteNamespaceRequest, DeleteNetworkRequest);

/// [`remove_each`] for objects named by name alone: `rm` of a `kind` (`namespace`,
/// `network`), each failure reading `Error: remove <kind> "<name>": ...`, and `deleted`
/// listing the names.
pub async fn remove_named<M, R, F, Fut>(
    ctx: &Ctx,
    kind: &str,
    names: Vec<String>,
    dry_run: bool,
    no_wait: bool,
    rpc: F,
) -> Result<()>
where
    M: DeleteByName,
    R: Answer,
    F: Fn(Client, tonic::Request<M>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<R>, tonic::Status>>,
{
    let removal = |name: &str| Removal {
        what: format!("remove {kind} {name:?}"),
        deleted: Value::from(name),
        msg: M::by_name(name, dry_run, !no_wait),
    };
    remove_each(ctx, names, dry_run, no_wait, removal, rpc).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fields make the same object, to the byte, as the `json!` literals each verb wrote
    /// before this module existed.
    #[test]
    fn fields_object_keeps_the_fields() {
        let v = fields_object(vec![("network", json!("n1")), ("namespace", json!("ns1"))]);
        assert_eq!(v, json!({ "network": "n1", "namespace": "ns1" }));
        assert_eq!(
            super::super::format::render(&v),
            super::super::format::render(&json!({ "network": "n1", "namespace": "ns1" }))
        );
    }

    /// `take_plan` and `take_object` move the parts out of the answer: what the printing
    /// code gets is what weftd sent.
    #[test]
    fn answers_give_up_their_parts() {
        let change = PlannedChange {
            action: "create".into(),
            kind: "namespace".into(),
            target: "ns1".into(),
            detail: String::new(),
        };
        let mut resp = CreateNamespaceResponse {
            namespace: Some(Namespace {
                name: "ns1".into(),
                ..Default::default()
            }),
            planned_changes: vec![change.clone()],
        };
        assert_eq!(resp.take_plan(), [change]);
        assert!(resp.planned_changes.is_empty());
        assert_eq!(resp.take_object().map(|n| n.name), Some("ns1".into()));
        assert_eq!(<Namespace as Object>::KEY, "namespace");
        assert_eq!(<Endpoint as Object>::KEY, "endpoint");
    }

    /// Without `--no-wait` a verb waits, and so its object's phase is checked.
    #[test]
    fn verb_flags() {
        let v = Verb::new("create network \"n1\"".into(), true, false);
        assert!(v.dry_run && v.wait);
        assert!(!Verb::new(String::new(), false, true).wait);
    }
}
