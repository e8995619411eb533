//! `weft dump`: the timeline, one line per event.

use std::io::{BufWriter, ErrorKind, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use weft_analysis::{secs, Filter, Timeline};
use weft_format::info_keys;

use crate::input::{open, warn_damage};
use crate::DumpArgs;

pub fn run(args: DumpArgs) -> Result<ExitCode> {
    let trace = open(&args.file)?;
    warn_damage(&trace);
    let filter = Filter::new(args.pid, args.tid, &args.event, &args.comm)?;
    let mut tl = Timeline::new(&trace, filter);
    let start = trace
        .info(info_keys::START_MONOTONIC_NS)
        .and_then(|s| s.parse::<u64>().ok());
    let mut base: Option<u64> = start;
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
            let rel = line.ts.saturating_sub(b);
            writeln!(
                out,
                "{:>16} {:>7}/{:<7} {:<16} {}",
                secs(rel),
                line.pid,
                line.tid,
                line.comm,
                line.text
            )?;
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
    Ok(ExitCode::SUCCESS)
}
