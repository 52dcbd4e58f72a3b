//! Network namespace files and threads: named namespaces made exactly like `ip netns add`, the
//! nsfs check, and the short-lived helper threads that enter (or create) a namespace.
//!
//! The rule this module exists to keep: a thread's network namespace is only ever changed on a
//! fresh `std::thread` that exits right afterwards. Tokio worker and `spawn_blocking` threads
//! are reused, so a `setns` there would leak into unrelated work. Everything here is plain
//! system calls through nix (mount, umount2, unshare, setns, statfs): no `unsafe`, no `ip`.
//!
//! Creating `<dir>/<name>` follows iproute2's `netns_add`:
//! 1. `mkdir -p <dir>` (mode 0755);
//! 2. make `<dir>` a shared mount (`MS_SHARED|MS_REC`; on `EINVAL` it is not a mount point yet,
//!    so bind-mount it onto itself first), so mounts under it propagate to other mount
//!    namespaces and `ip netns exec` sees them (recursively only the first time: see
//!    [`prepare_dir`]);
//! 3. create the file with `O_EXCL`;
//! 4. on a helper thread, `unshare(CLONE_NEWNET)` and bind-mount `/proc/thread-self/ns/net`
//!    (the thread's own namespace; `/proc/self/...` would be the main thread's) onto the file.

use std::{
    fs::{DirBuilder, File, OpenOptions},
    io::ErrorKind,
    os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

use nix::{
    errno::Errno,
    mount::{MntFlags, MsFlags, mount, umount2},
    sched::{CloneFlags, setns, unshare},
    sys::{
        stat::{fstat, stat},
        statfs::{NSFS_MAGIC, statfs},
    },
};

use super::{KernelError, error};

/// Identity of a namespace file: (device, inode) as `stat` reports it. For an nsfs file the
/// inode is the namespace's own id, so a path that now names a different namespace (deleted
/// and re-created under the same name) has a different identity.
pub(crate) type NsId = (u64, u64);

/// True if `path` exists and is on nsfs, i.e. a namespace file (a bind mount of one, or a
/// `/proc/<pid>/ns/*` entry).
pub(crate) fn is_nsfs(path: &Path) -> bool {
    statfs(path)
        .map(|s| s.filesystem_type() == NSFS_MAGIC)
        .unwrap_or(false)
}

/// The identity of the namespace file at `path` now.
pub(crate) fn id_of_path(path: &Path) -> Result<NsId, KernelError> {
    let st = stat(path).map_err(|e| error::sys(format!("stat namespace {}", path.display()), e))?;
    Ok((st.st_dev, st.st_ino))
}

/// The identity of an open namespace file.
fn id_of_file(file: &File, what: &Path) -> Result<NsId, KernelError> {
    let st =
        fstat(file).map_err(|e| error::sys(format!("stat namespace {}", what.display()), e))?;
    Ok((st.st_dev, st.st_ino))
}

/// Opens a namespace file for `setns` or `IFLA_NET_NS_FD` (read-only, close-on-exec).
pub(crate) fn open(path: &Path) -> Result<File, KernelError> {
    let op = || format!("open namespace {}", path.display());
    File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => error::namespace_gone(op(), path),
        _ => error::io(op(), e),
    })
}

/// Runs `f` in the network namespace of `ns`, and returns its result. Also returns the
/// namespace's identity, read from the same open file.
///
/// An already open file (the host's) is tried first on a thread of tokio's blocking pool:
/// those threads never enter another namespace, so for a weftd started in its host one is
/// already there, and `f` runs on it as it is (checked each time against the thread's own
/// namespace, `/proc/thread-self/ns/net`). Otherwise `f` runs on a new thread that first
/// enters the namespace (`setns`) and exits afterwards, so its namespace never leaks into
/// other work. A Connect writes one sysctl in the host (its host end's `disable_ipv6`): making
/// a thread for it was 1.7 % of weftd's samples at 1,000 concurrent Connects (BENCHMARKS.md,
/// session 23).
///
/// So `f` may run on a shared thread: it must leave the thread as it found it (no `setns`,
/// no `unshare`, no priority, credential or capability change) and not hold it long. Work
/// that does any of that goes through [`run_on_fresh_thread`].
pub(crate) async fn run_in<T, F>(ns: NsFile, f: F) -> Result<(T, NsId), KernelError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, KernelError> + Send + 'static,
{
    let (ns, f) = match ns {
        NsFile::Open(file, label) => {
            let id = id_of_file(&file, &label)?;
            let here = move || match id_of_path(Path::new("/proc/thread-self/ns/net")) {
                Ok(own) if own == id => Ok(f()),
                _ => Err(f),
            };
            match crate::nice::spawn_blocking(here).await {
                Ok(Ok(done)) => return Ok((done?, id)),
                Ok(Err(f)) => (NsFile::Open(file, label), f),
                Err(e) => {
                    return Err(error::io(
                        "namespace work on a blocking thread",
                        std::io::Error::other(e.to_string()),
                    ));
                }
            }
        }
        path => (path, f),
    };
    run_on_fresh_thread(ns, f).await
}

/// Runs `f` on a new thread that first enters the network namespace of `ns` (`setns`), and
/// returns its result; the thread exits afterwards, so whatever `f` does to it (another
/// namespace, a lower priority) never reaches other work. Also returns the namespace's
/// identity, read from the same open file.
pub(crate) async fn run_on_fresh_thread<T, F>(ns: NsFile, f: F) -> Result<(T, NsId), KernelError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, KernelError> + Send + 'static,
{
    on_thread(move || {
        let (file, label) = match ns {
            NsFile::Open(file, label) => (file, label),
            NsFile::Path(path) => (std::sync::Arc::new(open(&path)?), path),
        };
        let id = id_of_file(&file, &label)?;
        setns(&*file, CloneFlags::CLONE_NEWNET)
            .map_err(|e| error::sys(format!("setns into {}", label.display()), e))?;
        Ok((f()?, id))
    })
    .await
}

/// A namespace to enter: an already open file (the host's, opened once at start-up), or a path
/// opened on the helper thread.
pub(crate) enum NsFile {
    /// An open namespace file, with the label used in error messages.
    Open(std::sync::Arc<File>, PathBuf),
    /// A namespace file to open.
    Path(PathBuf),
}

/// Runs `f` on a fresh, short-lived std thread and awaits its result without blocking tokio.
async fn on_thread<T, F>(f: F) -> Result<T, KernelError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, KernelError> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("weft-netns".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| error::io("spawn namespace helper thread", e))?;
    rx.await.unwrap_or_else(|_| {
        Err(error::io(
            "namespace helper thread",
            std::io::Error::other("helper thread panicked"),
        ))
    })
}

/// Checks that `name` can be a file in the netns dir: one plain path component.
pub(crate) fn validate_name(name: &str) -> Result<(), KernelError> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.contains('\0')
        || name.len() > 255;
    if bad {
        return Err(error::invalid(
            format!("create namespace {name:?}"),
            "a namespace name must be one path component (no '/', not '.' or '..')",
        ));
    }
    Ok(())
}

/// `mkdir -p <dir>` (mode 0755) and make it a shared mount point, as `ip netns add` does;
/// with `recursive`, every mount under it too (`MS_REC`), as `ip netns add` does each time.
///
/// Recursively only once per daemon (the caller's choice): a mount made under a shared mount
/// is shared itself, so the namespaces weft adds later need nothing more, and a recursive
/// change walks every mount under the dir (`invent_group_ids`, `change_mnt_propagation`;
/// perf at 10,000 namespaces: ~1.5 ms of each CreateNamespace, holding the kernel's mount
/// lock). The dir itself is made shared every time (one mount, constant cost), so a dir
/// someone made private or unmounted is set right again, recursively when it had to be
/// bind-mounted anew; namespace files someone made private themselves (`--make-rprivate` on
/// the dir) stay so until weftd starts again, and another mount namespace then keeps its copy
/// of such a namespace after weft deletes it.
pub(crate) fn prepare_dir(dir: &Path, recursive: bool) -> Result<(), KernelError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| error::io(format!("create netns dir {}", dir.display()), e))?;
    let shared = |recursive: bool| {
        let rec = if recursive {
            MsFlags::MS_REC
        } else {
            MsFlags::empty()
        };
        mount(
            Some("none"),
            dir,
            None::<&str>,
            MsFlags::MS_SHARED | rec,
            None::<&str>,
        )
    };
    match shared(recursive) {
        Ok(()) => return Ok(()),
        Err(Errno::EINVAL) => {} // not a mount point yet
        Err(e) => {
            return Err(error::sys(
                format!("make {} a shared mount", dir.display()),
                e,
            ));
        }
    }
    mount(
        Some(dir),
        dir,
        Some("none"),
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| error::sys(format!("bind-mount {} onto itself", dir.display()), e))?;
    shared(true).map_err(|e| error::sys(format!("make {} a shared mount", dir.display()), e))
}

/// What [`create_file`] found or did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Created {
    /// A new namespace was made and mounted on the file.
    New,
    /// The file already was a namespace; nothing was changed.
    Existed,
}

/// Creates the namespace file `path` (steps 3 and 4 of the module doc). Idempotent: a file that
/// already is a namespace is left alone. A leftover empty regular file (a crash between
/// creating the file and mounting on it) is removed and the namespace created; anything else
/// in the way is an `EEXIST` error. Callers serialise calls for the same path.
pub(crate) async fn create_file(path: &Path) -> Result<Created, KernelError> {
    let op = format!("create namespace {}", path.display());
    // Two rounds: the second after clearing a leftover placeholder file.
    for _ in 0..2 {
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o000)
            .open(path)
        {
            Ok(placeholder) => {
                drop(placeholder);
                let target = path.to_path_buf();
                let mounted = on_thread(move || {
                    unshare(CloneFlags::CLONE_NEWNET)
                        .map_err(|e| error::sys("unshare(CLONE_NEWNET)", e))?;
                    mount(
                        Some("/proc/thread-self/ns/net"),
                        &target,
                        Some("none"),
                        MsFlags::MS_BIND,
                        None::<&str>,
                    )
                    .map_err(|e| {
                        error::sys(
                            format!("bind-mount the new namespace on {}", target.display()),
                            e,
                        )
                    })
                })
                .await;
                if let Err(e) = mounted {
                    let _ = std::fs::remove_file(path);
                    return Err(e);
                }
                return Ok(Created::New);
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                if is_nsfs(path) {
                    return Ok(Created::Existed);
                }
                let meta = std::fs::symlink_metadata(path).map_err(|e| error::io(&op, e))?;
                if meta.file_type().is_file() && meta.len() == 0 {
                    tracing::warn!(path = %path.display(), "removing leftover namespace placeholder");
                    std::fs::remove_file(path).map_err(|e| error::io(&op, e))?;
                    continue;
                }
                return Err(error::sys(
                    format!(
                        "{op}: the path exists and is not a network namespace ({})",
                        describe_type(&meta.file_type())
                    ),
                    Errno::EEXIST,
                ));
            }
            Err(e) => return Err(error::io(op, e)),
        }
    }
    Err(error::sys(
        format!("{op}: the file keeps reappearing"),
        Errno::EEXIST,
    ))
}

fn describe_type(t: &std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symlink"
    } else if t.is_file() {
        "a non-empty regular file"
    } else if t.is_socket() || t.is_fifo() {
        "a socket or fifo"
    } else {
        "a special file"
    }
}

/// Unmounts (lazily, `MNT_DETACH`) and removes the namespace file `path`. Returns whether
/// anything was there. The namespace itself is freed by the kernel once nothing else (a
/// process, a socket, another mount) holds it.
pub(crate) fn remove_file(path: &Path) -> Result<bool, KernelError> {
    let mut changed = false;
    // A file can carry stacked mounts (two racing creators); peel them all.
    for _ in 0..16 {
        match umount2(path, MntFlags::MNT_DETACH) {
            Ok(()) => changed = true,
            Err(Errno::EINVAL) | Err(Errno::ENOENT) => break, // not a mount point / absent
            Err(e) => {
                return Err(error::sys(
                    format!("unmount namespace {}", path.display()),
                    e,
                ));
            }
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => changed = true,
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => {
            return Err(error::io(
                format!("remove namespace file {}", path.display()),
                e,
            ));
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The name of the thread `f` ran on, and the namespace that thread was in.
    fn where_it_ran() -> Result<(Option<String>, NsId), KernelError> {
        let name = std::thread::current().name().map(str::to_owned);
        Ok((name, id_of_path(Path::new("/proc/thread-self/ns/net"))?))
    }

    fn own_namespace() -> NsFile {
        let path = PathBuf::from("/proc/self/ns/net");
        NsFile::Open(std::sync::Arc::new(open(&path).unwrap()), path)
    }

    #[tokio::test]
    async fn work_in_the_processs_own_namespace_makes_no_thread() {
        let ((thread, ran_in), id) = run_in(own_namespace(), where_it_ran).await.unwrap();
        assert_eq!(ran_in, id);
        assert_ne!(
            thread.as_deref(),
            Some("weft-netns"),
            "a helper thread was made for the namespace the pool's threads are in"
        );
    }

    #[tokio::test]
    async fn work_in_another_namespace_runs_on_a_thread_that_entered_it() {
        // A namespace of its own, held by an open file of a thread that left it (root only,
        // as every test of the kernel layer).
        let other = std::thread::spawn(|| {
            unshare(CloneFlags::CLONE_NEWNET).expect("unshare a network namespace");
            open(Path::new("/proc/thread-self/ns/net")).unwrap()
        })
        .join()
        .unwrap();
        let label = PathBuf::from("another namespace");
        let other = std::sync::Arc::new(other);
        let theirs = id_of_file(&other, &label).unwrap();
        let ((thread, ran_in), id) = run_in(NsFile::Open(other, label), where_it_ran)
            .await
            .unwrap();
        assert_eq!((ran_in, id), (theirs, theirs));
        assert_eq!(thread.as_deref(), Some("weft-netns"));
        // A path goes to a helper thread too, even for the namespace the process is in.
        let own = PathBuf::from("/proc/self/ns/net");
        let ((thread, _), _) = run_in(NsFile::Path(own), where_it_ran).await.unwrap();
        assert_eq!(thread.as_deref(), Some("weft-netns"));
    }

    /// Work that changes its thread (the snapshot reader `setns`es through every namespace
    /// and lowers its priority) gets a thread of its own even in the process's namespace.
    #[tokio::test]
    async fn work_that_changes_its_thread_always_gets_a_fresh_one() {
        let ((thread, ran_in), id) = run_on_fresh_thread(own_namespace(), where_it_ran)
            .await
            .unwrap();
        assert_eq!(ran_in, id);
        assert_eq!(thread.as_deref(), Some("weft-netns"));
    }
}
