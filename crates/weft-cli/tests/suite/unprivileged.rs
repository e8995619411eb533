//! weft as an ordinary user (uid 65534, through `setpriv`), and with the
//! capabilities README.md names, and the messages that must be true there.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::common::*;

const NOBODY: &str = "65534";

/// `program args...` as uid/gid 65534 with no supplementary groups.
fn as_nobody(program: &Path) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups"])
        .arg(program);
    c
}

/// A temporary directory uid 65534 may write.
fn shared_tmp() -> tempfile::TempDir {
    let d = tmp();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    d
}

fn weft_path() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weft"))
}

/// What an unprivileged user may record: at kernel.perf_event_paranoid 2
/// (the default), its own programs' user space.
fn require_default_paranoia() {
    let p = weft_kernel::perf_event_paranoid().expect("perf events");
    assert!(
        p <= 2,
        "kernel.perf_event_paranoid is {p}: an ordinary user may not use perf events at all (set it to 2)"
    );
}

/// An ordinary user records a weft-probe program and a CPU-bound program:
/// the probe events, the process lifecycle and named user-space functions
/// are there; the summary and `weft info` say that syscalls, signals and
/// kernel stacks were not recorded, and why.
#[test]
#[ignore = "needs root (to run weft as another user): run as root with -- --include-ignored"]
fn an_ordinary_user_records_probe_events_and_user_space_profiles_and_is_told_what_is_missing() {
    require_root();
    require_default_paranoia();
    let dir = shared_tmp();
    let trace = dir.path().join("probe.weft");
    let out = run(as_nobody(&weft_path())
        .args(["record", "-o"])
        .arg(&trace)
        .arg("--")
        .arg(demo_path())
        .arg("span"));
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("weft: not recorded: syscalls: uid 65534 has no CAP_PERFMON and kernel.perf_event_paranoid is"),
        "{err}"
    );
    assert!(err.contains("weft: not recorded: signals: "), "{err}");
    assert_eq!(err.matches("(os error").count(), 0, "{err}");
    let dump = dump(&trace, &[]);
    let has = |s: &str| dump.iter().any(|l| l.contains(s));
    // Its exit code from the status the recorder reaped (no syscalls here).
    assert!(has("exec \"") && has("+++ exited with 0 +++"), "lifecycle: {dump:#?}");
    assert!(
        has("span \"sleepy\" begins") && has("demo:note text=\"done\""),
        "{dump:#?}"
    );
    let info = text(&run(weft().arg("info").arg(&trace)).stdout);
    assert!(
        info.contains("sources:    process lifecycle, memory maps, weft-probe events"),
        "{info}"
    );
    assert!(
        info.contains("not recorded:\n  syscalls (uid 65534 has no CAP_PERFMON"),
        "{info}"
    );

    let hot = dir.path().join("hot");
    let st = Command::new("cc")
        .args(["-O2", "-g", "-o"])
        .arg(&hot)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sampling/hot.c"))
        .status()
        .expect("cc");
    assert!(st.success());
    let trace = dir.path().join("hot.weft");
    let out = run(as_nobody(&weft_path())
        .args(["record", "--sample", "-o"])
        .arg(&trace)
        .arg("--")
        .arg(&hot));
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("weft: not recorded: kernel stacks of CPU samples: kernel profiling needs CAP_PERFMON"),
        "{err}"
    );
    let report = run(as_nobody(&weft_path()).arg("report").arg(&trace).arg("--no-cache"));
    let rep = text(&report.stdout);
    assert!(report.status.success(), "{}", text(&report.stderr));
    for f in ["leaf_work", "middle", "hot_outer", "main"] {
        assert!(rep.contains(f), "{f} not named:\n{rep}");
    }
}

/// Restores tracefs's mode and group when a test that changed them ends.
struct TracefsPerms {
    mode: u32,
    gid: u32,
}

impl TracefsPerms {
    fn remount(mode: u32, gid: u32) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,mode={mode:o},gid={gid}"), "/sys/kernel/tracing"])
            .status()
            .expect("mount");
        assert!(st.success(), "remounting tracefs failed");
    }

    fn save() -> TracefsPerms {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata("/sys/kernel/tracing").expect("tracefs");
        TracefsPerms {
            mode: m.mode() & 0o7777,
            gid: m.gid(),
        }
    }
}

impl Drop for TracefsPerms {
    fn drop(&mut self) {
        TracefsPerms::remount(self.mode, self.gid);
    }
}

/// With the capabilities README.md names on a copy of the binary, uid 65534
/// records syscalls once tracefs is readable by its group, and is told
/// plainly (not "not mounted") while it is not.
#[test]
#[ignore = "needs root (setcap, remounting tracefs): run as root with -- --include-ignored"]
fn with_cap_perfmon_and_a_readable_tracefs_the_full_recording_works_without_root() {
    require_root();
    let dir = shared_tmp();
    let exe = dir.path().join("weft");
    std::fs::copy(weft_path(), &exe).expect("copy weft");
    let st = Command::new("setcap")
        .args(["cap_perfmon,cap_ipc_lock+ep"])
        .arg(&exe)
        .status()
        .expect("setcap (libcap2-bin)");
    assert!(st.success(), "setcap failed");
    let saved = TracefsPerms::save();
    // Not readable by uid 65534: said as such, and what is recorded anyway.
    TracefsPerms::remount(0o700, 0);
    let trace = dir.path().join("no.weft");
    let out = run(as_nobody(&exe)
        .args(["record", "-o"])
        .arg(&trace)
        .args(["--", "/bin/true"]));
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("tracefs mounted at /sys/kernel/tracing, but not readable by uid 65534 (mode 700"),
        "{err}"
    );
    assert!(!err.contains("not mounted"), "{err}");
    // Readable by its group: everything, syscalls included.
    TracefsPerms::remount(0o750, 65534);
    let trace = dir.path().join("full.weft");
    let out = run(as_nobody(&exe)
        .args(["record", "-o"])
        .arg(&trace)
        .args(["--", "/bin/ls", "/"]));
    drop(saved);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("not recorded"), "{err}");
    let lines = dump(&trace, &["--event", "openat,exit*"]);
    assert!(lines.iter().any(|l| l.contains("openat(")), "{lines:#?}");
    assert!(lines.iter().any(|l| l.contains("exited with 0")), "{lines:#?}");
    let info = text(&run(weft().arg("info").arg(&trace)).stdout);
    assert!(
        info.contains("sources:    syscalls, signals, process lifecycle"),
        "{info}"
    );
}

/// Another user's process, as an ordinary user: one sentence that says
/// why, no errno, no advice that cannot help.
#[test]
#[ignore = "needs root (to run weft as another user): run as root with -- --include-ignored"]
fn an_ordinary_user_asking_for_another_users_process_is_told_why() {
    require_root();
    let dir = shared_tmp();
    let out = run(as_nobody(&weft_path())
        .args(["record", "-o"])
        .arg(dir.path().join("p1.weft"))
        .args(["-p", "1"]));
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("PID 1 runs as uid 0, and uid 65534 may trace only its own processes"),
        "{err}"
    );
    assert!(!err.contains("os error") && !err.contains("no tracepoints"), "{err}");
    assert!(!dir.path().join("p1.weft").exists());
}

/// `weft ps` run as root does not tell root to try as root.
#[test]
#[ignore = "needs root: run as root with -- --include-ignored"]
fn weft_ps_as_root_gives_no_advice_to_become_root() {
    require_root();
    let out = run(weft().arg("ps"));
    let said = text(&out.stdout);
    assert!(out.status.success());
    assert!(!said.contains("root"), "{said}");
    let out = run(as_nobody(&weft_path()).arg("ps"));
    assert!(text(&out.stdout).contains("other users' are visible to root"));
}

/// The count of frames shown as module+offset is the same whether the
/// symbols come from the files or from the symbol cache of an earlier
/// report, and a module none of whose frames are shown is not said to have
/// "0 frames shown".
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn the_count_of_unnamed_frames_is_true_from_the_symbol_cache_too() {
    require_root();
    let dir = tmp();
    let hot = dir.path().join("hot");
    let st = Command::new("cc")
        .args(["-O2", "-s", "-o"])
        .arg(&hot)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sampling/hot.c"))
        .status()
        .expect("cc");
    assert!(st.success());
    let trace = dir.path().join("s.weft");
    let out = run(weft()
        .args(["record", "-q", "--sample", "-o"])
        .arg(&trace)
        .arg("--")
        .arg(&hot));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = |err: &str| -> String {
        err.lines()
            .find(|l| l.contains("/hot: "))
            .unwrap_or_else(|| panic!("no note about the stripped program: {err}"))
            .to_owned()
    };
    let first = text(&run(weft().arg("report").arg(&trace)).stderr);
    let cached = text(&run(weft().arg("report").arg(&trace)).stderr);
    assert!(first.contains("frames shown as module+offset"), "{first}");
    assert_eq!(line(&first), line(&cached), "from the symbol cache");
    assert!(
        !first.contains(" 0 frames") && !cached.contains(" 0 frames"),
        "{first}{cached}"
    );
}
