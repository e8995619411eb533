//! A weft trace as Chrome trace-event JSON (`{"traceEvents": [...]}`), for
//! chrome://tracing, Catapult and the tools that read only that format:
//! the same timeline as the Perfetto export (`crate::timeline`), with
//! syscalls as B/E pairs on their thread, weft-probe spans as async (b/e)
//! events, instants with their scope, and thread and process names as
//! metadata. Times are microseconds since the start of the recording. CPU
//! samples are not exported here (the format's sample support is thin):
//! use the Perfetto or speedscope export for them.

use std::io::Write;

use serde_json::{json, Map, Value as Json};
use weft_format::Trace;

use crate::timeline::{walk, Arg, Args, ExportSummary, Sink, Track};
use crate::ExportError;

struct Out<W: Write> {
    w: W,
    first: bool,
    start: u64,
}

fn args(a: Args) -> Json {
    let mut m = Map::new();
    for (k, v) in a {
        m.insert(
            k,
            match v {
                Arg::Str(s) => Json::String(s),
                Arg::U64(x) => json!(x),
                Arg::I64(x) => json!(x),
                Arg::F64(x) => json!(x),
                Arg::Bool(b) => json!(b),
            },
        );
    }
    Json::Object(m)
}

impl<W: Write> Out<W> {
    fn put(&mut self, ev: Json) -> Result<(), ExportError> {
        if !self.first {
            self.w.write_all(b",\n")?;
        }
        self.first = false;
        serde_json::to_writer(&mut self.w, &ev)?;
        Ok(())
    }

    fn us(&self, ts: u64) -> f64 {
        ts.saturating_sub(self.start) as f64 / 1000.0
    }

    fn ids(t: Track) -> (u32, u32) {
        match t {
            Track::Thread { pid, tid } | Track::Spans { pid, tid } => (pid, tid),
            Track::Global => (0, 0),
        }
    }
}

impl<W: Write> Sink for Out<W> {
    fn process(&mut self, pid: u32, name: &str) -> Result<(), ExportError> {
        self.put(json!({"ph": "M", "name": "process_name", "pid": pid, "tid": pid, "args": {"name": name}}))
    }

    fn thread(&mut self, pid: u32, tid: u32, name: &str) -> Result<(), ExportError> {
        self.put(json!({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": name}}))
    }

    fn spans(&mut self, _pid: u32, _tid: u32) -> Result<(), ExportError> {
        Ok(())
    }

    fn begin(&mut self, ts: u64, t: Track, name: String, a: Args) -> Result<(), ExportError> {
        let (pid, tid) = Self::ids(t);
        let ev = match t {
            // Async: spans need not nest with the thread's syscalls.
            Track::Spans { .. } => json!({"ph": "b", "cat": "weft-probe", "id": format!("{tid}"), "name": name,
                "ts": self.us(ts), "pid": pid, "tid": tid, "args": args(a)}),
            _ => {
                json!({"ph": "B", "cat": "syscall", "name": name, "ts": self.us(ts), "pid": pid, "tid": tid, "args": args(a)})
            }
        };
        self.put(ev)
    }

    fn end(&mut self, ts: u64, t: Track, a: Args) -> Result<(), ExportError> {
        let (pid, tid) = Self::ids(t);
        let ev = match t {
            Track::Spans { .. } => json!({"ph": "e", "cat": "weft-probe", "id": format!("{tid}"),
                "ts": self.us(ts), "pid": pid, "tid": tid, "args": args(a)}),
            _ => json!({"ph": "E", "ts": self.us(ts), "pid": pid, "tid": tid, "args": args(a)}),
        };
        self.put(ev)
    }

    fn instant(&mut self, ts: u64, t: Track, name: String, a: Args) -> Result<(), ExportError> {
        let (pid, tid) = Self::ids(t);
        let scope = if t == Track::Global { "g" } else { "t" };
        self.put(
            json!({"ph": "i", "s": scope, "name": name, "ts": self.us(ts), "pid": pid, "tid": tid, "args": args(a)}),
        )
    }
}

/// Writes `trace` as Chrome trace-event JSON.
pub fn chrome(trace: &Trace, mut w: impl Write) -> Result<ExportSummary, ExportError> {
    let start = trace
        .info(weft_format::info_keys::START_MONOTONIC_NS)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    w.write_all(b"{\"displayTimeUnit\": \"ns\", \"traceEvents\": [\n")?;
    let (mut out, mut sum) = walk(trace, Out { w, first: true, start })?;
    out.w.write_all(b"\n]}\n")?;
    out.w.flush()?;
    if let Some(e) = sum.left_out.get_mut(weft_format::std_schemas::SAMPLE) {
        e.1 = "CPU samples are not exported to Chrome JSON: use --format perfetto or speedscope";
    }
    Ok(sum)
}
