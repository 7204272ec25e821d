//! What users install: `cargo install --locked --path crates/portcullis` (README.md), the
//! Debian package that `scripts/package-deb` makes (installed into a scratch root with
//! dpkg, then its unit's ExecStart run and asked over TLS), and the Kubernetes example
//! of docs/deploy.md.
//!
//! Both builds reuse what the test run already compiled, so they take seconds, not a
//! release build's minutes: `cargo install --debug` with this run's target directory,
//! and `cargo deb --no-build --profile dev` packaging this run's own binary (the test
//! checks the packaged binary is byte for byte the one under test).

// Test code: a failed step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary under test: TARGET/PROFILE_DIR/portcullis.
fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_portcullis"))
}

/// This run's target directory and the cargo profile that built [`bin`].
fn target_and_profile() -> (PathBuf, String) {
    let profile_dir = bin().parent().unwrap().to_owned();
    let profile = match profile_dir.file_name().unwrap().to_str().unwrap() {
        "debug" => "dev".to_owned(),
        other => other.to_owned(),
    };
    (profile_dir.parent().unwrap().to_owned(), profile)
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs a command to completion, asserting success; returns stdout and stderr.
fn run(cmd: &mut Command) -> String {
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| {
        panic!("cannot run {cmd:?}: {e}");
    });
    assert!(out.status.success(), "{cmd:?} failed:\n{}", text(&out));
    text(&out)
}

/// A CA made with the binary under test, with a server certificate for localhost and a
/// client certificate for alice: DIR/pki/...
fn make_ca(portcullis: &Path, dir: &Path) {
    std::fs::write(dir.join("ca.pass"), "ca passphrase\n").unwrap();
    let pki = |args: &[&str]| {
        run(Command::new(portcullis)
            .current_dir(dir)
            .arg("pki")
            .args(args)
            .args(["--ca-passphrase-file", "ca.pass"])
            .env_remove("PORTCULLIS_CA_PASSPHRASE"))
    };
    pki(&["init", "--intermediate"]);
    pki(&[
        "issue",
        "server",
        "localhost",
        "--dns",
        "localhost",
        "--ip",
        "127.0.0.1",
    ]);
    pki(&["issue", "client", "alice", "--no-p12"]);
}

// === cargo install ===

/// README.md, "Install": `cargo install --locked --path crates/portcullis`. `--locked`
/// fails if Cargo.lock is missing or out of date; `--debug` and this run's target
/// directory let it reuse what is already compiled instead of a release build. This test
/// runs alone (.config/nextest.toml): cargo install may relink TARGET/debug/portcullis.
#[test]
fn cargo_install_locked_gives_a_working_binary() {
    let (target, _) = target_and_profile();
    let tmp = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = Command::new(env!("CARGO"))
        .current_dir(workspace())
        .args([
            "install",
            "--locked",
            "--path",
            "crates/portcullis",
            "--debug",
        ])
        .arg("--root")
        .arg(tmp.path().join("root"))
        .arg("--target-dir")
        .arg(&target)
        .arg("-j2")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo install failed:\n{}",
        text(&out)
    );
    eprintln!("cargo install took {:.1?}", started.elapsed());

    let installed = tmp.path().join("root/bin/portcullis");
    let version = run(Command::new(&installed).arg("--version"));
    assert_eq!(
        version.trim(),
        format!("portcullis {}", env!("CARGO_PKG_VERSION"))
    );

    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    make_ca(&installed, &work);
    for file in ["root.crt", "intermediate.crt", "issued/alice.crt"] {
        assert!(work.join("pki").join(file).is_file(), "no pki/{file}");
    }
}

// === the Debian package ===

/// `dpkg-deb ARGS DEB`.
fn dpkg_deb(args: &[&str], deb: &Path) -> String {
    run(Command::new("dpkg-deb").args(args).arg(deb))
}

/// dpkg on the scratch root ROOT: its own database (ROOT/var/lib/dpkg), maintainer
/// scripts run on this system with DPKG_ROOT=ROOT (they change only ROOT), no
/// dependency check (the scratch root has no libc6 package).
fn dpkg(root: &Path, args: &[&str]) -> String {
    // dpkg looks for ldconfig and start-stop-daemon on PATH, even for another root.
    let path = format!(
        "/usr/sbin:/usr/bin:/sbin:/bin:{}",
        std::env::var("PATH").unwrap_or_default()
    );
    run(Command::new("dpkg")
        .env("PATH", path)
        .arg(format!("--root={}", root.display()))
        .args([
            "--force-script-chrootless",
            "--force-depends",
            "--log=/dev/null",
        ])
        .args(args))
}

/// The scratch root's `portcullis` user: (uid, gid) from ROOT/etc/passwd.
fn scratch_user(root: &Path) -> (u32, u32) {
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    let line = passwd
        .lines()
        .find(|l| l.starts_with("portcullis:"))
        .unwrap_or_else(|| panic!("no portcullis user in the scratch root: {passwd}"));
    let f: Vec<&str> = line.split(':').collect();
    assert_eq!(f[6], "/usr/sbin/nologin", "{line}");
    (f[2].parse().unwrap(), f[3].parse().unwrap())
}

/// The .deb: the binary under test, the unit, the example configuration as a conffile,
/// man pages. Installed into a scratch root with dpkg; its unit's ExecStart, run as the
/// unit's user with the installed configuration (pointed at a CA made here, on a free
/// loopback port), serves a client with a certificate. Then an upgrade in place, remove
/// and purge. Nothing outside its temporary directory changes.
#[test]
fn deb_installs_into_a_scratch_root_and_its_service_answers() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    let (target, profile) = target_and_profile();
    let tmp = tempfile::tempdir().unwrap();
    // The unit's user must reach the installed files (tempdir makes 0700).
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let deb = tmp.path().join("portcullis.deb");
    let passwd_before = std::fs::read_to_string("/etc/passwd").unwrap();

    // Package the binary this run built, with man pages made by it.
    let started = Instant::now();
    let out = run(Command::new("bash")
        .arg(workspace().join("scripts/package-deb"))
        .args([
            "--profile",
            &profile,
            "--no-build",
            "--",
            "--no-strip",
            "--fast",
        ])
        .arg("--output")
        .arg(&deb)
        .env("CARGO_TARGET_DIR", &target));
    eprintln!("scripts/package-deb took {:.1?}:\n{out}", started.elapsed());

    // What is in it.
    let contents = dpkg_deb(&["-c"], &deb);
    for file in [
        "./usr/bin/portcullis",
        "./usr/lib/systemd/system/portcullis.service",
        "./usr/lib/sysusers.d/portcullis.conf",
        "./etc/portcullis/portcullis.toml",
        "./usr/share/man/man1/portcullis.1.gz",
        "./usr/share/man/man1/portcullis-serve.1.gz",
        "./usr/share/man/man1/portcullis-pki-issue-client.1.gz",
        "./usr/share/doc/portcullis/deploy.md",
    ] {
        assert!(
            contents.lines().any(|l| l.ends_with(file)),
            "{file} is not in the package:\n{contents}"
        );
    }
    assert_eq!(
        dpkg_deb(&["-I"], &deb)
            .lines()
            .filter(|l| l.contains("conffiles"))
            .count(),
        1,
        "no conffiles member"
    );
    let control = tmp.path().join("control");
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    assert_eq!(
        std::fs::read_to_string(control.join("conffiles"))
            .unwrap()
            .trim(),
        "/etc/portcullis/portcullis.toml"
    );
    for field in ["Package: portcullis", "Section: net"] {
        assert!(
            std::fs::read_to_string(control.join("control"))
                .unwrap()
                .contains(field),
            "control lacks {field}"
        );
    }

    // Install into a scratch root.
    let root = tmp.path().join("root");
    for dir in ["var/lib/dpkg/info", "var/lib/dpkg/updates"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    let out = dpkg(&root, &["-i", deb.to_str().unwrap()]);
    assert!(
        out.contains("the gate is installed but not enabled"),
        "postinst says what to do next:\n{out}"
    );
    let status = run(Command::new("dpkg-query")
        .arg(format!(
            "--admindir={}",
            root.join("var/lib/dpkg").display()
        ))
        .args(["-W", "-f", "${Status}", "portcullis"]));
    assert_eq!(status, "install ok installed");

    // The packaged binary is the one under test, not a stale build.
    let installed = root.join("usr/bin/portcullis");
    assert!(
        std::fs::read(&installed).unwrap() == std::fs::read(bin()).unwrap(),
        "the package holds another binary than {}",
        bin().display()
    );

    // The postinst made the user and the key directory in the scratch root only.
    let (uid, gid) = scratch_user(&root);
    assert_eq!(
        std::fs::read_to_string("/etc/passwd").unwrap(),
        passwd_before,
        "the postinst changed this system's /etc/passwd"
    );
    let tls = root.join("etc/portcullis/tls");
    let meta = std::fs::metadata(&tls).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o750);
    assert_eq!((meta.uid(), meta.gid()), (0, gid));

    // The unit as systemd reads it. No systemd runs here, and `verify --root` would miss
    // the system's own units (sysinit.target, /bin/kill) in the scratch root: verify a
    // copy whose only change is the binary's path, against this system's systemd. It
    // exits 0 even for unknown keys and bad values, which it prints: nothing may be.
    let unit_path = root.join("usr/lib/systemd/system/portcullis.service");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    let copy = tmp.path().join("verify/portcullis.service");
    std::fs::create_dir(copy.parent().unwrap()).unwrap();
    std::fs::write(
        &copy,
        unit.replace("/usr/bin/portcullis", installed.to_str().unwrap()),
    )
    .unwrap();
    let verify = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&copy)
        .output()
        .unwrap();
    assert!(
        verify.status.success() && verify.stdout.is_empty() && verify.stderr.is_empty(),
        "systemd-analyze verify:\n{}",
        text(&verify)
    );
    let setting = |key: &str| -> Vec<String> {
        unit.lines()
            .filter_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(setting("User"), ["portcullis"]);
    assert_eq!(setting("NoNewPrivileges"), ["yes"]);
    assert_eq!(setting("ProtectSystem"), ["strict"]);
    assert_eq!(setting("ReadWritePaths"), Vec::<String>::new());
    assert_eq!(setting("ExecReload"), ["/bin/kill -HUP $MAINPID"]);
    let exec = setting("ExecStart");
    assert_eq!(
        exec,
        ["/usr/bin/portcullis serve -c /etc/portcullis/portcullis.toml"]
    );

    // Configure it as a user would: the files the example names, from a CA made here;
    // the key readable by the gate's group only; a free loopback port.
    let ca = tmp.path().join("ca");
    std::fs::create_dir(&ca).unwrap();
    make_ca(&bin(), &ca);
    let pki = ca.join("pki");
    let cat = |files: &[&str]| -> Vec<u8> {
        files
            .iter()
            .flat_map(|f| std::fs::read(pki.join(f)).unwrap())
            .collect()
    };
    for (name, from) in [
        ("gate.chain.pem", &["issued/localhost.chain.pem"][..]),
        ("gate.key", &["issued/localhost.key"]),
        ("client-ca.pem", &["root.crt", "intermediate.crt"]),
        ("crl.pem", &["crl.pem"]),
    ] {
        std::fs::write(tls.join(name), cat(from)).unwrap();
    }
    std::os::unix::fs::chown(tls.join("gate.key"), Some(0), Some(gid)).unwrap();
    std::fs::set_permissions(tls.join("gate.key"), PermissionsExt::from_mode(0o640)).unwrap();
    let config = root.join("etc/portcullis/portcullis.toml");
    let example = std::fs::read_to_string(&config).unwrap();
    let listen = "listen = \"0.0.0.0:8443\"";
    assert!(example.contains(listen), "{example}");
    std::fs::write(&config, example.replace(listen, "listen = \"127.0.0.1:0\"")).unwrap();

    // Start it: ExecStart with its paths in the scratch root, as User=/Group= with
    // NoNewPrivileges (setpriv), from / as systemd does.
    let argv: Vec<String> = exec[0]
        .split_whitespace()
        .map(|a| match a.strip_prefix('/') {
            Some(abs) => root.join(abs).display().to_string(),
            None => a.to_owned(),
        })
        .collect();
    let gate = Served::start(
        Command::new("setpriv")
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .args(["--clear-groups", "--no-new-privs", "--"])
            .args(&argv)
            .current_dir("/"),
    );

    let curl = |extra: &[&str]| {
        Command::new("curl")
            .args(["-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"])
            .arg("--cacert")
            .arg(pki.join("root.crt"))
            .args(extra)
            .arg(format!("https://localhost:{}/", gate.port))
            .output()
            .unwrap()
    };
    let out = curl(&[
        "--cert",
        pki.join("issued/alice.chain.pem").to_str().unwrap(),
        "--key",
        pki.join("issued/alice.key").to_str().unwrap(),
        "-H",
        "Accept: application/json",
    ]);
    let body = String::from_utf8_lossy(&out.stdout).into_owned();
    let (json, status) = body.rsplit_once('\n').unwrap();
    assert_eq!(status, "200", "{}", text(&out));
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(v["subject"]["cn"], "alice", "{json}");
    // client_auth = "require": no certificate, no handshake.
    let out = curl(&[]);
    assert!(
        String::from_utf8_lossy(&out.stdout).ends_with("000"),
        "a client without a certificate got an HTTP answer: {}",
        text(&out)
    );
    drop(gate);

    // Installing again (an upgrade in place) keeps the edited conffile and the user.
    dpkg(&root, &["-i", deb.to_str().unwrap()]);
    assert!(
        std::fs::read_to_string(&config)
            .unwrap()
            .contains("127.0.0.1:0")
    );
    assert_eq!(scratch_user(&root), (uid, gid));

    // Remove keeps the configuration and the keys; purge takes the conffile.
    dpkg(&root, &["-r", "portcullis"]);
    assert!(!installed.exists() && !unit_path.exists());
    assert!(config.exists() && tls.join("gate.key").exists());
    dpkg(&root, &["--purge", "portcullis"]);
    assert!(!config.exists());
    assert!(tls.join("gate.key").exists(), "purge must not delete keys");
    assert_eq!(
        std::fs::read_to_string("/etc/passwd").unwrap(),
        passwd_before
    );
}

/// A gate process and the port it printed; killed when dropped.
struct Served {
    child: std::process::Child,
    port: u16,
}

impl Served {
    fn start(cmd: &mut Command) -> Served {
        use std::io::{BufRead, BufReader};
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .env_remove("PORTCULLIS_KEY_PASSPHRASE")
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                eprintln!("gate: {line}");
                if let Some(rest) = line.split("listening on https://127.0.0.1:").nth(1) {
                    let port = rest.split([' ', '"']).next().unwrap().parse::<u16>();
                    let _ = tx.send(port.unwrap());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(port) => Served { child, port },
            Err(_) => {
                let _ = child.kill();
                panic!("the installed gate did not start (its output is above)");
            }
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// === the Kubernetes example ===

/// Every document of a YAML file, as read by PyYAML (scripts/setup makes sure python3
/// has it), converted to JSON values.
fn yaml_docs(path: &Path) -> Vec<serde_json::Value> {
    let out = run(Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; json.dump(list(yaml.safe_load_all(open(sys.argv[1]))), sys.stdout)",
        ])
        .arg(path));
    serde_json::from_str(&out).unwrap()
}

fn kinds(docs: &[serde_json::Value]) -> Vec<&str> {
    docs.iter().map(|d| d["kind"].as_str().unwrap()).collect()
}

/// deploy/kubernetes/portcullis.yaml: valid YAML with the kinds docs/deploy.md describes,
/// shown there verbatim, its parts referring to each other correctly, and the gate
/// configuration in its ConfigMap accepted by `portcullis check` once the mounted files
/// exist.
#[test]
fn kubernetes_example_is_consistent_and_its_config_checks() {
    let dir = workspace().join("deploy/kubernetes");
    let file = std::fs::read_to_string(dir.join("portcullis.yaml")).unwrap();
    let guide = std::fs::read_to_string(workspace().join("docs/deploy.md")).unwrap();
    assert!(
        guide.contains(&file),
        "docs/deploy.md must show deploy/kubernetes/portcullis.yaml exactly"
    );

    let docs = yaml_docs(&dir.join("portcullis.yaml"));
    assert_eq!(
        kinds(&docs),
        ["ConfigMap", "ConfigMap", "Deployment", "Service"]
    );
    let (config_map, ca_map, deployment, service) = (&docs[0], &docs[1], &docs[2], &docs[3]);
    let pod = &deployment["spec"]["template"];
    assert_eq!(
        deployment["spec"]["selector"]["matchLabels"],
        pod["metadata"]["labels"]
    );
    assert_eq!(service["spec"]["selector"], pod["metadata"]["labels"]);

    let containers = pod["spec"]["containers"].as_array().unwrap();
    let gate = containers.iter().find(|c| c["name"] == "gate").unwrap();
    let port_name = &service["spec"]["ports"][0]["targetPort"];
    let port = gate["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| &p["name"] == port_name)
        .unwrap_or_else(|| panic!("the Service's targetPort {port_name} is not a gate port"));
    assert_eq!(port["containerPort"], 8443);
    assert!(gate["readinessProbe"].is_object(), "no readiness probe");

    // Volumes: every mount is a whole directory (subPath mounts never see updates, so
    // watch_files would not either) from a ConfigMap defined here or the TLS Secret.
    let volumes = pod["spec"]["volumes"].as_array().unwrap();
    let mut mounted = std::collections::BTreeMap::new();
    for m in gate["volumeMounts"].as_array().unwrap() {
        assert!(m.get("subPath").is_none(), "{m}");
        assert_eq!(m["readOnly"], true, "{m}");
        let v = volumes.iter().find(|v| v["name"] == m["name"]).unwrap();
        let source = if let Some(name) = v["configMap"]["name"].as_str() {
            assert!(
                [config_map, ca_map]
                    .iter()
                    .any(|c| c["metadata"]["name"] == name),
                "ConfigMap {name} is not defined"
            );
            format!("configmap:{name}")
        } else {
            format!("secret:{}", v["secret"]["secretName"].as_str().unwrap())
        };
        mounted.insert(m["mountPath"].as_str().unwrap().to_owned(), source);
    }
    let config_dir = mounted
        .iter()
        .find(|(_, s)| **s == "configmap:portcullis-config")
        .unwrap()
        .0;
    assert_eq!(
        gate["args"],
        serde_json::json!(["serve", "-c", format!("{config_dir}/portcullis.toml")])
    );

    // The cert-manager Certificate fills the Secret the pod mounts.
    let cert = yaml_docs(&dir.join("certificate.yaml"));
    assert_eq!(kinds(&cert), ["Certificate"]);
    let secret = format!("secret:{}", cert[0]["spec"]["secretName"].as_str().unwrap());
    let tls_dir = mounted.iter().find(|(_, s)| **s == secret).unwrap().0;
    assert!(tls_dir.starts_with("/etc/portcullis/"));

    // The configuration, with /etc/portcullis/ moved into a scratch directory holding
    // what the mounts would: tls.crt/tls.key (a kubernetes.io/tls Secret), the ConfigMap's
    // keys.
    let tmp = tempfile::tempdir().unwrap();
    make_ca(&bin(), tmp.path());
    let pki = tmp.path().join("pki");
    let etc = tmp.path().join("etc/portcullis");
    let place = |mount: &str, name: &str, from: &[&str]| {
        let dir = etc.join(mount.strip_prefix("/etc/portcullis/").unwrap());
        std::fs::create_dir_all(&dir).unwrap();
        let bytes: Vec<u8> = from
            .iter()
            .flat_map(|f| std::fs::read(pki.join(f)).unwrap())
            .collect();
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    place(tls_dir, "tls.crt", &["issued/localhost.chain.pem"]);
    place(tls_dir, "tls.key", &["issued/localhost.key"]);
    let ca_dir = mounted
        .iter()
        .find(|(_, s)| **s == "configmap:portcullis-client-ca")
        .unwrap()
        .0;
    let ca_keys: Vec<&String> = ca_map["data"].as_object().unwrap().keys().collect();
    assert_eq!(ca_keys, ["client-ca.pem", "crl.pem"]);
    place(ca_dir, "client-ca.pem", &["root.crt", "intermediate.crt"]);
    place(ca_dir, "crl.pem", &["crl.pem"]);
    let toml = config_map["data"]["portcullis.toml"].as_str().unwrap();
    let config = etc.join(config_dir.strip_prefix("/etc/portcullis/").unwrap());
    std::fs::create_dir_all(&config).unwrap();
    let config = config.join("portcullis.toml");
    std::fs::write(
        &config,
        toml.replace("/etc/portcullis/", &format!("{}/", etc.display())),
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["check", "--json", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let out = text(&out);
    assert_eq!(v["ok"], true, "{out}");
    assert_eq!(v["hosts"][0]["client_auth"], "require", "{out}");
}
