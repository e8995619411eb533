//! Opening a trace for any command that reads one, and saying up front
//! what was damaged or cut short.

use anyhow::{Context, Result};
use weft_format::Trace;

pub fn open(path: &std::path::Path) -> Result<Trace> {
    // The common mistakes, said in what-to-do terms rather than as errnos.
    match std::fs::File::open(path).and_then(|f| f.metadata()) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "no such file: {} (check the path; `weft record -o FILE -- CMD` writes a trace)",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => anyhow::bail!(
            "permission denied reading {} (a trace is readable by who recorded it: run as that user, or as root)",
            path.display()
        ),
        Ok(m) if m.is_dir() => anyhow::bail!("{} is a directory, not a trace file", path.display()),
        _ => {}
    }
    let t = Trace::open(path).with_context(|| format!("cannot read trace {}", path.display()))?;
    Ok(t)
}

/// Warnings about damage, printed before the output so they are not missed.
pub fn warn_damage(t: &Trace) {
    if t.truncated {
        eprintln!(
            "weft: warning: the trace was cut short (the recorder killed, or the file cut); reading the {} complete chunks ({} of {} bytes)",
            t.chunks.len(),
            t.recovered_bytes(),
            t.len
        );
    }
    for p in t
        .problems
        .iter()
        .filter(|p| !matches!(p.error, weft_format::FormatError::Truncated { .. }))
    {
        eprintln!("weft: warning: {} ({} bytes skipped)", p.error, p.skipped_bytes);
    }
}

/// CLOCK_MONOTONIC when recording began (what printed times count from),
/// or 0 for files that do not say.
pub fn start_ns(t: &Trace) -> u64 {
    t.info(weft_format::info_keys::START_MONOTONIC_NS)
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0)
}

/// Says how fast a command read the trace and how much memory it took:
/// `weft: stats read 10000079 events in 1.42 s (7.0 M events/s), peak memory 58 MiB`.
/// Each pass reads every record, so the count is the file's.
pub fn report_pass(what: &str, t: &Trace, started: std::time::Instant) {
    let events: u64 = t.event_chunks().map(|c| u64::from(c.header.records)).sum();
    let secs = started.elapsed().as_secs_f64();
    let rate = if secs > 0.0 { events as f64 / secs / 1e6 } else { 0.0 };
    eprintln!(
        "weft: {what} read {events} events in {secs:.2} s ({rate:.1} M events/s), peak memory {} MiB",
        peak_rss_kib() / 1024
    );
}

/// The process's peak resident memory (getrusage's ru_maxrss), in KiB.
fn peak_rss_kib() -> u64 {
    // SAFETY: getrusage writes only into the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_SELF is always valid.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0;
    }
    u64::try_from(ru.ru_maxrss).unwrap_or(0)
}
