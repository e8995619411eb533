//! `weft crash`: each crash signal a traced thread got, what its process
//! was doing just before, and what came of it.

use crate::dump::Shown;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use weft_analysis::crash::{crashes, Outcome};
use weft_analysis::{secs, Line};

use weft_analysis::mem::{history, Change};

use crate::input::{open, start_ns, warn_damage};
use crate::mem::{call_stacks, print_history};
use crate::profiles::{stack_at, symbolized, ProfileArgs};

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  weft crash app.weft                  every SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE, SIGTRAP\n  weft crash app.weft --pid 1234 -n 20\n\nRecord with `--stack-on signal_deliver` to see where each signal hit."
)]
pub struct CrashArgs {
    /// Trace file to read.
    file: std::path::PathBuf,
    /// Only these processes (comma-separated PIDs).
    #[arg(short, long, value_delimiter = ',')]
    pid: Vec<u32>,
    /// Events of each thread to show before the signal.
    #[arg(short = 'n', long, default_value_t = 8)]
    last: usize,
}

/// Fault pages whose address history is shown.
const MAX_HISTORIES: usize = 8;
/// Changes shown of each (the last ones).
const HISTORY_LAST: usize = 20;

pub fn run(args: CrashArgs) -> Result<ExitCode> {
    let t = open(&args.file)?;
    warn_damage(&t);
    let base = start_ns(&t);
    let found = crashes(&t, &args.pid, args.last);
    if found.is_empty() {
        let of = match args.pid.as_slice() {
            [] => String::new(),
            pids => format!(
                " of process {} (`weft info` lists the processes)",
                pids.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
            ),
        };
        println!("no SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE or SIGTRAP was delivered to a traced thread{of}");
        return Ok(ExitCode::SUCCESS);
    }
    // Stacks taken at the deliveries (record --stack-on signal_deliver).
    let stacks = if t.schema_by_name(weft_format::std_schemas::SAMPLE).is_some() {
        let pa = ProfileArgs::stacks_of(&args.file, "signal_deliver", args.pid.clone(), Vec::new());
        Some(symbolized(&pa, true)?).filter(|p| p.samples > 0)
    } else {
        None
    };
    let show = |l: &Line| Shown(&secs(l.ts.saturating_sub(base)), l).to_string();
    let mut histories = std::collections::HashSet::new();
    for (i, c) in found.iter().enumerate() {
        let d = &c.delivery;
        println!(
            "crash {}: {} ({}) to thread {}/{} ({}) at {} s",
            i + 1,
            c.signal,
            c.code,
            d.pid,
            d.tid,
            d.comm,
            secs(d.ts.saturating_sub(base))
        );
        println!("  handler:       {}", c.handler);
        match c.addr {
            Some(a) => println!("  fault address: {a:#x}"),
            // SI_USER, SI_TKILL, SI_QUEUE...: sent, not raised by a fault.
            None if c.code.starts_with("SI_") && c.code != "SI_KERNEL" => {
                println!("  fault address: none (the signal was sent, {}, not raised by a fault)", c.code)
            }
            None if c.signal == "SIGABRT" => println!("  fault address: none (SIGABRT is not a fault)"),
            None if c.code == "SI_KERNEL" => println!(
                "  fault address: none (SI_KERNEL: the kernel gives none, as for a general protection fault)"
            ),
            None => println!(
                "  fault address: not recorded (weft reads it with eBPF, which this recording did not use: --no-args, or eBPF unavailable; or the trace predates format 1.4)"
            ),
        }
        match &c.outcome {
            Outcome::Killed(how) => println!("  outcome:       {how}"),
            Outcome::Continued(l) => {
                println!(
                    "  outcome:       handled, continued; where the thread went after its handler:\n    {}",
                    show(l)
                )
            }
            Outcome::HandledThenEnded(l) => println!("  outcome:       handled, then:\n    {}", show(l)),
            Outcome::Unknown => {
                println!("  outcome:       handled; the recording ended before the thread did anything else")
            }
        }
        match stacks.as_ref().and_then(|p| stack_at(p, d.tid, d.ts)) {
            Some(s) => println!("  stack:         {s}"),
            None => println!("  stack:         not recorded (record with --stack-on signal_deliver)"),
        }
        // Who mapped and unmapped the faulting page (SIGILL, SIGFPE and
        // SIGTRAP carry the instruction's address: its page is code).
        if let (Some(a), "SIGSEGV" | "SIGBUS") = (c.addr, c.signal.as_str()) {
            // Each history is a pass over the trace: a program that faults
            // on purpose (a JVM, a GC barrier) can fault thousands of times.
            let key = (d.pid, a & !4095);
            if !histories.contains(&key) && histories.len() == MAX_HISTORIES {
                println!(
                    "  address history: `weft mem {} --addr {a:#x} --pid {}` (shown for the first {MAX_HISTORIES} fault pages only)",
                    args.file.display(),
                    d.pid
                );
            } else if histories.insert(key) {
                let h = history(&t, a, &[d.pid], HISTORY_LAST);
                // An exec covers every address: alone it says nothing.
                if h.earlier == 0 && h.entries.iter().all(|e| e.change == Change::Exec) {
                    println!("  address history: no recorded call mapped or unmapped {a:#x}");
                } else {
                    let stacks = call_stacks(&args.file, &t, &h)?;
                    println!("  address history of the fault address:");
                    print_history(&h, base, &stacks, "    ");
                }
            } else {
                println!("  address history: as for the earlier fault on this page");
            }
        }
        for (tid, lines) in &c.before {
            println!("  last events of thread {tid}:");
            for l in lines {
                println!("    {}", show(l));
            }
        }
        println!();
    }
    Ok(ExitCode::SUCCESS)
}
