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
    for args in [
        &["record", "-o", "/nonexistent-dir/x.weft", "--", "true"][..],
        &["record", "--sample", "10000000", "-o"][..],
    ] {
        let mut cmd = weft();
        cmd.args(args);
        if args.last() == Some(&"-o") {
            cmd.arg(&t).args(["--", "true"]);
        }
        let err = text(&run(&mut cmd).stderr);
        assert_eq!(err.matches("(os error").count(), 1, "{err}");
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
