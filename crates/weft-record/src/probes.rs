//! weft-probe attachments inside a recording: find instrumented processes
//! in the traced tree, attach to them (off the drain loop), drain their
//! buffers through the `Encoder` into the same trace, and account for every
//! one that cannot be recorded.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use weft_kernel::{EventKind, KernelEvent};
use weft_probe_collect::{
    Attachment, Collect, Damage, Geometry, Mode, ProbeError, ProbeEvent, ProbeRecord, ProbeRun, ProcessInfo, RunBytes,
    Sink, ThreadStats, TscClock,
};

use crate::encode::Encoder;
use crate::{Level, Notice};

/// How a process left out for lack of buffer memory is described.
const MEMORY_CAP: &str = "weft-probe memory cap reached";

/// How long after a process appears we keep looking for its socket.
const DISCOVERY: Duration = Duration::from_secs(5);
/// Attaches under way at once (each on its own thread).
const ATTACHING_AT_ONCE: usize = 8;
/// Damage reports said one by one (all are in the trace).
const DAMAGE_SAID: u64 = 20;
/// Processes not recorded said one by one (all are in the trace).
const MISSED_SAID: u64 = 5;
/// Threads of one process whose losses get a line each; the rest are summed.
const THREADS_SAID: usize = 3;

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
    /// Told that no attach is coming now (the memory cap), so that it does
    /// not wait for one.
    deferred: bool,
}

impl Pending {
    fn new(start: u64, id: u64) -> Pending {
        Pending {
            id,
            deadline: Instant::now() + DISCOVERY,
            start,
            listening: false,
            error: None,
            deferred: false,
        }
    }
}

/// An attach's outcome: pid, start time it was looked for with, attachment.
type Attached = (u32, u64, Result<Attachment, ProbeError>);

/// What the weft-probe side of a recording did, for its summary.
#[derive(Debug, Default, Clone)]
pub struct ProbeTotals {
    /// Event records written to the trace.
    pub events: u64,
    /// Processes attached.
    pub attached: u64,
    /// Events lost, by the writers' and the collector's counts (threads
    /// whose counters were damaged are not in it: see `damaged_accounts`).
    pub lost: u64,
    /// Damage reports.
    pub damage: u64,
    /// Instrumented processes not recorded (each has a `weft:probe_missed` record).
    pub missed: u64,
    /// Threads whose counters in shared memory were damaged.
    pub damaged_accounts: u64,
    /// Records received but not written for lack of a schema.
    pub unwritten: u64,
    /// Most buffer memory (bytes) attached processes had in memory at once.
    pub peak_memory: usize,
}

pub(crate) struct Probes {
    patterns: Vec<String>,
    mode: Mode,
    geo: Geometry,
    /// How long a full ring may hold a writer up (discard mode).
    wait: Duration,
    /// Told when an attach finishes, so that its first drain is not late.
    wake: Option<std::sync::Arc<weft_kernel::os::Wake>>,
    clock: TscClock,
    attachments: HashMap<u32, Attachment>,
    pending: HashMap<u32, Pending>,
    /// Processes (pid, start time) already looked for (see `rediscover`).
    seen: HashSet<(u32, u64)>,
    pub totals: ProbeTotals,
    /// Buffer memory of live attachments and attaches under way, and its cap.
    memory: usize,
    /// Buffer memory of live attachments only (what the summary reports).
    resident: usize,
    memory_cap: usize,
    /// Attaches under way: pid, the `Pending::id` they were started for,
    /// and the buffer memory set aside for them.
    in_flight: HashMap<u32, (u64, usize)>,
    /// Processes told that the memory cap left some of their threads
    /// without a buffer.
    capped: HashSet<u32>,
    /// Processes whose buffers could not be put in memory: not tried again.
    cannot_grow: HashSet<u32>,
    /// Numbers the `Pending` entries.
    next_watch: u64,
    attach_tx: mpsc::Sender<Attached>,
    attach_rx: mpsc::Receiver<Attached>,
    /// Records of events with no schema when drained (not expected: schemas
    /// are declared as event lists arrive), written or counted by `flush`.
    held: Vec<ProbeEvent>,
    damage_buf: Vec<Damage>,
    pub notices: Vec<Notice>,
    /// New processes seen in the kernel's records, with their parent: a
    /// `clone(CLONE_VM)` child that wrote into its parent's buffers and
    /// ended before the drain could ask the kernel still belongs.
    parents: HashMap<u32, u32>,
    /// Newest kernel record seen (`observe`): the kernel's records come in
    /// time order, this far.
    seen_until: u64,
    /// Attached processes found gone, and when (CLOCK_MONOTONIC ns, and
    /// an instant for the timeout): finished once the kernel's records
    /// have caught up with that moment (`GONE_WAIT` at most), so that the
    /// last drain knows every process the kernel saw it create.
    gone: HashMap<u32, (u64, Instant)>,
    /// Threads telling processes that no attach is coming, under way.
    deferring: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// Processes told at once that no attach is coming (`Later`).
const DEFERRING: usize = 8;

/// Longest an attached process found gone waits for the kernel's records.
const GONE_WAIT: Duration = Duration::from_secs(1);

/// Most new processes `Probes::parents` remembers (then it starts over).
const PARENTS_KEPT: usize = 1 << 20;

impl Probes {
    pub fn new(patterns: Vec<String>, mode: Mode, geo: Geometry, memory_cap: usize, wait: Duration) -> Probes {
        let (attach_tx, attach_rx) = mpsc::channel();
        Probes {
            patterns,
            mode,
            geo,
            wait,
            wake: None,
            clock: TscClock::new(),
            attachments: HashMap::new(),
            pending: HashMap::new(),
            seen: HashSet::new(),
            totals: ProbeTotals::default(),
            memory: 0,
            resident: 0,
            memory_cap,
            in_flight: HashMap::new(),
            capped: HashSet::new(),
            parents: HashMap::new(),
            seen_until: 0,
            gone: HashMap::new(),
            deferring: Default::default(),
            cannot_grow: HashSet::new(),
            next_watch: 0,
            attach_tx,
            attach_rx,
            held: Vec::new(),
            damage_buf: Vec::new(),
            notices: Vec::new(),
        }
    }

    /// Where to say that an attach finished (the recorder's loop watches it).
    pub fn set_wake(&mut self, wake: std::sync::Arc<weft_kernel::os::Wake>) {
        self.wake = Some(wake);
    }

    fn say(&mut self, level: Level, text: String) {
        self.notices.push(Notice { level, text });
    }

    /// Looks again at the traced processes as /proc lists them: one whose
    /// fork or exec record the kernel dropped (its ring was full) would
    /// otherwise never be looked for. A process (pid and start time) is
    /// looked for once.
    pub fn rediscover(&mut self, pids: &[u32]) {
        for &pid in pids {
            if self.pending.contains_key(&pid) || self.in_flight.contains_key(&pid) {
                continue;
            }
            let Some(start) = weft_probe_abi::process_start_time(pid) else {
                continue;
            };
            if self.seen.contains(&(pid, start)) || self.attachments.get(&pid).is_some_and(|a| !a.process_gone()) {
                continue;
            }
            self.watch(pid);
        }
        // Only the living can be met again.
        self.seen.retain(|(p, _)| pids.contains(p));
    }

    /// Starts looking for `pid`'s control socket.
    pub fn watch(&mut self, pid: u32) {
        // Gone already: nothing to attach to.
        if let Some(start) = weft_probe_abi::process_start_time(pid) {
            self.next_watch += 1;
            self.seen.insert((pid, start));
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
        let start_ns = start.saturating_mul(1_000_000_000 / weft_kernel::os::clock_ticks_per_second());
        // Start times count from boot including suspend (CLOCK_BOOTTIME);
        // kernel events are CLOCK_MONOTONIC.
        let boot_ts = ts.saturating_add(weft_kernel::os::suspended_ns());
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
        self.seen.insert((pid, start));
        self.pending.insert(pid, Pending::new(start, self.next_watch));
    }

    pub fn looking(&self) -> bool {
        !self.pending.is_empty()
    }

    /// How soon the fastest-filling thread ring of any attached process
    /// would be full, at the pace of its last drain passes.
    pub fn fill_time(&self) -> Option<std::time::Duration> {
        self.attachments.values().filter_map(|a| a.fill_time()).min()
    }

    /// Attached processes are being drained (the recorder then polls faster).
    pub fn active(&self) -> bool {
        !self.attachments.is_empty()
    }

    /// New processes (fork) and new images (exec) may be instrumented.
    pub fn observe(&mut self, ev: &KernelEvent) {
        self.seen_until = self.seen_until.max(ev.ts);
        match &ev.kind {
            EventKind::Fork { parent_pid, .. } if *parent_pid != ev.pid && ev.pid == ev.tid => {
                if self.parents.len() >= PARENTS_KEPT {
                    self.parents.clear();
                }
                self.parents.insert(ev.pid, *parent_pid);
                self.watch_seen(ev.pid, ev.ts, true)
            }
            EventKind::Exec { .. } => self.watch_seen(ev.pid, ev.ts, false),
            _ => {}
        }
    }

    /// Starts attaches (on their own threads: a peer that answers slowly or
    /// never must not hold up draining) and takes in those that finished.
    fn try_attach(&mut self, enc: &mut Encoder) {
        let now = Instant::now();
        while let Ok((pid, start, result)) = self.attach_rx.try_recv() {
            let (id, need) = self.in_flight.remove(&pid).unwrap_or_default();
            self.memory = self.memory.saturating_sub(need);
            self.attached_one(pid, id, start, result, now, enc);
        }
        // Oldest first: with more processes waiting than attaches run at
        // once, each gets its turn.
        let mut pids: Vec<(u64, u32)> = self.pending.iter().map(|(&pid, p)| (p.id, pid)).collect();
        pids.sort_unstable();
        let mut dirs = None;
        for (_, pid) in pids {
            let Some(&Pending {
                deadline,
                start,
                id,
                listening,
                ref error,
                ..
            }) = self.pending.get(&pid)
            else {
                continue;
            };
            if self.in_flight.contains_key(&pid) {
                continue;
            }
            let gone = weft_probe_abi::process_start_time(pid) != Some(start);
            // The deadline is for opening a control socket, and for attach
            // errors; an instrumented process waiting its turn keeps it.
            if gone || (now > deadline && (!listening || error.is_some())) {
                let why = if gone {
                    "it exited before an attach succeeded"
                } else {
                    "no attach succeeded within 5 s"
                };
                self.give_up(pid, why, enc);
                continue;
            }
            if let Some(old) = self.attachments.get(&pid) {
                // The image we are attached to is still there: an exec seen
                // before its connection's close is; look again next round.
                if !old.process_gone() {
                    continue;
                }
                self.finish_one(pid, enc);
            }
            // Not (yet) listening: a new image may still be starting.
            let dirs = dirs.get_or_insert_with(weft_probe_collect::SocketDirs::scan);
            if !dirs.listening(pid) {
                continue;
            }
            if let Some(p) = self.pending.get_mut(&pid) {
                p.listening = true;
            }
            // Full: the rest are still looked at (so that each one seen
            // listening is accounted for if it never gets its turn).
            if self.in_flight.len() >= ATTACHING_AT_ONCE {
                continue;
            }
            // One process is always let in, however large its buffers.
            // The first process attached gets UP_FRONT, the others their
            // threads and SPARE (a fork storm fits many more).
            let first = self.attachments.is_empty() && self.in_flight.is_empty();
            let ready = weft_probe_collect::initial_ready(pid, self.geo, first);
            let need = self.geo.ready_len(ready);
            if self.memory > 0 && self.memory.saturating_add(need) > self.memory_cap {
                // It waits (within its 5 s) for memory to be given back by
                // a process that exits; listed as not recorded only then.
                let why = format!(
                    "{MEMORY_CAP} ({} MiB in use by {} process{}, --probe-memory {} MiB); raise it, or lower --probe-buffer or --probe-threads",
                    self.memory >> 20,
                    self.attachments.len() + self.in_flight.len(),
                    if self.attachments.len() + self.in_flight.len() == 1 { "" } else { "es" },
                    self.memory_cap >> 20
                );
                if let Some(p) = self.pending.get_mut(&pid) {
                    p.error = Some(why);
                    // A process waiting for its attach (a fork child waits
                    // up to 3 s in `fork`) goes on at once; on a thread of
                    // its own, as an attach: a peer that answers slowly must
                    // not hold up draining.
                    // At most DEFERRING at once (the others wait, as they
                    // would without being told, and are told if still here).
                    if !p.deferred && self.deferring.load(Ordering::Acquire) < DEFERRING {
                        p.deferred = true;
                        let busy = self.deferring.clone();
                        busy.fetch_add(1, Ordering::AcqRel);
                        let start = p.start;
                        let spawned = std::thread::Builder::new()
                            .name(format!("weft-later-{pid}"))
                            .spawn(move || {
                                let _ = weft_probe_collect::defer(pid, start);
                                busy.fetch_sub(1, Ordering::AcqRel);
                            });
                        if spawned.is_err() {
                            self.deferring.fetch_sub(1, Ordering::AcqRel);
                        }
                    }
                }
                continue;
            }
            self.memory += need;
            self.in_flight.insert(pid, (id, need));
            let (tx, patterns, mode, geo, wait, wake) = (
                self.attach_tx.clone(),
                self.patterns.clone(),
                self.mode,
                self.geo,
                self.wait,
                self.wake.clone(),
            );
            let spawned = std::thread::Builder::new()
                .name(format!("weft-attach-{pid}"))
                .spawn(move || {
                    let _ = tx.send((
                        pid,
                        start,
                        Attachment::attach_waiting(pid, &patterns, mode, geo, wait, ready),
                    ));
                    if let Some(w) = wake {
                        w.notify();
                    }
                });
            if spawned.is_err() {
                self.in_flight.remove(&pid);
                self.memory -= need;
            }
        }
    }

    /// Takes in the outcome of one attach.
    fn attached_one(
        &mut self,
        pid: u32,
        id: u64,
        start: u64,
        result: Result<Attachment, ProbeError>,
        now: Instant,
        enc: &mut Encoder,
    ) {
        match result {
            Ok(mut att) if att.info.start_time != start => {
                // The pid was reused in the meantime: not our process.
                self.settle(pid, id);
                let _ = att.finish(&self.clock, &mut Collect::default());
            }
            Ok(att) => {
                self.settle(pid, id);
                self.totals.attached += 1;
                self.hold(att.memory());
                enc.probe_attach(
                    weft_kernel::monotonic_ns(),
                    pid,
                    att.info.events.len() as u64,
                    att.enabled,
                    att.session_bit,
                    att.info.user_events,
                );
                for why in enc.probe_events(&att.info) {
                    self.say(Level::Warning, why);
                }
                self.attachments.insert(pid, att);
            }
            // Someone else's socket, or a link, at the process's socket
            // path: nothing was sent; said at once, even when quiet.
            Err(e @ (ProbeError::WrongPeer { .. } | ProbeError::ReusedPid { .. } | ProbeError::Unsafe { .. })) => {
                self.settle(pid, id);
                self.say(
                    Level::Alert,
                    format!("not attaching to the weft-probe events of PID {pid}: {e}"),
                );
                self.missed(pid, e.to_string(), enc);
            }
            // Gone before it listened, or an exec left the old image's socket
            // file behind for a moment: look again next round.
            Err(ProbeError::NotInstrumented { .. }) => {}
            Err(ProbeError::Io { source, .. })
                if matches!(source.raw_os_error(), Some(libc::ECONNREFUSED) | Some(libc::ENOENT)) => {}
            // Try again next round until the deadline; say why only then.
            Err(e) => {
                if let Some(p) = self.pending.get_mut(&pid).filter(|p| p.id == id) {
                    p.error = Some(e.to_string());
                    if now + Duration::from_millis(20) > p.deadline {
                        self.give_up(pid, "no attach succeeded within 5 s", enc);
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
    fn give_up(&mut self, pid: u32, why: &str, enc: &mut Encoder) {
        if let Some(p) = self.pending.remove(&pid) {
            if p.listening {
                let why = match p.error {
                    // It waited for buffer memory: that is the reason.
                    Some(e) if e.starts_with(MEMORY_CAP) => format!("{e} ({why})"),
                    Some(e) => format!("{why} (last error: {e})"),
                    None => why.to_string(),
                };
                self.missed(pid, why, enc);
            }
        }
    }

    /// An instrumented process whose events are not recorded, and why: in
    /// the trace and in the summary, never silent.
    fn missed(&mut self, pid: u32, why: String, enc: &mut Encoder) {
        self.totals.missed += 1;
        if self.totals.missed <= MISSED_SAID {
            self.say(
                Level::Warning,
                format!("PID {pid}: weft-probe events not recorded: {why}"),
            );
        }
        enc.probe_missed(weft_kernel::monotonic_ns(), pid, &why);
    }

    /// One round: attach where possible, drain every attachment. Returns
    /// how many events it drained.
    pub fn poll(&mut self, enc: &mut Encoder) -> u64 {
        let before = self.totals.events;
        if !self.pending.is_empty() || !self.in_flight.is_empty() {
            self.try_attach(enc);
        }
        if self.attachments.is_empty() {
            return self.totals.events - before;
        }
        self.clock.update();
        let pids: Vec<u32> = self.attachments.keys().copied().collect();
        for pid in pids {
            let Some(mut att) = self.attachments.remove(&pid) else {
                continue;
            };
            self.drain(&mut att, false, enc);
            self.grow(&mut att);
            let gone = att.process_gone();
            self.attachments.insert(pid, att);
            self.flush(enc);
            if gone {
                let now = weft_kernel::monotonic_ns();
                let (since, at) = *self.gone.entry(pid).or_insert((now, Instant::now()));
                if self.seen_until >= since || at.elapsed() >= GONE_WAIT {
                    self.finish_one(pid, enc);
                }
            }
        }
        self.totals.events - before
    }

    /// Puts buffers for more threads of `att` in memory when its threads
    /// have claimed (nearly) all that are, within the memory cap.
    fn grow(&mut self, att: &mut Attachment) {
        let pid = att.pid();
        if self.cannot_grow.contains(&pid) {
            return;
        }
        let Some((claimed, want)) = att.wants_ready() else {
            return;
        };
        // As many as fit under the cap.
        let ring = self.geo.ring_bytes().max(1);
        let ready = att.ready();
        let fit = (self.memory_cap.saturating_sub(self.memory) / ring).min(u32::MAX as usize) as u32;
        let to = want.min(ready.saturating_add(fit));
        // Said once the cap leaves the next new thread without a buffer
        // (not merely fewer spare ones).
        if to < want && claimed >= to {
            if self.capped.insert(pid) {
                let over = if self.memory > self.memory_cap {
                    " (the first process is attached whatever its size)"
                } else {
                    ""
                };
                let why = format!(
                    "{MEMORY_CAP} ({} MiB in use, --probe-memory {} MiB{over}): threads beyond its first {} get no buffer, and their events are dropped and counted; raise --probe-memory, or lower --probe-buffer",
                    self.memory >> 20,
                    self.memory_cap >> 20,
                    to,
                );
                self.say(Level::Warning, format!("PID {pid}: {why}"));
            }
            if to <= ready {
                return;
            }
        }
        match att.grow(to) {
            Ok(added) => {
                self.hold(added);
            }
            Err(e) => {
                self.cannot_grow.insert(pid);
                let why =
                    format!("no more thread buffers: {e}; threads without one have their events dropped and counted");
                self.say(Level::Warning, format!("PID {pid}: {why}"));
            }
        }
    }

    /// Counts `bytes` of buffer memory an attached process now holds.
    fn hold(&mut self, bytes: usize) {
        self.memory += bytes;
        self.resident += bytes;
        self.totals.peak_memory = self.totals.peak_memory.max(self.resident);
    }

    /// Gives back the buffer memory of a process no longer attached.
    fn release(&mut self, bytes: usize) {
        self.memory = self.memory.saturating_sub(bytes);
        self.resident = self.resident.saturating_sub(bytes);
    }

    /// Drains an attachment straight into the trace (`last`: detach first,
    /// and return its per-thread accounting).
    fn drain(&mut self, att: &mut Attachment, last: bool, enc: &mut Encoder) -> Vec<ThreadStats> {
        let mut sink = ToTrace {
            enc,
            events: &mut self.totals.events,
            held: &mut self.held,
            damage: &mut self.damage_buf,
            notices: &mut self.notices,
            parents: &self.parents,
        };
        if last {
            att.finish(&self.clock, &mut sink)
        } else {
            att.drain(&self.clock, &mut sink);
            Vec::new()
        }
    }

    fn finish_one(&mut self, pid: u32, enc: &mut Encoder) {
        self.gone.remove(&pid);
        if let Some(mut att) = self.attachments.remove(&pid) {
            if let Some(why) = att.broken().map(str::to_owned) {
                // Events announced after the break were never enabled: said,
                // and marked in the trace where it happened.
                let what =
                    format!("control connection broken by {why}; events it announced after that are not recorded");
                self.say(Level::Warning, format!("PID {pid}: {what}"));
                self.damage_buf.push(Damage {
                    pid,
                    tid: pid,
                    slot: 0,
                    gen: 0,
                    after_seq: None,
                    offset: 0,
                    what,
                });
            }
            self.release(att.memory());
            let no_slot = att.no_slot_drops();
            let (capped, failed) = (self.capped.remove(&pid), self.cannot_grow.remove(&pid));
            let why_no_slot = if failed {
                "buffers for more of its threads could not be put in memory (said above)".to_string()
            } else if capped {
                "the memory cap left their threads without a buffer (said above); try a larger --probe-memory or a smaller --probe-buffer".to_string()
            } else if att.ready() >= self.geo.slots {
                format!(
                    "all {} thread slots were taken; try a larger --probe-threads",
                    self.geo.slots
                )
            } else {
                "their threads started before the recorder had put buffers for them in memory (a burst of new threads); a smaller --probe-buffer puts more in memory at attach".to_string()
            };
            let stats = self.drain(&mut att, true, enc);
            self.flush(enc);
            self.write_stats(pid, &stats, (no_slot, &why_no_slot), enc);
            let unregistered = att.unregistered();
            if unregistered > 0 {
                let why = format!(
                    "{unregistered} of its events were registered after its registry was full; they stay disabled and are not in the file"
                );
                self.say(Level::Warning, format!("PID {pid}: {why}"));
                enc.probe_missed(weft_kernel::monotonic_ns(), pid, &why);
            }
        }
    }

    /// Detaches from everything (end of recording). Attaches still under
    /// way are waited for (each gives up within a second or two).
    pub fn finish(&mut self, enc: &mut Encoder) {
        while !self.in_flight.is_empty() {
            let Ok((pid, start, result)) = self.attach_rx.recv_timeout(Duration::from_secs(5)) else {
                break;
            };
            let (id, need) = self.in_flight.remove(&pid).unwrap_or_default();
            self.memory = self.memory.saturating_sub(need);
            self.attached_one(pid, id, start, result, Instant::now(), enc);
        }
        let pids: Vec<u32> = self.pending.keys().copied().collect();
        for pid in pids {
            self.give_up(pid, "the recording ended before an attach succeeded", enc);
        }
        self.clock.update();
        let pids: Vec<u32> = self.attachments.keys().copied().collect();
        for pid in pids {
            self.finish_one(pid, enc);
        }
    }

    fn write_stats(&mut self, pid: u32, stats: &[ThreadStats], (no_slot, why): (u64, &str), enc: &mut Encoder) {
        let now = weft_kernel::monotonic_ns();
        // Counters come from the program's memory: saturate, never overflow.
        let lost_of = |t: &ThreadStats| {
            [t.lost_full, t.lost_busy, t.abandoned, t.damaged, t.overwritten]
                .iter()
                .fold(0u64, |a, &b| a.saturating_add(b))
        };
        // The threads that lost most get a line each; the others are summed
        // on one (a program with hundreds of threads would fill the screen).
        let mut losers: Vec<&ThreadStats> = stats.iter().filter(|t| t.suspect.is_none() && lost_of(t) > 0).collect();
        losers.sort_by_key(|t| std::cmp::Reverse(lost_of(t)));
        let (named, rest) = losers.split_at(losers.len().min(THREADS_SAID));
        // The process's own drops go with its first thread, not with a task
        // of another process that writes into its buffers.
        let first_own = stats.iter().position(|t| t.pid == pid).unwrap_or(0);
        for (i, t) in stats.iter().enumerate() {
            if let Some(why) = &t.suspect {
                // Damaged counters are not facts: only what we received is.
                self.totals.damaged_accounts += 1;
                let text = format!(
                    "PID {} thread {}: {} probe events received; attempted and lost not known: {why}",
                    t.pid, t.tid, t.received
                );
                self.say(Level::Warning, text);
            } else {
                self.totals.lost = self.totals.lost.saturating_add(lost_of(t));
            }
            enc.probe_stats(now, t.pid, t, if i == first_own { no_slot } else { 0 });
        }
        for t in named {
            let text = format!(
                "PID {} thread {}: {} probe events attempted, {} received, {} lost (ring full {}, busy {}, abandoned {}, damaged {}, overwritten {}){}",
                t.pid, t.tid, t.attempted, t.received, lost_of(t), t.lost_full, t.lost_busy, t.abandoned, t.damaged, t.overwritten,
                self.bigger_ring(t.attempted, t.lost_full)
            );
            self.say(Level::Warning, text);
        }
        if !rest.is_empty() {
            let sum = |f: &dyn Fn(&ThreadStats) -> u64| rest.iter().fold(0u64, |a, t| a.saturating_add(f(t)));
            // The hint for the thread that lost the largest share.
            let worst = rest.iter().max_by(|a, b| {
                let share = |t: &ThreadStats| t.lost_full as f64 / t.attempted.max(1) as f64;
                share(a).total_cmp(&share(b))
            });
            // Tasks of other processes that share its memory (clone(CLONE_VM)
            // children) write into its buffers too: said, not counted as its.
            let others = {
                let mut pids: Vec<u32> = rest.iter().map(|t| t.pid).filter(|&p| p != pid).collect();
                pids.sort_unstable();
                pids.dedup();
                pids.len()
            };
            let whose = match others {
                0 => format!("PID {pid}"),
                1 => format!("PID {pid} and 1 process sharing its memory"),
                n => format!("PID {pid} and {n} processes sharing its memory"),
            };
            let text = format!(
                "{whose}: {} more threads lost {} of {} probe events (ring full {}){}; `weft dump --event 'weft:probe*'` lists every thread",
                rest.len(),
                sum(&lost_of),
                sum(&|t| t.attempted),
                sum(&|t| t.lost_full),
                worst.map_or(String::new(), |t| self.bigger_ring(t.attempted, t.lost_full))
            );
            self.say(Level::Warning, text);
        }
        self.totals.lost = self.totals.lost.saturating_add(no_slot);
        if no_slot > 0 {
            self.say(
                Level::Warning,
                format!("PID {pid}: {no_slot} probe events dropped because {why}"),
            );
        }
    }

    /// A suggestion when a full ring lost events: the ring that would have
    /// held a burst that many times longer (a power of two, at most 64x
    /// today's and 1 GiB), or nothing.
    fn bigger_ring(&self, attempted: u64, lost_full: u64) -> String {
        bigger_ring_hint(self.geo.ring_bytes() as u64, attempted, lost_full)
    }

    /// Writes records held back (no schema when they were drained) and
    /// damage reports.
    fn flush(&mut self, enc: &mut Encoder) {
        for ev in std::mem::take(&mut self.held) {
            if enc.probe_event(&ev) {
                self.totals.events += 1;
                continue;
            }
            // Decoded with an announced field list, but no schema: should
            // not happen; say so rather than lose it silently.
            self.totals.unwritten += 1;
            self.totals.lost = self.totals.lost.saturating_add(1);
            if self.totals.unwritten == 1 {
                let text = format!(
                    "weft-probe event id {} of PID {} has no schema in the trace; its records are left out",
                    ev.event, ev.process
                );
                self.say(Level::Warning, text);
            }
        }
        for d in std::mem::take(&mut self.damage_buf) {
            self.totals.damage += 1;
            if self.totals.damage <= DAMAGE_SAID {
                let text = format!(
                    "damaged weft-probe buffer in PID {} thread {} (slot {}, sub-buffer generation {}, after seq {}, offset {:#x}): {}",
                    d.pid,
                    d.tid,
                    d.slot,
                    d.gen,
                    d.after_seq.map_or("-".into(), |s| s.to_string()),
                    d.offset,
                    d.what
                );
                self.say(Level::Warning, text);
            }
            enc.probe_damage(weft_kernel::monotonic_ns(), &d);
        }
    }
}

/// Encodes drained records straight into the trace, without an
/// intermediate copy.
struct ToTrace<'a> {
    enc: &'a mut Encoder,
    events: &'a mut u64,
    held: &'a mut Vec<ProbeEvent>,
    damage: &'a mut Vec<Damage>,
    notices: &'a mut Vec<Notice>,
    parents: &'a HashMap<u32, u32>,
}

impl Sink for ToTrace<'_> {
    #[inline]
    fn record(&mut self, r: &ProbeRecord<'_>) {
        if self.enc.probe_record(r) {
            *self.events += 1;
        } else {
            self.held.push(r.to_event());
        }
    }

    fn run_buffer(&mut self, max: usize) -> Option<&mut Vec<u8>> {
        Some(self.enc.probe_records(max))
    }

    fn run(&mut self, run: &ProbeRun<'_>) {
        match self.enc.probe_run(run) {
            Ok(()) => *self.events += u64::from(run.count),
            // An event without a schema yet: record by record (held back).
            Err(Some(bytes)) => run.for_each(&bytes, |r| self.record(r)),
            Err(None) => {
                if let RunBytes::Here(bytes) = run.records {
                    run.for_each(bytes, |r| self.record(r));
                }
            }
        }
    }

    fn damage(&mut self, d: Damage) {
        self.damage.push(d);
    }

    fn belongs(&mut self, process: u32, pid: u32) -> Option<bool> {
        match weft_probe_collect::belongs_to(process, pid) {
            Some(true) => Some(true),
            // Gone, or its pid reused since: the kernel said whose child
            // it was when it began.
            answer => match self.parents.get(&pid) {
                Some(&parent) => Some(parent == process),
                None => answer,
            },
        }
    }

    /// Events announced since the attach: declared before their records come.
    fn events(&mut self, info: &ProcessInfo) {
        for text in self.enc.probe_events(info) {
            self.notices.push(Notice {
                level: Level::Warning,
                text,
            });
        }
    }
}

/// What `--probe-buffer` would have kept more of a burst, for a thread with
/// a ring of `now` bytes that lost `lost_full` of `attempted` events to a
/// full ring (empty if none). The size is said exactly, in K below 1 MiB.
fn bigger_ring_hint(now: u64, attempted: u64, lost_full: u64) -> String {
    if lost_full == 0 || now == 0 {
        return String::new();
    }
    let kept = attempted.saturating_sub(lost_full).max(1);
    let factor = attempted.div_ceil(kept).clamp(2, 64).next_power_of_two();
    let want = (now * factor).min(1 << 30).max(now);
    let size = if want.is_multiple_of(1 << 20) {
        format!("{}M", want >> 20)
    } else {
        format!("{}K", want.div_ceil(1 << 10))
    };
    format!("; --probe-buffer {size} would keep {}x more of a burst", want / now)
}

#[cfg(test)]
mod tests {
    use super::bigger_ring_hint;

    #[test]
    fn the_bigger_ring_hint_names_the_size_it_computed() {
        assert_eq!(bigger_ring_hint(8 << 20, 100, 0), "");
        // (ring, attempted, lost to a full ring) -> size and factor said.
        for (now, attempted, lost, size, factor) in [
            // Half lost: twice the ring.
            (8 << 20, 100, 50, "16M", 2),
            // Small rings in K, not rounded up to a whole MiB.
            (8 << 10, 100, 50, "16K", 2),
            (8 << 10, 6400, 6300, "512K", 64),
            // At most 1 GiB, and the factor said is the one of that size.
            (512 << 20, 100, 99, "1024M", 2),
        ] {
            assert_eq!(
                bigger_ring_hint(now, attempted, lost),
                format!("; --probe-buffer {size} would keep {factor}x more of a burst")
            );
        }
    }
}
