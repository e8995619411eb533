//! What `weft info` reports: time span, processes, event counts, losses.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use weft_format::{std_schemas as s, FormatError, Trace, Value};

use crate::kinds::{ExitState, Kind, Kinds};
use crate::names::default_is_fatal;

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

/// Reads every record once. `progress` is called with bytes of the file
/// covered so far.
pub fn summarize(trace: &Trace) -> Summary {
    let kinds = Kinds::of(trace);
    let mut sum = Summary::default();
    let mut exits: HashMap<u32, ExitState> = HashMap::new();
    let mut comms: HashMap<u32, String> = HashMap::new();
    for r in trace.records() {
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
        let kind = kinds.kind(&r);
        let name: String = match kind {
            Kind::SyscallEnter => {
                let nr = r.u64(s::syscall_enter::NR) as u32;
                let name = trace.syscalls.name(nr);
                if name == "exit_group" || name == "exit" {
                    if let Some(Value::U64s(a)) = r.fields.get(s::syscall_enter::ARGS) {
                        exits.entry(r.pid).or_default().code = Some((a.first().copied().unwrap_or(0) & 0xff) as i64);
                    }
                }
                name
            }
            Kind::SyscallExit => {
                let nr = r.u64(s::syscall_exit::NR) as u32;
                if (-4095..0).contains(&r.i64(s::syscall_exit::RET)) {
                    let name = trace.syscalls.name(nr);
                    *sum.errors.entry(name).or_default() += 1;
                }
                continue;
            }
            // A fact about the start, not an event.
            Kind::Fd => continue,
            Kind::Lost => {
                {
                    let l = sum.lost_by_cpu.entry(r.cpu.unwrap_or(u32::MAX)).or_default();
                    *l = l.saturating_add(r.u64(s::lost::COUNT));
                }
                "lost".into()
            }
            Kind::Other => {
                let name = trace.schema(r.schema).map_or_else(String::new, |s| s.name.clone());
                if name == s::PROBE_STATS && !r.str(s::probe_stats::SUSPECT).is_empty() {
                    use s::probe_stats as p;
                    let e = sum.probes_damaged.entry(r.pid).or_default();
                    e.0 += 1;
                    e.1 = e.1.saturating_add(r.u64(p::RECEIVED));
                } else if name == s::PROBE_STATS {
                    use s::probe_stats as p;
                    let e = sum.probes.entry(r.pid).or_default();
                    e.0 = e.0.saturating_add(r.u64(p::ATTEMPTED));
                    e.1 = e.1.saturating_add(r.u64(p::RECEIVED));
                    e.2 = e.2.saturating_add(
                        r.u64(p::ATTEMPTED)
                            .saturating_sub(r.u64(p::RECEIVED))
                            .saturating_add(r.u64(p::NO_SLOT)),
                    );
                } else if name == s::PROBE_DAMAGE {
                    *sum.probe_damage.entry(r.pid).or_default() += 1;
                } else if name == s::PROBE_MISSED {
                    sum.probe_missed.insert(r.pid, r.str(s::probe_missed::WHY).to_owned());
                }
                name
            }
            Kind::SignalGenerate => "signal_generate".into(),
            Kind::SignalDeliver => {
                let sig = r.i64(s::signal_deliver::SIG);
                if r.u64(s::signal_deliver::HANDLER) == 0
                    && default_is_fatal(sig)
                    && !crate::kinds::group_exiting(&exits, r.pid, sig)
                {
                    exits.entry(r.pid).or_default().fatal_signal = Some(sig);
                }
                "signal_deliver".into()
            }
            Kind::Fork => "fork".into(),
            Kind::Exec => "exec".into(),
            Kind::Exit => "exit".into(),
            Kind::Comm => "comm".into(),
            Kind::Mmap => "map".into(),
        };
        *sum.counts.entry(name).or_default() += 1;
        // Losses, and records of no process (kernel:symbols), are no process's.
        if kind == Kind::Lost || r.pid == 0 {
            continue;
        }
        let p = sum.processes.entry(r.pid).or_insert_with(|| ProcessSummary {
            first_ts: r.ts,
            ..Default::default()
        });
        p.last_ts = r.ts;
        p.threads.insert(r.tid);
        match kind {
            Kind::SyscallEnter => p.syscalls += 1,
            Kind::Comm => {
                let c = r.str(s::comm::COMM).to_owned();
                if r.tid == r.pid {
                    p.comm = c.clone();
                }
                comms.insert(r.tid, c);
            }
            Kind::Fork => {
                let ppid = r.u64(s::fork::PARENT_PID) as u32;
                if ppid != r.pid {
                    p.parent = Some(ppid);
                    if let Some(c) = comms.get(&(r.u64(s::fork::PARENT_TID) as u32)) {
                        p.comm = c.clone();
                    }
                }
            }
            Kind::Exec => {
                exits.remove(&r.pid);
                p.exit = None;
            }
            Kind::Exit if matches!(r.fields.get(s::exit::GROUP_DEAD), Some(Value::Bool(true))) => {
                p.exit = Some(exits.remove(&r.pid).unwrap_or_default().describe());
            }
            _ => {}
        }
    }
    sum
}
