//! `weft dump`: the timeline, one line per event.

use std::io::{BufWriter, ErrorKind, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use weft_analysis::{secs, Filter, Timeline};
use weft_format::info_keys;

use crate::input::{open, warn_damage};
use crate::{DumpArgs, TimeFormat};

pub fn run(args: DumpArgs) -> Result<ExitCode> {
    let trace = open(&args.file)?;
    warn_damage(&trace);
    let filter = Filter::new(args.pid, args.tid, &args.event, &args.comm)?;
    let mut tl = Timeline::new(&trace, filter).fd_paths(args.fd_paths);
    let start = trace
        .info(info_keys::START_MONOTONIC_NS)
        .and_then(|s| s.parse::<u64>().ok());
    let mut base: Option<u64> = start;
    // CLOCK_REALTIME at start_monotonic_ns: wall time of any event.
    let realtime = trace
        .info(info_keys::START_REALTIME_NS)
        .and_then(|s| s.parse::<u64>().ok())
        .zip(start);
    if args.time == TimeFormat::Absolute && realtime.is_none() {
        anyhow::bail!("this trace has no wall-clock anchor (start_realtime_ns); use --time relative");
    }
    let mut prev: Option<u64> = None;
    let mut seen = std::collections::HashSet::new();
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let res: std::io::Result<()> = (|| {
        // Damage found when the file was opened (chunks skipped whole): said
        // in the output too, before the events, not only on stderr.
        for p in trace
            .problems
            .iter()
            .filter(|p| !matches!(p.error, weft_format::FormatError::Truncated { .. }))
        {
            writeln!(
                out,
                "{:>16} {:>7}/{:<7} {:<16} *** DAMAGED: {} ({} bytes skipped); the events they held are missing ***",
                "?", 0, 0, "", p.error, p.skipped_bytes
            )?;
        }
        if trace.truncated {
            writeln!(
                out,
                "{:>16} {:>7}/{:<7} {:<16} *** TRUNCATED: the recorder stopped mid-write; events after the last complete chunk are missing ***",
                "?", 0, 0, ""
            )?;
        }
        for line in tl.by_ref() {
            let b = *base.get_or_insert(line.ts);
            let time = match args.time {
                TimeFormat::Relative => secs(line.ts.saturating_sub(b)),
                TimeFormat::Delta => secs(line.ts.saturating_sub(prev.unwrap_or(line.ts))),
                TimeFormat::Absolute => {
                    let (real, mono) = realtime.unwrap_or_default();
                    time_of_day(real.saturating_add_signed(line.ts as i64 - mono as i64))
                }
            };
            prev = Some(line.ts);
            if !args.event.is_empty() && !seen.contains(&line.event) {
                seen.insert(line.event.clone());
            }
            writeln!(out, "{}", Shown(&time, &line))?;
        }
        out.flush()
    })();
    match res {
        Err(e) if e.kind() == ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        r => r.context("cannot write the output")?,
    }
    for p in &tl.problems {
        eprintln!("weft: warning: {p}");
    }
    for pattern in args
        .event
        .iter()
        .flat_map(|e| e.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let Ok(glob) = globset::Glob::new(pattern) else {
            continue;
        };
        let m = glob.compile_matcher();
        if !seen.iter().any(|e| m.is_match(e)) {
            eprintln!(
                "weft: warning: --event `{pattern}` matched nothing in this trace (events are syscall names such as openat, \
                 fork, exec, exit, comm, map, signal_generate, signal_deliver, lost, and weft-probe provider:event names; \
                 `weft info` lists what the trace holds)"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `HH:MM:SS.uuuuuu` of the day in UTC (strace -tt prints local time).
fn time_of_day(realtime_ns: u64) -> String {
    let (clock, sub) = crate::units::clock_of_day(realtime_ns);
    format!("{clock}.{:06}", sub / 1000)
}

/// One timeline line as dump prints it (and the live view, and crash
/// reports): time, pid/tid, thread name, text.
pub struct Shown<'a>(pub &'a str, pub &'a weft_analysis::Line);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let l = self.1;
        write!(f, "{:>16} {:>7}/{:<7} {:<16} {}", self.0, l.pid, l.tid, l.comm, l.text)
    }
}
