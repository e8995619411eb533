//! CPU sampling end to end: programs compiled here with and without frame
//! pointers, stripped with their debug info split off, symbolized from the
//! binary, a debug link, a build-id directory, debuginfod, and a JIT map.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::common::*;

fn src(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sampling").join(name)
}

fn cc(out: &Path, flags: &[&str], source: &str) {
    let st = Command::new("cc")
        .args(flags)
        .arg("-o")
        .arg(out)
        .arg(src(source))
        .status()
        .expect("cc");
    assert!(st.success());
}

fn objcopy(args: &[&str]) {
    let st = Command::new("objcopy").args(args).status().expect("objcopy (binutils)");
    assert!(st.success(), "objcopy {args:?}");
}

fn build_id(path: &Path) -> String {
    let out = Command::new("readelf").arg("-n").arg(path).output().expect("readelf");
    let t = text(&out.stdout);
    t.lines()
        .find_map(|l| l.trim().strip_prefix("Build ID: "))
        .expect("build id")
        .trim()
        .to_owned()
}

fn sample(dir: &Path, prog: &Path, name: &str) -> PathBuf {
    let trace = dir.join(name);
    let out = run(weft()
        .args(["record", "-q", "--sample", "--syscalls", "exit_group", "-o"])
        .arg(&trace)
        .arg("--")
        .arg(prog));
    assert!(out.status.success(), "{}", text(&out.stderr));
    trace
}

fn report(trace: &Path, extra: &[&str]) -> (String, String) {
    let out = run(weft()
        .arg("report")
        .arg(trace)
        .args(["--no-cache", "--user-only"])
        .args(extra));
    assert!(out.status.success(), "{}", text(&out.stderr));
    (text(&out.stdout), text(&out.stderr))
}

/// The hot function is on top, with its source line, and its callers have
/// (nearly) all samples in total.
fn assert_named(report: &str, exe: &str) {
    let rows: Vec<&str> = report.lines().skip_while(|l| !l.contains("SELF%")).skip(1).collect();
    let top = rows.first().copied().unwrap_or("");
    assert!(
        (top.contains("leaf_work") || top.contains("inl_step")) && top.contains("hot.c:") && top.contains(exe),
        "top of report: {top}\n{report}"
    );
    for f in ["hot_outer", "main"] {
        let row = rows
            .iter()
            .find(|l| l.split_whitespace().nth(4) == Some(f))
            .unwrap_or_else(|| panic!("{f} missing:\n{report}"));
        let total: f64 = row
            .split_whitespace()
            .nth(2)
            .unwrap()
            .trim_end_matches('%')
            .parse()
            .unwrap();
        assert!(total > 90.0, "{f} total {total}%\n{report}");
    }
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn with_and_without_frame_pointers() {
    require_root();
    let dir = tmp();
    for (name, flags) in [
        ("hot-fp", ["-O2", "-g", "-fno-omit-frame-pointer"]),
        ("hot-nofp", ["-O2", "-g", "-fomit-frame-pointer"]),
    ] {
        let exe = dir.path().join(name);
        cc(&exe, &flags, "hot.c");
        let trace = sample(dir.path(), &exe, &format!("{name}.weft"));
        let (rep, _) = report(&trace, &[]);
        assert_named(&rep, name);
        // The inlined helper is a frame of its own.
        assert!(rep.contains("inl_step") && rep.contains("[inlined]"), "{rep}");
        // Flame graph: folded stacks root to leaf, and an SVG with the names.
        let out = run(weft()
            .arg("flame")
            .arg(&trace)
            .args(["--folded", "--no-cache", "--user-only"]));
        let folded = text(&out.stdout);
        assert!(
            folded.lines().any(|l| l.contains("main;hot_outer;middle;leaf_work")),
            "{folded}"
        );
        let svg = dir.path().join(format!("{name}.svg"));
        let out = run(weft().arg("flame").arg(&trace).args(["--no-cache", "-o"]).arg(&svg));
        assert!(out.status.success(), "{}", text(&out.stderr));
        let s = std::fs::read_to_string(&svg).unwrap();
        assert!(s.starts_with("<?xml") && s.contains("leaf_work") && s.contains("hot_outer"));
        let out = run(weft()
            .arg("flame")
            .arg(&trace)
            .args(["--no-cache", "--reverse", "--folded", "--user-only"]));
        assert!(
            text(&out.stdout)
                .lines()
                .any(|l| l.contains("leaf_work;middle;hot_outer;main")),
            "{}",
            text(&out.stdout)
        );
    }
}

/// A stripped binary and its split debug file, as distributions ship them.
fn split(dir: &Path) -> (PathBuf, PathBuf, String) {
    let exe = dir.join("hot-stripped");
    cc(&exe, &["-O2", "-g", "-fomit-frame-pointer"], "hot.c");
    let dbg = dir.join("hot-stripped.debug");
    objcopy(&["--only-keep-debug", exe.to_str().unwrap(), dbg.to_str().unwrap()]);
    objcopy(&["--strip-all", exe.to_str().unwrap()]);
    let bid = build_id(&exe);
    (exe, dbg, bid)
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn split_debug_info_by_debuglink_build_id_dir_and_missing() {
    require_root();
    let dir = tmp();
    let (exe, dbg, bid) = split(dir.path());
    let trace = sample(dir.path(), &exe, "s.weft");

    // Missing: the module's unnamed frames grouped as one row, and a note
    // of where weft looked.
    let (rep, err) = report(&trace, &[]);
    assert!(rep.contains("[hot-stripped]"), "{rep}");
    assert!(!rep.contains("hot-stripped+0x"), "one row per address:\n{rep}");
    // And the report says how much is unnamed, and where the names could come from.
    assert!(
        rep.contains("of samples end in code without a function name")
            && rep
                .lines()
                .any(|l| l.contains("hot-stripped: its debug file (build-id)")),
        "{rep}"
    );
    assert!(
        err.contains("hot-stripped")
            && err.contains("looked in:")
            && err.contains(&format!(".build-id/{}/{}.debug", &bid[..2], &bid[2..])),
        "{err}"
    );

    // --symbols DIR with the build-id layout.
    let symdir = dir.path().join("syms");
    let bdir = symdir.join(".build-id").join(&bid[..2]);
    std::fs::create_dir_all(&bdir).unwrap();
    std::fs::copy(&dbg, bdir.join(format!("{}.debug", &bid[2..]))).unwrap();
    let (rep, _) = report(&trace, &["--symbols", symdir.to_str().unwrap()]);
    assert_named(&rep, "hot-stripped");

    // The same debug file with legacy GNU-compressed sections (.zdebug_*,
    // `objcopy --compress-debug-sections=zlib-gnu`): functions, lines and
    // inlined calls as from the plain one. Its rewritten copy goes to the
    // cache under $HOME.
    let zdir = dir.path().join("zsyms");
    let zb = zdir.join(".build-id").join(&bid[..2]);
    std::fs::create_dir_all(&zb).unwrap();
    let zdbg = zb.join(format!("{}.debug", &bid[2..]));
    objcopy(&[
        "--compress-debug-sections=zlib-gnu",
        dbg.to_str().unwrap(),
        zdbg.to_str().unwrap(),
    ]);
    let sections = run(Command::new("readelf").arg("-S").arg(&zdbg));
    assert!(
        text(&sections.stdout).contains(".zdebug_info"),
        "objcopy made no .zdebug_info"
    );
    let home = dir.path().join("home");
    let out = run(weft()
        .env("HOME", &home)
        .env_remove("XDG_CACHE_HOME")
        .arg("report")
        .arg(&trace)
        .args(["--no-cache", "--user-only", "--symbols", zdir.to_str().unwrap()]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_named(&text(&out.stdout), "hot-stripped");
    assert!(
        home.join(".cache/weft/zdebug").join(format!("{bid}.debug")).is_file(),
        "no rewritten copy in the cache"
    );

    // .gnu_debuglink: the debug file next to the binary.
    objcopy(&[&format!("--add-gnu-debuglink={}", dbg.display()), exe.to_str().unwrap()]);
    let trace2 = sample(dir.path(), &exe, "s2.weft");
    let (rep, _) = report(&trace2, &[]);
    assert_named(&rep, "hot-stripped");

    // A corrupt debug file where the build ID says it is: no crash, a clear note.
    let bad = dir.path().join("bad");
    let bb = bad.join(".build-id").join(&bid[..2]);
    std::fs::create_dir_all(&bb).unwrap();
    std::fs::write(
        bb.join(format!("{}.debug", &bid[2..])),
        b"\x7fELF garbage that is not an ELF file at all",
    )
    .unwrap();
    std::fs::remove_file(&dbg).unwrap();
    let out = run(weft()
        .arg("report")
        .arg(&trace)
        .args(["--no-cache", "--symbols", bad.to_str().unwrap()]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("not a valid ELF file"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn debuginfod_server_supplies_the_debug_file() {
    require_root();
    let Ok(server) = which("debuginfod") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must install Debian's debuginfod package"
        );
        eprintln!("SKIPPED: debuginfod is not installed (apt-get install debuginfod)");
        return;
    };
    let dir = tmp();
    let (exe, dbg, bid) = split(dir.path());
    let trace = sample(dir.path(), &exe, "d.weft");
    let served = dir.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    std::fs::rename(&dbg, served.join("hot-stripped.debug")).unwrap();
    let port = 20000 + (std::process::id() % 20000) as u16;
    let mut srv = Command::new(server)
        .args(["-F", "-p", &port.to_string(), "-d"])
        .arg(dir.path().join("db.sqlite"))
        .arg(&served)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start debuginfod");
    let url = format!("http://127.0.0.1:{port}");
    // Wait until it has indexed the file.
    let mut ok = false;
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(200));
        let out = Command::new("curl")
            .args(["-sf", "-o", "/dev/null", &format!("{url}/buildid/{bid}/debuginfo")])
            .status();
        if out.is_ok_and(|s| s.success()) {
            ok = true;
            break;
        }
    }
    assert!(ok, "debuginfod did not serve the debug file");
    let cache = dir.path().join("cache");
    let out = run(weft()
        .arg("report")
        .arg(&trace)
        .args(["--no-cache", "--user-only"])
        .env("DEBUGINFOD_URLS", &url)
        .env("DEBUGINFOD_CACHE_PATH", &cache));
    let _ = srv.kill();
    let _ = srv.wait();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_named(&text(&out.stdout), "hot-stripped");
    assert!(
        cache.join(&bid).join("debuginfo").is_file(),
        "not stored in the debuginfod client cache layout"
    );
    // From the client cache, without the server.
    let out = run(weft()
        .arg("report")
        .arg(&trace)
        .args(["--no-cache", "--user-only"])
        .env("DEBUGINFOD_CACHE_PATH", &cache)
        .env_remove("DEBUGINFOD_URLS"));
    assert_named(&text(&out.stdout), "hot-stripped");
}

fn which(name: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|p| p.is_file()))
        .ok_or(())
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn jit_map_names_generated_code() {
    require_root();
    let dir = tmp();
    let exe = dir.path().join("jit");
    cc(&exe, &["-O1", "-g"], "jit.c");
    let trace = sample(dir.path(), &exe, "j.weft");
    let (rep, _) = report(&trace, &[]);
    let top = rep.lines().skip_while(|l| !l.contains("SELF%")).nth(1).unwrap_or("");
    assert!(top.contains("jit_spin_loop") && top.contains("[jit]"), "{rep}");
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn stacks_on_syscalls_and_symbol_cache() {
    require_root();
    let dir = tmp();
    let trace = dir.path().join("m.weft");
    let out = run(weft()
        .args(["record", "-q", "--syscalls", "munmap", "--stack-on", "munmap", "-o"])
        .arg(&trace)
        .arg("--")
        .arg(program("memops")));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let out = run(weft()
        .arg("report")
        .arg(&trace)
        .args(["--trigger", "munmap", "--user-only"]));
    let rep = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        rep.lines().any(|l| l.contains(" main ") && l.contains("memops.c:")),
        "munmap callers: {rep}"
    );
    assert!(
        rep.contains("thread_main"),
        "the thread's munmap has its stack too: {rep}"
    );
    // The second report reads the symbol cache the first one wrote.
    assert!(Path::new(&format!("{}.symcache", trace.display())).is_file());
    let out = run(weft()
        .arg("report")
        .arg(&trace)
        .args(["--trigger", "munmap", "--user-only"]));
    let first = text(&out.stdout);
    let hits: u64 = first
        .split("lookups, ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(hits > 0, "no cache hits on the second report: {first}");
    // Without samples: a clear message.
    let out = run(weft().arg("report").arg(&trace));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no cpu-clock samples"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn speedscope_export_validates_against_speedscope_schema() {
    require_root();
    let schema_path = std::env::var_os("SPEEDSCOPE_SCHEMA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/speedscope/package/dist/release/file-format-schema.json")
        });
    if !schema_path.is_file() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must fetch speedscope's schema (npm pack speedscope), see .ci/run"
        );
        eprintln!("SKIPPED: speedscope's schema not found at {} (run: npm pack speedscope && tar xzf speedscope-*.tgz -C target/speedscope)", schema_path.display());
        return;
    }
    let dir = tmp();
    let exe = dir.path().join("hot");
    cc(&exe, &["-O2", "-g"], "hot.c");
    let trace = sample(dir.path(), &exe, "h.weft");
    let json = dir.path().join("h.json");
    let out = run(weft()
        .arg("export")
        .arg(&trace)
        .args(["--format", "speedscope", "--no-cache", "-o"])
        .arg(&json));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let schema: serde_json::Value = serde_json::from_slice(&std::fs::read(&schema_path).unwrap()).unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("speedscope schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(errors.is_empty(), "export does not validate: {errors:#?}");
    let names: Vec<&str> = doc["shared"]["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert!(names.contains(&"leaf_work") && names.contains(&"main"));

    // On a time axis: evented, in ns since the recording's start, every
    // frame opened and closed in nesting order, over the program's run.
    let prof = &doc["profiles"][0];
    assert_eq!(prof["type"], "evented", "{prof:.300}");
    assert_eq!(prof["unit"], "nanoseconds");
    let mut open: Vec<u64> = Vec::new();
    let mut last = 0u64;
    for e in prof["events"].as_array().expect("events") {
        let (f, at) = (e["frame"].as_u64().unwrap(), e["at"].as_u64().unwrap());
        assert!(at >= last, "events out of order at {e}");
        last = at;
        match e["type"].as_str() {
            Some("O") => open.push(f),
            _ => assert_eq!(open.pop(), Some(f), "unbalanced close {e}"),
        }
    }
    assert!(open.is_empty());
    let span = prof["endValue"].as_u64().unwrap() - prof["startValue"].as_u64().unwrap();
    assert!(span > 100_000_000, "the samples span {span} ns");

    // speedscope itself opens it (headless Chromium, served over HTTP as
    // speedscope fetches `#profileURL`): its title becomes the profile's
    // name and the thread is listed.
    let Ok(chromium) = which("chromium") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must install chromium, see .ci/run"
        );
        eprintln!("SKIPPED: opening the export in speedscope needs chromium (apt-get install chromium)");
        return;
    };
    let www = dir.path().join("www");
    let release = schema_path.parent().expect("speedscope release dir");
    std::fs::create_dir_all(&www).unwrap();
    for e in std::fs::read_dir(release).unwrap().flatten() {
        std::fs::copy(e.path(), www.join(e.file_name())).unwrap();
    }
    std::fs::copy(&json, www.join("h.json")).unwrap();
    let port = serve(www);
    let url = format!("http://127.0.0.1:{port}/index.html#profileURL=http://127.0.0.1:{port}/h.json");
    let out = run(Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(&url));
    let dom = text(&out.stdout);
    assert!(
        dom.contains("h.weft - speedscope</title>"),
        "speedscope did not load it:\n{dom:.2000}\n{}",
        text(&out.stderr)
    );
    assert!(dom.contains("hot (pid "), "{dom:.2000}");
}

/// A file server for a test's directory on a free local port, for as long
/// as the test runs.
fn serve(root: PathBuf) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut line = String::new();
            let mut r = BufReader::new(&conn);
            if r.read_line(&mut line).is_err() {
                continue;
            }
            // Headers up to the blank line.
            let mut h = String::new();
            while r.read_line(&mut h).is_ok_and(|n| n > 2) {
                h.clear();
            }
            let path = line.split_whitespace().nth(1).unwrap_or("/");
            let name = path.split(['?', '#']).next().unwrap_or("").trim_start_matches('/');
            let mut w = &conn;
            match std::fs::read(root.join(name)).ok().filter(|_| !name.contains("..")) {
                Some(body) => {
                    let ty = match name.rsplit('.').next() {
                        Some("html") => "text/html",
                        Some("js") => "text/javascript",
                        Some("css") => "text/css",
                        Some("json") => "application/json",
                        Some("wasm") => "application/wasm",
                        _ => "application/octet-stream",
                    };
                    let _ = write!(
                        w,
                        "HTTP/1.1 200 OK\r\nContent-Type: {ty}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = w.write_all(&body);
                }
                None => {
                    let _ = w.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                }
            }
        }
    });
    port
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn cpp_names_are_demangled_and_archive_symbolizes_elsewhere() {
    require_root();
    let dir = tmp();
    let exe = dir.path().join("hotpp");
    let st = Command::new("g++")
        .args(["-O2", "-g", "-o"])
        .arg(&exe)
        .arg(src("hot.cpp"))
        .status()
        .expect("g++");
    assert!(st.success());
    let trace = dir.path().join("p.weft");
    let out = run(weft()
        .args([
            "record",
            "-q",
            "--sample",
            "--archive",
            "--syscalls",
            "exit_group",
            "-o",
        ])
        .arg(&trace)
        .arg("--")
        .arg(&exe));
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The binary is gone, as on another machine; the archive has it.
    std::fs::remove_file(&exe).unwrap();
    let (rep, _) = report(&trace, &[]);
    let top = rep.lines().skip_while(|l| !l.contains("SELF%")).nth(1).unwrap_or("");
    assert!(top.contains("engine::Solver<double>::crunch(long)"), "{rep}");
}

/// Kernel frames are named from the recording machine's kallsyms, stored in
/// the trace (`kernel:symbols`), and the main thread's stack copies stop at
/// its initial stack pointer (the environment above it is not kept).
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn kernel_symbols_recorded_and_stack_copies_trimmed() {
    require_root();
    let dir = tmp();
    let trace = dir.path().join("k.weft");
    let out = run(weft()
        .args(["record", "-q", "--sample", "4999", "--syscalls", "exit_group", "-o"])
        .arg(&trace)
        .arg("--")
        .arg(program("busy"))
        .arg("300000"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let syms = dump(&trace, &["--event", "kernel:symbols"]);
    assert_eq!(syms.len(), 1, "one kernel:symbols record: {syms:#?}");
    let out = run(weft().arg("report").arg(&trace).args(["--no-cache", "-n", "100"]));
    let rep = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let kernel_rows: Vec<&str> = rep.lines().filter(|l| l.ends_with("([kernel])")).collect();
    assert!(!kernel_rows.is_empty(), "a syscall loop has kernel frames: {rep}");
    for row in &kernel_rows {
        let name = row.split_whitespace().nth(4).unwrap_or("");
        assert!(
            !name.starts_with("0x") && !name.contains('+'),
            "kernel frame without a name: {row}"
        );
    }
    let sizes: Vec<usize> = dump(&trace, &["--event", "kernel:sample"])
        .iter()
        .filter_map(|l| l.split("user_stack=<").nth(1)?.split(' ').next()?.parse().ok())
        .filter(|&n| n > 0)
        .collect();
    assert!(!sizes.is_empty(), "no stack copies");
    // busy's frames take a few hundred bytes; the environment and auxv above
    // them are usually more than the rest together. Samples taken around the
    // exec, before weft sees it, may keep their whole copy.
    let small = sizes.iter().filter(|&&n| n < 2048).count();
    assert!(
        small * 10 >= sizes.len() * 9,
        "stack copies not trimmed at the initial stack pointer: {:?}",
        &sizes[..sizes.len().min(20)]
    );
}

/// Debian's debug files compress their sections (SHF_COMPRESSED, zlib):
/// with libc6-dbg installed, libc's frames are named (`__GI_munmap`,
/// `start_thread`), not shown as `libc.so.6+0x...`.
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn libc_frames_are_named_from_debians_compressed_debug_files() {
    require_root();
    if !std::path::Path::new("/usr/share/doc/libc6-dbg").is_dir() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must install libc6-dbg, see .ci/run"
        );
        eprintln!("SKIPPED: libc6-dbg is not installed (apt install libc6-dbg)");
        return;
    }
    let dir = tmp();
    let trace = dir.path().join("m.weft");
    let out = run(weft()
        .args(["record", "-q", "--stack-on", "munmap", "-o"])
        .arg(&trace)
        .arg("--")
        .arg(program("busy"))
        .arg("200"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(weft()
        .arg("report")
        .arg(&trace)
        .args(["--trigger", "munmap", "--no-cache", "--user-only"]));
    let rep = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!rep.contains("libc.so.6+0x"), "unnamed libc frames:\n{rep}");
    assert!(rep.contains("munmap"), "{rep}");
}

/// Records blocky with `record_flags`; returns the trace and the parent's pid
/// (the child only sleeps).
fn record_blocky(dir: &Path, name: &str, record_flags: &[&str]) -> (PathBuf, String) {
    let trace = dir.join(name);
    let out = run(weft()
        .args(["record", "-q"])
        .args(record_flags)
        .arg("-o")
        .arg(&trace)
        .arg("--")
        .arg(program("blocky")));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pid = blocky_pid(&trace);
    (trace, pid)
}

/// The pid of blocky's parent process in `trace` (the child only sleeps),
/// after checking that off-CPU time was recorded.
fn blocky_pid(trace: &Path) -> String {
    let info = text(&run(weft().arg("info").arg(trace)).stdout);
    assert!(info.contains("off-CPU time"), "{info}");
    info.lines()
        .find(|l| l.contains("blocky") && l.split_whitespace().nth(1) == Some("-"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("{info}"))
        .to_owned()
}

/// `weft report MODE` of one process: the report, and a function's total.
fn blocky_report(trace: &Path, pid: &str, mode: &str) -> (String, impl Fn(&str) -> u64) {
    let out = run(weft()
        .arg("report")
        .arg(trace)
        .args([mode, "--user-only", "--no-cache", "-n", "60", "-p", pid]));
    let rep = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r = rep.clone();
    let total = move |f: &str| -> u64 {
        r.lines()
            .find(|l| l.split_whitespace().nth(4) == Some(f))
            .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
            .unwrap_or_else(|| panic!("{f} not in:\n{r}"))
    };
    (rep, total)
}

/// Off-CPU time: blocky waits 300 ms on a pipe in wait_on_pipe() and sleeps
/// 100 ms in nap(). `weft report --off-cpu` weighs where it blocked by how
/// long, and `weft flame --off-cpu --folded` writes those microseconds;
/// `--wall` adds burn()'s ~200 ms on CPU to the same profile.
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn off_cpu_time_is_counted_where_the_program_blocked() {
    require_root();
    let dir = tmp();
    let (trace, pid) = record_blocky(dir.path(), "o.weft", &["--off-cpu"]);
    let (rep, total) = blocky_report(&trace, &pid, "--off-cpu");
    assert!(rep.contains("µs (off CPU)"), "{rep}");
    let (pipe, nap) = (total("wait_on_pipe"), total("nap"));
    assert!((250_000..450_000).contains(&pipe), "wait_on_pipe {pipe} µs:\n{rep}");
    assert!((80_000..200_000).contains(&nap), "nap {nap} µs:\n{rep}");
    let folded = text(
        &run(weft()
            .arg("flame")
            .arg(&trace)
            .args(["--off-cpu", "--folded", "--user-only", "--no-cache", "-p", &pid]))
        .stdout,
    );
    let weight: u64 = folded
        .lines()
        .filter(|l| l.contains(";wait_on_pipe"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(weight, pipe, "{folded}");

    // Wall clock: the same waits, and burn()'s ~200 ms on CPU, in one profile.
    let (trace, pid) = record_blocky(dir.path(), "w.weft", &["--off-cpu", "--sample"]);
    let (rep, total) = blocky_report(&trace, &pid, "--wall");
    assert!(rep.contains("µs (wall clock: on and off CPU)"), "{rep}");
    let (pipe, nap, burn) = (total("wait_on_pipe"), total("nap"), total("burn"));
    assert!((250_000..450_000).contains(&pipe), "wait_on_pipe {pipe} µs:\n{rep}");
    assert!((80_000..200_000).contains(&nap), "nap {nap} µs:\n{rep}");
    assert!((120_000..300_000).contains(&burn), "burn {burn} µs:\n{rep}");
    // The waits' totals also hold the few on-CPU samples taken inside them
    // (entering and leaving the syscalls, 1 ms each at 999 Hz).
    assert!(total("[off-CPU]") >= pipe + nap - 5 * 1001, "{rep}");

    // On a CPU it shares with a busy loop, burn() runs about half its 200 ms
    // and waits for the CPU the rest: the wall-clock profile still gives it
    // its 200 ms, the waits for a CPU ending in [preempted].
    let mut spin = Command::new("taskset")
        .args(["-c", "0", "sh", "-c", "while :; do :; done"])
        .spawn()
        .expect("taskset (util-linux)");
    let trace = dir.path().join("p.weft");
    let out = run(weft()
        .args(["record", "-q", "--off-cpu", "--sample", "-o"])
        .arg(&trace)
        .args(["--", "taskset", "-c", "0"])
        .arg(program("blocky")));
    let _ = spin.kill();
    let _ = spin.wait();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pid = blocky_pid(&trace);
    let (rep, total) = blocky_report(&trace, &pid, "--wall");
    let (burn, preempted) = (total("burn"), total("[preempted]"));
    assert!((150_000..400_000).contains(&burn), "burn {burn} µs:\n{rep}");
    assert!(preempted >= 30_000, "[preempted] {preempted} µs:\n{rep}");
    assert!(total("main") >= 550_000, "{rep}");
}

/// MiniDebugInfo, as Fedora ships it: a stripped binary whose function
/// symbols are in an xz-compressed ELF in `.gnu_debugdata`. Its functions
/// are named from there.
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn functions_are_named_from_minidebuginfo() {
    require_root();
    let dir = tmp();
    let d = dir.path();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sampling/hot.c");
    // The recipe of Fedora's find-debuginfo (gdb's "MiniDebugInfo" docs).
    let script = format!(
        "set -e; cd {d}; cc -O2 -g -o hot {src}
         nm -D hot --format=posix --defined-only | awk '{{print $1}}' | sort > dynsyms
         nm hot --format=posix --defined-only | awk '{{ if ($2 == \"T\" || $2 == \"t\") print $1 }}' | sort > funcsyms
         comm -13 dynsyms funcsyms > keep
         objcopy --only-keep-debug hot debug
         objcopy -S --remove-section .gdb_index --remove-section .comment --keep-symbols=keep debug mini
         xz -f mini
         cp hot hot-mdi; strip --strip-all hot-mdi
         objcopy --add-section .gnu_debugdata=mini.xz hot-mdi",
        d = d.display(),
        src = src.display()
    );
    let st = Command::new("sh").args(["-c", &script]).status().expect("sh");
    assert!(
        st.success(),
        "building the MiniDebugInfo binary failed (binutils, xz-utils)"
    );
    let exe = d.join("hot-mdi");
    let trace = sample(d, &exe, "mdi.weft");
    let (rep, err) = report(&trace, &[]);
    assert!(rep.contains("leaf_work") && rep.contains("hot_outer"), "{rep}\n{err}");
    assert!(!rep.contains("[hot-mdi]"), "{rep}");
}

/// Function names as both tools spell them: glibc's internal aliases
/// (`__GI___strcoll_l`) and symbol versions (`@@GLIBC_2.2.5`) dropped.
fn plain(name: &str) -> String {
    let n = name.split('@').next().unwrap_or(name);
    n.strip_prefix("__GI_").unwrap_or(n).to_owned()
}

/// perf's named user-space functions by self samples, most first.
fn perf_top(exe_and_args: &[&str], dir: &Path) -> Vec<String> {
    let data = dir.join("perf.data");
    let st = Command::new("perf")
        .args(["record", "-q", "-F", "999", "--call-graph", "dwarf", "-o"])
        .arg(&data)
        .arg("--")
        .args(exe_and_args)
        .stdout(Stdio::null())
        .status()
        .expect("perf (apt-get install linux-perf)");
    assert!(st.success(), "perf record failed");
    let out = Command::new("perf")
        .args([
            "report",
            "--no-children",
            "--sort",
            "sym",
            "-g",
            "none",
            "--stdio",
            "-i",
        ])
        .arg(&data)
        .output()
        .expect("perf report");
    text(&out.stdout)
        .lines()
        .filter(|l| l.contains("[.] "))
        .filter_map(|l| l.split("[.] ").nth(1))
        .map(|n| plain(n.trim()))
        .filter(|n| !n.starts_with("0x"))
        .collect()
}

/// weft's named functions by self samples (user space, inlined calls
/// counted in their caller as perf's symbols count them), most first: the
/// leaves of `weft flame --folded --no-inline`, whose names may hold spaces.
fn weft_top(exe_and_args: &[&str], dir: &Path) -> Vec<String> {
    let trace = dir.join("w.weft");
    let out = run(weft()
        .args(["record", "-q", "--sample", "--syscalls", "exit_group", "-o"])
        .arg(&trace)
        .arg("--")
        .args(exe_and_args));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(weft()
        .arg("flame")
        .arg(&trace)
        .args(["--folded", "--no-inline", "--user-only", "--no-cache"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut self_samples: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    for l in text(&out.stdout).lines() {
        let Some((stack, n)) = l.rsplit_once(' ') else { continue };
        let leaf = stack.rsplit(';').next().unwrap_or(stack);
        *self_samples.entry(leaf.to_owned()).or_default() += n.parse::<u64>().unwrap_or(0);
    }
    let mut v: Vec<(String, u64)> = self_samples.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.into_iter()
        .map(|(n, _)| n)
        .filter(|n| !n.starts_with('['))
        .map(|n| plain(&n))
        .collect()
}

/// weft's top functions by self samples agree with perf's (`perf record
/// --call-graph dwarf`, `perf report --no-children --sort sym`) on the same
/// workload: a C program with known shares (the top function the same, the
/// top five sharing at least four), a Rust program (std's sort, BTreeMap
/// and formatting) and python3 running a loop (each top function among the
/// other's top two: python3's two first are within a point of each other,
/// the top five sharing at least four each), and `sort` over
/// libc6-dbg's libc (the top function the same, the top three sharing at
/// least two).
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn top_functions_agree_with_perf() {
    require_root();
    if Command::new("perf").arg("--version").output().is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must install perf (linux-perf), see .ci/run"
        );
        eprintln!("SKIPPED: perf is not installed (apt-get install linux-perf)");
        return;
    }
    let dir = tmp();
    let mix = dir.path().join("mix");
    cc(&mix, &["-O2", "-g"], "mix.c");
    let m = mix.to_str().expect("path");
    let (p, w) = (perf_top(&[m], dir.path()), weft_top(&[m], dir.path()));
    assert_eq!(p.first(), w.first(), "perf {p:?} weft {w:?}");
    let common = w.iter().take(5).filter(|n| p.iter().take(5).any(|q| q == *n)).count();
    assert!(common >= 4, "top five: perf {p:?} weft {w:?}");

    let rust = dir.path().join("mix-rs");
    let st = Command::new("rustc")
        .args(["-O", "-g", "-o"])
        .arg(&rust)
        .arg(src("mix.rs"))
        .status()
        .expect("rustc");
    assert!(st.success(), "rustc mix.rs");
    let py = src("loop.py");
    let python: [&str; 2] = ["python3", py.to_str().expect("path")];
    for (what, args) in [
        ("rust", vec![rust.to_str().expect("path")]),
        ("python3", python.to_vec()),
    ] {
        let (p, w) = (perf_top(&args, dir.path()), weft_top(&args, dir.path()));
        // python3's top two (l_mod and the interpreter loop, about 19 %
        // each) swap places from run to run under perf alone: each tool's
        // top function is among the other's top two.
        let in_top2 = |a: &[String], b: &[String]| a.first().is_some_and(|f| b.iter().take(2).any(|x| x == f));
        assert!(in_top2(&p, &w) && in_top2(&w, &p), "{what}: perf {p:?} weft {w:?}");
        let common = w.iter().take(5).filter(|n| p.iter().take(5).any(|q| q == *n)).count();
        assert!(common >= 4, "{what}'s top five: perf {p:?} weft {w:?}");
    }

    if std::path::Path::new("/usr/share/doc/libc6-dbg").is_dir() {
        let words = dir.path().join("words");
        let mut s = String::new();
        let mut x: u64 = 1;
        for _ in 0..400_000 {
            for _ in 0..12 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                s.push((b'a' + (x % 10) as u8) as char);
            }
            s.push('\n');
        }
        std::fs::write(&words, s).expect("words");
        let args = ["sort", words.to_str().expect("path"), "-o", "/dev/null"];
        let (p, w) = (perf_top(&args, dir.path()), weft_top(&args, dir.path()));
        assert_eq!(p.first(), w.first(), "sort: perf {p:?} weft {w:?}");
        let common = w.iter().take(3).filter(|n| p.iter().take(3).any(|q| q == *n)).count();
        assert!(common >= 2, "sort's top three: perf {p:?} weft {w:?}");
    }
}

/// `weft record -p PID --sample` of a running service whose binary is no
/// longer at its path as the recorder sees it: replaced by another build,
/// deleted, or inside another mount namespace (a container). The mapped
/// file is kept with the trace and its functions are named.
#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn a_running_service_is_symbolized_after_its_binary_was_replaced_deleted_or_hidden() {
    require_root();
    let dir = tmp();
    let d = dir.path();
    for case in ["replaced", "deleted", "container"] {
        let exe = d.join(format!("svc-{case}"));
        cc(&exe, &["-O2", "-g"], "hot.c");
        let mut child = if case == "container" {
            // Only the service's own mount namespace has its binary.
            let bx = d.join("box");
            std::fs::create_dir_all(&bx).expect("box");
            let script = format!(
                "mount -t tmpfs box {b} && cp {e} {b}/svc && exec {b}/svc 4000000000",
                b = bx.display(),
                e = exe.display()
            );
            Command::new("unshare")
                .args(["-m", "--propagation", "private", "sh", "-c", &script])
                .spawn()
                .expect("unshare (util-linux)")
        } else {
            Command::new(&exe).arg("4000000000").spawn().expect("svc")
        };
        std::thread::sleep(Duration::from_millis(300));
        match case {
            "replaced" => {
                let other = d.join("other");
                cc(&other, &["-O2", "-g"], "mix.c");
                std::fs::rename(&other, &exe).expect("replace");
            }
            "deleted" => std::fs::remove_file(&exe).expect("delete"),
            _ => {}
        }
        let trace = d.join(format!("{case}.weft"));
        let out = run(weft()
            .args([
                "record",
                "--sample",
                "--duration",
                "1s",
                "--syscalls",
                "exit_group",
                "-o",
            ])
            .arg(&trace)
            .args(["-p", &child.id().to_string()]));
        let _ = child.kill();
        let _ = child.wait();
        let err = text(&out.stderr);
        assert!(out.status.success(), "{case}: {err}");
        assert!(
            err.contains("kept 1 mapped binaries that were deleted, replaced or in a container"),
            "{case}: {err}"
        );
        let (rep, rerr) = report(&trace, &[]);
        let rows: Vec<&str> = rep.lines().skip_while(|l| !l.contains("SELF%")).skip(1).collect();
        let top = rows.first().copied().unwrap_or("");
        assert!(
            top.contains("leaf_work") || top.contains("inl_step"),
            "{case}: top of report: {top}\n{rep}\n{rerr}"
        );
        assert!(rep.contains("hot_outer"), "{case}: {rep}");
    }
}
