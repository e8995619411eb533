//! Unwinding user stacks offline: DWARF CFI from `.eh_frame`/`.debug_frame`
//! with frame-pointer fallback (framehop), over the copied stack bytes.

use std::collections::HashMap;

use crate::{Locator, Mapping};

/// One unwound frame address; `ret` = a return address (look up `addr - 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameAddr {
    pub addr: u64,
    pub ret: bool,
}

#[cfg(target_arch = "x86_64")]
type Arch = framehop::x86_64::UnwinderX86_64<Vec<u8>>;

/// Unwinders per (process, maps version), built on first use.
#[derive(Default)]
pub struct Unwinders {
    #[cfg(target_arch = "x86_64")]
    by_maps: HashMap<(u32, u64), (Arch, framehop::x86_64::CacheX86_64)>,
    #[cfg(not(target_arch = "x86_64"))]
    by_maps: HashMap<(u32, u64), ()>,
}

fn section(obj: &object::File, name: &str) -> Option<(std::ops::Range<u64>, Vec<u8>)> {
    use object::{Object, ObjectSection};
    let s = obj.section_by_name(name)?;
    if s.kind() == object::SectionKind::UninitializedData {
        return None;
    }
    let data = s.data().ok()?.to_vec();
    Some((s.address()..s.address().saturating_add(s.size()), data))
}

#[cfg(target_arch = "x86_64")]
fn build(locator: &Locator, maps: &[Mapping]) -> Arch {
    use framehop::{ExplicitModuleSectionInfo, Module, Unwinder};
    use object::{Object, ObjectSegment};
    let mut u = Arch::new();
    for m in maps {
        if m.path.starts_with('[') {
            continue;
        }
        let Some(loc) = locator.locate(m) else { continue };
        let Some(bin) = &loc.binary else { continue };
        let Ok(data) = std::fs::read(bin) else { continue };
        let Ok(obj) = object::File::parse(&*data) else { continue };
        let Some(svma_start) = loc.vaddr_of(m.pgoff) else {
            continue;
        };
        let bias = m.start.wrapping_sub(svma_start);
        let base_svma = obj.segments().map(|s| s.address()).min().unwrap_or(0);
        let text = section(&obj, ".text");
        let eh = section(&obj, ".eh_frame");
        let hdr = section(&obj, ".eh_frame_hdr");
        let got = section(&obj, ".got");
        let mut debug_frame = section(&obj, ".debug_frame").map(|s| s.1);
        if debug_frame.is_none() {
            if let Some(df) = loc.debug_frame.as_ref().and_then(|p| std::fs::read(p).ok()) {
                if let Ok(o) = object::File::parse(&*df) {
                    debug_frame = section(&o, ".debug_frame").map(|s| s.1);
                }
            }
        }
        let info = ExplicitModuleSectionInfo {
            base_svma,
            text_svma: text.as_ref().map(|t| t.0.clone()),
            text: text.map(|t| t.1),
            eh_frame_svma: eh.as_ref().map(|t| t.0.clone()),
            eh_frame: eh.map(|t| t.1),
            eh_frame_hdr_svma: hdr.as_ref().map(|t| t.0.clone()),
            eh_frame_hdr: hdr.map(|t| t.1),
            got_svma: got.map(|t| t.0),
            debug_frame,
            ..Default::default()
        };
        u.add_module(Module::new(
            m.path.clone(),
            m.start..m.end,
            base_svma.wrapping_add(bias),
            info,
        ));
    }
    u
}

impl Unwinders {
    /// Unwinds one stack. `fallback` is the kernel's frame-pointer call chain
    /// (user part), used when CFI unwinding gets no further than the first frame.
    #[allow(clippy::too_many_arguments)]
    pub fn unwind(
        &mut self,
        locator: &Locator,
        pid: u32,
        version: u64,
        maps: &[Mapping],
        regs: [u64; 3],
        stack: &[u8],
        fallback: &[u64],
    ) -> Vec<FrameAddr> {
        let mut out = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64};
            use framehop::Unwinder;
            let [ip, sp, bp] = regs;
            if ip != 0 {
                let (u, cache) = self
                    .by_maps
                    .entry((pid, version))
                    .or_insert_with(|| (build(locator, maps), CacheX86_64::new()));
                let mut read = |addr: u64| -> Result<u64, ()> {
                    let off = addr.checked_sub(sp).ok_or(())? as usize;
                    let b = stack.get(off..off.checked_add(8).ok_or(())?).ok_or(())?;
                    Ok(u64::from_le_bytes(b.try_into().map_err(|_| ())?))
                };
                // CFI read from a malformed file may make the reader panic:
                // the stack then ends where it got to.
                crate::guard::quietly(|| {
                    let mut it = u.iter_frames(ip, UnwindRegsX86_64::new(ip, sp, bp), cache, &mut read);
                    while let Ok(Some(f)) = it.next() {
                        out.push(FrameAddr {
                            addr: f.address(),
                            ret: matches!(f, framehop::FrameAddress::ReturnAddress(_)),
                        });
                        if out.len() >= 512 {
                            break;
                        }
                    }
                });
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (locator, pid, version, maps, regs, stack);
        if out.len() <= 1 && fallback.len() > out.len() {
            out = fallback
                .iter()
                .enumerate()
                .map(|(i, &a)| FrameAddr { addr: a, ret: i > 0 })
                .collect();
        }
        out
    }
}
