//! `weft record --live`: the timeline printed while the trace is written,
//! by a thread that follows the file as `weft dump` would read it. It
//! never holds the recorder up: it only reads what the recorder has
//! written; when the terminal cannot keep up it drops lines and counts
//! them (they are all in the trace).

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use weft_analysis::{secs, Carry, Filter, Timeline};

use crate::dump::Shown;
use weft_format::{info_keys, Trace};

/// How often the file is read again.
const POLL: Duration = Duration::from_millis(100);
/// Lines printed per reading at most; the rest of a reading is dropped.
const MAX_LINES: usize = 20_000;
/// How long the end of a recording waits for the last lines to be printed:
/// an output nobody reads (a full pipe) must not keep weft from exiting.
const LAST_LINES: Duration = Duration::from_secs(3);

pub struct LiveView {
    stop: Arc<AtomicBool>,
    done: Option<mpsc::Receiver<u64>>,
}

impl LiveView {
    /// Follows `trace` (being written) and prints to `out`.
    pub fn start(trace: PathBuf, mut out: Box<dyn Write + Send>) -> LiveView {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (tx, rx) = mpsc::channel();
        let started = std::thread::Builder::new()
            .name("weft-live".into())
            .spawn(move || {
                let _ = tx.send(follow(&trace, &mut *out, &flag));
            })
            .is_ok();
        LiveView {
            stop,
            done: started.then_some(rx),
        }
    }

    /// After the recording ended: prints what is left and returns the
    /// lines dropped, or None when the output stayed blocked (the thread
    /// is left behind; the process exits without it).
    pub fn finish(mut self) -> Option<u64> {
        self.stop.store(true, Ordering::Release);
        self.done.take().map_or(Some(0), |rx| rx.recv_timeout(LAST_LINES).ok())
    }
}

fn follow(path: &std::path::Path, out: &mut dyn Write, stop: &AtomicBool) -> u64 {
    let Ok(filter) = Filter::new(Vec::new(), Vec::new(), &[], &[]) else {
        return 0;
    };
    let mut carry = Some(Carry::new(filter, false));
    let (mut next, mut base, mut dropped) = (0u64, None::<u64>, 0u64);
    loop {
        // Read once more after the recording stopped: its last chunks.
        let last = stop.load(Ordering::Acquire);
        if !last {
            std::thread::sleep(POLL);
        }
        let Ok(trace) = Trace::open(path) else {
            if last {
                break;
            }
            continue;
        };
        if base.is_none() {
            base = trace.info(info_keys::START_MONOTONIC_NS).and_then(|s| s.parse().ok());
        }
        let chunks: Vec<_> = trace.event_chunks().filter(|c| c.offset >= next).copied().collect();
        let mut records = Vec::new();
        for c in &chunks {
            records.extend(trace.decode_events(c).0);
            next = next.max(c.end());
        }
        records.sort_by_key(|r| r.ts);
        let Some(c) = carry.take() else { break };
        let mut tl = Timeline::live(&trace, c);
        for r in records {
            tl.feed(r);
        }
        let lines = tl.take_lines(true);
        carry = Some(tl.carry());
        let b = *base.get_or_insert_with(|| lines.first().map_or(0, |l| l.ts));
        let shown = lines.len().min(MAX_LINES);
        for l in &lines[..shown] {
            let line = format!("{}\n", Shown(&secs(l.ts.saturating_sub(b)), l));
            if out.write_all(line.as_bytes()).is_err() {
                // The output went away (a closed pipe): stop printing, the
                // recording goes on.
                return dropped;
            }
        }
        if lines.len() > shown {
            let n = (lines.len() - shown) as u64;
            dropped += n;
            let _ = writeln!(
                out,
                "weft: live: {n} lines dropped here (more than {MAX_LINES} in {} ms: too many events, or a slow output); all of them are in the trace",
                POLL.as_millis()
            );
        }
        let _ = out.flush();
        if last {
            break;
        }
    }
    dropped
}
