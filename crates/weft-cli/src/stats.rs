//! `weft stats`: syscall counts, errors and latency percentiles, weft-probe
//! event counts and rates, and losses, as tables.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, ValueEnum};
use weft_analysis::names::errno_name;
use weft_analysis::secs;
use weft_analysis::stats::{stats, By, Group};

use crate::input::open;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ByArg {
    /// One table over every traced process.
    Syscall,
    /// A table per process.
    Process,
    /// A table per thread.
    Thread,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  weft stats app.weft                   every syscall of every process, like strace -c\n  weft stats app.weft --by process      a table per process\n  weft stats app.weft --by thread -n 5  the 5 costliest syscalls of each thread\n\nTimes are between each call's entry and its return; calls whose return was not\nrecorded (exit, a successful execve, still running at the end) count as calls\nand as unfinished, not in the times."
)]
pub struct StatsArgs {
    /// Trace file to read.
    file: std::path::PathBuf,
    /// How to group the syscall tables.
    #[arg(long, value_enum, default_value = "syscall")]
    by: ByArg,
    /// Rows per table (by total time).
    #[arg(short = 'n', long, default_value_t = 25)]
    top: usize,
    /// Only these processes (comma-separated PIDs; with --by process or thread).
    #[arg(short, long, value_delimiter = ',')]
    pid: Vec<u32>,
}

/// `1.234 s`, `12.3 ms`, `4.56 µs`, `789 ns`: three significant digits.
fn dur(ns: u64) -> String {
    let f = ns as f64;
    if ns >= 1_000_000_000 {
        format!("{:.3} s", f / 1e9)
    } else if ns >= 1_000_000 {
        format!("{:.3} ms", f / 1e6)
    } else if ns >= 1_000 {
        format!("{:.2} µs", f / 1e3)
    } else {
        format!("{ns} ns")
    }
}

fn table(g: &Group, top: usize) {
    let total = g.total_ns().max(1);
    println!(
        "  {:>6} {:>11} {:>9} {:>8} {:>10} {:>10} {:>10} {:>10}  {:<18} ERRNOS",
        "%TIME", "TOTAL", "CALLS", "ERRORS", "MEAN", "P50", "P99", "MAX", "SYSCALL"
    );
    let opt = |v: Option<u64>| v.map_or_else(|| "-".to_string(), dur);
    for s in g.syscalls.iter().take(top) {
        let errnos: Vec<String> = {
            let mut e: Vec<(&i64, &u64)> = s.errors.iter().collect();
            e.sort_by(|a, b| b.1.cmp(a.1));
            e.iter().map(|(e, n)| format!("{} {n}", errno_name(**e))).collect()
        };
        let unfinished = if s.unfinished > 0 {
            format!(" ({} unfinished)", s.unfinished)
        } else {
            String::new()
        };
        println!(
            "  {:>5.1}% {:>11} {:>9} {:>8} {:>10} {:>10} {:>10} {:>10}  {:<18} {}{unfinished}",
            100.0 * s.total_ns() as f64 / total as f64,
            dur(s.total_ns()),
            s.calls,
            s.errors_total(),
            opt(s.mean_ns()),
            opt(s.quantile_ns(0.5)),
            opt(s.quantile_ns(0.99)),
            opt(s.quantile_ns(1.0)),
            s.name,
            errnos.join(", "),
        );
    }
    if g.syscalls.len() > top {
        println!(
            "  ({} more syscalls: -n {} shows all)",
            g.syscalls.len() - top,
            g.syscalls.len()
        );
    }
}

pub fn run(args: StatsArgs) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    let t = open(&args.file)?;
    crate::input::warn_damage(&t);
    let by = match args.by {
        ByArg::Syscall => By::Syscall,
        ByArg::Process => By::Process,
        ByArg::Thread => By::Thread,
    };
    let st = stats(&t, by);
    crate::input::report_pass("stats", &t, started);
    let span = st.span_ns();
    let mut shown = 0;
    for g in &st.groups {
        if !args.pid.is_empty() && !args.pid.contains(&g.pid) {
            continue;
        }
        shown += 1;
        let who = match (by, g.tid) {
            (By::Syscall, _) => "all processes".to_string(),
            (_, Some(tid)) => format!("thread {}/{tid} ({})", g.pid, g.comm),
            (_, None) => format!("process {} ({})", g.pid, g.comm),
        };
        println!(
            "syscalls of {who}: {} calls, {} in syscalls",
            g.calls(),
            dur(g.total_ns())
        );
        table(g, args.top);
        println!();
    }
    if shown == 0 {
        match args.pid.as_slice() {
            [] => println!("no syscalls in {}", args.file.display()),
            pids => println!(
                "no syscalls of process {} in {} (`weft info` lists its processes)",
                pids.iter().map(u32::to_string).collect::<Vec<_>>().join(", "),
                args.file.display()
            ),
        }
        println!();
    }
    if !st.probe_events.is_empty() {
        println!("weft-probe events over {} s:", secs(span));
        println!("  {:>10} {:>12}  EVENT", "COUNT", "PER SECOND");
        let mut ev: Vec<(&String, &u64)> = st.probe_events.iter().collect();
        ev.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (name, n) in ev.iter().take(args.top) {
            let rate = if span > 0 {
                **n as f64 / (span as f64 / 1e9)
            } else {
                0.0
            };
            println!("  {n:>10} {rate:>12.1}  {name}");
        }
        println!();
    }
    println!(
        "lost: {} kernel events; weft-probe: {} events lost, {} damage reports; {} records read",
        st.kernel_lost, st.probe_lost, st.probe_damage, st.records
    );
    for p in &st.problems {
        eprintln!("weft: warning: {p}");
    }
    Ok(ExitCode::SUCCESS)
}
