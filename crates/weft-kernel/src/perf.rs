//! perf_event_open file descriptors for tracepoints.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use perf_event_open_sys as sys;
use sys::bindings as b;

use crate::error::{KernelError, Result};

/// Sample layout of every event weft opens: `PERF_SAMPLE_IDENTIFIER` first so
/// that one ring can carry events of different layouts later (CPU samples).
pub(crate) const SAMPLE_TYPE: u64 =
    (b::PERF_SAMPLE_IDENTIFIER | b::PERF_SAMPLE_TID | b::PERF_SAMPLE_TIME | b::PERF_SAMPLE_RAW) as u64;
/// Bytes of the `sample_id_all` trailer for SAMPLE_TYPE: pid/tid, time, id.
pub(crate) const SAMPLE_ID_LEN: usize = 24;
/// Added to SAMPLE_TYPE for events that carry a stack.
pub(crate) const STACK_TYPE: u64 =
    (b::PERF_SAMPLE_CALLCHAIN | b::PERF_SAMPLE_REGS_USER | b::PERF_SAMPLE_STACK_USER) as u64;
/// User registers recorded with a stack (x86_64 perf_regs: BP, SP, IP), in this order.
#[cfg(target_arch = "x86_64")]
pub(crate) const REGS_MASK: u64 = (1 << 6) | (1 << 7) | (1 << 8);
#[cfg(not(target_arch = "x86_64"))]
pub(crate) const REGS_MASK: u64 = 0;

/// What an event counts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source {
    Tracepoint(u64),
    /// cpu-clock sampling at this frequency (Hz).
    CpuClock(u32),
    /// Counts nothing: carries side-band records where no tracepoint may
    /// be opened (an unprivileged recording).
    Dummy,
    /// Where an eBPF program's `bpf_perf_event_output` writes (one per CPU,
    /// all tasks).
    BpfOutput,
}

/// How one event is opened.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spec {
    pub source: Source,
    /// Record user stack copies of this many bytes (and callchains, registers).
    pub stack: Option<u32>,
    /// Carries side-band records (comm, fork/exit, mmap) for its ring.
    pub sideband: bool,
    /// Start disabled and turn on at the target's next exec.
    pub enable_on_exec: bool,
    pub wakeup_bytes: u32,
    /// User space only (what an unprivileged task may open at
    /// `perf_event_paranoid` 2): no kernel samples or call chains.
    pub user_only: bool,
    /// With `sideband`: also context-switch records (off-CPU time).
    pub switches: bool,
}

/// Whether this kernel accepts PERF_FORMAT_LOST (cleared at the first refusal).
static LOST_FORMAT: AtomicBool = AtomicBool::new(true);

#[derive(Debug)]
pub(crate) struct PerfFd {
    fd: OwnedFd,
    lost_format: bool,
}

impl AsRawFd for PerfFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl PerfFd {
    /// Opens an event on one task (followed into its future children) and one CPU.
    pub fn open(spec: &Spec, pid: i32, cpu: i32, what: &str) -> Result<PerfFd> {
        Self::open_with(spec, pid, cpu, 0, what)
    }

    /// Opens an event on one CPU for every task of a cgroup (its directory descriptor).
    pub fn open_cgroup(spec: &Spec, cgroup: RawFd, cpu: i32, what: &str) -> Result<PerfFd> {
        Self::open_with(spec, cgroup, cpu, b::PERF_FLAG_PID_CGROUP as libc::c_ulong, what)
    }

    fn open_with(spec: &Spec, pid: i32, cpu: i32, flags: libc::c_ulong, what: &str) -> Result<PerfFd> {
        let cgroup = flags & b::PERF_FLAG_PID_CGROUP as libc::c_ulong != 0;
        let mut attr = b::perf_event_attr {
            size: std::mem::size_of::<b::perf_event_attr>() as u32,
            sample_type: SAMPLE_TYPE,
            ..Default::default()
        };
        match spec.source {
            Source::Tracepoint(id) => {
                attr.type_ = b::PERF_TYPE_TRACEPOINT;
                attr.config = id;
                attr.__bindgen_anon_1.sample_period = 1;
            }
            Source::CpuClock(hz) => {
                attr.type_ = b::PERF_TYPE_SOFTWARE;
                attr.config = b::PERF_COUNT_SW_CPU_CLOCK as u64;
                attr.set_freq(1);
                attr.__bindgen_anon_1.sample_freq = u64::from(hz);
                // No raw data for a software event.
                attr.sample_type &= !(b::PERF_SAMPLE_RAW as u64);
            }
            Source::BpfOutput => {
                attr.type_ = b::PERF_TYPE_SOFTWARE;
                attr.config = b::PERF_COUNT_SW_BPF_OUTPUT as u64;
                attr.__bindgen_anon_1.sample_period = 1;
            }
            Source::Dummy => {
                attr.type_ = b::PERF_TYPE_SOFTWARE;
                attr.config = b::PERF_COUNT_SW_DUMMY as u64;
                attr.sample_type &= !(b::PERF_SAMPLE_RAW as u64);
            }
        }
        if spec.user_only {
            attr.set_exclude_kernel(1);
            attr.set_exclude_hv(1);
            attr.set_exclude_callchain_kernel(1);
        }
        if let Some(bytes) = spec.stack {
            attr.sample_type |= STACK_TYPE;
            attr.sample_regs_user = REGS_MASK;
            attr.sample_stack_user = bytes;
        }
        attr.__bindgen_anon_2.wakeup_watermark = spec.wakeup_bytes;
        attr.set_watermark(1);
        // A cgroup event already covers every task in the cgroup.
        attr.set_inherit(u64::from(!cgroup && pid != -1));
        attr.set_sample_id_all(1);
        attr.set_use_clockid(1);
        attr.clockid = libc::CLOCK_MONOTONIC;
        if spec.enable_on_exec && !cgroup {
            attr.set_disabled(1);
            attr.set_enable_on_exec(1);
        }
        if spec.sideband {
            attr.set_comm(1);
            attr.set_comm_exec(1);
            attr.set_task(1);
            attr.set_mmap(1);
            attr.set_mmap2(1);
            attr.set_build_id(1);
            if spec.switches {
                attr.set_context_switch(1);
            }
        }
        // The kernel's own count of records this event could not write
        // (ring full), readable at the end even when no PERF_RECORD_LOST
        // made it into the ring (Linux 6.0+; older kernels refuse the bit).
        let lost_format = LOST_FORMAT.load(Ordering::Relaxed);
        if lost_format {
            attr.read_format = b::PERF_FORMAT_LOST as u64;
        }
        // SAFETY: attr is a fully initialized perf_event_attr with a correct size.
        let open = |attr: &mut b::perf_event_attr| unsafe {
            sys::perf_event_open(attr, pid, cpu, -1, b::PERF_FLAG_FD_CLOEXEC as libc::c_ulong | flags)
        };
        let mut fd = open(&mut attr);
        if fd < 0 && lost_format && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
            attr.read_format = 0;
            fd = open(&mut attr);
            if fd >= 0 {
                LOST_FORMAT.store(false, Ordering::Relaxed);
            }
        }
        if fd < 0 {
            return Err(KernelError::sys(
                "perf_event_open",
                what.to_owned(),
                std::io::Error::last_os_error(),
            ));
        }
        // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
        Ok(PerfFd {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            lost_format: attr.read_format != 0,
        })
    }

    /// The id the kernel puts in this event's (and its inherited copies') records.
    pub fn id(&self) -> Result<u64> {
        let mut id = 0u64;
        // SAFETY: PERF_EVENT_IOC_ID writes one u64 through the pointer.
        if unsafe { sys::ioctls::ID(self.as_raw_fd(), &mut id) } < 0 {
            return Err(KernelError::sys(
                "ioctl(PERF_EVENT_IOC_ID)",
                "event id",
                std::io::Error::last_os_error(),
            ));
        }
        Ok(id)
    }

    /// Sends this event's records into `leader`'s ring.
    pub fn set_output(&self, leader: &PerfFd) -> Result<()> {
        // SAFETY: both are perf event descriptors we own.
        if unsafe { sys::ioctls::SET_OUTPUT(self.as_raw_fd(), leader.as_raw_fd()) } < 0 {
            return Err(KernelError::sys(
                "ioctl(PERF_EVENT_IOC_SET_OUTPUT)",
                "ring redirection",
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    /// Installs an ftrace filter expression evaluated in the kernel.
    pub fn set_filter(&self, filter: &str) -> Result<()> {
        let c = CString::new(filter).map_err(|_| {
            KernelError::sys(
                "ioctl(PERF_EVENT_IOC_SET_FILTER)",
                "filter",
                std::io::Error::from_raw_os_error(libc::EINVAL),
            )
        })?;
        // SAFETY: the kernel only reads the NUL-terminated string.
        if unsafe { sys::ioctls::SET_FILTER(self.as_raw_fd(), c.as_ptr() as *mut _) } < 0 {
            return Err(KernelError::sys(
                "ioctl(PERF_EVENT_IOC_SET_FILTER)",
                format!("filter `{filter}`"),
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    /// Records the kernel could not write for this event (and its
    /// inherited copies, which write through it), or None where the kernel
    /// does not count them.
    pub fn lost(&self) -> Option<u64> {
        if self.lost_format {
            let mut v = [0u64; 2];
            // SAFETY: read_format is PERF_FORMAT_LOST alone: the kernel writes value, lost.
            let n = unsafe { libc::read(self.as_raw_fd(), v.as_mut_ptr().cast(), 16) };
            return (n == 16).then_some(v[1]);
        }
        None
    }

    pub fn disable(&self) {
        // SAFETY: plain ioctl on our own descriptor; failure only means it is already gone.
        unsafe { sys::ioctls::DISABLE(self.as_raw_fd(), 0) };
    }
}
