//! The machinery behind every Watch RPC: send the current objects as ADDED, then turn change
//! events into ADDED / MODIFIED / DELETED messages. An object leaving the selection reads as
//! DELETED; a lagging subscription re-lists and sends the difference, so nothing is missed.

use std::{collections::HashMap, future::Future, pin::Pin, sync::Arc};

use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use weft_proto::v1::EventType;

use super::ApiError;
use crate::reconcile::{Event, Key};

/// A boxed future, for the loaders.
pub type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Loads every selected object as (id, message).
pub type ListFn<P> = Arc<dyn Fn() -> BoxFut<Result<Vec<(String, P)>, ApiError>> + Send + Sync>;
/// Loads one object; None when it is gone or not selected.
pub type GetFn<P> = Arc<dyn Fn(String) -> BoxFut<Result<Option<P>, ApiError>> + Send + Sync>;

/// What a watch watches.
pub struct Source<P> {
    /// The id of the object an event is about, if it is of this kind.
    pub id_of: fn(&Key) -> Option<&str>,
    /// Lists the selected objects.
    pub list: ListFn<P>,
    /// Loads one selected object.
    pub get: GetFn<P>,
}

/// Starts a watch; `rx` must be subscribed before this is called.
pub fn spawn<P, R>(
    src: Source<P>,
    mut rx: broadcast::Receiver<Event>,
    wrap: fn(EventType, P) -> R,
) -> ReceiverStream<Result<R, Status>>
where
    P: Clone + PartialEq + Send + Sync + 'static,
    R: Send + 'static,
{
    let (tx, out) = mpsc::channel(256);
    tokio::spawn(async move {
        let mut known: HashMap<String, P> = HashMap::new();
        let send = |t: EventType, p: P| {
            let tx = tx.clone();
            async move { tx.send(Ok(wrap(t, p))).await.is_ok() }
        };
        if !resync(&src, &mut known, &send).await {
            return;
        }
        loop {
            let ev = tokio::select! {
                ev = rx.recv() => ev,
                _ = tx.closed() => return,
            };
            let alive = match ev {
                Ok(ev) => match (src.id_of)(&ev.key) {
                    Some(id) => {
                        let id = id.to_string();
                        let now = if ev.deleted {
                            Ok(None)
                        } else {
                            (src.get)(id.clone()).await
                        };
                        match now {
                            Ok(now) => update(&mut known, id, now, &send).await,
                            Err(e) => {
                                let _ = tx.send(Err(e.into())).await;
                                false
                            }
                        }
                    }
                    None => true,
                },
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    resync(&src, &mut known, &send).await
                }
                Err(broadcast::error::RecvError::Closed) => false,
            };
            if !alive {
                return;
            }
        }
    });
    ReceiverStream::new(out)
}

async fn update<P, F, Fut>(
    known: &mut HashMap<String, P>,
    id: String,
    now: Option<P>,
    send: &F,
) -> bool
where
    P: Clone + PartialEq,
    F: Fn(EventType, P) -> Fut,
    Fut: Future<Output = bool>,
{
    match (known.get(&id), now) {
        (None, None) => true,
        (Some(_), None) => {
            let last = known.remove(&id).expect("present");
            send(EventType::Deleted, last).await
        }
        (None, Some(p)) => {
            known.insert(id, p.clone());
            send(EventType::Added, p).await
        }
        (Some(old), Some(p)) if *old == p => true,
        (Some(_), Some(p)) => {
            known.insert(id, p.clone());
            send(EventType::Modified, p).await
        }
    }
}

async fn resync<P, F, Fut>(src: &Source<P>, known: &mut HashMap<String, P>, send: &F) -> bool
where
    P: Clone + PartialEq,
    F: Fn(EventType, P) -> Fut,
    Fut: Future<Output = bool>,
{
    let list = match (src.list)().await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "watch could not list");
            return false;
        }
    };
    let mut seen = std::collections::HashSet::new();
    for (id, p) in list {
        seen.insert(id.clone());
        if !update(known, id, Some(p), send).await {
            return false;
        }
    }
    let gone: Vec<String> = known
        .keys()
        .filter(|k| !seen.contains(*k))
        .cloned()
        .collect();
    for id in gone {
        if !update(known, id, None, send).await {
            return false;
        }
    }
    true
}
