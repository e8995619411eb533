//! What `weft info` reports: time span, processes, event counts, losses.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ahash::AHashMap;
use weft_format::{std_schemas as s, FormatError, SchemaId, Trace};

use crate::kinds::{ExitState, Kind, Kinds};

#[derive(Debug, Default, Clone)]
pub struct ProcessSummary {
    pub comm: String,
    pub parent: Option<u32>,
    pub threads: BTreeSet<u32>,
    pub first_ts: u64,
    pub last_ts: u64,
    pub syscalls: u64,
    /// `exited with 3`, `killed by SIGSEGV`; None while still running at the end.
    pub exit: Option<String>,
}

#[derive(Debug, Default)]
pub struct Summary {
    pub records: u64,
    pub first_ts: Option<u64>,
    pub last_ts: Option<u64>,
    /// Event name (syscall name for syscalls) to count; a syscall counts once.
    pub counts: BTreeMap<String, u64>,
    /// Syscalls that returned an error, by name.
    pub errors: BTreeMap<String, u64>,
    pub processes: BTreeMap<u32, ProcessSummary>,
    pub lost_by_cpu: BTreeMap<u32, u64>,
    /// weft-probe accounting per process: (attempted, received, lost).
    pub probes: BTreeMap<u32, (u64, u64, u64)>,
    /// weft-probe threads whose counters were damaged, per process:
    /// (threads, events received from them).
    pub probes_damaged: BTreeMap<u32, (u64, u64)>,
    /// weft-probe damage reports per process.
    pub probe_damage: BTreeMap<u32, u64>,
    /// Instrumented processes whose weft-probe events were not recorded, and why.
    pub probe_missed: BTreeMap<u32, String>,
    pub problems: Vec<FormatError>,
}

impl Summary {
    pub fn lost(&self) -> u64 {
        self.lost_by_cpu.values().fold(0u64, |a, &b| a.saturating_add(b))
    }
}

/// What is counted per record, named once at the end (naming a syscall
/// per record would allocate per record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Counted {
    Syscall(u32),
    Schema(SchemaId),
    Fixed(&'static str),
}

/// Reads every record once, in place.
pub fn summarize(trace: &Trace) -> Summary {
    let kinds = Kinds::of(trace);
    let mut sum = Summary::default();
    let mut exits: HashMap<u32, ExitState> = HashMap::new();
    let mut deaths = crate::kinds::Deaths::default();
    let mut comms: HashMap<u32, String> = HashMap::new();
    let mut counts: AHashMap<Counted, u64> = AHashMap::new();
    let mut errors: AHashMap<u32, u64> = AHashMap::new();
    // Syscalls by number: a table for the numbers Linux uses.
    let mut by_nr = vec![0u64; 1024];
    // Other events by schema id (ids are numbered from 1).
    let mut by_schema = vec![0u64; 4096];
    // Processes in order of appearance, and the last one looked up: most
    // records follow one of the same process.
    let mut procs: Vec<(u32, ProcessSummary)> = Vec::new();
    let mut proc_at: AHashMap<u32, usize> = AHashMap::new();
    let mut last: Option<(u32, u32, usize)> = None;
    let stats_id = trace.schema_by_name(s::PROBE_STATS).map(|sc| sc.id);
    let damage_id = trace.schema_by_name(s::PROBE_DAMAGE).map(|sc| sc.id);
    let missed_id = trace.schema_by_name(s::PROBE_MISSED).map(|sc| sc.id);
    let exit_nrs: Vec<u32> = trace
        .syscalls
        .entries
        .iter()
        .filter(|e| e.name == "exit_group" || e.name == "exit")
        .map(|e| e.nr)
        .collect();
    let mut views = trace.views();
    while let Some(r) = views.next() {
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                sum.problems.push(e);
                continue;
            }
        };
        sum.records += 1;
        sum.first_ts.get_or_insert(r.ts);
        sum.last_ts = Some(r.ts);
        let kind = kinds.of_schema(r.schema.id);
        let counted = match kind {
            Kind::SyscallEnter => {
                let nr = r.u64(s::syscall_enter::NR) as u32;
                if exit_nrs.contains(&nr) {
                    let code = r.u64s(s::syscall_enter::ARGS).next().unwrap_or(0);
                    exits.entry(r.pid).or_default().code = Some((code & 0xff) as i64);
                }
                Counted::Syscall(nr)
            }
            Kind::SyscallExit => {
                if (-4095..0).contains(&r.i64(s::syscall_exit::RET)) {
                    *errors.entry(r.u64(s::syscall_exit::NR) as u32).or_default() += 1;
                }
                continue;
            }
            // A fact about the start, not an event.
            Kind::Fd => continue,
            Kind::Lost => {
                let l = sum.lost_by_cpu.entry(r.cpu.unwrap_or(u32::MAX)).or_default();
                *l = l.saturating_add(r.u64(s::lost::COUNT));
                Counted::Fixed("lost")
            }
            Kind::Other => {
                let id = Some(r.schema.id);
                if id == stats_id && !r.str(s::probe_stats::SUSPECT).is_empty() {
                    use s::probe_stats as p;
                    let e = sum.probes_damaged.entry(r.pid).or_default();
                    e.0 += 1;
                    e.1 = e.1.saturating_add(r.u64(p::RECEIVED));
                } else if id == stats_id {
                    use s::probe_stats as p;
                    let e = sum.probes.entry(r.pid).or_default();
                    // Events that found no thread slot were attempted too.
                    e.0 =
                        e.0.saturating_add(r.u64(p::ATTEMPTED))
                            .saturating_add(r.u64(p::NO_SLOT));
                    e.1 = e.1.saturating_add(r.u64(p::RECEIVED));
                    e.2 = e.2.saturating_add(
                        r.u64(p::ATTEMPTED)
                            .saturating_sub(r.u64(p::RECEIVED))
                            .saturating_add(r.u64(p::NO_SLOT)),
                    );
                } else if id == damage_id {
                    *sum.probe_damage.entry(r.pid).or_default() += 1;
                } else if id == missed_id {
                    sum.probe_missed.insert(r.pid, r.str(s::probe_missed::WHY).into_owned());
                }
                Counted::Schema(r.schema.id)
            }
            Kind::SignalGenerate => {
                use s::signal_generate as g;
                deaths.generated(r.i64(g::TARGET_PID) as u32, r.i64(g::SIG), r.i64(g::RESULT));
                Counted::Fixed("signal_generate")
            }
            Kind::SignalDeliver => {
                use s::signal_deliver as d;
                deaths.delivered(&mut exits, r.pid, r.tid, r.i64(d::SIG), r.u64(d::HANDLER));
                Counted::Fixed("signal_deliver")
            }
            Kind::Fork => Counted::Fixed("fork"),
            Kind::Exec => Counted::Fixed("exec"),
            Kind::Exit => Counted::Fixed("exit"),
            Kind::Comm => Counted::Fixed("comm"),
            Kind::Mmap => Counted::Fixed("map"),
        };
        match counted {
            Counted::Syscall(nr) if (nr as usize) < by_nr.len() => by_nr[nr as usize] += 1,
            Counted::Schema(id) if (id.0 as usize) < by_schema.len() => by_schema[id.0 as usize] += 1,
            c => *counts.entry(c).or_default() += 1,
        }
        // Losses, and records of no process (kernel:symbols), are no process's.
        if kind == Kind::Lost || r.pid == 0 {
            continue;
        }
        let at = match last {
            Some((pid, _, at)) if pid == r.pid => at,
            _ => *proc_at.entry(r.pid).or_insert_with(|| {
                procs.push((
                    r.pid,
                    ProcessSummary {
                        first_ts: r.ts,
                        ..Default::default()
                    },
                ));
                procs.len() - 1
            }),
        };
        let p = &mut procs[at].1;
        p.last_ts = r.ts;
        if last.is_none_or(|(pid, tid, _)| (pid, tid) != (r.pid, r.tid)) {
            p.threads.insert(r.tid);
        }
        last = Some((r.pid, r.tid, at));
        match kind {
            Kind::SyscallEnter => p.syscalls += 1,
            Kind::Comm => {
                let c = r.str(s::comm::COMM).into_owned();
                if r.tid == r.pid {
                    p.comm = c.clone();
                }
                comms.insert(r.tid, c);
            }
            Kind::Fork => {
                let ppid = r.u64(s::fork::PARENT_PID) as u32;
                // A child forked by a forked child too.
                let inherited = crate::kinds::inherit_comm(&mut comms, r.u64(s::fork::PARENT_TID) as u32, r.tid);
                if let (Some(c), true) = (inherited, ppid != r.pid) {
                    p.comm = c;
                }
                if ppid != r.pid {
                    p.parent = Some(ppid);
                }
            }
            Kind::Exec => {
                exits.remove(&r.pid);
                p.exit = None;
            }
            Kind::Exit if r.bool(s::exit::GROUP_DEAD) => {
                p.exit = Some(crate::kinds::end_of(
                    trace,
                    r.pid,
                    exits.remove(&r.pid).unwrap_or_default(),
                ));
            }
            _ => {}
        }
    }
    let numbered = by_nr.into_iter().enumerate().filter(|&(_, n)| n > 0);
    counts.extend(numbered.map(|(nr, n)| (Counted::Syscall(nr as u32), n)));
    let by_id = by_schema.into_iter().enumerate().filter(|&(_, n)| n > 0);
    counts.extend(by_id.map(|(id, n)| (Counted::Schema(SchemaId(id as u32)), n)));
    for (c, n) in counts {
        let name = match c {
            Counted::Syscall(nr) => trace.syscalls.name(nr),
            Counted::Schema(id) => trace.schema(id).map_or_else(String::new, |s| s.name.clone()),
            Counted::Fixed(name) => name.to_owned(),
        };
        *sum.counts.entry(name).or_default() += n;
    }
    for (nr, n) in errors {
        *sum.errors.entry(trace.syscalls.name(nr)).or_default() += n;
    }
    sum.processes = procs.into_iter().collect();
    // The recorder reaped the command: its status stands where no exit
    // record was (lost with a full ring, say); where one was, `end_of`
    // weighed it against that status.
    let command = trace.end_value(weft_format::end_keys::COMMAND_PID);
    if let (Some(pid), Some(status)) = (
        command.and_then(|p| p.parse::<u32>().ok()),
        trace.end_value(weft_format::end_keys::EXIT_STATUS),
    ) {
        if let Some(p) = sum.processes.get_mut(&pid).filter(|p| p.exit.is_none()) {
            p.exit = Some(status.to_owned());
        }
    }
    sum
}
