//! A weft trace as a Perfetto trace (protobuf `TracePacket` stream), for
//! ui.perfetto.dev and trace processor: a track per process and thread, a
//! slice per syscall (arguments and result as debug annotations), instants
//! for signals, lifecycle, memory maps, probe markers and events, losses and
//! damage, slices for probe spans, and CPU samples as interned callstacks.
//! Packets are written as the trace is read, so memory stays bounded by the
//! number of threads, not of events.

mod proto;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;

use weft_analysis::profile::Profile;
use weft_analysis::{format_arg_values, format_return, names, show_value, Kind, Kinds};
use weft_format::{std_schemas as s, Record, Trace, Value};

use crate::ExportError;
use proto::*;

/// What an export wrote, and what it left out.
#[derive(Debug, Default)]
pub struct PerfettoSummary {
    pub packets: u64,
    pub slices: u64,
    pub instants: u64,
    pub samples: u64,
    pub tracks: u64,
    /// Record kinds not exported, with how many and why.
    pub left_out: BTreeMap<String, (u64, &'static str)>,
}

const SEQ: u32 = 1;
/// Track uuids: kind in the top bits, pid or tid below.
const PROCESS: u64 = 1 << 40;
const THREAD: u64 = 2 << 40;
const SPANS: u64 = 3 << 40;
const GLOBAL: u64 = 4 << 40;

struct Out<W: Write> {
    w: W,
    buf: Vec<u8>,
    sum: PerfettoSummary,
}

impl<W: Write> Out<W> {
    fn put(&mut self, p: TracePacket) -> Result<(), ExportError> {
        self.buf.clear();
        // One `Trace.packet` field: concatenated, they make one Trace.
        prost::encoding::message::encode(1, &p, &mut self.buf);
        self.w.write_all(&self.buf)?;
        self.sum.packets += 1;
        Ok(())
    }

    fn event(&mut self, ts: u64, ev: TrackEvent) -> Result<(), ExportError> {
        match ev.r#type {
            Some(TYPE_SLICE_BEGIN) => self.sum.slices += 1,
            Some(TYPE_INSTANT) => self.sum.instants += 1,
            _ => {}
        }
        self.put(TracePacket {
            timestamp: Some(ts),
            timestamp_clock_id: Some(CLOCK_MONOTONIC),
            trusted_packet_sequence_id: Some(SEQ),
            track_event: Some(ev),
            ..Default::default()
        })
    }

    fn track(&mut self, d: TrackDescriptor) -> Result<(), ExportError> {
        self.sum.tracks += 1;
        self.put(TracePacket {
            trusted_packet_sequence_id: Some(SEQ),
            track_descriptor: Some(d),
            ..Default::default()
        })
    }
}

fn ann(name: &str, value: String) -> DebugAnnotation {
    DebugAnnotation {
        name: Some(name.to_owned()),
        string_value: Some(value),
        ..Default::default()
    }
}

fn ann_value(name: &str, v: &Value) -> DebugAnnotation {
    let mut a = DebugAnnotation {
        name: Some(name.to_owned()),
        ..Default::default()
    };
    match v {
        Value::U64(x) => a.uint_value = Some(*x),
        Value::I64(x) => a.int_value = Some(*x),
        Value::F64(x) => a.double_value = Some(*x),
        Value::Bool(b) => a.bool_value = Some(*b),
        Value::Str(t) => a.string_value = Some(t.clone()),
        other => a.string_value = Some(show_value(other)),
    }
    a
}

fn event(ty: i32, track: u64, name: String, annotations: Vec<DebugAnnotation>) -> TrackEvent {
    TrackEvent {
        r#type: Some(ty),
        track_uuid: Some(track),
        name: Some(name),
        categories: Vec::new(),
        debug_annotations: annotations,
    }
}

fn end(track: u64, annotations: Vec<DebugAnnotation>) -> TrackEvent {
    TrackEvent {
        r#type: Some(TYPE_SLICE_END),
        track_uuid: Some(track),
        name: None,
        categories: Vec::new(),
        debug_annotations: annotations,
    }
}

/// Exporter state over one pass of the records.
struct State<'t, W: Write> {
    trace: &'t Trace,
    out: Out<W>,
    kinds: Kinds,
    processes: HashSet<u32>,
    /// tid -> (pid, name it was last described with).
    threads: HashMap<u32, (u32, String)>,
    comms: HashMap<u32, String>,
    /// tid -> syscall number in flight (its slice is open).
    open: HashMap<u32, u32>,
    /// tid -> open span ids, innermost last, on its span track.
    spans: HashMap<u32, Vec<u64>>,
    last_ts: u64,
}

impl<W: Write> State<'_, W> {
    fn process(&mut self, pid: u32) -> Result<(), ExportError> {
        if self.processes.insert(pid) {
            let name = self.comms.get(&pid).cloned().unwrap_or_default();
            self.out.track(TrackDescriptor {
                uuid: Some(PROCESS | u64::from(pid)),
                process: Some(ProcessDescriptor {
                    pid: Some(pid as i32),
                    cmdline: Vec::new(),
                    process_name: Some(name),
                }),
                ..Default::default()
            })?;
        }
        Ok(())
    }

    /// The thread's track, described (again) when new or renamed.
    fn thread(&mut self, pid: u32, tid: u32) -> Result<u64, ExportError> {
        self.process(pid)?;
        let name = self.comms.get(&tid).cloned().unwrap_or_default();
        if self.threads.get(&tid) != Some(&(pid, name.clone())) {
            self.threads.insert(tid, (pid, name.clone()));
            self.out.track(TrackDescriptor {
                uuid: Some(THREAD | u64::from(tid)),
                parent_uuid: Some(PROCESS | u64::from(pid)),
                thread: Some(ThreadDescriptor {
                    pid: Some(pid as i32),
                    tid: Some(tid as i32),
                    thread_name: Some(name),
                }),
                ..Default::default()
            })?;
        }
        Ok(THREAD | u64::from(tid))
    }

    fn instant(&mut self, r: &Record, name: String, a: Vec<DebugAnnotation>) -> Result<(), ExportError> {
        let t = self.thread(r.pid, r.tid)?;
        self.out.event(r.ts, event(TYPE_INSTANT, t, name, a))
    }

    fn close_open(&mut self, tid: u32, ts: u64, why: &str) -> Result<(), ExportError> {
        if self.open.remove(&tid).is_some() {
            self.out
                .event(ts, end(THREAD | u64::from(tid), vec![ann("unfinished", why.into())]))?;
        }
        Ok(())
    }

    fn left_out(&mut self, what: &str, why: &'static str) {
        self.out.sum.left_out.entry(what.to_owned()).or_insert((0, why)).0 += 1;
    }

    fn record(&mut self, r: Record) -> Result<(), ExportError> {
        self.last_ts = self.last_ts.max(r.ts);
        let syscall_name = |nr: u32| {
            self.trace
                .syscalls
                .get(nr)
                .map_or_else(|| format!("syscall_{nr}"), |e| e.name.clone())
        };
        match self.kinds.kind(&r) {
            Kind::SyscallEnter => {
                let nr = r.u64(s::syscall_enter::NR) as u32;
                let name = syscall_name(nr);
                let args = match r.fields.get(s::syscall_enter::ARGS) {
                    Some(Value::U64s(a)) => a.clone(),
                    _ => Vec::new(),
                };
                let a: Vec<DebugAnnotation> = format_arg_values(self.trace.syscalls.get(nr), &args)
                    .into_iter()
                    .enumerate()
                    .map(|(i, (n, v))| ann(&if n.is_empty() { format!("arg{i}") } else { n }, v))
                    .collect();
                self.close_open(r.tid, r.ts, "its return was not recorded")?;
                let t = self.thread(r.pid, r.tid)?;
                if name == "exit" || name == "exit_group" {
                    self.out.event(r.ts, event(TYPE_INSTANT, t, name, a))?;
                } else {
                    self.out.event(r.ts, event(TYPE_SLICE_BEGIN, t, name, a))?;
                    self.open.insert(r.tid, nr);
                }
            }
            Kind::SyscallExit => {
                let mut nr = r.u64(s::syscall_exit::NR) as u32;
                let Some(&open) = self.open.get(&r.tid) else {
                    self.left_out("syscall returns without their entry", "recorded before the entry was");
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
                let mut a = vec![ann("result", format_return(&syscall_name(nr), ret))];
                if (-4095..0).contains(&ret) {
                    a.push(ann("errno", names::errno_name(-ret)));
                }
                self.out.event(r.ts, end(THREAD | u64::from(r.tid), a))?;
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
                self.instant(
                    &r,
                    format!("signal_deliver {}", names::signal_name(sig)),
                    vec![
                        ann("code", names::si_code_name(sig, r.i64(d::CODE))),
                        ann("handler", format!("{:#x}", r.u64(d::HANDLER))),
                    ],
                )?;
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
            Kind::Lost => {
                let n = r.u64(s::lost::COUNT);
                self.out.event(
                    r.ts,
                    event(
                        TYPE_INSTANT,
                        GLOBAL,
                        format!("LOST {n} events"),
                        vec![ann("cpu", r.cpu.map_or_else(|| "?".into(), |c| c.to_string()))],
                    ),
                )?;
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
                let a = vec![ann_value("value", &Value::I64(r.i64(1)))];
                self.instant(&r, format!("marker {}", r.str(0)), a)?;
            }
            s::SPAN_BEGIN => {
                let t = self.thread(r.pid, r.tid)?;
                let id = r.u64(1);
                let track = SPANS | u64::from(r.tid);
                if !self.spans.contains_key(&r.tid) {
                    self.out.track(TrackDescriptor {
                        uuid: Some(track),
                        parent_uuid: Some(t),
                        name: Some("weft-probe spans".into()),
                        ..Default::default()
                    })?;
                }
                self.spans.entry(r.tid).or_default().push(id);
                let a = vec![ann_value("id", &Value::U64(id))];
                self.out
                    .event(r.ts, event(TYPE_SLICE_BEGIN, track, r.str(0).to_owned(), a))?;
            }
            s::SPAN_END => {
                let id = r.u64(1);
                let stack = self.spans.entry(r.tid).or_default();
                if stack.last() == Some(&id) {
                    stack.pop();
                    self.out.event(r.ts, end(SPANS | u64::from(r.tid), Vec::new()))?;
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

/// Writes `trace` (and the CPU samples of `profile`, built with
/// `ProfileOptions::times`) as a Perfetto trace.
pub fn perfetto(trace: &Trace, profile: Option<&Profile>, w: impl Write) -> Result<PerfettoSummary, ExportError> {
    let mut st = State {
        trace,
        out: Out {
            w,
            buf: Vec::new(),
            sum: PerfettoSummary::default(),
        },
        kinds: Kinds::of(trace),
        processes: HashSet::new(),
        threads: HashMap::new(),
        comms: HashMap::new(),
        open: HashMap::new(),
        spans: HashMap::new(),
        last_ts: 0,
    };
    let start = trace
        .info(weft_format::info_keys::START_MONOTONIC_NS)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    // weft's clock is CLOCK_MONOTONIC: make it the trace's.
    st.out.put(TracePacket {
        timestamp: Some(start),
        timestamp_clock_id: Some(CLOCK_MONOTONIC),
        trusted_packet_sequence_id: Some(SEQ),
        sequence_flags: Some(SEQ_INCREMENTAL_STATE_CLEARED),
        clock_snapshot: Some(ClockSnapshot {
            clocks: vec![
                Clock {
                    clock_id: Some(CLOCK_MONOTONIC),
                    timestamp: Some(start),
                },
                Clock {
                    clock_id: Some(CLOCK_BOOTTIME),
                    timestamp: Some(start),
                },
            ],
            primary_trace_clock: Some(CLOCK_MONOTONIC),
        }),
        ..Default::default()
    })?;
    st.out.track(TrackDescriptor {
        uuid: Some(GLOBAL),
        name: Some("weft: losses".into()),
        ..Default::default()
    })?;
    for r in trace.records() {
        match r {
            Ok(r) => st.record(r)?,
            Err(e) => {
                let ts = st.last_ts;
                st.out
                    .event(ts, event(TYPE_INSTANT, GLOBAL, format!("DAMAGED: {e}"), Vec::new()))?;
            }
        }
    }
    // Syscalls still in flight when recording stopped end with it.
    let open: Vec<u32> = st.open.keys().copied().collect();
    let last = st.last_ts;
    for tid in open {
        st.close_open(tid, last, "still running when recording stopped")?;
    }
    if let Some(p) = profile {
        samples(&mut st.out, p)?;
    }
    st.out.w.flush()?;
    Ok(st.out.sum)
}

/// CPU samples: frames, mappings and callstacks interned once, then one
/// perf sample per sample.
fn samples<W: Write>(out: &mut Out<W>, p: &Profile) -> Result<(), ExportError> {
    let mut names: HashMap<String, u64> = HashMap::new();
    let mut modules: HashMap<String, u64> = HashMap::new();
    let mut data = InternedData::default();
    let intern = |table: &mut HashMap<String, u64>, list: &mut Vec<InternedString>, s: &str| -> u64 {
        let next = table.len() as u64 + 1;
        *table.entry(s.to_owned()).or_insert_with(|| {
            list.push(InternedString {
                iid: Some(next),
                str: Some(s.as_bytes().to_vec()),
            });
            next
        })
    };
    for (i, f) in p.frames.iter().enumerate() {
        let fname = intern(&mut names, &mut data.function_names, &f.label());
        let before = modules.len();
        let mpath = intern(&mut modules, &mut data.mapping_paths, &f.module);
        if modules.len() > before {
            data.mappings.push(Mapping {
                iid: Some(mpath),
                path_string_ids: vec![mpath],
            });
        }
        data.frames.push(proto::Frame {
            iid: Some(i as u64 + 1),
            function_name_id: Some(fname),
            mapping_id: Some(mpath),
            rel_pc: Some(f.offset),
        });
    }
    for (i, st) in p.stacks.iter().enumerate() {
        data.callstacks.push(Callstack {
            iid: Some(i as u64 + 1),
            frame_ids: st.frames.iter().map(|&f| f as u64 + 1).collect(),
        });
    }
    out.put(TracePacket {
        trusted_packet_sequence_id: Some(SEQ),
        sequence_flags: Some(SEQ_NEEDS_INCREMENTAL_STATE),
        interned_data: Some(data),
        ..Default::default()
    })?;
    for &(ts, stack) in &p.timeline {
        let Some(st) = p.stacks.get(stack) else { continue };
        out.sum.samples += 1;
        out.put(TracePacket {
            timestamp: Some(ts),
            timestamp_clock_id: Some(CLOCK_MONOTONIC),
            trusted_packet_sequence_id: Some(SEQ),
            sequence_flags: Some(SEQ_NEEDS_INCREMENTAL_STATE),
            perf_sample: Some(PerfSample {
                cpu: None,
                pid: Some(st.pid),
                tid: Some(st.tid),
                callstack_iid: Some(stack as u64 + 1),
            }),
            ..Default::default()
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn decode(bytes: &[u8]) -> proto::Trace {
        proto::Trace::decode(bytes).expect("a Trace")
    }

    #[test]
    fn packets_concatenate_into_one_trace() {
        let mut out = Out {
            w: Vec::new(),
            buf: Vec::new(),
            sum: PerfettoSummary::default(),
        };
        out.event(5, event(TYPE_INSTANT, GLOBAL, "a".into(), Vec::new()))
            .unwrap();
        out.event(7, end(GLOBAL, Vec::new())).unwrap();
        let t = decode(&out.w);
        assert_eq!(t.packet.len(), 2);
        assert_eq!(t.packet[0].timestamp, Some(5));
        assert_eq!(
            t.packet[1].track_event.as_ref().and_then(|e| e.r#type),
            Some(TYPE_SLICE_END)
        );
    }
}
