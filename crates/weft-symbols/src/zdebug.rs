//! Legacy GNU-compressed debug sections (`.zdebug_*`, from `gcc -gz=zlib-gnu`
//! or `objcopy --compress-debug-sections=zlib-gnu`, as older distributions
//! shipped them). The DWARF reader knows only the standard SHF_COMPRESSED
//! form, so such a file is rewritten once into that form: each section's
//! "ZLIB" + big-endian size header becomes an `Elf64_Chdr` and its name
//! `.debug_*`; the zlib stream itself is kept as is, and nothing else moves.

use std::path::{Path, PathBuf};

const SHF_COMPRESSED: u64 = 0x800;
const ELFCOMPRESS_ZLIB: u32 = 1;
const SHT_NOBITS: u32 = 8;
const SHDR: usize = 64;

fn u16_at(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(d.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(d.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(d: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(d.get(at..at + 8)?.try_into().ok()?))
}
fn put_u32(d: &mut [u8], at: usize, v: u32) {
    d[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_u64(d: &mut [u8], at: usize, v: u64) {
    d[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn pad8(v: &mut Vec<u8>) {
    v.resize(v.len().next_multiple_of(8), 0);
}

/// The file rewritten with standard compressed sections, or None when it
/// has no `.zdebug_*` section or is not a well-formed 64-bit little-endian
/// ELF file (then it is used as it is).
pub(crate) fn rewrite(data: &[u8]) -> Option<Vec<u8>> {
    // ELFCLASS64, ELFDATA2LSB.
    if data.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let shoff = usize::try_from(u64_at(data, 0x28)?).ok()?;
    let shnum = usize::from(u16_at(data, 0x3c)?);
    let shstrndx = usize::from(u16_at(data, 0x3e)?);
    if usize::from(u16_at(data, 0x3a)?) != SHDR || shnum == 0 || shstrndx >= shnum {
        return None;
    }
    let mut shdrs = data.get(shoff..shoff.checked_add(shnum * SHDR)?)?.to_vec();
    let field = |s: &[u8], i: usize, off: usize| u64_at(s, i * SHDR + off).and_then(|v| usize::try_from(v).ok());
    let (str_off, str_size) = (field(&shdrs, shstrndx, 24)?, field(&shdrs, shstrndx, 32)?);
    let strtab = data.get(str_off..str_off.checked_add(str_size)?)?;
    let name_of = |i: usize| -> Option<&[u8]> {
        let at = usize::try_from(u32_at(&shdrs, i * SHDR)?).ok()?;
        let rest = strtab.get(at..)?;
        Some(&rest[..rest.iter().position(|&b| b == 0)?])
    };
    let legacy: Vec<(usize, Vec<u8>)> = (0..shnum)
        .filter_map(|i| {
            let name = name_of(i)?;
            (name.starts_with(b".zdebug_") && u32_at(&shdrs, i * SHDR + 4)? != SHT_NOBITS)
                .then(|| (i, [b".", &name[2..]].concat()))
        })
        .collect();
    if legacy.is_empty() {
        return None;
    }
    let mut out = data.to_vec();
    let mut strings = strtab.to_vec();
    for (i, new_name) in legacy {
        let (off, size) = (field(&shdrs, i, 24)?, field(&shdrs, i, 32)?);
        let body = data.get(off..off.checked_add(size)?)?;
        if body.len() < 12 || &body[..4] != b"ZLIB" {
            continue;
        }
        let raw_size = u64::from_be_bytes(body[4..12].try_into().ok()?);
        let align = u64_at(&shdrs, i * SHDR + 48)?.max(1);
        pad8(&mut out);
        let at = out.len();
        out.extend_from_slice(&ELFCOMPRESS_ZLIB.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&raw_size.to_le_bytes());
        out.extend_from_slice(&align.to_le_bytes());
        out.extend_from_slice(&body[12..]);
        let h = i * SHDR;
        put_u32(&mut shdrs, h, u32::try_from(strings.len()).ok()?);
        strings.extend_from_slice(&new_name);
        strings.push(0);
        let flags = u64_at(&shdrs, h + 8)? | SHF_COMPRESSED;
        put_u64(&mut shdrs, h + 8, flags);
        put_u64(&mut shdrs, h + 24, at as u64);
        put_u64(&mut shdrs, h + 32, (out.len() - at) as u64);
        put_u64(&mut shdrs, h + 48, 8);
    }
    let at = out.len();
    out.extend_from_slice(&strings);
    put_u64(&mut shdrs, shstrndx * SHDR + 24, at as u64);
    put_u64(&mut shdrs, shstrndx * SHDR + 32, strings.len() as u64);
    pad8(&mut out);
    let at = out.len();
    out.extend_from_slice(&shdrs);
    put_u64(&mut out, 0x28, at as u64);
    Some(out)
}

/// `path` rewritten (see the module doc) into `dir/<build-id>.debug`, once;
/// the rewritten copy is reused while it is newer than the original.
pub(crate) fn converted(path: &Path, dir: &Path, build_id: &str) -> Result<PathBuf, String> {
    let dest = dir.join(format!("{build_id}.debug"));
    let newer = |a: &Path, b: &Path| -> Option<bool> {
        Some(std::fs::metadata(a).ok()?.modified().ok()? >= std::fs::metadata(b).ok()?.modified().ok()?)
    };
    if newer(&dest, path) == Some(true) {
        return Ok(dest);
    }
    let data = std::fs::read(path).map_err(|e| e.to_string())?;
    let out = rewrite(&data).ok_or("legacy .zdebug sections that could not be read")?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // Another weft may be writing the same file: each writes its own part.
    let tmp = dest.with_extension(format!("part.{}", std::process::id()));
    std::fs::write(&tmp, out).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &dest).map_err(|e| e.to_string())?;
    Ok(dest)
}
