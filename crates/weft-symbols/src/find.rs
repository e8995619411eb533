//! Finding a module's files the way gdb and perf do, and noting where we looked.

use std::path::{Path, PathBuf};

use object::{Object, ObjectSection, ObjectSegment};

use crate::Mapping;

/// Where to look for binaries and debug information.
#[derive(Debug, Clone, Default)]
/// Where symbols are looked for beyond the mapped files themselves.
/// `Default` looks nowhere else: no debug directories, no debuginfod.
pub struct SearchOptions {
    /// User-given directories (`--symbols DIR`), searched first.
    pub symbol_dirs: Vec<PathBuf>,
    /// System debug directories (build-id layout and debug links).
    pub debug_dirs: Vec<PathBuf>,
    /// debuginfod servers (`DEBUGINFOD_URLS`).
    pub debuginfod_urls: Vec<String>,
    /// debuginfod client cache (`~/.cache/debuginfod_client`).
    pub debuginfod_cache: Option<PathBuf>,
    /// Copies of binaries archived with the trace (`weft record --archive`).
    pub archive_dir: Option<PathBuf>,
    /// Where debug files with legacy `.zdebug_*` sections are rewritten to
    /// standard compressed ones (`~/.cache/weft/zdebug`); None: not read.
    pub zdebug_dir: Option<PathBuf>,
}

impl SearchOptions {
    /// Defaults from the environment, as gdb and perf use them.
    pub fn from_env() -> SearchOptions {
        let urls = std::env::var("DEBUGINFOD_URLS").unwrap_or_default();
        let cache_home = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
        let cache = std::env::var_os("DEBUGINFOD_CACHE_PATH")
            .map(PathBuf::from)
            .or_else(|| Some(cache_home.as_ref()?.join("debuginfod_client")));
        SearchOptions {
            symbol_dirs: Vec::new(),
            debug_dirs: vec![PathBuf::from("/usr/lib/debug"), PathBuf::from("/lib/debug")],
            debuginfod_urls: urls.split_whitespace().map(str::to_owned).collect(),
            debuginfod_cache: cache,
            archive_dir: None,
            zdebug_dir: cache_home.map(|h| h.join("weft").join("zdebug")),
        }
    }
}

/// What was found for a module.
#[derive(Debug, Clone)]
pub struct Located {
    /// The binary itself (for unwind tables), if found.
    pub binary: Option<PathBuf>,
    /// The best file with symbols: DWARF over .symtab over .dynsym.
    pub symbols: Option<PathBuf>,
    /// A file with `.debug_frame` (split debug files often have it).
    pub debug_frame: Option<PathBuf>,
    /// PT_LOAD segments: (file offset, vaddr, file size).
    pub segments: Vec<(u64, u64, u64)>,
    /// A debug file of this module was refused as malformed: the symbol
    /// reader must not follow the binary's debug link to it on its own.
    pub refused_debug_file: bool,
}

impl Located {
    /// The virtual address (as in the ELF file) of a file offset.
    pub fn vaddr_of(&self, off: u64) -> Option<u64> {
        // Segment fields come from the file: any values, none trusted.
        self.segments
            .iter()
            .find(|&&(o, _, sz)| off.checked_sub(o).is_some_and(|d| d < sz.max(1)))
            .and_then(|&(o, v, _)| (off - o).checked_add(v))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Quality {
    Dynsym,
    Symtab,
    Dwarf,
}

struct Inspect {
    build_id: Option<Vec<u8>>,
    quality: Quality,
    debuglink: Option<String>,
    segments: Vec<(u64, u64, u64)>,
    has_debug_frame: bool,
    has_text: bool,
    /// Has legacy `.zdebug_*` sections (see `zdebug`).
    zdebug: bool,
}

/// Why a file was not used.
enum Refused {
    Unusable(String),
    /// Well-formed enough to be opened by a reader that trusts it.
    Malformed(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Unusable(why) | Refused::Malformed(why) => f.write_str(why),
        }
    }
}

fn inspect(path: &Path) -> Result<Inspect, Refused> {
    // Mapped, not read: only headers and a few sections are looked at.
    let data = crate::mapped(path).map_err(|e| Refused::Unusable(e.to_string()))?;
    let obj = object::File::parse(&*data).map_err(|e| Refused::Unusable(format!("not a valid ELF file: {e}")))?;
    implausible_compression(&obj).map_err(Refused::Malformed)?;
    let quality = if obj
        .section_by_name(".debug_info")
        .is_some_and(|s| s.size() > 0 && s.kind() != object::SectionKind::UninitializedData)
    {
        Quality::Dwarf
    } else if obj.section_by_name(".symtab").is_some() {
        Quality::Symtab
    } else {
        Quality::Dynsym
    };
    let debuglink = obj
        .gnu_debuglink()
        .ok()
        .flatten()
        .map(|(name, _)| String::from_utf8_lossy(name).into_owned());
    let segments = obj.segments().filter_map(|s| {
        let (off, size) = s.file_range();
        Some((off, s.address(), size)).filter(|_| size > 0)
    });
    let text = obj.section_by_name(".text");
    Ok(Inspect {
        build_id: obj.build_id().ok().flatten().map(<[u8]>::to_vec),
        quality,
        debuglink,
        segments: segments.collect(),
        has_debug_frame: obj
            .section_by_name(".debug_frame")
            .is_some_and(|s| s.kind() != object::SectionKind::UninitializedData),
        has_text: text.is_some_and(|t| t.kind() != object::SectionKind::UninitializedData),
        zdebug: obj
            .sections()
            .any(|s| s.name().is_ok_and(|n| n.starts_with(".zdebug_"))),
    })
}

/// Most bytes a compressed section may claim per compressed byte: zlib
/// cannot pass 1032; real debug sections compress about 3 to 20 times.
const MAX_RATIO: u64 = 2048;

/// Refuses a file whose compressed sections claim sizes their compressed
/// bytes cannot hold: the DWARF reader allocates the claimed size up front,
/// so one forged header would exhaust memory (or abort the process).
fn implausible_compression(obj: &object::File) -> Result<(), String> {
    use object::{Object, ObjectSection};
    for s in obj.sections() {
        let Ok(r) = s.compressed_file_range() else { continue };
        if r.format == object::CompressionFormat::None {
            continue;
        }
        if r.uncompressed_size > r.compressed_size.saturating_mul(MAX_RATIO).saturating_add(1 << 20) {
            return Err(format!(
                "section {} claims {} bytes compressed into {}: the file is malformed",
                s.name().unwrap_or("?"),
                r.uncompressed_size,
                r.compressed_size
            ));
        }
    }
    mini_debuginfo_bomb(obj)
}

/// The symbol reader decompresses `.gnu_debugdata` (MiniDebugInfo, an xz
/// stream holding an ELF file with the symbol table) whole, with no limit,
/// when it finds no symbols in the file's own `.symtab`. The xz stream says nothing
/// trustworthy about its size up front, so it is decompressed here first,
/// bounded, and a file whose stream inflates past `MAX_RATIO` is refused.
fn mini_debuginfo_bomb(obj: &object::File) -> Result<(), String> {
    use object::{Object, ObjectSection};
    use std::io::Read;
    let Some(data) = obj.section_by_name(".gnu_debugdata").and_then(|s| s.data().ok()) else {
        return Ok(());
    };
    let limit = (data.len() as u64).saturating_mul(MAX_RATIO).saturating_add(1 << 20);
    let mut inflated = xz2::read::XzDecoder::new(data).take(limit.saturating_add(1));
    // Counted, not kept: the reader decompresses it again for itself.
    let mut n = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match inflated.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(k) => n += k as u64,
            // A stream that does not decode is the reader's to report.
            Err(_) => return Ok(()),
        }
        if n > limit {
            return Err(format!(
                "section .gnu_debugdata inflates past {limit} bytes from {}: the file is malformed",
                data.len()
            ));
        }
    }
}

struct Search {
    want: Vec<u8>,
    zdebug_dir: Option<PathBuf>,
    looked: Vec<String>,
    problems: Vec<String>,
    candidates: Vec<(PathBuf, Inspect)>,
    /// A file was refused as malformed (see `Located::refused_debug_file`).
    refused_malformed: bool,
}

impl Search {
    /// Looks at one path; keeps it if it is an ELF file of the right build.
    fn consider(&mut self, p: PathBuf) -> bool {
        self.looked.push(p.display().to_string());
        if !p.is_file() || self.candidates.iter().any(|(c, _)| *c == p) {
            return false;
        }
        match inspect(&p) {
            Ok(i) if self.want.is_empty() || i.build_id.as_deref().is_none_or(|b| b == self.want.as_slice()) => {
                if i.zdebug {
                    return self.consider_zdebug(p, i);
                }
                self.candidates.push((p, i));
                true
            }
            Ok(_) => {
                self.problems.push(format!("{}: build ID does not match", p.display()));
                false
            }
            Err(e) => {
                self.refused_malformed |= matches!(e, Refused::Malformed(_));
                self.problems.push(format!("{}: {e}", p.display()));
                false
            }
        }
    }
}

impl Search {
    /// A file with legacy `.zdebug_*` sections counts for its symbols (and,
    /// a binary, for its code), and its rewritten copy for its DWARF.
    fn consider_zdebug(&mut self, p: PathBuf, mut i: Inspect) -> bool {
        let bid = crate::hex(i.build_id.as_deref().unwrap_or_default());
        let made = match (&self.zdebug_dir, bid.is_empty()) {
            (Some(dir), false) => crate::zdebug::converted(&p, dir, &bid),
            (None, _) => Err("no cache directory to rewrite it in ($HOME unset)".into()),
            (_, true) => Err("no build ID to name its rewritten copy".into()),
        };
        match made.and_then(|c| Ok((inspect(&c).map_err(|e| e.to_string())?, c))) {
            Ok((ci, c)) if ci.build_id == i.build_id => self.candidates.push((c, ci)),
            Ok(_) => self
                .problems
                .push(format!("{}: its rewritten .zdebug copy differs", p.display())),
            Err(e) => self
                .problems
                .push(format!("{}: legacy .zdebug sections not read: {e}", p.display())),
        }
        i.quality = i.quality.min(Quality::Symtab);
        i.has_debug_frame = false;
        self.candidates.push((p, i));
        true
    }
}

pub(crate) struct Finder {
    pub(crate) opts: SearchOptions,
}

impl Finder {
    pub fn new(opts: SearchOptions) -> Finder {
        Finder { opts }
    }

    /// Finds the module's files; returns what was found, where it looked,
    /// and what is missing (empty when symbols were found).
    pub fn locate(&self, m: &Mapping) -> (Option<Located>, Vec<String>, String) {
        let bid = m.key().build_id_hex();
        let mut search = Search {
            want: m.build_id.clone(),
            zdebug_dir: self.opts.zdebug_dir.clone(),
            looked: Vec::new(),
            problems: Vec::new(),
            candidates: Vec::new(),
            refused_malformed: false,
        };
        let base = m.name().to_owned();
        for d in &self.opts.symbol_dirs {
            if !bid.is_empty() {
                search.consider(crate::build_id_path(d, &bid));
                search.consider(d.join(format!("{bid}.debug")));
                search.consider(d.join(&bid));
            }
            search.consider(d.join(format!("{base}.debug")));
            search.consider(d.join(&base));
        }
        if !bid.is_empty() {
            for d in &self.opts.debug_dirs {
                search.consider(crate::build_id_path(d, &bid));
            }
        }
        // The binary itself, where it was when recorded, or archived with the trace.
        let mut binary = None;
        let mut bin_paths = vec![PathBuf::from(&m.path)];
        if let (Some(a), false) = (&self.opts.archive_dir, bid.is_empty()) {
            bin_paths.push(a.join(&bid));
        }
        for p in bin_paths {
            if search.consider(p.clone()) {
                binary = Some(p);
                break;
            }
        }
        // .gnu_debuglink of the binary: next to it, in .debug/, under the debug dirs.
        if let Some(link) = search
            .candidates
            .iter()
            .find(|(p, _)| Some(p) == binary.as_ref())
            .and_then(|(_, i)| i.debuglink.clone())
        {
            let dir = Path::new(&m.path).parent().map(Path::to_path_buf).unwrap_or_default();
            let mut places = vec![dir.join(&link), dir.join(".debug").join(&link)];
            for d in self.opts.symbol_dirs.iter().chain(&self.opts.debug_dirs) {
                places.push(d.join(dir.strip_prefix("/").unwrap_or(&dir)).join(&link));
                places.push(d.join(&link));
            }
            for p in places {
                search.consider(p);
            }
        }
        let best_local = search.candidates.iter().map(|(_, i)| i.quality).max();
        if best_local != Some(Quality::Dwarf) && !bid.is_empty() {
            if let Some(cache) = &self.opts.debuginfod_cache {
                let p = cache.join(&bid).join("debuginfo");
                if !search.consider(p.clone()) {
                    for url in &self.opts.debuginfod_urls {
                        let u = format!("{}/buildid/{bid}/debuginfo", url.trim_end_matches('/'));
                        search.looked.push(u.clone());
                        match fetch(&u, &p) {
                            Ok(()) => {
                                if search.consider(p.clone()) {
                                    search.looked.pop();
                                    break;
                                }
                            }
                            Err(e) => search.problems.push(format!("{u}: {e}")),
                        }
                    }
                }
            }
        }
        if search.candidates.is_empty() {
            let problem = if search.problems.is_empty() {
                "no file found".to_owned()
            } else {
                search.problems.join("; ")
            };
            return (None, search.looked, problem);
        }
        let symbols = search
            .candidates
            .iter()
            .filter(|(_, i)| i.quality > Quality::Dynsym || binary.is_some())
            .max_by_key(|(_, i)| i.quality);
        let seg_src = search
            .candidates
            .iter()
            .find(|(p, _)| Some(p) == binary.as_ref())
            .or_else(|| search.candidates.iter().find(|(_, i)| !i.segments.is_empty()));
        let loc = Located {
            binary: search
                .candidates
                .iter()
                .find(|(p, i)| Some(p) == binary.as_ref() && i.has_text)
                .map(|(p, _)| p.clone()),
            symbols: symbols.map(|(p, _)| p.clone()),
            debug_frame: search
                .candidates
                .iter()
                .find(|(_, i)| i.has_debug_frame)
                .map(|(p, _)| p.clone()),
            segments: seg_src.map(|(_, i)| i.segments.clone()).unwrap_or_default(),
            refused_debug_file: search.refused_malformed,
        };
        // The files the DWARF reader would open on its own from there.
        let dirs: Vec<PathBuf> = self
            .opts
            .symbol_dirs
            .iter()
            .chain(&self.opts.debug_dirs)
            .cloned()
            .collect();
        let malformed = |p: &Path| match inspect(p) {
            Err(Refused::Malformed(why)) => Some(format!("{}: {why}", p.display())),
            _ => None,
        };
        let refused_link = symbols.and_then(|(p, _)| crate::links::refusal(p, &dirs, &malformed));
        let mut loc = loc;
        if refused_link.is_some() {
            loc.refused_debug_file = true;
        }
        let mut problem = match symbols.map(|(_, i)| i.quality) {
            _ if let Some(why) = &refused_link => {
                format!("a debug file it links to was refused ({why}); function names only, no file:line")
            }
            Some(Quality::Dwarf) => String::new(),
            Some(Quality::Symtab) => "no DWARF debug info found (function names only, no file:line)".into(),
            _ => "stripped and no debug file found (only exported symbols)".into(),
        };
        if !problem.is_empty() && !search.problems.is_empty() {
            problem = format!("{problem}; {}", search.problems.join("; "));
        }
        (Some(loc), search.looked, problem)
    }
}

/// Downloads a debuginfod artifact into the client cache layout.
fn fetch(url: &str, dest: &Path) -> Result<(), String> {
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(10)))
        .build();
    let agent: ureq::Agent = config.into();
    let mut resp = agent.get(url).call().map_err(|e| e.to_string())?;
    let body = resp
        .body_mut()
        .with_config()
        .limit(2 << 30)
        .read_to_vec()
        .map_err(|e| e.to_string())?;
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    // Another weft may be writing the same file: each writes its own part.
    let tmp = dest.with_extension(format!("part.{}", std::process::id()));
    std::fs::write(&tmp, &body).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, dest).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::Located;

    /// Found by the `symbols` fuzz target: a segment whose offset plus size
    /// or whose address plus offset passes 2^64 overflowed (a panic in
    /// debug builds, a wrong address in release ones).
    #[test]
    fn segments_at_the_end_of_the_address_space_do_not_overflow() {
        let at = |segments| Located {
            binary: None,
            symbols: None,
            debug_frame: None,
            segments,
            refused_debug_file: false,
        };
        let l = at(vec![(u64::MAX - 10, 0x1000, 100)]);
        assert_eq!(l.vaddr_of(u64::MAX - 5), Some(0x1005));
        assert_eq!(l.vaddr_of(5), None);
        let l = at(vec![(0, u64::MAX - 2, 100)]);
        assert_eq!(l.vaddr_of(2), Some(u64::MAX));
        assert_eq!(l.vaddr_of(50), None);
    }
}
