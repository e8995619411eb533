//! The one road into the trace: kernel events, weft-probe records and the
//! recorder's side data are all encoded here, against the standard schemas
//! of `weft_format::std_schemas` and the schemas the traced programs
//! declare. The `TraceWriter` cuts chunks; nothing here counts bytes.

use std::collections::HashMap;
use std::fs::File;

use weft_format::std_schemas::{self as s, Ids};
use weft_format::{FieldType, ProbeClock, ProbeRunInfo, Schema, SchemaId, SyscallTable, TraceWriter};
use weft_kernel::{EventKind, KernelEvent};
use weft_probe_collect::{
    Damage, ProbeEvent, ProbeRecord, ProbeRun, ProcessInfo, RunBytes, ThreadStats, Value, ValueRef,
};

/// Encodes everything a recording writes into its trace file.
pub(crate) struct Encoder {
    pub w: TraceWriter<File>,
    ids: Ids,
    /// Arguments stored per syscall number (the table's count; 6 if unknown).
    nargs: Vec<u8>,
    probe: ProbeSchemas,
}

impl Encoder {
    pub fn new(mut w: TraceWriter<File>, table: &SyscallTable) -> Encoder {
        let ids = Ids::declare(&mut w);
        let max = table.entries.iter().map(|e| e.nr).max().unwrap_or(0) as usize;
        let mut nargs = vec![6u8; max + 1];
        for e in &table.entries {
            nargs[e.nr as usize] = e.args.len().min(6) as u8;
        }
        Encoder {
            w,
            ids,
            nargs,
            probe: ProbeSchemas::default(),
        }
    }

    /// One kernel event.
    pub fn kernel(&mut self, ev: &KernelEvent) {
        let ids = self.ids;
        let cpu = (ev.cpu != u32::MAX).then_some(ev.cpu);
        let w = &mut self.w;
        macro_rules! rec {
            ($id:expr) => {
                w.record($id, ev.ts, cpu, ev.pid, ev.tid)
            };
        }
        match &ev.kind {
            EventKind::SyscallEnter { nr, args, data } => {
                let n = self.nargs.get(*nr as usize).copied().unwrap_or(6) as usize;
                s::syscall_enter::put(rec!(ids.syscall_enter), u64::from(*nr), &args[..n], data).finish();
            }
            EventKind::SyscallExit { nr, ret, data } => {
                s::syscall_exit::put(rec!(ids.syscall_exit), u64::from(*nr), *ret, data).finish()
            }
            EventKind::FdAtStart { fd, path } => s::fd::put(rec!(ids.fd), i64::from(*fd), path.as_bytes()).finish(),
            // Joined to their syscall or signal by the tracer; none reach here.
            EventKind::Captured { .. } | EventKind::SignalInfo { .. } => {}
            EventKind::SignalGenerate {
                sig,
                code,
                errno,
                target_pid,
                target_comm,
                group,
                result,
            } => s::signal_generate::put(
                rec!(ids.signal_generate),
                i64::from(*sig),
                i64::from(*code),
                i64::from(*errno),
                i64::from(*target_pid),
                target_comm.as_bytes(),
                *group,
                i64::from(*result),
            )
            .finish(),
            EventKind::SignalDeliver {
                sig,
                code,
                errno,
                handler,
                flags,
                addr,
            } => s::signal_deliver::put(
                rec!(ids.signal_deliver),
                i64::from(*sig),
                i64::from(*code),
                i64::from(*errno),
                *handler,
                *flags,
                addr.is_some(),
                addr.unwrap_or(0),
            )
            .finish(),
            EventKind::Fork { parent_pid, parent_tid } => {
                s::fork::put(rec!(ids.fork), u64::from(*parent_pid), u64::from(*parent_tid)).finish()
            }
            EventKind::Exec { filename, old_tid } => {
                s::exec::put(rec!(ids.exec), filename.as_bytes(), u64::from(*old_tid)).finish()
            }
            EventKind::Exit { group_dead } => s::exit::put(rec!(ids.exit), *group_dead).finish(),
            EventKind::Comm { comm, exec } => s::comm::put(rec!(ids.comm), comm.as_bytes(), *exec).finish(),
            EventKind::Mmap {
                addr,
                len,
                pgoff,
                prot,
                flags,
                filename,
                build_id,
                inode,
            } => s::mmap::put(
                rec!(ids.mmap),
                *addr,
                *len,
                *pgoff,
                u64::from(*prot),
                u64::from(*flags),
                filename.as_bytes(),
                build_id,
                *inode,
            )
            .finish(),
            EventKind::Lost { count } => s::lost::put(rec!(ids.lost), *count).finish(),
            EventKind::Switch { out, preempt } => s::switch::put(rec!(ids.switch), *out, *preempt).finish(),
            EventKind::Sample {
                trigger,
                kernel,
                user,
                regs,
                stack,
            } => s::sample::put(
                w.record(ids.sample, ev.ts, Some(ev.cpu), ev.pid, ev.tid),
                trigger.as_bytes(),
                kernel,
                user,
                regs,
                stack,
            )
            .finish(),
        }
    }

    /// Declares (once) a trace schema for each event a process announced.
    /// Returns what it refused, and why (its records are then counted as
    /// not written).
    pub fn probe_events(&mut self, info: &ProcessInfo) -> Vec<String> {
        self.probe.declare(&mut self.w, info)
    }

    /// A drained weft-probe record, encoded from the collector's copy.
    /// False if its event has no schema yet.
    #[inline]
    pub fn probe_record(&mut self, r: &ProbeRecord<'_>) -> bool {
        let Some(id) = self.probe.get(r.process, r.event) else {
            return false;
        };
        let mut b = Some(self.w.record(id, r.ts, None, r.pid, r.tid));
        r.for_each_value(|v| {
            b = b.take().map(|b| match v {
                ValueRef::U(x) => b.u64(x),
                ValueRef::I(x) => b.i64(x),
                ValueRef::F(x) => b.f64(x),
                ValueRef::B(x) => b.bool(x),
                ValueRef::Str(x) | ValueRef::Bytes(x) => b.bytes(x),
            });
        });
        if let Some(b) = b {
            b.finish();
        }
        true
    }

    /// The probe chunk's records area, for a run to be copied straight into.
    pub fn probe_records(&mut self, max: usize) -> &mut Vec<u8> {
        self.w.probe_records(max)
    }

    /// A run of weft-probe records, stored as the program wrote them (a
    /// probe chunk, docs/format.md §5.5): `bytes` holds them, or, if None,
    /// they are the last `len` bytes appended through `probe_records`.
    /// False, and nothing kept, if one of its events has no schema yet
    /// (appended bytes are then taken back and returned in `Err`).
    pub fn probe_run(&mut self, run: &ProbeRun<'_>) -> Result<(), Option<Vec<u8>>> {
        let mut map = Vec::with_capacity(run.events.len());
        for &(event, _) in run.events {
            let Some(id) = self.probe.get(run.process, event) else {
                return Err(match run.records {
                    RunBytes::InSink(len) => Some(self.w.probe_unappend(len)),
                    RunBytes::Here(_) => None,
                });
            };
            map.push((event, id));
        }
        let info = ProbeRunInfo {
            pid: run.pid,
            tid: run.tid,
            clock: ProbeClock {
                tick0: run.line.tick0,
                mono0: run.line.mono0,
                slope: run.line.slope,
            },
            map: &map,
            count: run.count,
            min_ts: run.min_ts,
            max_ts: run.max_ts,
        };
        match run.records {
            RunBytes::Here(bytes) => self.w.probe_run(&info, bytes),
            RunBytes::InSink(len) => self.w.probe_run_added(&info, len),
        }
        Ok(())
    }

    /// A weft-probe record held back as an owned copy. False if its event
    /// still has no schema.
    pub fn probe_event(&mut self, ev: &ProbeEvent) -> bool {
        let Some(id) = self.probe.get(ev.process, ev.event) else {
            return false;
        };
        let mut r = self.w.record(id, ev.ts, None, ev.pid, ev.tid);
        for v in &ev.values {
            r = match v {
                Value::U(x) => r.u64(*x),
                Value::I(x) => r.i64(*x),
                Value::F(x) => r.f64(*x),
                Value::B(x) => r.bool(*x),
                Value::Str(b) | Value::Bytes(b) => r.bytes(b),
            };
        }
        r.finish();
        true
    }

    pub fn probe_attach(&mut self, ts: u64, pid: u32, events: u64, enabled: u32, session: u32, user_events: bool) {
        let b = self.w.record(self.ids.probe_attach, ts, None, pid, pid);
        s::probe_attach::put(b, events, u64::from(enabled), u64::from(session), user_events).finish();
    }

    /// A vfork window of thread `tid` (see `kernel:vfork`), from `ts` to `end`.
    pub fn vfork(&mut self, ts: u64, pid: u32, tid: u32, child: u32, end: u64) {
        let b = self.w.record(self.ids.vfork, ts, None, pid, tid);
        s::vfork::put(b, u64::from(child), end).finish();
    }

    pub fn probe_damage(&mut self, ts: u64, d: &Damage) {
        let b = self.w.record(self.ids.probe_damage, ts, None, d.pid, d.tid);
        s::probe_damage::put(
            b,
            u64::from(d.slot),
            d.gen,
            d.after_seq.map_or(-1, |s| s as i64),
            d.offset,
            d.what.as_bytes(),
        )
        .finish();
    }

    pub fn probe_stats(&mut self, ts: u64, pid: u32, t: &ThreadStats, no_slot: u64) {
        let b = self.w.record(self.ids.probe_stats, ts, None, pid, t.tid);
        s::probe_stats::put(
            b,
            u64::from(t.slot),
            t.attempted,
            t.committed,
            t.lost_full,
            t.lost_busy,
            t.received,
            t.abandoned,
            t.damaged,
            t.overwritten,
            no_slot,
            t.suspect.as_deref().unwrap_or_default().as_bytes(),
        )
        .finish();
    }

    pub fn probe_missed(&mut self, ts: u64, pid: u32, why: &str) {
        let b = self.w.record(self.ids.probe_missed, ts, None, pid, pid);
        s::probe_missed::put(b, why.as_bytes()).finish();
    }

    pub fn jit_map(&mut self, ts: u64, pid: u32, text: &[u8]) {
        let b = self.w.record(self.ids.jit_map, ts, None, pid, pid);
        s::jit_map::put(b, text).finish();
    }

    pub fn kernel_symbols(&mut self, ts: u64, addrs: &[u64], names: &[u8]) {
        let b = self.w.record(self.ids.kernel_symbols, ts, None, 0, 0);
        s::kernel_symbols::put(b, addrs, names).finish();
    }
}

/// Distinct probe event schemas one recording declares at most: a program
/// announcing ever new events must not grow the file's metadata (or the
/// recorder's memory) without bound.
const MAX_PROBE_SCHEMAS: usize = 16384;

/// Trace schemas of probe events, shared across processes by name and
/// fields, and which one each process's event id uses.
#[derive(Default)]
struct ProbeSchemas {
    by_shape: HashMap<(String, Vec<(String, u8)>), SchemaId>,
    ids: HashMap<(u32, u32), SchemaId>,
    /// The last lookup: runs of one event skip the map.
    last: Option<((u32, u32), SchemaId)>,
}

impl ProbeSchemas {
    fn declare(&mut self, w: &mut TraceWriter<File>, info: &ProcessInfo) -> Vec<String> {
        let mut refused = Vec::new();
        for e in &info.events {
            let name = format!("{}:{}", e.provider, e.name);
            // A program must not pass its records off as the recorder's own.
            if e.provider == "kernel" || s::NAMES.contains(&name.as_str()) {
                refused.push(format!(
                    "PID {}: event `{name}` has a name weft reserves; its records are left out",
                    info.pid
                ));
                continue;
            }
            let key = (name.clone(), e.fields.clone());
            let id = match self.by_shape.get(&key) {
                Some(&id) => id,
                None if self.by_shape.len() >= MAX_PROBE_SCHEMAS => {
                    refused.push(format!(
                        "PID {}: event `{name}` is past the {MAX_PROBE_SCHEMAS} event schemas one recording declares; its records are left out",
                        info.pid
                    ));
                    continue;
                }
                None => {
                    // Probe field types only; an unknown code is kept as bytes
                    // (the collector rejects such records as damage).
                    let fields: Vec<(&str, FieldType)> = e
                        .fields
                        .iter()
                        .map(|(n, t)| (n.as_str(), FieldType::from_u8(*t).unwrap_or(FieldType::Bytes)))
                        .collect();
                    let id = w.add_schema(Schema::new(&name, &fields));
                    self.by_shape.insert(key, id);
                    id
                }
            };
            self.ids.insert((info.pid, e.id), id);
        }
        self.last = None;
        refused
    }

    #[inline]
    fn get(&mut self, pid: u32, event: u32) -> Option<SchemaId> {
        let key = (pid, event);
        match self.last {
            Some((k, id)) if k == key => Some(id),
            _ => {
                let id = self.ids.get(&key).copied()?;
                self.last = Some((key, id));
                Some(id)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_probe_collect::EventDesc;

    /// A program cannot pass its records off as the recorder's own: events
    /// named like a standard schema are refused, and readers take the first
    /// schema of a name anyway.
    #[test]
    fn reserved_event_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.weft");
        let w = TraceWriter::new(File::create(&path).unwrap(), &[], 1).unwrap();
        let mut enc = Encoder::new(w, &SyscallTable::default());
        let ev = |id, provider: &str, name: &str| EventDesc {
            id,
            provider: provider.into(),
            name: name.into(),
            fields: vec![("x".into(), 4)],
        };
        let info = ProcessInfo {
            pid: 7,
            start_time: 0,
            comm: "p".into(),
            sessions: 1,
            user_events: false,
            events: vec![
                ev(0, "kernel", "exit"),
                ev(1, "weft", "probe_missed"),
                ev(2, "kernel", "anything"),
                ev(3, "app", "ok"),
            ],
        };
        let refused = enc.probe_events(&info);
        assert_eq!(refused.len(), 3, "{refused:?}");
        assert!(enc.probe.get(7, 3).is_some());
        assert!(enc.probe.get(7, 0).is_none());
        enc.w.finish(&[]).unwrap();
        let t = weft_format::Trace::open(&path).unwrap();
        let exit = t.schema_by_name(s::EXIT).unwrap();
        assert_eq!(exit.fields[0].name, "group_dead");
    }
}
