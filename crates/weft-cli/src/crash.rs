//! `weft crash`: each crash signal a traced thread got, what its process
//! was doing just before, and what came of it.

use crate::dump::Shown;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use weft_analysis::crash::{crashes, Outcome};
use weft_analysis::{secs, Line};

use crate::input::{open, start_ns, warn_damage};
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

pub fn run(args: CrashArgs) -> Result<ExitCode> {
    let t = open(&args.file)?;
    warn_damage(&t);
    let base = start_ns(&t);
    let found = crashes(&t, &args.pid, args.last);
    if found.is_empty() {
        println!("no SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE or SIGTRAP was delivered to a traced thread");
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
        println!("  fault address: not recorded (the kernel's signal tracepoints do not carry it)");
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
