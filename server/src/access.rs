//! Who may call what: every gRPC call is authorized from the identity of the connection it
//! arrived on, so the socket file's mode is not the only guard (snapd's model).
//!
//! - [`Peer`] is that identity: on the Unix socket, the connecting process's credentials as
//!   the kernel gave them at `connect` (`SO_PEERCRED`: uid, gid, pid) plus its supplementary
//!   groups; on TCP, a client whose certificate the TLS handshake verified against
//!   `--tls-client-ca`. [`AccessLayer`] inserts it into every request's extensions, so any
//!   later layer or handler (a per-peer limit, a log line) gets it with
//!   `request.extensions().get::<Peer>()`, and [`Peer::key`] is a stable per-peer key.
//! - [`Policy`] says what each peer may do ([`Role`]): root (uid 0), members of
//!   `--socket-group` and verified TLS clients get [`Role::Full`]; members of
//!   `--read-only-group` get [`Role::ReadOnly`]; everyone else [`Role::Stranger`].
//! - [`classify`] puts each gRPC method path in a [`Class`] from an explicit table (a new RPC
//!   that is not in the table is [`Class::Unknown`], which the unit tests refuse for every RPC
//!   of the weft.v1 descriptor set), and [`Policy::decide`] is the pure function
//!   `(method path, peer) -> Ok | PERMISSION_DENIED message` the layer applies.
//!
//! Supplementary groups come from `/proc/<pid>/status` (`Groups:`) read when the connection is
//! accepted, and count only when that file's effective uid and gid are the ones `SO_PEERCRED`
//! reported (a pid reused by another user's process gives no groups). They are the groups the
//! process really has, as the kernel's own permission check on the socket file uses, rather
//! than what `/etc/group` says of the uid (`getgrouplist`), which needs a passwd entry, misses
//! `newgrp`/`setpriv`, and can disagree with a running process. `SO_PEERGROUPS` would say the
//! same without /proc but needs an unsafe `getsockopt` this crate keeps out of its code.

use std::{
    net::SocketAddr,
    task::{Context, Poll},
};

use futures::future::Either;
use nix::unistd::{Gid, Group};
use tonic::{
    Status,
    codegen::http,
    transport::server::{TcpConnectInfo, TlsConnectInfo},
};
use tower::Service;

use crate::layer::{ShareLayer, Shared};

/// Name of the group `--socket-group` defaults to when it exists (Docker's is `docker`).
pub const DEFAULT_SOCKET_GROUP: &str = "weft";

/// A local process's credentials, as seen when it connected to the Unix socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Creds {
    /// Effective uid at `connect`.
    pub uid: u32,
    /// Effective gid at `connect`.
    pub gid: u32,
    /// Its pid in weftd's pid namespace; None when it has none there.
    pub pid: Option<i32>,
    /// Its supplementary groups (empty when they could not be read).
    pub groups: Vec<u32>,
}

impl Creds {
    /// Whether the process is in group `gid` (as its primary or a supplementary group).
    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }

    /// Reads the credentials of the process at the other end of `stream`: `SO_PEERCRED`, then
    /// its supplementary groups from /proc (see the module docs). None when the kernel gives
    /// no credentials, which [`Policy::role`] treats as a stranger.
    pub fn of(stream: &tokio::net::UnixStream) -> Option<Creds> {
        let cred = stream.peer_cred().ok()?;
        let pid = cred.pid().filter(|p| *p > 0);
        let groups = pid
            .and_then(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
            .and_then(|status| groups_from_status(&status, cred.uid(), cred.gid()))
            .unwrap_or_default();
        Some(Creds {
            uid: cred.uid(),
            gid: cred.gid(),
            pid,
            groups,
        })
    }
}

/// The supplementary groups in a `/proc/<pid>/status` text, if its effective uid and gid are
/// `uid` and `gid` (the file is of the process that connected, not of a later one that reused
/// the pid).
pub fn groups_from_status(status: &str, uid: u32, gid: u32) -> Option<Vec<u32>> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|rest| rest.split_whitespace().collect::<Vec<_>>())
    };
    // "Uid:\treal\teffective\tsaved\tfs"
    let effective = |name: &str| field(name)?.get(1)?.parse::<u32>().ok();
    if effective("Uid:")? != uid || effective("Gid:")? != gid {
        return None;
    }
    field("Groups:")?
        .into_iter()
        .map(|g| g.parse().ok())
        .collect()
}

/// The identity of the connection a request came on. See the module docs for how to get it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// A local process on the Unix socket; None when the kernel gave no credentials.
    Unix(Option<Creds>),
    /// A TCP client whose certificate is signed by `--tls-client-ca`.
    Tls {
        /// Its address.
        addr: Option<SocketAddr>,
    },
}

impl Peer {
    /// A stable key per peer, for per-peer accounting: `uid:1000`, `tls:10.0.0.1`
    /// (an address without its port: one client's connections share it).
    pub fn key(&self) -> String {
        match self {
            Peer::Unix(Some(c)) => format!("uid:{}", c.uid),
            Peer::Unix(None) => "uid:unknown".into(),
            Peer::Tls { addr: Some(a) } => format!("tls:{}", a.ip()),
            Peer::Tls { addr: None } => "tls:unknown".into(),
        }
    }

    /// Who the peer is, for messages: `uid 1000 (gid 1000)` or `TLS client 10.0.0.1:4000`.
    pub fn describe(&self) -> String {
        match self {
            Peer::Unix(Some(c)) => format!("uid {} (gid {})", c.uid, c.gid),
            Peer::Unix(None) => "a process whose credentials are unknown".into(),
            Peer::Tls { addr: Some(a) } => format!("TLS client {a}"),
            Peer::Tls { addr: None } => "a TLS client".into(),
        }
    }
}

/// What the Unix socket's connect info carries: the credentials read at accept time (see
/// [`crate::listen`]). Only [`AccessLayer`] reads it; everything else reads [`Peer`].
#[derive(Clone, Debug)]
pub struct UnixConnectInfo(pub Option<Creds>);

/// What a peer may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Every call.
    Full,
    /// Reads (Get, List, Watch, system info, reflection) and the health check.
    ReadOnly,
    /// The health check only.
    Stranger,
}

/// What a gRPC method does, for authorization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// grpc.health.v1.Health: open to everyone who can connect.
    Health,
    /// Reads state: Get*, List*, Watch*, GetSystemInfo, reflection.
    Read,
    /// Changes state.
    Write,
    /// Not in the table: only full access may call it (the router then answers UNIMPLEMENTED
    /// for a method that does not exist).
    Unknown,
}

/// weft.v1 methods that only read, by path.
const READS: &[&str] = &[
    "/weft.v1.NamespaceService/GetNamespace",
    "/weft.v1.NamespaceService/ListNamespaces",
    "/weft.v1.NamespaceService/WatchNamespaces",
    "/weft.v1.LinkService/GetLink",
    "/weft.v1.LinkService/ListLinks",
    "/weft.v1.LinkService/WatchLinks",
    "/weft.v1.NetworkService/GetNetwork",
    "/weft.v1.NetworkService/ListNetworks",
    "/weft.v1.NetworkService/WatchNetworks",
    "/weft.v1.SystemService/GetSystemInfo",
];

/// weft.v1 methods that change state, by path.
const WRITES: &[&str] = &[
    "/weft.v1.NamespaceService/CreateNamespace",
    "/weft.v1.NamespaceService/DeleteNamespace",
    "/weft.v1.LinkService/CreateLink",
    "/weft.v1.LinkService/UpdateLink",
    "/weft.v1.LinkService/DeleteLink",
    "/weft.v1.NetworkService/CreateNetwork",
    "/weft.v1.NetworkService/DeleteNetwork",
    "/weft.v1.NetworkService/PruneNetworks",
    "/weft.v1.NetworkService/Connect",
    "/weft.v1.NetworkService/Disconnect",
];

/// Classifies a gRPC method path (`/package.Service/Method`).
pub fn classify(path: &str) -> Class {
    let service = path
        .strip_prefix('/')
        .and_then(|p| p.split_once('/'))
        .map(|(s, _)| s);
    match service {
        Some("grpc.health.v1.Health") => Class::Health,
        Some(
            "grpc.reflection.v1.ServerReflection" | "grpc.reflection.v1alpha.ServerReflection",
        ) => Class::Read,
        _ if READS.contains(&path) => Class::Read,
        _ if WRITES.contains(&path) => Class::Write,
        _ => Class::Unknown,
    }
}

/// A group named on the command line, resolved to its gid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedGroup {
    /// Its gid.
    pub gid: u32,
    /// Its name in /etc/group, or the number as given when it has no entry there.
    pub name: String,
}

impl NamedGroup {
    /// Resolves `--<flag> <value>`: a group name, or a numeric gid (which need not exist in
    /// /etc/group, as in a container).
    pub fn resolve(flag: &str, value: &str) -> Result<NamedGroup, String> {
        if let Ok(gid) = value.parse::<u32>() {
            let name = Group::from_gid(Gid::from_raw(gid))
                .ok()
                .flatten()
                .map(|g| g.name)
                .unwrap_or_else(|| value.to_string());
            return Ok(NamedGroup { gid, name });
        }
        match Group::from_name(value) {
            Ok(Some(g)) => Ok(NamedGroup {
                gid: g.gid.as_raw(),
                name: g.name,
            }),
            Ok(None) => Err(format!(
                "--{flag} {value}: no such group; create it (groupadd {value}) or give a numeric gid"
            )),
            Err(e) => Err(format!("--{flag} {value}: looking the group up: {e}")),
        }
    }
}

/// Who gets which [`Role`] on the Unix socket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// `--socket-group`: full access. None when not given and no group `weft` exists.
    pub socket_group: Option<NamedGroup>,
    /// `--read-only-group`: reads only.
    pub read_only_group: Option<NamedGroup>,
}

impl Policy {
    /// Resolves the two flags: `socket_group` None means group `weft` if it exists.
    pub fn resolve(
        socket_group: Option<&str>,
        read_only_group: Option<&str>,
    ) -> Result<Policy, String> {
        let socket_group = match socket_group {
            Some(v) => Some(NamedGroup::resolve("socket-group", v)?),
            None => Group::from_name(DEFAULT_SOCKET_GROUP)
                .ok()
                .flatten()
                .map(|g| NamedGroup {
                    gid: g.gid.as_raw(),
                    name: g.name,
                }),
        };
        let read_only_group = read_only_group
            .map(|v| NamedGroup::resolve("read-only-group", v))
            .transpose()?;
        Ok(Policy {
            socket_group,
            read_only_group,
        })
    }

    /// The socket file's group owner (the socket group, if any) and mode: 0666 when there is
    /// a read-only group (a file has one group, so both groups reach it only when everyone
    /// does; each call is authorized anyway), else 0660 with a socket group, else 0600.
    pub fn socket_file(&self) -> (Option<u32>, u32) {
        let group = self.socket_group.as_ref().map(|g| g.gid);
        let mode = if self.read_only_group.is_some() {
            0o666
        } else if group.is_some() {
            0o660
        } else {
            0o600
        };
        (group, mode)
    }

    /// What `peer` may do.
    pub fn role(&self, peer: &Peer) -> Role {
        let creds = match peer {
            Peer::Tls { .. } => return Role::Full,
            Peer::Unix(None) => return Role::Stranger,
            Peer::Unix(Some(c)) => c,
        };
        let member = |g: &Option<NamedGroup>| g.as_ref().is_some_and(|g| creds.in_group(g.gid));
        if creds.uid == 0 || member(&self.socket_group) {
            Role::Full
        } else if member(&self.read_only_group) {
            Role::ReadOnly
        } else {
            Role::Stranger
        }
    }

    /// May `peer` call the method at `path`? Err is the PERMISSION_DENIED message: who the
    /// peer is, what it may not do, and the group to join.
    pub fn decide(&self, path: &str, peer: &Peer) -> Result<(), String> {
        let role = self.role(peer);
        match (classify(path), role) {
            (Class::Health, _) | (_, Role::Full) | (Class::Read, Role::ReadOnly) => Ok(()),
            (Class::Write | Class::Unknown, Role::ReadOnly) => Err(format!(
                "{} has read-only access to weftd (group {}) and may not call {path}: {}",
                peer.describe(),
                self.read_only_group
                    .as_ref()
                    .map_or("?", |g| g.name.as_str()),
                self.join_full()
            )),
            (_, Role::Stranger) => {
                let ro = self
                    .read_only_group
                    .as_ref()
                    .map(|g| format!(" (or group {} to read only)", g.name))
                    .unwrap_or_default();
                Err(format!(
                    "{} may not call {path}: {}{ro}",
                    peer.describe(),
                    self.join_full()
                ))
            }
        }
    }

    /// How to get full access.
    fn join_full(&self) -> String {
        match &self.socket_group {
            Some(g) => format!(
                "join group {} (weftd's --socket-group, gid {}) for full access",
                g.name, g.gid
            ),
            None => format!(
                "only root has full access: weftd has no --socket-group (create group \
                 {DEFAULT_SOCKET_GROUP} or set --socket-group) to let other users in"
            ),
        }
    }
}

/// Finds the [`Peer`] of a request from the connect info tonic put in its extensions: the
/// Unix socket's [`UnixConnectInfo`], or TLS with a verified client certificate. A TCP
/// connection without TLS (weftd never serves one) or without a certificate is None.
pub fn peer_of(ext: &http::Extensions) -> Option<Peer> {
    if let Some(UnixConnectInfo(creds)) = ext.get::<UnixConnectInfo>() {
        return Some(Peer::Unix(creds.clone()));
    }
    let tls = ext.get::<TlsConnectInfo<TcpConnectInfo>>()?;
    tls.peer_certs().filter(|c| !c.is_empty())?;
    Some(Peer::Tls {
        addr: tls.get_ref().remote_addr(),
    })
}

/// The tower layer that authorizes every call with a [`Policy`] and inserts the [`Peer`].
pub type AccessLayer = ShareLayer<Policy>;

/// The service [`AccessLayer`] makes.
pub type AccessService<S> = Shared<S, Policy>;

impl<S, B, R> Service<http::Request<B>> for Shared<S, Policy>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    R: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<futures::future::Ready<Result<S::Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let path = req.uri().path();
        let verdict = match peer_of(req.extensions()) {
            Some(peer) => self.value.decide(path, &peer).map(|()| peer),
            None => Err(format!(
                "{path}: the connection has no verified identity (TCP needs a client \
                 certificate signed by weftd's --tls-client-ca)"
            )),
        };
        match verdict {
            Ok(peer) => {
                req.extensions_mut().insert(peer);
                Either::Right(self.inner.call(req))
            }
            Err(msg) => {
                tracing::debug!(%path, %msg, "call refused");
                Either::Left(futures::future::ready(Ok(
                    Status::permission_denied(msg).into_http()
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests;
