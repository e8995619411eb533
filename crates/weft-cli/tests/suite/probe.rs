//! weft-probe end to end: the instrumented `weft-demo` recorded by `weft
//! record`, through real control sockets and shared memory.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::common::*;

fn demo() -> Command {
    Command::new(demo_path())
}

fn record(
    dir: &std::path::Path,
    name: &str,
    extra: &[&str],
    demo_args: &[&str],
) -> (std::path::PathBuf, std::process::Output) {
    record_program(dir, name, extra, &demo_path(), demo_args)
}

/// `weft record -o DIR/NAME EXTRA -- PROGRAM ARGS`: the trace's path and
/// what was said.
fn record_program(
    dir: &std::path::Path,
    name: &str,
    extra: &[&str],
    program: &std::path::Path,
    args: &[&str],
) -> (std::path::PathBuf, std::process::Output) {
    let trace = dir.join(name);
    let out = run(weft()
        .args(["record", "-o"])
        .arg(&trace)
        .args(extra)
        .arg("--")
        .arg(program)
        .args(args));
    (trace, out)
}

/// Per-thread probe totals from `weft-probe thread totals` lines: tid -> numbers.
fn totals(lines: &[L]) -> BTreeMap<u32, Vec<u64>> {
    // A thread interrupted by a handler while it claimed its slot can own
    // two slots (docs/probe-buffers.md §7.2): their totals add up.
    let mut m: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for l in lines.iter().filter(|l| l.text.starts_with("weft-probe thread totals:")) {
        let v: Vec<u64> = l
            .text
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse().ok())
            .collect();
        match m.get_mut(&l.tid) {
            Some(sum) if sum.len() == v.len() => sum.iter_mut().zip(&v).for_each(|(a, b)| *a += b),
            _ => {
                m.insert(l.tid, v);
            }
        }
    }
    m
}

/// The `n` field of a `demo:tick` line.
fn tick_n(l: &L) -> u64 {
    l.text
        .split("n=")
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("demo:tick n")
}

/// attempted == received + full + busy + abandoned + damaged + overwritten, for every thread.
fn assert_accounting(lines: &[L]) -> BTreeMap<u32, Vec<u64>> {
    let t = totals(lines);
    assert!(!t.is_empty(), "no probe totals in the trace");
    for (tid, v) in &t {
        assert_eq!(v[0], v[1..7].iter().sum::<u64>(), "thread {tid}: {v:?}");
    }
    t
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn marker_lands_just_before_the_munmap_it_precedes() {
    require_root();
    let dir = tmp();
    let (trace, out) = record(dir.path(), "m.weft", &["--syscalls", "munmap"], &["markers", "200"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines = parse(&dump(&trace, &["--event", "munmap,weft:marker"]));
    let stdout = text(&out.stdout);
    let mut checked = 0;
    for (i, line) in stdout.lines().enumerate() {
        let addr = line.split_whitespace().nth(2).expect("address");
        let m = lines
            .iter()
            .position(|l| l.text == format!("marker \"before-munmap\" = {i}"))
            .unwrap_or_else(|| panic!("marker {i} missing; weft said: {}\n{lines:#?}", text(&out.stderr)));
        let next = &lines[m + 1];
        assert!(
            next.text.starts_with(&format!("munmap(addr={addr}, len=4096) = 0")),
            "after marker {i}: {next:?}"
        );
        assert!(lines[m].t <= next.t && lines[m].tid == next.tid);
        checked += 1;
    }
    assert_eq!(checked, 200);
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn many_threads_exact_counts_and_accounting() {
    require_root();
    let dir = tmp();
    // Buffers large enough to hold everything: nothing may be lost.
    let (trace, out) = record(
        dir.path(),
        "t.weft",
        &["-q", "--probe-buffer", "4M"],
        &["threads", "8", "20000"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines = parse(&dump(&trace, &["--event", "demo:tick,weft:probe*"]));
    let t = assert_accounting(&lines);
    assert_eq!(t.len(), 8);
    for (tid, v) in &t {
        assert_eq!(
            (v[0], v[1]),
            (20000, 20000),
            "thread {tid} lost events with large buffers: {v:?}"
        );
        let ticks: Vec<u64> = lines
            .iter()
            .filter(|l| l.tid == *tid && l.text.starts_with("demo:tick"))
            .map(tick_n)
            .collect();
        assert_eq!(
            ticks,
            (0..20000).collect::<Vec<u64>>(),
            "thread {tid}: ticks missing or out of order"
        );
    }
    // Small buffers: losses happen, and are counted exactly.
    let (trace, out) = record(
        dir.path(),
        "s.weft",
        &["-q", "--probe-buffer", "64K"],
        &["threads", "4", "50000"],
    );
    assert!(out.status.success());
    let lines = parse(&dump(&trace, &["--event", "demo:tick,weft:probe*"]));
    let t = assert_accounting(&lines);
    let received: u64 = t.values().map(|v| v[1]).sum();
    assert_eq!(
        lines.iter().filter(|l| l.text.starts_with("demo:tick")).count() as u64,
        received
    );
}

/// Records `weft-demo wave 24 1000 10` with `extra`, sampling the
/// recorder's shared memory in use (RssShmem, KiB) until it exits.
fn record_wave(dir: &std::path::Path, name: &str, extra: &[&str]) -> (std::path::PathBuf, String, u64) {
    let trace = dir.join(name);
    let mut child = weft()
        .args(["record", "-o"])
        .arg(&trace)
        .args(extra)
        .args([
            "--",
            demo_path().to_str().expect("utf-8 path"),
            "wave",
            "24",
            "1000",
            "10",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weft record");
    let mut peak = 0u64;
    while child.try_wait().expect("wait").is_none() {
        peak = peak.max(status_kib(child.id(), "RssShmem:").unwrap_or(0));
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("stderr");
    let ok = child.wait().expect("wait").success();
    assert!(ok, "{stderr}");
    (trace, stderr, peak)
}

/// The `N` of the summary's "buffers N MiB at most".
fn summary_buffers_mib(stderr: &str) -> u64 {
    stderr
        .split("buffers ")
        .nth(1)
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no buffer memory in the summary:\n{stderr}"))
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn thread_buffers_are_put_in_memory_as_threads_claim_them() {
    require_root();
    let dir = tmp();
    // 24 threads, 10 ms apart, with the default 8 MiB buffers: 16 are in
    // memory at attach, the rest as threads claim slots, four ahead.
    let (trace, stderr, peak_kib) = record_wave(dir.path(), "w.weft", &[]);
    let lines = parse(&dump(&trace, &["--event", "demo:tick,weft:probe*"]));
    let t = assert_accounting(&lines);
    let writers: Vec<_> = t.iter().filter(|(_, v)| v[0] > 0).collect();
    assert_eq!(writers.len(), 24, "{t:?}\n{stderr}");
    for (tid, v) in &writers {
        assert_eq!((v[0], v[1]), (1000, 1000), "thread {tid} lost events: {v:?}\n{stderr}");
        assert_eq!(v.len(), 7, "thread {tid}: events dropped for lack of a slot: {v:?}");
    }
    // Every thread's buffer, and no more than four spare, of the 64 slots'
    // 512 MiB: by the recorder's count and by the kernel's.
    let mib = summary_buffers_mib(&stderr);
    assert!((24 * 8..=28 * 8 + 1).contains(&mib), "buffers {mib} MiB\n{stderr}");
    assert!(
        (24 * 8 * 1024..=(28 * 8 + 16) * 1024).contains(&peak_kib),
        "the recorder's shared memory peaked at {peak_kib} KiB"
    );

    // A cap that leaves room for two more than the 16 at attach: threads
    // beyond 18 get no buffer, and each of their events is counted.
    let (trace, stderr, _) = record_wave(dir.path(), "c.weft", &["--probe-memory", "150M"]);
    assert!(
        stderr.contains("weft-probe memory cap reached")
            && stderr.contains("threads beyond its first 18 get no buffer"),
        "{stderr}"
    );
    let lines = parse(&dump(&trace, &["--event", "demo:tick,weft:probe*"]));
    let t = assert_accounting(&lines);
    let received: u64 = t.values().map(|v| v[1]).sum();
    let no_slot: u64 = t.values().filter(|v| v.len() > 7).map(|v| v[7]).sum();
    assert_eq!(received, 18 * 1000, "{t:?}");
    assert_eq!(no_slot, 6 * 1000, "{t:?}");
    // `weft info` counts the events that found no slot as attempted.
    let info = text(&run(weft().arg("info").arg(&trace)).stdout);
    assert!(
        info.contains("24000 events attempted, 18000 recorded, 6000 lost"),
        "{info}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.text.starts_with("demo:tick")).count(),
        18 * 1000
    );
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn forked_child_and_exec_get_their_own_sessions() {
    require_root();
    let dir = tmp();
    let (trace, out) = record(dir.path(), "f.weft", &["-q"], &["fork", "5"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines = parse(&dump(&trace, &["--event", "demo:tick,weft:marker,weft:probe_attach"]));
    let attach: Vec<u32> = lines
        .iter()
        .filter(|l| l.text.starts_with("weft-probe attached"))
        .map(|l| l.pid)
        .collect();
    assert_eq!(attach.len(), 3, "parent, forked child and exec'd program: {lines:#?}");
    let (parent, child, exec) = (attach[0], attach[1], attach[2]);
    assert!(parent != child && child != exec);
    let ticks = |pid: u32, thread: &str| {
        lines
            .iter()
            .filter(|l| l.pid == pid && l.text.starts_with("demo:tick") && l.text.ends_with(thread))
            .count()
    };
    assert_eq!(ticks(parent, "thread=0"), 5);
    assert_eq!(ticks(child, "thread=1"), 5);
    assert_eq!(
        ticks(parent, "thread=1"),
        0,
        "child events must not land in the parent's buffers"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.pid == exec && l.text.starts_with("marker"))
            .count(),
        2
    );
}

/// When the parent execs while a forked child lives on, the new image gets
/// its own session (the child must not keep the parent's connection open).
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn exec_while_a_forked_child_lives_gets_a_new_session() {
    require_root();
    let dir = tmp();
    let (trace, out) = record(dir.path(), "fe.weft", &["-q"], &["forkexec"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines = parse(&dump(&trace, &["--event", "demo:tick,weft:marker,weft:probe_attach"]));
    let first = lines
        .iter()
        .find(|l| l.text.starts_with("weft-probe attached"))
        .expect("first attach")
        .pid;
    let attaches = lines
        .iter()
        .filter(|l| l.pid == first && l.text.starts_with("weft-probe attached"))
        .count();
    assert_eq!(attaches, 2, "the exec'd image was not attached: {lines:#?}");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.pid == first && l.text.starts_with("marker"))
            .count(),
        2,
        "{lines:#?}"
    );
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spin() -> Killed {
    let mut c = demo()
        .arg("spin")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn demo");
    let mut line = String::new();
    BufReader::new(c.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    assert_eq!(line, "ready\n");
    Killed(c)
}

fn sessions_of(pid: u32) -> Option<u32> {
    let out = run(weft().arg("ps"));
    text(&out.stdout)
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&pid.to_string()))
        .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn attach_to_a_running_process_detach_and_attach_again() {
    require_root();
    let target = spin();
    let pid = target.0.id();
    let dir = tmp();
    for round in 0..2 {
        let trace = dir.path().join(format!("a{round}.weft"));
        let out = run(weft().args(["record", "-q", "-o"]).arg(&trace).args([
            "-p",
            &pid.to_string(),
            "--duration",
            "700ms",
            "-e",
            "demo:*",
        ]));
        assert!(out.status.success(), "{}", text(&out.stderr));
        let lines = parse(&dump(&trace, &["--event", "demo:tick,weft:probe*"]));
        let ticks = lines.iter().filter(|l| l.text.starts_with("demo:tick")).count();
        assert!(ticks > 100, "round {round}: {ticks} ticks");
        assert!(
            lines.iter().any(|l| l.text.contains("5 events declared, 2 enabled")),
            "only demo:* was asked for"
        );
        assert_accounting(&lines);
        // Detached: the process stopped writing for that session.
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(sessions_of(pid), Some(0), "session still attached after weft exited");
    }
}

/// The scheduling policy of thread `tid` of `pid` (/proc stat field 41:
/// 0 SCHED_OTHER, 1 SCHED_FIFO), None once it is gone.
fn policy_of(pid: u32, tid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
    // Fields after the command name, which may hold spaces: state is 3.
    stat.rsplit_once(") ")?.1.split_whitespace().nth(41 - 3)?.parse().ok()
}

/// With `--realtime`, while it drains an attached process's buffers, the
/// recorder's draining thread (its main thread) runs under SCHED_FIFO;
/// without it, under the normal policy. Either way the recording keeps the
/// program's events.
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn the_drain_runs_at_real_time_priority_when_asked_and_yields_to_a_slow_writer_otherwise() {
    require_root();
    let target = spin();
    let pid = target.0.id();
    let dir = tmp();
    for realtime in [true, false] {
        let trace = dir.path().join(format!("rt-{realtime}.weft"));
        let mut rec = weft();
        rec.args(["record", "-q", "-o"]).arg(&trace).args([
            "-p",
            &pid.to_string(),
            "--duration",
            "2000ms",
            "-e",
            "demo:*",
        ]);
        if realtime {
            rec.arg("--realtime");
        }
        let mut rec = rec.spawn().expect("weft record");
        let wpid = rec.id();
        let mut seen = Vec::new();
        while rec.try_wait().expect("wait").is_none() {
            seen.extend(policy_of(wpid, wpid));
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(rec.wait().expect("wait").success());
        let fifo = seen.iter().filter(|&&p| p == 1).count();
        // A tick a millisecond never fills a ring fast: a second after the
        // attach the drain waits for the CPU instead of preempting.
        let batch = seen.iter().filter(|&&p| p == 3).count();
        if realtime {
            assert!(fifo > 0, "never SCHED_FIFO while attached: {seen:?}");
            assert_eq!(batch, 0, "SCHED_BATCH with --realtime: {seen:?}");
        } else {
            assert_eq!(fifo, 0, "SCHED_FIFO without --realtime: {seen:?}");
            assert!(batch > 0, "never SCHED_BATCH with a slow writer: {seen:?}");
        }
        let lines = parse(&dump(&trace, &["--event", "demo:tick,weft:probe*"]));
        let ticks = lines.iter().filter(|l| l.text.starts_with("demo:tick")).count();
        assert!(ticks > 100, "realtime {realtime}: {ticks} ticks");
        assert_accounting(&lines);
    }
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn events_registered_while_the_recorder_is_stopped_are_enabled_once_it_reads() {
    require_root();
    let dir = tmp();
    let trace = dir.path().join("late.weft");
    let n = 300;
    let mut rec = weft()
        .args(["record", "-q", "-o"])
        .arg(&trace)
        .args(["-e", "demo:*,late:*", "--"])
        .arg(demo_path())
        .args(["late", &n.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("weft");
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = rec.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let next = |what: &str| {
        rx.recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no '{what}' line from weft-demo late"))
    };
    assert_eq!(next("ready"), "ready");
    // A collector that stops reading: each registration pushes the growing
    // event list to it until its socket is full.
    // SAFETY: signals to our own child.
    unsafe { libc::kill(rec.id() as i32, libc::SIGSTOP) };
    let mut stdin = rec.stdin.take().expect("stdin");
    std::io::Write::write_all(&mut stdin, b"go\n").expect("stdin");
    // Registering finished while the recorder was still stopped.
    let registered = next("registered");
    assert!(registered.starts_with(&format!("registered {n} ")), "{registered}");
    // SAFETY: as above.
    unsafe { libc::kill(rec.id() as i32, libc::SIGCONT) };
    let enabled = next("enabled");
    let status = rec.wait().expect("wait");
    assert!(status.success());
    assert_eq!(enabled, format!("enabled {n} of {n}"), "after {registered}");
    let lines = parse(&dump(&trace, &["--event", "late:*,weft:probe*"]));
    let late = lines.iter().filter(|l| l.text.starts_with("late:ev")).count();
    assert_eq!(late, n, "every late event, once enabled, is recorded");
    assert_accounting(&lines);
}

#[test]
fn a_fork_child_never_hangs_on_a_lock_held_at_the_fork() {
    // No tracing: the fork handler runs in every child of an instrumented
    // program. Its sockets go to a private directory.
    let dir = tmp();
    let out = run(demo().args(["forkenv", "100"]).env("WEFT_RUNTIME_DIR", dir.path()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "forks 100 hung 0");
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn a_program_that_outlives_its_recording_forks_without_waiting() {
    require_root();
    let dir = tmp();
    // The recording ends first; the program then forks. Its children must not
    // wait for an attach (the 3 s a recorded child may wait) that nobody will
    // make. The output pipe stays open until the program itself is done.
    let (_, out) = record(
        dir.path(),
        "later.weft",
        &["-q", "--duration", "300ms"],
        &["forklater", "3"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = text(&out.stdout);
    let ms: u64 = line
        .split_whitespace()
        .nth(3)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no 'forks N slowest X ms' line: {line}"));
    assert!(ms < 2000, "a fork child waited for a collector: {line}");
}

#[test]
fn weft_ps_removes_the_sockets_of_killed_processes() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tmp();
    // A runtime directory is private to its uid, or not looked in.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let sock = |pid: u32, start: u64| dir.path().join(format!("{pid}-{start}.sock"));
    // A process that is gone, and this process under a start time it never
    // had (a reused pid): both names can never answer again.
    let mut gone = Command::new("true").spawn().expect("true");
    let gone_pid = gone.id();
    gone.wait().expect("wait");
    let me = std::process::id();
    let start = weft_probe_abi::process_start_time(me).expect("start time");
    let stale = [sock(gone_pid, 12345), sock(me, start + 1)];
    let live = sock(me, start);
    for p in stale.iter().chain([&live]) {
        drop(std::os::unix::net::UnixListener::bind(p).expect("bind"));
    }
    // Not a socket: left alone whatever its name.
    let plain = sock(gone_pid, 999);
    std::fs::write(&plain, b"").expect("write");
    let out = run(weft().arg("ps").env("WEFT_RUNTIME_DIR", dir.path()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    for p in &stale {
        assert!(!p.exists(), "{} should be removed", p.display());
    }
    assert!(live.exists(), "the socket of a live process must stay");
    assert!(plain.exists(), "only sockets are removed");
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn sigkill_of_the_recorder_detaches_and_the_program_goes_on() {
    require_root();
    let mut target = spin();
    let pid = target.0.id();
    let dir = tmp();
    let trace = dir.path().join("k.weft");
    let mut rec = weft()
        .args(["record", "-q", "-o"])
        .arg(&trace)
        .args(["-p", &pid.to_string()])
        .spawn()
        .expect("weft");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(sessions_of(pid), Some(1));
    // SAFETY: SIGKILL to our own child.
    unsafe { libc::kill(rec.id() as i32, libc::SIGKILL) };
    let _ = rec.wait();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        sessions_of(pid),
        Some(0),
        "the program must detach when the recorder dies"
    );
    assert!(
        target.0.try_wait().expect("try_wait").is_none(),
        "the program must keep running"
    );
    let out = run(weft().arg("dump").arg(&trace).args(["--event", "demo:tick"]));
    assert!(out.status.success());
    // Its memory stays what it was: nothing piles up for a collector that
    // will never read it.
    let after_kill = rss_kib(pid);
    std::thread::sleep(Duration::from_millis(1000));
    let later = rss_kib(pid);
    // A new recorder attaches and records, and its detach leaves the
    // program's memory where it was.
    let again = dir.path().join("k2.weft");
    let out = run(weft()
        .args(["record", "-q", "-o"])
        .arg(&again)
        .args(["-p", &pid.to_string(), "--duration", "1s"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let ticks = dump(&again, &["--event", "demo:tick"]).len();
    std::thread::sleep(Duration::from_millis(300));
    let detached = rss_kib(pid);
    eprintln!(
        "program RSS: {after_kill} KiB after the kill, {later} KiB 1 s later, {detached} KiB after a second recorder recorded {ticks} ticks and detached"
    );
    assert!(ticks > 0, "the second recorder recorded nothing");
    assert!(
        later <= after_kill + 1024,
        "{after_kill} KiB -> {later} KiB with no recorder"
    );
    assert!(
        detached <= after_kill + 4096,
        "{after_kill} KiB -> {detached} KiB after a second recording"
    );
}

/// Two recorders on one program: every write goes into both sessions (the
/// write path's several-sessions branch), and each trace has all of it.
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn two_recorders_at_once_each_get_every_event() {
    require_root();
    let target = spin();
    let pid = target.0.id().to_string();
    let dir = tmp();
    let (long, short) = (dir.path().join("long.weft"), dir.path().join("short.weft"));
    let record = |trace: &std::path::Path, secs: &str| {
        weft()
            .args(["record", "-q", "-o"])
            .arg(trace)
            .args(["-p", &pid, "--duration", secs])
            .spawn()
            .expect("weft")
    };
    // Attaching takes a while on a loaded machine: wait for each session
    // rather than for a fixed time.
    let sessions = |n: u32| {
        let until = std::time::Instant::now() + Duration::from_secs(20);
        while sessions_of(target.0.id()) != Some(n) {
            assert!(std::time::Instant::now() < until, "no {n} sessions after 20 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let mut first = record(&long, "60s");
    sessions(1);
    let mut second = record(&short, "1500ms");
    sessions(2);
    assert!(second.wait().expect("wait").success());
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: SIGINT to our own child: it stops recording and finishes the trace.
    unsafe { libc::kill(first.id() as i32, libc::SIGINT) };
    assert!(first.wait().expect("wait").success());
    let ticks = |t: &std::path::Path| -> Vec<u64> {
        let lines = parse(&dump(t, &["--event", "demo:tick"]));
        assert_accounting(&parse(&dump(t, &[])));
        lines.iter().map(tick_n).collect()
    };
    let (all, both) = (ticks(&long), ticks(&short));
    eprintln!(
        "{} ticks in the long recording, {} in the short one",
        all.len(),
        both.len()
    );
    assert!(both.len() > 200, "the second recorder got {} ticks", both.len());
    // Consecutive in each: nothing dropped by either session.
    for t in [&all, &both] {
        assert!(t.windows(2).all(|w| w[1] == w[0] + 1), "a gap in {t:?}");
    }
    assert!(
        all.first() < both.first() && both.last() < all.last(),
        "the short recording lies inside the long one"
    );
}

/// Resident memory of `pid` (VmRSS, KiB).
fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:").expect("VmRSS")
}

/// A KiB field of `/proc/PID/status` (`field` with its colon).
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn sigkill_of_the_program_keeps_every_committed_event() {
    require_root();
    let dir = tmp();
    let trace = dir.path().join("p.weft");
    let mut rec = weft()
        .args(["record", "-q", "-o"])
        .arg(&trace)
        .args(["--probe-buffer", "4M", "--"])
        .arg(demo_path())
        .args(["threads", "4", "100000000"])
        .spawn()
        .expect("weft");
    std::thread::sleep(Duration::from_millis(1500));
    // The demo is weft's child.
    for pid in children(rec.id()) {
        kill_pid(pid);
    }
    let st = rec.wait().expect("wait");
    assert_eq!(st.code(), Some(128 + 9));
    let lines = parse(&dump(&trace, &["--event", "demo:tick,weft:probe*"]));
    let t = assert_accounting(&lines);
    let received: u64 = t.values().map(|v| v[1]).sum();
    assert!(received > 1000);
    assert_eq!(
        lines.iter().filter(|l| l.text.starts_with("demo:tick")).count() as u64,
        received
    );
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn scribbled_buffer_is_reported_and_other_threads_are_intact() {
    require_root();
    let dir = tmp();
    // 64 KiB sub-buffers: the damaged thread's later events fill new ones.
    let (trace, out) = record(
        dir.path(),
        "x.weft",
        &["-q", "--probe-buffer", "512K"],
        &["scribble", "3000"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines = parse(&dump(&trace, &["--event", "demo:tick,weft:probe*"]));
    let damage: Vec<&L> = lines
        .iter()
        .filter(|l| l.text.starts_with("*** DAMAGED weft-probe buffer"))
        .collect();
    assert!(!damage.is_empty(), "no damage reported");
    let bad_tid = damage[0].tid;
    assert!(damage.iter().all(|l| l.tid == bad_tid && l.text.contains("offset 0x")));
    assert_accounting(&lines);
    for k in 0..3 {
        let n = lines
            .iter()
            .filter(|l| l.text.starts_with("demo:tick") && l.text.ends_with(&format!("thread={k}")))
            .count();
        assert_eq!(n, 3000, "thread {k} lost events to another thread's damage");
    }
    // The damaged thread's events written after the damage still arrive.
    assert!(lines.iter().any(|l| l.tid == bad_tid && l.text.contains("n=1002999")));
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn handler_that_longjmps_out_of_a_write_leaves_a_decodable_buffer() {
    require_root();
    let dir = tmp();
    let trace = dir.path().join("j.weft");
    // Bounded: a switch that a handler jumped out of once restarted its
    // zeroing at every take-over, and with 16 MiB rings and this 50 µs
    // timer the program spun in memset for good.
    let out = run(weft()
        .args(["record", "-q", "--probe-buffer", "16M", "-o"])
        .arg(&trace)
        .args(["--", "timeout", "120"])
        .arg(demo_path())
        .args(["longjmp", "200000"]));
    assert!(
        out.status.success(),
        "the program did not finish within 120 s (status 124), or failed: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    let jumps: u64 = text(&out.stdout).split_whitespace().last().unwrap().parse().unwrap();
    assert!(jumps > 100, "the timer hardly fired ({jumps})");
    let lines = parse(&dump(&trace, &["--event", "demo:*,weft:probe*"]));
    assert!(
        !lines.iter().any(|l| l.text.contains("DAMAGED")),
        "interrupted writes must not look like damage"
    );
    let t = assert_accounting(&lines);
    let v = t.values().next().unwrap();
    // Handler events arrive too.
    assert!(lines.iter().filter(|l| l.text.contains("text=\"in handler\"")).count() > 10);
    // Every tick the program got through is there, in order, without duplicates.
    let ticks: Vec<u64> = lines
        .iter()
        .filter(|l| l.text.starts_with("demo:tick"))
        .map(tick_n)
        .collect();
    // A tick whose write was cut short is written again after the jump.
    assert!(ticks.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(
        v[1],
        lines.iter().filter(|l| l.text.starts_with("demo:")).count() as u64
    );
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn overwrite_mode_keeps_the_newest_events() {
    require_root();
    let dir = tmp();
    let (trace, out) = record(
        dir.path(),
        "o.weft",
        &["-q", "--probe-overwrite", "--probe-buffer", "64K"],
        &["flight", "100000"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines = parse(&dump(&trace, &["--event", "demo:tick,weft:probe*"]));
    let t = assert_accounting(&lines);
    let v = t.values().next().unwrap();
    assert!(v[6] > 90000, "most events overwritten: {v:?}");
    let last = lines
        .iter()
        .rfind(|l| l.text.starts_with("demo:tick"))
        .expect("some ticks");
    assert!(
        last.text.contains("n=99999 "),
        "the newest event is kept: {}",
        last.text
    );
}

/// A flat-out writer, with rings far too small for it: with `--probe-wait`
/// its threads wait for the recorder instead of dropping, and every event
/// is kept; the records are stored as written (Probe chunks) and read back
/// in order.
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn probe_wait_keeps_every_event_of_a_flat_out_writer() {
    require_root();
    let dir = tmp();
    let (trace, out) = record(
        dir.path(),
        "w.weft",
        &["-q", "--probe-wait", "500ms", "--probe-buffer", "64K", "-e", "demo:*"],
        &["threads", "2", "1000000"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines = parse(&dump(&trace, &["--event", "demo:tick,weft:probe*"]));
    let t = assert_accounting(&lines);
    assert_eq!(t.len(), 2, "two writer threads: {t:?}");
    for (tid, v) in &t {
        assert_eq!(v[0], 1_000_000, "thread {tid} attempted its events: {v:?}");
        assert_eq!(v[1], v[0], "thread {tid} lost none: {v:?}");
    }
    // Each thread's ticks come back complete and in order.
    for tid in t.keys() {
        let n: Vec<u64> = lines
            .iter()
            .filter(|l| l.tid == *tid && l.text.starts_with("demo:tick"))
            .map(tick_n)
            .collect();
        assert_eq!(n.len(), 1_000_000);
        assert!(n.windows(2).all(|w| w[0] < w[1]), "thread {tid}: ticks out of order");
    }
    let file = weft_format::Trace::open(&trace).unwrap();
    let probe_chunks = file.event_chunks().filter(|c| c.header.kind.is_probe()).count();
    assert!(probe_chunks > 0, "the ticks were stored as written");
}

/// The control socket of a process started by `demo spin`.
fn socket_of(pid: u32) -> std::path::PathBuf {
    let start = weft_probe_abi::process_start_time(pid).expect("start time");
    let name = weft_probe_abi::socket_name(pid, start);
    weft_probe_abi::runtime_dirs(0)
        .into_iter()
        .map(|d| d.join(&name))
        .find(|p| p.exists())
        .expect("the control socket")
}

fn as_nobody(caps: bool) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
    if caps {
        // Past the 0700 directory and the 0600 socket, to reach the process's own check.
        c.args(["--inh-caps=+dac_override", "--ambient-caps=+dac_override"]);
    } else {
        c.arg("--inh-caps=-all");
    }
    c
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn a_peer_with_another_uid_is_refused_and_logged() {
    require_root();
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mut target = spin();
    let pid = target.0.id();
    let sock = socket_of(pid);
    let dir_mode = std::fs::metadata(sock.parent().expect("dir"))
        .expect("dir")
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700, "{}", sock.display());
    assert_eq!(std::fs::symlink_metadata(&sock).expect("socket").mode() & 0o777, 0o600);

    // Another uid cannot even reach the socket.
    let out = run(as_nobody(false).arg(env!("CARGO_BIN_EXE_weft")).arg("ps"));
    let listing = text(&out.stdout);
    assert!(
        !listing
            .lines()
            .any(|l| l.contains(&pid.to_string()) && l.contains("weft-demo")),
        "another uid got answers: {listing}"
    );
    let out = run(as_nobody(false).arg(program("connect_flood")).arg(&sock).arg("1"));
    assert_eq!(text(&out.stdout).trim(), "connected 0 of 1", "{}", text(&out.stderr));

    // One that gets past the file modes is refused by the process, which
    // logs it without letting a flood of them flood its stderr.
    let out = run(as_nobody(true).arg(program("connect_flood")).arg(&sock).arg("3000"));
    assert_eq!(
        text(&out.stdout).trim(),
        "connected 3000 of 3000",
        "{}",
        text(&out.stderr)
    );
    std::thread::sleep(Duration::from_millis(200));
    let _ = target.0.kill();
    let _ = target.0.wait();
    let mut err = String::new();
    target
        .0
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read");
    let refusals = err.lines().filter(|l| l.contains("refused control connection")).count();
    assert!(
        err.contains(&format!("weft-probe[{pid}]: refused control connection from pid")) && err.contains("uid 65534"),
        "not logged: {err:?}"
    );
    assert!(refusals <= 5, "{refusals} lines for 3000 refusals: {err}");
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn an_impostor_socket_or_a_planted_link_gets_nothing_and_is_reported() {
    require_root();
    use std::os::unix::net::UnixListener;
    let target = spin();
    let pid = target.0.id();
    let sock = socket_of(pid);
    let dir = tmp();
    let record = || {
        run(weft()
            .args(["record", "-q", "--duration", "300ms", "-o"])
            .arg(dir.path().join("x.weft"))
            .args(["-p", &pid.to_string()]))
    };
    // The impostor (same uid, another process) took the socket name.
    std::fs::remove_file(&sock).expect("remove the socket");
    let impostor = UnixListener::bind(&sock).expect("bind");
    impostor.set_nonblocking(true).expect("nonblocking");
    let out = record();
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("is served by pid {}", std::process::id())),
        "{err}"
    );
    let mut conn = impostor.accept().expect("the recorder connected").0;
    conn.set_nonblocking(false).expect("blocking");
    let mut got = Vec::new();
    conn.read_to_end(&mut got).expect("read");
    assert!(got.is_empty(), "the recorder sent {} bytes to an impostor", got.len());

    // A link planted at the socket path is not even connected to.
    std::fs::remove_file(&sock).expect("remove");
    let elsewhere = dir.path().join("elsewhere.sock");
    let decoy = UnixListener::bind(&elsewhere).expect("bind");
    decoy.set_nonblocking(true).expect("nonblocking");
    std::os::unix::fs::symlink(&elsewhere, &sock).expect("symlink");
    let out = record();
    let err = text(&out.stderr);
    std::fs::remove_file(&sock).expect("remove the link");
    assert!(err.contains("is a symbolic link, not a socket"), "{err}");
    assert!(decoy.accept().is_err(), "the recorder connected through the link");
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn a_runtime_directory_taken_by_another_user_does_not_lock_a_program_out() {
    require_root();
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    // nobody's usual directory, made first by someone else (root here).
    let taken = std::path::Path::new("/tmp/weft-65534");
    let _ = std::fs::remove_dir_all(taken);
    std::fs::DirBuilder::new().mode(0o777).create(taken).expect("mkdir");
    std::fs::set_permissions(taken, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let dir = tmp();
    let trace = dir.path().join("taken.weft");
    let out = run(weft()
        .args(["record", "-o"])
        .arg(&trace)
        .arg("--")
        .args(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(demo_path())
        .args(["markers", "3"]));
    let _ = std::fs::remove_dir_all(taken);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("not using /tmp/weft-65534: /tmp/weft-65534 belongs to uid 0"),
        "{err}"
    );
    let lines = dump(&trace, &["--event", "weft:marker"]);
    assert_eq!(
        lines.len(),
        3,
        "the program's markers were not recorded: {lines:#?}\n{err}"
    );
}

/// Builds libweft_probe.a in its own target directory (the outer cargo holds
/// the lock on the main one) and links a C program against it.
fn build_capi(dir: &std::path::Path) -> std::path::PathBuf {
    build_c(dir, "capi")
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn c_api_events_markers_and_spans() {
    require_root();
    let dir = tmp();
    let exe = build_capi(dir.path());
    // Untraced: the event is disabled, so its arguments are never evaluated.
    let plain = run(&mut Command::new(&exe));
    assert_eq!(text(&plain.stdout), "evaluated 0\n");
    let trace = dir.path().join("c.weft");
    let out = run(weft()
        .args(["record", "-o"])
        .arg(&trace)
        .arg("--")
        .arg(&exe)
        .env("WEFT_PROBE_DEBUG", "1"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "evaluated 10\n");
    let said = text(&out.stderr);
    let lines = parse(&dump(&trace, &["--event", "capp:*,weft:*"]));
    let reqs: Vec<&L> = lines.iter().filter(|l| l.text.starts_with("capp:request")).collect();
    assert_eq!(reqs.len(), 10, "weft said: {said}\n{lines:#?}");
    assert_eq!(
        reqs[3].text,
        "capp:request id=3 path=\"/index.html\" ratio=1.5 delta=-3"
    );
    for want in [
        "capp:pair a=18364758544493064720 b=-7",
        "capp:triple a=1 b=2 c=0.25",
        "capp:named n=7 s=\"seven\"",
        "capp:mixed s=\"m\" a=8 b=-8",
        "capp:one a=9",
        // Missing arguments are stored as zero.
        "capp:triple a=3 b=4 c=0",
        "capp:pair a=5 b=6",
        "capp:triple a=7 b=8 c=1.5",
    ] {
        let n = lines.iter().filter(|l| l.text == want).count();
        assert_eq!(n, 1, "`{want}` {n} times:\n{lines:#?}");
    }
    assert!(lines.iter().any(|l| l.text == "marker \"c-marker\" = 42"));
    assert!(lines.iter().any(|l| l.text.starts_with("span \"c-span\" ends after")));
    assert_accounting(&lines);
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn guard_mode_faults_a_stray_write_at_the_culprit() {
    require_root();
    let dir = tmp();
    // Writes through weft-probe still work with the buffers read-only between writes.
    let trace = dir.path().join("g.weft");
    let out = run(weft()
        .args(["record", "-q", "-o"])
        .arg(&trace)
        .arg("--")
        .arg(demo_path())
        .args(["threads", "2", "2000"])
        .env("WEFT_PROBE_GUARD", "1"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines = parse(&dump(&trace, &["--event", "demo:tick,weft:probe*"]));
    let t = assert_accounting(&lines);
    assert_eq!(t.values().map(|v| v[1]).sum::<u64>(), 4000);
    // Handlers that write and siglongjmp out of interrupted writes: no fault
    // in guard mode either, and every event accounted for.
    let trace = dir.path().join("gj.weft");
    let out = run(weft()
        .args(["record", "-q", "-o"])
        .arg(&trace)
        .arg("--")
        .arg(demo_path())
        // Few events: each costs two mprotect calls here, and the demo's
        // timer fires every 50 µs.
        .args(["longjmp", "2000"])
        .env("WEFT_PROBE_GUARD", "1"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let jumps: u64 = text(&out.stdout)
        .split_whitespace()
        .last()
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    assert!(jumps > 0, "no handler jumped out of a write: {}", text(&out.stdout));
    assert_accounting(&parse(&dump(&trace, &["--event", "demo:*,weft:probe*"])));
    // A stray store into the buffer faults right there.
    let trace = dir.path().join("s.weft");
    let out = run(weft()
        .args(["record", "-q", "-o"])
        .arg(&trace)
        .arg("--")
        .arg(demo_path())
        .args(["scribble", "100"])
        .env("WEFT_PROBE_GUARD", "1"));
    assert_eq!(out.status.code(), Some(128 + 11), "{}", text(&out.stderr));
    let lines = dump(&trace, &["--event", "signal_deliver"]);
    assert!(
        lines.iter().any(|l| l.contains("SIGSEGV code=SEGV_ACCERR")),
        "{lines:#?}"
    );
}

/// (pid -> ticks) from a storm's trace, and the children's pids.
fn storm_result(trace: &std::path::Path) -> (BTreeMap<u32, Vec<u64>>, Vec<u32>) {
    let lines = parse(&dump(trace, &[]));
    let mut ticks: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for l in lines.iter().filter(|l| l.text.starts_with("demo:tick")) {
        let thread: u64 = l
            .text
            .split("thread=")
            .nth(1)
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("thread field");
        ticks.entry(l.pid).or_default().push(thread);
    }
    let kids = lines
        .iter()
        .filter(|l| l.text.starts_with("new process (forked by"))
        .map(|l| l.pid)
        .collect();
    (ticks, kids)
}

/// With default settings, 20 children alive at once fit under the default
/// memory cap: only the first process attached gets buffers for 16
/// threads up front, the others for their own threads and four more (with
/// 128 MiB each, 14 of 20 were left unrecorded, each after waiting 3 s in
/// its fork). weft-probe's own threads are not counted as writers.
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn twenty_forked_workers_fit_under_the_default_memory_cap() {
    require_root();
    let dir = tmp();
    let (trace, out) = record(dir.path(), "workers.weft", &[], &["storm", "20", "100"]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains(" from 21 attached processes, 0 lost"), "{err}");
    assert!(!err.contains("not recorded"), "{err}");
    let (ticks, kids) = storm_result(&trace);
    assert_eq!(kids.len(), 20);
    for k in &kids {
        assert_eq!(ticks.get(k).map(Vec::len), Some(100), "child {k}");
    }
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn a_fork_storm_is_recorded_child_by_child_or_each_child_is_listed_as_missed() {
    require_root();
    let dir = tmp();
    // Small buffers: every one of 100 children alive at once is attached.
    let small = ["-q", "--probe-threads", "2", "--probe-buffer", "64K"];
    let (trace, out) = record(dir.path(), "storm.weft", &small, &["storm", "100", "10"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "storm 100 children 10 ticks");
    let (ticks, kids) = storm_result(&trace);
    assert_eq!(kids.len(), 100);
    for k in &kids {
        let t = ticks.get(k).unwrap_or_else(|| {
            // What the recording says of it, for a failure to be read.
            let info = text(&run(weft().arg("info").arg(&trace)).stdout);
            let said: Vec<&str> = info.lines().filter(|l| l.contains(&k.to_string())).collect();
            let dumped = dump(&trace, &["--pid", &k.to_string()]);
            panic!(
                "child {k} has no events; weft info: {said:?}; its records: {}",
                dumped.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
            )
        });
        // Each child's events are its own (one thread index), all ten of them.
        assert_eq!(t.len(), 10, "child {k}: {t:?}");
        assert!(t.iter().all(|&x| x == t[0]), "child {k} holds another's events: {t:?}");
    }
    assert_eq!(ticks.len(), 100, "events in a process that is not a child");

    // A memory cap that fits a few: the others are each listed, with why.
    let capped = [
        "-q",
        "--probe-memory",
        "4M",
        "--probe-threads",
        "2",
        "--probe-buffer",
        "64K",
    ];
    let (trace, out) = record(dir.path(), "capped.weft", &capped, &["storm", "100", "10"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (ticks, kids) = storm_result(&trace);
    let info = text(&run(weft().arg("info").arg(&trace)).stdout);
    // Listed as missed for any reason: the cap, or a child that exited
    // before its attach went through; the cap must be among them.
    let pid_of = |l: &str| -> Option<u32> { l.split_whitespace().nth(2)?.trim_end_matches(':').parse().ok() };
    let missed: Vec<u32> = info
        .lines()
        .filter(|l| l.contains(": not recorded: "))
        .filter_map(pid_of)
        .collect();
    let capped = info
        .lines()
        .filter(|l| l.contains("not recorded: weft-probe memory cap reached"))
        .filter_map(pid_of)
        .count();
    assert!(capped > 0 && ticks.len() >= 4, "{info}");
    for k in &kids {
        let recorded = ticks.get(k).is_some_and(|t| t.len() == 10);
        assert!(
            recorded != missed.contains(k),
            "child {k} is neither recorded in full nor listed as missed (or both):\n{info}"
        );
    }
}

/// Ticks (n, thread) per tid, from `demo:tick` lines.
fn ticks_by_tid(lines: &[L]) -> BTreeMap<u32, Vec<(u64, u64)>> {
    let mut m: BTreeMap<u32, Vec<(u64, u64)>> = BTreeMap::new();
    for l in lines.iter().filter(|l| l.text.starts_with("demo:tick")) {
        let thread = l
            .text
            .split("thread=")
            .nth(1)
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("thread field");
        m.entry(l.tid).or_default().push((tick_n(l), thread));
    }
    m
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn a_damaged_control_page_is_flagged_never_believed_and_reading_goes_on() {
    require_root();
    let n = 2000u64;
    let dir = tmp();
    for kind in ["zero", "counters", "tid", "gen", "time"] {
        let (trace, out) = record(
            dir.path(),
            &format!("{kind}.weft"),
            &["-q"],
            &["chaos", kind, &n.to_string()],
        );
        assert!(out.status.success(), "{kind}: {}", text(&out.stderr));
        // chaos bad B good G1 G2 G3 main M
        let words: Vec<u32> = text(&out.stdout)
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        let (bad, good, main) = (words[0], &words[1..4], words[4]);
        let info = text(&run(weft().arg("info").arg(&trace)).stdout);
        let lines = parse(&dump(&trace, &[]));
        let ticks = ticks_by_tid(&lines);

        // No invented thread, no impossible number, no impossible time.
        for tid in ticks.keys() {
            assert!(
                tid == &bad || good.contains(tid) || tid == &main,
                "{kind}: events of a thread {tid} that never existed"
            );
        }
        assert!(
            !info.contains("18446744073709551615"),
            "{kind}: a scribbled counter shown as a fact:\n{info}"
        );
        let span: f64 = info
            .lines()
            .find_map(|l| l.strip_prefix("duration:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("duration");
        assert!(span < 60.0, "{kind}: a recording of {span} s:\n{info}");

        // Other threads' events intact: each good thread's ticks, all of them,
        // under its own tid (with a zeroed page, one good thread may take over
        // the lost slot and share it with the bad one).
        let intact = good
            .iter()
            .filter(|t| {
                ticks
                    .get(t)
                    .is_some_and(|v| v.len() as u64 == n && v.iter().all(|&(_, k)| k < 3))
            })
            .count();
        let want = if kind == "zero" { 2 } else { 3 };
        assert!(intact >= want, "{kind}: only {intact} good threads intact:\n{info}");

        // The bad thread: counts that add up to what it attempted (2n, by its
        // own count), or counts flagged as not known; damage said.
        let flagged = info.contains("with damaged counters");
        match kind {
            "zero" | "counters" => assert!(flagged, "{kind}: damaged counters believed:\n{info}"),
            _ => {
                assert!(!flagged, "{kind}: {info}");
                let t = totals(&lines);
                let v = t
                    .get(&bad)
                    .unwrap_or_else(|| panic!("{kind}: no totals for the bad thread:\n{info}"));
                assert_eq!(v[0], 2 * n, "{kind}: attempted by the program's own count");
                assert_eq!(v[0], v[1..7].iter().sum::<u64>(), "{kind}: {v:?}");
                assert!(info.contains("damage reports"), "{kind}: damage not reported:\n{info}");
            }
        }
        if kind == "gen" {
            // Reading resumed at the writer's next generation.
            let after = ticks
                .get(&bad)
                .map_or(0, |v| v.iter().filter(|&&(i, _)| i >= 1_000_000).count() as u64);
            assert!(
                after >= n / 2,
                "gen: {after} of {n} ticks after the damage recorded:\n{info}"
            );
        }
    }
}

/// The seals keep the buffer memfd's size; a hole punched in it (or a page
/// MADV_REMOVEd) reads as zeros: the collector stays up, says what it found,
/// and the other threads' events are whole.
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn a_program_that_shrinks_or_punches_its_buffers_does_not_bring_the_collector_down() {
    require_root();
    let n = 2000u64;
    let dir = tmp();
    let (trace, out) = record(dir.path(), "punch.weft", &["-q"], &["punch", &n.to_string()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("ftruncate refused"),
        "the memfd was not sealed against shrinking: {stdout}"
    );
    assert!(stdout.contains("punch done"), "{stdout}");
    let words: Vec<u32> = stdout.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    let (bad, good) = (words[0], &words[1..4]);
    let info = text(&run(weft().arg("info").arg(&trace)).stdout);
    assert!(info.contains("status:     complete"), "{info}");
    let lines = parse(&dump(&trace, &[]));
    let ticks = ticks_by_tid(&lines);
    for t in good {
        assert_eq!(ticks.get(t).map_or(0, Vec::len) as u64, n, "thread {t}:\n{info}");
    }
    // The punched thread: damage said, or its counters flagged; never a
    // silent shortfall.
    let t = totals(&lines);
    let said = info.contains("damage reports") || info.contains("with damaged counters");
    let exact = t
        .get(&bad)
        .is_some_and(|v| v[0] == 2 * n && v[0] == v[1..7].iter().sum::<u64>() && v[1] == 2 * n);
    assert!(said || exact, "the punched thread lost events silently:\n{info}");
}

/// The recorder stopped for 10 s while 8 threads write flat out into small
/// buffers: per thread, what the program wrote (its own count) is exactly
/// what was received plus what was counted lost, and every received event
/// is in the trace, in order.
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn a_stopped_recorder_loses_only_what_it_counts_by_the_programs_own_tally() {
    require_root();
    let (threads, n) = (8u64, 200_000u64);
    let dir = tmp();
    let trace = dir.path().join("stopped.weft");
    let mut rec = weft()
        .args(["record", "-q", "--probe-buffer", "64K", "-o"])
        .arg(&trace)
        .arg("--")
        .arg(demo_path())
        .args(["gate", &threads.to_string(), &n.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("weft");
    let mut out = BufReader::new(rec.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("ready");
    assert_eq!(line, "ready\n");
    // SAFETY: signals to our own child.
    unsafe { libc::kill(rec.id() as i32, libc::SIGSTOP) };
    let started = std::time::Instant::now();
    std::io::Write::write_all(&mut rec.stdin.take().expect("stdin"), b"go\n").expect("stdin");
    line.clear();
    out.read_line(&mut line).expect("wrote");
    assert_eq!(
        line.trim(),
        format!("wrote {threads} x {n}"),
        "the program blocked on the stopped recorder"
    );
    std::thread::sleep(Duration::from_secs(10).saturating_sub(started.elapsed()));
    // SAFETY: as above.
    unsafe { libc::kill(rec.id() as i32, libc::SIGCONT) };
    assert!(rec.wait().expect("wait").success());
    let lines = parse(&dump(&trace, &["--event", "demo:tick,weft:probe*"]));
    let t = totals(&lines);
    assert_eq!(t.len() as u64, threads, "{t:?}");
    let ticks = ticks_by_tid(&lines);
    for (tid, v) in &t {
        // attempted = received + ring full + busy + abandoned + damaged + overwritten
        assert_eq!(v[0], n, "thread {tid}: attempted is not what the program wrote: {v:?}");
        assert_eq!(v[1..7].iter().sum::<u64>(), n, "thread {tid}: {v:?}");
        let got = ticks.get(tid).cloned().unwrap_or_default();
        assert_eq!(got.len() as u64, v[1], "thread {tid}: received but not in the trace");
        assert!(
            got.windows(2).all(|w| w[0].0 < w[1].0),
            "thread {tid}: out of order or twice"
        );
    }
}

/// A program SIGKILLed inside a write (fault points of weft-probe's
/// `fault-points` feature, which the tests' weft-demo is built with) loses
/// at most that event: every earlier one is in the trace, in order, the
/// accounting adds up to the program's 5000 attempts, and the recording
/// stops within 2 s of the death.
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn a_program_killed_mid_event_loses_at_most_that_event() {
    require_root();
    let k = 5000u64;
    let dir = tmp();
    for point in ["after_reserve", "mid_write", "before_commit", "after_commit"] {
        let trace = dir.path().join(format!("{point}.weft"));
        let out = run(weft()
            .args(["record", "-q", "-o"])
            .arg(&trace)
            .arg("--")
            .arg(demo_path())
            .args(["threads", "1", "20000"])
            .env("WEFT_PROBE_FAULT", format!("{point}:{k}")));
        assert_eq!(out.status.code(), Some(128 + 9), "{point}: {}", text(&out.stderr));
        let lines = parse(&dump(&trace, &[]));
        let ticks: Vec<u64> = lines
            .iter()
            .filter(|l| l.text.starts_with("demo:tick"))
            .map(tick_n)
            .collect();
        // Ticks 0 .. k-2 were complete before the k-th write began.
        assert!(
            ticks.len() as u64 >= k - 1 && ticks.len() as u64 <= k,
            "{point}: {} ticks kept of {k} attempted",
            ticks.len()
        );
        assert!(
            ticks.iter().enumerate().all(|(i, &n)| n == i as u64),
            "{point}: a gap or a reordering"
        );
        let t = totals(&lines);
        let v = t.values().next().unwrap_or_else(|| panic!("{point}: no totals"));
        assert_eq!(v[0], k, "{point}: attempted {v:?}");
        assert_eq!(v[0], v[1..7].iter().sum::<u64>(), "{point}: {v:?}");
        // From the death (the killed line) to the end of the recording.
        let killed = lines
            .iter()
            .find(|l| l.text.contains("killed by SIGKILL"))
            .map(|l| l.t)
            .unwrap_or_else(|| panic!("{point}: no death in the trace"));
        let info = text(&run(weft().arg("info").arg(&trace)).stdout);
        let span: f64 = info
            .lines()
            .find_map(|l| l.strip_prefix("duration:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("duration");
        assert!(
            span - killed < 2.0,
            "{point}: recording went on {} s after the death",
            span - killed
        );
    }
}

/// Four writer threads fork 25 children each, one after another: every
/// child's events are under its own pid and only its own, and none lands in
/// the parent's streams.
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn forks_from_several_writer_threads_keep_every_child_event_with_its_child() {
    require_root();
    let dir = tmp();
    let small = ["-q", "--probe-threads", "2", "--probe-buffer", "64K"];
    let (trace, out) = record(dir.path(), "fm.weft", &small, &["forkmany", "4", "25", "10"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines = parse(&dump(&trace, &[]));
    let parent = lines
        .iter()
        .find(|l| l.text.starts_with("demo:tick"))
        .map(|l| l.pid)
        .expect("ticks");
    let info = text(&run(weft().arg("info").arg(&trace)).stdout);
    let mut children = 0;
    for (pid, ticks) in ticks_by_tid(&lines)
        .into_iter()
        .map(|(tid, v)| (lines.iter().find(|l| l.tid == tid).map_or(0, |l| l.pid), v))
    {
        if pid == parent {
            assert!(
                ticks.iter().all(|&(_, th)| th < 4),
                "a child's event in the parent: {ticks:?}"
            );
            continue;
        }
        children += 1;
        let tag = ticks[0].1;
        assert!(tag >= 1000, "child {pid} holds the parent's events: {ticks:?}");
        assert_eq!(ticks.len(), 10, "child {pid}: {ticks:?}");
        assert!(
            ticks.iter().all(|&(_, th)| th == tag),
            "child {pid} holds another child's events: {ticks:?}"
        );
    }
    let missed = info.lines().filter(|l| l.contains("not recorded")).count();
    assert_eq!(
        children + missed,
        100,
        "children recorded {children}, listed as missed {missed}:\n{info}"
    );
}

/// A thread that keeps flipping bits of its own buffers while it writes,
/// for a second, while the collector drains: the recording goes on and
/// ends, damage is said, and the other threads' events and counts are
/// exactly theirs.
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn a_thread_scribbling_while_the_collector_drains_harms_only_itself() {
    require_root();
    let dir = tmp();
    let started = std::time::Instant::now();
    let (trace, out) = record(dir.path(), "cl.weft", &["-q"], &["chaosloop", "1000"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the collector hung on the damage"
    );
    // chaosloop bad TID wrote N flips F good TID:N TID:N TID:N
    let stdout = text(&out.stdout);
    let good: Vec<(u32, u64)> = stdout
        .split_whitespace()
        .filter_map(|w| {
            let (t, n) = w.split_once(':')?;
            Some((t.parse().ok()?, n.parse().ok()?))
        })
        .collect();
    assert_eq!(good.len(), 3, "{stdout}");
    let info = text(&run(weft().arg("info").arg(&trace)).stdout);
    assert!(info.contains("status:     complete"), "{info}");
    assert!(
        info.contains("damage reports") || info.contains("with damaged counters"),
        "{info}"
    );
    let lines = parse(&dump(&trace, &[]));
    let t = totals(&lines);
    let ticks = ticks_by_tid(&lines);
    for (tid, n) in &good {
        let v = t
            .get(tid)
            .unwrap_or_else(|| panic!("no totals for good thread {tid}:\n{info}"));
        assert_eq!(v[0], *n, "thread {tid}: attempted is not what it wrote: {v:?}");
        assert_eq!(v[0], v[1..7].iter().sum::<u64>(), "thread {tid}: {v:?}");
        assert_eq!(v[5], 0, "thread {tid} counted damage: {v:?}");
        let got = ticks.get(tid).cloned().unwrap_or_default();
        assert_eq!(got.len() as u64, v[1], "thread {tid}");
        assert!(
            got.iter().all(|&(_, th)| th < 3),
            "thread {tid} holds the scribbler's events"
        );
        assert!(
            got.windows(2).all(|w| w[0].0 < w[1].0),
            "thread {tid}: out of order or twice"
        );
    }
}

/// Signal handlers that never return to the write they interrupted: one
/// ends its thread in the kernel, one ends the process, one nests 200 deep;
/// and, every 50 us, one that writes from an alternate signal stack and one
/// that switches to another context (swapcontext), writes, and comes back.
/// Each time the trace decodes without damage, and the writer's counts are
/// exactly the attempts the program counted itself.
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn handlers_that_never_return_or_nest_deep_keep_the_accounting_exact() {
    require_root();
    let dir = tmp();
    // An alternate stack above the thread's own, where a handler's frames
    // lie above the ones it interrupts: more writes, so that signals land
    // in sub-buffer switches (2 runs in 3 were damaged before the kernel
    // was asked whether a write runs on the alternate stack).
    for (kind, status, n) in [
        ("threadexit", 0, "100000"),
        ("exit", 3, "100000"),
        ("nest", 0, "100000"),
        ("altstack", 0, "100000"),
        ("altstack-above", 0, "1000000"),
        ("swapcontext", 0, "100000"),
    ] {
        let (trace, out) = record(dir.path(), &format!("{kind}.weft"), &["-q"], &["torture", kind, n]);
        assert_eq!(out.status.code(), Some(status), "{kind}: {}", text(&out.stderr));
        let said = text(&out.stdout);
        let attempts: u64 = said
            .lines()
            .find_map(|l| l.strip_prefix(&format!("torture {kind} attempts ")))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("{kind}: no count in {said:?}"));
        let lines = parse(&dump(&trace, &[]));
        let damaged: Vec<&str> = lines
            .iter()
            .filter(|l| l.text.contains("DAMAGED") || l.text.contains("probe_damage"))
            .map(|l| l.text.as_str())
            .collect();
        assert!(
            !lines.iter().any(|l| l.text.contains("DAMAGED")),
            "{kind}: damage reported: {damaged:?}"
        );
        let t = totals(&lines);
        assert_eq!(t.len(), 1, "{kind}: {t:?}");
        let v = t.values().next().expect("totals");
        assert_eq!(v[0], attempts, "{kind}: attempted is not the program's count: {v:?}");
        assert_eq!(v[0], v[1..7].iter().sum::<u64>(), "{kind}: {v:?}");
    }
}

/// A process's registry holds 16384 events; one registered beyond that
/// stays disabled, and the program says so once on stderr.
#[test]
fn registering_past_the_registry_is_said_not_silent() {
    let dir = tmp();
    let mut c = demo()
        .args(["late", "16400"])
        .env("WEFT_RUNTIME_DIR", dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("demo");
    std::io::Write::write_all(&mut c.stdin.take().expect("stdin"), b"go\n").expect("stdin");
    let out = c.wait_with_output().expect("wait");
    let err = text(&out.stderr);
    assert_eq!(err.matches("more than 16384 events registered").count(), 1, "{err}");
}

/// The recorder, too, learns that a process registered events past its
/// registry (from the area's header) and says so in the file.
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn the_recorder_reports_events_a_process_could_not_register() {
    require_root();
    let dir = tmp();
    let (trace, out) = record(dir.path(), "late.weft", &[], &["late", "16400"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    // weft-demo's own events take places first: what it could enable of
    // its 16 400 tells how many found none.
    let stdout = text(&out.stdout);
    let enabled: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("enabled ")?.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{stdout}"));
    let said = format!(
        "{} of its events were registered after its registry was full",
        16_400 - enabled
    );
    assert!(err.contains(&said), "{err}");
    let lines = dump(&trace, &["--event", "weft:probe_missed"]);
    assert!(lines.iter().any(|l| l.contains(&said)), "{lines:#?}");
}

/// From C, a handler that lands in a write and leaves it for good: one
/// rewrites the interrupted context's instruction pointer (the thread goes
/// on elsewhere, writes, and ends there), one calls pthread_exit (a forced
/// unwind through the write path). The trace decodes without damage, the
/// cut write counts as abandoned, and the counts are the program's.
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn handlers_that_rewrite_the_context_or_pthread_exit_from_c_keep_the_accounting_exact() {
    require_root();
    let dir = tmp();
    let exe = build_c(dir.path(), "torture");
    for mode in ["ucontext", "pthread_exit"] {
        let trace = dir.path().join(format!("{mode}.weft"));
        let out = run(weft()
            .args(["record", "-q", "-o"])
            .arg(&trace)
            .arg("--")
            .arg(&exe)
            .args([mode, "1000000"]));
        assert!(out.status.success(), "{mode}: {}", text(&out.stderr));
        let said = text(&out.stdout);
        let attempts: u64 = said
            .split_whitespace()
            .last()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{mode}: {said:?}"));
        let lines = parse(&dump(&trace, &[]));
        assert!(
            !lines.iter().any(|l| l.text.contains("DAMAGED")),
            "{mode}: damage reported"
        );
        let t = totals(&lines);
        let v = t.values().next().unwrap_or_else(|| panic!("{mode}: no totals"));
        // The program counts an attempt just before it writes: a signal
        // landing in between leaves it one ahead.
        assert!(
            v[0] == attempts || v[0] + 1 == attempts,
            "{mode}: {v:?} for {attempts} counted"
        );
        assert_eq!(v[0], v[1..7].iter().sum::<u64>(), "{mode}: {v:?}");
        assert!(v[4] <= 1, "{mode}: more than the cut write abandoned: {v:?}");
    }
}

/// A fork child writes before weft-probe's fork handler has run: from an
/// atfork handler registered before it, from a signal handler landing in
/// that window, and after a raw fork syscall that runs no handler at all.
/// The parent's buffers are not mapped in the child (MADV_DONTFORK): those
/// writes must find no session, not fault. Children that went through the
/// handler are recorded as their own processes.
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn a_fork_child_writing_before_its_setup_does_not_fault() {
    require_root();
    let dir = tmp();
    let exe = build_c(dir.path(), "forkwin");
    let (trace, out) = record_program(dir.path(), "fw.weft", &["-q"], &exe, &["6"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains("crashed 0"), "a child faulted: {said}");
    let value = |key: &str| -> Vec<(u32, u64)> {
        said.lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some(key)).then_some(())?;
                let (a, b) = (w.next()?, w.next());
                Some(match b {
                    Some(b) => (a.parse().ok()?, b.parse().ok()?),
                    None => (0, a.parse().ok()?),
                })
            })
            .collect()
    };
    let parent_writes = value("parent")[0].1;
    let children = value("child");
    assert_eq!(children.len(), 4, "{said}");
    let lines = parse(&dump(&trace, &["--event", "fw:*"]));
    let ticks = |pid: u32| {
        lines
            .iter()
            .filter(|l| l.pid == pid && l.text.starts_with("fw:tick"))
            .count() as u64
    };
    // Nothing written before a child's setup lands anywhere.
    assert!(!lines.iter().any(|l| l.text.starts_with("fw:early")), "{lines:#?}");
    for (pid, n) in children {
        assert_eq!(ticks(pid), n, "child {pid}");
    }
    let all = parse(&dump(&trace, &[]));
    assert!(!all.iter().any(|l| l.text.contains("DAMAGED")), "damage reported");
    // The parent's two threads attempted what they counted, in its stream only.
    let first = lines.first().expect("events").pid;
    let attempted: u64 = all
        .iter()
        .filter(|l| l.pid == first && l.text.starts_with("weft-probe thread totals:"))
        .filter_map(|l| {
            l.text
                .split(|c: char| !c.is_ascii_digit())
                .find_map(|n| n.parse::<u64>().ok())
        })
        .sum();
    assert_eq!(attempted, parent_writes, "the parent's stream");
    assert!(ticks(first) > 0 && ticks(first) <= parent_writes);
}

/// weft-probe's fork handler is async-signal-safe: a program may fork from
/// a signal handler, or while its other threads hold the allocator's lock.
/// The C program wraps the allocator and `pthread_create` at link time
/// (`-Wl,--wrap`, which reaches every call libweft_probe.a makes) and counts
/// the calls made in a child before its fork returned: none may happen (the
/// handler used to allocate and start two threads there). Children forked
/// from main and from a signal handler are still recorded, and an event a
/// child registers after its attach is announced and enabled by the
/// child's control thread.
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn the_fork_handler_neither_allocates_nor_starts_threads_and_children_are_still_recorded() {
    require_root();
    let dir = tmp();
    let wrap = "-Wl,--wrap=malloc,--wrap=free,--wrap=calloc,--wrap=realloc,--wrap=posix_memalign,--wrap=aligned_alloc,--wrap=memalign,--wrap=pthread_create";
    let exe = build_c_with(dir.path(), "forksafe", &[wrap]);
    let (trace, out) = record_program(dir.path(), "fs.weft", &["-q"], &exe, &["4"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains("crashed 0"), "{said}");
    let children: Vec<Vec<u64>> = said
        .lines()
        .filter(|l| l.starts_with("child "))
        .map(|l| l.split_whitespace().filter_map(|w| w.parse().ok()).collect())
        .collect();
    assert_eq!(children.len(), 4, "{said}");
    let lines = parse(&dump(&trace, &["--event", "fs:*,late:*"]));
    for c in &children {
        let [pid, ticks, late, allocs, threads] = c[..] else {
            panic!("{said}")
        };
        assert_eq!(
            (allocs, threads),
            (0, 0),
            "calls made in child {pid} before its fork returned: {said}"
        );
        let count = |name: &str| {
            lines
                .iter()
                .filter(|l| u64::from(l.pid) == pid && l.text.starts_with(name))
                .count() as u64
        };
        assert_eq!(count("fs:tick"), ticks, "child {pid}");
        assert_eq!(late, 50, "child {pid}: its late event was never enabled: {said}");
        assert_eq!(count("late:ev"), late, "child {pid}");
    }
    // Grandchildren, forked while their parent's control thread ran.
    let grandchildren: Vec<Vec<u64>> = said
        .lines()
        .filter(|l| l.starts_with("grandchild "))
        .map(|l| l.split_whitespace().filter_map(|w| w.parse().ok()).collect())
        .collect();
    assert_eq!(grandchildren.len(), 4, "{said}");
    for g in &grandchildren {
        let [pid, ticks, allocs, threads] = g[..] else {
            panic!("{said}")
        };
        assert_eq!(
            (allocs, threads),
            (0, 0),
            "calls made in grandchild {pid} before its fork returned: {said}"
        );
        let n = lines
            .iter()
            .filter(|l| u64::from(l.pid) == pid && l.text.starts_with("fs:tick"))
            .count() as u64;
        assert_eq!(n, ticks, "grandchild {pid}");
    }
    let all = parse(&dump(&trace, &[]));
    assert!(!all.iter().any(|l| l.text.contains("DAMAGED")), "damage reported");

    // The recording ends while a child lives: its control thread detaches
    // it, and what it writes afterwards goes nowhere, without a fault.
    let (trace, out) = record_program(
        dir.path(),
        "linger.weft",
        &["-q", "--duration", "1500ms"],
        &exe,
        &["1", "linger"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains("crashed 0") && said.contains(" detached 1"), "{said}");
    // The child's control thread is unknown to the C library, so the
    // child's `setuid` does not reach it: it follows within a second, and
    // leaves the process's dumpable flag as the child set it.
    assert!(said.contains(" privileged 0 dumpable 1"), "{said}");
    // A grandchild forked after the child gave up root binds its socket in
    // its own directory (root's is closed to it), and is recorded.
    let (gpid, gticks): (u32, usize) = said
        .lines()
        .find_map(|l| {
            let mut w = l.strip_prefix("dropped-grandchild ")?.split_whitespace();
            Some((w.next()?.parse().ok()?, w.next()?.parse().ok()?))
        })
        .unwrap_or_else(|| panic!("{said}"));
    let pid: u32 = said
        .lines()
        .find_map(|l| l.strip_prefix("child ")?.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{said}"));
    let lines = parse(&dump(&trace, &["--event", "fs:*"]));
    let ticks = lines
        .iter()
        .filter(|l| l.pid == pid && l.text.starts_with("fs:tick"))
        .count();
    assert!(ticks > 100, "child {pid}: {ticks} events before the detach");
    let got = lines
        .iter()
        .filter(|l| l.pid == gpid && l.text.starts_with("fs:tick"))
        .count();
    assert_eq!(got, gticks, "grandchild {gpid}, forked after its parent gave up root");

    // A child that closes every inherited descriptor and reuses the numbers:
    // its control thread must leave the program's descriptors alone (never
    // read, never close them) and must not spin on them.
    // The thread notices within a second (it looks again at least that
    // often) and ends the session whose connection it lost.
    let (_, out) = record_program(
        dir.path(),
        "closeall.weft",
        &["-q", "--duration", "1500ms"],
        &exe,
        &["1", "closeall"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains("crashed 0"), "{said}");
    for l in said.lines().filter(|l| l.starts_with("child ")) {
        assert!(l.contains(" closeall intact 8 closed 0 moved 0 forkclosed 0 "), "{l}");
        assert!(l.contains(" detached 1 "), "{l}");
        let busy: u64 = l
            .split("busy_ms ")
            .nth(1)
            .and_then(|w| w.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("{l}"));
        assert!(busy < 100, "the control thread spun: {l}");
    }
}

/// A program whose threads all end with a bare `exit` system call ends,
/// with the last one's code, as it would without weft-probe: the library's
/// own threads (the process's, and a fork child's) do not keep it alive.
/// Before, both hung for good.
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn weft_probe_threads_do_not_keep_a_program_alive() {
    require_root();
    let dir = tmp();
    let exe = build_c(dir.path(), "lastexit");
    let mut own = Command::new(&exe)
        .arg("self")
        .env("WEFT_RUNTIME_DIR", dir.path().join("rt"))
        .spawn()
        .unwrap();
    let st = wait_for(&mut own, Duration::from_secs(20), "a program whose only thread ended");
    assert_eq!(st.code(), Some(7));
    let out = run(Command::new(&exe)
        .arg("child")
        .env("WEFT_RUNTIME_DIR", dir.path().join("rt")));
    assert_eq!(text(&out.stdout).trim(), "child code 7");
    // Recorded: the child was attached when its thread ended.
    let (trace, out) = record_program(dir.path(), "le.weft", &["-q"], &exe, &["child"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "child code 7");
    // The record of a process in its last moments (the SIGCHLD its last
    // thread sends) names a real thread, not the kernel's -1.
    let lines = parse(&dump(&trace, &[]));
    let nameless: Vec<&L> = lines.iter().filter(|l| l.tid == u32::MAX).collect();
    assert!(nameless.is_empty(), "{nameless:#?}");
    assert!(
        lines.iter().any(|l| l.text.starts_with("SIGCHLD")),
        "no SIGCHLD recorded"
    );
}

/// Children the memory cap leaves without buffers are told so (`Later`,
/// docs/probe-buffers.md §9.4) and do not wait in `fork` for an attach
/// that is not coming (before: 3 s in every fork, 30 s for 10 forks); each
/// is listed as not recorded, with the reason.
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn children_the_memory_cap_leaves_out_do_not_wait_in_fork() {
    require_root();
    let dir = tmp();
    let exe = build_c(dir.path(), "forkwait");
    // Room for the parent's buffers only.
    let (trace, out) = record_program(dir.path(), "w.weft", &["--probe-memory", "130M"], &exe, &["5"]);
    let (said, err) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{err}");
    let ms: u64 = said
        .trim()
        .strip_prefix("longest fork ")
        .and_then(|r| r.strip_suffix(" ms"))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{said}"));
    // The failure this guards against is a 3000 ms wait per fork.
    assert!(
        ms < 1500,
        "a child waited {ms} ms in fork for an attach that was not coming\n{err}"
    );
    assert!(err.contains("5 instrumented processes were not recorded"), "{err}");
    let info = text(&run(weft().arg("info").arg(&trace)).stdout);
    assert!(info.contains("memory cap"), "{info}");
}

/// Many instrumented programs start at once, more than are attached at a
/// time, with default (slow to attach) buffers and a busy program beside
/// them: each one is either recorded or listed as not recorded, none is
/// dropped without a word (before, those still waiting for their turn when
/// 5 s had passed were forgotten silently).
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn a_flood_of_instrumented_programs_is_each_recorded_or_listed() {
    require_root();
    let dir = tmp();
    let n = 100;
    let script = dir.path().join("flood.sh");
    std::fs::write(
        &script,
        format!(
            "{busy} 300000 &\nfor i in $(seq 1 {n}); do sh -c 'echo $$ > {d}/pid.'$i'; exec {demo} late 100 </dev/null >/dev/null' & done\nwait\n",
            busy = program("busy").display(),
            d = dir.path().display(),
            demo = demo_path().display(),
        ),
    )
    .expect("script");
    let trace = dir.path().join("flood.weft");
    // 512 KiB rings (32 MiB a process): 100 processes with the default
    // 128 MiB each make the machine zero 12 GiB of buffer memory, which
    // starves the tests running beside this one.
    let out = run(weft()
        .args(["record", "-q", "--probe-buffer", "512K", "-o"])
        .arg(&trace)
        .arg("--")
        .arg("bash")
        .arg(&script));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let info = text(&run(weft().arg("info").arg(&trace)).stdout);
    let pids: Vec<String> = (1..=n)
        .map(|i| {
            let p = std::fs::read_to_string(dir.path().join(format!("pid.{i}"))).expect("pid");
            p.trim().to_owned()
        })
        .collect();
    let strangers: Vec<&str> = info
        .lines()
        .filter_map(|l| l.strip_prefix("weft-probe: PID ")?.split(':').next())
        .filter(|p| !pids.iter().any(|q| q == p))
        .collect();
    assert!(strangers.is_empty(), "not among the programs: {strangers:?}\n{info}");
    let mut recorded = 0;
    for pid in &pids {
        let attached = info.contains(&format!("weft-probe: PID {pid}: 100 events attempted, 100 recorded"));
        let listed = info.contains(&format!("weft-probe: PID {pid}: not recorded: "));
        assert!(
            attached != listed,
            "program {pid} is neither recorded nor listed as not recorded (or both):\n{info}"
        );
        recorded += u32::from(attached);
    }
    assert!(recorded > 0, "{info}");
}

/// Guard mode (buffers read-only outside writes) with a handler on an
/// alternate stack above its thread's stack: the handler's write is not
/// taken for the outermost one, so it does not make the buffers read-only
/// under the write it interrupted (which then faulted: the program died
/// of SIGSEGV in every run before).
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn guard_mode_survives_handlers_on_an_alternate_stack_above_the_thread() {
    require_root();
    let dir = tmp();
    let trace = dir.path().join("g.weft");
    let out = run(weft()
        .env("WEFT_PROBE_GUARD", "1")
        .args(["record", "-q", "-o"])
        .arg(&trace)
        .arg("--")
        .arg(demo_path())
        .args(["torture", "altstack-above", "40000"]));
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    assert!(said.contains("torture altstack-above attempts "), "{said}");
    let lines = parse(&dump(&trace, &[]));
    assert!(!lines.iter().any(|l| l.text.contains("DAMAGED")), "damage reported");
    assert_accounting(&lines);
}

/// clone(CLONE_VM) children without CLONE_VFORK run on their creator
/// thread's storage while that thread writes too (tests/capi/clonevm.c): one
/// beside a thread that wrote before, one that writes first, on a stack
/// inside its creator's frame. Every writer's markers are all there, each
/// under the process and thread that wrote it, none damaged, and each
/// child's totals are its own (docs/probe-buffers.md §9.7, formerly D13).
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn clone_vm_children_writing_beside_their_parent_keep_their_own_events() {
    require_root();
    let dir = tmp();
    let exe = build_c(dir.path(), "clonevm");
    let (trace, out) = record_program(dir.path(), "c.weft", &[], &exe, &[]);
    let (said, err) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("damaged"), "{err}");
    let num = |key: &str| number(&said, key);
    let (main, a, t, b, n) = (num("main="), num("A="), num("T="), num("B="), num("count="));
    let lines = parse(&dump(&trace, &["--event", "weft:marker,weft:probe*"]));
    for (who, pid, tid) in [("main", main, main), ("A", a, a), ("T", main, t), ("B", b, b)] {
        let mine: Vec<&L> = lines
            .iter()
            .filter(|l| l.text.starts_with(&format!("marker \"{who}\" = ")))
            .collect();
        let values: std::collections::BTreeSet<u64> = mine
            .iter()
            .filter_map(|l| l.text.rsplit(' ').next()?.parse().ok())
            .collect();
        assert_eq!((mine.len(), values.len()), (n as usize, n as usize), "{who}: {err}");
        let elsewhere: Vec<_> = mine.iter().filter(|l| (l.pid, l.tid) != (pid, tid)).take(3).collect();
        assert!(
            elsewhere.is_empty(),
            "{who}'s markers belong to {pid}/{tid}: {elsewhere:#?}"
        );
    }
    let totals = totals(&lines);
    for tid in [a, b] {
        let v = totals
            .get(&tid)
            .unwrap_or_else(|| panic!("no totals of {tid}: {totals:?}"));
        assert_eq!(
            (v[0], v[1]),
            (u64::from(n), u64::from(n)),
            "child {tid} attempted, received: {v:?}"
        );
    }
    let of = |pid: u32, tid: u32| {
        lines
            .iter()
            .filter(|l| l.text.starts_with("weft-probe thread totals:") && (l.pid, l.tid) == (pid, tid))
            .count()
    };
    assert_eq!((of(a, a), of(b, b)), (1, 1), "each child's totals under its own pid");
}

/// A vfork child, a clone(CLONE_VM|CLONE_VFORK) child and a clone3 one
/// write markers on their parent thread's storage, so the records land in the parent
/// thread's ring; the trace attributes each to the process that wrote it
/// (the vfork window, `kernel:vfork`), in `weft dump` (read in place) and
/// in the Chrome export (owned records).
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn vfork_childrens_events_are_attributed_to_the_children() {
    require_root();
    let dir = tmp();
    let exe = build_c(dir.path(), "vfork");
    let (trace, out) = record_program(dir.path(), "v.weft", &["-q"], &exe, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    let pid = |key: &str| number(&said, key);
    let (parent, vforked, cloned, cloned3) = (pid("parent="), pid("vfork="), pid("clone="), pid("clone3="));
    let mut want = vec![
        ("parent before", 1, parent),
        ("in the vfork child", 2, vforked),
        ("in the clone child", 3, cloned),
        ("parent after", 4, parent),
    ];
    // clone3, told apart by its captured clone_args (x86_64 only here).
    assert_eq!(cloned3 != 0, cfg!(target_arch = "x86_64"), "{said}");
    if cloned3 != 0 {
        want.push(("in the clone3 child", 5, cloned3));
    }
    let lines = parse(&dump(&trace, &["--event", "weft:marker"]));
    for &(what, value, who) in &want {
        let l = lines
            .iter()
            .find(|l| l.text == format!("marker \"{what}\" = {value}"))
            .unwrap_or_else(|| panic!("no marker {what}: {lines:#?}"));
        assert_eq!((l.pid, l.tid), (who, who), "{what}: {lines:#?}");
    }
    // The window itself, on the parent's thread, in words.
    let windows = parse(&dump(&trace, &["--event", "kernel:vfork"]));
    for child in [vforked, cloned, cloned3].into_iter().filter(|&c| c != 0) {
        assert!(
            windows.iter().any(|l| l.tid == parent
                && l.text
                    .starts_with(&format!("vfork child {child} runs in this thread's memory"))),
            "{windows:#?}"
        );
    }
    let (j, _) = chrome_export(&trace, &dir.path().join("v.json"));
    let events = j["traceEvents"].as_array().expect("traceEvents");
    for &(what, _, who) in &want {
        let e = events
            .iter()
            .find(|e| e.to_string().contains(what))
            .unwrap_or_else(|| panic!("no {what} in the Chrome export"));
        assert_eq!(
            (e["pid"].as_u64(), e["tid"].as_u64()),
            (Some(u64::from(who)), Some(u64::from(who))),
            "{e}"
        );
    }
}
