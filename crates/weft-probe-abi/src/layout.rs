//! Shared-memory layout. Every offset is from the start of the memfd; all
//! integers are little-endian and naturally aligned.

/// "WEFTPRB1"
pub const AREA_MAGIC: u64 = u64::from_le_bytes(*b"WEFTPRB1");
/// 2: record headers carry a check byte (`R_CHECK`).
pub const AREA_VERSION: u32 = 2;
pub const PAGE: usize = 4096;
/// The area header occupies the first page.
pub const AREA_HEADER_LEN: usize = PAGE;

// Area header fields.
pub const A_MAGIC: usize = 0;
pub const A_VERSION: usize = 8;
pub const A_MODE: usize = 12;
pub const A_SLOTS: usize = 16;
pub const A_SUBBUFS: usize = 20;
pub const A_SUBBUF_SIZE: usize = 24;
/// Discard mode: microseconds a writer whose ring is full may wait for the
/// collector before it drops the event (0: drop at once). At most `MAX_WAIT_US`.
pub const A_WAIT_US: usize = 28;
/// Longest wait a collector may ask for.
pub const MAX_WAIT_US: u32 = 1_000_000;
pub const A_SALT: usize = 32;
pub const A_TOTAL: usize = 40;
/// Events dropped because every thread slot was taken (atomic add by any thread).
pub const A_NO_SLOT: usize = 48;
/// Events the process could not register because its registry was full
/// (they stay disabled, so they are never written); stored by the process.
pub const A_UNREGISTERED: usize = 56;
/// Slots `0..A_READY` have their pages in memory and may be claimed; the
/// collector raises it (release store, never lowers it) as threads claim
/// slots, so that only threads that write cost memory. 0: every slot (what a
/// collector before 2026-12-07 left there: it populated the whole area).
pub const A_READY: usize = 64;

/// Per-thread control page at the start of each slot.
pub const SLOT_CTL_LEN: usize = PAGE;
pub const S_OWNER: usize = 0;
/// Incremented by each claim, so the collector notices a new owner.
pub const S_CLAIMS: usize = 4;
/// Next sequence number = events attempted by this thread.
pub const S_ATTEMPTED: usize = 8;
pub const S_COMMITTED: usize = 16;
/// Dropped because the ring was full (discard mode) or the record too large.
pub const S_LOST_FULL: usize = 24;
/// Dropped because a nested write (signal handler) found the ring mid-switch.
pub const S_LOST_BUSY: usize = 32;
/// Generation of the current sub-buffer (1-based; 0 = none yet). Bit 63 set
/// while a sub-buffer switch is in progress.
pub const S_SWITCH_GEN: usize = 40;
/// Stack address of the frame doing the switch (to tell a suspended switch
/// from one abandoned by a handler that never returned).
pub const S_SWITCH_SP: usize = 48;
pub const SWITCHING: u64 = 1 << 63;
/// While a sub-buffer is opened: the low 32 bits of its generation, shifted
/// up 32, or'ed with how far its records area is zeroed. A switch taken
/// over after a signal handler jumped out of it resumes the zeroing there:
/// restarted from the start, a zeroing longer than the interval between
/// such signals never ended.
pub const S_SWITCH_ZEROED: usize = 56;
/// Sub-buffer control entries start here, `SB_CTL_LEN` bytes each.
pub const S_SUBBUF_CTL: usize = 64;
pub const SB_CTL_LEN: usize = 32;
/// Generation this sub-buffer holds (0 = never used).
pub const SB_GEN: usize = 0;
/// End offset of reserved space within the sub-buffer; bit 31 (`CLOSED`)
/// is set when the writer moves on, so a reservation that raced with the
/// switch fails instead of landing in a closed sub-buffer.
pub const SB_RESERVE: usize = 8;
pub const CLOSED: u32 = 1 << 31;
/// Reserved (0): earlier writers added committed bytes here; nobody read it.
pub const SB_COMMITTED: usize = 12;
/// Written by the collector: the generation it has finished reading.
pub const SB_CONSUMED: usize = 16;
/// A slot's writer from another process: in the spare word of sub-buffer
/// entry 0 (which every geometry has), the process id of a task that
/// shares the process's memory without being one of its threads (a
/// `clone(CLONE_VM)` child running on a thread's storage, which takes a
/// slot of its own: docs/probe-buffers.md §9.7). 0: a thread of the
/// process. Stored before the claim count is raised.
pub const S_PID: usize = S_SUBBUF_CTL + 24;
pub const MAX_SUBBUFS: usize = (SLOT_CTL_LEN - S_SUBBUF_CTL) / SB_CTL_LEN;

/// Guard header and footer of a sub-buffer.
pub const GUARD_LEN: usize = 64;
pub const GUARD_HEAD_MAGIC: u64 = u64::from_le_bytes(*b"WFTSBHDR");
pub const GUARD_FOOT_MAGIC: u64 = u64::from_le_bytes(*b"WFTSBFTR");
pub const G_MAGIC: usize = 0;
pub const G_INV_MAGIC: usize = 8;
pub const G_TID: usize = 16;
pub const G_SLOT: usize = 20;
pub const G_GEN: usize = 24;
pub const G_TSC: usize = 32;
pub const G_MONO: usize = 40;
pub const G_FIRST_SEQ: usize = 48;
pub const G_CHECK: usize = 56;

/// Record header.
pub const RECORD_HEADER_LEN: usize = 24;
/// The low 24 bits of the u32 at `R_LEN` are the length (a sub-buffer is
/// at most 16 MiB); its top byte, `R_CHECK`, is `record_check`.
pub const R_LEN: usize = 0;
pub const R_CHECK: usize = 3;
pub const RECORD_LEN_MASK: u32 = 0x00ff_ffff;
pub const R_EVENT: usize = 4;
pub const R_SEQ_STATE: usize = 8;
pub const R_TSC: usize = 16;
/// A record header's check byte: the XOR of every byte of its length,
/// event id, sequence number and timestamp (and a constant, so that zeros
/// do not pass). Any one byte of those altered changes it, so a single
/// flipped byte anywhere in a header is caught. It detects accidents, not
/// forgery.
#[inline(always)]
pub fn record_check(len: u32, event: u32, seq: u64, tsc: u64) -> u8 {
    let mut v = (u64::from(len & RECORD_LEN_MASK) | u64::from(event) << 32) ^ seq ^ tsc;
    v ^= v >> 32;
    v ^= v >> 16;
    v ^= v >> 8;
    v as u8 ^ 0xa5
}

/// The check byte the record header `h` should have, from its other
/// fields (its own check byte aside).
#[inline(always)]
pub fn header_check(h: &[u8; RECORD_HEADER_LEN]) -> u8 {
    let w = |o: usize| {
        u64::from_le_bytes([
            h[o],
            h[o + 1],
            h[o + 2],
            h[o + 3],
            h[o + 4],
            h[o + 5],
            h[o + 6],
            h[o + 7],
        ])
    };
    let (w0, ss) = (w(R_LEN), w(R_SEQ_STATE));
    record_check(w0 as u32, (w0 >> 32) as u32, ss >> 8, w(R_TSC))
}

/// Computes the check byte of each record of `records` again: from its
/// start, while a header fits, its length is at least a header, a multiple
/// of 8 and within `records`. A collector clears the check bytes of the
/// records it has checked, for compression's sake (docs/format.md §5.6).
pub fn restore_checks(records: &mut [u8]) {
    let (mut at, end) = (0usize, records.len());
    while let Some(h) = records
        .get_mut(at..at + RECORD_HEADER_LEN)
        .and_then(|h| <&mut [u8; RECORD_HEADER_LEN]>::try_from(h).ok())
    {
        let len = (u32::from_le_bytes([h[0], h[1], h[2], h[3]]) & RECORD_LEN_MASK) as usize;
        if len < RECORD_HEADER_LEN || !len.is_multiple_of(8) || len > end - at {
            break;
        }
        h[R_CHECK] = header_check(h);
        at += len;
    }
}

/// Header word 0 (`R_LEN` with its check, and `R_EVENT`) as the writer stores it.
#[inline(always)]
pub fn record_word0(len: u32, event: u32, seq: u64, tsc: u64) -> u64 {
    u64::from(len & RECORD_LEN_MASK) | u64::from(record_check(len, event, seq, tsc)) << 24 | u64::from(event) << 32
}

/// Reserved, payload being written (or abandoned by a handler that never returned).
pub const STATE_WRITING: u8 = 0x57;
/// Complete and immutable until the sub-buffer is reused.
pub const STATE_COMMITTED: u8 = 0xc3;

/// The fixed fields of a record header (§5.1 of docs/probe-buffers.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHead {
    /// Whole record length, header and padding included.
    pub len: u32,
    pub event: u32,
    pub seq: u64,
    pub tsc: u64,
}

/// The header at the start of `b`, if it is a committed record's: the
/// committed state, a length of at least a header, a multiple of 8 and
/// within `b`, and a matching check byte. The payload is not checked.
#[inline]
pub fn committed_record(b: &[u8]) -> Option<RecordHead> {
    let word = |at: usize| {
        b.get(at..at + 8)
            .and_then(|s| s.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    };
    if b.len() < RECORD_HEADER_LEN {
        return None;
    }
    let (w0, ss) = (word(R_LEN), word(R_SEQ_STATE));
    let h = RecordHead {
        len: w0 as u32 & RECORD_LEN_MASK,
        event: (w0 >> 32) as u32,
        seq: ss >> 8,
        tsc: word(R_TSC),
    };
    let ok = ss as u8 == STATE_COMMITTED
        && h.len as usize >= RECORD_HEADER_LEN
        && h.len.is_multiple_of(8)
        && h.len as usize <= b.len()
        && b[R_CHECK] == record_check(h.len, h.event, h.seq, h.tsc);
    ok.then_some(h)
}

/// Overflow policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// New events are dropped (and counted) while the ring is full.
    Discard = 0,
    /// The oldest sub-buffer is reused: a flight recorder of the newest events.
    Overwrite = 1,
}

impl Mode {
    pub fn from_u32(v: u32) -> Option<Mode> {
        match v {
            0 => Some(Mode::Discard),
            1 => Some(Mode::Overwrite),
            _ => None,
        }
    }
}

enum GeometryProblem {
    Slots,
    Subbufs,
    SubbufSize,
}

/// Sizes of one session's area; validated on both sides before use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub slots: u32,
    pub subbufs: u32,
    pub subbuf_size: u32,
}

impl Geometry {
    pub const DEFAULT: Geometry = Geometry {
        slots: 64,
        subbufs: 8,
        subbuf_size: 64 << 10,
    };

    pub fn validate(&self) -> Result<(), String> {
        match self.problem() {
            None => Ok(()),
            Some(GeometryProblem::Slots) => Err(format!("{} thread slots (1..4096)", self.slots)),
            Some(GeometryProblem::Subbufs) => Err(format!("{} sub-buffers (2..{MAX_SUBBUFS})", self.subbufs)),
            Some(GeometryProblem::SubbufSize) => Err(format!(
                "sub-buffer size {} (4 KiB..16 MiB, page multiple)",
                self.subbuf_size
            )),
        }
    }

    /// `validate` without a message, and so without allocating (for a
    /// fork child's control thread).
    pub fn is_valid(&self) -> bool {
        self.problem().is_none()
    }

    fn problem(&self) -> Option<GeometryProblem> {
        if !(1..=4096).contains(&self.slots) {
            return Some(GeometryProblem::Slots);
        }
        if !(2..=MAX_SUBBUFS as u32).contains(&self.subbufs) {
            return Some(GeometryProblem::Subbufs);
        }
        if self.subbuf_size < PAGE as u32
            || self.subbuf_size > (16 << 20)
            || !self.subbuf_size.is_multiple_of(PAGE as u32)
        {
            return Some(GeometryProblem::SubbufSize);
        }
        None
    }

    /// Bytes of one thread's sub-buffers.
    pub fn ring_bytes(&self) -> usize {
        self.subbufs as usize * self.subbuf_size as usize
    }

    pub fn slot_len(&self) -> usize {
        SLOT_CTL_LEN + self.subbufs as usize * self.subbuf_size as usize
    }

    pub fn total_len(&self) -> usize {
        AREA_HEADER_LEN + self.slots as usize * self.slot_len()
    }

    /// Bytes in memory when slots `0..ready` are ready: the header, every
    /// slot's control page (the collector reads them all) and the ready
    /// slots' buffers.
    pub fn ready_len(&self, ready: u32) -> usize {
        AREA_HEADER_LEN + self.slots as usize * SLOT_CTL_LEN + ready.min(self.slots) as usize * self.ring_bytes()
    }

    /// How many slots a writer may claim, given the area's `A_READY` word.
    pub fn claimable(&self, ready: u32) -> u32 {
        if ready == 0 || ready > self.slots {
            self.slots
        } else {
            ready
        }
    }

    pub fn slot_offset(&self, slot: u32) -> usize {
        AREA_HEADER_LEN + slot as usize * self.slot_len()
    }

    pub fn subbuf_offset(&self, slot: u32, index: u32) -> usize {
        self.slot_offset(slot) + SLOT_CTL_LEN + index as usize * self.subbuf_size as usize
    }

    /// First byte after the records area of a sub-buffer (where the footer starts).
    pub fn records_end(&self) -> usize {
        self.subbuf_size as usize - GUARD_LEN
    }

    /// Index of the sub-buffer that holds generation `gen` (1-based).
    #[inline(always)]
    pub fn index_of(&self, gen: u64) -> u32 {
        let n = u64::from(self.subbufs);
        // A mask when the count is a power of two (weft record's 8): a
        // 64-bit division costs more than the rest of a write.
        if n.is_power_of_two() {
            (gen.wrapping_sub(1) & (n - 1)) as u32
        } else {
            (gen.wrapping_sub(1) % n.max(1)) as u32
        }
    }
}

/// The identifying fields of a guard, and its check word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guard {
    pub tid: u32,
    pub slot: u32,
    pub gen: u64,
    pub tsc: u64,
    pub mono_ns: u64,
    pub first_seq: u64,
}

impl Guard {
    pub fn check(&self, salt: u64, magic: u64) -> u64 {
        crate::mix(
            salt,
            &[
                magic,
                u64::from(self.tid),
                u64::from(self.slot),
                self.gen,
                self.tsc,
                self.mono_ns,
                self.first_seq,
            ],
        )
    }

    /// The 64 bytes of a guard with `magic`.
    pub fn encode(&self, salt: u64, magic: u64) -> [u8; GUARD_LEN] {
        let mut b = [0u8; GUARD_LEN];
        b[G_MAGIC..G_MAGIC + 8].copy_from_slice(&magic.to_le_bytes());
        b[G_INV_MAGIC..G_INV_MAGIC + 8].copy_from_slice(&(!magic).to_le_bytes());
        b[G_TID..G_TID + 4].copy_from_slice(&self.tid.to_le_bytes());
        b[G_SLOT..G_SLOT + 4].copy_from_slice(&self.slot.to_le_bytes());
        b[G_GEN..G_GEN + 8].copy_from_slice(&self.gen.to_le_bytes());
        b[G_TSC..G_TSC + 8].copy_from_slice(&self.tsc.to_le_bytes());
        b[G_MONO..G_MONO + 8].copy_from_slice(&self.mono_ns.to_le_bytes());
        b[G_FIRST_SEQ..G_FIRST_SEQ + 8].copy_from_slice(&self.first_seq.to_le_bytes());
        b[G_CHECK..G_CHECK + 8].copy_from_slice(&self.check(salt, magic).to_le_bytes());
        b
    }

    /// Decodes and validates a copied guard; the error says which check failed.
    pub fn decode(b: &[u8; GUARD_LEN], salt: u64, magic: u64) -> Result<Guard, &'static str> {
        let u64at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
        let u32at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or([0; 4]));
        if u64at(G_MAGIC) != magic {
            return Err("bad magic");
        }
        if u64at(G_INV_MAGIC) != !magic {
            return Err("bad inverse magic");
        }
        let g = Guard {
            tid: u32at(G_TID),
            slot: u32at(G_SLOT),
            gen: u64at(G_GEN),
            tsc: u64at(G_TSC),
            mono_ns: u64at(G_MONO),
            first_seq: u64at(G_FIRST_SEQ),
        };
        if g.check(salt, magic) != u64at(G_CHECK) {
            return Err("checksum mismatch");
        }
        Ok(g)
    }
}

/// Total bytes a record with `payload` bytes takes (8-aligned).
pub const fn record_len(payload: usize) -> usize {
    (RECORD_HEADER_LEN + payload + 7) & !7
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cleared check bytes come back; a walk stops at a length that does
    /// not frame a record, and leaves what follows alone.
    #[test]
    fn restore_checks_computes_what_the_writer_wrote() {
        let mut recs = Vec::new();
        for (i, len) in [(0u64, 32u32), (1, 48), (2, 24)] {
            recs.extend_from_slice(&record_word0(len, 9, i, 100 + i).to_le_bytes());
            recs.extend_from_slice(&(i << 8 | u64::from(STATE_COMMITTED)).to_le_bytes());
            recs.extend_from_slice(&(100 + i).to_le_bytes());
            recs.resize(recs.len() + len as usize - RECORD_HEADER_LEN, 7);
        }
        let whole = recs.clone();
        for at in [0, 32, 80] {
            recs[at + R_CHECK] = 0;
        }
        recs.extend_from_slice(&[5; 24]);
        restore_checks(&mut recs);
        assert_eq!(recs[..104], whole[..]);
        assert_eq!(recs[104..], [5; 24]);
        for cut in 0..recs.len() {
            restore_checks(&mut recs.clone()[..cut]);
        }
    }

    #[test]
    fn geometry_and_guards() {
        let g = Geometry::DEFAULT;
        g.validate().unwrap();
        assert_eq!(g.slot_len(), 4096 + 8 * 65536);
        assert_eq!(g.index_of(1), 0);
        assert_eq!(g.index_of(9), 0);
        assert!(Geometry {
            slots: 1,
            subbufs: 1,
            subbuf_size: 4096
        }
        .validate()
        .is_err());
        let guard = Guard {
            tid: 7,
            slot: 1,
            gen: 3,
            tsc: 99,
            mono_ns: 5,
            first_seq: 40,
        };
        let b = guard.encode(0x1234, GUARD_HEAD_MAGIC);
        assert_eq!(Guard::decode(&b, 0x1234, GUARD_HEAD_MAGIC), Ok(guard));
        assert!(Guard::decode(&b, 0x1235, GUARD_HEAD_MAGIC).is_err());
        assert!(Guard::decode(&b, 0x1234, GUARD_FOOT_MAGIC).is_err());
        for i in 0..GUARD_LEN {
            let mut m = b;
            m[i] ^= 0x10;
            assert!(Guard::decode(&m, 0x1234, GUARD_HEAD_MAGIC).is_err(), "byte {i}");
        }
        assert_eq!(record_len(0), 24);
        assert_eq!(record_len(1), 32);
        assert_eq!(record_len(16), 40);
    }
}
