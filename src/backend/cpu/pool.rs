//! A spinning fork-join for the many small products of a decode step.
//!
//! A decode step of a 135M model is ~200 matrix products of 30–100 µs each. Handing each to
//! rayon parks the workers between products (futex natively, `Atomics.wait` in the browser), and
//! waking a parked thread costs tens of µs on a VM: measured on the 2-core VM, SmolLM2 decode
//! ran at 65 tok/s on two rayon threads against 86 on one. Here the workers stay awake between
//! products: each spins on one atomic word for a short budget after its last task, then returns
//! to rayon (which parks it); the next product re-launches it with `rayon::spawn`.
//!
//! Protocol (one job at a time, owned by the caller that holds `busy`):
//! - `state` packs `epoch | next | n`: the job's number, the next task index to hand out and the
//!   task count. The caller writes the job's closure to `slot`, then publishes a new epoch with
//!   `next = 0` (Release).
//! - Anyone (the caller too) claims a task by a compare-exchange that bumps `next` only if the
//!   epoch is still the one it read and `next < n`; only after a successful claim does it read
//!   `slot`. The job cannot finish while a claimed task runs, so `slot` is not rewritten under it.
//! - Each finished task bumps `done` (a panicking one too: the panic is caught, flagged and raised
//!   by the caller at the end of the job); the caller returns only once `done` counts every
//!   claimed task, so the closure outlives every use of it.
//!
//! The caller always works on its own job, so a worker that has gone back to rayon, or is slow to
//! arrive, costs speed and never correctness.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::OnceLock;

const IDX_BITS: u32 = 21;
const IDX_MASK: u64 = (1 << IDX_BITS) - 1;
const EPOCH_SHIFT: u32 = 2 * IDX_BITS;
/// The most tasks one job can have (the task index and count each have 21 bits of `state`).
pub const MAX_TASKS: usize = IDX_MASK as usize;

/// Spins a worker makes with no task before it goes back to rayon. Natively a spin is a `pause`
/// (~40–140 cycles) plus a load: ~1–3 ms. wasm has no pause, a spin is a load: a few ms.
#[cfg(not(target_arch = "wasm32"))]
const WORKER_SPINS: u32 = 20_000;
#[cfg(target_arch = "wasm32")]
const WORKER_SPINS: u32 = 2_000_000;

/// A job's tasks: `f(i)` for every `i < n`, each exactly once.
type Task<'a> = dyn Fn(usize) + Sync + 'a;

struct Pool {
    state: AtomicU64,
    /// The current job; written only by the `busy` owner between jobs, read only under a claim.
    slot: UnsafeCell<Option<&'static Task<'static>>>,
    done: AtomicUsize,
    busy: AtomicBool,
    /// Workers inside [`worker`] (spinning or working).
    active: AtomicUsize,
    /// Workers wanted besides the caller.
    workers: usize,
    /// A task panicked during the current job (raised by the caller when the job ends).
    panicked: AtomicBool,
}

// SAFETY: `slot` is only written by the thread that owns `busy` while no task is claimed, and
// only read by a thread holding a claim on the current epoch (see the module comment).
unsafe impl Sync for Pool {}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        state: AtomicU64::new(0),
        slot: UnsafeCell::new(None),
        done: AtomicUsize::new(0),
        busy: AtomicBool::new(false),
        active: AtomicUsize::new(0),
        panicked: AtomicBool::new(false),
        workers: rayon::current_num_threads().saturating_sub(1),
    })
}

fn unpack(v: u64) -> (u64, usize, usize) {
    (v >> EPOCH_SHIFT, ((v >> IDX_BITS) & IDX_MASK) as usize, (v & IDX_MASK) as usize)
}

impl Pool {
    /// Claims the next task of job `epoch`; `None` once all are handed out or a newer job began.
    fn claim(&self, epoch: u64) -> Option<usize> {
        let mut v = self.state.load(Acquire);
        loop {
            let (e, next, n) = unpack(v);
            if e != epoch || next >= n {
                return None;
            }
            match self.state.compare_exchange_weak(v, v + (1 << IDX_BITS), AcqRel, Acquire) {
                Ok(_) => return Some(next),
                Err(now) => v = now,
            }
        }
    }

    /// Runs claimed task `i` of the current job. A panic is caught and flagged before the task
    /// counts as done, so the caller sees the flag once `done` covers the task (and a worker
    /// thread never unwinds into rayon, which would abort the process).
    fn run_task(&self, i: usize) {
        // SAFETY: a task of the current epoch is claimed, so the job is not finished and `slot`
        // holds its closure, written before the epoch was published.
        if let Some(f) = unsafe { *self.slot.get() } {
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(i))).is_err() {
                self.panicked.store(true, Release);
            }
        }
        self.done.fetch_add(1, Release);
    }

    /// Runs every task of job `epoch` this thread can claim.
    fn work(&self, epoch: u64) {
        while let Some(i) = self.claim(epoch) {
            self.run_task(i);
        }
    }

    /// Starts workers up to `workers` (called only by the `busy` owner).
    fn wake(&'static self) {
        let running = self.active.load(Acquire);
        for _ in running..self.workers {
            self.active.fetch_add(1, AcqRel);
            rayon::spawn(move || worker(self));
        }
    }
}

/// A worker: runs tasks as jobs appear; after `WORKER_SPINS` idle spins returns to rayon.
fn worker(pool: &'static Pool) {
    let mut idle = 0u32;
    loop {
        let (epoch, next, n) = unpack(pool.state.load(Acquire));
        if next < n {
            pool.work(epoch);
            idle = 0;
            continue;
        }
        idle += 1;
        if idle >= WORKER_SPINS {
            pool.active.fetch_sub(1, AcqRel);
            return;
        }
        std::hint::spin_loop();
    }
}

/// Closes the job on every exit, unwinding included: no new claims, then wait for the claimed
/// tasks (they use the caller's closure), then release the pool; a task's panic is raised here.
struct Finish<'a> {
    pool: &'a Pool,
    epoch: u64,
}

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        let p = self.pool;
        let mut v = p.state.load(Acquire);
        let claimed = loop {
            let (e, next, n) = unpack(v);
            if e != self.epoch || next >= n {
                break next.min(n);
            }
            let closed = (e << EPOCH_SHIFT) | ((n as u64) << IDX_BITS) | n as u64;
            match p.state.compare_exchange_weak(v, closed, AcqRel, Acquire) {
                Ok(_) => break next,
                Err(now) => v = now,
            }
        };
        let mut spins = 0u32;
        while p.done.load(Acquire) < claimed {
            spins = spins.wrapping_add(1);
            #[cfg(not(target_arch = "wasm32"))]
            if spins % 1024 == 0 {
                // A worker holding a task may have been descheduled: let it run.
                std::thread::yield_now();
            }
            std::hint::spin_loop();
        }
        // SAFETY: no task is claimed or running; the closure reference must not outlive the job.
        unsafe { *p.slot.get() = None };
        let task_panicked = p.panicked.swap(false, Acquire);
        p.busy.store(false, Release);
        if task_panicked && !std::thread::panicking() {
            panic!("a task of a parallel product panicked");
        }
    }
}

/// Runs `f(i)` for every `i < n` on the caller and the spinning workers; returns `false`
/// without running anything when the pool cannot take the job (no workers besides the caller,
/// another thread's job in progress, a job run from inside a task, or `n` over [`MAX_TASKS`]),
/// so the caller can use another path.
pub fn run(n: usize, f: &(dyn Fn(usize) + Sync)) -> bool {
    let p = pool();
    if p.workers == 0 || n > MAX_TASKS || p.busy.compare_exchange(false, true, Acquire, Relaxed).is_err() {
        return false;
    }
    // SAFETY: the reference is stored for this job only: `Finish` clears it after the last
    // claimed task has finished, before `f` can go out of scope.
    let f: &'static Task<'static> = unsafe { std::mem::transmute::<&Task<'_>, &'static Task<'static>>(f) };
    // SAFETY: this thread owns `busy` and the previous job has no claimed task left.
    unsafe { *p.slot.get() = Some(f) };
    p.done.store(0, Relaxed);
    let (last, _, _) = unpack(p.state.load(Relaxed));
    let epoch = (last + 1) & ((1 << (64 - EPOCH_SHIFT)) - 1);
    p.state.store((epoch << EPOCH_SHIFT) | n as u64, Release);
    let _finish = Finish { pool: p, epoch };
    p.wake();
    p.work(epoch);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn every_task_runs_exactly_once_across_many_jobs() {
        // Other tests may hold the pool: a refused job is run here so the counts still check.
        for n in [0usize, 1, 2, 3, 17, 64, 1000, 4097] {
            for _ in 0..50 {
                let hits: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(0)).collect();
                let f = |i: usize| {
                    hits[i].fetch_add(1, Relaxed);
                };
                if !run(n, &f) {
                    (0..n).for_each(f);
                }
                assert!(hits.iter().all(|h| h.load(Relaxed) == 1), "n = {n}");
            }
        }
    }

    #[test]
    fn concurrent_callers_and_nested_jobs_fall_back_cleanly() {
        let total = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..200 {
                        let inner = |_: usize| {
                            // A job from inside a task is refused (the pool is busy) and run here.
                            let g = |_: usize| {
                                total.fetch_add(1, Relaxed);
                            };
                            if !run(3, &g) {
                                (0..3).for_each(g);
                            }
                        };
                        if !run(8, &inner) {
                            (0..8).for_each(inner);
                        }
                    }
                });
            }
        });
        assert_eq!(total.load(Relaxed), 4 * 200 * 8 * 3);
    }

    #[test]
    fn a_panicking_task_waits_for_the_others_and_frees_the_pool() {
        let r = std::panic::catch_unwind(|| {
            let f = |i: usize| {
                if i == 5 {
                    panic!("task 5");
                }
                std::hint::black_box(i);
            };
            if !run(64, &f) {
                (0..64).for_each(f);
            }
        });
        assert!(r.is_err());
        // The pool still works afterwards.
        let hits = AtomicUsize::new(0);
        let f = |_: usize| {
            hits.fetch_add(1, Relaxed);
        };
        if !run(10, &f) {
            (0..10).for_each(f);
        }
        assert_eq!(hits.load(Relaxed), 10);
    }
}
