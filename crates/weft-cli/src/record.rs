//! `weft record`: set up the kernel session, stream events to the trace file
//! as they arrive, and stop cleanly on exit, timeout or Ctrl-C.

use std::collections::HashMap;
use std::fs::File;
use std::io::IsTerminal;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use weft_format::{end_keys, info_keys, RecordBuf, TraceWriter};
use weft_kernel::{procfs, EventKind, KernelEvent, KernelSchemas, Session, TraceCgroup, Tracefs};

use crate::probes::Probes;
use crate::units::bytes;
use crate::RecordArgs;
use weft_probe_collect::{Geometry, Mode};

/// Flush a chunk when this much is encoded, or at least every FLUSH_EVERY.
const CHUNK_BYTES: usize = 1 << 20;
const FLUSH_EVERY: Duration = Duration::from_millis(500);

enum Target {
    Command(weft_kernel::Paused),
    Pids(Vec<u32>),
}

fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) } as i32;
    // SAFETY: a non-negative return is a fresh descriptor we own.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Keeps only processes whose name matches `--comm`, tracking names through
/// comm changes and forks.
struct CommFilter {
    globs: globset::GlobSet,
    names: HashMap<u32, String>,
}

impl CommFilter {
    fn keep(&mut self, ev: &KernelEvent) -> bool {
        match &ev.kind {
            EventKind::Comm { comm, .. } if ev.tid == ev.pid => {
                self.names.insert(ev.pid, comm.clone());
            }
            EventKind::Fork { parent_pid, .. } if *parent_pid != ev.pid => {
                if let Some(n) = self.names.get(parent_pid).cloned() {
                    self.names.insert(ev.pid, n);
                }
            }
            EventKind::Lost { .. } => return true,
            _ => {}
        }
        self.names.get(&ev.pid).is_some_and(|n| self.globs.is_match(n))
    }
}

pub fn run(args: RecordArgs) -> Result<ExitCode> {
    if args.command.is_empty() && args.pid.is_empty() {
        bail!("nothing to record: give a command after `--` (weft record -- ./app) or a running process with -p PID");
    }
    weft_kernel::check_tracing_allowed()?;
    let tfs = Tracefs::locate_or_mount()?;
    let table = weft_kernel::syscalls::syscall_table(&tfs);
    let selection = match &args.syscalls {
        Some(spec) => {
            let mut set = weft_kernel::syscalls::select(spec, &table)?;
            // The process lifecycle needs its exit status.
            for name in ["exit", "exit_group"] {
                set.extend(table.entries.iter().filter(|e| e.name == name).map(|e| e.nr));
            }
            Some(set)
        }
        None => None,
    };
    for &pid in &args.pid {
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            bail!("no process with PID {pid} (is it still running? `ps -p {pid}` shows it)");
        }
    }
    raise_fd_limit();
    if let Some(program) = args.command.first() {
        // Said before a trace file exists: no file claims a recording.
        if let Err(e) = find_program(program) {
            eprintln!("weft: error: {e}");
            return Ok(ExitCode::from(127));
        }
    }

    let (file, replaced) = crate::outfile::create(&args.output, args.force)
        .with_context(|| format!("cannot create trace file {}", args.output.display()))?;
    if let (crate::outfile::Replaced::MovedTo(old), false) = (&replaced, args.quiet) {
        eprintln!(
            "weft: kept the previous {} as {} (--force overwrites)",
            args.output.display(),
            old.display()
        );
    }
    let mut session = Session::new(
        &tfs,
        weft_kernel::Options {
            buffer_bytes: args.buffer_size,
            syscalls: selection,
            sample_hz: args.sample,
            stack_bytes: (args.stack_size.min(65528) / 8 * 8) as u32,
            stack_on: args.stack_on.clone(),
        },
    )?;

    let mut extras = Extras::default();
    for &pid in &args.pid {
        if let Some(uid) = procfs::effective_uid(pid) {
            extras.uids.insert(pid, uid);
        }
    }
    let mut probes = (!args.no_probes).then(|| {
        let geo = Geometry {
            slots: args.probe_threads,
            subbufs: 8,
            subbuf_size: (args.probe_buffer / 8).next_multiple_of(4096) as u32,
        };
        let mode = if args.probe_overwrite {
            Mode::Overwrite
        } else {
            Mode::Discard
        };
        let patterns = if args.event.is_empty() {
            vec!["*".to_string()]
        } else {
            args.event
                .iter()
                .flat_map(|e| e.split(','))
                .map(str::to_owned)
                .collect()
        };
        Probes::new(patterns, mode, geo, args.probe_memory, args.quiet)
    });
    if let Some(p) = probes.as_ref() {
        p.check_geometry()?;
        // An instrumented command waits (bounded) for us to attach before main.
        std::env::set_var("WEFT_PROBE_WAIT_MS", "5000");
    }

    // Kept until the end: removing it moves leftover processes back out.
    let mut cgroup = None;
    let target = if args.command.is_empty() {
        for &pid in &args.pid {
            session
                .attach_process(pid)
                .with_context(|| format!("cannot attach to PID {pid}"))?;
        }
        if let Some(p) = probes.as_mut() {
            for &pid in &args.pid {
                p.watch(pid);
            }
        }
        Target::Pids(args.pid.clone())
    } else {
        let paused = weft_kernel::spawn_paused(&args.command)?;
        let attached = match (!args.no_cgroup).then(|| TraceCgroup::create_for(paused.pid)) {
            Some(Ok(cg)) => {
                let r = session.attach_cgroup(&cg, paused.pid);
                cgroup = Some(cg);
                r
            }
            other => {
                if let (Some(Err(why)), false) = (other, args.quiet) {
                    eprintln!("weft: not using a cgroup ({why}); following the command with per-task events, which makes forks slower");
                }
                session.attach(paused.pid, true)
            }
        };
        if let Err(e) = attached {
            paused.abort();
            return Err(e).context("cannot set up tracing of the command");
        }
        if let Some(p) = probes.as_mut() {
            p.watch(paused.pid);
        }
        // The command runs with our uid (it is forked from us).
        if let Some(uid) = procfs::effective_uid(std::process::id()) {
            extras.uids.insert(paused.pid, uid);
        }
        Target::Command(paused)
    };

    // After the command was forked, so that it keeps the caller's niceness.
    raise_priority(args.nice);

    let start_mono = weft_kernel::monotonic_ns();
    let command_line = if args.command.is_empty() {
        String::new()
    } else {
        args.command
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let uts = uname();
    let info = vec![
        (info_keys::CLOCK, "CLOCK_MONOTONIC".to_string()),
        (info_keys::HOSTNAME, uts.0),
        (info_keys::KERNEL_RELEASE, uts.1),
        (info_keys::MACHINE, uts.2),
        (info_keys::COMMAND, command_line.clone()),
        (
            info_keys::TARGET,
            if args.pid.is_empty() {
                "command".into()
            } else {
                format!(
                    "pid {}",
                    args.pid.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
                )
            },
        ),
        (info_keys::RECORDER, format!("weft {}", env!("CARGO_PKG_VERSION"))),
        (info_keys::START_MONOTONIC_NS, start_mono.to_string()),
        (info_keys::START_REALTIME_NS, weft_kernel::realtime_ns().to_string()),
        (
            info_keys::SYSCALLS,
            args.syscalls.clone().unwrap_or_else(|| "all".into()),
        ),
        (info_keys::NCPUS, session.cpus().len().to_string()),
    ];
    let mut writer = TraceWriter::new(file, &info, args.compression).context("cannot write the trace file header")?;
    let schemas = KernelSchemas::register(&mut writer, &table);
    writer
        .write_syscall_table(&table)
        .context("cannot write the syscall table")?;

    let mut comm_filter = if args.comm.is_empty() {
        None
    } else {
        let mut b = globset::GlobSetBuilder::new();
        for p in args.comm.iter().flat_map(|c| c.split(',')) {
            b.add(globset::Glob::new(p).with_context(|| format!("invalid --comm pattern `{p}`"))?);
        }
        Some(CommFilter {
            globs: b.build().context("invalid --comm patterns")?,
            names: HashMap::new(),
        })
    };

    // What existed before we attached: names and maps of running processes.
    let mut events: Vec<KernelEvent> = Vec::new();
    let mut pidfds = Vec::new();
    match &target {
        Target::Pids(pids) => {
            for (i, &pid) in pids.iter().enumerate() {
                events.extend(procfs::snapshot(pid, start_mono));
                if let Some(fd) = pidfd_open(pid) {
                    session.watch(fd.as_raw_fd(), i as u32)?;
                    pidfds.push(fd);
                }
            }
        }
        Target::Command(p) => {
            if let Some(fd) = pidfd_open(p.pid) {
                session.watch(fd.as_raw_fd(), 0)?;
                pidfds.push(fd);
            }
        }
    }

    let stop = StopSignals::install()?;

    let (child_pid, mut exec_error) = match target {
        Target::Command(p) => {
            let pid = p.pid;
            match p.release() {
                Ok(()) => (Some(pid), None),
                Err(e) => (None, Some(e)),
            }
        }
        Target::Pids(_) => (None, None),
    };

    let bar = if args.quiet || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
        b.set_style(
            ProgressStyle::with_template("{spinner} recording {elapsed} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        b
    };

    let started = Instant::now();
    let mut buf = RecordBuf::new();
    let mut stats = Stats::default();
    let mut last_flush = Instant::now();
    let mut child_status: Option<i32> = None;
    let mut alive: Vec<bool> = pidfds.iter().map(|_| true).collect();
    let mut stop_reason = "interrupted";
    let mut last_status = Instant::now();
    let mut last_events = 0u64;
    let mut probe_busy = false;
    // When the command was told to stop (a forwarded signal, --duration).
    let mut forwarded: Option<Instant> = None;
    let rusage0 = cpu_time();

    let result: Result<()> = (|| {
        if exec_error.is_some() {
            stop_reason = "exec failed";
            return Ok(());
        }
        loop {
            // Poll faster while a new process may be about to open its probe
            // socket, or while probe rings (drained only here) are in use.
            let tick = if probe_busy {
                // Writers are filling their rings: drain again at once.
                Duration::ZERO
            } else if probes.as_ref().is_some_and(|p| p.looking() || p.active()) {
                Duration::from_millis(10)
            } else {
                Duration::from_millis(100)
            };
            let timeout = match args.duration {
                Some(d) => d.saturating_sub(started.elapsed()).min(tick),
                None => tick,
            };
            let ready = session.wait(timeout);
            session.drain(&mut events);
            let batch = write_batch(
                &mut events,
                &mut comm_filter,
                &schemas,
                &mut buf,
                &mut stats,
                &mut writer,
                &mut probes,
                &mut extras,
            );
            let probe_err = probes.as_mut().and_then(|p| {
                probe_busy = p.poll(&mut writer, &schemas, &mut buf) > 0;
                p.take_error()
            });
            if let Err(e) = batch.and(probe_err.map_or(Ok(()), Err)) {
                stop_reason = "write error";
                return Err(e).context("cannot write to the trace file");
            }
            if buf.byte_len() >= CHUNK_BYTES || (last_flush.elapsed() >= FLUSH_EVERY && !buf.is_empty()) {
                if let Err(e) = writer.write_events(&mut buf) {
                    stop_reason = "write error";
                    return Err(e).context("cannot write to the trace file");
                }
                last_flush = Instant::now();
            }
            for t in ready {
                if let Some(a) = alive.get_mut(t as usize) {
                    *a = false;
                }
            }
            if let Some(pid) = child_pid {
                if child_status.is_none() && !alive.first().copied().unwrap_or(true) {
                    child_status = reap(pid, false);
                }
                if child_status.is_some() {
                    if forwarded.is_none() {
                        stop_reason = "command exited";
                    }
                    break;
                }
            } else if !alive.is_empty() && alive.iter().all(|a| !a) {
                stop_reason = "all traced processes exited";
                break;
            }
            if args.duration.is_some_and(|d| started.elapsed() >= d) && forwarded.is_none() {
                stop_reason = "duration reached";
                break;
            }
            if let Some(sig) = stop.signal() {
                match child_pid {
                    // The command goes down with us, as under strace and perf:
                    // it gets the signal (unless the terminal sent it to both),
                    // recording goes on until it exits, and a second signal or
                    // a grace period ends it for good.
                    Some(pid) if child_status.is_none() => {
                        stop_reason = "interrupted";
                        match forwarded {
                            None => {
                                if !stop.sent_by_terminal() {
                                    send_signal(pid, sig);
                                }
                                forwarded = Some(Instant::now());
                            }
                            Some(at) if stop.count() > 1 || at.elapsed() >= STOP_GRACE => {
                                send_signal(pid, libc::SIGKILL)
                            }
                            Some(_) => {}
                        }
                    }
                    _ => break,
                }
            }
            if last_status.elapsed() >= Duration::from_millis(250) {
                let dt = last_status.elapsed().as_secs_f64();
                let rate = (stats.records - last_events) as f64 / dt;
                last_events = stats.records;
                last_status = Instant::now();
                bar.set_message(format!(
                    "{} events ({:.0}/s), {} lost, {} written",
                    stats.records,
                    rate,
                    stats.lost,
                    bytes(writer.bytes_written())
                ));
                bar.tick();
            }
        }
        Ok(())
    })();

    // Whatever happened, leave a complete file: drain, flush, write the End chunk.
    session.disable();
    session.drain_rest(&mut events);
    session.settle_lost(&mut events);
    drop(cgroup);
    let batch = write_batch(
        &mut events,
        &mut comm_filter,
        &schemas,
        &mut buf,
        &mut stats,
        &mut writer,
        &mut probes,
        &mut extras,
    );
    if let Some(p) = probes.as_mut() {
        p.poll(&mut writer, &schemas, &mut buf);
        p.finish(&mut writer, &schemas, &mut buf);
    }
    let batch = batch.and(probes.as_mut().and_then(|p| p.take_error()).map_or(Ok(()), Err));
    extras.finish(&schemas, &mut buf);
    if !args.quiet {
        for w in extras.warnings.drain(..) {
            eprintln!("weft: warning: {w}");
        }
    }
    if args.archive {
        match extras.archive(&args.output) {
            Ok((dir, n)) if !args.quiet => eprintln!("weft: archived {n} binaries in {}", dir.display()),
            Ok(_) => {}
            Err(e) => eprintln!("weft: warning: cannot archive binaries: {e}"),
        }
    }
    bar.finish_and_clear();
    let write_result = batch.and_then(|()| writer.write_events(&mut buf));
    if let (Some(pid), None) = (child_pid, child_status) {
        // After --duration the command runs on, untraced, and weft waits
        // for its status; stopped by an error, it must not run on.
        if stop_reason != "duration reached" {
            send_signal(pid, libc::SIGKILL);
        }
        child_status = reap(pid, true);
    }
    let end_mono = weft_kernel::monotonic_ns();
    let mut end: Vec<(&str, String)> = vec![
        (end_keys::END_MONOTONIC_NS, end_mono.to_string()),
        (end_keys::RECORDS, stats.records.to_string()),
        (end_keys::STOP_REASON, stop_reason.to_string()),
    ];
    let lost_keys: Vec<(String, u64)> = session
        .lost_per_cpu()
        .into_iter()
        .map(|(c, n)| (format!("{}{c}", end_keys::LOST_PREFIX), n))
        .collect();
    for (k, n) in &lost_keys {
        end.push((k.as_str(), n.to_string()));
    }
    if let Some(st) = child_status {
        end.push((end_keys::EXIT_STATUS, describe_status(st)));
    }
    let total = writer.bytes_written();
    let finish = writer.finish(&end);
    result?;
    write_result.context("cannot write to the trace file")?;
    let file = finish.context("cannot finish the trace file")?;
    file.sync_all().ok();

    let lost: u64 = session.lost_per_cpu().iter().map(|(_, n)| n).sum();
    if !args.quiet && exec_error.is_none() {
        let secs = started.elapsed().as_secs_f64();
        let cpu = cpu_time() - rusage0;
        eprintln!(
            "weft: recorded {} events ({} syscalls) in {:.2} s, {} lost, {} written to {}",
            stats.records,
            stats.syscalls,
            secs,
            lost,
            bytes(total),
            args.output.display()
        );
        eprintln!(
            "weft: recorder CPU time {:.2} s ({:.0}% of one core); stopped: {stop_reason}",
            cpu,
            100.0 * cpu / secs.max(1e-9)
        );
        if lost > 0 {
            let per: Vec<String> = session
                .lost_per_cpu()
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(c, n)| format!("CPU {c}: {n}"))
                .collect();
            eprintln!("weft: warning: {lost} events were lost because a ring buffer was full ({}); try a larger --buffer-size", per.join(", "));
        }
        if let Some(p) = probes.as_ref().filter(|p| p.attached > 0 || p.missed > 0) {
            eprintln!(
                "weft: weft-probe: {} events from {} attached processes, {} lost, {} damage reports",
                p.events, p.attached, p.lost, p.damage
            );
            if p.missed > 0 {
                eprintln!(
                    "weft: warning: weft-probe: {} instrumented processes were not recorded (`weft info` lists them and why)",
                    p.missed
                );
            }
        }
        if session.malformed() > 0 {
            eprintln!(
                "weft: warning: {} kernel records could not be decoded and were skipped",
                session.malformed()
            );
        }
        if let Some(st) = child_status {
            eprintln!("weft: {command_line}: {}", describe_status(st));
        }
    }
    // The trace is complete: the kernel's slow part of closing the events
    // need not hold up the exit.
    session.close_in_background();
    if let Some(e) = exec_error.take() {
        // Nothing ran: leave no file that claims a recording.
        let _ = std::fs::remove_file(&args.output);
        eprintln!("weft: error: {e}");
        return Ok(ExitCode::from(127));
    }
    Ok(match child_status {
        Some(st) if libc::WIFEXITED(st) => ExitCode::from(libc::WEXITSTATUS(st) as u8),
        Some(st) if libc::WIFSIGNALED(st) => ExitCode::from(128u8.wrapping_add(libc::WTERMSIG(st) as u8)),
        _ => ExitCode::SUCCESS,
    })
}

#[derive(Default)]
struct Stats {
    records: u64,
    syscalls: u64,
    lost: u64,
}

#[allow(clippy::too_many_arguments)] // the recorder loop's state, passed explicitly
fn write_batch(
    events: &mut Vec<KernelEvent>,
    filter: &mut Option<CommFilter>,
    schemas: &KernelSchemas,
    buf: &mut RecordBuf,
    stats: &mut Stats,
    writer: &mut TraceWriter<File>,
    probes: &mut Option<Probes>,
    extras: &mut Extras,
) -> std::io::Result<()> {
    // Sorted batches keep chunks' time ranges tight, which keeps reading cheap.
    events.sort_by_key(|e| e.ts);
    for ev in events.drain(..) {
        if let Some(p) = probes.as_mut() {
            p.observe(&ev);
        }
        extras.observe(&ev, schemas, buf);
        if buf.byte_len() >= CHUNK_BYTES {
            writer.write_events(buf)?;
        }
        if let Some(f) = filter.as_mut() {
            if !f.keep(&ev) {
                continue;
            }
        }
        match ev.kind {
            EventKind::SyscallEnter { .. } => stats.syscalls += 1,
            EventKind::Lost { count } => stats.lost += count,
            _ => {}
        }
        stats.records += 1;
        schemas.encode(&ev, buf);
    }
    Ok(())
}

/// Largest binary `--archive` copies.
const ARCHIVE_CAP: u64 = 1 << 30;

/// How long a command told to stop may take before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// SIGINT, SIGTERM and SIGHUP sent to the recorder: which came first, how
/// many, and whether the last came from the terminal (which sent it to the
/// command too).
struct StopSignals {
    first: Arc<AtomicI32>,
    count: Arc<AtomicU32>,
    terminal: Arc<AtomicBool>,
}

impl StopSignals {
    fn install() -> Result<StopSignals> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        use signal_hook::iterator::exfiltrator::WithOrigin;
        use signal_hook::low_level::siginfo::Cause;
        let s = StopSignals {
            first: Arc::new(AtomicI32::new(0)),
            count: Arc::new(AtomicU32::new(0)),
            terminal: Arc::new(AtomicBool::new(false)),
        };
        let mut signals = signal_hook::iterator::SignalsInfo::<WithOrigin>::new([SIGINT, SIGTERM, SIGHUP])
            .context("cannot install the signal handlers")?;
        let (first, count, terminal) = (s.first.clone(), s.count.clone(), s.terminal.clone());
        std::thread::Builder::new()
            .name("weft-signals".into())
            .spawn(move || {
                for o in signals.forever() {
                    // A terminal's Ctrl-C comes from the kernel, to the whole foreground group.
                    terminal.store(o.cause == Cause::Kernel, Ordering::Release);
                    let _ = first.compare_exchange(0, o.signal, Ordering::AcqRel, Ordering::Acquire);
                    count.fetch_add(1, Ordering::AcqRel);
                }
            })
            .context("cannot start the signal thread")?;
        Ok(s)
    }

    fn signal(&self) -> Option<i32> {
        Some(self.first.load(Ordering::Acquire)).filter(|&s| s != 0)
    }

    fn count(&self) -> u32 {
        self.count.load(Ordering::Acquire)
    }

    fn sent_by_terminal(&self) -> bool {
        self.terminal.load(Ordering::Acquire)
    }
}

fn send_signal(pid: u32, sig: i32) {
    // SAFETY: kill has no memory preconditions; the pid is our own unreaped child.
    unsafe { libc::kill(pid as i32, sig) };
}

/// Finds the command as execvp will, to say why it cannot run before any
/// trace file is made.
fn find_program(program: &std::ffi::OsStr) -> std::result::Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let p = std::path::Path::new(program);
    let check = |p: &std::path::Path| match std::fs::metadata(p) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(()),
        Ok(m) if m.is_dir() => Err("Is a directory".to_string()),
        Ok(_) => Err("Permission denied (not executable)".to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err("No such file or directory".to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err("Permission denied".to_string()),
        Err(e) => Err(e.to_string()),
    };
    let result = if program.as_encoded_bytes().contains(&b'/') {
        check(p)
    } else {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .map(|d| check(&d.join(p)))
            .find(|r| r.is_ok())
            .unwrap_or_else(|| Err("not found in PATH".to_string()))
    };
    result.map_err(|why| format!("cannot start `{}`: {why}", p.display()))
}

fn reap(pid: u32, block: bool) -> Option<i32> {
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid as i32, &mut status, if block { 0 } else { libc::WNOHANG }) };
        if r == pid as i32 {
            return Some(status);
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return None;
    }
}

fn describe_status(st: i32) -> String {
    if libc::WIFEXITED(st) {
        format!("exited with {}", libc::WEXITSTATUS(st))
    } else if libc::WIFSIGNALED(st) {
        let sig = libc::WTERMSIG(st);
        format!(
            "killed by {}{}",
            weft_analysis::names::signal_name(sig as i64),
            if libc::WCOREDUMP(st) { " (core dumped)" } else { "" }
        )
    } else {
        format!("status {st:#x}")
    }
}

fn cpu_time() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Sets the recorder's niceness. Best effort: without CAP_SYS_NICE the
/// kernel refuses a lower value, and the recorder keeps what it had.
fn raise_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    // SAFETY: setpriority on the calling thread (who = 0) has no memory preconditions.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
}

fn raise_fd_limit() {
    // SAFETY: get/setrlimit on our own process with a valid struct.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

fn uname() -> (String, String, String) {
    // SAFETY: uname fills the zeroed struct.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::uname(&mut u) } != 0 {
        return Default::default();
    }
    let s = |f: &[libc::c_char]| {
        let b: Vec<u8> = f.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
        String::from_utf8_lossy(&b).into_owned()
    };
    (s(&u.nodename), s(&u.release), s(&u.machine))
}

/// Things recorded on the side: JIT maps of traced processes, and the
/// binaries they mapped (for `--archive`).
#[derive(Default)]
struct Extras {
    pids: std::collections::BTreeSet<u32>,
    jit_done: std::collections::HashSet<u32>,
    binaries: std::collections::BTreeMap<Vec<u8>, String>,
    /// Kernel code addresses of every call chain, named at the end.
    kernel_addrs: std::collections::BTreeSet<u64>,
    /// Effective uid of each traced process, read when it is first seen.
    uids: HashMap<u32, u32>,
    /// Side data that could not be recorded, and why.
    warnings: Vec<String>,
}

impl Extras {
    fn observe(&mut self, ev: &KernelEvent, schemas: &KernelSchemas, buf: &mut RecordBuf) {
        match &ev.kind {
            EventKind::Mmap { filename, build_id, .. } if !build_id.is_empty() && filename.starts_with('/') => {
                self.binaries
                    .entry(build_id.clone())
                    .or_insert_with(|| filename.clone());
            }
            EventKind::Sample { kernel, .. } => self.kernel_addrs.extend(kernel),
            // JIT maps usually outlive their process, but read them while we know it ended.
            EventKind::Exit { group_dead: true } => self.jit(ev.pid, schemas, buf),
            _ => {}
        }
        if let EventKind::Fork { parent_pid, .. } = ev.kind {
            // A child that is gone before we look keeps its parent's uid.
            if let Some(&uid) = self.uids.get(&parent_pid) {
                self.uids.entry(ev.pid).or_insert(uid);
            }
        }
        if ev.pid != 0 && self.pids.insert(ev.pid) {
            if let Some(uid) = procfs::effective_uid(ev.pid) {
                self.uids.insert(ev.pid, uid);
            }
        }
    }

    fn jit(&mut self, pid: u32, schemas: &KernelSchemas, buf: &mut RecordBuf) {
        if !self.jit_done.insert(pid) {
            return;
        }
        // The program names this file and may have planted a link or a FIFO
        // there: read it only as a regular file of the process's own uid.
        let Some(&uid) = self.uids.get(&pid) else { return };
        // A record must fit in one chunk: keep the first 8 MiB of a huge map.
        let path = format!("/tmp/perf-{pid}.map");
        let text = match crate::outfile::read_untrusted(std::path::Path::new(&path), uid, 8 << 20) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                self.warnings.push(format!("{path} not read: {e}"));
                return;
            }
        };
        if let Some(id) = schemas.id_of(weft_format::std_schemas::JIT_MAP) {
            buf.record(id, weft_kernel::monotonic_ns(), None, pid, pid)
                .bytes(&text)
                .finish();
        }
    }

    fn finish(&mut self, schemas: &KernelSchemas, buf: &mut RecordBuf) {
        let pids: Vec<u32> = self.pids.iter().copied().collect();
        for pid in pids {
            self.jit(pid, schemas, buf);
        }
        // Name kernel frames now, from this machine's kallsyms, so that the
        // trace can be read anywhere (and without reading kallsyms again).
        if self.kernel_addrs.is_empty() {
            return;
        }
        let funcs = weft_symbols::KernelSymbols::load().subset(self.kernel_addrs.iter().copied());
        if let (Some(id), false) = (
            schemas.id_of(weft_format::std_schemas::KERNEL_SYMBOLS),
            funcs.is_empty(),
        ) {
            let (addrs, names) = funcs.to_table();
            buf.record(id, weft_kernel::monotonic_ns(), None, 0, 0)
                .u64s(&addrs)
                .bytes(&names)
                .finish();
        }
    }

    /// Copies every mapped binary with a build ID to `OUTPUT.d/<build-id>`.
    /// Only a file whose content has the build ID the kernel saw mapped is
    /// copied: a path swapped since (to a link, a FIFO, a root-only file)
    /// is left out.
    fn archive(&self, output: &std::path::Path) -> std::io::Result<(std::path::PathBuf, usize)> {
        use std::io::Write;
        let dir = crate::outfile::archive_dir(output)?;
        let mut n = 0;
        for (bid, path) in &self.binaries {
            let hex: String = bid.iter().map(|b| format!("{b:02x}")).collect();
            let Ok(data) = crate::outfile::read_regular(std::path::Path::new(path), ARCHIVE_CAP) else {
                continue;
            };
            if procfs::build_id(&data) != *bid {
                continue;
            }
            // An existing copy (same build ID) is kept.
            if let Ok(mut f) = crate::outfile::create_new_in(&dir, &hex) {
                f.write_all(&data)?;
                n += 1;
            }
        }
        Ok((dir, n))
    }
}
