//! Round trips through the router: in-process clients against RawSocket clients over loopback.
//!
//! One router shard (pinned to CPU 0 when there are two CPUs) and one client executor (CPU 1)
//! holding a callee and a caller session. The caller makes `n` sequential calls (one in flight:
//! latency-bound) and then `n` calls with 64 in flight (throughput-bound), first with both
//! sessions in process (`Client::connect_local`), then over `rs://127.0.0.1` with MessagePack,
//! in the same run. Prints calls/s for each and the in-process/RawSocket ratio.
//!
//! Run: `cargo bench --bench inproc`. Under `cargo test` (no `--bench` argument) it makes a few
//! hundred calls per case, as a smoke test.

use std::time::Instant;
use switchyard::client::{
    CallOptions, Client, ClientConfig, Dict, RegisterOptions, Serializer, Value, Yield,
};
use switchyard::config::{ListenAddr, ListenerConfig, ListenerKind};
use switchyard::{LocalConnector, Router, RouterConfig};

#[derive(Clone)]
enum Target {
    Local(LocalConnector),
    Net(String),
}

async fn connect(t: &Target) -> Client {
    let r = match t {
        Target::Local(c) => Client::connect_local(c, ClientConfig::new("", "realm1")).await,
        Target::Net(url) => {
            Client::connect(
                ClientConfig::new(url.clone(), "realm1").serializer(Serializer::MsgPack),
            )
            .await
        }
    };
    r.expect("client joins")
}

/// (sequential calls/s, calls/s with `window` in flight)
async fn run(t: Target, n: usize, window: usize) -> (f64, f64) {
    let callee = connect(&t).await;
    let caller = connect(&t).await;
    callee
        .register("bench.echo", RegisterOptions::default(), |inv| async move {
            Ok(Yield::args(inv.args))
        })
        .await
        .expect("register");
    let args = || vec![Value::Bin(vec![7u8; 64].into())];
    // Warm-up.
    for _ in 0..n.min(1000) / 10 {
        caller
            .call("bench.echo", args(), Dict::new(), CallOptions::default())
            .await
            .expect("call");
    }
    let t0 = Instant::now();
    for _ in 0..n {
        caller
            .call("bench.echo", args(), Dict::new(), CallOptions::default())
            .await
            .expect("call");
    }
    let seq = n as f64 / t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..window {
        let c = caller.clone();
        let per = n / window + usize::from(w < n % window);
        tasks.push(glommio::spawn_local(async move {
            for _ in 0..per {
                c.call("bench.echo", args(), Dict::new(), CallOptions::default())
                    .await
                    .expect("call");
            }
        }));
    }
    for t in tasks {
        t.await;
    }
    let par = n as f64 / t0.elapsed().as_secs_f64();
    caller.leave().await.expect("leave");
    callee.leave().await.expect("leave");
    (seq, par)
}

fn main() {
    let n = if std::env::args().any(|a| a == "--bench") {
        200_000
    } else {
        300
    };
    let two_cpus = core_affinity::get_core_ids().is_some_and(|c| c.len() >= 2);
    let router = Router::start(RouterConfig {
        shards: 1,
        cpus: if two_cpus { vec![0] } else { Vec::new() },
        listeners: vec![ListenerConfig {
            kind: ListenerKind::RawSocket,
            addr: ListenAddr::Tcp("127.0.0.1:0".parse().expect("address")),
            tls: None,
        }],
        ..Default::default()
    })
    .expect("router starts");
    let url = router.endpoints()[0].clone();
    let local = Target::Local(router.local_connector());
    let placement = if two_cpus {
        glommio::Placement::Fixed(1)
    } else {
        glommio::Placement::Unbound
    };
    let results = glommio::LocalExecutorBuilder::new(placement)
        .io_memory(256 << 10)
        .spawn(move || async move {
            let l = run(local, n, 64).await;
            let r = run(Target::Net(url), n, 64).await;
            (l, r)
        })
        .expect("client executor starts")
        .join()
        .expect("client executor ends");
    let ((ls, lp), (rs, rp)) = results;
    println!("calls: {n} per case, 64-byte payload, 1 router shard, 1 client executor");
    println!(
        "sequential   in-process {ls:>10.0}/s   rawsocket {rs:>10.0}/s   ratio {:.2}",
        ls / rs
    );
    println!(
        "64 in flight in-process {lp:>10.0}/s   rawsocket {rp:>10.0}/s   ratio {:.2}",
        lp / rp
    );
    router.shutdown_handle().shutdown();
    router.join().expect("router stops");
}
