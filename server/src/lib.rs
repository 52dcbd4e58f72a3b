//! weftd: weft's daemon. Desired state arrives through the gRPC services in [`api`], a thin
//! adapter over the core flows of [`service`] (validate, check, persist, enqueue, wait); it is
//! recorded in SQLite by [`store`], and the [`reconcile`] worker pool makes the kernel (through
//! [`kernel`]) match it. [`model`] holds the pure domain types all of them share; [`server`]
//! wires them together with the [`config`], after [`lock`] made sure no other weftd manages the
//! same database or host namespace.

// No unwrap/expect outside tests (clippy.toml allows them in tests): a daemon answers errors.
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod access;
pub mod admission;
pub mod alloc;
pub mod any_authority;
pub mod api;
pub mod busy;
pub mod config;
mod delegate;
pub mod dns;
pub mod kernel;
pub mod layer;
pub mod listen;
pub mod lock;
pub mod logging;
pub mod metrics;
pub mod model;
mod nice;
pub mod notify;
pub mod reconcile;
pub mod reload;
pub mod server;
pub mod service;
pub mod store;
#[cfg(test)]
mod testing;
