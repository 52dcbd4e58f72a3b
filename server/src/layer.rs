//! A tower layer that hands every service it wraps one shared value.
//!
//! The access check (`access.rs`, the [`crate::access::Policy`]) and the request span
//! (`logging.rs`, the gRPC counters) are both "the inner service plus an `Arc` of something";
//! each implements `Service` for its own [`Shared<S, T>`], and this file holds the wrapping
//! they would otherwise each write out.

use std::sync::Arc;

use tower::Layer;

/// Wraps each service in a [`Shared`] holding a clone of one `Arc<T>`.
#[derive(Debug)]
pub struct ShareLayer<T> {
    value: Arc<T>,
}

impl<T> ShareLayer<T> {
    /// A layer sharing `value` with every service it wraps.
    pub fn new(value: Arc<T>) -> Self {
        Self { value }
    }
}

impl<T> Clone for ShareLayer<T> {
    fn clone(&self) -> Self {
        Self::new(self.value.clone())
    }
}

impl<S, T> Layer<S> for ShareLayer<T> {
    type Service = Shared<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        Shared {
            inner,
            value: self.value.clone(),
        }
    }
}

/// A service `S` with the value its [`ShareLayer`] shares.
#[derive(Debug)]
pub struct Shared<S, T> {
    /// The wrapped service.
    pub(crate) inner: S,
    /// The shared value.
    pub(crate) value: Arc<T>,
}

impl<S: Clone, T> Clone for Shared<S, T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            value: self.value.clone(),
        }
    }
}
