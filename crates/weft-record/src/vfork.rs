//! vfork windows. A thread that calls vfork stays suspended until its child
//! execs or exits, and the child runs meanwhile in the thread's memory, on
//! its thread storage: a weft-probe event the child writes lands in the
//! thread's ring, as if the thread had written it. The thread cannot write
//! while it is inside the call, so what its stream holds from that window
//! is the child's. The recorder writes each window (`kernel:vfork`, from
//! the call's entry to its return); readers attribute the events in it to
//! the child (weft-format's record iterators).

use std::collections::HashMap;

use weft_kernel::{EventKind, KernelEvent, VforkCalls};

use crate::encode::Encoder;

#[derive(Default)]
pub(crate) struct Vforks {
    calls: VforkCalls,
    /// Threads inside a vfork call, and since when.
    open: HashMap<u32, u64>,
}

impl Vforks {
    pub fn observe(&mut self, ev: &KernelEvent, enc: &mut Encoder) {
        match &ev.kind {
            EventKind::SyscallEnter { nr, args, data } => {
                if self.calls.starts(*nr, args, data) {
                    self.open.insert(ev.tid, ev.ts);
                } else if !self.open.is_empty() {
                    // Its return was lost: that call is over.
                    self.open.remove(&ev.tid);
                }
            }
            EventKind::SyscallExit { ret, .. } if !self.open.is_empty() => {
                if let (Some(since), Ok(child)) = (self.open.remove(&ev.tid), u32::try_from(*ret)) {
                    if child > 0 {
                        enc.vfork(since, ev.pid, ev.tid, child, ev.ts);
                    }
                }
            }
            EventKind::Exit { .. } => {
                self.open.remove(&ev.tid);
            }
            _ => {}
        }
    }
}
