//! Instructions instead of seconds: the gate and the bare server under valgrind's
//! callgrind, driven by the bench's own client. Counts repeat exactly from run to run, so
//! this is the mode for finding where the time goes and for checking that a change
//! helped; `BENCH_KEEP=DIR` keeps the profiles for `callgrind_annotate`.

use std::path::Path;
use std::sync::Arc;

use std::process::{Command, Stdio};

use anyhow::{Context, Result};

use crate::client::{Client, Sessions};
use crate::servers::{Backend, Kind, Programs, Server};

/// What the client does once counting starts, in this order.
#[derive(Debug, Clone, Copy)]
struct Work {
    /// Full handshakes, one request each.
    handshakes: usize,
    /// Resumed handshakes, one request each.
    resumptions: usize,
    /// Requests on one connection.
    requests: usize,
}

/// Instructions the server executes for `work`.
fn count(kind: Kind, backend: Backend, dir: &Path, programs: &Programs, work: Work) -> Result<u64> {
    let Work {
        handshakes,
        resumptions,
        requests,
    } = work;
    let out = dir.join(format!(
        "callgrind.{}.{handshakes}.{resumptions}.{requests}",
        kind.name()
    ));
    let valgrind = Programs {
        wrapper: Some(vec![
            "valgrind".into(),
            "--tool=callgrind".into(),
            format!("--callgrind-out-file={}", out.display()),
        ]),
        ..programs.clone()
    };
    let server = Server::start(kind, backend, dir, &valgrind)?;
    let client = Arc::new(Client::new(dir, server.port, "/me", Sessions::Full)?);
    let resuming = Arc::new(Client::new(dir, server.port, "/me", Sessions::Resume)?);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Counting starts after a warm-up: start-up includes aws-lc's jitter entropy
    // collection, hundreds of millions of instructions that vary from run to run.
    rt.block_on(async {
        client.handshakes(10, 1).await?;
        resuming.handshakes(10, 1).await
    })?;
    let already = resuming.resumed();
    let status = Command::new("callgrind_control")
        .args(["--zero", &server.pid().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "callgrind_control failed: {status}");
    rt.block_on(async {
        client.handshakes(handshakes, 1).await?;
        resuming.handshakes(resumptions, 1).await?;
        client.keep_alive(requests).await
    })?;
    anyhow::ensure!(
        resuming.resumed() - already == resumptions,
        "{}: only {} of {resumptions} connections resumed",
        kind.name(),
        resuming.resumed() - already
    );
    // SIGTERM: valgrind writes the profile as the process ends.
    server.terminate()?;
    if let Some(keep) = std::env::var_os("BENCH_KEEP") {
        std::fs::copy(
            &out,
            Path::new(&keep).join(out.file_name().context("name")?),
        )?;
    }
    let text = std::fs::read_to_string(&out)?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no totals in the callgrind profile")
}

/// Per-handshake, per-resumption and per-request instructions from the differences between runs, so that
/// start-up and warm-up cancel out.
pub fn run(dir: &Path, programs: &Programs, backend: Backend) -> Result<()> {
    const BASE: Work = Work {
        handshakes: 20,
        resumptions: 20,
        requests: 200,
    };
    const MORE_HS: usize = 120;
    const MORE_RS: usize = 120;
    const MORE_RQ: usize = 2_200;
    println!("server instructions (valgrind callgrind), differences between runs:");
    let mut per = Vec::new();
    for kind in [Kind::Bare, Kind::Gate, Kind::GateLogged] {
        let more = |work: Work| count(kind, backend, dir, programs, work);
        let base = more(BASE)?;
        let hs = more(Work {
            handshakes: MORE_HS,
            ..BASE
        })?;
        let rs = more(Work {
            resumptions: MORE_RS,
            ..BASE
        })?;
        let rq = more(Work {
            requests: MORE_RQ,
            ..BASE
        })?;
        let per_hs = (hs - base) as f64 / (MORE_HS - BASE.handshakes) as f64;
        let per_rs = (rs - base) as f64 / (MORE_RS - BASE.resumptions) as f64;
        let per_rq = (rq - base) as f64 / (MORE_RQ - BASE.requests) as f64;
        println!(
            "{:<12} {per_hs:>10.0} per full handshake {per_rs:>10.0} per resumed one ({:.2}×) {per_rq:>8.0} per keep-alive request",
            kind.name(),
            per_rs / per_hs
        );
        per.push((per_hs, per_rs, per_rq));
    }
    if let [bare, gate, ..] = &per[..] {
        println!(
            "gate vs bare: {:+.1}% per full handshake, {:+.1}% per resumed one, {:+.1}% per keep-alive request",
            (gate.0 / bare.0 - 1.0) * 100.0,
            (gate.1 / bare.1 - 1.0) * 100.0,
            (gate.2 / bare.2 - 1.0) * 100.0
        );
    }
    Ok(())
}
