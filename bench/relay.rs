//! `relay`: what forwarding one call costs a plain server on this host with no routing at all,
//! a reference for the router's CPU per call. One thread pinned to the server CPU runs an epoll
//! loop that forwards each caller's requests to one callee connection and each reply back to
//! its caller: the bytes of a routed call (request in, request out, reply in, reply out) and
//! nothing else. Callers (blocking, each keeping `--outstanding` requests in flight) and the
//! callee (echoes what it reads, in one write) run on the client CPU, as loadgen's `rpc` does.
//!
//! The server thread's CPU time (user and system, `getrusage(RUSAGE_THREAD)`) divided by the
//! calls it forwarded is what such a server spends per call in that shape. With one call in
//! flight per caller nothing batches: every call costs two receives and two sends of one small
//! message and the wake-ups of both peers; with many in flight one system call carries many
//! calls. It shows how much of a router's CPU per unbatched call is the kernel's
//! (`bench/FINDINGS.md`, "What an unbatched call costs"). Its blocking client threads, not the
//! relay, limit its batched rate.
//!
//! ```sh
//! relay --callers 4 --outstanding 1 --calls 100000 [--server-cpu 0 --client-cpu 1] [--json FILE]
//! ```

#[path = "common.rs"]
mod common;
use common::{flag_num, flag_value, pin, quantiles, write_all_spinning};
use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

#[derive(Clone, Copy)]
struct Args {
    server_cpu: usize,
    client_cpu: usize,
    callers: usize,
    outstanding: usize,
    calls: usize,
    size: usize,
}

fn parse() -> Result<(Args, Option<String>), String> {
    let mut a = Args {
        server_cpu: 0,
        client_cpu: 1,
        callers: 4,
        outstanding: 1,
        calls: 100_000,
        size: 64,
    };
    let mut json = None;
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        match k.as_str() {
            "--server-cpu" => a.server_cpu = flag_num(&mut it, &k)?,
            "--client-cpu" => a.client_cpu = flag_num(&mut it, &k)?,
            "--callers" => a.callers = flag_num(&mut it, &k)?.clamp(1, 1024),
            "--outstanding" => a.outstanding = flag_num(&mut it, &k)?.clamp(1, 1024),
            "--calls" => a.calls = flag_num(&mut it, &k)?.clamp(1_000, 100_000_000),
            "--size" => a.size = flag_num(&mut it, &k)?.clamp(8, 64 * 1024),
            "--json" => json = Some(flag_value(&mut it, &k)?),
            "-h" | "--help" => {
                return Err(
                    "usage: relay [--callers N] [--outstanding N] [--calls TOTAL] \
                            [--size BYTES] [--server-cpu N] [--client-cpu N] [--json FILE]"
                        .into(),
                )
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    // Everything in flight fits the sockets' buffers, so a write never waits for long
    // (`write_all_spinning` spins when one is full).
    if a.callers * a.outstanding * a.size > 1 << 20 {
        return Err("callers × outstanding × size must be at most 1 MiB".into());
    }
    Ok((a, json))
}

/// User and system CPU time of the calling thread.
fn thread_cpu() -> (Duration, Duration) {
    // SAFETY: rusage is plain data (all zeroes is a valid value), and getrusage only writes
    // the struct it is given; RUSAGE_THREAD cannot fail for the calling thread.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let d = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (d(ru.ru_utime), d(ru.ru_stime))
}

struct Served {
    calls: u64,
    user: Duration,
    system: Duration,
}

/// The relay: connection 0 is the callee, 1..=callers the callers. A request's first four
/// bytes are overwritten with its caller's index; the callee echoes them, which routes the reply.
fn serve(listener: TcpListener, a: Args) -> std::io::Result<Served> {
    pin(a.server_cpu);
    let mut conns = Vec::with_capacity(a.callers + 1);
    for _ in 0..=a.callers {
        let (s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        s.set_nonblocking(true)?;
        conns.push((s, Vec::<u8>::new()));
    }
    // SAFETY: epoll_create1 takes no pointers; a non-negative result is a new descriptor
    // that nothing else owns, closed when `ep` drops (on every return below).
    let ep = match unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) } {
        fd if fd < 0 => return Err(std::io::Error::last_os_error()),
        fd => unsafe { OwnedFd::from_raw_fd(fd) },
    };
    for (i, (s, _)) in conns.iter().enumerate() {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: i as u64,
        };
        // SAFETY: both descriptors are open for the whole loop; `ev` is read during the call.
        let rc =
            unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, s.as_raw_fd(), &mut ev) };
        if rc < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    let (u0, s0) = thread_cpu();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; conns.len()];
    let mut scratch = vec![0u8; 64 * 1024];
    let mut replies: Vec<Vec<u8>> = vec![Vec::new(); conns.len()];
    let (mut open, mut calls) = (a.callers, 0u64);
    while open > 0 {
        // SAFETY: `events` has room for `events.len()` entries, which epoll_wait fills.
        let n = unsafe {
            libc::epoll_wait(
                ep.as_raw_fd(),
                events.as_mut_ptr(),
                events.len() as i32,
                10_000,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(std::io::Error::other("no traffic for 10 s"));
        }
        for ev in &events[..n as usize] {
            let i = ev.u64 as usize;
            let got = match conns[i].0.read(&mut scratch) {
                Ok(0) => {
                    if i == 0 {
                        return Err(std::io::Error::other("the callee closed"));
                    }
                    // SAFETY: both descriptors are open; DEL reads no event.
                    let rc = unsafe {
                        libc::epoll_ctl(
                            ep.as_raw_fd(),
                            libc::EPOLL_CTL_DEL,
                            conns[i].0.as_raw_fd(),
                            std::ptr::null_mut(),
                        )
                    };
                    if rc < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    open -= 1;
                    continue;
                }
                Ok(n) => n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                    continue
                }
                Err(e) => return Err(e),
            };
            // Taken out while the other connections are written to; put back after.
            let mut inbuf = std::mem::take(&mut conns[i].1);
            inbuf.extend_from_slice(&scratch[..got]);
            let whole = inbuf.len() / a.size * a.size;
            if i > 0 {
                // Requests: stamp the caller, forward them in one write.
                for m in inbuf[..whole].chunks_mut(a.size) {
                    m[..4].copy_from_slice(&(i as u32).to_le_bytes());
                }
                if whole > 0 {
                    write_all_spinning(&mut conns[0].0, &inbuf[..whole])?;
                }
            } else {
                // Replies: one write per caller for what this read brought.
                for m in inbuf[..whole].chunks(a.size) {
                    let to = u32::from_le_bytes([m[0], m[1], m[2], m[3]]) as usize;
                    if to == 0 || to >= conns.len() {
                        return Err(std::io::Error::other("reply for no caller"));
                    }
                    replies[to].extend_from_slice(m);
                    calls += 1;
                }
                for (to, r) in replies.iter_mut().enumerate() {
                    if !r.is_empty() {
                        write_all_spinning(&mut conns[to].0, r)?;
                        r.clear();
                    }
                }
            }
            inbuf.drain(..whole);
            conns[i].1 = inbuf;
        }
    }
    let (u1, s1) = thread_cpu();
    Ok(Served {
        calls,
        user: u1 - u0,
        system: s1 - s0,
    })
}

/// The callee: echoes every whole message it reads, in one write per read.
fn callee(mut s: TcpStream, size: usize) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut have = 0;
    loop {
        let n = s.read(&mut buf[have..])?;
        if n == 0 {
            return Ok(());
        }
        have += n;
        let whole = have / size * size;
        s.write_all(&buf[..whole])?;
        buf.copy_within(whole..have, 0);
        have -= whole;
    }
}

/// One caller: `calls` requests with `outstanding` in flight; round-trip times after a tenth
/// as warm-up, and when its measured part started and ended.
fn caller(
    addr: &str,
    a: Args,
    calls: usize,
    start: &Barrier,
) -> std::io::Result<(Vec<u64>, Instant, Instant)> {
    pin(a.client_cpu);
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    start.wait();
    let msg = vec![0x5au8; a.size];
    let mut back = vec![0u8; a.size];
    let warmup = calls / 10;
    let mut sent_at = VecDeque::with_capacity(a.outstanding);
    let mut rtts = Vec::with_capacity(calls);
    let (mut sent, mut done) = (0, 0);
    let mut began = Instant::now();
    while done < calls {
        while sent < calls && sent_at.len() < a.outstanding {
            sent_at.push_back(Instant::now());
            s.write_all(&msg)?;
            sent += 1;
        }
        s.read_exact(&mut back)?;
        let at = sent_at.pop_front().unwrap_or_else(Instant::now);
        done += 1;
        if done == warmup {
            began = Instant::now();
        }
        if done > warmup {
            rtts.push(at.elapsed().as_nanos() as u64);
        }
    }
    Ok((rtts, began, Instant::now()))
}

fn run(a: Args) -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?.to_string();
    let server = std::thread::spawn(move || serve(listener, a));
    // The callee connects first, so the relay accepts it first.
    pin(a.client_cpu);
    let callee_conn = TcpStream::connect(&addr)?;
    callee_conn.set_nodelay(true)?;
    let size = a.size;
    let callee_thread = std::thread::spawn(move || callee(callee_conn, size));
    let per = a.calls.div_ceil(a.callers);
    let start = Arc::new(Barrier::new(a.callers));
    let (tx, rx) = mpsc::channel();
    for _ in 0..a.callers {
        let (addr, start, tx) = (addr.clone(), start.clone(), tx.clone());
        std::thread::spawn(move || {
            let _ = tx.send(caller(&addr, a, per, &start));
        });
    }
    drop(tx);
    let mut rtts = Vec::new();
    let (mut first, mut last): (Option<Instant>, Option<Instant>) = (None, None);
    for r in rx {
        let (mut t, b, e) = r?;
        rtts.append(&mut t);
        first = Some(first.map_or(b, |f| f.min(b)));
        last = Some(last.map_or(e, |l| l.max(e)));
    }
    let served = server
        .join()
        .map_err(|_| std::io::Error::other("relay thread panicked"))??;
    let _ = callee_thread.join();
    let (Some(first), Some(last)) = (first, last) else {
        return Err(std::io::Error::other("no callers"));
    };
    let measured = rtts.len() as f64;
    let rate = measured / last.duration_since(first).as_secs_f64();
    let cpu = served.user + served.system;
    let per_call = |d: Duration| d.as_secs_f64() * 1e6 / served.calls.max(1) as f64;
    let (c, o, n) = (a.callers, a.outstanding, served.calls);
    let (cpu, user, sys) = (
        per_call(cpu),
        per_call(served.user),
        per_call(served.system),
    );
    let (p50, p90, p99) = quantiles(rtts);
    println!(
        "relay {c}×{o}: {rate:.0} calls/s; server CPU per call {cpu:.2} µs (user {user:.2}, \
         system {sys:.2}) over {n} calls; round trip p50 {p50:.1} µs  p90 {p90:.1} µs  p99 {p99:.1} µs"
    );
    Ok(format!(
        "{{\"callers\": {c}, \"outstanding\": {o}, \"calls_per_sec\": {rate:.1}, \
         \"server_cpu_us_per_call\": {cpu:.3}, \"user_us_per_call\": {user:.3}, \
         \"system_us_per_call\": {sys:.3}, \"calls\": {n}, \
         \"latency_us\": {{\"p50\": {p50:.2}, \"p90\": {p90:.2}, \"p99\": {p99:.2}}}}}\n"
    ))
}

fn main() {
    let (a, json) = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("relay: {e}");
            std::process::exit(2);
        }
    };
    match run(a) {
        Ok(out) => {
            if let Some(path) = json {
                if let Err(e) = std::fs::write(&path, out) {
                    eprintln!("relay: {path}: {e}");
                    std::process::exit(1);
                }
            }
        }
        Err(e) => {
            eprintln!("relay: {e}");
            std::process::exit(1);
        }
    }
}
