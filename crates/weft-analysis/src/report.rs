//! The report's function tables: samples per function (self and total),
//! over all threads or per thread, from a built `Profile`.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::profile::{Profile, Stack};

/// One function's row: the frame that stands for it (its busiest address),
/// its self samples and its total samples (self and callees).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    pub frame: usize,
    pub self_samples: u64,
    pub total_samples: u64,
}

/// The functions of a group of stacks.
#[derive(Debug, Clone)]
pub struct Table {
    /// "all threads", or "PID/TID COMM".
    pub title: String,
    /// Samples in the group.
    pub samples: u64,
    /// One row per function, by self samples, then total, then name.
    pub by_self: Vec<Row>,
    /// The same rows by total samples, then self, then name: callers that
    /// never run code of their own show who the time is spent under.
    pub by_total: Vec<Row>,
}

/// The function tables of a profile: one over every thread, or one per thread.
pub fn function_tables(p: &Profile, per_thread: bool) -> Vec<Table> {
    let groups: Vec<(String, Vec<&Stack>)> = if per_thread {
        let mut g: BTreeMap<(u32, u32), (String, Vec<&Stack>)> = BTreeMap::new();
        for s in &p.stacks {
            g.entry((s.pid, s.tid))
                .or_insert_with(|| (s.comm.clone(), Vec::new()))
                .1
                .push(s);
        }
        g.into_iter()
            .map(|((pid, tid), (comm, v))| (format!("{pid}/{tid} {comm}"), v))
            .collect()
    } else {
        vec![("all threads".into(), p.stacks.iter().collect())]
    };
    groups
        .into_iter()
        .map(|(title, stacks)| table(p, title, &stacks))
        .collect()
}

fn table(p: &Profile, title: String, stacks: &[&Stack]) -> Table {
    let total: u64 = stacks.iter().map(|s| s.count).sum();
    let mut selfc: HashMap<usize, u64> = HashMap::new();
    let mut totalc: HashMap<usize, u64> = HashMap::new();
    for s in stacks {
        if let Some(&leaf) = s.frames.last() {
            *selfc.entry(leaf).or_default() += s.count;
        }
        // A function counts once per stack, however often it recurses.
        let mut seen = HashSet::new();
        for &f in &s.frames {
            if seen.insert((p.frames[f].function_label(), &p.frames[f].module)) {
                *totalc.entry(f).or_default() += s.count;
            }
        }
    }
    // One row per function (a function's lines and addresses together).
    // Its location is that of its busiest address, so that it does not
    // depend on hash order.
    // Unnamed frames of a module are one row (`function_label`).
    let key = |f: usize| (p.frames[f].function_label(), p.frames[f].module.clone());
    let weight = |f: usize| {
        let fr = &p.frames[f];
        (
            selfc.get(&f).copied().unwrap_or(0),
            totalc.get(&f).copied().unwrap_or(0),
            std::cmp::Reverse((fr.file.clone(), fr.line, fr.offset)),
        )
    };
    let mut by_fn: HashMap<(String, String), (usize, u64, u64)> = HashMap::new();
    for &f in totalc.keys().chain(selfc.keys()) {
        let e = by_fn.entry(key(f)).or_insert((f, 0, 0));
        if weight(f) > weight(e.0) {
            e.0 = f;
        }
    }
    for (&f, &t) in &totalc {
        if let Some(e) = by_fn.get_mut(&key(f)) {
            e.2 += t;
        }
    }
    for (&f, &c) in &selfc {
        if let Some(e) = by_fn.get_mut(&key(f)) {
            e.1 += c;
        }
    }
    let mut rows: Vec<Row> = by_fn
        .into_values()
        .map(|(frame, sc, tc)| Row {
            frame,
            self_samples: sc,
            total_samples: tc.min(total),
        })
        .collect();
    let name = |r: &Row| (p.frames[r.frame].function_label(), p.frames[r.frame].module.clone());
    rows.sort_by(|a, b| {
        b.self_samples
            .cmp(&a.self_samples)
            .then(b.total_samples.cmp(&a.total_samples))
            .then_with(|| name(a).cmp(&name(b)))
    });
    let by_self = rows.clone();
    rows.sort_by(|a, b| {
        b.total_samples
            .cmp(&a.total_samples)
            .then(b.self_samples.cmp(&a.self_samples))
            .then_with(|| name(a).cmp(&name(b)))
    });
    Table {
        title,
        samples: total,
        by_self,
        by_total: rows,
    }
}
