//! HEARTH PATCH: a per-thread budget on the bytes one render may allocate.
//!
//! Fuel bounds instructions, not bytes: `{% set s = s ~ s %}` forty times is eighty
//! instructions and a terabyte. Inside [`with_budget`], every new string and vector value is
//! charged; operations that could make one huge allocation check [`ensure`] first; the VM
//! stops at the next instruction once the budget is spent. Outside it nothing is counted.

use std::cell::Cell;

use crate::error::{Error, ErrorKind};

thread_local! {
    static LEFT: Cell<Option<usize>> = const { Cell::new(None) };
    static SPENT: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` (a render) with at most `bytes` of new strings and sequences; an operation that
/// would exceed it fails with [`ErrorKind::InvalidOperation`] ("the template exceeded its
/// memory budget"). Budgets do not nest: an inner call replaces the outer one while it runs.
pub fn with_budget<R>(bytes: usize, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<usize>, bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            LEFT.with(|l| l.set(self.0));
            SPENT.with(|s| s.set(self.1));
        }
    }
    let _restore = Restore(LEFT.with(|l| l.replace(Some(bytes))), SPENT.with(|s| s.replace(false)));
    f()
}

/// True once the current budget is spent (an operation was refused for it).
pub fn is_spent() -> bool {
    SPENT.with(|s| s.get())
}

/// Bytes left in the current budget (`None` outside [`with_budget`]).
pub fn remaining() -> Option<usize> {
    LEFT.with(|l| l.get())
}

fn spent() -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        "the template exceeded its memory budget",
    )
}

/// Charges `bytes` just allocated; past the budget the next [`check`] fails.
pub(crate) fn charge(bytes: usize) {
    LEFT.with(|l| {
        if let Some(left) = l.get() {
            match left.checked_sub(bytes) {
                Some(rest) => l.set(Some(rest)),
                None => {
                    l.set(Some(0));
                    SPENT.with(|s| s.set(true));
                }
            }
        }
    });
}

/// Fails when an allocation of `bytes` (to be made next) would not fit in the budget.
/// `None` (a size that overflowed) never fits while a budget is active.
pub(crate) fn ensure(bytes: Option<usize>) -> Result<(), Error> {
    match (remaining(), bytes) {
        (None, _) => Ok(()),
        (Some(left), Some(n)) if n <= left => Ok(()),
        _ => {
            SPENT.with(|s| s.set(true));
            Err(spent())
        }
    }
}

/// Fails once the budget is spent (called before every instruction).
pub(crate) fn check() -> Result<(), Error> {
    if SPENT.with(|s| s.get()) {
        Err(spent())
    } else {
        Ok(())
    }
}

/// Bytes of `n` values in a vector.
pub(crate) fn values(n: usize) -> Option<usize> {
    n.checked_mul(std::mem::size_of::<crate::value::Value>())
}
