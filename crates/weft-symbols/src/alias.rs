//! Which name to give a function that has several (`malloc` and
//! `__libc_malloc`, `memmove` and `memcpy` variants, identical functions
//! folded into one): perf's choice, so that both tools name the same
//! function the same way. perf prefers a sized symbol, then a non-weak one,
//! then a global one, then fewer leading underscores, then the longest name.

use std::collections::HashMap;

use object::{Object, ObjectSymbol, SymbolKind};

/// Function start address -> the name perf would show, for addresses that
/// carry more than one function symbol.
#[derive(Debug, Default)]
pub(crate) struct Aliases(HashMap<u64, String>);

#[derive(Clone)]
struct Cand {
    name: String,
    sized: bool,
    weak: bool,
    global: bool,
}

impl Cand {
    /// Greater is better, in perf's order of preference.
    fn rank(&self) -> (bool, bool, bool, std::cmp::Reverse<usize>, usize) {
        let underscores = self.name.bytes().take_while(|&b| b == b'_').count();
        (
            self.sized,
            !self.weak,
            self.global,
            std::cmp::Reverse(underscores),
            self.name.len(),
        )
    }
}

impl Aliases {
    /// The aliases in an ELF image's symbol tables; none if it is not one.
    pub fn parse(data: &[u8]) -> Aliases {
        let Ok(file) = object::File::parse(data) else {
            return Aliases::default();
        };
        let mut by_addr: HashMap<u64, Vec<Cand>> = HashMap::new();
        for s in file.symbols().chain(file.dynamic_symbols()) {
            if s.kind() != SymbolKind::Text || s.address() == 0 {
                continue;
            }
            let Ok(name) = s.name() else { continue };
            if name.is_empty() {
                continue;
            }
            // `name@@GLIBC_2.2.5` and `name` are one name.
            let name = name.split('@').next().unwrap_or(name);
            let v = by_addr.entry(s.address()).or_default();
            if v.iter().all(|c| c.name != name) {
                v.push(Cand {
                    name: name.to_owned(),
                    sized: s.size() > 0,
                    weak: s.is_weak(),
                    global: s.is_global(),
                });
            }
        }
        Aliases(
            by_addr
                .into_iter()
                .filter(|(_, v)| v.len() > 1)
                .filter_map(|(a, v)| Some((a, demangle(&v.into_iter().max_by_key(Cand::rank)?.name))))
                .collect(),
        )
    }

    pub fn name(&self, addr: u64) -> Option<&str> {
        self.0.get(&addr).map(String::as_str)
    }
}

/// Rust and C++ names demangled as the symbolizer shows them.
fn demangle(name: &str) -> String {
    if let Ok(d) = rustc_demangle::try_demangle(name) {
        return format!("{d:#}");
    }
    if name.starts_with("_Z") {
        if let Ok(s) = cpp_demangle::Symbol::new(name) {
            if let Ok(d) = s.demangle() {
                return d;
            }
        }
    }
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(name: &str, weak: bool, global: bool) -> Cand {
        Cand {
            name: name.into(),
            sized: true,
            weak,
            global,
        }
    }

    fn best(v: &[Cand]) -> String {
        v.iter().cloned().max_by_key(Cand::rank).unwrap().name
    }

    #[test]
    fn perfs_order_of_preference() {
        // Fewer leading underscores: malloc over __libc_malloc.
        assert_eq!(
            best(&[cand("__libc_malloc", false, true), cand("malloc", false, true)]),
            "malloc"
        );
        // Then the longest name: cfree over free, memmove's over memcpy's.
        assert_eq!(best(&[cand("free", false, true), cand("cfree", false, true)]), "cfree");
        assert_eq!(
            best(&[
                cand("__memcpy_avx_unaligned", false, false),
                cand("__memmove_avx_unaligned", false, false)
            ]),
            "__memmove_avx_unaligned"
        );
        // Global over local, non-weak over weak, before names count.
        assert_eq!(
            best(&[cand("_local", false, false), cand("__glob", false, true)]),
            "__glob"
        );
        assert_eq!(
            best(&[cand("weakling", true, true), cand("__strong", false, true)]),
            "__strong"
        );
        // A sized symbol over a bare label.
        let mut label = cand("a", false, true);
        label.sized = false;
        assert_eq!(best(&[label, cand("__sized", false, false)]), "__sized");
    }
}
