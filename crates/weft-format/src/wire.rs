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

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn err<T>(&self, reason: impl Into<String>) -> WireResult<T> {
        Err((self.pos, reason.into()))
    }

    #[inline]
    pub(crate) fn uvarint(&mut self) -> WireResult<u64> {
        // Most values (ids, pids, small numbers) take one or two bytes.
        if let Some(&b) = self.buf.get(self.pos) {
            if b < 0x80 {
                self.pos += 1;
                return Ok(u64::from(b));
            }
            if let Some(&b2) = self.buf.get(self.pos + 1) {
                if b2 < 0x80 {
                    self.pos += 2;
                    return Ok(u64::from(b & 0x7f) | u64::from(b2) << 7);
                }
            }
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

    #[inline]
    pub(crate) fn ivarint(&mut self) -> WireResult<i64> {
        self.uvarint().map(unzigzag)
    }

    /// A varint that must fit in `u32` (ids, counts).
    pub(crate) fn u32v(&mut self) -> WireResult<u32> {
        let v = self.uvarint()?;
        u32::try_from(v).or_else(|_| self.err(format!("value {v} does not fit in 32 bits")))
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
    fn overlong_varint_is_an_error() {
        let b = [0xffu8; 11];
        assert!(Cursor::new(&b).uvarint().is_err());
        let b = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert!(Cursor::new(&b).uvarint().is_err());
    }
}
