//! Clear messages, not panics or raw errnos.

use super::common::*;

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn wrong_pid_missing_command_and_bad_syscall() {
    require_root();
    let dir = tmp();
    let t = dir.path().join("x.weft");
    let out = run(weft().args(["record", "-o"]).arg(&t).args(["-p", "999999999"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no process with PID 999999999"),
        "{}",
        text(&out.stderr)
    );

    let out = run(weft()
        .args(["record", "-q", "-o"])
        .arg(&t)
        .args(["--", "/nonexistent/program"]));
    assert_eq!(out.status.code(), Some(127));
    assert!(
        text(&out.stderr).contains("cannot start `/nonexistent/program`: No such file or directory"),
        "{}",
        text(&out.stderr)
    );

    // An errno is said once, however many layers carry it.
    let err = text(
        &run(weft()
            .args(["record", "--sample", "10000000", "-o"])
            .arg(&t)
            .args(["--", "true"]))
        .stderr,
    );
    assert_eq!(err.matches("(os error").count(), 1, "{err}");
    // The common mistakes, in what-to-do terms, without an errno.
    let err = text(&run(weft().args(["record", "-o", "/nonexistent-dir/x.weft", "--", "true"])).stderr);
    assert!(
        err.contains("cannot create trace file /nonexistent-dir/x.weft: the directory /nonexistent-dir does not exist")
            && !err.contains("os error"),
        "{err}"
    );
    // A process filter that matches nothing says so.
    let ok = dir.path().join("ok.weft");
    assert!(run(weft().args(["record", "-q", "-o"]).arg(&ok).args(["--", "true"]))
        .status
        .success());
    let err = text(&run(weft().arg("dump").arg(&ok).args(["--pid", "999999999"])).stderr);
    assert!(err.contains("--pid 999999999 matched nothing in this trace"), "{err}");
    let said = text(&run(weft().arg("stats").arg(&ok).args(["--pid", "999999999"])).stdout);
    assert!(said.contains("no syscalls of process 999999999 in "), "{said}");
    let missing = dir.path().join("missing.weft");
    for (file, said) in [
        (missing.as_path(), "no such file: "),
        (dir.path(), " is a directory, not a trace file"),
    ] {
        for cmd in ["dump", "info", "stats", "crash"] {
            let out = run(weft().arg(cmd).arg(file));
            let err = text(&out.stderr);
            assert!(
                !out.status.success() && err.contains(said) && !err.contains("os error"),
                "{cmd}: {err}"
            );
        }
    }

    let out = run(weft()
        .args(["record", "-o"])
        .arg(&t)
        .args(["--syscalls", "mmapp", "--", "true"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("unknown system call or class `mmapp` (did you mean `mmap`?)"),
        "{}",
        text(&out.stderr)
    );

    let out = run(weft().args(["record"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("nothing to record"), "{}", text(&out.stderr));
}

#[test]
fn help_is_there_for_every_command() {
    for sub in ["record", "dump", "info", "stats", "mem", "crash"] {
        let out = run(weft().args([sub, "--help"]));
        assert!(out.status.success());
        assert!(text(&out.stdout).contains("Examples") || sub == "info", "{sub}");
    }
}
