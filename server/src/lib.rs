//! weftd
