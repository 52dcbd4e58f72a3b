//! A row's columns by name, as the kinds' decoders ([`super::Kind::decode`]) read them: from
//! a row sqlx fetched (every read through the pool), or in place from a statement the
//! background reader steps itself ([`RawRow`], store/lists.rs).
//!
//! The background reader lists every row of the four kinds at each resync pass: 20,000 rows
//! of 13-15 columns at 10,000 endpoints. Through sqlx each value is copied into an owned
//! row (`sqlite3_value_dup`, a `malloc` each) and each row is handed between two threads;
//! that was over half of an idle weftd's CPU. Stepped in place, a decoder reads each
//! column's text where SQLite holds it.

use std::{ffi::CStr, ptr::NonNull};

use libsqlite3_sys as ffi;
use sqlx::{Row, sqlite::SqliteRow};

use super::StoreError;

/// One row's columns by name.
pub trait Columns {
    /// Column `name`, as a `T`; an error if there is no such column or its value is not a `T`.
    fn get<'r, T: FromColumn<'r>>(&'r self, name: &str) -> Result<T, StoreError>;
}

/// A value a column can be read as: text, an integer, or either of them or NULL.
pub trait FromColumn<'r>:
    Sized + sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>
{
    /// From sqlx's row.
    fn from_row(r: &'r SqliteRow, name: &str) -> Result<Self, StoreError> {
        Ok(r.try_get(name)?)
    }
    /// From a value read in place.
    fn from_cell(name: &str, cell: Cell<'r>) -> Result<Self, StoreError>;
}

/// A value read in place: SQLite's storage classes weft's schema uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell<'r> {
    /// NULL.
    Null,
    /// An INTEGER.
    Int(i64),
    /// TEXT (UTF-8).
    Text(&'r str),
}

fn mismatch(name: &str, want: &str, cell: Cell<'_>) -> StoreError {
    StoreError::Corrupt(format!("column {name}: {cell:?} is not {want}"))
}

impl<'r> FromColumn<'r> for &'r str {
    fn from_cell(name: &str, cell: Cell<'r>) -> Result<Self, StoreError> {
        match cell {
            Cell::Text(t) => Ok(t),
            other => Err(mismatch(name, "text", other)),
        }
    }
}

impl<'r> FromColumn<'r> for String {
    fn from_cell(name: &str, cell: Cell<'r>) -> Result<Self, StoreError> {
        <&str>::from_cell(name, cell).map(str::to_string)
    }
}

impl<'r> FromColumn<'r> for i64 {
    fn from_cell(name: &str, cell: Cell<'r>) -> Result<Self, StoreError> {
        match cell {
            Cell::Int(i) => Ok(i),
            other => Err(mismatch(name, "an integer", other)),
        }
    }
}

impl<'r, T: FromColumn<'r>> FromColumn<'r> for Option<T> {
    fn from_cell(name: &str, cell: Cell<'r>) -> Result<Self, StoreError> {
        match cell {
            Cell::Null => Ok(None),
            other => T::from_cell(name, other).map(Some),
        }
    }
}

impl Columns for SqliteRow {
    fn get<'r, T: FromColumn<'r>>(&'r self, name: &str) -> Result<T, StoreError> {
        T::from_row(self, name)
    }
}

/// A statement prepared on a connection the caller holds (sqlx's handle, locked), finalized
/// when dropped.
pub(super) struct RawStatement {
    db: NonNull<ffi::sqlite3>,
    stmt: NonNull<ffi::sqlite3_stmt>,
    /// The result columns' names, by index.
    names: Vec<String>,
}

/// The current row of a [`RawStatement`], valid until the next step.
pub(super) struct RawRow<'s>(&'s RawStatement);

/// SQLite's message for `db`'s last error.
#[allow(unsafe_code)]
fn last_error(db: NonNull<ffi::sqlite3>, what: &str) -> StoreError {
    // SAFETY: `db` is an open connection; sqlite3_errmsg returns a NUL-terminated string it
    // owns, copied out before anything else runs on the connection.
    let message = unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(db.as_ptr())) };
    StoreError::Sqlite(format!("{what}: {}", message.to_string_lossy()))
}

impl RawStatement {
    /// Prepares `sql` on `db`.
    ///
    /// # Safety
    /// `db` must be an open connection that no other thread uses until this statement is
    /// dropped (the caller holds sqlx's lock on it).
    #[allow(unsafe_code)]
    pub(super) unsafe fn prepare(db: NonNull<ffi::sqlite3>, sql: &str) -> Result<Self, StoreError> {
        let len = i32::try_from(sql.len())
            .map_err(|_| StoreError::Sqlite("statement too long".into()))?;
        let mut stmt = std::ptr::null_mut();
        // SAFETY: `sql` is valid for `len` bytes; `stmt` receives the statement or NULL.
        let rc = unsafe {
            ffi::sqlite3_prepare_v2(
                db.as_ptr(),
                sql.as_ptr().cast(),
                len,
                &mut stmt,
                std::ptr::null_mut(),
            )
        };
        let Some(stmt) = NonNull::new(stmt).filter(|_| rc == ffi::SQLITE_OK) else {
            return Err(last_error(db, "prepare a listing"));
        };
        // SAFETY: `stmt` is a prepared statement; names are NUL-terminated, owned by it.
        let names = unsafe {
            let n = ffi::sqlite3_column_count(stmt.as_ptr());
            (0..n)
                .map(|i| {
                    let p = ffi::sqlite3_column_name(stmt.as_ptr(), i);
                    if p.is_null() {
                        String::new()
                    } else {
                        CStr::from_ptr(p).to_string_lossy().into_owned()
                    }
                })
                .collect()
        };
        Ok(Self { db, stmt, names })
    }

    /// Steps to the next row: Some(row), or None when done.
    #[allow(unsafe_code)]
    pub(super) fn next(&mut self) -> Result<Option<RawRow<'_>>, StoreError> {
        // SAFETY: a prepared statement on a connection only this thread uses (`prepare`).
        match unsafe { ffi::sqlite3_step(self.stmt.as_ptr()) } {
            ffi::SQLITE_ROW => Ok(Some(RawRow(self))),
            ffi::SQLITE_DONE => Ok(None),
            _ => Err(last_error(self.db, "read a listing")),
        }
    }
}

impl Drop for RawStatement {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: finalized once, here; no row borrows it any more.
        unsafe {
            ffi::sqlite3_finalize(self.stmt.as_ptr());
        }
    }
}

impl RawRow<'_> {
    /// Column `name`'s value, borrowed from SQLite until the next step.
    #[allow(unsafe_code)]
    fn cell(&self, name: &str) -> Result<Cell<'_>, StoreError> {
        let s = self.0;
        let i = s
            .names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| StoreError::Sqlite(format!("no column {name} in a listing")))?;
        let i = i32::try_from(i).unwrap_or(i32::MAX);
        let stmt = s.stmt.as_ptr();
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

impl Columns for RawRow<'_> {
    fn get<'r, T: FromColumn<'r>>(&'r self, name: &str) -> Result<T, StoreError> {
        T::from_cell(name, self.cell(name)?)
    }
}
