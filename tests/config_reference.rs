//! `docs/configuration.md` against the code: every flag (read from clap's `Command`) and every
//! config key (read from the serde structs) is documented, and everything documented exists.
//! Also `switchyard config example` / `config check` through the real binary.

use clap::CommandFactory;
use std::collections::BTreeSet;
use std::process::Command;
use switchyard::cli::{config_keys, config_sections, Args};

const DOC: &str = include_str!("../docs/configuration.md");

fn long_flags() -> BTreeSet<String> {
    Args::command()
        .get_arguments()
        .filter_map(|a| a.get_long())
        .map(|l| format!("--{l}"))
        .collect()
}

/// Tokens in `text` that start with `prefix` followed by `[a-z0-9_-]+` (prefix included).
fn tokens(text: &str, prefix: &str, word: fn(char) -> bool) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().next_back();
        let after = &rest[i + prefix.len()..];
        let len = after.find(|c: char| !word(c)).unwrap_or(after.len());
        let boundary = before.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        if boundary && len > 0 && after.starts_with(|c: char| c.is_ascii_lowercase()) {
            out.insert(format!("{prefix}{}", &after[..len]));
        }
        rest = &rest[i + prefix.len()..];
    }
    out
}

#[test]
fn every_flag_is_documented_and_every_documented_flag_exists() {
    let flags = long_flags();
    assert!(flags.contains("--metrics") && flags.contains("--log-format"));
    let missing: Vec<_> = flags
        .iter()
        .filter(|f| !DOC.contains(&format!("`{f}")))
        .collect();
    assert!(
        missing.is_empty(),
        "flags missing from docs/configuration.md: {missing:?}"
    );
    let documented = tokens(DOC, "--", |c| c.is_ascii_alphanumeric() || c == '-');
    let unknown: Vec<_> = documented
        .iter()
        .filter(|f| !flags.contains(*f) && *f != "--help" && *f != "--version")
        .collect();
    assert!(
        unknown.is_empty(),
        "docs/configuration.md names flags that do not exist: {unknown:?}"
    );
}

#[test]
fn every_key_is_documented_and_every_documented_key_exists() {
    let keys: BTreeSet<String> = config_keys().into_iter().collect();
    assert!(keys.contains("router.metrics") && keys.contains("realm.name"));
    let missing: Vec<_> = keys
        .iter()
        .filter(|k| !DOC.contains(&format!("`{k}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "config keys missing from docs/configuration.md: {missing:?}"
    );
    let mut unknown = Vec::new();
    for section in config_sections() {
        let prefix = format!("{section}.");
        for t in tokens(DOC, &prefix, |c| c.is_ascii_alphanumeric() || c == '_') {
            if !keys.contains(&t) {
                unknown.push(t);
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "docs/configuration.md names keys that do not exist: {unknown:?}"
    );
}

#[test]
fn subcommands_are_documented() {
    let cmd = Args::command();
    for sub in cmd.get_subcommands() {
        for inner in sub.get_subcommands() {
            let line = format!("config {}", inner.get_name());
            assert!(
                DOC.contains(&format!("{} {}", sub.get_name(), inner.get_name())),
                "`switchyard {line}` is not documented"
            );
        }
    }
}

fn switchyard(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run switchyard")
}

#[test]
fn config_example_passes_config_check() {
    let out = switchyard(&["config", "example"]);
    assert!(out.status.success());
    let example = String::from_utf8(out.stdout).unwrap();
    assert_eq!(example, switchyard::cli::EXAMPLE_CONFIG);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("example.toml");
    std::fs::write(&path, &example).unwrap();
    let out = switchyard(&["config", "check", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(": ok; effective settings"), "{stdout}");
    assert!(stdout.contains("metrics = \"127.0.0.1:9620\""), "{stdout}");
    assert!(stdout.contains("\"ws://127.0.0.1:8080/ws\""), "{stdout}");
    // Flags given before `config` are merged as when running.
    let out = switchyard(&["--shards", "3", "config", "check", path.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("shards = 3\n"));
}

#[test]
fn config_check_names_the_bad_key_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    for (text, expect) in [
        ("[router]\nshardz = 2\n", "shardz"),
        ("[router]\nslow_consumer = \"maybe\"\n", "slow_consumer"),
        ("[router]\nmetrics = \"nowhere\"\n", "metrics:"),
        ("[router]\ncpus = \"3-1\"\n", "cpus:"),
        ("[router]\nlog_format = \"xml\"\n", "log_format"),
        ("[router]\nbusy_read_us = 20000\n", "busy_read_us"),
        ("[router]\nadaptive_spin_us = 20000\n", "adaptive_spin_us"),
        ("[[realm]]\nname = \"a..b\"\n", "realm[0].name"),
        // Issue 21, item 5: every URI-valued key, with the router's own URI rules.
        (
            "[[realm]]\nname = \"r\"\nauthorizer = \"com..bad uri!\"\n",
            "realm[0].authorizer",
        ),
        (
            "[[realm]]\nname = \"r\"\n[[realm.authenticator]]\nmethod = \"ticket\"\nprocedure = \"com.x y\"\n",
            "realm[0].authenticator[0].procedure",
        ),
        (
            "[[realm]]\nname = \"r\"\n[[realm.role]]\nname = \"u\"\n[[realm.role.permission]]\nuri = \"com..x\"\n",
            "realm[0].role[0].permission[0].uri",
        ),
        ("[routr]\n", "routr"),
    ] {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let out = switchyard(&["config", "check", path.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text:?} was accepted");
        assert!(stderr.contains(expect), "{text:?}: {stderr}");
        assert!(!stderr.contains("backtrace"), "{stderr}");
    }
    // A path that does not exist, inside the repository (nothing outside it is assumed).
    let missing = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("no-such-dir")
        .join("switchyard.toml");
    let missing = missing.to_str().expect("the repository path is UTF-8");
    let out = switchyard(&["config", "check", missing]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("config file: cannot read {missing}")),
        "{stderr}"
    );
    assert_eq!(stderr.matches("os error").count(), 1, "{stderr}");
}

/// Issue 21, item 6: a TLS file that cannot be read is named by its key and by where the key
/// was set (flag or config file), with the OS error once.
#[test]
fn missing_tls_file_names_the_key_and_the_file_that_set_it() {
    let dir = tempfile::tempdir().unwrap();
    // Paths that do not exist, inside the test's own directory.
    let cert = dir.path().join("none").join("cert.pem");
    let key = dir.path().join("none").join("key.pem");
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let out = switchyard(&["--wss", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("--tls-cert: cannot read {cert}")),
        "{stderr}"
    );
    assert_eq!(stderr.matches("os error").count(), 1, "{stderr}");

    let path = dir.path().join("tls.toml");
    std::fs::write(
        &path,
        format!("[router]\nwss = [\"127.0.0.1:0\"]\ntls_cert = {cert:?}\ntls_key = {key:?}\n"),
    )
    .unwrap();
    let out = switchyard(&["config", "check", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let expect = format!("tls_cert in {}: cannot read {cert}", path.display());
    assert!(stderr.contains(&expect), "{stderr}");
    assert_eq!(stderr.matches("os error").count(), 1, "{stderr}");
}

/// Issue 21, item 5: `config check` prints the whole effective config: principals (their
/// methods, never their secrets), roles, permissions and the authorizer.
#[test]
fn config_check_prints_realms_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.toml");
    std::fs::write(
        &path,
        r#"
[[realm]]
name = "secure"
anonymous = false
authorizer = "com.example.authorize"

[[realm.principal]]
authid = "joe"
role = "user"
ticket = "joe-secret-ticket"

[[realm.role]]
name = "user"
[[realm.role.permission]]
uri = "com.example."
match = "prefix"
allow = { call = true, subscribe = true }
"#,
    )
    .unwrap();
    let out = switchyard(&["config", "check", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expect in [
        "name = \"secure\"",
        "authorizer = \"com.example.authorize\"",
        "authid = \"joe\", role = \"user\", methods = [\"ticket\"]",
        "[[realm.role]] name = \"user\"",
        "permission uri = \"com.example.\", match = \"prefix\", allow = { call = true, register = false",
    ] {
        assert!(stdout.contains(expect), "{expect:?} missing from:\n{stdout}");
    }
    assert!(!stdout.contains("joe-secret-ticket"), "{stdout}");
}

/// Issue 21, item 9: the example in docs/configuration.md says `config example` prints it, so
/// every `key = value` line of that (abridged) example must be a line of the real example, in
/// the same section.
#[test]
fn documented_example_agrees_with_config_example() {
    let block = DOC
        .split("## Example")
        .nth(1)
        .and_then(|s| s.split("```toml").nth(1))
        .and_then(|s| s.split("```").next())
        .expect("docs/configuration.md has a ```toml block under ## Example");
    let real = switchyard::cli::EXAMPLE_CONFIG;
    // (section, line) pairs of a TOML text, comments and blank lines left out.
    let pairs = |text: &str| -> BTreeSet<(String, String)> {
        let mut section = String::new();
        let mut out = BTreeSet::new();
        for l in text.lines().map(str::trim) {
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            if l.starts_with('[') {
                section = l.to_owned();
            } else {
                out.insert((section.clone(), l.to_owned()));
            }
        }
        out
    };
    let real = pairs(real);
    let stale: Vec<_> = pairs(block).difference(&real).cloned().collect();
    assert!(
        stale.is_empty(),
        "docs/configuration.md's example has lines `config example` does not print: {stale:?}"
    );
}
