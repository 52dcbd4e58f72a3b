//! Fault hooks for the crash tests, compiled into debug builds only: they let a test stop
//! weftd at an exact point instead of hoping a `kill -9` lands there. Each aborts (SIGABRT:
//! no destructor runs, no socket is removed, as after `kill -9`) when its variable names one
//! of the interfaces just made. Release builds never read the variables.
//!
//! - `WEFTD_TEST_ABORT_AFTER_CREATE=<name>`: right after the kernel created an interface pair
//!   or bridge one of whose names is `<name>`, before anything marks it.
//! - `WEFTD_TEST_ABORT_AFTER_PREPARE=<name>`: right after a Connect made its endpoint's veth
//!   (one of whose names is `<name>`) beside its transaction, before the Connect went on. A
//!   Connect whose transaction fails has not deleted the pair yet there: the crash leaves a
//!   pair no row plans.

/// Called right after a create of interfaces `names` succeeded; aborts the process when the
/// hook names one of them (debug builds only).
pub(super) fn after_create(names: &[&str]) {
    abort_if_named("WEFTD_TEST_ABORT_AFTER_CREATE", names, "creating");
}

/// Called right after a Connect prepared its veth `names`; aborts the process when the hook
/// names one of them (debug builds only).
pub(super) fn after_prepare(names: &[&str]) {
    abort_if_named("WEFTD_TEST_ABORT_AFTER_PREPARE", names, "preparing");
}

/// Aborts when variable `var` names one of `names` (debug builds only).
fn abort_if_named(var: &str, names: &[&str], what: &str) {
    #[cfg(debug_assertions)]
    if let Some(target) = std::env::var_os(var)
        && names.iter().any(|n| target == *n)
    {
        eprintln!("{var}: aborting right after {what} {names:?}");
        std::process::abort();
    }
    #[cfg(not(debug_assertions))]
    let _ = (var, names, what);
}
