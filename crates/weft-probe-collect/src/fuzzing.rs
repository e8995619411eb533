//! Entry points for the fuzz targets (`fuzz/`): the collector's reader fed
//! arbitrary shared memory and control frames. Not part of the API.

use weft_probe_abi::control::{EventDesc, Msg, ProcessInfo};
use weft_probe_abi::layout::{Geometry, Mode, AREA_HEADER_LEN};

use crate::{Area, Collect, TscClock};

/// Drains an area whose slots hold `bytes` (the collector's own header
/// kept), in discard mode if the first byte is even, else overwrite mode:
/// a round, the final pass, then the accounting.
pub fn drain_image(bytes: &[u8]) {
    let geo = Geometry {
        slots: 2,
        subbufs: 2,
        subbuf_size: 4096,
    };
    let mode = if bytes.first().is_some_and(|b| b & 1 == 1) {
        Mode::Overwrite
    } else {
        Mode::Discard
    };
    let Ok(area) = Area::create(geo, mode) else { return };
    for (i, chunk) in bytes.chunks(8).enumerate() {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        area.put_u64(AREA_HEADER_LEN + i * 8, u64::from_le_bytes(w));
    }
    let info = sample_info();
    // Calibrating a clock takes 10 ms: once per fuzzing thread.
    thread_local! {
        static CLOCK: TscClock = TscClock::new();
    }
    CLOCK.with(|clock| {
        let mut d = crate::drain::Drainer::new(&info, geo, mode, area.salt());
        let mut sink = Collect::default();
        d.drain(&area, clock, false, &mut sink);
        d.drain(&area, clock, true, &mut sink);
        let _ = d.stats(&area);
    });
}

/// Process 1 declaring one event, `p:e { a: u64, s: str }`: what the fuzz
/// target and the drain's tests read areas against.
pub(crate) fn sample_info() -> ProcessInfo {
    ProcessInfo {
        pid: 1,
        start_time: 0,
        comm: "t".into(),
        sessions: 1,
        user_events: false,
        events: vec![EventDesc {
            id: 0,
            provider: "p".into(),
            name: "e".into(),
            fields: vec![("a".into(), 4), ("s".into(), 12)],
        }],
    }
}

/// Decodes a control-socket frame body.
pub fn decode_frame(bytes: &[u8]) {
    if let Ok(m) = Msg::decode(bytes) {
        // What decodes encodes again to a frame of the same message.
        let again = m.encode();
        assert!(again.len() >= 4);
    }
}
