//! `weft report`, `weft flame`, `weft export`: CPU profiles (and stacks
//! taken with events) from a trace.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use weft_analysis::profile::{profile, Profile, ProfileOptions};
use weft_analysis::report::Row;
use weft_symbols::SearchOptions;

use crate::input::{open, start_ns, warn_damage};

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
    /// Time off CPU instead of CPU samples: where threads blocked, weighted by
    /// how long (microseconds) until they ran again (record with --off-cpu).
    #[arg(long, conflicts_with = "trigger")]
    pub off_cpu: bool,
    /// Wall-clock time: on-CPU samples and off-CPU time together, in microseconds
    /// (record with --sample --off-cpu); blocked stacks end in [off-CPU], and
    /// time spent preempted (runnable, waiting for a CPU) in [preempted].
    #[arg(long, conflicts_with_all = ["trigger", "off_cpu"])]
    pub wall: bool,
    /// Count inlined calls in the function they were inlined into (as
    /// `perf report --sort sym` does) instead of as functions of their own.
    #[arg(long)]
    pub no_inline: bool,
}

impl ProfileArgs {
    /// The user stacks a recording took with `trigger` (`--stack-on`), of
    /// these processes and threads (all when empty), each with its time.
    pub(crate) fn stacks_of(file: &Path, trigger: &str, pid: Vec<u32>, tid: Vec<u32>) -> ProfileArgs {
        ProfileArgs {
            file: file.to_owned(),
            pid,
            tid,
            from: None,
            to: None,
            trigger: Some(trigger.to_owned()),
            symbols: Vec::new(),
            no_cache: false,
            user_only: true,
            off_cpu: false,
            wall: false,
            no_inline: false,
        }
    }
}

fn build(args: &ProfileArgs) -> Result<Profile> {
    check_built(args, symbolized(args, false)?)
}

/// As `build`, with each sample's time (`Profile::timeline`).
fn build_timed(args: &ProfileArgs) -> Result<Profile> {
    check_built(args, symbolized(args, true)?)
}

fn check_built(args: &ProfileArgs, p: Profile) -> Result<Profile> {
    if p.samples == 0 && (args.off_cpu || args.wall) {
        bail!(
            "no off-CPU stacks in {} match: record with `weft record --off-cpu -- CMD`",
            args.file.display()
        );
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

/// The profile of `args.file` (no samples: an empty one), with each
/// sample's time when `times`.
pub(crate) fn symbolized(args: &ProfileArgs, times: bool) -> Result<Profile> {
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
        // Files from recorders before kernel:symbols: this machine's names.
        kernel_fallback: Some(weft_symbols::KernelSymbols::load),
        times,
        off_cpu: args.off_cpu,
        wall: args.wall,
        no_inline: args.no_inline,
    };
    let p = profile(&trace, &opts, search, cache);
    for e in &p.problems {
        eprintln!("weft: warning: {e}");
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
        let what = if n.problem.is_empty() { "no symbols" } else { &n.problem };
        match n.frames {
            0 => eprintln!("weft: {module}: {what}"),
            1 => eprintln!("weft: {module}: {what} (1 frame shown as module+offset)"),
            k => eprintln!("weft: {module}: {what} ({k} frames shown as module+offset)"),
        }
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
    let (unit, what) = if args.common.wall {
        ("µs", "wall clock: on and off CPU")
    } else if p.off_cpu {
        ("µs", "off CPU")
    } else {
        ("samples", args.common.trigger.as_deref().unwrap_or("cpu-clock"))
    };
    writeln!(
        out,
        "{} {unit} ({what}), {} distinct stacks; {} symbol lookups, {} answered from cache (this run's or FILE.symcache); \
         built in {:.3} s (reading and unwinding {:.3} s; symbolizing {:.3} s, mostly alongside on a second thread)",
        p.samples,
        p.stacks.len(),
        p.lookups + p.cache_hits,
        p.cache_hits,
        t0.elapsed().as_secs_f64(),
        p.unwind_secs,
        p.symbolize_secs
    )?;
    for t in weft_analysis::report::function_tables(&p, args.per_thread) {
        writeln!(out, "\n{}: {} {unit}; functions by self {unit}", t.title, t.samples)?;
        print_rows(&mut out, &p, &t.by_self, args.top, t.samples)?;
        writeln!(out, "\n{}: functions by total {unit} (self and callees)", t.title)?;
        print_rows(&mut out, &p, &t.by_total, args.top, t.samples)?;
    }
    unnamed_share(&mut out, &p, unit)?;
    report_missing(&p);
    Ok(ExitCode::SUCCESS)
}

/// How much of the profile ends in code without a function name, per
/// module, and how to get the names.
fn unnamed_share(out: &mut impl Write, p: &Profile, unit: &str) -> std::io::Result<()> {
    let mut by_module: std::collections::BTreeMap<&str, u64> = Default::default();
    for st in &p.stacks {
        if let Some(f) = st.frames.last().and_then(|&f| p.frames.get(f)) {
            if f.function.is_none() {
                *by_module.entry(f.module.as_str()).or_default() += st.count;
            }
        }
    }
    if by_module.is_empty() {
        return Ok(());
    }
    let total = p.samples.max(1) as f64;
    let unnamed: u64 = by_module.values().sum();
    writeln!(
        out,
        "\n{:.1}% of {unit} end in code without a function name:",
        100.0 * unnamed as f64 / total
    )?;
    let mut rows: Vec<(&str, u64)> = by_module.into_iter().collect();
    rows.sort_by_key(|b| std::cmp::Reverse(b.1));
    for (module, n) in rows {
        // Frames carry the module's file name; the notes know its path.
        let path = p
            .notes
            .keys()
            .find(|k| k.rsplit('/').next() == Some(module))
            .map_or(module, String::as_str);
        let how = debug_package(path).map_or_else(
            || "its debug file (build-id), --symbols DIR, or DEBUGINFOD_URLS would name it".to_string(),
            |pkg| format!("`apt install {pkg}` would name it"),
        );
        writeln!(out, "  {:>5.1}%  {module}: {how}", 100.0 * n as f64 / total)?;
    }
    Ok(())
}

/// The Debian package with `path`'s debug symbols, guessed from the
/// package that owns it: `libc6-dbg` for glibc, `PKG-dbgsym` otherwise
/// (from the debian-debug archive).
fn debug_package(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return None;
    }
    let out = std::process::Command::new("dpkg-query")
        .args(["-S", path])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let pkg = line.split(':').next()?.trim().to_owned();
    if pkg.is_empty() || pkg.contains(' ') {
        return None;
    }
    Some(if pkg == "libc6" {
        "libc6-dbg".into()
    } else {
        format!("{pkg}-dbgsym")
    })
}

fn print_rows(out: &mut impl Write, p: &Profile, rows: &[Row], top: usize, total: u64) -> std::io::Result<()> {
    writeln!(
        out,
        "{:>7} {:>7} {:>7} {:>7}  {:<40} LOCATION",
        "SELF%", "SELF", "TOTAL%", "TOTAL", "FUNCTION"
    )?;
    for r in rows.iter().take(top) {
        let fr = &p.frames[r.frame];
        let pct = |n: u64| 100.0 * n as f64 / total.max(1) as f64;
        let loc = fr.location().map(|l| format!("{l} ")).unwrap_or_default();
        let inl = if fr.inlined { " [inlined]" } else { "" };
        writeln!(
            out,
            "{:>6.1}% {:>7} {:>6.1}% {:>7}  {:<40} {loc}({}){inl}",
            pct(r.self_samples),
            r.self_samples,
            pct(r.total_samples),
            r.total_samples,
            fr.function_label(),
            fr.module
        )?;
    }
    Ok(())
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
    if args.folded {
        // Folded text is written leaf first for --reverse.
        let text = weft_export::folded(&p, args.reverse).join("\n") + "\n";
        match &args.output {
            Some(o) => weft_export::create_private(o)
                .and_then(|mut f| f.write_all(text.as_bytes()))
                .with_context(|| format!("cannot write {}", o.display()))?,
            None => std::io::stdout().write_all(text.as_bytes())?,
        }
    } else {
        let path = args.output.clone().unwrap_or_else(|| PathBuf::from("flame.svg"));
        let f = weft_export::create_private(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let title = format!("weft: {}", args.common.file.display());
        weft_export::flame_svg(&p, &title, args.reverse, std::io::BufWriter::new(f))?;
        eprintln!("weft: wrote {} ({} samples)", path.display(), p.samples);
    }
    report_missing(&p);
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Format {
    /// speedscope's file format (https://www.speedscope.app), one profile per thread.
    Speedscope,
    /// A Perfetto trace (https://ui.perfetto.dev): the whole timeline, syscalls as
    /// slices, signals, lifecycle and probe events, and CPU samples.
    Perfetto,
    /// Chrome trace-event JSON (chrome://tracing): the same timeline, without CPU samples.
    Chrome,
    /// Parquet tables in a directory (syscalls, events, samples, processes,
    /// probe_events), for DuckDB, Spark or Trino.
    Parquet,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub common: ProfileArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "speedscope")]
    pub format: Format,
    /// Output file (default: FILE.speedscope.json, FILE.pftrace, FILE.chrome.json),
    /// or directory for parquet (default: FILE.parquet/).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

fn perfetto(args: &ExportArgs, trace: &weft_format::Trace) -> Result<ExitCode> {
    let p = symbolized(&args.common, true)?;
    let path = args.output.clone().unwrap_or_else(|| {
        let mut s = args.common.file.as_os_str().to_owned();
        s.push(".pftrace");
        PathBuf::from(s)
    });
    let f = weft_export::create_private(&path).with_context(|| format!("cannot create {}", path.display()))?;
    let sum = weft_export::perfetto(trace, (p.samples > 0).then_some(&p), std::io::BufWriter::new(f))
        .with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!(
        "weft: wrote {} ({} tracks, {} slices, {} instants, {} CPU samples); open it at https://ui.perfetto.dev (Open trace file)",
        path.display(),
        sum.tracks,
        sum.slices,
        sum.instants,
        sum.samples
    );
    for (what, (n, why)) in &sum.left_out {
        eprintln!("weft: not exported: {n} {what} ({why})");
    }
    if p.samples > 0 {
        report_missing(&p);
    }
    Ok(ExitCode::SUCCESS)
}

fn chrome(args: &ExportArgs, trace: &weft_format::Trace) -> Result<ExitCode> {
    warn_damage(trace);
    let path = args.output.clone().unwrap_or_else(|| {
        let mut s = args.common.file.as_os_str().to_owned();
        s.push(".chrome.json");
        PathBuf::from(s)
    });
    let f = weft_export::create_private(&path).with_context(|| format!("cannot create {}", path.display()))?;
    let sum = weft_export::chrome(trace, std::io::BufWriter::new(f))
        .with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!(
        "weft: wrote {} ({} slices, {} instants); open it in chrome://tracing or https://ui.perfetto.dev",
        path.display(),
        sum.slices,
        sum.instants
    );
    for (what, (n, why)) in &sum.left_out {
        eprintln!("weft: not exported: {n} {what} ({why})");
    }
    Ok(ExitCode::SUCCESS)
}

fn parquet(args: &ExportArgs, trace: &weft_format::Trace) -> Result<ExitCode> {
    let p = symbolized(&args.common, true)?;
    let dir = args.output.clone().unwrap_or_else(|| {
        let mut s = args.common.file.as_os_str().to_owned();
        s.push(".parquet");
        PathBuf::from(s)
    });
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create directory {}", dir.display()))?;
    let sum = weft_export::parquet(trace, (p.samples > 0).then_some(&p), &dir)
        .with_context(|| format!("cannot write the tables into {}", dir.display()))?;
    let tables: Vec<String> = sum.tables.iter().map(|(t, n)| format!("{t} {n}")).collect();
    eprintln!("weft: wrote {}/*.parquet (rows: {})", dir.display(), tables.join(", "));
    eprintln!(
        "weft: query it, e.g. duckdb -c \"SELECT name, count(*) FROM '{}/syscalls.parquet' GROUP BY name ORDER BY 2 DESC\"",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn export(args: ExportArgs) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    let trace = open(&args.common.file)?;
    let done = match args.format {
        Format::Perfetto => perfetto(&args, &trace)?,
        Format::Chrome => chrome(&args, &trace)?,
        Format::Parquet => parquet(&args, &trace)?,
        Format::Speedscope => speedscope(&args, &trace)?,
    };
    crate::input::report_pass("export", &trace, started);
    Ok(done)
}

fn speedscope(args: &ExportArgs, trace: &weft_format::Trace) -> Result<ExitCode> {
    let p = build_timed(&args.common)?;
    let hz = trace
        .info(weft_format::info_keys::SAMPLE_HZ)
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|&hz| hz > 0);
    let time = hz.map(|hz| weft_export::TimeAxis {
        start_ns: start_ns(trace),
        interval_ns: 1_000_000_000 / hz,
    });
    let path = args.output.clone().unwrap_or_else(|| {
        let mut s = args.common.file.as_os_str().to_owned();
        s.push(".speedscope.json");
        PathBuf::from(s)
    });
    let f = weft_export::create_private(&path).with_context(|| format!("cannot create {}", path.display()))?;
    let exporter = format!("weft {}", env!("CARGO_PKG_VERSION"));
    let name = args.common.file.display().to_string();
    weft_export::speedscope(&p, &name, &exporter, time, std::io::BufWriter::new(f))
        .with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!(
        "weft: wrote {} ({} samples); open it at https://www.speedscope.app or with `npx speedscope`",
        path.display(),
        p.samples
    );
    report_missing(&p);
    Ok(ExitCode::SUCCESS)
}

/// The user stack recorded with the call of `tid` at `ts` (within 1 ms),
/// innermost first: `f (module) <- caller (module) <- ...`.
pub(crate) fn stack_at(p: &Profile, tid: u32, ts: u64) -> Option<String> {
    let &(_, i) = p
        .timeline
        .iter()
        .filter(|&&(t, i)| p.stacks.get(i).is_some_and(|s| s.tid == tid) && t.abs_diff(ts) < 1_000_000)
        .min_by_key(|&&(t, _)| t.abs_diff(ts))?;
    let frames: Vec<String> = p.stacks[i]
        .frames
        .iter()
        .rev()
        .take(8)
        .filter_map(|&f| p.frames.get(f))
        .map(|f| format!("{} ({})", f.label(), f.module.rsplit('/').next().unwrap_or(&f.module)))
        .collect();
    Some(frames.join(" <- "))
}
