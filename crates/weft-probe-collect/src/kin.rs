//! Whether a process that names itself in another's buffers may: a task
//! that shares a process's memory without being one of its threads (a
//! `clone(CLONE_VM)` child, a vfork child) writes into a slot of its own
//! and says which process it is (`S_PID`); that claim is the program's
//! word, so it is checked against the kernel before events go under it.

/// `kcmp`'s "same address space" comparison.
const KCMP_VM: libc::c_int = 1;

/// Whether `pid` shares `process`'s memory now, or is its child (one that
/// exec'd or ended since no longer shares it; a fork child never could,
/// the area being `MADV_DONTFORK`, so this admits only the process's own
/// children): `None` if `pid` is gone (nothing left to ask). Once
/// `process` itself is gone a child of it that lives on has another
/// parent and is refused: `weft record` answers from the kernel's fork
/// records then (`Sink::belongs`).
pub fn belongs_to(process: u32, pid: u32) -> Option<bool> {
    // SAFETY: kcmp takes two pids and integers, no pointers.
    let same = unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            process as libc::pid_t,
            pid as libc::pid_t,
            KCMP_VM,
            0,
            0,
        )
    } == 0;
    if same {
        return Some(true);
    }
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    let ppid = weft_probe_abi::stat_field(&stat, 4).and_then(weft_probe_abi::parse_decimal)?;
    Some(ppid == u64::from(process))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_belongs_and_a_stranger_does_not() {
        let me = std::process::id();
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        assert_eq!(
            belongs_to(me, child.id()),
            Some(true),
            "a child (exec'd since its clone)"
        );
        assert_eq!(belongs_to(me, 1), Some(false), "init is nobody's clone");
        assert_eq!(belongs_to(me, me), Some(true));
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(belongs_to(me, child.id()), None, "reaped: nothing left to ask");
    }
}
