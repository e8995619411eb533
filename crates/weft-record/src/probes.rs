//! weft-probe sessions inside `weft record`: find instrumented processes in
//! the traced tree, attach, drain their buffers into the same trace.

use std::collections::HashMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use weft_format::{std_schemas as s, FieldType, RecordBuf, RecordBuilder, Schema, SchemaId, TraceWriter};
use weft_kernel::{EventKind, KernelEvent, KernelSchemas};
use weft_probe_collect::{
    Collect, Damage, Geometry, Mode, ProbeEvent, ProbeRecord, ProcessInfo, Session, Sink, ThreadStats, TscClock, Value,
    ValueRef,
};

/// How long after a process appears we keep looking for its socket.
const DISCOVERY: Duration = Duration::from_secs(5);
/// Attaches under way at once (each on its own thread).
const ATTACHING_AT_ONCE: usize = 8;

/// A process being looked for.
struct Pending {
    /// An exec seen while an attach to the old image is under way makes a
    /// new entry: the old attach's outcome must not settle it.
    id: u64,
    deadline: Instant,
    /// Its start time: pids are reused, and a reused pid is someone else's process.
    start: u64,
    /// Its control socket was seen: it is instrumented.
    listening: bool,
    /// Why the last attach failed.
    error: Option<String>,
}

impl Pending {
    fn new(start: u64, id: u64) -> Pending {
        Pending {
            id,
            deadline: Instant::now() + DISCOVERY,
            start,
            listening: false,
            error: None,
        }
    }
}

/// An attach's outcome: pid, start time it was looked for with, session.
type Attached = (u32, u64, Result<Session, weft_probe_collect::ProbeError>);

pub struct Probes {
    patterns: Vec<String>,
    mode: Mode,
    geo: Geometry,
    clock: TscClock,
    sessions: HashMap<u32, Session>,
    /// Processes to look for: deadline, and the start time that identifies
    /// them (pids are reused, and a reused pid is someone else's process).
    pending: HashMap<u32, Pending>,
    schemas: Schemas,
    pub events: u64,
    pub damage: u64,
    pub attached: u64,
    pub lost: u64,
    /// Records received but not written (no schema): reported, never silent.
    pub unwritten: u64,
    /// Instrumented processes that could not be recorded (see `missed`).
    pub missed: u64,
    /// Threads whose counters in shared memory were damaged.
    pub damaged_accounts: u64,
    /// Buffer memory of live sessions and attaches under way, and its cap.
    pub memory: usize,
    memory_cap: usize,
    /// Attaches under way: pid, and the `Pending::id` they were started for.
    in_flight: HashMap<u32, u64>,
    /// Numbers the `Pending` entries.
    next_watch: u64,
    attach_tx: mpsc::Sender<Attached>,
    attach_rx: mpsc::Receiver<Attached>,
    quiet: bool,
    write_error: Option<std::io::Error>,
    events_buf: Vec<ProbeEvent>,
    damage_buf: Vec<Damage>,
}

impl Probes {
    pub fn new(patterns: Vec<String>, mode: Mode, geo: Geometry, memory_cap: usize, quiet: bool) -> Probes {
        let (attach_tx, attach_rx) = mpsc::channel();
        Probes {
            missed: 0,
            damaged_accounts: 0,
            memory: 0,
            memory_cap,
            in_flight: HashMap::new(),
            next_watch: 0,
            attach_tx,
            attach_rx,
            patterns,
            mode,
            geo,
            clock: TscClock::new(),
            sessions: HashMap::new(),
            pending: HashMap::new(),
            schemas: Schemas::default(),
            events: 0,
            damage: 0,
            attached: 0,
            lost: 0,
            unwritten: 0,
            quiet,
            write_error: None,
            events_buf: Vec::new(),
            damage_buf: Vec::new(),
        }
    }

    pub fn check_geometry(&self) -> anyhow::Result<()> {
        self.geo
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid weft-probe buffer settings: {e}"))
    }

    /// Starts looking for `pid`'s control socket.
    pub fn watch(&mut self, pid: u32) {
        // Gone already: nothing to attach to.
        if let Some(start) = weft_probe_abi::process_start_time(pid) {
            self.next_watch += 1;
            self.pending.insert(pid, Pending::new(start, self.next_watch));
        }
    }

    /// Like `watch`, for a process the kernel saw at `ts` (created then, if
    /// `born`): if the pid now belongs to a process started at another time
    /// (later, for an exec), it was reused by someone else's process.
    fn watch_seen(&mut self, pid: u32, ts: u64, born: bool) {
        let Some(start) = weft_probe_abi::process_start_time(pid) else {
            return;
        };
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        let start_ns = start.saturating_mul(1_000_000_000 / hz);
        // Start times count from boot including suspend (CLOCK_BOOTTIME);
        // kernel events are CLOCK_MONOTONIC.
        let clock = |c| {
            let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            // SAFETY: clock_gettime writes into t.
            unsafe { libc::clock_gettime(c, &mut t) };
            t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
        };
        let boot_ts = ts.saturating_add(clock(libc::CLOCK_BOOTTIME).saturating_sub(clock(libc::CLOCK_MONOTONIC)));
        let slack = 100_000_000;
        let reused = if born {
            start_ns.abs_diff(boot_ts) > slack
        } else {
            start_ns > boot_ts + slack
        };
        if reused {
            return;
        }
        self.next_watch += 1;
        self.pending.insert(pid, Pending::new(start, self.next_watch));
    }

    pub fn looking(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Attached processes are being drained (the recorder then polls faster).
    pub fn active(&self) -> bool {
        !self.sessions.is_empty()
    }

    /// New processes (fork) and new images (exec) may be instrumented.
    pub fn observe(&mut self, ev: &KernelEvent) {
        match &ev.kind {
            EventKind::Fork { parent_pid, .. } if *parent_pid != ev.pid && ev.pid == ev.tid => {
                self.watch_seen(ev.pid, ev.ts, true)
            }
            EventKind::Exec { .. } => self.watch_seen(ev.pid, ev.ts, false),
            _ => {}
        }
    }

    /// Starts attaches (on their own threads: a peer that answers slowly or
    /// never must not hold up draining) and takes in those that finished.
    fn try_attach<W: std::io::Write>(&mut self, w: &mut TraceWriter<W>, ks: &KernelSchemas, buf: &mut RecordBuf) {
        let now = Instant::now();
        while let Ok((pid, start, result)) = self.attach_rx.try_recv() {
            let id = self.in_flight.remove(&pid).unwrap_or(0);
            self.memory = self.memory.saturating_sub(self.geo.total_len());
            self.attached_one(pid, id, start, result, now, w, ks, buf);
        }
        let pids: Vec<u32> = self.pending.keys().copied().collect();
        for pid in pids {
            let Some(&Pending {
                deadline, start, id, ..
            }) = self.pending.get(&pid)
            else {
                continue;
            };
            if self.in_flight.contains_key(&pid) {
                continue;
            }
            let gone = weft_probe_abi::process_start_time(pid) != Some(start);
            if now > deadline || gone {
                self.give_up(
                    pid,
                    if gone {
                        "it exited before an attach succeeded"
                    } else {
                        "no attach succeeded within 5 s"
                    },
                    ks,
                    buf,
                );
                continue;
            }
            if let Some(old) = self.sessions.get(&pid) {
                // The image we are attached to is still there: an exec seen
                // before its connection's close is; look again next round.
                if !old.process_gone() {
                    continue;
                }
                self.finish_one(pid, w, ks, buf);
            }
            // Not (yet) listening: a new image may still be starting.
            if !weft_probe_collect::listening(pid) {
                continue;
            }
            if let Some(p) = self.pending.get_mut(&pid) {
                p.listening = true;
            }
            if self.in_flight.len() >= ATTACHING_AT_ONCE {
                break;
            }
            // One process is always let in, however large its buffers.
            let need = self.geo.total_len();
            if self.memory > 0 && self.memory.saturating_add(need) > self.memory_cap {
                self.pending.remove(&pid);
                let why = format!(
                    "weft-probe memory cap reached ({} in use by {} processes, --probe-memory {}); raise it, or lower --probe-buffer or --probe-threads",
                    crate::units::bytes(self.memory as u64),
                    self.sessions.len() + self.in_flight.len(),
                    crate::units::bytes(self.memory_cap as u64)
                );
                self.missed(pid, why, ks, buf);
                continue;
            }
            self.memory += need;
            self.in_flight.insert(pid, id);
            let (tx, patterns, mode, geo) = (self.attach_tx.clone(), self.patterns.clone(), self.mode, self.geo);
            let spawned = std::thread::Builder::new()
                .name(format!("weft-attach-{pid}"))
                .spawn(move || {
                    let _ = tx.send((pid, start, Session::attach(pid, &patterns, mode, geo)));
                });
            if spawned.is_err() {
                self.in_flight.remove(&pid);
                self.memory -= need;
            }
        }
    }

    /// Takes in the outcome of one attach.
    #[allow(clippy::too_many_arguments)] // one attach's outcome and where it goes
    fn attached_one<W: std::io::Write>(
        &mut self,
        pid: u32,
        id: u64,
        start: u64,
        result: Result<Session, weft_probe_collect::ProbeError>,
        now: Instant,
        w: &mut TraceWriter<W>,
        ks: &KernelSchemas,
        buf: &mut RecordBuf,
    ) {
        match result {
            Ok(mut sess) if sess.info.start_time != start => {
                // The pid was reused in the meantime: not our process.
                self.settle(pid, id);
                let _ = sess.finish(&self.clock, &mut Collect::default());
            }
            Ok(sess) => {
                self.settle(pid, id);
                self.attached += 1;
                self.memory += sess.memory();
                if let Some(id) = ks.id_of(s::PROBE_ATTACH) {
                    buf.record(id, weft_kernel::monotonic_ns(), None, pid, pid)
                        .u64(sess.info.events.len() as u64)
                        .u64(u64::from(sess.enabled))
                        .u64(u64::from(sess.session_bit))
                        .bool(sess.info.user_events)
                        .finish();
                }
                self.schemas.declare(w, &sess.info);
                self.sessions.insert(pid, sess);
            }
            // Someone else's socket, or a link, at the process's socket
            // path: nothing was sent; say so at once.
            Err(
                e @ (weft_probe_collect::ProbeError::WrongPeer { .. } | weft_probe_collect::ProbeError::Unsafe { .. }),
            ) => {
                self.settle(pid, id);
                eprintln!("weft: warning: not attaching to the weft-probe events of PID {pid}: {e}");
                self.missed(pid, e.to_string(), ks, buf);
            }
            // Gone before it listened, or an exec left the old image's socket
            // file behind for a moment: look again next round.
            Err(weft_probe_collect::ProbeError::NotInstrumented { .. }) => {}
            Err(weft_probe_collect::ProbeError::Io { source, .. })
                if matches!(source.raw_os_error(), Some(libc::ECONNREFUSED) | Some(libc::ENOENT)) => {}
            // Try again next round until the deadline; say why only then.
            Err(e) => {
                if let Some(p) = self.pending.get_mut(&pid).filter(|p| p.id == id) {
                    p.error = Some(e.to_string());
                    if now + Duration::from_millis(20) > p.deadline {
                        self.give_up(pid, "no attach succeeded within 5 s", ks, buf);
                    }
                }
            }
        }
    }

    /// Stops looking for `pid` if it is still the entry attach `id` was
    /// started for.
    fn settle(&mut self, pid: u32, id: u64) {
        if self.pending.get(&pid).is_some_and(|p| p.id == id) {
            self.pending.remove(&pid);
        }
    }

    /// Stops looking for `pid`; if it was seen listening, it is an
    /// instrumented process that goes unrecorded, which is said.
    fn give_up(&mut self, pid: u32, why: &str, ks: &KernelSchemas, buf: &mut RecordBuf) {
        if let Some(p) = self.pending.remove(&pid) {
            if p.listening {
                let why = match p.error {
                    Some(e) => format!("{why} (last error: {e})"),
                    None => why.to_string(),
                };
                self.missed(pid, why, ks, buf);
            }
        }
    }

    /// An instrumented process whose events are not recorded, and why: in
    /// the trace and in the summary, never silent.
    fn missed(&mut self, pid: u32, why: String, ks: &KernelSchemas, buf: &mut RecordBuf) {
        self.missed += 1;
        if !self.quiet && self.missed <= 5 {
            eprintln!("weft: warning: PID {pid}: weft-probe events not recorded: {why}");
        }
        if let Some(id) = ks.id_of(s::PROBE_MISSED) {
            buf.record(id, weft_kernel::monotonic_ns(), None, pid, pid)
                .bytes(why.as_bytes())
                .finish();
        }
    }

    /// One round: attach where possible, drain every session into `buf`.
    /// Returns how many events it drained.
    pub fn poll<W: std::io::Write>(&mut self, w: &mut TraceWriter<W>, ks: &KernelSchemas, buf: &mut RecordBuf) -> u64 {
        let before = self.events;
        if !self.pending.is_empty() {
            self.try_attach(w, ks, buf);
        }
        if self.sessions.is_empty() {
            return self.events - before;
        }
        self.clock.update();
        let pids: Vec<u32> = self.sessions.keys().copied().collect();
        for pid in pids {
            let Some(mut sess) = self.sessions.remove(&pid) else {
                continue;
            };
            self.drain_session(&mut sess, false, w, buf);
            let gone = sess.process_gone();
            self.sessions.insert(pid, sess);
            self.flush(w, ks, buf);
            if gone {
                self.finish_one(pid, w, ks, buf);
            }
        }
        self.events - before
    }

    /// Drains a session straight into `buf` (`last`: detach first, and
    /// return its per-thread accounting).
    fn drain_session<W: std::io::Write>(
        &mut self,
        sess: &mut Session,
        last: bool,
        w: &mut TraceWriter<W>,
        buf: &mut RecordBuf,
    ) -> Vec<ThreadStats> {
        let mut sink = ToTrace {
            w,
            buf,
            schemas: &mut self.schemas,
            last_id: None,
            events: &mut self.events,
            write_error: &mut self.write_error,
            unknown: &mut self.events_buf,
            damage: &mut self.damage_buf,
        };
        if last {
            sess.finish(&self.clock, &mut sink)
        } else {
            sess.drain(&self.clock, &mut sink);
            Vec::new()
        }
    }

    fn finish_one<W: std::io::Write>(
        &mut self,
        pid: u32,
        w: &mut TraceWriter<W>,
        ks: &KernelSchemas,
        buf: &mut RecordBuf,
    ) {
        if let Some(mut sess) = self.sessions.remove(&pid) {
            self.memory = self.memory.saturating_sub(sess.memory());
            let no_slot = sess.no_slot_drops();
            let stats = self.drain_session(&mut sess, true, w, buf);
            self.flush(w, ks, buf);
            self.write_stats(pid, &stats, no_slot, ks, buf);
        }
    }

    /// Detaches from everything (end of recording). Attaches still under
    /// way are waited for (each gives up within a second or two).
    pub fn finish<W: std::io::Write>(&mut self, w: &mut TraceWriter<W>, ks: &KernelSchemas, buf: &mut RecordBuf) {
        while !self.in_flight.is_empty() {
            let Ok((pid, start, result)) = self.attach_rx.recv_timeout(Duration::from_secs(5)) else {
                break;
            };
            let id = self.in_flight.remove(&pid).unwrap_or(0);
            self.memory = self.memory.saturating_sub(self.geo.total_len());
            self.attached_one(pid, id, start, result, Instant::now(), w, ks, buf);
        }
        let pids: Vec<u32> = self.pending.keys().copied().collect();
        for pid in pids {
            self.give_up(pid, "the recording ended before an attach succeeded", ks, buf);
        }
        self.clock.update();
        let pids: Vec<u32> = self.sessions.keys().copied().collect();
        for pid in pids {
            self.finish_one(pid, w, ks, buf);
        }
    }

    fn write_stats(&mut self, pid: u32, stats: &[ThreadStats], no_slot: u64, ks: &KernelSchemas, buf: &mut RecordBuf) {
        let Some(id) = ks.id_of(s::PROBE_STATS) else { return };
        let now = weft_kernel::monotonic_ns();
        for (i, t) in stats.iter().enumerate() {
            if let Some(why) = &t.suspect {
                // Damaged counters are not facts: only what we received is.
                self.damaged_accounts += 1;
                if !self.quiet {
                    eprintln!(
                        "weft: warning: PID {pid} thread {}: {} probe events received; attempted and lost not known: {why}",
                        t.tid, t.received
                    );
                }
            }
            // Counters come from the program's memory: saturate, never overflow.
            let lost = [t.lost_full, t.lost_busy, t.abandoned, t.damaged, t.overwritten]
                .iter()
                .fold(0u64, |a, &b| a.saturating_add(b));
            if t.suspect.is_none() {
                self.lost = self.lost.saturating_add(lost);
            }
            buf.record(id, now, None, pid, t.tid)
                .u64(u64::from(t.slot))
                .u64(t.attempted)
                .u64(t.committed)
                .u64(t.lost_full)
                .u64(t.lost_busy)
                .u64(t.received)
                .u64(t.abandoned)
                .u64(t.damaged)
                .u64(t.overwritten)
                .u64(if i == 0 { no_slot } else { 0 })
                .bytes(t.suspect.as_deref().unwrap_or_default().as_bytes())
                .finish();
            if lost > 0 && t.suspect.is_none() && !self.quiet {
                eprintln!(
                    "weft: warning: PID {pid} thread {}: {} probe events attempted, {} received, {} lost (ring full {}, busy {}, abandoned {}, damaged {}, overwritten {})",
                    t.tid, t.attempted, t.received, lost, t.lost_full, t.lost_busy, t.abandoned, t.damaged, t.overwritten
                );
            }
        }
        self.lost = self.lost.saturating_add(no_slot);
        if no_slot > 0 && !self.quiet {
            eprintln!("weft: warning: PID {pid}: {no_slot} probe events dropped because all thread slots were taken; try a larger --probe-threads");
        }
    }

    /// A write error met while flushing probe records (the recorder stops on it).
    pub fn take_error(&mut self) -> Option<std::io::Error> {
        self.write_error.take()
    }

    /// Moves records held back (no schema when they were drained) and
    /// damage reports into `buf`.
    fn flush<W: std::io::Write>(&mut self, w: &mut TraceWriter<W>, ks: &KernelSchemas, buf: &mut RecordBuf) {
        for ev in self.events_buf.drain(..) {
            room(w, buf, &mut self.write_error);
            let Some(id) = self.schemas.get(ev.pid, ev.event) else {
                // Decoded with an announced field list, but no schema: should
                // not happen; say so rather than lose it silently.
                self.unwritten += 1;
                self.lost = self.lost.saturating_add(1);
                if !self.quiet && self.unwritten == 1 {
                    eprintln!(
                        "weft: warning: weft-probe event id {} of PID {} has no schema in the trace; its records are left out",
                        ev.event, ev.pid
                    );
                }
                continue;
            };
            let mut r = buf.record(id, ev.ts, None, ev.pid, ev.tid);
            for v in &ev.values {
                r = match v {
                    Value::U(x) => r.u64(*x),
                    Value::I(x) => r.i64(*x),
                    Value::F(x) => r.f64(*x),
                    Value::B(x) => r.bool(*x),
                    Value::Str(b) | Value::Bytes(b) => r.bytes(b),
                };
            }
            r.finish();
            self.events += 1;
        }
        let Some(did) = ks.id_of(s::PROBE_DAMAGE) else { return };
        for d in self.damage_buf.drain(..) {
            self.damage += 1;
            if !self.quiet && self.damage <= 20 {
                eprintln!(
                    "weft: warning: damaged weft-probe buffer in PID {} thread {} (slot {}, sub-buffer generation {}, after seq {}, offset {:#x}): {}",
                    d.pid,
                    d.tid,
                    d.slot,
                    d.gen,
                    d.after_seq.map_or("-".into(), |s| s.to_string()),
                    d.offset,
                    d.what
                );
            }
            buf.record(did, weft_kernel::monotonic_ns(), None, d.pid, d.tid)
                .u64(u64::from(d.slot))
                .u64(d.gen)
                .i64(d.after_seq.map_or(-1, |s| s as i64))
                .u64(d.offset)
                .bytes(d.what.as_bytes())
                .finish();
        }
    }
}

/// Writes a chunk when `buf` is full: a big drain must not make one
/// oversized chunk.
fn room<W: std::io::Write>(w: &mut TraceWriter<W>, buf: &mut RecordBuf, err: &mut Option<std::io::Error>) {
    if buf.byte_len() >= 1 << 20 {
        if let Err(e) = w.write_events(buf) {
            err.get_or_insert(e);
        }
    }
}

/// Trace schemas of probe events, shared across processes by name and
/// fields, and which one each process's event id uses.
#[derive(Default)]
struct Schemas {
    by_shape: HashMap<(String, Vec<(String, u8)>), SchemaId>,
    ids: ahash::AHashMap<(u32, u32), SchemaId>,
}

impl Schemas {
    /// Declares (once) a schema for each event of `info`.
    fn declare<W: std::io::Write>(&mut self, w: &mut TraceWriter<W>, info: &ProcessInfo) {
        for e in &info.events {
            let name = format!("{}:{}", e.provider, e.name);
            let key = (name.clone(), e.fields.clone());
            let id = *self.by_shape.entry(key).or_insert_with(|| {
                let fields: Vec<(&str, FieldType)> = e
                    .fields
                    .iter()
                    .map(|(n, t)| (n.as_str(), FieldType::from_code(*t).unwrap_or(FieldType::Bytes)))
                    .collect();
                w.add_schema(Schema::new(&name, &fields))
            });
            self.ids.insert((info.pid, e.id), id);
        }
    }

    fn get(&self, pid: u32, event: u32) -> Option<SchemaId> {
        self.ids.get(&(pid, event)).copied()
    }
}

/// Encodes drained records straight into the trace buffer, without an
/// intermediate copy.
struct ToTrace<'a, W: std::io::Write> {
    w: &'a mut TraceWriter<W>,
    buf: &'a mut RecordBuf,
    schemas: &'a mut Schemas,
    /// The previous record's (pid, event) and schema: runs of one event
    /// skip the map.
    last_id: Option<((u32, u32), SchemaId)>,
    events: &'a mut u64,
    write_error: &'a mut Option<std::io::Error>,
    /// Records of events with no schema (not expected: schemas are
    /// declared as event lists arrive), written or reported by `flush`.
    unknown: &'a mut Vec<ProbeEvent>,
    damage: &'a mut Vec<Damage>,
}

impl<W: std::io::Write> Sink for ToTrace<'_, W> {
    fn record(&mut self, r: &ProbeRecord<'_>) {
        let key = (r.pid, r.event);
        let id = match self.last_id {
            Some((k, id)) if k == key => id,
            _ => {
                let Some(id) = self.schemas.get(key.0, key.1) else {
                    self.unknown.push(r.to_event());
                    return;
                };
                self.last_id = Some((key, id));
                id
            }
        };
        room(self.w, self.buf, self.write_error);
        let mut b: Option<RecordBuilder<'_>> = Some(self.buf.record(id, r.ts, None, r.pid, r.tid));
        r.for_each_value(|v| {
            b = b.take().map(|b| match v {
                ValueRef::U(x) => b.u64(x),
                ValueRef::I(x) => b.i64(x),
                ValueRef::F(x) => b.f64(x),
                ValueRef::B(x) => b.bool(x),
                ValueRef::Str(x) | ValueRef::Bytes(x) => b.bytes(x),
            });
        });
        if let Some(b) = b {
            b.finish();
        }
        *self.events += 1;
    }

    fn damage(&mut self, d: Damage) {
        self.damage.push(d);
    }

    /// Events announced since the attach: declared before their records come.
    fn events(&mut self, info: &ProcessInfo) {
        self.schemas.declare(self.w, info);
    }
}
