//! Kernel events as the collector hands them out, decoded from perf records
//! using the tracepoint layouts read from tracefs.

use std::collections::HashMap;

use perf_event_open_sys::bindings as b;

use crate::error::Result;
use crate::perf::SAMPLE_ID_LEN;
use crate::tracefs::{EventFormat, FormatField, Tracefs};

/// One event of a traced task. `pid` is the process (tgid), `tid` the thread;
/// `cpu` is `u32::MAX` for events read from /proc rather than seen on a CPU.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelEvent {
    pub ts: u64,
    pub cpu: u32,
    pub pid: u32,
    pub tid: u32,
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// `data`: what the pointer arguments pointed to, as items
    /// (`weft_format::captured`); empty without capture.
    SyscallEnter {
        nr: u32,
        args: [u64; 6],
        data: Vec<u8>,
    },
    /// `data`: what the call wrote through its pointer arguments.
    SyscallExit {
        nr: u32,
        ret: i64,
        data: Vec<u8>,
    },
    /// Captured arguments of the thread's next syscall enter (`exit`
    /// false) or exit record; the tracer joins them and never hands these out.
    Captured {
        exit: bool,
        nr: u32,
        data: Vec<u8>,
    },
    SignalGenerate {
        sig: i32,
        code: i32,
        errno: i32,
        target_pid: i32,
        target_comm: String,
        group: bool,
        result: i32,
    },
    /// `addr`: the siginfo's address (`si_addr`) when the signal is a
    /// fault the kernel reported one for (see `carries_addr`) and the
    /// capture program saw it.
    SignalDeliver {
        sig: i32,
        code: i32,
        errno: i32,
        handler: u64,
        flags: u64,
        addr: Option<u64>,
    },
    /// The siginfo of the thread's signal delivery, written by the capture
    /// program beside the tracepoint's record; the tracer joins it to that
    /// record and never hands these out.
    SignalInfo {
        sig: i32,
        code: i32,
        addr: u64,
    },
    Exec {
        filename: String,
        old_tid: u32,
    },
    Exit {
        group_dead: bool,
    },
    Fork {
        parent_pid: u32,
        parent_tid: u32,
    },
    Comm {
        comm: String,
        exec: bool,
    },
    Mmap {
        addr: u64,
        len: u64,
        pgoff: u64,
        prot: u32,
        flags: u32,
        filename: String,
        build_id: Vec<u8>,
        inode: u64,
    },
    /// The thread left its CPU (`out`; `preempt`: still runnable) or came back.
    Switch {
        out: bool,
        preempt: bool,
    },
    /// A descriptor the process had when the recording began, and what
    /// it is (`/proc/PID/fd/N`'s link: a path, `socket:[INODE]`, ...).
    FdAtStart {
        fd: i32,
        path: String,
    },
    /// Records the kernel dropped because the ring was full.
    Lost {
        count: u64,
    },
    /// A stack: CPU sampling (`trigger` "cpu-clock") or taken with a traced
    /// event (`trigger` = its name). `regs` are the user ip, sp, bp.
    Sample {
        trigger: String,
        kernel: Vec<u64>,
        user: Vec<u64>,
        regs: [u64; 3],
        stack: Vec<u8>,
    },
}

/// Whether a signal's siginfo holds an address the kernel filled in: the
/// fault signals, raised by a fault (a positive si_code; SI_USER, SI_QUEUE
/// and SI_TKILL are zero or negative, and their union holds a pid).
/// SI_KERNEL (0x80: a general protection fault, a signal frame the kernel
/// could not write) comes with a zeroed siginfo: no address.
pub fn carries_addr(sig: i32, code: i32) -> bool {
    const SI_KERNEL: i32 = 0x80;
    code > 0
        && code != SI_KERNEL
        && [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE, libc::SIGTRAP].contains(&sig)
}

/// The calls that start a vfork: the calling thread stays suspended until
/// the child execs or exits, while the child runs in its memory on its
/// thread storage (`vfork`, or `clone`/`clone3` with CLONE_VFORK).
#[derive(Debug, Clone, Copy)]
pub struct VforkCalls {
    vfork: Option<u32>,
    clone: Option<u32>,
    clone3: Option<u32>,
}

impl Default for VforkCalls {
    fn default() -> Self {
        let nr = |name: &str| name.parse::<syscalls::Sysno>().ok().map(|s| s.id() as u32);
        VforkCalls {
            vfork: nr("vfork"),
            clone: nr("clone"),
            clone3: nr("clone3"),
        }
    }
}

impl VforkCalls {
    /// Whether this syscall entry starts a vfork (clone3's flags are the
    /// first word of its `clone_args`, captured as argument 0).
    pub fn starts(&self, nr: u32, args: &[u64; 6], data: &[u8]) -> bool {
        const CLONE_VFORK: u64 = libc::CLONE_VFORK as u64;
        let nr = Some(nr);
        if nr == self.vfork {
            true
        } else if nr == self.clone {
            args[0] & CLONE_VFORK != 0
        } else if nr == self.clone3 {
            weft_format::captured::items(data)
                .find(|i| i.arg == 0)
                .and_then(|i| <[u8; 8]>::try_from(i.bytes.get(..8)?).ok())
                .is_some_and(|b| u64::from_le_bytes(b) & CLONE_VFORK != 0)
        } else {
            false
        }
    }
}

/// The capture program's record: magic, phase, a reserved byte, the
/// syscall number, then the items (capture.bpf.c, `struct header`); or,
/// phase 2, the signal number and the siginfo's signo, code and address
/// (`struct signal_rec`).
fn decode_captured(raw: &[u8]) -> Option<EventKind> {
    const MAGIC: u16 = 0x5746;
    let h = raw.get(..8)?;
    if u16::from_le_bytes([h[0], h[1]]) != MAGIC || h[2] > 2 {
        return None;
    }
    let word = |at: usize| -> Option<[u8; 4]> { raw.get(at..at + 4)?.try_into().ok() };
    if h[2] == 2 {
        let addr: [u8; 8] = raw.get(16..24)?.try_into().ok()?;
        return Some(EventKind::SignalInfo {
            sig: i32::from_le_bytes(word(4)?),
            code: i32::from_le_bytes(word(12)?),
            addr: u64::from_le_bytes(addr),
        });
    }
    let items = &raw[8..];
    // The kernel pads raw data to 8 bytes; keep only whole items.
    let len: usize = weft_format::captured::items(items)
        .map(|i| weft_format::captured::ITEM_HEADER_LEN + i.bytes.len().div_ceil(8) * 8)
        .sum();
    Some(EventKind::Captured {
        exit: h[2] == 1,
        nr: u32::from_le_bytes([h[4], h[5], h[6], h[7]]),
        data: items[..len.min(items.len())].to_vec(),
    })
}

/// How the records of one event id are laid out and what they mean.
#[derive(Debug, Clone)]
pub(crate) enum Decoding {
    Tp(Tp),
    /// A tracepoint opened only to take stacks.
    Stack {
        trigger: String,
    },
    CpuClock,
    /// The capture program's output (`capture`).
    Capture,
}

/// The tracepoints weft opens, in a fixed order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Tp {
    SysEnter,
    SysExit,
    SignalGenerate,
    SignalDeliver,
    Exec,
    Exit,
}

impl Tp {
    pub const ALL: [Tp; 6] = [
        Tp::SysEnter,
        Tp::SysExit,
        Tp::SignalGenerate,
        Tp::SignalDeliver,
        Tp::Exec,
        Tp::Exit,
    ];

    pub fn path(self) -> (&'static str, &'static str) {
        match self {
            Tp::SysEnter => ("raw_syscalls", "sys_enter"),
            Tp::SysExit => ("raw_syscalls", "sys_exit"),
            Tp::SignalGenerate => ("signal", "signal_generate"),
            Tp::SignalDeliver => ("signal", "signal_deliver"),
            Tp::Exec => ("sched", "sched_process_exec"),
            Tp::Exit => ("sched", "sched_process_exit"),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct F {
    offset: usize,
    size: usize,
    signed: bool,
    data_loc: bool,
}

impl From<&FormatField> for F {
    fn from(f: &FormatField) -> Self {
        F {
            offset: f.offset,
            size: f.size,
            signed: f.signed,
            data_loc: f.data_loc,
        }
    }
}

impl F {
    fn int(&self, raw: &[u8]) -> i64 {
        let Some(b) = raw.get(self.offset..self.offset + self.size.min(8)) else {
            return 0;
        };
        let mut a = [0u8; 8];
        a[..b.len()].copy_from_slice(b);
        let v = u64::from_le_bytes(a);
        let bits = b.len() * 8;
        if self.signed && bits > 0 && bits < 64 {
            ((v << (64 - bits)) as i64) >> (64 - bits)
        } else {
            v as i64
        }
    }

    fn u64_at(&self, raw: &[u8], i: usize) -> u64 {
        let o = self.offset + 8 * i;
        raw.get(o..o + 8)
            .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    }

    fn string(&self, raw: &[u8]) -> String {
        let bytes = if self.data_loc {
            let loc = self.int(raw) as u32;
            let (off, len) = ((loc & 0xffff) as usize, (loc >> 16) as usize);
            raw.get(off..off + len).unwrap_or(&[])
        } else {
            raw.get(self.offset..self.offset + self.size).unwrap_or(&[])
        };
        cstr(bytes)
    }
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Field layouts of the opened tracepoints, looked up by name in tracefs.
#[derive(Debug, Default)]
pub(crate) struct Layouts {
    pub ids: HashMap<Tp, u64>,
    sys_id: F,
    sys_args: F,
    exit_id: F,
    exit_ret: F,
    gen: [F; 7],
    del: [F; 5],
    exec_filename: F,
    exec_old_pid: F,
    exit_group_dead: Option<F>,
}

impl Layouts {
    pub fn load(tfs: &Tracefs) -> Result<Layouts> {
        Layouts::from_formats(|tp: Tp| -> Result<EventFormat> {
            let (s, n) = tp.path();
            tfs.event_format(s, n)
        })
    }

    /// From each tracepoint's format, however it was read.
    pub fn from_formats(fmt: impl Fn(Tp) -> Result<EventFormat>) -> Result<Layouts> {
        let mut l = Layouts::default();
        let enter = fmt(Tp::SysEnter)?;
        l.sys_id = enter.field("id")?.into();
        l.sys_args = enter.field("args")?.into();
        let exit = fmt(Tp::SysExit)?;
        l.exit_id = exit.field("id")?.into();
        l.exit_ret = exit.field("ret")?.into();
        let g = fmt(Tp::SignalGenerate)?;
        for (i, n) in ["sig", "code", "errno", "pid", "comm", "group", "result"]
            .iter()
            .enumerate()
        {
            l.gen[i] = g.field(n)?.into();
        }
        let d = fmt(Tp::SignalDeliver)?;
        for (i, n) in ["sig", "code", "errno", "sa_handler", "sa_flags"].iter().enumerate() {
            l.del[i] = d.field(n)?.into();
        }
        let ex = fmt(Tp::Exec)?;
        l.exec_filename = ex.field("filename")?.into();
        l.exec_old_pid = ex.field("old_pid")?.into();
        let pe = fmt(Tp::Exit)?;
        l.exit_group_dead = pe.field("group_dead").ok().map(F::from);
        for (tp, f) in [
            (Tp::SysEnter, &enter),
            (Tp::SysExit, &exit),
            (Tp::SignalGenerate, &g),
            (Tp::SignalDeliver, &d),
            (Tp::Exec, &ex),
            (Tp::Exit, &pe),
        ] {
            l.ids.insert(tp, f.id);
        }
        Ok(l)
    }

    fn decode_raw(&self, tp: Tp, raw: &[u8]) -> EventKind {
        match tp {
            Tp::SysEnter => {
                let mut args = [0u64; 6];
                for (i, a) in args.iter_mut().enumerate() {
                    *a = self.sys_args.u64_at(raw, i);
                }
                EventKind::SyscallEnter {
                    nr: self.sys_id.int(raw) as u32,
                    args,
                    data: Vec::new(),
                }
            }
            Tp::SysExit => EventKind::SyscallExit {
                nr: self.exit_id.int(raw) as u32,
                ret: self.exit_ret.int(raw),
                data: Vec::new(),
            },
            Tp::SignalGenerate => {
                let g = &self.gen;
                EventKind::SignalGenerate {
                    sig: g[0].int(raw) as i32,
                    code: g[1].int(raw) as i32,
                    errno: g[2].int(raw) as i32,
                    target_pid: g[3].int(raw) as i32,
                    target_comm: g[4].string(raw),
                    group: g[5].int(raw) != 0,
                    result: g[6].int(raw) as i32,
                }
            }
            Tp::SignalDeliver => {
                let d = &self.del;
                EventKind::SignalDeliver {
                    sig: d[0].int(raw) as i32,
                    code: d[1].int(raw) as i32,
                    errno: d[2].int(raw) as i32,
                    handler: d[3].int(raw) as u64,
                    flags: d[4].int(raw) as u64,
                    addr: None,
                }
            }
            Tp::Exec => EventKind::Exec {
                filename: self.exec_filename.string(raw),
                old_tid: self.exec_old_pid.int(raw) as u32,
            },
            Tp::Exit => EventKind::Exit {
                group_dead: self.exit_group_dead.is_some_and(|f| f.int(raw) != 0),
            },
        }
    }
}

/// Decodes perf records of one ring.
pub(crate) struct Decoder {
    pub layouts: Layouts,
    /// Event id (from PERF_EVENT_IOC_ID) to tracepoint.
    pub by_id: HashMap<u64, Decoding>,
    /// Records that could not be decoded (short or unknown id).
    pub malformed: u64,
    /// No tracepoints (an unprivileged recording): process exits come from
    /// the side-band exit records instead.
    pub sideband_lifecycle: bool,
}

const PERF_CONTEXT_MAX: u64 = -4095i64 as u64;
const PERF_CONTEXT_USER: u64 = -512i64 as u64;

/// The user registers and stack copy that follow a sample's callchain/raw part.
fn decode_stack(body: &[u8], mut p: usize, trigger: String, kernel: Vec<u64>, user: Vec<u64>) -> EventKind {
    let mut regs = [0u64; 3];
    let abi = u64_at(body, p);
    p += 8;
    if abi != 0 {
        // perf_regs order for the mask BP, SP, IP; kept as ip, sp, bp.
        let (bp, sp, ip) = (u64_at(body, p), u64_at(body, p + 8), u64_at(body, p + 16));
        regs = [ip, sp, bp];
        p += 24;
    }
    let size = u64_at(body, p) as usize;
    p += 8;
    let mut stack = Vec::new();
    if size > 0 {
        if let Some(data) = body.get(p..p.saturating_add(size)) {
            let dyn_size = u64_at(body, p + size) as usize;
            stack = data[..dyn_size.min(size)].to_vec();
        }
    }
    EventKind::Sample {
        trigger,
        kernel,
        user,
        regs,
        stack,
    }
}

fn u32_at(r: &[u8], o: usize) -> u32 {
    r.get(o..o + 4)
        .map_or(0, |b| u32::from_le_bytes(b.try_into().unwrap_or([0; 4])))
}

fn u64_at(r: &[u8], o: usize) -> u64 {
    r.get(o..o + 8)
        .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
}

impl Decoder {
    /// Decodes one record (header included). Returns None for record types
    /// weft does not keep.
    pub fn decode(&mut self, rec: &[u8], cpu: u32) -> Option<KernelEvent> {
        let mut ev = self.decode_as_written(rec, cpu)?;
        // The kernel names no thread (-1) for a task in its last moments
        // (the SIGCHLD the last thread of a process sends as it goes): the
        // process's first thread stands in, rather than a thread 4294967295.
        if ev.tid == u32::MAX && ev.pid != u32::MAX {
            ev.tid = ev.pid;
        }
        Some(ev)
    }

    fn decode_as_written(&mut self, rec: &[u8], cpu: u32) -> Option<KernelEvent> {
        if rec.len() < 8 {
            self.malformed += 1;
            return None;
        }
        let ty = u32_at(rec, 0);
        let misc = u16::from_le_bytes([rec[4], rec[5]]) as u32;
        let body = &rec[8..];
        // Non-sample records end with the sample_id trailer: pid, tid, time, id.
        let trailer = |ev: &mut KernelEvent| {
            if body.len() >= SAMPLE_ID_LEN {
                let t = body.len() - SAMPLE_ID_LEN;
                ev.pid = u32_at(body, t);
                ev.tid = u32_at(body, t + 4);
                ev.ts = u64_at(body, t + 8);
            }
        };
        let mut ev = KernelEvent {
            ts: 0,
            cpu,
            pid: 0,
            tid: 0,
            kind: EventKind::Lost { count: 0 },
        };
        match ty {
            b::PERF_RECORD_SAMPLE => {
                // id, pid, tid, time, then per the event: callchain, raw, regs, stack.
                if body.len() < 24 {
                    self.malformed += 1;
                    return None;
                }
                let id = u64_at(body, 0);
                ev.pid = u32_at(body, 8);
                ev.tid = u32_at(body, 12);
                ev.ts = u64_at(body, 16);
                let Some(dec) = self.by_id.get(&id).cloned() else {
                    self.malformed += 1;
                    return None;
                };
                let mut p = 24usize;
                let stacked = !matches!(dec, Decoding::Tp(_) | Decoding::Capture);
                let (mut kernel, mut user) = (Vec::new(), Vec::new());
                if stacked {
                    let nr = u64_at(body, p) as usize;
                    p += 8;
                    if nr > (body.len().saturating_sub(p)) / 8 {
                        self.malformed += 1;
                        return None;
                    }
                    let mut in_user = false;
                    for i in 0..nr {
                        let ip = u64_at(body, p + 8 * i);
                        if ip >= PERF_CONTEXT_MAX {
                            in_user = ip == PERF_CONTEXT_USER;
                            continue;
                        }
                        if in_user {
                            user.push(ip)
                        } else {
                            kernel.push(ip)
                        }
                    }
                    p += 8 * nr;
                }
                let raw = if matches!(dec, Decoding::CpuClock) {
                    &[][..]
                } else {
                    let size = u32_at(body, p) as usize;
                    let Some(raw) = body.get(p + 4..p + 4 + size) else {
                        self.malformed += 1;
                        return None;
                    };
                    p += 4 + size;
                    raw
                };
                ev.kind = match dec {
                    Decoding::Tp(tp) => self.layouts.decode_raw(tp, raw),
                    Decoding::Stack { trigger } => decode_stack(body, p, trigger, kernel, user),
                    Decoding::CpuClock => decode_stack(body, p, "cpu-clock".into(), kernel, user),
                    Decoding::Capture => match decode_captured(raw) {
                        Some(k) => k,
                        None => {
                            self.malformed += 1;
                            return None;
                        }
                    },
                };
            }
            b::PERF_RECORD_COMM => {
                trailer(&mut ev);
                let end = body.len().saturating_sub(SAMPLE_ID_LEN);
                let comm = cstr(body.get(8..end).unwrap_or(&[]));
                ev.pid = u32_at(body, 0);
                ev.tid = u32_at(body, 4);
                ev.kind = EventKind::Comm {
                    comm,
                    exec: misc & b::PERF_RECORD_MISC_COMM_EXEC != 0,
                };
            }
            b::PERF_RECORD_FORK => {
                trailer(&mut ev);
                // pid, ppid, tid, ptid, time
                ev.pid = u32_at(body, 0);
                ev.tid = u32_at(body, 8);
                ev.ts = u64_at(body, 16);
                ev.kind = EventKind::Fork {
                    parent_pid: u32_at(body, 4),
                    parent_tid: u32_at(body, 12),
                };
            }
            b::PERF_RECORD_MMAP2 => {
                trailer(&mut ev);
                // pid, tid, addr, len, pgoff, {maj,min,ino,ino_gen | build id}, prot, flags, filename
                if body.len() < 72 {
                    self.malformed += 1;
                    return None;
                }
                ev.pid = u32_at(body, 0);
                ev.tid = u32_at(body, 4);
                let (build_id, inode) = if misc & b::PERF_RECORD_MISC_MMAP_BUILD_ID != 0 {
                    let n = (body[32] as usize).min(20);
                    (body[36..36 + n].to_vec(), 0)
                } else {
                    (Vec::new(), u64_at(body, 40))
                };
                let end = body.len().saturating_sub(SAMPLE_ID_LEN);
                ev.kind = EventKind::Mmap {
                    addr: u64_at(body, 8),
                    len: u64_at(body, 16),
                    pgoff: u64_at(body, 24),
                    prot: u32_at(body, 56),
                    flags: u32_at(body, 60),
                    filename: cstr(body.get(64..end).unwrap_or(&[])),
                    build_id,
                    inode,
                };
            }
            b::PERF_RECORD_EXIT if self.sideband_lifecycle => {
                trailer(&mut ev);
                // pid, ppid, tid, ptid, time. The leader's exit stands for
                // the process's (the record does not say whether others live on).
                ev.pid = u32_at(body, 0);
                ev.tid = u32_at(body, 8);
                ev.ts = u64_at(body, 16);
                ev.kind = EventKind::Exit {
                    group_dead: ev.pid == ev.tid,
                };
            }
            // CPU-wide events (a cgroup's) report the other task too; the
            // record is about the sample_id's task either way.
            b::PERF_RECORD_SWITCH | b::PERF_RECORD_SWITCH_CPU_WIDE => {
                trailer(&mut ev);
                ev.kind = EventKind::Switch {
                    out: misc & b::PERF_RECORD_MISC_SWITCH_OUT != 0,
                    preempt: misc & b::PERF_RECORD_MISC_SWITCH_OUT_PREEMPT != 0,
                };
            }
            b::PERF_RECORD_LOST => {
                trailer(&mut ev);
                ev.kind = EventKind::Lost { count: u64_at(body, 8) };
            }
            b::PERF_RECORD_LOST_SAMPLES => {
                trailer(&mut ev);
                ev.kind = EventKind::Lost { count: u64_at(body, 0) };
            }
            _ => return None,
        }
        Some(ev)
    }
}
