//! A weft trace as Parquet tables, one file per table, for engines that
//! query many traces at once (DuckDB, Spark, Trino): `syscalls`, `events`,
//! `samples`, `processes`, `probe_events`. Every table has a `host` column
//! (the recording machine), so the files of many hosts can be read as one
//! table. Rows are written in batches as the trace streams, so memory stays
//! bounded by a row group, not by the trace. Columns are documented in
//! docs/format.md §16.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::ArrayBuilder;
use arrow_array::builder::{Int64Builder, ListBuilder, StringBuilder, UInt32Builder, UInt64Builder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use weft_analysis::profile::Profile;
use weft_analysis::{format_call_args, names, show_value, summarize, Kind, Kinds};
use weft_format::{info_keys, std_schemas as s, Record, Trace, Value};

use crate::ExportError;

/// Rows per batch handed to the writer.
const BATCH: usize = 65_536;

/// Rows written per table.
#[derive(Debug, Default)]
pub struct ParquetSummary {
    pub tables: Vec<(String, u64)>,
}

fn writer(dir: &Path, name: &str, schema: &Arc<Schema>) -> Result<ArrowWriter<File>, ExportError> {
    let f = crate::create_private(&dir.join(format!("{name}.parquet")))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).map_err(pq)?))
        .set_max_row_group_row_count(Some(BATCH * 4))
        .build();
    ArrowWriter::try_new(f, schema.clone(), Some(props)).map_err(pq)
}

fn pq(e: impl std::fmt::Display) -> ExportError {
    ExportError::Parquet(e.to_string())
}

fn json(schema: &weft_format::Schema, r: &Record) -> String {
    let mut m = serde_json::Map::new();
    for (f, v) in schema.fields.iter().zip(&r.fields) {
        let j = match v {
            Value::U64(x) => serde_json::json!(x),
            Value::I64(x) => serde_json::json!(x),
            Value::F64(x) => serde_json::json!(x),
            Value::Bool(b) => serde_json::json!(b),
            Value::Str(t) => serde_json::json!(t),
            Value::U64s(a) => serde_json::json!(a),
            other => serde_json::json!(show_value(other)),
        };
        m.insert(f.name.clone(), j);
    }
    serde_json::Value::Object(m).to_string()
}

/// A table being written: its builders, flushed every `BATCH` rows.
struct Table {
    name: &'static str,
    schema: Arc<Schema>,
    w: ArrowWriter<File>,
    rows: u64,
}

impl Table {
    fn new(dir: &Path, name: &'static str, fields: Vec<Field>) -> Result<Table, ExportError> {
        let schema = Arc::new(Schema::new(fields));
        Ok(Table {
            name,
            w: writer(dir, name, &schema)?,
            schema,
            rows: 0,
        })
    }

    fn write(&mut self, cols: Vec<ArrayRef>) -> Result<(), ExportError> {
        let batch = RecordBatch::try_new(self.schema.clone(), cols).map_err(pq)?;
        self.rows += batch.num_rows() as u64;
        self.w.write(&batch).map_err(pq)
    }

    fn close(self) -> Result<(String, u64), ExportError> {
        self.w.close().map_err(pq)?;
        Ok((self.name.to_owned(), self.rows))
    }
}

fn f(name: &str, t: DataType, nullable: bool) -> Field {
    Field::new(name, t, nullable)
}

/// Common leading columns: host, ts_ns, pid, tid, comm.
struct Head {
    host: StringBuilder,
    ts: UInt64Builder,
    pid: UInt32Builder,
    tid: UInt32Builder,
    comm: StringBuilder,
}

impl Head {
    fn new() -> Head {
        Head {
            host: StringBuilder::new(),
            ts: UInt64Builder::new(),
            pid: UInt32Builder::new(),
            tid: UInt32Builder::new(),
            comm: StringBuilder::new(),
        }
    }

    fn fields() -> Vec<Field> {
        vec![
            f("host", DataType::Utf8, false),
            f("ts_ns", DataType::UInt64, false),
            f("pid", DataType::UInt32, false),
            f("tid", DataType::UInt32, false),
            f("comm", DataType::Utf8, false),
        ]
    }

    fn push(&mut self, host: &str, ts: u64, pid: u32, tid: u32, comm: &str) {
        self.host.append_value(host);
        self.ts.append_value(ts);
        self.pid.append_value(pid);
        self.tid.append_value(tid);
        self.comm.append_value(comm);
    }

    fn finish(&mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.host.finish()),
            Arc::new(self.ts.finish()),
            Arc::new(self.pid.finish()),
            Arc::new(self.tid.finish()),
            Arc::new(self.comm.finish()),
        ]
    }

    fn len(&self) -> usize {
        self.ts.len()
    }
}

struct Syscalls {
    head: Head,
    name: StringBuilder,
    args: StringBuilder,
    ret: Int64Builder,
    errno: StringBuilder,
    duration: UInt64Builder,
}

impl Syscalls {
    fn fields() -> Vec<Field> {
        let mut v = Head::fields();
        v.extend([
            f("name", DataType::Utf8, false),
            f("args", DataType::Utf8, false),
            f("ret", DataType::Int64, true),
            f("errno", DataType::Utf8, true),
            f("duration_ns", DataType::UInt64, true),
        ]);
        v
    }

    fn finish(&mut self) -> Vec<ArrayRef> {
        let mut v = self.head.finish();
        v.push(Arc::new(self.name.finish()));
        v.push(Arc::new(self.args.finish()));
        v.push(Arc::new(self.ret.finish()));
        v.push(Arc::new(self.errno.finish()));
        v.push(Arc::new(self.duration.finish()));
        v
    }
}

/// Rows of (name, fields as JSON): `events` and `probe_events`.
struct Named {
    head: Head,
    name: StringBuilder,
    fields: StringBuilder,
}

impl Named {
    fn new() -> Named {
        Named {
            head: Head::new(),
            name: StringBuilder::new(),
            fields: StringBuilder::new(),
        }
    }

    fn schema() -> Vec<Field> {
        let mut v = Head::fields();
        v.extend([f("name", DataType::Utf8, false), f("fields", DataType::Utf8, false)]);
        v
    }

    fn finish(&mut self) -> Vec<ArrayRef> {
        let mut v = self.head.finish();
        v.push(Arc::new(self.name.finish()));
        v.push(Arc::new(self.fields.finish()));
        v
    }
}

struct Open {
    ts: u64,
    pid: u32,
    name: String,
    args: String,
}

/// Writes the tables of `trace` (and the CPU samples of `profile`, built
/// with `ProfileOptions::times`) into `dir`, which must exist.
pub fn parquet(trace: &Trace, profile: Option<&Profile>, dir: &Path) -> Result<ParquetSummary, ExportError> {
    let host = trace.info(info_keys::HOSTNAME).unwrap_or("").to_owned();
    let kinds = Kinds::of(trace);
    let mut t_sys = Table::new(dir, "syscalls", Syscalls::fields())?;
    let mut t_ev = Table::new(dir, "events", Named::schema())?;
    let mut t_probe = Table::new(dir, "probe_events", Named::schema())?;
    let mut sys = Syscalls {
        head: Head::new(),
        name: StringBuilder::new(),
        args: StringBuilder::new(),
        ret: Int64Builder::new(),
        errno: StringBuilder::new(),
        duration: UInt64Builder::new(),
    };
    let mut ev = Named::new();
    let mut probe = Named::new();
    let mut open: HashMap<u32, Open> = HashMap::new();
    let mut comms: HashMap<u32, String> = HashMap::new();
    let syscall_name = |nr: u32| trace.syscalls.name(nr);
    // A syscall row: at its return, or unfinished (ret, errno and duration null).
    let row = |sys: &mut Syscalls, comms: &HashMap<u32, String>, tid: u32, o: Open, ret: Option<(u64, i64)>| {
        let comm = comms.get(&tid).map_or("", String::as_str);
        sys.head.push(&host, o.ts, o.pid, tid, comm);
        sys.name.append_value(&o.name);
        sys.args.append_value(&o.args);
        match ret {
            Some((ts, r)) => {
                sys.ret.append_value(r);
                if (-4095..0).contains(&r) {
                    sys.errno.append_value(names::errno_name(-r));
                } else {
                    sys.errno.append_null();
                }
                sys.duration.append_value(ts.saturating_sub(o.ts));
            }
            None => {
                sys.ret.append_null();
                sys.errno.append_null();
                sys.duration.append_null();
            }
        }
    };
    let mut last_ts = 0u64;
    for r in trace.records() {
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                // Damage is a row too, where the reading met it.
                let err = serde_json::json!({ "error": e.to_string() }).to_string();
                ev.head.push(&host, last_ts, 0, 0, "");
                ev.name.append_value("weft:damage");
                ev.fields.append_value(&err);
                continue;
            }
        };
        last_ts = r.ts;
        let kind = kinds.kind(&r);
        match kind {
            Kind::SyscallEnter => {
                let nr = r.u64(s::syscall_enter::NR) as u32;
                let args = r.u64s(s::syscall_enter::ARGS).to_vec();
                let o = Open {
                    ts: r.ts,
                    pid: r.pid,
                    name: syscall_name(nr),
                    args: format_call_args(trace.syscalls.get(nr), &args, r.bytes(s::syscall_enter::DATA), &[]),
                };
                if let Some(old) = open.insert(r.tid, o) {
                    row(&mut sys, &comms, r.tid, old, None);
                }
            }
            Kind::SyscallExit => {
                if let Some(o) = open.remove(&r.tid) {
                    row(&mut sys, &comms, r.tid, o, Some((r.ts, r.i64(s::syscall_exit::RET))));
                }
            }
            _ => {}
        }
        if kind == Kind::Comm {
            comms.insert(r.tid, r.str(s::comm::COMM).to_owned());
        }
        if kind == Kind::Fork {
            weft_analysis::inherit_comm(&mut comms, r.u64(s::fork::PARENT_TID) as u32, r.tid);
        }
        if kind == Kind::Exit {
            if let Some(o) = open.remove(&r.tid) {
                row(&mut sys, &comms, r.tid, o, None);
            }
        }
        // Every record, decoded, in `events`; weft-probe events also in `probe_events`.
        if let Some(schema) = trace.schema(r.schema) {
            if schema.name == s::SAMPLE || schema.name == s::JIT_MAP || schema.name == s::KERNEL_SYMBOLS {
                // Raw stacks and symbol tables: `samples` has them symbolized.
            } else {
                let comm = comms.get(&r.tid).map_or("", String::as_str);
                let fields = json(schema, &r);
                ev.head.push(&host, r.ts, r.pid, r.tid, comm);
                ev.name.append_value(&schema.name);
                ev.fields.append_value(&fields);
                if !s::NAMES.contains(&schema.name.as_str()) {
                    probe.head.push(&host, r.ts, r.pid, r.tid, comm);
                    probe.name.append_value(&schema.name);
                    probe.fields.append_value(&fields);
                }
            }
        }
        if sys.head.len() >= BATCH {
            t_sys.write(sys.finish())?;
        }
        if ev.head.len() >= BATCH {
            t_ev.write(ev.finish())?;
        }
        if probe.head.len() >= BATCH {
            t_probe.write(probe.finish())?;
        }
    }
    for (tid, o) in open.drain() {
        row(&mut sys, &comms, tid, o, None);
    }
    t_sys.write(sys.finish())?;
    t_ev.write(ev.finish())?;
    t_probe.write(probe.finish())?;
    let mut sum = ParquetSummary::default();
    sum.tables.push(t_sys.close()?);
    sum.tables.push(t_ev.close()?);
    sum.tables.push(t_probe.close()?);

    // samples: one row per CPU sample, its stack root first.
    let mut fields = Head::fields();
    fields.push(f(
        "stack",
        DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
        false,
    ));
    let mut t = Table::new(dir, "samples", fields)?;
    let mut head = Head::new();
    let mut stack = ListBuilder::new(StringBuilder::new());
    if let Some(p) = profile {
        let labels: Vec<String> = p
            .frames
            .iter()
            .map(|f| format!("{} ({})", f.label(), f.module))
            .collect();
        for &(ts, i) in &p.timeline {
            let Some(st) = p.stacks.get(i) else { continue };
            head.push(&host, ts, st.pid, st.tid, &st.comm);
            for &fr in &st.frames {
                stack.values().append_value(labels.get(fr).map_or("?", String::as_str));
            }
            stack.append(true);
            if head.len() >= BATCH {
                let mut cols = head.finish();
                cols.push(Arc::new(stack.finish()));
                t.write(cols)?;
            }
        }
    }
    let mut cols = head.finish();
    cols.push(Arc::new(stack.finish()));
    t.write(cols)?;
    sum.tables.push(t.close()?);

    // processes: what `weft info` lists.
    let info = summarize(trace);
    let mut t = Table::new(
        dir,
        "processes",
        vec![
            f("host", DataType::Utf8, false),
            f("pid", DataType::UInt32, false),
            f("ppid", DataType::UInt32, true),
            f("comm", DataType::Utf8, false),
            f("first_ts_ns", DataType::UInt64, false),
            f("last_ts_ns", DataType::UInt64, false),
            f("threads", DataType::UInt32, false),
            f("syscalls", DataType::UInt64, false),
            f("exit", DataType::Utf8, true),
        ],
    )?;
    let (mut h, mut pid, mut ppid, mut comm) = (
        StringBuilder::new(),
        UInt32Builder::new(),
        UInt32Builder::new(),
        StringBuilder::new(),
    );
    let (mut first, mut last, mut threads, mut calls, mut exit) = (
        UInt64Builder::new(),
        UInt64Builder::new(),
        UInt32Builder::new(),
        UInt64Builder::new(),
        StringBuilder::new(),
    );
    for (&p, ps) in info.processes.iter().filter(|(&p, _)| p != 0) {
        h.append_value(&host);
        pid.append_value(p);
        ppid.append_option(ps.parent);
        comm.append_value(&ps.comm);
        first.append_value(ps.first_ts);
        last.append_value(ps.last_ts);
        threads.append_value(ps.threads.len() as u32);
        calls.append_value(ps.syscalls);
        exit.append_option(ps.exit.as_deref());
    }
    t.write(vec![
        Arc::new(h.finish()),
        Arc::new(pid.finish()),
        Arc::new(ppid.finish()),
        Arc::new(comm.finish()),
        Arc::new(first.finish()),
        Arc::new(last.finish()),
        Arc::new(threads.finish()),
        Arc::new(calls.finish()),
        Arc::new(exit.finish()),
    ])?;
    sum.tables.push(t.close()?);
    Ok(sum)
}
