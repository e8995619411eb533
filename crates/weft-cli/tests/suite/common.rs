//! Shared helpers: building the C test programs, running weft, and the
//! privilege check that fails loudly in CI.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub fn weft() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weft"))
}

/// `weft-demo`, the instrumented test program (an example of this crate,
/// which `cargo test` builds next to the test binaries' directory).
pub fn demo_path() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/integration-HASH -> target/<profile>/examples/weft-demo
    let p = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory")
        .join("examples/weft-demo");
    assert!(
        p.exists(),
        "{} is missing: `cargo test` builds it (cargo build --example weft-demo)",
        p.display()
    );
    p
}

/// Compiles tests/programs/NAME.c once per test run and returns its path.
pub fn program(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("weft-test-programs");
        std::fs::create_dir_all(&dir).expect("create program dir");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs");
        for entry in std::fs::read_dir(&src).expect("read tests/programs") {
            let path = entry.expect("dir entry").path();
            if path.extension().is_some_and(|e| e == "c") {
                let out = dir.join(path.file_stem().expect("stem"));
                let st = Command::new("cc")
                    .args(["-O1", "-g", "-pthread", "-o"])
                    .arg(&out)
                    .arg(&path)
                    .status()
                    .expect("run cc (install gcc)");
                assert!(st.success(), "compiling {} failed", path.display());
            }
        }
        dir
    });
    dir.join(name)
}

/// Tracing tests are `#[ignore]`d, so that a run without root reports them
/// as ignored, not passed; run as root with `-- --include-ignored` (CI
/// does). Run without root, they fail here, saying why.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!("this test needs root (perf_event_open on tracepoints, tracefs); run `sudo -E cargo test --workspace -- --include-ignored`");
    }
}

/// The pids of `pid`'s children (every thread's), from /proc.
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// SIGKILLs a process this test started (or a child of one), by pid.
pub fn kill_pid(pid: u32) {
    // SAFETY: kill has no memory preconditions.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
}

pub fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run command")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `weft dump FILE ARGS...` as lines; fails the test if dump fails.
pub fn dump(file: &Path, args: &[&str]) -> Vec<String> {
    let out = run(weft().arg("dump").arg(file).args(args));
    assert!(out.status.success(), "weft dump failed: {}", text(&out.stderr));
    text(&out.stdout).lines().map(str::to_owned).collect()
}

/// A parsed dump line: time, pid, tid, comm, text.
#[derive(Debug, Clone)]
pub struct L {
    pub t: f64,
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    pub text: String,
}

pub fn parse(lines: &[String]) -> Vec<L> {
    lines
        .iter()
        .map(|l| {
            // time, pid/tid and comm are single words (true of the test programs);
            // the text is the rest of the line.
            let mut rest = l.as_str();
            let mut word = || {
                rest = rest.trim_start();
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                let (w, r) = rest.split_at(end);
                rest = r;
                w.to_owned()
            };
            let t: f64 = word().parse().expect("time");
            let pt = word();
            let comm = word();
            let (pid, tid) = pt.split_once('/').expect("pid/tid");
            L {
                t,
                pid: pid.parse().expect("pid"),
                tid: tid.parse().expect("tid"),
                comm,
                text: rest.trim().to_owned(),
            }
        })
        .collect()
}

/// Hex address printed by a test program after `key=`.
pub fn addr(stdout: &str, key: &str) -> String {
    let line = stdout
        .lines()
        .find(|l| l.contains(key))
        .unwrap_or_else(|| panic!("no `{key}` in output: {stdout}"));
    let v = &line[line.find(key).expect("key") + key.len()..];
    v.split_whitespace().next().expect("addr").to_owned()
}

/// Decimal number printed by a test program after `key=`.
pub fn number(stdout: &str, key: &str) -> u32 {
    addr(stdout, key)
        .parse()
        .unwrap_or_else(|_| panic!("`{key}` is not followed by a number in: {stdout}"))
}

/// Builds tests/capi/NAME.c against libweft_probe.a (see `build_capi`).
pub fn build_c(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    build_c_with(dir, name, &[])
}

/// `build_c` with more arguments for the compiler driver (before the
/// libraries, so that `-Wl,--wrap=` applies to libweft_probe.a).
pub fn build_c_with(dir: &std::path::Path, name: &str, extra: &[&str]) -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = root.join("target/capi");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let st = Command::new(cargo)
        // Release, as programs ship it: a forced unwind through the write
        // path aborted there 13 times in 20, and 3 in 20 in a debug build.
        .args(["build", "-q", "--release", "-p", "weft-probe", "--target-dir"])
        .arg(&target)
        .current_dir(&root)
        .status()
        .expect("cargo");
    assert!(st.success(), "building libweft_probe.a failed");
    let exe = dir.join(name);
    let st = Command::new("cc")
        .arg("-O1")
        .arg("-I")
        .arg(root.join("crates/weft-probe/include"))
        .arg("-o")
        .arg(&exe)
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/capi/{name}.c")))
        .args(extra)
        .arg(target.join("release/libweft_probe.a"))
        .args(["-lpthread", "-ldl", "-lm", "-lrt", "-lgcc_s"])
        .status()
        .expect("cc");
    assert!(st.success(), "linking the C API test program failed");
    exe
}

/// `weft export --format chrome` of `trace` into `out`, which must succeed:
/// the parsed JSON and what weft said on stderr.
pub fn chrome_export(trace: &Path, out: &Path) -> (serde_json::Value, String) {
    let res = run(weft()
        .arg("export")
        .arg(trace)
        .args(["--format", "chrome", "-o"])
        .arg(out));
    let err = text(&res.stderr);
    assert!(res.status.success(), "{err}");
    let json = serde_json::from_slice(&std::fs::read(out).expect("json")).expect("valid JSON");
    (json, err)
}

/// Waits for `child` at most `limit`; kills it and fails the test after.
pub fn wait_for(child: &mut std::process::Child, limit: std::time::Duration, what: &str) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return st;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
