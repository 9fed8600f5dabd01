//! `pingpong`: the latency floor of this host, for `bench/run.sh` to set router latencies
//! against. A client thread pinned to one CPU sends a 64-byte message over loopback TCP to a
//! server thread pinned to another, which sends it back; the client (blocking, like loadgen's
//! sockets when idle) times each round trip. Two servers:
//!
//! - `blocking`: the server blocks in `read` (the kernel wakes it per message), as a router
//!   that parks when idle;
//! - `busy`: the server polls a non-blocking socket in a loop, as a router that spins.
//!
//! Prints one line per server with the round trip's p50/p90/p99 in microseconds, and with
//! `--json FILE` writes them as `{"blocking": {"p50": …}, "busy": {…}}`.
//!
//! ```sh
//! pingpong --server-cpu 0 --client-cpu 1 --count 20000 --size 64
//! ```

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

struct Args {
    server_cpu: usize,
    client_cpu: usize,
    count: usize,
    size: usize,
    json: Option<String>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        server_cpu: 0,
        client_cpu: 1,
        count: 20_000,
        size: 64,
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or(format!("{k} needs a value"));
        let num = |s: String| s.parse::<usize>().map_err(|e| format!("{k}: {e}"));
        match k.as_str() {
            "--server-cpu" => a.server_cpu = num(v()?)?,
            "--client-cpu" => a.client_cpu = num(v()?)?,
            "--count" => a.count = num(v()?)?.clamp(100, 10_000_000),
            "--size" => a.size = num(v()?)?.clamp(1, 1 << 20),
            "--json" => a.json = Some(v()?),
            "-h" | "--help" => {
                return Err(
                    "usage: pingpong [--server-cpu N] [--client-cpu N] [--count N] \
                            [--size BYTES] [--json FILE]"
                        .into(),
                )
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

fn pin(cpu: usize) {
    if let Some(id) = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.id == cpu)
    {
        core_affinity::set_for_current(id);
    }
}

/// Echoes fixed-size messages until the client closes; `busy`: poll instead of blocking.
fn serve(listener: TcpListener, cpu: usize, size: usize, busy: bool) -> std::io::Result<()> {
    pin(cpu);
    let (mut s, _) = listener.accept()?;
    s.set_nodelay(true)?;
    s.set_nonblocking(busy)?;
    let mut buf = vec![0u8; size];
    loop {
        let mut got = 0;
        while got < size {
            match s.read(&mut buf[got..]) {
                Ok(0) => return Ok(()),
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => std::hint::spin_loop(),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let mut sent = 0;
        while sent < size {
            match s.write(&buf[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => std::hint::spin_loop(),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Round trips against one server kind: (p50, p90, p99) in microseconds.
fn measure(a: &Args, busy: bool) -> std::io::Result<(f64, f64, f64)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (cpu, size) = (a.server_cpu, a.size);
    let server = std::thread::spawn(move || serve(listener, cpu, size, busy));
    pin(a.client_cpu);
    let mut c = TcpStream::connect(addr)?;
    c.set_nodelay(true)?;
    c.set_read_timeout(Some(Duration::from_secs(5)))?;
    let msg = vec![0x5au8; a.size];
    let mut back = vec![0u8; a.size];
    let mut rtts = Vec::with_capacity(a.count);
    let warmup = (a.count / 10).max(100);
    for i in 0..warmup + a.count {
        let t = Instant::now();
        c.write_all(&msg)?;
        c.read_exact(&mut back)?;
        if i >= warmup {
            rtts.push(t.elapsed().as_nanos() as u64);
        }
    }
    drop(c);
    server
        .join()
        .map_err(|_| std::io::Error::other("server thread panicked"))??;
    rtts.sort_unstable();
    let q = |p: f64| rtts[((rtts.len() - 1) as f64 * p) as usize] as f64 / 1000.0;
    Ok((q(0.50), q(0.90), q(0.99)))
}

fn main() {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("pingpong: {e}");
            std::process::exit(2);
        }
    };
    let mut json = Vec::new();
    for (name, busy) in [("blocking", false), ("busy", true)] {
        match measure(&a, busy) {
            Ok((p50, p90, p99)) => {
                println!(
                    "{name:<8} server: round trip p50 {p50:.1} µs  p90 {p90:.1} µs  p99 {p99:.1} µs \
                     ({} × {} B, server CPU {}, client CPU {})",
                    a.count, a.size, a.server_cpu, a.client_cpu
                );
                json.push(format!(
                    "\"{name}\": {{\"p50\": {p50:.2}, \"p90\": {p90:.2}, \"p99\": {p99:.2}}}"
                ));
            }
            Err(e) => {
                eprintln!("pingpong: {name}: {e}");
                std::process::exit(1);
            }
        }
    }
    if let Some(path) = a.json {
        if let Err(e) = std::fs::write(&path, format!("{{{}}}\n", json.join(", "))) {
            eprintln!("pingpong: {path}: {e}");
            std::process::exit(1);
        }
    }
}
