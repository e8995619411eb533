//! `--comm`: only processes whose name matches, tracking names through
//! comm changes and forks.

use std::collections::HashMap;

use weft_kernel::{EventKind, KernelEvent};

pub(crate) struct CommFilter {
    globs: globset::GlobSet,
    names: HashMap<u32, String>,
}

impl CommFilter {
    /// From glob patterns (each may hold several, comma-separated).
    pub fn new(patterns: &[String]) -> Result<Option<CommFilter>, globset::Error> {
        if patterns.is_empty() {
            return Ok(None);
        }
        let mut b = globset::GlobSetBuilder::new();
        for p in patterns.iter().flat_map(|c| c.split(',')) {
            b.add(globset::Glob::new(p)?);
        }
        Ok(Some(CommFilter {
            globs: b.build()?,
            names: HashMap::new(),
        }))
    }

    pub fn keep(&mut self, ev: &KernelEvent) -> bool {
        match &ev.kind {
            EventKind::Comm { comm, .. } if ev.tid == ev.pid => {
                self.names.insert(ev.pid, comm.clone());
            }
            EventKind::Fork { parent_pid, .. } if *parent_pid != ev.pid => {
                if let Some(n) = self.names.get(parent_pid).cloned() {
                    self.names.insert(ev.pid, n);
                }
            }
            EventKind::Lost { .. } => return true,
            _ => {}
        }
        self.names.get(&ev.pid).is_some_and(|n| self.globs.is_match(n))
    }
}
