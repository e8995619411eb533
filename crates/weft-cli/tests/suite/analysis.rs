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
    // It says how fast it read and how much memory it took, with the
    // file's event count (the same as `weft info`'s).
    let err = text(&st.stderr);
    let events = text(&run(weft().arg("info").arg(&trace)).stdout)
        .lines()
        .find_map(|l| l.strip_prefix("events:"))
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .expect("info's event count");
    assert!(
        err.contains(&format!("weft: stats read {events} events in ")) && err.contains("M events/s), peak memory "),
        "{err}"
    );
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

/// `weft export --format perfetto`, read back with Perfetto's own protobuf
/// module: a track per process and thread, a slice per syscall with its
/// arguments and result, probe markers, events and spans, and the CPU
/// samples, matching what `weft stats` and `weft info` count; and the same
/// timeline as Chrome JSON.
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn the_perfetto_export_reads_back_with_perfettos_own_protos() {
    require_root();
    let check = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/perfetto_check.py");
    let has_module = std::process::Command::new("python3")
        .args(["-c", "import perfetto.protos.perfetto.trace.perfetto_trace_pb2"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_module {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must install the perfetto PyPI package (pip install perfetto), see .ci/run"
        );
        eprintln!("SKIPPED: python3 cannot import perfetto's protos (pip install perfetto)");
        return;
    }
    let dir = tmp();
    let trace = dir.path().join("p.weft");
    let script = format!(
        "{} 50 2000 && {} span",
        program("errs").display(),
        demo_path().display()
    );
    let out = run(weft()
        .args(["record", "-q", "--sample", "-o"])
        .arg(&trace)
        .args(["--", "sh", "-c", &script]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pf = dir.path().join("p.pftrace");
    let out = run(weft()
        .arg("export")
        .arg(&trace)
        .args(["--format", "perfetto", "-o"])
        .arg(&pf));
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("open it at https://ui.perfetto.dev"), "{err}");
    // Exported again, the same bytes: nothing may follow a hash order.
    let again = dir.path().join("again.pftrace");
    let out = run(weft()
        .arg("export")
        .arg(&trace)
        .args(["--format", "perfetto", "-o"])
        .arg(&again));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        std::fs::read(&pf).expect("export") == std::fs::read(&again).expect("export"),
        "two Perfetto exports of one trace differ"
    );
    let read = run(std::process::Command::new("python3").arg(&check).arg(&pf));
    assert!(read.status.success(), "{}", text(&read.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&read.stdout).expect("json");
    // Tracks: every process and thread weft info lists.
    let info = text(&run(weft().arg("info").arg(&trace)).stdout);
    let in_info = |pid: &str| info.lines().any(|l| l.split_whitespace().next() == Some(pid));
    let procs = doc["processes"].as_object().expect("processes");
    assert!(procs.len() >= 3, "sh, errs, weft-demo: {procs:?}");
    for pid in procs.keys() {
        assert!(in_info(pid), "process {pid} is not in weft info:\n{info}");
    }
    assert!(procs.values().any(|n| n == "errs"), "{procs:?}");
    // Slices: one per syscall that returned, as weft stats counts them.
    let stats = text(&run(weft().arg("stats").arg(&trace).args(["-n", "1000"])).stdout);
    let calls = |name: &str| -> u64 {
        stats
            .lines()
            .find(|l| l.split_whitespace().nth(13) == Some(name))
            .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
            .unwrap_or_else(|| panic!("{name} in\n{stats}"))
    };
    assert_eq!(doc["slices"]["getppid"].as_u64(), Some(calls("getppid")));
    // errs's 2000, and the shell's own.
    assert!(doc["slices"]["getppid"].as_u64() >= Some(2000), "{}", doc["slices"]);
    assert!(doc["slices"]["openat"].as_u64() >= Some(50), "{}", doc["slices"]);
    assert_eq!(doc["unclosed"].as_u64(), Some(0));
    // Arguments and results as annotations.
    let open_end = &doc["annotations"]["openat end"];
    assert!(open_end["result"].as_str().is_some(), "{open_end}");
    assert!(
        doc["annotations"]["openat"]["filename"].as_str().is_some(),
        "{}",
        doc["annotations"]["openat"]
    );
    // Probe events: the span as a slice, the note as an instant with its fields.
    assert_eq!(doc["slices"]["sleepy"].as_u64(), Some(1), "{}", doc["slices"]);
    assert_eq!(doc["annotations"]["demo:note"]["text"].as_str(), Some("done"));
    assert!(doc["instants"]["exec"].as_u64() >= Some(2));
    // CPU samples, each with an interned callstack.
    let samples = doc["samples"].as_u64().unwrap_or(0);
    assert!(samples > 0, "no CPU samples: {err}");
    assert!(err.contains(&format!("not exported: {samples} kernel:sample")), "{err}");

    // The same timeline as Chrome trace-event JSON: B/E balanced per thread,
    // a B per syscall that returned, names as metadata.
    let cj = dir.path().join("p.json");
    let (j, said) = chrome_export(&trace, &cj);
    // Private, as the trace is: it holds the programs' strings and paths.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&cj).expect("export").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let events = j["traceEvents"].as_array().expect("traceEvents");
    let mut depth: std::collections::HashMap<(u64, u64), i64> = Default::default();
    let mut getppid = 0;
    for e in events {
        let key = (e["pid"].as_u64().unwrap_or(0), e["tid"].as_u64().unwrap_or(0));
        match e["ph"].as_str() {
            Some("B") => {
                *depth.entry(key).or_default() += 1;
                getppid += u64::from(e["name"] == "getppid");
            }
            Some("E") => {
                let d = depth.entry(key).or_default();
                *d -= 1;
                assert!(*d >= 0, "an E without its B on {key:?}");
            }
            _ => {}
        }
    }
    assert!(depth.values().all(|&d| d == 0), "unbalanced: {depth:?}");
    assert_eq!(Some(getppid), doc["slices"]["getppid"].as_u64());
    assert!(events
        .iter()
        .any(|e| e["ph"] == "M" && e["name"] == "process_name" && e["args"]["name"] == "errs"));
    assert!(said.contains("CPU samples are not exported to Chrome JSON"));
}

/// "Who unmapped my memory?": a worker thread unmaps a stale pointer twice,
/// the second time taking away the buffer main mapped at the same address
/// meanwhile; main faults on it. `weft mem --addr` lists every change in
/// order with its thread, markers and calling function (recorded with
/// `--stack-on munmap`), and flags the second unmap; `--maps` shows the
/// buffer mapped, then gone.
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn weft_mem_names_the_thread_that_unmapped_the_memory() {
    unmap_history(false);
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn weft_mem_names_the_culprit_with_a_child_that_ptraces_its_parent() {
    unmap_history(true);
}

/// The double-unmap scenario (tests/capi/unmap.c), checked through `weft
/// mem`; with `ptrace`, a child of the program seizes, stops and releases
/// it meanwhile, which a ptrace-based tracer could not let happen.
fn unmap_history(ptrace: bool) {
    require_root();
    let dir = tmp();
    let exe = build_c(dir.path(), "unmap");
    let trace = dir.path().join("u.weft");
    let out = run(weft()
        .args(["record", "-q", "--stack-on", "munmap", "-o"])
        .arg(&trace)
        .arg("--")
        .arg(&exe)
        .args(ptrace.then_some("ptrace")));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains("faulted=1"), "{said}");
    assert_eq!(said.contains("ptrace=ok"), ptrace, "{said}");
    let a = addr(&said, "addr=");
    let m = run(weft().arg("mem").arg(&trace).args(["--addr", &a]));
    let hist = text(&m.stdout);
    assert!(m.status.success(), "{}", text(&m.stderr));
    // The first query wrote the index; the next one reads through it and
    // says the same, flags, stacks and markers included.
    assert!(text(&m.stderr).contains(".memidx ("), "{}", text(&m.stderr));
    let again = run(weft().arg("mem").arg(&trace).args(["--addr", &a]));
    assert!(
        text(&again.stderr).contains("mem answered through"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(text(&again.stdout), hist);
    let plain = run(weft().arg("mem").arg(&trace).args(["--addr", &a, "--no-index"]));
    assert_eq!(text(&plain.stdout), hist);
    let all: Vec<&str> = hist.lines().filter(|l| l.starts_with('#')).collect();
    // The last two changes only: the same text as the end of the whole
    // history (numbers, flags naming changes no longer shown), the earlier
    // ones counted.
    let last2 = text(&run(weft().arg("mem").arg(&trace).args(["--addr", &a, "--last", "2"])).stdout);
    // (The count of suspicious changes at the end is of those shown.)
    let body = |h: &str| {
        h[..h
            .rfind(" suspicious (marked !!!)")
            .and_then(|e| h[..e].rfind('\n'))
            .unwrap_or(h.len())]
            .to_owned()
    };
    let tail = body(&hist[hist.find(all[all.len() - 2]).unwrap_or_else(|| panic!("{hist}"))..]);
    assert!(body(&last2).ends_with(&tail), "{last2}\n--- whole:\n{hist}");
    assert!(
        last2.starts_with(&format!(
            "history of {a} ({} changes; the first {} are not shown",
            all.len(),
            all.len() - 2
        )),
        "{last2}"
    );
    // The dynamic loader may have used the address first (ld.so.cache):
    // the program's own four changes are the last.
    assert!(all.len() >= 4, "{hist}");
    let steps = &all[all.len() - 4..];
    let main_tid = steps[0]
        .split_whitespace()
        .nth(2)
        .and_then(|p| p.split('/').nth(1))
        .expect("tid");
    let tid = |l: &str| {
        l.split_whitespace()
            .nth(2)
            .and_then(|p| p.split('/').nth(1))
            .unwrap_or("")
            .to_owned()
    };
    assert!(steps[0].contains("mapped") && steps[0].contains("mmap("), "{hist}");
    assert!(steps[1].contains("UNMAPPED") && tid(steps[1]) != main_tid, "{hist}");
    assert!(steps[2].contains("mapped") && tid(steps[2]) == main_tid, "{hist}");
    assert!(steps[3].contains("UNMAPPED") && tid(steps[3]) != main_tid, "{hist}");
    // The second unmap is flagged: another thread's memory (reused address)
    // or a double unmap (not reused).
    let n = all.len();
    let flagged = if said.contains("reused=1") {
        format!("unmaps memory another thread mapped: #{} at", n - 1)
    } else {
        format!("double unmap: the address was already unmapped by #{}", n - 2)
    };
    let after_last = hist.split(steps[3]).nth(1).unwrap_or("");
    assert!(after_last.contains(&flagged), "{hist}");
    // Who called it: the stack recorded with the munmap (--stack-on munmap).
    assert!(
        after_last.contains("called from: ") && after_last.contains("unmap_stale (unmap)"),
        "{hist}"
    );
    assert!(
        hist.contains("after it on this thread: marker \"worker unmapped again\""),
        "{hist}"
    );
    // Main's fault, at the address it touched: in this history when the
    // kernel reused the address, else in that address's own.
    let fault = addr(&said, "fault=");
    let fault_hist = if fault == a {
        hist.clone()
    } else {
        text(&run(weft().arg("mem").arg(&trace).args(["--addr", &fault])).stdout)
    };
    assert!(
        fault_hist.contains(&format!("!!! SIGSEGV (SEGV_MAPERR) delivered to thread {main_tid} at "))
            && fault_hist.contains(&format!("fault address {fault}, on the page #")),
        "{fault_hist}"
    );
    assert!(!hist.contains("SIGKILL"), "{hist}");
    // The map of the process around those times: there after the first
    // mapping, gone at the end.
    let ts = |l: &str| -> f64 { l.split_whitespace().nth(1).and_then(|t| t.parse().ok()).expect("time") };
    let pid = steps[0]
        .split_whitespace()
        .nth(2)
        .and_then(|p| p.split('/').next())
        .expect("pid");
    let addr_hex = a.trim_start_matches("0x");
    let maps = |at: f64| {
        text(
            &run(weft()
                .arg("mem")
                .arg(&trace)
                .args(["--maps", "--pid", pid, "--at", &format!("{at:.9}")]))
            .stdout,
        )
    };
    let before = maps(ts(steps[1]) - 1e-7);
    assert!(
        before.lines().any(|l| l.starts_with(addr_hex) && l.contains(" rw-p ")),
        "{before}"
    );
    let end = maps(ts(steps[3]) + 1e-3);
    assert!(!end.lines().any(|l| l.starts_with(addr_hex)), "{end}");
    // The program itself (mapped by its exec, before the exec says it
    // succeeded) and libc by name: each of its segments, where `(fd N)`
    // was all a file mapping's line said before. (A descriptor received
    // from another process, weft-probe's buffer, stays `(fd N)`.)
    let name = exe.file_name().and_then(|n| n.to_str()).expect("name");
    assert!(
        end.lines()
            .any(|l| l.contains(" r-xp ") && l.ends_with(&format!("/{name}"))),
        "{end}"
    );
    let libc: Vec<&str> = end.lines().filter(|l| l.contains("/libc.so")).collect();
    assert!(libc.len() >= 4, "{end}");
}

/// `weft export --format parquet`, queried with DuckDB: as many munmap rows
/// as `weft info` counts, samples joined to the syscalls they fell in by
/// thread and time, and the processes table.
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn the_parquet_tables_answer_duckdb_queries() {
    require_root();
    let has_duckdb = std::process::Command::new("python3")
        .args(["-c", "import duckdb"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_duckdb {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must install the duckdb PyPI package (pip install duckdb), see .ci/run"
        );
        eprintln!("SKIPPED: python3 cannot import duckdb (pip install duckdb)");
        return;
    }
    let dir = tmp();
    let trace = dir.path().join("b.weft");
    let out = run(weft()
        .args(["record", "-q", "--sample", "-o"])
        .arg(&trace)
        .arg("--")
        .arg(program("busy"))
        .arg("100000"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let tables = dir.path().join("tables");
    let out = run(weft()
        .arg("export")
        .arg(&trace)
        .args(["--format", "parquet", "-o"])
        .arg(&tables));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let q = |sql: &str| -> String {
        let t = tables.display();
        let sql = sql.replace("$T", &t.to_string());
        let out = run(std::process::Command::new("python3").args([
            "-c",
            &format!("import duckdb; print(duckdb.sql({sql:?}).fetchall()[0][0])"),
        ]));
        assert!(out.status.success(), "{sql}: {}", text(&out.stderr));
        text(&out.stdout).trim().to_owned()
    };
    let info = text(&run(weft().arg("info").arg(&trace)).stdout);
    let munmaps = info
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("munmap"))
        .and_then(|l| l.split_whitespace().next())
        .expect("munmap count")
        .to_owned();
    assert_eq!(
        q("SELECT count(*) FROM '$T/syscalls.parquet' WHERE name = 'munmap'"),
        munmaps
    );
    assert_eq!(
        q("SELECT count(*) FROM '$T/syscalls.parquet' WHERE name = 'munmap' AND errno IS NOT NULL"),
        "0"
    );
    let in_syscalls: u64 = q(
        "SELECT count(*) FROM '$T/samples.parquet' s JOIN '$T/syscalls.parquet' c \
         ON s.tid = c.tid AND s.ts_ns BETWEEN c.ts_ns AND c.ts_ns + c.duration_ns",
    )
    .parse()
    .expect("count");
    let samples: u64 = q("SELECT count(*) FROM '$T/samples.parquet'").parse().expect("count");
    assert!(in_syscalls > 0 && in_syscalls <= samples, "{in_syscalls} of {samples}");
    assert_eq!(
        q("SELECT comm FROM '$T/processes.parquet' WHERE exit = 'exited with 0'"),
        "busy"
    );
    // Every table carries the host, so many traces read as one.
    assert_eq!(
        q("SELECT count(DISTINCT host) FROM read_parquet('$T/*.parquet', union_by_name = true)"),
        "1"
    );
}

/// `weft crash`: a SIGSEGV with no handler killed `signals` (its outcome,
/// signal, code and the events before it), and the stale-unmap program's
/// SIGSEGV was handled and the thread went on; the stack at delivery is
/// named when recorded (--stack-on signal_deliver); and `weft record` says
/// at the end that a process crashed.
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn weft_crash_tells_a_crash_from_a_handled_fault() {
    require_root();
    let dir = tmp();
    let trace = dir.path().join("s.weft");
    let out = run(weft()
        .args(["record", "--stack-on", "signal_deliver", "-o"])
        .arg(&trace)
        .arg("--")
        .arg(program("signals")));
    assert_eq!(out.status.code(), Some(128 + 11), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    // With si_code and the fault address: the program reads address 16.
    assert!(
        err.contains("died by SIGSEGV (SEGV_MAPERR at 0x10) in thread ") && err.contains("weft crash"),
        "{err}"
    );
    let c = text(&run(weft().arg("crash").arg(&trace)).stdout);
    assert!(c.contains("crash 1: SIGSEGV (SEGV_MAPERR) to thread"), "{c}");
    assert!(c.contains("  fault address: 0x10\n"), "{c}");
    // Nothing was ever mapped there.
    assert!(
        c.contains("  address history: no recorded call mapped or unmapped 0x10\n"),
        "{c}"
    );
    assert!(c.contains("outcome:       killed by SIGSEGV (no handler)"), "{c}");
    assert!(c.contains("stack:         main (signals)"), "{c}");
    // The events before it, the handled SIGUSR1 among them.
    assert!(c.contains("SIGUSR1"), "{c}");
    assert_eq!(c.matches("crash ").count(), 1, "SIGUSR1 is no crash: {c}");

    let exe = build_c(dir.path(), "unmap");
    let trace = dir.path().join("u.weft");
    let out = run(weft().args(["record", "-q", "-o"]).arg(&trace).arg("--").arg(&exe));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let c = text(&run(weft().arg("crash").arg(&trace)).stdout);
    assert!(
        c.contains("outcome:       handled, continued; where the thread went after its handler:"),
        "{c}"
    );
    assert!(
        c.contains("stack:         not recorded (record with --stack-on signal_deliver)"),
        "{c}"
    );
    // The fault address is the buffer main touched, and its history shows
    // the worker's unmap as the last change before the fault.
    let fault = addr(&text(&out.stdout), "fault=");
    assert!(c.contains(&format!("  fault address: {fault}\n")), "{c}");
    let tid = c
        .split(" to thread ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.split('/').nth(1))
        .unwrap_or_else(|| panic!("{c}"));
    let hist = c
        .split("  address history of the fault address:\n")
        .nth(1)
        .unwrap_or_else(|| panic!("{c}"));
    assert!(hist.contains("UNMAPPED   munmap("), "{c}");
    assert!(
        hist.contains(&format!("!!! SIGSEGV (SEGV_MAPERR) delivered to thread {tid}"))
            && hist.contains(&format!("fault address {fault}, on the page #")),
        "{c}"
    );

    // A handler that rewrites the saved instruction pointer: not a crash,
    // and the report says where the thread went; output and exit status
    // are those of an untraced run.
    let trace = dir.path().join("r.weft");
    let out = run(weft()
        .args(["record", "-q", "--stack-on", "signal_deliver", "-o"])
        .arg(&trace)
        .arg("--")
        .arg(program("segv_redirect")));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "landed after the fault\n");
    let c = text(&run(weft().arg("crash").arg(&trace)).stdout);
    assert!(c.contains("crash 1: SIGSEGV (SEGV_MAPERR)"), "{c}");
    assert!(c.contains("  fault address: 0x10\n"), "{c}");
    let went = c
        .split("where the thread went after its handler:")
        .nth(1)
        .and_then(|r| r.lines().nth(1))
        .unwrap_or_else(|| panic!("no outcome line: {c}"));
    assert!(went.contains("write(fd=1, buf=\"landed after the fault\\n\""), "{c}");
    assert!(c.contains("stack:         main (segv_redirect)"), "{c}");
}
