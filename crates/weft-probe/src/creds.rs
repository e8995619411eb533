//! Keeping a fork child's control thread (crate::child) at the process's
//! credentials. The C library changes credentials (`setuid`, `setgroups`,
//! ...) in every thread it knows of, by signalling each; the control thread
//! is not one of them. So it looks at the process's credentials (those of
//! its first thread, in `/proc/self/status`) at least once a second and
//! takes them over when they differ from its own: a child that gives up
//! root keeps no thread with root's rights for long, and no thread with
//! fewer rights than the rest that others could signal or limit.
//! Async-signal-safe: raw system calls, stack buffers.

use crate::sys;

/// Supplementary groups followed exactly; a process with more has them all
/// dropped in this thread (the safe direction).
const GROUPS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Creds {
    /// Real, effective, saved.
    pub uid: [u32; 3],
    pub gid: [u32; 3],
    pub groups: [u32; GROUPS],
    /// None: more than `GROUPS`.
    pub ngroups: Option<usize>,
    /// Inheritable, permitted, effective.
    pub caps: [u64; 3],
}

/// The credentials in a `/proc/.../status` text; None if a line is missing
/// or malformed.
pub(crate) fn parse(status: &[u8]) -> Option<Creds> {
    let line = |key: &[u8]| status.split(|&b| b == b'\n').find_map(|l| l.strip_prefix(key));
    let mut c = Creds {
        uid: [0; 3],
        gid: [0; 3],
        groups: [0; GROUPS],
        ngroups: Some(0),
        caps: [0; 3],
    };
    for (key, out) in [(&b"Uid:"[..], &mut c.uid), (&b"Gid:"[..], &mut c.gid)] {
        let mut w = words(line(key)?);
        for o in out.iter_mut() {
            *o = decimal(w.next()?)?;
        }
    }
    let mut n = 0;
    for w in words(line(b"Groups:")?) {
        match c.groups.get_mut(n) {
            Some(g) => *g = decimal(w)?,
            None => {
                c.ngroups = None;
                break;
            }
        }
        n += 1;
    }
    if c.ngroups.is_some() {
        c.ngroups = Some(n);
    }
    for (key, out) in [(&b"CapInh:"[..], 0), (&b"CapPrm:"[..], 1), (&b"CapEff:"[..], 2)] {
        c.caps[out] = hex(words(line(key)?).next()?)?;
    }
    Some(c)
}

/// The words of a status line (sub-slices: nothing is allocated).
fn words(l: &[u8]) -> impl Iterator<Item = &[u8]> {
    l.split(|b| b.is_ascii_whitespace()).filter(|w| !w.is_empty())
}

fn decimal(w: &[u8]) -> Option<u32> {
    u32::try_from(weft_probe_abi::parse_decimal(w)?).ok()
}

fn hex(w: &[u8]) -> Option<u64> {
    if w.is_empty() || w.len() > 16 {
        return None;
    }
    w.iter()
        .try_fold(0u64, |n, &d| Some(n << 4 | u64::from((d as char).to_digit(16)?)))
}

/// Takes over the process's credentials (`process`: its first thread's
/// status text) if this thread's differ. Keeps the process's dumpable
/// flag, which a change of credentials would reset.
pub(crate) fn follow(process: &[u8]) {
    let mut b = [0u8; 4096];
    let Some(nb) = sys::read_file(b"/proc/thread-self/status\0", &mut b) else {
        return;
    };
    let (Some(process), Some(mine)) = (parse(process), parse(&b[..nb])) else {
        return;
    };
    if process != mine {
        sys::set_credentials(&process);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &[u8] = b"Name:\tx\nUid:\t1000\t1001\t1002\t1001\nGid:\t5\t6\t7\t6\nGroups:\t4 24 27 \nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t0000000000000400\n";

    #[test]
    fn status_lines_give_the_credentials() {
        let c = parse(STATUS).unwrap();
        assert_eq!(c.uid, [1000, 1001, 1002]);
        assert_eq!(c.gid, [5, 6, 7]);
        assert_eq!(c.ngroups, Some(3));
        assert_eq!(&c.groups[..3], &[4, 24, 27]);
        assert_eq!(c.caps, [0, 0x1ff_ffff_ffff, 0x400]);
        assert!(parse(b"Uid:\t1\t2\n").is_none());
        let many: Vec<u8> = [
            &b"Uid:\t0 0 0 0\nGid:\t0 0 0 0\nGroups:\t"[..],
            &b"7 ".repeat(100),
            b"\nCapInh:\t0\nCapPrm:\t0\nCapEff:\t0\n",
        ]
        .concat();
        assert_eq!(parse(&many).unwrap().ngroups, None);
        let own = parse(&std::fs::read("/proc/thread-self/status").unwrap()).unwrap();
        assert_eq!(own, parse(&std::fs::read("/proc/self/status").unwrap()).unwrap());
    }
}
