//! The `NETLINK_NETFILTER` socket: one `sendmsg` per batch with its acks drained, and the
//! request/reply loop that dumps and element lookups share.
//!
//! # Batches: every page in one `sendmsg`
//! A finalised `nftnl::Batch` is a list of pages (128 KiB each), framed by `BATCH_BEGIN` and
//! `BATCH_END`. nftnl's own example sends one page per `sendto`. That has two failure modes,
//! both seen here (KERNEL-NOTES): at about 300 rules the acks overflow the receive buffer
//! (`ENOBUFS` on the next read, although the batch *was* committed), and past about 400 the
//! batch is split across `sendto`s and not applied at all. So [`Socket::send_batch`]:
//! 1. raises `SO_SNDBUFFORCE` to the batch's size (plus slack), so one `sendmsg` can carry
//!    all of it, and `SO_RCVBUFFORCE` to fit an ack per message (error acks echo the failed
//!    message, up to 64 KiB, hence the generous sizing); the `FORCE` variants ignore
//!    `net.core.[rw]mem_max`, which needs `CAP_NET_ADMIN`, which weftd has anyway;
//! 2. drains anything a previous call left in the queue, so no stale ack is read as ours;
//! 3. sends every page in **one** `sendmsg` (an iovec of pages): one batch, one transaction;
//! 4. reads the acks *without blocking*: the kernel processes a netfilter batch inside that
//!    `sendmsg`, so when it returns every ack is already queued (this is what `nft` does).
//!    An empty queue (`EAGAIN`) means all were read. The first non-zero errno wins, and is
//!    reported with the message it belongs to (see [`super::wire::describe_failed`]); the
//!    kernel rolled the whole batch back.
//!
//! # Reads
//! A dump ([`Socket::dump`]) is one request with `NLM_F_DUMP`, answered by as many messages
//! as the objects fill, across as many `recv`s, then `NLMSG_DONE`. The receive buffer is
//! 1 MiB so one `recv` takes what the kernel offers. Replies are matched on the request's
//! sequence number; anything else in the queue is skipped. A dump of a table or set that does
//! not exist fails with `ENOENT`, which reads as an empty list.
//!
//! Lookups of single elements ([`Socket::get_elements`]) are pipelined: up to 256 requests
//! concatenated into one `sendmsg`, each with its own sequence number and `NLM_F_ACK`, then
//! replies are read until each sequence number has its ack. A key that is not there answers
//! `ENOENT`, which is not an error here; it is simply not in the result.

use std::{
    collections::HashSet,
    io::IoSlice,
    os::fd::{AsRawFd, OwnedFd},
};

use nftnl::{Batch, nftnl_sys::libc};
use nix::{
    errno::Errno,
    sys::socket::{
        AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv,
        sendmsg, setsockopt, socket,
        sockopt::{RcvBufForce, SndBufForce},
    },
};

use super::{
    Element,
    abi::{
        NFT_MSG_GETSETELEM, NLA_F_NESTED, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE,
        NLMSG_ERROR, attr,
    },
    cstring_bytes, family_code, kernel_error,
    wire::{Reply, describe_failed, messages_in, nest, nla, parse_elements, request_msg},
};
use crate::kernel::{KernelError, error, firewall::plan::TableFamily};

/// Receive buffer for one `recv`: dumps fill up to what the reader offers.
const RECV_BUF: usize = 1 << 20;

/// Element lookups sent in one `sendmsg`: bounded so the queued replies stay well inside the
/// receive buffer.
const LOOKUP_CHUNK: usize = 256;

/// A `NETLINK_NETFILTER` socket, created in whatever namespace the calling thread is in.
///
/// It is used by one thread at a time (`&mut self` everywhere) and keeps its own sequence
/// numbers for the requests it writes; batches carry nftnl's.
pub(in crate::kernel::firewall) struct Socket {
    fd: OwnedFd,
    /// The last sequence number used for a GET request.
    seq: u32,
    /// Where `recv` writes; reused by every read.
    buf: Vec<u8>,
}

impl Socket {
    /// Opens and binds the socket. Call it on a thread that is inside the target namespace:
    /// the socket belongs to the namespace it was created in, whatever thread uses it later.
    pub(in crate::kernel::firewall) fn open() -> Result<Self, KernelError> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkNetFilter,
        )
        .map_err(|e| error::sys("open nftables netlink socket", e))?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))
            .map_err(|e| error::sys("bind nftables netlink socket", e))?;
        // Large enough for the usual replies; raised per batch below.
        setsockopt(&fd, RcvBufForce, &(4 << 20))
            .map_err(|e| error::sys("set SO_RCVBUFFORCE", e))?;
        Ok(Self {
            fd,
            // Far from nftnl's batch sequence numbers, so a stray ack cannot be mistaken.
            seq: 0x4000_0000,
            buf: vec![0; RECV_BUF],
        })
    }

    /// A fresh sequence number for a request.
    pub(super) fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Sends `iov` to the kernel (port 0) in one `sendmsg`; returns the bytes sent.
    fn send(&self, iov: &[IoSlice<'_>]) -> nix::Result<usize> {
        let kernel = NetlinkAddr::new(0, 0);
        sendmsg(
            self.fd.as_raw_fd(),
            iov,
            &[],
            MsgFlags::empty(),
            Some(&kernel),
        )
    }

    /// One `recv` into [`Socket::buf`], retried on `EINTR`; returns the bytes read.
    fn recv(&mut self, flags: MsgFlags) -> nix::Result<usize> {
        loop {
            match recv(self.fd.as_raw_fd(), &mut self.buf, flags) {
                Err(Errno::EINTR) => {}
                other => return other,
            }
        }
    }

    /// Sends a finalised batch in one `sendmsg` and collects the acks: Ok if the kernel
    /// committed it, else the first error it reported (the whole batch was rolled back).
    pub(in crate::kernel::firewall) fn send_batch(
        &mut self,
        batch: Batch,
    ) -> Result<(), KernelError> {
        let batch = batch.finalize();
        let pages: Vec<&[u8]> = batch.iter().collect();
        let total: usize = pages.iter().map(|p| p.len()).sum();
        let messages = batch.sequence_numbers().len();
        setsockopt(&self.fd, SndBufForce, &(total + (64 << 10)))
            .map_err(|e| error::sys("set SO_SNDBUFFORCE", e))?;
        // Error acks echo the failed message (up to 64 KiB); leave room for a few.
        let rcv = (messages * 2048 + (1 << 20)).clamp(4 << 20, 256 << 20);
        setsockopt(&self.fd, RcvBufForce, &rcv).map_err(|e| error::sys("set SO_RCVBUFFORCE", e))?;
        self.drain()?;
        let iov: Vec<IoSlice<'_>> = pages.iter().map(|p| IoSlice::new(p)).collect();
        let sent = self
            .send(&iov)
            .map_err(|e| error::sys("send nftables batch", e))?;
        if sent != total {
            return Err(error::sys(
                format!("send nftables batch: sent {sent} of {total} bytes"),
                Errno::EMSGSIZE,
            ));
        }
        let mut first_error: Option<(i32, String)> = None;
        loop {
            let n = match self.recv(MsgFlags::MSG_DONTWAIT) {
                Ok(0) | Err(Errno::EAGAIN) => break,
                Ok(n) => n,
                Err(e) => return Err(error::sys("read nftables batch acks", e)),
            };
            for msg in messages_in(&self.buf[..n]) {
                if msg.ty == NLMSG_ERROR
                    && let Some(code) = msg.error_code()
                    && code != 0
                    && first_error.is_none()
                {
                    first_error = Some((
                        code.abs(),
                        describe_failed(&msg, batch.sequence_numbers().start),
                    ));
                }
            }
        }
        match first_error {
            None => Ok(()),
            Some((errno, which)) => Err(kernel_error(&format!("nftables batch ({which})"), errno)),
        }
    }

    /// Reads and discards anything left in the receive queue.
    pub(super) fn drain(&mut self) -> Result<(), KernelError> {
        loop {
            match self.recv(MsgFlags::MSG_DONTWAIT) {
                Ok(0) | Err(Errno::EAGAIN) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(error::sys("drain nftables socket", e)),
            }
        }
    }

    /// Sends one request and returns every reply message with its sequence number until the
    /// dump's `NLMSG_DONE` or the request's ack. A kernel error is returned as such.
    fn request(&mut self, msg: &[u8], seq: u32, what: &str) -> Result<Vec<Reply>, KernelError> {
        self.drain()?;
        self.send(&[IoSlice::new(msg)])
            .map_err(|e| error::sys(format!("send {what}"), e))?;
        let mut out = Vec::new();
        loop {
            let n = self
                .recv(MsgFlags::empty())
                .map_err(|e| error::sys(format!("read {what}"), e))?;
            for m in messages_in(&self.buf[..n]) {
                if m.seq != seq {
                    continue;
                }
                match m.ty {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => {
                        return match m.error_code() {
                            Some(0) => Ok(out),
                            Some(code) => Err(kernel_error(what, code.abs())),
                            None => Err(error::sys(format!("{what}: short ack"), Errno::EBADMSG)),
                        };
                    }
                    _ => out.push(Reply::of(&m)),
                }
            }
        }
    }

    /// Dumps objects of one kind (`NFT_MSG_GET*` with `NLM_F_DUMP`). A missing table or set
    /// (`ENOENT`) is an empty list.
    pub(super) fn dump(
        &mut self,
        msg_type: u16,
        family: u8,
        attrs: &[(u16, &[u8])],
        what: &str,
    ) -> Result<Vec<Reply>, KernelError> {
        let seq = self.next_seq();
        let msg = request_msg(msg_type, NLM_F_REQUEST | NLM_F_DUMP, family, seq, attrs);
        match self.request(&msg, seq, what) {
            Err(e) if e.errno() == Some(libc::ENOENT) => Ok(Vec::new()),
            other => other,
        }
    }

    /// Looks up specific keys of one map (non-dump `GETSETELEM`, one request per key, all
    /// sent at once). Returns the stored element for each key that exists.
    pub(in crate::kernel::firewall) fn get_elements(
        &mut self,
        family: TableFamily,
        table: &str,
        set: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Element>, KernelError> {
        let mut found = Vec::new();
        for chunk in keys.chunks(LOOKUP_CHUNK) {
            self.drain()?;
            let t = cstring_bytes(table);
            let s = cstring_bytes(set);
            let mut buf = Vec::new();
            let mut pending = HashSet::new();
            for key in chunk {
                let seq = self.next_seq();
                pending.insert(seq);
                let elements = nest(
                    attr::LIST_ELEM,
                    &nest(attr::ELEM_KEY, &nla(attr::DATA_VALUE, key)),
                );
                let msg = request_msg(
                    NFT_MSG_GETSETELEM,
                    NLM_F_REQUEST | NLM_F_ACK,
                    family_code(family),
                    seq,
                    &[
                        (attr::ELEM_LIST_TABLE, &t),
                        (attr::ELEM_LIST_SET, &s),
                        (attr::ELEM_LIST_ELEMENTS | NLA_F_NESTED, &elements),
                    ],
                );
                buf.extend_from_slice(&msg);
            }
            self.send(&[IoSlice::new(&buf)])
                .map_err(|e| error::sys("send nftables element lookups", e))?;
            while !pending.is_empty() {
                let n = self
                    .recv(MsgFlags::empty())
                    .map_err(|e| error::sys("read nftables element lookups", e))?;
                for m in messages_in(&self.buf[..n]) {
                    if !pending.contains(&m.seq) {
                        continue;
                    }
                    if m.ty == NLMSG_ERROR {
                        let code = m.error_code().unwrap_or(-libc::EBADMSG);
                        if code != 0 && code.abs() != libc::ENOENT {
                            return Err(kernel_error("look up nftables set elements", code.abs()));
                        }
                        pending.remove(&m.seq);
                    } else if m.payload.len() >= 4 {
                        parse_elements(&m.payload[4..], &mut found);
                    }
                }
            }
        }
        Ok(found)
    }
}
