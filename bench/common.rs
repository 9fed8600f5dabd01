//! What the small bench programs (`pingpong`, `probe`) share: CPU pinning and quantiles.

/// Pins the calling thread to `cpu` (if the machine has it).
pub fn pin(cpu: usize) {
    // Not through `get_core_ids`: it lists only the CPUs this thread may already run on, and a
    // thread inherits its parent's pinning, so a server thread started after the client thread
    // pinned itself would silently stay on the client's CPU.
    if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
        eprintln!("could not pin to CPU {cpu}");
    }
}

/// p50, p90, p99 of nanosecond samples, in microseconds (`samples` must not be empty).
pub fn quantiles(mut samples: Vec<u64>) -> (f64, f64, f64) {
    samples.sort_unstable();
    let q = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize] as f64 / 1000.0;
    (q(0.5), q(0.9), q(0.99))
}

/// Writes all of `buf` to a socket, blocking or not: a full socket buffer is waited out by
/// spinning (the peers here always read, and the messages are small).
pub fn write_all_spinning(s: &mut std::net::TcpStream, mut buf: &[u8]) -> std::io::Result<()> {
    use std::io::{ErrorKind, Write};
    while !buf.is_empty() {
        match s.write(buf) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                std::hint::spin_loop()
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The value after flag `k` in `--key value` arguments.
pub fn flag_value(args: &mut impl Iterator<Item = String>, k: &str) -> Result<String, String> {
    args.next().ok_or(format!("{k} needs a value"))
}

/// The value after flag `k`, as a number.
pub fn flag_num(args: &mut impl Iterator<Item = String>, k: &str) -> Result<usize, String> {
    flag_value(args, k)?
        .parse::<usize>()
        .map_err(|e| format!("{k}: {e}"))
}
