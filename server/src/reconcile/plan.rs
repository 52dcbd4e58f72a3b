//! Dry runs: the reconcile code takes a [`Plan`]; a live plan lets every kernel write through,
//! a dry plan records each write as a [`PlannedChange`] instead and the write is skipped. So a
//! dry run goes through exactly the code a real call would (the same reads, the same diff) and
//! lists what it would change, writing nothing.

use std::sync::{Arc, Mutex};

use crate::model::PlannedChange;

/// Live (writes happen) or dry (writes are recorded); cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Plan(Option<Arc<Mutex<Vec<PlannedChange>>>>);

impl Plan {
    /// Writes happen.
    pub fn live() -> Self {
        Self(None)
    }

    /// Writes are recorded, not made.
    pub fn dry() -> Self {
        Self(Some(Arc::default()))
    }

    /// True for a dry run.
    pub fn is_dry(&self) -> bool {
        self.0.is_some()
    }

    /// Records a change when dry; returns true when the caller must then skip the write.
    pub fn record(
        &self,
        action: &'static str,
        kind: &'static str,
        target: impl Into<String>,
        detail: impl Into<String>,
    ) -> bool {
        match &self.0 {
            None => false,
            Some(v) => {
                v.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(PlannedChange {
                        action,
                        kind,
                        target: target.into(),
                        detail: detail.into(),
                    });
                true
            }
        }
    }

    /// The recorded changes.
    pub fn changes(&self) -> Vec<PlannedChange> {
        self.0
            .as_ref()
            .map(|v| v.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .unwrap_or_default()
    }
}
