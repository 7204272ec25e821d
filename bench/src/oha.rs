//! Load from oha (https://github.com/hatoo/oha), pinned to the client CPU, read from its
//! JSON summary.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::pki;
use crate::servers::{CLIENT_CPU, pinned};

/// How oha drives the server.
pub enum Load {
    /// `requests` requests over `connections` keep-alive connections, as fast as it can.
    Requests { requests: u64, connections: u32 },
    /// `rate` requests per second for `seconds`, latency corrected for coordinated omission.
    Rate {
        rate: u32,
        seconds: u32,
        connections: u32,
    },
}

#[derive(Debug, Deserialize)]
struct Report {
    summary: Summary,
    metrics: Metrics,
    #[serde(rename = "statusCodeDistribution")]
    status: std::collections::BTreeMap<String, u64>,
    #[serde(rename = "errorDistribution")]
    errors: std::collections::BTreeMap<String, u64>,
}

#[derive(Debug, Deserialize)]
struct Summary {
    #[serde(rename = "requestsPerSec")]
    requests_per_sec: f64,
}

#[derive(Debug, Deserialize)]
struct Metrics {
    latency_ms: Latency,
}

#[derive(Debug, Deserialize)]
struct Latency {
    p50: f64,
    p99: f64,
}

/// What a run measured.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub requests: u64,
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

pub fn run(oha: &Path, dir: &Path, port: u16, path: &str, load: &Load) -> Result<Outcome> {
    let mut command = pinned(CLIENT_CPU, oha);
    command
        .args(["--no-tui", "--output-format", "json", "--ipv4"])
        .arg("--cacert")
        .arg(dir.join(pki::ROOT))
        .arg("--cert")
        .arg(dir.join(pki::CLIENT_CHAIN))
        .arg("--key")
        .arg(dir.join(pki::CLIENT_KEY));
    match load {
        Load::Requests {
            requests,
            connections,
        } => command.args(["-n", &requests.to_string(), "-c", &connections.to_string()]),
        Load::Rate {
            rate,
            seconds,
            connections,
        } => command.args([
            "-q",
            &rate.to_string(),
            "-z",
            &format!("{seconds}s"),
            "-c",
            &connections.to_string(),
            "--latency-correction",
            // Requests in flight at the deadline are waited for, not counted as errors.
            "-w",
        ]),
    };
    command.arg(format!("https://localhost:{port}{path}"));
    let output = command.output().context("running oha")?;
    if !output.status.success() {
        bail!(
            "oha failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let report: Report = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "reading oha's JSON: {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })?;
    let ok = report.status.get("200").copied().unwrap_or(0);
    let others: u64 = report
        .status
        .iter()
        .filter(|(code, _)| *code != "200")
        .map(|(_, n)| n)
        .sum();
    if others > 0 || !report.errors.is_empty() {
        bail!(
            "not every request succeeded: statuses {:?}, errors {:?}",
            report.status,
            report.errors
        );
    }
    Ok(Outcome {
        requests: ok,
        requests_per_sec: report.summary.requests_per_sec,
        p50_ms: report.metrics.latency_ms.p50,
        p99_ms: report.metrics.latency_ms.p99,
    })
}
