//! The allocator: a bump arena in the component's own zero-initialised
//! data, then dlmalloc. The gateway gives every call a fresh instance, so a
//! policy's allocations die with the call anyway; what matters is that a
//! typical call never grows linear memory, because a grown memory costs
//! the host two `mprotect`s (with TLB flushes) per call when the instance
//! slot is reused: about a third of a decision's time.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Arena size: a policy's input, answer and working strings fit easily.
const ARENA_BYTES: usize = 96 << 10;

#[repr(C, align(16))]
struct Arena(UnsafeCell<[u8; ARENA_BYTES]>);

// SAFETY: components are single-threaded; the cell is only reached through
// the allocator below.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena(UnsafeCell::new([0; ARENA_BYTES]));
/// Offset of the first free arena byte.
static NEXT: AtomicUsize = AtomicUsize::new(0);

pub struct PolicyAlloc;

fn base() -> usize {
    ARENA.0.get() as usize
}

fn in_arena(ptr: *mut u8) -> bool {
    (base()..base() + ARENA_BYTES).contains(&(ptr as usize))
}

/// Is `ptr` (of `size` bytes) the last arena allocation?
fn is_last(ptr: *mut u8, size: usize) -> bool {
    ptr as usize + size == base() + NEXT.load(Relaxed)
}

// SAFETY: arena blocks are disjoint, aligned and inside the arena; the rest
// is dlmalloc's.
unsafe impl GlobalAlloc for PolicyAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let start = (base() + NEXT.load(Relaxed)).next_multiple_of(layout.align());
        match start.checked_add(layout.size()) {
            Some(end) if end <= base() + ARENA_BYTES => {
                NEXT.store(end - base(), Relaxed);
                start as *mut u8
            }
            // SAFETY: forwarded with the caller's guarantees.
            _ => unsafe { dlmalloc::GlobalDlmalloc.alloc(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if in_arena(ptr) {
            // Only the last block comes back (a stack discipline suffices:
            // the instance is discarded after the call).
            if is_last(ptr, layout.size()) {
                NEXT.store(ptr as usize - base(), Relaxed);
            }
        } else {
            // SAFETY: `ptr` came from dlmalloc with this layout.
            unsafe { dlmalloc::GlobalDlmalloc.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Grow or shrink the last arena block in place.
        if in_arena(ptr) && is_last(ptr, layout.size()) && ptr as usize + new_size <= base() + ARENA_BYTES {
            NEXT.store(ptr as usize + new_size - base(), Relaxed);
            return ptr;
        }
        if !in_arena(ptr) {
            // SAFETY: `ptr` came from dlmalloc with this layout.
            return unsafe { dlmalloc::GlobalDlmalloc.realloc(ptr, layout, new_size) };
        }
        // SAFETY: `new_size` with the old alignment is a valid layout (the
        // caller's contract), and both blocks are live for the copy.
        unsafe {
            let new = self.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
            if !new.is_null() {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}
