//! Request ids: the record that makes a retried Create or Connect idempotent. The record is
//! written in the same transaction as the object it made, so either both exist or neither.
//! Records older than a day are dropped as new ones arrive.

use sqlx::SqliteConnection;

use super::{Store, StoreError, is_unique_violation, now_ms};

/// How long a request id is remembered.
pub const REQUEST_TTL_MS: i64 = 24 * 3600 * 1000;

/// A client request id with what identifies the request it came with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    /// The client's id.
    pub id: String,
    /// The RPC ("CreateLink").
    pub method: &'static str,
    /// A fingerprint of the request body without the id, to refuse reuse for another request.
    pub fingerprint: String,
}

/// What an earlier request with the same id made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PastRequest {
    /// The RPC.
    pub method: String,
    /// The body's fingerprint.
    pub fingerprint: String,
    /// The uid of the object it made.
    pub object_id: String,
}

/// Records `r` for `object_id` inside the caller's transaction. A concurrent request with the
/// same id makes this fail with [`StoreError::DuplicateRequest`].
pub(crate) async fn record(
    tx: &mut SqliteConnection,
    r: Option<&RequestRecord>,
    object_id: &str,
) -> Result<(), StoreError> {
    let Some(r) = r else { return Ok(()) };
    let now = now_ms();
    sqlx::query("DELETE FROM requests WHERE created_at < ?")
        .bind(now - REQUEST_TTL_MS)
        .execute(&mut *tx)
        .await?;
    let res = sqlx::query("INSERT INTO requests (request_id, method, fingerprint, object_id, created_at) VALUES (?, ?, ?, ?, ?)")
        .bind(&r.id)
        .bind(r.method)
        .bind(&r.fingerprint)
        .bind(object_id)
        .bind(now)
        .execute(&mut *tx)
        .await;
    match res {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(StoreError::DuplicateRequest(r.id.clone())),
        Err(e) => Err(e.into()),
    }
}

impl Store {
    /// The earlier request with this id, if it is still remembered.
    pub async fn past_request(&self, id: &str) -> Result<Option<PastRequest>, StoreError> {
        let row: Option<(String, String, String)> = sqlx::query_as(
            "SELECT method, fingerprint, object_id FROM requests WHERE request_id = ? AND created_at >= ?",
        )
        .bind(id)
        .bind(now_ms() - REQUEST_TTL_MS)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(method, fingerprint, object_id)| PastRequest {
            method,
            fingerprint,
            object_id,
        }))
    }
}
