//! A fault hook for the crash tests, compiled into debug builds only: it lets a test stop
//! weftd at an exact point instead of hoping a `kill -9` lands there.
//!
//! `WEFTD_TEST_ABORT_AFTER_CREATE=<name>`: weftd aborts (SIGABRT: no destructor runs, no
//! socket is removed, as after `kill -9`) right after the kernel created an interface pair or
//! bridge one of whose names is `<name>`, before anything marks it. Release builds never read
//! the variable.

/// The variable the hook reads.
#[cfg(debug_assertions)]
const ABORT_AFTER_CREATE: &str = "WEFTD_TEST_ABORT_AFTER_CREATE";

/// Called right after a create of interfaces `names` succeeded; aborts the process when the
/// hook names one of them (debug builds only).
pub(super) fn after_create(names: &[&str]) {
    #[cfg(debug_assertions)]
    if let Some(target) = std::env::var_os(ABORT_AFTER_CREATE)
        && names.iter().any(|n| target == *n)
    {
        eprintln!("{ABORT_AFTER_CREATE}: aborting right after creating {names:?}");
        std::process::abort();
    }
    #[cfg(not(debug_assertions))]
    let _ = names;
}
