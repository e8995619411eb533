//! The kernel tracer: tracepoint events on the traced tasks (followed into
//! every descendant by `inherit`, or by a cgroup for a launched command),
//! one ring per CPU, woken through epoll.

use std::collections::{BTreeSet, HashMap};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::capture::{Capture, CaptureOptions};
use crate::cgroup::TraceCgroup;
use crate::error::{KernelError, Result};
use crate::event::{carries_addr, Decoder, Decoding, EventKind, KernelEvent, Layouts, Tp};
use crate::perf::{PerfFd, Source, Spec};
use crate::procfs;
use crate::ring::Ring;
use crate::tracefs::Tracefs;

/// Longest filter string the kernel accepts (one page, with margin).
const MAX_FILTER: usize = 4000;
/// Upper bound on the time between a record's timestamp and its arrival in
/// its ring (the kernel takes the time, then writes the record).
const RING_LAG_NS: u64 = 2_000_000;
/// epoll tokens at or above this belong to descriptors added by `watch`.
const EXTRA_TOKEN: u64 = 1 << 32;

/// What a set of events is opened on.
#[derive(Debug, Clone, Copy)]
enum Target {
    Task(u32),
    Cgroup(RawFd),
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Ring size per CPU in bytes.
    pub buffer_bytes: usize,
    /// Syscall numbers to record; None records all.
    pub syscalls: Option<BTreeSet<u32>>,
    /// CPU sampling frequency (Hz), with call chains and user stacks.
    pub sample_hz: Option<u32>,
    /// Bytes of user stack copied with each stack (multiple of 8, at most 65528).
    pub stack_bytes: u32,
    /// Events that also take a stack: syscall names, `signal_deliver`, `signal_generate`.
    pub stack_on: Vec<String>,
    /// User space only: no kernel samples or call chains (what an
    /// unprivileged task may open).
    pub exclude_kernel: bool,
    /// Context switches of the traced threads (`EventKind::Switch`), for
    /// off-CPU time; stacks where they block come from `stack_on`
    /// `sched_switch`.
    pub switches: bool,
    /// What syscall arguments point to, copied in the kernel (eBPF); None:
    /// pointers only.
    pub capture: Option<CaptureOptions>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            buffer_bytes: 8 << 20,
            syscalls: None,
            sample_hz: None,
            stack_bytes: 16384,
            stack_on: Vec::new(),
            exclude_kernel: false,
            switches: false,
            capture: None,
        }
    }
}

/// The kernel side of one recording: the perf events on the traced tasks
/// (or cgroup), one ring per CPU, and the epoll set that wakes the reader.
pub struct KernelTracer {
    tp_ids: HashMap<Tp, u64>,
    /// Tracepoints opened to take stacks: (tracepoint id, trigger name).
    stack_tps: Vec<(u64, String)>,
    opts: Options,
    filter: Option<String>,
    wanted: Option<Vec<bool>>,
    cpus: Vec<u32>,
    rings: Vec<Ring>,
    /// Events writing into another event's ring, with that ring's CPU.
    followers: Vec<(PerfFd, u32)>,
    decoder: Decoder,
    epoll: OwnedFd,
    lost: Vec<u64>,
    corrupt_rings: u64,
    attached: BTreeSet<u32>,
    /// A launched process whose events are dropped until its exec.
    gate: Option<u32>,
    /// The launched process's last execve entry before its exec: the
    /// command's own, kept (with its argv) while the launcher's go.
    gate_execve: Option<KernelEvent>,
    /// Records read before older ones could be (see `drain`).
    later: Vec<KernelEvent>,
    /// Initial stack pointer per process (None: unknown), to trim stack copies.
    stack_tops: HashMap<u32, Option<u64>>,
    /// No tracepoints: side-band records and samples only (see `new`).
    user_only: bool,
    /// The argument capture program, once loaded.
    capture: Option<Capture>,
    /// Why arguments are not captured (asked for, but unavailable).
    capture_off: Option<String>,
    /// CPUs whose ring the capture program writes to.
    capture_cpus: BTreeSet<u32>,
    /// Captured arguments waiting for their syscall record, per thread.
    captured: HashMap<u32, (bool, u32, Vec<u8>)>,
    /// Captured arguments no syscall record claimed.
    captured_orphans: u64,
    /// Siginfo records read before their signal_deliver record, per
    /// thread: time, signal, code, address.
    siginfo: HashMap<u32, (u64, i32, i32, u64)>,
}

impl KernelTracer {
    /// With tracefs, every event weft knows; without (`None`: an
    /// unprivileged recording), user-space events only: side-band records
    /// (process lifecycle, memory maps) and CPU samples of user space.
    pub fn new(tfs: Option<&Tracefs>, opts: Options) -> Result<KernelTracer> {
        let user_only = tfs.is_none();
        let layouts = match tfs {
            Some(tfs) => Layouts::load(tfs)?,
            None => Layouts::default(),
        };
        let tp_ids = layouts.ids.clone();
        let mut stack_tps = Vec::new();
        for name in &opts.stack_on {
            let Some(tfs) = tfs else {
                return Err(KernelError::NoTracefs {
                    reason: format!("--stack-on {name} needs tracepoints, which this recording cannot open"),
                });
            };
            let (sys, tp) = match name.as_str() {
                "signal_deliver" | "signal_generate" => ("signal", name.clone()),
                "sched_switch" => ("sched", name.clone()),
                n => ("syscalls", format!("sys_enter_{n}")),
            };
            if !tfs.has_event(sys, &tp) {
                return Err(KernelError::UnknownSyscall {
                    name: name.clone(),
                    suggestion: None,
                });
            }
            stack_tps.push((tfs.event_format(sys, &tp)?.id, name.clone()));
        }
        // SAFETY: epoll_create1 has no memory preconditions.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            return Err(KernelError::sys(
                "epoll_create1",
                "the session",
                std::io::Error::last_os_error(),
            ));
        }
        let cpus = procfs::online_cpus();
        let (mut capture, mut capture_off) = (None, None);
        if let Some(copts) = &opts.capture {
            let loaded = match tfs {
                None => Err("it needs tracepoints, which this recording cannot open".to_string()),
                Some(tfs) => tfs
                    .event_format("sched", "sched_process_fork")
                    .and_then(|f| Ok(f.field("child_pid")?.offset as u32))
                    .map_err(|e| e.to_string())
                    .and_then(|off| {
                        let n = cpus.iter().max().map_or(1, |&m| m + 1);
                        Capture::load(copts, off, n)
                    }),
            };
            match loaded {
                Ok(c) => capture = Some(c),
                Err(e) => capture_off = Some(e),
            }
        }
        let filter = opts.syscalls.as_ref().and_then(filter_expr);
        let wanted = opts.syscalls.as_ref().map(|set| {
            let max = set.iter().next_back().copied().unwrap_or(0) as usize;
            let mut v = vec![false; max + 1];
            for &nr in set {
                v[nr as usize] = true;
            }
            v
        });
        Ok(KernelTracer {
            tp_ids,
            stack_tps,
            filter,
            wanted,
            lost: vec![0; cpus.iter().max().map_or(1, |&m| m as usize + 1)],
            cpus,
            rings: Vec::new(),
            followers: Vec::new(),
            decoder: Decoder {
                layouts,
                by_id: HashMap::new(),
                malformed: 0,
                sideband_lifecycle: user_only,
            },
            user_only,
            // SAFETY: epoll_create1 returned a fresh descriptor we now own.
            epoll: unsafe { OwnedFd::from_raw_fd(ep) },
            opts,
            corrupt_rings: 0,
            attached: BTreeSet::new(),
            gate: None,
            gate_execve: None,
            later: Vec::new(),
            stack_tops: HashMap::new(),
            capture,
            capture_off,
            capture_cpus: BTreeSet::new(),
            captured: HashMap::new(),
            captured_orphans: 0,
            siginfo: HashMap::new(),
        })
    }

    /// Why syscall arguments are recorded as pointers only, when capture
    /// was asked for and could not be had.
    pub fn capture_unavailable(&self) -> Option<&str> {
        self.capture_off.as_deref()
    }

    /// Captured arguments lost: the capture program found its ring full,
    /// or no syscall record claimed them.
    pub fn capture_lost(&self) -> u64 {
        self.capture.as_ref().map_or(0, |c| c.dropped()) + self.captured_orphans
    }

    /// Gives up capture (the recording goes on with pointers only).
    fn capture_failed(&mut self, why: String) {
        if let Some(mut c) = self.capture.take() {
            let _ = c.switch(false);
        }
        self.capture_off.get_or_insert(why);
    }

    /// Connects the capture program to every CPU's ring (once rings exist)
    /// and, with `follow`, tells it whom to capture; then switches it on.
    fn start_capture(&mut self, follow: impl FnOnce(&mut Capture) -> std::result::Result<(), String>) {
        if self.capture.is_none() {
            return;
        }
        let todo: Vec<u32> = self
            .rings
            .iter()
            .map(|r| r.cpu)
            .filter(|c| !self.capture_cpus.contains(c))
            .collect();
        for cpu in todo {
            let spec = Spec {
                source: Source::BpfOutput,
                stack: None,
                sideband: false,
                enable_on_exec: false,
                wakeup_bytes: 1,
                user_only: false,
                switches: false,
            };
            let what = format!("eBPF argument capture output, CPU {cpu}");
            let opened = PerfFd::open(&spec, -1, cpu as i32, &what).map_err(|e| e.to_string());
            let r = opened.and_then(|fd| {
                let raw = fd.as_raw_fd();
                self.add(fd, cpu, Decoding::Capture).map_err(|e| e.to_string())?;
                self.capture.as_mut().map_or(Ok(()), |c| c.set_output(cpu, raw))
            });
            if let Err(e) = r {
                return self.capture_failed(e);
            }
            self.capture_cpus.insert(cpu);
        }
        let r = match self.capture.as_mut() {
            Some(c) => follow(c).and_then(|()| c.switch(true)),
            None => Ok(()),
        };
        if let Err(e) = r {
            self.capture_failed(e);
        }
    }

    /// Traces a task (thread) and everything it will create. With
    /// `on_exec`, events start at the task's next exec.
    pub fn attach(&mut self, tid: u32, on_exec: bool) -> Result<()> {
        if !self.attached.insert(tid) {
            return Ok(());
        }
        self.open_all(Target::Task(tid), on_exec)?;
        self.start_capture(|c| c.follow_pid(tid));
        Ok(())
    }

    /// Traces every task of a cgroup, without per-task events. `launched` is
    /// the process about to exec the command: its events before the exec
    /// (the launcher's own) are left out, as `enable_on_exec` would.
    pub fn attach_cgroup(&mut self, cgroup: &TraceCgroup, launched: u32) -> Result<()> {
        self.gate = Some(launched);
        self.open_all(Target::Cgroup(cgroup.fd().as_raw_fd()), false)?;
        let id = crate::capture::cgroup_id(cgroup.fd());
        self.start_capture(|c| c.follow_cgroup(id.map_err(|e| format!("reading the cgroup's id: {e}"))?));
        Ok(())
    }

    fn open_all(&mut self, target: Target, on_exec: bool) -> Result<()> {
        let wakeup = (self.opts.buffer_bytes / 4).clamp(4096, u32::MAX as usize) as u32;
        let stack = Some(self.opts.stack_bytes);
        let (sideband_only, user_only) = (self.user_only, self.opts.exclude_kernel);
        let switches = self.opts.switches;
        for ci in 0..self.cpus.len() {
            let cpu = self.cpus[ci];
            if sideband_only {
                let spec = Spec {
                    source: Source::Dummy,
                    stack: None,
                    sideband: true,
                    enable_on_exec: on_exec,
                    wakeup_bytes: wakeup,
                    user_only,
                    switches,
                };
                let fd = self.open(&spec, target, cpu, "process lifecycle and memory maps")?;
                self.add(fd, cpu, Decoding::CpuClock)?;
            }
            for (i, tp) in Tp::ALL.iter().enumerate().filter(|_| !sideband_only) {
                let spec = Spec {
                    source: Source::Tracepoint(self.tp_ids[tp]),
                    stack: None,
                    sideband: i == 0,
                    enable_on_exec: on_exec,
                    wakeup_bytes: wakeup,
                    user_only,
                    switches,
                };
                let (sys, name) = tp.path();
                let fd = self.open(&spec, target, cpu, &format!("{sys}:{name}"))?;
                if matches!(tp, Tp::SysEnter | Tp::SysExit) {
                    if let Some(f) = &self.filter {
                        // Fall back to filtering here if the kernel refuses the expression.
                        if fd.set_filter(f).is_err() {
                            self.filter = None;
                        }
                    }
                }
                self.add(fd, cpu, Decoding::Tp(*tp))?;
            }
            if let Some(hz) = self.opts.sample_hz {
                let spec = Spec {
                    source: Source::CpuClock(hz),
                    stack,
                    sideband: false,
                    enable_on_exec: on_exec,
                    wakeup_bytes: wakeup,
                    user_only,
                    switches,
                };
                let fd = match self.open(&spec, target, cpu, &format!("cpu-clock sampling at {hz} Hz")) {
                    Err(KernelError::Sys {
                        syscall,
                        what,
                        source,
                        hint: None,
                    }) if source.raw_os_error() == Some(libc::EINVAL) => {
                        let max = std::fs::read_to_string("/proc/sys/kernel/perf_event_max_sample_rate")
                            .map_or_else(|_| "?".into(), |m| m.trim().to_string());
                        return Err(KernelError::Sys {
                            syscall,
                            what,
                            source,
                            hint: Some(format!(
                                "the kernel samples at most kernel.perf_event_max_sample_rate = {max} Hz: give --sample a lower rate"
                            )),
                        });
                    }
                    r => r?,
                };
                self.add(fd, cpu, Decoding::CpuClock)?;
            }
            for (id, trigger) in self.stack_tps.clone() {
                let spec = Spec {
                    source: Source::Tracepoint(id),
                    stack,
                    sideband: false,
                    enable_on_exec: on_exec,
                    wakeup_bytes: wakeup,
                    user_only,
                    switches,
                };
                let fd = self.open(&spec, target, cpu, &format!("stacks on {trigger}"))?;
                self.add(fd, cpu, Decoding::Stack { trigger })?;
            }
        }
        Ok(())
    }

    fn open(&self, spec: &Spec, target: Target, cpu: u32, what: &str) -> Result<PerfFd> {
        match target {
            Target::Task(tid) => {
                let what = format!("{what} on task {tid}, CPU {cpu}");
                match PerfFd::open(spec, tid as i32, cpu as i32, &what) {
                    Err(KernelError::Sys { source, .. }) if source.raw_os_error() == Some(libc::ESRCH) => {
                        Err(KernelError::NoSuchProcess { pid: tid })
                    }
                    r => r,
                }
            }
            Target::Cgroup(fd) => PerfFd::open_cgroup(spec, fd, cpu as i32, &format!("{what} on a cgroup, CPU {cpu}")),
        }
    }

    /// Sends an event's records into its CPU's ring (creating the ring for the first one).
    fn add(&mut self, fd: PerfFd, cpu: u32, decoding: Decoding) -> Result<()> {
        self.decoder.by_id.insert(fd.id()?, decoding);
        if let Some(r) = self.rings.iter().find(|r| r.cpu == cpu) {
            fd.set_output(&r.leader)?;
            self.followers.push((fd, cpu));
            return Ok(());
        }
        let ring = Ring::map(fd, cpu, self.opts.buffer_bytes)?;
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: self.rings.len() as u64,
        };
        // SAFETY: registering a descriptor we own with our epoll instance.
        if unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                ring.leader.as_raw_fd(),
                &mut ev,
            )
        } != 0
        {
            return Err(KernelError::sys("epoll_ctl", "ring", std::io::Error::last_os_error()));
        }
        self.rings.push(ring);
        Ok(())
    }

    /// Traces every thread of a running process, re-reading its thread list
    /// until no thread appeared that is not followed.
    pub fn attach_process(&mut self, pid: u32) -> Result<()> {
        loop {
            let tids = procfs::threads(pid)?;
            let new: Vec<u32> = tids.into_iter().filter(|t| !self.attached.contains(t)).collect();
            if new.is_empty() {
                return Ok(());
            }
            for tid in new {
                match self.attach(tid, false) {
                    // A thread that exited meanwhile is fine.
                    Err(KernelError::NoSuchProcess { .. }) if tid != pid => {}
                    r => r?,
                }
            }
        }
    }

    /// Adds another descriptor (pidfd, timerfd) to the wait set, reported
    /// once.
    pub fn watch(&self, fd: RawFd, token: u32) -> Result<()> {
        self.watch_with(fd, token, libc::EPOLLIN | libc::EPOLLONESHOT)
    }

    /// Adds a descriptor reported each time it is ready (an eventfd).
    pub fn watch_always(&self, fd: RawFd, token: u32) -> Result<()> {
        self.watch_with(fd, token, libc::EPOLLIN)
    }

    fn watch_with(&self, fd: RawFd, token: u32, events: i32) -> Result<()> {
        let mut ev = libc::epoll_event {
            events: events as u32,
            u64: EXTRA_TOKEN + u64::from(token),
        };
        // SAFETY: registering a caller-owned descriptor; the caller keeps it open.
        if unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) } != 0 {
            return Err(KernelError::sys(
                "epoll_ctl",
                "watched descriptor",
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    /// Sleeps until a ring passes its watermark, a watched descriptor is
    /// ready, a signal arrives, or the timeout passes. Returns the tokens of
    /// ready watched descriptors.
    pub fn wait(&self, timeout: Duration) -> Vec<u32> {
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 16];
        // Sub-millisecond waits: a collector keeping up with a fast probe
        // ring drains every few hundred microseconds.
        let ts = libc::timespec {
            tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
            tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
        };
        // SAFETY: evs is a valid buffer of 16 entries, ts a valid timespec,
        // and a null sigmask leaves the mask alone.
        let mut n = unsafe { libc::epoll_pwait2(self.epoll.as_raw_fd(), evs.as_mut_ptr(), 16, &ts, std::ptr::null()) };
        if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
            // Before Linux 5.11: whole milliseconds, rounded up.
            let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
            // SAFETY: as above.
            n = unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), evs.as_mut_ptr(), 16, ms) };
        }
        let n = n.max(0) as usize;
        evs[..n]
            .iter()
            .filter(|e| e.u64 >= EXTRA_TOKEN)
            .map(|e| (e.u64 - EXTRA_TOKEN) as u32)
            .collect()
    }

    /// Moves to `out` the records now in the rings that are older than this
    /// call (unsorted across CPUs). Rings are read one after another: a
    /// process that moved from the CPU read first to one read later can have
    /// its newest records in this read and older ones (an exec's new name)
    /// only in the next. So newer records wait for the next call, and every
    /// record handed out comes after all older ones.
    pub fn drain(&mut self, out: &mut Vec<KernelEvent>) {
        let watermark = crate::monotonic_ns().saturating_sub(RING_LAG_NS);
        self.drain_until(out, Some(watermark));
    }

    /// Everything left, held-back records included (after `disable`).
    pub fn drain_rest(&mut self, out: &mut Vec<KernelEvent>) {
        self.drain_until(out, None);
    }

    fn drain_until(&mut self, out: &mut Vec<KernelEvent>, watermark: Option<u64>) {
        let decoder = &mut self.decoder;
        let wanted = &self.wanted;
        let lost = &mut self.lost;
        let tops = &mut self.stack_tops;
        let user_only = self.user_only;
        let captured = &mut self.captured;
        let orphans = &mut self.captured_orphans;
        let siginfo = &mut self.siginfo;
        let later = &mut self.later;
        let first = out.len();
        for ring in &mut self.rings {
            let cpu = ring.cpu;
            let sane = ring.drain(|rec| {
                let Some(mut ev) = decoder.decode(rec, cpu) else {
                    return;
                };
                // Captured arguments come just before their syscall's record
                // in the same ring (the program runs first).
                let tid = ev.tid;
                match &mut ev.kind {
                    EventKind::Captured { exit, nr, data } => {
                        if captured.insert(tid, (*exit, *nr, std::mem::take(data))).is_some() {
                            *orphans += 1;
                        }
                        return;
                    }
                    EventKind::SyscallEnter { nr, data, .. } => {
                        join_captured(captured, orphans, tid, (false, *nr), data)
                    }
                    EventKind::SyscallExit { nr, data, .. } => join_captured(captured, orphans, tid, (true, *nr), data),
                    // The two records of a delivery come in the order their
                    // programs were attached in: whichever is second joins.
                    // The two are written back to back in one delivery: a
                    // record of another delivery (the other one lost) is
                    // further away in time than JOIN_NS, or differs in
                    // signal or code.
                    &mut EventKind::SignalInfo { sig, code, addr } => {
                        if !carries_addr(sig, code) {
                            return;
                        }
                        let ts = ev.ts;
                        let last = out[first..]
                            .iter_mut()
                            .rev()
                            .chain(later.iter_mut().rev())
                            .take(64)
                            .find(|e| {
                                matches!(e.kind, EventKind::SignalDeliver { sig: s, code: c, addr: None, .. }
                                if e.tid == tid && (s, c) == (sig, code) && ts.abs_diff(e.ts) <= JOIN_NS)
                            });
                        match last {
                            Some(KernelEvent {
                                kind: EventKind::SignalDeliver { addr: a, .. },
                                ..
                            }) => *a = Some(addr),
                            _ => {
                                siginfo.insert(tid, (ts, sig, code, addr));
                            }
                        }
                        return;
                    }
                    EventKind::SignalDeliver { sig, code, addr, .. } => {
                        if let Some((t, s, c, a)) = siginfo.remove(&tid) {
                            if (s, c) == (*sig, *code) && t.abs_diff(ev.ts) <= JOIN_NS {
                                *addr = Some(a);
                            }
                        }
                    }
                    EventKind::Exit { .. } => {
                        siginfo.remove(&tid);
                    }
                    _ => {}
                }
                match &mut ev.kind {
                    EventKind::Exec { .. } | EventKind::Comm { exec: true, .. } => {
                        tops.remove(&ev.pid);
                    }
                    EventKind::Sample { regs, stack, .. } if !stack.is_empty() => {
                        let top = *tops.entry(ev.pid).or_insert_with(|| procfs::start_stack(ev.pid));
                        trim_stack(stack, regs[1], top);
                    }
                    _ => {}
                }
                if let (true, EventKind::Comm { comm, exec: true }) = (user_only, &ev.kind) {
                    // No exec tracepoint: the comm record an exec makes
                    // stands for it, with the program as /proc names it now.
                    let filename = std::fs::read_link(format!("/proc/{}/exe", ev.pid))
                        .map_or_else(|_| comm.clone(), |p| p.to_string_lossy().into_owned());
                    out.push(KernelEvent {
                        kind: EventKind::Exec {
                            filename,
                            old_tid: ev.tid,
                        },
                        ..ev.clone()
                    });
                }
                let keep = match (&ev.kind, wanted) {
                    (EventKind::SyscallEnter { nr, .. } | EventKind::SyscallExit { nr, .. }, Some(w)) => {
                        w.get(*nr as usize).copied().unwrap_or(false)
                    }
                    (EventKind::Lost { count }, _) => {
                        if let Some(l) = lost.get_mut(cpu as usize) {
                            *l += count;
                        }
                        true
                    }
                    _ => true,
                };
                if keep {
                    out.push(ev);
                }
            });
            if !sane {
                self.corrupt_rings += 1;
            }
        }
        out.append(&mut self.later);
        if let Some(w) = watermark {
            self.later.extend(out.extract_if(first.., |e| e.ts >= w));
        }
        if let Some(g) = self.gate {
            self.drop_before_exec(g, out, first);
        }
    }

    /// Drops the launched process's records from before its exec (the
    /// launcher's own), as `enable_on_exec` would have. Records come out in
    /// time order across calls (see `drain`), so until the exec's comm record
    /// (the first record of the command) shows up, all of them are older.
    fn drop_before_exec(&mut self, g: u32, out: &mut Vec<KernelEvent>, first: usize) {
        let exec = out[first..]
            .iter()
            .filter(|e| e.pid == g && matches!(e.kind, EventKind::Comm { exec: true, .. }))
            .map(|e| e.ts)
            .min();
        let execve = [
            syscalls::Sysno::execve.id() as u32,
            syscalls::Sysno::execveat.id() as u32,
        ];
        for e in out.extract_if(first.., |e| {
            e.pid == g && !matches!(e.kind, EventKind::Lost { .. }) && exec.is_none_or(|t| e.ts < t)
        }) {
            match &e.kind {
                EventKind::SyscallEnter { nr, .. }
                    if execve.contains(nr) && self.gate_execve.as_ref().is_none_or(|k| k.ts <= e.ts) =>
                {
                    self.gate_execve = Some(e);
                }
                // A failed attempt (a PATH search) is not the command's.
                EventKind::SyscallExit { nr, .. } if execve.contains(nr) => self.gate_execve = None,
                _ => {}
            }
        }
        if exec.is_some() {
            self.gate = None;
            if let Some(e) = self.gate_execve.take() {
                // Until its exec the process is our forked launcher: its name is ours.
                let comm =
                    std::fs::read_to_string("/proc/self/comm").map_or_else(|_| "weft".into(), |c| c.trim().to_string());
                out.push(KernelEvent {
                    kind: EventKind::Comm { comm, exec: false },
                    ..e.clone()
                });
                out.push(e);
            }
        }
    }

    /// Bytes waiting in the fullest ring, and that ring's size.
    pub fn fill(&self) -> (usize, usize) {
        self.rings
            .iter()
            .map(|r| (r.pending(), r.data_size()))
            .max()
            .unwrap_or((0, 1))
    }

    /// Events the kernel dropped, per CPU number.
    pub fn lost_per_cpu(&self) -> Vec<(u32, u64)> {
        self.cpus
            .iter()
            .map(|&c| (c, self.lost.get(c as usize).copied().unwrap_or(0)))
            .collect()
    }

    /// Records the decoder could not make sense of (should stay 0).
    pub fn malformed(&self) -> u64 {
        self.decoder.malformed + self.corrupt_rings
    }

    /// Stops new events; what is in the rings can still be drained.
    pub fn disable(&self) {
        for r in &self.rings {
            r.leader.disable();
        }
        for (f, _) in &self.followers {
            f.disable();
        }
    }

    /// After `disable` and `drain_rest`: losses the kernel counted but
    /// never reported in a ring (a full ring reports them only when it
    /// next has room, which may be never) become a `Lost` event per CPU in
    /// `out`, and part of `lost_per_cpu`.
    pub fn settle_lost(&mut self, out: &mut Vec<KernelEvent>) {
        let mut counted: HashMap<u32, u64> = HashMap::new();
        let all = self.rings.iter().map(|r| (&r.leader, r.cpu));
        for (fd, cpu) in all.chain(self.followers.iter().map(|(f, c)| (f, *c))) {
            if let Some(n) = fd.lost() {
                let c = counted.entry(cpu).or_default();
                *c = c.saturating_add(n);
            }
        }
        let ts = crate::monotonic_ns();
        for (cpu, n) in counted {
            let Some(seen) = self.lost.get_mut(cpu as usize) else {
                continue;
            };
            if n > *seen {
                out.push(KernelEvent {
                    ts,
                    cpu,
                    pid: 0,
                    tid: 0,
                    kind: EventKind::Lost { count: n - *seen },
                });
                *seen = n;
            }
        }
    }

    /// Ends the session without waiting for the kernel. Closing the last
    /// event of a tracepoint, or detaching a BPF program, waits for a grace
    /// period (30–120 ms each on the reference machine, one after another:
    /// most of weft record's exit time). A forked child inherits the
    /// descriptors and closes them once this process has closed its own
    /// copies, which are then cheap. Without that wait the two raced, and
    /// whichever closed a descriptor last paid for it: the recorder still
    /// took 0.3–0.4 s to end after `true`.
    pub fn close_in_background(self) {
        // One hand-off at a time in this process: a second one's child,
        // forked while the first gate was open, would hold the first
        // gate's write end (and the first child the second's).
        static HAND_OFF: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = HAND_OFF.lock().unwrap_or_else(|e| e.into_inner());
        let Some([gate_r, gate_w]) = gate() else {
            drop(self);
            return;
        };
        // SAFETY: the child, a copy of a possibly multi-threaded process,
        // only calls close, poll, read, close_range and _exit
        // (async-signal-safe).
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            unsafe {
                // Not the caller's standard streams: whoever reads them to
                // their end must not wait for this child.
                for fd in 0..3 {
                    libc::close(fd);
                }
                libc::close(gate_w);
                // Until every other copy of the gate's write end is closed
                // (this process's, after it dropped its descriptors), or
                // for 5 s at most: closing early is only slower.
                let mut p = libc::pollfd {
                    fd: gate_r,
                    events: libc::POLLIN,
                    revents: 0,
                };
                loop {
                    let n = libc::poll(&mut p, 1, 5000);
                    if n >= 0 || *libc::__errno_location() != libc::EINTR {
                        break;
                    }
                }
                libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
                libc::_exit(0);
            }
        }
        // pid < 0: no child, so the closes below are the slow ones; fine.
        drop(self);
        // SAFETY: closing the pipe's two ends, ours alone in this process.
        unsafe {
            libc::close(gate_w);
            libc::close(gate_r);
        }
    }

    /// Whether this tracer opened no tracepoints (see `new`).
    pub fn user_only(&self) -> bool {
        self.user_only
    }

    pub fn cpus(&self) -> &[u32] {
        &self.cpus
    }

    pub fn descriptors(&self) -> usize {
        self.rings.len() + self.followers.len()
    }
}

/// A close-on-exec pipe (read end, write end) whose descriptors are above
/// the standard streams, which the hand-off child closes first.
fn gate() -> Option<[libc::c_int; 2]> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into `fds`.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return None;
    }
    for fd in &mut fds {
        if *fd < 3 {
            // SAFETY: duplicating and closing a descriptor we just made.
            let high = unsafe { libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 3) };
            unsafe { libc::close(*fd) };
            *fd = high;
        }
    }
    if fds.iter().any(|&fd| fd < 0) {
        // SAFETY: closing what is left of our own pipe.
        fds.iter().filter(|&&fd| fd >= 0).for_each(|&fd| unsafe {
            libc::close(fd);
        });
        return None;
    }
    Some(fds)
}

/// Longest time between a signal's siginfo record and its signal_deliver
/// record: both are written by the same delivery, one right after the
/// other (a few microseconds at most, with an interrupt in between).
const JOIN_NS: u64 = 1_000_000;

/// Gives a syscall record the arguments captured for it, if the thread's
/// pending capture is for this call (`(exit, nr)`); any other is an orphan.
fn join_captured(
    captured: &mut HashMap<u32, (bool, u32, Vec<u8>)>,
    orphans: &mut u64,
    tid: u32,
    call: (bool, u32),
    data: &mut Vec<u8>,
) {
    if let Some((exit, nr, d)) = captured.remove(&tid) {
        if (exit, nr) == call {
            *data = d;
        } else {
            *orphans += 1;
        }
    }
}

/// Bytes kept above the initial stack pointer: argc and the argv pointers
/// just above it, in case an unwinder looks at the outermost frame's CFA.
const STACK_TOP_MARGIN: u64 = 64;

/// Cuts a main-thread stack copy (taken from `sp` up) at the process's
/// initial stack pointer: what lies above is argv, the environment and the
/// auxiliary vector, often most of the copy, and never read by an unwinder.
/// Copies of other stacks (threads, signal stacks) do not reach `top` and
/// are left alone.
fn trim_stack(stack: &mut Vec<u8>, sp: u64, top: Option<u64>) {
    let Some(top) = top else { return };
    if sp == 0 || sp > top {
        return;
    }
    let keep = top - sp + STACK_TOP_MARGIN;
    if keep < stack.len() as u64 {
        stack.truncate(keep as usize);
    }
}

/// Builds `id == 9 || (id >= 11 && id <= 14) || ...`, or None if too long
/// for the kernel (the session then filters in user space only).
fn filter_expr(set: &BTreeSet<u32>) -> Option<String> {
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for &n in set {
        match ranges.last_mut() {
            Some((_, hi)) if *hi + 1 == n => *hi = n,
            _ => ranges.push((n, n)),
        }
    }
    if ranges.is_empty() {
        return Some("id == -1".into());
    }
    let parts: Vec<String> = ranges
        .iter()
        .map(|&(lo, hi)| {
            if lo == hi {
                format!("id == {lo}")
            } else {
                format!("(id >= {lo} && id <= {hi})")
            }
        })
        .collect();
    let s = parts.join(" || ");
    (s.len() <= MAX_FILTER).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_copies_end_at_the_initial_stack_pointer() {
        let mut s = vec![0u8; 4096];
        trim_stack(&mut s, 0x7000, Some(0x7100));
        assert_eq!(s.len(), 0x100 + STACK_TOP_MARGIN as usize);
        // A thread's stack far below the main one, or no known top: untouched.
        let mut t = vec![0u8; 4096];
        trim_stack(&mut t, 0x1000, Some(0x7100));
        assert_eq!(t.len(), 4096);
        trim_stack(&mut t, 0x7000, None);
        assert_eq!(t.len(), 4096);
    }

    #[test]
    fn filter_uses_ranges() {
        let s = BTreeSet::from([9, 10, 11, 157]);
        assert_eq!(filter_expr(&s).unwrap(), "(id >= 9 && id <= 11) || id == 157");
    }
}
