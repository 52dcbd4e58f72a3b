//! glibc's allocator, tuned for a long-running daemon whose work comes in bursts.
//!
//! weftd's memory is mostly not live data but what glibc keeps after transient peaks: a
//! resync's lists of every row and its kernel snapshot of every namespace, a Watch stream's
//! initial list, a burst of connects (heaptrack: 23 MB live at 4,000 endpoints while VmRSS
//! was 3-5 times that; BENCHMARKS.md "Issue 14: memory"). glibc gives each thread that
//! allocates under contention its own arena (up to 8 per core) and returns a freed page to the
//! kernel only from the top of an arena, so the free space those peaks leave between live
//! blocks stays resident. Two remedies, both standard for glibc daemons:
//!
//! - [`tune`] at start-up, before any thread exists: at most two arenas, free space at an
//!   arena's top returned once it reaches 128 KiB, and blocks of 64 KiB or more in their own
//!   mappings (freed straight back to the kernel). An operator's `MALLOC_ARENA_MAX`,
//!   `MALLOC_TRIM_THRESHOLD_` or `MALLOC_MMAP_THRESHOLD_` wins over each default (glibc read
//!   it before `main`).
//! - [`trim`] after a burst is over (each bulk check): `malloc_trim(0)` walks every arena and
//!   hands the whole free pages *inside* it back too (`MADV_DONTNEED`), which no threshold
//!   reaches. A walk costs a few milliseconds; it runs once per resync period.
//!
//! Measured with `weft-bench idle` (BENCHMARKS.md). Elsewhere than Linux with glibc (musl) both
//! are no-ops. The only `unsafe` here are the two FFI calls, whose arguments are plain integers.

/// Sets weftd's allocator defaults (see the module doc); call first thing in `main`, before
/// the async runtime starts its threads.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let set = |env: &str, param: libc::c_int, value: libc::c_int| {
            if std::env::var_os(env).is_none() {
                // SAFETY: mallopt takes two integers and touches only glibc's own settings.
                #[allow(unsafe_code)]
                let ok = unsafe { libc::mallopt(param, value) };
                if ok != 1 {
                    eprintln!("weftd: mallopt({param}, {value}) refused; keeping glibc's default");
                }
            }
        };
        set("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, 2);
        set("MALLOC_TRIM_THRESHOLD_", libc::M_TRIM_THRESHOLD, 128 * 1024);
        set("MALLOC_MMAP_THRESHOLD_", libc::M_MMAP_THRESHOLD, 64 * 1024);
    }
}

/// Returns the free pages of every arena to the kernel (see the module doc). Blocking for a
/// few milliseconds; cheap enough after a pass that took far longer.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim takes the padding to keep and only releases free memory.
        #[allow(unsafe_code)]
        unsafe {
            libc::malloc_trim(0);
        }
    }
}
