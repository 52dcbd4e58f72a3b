//! Statements stepped in place on a connection held through sqlx's lock, on the caller's
//! thread: for listings (the background one, store/lists.rs, and the API's,
//! `Store::select_in`) and for write transactions whose every statement runs in one go
//! ([`Raw::transaction`]).
//!
//! Through sqlx each statement is a round trip to the connection's own thread; a Connect's
//! transaction was six of them. Holding sqlx's lock on the connection
//! ([`sqlx::SqliteConnection::lock_handle`]) is one round trip; then every statement, the
//! `BEGIN` and the `COMMIT` included, runs here with no `await` in between, so the
//! transaction is never left half-done by a cancelled future: it commits, or it rolls back
//! (an error, a dry run, or a panic unwinding through it). The writer keeps the statements
//! prepared ([`Statements`]): preparing them, not the trips, was most of the cost (sqlx had
//! kept them too; BENCHMARKS.md, "Session 15").
//!
//! What blocks meanwhile is this thread, for the transaction's SQLite work (tens of
//! microseconds; a WAL checkpoint only if the checkpointer fell far behind, store/checkpoint.rs), run off the async runtime's
//! core ([`blocking`]). `BEGIN IMMEDIATE` could wait up to the busy timeout only for another
//! process writing the same file, which the daemon's lock (crate::lock) rules out; writers of
//! this process queue before it (`Store::writer`).

use std::{
    cell::RefCell,
    collections::HashMap,
    ffi::{CStr, CString},
    marker::PhantomData,
    ptr::NonNull,
};

use libsqlite3_sys as ffi;
use sqlx::sqlite::LockedSqliteHandle;

use super::{
    StoreError,
    columns::{Cell, Columns, FromColumn},
};

/// A value bound to a statement's parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Arg<'a> {
    /// NULL.
    Null,
    /// An INTEGER.
    Int(i64),
    /// TEXT.
    Text(&'a str),
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(s: &'a str) -> Self {
        Arg::Text(s)
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(s: &'a String) -> Self {
        Arg::Text(s)
    }
}

impl From<i64> for Arg<'_> {
    fn from(i: i64) -> Self {
        Arg::Int(i)
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(s: Option<&'a str>) -> Self {
        s.map_or(Arg::Null, Arg::Text)
    }
}

/// SQLite refused a statement: its extended result code and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Failure {
    code: i32,
    message: String,
}

impl Failure {
    /// A UNIQUE or PRIMARY KEY constraint refused a row.
    pub(super) fn is_unique_violation(&self) -> bool {
        matches!(
            self.code,
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY
        )
    }

    /// SQLite's message ("UNIQUE constraint failed: endpoints.network_id, endpoints.mac").
    pub(super) fn message(&self) -> &str {
        &self.message
    }
}

impl From<Failure> for StoreError {
    fn from(f: Failure) -> Self {
        StoreError::Sqlite(f.message)
    }
}

/// Runs `f`, SQLite work on a connection held in place, where it may block: off the async
/// runtime's core when it has more than one (`block_in_place`: the runtime hands this
/// worker's other tasks to another thread meanwhile). Writes to a busy disk may be
/// throttled, and a commit may still checkpoint the WAL when the checkpointer's thread fell
/// far behind (store/checkpoint.rs): tens to hundreds of milliseconds in which a worker
/// thread would otherwise serve nothing else. On a single-threaded runtime (tests) it runs
/// in place.
pub(super) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// How many prepared statements [`Statements`] keeps: every statement of the write paths
/// that use it is a few dozen; what varies with a list's length (a batch of ids) is
/// prepared each time once it is full.
const STATEMENTS_MAX: usize = 128;

/// Statements prepared on one connection, by their SQL, kept between transactions: a
/// statement is prepared once for the connection's life instead of once per use (preparing
/// was most of a Connect transaction's SQLite time: 0.28 ms of work were 0.12 with them
/// kept). Only statements of that connection go in, and [`Raw::finalize_kept`] must
/// run before the connection closes (SQLite refuses to close a connection with statements
/// left, and sqlx panics then).
#[derive(Default)]
pub(super) struct Statements {
    kept: HashMap<String, NonNull<ffi::sqlite3_stmt>>,
}

// SAFETY: the statements are used only by whoever holds their connection's writer turn and
// sqlx's lock on it (`Raw`), one thread at a time; SQLite allows a connection and its
// statements to move between threads when no two use them at once.
#[allow(unsafe_code)]
unsafe impl Send for Statements {}

impl std::fmt::Debug for Statements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Statements")
            .field("kept", &self.kept.len())
            .finish()
    }
}

impl Statements {
    /// How many are kept.
    pub(super) fn len(&self) -> usize {
        self.kept.len()
    }

    /// Finalizes every kept statement of a connection whose sqlx thread is gone (its lock
    /// can no longer be taken): the connection is then closed on this thread, which SQLite
    /// refuses while statements are left.
    ///
    /// # Safety
    /// No thread can use the connection any more (sqlx's `lock_handle` failed: its worker
    /// has left its loop).
    #[allow(unsafe_code)]
    pub(super) unsafe fn finalize_orphaned(&mut self) {
        self.finalize();
    }

    /// Each kept statement's SQL and how often SQLite prepared it again
    /// (`SQLITE_STMTSTATUS_REPREPARE`).
    #[cfg(test)]
    pub(super) fn reprepares(&self) -> Vec<(String, i32)> {
        self.kept
            .iter()
            .map(|(sql, stmt)| {
                // SAFETY: a kept statement, only read.
                #[allow(unsafe_code)]
                let n = unsafe {
                    ffi::sqlite3_stmt_status(stmt.as_ptr(), ffi::SQLITE_STMTSTATUS_REPREPARE, 0)
                };
                (sql.clone(), n)
            })
            .collect()
    }

    /// Finalizes every kept statement: through [`Raw::finalize_kept`] (whose `Raw` holds the
    /// connection they were prepared on) or [`Statements::finalize_orphaned`].
    fn finalize(&mut self) {
        for (_, stmt) in self.kept.drain() {
            // SAFETY: a statement of a connection no other thread is using (held, or its
            // thread gone: the callers), finalized once, out of the map.
            #[allow(unsafe_code)]
            unsafe {
                ffi::sqlite3_finalize(stmt.as_ptr());
            }
        }
    }
}

/// A connection the caller holds through sqlx's lock ([`LockedSqliteHandle`]) for `'h`:
/// nothing else uses it meanwhile, on any thread.
#[derive(Clone, Copy)]
pub(super) struct Raw<'h> {
    db: NonNull<ffi::sqlite3>,
    /// Where its statements are kept between uses (None: prepared and finalized each time).
    statements: Option<&'h RefCell<Statements>>,
    _held: PhantomData<&'h mut ffi::sqlite3>,
}

/// SQLite's extended code and message for `db`'s last error, naming `what` failed.
#[allow(unsafe_code)]
fn last_error(db: NonNull<ffi::sqlite3>, what: &str) -> Failure {
    // SAFETY: `db` is an open connection; sqlite3_errmsg returns a NUL-terminated string it
    // owns, copied out before anything else runs on the connection.
    unsafe {
        let code = ffi::sqlite3_extended_errcode(db.as_ptr());
        let message = CStr::from_ptr(ffi::sqlite3_errmsg(db.as_ptr()));
        Failure {
            code,
            message: format!("{what}: {}", message.to_string_lossy()),
        }
    }
}

impl<'h> Raw<'h> {
    /// The connection whose sqlx lock `handle` holds, for as long as it is held.
    pub(super) fn new(handle: &'h mut LockedSqliteHandle<'_>) -> Self {
        Self {
            db: handle.as_raw_handle(),
            statements: None,
            _held: PhantomData,
        }
    }

    /// The same, keeping the statements it prepares in `statements`.
    ///
    /// # Safety
    /// Every statement in `statements` was prepared on `handle`'s connection, `statements`
    /// is never used with another connection, and its statements are finalized before that
    /// connection closes (SQLite refuses to close it otherwise, and sqlx panics then).
    #[allow(unsafe_code)]
    pub(super) unsafe fn keeping(
        handle: &'h mut LockedSqliteHandle<'_>,
        statements: &'h RefCell<Statements>,
    ) -> Self {
        Self {
            db: handle.as_raw_handle(),
            statements: Some(statements),
            _held: PhantomData,
        }
    }

    /// Whether the connection is outside any transaction (SQLite's autocommit mode).
    #[allow(unsafe_code)]
    pub(super) fn autocommit(&self) -> bool {
        // SAFETY: an open connection only this thread uses.
        unsafe { ffi::sqlite3_get_autocommit(self.db.as_ptr()) != 0 }
    }

    /// Rolls back the transaction open on the connection, if any; whether none is left.
    pub(super) fn end_leftover(&self) -> bool {
        if !self.autocommit() {
            let _ = self.batch("ROLLBACK");
        }
        self.autocommit()
    }

    /// Runs `sql` (statements without parameters: `BEGIN`, `COMMIT`).
    #[allow(unsafe_code)]
    fn batch(&self, sql: &str) -> Result<(), Failure> {
        let sql = CString::new(sql).map_err(|_| Failure {
            code: ffi::SQLITE_MISUSE,
            message: "a statement with a NUL byte".into(),
        })?;
        // SAFETY: an open connection only this thread uses (`new`); `sql` is NUL-terminated;
        // no callback, no error message to free.
        let rc = unsafe {
            ffi::sqlite3_exec(
                self.db.as_ptr(),
                sql.as_ptr(),
                None,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        if rc == ffi::SQLITE_OK {
            Ok(())
        } else {
            Err(last_error(self.db, "run a statement"))
        }
    }

    /// Finalizes the statements kept for this connection (before it closes).
    pub(super) fn finalize_kept(&self) {
        if let Some(k) = self.statements {
            k.borrow_mut().finalize();
        }
    }

    /// Prepares `sql` (one statement), or takes it from the kept ones (reset, no bindings).
    pub(super) fn prepare(&self, sql: &str) -> Result<RawStatement<'h>, Failure> {
        let kept = self.statements.and_then(|k| {
            let mut k = k.borrow_mut();
            k.kept.remove_entry(sql)
        });
        let (home, stmt) = match kept {
            Some((sql, stmt)) => (self.statements.map(|k| (k, sql)), stmt),
            None => (
                self.statements.map(|k| (k, sql.to_string())),
                self.prepare_new(sql)?,
            ),
        };
        Ok(RawStatement {
            db: self.db,
            stmt,
            names: std::cell::OnceCell::new(),
            home,
            _held: PhantomData,
        })
    }

    /// Prepares `sql` anew.
    #[allow(unsafe_code)]
    fn prepare_new(&self, sql: &str) -> Result<NonNull<ffi::sqlite3_stmt>, Failure> {
        let len = i32::try_from(sql.len()).map_err(|_| Failure {
            code: ffi::SQLITE_TOOBIG,
            message: "statement too long".into(),
        })?;
        let mut stmt = std::ptr::null_mut();
        // SAFETY: `sql` is valid for `len` bytes; `stmt` receives the statement or NULL.
        let rc = unsafe {
            ffi::sqlite3_prepare_v2(
                self.db.as_ptr(),
                sql.as_ptr().cast(),
                len,
                &mut stmt,
                std::ptr::null_mut(),
            )
        };
        NonNull::new(stmt)
            .filter(|_| rc == ffi::SQLITE_OK)
            .ok_or_else(|| last_error(self.db, "prepare a statement"))
    }

    /// Prepares `sql` with `args` bound to its parameters, in order.
    pub(super) fn query(&self, sql: &str, args: &[Arg<'_>]) -> Result<RawStatement<'h>, Failure> {
        let mut stmt = self.prepare(sql)?;
        stmt.bind_all(args)?;
        Ok(stmt)
    }

    /// Runs `sql` with `args` to its end; how many rows it changed.
    pub(super) fn execute(&self, sql: &str, args: &[Arg<'_>]) -> Result<u64, Failure> {
        let mut stmt = self.query(sql, args)?;
        while stmt.step()? {}
        // SAFETY: an open connection only this thread uses.
        #[allow(unsafe_code)]
        let n = unsafe { ffi::sqlite3_changes64(self.db.as_ptr()) };
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The first row of `sql` with `args`, read by `f`; None when there is none.
    pub(super) fn optional<T>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        f: impl FnOnce(&RawRow<'_, 'h>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let mut stmt = self.query(sql, args)?;
        match stmt.next()? {
            Some(row) => f(&row).map(Some),
            None => Ok(None),
        }
    }

    /// Every row of `sql` with `args`, each read by `f`.
    pub(super) fn rows<T>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        mut f: impl FnMut(&RawRow<'_, 'h>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut stmt = self.query(sql, args)?;
        let mut out = Vec::new();
        while let Some(row) = stmt.next()? {
            out.push(f(&row)?);
        }
        Ok(out)
    }

    /// Runs `f` in one write transaction (`BEGIN IMMEDIATE`): committed when `f` succeeds,
    /// rolled back when it fails, when `dry_run` says so, or when a panic unwinds through it.
    pub(super) fn transaction<T>(
        self,
        dry_run: bool,
        f: impl FnOnce(Self) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.batch("BEGIN IMMEDIATE")?;
        let open = Open(Some(self));
        let out = f(self)?;
        if dry_run {
            open.rollback()?;
        } else {
            open.commit()?;
        }
        Ok(out)
    }
}

/// A transaction [`Raw::transaction`] began: rolled back when dropped uncommitted.
struct Open<'h>(Option<Raw<'h>>);

impl Open<'_> {
    /// Commits it; if the commit fails, rolls back what is left of it.
    fn commit(mut self) -> Result<(), Failure> {
        let Some(raw) = self.0.take() else {
            return Ok(());
        };
        raw.batch("COMMIT").inspect_err(|_| {
            // A failed COMMIT may leave the transaction open (SQLite rolls some failures
            // back itself): end it either way, so the connection goes back clean.
            let _ = raw.batch("ROLLBACK");
        })
    }

    /// Rolls it back.
    fn rollback(mut self) -> Result<(), Failure> {
        match self.0.take() {
            Some(raw) => raw.batch("ROLLBACK"),
            None => Ok(()),
        }
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        if let Some(raw) = self.0.take()
            && let Err(e) = raw.batch("ROLLBACK")
        {
            tracing::warn!(error = %e.message, "could not roll back a write transaction");
        }
    }
}

/// A statement prepared on a connection the caller holds ([`Raw`]), finalized when dropped.
pub(super) struct RawStatement<'h> {
    db: NonNull<ffi::sqlite3>,
    stmt: NonNull<ffi::sqlite3_stmt>,
    /// The result columns' names, by index, read once at the first lookup by name (a
    /// listing reads 13-15 columns by name in each of 20,000 rows).
    names: std::cell::OnceCell<Vec<String>>,
    /// Where it goes back to when dropped, under its SQL (None: finalized then).
    home: Option<(&'h RefCell<Statements>, String)>,
    _held: PhantomData<&'h mut ffi::sqlite3>,
}

/// The current row of a [`RawStatement`], valid until the next step.
pub(super) struct RawRow<'s, 'h>(&'s RawStatement<'h>);

impl<'h> RawStatement<'h> {
    /// Binds `args` to the parameters, in order (`?` is the next one, `?N` the Nth).
    #[allow(unsafe_code)]
    fn bind_all(&mut self, args: &[Arg<'_>]) -> Result<(), Failure> {
        let stmt = self.stmt.as_ptr();
        for (i, a) in args.iter().enumerate() {
            let i = i32::try_from(i + 1).unwrap_or(i32::MAX);
            // SAFETY: a prepared statement not yet stepped; text is copied by SQLite
            // (SQLITE_TRANSIENT) before the call returns.
            let rc = unsafe {
                match *a {
                    Arg::Null => ffi::sqlite3_bind_null(stmt, i),
                    Arg::Int(v) => ffi::sqlite3_bind_int64(stmt, i, v),
                    Arg::Text(t) => ffi::sqlite3_bind_text64(
                        stmt,
                        i,
                        t.as_ptr().cast(),
                        t.len() as u64,
                        ffi::SQLITE_TRANSIENT(),
                        ffi::SQLITE_UTF8 as u8,
                    ),
                }
            };
            if rc != ffi::SQLITE_OK {
                return Err(last_error(self.db, "bind a value"));
            }
        }
        Ok(())
    }

    /// Steps once: true when a row is there to read, false when the statement is done.
    #[allow(unsafe_code)]
    fn step(&mut self) -> Result<bool, Failure> {
        // SAFETY: a prepared statement on a connection only this thread uses ([`Raw`]).
        match unsafe { ffi::sqlite3_step(self.stmt.as_ptr()) } {
            ffi::SQLITE_ROW => Ok(true),
            ffi::SQLITE_DONE => Ok(false),
            _ => Err(last_error(self.db, "run a statement")),
        }
    }

    /// Steps to the next row: Some(row), or None when done.
    pub(super) fn next(&mut self) -> Result<Option<RawRow<'_, 'h>>, StoreError> {
        Ok(self.step()?.then_some(RawRow(self)))
    }
}

impl Drop for RawStatement<'_> {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        let stmt = self.stmt.as_ptr();
        if let Some((home, sql)) = self.home.take() {
            let mut home = home.borrow_mut();
            if home.kept.len() < STATEMENTS_MAX && !home.kept.contains_key(&sql) {
                // SAFETY: no row borrows it any more; reset and unbound, it is as prepared.
                unsafe {
                    ffi::sqlite3_reset(stmt);
                    ffi::sqlite3_clear_bindings(stmt);
                }
                home.kept.insert(sql, self.stmt);
                return;
            }
        }
        // SAFETY: finalized once, here; no row borrows it any more.
        unsafe {
            ffi::sqlite3_finalize(stmt);
        }
    }
}

impl RawRow<'_, '_> {
    /// Column `name`'s value, borrowed from SQLite until the next step.
    #[allow(unsafe_code)]
    fn cell(&self, name: &str) -> Result<Cell<'_>, StoreError> {
        let stmt = self.0.stmt.as_ptr();
        // SAFETY: a prepared statement; each name is NUL-terminated and owned by it, copied
        // out before anything else runs on it.
        let names = self.0.names.get_or_init(|| unsafe {
            (0..ffi::sqlite3_column_count(stmt))
                .map(|i| {
                    let p = ffi::sqlite3_column_name(stmt, i);
                    if p.is_null() {
                        String::new()
                    } else {
                        CStr::from_ptr(p).to_string_lossy().into_owned()
                    }
                })
                .collect()
        });
        let i = names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| StoreError::Sqlite(format!("no column {name} in a result")))?;
        self.cell_at(i, name)
    }

    /// The value of column `i` (named `name`, for errors).
    #[allow(unsafe_code)]
    fn cell_at(&self, i: usize, name: &str) -> Result<Cell<'_>, StoreError> {
        let stmt = self.0.stmt.as_ptr();
        let i = i32::try_from(i).unwrap_or(i32::MAX);
        // SAFETY: a prepared statement.
        if i >= unsafe { ffi::sqlite3_column_count(stmt) } {
            return Err(StoreError::Sqlite(format!("no column {i} ({name})")));
        }
        // SAFETY: `stmt` holds a row (`next` returned it, and this borrow of the statement
        // keeps it from stepping); `i` is one of its columns. The text pointer is read
        // before its length, as SQLite's documentation asks, and stays valid until the
        // statement steps, which the borrow in the returned cell prevents.
        unsafe {
            match ffi::sqlite3_column_type(stmt, i) {
                ffi::SQLITE_NULL => Ok(Cell::Null),
                ffi::SQLITE_INTEGER => Ok(Cell::Int(ffi::sqlite3_column_int64(stmt, i))),
                ffi::SQLITE_TEXT => {
                    let p = ffi::sqlite3_column_text(stmt, i);
                    let n = usize::try_from(ffi::sqlite3_column_bytes(stmt, i)).unwrap_or(0);
                    let bytes = if p.is_null() || n == 0 {
                        &[][..]
                    } else {
                        std::slice::from_raw_parts(p, n)
                    };
                    std::str::from_utf8(bytes)
                        .map(Cell::Text)
                        .map_err(|e| StoreError::Corrupt(format!("column {name}: {e}")))
                }
                other => Err(StoreError::Corrupt(format!(
                    "column {name}: storage class {other}, not text or an integer"
                ))),
            }
        }
    }
}

impl Columns for RawRow<'_, '_> {
    fn get<'r, T: FromColumn<'r>>(&'r self, name: &str) -> Result<T, StoreError> {
        T::from_cell(name, self.cell(name)?)
    }
}

impl RawRow<'_, '_> {
    /// Column `i` (counting from 0) as a `T`: for results whose columns have no names.
    pub(super) fn at<'r, T: FromColumn<'r>>(&'r self, i: usize) -> Result<T, StoreError> {
        T::from_cell("a result column", self.cell_at(i, "a result column")?)
    }
}

#[cfg(test)]
mod tests {
    //! Against a real (temporary) database file, through sqlx's locked handle as the store
    //! uses it.

    use sqlx::{Connection, SqliteConnection, sqlite::SqliteConnectOptions};

    use super::*;

    async fn conn(dir: &std::path::Path) -> SqliteConnection {
        let opts = SqliteConnectOptions::new()
            .filename(dir.join("t.db"))
            .create_if_missing(true);
        let mut c = SqliteConnection::connect_with(&opts).await.unwrap();
        sqlx::query("CREATE TABLE t (k TEXT PRIMARY KEY, n INTEGER, note TEXT)")
            .execute(&mut c)
            .await
            .unwrap();
        c
    }

    async fn count(c: &mut SqliteConnection) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM t")
            .fetch_one(c)
            .await
            .unwrap()
    }

    /// Values go in bound and come back as they went, NULL included; a key taken is a
    /// unique violation, told apart from other failures, and the transaction goes on after
    /// it (only the statement failed).
    #[tokio::test]
    async fn binds_read_back_and_unique_violations_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = conn(dir.path()).await;
        {
            let mut h = c.lock_handle().await.unwrap();
            let raw = Raw::new(&mut h);
            raw.transaction(false, |raw| {
                let insert = "INSERT INTO t (k, n, note) VALUES (?, ?, ?)";
                assert_eq!(raw.execute(insert, &["a".into(), 7.into(), Arg::Null])?, 1);
                let taken = raw
                    .execute(insert, &["a".into(), 8.into(), "x".into()])
                    .unwrap_err();
                assert!(taken.is_unique_violation(), "{taken:?}");
                assert!(taken.message().contains("t.k"), "{taken:?}");
                let bad = raw
                    .execute("INSERT INTO nowhere VALUES (1)", &[])
                    .unwrap_err();
                assert!(!bad.is_unique_violation(), "{bad:?}");
                raw.execute(insert, &["b".into(), 9.into(), Some("é ü").into()])?;
                let rows = raw.rows("SELECT k, n, note FROM t ORDER BY k", &[], |r| {
                    Ok((
                        r.get::<String>("k")?,
                        r.at::<i64>(1)?,
                        r.at::<Option<String>>(2)?,
                    ))
                })?;
                assert_eq!(
                    rows,
                    [
                        ("a".to_string(), 7, None),
                        ("b".to_string(), 9, Some("é ü".to_string()))
                    ]
                );
                Ok(())
            })
            .unwrap();
        }
        assert_eq!(count(&mut c).await, 2, "committed");
    }

    /// A failure, a dry run and a panic each roll the whole transaction back, and the
    /// connection is left with no transaction open: sqlx begins and commits on it after.
    #[tokio::test]
    async fn failures_dry_runs_and_panics_roll_back_and_leave_the_connection_clean() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = conn(dir.path()).await;
        let insert = |raw: Raw<'_>, k: &str| {
            raw.execute("INSERT INTO t (k) VALUES (?)", &[k.into()])
                .map(drop)
                .map_err(StoreError::from)
        };
        for how in ["fail", "dry", "panic"] {
            {
                let mut h = c.lock_handle().await.unwrap();
                let raw = Raw::new(&mut h);
                let run = std::panic::AssertUnwindSafe(|| {
                    raw.transaction(how == "dry", |raw| {
                        insert(raw, how)?;
                        match how {
                            "fail" => Err(StoreError::Invalid("no".into())),
                            "panic" => panic!("in the middle"),
                            _ => Ok(()),
                        }
                    })
                });
                let out = std::panic::catch_unwind(run);
                match how {
                    "panic" => assert!(out.is_err()),
                    "fail" => assert!(out.unwrap().is_err()),
                    _ => out.unwrap().unwrap(),
                }
            }
            assert_eq!(count(&mut c).await, 0, "{how} left a row");
            let mut tx = c.begin().await.unwrap();
            sqlx::query("INSERT INTO t (k) VALUES ('after')")
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.rollback().await.unwrap();
        }
    }

    /// A transaction left open on the connection (a ROLLBACK that failed, say) is found and
    /// ended: what it wrote is gone and the connection is back in autocommit mode.
    #[tokio::test]
    async fn a_transaction_left_open_is_found_and_ended() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = conn(dir.path()).await;
        {
            let mut h = c.lock_handle().await.unwrap();
            let raw = Raw::new(&mut h);
            assert!(raw.autocommit());
            raw.batch("BEGIN IMMEDIATE").unwrap();
            raw.execute("INSERT INTO t (k) VALUES ('left')", &[])
                .unwrap();
            assert!(!raw.autocommit());
            assert!(raw.end_leftover());
            assert!(raw.autocommit());
            assert!(raw.end_leftover(), "nothing to end is fine too");
        }
        assert_eq!(count(&mut c).await, 0);
    }
}
