//! What a `no_std` component needs from its language runtime: an
//! allocator, a panic handler, and the canonical ABI's `cabi_realloc`
//! (wasi-libc provides it to `std` guests; without `std` the guest must).

#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOC: crate::alloc::PolicyAlloc = crate::alloc::PolicyAlloc;

/// A panic traps; the gateway then fails the request closed.
#[cfg(target_arch = "wasm32")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}

/// The canonical ABI allocation entry point.
///
/// # Safety
/// Called by the host with the ABI's contract: `old` was returned by an
/// earlier call with `old_len` and `align`, or `old_len` is 0.
#[cfg(target_arch = "wasm32")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cabi_realloc(old: *mut u8, old_len: usize, align: usize, new_len: usize) -> *mut u8 {
    use crate::__alloc::alloc::{Layout, alloc, realloc};
    if new_len == 0 {
        return align as *mut u8;
    }
    // SAFETY: the ABI guarantees a valid power-of-two alignment and, for a
    // reallocation, the layout of the original allocation.
    let ptr = unsafe {
        if old_len == 0 {
            alloc(Layout::from_size_align_unchecked(new_len, align))
        } else {
            realloc(old, Layout::from_size_align_unchecked(old_len, align), new_len)
        }
    };
    if ptr.is_null() {
        core::arch::wasm32::unreachable();
    }
    ptr
}

// `memcmp`, `memcpy` and friends: without `std` nothing links them, and
// string comparisons need them. wasi-libc's versions are pure functions
// (no WASI imports), shipped with the target's self-contained libraries.
#[cfg(target_arch = "wasm32")]
#[link(name = "c")]
unsafe extern "C" {}
