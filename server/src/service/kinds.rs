//! What every kind of object (namespace, link, network, endpoint) offers the generic flows:
//! how its key is spelled, how to load one or all of its rows, whether a row passes a
//! [`Filter`], and the *view* the adapter converts into a message (the row itself, or the row
//! with what its message also shows, such as a network's endpoints).
//!
//! With that, one [`Service::list_page`] serves every List (a page at a time, in
//! [`Kind::sort_key`] order), and [`super::WatchSource`] every Watch;
//! [`super::Make`] builds Create and Connect on top of it.

use std::future::Future;

use super::{Service, ServiceError, ServiceResult};
use crate::{
    model::{Labels, PageRequest, Selector},
    reconcile::Key,
};

/// Which objects a List or Watch wants: those whose labels match a selector and, for links,
/// those with an end in one namespace.
#[derive(Clone, Debug)]
pub struct Filter {
    selector: Selector,
    namespace: Option<String>,
}

impl Filter {
    /// Parses a label selector (`a=b,c!=d,e,!f`; "" selects everything). `namespace` narrows
    /// the kinds that live in namespaces (links); the others ignore it.
    pub fn parse(label_selector: &str, namespace: Option<String>) -> ServiceResult<Filter> {
        Ok(Filter {
            selector: Selector::parse(label_selector)?,
            namespace,
        })
    }

    /// True if `labels` match the selector.
    pub(super) fn labels(&self, labels: &Labels) -> bool {
        self.selector.matches(labels)
    }

    /// Text that differs whenever the filter does: what a page token is bound to.
    fn describe(&self) -> String {
        format!("{:?}|{:?}", self.selector, self.namespace)
    }

    /// True if no namespace was asked for, or one of `namespaces` is it.
    pub(super) fn namespace<'a>(&self, mut namespaces: impl Iterator<Item = &'a str>) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| namespaces.any(|n| n == ns))
    }
}

/// One page of a List: views with their sort keys, and whether more follow.
#[derive(Debug)]
pub struct Page<V> {
    /// The objects of the page, each with its [`Kind::sort_key`], in that order.
    pub items: Vec<(String, V)>,
    /// True when objects follow the last of `items`.
    pub more: bool,
    /// The request, which makes tokens.
    request: PageRequest,
}

impl<V> Page<V> {
    /// The `next_page_token` of a page that ends with the object whose sort key is `last`.
    pub fn token_after(&self, last: &str) -> String {
        self.request.token_after(last)
    }
}

/// Namespaces: a [`Kind`] whose view is the row (flows in `namespace.rs`).
#[derive(Clone, Copy, Debug)]
pub struct Namespaces;

/// Links: a [`Kind`] whose view is the row (flows in `link.rs`).
#[derive(Clone, Copy, Debug)]
pub struct Links;

/// Networks: a [`Kind`] whose view adds endpoints and lease counts (flows in `network.rs`).
#[derive(Clone, Copy, Debug)]
pub struct Networks;

/// Endpoints: a [`Kind`] whose view adds its network's spec (flows in `endpoint.rs`).
#[derive(Clone, Copy, Debug)]
pub struct Endpoints;

/// One kind of object, as the generic flows see it. Implemented by a marker type per kind
/// ([`super::Namespaces`], [`super::Links`], [`super::Networks`], [`super::Endpoints`]).
pub trait Kind: Send + Sync + 'static {
    /// The stored row.
    type Row: crate::store::Kind + Sync;
    /// What an answer shows of one object (the adapter converts it to a message).
    type View: Send + 'static;

    /// The reconcile key of object `id`.
    fn key(id: String) -> Key;
    /// The id of the object `key` names, if it is of this kind.
    fn id_of(key: &Key) -> Option<&str>;
    /// A row's id (its uid).
    fn id(row: &Self::Row) -> &str;
    /// A row's generation.
    fn generation(row: &Self::Row) -> i64;
    /// A row's labels, for the selector.
    fn labels(row: &Self::Row) -> &Labels;
    /// True if the row passes the filter: by default, if its labels match.
    fn selected(row: &Self::Row, filter: &Filter) -> bool {
        filter.labels(Self::labels(row))
    }
    /// What the kind is called in messages ("namespace").
    const NOUN: &'static str;
    /// A row's name, for kinds that have one of their own.
    fn name(_row: &Self::Row) -> Option<&str> {
        None
    }
    /// A row's place in a List: Lists are sorted by it, and a page token goes on after it.
    /// By default the name (or, for a kind without one, the id).
    fn sort_key(row: &Self::Row) -> String {
        Self::name(row).unwrap_or(Self::id(row)).to_string()
    }
    /// The unique, indexed column that holds [`Kind::sort_key`], for a kind whose List
    /// pages are read from the store a page at a time; None: every row is read and the
    /// page cut in memory.
    const SORT_COLUMN: Option<&'static str> = None;
    /// The error for a name nobody recorded: `namespace "x" not found`.
    fn not_found(name: &str) -> ServiceError {
        ServiceError::NotFound(format!("{} {name:?} not found", Self::NOUN))
    }
    /// The error when an object vanished between its write and the answer: NOT_FOUND by
    /// its name, or `the link is gone` for a kind without one.
    fn gone(row: &Self::Row) -> ServiceError {
        match Self::name(row) {
            Some(name) => Self::not_found(name),
            None => ServiceError::NotFound(format!("the {} is gone", Self::NOUN)),
        }
    }

    /// Loads the row with this id.
    fn by_id(
        svc: &Service,
        id: &str,
    ) -> impl Future<Output = ServiceResult<Option<Self::Row>>> + Send;
    /// Loads every row.
    fn all(svc: &Service) -> impl Future<Output = ServiceResult<Vec<Self::Row>>> + Send;
    /// The view of a row.
    fn view(
        svc: &Service,
        row: Self::Row,
    ) -> impl Future<Output = ServiceResult<Self::View>> + Send;
}

/// The [`Kind`] items every kind spells the same way: its noun, its key variant and the `id`
/// and `generation` fields of its row; given the store's two reads (by id, all) also those,
/// and the labels of its spec; given `named`, also the name of its spec.
macro_rules! kind_basics {
    ($noun:literal, $variant:ident, $row:ty, $by_id:ident, $all:ident, named) => {
        kind_basics!($noun, $variant, $row, $by_id, $all);
        fn name(row: &$row) -> Option<&str> {
            Some(&row.spec.name)
        }
    };
    ($noun:literal, $variant:ident, $row:ty, $by_id:ident, $all:ident) => {
        kind_basics!($noun, $variant, $row);
        fn labels(row: &$row) -> &crate::model::Labels {
            &row.spec.labels
        }
        async fn by_id(
            svc: &crate::service::Service,
            id: &str,
        ) -> crate::service::ServiceResult<Option<$row>> {
            Ok(svc.store().$by_id(id).await?)
        }
        async fn all(svc: &crate::service::Service) -> crate::service::ServiceResult<Vec<$row>> {
            Ok(svc.store().$all().await?)
        }
    };
    ($noun:literal, $variant:ident, $row:ty) => {
        const NOUN: &'static str = $noun;
        fn key(id: String) -> crate::reconcile::Key {
            crate::reconcile::Key::$variant(id)
        }
        fn id_of(key: &crate::reconcile::Key) -> Option<&str> {
            match key {
                crate::reconcile::Key::$variant(id) => Some(id),
                _ => None,
            }
        }
        fn id(row: &$row) -> &str {
            &row.id
        }
        fn generation(row: &$row) -> i64 {
            row.generation
        }
    };
}
pub(super) use kind_basics;

/// The [`Kind`] items of a kind whose answers show the row itself: its row and view types.
macro_rules! row_is_view {
    ($row:ty) => {
        type Row = $row;
        type View = $row;
        async fn view(
            _svc: &crate::service::Service,
            row: $row,
        ) -> crate::service::ServiceResult<$row> {
            Ok(row)
        }
    };
}
pub(super) use row_is_view;

impl Service {
    /// The view of the object of kind `K` called `name` (a Get); NOT_FOUND if there is none.
    pub async fn get<K: Kind>(&self, name: &str) -> ServiceResult<K::View>
    where
        K::Row: crate::store::Named,
    {
        let row = self
            .store()
            .by_name::<K::Row>(name)
            .await?
            .ok_or_else(|| K::not_found(name))?;
        K::view(self, row).await
    }

    /// One page of the objects of kind `K` that pass `filter`, in [`Kind::sort_key`] order
    /// (a List): at most `page_size` (0: the default) after the object `page_token` names.
    /// INVALID_ARGUMENT for a negative size, or a token that is not one this List made for
    /// this filter (see [`PageRequest`]).
    pub async fn list_page<K: Kind>(
        &self,
        filter: &Filter,
        page_size: i32,
        page_token: &str,
    ) -> ServiceResult<Page<K::View>> {
        let request = PageRequest::parse(
            page_size,
            page_token,
            &format!("{}|{}", K::NOUN, filter.describe()),
        )?;
        let rows = match K::SORT_COLUMN {
            Some(column) => self.rows_from::<K>(column, filter, &request).await?,
            None => K::all(self)
                .await?
                .into_iter()
                .filter(|row| K::selected(row, filter))
                .map(|row| (K::sort_key(&row), row))
                .collect(),
        };
        let (rows, more) = request.select(rows);
        let mut items = Vec::with_capacity(rows.len());
        for (key, row) in rows {
            items.push((key, K::view(self, row).await?));
        }
        Ok(Page {
            items,
            more,
            request,
        })
    }

    /// The rows of kind `K` (sorted by `column`) that pass `filter`, from after the page
    /// token on, until one more than the page holds or the last: a page of a List read
    /// from the store in pieces of a page, where reading every row for every page made a
    /// List of 10,000 namespaces read 200,000 rows (20 pages of 500).
    async fn rows_from<K: Kind>(
        &self,
        column: &'static str,
        filter: &Filter,
        request: &PageRequest,
    ) -> ServiceResult<Vec<(String, K::Row)>> {
        let piece = request.size + 1;
        let mut after = request.after.clone();
        let mut out = Vec::new();
        loop {
            let rows = self
                .store()
                .list_after::<K::Row>(column, after.as_deref(), piece)
                .await?;
            let last_piece = rows.len() < piece;
            for row in rows {
                let key = K::sort_key(&row);
                after = Some(key.clone());
                if K::selected(&row, filter) {
                    out.push((key, row));
                }
            }
            if last_piece || out.len() > request.size {
                return Ok(out);
            }
        }
    }

    /// Every object of kind `K` that passes `filter`, with its id.
    pub(super) async fn list_by_id<K: Kind>(
        &self,
        filter: &Filter,
    ) -> ServiceResult<Vec<(String, K::View)>> {
        let mut out = Vec::new();
        for row in K::all(self).await? {
            if K::selected(&row, filter) {
                let id = K::id(&row).to_string();
                out.push((id, K::view(self, row).await?));
            }
        }
        Ok(out)
    }

    /// Object `id` of kind `K` if it exists and passes `filter`.
    pub(super) async fn selected<K: Kind>(
        &self,
        id: &str,
        filter: &Filter,
    ) -> ServiceResult<Option<K::View>> {
        match K::by_id(self, id).await? {
            Some(row) if K::selected(&row, filter) => Ok(Some(K::view(self, row).await?)),
            _ => Ok(None),
        }
    }

    /// `row` as it is now (after a wait), as a view.
    pub(super) async fn reload<K: Kind>(&self, row: &K::Row) -> ServiceResult<K::View> {
        let now = K::by_id(self, K::id(row))
            .await?
            .ok_or_else(|| K::gone(row))?;
        K::view(self, now).await
    }
}
