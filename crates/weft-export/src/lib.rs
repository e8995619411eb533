//! Output formats for the viewers and tools people already use: folded
//! stacks (flamegraph.pl, inferno), flame graph SVG, speedscope JSON,
//! Perfetto traces, Chrome trace-event JSON, and Parquet tables.
//!
//! This crate owns only the shape of each format. Profile exports work from
//! the symbolized model `weft-analysis` builds (`Profile`); the timeline
//! export (Perfetto) also reads the trace's records, through `weft-format`
//! and `weft-analysis`'s renderings of arguments and names. Nothing here
//! reads the live system, and no export depends on another: each is a
//! function from those models to bytes. It writes to the `Write` (or, for
//! Parquet's several files, the directory) it is given and prints nothing.
//!
//! ```text
//!  Trace ─▶ weft-analysis::profile() ─▶ Profile ─┬─▶ folded()     ─▶ text
//!    │                                          ├─▶ flame_svg()  ─▶ SVG
//!    │                                          ├─▶ speedscope() ─▶ JSON
//!    └──────── records ─▶ timeline::walk() ─────┬─▶ perfetto()   ─▶ protobuf
//!    │                                          └─▶ chrome()     ─▶ JSON
//!    └──────── records (and Profile) ───────────────▶ parquet()    ─▶ tables
//! ```

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use thiserror::Error;
use weft_analysis::profile::{Profile, Stack};

mod chrome;
mod parquet;
mod perfetto;
mod timeline;
pub use chrome::chrome;
pub use parquet::{parquet, ParquetSummary};
pub use perfetto::perfetto;
pub use timeline::ExportSummary;

#[derive(Debug, Error)]
pub enum ExportError {
    #[error("cannot draw the flame graph: {0}")]
    Flame(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error("cannot write Parquet: {0}")]
    Parquet(String),
}

/// Creates (or truncates) an export file readable by its owner only, as
/// the trace it comes from is: both hold other programs' data (strings,
/// buffers, paths). A symbolic link at the path is refused, not followed.
pub fn create_private(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    // An existing file keeps its mode on open: make it private too.
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(f)
}

/// `comm;root;...;leaf count` lines, merged and sorted (the folded format
/// of flamegraph.pl and inferno); `reverse` writes each stack leaf first.
pub fn folded(p: &Profile, reverse: bool) -> Vec<String> {
    let mut merged: BTreeMap<String, u64> = BTreeMap::new();
    for s in &p.stacks {
        let mut l = s.comm.replace(';', ":");
        let order: Vec<usize> = if reverse {
            s.frames.iter().rev().copied().collect()
        } else {
            s.frames.clone()
        };
        for &f in &order {
            l.push(';');
            // A module without symbols is one tower, not one per address.
            l.push_str(&p.frames[f].function_label().replace(';', ":"));
        }
        *merged.entry(l).or_default() += s.count;
    }
    merged.into_iter().map(|(l, n)| format!("{l} {n}")).collect()
}

/// An interactive flame graph (icicle graph with `reverse`: callers below
/// their callees) as SVG.
pub fn flame_svg(p: &Profile, title: &str, reverse: bool, out: impl Write) -> Result<(), ExportError> {
    let lines = folded(p, false);
    let mut opts = inferno::flamegraph::Options::default();
    opts.title = title.to_owned();
    opts.count_name = "samples".into();
    opts.reverse_stack_order = reverse;
    if reverse {
        opts.direction = inferno::flamegraph::Direction::Inverted;
    }
    inferno::flamegraph::from_lines(&mut opts, lines.iter().map(String::as_str), out)
        .map_err(|e| ExportError::Flame(e.to_string()))
}

/// Where samples sit in time, for exports with a time axis.
#[derive(Debug, Clone, Copy)]
pub struct TimeAxis {
    /// CLOCK_MONOTONIC ns of the recording's start: times are written
    /// relative to it, as `weft dump` prints them.
    pub start_ns: u64,
    /// What one sample stands for (1 / sampling rate).
    pub interval_ns: u64,
}

/// speedscope's file format (<https://www.speedscope.app>): the frames
/// shared, one profile per thread. With `time` and the samples' times
/// (`Profile::timeline`), each thread's profile is `evented` in
/// nanoseconds since the recording's start, so speedscope's time-order view
/// shows when each stack ran and where the thread was off CPU; otherwise
/// (off-CPU and wall-clock profiles) it is `sampled`, weighted in samples
/// or, for those, microseconds.
pub fn speedscope(
    p: &Profile,
    name: &str,
    exporter: &str,
    time: Option<TimeAxis>,
    out: impl Write,
) -> Result<(), ExportError> {
    // One speedscope frame per function (unnamed code: per module), as the
    // flame graph groups them, so that one function is one tower.
    let mut index: HashMap<(String, &str), usize> = HashMap::new();
    let mut frames: Vec<serde_json::Value> = Vec::new();
    let mut lines: Vec<Option<u32>> = Vec::new();
    let map: Vec<usize> = p
        .frames
        .iter()
        .map(|f| {
            let key = (f.function_label(), f.module.as_str());
            let i = *index.entry(key).or_insert_with(|| {
                let mut o = serde_json::json!({ "name": f.function_label() });
                if let Some(file) = &f.file {
                    o["file"] = serde_json::Value::from(file.clone());
                }
                frames.push(o);
                lines.push(f.line);
                frames.len() - 1
            });
            // A line only when every merged frame has the same one.
            if lines[i] != f.line {
                lines[i] = None;
            }
            i
        })
        .collect();
    for (o, line) in frames.iter_mut().zip(&lines) {
        if let Some(l) = line {
            o["line"] = serde_json::Value::from(*l);
        }
    }
    let stacks: Vec<Vec<usize>> = p
        .stacks
        .iter()
        .map(|s| s.frames.iter().map(|&f| map[f]).collect())
        .collect();
    let profiles: Vec<serde_json::Value> = match time.filter(|_| !p.timeline.is_empty() && !p.off_cpu) {
        Some(axis) => evented(p, &stacks, axis),
        None => sampled(p, &stacks),
    };
    let doc = serde_json::json!({
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "shared": { "frames": frames },
        "profiles": profiles,
        "name": name,
        "activeProfileIndex": 0,
        "exporter": exporter,
    });
    serde_json::to_writer(out, &doc)?;
    Ok(())
}

fn thread_name(s: &Stack) -> String {
    format!("{} (pid {}, tid {})", s.comm, s.pid, s.tid)
}

/// A stack and its frames as speedscope frame indices.
type Remapped<'a> = (&'a Stack, &'a [usize]);

/// `stacks`: each of `p.stacks`' frames, as speedscope frame indices.
fn sampled(p: &Profile, stacks: &[Vec<usize>]) -> Vec<serde_json::Value> {
    let mut by_thread: BTreeMap<(u32, u32), Vec<Remapped>> = BTreeMap::new();
    for (s, f) in p.stacks.iter().zip(stacks) {
        by_thread.entry((s.pid, s.tid)).or_default().push((s, f));
    }
    let unit = if p.off_cpu { "microseconds" } else { "none" };
    by_thread
        .into_values()
        .map(|stacks| {
            let total: u64 = stacks.iter().map(|(s, _)| s.count).sum();
            serde_json::json!({
                "type": "sampled",
                "name": thread_name(stacks[0].0),
                "unit": unit,
                "startValue": 0,
                "endValue": total,
                "samples": stacks.iter().map(|(_, f)| f.to_vec()).collect::<Vec<_>>(),
                "weights": stacks.iter().map(|(s, _)| s.count).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// Each sample's stack holds until the thread's next sample if that comes
/// within one and a half intervals (timer jitter), or else for one
/// interval: a longer gap closes every frame (the thread was not running).
fn evented(p: &Profile, stacks: &[Vec<usize>], axis: TimeAxis) -> Vec<serde_json::Value> {
    let mut by_thread: BTreeMap<(u32, u32), Vec<(u64, usize)>> = BTreeMap::new();
    for &(ts, i) in &p.timeline {
        if let Some(s) = p.stacks.get(i) {
            by_thread.entry((s.pid, s.tid)).or_default().push((ts, i));
        }
    }
    let interval = axis.interval_ns.max(1);
    let rel = |ts: u64| ts.saturating_sub(axis.start_ns);
    by_thread
        .into_values()
        .map(|mut samples| {
            samples.sort_by_key(|&(ts, _)| ts);
            let mut events = Vec::new();
            let mut open: &[usize] = &[];
            let mut end = 0u64;
            let close = |events: &mut Vec<serde_json::Value>, frames: &[usize], at: u64| {
                for &f in frames.iter().rev() {
                    events.push(serde_json::json!({ "type": "C", "frame": f, "at": at }));
                }
            };
            for &(ts, i) in &samples {
                let at = rel(ts);
                let frames = stacks[i].as_slice();
                let contiguous = at <= end.saturating_add(interval / 2);
                let keep = if contiguous {
                    open.iter().zip(frames).take_while(|(a, b)| a == b).count()
                } else {
                    0
                };
                // A frame closes when the next stack starts, or at the end
                // of the last interval when the thread was not sampled since.
                close(&mut events, &open[keep..], if contiguous { at } else { end });
                for &f in &frames[keep..] {
                    events.push(serde_json::json!({ "type": "O", "frame": f, "at": at }));
                }
                open = frames;
                end = at.saturating_add(interval);
            }
            close(&mut events, open, end);
            let first = samples.first().map_or(0, |&(ts, _)| rel(ts));
            serde_json::json!({
                "type": "evented",
                "name": thread_name(&p.stacks[samples[0].1]),
                "unit": "nanoseconds",
                "startValue": first,
                "endValue": end,
                "events": events,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_symbols::Frame;

    fn frame(name: &str) -> Frame {
        Frame {
            function: Some(name.into()),
            module: "m".into(),
            offset: 0,
            file: None,
            line: None,
            inlined: false,
        }
    }

    fn profile() -> Profile {
        let stack = |frames: Vec<usize>, count| Stack {
            pid: 1,
            tid: 1,
            comm: "prog".into(),
            frames,
            count,
        };
        Profile {
            frames: vec![frame("main"), frame("work"), frame("a;b")],
            stacks: vec![stack(vec![0, 1], 3), stack(vec![0, 2], 1), stack(vec![0, 1], 2)],
            samples: 6,
            ..Default::default()
        }
    }

    #[test]
    fn folded_stacks_merge_and_escape_semicolons() {
        assert_eq!(folded(&profile(), false), vec!["prog;main;a:b 1", "prog;main;work 5"]);
        assert_eq!(folded(&profile(), true), vec!["prog;a:b;main 1", "prog;work;main 5"]);
    }

    #[test]
    fn speedscope_has_one_profile_per_thread_with_weights() {
        let mut out = Vec::new();
        speedscope(&profile(), "t", "weft test", None, &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["shared"]["frames"].as_array().unwrap().len(), 3);
        assert_eq!(v["profiles"][0]["endValue"], 6);
    }

    /// One speedscope frame per function: two lines of `work`, and two
    /// unnamed addresses of one module, merge.
    #[test]
    fn speedscope_merges_frames_of_one_function_and_unnamed_code_per_module() {
        let mut p = profile();
        let mut line2 = frame("work");
        line2.line = Some(2);
        let unnamed = |off| Frame {
            function: None,
            module: "/usr/lib/libx.so".into(),
            offset: off,
            file: None,
            line: None,
            inlined: false,
        };
        p.frames.extend([line2, unnamed(0x10), unnamed(0x20)]);
        p.stacks[1].frames = vec![0, 3, 4];
        p.stacks[2].frames = vec![0, 5];
        let mut out = Vec::new();
        speedscope(&p, "t", "weft test", None, &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let names: Vec<&str> = v["shared"]["frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["main", "work", "a;b", "[libx.so]"]);
        assert_eq!(
            v["profiles"][0]["samples"],
            serde_json::json!([[0, 1], [0, 1, 3], [0, 3]])
        );
    }

    /// Stacks [0,1] at 100 and 110, [0,2] at 124 (late, within jitter),
    /// then a gap, [0,1] at 500:
    /// frames open and close where the samples say, nested, and everything
    /// closes across the gap.
    #[test]
    fn speedscope_evented_puts_samples_on_a_time_axis() {
        let mut p = profile();
        p.timeline = vec![(1100, 0), (1110, 2), (1124, 1), (1500, 0)];
        let mut out = Vec::new();
        let axis = TimeAxis {
            start_ns: 1000,
            interval_ns: 10,
        };
        speedscope(&p, "t", "weft test", Some(axis), &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let prof = &v["profiles"][0];
        assert_eq!(prof["type"], "evented");
        assert_eq!(prof["unit"], "nanoseconds");
        assert_eq!(prof["startValue"], 100);
        assert_eq!(prof["endValue"], 510);
        let ev: Vec<(String, u64, u64)> = prof["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["type"].as_str().unwrap().to_owned(),
                    e["frame"].as_u64().unwrap(),
                    e["at"].as_u64().unwrap(),
                )
            })
            .collect();
        let want: Vec<(String, u64, u64)> = [
            ("O", 0, 100),
            ("O", 1, 100),
            ("C", 1, 124),
            ("O", 2, 124),
            ("C", 2, 134),
            ("C", 0, 134),
            ("O", 0, 500),
            ("O", 1, 500),
            ("C", 1, 510),
            ("C", 0, 510),
        ]
        .iter()
        .map(|&(t, f, a)| (t.to_owned(), f, a))
        .collect();
        assert_eq!(ev, want);
    }
}
