//! `glommio-echo`: the smallest glommio server: one executor pinned to CPU 0 (or
//! `--cpu N`) echoing 64-byte messages, parking when idle or spinning `--spin-us US` first.
//! With `pingpong --connect ADDR` it shows what glommio itself adds to a round trip, apart
//! from anything Switchyard does (see `bench/FINDINGS.md`).
//!
//! ```sh
//! glommio-echo --spin-us 1000 &        # prints its address
//! glommio-echo --busy-us 1000 [--timer-every 4] &   # busy reads, as the router's
//! pingpong --connect 127.0.0.1:PORT
//! ```

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::{net::TcpListener, LocalExecutorBuilder, Placement};
use std::time::Duration;

fn main() {
    let mut spin = 0u64;
    let mut cpu = 0usize;
    let mut busy = 0u64;
    let mut timer_every = 4u32;
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().and_then(|v| v.parse::<u64>().ok());
        match (k.as_str(), v) {
            ("--spin-us", Some(v)) => spin = v,
            ("--cpu", Some(v)) => cpu = v as usize,
            ("--busy-us", Some(v)) => busy = v,
            ("--timer-every", Some(v)) => timer_every = v.max(1) as u32,
            _ => {
                eprintln!("usage: glommio-echo [--spin-us US] [--cpu N]");
                std::process::exit(2)
            }
        }
    }
    let mut b = LocalExecutorBuilder::new(Placement::Fixed(cpu));
    if spin > 0 {
        b = b.spin_before_park(Duration::from_micros(spin));
    }
    let ex = b.spawn(move || async move {
        let l = match TcpListener::bind("127.0.0.1:0") {
            Ok(l) => l,
            Err(e) => {
                eprintln!("glommio-echo: bind: {e}");
                return;
            }
        };
        match l.local_addr() {
            Ok(a) => println!("{a}"),
            Err(e) => eprintln!("glommio-echo: {e}"),
        }
        while let Ok(mut s) = l.accept().await {
            let _ = s.set_nodelay(true);
            if busy > 0 {
                glommio::spawn_local(busy_echo(s, busy, timer_every)).detach();
                continue;
            }
            glommio::spawn_local(async move {
                let mut buf = [0u8; 64];
                while s.read_exact(&mut buf).await.is_ok() {
                    if s.write_all(&buf).await.is_err() {
                        break;
                    }
                }
            })
            .detach();
        }
    });
    match ex {
        Ok(h) => {
            let _ = h.join();
        }
        Err(e) => eprintln!("glommio-echo: executor: {e}"),
    }
}

/// Echo with busy reads: `recv(MSG_DONTWAIT)` in a loop, a plain yield between tries and a 1 µs
/// timer every `timer_every` tries, for up to `busy_us` before waiting on glommio's poll.
async fn busy_echo(mut s: glommio::net::TcpStream, busy_us: u64, timer_every: u32) {
    use std::os::fd::AsRawFd;
    let fd = s.as_raw_fd();
    let mut buf = [0u8; 64];
    let mut have = 0usize;
    loop {
        let start = std::time::Instant::now();
        let mut tries = 0u32;
        while have < buf.len() {
            match switchyard::net::sock::recv_now(fd, &mut buf[have..]) {
                Some(Ok(0)) | Some(Err(_)) => return,
                Some(Ok(n)) => {
                    have += n;
                    continue;
                }
                None => {}
            }
            tries += 1;
            if !tries.is_multiple_of(timer_every) {
                futures_lite::future::yield_now().await;
            } else if start.elapsed() < Duration::from_micros(busy_us) {
                glommio::timer::sleep(Duration::from_micros(1)).await;
            } else {
                match s.read(&mut buf[have..]).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => have += n,
                }
            }
        }
        have = 0;
        if s.write_all(&buf).await.is_err() {
            return;
        }
    }
}
