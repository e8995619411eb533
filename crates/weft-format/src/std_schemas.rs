//! The standard record types weft's own collectors write. Readers find them
//! by name (never by id, which is per file); field order is fixed by the
//! constants here and documented in docs/format.md. A collector may append
//! fields at the end in a later minor version.

use crate::schema::{FieldType as T, Schema};

/// A system call entry: `nr`, then the call's arguments (as many as the
/// syscall table declares for `nr`, all six when unknown).
pub const SYSCALL_ENTER: &str = "kernel:syscall_enter";
/// A system call return: `nr`, `ret` (negative errno on failure).
pub const SYSCALL_EXIT: &str = "kernel:syscall_exit";
/// A signal generated (in the context of the sender).
pub const SIGNAL_GENERATE: &str = "kernel:signal_generate";
/// A signal delivered to the record's thread (`handler` 0 = default action, 1 = ignored).
pub const SIGNAL_DELIVER: &str = "kernel:signal_deliver";
/// A task created; the record's pid/tid are the new task's.
pub const FORK: &str = "kernel:fork";
/// A successful exec by the record's thread.
pub const EXEC: &str = "kernel:exec";
/// A task exited; `group_dead` when it was the last thread of its process.
pub const EXIT: &str = "kernel:exit";
/// A thread's name: set at exec, by prctl(PR_SET_NAME), or read from /proc at attach.
pub const COMM: &str = "kernel:comm";
/// A memory mapping of the record's process: executable mappings as the
/// kernel reports them, and every mapping read from /proc when attaching.
pub const MMAP: &str = "kernel:mmap";
/// Events the kernel dropped on the record's CPU because the ring was full.
pub const LOST: &str = "kernel:lost";

/// weft-probe: a collector attached to an instrumented process.
pub const PROBE_ATTACH: &str = "weft:probe_attach";
/// weft-probe: damage found in a process's buffers (what, where).
pub const PROBE_DAMAGE: &str = "weft:probe_damage";
/// weft-probe: an instrumented process whose events were not recorded,
/// and why (memory cap, an impostor at its socket, no answer in time).
pub const PROBE_MISSED: &str = "weft:probe_missed";
/// weft-probe: a thread's accounting when its session ended.
pub const PROBE_STATS: &str = "weft:probe_stats";
/// weft-probe's built-in events (written by programs, not by weft).
pub const MARKER: &str = "weft:marker";
pub const SPAN_BEGIN: &str = "weft:span_begin";
pub const SPAN_END: &str = "weft:span_end";

/// A stack sample: CPU sampling (`trigger` = "cpu-clock") or a stack taken
/// with a traced event (`trigger` = the syscall or tracepoint name).
/// `user_regs` are ip, sp, bp; `user_stack` is a copy of the stack from sp up.
pub const SAMPLE: &str = "kernel:sample";
/// A JIT symbol map (`/tmp/perf-PID.map` text) of the record's process.
pub const JIT_MAP: &str = "kernel:jit_map";

pub mod sample {
    pub const TRIGGER: usize = 0;
    pub const KERNEL: usize = 1;
    pub const USER: usize = 2;
    pub const USER_REGS: usize = 3;
    pub const USER_STACK: usize = 4;
}
pub mod jit_map {
    pub const TEXT: usize = 0;
}
/// Kernel functions that appear in the recording's kernel call chains, named
/// from the recording machine's /proc/kallsyms at the end of recording.
pub const KERNEL_SYMBOLS: &str = "kernel:symbols";
pub mod kernel_symbols {
    /// Start address of each function, ascending.
    pub const ADDRS: usize = 0;
    /// Their names, each followed by a NUL byte, in the same order.
    pub const NAMES: usize = 1;
}

pub mod probe_attach {
    pub const EVENTS: usize = 0;
    pub const ENABLED: usize = 1;
    pub const SESSION: usize = 2;
    pub const USER_EVENTS: usize = 3;
}
pub mod probe_damage {
    pub const SLOT: usize = 0;
    pub const GEN: usize = 1;
    pub const AFTER_SEQ: usize = 2;
    pub const OFFSET: usize = 3;
    pub const WHAT: usize = 4;
}
pub mod probe_missed {
    pub const WHY: usize = 0;
}
pub mod probe_stats {
    pub const SLOT: usize = 0;
    pub const ATTEMPTED: usize = 1;
    pub const COMMITTED: usize = 2;
    pub const LOST_FULL: usize = 3;
    pub const LOST_BUSY: usize = 4;
    pub const RECEIVED: usize = 5;
    pub const ABANDONED: usize = 6;
    pub const DAMAGED: usize = 7;
    pub const OVERWRITTEN: usize = 8;
    pub const NO_SLOT: usize = 9;
    /// Empty, or why the counters copied from the process cannot be believed.
    pub const SUSPECT: usize = 10;
}

pub mod syscall_enter {
    pub const NR: usize = 0;
    pub const ARGS: usize = 1;
}
pub mod syscall_exit {
    pub const NR: usize = 0;
    pub const RET: usize = 1;
}
pub mod signal_generate {
    pub const SIG: usize = 0;
    pub const CODE: usize = 1;
    pub const ERRNO: usize = 2;
    pub const TARGET_PID: usize = 3;
    pub const TARGET_COMM: usize = 4;
    pub const GROUP: usize = 5;
    pub const RESULT: usize = 6;
}
pub mod signal_deliver {
    pub const SIG: usize = 0;
    pub const CODE: usize = 1;
    pub const ERRNO: usize = 2;
    pub const HANDLER: usize = 3;
    pub const FLAGS: usize = 4;
}
pub mod fork {
    pub const PARENT_PID: usize = 0;
    pub const PARENT_TID: usize = 1;
}
pub mod exec {
    pub const FILENAME: usize = 0;
    pub const OLD_TID: usize = 1;
}
pub mod exit {
    pub const GROUP_DEAD: usize = 0;
}
pub mod comm {
    pub const COMM: usize = 0;
    pub const EXEC: usize = 1;
}
pub mod mmap {
    pub const ADDR: usize = 0;
    pub const LEN: usize = 1;
    pub const PGOFF: usize = 2;
    pub const PROT: usize = 3;
    pub const FLAGS: usize = 4;
    pub const FILENAME: usize = 5;
    pub const BUILD_ID: usize = 6;
    pub const INODE: usize = 7;
}
pub mod lost {
    pub const COUNT: usize = 0;
}

/// All standard schemas, in a fixed order.
pub fn all() -> Vec<Schema> {
    vec![
        Schema::new(SYSCALL_ENTER, &[("nr", T::U32), ("args", T::U64Array)]),
        Schema::new(SYSCALL_EXIT, &[("nr", T::U32), ("ret", T::I64)]),
        Schema::new(
            SIGNAL_GENERATE,
            &[
                ("sig", T::I32),
                ("code", T::I32),
                ("errno", T::I32),
                ("target_pid", T::I32),
                ("target_comm", T::Str),
                ("group", T::Bool),
                ("result", T::I32),
            ],
        ),
        Schema::new(
            SIGNAL_DELIVER,
            &[
                ("sig", T::I32),
                ("code", T::I32),
                ("errno", T::I32),
                ("handler", T::Ptr),
                ("flags", T::U64),
            ],
        ),
        Schema::new(FORK, &[("parent_pid", T::U32), ("parent_tid", T::U32)]),
        Schema::new(EXEC, &[("filename", T::Str), ("old_tid", T::U32)]),
        Schema::new(EXIT, &[("group_dead", T::Bool)]),
        Schema::new(COMM, &[("comm", T::Str), ("exec", T::Bool)]),
        Schema::new(
            MMAP,
            &[
                ("addr", T::Ptr),
                ("len", T::U64),
                ("pgoff", T::U64),
                ("prot", T::U32),
                ("flags", T::U32),
                ("filename", T::Str),
                ("build_id", T::Bytes),
                ("inode", T::U64),
            ],
        ),
        Schema::new(LOST, &[("count", T::U64)]),
        Schema::new(
            PROBE_ATTACH,
            &[
                ("events", T::U32),
                ("enabled", T::U32),
                ("session", T::U32),
                ("user_events", T::Bool),
            ],
        ),
        Schema::new(
            PROBE_DAMAGE,
            &[
                ("slot", T::U32),
                ("gen", T::U64),
                ("after_seq", T::I64),
                ("offset", T::U64),
                ("what", T::Str),
            ],
        ),
        Schema::new(
            PROBE_STATS,
            &[
                ("slot", T::U32),
                ("attempted", T::U64),
                ("committed", T::U64),
                ("lost_full", T::U64),
                ("lost_busy", T::U64),
                ("received", T::U64),
                ("abandoned", T::U64),
                ("damaged", T::U64),
                ("overwritten", T::U64),
                ("no_slot", T::U64),
                ("suspect", T::Str),
            ],
        ),
        Schema::new(
            SAMPLE,
            &[
                ("trigger", T::Str),
                ("kernel", T::U64Array),
                ("user", T::U64Array),
                ("user_regs", T::U64Array),
                ("user_stack", T::Bytes),
            ],
        ),
        Schema::new(JIT_MAP, &[("text", T::Bytes)]),
        Schema::new(KERNEL_SYMBOLS, &[("addrs", T::U64Array), ("names", T::Bytes)]),
        Schema::new(PROBE_MISSED, &[("why", T::Str)]),
    ]
}
