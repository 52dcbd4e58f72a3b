//! rtnetlink connections, each opened inside its namespace and cached.
//!
//! A netlink socket belongs forever to the network namespace it was created in, so weft opens
//! each namespace's socket on a thread in it (see [`netns::run_in`]: a helper thread that has
//! `setns`ed into it and exits afterwards, or for the host a blocking-pool thread already
//! there); the thread enters the tokio runtime just long enough to register the socket with
//! the reactor and hands back the connection. The
//! connection task then runs on tokio like any other, over an [`EagerSocket`] that reads each
//! answer as soon as its request is sent (see [`super::eager`]), and the [`Handle`] is cached
//! per [`NsRef`].
//!
//! Sockets use `NETLINK_GET_STRICT_CHK`, so dumps can be filtered by the kernel (addresses of
//! one interface, routes of one interface and protocol) instead of copying everything out.
//!
//! Beside a named namespace's socket, the same thread opens that namespace's `/proc/net/dev`
//! (`/proc/thread-self/net/dev`: the file keeps the namespace it was opened in). Each read
//! lists the namespace's interfaces by primary name, which the kernel walks under RCU: unlike
//! any netlink request on 6.18 (a single `RTM_GETLINK` as much as a dump), it never waits for
//! RTNL, which veth creates and deletes hold. [`Session::devs`] answers "is this name
//! listed" from it ([`listed_in`]). It never loads a module, unlike the `SIOCGIF*` ioctls.
//!
//! The kernel runs at most one dump at a time per netlink socket: a second `NLM_F_DUMP`
//! request while one is in progress fails with `EBUSY` (seen here as soon as two tasks called
//! `get_link` on one namespace at once). So each connection carries a dump lock, which every
//! read (they all dump) holds; writes and single-object requests need no lock.
//!
//! The kernel handles a netlink request inside the `sendmsg` that carries it, so one socket
//! runs one request at a time: the host namespace, where every endpoint has its host end, gets
//! [`HOST_LANES`] sockets used in turn, and a separate one for slow requests (a link delete,
//! one or a batch, waits for an RCU grace period, about 20 ms) so they never hold up the
//! others.
//!
//! Named namespaces keep at most [`MAX_NAMESPACE_SOCKETS`] sockets open, the least recently
//! used closed first. A cached socket keeps its namespace alive. [`Connections::forget`] drops it (the task ends
//! when the last in-flight request finishes). A namespace file that now names a *different*
//! namespace (deleted and re-created behind weft's back) is noticed by comparing the file's
//! identity on every lookup (one `stat`), and the stale socket is replaced.

use std::{
    collections::HashMap,
    fs::File,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use netlink_sys::AsyncSocket;
use rtnetlink::Handle;
use tokio::sync::OnceCell;

use super::{
    KernelError, NsRef,
    eager::{Eager, EagerSocket},
    error,
    netns::{self, NsFile, NsId},
};

/// At most this many named namespaces keep a socket open; the least recently used one is
/// closed to make room (reopening one costs a helper thread and about 0.3 ms). Without a
/// bound, 10,000 namespaces held 10,000 sockets, file descriptors and their buffers.
pub(crate) const MAX_NAMESPACE_SOCKETS: usize = 64;

/// An open connection into one namespace.
#[derive(Debug)]
struct Conn {
    /// When it was last used (a tick of [`Connections::clock`]).
    used: std::sync::atomic::AtomicU64,
    handle: Handle,
    /// Held around dump requests: the kernel allows one dump at a time per socket.
    dumps: Arc<tokio::sync::Mutex<()>>,
    /// Identity of the namespace file it was opened from.
    id: NsId,
    /// The namespace's `/proc/net/dev`, opened beside the socket (named namespaces only).
    devs: Option<Arc<Devs>>,
}

/// What a caller gets for one namespace: the request handle and the socket's dump lock.
pub(crate) struct Session {
    /// rtnetlink handle bound to the namespace.
    pub(crate) handle: Handle,
    /// Hold this while a dump request is in flight on `handle`.
    pub(crate) dumps: Arc<tokio::sync::Mutex<()>>,
    /// The namespace's `/proc/net/dev`, where it could be opened (named namespaces only: the
    /// host's lists every endpoint's host end).
    pub(crate) devs: Option<Arc<Devs>>,
}

/// A namespace's `/proc/net/dev`, read by one caller at a time: the kernel keeps one listing
/// state per open file, so readers interleaving their pages would get pieces of different
/// listings.
pub(crate) type Devs = Mutex<File>;

/// Sockets for ordinary requests in the host namespace, used in turn.
pub(crate) const HOST_LANES: usize = 4;

/// Which socket of a namespace a request goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lane {
    /// Ordinary requests.
    Normal,
    /// Requests that can take tens of milliseconds (link deletes, one or a batch): their own
    /// socket in the host, so no ordinary request waits behind one (and none holds the sysctl
    /// fence meanwhile, `Kernel::write_sysctl`).
    Slow,
}

/// Cached connections by namespace and socket number; a cell is filled by its first caller.
type ConnMap = HashMap<(NsRef, usize), Arc<OnceCell<Conn>>>;

/// The cache of connections, keyed by namespace and socket number.
#[derive(Debug)]
pub(crate) struct Connections {
    /// The host namespace, opened once at start-up, and how to name it in messages.
    host: Arc<File>,
    host_label: PathBuf,
    /// One cell per namespace; the cell is filled by the first caller, others wait on it.
    map: Mutex<ConnMap>,
    /// Turns through the host's ordinary sockets.
    next_host: std::sync::atomic::AtomicUsize,
    /// Ticks on every lookup, for least-recently-used eviction.
    clock: std::sync::atomic::AtomicU64,
}

impl Connections {
    /// A cache whose `NsRef::Host` is the open namespace file `host`.
    pub(crate) fn new(host: File, host_label: PathBuf) -> Self {
        Self {
            host: Arc::new(host),
            host_label,
            map: Mutex::new(HashMap::new()),
            next_host: std::sync::atomic::AtomicUsize::new(0),
            clock: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The host namespace file (for `IFLA_NET_NS_FD`).
    pub(crate) fn host_file(&self) -> &File {
        &self.host
    }

    /// The rtnetlink handle (and dump lock) for `ns`, opening the socket on first use.
    pub(crate) async fn session(&self, ns: &NsRef, lane: Lane) -> Result<Session, KernelError> {
        // For a path, learn which namespace it names right now; a cached socket for another
        // namespace under the same path is stale.
        let current = match ns {
            NsRef::Host => None,
            NsRef::Path(p) => Some(netns::id_of_path(p)?),
        };
        // Socket 0 is the slow lane; a named namespace's ordinary requests share it too.
        let slot = match (ns, lane) {
            (_, Lane::Slow) | (NsRef::Path(_), _) => 0,
            (NsRef::Host, Lane::Normal) => {
                1 + self
                    .next_host
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    % HOST_LANES
            }
        };
        for _ in 0..3 {
            let cell = self.cell(ns, slot);
            let conn = cell.get_or_try_init(|| self.connect(ns)).await?;
            let now = self
                .clock
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            conn.used.store(now, std::sync::atomic::Ordering::Relaxed);
            if current.is_none_or(|id| id == conn.id) {
                return Ok(Session {
                    handle: conn.handle.clone(),
                    dumps: conn.dumps.clone(),
                    devs: conn.devs.clone(),
                });
            }
            tracing::debug!(ns = ?ns, "namespace file names a new namespace; reopening socket");
            self.evict(ns, slot, &cell);
        }
        Err(error::sys(
            format!("open netlink socket in {}", self.label(ns)),
            nix::errno::Errno::EAGAIN,
        ))
    }

    /// Sockets open (or being opened) now.
    pub(crate) fn count(&self) -> usize {
        self.lock().len()
    }

    /// Drops the cached socket for `ns`.
    pub(crate) fn forget(&self, ns: &NsRef) {
        self.lock().retain(|(n, _), _| n != ns);
    }

    /// How `ns` is named in messages.
    pub(crate) fn label(&self, ns: &NsRef) -> String {
        match ns {
            NsRef::Host => format!("host netns ({})", self.host_label.display()),
            NsRef::Path(p) => p.display().to_string(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ConnMap> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cell(&self, ns: &NsRef, slot: usize) -> Arc<OnceCell<Conn>> {
        let mut map = self.lock();
        let key = (ns.clone(), slot);
        if let Some(cell) = map.get(&key) {
            return cell.clone();
        }
        if matches!(ns, NsRef::Path(_)) {
            let named = map.keys().filter(|(n, _)| n != &NsRef::Host).count();
            if named >= MAX_NAMESPACE_SOCKETS {
                // In-flight requests keep their handle; the socket closes after them.
                let oldest = map
                    .iter()
                    .filter(|((n, _), _)| n != &NsRef::Host)
                    .min_by_key(|(_, c)| {
                        c.get()
                            .map(|c| c.used.load(std::sync::atomic::Ordering::Relaxed))
                            .unwrap_or(u64::MAX)
                    })
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    map.remove(&k);
                }
            }
        }
        map.entry(key).or_default().clone()
    }

    fn evict(&self, ns: &NsRef, slot: usize, cell: &Arc<OnceCell<Conn>>) {
        let mut map = self.lock();
        let key = (ns.clone(), slot);
        if map.get(&key).is_some_and(|c| Arc::ptr_eq(c, cell)) {
            map.remove(&key);
        }
    }

    /// How a thread gets into `ns` ([`netns::run_in`]).
    pub(crate) fn ns_file(&self, ns: &NsRef) -> NsFile {
        match ns {
            NsRef::Host => NsFile::Open(self.host.clone(), self.host_label.clone()),
            NsRef::Path(p) => NsFile::Path(p.to_path_buf()),
        }
    }

    /// Opens a socket inside `ns` on a thread in it and starts its connection task.
    async fn connect(&self, ns: &NsRef) -> Result<Conn, KernelError> {
        let target = self.ns_file(ns);
        let label = self.label(ns);
        let runtime = tokio::runtime::Handle::current();
        let named = matches!(ns, NsRef::Path(_));
        let ((connection, handle, devs), id) = netns::run_in(target, move || {
            // Registering the socket with the reactor needs the runtime's context; the socket
            // itself is created here, in the namespace this thread just entered.
            let _entered = runtime.enter();
            let open = |e| error::io(format!("open netlink socket in {label}"), e);
            let (mut connection, handle, _unsolicited) =
                rtnetlink::new_connection_with_socket::<EagerSocket>().map_err(open)?;
            connection
                .socket_mut()
                .socket_mut()
                .set_netlink_get_strict_chk(true)
                .map_err(open)?;
            // `thread-self`: this thread's namespace (a process's threads may be in others).
            // Without it (no /proc), names are looked up by netlink, as before.
            let devs = named
                .then(|| match File::open("/proc/thread-self/net/dev") {
                    Ok(f) => Some(Arc::new(Mutex::new(f))),
                    Err(e) => {
                        tracing::debug!(error = %e, "no /proc/net/dev beside the socket in {label}");
                        None
                    }
                })
                .flatten();
            Ok((connection, handle, devs))
        })
        .await?;
        tokio::spawn(Eager::new(connection));
        tracing::debug!(ns = ?ns, "opened netlink socket");
        Ok(Conn {
            used: Default::default(),
            handle,
            dumps: Arc::default(),
            id,
            devs,
        })
    }
}

/// Reads of a `/proc/net/dev` larger than this give up (the caller then reads by netlink): a
/// namespace with that many interfaces (about 130) is not a container's.
const DEVS_READ_MAX: usize = 16 * 1024;

/// Whether `/proc/net/dev` file `devs` lists an interface whose primary name is `name`;
/// None when it could not be read whole (too large, or a read failed). An alternative name
/// (`ip link property add ... altname`) is never listed.
pub(crate) fn listed_in(devs: &Devs, name: &str) -> Option<bool> {
    use std::os::unix::fs::FileExt;
    let devs = devs.lock().unwrap_or_else(|p| p.into_inner());
    let mut buf = vec![0u8; DEVS_READ_MAX];
    let mut len = 0;
    // Offset 0 makes the kernel list anew; each read returns whole lines, at most a page.
    loop {
        match devs.read_at(&mut buf[len..], len as u64) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
        if len == buf.len() {
            return None;
        }
    }
    Some(devs_lists(&buf[..len], name))
}

/// Whether the text of a `/proc/net/dev` lists interface `name`: after two header lines,
/// one line per interface, `<spaces><name>: <counters>` (a name never holds a colon).
fn devs_lists(text: &[u8], name: &str) -> bool {
    text.split(|b| *b == b'\n').skip(2).any(|line| {
        line.iter()
            .position(|b| *b == b':')
            .is_some_and(|colon| line[..colon].trim_ascii() == name.as_bytes())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
  eth0:     936      12    0    0    0     0          0         0      866      11    0    0    0     0       0          0
wr0123456789ab:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
";

    #[test]
    fn a_listing_names_each_interface_by_its_whole_name() {
        let t = SAMPLE.as_bytes();
        for listed in ["lo", "eth0", "wr0123456789ab"] {
            assert!(devs_lists(t, listed), "{listed}");
        }
        for not in [
            "eth",
            "eth00",
            "th0",
            "",
            "face",
            "Inter-",
            "wr0123456789a",
            "0",
        ] {
            assert!(!devs_lists(t, not), "{not:?}");
        }
    }
}
