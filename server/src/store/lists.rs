//! Every row of the four kinds in one read, for the bulk check (reconcile/check.rs), on a
//! thread and a connection of its own at the lowest priority.
//!
//! At 10,000 endpoints that list is the largest part of an idle resync pass (20,000 rows
//! every 30 s). Through the pool it ran at normal priority, on SQLite's worker thread and a
//! tokio worker, beside a Connect arriving during the pass. Here it runs on a thread at nice
//! 19 over a connection that thread opened: sqlx starts a connection's SQLite thread from the
//! thread that connects, and a thread starts with its creator's nice value, so what SQLite
//! does there (the transaction's begin and end) is at nice 19 too. The statements themselves
//! are stepped on the reading thread through sqlx's locked handle, each value decoded where
//! SQLite holds it (store/columns.rs): through sqlx every value was copied into an owned row
//! and every row passed between two threads, over half of an idle weftd's CPU at 10,000. The
//! connection is kept for the next pass (one per store; a failed read drops it and the next
//! one opens another), with a small page cache ([`CACHE_KIB`]): it reads every table through
//! once a pass, which a cache of SQLite's default 2 MiB would hold as resident memory for
//! nothing.

use std::sync::{Arc, Mutex};

use sqlx::{Connection, SqliteConnection, sqlite::SqliteConnectOptions};

use crate::busy::GiveWay;

use super::{EndpointRow, Kind, LinkRow, NamespaceRow, NetworkRow, Store, StoreError, raw::Raw};

/// The background connection's page cache, KiB (SQLite's default is 2,000). Its share of
/// the process's bound: past it, the pass's read takes the least recently used pages of the
/// other connections too (see `POOL_CACHE_KIB` in store/mod.rs).
const CACHE_KIB: u32 = 256;

/// Every row of the four kinds, read in one transaction (a consistent snapshot).
#[derive(Debug, Default)]
pub struct AllRows {
    /// Every network, in listing order.
    pub networks: Vec<NetworkRow>,
    /// Every namespace.
    pub namespaces: Vec<NamespaceRow>,
    /// Every link.
    pub links: Vec<LinkRow>,
    /// Every endpoint.
    pub endpoints: Vec<EndpointRow>,
}

/// The background reader's connection, kept between reads (None until the first).
#[derive(Clone, Debug, Default)]
pub(super) struct Background(Arc<Mutex<Option<SqliteConnection>>>);

impl Background {
    fn take(&self) -> Option<SqliteConnection> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    fn keep(&self, conn: SqliteConnection) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn);
    }

    /// Closes the kept connection, if any (at shutdown).
    pub(super) async fn close(&self) {
        if let Some(conn) = self.take() {
            let _ = conn.close().await;
        }
    }
}

impl Store {
    /// Every row of the four kinds, read at the lowest priority (see the module doc), giving
    /// way to API calls in flight for up to `give_way` in all (crate::busy; zero: never).
    pub async fn list_all_in_background(
        &self,
        give_way: std::time::Duration,
    ) -> Result<AllRows, StoreError> {
        self.settled().await;
        let slot = self.background.clone();
        let opts = self.opts.clone();
        let handle = tokio::runtime::Handle::current();
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("weft-lists".into())
            .spawn(move || {
                crate::nice::lowest_priority();
                let mut give_way = GiveWay::new(&crate::busy::REQUESTS, give_way);
                let _ = tx.send(handle.block_on(read(&slot, &opts, &mut give_way)));
            })
            .map_err(|e| StoreError::Sqlx(sqlx::Error::Io(e)))?;
        rx.await
            .unwrap_or_else(|_| Err(StoreError::Sqlx(sqlx::Error::WorkerCrashed)))
    }
}

/// The read itself, on the kept connection or a new one (opened from this thread).
async fn read(
    slot: &Background,
    opts: &SqliteConnectOptions,
    give_way: &mut GiveWay,
) -> Result<AllRows, StoreError> {
    let mut conn = match slot.take() {
        Some(c) => c,
        None => {
            let opts = opts.clone().pragma("cache_size", format!("-{CACHE_KIB}"));
            SqliteConnection::connect_with(&opts).await?
        }
    };
    let rows = async {
        let mut tx = conn.begin().await?;
        let rows = {
            let mut handle = tx.lock_handle().await?;
            let db = Raw::new(&mut handle);
            AllRows {
                networks: select_raw(db, give_way)?,
                namespaces: select_raw(db, give_way)?,
                links: select_raw(db, give_way)?,
                endpoints: select_raw(db, give_way)?,
            }
        };
        tx.rollback().await?;
        Ok::<_, StoreError>(rows)
    }
    .await;
    // A failed read drops the connection; the next pass opens another.
    let rows = rows?;
    slot.keep(conn);
    Ok(rows)
}

/// Every row of kind `K` in its listing order, stepped in place on `db` (store/raw.rs).
fn select_raw<K: Kind>(db: Raw<'_>, give_way: &mut GiveWay) -> Result<Vec<K>, StoreError> {
    let sql = format!("{} ORDER BY {}", K::SELECT, K::ORDER);
    let mut stmt = db.prepare(&sql)?;
    let mut out = Vec::new();
    loop {
        // Between rows, not holding one (the read transaction stays open meanwhile).
        give_way.now();
        let Some(row) = stmt.next()? else {
            break;
        };
        out.push(K::decode(&row)?);
    }
    Ok(out)
}
