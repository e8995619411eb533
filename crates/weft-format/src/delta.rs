//! The filter of ProbeDelta chunks (docs/format.md §5.6): a Probe payload
//! with its records' check bytes cleared, then stored as word deltas.
//!
//! A probe chunk's records are mostly of one length: seen as little-endian
//! `u64` words, a record differs from the one before it only where its
//! fields change (the sequence number by one, the tick by a few hundred,
//! counters by a little). Its check byte, though, changes at random; it is
//! a function of the header's other fields, so it is cleared here and
//! computed again when read. Stored as each word minus the word one record
//! earlier, the payload is then mostly zero bytes, which zstd compresses
//! several times faster and smaller than the records themselves: on a
//! 2-CPU machine, whether the writer thread keeps up with a program
//! writing tens of millions of events per second.

use weft_probe_abi::layout::{self, RECORD_HEADER_LEN, RECORD_LEN_MASK};

/// The largest stride a reader accepts, in words: records up to 4 KiB.
pub const MAX_STRIDE: u16 = 512;
/// Chunk-header flag of a ProbeDelta chunk: check bytes were cleared.
pub const CHECKS_CLEARED: u16 = 0x8000;

const W: usize = 8;

/// Computes the check byte of every record of a Probe payload again.
pub fn restore_checks(payload: &mut [u8]) {
    let end = records_end(payload);
    layout::restore_checks(&mut payload[..end]);
}

/// Filters a Probe payload (its check bytes cleared, as a collector
/// leaves them, or not) into `out` (its capacity reused) and returns the
/// chunk-header flags that say how; `None` if the payload does not read as
/// records, and filtering would gain nothing.
pub fn encode_probe(raw: &[u8], out: &mut Vec<u8>) -> Option<u16> {
    let stride = probe_stride(raw)?;
    subtract_into(raw, stride, out);
    Some(stride | CHECKS_CLEARED)
}

/// Undoes [`encode_probe`] in place, given the chunk header's flags.
pub fn decode_probe(buf: &mut [u8], flags: u16) -> Result<(), String> {
    let stride = flags & !CHECKS_CLEARED;
    if stride == 0 || stride > MAX_STRIDE {
        return Err(format!(
            "ProbeDelta chunk with a stride of {stride} words (1 to {MAX_STRIDE} allowed)"
        ));
    }
    add(buf, stride);
    if flags & CHECKS_CLEARED != 0 {
        restore_checks(buf);
    }
    Ok(())
}

/// `out` := each whole word of `raw` minus the word `stride` words before
/// it (wrapping); the first `stride` words, and a tail of fewer than 8
/// bytes, as they are.
fn subtract_into(raw: &[u8], stride: u16, out: &mut Vec<u8>) {
    let k = usize::from(stride) * W;
    out.clear();
    let words = raw.len() / W * W;
    let head = k.min(words);
    out.extend_from_slice(&raw[..head]);
    if words > k {
        // Separate input and output, four words a step: it vectorizes.
        let (cur, prev) = (&raw[k..words], &raw[..words - k]);
        let mut blocks = cur.chunks_exact(4 * W).zip(prev.chunks_exact(4 * W));
        for (c, p) in &mut blocks {
            let mut d = [0u8; 4 * W];
            for i in 0..4 {
                let v = word(c, i * W).wrapping_sub(word(p, i * W));
                d[i * W..i * W + W].copy_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(&d);
        }
        let done = out.len();
        let mut at = done;
        while at < words {
            let v = word(raw, at).wrapping_sub(word(raw, at - k));
            out.extend_from_slice(&v.to_le_bytes());
            at += W;
        }
    }
    out.extend_from_slice(&raw[words..]);
}

/// Undoes `subtract_into` in place: each word plus the (already restored)
/// word `stride` words before it.
fn add(buf: &mut [u8], stride: u16) {
    let k = usize::from(stride) * W;
    let words = buf.len() / W * W;
    let mut at = k;
    while at + W <= words {
        let v = word(buf, at).wrapping_add(word(buf, at - k));
        buf[at..at + W].copy_from_slice(&v.to_le_bytes());
        at += W;
    }
}

#[inline(always)]
fn word(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; W];
    a.copy_from_slice(&b[at..at + W]);
    u64::from_le_bytes(a)
}

/// Where the records area ends: before the index, whose length is the
/// payload's last 4 bytes (docs/format.md §5.5); 0 if that does not fit.
fn records_end(p: &[u8]) -> usize {
    let Some(split) = p.len().checked_sub(4) else { return 0 };
    let index = u32::from_le_bytes([p[split], p[split + 1], p[split + 2], p[split + 3]]);
    split.saturating_sub(index as usize)
}

/// The stride that suits a probe payload: the most common length, in
/// words, of its first records (at most `MAX_STRIDE`: any stride decodes,
/// and the records' check bytes must be given back either way); `None`
/// if they do not read as records.
fn probe_stride(payload: &[u8]) -> Option<u16> {
    const LOOK: usize = 32;
    let end = records_end(payload);
    let mut lens = [0usize; LOOK];
    let (mut n, mut at) = (0, 0usize);
    while n < LOOK && at + RECORD_HEADER_LEN <= end {
        let b = &payload[at..at + 4];
        let len = (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) & RECORD_LEN_MASK) as usize;
        if len < RECORD_HEADER_LEN || !len.is_multiple_of(W) || at + len > end {
            break;
        }
        lens[n] = len;
        n += 1;
        at += len;
    }
    let lens = &lens[..n];
    let best = lens.iter().max_by_key(|&&l| lens.iter().filter(|&&m| m == l).count())?;
    Some(u16::try_from(best / W).unwrap_or(MAX_STRIDE).min(MAX_STRIDE))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use weft_probe_abi::layout::record_word0;

    /// What a collector does to the records it keeps.
    fn clear_checks(records: &mut [u8]) {
        let mut at = 0;
        while let Some(h) = layout::committed_record(&records[at..]) {
            records[at + layout::R_CHECK] = 0;
            at += h.len as usize;
        }
    }

    /// A payload of `n` records of two u64 (40 bytes), and a 9-byte index.
    pub(crate) fn payload(n: u64) -> Vec<u8> {
        let mut p = Vec::new();
        for i in 0..n {
            let tick = 1_000_000 + 41 * i + ((i * 2_654_435_761) >> 7) % 13;
            p.extend_from_slice(&record_word0(40, 3, i, tick).to_le_bytes());
            p.extend_from_slice(&(i << 8 | 0xc3).to_le_bytes());
            p.extend_from_slice(&tick.to_le_bytes());
            p.extend_from_slice(&i.to_le_bytes());
            p.extend_from_slice(&(i * 7).to_le_bytes());
        }
        p.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 9]);
        p.extend_from_slice(&9u32.to_le_bytes());
        p
    }

    #[test]
    fn a_probe_payload_round_trips_and_becomes_mostly_zeros() {
        let raw = payload(1000);
        let mut cleared = raw.clone();
        clear_checks(&mut cleared[..40 * 1000]);
        assert!((0..1000).all(|i| cleared[i * 40 + layout::R_CHECK] == 0));
        let mut out = vec![0xaa; 3];
        let flags = encode_probe(&cleared, &mut out).unwrap();
        assert_eq!(flags, 5 | CHECKS_CLEARED);
        let zeros = out[40..].iter().filter(|&&b| b == 0).count();
        assert!(zeros * 10 > (out.len() - 40) * 8, "{zeros} of {}", out.len() - 40);
        decode_probe(&mut out, flags).unwrap();
        assert_eq!(out, raw);
        restore_checks(&mut cleared);
        assert_eq!(cleared, raw);
    }

    #[test]
    fn every_stride_and_length_round_trips() {
        let raw: Vec<u8> = (0..203u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let mut buf = vec![7; 5];
        for stride in 1..=30 {
            for len in [0, 1, 7, 8, 9, 40, 64, 199, 203] {
                subtract_into(&raw[..len], stride, &mut buf);
                assert_eq!(buf.len(), len);
                add(&mut buf, stride);
                assert_eq!(buf, &raw[..len], "stride {stride}, len {len}");
            }
        }
    }

    #[test]
    fn garbage_is_survived() {
        assert_eq!(encode_probe(&[], &mut Vec::new()), None);
        assert_eq!(encode_probe(&[9, 0, 0, 0, 0, 0, 0, 0], &mut Vec::new()), None);
        assert!(decode_probe(&mut [1, 2, 3], 0).is_err());
        assert!(decode_probe(&mut [1, 2, 3], MAX_STRIDE + 1).is_err());
        let mut p = payload(20);
        for cut in 0..p.len() {
            clear_checks(&mut p[..cut]);
            restore_checks(&mut p[..cut]);
            let _ = decode_probe(&mut p[..cut], 5 | CHECKS_CLEARED);
            let _ = decode_probe(&mut p[..cut], 1 | CHECKS_CLEARED);
        }
        // Records longer than MAX_STRIDE words are filtered at that stride.
        let mut big = Vec::new();
        for i in 0..3u64 {
            big.extend_from_slice(&record_word0(8 * 600, 3, i, i).to_le_bytes());
            big.extend_from_slice(&(i << 8 | 0xc3).to_le_bytes());
            big.extend_from_slice(&i.to_le_bytes());
            big.resize(big.len() + 8 * 600 - 24, 7);
        }
        big.extend_from_slice(&0u32.to_le_bytes());
        let mut cleared = big.clone();
        clear_checks(&mut cleared);
        let mut out = Vec::new();
        let flags = encode_probe(&cleared, &mut out).unwrap();
        assert_eq!(flags, MAX_STRIDE | CHECKS_CLEARED);
        decode_probe(&mut out, flags).unwrap();
        assert_eq!(out, big);
    }
}
