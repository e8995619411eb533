//! Kernel-side capture of what syscall arguments point to: the eBPF program
//! in `bpf/capture.bpf.c`, loaded and fed here.
//!
//! The program runs at `raw_syscalls:sys_enter`/`sys_exit` and writes the
//! strings, buffers and structs of each traced call into the same per-CPU
//! perf ring as the tracepoint's own record, just before it, through a
//! `bpf-output` event per CPU (as `perf trace`'s augmentation does). Copying
//! in the kernel at the call is the only way to see what the call saw;
//! `/proc/PID/mem` later is too late. At `signal_deliver` a raw tracepoint
//! adds what that tracepoint's record lacks: the siginfo's fault address.
//!
//! The loader is aya: pure Rust, so building weft needs neither clang nor
//! libbpf's C sources (libbpf-rs builds libbpf-sys from C and links
//! libelf); the object is built by `bpf/build.sh` and committed.

use std::os::fd::{AsFd, AsRawFd, RawFd};

use aya::maps::{Array, HashMap as BpfHashMap, Map, PerCpuArray};
use aya::programs::{RawTracePoint, TracePoint};
use aya::{Ebpf, EbpfLoader, Pod};

use crate::argspec::ArgSpec;

/// The compiled program (bpf/build.sh).
static OBJECT: &[u8] = aya::include_bytes_aligned!("../bpf/capture.bpf.o");

/// Syscall numbers the program's spec table holds.
const MAX_NR: u32 = 1024;
/// Largest string or buffer limit: the program's item room (half its
/// scratch buffer, less headers).
pub const MAX_LIMIT: u32 = 8192 - 64 - 2;
/// envp entries counted at most.
const COUNT_MAX: u32 = 1024;

/// `struct spec` of the program.
#[repr(C)]
#[derive(Clone, Copy)]
struct SpecPod {
    kind: [u8; 6],
    aux: [u8; 6],
    size: [u16; 6],
    at_exit: u8,
    used: u8,
    pad: [u8; 2],
}

/// `struct config` of the program.
#[repr(C)]
#[derive(Clone, Copy)]
struct ConfigPod {
    cgroup: u64,
    on: u32,
    str_max: u32,
    buf_max: u32,
    argv_max: u32,
    count_max: u32,
    fork_child_off: u32,
}

// SAFETY: both are repr(C) structs of integers without padding holes the
// kernel could read as uninitialized, matching the program's layouts.
unsafe impl Pod for SpecPod {}
// SAFETY: as above.
unsafe impl Pod for ConfigPod {}

/// What to capture.
#[derive(Debug, Clone)]
pub struct CaptureOptions {
    /// Bytes of each string kept (strace's `-s`).
    pub string_limit: u32,
    /// Bytes of each buffer kept.
    pub buffer_limit: u32,
    /// argv strings kept.
    pub argv_limit: u32,
    /// What to read, per syscall number (see `argspec::arg_spec`).
    pub specs: Vec<(u32, ArgSpec)>,
}

/// The loaded, attached program.
pub(crate) struct Capture {
    ebpf: Ebpf,
    config: ConfigPod,
}

/// Why capture is off: said once by the recorder, which goes on with
/// pointers only.
pub type Unavailable = String;

impl Capture {
    /// Loads and attaches the program, switched off until `start`.
    /// `fork_child_off` is where sched_process_fork keeps `child_pid`.
    pub fn load(opts: &CaptureOptions, fork_child_off: u32, cpus: u32) -> Result<Capture, Unavailable> {
        let ebpf = EbpfLoader::new()
            .map_max_entries("events", cpus.max(1))
            .load(OBJECT)
            .map_err(|e| format!("the kernel refused weft's eBPF program: {}{HINT}", chain(&e)))?;
        let config = ConfigPod {
            cgroup: 0,
            on: 0,
            str_max: opts.string_limit.clamp(1, MAX_LIMIT),
            buf_max: opts.buffer_limit.min(MAX_LIMIT),
            argv_max: opts.argv_limit.min(255),
            count_max: COUNT_MAX,
            fork_child_off,
        };
        let mut c = Capture { ebpf, config };
        c.write_config()?;
        {
            let map = c.ebpf.map_mut("specs").ok_or("the eBPF object has no `specs` map")?;
            let mut specs: Array<_, SpecPod> = Array::try_from(map).map_err(|e| e.to_string())?;
            for (nr, s) in opts.specs.iter().filter(|(nr, _)| *nr < MAX_NR) {
                let pod = SpecPod {
                    kind: s.kind,
                    aux: s.aux,
                    size: s.size,
                    at_exit: u8::from(s.at_exit),
                    used: 1,
                    pad: [0; 2],
                };
                specs
                    .set(*nr, pod, 0)
                    .map_err(|e| format!("filling the syscall table of the eBPF program: {e}"))?;
            }
        }
        for (prog, category, name) in [
            ("on_enter", "raw_syscalls", "sys_enter"),
            ("on_exit", "raw_syscalls", "sys_exit"),
            ("on_fork", "sched", "sched_process_fork"),
        ] {
            let p: &mut TracePoint = c
                .ebpf
                .program_mut(prog)
                .ok_or_else(|| format!("the eBPF object has no program `{prog}`"))?
                .try_into()
                .map_err(|e| format!("{prog}: {e}"))?;
            // The verifier's log runs to pages: its first line says why.
            p.load().map_err(|e| {
                let e = chain(&e);
                let first = e.split(". Verifier output").next().unwrap_or(&e).to_string();
                format!("the kernel refused weft's eBPF program {prog}: {first}{HINT}")
            })?;
            p.attach(category, name)
                .map_err(|e| format!("attaching {prog} to {category}:{name}: {e}"))?;
        }
        // The fault address of a delivered signal: a raw tracepoint, the
        // one kind of program that sees the siginfo.
        let p: &mut RawTracePoint = c
            .ebpf
            .program_mut("on_signal")
            .ok_or("the eBPF object has no program `on_signal`")?
            .try_into()
            .map_err(|e| format!("on_signal: {e}"))?;
        p.load()
            .map_err(|e| format!("the kernel refused weft's eBPF program on_signal: {}{HINT}", chain(&e)))?;
        p.attach("signal_deliver")
            .map_err(|e| format!("attaching on_signal to the raw tracepoint signal_deliver: {e}"))?;
        Ok(c)
    }

    fn write_config(&mut self) -> Result<(), Unavailable> {
        let map = self
            .ebpf
            .map_mut("config")
            .ok_or("the eBPF object has no `config` map")?;
        let mut config: Array<_, ConfigPod> = Array::try_from(map).map_err(|e| e.to_string())?;
        config
            .set(0, self.config, 0)
            .map_err(|e| format!("configuring the eBPF program: {e}"))
    }

    /// Captures the calls of every task in this cgroup (v2 id).
    pub fn follow_cgroup(&mut self, id: u64) -> Result<(), Unavailable> {
        self.config.cgroup = id;
        self.write_config()
    }

    /// Captures the calls of this process and, from now on, its children.
    pub fn follow_pid(&mut self, pid: u32) -> Result<(), Unavailable> {
        let map = self.ebpf.map_mut("pids").ok_or("the eBPF object has no `pids` map")?;
        let mut pids: BpfHashMap<_, u32, u8> = BpfHashMap::try_from(map).map_err(|e| e.to_string())?;
        pids.insert(pid, 1, 0)
            .map_err(|e| format!("following process {pid}: {e}"))
    }

    /// Routes the program's output on `cpu` to a `bpf-output` perf event.
    pub fn set_output(&mut self, cpu: u32, event: RawFd) -> Result<(), Unavailable> {
        let Some(Map::PerfEventArray(data)) = self.ebpf.map("events") else {
            return Err("the eBPF object has no `events` perf event array".into());
        };
        let map_fd = data.fd().as_fd().as_raw_fd();
        // aya opens its own perf buffers for a perf event array; ours must
        // be the rings the tracepoints write to, so the element is set here.
        #[repr(C)]
        struct MapUpdate {
            map_fd: u32,
            pad: u32,
            key: u64,
            value: u64,
            flags: u64,
        }
        let (key, value) = (cpu, event as u32);
        let attr = MapUpdate {
            map_fd: map_fd as u32,
            pad: 0,
            key: &key as *const u32 as u64,
            value: &value as *const u32 as u64,
            flags: 0,
        };
        const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
        // SAFETY: attr is a valid bpf_attr prefix for BPF_MAP_UPDATE_ELEM
        // whose key and value point to live u32s for the call's duration.
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_UPDATE_ELEM,
                &attr as *const MapUpdate,
                std::mem::size_of::<MapUpdate>(),
            )
        };
        if r != 0 {
            return Err(format!(
                "connecting the eBPF output of CPU {cpu} to its ring: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(())
    }

    /// Turns capture on (or off).
    pub fn switch(&mut self, on: bool) -> Result<(), Unavailable> {
        self.config.on = u32::from(on);
        self.write_config()
    }

    /// Records the program could not write (its CPU's ring was full).
    pub fn dropped(&self) -> u64 {
        let Some(map) = self.ebpf.map("dropped") else {
            return 0;
        };
        let Ok(d) = PerCpuArray::<_, u64>::try_from(map) else {
            return 0;
        };
        d.get(&0, 0).map_or(0, |v| v.iter().sum())
    }
}

/// What loading needs, said with every refusal.
const HINT: &str = " (loading eBPF needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN, and a kernel with BTF and bpf_loop, 5.17 or later)";

/// An error and its causes, `: `-joined (aya's top-level message leaves
/// out the errno).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// The cgroup v2 id the kernel's `bpf_get_current_cgroup_id` reports for a
/// cgroup directory: its inode number.
pub(crate) fn cgroup_id(dir: &std::os::fd::OwnedFd) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::File::from(dir.try_clone()?).metadata()?.ino())
}
