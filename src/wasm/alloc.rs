//! The wasm global allocator: std's (dlmalloc) for everything except large zeroed allocations,
//! which take fresh pages from `memory.grow` instead.
//!
//! Why: dlmalloc on wasm gets all its memory by growing one heap and never knows whether a
//! chunk is still untouched, so its `calloc` (Rust's `alloc_zeroed`) always writes the zeros.
//! The engine's tensors are zeroed allocations — above all the KV cache, sized for the whole
//! context (SmolLM2: 94 MiB for 2,048 positions) — so every byte of them became resident at
//! load, though a chat touches only the positions it uses. Pages fresh from `memory.grow` are
//! zero by the wasm spec and cost nothing until written: a zeroed allocation of at least
//! [`BIG`] bytes gets its own run of such pages (a *region*). A freed region is kept and
//! reused, zeroed again, by a later large zeroed allocation that fits (the next engine of an
//! in-page instance gets the previous one's KV cache back). Everything else — plain
//! allocations, small zeroed ones, any with an alignment above a wasm page — is dlmalloc's.
//! dlmalloc copes with memory grown by others (it starts a new segment).

use core::arch::wasm32;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};

/// The wasm page size.
const PAGE: usize = 65536;
/// The smallest zeroed allocation that gets a region of its own.
const BIG: usize = 1 << 20;
/// Regions tracked at most (a model's tensors need one or two per layer); beyond, dlmalloc.
const SLOTS: usize = 1024;

#[derive(Clone, Copy)]
struct Region {
    /// Address of the region's first byte (page-aligned), 0 for an unused slot.
    at: usize,
    bytes: usize,
    live: bool,
}

/// The regions, behind a spin lock (an allocator cannot allocate its lock's queue; the
/// threaded build calls it from several threads).
struct Regions {
    lock: AtomicBool,
    slots: UnsafeCell<[Region; SLOTS]>,
}

// SAFETY: `slots` is only touched by the thread holding `lock` (see `with`).
unsafe impl Sync for Regions {}

impl Regions {
    fn with<R>(&self, f: impl FnOnce(&mut [Region; SLOTS]) -> R) -> R {
        while self.lock.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            std::hint::spin_loop();
        }
        // SAFETY: the lock is held, so this is the only reference to `slots` until it is released.
        let r = f(unsafe { &mut *self.slots.get() });
        self.lock.store(false, Ordering::Release);
        r
    }
}

/// std's allocator with large zeroed allocations in regions of fresh pages (module comment).
pub struct Allocator {
    regions: Regions,
}

impl Allocator {
    pub const fn new() -> Allocator {
        Allocator {
            regions: Regions { lock: AtomicBool::new(false), slots: UnsafeCell::new([Region { at: 0, bytes: 0, live: false }; SLOTS]) },
        }
    }

    /// A region of at least `size` bytes, marked live: `(address, fresh)`, where `fresh` says
    /// its pages came from `memory.grow` just now (zero); `None` when none is free and there is
    /// no slot or no memory left.
    fn take(&self, size: usize) -> Option<(usize, bool)> {
        self.regions.with(|slots| {
            // The smallest free region that fits.
            let mut best: Option<usize> = None;
            for (i, r) in slots.iter().enumerate() {
                if r.at != 0 && !r.live && r.bytes >= size && best.is_none_or(|b| r.bytes < slots[b].bytes) {
                    best = Some(i);
                }
            }
            if let Some(i) = best {
                slots[i].live = true;
                return Some((slots[i].at, false));
            }
            let free = slots.iter().position(|r| r.at == 0)?;
            let pages = size.div_ceil(PAGE);
            let prev = wasm32::memory_grow(0, pages);
            if prev == usize::MAX {
                return None;
            }
            slots[free] = Region { at: prev * PAGE, bytes: pages * PAGE, live: true };
            Some((prev * PAGE, true))
        })
    }

    /// The live region starting at `ptr`, if any: its size in bytes.
    fn region_of(&self, ptr: *mut u8) -> Option<usize> {
        let at = ptr as usize;
        if at % PAGE != 0 {
            return None; // not a region's start: dlmalloc's
        }
        self.regions.with(|slots| slots.iter().find(|r| r.at == at && r.live).map(|r| r.bytes))
    }

    /// Marks the live region at `ptr` free; false when `ptr` is not one.
    fn give_back(&self, ptr: *mut u8) -> bool {
        let at = ptr as usize;
        if at % PAGE != 0 {
            return false;
        }
        self.regions.with(|slots| match slots.iter_mut().find(|r| r.at == at && r.live) {
            Some(r) => {
                r.live = false;
                true
            }
            None => false,
        })
    }
}

impl Default for Allocator {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every block handed out is either dlmalloc's (`System`, with its own guarantees) or a
// region: page-aligned (so any alignment up to PAGE), at least `layout.size()` bytes, live
// (never handed out twice) until `dealloc` marks it free, zero when returned by `alloc_zeroed`
// (fresh pages, or written with zeros). A pointer goes back to whoever handed it out: regions
// are recognised by their exact start address among the live ones, which dlmalloc never
// returns (a region's pages are not in any dlmalloc segment).
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= BIG && layout.align() <= PAGE {
            if let Some((at, fresh)) = self.take(layout.size()) {
                let p = at as *mut u8;
                if !fresh {
                    // SAFETY: the region is live for us alone and has at least `size` bytes.
                    unsafe { p.write_bytes(0, layout.size()) };
                }
                return p;
            }
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // By address, not size: a region reallocated in place may now be smaller than BIG.
        if self.give_back(ptr) {
            return;
        }
        // SAFETY: not a region, so dlmalloc's: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(bytes) = self.region_of(ptr) else {
            // SAFETY: not a region, so dlmalloc's: the caller's contract, passed on.
            return unsafe { System.realloc(ptr, layout, new_size) };
        };
        if new_size <= bytes {
            return ptr; // fits in place (the region is ours until dealloc)
        }
        // SAFETY: `new_size` is non-zero and, with `layout.align()`, a valid layout (the
        // caller's contract for realloc).
        let new = unsafe { System.alloc(Layout::from_size_align_unchecked(new_size, layout.align())) };
        if !new.is_null() {
            // SAFETY: both blocks are live and distinct; the old one has `layout.size()` bytes.
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size()) };
            self.give_back(ptr);
        }
        new
    }
}
