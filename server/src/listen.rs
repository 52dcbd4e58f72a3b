//! The listeners: the Unix socket, created with its final owner and mode, whose connections
//! carry the peer's credentials, and the TLS settings TCP requires.
//!
//! The socket is bound inside a private directory (mode 0700, beside the final path), given
//! its group and mode there, and only then renamed onto the final path, so there is no moment
//! at which it is reachable with a wider mode than intended, whatever weftd's umask (a umask
//! change would be process-wide and race with every other thread creating files).

use std::{
    os::unix::fs::{DirBuilderExt, PermissionsExt},
    path::{Path, PathBuf},
    pin::Pin,
    task::{Context, Poll},
};

use anyhow::{Context as _, bail};
use futures::{Stream, StreamExt};
use tokio::{
    io::{AsyncRead, ReadBuf},
    net::{UnixListener, UnixStream},
};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::{Certificate, Identity, ServerTlsConfig, server::Connected};

use crate::{
    access::{Creds, UnixConnectInfo},
    any_authority::AnyAuthority,
    config::TlsFiles,
};

/// Binds the Unix socket at `path` with group owner `group` (None: weftd's own) and `mode`:
/// removes a stale socket file, refuses if another weftd answers on it.
pub async fn bind_unix(path: &Path, group: Option<u32>, mode: u32) -> anyhow::Result<UnixListener> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    if path.exists() && UnixStream::connect(path).await.is_ok() {
        bail!(
            "{} is in use: is another weftd running? (--socket to use another path)",
            path.display()
        );
    }
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "weftd.sock".into());
    let private = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    // A leftover of a crashed start with our pid (after a pid wrap): ours to remove.
    let _ = std::fs::remove_dir_all(&private);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .with_context(|| format!("creating {}", private.display()))?;
    let result = bind_in(&private, path, group, mode);
    let _ = std::fs::remove_dir_all(&private);
    result
}

/// Binds `private/s`, sets its group and mode, and renames it to `path`.
fn bind_in(
    private: &Path,
    path: &Path,
    group: Option<u32>,
    mode: u32,
) -> anyhow::Result<UnixListener> {
    let tmp: PathBuf = private.join("s");
    let listener =
        UnixListener::bind(&tmp).with_context(|| format!("binding {}", tmp.display()))?;
    if group.is_some() {
        std::os::unix::fs::chown(&tmp, None, group).with_context(|| {
            format!(
                "giving {} to group {}",
                path.display(),
                group.unwrap_or_default()
            )
        })?;
    }
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("moving the socket to {}", path.display()))?;
    Ok(listener)
}

/// The connections of `listener`, each carrying its peer's [`Creds`] (read once, at accept)
/// as tonic connect info, each read through [`AnyAuthority`].
pub fn unix_incoming(
    listener: UnixListener,
) -> impl Stream<Item = std::io::Result<UnixConn>> + Send + 'static {
    UnixListenerStream::new(listener).map(|res| {
        res.map(|io| {
            // The credentials are the socket's, read before any wrapper.
            let creds = Creds::of(&io);
            UnixConn {
                io: AnyAuthority::new(io),
                creds,
            }
        })
    })
}

/// A Unix socket connection and its peer's credentials. Its client header blocks are
/// rewritten so that any `:authority` reaches h2 as one it accepts ([`AnyAuthority`]).
#[derive(Debug)]
pub struct UnixConn {
    io: AnyAuthority<UnixStream>,
    creds: Option<Creds>,
}

impl Connected for UnixConn {
    type ConnectInfo = UnixConnectInfo;

    fn connect_info(&self) -> UnixConnectInfo {
        UnixConnectInfo(self.creds.clone())
    }
}

impl AsyncRead for UnixConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

crate::delegate::delegate_async_write!([] UnixConn => io);

/// How long a TCP client has to complete the TLS handshake before weftd closes it.
pub const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The TLS settings of the TCP listener: weftd's certificate and key, and the CA every client
/// certificate must be signed by (a client without one is refused in the handshake, and one
/// that does not finish it within [`TLS_HANDSHAKE_TIMEOUT`] is closed).
pub fn tls_config(files: &TlsFiles) -> anyhow::Result<ServerTlsConfig> {
    let read = |p: &Path, what: &str| {
        std::fs::read(p).with_context(|| format!("reading {what} {}", p.display()))
    };
    let cert = read(&files.cert, "--tls-cert")?;
    let key = read(&files.key, "--tls-key")?;
    let ca = read(&files.client_ca, "--tls-client-ca")?;
    Ok(ServerTlsConfig::new()
        .identity(Identity::from_pem(cert, key))
        .client_ca_root(Certificate::from_pem(ca))
        .client_auth_optional(false)
        // A TCP connection holds a place among the connections from its accept on; one that
        // never completes its handshake must give it back.
        .timeout(TLS_HANDSHAKE_TIMEOUT))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    use super::*;

    /// The socket appears at its path only once, with its final mode, replacing a stale one;
    /// the private directory is gone; a live socket is refused.
    #[tokio::test]
    async fn socket_is_renamed_into_place_with_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.sock");
        // A stale socket file: bound, then its listener dropped.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let listener = bind_unix(&path, None, 0o640).await.unwrap();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.mode() & 0o7777, 0o640);
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, [std::ffi::OsString::from("w.sock")]);
        // It is the listener's socket: a client gets through.
        let (conn, accepted) = tokio::join!(UnixStream::connect(&path), listener.accept());
        conn.unwrap();
        accepted.unwrap();
        let err = bind_unix(&path, None, 0o600).await.unwrap_err();
        assert!(err.to_string().contains("is in use"), "{err}");
    }
}
