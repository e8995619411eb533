//! Syscall arguments captured in the kernel, with strace as the oracle:
//! every string strace shows for openat, execve, connect and write must be
//! in `weft dump`, in the same order and escaped the same way.

use std::path::Path;
use std::process::{Command, Stdio};

use super::common::*;

const CALLS: &[&str] = &["openat", "execve", "connect", "write", "sendmsg", "recvmsg"];

/// Every quoted string of a line's arguments (`"..."`, with a `...` after
/// one that was cut), as strace and weft both write them.
fn quoted(args: &str) -> Vec<String> {
    let b = args.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'"' {
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        while i < b.len() && b[i] != b'"' {
            i += if b[i] == b'\\' { 2 } else { 1 };
        }
        i += 1;
        if args[i.min(b.len())..].starts_with("...") {
            i += 3;
        }
        out.push(args[start..i.min(b.len())].to_string());
    }
    out
}

/// (syscall, its quoted strings) for the calls in CALLS, from one line of
/// strace or weft output; the return value is left out.
fn call(line: &str) -> Option<(String, Vec<String>)> {
    let (name, at) = CALLS.iter().find_map(|c| {
        let pat = format!("{c}(");
        let at = line.find(&pat)?;
        // A word of its own (not `pwrite(`, not `<... write resumed>`).
        let before = line[..at].chars().last();
        before.is_none_or(|ch| ch.is_whitespace()).then_some((*c, at))
    })?;
    let args = &line[at..];
    let end = args.rfind(") = ").unwrap_or(args.len());
    Some((name.to_string(), quoted(&args[..end])))
}

/// Where the traced program writes: a file, which the kernel reads what
/// is written for. (Written to /dev/null, a constant on a page the program
/// never touched is never paged in, and a non-faulting eBPF read cannot
/// get it: docs/format.md §12.20.)
fn out_file(dir: &Path) -> std::fs::File {
    std::fs::File::create(dir.join("stdout")).expect("stdout file")
}

fn strace_calls(dir: &Path, argv: &[&str]) -> Vec<(String, Vec<String>)> {
    let log = dir.join("strace.log");
    let st = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-s",
            "256",
            "-e",
            "trace=openat,execve,connect,write,sendmsg,recvmsg",
            "-o",
        ])
        .arg(&log)
        .args(argv)
        .stdout(out_file(dir))
        .status()
        .expect("run strace (apt install strace)");
    assert!(st.success(), "strace {argv:?} failed");
    let text = std::fs::read_to_string(&log).expect("strace log");
    text.lines().filter_map(call).collect()
}

fn weft_calls(dir: &Path, argv: &[&str]) -> Vec<(String, Vec<String>)> {
    let trace = dir.join("a.weft");
    let out = weft()
        .args(["record", "-q", "--force", "--string-limit", "256", "-o"])
        .arg(&trace)
        .arg("--")
        .args(argv)
        .stdout(out_file(dir))
        .output()
        .expect("weft record");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("pointers only"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = weft()
        .args(["dump", "--event", "openat,execve,connect,write,sendmsg,recvmsg"])
        .arg(&trace)
        .output()
        .expect("weft dump");
    assert!(d.status.success());
    String::from_utf8_lossy(&d.stdout).lines().filter_map(call).collect()
}

fn assert_same(what: &str, strace: &[(String, Vec<String>)], weft: &[(String, Vec<String>)]) {
    for (i, (s, w)) in strace.iter().zip(weft).enumerate() {
        assert_eq!(s, w, "{what}: call {i} differs (strace left, weft right)");
    }
    assert_eq!(
        strace.len(),
        weft.len(),
        "{what}: strace saw {} calls, weft {}",
        strace.len(),
        weft.len()
    );
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs, eBPF): run as root with -- --include-ignored"]
fn paths_data_sockets_and_argv_are_shown_as_strace_shows_them() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let prog = program("args");
    let work = dir.path().join("files");
    std::fs::create_dir(&work).unwrap();
    let argv = [prog.to_str().unwrap(), work.to_str().unwrap()];
    let s = strace_calls(dir.path(), &argv);
    let w = weft_calls(dir.path(), &argv);
    assert_same("args", &s, &w);
    // The cases the program is about are there (not just the loader's).
    let all: Vec<&String> = w.iter().flat_map(|(_, q)| q).collect();
    for needle in [
        "with space\"",
        "caf\\303\\251-\\342\\234\\223\"",
        "new\\nline\"",
        "q\\\"uote\\\\back\\tslash\\1\\1777\"",
        "no-such.sock\"",
        "\"arg with space\"",
        "\"after exec\\n\"",
        "\"msg \\\"data\\\"\\n\"",
    ] {
        assert!(all.iter().any(|q| q.ends_with(needle)), "no {needle} in {all:?}");
    }
    // Data longer than the limit is cut and marked.
    assert!(w
        .iter()
        .any(|(c, q)| c == "write" && q.iter().any(|x| x.ends_with("\"..."))));
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs, eBPF): run as root with -- --include-ignored"]
fn ls_and_python_show_what_strace_shows() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let ls = ["ls", "-l", "/usr"];
    assert_same("ls", &strace_calls(dir.path(), &ls), &weft_calls(dir.path(), &ls));
    let py = ["python3", "-c", "import json"];
    // Once first, so that both runs find the same compiled modules.
    Command::new(py[0]).args(&py[1..]).status().expect("python3");
    let s = strace_calls(dir.path(), &py);
    assert!(s.len() > 20, "python3 opened few files: {s:?}");
    assert_same("python3", &s, &weft_calls(dir.path(), &py));
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs, eBPF): run as root with -- --include-ignored"]
fn without_ebpf_the_recording_goes_on_with_pointers_and_says_why() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("n.weft");
    // Root without CAP_BPF and CAP_SYS_ADMIN may open perf events
    // (CAP_PERFMON) but not load eBPF.
    let out = Command::new("setpriv")
        .args(["--bounding-set=-bpf,-sys_admin", "--inh-caps=-bpf,-sys_admin"])
        .arg(env!("CARGO_BIN_EXE_weft"))
        .args(["record", "-o"])
        .arg(&trace)
        .args(["--", "cat", "/etc/hostname"])
        .stdout(Stdio::null())
        .output()
        .expect("setpriv (util-linux)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(err.matches("pointers only").count(), 1, "said once: {err}");
    assert!(err.contains("CAP_BPF"), "{err}");
    let d = weft().arg("dump").arg(&trace).output().unwrap();
    let text = String::from_utf8_lossy(&d.stdout);
    let open = text
        .lines()
        .find(|l| l.contains("openat(") && !l.contains("ld.so"))
        .unwrap_or_else(|| panic!("no openat in {text}"));
    assert!(open.contains("filename=0x"), "{open}");
    // And with --no-args, nothing is tried and nothing said.
    let out = weft()
        .args(["record", "--no-args", "--force", "-o"])
        .arg(&trace)
        .args(["--", "cat", "/etc/hostname"])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("pointers only"));
}

#[test]
fn quoted_strings_are_found_with_their_escapes() {
    assert_eq!(
        quoted(r#"openat(AT_FDCWD, "a\"b", O_RDONLY"#),
        vec![r#""a\"b""#.to_string()]
    );
    assert_eq!(quoted(r#"write(1, "x\\"..., 300"#), vec![r#""x\\"..."#.to_string()]);
    assert_eq!(
        call(r#"123 execve("/bin/ls", ["ls", "-l"], 0x7ffe /* 3 vars */) = 0"#),
        Some((
            "execve".into(),
            vec!["\"/bin/ls\"".into(), "\"ls\"".into(), "\"-l\"".into()]
        ))
    );
    assert_eq!(call("1 <... write resumed>) = 3"), None);
}

fn dump_text(trace: &Path, extra: &[&str]) -> (String, String) {
    let d = weft().arg("dump").args(extra).arg(trace).output().expect("weft dump");
    assert!(d.status.success(), "{}", String::from_utf8_lossy(&d.stderr));
    (
        String::from_utf8_lossy(&d.stdout).into_owned(),
        String::from_utf8_lossy(&d.stderr).into_owned(),
    )
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs, eBPF): run as root with -- --include-ignored"]
fn what_strace_users_type_works() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("e.weft");
    // strace's -e trace=, classes with %.
    let out = weft()
        .args(["record", "-q", "-e", "trace=%file,close,read", "-o"])
        .arg(&trace)
        .args(["--", "cat", "/etc/hostname"])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (text, _) = dump_text(&trace, &["-y"]);
    assert!(text.contains("openat("), "{text}");
    assert!(!text.contains("mmap("), "trace=%file,close,read recorded mmap: {text}");
    // -y: the descriptor's path, on its uses and on the call that returned it.
    let read = text
        .lines()
        .find(|l| l.contains("read(fd=3</etc/hostname>"))
        .unwrap_or_else(|| panic!("no read of fd 3 named /etc/hostname: {text}"));
    assert!(read.contains("buf=\""), "{read}");
    assert!(
        text.contains("\"/etc/hostname\"") && text.contains("= 3</etc/hostname>"),
        "{text}"
    );
    // Absolute and delta times.
    let (abs, _) = dump_text(&trace, &["--time", "absolute"]);
    let first = abs.split_whitespace().next().unwrap();
    assert!(
        first.len() == 15 && first.as_bytes()[2] == b':' && first.as_bytes()[8] == b'.',
        "{first}"
    );
    let (delta, _) = dump_text(&trace, &["--time", "delta"]);
    assert!(delta.starts_with("     0.000000000"), "{delta}");
    // An event pattern that matches nothing is said.
    let (none, err) = dump_text(&trace, &["--event", "opnat"]);
    assert!(none.is_empty());
    assert!(err.contains("`opnat` matched nothing"), "{err}");
    // strace's trace=all is everything.
    let out = weft()
        .args(["record", "-q", "-e", "trace=all", "--force", "-o"])
        .arg(&trace)
        .args(["--", "cat", "/etc/hostname"])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dump_text(&trace, &[]).0.contains("mmap("));
    // A syscall name given as a probe pattern is an error that says what to type.
    let out = weft()
        .args(["record", "-e", "openat", "-o"])
        .arg(dir.path().join("x.weft"))
        .args(["--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--syscalls openat") && err.contains("-e trace=openat"),
        "{err}"
    );
    assert!(!dir.path().join("x.weft").exists());
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs, eBPF): run as root with -- --include-ignored"]
fn a_process_attached_while_blocked_shows_the_call_in_progress() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("p.weft");
    let mut sleeper = Command::new("sleep").arg("1.5").spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = weft()
        .args(["record", "-q", "-p", &sleeper.id().to_string(), "-o"])
        .arg(&trace)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    sleeper.wait().unwrap();
    let (text, _) = dump_text(&trace, &["--event", "clock_nanosleep"]);
    let line = text
        .lines()
        .next()
        .unwrap_or_else(|| panic!("no clock_nanosleep: {text}"));
    // In progress from the start (time 0), returned most of a second later.
    assert!(line.trim_start().starts_with("0.000000000"), "{line}");
    assert!(
        line.contains("which_clock=CLOCK_REALTIME") && line.contains(" = 0 <"),
        "{line}"
    );
    let took: f64 = line.rsplit('<').next().unwrap().trim_end_matches('>').parse().unwrap();
    assert!(took > 0.5, "{line}");
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs, eBPF): run as root with -- --include-ignored"]
fn the_live_view_prints_lines_while_the_program_runs() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("l.weft");
    let live = dir.path().join("live.txt");
    let mut rec = weft()
        .args(["record", "-q", "--live", "--live-output"])
        .arg(&live)
        .arg("-o")
        .arg(&trace)
        .args(["--", "sh", "-c", "cat /etc/hostname; sleep 3"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // The open of /etc/hostname is printed while the program still sleeps.
    let t0 = std::time::Instant::now();
    let mut seen = String::new();
    while t0.elapsed() < std::time::Duration::from_millis(2500) {
        seen = std::fs::read_to_string(&live).unwrap_or_default();
        if seen.contains("\"/etc/hostname\"") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        seen.contains("\"/etc/hostname\""),
        "not printed within 2.5 s of a 3 s program: {seen}"
    );
    assert!(rec.try_wait().unwrap().is_none(), "the recording had already ended");
    assert!(rec.wait().unwrap().success());
    // Every line of the file's timeline was printed live too, in the same form.
    let after = std::fs::read_to_string(&live).unwrap();
    let (dumped, _) = dump_text(&trace, &[]);
    let strip = |l: &str| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" ");
    for l in dumped
        .lines()
        .filter(|l| l.contains("openat(") || l.contains("execve("))
    {
        let want = strip(l);
        let want = want.split(" = ").next().unwrap();
        assert!(
            after.lines().any(|a| strip(a).starts_with(want)),
            "not in the live output: {l}\n{after}"
        );
    }
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs, eBPF): run as root with -- --include-ignored"]
fn descriptors_opened_before_the_attach_are_named() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("y.weft");
    let mut sh = Command::new("sh")
        .args(["-c", "exec 7</etc/hostname; sleep 1; read l <&7"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = weft()
        .args(["record", "-q", "-p", &sh.id().to_string(), "-o"])
        .arg(&trace)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    sh.wait().unwrap();
    let (text, _) = dump_text(&trace, &["-y", "--event", "read,dup2,fcntl"]);
    assert!(
        text.lines().any(|l| l.contains("read(fd=0</etc/hostname>")),
        "fd 7, open before the attach, not followed to the read: {text}"
    );
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs, eBPF): run as root with -- --include-ignored"]
fn a_slow_live_output_drops_lines_never_events() {
    use std::io::Read;
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("s.weft");
    // 200 000 syscalls in about a second, printed to a pipe read slowly.
    // The kernel rings hold them all: with the suite's other tests on both
    // CPUs, 8 MiB rings overflowed (a loss the test is not about).
    let mut rec = weft()
        .args(["record", "-q", "--live", "--buffer-size", "64M", "-o"])
        .arg(&trace)
        .arg("--")
        .arg(program("busy"))
        .arg("100000")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = rec.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut all, mut buf) = (Vec::new(), [0u8; 4096]);
        while let Ok(n) = err.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        String::from_utf8_lossy(&all).into_owned()
    });
    assert!(rec.wait().unwrap().success());
    let said = reader.join().unwrap();
    assert!(
        said.contains("lines dropped here") || said.contains("did not take the last lines"),
        "a slow output dropped nothing? {} bytes",
        said.len()
    );
    // The trace has every call, and the kernel lost none.
    let info = weft().arg("info").arg(&trace).output().unwrap();
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(info.contains("lost:       0") || !info.contains("lost:"), "{info}");
    let (munmaps, _) = dump_text(&trace, &["--event", "munmap"]);
    assert!(
        munmaps.lines().count() >= 100_000,
        "{} munmaps",
        munmaps.lines().count()
    );
}
