//! `portcullis doctor compare-captures GOOD BAD`: the Wireshark "good.pcap vs bad.pcap"
//! session, done for the user. The failing connection of BAD is paired with a working
//! one of GOOD to the same server, both are set side by side field by field, and the
//! first difference that explains the failure is named; the failing connection is then
//! judged by the doctor with the working one as a retry that succeeded (so `diagnose()`
//! and the fix catalog apply unchanged).
//!
//! Pure: [`compare`] works on what [`super::extract`] read, [`difference`] on two
//! connections' [`Facts`].

use serde::Serialize;

use super::{ConnectionReport, Extracted, Facts, Options, TlsConn, connection, facts};
use crate::causes;
use crate::diagnose::{Finding, Severity};

/// Why two captures cannot be compared.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompareError {
    #[error("{0} holds no TLS connection (no ClientHello was seen)")]
    NoTls(&'static str),
    #[error(
        "no connection in GOOD goes to the same server (address and port) or names the same SNI as a failing connection in BAD; BAD's failing connections go to {bad}, GOOD's to {good}"
    )]
    NoPair { good: String, bad: String },
}

/// The fields compared, in the order they are most likely to explain a failure.
pub const FIELDS: [&str; 9] = [
    "sni",
    "versions",
    "cipher-suites",
    "groups",
    "signature-algorithms",
    "alpn",
    "client-certificate",
    "alert",
    "closed-by",
];

/// The difference named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// One of [`FIELDS`].
    pub field: String,
    pub good: String,
    pub bad: String,
    /// Why this difference explains the failure (or that it is only the first one seen).
    pub summary: String,
    /// The capture shows that this difference is enough to explain the failure (false:
    /// it is the most likely of the differences, not proven).
    pub explains: bool,
}

/// One row of the side-by-side table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub field: String,
    pub good: String,
    pub bad: String,
    pub differs: bool,
}

/// The comparison: the failing connection's cause (the live doctor's slugs), the
/// difference, and the evidence.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub cause: String,
    pub verdict: String,
    /// `None` when BAD has no failing connection, or nothing differs.
    pub difference: Option<Difference>,
    pub findings: Vec<Finding>,
    /// Which connections were paired, and why.
    pub pairing: String,
    pub rows: Vec<Row>,
    pub good: Option<ConnectionReport>,
    pub bad: ConnectionReport,
}

impl Comparison {
    /// 0 when BAD's connection is healthy, 1 when it fails.
    pub fn exit_code(&self) -> u8 {
        if self.cause == "ok" { 0 } else { 1 }
    }
}

/// How well a GOOD connection matches a BAD one: same address and port and same SNI (3),
/// same address and port (2), same SNI (1), no match (0).
fn score(good: &TlsConn, bad: &TlsConn) -> u8 {
    let sni = |c: &TlsConn| c.client.hellos.first().and_then(|h| h.sni.clone());
    let same_server = good.tcp.server == bad.tcp.server;
    let same_sni = sni(good).is_some() && sni(good) == sni(bad);
    match (same_server, same_sni) {
        (true, true) => 3,
        (true, false) => 2,
        (false, true) => 1,
        (false, false) => 0,
    }
}

fn why(score: u8) -> &'static str {
    match score {
        3 => "same server address and port, same SNI",
        2 => "same server address and port",
        _ => "same SNI (another address or port)",
    }
}

/// Compares BAD's first failing connection with the best-matching working connection of
/// GOOD.
pub fn compare(
    good: &Extracted,
    bad: &Extracted,
    opts: &Options,
) -> Result<Comparison, CompareError> {
    if bad.conns.is_empty() {
        return Err(CompareError::NoTls("BAD"));
    }
    if good.conns.is_empty() {
        return Err(CompareError::NoTls("GOOD"));
    }
    let mut stores = None;
    // Each connection judged within its own capture first.
    let judge_all = |x: &Extracted, stores: &mut Option<crate::trust::Stores>| {
        x.conns
            .iter()
            .zip(super::same_server_all(&x.conns))
            .map(|(c, others)| connection(c, &others, opts, stores))
            .collect::<Vec<_>>()
    };
    let bad_reports = judge_all(bad, &mut stores);
    let good_reports = judge_all(good, &mut stores);
    let failing: Vec<usize> = (0..bad.conns.len())
        .filter(|i| bad_reports[*i].cause != "ok")
        .collect();
    let Some(&first_failing) = failing.first() else {
        let r = bad_reports
            .into_iter()
            .next()
            .unwrap_or_else(|| unreachable!("not empty"));
        return Ok(Comparison {
            cause: "ok".into(),
            verdict: format!(
                "no connection in BAD fails ({} TLS connection{}, all healthy): nothing to explain",
                bad.conns.len(),
                if bad.conns.len() == 1 { "" } else { "s" }
            ),
            difference: None,
            findings: r.findings.clone(),
            pairing: "none: BAD has no failing connection".into(),
            rows: Vec::new(),
            good: None,
            bad: r,
        });
    };
    // The first failing connection that has a partner; its best partner, healthy first,
    // then the closest match, then the earliest.
    let mut best: Option<(usize, usize, (bool, u8))> = None;
    for &b in &failing {
        for (g, gc) in good.conns.iter().enumerate() {
            let s = score(gc, &bad.conns[b]);
            if s == 0 {
                continue;
            }
            let key = (good_reports[g].cause == "ok", s);
            if best.is_none_or(|(_, _, k)| key > k) {
                best = Some((b, g, key));
            }
        }
        if best.is_some() {
            break;
        }
    }
    let Some((b, g, (healthy, s))) = best else {
        let servers = |x: &Extracted, idx: &mut dyn Iterator<Item = usize>| {
            let mut v: Vec<String> = idx.map(|i| x.conns[i].tcp.server.to_string()).collect();
            v.sort();
            v.dedup();
            v.truncate(8);
            v.join(", ")
        };
        return Err(CompareError::NoPair {
            good: servers(good, &mut (0..good.conns.len())),
            bad: servers(bad, &mut failing.iter().copied()),
        });
    };
    let (gc, bc) = (&good.conns[g], &bad.conns[b]);
    let candidates = good
        .conns
        .iter()
        .enumerate()
        .filter(|(i, c)| score(c, bc) > 0 && (good_reports[*i].cause == "ok") == healthy)
        .count();
    let mut pairing = format!(
        "BAD {} → {} ({}{}) with GOOD {} → {} ({}{}; {})",
        bc.tcp.client,
        bc.tcp.server,
        bad_reports[b].cause,
        if failing.len() > 1 {
            format!(
                ", the first of {} failing connections{}",
                failing.len(),
                if b != first_failing {
                    " with a partner in GOOD"
                } else {
                    ""
                }
            )
        } else {
            String::new()
        },
        gc.tcp.client,
        gc.tcp.server,
        good_reports[g].cause,
        if candidates > 1 {
            format!(", the first of {candidates} candidates")
        } else {
            String::new()
        },
        why(s),
    );
    if !healthy {
        pairing.push_str("; GOOD has no working connection to this server, so this one fails too");
    }

    let (gf, bf) = (facts(gc), facts(bc));
    let rows = rows(&gf, &bf);
    let difference = difference(&gf, &bf);

    // The failing connection judged again, with the working one as a retry that the
    // server answered (the live doctor's raw probes), ahead of BAD's own retries.
    let mut others: Vec<&TlsConn> = vec![gc];
    others.extend(super::same_server(&bad.conns, b).into_iter().take(7));
    let mut bad_report = connection(bc, &others, opts, &mut stores);
    let mut findings = bad_report.findings.clone();
    let mut cause = bad_report.cause.clone();
    let mut verdict = bad_report.verdict.clone();
    if let Some(d) = &difference {
        let line = format!(
            "first difference ({}): GOOD {} | BAD {}",
            d.field, d.good, d.bad
        );
        for f in findings.iter_mut().filter(|f| f.cause == cause) {
            f.evidence.insert(0, line.clone());
        }
        // The doctor could not name more than "it was refused": the difference does.
        if d.explains
            && healthy
            && GENERIC.contains(&cause.as_str())
            && let Some(slug) = cause_of(d, &bf)
        {
            let obs = crate::Observations::default();
            let mut ev = vec![line];
            ev.extend(bad_report.trace.iter().cloned());
            findings.insert(
                0,
                super::finding(slug, Severity::Error, d.summary.clone(), ev, &obs),
            );
            findings.sort_by_key(|f| (f.severity == Severity::Warning, causes::rank(&f.cause)));
            cause = slug.into();
            verdict = format!("the connection fails: {}", d.summary);
        }
    }
    if cause == "ok" {
        verdict = "BAD's connection is healthy when judged beside GOOD's".into();
    }
    bad_report.cause = cause.clone();
    Ok(Comparison {
        cause,
        verdict,
        difference,
        findings,
        pairing,
        rows,
        good: Some(good_reports[g].clone()),
        bad: bad_report,
    })
}

/// Causes that say "refused" without saying why: a difference that explains the failure
/// names the real one.
const GENERIC: [&str; 3] = [
    "reset-after-client-hello",
    "handshake-timeout",
    "client-aborted-handshake",
];

/// The usual cause behind a difference.
fn cause_of(d: &Difference, bad: &Facts) -> Option<&'static str> {
    Some(match d.field.as_str() {
        "sni" if bad.sni.is_none() => "sni-required",
        "sni" => "sni-unrecognized",
        "versions" => "protocol-version-mismatch",
        "cipher-suites" | "groups" | "signature-algorithms" => "no-shared-cipher",
        "alpn" => "alpn-mismatch",
        "client-certificate" if bad.client_certificate.starts_with("sent") => {
            "client-cert-rejected"
        }
        "client-certificate" => "client-cert-required",
        _ => return None,
    })
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "none".into())
}

/// The value of one field, as shown side by side.
fn value(f: &Facts, field: &str) -> String {
    match field {
        "sni" => opt(&f.sni),
        "versions" => list(&f.versions),
        "cipher-suites" => list(&f.cipher_suites),
        "groups" => list(&f.groups),
        "signature-algorithms" => list(&f.signature_algorithms),
        "alpn" => list(&f.alpn),
        "client-certificate" => f.client_certificate.clone(),
        "alert" => f.alert.clone(),
        "closed-by" => f.closed_by.clone(),
        _ => String::new(),
    }
}

/// Every field side by side, plus what the server chose.
pub fn rows(good: &Facts, bad: &Facts) -> Vec<Row> {
    let mut out: Vec<Row> = FIELDS
        .iter()
        .map(|field| {
            let (g, b) = (value(good, field), value(bad, field));
            Row {
                field: (*field).into(),
                differs: g != b,
                good: g,
                bad: b,
            }
        })
        .collect();
    let chosen = |f: &Facts| match (&f.server_version, &f.server_cipher_suite) {
        (Some(v), Some(s)) => {
            let mut t = format!("{v} {s}");
            if let Some(g) = &f.server_group {
                t.push_str(&format!(", {g}"));
            }
            if let Some(a) = &f.server_alpn {
                t.push_str(&format!(", ALPN {a}"));
            }
            t
        }
        _ => "no ServerHello".into(),
    };
    let (g, b) = (chosen(good), chosen(bad));
    out.insert(
        6,
        Row {
            field: "server-hello".into(),
            differs: g != b,
            good: g,
            bad: b,
        },
    );
    out
}

/// The first difference between a working connection (`good`) and a failing one
/// (`bad`) that explains the failure: the fields in [`FIELDS`] order, first those the
/// capture shows to be enough (the server accepted in GOOD something BAD did not offer),
/// then — when BAD's hello was accepted — the server's side (alert, who closed), then any
/// other difference. `None` when nothing differs.
pub fn difference(good: &Facts, bad: &Facts) -> Option<Difference> {
    let hello_failed = bad.server_version.is_none();
    let lacks = |chosen: &Option<String>, offered: &[String]| {
        chosen.as_ref().is_some_and(|c| !offered.contains(c))
    };
    let mk = |field: &str, summary: String, explains: bool| Difference {
        field: field.into(),
        good: value(good, field),
        bad: value(bad, field),
        summary,
        explains,
    };
    let differs = |field: &str| value(good, field) != value(bad, field);

    // === what the capture shows to be enough ===
    if differs("sni")
        && (hello_failed || bad.alert.contains("112") || bad.alert.starts_with("client"))
    {
        return Some(mk(
            "sni",
            match (&good.sni, &bad.sni) {
                (Some(g), None) => format!(
                    "the failing client sent no SNI; the working one named \"{g}\" and the server answered it{}",
                    if hello_failed {
                        ", while it ended the failing one after its ClientHello"
                    } else {
                        ""
                    }
                ),
                (g, b) => format!(
                    "the failing client named {} where the working one named {}; the server answers a different name differently",
                    b.as_deref()
                        .map_or("nothing".into(), |n| format!("\"{n}\"")),
                    g.as_deref()
                        .map_or("nothing".into(), |n| format!("\"{n}\""))
                ),
            },
            true,
        ));
    }
    if differs("versions")
        && lacks(&good.server_version, &bad.versions)
        && (hello_failed || bad.server_version != good.server_version)
    {
        return Some(mk(
            "versions",
            format!(
                "the server chose {} for the working client; the failing one offered only {}",
                opt(&good.server_version),
                list(&bad.versions)
            ),
            true,
        ));
    }
    if hello_failed
        && differs("cipher-suites")
        && lacks(&good.server_cipher_suite, &bad.cipher_suites)
    {
        return Some(mk(
            "cipher-suites",
            format!(
                "the server chose {} for the working client; the failing one did not offer it",
                opt(&good.server_cipher_suite)
            ),
            true,
        ));
    }
    let good_group = good.hello_retry_group.clone().or(good.server_group.clone());
    if hello_failed && differs("groups") && lacks(&good_group, &bad.groups) {
        return Some(mk(
            "groups",
            format!(
                "the server chose the group {} for the working client; the failing one did not offer it",
                opt(&good_group)
            ),
            true,
        ));
    }
    if hello_failed
        && differs("signature-algorithms")
        && good
            .signature_algorithms
            .iter()
            .any(|s| !bad.signature_algorithms.contains(s))
        && !bad.alert.contains(": 70 ")
    {
        return Some(mk(
            "signature-algorithms",
            "the failing client offered no signature algorithm the working one had beyond its own list; the server may have no certificate it can sign with for it".into(),
            true,
        ));
    }
    if differs("alpn")
        && (bad.alert.contains(": 120 ") || (hello_failed && lacks(&good.server_alpn, &bad.alpn)))
    {
        return Some(mk(
            "alpn",
            format!(
                "the server chose the application protocol {} for the working client; the failing one offered {}",
                opt(&good.server_alpn),
                list(&bad.alpn)
            ),
            true,
        ));
    }
    if differs("client-certificate") && bad.certificate_request.is_some() {
        return Some(mk(
            "client-certificate",
            format!(
                "the server asked both clients for a certificate; the working one {}, the failing one {}",
                good.client_certificate, bad.client_certificate
            ),
            true,
        ));
    }

    // === the rest, most likely first ===
    let server_side = ["alert", "closed-by"];
    let hello_fields = [
        "sni",
        "client-certificate",
        "versions",
        "alpn",
        "cipher-suites",
        "groups",
        "signature-algorithms",
    ];
    let order: Vec<&str> = if hello_failed {
        hello_fields
            .iter()
            .chain(server_side.iter())
            .copied()
            .collect()
    } else {
        // The server accepted BAD's hello: what it did next matters more than the rest
        // of the hello.
        server_side
            .iter()
            .chain(hello_fields.iter())
            .copied()
            .collect()
    };
    let hellos_same = hello_fields.iter().all(|f| !differs(f));
    order.into_iter().find(|f| differs(f)).map(|f| {
        let client_ended = f == "alert" && bad.alert.starts_with("client");
        let summary = if client_ended {
            format!(
                "the failing client ended the handshake itself ({}){}: it judged what the server sent differently (its trust store, or the name it checks)",
                bad.alert,
                if hellos_same {
                    ", after the same hello as the working one"
                } else {
                    ""
                }
            )
        } else if server_side.contains(&f) && hellos_same {
            format!(
                "the two clients said the same thing; the difference is on the server's side ({f}: GOOD {} | BAD {})",
                value(good, f),
                value(bad, f)
            )
        } else if server_side.contains(&f) {
            format!(
                "the server accepted both hellos and then treated them differently ({f}: GOOD {} | BAD {})",
                value(good, f),
                value(bad, f)
            )
        } else {
            format!(
                "the first difference between the two clients (the capture does not prove it is the cause): {f}"
            )
        };
        mk(f, summary, false)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modern(sni: Option<&str>) -> Facts {
        Facts {
            sni: sni.map(str::to_owned),
            versions: vec!["TLS 1.3".into(), "TLS 1.2".into()],
            cipher_suites: vec![
                "TLS_AES_128_GCM_SHA256".into(),
                "ECDHE-RSA-AES128-GCM-SHA256".into(),
            ],
            groups: vec!["x25519".into(), "secp256r1".into()],
            signature_algorithms: vec![
                "ecdsa_secp256r1_sha256".into(),
                "rsa_pss_rsae_sha256".into(),
            ],
            alpn: vec!["h2".into(), "http/1.1".into()],
            client_certificate: "not visible (TLS 1.3 encrypts it)".into(),
            alert: "none".into(),
            closed_by: "client (FIN)".into(),
            ..Default::default()
        }
    }

    fn accepted(mut f: Facts) -> Facts {
        f.server_version = Some("TLS 1.3".into());
        f.server_cipher_suite = Some("TLS_AES_128_GCM_SHA256".into());
        f.server_group = Some("x25519".into());
        f.server_alpn = Some("h2".into());
        f
    }

    fn dropped(mut f: Facts) -> Facts {
        f.closed_by = "server (FIN)".into();
        f
    }

    #[test]
    fn sni_absent_comes_before_every_other_difference() {
        let good = accepted(modern(Some("api.example")));
        let mut bad = dropped(modern(None));
        bad.cipher_suites.pop();
        bad.alpn.clear();
        let d = difference(&good, &bad).unwrap_or_else(|| unreachable!());
        assert_eq!(
            (d.field.as_str(), d.good.as_str(), d.bad.as_str()),
            ("sni", "api.example", "none")
        );
        assert!(d.explains);
    }

    #[test]
    fn a_version_the_failing_client_did_not_offer() {
        let good = accepted(modern(Some("a")));
        let mut bad = modern(Some("a"));
        bad.versions = vec!["TLS 1.1".into()];
        bad.cipher_suites = vec!["ECDHE-RSA-AES128-SHA".into()];
        bad.alert = "server: 70 protocol_version".into();
        let d = difference(&good, &bad).unwrap_or_else(|| unreachable!());
        assert_eq!(d.field, "versions");
    }

    #[test]
    fn alpn_with_alert_120() {
        let good = accepted(modern(Some("a")));
        let mut bad = modern(Some("a"));
        bad.alpn = vec!["http/1.1".into()];
        bad.alert = "server: 120 no_application_protocol".into();
        assert_eq!(
            difference(&good, &bad).map(|d| d.field),
            Some("alpn".into())
        );
    }

    #[test]
    fn identical_hellos_point_at_the_server() {
        let good = accepted(modern(Some("a")));
        let bad = dropped(accepted(modern(Some("a"))));
        let d = difference(&good, &bad).unwrap_or_else(|| unreachable!());
        assert_eq!(d.field, "closed-by");
        assert!(!d.explains && d.summary.contains("server's side"), "{d:?}");
        assert_eq!(difference(&good, &good), None);
    }

    /// curl without the private CA: same hello, same answer, the client sends alert 48.
    #[test]
    fn a_client_that_refused_the_chain_is_not_blamed_on_the_server() {
        let good = accepted(modern(Some("a")));
        let mut bad = good.clone();
        bad.alert = "client: 48 unknown_ca".into();
        bad.closed_by = "client (RST)".into();
        let d = difference(&good, &bad).unwrap_or_else(|| unreachable!());
        assert_eq!(d.field, "alert");
        assert!(
            d.summary.contains("ended the handshake itself")
                && !d.summary.contains("server's side"),
            "{d:?}"
        );
    }

    #[test]
    fn a_client_certificate_the_server_asked_for() {
        let mut good = accepted(modern(Some("a")));
        good.certificate_request = Some(vec![]);
        good.client_certificate = "sent: CN=alice".into();
        let mut bad = good.clone();
        bad.client_certificate = "not sent (an empty Certificate message)".into();
        bad.alert = "server: 40 handshake_failure".into();
        let d = difference(&good, &bad).unwrap_or_else(|| unreachable!());
        assert_eq!(d.field, "client-certificate");
        assert_eq!(cause_of(&d, &bad), Some("client-cert-required"));
    }
}
