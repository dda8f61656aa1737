//! A persistent thread pool on `std::thread`, shared by every kernel.
//!
//! Created once, lazily, with `available_parallelism()` threads (or
//! `PEFT_NUM_THREADS`), the calling thread counted as one of them. A JS call is
//! synchronous: `parallel_for` publishes a job, the caller works on it too, and
//! it returns only when every chunk has finished. Chunks are handed out
//! dynamically, so kernels must make each chunk's result independent of which
//! thread runs it (they split on quantization-block / row boundaries); results
//! are then identical for any thread count.
//!
//! Not a general scheduler: one job at a time. A second concurrent caller (a
//! Node worker thread, or a kernel calling `parallel_for` from inside a chunk)
//! simply runs its chunks serially on its own thread.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread;

/// Inputs smaller than this (in elements) are not worth waking the pool.
pub const PARALLEL_MIN_ELEMS: usize = 1 << 18;
/// Target work per chunk (in elements) once an input is split.
pub const CHUNK_ELEMS: usize = 1 << 16;

/// A job: `n` chunks of one borrowed closure.
struct Job {
    /// Lifetime-erased pointer to the caller's closure. Only dereferenced after
    /// claiming a chunk index `< n`, and the caller does not return (so the
    /// closure stays alive) until all `n` chunks have finished.
    f: *const (dyn Fn(usize) + Sync + 'static),
    n: usize,
    next: AtomicUsize,
    finished: AtomicUsize,
    panicked: AtomicBool,
}

// SAFETY: `f` points to a `Sync` closure, so calling it from several threads is
// fine; its lifetime is guarded by the `finished` protocol described on `Job::f`.
unsafe impl Send for Job {}
unsafe impl Sync for Job {}

#[derive(Default)]
struct State {
    generation: u64,
    job: Option<Arc<Job>>,
}

struct Pool {
    n_threads: usize,
    state: Mutex<State>,
    wake: Condvar,
    done: Condvar,
    /// Held by the thread whose job is published; others run serially.
    busy: Mutex<()>,
}

static POOL: OnceLock<&'static Pool> = OnceLock::new();

fn threads_from_env() -> usize {
    let hw = thread::available_parallelism().map_or(1, |n| n.get());
    match std::env::var("PEFT_NUM_THREADS").ok().and_then(|s| s.trim().parse::<usize>().ok()) {
        Some(n) if n >= 1 => n.min(1024),
        _ => hw,
    }
}

fn pool() -> &'static Pool {
    POOL.get_or_init(|| {
        let pool: &'static Pool = Box::leak(Box::new(Pool {
            n_threads: threads_from_env(),
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            done: Condvar::new(),
            busy: Mutex::new(()),
        }));
        for i in 1..pool.n_threads {
            let spawned = thread::Builder::new().name(format!("peft-kernels-{i}")).spawn(move || worker(pool));
            if spawned.is_err() {
                break; // fewer helpers only means less speed; the caller always works too
            }
        }
        pool
    })
}

/// Threads that work on a `parallel_for` (the caller included).
pub fn num_threads() -> usize {
    pool().n_threads
}

fn worker(pool: &'static Pool) {
    let mut seen = 0u64;
    loop {
        let job = {
            let mut st = pool.state.lock().unwrap_or_else(|e| e.into_inner());
            while st.generation == seen {
                st = pool.wake.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            seen = st.generation;
            st.job.clone()
        };
        if let Some(job) = job {
            run_chunks(pool, &job);
        }
    }
}

/// Claim and run chunks until none are left.
fn run_chunks(pool: &Pool, job: &Job) {
    loop {
        let i = job.next.fetch_add(1, Ordering::Relaxed);
        if i >= job.n {
            return;
        }
        // SAFETY: `i < n` was claimed, so the caller is still waiting in
        // `parallel_for` and the closure is alive (see `Job::f`).
        let f = unsafe { &*job.f };
        if panic::catch_unwind(AssertUnwindSafe(|| f(i))).is_err() {
            job.panicked.store(true, Ordering::Relaxed);
        }
        if job.finished.fetch_add(1, Ordering::AcqRel) + 1 == job.n {
            // Lock so the waiting caller cannot miss this notification.
            let _st = pool.state.lock().unwrap_or_else(|e| e.into_inner());
            pool.done.notify_all();
        }
    }
}

/// Run `f(0) .. f(n_chunks - 1)` on the pool; returns when all have run.
/// Panics (after all chunks finished) if any chunk panicked.
pub fn parallel_for<F: Fn(usize) + Sync>(n_chunks: usize, f: F) {
    let pool = pool();
    let guard = if n_chunks > 1 && pool.n_threads > 1 { pool.busy.try_lock().ok() } else { None };
    let Some(_busy) = guard else {
        (0..n_chunks).for_each(f);
        return;
    };
    let f_ref: &(dyn Fn(usize) + Sync) = &f;
    // SAFETY: only the lifetime is erased; we wait below until no thread can call it.
    let f_static: &'static (dyn Fn(usize) + Sync) = unsafe { std::mem::transmute(f_ref) };
    let job = Arc::new(Job {
        f: f_static,
        n: n_chunks,
        next: AtomicUsize::new(0),
        finished: AtomicUsize::new(0),
        panicked: AtomicBool::new(false),
    });
    {
        let mut st = pool.state.lock().unwrap_or_else(|e| e.into_inner());
        st.generation += 1;
        st.job = Some(job.clone());
        pool.wake.notify_all();
    }
    run_chunks(pool, &job);
    let mut st = pool.state.lock().unwrap_or_else(|e| e.into_inner());
    while job.finished.load(Ordering::Acquire) < n_chunks {
        st = pool.done.wait(st).unwrap_or_else(|e| e.into_inner());
    }
    st.job = None;
    drop(st);
    if job.panicked.load(Ordering::Relaxed) {
        panic!("a parallel_for chunk panicked");
    }
}

/// Run `f(i, part)` for every part, in parallel; each part is moved to exactly
/// one call. Kernels build parts as zipped `chunks_mut` of their outputs, which
/// is how disjoint `&mut` pieces reach different threads without `unsafe`.
pub fn for_each_part<P: Send, F: Fn(usize, P) + Sync>(parts: Vec<P>, f: F) {
    if parts.len() <= 1 {
        parts.into_iter().enumerate().for_each(|(i, p)| f(i, p));
        return;
    }
    let cells: Vec<Mutex<Option<P>>> = parts.into_iter().map(|p| Mutex::new(Some(p))).collect();
    parallel_for(cells.len(), |i| {
        let part = cells[i].lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(p) = part {
            f(i, p);
        }
    });
}

/// How many `unit`-element units (blocks, rows) go in one chunk: one chunk for
/// small inputs, about `CHUNK_ELEMS` elements per chunk for large ones.
pub fn units_per_chunk(n_elems: usize, unit: usize) -> usize {
    let unit = unit.max(1);
    if n_elems < PARALLEL_MIN_ELEMS { n_elems.div_ceil(unit).max(1) } else { CHUNK_ELEMS.div_ceil(unit).max(1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_every_chunk_once() {
        let hits: Vec<AtomicUsize> = (0..1000).map(|_| AtomicUsize::new(0)).collect();
        for _ in 0..20 {
            parallel_for(hits.len(), |i| {
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
        }
        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 20));
        assert!(num_threads() >= 1);
    }

    #[test]
    fn parts_get_disjoint_mut_slices() {
        let mut out = vec![0u32; 10_000];
        let parts: Vec<(usize, &mut [u32])> = out.chunks_mut(128).enumerate().collect();
        for_each_part(parts, |_, (c, piece)| piece.iter_mut().for_each(|v| *v = c as u32));
        assert!(out.iter().enumerate().all(|(i, &v)| v == (i / 128) as u32));
    }

    #[test]
    fn nested_calls_run_serially() {
        let total = AtomicUsize::new(0);
        parallel_for(8, |_| {
            parallel_for(8, |_| {
                total.fetch_add(1, Ordering::Relaxed);
            })
        });
        assert_eq!(total.load(Ordering::Relaxed), 64);
    }

    #[test]
    fn panics_reach_the_caller() {
        let r = panic::catch_unwind(|| parallel_for(16, |i| assert!(i != 7, "chunk 7")));
        assert!(r.is_err());
        // The pool still works afterwards.
        let total = AtomicUsize::new(0);
        parallel_for(16, |_| {
            total.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(total.load(Ordering::Relaxed), 16);
    }
}
