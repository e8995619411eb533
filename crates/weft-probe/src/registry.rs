//! Every event of the process: Rust statics collected by the linker, plus C
//! events registered at start-up. The list is append-only and read without
//! locks, so a fork child (where another thread may have held any lock) can
//! still walk it.

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

use crate::event::Event;

#[linkme::distributed_slice]
pub static STATIC_EVENTS: [&'static Event];

pub(crate) const CAPACITY: usize = 16384;
/// The registry was found full (said once).
static FULL_SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// Events refused because the registry was full; attached collectors see
/// it in their area's header (`A_UNREGISTERED`).
static UNREGISTERED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub(crate) fn unregistered() -> u64 {
    UNREGISTERED.load(Ordering::Acquire)
}
static LIST: [AtomicPtr<Event>; CAPACITY] = [const { AtomicPtr::new(std::ptr::null_mut()) }; CAPACITY];
static LEN: AtomicUsize = AtomicUsize::new(0);
static APPENDING: AtomicBool = AtomicBool::new(false);

/// Adds `e` with the next id. False if it was already registered, or if the
/// registry is full (it then has no id and must never be enabled).
fn append(e: &'static Event) -> bool {
    let mut placed = false;
    while APPENDING
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        std::hint::spin_loop();
    }
    if e.registered.swap(1, Ordering::AcqRel) == 0 {
        let n = LEN.load(Ordering::Relaxed);
        if n < CAPACITY {
            e.id.store(n as u32, Ordering::Release);
            LIST[n].store(e as *const Event as *mut Event, Ordering::Release);
            LEN.store(n + 1, Ordering::Release);
            placed = true;
        }
    }
    APPENDING.store(false, Ordering::Release);
    placed
}

fn register_statics() {
    for &e in STATIC_EVENTS.iter() {
        if e.registered.load(Ordering::Acquire) == 0 {
            let _ = append(e);
        }
    }
}

/// Whether `e` holds a place (and so a valid id) in the registry.
pub(crate) fn placed(e: &'static Event) -> bool {
    let id = e.id.load(Ordering::Acquire) as usize;
    id < LEN.load(Ordering::Acquire) && std::ptr::eq(LIST[id].load(Ordering::Acquire), e)
}

/// In a fork child: an append another thread was making at the fork never
/// finishes here.
pub(crate) fn reset_after_fork() {
    APPENDING.store(false, Ordering::Release);
}

/// All registered events, in id order.
pub fn events() -> Vec<&'static Event> {
    register_statics();
    let mut v = Vec::new();
    each(|e| v.push(e));
    v
}

/// How many events are registered (their ids are 0..len).
pub(crate) fn len() -> usize {
    LEN.load(Ordering::Acquire)
}

/// Visits every registered event without locking or allocating.
pub(crate) fn each(f: impl FnMut(&'static Event)) {
    each_below(len(), f)
}

/// Visits the events whose ids are below `n`, in id order, without locking
/// or allocating.
pub(crate) fn each_below(n: usize, mut f: impl FnMut(&'static Event)) {
    for slot in LIST.iter().take(n.min(len())) {
        let p = slot.load(Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: only &'static Event pointers are stored.
            f(unsafe { &*p });
        }
    }
}

/// Registers an event defined outside Rust statics (the C API).
pub fn register(e: &'static Event) {
    register_statics();
    if e.registered.load(Ordering::Acquire) != 0 {
        return;
    }
    // Full registry: the event keeps no id, so it must not be written with
    // another event's (it stays disabled). Said once, so that it is not
    // mistaken for an event nobody enabled.
    if !append(e) {
        let n = UNREGISTERED.fetch_add(1, Ordering::AcqRel) + 1;
        crate::ring::publish_unregistered(n);
        if !FULL_SAID.swap(true, Ordering::AcqRel) {
            eprintln!(
                "weft-probe[{}]: more than {CAPACITY} events registered: `{}:{}` and any registered after it stay disabled",
                std::process::id(),
                e.provider(),
                e.name()
            );
        }
        return;
    }
    crate::user_events::register(e);
    crate::listener::on_register(e);
}

pub(crate) fn init() {
    register_statics();
}
