//! The per-kind names of the generic [`Kind`] methods, which api/ and reconcile/ call
//! (`link_by_id`, `list_networks`, `set_endpoint_status`, ...): one line each, from the
//! per-kind name to the generic method and the kind it runs on. New code calls the generic
//! methods (`store.by_id::<LinkRow>(id)`); a name goes once nothing calls it.

#[cfg(doc)]
use super::Kind;
use super::{
    EndpointObserved, EndpointRow, LinkObserved, LinkRow, NamespaceRow, NetworkRow, Store,
    StoreError,
};
use crate::model::Status;

/// Defines each `name(args) -> T => generic::<Kind>` as an async method of [`Store`] that
/// returns `self.generic::<Kind>(args)`.
macro_rules! per_kind {
    ($($(#[$doc:meta])* $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty
        => $generic:ident::<$kind:ty>;)*) => {
        impl Store {
            $(
                $(#[$doc])*
                pub async fn $name(&self, $($arg: $ty),*) -> Result<$ret, StoreError> {
                    self.$generic::<$kind>($($arg),*).await
                }
            )*
        }
    };
}

per_kind! {
    /// The namespace with this uid.
    namespace_by_id(id: &str) -> Option<NamespaceRow> => by_id::<NamespaceRow>;
    /// The namespace with this name.
    namespace_by_name(name: &str) -> Option<NamespaceRow> => by_name::<NamespaceRow>;
    /// Every namespace, by name.
    list_namespaces() -> Vec<NamespaceRow> => list::<NamespaceRow>;
    /// Marks a namespace for deletion. FAILED_PRECONDITION while links live in it.
    mark_namespace_deleting(name: &str, dry_run: bool) -> NamespaceRow
        => mark_deleting_by_name::<NamespaceRow>;
    /// Removes a namespace row that was marked for deletion. Returns false if there was none.
    delete_namespace_row(id: &str) -> bool => delete_row::<NamespaceRow>;
    /// Writes a namespace's observed status and file path; returns true if anything changed.
    set_namespace_status(id: &str, status: &Status, status_path: &str) -> bool
        => set_status::<NamespaceRow>;

    /// The link with this uid.
    link_by_id(id: &str) -> Option<LinkRow> => by_id::<LinkRow>;
    /// Every link, oldest first.
    list_links() -> Vec<LinkRow> => list::<LinkRow>;
    /// Marks a link for deletion (idempotent).
    mark_link_deleting(id: &str) -> () => mark_deleting::<LinkRow>;
    /// Removes a link row marked for deletion (its interface rows go with it).
    delete_link_row(id: &str) -> bool => delete_row::<LinkRow>;
    /// Writes a link's observed status; returns true if anything changed.
    set_link_status(id: &str, status: &Status, observed: &LinkObserved) -> bool
        => set_status::<LinkRow>;

    /// Every network, by name.
    list_networks() -> Vec<NetworkRow> => list::<NetworkRow>;
    /// The network with this uid.
    network_by_id(id: &str) -> Option<NetworkRow> => by_id::<NetworkRow>;
    /// Removes a network row marked for deletion.
    delete_network_row(id: &str) -> bool => delete_row::<NetworkRow>;
    /// The network with this name.
    network_by_name(name: &str) -> Option<NetworkRow> => by_name::<NetworkRow>;
    /// Marks a network for deletion; FAILED_PRECONDITION while endpoints remain.
    mark_network_deleting(name: &str, dry_run: bool) -> NetworkRow
        => mark_deleting_by_name::<NetworkRow>;

    /// The endpoint with this uid.
    endpoint_by_id(id: &str) -> Option<EndpointRow> => by_id::<EndpointRow>;
    /// Marks an endpoint for removal (idempotent).
    mark_endpoint_deleting(id: &str) -> () => mark_deleting::<EndpointRow>;
    /// Removes an endpoint marked for removal; its leases and mappings go with it.
    delete_endpoint_row(id: &str) -> bool => delete_row::<EndpointRow>;
    /// Writes an endpoint's observed status; true if it changed.
    set_endpoint_status(id: &str, status: &Status, observed: &EndpointObserved) -> bool
        => set_status::<EndpointRow>;
}

impl Store {
    /// Writes a network's observed status; true if it changed.
    pub async fn set_network_status(&self, id: &str, status: &Status) -> Result<bool, StoreError> {
        self.set_status::<NetworkRow>(id, status, &()).await
    }
}
