//! Exclusive locks that keep two weftd apart, taken before anything touches the database or
//! the kernel: a second weftd on the same database, or on the same host network namespace
//! (even with another database and socket), exits at start-up with a message naming the first
//! one's pid, instead of rewriting its nftables and interfaces under it.
//!
//! Two lock files, each held with `flock(LOCK_EX | LOCK_NB)` for weftd's whole life and
//! holding its pid (a line of text, for the second weftd's message and for operators):
//! - `<database>.lock`, beside the database file;
//! - `<runtime_dir>/host-<dev>-<ino>.lock`, keyed by the device and inode of the host
//!   network namespace (`--host-netns`, or weftd's own `/proc/self/ns/net`): every path to
//!   one namespace names the same inode, so a bind mount or `/proc/<pid>/ns/net` of the same
//!   namespace finds the same lock.
//!
//! A lock file lives under `--runtime-dir`, so two weftd given different runtime dirs would
//! each take their own. The host namespace is therefore also locked by a name that exists
//! once per network namespace whatever the paths: the abstract Unix socket
//! `@weftd-host-lock`, bound inside the host namespace (abstract names are per network
//! namespace). A second weftd finds it bound and learns the holder's pid from the socket's
//! peer credentials. The database lock file is named after the database's canonical path, so
//! a symlink to the same database finds the same lock.
//!
//! An flock is the kernel's: it goes when the process dies, however it dies (kill -9
//! included), so a stale file never blocks a restart. The files are left in place on exit
//! (unlinking a lock file races with a weftd that has it open and is about to lock it).

use std::{
    fs::{File, OpenOptions, TryLockError},
    io::{Read, Seek, Write},
    os::{
        linux::net::SocketAddrExt,
        unix::{
            fs::{MetadataExt, OpenOptionsExt},
            net::{SocketAddr, UnixListener, UnixStream},
        },
    },
    path::{Path, PathBuf},
};

use nix::{
    sched::{CloneFlags, setns},
    sys::socket::{getsockopt, sockopt::PeerCredentials},
};

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "{what} is in use by another weftd (pid {holder}; lock file {}): stop that weftd first, \
         or give this one its own {fix}",
        path.display()
    )]
    Held {
        /// What the lock guards ("database /var/lib/weft/weft.db").
        what: String,
        /// The lock file.
        path: PathBuf,
        /// The holder's pid as its file says ("unknown" when it has not written it yet).
        holder: String,
        /// The flags that would separate the two.
        fix: &'static str,
    },
    /// The lock file could not be opened, locked or written.
    #[error("lock file {}: {source}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// The locks a running weftd holds; dropping it releases them.
#[derive(Debug)]
pub struct Locks {
    /// The host namespace's identity, `<dev>-<ino>` (as in its lock file's name).
    host_id: String,
    /// The database's lock file, locked.
    database: File,
    /// The host namespace's lock file, locked.
    host: File,
    /// The host namespace's abstract socket, bound (never accepted on).
    host_socket: UnixListener,
    /// Where they are, for the log.
    paths: [PathBuf; 2],
}

impl Locks {
    /// Takes the database lock, then the host namespace lock. `host_netns` is the namespace
    /// file weftd acts on as the host (None: its own).
    pub fn acquire(
        database: &Path,
        runtime_dir: &Path,
        host_netns: Option<&Path>,
    ) -> Result<Locks, LockError> {
        let db_lock = database_lock_path(&canonical(database));
        let database = lock(
            &db_lock,
            format!("database {}", database.display()),
            "--database",
        )?;
        let ns = host_netns.unwrap_or(Path::new("/proc/self/ns/net"));
        let meta = std::fs::metadata(ns).map_err(|source| LockError::Io {
            path: ns.to_path_buf(),
            source,
        })?;
        let host_lock = runtime_dir.join(format!("host-{}-{}.lock", meta.dev(), meta.ino()));
        let host = lock(
            &host_lock,
            format!(
                "host network namespace {} (inode {})",
                ns.display(),
                meta.ino()
            ),
            "--host-netns",
        )?;
        let host_socket = bind_host_socket(ns)?;
        Ok(Locks {
            host_id: format!("{}-{}", meta.dev(), meta.ino()),
            database,
            host,
            host_socket,
            paths: [db_lock, host_lock],
        })
    }

    /// The host namespace's identity, `<dev>-<ino>`: what tells this weftd's namespaces from
    /// another's in a shared netns directory ([`crate::model::namespace_mark`]).
    pub fn host_id(&self) -> &str {
        &self.host_id
    }

    /// The lock files held.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Releases both locks (also what dropping does).
    pub fn release(self) {
        let Locks {
            database,
            host,
            host_socket,
            ..
        } = self;
        drop(host_socket);
        drop(host);
        drop(database);
    }
}

/// The abstract socket name that locks a host network namespace.
pub const HOST_SOCKET: &str = "weftd-host-lock";

/// `path` with its directory resolved (symlinks, `..`), so two spellings of one database
/// name one lock file; `path` as given when its directory does not exist yet.
fn canonical(path: &Path) -> PathBuf {
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => std::fs::canonicalize(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
        .map(|d| d.join(name))
        .unwrap_or_else(|_| path.to_path_buf()),
        _ => path.to_path_buf(),
    }
}

/// Binds `@weftd-host-lock` inside the network namespace of `ns`, on a thread that enters it
/// (`setns`) and exits afterwards: the socket stays in that namespace. Held by another
/// process: [`LockError::Held`] with that process's pid (its peer credentials).
fn bind_host_socket(ns: &Path) -> Result<UnixListener, LockError> {
    let io = |source| LockError::Io {
        path: PathBuf::from(format!("@{HOST_SOCKET}")),
        source,
    };
    let ns = ns.to_path_buf();
    let what = format!("host network namespace {}", ns.display());
    let joined = std::thread::spawn(move || -> Result<UnixListener, LockError> {
        let file = File::open(&ns).map_err(io)?;
        setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| io(e.into()))?;
        let addr = SocketAddr::from_abstract_name(HOST_SOCKET).map_err(io)?;
        match UnixListener::bind_addr(&addr) {
            Ok(l) => Ok(l),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                let holder = UnixStream::connect_addr(&addr)
                    .ok()
                    .and_then(|s| getsockopt(&s, PeerCredentials).ok())
                    .map_or_else(|| "unknown".to_string(), |c| c.pid().to_string());
                Err(LockError::Held {
                    what,
                    path: PathBuf::from(format!("@{HOST_SOCKET}, an abstract socket")),
                    holder,
                    fix: "--host-netns",
                })
            }
            Err(e) => Err(io(e)),
        }
    })
    .join();
    joined.unwrap_or_else(|_| {
        Err(io(std::io::Error::other(
            "the thread binding the host lock socket panicked",
        )))
    })
}

/// `<database>.lock`: the database's file name with `.lock` appended.
pub fn database_lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Opens (creating, 0600, and its directory) and locks `path`, then writes the pid into it.
fn lock(path: &Path, what: String, fix: &'static str) -> Result<File, LockError> {
    let io = |source| LockError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(LockError::Held {
                what,
                path: path.to_path_buf(),
                holder: holder(&mut file),
                fix,
            });
        }
        Err(TryLockError::Error(e)) => return Err(io(e)),
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    writeln!(file, "{}", std::process::id()).map_err(io)?;
    Ok(file)
}

/// The pid the holder wrote into its lock file ("unknown" when it has not yet: it writes
/// right after it locks, so a few short retries cover that window).
fn holder(file: &mut File) -> String {
    for _ in 0..10 {
        let mut text = String::new();
        if file.rewind().is_ok() && file.read_to_string(&mut text).is_ok() {
            let pid = text.trim();
            if !pid.is_empty() {
                return pid.to_string();
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    "unknown".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_lock_sits_beside_the_database() {
        assert_eq!(
            database_lock_path(Path::new("/var/lib/weft/weft.db")),
            PathBuf::from("/var/lib/weft/weft.db.lock")
        );
    }

    /// A network namespace of its own for a test (a thread that unshares and waits), so the
    /// abstract socket is bound there and never in the real host's namespace, where a real
    /// weftd may hold it. Dropping the guard ends the thread.
    struct PrivateNetns {
        path: PathBuf,
        stop: Option<std::sync::mpsc::Sender<()>>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl PrivateNetns {
        fn new() -> PrivateNetns {
            let (tid_tx, tid_rx) = std::sync::mpsc::channel();
            let (stop, stop_rx) = std::sync::mpsc::channel::<()>();
            let thread = std::thread::spawn(move || {
                nix::sched::unshare(CloneFlags::CLONE_NEWNET).unwrap();
                tid_tx.send(nix::unistd::gettid().as_raw()).unwrap();
                let _ = stop_rx.recv();
            });
            let tid = tid_rx.recv().unwrap();
            PrivateNetns {
                path: PathBuf::from(format!("/proc/{}/task/{tid}/ns/net", std::process::id())),
                stop: Some(stop),
                thread: Some(thread),
            }
        }
    }

    impl Drop for PrivateNetns {
        fn drop(&mut self) {
            drop(self.stop.take());
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    /// A second acquire of the same files fails naming this process's pid and the fix; once
    /// the first is released, it succeeds. (flock conflicts between two open files, even in
    /// one process.)
    #[test]
    fn a_second_acquire_is_refused_with_the_holder_pid_until_released() {
        let ns = PrivateNetns::new();
        let host = Some(ns.path.as_path());
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("weft.db");
        let run = dir.path().join("run");
        let first = Locks::acquire(&db, &run, host).unwrap();
        let text = std::fs::read_to_string(&first.paths()[0]).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
        let err = Locks::acquire(&db, &run, host).unwrap_err().to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert!(err.contains("--database"), "{err}");
        // Another database, the same host namespace: refused on the namespace.
        let err = Locks::acquire(&dir.path().join("other.db"), &run, host)
            .unwrap_err()
            .to_string();
        assert!(err.contains("host network namespace"), "{err}");
        assert!(err.contains("--host-netns"), "{err}");
        // Another runtime dir too: refused by the namespace's abstract socket, whose peer
        // credentials name the holder.
        let err = Locks::acquire(&dir.path().join("third.db"), &dir.path().join("run2"), host)
            .unwrap_err()
            .to_string();
        assert!(err.contains("abstract socket"), "{err}");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        first.release();
        Locks::acquire(&db, &run, host).unwrap();
    }

    /// A database reached through a symlinked directory finds the same lock file.
    #[test]
    fn a_symlinked_database_path_finds_the_same_lock() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("real")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join("link")).unwrap();
        assert_eq!(
            canonical(&dir.path().join("link/weft.db")),
            canonical(&dir.path().join("real/weft.db"))
        );
    }
}
