//! The one source behind every Watch, generic over the kind.
//!
//! A watch starts either *fresh* (subscribe, then list everything at that revision) or
//! *resumed* after a revision the client saw (subscribe, and get the events since it from the
//! event log; TooOld when the log no longer reaches back that far, or the revision is from
//! before a restart). [`Start`] makes that choice; [`WatchSource`] then loads what each event
//! is about, through the kind's [`Kind`] impl and the watch's [`Filter`]. The adapter turns the
//! result into a stream of ADDED / MODIFIED / DELETED messages.

use std::{marker::PhantomData, sync::Arc};

use tokio::sync::broadcast;

use super::{Filter, Kind, Service, ServiceError, ServiceResult};
use crate::reconcile::{Event, Key};

/// Where a watch starts.
pub enum Start {
    /// With the current objects, listed at this revision.
    Fresh(broadcast::Receiver<Event>, u64),
    /// After a revision: with the events since.
    Resume(broadcast::Receiver<Event>, Vec<Event>),
}

/// What a watch of kind `K` watches: the objects `filter` selects.
pub struct WatchSource<K> {
    svc: Service,
    filter: Arc<Filter>,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for WatchSource<K> {
    fn clone(&self) -> Self {
        Self {
            svc: self.svc.clone(),
            filter: self.filter.clone(),
            kind: PhantomData,
        }
    }
}

impl<K: Kind> WatchSource<K> {
    /// The id of the object `key` names, if it is of this kind.
    pub fn id_of(key: &Key) -> Option<&str> {
        K::id_of(key)
    }

    /// Every selected object, with its id.
    pub async fn list(&self) -> ServiceResult<Vec<(String, K::View)>> {
        self.svc.list_by_id::<K>(&self.filter).await
    }

    /// Object `id`, if it exists and is selected.
    pub async fn get(&self, id: &str) -> ServiceResult<Option<K::View>> {
        self.svc.selected::<K>(id, &self.filter).await
    }
}

impl Service {
    /// A watch source for the objects of kind `K` that `filter` selects.
    pub fn watch<K: Kind>(&self, filter: Filter) -> WatchSource<K> {
        WatchSource {
            svc: self.clone(),
            filter: Arc::new(filter),
            kind: PhantomData,
        }
    }

    /// Subscribes for a watch that starts after `since_revision` (0: a fresh watch).
    pub fn watch_start(&self, since_revision: u64) -> ServiceResult<Start> {
        let events = self.ctl.events();
        if since_revision == 0 {
            let (rx, at) = events.subscribe_at();
            return Ok(Start::Fresh(rx, at));
        }
        let (rx, missed) = events
            .resume(since_revision)
            .map_err(|e| ServiceError::FailedPrecondition(e.to_string()))?;
        Ok(Start::Resume(rx, missed))
    }
}
