//! The recorder: everything `weft record` does, as a library that any front
//! end (the command line, a daemon, a live view, a test harness) drives.
//!
//! This crate owns a recording from start to finish: creating the trace
//! file safely, the kernel tracer (`weft-kernel`), the weft-probe
//! collector's attachments (`weft-probe-collect`), the one encoder through
//! which both sources and the side data (JIT maps, kernel symbols, archived
//! binaries) reach the `TraceWriter`, and the command's lifecycle (start,
//! signals, exit status). It must not print, read flags or decide exit
//! codes: warnings and information come back as `Notice`s through a
//! callback, and the outcome as a `Summary`.
//!
//! ```text
//!  Options ──▶ Recorder::start ──▶ step() … step() ──▶ finish() ──▶ Summary
//!                │                    │                  │
//!   KernelTracer (per-CPU rings) ─┐   │                  │
//!   Probes (attachments) ─────────┼─▶ Encoder ─▶ TraceWriter (chunks) ─▶ file
//!   SideData (JIT, kallsyms) ─────┘
//! ```
//!
//! Glossary: an *attachment* is the collector's link to one instrumented
//! process (its control connection and buffer area); a *session* is, inside
//! that process, the slot a recorder occupies (one bit of each enable word,
//! see `weft-probe-abi`); the *kernel tracer* is the set of perf events and
//! rings of one recording.

mod encode;
mod filter;
pub mod output;
mod probes;
mod recorder;
mod side;
mod vfork;

pub use probes::ProbeTotals;
pub use recorder::{
    describe_status, CaptureLimits, Crash, Options, ProbeOptions, Progress, Recorder, Summary, Target, FLUSH_EVERY,
};

use std::path::PathBuf;

use thiserror::Error;
use weft_kernel::KernelError;

/// How much a notice matters to the person recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// What happened, for the curious (a quiet front end drops it).
    Info,
    /// Data that could not be recorded, or was damaged.
    Warning,
    /// Someone may be attacking the recorder: say it even when quiet.
    Alert,
}

/// Something the recorder wants said; the front end decides how.
#[derive(Debug, Clone)]
pub struct Notice {
    pub level: Level,
    pub text: String,
}

#[derive(Debug, Error)]
pub enum RecordError {
    #[error("nothing to record: give a command after `--` (weft record -- ./app) or a running process with -p PID")]
    NothingToRecord,
    #[error("no process with PID {pid} (is it still running? `ps -p {pid}` shows it)")]
    NoSuchProcess { pid: u32 },
    /// The command could not be started; no trace file was left.
    #[error("cannot start `{program}`: {why}")]
    CannotStart { program: String, why: String },
    #[error("{0}")]
    BadOption(String),
    /// (`error` is said in what-to-do terms, not chained as a source.)
    #[error("cannot create trace file {}: {}", .path.display(), output_why(.path, .error))]
    Output { path: PathBuf, error: std::io::Error },
    #[error("PID {pid} runs as uid {owner}, and uid {uid} may trace only its own processes: run weft as root (or as uid {owner})")]
    NotYours { pid: u32, owner: u32, uid: u32 },
    #[error("cannot attach to PID {pid}: {source}")]
    Attach { pid: u32, source: KernelError },
    #[error("cannot set up tracing of the command: {0}")]
    Setup(KernelError),
    #[error("cannot write to the trace file: {0}")]
    Write(std::io::Error),
    #[error(transparent)]
    Kernel(KernelError),
}

/// Why the trace file could not be created, in what-to-do terms.
fn output_why(path: &std::path::Path, e: &std::io::Error) -> String {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    match e.kind() {
        std::io::ErrorKind::NotFound => format!(
            "the directory {} does not exist (create it, or pick another -o)",
            dir.display()
        ),
        std::io::ErrorKind::PermissionDenied => {
            format!("no permission to write in {} (pick another -o)", dir.display())
        }
        std::io::ErrorKind::IsADirectory => "it is a directory (give a file name, e.g. -o app.weft)".into(),
        _ => {
            let s = e.to_string();
            // The errno's number says nothing more than its text.
            s.split(" (os error").next().unwrap_or(&s).to_owned()
        }
    }
}

impl From<KernelError> for RecordError {
    fn from(e: KernelError) -> Self {
        match e {
            KernelError::Spawn { program, source } => RecordError::CannotStart {
                program,
                why: source.to_string(),
            },
            e => RecordError::Kernel(e),
        }
    }
}
