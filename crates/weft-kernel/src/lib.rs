//! Kernel event collection: everything weft learns from the kernel about a
//! traced process tree, through tracefs and `perf_event_open`.
//!
//! This crate owns tracepoint discovery and layouts (tracefs `format` files),
//! the per-CPU perf rings, attaching to a command or to running processes,
//! decoding perf records into `KernelEvent`s, and the small OS helpers a
//! recorder needs (`os`: process handles, signals, limits). It must not use
//! ptrace, must not keep whole traces in memory (callers drain and write as
//! they go), must not encode the trace file (weft-record does), and must not
//! print: it returns errors that say what the user can do.
//!
//! Glossary: the `KernelTracer` is one recording's perf events and rings; a
//! *ring* is one CPU's perf buffer, which several events write into
//! (`SET_OUTPUT`); *sideband* records (comm, fork, exit, mmap) ride with the
//! first event of each ring; a *lost* count is what the kernel dropped when
//! a ring was full.
//!
//! ```text
//!  command: its cgroup ─┬─ raw_syscalls:sys_enter ─┐ (sideband: comm/fork/mmap2)
//!  -p PID: each task    ├─ raw_syscalls:sys_exit  ─┤
//!   (inherit=1)         ├─ signal:* , sched:*     ─┤
//!   per CPU N           └─ eBPF capture output ───┴─SET_OUTPUT─▶ ring of CPU N ─▶ epoll
//! ```
//! Every event uses CLOCK_MONOTONIC, so other sources merge on one timeline.
//! The eBPF program (`capture`, source and committed object in `bpf/`)
//! copies what syscall arguments point to into the same ring, just before
//! the syscall's record, which `KernelTracer` joins it to; `argspec` says
//! which argument points to what. The loader is aya: pure Rust, so that
//! `cargo build` needs neither clang nor libbpf's C sources and libelf
//! (libbpf-rs builds libbpf-sys from C); the object is built by
//! `bpf/build.sh` with clang and committed, and CI checks that it matches
//! its source.

mod access;
pub mod argspec;
mod capture;
mod cgroup;
mod error;
mod event;
#[doc(hidden)]
pub mod fuzzing;
mod launch;
pub mod os;
mod perf;
pub mod procfs;
mod ring;
mod session;
pub mod syscalls;
mod tracefs;

pub use access::{check_tracing_allowed, perf_event_paranoid, tracing_access, user_ring_limit, Access};
pub use capture::{CaptureOptions, MAX_LIMIT as CAPTURE_MAX_LIMIT};
pub use cgroup::TraceCgroup;
pub use error::{KernelError, Result};
pub use event::{carries_addr, EventKind, KernelEvent, VforkCalls};
pub use launch::{spawn_paused, Paused};
pub use session::{KernelTracer, Options};
pub use tracefs::{EventFormat, FormatField, Tracefs};

/// Current CLOCK_MONOTONIC time in nanoseconds, the trace's clock.
pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// Current CLOCK_REALTIME in nanoseconds, recorded once to anchor the trace.
pub fn realtime_ns() -> u64 {
    clock_ns(libc::CLOCK_REALTIME)
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid timespec to write into.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
