//! `pingpong`: the latency floor of this host, for `bench/run.sh` to set router latencies
//! against. A client thread pinned to one CPU sends a 64-byte message over loopback TCP to a
//! server thread pinned to another, which sends it back; the client (blocking, like loadgen's
//! sockets when idle) times each round trip. Two servers:
//!
//! - `blocking`: the server blocks in `read` (the kernel wakes it per message), as a router
//!   that parks when idle;
//! - `busy`: the server polls a non-blocking socket in a loop, as a router that spins.
//!
//! With `--pace-us N` the client sleeps N µs between round trips, so both ends are idle when
//! a message arrives (as in unloaded pub/sub: one event per millisecond), which on a virtual
//! machine costs far more than back-to-back round trips.
//!
//! Then both servers again with one round trip per millisecond (`blocking_paced`,
//! `busy_paced`): the floor for unloaded pub/sub, whose events are that far apart.
//!
//! A last line: one-way latency to a reader that was blocked and idle for a millisecond (a
//! sender on the server CPU writes once per millisecond): the last hop of unloaded pub/sub.
//!
//! Prints one line per server with the round trip's p50/p90/p99 in microseconds, and with
//! `--json FILE` writes them as `{"blocking": {"p50": …}, "busy": {…}, "blocking_paced": {…},
//! "busy_paced": {…}, "idle_oneway": {…}}`.
//!
//! ```sh
//! pingpong --server-cpu 0 --client-cpu 1 --count 20000 --size 64
//! ```

#[path = "common.rs"]
mod common;
use common::{flag_num, flag_value, pin, quantiles, write_all_spinning};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

struct Args {
    server_cpu: usize,
    client_cpu: usize,
    count: usize,
    size: usize,
    /// Microseconds the client sleeps between round trips (0: back to back).
    pace_us: u64,
    /// Client only, against this echo server (e.g. `glommio-echo`).
    connect: Option<String>,
    json: Option<String>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        server_cpu: 0,
        client_cpu: 1,
        count: 20_000,
        size: 64,
        pace_us: 0,
        connect: None,
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        match k.as_str() {
            "--server-cpu" => a.server_cpu = flag_num(&mut it, &k)?,
            "--client-cpu" => a.client_cpu = flag_num(&mut it, &k)?,
            "--count" => a.count = flag_num(&mut it, &k)?.clamp(100, 10_000_000),
            "--size" => a.size = flag_num(&mut it, &k)?.clamp(1, 1 << 20),
            "--pace-us" => a.pace_us = flag_num(&mut it, &k)?.min(1_000_000) as u64,
            "--connect" => a.connect = Some(flag_value(&mut it, &k)?),
            "--json" => a.json = Some(flag_value(&mut it, &k)?),
            "-h" | "--help" => {
                return Err(
                    "usage: pingpong [--server-cpu N] [--client-cpu N] [--count N] \
                            [--size BYTES] [--pace-us US] [--connect ADDR] [--json FILE]"
                        .into(),
                )
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
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
        write_all_spinning(&mut s, &buf)?;
    }
}

/// Round trips against one server kind: (p50, p90, p99) in microseconds.
fn measure(a: &Args, busy: bool) -> std::io::Result<(f64, f64, f64)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (cpu, size) = (a.server_cpu, a.size);
    let server = std::thread::spawn(move || serve(listener, cpu, size, busy));
    let r = client(a, &addr.to_string());
    server
        .join()
        .map_err(|_| std::io::Error::other("server thread panicked"))??;
    r
}

/// The client side: round trips to the echo server at `addr`, closing the connection after.
fn client(a: &Args, addr: &str) -> std::io::Result<(f64, f64, f64)> {
    pin(a.client_cpu);
    let mut c = TcpStream::connect(addr)?;
    c.set_nodelay(true)?;
    c.set_read_timeout(Some(Duration::from_secs(5)))?;
    let msg = vec![0x5au8; a.size];
    let mut back = vec![0u8; a.size];
    let mut rtts = Vec::with_capacity(a.count);
    let warmup = (a.count / 10).max(100);
    for i in 0..warmup + a.count {
        if a.pace_us > 0 {
            std::thread::sleep(Duration::from_micros(a.pace_us));
        }
        let t = Instant::now();
        c.write_all(&msg)?;
        c.read_exact(&mut back)?;
        if i >= warmup {
            rtts.push(t.elapsed().as_nanos() as u64);
        }
    }
    drop(c);
    Ok(quantiles(rtts))
}

/// One-way latency to a reader that has been blocked and idle for a millisecond (the last hop
/// of unloaded pub/sub): a sender on the server CPU writes a message every millisecond, the
/// client reads it and stamps its arrival (`Instant` is one clock for the process).
fn idle_oneway(a: &Args) -> std::io::Result<(f64, f64, f64)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (cpu, size, n) = (a.server_cpu, a.size, a.count.min(5000) + 100);
    let sender = std::thread::spawn(move || -> std::io::Result<Vec<Instant>> {
        pin(cpu);
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let msg = vec![0x5au8; size];
        let mut sent = Vec::with_capacity(n);
        for _ in 0..n {
            std::thread::sleep(Duration::from_millis(1));
            sent.push(Instant::now());
            s.write_all(&msg)?;
        }
        Ok(sent)
    });
    pin(a.client_cpu);
    let mut c = TcpStream::connect(addr)?;
    c.set_nodelay(true)?;
    c.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = vec![0u8; a.size];
    let mut arrived = Vec::with_capacity(n);
    for _ in 0..n {
        c.read_exact(&mut buf)?;
        arrived.push(Instant::now());
    }
    let sent = sender
        .join()
        .map_err(|_| std::io::Error::other("sender thread panicked"))??;
    let d: Vec<u64> = sent
        .iter()
        .zip(&arrived)
        .skip(100)
        .map(|(s, r)| r.saturating_duration_since(*s).as_nanos() as u64)
        .collect();
    Ok(quantiles(d))
}

fn main() {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("pingpong: {e}");
            std::process::exit(2);
        }
    };
    if let Some(addr) = &a.connect {
        for pace in [0, 1000] {
            let paced = Args {
                pace_us: pace,
                connect: None,
                json: None,
                ..a
            };
            match client(&paced, addr) {
                Ok((p50, p90, p99)) => println!(
                    "{addr} (paced {pace} µs): round trip p50 {p50:.1} µs  p90 {p90:.1} µs  p99 {p99:.1} µs"
                ),
                Err(e) => {
                    eprintln!("pingpong: {addr}: {e}");
                    std::process::exit(1);
                }
            }
        }
        return;
    }
    let mut json = Vec::new();
    for (name, busy, paced) in [
        ("blocking", false, false),
        ("busy", true, false),
        ("blocking_paced", false, true),
        ("busy_paced", true, true),
    ] {
        let run = Args {
            pace_us: if paced { 1000 } else { a.pace_us },
            connect: None,
            json: None,
            ..a
        };
        match measure(&run, busy) {
            Ok((p50, p90, p99)) => {
                let label = match (busy, paced) {
                    (false, false) => "blocking server",
                    (true, false) => "busy     server",
                    (false, true) => "blocking server, 1 round trip/ms",
                    (true, true) => "busy     server, 1 round trip/ms",
                };
                println!(
                    "{label}: round trip p50 {p50:.1} µs  p90 {p90:.1} µs  p99 {p99:.1} µs \
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
    match idle_oneway(&a) {
        Ok((p50, p90, p99)) => {
            println!(
                "one way to an idle blocked reader (1 message/ms): p50 {p50:.1} µs  p90 {p90:.1} µs  p99 {p99:.1} µs"
            );
            json.push(format!(
                "\"idle_oneway\": {{\"p50\": {p50:.2}, \"p90\": {p90:.2}, \"p99\": {p99:.2}}}"
            ));
        }
        Err(e) => {
            eprintln!("pingpong: idle one-way: {e}");
            std::process::exit(1);
        }
    }
    if let Some(path) = a.json {
        if let Err(e) = std::fs::write(&path, format!("{{{}}}\n", json.join(", "))) {
            eprintln!("pingpong: {path}: {e}");
            std::process::exit(1);
        }
    }
}
