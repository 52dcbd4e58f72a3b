//! The one error type of the core service. Every failure a flow can end with is one of these
//! variants, named after what the client must do about it (fix the input, create the missing
//! object first, pick another name, wait, retry); `api/` maps each variant to exactly one gRPC
//! code in a single `From` impl, so a variant *is* its code and its message is what the client
//! reads. Store and planner errors are folded in here, once, by the `From` impls below.

use crate::{
    model::{Invalid, Refusal},
    reconcile::ReconcileError,
    store::StoreError,
};

/// Why a service call failed. The message is shown to the client as it is.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Bad input: the message names the field and what to fix (INVALID_ARGUMENT).
    #[error("{0}")]
    InvalidArgument(String),
    /// A named object does not exist (NOT_FOUND).
    #[error("{0}")]
    NotFound(String),
    /// The object, or something in its way (an interface, a netns file), exists (ALREADY_EXISTS).
    #[error("{0}")]
    AlreadyExists(String),
    /// The request conflicts with the current state (FAILED_PRECONDITION).
    #[error("{0}")]
    FailedPrecondition(String),
    /// No address, subnet or port is left (RESOURCE_EXHAUSTED).
    #[error("{0}")]
    ResourceExhausted(String),
    /// A concurrent call with the same request id is in flight; retrying gets its answer
    /// (ABORTED).
    #[error("{0}")]
    Aborted(String),
    /// The kernel could not be read to answer (UNAVAILABLE).
    #[error("{0}")]
    Unavailable(String),
    /// weftd itself failed: its database could not be used (INTERNAL).
    #[error("{0}")]
    Internal(String),
}

/// Shorthand for a service result.
pub type ServiceResult<T> = Result<T, ServiceError>;

impl ServiceError {
    /// True for the failures a racing twin with the same request id causes: the object (or
    /// the request record) exists already. The create helper runs once more on these.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            ServiceError::AlreadyExists(_) | ServiceError::Aborted(_)
        )
    }
}

/// A validation failure of the model: "field: problem".
impl From<Invalid> for ServiceError {
    fn from(e: Invalid) -> Self {
        ServiceError::InvalidArgument(e.to_string())
    }
}

/// A refusal of the model's rules keeps its meaning: each variant is one code.
impl From<Refusal> for ServiceError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::NotFound(m) => ServiceError::NotFound(m),
            Refusal::FailedPrecondition(m) => ServiceError::FailedPrecondition(m),
            Refusal::AlreadyExists(m) => ServiceError::AlreadyExists(m),
            Refusal::Invalid(m) => ServiceError::InvalidArgument(m),
            Refusal::Exhausted(m) => ServiceError::ResourceExhausted(m),
        }
    }
}

/// Store errors keep their meaning; a broken database is logged here, once, and reported as
/// INTERNAL without details the client cannot act on beyond the cause.
impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => ServiceError::NotFound(m),
            StoreError::AlreadyExists(m) => ServiceError::AlreadyExists(m),
            StoreError::FailedPrecondition(m) => ServiceError::FailedPrecondition(m),
            StoreError::Exhausted(m) => ServiceError::ResourceExhausted(m),
            StoreError::Invalid(m) => ServiceError::InvalidArgument(m),
            e @ StoreError::DuplicateRequest(_) => {
                ServiceError::Aborted(format!("{e}; retry the call to get its answer"))
            }
            e => {
                tracing::error!(error = %e, "store failure");
                ServiceError::Internal(format!("weftd could not use its database: {e}"))
            }
        }
    }
}

/// A dry run's planner could not read what it needed.
impl From<ReconcileError> for ServiceError {
    fn from(e: ReconcileError) -> Self {
        ServiceError::FailedPrecondition(format!("cannot plan the change: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_keep_their_meaning() {
        let e: ServiceError = StoreError::AlreadyExists("x".into()).into();
        assert!(matches!(e, ServiceError::AlreadyExists(m) if m == "x"));
        let e: ServiceError = StoreError::FailedPrecondition("x".into()).into();
        assert!(matches!(e, ServiceError::FailedPrecondition(_)));
        let e: ServiceError = StoreError::Exhausted("x".into()).into();
        assert!(matches!(e, ServiceError::ResourceExhausted(_)));
        let e: ServiceError = StoreError::DuplicateRequest("r1".into()).into();
        assert!(e.is_conflict());
        assert_eq!(
            e.to_string(),
            "request id \"r1\" is being used by a concurrent call; retry the call to get its answer"
        );
        let e: ServiceError = StoreError::Corrupt("bad".into()).into();
        assert_eq!(
            e.to_string(),
            "weftd could not use its database: stored data is damaged: bad"
        );
    }

    #[test]
    fn invalid_input_names_its_field() {
        let e: ServiceError = Invalid::new("link.name", "too long").into();
        assert!(matches!(&e, ServiceError::InvalidArgument(_)));
        assert_eq!(e.to_string(), "link.name: too long");
        assert!(!e.is_conflict());
    }
}
