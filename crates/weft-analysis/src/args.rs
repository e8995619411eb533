//! Syscall arguments and return values as text: types from the recorded
//! syscall table, flags decoded symbolically for the calls people debug most.

use std::fmt::Write;

use weft_format::SyscallEntry;

use crate::captured;
use crate::names::{errno_desc, errno_name, signal_name};

type FlagTable = &'static [(u64, &'static str)];

const PROT: FlagTable = &[
    (0x1, "PROT_READ"),
    (0x2, "PROT_WRITE"),
    (0x4, "PROT_EXEC"),
    (0x8, "PROT_SEM"),
    (0x0100_0000, "PROT_GROWSDOWN"),
    (0x0200_0000, "PROT_GROWSUP"),
];

const MAP: FlagTable = &[
    (0x01, "MAP_SHARED"),
    (0x02, "MAP_PRIVATE"),
    (0x03, "MAP_SHARED_VALIDATE"),
    (0x10, "MAP_FIXED"),
    (0x20, "MAP_ANONYMOUS"),
    (0x40, "MAP_32BIT"),
    (0x100, "MAP_GROWSDOWN"),
    (0x800, "MAP_DENYWRITE"),
    (0x1000, "MAP_EXECUTABLE"),
    (0x2000, "MAP_LOCKED"),
    (0x4000, "MAP_NORESERVE"),
    (0x8000, "MAP_POPULATE"),
    (0x10000, "MAP_NONBLOCK"),
    (0x20000, "MAP_STACK"),
    (0x40000, "MAP_HUGETLB"),
    (0x80000, "MAP_SYNC"),
    (0x100000, "MAP_FIXED_NOREPLACE"),
    (0x4000000, "MAP_UNINITIALIZED"),
];

const MREMAP: FlagTable = &[(1, "MREMAP_MAYMOVE"), (2, "MREMAP_FIXED"), (4, "MREMAP_DONTUNMAP")];

const OPEN: FlagTable = &[
    (0o1, "O_WRONLY"),
    (0o2, "O_RDWR"),
    (0o100, "O_CREAT"),
    (0o200, "O_EXCL"),
    (0o400, "O_NOCTTY"),
    (0o1000, "O_TRUNC"),
    (0o2000, "O_APPEND"),
    (0o4000, "O_NONBLOCK"),
    (0o10000, "O_DSYNC"),
    (0o20000, "O_ASYNC"),
    (0o40000, "O_DIRECT"),
    (0o100000, "O_LARGEFILE"),
    (0o200000, "O_DIRECTORY"),
    (0o400000, "O_NOFOLLOW"),
    (0o1000000, "O_NOATIME"),
    (0o2000000, "O_CLOEXEC"),
    (0o4010000, "O_SYNC"),
    (0o10000000, "O_PATH"),
    (0o20200000, "O_TMPFILE"),
];

const CLONE: FlagTable = &[
    (0x100, "CLONE_VM"),
    (0x200, "CLONE_FS"),
    (0x400, "CLONE_FILES"),
    (0x800, "CLONE_SIGHAND"),
    (0x1000, "CLONE_PIDFD"),
    (0x2000, "CLONE_PTRACE"),
    (0x4000, "CLONE_VFORK"),
    (0x8000, "CLONE_PARENT"),
    (0x10000, "CLONE_THREAD"),
    (0x20000, "CLONE_NEWNS"),
    (0x40000, "CLONE_SYSVSEM"),
    (0x80000, "CLONE_SETTLS"),
    (0x100000, "CLONE_PARENT_SETTID"),
    (0x200000, "CLONE_CHILD_CLEARTID"),
    (0x400000, "CLONE_DETACHED"),
    (0x800000, "CLONE_UNTRACED"),
    (0x1000000, "CLONE_CHILD_SETTID"),
    (0x2000000, "CLONE_NEWCGROUP"),
    (0x4000000, "CLONE_NEWUTS"),
    (0x8000000, "CLONE_NEWIPC"),
    (0x10000000, "CLONE_NEWUSER"),
    (0x20000000, "CLONE_NEWPID"),
    (0x40000000, "CLONE_NEWNET"),
    (0x80000000, "CLONE_IO"),
];

const MADV: &[(u64, &str)] = &[
    (0, "MADV_NORMAL"),
    (1, "MADV_RANDOM"),
    (2, "MADV_SEQUENTIAL"),
    (3, "MADV_WILLNEED"),
    (4, "MADV_DONTNEED"),
    (8, "MADV_FREE"),
    (9, "MADV_REMOVE"),
    (10, "MADV_DONTFORK"),
    (11, "MADV_DOFORK"),
    (12, "MADV_MERGEABLE"),
    (13, "MADV_UNMERGEABLE"),
    (14, "MADV_HUGEPAGE"),
    (15, "MADV_NOHUGEPAGE"),
    (16, "MADV_DONTDUMP"),
    (17, "MADV_DODUMP"),
    (18, "MADV_WIPEONFORK"),
    (19, "MADV_KEEPONFORK"),
    (20, "MADV_COLD"),
    (21, "MADV_PAGEOUT"),
    (22, "MADV_POPULATE_READ"),
    (23, "MADV_POPULATE_WRITE"),
    (24, "MADV_DONTNEED_LOCKED"),
    (25, "MADV_COLLAPSE"),
    (100, "MADV_HWPOISON"),
];

const PRCTL: &[(u64, &str)] = &[
    (1, "PR_SET_PDEATHSIG"),
    (2, "PR_GET_PDEATHSIG"),
    (3, "PR_GET_DUMPABLE"),
    (4, "PR_SET_DUMPABLE"),
    (7, "PR_GET_KEEPCAPS"),
    (8, "PR_SET_KEEPCAPS"),
    (15, "PR_SET_NAME"),
    (16, "PR_GET_NAME"),
    (21, "PR_GET_SECCOMP"),
    (22, "PR_SET_SECCOMP"),
    (23, "PR_CAPBSET_READ"),
    (24, "PR_CAPBSET_DROP"),
    (25, "PR_GET_TSC"),
    (26, "PR_SET_TSC"),
    (29, "PR_SET_TIMERSLACK"),
    (30, "PR_GET_TIMERSLACK"),
    (31, "PR_TASK_PERF_EVENTS_DISABLE"),
    (32, "PR_TASK_PERF_EVENTS_ENABLE"),
    (35, "PR_SET_MM"),
    (36, "PR_SET_CHILD_SUBREAPER"),
    (37, "PR_GET_CHILD_SUBREAPER"),
    (38, "PR_SET_NO_NEW_PRIVS"),
    (39, "PR_GET_NO_NEW_PRIVS"),
    (40, "PR_GET_TID_ADDRESS"),
    (41, "PR_SET_THP_DISABLE"),
    (42, "PR_GET_THP_DISABLE"),
    (47, "PR_CAP_AMBIENT"),
    (59, "PR_SET_SYSCALL_USER_DISPATCH"),
    (0x5961_6d61, "PR_SET_PTRACER"),
    (0x5356_4d41, "PR_SET_VMA"),
];

const ARCH_PRCTL: &[(u64, &str)] = &[
    (0x1001, "ARCH_SET_GS"),
    (0x1002, "ARCH_SET_FS"),
    (0x1003, "ARCH_GET_FS"),
    (0x1004, "ARCH_GET_GS"),
    (0x3001, "ARCH_CET_STATUS"),
];

const SIGPROCMASK: &[(u64, &str)] = &[(0, "SIG_BLOCK"), (1, "SIG_UNBLOCK"), (2, "SIG_SETMASK")];

use crate::consts::{flags, value};

fn mmap_flags(out: &mut String, v: u64) {
    // The mapping type is a 2-bit field, not flags.
    let ty = v & 0x3;
    match ty {
        1 => out.push_str("MAP_SHARED"),
        2 => out.push_str("MAP_PRIVATE"),
        3 => out.push_str("MAP_SHARED_VALIDATE"),
        _ => out.push('0'),
    }
    let rest = v & !0x3;
    if rest != 0 {
        out.push('|');
        flags(out, rest, &MAP[3..]);
    }
}

/// open's flags: the access mode, then the other bits.
pub(crate) fn open_flags(out: &mut String, v: u64) {
    match v & 0o3 {
        0 => out.push_str("O_RDONLY"),
        1 => out.push_str("O_WRONLY"),
        2 => out.push_str("O_RDWR"),
        _ => out.push_str("O_ACCMODE"),
    }
    let rest = v & !0o3 & 0xffff_ffff;
    if rest != 0 {
        out.push('|');
        flags(out, rest, &OPEN[2..]);
    }
}

fn is_signed_ctype(ctype: &str) -> bool {
    let t = ctype.strip_prefix("const ").unwrap_or(ctype);
    matches!(
        t,
        "int"
            | "long"
            | "pid_t"
            | "off_t"
            | "loff_t"
            | "key_t"
            | "clockid_t"
            | "timer_t"
            | "mqd_t"
            | "time_t"
            | "__s32"
            | "s32"
            | "ssize_t"
            | "long long"
    )
}

fn is_32bit_ctype(ctype: &str) -> bool {
    let t = ctype.strip_prefix("const ").unwrap_or(ctype);
    matches!(
        t,
        "int"
            | "unsigned int"
            | "pid_t"
            | "uid_t"
            | "gid_t"
            | "key_t"
            | "clockid_t"
            | "mqd_t"
            | "umode_t"
            | "u32"
            | "__u32"
            | "s32"
            | "__s32"
            | "qid_t"
            | "rwf_t"
    )
}

/// clone's flags: CLONE_* names, then the exit signal in the low byte.
pub(crate) fn clone_flags(out: &mut String, v: u64) {
    let sig = v & 0xff;
    let rest = v & !0xff;
    if rest != 0 || sig == 0 {
        flags(out, rest, CLONE);
    }
    if sig != 0 {
        if rest != 0 {
            out.push('|');
        }
        out.push_str(&signal_name(sig as i64));
    }
}

/// Formats one argument; `others` gives the call's other arguments by name
/// (fcntl's `arg` depends on its `cmd`).
fn arg(out: &mut String, syscall: &str, name: &str, ctype: &str, v: u64, others: &dyn Fn(&str) -> Option<u64>) {
    Shape::of(syscall, name, ctype).write(out, v, others);
}

/// How one argument of one syscall is shown: decided from the syscall's
/// name and the argument's name and C type, once per syscall when a dump
/// prints millions of calls (`CallPlan`).
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// `PROT_NONE` or PROT_* flags.
    Prot,
    MmapFlags,
    OpenFlags,
    /// A file mode, in octal.
    Mode,
    CloneFlags,
    Signal,
    Flags(FlagTable),
    Value(FlagTable),
    /// A table of `consts`, where it applies to the value (else `Plain`).
    Consts(crate::consts::Shape, Plain),
    Plain(Plain),
}

/// An argument shown by its type alone.
#[derive(Debug, Clone, Copy)]
enum Plain {
    /// A directory descriptor: AT_FDCWD or a number.
    Dfd,
    Fd,
    Pointer,
    Signed {
        w32: bool,
    },
    /// `addr`: NULL for 0, else in hex; `hex`: always in hex (flags).
    Unsigned {
        w32: bool,
        addr: bool,
        hex: bool,
    },
}

impl Shape {
    fn of(syscall: &str, name: &str, ctype: &str) -> Shape {
        match (syscall, name) {
            ("mmap" | "mprotect" | "pkey_mprotect", "prot") => return Shape::Prot,
            ("mmap", "flags") => return Shape::MmapFlags,
            ("mremap", "flags") => return Shape::Flags(MREMAP),
            ("madvise" | "process_madvise", "behavior" | "advice") => return Shape::Value(MADV),
            ("open" | "openat" | "creat", "flags") => return Shape::OpenFlags,
            ("open" | "openat" | "creat" | "mkdir" | "mkdirat" | "chmod" | "fchmod" | "fchmodat", "mode") => {
                return Shape::Mode
            }
            ("prctl", "option") => return Shape::Value(PRCTL),
            ("arch_prctl", "option" | "code") => return Shape::Value(ARCH_PRCTL),
            ("clone", "clone_flags") => return Shape::CloneFlags,
            (
                "kill" | "tkill" | "tgkill" | "rt_sigaction" | "rt_sigqueueinfo" | "rt_tgsigqueueinfo"
                | "pidfd_send_signal",
                "sig",
            ) => return Shape::Signal,
            ("rt_sigprocmask", "how") => return Shape::Value(SIGPROCMASK),
            _ => {}
        }
        let plain = Plain::of(syscall, name, ctype);
        match crate::consts::Shape::of(syscall, name) {
            Some(c) => Shape::Consts(c, plain),
            None => Shape::Plain(plain),
        }
    }

    fn write(self, out: &mut String, v: u64, others: &dyn Fn(&str) -> Option<u64>) {
        match self {
            Shape::Prot if v == 0 => out.push_str("PROT_NONE"),
            Shape::Prot => flags(out, v, PROT),
            Shape::MmapFlags => mmap_flags(out, v),
            Shape::OpenFlags => open_flags(out, v),
            Shape::Mode => {
                let _ = write!(out, "{:#o}", v & 0o7777);
            }
            Shape::CloneFlags => clone_flags(out, v),
            Shape::Signal => out.push_str(&signal_name(v as i32 as i64)),
            Shape::Flags(t) => flags(out, v, t),
            Shape::Value(t) => value(out, v, t),
            Shape::Consts(c, plain) => {
                if !c.write(out, v, others) {
                    plain.write(out, v);
                }
            }
            Shape::Plain(plain) => plain.write(out, v),
        }
    }
}

impl Plain {
    fn of(syscall: &str, name: &str, ctype: &str) -> Plain {
        if crate::fds::is_fd_arg(syscall, name) {
            return if name == "dfd" { Plain::Dfd } else { Plain::Fd };
        }
        if ctype.contains('*') {
            return Plain::Pointer;
        }
        let w32 = is_32bit_ctype(ctype);
        if is_signed_ctype(ctype) {
            return Plain::Signed { w32 };
        }
        Plain::Unsigned {
            w32,
            addr: name.contains("addr"),
            hex: name.contains("flags"),
        }
    }

    fn write(self, out: &mut String, v: u64) {
        match self {
            Plain::Dfd if v as i32 == -100 => out.push_str("AT_FDCWD"),
            Plain::Dfd | Plain::Fd => out.push_str(itoa::Buffer::new().format(v as i32)),
            Plain::Pointer if v == 0 => out.push_str("NULL"),
            Plain::Pointer => push_hex(out, v),
            Plain::Signed { w32 } => {
                let s = if w32 { v as i32 as i64 } else { v as i64 };
                out.push_str(itoa::Buffer::new().format(s));
            }
            Plain::Unsigned { w32, addr, hex } => {
                let v = if w32 { v & 0xffff_ffff } else { v };
                if addr && v == 0 {
                    out.push_str("NULL");
                } else if addr || hex || v >= 1 << 32 {
                    push_hex(out, v);
                } else {
                    out.push_str(itoa::Buffer::new().format(v));
                }
            }
        }
    }
}

/// A syscall's arguments resolved once (see `Shape`): the text before
/// each value (`, name=`) and how the value is shown.
#[derive(Debug, Clone)]
pub struct CallPlan {
    args: Vec<(String, Shape)>,
}

impl CallPlan {
    pub fn of(entry: &SyscallEntry) -> CallPlan {
        let args = entry
            .args
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let mut prefix = String::new();
                if i > 0 {
                    prefix.push_str(", ");
                }
                if !a.name.is_empty() {
                    prefix.push_str(&a.name);
                    prefix.push('=');
                }
                (prefix, Shape::of(&entry.name, &a.name, &a.ctype))
            })
            .collect();
        CallPlan { args }
    }
}

/// The plans of a trace's syscalls, by number, made on first use.
#[derive(Debug, Default)]
pub struct CallPlans(Vec<Option<CallPlan>>);

impl CallPlans {
    /// The plan of syscall `nr` of `trace`'s table, if it has an entry
    /// there (numbers past 4096 come from damage: no plan is kept).
    pub fn get<'a, 't>(
        &'a mut self,
        trace: &'t weft_format::Trace,
        nr: u32,
    ) -> Option<(&'t SyscallEntry, &'a CallPlan)> {
        let entry = trace.syscalls.get(nr).filter(|_| nr < 4096)?;
        let i = nr as usize;
        if self.0.len() <= i {
            self.0.resize(i + 1, None);
        }
        Some((entry, self.0[i].get_or_insert_with(|| CallPlan::of(entry))))
    }

    /// The plan of syscall `nr`, if `get` made it.
    pub fn made(&self, nr: u32) -> Option<&CallPlan> {
        self.0.get(nr as usize).and_then(Option::as_ref)
    }
}

/// As `write_call_args`, with the syscall's `plan` (made from `entry`).
pub fn write_planned_call_args(
    out: &mut String,
    entry: &SyscallEntry,
    plan: &CallPlan,
    args: &[u64],
    enter: &[u8],
    exit: &[u8],
) {
    for_each_arg(
        Some(entry),
        Some(plan),
        args,
        enter,
        exit,
        out,
        |out, i, _| match plan.args.get(i) {
            Some((prefix, _)) => out.push_str(prefix),
            None if i > 0 => out.push_str(", "),
            None => {}
        },
    );
}

/// `name=value, ...` for a syscall's recorded arguments.
pub fn format_args(entry: Option<&SyscallEntry>, args: &[u64]) -> String {
    format_call_args(entry, args, &[], &[])
}

/// `name=value, ...` with what the pointer arguments pointed to (the
/// `data` of the enter and exit records) in place of the pointers.
pub fn format_call_args(entry: Option<&SyscallEntry>, args: &[u64], enter: &[u8], exit: &[u8]) -> String {
    let mut out = String::new();
    write_call_args(&mut out, entry, args, enter, exit);
    out
}

/// As `format_call_args`, appending to `out` (one string for the whole
/// call: no string per argument).
pub fn write_call_args(out: &mut String, entry: Option<&SyscallEntry>, args: &[u64], enter: &[u8], exit: &[u8]) {
    for_each_arg(entry, None, args, enter, exit, out, |out, i, name| {
        if i > 0 {
            out.push_str(", ");
        }
        if !name.is_empty() {
            out.push_str(name);
            out.push('=');
        }
    });
}

/// Each recorded argument as (name, value rendered as `format_args` does);
/// the name is empty for arguments the syscall table does not describe.
pub fn format_arg_values(entry: Option<&SyscallEntry>, args: &[u64]) -> Vec<(String, String)> {
    format_arg_values_with(entry, args, &[], &[])
}

/// As `format_arg_values`, with captured data (see `format_call_args`).
pub fn format_arg_values_with(
    entry: Option<&SyscallEntry>,
    args: &[u64],
    enter: &[u8],
    exit: &[u8],
) -> Vec<(String, String)> {
    let mut values = Vec::with_capacity(args.len());
    let mut out = String::new();
    let mut name_of = String::new();
    let mut started = false;
    for_each_arg(entry, None, args, enter, exit, &mut out, |out, _, name| {
        if started {
            values.push((std::mem::take(&mut name_of), std::mem::take(out)));
        }
        started = true;
        name.clone_into(&mut name_of);
    });
    if started {
        values.push((name_of, out));
    }
    values
}

/// Renders each argument's value into `out`, calling `before(out, index,
/// name)` first (the name is empty for arguments the table does not
/// describe); shown as `plan` (made from `entry`) says, if given.
fn for_each_arg(
    entry: Option<&SyscallEntry>,
    plan: Option<&CallPlan>,
    args: &[u64],
    enter: &[u8],
    exit: &[u8],
    out: &mut String,
    mut before: impl FnMut(&mut String, usize, &str),
) {
    // Most calls capture nothing: skip splitting the data by argument.
    let data = if enter.is_empty() && exit.is_empty() {
        Default::default()
    } else {
        captured::by_arg(enter, exit)
    };
    let others = |n: &str| {
        let e = entry?;
        let i = e.args.iter().position(|a| a.name == n)?;
        args.get(i).copied()
    };
    // open and openat read their mode only with O_CREAT or O_TMPFILE:
    // otherwise it is whatever was in the register, and strace leaves it out.
    // Asked of `mode` arguments only (a plan knows them by their shape).
    const O_CREAT: u64 = 0o100;
    const O_TMPFILE: u64 = 0o20000000;
    let unread_mode = |i: usize, e: &SyscallEntry, a: &weft_format::SyscallArg| {
        let mode = match plan.and_then(|p| p.args.get(i)) {
            Some((_, shape)) => matches!(shape, Shape::Mode),
            None => a.name == "mode",
        };
        mode && (e.name == "openat" || e.name == "open")
            && others("flags").is_some_and(|f| f & (O_CREAT | O_TMPFILE) == 0)
    };
    for (i, &v) in args.iter().enumerate() {
        match entry.and_then(|e| Some((e, e.args.get(i)?))) {
            Some((e, a)) if unread_mode(i, e, a) => {}
            Some((e, a)) => {
                before(out, i, &a.name);
                let shown = data
                    .get(i)
                    .and_then(Option::as_ref)
                    .and_then(|d| captured::render(&e.name, &a.name, &a.ctype, v, d));
                match (shown, plan.and_then(|p| p.args.get(i))) {
                    (Some(s), _) => out.push_str(&s),
                    (None, Some((_, shape))) => shape.write(out, v, &others),
                    (None, None) => arg(out, &e.name, &a.name, &a.ctype, v, &others),
                }
            }
            None => {
                before(out, i, "");
                push_hex(out, v);
            }
        }
    }
}

/// `{:#x}` of `v`, without the formatting machinery (a dump writes
/// millions).
pub(crate) fn push_hex(out: &mut String, v: u64) {
    let mut buf = [0u8; 18];
    let mut i = buf.len();
    let mut x = v;
    loop {
        i -= 1;
        buf[i] = b"0123456789abcdef"[(x & 0xf) as usize];
        x >>= 4;
        if x == 0 {
            break;
        }
    }
    i -= 2;
    buf[i..i + 2].copy_from_slice(b"0x");
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or_default());
}

/// Syscalls whose return value is an address.
fn returns_address(name: &str) -> bool {
    matches!(name, "mmap" | "mremap" | "brk" | "shmat")
}

/// `= 0x7f...`, `= 3`, or `= -1 ENOENT (No such file or directory)`.
pub fn format_return(name: &str, ret: i64) -> String {
    let mut out = String::new();
    write_return(&mut out, name, ret);
    out
}

/// As `format_return`, appending to `out`.
pub fn write_return(out: &mut String, name: &str, ret: i64) {
    if (-4095..0).contains(&ret) {
        let _ = write!(out, "-1 {} ({})", errno_name(-ret), errno_desc(-ret));
    } else if returns_address(name) {
        push_hex(out, ret as u64);
    } else {
        out.push_str(itoa::Buffer::new().format(ret));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, args: &[(&str, &str)]) -> SyscallEntry {
        SyscallEntry::new(0, name, args)
    }

    #[test]
    fn hex_is_written_as_fmt_writes_it() {
        for v in [0, 1, 9, 10, 15, 16, 0xdead_beef, u64::MAX, 1 << 63, 0x7f18_4817_b00c] {
            let mut out = String::new();
            push_hex(&mut out, v);
            assert_eq!(out, format!("{v:#x}"));
        }
    }

    #[test]
    fn mmap_is_symbolic() {
        let e = entry(
            "mmap",
            &[
                ("unsigned long", "addr"),
                ("unsigned long", "len"),
                ("unsigned long", "prot"),
                ("unsigned long", "flags"),
                ("unsigned long", "fd"),
                ("unsigned long", "off"),
            ],
        );
        assert_eq!(
            format_args(Some(&e), &[0, 12288, 3, 0x22, u64::MAX, 0]),
            "addr=NULL, len=12288, prot=PROT_READ|PROT_WRITE, flags=MAP_PRIVATE|MAP_ANONYMOUS, fd=-1, off=0"
        );
        assert_eq!(format_return("mmap", 0x7f00_0000_0000), "0x7f0000000000");
        assert_eq!(format_return("munmap", -22), "-1 EINVAL (Invalid argument)");
    }

    #[test]
    fn open_and_prctl() {
        let e = entry(
            "openat",
            &[
                ("int", "dfd"),
                ("const char *", "filename"),
                ("int", "flags"),
                ("umode_t", "mode"),
            ],
        );
        assert_eq!(
            format_args(Some(&e), &[(-100i64) as u64, 0x1234, 0o2000101, 0o644]),
            "dfd=AT_FDCWD, filename=0x1234, flags=O_WRONLY|O_CREAT|O_CLOEXEC, mode=0o644"
        );
        // Without O_CREAT (or O_TMPFILE) the mode is not read: not shown.
        assert_eq!(
            format_args(Some(&e), &[(-100i64) as u64, 0x1234, 0o2000000, 0]),
            "dfd=AT_FDCWD, filename=0x1234, flags=O_RDONLY|O_CLOEXEC"
        );
        let plan = CallPlan::of(&e);
        let mut planned = String::new();
        write_planned_call_args(
            &mut planned,
            &e,
            &plan,
            &[(-100i64) as u64, 0x1234, 0o2000000, 0],
            &[],
            &[],
        );
        assert_eq!(planned, "dfd=AT_FDCWD, filename=0x1234, flags=O_RDONLY|O_CLOEXEC");
        let p = entry("prctl", &[("int", "option"), ("unsigned long", "arg2")]);
        assert_eq!(format_args(Some(&p), &[15, 0]), "option=PR_SET_NAME, arg2=0");
        assert_eq!(format_args(None, &[1, 2]), "0x1, 0x2");
    }
}
