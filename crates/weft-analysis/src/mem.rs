//! Address history: every memory-map change of a process that covered one
//! address (mmap, mremap, munmap, mprotect, madvise, brk, and execve, which
//! starts over), in order, with what looks wrong flagged; and the memory
//! map of a process at a given time, rebuilt from the recorded calls and
//! the maps read when recording began. One pass over the records.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::rc::Rc;

use weft_format::{std_schemas as s, Trace};

use crate::args::format_call_args;
use crate::kinds::{fault_addr, Kind, Kinds};
use crate::names::{si_code_name, signal_name};

const PAGE: u64 = 4096;

fn page_up(v: u64) -> u64 {
    v.saturating_add(PAGE - 1) & !(PAGE - 1)
}

/// What a call did to the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Map,
    Unmap,
    Protect,
    Advise,
    /// The program break moved over it (grown or shrunk).
    Brk,
    /// execve: the process got a new address space.
    Exec,
}

/// One change that covered the address.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its number among all the changes of the address, from 1.
    pub n: usize,
    pub ts: u64,
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    pub change: Change,
    /// The syscall's name (`munmap`).
    pub syscall: String,
    /// `munmap(addr=0x..., len=...) = 0`, as `weft dump` prints it.
    pub call: String,
    /// The range the call affected.
    pub start: u64,
    pub end: u64,
    /// The closest weft-probe marker before it on the same thread (time,
    /// text), and the closest after.
    pub marker_before: Option<(u64, String)>,
    pub marker_after: Option<(u64, String)>,
    /// What looks wrong about it.
    pub flags: Vec<String>,
}

/// The history of one address.
#[derive(Debug, Default)]
pub struct History {
    pub addr: u64,
    /// The last changes (all of them unless the query kept fewer).
    pub entries: Vec<Entry>,
    /// Changes before those, counted but not kept.
    pub earlier: usize,
    /// Memory faults (SIGSEGV, SIGBUS): those whose recorded fault address
    /// is on the address's page, and, where the fault address was not
    /// recorded (traces before format 1.4, recordings without eBPF), those
    /// delivered while the address was unmapped by a recorded call. The
    /// last ones, as many as changes are kept.
    pub faults: Vec<Fault>,
    /// Faults before those, counted but not kept.
    pub earlier_faults: usize,
}

/// A memory fault of the process, with what the history says of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub ts: u64,
    pub tid: u32,
    /// `SIGSEGV`.
    pub signal: String,
    /// `SEGV_MAPERR`.
    pub code: String,
    /// The fault address, when recorded.
    pub addr: Option<u64>,
    /// The change (its number and thread) that last unmapped the address,
    /// when that was the last change before the fault.
    pub unmapped_by: Option<(usize, u32)>,
}

/// A change the state of the address refers to.
#[derive(Clone, PartialEq, Eq)]
struct Ref {
    n: usize,
    ts: u64,
    tid: u32,
    comm: Rc<str>,
}

impl Ref {
    fn describe(&self, base: u64) -> String {
        format!(
            "#{} at {} by thread {} ({})",
            self.n,
            crate::secs(self.ts.saturating_sub(base)),
            self.tid,
            self.comm
        )
    }
}

/// The syscall of a thread awaiting its return.
struct Pending {
    ts: u64,
    nr: u32,
    name: &'static str,
    args: Vec<u64>,
    /// Captured arguments, kept to show the call if it covers the address.
    data: Vec<u8>,
}

/// The calls that change an address space, under their canonical names.
const MEMORY_CALLS: [&str; 8] = [
    "mmap", "munmap", "mremap", "mprotect", "madvise", "brk", "execve", "execveat",
];

/// Where the address stands, by the recorded calls.
#[derive(Clone, PartialEq, Eq)]
enum State {
    Unknown,
    /// Mapped by that change.
    Mapped(Ref),
    /// Unmapped by that change.
    Unmapped(Ref),
}

/// What a kept change's strings are made from once the pass is over
/// (only the kept ones are made).
struct Call {
    nr: u32,
    name: &'static str,
    args: Vec<u64>,
    data: Vec<u8>,
    ret: i64,
    comm: Rc<str>,
}

/// Every change of `addr` in the processes of `pids` (all when empty).
/// Where the records of memory changes are, so that a later query reads
/// only the chunks it needs: every map, unmap, protect and advise call
/// (its range, and the times of its entry and return), and the times of
/// what every query reads (brk and exec calls, thread names, forks,
/// markers, memory faults). Built by a full pass (`history_indexed`).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct MemIndex {
    /// (start, end, entry time, return time)
    changes: Vec<[u64; 4]>,
    always: Vec<u64>,
}

const INDEX_MAGIC: &[u8; 8] = b"wftmemx1";

impl MemIndex {
    /// The times whose records a query of `addr` reads, sorted.
    fn times_for(&self, addr: u64) -> Vec<u64> {
        let mut t = self.always.clone();
        for c in self.changes.iter().filter(|c| (c[0]..c[1]).contains(&addr)) {
            t.extend([c[2], c[3]]);
        }
        t.sort_unstable();
        t.dedup();
        t
    }

    /// How many memory changes it holds.
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// `key` identifies the trace the index was built from (its length and
    /// last chunk), so a stale index is never used.
    pub fn encode(&self, key: u64) -> Vec<u8> {
        let mut b = Vec::with_capacity(32 + 32 * self.changes.len() + 8 * self.always.len());
        b.extend_from_slice(INDEX_MAGIC);
        for v in [key, self.changes.len() as u64, self.always.len() as u64] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for v in self.changes.iter().flatten().chain(&self.always) {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b
    }

    /// The index in `b` if it is one, whole, and of the trace `key` names.
    pub fn decode(b: &[u8], key: u64) -> Option<MemIndex> {
        let words = b.strip_prefix(INDEX_MAGIC)?;
        if words.len() % 8 != 0 {
            return None;
        }
        let mut it = words
            .chunks_exact(8)
            .map(|w| u64::from_le_bytes(w.try_into().unwrap_or_default()));
        let (k, nc, na) = (it.next()?, it.next()?, it.next()?);
        let want = nc.checked_mul(4)?.checked_add(na)?;
        if k != key || want != (words.len() / 8 - 3) as u64 {
            return None;
        }
        let mut changes = Vec::with_capacity(nc as usize);
        for _ in 0..nc {
            changes.push([it.next()?, it.next()?, it.next()?, it.next()?]);
        }
        Some(MemIndex {
            changes,
            always: it.collect(),
        })
    }

    /// Identifies a trace file's contents for `encode`/`decode`.
    pub fn key_of(trace: &Trace) -> u64 {
        let last = trace
            .chunks
            .last()
            .map_or(0, |c| (c.offset << 16) ^ u64::from(c.header.payload_crc));
        trace.len.rotate_left(32) ^ last
    }
}

/// The history of `addr` read through `index`: only the chunks holding a
/// record the query needs are read (their number is returned too).
pub fn history_from_index(trace: &Trace, addr: u64, pids: &[u32], index: &MemIndex, keep: usize) -> (History, usize) {
    let times = index.times_for(addr);
    let needed = |c: &weft_format::ChunkInfo| {
        let i = times.partition_point(|&t| t < c.header.min_ts);
        times.get(i).is_some_and(|&t| t <= c.header.max_ts)
    };
    let read = trace.event_chunks().filter(|c| needed(c)).count();
    let h = history_of(trace, trace.records_in(needed), addr, pids, None, Some(&times), keep);
    (h, read)
}

/// The history of `addr`, from a full pass that also builds the index
/// later queries use (`history_from_index`).
pub fn history_indexed(trace: &Trace, addr: u64, keep: usize) -> (History, MemIndex) {
    let mut index = MemIndex::default();
    let h = history_of(trace, trace.records(), addr, &[], Some(&mut index), None, keep);
    (h, index)
}

/// The history of `addr` in the processes of `pids` (all when empty),
/// keeping its last `keep` changes (all when 0): memory stays bounded
/// however often the address changed.
pub fn history(trace: &Trace, addr: u64, pids: &[u32], keep: usize) -> History {
    history_of(trace, trace.records(), addr, pids, None, None, keep)
}

fn history_of(
    trace: &Trace,
    records: weft_format::Records<'_>,
    addr: u64,
    pids: &[u32],
    mut index: Option<&mut MemIndex>,
    only: Option<&[u64]>,
    keep: usize,
) -> History {
    let kinds = Kinds::of(trace);
    let mut h = History {
        addr,
        ..Default::default()
    };
    // The kept changes, the last ones, with their calls to format.
    let mut kept: VecDeque<(Entry, Call)> = VecDeque::new();
    let mut faults: VecDeque<Fault> = VecDeque::new();
    let mut seen = 0usize;
    let mut pending: HashMap<u32, Pending> = HashMap::new();
    let mut comms: HashMap<u32, Rc<str>> = HashMap::new();
    let mut state: HashMap<u32, State> = HashMap::new();
    let mut brk: HashMap<u32, u64> = HashMap::new();
    let mut last_marker: HashMap<u32, (u64, String)> = HashMap::new();
    // Entries of a thread still waiting for the next marker on it.
    let mut want_after: HashMap<u32, Vec<usize>> = HashMap::new();
    // Entry number n is kept[n - first] while n >= first.
    let at = |kept: &VecDeque<(Entry, Call)>, n: usize| kept.front().and_then(|f| n.checked_sub(f.0.n));
    let marker = trace.schema_by_name(s::MARKER).map(|m| m.id);
    let mut base = trace
        .info(weft_format::info_keys::START_MONOTONIC_NS)
        .and_then(|v| v.parse::<u64>().ok());
    // Looked up once per number: most calls are not memory calls.
    let mut memory_call: HashMap<u32, Option<&'static str>> = HashMap::new();
    for r in records.flatten() {
        let base = *base.get_or_insert(r.ts);
        if !pids.is_empty() && !pids.contains(&r.pid) {
            continue;
        }
        match kinds.kind(&r) {
            Kind::Comm => {
                comms.insert(r.tid, Rc::from(r.str(s::comm::COMM)));
                if let Some(ix) = index.as_deref_mut() {
                    ix.always.push(r.ts);
                }
            }
            Kind::Fork => {
                if let Some(ix) = index.as_deref_mut() {
                    ix.always.push(r.ts);
                }
                crate::kinds::inherit_comm(&mut comms, r.u64(s::fork::PARENT_TID) as u32, r.tid);
            }
            // Read through an index, the chunks read hold other calls too,
            // whose entry or return may be in chunks not read: only the
            // calls the index named pair up.
            Kind::SyscallEnter | Kind::SyscallExit if only.is_some_and(|t| t.binary_search(&r.ts).is_err()) => {}
            Kind::SyscallEnter => {
                let nr = r.u64(s::syscall_enter::NR) as u32;
                let name = *memory_call.entry(nr).or_insert_with(|| {
                    let n = trace.syscalls.get(nr).map(|e| e.name.as_str())?;
                    MEMORY_CALLS.iter().copied().find(|&m| m == n)
                });
                let Some(name) = name else {
                    pending.remove(&r.tid);
                    continue;
                };
                pending.insert(
                    r.tid,
                    Pending {
                        ts: r.ts,
                        nr,
                        name,
                        args: r.u64s(s::syscall_enter::ARGS).to_vec(),
                        data: r.bytes(s::syscall_enter::DATA).to_vec(),
                    },
                );
            }
            Kind::SyscallExit => {
                let Some(mut p) = pending.remove(&r.tid) else { continue };
                let ret = r.i64(s::syscall_exit::RET);
                if (-4095..0).contains(&ret) {
                    continue;
                }
                let a = |i: usize| p.args.get(i).copied().unwrap_or(0);
                let mut ranges: Vec<(Change, u64, u64)> = Vec::new();
                match p.name {
                    "mmap" => ranges.push((Change::Map, ret as u64, (ret as u64).saturating_add(page_up(a(1))))),
                    "munmap" => ranges.push((Change::Unmap, a(0), a(0).saturating_add(page_up(a(1))))),
                    "mremap" => {
                        ranges.push((Change::Unmap, a(0), a(0).saturating_add(page_up(a(1)))));
                        ranges.push((Change::Map, ret as u64, (ret as u64).saturating_add(page_up(a(2)))));
                    }
                    "mprotect" => ranges.push((Change::Protect, a(0), a(0).saturating_add(page_up(a(1))))),
                    "madvise" => ranges.push((Change::Advise, a(0), a(0).saturating_add(page_up(a(1))))),
                    "brk" => {
                        let new = ret as u64;
                        if let Some(old) = brk.insert(r.pid, new) {
                            ranges.push((Change::Brk, old.min(new), old.max(new)));
                        }
                    }
                    _ => {
                        // execve: a new address space.
                        state.insert(r.pid, State::Unknown);
                        brk.remove(&r.pid);
                        ranges.push((Change::Exec, 0, u64::MAX));
                    }
                }
                if let Some(ix) = index.as_deref_mut() {
                    match p.name {
                        "brk" | "execve" | "execveat" => ix.always.extend([p.ts, r.ts]),
                        _ => ix.changes.extend(ranges.iter().map(|&(_, a, b)| [a, b, p.ts, r.ts])),
                    }
                }
                // The last range covering the address takes the call's
                // arguments; an earlier one (an mremap in place covers it
                // with both its ranges) copies them.
                let last = ranges.iter().rposition(|&(_, a, b)| (a..b).contains(&addr));
                for (k, (change, start, end)) in ranges.into_iter().enumerate() {
                    if !(start..end).contains(&addr) {
                        continue;
                    }
                    seen += 1;
                    let n = seen;
                    let comm = comms.get(&r.tid).cloned().unwrap_or_else(|| Rc::from(""));
                    let this = Ref {
                        n,
                        ts: p.ts,
                        tid: r.tid,
                        comm: comm.clone(),
                    };
                    let mut flags = Vec::new();
                    let st = state.get(&r.pid).unwrap_or(&State::Unknown);
                    match change {
                        Change::Unmap => {
                            match st {
                                State::Unmapped(j) => flags.push(format!(
                                    "double unmap: the address was already unmapped by {}",
                                    j.describe(base)
                                )),
                                State::Mapped(j) if j.tid != r.tid => {
                                    flags.push(format!("unmaps memory another thread mapped: {}", j.describe(base)))
                                }
                                _ => {}
                            }
                            state.insert(r.pid, State::Unmapped(this));
                        }
                        Change::Map => {
                            state.insert(r.pid, State::Mapped(this));
                        }
                        Change::Brk if ret as u64 > addr => {
                            state.insert(r.pid, State::Mapped(this));
                        }
                        Change::Brk => {
                            state.insert(r.pid, State::Unmapped(this));
                        }
                        Change::Protect | Change::Advise => {
                            if let State::Unmapped(j) = st {
                                flags.push(format!("on an address unmapped by {}", j.describe(base)));
                            }
                        }
                        Change::Exec => {}
                    }
                    let entry = Entry {
                        n,
                        ts: p.ts,
                        pid: r.pid,
                        tid: r.tid,
                        comm: String::new(),
                        change,
                        syscall: String::new(),
                        call: String::new(),
                        start,
                        end,
                        marker_before: last_marker.get(&r.tid).cloned(),
                        marker_after: None,
                        flags,
                    };
                    let (args, data) = if Some(k) == last {
                        (std::mem::take(&mut p.args), std::mem::take(&mut p.data))
                    } else {
                        (p.args.clone(), p.data.clone())
                    };
                    let call = Call {
                        nr: p.nr,
                        name: p.name,
                        args,
                        data,
                        ret,
                        comm,
                    };
                    if keep > 0 && kept.len() == keep {
                        kept.pop_front();
                        h.earlier += 1;
                    }
                    kept.push_back((entry, call));
                    let waiting = want_after.entry(r.tid).or_default();
                    // Numbers of changes no longer kept wait for nothing
                    // (dropped now and then: amortized, not per change).
                    if keep > 0 && waiting.len() >= 2 * keep {
                        let first = kept.front().map_or(0, |f| f.0.n);
                        waiting.retain(|&w| w >= first);
                    }
                    waiting.push(n);
                }
            }
            Kind::SignalDeliver => {
                let sig = r.i64(s::signal_deliver::SIG);
                // Memory faults only (SIGSEGV, SIGBUS).
                let fault = sig == libc::SIGSEGV as i64 || sig == libc::SIGBUS as i64;
                if let (true, Some(ix)) = (fault, index.as_deref_mut()) {
                    ix.always.push(r.ts);
                }
                let fault_at = fault_addr(&r);
                let here = match fault_at {
                    Some(a) => a & !(PAGE - 1) == addr & !(PAGE - 1),
                    None => matches!(state.get(&r.pid), Some(State::Unmapped(_))),
                };
                if fault && here {
                    let unmapped_by = match state.get(&r.pid) {
                        Some(State::Unmapped(j)) => Some((j.n, j.tid)),
                        _ => None,
                    };
                    if keep > 0 && faults.len() == keep {
                        faults.pop_front();
                        h.earlier_faults += 1;
                    }
                    faults.push_back(Fault {
                        ts: r.ts,
                        tid: r.tid,
                        signal: signal_name(sig),
                        code: si_code_name(sig, r.i64(s::signal_deliver::CODE)),
                        addr: fault_at,
                        unmapped_by,
                    });
                }
            }
            Kind::Other if Some(r.schema) == marker => {
                let text = format!("marker \"{}\" = {}", r.str(0), r.i64(1));
                if let Some(ix) = index.as_deref_mut() {
                    ix.always.push(r.ts);
                }
                for n in want_after.remove(&r.tid).unwrap_or_default() {
                    if let Some(e) = at(&kept, n).and_then(|i| kept.get_mut(i)) {
                        e.0.marker_after = Some((r.ts, text.clone()));
                    }
                }
                last_marker.insert(r.tid, (r.ts, text));
            }
            _ => {}
        }
    }
    h.faults = faults.into();
    h.entries = kept
        .into_iter()
        .map(|(mut e, c)| {
            e.comm = c.comm.to_string();
            e.syscall = c.name.to_owned();
            e.call = format!(
                "{}({}) = {}",
                c.name,
                format_call_args(trace.syscalls.get(c.nr), &c.args, &c.data, &[]),
                crate::format_return(c.name, c.ret)
            );
            e
        })
        .collect();
    h
}

/// One line of a rebuilt memory map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub end: u64,
    /// `rwxp` as /proc/PID/maps writes it.
    pub perms: String,
    pub offset: u64,
    pub path: String,
}

fn perms(prot: u64, flags: u64) -> String {
    let b = |bit: u64, c: char| if prot & bit != 0 { c } else { '-' };
    let mut s: String = [b(1, 'r'), b(2, 'w'), b(4, 'x')].iter().collect();
    s.push(if flags & 1 != 0 { 's' } else { 'p' });
    s
}

/// Non-overlapping regions by start address.
#[derive(Default)]
struct Space(BTreeMap<u64, Region>);

impl Space {
    /// Removes [start, end), splitting regions that straddle it.
    fn cut(&mut self, start: u64, end: u64) -> Vec<Region> {
        let mut removed = Vec::new();
        let keys: Vec<u64> = self
            .0
            .range((Bound::Unbounded, Bound::Excluded(end)))
            .filter(|(_, r)| r.end > start)
            .map(|(&k, _)| k)
            .collect();
        for k in keys {
            let Some(r) = self.0.remove(&k) else { continue };
            if r.start < start {
                self.0.insert(
                    r.start,
                    Region {
                        end: start,
                        ..r.clone()
                    },
                );
            }
            if r.end > end {
                let off = r.offset.saturating_add(end - r.start);
                self.0.insert(
                    end,
                    Region {
                        start: end,
                        offset: off,
                        ..r.clone()
                    },
                );
            }
            removed.push(Region {
                start: r.start.max(start),
                end: r.end.min(end),
                ..r
            });
        }
        removed
    }

    fn put(&mut self, r: Region) {
        self.cut(r.start, r.end);
        self.0.insert(r.start, r);
    }
}

/// The memory map of `pid` at `at` (ns since the recording began), as far
/// as the recording knows it: the maps read at the start (executable ones,
/// as the kernel reports them), then every recorded mmap, mremap, munmap,
/// mprotect and brk. Regions mapped before recording began that are not
/// executable are not known.
pub fn maps_at(trace: &Trace, pid: u32, at: u64) -> MapsAt {
    let mut out = MapsAt::default();
    let kinds = Kinds::of(trace);
    let base = trace
        .info(weft_format::info_keys::START_MONOTONIC_NS)
        .and_then(|v| v.parse::<u64>().ok());
    let mut first: Option<u64> = base;
    let mut space = Space::default();
    let mut pending: HashMap<u32, (String, Vec<u64>, Vec<u8>)> = HashMap::new();
    // What the process's descriptors are, to name what it maps from them.
    let mut fds = crate::fds::FdTables::default();
    let mut brk: Option<(u64, u64)> = None;
    // Mappings made since an execve began: the new program's, once it
    // succeeds (its failure leaves the old map).
    let mut exec: Option<Space> = None;
    let name_of = |nr: u32| trace.syscalls.get(nr).map_or_else(String::new, |e| e.name.clone());
    for r in trace.records().flatten() {
        let b = *first.get_or_insert(r.ts);
        if r.ts.saturating_sub(b) > at {
            break;
        }
        if r.pid != pid {
            continue;
        }
        out.seen = true;
        match kinds.kind(&r) {
            Kind::Mmap => {
                use s::mmap as m;
                let start = r.u64(m::ADDR);
                let region = Region {
                    start,
                    end: start.saturating_add(r.u64(m::LEN)),
                    perms: perms(r.u64(m::PROT), r.u64(m::FLAGS)),
                    offset: r.u64(m::PGOFF),
                    path: r.str(m::FILENAME).to_owned(),
                };
                // An exec maps the new program before it says it succeeded.
                if let Some(new) = exec.as_mut() {
                    new.put(region.clone());
                }
                space.put(region);
            }
            Kind::Exec => {
                space = exec.take().unwrap_or_default();
                brk = None;
            }
            Kind::Exit if matches!(r.fields.get(s::exit::GROUP_DEAD), Some(weft_format::Value::Bool(true))) => {
                out.exited = Some(r.ts)
            }
            Kind::SyscallEnter => {
                let nr = r.u64(s::syscall_enter::NR) as u32;
                let name = name_of(nr);
                if name == "execve" || name == "execveat" {
                    exec = Some(Space::default());
                }
                let args = r.u64s(s::syscall_enter::ARGS).to_vec();
                pending.insert(r.tid, (name, args, r.bytes(s::syscall_enter::DATA).to_vec()));
            }
            Kind::Fd => fds.at_start(r.pid, r.i64(s::fd::FD), r.str(s::fd::PATH).to_owned()),
            Kind::SyscallExit => {
                let Some((name, args, enter)) = pending.remove(&r.tid) else {
                    continue;
                };
                let ret = r.i64(s::syscall_exit::RET);
                let nr = r.u64(s::syscall_exit::NR) as u32;
                let call = crate::fds::Call {
                    entry: trace.syscalls.get(nr),
                    args: &args,
                    enter: &enter,
                    exit: r.bytes(s::syscall_exit::DATA),
                    ret,
                };
                fds.returned(r.pid, &name, &call);
                if (-4095..0).contains(&ret) {
                    if name == "execve" || name == "execveat" {
                        exec = None;
                    }
                    continue;
                }
                let a = |i: usize| args.get(i).copied().unwrap_or(0);
                match name.as_str() {
                    "mmap" => {
                        let start = ret as u64;
                        let end = start.saturating_add(page_up(a(1)));
                        // The kernel's record of an executable file mapping,
                        // made during the call, names the file.
                        let named = space
                            .0
                            .get(&start)
                            .filter(|r| r.end == end && !r.path.is_empty())
                            .map(|r| r.path.clone());
                        let fd = a(4) as u32 as i32 as i64;
                        let path = match named {
                            Some(p) => p,
                            None if fd >= 0 && a(3) & 0x20 == 0 => {
                                fds.name(r.pid, fd).map_or_else(|| format!("(fd {fd})"), str::to_owned)
                            }
                            None => String::new(),
                        };
                        space.put(Region {
                            start,
                            end,
                            perms: perms(a(2), a(3)),
                            offset: a(5),
                            path,
                        });
                    }
                    "munmap" => {
                        space.cut(a(0), a(0).saturating_add(page_up(a(1))));
                    }
                    "mremap" => {
                        let moved = space.cut(a(0), a(0).saturating_add(page_up(a(1))));
                        if let Some(first) = moved.into_iter().next() {
                            let start = ret as u64;
                            space.put(Region {
                                start,
                                end: start.saturating_add(page_up(a(2))),
                                ..first
                            });
                        }
                    }
                    "mprotect" => {
                        let (start, end) = (a(0), a(0).saturating_add(page_up(a(1))));
                        for r in space.cut(start, end) {
                            let flags = if r.perms.ends_with('s') { 1 } else { 0 };
                            space.put(Region {
                                perms: perms(a(2), flags),
                                ..r
                            });
                        }
                    }
                    "brk" => {
                        let new = ret as u64;
                        // The first brk (brk(0)) tells where the heap starts.
                        let (start, old_end) = brk.unwrap_or((new, new));
                        brk = Some((start, new));
                        space.cut(start, old_end.max(new));
                        if new > start {
                            space.put(Region {
                                start,
                                end: new,
                                perms: "rw-p".into(),
                                offset: 0,
                                path: "[heap]".into(),
                            });
                        }
                    }
                    // Without the exec tracepoint (unprivileged), its return.
                    "execve" | "execveat" => {
                        if let Some(new) = exec.take() {
                            space = new;
                            brk = None;
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    out.regions = space.0.into_values().collect();
    out
}

/// A memory map rebuilt at a time (`maps_at`).
#[derive(Debug, Default)]
pub struct MapsAt {
    pub regions: Vec<Region>,
    /// The trace holds records of the process up to that time.
    pub seen: bool,
    /// When it had exited, if it had.
    pub exited: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_reads_back_only_whole_and_for_its_trace() {
        let ix = MemIndex {
            changes: vec![[0x1000, 0x3000, 10, 11], [0x8000, 0x9000, 20, 21]],
            always: vec![5, 30],
        };
        let b = ix.encode(42);
        assert_eq!(MemIndex::decode(&b, 42), Some(ix.clone()));
        assert_eq!(MemIndex::decode(&b, 43), None, "another trace's index");
        for n in 0..b.len() {
            assert_eq!(MemIndex::decode(&b[..n], 42), None, "cut at {n}");
        }
        assert_eq!(ix.times_for(0x2000), vec![5, 10, 11, 30]);
        assert_eq!(ix.times_for(0x5000), vec![5, 30]);
    }
}
