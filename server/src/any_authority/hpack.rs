//! An HPACK decoder (RFC 7541) for the header blocks [`super`] rewrites: the static and
//! dynamic tables, integers, string literals raw and Huffman-coded, table size updates.
//!
//! Why not a crate's: loona-hpack (used here before) builds its Huffman decoder afresh for
//! every Huffman-coded string, 257 entries in hash maps, then looks up two maps per bit.
//! A tonic client Huffman-codes every literal, and h2 never indexes a `:path`, so each call
//! paid that at least once: 168 us for a connection's first block (eight strings), 44 us for
//! each later one. The code of RFC 7541 Appendix B is canonical (the
//! codes of one length are consecutive, in symbol order), so its code lengths alone define
//! it: decoding walks the bits, one comparison per bit, with tables made at compile time.

use std::{borrow::Cow, collections::VecDeque, fmt, ops::ControlFlow};

/// Why a header block cannot be decoded; any of them is a connection error in HTTP/2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The block ends inside a representation.
    Truncated,
    /// An integer too large for anything a block can hold.
    IntegerOverflow,
    /// Index 0, or past the end of the tables.
    BadIndex(usize),
    /// A dynamic table size update above the most the server allows.
    SizeTooLarge(usize),
    /// A dynamic table size update after a header field (only the start of a block may
    /// hold them).
    LateSizeUpdate,
    /// A Huffman-coded string holds the end-of-string code.
    HuffmanEos,
    /// A Huffman-coded string's padding is longer than 7 bits or not all ones.
    HuffmanPadding,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => write!(f, "the block ends inside a field"),
            Error::IntegerOverflow => write!(f, "an integer overflows"),
            Error::BadIndex(i) => write!(f, "index {i} is in neither table"),
            Error::SizeTooLarge(s) => {
                write!(f, "a table size update to {s} bytes, over the allowed size")
            }
            Error::LateSizeUpdate => write!(f, "a table size update after a header field"),
            Error::HuffmanEos => write!(f, "a Huffman-coded string holds EOS"),
            Error::HuffmanPadding => write!(f, "a Huffman-coded string is badly padded"),
        }
    }
}

/// A dynamic table entry: name and value.
type Entry = (Box<[u8]>, Box<[u8]>);

/// A literal field: its name and value (borrowed from the block or a table, or decoded), and
/// the rest of the block after it.
type Literal<'c, 'b> = (Cow<'c, [u8]>, Cow<'c, [u8]>, &'b [u8]);

/// The decoding side of one connection: its dynamic table, newest entry first.
#[derive(Debug)]
pub struct Decoder {
    table: VecDeque<Entry>,
    /// The table's size (RFC 7541 4.1: each entry's name and value lengths plus 32).
    size: usize,
    /// The table's maximum size, as the last size update set it.
    max: usize,
    /// The most a size update may set (the SETTINGS_HEADER_TABLE_SIZE the server announced).
    limit: usize,
}

/// The overhead RFC 7541 counts per dynamic table entry.
const ENTRY_OVERHEAD: usize = 32;

impl Decoder {
    /// A decoder whose dynamic table may grow to `limit` bytes (and starts at that size).
    pub fn new(limit: usize) -> Self {
        Self {
            table: VecDeque::new(),
            size: 0,
            max: limit,
            limit,
        }
    }

    /// Decodes the complete header block `block`, calling `field` with each name and value
    /// in order, and keeps the dynamic table up to date. `field` may stop the decoding
    /// (`Break`: the caller has seen too much), which leaves the table part way through the
    /// block, as does an error: either way the connection cannot go on.
    pub fn decode(
        &mut self,
        mut block: &[u8],
        mut field: impl FnMut(&[u8], &[u8]) -> ControlFlow<()>,
    ) -> Result<(), Error> {
        let mut fields = false;
        while let Some(&first) = block.first() {
            if first & 0x80 != 0 {
                // Indexed Header Field (6.1).
                let (index, rest) = integer(block, 7)?;
                block = rest;
                let (name, value) = self.entry(index)?;
                if field(name, value).is_break() {
                    return Ok(());
                }
            } else if first & 0x40 != 0 {
                // Literal Header Field with Incremental Indexing (6.2.1).
                let (name, value, rest) = self.literal(block, 6)?;
                block = rest;
                let (name, value) = (name.into_owned(), value.into_owned());
                if field(&name, &value).is_break() {
                    return Ok(());
                }
                self.insert(name.into(), value.into());
            } else if first & 0x20 != 0 {
                // Dynamic Table Size Update (6.3).
                if fields {
                    return Err(Error::LateSizeUpdate);
                }
                let (size, rest) = integer(block, 5)?;
                block = rest;
                if size > self.limit {
                    return Err(Error::SizeTooLarge(size));
                }
                self.max = size;
                self.evict(0);
                continue;
            } else {
                // Literal Header Field without Indexing (6.2.2) or Never Indexed (6.2.3).
                let (name, value, rest) = self.literal(block, 4)?;
                block = rest;
                if field(&name, &value).is_break() {
                    return Ok(());
                }
            }
            fields = true;
        }
        Ok(())
    }

    /// The dynamic table's size in RFC 7541's terms.
    #[cfg(test)]
    pub fn table_size(&self) -> usize {
        self.size
    }

    /// The entries of the dynamic table, newest first.
    #[cfg(test)]
    pub fn entries(&self) -> Vec<(&[u8], &[u8])> {
        self.table.iter().map(|(n, v)| (&**n, &**v)).collect()
    }

    /// Entry `index` of the static table (1-61) or the dynamic one (62 on, newest first).
    fn entry(&self, index: usize) -> Result<(&[u8], &[u8]), Error> {
        match index {
            0 => Err(Error::BadIndex(0)),
            i if i <= STATIC.len() => Ok(STATIC[i - 1]),
            i => self
                .table
                .get(i - STATIC.len() - 1)
                .map(|(n, v)| (&**n, &**v))
                .ok_or(Error::BadIndex(i)),
        }
    }

    /// A literal field whose first octet has a `prefix`-bit name index (0: a new name
    /// follows), and the rest of the block after it.
    fn literal<'c, 'b: 'c>(
        &'c self,
        block: &'b [u8],
        prefix: u8,
    ) -> Result<Literal<'c, 'b>, Error> {
        let (index, rest) = integer(block, prefix)?;
        let (name, rest) = if index == 0 {
            string(rest)?
        } else {
            (Cow::Borrowed(self.entry(index)?.0), rest)
        };
        let (value, rest) = string(rest)?;
        Ok((name, value, rest))
    }

    /// Adds an entry, evicting the oldest ones to make room; one larger than the whole table
    /// empties it and is not added (RFC 7541 4.4).
    fn insert(&mut self, name: Box<[u8]>, value: Box<[u8]>) {
        let size = name.len() + value.len() + ENTRY_OVERHEAD;
        if size > self.max {
            self.table.clear();
            self.size = 0;
            return;
        }
        self.evict(size);
        self.size += size;
        self.table.push_front((name, value));
    }

    /// Evicts the oldest entries until `room` more bytes fit under the maximum.
    fn evict(&mut self, room: usize) {
        while self.size + room > self.max {
            let Some((n, v)) = self.table.pop_back() else {
                break;
            };
            self.size -= n.len() + v.len() + ENTRY_OVERHEAD;
        }
    }
}

/// An integer with an `prefix`-bit prefix (RFC 7541 5.1), and the rest of `buf` after it.
/// At most four continuation octets are read (as h2 does): values up to about 2^28, far past
/// anything a block of at most 64 KiB can hold.
fn integer(buf: &[u8], prefix: u8) -> Result<(usize, &[u8]), Error> {
    let (&first, mut rest) = buf.split_first().ok_or(Error::Truncated)?;
    let max = (1usize << prefix) - 1;
    let mut value = usize::from(first) & max;
    if value < max {
        return Ok((value, rest));
    }
    let mut shift = 0;
    loop {
        let (&b, r) = rest.split_first().ok_or(Error::Truncated)?;
        rest = r;
        if shift > 21 {
            return Err(Error::IntegerOverflow);
        }
        value += usize::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return Ok((value, rest));
        }
    }
}

/// Appends `value` as an integer with an `prefix`-bit prefix, the prefix's other bits
/// `flags` (RFC 7541 5.1).
pub fn encode_integer(value: usize, prefix: u8, flags: u8, out: &mut Vec<u8>) {
    let max = (1usize << prefix) - 1;
    if value < max {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max as u8);
    let mut rest = value - max;
    while rest >= 0x80 {
        out.push(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    out.push(rest as u8);
}

/// A string literal (RFC 7541 5.2), and the rest of `buf` after it.
fn string(buf: &[u8]) -> Result<(Cow<'_, [u8]>, &[u8]), Error> {
    let huffman = buf.first().ok_or(Error::Truncated)? & 0x80 != 0;
    let (len, rest) = integer(buf, 7)?;
    if len > rest.len() {
        return Err(Error::Truncated);
    }
    let (s, rest) = rest.split_at(len);
    let s = if huffman {
        Cow::Owned(huffman_decode(s)?)
    } else {
        Cow::Borrowed(s)
    };
    Ok((s, rest))
}

/// The Huffman code's lengths in bits, by symbol (0-255, then 256: EOS), from RFC 7541
/// Appendix B.
const CODE_LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, //
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, //
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, //
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, //
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, //
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, //
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, //
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, //
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, //
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, //
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, //
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, //
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, //
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, //
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, //
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, //
    30,
];

/// The longest code.
const MAX_LEN: usize = 30;
/// EOS, the symbol after the 256 octets.
const EOS: u16 = 256;

/// The canonical code, by length: codes of length `l` are `first[l]..first[l] + count[l]`,
/// standing for `symbols[offset[l]..]` in order.
struct Canonical {
    first: [u32; MAX_LEN + 1],
    count: [u32; MAX_LEN + 1],
    offset: [usize; MAX_LEN + 1],
    symbols: [u16; 257],
}

const fn canonical() -> Canonical {
    let mut c = Canonical {
        first: [0; MAX_LEN + 1],
        count: [0; MAX_LEN + 1],
        offset: [0; MAX_LEN + 1],
        symbols: [0; 257],
    };
    let mut s = 0;
    while s < 257 {
        c.count[CODE_LENGTHS[s] as usize] += 1;
        s += 1;
    }
    let (mut code, mut at, mut len) = (0u32, 0usize, 1);
    while len <= MAX_LEN {
        c.first[len] = code;
        c.offset[len] = at;
        let mut s = 0;
        while s < 257 {
            if CODE_LENGTHS[s] as usize == len {
                c.symbols[at] = s as u16;
                at += 1;
            }
            s += 1;
        }
        code = (code + c.count[len]) << 1;
        len += 1;
    }
    c
}

static CODE: Canonical = canonical();

/// Decodes a Huffman-coded string (RFC 7541 5.2): EOS inside it, or padding longer than 7
/// bits or not all ones, is an error.
pub fn huffman_decode(coded: &[u8]) -> Result<Vec<u8>, Error> {
    // The shortest code has 5 bits.
    let mut out = Vec::with_capacity(coded.len() * 8 / 5);
    let (mut code, mut len) = (0u32, 0usize);
    for &byte in coded {
        for bit in (0..8).rev() {
            code = code << 1 | u32::from(byte >> bit & 1);
            len += 1;
            let i = code.wrapping_sub(CODE.first[len]);
            if i < CODE.count[len] {
                let symbol = CODE.symbols[CODE.offset[len] + i as usize];
                if symbol == EOS {
                    return Err(Error::HuffmanEos);
                }
                out.push(symbol as u8);
                (code, len) = (0, 0);
            } else if len == MAX_LEN {
                // The code is complete, so this cannot be; kept as a bound all the same.
                return Err(Error::HuffmanPadding);
            }
        }
    }
    if len > 7 || code != (1 << len) - 1 {
        return Err(Error::HuffmanPadding);
    }
    Ok(out)
}

/// Huffman-codes `s` (for tests: weft sends no Huffman-coded strings).
#[cfg(test)]
pub fn huffman_encode(s: &[u8]) -> Vec<u8> {
    let mut codes = [(0u32, 0usize); 257];
    for len in 1..=MAX_LEN {
        for i in 0..CODE.count[len] {
            let symbol = CODE.symbols[CODE.offset[len] + i as usize];
            codes[usize::from(symbol)] = (CODE.first[len] + i, len);
        }
    }
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u64, 0usize);
    for &b in s {
        let (code, len) = codes[usize::from(b)];
        acc = acc << len | u64::from(code);
        bits += len;
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        // Padded with the most significant bits of EOS: ones.
        out.push((acc << (8 - bits)) as u8 | ((1u8 << (8 - bits)) - 1));
    }
    out
}

/// The static table, RFC 7541 Appendix A (index 1 first).
const STATIC: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

#[cfg(test)]
#[path = "hpack_tests.rs"]
pub(super) mod tests;
