//! The merged timeline `weft dump` prints: one line per event in timestamp
//! order, a syscall's entry and return joined into one line as strace does.

use std::borrow::Cow;
use std::collections::VecDeque;

use ahash::AHashMap as HashMap;
use std::fmt::Write;
use std::sync::Arc;

use globset::{Glob, GlobSet, GlobSetBuilder};
use weft_format::{std_schemas as s, FieldRef, FormatError, Record, RecordView, Schema, Trace, Value, Views};

use crate::args::{
    format_arg_values, format_arg_values_with, write_call_args, write_planned_call_args, write_return, CallPlans,
};
use crate::fds::{is_fd_arg, Call, FdTables};
use crate::kinds::{fault_addr, ExitState, Kind, Kinds};
use crate::names::{si_code_name, signal_name};

/// How many lines may wait behind an unfinished syscall before it is
/// printed as `<unfinished ...>` and its return later as `<... resumed>`.
const MAX_HELD: usize = 256;

/// Texts kept for reuse (`Timeline::recycle`).
const MAX_SPARE: usize = 128 * 1024;

/// Which lines to show. Empty lists match everything.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub pids: Vec<u32>,
    pub tids: Vec<u32>,
    events: Option<GlobSet>,
    comms: Option<GlobSet>,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid pattern `{pattern}`: {reason}")]
pub struct PatternError {
    pub pattern: String,
    pub reason: String,
}

fn globset(patterns: &[String]) -> Result<Option<GlobSet>, PatternError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for p in patterns
        .iter()
        .flat_map(|p| p.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        b.add(Glob::new(p).map_err(|e| PatternError {
            pattern: p.into(),
            reason: e.to_string(),
        })?);
    }
    b.build().map(Some).map_err(|e| PatternError {
        pattern: patterns.join(","),
        reason: e.to_string(),
    })
}

impl Filter {
    pub fn new(pids: Vec<u32>, tids: Vec<u32>, events: &[String], comms: &[String]) -> Result<Filter, PatternError> {
        Ok(Filter {
            pids,
            tids,
            events: globset(events)?,
            comms: globset(comms)?,
        })
    }

    fn matches(&self, pid: u32, tid: u32, comm: &str, event: &str) -> bool {
        (self.pids.is_empty() || self.pids.contains(&pid))
            && (self.tids.is_empty() || self.tids.contains(&tid))
            && self.events.as_ref().is_none_or(|g| g.is_match(event))
            && self.comms.as_ref().is_none_or(|g| g.is_match(comm))
    }
}

/// One printed event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub ts: u64,
    pub pid: u32,
    pub tid: u32,
    /// Shared by the lines of one thread name.
    pub comm: Arc<str>,
    /// Syscall name or event name (`fork`, `exec`, `signal_deliver`, ...),
    /// shared by the lines of one event.
    pub event: Arc<str>,
    pub text: String,
}

enum State {
    Done,
    /// Waiting for its return.
    Open {
        nr: u32,
        enter_ts: u64,
    },
    /// Printed as unfinished; the return prints as resumed.
    Split,
}

struct Slot {
    line: Line,
    state: State,
    /// A call whose `name(arguments)` is left to whoever prints the line
    /// (`Timeline::fill_deferred`); the line's text is then what follows.
    call: Deferred,
}

/// A syscall line's `name(arguments)`, not yet written: its number and
/// arguments. Printing turns it into text (`Deferred::write`), on another
/// thread than the timeline's when that is the bottleneck.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deferred {
    nr: u32,
    len: u8,
    args: [u64; 6],
}

impl Deferred {
    /// None: the line's text is all of it.
    pub const NONE: Deferred = Deferred {
        nr: u32::MAX,
        len: 0,
        args: [0; 6],
    };

    pub fn is_none(&self) -> bool {
        self.nr == u32::MAX
    }

    /// Appends `name(arguments)` to `out`, as the line would have begun.
    pub fn write(&self, out: &mut String, trace: &Trace, plans: &mut CallPlans) {
        if self.is_none() {
            return;
        }
        let Some((entry, plan)) = plans.get(trace, self.nr) else {
            return;
        };
        out.push_str(&entry.name);
        out.push('(');
        write_planned_call_args(out, entry, plan, &self.args[..usize::from(self.len)], &[], &[]);
        out.push(')');
    }
}

/// When and where a record happened.
#[derive(Clone, Copy)]
struct At {
    ts: u64,
    pid: u32,
    tid: u32,
}

impl At {
    fn of(r: &Record) -> At {
        At {
            ts: r.ts,
            pid: r.pid,
            tid: r.tid,
        }
    }
}

/// A thread's syscall between its entry and its return.
#[derive(Default)]
struct InFlight {
    nr: u32,
    args: Vec<u64>,
    data: Vec<u8>,
    /// False once its return was seen (the entry is kept for its vectors).
    open: bool,
    /// Sequence number of its line while the line waits for the return.
    slot: Option<u64>,
    /// Number and entry time of a call printed as unfinished, whose
    /// return prints as resumed.
    split: Option<(u32, u64)>,
}

/// Iterator of timeline lines; see `problems` for damage met on the way.
pub struct Timeline<'t> {
    trace: &'t Trace,
    /// None: a live timeline, fed by `feed`.
    views: Option<Views<'t>>,
    /// A syscall's arguments, read out of a view.
    args: Vec<u64>,
    /// Syscall names by number, as `syscall_event` hands them out.
    syscall_events: Vec<Option<Arc<str>>>,
    /// The last generic event's schema id and shared name.
    last_event: Option<(u32, Arc<str>)>,
    kinds: Kinds,
    /// Everything a live timeline carries from one reading to the next.
    st: Carry,
    /// How many slots at the front of the queue are finished lines, ready
    /// to be handed out (they stay in place: moving them cost a copy each).
    settled: usize,
    finished: bool,
    /// The schema of the last event of another kind (runs of one are common).
    last_schema: Option<&'t Schema>,
    /// Texts of lines given back (`recycle`), reused for new lines.
    spare: Vec<String>,
    /// How each syscall's arguments are shown, by number (made on first use).
    plans: CallPlans,
    /// A return's text, kept for its memory.
    result: String,
    /// The last thread's name looked up (lines come in runs of one thread).
    last_comm: Option<(u32, Arc<str>)>,
    /// Whether calls' `name(arguments)` may be left to the printer.
    defer: bool,
    pub problems: Vec<FormatError>,
}

/// What a live timeline carries from one reading of a trace that is
/// still being written to the next (`Timeline::live`, `Timeline::carry`).
pub struct Carry {
    filter: Filter,
    queue: VecDeque<Slot>,
    /// Sequence number of the queue's front slot.
    front_seq: u64,
    /// tid -> its syscall in progress: its line, and its arguments and
    /// captured data, to show what the call wrote when it returns. Entries
    /// stay until the thread exits, so their vectors are reused call after
    /// call (and one lookup a line finds all of it).
    calls: HashMap<u32, InFlight>,
    /// Event names, one allocation each however many lines show them.
    names: ahash::AHashSet<Arc<str>>,
    /// Descriptor names, for `fd_paths`.
    fds: FdTables,
    fd_paths: bool,
    comms: HashMap<u32, Arc<str>>,
    exits: std::collections::HashMap<u32, ExitState>,
    deaths: crate::kinds::Deaths,
    spans: HashMap<(u32, u64), u64>,
    /// Time of the last record read (where damage met next is placed).
    last_ts: u64,
}

impl Carry {
    pub fn new(filter: Filter, fd_paths: bool) -> Carry {
        Carry {
            filter,
            queue: VecDeque::new(),
            front_seq: 0,
            calls: HashMap::new(),
            names: ahash::AHashSet::new(),
            fds: FdTables::default(),
            fd_paths,
            comms: HashMap::new(),
            exits: std::collections::HashMap::new(),
            deaths: Default::default(),
            spans: HashMap::new(),
            last_ts: 0,
        }
    }
}

impl<'t> Timeline<'t> {
    pub fn new(trace: &'t Trace, filter: Filter) -> Self {
        let mut t = Self::live(trace, Carry::new(filter, false));
        t.views = Some(trace.views());
        t
    }

    /// A timeline of a trace still being written: the caller `feed`s the
    /// records of the chunks written since its last reading, takes the
    /// lines with `take_lines`, and `carry`s the state to the next reading
    /// (a new `Trace` of the grown file).
    pub fn live(trace: &'t Trace, c: Carry) -> Self {
        Timeline {
            trace,
            views: None,
            args: Vec::new(),
            syscall_events: Vec::new(),
            last_event: None,
            kinds: Kinds::of(trace),
            st: c,
            settled: 0,
            finished: false,
            last_schema: None,
            spare: Vec::new(),
            plans: CallPlans::default(),
            result: String::new(),
            last_comm: None,
            defer: false,
            problems: Vec::new(),
        }
    }

    /// The state to go on with at the next reading (lines not taken are kept).
    pub fn carry(self) -> Carry {
        // Lines ready but not taken stay at the front of the queue, done.
        self.st
    }

    /// Adds one record of a live timeline.
    pub fn feed(&mut self, r: Record) {
        self.st.last_ts = r.ts;
        self.handle(r);
        self.settle(false);
    }

    /// The lines ready so far. With `cut`, a call still in progress is
    /// printed now as `<unfinished ...>` (its return as `resumed`), so
    /// that no line waits for it.
    pub fn take_lines(&mut self, cut: bool) -> Vec<Line> {
        if cut {
            self.settle(true);
        }
        let n = std::mem::take(&mut self.settled);
        self.st.front_seq += n as u64;
        let (trace, plans) = (self.trace, &mut self.plans);
        self.st.queue.drain(..n).map(|s| whole(s, trace, plans)).collect()
    }

    /// Moves up to `max` next lines into `out` at once (as many calls of
    /// `next` would, with less copying); returns how many, 0 at the end.
    pub fn fill(&mut self, out: &mut Vec<Line>, max: usize) -> usize {
        let n = self.settle_up_to(max);
        let (trace, plans) = (self.trace, &mut self.plans);
        out.reserve(n);
        out.extend(self.st.queue.drain(..n).map(|s| whole(s, trace, plans)));
        n
    }

    /// As `fill`, but from then on a syscall line's `name(arguments)` may
    /// be left out of its text, to be written by the caller before it
    /// (`Deferred::write`): a dump does that on its printing thread.
    pub fn fill_deferred(&mut self, out: &mut Vec<(Line, Deferred)>, max: usize) -> usize {
        self.defer = true;
        let n = self.settle_up_to(max);
        out.reserve(n);
        out.extend(self.st.queue.drain(..n).map(|s| (s.line, s.call)));
        n
    }

    /// Reads until `max` lines are ready (or the end), and takes them off
    /// the count of ready lines: the caller drains that many slots.
    fn settle_up_to(&mut self, max: usize) -> usize {
        if let Some(mut views) = self.views.take() {
            while self.settled < max && !self.finished {
                self.step(&mut views);
            }
            self.views = Some(views);
        }
        let n = self.settled.min(max);
        self.settled -= n;
        self.st.front_seq += n as u64;
        n
    }

    /// Takes back lines already shown: their texts' memory is reused for
    /// later lines (a dump makes millions, most of one size).
    pub fn recycle(&mut self, lines: impl IntoIterator<Item = Line>) {
        for line in lines {
            if self.spare.len() < MAX_SPARE {
                let mut text = line.text;
                text.clear();
                self.spare.push(text);
            }
        }
    }

    /// An empty string for a line's text.
    fn new_text(&mut self) -> String {
        self.spare.pop().unwrap_or_else(|| String::with_capacity(128))
    }

    /// Shows what each file descriptor is, as strace -y does:
    /// `read(fd=3</etc/passwd>, ...)`.
    pub fn fd_paths(mut self, on: bool) -> Self {
        self.st.fd_paths = on;
        self
    }

    /// `name(arg=value, ...)`, with captured data and, with `fd_paths`,
    /// descriptor names.
    /// `text` is an empty string to write it into.
    fn call_text(&self, mut text: String, pid: u32, nr: u32, args: &[u64], enter: &[u8], exit: &[u8]) -> String {
        let name = self.syscall_name(nr);
        let entry = self.trace.syscalls.get(nr);
        if !self.st.fd_paths {
            text.push_str(&name);
            text.push('(');
            match (entry, self.plans.made(nr)) {
                (Some(e), Some(plan)) => write_planned_call_args(&mut text, e, plan, args, enter, exit),
                _ => write_call_args(&mut text, entry, args, enter, exit),
            }
            text.push(')');
            return text;
        }
        let parts: Vec<String> = format_arg_values_with(entry, args, enter, exit)
            .into_iter()
            .map(|(n, v)| {
                let fd_name = (!n.is_empty() && is_fd_arg(&name, &n))
                    .then(|| v.parse::<i64>().ok())
                    .flatten()
                    .and_then(|fd| self.st.fds.name(pid, fd));
                let v = match fd_name {
                    Some(f) => format!("{v}<{f}>"),
                    None => v,
                };
                if n.is_empty() {
                    v
                } else {
                    format!("{n}={v}")
                }
            })
            .collect();
        format!("{name}({})", parts.join(", "))
    }

    /// Borrowed from the trace's table (a name is looked up twice a call).
    fn syscall_name(&self, nr: u32) -> Cow<'t, str> {
        match self.trace.syscalls.get(nr) {
            Some(e) => Cow::Borrowed(e.name.as_str()),
            None => Cow::Owned(format!("syscall_{nr}")),
        }
    }

    fn comm(&mut self, tid: u32) -> Arc<str> {
        match &self.last_comm {
            Some((t, c)) if *t == tid => c.clone(),
            _ => {
                let c = self.st.comms.get(&tid).cloned().unwrap_or_else(|| Arc::from(""));
                self.last_comm = Some((tid, c.clone()));
                c
            }
        }
    }

    fn push(&mut self, r: At, event: &str, text: String, state: State) {
        let event = intern(&mut self.st.names, event);
        self.push_named(r, event, text, state);
    }

    /// The name of syscall `nr` as lines share it.
    fn syscall_event(&mut self, nr: u32) -> Arc<str> {
        if let Some(Some(e)) = self.syscall_events.get(nr as usize) {
            return e.clone();
        }
        let name = self.syscall_name(nr);
        let e = intern(&mut self.st.names, &name);
        // Only for numbers a syscall table can hold: others come from damage.
        if nr < 4096 {
            let i = nr as usize;
            if self.syscall_events.len() <= i {
                self.syscall_events.resize(i + 1, None);
            }
            self.syscall_events[i] = Some(e.clone());
        }
        e
    }

    fn push_named(&mut self, r: At, event: Arc<str>, text: String, state: State) {
        if let Some(comm) = self.shown(r, &event) {
            self.push_line(r, comm, event, text, state);
        }
    }

    /// The thread's name, if the filter shows this event of it.
    fn shown(&mut self, r: At, event: &str) -> Option<Arc<str>> {
        let comm = self.comm(r.tid);
        let keep = event == "lost" || self.st.filter.matches(r.pid, r.tid, &comm, event);
        keep.then_some(comm)
    }

    /// Sequence number the next line pushed gets.
    fn next_seq(&self) -> u64 {
        self.st.front_seq + self.st.queue.len() as u64
    }

    fn push_line(&mut self, r: At, comm: Arc<str>, event: Arc<str>, text: String, state: State) {
        self.push_call(r, comm, event, text, state, Deferred::NONE);
    }

    fn push_call(&mut self, r: At, comm: Arc<str>, event: Arc<str>, text: String, state: State, call: Deferred) {
        self.st.queue.push_back(Slot {
            call,
            line: Line {
                ts: r.ts,
                pid: r.pid,
                tid: r.tid,
                comm,
                event,
                text,
            },
            state,
        });
    }

    fn slot_mut(&mut self, seq: u64) -> Option<&mut Slot> {
        let i = seq.checked_sub(self.st.front_seq)? as usize;
        self.st.queue.get_mut(i)
    }

    /// The syscall number `tid` is inside of, if any.
    fn open_nr(&mut self, tid: u32) -> Option<u32> {
        let call = self.st.calls.get(&tid)?;
        let split = call.split;
        if let Some(seq) = call.slot {
            if let Some(Slot {
                state: State::Open { nr, .. },
                ..
            }) = self.slot_mut(seq)
            {
                return Some(*nr);
            }
        }
        split.map(|(nr, _)| nr)
    }

    /// Marks the open syscall of `tid` (if any) as never returning.
    fn abandon(&mut self, tid: u32) {
        let Some(call) = self.st.calls.get_mut(&tid) else {
            return;
        };
        call.split = None;
        if let Some(seq) = call.slot.take() {
            self.unfinished(seq);
        }
    }

    /// Ends the line `seq` (if still queued) as a call that never returned.
    fn unfinished(&mut self, seq: u64) {
        if let Some(slot) = self.slot_mut(seq) {
            slot.line.text.push_str(" <unfinished ...>");
            slot.state = State::Done;
        }
    }

    /// A syscall's entry: its line waits for the return.
    fn enter(&mut self, at: At, nr: u32, args: &[u64], data: &[u8]) {
        let name = self.syscall_name(nr);
        // Made once per syscall number, used below and by `call_text`.
        let planned = self.plans.made(nr).is_some() || self.plans.get(self.trace, nr).is_some();
        let ends = name == "exit_group" || name == "exit";
        let text = self.new_text();
        // The printer writes `name(arguments)` where nothing else needs
        // them first: no captured data, no descriptor names.
        let deferred = match args.len() {
            n @ 0..=6 if self.defer && !ends && !self.st.fd_paths && data.is_empty() && planned => {
                let mut d = Deferred {
                    nr,
                    len: n as u8,
                    args: [0; 6],
                };
                d.args[..n].copy_from_slice(args);
                d
            }
            _ => Deferred::NONE,
        };
        let text = if deferred.is_none() {
            self.call_text(text, at.pid, nr, args, data, &[])
        } else {
            text
        };
        let code = args.first().map_or(0, |&c| (c & 0xff) as i64);
        let event = self.syscall_event(nr);
        let comm = self.shown(at, &event);
        let seq = self.next_seq();
        let call = self.st.calls.entry(at.tid).or_default();
        call.nr = nr;
        call.open = true;
        call.args.clear();
        call.args.extend_from_slice(args);
        call.data.clear();
        call.data.extend_from_slice(data);
        // A thread has one syscall in flight; an older open one lost its return.
        call.split = None;
        let older = std::mem::replace(&mut call.slot, comm.as_ref().filter(|_| !ends).map(|_| seq));
        if let Some(older) = older {
            self.unfinished(older);
        }
        if ends {
            if name == "exit_group" || !self.st.exits.contains_key(&at.pid) {
                self.st.exits.entry(at.pid).or_default().code = Some(code);
            }
            if let Some(comm) = comm {
                self.push_line(at, comm, event, format!("{text} = ?"), State::Done);
            }
        } else if let Some(comm) = comm {
            self.push_call(at, comm, event, text, State::Open { nr, enter_ts: at.ts }, deferred);
        }
    }

    /// A syscall's return: completes the line of its entry, or prints as
    /// resumed.
    fn exit(&mut self, at: At, nr: u32, ret: i64, exit_data: &[u8]) {
        let mut nr = nr;
        if nr == u32::MAX {
            // After rt_sigreturn the kernel reports the restored (-1) number.
            nr = self.open_nr(at.tid).unwrap_or(nr);
        }
        let name = self.syscall_name(nr);
        let mut result = std::mem::take(&mut self.result);
        result.clear();
        write_return(&mut result, &name, ret);
        // A return ends the call in flight, whichever it was.
        let (matched, slot) = match self.st.calls.get_mut(&at.tid) {
            Some(c) => {
                let same = c.open && c.nr == nr;
                c.open = false;
                (same, c.slot.take())
            }
            None => (false, None),
        };
        // Its entry is needed only to name a descriptor or show what it wrote.
        let call = match self.st.calls.get(&at.tid) {
            Some(c) if matched && (self.st.fd_paths || !exit_data.is_empty()) => Some((&c.args[..], &c.data[..])),
            _ => None,
        };
        // Descriptor names are kept only when they are shown (-y).
        if let Some((args, enter)) = call.filter(|_| self.st.fd_paths) {
            let c = Call {
                entry: self.trace.syscalls.get(nr),
                args,
                enter,
                exit: exit_data,
                ret,
            };
            let fd = self.st.fds.returned(at.pid, &name, &c);
            if let Some(f) = fd.and_then(|fd| self.st.fds.name(at.pid, fd)) {
                let _ = write!(result, "<{f}>");
            }
        }
        // What the call wrote (read's buffer, stat's struct): the
        // arguments again, with it in place of the pointers.
        let rewritten = match (call, exit_data.is_empty()) {
            (Some((args, enter)), false) => {
                let entry = self.trace.syscalls.get(nr);
                let all = self.call_text(String::new(), at.pid, nr, args, enter, exit_data);
                let outputs: Vec<String> = format_arg_values_with(entry, args, &[], exit_data)
                    .into_iter()
                    .zip(format_arg_values(entry, args))
                    .filter(|(with, without)| with != without)
                    .map(|((n, v), _)| if n.is_empty() { v } else { format!("{n}={v}") })
                    .collect();
                Some((all, outputs.join(", ")))
            }
            _ => None,
        };
        if let Some(seq) = slot {
            let i = seq.checked_sub(self.st.front_seq).map_or(usize::MAX, |i| i as usize);
            if let Some(slot) = self.st.queue.get_mut(i) {
                if let State::Open { nr: snr, enter_ts } = slot.state {
                    if snr == nr {
                        if let Some((text, _)) = &rewritten {
                            slot.line.text.clone_from(text);
                            slot.call = Deferred::NONE;
                        }
                        let text = &mut slot.line.text;
                        text.push_str(" = ");
                        text.push_str(&result);
                        text.push_str(" <");
                        write_secs(text, at.ts.saturating_sub(enter_ts));
                        text.push('>');
                        slot.state = State::Done;
                        self.result = result;
                        return;
                    }
                }
            }
            // Another call's line: it stays open.
            if let Some(c) = self.st.calls.get_mut(&at.tid) {
                c.slot = Some(seq);
            }
        }
        let outputs = match rewritten {
            Some((_, o)) if !o.is_empty() => format!(" {o}"),
            _ => String::new(),
        };
        let split = self.st.calls.get_mut(&at.tid).and_then(|c| c.split.take());
        let text = match split {
            Some((snr, enter_ts)) if snr == nr => {
                format!(
                    "<... {name} resumed>{outputs} = {result} <{}>",
                    secs(at.ts.saturating_sub(enter_ts))
                )
            }
            _ => format!("<... {name} resumed>{outputs} = {result}"),
        };
        self.result = result;
        let event = self.syscall_event(nr);
        self.push_named(at, event, text, State::Done);
    }

    fn handle(&mut self, r: Record) {
        let kind = self.kinds.kind(&r);
        match kind {
            Kind::SyscallEnter => self.enter(
                At::of(&r),
                r.u64(s::syscall_enter::NR) as u32,
                r.u64s(s::syscall_enter::ARGS),
                r.bytes(s::syscall_enter::DATA),
            ),
            Kind::SyscallExit => self.exit(
                At::of(&r),
                r.u64(s::syscall_exit::NR) as u32,
                r.i64(s::syscall_exit::RET),
                r.bytes(s::syscall_exit::DATA),
            ),
            Kind::Comm => {
                let comm: Arc<str> = Arc::from(r.str(s::comm::COMM));
                let exec = matches!(r.fields.get(s::comm::EXEC), Some(Value::Bool(true)));
                let changed = self.st.comms.get(&r.tid) != Some(&comm);
                self.st.comms.insert(r.tid, comm.clone());
                self.last_comm = None;
                if !exec && changed {
                    self.push(At::of(&r), "comm", format!("thread name \"{comm}\""), State::Done);
                }
            }
            Kind::Fork => {
                let ppid = r.u64(s::fork::PARENT_PID) as u32;
                let ptid = r.u64(s::fork::PARENT_TID) as u32;
                let c = self.comm(ptid);
                self.st.comms.insert(r.tid, c);
                self.last_comm = None;
                if ppid != r.pid {
                    self.st.fds.fork(ppid, r.pid);
                }
                let text = if ppid == r.pid {
                    format!("new thread (created by {ppid}/{ptid})")
                } else {
                    format!("new process (forked by {ppid}/{ptid})")
                };
                self.push(At::of(&r), "fork", text, State::Done);
            }
            Kind::Exec => {
                self.st.exits.remove(&r.pid);
                self.st.fds.exec(r.pid);
                let f = r.str(s::exec::FILENAME).to_owned();
                self.push(At::of(&r), "exec", format!("exec \"{f}\""), State::Done);
            }
            Kind::Exit => {
                self.abandon(r.tid);
                self.st.calls.remove(&r.tid);
                let group_dead = matches!(r.fields.get(s::exit::GROUP_DEAD), Some(Value::Bool(true)));
                let text = if group_dead {
                    self.st.fds.exit(r.pid);
                    let st = self.st.exits.remove(&r.pid).unwrap_or_default();
                    format!("+++ {} +++", crate::kinds::end_of(self.trace, r.pid, st))
                } else {
                    "+++ thread exited +++".to_owned()
                };
                self.push(At::of(&r), "exit", text, State::Done);
            }
            Kind::SignalGenerate => {
                use s::signal_generate as g;
                let sig = r.i64(g::SIG);
                self.st
                    .deaths
                    .generated(r.i64(g::TARGET_PID) as u32, sig, r.i64(g::RESULT));
                let result = match r.i64(g::RESULT) {
                    0 => "delivered",
                    1 => "ignored",
                    2 => "already pending",
                    3 => "queue full",
                    4 => "lost info",
                    _ => "?",
                };
                let text = format!(
                    "{} code={} to {} ({}){} {result}",
                    signal_name(sig),
                    si_code_name(sig, r.i64(g::CODE)),
                    r.i64(g::TARGET_PID),
                    r.str(g::TARGET_COMM),
                    if matches!(r.fields.get(g::GROUP), Some(Value::Bool(true))) {
                        " process-wide"
                    } else {
                        ""
                    },
                );
                self.push(At::of(&r), "signal_generate", text, State::Done);
            }
            Kind::SignalDeliver => {
                use s::signal_deliver as d;
                let sig = r.i64(d::SIG);
                let handler = r.u64(d::HANDLER);
                let h = match handler {
                    0 => "SIG_DFL".to_owned(),
                    1 => "SIG_IGN".to_owned(),
                    h => format!("{h:#x}"),
                };
                self.st.deaths.delivered(&mut self.st.exits, r.pid, r.tid, sig, handler);
                let addr = match fault_addr(&r) {
                    Some(a) => format!(" addr={a:#x}"),
                    None => String::new(),
                };
                let text = format!(
                    "{} code={}{addr} handler={h}",
                    signal_name(sig),
                    si_code_name(sig, r.i64(d::CODE))
                );
                self.push(At::of(&r), "signal_deliver", text, State::Done);
            }
            Kind::Mmap => {
                use s::mmap as m;
                let addr = r.u64(m::ADDR);
                let prot = r.u64(m::PROT);
                let flags = r.u64(m::FLAGS);
                let perms: String = [(1, 'r'), (2, 'w'), (4, 'x')]
                    .iter()
                    .map(|&(b, c)| if prot & b != 0 { c } else { '-' })
                    .collect();
                let shared = if flags & 1 != 0 { 's' } else { 'p' };
                let mut text = format!(
                    "map {addr:#x}-{:#x} {perms}{shared} {:#x} {}",
                    addr.wrapping_add(r.u64(m::LEN)),
                    r.u64(m::PGOFF),
                    r.str(m::FILENAME)
                );
                if let Some(Value::Bytes(b)) = r.fields.get(m::BUILD_ID) {
                    if !b.is_empty() {
                        text.push_str(" build_id=");
                        for x in b {
                            let _ = write!(text, "{x:02x}");
                        }
                    }
                }
                self.push(At::of(&r), "map", text, State::Done);
            }
            Kind::Fd => {
                let fd = r.i64(s::fd::FD);
                self.st.fds.at_start(r.pid, fd, r.str(s::fd::PATH).to_owned());
            }
            Kind::Lost => {
                let text = format!(
                    "*** LOST {} events on CPU {} ***",
                    r.u64(s::lost::COUNT),
                    r.cpu.map_or("?".into(), |c| c.to_string())
                );
                self.push(At::of(&r), "lost", text, State::Done);
            }
            Kind::Other => {
                let trace: &'t Trace = self.trace;
                let schema = match self.last_schema {
                    Some(sc) if sc.id == r.schema => Some(sc),
                    _ => trace.schema(r.schema),
                };
                let Some(schema) = schema else {
                    return;
                };
                self.last_schema = Some(schema);
                let name = schema.name.as_str();
                // Decided as the in-place path decides (`step`), so a live
                // timeline and a dump render alike.
                let text = match name {
                    n if !is_special(n) => generic_text(schema, &r),
                    s::MARKER => format!("marker \"{}\" = {}", r.str(0), r.i64(1)),
                    s::SPAN_BEGIN => {
                        self.st.spans.insert((r.pid, r.u64(1)), r.ts);
                        format!("span \"{}\" begins (#{})", r.str(0), r.u64(1))
                    }
                    s::SPAN_END => match self.st.spans.remove(&(r.pid, r.u64(1))) {
                        Some(t0) => format!(
                            "span \"{}\" ends after {} s (#{})",
                            r.str(0),
                            secs(r.ts.saturating_sub(t0)),
                            r.u64(1)
                        ),
                        None => format!("span \"{}\" ends (#{})", r.str(0), r.u64(1)),
                    },
                    s::PROBE_ATTACH => {
                        use s::probe_attach as a;
                        format!(
                            "weft-probe attached: {} events declared, {} enabled (session {}{})",
                            r.u64(a::EVENTS),
                            r.u64(a::ENABLED),
                            r.u64(a::SESSION),
                            if matches!(r.fields.get(a::USER_EVENTS), Some(Value::Bool(true))) {
                                ", also in kernel user_events"
                            } else {
                                ""
                            }
                        )
                    }
                    s::PROBE_DAMAGE => {
                        use s::probe_damage as d;
                        let after = r.i64(d::AFTER_SEQ);
                        format!(
                            "*** DAMAGED weft-probe buffer: slot {} sub-buffer generation {}{} at offset {:#x}: {} ***",
                            r.u64(d::SLOT),
                            r.u64(d::GEN),
                            if after >= 0 {
                                format!(" after seq {after}")
                            } else {
                                String::new()
                            },
                            r.u64(d::OFFSET),
                            r.str(d::WHAT)
                        )
                    }
                    s::PROBE_MISSED => format!(
                        "*** weft-probe events of this process not recorded: {} ***",
                        r.str(s::probe_missed::WHY)
                    ),
                    s::PROBE_STATS if !r.str(s::probe_stats::SUSPECT).is_empty() => {
                        use s::probe_stats as p;
                        format!(
                            "weft-probe thread totals: received {}; attempted and lost not known: counters damaged ({})",
                            r.u64(p::RECEIVED),
                            r.str(p::SUSPECT)
                        )
                    }
                    s::PROBE_STATS => {
                        use s::probe_stats as p;
                        format!(
                            "weft-probe thread totals: attempted {} = received {} + ring full {} + busy {} + abandoned {} + damaged {} + overwritten {}{}",
                            r.u64(p::ATTEMPTED),
                            r.u64(p::RECEIVED),
                            r.u64(p::LOST_FULL),
                            r.u64(p::LOST_BUSY),
                            r.u64(p::ABANDONED),
                            r.u64(p::DAMAGED),
                            r.u64(p::OVERWRITTEN),
                            match r.u64(p::NO_SLOT) {
                                0 => String::new(),
                                n => format!("; {n} dropped for lack of a thread slot"),
                            }
                        )
                    }
                    s::VFORK => format!(
                        "vfork child {} runs in this thread's memory until the call returns (its weft-probe events are shown as its own)",
                        r.u64(s::vfork::CHILD)
                    ),
                    // A name `is_special` lists without a rendering here.
                    _ => generic_text(schema, &r),
                };
                self.push(At::of(&r), name, text, State::Done);
            }
        }
    }

    /// Reads one record (or one damaged range) of the trace. Syscalls, most
    /// of a trace, are read in place; other records are decoded whole.
    fn step(&mut self, views: &mut Views<'t>) {
        match views.next() {
            Some(Ok(v)) => {
                self.st.last_ts = v.ts;
                let at = At {
                    ts: v.ts,
                    pid: v.pid,
                    tid: v.tid,
                };
                match self.kinds.of_schema(v.schema.id) {
                    Kind::SyscallEnter => {
                        // One walk over the fields: asked for one by one,
                        // the data would skip the arguments again.
                        let mut args = std::mem::take(&mut self.args);
                        args.clear();
                        let (mut nr, mut data) = (0, &[][..]);
                        v.for_each_field(|i, f| {
                            match (i, f) {
                                (s::syscall_enter::NR, f) => nr = int(f) as u32,
                                (s::syscall_enter::ARGS, FieldRef::U64s(a)) => args.extend(a),
                                (s::syscall_enter::DATA, FieldRef::Bytes(b) | FieldRef::Str(b)) => data = b,
                                _ => {}
                            }
                            true
                        });
                        self.enter(at, nr, &args, data);
                        self.args = args;
                    }
                    Kind::SyscallExit => {
                        let (mut nr, mut ret, mut data) = (0, 0, &[][..]);
                        v.for_each_field(|i, f| {
                            match (i, f) {
                                (s::syscall_exit::NR, f) => nr = int(f) as u32,
                                (s::syscall_exit::RET, f) => ret = int(f) as i64,
                                (s::syscall_exit::DATA, FieldRef::Bytes(b) | FieldRef::Str(b)) => data = b,
                                _ => {}
                            }
                            true
                        });
                        self.exit(at, nr, ret, data);
                    }
                    Kind::Other if !is_special(&v.schema.name) => self.generic(at, &v),
                    _ => self.handle(v.to_record()),
                }
                self.settle(false);
            }
            Some(Err(e)) => {
                // Said where it happened, in the timeline itself.
                let ts = match self.st.queue.back() {
                    Some(s) if self.st.queue.len() > self.settled => s.line.ts,
                    _ => self.st.last_ts,
                };
                self.st.queue.push_back(Slot {
                    call: Deferred::NONE,
                    line: Line {
                        ts,
                        pid: 0,
                        tid: 0,
                        comm: Arc::from(""),
                        event: Arc::from("damage"),
                        text: format!("*** DAMAGED: {e}; the events it held are missing ***"),
                    },
                    state: State::Done,
                });
                self.problems.push(e);
                self.settle(false);
            }
            None => {
                self.finished = true;
                self.settle(true);
            }
        }
    }

    /// An event of a schema the timeline knows nothing about (weft-probe
    /// events, mostly): its name and fields, read in place.
    fn generic(&mut self, at: At, v: &RecordView<'_>) {
        let schema = v.schema;
        let event = match &self.last_event {
            Some((id, e)) if *id == schema.id.0 => e.clone(),
            _ => {
                let e = intern(&mut self.st.names, &schema.name);
                self.last_event = Some((schema.id.0, e.clone()));
                e
            }
        };
        let mut text = self.new_text();
        text.push_str(&schema.name);
        v.for_each_field(|i, f| {
            let Some(field) = schema.fields.get(i) else {
                return false;
            };
            text.push(' ');
            text.push_str(&field.name);
            text.push('=');
            write_field(&mut text, f);
            true
        });
        self.push_named(at, event, text, State::Done);
    }

    /// Counts the finished lines after those already `settled`.
    fn settle(&mut self, end: bool) {
        loop {
            let held = self.st.queue.len() - self.settled;
            let Some(front) = self.st.queue.get_mut(self.settled) else {
                break;
            };
            match front.state {
                // A split line (printed as unfinished) is done too; one
                // can be at the front after `carry`.
                State::Done | State::Split => {}
                State::Open { nr, enter_ts } if end || held > MAX_HELD => {
                    front.line.text.push_str(" <unfinished ...>");
                    front.state = State::Split;
                    let tid = front.line.tid;
                    if let Some(c) = self.st.calls.get_mut(&tid) {
                        c.slot = None;
                        c.split = Some((nr, enter_ts));
                    }
                }
                _ => break,
            }
            self.settled += 1;
        }
    }
}

impl Iterator for Timeline<'_> {
    type Item = Line;

    fn next(&mut self) -> Option<Line> {
        loop {
            if self.settled > 0 {
                self.settled -= 1;
                self.st.front_seq += 1;
                let (trace, plans) = (self.trace, &mut self.plans);
                return self.st.queue.pop_front().map(|s| whole(s, trace, plans));
            }
            if self.finished {
                return None;
            }
            // A live timeline's records come from `feed`.
            let mut views = self.views.take()?;
            while self.settled == 0 && !self.finished {
                self.step(&mut views);
            }
            self.views = Some(views);
        }
    }
}

/// A slot's line with all its text (`Deferred` calls written in front).
fn whole(slot: Slot, trace: &Trace, plans: &mut CallPlans) -> Line {
    let mut line = slot.line;
    if !slot.call.is_none() {
        let mut text = String::with_capacity(line.text.len() + 96);
        slot.call.write(&mut text, trace, plans);
        text.push_str(&line.text);
        line.text = text;
    }
    line
}

/// An integer field as `RecordView::u64` reads it (0 if not an integer).
fn int(f: FieldRef<'_>) -> u64 {
    match f {
        FieldRef::U64(v) => v,
        FieldRef::I64(v) => v as u64,
        FieldRef::Bool(b) => u64::from(b),
        _ => 0,
    }
}

/// The shared copy of `name`, made on first use.
fn intern(names: &mut ahash::AHashSet<Arc<str>>, name: &str) -> Arc<str> {
    if let Some(e) = names.get(name) {
        return e.clone();
    }
    let e: Arc<str> = Arc::from(name);
    names.insert(e.clone());
    e
}

/// An event's name and fields, `name f=v ...` (`generic` reads them in place).
fn generic_text(schema: &Schema, r: &Record) -> String {
    let mut text = String::with_capacity(64);
    text.push_str(&schema.name);
    for (f, v) in schema.fields.iter().zip(&r.fields) {
        text.push(' ');
        text.push_str(&f.name);
        text.push('=');
        write_value(&mut text, v);
    }
    text
}

/// Schemas `handle` renders its own way (the generic rendering is for the rest).
fn is_special(name: &str) -> bool {
    matches!(
        name,
        s::MARKER
            | s::SPAN_BEGIN
            | s::SPAN_END
            | s::PROBE_ATTACH
            | s::PROBE_DAMAGE
            | s::PROBE_MISSED
            | s::PROBE_STATS
            | s::VFORK
    )
}

/// A borrowed field as `write_value` writes the owned one.
fn write_field(out: &mut String, f: FieldRef<'_>) {
    match f {
        FieldRef::U64(x) => out.push_str(itoa::Buffer::new().format(x)),
        FieldRef::I64(x) => out.push_str(itoa::Buffer::new().format(x)),
        FieldRef::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        _ => write_value(out, &f.to_value()),
    }
}

/// `show_value(v)` appended to `out`.
fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::U64(x) => out.push_str(itoa::Buffer::new().format(*x)),
        Value::I64(x) => out.push_str(itoa::Buffer::new().format(*x)),
        _ => out.push_str(&show_value(v)),
    }
}

/// A field's value as the timeline prints it.
pub fn show_value(v: &Value) -> String {
    match v {
        Value::U64(x) => x.to_string(),
        Value::I64(x) => x.to_string(),
        Value::F64(x) => x.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Str(s) => format!("{s:?}"),
        Value::Bytes(b) => format!("<{} bytes>", b.len()),
        Value::U64s(a) => format!("{a:x?}"),
    }
}

/// Seconds with nanosecond resolution: `1.000012345`.
pub fn secs(ns: u64) -> String {
    let mut out = String::with_capacity(20);
    write_secs(&mut out, ns);
    out
}

/// As `secs`, appending to `out`.
pub fn write_secs(out: &mut String, ns: u64) {
    let mut n = itoa::Buffer::new();
    out.push_str(n.format(ns / 1_000_000_000));
    out.push('.');
    let frac = n.format(ns % 1_000_000_000);
    out.push_str(&"000000000"[frac.len()..]);
    out.push_str(frac);
}
