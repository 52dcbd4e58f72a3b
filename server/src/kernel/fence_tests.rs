//! The sysctl fence ([`Kernel::write_sysctl`]) against a real kernel: a sysctl write waits
//! while a netlink write holds the fence shared, and netlink writes wait while a sysctl write
//! holds it alone; a sysctl already as wanted and a delete never wait. Everything happens in
//! one namespace the test makes (its file in a temporary directory) and removes, even when
//! an assertion fails.

use std::{path::PathBuf, time::Duration};

use nix::mount::{MntFlags, umount2};

use super::{Kernel, LinkChange, NsRef, prelude::*};

/// Long enough that a write not held back by the fence has long finished.
const HELD: Duration = Duration::from_millis(300);

/// How long a write that should not wait may take, at most.
const PROMPT: Duration = Duration::from_secs(10);

/// A namespace `fence` in a temporary netns dir; unmounted and removed when dropped.
struct Scratch {
    dir: tempfile::TempDir,
    kernel: Kernel,
    ns: NsRef,
}

impl Scratch {
    async fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let own = PathBuf::from("/proc/self/ns/net");
        let kernel = Kernel::new(Some(own), dir.path().to_path_buf()).unwrap();
        let ns = NsRef::path(kernel.named_netns_path("fence"));
        // The guard first: a failure while making the namespace still unmounts what was made.
        let s = Scratch { dir, kernel, ns };
        s.kernel.create_named_netns("fence").await.unwrap();
        s
    }

    /// Sysctl `key` in the scratch namespace.
    async fn value(&self, key: &str) -> String {
        self.kernel
            .read_sysctl(&self.ns, key)
            .await
            .unwrap()
            .unwrap_or_default()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // The kernel layer's sockets keep the namespace alive: drop them first.
        self.kernel.forget(&self.ns);
        let file = self.dir.path().join("fence");
        let _ = umount2(&file, MntFlags::MNT_DETACH);
        // The dir was bind-mounted onto itself to be made shared.
        while umount2(self.dir.path(), MntFlags::MNT_DETACH).is_ok() {}
    }
}

const KEY: &str = "net/ipv4/ip_forward";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sysctl_write_waits_for_netlink_writes_in_flight_and_they_for_it() {
    let s = Scratch::new().await;
    s.kernel.ensure_sysctl(&s.ns, KEY, "0").await.unwrap();
    assert_eq!(s.value(KEY).await, "0");

    // A netlink write in flight (what `run_on` holds around one): the sysctl write waits.
    let in_flight = s.kernel.inner.sysctl_fence.read().await;
    let k = s.kernel.clone();
    let ns = s.ns.clone();
    let write = tokio::spawn(async move { k.ensure_sysctl(&ns, KEY, "1").await });
    tokio::time::sleep(HELD).await;
    assert!(!write.is_finished(), "the sysctl write did not wait");
    assert_eq!(
        s.value(KEY).await,
        "0",
        "written while a netlink write was in flight"
    );
    // One already as wanted is only read: it does not wait.
    let as_wanted = tokio::time::timeout(PROMPT, s.kernel.ensure_sysctl(&s.ns, KEY, "0")).await;
    assert!(
        matches!(as_wanted, Ok(Ok(false))),
        "a sysctl already as wanted waited or wrote: {as_wanted:?}"
    );
    drop(in_flight);
    let wrote = tokio::time::timeout(PROMPT, write).await;
    assert!(
        matches!(wrote, Ok(Ok(Ok(true)))),
        "the write once the fence was free: {wrote:?}"
    );
    assert_eq!(s.value(KEY).await, "1");

    // A sysctl write under way (the fence held alone): netlink writes wait for it, deletes
    // do not.
    s.kernel
        .create_veth(&s.ns, "fa", &s.ns, "fb")
        .await
        .unwrap();
    let fa = s.kernel.get_link(&s.ns, "fa").await.unwrap().unwrap().index;
    let lo = s.kernel.get_link(&s.ns, "lo").await.unwrap().unwrap().index;
    let alone = s.kernel.inner.sysctl_fence.write().await;
    let k = s.kernel.clone();
    let ns = s.ns.clone();
    let set = tokio::spawn(async move {
        let mtu = LinkChange {
            mtu: Some(1400),
            ..Default::default()
        };
        k.set_link(&ns, lo, &mtu).await
    });
    tokio::time::sleep(HELD).await;
    assert!(!set.is_finished(), "the netlink write did not wait");
    let lo_mtu = s.kernel.get_link(&s.ns, "lo").await.unwrap().unwrap().mtu;
    assert_ne!(lo_mtu, 1400, "set while a sysctl write held the fence");
    let deleted = tokio::time::timeout(PROMPT, s.kernel.delete_link(&s.ns, fa)).await;
    assert!(
        matches!(deleted, Ok(Ok(()))),
        "a delete waited on the fence or failed: {deleted:?}"
    );
    assert!(s.kernel.get_link(&s.ns, "fa").await.unwrap().is_none());
    drop(alone);
    let set = tokio::time::timeout(PROMPT, set).await;
    assert!(
        matches!(set, Ok(Ok(Ok(())))),
        "the netlink write once the fence was free: {set:?}"
    );
    assert_eq!(
        s.kernel.get_link(&s.ns, "lo").await.unwrap().unwrap().mtu,
        1400
    );
}

/// A netlink write holds the fence from before it is sent until it is answered, queued
/// behind another request on its socket included (a named namespace has one): here behind a
/// veth's delete, which the kernel answers only after an RCU grace period. Tried again (a new
/// veth) when the write was not queued after all (it got ahead of the delete).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_netlink_write_holds_the_fence_until_it_is_answered() {
    let s = Scratch::new().await;
    let lo = s.kernel.get_link(&s.ns, "lo").await.unwrap().unwrap().index;
    assert!(
        s.kernel.inner.sysctl_fence.try_write().is_ok(),
        "free at rest"
    );
    for attempt in 0..5u32 {
        s.kernel
            .create_veth(&s.ns, "fa", &s.ns, "fb")
            .await
            .unwrap();
        let fa = s.kernel.get_link(&s.ns, "fa").await.unwrap().unwrap().index;
        let k = s.kernel.clone();
        let ns = s.ns.clone();
        let delete = tokio::spawn(async move { k.delete_link(&ns, fa).await });
        tokio::time::sleep(Duration::from_millis(2)).await;
        let k = s.kernel.clone();
        let ns = s.ns.clone();
        let set = tokio::spawn(async move {
            let mtu = LinkChange {
                mtu: Some(1400 - attempt),
                ..Default::default()
            };
            k.set_link(&ns, lo, &mtu).await
        });
        let mut held = 0;
        let t0 = std::time::Instant::now();
        while !set.is_finished() && t0.elapsed() < PROMPT {
            if s.kernel.inner.sysctl_fence.try_write().is_err() {
                held += 1;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        // Queued: the delete was still running when the write was sent, so it ended first.
        let queued = delete.is_finished();
        let set = tokio::time::timeout(PROMPT, set).await;
        assert!(matches!(set, Ok(Ok(Ok(())))), "the netlink write: {set:?}");
        let deleted = tokio::time::timeout(PROMPT, delete).await;
        assert!(matches!(deleted, Ok(Ok(Ok(())))), "the delete: {deleted:?}");
        assert!(
            s.kernel.inner.sysctl_fence.try_write().is_ok(),
            "released once answered"
        );
        if queued {
            assert!(
                held > 0,
                "the fence was never seen held while the write was in flight"
            );
            return;
        }
    }
    panic!("the write never queued behind the delete in 5 attempts");
}
