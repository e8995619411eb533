//! Taking and giving back a session: mapping a collector's area, checking
//! it, publishing it to the write path, and undoing that at detach.
//!
//! Shared by the control threads of the process (crate::listener) and of a
//! fork child (crate::child), so everything here is async-signal-safe: raw
//! system calls (crate::sys), atomics, no allocation, no lock, no errno.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use weft_probe_abi::layout::*;

const _: () = assert!(
    weft_probe_abi::MAX_SESSIONS == 8,
    "the message in `take` names the count"
);

use crate::ring::SESSIONS;
use crate::sys;

/// Session bits in use.
pub(crate) static USED: AtomicU32 = AtomicU32::new(0);
/// Session bits whose locks a fork left held (see listener's
/// `reset_after_fork`): never used again in this process.
pub(crate) static DEAD: AtomicU32 = AtomicU32::new(0);
/// Attaches completed in this process (a fork child starts at 0).
pub(crate) static ATTACHES: AtomicU64 = AtomicU64::new(0);
/// A collector said no attach is coming now (`Later`): a wait for one
/// ends (a fork child starts without it).
pub(crate) static LATER: AtomicBool = AtomicBool::new(false);

/// A collector's area, mapped and checked, with the header values the
/// session keeps (copied once, when checked).
pub(crate) struct Area {
    pub base: usize,
    pub len: usize,
    geo: Geometry,
    salt: u64,
    wait_us: u32,
}

/// Maps the memfd `fd` after checking that it is sealed against resizing
/// and that its header describes it; the descriptor stays the caller's.
pub(crate) fn map(fd: i32, mode: u32) -> Result<Area, &'static str> {
    let len = sys::file_size(fd).map_err(|_| "fstat of the buffer memory failed")? as usize;
    let want = (libc::F_SEAL_SHRINK | libc::F_SEAL_GROW) as usize;
    match sys::seals(fd) {
        Ok(s) if s & want == want => {}
        _ => return Err("buffer memory is not sealed against resizing"),
    }
    if len < AREA_HEADER_LEN {
        return Err("buffer memory is smaller than its header");
    }
    // SAFETY: a new shared mapping of a sealed memfd of `len` bytes; it
    // cannot shrink under us.
    let base = unsafe { sys::mmap(0, len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd) }
        .map_err(|_| "mmap of the buffer memory failed")?;
    // Never write into the parent's buffers from a fork child.
    // SAFETY: advising our own fresh mapping.
    let _ = unsafe { sys::madvise(base, len, libc::MADV_DONTFORK) };
    let mut hdr = [0u8; 64];
    // SAFETY: the mapping is at least one page; copied once, then checked.
    unsafe { std::ptr::copy_nonoverlapping(base as *const u8, hdr.as_mut_ptr(), 64) };
    let geo = Geometry {
        slots: u32_at(&hdr, A_SLOTS),
        subbufs: u32_at(&hdr, A_SUBBUFS),
        subbuf_size: u32_at(&hdr, A_SUBBUF_SIZE),
    };
    let why = if u64_at(&hdr, A_MAGIC) != AREA_MAGIC || u32_at(&hdr, A_VERSION) != AREA_VERSION {
        Some("buffer memory has a bad header")
    } else if !geo.is_valid() {
        Some("buffer memory has a bad geometry")
    } else if geo.total_len() != len || u64_at(&hdr, A_TOTAL) as usize != len || Mode::from_u32(mode).is_none() {
        Some("buffer memory size or mode does not match its header")
    } else {
        None
    };
    let area = Area {
        base,
        len,
        geo,
        salt: u64_at(&hdr, A_SALT),
        wait_us: u32_at(&hdr, A_WAIT_US),
    };
    match why {
        Some(why) => {
            unmap(&area);
            Err(why)
        }
        None => Ok(area),
    }
}

fn u32_at(h: &[u8; 64], o: usize) -> u32 {
    h.get(o..o + 4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

fn u64_at(h: &[u8; 64], o: usize) -> u64 {
    h.get(o..o + 8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

fn unmap(area: &Area) {
    // SAFETY: nothing was published from this mapping.
    let _ = unsafe { sys::munmap(area.base, area.len) };
}

/// Takes a free session bit for `area` and publishes it to the write path
/// (no event is enabled yet). On failure the area is unmapped.
pub(crate) fn take(area: &Area, mode: u32, guard: bool) -> Result<u32, &'static str> {
    let bit = loop {
        let used = USED.load(Ordering::Acquire);
        let free = !(used | DEAD.load(Ordering::Acquire)) & weft_probe_abi::SESSION_MASK;
        if free == 0 {
            unmap(area);
            return Err("every session is in use (at most 8 collectors)");
        }
        let bit = free.trailing_zeros();
        if USED
            .compare_exchange(used, used | (1 << bit), Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            break bit;
        }
    };
    // Pairs with the fence in listener::on_register: the registry read after
    // this sees an event whose registration did not see this bit.
    std::sync::atomic::fence(Ordering::SeqCst);
    crate::owner::set_process();
    let geo = area.geo;
    let s = &SESSIONS[bit as usize];
    s.slots.store(geo.slots, Ordering::Release);
    s.subbufs.store(geo.subbufs, Ordering::Release);
    s.subbuf_size.store(geo.subbuf_size, Ordering::Release);
    s.mode.store(mode, Ordering::Release);
    s.salt.store(area.salt, Ordering::Release);
    let wait = if mode == Mode::Discard as u32 {
        area.wait_us.min(MAX_WAIT_US)
    } else {
        0
    };
    s.wait_us.store(wait, Ordering::Release);
    if guard {
        crate::ring::protect_all(area.base, geo);
    }
    s.guard.store(u32::from(guard), Ordering::Release);
    crate::epoch::advance(bit as usize);
    s.base.store(area.base, Ordering::Release);
    crate::ring::publish_unregistered(crate::registry::unregistered());
    Ok(bit)
}

/// Stops writing for session `bit` (its enable bits must be cleared
/// first, or with this). Writers that loaded the old address a moment ago
/// finish into anonymous memory mapped over the area, never into freed
/// memory; the collector's memory is released when it closes its side.
pub(crate) fn release(bit: u32, base: usize, len: usize) {
    crate::registry::each(|e| {
        e.enable.fetch_and(!(1 << bit), Ordering::AcqRel);
    });
    let s = &SESSIONS[bit as usize];
    s.base.store(0, Ordering::Release);
    crate::epoch::advance(bit as usize);
    sys::sleep_ns(20_000_000);
    // SAFETY: replaces our mapping of the area with private anonymous memory
    // at the same address (MAP_FIXED), so late writers never fault.
    let _ = unsafe {
        sys::mmap(
            base,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
        )
    };
    USED.fetch_and(!(1 << bit), Ordering::AcqRel);
}
