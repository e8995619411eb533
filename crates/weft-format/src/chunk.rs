//! The fixed 48-byte chunk header that frames every payload.

/// Marks the start of a chunk; a reader resynchronizes on it after damage.
pub const CHUNK_MAGIC: [u8; 4] = *b"WCHK";
/// Length of a chunk header.
pub const CHUNK_HEADER_LEN: usize = 48;
/// Largest decompressed payload a reader accepts: bounds memory on hostile
/// input (a chunk's decoded records take ~20x its bytes). Writers flush at 1 MiB.
pub const MAX_CHUNK_RAW_LEN: u32 = 16 << 20;

/// What a chunk's payload holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChunkKind {
    /// Key/value strings describing the recording (host, kernel, clock, command).
    Info,
    /// Event schemas: the types of records later events chunks refer to.
    Schemas,
    /// A batch of records.
    Events,
    /// System call numbers, names and argument declarations of the traced machine.
    SyscallTable,
    /// Key/value strings written when recording ends cleanly (totals, lost counts).
    End,
    /// weft-probe records as the instrumented program wrote them (1.2).
    Probe,
    /// A Probe payload stored word-delta filtered, the stride in the
    /// header's flags (1.5).
    ProbeDelta,
    /// A kind this reader does not know (from a newer minor version); skipped.
    Unknown(u8),
}

impl ChunkKind {
    pub fn code(self) -> u8 {
        match self {
            ChunkKind::Info => 1,
            ChunkKind::Schemas => 2,
            ChunkKind::Events => 3,
            ChunkKind::SyscallTable => 4,
            ChunkKind::End => 5,
            ChunkKind::Probe => 6,
            ChunkKind::ProbeDelta => 7,
            ChunkKind::Unknown(c) => c,
        }
    }

    /// Events and Probe chunks hold records; the others describe them.
    pub fn has_records(self) -> bool {
        matches!(self, ChunkKind::Events | ChunkKind::Probe | ChunkKind::ProbeDelta)
    }

    /// Whether the payload, once read, is a Probe payload (§5.5).
    pub fn is_probe(self) -> bool {
        matches!(self, ChunkKind::Probe | ChunkKind::ProbeDelta)
    }

    pub fn from_code(c: u8) -> Self {
        match c {
            1 => ChunkKind::Info,
            2 => ChunkKind::Schemas,
            3 => ChunkKind::Events,
            4 => ChunkKind::SyscallTable,
            5 => ChunkKind::End,
            6 => ChunkKind::Probe,
            7 => ChunkKind::ProbeDelta,
            c => ChunkKind::Unknown(c),
        }
    }
}

/// How a chunk's payload is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Zstd,
}

impl Compression {
    fn code(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Zstd => 1,
        }
    }
}

/// A decoded chunk header. Layout (little-endian):
///
/// | off | size | field |
/// |-----|------|-------|
/// | 0   | 4    | magic `WCHK` |
/// | 4   | 1    | kind |
/// | 5   | 1    | compression |
/// | 6   | 2    | flags (0, but in ProbeDelta chunks: the filter's stride and CHECKS) |
/// | 8   | 4    | stored payload length |
/// | 12  | 4    | raw (decompressed) payload length |
/// | 16  | 4    | chunk sequence number |
/// | 20  | 4    | record count (events chunks) |
/// | 24  | 8    | min timestamp |
/// | 32  | 8    | max timestamp |
/// | 40  | 4    | CRC-32C of the stored payload |
/// | 44  | 4    | CRC-32C of bytes 0..44 |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkHeader {
    pub kind: ChunkKind,
    pub compression: Compression,
    pub flags: u16,
    pub stored_len: u32,
    pub raw_len: u32,
    pub seq: u32,
    pub records: u32,
    pub min_ts: u64,
    pub max_ts: u64,
    pub payload_crc: u32,
}

impl ChunkHeader {
    pub fn encode(&self) -> [u8; CHUNK_HEADER_LEN] {
        let mut b = [0u8; CHUNK_HEADER_LEN];
        b[0..4].copy_from_slice(&CHUNK_MAGIC);
        b[4] = self.kind.code();
        b[5] = self.compression.code();
        b[6..8].copy_from_slice(&self.flags.to_le_bytes());
        b[8..12].copy_from_slice(&self.stored_len.to_le_bytes());
        b[12..16].copy_from_slice(&self.raw_len.to_le_bytes());
        b[16..20].copy_from_slice(&self.seq.to_le_bytes());
        b[20..24].copy_from_slice(&self.records.to_le_bytes());
        b[24..32].copy_from_slice(&self.min_ts.to_le_bytes());
        b[32..40].copy_from_slice(&self.max_ts.to_le_bytes());
        b[40..44].copy_from_slice(&self.payload_crc.to_le_bytes());
        let crc = crc32c::crc32c(&b[0..44]);
        b[44..48].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and validates a header; the error string says what is wrong.
    pub fn decode(b: &[u8; CHUNK_HEADER_LEN]) -> Result<Self, String> {
        if b[0..4] != CHUNK_MAGIC {
            return Err(format!("bad chunk magic {:02x?}", &b[0..4]));
        }
        let u16at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
        let u32at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64at = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(a)
        };
        let stored_crc = u32at(44);
        let crc = crc32c::crc32c(&b[0..44]);
        if stored_crc != crc {
            return Err(format!(
                "header checksum mismatch (stored {stored_crc:#010x}, computed {crc:#010x})"
            ));
        }
        let compression = match b[5] {
            0 => Compression::None,
            1 => Compression::Zstd,
            c => return Err(format!("unknown compression {c}")),
        };
        let h = ChunkHeader {
            kind: ChunkKind::from_code(b[4]),
            compression,
            flags: u16at(6),
            stored_len: u32at(8),
            raw_len: u32at(12),
            seq: u32at(16),
            records: u32at(20),
            min_ts: u64at(24),
            max_ts: u64at(32),
            payload_crc: u32at(40),
        };
        if h.raw_len > MAX_CHUNK_RAW_LEN {
            return Err(format!(
                "raw length {} exceeds the {} byte limit",
                h.raw_len, MAX_CHUNK_RAW_LEN
            ));
        }
        if h.compression == Compression::None && h.stored_len != h.raw_len {
            return Err("uncompressed chunk with stored length != raw length".into());
        }
        if h.min_ts > h.max_ts {
            return Err(format!("min timestamp {} after max timestamp {}", h.min_ts, h.max_ts));
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_detects_flips() {
        let h = ChunkHeader {
            kind: ChunkKind::Events,
            compression: Compression::Zstd,
            flags: 0,
            stored_len: 100,
            raw_len: 300,
            seq: 7,
            records: 12,
            min_ts: 5,
            max_ts: 9,
            payload_crc: 0xdead_beef,
        };
        let b = h.encode();
        assert_eq!(ChunkHeader::decode(&b).unwrap(), h);
        for bit in 0..CHUNK_HEADER_LEN * 8 {
            let mut m = b;
            m[bit / 8] ^= 1 << (bit % 8);
            assert!(ChunkHeader::decode(&m).is_err(), "flip of bit {bit} not detected");
        }
    }
}
