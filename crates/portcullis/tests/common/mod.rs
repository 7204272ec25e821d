//! Shared helpers: run the real `portcullis` binary in a temporary directory, with no
//! terminal (so it never prompts) and no PORTCULLIS_* variables leaking in from outside.

// Helpers for tests and benchmarks: a failed setup step should stop the run loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)] // each test binary uses a different subset

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub mod browser;

pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

pub const CA_PASS: &str = "ca passphrase 1";
pub const P12_PASS: &str = "bundle password";
pub const KEY_PASS: &str = "leaf key passphrase";

impl Sandbox {
    /// A sandbox with passphrase files `ca.pass`, `p12.pass` and `key.pass`.
    pub fn new() -> Sandbox {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("ca.pass"), format!("{CA_PASS}\n")).unwrap();
        std::fs::write(dir.path().join("p12.pass"), format!("{P12_PASS}\n")).unwrap();
        std::fs::write(dir.path().join("key.pass"), format!("{KEY_PASS}\n")).unwrap();
        Sandbox { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Runs `portcullis ARGS` in the sandbox.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_env(args, &[])
    }

    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_portcullis"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .env_remove("PORTCULLIS_CA_PASSPHRASE")
            .env_remove("PORTCULLIS_KEY_PASSPHRASE")
            .env_remove("PORTCULLIS_P12_PASSWORD")
            .env_remove("PORTCULLIS_JAVA_STOREPASS");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run portcullis")
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "portcullis {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs and asserts exit status 2 (an error); returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(2),
            "portcullis {args:?} should fail cleanly; stdout:\n{}stderr:\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(!stderr.contains("panicked"), "panic: {stderr}");
        stderr
    }

    /// `pki init` with an encrypted CA key (and an intermediate when asked).
    pub fn init_ca(&self, intermediate: bool) {
        let mut args = vec!["pki", "init", "--ca-passphrase-file", "ca.pass"];
        if intermediate {
            args.push("--intermediate");
        }
        self.ok(&args);
    }

    /// `pki issue client NAME` without a PKCS#12 bundle.
    pub fn issue_client(&self, name: &str) {
        self.ok(&[
            "pki",
            "issue",
            "client",
            name,
            "--no-p12",
            "--ca-passphrase-file",
            "ca.pass",
        ]);
    }

    /// `pki revoke FILE --reason REASON`, which also publishes the CRL.
    pub fn revoke(&self, cert: &str, reason: &str) {
        self.ok(&[
            "pki",
            "revoke",
            cert,
            "--reason",
            reason,
            "--ca-passphrase-file",
            "ca.pass",
        ]);
    }

    /// A P-256 key and CSR made by `openssl req`: STEM.key and STEM.csr, with `extra`
    /// arguments (e.g. `-addext subjectAltName=…`).
    pub fn openssl_csr(&self, stem: &str, subject: &str, extra: &[&str]) {
        let (key, csr) = (format!("{stem}.key"), format!("{stem}.csr"));
        self.openssl_req("-new", &key, &csr, subject, extra);
    }

    /// A P-256 key and a self-signed certificate valid for 30 days, made by `openssl req`
    /// (paths relative to the sandbox), with `extra` arguments.
    pub fn openssl_self_signed(&self, key: &str, cert: &str, subject: &str, extra: &[&str]) {
        let mut args = vec!["-days", "30"];
        args.extend_from_slice(extra);
        self.openssl_req("-x509", key, cert, subject, &args);
    }

    fn openssl_req(&self, what: &str, key: &str, out: &str, subject: &str, extra: &[&str]) {
        let mut args = vec![
            "req",
            what,
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            key,
            "-out",
            out,
            "-subj",
            subject,
        ];
        args.extend_from_slice(extra);
        let out = self.tool("openssl", &args);
        assert!(out.status.success(), "openssl req: {}", text(&out));
    }

    /// Runs an external tool in the sandbox and returns its output.
    pub fn tool(&self, program: &str, args: &[&str]) -> Output {
        Command::new(program)
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
    }

    /// Runs a Node.js script (given as source) with arguments.
    pub fn node(&self, script: &str, args: &[&str]) -> Output {
        let file = self.path("script.cjs");
        std::fs::write(&file, script).unwrap();
        let mut all = vec![file.to_str().unwrap()];
        all.extend_from_slice(args);
        self.tool("node", &all)
    }

    /// Names of all files under the sandbox (relative), sorted.
    pub fn files(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk(self.dir.path(), self.dir.path(), &mut out);
        out.sort();
        out
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(root, &p, out);
        } else {
            out.push(p.strip_prefix(root).unwrap().display().to_string());
        }
    }
}

/// Runs `cmd` with a hard time limit; stdout and stderr go to files under `logs` (Chromium
/// writes a lot to stderr). Returns (success, stdout, stderr). A program that is not
/// installed fails the test with the reason. Past the limit, the program and everything it
/// started (it runs in a process group of its own) are killed and the test fails.
pub fn bounded(mut cmd: Command, limit: Duration, logs: &Path) -> (bool, String, String) {
    std::fs::create_dir_all(logs).unwrap();
    let (out, err) = (logs.join("stdout"), logs.join("stderr"));
    cmd.stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .process_group(0);
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        panic!(
            "cannot run {:?} ({e}): scripts/setup installs it",
            cmd.get_program()
        )
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            // The group's id is the child's pid; kill(1) because the crate forbids unsafe.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} did not finish within {limit:?}; its stderr:\n{}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (
        status.success(),
        std::fs::read_to_string(out).unwrap(),
        std::fs::read_to_string(err).unwrap(),
    )
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

impl Sandbox {
    /// Runs `portcullis ARGS` in the sandbox's subdirectory `sub` (created if needed).
    pub fn run_in(&self, sub: &str, args: &[&str]) -> Output {
        let cwd = self.path(sub);
        std::fs::create_dir_all(&cwd).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_portcullis"));
        cmd.args(args)
            .current_dir(&cwd)
            .stdin(Stdio::null())
            .env_remove("PORTCULLIS_CA_PASSPHRASE")
            .env_remove("PORTCULLIS_KEY_PASSPHRASE")
            .env_remove("PORTCULLIS_P12_PASSWORD");
        cmd.output().expect("run portcullis")
    }
}
