//! WAL checkpoints off the request path.
//!
//! In WAL mode a commit appends its pages to the `-wal` file; a checkpoint copies them back
//! into the database file and `fsync`s it. SQLite runs one inside the commit that takes the
//! WAL past 1,000 pages (`wal_autocheckpoint`), so about one commit in 140 (a Connect commits
//! twice: its transaction, its status) paid 5-13 ms for it, a Connect's p99. Here the
//! writer's connection has a WAL hook of its own ([`install`]) in place of SQLite's: past
//! [`WAKE_AT`] pages a commit only wakes a thread of its own (`weft-checkpoint`, nice
//! [`NICE`]), which runs a `PASSIVE` checkpoint on a connection of its own; it waits for no
//! lock and blocks no commit (SQLite's WAL lets commits go on while it copies; a reader may
//! retry for a moment for a read slot). Only past [`WRITER_AUTOCHECKPOINT`] pages (the thread
//! fell far behind, or died) does the commit checkpoint itself, as SQLite would.
//!
//! Not on a timer: a checkpoint that empties the WAL makes the next commit rewind it, and
//! SQLite then `fsync`s the WAL's header (`synchronous = NORMAL`), so checkpointing every
//! second made the first call after a quiet second 0.7-0.8 ms slower (BENCHMARKS.md,
//! "Session 18"). At SQLite's own threshold the rewinds are as rare as they were.
//!
//! Durability is unchanged: a commit is in the WAL (in the kernel's page cache) before it is
//! answered, whoever checkpoints it later. The thread ends when the store is closed or its
//! last handle dropped, closing its connection; it talks to SQLite directly (a plain
//! blocking thread needs no runtime).

use std::{
    ffi::{CString, c_char, c_int, c_void},
    path::Path,
    ptr::NonNull,
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
};

use libsqlite3_sys as ffi;

/// WAL pages after a commit from which the writer wakes the checkpointer (SQLite's default
/// checkpoint threshold).
pub(super) const WAKE_AT: c_int = 1_000;
/// WAL pages after a commit from which the committing connection checkpoints itself: only
/// if the checkpointer fell this far behind.
pub(super) const WRITER_AUTOCHECKPOINT: c_int = 20_000;
/// The checkpointer's nice value: below the API's threads, but not the lowest priority
/// (`SCHED_IDLE`): it takes SQLite's checkpoint lock, and must not sit on it unscheduled
/// behind a busy host.
const NICE: i32 = 10;

/// What the writer's WAL hook and the checkpointer's thread share.
#[derive(Debug, Default)]
pub(super) struct Wake {
    /// (a checkpoint is wanted, the thread must stop).
    state: Mutex<(bool, bool)>,
    cv: Condvar,
    /// Checkpoints the thread ran.
    pub(super) done: AtomicU64,
}

impl Wake {
    fn lock(&self) -> std::sync::MutexGuard<'_, (bool, bool)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks the thread for a checkpoint (never blocks on it: called inside a commit).
    fn want(&self) {
        self.lock().0 = true;
        self.cv.notify_one();
    }

    fn stop(&self) {
        self.lock().1 = true;
        self.cv.notify_one();
    }

    /// Waits for a request; false once stopped.
    fn wait(&self) -> bool {
        let mut g = self.lock();
        loop {
            if g.1 {
                return false;
            }
            if g.0 {
                g.0 = false;
                return true;
            }
            g = self.cv.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// The checkpointer of one store: stops its thread when closed or dropped.
#[derive(Debug)]
pub(super) struct Checkpointer {
    /// Shared with the writer's WAL hook and the thread.
    pub(super) wake: Arc<Wake>,
    /// The thread, joined by [`Checkpointer::close`].
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Checkpointer {
    /// Starts the thread for the database at `path`. Best effort: without a thread (or a
    /// connection) the writer's commits still checkpoint past [`WRITER_AUTOCHECKPOINT`]
    /// pages.
    pub(super) fn start(path: &Path) -> Checkpointer {
        let wake = Arc::new(Wake::default());
        let none = |wake| Checkpointer {
            wake,
            thread: Mutex::new(None),
        };
        let Some(path) = path.to_str().and_then(|p| CString::new(p).ok()) else {
            tracing::warn!(path = %path.display(), "no WAL checkpointer: the path is not UTF-8");
            return none(wake);
        };
        let w = wake.clone();
        let spawned = std::thread::Builder::new()
            .name("weft-checkpoint".into())
            .spawn(move || run(&path, &w));
        match spawned {
            Ok(thread) => Checkpointer {
                wake,
                thread: Mutex::new(Some(thread)),
            },
            Err(e) => {
                tracing::warn!(error = %e, "no WAL checkpointer thread");
                none(wake)
            }
        }
    }

    /// True once [`Checkpointer::close`] joined the thread (or there was none).
    #[cfg(test)]
    pub(super) fn stopped(&self) -> bool {
        self.thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }

    /// Stops the thread and waits for it to close its connection.
    pub(super) async fn close(&self) {
        self.wake.stop();
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = thread {
            let _ = crate::nice::spawn_blocking(move || t.join()).await;
        }
    }
}

impl Drop for Checkpointer {
    /// Stops the thread and waits for it (it exits at once): its connection is closed
    /// before the store's others, so it never races them to be the last one, the one that
    /// removes the WAL file.
    fn drop(&mut self) {
        self.wake.stop();
        let thread = self
            .thread
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

/// Puts the WAL hook on the writer's connection `db`, in place of SQLite's own
/// (`wal_autocheckpoint`). The hook holds a reference to `wake` that is never given back,
/// so the `Wake` (a few dozen bytes per store opened) lives as long as the process: no
/// owner on this side can know when the connection has made its last commit, because
/// dropping a sqlx connection does not close it, its thread still runs the commands already
/// sent to it (a commit whose caller was cancelled, say), and each commit may call the hook.
///
/// # Safety
/// `db` is an open connection the caller holds.
#[allow(unsafe_code)]
pub(super) unsafe fn install(db: NonNull<ffi::sqlite3>, wake: &Arc<Wake>) {
    let context = Arc::into_raw(Arc::clone(wake));
    // SAFETY: the caller's promise on `db`; `context` points at a `Wake` that is never
    // freed (its count is never given back), and `hook` only reads it.
    unsafe {
        ffi::sqlite3_wal_hook(db.as_ptr(), Some(hook), context.cast::<c_void>().cast_mut());
    }
}

/// SQLite's call after each commit on the writer, with the WAL's size in pages.
#[allow(unsafe_code)]
unsafe extern "C" fn hook(
    wake: *mut c_void,
    db: *mut ffi::sqlite3,
    name: *const c_char,
    pages: c_int,
) -> c_int {
    if pages >= WRITER_AUTOCHECKPOINT {
        // SAFETY: SQLite allows a checkpoint from the hook, on the connection it passes.
        unsafe {
            ffi::sqlite3_wal_checkpoint_v2(
                db,
                name,
                ffi::SQLITE_CHECKPOINT_PASSIVE,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
        }
    } else if pages >= WAKE_AT {
        // SAFETY: `install` passed a `Wake` whose reference it never gives back.
        let wake = unsafe { &*wake.cast::<Wake>() };
        wake.want();
    }
    ffi::SQLITE_OK
}

/// The thread: a connection of its own, a `PASSIVE` checkpoint each time it is asked, until
/// stopped.
fn run(path: &CString, wake: &Wake) {
    // SAFETY: setpriority takes three integers and changes only this thread's nice value.
    #[allow(unsafe_code)]
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, NICE);
    }
    let Some(db) = Db::open(path) else {
        return;
    };
    while wake.wait() {
        db.checkpoint();
        wake.done.fetch_add(1, Relaxed);
    }
}

/// A connection of the checkpointer's, closed when dropped.
struct Db(NonNull<ffi::sqlite3>);

impl Db {
    /// Opens the database at `path` for reading and writing (never creating it).
    #[allow(unsafe_code)]
    fn open(path: &CString) -> Option<Db> {
        let mut db = std::ptr::null_mut();
        // SAFETY: `path` is NUL-terminated; SQLite writes the handle to `db`, which must be
        // closed whatever the result.
        let rc = unsafe {
            ffi::sqlite3_open_v2(
                path.as_ptr(),
                &mut db,
                ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_NOMUTEX,
                std::ptr::null(),
            )
        };
        let db = Db(NonNull::new(db)?);
        if rc != ffi::SQLITE_OK {
            tracing::warn!(code = rc, "no WAL checkpointer: cannot open the database");
            return None;
        }
        db.read_schema();
        Some(db)
    }

    /// Reads the schema: a connection opens the database's WAL only when it first reads,
    /// and until then a checkpoint on it does nothing (and says so: -1 frames).
    #[allow(unsafe_code)]
    fn read_schema(&self) {
        let sql = c"SELECT count(*) FROM sqlite_schema";
        // SAFETY: an open connection used by this thread only; a NUL-terminated statement,
        // no callback.
        unsafe {
            ffi::sqlite3_exec(
                self.0.as_ptr(),
                sql.as_ptr(),
                None,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
        }
    }

    /// One `PASSIVE` checkpoint: as much of the WAL as no reader still needs, without
    /// waiting for any lock. Failures (SQLITE_BUSY: another checkpoint runs) are left to
    /// the next one.
    #[allow(unsafe_code)]
    fn checkpoint(&self) {
        let (mut log, mut done) = (0, 0);
        // SAFETY: an open connection used by this thread only; NULL names every database.
        let rc = unsafe {
            ffi::sqlite3_wal_checkpoint_v2(
                self.0.as_ptr(),
                std::ptr::null(),
                ffi::SQLITE_CHECKPOINT_PASSIVE,
                &mut log,
                &mut done,
            )
        };
        if rc != ffi::SQLITE_OK && rc != ffi::SQLITE_BUSY {
            tracing::debug!(code = rc, "WAL checkpoint failed");
        } else if log < 0 {
            // The WAL was not open on this connection: open it, and try again.
            self.read_schema();
            // SAFETY: as above.
            unsafe {
                ffi::sqlite3_wal_checkpoint_v2(
                    self.0.as_ptr(),
                    std::ptr::null(),
                    ffi::SQLITE_CHECKPOINT_PASSIVE,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                );
            }
        }
    }
}

impl Drop for Db {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: the handle is open and has no statements (checkpoints prepare none).
        unsafe {
            ffi::sqlite3_close(self.0.as_ptr());
        }
    }
}
