//! The deployment files under `deploy/`: every config file they ship is one the router
//! accepts, the Kubernetes manifests parse and agree with each other and with the config, the
//! systemd unit passes `systemd-analyze verify` (when the tool is installed) and keeps its
//! limits and hardening, and the Containerfile builds a non-root multi-stage image.
//!
//! External validators are used when present and reported as skipped otherwise;
//! `deploy/check.sh` installs and runs them all.

use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::Command;
use switchyard::cli::{build_settings, Args, Settings};
use yaml_rust2::{Yaml, YamlLoader};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Validates config text the way `switchyard config check` does.
fn check_config(name: &str, text: &str) -> Settings {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchyard.toml");
    std::fs::write(&path, text).unwrap();
    let args = Args {
        config: Some(path),
        ..Default::default()
    };
    build_settings(&args).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn tool(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

#[test]
fn shipped_config_files_are_valid() {
    let s = check_config("deploy/switchyard.toml", &read("deploy/switchyard.toml"));
    assert!(s.metrics.is_some());
    let s = check_config("deploy/container.toml", &read("deploy/container.toml"));
    assert_eq!(s.metrics, Some("0.0.0.0:9620".parse().unwrap()));
}

fn k8s_docs() -> Vec<(String, Yaml)> {
    let dir = root().join("deploy/k8s");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let parsed =
            YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{name}: bad YAML: {e}"));
        assert!(!parsed.is_empty(), "{name}: no document");
        for d in parsed {
            docs.push((name.clone(), d));
        }
    }
    docs
}

fn find<'a>(docs: &'a [(String, Yaml)], kind: &str) -> &'a Yaml {
    &docs
        .iter()
        .find(|(_, d)| d["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("no {kind} in deploy/k8s"))
        .1
}

fn str_of<'a>(y: &'a Yaml, what: &str) -> &'a str {
    y.as_str()
        .unwrap_or_else(|| panic!("{what}: missing or not a string"))
}

#[test]
fn kubernetes_manifests_are_complete_and_consistent() {
    let docs = k8s_docs();
    for (file, d) in &docs {
        let kind = str_of(&d["kind"], &format!("{file}: kind"));
        str_of(&d["apiVersion"], &format!("{file}: apiVersion"));
        if kind != "Kustomization" {
            str_of(&d["metadata"]["name"], &format!("{file}: metadata.name"));
        }
    }
    let cm = find(&docs, "ConfigMap");
    let toml = str_of(
        &cm["data"]["switchyard.toml"],
        "ConfigMap data.switchyard.toml",
    );
    let settings = check_config("ConfigMap switchyard.toml", toml);
    let metrics = settings.metrics.expect("the ConfigMap must enable metrics");
    assert!(
        metrics.ip().is_unspecified(),
        "metrics must listen on all interfaces"
    );

    let dep = find(&docs, "Deployment");
    let spec = &dep["spec"]["template"]["spec"];
    let labels = &dep["spec"]["template"]["metadata"]["labels"];
    assert_eq!(&dep["spec"]["selector"]["matchLabels"], labels);
    assert_eq!(
        spec["securityContext"]["runAsNonRoot"].as_bool(),
        Some(true)
    );
    let c = &spec["containers"][0];
    str_of(&c["image"], "container image");

    // CPU request = limit = the shard count of the config.
    let cpu = |y: &Yaml| match y {
        Yaml::String(s) => s.parse::<f64>().ok(),
        Yaml::Integer(i) => Some(*i as f64),
        Yaml::Real(r) => r.parse().ok(),
        _ => None,
    };
    let req = cpu(&c["resources"]["requests"]["cpu"]).expect("resources.requests.cpu");
    let lim = cpu(&c["resources"]["limits"]["cpu"]).expect("resources.limits.cpu");
    assert_eq!(req, lim, "CPU request and limit differ");
    assert_eq!(req, settings.router.shards as f64, "CPU request != shards");
    assert!(c["resources"]["limits"]["memory"].as_str().is_some());

    // Probes on /health of the metrics port, which is the config's metrics port.
    let ports = c["ports"].as_vec().expect("container ports");
    let port_of = |name: &str| {
        ports
            .iter()
            .find(|p| p["name"].as_str() == Some(name))
            .and_then(|p| p["containerPort"].as_i64())
            .unwrap_or_else(|| panic!("no container port named {name}"))
    };
    assert_eq!(port_of("metrics"), i64::from(metrics.port()));
    for probe in ["livenessProbe", "readinessProbe"] {
        let g = &c[probe]["httpGet"];
        assert_eq!(g["path"].as_str(), Some("/health"), "{probe}");
        assert_eq!(g["port"].as_str(), Some("metrics"), "{probe}");
    }
    // The config file is mounted where the args point.
    let args: Vec<&str> = c["args"]
        .as_vec()
        .expect("args")
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let parsed = Args::try_parse_from(std::iter::once("switchyard").chain(args.iter().copied()))
        .expect("container args are valid flags");
    let cfg_path = parsed.config.expect("--config");
    let mount = c["volumeMounts"][0]["mountPath"].as_str().unwrap();
    assert_eq!(cfg_path, Path::new(mount).join("switchyard.toml"));
    let vol = &spec["volumes"][0];
    assert_eq!(
        vol["configMap"]["name"].as_str(),
        cm["metadata"]["name"].as_str()
    );

    // The Service selects the pods and targets ports they have.
    let svc = find(&docs, "Service");
    for (k, v) in svc["spec"]["selector"].as_hash().expect("selector") {
        assert_eq!(&labels[k.as_str().unwrap()], v, "selector {k:?}");
    }
    for p in svc["spec"]["ports"].as_vec().expect("service ports") {
        port_of(str_of(&p["targetPort"], "targetPort"));
    }
    // Every manifest file is listed in the kustomization.
    let k = find(&docs, "Kustomization");
    let listed: Vec<&str> = k["resources"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    for (file, d) in &docs {
        if d["kind"].as_str() != Some("Kustomization") {
            assert!(
                listed.contains(&file.as_str()),
                "{file} not in kustomization"
            );
        }
    }
}

#[test]
fn kubernetes_manifests_pass_kubernetes_validate_when_installed() {
    let Some(kv) = tool("kubernetes-validate") else {
        eprintln!("skipped: kubernetes-validate not installed (deploy/check.sh installs it)");
        return;
    };
    let dir = root().join("deploy/k8s");
    let out = Command::new(kv)
        .arg("--strict")
        .args(["configmap.yaml", "deployment.yaml", "service.yaml"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !text.contains("ERROR"), "{text}");
}

#[test]
fn systemd_unit_has_limits_and_hardening() {
    let unit = read("deploy/switchyard.service");
    let has = |line: &str| unit.lines().any(|l| l.trim() == line);
    for line in [
        "Restart=on-failure",
        "LimitMEMLOCK=infinity",
        "LimitNOFILE=1048576",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "DynamicUser=yes",
        "AmbientCapabilities=",
        "CapabilityBoundingSet=",
        "KillSignal=SIGTERM",
    ] {
        assert!(has(line), "deploy/switchyard.service lacks {line:?}");
    }
    assert!(
        unit.contains("#CPUAffinity="),
        "CPUAffinity example missing"
    );
    // ExecStart and ExecStartPre use real flags.
    for l in unit.lines() {
        if let Some(cmd) = l
            .strip_prefix("ExecStart=")
            .or_else(|| l.strip_prefix("ExecStartPre="))
        {
            let argv: Vec<&str> = cmd.split_whitespace().collect();
            Args::try_parse_from(&argv).unwrap_or_else(|e| panic!("{l}: {e}"));
        }
    }
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify_when_installed() {
    let Some(sa) = tool("systemd-analyze") else {
        eprintln!("skipped: systemd-analyze not installed (apt-get install systemd)");
        return;
    };
    // `verify` checks that ExecStart exists: point it at the binary under test.
    let unit = read("deploy/switchyard.service").replace(
        "/usr/local/bin/switchyard",
        env!("CARGO_BIN_EXE_switchyard"),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchyard.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new(sa).arg("verify").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "{stderr}");
}

#[test]
fn containerfile_is_multi_stage_and_non_root() {
    let cf = read("deploy/Containerfile");
    let froms: Vec<&str> = cf.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert!(froms.len() >= 2, "not multi-stage");
    let last = cf.rfind("\nFROM ").unwrap();
    let runtime = &cf[last..];
    assert!(
        runtime.contains("COPY --from=build "),
        "runtime does not copy the build"
    );
    let user = runtime
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("runtime stage sets USER");
    let uid = user.split(':').next().unwrap().trim();
    assert!(uid != "0" && uid != "root", "runtime runs as root");
    // Every file it copies from the context exists.
    for l in cf
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let src = l.split_whitespace().nth(1).unwrap();
        if src != "." {
            assert!(root().join(src).exists(), "{l}: {src} missing");
        }
    }
    assert!(cf.contains("cargo build --release --locked"));
}
