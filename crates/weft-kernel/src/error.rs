use std::path::PathBuf;

use thiserror::Error;

/// What went wrong talking to the kernel, with what the user can do about it.
#[derive(Debug, Error)]
pub enum KernelError {
    #[error("{what}\n  hint: {hint}")]
    Privilege { what: String, hint: String },
    #[error("tracefs is not available: {reason}\n  hint: mount it with `mount -t tracefs nodev /sys/kernel/tracing` (needs root), or enable CONFIG_TRACING in the kernel")]
    NoTracefs { reason: String },
    #[error("cannot read tracepoint format {path}: {source}")]
    Format { path: PathBuf, source: std::io::Error },
    #[error("tracepoint format {path} is missing field `{field}`")]
    FormatField { path: PathBuf, field: String },
    #[error("{syscall} failed for {what}: {source}{}", hint.as_deref().map(|h| format!("\n  hint: {h}")).unwrap_or_default())]
    Sys {
        syscall: &'static str,
        what: String,
        source: std::io::Error,
        hint: Option<String>,
    },
    #[error("no process with PID {pid} (is it still running?)")]
    NoSuchProcess { pid: u32 },
    #[error("unknown system call or class `{name}`{}", suggestion.as_deref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    UnknownSyscall { name: String, suggestion: Option<String> },
    #[error("invalid pattern `{pattern}`: {reason}")]
    BadPattern { pattern: String, reason: String },
    #[error("cannot start `{program}`: {source}")]
    Spawn { program: String, source: std::io::Error },
}

impl KernelError {
    pub(crate) fn sys(syscall: &'static str, what: impl Into<String>, source: std::io::Error) -> Self {
        let hint = match source.raw_os_error() {
            Some(libc::EMFILE) | Some(libc::ENFILE) => Some(
                "too many open files: raise the limit with `ulimit -n 65536`, or trace fewer threads or syscalls"
                    .into(),
            ),
            Some(libc::ENOMEM) => Some("the kernel refused the memory: try a smaller --buffer-size".into()),
            Some(libc::EPERM) | Some(libc::EACCES) => Some(crate::access::HINT.into()),
            Some(libc::ESRCH) => Some("the process exited before tracing could attach".into()),
            _ => None,
        };
        KernelError::Sys {
            syscall,
            what: what.into(),
            source,
            hint,
        }
    }
}

pub type Result<T, E = KernelError> = std::result::Result<T, E>;
