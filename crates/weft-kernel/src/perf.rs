//! perf_event_open file descriptors for tracepoints.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use perf_event_open_sys as sys;
use sys::bindings as b;

use crate::error::{KernelError, Result};

/// Sample layout of every event weft opens: `PERF_SAMPLE_IDENTIFIER` first so
/// that one ring can carry events of different layouts later (CPU samples).
pub(crate) const SAMPLE_TYPE: u64 =
    (b::PERF_SAMPLE_IDENTIFIER | b::PERF_SAMPLE_TID | b::PERF_SAMPLE_TIME | b::PERF_SAMPLE_RAW) as u64;
/// Bytes of the `sample_id_all` trailer for SAMPLE_TYPE: pid/tid, time, id.
pub(crate) const SAMPLE_ID_LEN: usize = 24;

/// How one tracepoint event is opened.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spec {
    pub tracepoint_id: u64,
    /// Carries side-band records (comm, fork/exit, mmap) for its ring.
    pub sideband: bool,
    /// Start disabled and turn on at the target's next exec.
    pub enable_on_exec: bool,
    pub wakeup_bytes: u32,
}

#[derive(Debug)]
pub(crate) struct PerfFd {
    fd: OwnedFd,
}

impl AsRawFd for PerfFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl PerfFd {
    /// Opens a tracepoint event on one task (followed into its future
    /// children) and one CPU.
    pub fn open(spec: &Spec, pid: i32, cpu: i32, what: &str) -> Result<PerfFd> {
        let mut attr = b::perf_event_attr {
            type_: b::PERF_TYPE_TRACEPOINT,
            size: std::mem::size_of::<b::perf_event_attr>() as u32,
            config: spec.tracepoint_id,
            sample_type: SAMPLE_TYPE,
            ..Default::default()
        };
        attr.__bindgen_anon_1.sample_period = 1;
        attr.__bindgen_anon_2.wakeup_watermark = spec.wakeup_bytes;
        attr.set_watermark(1);
        attr.set_inherit(1);
        attr.set_sample_id_all(1);
        attr.set_use_clockid(1);
        attr.clockid = libc::CLOCK_MONOTONIC;
        if spec.enable_on_exec {
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
        }
        // SAFETY: attr is a fully initialized perf_event_attr with a correct size.
        let fd = unsafe { sys::perf_event_open(&mut attr, pid, cpu, -1, b::PERF_FLAG_FD_CLOEXEC as libc::c_ulong) };
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

    pub fn disable(&self) {
        // SAFETY: plain ioctl on our own descriptor; failure only means it is already gone.
        unsafe { sys::ioctls::DISABLE(self.as_raw_fd(), 0) };
    }
}
