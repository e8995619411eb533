//! Offline unwinding and symbolization of recorded stacks.
//!
//! This crate owns turning (registers, user-stack copy, process maps) into
//! frames, and frames into function names with file:line and inlined calls:
//! DWARF CFI unwinding with frame-pointer fallback (framehop), symbol lookup
//! (blazesym) in the binary, in split debug files found the way gdb and perf
//! find them (build-id directories, `.gnu_debuglink`, `--symbols` dirs, the
//! debuginfod client cache and servers from `DEBUGINFOD_URLS`), and JIT maps
//! (`/tmp/perf-PID.map`), PLT stubs (`memcpy@plt`, from the dynamic
//! relocations), and kernel function names (kallsyms). It knows nothing of the trace format, and it must
//! never fail a whole report because one module is missing or corrupt: such
//! frames come back as `module+0xoffset`, and `notes()` says where it looked.

mod alias;
mod cache;
mod find;
mod guard;
mod jit;
mod kernel;
mod links;
mod plt;
mod unwind;
mod zdebug;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub use cache::SymCache;
pub use find::{Located, SearchOptions};
pub use jit::JitMap;
pub use kernel::KernelSymbols;
pub use plt::Plt;
pub use unwind::{FrameAddr, Unwinders};

/// One executable mapping of a process, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    /// File offset of `start`.
    pub pgoff: u64,
    pub path: String,
    pub build_id: Vec<u8>,
}

impl Mapping {
    /// The module name shown for frames in this mapping.
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    pub fn key(&self) -> ModuleKey {
        ModuleKey {
            path: self.path.clone(),
            build_id: self.build_id.clone(),
        }
    }
}

/// blazesym's symbolizer as weft uses it: `opts`' directories, lines and
/// inlined calls, demangled names.
fn new_blaze(opts: &SearchOptions) -> blazesym::symbolize::Symbolizer {
    let mut dirs = opts.symbol_dirs.clone();
    dirs.extend(opts.debug_dirs.iter().cloned());
    blazesym::symbolize::Symbolizer::builder()
        .set_debug_dirs(Some(dirs))
        .enable_code_info(true)
        .enable_inlined_fns(true)
        .enable_demangling(true)
        .build()
}

/// Identifies a module's contents: its build ID when known, else its path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModuleKey {
    pub path: String,
    pub build_id: Vec<u8>,
}

impl ModuleKey {
    pub fn build_id_hex(&self) -> String {
        hex(&self.build_id)
    }
}

/// Bytes as lowercase hex, as build IDs are written in paths.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a debug directory keeps the debug file of a build ID (`hex`):
/// `DIR/.build-id/xx/rest.debug`.
pub(crate) fn build_id_path(dir: &std::path::Path, hex: &str) -> std::path::PathBuf {
    let (xx, rest) = if hex.len() > 2 { hex.split_at(2) } else { ("", "") };
    dir.join(".build-id").join(xx).join(format!("{rest}.debug"))
}

/// One frame of a symbolized stack (an inlined call is its own frame).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Frame {
    pub function: Option<String>,
    pub module: String,
    /// Offset in the module: file offset for unresolved frames.
    pub offset: u64,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub inlined: bool,
}

impl Frame {
    /// `function` or `module+0xoffset`: never a bare address.
    pub fn label(&self) -> String {
        match &self.function {
            Some(f) => f.clone(),
            None => format!("{}+{:#x}", self.module, self.offset),
        }
    }

    /// What to group this frame under: its function, or for a frame
    /// without a name its module alone (`[libc.so.6]`), so that one
    /// unnamed library is one row or one tower, not one per address.
    pub fn function_label(&self) -> String {
        match &self.function {
            Some(f) => f.clone(),
            None => format!("[{}]", self.module.rsplit('/').next().unwrap_or(&self.module)),
        }
    }

    /// `file:line` when known.
    pub fn location(&self) -> Option<String> {
        let f = self.file.as_ref()?;
        Some(match self.line {
            Some(l) => format!("{f}:{l}"),
            None => f.clone(),
        })
    }
}

/// What was missing for a module, and where weft looked.
#[derive(Debug, Clone, Default)]
pub struct Note {
    pub looked: Vec<String>,
    pub problem: String,
    pub frames: u64,
}

/// What was found for one module, and where it was looked for.
struct Found {
    loc: Option<Located>,
    looked: Vec<String>,
    problem: String,
}

/// Where modules' files are, looked up once per module. Shared by the
/// unwinder and the symbolizer, which may run on another thread.
pub struct Locator {
    find: find::Finder,
    found: Mutex<HashMap<ModuleKey, Found>>,
}

impl Locator {
    pub fn new(opts: SearchOptions) -> Locator {
        Locator {
            find: find::Finder::new(opts),
            found: Mutex::new(HashMap::new()),
        }
    }

    /// The module's files. The lock is held while searching, so a module is
    /// searched for (and downloaded or rewritten) once.
    pub fn locate(&self, m: &Mapping) -> Option<Located> {
        self.locate_noting(m).0
    }

    /// Also what was missing, if anything: (where it looked, why).
    fn locate_noting(&self, m: &Mapping) -> (Option<Located>, Option<(Vec<String>, String)>) {
        let mut found = self.found.lock().unwrap_or_else(|e| e.into_inner());
        let f = found.entry(m.key()).or_insert_with(|| {
            let (loc, looked, problem) = self.find.locate(m);
            Found { loc, looked, problem }
        });
        let problem = (!f.problem.is_empty()).then(|| (f.looked.clone(), f.problem.clone()));
        (f.loc.clone(), problem)
    }
}

/// Symbolizes addresses of recorded processes, caching per module offset.
pub struct Symbolizer {
    blaze: blazesym::symbolize::Symbolizer,
    s: State,
}

/// Everything a symbolizer holds but its blazesym instance, which cannot
/// move between threads. What `prefetch` found on a worker thread comes back
/// to the thread that symbolizes in this.
pub struct Prefetched(State);

struct State {
    locator: Arc<Locator>,
    /// Modules whose missing files are already in `notes`.
    noted: HashSet<ModuleKey>,
    /// Addresses `prefetch` looked up that `symbolize` has not yet returned:
    /// not counted as cache hits.
    prefetched: HashSet<(ModuleKey, u64)>,
    /// PLT stubs of each module's binary, read when first needed.
    plts: HashMap<ModuleKey, Plt>,
    /// Functions with several names in each module's symbols, perf's pick.
    aliases: HashMap<ModuleKey, alias::Aliases>,
    cache: SymCache,
    /// Modules whose symbol file the reader could not parse: not retried.
    unreadable: HashSet<ModuleKey>,
    notes: BTreeMap<String, Note>,
    lookups: u64,
    cache_hits: u64,
}

impl Symbolizer {
    pub fn new(opts: SearchOptions, cache: SymCache) -> Symbolizer {
        Symbolizer::with_locator(Arc::new(Locator::new(opts)), cache)
    }

    /// A symbolizer that finds modules' files through `locator` (shared
    /// with an unwinder or another symbolizer).
    pub fn with_locator(locator: Arc<Locator>, cache: SymCache) -> Symbolizer {
        Symbolizer::resume(Prefetched(State {
            locator,
            noted: HashSet::new(),
            prefetched: HashSet::new(),
            plts: HashMap::new(),
            aliases: HashMap::new(),
            cache,
            unreadable: HashSet::new(),
            notes: BTreeMap::new(),
            lookups: 0,
            cache_hits: 0,
        }))
    }

    /// Carries on, on this thread, from what a symbolizer on another thread
    /// looked up.
    pub fn resume(p: Prefetched) -> Symbolizer {
        let blaze = new_blaze(&p.0.locator.find.opts);
        Symbolizer { blaze, s: p.0 }
    }

    /// What this symbolizer found, to `resume` on another thread.
    pub fn into_prefetched(self) -> Prefetched {
        Prefetched(self.s)
    }

    /// Addresses looked up (not answered from the cache) so far.
    pub fn lookups(&self) -> u64 {
        self.s.lookups
    }

    /// Addresses answered from the cache (loaded or this run's) so far.
    pub fn cache_hits(&self) -> u64 {
        self.s.cache_hits
    }

    /// The locator this symbolizer uses, to share with an unwinder.
    pub fn locator(&self) -> Arc<Locator> {
        self.s.locator.clone()
    }

    /// Where a module's file and symbols are (looked up once).
    pub fn locate(&mut self, m: &Mapping) -> Option<Located> {
        let (loc, problem) = self.s.locator.locate_noting(m);
        if let Some((looked, problem)) = problem {
            if !self.s.noted.contains(&m.key()) {
                self.s.noted.insert(m.key());
                let n = self.s.notes.entry(m.path.clone()).or_default();
                n.looked = looked;
                n.problem = problem;
            }
        }
        loc
    }

    /// Looks `addr` up ahead of `symbolize` (on a thread of its own while
    /// the caller is still unwinding), so that `symbolize` finds it cached.
    pub fn prefetch(&mut self, m: &Mapping, addr: u64) {
        let Some(loc) = self.locate(m) else { return };
        let file_off = addr.wrapping_sub(m.start).wrapping_add(m.pgoff);
        let Some(vaddr) = loc.vaddr_of(file_off) else { return };
        let key = m.key();
        if self.s.cache.get(&key, vaddr).is_some() || self.s.prefetched.contains(&(key.clone(), vaddr)) {
            return;
        }
        let frames = self.lookup(m, &key, &loc, vaddr, file_off);
        self.s.cache.put(key.clone(), vaddr, frames);
        self.s.prefetched.insert((key, vaddr));
    }

    /// Frames for `addr` in mapping `m` (innermost first, inlined calls expanded).
    pub fn symbolize(&mut self, m: &Mapping, addr: u64) -> Vec<Frame> {
        let file_off = addr.wrapping_sub(m.start).wrapping_add(m.pgoff);
        let Some(loc) = self.locate(m) else {
            self.s.notes.entry(m.path.clone()).or_default().frames += 1;
            return unresolved(m, file_off);
        };
        let Some(vaddr) = loc.vaddr_of(file_off) else {
            self.s.notes.entry(m.path.clone()).or_default().frames += 1;
            return unresolved(m, file_off);
        };
        let key = m.key();
        if let Some(hit) = self.s.cache.get(&key, vaddr) {
            let hit = hit.to_vec();
            // A prefetched address was looked up in this run, and counted so.
            if !self.s.prefetched.remove(&(key, vaddr)) {
                self.s.cache_hits += 1;
            }
            // Counted as when it was looked up: the note is of this run's frames.
            if hit.iter().all(|f| f.function.is_none()) {
                self.s.notes.entry(m.path.clone()).or_default().frames += 1;
            }
            return hit;
        }
        let frames = self.lookup(m, &key, &loc, vaddr, file_off);
        self.s.cache.put(key, vaddr, frames.clone());
        if frames.iter().all(|f| f.function.is_none()) {
            self.s.notes.entry(m.path.clone()).or_default().frames += 1;
        }
        frames
    }

    /// Names `vaddr` of a located module: PLT stub, else symbols; counted.
    fn lookup(&mut self, m: &Mapping, key: &ModuleKey, loc: &Located, vaddr: u64, file_off: u64) -> Vec<Frame> {
        self.s.lookups += 1;
        match &loc.symbols {
            // Stubs have no symbol; the nearest one before them is not theirs.
            _ if let Some((at, name)) = self.plt(key, loc).name(vaddr) => vec![Frame {
                function: Some(name),
                module: m.name().to_owned(),
                offset: at,
                file: None,
                line: None,
                inlined: false,
            }],
            _ if self.s.unreadable.contains(key) => unresolved(m, file_off),
            Some(path) => {
                let mut elf = blazesym::symbolize::source::Elf::new(path);
                // Not through the binary's debug link to a file weft refused.
                elf.debug_syms = !loc.refused_debug_file;
                let src = blazesym::symbolize::source::Source::Elf(elf);
                let blaze = &self.blaze;
                let found =
                    guard::quietly(|| blaze.symbolize_single(&src, blazesym::symbolize::Input::VirtOffset(vaddr)));
                let Some(found) = found else {
                    // The DWARF reader gave up on a malformed file by
                    // panicking: its caches may be half-built, so the rest
                    // of the report uses a fresh one, and not this file.
                    self.blaze = new_blaze(&self.s.locator.find.opts);
                    self.s.unreadable.insert(key.clone());
                    let n = self.s.notes.entry(m.path.clone()).or_default();
                    n.problem = format!(
                        "{} is malformed (its symbols or debug information could not be read); its frames show as module+offset",
                        path.display()
                    );
                    return unresolved(m, file_off);
                };
                match found {
                    // Resolved frames are identified by their function's address,
                    // so samples anywhere in one line aggregate.
                    Ok(blazesym::symbolize::Symbolized::Sym(sym)) => {
                        let mut frames = to_frames(&sym, m.name(), sym.addr);
                        if !self.s.aliases.contains_key(key) {
                            let a = mapped(path).map(|d| alias::Aliases::parse(&d)).unwrap_or_default();
                            self.s.aliases.insert(key.clone(), a);
                        }
                        // The function itself is the outermost frame; inlined
                        // calls keep their own names.
                        if let (Some(name), Some(f)) = (self.s.aliases[key].name(sym.addr), frames.last_mut()) {
                            f.function = Some(name.to_owned());
                        }
                        frames
                    }
                    _ => unresolved(m, file_off),
                }
            }
            None => unresolved(m, file_off),
        }
    }

    /// The PLT stubs of a module's binary, read the first time (the key is
    /// cloned only then: this runs for every address looked up).
    fn plt(&mut self, key: &ModuleKey, loc: &Located) -> &Plt {
        if !self.s.plts.contains_key(key) {
            let plt = loc
                .binary
                .as_deref()
                .and_then(|b| mapped(b).ok())
                .map(|d| Plt::parse(&d));
            self.s.plts.insert(key.clone(), plt.unwrap_or_default());
        }
        &self.s.plts[key]
    }

    /// Modules whose frames could not all be named, with where weft looked.
    pub fn notes(&self) -> &BTreeMap<String, Note> {
        &self.s.notes
    }

    pub fn into_cache(self) -> SymCache {
        self.s.cache
    }
}

/// The one frame of an address that could not be named: `module+0xoffset`.
fn unresolved(m: &Mapping, file_off: u64) -> Vec<Frame> {
    vec![Frame {
        function: None,
        module: m.name().to_owned(),
        offset: file_off,
        file: None,
        line: None,
        inlined: false,
    }]
}

/// A read-only mapping of a binary or debug file, for parsers that look at
/// a few of its sections.
fn mapped(path: &std::path::Path) -> std::io::Result<memmap2::Mmap> {
    let f = std::fs::File::open(path)?;
    // SAFETY: a read-only private mapping; a file changed under it gives
    // wrong names at worst, which the parsers tolerate.
    unsafe { memmap2::Mmap::map(&f) }
}

fn to_frames(sym: &blazesym::symbolize::Sym, module: &str, offset: u64) -> Vec<Frame> {
    let code = |ci: Option<&blazesym::symbolize::CodeInfo>| -> (Option<String>, Option<u32>) {
        match ci {
            Some(c) => (Some(c.to_path().display().to_string()), c.line),
            None => (None, None),
        }
    };
    // blazesym gives the function, then its inlined calls outermost first;
    // each one's code info is the location inside that function.
    let mut chain = vec![(sym.name.to_string(), code(sym.code_info.as_deref()))];
    for f in sym.inlined.iter() {
        chain.push((f.name.to_string(), code(f.code_info.as_ref())));
    }
    let n = chain.len();
    chain
        .into_iter()
        .enumerate()
        .rev()
        .map(|(i, (name, (file, line)))| Frame {
            function: Some(name),
            module: module.to_owned(),
            offset,
            file,
            line,
            inlined: i > 0 && n > 1,
        })
        .collect()
}

/// Where the files of modules and the JIT maps of processes come from.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub archive: Option<PathBuf>,
}
