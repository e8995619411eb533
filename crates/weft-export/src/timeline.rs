//! One pass over a trace's records, as the timeline exports see it:
//! tracks (processes, threads, their weft-probe spans, a global one for
//! losses and damage), slices (syscalls, spans) and instants (signals,
//! lifecycle, maps, probe events, losses, damage), handed to a `Sink` that
//! writes one format.

use std::collections::{BTreeMap, HashMap, HashSet};

use weft_analysis::{format_arg_values_with, format_return, names, show_value, Kind, Kinds};
use weft_format::{std_schemas as s, Record, Trace, Value};

use crate::ExportError;

/// What an export wrote, and what it left out.
#[derive(Debug, Default)]
pub struct ExportSummary {
    pub slices: u64,
    pub instants: u64,
    pub samples: u64,
    pub tracks: u64,
    /// Record kinds not exported, with how many and why.
    pub left_out: BTreeMap<String, (u64, &'static str)>,
}

/// Where an event goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Track {
    Thread {
        pid: u32,
        tid: u32,
    },
    /// A thread's weft-probe spans (nested among themselves only).
    Spans {
        pid: u32,
        tid: u32,
    },
    /// Events of no thread: losses, damage of the file.
    Global,
}

/// An argument's value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    Str(String),
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
}

impl Arg {
    fn of(v: &Value) -> Arg {
        match v {
            Value::U64(x) => Arg::U64(*x),
            Value::I64(x) => Arg::I64(*x),
            Value::F64(x) => Arg::F64(*x),
            Value::Bool(b) => Arg::Bool(*b),
            Value::Str(t) => Arg::Str(t.clone()),
            other => Arg::Str(show_value(other)),
        }
    }
}

pub(crate) type Args = Vec<(String, Arg)>;

/// A timeline format. Tracks are described before their first event.
pub(crate) trait Sink {
    fn process(&mut self, pid: u32, name: &str) -> Result<(), ExportError>;
    /// Called again when the thread is renamed.
    fn thread(&mut self, pid: u32, tid: u32, name: &str) -> Result<(), ExportError>;
    fn spans(&mut self, pid: u32, tid: u32) -> Result<(), ExportError>;
    fn begin(&mut self, ts: u64, t: Track, name: String, args: Args) -> Result<(), ExportError>;
    /// Ends the innermost open slice of `t`.
    fn end(&mut self, ts: u64, t: Track, args: Args) -> Result<(), ExportError>;
    fn instant(&mut self, ts: u64, t: Track, name: String, args: Args) -> Result<(), ExportError>;
}

fn ann(name: &str, value: String) -> (String, Arg) {
    (name.to_owned(), Arg::Str(value))
}

fn ann_value(name: &str, v: &Value) -> (String, Arg) {
    (name.to_owned(), Arg::of(v))
}

/// Exporter state over one pass of the records.
pub(crate) struct Walker<'t, S: Sink> {
    trace: &'t Trace,
    pub(crate) sink: S,
    pub(crate) sum: ExportSummary,
    kinds: Kinds,
    processes: HashSet<u32>,
    /// tid -> (pid, name it was last described with).
    threads: HashMap<u32, (u32, String)>,
    comms: HashMap<u32, String>,
    /// tid -> (pid, syscall number in flight): its slice is open.
    open: HashMap<u32, (u32, u32)>,
    /// tid -> open span ids, innermost last, on its span track.
    spans: HashMap<u32, Vec<u64>>,
    last_ts: u64,
}

impl<S: Sink> Walker<'_, S> {
    fn process(&mut self, pid: u32) -> Result<(), ExportError> {
        if self.processes.insert(pid) {
            let name = self.comms.get(&pid).cloned().unwrap_or_default();
            self.sum.tracks += 1;
            self.sink.process(pid, &name)?;
        }
        Ok(())
    }

    /// The thread's track, described (again) when new or renamed.
    fn thread(&mut self, pid: u32, tid: u32) -> Result<Track, ExportError> {
        self.process(pid)?;
        let name = self.comms.get(&tid).cloned().unwrap_or_default();
        if self.threads.get(&tid) != Some(&(pid, name.clone())) {
            self.threads.insert(tid, (pid, name.clone()));
            self.sum.tracks += 1;
            self.sink.thread(pid, tid, &name)?;
        }
        Ok(Track::Thread { pid, tid })
    }

    fn instant(&mut self, r: &Record, name: String, a: Args) -> Result<(), ExportError> {
        let t = self.thread(r.pid, r.tid)?;
        self.sum.instants += 1;
        self.sink.instant(r.ts, t, name, a)
    }

    fn begin(&mut self, ts: u64, t: Track, name: String, a: Args) -> Result<(), ExportError> {
        self.sum.slices += 1;
        self.sink.begin(ts, t, name, a)
    }

    fn close_open(&mut self, tid: u32, ts: u64, why: &str) -> Result<(), ExportError> {
        if let Some((pid, _)) = self.open.remove(&tid) {
            let a = vec![("unfinished".to_string(), Arg::Str(why.into()))];
            self.sink.end(ts, Track::Thread { pid, tid }, a)?;
        }
        Ok(())
    }

    fn left_out(&mut self, what: &str, why: &'static str) {
        self.sum.left_out.entry(what.to_owned()).or_insert((0, why)).0 += 1;
    }

    fn record(&mut self, r: Record) -> Result<(), ExportError> {
        self.last_ts = self.last_ts.max(r.ts);
        let syscall_name = |nr: u32| self.trace.syscalls.name(nr);
        match self.kinds.kind(&r) {
            Kind::SyscallEnter => {
                let nr = r.u64(s::syscall_enter::NR) as u32;
                let name = syscall_name(nr);
                let args = r.u64s(s::syscall_enter::ARGS).to_vec();
                let data = r.bytes(s::syscall_enter::DATA);
                let a: Args = format_arg_values_with(self.trace.syscalls.get(nr), &args, data, &[])
                    .into_iter()
                    .enumerate()
                    .map(|(i, (n, v))| (if n.is_empty() { format!("arg{i}") } else { n }, Arg::Str(v)))
                    .collect();
                self.close_open(r.tid, r.ts, "its return was not recorded")?;
                let t = self.thread(r.pid, r.tid)?;
                if name == "exit" || name == "exit_group" {
                    self.sum.instants += 1;
                    self.sink.instant(r.ts, t, name, a)?;
                } else {
                    self.begin(r.ts, t, name, a)?;
                    self.open.insert(r.tid, (r.pid, nr));
                }
            }
            Kind::SyscallExit => {
                let mut nr = r.u64(s::syscall_exit::NR) as u32;
                let Some(&(pid, open)) = self.open.get(&r.tid) else {
                    let name = self.trace.syscalls.get(nr).map_or("", |e| e.name.as_str());
                    if matches!(name, "clone" | "clone3" | "fork" | "vfork") && r.i64(s::syscall_exit::RET) == 0 {
                        self.left_out(
                            "returns of new threads and processes from clone or fork",
                            "a new task starts there: the call's entry is its creator's, exported on the creator's track",
                        );
                    } else {
                        self.left_out(
                            "syscall returns without their entry",
                            "the call began before the recording did, or its entry was lost",
                        );
                    }
                    return Ok(());
                };
                if nr == u32::MAX {
                    nr = open;
                }
                if nr != open {
                    return self.close_open(r.tid, r.ts, "another syscall's return came first");
                }
                self.open.remove(&r.tid);
                let ret = r.i64(s::syscall_exit::RET);
                let mut a = vec![("result".to_string(), Arg::Str(format_return(&syscall_name(nr), ret)))];
                if (-4095..0).contains(&ret) {
                    a.push(("errno".into(), Arg::Str(names::errno_name(-ret))));
                }
                self.sink.end(r.ts, Track::Thread { pid, tid: r.tid }, a)?;
            }
            Kind::Comm => {
                let comm = r.str(s::comm::COMM).to_owned();
                self.comms.insert(r.tid, comm);
                if r.tid == r.pid && self.processes.remove(&r.pid) {
                    // Described again with its new name.
                    self.process(r.pid)?;
                }
                self.thread(r.pid, r.tid)?;
            }
            Kind::Fork => {
                let ppid = r.u64(s::fork::PARENT_PID) as u32;
                let ptid = r.u64(s::fork::PARENT_TID) as u32;
                if let Some(c) = self.comms.get(&ptid).cloned() {
                    self.comms.entry(r.tid).or_insert(c);
                }
                let what = if ppid == r.pid { "new thread" } else { "new process" };
                self.instant(&r, what.into(), vec![ann("parent", format!("{ppid}/{ptid}"))])?;
            }
            Kind::Exec => {
                let f = r.str(s::exec::FILENAME).to_owned();
                self.instant(&r, "exec".into(), vec![ann("filename", f)])?;
            }
            Kind::Exit => {
                self.close_open(r.tid, r.ts, "the thread exited")?;
                self.instant(&r, "exit".into(), Vec::new())?;
            }
            Kind::SignalGenerate => {
                use s::signal_generate as g;
                let sig = r.i64(g::SIG);
                self.instant(
                    &r,
                    format!("signal_generate {}", names::signal_name(sig)),
                    vec![
                        ann("code", names::si_code_name(sig, r.i64(g::CODE))),
                        ann(
                            "target",
                            format!("{} ({})", r.i64(g::TARGET_PID), r.str(g::TARGET_COMM)),
                        ),
                    ],
                )?;
            }
            Kind::SignalDeliver => {
                use s::signal_deliver as d;
                let sig = r.i64(d::SIG);
                let mut anns = vec![
                    ann("code", names::si_code_name(sig, r.i64(d::CODE))),
                    ann("handler", format!("{:#x}", r.u64(d::HANDLER))),
                ];
                if let Some(a) = weft_analysis::fault_addr(&r) {
                    anns.push(ann("addr", format!("{a:#x}")));
                }
                self.instant(&r, format!("signal_deliver {}", names::signal_name(sig)), anns)?;
            }
            Kind::Mmap => {
                use s::mmap as m;
                self.instant(
                    &r,
                    "map".into(),
                    vec![
                        ann("addr", format!("{:#x}", r.u64(m::ADDR))),
                        ann("len", r.u64(m::LEN).to_string()),
                        ann("file", r.str(m::FILENAME).to_owned()),
                    ],
                )?;
            }
            // Descriptors open at the start: no event on any track.
            Kind::Fd => {}
            Kind::Lost => {
                let n = r.u64(s::lost::COUNT);
                let cpu = r.cpu.map_or_else(|| "?".into(), |c| c.to_string());
                self.sum.instants += 1;
                let a = vec![("cpu".to_string(), Arg::Str(cpu))];
                self.sink.instant(r.ts, Track::Global, format!("LOST {n} events"), a)?;
            }
            Kind::Other => self.other(r)?,
        }
        Ok(())
    }

    fn other(&mut self, r: Record) -> Result<(), ExportError> {
        let trace = self.trace;
        let Some(schema) = trace.schema(r.schema) else {
            self.left_out("records of an unknown schema", "their schema is missing");
            return Ok(());
        };
        match schema.name.as_str() {
            s::MARKER => {
                let a = vec![("value".into(), Arg::I64(r.i64(1)))];
                self.instant(&r, format!("marker {}", r.str(0)), a)?;
            }
            s::SPAN_BEGIN => {
                self.thread(r.pid, r.tid)?;
                let id = r.u64(1);
                if !self.spans.contains_key(&r.tid) {
                    self.sum.tracks += 1;
                    self.sink.spans(r.pid, r.tid)?;
                }
                self.spans.entry(r.tid).or_default().push(id);
                let a = vec![("id".into(), Arg::U64(id))];
                let t = Track::Spans { pid: r.pid, tid: r.tid };
                self.begin(r.ts, t, r.str(0).to_owned(), a)?;
            }
            s::SPAN_END => {
                let id = r.u64(1);
                let stack = self.spans.entry(r.tid).or_default();
                if stack.last() == Some(&id) {
                    stack.pop();
                    self.sink
                        .end(r.ts, Track::Spans { pid: r.pid, tid: r.tid }, Vec::new())?;
                } else {
                    // Ends out of order (or on another thread): an instant
                    // says where, rather than closing the wrong slice.
                    self.instant(&r, format!("span end {} (#{id})", r.str(0)), Vec::new())?;
                }
            }
            s::PROBE_DAMAGE => {
                use s::probe_damage as d;
                let text = format!("DAMAGED weft-probe buffer: {}", r.str(d::WHAT));
                self.instant(&r, text, vec![ann("offset", format!("{:#x}", r.u64(d::OFFSET)))])?;
            }
            s::PROBE_MISSED => {
                let why = r.str(s::probe_missed::WHY).to_owned();
                self.instant(&r, "weft-probe events not recorded".into(), vec![ann("why", why)])?;
            }
            s::PROBE_ATTACH => self.instant(&r, "weft-probe attached".into(), Vec::new())?,
            s::PROBE_STATS => {
                let a = schema
                    .fields
                    .iter()
                    .zip(&r.fields)
                    .map(|(f, v)| ann_value(&f.name, v))
                    .collect();
                self.instant(&r, "weft-probe thread totals".into(), a)?;
            }
            s::SAMPLE => self.left_out("kernel:sample", "exported as callstacks (perf samples) instead"),
            s::JIT_MAP | s::KERNEL_SYMBOLS => self.left_out(&schema.name, "used to name sample frames"),
            name if !s::NAMES.contains(&name) => {
                let a = schema
                    .fields
                    .iter()
                    .zip(&r.fields)
                    .map(|(f, v)| ann_value(&f.name, v))
                    .collect();
                self.instant(&r, name.to_owned(), a)?;
            }
            name => self.left_out(name, "not a timeline event"),
        }
        Ok(())
    }
}

/// Walks every record of `trace` into `sink`; syscalls still in flight at
/// the end are closed there. Damage met while reading is an instant on the
/// global track, where it was met.
pub(crate) fn walk<S: Sink>(trace: &Trace, sink: S) -> Result<(S, ExportSummary), ExportError> {
    let mut w = Walker {
        trace,
        sink,
        sum: ExportSummary::default(),
        kinds: Kinds::of(trace),
        processes: HashSet::new(),
        threads: HashMap::new(),
        comms: HashMap::new(),
        open: HashMap::new(),
        spans: HashMap::new(),
        last_ts: 0,
    };
    for r in trace.records() {
        match r {
            Ok(r) => w.record(r)?,
            Err(e) => {
                w.sum.instants += 1;
                let ts = w.last_ts;
                w.sink.instant(ts, Track::Global, format!("DAMAGED: {e}"), Vec::new())?;
            }
        }
    }
    // In thread order: the output must not depend on the hash order.
    let mut open: Vec<u32> = w.open.keys().copied().collect();
    open.sort_unstable();
    let last = w.last_ts;
    for tid in open {
        w.close_open(tid, last, "still running when recording stopped")?;
    }
    Ok((w.sink, w.sum))
}
