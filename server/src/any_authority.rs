//! Any `:authority` on the Unix socket: the client's HTTP/2 header blocks are rewritten on
//! the byte stream, before h2 reads them, so an `:authority` h2 would refuse becomes
//! `localhost`.
//!
//! Why: grpcio >= 1.57 (`grpc.insecure_channel("unix:/run/weft/weftd.sock")`), grpc-java and
//! grpc-go before 1.5x (grpcurl 1.8.6 without `-authority`) send the socket path as the HTTP/2
//! `:authority`. h2, the HTTP/2 under tonic, parses every `:authority` with
//! `http::uri::Authority` and resets the stream with PROTOCOL_ERROR when that fails
//! (h2 `server.rs`, "malformed authority"; the upstream change to relax it is still open),
//! so every call of those clients failed. An authority means nothing on a Unix socket, and
//! nothing in weftd reads it.
//!
//! How: [`AnyAuthority`] wraps the accepted Unix stream (below tonic, hyper and h2, above
//! nothing but the socket: the access layer's `SO_PEERCRED` is read from the socket itself
//! before wrapping, and the admission wrapper counts the wrapped connection as any other).
//! On the client-to-server direction it follows the HTTP/2 frames: the 24-byte preface, then
//! frame headers; every frame but HEADERS and CONTINUATION passes through unchanged and
//! unbuffered (a DATA payload is read straight into h2's buffer). A header block (a HEADERS
//! frame and its CONTINUATIONs, padding removed, priority kept) is decoded in full by
//! [`hpack::Decoder`], which keeps the client's dynamic table (entries, evictions and the
//! table size updates, up to HTTP/2's default 4096 bytes that h2 announces), an
//! `:authority` that `http::uri::Authority` refuses (the very check h2 makes) is replaced by
//! `localhost` (what grpc-go itself sends on a Unix socket), and the block is encoded again
//! with every field a literal *without indexing*: h2's decoder table therefore stays empty
//! and can never disagree with ours, whatever the client indexes. The block goes on as a
//! HEADERS frame and CONTINUATIONs of at most 16,384 bytes, the frame size every HTTP/2 peer
//! must accept. The server-to-client direction is not touched.
//!
//! Every block is re-encoded, not only those with a bad authority, so there is one path, the
//! one every test exercises. It costs a few microseconds per call (the unit test
//! `rewrite_is_cheap` times a tonic client's first block and a later one). What h2 would refuse for itself
//! (a HEADERS inside another block, a CONTINUATION without one, a broken HPACK block)
//! closes the connection here with an error, as h2 would with a connection error; a block
//! over 64 KiB, compressed or decoded, does too: h2 under hyper accepts 16 KiB of headers
//! per request, and the bound keeps what one connection can make weftd hold small.
//! Input that does not start with the HTTP/2 preface is passed on untouched, for h2 to refuse.

use std::{
    io,
    ops::ControlFlow,
    pin::Pin,
    task::{Context, Poll, ready},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::codegen::http::uri::Authority;

mod hpack;
use hpack::Decoder;

/// The closes of clients' connections on what could not be rewritten, logged at most once per
/// 10 s: a local client that keeps sending broken HTTP/2 must not fill the log.
static BROKEN_LOG: crate::logging::Throttle =
    crate::logging::Throttle::new(std::time::Duration::from_secs(10));

/// The client connection preface every HTTP/2 connection starts with.
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Length of an HTTP/2 frame header.
const FRAME_HEADER: usize = 9;
/// Frame types.
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
/// Frame flags.
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The largest frame every HTTP/2 peer accepts (the least SETTINGS_MAX_FRAME_SIZE).
const MAX_FRAME_OUT: usize = 16_384;
/// HTTP/2's default SETTINGS_HEADER_TABLE_SIZE, which h2 under tonic keeps (it announces no
/// other), so the most a client's table size update may ask for.
const HEADER_TABLE_SIZE: usize = 4096;
/// The most bytes of one header block kept, compressed or decoded (RFC 7541 sizes): four
/// times the 16 KiB header list hyper lets h2 accept, so nothing h2 would take is refused.
const MAX_BLOCK: usize = 64 << 10;
/// What replaces an `:authority` h2 would refuse.
pub const REPLACEMENT: &[u8] = b"localhost";

/// A connection whose client header blocks reach h2 with an `:authority` it accepts.
#[derive(Debug)]
pub struct AnyAuthority<IO> {
    io: IO,
    rx: Rewriter,
}

impl<IO> AnyAuthority<IO> {
    /// Wraps `io`, the server side of an HTTP/2 connection.
    pub fn new(io: IO) -> Self {
        Self {
            io,
            rx: Rewriter::default(),
        }
    }
}

/// A header block being gathered: its HEADERS frame and the CONTINUATIONs so far.
#[derive(Debug)]
struct Block {
    stream: [u8; 4],
    flags: u8,
    priority: Option<[u8; 5]>,
    fragment: Vec<u8>,
}

/// The client-to-server direction: bytes read, bytes ready for h2, where in the frames we are.
struct Rewriter {
    /// Read from the socket, not yet looked at (from `raw_at` on).
    raw: Vec<u8>,
    raw_at: usize,
    /// Ready for h2 (from `ready_at` on).
    ready: Vec<u8>,
    ready_at: usize,
    /// A read buffer, kept.
    scratch: Vec<u8>,
    /// Preface bytes checked so far; `None` once it is through.
    preface: Option<usize>,
    /// Not HTTP/2: everything passes untouched.
    bypass: bool,
    /// Bytes of the current frame's payload still to pass through.
    pass: usize,
    block: Option<Block>,
    decoder: Decoder,
    eof: bool,
}

impl std::fmt::Debug for Rewriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rewriter")
            .field("pass", &self.pass)
            .field("block", &self.block)
            .finish_non_exhaustive()
    }
}

impl Default for Rewriter {
    fn default() -> Self {
        Self {
            raw: Vec::new(),
            raw_at: 0,
            ready: Vec::new(),
            ready_at: 0,
            scratch: vec![0; 16 * 1024],
            preface: Some(0),
            bypass: false,
            pass: 0,
            block: None,
            decoder: Decoder::new(HEADER_TABLE_SIZE),
            eof: false,
        }
    }
}

/// A connection error: the client broke HTTP/2 in a way h2 would refuse too.
fn broken(what: impl Into<String>) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("HTTP/2 from the client: {}", what.into()),
    )
}

impl Rewriter {
    /// Moves `n` raw bytes to the ready ones, unchanged.
    fn pass_on(&mut self, n: usize) {
        self.ready
            .extend_from_slice(&self.raw[self.raw_at..self.raw_at + n]);
        self.raw_at += n;
    }

    /// Turns as much of the raw bytes into ready ones as complete frames allow.
    fn process(&mut self) -> io::Result<()> {
        loop {
            let avail = self.raw.len() - self.raw_at;
            if avail == 0 {
                break;
            }
            if self.bypass {
                self.pass_on(avail);
                break;
            }
            if let Some(seen) = self.preface {
                let n = (PREFACE.len() - seen).min(avail);
                if self.raw[self.raw_at..self.raw_at + n] != PREFACE[seen..seen + n] {
                    self.bypass = true;
                    continue;
                }
                self.pass_on(n);
                self.preface = (seen + n < PREFACE.len()).then_some(seen + n);
                continue;
            }
            if self.pass > 0 {
                let n = self.pass.min(avail);
                self.pass_on(n);
                self.pass -= n;
                continue;
            }
            if avail < FRAME_HEADER {
                break;
            }
            let head = &self.raw[self.raw_at..self.raw_at + FRAME_HEADER];
            let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
            let (kind, flags) = (head[3], head[4]);
            let stream = [head[5], head[6], head[7], head[8]];
            if self.block.is_some() && kind != CONTINUATION {
                return Err(broken(
                    "a frame other than CONTINUATION inside a header block",
                ));
            }
            if kind != HEADERS && kind != CONTINUATION {
                self.pass_on(FRAME_HEADER);
                self.pass = len;
                continue;
            }
            if len > MAX_BLOCK {
                return Err(broken(format!("a header frame of {len} bytes")));
            }
            if avail < FRAME_HEADER + len {
                break;
            }
            let start = self.raw_at + FRAME_HEADER;
            let payload = &self.raw[start..start + len];
            if kind == HEADERS {
                self.block = Some(headers_frame(flags, stream, payload)?);
            } else {
                let block = self
                    .block
                    .as_mut()
                    .filter(|b| b.stream == stream)
                    .ok_or_else(|| broken("a CONTINUATION frame outside its header block"))?;
                if block.fragment.len() + payload.len() > MAX_BLOCK {
                    return Err(broken("a header block over 64 KiB"));
                }
                block.fragment.extend_from_slice(payload);
            }
            self.raw_at = start + len;
            if flags & END_HEADERS != 0
                && let Some(block) = self.block.take()
            {
                let fields = rewrite(&mut self.decoder, &block.fragment)?;
                emit(&block, &fields, &mut self.ready);
            }
        }
        if self.raw_at == self.raw.len() {
            self.raw.clear();
            self.raw_at = 0;
        }
        Ok(())
    }

    /// Copies ready bytes into `buf`; false if there were none.
    fn hand_over(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        let ready = &self.ready[self.ready_at..];
        if ready.is_empty() {
            return false;
        }
        let n = ready.len().min(buf.remaining());
        buf.put_slice(&ready[..n]);
        self.ready_at += n;
        if self.ready_at == self.ready.len() {
            self.ready.clear();
            self.ready_at = 0;
        }
        true
    }
}

/// The header block fragment of a HEADERS frame's payload, without padding, with priority.
fn headers_frame(flags: u8, stream: [u8; 4], payload: &[u8]) -> io::Result<Block> {
    let mut p = payload;
    let mut pad = 0;
    if flags & PADDED != 0 {
        let (&n, rest) = p
            .split_first()
            .ok_or_else(|| broken("a padded HEADERS frame without a pad length"))?;
        pad = usize::from(n);
        p = rest;
    }
    let mut priority = None;
    if flags & PRIORITY != 0 {
        let (prio, rest) = p
            .split_first_chunk::<5>()
            .ok_or_else(|| broken("a HEADERS frame too short for its priority"))?;
        priority = Some(*prio);
        p = rest;
    }
    let end = p
        .len()
        .checked_sub(pad)
        .ok_or_else(|| broken("a HEADERS frame with more padding than payload"))?;
    Ok(Block {
        stream,
        flags,
        priority,
        fragment: p[..end].to_vec(),
    })
}

/// Decodes a complete header block (keeping the client's dynamic table) and encodes it again
/// as literals without indexing, with an `:authority` h2 would refuse replaced.
fn rewrite(decoder: &mut Decoder, block: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(block.len() + 64);
    let mut size = 0usize;
    decoder
        .decode(block, |name, value| {
            size += name.len() + value.len() + 32;
            if size > MAX_BLOCK {
                // Stop now: a few octets naming a large table entry, over and over, would
                // otherwise make this copy far more than the block holds.
                return ControlFlow::Break(());
            }
            let value = if name == b":authority" && Authority::try_from(value).is_err() {
                REPLACEMENT
            } else {
                value
            };
            // Literal Header Field without Indexing, New Name (RFC 7541 6.2.2).
            out.push(0);
            literal(name, &mut out);
            literal(value, &mut out);
            ControlFlow::Continue(())
        })
        .map_err(|e| broken(format!("a header block HPACK cannot decode: {e}")))?;
    if size > MAX_BLOCK {
        return Err(broken("a header block over 64 KiB decoded"));
    }
    Ok(out)
}

/// An HPACK string literal, not Huffman-coded.
fn literal(s: &[u8], out: &mut Vec<u8>) {
    hpack::encode_integer(s.len(), 7, 0, out);
    out.extend_from_slice(s);
}

/// Appends a frame header.
fn frame_header(len: usize, kind: u8, flags: u8, stream: [u8; 4], out: &mut Vec<u8>) {
    out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
    out.extend_from_slice(&stream);
}

/// Appends `fields` as `block`'s HEADERS frame and as many CONTINUATIONs as the size needs.
fn emit(block: &Block, fields: &[u8], out: &mut Vec<u8>) {
    let prio = block.priority.map_or(0, |_| 5);
    let first = fields.len().min(MAX_FRAME_OUT - prio);
    let (head, mut rest) = fields.split_at(first);
    let mut flags = block.flags & (END_STREAM | PRIORITY);
    if rest.is_empty() {
        flags |= END_HEADERS;
    }
    frame_header(prio + head.len(), HEADERS, flags, block.stream, out);
    if let Some(p) = block.priority {
        out.extend_from_slice(&p);
    }
    out.extend_from_slice(head);
    while !rest.is_empty() {
        let (chunk, more) = rest.split_at(rest.len().min(MAX_FRAME_OUT));
        let flags = if more.is_empty() { END_HEADERS } else { 0 };
        frame_header(chunk.len(), CONTINUATION, flags, block.stream, out);
        out.extend_from_slice(chunk);
        rest = more;
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for AnyAuthority<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let rx = &mut this.rx;
        loop {
            if rx.hand_over(buf) || rx.eof || buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            // Inside a payload that passes unchanged, with nothing buffered: straight into
            // h2's buffer, no copy.
            if rx.pass > 0 && rx.raw_at == rx.raw.len() && rx.preface.is_none() && !rx.bypass {
                let limit = rx.pass.min(buf.remaining());
                let mut direct = ReadBuf::new(buf.initialize_unfilled_to(limit));
                ready!(Pin::new(&mut this.io).poll_read(cx, &mut direct))?;
                let n = direct.filled().len();
                buf.advance(n);
                rx.pass -= n;
                rx.eof = n == 0;
                return Poll::Ready(Ok(()));
            }
            let mut read = ReadBuf::new(&mut rx.scratch);
            ready!(Pin::new(&mut this.io).poll_read(cx, &mut read))?;
            let got = read.filled().len();
            if got == 0 {
                // The client closed: what is left (an incomplete frame) goes on as it is.
                let left = rx.raw.len() - rx.raw_at;
                rx.pass_on(left);
                rx.eof = true;
                continue;
            }
            rx.raw.extend_from_slice(&rx.scratch[..got]);
            if let Err(e) = rx.process() {
                // hyper ends the connection on it without a word: every call on it is
                // reset, which the client sees as a transport error.
                match BROKEN_LOG.note() {
                    None => {}
                    Some(0) => tracing::warn!(
                        error = %e,
                        "closing a client's connection on the Unix socket"
                    ),
                    Some(more) => tracing::warn!(
                        error = %e,
                        "closing a client's connection on the Unix socket ({more} more closed \
                         since the last such line)"
                    ),
                }
                return Poll::Ready(Err(e));
            }
        }
    }
}

crate::delegate::delegate_async_write!([IO: AsyncWrite + Unpin] AnyAuthority<IO> => io);

#[cfg(test)]
mod tests;
