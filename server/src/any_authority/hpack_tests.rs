//! The decoder against RFC 7541's own examples (Appendix C), against an independent
//! implementation (loona-hpack's encoder and Huffman decoder, a dev-dependency), and on every
//! malformed input it must refuse.

use super::*;

/// Bytes from hex dumps (spaces ignored).
pub(crate) fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn decode(d: &mut Decoder, block: &[u8]) -> Result<Vec<(String, String)>, Error> {
    let mut out = Vec::new();
    d.decode(block, |n, v| {
        out.push((
            String::from_utf8_lossy(n).into_owned(),
            String::from_utf8_lossy(v).into_owned(),
        ));
        ControlFlow::Continue(())
    })?;
    Ok(out)
}

fn fields(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn entries(d: &Decoder) -> Vec<(String, String)> {
    d.entries()
        .into_iter()
        .map(|(n, v)| {
            (
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect()
}

/// RFC 7541 C.3 and C.4: three requests on one connection, without and with Huffman coding;
/// the fields, the dynamic table and its size after each.
#[test]
fn rfc_7541_request_examples() {
    let first = fields(&[
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "www.example.com"),
    ]);
    let second = fields(&[
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "www.example.com"),
        ("cache-control", "no-cache"),
    ]);
    let third = fields(&[
        (":method", "GET"),
        (":scheme", "https"),
        (":path", "/index.html"),
        (":authority", "www.example.com"),
        ("custom-key", "custom-value"),
    ]);
    let raw = [
        "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
        "8286 84be 5808 6e6f 2d63 6163 6865",
        "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
    ];
    let huffman = [
        "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
        "8286 84be 5886 a8eb 1064 9cbf",
        "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
    ];
    for blocks in [raw, huffman] {
        let mut d = Decoder::new(4096);
        assert_eq!(decode(&mut d, &hex(blocks[0])).unwrap(), first);
        assert_eq!(d.table_size(), 57);
        assert_eq!(entries(&d), fields(&[(":authority", "www.example.com")]));
        assert_eq!(decode(&mut d, &hex(blocks[1])).unwrap(), second);
        assert_eq!(d.table_size(), 110);
        assert_eq!(decode(&mut d, &hex(blocks[2])).unwrap(), third);
        assert_eq!(d.table_size(), 164);
        assert_eq!(
            entries(&d),
            fields(&[
                ("custom-key", "custom-value"),
                ("cache-control", "no-cache"),
                (":authority", "www.example.com"),
            ])
        );
    }
}

/// The code agrees with loona-hpack's Huffman decoder (its own table of codes) on every
/// octet, and decodes what it encodes.
#[test]
fn huffman_code_matches_an_independent_decoder() {
    let every: Vec<u8> = (0..=255).collect();
    let mut samples = vec![
        every.clone(),
        every.iter().rev().copied().collect(),
        b"/weft.v1.NetworkService/Connect".to_vec(),
        b"application/grpc".to_vec(),
        Vec::new(),
    ];
    samples.extend((0..=255u8).map(|b| vec![b]));
    samples.extend((0..=255u8).map(|b| vec![b, b, b]));
    for s in samples {
        let coded = huffman_encode(&s);
        assert_eq!(huffman_decode(&coded).unwrap(), s, "ours, {s:?}");
        let theirs = loona_hpack::huffman::HuffmanDecoder::new()
            .decode(&coded)
            .unwrap();
        assert_eq!(theirs, s, "loona-hpack's, {s:?}");
    }
}

/// A tiny deterministic generator (xorshift), so the test needs no crate and repeats.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> usize {
        (self.next() % n) as usize
    }
}

/// Blocks from loona-hpack's encoder (it indexes every new field, and refers to the static
/// table and to earlier entries), with table size updates down and up between blocks: every
/// field comes out as it went in, through evictions, with the table the same size on both
/// sides. A decoder whose table drifted from the encoder's would give other values.
#[test]
fn blocks_of_an_independent_encoder_decode_through_evictions() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let names: Vec<Vec<u8>> = [
        &b":path"[..],
        b":authority",
        b"content-type",
        b"user-agent",
        b"grpc-timeout",
        b"x-custom",
        b"te",
        b"accept-encoding",
    ]
    .iter()
    .map(|n| n.to_vec())
    .collect();
    let mut enc = loona_hpack::Encoder::new();
    let mut dec = Decoder::new(4096);
    for round in 0..400 {
        let mut block = Vec::new();
        if round % 25 == 0 {
            // A size update at the start of the block, as HTTP/2 allows.
            let size = [0, 64, 256, 1024, 4096][rng.below(5)];
            encode_integer(size, 5, 0x20, &mut block);
            enc.set_max_table_size(size);
        }
        let mut want = Vec::new();
        for _ in 0..1 + rng.below(8) {
            let name = names[rng.below(names.len() as u64)].clone();
            // Few distinct values, so later fields find earlier entries.
            let len = rng.below(40);
            let value: Vec<u8> = (0..len)
                .map(|i| b'a' + ((rng.below(3) + i) % 26) as u8)
                .collect();
            want.push((name, value));
        }
        block.extend(enc.encode(want.iter().map(|(n, v)| (&n[..], &v[..]))));
        let mut got = Vec::new();
        dec.decode(&block, |n, v| {
            got.push((n.to_vec(), v.to_vec()));
            ControlFlow::Continue(())
        })
        .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(got, want, "round {round}");
        assert!(dec.table_size() <= dec.max, "round {round}");
    }
}

/// An entry larger than the whole table empties it and is not added (RFC 7541 4.4); a size
/// update to 0 evicts everything, and the table grows again after one back up.
#[test]
fn evictions_follow_rfc_7541() {
    let mut d = Decoder::new(4096);
    let mut block = Vec::new();
    for (n, v) in [("a", "1"), ("b", "2")] {
        block.push(0x40);
        block.push(n.len() as u8);
        block.extend(n.as_bytes());
        block.push(v.len() as u8);
        block.extend(v.as_bytes());
    }
    decode(&mut d, &block).unwrap();
    assert_eq!(entries(&d), fields(&[("b", "2"), ("a", "1")]));
    assert_eq!(d.table_size(), 68);

    // Room for one entry of 34 bytes: the older goes.
    let mut update = Vec::new();
    encode_integer(40, 5, 0x20, &mut update);
    decode(&mut d, &update).unwrap();
    assert_eq!(entries(&d), fields(&[("b", "2")]));

    // An entry over 40 bytes empties the table and is not kept, though it is still a field.
    let mut big = vec![0x40, 1, b'c', 20];
    big.extend([b'x'; 20]);
    assert_eq!(
        decode(&mut d, &big).unwrap(),
        fields(&[("c", &"x".repeat(20))])
    );
    assert!(entries(&d).is_empty());
    assert_eq!(d.table_size(), 0);

    // 62 now names nothing.
    assert_eq!(decode(&mut d, &[0x80 | 62]), Err(Error::BadIndex(62)));

    let mut up = Vec::new();
    encode_integer(4096, 5, 0x20, &mut up);
    up.extend(&big);
    decode(&mut d, &up).unwrap();
    assert_eq!(entries(&d), fields(&[("c", &"x".repeat(20))]));
}

/// Every malformed block is refused with the reason, never a panic.
#[test]
fn malformed_blocks_are_refused() {
    let mut d = Decoder::new(4096);
    let cases: Vec<(Vec<u8>, Error)> = vec![
        (vec![0x80], Error::BadIndex(0)),
        (vec![0x80 | 62], Error::BadIndex(62)),
        (
            vec![0xff, 0x80, 0x80, 0x80, 0x80, 0x01],
            Error::IntegerOverflow,
        ),
        // An index whose continuation octets never end.
        (vec![0xff, 0x80], Error::Truncated),
        // A new name, then nothing.
        (vec![0x40], Error::Truncated),
        // A value of 5 octets with 2 there.
        (vec![0x04, 0x05, b'a', b'b'], Error::Truncated),
        (hex("3fe2 1f"), Error::SizeTooLarge(4097)),
        (vec![0x82, 0x20], Error::LateSizeUpdate),
        // Four octets of ones hold EOS (30 ones).
        (vec![0x04, 0x84, 0xff, 0xff, 0xff, 0xff], Error::HuffmanEos),
        // '0' (00000), then 11 bits of padding.
        (vec![0x04, 0x82, 0x07, 0xff], Error::HuffmanPadding),
        // '0' (00000), then padding of zeros.
        (vec![0x04, 0x81, 0x00], Error::HuffmanPadding),
    ];
    for (block, want) in cases {
        assert_eq!(decode(&mut d, &block), Err(want), "{block:02x?}");
    }
    // Bytes no encoder would send: whatever they are, an answer, not a panic.
    let mut rng = Rng(7);
    for _ in 0..20_000 {
        let len = rng.below(24);
        let block: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let _ = Decoder::new(4096).decode(&block, |_, _| ControlFlow::Continue(()));
    }
}

/// Integers round-trip at every prefix, on both sides of each prefix's limit.
#[test]
fn integers_round_trip() {
    for prefix in 1..=8u8 {
        for value in [0, 1, 30, 31, 127, 128, 254, 255, 256, 1337, 4096, 1 << 20] {
            let mut buf = Vec::new();
            encode_integer(value, prefix, 0, &mut buf);
            let (got, rest) = integer(&buf, prefix).unwrap();
            assert_eq!((got, rest.len()), (value, 0), "prefix {prefix}");
        }
    }
    // RFC 7541 C.1.2: 1337 with a 5-bit prefix.
    let mut buf = Vec::new();
    encode_integer(1337, 5, 0, &mut buf);
    assert_eq!(buf, [0x1f, 0x9a, 0x0a]);
}

/// Every static table entry (RFC 7541 Appendix A) as loona-hpack's table has it.
#[test]
fn static_table_matches_an_independent_decoder() {
    for i in 1..=61u8 {
        let ours = decode(&mut Decoder::new(4096), &[0x80 | i]).unwrap();
        let theirs = loona_hpack::Decoder::new().decode(&[0x80 | i]).unwrap();
        let theirs: Vec<(String, String)> = theirs
            .into_iter()
            .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
            .collect();
        assert_eq!(ours, theirs, "static index {i}");
    }
}

/// Literals without indexing (0000) and never indexed (0001), with a new name or an indexed
/// one: fields as sent, the dynamic table untouched.
#[test]
fn literals_that_are_not_indexed_leave_the_table_alone() {
    let mut d = Decoder::new(4096);
    let mut block = vec![0x10, 0x03];
    block.extend(b"key");
    block.push(0x05);
    block.extend(b"value");
    // Never indexed, name from static index 23 (authorization).
    block.extend([0x1f, 0x08, 0x06]);
    block.extend(b"secret");
    // Without indexing, name from static index 4 (:path), the value Huffman-coded.
    let path = huffman_encode(b"/a/b");
    block.push(0x04);
    encode_integer(path.len(), 7, 0x80, &mut block);
    block.extend(path);
    assert_eq!(
        decode(&mut d, &block).unwrap(),
        fields(&[
            ("key", "value"),
            ("authorization", "secret"),
            (":path", "/a/b")
        ])
    );
    assert!(entries(&d).is_empty());
    assert_eq!(d.table_size(), 0);
}

/// The caller can stop the decoding at a field (the rewrite does, past 64 KiB decoded): no
/// field after it is decoded or copied.
#[test]
fn the_caller_stops_the_decoding() {
    let mut d = Decoder::new(4096);
    let mut seen = 0;
    d.decode(&[0x82, 0x86, 0x84, 0x87], |_, _| {
        seen += 1;
        if seen == 2 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .unwrap();
    assert_eq!(seen, 2);
}
