//! Authentication against the real `switchyard` binary: a config file with static principals
//! (ticket, WAMP-CRA plain and salted, cryptosign) is written to a temp dir, the router is
//! started with it, and `tests/interop/auth.py` (autobahn-python, with PyNaCl for cryptosign)
//! joins with each method and checks wrong secrets, unknown principals and unsupported methods
//! fail with the right ABORT reason. Also: a bad principal in the config file stops start-up
//! with an error naming the key.
//!
//! Which Python: `$SWITCHYARD_PYTHON` if set (`tests/run.sh` sets it), else the venv run.sh
//! makes (`<target>/interop-venv/bin/python`), else `python3`. A missing client FAILS the test.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::RouterProcess;

/// The client bounds each case to this; the harness kills the client after `CLIENT_DEADLINE`.
const CASE_TIMEOUT_S: &str = "10";
const CLIENT_DEADLINE: Duration = Duration::from_secs(90);

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("switchyard.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

fn run_auth_client(url: &str, serializer: &str) {
    common::assert_script_ok(
        &format!("auth.py {url} {serializer}"),
        Command::new(common::interop_python("autobahn, nacl"))
            .args(["auth.py", "--url", url, "--serializer", serializer])
            .args(["--timeout-s", CASE_TIMEOUT_S]),
        CLIENT_DEADLINE,
        "OK:",
    );
}

#[test]
fn autobahn_python_authenticates_with_every_method() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(dir.path(), &common::auth_realms_config());
    let router =
        RouterProcess::start_ws_rs(&["--config", config.to_str().expect("utf-8 temp path")]);
    run_auth_client(&router.endpoint("ws").url, "json");
    run_auth_client(&router.endpoint("rs").url, "msgpack");
    // The secrets never reach the log.
    let log = router.stderr_text() + &router.stdout_text();
    for secret in ["joe-ticket", "peter-secret", "salty-secret"] {
        assert!(!log.contains(secret), "{secret} was logged:\n{log}");
    }
}

#[test]
fn bad_principal_is_named_at_start_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(
        dir.path(),
        &common::AUTH_REALMS_CONFIG.replace("PUBKEY", "not-a-key"),
    );
    let out = Command::new(common::router_binary())
        .args(["--ws", "127.0.0.1:0", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .output()
        .expect("run switchyard");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("realm[1].principal[3].pubkey"),
        "the error does not name the key:\n{stderr}"
    );
}

/// Issue 21, item 4: every failed login against static principals is counted in
/// `switchyard_auth_failures_total` by method and reason and logged at info without the secret;
/// the client's answer stays ABORT `wamp.error.authentication_failed` (or
/// `no_matching_auth_method`).
#[test]
fn failed_logins_are_counted_by_method_and_reason_and_logged() {
    use common::{hello, metrics_addr, RawClient, Scrape, WampConn, REPLY_TIMEOUT};
    use switchyard::codec::{Authenticate, Dict, Message, Serializer};
    const WRONG: &str = "wrong-secret-4711";

    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(dir.path(), &common::auth_realms_config());
    let router = RouterProcess::start_ws_rs(&[
        "--metrics",
        "127.0.0.1:0",
        "--config",
        config.to_str().expect("utf-8 temp path"),
    ]);
    let rs = router.endpoint("rs").addr();
    // (authmethod, authid, expected ABORT reason)
    let cases = [
        ("ticket", "joe", "wamp.error.authentication_failed"),
        ("ticket", "nobody", "wamp.error.authentication_failed"),
        ("wampcra", "peter", "wamp.error.authentication_failed"),
        ("anonymous", "joe", "wamp.error.no_matching_auth_method"),
    ];
    for (method, authid, reason) in cases {
        let mut c = RawClient::connect(rs, Serializer::Json);
        let Message::Hello(mut h) = hello("secure") else {
            unreachable!()
        };
        h.details.authmethods = Some(vec![method.to_owned()]);
        h.details.authid = Some(authid.to_owned());
        c.send(&Message::Hello(h)).expect("send HELLO");
        let mut reply = c.recv(REPLY_TIMEOUT).expect("reply to HELLO");
        if let Message::Challenge(_) = reply {
            c.send(&Message::Authenticate(Authenticate {
                signature: WRONG.to_owned(),
                extra: Dict::new(),
            }))
            .expect("send AUTHENTICATE");
            reply = c.recv(REPLY_TIMEOUT).expect("reply to AUTHENTICATE");
        }
        assert!(
            matches!(&reply, Message::Abort(a) if a.reason.as_str() == reason),
            "{method}/{authid}: expected ABORT {reason}, got {reply:?}"
        );
    }
    let expected = [
        ("ticket", "bad_signature", 1.0),
        ("ticket", "unknown_authid", 1.0),
        ("wampcra", "bad_signature", 1.0),
        ("none", "no_matching_method", 1.0),
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let s = Scrape::get(metrics_addr(&router));
        let got: Vec<f64> = expected
            .iter()
            .map(|(m, r, _)| {
                s.sum(
                    "switchyard_auth_failures_total",
                    &[("method", m), ("reason", r)],
                )
            })
            .collect();
        if got == expected.map(|e| e.2) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "auth failures {got:?}, expected {expected:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The counter moves before the log line reaches the captured stderr: wait for the lines.
    let log = loop {
        let log = router.stderr_text() + &router.stdout_text();
        let missing = expected.iter().find(|(m, r, _)| {
            !log.lines().any(|l| {
                l.contains("login failed")
                    && l.contains(&format!("\"{m}\""))
                    && l.contains(&format!("\"{r}\""))
            })
        });
        match missing {
            None => break log,
            Some((m, r, _)) => assert!(
                std::time::Instant::now() < deadline,
                "no info line for {m}/{r}:\n{log}"
            ),
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        !log.contains(WRONG),
        "the offered secret was logged:\n{log}"
    );
    assert!(!log.contains("joe-ticket") && !log.contains("peter-secret"));
}
