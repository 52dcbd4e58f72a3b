//! Support for unit tests that must run in a process of their own.
//!
//! `cargo test` runs a binary's tests on threads of one process, and some state is the
//! process's, not a test's: SQLite's page caches, for one, share one LRU list among every
//! connection of the process (the bundled build defines `SQLITE_ENABLE_MEMORY_MANAGEMENT`),
//! so a test that measures one connection's cache sees other tests' connections take its
//! pages or give it theirs. (nextest already runs each test in a process of its own; this
//! makes such a test right under both.)

/// Set in the environment of the process [`in_own_process`] starts.
const ALONE: &str = "WEFT_TEST_IN_OWN_PROCESS";

/// The calling test, `module::test` (`module_path!()` and the test's name), again in a process
/// of its own: this binary with only that test selected, on one thread. Returns true in that
/// process, where the test goes on with its body; in the calling process it returns false
/// once that run passed, and panics with its output when it failed or ran no test (a name
/// that selects nothing is a failure, not a pass).
pub(crate) fn in_own_process(module: &str, test: &str) -> bool {
    if std::env::var_os(ALONE).is_some() {
        return true;
    }
    // libtest names a test by its path without the crate's name.
    let path = match module.split_once("::") {
        Some((_crate, rest)) => format!("{rest}::{test}"),
        None => test.to_owned(),
    };
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = std::process::Command::new(exe)
        .args([path.as_str(), "--exact", "--test-threads=1", "--nocapture"])
        .env(ALONE, "1")
        .output()
        .expect("start the test binary again");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{path}, in a process of its own, failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    false
}

/// `alone!(test_name)`: [`in_own_process`] for the test of this name in the calling module.
macro_rules! alone {
    ($test:ident) => {
        $crate::testing::in_own_process(module_path!(), stringify!($test))
    };
}
pub(crate) use alone;

#[cfg(test)]
mod tests {
    /// In its own process the body runs; the calling process sees it pass.
    #[test]
    fn a_test_runs_again_in_a_process_of_its_own() {
        if !alone!(a_test_runs_again_in_a_process_of_its_own) {
            return;
        }
        assert!(std::env::var_os(super::ALONE).is_some());
    }

    /// A name that selects no test is a failure.
    #[test]
    #[should_panic(expected = "failed")]
    fn a_name_that_selects_nothing_fails() {
        if std::env::var_os(super::ALONE).is_some() {
            return;
        }
        super::in_own_process(module_path!(), "no_such_test");
    }

    /// A failing body fails the calling test.
    #[test]
    #[should_panic(expected = "in a process of its own, failed")]
    fn a_failure_in_the_own_process_fails_the_test() {
        if !alone!(a_failure_in_the_own_process_fails_the_test) {
            return;
        }
        panic!("as it should");
    }
}
