//! Stack profiles from `kernel:sample` records: unwind, symbolize, aggregate.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use weft_format::{std_schemas as s, FormatError, Trace, Value};
use weft_symbols::{
    Frame, JitMap, KernelSymbols, Locator, Mapping, Note, Prefetched, SearchOptions, SymCache, Symbolizer, Unwinders,
};

use crate::kinds::{Kind, Kinds};

/// Which samples to use.
#[derive(Debug, Clone, Default)]
pub struct ProfileOptions {
    pub pids: Vec<u32>,
    pub tids: Vec<u32>,
    /// Time window, in ns since the start of the recording.
    pub from_ns: Option<u64>,
    pub to_ns: Option<u64>,
    /// Sample trigger: "cpu-clock" (default) or an event with `--stack-on`.
    pub trigger: Option<String>,
    /// Leave kernel frames out.
    pub user_only: bool,
    /// Names kernel frames of files recorded before they carried a
    /// `kernel:symbols` record (from this machine's kallsyms, say). None:
    /// such frames stay unnamed. This crate never reads the live system
    /// itself: lookups that do (this, and the files `SearchOptions` names)
    /// come from the caller.
    pub kernel_fallback: Option<fn() -> KernelSymbols>,
    /// Also keep each sample's time and stack (`Profile::timeline`), for
    /// exports that put samples on a time axis.
    pub times: bool,
    /// Off-CPU time instead of samples: the stacks where threads blocked
    /// (trigger `sched_switch`, `record --off-cpu`), each weighted by the
    /// microseconds until the thread ran again; preemptions are left out.
    pub off_cpu: bool,
    /// Wall-clock time: CPU samples (weighted by the microseconds one stands
    /// for) and off-CPU time together, the blocked stacks ending in an
    /// `[off-CPU]` frame. Needs `record --sample --off-cpu`.
    pub wall: bool,
    /// Leave inlined calls out of the stacks: their samples count in the
    /// function they were inlined into, as `perf report --sort sym` counts.
    pub no_inline: bool,
}

/// One aggregated stack: frames root first.
#[derive(Debug, Clone)]
pub struct Stack {
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    pub frames: Vec<usize>,
    pub count: u64,
}

#[derive(Debug, Default)]
pub struct Profile {
    pub samples: u64,
    /// Interned frames; stacks refer to them by index.
    pub frames: Vec<Frame>,
    pub stacks: Vec<Stack>,
    pub notes: BTreeMap<String, Note>,
    pub problems: Vec<FormatError>,
    /// Time spent symbolizing, most of it on a second thread while the
    /// trace was read: it overlaps `unwind_secs`.
    pub symbolize_secs: f64,
    pub unwind_secs: f64,
    pub lookups: u64,
    pub cache_hits: u64,
    /// With `ProfileOptions::times`: each sample's time and its stack (an
    /// index into `stacks`), in the order of the file.
    pub timeline: Vec<(u64, usize)>,
    /// With `ProfileOptions::off_cpu`: counts (and `samples`) are
    /// microseconds off CPU, not samples.
    pub off_cpu: bool,
}

/// (pid, tid, frames root first)
type StackKey = (u32, u32, Vec<usize>);

struct Proc {
    maps: Arc<Vec<Mapping>>,
    version: u64,
}

/// One distinct raw stack of one thread, before symbolization. Samples are
/// grouped on this first, so each distinct stack is symbolized once.
#[derive(PartialEq, Eq, Hash)]
struct RawKey {
    pid: u32,
    tid: u32,
    comm: Arc<str>,
    /// Identity of the maps the stack was unwound against.
    maps_id: usize,
    kernel: Vec<u64>,
    user: Vec<weft_symbols::FrameAddr>,
    /// Where the thread blocked (wall-clock profiles mark it).
    off_cpu: bool,
    /// Switched out while runnable: waiting for a CPU, not blocked.
    preempted: bool,
}

/// Builds a profile; `cache` (when given) is read first and written back.
pub fn profile(trace: &Trace, opts: &ProfileOptions, search: SearchOptions, cache: Option<PathBuf>) -> Profile {
    let kinds = Kinds::of(trace);
    let start = trace
        .info(weft_format::info_keys::START_MONOTONIC_NS)
        .and_then(|v| v.parse::<u64>().ok());
    let off_cpu = opts.off_cpu || opts.wall;
    // What one CPU sample stands for in a wall-clock profile, in µs.
    let sample_us = trace
        .info(weft_format::info_keys::SAMPLE_HZ)
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&hz| hz > 0)
        .map_or(1001, |hz| 1_000_000 / hz);
    let trigger = match (&opts.trigger, opts.off_cpu) {
        (_, true) => "sched_switch".to_string(),
        (Some(t), false) => t.clone(),
        (None, false) => "cpu-clock".into(),
    };
    let switch_id = trace.schema_by_name(s::SWITCH).map(|sc| sc.id);
    // Off-CPU: per thread, the stack where it blocked, waiting for its
    // switch back in; and its last switch out (time, preempted).
    let mut blocked: HashMap<u32, (RawKey, Arc<Vec<Mapping>>, u64)> = HashMap::new();
    let mut last_out: HashMap<u32, (u64, bool)> = HashMap::new();
    let mut symcache = Some(cache.as_deref().map(SymCache::load).unwrap_or_default());
    let locator = Arc::new(Locator::new(search));
    let mut prefetched: Option<Prefetched> = None;
    let mut prefetch_secs = 0.0;
    let mut unwinders = Unwinders::default();
    let mut procs: HashMap<u32, Proc> = HashMap::new();
    let mut comms: HashMap<u32, Arc<str>> = HashMap::new();
    let mut jit: HashMap<u32, JitMap> = HashMap::new();
    // Distinct raw stacks: the maps they were unwound against, and counts.
    let mut raws: ahash::AHashMap<RawKey, (Arc<Vec<Mapping>>, u64, usize)> = ahash::AHashMap::new();
    // With `times`: (time, raw stack id) per sample.
    let mut raw_times: Vec<(u64, usize)> = Vec::new();
    let sample_id = trace.schema_by_name(s::SAMPLE).map(|sc| sc.id);
    let jit_id = trace.schema_by_name(s::JIT_MAP).map(|sc| sc.id);
    let mut out = Profile::default();
    let ksyms_id = trace.schema_by_name(s::KERNEL_SYMBOLS).map(|sc| sc.id);
    let mut recorded_ksyms: Option<KernelSymbols> = None;
    let mut next_version = 1u64;
    let t_unwind = Instant::now();
    let mut base: Option<u64> = start;
    std::thread::scope(|scope| {
        // Each new address is looked up on the second core while the trace is
        // still being read: inflating a distribution debug file's DWARF costs as
        // much as reading the whole trace.
        let (tx, rx) = std::sync::mpsc::channel::<(Mapping, u64)>();
        let (worker_locator, worker_cache) = (locator.clone(), &mut symcache);
        let worker = std::thread::Builder::new()
            .name("weft-symbolize".into())
            .spawn_scoped(scope, move || {
                let mut sym = Symbolizer::with_locator(worker_locator, worker_cache.take().unwrap_or_default());
                let mut busy = std::time::Duration::ZERO;
                for (m, addr) in rx {
                    let t = Instant::now();
                    sym.prefetch(&m, addr);
                    busy += t.elapsed();
                }
                (sym.into_prefetched(), busy)
            });
        let tx = worker.is_ok().then_some(tx);
        let mut sent: ahash::AHashSet<(usize, u64)> = ahash::AHashSet::new();
        let mut prefetch = move |raw: &RawKey, maps: &[Mapping]| {
            let Some(tx) = &tx else { return };
            for fa in &raw.user {
                let look = if fa.ret { fa.addr.wrapping_sub(1) } else { fa.addr };
                if !sent.insert((raw.maps_id, look)) {
                    continue;
                }
                if let Some(m) = maps.iter().find(|m| look >= m.start && look < m.end) {
                    if !m.path.starts_with('[') && !m.path.is_empty() {
                        let _ = tx.send((m.clone(), look));
                    }
                }
            }
        };
        // Counts a raw stack's weight (samples or µs) at time `ts`; a stack seen
        // for the first time has its addresses sent to the symbolizer.
        let mut add = |key: RawKey, maps: Arc<Vec<Mapping>>, weight: u64, ts: u64| {
            let next = raws.len();
            let e = match raws.entry(key) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(v) => {
                    prefetch(v.key(), &maps);
                    v.insert((maps, 0, next))
                }
            };
            e.1 += weight;
            if opts.times {
                raw_times.push((ts, e.2));
            }
        };
        for r in trace.records() {
            let mut r = match r {
                Ok(r) => r,
                Err(e) => {
                    out.problems.push(e);
                    continue;
                }
            };
            let b = *base.get_or_insert(r.ts);
            match kinds.kind(&r) {
                Kind::Comm => {
                    comms.insert(r.tid, Arc::from(r.str(s::comm::COMM)));
                    // The kernel reports the new name at the start of an exec,
                    // before it maps the new image: the old maps are gone.
                    if matches!(r.fields.get(s::comm::EXEC), Some(Value::Bool(true))) {
                        procs.remove(&r.pid);
                    }
                }
                Kind::Fork => {
                    let ppid = r.u64(s::fork::PARENT_PID) as u32;
                    if let Some(c) = comms.get(&(r.u64(s::fork::PARENT_TID) as u32)).cloned() {
                        comms.insert(r.tid, c);
                    }
                    if ppid != r.pid {
                        if let Some(maps) = procs.get(&ppid).map(|p| p.maps.clone()) {
                            procs.insert(
                                r.pid,
                                Proc {
                                    maps,
                                    version: next_version,
                                },
                            );
                            next_version += 1;
                        }
                    }
                }
                Kind::Mmap => {
                    use s::mmap as m;
                    if r.u64(m::PROT) & 4 == 0 {
                        continue;
                    }
                    let map = Mapping {
                        start: r.u64(m::ADDR),
                        end: r.u64(m::ADDR).wrapping_add(r.u64(m::LEN)),
                        pgoff: r.u64(m::PGOFF),
                        path: r.str(m::FILENAME).to_owned(),
                        build_id: match r.fields.get(m::BUILD_ID) {
                            Some(Value::Bytes(b)) => b.clone(),
                            _ => Vec::new(),
                        },
                    };
                    let p = procs.entry(r.pid).or_insert_with(|| Proc {
                        maps: Arc::new(Vec::new()),
                        version: 0,
                    });
                    let mut v: Vec<Mapping> = p
                        .maps
                        .iter()
                        .filter(|o| o.end <= map.start || o.start >= map.end)
                        .cloned()
                        .collect();
                    v.push(map);
                    v.sort_by_key(|m| m.start);
                    p.maps = Arc::new(v);
                    p.version = next_version;
                    next_version += 1;
                }
                Kind::Other if Some(r.schema) == ksyms_id && !opts.user_only => {
                    if let (Some(Value::U64s(a)), Some(Value::Bytes(n))) = (
                        r.fields.get(s::kernel_symbols::ADDRS),
                        r.fields.get(s::kernel_symbols::NAMES),
                    ) {
                        recorded_ksyms = Some(KernelSymbols::from_table(a, n));
                    }
                }
                Kind::Other if Some(r.schema) == jit_id => {
                    if let Some(Value::Bytes(t)) = r.fields.get(s::jit_map::TEXT) {
                        jit.insert(r.pid, JitMap::parse(&String::from_utf8_lossy(t)));
                    }
                }
                Kind::Other if Some(r.schema) == sample_id => {
                    use s::sample as f;
                    let this = r.str(f::TRIGGER);
                    let blocked_here = opts.wall && this == "sched_switch";
                    if this != trigger && !blocked_here {
                        continue;
                    }
                    let rel = r.ts.saturating_sub(b);
                    if (!opts.pids.is_empty() && !opts.pids.contains(&r.pid))
                        || (!opts.tids.is_empty() && !opts.tids.contains(&r.tid))
                        || opts.from_ns.is_some_and(|t| rel < t)
                        || opts.to_ns.is_some_and(|t| rel > t)
                    {
                        continue;
                    }
                    let arr = |i: usize| match r.fields.get(i) {
                        Some(Value::U64s(v)) => v.as_slice(),
                        _ => &[],
                    };
                    let regs = arr(f::USER_REGS);
                    let regs = [
                        regs.first().copied().unwrap_or(0),
                        regs.get(1).copied().unwrap_or(0),
                        regs.get(2).copied().unwrap_or(0),
                    ];
                    let stack: &[u8] = match r.fields.get(f::USER_STACK) {
                        Some(Value::Bytes(b)) => b,
                        _ => &[],
                    };
                    let (maps, version) = procs
                        .get(&r.pid)
                        .map_or_else(|| (Arc::new(Vec::new()), 0), |p| (p.maps.clone(), p.version));
                    let user = unwinders.unwind(&locator, r.pid, version, &maps, regs, stack, arr(f::USER));
                    // The record is ours: its kernel chain moves into the key.
                    let kernel = match r.fields.get_mut(f::KERNEL) {
                        Some(Value::U64s(v)) if !opts.user_only => std::mem::take(v),
                        _ => Vec::new(),
                    };
                    let key = RawKey {
                        pid: r.pid,
                        tid: r.tid,
                        comm: comms.get(&r.tid).cloned().unwrap_or_else(|| Arc::from("?")),
                        maps_id: Arc::as_ptr(&maps) as *const () as usize,
                        kernel,
                        user,
                        off_cpu: opts.off_cpu || blocked_here,
                        preempted: false,
                    };
                    if key.off_cpu {
                        blocked.insert(r.tid, (key, maps, r.ts));
                        continue;
                    }
                    add(key, maps, if opts.wall { sample_us } else { 1 }, r.ts);
                }
                Kind::Other if off_cpu && Some(r.schema) == switch_id => {
                    if matches!(r.fields.get(s::switch::OUT), Some(Value::Bool(true))) {
                        let preempt = matches!(r.fields.get(s::switch::PREEMPT), Some(Value::Bool(true)));
                        last_out.insert(r.tid, (r.ts, preempt));
                        continue;
                    }
                    let Some((mut key, maps, ts)) = blocked.remove(&r.tid) else {
                        continue;
                    };
                    // The switch out that goes with the stack (the two are
                    // taken together): a preempted thread did not block. Its
                    // wait for a CPU is still wall-clock time (without it a
                    // busy loop on a loaded machine looks short), so a
                    // wall-clock profile keeps it apart; off-CPU time, like
                    // perf's, is blocked time only.
                    if last_out
                        .get(&r.tid)
                        .is_some_and(|&(t, p)| p && t.abs_diff(ts) < 1_000_000)
                    {
                        if !opts.wall {
                            continue;
                        }
                        key.preempted = true;
                    }
                    let us = (r.ts.saturating_sub(ts) / 1000).max(1);
                    add(key, maps, us, ts);
                }
                _ => {}
            }
        }
        // Ends the symbolizer's list of addresses (it owns the sender).
        drop(prefetch);
        out.unwind_secs = t_unwind.elapsed().as_secs_f64();
        if let Ok(w) = worker {
            // A panic in a lookup is the symbolizer's bug: raise it here.
            match w.join() {
                Ok((p, busy)) => {
                    prefetched = Some(p);
                    prefetch_secs = busy.as_secs_f64();
                }
                Err(p) => std::panic::resume_unwind(p),
            }
        }
    });
    let mut sym = match prefetched {
        Some(p) => Symbolizer::resume(p),
        None => Symbolizer::with_locator(locator, symcache.take().unwrap_or_default()),
    };
    out.off_cpu = off_cpu;
    let t_sym = Instant::now();
    // Recorders since the kernel:symbols record name kernel frames in the
    // file; for older files, the caller's fallback is the best guess.
    let kallsyms = match (recorded_ksyms, opts.kernel_fallback) {
        (Some(k), _) => k,
        (None, Some(load)) if raws.keys().any(|r| !r.kernel.is_empty()) => load(),
        _ => KernelSymbols::default(),
    };
    let mut interned: HashMap<Frame, usize> = HashMap::new();
    let mut stacks: HashMap<StackKey, (Arc<str>, u64)> = HashMap::new();
    let mut addr_cache: HashMap<(usize, u64, bool), Vec<usize>> = HashMap::new();
    // Raw stack id -> its symbolized key (with `times`).
    let mut raw_stack: Vec<Option<StackKey>> = if opts.times { vec![None; raws.len()] } else { Vec::new() };
    // In the order the stacks were first seen: frames are numbered as they
    // are met, and the output must not depend on the hash order.
    let mut in_order: Vec<_> = raws.iter().collect();
    in_order.sort_unstable_by_key(|(_, (_, _, raw_id))| *raw_id);
    for (raw, (maps, count, raw_id)) in in_order {
        out.samples += count;
        // Leaf first, then reversed to root first.
        let mut ids: Vec<usize> = Vec::new();
        for &a in &raw.kernel {
            let f = kernel_frame(&kallsyms, a);
            let n = interned.len();
            ids.push(*interned.entry(f).or_insert(n));
        }
        for fa in &raw.user {
            let key = (raw.maps_id, fa.addr, fa.ret);
            if let Some(v) = addr_cache.get(&key) {
                ids.extend(v);
                continue;
            }
            let look = if fa.ret { fa.addr.wrapping_sub(1) } else { fa.addr };
            let jit_name = jit.get(&raw.pid).and_then(|j| j.lookup(look));
            let frames: Vec<Frame> = match maps.iter().find(|m| look >= m.start && look < m.end) {
                // JIT code lives in anonymous executable memory; its map names it.
                _ if jit_name.is_some() => vec![Frame {
                    function: jit_name.map(str::to_owned),
                    module: "[jit]".into(),
                    offset: look,
                    file: None,
                    line: None,
                    inlined: false,
                }],
                Some(m) if !m.path.starts_with('[') && !m.path.is_empty() => sym.symbolize(m, look),
                // [vdso], [anon:...]: no file to read; module and offset.
                Some(m) => vec![Frame {
                    function: None,
                    module: m.path.clone(),
                    offset: look.wrapping_sub(m.start).wrapping_add(m.pgoff),
                    file: None,
                    line: None,
                    inlined: false,
                }],
                _ => vec![match jit.get(&raw.pid).and_then(|j| j.lookup(look)) {
                    Some(name) => Frame {
                        function: Some(name.to_owned()),
                        module: "[jit]".into(),
                        offset: look,
                        file: None,
                        line: None,
                        inlined: false,
                    },
                    None => Frame {
                        function: None,
                        module: "[unknown]".into(),
                        offset: look,
                        file: None,
                        line: None,
                        inlined: false,
                    },
                }],
            };
            let v: Vec<usize> = frames
                .into_iter()
                // Like perf's symbols: an inlined call counts in the
                // function it was inlined into.
                .filter(|f| !(opts.no_inline && f.inlined))
                .map(|f| {
                    let n = interned.len();
                    *interned.entry(f).or_insert(n)
                })
                .collect();
            ids.extend(&v);
            addr_cache.insert(key, v);
        }
        if opts.wall && raw.off_cpu {
            // The leaf of a blocked (or preempted) stack in a wall-clock profile.
            let f = Frame {
                function: Some(if raw.preempted { "[preempted]" } else { "[off-CPU]" }.into()),
                module: "[wait]".into(),
                offset: 0,
                file: None,
                line: None,
                inlined: false,
            };
            let n = interned.len();
            ids.insert(0, *interned.entry(f).or_insert(n));
        }
        ids.reverse();
        if let Some(slot) = raw_stack.get_mut(*raw_id) {
            *slot = Some((raw.pid, raw.tid, ids.clone()));
        }
        let e = stacks
            .entry((raw.pid, raw.tid, ids))
            .or_insert_with(|| (raw.comm.clone(), 0));
        e.1 += count;
    }
    out.symbolize_secs = prefetch_secs + t_sym.elapsed().as_secs_f64();
    let mut frames = vec![
        Frame {
            function: None,
            module: String::new(),
            offset: 0,
            file: None,
            line: None,
            inlined: false
        };
        interned.len()
    ];
    for (f, i) in interned {
        frames[i] = f;
    }
    out.frames = frames;
    out.stacks = stacks
        .into_iter()
        .map(|((pid, tid, frames), (comm, count))| Stack {
            pid,
            tid,
            comm: comm.to_string(),
            frames,
            count,
        })
        .collect();
    out.stacks.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| (&a.frames, a.pid, a.tid).cmp(&(&b.frames, b.pid, b.tid)))
    });
    if opts.times {
        let index: HashMap<(u32, u32, &[usize]), usize> = out
            .stacks
            .iter()
            .enumerate()
            .map(|(i, st)| ((st.pid, st.tid, st.frames.as_slice()), i))
            .collect();
        let of_raw: Vec<Option<usize>> = raw_stack
            .iter()
            .map(|k| {
                k.as_ref()
                    .and_then(|(p, t, f)| index.get(&(*p, *t, f.as_slice())).copied())
            })
            .collect();
        out.timeline = raw_times
            .into_iter()
            .filter_map(|(ts, raw)| Some((ts, of_raw.get(raw).copied().flatten()?)))
            .collect();
    }
    out.notes = sym.notes().clone();
    out.lookups = sym.lookups();
    out.cache_hits = sym.cache_hits();
    if let Some(path) = cache {
        let _ = sym.into_cache().save(&path);
    }
    out
}

fn kernel_frame(k: &KernelSymbols, a: u64) -> Frame {
    Frame {
        function: k.function(a).map(str::to_owned),
        module: "[kernel]".into(),
        offset: a,
        file: None,
        line: None,
        inlined: false,
    }
}
