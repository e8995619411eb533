use thiserror::Error;

/// Why a file, or part of it, could not be read. Every variant names the
/// file offset where the reader found the problem.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FormatError {
    #[error("I/O error reading the trace at offset {offset}: {message}")]
    Io { offset: u64, message: String },
    #[error("not a weft trace file: bad magic at offset 0 (file starts with {found:02x?})")]
    BadFileMagic { found: Vec<u8> },
    #[error("file is too short ({len} bytes) to hold a weft file header ({need} bytes)")]
    ShortFile { len: u64, need: usize },
    #[error("file header checksum mismatch at offset 0: the header is damaged")]
    BadFileHeader,
    #[error("unsupported trace format version {major}.{minor} (this weft reads {supported}.x)")]
    UnsupportedVersion { major: u16, minor: u16, supported: u16 },
    #[error("damaged chunk header at offset {offset}: {reason}")]
    BadChunkHeader { offset: u64, reason: String },
    #[error(
        "chunk {seq} at offset {offset}: payload checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
    )]
    BadPayloadChecksum {
        offset: u64,
        seq: u32,
        stored: u32,
        computed: u32,
    },
    #[error("chunk {seq} at offset {offset}: cannot decompress: {reason}")]
    Decompress { offset: u64, seq: u32, reason: String },
    #[error("chunk {seq} at offset {offset}: malformed payload at byte {at} of the payload: {reason}")]
    Malformed {
        offset: u64,
        seq: u32,
        at: usize,
        reason: String,
    },
    #[error("trace truncated at offset {offset}: {reason}")]
    Truncated { offset: u64, reason: String },
}

impl FormatError {
    /// File offset the error refers to.
    pub fn offset(&self) -> u64 {
        match self {
            FormatError::Io { offset, .. }
            | FormatError::BadChunkHeader { offset, .. }
            | FormatError::BadPayloadChecksum { offset, .. }
            | FormatError::Decompress { offset, .. }
            | FormatError::Malformed { offset, .. }
            | FormatError::Truncated { offset, .. } => *offset,
            _ => 0,
        }
    }
}

/// Damage found while scanning a file that did not stop the reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub error: FormatError,
    /// Bytes of the file that could not be used because of this problem.
    pub skipped_bytes: u64,
}
