//! What a measurement holds, and the summary: medians with min–max over the rounds, the
//! ratios the performance goals are stated in, as markdown and JSON.

use std::fmt;
use std::process::Command;

use anyhow::Result;
use serde::Serialize;

use crate::servers::{Backend, Kind, Programs};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variant {
    pub kind: Kind,
    pub proxy: bool,
}

impl Variant {
    pub const fn new(kind: Kind, proxy: bool) -> Variant {
        Variant { kind, proxy }
    }

    /// What is behind the server: the built-in page, or the upstream on `upstream`.
    pub fn backend(self, upstream: u16) -> Backend {
        if self.proxy {
            Backend::Proxy { port: upstream }
        } else {
            Backend::Builtin
        }
    }

    pub fn label(self) -> String {
        match (self.kind, self.proxy) {
            (Kind::Nginx | Kind::NginxLogged, false) => {
                format!("{} `return 200`", self.kind.name())
            }
            (Kind::Nginx | Kind::NginxLogged, true) => format!("{} `proxy_pass`", self.kind.name()),
            (Kind::Bare, false) => "bare rustls + hyper".into(),
            (Kind::Bare, true) => "bare rustls + hyper proxying".into(),
            (kind, false) => format!("{} `builtin:whoami`", kind.name()),
            (kind, true) => format!("{} proxying", kind.name()),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Idle {
    pub kib_per_connection: f64,
    /// p99 of 20,000 keep-alive requests from another client while the idle ones are held.
    pub served_meanwhile_p99_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    /// Server CPU per new connection: a full handshake and one request.
    pub handshake_us: f64,
    /// Server CPU per connection that resumes a session (TLS 1.3 ticket) and makes one
    /// request.
    pub resumed_us: f64,
    /// Server CPU per keep-alive request.
    pub request_us: f64,
    pub requests_per_s: f64,
    pub p50_ms_at_rate: f64,
    pub p99_ms_at_rate: f64,
    pub idle: Option<Idle>,
    /// New connections the upstream accepted during the measurement (proxies only).
    pub upstream_connections: Option<u64>,
}

impl fmt::Display for Measurement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:.0} µs/handshake, {:.0} µs/resumption, {:.1} µs/request, p99 {:.2} ms",
            self.handshake_us, self.resumed_us, self.request_us, self.p99_ms_at_rate
        )?;
        if let Some(idle) = &self.idle {
            write!(f, ", {:.1} KiB/idle connection", idle.kib_per_connection)?;
        }
        if let Some(n) = self.upstream_connections {
            write!(f, ", {n} new upstream connections")?;
        }
        Ok(())
    }
}

/// Median and range of one figure over the rounds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(mut values: Vec<f64>) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = if n % 2 == 1 {
            values[n / 2]
        } else {
            (values[n / 2 - 1] + values[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: values[0],
            max: values[n - 1],
        })
    }

    pub fn cell(spread: Option<Spread>, decimals: usize) -> String {
        match spread {
            None => "—".into(),
            Some(s) => format!(
                "{:.d$} ({:.d$}–{:.d$})",
                s.median,
                s.min,
                s.max,
                d = decimals
            ),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub server: String,
    pub handshake_us: Option<Spread>,
    pub resumed_us: Option<Spread>,
    pub request_us: Option<Spread>,
    pub idle_kib: Option<Spread>,
    pub p99_ms_at_rate: Option<Spread>,
    pub requests_per_s: Option<Spread>,
    pub upstream_connections: Option<u64>,
}

/// One figure of a measurement.
type Field = fn(&Measurement) -> Option<f64>;

/// What a goal's figure is divided by.
#[derive(Debug, Clone, Copy)]
enum Against {
    /// The bare server with the built-in page.
    Bare,
    /// nginx serving the same way, with its access log off for the gate without its log
    /// and on for the gate with it: like for like.
    Nginx,
    /// The same server's full handshake.
    OwnFullHandshake,
    /// Nothing: the goal is an absolute figure.
    Nothing,
}

#[derive(Debug, Clone, Serialize)]
pub struct Goal {
    pub goal: String,
    /// With the access log off, then on; `None` where a server it needs was not measured
    /// (`--only`).
    pub measured: [Option<f64>; 2],
    /// The same ratio within each round, its median and range, with the access log off,
    /// then on. A round runs every server once, one after the other, so its servers share
    /// the machine's state of the moment; the range shows how far that moves a ratio.
    pub rounds: [Option<Spread>; 2],
    pub limit: f64,
    pub unit: &'static str,
    pub met: [Option<bool>; 2],
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub rows: Vec<Row>,
    pub goals: Vec<Goal>,
}

impl Summary {
    pub fn new(results: &[(Variant, Measurement)]) -> Summary {
        let mut variants: Vec<Variant> = Vec::new();
        for (v, _) in results {
            if !variants.contains(v) {
                variants.push(*v);
            }
        }
        // One figure of one server, round by round.
        let values = |v: Variant, f: Field| -> Vec<f64> {
            results
                .iter()
                .filter(|(w, _)| *w == v)
                .filter_map(|(_, m)| f(m))
                .collect()
        };
        let row = |v: Variant| {
            let of = |f: Field| Spread::of(values(v, f));
            Row {
                server: v.label(),
                handshake_us: of(|m| Some(m.handshake_us)),
                resumed_us: of(|m| Some(m.resumed_us)),
                request_us: of(|m| Some(m.request_us)),
                idle_kib: of(|m| m.idle.as_ref().map(|i| i.kib_per_connection)),
                p99_ms_at_rate: of(|m| Some(m.p99_ms_at_rate)),
                requests_per_s: of(|m| Some(m.requests_per_s)),
                upstream_connections: results
                    .iter()
                    .filter(|(w, _)| *w == v)
                    .filter_map(|(_, m)| m.upstream_connections)
                    .max(),
            }
        };
        let rows: Vec<Row> = variants.iter().map(|v| row(*v)).collect();
        let median = |v: Variant, f: Field| Spread::of(values(v, f)).map(|s| s.median);
        let gates = |proxy| {
            [
                Variant::new(Kind::Gate, proxy),
                Variant::new(Kind::GateLogged, proxy),
            ]
        };
        let nginx = |proxy| {
            [
                Variant::new(Kind::Nginx, proxy),
                Variant::new(Kind::NginxLogged, proxy),
            ]
        };
        let bare = Variant::new(Kind::Bare, false);
        let mut goals = Vec::new();
        let mut goal = |text: &str, proxy: bool, against: Against, f: Field, limit: f64, unit| {
            let full: Field = |m| Some(m.handshake_us);
            // The server each gate variant (log off, on) is divided by, if another.
            let other = [0, 1].map(|i| match against {
                Against::Bare => Some(bare),
                Against::Nginx => Some(nginx(proxy)[i]),
                Against::OwnFullHandshake | Against::Nothing => None,
            });
            let gates = gates(proxy);
            let measured = [0, 1].map(|i| {
                let x = median(gates[i], f)?;
                match (against, other[i]) {
                    (_, Some(a)) => Some(x / median(a, f)?),
                    (Against::OwnFullHandshake, _) => Some(x / median(gates[i], full)?),
                    _ => Some(x),
                }
            });
            let rounds = [0, 1].map(|i| {
                let g = gates[i];
                let of = match (against, other[i]) {
                    (_, Some(a)) => values(a, f),
                    (Against::OwnFullHandshake, _) => values(g, full),
                    _ => return None,
                };
                let ratios = values(g, f).into_iter().zip(of).map(|(x, y)| x / y);
                Spread::of(ratios.collect())
            });
            goals.push(Goal {
                goal: text.into(),
                measured,
                rounds,
                limit,
                unit,
                met: measured.map(|m| m.map(|m| m <= limit)),
            });
        };
        goal(
            "full handshake, vs the bare server",
            false,
            Against::Bare,
            |m| Some(m.handshake_us),
            1.05,
            "×",
        );
        goal(
            "resumed connection, vs a full handshake",
            false,
            Against::OwnFullHandshake,
            |m| Some(m.resumed_us),
            0.4,
            "×",
        );
        goal(
            "keep-alive request (built-in page), vs nginx `return 200`",
            false,
            Against::Nginx,
            |m| Some(m.request_us),
            1.0,
            "×",
        );
        goal(
            "proxied keep-alive request, vs nginx `proxy_pass`",
            true,
            Against::Nginx,
            |m| Some(m.request_us),
            0.7,
            "×",
        );
        goal(
            "proxied new connection, vs nginx `proxy_pass`",
            true,
            Against::Nginx,
            |m| Some(m.handshake_us),
            0.4,
            "×",
        );
        goal(
            "memory per idle mTLS connection",
            false,
            Against::Nothing,
            |m| m.idle.as_ref().map(|i| i.kib_per_connection),
            20.0,
            "KiB",
        );
        goal(
            "p99 at the fixed rate (built-in page), vs nginx",
            false,
            Against::Nginx,
            |m| Some(m.p99_ms_at_rate),
            1.0,
            "×",
        );
        goal(
            "p99 at the fixed rate (proxied), vs nginx",
            true,
            Against::Nginx,
            |m| Some(m.p99_ms_at_rate),
            1.0,
            "×",
        );
        Summary { rows, goals }
    }

    pub fn markdown(&self, machine: &Machine, parameters: &str) -> String {
        let mut out = String::new();
        out.push_str("| server | µs CPU per new connection (full mTLS handshake + 1 request) | µs CPU per resumed connection (+ 1 request), and × full | µs CPU per keep-alive request | KiB per idle mTLS connection | p99 ms at the fixed rate | keep-alive requests/s |\n");
        out.push_str("| --- | --- | --- | --- | --- | --- | --- |\n");
        for r in &self.rows {
            let resumed = match (r.resumed_us, r.handshake_us) {
                (Some(resumed), Some(full)) => format!(
                    "{}, {:.2}×",
                    Spread::cell(Some(resumed), 0),
                    resumed.median / full.median
                ),
                _ => "—".into(),
            };
            out.push_str(&format!(
                "| {} | {} | {resumed} | {} | {} | {} | {} |\n",
                r.server,
                Spread::cell(r.handshake_us, 0),
                Spread::cell(r.request_us, 1),
                Spread::cell(r.idle_kib, 1),
                Spread::cell(r.p99_ms_at_rate, 2),
                Spread::cell(r.requests_per_s, 0),
            ));
        }
        out.push_str("\nMedian (min–max) over the rounds.\n\n");
        out.push_str(
            "| goal | access log off | access log on (nginx's too) | limit |\n| --- | --- | --- | --- |\n",
        );
        for g in &self.goals {
            let cell = |i: usize| {
                let Some(measured) = g.measured[i] else {
                    return "not measured".to_string();
                };
                let mark = if g.met[i] == Some(true) {
                    "met"
                } else {
                    "**missed**"
                };
                if g.unit == "×" {
                    let rounds = g.rounds[i]
                        .map(|r| format!(" (rounds {:.2}–{:.2})", r.min, r.max))
                        .unwrap_or_default();
                    format!("{measured:.2}× {mark}{rounds}")
                } else {
                    format!("{measured:.1} {} {mark}", g.unit)
                }
            };
            let limit = if g.unit == "×" {
                format!("≤ {:.2}×", g.limit)
            } else {
                format!("≤ {} {}", g.limit, g.unit)
            };
            out.push_str(&format!(
                "| {} | {} | {} | {limit} |\n",
                g.goal,
                cell(0),
                cell(1)
            ));
        }
        out.push_str(&format!("\n{parameters}.\n\n{machine}\n"));
        out
    }
}

/// The machine and the versions, printed with every result.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cpus: usize,
    pub kernel: String,
    pub nginx: String,
    pub openssl: String,
    pub oha: String,
    pub portcullis: String,
    pub date: String,
}

fn first_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_else(|e| format!("({program}: {e})"))
}

/// The commit of the source tree this bench was built from, wherever it runs.
fn commit() -> String {
    let tree = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    match Command::new("git")
        .args(["-C", tree, "describe", "--always", "--dirty"])
        .output()
    {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => "commit unknown".to_string(),
    }
}

impl Machine {
    pub fn read(programs: &Programs) -> Result<Machine> {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo")?;
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
            .unwrap_or_default();
        let nginx = programs.nginx.to_string_lossy();
        let portcullis = programs.portcullis.to_string_lossy();
        let oha = programs.oha.to_string_lossy();
        Ok(Machine {
            cpu,
            cpus: cpuinfo
                .lines()
                .filter(|l| l.starts_with("processor"))
                .count(),
            kernel: first_line("uname", &["-sr"]),
            nginx: first_line(&nginx, &["-v"]),
            openssl: first_line("openssl", &["version"]),
            oha: first_line(&oha, &["--version"]),
            portcullis: format!("{} ({})", first_line(&portcullis, &["--version"]), commit()),
            date: first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        })
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, {} CPUs, {}; {}; {}; {}; {}; {}",
            self.cpu,
            self.cpus,
            self.kernel,
            self.nginx,
            self.openssl,
            self.oha,
            self.portcullis,
            self.date
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(handshake_us: f64, request_us: f64) -> Measurement {
        Measurement {
            handshake_us,
            resumed_us: handshake_us / 3.0,
            request_us,
            requests_per_s: 1.0,
            p50_ms_at_rate: 1.0,
            p99_ms_at_rate: 2.0,
            idle: None,
            upstream_connections: None,
        }
    }

    fn goal<'a>(summary: &'a Summary, text: &str) -> &'a Goal {
        summary
            .goals
            .iter()
            .find(|g| g.goal.starts_with(text))
            .unwrap()
    }

    #[test]
    fn a_goal_is_the_ratio_of_the_medians_and_unmeasured_without_its_servers() {
        let results = [
            // Round by round, as the bench interleaves them.
            (Variant::new(Kind::Bare, false), measured(300.0, 6.0)),
            (Variant::new(Kind::Gate, false), measured(330.0, 8.0)),
            (Variant::new(Kind::Bare, false), measured(310.0, 6.0)),
            (Variant::new(Kind::Gate, false), measured(310.0, 7.0)),
            (Variant::new(Kind::Bare, false), measured(290.0, 6.0)),
            (Variant::new(Kind::Gate, false), measured(400.0, 9.0)),
        ];
        let summary = Summary::new(&results);
        let handshake = goal(&summary, "full handshake");
        // The gate's median 330 over the bare server's 300; nothing ran with the log.
        assert!((handshake.measured[0].unwrap() - 1.1).abs() < 1e-9);
        assert_eq!(handshake.met, [Some(false), None]);
        // No nginx in this run: its ratios are not computed, not "missed".
        let keep_alive = goal(&summary, "keep-alive request (built-in page)");
        assert_eq!(keep_alive.measured, [None, None]);
        let machine = Machine {
            cpu: String::new(),
            cpus: 2,
            kernel: String::new(),
            nginx: String::new(),
            openssl: String::new(),
            oha: String::new(),
            portcullis: String::new(),
            date: String::new(),
        };
        let table = summary.markdown(&machine, "1 round");
        let line = table
            .lines()
            .find(|l| l.starts_with("| keep-alive request (built-in page)"))
            .unwrap();
        assert!(line.contains("| not measured | not measured |"), "{line}");
        assert!(!table.contains("NaN"), "{table}");
        let line = table
            .lines()
            .find(|l| l.starts_with("| full handshake"))
            .unwrap();
        assert!(
            line.contains("1.10× **missed** (rounds 1.00–1.38)"),
            "{line}"
        );
    }

    #[test]
    fn the_gate_with_its_log_is_compared_with_nginx_with_its_log() {
        let results = [
            (Variant::new(Kind::Nginx, false), measured(1000.0, 8.0)),
            (Variant::new(Kind::Gate, false), measured(300.0, 7.6)),
            (Variant::new(Kind::GateLogged, false), measured(300.0, 9.0)),
            (
                Variant::new(Kind::NginxLogged, false),
                measured(1000.0, 10.0),
            ),
        ];
        let summary = Summary::new(&results);
        let keep_alive = goal(&summary, "keep-alive request (built-in page)");
        // 7.6 / 8.0 without the logs, 9.0 / 10.0 with both.
        assert!((keep_alive.measured[0].unwrap() - 0.95).abs() < 1e-9);
        assert!((keep_alive.measured[1].unwrap() - 0.9).abs() < 1e-9);
        assert_eq!(keep_alive.met, [Some(true), Some(true)]);
    }
}
