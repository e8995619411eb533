//! Checks, before touching the kernel, that this process may trace, so that
//! the user gets one clear sentence instead of an errno.

use std::fs;

use crate::error::{KernelError, Result};

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
            source: std::io::Error::from_raw_os_error(libc::ENOSYS),
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
        source: std::io::Error::from_raw_os_error(libc::EACCES),
        hint: HINT.into(),
    })
}
