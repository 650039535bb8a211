//! The accounting allocator behind every QuickJS runtime: counts live bytes, refuses
//! allocations beyond the instance's memory limit and remembers that it did (spec 30
//! §4.2), so a call is reported as `MemoryLimit` even when JS caught the
//! out-of-memory exception.

use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use rquickjs::allocator::{Allocator, RustAllocator};

/// The counters one runtime's allocator shares with its instance handle.
///
/// The allocator runs on the worker thread only; the handle reads `live` from any
/// thread for `TypeInstance::heap_bytes`, hence atomics (relaxed: each value is
/// read on its own, no ordering with other memory is needed).
#[derive(Debug, Default)]
pub(crate) struct HeapState {
    live: AtomicUsize,
    limit: AtomicUsize,
    hit: AtomicBool,
}

impl HeapState {
    /// A state with `limit` bytes allowed.
    pub(crate) fn with_limit(limit: usize) -> Arc<HeapState> {
        Arc::new(HeapState {
            live: AtomicUsize::new(0),
            limit: AtomicUsize::new(limit),
            hit: AtomicBool::new(false),
        })
    }

    /// Live bytes allocated by QuickJS.
    pub(crate) fn live_bytes(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// Sets the limit and clears the flag for the next evaluation or call.
    pub(crate) fn arm(&self, limit: usize) {
        self.limit.store(limit, Ordering::Relaxed);
        self.hit.store(false, Ordering::Relaxed);
    }

    /// True once an allocation was refused since the last [`HeapState::arm`].
    pub(crate) fn limit_hit(&self) -> bool {
        self.hit.load(Ordering::Relaxed)
    }

    /// Whether `extra` more bytes fit; records a refusal.
    fn admit(&self, extra: usize) -> bool {
        let live = self.live.load(Ordering::Relaxed);
        let limit = self.limit.load(Ordering::Relaxed);
        // Round like RustAllocator does (to 8 bytes) and count its 8-byte header, so
        // a refusal is decided on what the allocation will really cost.
        let fits = extra
            .checked_add(7 + HEADER_BYTES)
            .and_then(|cost| live.checked_add(cost & !7))
            .is_some_and(|total| total <= limit);
        if !fits {
            self.hit.store(true, Ordering::Relaxed);
        }
        fits
    }

    fn add(&self, bytes: usize) {
        self.live.fetch_add(bytes, Ordering::Relaxed);
    }

    fn sub(&self, bytes: usize) {
        self.live.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// The header RustAllocator puts before each block.
const HEADER_BYTES: usize = 8;

/// Wraps rquickjs' `RustAllocator` with the accounting of [`HeapState`].
pub(crate) struct AccountingAllocator {
    state: Arc<HeapState>,
}

impl AccountingAllocator {
    pub(crate) fn new(state: Arc<HeapState>) -> AccountingAllocator {
        AccountingAllocator { state }
    }

    /// What a block costs: its usable size plus RustAllocator's header.
    #[allow(unsafe_code)]
    fn counted(&self, block: *mut u8) -> usize {
        // SAFETY: `block` is non-null and was returned by RustAllocator, just now or
        // earlier for this runtime (QuickJS only hands back its own blocks);
        // `usable_size` reads the header in front of it.
        let size = unsafe { RustAllocator::usable_size(block) };
        size + HEADER_BYTES
    }
}

// The one `unsafe impl` of the crate: rquickjs declares its allocator trait unsafe
// because QuickJS trusts the pointers it returns.
#[allow(unsafe_code)]
// SAFETY: every block comes from `RustAllocator` (which upholds the trait's contract:
// null or a live region of at least `size` bytes aligned to 8), and every pointer we
// are handed back goes to the same `RustAllocator`. Sizes reach `RustAllocator` only
// after `admit` accepted them, so they are far below the overflow points of its
// size arithmetic (the limit is at most a few GiB). A null `ptr` in `realloc`, which
// `RustAllocator` does not handle, becomes a plain `alloc`; `realloc` to 0 bytes
// frees. On refusal the original block stays valid, as `realloc` requires.
unsafe impl Allocator for AccountingAllocator {
    fn alloc(&mut self, size: usize) -> *mut u8 {
        if !self.state.admit(size) {
            return ptr::null_mut();
        }
        let block = RustAllocator.alloc(size);
        if !block.is_null() {
            self.state.add(self.counted(block));
        }
        block
    }

    fn calloc(&mut self, count: usize, size: usize) -> *mut u8 {
        let Some(total) = count.checked_mul(size) else {
            self.state.hit.store(true, Ordering::Relaxed);
            return ptr::null_mut();
        };
        if total == 0 || !self.state.admit(total) {
            return ptr::null_mut();
        }
        let block = RustAllocator.calloc(count, size);
        if !block.is_null() {
            self.state.add(self.counted(block));
        }
        block
    }

    unsafe fn dealloc(&mut self, ptr: *mut u8) {
        if ptr.is_null() {
            return;
        }
        self.state.sub(self.counted(ptr));
        // SAFETY: forwarded contract: `ptr` came from this allocator.
        unsafe { RustAllocator.dealloc(ptr) }
    }

    unsafe fn realloc(&mut self, ptr: *mut u8, new_size: usize) -> *mut u8 {
        if ptr.is_null() {
            return self.alloc(new_size);
        }
        if new_size == 0 {
            // SAFETY: forwarded contract.
            unsafe { self.dealloc(ptr) };
            return ptr::null_mut();
        }
        let old = self.counted(ptr);
        let grows_by = new_size.saturating_sub(old.saturating_sub(HEADER_BYTES));
        if grows_by > 0 && !self.state.admit(grows_by) {
            return ptr::null_mut();
        }
        // SAFETY: forwarded contract: `ptr` came from this allocator.
        let block = unsafe { RustAllocator.realloc(ptr, new_size) };
        if !block.is_null() {
            self.state.sub(old);
            self.state.add(self.counted(block));
        }
        block
    }

    unsafe fn usable_size(ptr: *mut u8) -> usize {
        // SAFETY: forwarded contract.
        unsafe { RustAllocator::usable_size(ptr) }
    }
}
