//! The binary's global allocator: mimalloc (many small, short-lived allocations from
//! several threads are the executor's pattern, where glibc's malloc measured slower),
//! counting live bytes and their peak while a benchmark asks it to (a relaxed flag
//! check otherwise).
#![allow(unsafe_code)] // implementing `GlobalAlloc` is unsafe by definition

use mimalloc::MiMalloc as Inner;
use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

pub struct Counting;

static TRACKING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

fn shrank(bytes: usize) {
    // Saturating: frees of blocks allocated before tracking started.
    let _ = LIVE.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| Some(l.saturating_sub(bytes)));
}

// SAFETY: every call forwards to the inner allocator with the caller's arguments unchanged; the
// counters have no influence on the returned memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let ptr = unsafe { Inner.alloc(layout) };
        if !ptr.is_null() && TRACKING.load(Ordering::Relaxed) {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if TRACKING.load(Ordering::Relaxed) {
            shrank(layout.size());
        }
        // SAFETY: same contract as the caller's.
        unsafe { Inner.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let new = unsafe { Inner.realloc(ptr, layout, new_size) };
        if !new.is_null() && TRACKING.load(Ordering::Relaxed) {
            shrank(layout.size());
            grew(new_size);
        }
        new
    }
}

/// Runs `f` and returns its result with the peak of bytes allocated during it (above
/// what was live when it started).
pub fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LIVE.store(0, Ordering::Relaxed);
    PEAK.store(0, Ordering::Relaxed);
    TRACKING.store(true, Ordering::SeqCst);
    let out = f();
    TRACKING.store(false, Ordering::SeqCst);
    (out, PEAK.load(Ordering::Relaxed))
}

/// Keeps freed memory for ten seconds before returning it to the OS (mimalloc's default
/// is 10 ms). With the default, the committer's and the store's page buffers were
/// returned and faulted back in (zeroed by the kernel) every block: `cairn bench commit`
/// measured that page zeroing at a sixth of the incremental root time and the first
/// blocks at twice the steady-state time. One second was not enough either when blocks
/// are further apart than that (a 20,000-key block takes ~1 s to root and write): the
/// kernel's `clear_page` was then a third of the bench's samples and the 20,000-key
/// root took 144–208 ms; with ten seconds, 126–134 ms. What is kept is at most the
/// working set's peak, which the process reaches every block anyway.
///
/// Also turns transparent huge pages off for the process (and the processes it starts).
/// mimalloc asks for huge pages on its arenas; a fault on one zeroes 2 MiB on the
/// faulting thread at once, and on the builder thread those faults came in bursts at
/// the start of each block. `cairn bench preconf` at 5,000 tx/s, same binary,
/// alternating: preconfirmation p99 32.5 / 56.7 / 25.6 ms with huge pages, 15.2 / 25.5 /
/// 15.4 ms without. (Databases advise the same for latency-bound servers.)
pub fn tune() {
    // `mi_option_purge_delay` in the option enum of both mimalloc versions bundled by
    // libmimalloc-sys 0.1.49 (pinned); the Rust bindings do not export the constant.
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: sets a process-wide allocator option before any thread is started; options
    // may be set at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 10_000) };
    // SAFETY: prctl with PR_SET_THP_DISABLE reads only its integer arguments.
    let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if rc != 0 {
        tracing::debug!("could not turn transparent huge pages off: {}", std::io::Error::last_os_error());
    }
}
