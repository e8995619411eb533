//! Primitive encodings shared by every payload: LEB128 varints, zigzag,
//! length-prefixed strings, and a bounds-checked cursor.

#[inline(always)]
pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    // Most values written (ids, small deltas, pids) take one to three bytes:
    // those are fixed-size appends; only longer ones loop.
    if v < 1 << 7 {
        out.push(v as u8);
    } else if v < 1 << 14 {
        out.extend_from_slice(&[v as u8 | 0x80, (v >> 7) as u8]);
    } else if v < 1 << 21 {
        out.extend_from_slice(&[v as u8 | 0x80, (v >> 7) as u8 | 0x80, (v >> 14) as u8]);
    } else {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
}

pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(crate) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

#[inline(always)]
pub(crate) fn put_ivarint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, zigzag(v));
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_uvarint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A varint of at most eight bytes at the start of `b`, decoded from one
/// little-endian word: (its length, its value). `None` when fewer than eight
/// bytes are left or the varint is longer (the byte loop decides those).
#[inline(always)]
pub(crate) fn word_varint(b: &[u8]) -> Option<(usize, u64)> {
    let w = u64::from_le_bytes(*b.first_chunk::<8>()?);
    // The last byte of a varint is the first without its high bit.
    let ends = !w & 0x8080_8080_8080_8080;
    if ends == 0 {
        return None;
    }
    let bits = ends.trailing_zeros() + 1;
    let x = if bits == 64 { w } else { w & ((1u64 << bits) - 1) };
    // Packs the 7-bit groups together: pairs, then quads, then the halves.
    let x = x & 0x7f7f_7f7f_7f7f_7f7f;
    let x = ((x & 0x7f00_7f00_7f00_7f00) >> 1) | (x & 0x007f_007f_007f_007f);
    let x = ((x & 0x3fff_0000_3fff_0000) >> 2) | (x & 0x0000_3fff_0000_3fff);
    let x = ((x & 0x0fff_ffff_0000_0000) >> 4) | (x & 0x0000_0000_0fff_ffff);
    Some((bits as usize / 8, x))
}

/// Where the varint at `pos` ends, if it is a valid one (at most 10 bytes,
/// the tenth at most 1).
#[inline]
pub(crate) fn skip_varint(b: &[u8], pos: usize) -> Option<usize> {
    let rest = b.get(pos..)?;
    if let Some(&first) = rest.first() {
        if first < 0x80 {
            return Some(pos + 1);
        }
    }
    if let Some((len, _)) = word_varint(rest) {
        return Some(pos + len);
    }
    for (i, &byte) in rest.iter().enumerate().take(10) {
        if i == 9 && byte > 1 {
            return None;
        }
        if byte & 0x80 == 0 {
            return Some(pos + i + 1);
        }
    }
    None
}

/// Reads a payload without ever indexing out of bounds; errors carry the
/// position so the caller can name it.
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

pub(crate) type WireResult<T> = Result<T, (usize, String)>;

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    /// A cursor at `pos` of `buf` (past the end reads nothing).
    pub(crate) fn at(buf: &'a [u8], pos: usize) -> Self {
        Cursor { buf, pos }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    #[cold]
    #[inline(never)]
    fn err<T>(&self, reason: impl Into<String>) -> WireResult<T> {
        Err((self.pos, reason.into()))
    }

    #[inline(always)]
    pub(crate) fn uvarint(&mut self) -> WireResult<u64> {
        // Most values (ids, small numbers) take one byte.
        if let Some(&b) = self.buf.get(self.pos) {
            if b < 0x80 {
                self.pos += 1;
                return Ok(u64::from(b));
            }
        }
        // Up to eight bytes at once from one word, when eight are left.
        if let Some((len, v)) = self.buf.get(self.pos..).and_then(word_varint) {
            self.pos += len;
            return Ok(v);
        }
        self.uvarint_long()
    }

    fn uvarint_long(&mut self) -> WireResult<u64> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return self.err("varint runs past the end");
            };
            self.pos += 1;
            if i == 9 && b > 1 {
                return self.err("varint overflows 64 bits");
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        self.err("varint longer than 10 bytes")
    }

    #[inline(always)]
    pub(crate) fn ivarint(&mut self) -> WireResult<i64> {
        self.uvarint().map(unzigzag)
    }

    /// A varint that must fit in `u32` (ids, counts).
    #[inline(always)]
    pub(crate) fn u32v(&mut self) -> WireResult<u32> {
        let v = self.uvarint()?;
        match u32::try_from(v) {
            Ok(v) => Ok(v),
            Err(_) => self.err(format!("value {v} does not fit in 32 bits")),
        }
    }

    pub(crate) fn take(&mut self, n: usize) -> WireResult<&'a [u8]> {
        let end = match self.pos.checked_add(n) {
            Some(end) if end <= self.buf.len() => end,
            _ => return self.err(format!("{n} bytes needed, {} left", self.buf.len() - self.pos)),
        };
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub(crate) fn u8(&mut self) -> WireResult<u8> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn bytes(&mut self) -> WireResult<&'a [u8]> {
        let n = self.uvarint()?;
        let n = usize::try_from(n).or_else(|_| self.err("length too large"))?;
        self.take(n)
    }

    /// A string that must be valid UTF-8 (metadata).
    pub(crate) fn string(&mut self) -> WireResult<String> {
        let start = self.pos;
        let b = self.bytes()?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err((start, "string is not valid UTF-8".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut b = Vec::new();
            put_uvarint(&mut b, v);
            assert_eq!(Cursor::new(&b).uvarint().unwrap(), v);
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX, -4096] {
            let mut b = Vec::new();
            put_ivarint(&mut b, v);
            assert_eq!(Cursor::new(&b).ivarint().unwrap(), v);
        }
    }

    #[test]
    fn word_decoding_agrees_with_the_byte_loop() {
        let mut values = vec![0u64, 1, 127, 128, 16383, 16384, 23840, (1 << 56) - 1, 1 << 56, u64::MAX];
        values.extend((0..64).map(|s| 1u64 << s));
        values.extend((0..64).map(|s| (1u64 << s) - 1));
        for v in values {
            for pad in [0usize, 1, 7, 12] {
                let mut b = Vec::new();
                put_uvarint(&mut b, v);
                let n = b.len();
                b.extend(std::iter::repeat_n(0xaa, pad));
                let mut c = Cursor::new(&b);
                assert_eq!(c.uvarint().unwrap(), v, "{v} with {pad} bytes after");
                assert_eq!(c.pos(), n);
                let mut slow = Cursor::new(&b);
                assert_eq!(slow.uvarint_long().unwrap(), v);
                assert_eq!(skip_varint(&b, 0), Some(n));
            }
        }
        // Overlong but valid encodings decode as the loop decodes them.
        let b = [0x80, 0x80, 0x00, 1, 2, 3, 4, 5, 6];
        assert_eq!(Cursor::new(&b).uvarint().unwrap(), 0);
        assert_eq!(Cursor::new(&b).uvarint_long().unwrap(), 0);
    }

    #[test]
    fn overlong_varint_is_an_error() {
        let b = [0xffu8; 11];
        assert!(Cursor::new(&b).uvarint().is_err());
        let b = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert!(Cursor::new(&b).uvarint().is_err());
    }
}
