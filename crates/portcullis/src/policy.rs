//! `portcullis policy test`: how the gate would judge a request, or a table of them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use http::{HeaderMap, HeaderName, HeaderValue};
use portcullis_gate::{Config, Gate, Judgement, Question};
use portcullis_policy::{Identity, Timestamp};
use serde::Deserialize;

#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub command: PolicyCommand,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// How the gate would judge a request: the decision, the rule that decided, the roles
    /// and why, and the rules tried before. `METHOD PATH` for one request, or a TOML file
    /// of cases with their expected decisions (exit 1 if any differs).
    Test(TestArgs),
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// The gate configuration.
    #[arg(short, long, value_name = "FILE")]
    pub config: PathBuf,
    /// `METHOD PATH` (e.g. `GET /admin/users`), or one CASES.toml file.
    #[arg(value_name = "METHOD PATH | CASES", num_args = 1..=2, required = true)]
    pub request: Vec<String>,
    /// The client's certificate (PEM or DER; the first certificate is the client's).
    #[arg(long, value_name = "FILE", conflicts_with = "identity")]
    pub cert: Option<PathBuf>,
    /// The client's identity without a certificate: `cn=alice,ou=Admins,email=…`
    /// (keys cn, o, ou, l, st, c, email, dns, uri, ip, serial, fingerprint).
    #[arg(long, value_name = "FIELDS")]
    pub identity: Option<String>,
    /// The Host header [default: the first name of the host the SNI name selects].
    #[arg(long)]
    pub host: Option<String>,
    /// The SNI name [default: the --host name, else none].
    #[arg(long)]
    pub sni: Option<String>,
    /// A request header, `Name: value` (repeatable).
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// Judge as at this time, for conditions that read `now` (RFC 3339, e.g.
    /// `2027-01-04T09:00:00+01:00`) [default: now].
    #[arg(long, value_name = "TIME", value_parser = parse_now)]
    pub now: Option<Timestamp>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: PolicyArgs) -> ExitCode {
    let PolicyCommand::Test(args) = args.command;
    let result = match args.request.as_slice() {
        [cases] => table(&args, Path::new(cases)),
        [method, path] => single(&args, method, path).map(|()| true),
        _ => Err(anyhow::anyhow!("give METHOD PATH, or a CASES.toml file")),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn parse_now(s: &str) -> Result<Timestamp, String> {
    s.parse()
        .map_err(|e| format!("not an RFC 3339 time such as 2027-01-04T09:00:00+01:00: {e}"))
}

fn load(config: &Path) -> Result<Gate> {
    let config = Config::from_file(config)?;
    Ok(crate::serve::load(config)?.0)
}

/// A request as `policy test` is asked it, before it becomes a [`Question`].
struct Asked {
    identity: Option<Identity>,
    method: String,
    target: String,
    host: Option<String>,
    sni: Option<String>,
    headers: Vec<(String, String)>,
    now: Timestamp,
}

fn judge(gate: &Gate, a: &Asked) -> Result<Judgement> {
    let sni = a.sni.clone().or_else(|| a.host.clone());
    let host = match &a.host {
        Some(h) => h.clone(),
        None => gate
            .sites()
            .iter()
            .find(|s| {
                sni.as_deref()
                    .is_none_or(|n| s.names().iter().any(|m| m == n))
            })
            .or_else(|| gate.sites().first())
            .and_then(|s| s.names().first().cloned())
            .unwrap_or_else(|| "localhost".into()),
    };
    let mut headers = HeaderMap::new();
    headers.insert(http::header::HOST, HeaderValue::from_str(&host)?);
    for (name, value) in &a.headers {
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .with_context(|| format!("{name:?} is not a header name"))?;
        headers.append(name, HeaderValue::from_str(value.trim())?);
    }
    Ok(gate.judge(&Question {
        sni: sni.as_deref(),
        identity: a.identity.as_ref(),
        method: &a.method,
        target: &a.target,
        headers: &headers,
        now: a.now,
    }))
}

fn identity(cert: Option<&Path>, fields: Option<&str>) -> Result<Option<Identity>> {
    if let Some(path) = cert {
        let der = portcullis_pki::ca::read_certs(path)?.swap_remove(0);
        let id = Identity::from_der(&der).with_context(|| format!("{}", path.display()))?;
        return Ok(Some(id));
    }
    fields
        .map(|f| Identity::from_fields(f).map_err(|e| anyhow::anyhow!("--identity: {e}")))
        .transpose()
}

fn header_pairs(headers: &[String]) -> Result<Vec<(String, String)>> {
    headers
        .iter()
        .map(|h| {
            h.split_once(':')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| anyhow::anyhow!("--header {h:?}: expected `Name: value`"))
        })
        .collect()
}

fn single(args: &TestArgs, method: &str, target: &str) -> Result<()> {
    let gate = load(&args.config)?;
    let asked = Asked {
        identity: identity(args.cert.as_deref(), args.identity.as_deref())?,
        method: method.to_owned(),
        target: target.to_owned(),
        host: args.host.clone(),
        sni: args.sni.clone(),
        headers: header_pairs(&args.headers)?,
        now: args.now.unwrap_or_else(Timestamp::now),
    };
    let j = judge(&gate, &asked)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&j)?);
        return Ok(());
    }
    let who = asked
        .identity
        .as_ref()
        .map_or("anonymous (no certificate)".into(), |i| i.subject.clone());
    println!("{method} {target} as {who}");
    print_judgement(&j);
    Ok(())
}

fn print_judgement(j: &Judgement) {
    match &j.rule_text {
        Some(rule) => println!("decision: {} by rule {rule}", j.decision),
        None => println!("decision: {}", j.decision),
    }
    if let Some(reason) = &j.reason {
        println!("  why: {reason}");
    }
    if let Some(c) = &j.condition {
        let error = c
            .error
            .as_ref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        println!("  condition: {} is {}{error}", c.when, c.result);
    }
    if let Some(path) = &j.path {
        println!("  path judged: {path}");
    }
    if j.roles.is_empty() {
        println!("  roles: none");
    }
    for r in &j.roles {
        println!("  role {}: {}", r.role, r.because);
    }
    for t in &j.trace {
        println!("  tried {}: {} does not match", t.rule_text, t.mismatch);
    }
}

/// A table of cases, as `policy test CASES.toml` reads it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cases {
    #[serde(rename = "case")]
    cases: Vec<toml::Spanned<Case>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: Option<String>,
    /// A certificate file, relative to the cases file.
    cert: Option<PathBuf>,
    identity: Option<String>,
    #[serde(default = "get")]
    method: String,
    path: String,
    host: Option<String>,
    sni: Option<String>,
    #[serde(default)]
    headers: Vec<String>,
    /// RFC 3339; conditions that read `now` see this time.
    now: Option<String>,
    expect: String,
    rule: Option<usize>,
}

fn get() -> String {
    "GET".into()
}

const DECISIONS: [&str; 6] = [
    "allow",
    "unauthenticated",
    "forbidden",
    "no-rule",
    "bad-request",
    "misdirected",
];

/// Runs every case; prints a line per mismatch and a summary. `Ok(false)` on a mismatch.
fn table(args: &TestArgs, file: &Path) -> Result<bool> {
    if args.cert.is_some()
        || args.identity.is_some()
        || args.host.is_some()
        || !args.headers.is_empty()
    {
        bail!(
            "--cert, --identity, --host and --header go with METHOD PATH; a cases file says them per case"
        );
    }
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let line_of = |offset: usize| text.get(..offset).unwrap_or(&text).matches('\n').count() + 1;
    let cases: Cases = toml::from_str(&text).map_err(|e| {
        let line = e.span().map_or(0, |s| line_of(s.start));
        anyhow::anyhow!("{}:{line}: {}", file.display(), e.message().trim())
    })?;
    let base = file.parent().unwrap_or(Path::new("."));
    // Checked before the gate loads: a typo in the table is not a policy failure.
    for c in &cases.cases {
        let case = c.get_ref();
        if !DECISIONS.contains(&case.expect.as_str()) {
            bail!(
                "{}:{}: expect = {:?}: use one of {}",
                file.display(),
                line_of(c.span().start),
                case.expect,
                DECISIONS.join(", ")
            );
        }
    }
    let gate = load(&args.config)?;
    let mut failed = 0;
    let mut report = Vec::new();
    for c in &cases.cases {
        let case = c.get_ref();
        let at = format!("{}:{}", file.display(), line_of(c.span().start));
        let label = case
            .name
            .clone()
            .unwrap_or_else(|| format!("{} {}", case.method, case.path));
        let asked = Asked {
            identity: identity(
                case.cert.as_ref().map(|p| base.join(p)).as_deref(),
                case.identity.as_deref(),
            )
            .with_context(|| at.clone())?,
            method: case.method.clone(),
            target: case.path.clone(),
            host: case.host.clone(),
            sni: case.sni.clone(),
            headers: header_pairs(&case.headers).with_context(|| at.clone())?,
            now: match &case.now {
                Some(t) => parse_now(t).map_err(|e| anyhow::anyhow!("{at}: now: {e}"))?,
                None => args.now.unwrap_or_else(Timestamp::now),
            },
        };
        let j = judge(&gate, &asked).with_context(|| at.clone())?;
        let ok = j.decision == case.expect && case.rule.is_none_or(|r| j.rule == Some(r));
        if !ok {
            failed += 1;
            let want_rule = case
                .rule
                .map(|r| format!(" by rule #{r}"))
                .unwrap_or_default();
            let got_rule = j
                .rule_text
                .as_ref()
                .map(|r| format!(" by rule {r}"))
                .unwrap_or_default();
            let why = j
                .reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            if !args.json {
                println!(
                    "FAIL {at}: {label}: expected {}{want_rule}, got {}{got_rule}{why}",
                    case.expect, j.decision
                );
            }
        }
        report.push(serde_json::json!({
            "case": label,
            "at": at,
            "expect": case.expect,
            "expect_rule": case.rule,
            "passed": ok,
            "judgement": j,
        }));
    }
    let total = cases.cases.len();
    if args.json {
        let doc = serde_json::json!({"cases": total, "failed": failed, "results": report});
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!("{total} cases, {} passed, {failed} failed", total - failed);
    }
    Ok(failed == 0)
}
