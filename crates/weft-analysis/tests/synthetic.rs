//! The timeline, the summary and profile aggregation on traces these tests
//! write with `TraceWriter`: no root, no kernel, every case exact.

use std::path::{Path, PathBuf};

use weft_analysis::profile::{profile, ProfileOptions};
use weft_analysis::{summarize, Filter, Timeline};
use weft_format::std_schemas::{self as s, Ids};
use weft_format::{info_keys, SyscallArg, SyscallEntry, SyscallTable, Trace, TraceWriter};

const T0: u64 = 1_000_000_000;
const READ: u32 = 0;
const WRITE: u32 = 1;
const EXIT_GROUP: u32 = 231;
const MMAP: u32 = 9;
const MUNMAP: u32 = 11;
const MREMAP: u32 = 25;

fn table() -> SyscallTable {
    let args = |names: &[&str]| {
        names
            .iter()
            .map(|n| SyscallArg {
                ctype: "unsigned long".into(),
                name: (*n).into(),
            })
            .collect()
    };
    SyscallTable::new(vec![
        SyscallEntry {
            nr: READ,
            name: "read".into(),
            args: args(&["fd", "buf", "count"]),
        },
        SyscallEntry {
            nr: WRITE,
            name: "write".into(),
            args: args(&["fd", "buf", "count"]),
        },
        SyscallEntry {
            nr: EXIT_GROUP,
            name: "exit_group".into(),
            args: args(&["error_code"]),
        },
        SyscallEntry {
            nr: MMAP,
            name: "mmap".into(),
            args: args(&["addr", "len", "prot", "flags", "fd", "off"]),
        },
        SyscallEntry {
            nr: MUNMAP,
            name: "munmap".into(),
            args: args(&["addr", "len"]),
        },
        SyscallEntry {
            nr: MREMAP,
            name: "mremap".into(),
            args: args(&["addr", "old_len", "new_len", "flags", "new_addr"]),
        },
    ])
}

/// A trace written by `f`, in a temporary directory that lives as long as the path is used.
fn write_trace(f: impl FnOnce(&mut TraceWriter<std::fs::File>, &Ids)) -> (tempfile::TempDir, PathBuf) {
    write_trace_ending(&[], f)
}

/// As `write_trace`, with these End keys.
fn write_trace_ending(
    end: &[(&str, String)],
    f: impl FnOnce(&mut TraceWriter<std::fs::File>, &Ids),
) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.weft");
    let file = std::fs::File::create(&path).unwrap();
    let info = [(info_keys::START_MONOTONIC_NS, T0.to_string())];
    let mut w = TraceWriter::new(file, &info, 1).unwrap();
    w.write_syscall_table(&table()).unwrap();
    let ids = Ids::declare(&mut w);
    f(&mut w, &ids);
    w.finish(end).unwrap();
    (dir, path)
}

fn enter(w: &mut TraceWriter<std::fs::File>, ids: &Ids, ts: u64, tid: u32, nr: u32, args: &[u64]) {
    s::syscall_enter::put(
        w.record(ids.syscall_enter, T0 + ts, Some(0), 100, tid),
        u64::from(nr),
        args,
        &[],
    )
    .finish();
}

fn exit(w: &mut TraceWriter<std::fs::File>, ids: &Ids, ts: u64, tid: u32, nr: u32, ret: i64) {
    s::syscall_exit::put(
        w.record(ids.syscall_exit, T0 + ts, Some(0), 100, tid),
        u64::from(nr),
        ret,
        &[],
    )
    .finish();
}

/// The timeline's lines, read one by one; read again in batches with
/// calls' text left to the reader (as `weft dump` prints them), they must
/// be the same.
fn lines(path: &Path) -> Vec<(u32, String)> {
    let t = Trace::open(path).unwrap();
    let tl = Timeline::new(&t, Filter::new(vec![], vec![], &[], &[]).unwrap());
    let one_by_one: Vec<(u32, String)> = tl.map(|l| (l.tid, l.text)).collect();
    let mut tl = Timeline::new(&t, Filter::new(vec![], vec![], &[], &[]).unwrap());
    let (mut batch, mut batched) = (Vec::new(), Vec::new());
    let mut plans = weft_analysis::CallPlans::default();
    // Batches of 3 end anywhere: before a return, between merged lines.
    while tl.fill_deferred(&mut batch, 3) > 0 {
        for (line, call) in batch.drain(..) {
            let mut text = String::new();
            call.write(&mut text, &t, &mut plans);
            text.push_str(&line.text);
            batched.push((line.tid, text));
        }
    }
    assert_eq!(one_by_one, batched);
    one_by_one
}

#[test]
fn a_call_with_nothing_in_between_is_one_line() {
    let (_d, p) = write_trace(|w, ids| {
        enter(w, ids, 10, 100, WRITE, &[1, 0x1000, 5]);
        exit(w, ids, 20, 100, WRITE, 5);
    });
    let l = lines(&p);
    assert_eq!(l.len(), 1, "{l:?}");
    assert!(l[0].1.starts_with("write(fd=1, "), "{l:?}");
    assert!(l[0].1.contains(") = 5 <0.000000010>"), "{l:?}");
}

#[test]
fn a_short_call_of_another_thread_in_between_waits_behind_the_merged_line() {
    let (_d, p) = write_trace(|w, ids| {
        enter(w, ids, 10, 100, READ, &[0, 0x2000, 64]);
        enter(w, ids, 20, 101, WRITE, &[1, 0x3000, 3]);
        exit(w, ids, 30, 101, WRITE, 3);
        exit(w, ids, 40, 100, READ, -11);
    });
    let l = lines(&p);
    assert_eq!(l.len(), 2, "{l:?}");
    assert_eq!(l[0].0, 100);
    assert!(
        l[0].1.starts_with("read(fd=0, ") && l[0].1.contains(") = -1 EAGAIN"),
        "{l:?}"
    );
    assert_eq!(l[1].0, 101);
    assert!(
        l[1].1.starts_with("write(fd=1, ") && l[1].1.contains(") = 3 <"),
        "{l:?}"
    );
}

#[test]
fn a_call_that_many_lines_pile_up_behind_is_unfinished_then_resumed() {
    let (_d, p) = write_trace(|w, ids| {
        enter(w, ids, 10, 100, READ, &[0, 0x2000, 64]);
        for i in 0..300 {
            enter(w, ids, 20 + 2 * i, 101, WRITE, &[1, 0x3000, 3]);
            exit(w, ids, 21 + 2 * i, 101, WRITE, 3);
        }
        exit(w, ids, 1000, 100, READ, 7);
    });
    let l = lines(&p);
    assert_eq!(l.len(), 302, "{:?}", &l[..3]);
    assert_eq!(l[0].0, 100);
    assert!(
        l[0].1.starts_with("read(fd=0, ") && l[0].1.ends_with("<unfinished ...>"),
        "{:?}",
        l[0]
    );
    assert!(l[1..301].iter().all(|(t, x)| *t == 101 && x.starts_with("write(")));
    assert_eq!(l[301].0, 100);
    assert!(
        l[301].1.starts_with("<... read resumed> = 7 <0.000000990>"),
        "{:?}",
        l[301]
    );
}

#[test]
fn a_call_that_never_returns_stays_unfinished() {
    let (_d, p) = write_trace(|w, ids| {
        enter(w, ids, 10, 100, READ, &[0, 0x2000, 64]);
    });
    let l = lines(&p);
    assert_eq!(l.len(), 1, "{l:?}");
    assert!(l[0].1.ends_with("<unfinished ...>"), "{l:?}");
}

#[test]
fn exits_fatal_signals_and_losses_are_said() {
    let (_d, p) = write_trace(|w, ids| {
        enter(w, ids, 10, 100, EXIT_GROUP, &[7]);
        s::exit::put(w.record(ids.exit, T0 + 20, Some(0), 100, 100), true).finish();
        // Another process dies by SIGSEGV (default action).
        s::signal_deliver::put(
            w.record(ids.signal_deliver, T0 + 30, Some(1), 200, 200),
            11,
            1,
            0,
            0,
            0,
            true,
            0xdead0,
        )
        .finish();
        s::exit::put(w.record(ids.exit, T0 + 40, Some(1), 200, 200), true).finish();
        s::lost::put(w.record(ids.lost, T0 + 50, Some(1), 0, 0), 5).finish();
    });
    let texts: Vec<String> = lines(&p).into_iter().map(|(_, t)| t).collect();
    assert!(texts.iter().any(|t| t == "+++ exited with 7 +++"), "{texts:?}");
    assert!(
        texts
            .iter()
            .any(|t| t == "SIGSEGV code=SEGV_MAPERR addr=0xdead0 handler=SIG_DFL"),
        "{texts:?}"
    );
    assert!(texts.iter().any(|t| t == "+++ killed by SIGSEGV +++"), "{texts:?}");
    assert!(texts.iter().any(|t| t == "*** LOST 5 events on CPU 1 ***"), "{texts:?}");

    let t = Trace::open(&p).unwrap();
    let sum = summarize(&t);
    assert_eq!(sum.lost(), 5);
    assert_eq!(sum.processes[&100].exit.as_deref(), Some("exited with 7"));
    assert_eq!(sum.processes[&200].exit.as_deref(), Some("killed by SIGSEGV"));
    assert_eq!(sum.counts["exit_group"], 1);
}

/// The command's exit_group was lost (a full kernel ring): how it ended
/// comes from the recorder's `waitpid` (End keys `command_exit` and
/// `command_pid`); another process whose exit_group was lost just "exited".
#[test]
fn the_commands_status_stands_where_its_exit_group_was_lost() {
    let end = [
        (weft_format::end_keys::EXIT_STATUS, "exited with 3".to_owned()),
        (weft_format::end_keys::COMMAND_PID, "100".to_owned()),
    ];
    let (_d, p) = write_trace_ending(&end, |w, ids| {
        s::fork::put(w.record(ids.fork, T0 + 5, Some(0), 200, 200), 100, 100).finish();
        s::lost::put(w.record(ids.lost, T0 + 10, Some(0), 0, 0), 2).finish();
        s::exit::put(w.record(ids.exit, T0 + 20, Some(0), 200, 200), true).finish();
        s::exit::put(w.record(ids.exit, T0 + 30, Some(0), 100, 100), true).finish();
    });
    let sum = summarize(&Trace::open(&p).unwrap());
    assert_eq!(sum.processes[&100].exit.as_deref(), Some("exited with 3"));
    assert_eq!(sum.processes[&200].exit.as_deref(), Some("exited"));
}

#[test]
fn identical_stacks_aggregate_and_the_function_table_counts_self_and_total() {
    let (_d, p) = write_trace(|w, ids| {
        // Kernel functions named in the file: 0x1000 outer, 0x2000 inner.
        s::kernel_symbols::put(
            w.record(ids.kernel_symbols, T0, None, 0, 0),
            &[0x1000, 0x2000],
            b"outer\0inner\0",
        )
        .finish();
        let sample = |w: &mut TraceWriter<std::fs::File>, ts: u64, chain: &[u64]| {
            s::sample::put(
                w.record(ids.sample, T0 + ts, Some(0), 100, 100),
                b"cpu-clock",
                chain,
                &[],
                &[0, 0, 0],
                &[],
            )
            .finish();
        };
        // Leaf first: inner called from outer, twice; outer alone once.
        sample(w, 10, &[0x2010, 0x1010]);
        sample(w, 20, &[0x2010, 0x1010]);
        sample(w, 30, &[0x1020]);
    });
    let t = Trace::open(&p).unwrap();
    let prof = profile(
        &t,
        &ProfileOptions::default(),
        weft_symbols::SearchOptions::default(),
        None,
    );
    assert_eq!(prof.samples, 3);
    assert_eq!(
        prof.stacks.iter().map(|s| s.count).max(),
        Some(2),
        "identical stacks not merged"
    );
    let tables = weft_analysis::report::function_tables(&prof, false);
    let rows = &tables[0].by_self;
    let name = |r: &weft_analysis::report::Row| prof.frames[r.frame].label();
    assert_eq!(name(&rows[0]), "inner");
    assert_eq!((rows[0].self_samples, rows[0].total_samples), (2, 2));
    assert_eq!(name(&rows[1]), "outer");
    assert_eq!((rows[1].self_samples, rows[1].total_samples), (1, 3));
}

fn item(arg: u8, kind: u8, flags: u8, bytes: &[u8]) -> Vec<u8> {
    let mut d = Vec::new();
    weft_format::captured::push_item(
        &mut d,
        weft_format::captured::Item {
            arg,
            kind,
            flags,
            index: 0,
            bytes,
        },
    );
    d
}

#[test]
fn captured_buffers_replace_pointers_at_entry_and_at_return() {
    use weft_format::captured::{flag, kind};
    let (_d, p) = write_trace(|w, ids| {
        let data = item(1, kind::BUF_IN, 0, b"hi\n");
        s::syscall_enter::put(
            w.record(ids.syscall_enter, T0 + 10, Some(0), 100, 100),
            u64::from(WRITE),
            &[1, 0x1000, 3],
            &data,
        )
        .finish();
        exit(w, ids, 20, 100, WRITE, 3);
        // A read whose return has many lines before it: resumed, with its data.
        enter(w, ids, 30, 100, READ, &[0, 0x2000, 64]);
        for i in 0..300 {
            enter(w, ids, 40 + 2 * i, 101, WRITE, &[1, 0x3000, 3]);
            exit(w, ids, 41 + 2 * i, 101, WRITE, 3);
        }
        let out = item(1, kind::BUF_OUT, flag::AT_EXIT | flag::TRUNCATED, b"\x7fELF\x02");
        s::syscall_exit::put(
            w.record(ids.syscall_exit, T0 + 1000, Some(0), 100, 100),
            u64::from(READ),
            5,
            &out,
        )
        .finish();
        // Damaged data shows the numbers.
        s::syscall_enter::put(
            w.record(ids.syscall_enter, T0 + 1100, Some(0), 100, 100),
            u64::from(WRITE),
            &[1, 0x4000, 2],
            &[1, 2, 0, 0, 0xff, 0xff, 0, 0],
        )
        .finish();
        exit(w, ids, 1200, 100, WRITE, 2);
    });
    let l = lines(&p);
    assert_eq!(l[0].1, "write(fd=1, buf=\"hi\\n\", count=3) = 3 <0.000000010>", "{l:?}");
    assert!(
        l[1].1.starts_with("read(fd=0, buf=8192, count=64) <unfinished ...>"),
        "{:?}",
        l[1]
    );
    let resumed = &l[302].1;
    assert_eq!(resumed, "<... read resumed> buf=\"\\177ELF\\2\"... = 5 <0.000000970>");
    assert_eq!(l[303].1, "write(fd=1, buf=16384, count=2) = 2 <0.000000100>");
}

/// `weft mem`'s history of an address: an mremap in place covers it with
/// its unmap and its map range, both shown with the whole call; keeping
/// the last 2 changes counts the earlier ones, numbers the kept ones as in
/// the whole history, and their flags still name changes no longer kept.
#[test]
fn address_history_keeps_the_last_changes_with_whole_calls() {
    const A: u64 = 0x7000_0000;
    let (_d, path) = write_trace(|w, ids| {
        enter(w, ids, 10, 1, MMAP, &[0, 8192, 3, 0x22, u64::MAX, 0]);
        exit(w, ids, 11, 1, MMAP, A as i64);
        enter(w, ids, 20, 1, MREMAP, &[A, 8192, 4096, 0, 0]);
        exit(w, ids, 21, 1, MREMAP, A as i64);
        enter(w, ids, 30, 2, MUNMAP, &[A, 4096]);
        exit(w, ids, 31, 2, MUNMAP, 0);
        enter(w, ids, 40, 2, MUNMAP, &[A, 4096]);
        exit(w, ids, 41, 2, MUNMAP, 0);
    });
    let t = Trace::open(&path).unwrap();
    let all = weft_analysis::mem::history(&t, A, &[], 0);
    let calls: Vec<&str> = all.entries.iter().map(|e| e.call.as_str()).collect();
    assert_eq!(all.entries.len(), 5, "{calls:#?}");
    assert_eq!(all.earlier, 0);
    let mremap = "mremap(addr=0x70000000, old_len=8192, new_len=4096, flags=0, new_addr=NULL) = 0x70000000";
    assert_eq!(&calls[1..3], [mremap, mremap], "{calls:#?}");
    assert!(
        all.entries[3].flags[0].starts_with("unmaps memory another thread mapped: #3 "),
        "{:?}",
        all.entries[3].flags
    );
    assert!(
        all.entries[4].flags[0].starts_with("double unmap: the address was already unmapped by #4 "),
        "{:?}",
        all.entries[4].flags
    );
    let last = weft_analysis::mem::history(&t, A, &[], 2);
    assert_eq!(last.earlier, 3);
    let kept: Vec<(usize, &str, &Vec<String>)> =
        last.entries.iter().map(|e| (e.n, e.call.as_str(), &e.flags)).collect();
    let want: Vec<(usize, &str, &Vec<String>)> = all.entries[3..]
        .iter()
        .map(|e| (e.n, e.call.as_str(), &e.flags))
        .collect();
    assert_eq!(kept, want);
}

/// Changes waiting for the next marker on their thread: only the kept ones
/// get it, however many were dropped before it came.
#[test]
fn kept_changes_get_the_marker_after_them() {
    const A: u64 = 0x7000_0000;
    let (_d, path) = write_trace(|w, ids| {
        let marker = w.add_schema(weft_format::Schema::new(
            s::MARKER,
            &[
                ("name", weft_format::FieldType::Str),
                ("value", weft_format::FieldType::I64),
            ],
        ));
        enter(w, ids, 10, 1, MMAP, &[0, 4096, 3, 0x22, u64::MAX, 0]);
        exit(w, ids, 11, 1, MMAP, A as i64);
        for i in 0..6 {
            enter(w, ids, 20 + 10 * i, 2, MUNMAP, &[A, 4096]);
            exit(w, ids, 21 + 10 * i, 2, MUNMAP, 0);
        }
        w.record(marker, T0 + 100, None, 100, 2).bytes(b"done").i64(7).finish();
    });
    let t = Trace::open(&path).unwrap();
    let all = weft_analysis::mem::history(&t, A, &[], 0);
    assert_eq!(all.entries.len(), 7);
    let after = |e: &weft_analysis::mem::Entry| e.marker_after.as_ref().map(|(_, m)| m.clone());
    assert!(all.entries[1..]
        .iter()
        .all(|e| after(e).as_deref() == Some("marker \"done\" = 7")));
    let last = weft_analysis::mem::history(&t, A, &[], 2);
    assert_eq!((last.earlier, last.entries.len()), (5, 2));
    for e in &last.entries {
        assert_eq!(after(e).as_deref(), Some("marker \"done\" = 7"), "#{}", e.n);
    }
}

/// A process forked by a forked child that never named itself has the
/// name of the process that named itself last up the chain, as the
/// timeline shows it.
#[test]
fn a_fork_of_a_fork_keeps_the_name() {
    let (_d, p) = write_trace(|w, ids| {
        s::comm::put(w.record(ids.comm, T0 + 1, Some(0), 100, 100), b"bash", true).finish();
        s::fork::put(w.record(ids.fork, T0 + 5, Some(0), 200, 200), 100, 100).finish();
        s::fork::put(w.record(ids.fork, T0 + 6, Some(0), 300, 300), 200, 200).finish();
    });
    let sum = summarize(&Trace::open(&p).unwrap());
    let names: Vec<&str> = [100, 200, 300].iter().map(|p| sum.processes[p].comm.as_str()).collect();
    assert_eq!(names, ["bash", "bash", "bash"]);
}

/// A SIGTERM sent to one thread of a two-thread process kills it through a
/// SIGKILL to each thread, in either order: the process was killed by
/// SIGTERM, in the timeline and in the summary.
#[test]
fn killed_by_the_signal_sent_whichever_thread_dies_last() {
    for order in [[201u32, 200], [200, 201]] {
        let (_d, p) = write_trace(|w, ids| {
            s::signal_generate::put(
                w.record(ids.signal_generate, T0 + 10, Some(0), 300, 300),
                15,
                0,
                0,
                201,
                b"worker",
                false,
                0,
            )
            .finish();
            for (i, tid) in order.iter().enumerate() {
                s::signal_deliver::put(
                    w.record(ids.signal_deliver, T0 + 20 + i as u64, Some(0), 200, *tid),
                    9,
                    0,
                    0,
                    0,
                    0,
                    false,
                    0,
                )
                .finish();
            }
            s::exit::put(w.record(ids.exit, T0 + 30, Some(0), 200, 201), false).finish();
            s::exit::put(w.record(ids.exit, T0 + 31, Some(0), 200, 200), true).finish();
        });
        let texts: Vec<String> = lines(&p).into_iter().map(|(_, t)| t).collect();
        assert!(
            texts.iter().any(|t| t == "+++ killed by SIGTERM +++"),
            "{order:?}: {texts:#?}"
        );
        let sum = summarize(&Trace::open(&p).unwrap());
        assert_eq!(
            sum.processes[&200].exit.as_deref(),
            Some("killed by SIGTERM"),
            "{order:?}"
        );
    }
}
