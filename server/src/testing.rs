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
    /// Where the body of [`the_body_runs_in_a_process_of_its_own`] leaves word that it ran:
    /// a file named after the calling process, which the body finds as its parent.
    fn mark(pid: u32) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("weft-alone-ran-{pid}"))
    }

    /// The body runs, and in another process: it leaves a file named after its parent.
    #[test]
    fn the_body_runs_in_a_process_of_its_own() {
        if !alone!(the_body_runs_in_a_process_of_its_own) {
            let mark = mark(std::process::id());
            let ran = mark.exists();
            let _ = std::fs::remove_file(&mark);
            assert!(ran, "the body did not run");
            return;
        }
        assert!(std::env::var_os(super::ALONE).is_some());
        std::fs::write(mark(std::os::unix::process::parent_id()), b"").unwrap();
    }

    /// The test whose body fails for [`a_failing_body_fails_the_calling_test`]; in the calling
    /// process it does nothing.
    #[test]
    fn a_body_that_fails() {
        if std::env::var_os(super::ALONE).is_some() {
            panic!("the failing body's own words");
        }
    }

    /// A failing body fails the calling test, with the body's output in its message.
    #[test]
    fn a_failing_body_fails_the_calling_test() {
        if std::env::var_os(super::ALONE).is_some() {
            return;
        }
        let failed =
            std::panic::catch_unwind(|| super::in_own_process(module_path!(), "a_body_that_fails"))
                .expect_err("the calling test failed");
        let message = failed.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            message.contains("the failing body's own words"),
            "{message}"
        );
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
}
