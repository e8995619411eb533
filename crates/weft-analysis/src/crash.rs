//! Crash reports: each delivery of SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE
//! or SIGTRAP to a traced thread, with what the process's threads did just
//! before, and what came of it: the process killed, or the signal handled
//! and the thread going on (or ending) somewhere. Built on the timeline.

use std::collections::{HashMap, VecDeque};

use weft_format::Trace;

use crate::timeline::{Filter, Line, Timeline};

const CRASH_SIGNALS: [&str; 6] = ["SIGSEGV", "SIGBUS", "SIGABRT", "SIGILL", "SIGFPE", "SIGTRAP"];

/// What came of a delivered crash signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The default action ran: the process died (the timeline's exit line).
    Killed(String),
    /// A handler ran and the thread went on: its first event after the
    /// handler returned (past `rt_sigreturn`, which shows where a handler
    /// that rewrote its context sent it), else its next event.
    Continued(Line),
    /// A handler ran and the thread (or process) then ended: its exit line.
    HandledThenEnded(Line),
    /// The recording ended before anything else of the thread was seen.
    Unknown,
}

#[derive(Debug, Clone)]
pub struct Crash {
    /// The delivery, as the timeline prints it (`SIGSEGV code=SEGV_MAPERR addr=0x10 handler=SIG_DFL`).
    pub delivery: Line,
    pub signal: String,
    pub code: String,
    /// The fault address (si_addr), when recorded.
    pub addr: Option<u64>,
    /// SIG_DFL, SIG_IGN or the handler's address.
    pub handler: String,
    /// The last events of each thread of the process before the delivery,
    /// oldest first, the delivering thread first.
    pub before: Vec<(u32, Vec<Line>)>,
    pub outcome: Outcome,
}

/// Every crash signal delivered to the processes of `pids` (all when
/// empty), with the `last` events of each of their threads before it.
pub fn crashes(trace: &Trace, pids: &[u32], last: usize) -> Vec<Crash> {
    let filter = Filter::new(pids.to_vec(), Vec::new(), &[], &[]).unwrap_or_default();
    let mut tl = Timeline::new(trace, filter);
    // pid -> tid -> its last lines.
    let mut recent: HashMap<u32, HashMap<u32, VecDeque<Line>>> = HashMap::new();
    let mut out: Vec<Crash> = Vec::new();
    // tid -> index of a crash waiting for that thread's next line, and
    // the handler's rt_sigreturn when it was seen.
    let mut waiting: HashMap<u32, (usize, Option<Line>)> = HashMap::new();
    for line in tl.by_ref() {
        if let Some((i, returned)) = waiting.remove(&line.tid) {
            if returned.is_none() && line.text.starts_with("rt_sigreturn(") {
                // The next line is where the thread went.
                waiting.insert(line.tid, (i, Some(line.clone())));
            } else {
                out[i].outcome = match (&*line.event, line.text.starts_with("+++ killed by")) {
                    ("exit", true) => Outcome::Killed(line.text.clone()),
                    ("exit", false) => Outcome::HandledThenEnded(line.clone()),
                    _ => Outcome::Continued(line.clone()),
                };
            }
        }
        if &*line.event == "signal_deliver" {
            let mut words = line.text.split_whitespace();
            let signal = words.next().unwrap_or("").to_owned();
            if CRASH_SIGNALS.contains(&signal.as_str()) {
                let field = |k: &str| {
                    line.text
                        .split_whitespace()
                        .find_map(|w| w.strip_prefix(k))
                        .unwrap_or("")
                        .to_owned()
                };
                let threads = recent.get(&line.pid);
                let mut before: Vec<(u32, Vec<Line>)> = threads
                    .map(|t| t.iter().map(|(&tid, l)| (tid, l.iter().cloned().collect())).collect())
                    .unwrap_or_default();
                before.sort_by_key(|(tid, _)| (*tid != line.tid, *tid));
                let handler = field("handler=");
                // The default action of these signals ends the process.
                let outcome = if handler == "SIG_DFL" {
                    Outcome::Killed(format!("killed by {signal} (no handler)"))
                } else {
                    waiting.insert(line.tid, (out.len(), None));
                    Outcome::Unknown
                };
                out.push(Crash {
                    delivery: line.clone(),
                    signal,
                    code: field("code="),
                    addr: u64::from_str_radix(field("addr=").trim_start_matches("0x"), 16).ok(),
                    handler,
                    before,
                    outcome,
                });
                continue;
            }
        }
        // Raw stacks are shown symbolized, not as records.
        if line.event.starts_with("kernel:sample") {
            continue;
        }
        let q = recent.entry(line.pid).or_default().entry(line.tid).or_default();
        if q.len() == last {
            q.pop_front();
        }
        if last > 0 {
            q.push_back(line);
        }
    }
    // Returned from the handler, then nothing more was recorded.
    for (_, (i, returned)) in waiting {
        if let Some(l) = returned {
            out[i].outcome = Outcome::Continued(l);
        }
    }
    out
}
