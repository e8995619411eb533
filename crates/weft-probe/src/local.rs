//! Read-modify-write operations that are atomic with respect to signal
//! handlers on the same thread but take no bus lock: every word they touch
//! is written only by its owning thread (and that thread's handlers), so a
//! single non-`lock` instruction is enough and costs a cycle, not ~20.

/// `*p += v`, returning the old value.
///
/// # Safety
/// `p` must be valid, aligned, and written only by the calling thread.
#[inline(always)]
pub unsafe fn add_u64(p: *mut u64, v: u64) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        let mut r = v;
        // SAFETY: caller guarantees p; xadd without lock is one instruction,
        // so a signal sees it either done or not.
        unsafe { core::arch::asm!("xadd qword ptr [{p}], {r}", p = in(reg) p, r = inout(reg) r, options(nostack)) };
        r
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // SAFETY: caller guarantees p is valid and aligned.
        unsafe { core::sync::atomic::AtomicU64::from_ptr(p) }.fetch_add(v, core::sync::atomic::Ordering::Relaxed)
    }
}

/// Signal-atomic add to a u32, as `add_u64`.
///
/// # Safety
/// As `add_u64`.
#[inline(always)]
pub unsafe fn add_u32(p: *mut u32, v: u32) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        let mut r = v;
        // SAFETY: caller guarantees p; one instruction, as in add_u64.
        unsafe { core::arch::asm!("xadd dword ptr [{p}], {r:e}", p = in(reg) p, r = inout(reg) r, options(nostack)) };
        r
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // SAFETY: caller guarantees p is valid and aligned.
        unsafe { core::sync::atomic::AtomicU32::from_ptr(p) }.fetch_add(v, core::sync::atomic::Ordering::Relaxed)
    }
}

/// Compare-and-swap on a u32; true if it swapped.
///
/// # Safety
/// As `add_u64`.
#[inline(always)]
pub unsafe fn cas_u32(p: *mut u32, old: u32, new: u32) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let prev: u32;
        // SAFETY: as add_u64; cmpxchg compares with eax.
        unsafe {
            core::arch::asm!("cmpxchg dword ptr [{p}], {new:e}", p = in(reg) p, new = in(reg) new, inout("eax") old => prev, options(nostack))
        };
        prev == old
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        use core::sync::atomic::{AtomicU32, Ordering};
        // SAFETY: caller guarantees p is valid and aligned.
        unsafe { AtomicU32::from_ptr(p) }
            .compare_exchange(old, new, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }
}

/// Compare-and-swap on a u64; true if it swapped.
///
/// # Safety
/// As `add_u64`.
#[inline(always)]
pub unsafe fn cas_u64(p: *mut u64, old: u64, new: u64) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let prev: u64;
        // SAFETY: as add_u64; cmpxchg compares with rax.
        unsafe {
            core::arch::asm!("cmpxchg qword ptr [{p}], {new}", p = in(reg) p, new = in(reg) new, inout("rax") old => prev, options(nostack))
        };
        prev == old
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        use core::sync::atomic::{AtomicU64, Ordering};
        // SAFETY: caller guarantees p is valid and aligned.
        unsafe { AtomicU64::from_ptr(p) }
            .compare_exchange(old, new, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }
}

/// Loads with acquire ordering.
///
/// # Safety
/// `p` must be valid and aligned.
#[inline(always)]
pub unsafe fn load_u64(p: *const u64) -> u64 {
    // SAFETY: caller guarantees p.
    unsafe { core::sync::atomic::AtomicU64::from_ptr(p as *mut u64) }.load(core::sync::atomic::Ordering::Acquire)
}

/// # Safety
/// `p` must be valid and aligned.
#[inline(always)]
pub unsafe fn load_u32(p: *const u32) -> u32 {
    // SAFETY: caller guarantees p.
    unsafe { core::sync::atomic::AtomicU32::from_ptr(p as *mut u32) }.load(core::sync::atomic::Ordering::Acquire)
}

/// Stores with release ordering (what the collector acquires).
///
/// # Safety
/// `p` must be valid and aligned.
#[inline(always)]
pub unsafe fn store_u64(p: *mut u64, v: u64) {
    // SAFETY: caller guarantees p.
    unsafe { core::sync::atomic::AtomicU64::from_ptr(p) }.store(v, core::sync::atomic::Ordering::Release)
}

/// # Safety
/// `p` must be valid and aligned.
#[inline(always)]
pub unsafe fn store_u32(p: *mut u32, v: u32) {
    // SAFETY: caller guarantees p.
    unsafe { core::sync::atomic::AtomicU32::from_ptr(p) }.store(v, core::sync::atomic::Ordering::Release)
}

/// Asks for the cache line at `p` in a writable state, ahead of stores to
/// it. Only a hint: it never faults, whatever `p` is.
#[inline(always)]
pub fn prefetch_write(p: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetchw reads and writes nothing and never faults (a NOP on
    // CPUs without it).
    unsafe {
        core::arch::asm!("prefetchw byte ptr [{p}]", p = in(reg) p, options(nostack, readonly, preserves_flags))
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Timestamp counter: the cheapest clock; the collector maps it to
/// CLOCK_MONOTONIC.
#[inline(always)]
pub fn ticks() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc has no preconditions on x86_64.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        monotonic_ns()
    }
}

pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into ts; it is async-signal-safe.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// An address in the current stack frame: tells live frames from ones a
/// handler abandoned by jumping out (the stack grows down).
#[inline(always)]
pub fn stack_mark() -> u64 {
    let x = 0u8;
    core::ptr::addr_of!(x) as u64
}
