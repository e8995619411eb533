//! Checks, before touching the kernel, that this process may trace, so that
//! the user gets one clear sentence instead of an errno.

use std::fs;

use crate::error::{KernelError, Result};
use crate::tracefs::Tracefs;

pub(crate) const HINT: &str = "run weft as root (`sudo weft record ...`), or give it CAP_PERFMON \
(`sudo setcap cap_perfmon,cap_ipc_lock+ep $(which weft)`), or allow tracing for all users with \
`sudo sysctl kernel.perf_event_paranoid=-1`";

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;

fn effective_caps() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("CapEff:"))?;
            u64::from_str_radix(line.trim_start_matches("CapEff:").trim(), 16).ok()
        })
        .unwrap_or(0)
}

/// Reads `kernel.perf_event_paranoid`; `None` when perf events are not built in.
pub fn perf_event_paranoid() -> Option<i32> {
    fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether this process may record raw tracepoint data of other processes.
pub fn check_tracing_allowed() -> Result<()> {
    let Some(paranoid) = perf_event_paranoid() else {
        return Err(KernelError::Privilege {
            what: "this kernel has no perf events (/proc/sys/kernel/perf_event_paranoid is missing)".into(),
            hint: "weft needs a kernel built with CONFIG_PERF_EVENTS".into(),
        });
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let caps = effective_caps();
    let privileged = euid == 0 || caps & (1 << CAP_PERFMON) != 0 || caps & (1 << CAP_SYS_ADMIN) != 0;
    // Raw tracepoint samples need CAP_PERFMON unless paranoid is -1.
    if privileged || paranoid <= -1 {
        return Ok(());
    }
    Err(KernelError::Privilege {
        what: format!("weft record needs permission to trace (uid {euid}, kernel.perf_event_paranoid = {paranoid})"),
        hint: HINT.into(),
    })
}

/// What a recording by this process can include.
#[derive(Debug, Clone)]
pub enum Access {
    /// Tracepoints (syscalls, signals, lifecycle) and everything else.
    Full(Tracefs),
    /// No tracepoints: side-band records (lifecycle, memory maps) and CPU
    /// samples, of user space only unless `kernel` (CAP_PERFMON without a
    /// readable tracefs), in processes of our own uid, as
    /// `perf_event_paranoid` 2 allows any user. `why` says what is missing
    /// and what would give it.
    UserOnly { why: String, kernel: bool },
}

/// Decides what this process may record; an error only when not even the
/// user-space part is possible.
pub fn tracing_access() -> Result<Access> {
    let Some(paranoid) = perf_event_paranoid() else {
        return check_tracing_allowed().map(|()| Access::UserOnly {
            why: String::new(),
            kernel: false,
        });
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let caps = effective_caps();
    let privileged = euid == 0 || caps & (1 << CAP_PERFMON) != 0 || caps & (1 << CAP_SYS_ADMIN) != 0;
    if !privileged && paranoid > 2 {
        return Err(KernelError::Privilege {
            what: format!(
                "kernel.perf_event_paranoid = {paranoid} forbids perf events to users without CAP_PERFMON (uid {euid})"
            ),
            hint: format!(
                "{HINT}; `sudo sysctl kernel.perf_event_paranoid=2` lets users record their own programs' user space"
            ),
        });
    }
    if !privileged && paranoid > -1 {
        return Ok(Access::UserOnly {
            why: format!(
                "uid {euid} has no CAP_PERFMON and kernel.perf_event_paranoid is {paranoid}: tracepoints need CAP_PERFMON, root, or paranoid -1"
            ),
            kernel: paranoid <= 1,
        });
    }
    match Tracefs::locate_or_mount() {
        Ok(t) => Ok(Access::Full(t)),
        Err(KernelError::NoTracefs { reason }) => Ok(Access::UserOnly {
            why: format!("tracefs {reason}"),
            kernel: true,
        }),
        Err(e) => Err(e),
    }
}

/// The largest ring (data bytes, a power-of-two number of pages) a user
/// without CAP_IPC_LOCK may map per CPU: `kernel.perf_event_mlock_kb`
/// counts the ring's header page too (and is per CPU).
pub fn user_ring_limit() -> Option<usize> {
    let kb: usize = fs::read_to_string("/proc/sys/kernel/perf_event_mlock_kb")
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let pages = (kb * 1024 / 4096).checked_sub(1).filter(|&p| p > 0)?;
    Some((1usize << pages.ilog2()) * 4096)
}
