//! Symbolic names for numbers the kernel hands out: errno, signals, si_code.

use nix::errno::Errno;
use nix::sys::signal::Signal;

/// The kernel's own restart codes, which a traced syscall returns when a
/// signal interrupts it (the program never sees them): as strace names them.
fn restart(e: i64) -> Option<(&'static str, &'static str)> {
    Some(match e {
        512 => ("ERESTARTSYS", "To be restarted if SA_RESTART is set"),
        513 => ("ERESTARTNOINTR", "To be restarted"),
        514 => ("ERESTARTNOHAND", "To be restarted if no handler"),
        516 => ("ERESTART_RESTARTBLOCK", "Interrupted by signal"),
        _ => return None,
    })
}

/// `ENOENT` for 2; `E123` for numbers this platform does not name.
pub fn errno_name(e: i64) -> String {
    if let Some((name, _)) = restart(e) {
        return name.to_owned();
    }
    match i32::try_from(e).map(Errno::from_raw) {
        Ok(Errno::UnknownErrno) | Err(_) => format!("E{e}"),
        Ok(errno) => format!("{errno:?}"),
    }
}

pub fn errno_desc(e: i64) -> &'static str {
    if let Some((_, desc)) = restart(e) {
        return desc;
    }
    i32::try_from(e)
        .map(|e| Errno::from_raw(e).desc())
        .unwrap_or("Unknown error")
}

/// `SIGSEGV` for 11, `SIGRTMIN+3` for real-time signals.
pub fn signal_name(sig: i64) -> String {
    if let Ok(s) = i32::try_from(sig)
        .map_err(|_| ())
        .and_then(|s| Signal::try_from(s).map_err(|_| ()))
    {
        return s.as_str().to_owned();
    }
    let rtmin = libc::SIGRTMIN() as i64;
    if (rtmin..=libc::SIGRTMAX() as i64).contains(&sig) {
        return if sig == rtmin {
            "SIGRTMIN".into()
        } else {
            format!("SIGRTMIN+{}", sig - rtmin)
        };
    }
    format!("signal {sig}")
}

/// Meaning of a siginfo `si_code` for a given signal.
pub fn si_code_name(sig: i64, code: i64) -> String {
    let generic = match code {
        0 => Some("SI_USER"),
        0x80 => Some("SI_KERNEL"),
        -1 => Some("SI_QUEUE"),
        -2 => Some("SI_TIMER"),
        -3 => Some("SI_MESGQ"),
        -4 => Some("SI_ASYNCIO"),
        -5 => Some("SI_SIGIO"),
        -6 => Some("SI_TKILL"),
        _ => None,
    };
    if let Some(g) = generic {
        return g.into();
    }
    let specific: &[&str] = match sig as i32 {
        libc::SIGSEGV => &["SEGV_MAPERR", "SEGV_ACCERR", "SEGV_BNDERR", "SEGV_PKUERR"],
        libc::SIGBUS => &[
            "BUS_ADRALN",
            "BUS_ADRERR",
            "BUS_OBJERR",
            "BUS_MCEERR_AR",
            "BUS_MCEERR_AO",
        ],
        libc::SIGILL => &[
            "ILL_ILLOPC",
            "ILL_ILLOPN",
            "ILL_ILLADR",
            "ILL_ILLTRP",
            "ILL_PRVOPC",
            "ILL_PRVREG",
            "ILL_COPROC",
            "ILL_BADSTK",
        ],
        libc::SIGFPE => &[
            "FPE_INTDIV",
            "FPE_INTOVF",
            "FPE_FLTDIV",
            "FPE_FLTOVF",
            "FPE_FLTUND",
            "FPE_FLTRES",
            "FPE_FLTINV",
            "FPE_FLTSUB",
        ],
        libc::SIGCHLD => &[
            "CLD_EXITED",
            "CLD_KILLED",
            "CLD_DUMPED",
            "CLD_TRAPPED",
            "CLD_STOPPED",
            "CLD_CONTINUED",
        ],
        libc::SIGTRAP => &["TRAP_BRKPT", "TRAP_TRACE", "TRAP_BRANCH", "TRAP_HWBKPT"],
        _ => &[],
    };
    usize::try_from(code - 1)
        .ok()
        .and_then(|i| specific.get(i))
        .map_or_else(|| code.to_string(), |s| (*s).to_owned())
}

/// Signals whose default action terminates the process.
pub fn default_is_fatal(sig: i64) -> bool {
    !matches!(
        sig as i32,
        libc::SIGCHLD
            | libc::SIGCONT
            | libc::SIGURG
            | libc::SIGWINCH
            | libc::SIGSTOP
            | libc::SIGTSTP
            | libc::SIGTTIN
            | libc::SIGTTOU
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn real_time_signals_are_named_from_sigrtmin() {
        let rtmin = libc::SIGRTMIN() as i64;
        assert_eq!(super::signal_name(rtmin), "SIGRTMIN");
        assert_eq!(super::signal_name(rtmin + 1), "SIGRTMIN+1");
        assert_eq!(super::signal_name(11), "SIGSEGV");
    }

    use super::*;

    #[test]
    fn names() {
        assert_eq!(errno_name(2), "ENOENT");
        assert_eq!(errno_name(9999), "E9999");
        assert_eq!(signal_name(11), "SIGSEGV");
        assert_eq!(si_code_name(11, 1), "SEGV_MAPERR");
        assert_eq!(si_code_name(10, -6), "SI_TKILL");
    }
}
