//! Killed recorders, lost events and damaged files: everything intact is
//! still read, and what is missing is said.

use std::time::Duration;

use super::common::*;

/// Records a busy program into `trace` and SIGKILLs the recorder after
/// `after`; the traced program would go on untraced, so it is killed too,
/// by pid.
fn kill_recording_after(trace: &std::path::Path, after: Duration) {
    let mut rec = weft()
        .args(["record", "-q", "-o"])
        .arg(trace)
        .arg("--")
        .arg(program("busy"))
        .arg("100000000")
        .spawn()
        .expect("weft");
    std::thread::sleep(after);
    let program = children(rec.id());
    kill_pid(rec.id());
    rec.wait().expect("wait");
    for pid in program {
        kill_pid(pid);
    }
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn kill_9_of_the_recorder_leaves_a_readable_file() {
    require_root();
    let dir = tmp();
    let trace = dir.path().join("k.weft");
    kill_recording_after(&trace, Duration::from_millis(2500));
    let info = run(weft().arg("info").arg(&trace));
    let info_s = text(&info.stdout);
    assert!(info.status.success(), "{}", text(&info.stderr));
    assert!(
        info_s.contains("TRUNCATED") || info_s.contains("INCOMPLETE"),
        "{info_s}"
    );
    let events: u64 = info_s
        .lines()
        .find_map(|l| l.strip_prefix("events:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("events line");
    assert!(events > 1000, "{info_s}");
    let out = run(weft().arg("dump").arg(&trace));
    assert!(out.status.success());
    assert!(text(&out.stdout).lines().filter(|l| l.contains("munmap(addr=")).count() > 100);
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn ring_overflow_is_counted_and_marked() {
    require_root();
    let dir = tmp();
    let trace = dir.path().join("l.weft");
    // A tiny ring guarantees overflow.
    let out = run(weft()
        .args(["record", "-o"])
        .arg(&trace)
        .args(["--buffer-size", "8K", "--"])
        .arg(program("busy"))
        .arg("300000"));
    assert!(out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("events were lost because a ring buffer was full"), "{err}");
    let info = text(&run(weft().arg("info").arg(&trace)).stdout);
    let lost_line = info.lines().find(|l| l.starts_with("lost:")).expect("lost line");
    assert!(!lost_line.ends_with(" 0"), "{info}");
    let lines = dump(&trace, &["--event", "lost"]);
    assert!(lines.iter().any(|l| l.contains("*** LOST ")), "no LOST markers");
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn damaged_and_foreign_files_give_clear_errors() {
    require_root();
    let dir = tmp();
    let trace = dir.path().join("d.weft");
    let out = run(weft()
        .args(["record", "-q", "-o"])
        .arg(&trace)
        .args(["--compression", "1", "--"])
        .arg(program("busy"))
        .arg("200000"));
    assert!(out.status.success());
    let good = std::fs::read(&trace).unwrap();
    let full = dump(&trace, &[]).len();

    // Flip bytes in the middle: a chunk is lost, the rest is read.
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    for b in &mut bad[mid..mid + 64] {
        *b ^= 0x5a;
    }
    let damaged = dir.path().join("damaged.weft");
    std::fs::write(&damaged, &bad).unwrap();
    let out = run(weft().arg("dump").arg(&damaged));
    assert!(out.status.success());
    let n = text(&out.stdout).lines().count();
    assert!(n > full / 4 && n < full, "{n} of {full} lines");
    assert!(text(&out.stderr).contains("offset"), "{}", text(&out.stderr));
    // Said in the output too, where the reading met it.
    let said: Vec<String> = text(&out.stdout)
        .lines()
        .filter(|l| l.contains("*** DAMAGED: ") && l.contains("offset"))
        .map(str::to_owned)
        .collect();
    assert!(
        !said.is_empty() && said.iter().all(|l| l.contains("missing ***")),
        "{said:?}"
    );
    let info = text(&run(weft().arg("info").arg(&damaged)).stdout);
    assert!(info.contains("DAMAGED") && info.contains("problems:"), "{info}");

    // Not a trace at all.
    let junk = dir.path().join("junk.weft");
    std::fs::write(&junk, b"this is not a weft trace, just some text\n").unwrap();
    let out = run(weft().arg("info").arg(&junk));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("not a weft trace file: bad magic at offset 0"),
        "{}",
        text(&out.stderr)
    );
    let out = run(weft().arg("dump").arg(dir.path().join("missing.weft")));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no such file: "), "{}", text(&out.stderr));
}

/// A recorder SIGKILLed at a random moment, again and again: every file
/// reads back, saying it was cut short, and every dump succeeds.
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn sigkill_of_the_recorder_at_random_moments_always_leaves_a_readable_file() {
    require_root();
    let dir = tmp();
    // A small xorshift: the moments differ between runs of the loop, and the
    // seed is printed so a failure can be replayed.
    let mut x = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.subsec_nanos() as u64 | 1);
    eprintln!("kill moments seeded with {x}");
    for i in 0..20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let trace = dir.path().join(format!("k{i}.weft"));
        kill_recording_after(&trace, Duration::from_millis(20 + x % 600));
        if !trace.exists() {
            continue; // killed before it created the file
        }
        let info = run(weft().arg("info").arg(&trace));
        assert!(info.status.success(), "kill {i}: {}", text(&info.stderr));
        let out = run(weft().arg("dump").arg(&trace));
        assert!(out.status.success(), "kill {i}: {}", text(&out.stderr));
    }
}
