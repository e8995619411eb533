//! Another front end than the command line: a test that records with the
//! library alone, gets its notices as values, and reads the result.

use std::sync::{Arc, Mutex};

use weft_record::{Level, Notice, Options, Recorder, Target};

fn require_root() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!("this test needs root (perf_event_open on tracepoints, tracefs); run `sudo -E cargo test --workspace -- --include-ignored`");
    }
}

fn options(output: std::path::PathBuf, argv: &[&str]) -> Options {
    Options {
        output,
        force: false,
        target: Target::Command(argv.iter().map(Into::into).collect()),
        syscalls: None,
        comm: Vec::new(),
        duration: None,
        buffer_size: 1 << 20,
        compression: 1,
        cgroup: true,
        nice: 0,
        realtime: false,
        sample_hz: None,
        stack_on: Vec::new(),
        off_cpu: false,
        stack_size: 16384,
        archive: false,
        probes: None,
        capture: None,
        flush_every: weft_record::FLUSH_EVERY,
    }
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn a_library_front_end_records_a_command_and_hears_its_notices() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lib.weft");
    std::fs::write(&path, b"an older trace").unwrap();
    let heard: Arc<Mutex<Vec<Notice>>> = Arc::default();
    let sink = heard.clone();
    let mut rec = Recorder::start(options(path.clone(), &["sh", "-c", "exit 3"]), move |n| {
        sink.lock().unwrap().push(n)
    })
    .expect("start");
    while rec.step() {}
    let summary = rec.finish().expect("finish");
    assert_eq!(summary.stop_reason, "command exited");
    assert_eq!(
        weft_record::describe_status(summary.exit_status.expect("status")),
        "exited with 3"
    );
    assert!(summary.syscalls > 10, "{summary:?}");
    // The previous file was kept, and that was said (not printed).
    let notices = heard.lock().unwrap();
    assert!(
        notices
            .iter()
            .any(|n| n.level == Level::Info && n.text.contains("kept the previous")),
        "{notices:?}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("lib.weft.old")).unwrap(),
        b"an older trace"
    );
    let t = weft_format::Trace::open(&path).expect("the trace reads back");
    assert!(t.end.is_some(), "no End chunk");
    assert_eq!(t.records().flatten().count() as u64, summary.records);
}

#[test]
#[ignore = "needs root (perf_event_open, tracefs): run as root with -- --include-ignored"]
fn a_command_that_cannot_start_is_an_error_and_leaves_no_file() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("none.weft");
    let r = Recorder::start(options(path.clone(), &["/nonexistent/program"]), |_| {});
    assert!(
        matches!(r, Err(weft_record::RecordError::CannotStart { .. })),
        "{:?}",
        r.err()
    );
    assert!(!path.exists());
}
