//! `weft record`: flags to `weft_record::Options`, signals and a status
//! line while the recorder runs, the summary and the exit code after.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use weft_record::{CaptureLimits, Level, Notice, Options, ProbeOptions, RecordError, Recorder, Summary, Target};

use crate::live::LiveView;
use crate::units::bytes;
use crate::RecordArgs;

/// argv strings of an exec kept (all of them, for most commands).
const ARGV_STRINGS: u32 = 64;

/// `-e` values: strace's `trace=LIST` (syscalls, `%class` allowed), or
/// weft-probe `provider:event` patterns; anything else is refused, so that
/// `-e openat` does not pass for a probe pattern and record everything.
fn split_events(args: &RecordArgs) -> Result<(Option<String>, Vec<String>)> {
    let mut syscalls: Vec<String> = args.syscalls.iter().cloned().collect();
    let mut probes = Vec::new();
    for e in &args.event {
        if let Some(list) = e.strip_prefix("trace=") {
            let names: Vec<String> = list
                .split(',')
                .map(|s| s.trim().trim_start_matches('%').to_string())
                .collect();
            // strace's `trace=all` is weft's default.
            if !names.iter().any(|n| n == "all") {
                syscalls.extend(names);
            }
            continue;
        }
        if let Some((key, _)) = e.split_once('=') {
            anyhow::bail!(
                "`-e {e}`: weft takes strace's `-e trace=LIST` only (not `{key}=`); other -e values are weft-probe `provider:event` patterns"
            );
        }
        for p in e.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if !p.contains(':') && p != "*" {
                anyhow::bail!(
                    "`-e {p}` is not a weft-probe event pattern (those are `provider:event`, e.g. `myapp:*`); to record the syscall, use `--syscalls {p}` or strace's `-e trace={p}`"
                );
            }
            probes.push(p.to_string());
        }
    }
    Ok(((!syscalls.is_empty()).then(|| syscalls.join(",")), probes))
}

fn options(args: &RecordArgs) -> Result<Options> {
    let (syscalls, patterns) = split_events(args)?;
    Ok(Options {
        output: args.output.clone(),
        force: args.force,
        target: if args.command.is_empty() {
            Target::Pids(args.pid.clone())
        } else {
            Target::Command(args.command.clone())
        },
        syscalls,
        comm: args.comm.clone(),
        duration: args.duration,
        buffer_size: args.buffer_size,
        compression: args.compression,
        cgroup: !args.no_cgroup,
        nice: args.nice,
        realtime: args.realtime,
        sample_hz: args.sample,
        stack_on: args.stack_on.clone(),
        off_cpu: args.off_cpu,
        stack_size: args.stack_size,
        archive: args.archive,
        // A live view reads the file: events must not wait long to reach it.
        flush_every: if args.live {
            Duration::from_millis(100)
        } else {
            weft_record::FLUSH_EVERY
        },
        capture: (!args.no_args).then_some(CaptureLimits {
            strings: args.string_limit,
            buffers: args.string_limit,
            argv: ARGV_STRINGS,
        }),
        probes: (!args.no_probes).then(|| ProbeOptions {
            patterns: if patterns.is_empty() {
                vec!["*".to_string()]
            } else {
                patterns.clone()
            },
            overwrite: args.probe_overwrite,
            buffer: args.probe_buffer,
            wait: args.probe_wait.unwrap_or_default(),
            threads: args.probe_threads,
            memory: args.probe_memory,
        }),
    })
}

pub fn run(args: RecordArgs) -> Result<ExitCode> {
    let quiet = args.quiet;
    let say = move |n: Notice| match n.level {
        Level::Info if !quiet => eprintln!("weft: {}", n.text),
        Level::Warning if !quiet => eprintln!("weft: warning: {}", n.text),
        Level::Alert => eprintln!("weft: warning: {}", n.text),
        _ => {}
    };
    let signals = StopSignals::install()?;
    let opts = options(&args)?;
    let probe_patterns: Vec<String> = split_events(&args)?.1;
    let mut rec = match Recorder::start(opts, say) {
        Ok(r) => r,
        Err(e @ RecordError::CannotStart { .. }) => {
            // As a shell says of a command it cannot run.
            eprintln!("weft: error: {e}");
            return Ok(ExitCode::from(127));
        }
        Err(e) => return Err(e.into()),
    };

    let live = if args.live {
        let out: Box<dyn std::io::Write + Send> = match &args.live_output {
            Some(p) => Box::new(
                std::fs::File::create(p).with_context(|| format!("cannot create --live-output {}", p.display()))?,
            ),
            None => Box::new(std::io::stderr()),
        };
        Some(LiveView::start(args.output.clone(), out))
    } else {
        None
    };
    // The status line would be torn by live lines on the same terminal.
    let bar = if quiet || (args.live && args.live_output.is_none()) || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
        b.set_style(
            ProgressStyle::with_template("{spinner} recording {elapsed} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        b
    };
    let mut seen_signals = 0;
    let (mut last_status, mut last_records) = (Instant::now(), 0u64);
    while rec.step() {
        let (n, sig, terminal) = signals.latest();
        if n > seen_signals {
            seen_signals = n;
            rec.interrupt(sig, terminal);
        }
        if last_status.elapsed() >= Duration::from_millis(250) {
            let p = rec.progress();
            let rate = (p.records - last_records) as f64 / last_status.elapsed().as_secs_f64();
            (last_status, last_records) = (Instant::now(), p.records);
            bar.set_message(format!(
                "{} events ({rate:.0}/s), {} lost, {} written",
                p.records,
                p.lost,
                bytes(p.bytes_written)
            ));
            bar.tick();
        }
    }
    bar.finish_and_clear();
    let summary = rec.finish().context("the recording stopped")?;
    match live.map(LiveView::finish) {
        Some(Some(0)) | None => {}
        Some(Some(n)) => {
            eprintln!("weft: live view: {n} lines were not printed (it could not keep up); `weft dump` shows them")
        }
        Some(None) => eprintln!(
            "weft: live view: its output did not take the last lines (nothing reads it?); `weft dump` shows them"
        ),
    }
    if !quiet {
        print_summary(&summary);
    }
    // Explicit patterns that caught nothing are said, even with --quiet.
    if !probe_patterns.is_empty() && summary.probes.as_ref().is_none_or(|p| p.events == 0) {
        eprintln!(
            "weft: warning: no weft-probe event matched -e {} (`weft ps --events` lists the events of running instrumented processes)",
            probe_patterns.join(",")
        );
    }
    let status = match summary.still_running {
        Some(pid) => wait_untraced(pid, &signals, &mut seen_signals),
        None => summary.exit_status,
    };
    Ok(match status {
        Some(st) if libc::WIFEXITED(st) => ExitCode::from(libc::WEXITSTATUS(st) as u8),
        Some(st) if libc::WIFSIGNALED(st) => ExitCode::from(128u8.wrapping_add(libc::WTERMSIG(st) as u8)),
        _ => ExitCode::SUCCESS,
    })
}

/// After `--duration` the command runs on untraced, as it would without
/// weft; weft waits for it to give its exit status. A signal to weft goes
/// to the command (unless the terminal sent it to both); a second one ends
/// it with SIGKILL.
fn wait_untraced(pid: u32, signals: &StopSignals, seen: &mut u32) -> Option<i32> {
    use weft_kernel::os;
    let mut asked = 0;
    loop {
        if let Some(st) = os::reap(pid, false) {
            return Some(st);
        }
        let (n, sig, terminal) = signals.latest();
        if n > *seen {
            *seen = n;
            asked += 1;
            match asked {
                1 if !terminal => os::send_signal(pid, sig),
                1 => {}
                _ => os::send_signal(pid, libc::SIGKILL),
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `1 event`, `2 events`.
fn counted(n: impl Into<u64>, what: &str) -> String {
    let n = n.into();
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn print_summary(s: &Summary) {
    let lost = s.lost();
    // The totals count weft-probe's events too (as `weft info` does); the
    // lines below say where each loss was.
    let (probe_events, probe_lost) = s.probes.as_ref().map_or((0, 0), |p| (p.events, p.lost));
    eprintln!(
        "weft: recorded {} ({}{}) in {:.2} s, {} lost, {} written to {}",
        counted(s.records + probe_events, "event"),
        counted(s.syscalls, "syscall"),
        if probe_events > 0 {
            format!(", {probe_events} from weft-probe")
        } else {
            String::new()
        },
        s.secs,
        lost.saturating_add(probe_lost),
        bytes(s.bytes),
        s.output.display()
    );
    eprintln!(
        "weft: recorder CPU time {:.2} s ({:.0}% of one core); stopped: {}",
        s.cpu_secs,
        100.0 * s.cpu_secs / s.secs.max(1e-9),
        s.stop_reason
    );
    if lost > 0 {
        let per: Vec<String> = s
            .lost_per_cpu
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(c, n)| format!("CPU {c}: {n}"))
            .collect();
        eprintln!(
            "weft: warning: {lost} events were lost because a ring buffer was full ({}); try --buffer-size {}{}",
            per.join(", "),
            if s.suggested_buffer >= 1 << 20 {
                format!("{}M", s.suggested_buffer >> 20)
            } else {
                format!("{}K", s.suggested_buffer >> 10)
            },
            if s.suggested_buffer >= 256 << 20 {
                " (or record fewer syscalls with --syscalls)"
            } else {
                ""
            }
        );
    }
    if let Some(p) = s.probes.as_ref().filter(|p| p.attached > 0 || p.missed > 0) {
        eprintln!(
            "weft: weft-probe: {} from {} attached process{}, {} lost, {}; buffers {} MiB at most",
            counted(p.events, "event"),
            p.attached,
            if p.attached == 1 { "" } else { "es" },
            p.lost,
            counted(p.damage, "damage report"),
            p.peak_memory.div_ceil(1 << 20)
        );
        if p.damaged_accounts > 0 {
            eprintln!(
                "weft: warning: weft-probe: {} threads' counters were damaged; how many of their events were lost is not known",
                p.damaged_accounts
            );
        }
        if p.missed > 0 {
            eprintln!(
                "weft: warning: weft-probe: {} instrumented processes were not recorded (`weft info` lists them and why)",
                p.missed
            );
        }
    }
    for (what, why) in &s.not_recorded {
        eprintln!("weft: not recorded: {what}: {why}");
    }
    if let Some((dir, n)) = &s.rescued {
        eprintln!(
            "weft: kept {n} mapped binaries that were deleted, replaced or in a container, for symbolization, in {}",
            dir.display()
        );
    }
    if let Some((dir, n)) = &s.archived {
        eprintln!("weft: archived {n} binaries in {}", dir.display());
    }
    if s.malformed > 0 {
        eprintln!(
            "weft: warning: {} kernel records could not be decoded and were skipped",
            s.malformed
        );
    }
    for c in &s.crashes {
        let (sig, code) = (i64::from(c.sig), i64::from(c.code));
        let at = match c.addr {
            Some(a) => format!(" at {a:#x}"),
            None if weft_kernel::carries_addr(c.sig, c.code) => ", fault address not recorded".into(),
            None => String::new(),
        };
        eprintln!(
            "weft: process {} died by {} ({}{at}) in thread {}: `weft crash {}` shows what led to it",
            c.pid,
            weft_analysis::names::signal_name(sig),
            weft_analysis::names::si_code_name(sig, code),
            c.tid,
            s.output.display()
        );
    }
    if let Some(st) = s.exit_status {
        eprintln!("weft: {}: {}", s.command_line, weft_record::describe_status(st));
    }
}

/// SIGINT, SIGTERM and SIGHUP sent to weft: how many so far, the last one,
/// and whether it came from the terminal (which sent it to the command too).
struct StopSignals {
    count: Arc<AtomicU32>,
    last: Arc<AtomicI32>,
    terminal: Arc<AtomicBool>,
}

impl StopSignals {
    fn install() -> Result<StopSignals> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        use signal_hook::iterator::exfiltrator::WithOrigin;
        use signal_hook::low_level::siginfo::Cause;
        let s = StopSignals {
            count: Arc::new(AtomicU32::new(0)),
            last: Arc::new(AtomicI32::new(0)),
            terminal: Arc::new(AtomicBool::new(false)),
        };
        let mut signals = signal_hook::iterator::SignalsInfo::<WithOrigin>::new([SIGINT, SIGTERM, SIGHUP])
            .context("cannot install the signal handlers")?;
        let (count, last, terminal) = (s.count.clone(), s.last.clone(), s.terminal.clone());
        std::thread::Builder::new()
            .name("weft-signals".into())
            .spawn(move || {
                for o in signals.forever() {
                    // A terminal's Ctrl-C comes from the kernel, to the whole foreground group.
                    terminal.store(o.cause == Cause::Kernel, Ordering::Release);
                    last.store(o.signal, Ordering::Release);
                    count.fetch_add(1, Ordering::AcqRel);
                }
            })
            .context("cannot start the signal thread")?;
        Ok(s)
    }

    /// (signals so far, the last one, whether the terminal sent it).
    fn latest(&self) -> (u32, i32, bool) {
        (
            self.count.load(Ordering::Acquire),
            self.last.load(Ordering::Acquire),
            self.terminal.load(Ordering::Acquire),
        )
    }
}
