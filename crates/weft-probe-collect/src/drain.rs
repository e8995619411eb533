//! Reading what an untrusted process wrote: every control word, guard,
//! record header and payload is copied out once, validated, then used.

use std::time::{Duration, Instant};

use weft_probe_abi::control::ProcessInfo;
use weft_probe_abi::layout::*;
use weft_probe_abi::payload::{self, FieldType, Value, ValueRef};

use crate::area::Area;
use crate::clock::{TickLine, TscClock};

/// A committed probe record, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeEvent {
    /// CLOCK_MONOTONIC nanoseconds.
    pub ts: u64,
    /// The attached process, whose event ids these are: `pid` unless a
    /// task sharing its memory wrote the record (see `ThreadStats::pid`).
    pub process: u32,
    pub pid: u32,
    pub tid: u32,
    pub event: u32,
    pub seq: u64,
    /// Inline up to four fields: draining millions of small events must not
    /// allocate for each.
    pub values: smallvec::SmallVec<[Value; 4]>,
}

/// A committed record, validated, borrowed from the collector's own copy.
#[derive(Debug, Clone, Copy)]
pub struct ProbeRecord<'a> {
    /// CLOCK_MONOTONIC nanoseconds.
    pub ts: u64,
    /// The attached process, whose event ids these are: `pid` unless a
    /// task sharing its memory wrote the record (see `ThreadStats::pid`).
    pub process: u32,
    pub pid: u32,
    pub tid: u32,
    pub event: u32,
    pub seq: u64,
    /// The event's field types; `payload` holds one value of each, checked.
    pub fields: &'a [FieldType],
    pub payload: &'a [u8],
}

impl<'a> ProbeRecord<'a> {
    /// Calls `f` with each field's value, in order.
    pub fn for_each_value(&self, f: impl FnMut(ValueRef<'a>)) {
        // Checked when the record was drained: cannot fail here.
        let _ = payload::for_each(self.fields, self.payload, f);
    }

    pub fn to_event(&self) -> ProbeEvent {
        let mut values = smallvec::SmallVec::new();
        self.for_each_value(|v| values.push(v.to_owned()));
        ProbeEvent {
            ts: self.ts,
            process: self.process,
            pid: self.pid,
            tid: self.tid,
            event: self.event,
            seq: self.seq,
            values,
        }
    }
}

/// Committed records of one thread, validated, back to back as the
/// program wrote them (docs/probe-buffers.md §5.1) but for their check
/// bytes, cleared once checked (they only get in the way of compression;
/// docs/format.md §5.6): what a consumer can store without decoding.
#[derive(Debug, Clone, Copy)]
pub struct ProbeRun<'a> {
    /// The attached process, whose event ids these are: `pid` unless a
    /// task sharing its memory wrote the record (see `ThreadStats::pid`).
    pub process: u32,
    pub pid: u32,
    pub tid: u32,
    /// How every record's tick converts to CLOCK_MONOTONIC.
    pub line: TickLine,
    /// The distinct event ids of the records, each with its field types.
    pub events: &'a [(u32, &'a [FieldType])],
    /// Where the records are.
    pub records: RunBytes<'a>,
    pub count: u32,
    /// Smallest and largest timestamp of the records, by `line`.
    pub min_ts: u64,
    pub max_ts: u64,
}

/// Where a run's records are.
#[derive(Debug, Clone, Copy)]
pub enum RunBytes<'a> {
    /// In the collector's own copy.
    Here(&'a [u8]),
    /// The last this many bytes of the buffer the sink gave (`Sink::run_buffer`).
    InSink(usize),
}

impl<'a> ProbeRun<'a> {
    /// Each record of `bytes` (the run's records), decoded: the run's
    /// records are checked, so this cannot fail on them.
    pub fn for_each<'b>(&self, bytes: &'b [u8], mut f: impl FnMut(&ProbeRecord<'b>))
    where
        'a: 'b,
    {
        let mut pos = 0usize;
        while let Some(hdr) = bytes.get(pos..pos + RECORD_HEADER_LEN) {
            let len = (u32at(hdr, R_LEN) & RECORD_LEN_MASK) as usize;
            let event = u32at(hdr, R_EVENT);
            let (Some(payload), Some(&(_, fields))) = (
                bytes.get(pos + RECORD_HEADER_LEN..pos + len),
                self.events.iter().find(|(e, _)| *e == event),
            ) else {
                return;
            };
            f(&ProbeRecord {
                ts: self.line.ts(u64at(hdr, R_TSC)),
                process: self.process,
                pid: self.pid,
                tid: self.tid,
                event,
                seq: u64at(hdr, R_SEQ_STATE) >> 8,
                fields,
                payload,
            });
            pos += len.max(RECORD_HEADER_LEN);
        }
    }
}

/// Where drained records and damage reports go. Records are handed over
/// without being copied again, so a consumer can store them straight into
/// its output: most come as runs (`run`), the others one by one (`record`).
pub trait Sink {
    fn record(&mut self, r: &ProbeRecord<'_>);
    /// A buffer the sink keeps, to which the collector may append a run's
    /// records straight from shared memory (at most `max` bytes), to
    /// validate them there; it then calls `run` with `RunBytes::InSink`,
    /// or truncates back what it appended. None: runs come in the
    /// collector's own copy.
    fn run_buffer(&mut self, _max: usize) -> Option<&mut Vec<u8>> {
        None
    }
    /// A run of committed records; by default, each is handed to `record`.
    fn run(&mut self, run: &ProbeRun<'_>) {
        if let RunBytes::Here(bytes) = run.records {
            run.for_each(bytes, |r| self.record(r));
        }
    }
    fn damage(&mut self, d: Damage);
    /// Whether process `pid`, which names itself in a slot of `process`'s
    /// buffers (a task sharing its memory: docs/probe-buffers.md §9.7),
    /// is what it says; `None`: not known yet (asked again next pass, for
    /// a while). The kernel's answer by default.
    fn belongs(&mut self, process: u32, pid: u32) -> Option<bool> {
        crate::kin::belongs_to(process, pid)
    }
    /// The process announced a new event list (events registered after the
    /// attach). Called before any record of those events is handed over.
    fn events(&mut self, _info: &ProcessInfo) {}
}

/// A sink that keeps owned copies (tests, small tools).
#[derive(Debug, Default)]
pub struct Collect {
    pub events: Vec<ProbeEvent>,
    pub damage: Vec<Damage>,
}

impl Sink for Collect {
    fn record(&mut self, r: &ProbeRecord<'_>) {
        self.events.push(r.to_event());
    }
    fn damage(&mut self, d: Damage) {
        self.damage.push(d);
    }
}

/// Something wrong in the shared memory: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub pid: u32,
    pub tid: u32,
    pub slot: u32,
    pub gen: u64,
    /// Sequence number of the last good record before the damage, if any.
    pub after_seq: Option<u64>,
    /// Byte offset in the buffer area.
    pub offset: u64,
    pub what: String,
}

/// Per-thread accounting: the writer's counters (copied from its control
/// page) and what the collector received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThreadStats {
    /// The process: the attached one, or a task sharing its memory that
    /// wrote into a slot of its own (checked, see `Sink::belongs`).
    pub pid: u32,
    pub tid: u32,
    pub slot: u32,
    pub attempted: u64,
    pub committed: u64,
    pub lost_full: u64,
    pub lost_busy: u64,
    pub received: u64,
    /// Attempted but never committed: a handler that never returned, or a
    /// process killed mid-write. Reserved ones are skipped by the collector.
    pub abandoned: u64,
    /// Records destroyed by damage to the buffer (committed, never received).
    pub damaged: u64,
    /// Overwritten before they were read (overwrite mode).
    pub overwritten: u64,
    /// Why the counters copied from the process's memory cannot be
    /// believed (a control page zeroed, counters that went down or do not
    /// add up): then only `received` is a fact.
    pub suspect: Option<String>,
}

/// The writer's counters as last read, and checked: they only grow.
#[derive(Default, Clone, Copy)]
struct Counters {
    attempted: u64,
    committed: u64,
    lost_full: u64,
    lost_busy: u64,
}

impl Counters {
    /// Each counter with one whole-word load: a byte copy taken while the
    /// writer counts can tear a word and make it look as if it went down.
    fn read(area: &Area, ctl_off: usize) -> Counters {
        Counters {
            attempted: area.u64(ctl_off + S_ATTEMPTED),
            committed: area.u64(ctl_off + S_COMMITTED),
            lost_full: area.u64(ctl_off + S_LOST_FULL),
            lost_busy: area.u64(ctl_off + S_LOST_BUSY),
        }
    }

    /// Why `self` (newer) cannot follow `old`, if it cannot.
    fn regressed(&self, old: &Counters) -> Option<String> {
        let pairs = [
            ("attempted", old.attempted, self.attempted),
            ("committed", old.committed, self.committed),
            ("ring-full", old.lost_full, self.lost_full),
            ("busy", old.lost_busy, self.lost_busy),
        ];
        pairs
            .iter()
            .find(|(_, a, b)| b < a)
            .map(|(what, a, b)| format!("{what} count went down from {a} to {b}"))
    }
}

#[derive(Default, Clone)]
struct SlotState {
    claims: u32,
    tid: u32,
    /// The writer's process, once decided (0: the attached process's).
    pid: u32,
    /// Since when the slot's claim to another process waits for an answer.
    pid_wait: Option<Instant>,
    /// A thread claimed this slot at some point: it stays in the accounting
    /// whatever happens to its control page later.
    seen: bool,
    /// The counters as last read while they were believable.
    counters: Counters,
    /// The first reason its counters stopped being believable.
    suspect: Option<String>,
    read_gen: u64,
    read_off: u32,
    guard_ok: bool,
    last_seq: Option<u64>,
    /// Where a closed sub-buffer's reading is held up by an uncommitted
    /// record, and since when.
    stuck: Option<(u64, u32, Instant)>,
    /// The impossible thread id last reported, so it is reported once.
    bad_tid: u32,
    /// A guard's thread id was read: later disagreements are damage.
    seen_guard_tid: bool,
    /// The slot's claim count when a guard was last read.
    guard_claims: u32,
    /// Records skipped for timestamps outside the recording, not yet
    /// reported: (generation, offset and seq of the first, how many).
    bad_time: Option<(u64, usize, u64, u64)>,
    received: u64,
    abandoned: u64,
    damaged: u64,
    overwritten: u64,
}

impl SlotState {
    /// A record's sequence number, received: numbers grow, but for the few
    /// a nested write (signal handler) takes out of order; a big step back
    /// means the counters restarted (a zeroed page) or another thread
    /// writes here.
    fn saw_seq(&mut self, seq: u64) {
        if self.last_seq.is_some_and(|l| seq.saturating_add(SEQ_SLACK) < l) && self.suspect.is_none() {
            self.suspect = Some(format!(
                "record sequence went back from {} to {seq}",
                self.last_seq.unwrap_or(0)
            ));
        }
        self.last_seq = Some(seq);
    }

    /// On to the next generation, from the start of its records.
    fn next_gen(&mut self) {
        self.read_gen += 1;
        self.read_off = GUARD_LEN as u32;
        self.guard_ok = false;
    }
}

/// Most bytes of records in one run: a run goes whole into one trace chunk.
const MAX_RUN: u32 = 4 << 20;

/// How long a reserved-but-uncommitted record in a closed sub-buffer may
/// stay so before it counts as abandoned.
const STUCK: Duration = Duration::from_secs(1);
/// How long a record of an event not announced yet may wait for its
/// announcement. The program's listener thread sends it; on a saturated
/// machine (a hundred instrumented programs starting at once) that thread
/// may not run for over a second, and its events would all be damage.
const UNANNOUNCED: Duration = Duration::from_secs(10);
/// How long a slot that names another process may wait for `Sink::belongs`
/// to know it (the recorder learns of new processes from the kernel's
/// records, which may come a pass later than the claim).
const PID_WAIT: Duration = Duration::from_secs(2);

pub(crate) struct Drainer {
    pid: u32,
    fields: Vec<Option<Vec<FieldType>>>,
    /// Payload size of events whose fields are all fixed-size: checking
    /// such a record is one comparison instead of a walk.
    fixed: Vec<Option<usize>>,
    geo: Geometry,
    mode: Mode,
    salt: u64,
    slots: Vec<SlotState>,
    /// CLOCK_MONOTONIC ns at attach: no record of this session is older
    /// (less a margin for clock conversion).
    start_ns: u64,
    /// The most bytes one thread's ring advanced by in the last pass.
    pub(crate) round_bytes: u64,
    /// The last pass is under way (`finish`): questions still open are
    /// answered with what is known.
    pub(crate) last: bool,
    scratch: Vec<u8>,
}

/// Margin around the recording's span within which a record's timestamp
/// is believed (TSC conversion error, a recorder descheduled between taking
/// the time and reading): generous, since what it must catch is a time far
/// off, not a slightly early one.
const TIME_SLACK_NS: u64 = 1_000_000_000;
/// How far a record's sequence number may fall behind the previous one's
/// (writes nested in signal handlers take theirs out of order).
const SEQ_SLACK: u64 = 64;
/// Highest thread id Linux hands out (`kernel.pid_max` at most 2^22).
const MAX_TID: u32 = 1 << 22;

fn mono_now() -> u64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into t.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

fn u32at(b: &[u8], o: usize) -> u32 {
    b.get(o..o + 4)
        .map_or(0, |s| u32::from_le_bytes(s.try_into().unwrap_or_default()))
}

fn u64at(b: &[u8], o: usize) -> u64 {
    b.get(o..o + 8)
        .map_or(0, |s| u64::from_le_bytes(s.try_into().unwrap_or_default()))
}

impl Drainer {
    pub fn new(info: &ProcessInfo, geo: Geometry, mode: Mode, salt: u64) -> Drainer {
        let slots = vec![
            SlotState {
                read_gen: 1,
                read_off: GUARD_LEN as u32,
                ..Default::default()
            };
            geo.slots as usize
        ];
        let mut d = Drainer {
            pid: info.pid,
            fields: Vec::new(),
            fixed: Vec::new(),
            geo,
            mode,
            salt,
            slots,
            start_ns: mono_now(),
            round_bytes: 0,
            last: false,
            scratch: Vec::new(),
        };
        d.set_events(info);
        d
    }

    /// (Re)learns the field layouts of the process's events.
    pub fn set_events(&mut self, info: &ProcessInfo) {
        let mut fields: Vec<Option<Vec<FieldType>>> = Vec::new();
        for e in &info.events {
            let id = e.id as usize;
            if id < 65536 {
                if fields.len() <= id {
                    fields.resize(id + 1, None);
                }
                fields[id] = e.fields.iter().map(|&(_, t)| FieldType::from_u8(t)).collect();
            }
        }
        self.fixed = fields
            .iter()
            .map(|f| f.as_ref()?.iter().map(|t| t.fixed_size()).sum())
            .collect();
        self.fields = fields;
    }

    pub fn drain(&mut self, area: &Area, clock: &TscClock, final_pass: bool, sink: &mut impl Sink) {
        if self.mode == Mode::Overwrite && !final_pass {
            // A flight recorder is read once, at the end.
            return;
        }
        // The part of a control page in use: counters and this geometry's
        // sub-buffer entries.
        let mut ctl = vec![0u8; (S_SUBBUF_CTL + self.geo.subbufs as usize * SB_CTL_LEN).min(SLOT_CTL_LEN)];
        // One buffer for every run and record copied, kept from pass to
        // pass: fresh memory each time costs more in page faults than the copy.
        let mut body = std::mem::take(&mut self.scratch);
        let mut damage = Vec::new();
        let now_ns = mono_now();
        self.round_bytes = 0;
        for slot in 0..self.geo.slots {
            let ctl_off = self.geo.slot_offset(slot);
            // Most slots were never claimed: one load to skip them (a slot
            // claimed just after it is read next round).
            if area.u32(ctl_off + S_CLAIMS) == 0 {
                let st = &mut self.slots[slot as usize];
                if st.seen && st.suspect.is_none() {
                    // Zeroed or hole-punched: the thread stays in the
                    // accounting with what was last read.
                    let why = "control page zeroed (claims 0 after a thread claimed the slot)".to_string();
                    damage.push(Damage {
                        pid: if st.pid != 0 { st.pid } else { self.pid },
                        tid: st.tid,
                        slot,
                        gen: st.read_gen,
                        after_seq: st.last_seq,
                        offset: ctl_off as u64,
                        what: why.clone(),
                    });
                    st.suspect = Some(why);
                    for d in damage.drain(..) {
                        sink.damage(d);
                    }
                }
                continue;
            }
            // The generation first: reserve offsets copied after it are at
            // least as new, so a closed sub-buffer's end is final.
            let sg_first = area.u64(ctl_off + S_SWITCH_GEN);
            std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
            if !area.copy_bulk(ctl_off, &mut ctl) {
                continue;
            }
            ctl[S_SWITCH_GEN..S_SWITCH_GEN + 8].copy_from_slice(&sg_first.to_le_bytes());
            if u32at(&ctl, S_CLAIMS) == 0 {
                continue;
            }
            let before = {
                let st = &self.slots[slot as usize];
                (st.read_gen, st.read_off)
            };
            self.drain_slot(
                area,
                clock,
                slot,
                &ctl,
                final_pass,
                now_ns,
                &mut body,
                sink,
                &mut damage,
            );
            let st = &mut self.slots[slot as usize];
            let moved = st
                .read_gen
                .saturating_sub(before.0)
                .saturating_mul(u64::from(self.geo.subbuf_size))
                .saturating_add(u64::from(st.read_off))
                .saturating_sub(u64::from(before.1));
            self.round_bytes = self.round_bytes.max(moved);
            if let Some((gen, at, first, n)) = st.bad_time.take() {
                damage.push(Damage {
                    pid: if st.pid != 0 { st.pid } else { self.pid },
                    tid: st.tid,
                    slot,
                    gen,
                    after_seq: st.last_seq,
                    offset: at as u64,
                    what: format!("{n} records from seq {first} have timestamps outside the recording; skipped"),
                });
            }
            for d in damage.drain(..) {
                sink.damage(d);
            }
        }
        self.scratch = body;
    }

    #[allow(clippy::too_many_arguments)]
    fn drain_slot(
        &mut self,
        area: &Area,
        clock: &TscClock,
        slot: u32,
        ctl: &[u8],
        final_pass: bool,
        now_ns: u64,
        body: &mut Vec<u8>,
        sink: &mut impl Sink,
        damage: &mut Vec<Damage>,
    ) {
        let geo = self.geo;
        let pid = self.pid;
        let mode = self.mode;
        let ctl_off = geo.slot_offset(slot);
        let (t_min, mut t_max) = (
            self.start_ns.saturating_sub(TIME_SLACK_NS),
            now_ns.saturating_add(TIME_SLACK_NS),
        );
        let st = &mut self.slots[slot as usize];
        let claims = u32at(ctl, S_CLAIMS);
        let tid = u32at(ctl, S_OWNER);
        // A thread id changes only with a new claim (a new thread took the
        // slot); otherwise it was scribbled, and the one we know stays.
        let tid_ok = tid != 0 && tid < MAX_TID;
        let mut tid_damage = None;
        if !st.seen || claims != st.claims {
            if tid_ok {
                st.tid = tid;
            } else {
                tid_damage = Some(format!(
                    "control page names thread {tid}, which cannot exist; kept {}",
                    st.tid
                ));
            }
        } else if tid != st.tid {
            tid_damage = Some(format!(
                "control page names thread {tid} without a new claim; kept thread {}",
                st.tid
            ));
        }
        if !st.seen || claims != st.claims {
            // Whose slot: the process's, or a task's of another process
            // sharing its memory, if the kernel agrees.
            let by = u32at(ctl, S_PID);
            st.pid = pid;
            if by != 0 && by != pid {
                match sink.belongs(pid, by) {
                    Some(true) => st.pid = by,
                    // Not before the very last pass: the process being gone
                    // is no reason, its children's fork records may still come.
                    None if !self.last && st.pid_wait.get_or_insert_with(Instant::now).elapsed() < PID_WAIT => {
                        return;
                    }
                    known => {
                        let why = if known.is_some() {
                            "which neither shares its memory nor is its child"
                        } else {
                            "which had ended before it could be checked"
                        };
                        damage.push(Damage {
                            pid,
                            tid: st.tid,
                            slot,
                            gen: st.read_gen,
                            after_seq: st.last_seq,
                            offset: (ctl_off + S_PID) as u64,
                            what: format!(
                                "slot claimed for process {by}, {why}; its events are kept under process {pid}"
                            ),
                        });
                    }
                }
            }
            st.pid_wait = None;
        }
        st.claims = claims;
        st.seen = true;
        let pid = if st.pid != 0 { st.pid } else { pid };
        let now = Counters::read(area, ctl_off);
        match now.regressed(&st.counters) {
            Some(why) if st.suspect.is_none() => {
                tid_damage = tid_damage.or(Some(format!("control page damaged: {why}")));
                st.suspect = Some(why);
            }
            Some(_) => {}
            None => st.counters = now,
        }
        let attempted = st.counters.attempted;
        let raw_sg = u64at(ctl, S_SWITCH_GEN);
        let sg = raw_sg & !SWITCHING;
        let mut report = |st: &SlotState, gen: u64, offset: usize, what: String| {
            damage.push(Damage {
                pid,
                tid: st.tid,
                slot,
                gen,
                after_seq: st.last_seq,
                offset: offset as u64,
                what,
            });
        };
        if let Some(what) = tid_damage {
            if st.bad_tid != tid {
                st.bad_tid = tid;
                report(st, st.read_gen, ctl_off + S_OWNER, what);
            }
        }
        if sg == 0 {
            return;
        }
        let n = u64::from(geo.subbufs);
        // Every generation takes an attempt, a discard-mode writer cannot
        // get a whole ring ahead of us, and generations never go back:
        // anything else is damage.
        let impossible = (sg > attempted.saturating_add(1) && sg > st.read_gen + (1 << 32))
            || (mode == Mode::Discard && sg >= st.read_gen + n)
            || sg + 1 < st.read_gen;
        if impossible {
            // What the sub-buffers still hold of the generations we were
            // reading is read as closed; then reading moves on to the
            // writer's next generation, every sub-buffer given back, so
            // that neither side waits for the other for good.
            report(
                st,
                sg,
                ctl_off + S_SWITCH_GEN,
                format!(
                    "control page damaged: sub-buffer generation jumped from {} to {sg}; unread records of the old generations are lost, reading resumes at {}",
                    st.read_gen,
                    sg + 1
                ),
            );
            // Records still unread in the old generations are lost with
            // them (counted as damaged).
            st.damaged += 1;
            for i in 0..geo.subbufs {
                // Generation g's slot is free for the writer once it sees
                // g - n consumed: make every next generation free.
                let g = sg + 1 + u64::from(i);
                let idx = geo.index_of(g) as usize;
                release(
                    area,
                    ctl_off + S_SUBBUF_CTL + idx * SB_CTL_LEN,
                    g.saturating_sub(n),
                    mode,
                );
            }
            st.read_gen = sg + 1;
            st.read_off = GUARD_LEN as u32;
            st.guard_ok = false;
            return;
        }
        // A writer stopped in the middle of a switch (overwrite mode) was
        // reinitializing the oldest sub-buffer: count it as overwritten too.
        let busy = u64::from(raw_sg & SWITCHING != 0 && mode == Mode::Overwrite);
        if sg + busy >= st.read_gen + n {
            // Older generations were reused before we read them (overwrite mode).
            let first = sg + busy + 1 - n;
            st.overwritten += first - st.read_gen;
            st.read_gen = first;
            st.read_off = GUARD_LEN as u32;
            st.guard_ok = false;
        }
        let end = geo.records_end() as u32;
        while st.read_gen <= sg {
            let g = st.read_gen;
            let idx = geo.index_of(g) as usize;
            let sbc = S_SUBBUF_CTL + idx * SB_CTL_LEN;
            let sb_off = geo.subbuf_offset(slot, idx as u32);
            let closed = g < sg || final_pass;
            let held = u64at(ctl, sbc + SB_GEN);
            if held != g {
                if g < sg {
                    report(
                        st,
                        g,
                        ctl_off + sbc,
                        format!("sub-buffer {idx} holds generation {held}, expected {g}; skipped"),
                    );
                    st.damaged += 1;
                    // Give it back, or a discard-mode writer waits for it forever.
                    release(area, ctl_off + sbc, g, self.mode);
                    st.next_gen();
                    continue;
                }
                break;
            }
            if !st.guard_ok {
                let guard_tid = match check_guards(area, sb_off, geo.records_end(), self.salt, g, slot) {
                    Ok(tid) => Some(tid),
                    Err((at, what)) => {
                        report(st, g, sb_off + at, format!("{what}; sub-buffer skipped"));
                        st.damaged += 1;
                        release(area, ctl_off + sbc, g, self.mode);
                        st.next_gen();
                        continue;
                    }
                };
                st.guard_ok = true;
                // The guard names the thread that opened the sub-buffer
                // (weft-probe's own write, checked with the salt): it wins
                // over a thread id a stray write can change in the control page.
                if let Some(gt) = guard_tid.filter(|&t| t != st.tid && t != 0 && t < MAX_TID) {
                    if st.seen_guard_tid {
                        let what = format!(
                            "control page names thread {}, the sub-buffer's guard thread {gt}; using {gt}",
                            st.tid
                        );
                        if claims == st.guard_claims {
                            // Two threads in one slot: its claim was lost
                            // (a zeroed control page), and so are its counts.
                            st.suspect.get_or_insert_with(|| {
                                format!(
                                    "threads {} and {gt} wrote into one slot after its control page was damaged",
                                    st.tid
                                )
                            });
                        }
                        report(st, g, ctl_off + S_OWNER, what);
                    }
                    st.tid = gt;
                }
                st.guard_claims = claims;
                st.seen_guard_tid = true;
            }
            let reserve = (u32at(ctl, sbc + SB_RESERVE) & !CLOSED).clamp(GUARD_LEN as u32, end);
            let mut pos = st.read_off.max(GUARD_LEN as u32);
            let mut waiting = false;
            while pos + RECORD_HEADER_LEN as u32 <= reserve {
                if st.bad_time.is_none() {
                    let mut events = smallvec::SmallVec::new();
                    let at = Span {
                        sb_off,
                        sbc_off: ctl_off + sbc,
                        pos,
                        // A run stays well inside one trace chunk.
                        reserve: reserve.min(pos.saturating_add(MAX_RUN)),
                    };
                    let layouts = Layouts {
                        fields: &self.fields,
                        fixed: &self.fixed,
                    };
                    let max = (at.reserve - pos) as usize;
                    let (fast, in_sink) = match sink.run_buffer(max) {
                        Some(buf) => (
                            fast_run(area, at, layouts, clock, (t_min, &mut t_max), st, buf, &mut events),
                            true,
                        ),
                        None => {
                            body.clear();
                            (
                                fast_run(area, at, layouts, clock, (t_min, &mut t_max), st, body, &mut events),
                                false,
                            )
                        }
                    };
                    if let Some(f) = fast {
                        sink.run(&ProbeRun {
                            process: self.pid,
                            pid,
                            tid: st.tid,
                            line: f.line,
                            events: &events,
                            records: if in_sink {
                                RunBytes::InSink(f.bytes as usize)
                            } else {
                                RunBytes::Here(&body[..f.bytes as usize])
                            },
                            count: f.count,
                            min_ts: f.min_ts,
                            max_ts: f.max_ts,
                        });
                        st.received += u64::from(f.count);
                        pos += f.bytes;
                        continue;
                    }
                }
                let rec_off = sb_off + pos as usize;
                // State first: a committed state implies the length before it is stored.
                let ss_first = area.u64(rec_off + R_SEQ_STATE);
                std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
                let mut hdr = [0u8; RECORD_HEADER_LEN];
                area.copy_bulk(rec_off, &mut hdr);
                hdr[R_SEQ_STATE..R_SEQ_STATE + 8].copy_from_slice(&ss_first.to_le_bytes());
                let len = u32at(&hdr, R_LEN) & RECORD_LEN_MASK;
                let event = u32at(&hdr, R_EVENT);
                let ss = u64at(&hdr, R_SEQ_STATE);
                let (seq, state) = (ss >> 8, ss as u8);
                let sane_len = len as usize >= RECORD_HEADER_LEN
                    && len.is_multiple_of(8)
                    && u64::from(pos) + u64::from(len) <= u64::from(reserve);
                let intact = intact(&hdr);
                if state == STATE_COMMITTED && sane_len && intact {
                    body.clear();
                    body.resize(len as usize - RECORD_HEADER_LEN, 0);
                    let known = matches!(self.fields.get(event as usize), Some(Some(_)));
                    if !known && !final_pass && !stuck_for(st, g, pos, UNANNOUNCED) {
                        // An event registered after attach: its announcement
                        // may still be in the socket. Read it next round, for
                        // a while; then it is damage, so the ring moves on.
                        waiting = true;
                        break;
                    }
                    area.copy_bulk(rec_off + RECORD_HEADER_LEN, body);
                    let fields = match self.fields.get(event as usize) {
                        Some(Some(f)) => Ok(f.as_slice()),
                        _ => Err(format!("unknown event id {event}")),
                    };
                    let fixed = self.fixed.get(event as usize).copied().flatten();
                    let checked = fields.and_then(|f| match fixed {
                        Some(n) if body.len() >= n => Ok(f),
                        _ => payload::for_each(f, body, |_| {}).map(|()| f),
                    });
                    let ts = clock.to_mono(u64at(&hdr, R_TSC));
                    if ts > t_max {
                        // Written after this pass began (a long pass): ask the clock again.
                        t_max = mono_now().saturating_add(TIME_SLACK_NS);
                    }
                    if checked.is_ok() && !(t_min..=t_max).contains(&ts) {
                        // Reported once per run of such records, not each.
                        match &mut st.bad_time {
                            Some((_, _, _, n)) => *n += 1,
                            None => st.bad_time = Some((g, rec_off, seq, 1)),
                        }
                        st.damaged += 1;
                        pos += len;
                        continue;
                    }
                    if let Some((bg, at, first, n)) = st.bad_time.take() {
                        report(
                            st,
                            bg,
                            at,
                            format!("{n} records from seq {first} have timestamps outside the recording; skipped"),
                        );
                    }
                    match checked {
                        Ok(fields) => {
                            sink.record(&ProbeRecord {
                                ts,
                                process: self.pid,
                                pid,
                                tid: st.tid,
                                event,
                                seq,
                                fields,
                                payload: body,
                            });
                            st.received += 1;
                            st.saw_seq(seq);
                        }
                        Err(e) => {
                            report(st, g, rec_off, format!("record seq {seq}: {e}; skipped"));
                            st.damaged += 1;
                        }
                    }
                    pos += len;
                    continue;
                }
                // WRITING, or a length stored without a state: a write in
                // progress, or one a handler (or a kill) cut short.
                if (state == STATE_WRITING || ss == 0) && sane_len {
                    if closed && (final_pass || stuck(st, g, pos)) {
                        st.abandoned += 1;
                        pos += len;
                        continue;
                    }
                    waiting = true;
                    break;
                }
                if ss == 0 && len == 0 && !closed {
                    // Reserved a moment ago; the header is not stored yet.
                    waiting = true;
                    break;
                }
                if ss == 0 && len == 0 && closed && !final_pass && !stuck(st, g, pos) {
                    waiting = true;
                    break;
                }
                // Not a record: damage, or a write cut between reserving and
                // storing its header. Resynchronize on the next plausible header.
                let next = resync(area, sb_off, pos + 8, reserve, st.last_seq, attempted);
                let what = if ss == 0 && len == 0 {
                    "record space reserved but never written (abandoned write)"
                } else if state == STATE_COMMITTED && sane_len {
                    "record header fails its check (length, event, seq or timestamp altered)"
                } else {
                    "invalid record header"
                };
                if what.starts_with("record space") {
                    st.abandoned += 1;
                } else {
                    report(
                        st,
                        g,
                        rec_off,
                        format!(
                            "{what} (len {len}, state {state:#04x}); skipped {} bytes",
                            next.unwrap_or(reserve) - pos
                        ),
                    );
                    st.damaged += 1;
                }
                pos = next.unwrap_or(reserve);
            }
            st.read_off = pos;
            if waiting {
                break;
            }
            if closed && pos + RECORD_HEADER_LEN as u32 > reserve {
                // The guards are written once, when the sub-buffer opens: a
                // stray write over them after we checked is still damage,
                // even if every record it hit was read before it. (Only a
                // discard-mode writer never reuses a sub-buffer we hold.)
                let bad = (self.mode == Mode::Discard)
                    .then(|| check_guards(area, sb_off, geo.records_end(), self.salt, g, slot).err())
                    .flatten();
                if let Some((at, _)) = bad {
                    report(
                        st,
                        g,
                        sb_off + at,
                        "sub-buffer guard overwritten after it was checked".to_string(),
                    );
                }
                release(area, ctl_off + sbc, g, self.mode);
                st.next_gen();
                continue;
            }
            break;
        }
    }
}

/// Where a fast run starts: a sub-buffer, the read position and the end
/// of the reserved space, both within the sub-buffer.
#[derive(Clone, Copy)]
struct Span {
    sb_off: usize,
    /// The sub-buffer's control entry.
    sbc_off: usize,
    pos: u32,
    reserve: u32,
}

/// The field layouts of a process's events, by id.
#[derive(Clone, Copy)]
struct Layouts<'f> {
    fields: &'f [Option<Vec<FieldType>>],
    fixed: &'f [Option<usize>],
}

struct Fast {
    bytes: u32,
    count: u32,
    line: TickLine,
    min_ts: u64,
    max_ts: u64,
}

/// The common case, read as bytes: the committed records from `at.pos` on,
/// found with two loads each, copied out in one piece, then checked on the
/// copy (header check byte, length, state, known event, payload, time,
/// sequence). Stops before the first record that is anything else, which
/// the record-by-record path then handles; `None` if that is the first.
/// The run's records are appended to `copy` (nothing is left appended when
/// there is no run).
#[allow(clippy::too_many_arguments)]
fn fast_run<'f>(
    area: &Area,
    at: Span,
    layouts: Layouts<'f>,
    clock: &TscClock,
    (t_min, t_max): (u64, &mut u64),
    st: &mut SlotState,
    copy: &mut Vec<u8>,
    events: &mut smallvec::SmallVec<[(u32, &'f [FieldType]); 4]>,
) -> Option<Fast> {
    let Span {
        sb_off,
        sbc_off,
        pos,
        reserve,
    } = at;
    // Committed records are immutable until their sub-buffer is given back,
    // so they can be copied in one piece once known to be committed. The
    // writer counts committed bytes per sub-buffer: read before the
    // reserve offset, a count that reaches it means every record reserved
    // so far is committed. Otherwise (a write in progress, or a writer that
    // does not count) each record's state is looked at first.
    let committed = area.u32(sbc_off + SB_COMMITTED);
    let reserved = area.u32(sbc_off + SB_RESERVE) & !CLOSED;
    let mut end = pos;
    if u64::from(committed) + GUARD_LEN as u64 == u64::from(reserved) && reserved >= reserve {
        end = reserve;
    }
    while end + RECORD_HEADER_LEN as u32 <= reserve {
        let ss = area.u64(sb_off + (end as usize) + R_SEQ_STATE);
        if ss as u8 != STATE_COMMITTED {
            break;
        }
        let len = area.u32(sb_off + end as usize + R_LEN) & RECORD_LEN_MASK;
        if (len as usize) < RECORD_HEADER_LEN || !len.is_multiple_of(8) || len > reserve - end {
            break;
        }
        end += len;
    }
    if end == pos {
        return None;
    }
    let start = copy.len();
    if !area.append_bulk(sb_off + pos as usize, (end - pos) as usize, copy) {
        return None;
    }
    let fast = check_run(&mut copy[start..], layouts, clock, (t_min, t_max), st, events);
    copy.truncate(start + fast.as_ref().map_or(0, |f| f.bytes as usize));
    fast
}

/// Checks the records of `copy` from its start; the run is those before
/// the first that fails (see `fast_run`).
fn check_run<'f>(
    copy: &mut [u8],
    layouts: Layouts<'f>,
    clock: &TscClock,
    (t_min, t_max): (u64, &mut u64),
    st: &mut SlotState,
    events: &mut smallvec::SmallVec<[(u32, &'f [FieldType]); 4]>,
) -> Option<Fast> {
    // Timestamps only grow with ticks: the run's extremes decide whether
    // every record is within the recording, and then no record's time
    // needs computing. Otherwise the records are walked again, exactly.
    let last_seq = st.last_seq;
    let fast = check_headers(copy, layouts, st, events, |_| true)?;
    let line = clock.line_at(fast.min_tick);
    let (lo, hi) = (line.ts(fast.min_tick), line.ts(fast.max_tick));
    if hi > *t_max {
        // Written after this pass began (a long pass): ask the clock again.
        *t_max = mono_now().saturating_add(TIME_SLACK_NS);
    }
    if lo >= t_min && hi <= *t_max {
        return Some(Fast {
            bytes: fast.bytes,
            count: fast.count,
            line,
            min_ts: lo,
            max_ts: hi,
        });
    }
    // Again, each record's time checked: the run ends before the first
    // one outside the recording (which the record-by-record path reports).
    restore_checks(&mut copy[..fast.bytes as usize]);
    st.last_seq = last_seq;
    events.clear();
    let mut line = None;
    let in_time = |tick: u64| {
        let ts = line.get_or_insert_with(|| clock.line_at(tick)).ts(tick);
        if ts > *t_max {
            *t_max = mono_now().saturating_add(TIME_SLACK_NS);
        }
        (t_min..=*t_max).contains(&ts)
    };
    let exact = check_headers(copy, layouts, st, events, in_time)?;
    let line = line?;
    Some(Fast {
        bytes: exact.bytes,
        count: exact.count,
        line,
        min_ts: line.ts(exact.min_tick),
        max_ts: line.ts(exact.max_tick),
    })
}

/// The headers and payloads of a run, checked: everything but time.
struct Checked {
    bytes: u32,
    count: u32,
    min_tick: u64,
    max_tick: u64,
}

/// The run ends before the first record that fails a check, or whose tick
/// `in_time` refuses.
fn check_headers<'f>(
    copy: &mut [u8],
    layouts: Layouts<'f>,
    st: &mut SlotState,
    events: &mut smallvec::SmallVec<[(u32, &'f [FieldType]); 4]>,
    mut in_time: impl FnMut(u64) -> bool,
) -> Option<Checked> {
    let mut q = 0usize;
    let mut count = 0u32;
    let (mut min_tick, mut max_tick) = (u64::MAX, 0);
    // The event of the previous record, its fields and fixed size: runs
    // are mostly of one event.
    let mut last: Option<(u32, &'f [FieldType], Option<usize>)> = None;
    while let Some(RecordHead {
        len,
        event,
        seq,
        tsc: tick,
    }) = copy.get(q..).and_then(committed_record)
    {
        let (fields, fixed) = match last {
            Some((e, f, n)) if e == event => (f, n),
            _ => {
                let Some(Some(fields)) = layouts.fields.get(event as usize) else {
                    break;
                };
                let fixed = layouts.fixed.get(event as usize).copied().flatten();
                if !events.iter().any(|(e, _)| *e == event) {
                    events.push((event, fields.as_slice()));
                }
                last = Some((event, fields.as_slice(), fixed));
                (fields.as_slice(), fixed)
            }
        };
        let payload = &copy[q + RECORD_HEADER_LEN..q + len as usize];
        let fits = match fixed {
            Some(n) => payload.len() >= n,
            None => payload::for_each(fields, payload, |_| {}).is_ok(),
        };
        if !fits || !in_time(tick) {
            break;
        }
        st.saw_seq(seq);
        min_tick = min_tick.min(tick);
        max_tick = max_tick.max(tick);
        count += 1;
        // Checked: its check byte is cleared for the trace's compression
        // (a reader computes it again, docs/format.md §5.6).
        copy[q + R_CHECK] = 0;
        q += len as usize;
    }
    (count > 0).then_some(Checked {
        bytes: q as u32,
        count,
        min_tick,
        max_tick,
    })
}

/// Whether a copied record header's check byte matches the rest of it.
fn intact(hdr: &[u8; RECORD_HEADER_LEN]) -> bool {
    hdr[R_CHECK] == header_check(hdr)
}

/// Next 8-aligned offset in (from, reserve) holding a plausible header.
fn resync(area: &Area, sb_off: usize, from: u32, reserve: u32, last_seq: Option<u64>, attempted: u64) -> Option<u32> {
    let mut pos = from;
    while pos + RECORD_HEADER_LEN as u32 <= reserve {
        let mut hdr = [0u8; RECORD_HEADER_LEN];
        area.copy(sb_off + pos as usize, &mut hdr);
        let len = u32at(&hdr, R_LEN) & RECORD_LEN_MASK;
        let ss = u64at(&hdr, R_SEQ_STATE);
        let (seq, state) = (ss >> 8, ss as u8);
        // A committed header must pass its check; a WRITING one may not
        // have its timestamp stored yet.
        let plausible = (state == STATE_COMMITTED && intact(&hdr) || state == STATE_WRITING)
            && len as usize >= RECORD_HEADER_LEN
            && len.is_multiple_of(8)
            && u64::from(pos) + u64::from(len) <= u64::from(reserve)
            && seq < attempted
            && last_seq.is_none_or(|l| seq + 64 > l);
        if plausible {
            return Some(pos);
        }
        pos += 8;
    }
    None
}

impl Drainer {
    /// Per-thread accounting: every slot a thread ever claimed (even if
    /// its control page was zeroed since), with counters that are checked
    /// before they are believed.
    pub fn stats(&self, area: &Area) -> Vec<ThreadStats> {
        let mut v = Vec::new();
        let mut ctl = [0u8; 64];
        let elapsed = mono_now().saturating_sub(self.start_ns);
        for (slot, st) in self.slots.iter().enumerate() {
            area.copy(self.geo.slot_offset(slot as u32), &mut ctl);
            let claimed = u32at(&ctl, S_CLAIMS) != 0;
            if !claimed && !st.seen {
                continue;
            }
            let mut suspect = st.suspect.clone();
            let mut c = st.counters;
            if claimed {
                let now = Counters::read(area, self.geo.slot_offset(slot as u32));
                match now.regressed(&st.counters) {
                    Some(why) => {
                        suspect.get_or_insert(why);
                    }
                    None => c = now,
                }
            } else {
                suspect.get_or_insert_with(|| "control page zeroed".into());
            }
            let mut t = ThreadStats {
                pid: if st.pid != 0 { st.pid } else { self.pid },
                tid: if st.seen { st.tid } else { u32at(&ctl, S_OWNER) },
                slot: slot as u32,
                attempted: c.attempted,
                committed: c.committed,
                lost_full: c.lost_full,
                lost_busy: c.lost_busy,
                received: st.received,
                abandoned: st.abandoned,
                damaged: 0,
                overwritten: st.overwritten,
                suspect: None,
            };
            // Counters come from the program's memory: no overflow on garbage.
            let explained = [t.received, t.lost_full, t.lost_busy, t.abandoned, t.overwritten]
                .iter()
                .fold(0u64, |a, &b| a.saturating_add(b));
            if suspect.is_none() {
                suspect = if t.attempted < explained {
                    Some(format!(
                        "attempted {} is less than the {explained} events received or dropped",
                        t.attempted
                    ))
                } else if t.committed > t.attempted {
                    Some(format!("committed {} exceeds attempted {}", t.committed, t.attempted))
                } else if t.attempted - explained > elapsed.saturating_add(1) {
                    // Not even one event per nanosecond since the attach.
                    Some(format!(
                        "attempted {} is more than a thread can write in {} ms",
                        t.attempted,
                        elapsed / 1_000_000
                    ))
                } else if st.last_seq.is_some_and(|l| l >= t.attempted) {
                    Some(format!(
                        "a record with sequence {} was received, yet attempted is {}",
                        st.last_seq.unwrap_or(0),
                        t.attempted
                    ))
                } else {
                    None
                };
            }
            if suspect.is_some() {
                // Only what the collector counted itself is a fact.
                t.suspect = suspect;
                v.push(t);
                continue;
            }
            // Attempts that left no readable record: overwritten (overwrite
            // mode), destroyed by damage the collector reported, or cut short
            // by a handler that never returned before they reserved space.
            let gone = t.attempted - explained;
            if self.mode == Mode::Overwrite {
                t.overwritten = t.overwritten.saturating_add(gone);
            } else if st.damaged > 0 {
                t.damaged = gone;
            } else {
                t.abandoned = t.abandoned.saturating_add(gone);
            }
            v.push(t);
        }
        v
    }
}

/// Checks a sub-buffer's guard header and footer (from private copies):
/// the thread id the header names, or where in the sub-buffer (0 or the
/// footer's offset `end`) and what is wrong.
fn check_guards(
    area: &Area,
    sb_off: usize,
    end: usize,
    salt: u64,
    gen: u64,
    slot: u32,
) -> Result<u32, (usize, String)> {
    let mut head = [0u8; GUARD_LEN];
    let mut foot = [0u8; GUARD_LEN];
    area.copy(sb_off, &mut head);
    area.copy(sb_off + end, &mut foot);
    match (
        Guard::decode(&head, salt, GUARD_HEAD_MAGIC),
        Guard::decode(&foot, salt, GUARD_FOOT_MAGIC),
    ) {
        (Ok(h), _) if h.gen != gen || h.slot != slot => {
            Err((0, format!("guard header names generation {} slot {}", h.gen, h.slot)))
        }
        (Err(e), _) => Err((0, format!("guard header: {e}"))),
        (_, Err(e)) => Err((end, format!("guard footer: {e}"))),
        (Ok(h), Ok(f)) if h != f => Err((end, "guard footer differs from header".to_string())),
        (Ok(h), Ok(_)) => Ok(h.tid),
    }
}

/// True once reading has been held up at (gen, pos) for `STUCK`.
fn stuck(st: &mut SlotState, gen: u64, pos: u32) -> bool {
    stuck_for(st, gen, pos, STUCK)
}

/// True once reading has been held up at (gen, pos) for `limit`.
fn stuck_for(st: &mut SlotState, gen: u64, pos: u32, limit: Duration) -> bool {
    match st.stuck {
        Some((g, p, since)) if g == gen && p == pos => since.elapsed() >= limit,
        _ => {
            st.stuck = Some((gen, pos, Instant::now()));
            false
        }
    }
}

/// Gives a read sub-buffer back to the writer (discard mode).
fn release(area: &Area, sbc_off: usize, gen: u64, mode: Mode) {
    if mode == Mode::Discard {
        area.put_u64(sbc_off + SB_CONSUMED, gen);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ProcessInfo {
        crate::fuzzing::sample_info()
    }

    /// Whatever a hostile or buggy program writes into the area, draining
    /// terminates, stays in bounds and never panics.
    #[test]
    fn any_bytes_in_the_area_are_survived() {
        let geo = Geometry {
            slots: 2,
            subbufs: 2,
            subbuf_size: 4096,
        };
        for (seed, mode) in (1u64..=64).zip([Mode::Discard, Mode::Overwrite].into_iter().cycle()) {
            let area = Area::create(geo, mode).unwrap();
            let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let mut next = || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            // Random words everywhere after the header; sometimes plausible
            // control values so the reader gets deep into the sub-buffers.
            for off in (64..area.len()).step_by(8) {
                let v = match next() % 8 {
                    0 => next() % 4,
                    1 => (next() % 4096) & !7,
                    2 => u64::from(STATE_COMMITTED) | (next() % 16) << 8,
                    3 => 32 | (next() % 2) << 32,
                    _ => next(),
                };
                area.put_u64(off, v);
            }
            let clock = TscClock::new();
            let mut d = Drainer::new(&info(), geo, mode, area.salt());
            let mut sink = Steady::default();
            d.drain(&area, &clock, false, &mut sink);
            d.last = true;
            d.drain(&area, &clock, true, &mut sink);
            let _ = d.stats(&area);
        }
    }
    /// Writes, as a writer would, one sub-buffer holding three committed
    /// records of event 0 (`a: u64 = 7`, `s: str = "ab"`), into a new area.
    fn valid_area(geo: Geometry) -> (Area, Vec<usize>) {
        let area = Area::create(geo, Mode::Discard).unwrap();
        let salt = area.salt();
        let ctl = geo.slot_offset(0);
        let sb = geo.subbuf_offset(0, 0);
        let (tsc, mono) = crate::clock::sample();
        let rec_len = RECORD_HEADER_LEN + 16;
        let mut headers = Vec::new();
        for i in 0..3u64 {
            let at = sb + GUARD_LEN + i as usize * rec_len;
            headers.push(at);
            area.put_u64(at + R_LEN, record_word0(rec_len as u32, 0, i, tsc)); // len, event 0
            area.put_u64(at + R_SEQ_STATE, i << 8 | u64::from(STATE_COMMITTED));
            area.put_u64(at + R_TSC, tsc);
            // a = 7 (u64), then "ab" (u16 length + bytes), then padding.
            area.put_u64(at + RECORD_HEADER_LEN, 7);
            area.put_u64(
                at + RECORD_HEADER_LEN + 8,
                2 | u64::from(b'a') << 16 | u64::from(b'b') << 24,
            );
        }
        let guard = Guard {
            tid: 1234,
            slot: 0,
            gen: 1,
            tsc,
            mono_ns: mono,
            first_seq: 0,
        };
        for (off, magic) in [(sb, GUARD_HEAD_MAGIC), (sb + geo.records_end(), GUARD_FOOT_MAGIC)] {
            for (i, w) in guard.encode(salt, magic).chunks(8).enumerate() {
                area.put_u64(off + i * 8, u64::from_le_bytes(w.try_into().unwrap()));
            }
        }
        let sbc = ctl + S_SUBBUF_CTL + geo.index_of(1) as usize * SB_CTL_LEN;
        area.put_u64(sbc + SB_GEN, 1);
        area.put_u32(sbc + SB_RESERVE, (GUARD_LEN + 3 * rec_len) as u32);
        area.put_u32(ctl + S_OWNER, 1234);
        area.put_u32(ctl + S_CLAIMS, 1);
        area.put_u64(ctl + S_ATTEMPTED, 3);
        area.put_u64(ctl + S_COMMITTED, 3);
        area.put_u64(ctl + S_SWITCH_GEN, 1);
        (area, headers)
    }

    fn drained(area: &Area, geo: Geometry) -> Collect {
        let clock = TscClock::new();
        let mut d = Drainer::new(&info(), geo, Mode::Discard, area.salt());
        let mut sink = Steady::default();
        d.last = true;
        d.drain(area, &clock, true, &mut sink);
        sink.0
    }

    /// A slot that names another process (`S_PID`, docs/probe-buffers.md
    /// §7.2) has its events, damage and totals under that process only if
    /// the sink confirms it; refused or never answered, they stay under the
    /// attached process and the claim is reported; event ids stay the
    /// attached process's.
    #[test]
    fn a_slot_claimed_for_another_process_is_believed_only_when_confirmed() {
        let geo = Geometry {
            slots: 2,
            subbufs: 2,
            subbuf_size: 4096,
        };
        struct Answer(Option<bool>, Collect, u32);
        impl Sink for Answer {
            fn record(&mut self, r: &ProbeRecord<'_>) {
                assert_eq!(r.process, 1, "event ids are the attached process's");
                self.1.record(r)
            }
            fn damage(&mut self, d: Damage) {
                self.1.damage(d)
            }
            fn belongs(&mut self, process: u32, pid: u32) -> Option<bool> {
                assert_eq!((process, pid), (1, 4242));
                self.2 += 1;
                self.0
            }
        }
        for answer in [Some(true), Some(false), None] {
            let (area, _) = valid_area(geo);
            area.put_u32(geo.slot_offset(0) + S_PID, 4242);
            let clock = TscClock::new();
            let mut d = Drainer::new(&info(), geo, Mode::Discard, area.salt());
            let mut sink = Answer(answer, Collect::default(), 0);
            d.drain(&area, &clock, false, &mut sink);
            if answer.is_none() {
                assert!(sink.1.events.is_empty(), "not read while the question is open");
            }
            d.last = true;
            d.drain(&area, &clock, true, &mut sink);
            let want = if answer == Some(true) { 4242 } else { 1 };
            let pids: Vec<u32> = sink.1.events.iter().map(|e| e.pid).collect();
            assert_eq!(pids, vec![want; 3], "{answer:?}");
            assert_eq!(d.stats(&area)[0].pid, want, "{answer:?}");
            let claims: Vec<&Damage> = sink
                .1
                .damage
                .iter()
                .filter(|d| d.what.contains("process 4242"))
                .collect();
            assert_eq!(
                claims.len(),
                usize::from(answer != Some(true)),
                "{answer:?}: {:?}",
                sink.1.damage
            );
            assert!(sink.2 >= 1 && sink.2 <= 2, "asked once per pass while open");
        }
    }

    /// `Collect`, without asking the kernel about the process ids a
    /// damaged area names: the same answer on every run.
    #[derive(Default)]
    struct Steady(Collect);

    impl Sink for Steady {
        fn record(&mut self, r: &ProbeRecord<'_>) {
            self.0.record(r)
        }
        fn damage(&mut self, d: Damage) {
            self.0.damage(d)
        }
        fn belongs(&mut self, _process: u32, _pid: u32) -> Option<bool> {
            Some(false)
        }
    }

    fn flip(area: &Area, off: usize) {
        let word = off & !7;
        let shift = (off % 8) * 8;
        area.put_u64(word, area.u64(word) ^ (0x5a << shift));
    }

    /// Every byte of a sub-buffer's guards, and every byte of every record
    /// header (length and its check, event id, state, seq, timestamp),
    /// flipped alone, is caught: reported as damage, never delivered as a
    /// record.
    #[test]
    fn a_flipped_byte_of_a_guard_or_of_a_record_header_is_always_caught() {
        let geo = Geometry {
            slots: 1,
            subbufs: 2,
            subbuf_size: 4096,
        };
        let (area, _) = valid_area(geo);
        let clean = drained(&area, geo);
        assert_eq!((clean.events.len(), clean.damage.len()), (3, 0), "{:?}", clean.damage);
        let sb = geo.subbuf_offset(0, 0);
        let mut places: Vec<usize> = (0..GUARD_LEN).map(|i| sb + i).collect();
        places.extend((0..GUARD_LEN).map(|i| sb + geo.records_end() + i));
        let (_, headers) = valid_area(geo);
        for h in &headers {
            places.extend((0..RECORD_HEADER_LEN).map(|i| h + i));
        }
        assert_eq!(places.len(), 2 * GUARD_LEN + 3 * RECORD_HEADER_LEN);
        for off in places {
            let (area, _) = valid_area(geo);
            flip(&area, off);
            let got = drained(&area, geo);
            assert!(
                !got.damage.is_empty(),
                "a flipped byte at offset {off:#x} went unnoticed: {} records delivered",
                got.events.len()
            );
            // A damaged header costs its record, and no other.
            if headers.iter().any(|h| (*h..h + RECORD_HEADER_LEN).contains(&off)) {
                assert_eq!(got.events.len(), 2, "flip at {off:#x}: {:?}", got.damage);
            }
        }
    }

    /// A sink that takes runs into its own buffer, as `weft record` does.
    #[derive(Default)]
    struct InPlace {
        buf: Vec<u8>,
        runs: Vec<(u32, usize)>,
        events: Vec<ProbeEvent>,
        damage: Vec<Damage>,
    }

    impl Sink for InPlace {
        fn record(&mut self, r: &ProbeRecord<'_>) {
            self.events.push(r.to_event());
        }
        fn run_buffer(&mut self, _max: usize) -> Option<&mut Vec<u8>> {
            Some(&mut self.buf)
        }
        fn run(&mut self, run: &ProbeRun<'_>) {
            let RunBytes::InSink(len) = run.records else {
                panic!("a run outside the sink's buffer");
            };
            let start = self.buf.len() - len;
            let bytes = self.buf[start..].to_vec();
            run.for_each(&bytes, |r| self.events.push(r.to_event()));
            self.runs.push((run.count, len));
        }
        fn damage(&mut self, d: Damage) {
            self.damage.push(d);
        }
    }

    /// Runs copied into the sink's buffer give the records the one-by-one
    /// path gives; with the committed-bytes count matching, or not there,
    /// or a record still being written after two committed ones.
    #[test]
    fn runs_into_the_sinks_buffer_match_records_one_by_one() {
        let geo = Geometry {
            slots: 1,
            subbufs: 2,
            subbuf_size: 4096,
        };
        let rec_len = RECORD_HEADER_LEN + 16;
        let sbc = geo.slot_offset(0) + S_SUBBUF_CTL + geo.index_of(1) as usize * SB_CTL_LEN;
        for committed_hint in [true, false] {
            let (area, _) = valid_area(geo);
            if committed_hint {
                area.put_u32(sbc + SB_COMMITTED, 3 * rec_len as u32);
            }
            let clock = TscClock::new();
            let mut d = Drainer::new(&info(), geo, Mode::Discard, area.salt());
            let mut sink = InPlace::default();
            d.drain(&area, &clock, true, &mut sink);
            assert_eq!(sink.runs, vec![(3, 3 * rec_len)], "hint {committed_hint}");
            assert_eq!(sink.buf.len(), 3 * rec_len);
            assert!(sink.damage.is_empty(), "{:?}", sink.damage);
            let one_by_one = drained(&area, geo);
            let key = |e: &ProbeEvent| (e.seq, e.tid, e.event, e.values.clone());
            assert_eq!(
                sink.events.iter().map(key).collect::<Vec<_>>(),
                one_by_one.events.iter().map(key).collect::<Vec<_>>()
            );
        }
        // The third record is still being written (and the count says so):
        // a run of two, and the third waits for the next pass.
        let (area, headers) = valid_area(geo);
        area.put_u64(headers[2] + R_SEQ_STATE, 2 << 8 | u64::from(STATE_WRITING));
        area.put_u32(sbc + SB_COMMITTED, 2 * rec_len as u32);
        let clock = TscClock::new();
        let mut d = Drainer::new(&info(), geo, Mode::Discard, area.salt());
        let mut sink = InPlace::default();
        d.drain(&area, &clock, false, &mut sink);
        assert_eq!(sink.runs, vec![(2, 2 * rec_len)]);
        assert_eq!(sink.buf.len(), 2 * rec_len, "nothing but the run is left in the buffer");
        // A lying count (all committed) still gets the record checked on
        // the copy: the one in progress is not delivered.
        area.put_u32(sbc + SB_COMMITTED, 3 * rec_len as u32);
        let mut d = Drainer::new(&info(), geo, Mode::Discard, area.salt());
        let mut sink = InPlace::default();
        d.drain(&area, &clock, false, &mut sink);
        assert_eq!(sink.events.len(), 2);
    }
}
