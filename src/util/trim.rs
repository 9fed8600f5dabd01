//! Giving freed heap memory back to the OS after bursts (glibc only).
//!
//! glibc's malloc keeps freed memory in its arenas (one per shard thread) and returns only the
//! top of each heap on its own; memory freed below a live allocation stays resident. After a
//! burst (large HELLOs buffered, tens of thousands of SUBSCRIBEs, many sessions closing at once)
//! the process then stays at its peak RSS.
//!
//! Measured on the release binary, 2 shards, with `tests/interop/rss_after_bursts.py`
//! (8 × 10 MB HELLOs, then 4 sessions × 10,000 SUBSCRIBEs, every session closed, `VmRSS`
//! read): 7 MB at start, 126–131 MB idle right after. Without trimming it stays at 127–128 MB;
//! with this thread it falls to 78–93 MB within 5 s and stays there. What remains is memory
//! still in use (tables keeping their capacity after the bursts) or free memory below the
//! threshold; which of the two was not measured, and shrinking tables is separate work.
//!
//! [`spawn`] starts one thread, asleep almost always, that looks every `period` at how much memory malloc
//! holds free (`mallinfo2`: free chunks in arenas, `fordblks`) and calls `malloc_trim(0)` when it
//! exceeds `threshold`. `malloc_trim(0)` walks every arena and releases whole free pages with
//! `MADV_DONTNEED`; it locks one arena at a time, so a shard allocating meanwhile waits for at
//! most one arena's walk, and only after a burst (an idle router never reaches the threshold).

use std::time::Duration;

/// Starts the trimming thread (named `malloc-trim`); a no-op where glibc's malloc is not used.
pub fn spawn(period: Duration, threshold: usize) -> std::io::Result<()> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        std::thread::Builder::new()
            .name("malloc-trim".into())
            .spawn(move || loop {
                std::thread::sleep(period);
                let _ = trim_if_above(threshold);
            })?;
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = (period, threshold);
    Ok(())
}

/// Calls `malloc_trim(0)` if malloc holds more than `threshold` free bytes; returns the free
/// bytes it saw, or None where this is not glibc.
pub fn trim_if_above(threshold: usize) -> Option<usize> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: both are thread-safe glibc calls without arguments that point anywhere.
        let free = unsafe { libc::mallinfo2() }.fordblks;
        if free > threshold {
            // SAFETY: as above.
            unsafe { libc::malloc_trim(0) };
        }
        Some(free)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = threshold;
        None
    }
}
