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
    /// Threads inside a vfork call: since when, and the child once its
    /// creation is seen.
    open: HashMap<u32, (u64, Option<u32>)>,
}

impl Vforks {
    /// Events in time order.
    pub fn observe(&mut self, ev: &KernelEvent, enc: &mut Encoder) {
        match &ev.kind {
            EventKind::SyscallEnter { nr, args, data } => {
                if self.calls.starts(*nr, args, data) {
                    self.open.insert(ev.tid, (ev.ts, None));
                } else if !self.open.is_empty() {
                    // Its return was lost: that call is over.
                    self.open.remove(&ev.tid);
                }
            }
            // The child's pid as the trace knows it: the call's result is
            // in the caller's pid namespace, which may not be ours.
            EventKind::Fork { parent_tid, .. } if !self.open.is_empty() => {
                if let Some((_, child @ None)) = self.open.get_mut(parent_tid) {
                    *child = Some(ev.pid);
                }
            }
            EventKind::SyscallExit { ret, .. } if !self.open.is_empty() => {
                if let Some((since, child)) = self.open.remove(&ev.tid) {
                    // Without the fork record (lost), the result, when
                    // the caller shares our pid namespace.
                    let same_ns = u32::try_from(*ret).ok().filter(|&c| c > 0 && child.is_none());
                    if let Some(child) = child.or(same_ns.filter(|_| weft_kernel::procfs::same_pid_ns(ev.pid))) {
                        if *ret > 0 {
                            enc.vfork(since, ev.pid, ev.tid, child, ev.ts);
                        }
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
