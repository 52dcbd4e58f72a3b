//! Request ids: the record that makes a retried Create or Connect idempotent. The record is
//! written in the same transaction as the object it made, so either both exist or neither.
//! Records older than a day are dropped as new ones arrive.

use super::{Store, StoreError, now_ms, raw::Raw};

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

/// Records `r` for `object_id` inside the caller's transaction on `raw`. A concurrent
/// request with the same id makes this fail with [`StoreError::DuplicateRequest`].
pub(super) fn record(
    raw: Raw<'_>,
    r: Option<&RequestRecord>,
    object_id: &str,
) -> Result<(), StoreError> {
    let Some(r) = r else { return Ok(()) };
    let now = now_ms();
    raw.execute(
        "DELETE FROM requests WHERE created_at < ?",
        &[(now - REQUEST_TTL_MS).into()],
    )?;
    let res = raw.execute(
        "INSERT INTO requests (request_id, method, fingerprint, object_id, created_at) \
         VALUES (?, ?, ?, ?, ?)",
        &[
            (&r.id).into(),
            r.method.into(),
            (&r.fingerprint).into(),
            object_id.into(),
            now.into(),
        ],
    );
    match res {
        Ok(_) => Ok(()),
        Err(f) if f.is_unique_violation() => Err(StoreError::DuplicateRequest(r.id.clone())),
        Err(f) => Err(f.into()),
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
        .fetch_optional(self.reads().await)
        .await?;
        Ok(row.map(|(method, fingerprint, object_id)| PastRequest {
            method,
            fingerprint,
            object_id,
        }))
    }
}
