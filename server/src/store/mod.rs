//! Desired state in SQLite through sqlx: one transaction per request, invariants in the schema
//! (see ../migrations). The only module that sees SQL.
//!
//! Rows carry both the spec (what clients asked for) and the status (what the reconciler saw).
//! Status writes are conditional, so a reconcile that changes nothing writes nothing and emits
//! no event; an endpoint's, whose row is kept in memory, is sent behind the answer, and every
//! read waits for those begun before it (`behind`).
//!
//! The layout:
//! - `kind`: the operations every kind shares (read by id or name, list, mark
//!   for deletion, delete the row, write the status), written once over the [`Kind`] trait;
//!   `per_kind` gives them the per-kind names callers use (`link_by_id`, ...).
//! - `namespaces`, `links`, `networks`, `endpoints`: each kind's row type, its [`Kind`]
//!   implementation, and what only it does (creating one; a connect's leases and ports).
//! - `requests`: request ids, recorded in the transaction of the object they made.
//! - `raw`: statements stepped in place through sqlx's locked handle (the Connect
//!   transaction, every listing); `columns`: a row's columns by name for both.
//! - `checkpoint`: the writer's WAL hook and the thread that checkpoints the WAL, so that
//!   commits do not.
//! - `behind`: status writes sent from a task of their own, holding the write turn, and the
//!   wait every read makes for them.
//!
//! Every write that must check other rows first (a name, a subnet, a lease, a host port)
//! runs in one `BEGIN IMMEDIATE` transaction, so concurrent requests are serialised; the
//! rules it applies are pure functions in [`crate::model`], and a dry run runs all of it and
//! rolls back (`finish`). Every write goes through one connection of its own (`writer`,
//! which keeps the statements the in-place transactions prepared on it), reads through a
//! pool of four.
//!
//! After a restart, [`Store::mark_unverified`] turns every Ready object to Rechecking, and
//! [`Store::confirm_rechecked`] turns a batch back to Ready once their reconciles found the
//! kernel as it was.

mod behind;
mod checkpoint;
mod columns;
mod endpoints;
mod gone;
mod kind;
mod links;
mod lists;
mod metrics;
mod namespaces;
mod networks;
mod per_kind;
mod ports;
mod raw;
mod requests;

use std::{path::Path, str::FromStr, sync::atomic::Ordering::Relaxed, time::Duration};

use crate::model::{ObjectLimits, Refusal};
pub use behind::OnFailedWrite;
pub use columns::{Cell, Columns, FromColumn};
pub use endpoints::{ConnectUndo, EndpointObserved, EndpointRow, ResolvSources, StoredMapping};
pub use kind::{Guarded, Kind, Named, RowCache};
pub use links::{EndObserved, LinkObserved, LinkRow};
pub use lists::AllRows;
pub use metrics::{MetricsSnapshot, NetworkGauge};
pub use namespaces::{NamespaceRow, NsPlace};
pub use networks::{AutoSubnets, NetworkRow};
pub use requests::{PastRequest, RequestRecord};
use sqlx::{
    Connection, SqliteConnection,
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
    },
};

/// Errors from the store. The API maps them to gRPC codes.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named object does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A unique name or address is taken.
    #[error("{0}")]
    AlreadyExists(String),
    /// The change conflicts with other state (a namespace still holding links).
    #[error("{0}")]
    FailedPrecondition(String),
    /// No address, subnet or port is left.
    #[error("{0}")]
    Exhausted(String),
    /// The request does not fit the stored state in a way the client must fix.
    #[error("{0}")]
    Invalid(String),
    /// Another call with the same request id got there first.
    #[error("request id {0:?} is being used by a concurrent call")]
    DuplicateRequest(String),
    /// A stored value could not be decoded: the database was changed by hand or is damaged.
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    /// A model value could not be written as JSON (model types always can).
    #[error("cannot encode a stored value: {0}")]
    Encode(#[from] serde_json::Error),
    /// SQLite failed.
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// SQLite failed under a statement stepped in place (store/raw.rs: the listings, the
    /// Connect transaction).
    #[error("database: {0}")]
    Sqlite(String),
    /// Migrations failed.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// The tables of the four kinds of object, in the order a restart re-checks them.
const TABLES: [&str; 4] = [
    NamespaceRow::TABLE,
    LinkRow::TABLE,
    NetworkRow::TABLE,
    EndpointRow::TABLE,
];

/// A rule of [`crate::model`] refused the request: the same message, as the error of the
/// same name, so the API answers with the code it always did.
impl From<Refusal> for StoreError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::NotFound(m) => StoreError::NotFound(m),
            Refusal::FailedPrecondition(m) => StoreError::FailedPrecondition(m),
            Refusal::AlreadyExists(m) => StoreError::AlreadyExists(m),
            Refusal::Invalid(m) => StoreError::Invalid(m),
            Refusal::Exhausted(m) => StoreError::Exhausted(m),
        }
    }
}

/// The handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    /// Checkpoints the WAL on a thread of its own, so commits do not (`checkpoint`). First:
    /// dropped first, its connection closes before the others.
    checkpointer: std::sync::Arc<checkpoint::Checkpointer>,
    /// Connections to the database (WAL, foreign keys on, a busy timeout), for reads.
    pool: SqlitePool,
    /// The one connection every write goes through, taken in turn: writers queue here, in
    /// order, instead of in SQLite's busy handler, which sleeps (1, 2, 5, 10 ms ...)
    /// whenever a write transaction is open. One connection, because SQLite drops a
    /// connection's whole page cache whenever another connection has written since its
    /// last transaction, so writes spread over the read pool each began by reading their
    /// pages back (a `pread` and an allocation per page; in a mass disconnect's profile
    /// each of the four connections' threads did so). The writer's own commits keep its
    /// cache valid. Reads through the pool still start cold after a write. (Its pages are
    /// still in the one list of unused pages SQLite keeps for the whole process: a long
    /// read on another connection, or a shrink, can take them; see [`POOL_CACHE_KIB`].)
    writer: std::sync::Arc<tokio::sync::Mutex<Writer>>,
    /// How they connect (for the background reader's own connection).
    opts: SqliteConnectOptions,
    /// The bulk check's reader at the lowest priority (`lists`).
    background: lists::Background,
    /// Network rows by uid: read by every endpoint reconcile and answer, written rarely.
    nets: std::sync::Arc<std::sync::Mutex<RowCache<NetworkRow>>>,
    /// Endpoint rows a connect or disconnect just wrote, kept for the reconcile and the
    /// waiting request that read them next (bounded; see [`EndpointRow`]'s [`Kind`]).
    endpoints: std::sync::Arc<std::sync::Mutex<RowCache<EndpointRow>>>,
    /// Where namespaces are, by name (see [`NsPlace`]).
    places: std::sync::Arc<std::sync::Mutex<namespaces::Places>>,
    /// Uids of rows deleted lately: a read of one needs no query (store/gone.rs).
    gone: std::sync::Arc<std::sync::Mutex<gone::Gone>>,
    /// Status writes sent behind their answers, which reads wait for (store/behind.rs).
    behind: std::sync::Arc<behind::Behind>,
    /// How many objects of each kind a create may make it.
    objects: ObjectLimits,
}

/// How long [`Store::release_memory`] waits in all for pooled connections to come back.
const RELEASE_WAIT: Duration = Duration::from_millis(10);

/// Milliseconds since the epoch, for created/updated columns.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Each pooled connection's page cache, KiB (SQLite's default is 2,000). What a request
/// touches (a few index and table pages per statement) fits many times over; what fills it
/// is a listing of every row, which reads through it once (its pages come from the file's
/// own cache in the kernel's memory when they are needed again). Issue 14's bench: four
/// connections filled to the default after a restart's reads were 9.6 MB of 21.4 MB live at
/// 10,000 endpoints, and 200 Watch streams' first listings filled them again.
///
/// The bound holds for all the connections together, not for each: the bundled SQLite is
/// built with `SQLITE_ENABLE_MEMORY_MANAGEMENT`, so the page caches of a process share one
/// list of unused pages, a connection reading past its bound takes the least recently used
/// page of any connection (the writer's, another store's; `release_tests`), and their sum
/// stays within the sum of their bounds.
const POOL_CACHE_KIB: u32 = 1024;

impl Store {
    /// Opens (creating if needed) the database at `path` and runs the embedded migrations.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Sqlx(sqlx::Error::Io(e)))?;
        }
        owner_only(path).map_err(|e| StoreError::Sqlx(sqlx::Error::Io(e)))?;
        let opts = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma("cache_size", format!("-{POOL_CACHE_KIB}"));
        // No ping before each acquire (sqlx's default): a pooled connection is a thread of
        // this process on a local file, with nothing in between to hang up, and the ping was
        // one more round trip to that thread for every acquire (a Connect makes several).
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(opts.clone())
            .await?;
        sqlx::migrate!("../migrations").run(&pool).await?;
        // The writer's commits leave checkpoints to the checkpointer's thread (`checkpoint`).
        let checkpointer = checkpoint::Checkpointer::start(path);
        let mut conn = SqliteConnection::connect_with(&opts).await?;
        {
            let mut handle = conn.lock_handle().await?;
            // SAFETY: the handle is held.
            #[allow(unsafe_code)]
            unsafe {
                checkpoint::install(handle.as_raw_handle(), &checkpointer.wake);
            }
        }
        let writer = Writer {
            conn: Some(conn),
            statements: Default::default(),
            maybe_open: Default::default(),
        };
        Ok(Store {
            pool,
            opts,
            background: Default::default(),
            nets: Default::default(),
            endpoints: Default::default(),
            places: Default::default(),
            gone: Default::default(),
            behind: Default::default(),
            writer: std::sync::Arc::new(tokio::sync::Mutex::new(writer)),
            checkpointer: std::sync::Arc::new(checkpointer),
            objects: ObjectLimits::default(),
        })
    }

    /// The writer connection, once every earlier writer of this store is done with it; a
    /// transaction a dropped [`WriteTx`] left open is rolled back first.
    async fn writer(&self) -> Result<tokio::sync::OwnedMutexGuard<Writer>, StoreError> {
        let mut w = self.writer.clone().lock_owned().await;
        if w.maybe_open.load(Relaxed) {
            // An error here is "no transaction is active": it had ended after all.
            let _ = sqlx::query("ROLLBACK").execute(w.conn()?).await;
            w.maybe_open.store(false, Relaxed);
        }
        Ok(w)
    }

    /// The pool of reading connections, once every status write sent behind its answer
    /// before this call is done (store/behind.rs): every read of the database goes
    /// through here.
    async fn reads(&self) -> &SqlitePool {
        self.settled().await;
        &self.pool
    }

    /// Starts a write transaction (`BEGIN IMMEDIATE`) once every earlier writer of this
    /// store is done (see [`WriteTx`]).
    pub(crate) async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        let w = self.writer().await?;
        let open = w.maybe_open.clone();
        let mut conn = tokio::sync::OwnedMutexGuard::try_map(w, |w| w.conn.as_mut())
            .map_err(|_| StoreError::Sqlx(sqlx::Error::PoolClosed))?;
        // Marked before it is sent: a call cancelled meanwhile may have begun it.
        open.store(true, Relaxed);
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
        Ok(WriteTx { conn, open })
    }

    /// Runs `f` as one write transaction stepped in place on the writer connection, once
    /// every earlier writer of this store is done (store/raw.rs: one round trip to sqlx's
    /// thread for the whole transaction, with the statements kept prepared); rolled back
    /// when `f` fails or with `dry_run`. Returns what `f` made and the write turn, held until
    /// the caller drops it: the caller updates a cache with what it wrote before any other
    /// writer can change the same rows.
    async fn write_in_place<T>(
        &self,
        dry_run: bool,
        f: impl FnOnce(raw::Raw<'_>) -> Result<T, StoreError>,
    ) -> Result<(T, tokio::sync::OwnedMutexGuard<Writer>), StoreError> {
        let mut w = self.writer().await?;
        let out = w.in_place(|raw| raw.transaction(dry_run, f)).await?;
        Ok((out, w))
    }

    /// The same store with these limits on objects per kind (the defaults until set).
    pub fn with_limits(mut self, objects: ObjectLimits) -> Store {
        self.objects = objects;
        self
    }

    /// Hands back the page cache of every pooled reading connection (`PRAGMA shrink_memory`).
    /// A shrink frees the unused pages of every connection of the process, the writer's
    /// too, which holds only what writes touch and refills as they need (see
    /// [`POOL_CACHE_KIB`]).
    /// Each keeps up to [`POOL_CACHE_KIB`]; with SQLite's default 2 MiB, a restart's reads of
    /// every row filled all four (heaptrack at 10,000 endpoints: 9.6 MB, most of what VmRSS
    /// after a restart had over VmRSS after a resync); the next queries refill them from the
    /// file cache as they need. Called when the GC key has run (after the start-up check, or
    /// after a failed check's fall-back) and after each periodic pass, before
    /// [`crate::alloc::trim`]: between passes the API refills only the pages it reads, a few
    /// per request (until session 28 the periodic passes left the caches full, 5-7 MiB more
    /// VmRSS at 10,000 endpoints). Connections are taken with `try_acquire`, which never
    /// opens one nor jumps ahead of waiting calls, and held until all are shrunk, so each is
    /// shrunk once; a dropped connection goes back to the pool a moment later, so it retries
    /// for up to [`RELEASE_WAIT`] in all, then leaves the ones still busy as they are.
    pub async fn release_memory(&self) {
        let open = self.pool.size() as usize;
        let until = tokio::time::Instant::now() + RELEASE_WAIT;
        let mut held = Vec::new();
        while held.len() < open {
            match self.pool.try_acquire() {
                Some(c) => held.push(c),
                None if tokio::time::Instant::now() < until => {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                None => break,
            }
        }
        for c in &mut held {
            if let Err(e) = sqlx::query("PRAGMA shrink_memory").execute(&mut **c).await {
                tracing::debug!(error = %e, "could not shrink a connection's page cache");
            }
        }
    }

    /// Runs `PRAGMA integrity_check` and returns its verdict ("ok" when healthy).
    pub async fn integrity_check(&self) -> Result<String, StoreError> {
        let (v,): (String,) = sqlx::query_as("PRAGMA integrity_check")
            .fetch_one(self.reads().await)
            .await?;
        Ok(v)
    }

    /// At start-up: every Ready object becomes [`Phase::Rechecking`](crate::model::Phase::Rechecking) until its first
    /// reconcile has checked the kernel, so no client reads Ready for something nobody has
    /// looked at since the restart. Returns how many rows changed.
    pub async fn mark_unverified(&self) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut n = 0;
        for table in TABLES {
            // The stored form of Rechecking: see `kind::phase_columns`.
            let sql = format!(
                "UPDATE {table} SET phase = 'pending', rechecking = 1, message = '' \
                 WHERE phase = 'ready' AND deleting = 0"
            );
            n += sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        // Emptied under the write turn too, before the commit releases it: a status write
        // after the commit must not find a kept row that still reads Ready and skip itself
        // (store/behind.rs). And again after the commit, for a read that filled a cache
        // from the rows as they were before it.
        self.forget_all_kinds();
        tx.commit().await?;
        self.forget_all_kinds();
        Ok(n)
    }

    /// Empties the cache of every kind.
    fn forget_all_kinds(&self) {
        self.forget_all::<NamespaceRow>();
        self.forget_all::<LinkRow>();
        self.forget_all::<NetworkRow>();
        self.forget_all::<EndpointRow>();
    }

    /// How many objects are still [`Phase::Rechecking`](crate::model::Phase::Rechecking):
    /// marked by [`Store::mark_unverified`] at this start and not yet confirmed or reconciled.
    /// Reads only those rows (a partial index per table, migration 0014).
    pub async fn count_rechecking(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM namespaces WHERE rechecking = 1) \
                  + (SELECT count(*) FROM links WHERE rechecking = 1) \
                  + (SELECT count(*) FROM networks WHERE rechecking = 1) \
                  + (SELECT count(*) FROM endpoints WHERE rechecking = 1)",
        )
        .fetch_one(self.reads().await)
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Turns the rows `ids` of `table` (one of the kinds' [`Kind::TABLE`]) that are still
    /// [`Phase::Rechecking`](crate::model::Phase::Rechecking) back to Ready; see [`Store::confirm_rechecked_of`].
    pub async fn confirm_rechecked(
        &self,
        table: &'static str,
        ids: &[String],
    ) -> Result<Vec<String>, StoreError> {
        match table {
            NamespaceRow::TABLE => self.confirm_rechecked_of::<NamespaceRow>(ids).await,
            LinkRow::TABLE => self.confirm_rechecked_of::<LinkRow>(ids).await,
            NetworkRow::TABLE => self.confirm_rechecked_of::<NetworkRow>(ids).await,
            EndpointRow::TABLE => self.confirm_rechecked_of::<EndpointRow>(ids).await,
            other => Err(StoreError::Invalid(format!("no table {other:?}"))),
        }
    }

    /// Turns the rows `ids` of kind `K` that are still [`Phase::Rechecking`](crate::model::Phase::Rechecking) back to Ready with one statement, for objects whose first reconcile after a restart
    /// found them converged; returns the ids it changed. One statement for a batch, where a
    /// write per object cost about half of a 1,000-endpoint restart.
    pub async fn confirm_rechecked_of<K: Kind>(
        &self,
        ids: &[String],
    ) -> Result<Vec<String>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let marks = vec!["?"; ids.len()].join(", ");
        // Only the kind's table name and "?" placeholders are formatted in.
        let sql = format!(
            "UPDATE {} SET phase = 'ready', rechecking = 0, message = '', updated_at = ? \
             WHERE phase = 'pending' AND rechecking = 1 AND observed_generation = generation \
             AND id IN ({marks}) RETURNING id",
            K::TABLE
        );
        let mut q = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(now_ms());
        for id in ids {
            q = q.bind(id);
        }
        let mut w = self.writer().await?;
        let changed: Vec<String> = q.fetch_all(w.conn()?).await?;
        for id in &changed {
            self.forget::<K>(id);
        }
        Ok(changed)
    }

    /// Closes the connections, checkpointing the WAL; writes fail after it.
    pub async fn close(&self) {
        self.checkpointer.close().await;
        self.background.close().await;
        if let Ok(mut w) = self.writer().await {
            w.close().await;
        }
        self.pool.close().await;
    }
}

/// The writer connection ([`Store::writer`]) and the statements kept prepared on it.
struct Writer {
    /// The connection; None once closed.
    conn: Option<SqliteConnection>,
    /// Statements the in-place transactions prepared on `conn` (store/raw.rs).
    statements: std::cell::RefCell<raw::Statements>,
    /// A transaction begun through sqlx ([`WriteTx`]) may still be open: its owner was
    /// dropped before it ended (an error, a cancelled call). The next user rolls it back.
    maybe_open: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("open", &self.conn.is_some())
            .field("statements", &self.statements)
            .field("maybe_open", &self.maybe_open)
            .finish()
    }
}

impl Writer {
    /// The connection, or an error once it is closed.
    fn conn(&mut self) -> Result<&mut SqliteConnection, StoreError> {
        open(&mut self.conn)
    }

    /// Runs `f` on the connection held through sqlx's lock, with its kept statements (one
    /// round trip to the connection's thread, to take the lock).
    async fn in_place<T>(
        &mut self,
        f: impl FnOnce(raw::Raw<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let Writer {
            conn,
            statements,
            maybe_open,
            ..
        } = self;
        let mut handle = open(conn)?.lock_handle().await?;
        // SAFETY: every kept statement was prepared on this connection (the writer's only
        // one, for its life).
        #[allow(unsafe_code)]
        let raw = unsafe { raw::Raw::keeping(&mut handle, statements) };
        let out = raw::blocking(|| f(raw));
        // A transaction `f` could not end (a ROLLBACK that failed) must not stay open under
        // writes that mean to commit on their own: ended now, or by the next writer.
        if !raw.end_leftover() {
            maybe_open.store(true, Relaxed);
        }
        out
    }

    /// Finalizes the kept statements and closes the connection.
    async fn close(&mut self) {
        let finalized = self
            .in_place(|raw| {
                raw.finalize_kept();
                Ok(())
            })
            .await;
        if finalized.is_err() {
            // SAFETY: `in_place` failed before its closure ran (the closure cannot fail): the
            // connection is closed already, or its lock could not be taken because its sqlx
            // thread has left its loop; either way no thread can use it.
            #[allow(unsafe_code)]
            unsafe {
                self.statements.get_mut().finalize_orphaned();
            }
        }
        if let Some(conn) = self.conn.take() {
            let _ = conn.close().await;
        }
    }
}

/// The writer's connection, or an error once it is closed.
fn open(conn: &mut Option<SqliteConnection>) -> Result<&mut SqliteConnection, StoreError> {
    conn.as_mut()
        .ok_or(StoreError::Sqlx(sqlx::Error::PoolClosed))
}

impl Drop for Writer {
    /// The kept statements must go before the connection does (SQLite will not close a
    /// connection with statements left, and sqlx panics then): finalized under sqlx's lock,
    /// waited for here (its thread answers on its own, no runtime needed); if that thread is
    /// gone, finalized without it (nothing else can use the connection then).
    fn drop(&mut self) {
        if self.statements.get_mut().len() == 0 {
            return;
        }
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        match futures::executor::block_on(conn.lock_handle()) {
            Ok(mut handle) => {
                // SAFETY: as in `in_place`.
                #[allow(unsafe_code)]
                let raw = unsafe { raw::Raw::keeping(&mut handle, &self.statements) };
                raw.finalize_kept();
            }
            // SAFETY: the lock could not be taken: the connection's sqlx thread has left its
            // loop, so no thread can use it.
            #[allow(unsafe_code)]
            Err(_) => unsafe { self.statements.get_mut().finalize_orphaned() },
        }
    }
}

/// A write transaction (`BEGIN IMMEDIATE`) holding the store's write turn: concurrent
/// writers of one weftd wait for it in order, on the async side, where SQLite alone would
/// make them poll with sleeps. Dropped without [`WriteTx::commit`], it is rolled back by
/// the next user of the writer (nothing else writes meanwhile, and reads do not see it).
pub(crate) struct WriteTx {
    /// The writer's connection, under its turn.
    conn: tokio::sync::OwnedMappedMutexGuard<Writer, SqliteConnection>,
    /// The writer's [`Writer::maybe_open`].
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl std::ops::Deref for WriteTx {
    type Target = SqliteConnection;
    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn
    }
}

impl WriteTx {
    /// Commits it.
    pub(crate) async fn commit(mut self) -> Result<(), StoreError> {
        self.end("COMMIT").await
    }

    /// Ends it: commits, or with `dry_run` rolls back, so a dry run meets every check a real
    /// call would (constraints, leases, ports) and changes nothing.
    pub(crate) async fn finish(mut self, dry_run: bool) -> Result<(), StoreError> {
        self.end(if dry_run { "ROLLBACK" } else { "COMMIT" }).await
    }

    async fn end(&mut self, how: &'static str) -> Result<(), StoreError> {
        sqlx::query(how).execute(&mut *self.conn).await?;
        self.open.store(false, Relaxed);
        Ok(())
    }

    /// Runs `f` in this transaction, stepped in place (without the writer's kept statements:
    /// the checks every create makes first, a few cheap statements).
    async fn in_place<T>(
        &mut self,
        f: impl FnOnce(raw::Raw<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut handle = self.conn.lock_handle().await?;
        f(raw::Raw::new(&mut handle))
    }
}

/// Is this a UNIQUE constraint violation?
fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// Is this a FOREIGN KEY constraint violation?
fn is_fk_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_foreign_key_violation())
}

/// A column's JSON text as a model value; `Corrupt`, naming `what()`, if it does not parse
/// (named only then: a listing decodes 20,000 of these).
fn decode<T: serde::de::DeserializeOwned>(
    what: impl FnOnce() -> String,
    s: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("{}: {e}", what())))
}

/// A model value as the JSON text a column stores.
fn encode<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    Ok(serde_json::to_string(v)?)
}

/// Makes the database file owner-only (0600) before SQLite opens it, whatever the umask:
/// creates it so (an empty file is a new database to SQLite) or narrows an existing one, and
/// narrows leftover `-wal`/`-shm` files. SQLite gives the `-wal` and `-shm` files it creates
/// the database file's mode, so they are 0600 too.
fn owner_only(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mode = std::fs::Permissions::from_mode(0o600);
    let db = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    db.set_permissions(mode.clone())?;
    for suffix in ["-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        match std::fs::set_permissions(&side, mode.clone()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Schema migrations against a real (temporary) database.

    use super::*;
    use crate::model::{Phase, RECHECKING};

    /// A database a weftd before migration 0005 left with an object pending its re-check
    /// reads as Rechecking after the upgrade; other pending rows stay Pending.
    /// A database in `dir` as a weftd with the migrations before `version` left it: its
    /// path and a pool on it (close it before opening the Store).
    async fn database_before(dir: &Path, version: &str) -> (std::path::PathBuf, SqlitePool) {
        let old = dir.join("migrations");
        std::fs::create_dir(&old).unwrap();
        let all = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
        for f in std::fs::read_dir(&all).unwrap() {
            let f = f.unwrap();
            if f.file_name().to_string_lossy().as_ref() < version {
                std::fs::copy(f.path(), old.join(f.file_name())).unwrap();
            }
        }
        let path = dir.join("t.db");
        let opts = SqliteConnectOptions::from_str("sqlite://")
            .unwrap()
            .filename(&path)
            .create_if_missing(true);
        let pool = SqlitePool::connect_with(opts).await.unwrap();
        sqlx::migrate::Migrator::new(old.as_path())
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap();
        (path, pool)
    }

    /// What the writer's WAL hook points at outlives the store, closed or only dropped:
    /// dropping a sqlx connection does not close it, and its thread may still run a commit
    /// that was sent before, which calls the hook (`checkpoint::install`). This pins that
    /// the hook's reference is never given back.
    #[tokio::test]
    async fn the_wal_hooks_wake_outlives_the_store() {
        for close in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let s = Store::open(&dir.path().join("t.db")).await.unwrap();
            let wake = std::sync::Arc::downgrade(&s.checkpointer.wake);
            if close {
                s.close().await;
            }
            drop(s);
            assert!(
                wake.upgrade().is_some(),
                "the Wake was freed (close: {close})"
            );
        }
    }

    /// The WAL is checkpointed by the checkpointer's thread, not by the commits, and only
    /// once it holds SQLite's 1,000 pages: a few commits leave it alone (a checkpoint that
    /// empties it makes the next commit rewind it and `fsync` its header), many get a
    /// checkpoint from the thread, after which the database file itself (copied without
    /// its WAL) holds the rows. Closing the store stops the thread.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_is_checkpointed_by_a_thread_of_its_own_past_a_thousand_pages() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let s = Store::open(&path).await.unwrap();
        let done = || s.checkpointer.wake.done.load(Relaxed);
        let spec = |i: usize| crate::model::NamespaceSpec {
            name: format!("ns{i}"),
            labels: Default::default(),
            adopted_path: None,
        };
        for i in 0..20 {
            s.create_namespace(&spec(i), None, false).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(done(), 0, "a checkpoint of a WAL of a few commits");
        let mut n = 20;
        while done() == 0 && n < 5_000 {
            s.create_namespace(&spec(n), None, false).await.unwrap();
            n += 1;
        }
        let started = std::time::Instant::now();
        while done() == 0 && started.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(done() > 0, "no checkpoint by the thread after {n} commits");
        // A checkpoint the last commits asked for may still be writing the file: a copy
        // taken meanwhile can be torn and read as nothing, so a few copies are tried.
        let copy = dir.path().join("copy.db");
        let mut in_file = -1;
        for _ in 0..20 {
            in_file = namespaces_in_file_alone(&path, &copy).await;
            if in_file >= 20 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            in_file >= 20 && in_file <= n as i64,
            "{in_file} namespaces in the database file itself after {n} commits"
        );
        s.close().await;
        assert!(s.checkpointer.stopped(), "the thread was joined");
    }

    /// Rows of `namespaces` in the database file at `path` alone: copied to `copy` without
    /// its WAL, and read there (-1: no such table there yet).
    async fn namespaces_in_file_alone(path: &Path, copy: &Path) -> i64 {
        for leftover in ["-wal", "-shm"] {
            let mut side = copy.as_os_str().to_owned();
            side.push(leftover);
            let _ = std::fs::remove_file(side);
        }
        std::fs::copy(path, copy).unwrap();
        let opts = SqliteConnectOptions::from_str("sqlite://")
            .unwrap()
            .filename(copy)
            .read_only(true);
        // A torn copy may not even open: read as nothing, as one without the table.
        let Ok(mut c) = SqliteConnection::connect_with(&opts).await else {
            return -1;
        };
        // Before the first checkpoint the file has not even the tables.
        let n = sqlx::query_scalar("SELECT count(*) FROM namespaces")
            .fetch_one(&mut c)
            .await
            .unwrap_or(-1);
        let _ = c.close().await;
        n
    }

    /// A database from before migration 0013 starts with its rows counted: the object
    /// limit sees the namespaces that were there.
    #[tokio::test]
    async fn migration_0013_counts_the_rows_already_there() {
        let dir = tempfile::tempdir().unwrap();
        let (path, pool) = database_before(dir.path(), "0013").await;
        for id in ["a", "b"] {
            sqlx::query(
                "INSERT INTO namespaces (id, name, created_at, updated_at) VALUES (?, ?, 0, 0)",
            )
            .bind(id)
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;
        let s = Store::open(&path).await.unwrap().with_limits(ObjectLimits {
            namespaces: 3,
            ..Default::default()
        });
        let spec = |name: &str| crate::model::NamespaceSpec {
            name: name.into(),
            labels: Default::default(),
            adopted_path: None,
        };
        s.create_namespace(&spec("c"), None, false).await.unwrap();
        let err = s
            .create_namespace(&spec("d"), None, false)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Exhausted(m) if m.starts_with("3 namespaces")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn migration_0005_turns_the_recheck_message_into_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let (path, pool) = database_before(dir.path(), "0005").await;
        for (id, message) in [("a", RECHECKING), ("b", "waiting for the bridge")] {
            sqlx::query(
                "INSERT INTO namespaces (id, name, phase, observed_generation, message, created_at, updated_at) \
                 VALUES (?, ?, 'pending', 1, ?, 0, 0)",
            )
            .bind(id)
            .bind(id)
            .bind(message)
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;

        let s = Store::open(&path).await.unwrap();
        let a = s.namespace_by_id("a").await.unwrap().unwrap();
        assert_eq!(
            (a.status.phase, a.status.message.as_str()),
            (Phase::Rechecking, "")
        );
        assert!(a.status.was_converged(a.generation));
        let b = s.namespace_by_id("b").await.unwrap().unwrap();
        assert_eq!(b.status.phase, Phase::Pending);
        assert_eq!(b.status.message, "waiting for the bridge");
        assert!(!b.status.was_converged(b.generation));
    }

    /// Endpoints from before migration 0007 keep the MAC they have as their desired one: the
    /// one the client asked for, else the one weft observed. When two of a network would
    /// share one, the older keeps it and the other has none (the unique index holds).
    #[tokio::test]
    async fn migration_0007_keeps_each_endpoints_mac() {
        let dir = tempfile::tempdir().unwrap();
        let (path, pool) = database_before(dir.path(), "0007").await;
        for sql in [
            "INSERT INTO networks (id, name, bridge_name, spec, created_at, updated_at) \
             VALUES ('w', 'web', 'br-web', '{}', 0, 0)",
            "INSERT INTO namespaces (id, name, created_at, updated_at) VALUES \
             ('n1', 'ns1', 0, 0), ('n2', 'ns2', 0, 0), ('n3', 'ns3', 0, 0)",
        ] {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        let spec = |mac: &str| {
            format!(
                r#"{{"ifname":"eth0","mac":{mac},"aliases":[],"ports":[],"default_route":true}}"#
            )
        };
        for (id, ns, spec, status, at) in [
            ("e1", "n1", spec(r#""02:00:00:00:00:01""#), "{}", 1),
            (
                "e2",
                "n2",
                spec("null"),
                r#"{"mac":"0a:00:00:00:00:02"}"#,
                2,
            ),
            ("e3", "n3", spec(r#""02:00:00:00:00:01""#), "{}", 3),
        ] {
            sqlx::query(
                "INSERT INTO endpoints (id, network_id, namespace_id, ifname, host_ifname, spec, \
                 status, created_at, updated_at) VALUES (?, 'w', ?, 'eth0', ?, ?, ?, ?, ?)",
            )
            .bind(id)
            .bind(ns)
            .bind(format!("wv{id}"))
            .bind(spec)
            .bind(status)
            .bind(at)
            .bind(at)
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;

        let s = Store::open(&path).await.unwrap();
        let mac = |id: &'static str| {
            let s = &s;
            async move { s.endpoint_by_id(id).await.unwrap().unwrap().mac }
        };
        assert_eq!(mac("e1").await.as_deref(), Some("02:00:00:00:00:01"));
        assert_eq!(mac("e2").await.as_deref(), Some("0a:00:00:00:00:02"));
        assert_eq!(
            mac("e3").await,
            None,
            "the younger of two alike gives it up"
        );
    }

    /// Links stored before migration 0015 get each interface's master beside its name: the
    /// first end's from the spec's end, a veth peer's from its peer, none where none is set.
    #[tokio::test]
    async fn migration_0015_keeps_each_link_interfaces_master() {
        let dir = tempfile::tempdir().unwrap();
        let (path, pool) = database_before(dir.path(), "0015").await;
        sqlx::query(
            "INSERT INTO namespaces (id, name, created_at, updated_at) VALUES ('n1', 'ns1', 0, 0)",
        )
        .execute(&pool)
        .await
        .unwrap();
        let end = |name: &str, ns: &str, master: Option<&str>| crate::model::EndSpec {
            name: name.into(),
            namespace: ns.into(),
            master: master.map(str::to_string),
            ..Default::default()
        };
        let links = [
            (
                "l1",
                "veth",
                crate::model::LinkSpec {
                    labels: Default::default(),
                    end: end("va", "", Some("br0")),
                    kind: crate::model::LinkKind::Veth {
                        peer: end("vb", "ns1", Some("br1")),
                    },
                },
            ),
            (
                "l2",
                "veth",
                crate::model::LinkSpec {
                    labels: Default::default(),
                    end: end("vc", "", None),
                    kind: crate::model::LinkKind::Veth {
                        peer: end("vd", "", Some("br0")),
                    },
                },
            ),
            (
                "l3",
                "bridge",
                crate::model::LinkSpec {
                    labels: Default::default(),
                    end: end("br0", "", None),
                    kind: crate::model::LinkKind::Bridge,
                },
            ),
        ];
        for (id, kind, spec) in &links {
            sqlx::query(
                "INSERT INTO links (id, kind, spec, created_at, updated_at) VALUES (?, ?, ?, 0, 0)",
            )
            .bind(id)
            .bind(kind)
            .bind(serde_json::to_string(spec).unwrap())
            .execute(&pool)
            .await
            .unwrap();
            for (i, e) in spec.ends().into_iter().enumerate() {
                sqlx::query(
                    "INSERT INTO link_ifaces (link_id, end_index, namespace_id, name) \
                     VALUES (?, ?, NULLIF(?, ''), ?)",
                )
                .bind(id)
                .bind(i as i64)
                .bind(if e.namespace.is_empty() { "" } else { "n1" })
                .bind(&e.name)
                .execute(&pool)
                .await
                .unwrap();
            }
        }
        pool.close().await;

        let s = Store::open(&path).await.unwrap();
        let masters: Vec<(String, Option<String>, String)> = sqlx::query_as(
            "SELECT name, master, ns_key FROM link_ifaces ORDER BY link_id, end_index",
        )
        .fetch_all(&s.pool)
        .await
        .unwrap();
        let want = [
            ("va", Some("br0"), ""),
            ("vb", Some("br1"), "n1"),
            ("vc", None, ""),
            ("vd", Some("br0"), ""),
            ("br0", None, ""),
        ]
        .map(|(n, m, k)| (n.to_string(), m.map(str::to_string), k.to_string()));
        assert_eq!(masters, want);
    }

    /// Networks stored before migration 0012 get `dns` written into their spec: off for the
    /// default network (Docker's default bridge has no DNS), on for every other; a spec that
    /// already says is left alone.
    #[tokio::test]
    async fn migration_0012_turns_dns_off_for_the_default_network_only() {
        let dir = tempfile::tempdir().unwrap();
        let (path, pool) = database_before(dir.path(), "0012").await;
        let spec = |name: &str, dns: Option<bool>| {
            let mut v = serde_json::to_value(crate::model::NetworkSpec {
                name: name.into(),
                labels: Default::default(),
                bridge_name: format!("br-{name}"),
                subnets: Vec::new(),
                internal: false,
                icc: true,
                masquerade: true,
                mtu: 0,
                dns: true,
            })
            .unwrap();
            let obj = v.as_object_mut().unwrap();
            obj.remove("dns");
            if let Some(d) = dns {
                obj.insert("dns".into(), d.into());
            }
            v.to_string()
        };
        for (id, name, is_default, dns) in [
            ("b", "bridge", 1, None),
            ("w", "web", 0, None),
            ("q", "quiet", 0, Some(false)),
        ] {
            sqlx::query(
                "INSERT INTO networks (id, name, bridge_name, spec, is_default, created_at, \
                 updated_at) VALUES (?, ?, ?, ?, ?, 0, 0)",
            )
            .bind(id)
            .bind(name)
            .bind(format!("br-{name}"))
            .bind(spec(name, dns))
            .bind(is_default)
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;

        let s = Store::open(&path).await.unwrap();
        for (name, want) in [("bridge", false), ("web", true), ("quiet", false)] {
            // Written into the stored spec, not only serde's default when reading it.
            let stored: Option<i64> = sqlx::query_scalar(
                "SELECT json_extract(spec, '$.dns') FROM networks WHERE name = ?",
            )
            .bind(name)
            .fetch_one(&s.pool)
            .await
            .unwrap();
            assert_eq!(stored, Some(i64::from(want)), "{name}");
            let row = s.network_by_name(name).await.unwrap().unwrap();
            assert_eq!(row.spec.dns, want, "{name}");
        }
    }
}

#[cfg(test)]
mod connect_tests;

#[cfg(test)]
pub(crate) mod release_tests {
    use super::*;
    use crate::testing::alone;

    /// SQLite's counter `op` (`SQLITE_DBSTATUS_*`) of connection `c`, then reset to zero when
    /// `reset` (for the counters that can be).
    async fn db_status(c: &mut SqliteConnection, op: std::ffi::c_int, reset: bool) -> i64 {
        let mut handle = c.lock_handle().await.unwrap();
        let db = handle.as_raw_handle();
        let (mut now, mut high) = (0, 0);
        // SAFETY: `db` is an open connection whose sqlx lock is held; `now` and `high` are
        // live locals the call writes; it only reads (and may zero) the connection's counters.
        #[allow(unsafe_code)]
        let rc = unsafe {
            libsqlite3_sys::sqlite3_db_status(
                db.as_ptr(),
                op,
                &mut now,
                &mut high,
                std::ffi::c_int::from(reset),
            )
        };
        assert_eq!(rc, libsqlite3_sys::SQLITE_OK);
        i64::from(now)
    }

    /// The page cache connection `c` holds now (`SQLITE_DBSTATUS_CACHE_USED`), in bytes.
    async fn cache_used(c: &mut SqliteConnection) -> i64 {
        db_status(c, libsqlite3_sys::SQLITE_DBSTATUS_CACHE_USED, false).await
    }

    /// Writes go through the one writer connection, and with reads through the pool in
    /// between, a second round of writes to the same rows finds every page in its cache
    /// (SQLite drops a connection's cache when *another* connection wrote since).
    #[tokio::test]
    async fn writes_go_through_one_connection_whose_cache_stays_warm() {
        if !alone!(writes_go_through_one_connection_whose_cache_stays_warm) {
            return;
        }
        use libsqlite3_sys::{SQLITE_DBSTATUS_CACHE_MISS, SQLITE_DBSTATUS_CACHE_WRITE};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).await.unwrap();
        let ids = create_namespaces(&store, 50).await;
        let status = |phase, message: &str| crate::model::Status {
            phase,
            observed_generation: 1,
            message: message.into(),
        };
        for id in &ids {
            let ready = status(crate::model::Phase::Ready, "");
            assert!(store.set_namespace_status(id, &ready, "").await.unwrap());
        }
        assert_eq!(store.list_namespaces().await.unwrap().len(), 50);
        {
            let mut w = store.writer().await.unwrap();
            let w = w.conn().unwrap();
            for op in [SQLITE_DBSTATUS_CACHE_MISS, SQLITE_DBSTATUS_CACHE_WRITE] {
                db_status(w, op, true).await;
            }
        }
        for id in &ids {
            let failed = status(crate::model::Phase::Failed, "again");
            assert!(store.set_namespace_status(id, &failed, "").await.unwrap());
            assert!(store.namespace_by_id(id).await.unwrap().is_some());
        }
        let mut w = store.writer().await.unwrap();
        let w = w.conn().unwrap();
        let written = db_status(w, SQLITE_DBSTATUS_CACHE_WRITE, false).await;
        let missed = db_status(w, SQLITE_DBSTATUS_CACHE_MISS, false).await;
        assert!(
            written >= 50,
            "the writes went through the writer: {written} pages"
        );
        assert_eq!(missed, 0, "no page read back between two writes");
    }

    /// A read of 4 MB leaves at most [`POOL_CACHE_KIB`] in the page cache of the connection
    /// that read it, and reads back the same, when no other connection holds pages (see
    /// [`a_long_read_takes_the_oldest_pages_of_any_connection`] for when they do).
    #[tokio::test]
    async fn a_pooled_connections_page_cache_is_bounded() {
        if !alone!(a_pooled_connections_page_cache_is_bounded) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let store = filled_and_shrunk(&dir).await;
        let mut c = store.pool.acquire().await.unwrap();
        read_filler(&mut c).await;
        let used = cache_used(&mut c).await;
        let bound = i64::from(POOL_CACHE_KIB) * 1024;
        // The pages themselves are at most the bound; each carries a header of its own.
        assert!(
            used > bound / 2 && used < bound * 5 / 4,
            "{used} bytes cached, the bound {bound}"
        );
    }

    /// SQLite keeps one list of unused pages for all the connections of a process (the
    /// bundled build's `SQLITE_ENABLE_MEMORY_MANAGEMENT`): a connection reading past its own
    /// bound takes the least recently used page of any connection, here all of the writer's
    /// (with a cache of its own per connection, the writer would keep them).
    #[tokio::test]
    async fn a_long_read_takes_the_oldest_pages_of_any_connection() {
        if !alone!(a_long_read_takes_the_oldest_pages_of_any_connection) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let store = filled_and_shrunk(&dir).await;
        create_namespaces(&store, 200).await;
        let writer_before = cache_used(store.writer().await.unwrap().conn().unwrap()).await;
        assert!(
            writer_before > 40_000,
            "the writes warmed the writer: {writer_before} bytes"
        );
        let mut c = store.pool.acquire().await.unwrap();
        read_filler(&mut c).await;
        drop(c);
        let writer_after = cache_used(store.writer().await.unwrap().conn().unwrap()).await;
        assert!(
            writer_after < writer_before / 4,
            "the read took the writer's pages: {writer_before} -> {writer_after} bytes"
        );
    }

    /// A store in `dir` whose table `filler` holds 8,000 blobs of 500 bytes (4 MB), with every
    /// connection's page cache then emptied: a write transaction keeps its dirty pages past
    /// the bound until it commits, and a cache stays that large until something shrinks it
    /// (a shrink frees the unused pages of every connection, the writer's too).
    async fn filled_and_shrunk(dir: &tempfile::TempDir) -> Store {
        let store = Store::open(&dir.path().join("t.db")).await.unwrap();
        fill(&store, 8000).await;
        settle(&store).await;
        store.release_memory().await;
        settle(&store).await;
        store
    }

    /// Reads all of `filler` (of [`filled_and_shrunk`]) on `c`.
    async fn read_filler(c: &mut SqliteConnection) {
        let sum = "SELECT sum(length(x)) FROM filler";
        let total: i64 = sqlx::query_scalar(sum).fetch_one(&mut *c).await.unwrap();
        assert_eq!(total, 8000 * 500);
    }

    /// Namespaces `n0`.. of `store`, `n` of them; their ids.
    async fn create_namespaces(store: &Store, n: usize) -> Vec<String> {
        let mut ids = Vec::new();
        for i in 0..n {
            let spec = crate::model::NamespaceSpec {
                name: format!("n{i}"),
                labels: Default::default(),
                adopted_path: None,
            };
            ids.push(store.create_namespace(&spec, None, false).await.unwrap().id);
        }
        ids
    }

    /// Waits until every connection is back in the pool (a dropped one returns a moment
    /// later).
    async fn settle(store: &Store) {
        while store.pool.num_idle() != store.pool.size() as usize {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// A table `filler` of `rows` blobs of 500 bytes.
    async fn fill(store: &Store, rows: u32) {
        sqlx::query("CREATE TABLE filler (x BLOB)")
            .execute(&store.pool)
            .await
            .unwrap();
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) \
             INSERT INTO filler SELECT randomblob(500) FROM n",
        )
        .bind(rows)
        .execute(&store.pool)
        .await
        .unwrap();
    }

    /// Fills a pooled connection's page cache with about 1 MB (a table of its own, read
    /// whole); returns the bytes its cache then holds.
    pub(crate) async fn fill_a_page_cache(store: &Store) -> i64 {
        fill(store, 2000).await;
        let mut c = store.pool.acquire().await.unwrap();
        let _: i64 = sqlx::query_scalar("SELECT sum(length(x)) FROM filler")
            .fetch_one(&mut *c)
            .await
            .unwrap();
        cache_used(&mut c).await
    }

    /// The page cache every pooled connection holds, in all (each idle one taken in turn).
    pub(crate) async fn pooled_page_caches(store: &Store) -> i64 {
        settle(store).await;
        let mut held = Vec::new();
        let mut sum = 0;
        while let Some(mut c) = store.pool.try_acquire() {
            sum += cache_used(&mut c).await;
            held.push(c);
        }
        sum
    }

    /// After a read of about 1 MB, the connection that read it holds its pages; releasing
    /// leaves every idle connection's cache nearly empty, and the data reads back the same.
    #[tokio::test]
    async fn release_memory_empties_the_idle_connections_page_caches() {
        if !alone!(release_memory_empties_the_idle_connections_page_caches) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).await.unwrap();
        fill(&store, 2000).await;
        let sum = "SELECT sum(length(x)) FROM filler";
        let mut c = store.pool.acquire().await.unwrap();
        let total: i64 = sqlx::query_scalar(sum).fetch_one(&mut *c).await.unwrap();
        let before = cache_used(&mut c).await;
        drop(c);
        assert!(
            before > 500_000,
            "the read filled the cache: {before} bytes"
        );
        settle(&store).await;
        let open = store.pool.size();
        store.release_memory().await;
        settle(&store).await;
        assert_eq!(store.pool.size(), open, "no connection opened to shrink");
        let mut held = Vec::new();
        let mut most = 0;
        while let Some(mut c) = store.pool.try_acquire() {
            most = most.max(cache_used(&mut c).await);
            held.push(c);
        }
        assert_eq!(held.len(), open as usize);
        assert!(most < before / 10, "{most} bytes left of {before}");
        drop(held);
        let again: i64 = sqlx::query_scalar(sum)
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(again, total);
    }
}
