//! What a hostile run found, each as a test that failed before the fix: the
//! recorder runs as root, so files and signals a traced program controls
//! must not steer it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::common::*;

/// Every byte string a trace holds, decoded (the file itself is compressed).
fn all_bytes(trace: &Path) -> Vec<u8> {
    let t = weft_format::Trace::open(trace).expect("open trace");
    let mut out = Vec::new();
    for r in t.records().flatten() {
        for v in &r.fields {
            match v {
                weft_format::Value::Bytes(b) => out.extend_from_slice(b),
                weft_format::Value::Str(s) => out.extend_from_slice(s.as_bytes()),
                _ => {}
            }
        }
    }
    out
}

fn setpriv_nobody() -> Vec<&'static str> {
    vec!["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn a_jit_map_linked_to_a_root_file_or_a_fifo_is_not_read() {
    require_root();
    let dir = tmp();
    let secret = dir.path().join("secret");
    let marker = format!("ROOT-ONLY-{}", std::process::id());
    std::fs::write(&secret, &marker).unwrap();
    // The program, as nobody, links its JIT map to a file only root can read.
    let trace = dir.path().join("link.weft");
    let script = format!("ln -s {} /tmp/perf-$$.map", secret.display());
    let mut child = weft()
        .args(["record", "-o"])
        .arg(&trace)
        .arg("--")
        .args(setpriv_nobody())
        .args(["sh", "-c", &script])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let st = wait_for(&mut child, Duration::from_secs(30), "weft record");
    let stderr = text(&child.wait_with_output().unwrap().stderr);
    assert!(st.success(), "{stderr}");
    let _ = cleanup_maps();
    assert!(
        !all_bytes(&trace).windows(marker.len()).any(|w| w == marker.as_bytes()),
        "the root-only file was copied into the trace"
    );
    assert!(stderr.contains(".map not read"), "{stderr}");

    // A FIFO there would block an open or a read for good.
    let trace = dir.path().join("fifo.weft");
    let mut child = weft()
        .args(["record", "-q", "-o"])
        .arg(&trace)
        .arg("--")
        .args(setpriv_nobody())
        .args(["sh", "-c", "mkfifo /tmp/perf-$$.map"])
        .spawn()
        .unwrap();
    let st = wait_for(
        &mut child,
        Duration::from_secs(30),
        "weft record with a FIFO as JIT map",
    );
    let _ = cleanup_maps();
    assert!(st.success());
}

/// Removes the /tmp/perf-PID.map entries the test programs left (links and FIFOs).
fn cleanup_maps() -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    for e in std::fs::read_dir("/tmp")?.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with("perf-") && n.ends_with(".map") && e.metadata().is_ok_and(|m| m.uid() == 65534) {
            std::fs::remove_file(e.path())?;
        }
    }
    Ok(())
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn the_output_path_is_never_followed_and_a_previous_trace_is_kept() {
    require_root();
    let dir = tmp();
    let precious = dir.path().join("precious");
    std::fs::write(&precious, b"keep me").unwrap();
    let link = dir.path().join("t.weft");
    std::os::unix::fs::symlink(&precious, &link).unwrap();
    let out = run(weft().args(["record", "-q", "-o"]).arg(&link).args(["--", "true"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("symbolic link"), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(&precious).unwrap(), b"keep me");

    let t = dir.path().join("u.weft");
    for _ in 0..2 {
        let out = run(weft().args(["record", "-o"]).arg(&t).args(["--", "true"]));
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let old = dir.path().join("u.weft.old");
    assert!(old.exists(), "the first trace was not kept as u.weft.old");
    let out = run(weft().args(["record", "-o"]).arg(&t).args(["--", "true"]));
    assert!(text(&out.stderr).contains("kept the previous"), "{}", text(&out.stderr));
    let out = run(weft().args(["record", "--force", "-o"]).arg(&t).args(["--", "true"]));
    assert!(out.status.success());
    assert!(!text(&out.stderr).contains("kept the previous"));
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn a_command_that_cannot_start_leaves_no_trace_file() {
    require_root();
    let dir = tmp();
    let t = dir.path().join("none.weft");
    for cmd in ["/nonexistent/program", "no-such-command-anywhere"] {
        let out = run(weft().args(["record", "-o"]).arg(&t).args(["--", cmd]));
        assert_eq!(out.status.code(), Some(127));
        assert!(text(&out.stderr).contains("cannot start"), "{}", text(&out.stderr));
        assert!(!text(&out.stderr).contains("recorded"), "{}", text(&out.stderr));
        assert!(!t.exists(), "a trace file was left for `{cmd}`, which never ran");
    }
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn an_interrupted_recorder_takes_its_command_down_and_exits_with_its_status() {
    require_root();
    let dir = tmp();
    let t = dir.path().join("int.weft");
    let mut child = weft()
        .args(["record", "-q", "-o"])
        .arg(&t)
        .args(["--", "sleep", "60"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let sleeper = loop {
        if let Some(&p) = children(child.id()).first() {
            if std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "sleep") {
                break p;
            }
        }
        assert!(Instant::now() < deadline, "the command never started");
        std::thread::sleep(Duration::from_millis(20));
    };
    // SAFETY: signalling the weft process this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let st = wait_for(&mut child, Duration::from_secs(10), "weft record after SIGINT");
    assert_eq!(
        st.code(),
        Some(128 + libc::SIGINT),
        "weft must exit with the command's status"
    );
    assert!(
        !Path::new(&format!("/proc/{sleeper}")).exists(),
        "the command kept running after weft was interrupted"
    );
    let info = text(&run(weft().arg("info").arg(&t)).stdout);
    assert!(info.contains("killed by SIGINT"), "{info}");
}

fn state(pid: u32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s[s.rfind(')')? + 2..].chars().next()
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn kernel_losses_still_pending_when_recording_ends_are_counted() {
    require_root();
    let n: u64 = 200_000;
    let dir = tmp();
    let t = dir.path().join("burst.weft");
    let mut child = weft()
        .args(["record", "-q", "--buffer-size", "64K", "--syscalls", "getppid", "-o"])
        .arg(&t)
        .arg("--")
        .arg(program("burst"))
        .arg(n.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let pid: u32 = line
        .trim()
        .strip_prefix("ready ")
        .and_then(|p| p.parse().ok())
        .expect("ready PID");
    // The recorder sleeps through the whole burst: the ring fills, and
    // nothing is written to it after the program exits.
    let weft_pid = child.id() as i32;
    // SAFETY: signalling the weft process this test started.
    unsafe { libc::kill(weft_pid, libc::SIGSTOP) };
    let deadline = Instant::now() + Duration::from_secs(30);
    while state(pid) != Some('Z') {
        if Instant::now() > deadline {
            // SAFETY: as above.
            unsafe { libc::kill(weft_pid, libc::SIGCONT) };
            panic!("the burst did not end");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: as above.
    unsafe { libc::kill(weft_pid, libc::SIGCONT) };
    let st = wait_for(&mut child, Duration::from_secs(30), "weft record");
    assert!(st.success());

    let info = text(&run(weft().arg("info").arg(&t)).stdout);
    let lost: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("lost:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("a lost: line");
    let seen = dump(&t, &["--event", "getppid"]).len() as u64;
    assert!(
        seen < n,
        "the ring held the whole burst ({seen} of {n}): no loss to test"
    );
    assert!(lost > 0, "{seen} of {n} getppid calls recorded, yet `lost: 0`:\n{info}");
    // Each call is an entry and an exit record; a lost one may be either.
    assert!(seen + lost >= n, "{seen} recorded + {lost} lost < {n} made:\n{info}");
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn a_peer_that_trickles_its_answer_does_not_stop_the_recording() {
    require_root();
    let n: u64 = 50_000;
    let dir = tmp();
    let t = dir.path().join("slow.weft");
    let started = Instant::now();
    let mut child = weft()
        .args(["record", "--buffer-size", "2M", "--syscalls", "getppid", "-o"])
        .arg(&t)
        .arg("--")
        .arg(program("slowpeer"))
        .arg(n.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let st = wait_for(&mut child, Duration::from_secs(60), "weft record of a slow peer");
    let out = child.wait_with_output().unwrap();
    assert!(st.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), format!("done {n}"));
    // The attach gives up after a second; the program ran about one.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the recorder waited on the peer for {:?}",
        started.elapsed()
    );
    let info = text(&run(weft().arg("info").arg(&t)).stdout);
    assert!(
        info.contains("lost:       0"),
        "events were lost while attaching:\n{info}"
    );
    let seen = dump(&t, &["--event", "getppid"]).len() as u64;
    assert_eq!(seen, n, "{seen} of {n} getppid calls recorded:\n{info}");
}

/// After --duration the command runs on untraced and weft waits for it, but
/// a signal still reaches the command and weft exits with its status.
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn a_signal_after_the_duration_still_reaches_the_command() {
    require_root();
    let dir = tmp();
    let t = dir.path().join("d.weft");
    let mut child = weft()
        .args(["record", "-q", "--duration", "300ms", "-o"])
        .arg(&t)
        .args(["--", "sleep", "60"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // The recording is over (the file is complete); weft waits for sleep.
    let info = text(&run(weft().arg("info").arg(&t)).stdout);
    assert!(info.contains("complete (duration reached)"), "{info}");
    // SAFETY: signalling the weft process this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let st = wait_for(&mut child, Duration::from_secs(10), "weft after SIGTERM");
    assert_eq!(st.code(), Some(128 + libc::SIGTERM));
}

/// Gets pid `want` for a new `sleep` (as root, through ns_last_pid), so
/// that a pid whose process has exited is reused. Other tests fork too, so
/// it tries again until it lands.
fn reuse_pid(want: u32) -> Child {
    for _ in 0..200 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (want - 1).to_string()).expect("ns_last_pid");
        let mut c = std::process::Command::new("sleep").arg("60").spawn().expect("sleep");
        if c.id() == want {
            return c;
        }
        let _ = c.kill();
        let _ = c.wait();
    }
    panic!("could not get pid {want} reused");
}

/// A process listens on a control socket, hands it to a child and exits;
/// its pid is reused by an uninstrumented process, and the child renames
/// the socket to the name the new process would use. SO_PEERCRED still
/// names the exited listener's pid, which is now the new process's: only
/// the pidfd the kernel gives for the listener (SO_PEERPIDFD) tells that
/// it is gone. The recorder sends nothing and says why.
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn a_control_socket_left_behind_by_an_exited_process_whose_pid_was_reused_gets_nothing() {
    require_root();
    let dir = tmp();
    let rt = dir.path().join("rt");
    std::fs::create_dir(&rt).expect("mkdir");
    std::fs::set_permissions(&rt, std::os::unix::fs::PermissionsExt::from_mode(0o700)).expect("chmod");
    let got = dir.path().join("got");
    let helper = dir.path().join("holder.py");
    std::fs::write(
        &helper,
        r#"
import os, socket, sys
rt, got = sys.argv[1], sys.argv[2]
r, w = os.pipe()
a = os.fork()
if a == 0:
    s = socket.socket(socket.AF_UNIX)
    s.bind(os.path.join(rt, "tmp.sock"))
    s.listen(8)
    if os.fork() == 0:
        os.close(w)
        name = os.read(r, 256).decode()
        os.rename(os.path.join(rt, "tmp.sock"), os.path.join(rt, name))
        open(got + ".ready", "w").close()
        s.settimeout(15)
        n = 0
        try:
            c, _ = s.accept()
            c.settimeout(3)
            while True:
                b = c.recv(65536)
                if not b:
                    break
                n += len(b)
        except OSError:
            pass
        open(got, "w").write(str(n))
        os._exit(0)
    os._exit(0)
os.waitpid(a, 0)
print(a, flush=True)
os.write(w, sys.stdin.readline().strip().encode())
"#,
    )
    .expect("helper");
    let mut py = std::process::Command::new("python3")
        .arg(&helper)
        .arg(&rt)
        .arg(&got)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(py.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("pid");
    let old: u32 = line.trim().parse().expect("listener pid");
    let mut new = reuse_pid(old);
    let start = weft_probe_abi::process_start_time(old).expect("start time");
    std::io::Write::write_all(
        &mut py.stdin.take().expect("stdin"),
        format!("{}\n", weft_probe_abi::socket_name(old, start)).as_bytes(),
    )
    .expect("name");
    assert!(py.wait().expect("wait").success());
    let ready = got.with_extension("ready");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready.exists() {
        assert!(Instant::now() < deadline, "the holder never renamed the socket");
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = run(weft()
        .env("WEFT_RUNTIME_DIR", &rt)
        .args(["record", "-q", "--duration", "300ms", "-o"])
        .arg(dir.path().join("r.weft"))
        .args(["-p", &old.to_string()]));
    let _ = new.kill();
    let _ = new.wait();
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("opened by an earlier process {old} that has exited")),
        "{err}"
    );
    // The holder gives up accepting after 15 s; the recorder connected and
    // closed at once, so it reports by then.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !got.exists() {
        assert!(Instant::now() < deadline, "the holder never reported");
        std::thread::sleep(Duration::from_millis(20));
    }
    let n = std::fs::read_to_string(&got).expect("got");
    assert_eq!(n.trim(), "0", "bytes sent to the socket's holder");
}

/// A program that maps /dev/zero executable and replaces its own binary by
/// a FIFO: attaching to it with `-p` finishes on time. The recorder reads
/// build IDs and keeps replaced binaries (`/proc/PID/map_files`) only from
/// regular files, without blocking; before, it read /dev/zero without end
/// and would block opening the FIFO.
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn a_program_mapping_a_device_or_swapping_its_binary_for_a_fifo_cannot_hang_an_attach() {
    require_root();
    let dir = tmp();
    let exe = dir.path().join("hostile_maps");
    std::fs::copy(program("hostile_maps"), &exe).expect("copy");
    let mut prog = std::process::Command::new(&exe)
        .arg(&exe)
        .stdout(Stdio::piped())
        .spawn()
        .expect("hostile_maps");
    let mut line = String::new();
    BufReader::new(prog.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("ready");
    assert_eq!(line.trim(), "ready");
    let meta = std::fs::symlink_metadata(&exe).expect("fifo");
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&meta.file_type()));
    let trace = dir.path().join("h.weft");
    let mut rec = weft()
        .args(["record", "--sample", "--duration", "1s", "-o"])
        .arg(&trace)
        .args(["-p", &prog.id().to_string()])
        .stderr(Stdio::piped())
        .spawn()
        .expect("weft record");
    let st = wait_for(&mut rec, Duration::from_secs(30), "weft record -p of hostile_maps");
    let _ = prog.kill();
    let _ = prog.wait();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut rec.stderr.take().expect("stderr"), &mut err).expect("stderr");
    assert!(st.success(), "{err}");
    // The binary, no longer at its path (a FIFO is there), was kept.
    assert!(
        err.contains("kept 1 mapped binaries that were deleted, replaced or in a container"),
        "{err}"
    );
}
