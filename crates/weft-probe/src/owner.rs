//! Which task is writing: the thread whose thread storage this is, or a
//! task that runs on it without owning it.
//!
//! A `clone(CLONE_VM)` child started without a thread pointer of its own
//! (no `CLONE_SETTLS`) shares its parent thread's thread storage, so the
//! slot that storage caches is not its to write: concurrently with the
//! parent it would break the slot's single-writer rule, and its events
//! would land in the parent's stream (docs/probe-buffers.md §9.7). The
//! only per-task value readable without a system call is the stack
//! pointer, and such a child must run on a stack of its own. So each
//! thread keeps the stack addresses its writes were confirmed at, as one
//! window (and one more for a second stack: a signal stack, a coroutine);
//! a write inside it is the owner's, at the cost of a compare. Outside,
//! `gettid` decides, and the owner's window grows.
//!
//! Another task only reads these words, and never caches anything in
//! storage that is not its own. What it reads cannot cover more than the
//! owner confirmed: the window only ever widens, its low end stored before
//! its length and read after it, and the second range is one word.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::sys;

/// The process whose threads may own thread storage: a task of another
/// process (a `CLONE_VM` child) that writes on storage nobody identified
/// yet must not take it. Set by each attach and in a fork child.
static PROCESS_PID: AtomicU32 = AtomicU32::new(0);

thread_local! {
    // Const-initialized atomics without destructors: plain static TLS.
    /// The owner's thread id (0: not identified yet).
    static TID: AtomicU32 = const { AtomicU32::new(0) };
    /// A second range, for writes from another stack of the owner, packed
    /// (`pack`): it is replaced as well as widened, so it changes in one
    /// store.
    static ALT: AtomicU64 = const { AtomicU64::new(0) };
}

/// Confirmed stack addresses `[lo, lo + len)` of a thread: its own stack.
/// Two words, not one packed, since every write reads them (two loads and
/// a compare cost less than unpacking); kept in the thread-local block of
/// the thread's slots (crate::ring), so that a write finds both from one
/// thread pointer.
pub(crate) struct Window {
    lo: AtomicU64,
    len: AtomicU64,
}

impl Window {
    pub(crate) const fn new() -> Window {
        Window {
            lo: AtomicU64::new(0),
            len: AtomicU64::new(0),
        }
    }

    /// Whether a write whose frame is at `mark` is the owner's without
    /// asking the kernel.
    #[inline(always)]
    pub(crate) fn known(&self, mark: u64) -> bool {
        // Length first: its acquire makes the low end read at least as new.
        let len = self.len.load(Ordering::Acquire);
        let lo = self.lo.load(Ordering::Relaxed);
        mark.wrapping_sub(lo) < len
    }
}

/// Window granularity: a writer frame's address rounded down to it.
const UNIT_BITS: u32 = 6;
/// Bits of a packed window holding its length in units (512 MiB at most).
const LEN_BITS: u32 = 23;
/// Highest address a window can describe: user stacks are below 2^47 (a
/// stack above it is never in a window: every write there asks the kernel).
const ADDR_LIMIT: u64 = 1 << 47;
/// How close to a window a confirmed address must be to widen it rather
/// than start the second range. Small, because whatever lies between two
/// confirmed addresses joins the window: another task's stack must not.
const GROW: u64 = 64 << 10;

/// `[lo, hi)` (`hi > lo`, both below `ADDR_LIMIT`) in one word, so that a
/// reader on another task sees a whole window or none.
fn pack(lo: u64, hi: u64) -> u64 {
    let lo = lo >> UNIT_BITS;
    let len = (hi.div_ceil(1 << UNIT_BITS) - lo).min((1 << LEN_BITS) - 1);
    lo << LEN_BITS | len
}

fn unpack(w: u64) -> (u64, u64) {
    let lo = (w >> LEN_BITS) << UNIT_BITS;
    let len = (w & ((1 << LEN_BITS) - 1)) << UNIT_BITS;
    (lo, lo + len)
}

#[inline(always)]
fn inside(w: u64, mark: u64) -> bool {
    let lo = (w >> LEN_BITS) << UNIT_BITS;
    let len = (w & ((1 << LEN_BITS) - 1)) << UNIT_BITS;
    mark.wrapping_sub(lo) < len
}

/// The slow half of `Window::known`: `None` if the owner writes (its
/// window `w` now covers `mark`), else the thread id of the task that does.
#[cold]
#[inline(never)]
pub(crate) fn identify(w: &Window, mark: u64) -> Option<u32> {
    if ALT.with(|a| inside(a.load(Ordering::Relaxed), mark)) {
        return None;
    }
    let tid = sys::gettid();
    let own = TID.with(|t| t.load(Ordering::Relaxed));
    if own == 0 {
        if sys::getpid() != PROCESS_PID.load(Ordering::Relaxed) {
            return Some(tid);
        }
        TID.with(|t| t.store(tid, Ordering::Relaxed));
    } else if tid != own {
        return Some(tid);
    }
    if mark < ADDR_LIMIT - (1 << UNIT_BITS) {
        widen(w, mark);
    }
    None
}

/// Adds a confirmed address to the window it is close to, or makes it the
/// second range.
fn widen(w: &Window, mark: u64) {
    let (lo, hi) = (mark & !((1 << UNIT_BITS) - 1), (mark | ((1 << UNIT_BITS) - 1)) + 1);
    let near = |(l, h): (u64, u64)| h > l && lo.saturating_add(GROW) >= l && hi <= h.saturating_add(GROW);
    let read = |w: &Window| {
        let l = w.lo.load(Ordering::Relaxed);
        (l, l + w.len.load(Ordering::Relaxed))
    };
    let (l, h) = read(w);
    if h == l || near((l, h)) {
        // With every signal blocked, and read again: a handler's widening
        // between this one's loads and stores would leave the window, for
        // a moment or for good, wider than anything confirmed.
        // The test is made again on what is read then: a handler may have
        // made the window elsewhere meanwhile (on its alternate stack).
        let old = sys::set_sigmask(!0);
        let (l, h) = read(w);
        let widened = if h == l {
            Some((lo, hi))
        } else {
            near((l, h)).then(|| (l.min(lo), h.max(hi)))
        };
        if let Some((l, h)) = widened {
            // Low end first (see the module doc): a reader that sees the new
            // length sees the new low end, and an old length from a new low
            // end reaches no higher than the new window.
            w.lo.store(l, Ordering::Relaxed);
            w.len.store(h - l, Ordering::Release);
        }
        sys::set_sigmask(old);
        if widened.is_some() {
            return;
        }
    }
    // The second range changes in one store; a handler's change lost to
    // this one only costs it a `gettid` later.
    let a = ALT.with(|a| a.load(Ordering::Relaxed));
    let merged = |w: u64| {
        let (l, h) = unpack(w);
        pack(l.min(lo), h.max(hi))
    };
    if a != 0 && near(unpack(a)) {
        ALT.with(|x| x.store(merged(a), Ordering::Relaxed));
    } else {
        ALT.with(|x| x.store(pack(lo, hi), Ordering::Relaxed));
    }
}

/// The owner's thread id (identified by its first write).
pub(crate) fn tid() -> u32 {
    let t = TID.with(|t| t.load(Ordering::Relaxed));
    if t != 0 {
        t
    } else {
        sys::gettid()
    }
}

/// Records the process whose threads own their storage (at each attach:
/// the control thread runs in it).
pub(crate) fn set_process() {
    PROCESS_PID.store(sys::getpid(), Ordering::Relaxed);
}

/// In a fork child: the forking thread is another task now, in another
/// process. Async-signal-safe.
pub(crate) fn reset_after_fork(w: &Window) {
    TID.with(|t| t.store(0, Ordering::Relaxed));
    w.len.store(0, Ordering::Relaxed);
    w.lo.store(0, Ordering::Relaxed);
    ALT.with(|a| a.store(0, Ordering::Relaxed));
    set_process();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_window_covers_what_it_was_given_and_no_more() {
        let (lo, hi) = (0x7ffc_1234_5640, 0x7ffc_1234_9a80);
        let w = pack(lo, hi);
        assert_eq!(unpack(w), (lo, hi));
        assert!(inside(w, lo) && inside(w, hi - 1));
        assert!(!inside(w, lo - 1) && !inside(w, hi));
        assert!(
            !inside(0, 0) && !inside(0, 0x7ffc_0000_0000),
            "an empty window holds nothing"
        );
    }

    #[test]
    fn the_owner_is_known_after_its_first_write_and_another_stack_asks_once() {
        set_process();
        let w = Window::new();
        let here = crate::local::stack_mark();
        assert!(!w.known(here));
        assert_eq!(identify(&w, here), None);
        assert!(w.known(here));
        // Close by: the window widens to it.
        assert_eq!(identify(&w, here - 4096), None);
        assert!(w.known(here - 2048));
        // A frame far away (another stack of this thread): asked, then kept
        // as the second range.
        let far = here - (1 << 30);
        assert!(!w.known(far));
        assert_eq!(identify(&w, far), None);
        assert!(ALT.with(|a| inside(a.load(Ordering::Relaxed), far)));
        assert!(
            !w.known(far) && !w.known(far + (1 << 20)),
            "far from the window: the second range, or ask"
        );
    }
}
