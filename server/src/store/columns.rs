//! A row's columns by name, as the kinds' decoders ([`super::Kind::decode`]) read them: from
//! a row sqlx fetched (every read through the pool), or in place from a statement the
//! background reader steps itself (store/raw.rs's `RawRow`).
//!
//! The background reader lists every row of the four kinds at each resync pass: 20,000 rows
//! of 13-15 columns at 10,000 endpoints. Through sqlx each value is copied into an owned
//! row (`sqlite3_value_dup`, a `malloc` each) and each row is handed between two threads;
//! that was over half of an idle weftd's CPU. Stepped in place, a decoder reads each
//! column's text where SQLite holds it.

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
