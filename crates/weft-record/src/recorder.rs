//! The recorder: set up the kernel tracer and the probe collector for a
//! command or running processes, stream their events into the trace file
//! round by round, and leave a complete file however it stops.

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weft_format::{end_keys, info_keys, TraceWriter};
use weft_kernel::{os, procfs, Access, EventKind, KernelEvent, KernelTracer, TraceCgroup};
use weft_probe_collect::{Geometry, Mode};

use crate::encode::Encoder;
use crate::filter::CommFilter;
use crate::output::{self, Replaced};
use crate::probes::{ProbeTotals, Probes};
use crate::side::SideData;
use crate::vfork::Vforks;
use crate::{Level, Notice, RecordError};

/// Write what is buffered at least this often (`Options::flush_every`'s
/// usual value).
pub const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// How long a command told to stop may take before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How often the traced processes are re-listed while the kernel drops records.
const RESCAN_EVERY: Duration = Duration::from_millis(200);

/// What to record.
#[derive(Debug, Clone)]
pub enum Target {
    /// Start this command (looked up in PATH) and follow it and its descendants.
    Command(Vec<OsString>),
    /// Attach to these running processes, all their threads and future children.
    Pids(Vec<u32>),
}

/// weft-probe settings.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// `provider:event` globs to enable.
    pub patterns: Vec<String>,
    /// Flight-recorder mode: keep the newest events, read them at the end.
    pub overwrite: bool,
    /// Buffer bytes per thread slot.
    pub buffer: usize,
    /// Thread slots per process.
    pub threads: u32,
    /// Cap on buffer memory over all processes.
    pub memory: usize,
    /// Discard mode: how long a thread whose ring is full may wait for
    /// the recorder before dropping an event (zero: drop at once).
    pub wait: Duration,
}

/// Everything a recording is made from: plain values, as a front end
/// (a command line, a daemon, a test) would fill them in.
#[derive(Debug, Clone)]
pub struct Options {
    pub output: PathBuf,
    /// Overwrite an existing file instead of keeping it as `FILE.old`.
    pub force: bool,
    pub target: Target,
    /// `--syscalls` list (names, globs, classes); None records all.
    pub syscalls: Option<String>,
    /// Only processes whose name matches these globs.
    pub comm: Vec<String>,
    pub duration: Option<Duration>,
    /// Kernel ring bytes per CPU.
    pub buffer_size: usize,
    /// zstd level of the trace file.
    pub compression: i32,
    /// Follow a command through a private cgroup (else per-task events).
    pub cgroup: bool,
    /// The recorder's niceness (0 leaves it alone).
    pub nice: i32,
    /// Drain at real-time priority while weft-probe processes are attached
    /// (see `os::realtime_thread`); needs CAP_SYS_NICE, else ignored.
    pub realtime: bool,
    pub sample_hz: Option<u32>,
    pub stack_on: Vec<String>,
    /// Off-CPU time: a stack each time a traced thread blocks, and its
    /// context switches (how long until it ran again).
    pub off_cpu: bool,
    pub stack_size: usize,
    /// Copy mapped binaries next to the trace at the end.
    pub archive: bool,
    /// None: do not attach to weft-probe instrumented processes.
    pub probes: Option<ProbeOptions>,
    /// What syscall arguments point to, copied in the kernel; None:
    /// pointers only.
    pub capture: Option<CaptureLimits>,
    /// Longest time written events wait in memory before they reach the
    /// file (shorter for a live view that reads the file as it grows).
    pub flush_every: Duration,
}

/// How much of what syscall arguments point to is kept.
#[derive(Debug, Clone, Copy)]
pub struct CaptureLimits {
    /// Bytes of each string (strace's `-s`).
    pub strings: u32,
    /// Bytes of each data buffer (`write`, `read`, ...).
    pub buffers: u32,
    /// argv strings of an exec.
    pub argv: u32,
}

/// How far a recording got, for a live status line.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub elapsed: Duration,
    pub records: u64,
    pub lost: u64,
    pub bytes_written: u64,
}

/// A crash signal a traced thread got with no handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crash {
    pub pid: u32,
    pub tid: u32,
    pub sig: i32,
    /// si_code.
    pub code: i32,
    /// The fault address, when the kernel gave one and it was captured.
    pub addr: Option<u64>,
}

/// What a finished recording did.
#[derive(Debug, Clone)]
pub struct Summary {
    pub output: PathBuf,
    /// Kernel records written (probe events are in `probes`).
    pub records: u64,
    pub syscalls: u64,
    pub secs: f64,
    /// The recorder's own CPU time.
    pub cpu_secs: f64,
    /// Kernel events lost, per CPU.
    pub lost_per_cpu: Vec<(u32, u64)>,
    pub bytes: u64,
    pub stop_reason: &'static str,
    /// The command as started (empty with `Target::Pids`).
    pub command_line: String,
    /// The command's wait status, when it was reaped.
    pub exit_status: Option<i32>,
    /// Kernel records that could not be decoded.
    pub malformed: u64,
    pub probes: Option<ProbeTotals>,
    /// Where `archive` copied binaries, and how many.
    pub archived: Option<(PathBuf, usize)>,
    /// Binaries kept because their path no longer held them (deleted,
    /// replaced, or in a container), and where.
    pub rescued: Option<(PathBuf, usize)>,
    /// The command, still running after `--duration`: the caller's child to
    /// wait for (`weft_kernel::os::reap`) or to leave.
    pub still_running: Option<u32>,
    /// Sources of events this recording could not include, each with why
    /// and what would enable it.
    pub not_recorded: Vec<(String, String)>,
    /// Processes that died by a crash signal (SIGSEGV, SIGBUS, SIGABRT,
    /// SIGILL, SIGFPE, SIGTRAP delivered with no handler).
    pub crashes: Vec<Crash>,
    /// Ring size per CPU that would have kept what this recording lost (a
    /// power of two, at most 256 MiB); the size used when nothing was lost.
    pub suggested_buffer: usize,
}

impl Summary {
    pub fn lost(&self) -> u64 {
        self.lost_per_cpu.iter().fold(0u64, |a, (_, n)| a.saturating_add(*n))
    }
}

/// Counts of what went into the file.
#[derive(Default)]
struct Counts {
    records: u64,
    syscalls: u64,
    lost: u64,
}

/// A recording in progress. `start` sets it up, `step` runs one round,
/// `finish` completes the file; notices (warnings, information) go to the
/// callback given to `start`, never to a terminal.
pub struct Recorder {
    opts: Options,
    tracer: KernelTracer,
    enc: Encoder,
    side: SideData,
    vforks: Vforks,
    probes: Option<Probes>,
    filter: Option<CommFilter>,
    /// Kept until the end: removing it moves leftover processes back out.
    cgroup: Option<TraceCgroup>,
    child: Option<u32>,
    child_status: Option<i32>,
    pidfds: Vec<OwnedFd>,
    alive: Vec<bool>,
    events: Vec<KernelEvent>,
    counts: Counts,
    started: Instant,
    last_flush: Instant,
    probe_busy: bool,
    /// The trace writer thread, at niceness 19 until the recording ends.
    writer_tid: Arc<AtomicU32>,
    /// When a probe drain last found records.
    probe_seen: Option<Instant>,
    /// This thread runs under SCHED_FIFO now.
    realtime_on: bool,
    /// The drain runs under SCHED_BATCH (probe rings in use, none filling fast).
    batch_on: bool,
    /// Since when passes have found a probe ring filling fast.
    fast_since: Option<Instant>,
    /// The drain may preempt until then (an attach, or a ring filling fast
    /// for `SUSTAINED`).
    urgent_until: Option<Instant>,
    /// The kernel refused real-time priority once: not asked again.
    realtime_refused: bool,
    /// The writer thread runs at a normal priority for now (`pace_writer`).
    writer_boosted: bool,
    /// Rung by attach threads when they finish.
    wake: Option<Arc<os::Wake>>,
    /// Bytes the writer thread may have queued before draining pauses.
    max_backlog: usize,
    backlog_said: bool,
    /// The processes recording started with (the command, or `-p`'s).
    roots: Vec<u32>,
    /// The kernel dropped records this round; when the tree was last re-read.
    lost_lately: bool,
    last_rescan: Instant,
    /// When the command was told to stop, and how many stop requests came.
    forwarded: Option<Instant>,
    interrupts: u32,
    stop_reason: Option<&'static str>,
    write_error: Option<std::io::Error>,
    cpu0: f64,
    command_line: String,
    sources: Sources,
    /// Crash signals delivered with no handler.
    crashes: Vec<Crash>,
    /// Ring size per CPU in use.
    buffer_bytes: usize,
    notify: Box<dyn FnMut(Notice)>,
}

/// What a recording includes, and what it leaves out with why.
#[derive(Debug, Clone)]
struct Sources {
    recorded: Vec<String>,
    missing: Vec<(String, String)>,
}

impl Sources {
    fn new(user_only: Option<&str>, kernel: bool, opts: &Options) -> Sources {
        let mut recorded = Vec::new();
        let mut missing = Vec::new();
        match user_only {
            None => recorded.extend(["syscalls", "signals"].map(String::from)),
            Some(why) => {
                missing.push(("syscalls".to_string(), why.to_string()));
                missing.push(("signals".to_string(), why.to_string()));
                if !opts.stack_on.is_empty() {
                    missing.push(("stacks on events (--stack-on)".to_string(), why.to_string()));
                }
                if opts.syscalls.is_some() {
                    missing.push(("--syscalls selection".to_string(), why.to_string()));
                }
            }
        }
        recorded.push("process lifecycle".into());
        recorded.push("memory maps".into());
        if opts.sample_hz.is_some() {
            if kernel {
                recorded.push("CPU samples".into());
            } else {
                recorded.push("CPU samples of user space".into());
                missing.push((
                    "kernel stacks of CPU samples".to_string(),
                    format!(
                        "kernel profiling needs CAP_PERFMON, root, or kernel.perf_event_paranoid 1 or less; it is {}",
                        weft_kernel::perf_event_paranoid().map_or("unknown".into(), |p| p.to_string())
                    ),
                ));
            }
        }
        if opts.off_cpu {
            match user_only {
                None => recorded.push("off-CPU time".into()),
                Some(why) => missing.push(("off-CPU stacks (--off-cpu)".to_string(), why.to_string())),
            }
        }
        if opts.probes.is_some() {
            recorded.push("weft-probe events".into());
        } else {
            missing.push(("weft-probe events".to_string(), "--no-probes".to_string()));
        }
        Sources { recorded, missing }
    }

    fn missing_names(&self) -> Vec<&str> {
        self.missing.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// `name (why); name (why)`, or empty.
    fn missing_text(&self) -> String {
        self.missing
            .iter()
            .map(|(n, why)| format!("{n} ({why})"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl Recorder {
    /// Checks the options, creates the trace file, opens the kernel events,
    /// and starts the command (or attaches to the processes). A command
    /// that cannot start leaves no file.
    pub fn start(opts: Options, notify: impl FnMut(Notice) + 'static) -> Result<Recorder, RecordError> {
        let mut notify: Box<dyn FnMut(Notice)> = Box::new(notify);
        match &opts.target {
            Target::Command(c) if c.is_empty() => return Err(RecordError::NothingToRecord),
            Target::Pids(p) if p.is_empty() => return Err(RecordError::NothingToRecord),
            _ => {}
        }
        let (tfs, user_only, kernel) = match weft_kernel::tracing_access()? {
            Access::Full(tfs) => (Some(tfs), None, true),
            Access::UserOnly { why, kernel } => (None, Some(why), kernel),
        };
        let table = match &tfs {
            Some(tfs) => weft_kernel::syscalls::syscall_table(tfs),
            None => weft_format::SyscallTable::default(),
        };
        let sources = Sources::new(user_only.as_deref(), kernel, &opts);
        let selection = match opts.syscalls.as_ref().filter(|_| tfs.is_some()) {
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
        if let Target::Pids(pids) = &opts.target {
            for &pid in pids {
                if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                    return Err(RecordError::NoSuchProcess { pid });
                }
                // CAP_PERFMON does not lift the ptrace check on other users' tasks.
                let uid = os::euid();
                if let Some(owner) = procfs::effective_uid(pid).filter(|&o| uid != 0 && o != uid) {
                    return Err(RecordError::NotYours { pid, owner, uid });
                }
            }
        }
        if let Target::Command(argv) = &opts.target {
            // Said before a trace file exists: no file claims a recording.
            find_program(&argv[0])?;
        }
        if let Some(why) = &user_only {
            notify(Notice {
                level: Level::Warning,
                text: format!(
                    "no tracepoints ({why}): recording {}; not recording {} (README, \"Recording without root\", says what each needs)",
                    sources.recorded.join(", "),
                    sources.missing_names().join(", "),
                ),
            });
        }
        let filter =
            CommFilter::new(&opts.comm).map_err(|e| RecordError::BadOption(format!("invalid --comm pattern: {e}")))?;
        let probe_setup = match &opts.probes {
            Some(p) => {
                let geo = Geometry {
                    slots: p.threads,
                    subbufs: 8,
                    subbuf_size: (p.buffer / 8).next_multiple_of(4096) as u32,
                };
                geo.validate()
                    .map_err(|e| RecordError::BadOption(format!("invalid weft-probe buffer settings: {e}")))?;
                if p.wait > Duration::from_secs(1) {
                    return Err(RecordError::BadOption(format!(
                        "--probe-wait {:?} is longer than the 1s a traced thread may be held up",
                        p.wait
                    )));
                }
                let mode = if p.overwrite { Mode::Overwrite } else { Mode::Discard };
                Some(Probes::new(p.patterns.clone(), mode, geo, p.memory, p.wait))
            }
            None => None,
        };
        os::raise_fd_limit();

        let mut out = output::create(&opts.output, opts.force).map_err(|error| RecordError::Output {
            path: opts.output.clone(),
            error,
        })?;
        let file = out.file.try_clone().map_err(|error| RecordError::Output {
            path: opts.output.clone(),
            error,
        })?;
        // From here on, a failure removes the file it made.
        let fail = |out: &output::NewTrace, e: RecordError| {
            out.discard();
            e
        };
        let buffer_bytes = match (&user_only, weft_kernel::user_ring_limit()) {
            (Some(_), Some(limit)) if opts.buffer_size > limit => {
                notify(Notice {
                    level: Level::Info,
                    text: format!(
                        "ring buffers of {} KiB per CPU, the most kernel.perf_event_mlock_kb lets a user lock without CAP_IPC_LOCK",
                        limit >> 10
                    ),
                });
                limit
            }
            _ => opts.buffer_size,
        };
        let mut tracer = KernelTracer::new(
            tfs.as_ref(),
            weft_kernel::Options {
                buffer_bytes,
                syscalls: selection.clone(),
                sample_hz: opts.sample_hz,
                stack_bytes: (opts.stack_size.min(65528) / 8 * 8) as u32,
                stack_on: match (&tfs, opts.off_cpu) {
                    (None, _) => Vec::new(),
                    (Some(_), false) => opts.stack_on.clone(),
                    (Some(_), true) => {
                        let mut v = opts.stack_on.clone();
                        v.push("sched_switch".into());
                        v
                    }
                },
                exclude_kernel: !kernel,
                switches: opts.off_cpu,
                capture: opts
                    .capture
                    .filter(|_| tfs.is_some())
                    .map(|c| weft_kernel::CaptureOptions {
                        string_limit: c.strings,
                        buffer_limit: c.buffers,
                        argv_limit: c.argv,
                        specs: table
                            .entries
                            .iter()
                            .filter(|e| selection.as_ref().is_none_or(|s| s.contains(&e.nr)))
                            .filter_map(|e| Some((e.nr, weft_kernel::argspec::arg_spec(e)?)))
                            .collect(),
                    }),
            },
        )
        .map_err(|e| fail(&out, e.into()))?;

        let mut side = SideData::new(&opts.output);
        let mut probes = probe_setup;
        let mut cgroup = None;
        let mut paused = None;
        match &opts.target {
            Target::Pids(pids) => {
                for &pid in pids {
                    tracer
                        .attach_process(pid)
                        .map_err(|source| fail(&out, RecordError::Attach { pid, source }))?;
                    side.process(pid, None);
                    if let Some(p) = probes.as_mut() {
                        p.watch(pid);
                    }
                }
            }
            Target::Command(argv) => {
                // An instrumented command waits (bounded) for us to attach
                // before main; only the command is told so.
                let env: &[(&str, &str)] = if probes.is_some() {
                    &[("WEFT_PROBE_WAIT_MS", "5000")]
                } else {
                    &[]
                };
                let p = weft_kernel::spawn_paused(argv, env).map_err(|e| fail(&out, e.into()))?;
                // A user may not create cgroups in the hierarchy perf uses.
                let cgroup_wanted = opts.cgroup && !tracer.user_only();
                let attached = match cgroup_wanted.then(|| TraceCgroup::create_for(p.pid)) {
                    Some(Ok(cg)) => {
                        let r = tracer.attach_cgroup(&cg, p.pid);
                        cgroup = Some(cg);
                        r
                    }
                    other => {
                        if let Some(Err(why)) = other {
                            notify(Notice {
                                level: Level::Info,
                                text: format!("not using a cgroup ({why}); following the command with per-task events, which makes forks slower"),
                            });
                        }
                        tracer.attach(p.pid, true)
                    }
                };
                if let Err(e) = attached {
                    p.abort();
                    return Err(fail(&out, RecordError::Setup(e)));
                }
                if let Some(pr) = probes.as_mut() {
                    pr.watch(p.pid);
                }
                // The command runs with our uid (it is forked from us).
                side.process(p.pid, Some(os::euid()));
                paused = Some(p);
            }
        }
        if let Some(why) = tracer.capture_unavailable() {
            notify(Notice {
                level: Level::Warning,
                text: format!("syscall arguments are recorded as pointers only (no strings, paths or buffers): {why}"),
            });
        }
        // After the command was forked, so that it keeps the caller's niceness.
        if opts.nice != 0 {
            os::set_niceness(opts.nice);
        }
        // Drains are due within a fraction of a millisecond when a program
        // writes probe events fast: this thread must run when it wakes.
        os::short_slices(Duration::from_micros(100));
        os::precise_timers();

        let start_mono = weft_kernel::monotonic_ns();
        let command_line = match &opts.target {
            Target::Command(argv) => argv
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" "),
            Target::Pids(_) => String::new(),
        };
        let (host, release, machine) = os::uname();
        let info = vec![
            (info_keys::CLOCK, "CLOCK_MONOTONIC".to_string()),
            (info_keys::HOSTNAME, host),
            (info_keys::KERNEL_RELEASE, release),
            (info_keys::MACHINE, machine),
            (info_keys::COMMAND, command_line.clone()),
            (
                info_keys::TARGET,
                match &opts.target {
                    Target::Command(_) => "command".into(),
                    Target::Pids(pids) => {
                        format!("pid {}", pids.iter().map(u32::to_string).collect::<Vec<_>>().join(","))
                    }
                },
            ),
            (info_keys::RECORDER, format!("weft {}", env!("CARGO_PKG_VERSION"))),
            (info_keys::START_MONOTONIC_NS, start_mono.to_string()),
            (info_keys::START_REALTIME_NS, weft_kernel::realtime_ns().to_string()),
            (
                info_keys::SYSCALLS,
                opts.syscalls.clone().unwrap_or_else(|| "all".into()),
            ),
            (info_keys::NCPUS, tracer.cpus().len().to_string()),
            (info_keys::SOURCES, sources.recorded.join(", ")),
            (
                info_keys::SAMPLE_HZ,
                opts.sample_hz.map_or_else(String::new, |hz| hz.to_string()),
            ),
            (info_keys::STACK_ON, opts.stack_on.join(",")),
            (info_keys::NOT_RECORDED, sources.missing_text()),
        ];
        // Published once it has its header: a kill before leaves no file
        // at the output path, a kill after a file that reads.
        // Compressing and writing run on a thread of their own, at the
        // lowest priority: a drain is never late because of them, and
        // they never take a CPU from the traced program (until the end,
        // when the thread gets a normal priority to finish).
        let writer_tid = Arc::new(AtomicU32::new(0));
        // The command is forked already: this is the recorder's alone.
        os::no_huge_pages();
        let header = TraceWriter::new(file, &info, opts.compression).and_then(|mut w| {
            w.write_syscall_table(&table)?;
            let replaced = out.publish()?;
            let tid = Arc::clone(&writer_tid);
            // Writeback started from the writer thread every few MiB, at
            // its idle priority. Left to the kernel's flusher threads, a
            // fast trace stayed dirty in memory by the gigabyte, and any
            // recorder thread writing a file (stderr to a log) was
            // throttled with it: with the drain logging each pass to a
            // file, 4 of 6 recordings at 25 M events/s lost events, none
            // of 6 with this (1 of 6 either way without that log).
            let mut since = 0u64;
            let written = move |f: &mut File, n: u64| {
                since += n;
                if since >= WRITEBACK_EVERY {
                    since = 0;
                    if let Ok(m) = f.metadata() {
                        os::start_writeback(f.as_fd(), m.len() & !4095);
                    }
                }
            };
            let w = w.in_background(
                max_backlog(),
                move || tid.store(os::idle_thread(), Ordering::Relaxed),
                written,
            )?;
            Ok((w, replaced))
        });
        let w = match header {
            Ok((w, replaced)) => {
                if let Replaced::MovedTo(old) = replaced {
                    notify(Notice {
                        level: Level::Info,
                        text: format!(
                            "kept the previous {} as {} (--force overwrites)",
                            opts.output.display(),
                            old.display()
                        ),
                    });
                }
                w
            }
            Err(e) => {
                if let Some(p) = paused {
                    p.abort();
                }
                return Err(fail(&out, RecordError::Write(e)));
            }
        };
        let enc = Encoder::new(w, &table);

        // What existed before we attached: names and maps of running processes.
        let mut events: Vec<KernelEvent> = Vec::new();
        let mut pidfds = Vec::new();
        let watched: Vec<u32> = match (&opts.target, &paused) {
            (Target::Pids(pids), _) => {
                for &pid in pids {
                    events.extend(procfs::snapshot(pid, start_mono));
                }
                pids.clone()
            }
            (_, Some(p)) => {
                // What the command starts with (stdin, stdout, ...), as
                // its exec will leave them: what its fds refer to (dump -y).
                events.extend(procfs::fd_events(p.pid, start_mono, true));
                vec![p.pid]
            }
            _ => Vec::new(),
        };
        for &pid in &watched {
            if let Some(fd) = os::pidfd_open(pid) {
                // The token is the pidfd's index: `alive` has one entry per pidfd.
                tracer
                    .watch(fd.as_raw_fd(), pidfds.len() as u32)
                    .map_err(|e| fail(&out, e.into()))?;
                pidfds.push(fd);
            }
        }

        let child = match paused {
            Some(p) => {
                let pid = p.pid;
                if let Err(e) = p.release() {
                    // Nothing ran: leave no file that claims a recording.
                    drop(enc);
                    return Err(fail(&out, e.into()));
                }
                Some(pid)
            }
            None => None,
        };
        // A finished attach wakes the loop: the process may write flat out
        // from then on, and its ring must be drained soon.
        let wake = match os::Wake::new() {
            Ok(w) if tracer.watch_always(w.fd(), WAKE_TOKEN).is_ok() => Some(Arc::new(w)),
            _ => None,
        };
        if let (Some(p), Some(w)) = (probes.as_mut(), &wake) {
            p.set_wake(Arc::clone(w));
        }
        let alive = pidfds.iter().map(|_| true).collect();
        Ok(Recorder {
            opts,
            tracer,
            enc,
            side,
            vforks: Vforks::default(),
            probes,
            filter,
            cgroup,
            child,
            child_status: None,
            pidfds,
            alive,
            events,
            counts: Counts::default(),
            started: Instant::now(),
            last_flush: Instant::now(),
            probe_busy: false,
            writer_tid,
            max_backlog: max_backlog(),
            backlog_said: false,
            probe_seen: None,
            realtime_on: false,
            batch_on: false,
            fast_since: None,
            urgent_until: None,
            realtime_refused: false,
            writer_boosted: false,
            wake,
            roots: watched,
            lost_lately: false,
            last_rescan: Instant::now(),
            forwarded: None,
            interrupts: 0,
            stop_reason: None,
            write_error: None,
            cpu0: os::cpu_time(),
            command_line,
            sources,
            crashes: Vec::new(),
            buffer_bytes,
            notify,
        })
    }

    /// A stop request (SIGINT, SIGTERM, SIGHUP reached the front end).
    /// With a command, the command goes down too, as under strace and perf:
    /// it gets the signal (unless the terminal already sent it to both),
    /// recording goes on until it exits, and a second request or a grace
    /// period ends it with SIGKILL. Otherwise recording stops.
    pub fn interrupt(&mut self, sig: i32, sent_by_terminal: bool) {
        self.interrupts += 1;
        match self.child {
            Some(pid) if self.child_status.is_none() => {
                if self.forwarded.is_none() {
                    if !sent_by_terminal {
                        os::send_signal(pid, sig);
                    }
                    self.forwarded = Some(Instant::now());
                }
            }
            _ => {
                self.stop_reason.get_or_insert("interrupted");
            }
        }
    }

    /// The writer thread runs under SCHED_IDLE so that compressing takes
    /// no CPU the traced program or the drain wants; but what it has not
    /// written is lost if the recorder is killed. When chunks have waited
    /// too long (every CPU busy), it gets a normal priority until it has
    /// caught up.
    fn pace_writer(&mut self) {
        let tid = self.writer_tid.load(Ordering::Relaxed);
        if tid == 0 {
            return;
        }
        if !self.writer_boosted && self.enc.w.stalled() > WRITER_STALL {
            // Niceness 0: ahead of nothing the traced program runs, and
            // behind the draining thread.
            os::normal_thread(tid, Some(0));
            self.writer_boosted = true;
        } else if self.writer_boosted && self.enc.w.backlog() == 0 {
            os::idle_thread_again(tid);
            self.writer_boosted = false;
        }
    }

    /// One round: wait for data (at most a tick), drain the kernel rings
    /// and the probe buffers into the file. False once recording is over.
    pub fn step(&mut self) -> bool {
        if self.stop_reason.is_some() {
            return false;
        }
        // Poll faster while a new process may be about to open its probe
        // socket, or while probe rings (drained only here) are in use.
        // A probe ring filling fast is drained again after a quarter of
        // the time it takes to fill (chunks are compressed and written by
        // the writer thread meanwhile).
        // A ring that had records but no pace yet is read again at once; a
        // process whose ring filled fast in the last second, or that was
        // just attached (a program that waited for us starts writing flat
        // out at once, and its first passes' pace says little), at least
        // every QUICK_TICK; others every 10 ms. A finished attach wakes the
        // loop at once.
        let fill = self
            .probes
            .as_ref()
            .and_then(|p| p.fill_time())
            .filter(|_| self.probe_busy);
        let active = self.probes.as_ref().is_some_and(|p| p.active());
        let now = Instant::now();
        let fast = fill.is_some_and(|f| f < FAST_RING);
        if fast {
            self.probe_seen = Some(now);
        }
        let recent = self.probe_seen.is_some_and(|t| t.elapsed() < Duration::from_secs(1));
        // A ring filling fast for SUSTAINED or longer (not one short burst)
        // needs the drain on time: for the next second it may preempt.
        match (fast, self.fast_since) {
            (false, _) => self.fast_since = None,
            (true, None) => self.fast_since = Some(now),
            (true, Some(t)) if now.duration_since(t) >= SUSTAINED => {
                self.urgent_until = Some(now + Duration::from_secs(1));
            }
            (true, Some(_)) => {}
        }
        let urgent = self.urgent_until.is_some_and(|u| now < u);
        // Real-time while probe rings are drained; a real-time thread must
        // not spin, or the trace writer thread could not run on its CPU.
        let realtime = self.opts.realtime && active && !self.realtime_refused;
        if realtime != self.realtime_on {
            if os::realtime_thread(realtime) {
                self.realtime_on = realtime;
            } else {
                self.realtime_refused = true;
            }
        }
        // Probe rings that are not filling fast, or only in short bursts,
        // leave the drain time: it then waits for the CPU rather than
        // preempting the traced program when it wakes (in bursts it took
        // the writer's CPU for 16-137 µs 31 times in 50 bursts, 5 ns per
        // event written).
        let batch = active && !urgent && !self.realtime_on;
        if batch != self.batch_on {
            // Leaving batch for real time: SCHED_FIFO is already set.
            if batch || !self.realtime_on {
                os::batch_thread(batch);
            }
            self.batch_on = batch;
        }
        let tick = if let Some(f) = fill {
            (f / 4).min(if recent { QUICK_TICK } else { Duration::from_millis(10) })
        } else if self.probe_busy {
            if self.realtime_on {
                RT_BREATHER
            } else {
                Duration::ZERO
            }
        } else if active && recent {
            QUICK_TICK
        } else if active || self.probes.as_ref().is_some_and(|p| p.looking()) {
            Duration::from_millis(10)
        } else {
            Duration::from_millis(100)
        };
        // A real-time thread never goes straight on (a pass that found half
        // a ring makes the pace estimate zero).
        let tick = if self.realtime_on { tick.max(RT_BREATHER) } else { tick };
        let timeout = match self.opts.duration {
            Some(d) => d.saturating_sub(self.started.elapsed()).min(tick),
            None => tick,
        };
        let ready = self.tracer.wait(timeout);
        if ready.contains(&WAKE_TOKEN) {
            if let Some(w) = &self.wake {
                w.clear();
            }
            self.probe_seen = Some(Instant::now());
            // A program that waited for us writes flat out at once.
            self.urgent_until = Some(Instant::now() + Duration::from_secs(1));
        }
        self.pace_writer();
        // More waiting to be written than the budget: the rings keep what
        // they can until the writer thread catches up (what they cannot
        // keep is counted lost, as always).
        let backlog = self.enc.w.backlog();
        if backlog > self.max_backlog {
            // Nothing is drained: wait for the writer thread, not spin.
            self.probe_busy = false;
            if !self.backlog_said {
                self.backlog_said = true;
                (self.notify)(Notice {
                    level: Level::Warning,
                    text: format!(
                        "{} MiB of events wait to be compressed and written; draining pauses until that shrinks (events may be lost meanwhile, and are counted)",
                        backlog >> 20
                    ),
                });
            }
        } else {
            self.tracer.drain(&mut self.events);
            self.write_batch();
            if self.lost_lately && self.last_rescan.elapsed() >= RESCAN_EVERY {
                self.rescan();
            }
            if let Some(p) = self.probes.as_mut() {
                self.probe_busy = p.poll(&mut self.enc) > 0;
            }
        }
        self.pass_notices();
        if self.last_flush.elapsed() >= self.opts.flush_every && self.enc.w.buffered() > 0 {
            if let Err(e) = self.enc.w.flush() {
                self.write_error.get_or_insert(e);
            }
            self.last_flush = Instant::now();
        }
        if self.write_error.is_some() || self.enc.w.error().is_some() {
            self.stop_reason = Some("write error");
            return false;
        }
        for t in ready {
            if let Some(a) = self.alive.get_mut(t as usize) {
                *a = false;
            }
        }
        if let Some(pid) = self.child {
            // Its pidfd says when it exits; without one, ask every round.
            if self.child_status.is_none() && !self.alive.first().copied().unwrap_or(false) {
                self.child_status = os::reap(pid, false);
            }
            if self.child_status.is_some() {
                self.stop_reason = Some(if self.forwarded.is_some() {
                    "interrupted"
                } else {
                    "command exited"
                });
                return false;
            }
            if let Some(at) = self.forwarded {
                if self.interrupts > 1 || at.elapsed() >= STOP_GRACE {
                    os::send_signal(pid, libc::SIGKILL);
                }
            }
        } else if !self.alive.is_empty() && self.alive.iter().all(|a| !a) {
            self.stop_reason = Some("all traced processes exited");
            return false;
        }
        if self.forwarded.is_none() && self.opts.duration.is_some_and(|d| self.started.elapsed() >= d) {
            self.stop_reason = Some("duration reached");
            return false;
        }
        true
    }

    /// After kernel losses: fork and exec records may be among them, so the
    /// traced processes are listed from the cgroup (or /proc) and any the
    /// probe collector never looked for is looked for now.
    fn rescan(&mut self) {
        self.lost_lately = false;
        self.last_rescan = Instant::now();
        let Some(p) = self.probes.as_mut() else { return };
        let pids = match &self.cgroup {
            Some(cg) => cg.processes(),
            None => procfs::descendants(&self.roots),
        };
        p.rediscover(&pids);
    }

    pub fn progress(&self) -> Progress {
        Progress {
            elapsed: self.started.elapsed(),
            records: self.counts.records,
            lost: self.counts.lost,
            bytes_written: self.enc.w.bytes_written(),
        }
    }

    /// Kernel events of this round, sorted (chunks with tight time ranges
    /// read faster), through the side data and the filter into the file.
    fn write_batch(&mut self) {
        self.events.sort_by_key(|e| e.ts);
        for ev in self.events.drain(..) {
            if let Some(p) = self.probes.as_mut() {
                p.observe(&ev);
                self.lost_lately |= matches!(ev.kind, EventKind::Lost { .. });
            }
            self.side.observe(&ev, &mut self.enc);
            if let Some(f) = self.filter.as_mut() {
                if !f.keep(&ev) {
                    continue;
                }
            }
            self.vforks.observe(&ev, &mut self.enc);
            if let EventKind::SignalDeliver {
                sig,
                code,
                handler: 0,
                addr,
                ..
            } = ev.kind
            {
                let crash = [
                    libc::SIGSEGV,
                    libc::SIGBUS,
                    libc::SIGABRT,
                    libc::SIGILL,
                    libc::SIGFPE,
                    libc::SIGTRAP,
                ];
                if crash.contains(&sig) && self.crashes.len() < 16 {
                    self.crashes.push(Crash {
                        pid: ev.pid,
                        tid: ev.tid,
                        sig,
                        code,
                        addr,
                    });
                }
            }
            match ev.kind {
                EventKind::SyscallEnter { .. } => self.counts.syscalls += 1,
                EventKind::Lost { count } => self.counts.lost = self.counts.lost.saturating_add(count),
                _ => {}
            }
            self.counts.records += 1;
            self.enc.kernel(&ev);
        }
    }

    fn pass_notices(&mut self) {
        if let Some(p) = self.probes.as_mut() {
            for n in p.notices.drain(..) {
                (self.notify)(n);
            }
        }
        for text in self.side.warnings.drain(..) {
            (self.notify)(Notice {
                level: Level::Warning,
                text,
            });
        }
    }

    /// Whatever happened, leaves a complete file: drains what is left,
    /// detaches, writes the side data and the End chunk. Returns what the
    /// recording did, or the write error that stopped it (after finishing
    /// the file as far as it can).
    pub fn finish(mut self) -> Result<Summary, RecordError> {
        let stop_reason = self.stop_reason.unwrap_or("interrupted");
        self.tracer.disable();
        self.tracer.drain_rest(&mut self.events);
        self.tracer.settle_lost(&mut self.events);
        let capture_lost = self.tracer.capture_lost();
        if capture_lost > 0 {
            (self.notify)(Notice {
                level: Level::Warning,
                text: format!(
                    "the arguments of {capture_lost} syscalls were not captured (their CPU's ring was full; those calls show pointers, and the kernel's loss count includes them)"
                ),
            });
        }
        drop(self.cgroup.take());
        self.write_batch();
        if let Some(p) = self.probes.as_mut() {
            p.poll(&mut self.enc);
            p.finish(&mut self.enc);
        }
        self.side.finish(&mut self.enc);
        self.pass_notices();
        let archived = if self.opts.archive {
            match self.side.archive(&self.opts.output) {
                Ok(a) => Some(a),
                Err(e) => {
                    (self.notify)(Notice {
                        level: Level::Warning,
                        text: format!("cannot archive binaries: {e}"),
                    });
                    None
                }
            }
        } else {
            None
        };
        let mut still_running = None;
        if let (Some(pid), None) = (self.child, self.child_status) {
            // After --duration the command runs on, untraced (the caller may
            // wait for it); stopped by an error, it must not run on.
            if stop_reason == "duration reached" {
                still_running = Some(pid);
            } else {
                os::send_signal(pid, libc::SIGKILL);
                self.child_status = os::reap(pid, true);
            }
        }
        let lost_per_cpu = self.tracer.lost_per_cpu();
        let suggested_buffer = {
            let records = self.counts.records.max(1);
            let lost: u64 = lost_per_cpu.iter().map(|(_, n)| n).sum();
            let factor = records
                .saturating_add(lost)
                .div_ceil(records)
                .clamp(2, 64)
                .next_power_of_two() as usize;
            if lost > 0 {
                (self.buffer_bytes * factor).min(256 << 20)
            } else {
                self.buffer_bytes
            }
        };
        let mut end: Vec<(&str, String)> = vec![
            (end_keys::END_MONOTONIC_NS, weft_kernel::monotonic_ns().to_string()),
            (end_keys::RECORDS, self.counts.records.to_string()),
            (end_keys::STOP_REASON, stop_reason.to_string()),
        ];
        let lost_keys: Vec<(String, u64)> = lost_per_cpu
            .iter()
            .map(|(c, n)| (format!("{}{c}", end_keys::LOST_PREFIX), *n))
            .collect();
        for (k, n) in &lost_keys {
            end.push((k.as_str(), n.to_string()));
        }
        if let Some(st) = self.child_status {
            end.push((end_keys::EXIT_STATUS, describe_status(st)));
            if let Some(pid) = self.child {
                end.push((end_keys::COMMAND_PID, pid.to_string()));
            }
        }
        let Recorder {
            enc,
            tracer,
            write_error,
            ..
        } = self;
        // What is still queued is written now, at a normal priority.
        let tid = self.writer_tid.load(Ordering::Relaxed);
        if tid != 0 {
            os::normal_thread(tid, None);
        }
        let backlog = enc.w.backlog();
        if backlog > 64 << 20 {
            (self.notify)(Notice {
                level: Level::Info,
                text: format!(
                    "writing the last {:.0} MiB of the trace (compressed as they are written)",
                    backlog as f64 / (1 << 20) as f64
                ),
            });
        }
        let bytes_before_end = enc.w.bytes_written();
        let finished = enc.w.finish(&end);
        let summary = Summary {
            output: self.opts.output.clone(),
            records: self.counts.records,
            syscalls: self.counts.syscalls,
            secs: self.started.elapsed().as_secs_f64(),
            cpu_secs: os::cpu_time() - self.cpu0,
            lost_per_cpu,
            bytes: bytes_before_end,
            stop_reason,
            command_line: self.command_line.clone(),
            exit_status: self.child_status,
            malformed: tracer.malformed(),
            probes: self.probes.as_ref().map(|p| p.totals.clone()),
            archived,
            rescued: self.side.rescued.take(),
            still_running,
            not_recorded: self.sources.missing.clone(),
            crashes: self.crashes.clone(),
            suggested_buffer,
        };
        // The trace is complete: the kernel's slow part of closing the
        // events need not hold up the caller.
        tracer.close_in_background();
        drop(self.pidfds);
        if let Some(e) = write_error {
            return Err(RecordError::Write(e));
        }
        let file = finished.map_err(RecordError::Write)?;
        file.sync_all().ok();
        let mut summary = summary;
        summary.bytes = file.metadata().map_or(bytes_before_end, |m| m.len());
        Ok(summary)
    }
}

/// A ring that would fill sooner than this is a fast one.
const FAST_RING: Duration = Duration::from_millis(40);
/// How long rings must keep filling fast before the drain may preempt the
/// traced program: longer than a burst, a quarter of the time a flat-out
/// writer (50 M events/s) takes to fill a default ring.
const SUSTAINED: Duration = Duration::from_millis(1);
/// How often a process that was just attached, or whose ring filled fast
/// in the last second, is drained: a quarter of the time a 2 MiB ring
/// takes to fill at the fastest rate measured here (about 50 M events/s of
/// 40 bytes; the default ring is 8 MiB).
const QUICK_TICK: Duration = Duration::from_micros(250);
/// The pause between two passes that both found records, under real-time
/// priority: lets other threads on this CPU run, without a ring filling
/// meanwhile.
const RT_BREATHER: Duration = Duration::from_micros(20);

/// The wait-set token of the attach-finished eventfd (pidfds use their index).
const WAKE_TOKEN: u32 = u32::MAX;

/// How long chunks may wait on a starved writer thread before it gets a
/// normal priority: bounds what a `kill -9` of the recorder can lose.
const WRITER_STALL: Duration = Duration::from_secs(1);

/// Bytes written to the trace between two writebacks started by the
/// writer thread.
const WRITEBACK_EVERY: u64 = 8 << 20;

/// Most bytes of events queued for the writer thread: a burst of a
/// flat-out probe writer (about 2.4 GB/s here) outruns any compressor, and
/// is kept in memory up to this (or a quarter of the RAM, if less).
const MAX_BACKLOG: usize = 1 << 30;

/// Bytes of chunks that may wait for the writer thread before draining
/// pauses: a quarter of the RAM, from 64 MiB to `MAX_BACKLOG`.
fn max_backlog() -> usize {
    (os::total_memory() / 4).clamp(64 << 20, MAX_BACKLOG as u64) as usize
}

/// `exited with 3`, `killed by SIGSEGV (core dumped)`.
pub fn describe_status(st: i32) -> String {
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

/// Finds the command as execvp will, to say why it cannot run before any
/// trace file is made.
fn find_program(program: &std::ffi::OsStr) -> Result<(), RecordError> {
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
    result.map_err(|why| RecordError::CannotStart {
        program: p.display().to_string(),
        why,
    })
}
