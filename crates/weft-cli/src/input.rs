//! Opening a trace for any command that reads one, and saying up front
//! what was damaged or cut short.

use anyhow::{Context, Result};
use weft_format::Trace;

pub fn open(path: &std::path::Path) -> Result<Trace> {
    let t = Trace::open(path).with_context(|| format!("cannot read trace {}", path.display()))?;
    Ok(t)
}

/// Warnings about damage, printed before the output so they are not missed.
pub fn warn_damage(t: &Trace) {
    if t.truncated {
        eprintln!(
            "weft: warning: the trace was cut short (was the recorder killed?); reading the {} complete chunks ({} of {} bytes)",
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
