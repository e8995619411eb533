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

use std::collections::BTreeMap;
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

/// speedscope's file format (<https://www.speedscope.app>): the frames
/// shared, one sampled profile per thread.
pub fn speedscope(p: &Profile, name: &str, exporter: &str, out: impl Write) -> Result<(), ExportError> {
    let frames: Vec<serde_json::Value> = p
        .frames
        .iter()
        .map(|f| {
            let mut o = serde_json::json!({ "name": f.label() });
            if let Some(file) = &f.file {
                o["file"] = serde_json::Value::from(file.clone());
            }
            if let Some(line) = f.line {
                o["line"] = serde_json::Value::from(line);
            }
            o
        })
        .collect();
    let mut by_thread: BTreeMap<(u32, u32), (String, Vec<&Stack>)> = BTreeMap::new();
    for s in &p.stacks {
        by_thread
            .entry((s.pid, s.tid))
            .or_insert_with(|| (s.comm.clone(), Vec::new()))
            .1
            .push(s);
    }
    let profiles: Vec<serde_json::Value> = by_thread
        .into_iter()
        .map(|((pid, tid), (comm, stacks))| {
            let total: u64 = stacks.iter().map(|s| s.count).sum();
            serde_json::json!({
                "type": "sampled",
                "name": format!("{comm} (pid {pid}, tid {tid})"),
                "unit": "none",
                "startValue": 0,
                "endValue": total,
                "samples": stacks.iter().map(|s| s.frames.clone()).collect::<Vec<_>>(),
                "weights": stacks.iter().map(|s| s.count).collect::<Vec<_>>(),
            })
        })
        .collect();
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
        speedscope(&profile(), "t", "weft test", &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["shared"]["frames"].as_array().unwrap().len(), 3);
        assert_eq!(v["profiles"][0]["endValue"], 6);
    }
}
