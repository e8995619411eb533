//! Side data gathered while recording: JIT maps of traced processes, the
//! names of kernel functions in call chains, and the binaries they mapped
//! (for `--archive`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use weft_kernel::{procfs, EventKind, KernelEvent};

use crate::encode::Encoder;
use crate::output;

/// Largest JIT map kept (a record must fit in one chunk).
const JIT_CAP: u64 = 8 << 20;
/// Largest binary `--archive` copies.
const ARCHIVE_CAP: u64 = 1 << 30;

#[derive(Default)]
pub(crate) struct SideData {
    pids: BTreeSet<u32>,
    jit_done: HashSet<u32>,
    binaries: BTreeMap<Vec<u8>, String>,
    /// Kernel code addresses of every call chain, named at the end.
    kernel_addrs: BTreeSet<u64>,
    /// Effective uid of each traced process, read when it is first seen
    /// (or inherited from its parent, if it is gone by then).
    uids: HashMap<u32, u32>,
    /// Side data that could not be recorded, and why.
    pub warnings: Vec<String>,
}

impl SideData {
    /// Notes the uid of a process known before recording starts.
    pub fn process(&mut self, pid: u32, uid: Option<u32>) {
        if let Some(uid) = uid.or_else(|| procfs::effective_uid(pid)) {
            self.uids.insert(pid, uid);
        }
    }

    pub fn observe(&mut self, ev: &KernelEvent, enc: &mut Encoder) {
        match &ev.kind {
            EventKind::Mmap { filename, build_id, .. } if !build_id.is_empty() && filename.starts_with('/') => {
                self.binaries
                    .entry(build_id.clone())
                    .or_insert_with(|| filename.clone());
            }
            EventKind::Sample { kernel, .. } => self.kernel_addrs.extend(kernel),
            // JIT maps usually outlive their process, but read them while we know it ended.
            EventKind::Exit { group_dead: true } => self.jit(ev.pid, enc),
            EventKind::Fork { parent_pid, .. } => {
                if let Some(&uid) = self.uids.get(parent_pid) {
                    self.uids.entry(ev.pid).or_insert(uid);
                }
            }
            _ => {}
        }
        if ev.pid != 0 && self.pids.insert(ev.pid) {
            if let Some(uid) = procfs::effective_uid(ev.pid) {
                self.uids.insert(ev.pid, uid);
            }
        }
    }

    /// The program names this file and may have planted a link or a FIFO
    /// there: it is read only as a regular file of the process's own uid.
    fn jit(&mut self, pid: u32, enc: &mut Encoder) {
        if !self.jit_done.insert(pid) {
            return;
        }
        let Some(&uid) = self.uids.get(&pid) else { return };
        let path = format!("/tmp/perf-{pid}.map");
        match output::read_untrusted(Path::new(&path), uid, JIT_CAP) {
            Ok(text) => enc.jit_map(weft_kernel::monotonic_ns(), pid, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => self.warnings.push(format!("{path} not read: {e}")),
        }
    }

    pub fn finish(&mut self, enc: &mut Encoder) {
        let pids: Vec<u32> = self.pids.iter().copied().collect();
        for pid in pids {
            self.jit(pid, enc);
        }
        // Name kernel frames now, from this machine's kallsyms, so that the
        // trace can be read anywhere (and without reading kallsyms again).
        if self.kernel_addrs.is_empty() {
            return;
        }
        let funcs = weft_symbols::KernelSymbols::load().subset(self.kernel_addrs.iter().copied());
        if !funcs.is_empty() {
            let (addrs, names) = funcs.to_table();
            enc.kernel_symbols(weft_kernel::monotonic_ns(), &addrs, &names);
        }
    }

    /// Copies every mapped binary with a build ID to `OUTPUT.d/<build-id>`.
    /// Only a file whose content has the build ID the kernel saw mapped is
    /// copied: a path swapped since (to a link, a FIFO, a root-only file)
    /// is left out.
    pub fn archive(&self, output: &Path) -> std::io::Result<(PathBuf, usize)> {
        use std::io::Write;
        let dir = output::archive_dir(output)?;
        let mut n = 0;
        for (bid, path) in &self.binaries {
            let hex: String = bid.iter().map(|b| format!("{b:02x}")).collect();
            let Ok(data) = output::read_regular(Path::new(path), ARCHIVE_CAP) else {
                continue;
            };
            if procfs::build_id(&data) != *bid {
                continue;
            }
            // An existing copy (same build ID) is kept.
            if let Ok(mut f) = output::create_new_in(&dir, &hex) {
                f.write_all(&data)?;
                n += 1;
            }
        }
        Ok((dir, n))
    }
}
