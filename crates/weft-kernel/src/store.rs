//! How kernel events are stored: the standard schemas of `weft_format`.

use std::io::Write;

use weft_format::{std_schemas, RecordBuf, SchemaId, SyscallTable, TraceWriter};

use crate::event::{EventKind, KernelEvent};

/// Schema ids of the kernel records in one file, and how many arguments
/// each syscall has (only those are stored).
pub struct KernelSchemas {
    ids: Vec<SchemaId>,
    names: Vec<String>,
    nargs: Vec<u8>,
}

impl KernelSchemas {
    pub fn register<W: Write>(w: &mut TraceWriter<W>, table: &SyscallTable) -> Self {
        let all = std_schemas::all();
        let names = all.iter().map(|s| s.name.clone()).collect();
        let ids = all.into_iter().map(|s| w.add_schema(s)).collect();
        let max = table.entries.iter().map(|e| e.nr).max().unwrap_or(0) as usize;
        let mut nargs = vec![6u8; max + 1];
        for e in &table.entries {
            nargs[e.nr as usize] = e.args.len().min(6) as u8;
        }
        KernelSchemas { ids, names, nargs }
    }

    /// The id of a standard schema in this file.
    pub fn id_of(&self, name: &str) -> Option<SchemaId> {
        self.names.iter().position(|n| n == name).map(|i| self.ids[i])
    }

    pub fn encode(&self, ev: &KernelEvent, buf: &mut RecordBuf) {
        fn rec<'a>(
            ids: &[SchemaId],
            i: usize,
            ev: &KernelEvent,
            buf: &'a mut RecordBuf,
        ) -> weft_format::RecordBuilder<'a> {
            buf.record(ids[i], ev.ts, (ev.cpu != u32::MAX).then_some(ev.cpu), ev.pid, ev.tid)
        }
        let ids = &self.ids;
        match &ev.kind {
            EventKind::SyscallEnter { nr, args } => {
                let n = self.nargs.get(*nr as usize).copied().unwrap_or(6) as usize;
                rec(ids, 0, ev, buf).u64(u64::from(*nr)).u64s(&args[..n]).finish();
            }
            EventKind::SyscallExit { nr, ret } => rec(ids, 1, ev, buf).u64(u64::from(*nr)).i64(*ret).finish(),
            EventKind::SignalGenerate {
                sig,
                code,
                errno,
                target_pid,
                target_comm,
                group,
                result,
            } => rec(ids, 2, ev, buf)
                .i64(i64::from(*sig))
                .i64(i64::from(*code))
                .i64(i64::from(*errno))
                .i64(i64::from(*target_pid))
                .bytes(target_comm.as_bytes())
                .bool(*group)
                .i64(i64::from(*result))
                .finish(),
            EventKind::SignalDeliver {
                sig,
                code,
                errno,
                handler,
                flags,
            } => rec(ids, 3, ev, buf)
                .i64(i64::from(*sig))
                .i64(i64::from(*code))
                .i64(i64::from(*errno))
                .u64(*handler)
                .u64(*flags)
                .finish(),
            EventKind::Fork { parent_pid, parent_tid } => rec(ids, 4, ev, buf)
                .u64(u64::from(*parent_pid))
                .u64(u64::from(*parent_tid))
                .finish(),
            EventKind::Exec { filename, old_tid } => rec(ids, 5, ev, buf)
                .bytes(filename.as_bytes())
                .u64(u64::from(*old_tid))
                .finish(),
            EventKind::Exit { group_dead } => rec(ids, 6, ev, buf).bool(*group_dead).finish(),
            EventKind::Comm { comm, exec } => rec(ids, 7, ev, buf).bytes(comm.as_bytes()).bool(*exec).finish(),
            EventKind::Mmap {
                addr,
                len,
                pgoff,
                prot,
                flags,
                filename,
                build_id,
                inode,
            } => rec(ids, 8, ev, buf)
                .u64(*addr)
                .u64(*len)
                .u64(*pgoff)
                .u64(u64::from(*prot))
                .u64(u64::from(*flags))
                .bytes(filename.as_bytes())
                .bytes(build_id)
                .u64(*inode)
                .finish(),
            EventKind::Lost { count } => rec(ids, 9, ev, buf).u64(*count).finish(),
            EventKind::Sample {
                trigger,
                kernel,
                user,
                regs,
                stack,
            } => {
                if let Some(id) = self.id_of(std_schemas::SAMPLE) {
                    buf.record(id, ev.ts, Some(ev.cpu), ev.pid, ev.tid)
                        .bytes(trigger.as_bytes())
                        .u64s(kernel)
                        .u64s(user)
                        .u64s(regs)
                        .bytes(stack)
                        .finish();
                }
            }
        }
    }
}
