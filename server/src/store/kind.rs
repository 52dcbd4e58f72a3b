//! One generic store for what every kind of object shares: read by id or name, list, mark
//! for deletion, delete the row, write the observed status.
//!
//! Each kind (namespaces, links, networks, endpoints) is one table and one row type; the row
//! type implements [`Kind`], saying which table it lives in, how a row is selected and
//! decoded, and what the reconciler stores beside the status. The per-kind methods of
//! [`Store`] (`link_by_id`, `list_networks`, `set_endpoint_status`, ...) are one-line
//! delegations to the generic methods here, so the SQL for each operation is written once.
//!
//! Only constants of a [`Kind`] and `?` placeholders are ever formatted into SQL; every value
//! is bound.

use std::{collections::HashMap, sync::Mutex};

use sqlx::SqliteConnection;

use super::{
    Columns, RequestRecord, Store, StoreError, WriteTx, now_ms,
    raw::{self, Arg, Raw, RawRow},
};
use crate::model::{ObjectLimits, Phase, Status, new_uid};

/// A kind of stored object: one table, one row type (the implementor).
pub trait Kind: Sized + Clone + Send + Unpin + 'static {
    /// The table its rows live in.
    const TABLE: &'static str;
    /// What a client calls one ("namespace"), for messages.
    const NOUN: &'static str;
    /// `SELECT <columns> FROM <table and joins>`, which [`Kind::decode`] reads; conditions
    /// and an order are appended to it.
    const SELECT: &'static str;
    /// The id column as [`Kind::SELECT`] names it (`id`, or `e.id` under a join).
    const ID: &'static str;
    /// The order of a full listing (`name`).
    const ORDER: &'static str;
    /// What the reconciler stores beside the status (`()` when nothing).
    type Observed: ?Sized;

    /// Decodes one row of [`Kind::SELECT`]; `Corrupt` if a stored value does not parse.
    fn decode(r: &impl Columns) -> Result<Self, StoreError>;

    /// The column `observed` is stored in and its text, for a kind that stores one.
    fn observed_column(
        observed: &Self::Observed,
    ) -> Result<Option<(&'static str, String)>, StoreError>;

    /// The cache of this kind's rows, for a kind read often enough to keep one.
    fn cache(_store: &Store) -> Option<&Mutex<RowCache<Self>>> {
        None
    }

    /// Whether a read from the database fills the cache (true), or only the writes that
    /// make and change a row put it there ([`Store::prime`]): endpoints, of which there may
    /// be 10,000 while only those a client is waiting on are worth holding.
    const CACHE_READS: bool = true;

    /// At most this many rows in the cache; past it, an arbitrary one is dropped.
    const CACHE_CAP: usize = usize::MAX;

    /// Drops what the store keeps of row `id` besides its cache, once the row is deleted
    /// (namespaces: their place, [`Store::namespace_place`]).
    fn forget_kept(_store: &Store, _id: &str) {}

    /// Puts a status write into a cached row: true if the kind can (the row then equals what
    /// the database holds), false to drop the row from the cache instead.
    fn set_observed(&mut self, _status: &Status, _observed: &Self::Observed) -> bool {
        false
    }

    /// Whether this row already has `status` and `observed` (what [`Store::set_status`]
    /// would write): None when the kind cannot tell. A kind that says, and whose
    /// [`Kind::set_observed`] keeps the cached copy, has its status writes sent behind the
    /// answer when the row is cached (store/behind.rs).
    fn has_status(&self, _status: &Status, _observed: &Self::Observed) -> Option<bool> {
        None
    }
}

/// A kind whose rows have a unique name.
pub trait Named: Kind {
    /// The name column as [`Kind::SELECT`] names it.
    const NAME: &'static str;
}

/// A named kind that other rows can hold: it may only be marked for deletion while nothing
/// holds it (a namespace with links in it, a network with endpoints).
pub trait Guarded: Named {
    /// A query that returns one description per holder of the object whose id is bound as
    /// `?1`, in the order the refusal lists them.
    const HOLDERS: &'static str;

    /// The FAILED_PRECONDITION message for object `name` held by `holders`.
    fn still_held(name: &str, holders: &[String]) -> String;
}

/// Rows of one kind by uid, for a kind read far more often than written. Every write to a row
/// drops its entry and bumps `epoch`; a reader that queried the database fills the cache only
/// if `epoch` did not move meanwhile, so a row read before a write is never cached after it.
#[derive(Debug)]
pub struct RowCache<R> {
    /// Bumped by every write to any row of the kind.
    epoch: u64,
    /// Rows by uid, as last read.
    rows: HashMap<String, R>,
}

impl<R> Default for RowCache<R> {
    fn default() -> Self {
        Self {
            epoch: 0,
            rows: HashMap::new(),
        }
    }
}

impl<R> RowCache<R> {
    /// Puts `row` in under `id`, first dropping an arbitrary other row when `cap` are held.
    fn put(&mut self, id: &str, row: R, cap: usize) {
        if self.rows.len() >= cap
            && !self.rows.contains_key(id)
            && let Some(old) = self.rows.keys().next().cloned()
        {
            self.rows.remove(&old);
        }
        self.rows.insert(id.to_string(), row);
    }

    /// How many rows it holds.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// Locks a cache, taking it over if a holder panicked (a cache is always safe to reuse).
fn lock<R>(cache: &Mutex<RowCache<R>>) -> std::sync::MutexGuard<'_, RowCache<R>> {
    cache.lock().unwrap_or_else(|p| p.into_inner())
}

/// The status columns every kind has, as its `SELECT` returns them.
pub(super) fn status_of(r: &impl Columns) -> Result<Status, StoreError> {
    let phase: &str = r.get("phase")?;
    let phase = if phase == "pending" && r.get::<i64>("rechecking")? != 0 {
        Phase::Rechecking
    } else {
        Phase::parse(phase)
    };
    Ok(Status {
        phase,
        observed_generation: r.get("observed_generation")?,
        message: r.get("message")?,
    })
}

/// How `phase` is stored: the phase column, and the rechecking flag. The phase column's CHECK
/// predates [`Phase::Rechecking`], so that is phase 'pending' with the flag set (see
/// migration 0005); every write of a phase writes the flag too.
fn phase_columns(phase: Phase) -> (&'static str, bool) {
    match phase {
        Phase::Rechecking => (Phase::Pending.as_str(), true),
        Phase::Pending | Phase::Ready | Phase::Failed | Phase::Deleting => (phase.as_str(), false),
    }
}

impl Store {
    /// The row of kind `K` with this uid (from its cache when it has one; none, without a
    /// query, when this store deleted it lately: store/gone.rs).
    pub async fn by_id<K: Kind>(&self, id: &str) -> Result<Option<K>, StoreError> {
        let epoch = match K::cache(self) {
            Some(cache) => {
                let c = lock(cache);
                if let Some(row) = c.rows.get(id) {
                    return Ok(Some(row.clone()));
                }
                Some(c.epoch)
            }
            None => None,
        };
        if self.gone().contains(id) {
            return Ok(None);
        }
        let row = Self::by_id_in::<K>(&mut *self.reads().await.acquire().await?, id).await?;
        if let (Some(cache), Some(epoch), Some(row)) = (K::cache(self), epoch, &row)
            && K::CACHE_READS
        {
            let mut c = lock(cache);
            if c.epoch == epoch {
                c.put(id, row.clone(), K::CACHE_CAP);
            }
        }
        Ok(row)
    }

    /// Notes row `id` as deleted (under the write turn, right after the commit): reads from
    /// here on skip the query.
    pub(super) fn note_gone(&self, id: &str) {
        self.gone().insert(id);
    }

    /// The uids of rows deleted lately.
    fn gone(&self) -> std::sync::MutexGuard<'_, super::gone::Gone> {
        self.gone.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new uid for a row: never one of a row deleted lately, which reads take for gone.
    pub fn fresh_uid(&self) -> String {
        self.gone().fresh(new_uid)
    }

    /// The cached copy of row `id` of kind `K`, if it has one.
    pub(super) fn cached<K: Kind>(&self, id: &str) -> Option<K> {
        K::cache(self).and_then(|c| lock(c).rows.get(id).cloned())
    }

    /// Puts `row`, just written (a connect's new endpoint, a disconnect's marked one), in its
    /// kind's cache, so the reconcile and the waiting request that read it next need no
    /// query. Called only after the write committed, with the row as the database now holds
    /// it; every later write to the row updates or drops it.
    pub(crate) fn prime<K: Kind>(&self, id: &str, row: K) {
        if let Some(cache) = K::cache(self) {
            let mut c = lock(cache);
            c.epoch += 1;
            c.put(id, row, K::CACHE_CAP);
        }
    }

    /// The row of kind `K` with this uid, read on `conn` (inside a transaction).
    pub(crate) async fn by_id_in<K: Kind>(
        conn: &mut SqliteConnection,
        id: &str,
    ) -> Result<Option<K>, StoreError> {
        let cond = format!("{} = ?", K::ID);
        Self::lookup_in::<K>(conn, &cond, &[id]).await
    }

    /// The row of kind `K` with this name.
    pub async fn by_name<K: Named>(&self, name: &str) -> Result<Option<K>, StoreError> {
        self.find_one(&format!("{} = ?", K::NAME), &[name]).await
    }

    /// Every row of kind `K`, in its listing order.
    pub async fn list<K: Kind>(&self) -> Result<Vec<K>, StoreError> {
        self.find_all("", &[], K::ORDER).await
    }

    /// The first row of kind `K` meeting `cond` (SQL over [`Kind::SELECT`]'s tables, with a
    /// `?` for each of `binds`).
    pub(crate) async fn find_one<K: Kind>(
        &self,
        cond: &str,
        binds: &[&str],
    ) -> Result<Option<K>, StoreError> {
        Self::lookup_in::<K>(&mut *self.reads().await.acquire().await?, cond, binds).await
    }

    /// The first row of kind `K` meeting `cond`, through sqlx: a look-up, whose statement
    /// sqlx keeps prepared on each connection. Stepped in place ([`Store::select_in`]) it
    /// was prepared anew each time, and a Disconnect took 0.3-0.4 ms longer.
    async fn lookup_in<K: Kind>(
        conn: &mut SqliteConnection,
        cond: &str,
        binds: &[&str],
    ) -> Result<Option<K>, StoreError> {
        // Only constants of the kinds and "?" placeholders are formatted in.
        let sql = format!("{} WHERE {cond}", K::SELECT);
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in binds {
            q = q.bind(*b);
        }
        match q.fetch_optional(&mut *conn).await? {
            Some(row) => Ok(Some(K::decode(&row)?)),
            None => Ok(None),
        }
    }

    /// Up to `limit` rows of kind `K` whose `column` (a unique, indexed one of
    /// [`Kind::SELECT`]) sorts after `after` (from the first when None), in its order: a
    /// List's page read without the rows before or after it.
    pub async fn list_after<K: Kind>(
        &self,
        column: &'static str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<K>, StoreError> {
        let mut conn = self.reads().await.acquire().await?;
        // Only constants of the kinds and a number are formatted in.
        let sql = match after {
            Some(_) => format!(
                "{} WHERE {column} > ? ORDER BY {column} LIMIT {limit}",
                K::SELECT
            ),
            None => format!("{} ORDER BY {column} LIMIT {limit}", K::SELECT),
        };
        let args: Vec<Arg<'_>> = after.map(Arg::Text).into_iter().collect();
        Self::rows_in(&mut conn, &sql, &args, |row| K::decode(row)).await
    }

    /// Every row of kind `K` meeting `cond` (all rows when empty), ordered by `order`.
    pub(crate) async fn find_all<K: Kind>(
        &self,
        cond: &str,
        binds: &[&str],
        order: &str,
    ) -> Result<Vec<K>, StoreError> {
        let mut conn = self.reads().await.acquire().await?;
        Self::select_in::<K>(&mut conn, cond, binds, order).await
    }

    /// The query behind every listing: [`Kind::SELECT`], `WHERE cond`, `ORDER BY order`.
    /// Stepped in place (store/raw.rs), each value decoded where SQLite holds it: through
    /// sqlx every value was copied into an owned row and every row passed between two
    /// threads, ~20 us a row (a ListNetworks of one network with 1,000 endpoints took 23 ms).
    pub(super) async fn select_in<K: Kind>(
        conn: &mut SqliteConnection,
        cond: &str,
        binds: &[&str],
        order: &str,
    ) -> Result<Vec<K>, StoreError> {
        let mut sql = K::SELECT.to_string();
        if !cond.is_empty() {
            sql = format!("{sql} WHERE {cond}");
        }
        if !order.is_empty() {
            sql = format!("{sql} ORDER BY {order}");
        }
        let args: Vec<Arg<'_>> = binds.iter().map(|b| Arg::Text(b)).collect();
        Self::rows_in(conn, &sql, &args, |row| K::decode(row)).await
    }

    /// Every row of `sql` with `args` on `conn`, each read by `f`, stepped in place (see
    /// [`Store::select_in`]), with the worker's other tasks handed to another thread
    /// meanwhile ([`raw::blocking`]): 10,000 rows take tens of milliseconds, and a sorted
    /// listing (endpoints, links) does its whole query and sort in its first step.
    pub(super) async fn rows_in<T>(
        conn: &mut SqliteConnection,
        sql: &str,
        args: &[Arg<'_>],
        f: impl FnMut(&RawRow<'_, '_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut handle = conn.lock_handle().await?;
        let db = Raw::new(&mut handle);
        raw::blocking(|| db.rows(sql, args, f))
    }

    /// Starts the write transaction of a create of kind `K`: a new uid for the object, and
    /// `request` recorded first, so a concurrent call with the same request id fails here
    /// (and the API replays what the first call made). RESOURCE_EXHAUSTED when the kind has
    /// reached its limit ([`ObjectLimits`]): counted inside the transaction, which
    /// `BEGIN IMMEDIATE` serialises with every other write, so concurrent creates cannot
    /// overshoot. Rows being deleted still count until they are gone.
    pub(crate) async fn begin_create<K: Kind>(
        &self,
        request: Option<&RequestRecord>,
    ) -> Result<(String, WriteTx), StoreError> {
        let id = self.fresh_uid();
        let mut tx = self.begin_write().await?;
        tx.in_place(|raw| self.create_checks::<K>(raw, request, &id))
            .await?;
        Ok((id, tx))
    }

    /// What every create of kind `K` checks and records first, in its transaction on `raw`:
    /// the kind's limit, then the request id (see [`Store::begin_create`]).
    pub(super) fn create_checks<K: Kind>(
        &self,
        raw: Raw<'_>,
        request: Option<&RequestRecord>,
        id: &str,
    ) -> Result<(), StoreError> {
        if let Some((max, flag)) = self.objects.of(K::NOUN) {
            // Kept by triggers (migration 0013): one key lookup, where COUNT(*) read every row.
            let count: i64 = raw
                .optional(
                    "SELECT n FROM object_counts WHERE kind = ?",
                    &[K::TABLE.into()],
                    |r| r.at(0),
                )?
                .unwrap_or(0);
            let count = usize::try_from(count).unwrap_or(usize::MAX);
            if count >= max {
                return Err(StoreError::Exhausted(ObjectLimits::exhausted(
                    K::NOUN,
                    count,
                    max,
                    flag,
                )));
            }
        }
        super::requests::record(raw, request, id)
    }

    /// Reads back the row a create just inserted and ends the transaction (see [`WriteTx::finish`]).
    pub(crate) async fn finish_insert<K: Kind>(
        mut tx: WriteTx,
        id: &str,
        dry_run: bool,
    ) -> Result<K, StoreError> {
        let row = Self::by_id_in::<K>(&mut tx, id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("inserted {} vanished", K::NOUN)))?;
        tx.finish(dry_run).await?;
        Ok(row)
    }

    /// Marks the row of kind `K` with this uid for deletion (idempotent).
    pub async fn mark_deleting<K: Kind>(&self, id: &str) -> Result<(), StoreError> {
        let mut w = self.writer().await?;
        let res = Self::mark_deleting_in::<K>(w.conn()?, id).await;
        self.forget::<K>(id);
        res.map(|_| ())
    }

    /// The same, on `conn`; true if it marked the row (false: it was marked already, or gone).
    pub(super) async fn mark_deleting_in<K: Kind>(
        conn: &mut SqliteConnection,
        id: &str,
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE {} SET deleting = 1, phase = 'deleting', rechecking = 0, \
             generation = generation + 1, updated_at = ? WHERE id = ? AND deleting = 0",
            K::TABLE
        );
        let r = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now_ms())
            .bind(id)
            .execute(&mut *conn)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Marks the row of kind `K` named `name` for deletion and returns it; NOT_FOUND if there
    /// is none, FAILED_PRECONDITION while something holds it ([`Guarded`]). With `dry_run`
    /// nothing changes.
    pub async fn mark_deleting_by_name<K: Guarded>(
        &self,
        name: &str,
        dry_run: bool,
    ) -> Result<K, StoreError> {
        let mut tx = self.begin_write().await?;
        let sql = format!("SELECT id FROM {} WHERE name = ?", K::TABLE);
        let id: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        let id =
            id.ok_or_else(|| StoreError::NotFound(format!("{} {name:?} not found", K::NOUN)))?;
        let holders: Vec<String> = sqlx::query_scalar(K::HOLDERS)
            .bind(&id)
            .fetch_all(&mut *tx)
            .await?;
        if !holders.is_empty() {
            return Err(StoreError::FailedPrecondition(K::still_held(
                name, &holders,
            )));
        }
        Self::mark_deleting_in::<K>(&mut tx, &id).await?;
        let row = Self::by_id_in::<K>(&mut tx, &id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("{name:?} not found")))?;
        tx.finish(dry_run).await?;
        self.forget::<K>(&id);
        Ok(row)
    }

    /// Removes a row of kind `K` that was marked for deletion; false if there was none. Rows
    /// that belong to it (interfaces, leases, mappings) go with it by `ON DELETE CASCADE`.
    pub async fn delete_row<K: Kind>(&self, id: &str) -> Result<bool, StoreError> {
        let sql = format!("DELETE FROM {} WHERE id = ? AND deleting = 1", K::TABLE);
        let mut w = self.writer().await?;
        let r = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .execute(w.conn()?)
            .await;
        let deleted = r.map(|r| r.rows_affected() > 0);
        if matches!(deleted, Ok(true)) {
            // Under the write turn, right after the commit: reads from here on skip the
            // query (a read already past this check may still find the row as it was before
            // the delete, as before; `forget`'s epoch bump keeps it from caching that).
            self.gone().insert(id);
        }
        self.forget::<K>(id);
        K::forget_kept(self, id);
        Ok(deleted?)
    }

    /// Writes the observed status of the row of kind `K` with this uid (and what the
    /// reconciler observed beside it) only when something differs; returns whether it
    /// changed. A reconcile that finds nothing new writes nothing and emits no event. For a
    /// kept row whose kind can tell ([`Kind::has_status`]), the kept copy decides without a
    /// query, and a change is sent behind the answer (store/behind.rs).
    pub async fn set_status<K: Kind>(
        &self,
        id: &str,
        status: &Status,
        observed: &K::Observed,
    ) -> Result<bool, StoreError> {
        let extra = K::observed_column(observed)?;
        let (set_extra, differs_extra) = match &extra {
            Some((col, _)) => (format!(", {col} = ?"), format!(" OR {col} != ?")),
            None => (String::new(), String::new()),
        };
        let sql = format!(
            "UPDATE {} SET phase = ?, rechecking = ?, observed_generation = ?, message = ?{set_extra}, \
             updated_at = ? WHERE id = ? AND (phase != ? OR rechecking != ? \
             OR observed_generation != ? OR message != ?{differs_extra})",
            K::TABLE
        );
        let (phase, rechecking) = phase_columns(status.phase);
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(phase)
            .bind(rechecking)
            .bind(status.observed_generation)
            .bind(status.message.clone());
        if let Some((_, v)) = &extra {
            q = q.bind(v.clone());
        }
        q = q
            .bind(now_ms())
            .bind(id.to_string())
            .bind(phase)
            .bind(rechecking)
            .bind(status.observed_generation)
            .bind(status.message.clone());
        if let Some((_, v)) = extra {
            q = q.bind(v);
        }
        // The cached copy changes under the same write turn, so no other write to the row
        // lands between the two.
        let mut w = self.writer().await?;
        // A closed store fails here, before anything changes.
        w.conn()?;
        // The cached copy is what the database holds: when it tells, the write is skipped
        // (nothing differs) or sent behind (store/behind.rs).
        let known = K::cache(self).and_then(|cache| {
            lock(cache)
                .rows
                .get(id)
                .and_then(|row| row.has_status(status, observed))
        });
        match known {
            Some(true) => return Ok(false),
            Some(false) => {
                self.observe_cached::<K>(id, status, observed);
                self.write_behind::<K>(w, id, q);
                return Ok(true);
            }
            None => {}
        }
        match q.execute(w.conn()?).await {
            Ok(done) => {
                self.observe_cached::<K>(id, status, observed);
                Ok(done.rows_affected() > 0)
            }
            Err(e) => {
                self.forget::<K>(id);
                Err(e.into())
            }
        }
    }

    /// Puts a status just written into row `id`'s cached copy, if it has one and its kind
    /// can ([`Kind::set_observed`]); drops the row from the cache otherwise.
    fn observe_cached<K: Kind>(&self, id: &str, status: &Status, observed: &K::Observed) {
        if let Some(cache) = K::cache(self) {
            let mut c = lock(cache);
            c.epoch += 1;
            let kept = c
                .rows
                .get_mut(id)
                .is_some_and(|row| row.set_observed(status, observed));
            if !kept {
                c.rows.remove(id);
            }
        }
    }

    /// Drops row `id` of kind `K` from its cache: called after every write to the row.
    pub(super) fn forget<K: Kind>(&self, id: &str) {
        if let Some(cache) = K::cache(self) {
            let mut c = lock(cache);
            c.epoch += 1;
            c.rows.remove(id);
        }
    }

    /// Empties the cache of kind `K`: called after a write to many of its rows.
    pub(super) fn forget_all<K: Kind>(&self) {
        if let Some(cache) = K::cache(self) {
            let mut c = lock(cache);
            c.epoch += 1;
            c.rows.clear();
        }
    }
}
