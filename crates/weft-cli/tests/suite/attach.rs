//! Attaching to a running process: all its threads, threads it creates
//! later, nothing from unrelated processes; Ctrl-C and --duration stop cleanly.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::common::*;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_spinner(late_ms: u32) -> Killed {
    let mut child = Command::new(program("spinner"))
        .arg(late_ms.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start spinner");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    assert_eq!(line, "ready\n");
    Killed(child)
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn attach_follows_all_threads_and_new_ones_only_of_the_target() {
    require_root();
    let target = start_spinner(400);
    let bystander = start_spinner(400);
    let pid = target.0.id();
    let dir = tmp();
    let trace = dir.path().join("a.weft");
    let out = run(weft().args(["record", "-q", "-o"]).arg(&trace).args([
        "-p",
        &pid.to_string(),
        "--duration",
        "1500ms",
        "--syscalls",
        "mmap,munmap",
    ]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines = parse(&dump(&trace, &[]));
    assert!(
        lines.iter().all(|l| l.pid == pid),
        "events of other processes: {:?}",
        lines.iter().find(|l| l.pid != pid)
    );
    let by_len = |len: u32| {
        lines
            .iter()
            .filter(|l| l.text.starts_with(&format!("mmap(addr=NULL, len={}", len * 4096)))
            .collect::<Vec<_>>()
    };
    let main = by_len(13);
    let worker = by_len(11);
    let late = by_len(17);
    assert!(
        main.len() > 20 && worker.len() > 20,
        "main {} worker {}",
        main.len(),
        worker.len()
    );
    assert!(!late.is_empty(), "thread created after attach not followed");
    assert!(main.iter().all(|l| l.tid == pid));
    assert!(worker.iter().all(|l| l.tid != pid && l.comm == "spin-worker"));
    assert!(late.iter().all(|l| l.comm == "spin-late"));
    // Names of threads that existed before attaching come from /proc.
    assert!(lines.iter().any(|l| l.text == "thread name \"spin-worker\""));
    let info = text(&run(weft().arg("info").arg(&trace)).stdout);
    assert!(info.contains("complete (duration reached)"), "{info}");
    assert!(info.contains("(running at end)"), "{info}");
    drop(bystander);
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn sigint_leaves_a_complete_file() {
    require_root();
    let target = start_spinner(100_000);
    let dir = tmp();
    let trace = dir.path().join("i.weft");
    let mut rec = weft()
        .args(["record", "-q", "-o"])
        .arg(&trace)
        .args(["-p", &target.0.id().to_string()])
        .spawn()
        .expect("weft");
    std::thread::sleep(Duration::from_millis(700));
    // SAFETY: sending SIGINT to our child process.
    unsafe { libc::kill(rec.id() as i32, libc::SIGINT) };
    let st = rec.wait().expect("wait");
    assert!(st.success(), "{st:?}");
    let info = text(&run(weft().arg("info").arg(&trace)).stdout);
    assert!(info.contains("status:     complete (interrupted)"), "{info}");
    assert!(dump(&trace, &[]).len() > 50);
}
