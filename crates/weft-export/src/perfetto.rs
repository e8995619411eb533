//! A weft trace as a Perfetto trace (protobuf `TracePacket` stream), for
//! ui.perfetto.dev and trace processor: a track per process and thread, a
//! slice per syscall (arguments and result as debug annotations), instants
//! for signals, lifecycle, memory maps, probe markers and events, losses and
//! damage, slices for probe spans, and CPU samples as interned callstacks.
//! Packets are written as the trace is read, so memory stays bounded by the
//! number of threads, not of events.

mod proto;

use std::collections::HashMap;
use std::io::Write;

use weft_analysis::profile::Profile;
use weft_format::Trace;

use crate::timeline::{walk, Arg, Args, ExportSummary, Sink, Track};
use crate::ExportError;
use proto::*;

const SEQ: u32 = 1;
/// Track uuids: kind in the top bits, pid or tid below.
const PROCESS: u64 = 1 << 40;
const THREAD: u64 = 2 << 40;
const SPANS: u64 = 3 << 40;
const GLOBAL: u64 = 4 << 40;

struct Out<W: Write> {
    w: W,
    buf: Vec<u8>,
}

impl<W: Write> Out<W> {
    fn put(&mut self, p: TracePacket) -> Result<(), ExportError> {
        self.buf.clear();
        // One `Trace.packet` field: concatenated, they make one Trace.
        prost::encoding::message::encode(1, &p, &mut self.buf);
        self.w.write_all(&self.buf)?;
        Ok(())
    }

    fn event(&mut self, ts: u64, ev: TrackEvent) -> Result<(), ExportError> {
        self.put(TracePacket {
            timestamp: Some(ts),
            timestamp_clock_id: Some(CLOCK_MONOTONIC),
            trusted_packet_sequence_id: Some(SEQ),
            track_event: Some(ev),
            ..Default::default()
        })
    }

    fn track(&mut self, d: TrackDescriptor) -> Result<(), ExportError> {
        self.put(TracePacket {
            trusted_packet_sequence_id: Some(SEQ),
            track_descriptor: Some(d),
            ..Default::default()
        })
    }
}

fn annotations(args: Args) -> Vec<DebugAnnotation> {
    args.into_iter()
        .map(|(name, v)| {
            let mut a = DebugAnnotation {
                name: Some(name),
                ..Default::default()
            };
            match v {
                Arg::Str(s) => a.string_value = Some(s),
                Arg::U64(x) => a.uint_value = Some(x),
                Arg::I64(x) => a.int_value = Some(x),
                Arg::F64(x) => a.double_value = Some(x),
                Arg::Bool(b) => a.bool_value = Some(b),
            }
            a
        })
        .collect()
}

fn uuid(t: Track) -> u64 {
    match t {
        Track::Thread { tid, .. } => THREAD | u64::from(tid),
        Track::Spans { tid, .. } => SPANS | u64::from(tid),
        Track::Global => GLOBAL,
    }
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

impl<W: Write> Sink for Out<W> {
    fn process(&mut self, pid: u32, name: &str) -> Result<(), ExportError> {
        self.track(TrackDescriptor {
            uuid: Some(PROCESS | u64::from(pid)),
            process: Some(ProcessDescriptor {
                pid: Some(pid as i32),
                cmdline: Vec::new(),
                process_name: Some(name.to_owned()),
            }),
            ..Default::default()
        })
    }

    fn thread(&mut self, pid: u32, tid: u32, name: &str) -> Result<(), ExportError> {
        self.track(TrackDescriptor {
            uuid: Some(THREAD | u64::from(tid)),
            parent_uuid: Some(PROCESS | u64::from(pid)),
            thread: Some(ThreadDescriptor {
                pid: Some(pid as i32),
                tid: Some(tid as i32),
                thread_name: Some(name.to_owned()),
            }),
            ..Default::default()
        })
    }

    fn spans(&mut self, _pid: u32, tid: u32) -> Result<(), ExportError> {
        self.track(TrackDescriptor {
            uuid: Some(SPANS | u64::from(tid)),
            parent_uuid: Some(THREAD | u64::from(tid)),
            name: Some("weft-probe spans".into()),
            ..Default::default()
        })
    }

    fn begin(&mut self, ts: u64, t: Track, name: String, args: Args) -> Result<(), ExportError> {
        self.event(ts, event(TYPE_SLICE_BEGIN, uuid(t), name, annotations(args)))
    }

    fn end(&mut self, ts: u64, t: Track, args: Args) -> Result<(), ExportError> {
        self.event(ts, end(uuid(t), annotations(args)))
    }

    fn instant(&mut self, ts: u64, t: Track, name: String, args: Args) -> Result<(), ExportError> {
        self.event(ts, event(TYPE_INSTANT, uuid(t), name, annotations(args)))
    }
}

/// Writes `trace` (and the CPU samples of `profile`, built with
/// `ProfileOptions::times`) as a Perfetto trace.
pub fn perfetto(trace: &Trace, profile: Option<&Profile>, w: impl Write) -> Result<ExportSummary, ExportError> {
    let mut out = Out { w, buf: Vec::new() };
    let start = trace
        .info(weft_format::info_keys::START_MONOTONIC_NS)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    // weft's clock is CLOCK_MONOTONIC: make it the trace's.
    out.put(TracePacket {
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
    out.track(TrackDescriptor {
        uuid: Some(GLOBAL),
        name: Some("weft: losses and damage".into()),
        ..Default::default()
    })?;
    let (mut out, mut sum) = walk(trace, out)?;
    sum.tracks += 1;
    if let Some(p) = profile {
        sum.samples = samples(&mut out, p)?;
    }
    out.w.flush()?;
    Ok(sum)
}

/// CPU samples: frames, mappings and callstacks interned once, then one
/// perf sample per sample.
fn samples<W: Write>(out: &mut Out<W>, p: &Profile) -> Result<u64, ExportError> {
    let mut n = 0;
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
        n += 1;
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
    Ok(n)
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
