//! Syscall arguments as the kernel captured them: the `data` field of
//! `kernel:syscall_enter` and `kernel:syscall_exit` (docs/format.md §12.20).
//! Its bytes are a list of items, each an 8-byte header (argument index,
//! kind, flags, an index within the argument, the length) and that many
//! bytes, the next item starting at the next multiple of 8.

/// What an item holds.
pub mod kind {
    /// A NUL-terminated string, read at entry (the NUL is not stored).
    pub const STR: u8 = 1;
    /// A buffer the call reads, as many bytes as its length argument says.
    pub const BUF_IN: u8 = 2;
    /// A buffer the call filled, as many bytes as it returned.
    pub const BUF_OUT: u8 = 3;
    /// A struct the call reads.
    pub const STRUCT_IN: u8 = 4;
    /// A struct the call filled.
    pub const STRUCT_OUT: u8 = 5;
    /// One string of an argv array; `index` is its position.
    pub const ARGV: u8 = 6;
    /// The number of entries of a NULL-terminated array (u32): argv, envp.
    pub const COUNT: u8 = 7;
    /// One buffer of an iovec array the call reads; `index` is the entry.
    pub const IOV_IN: u8 = 8;
    /// One buffer of an iovec array the call filled.
    pub const IOV_OUT: u8 = 9;
    /// A string the call filled, as many bytes as it returned (readlink).
    pub const STR_OUT: u8 = 10;
    /// The address a msghdr points to (`msg_name`), after the msghdr's
    /// own STRUCT item and before its IOV items.
    pub const MSG_NAME: u8 = 11;
}

/// Item flags.
pub mod flag {
    /// Only the first bytes were kept (`--string-limit`).
    pub const TRUNCATED: u8 = 1;
    /// The memory could not be read (not mapped, or not paged in); no bytes.
    pub const FAULT: u8 = 2;
    /// Read when the call returned (a string first read at entry failed,
    /// or an output).
    pub const AT_EXIT: u8 = 4;
}

/// Length of an item header.
pub const ITEM_HEADER_LEN: usize = 8;

/// One captured item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item<'a> {
    /// The syscall argument (0–5) it belongs to.
    pub arg: u8,
    pub kind: u8,
    pub flags: u8,
    /// The position within the argument: argv string, iovec entry.
    pub index: u8,
    pub bytes: &'a [u8],
}

impl Item<'_> {
    pub fn truncated(&self) -> bool {
        self.flags & flag::TRUNCATED != 0
    }

    pub fn fault(&self) -> bool {
        self.flags & flag::FAULT != 0
    }

    /// A COUNT item's value.
    pub fn count(&self) -> Option<u32> {
        Some(u32::from_le_bytes(self.bytes.get(..4)?.try_into().ok()?))
    }
}

/// The items of a `data` field, in order. Stops at the first malformed item
/// (or the zero padding after the last one).
pub fn items(data: &[u8]) -> impl Iterator<Item = Item<'_>> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let h = data.get(at..at.checked_add(ITEM_HEADER_LEN)?)?;
        let len = u32::from_le_bytes([h[4], h[5], h[6], h[7]]) as usize;
        if h[1] == 0 {
            return None;
        }
        let start = at + ITEM_HEADER_LEN;
        let bytes = data.get(start..start.checked_add(len)?)?;
        at = start + len.div_ceil(8) * 8;
        Some(Item {
            arg: h[0],
            kind: h[1],
            flags: h[2],
            index: h[3],
            bytes,
        })
    })
}

/// Appends an item (for writers and tests).
pub fn push_item(out: &mut Vec<u8>, item: Item<'_>) {
    out.extend_from_slice(&[item.arg, item.kind, item.flags, item.index]);
    out.extend_from_slice(&(item.bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(item.bytes);
    out.resize(out.len().div_ceil(8) * 8, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_round_trip_and_stop_at_damage() {
        let mut d = Vec::new();
        let a = Item {
            arg: 1,
            kind: kind::STR,
            flags: flag::TRUNCATED,
            index: 0,
            bytes: b"/etc/ld.so.cache",
        };
        let b = Item {
            arg: 2,
            kind: kind::COUNT,
            flags: 0,
            index: 0,
            bytes: &7u32.to_le_bytes(),
        };
        push_item(&mut d, a);
        push_item(&mut d, b);
        let got: Vec<Item> = items(&d).collect();
        assert_eq!(got, vec![a, b]);
        assert_eq!(got[1].count(), Some(7));
        // A length past the end ends the list; so does zero padding.
        let mut bad = d.clone();
        bad[4] = 0xff;
        assert_eq!(items(&bad).count(), 0);
        d.extend_from_slice(&[0; 8]);
        assert_eq!(items(&d).count(), 2);
        assert_eq!(items(&d[..35]).count(), 1);
    }
}
