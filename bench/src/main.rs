//! `portcullis-bench`: the gate side by side with nginx and a bare rustls + hyper server
//! on the same certificates. `bench/run` installs what it needs, builds, and runs
//! `portcullis-bench run`; docs/performance.md explains the method.
//!
//! The servers run on CPU 0, the load (oha, the bench's own client) and the upstream on
//! CPU 1. What is compared is the server's CPU time per operation, read from /proc, and
//! its resident memory per idle connection.

// A benchmark harness: setup failures should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bare;
mod client;
mod instructions;
mod oha;
mod pairs;
mod pki;
mod report;
mod servers;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::client::Sessions;
use crate::report::{Measurement, Variant};
use crate::servers::{Backend, Kind, Programs, Server};

#[derive(Parser)]
#[command(about = "The gate side by side with nginx and a bare rustls + hyper server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the comparison and print a markdown table.
    Run(RunArgs),
    /// The goals decided by a few percent, two servers at a time, loaded in turn in
    /// short slices: steadier than `run` on a host whose speed drifts.
    Pairs(PairsArgs),
    /// User-space instructions (valgrind's callgrind) and system calls (strace) per
    /// handshake and per request: nginx, the bare server and the gate, serving a page or
    /// (--proxy) proxying. Repeatable where CPU time is not.
    Instructions {
        #[arg(long)]
        proxy: bool,
        #[command(flatten)]
        programs: ProgramArgs,
    },
    /// The bench's own client against a server already running (for profiling it with
    /// perf or strace): handshakes, then keep-alive requests on one connection.
    Load {
        /// The directory of a `run --dir DIR` (for its certificates).
        dir: PathBuf,
        port: u16,
        #[arg(long, default_value_t = 1000)]
        handshakes: usize,
        /// Resume sessions: every handshake after the first few is a resumption.
        #[arg(long)]
        resume: bool,
        #[arg(long, default_value_t = 0)]
        requests: usize,
        /// Then open this many connections and hold them for five seconds.
        #[arg(long, default_value_t = 0)]
        hold: usize,
    },
    /// (internal) The bare rustls + hyper server, on the certificates in DIR.
    Bare {
        dir: PathBuf,
        /// Pass every request to the upstream on this port instead of answering "ok".
        #[arg(long)]
        upstream: Option<u16>,
    },
    /// (internal) The plain-HTTP upstream the proxies forward to.
    Upstream,
}

#[derive(Args)]
struct RunArgs {
    /// Rounds; each measures every server once, interleaved.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Full handshakes per measurement (each with one request), and as many resumed. The
    /// kernel counts CPU time in 10 ms ticks: 8,000 handshakes of 250 µs are 200 ticks, so
    /// one tick more or less moves the figure by 0.5% (by 1% with 4,000).
    #[arg(long, default_value_t = 8000)]
    handshakes: usize,
    /// Keep-alive requests per measurement.
    #[arg(long, default_value_t = 200_000)]
    requests: u64,
    /// Idle connections held for the memory measurement.
    #[arg(long, default_value_t = 10_000)]
    idle: usize,
    /// Requests per second for the latency measurement.
    #[arg(long, default_value_t = 20_000)]
    rate: u32,
    /// Seconds of load at that rate. oha opens its 50 connections when it starts, and the
    /// requests queued behind those handshakes count in the latency: under 10 s they
    /// decide the p99 (nginx's in 5 s: 25 ms; in 15 s: 1.5 ms).
    #[arg(long, default_value_t = 15)]
    rate_seconds: u32,
    #[command(flatten)]
    programs: ProgramArgs,
    /// Measure only the servers whose label contains one of these (e.g. `bare`,
    /// `whoami`, `proxy`); default all.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Work in this directory (certificates, configs, server logs) and keep it, instead
    /// of a temporary one.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Where to write the results as JSON.
    #[arg(long, default_value = "bench/results.json")]
    json: PathBuf,
}

#[derive(Args)]
struct PairsArgs {
    #[command(flatten)]
    sizes: pairs::Sizes,
    /// Run only the pairs whose goal contains one of these (e.g. `handshake`, `proxied`).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    #[command(flatten)]
    programs: ProgramArgs,
    /// Where to write the slices and ratios as JSON.
    #[arg(long, default_value = "bench/pairs.json")]
    json: PathBuf,
}

#[derive(Args)]
struct ProgramArgs {
    /// The `portcullis` binary (default: next to this one).
    #[arg(long)]
    portcullis: Option<PathBuf>,
    #[arg(long, default_value = "oha")]
    oha: PathBuf,
    #[arg(long, default_value = "/usr/sbin/nginx")]
    nginx: PathBuf,
}

impl ProgramArgs {
    fn programs(&self) -> Result<Programs> {
        let bench = std::env::current_exe()?;
        Ok(Programs {
            portcullis: match &self.portcullis {
                Some(p) => p.clone(),
                None => bench.with_file_name("portcullis"),
            },
            bench,
            nginx: self.nginx.clone(),
            oha: self.oha.clone(),
            wrapper: None,
        })
    }
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Bare { dir, upstream } => bare::serve_tls(&dir, upstream),
        Command::Upstream => bare::serve_upstream(),
        Command::Run(args) => run(args),
        Command::Pairs(args) => run_pairs(args),
        Command::Load {
            dir,
            port,
            handshakes,
            resume,
            requests,
            hold,
        } => {
            let sessions = if resume {
                Sessions::Resume
            } else {
                Sessions::Full
            };
            let client = Arc::new(client::Client::new(&dir, port, "/me", sessions)?);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                client.handshakes(handshakes, 4).await?;
                if requests > 0 {
                    client.keep_alive(requests).await?;
                }
                let held = client.hold(hold, 8).await?;
                tokio::time::sleep(Duration::from_secs(5)).await;
                drop(held);
                Ok(())
            })
        }
        Command::Instructions { proxy, programs } => {
            let programs = programs.programs()?;
            let dir = tempfile::tempdir()?;
            pki::create(dir.path())?;
            if !proxy {
                return instructions::run(dir.path(), &programs, Backend::Builtin);
            }
            let (_upstream, port) = start_upstream(&programs)?;
            instructions::run(dir.path(), &programs, Backend::Proxy { port })
        }
    }
}

/// The variants compared, in the order each round measures them.
const VARIANTS: [Variant; 10] = [
    Variant::new(Kind::Nginx, false),
    Variant::new(Kind::Bare, false),
    Variant::new(Kind::Gate, false),
    Variant::new(Kind::GateLogged, false),
    Variant::new(Kind::NginxLogged, false),
    Variant::new(Kind::Nginx, true),
    Variant::new(Kind::Bare, true),
    Variant::new(Kind::Gate, true),
    Variant::new(Kind::GateLogged, true),
    Variant::new(Kind::NginxLogged, true),
];

fn run(args: RunArgs) -> Result<()> {
    let programs = args.programs.programs()?;
    let temporary = tempfile::tempdir()?;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            std::path::absolute(d)?
        }
        None => temporary.path().to_owned(),
    };
    let dir = dir.as_path();
    if !dir.join(pki::ROOT).exists() {
        pki::create(dir)?;
    }
    let machine = report::Machine::read(&programs)?;
    eprintln!("{machine}");

    let (_upstream, upstream_port) = start_upstream(&programs)?;

    let mut results = Vec::new();
    for round in 1..=args.runs {
        for variant in VARIANTS {
            let label = variant.label();
            if !args.only.is_empty() && !args.only.iter().any(|o| label.contains(o.as_str())) {
                continue;
            }
            eprint!("round {round}/{}: {:<28} ", args.runs, variant.label());
            let backend = variant.backend(upstream_port);
            let before = upstream_connections(upstream_port)?;
            let server = Server::start(variant.kind, backend, dir, &programs)?;
            let mut m = measure(&server, variant, dir, &programs, &args)
                .with_context(|| format!("measuring {}", variant.label()))?;
            drop(server);
            if variant.proxy {
                // Less one: the query for `before` was a connection too.
                m.upstream_connections = Some(upstream_connections(upstream_port)? - before - 1);
            }
            eprintln!("{m}");
            results.push((variant, m));
        }
    }

    let summary = report::Summary::new(&results);
    println!("{}", summary.markdown(&machine, &args_line(&args)));
    let json = serde_json::json!({
        "machine": machine,
        "parameters": {
            "runs": args.runs, "handshakes": args.handshakes, "requests": args.requests,
            "idle_connections": args.idle, "rate": args.rate, "rate_seconds": args.rate_seconds,
        },
        "summary": summary,
        "measurements": results.iter().map(|(v, m)| serde_json::json!({
            "server": v.label(), "measurement": m,
        })).collect::<Vec<_>>(),
    });
    write_json(&args.json, &json)
}

fn run_pairs(args: PairsArgs) -> Result<()> {
    let programs = args.programs.programs()?;
    let dir = tempfile::tempdir()?;
    pki::create(dir.path())?;
    let machine = report::Machine::read(&programs)?;
    eprintln!("{machine}");
    let (_upstream, upstream_port) = start_upstream(&programs)?;
    let sizes = args.sizes;
    let chosen: Vec<&pairs::Pair> = pairs::PAIRS
        .iter()
        .filter(|p| args.only.is_empty() || args.only.iter().any(|o| p.goal.contains(o.as_str())))
        .collect();
    let mut outcomes: Vec<pairs::Outcome> = chosen.iter().map(|p| pairs::Outcome::new(p)).collect();
    for round in 1..=sizes.rounds {
        for (pair, outcome) in chosen.iter().zip(&mut outcomes) {
            eprint!("round {round}/{}: {:<60} ", sizes.rounds, pair.goal);
            let slices = pairs::run(pair, upstream_port, dir.path(), &programs, sizes)
                .with_context(|| format!("measuring {}", pair.goal))?;
            match slices.ratio() {
                Some(r) => eprintln!("{:.3}× ({:.3}–{:.3})", r.median, r.min, r.max),
                None => eprintln!("no slices"),
            }
            outcome.rounds.push(slices);
        }
    }
    println!("{}\n{machine}", pairs::markdown(&outcomes, sizes));
    let json = serde_json::json!({
        "machine": machine,
        "sizes": sizes,
        "pairs": outcomes.iter().map(|o| serde_json::json!({
            "outcome": o, "ratio": o.ratio(), "met": o.met(),
        })).collect::<Vec<_>>(),
    });
    write_json(&args.json, &json)
}

fn write_json(path: &Path, json: &serde_json::Value) -> Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(json)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// The shared upstream, on the client CPU; stopped when dropped.
struct Upstream(std::process::Child);

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_upstream(programs: &Programs) -> Result<(Upstream, u16)> {
    let mut upstream = servers::pinned(servers::CLIENT_CPU, &programs.bench)
        .arg("upstream")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting the upstream")?;
    let port = servers::announced_port(&mut upstream)?;
    Ok((Upstream(upstream), port))
}

fn args_line(args: &RunArgs) -> String {
    format!(
        "{} rounds; {} full handshakes, as many resumed, {} keep-alive requests (16 connections), {} idle connections, {} requests/s for {} s (50 connections) per measurement",
        args.runs, args.handshakes, args.requests, args.idle, args.rate, args.rate_seconds
    )
}

fn measure(
    server: &Server,
    variant: Variant,
    dir: &Path,
    programs: &Programs,
    args: &RunArgs,
) -> Result<Measurement> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = Arc::new(client::Client::new(
        dir,
        server.port,
        "/me",
        Sessions::Full,
    )?);
    let per = |cpu: f64, n: f64| cpu * 1e6 / n;

    // Warm up: the first connections fill caches and grow the allocator's pools.
    rt.block_on(client.handshakes(200, 4))?;

    let cpu = server.cpu_seconds()?;
    rt.block_on(client.handshakes(args.handshakes, 4))?;
    let handshake_us = per(server.cpu_seconds()? - cpu, args.handshakes as f64);

    // Resumptions: a client that keeps the tickets it is given. Its first connections are
    // full handshakes; after the warm-up, every connection must resume, or the figure
    // would mix the two.
    let resuming = Arc::new(client::Client::new(
        dir,
        server.port,
        "/me",
        Sessions::Resume,
    )?);
    rt.block_on(resuming.handshakes(200, 4))?;
    let already = resuming.resumed();
    let cpu = server.cpu_seconds()?;
    rt.block_on(resuming.handshakes(args.handshakes, 4))?;
    let resumed_us = per(server.cpu_seconds()? - cpu, args.handshakes as f64);
    let resumed = resuming.resumed() - already;
    anyhow::ensure!(
        resumed == args.handshakes,
        "only {resumed} of {} connections resumed a session",
        args.handshakes
    );

    let cpu = server.cpu_seconds()?;
    let load = oha::Load::Requests {
        requests: args.requests,
        connections: 16,
    };
    let keepalive = oha::run(&programs.oha, dir, server.port, "/me", &load)?;
    let request_us = per(server.cpu_seconds()? - cpu, keepalive.requests as f64);

    let load = oha::Load::Rate {
        rate: args.rate,
        seconds: args.rate_seconds,
        connections: 50,
    };
    let at_rate = oha::run(&programs.oha, dir, server.port, "/me", &load)?;

    let mut idle = None;
    // Memory is judged on its own (≤ 20 KiB), so nginx's log variant skips it.
    if !variant.proxy && variant.kind != Kind::NginxLogged {
        std::thread::sleep(Duration::from_millis(500));
        let rss = server.rss_kib()?;
        let held = rt.block_on(client.hold(args.idle, 8))?;
        // Idle means idle for a while: the gate gives an HTTP/1.1 connection's buffers
        // back after one to two seconds without a request (docs/gate.md).
        std::thread::sleep(Duration::from_secs(3));
        let kib = (server.rss_kib()? - rss) as f64 / args.idle as f64;
        // The held connections must not stop the server from serving someone else.
        let load = oha::Load::Requests {
            requests: 20_000,
            connections: 4,
        };
        let meanwhile = oha::run(&programs.oha, dir, server.port, "/me", &load)?;
        idle = Some(report::Idle {
            kib_per_connection: kib,
            served_meanwhile_p99_ms: meanwhile.p99_ms,
        });
        drop(held);
    }
    Ok(Measurement {
        handshake_us,
        resumed_us,
        request_us,
        requests_per_s: keepalive.requests_per_sec,
        p50_ms_at_rate: at_rate.p50_ms,
        p99_ms_at_rate: at_rate.p99_ms,
        idle,
        upstream_connections: None,
    })
}

/// How many connections the upstream has accepted so far.
fn upstream_connections(port: u16) -> Result<u64> {
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port))?;
    tcp.write_all(b"GET /connections HTTP/1.1\r\nhost: upstream\r\nconnection: close\r\n\r\n")?;
    let mut reply = String::new();
    tcp.read_to_string(&mut reply)?;
    let body = reply.split("\r\n\r\n").nth(1).context("no body")?;
    Ok(body.trim().parse()?)
}
