//! WAL checkpoints off the request path.
//!
//! In WAL mode a commit appends its pages to the `-wal` file; a checkpoint copies them back
//! into the database file and `fsync`s it. SQLite runs one inside the commit that takes the
//! WAL past 1,000 pages (`wal_autocheckpoint`), so with its defaults about one commit in a
//! hundred and fifty (a Connect commits twice: its transaction, its status) paid 5-13 ms
//! for it, a Connect's p99. Here the writer's own commits checkpoint only past
//! [`WRITER_AUTOCHECKPOINT`] pages (a safety net, should this thread fall behind or die),
//! and a thread of its own (`weft-checkpoint`, nice [`NICE`]) runs a `PASSIVE` checkpoint
//! every [`EVERY`] on a connection of its own: it waits for no lock and blocks no commit
//! (SQLite's WAL lets commits go on while it copies; a reader may retry for a moment for a
//! read slot), and with nothing new in the WAL it returns at once without touching the disk. Durability is
//! unchanged: a commit is in the WAL (in the kernel's page cache, `synchronous = NORMAL`)
//! before it is answered, whoever checkpoints it later.
//!
//! The thread ends when the store is closed or its last handle dropped, closing its
//! connection. It talks to SQLite directly (a plain blocking thread needs no runtime).

use std::{
    ffi::CString,
    path::Path,
    ptr::NonNull,
    sync::{Mutex, mpsc},
    time::Duration,
};

use libsqlite3_sys as ffi;

/// Pages the writer's WAL may hold before the writer's own commit checkpoints (SQLite's
/// default is 1,000): only if the checkpointer falls this far behind.
pub(super) const WRITER_AUTOCHECKPOINT: u32 = 20_000;
/// How often the checkpointer runs.
pub(super) const EVERY: Duration = Duration::from_secs(1);
/// The checkpointer's nice value: below the API's threads, but not the lowest priority
/// (`SCHED_IDLE`): it takes SQLite's checkpoint lock, which a writer restarting the WAL
/// may want, and must not sit on it unscheduled behind a busy host.
const NICE: i32 = 10;

/// The checkpointer of one store: stops its thread when closed or dropped.
#[derive(Debug, Default)]
pub(super) struct Checkpointer {
    /// Dropped to stop the thread (it wakes at once).
    stop: Mutex<Option<mpsc::Sender<()>>>,
    /// The thread, joined by [`Checkpointer::close`].
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path` every [`EVERY`]. Best effort: without a
    /// thread (or a connection) the writer's own commits still checkpoint, past
    /// [`WRITER_AUTOCHECKPOINT`] pages.
    pub(super) fn start(path: &Path) -> Checkpointer {
        let (tx, rx) = mpsc::channel::<()>();
        let Some(path) = path.to_str().and_then(|p| CString::new(p).ok()) else {
            tracing::warn!(path = %path.display(), "no WAL checkpointer: the path is not UTF-8");
            return Checkpointer::default();
        };
        let spawned = std::thread::Builder::new()
            .name("weft-checkpoint".into())
            .spawn(move || run(&path, &rx));
        match spawned {
            Ok(thread) => Checkpointer {
                stop: Mutex::new(Some(tx)),
                thread: Mutex::new(Some(thread)),
            },
            Err(e) => {
                tracing::warn!(error = %e, "no WAL checkpointer thread");
                Checkpointer::default()
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
        drop(self.stop.lock().unwrap_or_else(|p| p.into_inner()).take());
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = thread {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

/// The thread: a connection of its own, a `PASSIVE` checkpoint every [`EVERY`] until
/// `stop` is dropped.
fn run(path: &CString, stop: &mpsc::Receiver<()>) {
    // SAFETY: setpriority takes three integers and changes only this thread's nice value.
    #[allow(unsafe_code)]
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, NICE);
    }
    let Some(db) = Db::open(path) else {
        return;
    };
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(EVERY) {
        db.checkpoint();
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
            // The WAL was not open on this connection: open it for the next one.
            self.read_schema();
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
