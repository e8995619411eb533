//! The weft trace file format: everything needed to write and read a `.weft` file.
//!
//! This crate owns the bytes on disk and nothing else: it knows no kernel, no
//! perf ABI and no CLI. Its one dependency inside weft is the field-type
//! enum it shares with the probe ABI (`weft_probe_abi::payload::FieldType`). It must never panic on input, never allocate more than a
//! chunk's declared (and bounded) size, and must keep reading past damage where
//! the framing allows it. The normative description is `docs/format.md`.
//!
//! ```text
//! file   = file-header chunk*
//! chunk  = chunk-header(48 bytes, CRC'd) payload(zstd or raw, CRC'd)
//! kinds  = Info | Schemas | Events | SyscallTable | End | Probe | ProbeDelta
//! ```
//!
//! Invariant a newcomer needs: a chunk is self-contained given the metadata
//! chunks *before* it (schemas are always written before the first events chunk
//! that uses them), so every complete chunk of a file cut short by `kill -9` can
//! be decoded.

pub mod captured;
mod chunk;
mod delta;
mod error;
mod output;
mod probe;
mod reader;
mod record;
mod schema;
pub mod std_schemas;
mod view;
mod wire;
mod writer;

pub use chunk::{ChunkHeader, ChunkKind, Compression, CHUNK_HEADER_LEN, CHUNK_MAGIC, MAX_CHUNK_RAW_LEN};
pub use error::{FormatError, Problem};
pub use probe::{ProbeBuf, ProbeClock, ProbeRunInfo};
pub use reader::{ChunkInfo, Records, Trace, Views};
pub use record::{Record, Value};
pub use schema::{Field, FieldType, Schema, SchemaId, SyscallArg, SyscallEntry, SyscallTable};
pub use view::{FieldRef, RecordView, U64s};
pub use writer::{RecordBuf, RecordBuilder, TraceWriter, EVENTS_CHUNK_BYTES};

/// First bytes of every weft trace file. The high byte and CR/LF/^Z catch
/// files mangled by text-mode transfers, as PNG's signature does.
pub const FILE_MAGIC: [u8; 8] = [0x89, b'W', b'E', b'F', b'T', b'\r', b'\n', 0x1a];
/// Length of the file header.
pub const FILE_HEADER_LEN: usize = 32;
/// Major version: a reader refuses files of another major version.
pub const VERSION_MAJOR: u16 = 1;
/// Minor version: additions a 1.0 reader can skip (new chunk kinds, new keys,
/// new schemas, fields appended to standard schemas). docs/history.md lists
/// what each added.
pub const VERSION_MINOR: u16 = 5;

/// Well-known keys of the Info chunk.
pub mod info_keys {
    pub const CLOCK: &str = "clock";
    pub const HOSTNAME: &str = "hostname";
    pub const KERNEL_RELEASE: &str = "kernel_release";
    pub const MACHINE: &str = "machine";
    pub const COMMAND: &str = "command";
    pub const TARGET: &str = "target";
    pub const RECORDER: &str = "recorder";
    pub const START_MONOTONIC_NS: &str = "start_monotonic_ns";
    pub const START_REALTIME_NS: &str = "start_realtime_ns";
    pub const SYSCALLS: &str = "syscalls";
    pub const NCPUS: &str = "ncpus";
    /// What the recording includes, comma-separated (`syscalls`, `signals`,
    /// `process lifecycle`, ...).
    pub const SOURCES: &str = "sources";
    /// What it could not include: `name (why)` items separated by `; `.
    pub const NOT_RECORDED: &str = "not_recorded";
    /// CPU sampling frequency (Hz) with `--sample`.
    pub const SAMPLE_HZ: &str = "sample_hz";
    /// The events stacks were taken on (`--stack-on`), comma-separated;
    /// empty for none. Absent from files written before it existed.
    pub const STACK_ON: &str = "stack_on";
}

/// Well-known keys of the End chunk.
pub mod end_keys {
    pub const END_MONOTONIC_NS: &str = "end_monotonic_ns";
    pub const RECORDS: &str = "records";
    /// `lost_cpu<N>` = events the kernel dropped on CPU N.
    pub const LOST_PREFIX: &str = "lost_cpu";
    pub const EXIT_STATUS: &str = "command_exit";
    /// The launched command's pid, beside `command_exit`.
    pub const COMMAND_PID: &str = "command_pid";
    pub const STOP_REASON: &str = "stop_reason";
}
