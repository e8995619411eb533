//! Analyses of recorded traces, checked against what the traced program did.

use super::common::*;

/// The row of `syscall` in a `weft stats` table: its columns.
fn row<'a>(out: &'a str, syscall: &str) -> Vec<&'a str> {
    let line = out
        .lines()
        .find(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            // %TIME, TOTAL (two words), CALLS, ERRORS, then four durations
            // of two words each, the syscall, its errnos.
            w.len() > 13 && w[13] == syscall
        })
        .unwrap_or_else(|| panic!("no {syscall} row in:\n{out}"));
    line.split_whitespace().collect()
}

fn ns(value: &str, unit: &str) -> f64 {
    let v: f64 = value.parse().expect("number");
    v * match unit {
        "s" => 1e9,
        "ms" => 1e6,
        "µs" => 1e3,
        _ => 1.0,
    }
}

/// `weft stats` counts what the program did: 300 failed opens (ENOENT) and
/// 5000 getppid calls, the same counts `weft info` gives, with ordered
/// percentiles; per process and per thread too.
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn stats_count_calls_errors_and_latencies_as_the_program_made_them() {
    require_root();
    let dir = tmp();
    let trace = dir.path().join("errs.weft");
    let out = run(weft()
        .args(["record", "-q", "-o"])
        .arg(&trace)
        .arg("--")
        .arg(program("errs"))
        .args(["300", "5000"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let st = run(weft().arg("stats").arg(&trace).args(["-n", "100"]));
    assert!(st.status.success(), "{}", text(&st.stderr));
    let said = text(&st.stdout);
    let g = row(&said, "getppid");
    assert_eq!((g[3], g[4]), ("5000", "0"), "{said}");
    let (p50, p99, max) = (ns(g[7], g[8]), ns(g[9], g[10]), ns(g[11], g[12]));
    assert!(p50 > 0.0 && p50 <= p99 && p99 <= max, "{g:?}");
    let o = row(&said, "openat");
    let errors: u64 = o[4].parse().expect("errors");
    // The program's 300, and the dynamic loader's search (LD_LIBRARY_PATH).
    let failed = dump(&trace, &["--event", "openat"])
        .iter()
        .filter(|l| l.contains(" = -1 ENOENT"))
        .count() as u64;
    assert!(errors >= 300 && errors == failed, "{o:?}: {failed} in the dump");
    assert_eq!(o[14..].join(" "), format!("ENOENT {errors}"), "{o:?}");
    assert!(said.contains("lost: 0 kernel events"), "{said}");
    // The same calls as weft info counts.
    let info = text(&run(weft().arg("info").arg(&trace)).stdout);
    let count = |name: &str| -> String {
        info.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("{name} in:\n{info}"))
            .to_owned()
    };
    assert_eq!(count("getppid"), g[3]);
    assert_eq!(count("openat"), o[3]);
    // Per process: the program's own table, and only the top row with -n 1.
    let st = text(&run(weft().arg("stats").arg(&trace).args(["--by", "process", "-n", "1"])).stdout);
    assert!(st.contains("syscalls of process ") && st.contains("(errs)"), "{st}");
    let st = text(&run(weft().arg("stats").arg(&trace).args(["--by", "thread"])).stdout);
    assert!(st.contains("syscalls of thread "), "{st}");
}
