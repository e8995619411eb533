//! Signals on the timeline: a handled SIGUSR1, then a fatal SIGSEGV.

use super::common::*;

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn handled_signal_then_crash() {
    require_root();
    let dir = tmp();
    let trace = dir.path().join("s.weft");
    let out = run(weft()
        .args(["record", "-q", "-o"])
        .arg(&trace)
        .arg("--")
        .arg(program("signals")));
    assert_eq!(text(&out.stdout), "handled 10\n");
    assert_eq!(out.status.code(), Some(128 + 11), "weft exits 128+SIGSEGV like a shell");
    let lines = parse(&dump(&trace, &["--event", "signal_*,exit,rt_sigreturn,tgkill"]));
    let pos = |pred: &dyn Fn(&L) -> bool| lines.iter().position(pred).unwrap_or_else(|| panic!("{lines:#?}"));
    let gen = pos(&|l| l.text.starts_with("SIGUSR1 code=SI_TKILL to ") && l.text.ends_with("delivered"));
    let del = pos(&|l| l.text.starts_with("SIGUSR1 code=SI_TKILL handler=0x"));
    let ret = pos(&|l| l.text.starts_with("rt_sigreturn() = 0 <"));
    let segv_gen = pos(&|l| l.text.starts_with("SIGSEGV code=SEGV_MAPERR to "));
    // With the fault address (si_addr), which the tracepoint lacks, from
    // the capture program's raw tracepoint: the program reads address 16.
    let segv = pos(&|l| l.text == "SIGSEGV code=SEGV_MAPERR addr=0x10 handler=SIG_DFL");
    let exit = pos(&|l| l.text == "+++ killed by SIGSEGV +++");
    assert!(
        gen < del && del < ret && ret < segv_gen && segv_gen < segv && segv < exit,
        "{lines:#?}"
    );
    let info = text(&run(weft().arg("info").arg(&trace)).stdout);
    assert!(info.contains("killed by SIGSEGV"), "{info}");
}

/// The fault address comes from a record of its own (a raw tracepoint
/// beside the signal_deliver tracepoint's record), written before or after
/// that record in the order the two were attached. A first recorder's
/// perf probe is attached before a second recorder's program, so the
/// second sees the opposite order from the first: both join each record
/// to its own delivery, over several faults of one thread, with signals
/// that carry no address (sent with raise; SI_KERNEL) in between.
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn fault_address_joins_in_either_order() {
    use std::io::BufRead;
    require_root();
    let dir = tmp();
    // faults.c's signals in order, each as `dump` and as `crash` say it
    // (the SI_KERNEL one is x86_64's only).
    let expected = [
        ("SIGSEGV code=SEGV_MAPERR addr=0x1000", "0x1000"),
        (
            "SIGSEGV code=SI_TKILL",
            "none (the signal was sent, SI_TKILL, not raised by a fault)",
        ),
        ("SIGSEGV code=SEGV_MAPERR addr=0x2000", "0x2000"),
        (
            "SIGSEGV code=SI_KERNEL",
            "none (SI_KERNEL: the kernel gives none, as for a general protection fault)",
        ),
        ("SIGSEGV code=SEGV_MAPERR addr=0x3000", "0x3000"),
    ];
    let expected: Vec<_> = expected
        .into_iter()
        .filter(|(d, _)| cfg!(target_arch = "x86_64") || !d.contains("SI_KERNEL"))
        .collect();
    let check = |trace: &std::path::Path| {
        let lines = dump(trace, &["--event", "signal_deliver"]);
        let segv: Vec<String> = lines
            .iter()
            .filter_map(|l| l.split("SIGSEGV ").nth(1).map(|t| format!("SIGSEGV {t}")))
            .map(|t| t.split(" handler=").next().unwrap_or("").to_owned())
            .collect();
        let want: Vec<&str> = expected.iter().map(|(d, _)| *d).collect();
        assert_eq!(segv, want, "{lines:#?}");
    };
    let faults = program("faults");
    let n = expected.len();
    let alone = dir.path().join("alone.weft");
    let out = run(weft().args(["record", "-q", "-o"]).arg(&alone).arg("--").arg(&faults));
    assert_eq!(text(&out.stdout), format!("faults={n}\n"), "{}", text(&out.stderr));
    check(&alone);
    let crash = text(&run(weft().arg("crash").arg(&alone)).stdout);
    let said: Vec<&str> = crash
        .lines()
        .filter_map(|l| l.strip_prefix("  fault address: "))
        .collect();
    let want: Vec<&str> = expected.iter().map(|(_, c)| *c).collect();
    assert_eq!(said, want, "{crash}");

    let mut first = weft()
        .args(["record", "-q", "-o"])
        .arg(dir.path().join("first.weft"))
        .args(["--", "sh", "-c", "echo ready; exec sleep 30"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("weft");
    // The command runs once its recorder's events are all open.
    let mut ready = String::new();
    std::io::BufReader::new(first.stdout.take().expect("stdout"))
        .read_line(&mut ready)
        .expect("read");
    assert_eq!(ready, "ready\n");
    let second = dir.path().join("second.weft");
    let out = run(weft().args(["record", "-q", "-o"]).arg(&second).arg("--").arg(&faults));
    // SAFETY: kill has no memory preconditions.
    unsafe { libc::kill(first.id() as i32, libc::SIGINT) };
    let _ = first.wait();
    assert_eq!(text(&out.stdout), format!("faults={n}\n"), "{}", text(&out.stderr));
    check(&second);
}

/// A fatal signal with the default action kills a process through a
/// SIGKILL the kernel sends each of its threads: the timeline and `weft
/// info` name the signal that was sent (as strace's "killed by" does), and
/// a real `kill -9` stays SIGKILL.
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn killed_by_names_the_signal_sent_not_the_kernels_sigkill() {
    require_root();
    let dir = tmp();
    for (sig, name, number) in [
        ("TERM", "SIGTERM", libc::SIGTERM),
        ("KILL", "SIGKILL", libc::SIGKILL),
        ("USR1", "SIGUSR1", libc::SIGUSR1),
    ] {
        let trace = dir.path().join(format!("{sig}.weft"));
        let script = format!("sleep 5 & sleep 0.2; kill -{sig} $!; wait $!; echo st=$?");
        let out = run(weft()
            .args(["record", "-q", "-o"])
            .arg(&trace)
            .args(["--", "sh", "-c", &script]));
        let code = 128 + number;
        assert_eq!(text(&out.stdout), format!("st={code}\n"), "{}", text(&out.stderr));
        let lines = parse(&dump(&trace, &["--event", "exit"]));
        let sleep: Vec<&L> = lines
            .iter()
            .filter(|l| l.comm == "sleep" && l.text.starts_with("+++"))
            .collect();
        assert!(
            sleep.iter().any(|l| l.text == format!("+++ killed by {name} +++")),
            "{sig}: {lines:#?}"
        );
        let info = text(&run(weft().arg("info").arg(&trace)).stdout);
        assert!(info.contains(&format!("killed by {name}")), "{sig}: {info}");
    }
}
