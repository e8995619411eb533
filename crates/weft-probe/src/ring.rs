//! The write path: per-thread rings in session memory, no lock, no
//! allocation, no syscall, no "inside a write" flag.
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
    pub epoch: AtomicU32,
    pub slots: AtomicU32,
    pub subbufs: AtomicU32,
    pub subbuf_size: AtomicU32,
    pub mode: AtomicU32,
    pub salt: AtomicU64,
    pub guard: AtomicU32,
}

#[allow(clippy::declare_interior_mutable_const)]
const SESSION_INIT: Session = Session {
    base: AtomicUsize::new(0),
    epoch: AtomicU32::new(1),
    slots: AtomicU32::new(0),
    subbufs: AtomicU32::new(0),
    subbuf_size: AtomicU32::new(0),
    mode: AtomicU32::new(0),
    salt: AtomicU64::new(0),
    guard: AtomicU32::new(0),
};

pub(crate) static SESSIONS: [Session; MAX_SESSIONS as usize] = [SESSION_INIT; MAX_SESSIONS as usize];

#[derive(Clone, Copy)]
struct TlsSlot {
    ctl: usize,
    epoch: u32,
    slot: u32,
}

thread_local! {
    // Const-initialized and without destructors: plain static TLS, no lazy
    // initialization on first access.
    static TLS: [Cell<TlsSlot>; MAX_SESSIONS as usize] =
        const { [const { Cell::new(TlsSlot { ctl: 0, epoch: 0, slot: 0 }) }; MAX_SESSIONS as usize] };
    static TID: Cell<u32> = const { Cell::new(0) };
    /// Guard mode, per session: the stack mark of the outermost write that
    /// made the buffers writable (0: none).
    static GUARD_SP: [Cell<u64>; MAX_SESSIONS as usize] = const { [const { Cell::new(0) }; MAX_SESSIONS as usize] };
}

fn gettid() -> u32 {
    TID.with(|t| {
        let v = t.get();
        if v != 0 {
            return v;
        }
        // SAFETY: gettid has no preconditions; async-signal-safe.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) } as u32;
        t.set(tid);
        tid
    })
}

/// Forget the cached tid (the child of a fork is another thread).
pub(crate) fn reset_thread_after_fork() {
    TID.with(|t| t.set(0));
}

#[inline(always)]
fn p64(base: usize, off: usize) -> *mut u64 {
    (base + off) as *mut u64
}

#[inline(always)]
fn p32(base: usize, off: usize) -> *mut u32 {
    (base + off) as *mut u32
}

struct View {
    base: usize,
    geo: Geometry,
    mode: u32,
    salt: u64,
}

impl View {
    fn of(s: &Session) -> Option<View> {
        let base = s.base.load(Ordering::Acquire);
        if base == 0 {
            return None;
        }
        Some(View {
            base,
            geo: Geometry {
                slots: s.slots.load(Ordering::Relaxed),
                subbufs: s.subbufs.load(Ordering::Relaxed),
                subbuf_size: s.subbuf_size.load(Ordering::Relaxed),
            },
            mode: s.mode.load(Ordering::Relaxed),
            salt: s.salt.load(Ordering::Relaxed),
        })
    }
}

/// The calling thread's slot control page in session `si`, claiming one on
/// first use. None if the session is gone or every slot is taken.
#[inline(always)]
fn slot_for(si: usize, epoch: u32, v: &View) -> Option<(usize, u32)> {
    let cur = TLS.with(|t| t[si].get());
    if cur.epoch == epoch && cur.ctl != 0 {
        return Some((cur.ctl, cur.slot));
    }
    claim_slot(si, v, epoch)
}

#[cold]
fn claim_slot(si: usize, v: &View, epoch: u32) -> Option<(usize, u32)> {
    let tid = gettid();
    for slot in 0..v.geo.slots {
        let ctl = v.base + v.geo.slot_offset(slot);
        // SAFETY: ctl is inside the mapping (slot < slots, validated geometry);
        // other threads race for the owner word, so a real atomic CAS.
        let owner = unsafe { AtomicU32::from_ptr(p32(ctl, S_OWNER)) };
        if owner
            .compare_exchange(0, tid, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            // SAFETY: the slot is ours now.
            unsafe { AtomicU32::from_ptr(p32(ctl, S_CLAIMS)) }.fetch_add(1, Ordering::Release);
            TLS.with(|t| t[si].set(TlsSlot { ctl, epoch, slot }));
            return Some((ctl, slot));
        }
    }
    // SAFETY: A_NO_SLOT is in the area header; shared by all threads.
    unsafe { AtomicU64::from_ptr(p64(v.base, A_NO_SLOT)) }.fetch_add(1, Ordering::Relaxed);
    None
}

/// Writes one record of `size` payload bytes, filled by `put`, into every
/// session whose bit is set in `word`.
#[inline(never)]
pub(crate) fn write(event_id: u32, word: u32, size: usize, put: &dyn Fn(&mut [u8])) {
    // This frame's address: a write nested in a signal handler has a lower
    // one than the write it interrupted (see take_over_switch).
    let mark = local::stack_mark();
    let mut bits = word & weft_probe_abi::SESSION_MASK;
    while bits != 0 {
        let si = bits.trailing_zeros() as usize;
        bits &= bits - 1;
        let s = &SESSIONS[si];
        // Epoch before address: a cached slot is only used with the mapping
        // of the epoch it was claimed in (detach and attach bump it).
        let epoch = s.epoch.load(Ordering::Acquire);
        let Some(v) = View::of(s) else { continue };
        // And again after the parameters: a detach and a new attach in
        // between would pair this epoch's slot with another mapping's geometry.
        std::sync::atomic::fence(Ordering::Acquire);
        if s.epoch.load(Ordering::Relaxed) != epoch {
            continue;
        }
        let Some((ctl, slot)) = slot_for(si, epoch, &v) else {
            continue;
        };
        write_one(si, &v, s, ctl, slot, event_id, size, put, mark);
    }
}

#[allow(clippy::too_many_arguments)]
fn write_one(
    si: usize,
    v: &View,
    s: &Session,
    ctl: usize,
    slot: u32,
    event_id: u32,
    size: usize,
    put: &dyn Fn(&mut [u8]),
    mark: u64,
) {
    // SAFETY (for every pointer below): ctl is the start of our slot's control
    // page inside the live mapping; offsets are layout constants; sub-buffer
    // indices come from Geometry::index_of and reserve offsets are checked
    // against records_end before use, so nothing is written outside the slot.
    let seq = unsafe { local::add_u64(p64(ctl, S_ATTEMPTED), 1) };
    let total = record_len(size);
    if total > v.geo.records_end() - GUARD_LEN {
        unsafe { local::add_u64(p64(ctl, S_LOST_FULL), 1) };
        return;
    }
    let guarded = s.guard.load(Ordering::Relaxed) != 0;
    let outer = guarded && unprotect(si, v, slot, mark);
    if let Some((sb, idx, off)) = reserve(v, ctl, slot, total as u32, mark) {
        let rec = sb + off as usize;
        unsafe {
            local::store_u64(p64(rec, R_LEN), total as u64 | (u64::from(event_id) << 32));
            local::store_u64(p64(rec, R_SEQ_STATE), seq << 8 | u64::from(STATE_WRITING));
            local::store_u64(p64(rec, R_TSC), local::ticks());
            let payload =
                std::slice::from_raw_parts_mut((rec + RECORD_HEADER_LEN) as *mut u8, total - RECORD_HEADER_LEN);
            put(payload);
            local::store_u64(p64(rec, R_SEQ_STATE), seq << 8 | u64::from(STATE_COMMITTED));
            let sbc = ctl + S_SUBBUF_CTL + idx * SB_CTL_LEN;
            local::add_u32(p32(sbc, SB_COMMITTED), total as u32);
            local::add_u64(p64(ctl, S_COMMITTED), 1);
        }
    }
    if outer {
        protect(si, v, slot);
    }
}

/// Reserves `total` bytes; returns (sub-buffer address, its index, offset).
#[inline(always)]
fn reserve(v: &View, ctl: usize, slot: u32, total: u32, mark: u64) -> Option<(usize, usize, u32)> {
    let end = v.geo.records_end() as u32;
    for _ in 0..64 {
        // SAFETY: see write_one.
        let sg = unsafe { local::load_u64(p64(ctl, S_SWITCH_GEN)) };
        if sg & SWITCHING != 0 {
            if !take_over_switch(v, ctl, slot, sg, mark) {
                unsafe { local::add_u64(p64(ctl, S_LOST_BUSY), 1) };
                return None;
            }
            continue;
        }
        if sg == 0 {
            if !open_next(v, ctl, slot, 0, mark) {
                return None;
            }
            continue;
        }
        let idx = v.geo.index_of(sg) as usize;
        let sbc = ctl + S_SUBBUF_CTL + idx * SB_CTL_LEN;
        let sb = ctl + SLOT_CTL_LEN + idx * v.geo.subbuf_size as usize;
        // SAFETY: see write_one.
        let off = unsafe { local::load_u32(p32(sbc, SB_RESERVE)) };
        let fits = (GUARD_LEN as u32..=end).contains(&off) && off + total <= end;
        // SAFETY: see write_one.
        let current = unsafe { local::load_u64(p64(sbc, SB_GEN)) } == sg;
        if !current || !fits {
            if !open_next(v, ctl, slot, sg, mark) {
                return None;
            }
            continue;
        }
        // SAFETY: see write_one.
        if unsafe { local::cas_u32(p32(sbc, SB_RESERVE), off, off + total) } {
            return Some((sb, idx, off));
        }
    }
    unsafe { local::add_u64(p64(ctl, S_LOST_BUSY), 1) };
    None
}

/// Moves the slot from generation `cur` to `cur + 1`. False if the event
/// must be dropped (ring full in discard mode: counted here).
fn open_next(v: &View, ctl: usize, slot: u32, cur: u64, mark: u64) -> bool {
    let new = cur + 1;
    let idx = v.geo.index_of(new) as usize;
    let sbc = ctl + S_SUBBUF_CTL + idx * SB_CTL_LEN;
    // SAFETY: see write_one.
    unsafe {
        if v.mode == Mode::Discard as u32 {
            // Free once the collector consumed the generation it last held,
            // computed here: a damaged SB_GEN must not block the ring.
            let n = u64::from(v.geo.subbufs);
            if new > n && local::load_u64(p64(sbc, SB_CONSUMED)) < new - n {
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
        close_subbuf(v, ctl, cur);
        init_subbuf(v, ctl, slot, new);
        local::store_u64(p64(ctl, S_SWITCH_GEN), new);
    }
    true
}

/// Marks generation `gen`'s sub-buffer closed: a reservation that read its
/// offset before the switch now fails its compare-and-swap.
///
/// # Safety
/// The caller holds the switch mark for this slot.
unsafe fn close_subbuf(v: &View, ctl: usize, gen: u64) {
    if gen == 0 {
        return;
    }
    let sbc = ctl + S_SUBBUF_CTL + v.geo.index_of(gen) as usize * SB_CTL_LEN;
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

/// A switch is marked in progress. If its frame is still live below us we
/// are a nested write and must not touch it; if a handler jumped out of it,
/// our frame is above the recorded one and we finish the switch.
fn take_over_switch(v: &View, ctl: usize, slot: u32, sg: u64, mark: u64) -> bool {
    // SAFETY: see write_one.
    let sp = unsafe { local::load_u64(p64(ctl, S_SWITCH_SP)) };
    // Strictly deeper than the switching write: we interrupted it.
    if mark < sp {
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
        close_subbuf(v, ctl, cur);
        init_subbuf(v, ctl, slot, cur + 1);
        local::store_u64(p64(ctl, S_SWITCH_GEN), cur + 1);
    }
    true
}

/// # Safety
/// The caller holds the switch mark for this slot.
unsafe fn init_subbuf(v: &View, ctl: usize, slot: u32, gen: u64) {
    let idx = v.geo.index_of(gen) as usize;
    let sbc = ctl + S_SUBBUF_CTL + idx * SB_CTL_LEN;
    let sb = ctl + SLOT_CTL_LEN + idx * v.geo.subbuf_size as usize;
    // SAFETY: all addresses are inside this slot's sub-buffer `idx`.
    unsafe {
        let guard = Guard {
            tid: gettid(),
            slot,
            gen,
            tsc: local::ticks(),
            mono_ns: local::monotonic_ns(),
            first_seq: local::load_u64(p64(ctl, S_ATTEMPTED)),
        };
        let head = guard.encode(v.salt, GUARD_HEAD_MAGIC);
        let foot = guard.encode(v.salt, GUARD_FOOT_MAGIC);
        std::ptr::copy_nonoverlapping(head.as_ptr(), sb as *mut u8, GUARD_LEN);
        std::ptr::copy_nonoverlapping(foot.as_ptr(), (sb + v.geo.records_end()) as *mut u8, GUARD_LEN);
        // Zeroed record space: a header never written reads as zero, never as
        // a stale record of an earlier generation.
        std::ptr::write_bytes((sb + GUARD_LEN) as *mut u8, 0, v.geo.records_end() - GUARD_LEN);
        local::store_u32(p32(sbc, SB_COMMITTED), 0);
        local::store_u32(p32(sbc, SB_RESERVE), GUARD_LEN as u32);
        local::store_u64(p64(sbc, SB_GEN), gen);
    }
}

/// Guard mode: the thread's sub-buffers are read-only except while it
/// writes, so stray stores elsewhere in the program fault at the culprit.
/// Returns whether this is the outermost write, which protects again at its
/// end. A write whose frame a handler jumped out of counts as gone: the next
/// write at or above its mark is outermost again (as for switches).
fn unprotect(si: usize, v: &View, slot: u32, mark: u64) -> bool {
    let outer = GUARD_SP.with(|g| {
        let o = g[si].get();
        let outer = o == 0 || mark >= o;
        if outer {
            g[si].set(mark);
        }
        outer
    });
    // Even when nested: the outer write may have been interrupted before
    // its own mprotect.
    mprotect(v, slot, libc::PROT_READ | libc::PROT_WRITE);
    outer
}

fn protect(si: usize, v: &View, slot: u32) {
    GUARD_SP.with(|g| g[si].set(0));
    mprotect(v, slot, libc::PROT_READ);
}

fn mprotect(v: &View, slot: u32, prot: i32) {
    let start = v.base + v.geo.slot_offset(slot) + SLOT_CTL_LEN;
    let len = v.geo.subbufs as usize * v.geo.subbuf_size as usize;
    // SAFETY: changes protection of our own slot's sub-buffers only.
    unsafe { libc::mprotect(start as *mut libc::c_void, len, prot) };
}

/// Applies guard mode to every slot of a session as it attaches.
pub(crate) fn protect_all(v_base: usize, geo: Geometry) {
    let v = View {
        base: v_base,
        geo,
        mode: 0,
        salt: 0,
    };
    for slot in 0..geo.slots {
        mprotect(&v, slot, libc::PROT_READ);
    }
}

pub(crate) fn thread_buffers() -> Vec<(usize, usize)> {
    let mut v = Vec::new();
    for (si, s) in SESSIONS.iter().enumerate() {
        let Some(view) = View::of(s) else { continue };
        let cur = TLS.with(|t| t[si].get());
        if cur.ctl != 0 && cur.epoch == s.epoch.load(Ordering::Acquire) {
            v.push((
                cur.ctl + SLOT_CTL_LEN,
                view.geo.subbufs as usize * view.geo.subbuf_size as usize,
            ));
        }
    }
    v
}
