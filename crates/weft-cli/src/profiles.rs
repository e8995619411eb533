//! `weft report`, `weft flame`, `weft export`: CPU profiles (and stacks
//! taken with events) from a trace.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use weft_analysis::profile::{profile, Profile, ProfileOptions};
use weft_symbols::SearchOptions;

use crate::dump::{open, warn_damage};

/// What every profile command shares: which samples, and where symbols are.
#[derive(Args, Debug)]
pub struct ProfileArgs {
    /// Trace file to read.
    pub file: PathBuf,
    /// Only these processes.
    #[arg(short, long, value_delimiter = ',')]
    pub pid: Vec<u32>,
    /// Only these threads.
    #[arg(short, long, value_delimiter = ',')]
    pub tid: Vec<u32>,
    /// Only samples after this time since the start (e.g. 1.5s, 200ms).
    #[arg(long, value_parser = crate::units::parse_duration)]
    pub from: Option<std::time::Duration>,
    /// Only samples before this time since the start.
    #[arg(long, value_parser = crate::units::parse_duration)]
    pub to: Option<std::time::Duration>,
    /// Stacks of this trigger instead of CPU samples (an event given to `record --stack-on`).
    #[arg(long, value_name = "EVENT")]
    pub trigger: Option<String>,
    /// Extra directory with binaries or debug files (build-id layout, NAME.debug, or copies).
    #[arg(long = "symbols", value_name = "DIR")]
    pub symbols: Vec<PathBuf>,
    /// Do not read or write the symbol cache (FILE.symcache).
    #[arg(long)]
    pub no_cache: bool,
    /// Leave kernel frames out.
    #[arg(long)]
    pub user_only: bool,
}

fn build(args: &ProfileArgs) -> Result<Profile> {
    let trace = open(&args.file)?;
    warn_damage(&trace);
    let mut search = SearchOptions::from_env();
    search.symbol_dirs = args.symbols.clone();
    let mut archive = args.file.as_os_str().to_owned();
    archive.push(".d");
    let archive = PathBuf::from(archive);
    if archive.is_dir() {
        search.archive_dir = Some(archive);
    }
    let cache = (!args.no_cache).then(|| cache_path(&args.file));
    let opts = ProfileOptions {
        pids: args.pid.clone(),
        tids: args.tid.clone(),
        from_ns: args.from.map(|d| d.as_nanos() as u64),
        to_ns: args.to.map(|d| d.as_nanos() as u64),
        trigger: args.trigger.clone(),
        user_only: args.user_only,
    };
    let p = profile(&trace, &opts, search, cache);
    for e in &p.problems {
        eprintln!("weft: warning: {e}");
    }
    if p.samples == 0 {
        let what = args.trigger.as_deref().unwrap_or("cpu-clock");
        bail!(
            "no {what} samples in {} match: record with `weft record --sample -- CMD` (or --stack-on EVENT)",
            args.file.display()
        );
    }
    Ok(p)
}

fn cache_path(file: &Path) -> PathBuf {
    let mut p = file.as_os_str().to_owned();
    p.push(".symcache");
    PathBuf::from(p)
}

fn report_missing(p: &Profile) {
    for (module, n) in &p.notes {
        if n.frames == 0 && n.problem.is_empty() {
            continue;
        }
        eprintln!(
            "weft: {module}: {} ({} frames shown as module+offset)",
            if n.problem.is_empty() { "no symbols" } else { &n.problem },
            n.frames
        );
        if !n.looked.is_empty() {
            eprintln!("weft:   looked in: {}", n.looked.join(", "));
        }
    }
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    #[command(flatten)]
    pub common: ProfileArgs,
    /// How many functions to list.
    #[arg(short = 'n', long, default_value_t = 25)]
    pub top: usize,
    /// One table per thread instead of one for everything.
    #[arg(long)]
    pub per_thread: bool,
}

pub fn report(args: ReportArgs) -> Result<ExitCode> {
    let t0 = std::time::Instant::now();
    let p = build(&args.common)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} samples ({}), {} distinct stacks; {} symbol lookups, {} answered from cache (this run's or FILE.symcache); \
         built in {:.3} s (reading and unwinding {:.3} s, symbolizing {:.3} s)",
        p.samples,
        args.common.trigger.as_deref().unwrap_or("cpu-clock"),
        p.stacks.len(),
        p.lookups + p.cache_hits,
        p.cache_hits,
        t0.elapsed().as_secs_f64(),
        p.unwind_secs,
        p.symbolize_secs
    )?;
    let groups: Vec<(String, Vec<&weft_analysis::profile::Stack>)> = if args.per_thread {
        let mut g: std::collections::BTreeMap<(u32, u32), (String, Vec<&weft_analysis::profile::Stack>)> =
            Default::default();
        for s in &p.stacks {
            g.entry((s.pid, s.tid))
                .or_insert_with(|| (s.comm.clone(), Vec::new()))
                .1
                .push(s);
        }
        g.into_iter()
            .map(|((pid, tid), (comm, v))| (format!("{pid}/{tid} {comm}"), v))
            .collect()
    } else {
        vec![("all threads".into(), p.stacks.iter().collect())]
    };
    for (title, stacks) in groups {
        let total: u64 = stacks.iter().map(|s| s.count).sum();
        let mut selfc: HashMap<usize, u64> = HashMap::new();
        let mut totalc: HashMap<usize, u64> = HashMap::new();
        for s in &stacks {
            if let Some(&leaf) = s.frames.last() {
                *selfc.entry(leaf).or_default() += s.count;
            }
            // A function counts once per stack, however often it recurses.
            let mut seen = std::collections::HashSet::new();
            for &f in &s.frames {
                if seen.insert((p.frames[f].label(), &p.frames[f].module)) {
                    *totalc.entry(f).or_default() += s.count;
                }
            }
        }
        // One row per function (a function's lines and addresses together).
        // Its location is that of its busiest address, so that it does not
        // depend on hash order.
        let key = |f: usize| (p.frames[f].label(), p.frames[f].module.clone());
        let weight = |f: usize| {
            let fr = &p.frames[f];
            (
                selfc.get(&f).copied().unwrap_or(0),
                totalc.get(&f).copied().unwrap_or(0),
                std::cmp::Reverse((fr.file.clone(), fr.line, fr.offset)),
            )
        };
        let mut by_fn: HashMap<(String, String), (usize, u64, u64)> = HashMap::new();
        for &f in totalc.keys().chain(selfc.keys()) {
            let e = by_fn.entry(key(f)).or_insert((f, 0, 0));
            if weight(f) > weight(e.0) {
                e.0 = f;
            }
        }
        for (&f, &t) in &totalc {
            if let Some(e) = by_fn.get_mut(&key(f)) {
                e.2 += t;
            }
        }
        for (&f, &c) in &selfc {
            if let Some(e) = by_fn.get_mut(&key(f)) {
                e.1 += c;
            }
        }
        let mut rows: Vec<(usize, u64, u64)> = by_fn.into_values().map(|(f, sc, tc)| (f, sc, tc.min(total))).collect();
        let name = |f: usize| (p.frames[f].label(), p.frames[f].module.clone());
        rows.sort_by(|a, b| {
            b.1.cmp(&a.1)
                .then(b.2.cmp(&a.2))
                .then_with(|| name(a.0).cmp(&name(b.0)))
        });
        writeln!(out, "\n{title}: {total} samples; functions by self samples")?;
        print_rows(&mut out, &p, &rows, args.top, total)?;
        // Callers that never run code of their own have no self samples:
        // the second table shows who the time is spent under.
        rows.sort_by(|a, b| {
            b.2.cmp(&a.2)
                .then(b.1.cmp(&a.1))
                .then_with(|| name(a.0).cmp(&name(b.0)))
        });
        writeln!(out, "\n{title}: functions by total samples (self and callees)")?;
        print_rows(&mut out, &p, &rows, args.top, total)?;
    }
    report_missing(&p);
    Ok(ExitCode::SUCCESS)
}

fn print_rows(
    out: &mut impl Write,
    p: &weft_analysis::profile::Profile,
    rows: &[(usize, u64, u64)],
    top: usize,
    total: u64,
) -> std::io::Result<()> {
    writeln!(
        out,
        "{:>7} {:>7} {:>7} {:>7}  {:<40} LOCATION",
        "SELF%", "SELF", "TOTAL%", "TOTAL", "FUNCTION"
    )?;
    for &(f, sc, tc) in rows.iter().take(top) {
        let fr = &p.frames[f];
        let pct = |n: u64| 100.0 * n as f64 / total.max(1) as f64;
        let loc = fr.location().map(|l| format!("{l} ")).unwrap_or_default();
        let inl = if fr.inlined { " [inlined]" } else { "" };
        writeln!(
            out,
            "{:>6.1}% {sc:>7} {:>6.1}% {tc:>7}  {:<40} {loc}({}){inl}",
            pct(sc),
            pct(tc),
            fr.label(),
            fr.module
        )?;
    }
    Ok(())
}

/// `comm;root;...;leaf count` lines (the folded format of flamegraph.pl and inferno).
fn folded(p: &Profile, reverse: bool) -> Vec<String> {
    let mut merged: std::collections::BTreeMap<String, u64> = Default::default();
    for s in &p.stacks {
        let mut l = s.comm.replace(';', ":");
        let order: Vec<usize> = if reverse {
            s.frames.iter().rev().copied().collect()
        } else {
            s.frames.clone()
        };
        for &f in &order {
            l.push(';');
            l.push_str(&p.frames[f].label().replace(';', ":"));
        }
        *merged.entry(l).or_default() += s.count;
    }
    merged.into_iter().map(|(l, n)| format!("{l} {n}")).collect()
}

#[derive(Args, Debug)]
pub struct FlameArgs {
    #[command(flatten)]
    pub common: ProfileArgs,
    /// Output file (default flame.svg, or stdout with --folded).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Write folded stacks (text) instead of an SVG.
    #[arg(long)]
    pub folded: bool,
    /// Icicle graph: callers below their callees (inverted stacks).
    #[arg(long)]
    pub reverse: bool,
}

pub fn flame(args: FlameArgs) -> Result<ExitCode> {
    let p = build(&args.common)?;
    // The SVG inverts itself (icicle); folded text is written leaf first.
    let lines = folded(&p, args.reverse && args.folded);
    if args.folded {
        let text = lines.join("\n") + "\n";
        match &args.output {
            Some(o) => std::fs::write(o, text).with_context(|| format!("cannot write {}", o.display()))?,
            None => std::io::stdout().write_all(text.as_bytes())?,
        }
    } else {
        let path = args.output.clone().unwrap_or_else(|| PathBuf::from("flame.svg"));
        let mut opts = inferno::flamegraph::Options::default();
        opts.title = format!("weft: {}", args.common.file.display());
        opts.count_name = "samples".into();
        opts.reverse_stack_order = args.reverse;
        if args.reverse {
            opts.direction = inferno::flamegraph::Direction::Inverted;
        }
        let f = std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        inferno::flamegraph::from_lines(&mut opts, lines.iter().map(String::as_str), std::io::BufWriter::new(f))
            .map_err(|e| anyhow::anyhow!("cannot draw the flame graph: {e}"))?;
        eprintln!("weft: wrote {} ({} samples)", path.display(), p.samples);
    }
    report_missing(&p);
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Format {
    /// speedscope's file format (https://www.speedscope.app), one profile per thread.
    Speedscope,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub common: ProfileArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "speedscope")]
    pub format: Format,
    /// Output file (default: FILE.speedscope.json).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

pub fn export(args: ExportArgs) -> Result<ExitCode> {
    let p = build(&args.common)?;
    let path = args.output.clone().unwrap_or_else(|| {
        let mut s = args.common.file.as_os_str().to_owned();
        s.push(".speedscope.json");
        PathBuf::from(s)
    });
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
    let mut by_thread: std::collections::BTreeMap<(u32, u32), (String, Vec<&weft_analysis::profile::Stack>)> =
        Default::default();
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
        "name": args.common.file.display().to_string(),
        "activeProfileIndex": 0,
        "exporter": format!("weft {}", env!("CARGO_PKG_VERSION")),
    });
    std::fs::write(&path, serde_json::to_vec(&doc)?).with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!(
        "weft: wrote {} ({} samples); open it at https://www.speedscope.app or with `npx speedscope`",
        path.display(),
        p.samples
    );
    report_missing(&p);
    Ok(ExitCode::SUCCESS)
}
