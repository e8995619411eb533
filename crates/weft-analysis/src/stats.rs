//! `weft stats`: per syscall, how often, how often it failed and with which
//! errno, and how long it took (total, mean, p50, p99, max), as `strace -c`
//! with percentiles; per weft-probe event, how often and at what rate; and
//! what was lost or damaged. One pass over the records.

use std::collections::{BTreeMap, HashMap};

use weft_format::{std_schemas as s, FormatError, Trace};

use crate::kinds::{Kind, Kinds};

/// How syscall rows are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// One table over every traced process.
    Syscall,
    /// A table per process.
    Process,
    /// A table per thread.
    Thread,
}

/// One syscall's figures within a group.
#[derive(Debug, Clone, Default)]
pub struct SyscallStats {
    pub name: String,
    pub calls: u64,
    /// Failed returns by errno (positive).
    pub errors: BTreeMap<i64, u64>,
    /// Durations of the calls whose entry and return were both seen, in ns.
    pub durations: Vec<u64>,
    /// Calls whose return was not seen (still running at the end, lost, or
    /// calls that do not return: exit, execve that succeeded).
    pub unfinished: u64,
}

impl SyscallStats {
    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn total_ns(&self) -> u64 {
        self.durations.iter().fold(0u64, |a, &d| a.saturating_add(d))
    }

    pub fn mean_ns(&self) -> Option<u64> {
        (!self.durations.is_empty()).then(|| self.total_ns() / self.durations.len() as u64)
    }

    /// The `q` quantile (0..=1) of the durations, nearest rank; `durations`
    /// must be sorted (`Stats` sorts them).
    pub fn quantile_ns(&self, q: f64) -> Option<u64> {
        let n = self.durations.len();
        if n == 0 {
            return None;
        }
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        Some(self.durations[rank - 1])
    }
}

/// The syscalls of one group: everything, a process or a thread.
#[derive(Debug, Clone, Default)]
pub struct Group {
    /// 0 when the group is every process.
    pub pid: u32,
    pub tid: Option<u32>,
    pub comm: String,
    /// By total time, then calls.
    pub syscalls: Vec<SyscallStats>,
}

impl Group {
    pub fn calls(&self) -> u64 {
        self.syscalls.iter().map(|s| s.calls).sum()
    }

    pub fn total_ns(&self) -> u64 {
        self.syscalls.iter().fold(0u64, |a, s| a.saturating_add(s.total_ns()))
    }
}

#[derive(Debug, Default)]
pub struct Stats {
    pub first_ts: Option<u64>,
    pub last_ts: Option<u64>,
    pub groups: Vec<Group>,
    /// weft-probe events (and weft's own built-in ones, markers and spans)
    /// by name: count, and the processes that wrote them.
    pub probe_events: BTreeMap<String, u64>,
    pub records: u64,
    pub kernel_lost: u64,
    /// weft-probe events attempted but not recorded (ring full, no slot,
    /// abandoned, damaged), from the processes' accounting.
    pub probe_lost: u64,
    pub probe_damage: u64,
    pub problems: Vec<FormatError>,
}

impl Stats {
    pub fn span_ns(&self) -> u64 {
        match (self.first_ts, self.last_ts) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => 0,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    pid: u32,
    tid: u32,
}

/// Reads every record once and groups syscalls `by`.
pub fn stats(trace: &Trace, by: By) -> Stats {
    let kinds = Kinds::of(trace);
    let mut st = Stats::default();
    // Per group key: syscall number -> figures.
    let mut groups: BTreeMap<Key, HashMap<u32, SyscallStats>> = BTreeMap::new();
    // Per thread: the syscall in flight (number, entry time, group key).
    let mut open: HashMap<u32, (u32, u64, Key)> = HashMap::new();
    let mut comms: HashMap<u32, String> = HashMap::new();
    let name_of = |nr: u32| trace.syscalls.name(nr);
    let key_of = |pid: u32, tid: u32| match by {
        By::Syscall => Key { pid: 0, tid: 0 },
        By::Process => Key { pid, tid: 0 },
        By::Thread => Key { pid, tid },
    };
    for r in trace.records() {
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                st.problems.push(e);
                continue;
            }
        };
        st.records += 1;
        st.first_ts.get_or_insert(r.ts);
        st.last_ts = Some(r.ts);
        match kinds.kind(&r) {
            Kind::SyscallEnter => {
                let nr = r.u64(s::syscall_enter::NR) as u32;
                let key = key_of(r.pid, r.tid);
                let g = groups.entry(key).or_default();
                let e = g.entry(nr).or_insert_with(|| SyscallStats {
                    name: name_of(nr),
                    ..Default::default()
                });
                e.calls += 1;
                // A thread has one syscall in flight: an older one lost its return.
                if let Some(old) = open.insert(r.tid, (nr, r.ts, key)) {
                    unfinished(&mut groups, old);
                }
            }
            Kind::SyscallExit => {
                let mut nr = r.u64(s::syscall_exit::NR) as u32;
                let Some(&(onr, ts, key)) = open.get(&r.tid) else {
                    continue;
                };
                // After rt_sigreturn the kernel reports the restored (-1) number.
                if nr == u32::MAX {
                    nr = onr;
                }
                if nr != onr {
                    continue;
                }
                open.remove(&r.tid);
                if let Some(e) = groups.entry(key).or_default().get_mut(&nr) {
                    e.durations.push(r.ts.saturating_sub(ts));
                    let ret = r.i64(s::syscall_exit::RET);
                    if (-4095..0).contains(&ret) {
                        *e.errors.entry(-ret).or_default() += 1;
                    }
                }
            }
            Kind::Comm => {
                comms.insert(r.tid, r.str(s::comm::COMM).to_owned());
            }
            Kind::Fork => {
                crate::kinds::inherit_comm(&mut comms, r.u64(s::fork::PARENT_TID) as u32, r.tid);
            }
            Kind::Exit => {
                // exit and exit_group do not return; neither does a thread's
                // last call when it is killed.
                if let Some(old) = open.remove(&r.tid) {
                    unfinished(&mut groups, old);
                }
            }
            Kind::Lost => st.kernel_lost = st.kernel_lost.saturating_add(r.u64(s::lost::COUNT)),
            Kind::Other => {
                let Some(name) = trace.schema(r.schema).map(|s| s.name.as_str()) else {
                    continue;
                };
                if name == s::PROBE_STATS {
                    use s::probe_stats as p;
                    if r.str(p::SUSPECT).is_empty() {
                        let lost = r
                            .u64(p::ATTEMPTED)
                            .saturating_sub(r.u64(p::RECEIVED))
                            .saturating_add(r.u64(p::NO_SLOT));
                        st.probe_lost = st.probe_lost.saturating_add(lost);
                    }
                } else if name == s::PROBE_DAMAGE {
                    st.probe_damage += 1;
                } else if !s::NAMES.contains(&name) {
                    *st.probe_events.entry(name.to_owned()).or_default() += 1;
                }
            }
            _ => {}
        }
    }
    // Calls still in flight at the end.
    for old in open.into_values() {
        unfinished(&mut groups, old);
    }
    for (k, g) in groups {
        let mut syscalls: Vec<SyscallStats> = g.into_values().collect();
        for sc in &mut syscalls {
            sc.durations.sort_unstable();
        }
        syscalls.sort_by(|a, b| {
            b.total_ns()
                .cmp(&a.total_ns())
                .then(b.calls.cmp(&a.calls))
                .then(a.name.cmp(&b.name))
        });
        let comm = comms
            .get(&if k.tid != 0 { k.tid } else { k.pid })
            .cloned()
            .unwrap_or_default();
        st.groups.push(Group {
            pid: k.pid,
            tid: (by == By::Thread).then_some(k.tid),
            comm,
            syscalls,
        });
    }
    st
}

fn unfinished(groups: &mut BTreeMap<Key, HashMap<u32, SyscallStats>>, (nr, _, key): (u32, u64, Key)) {
    if let Some(e) = groups.get_mut(&key).and_then(|g| g.get_mut(&nr)) {
        e.unfinished += 1;
    }
}
