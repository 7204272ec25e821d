//! Renderers: short text for people (verdict, cause, fix), the full trace with `-v`, and
//! JSON for scripts (a stable interface: change it deliberately).

use std::fmt::Write;

use crate::Report;
use crate::diagnose::{Finding, Severity, raw_text};
use crate::explain::Explanation;
use crate::fixes::Fix;

/// Terminal styling; all empty when not on a TTY.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub red: &'static str,
    pub yellow: &'static str,
    pub green: &'static str,
    pub bold: &'static str,
    pub dim: &'static str,
    pub reset: &'static str,
}

impl Style {
    pub fn new(color: bool) -> Style {
        if color {
            Style {
                red: "\x1b[31m",
                yellow: "\x1b[33m",
                green: "\x1b[32m",
                bold: "\x1b[1m",
                dim: "\x1b[2m",
                reset: "\x1b[0m",
            }
        } else {
            Style {
                red: "",
                yellow: "",
                green: "",
                bold: "",
                dim: "",
                reset: "",
            }
        }
    }
}

pub fn json(report: &Report) -> String {
    serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// The fix shown in one line under the error that decided a capture's verdict: the first
/// without a snippet to show, else the first.
fn one_line_fix<'a>(f: &'a Finding, cause: &str) -> Option<&'a Fix> {
    if f.severity != Severity::Error || f.cause != cause {
        return None;
    }
    f.fixes
        .iter()
        .find(|x| x.snippet.is_empty())
        .or(f.fixes.first())
}

fn indent(text: &str, by: &str) -> String {
    text.lines()
        .map(|l| format!("{by}{l}\n"))
        .collect::<String>()
}

/// The report for people. Short: verdict, each finding with its main fix. Verbose adds
/// the evidence, the error texts clients print, and the fixes for every ecosystem.
pub fn text(report: &Report, verbose: bool, st: Style) -> String {
    let mut out = String::new();
    let Style {
        red,
        yellow,
        green,
        bold,
        dim,
        reset,
    } = st;
    let audit = if report.observations.audit.is_some() {
        "audit "
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "{bold}portcullis doctor {audit}{}{reset}",
        report.target
    );
    if report.cause == "ok" {
        let _ = writeln!(out, "{green}✓ {}{reset}", report.verdict);
    } else {
        let _ = writeln!(out, "{red}✗ {}: {}{reset}", report.cause, report.verdict);
    }
    for f in &report.findings {
        let (mark, color) = match f.severity {
            Severity::Error => ("error", red),
            Severity::Warning => ("warning", yellow),
        };
        let _ = writeln!(
            out,
            "\n{color}{bold}[{mark}] {}{reset}: {}",
            f.cause, f.summary
        );
        if verbose {
            if !f.evidence.is_empty() {
                let _ = writeln!(out, "  {bold}evidence{reset}");
                for e in &f.evidence {
                    let _ = writeln!(out, "    {e}");
                }
            }
            if !f.errors_seen.is_empty() {
                let _ = writeln!(out, "  {bold}what clients print for this{reset}");
                for e in &f.errors_seen {
                    let _ = writeln!(out, "    {e}");
                }
            }
        }
        let shown: Vec<_> = if verbose {
            f.fixes.iter().collect()
        } else {
            // Short mode: the general advice and the first snippet.
            let mut v: Vec<_> = f.fixes.iter().filter(|x| x.snippet.is_empty()).collect();
            v.extend(f.fixes.iter().find(|x| !x.snippet.is_empty()));
            v
        };
        if !shown.is_empty() {
            let _ = writeln!(out, "  {bold}fix{reset}");
        }
        for x in shown {
            if x.snippet.is_empty() {
                let _ = writeln!(out, "    {}", x.summary);
            } else {
                let _ = writeln!(out, "    {dim}[{}]{reset} {}", x.ecosystem, x.summary);
                out.push_str(&indent(&x.snippet, "      "));
            }
        }
    }
    if let Some(c) = &report.compare {
        let _ = writeln!(out, "\n{bold}compare{reset}");
        for r in &c.rows {
            let _ = writeln!(
                out,
                "  {} {:<32} {}",
                if r.ok {
                    format!("{green}ok  {reset}")
                } else {
                    format!("{red}FAIL{reset}")
                },
                r.profile,
                r.outcome
            );
        }
        if let Some(d) = &c.difference {
            let _ = writeln!(out, "  {bold}difference{reset}: {d}");
        } else if report.cause != "ok" {
            let _ = writeln!(
                out,
                "  {bold}difference{reset}: none of these profiles alone makes it work"
            );
        }
    }
    let obs = &report.observations;
    if verbose {
        let _ = writeln!(out, "\n{bold}trace{reset}");
        if let Some(d) = &obs.dns {
            let _ = writeln!(
                out,
                "  dns: {} ({} ms)",
                d.error.clone().unwrap_or_else(|| d.addresses.join(", ")),
                d.ms
            );
        }
        if let Some(t) = &obs.tcp {
            let _ = writeln!(out, "  tcp {}: {:?} ({} ms)", t.address, t.outcome, t.ms);
        }
        for h in &obs.handshakes {
            let _ = writeln!(out, "  handshake \"{}\" ({} ms)", h.label, h.ms);
            let _ = writeln!(
                out,
                "    offered: {} | suites {}",
                h.sent.versions.join(", "),
                h.sent.cipher_suites.join(", ")
            );
            for s in &h.steps {
                let _ = writeln!(out, "    +{:>5} ms  {:<8} {}", s.ms, s.dir, s.what);
            }
        }
        for r in &obs.raw {
            let _ = writeln!(
                out,
                "  raw hello \"{}\" (SNI {}, {}): {} ({} ms)",
                r.label,
                r.sent.sni.as_deref().unwrap_or("none"),
                r.sent.versions.join("/"),
                raw_text(&r.response),
                r.ms
            );
        }
        let _ = writeln!(out, "  diagnosis took {} ms", report.elapsed_ms);
    } else if !report.findings.is_empty() {
        let _ = writeln!(
            out,
            "\n{dim}Run with -v for the handshake trace, the evidence, and fixes for curl, openssl, Python and Rust; --json for all of it.{reset}"
        );
    }
    out
}

/// A capture's verdicts for people: one block per TLS connection, then the summary.
pub fn capture_text(report: &crate::capture::CaptureReport, verbose: bool, st: Style) -> String {
    let mut out = String::new();
    let Style {
        red,
        green,
        yellow,
        bold,
        dim,
        reset,
    } = st;
    let _ = writeln!(
        out,
        "{bold}portcullis doctor capture {}{reset}",
        report.file
    );
    for c in &report.connections {
        let name = c
            .sni
            .as_deref()
            .map(|s| format!(" (SNI {s})"))
            .unwrap_or_else(|| " (no SNI)".into());
        let version = c
            .version
            .as_deref()
            .map(|v| format!(" {v}"))
            .unwrap_or_default();
        if c.cause == "ok" {
            let _ = writeln!(
                out,
                "\n{green}✓{reset} {} → {}{name}{version}: {}",
                c.client, c.server, c.verdict
            );
        } else {
            let _ = writeln!(
                out,
                "\n{red}✗ {}{reset} {} → {}{name}{version}: {}",
                c.cause, c.client, c.server, c.verdict
            );
        }
        for f in &c.findings {
            let color = if f.severity == Severity::Error {
                red
            } else {
                yellow
            };
            let mark = if f.severity == Severity::Error {
                "error"
            } else {
                "warning"
            };
            if f.cause != c.cause || verbose {
                let _ = writeln!(out, "  {color}[{mark}] {}{reset}: {}", f.cause, f.summary);
            }
            if verbose {
                for e in &f.evidence {
                    let _ = writeln!(out, "      {e}");
                }
                for x in &f.fixes {
                    let _ = writeln!(out, "    {dim}fix [{}]{reset} {}", x.ecosystem, x.summary);
                    out.push_str(&indent(&x.snippet, "      "));
                }
            } else if let Some(x) = one_line_fix(f, &c.cause) {
                let _ = writeln!(out, "  {dim}fix:{reset} {}", x.summary);
            }
        }
        if verbose {
            for t in &c.trace {
                let _ = writeln!(out, "    {t}");
            }
        }
    }
    let s = &report.summary;
    let _ = writeln!(
        out,
        "\n{bold}summary{reset}: {} TLS connection(s), {} healthy, {} with a problem ({}); {} other TCP connection(s); {} packet(s) read ({})",
        s.tls_connections,
        s.healthy,
        s.problems,
        s.causes
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        s.other_tcp_connections,
        s.read.packets,
        s.read.format
    );
    if s.read.truncated {
        let _ = writeln!(
            out,
            "  {yellow}the file ends in the middle of a packet (the capture was cut short){reset}"
        );
    }
    if let Some(m) = &s.read.malformed {
        let _ = writeln!(out, "  {yellow}reading stopped early: {m}{reset}");
    }
    if s.unjudged_connections > 0 {
        let _ = writeln!(
            out,
            "  {yellow}{} more TLS connection(s) counted but not judged: the memory kept for verdicts is full; split the capture (editcap -c){reset}",
            s.unjudged_connections
        );
    }
    if s.untracked_connections > 0 {
        let _ = writeln!(
            out,
            "  {yellow}{} connection(s) not followed: too many open at once{reset}",
            s.untracked_connections
        );
    }
    if !s.read.unsupported_link_types.is_empty() {
        let _ = writeln!(
            out,
            "  {yellow}link types not read: {:?}{reset}",
            s.read.unsupported_link_types
        );
    }
    if report.connections.is_empty() {
        let _ = writeln!(
            out,
            "  no TLS connection in this capture (no ClientHello seen)"
        );
    }
    if !verbose && s.problems > 0 {
        let _ = writeln!(
            out,
            "{dim}Run with -v for each handshake as captured, the evidence and every fix; --json for all of it.{reset}"
        );
    }
    out
}

/// Cuts a long value for the side-by-side table (the JSON has it whole).
fn cell(v: &str, width: usize) -> String {
    if v.chars().count() <= width {
        v.to_owned()
    } else {
        let cut: String = v.chars().take(width.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

pub fn compare_captures_text(
    c: &crate::capture::compare::Comparison,
    good: &str,
    bad: &str,
    verbose: bool,
    st: Style,
) -> String {
    let mut out = String::new();
    let Style {
        red,
        green,
        yellow,
        bold,
        dim,
        reset,
    } = st;
    let _ = writeln!(
        out,
        "{bold}portcullis doctor compare-captures{reset} GOOD {good}  BAD {bad}"
    );
    let _ = writeln!(out, "pair: {}", c.pairing);
    if c.cause == "ok" {
        let _ = writeln!(out, "\n{green}✓{reset} {}", c.verdict);
    } else {
        let _ = writeln!(out, "\n{red}✗ {}{reset}: {}", c.cause, c.verdict);
    }
    if let Some(d) = &c.difference {
        let _ = writeln!(
            out,
            "\n{bold}first difference: {}{reset}{}\n  {}",
            d.field,
            if d.explains {
                ""
            } else {
                " (not proven to be the cause)"
            },
            d.summary
        );
    } else if !c.rows.is_empty() {
        let _ = writeln!(
            out,
            "\nthe two connections do not differ in what a capture shows"
        );
    }
    if !c.rows.is_empty() {
        let width = if verbose { 200 } else { 44 };
        let _ = writeln!(out, "\n  {:<22} {:<width$} BAD", "", "GOOD");
        for r in &c.rows {
            let chosen = c.difference.as_ref().is_some_and(|d| d.field == r.field);
            let (on, off, mark) = if chosen {
                (bold, reset, "◀")
            } else if r.differs {
                (yellow, reset, "≠")
            } else {
                ("", "", " ")
            };
            let _ = writeln!(
                out,
                "{on}{mark} {:<22} {:<width$} {}{off}",
                r.field,
                cell(&r.good, width),
                cell(&r.bad, width)
            );
        }
    }
    for f in &c.findings {
        let (color, mark) = if f.severity == Severity::Error {
            (red, "error")
        } else {
            (yellow, "warning")
        };
        let _ = writeln!(out, "\n{color}[{mark}] {}{reset}: {}", f.cause, f.summary);
        if verbose {
            for e in &f.evidence {
                let _ = writeln!(out, "      {e}");
            }
        }
        if verbose {
            for x in &f.fixes {
                let _ = writeln!(out, "  {dim}fix [{}]{reset} {}", x.ecosystem, x.summary);
                out.push_str(&indent(&x.snippet, "      "));
            }
        } else if let Some(x) = one_line_fix(f, &c.cause) {
            let _ = writeln!(out, "  {dim}fix:{reset} {}", x.summary);
        }
    }
    if verbose {
        for (name, r) in [("GOOD", c.good.as_ref()), ("BAD", Some(&c.bad))] {
            if let Some(r) = r {
                let _ = writeln!(out, "\n{bold}{name}{reset} {} → {}", r.client, r.server);
                for t in &r.trace {
                    let _ = writeln!(out, "    {t}");
                }
            }
        }
    } else {
        let _ = writeln!(
            out,
            "\n{dim}Run with -v for whole values, both handshakes, the evidence and every fix; --json for all of it.{reset}"
        );
    }
    out
}

pub fn explanation(e: &Explanation, st: Style) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}{}{}: {}", st.bold, e.cause, st.reset, e.what);
    if e.causes.len() > 1 {
        let _ = writeln!(
            out,
            "  less often: {}",
            e.causes[1..]
                .iter()
                .filter_map(|c| crate::causes::get(c))
                .map(|c| format!("{} ({})", c.slug, c.what))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    let _ = writeln!(
        out,
        "  matched: {}{}",
        e.matched,
        e.ecosystem
            .as_ref()
            .map(|x| format!(" ({x})"))
            .unwrap_or_default()
    );
    if let Some(n) = &e.note {
        let _ = writeln!(out, "  how to tell: {n}");
    }
    let _ = writeln!(out, "  secure fix: {}", e.fix);
    for f in &e.fixes {
        let _ = writeln!(
            out,
            "    {}[{}]{} {}",
            st.dim, f.ecosystem, st.reset, f.summary
        );
        out.push_str(&indent(&f.snippet, "      "));
    }
    let _ = writeln!(
        out,
        "  to see the evidence for your server: portcullis doctor HOST[:PORT]"
    );
    out
}
