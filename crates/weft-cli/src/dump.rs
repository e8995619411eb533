//! `weft dump`: the timeline, one line per event.

use std::io::{BufWriter, ErrorKind, Write};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use weft_analysis::{Filter, Timeline};
use weft_format::info_keys;

use crate::input::{open, warn_damage};
use crate::{DumpArgs, TimeFormat};

pub fn run(args: DumpArgs) -> Result<ExitCode> {
    let trace = open(&args.file)?;
    warn_damage(&trace);
    let wanted_pids = args.pid.clone();
    let filter = Filter::new(args.pid, args.tid, &args.event, &args.comm)?;
    let mut tl = Timeline::new(&trace, filter).fd_paths(args.fd_paths);
    let start = trace
        .info(info_keys::START_MONOTONIC_NS)
        .and_then(|s| s.parse::<u64>().ok());
    // CLOCK_REALTIME at start_monotonic_ns: wall time of any event.
    let realtime = trace
        .info(info_keys::START_REALTIME_NS)
        .and_then(|s| s.parse::<u64>().ok())
        .zip(start);
    if args.time == TimeFormat::Absolute && realtime.is_none() {
        anyhow::bail!("this trace has no wall-clock anchor (start_realtime_ns); use --time relative");
    }
    let mut seen = std::collections::HashSet::new();
    let mut seen_pids = std::collections::HashSet::new();
    let stdout = std::io::stdout();
    widen_pipe(&stdout);
    let clock = Clock {
        format: args.time,
        base: start,
        prev: None,
        realtime,
    };
    let res: std::io::Result<()> = std::thread::scope(|scope| {
        // Lines are printed on a thread of their own: the timeline that
        // makes them is the dump's bottleneck, and formatting, writing and
        // freeing a line take a fifth of its time.
        let (lines_tx, lines_rx) = std::sync::mpsc::sync_channel::<Batch>(BATCHES);
        let (spare_tx, spare_rx) = std::sync::mpsc::channel::<Batch>();
        let trace = &trace;
        let printer = scope.spawn(move || print_lines(trace, stdout, clock, lines_rx, spare_tx));
        let mut batch = Vec::with_capacity(BATCH);
        let mut made = 1;
        while tl.fill_deferred(&mut batch, BATCH) > 0 {
            if !args.event.is_empty() {
                for (line, _) in &batch {
                    if !seen.contains(&line.event) {
                        seen.insert(line.event.clone());
                    }
                }
            }
            if !wanted_pids.is_empty() {
                seen_pids.extend(batch.iter().map(|(line, _)| line.pid));
            }
            // Printed lines come back to be freed here and their texts
            // reused: freed on the printer, their memory and reference
            // counts would move between CPUs at every line.
            // As many batches as can be in flight are made, then reused.
            let done = match spare_rx.try_recv() {
                Ok(done) => Some(done),
                Err(_) if made < BATCHES + 2 => None,
                Err(_) => spare_rx.recv().ok(),
            };
            let next = match done {
                Some(mut done) => {
                    tl.recycle(done.drain(..).map(|(line, _)| line));
                    done
                }
                None => {
                    made += 1;
                    Vec::with_capacity(BATCH)
                }
            };
            // The printer is gone only after an error, which it returns.
            if lines_tx.send(std::mem::replace(&mut batch, next)).is_err() {
                break;
            }
        }
        if !batch.is_empty() {
            let _ = lines_tx.send(batch);
        }
        drop(lines_tx);
        printer
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the printing thread panicked")))
    });
    match res {
        Err(e) if e.kind() == ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        r => r.context("cannot write the output")?,
    }
    for p in &tl.problems {
        eprintln!("weft: warning: {p}");
    }
    for pid in wanted_pids.iter().filter(|p| !seen_pids.contains(*p)) {
        eprintln!("weft: warning: --pid {pid} matched nothing in this trace (`weft info` lists its processes)");
    }
    for pattern in args
        .event
        .iter()
        .flat_map(|e| e.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let Ok(glob) = globset::Glob::new(pattern) else {
            continue;
        };
        let m = glob.compile_matcher();
        if !seen.iter().any(|e| m.is_match(&**e)) {
            eprintln!(
                "weft: warning: --event `{pattern}` matched nothing in this trace (events are syscall names such as openat, \
                 fork, exec, exit, comm, map, signal_generate, signal_deliver, lost, and weft-probe provider:event names; \
                 `weft info` lists what the trace holds)"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Lines handed to the printing thread at a time, and batches in flight.
const BATCH: usize = 16 * 1024;
const BATCHES: usize = 3;

/// Lines, each with the start of its text left to the printer, if any.
type Batch = Vec<(weft_analysis::Line, weft_analysis::Deferred)>;

/// How each line's time is shown.
struct Clock {
    format: TimeFormat,
    /// The first line's time stands in where the trace has no start.
    base: Option<u64>,
    prev: Option<u64>,
    /// CLOCK_REALTIME and CLOCK_MONOTONIC at one instant.
    realtime: Option<(u64, u64)>,
}

impl Clock {
    fn show(&mut self, out: &mut String, ts: u64) {
        let base = *self.base.get_or_insert(ts);
        match self.format {
            TimeFormat::Relative => secs_into(out, ts.saturating_sub(base)),
            TimeFormat::Delta => secs_into(out, ts.saturating_sub(self.prev.unwrap_or(ts))),
            TimeFormat::Absolute => {
                let (real, mono) = self.realtime.unwrap_or_default();
                *out = time_of_day(real.saturating_add_signed(ts as i64 - mono as i64));
            }
        }
        self.prev = Some(ts);
    }
}

/// The printing thread: damage found on opening the file first, then each
/// batch of lines; emptied batches go back for reuse.
fn print_lines(
    trace: &weft_format::Trace,
    stdout: std::io::Stdout,
    mut clock: Clock,
    lines: std::sync::mpsc::Receiver<Batch>,
    spare: std::sync::mpsc::Sender<Batch>,
) -> std::io::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    // Damage found when the file was opened (chunks skipped whole): said
    // in the output too, before the events, not only on stderr.
    for p in trace
        .problems
        .iter()
        .filter(|p| !matches!(p.error, weft_format::FormatError::Truncated { .. }))
    {
        writeln!(
            out,
            "{:>16} {:>7}/{:<7} {:<16} *** DAMAGED: {} ({} bytes skipped); the events they held are missing ***",
            "?", 0, 0, "", p.error, p.skipped_bytes
        )?;
    }
    if trace.truncated {
        writeln!(
            out,
            "{:>16} {:>7}/{:<7} {:<16} *** TRUNCATED: the file ends mid-chunk (the recorder was stopped mid-write, or the file was cut); events after the last complete chunk are missing ***",
            "?", 0, 0, ""
        )?;
    }
    let mut time = String::new();
    let mut head = Head::default();
    let mut call = String::new();
    let mut plans = weft_analysis::CallPlans::default();
    for batch in lines {
        for (line, deferred) in &batch {
            clock.show(&mut time, line.ts);
            call.clear();
            deferred.write(&mut call, trace, &mut plans);
            write_line(&mut out, &time, &mut head, &call, line)?;
        }
        let _ = spare.send(batch);
    }
    out.flush()
}

/// The part of a line between its time and its text, ` pid/tid comm `,
/// as `Shown` writes it, kept while lines come from one thread (most do).
#[derive(Default)]
struct Head {
    /// Held so that its address, compared, cannot be another name's.
    of: Option<(u32, u32, std::sync::Arc<str>)>,
    bytes: Vec<u8>,
}

impl Head {
    fn of(&mut self, l: &weft_analysis::Line) -> &[u8] {
        // The name's address is compared, not its text: the timeline's
        // thread changes its reference count for every line, and reading
        // the text here would pull that memory between CPUs each time.
        let same = matches!(&self.of, Some((pid, tid, comm))
            if *pid == l.pid && *tid == l.tid && std::ptr::eq(Arc::as_ptr(comm), Arc::as_ptr(&l.comm)));
        if !same {
            self.bytes.clear();
            let mut n = itoa::Buffer::new();
            let b = &mut self.bytes;
            // Writing into a Vec cannot fail.
            let _ = b
                .write_all(b" ")
                .and_then(|()| pad(b, n.format(l.pid), 7, true))
                .and_then(|()| b.write_all(b"/"))
                .and_then(|()| pad(b, n.format(l.tid), 7, false))
                .and_then(|()| b.write_all(b" "))
                .and_then(|()| pad(b, &l.comm, 16, false))
                .and_then(|()| b.write_all(b" "));
            self.of = Some((l.pid, l.tid, l.comm.clone()));
        }
        &self.bytes
    }
}

/// Output piped into another program (`| grep`, `| wc -l`) goes through a
/// 64 KiB pipe by default, and the two programs take turns at every fill.
/// A 1 MiB pipe (the default unprivileged maximum) lets the dump run on.
fn widen_pipe(out: impl std::os::fd::AsFd) {
    let Ok(st) = nix::sys::stat::fstat(&out) else {
        return;
    };
    if st.st_mode & libc::S_IFMT == libc::S_IFIFO {
        // Best effort: where the limit is lower, the pipe stays as it is.
        let _ = nix::fcntl::fcntl(&out, nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20));
    }
}

/// `HH:MM:SS.uuuuuu` of the day in UTC (strace -tt prints local time).
fn time_of_day(realtime_ns: u64) -> String {
    let (clock, sub) = crate::units::clock_of_day(realtime_ns);
    format!("{clock}.{:06}", sub / 1000)
}

/// One timeline line as dump prints it (and the live view, and crash
/// reports): time, pid/tid, thread name, text.
pub struct Shown<'a>(pub &'a str, pub &'a weft_analysis::Line);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let l = self.1;
        write!(f, "{:>16} {:>7}/{:<7} {:<16} {}", self.0, l.pid, l.tid, l.comm, l.text)
    }
}

/// A line as `Shown` displays it, and a newline, written without the
/// formatting machinery: dump writes millions of them.
/// `call` is the start of the text the timeline left to the printer.
fn write_line(
    out: &mut impl Write,
    time: &str,
    head: &mut Head,
    call: &str,
    l: &weft_analysis::Line,
) -> std::io::Result<()> {
    pad(out, time, 16, true)?;
    out.write_all(head.of(l))?;
    out.write_all(call.as_bytes())?;
    out.write_all(l.text.as_bytes())?;
    out.write_all(b"\n")
}

/// `s` padded with spaces to `width` characters, as `{:>w}` or `{:<w}` do.
fn pad(out: &mut impl Write, s: &str, width: usize, right: bool) -> std::io::Result<()> {
    const SPACES: &[u8; 16] = b"                ";
    let chars = if s.is_ascii() { s.len() } else { s.chars().count() };
    let fill = &SPACES[..width.saturating_sub(chars).min(SPACES.len())];
    if right {
        out.write_all(fill)?;
    }
    out.write_all(s.as_bytes())?;
    if !right {
        out.write_all(fill)?;
    }
    Ok(())
}

/// `secs(ns)` into `out`, without allocating: `1.000012345`.
fn secs_into(out: &mut String, ns: u64) {
    out.clear();
    weft_analysis::write_secs(out, ns);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_lines_are_the_displayed_ones() {
        // One head for all: a line of another thread, or of the same thread
        // under a new name, must not be printed with the one before's.
        let mut head = Head::default();
        for (comm, text, pid, tid) in [
            ("sh", "openat(AT_FDCWD, \"/x\") = 3", 1u32, 1u32),
            ("sh", "next", 1, 1),
            ("renamed", "next", 1, 1),
            ("renamed", "next", 1, 2),
            ("renamed", "next", 2, 2),
            ("sh", "openat(AT_FDCWD, \"/x\") = 3", 1u32, 1u32),
            ("a-name-longer-than-16", "x", 1234567, 12345678),
            ("ünïcødé", "é", 42, 4242),
            ("", "", 0, 0),
        ] {
            let l = weft_analysis::Line {
                ts: 0,
                pid,
                tid,
                comm: comm.into(),
                event: "e".into(),
                text: text.into(),
            };
            for t in ["0.000000001", "12345.123456789", "a time longer than sixteen"] {
                let mut w = Vec::new();
                write_line(&mut w, t, &mut head, "", &l).unwrap();
                assert_eq!(String::from_utf8(w).unwrap(), format!("{}\n", Shown(t, &l)));
            }
        }
    }

    #[test]
    fn a_piped_output_is_widened_and_a_file_is_left_alone() {
        use nix::fcntl::{fcntl, FcntlArg};
        let (r, w) = nix::unistd::pipe().unwrap();
        widen_pipe(&w);
        let max: i32 = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let got = fcntl(&r, FcntlArg::F_GETPIPE_SZ).unwrap();
        assert!(got >= max.min(1 << 20), "pipe of {got} bytes, limit {max}");
        let f = tempfile::tempfile().unwrap();
        widen_pipe(&f);
        assert!(fcntl(&f, FcntlArg::F_GETPIPE_SZ).is_err());
    }

    #[test]
    fn seconds_are_written_as_secs_shows_them() {
        let mut s = String::new();
        for ns in [0u64, 1, 999_999_999, 1_000_000_000, 1_000_012_345, u64::MAX] {
            secs_into(&mut s, ns);
            assert_eq!(s, weft_analysis::secs(ns));
        }
    }
}
