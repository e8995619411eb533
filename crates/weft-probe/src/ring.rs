//! The write path: per-thread rings in session memory, no lock, no
//! allocation, no syscall in the common case (crate::owner says when), no
//! "inside a write" flag.
//!
//! A write takes a sequence number (counted as attempted), reserves space in
//! the thread's current sub-buffer with a compare-and-swap on the reserve
//! offset, fills the record and commits it with one release store of its
//! state word. A signal handler that interrupts a write simply reserves after
//! it; a handler that never returns leaves a WRITING record the collector
//! skips by its length (or, if it was interrupted between the reservation
//! and the header store, resynchronizes past). Switching sub-buffers is the
//! only multi-step operation; it is marked in the control page together with
//! the stack address of the frame doing it, so that a later write can tell a
//! switch suspended under it (leave it alone, drop and count) from one whose
//! frame a handler jumped out of (finish it).

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use weft_probe_abi::layout::*;
use weft_probe_abi::MAX_SESSIONS;

use crate::local;

/// One session's parameters, in process-private memory: the write path never
/// trusts geometry read back from the shared area.
pub(crate) struct Session {
    pub base: AtomicUsize,
    pub slots: AtomicU32,
    pub subbufs: AtomicU32,
    pub subbuf_size: AtomicU32,
    pub mode: AtomicU32,
    pub salt: AtomicU64,
    pub guard: AtomicU32,
    /// Discard mode: how long a full ring may be waited on (µs).
    pub wait_us: AtomicU32,
}

#[allow(clippy::declare_interior_mutable_const)]
const SESSION_INIT: Session = Session {
    base: AtomicUsize::new(0),
    slots: AtomicU32::new(0),
    subbufs: AtomicU32::new(0),
    subbuf_size: AtomicU32::new(0),
    mode: AtomicU32::new(0),
    salt: AtomicU64::new(0),
    guard: AtomicU32::new(0),
    wait_us: AtomicU32::new(0),
};

pub(crate) static SESSIONS: [Session; MAX_SESSIONS as usize] = [SESSION_INIT; MAX_SESSIONS as usize];

/// What a thread needs to write into one session, cached in its TLS when it
/// claims a slot: valid while the session's epoch is unchanged. Geometry is
/// cached with the slot address so the two always belong to one mapping; a
/// writer that races a detach finishes into the anonymous memory mapped over
/// the old area, within that area's bounds.
///
/// All plain integers, so that copying it out of TLS is a few moves.
#[derive(Clone, Copy)]
struct Ctx {
    /// The slot's control page; 0: none.
    ctl: usize,
    epoch: u32,
    slot: u32,
    subbufs: u32,
    subbuf_size: u32,
    /// `subbufs - 1` when that is a power of two (the common case, taken
    /// inline), else 0.
    mask: u32,
    /// Guard mode (1) or not (0).
    guard: u32,
    /// The writing task (the guard headers name it).
    tid: u32,
}

const NO_CTX: Ctx = Ctx {
    ctl: 0,
    epoch: 0,
    slot: 0,
    subbufs: 0,
    subbuf_size: 0,
    mask: 0,
    guard: 0,
    tid: 0,
};

impl Ctx {
    #[inline(always)]
    fn geo(&self) -> Geometry {
        Geometry {
            slots: 0,
            subbufs: self.subbufs,
            subbuf_size: self.subbuf_size,
        }
    }

    #[inline(always)]
    fn records_end(&self) -> usize {
        self.subbuf_size as usize - GUARD_LEN
    }
}

/// A thread's own: the stack window that tells it from a task running on
/// its storage (crate::owner), and its slot in each session.
struct Local {
    window: crate::owner::Window,
    ctx: [Cell<Ctx>; MAX_SESSIONS as usize],
}

thread_local! {
    // Const-initialized and without destructors: plain static TLS, no lazy
    // initialization on first access.
    static TLS: Local = const {
        Local {
            window: crate::owner::Window::new(),
            ctx: [const { Cell::new(NO_CTX) }; MAX_SESSIONS as usize],
        }
    };
    /// Guard mode, per session: the stack mark of the outermost write that
    /// made the buffers writable (0: none).
    static GUARD_SP: [Cell<u64>; MAX_SESSIONS as usize] = const { [const { Cell::new(0) }; MAX_SESSIONS as usize] };
}

/// In a fork child: the forking thread is another task now (crate::owner).
pub(crate) fn reset_thread_after_fork() {
    TLS.with(|t| crate::owner::reset_after_fork(&t.window));
}

#[inline(always)]
fn p64(base: usize, off: usize) -> *mut u64 {
    (base + off) as *mut u64
}

#[inline(always)]
fn p32(base: usize, off: usize) -> *mut u32 {
    (base + off) as *mut u32
}

/// The calling thread's context in session `si` (`ctl` 0: none): one load
/// of the epoch and one of TLS when it already holds a slot.
#[inline(always)]
fn context(si: usize) -> Ctx {
    let epoch = crate::epoch::current(si);
    let cx = TLS.with(|t| t.ctx[si].get());
    if cx.epoch == epoch && cx.ctl != 0 {
        return cx;
    }
    claim(si).unwrap_or(NO_CTX)
}

/// First write of this thread in this session's epoch: claim a slot. None if
/// the session is gone or every slot is taken.
#[cold]
#[inline(never)]
fn claim(si: usize) -> Option<Ctx> {
    let cx = find_slot(si, crate::owner::tid(), false)?;
    TLS.with(|t| t.ctx[si].set(cx));
    Some(cx)
}

/// A slot for task `tid`: a free one, claimed; or, for a task that runs
/// on another's thread storage (`foreign`, see crate::owner), the one it
/// claimed before, found again by thread id at each write since it cannot
/// cache it (a thread id names one live task). None if the session is gone
/// or every slot is taken (counted).
fn find_slot(si: usize, tid: u32, foreign: bool) -> Option<Ctx> {
    let s = &SESSIONS[si];
    // Epoch before address, and again after the parameters: a detach and a
    // new attach in between would pair this epoch with another mapping.
    let epoch = crate::epoch::current(si);
    let base = s.base.load(Ordering::Acquire);
    if epoch == 0 || base == 0 {
        return None;
    }
    let geo = Geometry {
        slots: s.slots.load(Ordering::Relaxed),
        subbufs: s.subbufs.load(Ordering::Relaxed),
        subbuf_size: s.subbuf_size.load(Ordering::Relaxed),
    };
    let guard = u32::from(s.guard.load(Ordering::Relaxed) != 0);
    std::sync::atomic::fence(Ordering::Acquire);
    if crate::epoch::current(si) != epoch {
        return None;
    }
    let ctx = |ctl: usize, slot: u32| Ctx {
        ctl,
        epoch,
        slot,
        subbufs: geo.subbufs,
        subbuf_size: geo.subbuf_size,
        mask: if geo.subbufs.is_power_of_two() {
            geo.subbufs - 1
        } else {
            0
        },
        guard,
        tid,
    };
    // Only slots whose pages the collector has put in memory: a write never
    // faults in shared memory. Bounded by the geometry whatever the word says.
    // SAFETY: A_READY is in the area header; the collector raises it.
    let ready = unsafe { AtomicU32::from_ptr(p32(base, A_READY)) }.load(Ordering::Acquire);
    let claimable = geo.claimable(ready);
    if foreign {
        for slot in 0..claimable {
            let ctl = base + geo.slot_offset(slot);
            // SAFETY: ctl is inside the mapping (slot < slots, validated geometry).
            let (owner, by) = unsafe {
                (
                    AtomicU32::from_ptr(p32(ctl, S_OWNER)).load(Ordering::Acquire),
                    AtomicU32::from_ptr(p32(ctl, S_PID)).load(Ordering::Acquire),
                )
            };
            if owner == tid && by != 0 {
                return Some(ctx(ctl, slot));
            }
        }
    }
    for slot in 0..claimable {
        let ctl = base + geo.slot_offset(slot);
        // SAFETY: ctl is inside the mapping (slot < slots, validated geometry);
        // other threads race for the owner word, so a real atomic CAS.
        let owner = unsafe { AtomicU32::from_ptr(p32(ctl, S_OWNER)) };
        if owner
            .compare_exchange(0, tid, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            // Which process the task is in, for the collector (which checks
            // it): its own when it is not one of our threads.
            let pid = if foreign { crate::sys::getpid() } else { 0 };
            // SAFETY: the slot is ours now; the collector reads the process
            // id once it sees the claim.
            unsafe {
                AtomicU32::from_ptr(p32(ctl, S_PID)).store(pid, Ordering::Release);
                AtomicU32::from_ptr(p32(ctl, S_CLAIMS)).fetch_add(1, Ordering::Release);
            }
            return Some(ctx(ctl, slot));
        }
    }
    // SAFETY: A_NO_SLOT is in the area header; shared by all threads.
    unsafe { AtomicU64::from_ptr(p64(base, A_NO_SLOT)) }.fetch_add(1, Ordering::Relaxed);
    None
}

/// Writes one record of `size` payload bytes, filled by `put`, into every
/// session whose bit is set in `word`. Inlined into each event's writer so
/// that `put` is compiled for its argument types (a shared entry point with
/// a dynamic `put` cost 5-8 ns more per event); the rare paths are not.
#[inline(always)]
pub(crate) fn write<F: Fn(&mut [u8])>(event_id: u32, word: u32, size: usize, put: F) {
    // An address in the event writer's frame: a write nested in a signal
    // handler has one lower by more than MARK_SLACK (see take_over_switch).
    let mark = local::stack_mark();
    let bits = word & weft_probe_abi::SESSION_MASK;
    if bits == 0 {
        return;
    }
    // The thread storage's owner, unless it is a task running on it.
    if !TLS.with(|t| t.window.known(mark)) {
        if let Some(tid) = TLS.with(|t| crate::owner::identify(&t.window, mark)) {
            return foreign(tid, bits, event_id, size, put, mark);
        }
    }
    if bits & (bits - 1) != 0 {
        return several(bits, event_id, size, put, mark);
    }
    // One session, the common case: no loop keeping registers busy.
    let si = bits.trailing_zeros() as usize;
    let cx = context(si);
    if cx.ctl != 0 {
        write_one(si, &cx, event_id, size, &put, mark);
    }
}

/// A write into two sessions or more (two collectors attached at once),
/// out of line with `put` moved out of the common path's frame.
#[cold]
#[inline(never)]
fn several<F: Fn(&mut [u8])>(mut bits: u32, event_id: u32, size: usize, put: F, mark: u64) {
    let put: &dyn Fn(&mut [u8]) = &put;
    while bits != 0 {
        let si = bits.trailing_zeros() as usize;
        bits &= bits - 1;
        let cx = context(si);
        if cx.ctl == 0 {
            continue;
        }
        write_one(si, &cx, event_id, size, &put, mark);
    }
}

/// Moves `put` out of the common path's frame (taking its address there
/// cost a nanosecond per write) into `write_foreign`'s.
#[cold]
#[inline(never)]
fn foreign<F: Fn(&mut [u8])>(tid: u32, bits: u32, event_id: u32, size: usize, put: F, mark: u64) {
    write_foreign(tid, bits, event_id, size, &put, mark)
}

/// A write by a task that runs on another's thread storage (a
/// `clone(CLONE_VM)` child without a thread pointer of its own): into a
/// slot of its own, found again at each write since nothing may be cached
/// in storage shared with the owner. Guard mode leaves that slot writable
/// (its nesting mark would be the owner's).
#[cold]
#[inline(never)]
fn write_foreign(tid: u32, mut bits: u32, event_id: u32, size: usize, put: &dyn Fn(&mut [u8]), mark: u64) {
    while bits != 0 {
        let si = bits.trailing_zeros() as usize;
        bits &= bits - 1;
        let Some(mut cx) = find_slot(si, tid, true) else {
            continue;
        };
        if cx.guard != 0 {
            mprotect(cx.ctl, cx.geo(), libc::PROT_READ | libc::PROT_WRITE);
            cx.guard = 0;
        }
        write_one(si, &cx, event_id, size, &put, mark);
    }
}

#[inline(always)]
fn write_one<F: Fn(&mut [u8])>(si: usize, cx: &Ctx, event_id: u32, size: usize, put: &F, mark: u64) {
    let ctl = cx.ctl;
    // SAFETY (for every pointer below): ctl is the start of our slot's control
    // page inside the mapping cx.geo describes; offsets are layout constants;
    // sub-buffer indices come from Geometry::index_of and reserve offsets are
    // checked against records_end before use, so nothing is written outside
    // the slot.
    let seq = unsafe { local::add_u64(p64(ctl, S_ATTEMPTED), 1) };
    let total = record_len(size);
    if total > cx.records_end() - GUARD_LEN {
        unsafe { local::add_u64(p64(ctl, S_LOST_FULL), 1) };
        return;
    }
    let outer = cx.guard != 0 && unprotect(si, cx, mark);
    if let Some((rec, sbc)) = reserve(si, cx, total as u32, mark) {
        let rec = rec.get();
        use crate::fault::{hit, Point};
        hit(Point::AfterReserve);
        // The lines the next records go to, asked for now: after a pause
        // they are cold (read by the collector on another CPU, or evicted),
        // and each write taking its own miss made bursts 3-5 ns per event
        // dearer (bench/probe-ab.sh --burst).
        local::prefetch_write(rec + PREFETCH_AHEAD);
        unsafe {
            // total < 16 MiB: it fits a sub-buffer (Geometry::validate).
            let tsc = local::ticks();
            local::store_u64(p64(rec, R_LEN), record_word0(total as u32, event_id, seq, tsc));
            local::store_u64(p64(rec, R_SEQ_STATE), seq << 8 | u64::from(STATE_WRITING));
            local::store_u64(p64(rec, R_TSC), tsc);
            hit(Point::MidWrite);
            let payload =
                std::slice::from_raw_parts_mut((rec + RECORD_HEADER_LEN) as *mut u8, total - RECORD_HEADER_LEN);
            put(payload);
            hit(Point::BeforeCommit);
            local::store_u64(p64(rec, R_SEQ_STATE), seq << 8 | u64::from(STATE_COMMITTED));
            hit(Point::AfterCommit);
            local::add_u64(p64(ctl, S_COMMITTED), 1);
            // Bytes committed in this sub-buffer: when they reach its
            // reserve offset, a collector may copy the records in one piece.
            local::add_u32(p32(sbc, SB_COMMITTED), total as u32);
        }
    }
    if outer {
        protect(si, cx);
    }
}

/// A reservation: the record's address and its sub-buffer's control
/// entry. The address is never 0, which keeps the type two words wide and
/// `reserve_slow`'s answer in registers rather than in its caller's frame.
type Reserved = Option<(std::num::NonZeroUsize, usize)>;

#[inline(always)]
fn at(rec: usize, sbc: usize) -> Reserved {
    std::num::NonZeroUsize::new(rec).map(|r| (r, sbc))
}

/// How far ahead of a record the write asks for cache lines: 16 lines,
/// about 25 records of two u64. For the C API in bursts it measured best
/// of 4, 8, 16, 32 and 64 lines; the Rust API's runs were noisier.
const PREFETCH_AHEAD: usize = 1024;

/// Reserves `total` bytes in the current sub-buffer; returns the record's
/// address and its sub-buffer's control entry. The common case inline, switching sub-buffers out of line. This
/// is `reserve_slow`'s happy path written out again on purpose: sharing it
/// through a helper returning the outcome made writes 2.5 ns slower.
#[inline(always)]
fn reserve(si: usize, cx: &Ctx, total: u32, mark: u64) -> Reserved {
    let ctl = cx.ctl;
    let end = cx.records_end() as u32;
    // SAFETY: see write_one.
    let sg = unsafe { local::load_u64(p64(ctl, S_SWITCH_GEN)) };
    if sg & SWITCHING == 0 && sg != 0 && cx.mask != 0 {
        let idx = (sg.wrapping_sub(1) & u64::from(cx.mask)) as usize;
        let sbc = ctl + S_SUBBUF_CTL + idx * SB_CTL_LEN;
        // SAFETY: see write_one.
        let off = unsafe { local::load_u32(p32(sbc, SB_RESERVE)) };
        // `off <= end` also rules out the CLOSED bit; no overflow: both < 2^24.
        if off >= GUARD_LEN as u32
            && off <= end
            && off + total <= end
            // SAFETY: see write_one.
            && unsafe { local::load_u64(p64(sbc, SB_GEN)) } == sg
            // SAFETY: see write_one.
            && unsafe { local::cas_u32(p32(sbc, SB_RESERVE), off, off + total) }
        {
            return at(ctl + SLOT_CTL_LEN + idx * cx.subbuf_size as usize + off as usize, sbc);
        }
    }
    reserve_slow(si, cx, total, mark)
}

/// The full reservation: opens the first sub-buffer, moves to the next one
/// when the current is full, and finishes or respects a switch in progress.
#[cold]
#[inline(never)]
fn reserve_slow(si: usize, cx: &Ctx, total: u32, mark: u64) -> Reserved {
    let ctl = cx.ctl;
    let end = cx.records_end() as u32;
    for _ in 0..64 {
        // SAFETY: see write_one.
        let sg = unsafe { local::load_u64(p64(ctl, S_SWITCH_GEN)) };
        if sg & SWITCHING != 0 {
            if !take_over_switch(si, cx, sg, mark) {
                unsafe { local::add_u64(p64(ctl, S_LOST_BUSY), 1) };
                return None;
            }
            continue;
        }
        if sg == 0 {
            if !open_next(si, cx, 0, mark) {
                return None;
            }
            continue;
        }
        let idx = cx.geo().index_of(sg) as usize;
        let sbc = ctl + S_SUBBUF_CTL + idx * SB_CTL_LEN;
        let sb = ctl + SLOT_CTL_LEN + idx * cx.subbuf_size as usize;
        // SAFETY: see write_one.
        let off = unsafe { local::load_u32(p32(sbc, SB_RESERVE)) };
        let fits = (GUARD_LEN as u32..=end).contains(&off) && off + total <= end;
        // SAFETY: see write_one.
        let current = unsafe { local::load_u64(p64(sbc, SB_GEN)) } == sg;
        if !current || !fits {
            if !open_next(si, cx, sg, mark) {
                return None;
            }
            continue;
        }
        // SAFETY: see write_one.
        if unsafe { local::cas_u32(p32(sbc, SB_RESERVE), off, off + total) } {
            return at(sb + off as usize, sbc);
        }
    }
    unsafe { local::add_u64(p64(ctl, S_LOST_BUSY), 1) };
    None
}

/// Moves the slot from generation `cur` to `cur + 1`. False if the event
/// must be dropped (ring full in discard mode: counted here).
fn open_next(si: usize, cx: &Ctx, cur: u64, mark: u64) -> bool {
    let ctl = cx.ctl;
    let new = cur + 1;
    let idx = cx.geo().index_of(new) as usize;
    let sbc = ctl + S_SUBBUF_CTL + idx * SB_CTL_LEN;
    // SAFETY: see write_one.
    unsafe {
        // Mode and salt may be read here, not cached: if the session changed
        // since our epoch, this is the old area's anonymous replacement.
        if SESSIONS[si].mode.load(Ordering::Relaxed) == Mode::Discard as u32 {
            // Free once the collector consumed the generation it last held,
            // computed here: a damaged SB_GEN must not block the ring.
            let n = u64::from(cx.subbufs);
            if new > n && local::load_u64(p64(sbc, SB_CONSUMED)) < new - n && !wait_for_collector(si, sbc, new - n) {
                local::add_u64(p64(ctl, S_LOST_FULL), 1);
                return false;
            }
        }
        // The mark first: a handler that sees SWITCHING must see our mark.
        local::store_u64(p64(ctl, S_SWITCH_SP), mark);
        if !local::cas_u64(p64(ctl, S_SWITCH_GEN), cur, cur | SWITCHING) {
            // A nested write moved it; look again.
            return true;
        }
        close_subbuf(cx, cur);
        init_subbuf(si, cx, new);
        local::store_u64(p64(ctl, S_SWITCH_GEN), new);
    }
    true
}

#[allow(clippy::declare_interior_mutable_const)]
const NOT_STALLED: AtomicU64 = AtomicU64::new(0);
/// Per session: until when (CLOCK_MONOTONIC ns) not to wait, after a wait ran out.
static STALLED: [AtomicU64; MAX_SESSIONS as usize] = [NOT_STALLED; MAX_SESSIONS as usize];

/// The opt-in bounded wait of discard mode: yields the CPU until the
/// collector has consumed generation `gen` of the sub-buffer at `sbc`, for
/// at most the session's wait. True if it did. No lock and no state is
/// held meanwhile: a signal handler that writes, or never returns, finds
/// the slot as a write that has not switched yet.
#[cold]
#[inline(never)]
fn wait_for_collector(si: usize, sbc: usize, gen: u64) -> bool {
    let us = SESSIONS[si].wait_us.load(Ordering::Relaxed);
    if us == 0 {
        return false;
    }
    // A collector that let a wait run out (stopped, killed, or far behind)
    // is not waited for again for ten times as long: a dead one costs the
    // program a tenth of its time at most, until the connection's loss
    // detaches the session.
    let now = local::monotonic_ns();
    if now < STALLED[si].load(Ordering::Relaxed) {
        return false;
    }
    let deadline = now.saturating_add(u64::from(us) * 1000);
    loop {
        // SAFETY: sbc is a sub-buffer control entry of our slot (open_next).
        if unsafe { local::load_u64(p64(sbc, SB_CONSUMED)) } >= gen {
            return true;
        }
        let now = local::monotonic_ns();
        if now >= deadline {
            STALLED[si].store(now.saturating_add(u64::from(us) * 10_000), Ordering::Relaxed);
            return false;
        }
        // SAFETY: sched_yield has no preconditions.
        unsafe { libc::sched_yield() };
    }
}

/// Marks generation `gen`'s sub-buffer closed: a reservation that read its
/// offset before the switch now fails its compare-and-swap.
///
/// # Safety
/// The caller holds the switch mark for this slot.
unsafe fn close_subbuf(cx: &Ctx, gen: u64) {
    if gen == 0 {
        return;
    }
    let sbc = cx.ctl + S_SUBBUF_CTL + cx.geo().index_of(gen) as usize * SB_CTL_LEN;
    // SAFETY: sbc is a sub-buffer control entry of our slot.
    unsafe {
        loop {
            let r = local::load_u32(p32(sbc, SB_RESERVE));
            if r & CLOSED != 0 || local::cas_u32(p32(sbc, SB_RESERVE), r, r | CLOSED) {
                break;
            }
        }
    }
}

/// How far below another write's mark a write must be to count as nested
/// in it. Marks are taken in each event's own writer function, so two writes
/// from the same caller frame differ by the difference of their writers'
/// frames (a few hundred bytes at most), while a signal handler's write lies
/// below the interrupted frame by at least a whole signal frame (over 1 KiB
/// on x86-64, over 4 KiB on aarch64).
const MARK_SLACK: u64 = 512;

/// Whether the write with stack mark `mark` runs over (interrupted) the
/// switch whose frame recorded `sp`. Addresses on two different stacks say
/// nothing of which runs over which, so the kernel is asked first whether
/// this write runs on the task's alternate signal stack (a system call,
/// but a switch found in progress is rare): a handler on it over a switch
/// elsewhere interrupted that switch, wherever the alternate stack lies;
/// off it, over a switch on it, a handler left that switch for good. On
/// one stack, the marks decide.
fn over(mark: u64, sp: u64) -> bool {
    runs_over(mark, sp, MARK_SLACK)
}

/// `over`, with the slack of the mark comparison given: `MARK_SLACK` for
/// switches, 0 for guard mode's outermost write (see `unprotect`). An
/// alternate stack registered with `SS_AUTODISARM` is disabled while its
/// handler runs, so the kernel cannot tell: marks only.
fn runs_over(mark: u64, sp: u64, slack: u64) -> bool {
    if let Some((base, size, on)) = crate::sys::alt_stack() {
        let there = sp.wrapping_sub(base) < size;
        if on != there {
            return on;
        }
    }
    mark.saturating_add(slack) < sp
}

/// A switch is marked in progress. If its frame is still live below us we
/// are a nested write and must not touch it; if a handler jumped out of it,
/// our frame is above the recorded one and we finish the switch.
fn take_over_switch(si: usize, cx: &Ctx, sg: u64, mark: u64) -> bool {
    let ctl = cx.ctl;
    // SAFETY: see write_one.
    let sp = unsafe { local::load_u64(p64(ctl, S_SWITCH_SP)) };
    if over(mark, sp) {
        return false;
    }
    let cur = sg & !SWITCHING;
    unsafe {
        // Take over only by winning the mark: two late writers cannot both.
        if !local::cas_u64(p64(ctl, S_SWITCH_SP), sp, mark) {
            return false;
        }
        // A handler with a frame at exactly the recorded mark may have
        // finished or restarted the switch between our load and the CAS
        // (ABA on the mark): then the generation moved, and we look again.
        if local::load_u64(p64(ctl, S_SWITCH_GEN)) != sg {
            return true;
        }
        close_subbuf(cx, cur);
        init_subbuf(si, cx, cur + 1);
        local::store_u64(p64(ctl, S_SWITCH_GEN), cur + 1);
    }
    true
}

/// Bytes zeroed between two records of progress when a sub-buffer opens
/// (a few microseconds).
const ZERO_STEP: usize = 64 << 10;

/// # Safety
/// The caller holds the switch mark for this slot.
unsafe fn init_subbuf(si: usize, cx: &Ctx, gen: u64) {
    let ctl = cx.ctl;
    let idx = cx.geo().index_of(gen) as usize;
    let sbc = ctl + S_SUBBUF_CTL + idx * SB_CTL_LEN;
    let sb = ctl + SLOT_CTL_LEN + idx * cx.subbuf_size as usize;
    let salt = SESSIONS[si].salt.load(Ordering::Relaxed);
    // SAFETY: all addresses are inside this slot's sub-buffer `idx`.
    unsafe {
        let guard = Guard {
            tid: cx.tid,
            slot: cx.slot,
            gen,
            tsc: local::ticks(),
            mono_ns: local::monotonic_ns(),
            first_seq: local::load_u64(p64(ctl, S_ATTEMPTED)),
        };
        let head = guard.encode(salt, GUARD_HEAD_MAGIC);
        let foot = guard.encode(salt, GUARD_FOOT_MAGIC);
        std::ptr::copy_nonoverlapping(head.as_ptr(), sb as *mut u8, GUARD_LEN);
        std::ptr::copy_nonoverlapping(foot.as_ptr(), (sb + cx.records_end()) as *mut u8, GUARD_LEN);
        // Zeroed record space: a header never written reads as zero, never as
        // a stale record of an earlier generation. In steps, each recorded,
        // so that a handler jumping out of this switch costs at most one
        // step: the write that takes the switch over goes on from there.
        let end = cx.records_end();
        let tag = u64::from(gen as u32) << 32;
        let done = local::load_u64(p64(ctl, S_SWITCH_ZEROED));
        let mut at = if done & !0xffff_ffff == tag {
            (done as u32 as usize).clamp(GUARD_LEN, end)
        } else {
            GUARD_LEN
        };
        // The slot's first use of this sub-buffer: its pages are in memory
        // (the collector populated them before raising A_READY) but not in
        // our page tables, and faulting them in one by one while zeroing
        // took 0.4-1 ms per MiB here. Mapped a step at a time, so that a
        // take-over still loses one step at most.
        let first = gen <= u64::from(cx.subbufs);
        while at < end {
            let n = (end - at).min(ZERO_STEP);
            if first {
                crate::sys::populate(sb + at, n);
            }
            std::ptr::write_bytes((sb + at) as *mut u8, 0, n);
            at += n;
            // The bytes before the progress that says so (a handler on
            // this thread sees program order once the compiler keeps it).
            std::sync::atomic::compiler_fence(Ordering::SeqCst);
            local::store_u64(p64(ctl, S_SWITCH_ZEROED), tag | at as u64);
        }
        local::store_u32(p32(sbc, SB_COMMITTED), 0);
        local::store_u32(p32(sbc, SB_RESERVE), GUARD_LEN as u32);
        local::store_u64(p64(sbc, SB_GEN), gen);
    }
}

/// Guard mode: the thread's sub-buffers are read-only except while it
/// writes, so stray stores elsewhere in the program fault at the culprit.
/// Returns whether this is the outermost write, which protects again at its
/// end. A write whose frame a handler jumped out of counts as gone: the next
/// write at or above its mark is outermost again.
#[cold]
#[inline(never)]
fn unprotect(si: usize, cx: &Ctx, mark: u64) -> bool {
    let outer = GUARD_SP.with(|g| {
        let o = g[si].get();
        // Strictly, without MARK_SLACK: a write made from inside another
        // write's argument encoding (an `Arg::put` that emits) lies less
        // than the slack below it and must not protect the buffers under
        // the outer write. The cost: after a handler jumped out of a
        // guarded write, writes from deeper frames leave the buffers
        // writable until one from at or above that frame comes.
        // Asked of the kernel only under another write (`runs_over`): a
        // handler on an alternate stack above the thread's frames is not
        // the outermost write, wherever that stack lies.
        let outer = o == 0 || !runs_over(mark, o, 0);
        if outer {
            g[si].set(mark);
        }
        outer
    });
    // Even when nested: the outer write may have been interrupted before
    // its own mprotect.
    mprotect(cx.ctl, cx.geo(), libc::PROT_READ | libc::PROT_WRITE);
    outer
}

#[cold]
#[inline(never)]
fn protect(si: usize, cx: &Ctx) {
    GUARD_SP.with(|g| g[si].set(0));
    mprotect(cx.ctl, cx.geo(), libc::PROT_READ);
}

/// Changes the protection of the sub-buffers of the slot whose control page
/// is at `ctl`.
fn mprotect(ctl: usize, geo: Geometry, prot: i32) {
    let start = ctl + SLOT_CTL_LEN;
    let len = geo.subbufs as usize * geo.subbuf_size as usize;
    // SAFETY: changes protection of our own slot's sub-buffers only (a raw
    // call: a fork child's control thread comes here, see crate::child).
    let _ = unsafe { crate::sys::mprotect(start, len, prot) };
}

/// Applies guard mode to every slot of a session as it attaches.
pub(crate) fn protect_all(base: usize, geo: Geometry) {
    for slot in 0..geo.slots {
        mprotect(base + geo.slot_offset(slot), geo, libc::PROT_READ);
    }
}

/// Tells every attached collector how many events could not be registered.
/// A detach racing this store lands it in the anonymous memory mapped over
/// the area.
pub(crate) fn publish_unregistered(n: u64) {
    for s in &SESSIONS {
        let base = s.base.load(Ordering::Acquire);
        if base != 0 {
            // SAFETY: the area header is in every mapping `base` points to
            // (or in the anonymous memory that replaced it).
            unsafe { AtomicU64::from_ptr(p64(base, A_UNREGISTERED)) }.store(n, Ordering::Release);
        }
    }
}

pub(crate) fn thread_buffers() -> Vec<(usize, usize)> {
    let mut v = Vec::new();
    for (si, s) in SESSIONS.iter().enumerate() {
        let cx = TLS.with(|t| t.ctx[si].get());
        if cx.ctl != 0 && cx.epoch == crate::epoch::current(si) && s.base.load(Ordering::Acquire) != 0 {
            v.push((cx.ctl + SLOT_CTL_LEN, cx.subbufs as usize * cx.subbuf_size as usize));
        }
    }
    v
}
