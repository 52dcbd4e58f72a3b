//! The rewrite against the real h2 server (the version tonic uses): header blocks built by
//! hand as the clients send them (dynamic table entries, a table size update, padding,
//! priority, CONTINUATION frames), and a canary that h2 alone still refuses them.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;

/// An HPACK string literal.
fn lit(s: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    literal(s, &mut v);
    v
}

/// Literal with incremental indexing, name from static index `idx` (RFC 7541 6.2.1).
fn indexed_name_incremental(idx: u8, value: &[u8]) -> Vec<u8> {
    let mut v = vec![0x40 | idx];
    v.extend(lit(value));
    v
}

/// A request's header block as grpcio sends its first one: `:path`, `:authority` (the
/// socket path), `te` and `content-type` inserted into the dynamic table (so afterwards
/// content-type is index 62, te 63, authority 64, path 65).
fn first_block(path: &str, authority: &[u8]) -> Vec<u8> {
    let mut b = vec![0x3f, 0xe1, 0x1f]; // dynamic table size update to 4096
    b.push(0x83); // :method POST
    b.push(0x86); // :scheme http
    b.extend(indexed_name_incremental(4, path.as_bytes())); // :path
    b.extend(indexed_name_incremental(1, authority)); // :authority
    b.push(0x40);
    b.extend(lit(b"te"));
    b.extend(lit(b"trailers"));
    b.extend(indexed_name_incremental(31, b"application/grpc")); // content-type
    b
}

/// The next request on the connection: everything by dynamic index (content-type 62, te 63,
/// authority 64, path 65), as a client that indexed them sends it.
fn next_block() -> Vec<u8> {
    vec![0x83, 0x86, 0x80 | 65, 0x80 | 64, 0x80 | 63, 0x80 | 62]
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    frame_header(payload.len(), kind, flags, stream.to_be_bytes(), &mut v);
    v.extend_from_slice(payload);
    v
}

/// Preface and an empty SETTINGS frame.
fn hello() -> Vec<u8> {
    let mut v = PREFACE.to_vec();
    v.extend(frame(0x4, 0, 0, &[]));
    v
}

/// The (path, authority) of every request h2 accepts on `io` within a short time.
async fn serve<IO>(io: IO, expect: usize) -> Vec<(String, Option<String>)>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut seen = Vec::new();
    let run = async {
        let mut conn = h2::server::handshake(io).await.unwrap();
        while let Some(Ok((req, _respond))) = conn.accept().await {
            seen.push((
                req.uri().path().to_owned(),
                req.uri().authority().map(|a| a.to_string()),
            ));
            if seen.len() == expect {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), run).await;
    seen
}

/// Writes `bytes` as the client and keeps reading what the server sends.
fn client(c: DuplexStream, bytes: Vec<u8>) -> tokio::task::JoinHandle<()> {
    client_in_chunks(c, bytes, usize::MAX)
}

/// Writes `bytes` as the client, `chunk` bytes at a time (so frames arrive in pieces), and
/// keeps reading what the server sends.
fn client_in_chunks(
    mut c: DuplexStream,
    bytes: Vec<u8>,
    chunk: usize,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for piece in bytes.chunks(chunk) {
            c.write_all(piece).await.unwrap();
            c.flush().await.unwrap();
            tokio::task::yield_now().await;
        }
        let mut sink = vec![0; 4096];
        while matches!(c.read(&mut sink).await, Ok(n) if n > 0) {}
    })
}

/// Three requests as grpcio sends them (the first with a DATA frame), the third padded, with priority and CONTINUATIONs.
fn three_requests() -> Vec<u8> {
    let mut bytes = hello();
    bytes.extend(frame(
        HEADERS,
        END_HEADERS,
        1,
        &first_block("/a.S/One", b"/run/weft/weftd.sock"),
    ));
    // A message for the first call: DATA passes through (straight into h2's buffer when it
    // arrives in pieces).
    bytes.extend(frame(0x0, END_STREAM, 1, &[7; 100]));
    bytes.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &next_block()));
    // A third, padded, with priority, split over HEADERS and two CONTINUATIONs.
    let mut third = vec![0x83, 0x86];
    third.extend(indexed_name_incremental(4, b"/a.S/Three"));
    third.push(0x80 | 65); // the rewritten authority, by index (shifted by the new path)
    let mut payload = vec![3]; // pad length
    payload.extend([0, 0, 0, 0, 16]); // priority: no dependency, weight 16
    payload.extend(&third[..2]);
    payload.extend([0; 3]);
    bytes.extend(frame(HEADERS, PADDED | PRIORITY, 5, &payload));
    bytes.extend(frame(CONTINUATION, 0, 5, &third[2..6]));
    bytes.extend(frame(CONTINUATION, END_HEADERS, 5, &third[6..]));
    bytes
}

/// What h2 makes of [`three_requests`] sent `chunk` bytes at a time through the rewrite.
async fn three_through_the_rewrite(chunk: usize) {
    let (c, s) = tokio::io::duplex(1 << 20);
    let writer = client_in_chunks(c, three_requests(), chunk);
    let seen = serve(AnyAuthority::new(s), 3).await;
    writer.abort();
    let local = Some("localhost".to_owned());
    assert_eq!(
        seen,
        [
            ("/a.S/One".to_owned(), local.clone()),
            ("/a.S/One".to_owned(), local.clone()),
            ("/a.S/Three".to_owned(), local),
        ],
        "in chunks of {chunk}"
    );
}

#[tokio::test]
async fn h2_accepts_path_authorities_through_the_rewrite_with_the_dynamic_table() {
    three_through_the_rewrite(usize::MAX).await;
}

/// Frames cut anywhere (a frame header, a header block, the preface) come out whole.
#[tokio::test]
async fn frames_arriving_in_pieces_are_rewritten_the_same() {
    for chunk in [1, 5, 9, 10, 23] {
        three_through_the_rewrite(chunk).await;
    }
}

#[tokio::test]
async fn valid_authorities_pass_unchanged() {
    let (c, s) = tokio::io::duplex(1 << 20);
    let mut bytes = hello();
    bytes.extend(frame(
        HEADERS,
        END_HEADERS,
        1,
        &first_block("/a.S/One", b"weft.example:50051"),
    ));
    let writer = client(c, bytes);
    let seen = serve(AnyAuthority::new(s), 1).await;
    writer.abort();
    assert_eq!(
        seen,
        [("/a.S/One".to_owned(), Some("weft.example:50051".to_owned()))]
    );
}

/// The canary: h2 alone still resets a request whose `:authority` is a socket path (only the
/// second, valid, request gets through). When this fails, h2 accepts such authorities itself
/// and the rewrite may go; until then the rewrite is what keeps grpcio, grpc-java and older
/// grpcurl working (server/tests/clients.rs).
#[tokio::test]
async fn h2_alone_still_refuses_a_path_as_authority() {
    let (c, s) = tokio::io::duplex(1 << 20);
    let mut bytes = hello();
    bytes.extend(frame(
        HEADERS,
        END_HEADERS,
        1,
        &first_block("/a.S/Bad", b"/run/weft/weftd.sock"),
    ));
    let mut good = vec![0x83, 0x86];
    good.extend(indexed_name_incremental(4, b"/a.S/Good"));
    good.extend(indexed_name_incremental(1, b"localhost"));
    bytes.extend(frame(HEADERS, END_HEADERS, 3, &good));
    let writer = client(c, bytes);
    let seen = serve(s, 2).await;
    writer.abort();
    assert_eq!(
        seen,
        [("/a.S/Good".to_owned(), Some("localhost".to_owned()))],
        "h2 now accepts a path as :authority: the rewrite in any_authority.rs may be dropped"
    );
}

/// Feeds `bytes` through a rewriter in one go.
fn through(bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut rx = Rewriter::default();
    rx.raw.extend_from_slice(bytes);
    rx.process()?;
    Ok(rx.ready)
}

#[test]
fn what_h2_would_refuse_is_an_error() {
    let mut bad = hello();
    bad.extend(frame(CONTINUATION, END_HEADERS, 1, &[0x83]));
    let e = through(&bad).unwrap_err();
    assert!(e.to_string().contains("CONTINUATION frame outside"), "{e}");

    let mut bad = hello();
    bad.extend(frame(HEADERS, 0, 1, &[0x83]));
    bad.extend(frame(0x0, 0, 1, b"data"));
    let e = through(&bad).unwrap_err();
    assert!(e.to_string().contains("other than CONTINUATION"), "{e}");

    let mut bad = hello();
    bad.extend(frame(HEADERS, END_HEADERS | PADDED, 1, &[9, 0x83]));
    let e = through(&bad).unwrap_err();
    assert!(e.to_string().contains("more padding"), "{e}");

    let mut bad = hello();
    bad.extend(frame(HEADERS, END_HEADERS, 1, &[0x80 | 70]));
    let e = through(&bad).unwrap_err();
    assert!(e.to_string().contains("HPACK"), "{e}");

    // An HPACK bomb: one 4 KiB table entry referenced until the block decodes past 64 KiB.
    let mut bomb = vec![0x40];
    bomb.extend(lit(b"x-big"));
    bomb.extend(lit(&[b'v'; 4000]));
    bomb.extend([0x80 | 62; 20]);
    let mut bad = hello();
    bad.extend(frame(HEADERS, END_HEADERS, 1, &bomb));
    let e = through(&bad).unwrap_err();
    assert!(e.to_string().contains("over 64 KiB decoded"), "{e}");
}

#[test]
fn other_frames_and_non_http2_bytes_pass_untouched() {
    let mut ok = hello();
    ok.extend(frame(0x0, END_STREAM, 1, b"payload"));
    ok.extend(frame(0x8, 0, 0, &[0, 0, 1, 0]));
    assert_eq!(through(&ok).unwrap(), ok);
    let http1 = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    assert_eq!(through(&http1).unwrap(), http1);
}

#[test]
fn a_large_block_goes_out_in_frames_h2_accepts() {
    let mut block = Vec::new();
    for i in 0..5 {
        block.push(0);
        block.extend(lit(format!("x-big-{i}").as_bytes()));
        block.extend(lit(&[b'v'; 9000]));
    }
    let mut bytes = hello();
    bytes.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &block));
    let out = through(&bytes).unwrap();
    let mut frames = Vec::new();
    let mut rest = &out[PREFACE.len() + FRAME_HEADER..];
    while rest.len() >= FRAME_HEADER {
        let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        assert!(len <= MAX_FRAME_OUT, "{len}");
        frames.push((rest[3], rest[4]));
        rest = &rest[FRAME_HEADER + len..];
    }
    assert!(rest.is_empty());
    assert_eq!(
        frames,
        [
            (HEADERS, END_STREAM),
            (CONTINUATION, 0),
            (CONTINUATION, END_HEADERS)
        ]
    );
}

/// The first header block of weft's CLI (tonic over h2) on a new connection, as it went over
/// the socket (strace): every literal Huffman-coded. `:authority` (localhost, with
/// incremental indexing), `:path` /weft.v1.NetworkService/Connect (without indexing: h2
/// indexes no path), then grpc-timeout, te, content-type and user-agent, each
/// indexed; afterwards the dynamic table holds user-agent 62, content-type 63, te 64,
/// grpc-timeout 65, authority 66.
const TONIC_FIRST: &str = "83864186a0e41d139d09049763c1654afdc2be92a7c1ecebb8b677310ac5e3d5514\
                           89f40899acac8b24d494f6a7f8670000000005b4082497f864d833505b11f5f8b1d\
                           75d0620d263d4c4d65647a8949ea311802e16977ff";

/// The same client's next request on that connection, as h2 encodes it: the authority by
/// index, the path again as a Huffman-coded literal, a new grpc-timeout value (a new entry,
/// which moves the older ones down one), te, content-type and user-agent by index.
fn tonic_next() -> Vec<u8> {
    let mut b = vec![0x83, 0x86, 0x80 | 66, 0x04];
    let path = hpack::huffman_encode(b"/weft.v1.NetworkService/Connect");
    hpack::encode_integer(path.len(), 7, 0x80, &mut b);
    b.extend(path);
    hpack::encode_integer(65, 6, 0x40, &mut b);
    let timeout = hpack::huffman_encode(b"59999871u");
    hpack::encode_integer(timeout.len(), 7, 0x80, &mut b);
    b.extend(timeout);
    b.extend([0x80 | 65, 0x80 | 64, 0x80 | 63]);
    b
}

/// The CLI's real blocks come out as tonic sent them, the authority kept (it is valid).
#[test]
fn tonic_blocks_decode() {
    let mut decoder = Decoder::new(HEADER_TABLE_SIZE);
    let fields = |out: &[u8]| {
        let mut d = Decoder::new(HEADER_TABLE_SIZE);
        let mut f = Vec::new();
        d.decode(out, |n, v| {
            f.push(format!(
                "{}: {}",
                String::from_utf8_lossy(n),
                String::from_utf8_lossy(v)
            ));
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
        f
    };
    let first = fields(&rewrite(&mut decoder, &hpack::tests::hex(TONIC_FIRST)).unwrap());
    assert_eq!(
        first,
        [
            ":method: POST",
            ":scheme: http",
            ":authority: localhost",
            ":path: /weft.v1.NetworkService/Connect",
            "grpc-timeout: 60000000u",
            "te: trailers",
            "content-type: application/grpc",
            "user-agent: tonic/0.14.9",
        ]
    );
    let next = fields(&rewrite(&mut decoder, &tonic_next()).unwrap());
    assert_eq!(
        next[2..5],
        [
            ":authority: localhost",
            ":path: /weft.v1.NetworkService/Connect",
            "grpc-timeout: 59999871u"
        ]
    );
    assert_eq!(next[5..], first[5..]);
}

/// What the rewrite costs per call: a tonic client's first block on a connection (every
/// string Huffman-coded), its later ones (two Huffman-coded strings each), and grpcio's
/// later ones (all indexed), decoded and encoded again. Printed; the bound is only there to
/// catch an accidental blow-up (these are microseconds, against a call's ~1 ms).
#[test]
fn rewrite_is_cheap() {
    /// The mean time of a rewrite of `block`, `decoder` made afresh for each (a new
    /// connection's) or one kept across them.
    fn timed(fresh: bool, decoder: &mut Decoder, block: &[u8]) -> Duration {
        let n = 5_000;
        let start = Instant::now();
        for _ in 0..n {
            if fresh {
                *decoder = Decoder::new(HEADER_TABLE_SIZE);
            }
            std::hint::black_box(rewrite(decoder, block).unwrap());
        }
        start.elapsed() / n
    }
    let mut decoder = Decoder::new(HEADER_TABLE_SIZE);
    let tonic_first = timed(true, &mut decoder, &hpack::tests::hex(TONIC_FIRST));
    let tonic_next = timed(false, &mut decoder, &tonic_next());
    let mut decoder = Decoder::new(HEADER_TABLE_SIZE);
    let first = first_block(
        "/weft.v1.NetworkService/GetNetwork",
        b"/run/weft/weftd.sock",
    );
    rewrite(&mut decoder, &first).unwrap();
    let grpcio_next = timed(false, &mut decoder, &next_block());
    eprintln!(
        "one header block rewritten in: tonic's first {tonic_first:?}, tonic's next \
         {tonic_next:?}, grpcio's next {grpcio_next:?}"
    );
    for each in [tonic_first, tonic_next, grpcio_next] {
        assert!(each < Duration::from_millis(1), "{each:?}");
    }
}
