//! The collector side of weft-probe: find instrumented processes, hand each
//! one a sealed, pre-faulted memfd for its event buffers, and drain what it
//! writes there.
//!
//! The memory is written by a program weft does not trust. This crate copies
//! every field out of it once, validates the copy, and only then uses it; it
//! never makes a reference into the shared mapping, and no byte pattern the
//! program can write there makes it panic, hang or read out of bounds. It
//! reports damage (process, thread, sequence, offset) and keeps going. It
//! knows nothing of the trace file: callers turn `ProbeEvent`s into records.
//!
//! Glossary: an `Attachment` is the collector's side of one instrumented
//! process (control connection, area, drain state); inside the process it
//! is one *session* (see `weft-probe-abi` for slot, sub-buffer, generation
//! and epoch). *Damage* is anything in the area that the protocol cannot
//! produce; it is reported, counted and skipped, never trusted.

mod area;
mod clock;
mod connect;
mod drain;
#[doc(hidden)]
pub mod fuzzing;
mod kin;

pub use area::Area;
pub use clock::{TickLine, TscClock};
pub use connect::{discover, Instrumented};
pub use drain::{Collect, Damage, ProbeEvent, ProbeRecord, ProbeRun, RunBytes, Sink, ThreadStats};
pub use kin::belongs_to;
pub use weft_probe_abi::control::{EventDesc, ProcessInfo};
pub use weft_probe_abi::layout::{Geometry, Mode};
pub use weft_probe_abi::payload::{FieldType, Value, ValueRef};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ProbeError {
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("process {pid} has no weft-probe control socket")]
    NotInstrumented { pid: u32 },
    #[error("control socket {path} is served by pid {actual} uid {uid}, not by pid {expected} as the directory's uid: refusing to send it anything")]
    WrongPeer {
        path: String,
        expected: u32,
        actual: i32,
        uid: u32,
    },
    #[error("control socket {path} was opened by an earlier process {pid} that has exited (its pid was reused, or another process holds the socket): refusing to send it anything")]
    ReusedPid { path: String, pid: u32 },
    #[error("control socket {path} refused: {why}")]
    Unsafe { path: String, why: String },
    #[error("process {pid} answered badly: {why}")]
    Protocol { pid: u32, why: String },
}

/// Tells instrumented process `pid` (checked as an attach checks it),
/// started at `start_time` (`/proc/PID/stat` field 22: not another image
/// or process that took the pid since), that no attach is coming now, so
/// that it stops waiting for one: a program started under `weft record`
/// waits for its attach, a fork child of a recorded one for up to 3 s. An
/// attach may still come later.
pub fn defer(pid: u32, start_time: u64) -> Result<(), ProbeError> {
    let (conn, info, mut inbox) = connect::hello(pid)?;
    if info.start_time != start_time {
        return Err(ProbeError::Protocol {
            pid,
            why: format!("started at {}, not {start_time}: another process", info.start_time),
        });
    }
    connect::later(&conn, &mut inbox, pid)
}

/// Whether something is at `pid`'s control socket path (it may still
/// refuse, not answer, or be a planted link, which an attach reports).
pub fn listening(pid: u32) -> bool {
    SocketDirs::scan().listening(pid)
}

/// The directories where control sockets may be, listed once: a collector
/// looking for many processes in one round reads them once, not per process.
pub struct SocketDirs(Vec<(std::path::PathBuf, u32)>);

impl SocketDirs {
    pub fn scan() -> SocketDirs {
        SocketDirs(connect::candidate_dirs())
    }

    /// As `listening`.
    pub fn listening(&self, pid: u32) -> bool {
        matches!(connect::find_in(&self.0, pid), Ok(_) | Err(ProbeError::Unsafe { .. }))
    }
}

/// Asks an instrumented process what it declares, without attaching.
pub fn query(pid: u32) -> Result<ProcessInfo, ProbeError> {
    connect::hello(pid).map(|(_, info, _)| info)
}

/// Whether this kernel has user_events (`/sys/kernel/tracing/user_events_data`), or why not.
pub fn kernel_user_events() -> Result<(), String> {
    let p = "/sys/kernel/tracing/user_events_data";
    match std::fs::metadata(p) {
        Ok(_) => Ok(()),
        // tracefs is there, the file is not: the kernel lacks the feature.
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && std::path::Path::new("/sys/kernel/tracing/events").is_dir() =>
        {
            Err("this kernel is built without CONFIG_USER_EVENTS".into())
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            Err(format!("{p}: not readable by this user (tracefs is root's)"))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "{p}: not found (tracefs is not mounted, or the kernel has no user_events)"
        )),
        Err(e) => Err(format!("{p}: {e}")),
    }
}

/// Slots kept ready beyond those claimed: threads started together find
/// their buffers in memory, without waiting for the next drain pass.
pub const SPARE: u32 = 4;

/// Thread buffers put in memory at attach whatever the process's thread
/// count, in bytes (what 64 slots of 2 MiB took before buffers were put in
/// memory as threads claim them): with buffers of 2 MiB or less every slot
/// is ready from the start, and a program that starts up to 16 threads at
/// once finds 8 MiB buffers ready for each.
pub const UP_FRONT: usize = 128 << 20;

/// How many slots to make ready when attaching to `pid`: one per thread it
/// has now and `SPARE` more, or, with `up_front`, as many as `UP_FRONT`
/// holds if more. A recorder gives `UP_FRONT` to the first process it
/// attaches only: a program of many processes (a server's forked workers)
/// would otherwise take 128 MiB for each, and most of them would find the
/// memory cap reached.
pub fn initial_ready(pid: u32, geo: Geometry, up_front: bool) -> u32 {
    // weft-probe's own threads (named so) never write events.
    let threads = std::fs::read_dir(format!("/proc/{pid}/task")).map_or(1, |d| {
        d.flatten()
            .filter(|t| std::fs::read(t.path().join("comm")).map_or(true, |c| !c.starts_with(b"weft-probe")))
            .count()
    }) as u32;
    let held = if up_front {
        (UP_FRONT / geo.ring_bytes().max(1)).min(u32::MAX as usize) as u32
    } else {
        0
    };
    threads.saturating_add(SPARE).max(held).clamp(1, geo.slots)
}

/// An attachment: the collector's link to one instrumented process (its
/// control connection, the buffer area it handed over, and drain state).
pub struct Attachment {
    pub info: ProcessInfo,
    pub session_bit: u32,
    pub enabled: u32,
    conn: std::os::unix::net::UnixStream,
    /// Frames read from `conn` but not complete yet.
    inbox: connect::Inbox,
    area: Area,
    drain: drain::Drainer,
    detached: bool,
    /// When the last drain pass ran, and how soon at that pace the fullest
    /// thread ring would fill up.
    last_pass: Option<std::time::Instant>,
    fill: Option<std::time::Duration>,
}

impl Attachment {
    /// Connects to `pid`'s control socket, checks who serves it, and
    /// attaches with a new area enabling `patterns` (`provider:event` globs).
    pub fn attach(pid: u32, patterns: &[String], mode: Mode, geo: Geometry) -> Result<Attachment, ProbeError> {
        Self::attach_waiting(pid, patterns, mode, geo, std::time::Duration::ZERO, geo.slots)
    }

    /// As `attach`; in discard mode, a thread whose ring is full waits up
    /// to `wait` for this collector before it drops an event (a writer
    /// older than this option drops at once).
    pub fn attach_waiting(
        pid: u32,
        patterns: &[String],
        mode: Mode,
        geo: Geometry,
        wait: std::time::Duration,
        ready: u32,
    ) -> Result<Attachment, ProbeError> {
        let (conn, info, mut inbox) = connect::hello(pid)?;
        let area = Area::create_ready(geo, mode, ready)?;
        area.set_wait(wait);
        let (bit, enabled) = connect::send_attach(&conn, &mut inbox, pid, &area, mode, patterns)?;
        let drain = drain::Drainer::new(&info, geo, mode, area.salt());
        Ok(Attachment {
            info,
            session_bit: bit,
            enabled,
            conn,
            inbox,
            area,
            drain,
            detached: false,
            last_pass: None,
            fill: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.info.pid
    }

    /// True once the process closed its end (exited, or exec'd).
    pub fn process_gone(&self) -> bool {
        self.inbox.closed || connect::peer_closed(&self.conn)
    }

    /// Moves complete records to `out` and damage reports to `damage`.
    pub fn drain(&mut self, clock: &TscClock, sink: &mut impl Sink) {
        let final_pass = self.detached || self.process_gone();
        // Event lists the process pushed (events registered after attach)
        // arrive before any record of those events.
        for info in connect::pushed(&self.conn, &mut self.inbox, self.info.pid) {
            self.learn(info, sink);
        }
        self.drain.drain(&self.area, clock, final_pass, sink);
        let now = std::time::Instant::now();
        if let Some(prev) = self.last_pass.replace(now) {
            let ring = self.area.geometry().ring_bytes();
            let bytes = self.drain.round_bytes.max(1);
            // Half the ring or more in one pass: it may have been full, and
            // the pace is unknown but too fast for any pause.
            self.fill = Some(if bytes as usize >= ring / 2 {
                std::time::Duration::ZERO
            } else {
                (now - prev).mul_f64(ring as f64 / bytes as f64)
            });
        }
    }

    /// How long the busiest thread's ring would take to fill at the pace
    /// seen between the last two drain passes: a collector that wants to
    /// lose nothing drains again well before that.
    pub fn fill_time(&self) -> Option<std::time::Duration> {
        self.fill
    }

    /// Applies an event list the process sent, and tells the sink.
    fn learn(&mut self, info: ProcessInfo, sink: &mut impl Sink) {
        self.drain.set_events(&info);
        sink.events(&info);
        self.info = info;
    }

    /// Detaches (the process stops writing), drains what is left, and
    /// returns per-thread accounting. Event lists announced until the
    /// detach is answered reach the sink before the final pass.
    pub fn finish(&mut self, clock: &TscClock, sink: &mut impl Sink) -> Vec<ThreadStats> {
        for info in connect::pushed(&self.conn, &mut self.inbox, self.info.pid) {
            self.learn(info, sink);
        }
        for info in connect::detach(&self.conn, &mut self.inbox, self.info.pid) {
            self.learn(info, sink);
        }
        self.detached = true;
        self.drain.last = true;
        self.drain.drain(&self.area, clock, true, sink);
        self.drain.stats(&self.area)
    }

    /// Per-thread accounting so far.
    pub fn stats(&self) -> Vec<ThreadStats> {
        self.drain.stats(&self.area)
    }

    /// Why the control connection broke (a frame over the limit, or one
    /// that does not decode), if it did: what the process announced after
    /// that never arrived.
    pub fn broken(&self) -> Option<&str> {
        self.inbox.broken.as_deref()
    }

    /// Thread slots whose buffers are in memory (claimable).
    pub fn ready(&self) -> u32 {
        self.area.ready()
    }

    /// Bytes of its buffer area in memory.
    pub fn memory(&self) -> usize {
        self.area.populated()
    }

    /// Slots claimed, and how many should be ready now: every claimed one
    /// and `SPARE` more, so that a new thread finds its buffer in memory
    /// already, and at least up to the highest claimed slot (a writer from
    /// before `A_READY`, or a hostile one, may claim beyond the ready
    /// slots: their memory is then counted too). `None` when they are (or
    /// every slot is).
    pub fn wants_ready(&self) -> Option<(u32, u32)> {
        let geo = self.area.geometry();
        let ready = self.area.ready();
        if ready >= geo.slots {
            return None;
        }
        let (mut claimed, mut highest) = (0u32, 0u32);
        for s in 0..geo.slots {
            if self.area.u32(geo.slot_offset(s) + weft_probe_abi::layout::S_CLAIMS) != 0 {
                claimed += 1;
                highest = s + 1;
            }
        }
        let want = claimed.saturating_add(SPARE).max(highest).min(geo.slots);
        (want > ready).then_some((claimed, want))
    }

    /// Makes slots up to `to` ready (their buffers in memory); returns the
    /// bytes this added.
    pub fn grow(&mut self, to: u32) -> Result<usize, ProbeError> {
        let before = self.area.populated();
        self.area.grow(to)?;
        Ok(self.area.populated() - before)
    }

    /// Events dropped because every thread slot was taken.
    pub fn no_slot_drops(&self) -> u64 {
        self.area.no_slot_drops()
    }

    /// Events the process says it could not register (its registry was
    /// full): never enabled, never written. The process's word, unchecked.
    pub fn unregistered(&self) -> u64 {
        self.area.unregistered()
    }
}
