//! The `weft` command: a thin layer that parses flags, calls the library
//! crates, and turns their errors into messages that say what to do.

// The readers allocate a record per event on one thread and free it on
// another; glibc's malloc makes that the slowest part of `weft report`.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod crash;
mod dump;
mod info;
mod input;
mod live;
mod mem;
mod profiles;
mod ps;
mod record;
mod stats;
mod units;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "weft",
    version,
    about = "Trace Linux programs: syscalls, signals, process lifecycle and in-process events on one timeline",
    after_help = "Examples:\n  weft record -o app.weft -- ./app arg1\n  weft record -o app.weft -p 1234 --duration 10s\n  weft dump app.weft --pid 1235 --event munmap\n  weft info app.weft"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Record a command, or running processes, into a trace file.
    Record(RecordArgs),
    /// Print the timeline of a trace, one line per event.
    Dump(DumpArgs),
    /// Summarize a trace: time span, processes, event counts, losses, damage.
    Info(InfoArgs),
    /// Syscall counts, errors and latency percentiles (like strace -c), probe event rates, losses.
    Stats(stats::StatsArgs),
    /// Who mapped and unmapped an address (flagging double and foreign unmaps), or a memory map at a time.
    Mem(mem::MemArgs),
    /// Crash signals (SIGSEGV, SIGBUS, SIGABRT, ...): what led to each, and what came of it.
    Crash(crash::CrashArgs),
    /// List processes instrumented with weft-probe, and whether the kernel has user_events.
    Ps(PsArgs),
    /// Top functions by self and total CPU samples (record with --sample).
    Report(profiles::ReportArgs),
    /// An interactive SVG flame graph, or folded stacks, of CPU samples.
    Flame(profiles::FlameArgs),
    /// Export to other viewers and engines: Perfetto, Chrome JSON, speedscope, Parquet tables.
    Export(profiles::ExportArgs),
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  weft record -- ./app arg1                       trace every syscall of ./app and its children\n  weft record --syscalls memory,prctl -- ./app    only memory syscalls and prctl\n  weft record -p 1234 --duration 10s              attach to PID 1234 (all threads) for 10 s\n\nSyscall classes for --syscalls: memory, file, desc, process, signal, network, ipc (also as %memory).\nProcess lifecycle, signals and memory maps are always recorded. Ctrl-C stops recording cleanly."
)]
pub struct RecordArgs {
    /// Trace file to write. An existing file is kept as FILE.old; a symbolic
    /// link there is refused.
    #[arg(short, long, default_value = "trace.weft")]
    output: PathBuf,
    /// Overwrite an existing trace file instead of keeping it as FILE.old.
    #[arg(long)]
    force: bool,
    /// Attach to running processes (all their threads and future children); comma-separated.
    #[arg(short, long, value_delimiter = ',', conflicts_with = "command")]
    pid: Vec<u32>,
    /// Syscalls to record: names, globs (`mmap*`) and classes (`memory`); default all.
    #[arg(short = 's', long, value_name = "LIST")]
    syscalls: Option<String>,
    /// Keep only processes whose name matches (glob; repeatable or comma-separated).
    #[arg(long, value_name = "NAME")]
    comm: Vec<String>,
    /// Stop after this long (e.g. 10s, 500ms, 2m).
    #[arg(short, long, value_parser = units::parse_duration)]
    duration: Option<std::time::Duration>,
    /// Ring buffer size per CPU (e.g. 8M, 512K).
    #[arg(long, default_value = "8M", value_parser = units::parse_size)]
    buffer_size: usize,
    /// Bytes kept of each string, path and data buffer a syscall argument
    /// points to (strace's -s); longer ones are cut and marked `...`.
    #[arg(long, value_name = "N", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=weft_kernel::CAPTURE_MAX_LIMIT as i64))]
    string_limit: u32,
    /// Record syscall arguments as the bare numbers and pointers the
    /// tracepoints give: no strings, paths, buffers or structs (no eBPF).
    #[arg(long)]
    no_args: bool,
    /// Print the timeline while recording, as `weft dump` prints it (to
    /// stderr, or to --live-output). Lines show up within about 0.2 s. When
    /// it cannot keep up (a slow terminal, or more than about 200 000 lines
    /// a second), lines are dropped there and counted, never from the trace.
    #[arg(long)]
    live: bool,
    /// File for --live's lines instead of stderr.
    #[arg(long, value_name = "FILE", requires = "live")]
    live_output: Option<PathBuf>,
    /// zstd compression level of the trace file (1 fastest .. 19 smallest).
    /// Level 3 makes traces only 2-4% smaller and costs the collector a
    /// third more CPU.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=19))]
    compression: i32,
    /// No live status line and no summary.
    #[arg(short, long)]
    quiet: bool,
    /// weft-probe events to record from instrumented processes:
    /// `provider:event` globs (default all). strace's `-e trace=LIST`
    /// (syscall names and %classes) is taken as --syscalls LIST.
    #[arg(short = 'e', long = "event", value_name = "PATTERN")]
    event: Vec<String>,
    /// Do not attach to weft-probe instrumented processes.
    #[arg(long)]
    no_probes: bool,
    /// Follow the command with inherited per-task events instead of a private
    /// cgroup (weft's default for `-- CMD`: it makes forks free to trace, but
    /// the command sees another path in /proc/self/cgroup).
    #[arg(long)]
    no_cgroup: bool,
    /// Scheduling niceness of the recorder (-20..19). The default, -10, lets
    /// it keep draining when the traced program keeps every CPU busy (needs
    /// root or CAP_SYS_NICE; otherwise it stays as it is). 0 leaves it alone.
    #[arg(long, default_value_t = -10, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i32).range(-20..=19))]
    nice: i32,
    /// Drain weft-probe buffers at real-time priority (SCHED_FIFO 1) while
    /// instrumented processes are attached, so that the draining thread
    /// runs as soon as its timer fires: it then keeps every event of a
    /// thread writing flat out (about 50 M events/s here), but it preempts
    /// the traced program when they share a CPU (measured: write cost up to
    /// 2x). Needs root or CAP_SYS_NICE; otherwise it is ignored.
    #[arg(long)]
    realtime: bool,
    /// weft-probe buffer per traced thread (e.g. 512K, 2M). The default,
    /// 8M, holds about 40 ms of a thread writing 5 million 40-byte events a
    /// second. Memory is taken as threads write: 128 MiB of buffers for the
    /// first process at attach (a thread's and four more for each further
    /// one), then one per thread that claims a slot, four
    /// kept ready ahead (measurements in docs/performance.md). 32K to 128M,
    /// rounded up to a multiple of 32K.
    #[arg(long, default_value = "8M", value_parser = units::parse_probe_buffer)]
    probe_buffer: usize,
    /// weft-probe thread slots per process (threads beyond this have their events dropped and counted).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    probe_threads: u32,
    /// Cap on weft-probe buffer memory over all attached processes (the
    /// first one is always attached); processes beyond it are not attached
    /// and are listed as not recorded, threads beyond it get no buffer
    /// (their events are dropped and counted).
    #[arg(long, default_value = "1G", value_parser = units::parse_size)]
    probe_memory: usize,
    /// Flight-recorder mode for weft-probe buffers: keep the newest events, read them at the end.
    #[arg(long, conflicts_with = "probe_wait")]
    probe_overwrite: bool,
    /// Let a traced thread whose weft-probe buffer is full wait up to this
    /// long (at most 1s) for the recorder before it drops an event: for
    /// tests and batch jobs where every event matters more than latency.
    /// Without it, a thread never waits: events that find no room are
    /// dropped and counted.
    #[arg(long, value_name = "DURATION", value_parser = units::parse_duration)]
    probe_wait: Option<std::time::Duration>,
    /// Sample the traced processes' CPU use with call chains and user stacks (default 999 Hz).
    #[arg(long, value_name = "HZ", num_args = 0..=1, default_missing_value = "999")]
    sample: Option<u32>,
    /// Also take a stack with these events (syscall names, signal_deliver, signal_generate).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    stack_on: Vec<String>,
    /// Off-CPU time: a stack each time a traced thread blocks (sleep, lock, I/O),
    /// and how long until it runs again (`weft report --off-cpu`, `weft flame --off-cpu`).
    #[arg(long)]
    off_cpu: bool,
    /// Bytes of user stack copied with each stack, for offline DWARF unwinding.
    #[arg(long, default_value = "16K", value_parser = units::parse_size)]
    stack_size: usize,
    /// Copy the traced binaries and libraries next to the trace (FILE.d/), to symbolize elsewhere.
    #[arg(long)]
    archive: bool,
    /// The command to run under tracing, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<std::ffi::OsString>,
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  weft dump app.weft\n  weft dump app.weft --pid 1235 --event munmap\n  weft dump app.weft --event 'mmap,munmap,signal_*' --comm 'worker*'\n\nEvent names: syscall names, and fork, exec, exit, comm, map, signal_generate, signal_deliver, lost."
)]
pub struct DumpArgs {
    /// Trace file to read.
    file: PathBuf,
    /// Only these processes (comma-separated PIDs).
    #[arg(short, long, value_delimiter = ',')]
    pid: Vec<u32>,
    /// Only these threads (comma-separated TIDs).
    #[arg(short, long, value_delimiter = ',')]
    tid: Vec<u32>,
    /// Only these events (names or globs, comma-separated).
    #[arg(short, long)]
    event: Vec<String>,
    /// Only threads whose name matches (glob).
    #[arg(long)]
    comm: Vec<String>,
    /// Time column: seconds since the recording started (`relative`), the
    /// wall-clock time of day in UTC (`absolute`, as strace -tt), or
    /// seconds since the line before (`delta`, as strace -r).
    #[arg(long, value_enum, default_value_t = TimeFormat::Relative)]
    time: TimeFormat,
    /// Show what each file descriptor is, as strace -y: `fd=3</etc/passwd>`
    /// (from the opens, sockets, pipes, dups and closes in the trace).
    #[arg(short = 'y', long)]
    fd_paths: bool,
}

/// How `weft dump` shows time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TimeFormat {
    Relative,
    Absolute,
    Delta,
}

#[derive(Args)]
pub struct PsArgs {
    /// Also list each process's events and their fields.
    #[arg(short, long)]
    events: bool,
}

#[derive(Args)]
pub struct InfoArgs {
    /// Trace file to read.
    file: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Record(_)) {
        // `weft dump | head` ends quietly, as other Unix tools do.
        weft_kernel::os::default_sigpipe();
    }
    let result = match cli.command {
        Command::Record(a) => record::run(a),
        Command::Dump(a) => dump::run(a),
        Command::Info(a) => info::run(a),
        Command::Stats(a) => stats::run(a),
        Command::Mem(a) => mem::run(a),
        Command::Crash(a) => crash::run(a),
        Command::Ps(a) => ps::run(a),
        Command::Report(a) => profiles::report(a),
        Command::Flame(a) => profiles::flame(a),
        Command::Export(a) => profiles::export(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("weft: error: {}", error_text(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes, each said once: library errors often show
/// their cause in their own text already (an errno, most often).
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        if text.contains(&c) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&c);
    }
    text
}
