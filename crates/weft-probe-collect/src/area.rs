//! The buffer area: a memfd the collector creates, sizes, pre-faults and
//! seals against resizing before handing it to a process.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use weft_probe_abi::layout::*;

use crate::ProbeError;

pub struct Area {
    fd: OwnedFd,
    base: *mut u8,
    len: usize,
    geo: Geometry,
    salt: u64,
    /// Slots whose pages are in memory (`A_READY` as this side wrote it).
    ready: u32,
}

fn io(what: &str) -> ProbeError {
    ProbeError::Io {
        what: what.into(),
        source: std::io::Error::last_os_error(),
    }
}

impl Area {
    /// An area whose every slot is ready (in memory) from the start.
    pub fn create(geo: Geometry, mode: Mode) -> Result<Area, ProbeError> {
        Self::create_ready(geo, mode, geo.slots)
    }

    /// An area with slots `0..ready` in memory; `grow` adds more as threads
    /// claim them. The control pages of every slot are in memory either way.
    pub fn create_ready(geo: Geometry, mode: Mode, ready: u32) -> Result<Area, ProbeError> {
        geo.validate().map_err(|e| ProbeError::Io {
            what: format!("buffer geometry: {e}"),
            source: std::io::Error::from_raw_os_error(libc::EINVAL),
        })?;
        let len = geo.total_len();
        // SAFETY: memfd_create with a static name.
        let fd = unsafe { libc::memfd_create(c"weft-probe".as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
        if fd < 0 {
            return Err(io("memfd_create"));
        }
        // SAFETY: fd is fresh and ours.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sizing our memfd.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) } != 0 {
            return Err(io("ftruncate of the buffer memfd"));
        }
        // SAFETY: mapping our memfd of `len` bytes.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io("mmap of the buffer memfd"));
        }
        let salt = {
            let mut s = [0u8; 8];
            // SAFETY: getrandom fills our 8-byte buffer.
            unsafe { libc::getrandom(s.as_mut_ptr().cast(), 8, 0) };
            u64::from_le_bytes(s) | 1
        };
        let mut area = Area {
            fd,
            base: p.cast(),
            len,
            geo,
            salt,
            ready: 0,
        };
        // The pages a writer may touch are in memory before it can see them:
        // the process never waits on a page fault into this memory (nor
        // gets SIGBUS for want of memory there), and neither does the
        // collector. The header, every control page, the ready slots.
        let ready = ready.clamp(1, geo.slots);
        area.populate(0, geo.slot_offset(ready))?;
        for slot in ready..geo.slots {
            let at = geo.slot_offset(slot);
            area.populate(at, at + SLOT_CTL_LEN)?;
        }
        area.ready = ready;
        area.put_u32(A_READY, ready);
        area.put_u64(A_MAGIC, AREA_MAGIC);
        area.put_u32(A_VERSION, AREA_VERSION);
        area.put_u32(A_MODE, mode as u32);
        area.put_u32(A_SLOTS, geo.slots);
        area.put_u32(A_SUBBUFS, geo.subbufs);
        area.put_u32(A_SUBBUF_SIZE, geo.subbuf_size);
        area.put_u64(A_SALT, salt);
        area.put_u64(A_TOTAL, len as u64);
        let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
        // SAFETY: sealing our memfd.
        if unsafe { libc::fcntl(area.fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
            return Err(io("sealing the buffer memfd"));
        }
        Ok(area)
    }

    /// Slots a writer may claim now.
    pub fn ready(&self) -> u32 {
        self.ready
    }

    /// Bytes of this area in memory.
    pub fn populated(&self) -> usize {
        self.geo.ready_len(self.ready)
    }

    /// Puts the buffers of slots `ready..to` in memory, then lets writers
    /// claim them.
    pub fn grow(&mut self, to: u32) -> Result<(), ProbeError> {
        let to = to.min(self.geo.slots);
        if to <= self.ready {
            return Ok(());
        }
        self.populate(self.geo.slot_offset(self.ready), self.geo.slot_offset(to))?;
        self.ready = to;
        self.put_u32(A_READY, to);
        Ok(())
    }

    /// Faults in the pages of `[from, to)` of the mapping (page aligned).
    fn populate(&self, from: usize, to: usize) -> Result<(), ProbeError> {
        let to = to.min(self.len);
        if to <= from {
            return Ok(());
        }
        // SAFETY: [from, to) lies inside our mapping of the memfd.
        let r = unsafe { libc::madvise(self.base.add(from).cast(), to - from, libc::MADV_POPULATE_WRITE) };
        if r == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINVAL) {
            return Err(ProbeError::Io {
                what: format!("putting {} KiB of weft-probe buffers in memory", (to - from) >> 10),
                source: e,
            });
        }
        // Kernels before 5.14: touch each page. Its bytes are zero, and no
        // writer may use them until they are ready.
        for at in (from..to).step_by(PAGE) {
            // SAFETY: inside the mapping; a whole-word atomic add of 0.
            unsafe { std::sync::atomic::AtomicU64::from_ptr(self.base.add(at).cast()) }
                .fetch_add(0, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }

    /// How long a writer finding its ring full waits for this collector
    /// (discard mode; clamped to `MAX_WAIT_US`). Set before the area is
    /// handed over: the process reads the header once, at attach.
    pub fn set_wait(&self, wait: std::time::Duration) {
        let us = wait.as_micros().min(u128::from(MAX_WAIT_US)) as u32;
        self.put_u32(A_WAIT_US, us);
    }

    pub fn fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    pub fn salt(&self) -> u64 {
        self.salt
    }

    pub fn geometry(&self) -> Geometry {
        self.geo
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `out.len()` bytes at `off` out of the shared memory. Offsets
    /// past the end copy nothing and return false.
    pub fn copy(&self, off: usize, out: &mut [u8]) -> bool {
        match off.checked_add(out.len()) {
            Some(end) if end <= self.len => {
                // SAFETY: [off, end) is inside our mapping, which stays mapped
                // (the memfd is sealed against shrinking); volatile copy because
                // the other process writes concurrently.
                for (i, b) in out.iter_mut().enumerate() {
                    *b = unsafe { self.base.add(off + i).read_volatile() };
                }
                true
            }
            _ => false,
        }
    }

    /// Copies bulk bytes (records). Same contract as `copy`.
    pub fn copy_bulk(&self, off: usize, out: &mut [u8]) -> bool {
        match off.checked_add(out.len()) {
            Some(end) if end <= self.len => {
                std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
                // SAFETY: in bounds as above; the copy is a snapshot that is
                // validated afterwards, never trusted as read.
                unsafe { std::ptr::copy_nonoverlapping(self.base.add(off), out.as_mut_ptr(), out.len()) };
                true
            }
            _ => false,
        }
    }

    /// Appends `len` bytes from `off` to `out` (a copy like `copy_bulk`,
    /// without zeroing the destination first). False, and `out` unchanged,
    /// if the range is outside the area.
    pub fn append_bulk(&self, off: usize, len: usize, out: &mut Vec<u8>) -> bool {
        match off.checked_add(len) {
            Some(end) if end <= self.len => {
                out.reserve(len);
                prefault(&mut out.spare_capacity_mut()[..len]);
                std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
                // SAFETY: the source is in bounds as above; the destination is
                // `len` bytes of spare capacity just reserved, which the copy
                // initializes before the length covers them.
                unsafe {
                    std::ptr::copy_nonoverlapping(self.base.add(off), out.as_mut_ptr().add(out.len()), len);
                    out.set_len(out.len() + len);
                }
                true
            }
            _ => false,
        }
    }

    /// One whole word (never torn), with acquire ordering; 0 out of bounds.
    pub fn u64(&self, off: usize) -> u64 {
        if !off.is_multiple_of(8) || off.checked_add(8).is_none_or(|e| e > self.len) {
            return 0;
        }
        // SAFETY: aligned and inside our mapping (sealed against shrinking).
        unsafe { std::sync::atomic::AtomicU64::from_ptr(self.base.add(off).cast()) }
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// One whole word (never torn), with acquire ordering; 0 out of bounds.
    pub fn u32(&self, off: usize) -> u32 {
        if !off.is_multiple_of(4) || off.checked_add(4).is_none_or(|e| e > self.len) {
            return 0;
        }
        // SAFETY: as u64.
        unsafe { std::sync::atomic::AtomicU32::from_ptr(self.base.add(off).cast()) }
            .load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn put_u64(&self, off: usize, v: u64) {
        if off.is_multiple_of(8) && off + 8 <= self.len {
            // SAFETY: aligned and in bounds; an atomic store so the writer's
            // acquire load sees it whole.
            unsafe { std::sync::atomic::AtomicU64::from_ptr(self.base.add(off).cast()) }
                .store(v, std::sync::atomic::Ordering::Release);
        }
    }

    pub fn put_u32(&self, off: usize, v: u32) {
        if off.is_multiple_of(4) && off + 4 <= self.len {
            // SAFETY: as put_u64.
            unsafe { std::sync::atomic::AtomicU32::from_ptr(self.base.add(off).cast()) }
                .store(v, std::sync::atomic::Ordering::Release);
        }
    }

    pub fn no_slot_drops(&self) -> u64 {
        self.u64(A_NO_SLOT)
    }

    pub fn unregistered(&self) -> u64 {
        self.u64(A_UNREGISTERED)
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what we mapped.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

// SAFETY: the mapping is plain shared memory accessed through copies.
unsafe impl Send for Area {}

/// Populates the pages under `buf` in one call: copying into fresh memory
/// page fault by page fault costs the drain more than the copy itself.
fn prefault(buf: &mut [std::mem::MaybeUninit<u8>]) {
    const PAGE: usize = 4096;
    let start = (buf.as_ptr() as usize).next_multiple_of(PAGE);
    let end = (buf.as_ptr() as usize + buf.len()) & !(PAGE - 1);
    if end > start {
        // SAFETY: [start, end) lies inside `buf`, memory this process owns;
        // MADV_POPULATE_WRITE only faults those pages in (their contents
        // are uninitialized capacity either way).
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_POPULATE_WRITE) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes the kernel has allocated to the memfd.
    fn allocated(area: &Area) -> usize {
        // SAFETY: fstat of our own descriptor into a zeroed struct.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::fstat(area.fd(), &mut st) }, 0);
        st.st_blocks as usize * 512
    }

    /// Whether shared memory may get huge pages without asking (then a
    /// page in memory can bring a whole 2 MiB with it).
    fn shmem_huge() -> bool {
        let s = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/shmem_enabled").unwrap_or_default();
        !(s.contains("[never]") || s.contains("[deny]") || s.contains("[advise]") || s.is_empty())
    }

    /// `allocated` is `want`, or with shmem huge pages at least `want` and
    /// less than the whole area.
    fn assert_allocated(area: &Area, want: usize) {
        let got = allocated(area);
        if shmem_huge() {
            assert!(got >= want, "{got} bytes allocated, {want} populated");
            assert!(
                want == area.len() || got < area.len(),
                "{got} of {} bytes allocated",
                area.len()
            );
        } else {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn only_ready_slots_are_in_memory_and_growing_announces_more() {
        let geo = Geometry {
            slots: 16,
            subbufs: 4,
            subbuf_size: 256 << 10,
        };
        let mut area = Area::create_ready(geo, Mode::Discard, 3).expect("area");
        assert_eq!((area.ready(), area.u32(A_READY)), (3, 3));
        assert_eq!(area.populated(), AREA_HEADER_LEN + 16 * SLOT_CTL_LEN + 3 * (1 << 20));
        // The kernel agrees: a fraction of the 16 MiB area.
        assert_allocated(&area, area.populated());
        area.grow(5).expect("grow");
        assert_eq!((area.ready(), area.u32(A_READY)), (5, 5));
        assert_allocated(&area, geo.ready_len(5));
        // Never lowered, never past the slots.
        area.grow(2).expect("grow");
        area.grow(99).expect("grow");
        assert_eq!((area.ready(), area.u32(A_READY)), (16, 16));
        assert_allocated(&area, geo.total_len());
        // The old constructor makes every slot ready.
        let all = Area::create(geo, Mode::Discard).expect("area");
        assert_eq!(all.ready(), 16);
        assert_allocated(&all, geo.total_len());
    }
}
