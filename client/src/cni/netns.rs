//! A read-only look into a container's network namespace, for CHECK: the MAC and addresses of
//! one interface, read with `getifaddrs` on a thread that joined the namespace. Nothing is
//! changed; the thread ends after reading, so the process's own namespace is untouched.

use std::fs::File;
use std::net::IpAddr;

use nix::sched::{CloneFlags, setns};

/// What CHECK needs to know of an interface inside the namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// Its MAC, `aa:bb:..` in lower case; empty if the interface has no link-layer address.
    pub mac: String,
    /// Its IPv4 and IPv6 addresses, without prefix lengths (CHECK compares hosts only).
    pub addrs: Vec<IpAddr>,
}

/// Interface `ifname` in the namespace at `path`: `Ok(None)` when it is not there, `Err` when
/// the namespace cannot be entered (gone, not a namespace, no permission).
///
/// `setns(CLONE_NEWNET)` moves only the calling thread, so it runs on a fresh thread that
/// ends afterwards: the async runtime's thread never changes namespace. The caller blocks
/// for the few system calls that takes. An interface without addresses is still found, by
/// its link-layer (`AF_PACKET`) entry. Entering needs `CAP_SYS_ADMIN`, which runtimes
/// running plugins as root have.
pub fn interface(path: &str, ifname: &str) -> Result<Option<Seen>, String> {
    let path = path.to_string();
    let ifname = ifname.to_string();
    std::thread::spawn(move || -> Result<Option<Seen>, String> {
        let f = File::open(&path).map_err(|e| format!("open {path}: {e}"))?;
        setns(&f, CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("{path} is not a network namespace one can enter: {e}"))?;
        let all = nix::ifaddrs::getifaddrs().map_err(|e| format!("getifaddrs in {path}: {e}"))?;
        let mut seen: Option<Seen> = None;
        for a in all.filter(|a| a.interface_name == ifname) {
            let s = seen.get_or_insert_with(Seen::default);
            let Some(addr) = a.address else { continue };
            if let Some(l) = addr.as_link_addr().and_then(|l| l.addr()) {
                s.mac = l
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(":");
            } else if let Some(v4) = addr.as_sockaddr_in() {
                s.addrs.push(IpAddr::V4(v4.ip()));
            } else if let Some(v6) = addr.as_sockaddr_in6() {
                s.addrs.push(IpAddr::V6(v6.ip()));
            }
        }
        Ok(seen)
    })
    .join()
    .map_err(|_| "the namespace reader panicked".to_string())?
}
