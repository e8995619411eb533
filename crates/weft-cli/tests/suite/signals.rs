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
    let segv = pos(&|l| l.text == "SIGSEGV code=SEGV_MAPERR handler=SIG_DFL");
    let exit = pos(&|l| l.text == "+++ killed by SIGSEGV +++");
    assert!(
        gen < del && del < ret && ret < segv_gen && segv_gen < segv && segv < exit,
        "{lines:#?}"
    );
    let info = text(&run(weft().arg("info").arg(&trace)).stdout);
    assert!(info.contains("killed by SIGSEGV"), "{info}");
}
