//! Recording a command: exact syscalls with arguments and results, across a
//! thread and a forked child, in order; exit statuses; the file's summary.

use super::common::*;

fn find(lines: &[L], from: usize, pred: impl Fn(&L) -> bool) -> usize {
    lines[from..]
        .iter()
        .position(pred)
        .map(|i| i + from)
        .unwrap_or_else(|| panic!("not found after line {from}:\n{lines:#?}"))
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn memops_sequence_across_thread_and_fork() {
    require_root();
    let dir = tmp();
    let trace = dir.path().join("memops.weft");
    let out = run(weft()
        .args(["record", "-q", "-o"])
        .arg(&trace)
        .args(["--syscalls", "mmap,munmap,mprotect,prctl", "--"])
        .arg(program("memops")));
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "weft must exit with the command's status; stderr: {}",
        text(&out.stderr)
    );
    let p = addr(&stdout, "main p=");
    let q = addr(&stdout, "thread q=");
    let r = addr(&stdout, "child r=");
    let p_num = u64::from_str_radix(p.trim_start_matches("0x"), 16).unwrap();
    let p1 = format!("{:#x}", p_num + 4096);

    let lines = parse(&dump(&trace, &[]));
    // Timestamps never go backwards.
    assert!(lines.windows(2).all(|w| w[0].t <= w[1].t), "dump is not in time order");
    let main_pid = lines
        .iter()
        .find(|l| l.text.starts_with("mmap(addr=NULL, len=12288"))
        .expect("main mmap")
        .pid;

    let a = find(&lines, 0, |l| {
        l.pid == main_pid
            && l.text.starts_with(
                "mmap(addr=NULL, len=12288, prot=PROT_READ|PROT_WRITE, flags=MAP_PRIVATE|MAP_ANONYMOUS, fd=-1, off=0)",
            )
            && l.text.contains(&format!("= {p} <"))
    });
    let b = find(&lines, a, |l| {
        l.pid == main_pid && l.text.starts_with(&format!("munmap(addr={p}, len=4096) = 0 <"))
    });
    let c = find(&lines, b, |l| {
        l.pid == main_pid
            && l.text
                .starts_with(&format!("mprotect(start={p1}, len=4096, prot=PROT_READ) = 0 <"))
    });
    let d = find(&lines, c, |l| {
        l.pid == main_pid && l.text.starts_with("prctl(option=PR_SET_NAME,") && l.text.contains(") = 0 <")
    });
    // The name change is on the timeline and names later lines.
    let e = find(&lines, d, |l| l.text == "thread name \"memops-main\"");
    // The thread: same pid, its own tid and name.
    let t0 = find(&lines, e, |l| l.text.starts_with("new thread (created by"));
    let tid = lines[t0].tid;
    assert_eq!(lines[t0].pid, main_pid);
    assert_ne!(tid, main_pid);
    let t1 = find(&lines, t0, |l| {
        l.tid == tid
            && l.comm == "memops-thr"
            && l.text
                .starts_with("mmap(addr=NULL, len=20480, prot=PROT_READ, flags=MAP_PRIVATE|MAP_ANONYMOUS")
            && l.text.contains(&format!("= {q} <"))
    });
    find(&lines, t1, |l| {
        l.tid == tid && l.text.starts_with(&format!("munmap(addr={q}, len=20480) = 0"))
    });
    let t2 = find(&lines, t1, |l| l.tid == tid && l.text == "+++ thread exited +++");
    // The forked child: a new pid that inherited tracing.
    let f = find(&lines, t2, |l| {
        l.text
            .starts_with(&format!("new process (forked by {main_pid}/{main_pid})"))
    });
    let child = lines[f].pid;
    assert_ne!(child, main_pid);
    let c1 = find(&lines, f, |l| {
        l.pid == child && l.text.starts_with("prctl(option=PR_SET_NAME,")
    });
    let c2 = find(&lines, c1, |l| {
        l.pid == child
            && l.comm == "memops-child"
            && l.text
                .starts_with("mmap(addr=NULL, len=28672, prot=PROT_READ|PROT_WRITE")
            && l.text.contains(&format!("= {r} <"))
    });
    let c3 = find(&lines, c2, |l| {
        l.pid == child && l.text.starts_with(&format!("munmap(addr={r}, len=28672) = 0"))
    });
    let c4 = find(&lines, c3, |l| l.pid == child && l.text == "+++ exited with 7 +++");
    // Back in the parent after waitpid, then its own exit.
    let m = find(&lines, c4, |l| {
        l.pid == main_pid && l.text.starts_with(&format!("munmap(addr={p1}, len=8192) = 0"))
    });
    find(&lines, m, |l| l.pid == main_pid && l.text == "+++ exited with 3 +++");
    // Only the selected syscalls (plus exit bookkeeping) were recorded.
    assert!(
        lines
            .iter()
            .all(|l| !l.text.starts_with("brk(") && !l.text.starts_with("openat(")),
        "unselected syscalls recorded"
    );

    // Filters: by pid and event.
    let only = parse(&dump(&trace, &["--pid", &child.to_string(), "--event", "munmap"]));
    assert_eq!(only.len(), 1, "{only:#?}");
    assert!(only[0].text.starts_with(&format!("munmap(addr={r}, len=28672)")));

    // weft info: processes, exit statuses, counts, no losses.
    let info = run(weft().arg("info").arg(&trace));
    let info = text(&info.stdout);
    assert!(info.contains("status:     complete (command exited)"), "{info}");
    assert!(info.contains("exit:       exited with 3"), "{info}");
    assert!(info.contains("lost:       0"), "{info}");
    assert!(
        info.lines()
            .any(|l| l.contains(&child.to_string()) && l.contains("exited with 7")),
        "{info}"
    );
    assert!(
        info.lines().any(|l| l.trim_start().starts_with(&main_pid.to_string())
            && l.contains("2 ")
            && l.contains("exited with 3")),
        "{info}"
    );
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn all_syscalls_by_default_and_classes() {
    require_root();
    let dir = tmp();
    let all = dir.path().join("all.weft");
    let out = run(weft()
        .args(["record", "-q", "-o"])
        .arg(&all)
        .arg("--")
        .arg(program("memops")));
    assert_eq!(out.status.code(), Some(3));
    let lines = dump(&all, &[]);
    // Everything libc does at start-up is there, as strace shows it.
    for call in [
        "brk(",
        "openat(dfd=AT_FDCWD",
        "mmap(",
        "mprotect(",
        "clone",
        "wait4(",
        "exit_group(error_code=3) = ?",
    ] {
        assert!(lines.iter().any(|l| l.contains(call)), "no {call} in full trace");
    }
    assert!(lines.iter().any(|l| l.contains("exec \"")), "exec event missing");

    let mem = dir.path().join("mem.weft");
    let out = run(weft()
        .args(["record", "-q", "-o"])
        .arg(&mem)
        .args(["--syscalls", "memory", "--"])
        .arg(program("memops")));
    assert_eq!(out.status.code(), Some(3));
    let lines = parse(&dump(&mem, &[]));
    let names: std::collections::BTreeSet<String> = lines
        .iter()
        .filter_map(|l| {
            l.text
                .split_once('(')
                .map(|(n, _)| n.trim_start_matches("<... ").to_owned())
        })
        .filter(|n| !n.contains(' '))
        .collect();
    for n in &names {
        assert!(
            ["mmap", "munmap", "mprotect", "brk", "madvise", "exit_group", "exit"].contains(&n.as_str()),
            "unexpected {n} in memory class: {names:?}"
        );
    }
    assert!(names.contains("munmap") && names.contains("brk"), "{names:?}");
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn ptrace_using_program_behaves_as_untraced() {
    require_root();
    let prog = program("ptrace_parent");
    let plain = run(&mut std::process::Command::new(&prog));
    assert_eq!(plain.status.code(), Some(11), "untraced run: {}", text(&plain.stdout));
    let dir = tmp();
    let trace = dir.path().join("p.weft");
    let traced = run(weft().args(["record", "-q", "-o"]).arg(&trace).arg("--").arg(&prog));
    assert_eq!(text(&traced.stdout), text(&plain.stdout), "output differs under weft");
    assert_eq!(
        traced.status.code(),
        plain.status.code(),
        "exit status differs under weft"
    );
    let lines = dump(&trace, &["--event", "ptrace"]);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("ptrace(request=16902") && l.contains("= 0")),
        "PTRACE_SEIZE not recorded: {lines:#?}"
    );
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn comm_filter_keeps_only_matching_processes() {
    require_root();
    let dir = tmp();
    let trace = dir.path().join("c.weft");
    let script = format!("{} >/dev/null; echo done", program("memops").display());
    let out = run(weft()
        .args(["record", "-q", "-o"])
        .arg(&trace)
        .args(["--comm", "memops*", "--", "sh", "-c", &script]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines = parse(&dump(&trace, &[]));
    assert!(
        lines
            .iter()
            .any(|l| l.comm.starts_with("memops") && l.text.starts_with("mmap(")),
        "no memops events"
    );
    assert!(
        lines
            .iter()
            .all(|l| l.comm.starts_with("memops") || l.text.starts_with("exec")),
        "other processes leaked: {:#?}",
        lines
            .iter()
            .filter(|l| !l.comm.starts_with("memops"))
            .collect::<Vec<_>>()
    );
}

/// The command runs in a private cgroup by default (forks are then free to
/// trace) and with inherited per-task events under `--no-cgroup`. Both follow
/// every child, leave out a busy unrelated process, and leave no cgroup behind,
/// even when the command leaves a process running.
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn process_tree_followed_with_and_without_cgroup() {
    require_root();
    let dir = tmp();
    // Killed on drop, so a failing assertion does not leave it running.
    struct Outsider(std::process::Child);
    impl Drop for Outsider {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let outsider = Outsider(
        std::process::Command::new(program("busy"))
            .arg("1000000000")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start an unrelated busy process"),
    );
    for (mode, extra) in [("cgroup", None), ("inherit", Some("--no-cgroup"))] {
        let trace = dir.path().join(format!("{mode}.weft"));
        let script = "cat /proc/self/cgroup; (cat /proc/self/stat >/dev/null); sleep 1.5 & echo left=$!";
        let out = run(weft()
            .args(["record", "-q", "-o"])
            .arg(&trace)
            .args(extra)
            .args(["--", "sh", "-c", script]));
        assert_eq!(out.status.code(), Some(0), "{mode}: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        let in_cgroup = stdout.contains("weft-rec-");
        assert_eq!(in_cgroup, mode == "cgroup", "{mode}: /proc/self/cgroup said:\n{stdout}");
        let left: u32 = stdout
            .lines()
            .find_map(|l| l.strip_prefix("left="))
            .and_then(|p| p.trim().parse().ok())
            .expect("pid of the process left running");
        let cg = std::fs::read_to_string(format!("/proc/{left}/cgroup")).unwrap_or_default();
        assert!(
            !cg.contains("weft-rec-"),
            "{mode}: leftover process still in weft's cgroup:\n{cg}"
        );
        let lines = parse(&dump(&trace, &[]));
        // Nothing of weft's launcher (its wait on the start pipe, its PATH
        // search) before the command's exec: only the new image's maps and
        // the command's own execve, with its argv.
        let exec_at = lines
            .iter()
            .position(|l| l.text.starts_with("exec "))
            .expect("the command's exec");
        let root = lines[exec_at].pid;
        let execve: Vec<&L> = lines[..exec_at]
            .iter()
            .filter(|l| l.pid == root && l.text.starts_with("execve("))
            .collect();
        // Per-task events start at the exec itself (enable_on_exec).
        let want = usize::from(mode == "cgroup");
        assert!(
            execve.len() == want && execve.iter().all(|l| l.text.contains("argv=[\"sh\", \"-c\", ")),
            "{mode}: {execve:#?}"
        );
        assert!(
            lines[..exec_at]
                .iter()
                .filter(|l| l.pid == root)
                .all(|l| l.text.starts_with("map ")
                    || l.text.starts_with("thread name")
                    || l.text.starts_with("execve(")),
            "{mode}: the launcher's own events leaked in: {:#?}",
            &lines[..exec_at]
        );
        let pids: std::collections::BTreeSet<u32> = lines.iter().map(|l| l.pid).collect();
        assert!(pids.len() >= 4, "{mode}: expected sh, two children and sleep: {pids:?}");
        assert!(
            lines.iter().any(|l| l.comm == "cat" && l.text.starts_with("openat(")),
            "{mode}: the forked cat's syscalls are missing"
        );
        assert!(
            !pids.contains(&outsider.0.id()),
            "{mode}: unrelated process {} traced",
            outsider.0.id()
        );
    }
    drop(outsider);
    let leaked: Vec<_> = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup", "/sys/fs/cgroup/perf_event"]
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("weft-rec-"))
                .and_then(|p| p.parse::<u32>().ok())
                .is_some_and(|p| !std::path::Path::new(&format!("/proc/{p}")).exists())
        })
        .map(|e| e.path())
        .collect();
    assert!(leaked.is_empty(), "cgroups left behind: {leaked:?}");
}

/// The recorder raises its own priority (so a program that keeps every CPU
/// busy cannot starve it); the command keeps the caller's.
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn recorder_priority_raised_command_unchanged() {
    require_root();
    let dir = tmp();
    let nice_of = |stat: &str| -> i64 {
        let rest = &stat[stat.rfind(')').expect("stat") + 1..];
        rest.split_whitespace()
            .nth(16)
            .and_then(|n| n.parse().ok())
            .expect("nice field")
    };
    // SAFETY: getpriority has no memory preconditions.
    let ours = i64::from(unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) });
    for (args, want) in [(vec![], -10), (vec!["--nice", "0"], ours)] {
        let out = run(weft()
            .args(["record", "-q", "--syscalls", "exit_group", "-o"])
            .arg(dir.path().join("n.weft"))
            .args(&args)
            .args(["--", "sh", "-c", "cat /proc/$PPID/stat; echo; cat /proc/$$/stat"]));
        assert!(out.status.success(), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        let lines: Vec<&str> = stdout.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 2, "{stdout}");
        assert_eq!(nice_of(lines[0]), want, "recorder's niceness with {args:?}");
        assert_eq!(nice_of(lines[1]), ours, "the command's niceness with {args:?}");
    }
}

/// Rings too small for the program: the losses are counted and the summary
/// suggests a ring size that would have kept them (kernel rings), and the
/// probe summary one for weft-probe buffers.
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn losses_come_with_a_ring_size_that_would_have_kept_them() {
    require_root();
    let dir = tmp();
    let out = run(weft()
        .args(["record", "--buffer-size", "16K", "-o"])
        .arg(dir.path().join("l.weft"))
        .arg("--")
        .arg(program("busy"))
        .arg("200000"));
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    let line = err
        .lines()
        .find(|l| l.contains("lost because a ring buffer was full"))
        .unwrap_or_else(|| panic!("no losses with 16K rings? {err}"));
    let size = line.rsplit("--buffer-size ").next().unwrap_or("").trim();
    let kib: u64 = match size.strip_suffix('K') {
        Some(k) => k.parse().expect("KiB"),
        None => size.trim_end_matches('M').parse::<u64>().expect("MiB") << 10,
    };
    assert!(kib >= 32 && kib.is_power_of_two(), "{line}");
    let out = run(weft()
        .args(["record", "--probe-buffer", "64K", "-o"])
        .arg(dir.path().join("p.weft"))
        .arg("--")
        .arg(demo_path())
        .args(["bench", "1000000"]));
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("--probe-buffer ") && err.contains("would keep"), "{err}");
    // Many threads losing: three lines of their own, the rest summed in one,
    // and the first summary line counts the probe events and losses too.
    let out = run(weft()
        .args(["record", "--probe-buffer", "32K", "-o"])
        .arg(dir.path().join("t.weft"))
        .arg("--")
        .arg(demo_path())
        .args(["threads", "8", "100000"]));
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    let each = err.lines().filter(|l| l.contains(" probe events attempted, ")).count();
    let rest = err.lines().filter(|l| l.contains(" more threads lost ")).count();
    assert!(each <= 3 && rest <= 1 && each + rest > 0, "{err}");
    let first = err
        .lines()
        .find(|l| l.starts_with("weft: recorded "))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        first.contains(" from weft-probe) ") && !first.contains(", 0 lost,"),
        "{first}"
    );
}
