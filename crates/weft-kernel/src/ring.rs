//! One perf ring buffer per CPU: map it, copy records out, give space back.

use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::atomic::{fence, Ordering};

use crate::error::{KernelError, Result};
use crate::perf::PerfFd;

const PAGE: usize = 4096;
// Offsets in struct perf_event_mmap_page (stable ABI).
const DATA_HEAD: usize = 1024;
const DATA_TAIL: usize = 1032;

pub(crate) struct Ring {
    pub leader: PerfFd,
    pub cpu: u32,
    base: NonNull<u8>,
    map_len: usize,
    data_size: usize,
    scratch: Vec<u8>,
}

impl Ring {
    /// Maps `data_bytes` (rounded up to a power-of-two number of pages) for `leader`.
    pub fn map(leader: PerfFd, cpu: u32, data_bytes: usize) -> Result<Ring> {
        let pages = data_bytes.div_ceil(PAGE).max(2).next_power_of_two();
        let data_size = pages * PAGE;
        let map_len = data_size + PAGE;
        // SAFETY: a shared mapping of a perf fd at offset 0 is the documented ABI;
        // the kernel validates the length.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                leader.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            let err = std::io::Error::last_os_error();
            let mut e = KernelError::sys(
                "mmap",
                format!("the {} KiB ring buffer of CPU {cpu}", data_size / 1024),
                err,
            );
            if let KernelError::Sys { hint, source, .. } = &mut e {
                if source.raw_os_error() == Some(libc::EPERM) {
                    *hint = Some("locked-memory limit reached: run as root or raise kernel.perf_event_mlock_kb, or use a smaller --buffer-size".into());
                }
            }
            return Err(e);
        }
        let base = NonNull::new(p.cast::<u8>())
            .ok_or_else(|| KernelError::sys("mmap", "ring", std::io::Error::from_raw_os_error(libc::ENOMEM)))?;
        Ok(Ring {
            leader,
            cpu,
            base,
            map_len,
            data_size,
            scratch: Vec::new(),
        })
    }

    pub fn data_size(&self) -> usize {
        self.data_size
    }

    /// Bytes written by the kernel and not yet consumed.
    pub fn pending(&self) -> usize {
        let (head, tail) = self.head_tail();
        head.wrapping_sub(tail) as usize
    }

    fn head_tail(&self) -> (u64, u64) {
        // SAFETY: offsets are inside the first (control) page of our mapping;
        // volatile reads because the kernel writes data_head concurrently.
        let head = unsafe { self.base.as_ptr().add(DATA_HEAD).cast::<u64>().read_volatile() };
        fence(Ordering::Acquire);
        // SAFETY: as above; only we write data_tail.
        let tail = unsafe { self.base.as_ptr().add(DATA_TAIL).cast::<u64>().read_volatile() };
        (head, tail)
    }

    /// Calls `f` with each complete record (header included), oldest first,
    /// then releases the space. Returns false if the ring held garbage (a
    /// record with an impossible size), in which case the rest was dropped.
    pub fn drain(&mut self, mut f: impl FnMut(&[u8])) -> bool {
        let (head, mut tail) = self.head_tail();
        let mask = (self.data_size - 1) as u64;
        // SAFETY: the data area starts one page into our mapping.
        let data = unsafe { self.base.as_ptr().add(PAGE) };
        let mut sane = true;
        while tail < head {
            let off = (tail & mask) as usize;
            let mut hdr = [0u8; 8];
            self.copy_out(data, off, &mut hdr);
            // A bad size means the ring is garbage from here on (there is no
            // way to find the next record), so the rest is dropped.
            let Some(size) = record_size(hdr, head - tail) else {
                sane = false;
                tail = head;
                break;
            };
            if off + size <= self.data_size {
                // SAFETY: [off, off+size) is inside the data area, and the kernel
                // does not write there until we advance data_tail past it.
                let rec = unsafe { std::slice::from_raw_parts(data.add(off), size) };
                f(rec);
            } else {
                let mut buf = std::mem::take(&mut self.scratch);
                buf.resize(size, 0);
                self.copy_out(data, off, &mut buf);
                f(&buf);
                self.scratch = buf;
            }
            tail += size as u64;
        }
        fence(Ordering::Release);
        // SAFETY: data_tail is in our control page; the kernel reads it to know
        // what space is free.
        unsafe { self.base.as_ptr().add(DATA_TAIL).cast::<u64>().write_volatile(tail) };
        sane
    }

    fn copy_out(&self, data: *const u8, off: usize, out: &mut [u8]) {
        let first = out.len().min(self.data_size - off);
        // SAFETY: both ranges lie inside the data area (wrapping at its end).
        unsafe {
            std::ptr::copy_nonoverlapping(data.add(off), out.as_mut_ptr(), first);
            std::ptr::copy_nonoverlapping(data, out.as_mut_ptr().add(first), out.len() - first);
        }
    }
}

/// The size of the record whose header is `hdr`, if it can be one: the
/// kernel writes 8-aligned records of at least a header, and never more
/// than it published (`available` bytes from this record on).
fn record_size(hdr: [u8; 8], available: u64) -> Option<usize> {
    let size = u16::from_le_bytes([hdr[6], hdr[7]]) as usize;
    (size >= 8 && size.is_multiple_of(8) && size as u64 <= available).then_some(size)
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: we mapped exactly this range in `map` and nothing borrows it now.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.map_len) };
    }
}

#[cfg(test)]
mod tests {
    use super::record_size;

    fn hdr(size: u16) -> [u8; 8] {
        let mut h = [0u8; 8];
        h[6..8].copy_from_slice(&size.to_le_bytes());
        h
    }

    #[test]
    fn only_aligned_sizes_of_a_header_or_more_within_what_was_published_pass() {
        assert_eq!(record_size(hdr(48), 4096), Some(48));
        assert_eq!(record_size(hdr(8), 8), Some(8));
        for bad in [0, 4, 7, 12, 50] {
            assert_eq!(record_size(hdr(bad), 4096), None, "size {bad}");
        }
        assert_eq!(record_size(hdr(64), 56), None, "beyond the published head");
        assert_eq!(record_size(hdr(u16::MAX), u64::MAX), None);
    }
}
