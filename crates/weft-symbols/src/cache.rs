//! A persistent cache of symbolized module offsets, so a second report on
//! the same trace (or another trace of the same binaries) skips DWARF.

use std::collections::HashMap;
use std::fmt::Write;
use std::path::Path;

use crate::{Frame, ModuleKey};

// 2: PLT stubs are named, aliases are perf's pick (1 held other names).
const MAGIC: &str = "weft-symcache 2";

#[derive(Debug, Default)]
pub struct SymCache {
    map: HashMap<(ModuleKey, u64), Vec<Frame>>,
    dirty: bool,
}

fn clean(s: &str) -> String {
    s.replace(['\t', '\n'], " ")
}

impl SymCache {
    /// Loads a cache file; a missing or damaged file gives what could be read.
    pub fn load(path: &Path) -> SymCache {
        let mut c = SymCache::default();
        let Ok(text) = std::fs::read_to_string(path) else {
            return c;
        };
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return c;
        }
        while let Some(head) = lines.next() {
            let f: Vec<&str> = head.split('\t').collect();
            let [path, bid, vaddr, n] = f[..] else { break };
            let (Ok(vaddr), Ok(n)) = (u64::from_str_radix(vaddr, 16), n.parse::<usize>()) else {
                break;
            };
            let build_id: Option<Vec<u8>> = (0..bid.len() / 2)
                .map(|i| u8::from_str_radix(bid.get(2 * i..2 * i + 2)?, 16).ok())
                .collect();
            let Some(build_id) = build_id else { break };
            let mut frames = Vec::new();
            for _ in 0..n.min(256) {
                let Some(l) = lines.next() else { break };
                let g: Vec<&str> = l.split('\t').collect();
                let [module, off, func, file, line, inl] = g[..] else {
                    break;
                };
                frames.push(Frame {
                    function: (!func.is_empty()).then(|| func.to_owned()),
                    module: module.to_owned(),
                    offset: u64::from_str_radix(off, 16).unwrap_or(0),
                    file: (!file.is_empty()).then(|| file.to_owned()),
                    line: line.parse().ok(),
                    inlined: inl == "1",
                });
            }
            c.map.insert(
                (
                    ModuleKey {
                        path: path.to_owned(),
                        build_id,
                    },
                    vaddr,
                ),
                frames,
            );
        }
        c
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get(&self, key: &ModuleKey, vaddr: u64) -> Option<&[Frame]> {
        self.map.get(&(key.clone(), vaddr)).map(Vec::as_slice)
    }

    pub fn put(&mut self, key: ModuleKey, vaddr: u64, frames: Vec<Frame>) {
        self.map.insert((key, vaddr), frames);
        self.dirty = true;
    }

    /// Writes the cache if it changed (atomically, via a temporary file).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let mut out = String::from(MAGIC);
        out.push('\n');
        for ((k, vaddr), frames) in &self.map {
            let _ = writeln!(
                out,
                "{}\t{}\t{vaddr:x}\t{}",
                clean(&k.path),
                k.build_id_hex(),
                frames.len()
            );
            for f in frames {
                let _ = writeln!(
                    out,
                    "{}\t{:x}\t{}\t{}\t{}\t{}",
                    clean(&f.module),
                    f.offset,
                    clean(f.function.as_deref().unwrap_or("")),
                    clean(f.file.as_deref().unwrap_or("")),
                    f.line.map_or(String::new(), |l| l.to_string()),
                    u8::from(f.inlined)
                );
            }
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, out)?;
        std::fs::rename(tmp, path)
    }
}
