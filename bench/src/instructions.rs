//! Counts instead of seconds: nginx (one process, no master), the bare server and the gate,
//! driven by the bench's own client, with their user-space instructions counted by
//! valgrind's callgrind and their system calls by strace. The counts repeat almost exactly
//! from run to run, so this is the mode for finding where the time goes, for checking that
//! a change helped, and for comparing servers on a host too noisy for CPU time.
//! `BENCH_KEEP=DIR` keeps the profiles for `callgrind_annotate` and strace's tables.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::client::{Client, Sessions};
use crate::servers::{Backend, Kind, Programs, Server, signal_and_wait};

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

#[derive(Debug, Clone, Copy)]
enum Counter {
    /// User-space instructions, under valgrind's callgrind.
    Instructions,
    /// System calls: the kernel's share, which callgrind does not see. strace is attached
    /// after the warm-up and counts every thread.
    SystemCalls,
}

impl Counter {
    fn name(self) -> &'static str {
        match self {
            Counter::Instructions => "callgrind",
            Counter::SystemCalls => "strace",
        }
    }
}

/// What `counter` counts while the server does `work`.
fn count(
    counter: Counter,
    kind: Kind,
    backend: Backend,
    dir: &Path,
    programs: &Programs,
    work: Work,
) -> Result<u64> {
    let Work {
        handshakes,
        resumptions,
        requests,
    } = work;
    let out = dir.join(format!(
        "{}.{}.{handshakes}.{resumptions}.{requests}",
        counter.name(),
        kind.name()
    ));
    let server = match counter {
        Counter::Instructions => {
            let valgrind = Programs {
                wrapper: Some(vec![
                    "valgrind".into(),
                    "--tool=callgrind".into(),
                    format!("--callgrind-out-file={}", out.display()),
                ]),
                ..programs.clone()
            };
            Server::start(kind, backend, dir, &valgrind)?
        }
        Counter::SystemCalls => Server::start(kind, backend, dir, programs)?,
    };
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
    let strace = match counter {
        Counter::Instructions => {
            let status = Command::new("callgrind_control")
                .args(["--zero", &server.pid().to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()?;
            anyhow::ensure!(status.success(), "callgrind_control failed: {status}");
            None
        }
        Counter::SystemCalls => Some(attach_strace(&server, &out)?),
    };
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
    if let Some(mut strace) = strace {
        // SIGINT: strace detaches and writes its table.
        signal_and_wait(&mut strace, "INT", "strace")?;
    }
    // SIGTERM: valgrind writes the profile as the process ends.
    server.terminate()?;
    if let Some(keep) = std::env::var_os("BENCH_KEEP") {
        std::fs::copy(
            &out,
            Path::new(&keep).join(out.file_name().context("name")?),
        )?;
    }
    let text = std::fs::read_to_string(&out)?;
    match counter {
        Counter::Instructions => text
            .lines()
            .find_map(|l| {
                l.strip_prefix("summary:")
                    .or_else(|| l.strip_prefix("totals:"))
            })
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .context("no totals in the callgrind profile"),
        // `100.00  0.116092  4  25953  2597 total`: the calls are the fourth column.
        Counter::SystemCalls => text
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|t| t.last() == Some(&"total"))
            .and_then(|t| t.get(3)?.parse().ok())
            .with_context(|| format!("no total in strace's table {}", out.display())),
    }
}

/// strace attached to every thread of the server's processes, counting into `out`; returns
/// once it has said it attached to each process (`Process N attached with K threads`).
fn attach_strace(server: &Server, out: &Path) -> Result<Child> {
    let mut command = Command::new("strace");
    command.args(["-f", "-c", "-o"]).arg(out);
    let processes = server.processes()?;
    for pid in &processes {
        command.arg("-p").arg(pid.to_string());
    }
    let mut strace = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting strace (apt-get install strace)")?;
    let stderr = strace.stderr.take().context("no stderr")?;
    let (tx, rx) = mpsc::channel();
    // Reads strace's messages to the end, so that it never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(" attached") && tx.send(()).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    for _ in &processes {
        let left = deadline.saturating_duration_since(Instant::now());
        if rx.recv_timeout(left).is_err() {
            let _ = strace.kill();
            bail!("strace did not attach to the server's processes {processes:?} in 10 s");
        }
    }
    Ok(strace)
}

/// Per full handshake, per resumed one and per keep-alive request.
type PerOperation = [f64; 3];

/// Per-operation counts from the differences between runs, so that start-up and warm-up
/// cancel out.
fn per_operation(
    counter: Counter,
    kind: Kind,
    backend: Backend,
    dir: &Path,
    programs: &Programs,
) -> Result<PerOperation> {
    const BASE: Work = Work {
        handshakes: 20,
        resumptions: 20,
        requests: 200,
    };
    const MORE: Work = Work {
        handshakes: 120,
        resumptions: 120,
        requests: 2_200,
    };
    let more = |work: Work| count(counter, kind, backend, dir, programs, work);
    let base = more(BASE)? as f64;
    let hs = more(Work {
        handshakes: MORE.handshakes,
        ..BASE
    })? as f64;
    let rs = more(Work {
        resumptions: MORE.resumptions,
        ..BASE
    })? as f64;
    let rq = more(Work {
        requests: MORE.requests,
        ..BASE
    })? as f64;
    Ok([
        (hs - base) / (MORE.handshakes - BASE.handshakes) as f64,
        (rs - base) / (MORE.resumptions - BASE.resumptions) as f64,
        (rq - base) / (MORE.requests - BASE.requests) as f64,
    ])
}

pub fn run(dir: &Path, programs: &Programs, backend: Backend) -> Result<()> {
    println!(
        "per full handshake, per resumed one and per keep-alive request (differences between runs):\n\
         user-space instructions (valgrind callgrind) | system calls (strace -c)"
    );
    let kinds = [
        Kind::Nginx,
        Kind::NginxLogged,
        Kind::Bare,
        Kind::Gate,
        Kind::GateLogged,
    ];
    let mut instructions = Vec::new();
    for kind in kinds {
        let i = per_operation(Counter::Instructions, kind, backend, dir, programs)?;
        let s = per_operation(Counter::SystemCalls, kind, backend, dir, programs)?;
        println!(
            "{:<15} {:>10.0} {:>10.0} {:>8.0} | {:>5.1} {:>5.1} {:>5.2}",
            kind.name(),
            i[0],
            i[1],
            i[2],
            s[0],
            s[1],
            s[2]
        );
        instructions.push(i);
    }
    if let [nginx, nginx_log, bare, gate, gate_log] = &instructions[..] {
        for (gate, name, nginx, nginx_name) in [
            (gate, "gate", nginx, "nginx"),
            (gate_log, "gate+log", nginx_log, "nginx+log"),
        ] {
            for (other, against) in [(bare, "bare"), (nginx, nginx_name)] {
                let r = |i: usize| gate[i] / other[i];
                println!(
                    "instructions, {name} vs {against}: {:.3}× per full handshake, {:.3}× per resumed one, {:.3}× per keep-alive request",
                    r(0),
                    r(1),
                    r(2)
                );
            }
        }
    }
    Ok(())
}
