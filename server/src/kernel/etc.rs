//! The per-namespace `/etc` files weft writes: `<etc-netns-dir>/<name>/resolv.conf`, which
//! `ip netns exec <name>` bind-mounts over `/etc/resolv.conf` (iproute2 reads the fixed
//! `/etc/netns`; weftd's `--etc-netns-dir` is for tests and unusual hosts).
//!
//! Files, not kernel state, but host state weft owns like the namespace files beside them,
//! so they live here and their errors are [`KernelError`]s with the errno kept (`EACCES` on a
//! read-only `/etc` is not retried; the error policy reads the kind). Plain `std::fs` on a
//! blocking thread: no process is spawned.
//!
//! - [`EtcNetns::converge_resolv_conf`] reads the host's resolv.conf, renders the file from
//!   it, reads the file and writes it only when it differs, all in one blocking call. A
//!   file counts as read only when it is a regular file of mode 0644; anything else reads
//!   as absent, so converging rewrites it ([`EtcNetns::read_resolv_confs`], the bulk check's
//!   read, likewise). A file is made atomically: the text goes to a temporary file in the
//!   same directory (mode 0644), which is then renamed into place. A change to an existing
//!   file is written into it (the same inode), because `ip netns exec` bind-mounts the file
//!   itself: a process started before the change keeps the inode it was given, and a rename
//!   would leave it reading the old text for good (podman writes its containers'
//!   bind-mounted resolv.conf in place for the same reason). The new text goes in one write
//!   at the start, padded with newlines to the old length when shorter, and the file is then
//!   cut to length, so there is no moment when the file is empty or ends in the old text (a
//!   read racing the write itself may still see a torn page: ext4 does not lock buffered
//!   reads against writes). Only weft's own regular file with one link, at most
//!   `IN_PLACE_MAX` long and writable by weftd, is written through (opened without
//!   following a symlink); anything else is replaced by a new file. Writing in place also
//!   spares the filesystem an inode made and freed per change. Nothing is fsynced: the file
//!   is derived state, and a file a power loss left empty, old or mixed is rewritten by the
//!   restart's reconcile, so a Connect does not wait for the disk.
//! - [`EtcNetns::remove`] removes the file, a temporary file a crash left, and the directory
//!   if nothing else is in it (someone else's files there are kept, and so is the directory).

use std::{
    fs,
    io::{ErrorKind, Write},
    os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use super::{KernelError, error};

/// The file `ip netns exec` bind-mounts over `/etc/resolv.conf`.
const RESOLV_CONF: &str = "resolv.conf";
/// The temporary file a write goes to before its rename.
const TEMP: &str = ".resolv.conf.weft-tmp";
/// The mode of the file (as `/etc/resolv.conf`'s).
const MODE: u32 = 0o644;
/// A file longer than this is replaced rather than padded and written through (weft's are a
/// few hundred bytes; a longer one was made by someone else).
const IN_PLACE_MAX: u64 = 64 * 1024;

/// The directory of per-namespace `/etc` files (`--etc-netns-dir`, default `/etc/netns`).
#[derive(Clone, Debug)]
pub struct EtcNetns {
    dir: PathBuf,
}

impl EtcNetns {
    /// Files under `dir` (created when the first file is written).
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// `<dir>/<namespace>/resolv.conf`.
    pub fn resolv_conf_path(&self, namespace: &str) -> PathBuf {
        self.dir.join(namespace).join(RESOLV_CONF)
    }

    /// The text of each namespace's resolv.conf, in one blocking call (the bulk check reads
    /// them all); one answer per name, in order, None for a file that is missing, not a
    /// regular file or not mode 0644 (so a converge writes it again). Gives way to API calls in
    /// flight for up to `give_way` in all (crate::busy; zero: never).
    pub async fn read_resolv_confs(
        &self,
        namespaces: Vec<String>,
        give_way: std::time::Duration,
    ) -> Result<Vec<Option<String>>, KernelError> {
        let dir = self.dir.clone();
        blocking(move || {
            let mut give_way = crate::busy::GiveWay::new(&crate::busy::REQUESTS, give_way);
            namespaces
                .iter()
                .map(|n| {
                    give_way.now();
                    read_if_ours(&dir.join(n).join(RESOLV_CONF))
                })
                .collect()
        })
        .await
    }

    /// Makes namespace `namespace`'s resolv.conf read `render(host)`, where `host` is the text
    /// of the host's resolv.conf at `host_path` ("" when it cannot be read: said in the log):
    /// reads both files, and writes (mode 0644, making the directories it needs) only when
    /// the text or the mode differs: into the file when there is one (so a process that
    /// bind-mounted it sees the change), else a new file renamed into place. One trip to a
    /// blocking thread for all of it, where a read, a compare and a write each took one.
    /// Returns whether it wrote.
    pub async fn converge_resolv_conf<R>(
        &self,
        namespace: &str,
        host_path: &Path,
        render: R,
    ) -> Result<bool, KernelError>
    where
        R: FnOnce(&str) -> String + Send + 'static,
    {
        let dir = self.dir.join(namespace);
        let host_path = host_path.to_path_buf();
        blocking(move || {
            let want = render(&read_host_resolv_conf(&host_path));
            let path = dir.join(RESOLV_CONF);
            if read_if_ours(&path)?.as_deref() == Some(want.as_str()) {
                return Ok(false);
            }
            write(&dir, &want)?;
            Ok(true)
        })
        .await
    }

    /// Removes namespace `namespace`'s resolv.conf, a leftover temporary file, and its
    /// directory when that is then empty. Idempotent.
    pub async fn remove(&self, namespace: &str) -> Result<(), KernelError> {
        let dir = self.dir.join(namespace);
        blocking(move || remove_all(&dir)).await
    }
}

/// Runs `f` on tokio's blocking pool (plain file work, no namespace change).
async fn blocking<T, F>(f: F) -> Result<T, KernelError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, KernelError> + Send + 'static,
{
    crate::nice::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(error::io(
            "file helper task",
            std::io::Error::other(e.to_string()),
        ))
    })
}

/// The host's resolv.conf, or "" when it cannot be read (said in the log): a namespace then
/// gets its DNS networks' resolvers alone, or no nameserver.
pub fn read_host_resolv_conf(path: &Path) -> String {
    match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the host's resolv.conf");
            String::new()
        }
    }
}

fn read_if_ours(path: &Path) -> Result<Option<String>, KernelError> {
    let op = || format!("read {}", path.display());
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(error::io(op(), e)),
    };
    if !meta.is_file() || meta.permissions().mode() & 0o7777 != MODE {
        return Ok(None);
    }
    match fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        // Not UTF-8: not what weft wrote.
        Err(e) if e.kind() == ErrorKind::InvalidData => Ok(None),
        Err(e) => Err(error::io(op(), e)),
    }
}

/// Makes `<dir>/resolv.conf` read `text`: written into the file when [`write_in_place`] can,
/// else a new file renamed into place ([`write_atomic`]).
fn write(dir: &Path, text: &str) -> Result<(), KernelError> {
    if !write_in_place(&dir.join(RESOLV_CONF), text)? {
        write_atomic(dir, text)?;
    }
    Ok(())
}

/// Writes `text` into the file at `path` (the same inode, mode set to 0644): one write at
/// offset 0, padded with newlines to the old length when `text` is shorter, then the file cut
/// to `text`'s length. False (nothing written) when there is no file, or it is a symlink, not
/// a regular file, has more than one link, belongs to another user, is longer than
/// [`IN_PLACE_MAX`], or cannot be opened for writing (a mode without the owner's write bit,
/// to a weftd without `CAP_DAC_OVERRIDE`): the caller replaces it.
fn write_in_place(path: &Path, text: &str) -> Result<bool, KernelError> {
    let op = |what: &str| format!("{what} {}", path.display());
    let ours = |m: &fs::Metadata| {
        m.is_file()
            && m.nlink() == 1
            && m.uid() == nix::unistd::geteuid().as_raw()
            && m.len() <= IN_PLACE_MAX
    };
    // Looked at before it is opened (no device or FIFO is ever opened), and again after
    // (it may have been swapped in between).
    match fs::symlink_metadata(path) {
        Ok(m) if ours(&m) => {}
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(error::io(op("stat"), e)),
    }
    let f = match fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Ok(f) => f,
        // Swapped for something else meanwhile (gone, a symlink, a directory, a FIFO without
        // a reader), or not writable by this weftd: replace it.
        Err(e)
            if e.kind() == ErrorKind::NotFound
                || e.kind() == ErrorKind::IsADirectory
                || e.kind() == ErrorKind::PermissionDenied
                || matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENXIO)) =>
        {
            return Ok(false);
        }
        Err(e) => return Err(error::io(op("open"), e)),
    };
    let meta = f.metadata().map_err(|e| error::io(op("stat"), e))?;
    if !ours(&meta) {
        return Ok(false);
    }
    if meta.mode() & 0o7777 != MODE {
        f.set_permissions(fs::Permissions::from_mode(MODE))
            .map_err(|e| error::io(op("chmod"), e))?;
    }
    let mut buf = text.as_bytes().to_vec();
    let old = usize::try_from(meta.len()).unwrap_or(usize::MAX);
    if old > buf.len() {
        buf.resize(old, b'\n');
    }
    f.write_all_at(&buf, 0)
        .map_err(|e| error::io(op("write"), e))?;
    // Always, also when nothing was padded: the file may have grown since it was looked at.
    f.set_len(text.len() as u64)
        .map_err(|e| error::io(op("truncate"), e))?;
    Ok(true)
}

fn write_atomic(dir: &Path, text: &str) -> Result<(), KernelError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| error::io(format!("create {}", dir.display()), e))?;
    let temp = dir.join(TEMP);
    let target = dir.join(RESOLV_CONF);
    let op = |what: &str| format!("{what} {}", temp.display());
    let _ = fs::remove_file(&temp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(MODE)
        .open(&temp)
        .map_err(|e| error::io(op("create"), e))?;
    // The umask may have taken bits off: set the mode exactly.
    f.set_permissions(fs::Permissions::from_mode(MODE))
        .map_err(|e| error::io(op("chmod"), e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| error::io(op("write"), e))?;
    drop(f);
    fs::rename(&temp, &target).map_err(|e| {
        let _ = fs::remove_file(&temp);
        error::io(
            format!("rename {} to {}", temp.display(), target.display()),
            e,
        )
    })
}

fn remove_all(dir: &Path) -> Result<(), KernelError> {
    for name in [RESOLV_CONF, TEMP] {
        let path = dir.join(name);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(error::io(format!("remove {}", path.display()), e)),
        }
    }
    match fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        // Gone already, or holding someone else's files: leave it.
        Err(e) if e.kind() == ErrorKind::NotFound || e.kind() == ErrorKind::DirectoryNotEmpty => {
            Ok(())
        }
        Err(e) => Err(error::io(format!("remove {}", dir.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Write, read back, overwrite, a wrong mode reads as absent, remove leaves nothing but
    /// a directory holding someone else's file.
    #[tokio::test]
    async fn write_read_and_remove() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let etc = EtcNetns::new(tmp.path().join("etc-netns"));
        let host = tmp.path().join("host-resolv.conf");
        fs::write(&host, "").expect("host file");
        let write = |ns: &'static str, text: &'static str| {
            etc.converge_resolv_conf(ns, &host, move |_| text.to_string())
        };
        let read = |ns: &str| read_if_ours(&etc.resolv_conf_path(ns)).expect("read");
        assert_eq!(read("a"), None);
        write("a", "nameserver 10.0.0.1\n").await.expect("write");
        let path = etc.resolv_conf_path("a");
        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o7777;
        assert_eq!(mode, 0o644);
        assert_eq!(read("a").as_deref(), Some("nameserver 10.0.0.1\n"));
        write("a", "x\n").await.expect("rewrite");
        assert_eq!(fs::read_to_string(&path).expect("read"), "x\n");
        assert!(!path.with_file_name(TEMP).exists(), "temp file left behind");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(read("a"), None);
        etc.remove("a").await.expect("remove");
        assert!(!path.parent().expect("dir").exists());
        etc.remove("a").await.expect("idempotent");

        write("b", "y\n").await.expect("write");
        let other = etc.resolv_conf_path("b").with_file_name("hosts");
        fs::write(&other, "127.0.0.1 b\n").expect("someone's file");
        etc.remove("b").await.expect("remove");
        assert!(other.exists(), "someone else's file was removed");
        assert!(!etc.resolv_conf_path("b").exists());
    }

    /// A change is written into the file (the same inode, so a process that bind-mounted it
    /// sees it), shorter or longer, with its mode put back; a symlink, a file with a second
    /// link or another user's file is replaced, and what it pointed to or shared is untouched.
    #[tokio::test]
    async fn a_change_is_written_into_weft_s_own_file_and_replaces_anything_else() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let etc = EtcNetns::new(tmp.path().join("etc-netns"));
        let host = tmp.path().join("host-resolv.conf");
        fs::write(&host, "").expect("host file");
        let path = etc.resolv_conf_path("a");
        let write =
            |text: &'static str| etc.converge_resolv_conf("a", &host, move |_| text.to_string());
        let inode = || fs::symlink_metadata(&path).expect("meta").ino();
        let long = "nameserver 10.0.0.1\nnameserver 10.0.1.1\nsearch corp.example\n";
        assert!(write(long).await.expect("create"));
        let first = inode();
        for text in ["nameserver 10.0.1.1\n", long, ""] {
            assert!(write(text).await.expect("rewrite"));
            assert_eq!(fs::read_to_string(&path).expect("read"), text);
            assert_eq!(inode(), first, "{text:?} was not written into the file");
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(write("x\n").await.expect("mode"));
        let meta = fs::metadata(&path).expect("meta");
        assert_eq!(
            (meta.ino(), meta.permissions().mode() & 0o7777),
            (first, MODE)
        );

        // A symlink is replaced, not followed.
        let elsewhere = tmp.path().join("elsewhere");
        fs::write(&elsewhere, "theirs\n").expect("their file");
        fs::remove_file(&path).expect("rm");
        std::os::unix::fs::symlink(&elsewhere, &path).expect("symlink");
        assert!(write("y\n").await.expect("over a symlink"));
        assert!(fs::symlink_metadata(&path).expect("meta").is_file());
        assert_eq!(fs::read_to_string(&path).expect("read"), "y\n");
        assert_eq!(fs::read_to_string(&elsewhere).expect("read"), "theirs\n");

        // A second link to it: replaced, the other name keeps the old text.
        let other = tmp.path().join("hardlink");
        fs::hard_link(&path, &other).expect("link");
        assert!(write("z\n").await.expect("over a shared inode"));
        assert_eq!(fs::read_to_string(&path).expect("read"), "z\n");
        assert_eq!(fs::read_to_string(&other).expect("read"), "y\n");
        assert_ne!(inode(), fs::metadata(&other).expect("meta").ino());

        // Another user's file: replaced by weft's own (changing its owner needs root).
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let mine = inode();
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).expect("chown");
        assert!(write("w\n").await.expect("over another user's file"));
        let meta = fs::metadata(&path).expect("meta");
        assert_ne!(meta.ino(), mine, "another user's file was written through");
        assert_eq!(meta.uid(), nix::unistd::geteuid().as_raw());
        assert_eq!(fs::read_to_string(&path).expect("read"), "w\n");
        assert!(!path.with_file_name(TEMP).exists(), "temp file left behind");
    }

    /// Without `CAP_DAC_OVERRIDE` (the shipped systemd unit does not grant it), weft's own file
    /// made read-only cannot be opened for writing: it is replaced, not a failed write.
    /// Capabilities are per thread on Linux: the write runs on a thread that drops it.
    #[test]
    fn a_file_weftd_cannot_open_for_writing_is_replaced() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("a");
        write(&dir, "old\n").expect("create");
        let path = dir.join(RESOLV_CONF);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o444)).expect("chmod");
        let before = fs::metadata(&path).expect("meta").ino();
        let written = std::thread::spawn(move || {
            drop_dac_override();
            write(&dir, "new\n")
        })
        .join()
        .expect("thread");
        written.expect("a read-only file of weft's was not replaced");
        let meta = fs::metadata(&path).expect("meta");
        assert_eq!(fs::read_to_string(&path).expect("read"), "new\n");
        assert_eq!(meta.permissions().mode() & 0o7777, MODE);
        assert_ne!(meta.ino(), before);
    }

    /// Takes `CAP_DAC_OVERRIDE` out of this thread's effective set (capset(2)).
    #[allow(unsafe_code)]
    fn drop_dac_override() {
        #[repr(C)]
        struct Header {
            version: u32,
            pid: i32,
        }
        #[repr(C)]
        #[derive(Clone, Copy, Default)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        const VERSION_3: u32 = 0x2008_0522;
        const CAP_DAC_OVERRIDE: u32 = 1;
        let mut header = Header {
            version: VERSION_3,
            pid: 0,
        };
        let mut data = [Data::default(); 2];
        // SAFETY: capget and capset read/write one header and two data structs of the
        // layout above (version 3), which live for the whole calls.
        unsafe {
            assert_eq!(
                libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()),
                0,
                "capget"
            );
            data[0].effective &= !(1 << CAP_DAC_OVERRIDE);
            assert_eq!(
                libc::syscall(libc::SYS_capset, &header, data.as_ptr()),
                0,
                "capset"
            );
        }
    }

    /// The one-trip converge renders from the host's file as it is now, writes only when the
    /// text or the mode differs (the inode stays when it does not), and renders from "" when
    /// the host's file cannot be read.
    #[tokio::test]
    async fn converge_writes_only_what_differs() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let etc = EtcNetns::new(tmp.path().join("etc-netns"));
        let host = tmp.path().join("host-resolv.conf");
        fs::write(&host, "options ndots:2\n").expect("host file");
        let render = |h: &str| format!("nameserver 10.0.0.1\n{h}");
        assert!(
            etc.converge_resolv_conf("a", &host, render)
                .await
                .expect("converge")
        );
        let path = etc.resolv_conf_path("a");
        assert_eq!(
            fs::read_to_string(&path).expect("read"),
            "nameserver 10.0.0.1\noptions ndots:2\n"
        );
        let inode = || std::os::unix::fs::MetadataExt::ino(&fs::metadata(&path).expect("meta"));
        let before = inode();
        assert!(
            !etc.converge_resolv_conf("a", &host, render)
                .await
                .expect("again")
        );
        assert_eq!(inode(), before, "a converged file was written again");

        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(
            etc.converge_resolv_conf("a", &host, render)
                .await
                .expect("mode")
        );
        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o7777;
        assert_eq!(mode, MODE);

        fs::write(&host, "options edns0\n").expect("host changed");
        assert!(
            etc.converge_resolv_conf("a", &host, render)
                .await
                .expect("host")
        );
        assert_eq!(
            fs::read_to_string(&path).expect("read"),
            "nameserver 10.0.0.1\noptions edns0\n"
        );
        fs::remove_file(&host).expect("host gone");
        assert!(
            etc.converge_resolv_conf("a", &host, render)
                .await
                .expect("no host")
        );
        assert_eq!(
            fs::read_to_string(&path).expect("read"),
            "nameserver 10.0.0.1\n"
        );
        assert!(!path.with_file_name(TEMP).exists(), "temp file left behind");
    }
}
