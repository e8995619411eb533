//! The standard record types weft's own collectors write, each defined once
//! here: its name, its fields in order and their types. From that one
//! definition come the name constant, a module per schema with the index of
//! each field (`syscall_exit::RET`) for readers, the field list (`FIELDS`),
//! and `put`, which appends a record's fields in order for writers, so that
//! no caller writes or reads a standard field by a bare position. Readers
//! find schemas by name (never by id, which is per file). docs/format.md §12
//! documents them, and a test checks its tables against these definitions.
//! A collector may append fields at the end in a later minor version.

use crate::schema::{FieldType as T, Schema, SchemaId};
use crate::writer::{RecordBuilder, TraceWriter};

/// The Rust type a writer passes for a field type.
macro_rules! arg_ty {
    (U32) => {
        u64
    };
    (U64) => {
        u64
    };
    (Ptr) => {
        u64
    };
    (I32) => {
        i64
    };
    (I64) => {
        i64
    };
    (Bool) => {
        bool
    };
    (Str) => {
        &[u8]
    };
    (Bytes) => {
        &[u8]
    };
    (U64Array) => {
        &[u64]
    };
}

/// How a writer appends a field of a type.
macro_rules! put_field {
    ($b:expr, U32, $v:expr) => {
        $b.u64($v)
    };
    ($b:expr, U64, $v:expr) => {
        $b.u64($v)
    };
    ($b:expr, Ptr, $v:expr) => {
        $b.u64($v)
    };
    ($b:expr, I32, $v:expr) => {
        $b.i64($v)
    };
    ($b:expr, I64, $v:expr) => {
        $b.i64($v)
    };
    ($b:expr, Bool, $v:expr) => {
        $b.bool($v)
    };
    ($b:expr, Str, $v:expr) => {
        $b.bytes($v)
    };
    ($b:expr, Bytes, $v:expr) => {
        $b.bytes($v)
    };
    ($b:expr, U64Array, $v:expr) => {
        $b.u64s($v)
    };
}

/// Field index constants, counting up from 0.
macro_rules! indices {
    ($n:expr;) => {};
    ($n:expr; $(#[$d:meta])* $k:ident $($rest:tt)*) => {
        $(#[$d])*
        pub const $k: usize = $n;
        indices!($n + 1; $($rest)*);
    };
}

macro_rules! schemas {
    ($(
        $(#[$doc:meta])*
        $konst:ident = $name:literal in $m:ident {
            $( $(#[$fdoc:meta])* $fk:ident $field:ident : $ft:ident ),* $(,)?
        }
    )*) => {
        $(
            $(#[$doc])*
            pub const $konst: &str = $name;
            #[doc = concat!("Fields of `", $name, "`, in order.")]
            pub mod $m {
                use super::*;
                indices!(0usize; $($(#[$fdoc])* $fk)*);
                /// Field names and types, in order.
                pub const FIELDS: &[(&str, T)] = &[$((stringify!($field), T::$ft)),*];
                /// Appends the record's fields, in schema order; then call `finish`.
                #[inline]
                #[allow(clippy::too_many_arguments)]
                pub fn put<'a>(b: RecordBuilder<'a>, $($field: arg_ty!($ft)),*) -> RecordBuilder<'a> {
                    $( let b = put_field!(b, $ft, $field); )*
                    b
                }
            }
        )*

        /// The names of all standard schemas, in the order of `all`.
        pub const NAMES: &[&str] = &[$($name),*];

        /// All standard schemas, in a fixed order (the order `weft record`
        /// declares them in).
        pub fn all() -> Vec<Schema> {
            vec![$(Schema::new($konst, $m::FIELDS)),*]
        }

        /// The id of each standard schema in one file being written, by name.
        #[derive(Debug, Clone, Copy)]
        pub struct Ids {
            $(
                #[doc = concat!("`", $name, "`")]
                pub $m: SchemaId,
            )*
        }

        impl Ids {
            /// Declares every standard schema, in the order of `all`.
            pub fn declare<W: std::io::Write>(w: &mut TraceWriter<W>) -> Ids {
                Ids { $($m: w.add_schema(Schema::new($konst, $m::FIELDS))),* }
            }
        }
    };
}

schemas! {
    /// A system call entry: `nr`, then the call's arguments (as many as the
    /// syscall table declares for `nr`, all six when unknown), then what
    /// its pointer arguments pointed to (`captured`, since 1.3).
    SYSCALL_ENTER = "kernel:syscall_enter" in syscall_enter { NR nr: U32, ARGS args: U64Array, DATA data: Bytes }
    /// A system call return: `nr`, `ret` (negative errno on failure), then
    /// what the call wrote through its pointer arguments (since 1.3).
    SYSCALL_EXIT = "kernel:syscall_exit" in syscall_exit { NR nr: U32, RET ret: I64, DATA data: Bytes }
    /// A signal generated (in the context of the sender).
    SIGNAL_GENERATE = "kernel:signal_generate" in signal_generate {
        SIG sig: I32,
        CODE code: I32,
        ERRNO errno: I32,
        TARGET_PID target_pid: I32,
        TARGET_COMM target_comm: Str,
        GROUP group: Bool,
        RESULT result: I32,
    }
    /// A signal delivered to the record's thread (`handler` 0 = default
    /// action, 1 = ignored). `addr` is the siginfo's address (the faulting
    /// address of a SIGSEGV or SIGBUS, the instruction of a SIGILL, SIGFPE
    /// or SIGTRAP), meaningful when `has_addr` (since 1.4).
    SIGNAL_DELIVER = "kernel:signal_deliver" in signal_deliver {
        SIG sig: I32,
        CODE code: I32,
        ERRNO errno: I32,
        HANDLER handler: Ptr,
        FLAGS flags: U64,
        HAS_ADDR has_addr: Bool,
        ADDR addr: Ptr,
    }
    /// A task created; the record's pid/tid are the new task's.
    FORK = "kernel:fork" in fork { PARENT_PID parent_pid: U32, PARENT_TID parent_tid: U32 }
    /// A successful exec by the record's thread.
    EXEC = "kernel:exec" in exec { FILENAME filename: Str, OLD_TID old_tid: U32 }
    /// A task exited; `group_dead` when it was the last thread of its process.
    EXIT = "kernel:exit" in exit { GROUP_DEAD group_dead: Bool }
    /// A thread's name: set at exec, by prctl(PR_SET_NAME), or read from /proc at attach.
    COMM = "kernel:comm" in comm { COMM comm: Str, EXEC exec: Bool }
    /// A memory mapping of the record's process: executable mappings as the
    /// kernel reports them, and every mapping read from /proc when attaching.
    MMAP = "kernel:mmap" in mmap {
        ADDR addr: Ptr,
        LEN len: U64,
        PGOFF pgoff: U64,
        PROT prot: U32,
        FLAGS flags: U32,
        FILENAME filename: Str,
        BUILD_ID build_id: Bytes,
        INODE inode: U64,
    }
    /// Events the kernel dropped on the record's CPU because the ring was full.
    LOST = "kernel:lost" in lost { COUNT count: U64 }
    /// weft-probe: a collector attached to an instrumented process.
    PROBE_ATTACH = "weft:probe_attach" in probe_attach {
        EVENTS events: U32,
        ENABLED enabled: U32,
        SESSION session: U32,
        USER_EVENTS user_events: Bool,
    }
    /// weft-probe: damage found in a process's buffers (what, where).
    PROBE_DAMAGE = "weft:probe_damage" in probe_damage {
        SLOT slot: U32,
        GEN gen: U64,
        AFTER_SEQ after_seq: I64,
        OFFSET offset: U64,
        WHAT what: Str,
    }
    /// weft-probe: a thread's accounting when its session ended.
    PROBE_STATS = "weft:probe_stats" in probe_stats {
        SLOT slot: U32,
        ATTEMPTED attempted: U64,
        COMMITTED committed: U64,
        LOST_FULL lost_full: U64,
        LOST_BUSY lost_busy: U64,
        RECEIVED received: U64,
        ABANDONED abandoned: U64,
        DAMAGED damaged: U64,
        OVERWRITTEN overwritten: U64,
        NO_SLOT no_slot: U64,
        /// Empty, or why the counters copied from the process cannot be believed.
        SUSPECT suspect: Str,
    }
    /// A stack sample: CPU sampling (`trigger` = "cpu-clock") or a stack taken
    /// with a traced event (`trigger` = the syscall or tracepoint name).
    /// `user_regs` are ip, sp, bp; `user_stack` is a copy of the stack from sp up.
    SAMPLE = "kernel:sample" in sample {
        TRIGGER trigger: Str,
        KERNEL kernel: U64Array,
        USER user: U64Array,
        USER_REGS user_regs: U64Array,
        USER_STACK user_stack: Bytes,
    }
    /// A JIT symbol map (`/tmp/perf-PID.map` text) of the record's process.
    JIT_MAP = "kernel:jit_map" in jit_map { TEXT text: Bytes }
    /// Kernel functions that appear in the recording's kernel call chains, named
    /// from the recording machine's /proc/kallsyms at the end of recording.
    KERNEL_SYMBOLS = "kernel:symbols" in kernel_symbols {
        /// Start address of each function, ascending.
        ADDRS addrs: U64Array,
        /// Their names, each followed by a NUL byte, in the same order.
        NAMES names: Bytes,
    }
    /// weft-probe: an instrumented process whose events were not recorded,
    /// and why (memory cap, an impostor at its socket, no answer in time).
    PROBE_MISSED = "weft:probe_missed" in probe_missed { WHY why: Str }
    /// The thread left its CPU (`out`: because it blocked, or was preempted
    /// if `preempt`) or came back to one (`out` false). With `record --off-cpu`.
    SWITCH = "kernel:switch" in switch { OUT out: Bool, PREEMPT preempt: Bool }
    /// A descriptor the record's process had open when the recording began
    /// (read from /proc): what later uses of `fd` refer to.
    FD = "kernel:fd" in fd { FD fd: I32, PATH path: Str }
    /// The record's thread was suspended in a vfork (the `vfork` call, or
    /// `clone`/`clone3` with CLONE_VFORK) from the record's time to `end`
    /// while its child process `child` ran in its memory, on its thread
    /// storage: weft-probe events the thread's stream holds from that
    /// window are the child's, and readers attribute them to it (since 1.4).
    VFORK = "kernel:vfork" in vfork { CHILD child: U32, END end: U64 }
}

/// weft-probe's built-in events (written by programs, not by weft): their
/// schemas come from the programs, like any probe event's.
pub const MARKER: &str = "weft:marker";
pub const SPAN_BEGIN: &str = "weft:span_begin";
pub const SPAN_END: &str = "weft:span_end";
