//! Session epochs, kept where a fork child cannot see the parent's.
//!
//! A thread's cached slot is valid while its session's epoch is unchanged.
//! The epochs live in an anonymous page marked `MADV_WIPEONFORK`: a fork
//! child gets that page back zero-filled, and epoch 0 means "no session".
//! So a write made in the child before the fork handler has run (from a
//! signal handler, from an atfork handler registered before ours, after a
//! raw `fork` syscall that runs no handler at all) finds no session and
//! drops the event, instead of following the parent's cached slot address
//! into buffers that `MADV_DONTFORK` left unmapped in the child.

use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

use weft_probe_abi::MAX_SESSIONS;

const N: usize = MAX_SESSIONS as usize;

/// Used until `init` maps the page, and for good where the kernel lacks
/// `MADV_WIPEONFORK` (before 4.14): then a fork child sees its parent's
/// epochs until its handler runs, as before.
static FALLBACK: [AtomicU32; N] = [const { AtomicU32::new(0) }; N];
static PAGE: AtomicPtr<AtomicU32> = AtomicPtr::new(FALLBACK.as_ptr() as *mut AtomicU32);
/// The last epoch handed out per session. Process-private and inherited by
/// a fork child, so that the child's new epochs differ from every epoch its
/// copy of the parent's thread caches could hold.
static ISSUED: [AtomicU32; N] = [const { AtomicU32::new(0) }; N];

/// Maps the page (once, at start-up, before any session exists). Returns
/// whether a fork child will see zeros.
pub(crate) fn init() -> bool {
    if !std::ptr::eq(PAGE.load(Ordering::Acquire), FALLBACK.as_ptr()) {
        return true;
    }
    // SAFETY: a fresh private anonymous page, nothing else refers to it.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            weft_probe_abi::layout::PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return false;
    }
    // SAFETY: advising the page we just mapped.
    if unsafe { libc::madvise(p, weft_probe_abi::layout::PAGE, libc::MADV_WIPEONFORK) } != 0 {
        // SAFETY: unmapping it again; it was never published.
        unsafe { libc::munmap(p, weft_probe_abi::layout::PAGE) };
        return false;
    }
    for (si, e) in FALLBACK.iter().enumerate() {
        // SAFETY: the page holds N u32s; nobody reads it before the store below.
        unsafe { (*(p as *const AtomicU32).add(si)).store(e.load(Ordering::Acquire), Ordering::Release) };
    }
    PAGE.store(p.cast(), Ordering::Release);
    true
}

/// Session `si`'s epoch; 0: no session (never attached, or a fork child
/// whose handler has not run yet).
#[inline(always)]
pub(crate) fn current(si: usize) -> u32 {
    let p = PAGE.load(Ordering::Acquire);
    // SAFETY: PAGE points at N AtomicU32s (FALLBACK or the mapped page, which
    // is never unmapped) and si < N at every caller (a session bit).
    unsafe { (*p.add(si)).load(Ordering::Acquire) }
}

/// A new epoch for session `si` (attach, detach, fork child): every thread's
/// cached slot in it becomes stale. Async-signal-safe.
pub(crate) fn advance(si: usize) {
    let mut e = ISSUED[si].fetch_add(1, Ordering::AcqRel).wrapping_add(1);
    if e == 0 {
        e = ISSUED[si].fetch_add(1, Ordering::AcqRel).wrapping_add(1);
    }
    let p = PAGE.load(Ordering::Acquire);
    // SAFETY: as in `current`.
    unsafe { (*p.add(si)).store(e, Ordering::Release) };
}
