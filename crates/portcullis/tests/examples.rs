//! The applications in `examples/` run their own test suites against this build of the
//! binary (`PORTCULLIS_BIN`): each makes a CA, starts the gate and the app, and checks
//! what the app sees through the gate. A missing tool (node, npm) is a failure, not a skip.

// Test code: a failed step should stop the test loudly, with what the tool printed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}

/// Runs `program args` in `dir` with `PORTCULLIS_BIN` set, for at most `limit`, and
/// returns what it printed (stdout and stderr, interleaved). Panics with that output when
/// it fails or runs out of time; on time-out its whole process group (npm, node, and the
/// gate and app they started) is killed.
fn run(dir: &Path, program: &str, args: &[&str], limit: Duration) -> String {
    let mut log = tempfile::tempfile().unwrap();
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("PORTCULLIS_BIN", env!("CARGO_BIN_EXE_portcullis"))
        .env("npm_config_update_notifier", "false")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log.try_clone().unwrap())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{program}` ({e}): this test needs Node.js and npm on PATH \
                 (`bash scripts/setup` installs them)"
            )
        });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut output = String::new();
    std::io::Seek::rewind(&mut log).unwrap();
    log.read_to_string(&mut output).unwrap();
    let what = format!("`{program} {}` in {}", args.join(" "), dir.display());
    match status {
        Some(s) if s.success() => {
            eprintln!("{what}: {:.1} s", started.elapsed().as_secs_f64());
            output
        }
        Some(s) => panic!("{what} failed ({s}):\n{output}"),
        None => panic!("{what} did not finish in {limit:?}:\n{output}"),
    }
}

/// examples/express: `npm ci` from the committed lockfile, then `npm test` (node:test)
/// drives the real gate and the Express app with real certificates.
#[test]
fn express_example_npm_test_passes() {
    let dir = example("express");
    run(
        &dir,
        "npm",
        &["ci", "--prefer-offline", "--no-audit", "--no-fund"],
        Duration::from_secs(150),
    );
    let output = run(&dir, "npm", &["test"], Duration::from_secs(120));
    // node:test's summary: every test ran and passed (none skipped or left out).
    assert!(output.contains("# fail 0"), "{output}");
    assert!(!output.contains("# pass 0"), "{output}");
}
