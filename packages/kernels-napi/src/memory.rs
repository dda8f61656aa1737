//! Native memory: 64-byte aligned, zeroed allocations owned by Rust.
//!
//! Two users:
//! - the JS API (`alloc` / `free` / `allocatedBytes` in `binding_gemm.rs`): each
//!   allocation is registered here under its address with a unique id, so `free`
//!   can refuse memory it did not hand out (EINVAL) and a GC finalizer that runs
//!   after an explicit `free` (or after the address was reused by a later
//!   allocation) releases nothing;
//! - kernels that need aligned scratch (GEMM packing buffers): [`AlignedBuf`].
//!
//! What this is not: a pool or an arena. Every allocation goes to `std::alloc`.

use std::alloc::{self, Layout};
use std::collections::HashMap;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::error::{Error, Result};

/// Alignment of every allocation (a cache line; also an AVX-512 vector).
pub const ALIGN: usize = 64;

/// The block behind a buffer of `bytes`: malloc's own alignment, ALIGN bytes of slack to align within.
/// Not posix_memalign: glibc's memalign carves a fresh block beside a freed one of the same size
/// instead of reusing it, so every step's activations would land on new pages (see keep_freed_memory).
fn layout(bytes: usize) -> Result<Layout> {
    bytes
        .checked_add(ALIGN)
        .and_then(|n| Layout::from_size_align(n, 16).ok())
        .ok_or_else(|| Error::invalid("bytes", format!("{bytes} bytes cannot be allocated")))
}

// ------------------------------------------------------------------ JS allocations

struct Entry {
    id: u64,
    bytes: usize,
    /// The block's start (the buffer starts at the first ALIGN boundary in it).
    base: usize,
}

static LIVE: Mutex<Option<HashMap<usize, Entry>>> = Mutex::new(None);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

fn live() -> MutexGuard<'static, Option<HashMap<usize, Entry>>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// A registered allocation: its address, length and id (the GC finalizer's hint).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allocation {
    pub ptr: NonNull<u8>,
    pub bytes: usize,
    pub id: u64,
}

/// Allocate `bytes` (>= 1) zeroed bytes, 64-byte aligned, and register them.
/// glibc gives large freed blocks back to the OS (munmap, or trimming the heap top) and hands out
/// fresh pages on the next allocation. On VMs a page fault costs tens of microseconds, so training,
/// which frees and reallocates the same activation sizes every step, spent half its time faulting in
/// zero pages (measured: 27 ms to allocate and zero 3 MiB fresh, 0.4 ms reused). Keep blocks up to
/// glibc's 32 MiB mmap ceiling on the heap and never trim it; the peak stays what the run needs.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    unsafe extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    const M_TRIM_THRESHOLD: i32 = -1;
    const M_MMAP_THRESHOLD: i32 = -3;
    // SAFETY: mallopt only changes malloc's tuning parameters; both values are in range.
    unsafe {
        mallopt(M_MMAP_THRESHOLD, 32 << 20);
        mallopt(M_TRIM_THRESHOLD, i32::MAX);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

static TUNED: std::sync::Once = std::sync::Once::new();

pub fn alloc(bytes: usize) -> Result<Allocation> {
    if bytes == 0 {
        return Err(Error::invalid("bytes", "must be at least 1"));
    }
    TUNED.call_once(keep_freed_memory);
    let lay = layout(bytes)?;
    // SAFETY: `lay` has a non-zero size.
    let base = unsafe { alloc::alloc(lay) };
    if base.is_null() {
        return Err(Error::invalid("bytes", format!("out of memory allocating {bytes} bytes")));
    }
    let offset = base.align_offset(ALIGN);
    // SAFETY: offset < ALIGN and the block holds bytes + ALIGN bytes; zeroed as the contract says.
    let ptr = unsafe {
        let p = base.add(offset);
        std::ptr::write_bytes(p, 0, bytes);
        NonNull::new_unchecked(p)
    };
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    live().get_or_insert_with(HashMap::new).insert(ptr.as_ptr() as usize, Entry { id, bytes, base: base as usize });
    ALLOCATED.fetch_add(bytes, Ordering::Relaxed);
    Ok(Allocation { ptr, bytes, id })
}

/// The live allocation at `addr`, if `alloc` handed it out and it is not yet released.
pub fn lookup(addr: usize) -> Option<Allocation> {
    let guard = live();
    let e = guard.as_ref()?.get(&addr)?;
    Some(Allocation { ptr: NonNull::new(addr as *mut u8)?, bytes: e.bytes, id: e.id })
}

/// Free the allocation at `addr` if it is still the one with `id`; returns the
/// bytes freed (0 if it was already released: a second `free`, or the finalizer
/// of a buffer that `free` released earlier, whose address may since be reused).
pub fn release(addr: usize, id: u64) -> usize {
    let entry = {
        let mut guard = live();
        let Some(map) = guard.as_mut() else { return 0 };
        match map.get(&addr) {
            Some(e) if e.id == id => map.remove(&addr),
            _ => None,
        }
    };
    let Some(Entry { bytes, base, .. }) = entry else { return 0 };
    // The layout was valid when allocated, so it still is.
    if let Ok(lay) = layout(bytes) {
        // SAFETY: `base` came from `alloc` with this layout and was just unregistered,
        // so no one else frees it.
        unsafe { alloc::dealloc(base as *mut u8, lay) };
    }
    ALLOCATED.fetch_sub(bytes, Ordering::Relaxed);
    bytes
}

/// Bytes currently allocated through [`alloc`] and not released.
pub fn allocated_bytes() -> usize {
    ALLOCATED.load(Ordering::Relaxed)
}

// ------------------------------------------------------------------ kernel scratch

/// A growable, 64-byte aligned f32 buffer for kernel scratch (GEMM packing).
/// Not zeroed on growth beyond what `alloc_zeroed` gives; users overwrite what they read.
pub struct AlignedBuf {
    ptr: NonNull<f32>,
    cap: usize,
}

// SAFETY: the buffer owns its memory exclusively (like a Vec<f32>).
unsafe impl Send for AlignedBuf {}

impl AlignedBuf {
    pub const fn new() -> AlignedBuf {
        AlignedBuf { ptr: NonNull::dangling(), cap: 0 }
    }

    /// A slice of at least `len` floats (contents unspecified but initialized).
    pub fn get(&mut self, len: usize) -> &mut [f32] {
        if len > self.cap {
            self.grow(len);
        }
        // SAFETY: `ptr` holds `cap >= len` initialized (zeroed or written) floats.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), len) }
    }

    fn grow(&mut self, len: usize) {
        self.free();
        let cap = len.next_power_of_two();
        let lay = Layout::from_size_align(cap * 4, ALIGN).expect("scratch size overflows");
        // SAFETY: non-zero size; zeroed memory is valid f32.
        let p = unsafe { alloc::alloc_zeroed(lay) };
        self.ptr = NonNull::new(p.cast()).unwrap_or_else(|| alloc::handle_alloc_error(lay));
        self.cap = cap;
    }

    fn free(&mut self) {
        if self.cap > 0 {
            let lay = Layout::from_size_align(self.cap * 4, ALIGN).expect("valid when allocated");
            // SAFETY: allocated in `grow` with this layout.
            unsafe { alloc::dealloc(self.ptr.as_ptr().cast(), lay) };
            self.cap = 0;
            self.ptr = NonNull::dangling();
        }
    }
}

impl Default for AlignedBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        self.free();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_is_aligned_zeroed_and_counted() {
        let before = allocated_bytes();
        let a = alloc(1000).unwrap();
        assert_eq!(a.ptr.as_ptr() as usize % ALIGN, 0);
        // SAFETY: 1000 bytes were just allocated at `a.ptr`.
        let bytes = unsafe { std::slice::from_raw_parts(a.ptr.as_ptr(), 1000) };
        assert!(bytes.iter().all(|&b| b == 0));
        assert!(allocated_bytes() >= before + 1000);
        assert_eq!(lookup(a.ptr.as_ptr() as usize), Some(a));
        assert_eq!(release(a.ptr.as_ptr() as usize, a.id), 1000);
        assert_eq!(lookup(a.ptr.as_ptr() as usize), None);
        assert_eq!(release(a.ptr.as_ptr() as usize, a.id), 0, "second release is a no-op");
        assert_eq!(alloc(0).unwrap_err().code(), "EINVAL");
    }

    #[test]
    fn stale_id_does_not_free_a_reused_address() {
        // A finalizer of a freed buffer carries the old id: it must not free the new
        // allocation that got the same address.
        let a = alloc(4096).unwrap();
        let addr = a.ptr.as_ptr() as usize;
        release(addr, a.id);
        let b = alloc(4096).unwrap();
        assert_eq!(release(b.ptr.as_ptr() as usize, a.id), 0);
        assert!(lookup(b.ptr.as_ptr() as usize).is_some());
        assert_eq!(release(b.ptr.as_ptr() as usize, b.id), 4096);
    }

    #[test]
    fn many_allocations_return_to_the_start_count() {
        let before = allocated_bytes();
        let all: Vec<_> = (1..200).map(|i| alloc(i * 37).unwrap()).collect();
        assert!(all.iter().all(|a| (a.ptr.as_ptr() as usize).is_multiple_of(ALIGN)));
        for a in &all {
            release(a.ptr.as_ptr() as usize, a.id);
        }
        // Other tests allocate concurrently, but each releases what it took.
        assert!(allocated_bytes() <= before + 8192);
    }

    #[test]
    fn aligned_buf_grows_and_stays_aligned() {
        let mut b = AlignedBuf::new();
        assert_eq!(b.get(0).len(), 0);
        for n in [1, 17, 1000, 100_000, 5] {
            let s = b.get(n);
            assert_eq!(s.len(), n);
            assert_eq!(s.as_ptr() as usize % ALIGN, 0);
            s.fill(1.0);
        }
    }
}
