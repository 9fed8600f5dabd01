//! `glommio-echo`: the smallest glommio server: one executor pinned to CPU 0 (or
//! `--cpu N`) echoing 64-byte messages, parking when idle or spinning `--spin-us US` first.
//! With `pingpong --connect ADDR` it shows what glommio itself adds to a round trip, apart
//! from anything Switchyard does (see `bench/FINDINGS.md`).
//!
//! ```sh
//! glommio-echo --spin-us 1000 &        # prints its address
//! pingpong --connect 127.0.0.1:PORT
//! ```

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::{net::TcpListener, LocalExecutorBuilder, Placement};
use std::time::Duration;

fn main() {
    let mut spin = 0u64;
    let mut cpu = 0usize;
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().and_then(|v| v.parse::<u64>().ok());
        match (k.as_str(), v) {
            ("--spin-us", Some(v)) => spin = v,
            ("--cpu", Some(v)) => cpu = v as usize,
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
    let ex = b.spawn(|| async move {
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
