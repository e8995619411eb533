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
    /// The trace file: binaries kept for symbolization go to `OUTPUT.d`.
    output: PathBuf,
    /// Binaries copied because their path no longer held them, and where.
    pub rescued: Option<(PathBuf, usize)>,
    /// Kernel code addresses of every call chain, named at the end.
    kernel_addrs: BTreeSet<u64>,
    /// Effective uid of each traced process, read when it is first seen
    /// (or inherited from its parent, if it is gone by then).
    uids: HashMap<u32, u32>,
    /// Side data that could not be recorded, and why.
    pub warnings: Vec<String>,
}

impl SideData {
    pub fn new(output: &Path) -> SideData {
        SideData {
            output: output.to_path_buf(),
            ..SideData::default()
        }
    }

    /// Notes the uid of a process known before recording starts.
    pub fn process(&mut self, pid: u32, uid: Option<u32>) {
        if let Some(uid) = uid.or_else(|| procfs::effective_uid(pid)) {
            self.uids.insert(pid, uid);
        }
    }

    pub fn observe(&mut self, ev: &KernelEvent, enc: &mut Encoder) {
        match &ev.kind {
            EventKind::Mmap {
                filename,
                build_id,
                addr,
                len,
                inode,
                ..
            } if !build_id.is_empty() && filename.starts_with('/') && !self.binaries.contains_key(build_id) => {
                let path = filename.strip_suffix(" (deleted)").unwrap_or(filename);
                self.binaries.insert(build_id.clone(), path.to_owned());
                self.rescue(ev.pid, (*addr, addr.saturating_add(*len)), *inode, path, build_id);
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

    /// Keeps a copy of a mapped binary that its path no longer holds as the
    /// recorder sees it: deleted or replaced since it was mapped (a service
    /// upgraded under its feet), or in another mount namespace (a
    /// container). The mapped file itself is read through
    /// /proc/PID/map_files while the process lives, and the copy goes where
    /// the symbolizer looks for archived binaries (`OUTPUT.d/<build-id>`).
    fn rescue(&mut self, pid: u32, range: (u64, u64), inode: u64, path: &str, bid: &[u8]) {
        use std::os::unix::fs::MetadataExt;
        if pid == 0 {
            return;
        }
        let Some(mapped) = procfs::mapped_file(pid, range, inode) else {
            return;
        };
        let Ok(m) = std::fs::metadata(&mapped) else { return };
        let same = std::fs::metadata(path).is_ok_and(|p| (p.dev(), p.ino()) == (m.dev(), m.ino()));
        // Another file at the path may still be the same build (a container
        // of the same image): only a different one needs the copy.
        if same || procfs::file_build_id(path) == bid {
            return;
        }
        let data = match output::read_regular(Path::new(&mapped), ARCHIVE_CAP) {
            Ok(d) if procfs::build_id(&d) == bid => d,
            Ok(_) => return,
            Err(e) => {
                self.warnings.push(format!(
                    "{path} (pid {pid}) is no longer at its path and could not be kept for symbolization: {e}"
                ));
                return;
            }
        };
        let hex: String = bid.iter().map(|b| format!("{b:02x}")).collect();
        let kept = output::archive_dir(&self.output).and_then(|dir| {
            match output::create_new_in(&dir, &hex) {
                Ok(mut f) => std::io::Write::write_all(&mut f, &data)?,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            Ok(dir)
        });
        match kept {
            Ok(dir) => {
                let n = self.rescued.as_ref().map_or(0, |(_, n)| *n);
                self.rescued = Some((dir, n + 1));
            }
            Err(e) => self
                .warnings
                .push(format!("{path} (pid {pid}) could not be kept for symbolization: {e}")),
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
