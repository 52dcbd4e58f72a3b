//! Reconciling a namespace: create `<netns_dir>/<name>` (loopback up) or check an adopted path;
//! on delete, unmount and remove what weft created, forget what it adopted.
//!
//! - A *named* namespace is a file in the netns directory made as `ip netns add` makes it, so
//!   `ip netns exec` works on it. If the file is gone (deleted by hand, or a reboot emptied
//!   /run), it is made again, and every link and endpoint that lived in it is queued: they
//!   died with the old namespace.
//! - An *adopted* namespace (a runtime's `/proc/<pid>/ns/net`, a CNI netns file) is only
//!   checked: weft never creates or deletes it, and one that is gone is a conflict the user
//!   must resolve (Failed), not something to re-create; its endpoints are released (see
//!   `adopted`). A Ready one's file is checked twice a second for its process's exit.
//! - Either way the loopback interface is brought up and carries the namespace's ownership
//!   mark, `weft:<uid>@<owner>` (model::namespace_mark: the owner is this weftd's host
//!   namespace), which is how the garbage collector tells this weftd's namespace files from
//!   anyone's, another weftd's sharing the netns directory included.
//! - A namespace weft created gets its resolv.conf under `--etc-netns-dir` (see `resolv`),
//!   converged here and removed with it.
//! - A Ready namespace is watched: it gets an id in the host namespace so the one netlink
//!   monitor hears changes inside it (drift repair within about a second).

use std::path::PathBuf;

use async_trait::async_trait;

use super::{
    Action, Controller, Key, ReconcileError,
    driver::{Ctx, Outcome, Reconciler},
};
use crate::{
    kernel::{KernelOps, LinkChange, NsRef},
    model::namespace_mark,
    store::NamespaceRow,
};

/// The namespace reconciler. What it observes (and shows in the status) is the path of the
/// namespace file weft acts on.
pub(super) struct Namespaces;

/// Where namespace `row` lives: its adopted path, or its file in the netns dir.
fn path_of(k: &dyn KernelOps, row: &NamespaceRow) -> PathBuf {
    row.spec
        .adopted_path
        .clone()
        .unwrap_or_else(|| k.named_netns_path(&row.spec.name))
}

#[async_trait]
impl Reconciler for Namespaces {
    type Object = NamespaceRow;
    type Observed = String;

    fn observed(&self, row: &NamespaceRow) -> String {
        row.status_path.clone()
    }

    async fn reconcile(&self, row: &NamespaceRow, ctx: &Ctx) -> Outcome<String> {
        let path = path_of(ctx.kernel, row);
        if row.spec.adopted_path.is_some() {
            if !super::adopted::adopted_alive(ctx.kernel, &path, row.adopted_identity.as_deref()) {
                return Err(ctx.ctl.adopted_gone(ctx.kernel, &row.id, &path).await);
            }
            ctx.ctl
                .watch_adopted(&row.id, &path, row.adopted_identity.as_deref());
        }
        let recreated = ctx
            .ctl
            .converge_namespace(
                ctx.kernel,
                &row.id,
                &row.spec.name,
                row.spec.adopted_path.is_some(),
                &path,
            )
            .await?;
        let ns = NsRef::path(&path);
        if recreated {
            // The id the dead namespace had means nothing now: learn the new one.
            ctx.ctl.unwatch_namespace(&ns);
        }
        // The namespace's id is given beside the rest, but before the reconcile ends: before
        // a Connect can put a veth in it (`Controller::watch_namespace`).
        let rest = async {
            if recreated {
                // Everything that lived in the old namespace died with it.
                for link in ctx.ctl.store().link_ids_in_namespace(&row.id).await? {
                    ctx.ctl.enqueue(Key::Link(link));
                }
                for ep in ctx.ctl.store().endpoint_ids_in_namespace(&row.id).await? {
                    ctx.ctl.enqueue(Key::Endpoint(ep));
                }
            }
            if row.spec.adopted_path.is_none() {
                ctx.ctl.converge_resolv_conf(&row.spec.name).await?;
            }
            Ok::<_, ReconcileError>(())
        };
        let ((), rest) = tokio::join!(ctx.ctl.watch_namespace(ns), rest);
        rest?;
        Ok((Action::AwaitChange, path.display().to_string()))
    }

    /// Stops watching it, unmounts and removes a named namespace (its interfaces go with
    /// it), and forgets cached sockets; an adopted one is only forgotten.
    /// The path is known whether or not the namespace could be made: Get shows where it
    /// will be (the CLI's `--network container:X` names it) while it is Pending or Failed.
    fn observed_on_error(&self, row: &NamespaceRow, ctx: &Ctx) -> String {
        path_of(ctx.kernel, row).display().to_string()
    }

    async fn cleanup(&self, row: &NamespaceRow, ctx: &Ctx) -> Result<(), ReconcileError> {
        let ns = NsRef::path(path_of(ctx.kernel, row));
        // Stop hearing it first: its id in the host namespace may go to a new one.
        ctx.ctl.unwatch_namespace(&ns);
        ctx.ctl.forget_nsid(&path_of(ctx.kernel, row));
        ctx.ctl.unwatch_adopted(&row.id);
        if row.spec.adopted_path.is_none() {
            ctx.kernel.delete_named_netns(&row.spec.name).await?;
            ctx.ctl.remove_resolv_conf(&row.spec.name).await?;
        }
        ctx.kernel.forget(&ns);
        Ok(())
    }
}

impl Controller {
    /// Makes the namespace exist, its loopback up and marked (the loopback's alias carries
    /// the namespace's ownership mark, so garbage collection can tell weft's namespace files
    /// from anyone else's); returns true if it had to be (re)created.
    async fn converge_namespace(
        &self,
        k: &dyn KernelOps,
        id: &str,
        name: &str,
        adopted: bool,
        path: &std::path::Path,
    ) -> Result<bool, ReconcileError> {
        if adopted {
            if !k.is_netns(path) {
                return Err(ReconcileError::permanent(format!(
                    "{} is not a network namespace (any more); weft does not recreate adopted namespaces",
                    path.display()
                )));
            }
            return Ok(false);
        }
        let recreated = if k.is_netns(path) {
            false
        } else {
            // A stale socket would still point at the namespace that died.
            k.forget(&NsRef::path(path));
            k.create_named_netns(name).await?;
            true
        };
        let ns = NsRef::path(path);
        let mark = namespace_mark(id, self.owner());
        if let Some(lo) = k.get_link(&ns, "lo").await? {
            let change = LinkChange {
                up: (!lo.up).then_some(true),
                alias: (lo.alias.as_deref() != Some(mark.as_str())).then(|| mark.clone()),
                ..Default::default()
            };
            if change != LinkChange::default() {
                k.set_link(&ns, lo.index, &change).await?;
            }
        }
        Ok(recreated)
    }
}
