//! Runs the third-party readers of ELF and DWARF files, which may panic on
//! a malformed file, so that such a file costs its own frames only: the
//! panic is caught, and its message is not printed over the report.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// Set while this thread runs a reader whose panics are caught.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// `f()`, or None if it panicked.
pub(crate) fn quietly<T>(f: impl FnOnce() -> T) -> Option<T> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                previous(info);
            }
        }));
    });
    let was = QUIET.with(|q| q.replace(true));
    let r = panic::catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    r.ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_panic_is_caught_and_other_results_pass() {
        assert_eq!(super::quietly(|| 7), Some(7));
        assert_eq!(super::quietly(|| -> u8 { panic!("malformed") }), None);
        // Nested: the outer call is still quiet after the inner one, and
        // the thread is not once both are over.
        let quiet_after_inner = super::quietly(|| {
            let inner = super::quietly(|| -> u8 { panic!("inner") });
            (inner, super::QUIET.with(std::cell::Cell::get))
        });
        assert_eq!(quiet_after_inner, Some((None, true)));
        assert!(!super::QUIET.with(std::cell::Cell::get));
    }
}
