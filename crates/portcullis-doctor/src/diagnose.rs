//! `diagnose`: a pure function from [`Observations`] to findings. No I/O, no clock (the
//! observation carries the time), so it runs the same on a live probe, a saved JSON file,
//! or a capture.

use serde::{Deserialize, Serialize};

use crate::causes;
use crate::certs::is_weak_signature;
use crate::fixes::{self, Fix};
use crate::observe::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One thing the doctor found, with its evidence and the secure fix per ecosystem.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finding {
    pub cause: String,
    pub severity: Severity,
    pub summary: String,
    pub evidence: Vec<String>,
    /// The error text clients print for this cause, so people find it by what they saw.
    pub errors_seen: Vec<String>,
    pub fixes: Vec<Fix>,
}

/// The diagnosis: findings in the order a client runs into them; `cause` is the first
/// error (or `ok`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Diagnosis {
    pub cause: String,
    pub findings: Vec<Finding>,
}

impl Diagnosis {
    pub fn healthy(&self) -> bool {
        self.cause == "ok"
    }
}

struct Builder<'a> {
    obs: &'a Observations,
    out: Vec<Finding>,
}

impl Builder<'_> {
    fn add(&mut self, cause: &str, severity: Severity, summary: String, evidence: Vec<String>) {
        if self.out.iter().any(|f| f.cause == cause) {
            return;
        }
        let errors_seen = causes::get(cause)
            .map(|c| c.errors.iter().map(|s| s.to_string()).collect())
            .unwrap_or_default();
        self.out.push(Finding {
            cause: cause.into(),
            severity,
            summary,
            evidence,
            errors_seen,
            fixes: fixes::for_cause(cause, self.obs),
        });
    }
}

/// Judges the observations.
pub fn diagnose(obs: &Observations) -> Diagnosis {
    let mut b = Builder {
        obs,
        out: Vec::new(),
    };
    connection(&mut b);
    chain(&mut b);
    audit(&mut b);
    let mut findings = b.out;
    findings.sort_by_key(|f| (f.severity == Severity::Warning, causes::rank(&f.cause)));
    // `audit-url-open` is a warning (a public URL may be public on purpose) and still the
    // cause: the audit could not answer its question, so it does not say `ok`.
    let cause = findings
        .iter()
        .find(|f| f.severity == Severity::Error || f.cause == "audit-url-open")
        .map_or_else(|| "ok".to_owned(), |f| f.cause.clone());
    Diagnosis { cause, findings }
}

fn ms_text(ms: u64) -> String {
    format!("{ms} ms")
}

/// Everything up to and including the handshake.
fn connection(b: &mut Builder<'_>) {
    let obs = b.obs;
    for l in &obs.local {
        b.add(&l.cause, Severity::Error, l.detail.clone(), vec![]);
    }
    if !obs.local.is_empty() {
        return;
    }
    let t = &obs.target;
    if let Some(dns) = &obs.dns
        && let Some(e) = &dns.error
    {
        b.add(
            "dns-failure",
            Severity::Error,
            format!("{} does not resolve", t.host),
            vec![format!("resolver: {e} (after {})", ms_text(dns.ms))],
        );
        return;
    }
    if let Some(tcp) = &obs.tcp {
        match tcp.outcome {
            TcpOutcome::Connected => {}
            TcpOutcome::Refused => {
                b.add(
                    "tcp-refused",
                    Severity::Error,
                    format!(
                        "nothing listens on {}: the connection was refused",
                        tcp.address
                    ),
                    vec![format!(
                        "TCP SYN to {} answered with RST after {}",
                        tcp.address,
                        ms_text(tcp.ms)
                    )],
                );
                return;
            }
            TcpOutcome::Timeout => {
                b.add(
                    "tcp-timeout",
                    Severity::Error,
                    format!("no answer from {}: filtered or down", tcp.address),
                    vec![format!("no SYN-ACK within {}", ms_text(tcp.ms))],
                );
                return;
            }
            TcpOutcome::Error => {
                b.add(
                    "tcp-refused",
                    Severity::Error,
                    format!(
                        "cannot connect to {}: {}",
                        tcp.address,
                        tcp.error.as_deref().unwrap_or("error")
                    ),
                    vec![],
                );
                return;
            }
        }
    }
    let Some(primary) = obs.handshakes.first() else {
        return;
    };
    let trace = |h: &Handshake| -> Vec<String> {
        let mut v = vec![format!("handshake \"{}\":", h.label)];
        v.extend(
            h.steps
                .iter()
                .map(|s| format!("  +{} ms {} {}", s.ms, s.dir, s.what)),
        );
        v
    };
    let raw_lines = |obs: &Observations| -> Vec<String> {
        obs.raw
            .iter()
            .map(|r| {
                format!(
                    "raw ClientHello \"{}\" (SNI {}, {}): {} after {} ms",
                    r.label,
                    r.sent.sni.as_deref().unwrap_or("none"),
                    r.sent.versions.join("/"),
                    raw_text(&r.response),
                    r.ms
                )
            })
            .collect()
    };
    let mut evidence = trace(primary);
    evidence.extend(raw_lines(obs));

    // The handshake the diagnosis of the chain relies on (the SNI retry when there is one).
    let main = obs.handshakes.last().unwrap_or(primary);

    match &primary.outcome {
        HandshakeOutcome::Established => {}
        o if o.stage() == Some(Stage::Hello) => {
            hello_failure(b, primary, evidence.clone());
        }
        _ => {}
    }

    // A working connection that only works with SNI: clients connecting by IP without
    // `servername` will fail (seen with --compare).
    if matches!(primary.outcome, HandshakeOutcome::Established)
        && let Some(h) = obs
            .compare
            .iter()
            .flatten()
            .find(|h| h.sent.sni.is_none() && h.outcome.stage() == Some(Stage::Hello))
    {
        b.add(
            "sni-required",
            Severity::Warning,
            format!(
                "this server needs SNI: a ClientHello without a name gets {} (clients that connect by IP address without servername fail)",
                outcome_text(&h.outcome)
            ),
            trace(h),
        );
    }

    // Reached by address, without SNI, the server asked for no client certificate; the
    // handshake naming the leaf's host made it ask: its client-certificate settings
    // belong to that name (Caddy's sites), and a client that connects by address without
    // `servername` never reaches them (Caddy then answers 421 Misdirected Request).
    if matches!(primary.outcome, HandshakeOutcome::Established)
        && primary.cert_request.is_none()
        && let Some(name) = &obs.sni_found
        && main.sent.sni.as_deref() == Some(name.as_str())
        && main.cert_request.is_some()
    {
        let mut ev = trace(primary);
        ev.extend(trace(main));
        ev.extend(accepted_line(main));
        b.add(
            "sni-required",
            Severity::Error,
            format!(
                "without SNI the server asks for no client certificate; a ClientHello naming \"{name}\" makes it ask: its client-certificate settings belong to that name, so connect with that name (servername)"
            ),
            ev,
        );
    }

    // Failures after the server's certificate: client certificates.
    let late = |h: &Handshake| {
        !matches!(h.outcome, HandshakeOutcome::Established)
            && h.outcome.stage() != Some(Stage::Hello)
    };
    if late(main) {
        let mut ev = trace(main);
        ev.extend(accepted_line(main));
        let alert = match &main.outcome {
            HandshakeOutcome::Alert { code, .. } => Some(*code),
            _ => None,
        };
        if main.cert_request.is_some() && !main.sent.client_cert || alert == Some(116) {
            b.add(
                "client-cert-required",
                Severity::Error,
                "the server requires a client certificate and we sent none".into(),
                ev,
            );
        } else if main.cert_request.is_some()
            && main.sent.client_cert
            && let Some(summary) =
                incomplete_client_chain(obs, main, &outcome_text(&main.outcome), &mut ev)
        {
            b.add("client-chain-incomplete", Severity::Error, summary, ev);
        } else if main.cert_request.is_some() && main.sent.client_cert {
            let why = rejection_reason(obs, main, &mut ev);
            b.add(
                "client-cert-rejected",
                Severity::Error,
                format!(
                    "the server refused our client certificate ({}){why}",
                    outcome_text(&main.outcome)
                ),
                ev,
            );
        } else if alert == Some(120) {
            b.add(
                "alpn-mismatch",
                Severity::Error,
                "the server speaks none of the application protocols we offered".into(),
                ev,
            );
        } else {
            b.add(
                "reset-after-client-hello",
                Severity::Error,
                format!(
                    "the handshake failed after the server's certificate: {}",
                    outcome_text(&main.outcome)
                ),
                ev,
            );
        }
    }

    optional_client_auth(b, main, trace(main));

    // The handshake completed, and the server refused the request in HTTP because of the
    // client certificate (nginx `ssl_verify_client on`: 400 or 495/496).
    if main.outcome == HandshakeOutcome::Established
        && let Some(http) = &obs.http
        && let Some(cause) = http_refusal(http)
    {
        let mut ev = trace(main);
        ev.extend(http_lines(http));
        ev.extend(accepted_line(main));
        let answer = http_answer(http);
        if cause == "client-cert-required" {
            b.add(
                cause,
                Severity::Error,
                format!(
                    "the server requires a client certificate: it completed the handshake without one, then refused the request ({answer})"
                ),
                ev,
            );
        } else if let Some(summary) = incomplete_client_chain(
            obs,
            main,
            &format!("after the handshake: {answer}"),
            &mut ev,
        ) {
            b.add("client-chain-incomplete", Severity::Error, summary, ev);
        } else {
            let why = rejection_reason(obs, main, &mut ev);
            b.add(
                cause,
                Severity::Error,
                format!(
                    "the server refused our client certificate after the handshake ({answer}){why}"
                ),
                ev,
            );
        }
    }
}

/// The server asked for a client certificate and answered our request, not refusing it:
/// a certificate is optional there (`client-cert-optional`, when we sent none), or ours was
/// let through although its issuer is not among the CAs the server named
/// (`client-cert-unverified`). Both are warnings: the connection works; whether that URL
/// should answer without a verified certificate is for `doctor audit` and its owner.
fn optional_client_auth(b: &mut Builder<'_>, main: &Handshake, evidence: Vec<String>) {
    let obs = b.obs;
    let Some(http) = &obs.http else { return };
    if main.outcome != HandshakeOutcome::Established
        || http.status.is_none()
        || http_refusal(http).is_some()
        || audit_refused(http)
    {
        return;
    }
    let Some(accepted) = main.cert_request.as_ref() else {
        return;
    };
    let mut ev = evidence;
    ev.extend(http_lines(http));
    ev.extend(accepted_line(main));
    let answer = http_answer(http);
    if !http.client_cert {
        b.add(
            "client-cert-optional",
            Severity::Warning,
            format!(
                "the server asks for a client certificate but does not require one: it completed the handshake without one and answered the request ({answer}); certificate holders may get another answer (nginx `ssl_verify_client optional`, HAProxy `verify optional`, Caddy `verify_if_given`, Node `requestCert` without `rejectUnauthorized`)"
            ),
            ev,
        );
        return;
    }
    let Some(ours) = obs.client_chain.first() else {
        return;
    };
    let names: Vec<&str> = obs
        .client_chain
        .iter()
        .flat_map(|c| [c.issuer.as_str(), c.subject.as_str()])
        .collect();
    if !accepted.is_empty() && !accepted.iter().any(|a| names.contains(&a.as_str())) {
        ev.push(format!("our client certificate: {}", cert_line(0, ours)));
        b.add(
            "client-cert-unverified",
            Severity::Warning,
            format!(
                "the server let our client certificate through although its issuer, {}, is not among the CAs it asked for ({}), and answered the request ({answer}): it does not verify client certificates in the handshake (nginx `ssl_verify_client optional_no_ca`, Node with `rejectUnauthorized` off); if the application trusts the certificate's fields, anyone can make one: `portcullis doctor audit` tells",
                ours.issuer,
                accepted.join("; ")
            ),
            ev,
        );
    }
}

/// The CA names a CertificateRequest listed, as an evidence line.
fn accepted_line(h: &Handshake) -> Option<String> {
    h.cert_request.as_ref().map(|names| {
        format!(
            "the server accepts client certificates from: {}",
            if names.is_empty() {
                "(it did not list CA names)".to_owned()
            } else {
                names.join("; ")
            }
        )
    })
}

/// Our client certificate went out without its intermediate CA: the leaf's issuer is
/// not among the certificates we sent nor a CA the server names, it is a CA certificate
/// beside `--cert` (its NAME.chain.pem), and following issuers from there reaches a CA
/// the server's CertificateRequest names (or the server named none). The summary names
/// the intermediate, the accepted CA and the chain file to send; the evidence gets the
/// certificates left out.
fn incomplete_client_chain(
    obs: &Observations,
    h: &Handshake,
    refusal: &str,
    ev: &mut Vec<String>,
) -> Option<String> {
    let leaf = obs.client_chain.first()?;
    let accepted = h.cert_request.as_deref().unwrap_or_default();
    let sent = |name: &str| obs.client_chain[1..].iter().any(|c| c.subject == name);
    if leaf.self_issued || sent(&leaf.issuer) || accepted.contains(&leaf.issuer) {
        return None;
    }
    let mut missing: Vec<&CertDetails> = Vec::new();
    let mut current = leaf.issuer.as_str();
    let reached = loop {
        if accepted.iter().any(|a| a == current) {
            break Some(current);
        }
        let ca = obs
            .client_chain_beside
            .iter()
            .find(|c| c.subject == current && c.is_ca && !c.self_issued)
            .filter(|_| missing.len() < 8);
        match ca {
            Some(ca) => {
                missing.push(ca);
                current = &ca.issuer;
            }
            // The server named no CA: an intermediate we hold but did not send is
            // reason enough.
            None if accepted.is_empty() && !missing.is_empty() => break None,
            None => return None,
        }
    };
    let ours = obs
        .target
        .client_cert
        .as_deref()
        .unwrap_or("the certificate file");
    let chain_file = fixes::chain_file(ours);
    ev.push(format!("our client certificate: {}", cert_line(0, leaf)));
    for (i, ca) in missing.iter().enumerate() {
        ev.push(format!(
            "not sent (found in {chain_file}): {}",
            cert_line(i + 1, ca)
        ));
    }
    let leads = match reached {
        Some(root) => format!("which leads to {root}, a CA the server accepts"),
        None => "which the server needs to link it to the root it trusts".to_owned(),
    };
    Some(format!(
        "the server refused our client certificate ({refusal}): we sent only the leaf {} ({ours}), issued by the intermediate {}, {leads}; send the chain instead: {chain_file}",
        leaf.subject, missing[0].subject
    ))
}

/// Why the server may have refused our client certificate (its issuer is not one the
/// server lists, its dates, its purpose), as the end of a summary; adds our certificate
/// to the evidence.
fn rejection_reason(obs: &Observations, h: &Handshake, ev: &mut Vec<String>) -> String {
    let Some(ours) = obs.client_chain.first() else {
        return String::new();
    };
    ev.push(format!("our client certificate: {}", cert_line(0, ours)));
    let accepted = h.cert_request.as_deref().unwrap_or_default();
    let issuers: Vec<&str> = obs
        .client_chain
        .iter()
        .map(|c| c.issuer.as_str())
        .chain(obs.client_chain.iter().map(|c| c.subject.as_str()))
        .collect();
    if !accepted.is_empty() && !accepted.iter().any(|a| issuers.contains(&a.as_str())) {
        let leaf_only = obs.client_chain.len() == 1 && !ours.self_issued;
        format!(
            "; it is issued by {}, and the server accepts only {}{}",
            ours.issuer,
            accepted.join("; "),
            if leaf_only {
                format!(
                    " (if {} is an intermediate CA under one of those, send it too: the chain file, NAME.chain.pem)",
                    ours.issuer
                )
            } else {
                String::new()
            }
        )
    } else if ours.not_after < obs.now {
        format!("; it expired on {}", date(ours.not_after))
    } else if ours.not_before > obs.now {
        format!("; it is valid only from {}", date(ours.not_before))
    } else if ours
        .eku
        .as_ref()
        .is_some_and(|e| !e.iter().any(|u| u == "clientAuth" || u == "any"))
    {
        "; it does not allow client authentication (extendedKeyUsage)".into()
    } else {
        String::new()
    }
}

/// Whether an HTTP answer refuses the client certificate: `client-cert-required` (none
/// was sent) or `client-cert-rejected` (ours was not accepted). nginx answers 400 with
/// "No required SSL certificate was sent" or "The SSL certificate error", or 496/495
/// when `error_page` maps them; other servers say "certificate" in a 4xx page.
pub fn http_refusal(h: &HttpCheck) -> Option<&'static str> {
    let status = h.status?;
    let words = h.text.as_deref().unwrap_or("").to_lowercase();
    let by_what_we_sent = if h.client_cert {
        "client-cert-rejected"
    } else {
        "client-cert-required"
    };
    match status {
        496 => Some("client-cert-required"),
        495 => Some("client-cert-rejected"),
        400..=499 if words.contains("no required ssl certificate") => Some("client-cert-required"),
        400..=499 if words.contains("ssl certificate error") => Some("client-cert-rejected"),
        400..=499 if words.contains("certificate") => Some(by_what_we_sent),
        _ => None,
    }
}

/// Words of a page that refuses, whatever its status (the Express seed answers its
/// "Unauthorized" page with 200).
const REFUSAL_WORDS: &[&str] = &[
    "unauthorized",
    "unauthorised",
    "not authorized",
    "not authorised",
    "forbidden",
    "access denied",
    "permission denied",
    "not allowed",
    "certificate required",
    "no required ssl certificate",
    "ssl certificate error",
    "bad certificate",
    "invalid certificate",
];

/// Whether an audit request was refused: no HTTP answer (a TLS alert, a close), a status
/// that refuses (401, 403, 407, 495, 496, or a 4xx page about the certificate), or a page
/// with refusal words, whatever its status.
pub fn audit_refused(h: &HttpCheck) -> bool {
    let Some(status) = h.status else {
        return true;
    };
    if http_refusal(h).is_some() || matches!(status, 401 | 403 | 407 | 495 | 496) {
        return true;
    }
    let words = h.text.as_deref().unwrap_or("").to_lowercase();
    REFUSAL_WORDS.iter().any(|w| words.contains(w))
}

/// Whether `twin` got the same kind of answer as `real`: the same status class, and not
/// a refusal.
pub fn audit_got_in(real: &HttpCheck, twin: &HttpCheck) -> bool {
    match (real.status, twin.status) {
        (Some(r), Some(t)) => r / 100 == t / 100 && !audit_refused(real) && !audit_refused(twin),
        _ => false,
    }
}

/// `doctor audit`: the real certificate's answer against each twin's. Only when the
/// connection itself is healthy (otherwise those findings say why).
fn audit(b: &mut Builder<'_>) {
    let obs = b.obs;
    let Some(audit) = &obs.audit else {
        return;
    };
    if b.out.iter().any(|f| f.severity == Severity::Error) {
        return;
    }
    let Some(real) = audit.tries.iter().find(|t| t.twin == "real") else {
        return;
    };
    let answer = |t: &AuditTry| match &t.http.error {
        Some(e) => format!("refused, no HTTP answer: {e}"),
        None => http_answer(&t.http),
    };
    let line = |t: &AuditTry| format!("{}: {}", t.presented, answer(t));
    let request = format!(
        "each request on a new connection verified with the {} store: {}, Host: {}, Connection: close",
        real.http.verified_by, real.http.request, real.http.host
    );
    let path = if obs.target.path.is_empty() {
        "/"
    } else {
        obs.target.path.as_str()
    };
    if audit_refused(&real.http) {
        b.add(
            "client-cert-rejected",
            Severity::Error,
            format!(
                "the server does not accept the real certificate at {path} ({}): the audit \
                 compares forged copies with a certificate the server accepts",
                answer(real)
            ),
            vec![request, line(real)],
        );
        return;
    }
    if let Some(none) = audit.tries.iter().find(|t| t.twin == "none")
        && audit_got_in(&real.http, &none.http)
    {
        b.add(
            "audit-url-open",
            Severity::Warning,
            format!(
                "{path} answers a request without a client certificate as it answers the real \
                 one ({}): no certificate protects it, so there is nothing to forge",
                http_answer(&none.http)
            ),
            vec![request, line(real), line(none)],
        );
        return;
    }
    let forged: Vec<&AuditTry> = audit
        .tries
        .iter()
        .filter(|t| t.twin != "real" && t.twin != "none")
        .collect();
    let inside: Vec<&AuditTry> = forged
        .iter()
        .copied()
        .filter(|t| audit_got_in(&real.http, &t.http))
        .collect();
    if inside.is_empty() {
        return;
    }
    let mut ev = vec![request, line(real)];
    for t in audit.tries.iter().filter(|t| t.twin != "real") {
        let verdict = if audit_got_in(&real.http, &t.http) {
            "GOT IN"
        } else {
            "refused"
        };
        ev.push(format!("{verdict}: {}", line(t)));
    }
    b.add(
        "accepts-forged-certificate",
        Severity::Error,
        format!(
            "the server accepts forged client certificates: {} of {} forged copies got the \
             answer the real certificate gets ({}): {}",
            inside.len(),
            forged.len(),
            http_answer(&real.http),
            inside
                .iter()
                .map(|t| t.twin.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        ev,
    );
    for t in inside {
        let summary = match t.twin.as_str() {
            "self-signed" => {
                "a self-signed copy (same subject and SANs, a key of ours) got in: the server \
                 does not check who signed the certificate"
            }
            "same-name-issuer" => {
                "a copy signed by a throwaway CA that only has the real issuer's name got in: \
                 the server compares names, not signatures"
            }
            "expired" => {
                "an expired copy got in; it is signed by the throwaway same-name CA (we do not \
                 hold the real CA's key), so the server checks neither the signature nor the \
                 dates"
            }
            "no-client-auth-eku" => {
                "a copy without the clientAuth extendedKeyUsage got in; it is signed by the \
                 throwaway same-name CA, so the server checks neither the signature nor what \
                 the certificate is for"
            }
            _ => "a forged copy got in",
        };
        b.add(
            &format!("accepts-{}", t.twin),
            Severity::Error,
            summary.split_whitespace().collect::<Vec<_>>().join(" "),
            vec![line(real), line(t)],
        );
    }
}

/// `HTTP/1.1 400 Bad Request: "400 No required SSL certificate was sent"`.
fn http_answer(h: &HttpCheck) -> String {
    let line = h.status_line.as_deref().unwrap_or("no status line");
    match &h.text {
        Some(t) => format!("{line}: \"{t}\""),
        None => line.to_owned(),
    }
}

fn http_lines(h: &HttpCheck) -> Vec<String> {
    vec![
        format!(
            "then, on a new connection verified with the {} store, {} client certificate, one request: {}, Host: {}, Connection: close",
            h.verified_by,
            if h.client_cert {
                "with our"
            } else {
                "without a"
            },
            h.request,
            h.host
        ),
        match &h.error {
            Some(e) => format!("  no answer: {e} (after {} ms)", h.ms),
            None => format!(
                "  the server answered {} (after {} ms)",
                http_answer(h),
                h.ms
            ),
        },
    ]
}

/// The handshake died before the server's certificate: use the raw probes to say why.
fn hello_failure(b: &mut Builder<'_>, primary: &Handshake, evidence: Vec<String>) {
    let obs = b.obs;
    let raw = |label: &str| obs.raw.iter().find(|r| r.label == label);
    let server_hello = |r: &RawProbe| match &r.response {
        RawResponse::ServerHello {
            version,
            cipher_suite,
        } => Some((version.clone(), cipher_suite.clone())),
        _ => None,
    };
    let not_tls = obs.raw.iter().find_map(|r| match &r.response {
        RawResponse::NotTls { preview } => Some(preview.clone()),
        _ => None,
    });
    if matches!(primary.outcome, HandshakeOutcome::NotTls { .. }) || not_tls.is_some() {
        let preview = not_tls.unwrap_or_default();
        let guess = guess_protocol(&preview);
        b.add(
            "not-tls",
            Severity::Error,
            format!(
                "port {} does not speak TLS{}; its first bytes: \"{preview}\"",
                obs.target.port,
                guess
                    .map(|g| format!(" (looks like {g})"))
                    .unwrap_or_default()
            ),
            evidence,
        );
        return;
    }
    if let HandshakeOutcome::Alert { code, name, .. } = &primary.outcome {
        match code {
            120 => {
                b.add(
                    "alpn-mismatch",
                    Severity::Error,
                    format!(
                        "the server speaks none of the application protocols we offered ({})",
                        primary.sent.alpn.join(", ")
                    ),
                    evidence,
                );
                return;
            }
            112 => {
                b.add(
                    "sni-unrecognized",
                    Severity::Error,
                    format!(
                        "the server does not serve the name we sent ({}): alert {code} ({name})",
                        primary.sent.sni.as_deref().unwrap_or("none")
                    ),
                    evidence,
                );
                return;
            }
            _ => {}
        }
    }
    let modern = raw("modern hello");
    if matches!(primary.outcome, HandshakeOutcome::Timeout { .. })
        && modern.is_none_or(|r| r.response == RawResponse::Timeout)
    {
        b.add(
            "handshake-timeout",
            Severity::Error,
            "the server accepted the TCP connection but never answered our ClientHello".into(),
            evidence,
        );
        return;
    }
    let modern_ok = modern.and_then(server_hello).is_some();
    if let Some(name) = obs.sni_found.as_ref().filter(|_| !modern_ok) {
        b.add(
            "sni-required",
            Severity::Error,
            format!(
                "the server drops a ClientHello without SNI, and accepts one naming \"{name}\""
            ),
            evidence,
        );
        return;
    }
    if primary.sent.sni.is_some()
        && !modern_ok
        && raw("without SNI").is_some_and(|r| server_hello(r).is_some())
    {
        b.add(
            "sni-unrecognized",
            Severity::Error,
            format!(
                "the server rejects a ClientHello naming \"{}\" but accepts one without SNI",
                primary.sent.sni.as_deref().unwrap_or("")
            ),
            evidence,
        );
        return;
    }
    // A version we did not offer got a ServerHello.
    let offered = &primary.sent.versions;
    if let Some(version) = obs.raw.iter().find_map(|r| {
        server_hello(r)
            .map(|(v, _)| v)
            .filter(|v| !offered.contains(v))
    }) {
        b.add(
            "protocol-version-mismatch",
            Severity::Error,
            format!(
                "the server speaks {version}; our client offered only {}",
                offered.join(" and ")
            ),
            evidence,
        );
        return;
    }
    // No raw probe found the version the server speaks, but it said so itself.
    if let HandshakeOutcome::Alert { code: 70, name, .. } = &primary.outcome {
        b.add(
            "protocol-version-mismatch",
            Severity::Error,
            format!(
                "the server refuses every version offered ({}): alert 70 ({name})",
                offered.join(", ")
            ),
            evidence,
        );
        return;
    }
    if let (Some(legacy), Some(modern12)) =
        (raw("TLS 1.2, legacy suites"), raw("TLS 1.2, modern suites"))
        && let (Some((_, suite)), None) = (server_hello(legacy), server_hello(modern12))
    {
        b.add(
            "no-shared-cipher",
            Severity::Error,
            format!("the server refuses every modern cipher suite and picked the legacy {suite}"),
            evidence,
        );
        return;
    }
    if modern_ok {
        // A plain hello works, ours does not: the difference is in the client's settings.
        let version_limited = primary.sent.versions.len() == 1;
        if version_limited {
            b.add(
                "protocol-version-mismatch",
                Severity::Error,
                format!(
                    "the server refuses {} (our client was limited to it with --tls)",
                    primary.sent.versions.join("")
                ),
                evidence,
            );
            return;
        }
    }
    b.add(
        "reset-after-client-hello",
        Severity::Error,
        format!(
            "the server ended the connection after our ClientHello ({}), and no variant we tried was accepted",
            outcome_text(&primary.outcome)
        ),
        evidence,
    );
}

/// Trust, dates, key strength, purpose and name of the presented chain.
fn chain(b: &mut Builder<'_>) {
    let obs = b.obs;
    let Some(leaf) = obs.chain.first() else {
        return;
    };
    let chain_lines: Vec<String> = obs
        .chain
        .iter()
        .enumerate()
        .map(|(i, c)| cert_line(i, c))
        .collect();
    let pinned = !obs.target.ca_files.is_empty();
    let verdict = |store: &str| obs.trust.iter().find(|v| v.store == store);
    let as_client = obs.target.as_client.as_deref();
    let effective = if pinned {
        verdict("pinned")
    } else if let Some(client) = as_client {
        // `--as`: the store that client uses by default on this machine.
        obs.trust
            .iter()
            .find(|v| v.client.as_deref() == Some(client) && v.primary)
    } else {
        match verdict("system") {
            Some(v) if v.anchors > 0 => Some(v),
            _ => verdict("mozilla"),
        }
    };
    let mut trust_lines = chain_lines.clone();
    trust_lines.extend(obs.trust.iter().map(|v| {
        format!(
            "{} store ({} anchors{}): {}",
            v.store,
            v.anchors,
            if v.sources.is_empty() {
                String::new()
            } else {
                format!("; {}", v.sources.join("; "))
            },
            if v.trusted {
                format!(
                    "trusted{}, anchor {}",
                    if v.dates_aside {
                        " with the dates set aside (no instant lies within every certificate's validity)"
                    } else {
                        ""
                    },
                    v.anchor.as_deref().unwrap_or("?")
                )
            } else {
                format!("not trusted ({})", v.error.as_deref().unwrap_or("?"))
            }
        )
    }));

    // Weak algorithms and keys first: they also make the trust check fail. A self-signed
    // certificate's own signature is not checked by OpenSSL once it is trusted, so it only
    // counts when rustls refused the pinned chain for it.
    let effective_error = effective.and_then(|v| v.error.as_deref()).unwrap_or("");
    let mut weak = false;
    for (i, c) in obs.chain.iter().enumerate() {
        let anchor_self_sig = c.self_issued
            && !(pinned && effective_error.starts_with("UnsupportedSignatureAlgorithm"));
        if is_weak_signature(&c.signature_algorithm) && !anchor_self_sig {
            weak = true;
            b.add(
                "weak-signature",
                Severity::Error,
                format!(
                    "certificate {i} ({}) is signed with {}, which clients refuse",
                    c.subject, c.signature_algorithm
                ),
                chain_lines.clone(),
            );
        }
        if c.rsa_bits > 0 && c.rsa_bits < 2048 {
            weak = true;
            b.add(
                "weak-key",
                Severity::Error,
                format!(
                    "certificate {i} ({}) has a {}-bit RSA key; clients require 2048 bits or more",
                    c.subject, c.rsa_bits
                ),
                chain_lines.clone(),
            );
        }
    }

    // Purpose.
    let eku_bad = leaf
        .eku
        .as_ref()
        .is_some_and(|e| !e.iter().any(|u| u == "serverAuth" || u == "any"));
    if eku_bad {
        b.add(
            "wrong-purpose",
            Severity::Error,
            format!(
                "the server's certificate is not for TLS servers: extendedKeyUsage is {} (no serverAuth)",
                leaf.eku.as_ref().map(|e| e.join(", ")).unwrap_or_default()
            ),
            chain_lines.clone(),
        );
    }

    if let Some(v) = effective.filter(|v| !v.trusted) {
        let err = v.error.as_deref().unwrap_or("");
        let purpose = err.starts_with("RequiredEku") || err == "CaUsedAsEndEntity";
        // A pinned self-signed certificate made with `openssl req -x509` carries CA:TRUE:
        // OpenSSL, Node.js and curl accept it, rustls does not. Only rustls users are hurt.
        let pinned_self_signed_ca = pinned
            && err == "CaUsedAsEndEntity"
            && obs.chain.len() == 1
            && leaf.self_issued
            && v.anchor_names.contains(&leaf.subject);
        if pinned_self_signed_ca {
            b.add(
                "wrong-purpose",
                Severity::Warning,
                "the pinned self-signed certificate is marked CA:TRUE: OpenSSL, Node.js and curl accept it, rustls-based clients refuse it (CaUsedAsEndEntity)".into(),
                trust_lines.clone(),
            );
        } else if purpose && !(obs.chain.len() == 1 && leaf.self_issued && !pinned) {
            b.add(
                "wrong-purpose",
                Severity::Error,
                if err == "CaUsedAsEndEntity" {
                    "the server presents a CA certificate as its own (CA:TRUE); rustls-based clients refuse it".into()
                } else {
                    "the server's certificate does not allow TLS server use (extendedKeyUsage)".into()
                },
                trust_lines.clone(),
            );
        } else if !weak && !eku_bad {
            let before = b.out.len();
            trust_finding(b, v, pinned, trust_lines.clone());
            // Say whose store judged, and where it came from.
            if let Some(client) = v.client.as_deref() {
                for f in b.out[before..]
                    .iter_mut()
                    .filter(|f| f.cause != "trust-store-differs")
                {
                    f.summary.push_str(&format!(
                        "; judged with the {} store, as {client} reads it on this machine: {}",
                        v.store,
                        v.sources.join("; ")
                    ));
                }
            }
        }
    }

    // One client trusts the chain and another does not (`--compare`, or `--as` with a
    // client whose store works): the difference is in their stores, not the server.
    if !pinned && effective.is_some_and(|v| v.trusted) {
        let failing: Vec<&TrustVerdict> = obs
            .trust
            .iter()
            .filter(|v| v.client.is_some() && !v.trusted)
            .collect();
        if let (Some(ok), false) = (effective, failing.is_empty()) {
            b.add(
                "trust-store-differs",
                Severity::Warning,
                format!(
                    "the {} store trusts this chain (anchor {}), but {} {} not: those clients refuse it",
                    ok.store,
                    ok.anchor.as_deref().unwrap_or("?"),
                    failing
                        .iter()
                        .map(|v| format!("the {} store ({})", v.store, v.sources.join("; ")))
                        .collect::<Vec<_>>()
                        .join(", and "),
                    if failing.len() == 1 { "does" } else { "do" }
                ),
                trust_lines.clone(),
            );
        }
    }

    // Dates.
    for (i, c) in obs.chain.iter().enumerate() {
        let which = if i == 0 {
            "the server's certificate".to_owned()
        } else {
            format!("certificate {i} ({})", c.subject)
        };
        if c.not_after < obs.now {
            let days = (obs.now - c.not_after) / 86_400;
            b.add(
                "expired",
                Severity::Error,
                format!(
                    "{which} expired on {} ({days} days ago by this machine's clock)",
                    date(c.not_after)
                ),
                chain_lines.clone(),
            );
        } else if c.not_before > obs.now {
            let days = (c.not_before - obs.now) / 86_400;
            b.add(
                "not-yet-valid",
                Severity::Error,
                format!(
                    "{which} is valid only from {} (in {days} days by this machine's clock)",
                    date(c.not_before)
                ),
                chain_lines.clone(),
            );
        }
    }

    // Name.
    if let Some(nc) = obs.name_check.as_ref().filter(|n| !n.valid) {
        match &leaf.sans {
            None => b.add(
                "cn-only-no-san",
                Severity::Error,
                format!(
                    "the certificate has no subjectAltName; its CN ({}) is ignored by modern clients",
                    leaf.common_name.as_deref().unwrap_or("none")
                ),
                chain_lines.clone(),
            ),
            Some(sans) => {
                let ip = nc.name.parse::<std::net::IpAddr>().is_ok();
                let hint = if ip && sans.iter().all(|s| !s.starts_with("IP:")) {
                    " (you connect by IP address; the certificate lists only DNS names)"
                        .to_owned()
                } else {
                    wildcard_hint(&nc.name, sans).unwrap_or_default()
                };
                b.add(
                    "hostname-mismatch",
                    Severity::Error,
                    format!(
                        "\"{}\" is not in the certificate's names: {}{hint}",
                        nc.name,
                        sans.join(", ")
                    ),
                    chain_lines.clone(),
                );
            }
        }
    }

    // Order.
    for i in 1..obs.chain.len() {
        if obs.chain[i].subject != obs.chain[i - 1].issuer {
            b.add(
                "chain-misordered",
                Severity::Warning,
                format!(
                    "certificate {i} ({}) is not the issuer of certificate {} ({})",
                    obs.chain[i].subject,
                    i - 1,
                    obs.chain[i - 1].issuer
                ),
                chain_lines.clone(),
            );
            break;
        }
    }

    if leaf.is_ca && !b.out.iter().any(|f| f.cause == "wrong-purpose") {
        b.add(
            "wrong-purpose",
            Severity::Warning,
            "the server's certificate is a CA certificate (CA:TRUE); rustls-based clients refuse it".into(),
            chain_lines,
        );
    }
}

/// Self-signed leaf, missing intermediate, untrusted root, or the wrong pinned CA.
fn trust_finding(b: &mut Builder<'_>, v: &TrustVerdict, pinned: bool, evidence: Vec<String>) {
    let obs = b.obs;
    let chain = &obs.chain;
    let leaf = &chain[0];
    // `--as`: the client's store refuses a chain another store on this machine trusts.
    if let Some(client) = v.client.as_deref() {
        let others: Vec<&TrustVerdict> = obs
            .trust
            .iter()
            .filter(|t| t.trusted && t.store != "pinned" && t.store != v.store)
            .collect();
        if let Some(first) = others.first() {
            b.add(
                "trust-store-differs",
                Severity::Error,
                format!(
                    "{client} does not trust this chain ({}) with its store, {} ({}), while the {} store{} trust{} it (anchor {}): add that root to {client}'s store",
                    v.error.as_deref().unwrap_or("not trusted"),
                    v.store,
                    v.sources.join("; "),
                    and_list(&others.iter().map(|t| t.store.as_str()).collect::<Vec<_>>()),
                    if others.len() == 1 { "" } else { "s" },
                    if others.len() == 1 { "s" } else { "" },
                    first.anchor.as_deref().unwrap_or("?"),
                ),
                evidence,
            );
            return;
        }
    }
    let public = obs
        .trust
        .iter()
        .filter(|t| t.store != "pinned" && t.trusted)
        .map(|t| t.store.clone())
        .collect::<Vec<_>>();
    let public_note = if public.is_empty() {
        "neither the system store nor Mozilla's trusts it either".to_owned()
    } else {
        format!("the {} store trusts it", public.join(" and "))
    };
    let leaf_issuer_sent = chain[1..].iter().any(|c| c.subject == leaf.issuer);
    let yours = obs
        .trust
        .iter()
        .find(|t| t.store == "pinned")
        .map(|t| format!(" (your --ca: {})", t.anchor_names.join("; ")))
        .unwrap_or_default();
    let top = chain.last().map_or(leaf, |c| c);

    if chain.len() == 1 && leaf.self_issued {
        if pinned {
            b.add(
                "pinned-ca-mismatch",
                Severity::Error,
                format!(
                    "the server presents a self-signed certificate ({}, SHA-256 {}) that is not among your --ca certificates{yours}",
                    leaf.subject, leaf.sha256
                ),
                evidence,
            );
        } else {
            b.add(
                "self-signed",
                Severity::Error,
                format!(
                    "the server's certificate is self-signed ({}, SHA-256 {}) and not trusted",
                    leaf.subject, leaf.sha256
                ),
                evidence,
            );
        }
        return;
    }
    if !leaf.self_issued && !leaf_issuer_sent && !v.has_leaf_issuer {
        if pinned && !public.is_empty() {
            b.add(
                "pinned-ca-mismatch",
                Severity::Error,
                format!(
                    "the server's chain leads to {}, not to your --ca{yours}; {public_note}",
                    top.issuer
                ),
                evidence,
            );
        } else if !pinned && leaf.issuer.to_lowercase().contains("root") {
            // On the wire, a leaf signed directly by a private root looks exactly like a
            // leaf whose intermediate was left out. The issuer's name is the best evidence
            // there is; a root-only private CA (`portcullis pki init`) is the common case.
            b.add(
                "untrusted-root",
                Severity::Error,
                format!(
                    "the server's certificate was issued by {}, which is not in the trust store; by its name a root CA (a private CA?): trust it with --ca (Node: `ca`, curl: --cacert); if it is an intermediate instead, the server must send it",
                    leaf.issuer
                ),
                evidence,
            );
        } else {
            let or_root = if pinned {
                format!(
                    "; if {} is a root rather than an intermediate, it is simply not the CA you pinned{yours}",
                    leaf.issuer
                )
            } else {
                format!(
                    "; if {} is a private root CA rather than an intermediate, trust it with --ca instead",
                    leaf.issuer
                )
            };
            b.add(
                "missing-intermediate",
                Severity::Error,
                format!(
                    "the server sent its certificate without the CA that issued it ({}); that issuer is neither in the chain nor in the trust store{or_root}",
                    leaf.issuer
                ),
                evidence,
            );
        }
        return;
    }
    let root = if top.self_issued {
        format!("the root {} (sent by the server)", top.subject)
    } else {
        format!("the root {}", top.issuer)
    };
    if pinned {
        b.add(
            "pinned-ca-mismatch",
            Severity::Error,
            format!("the server's chain leads to {root}, not to your --ca{yours}; {public_note}"),
            evidence,
        );
    } else {
        let names = format!("{} {}", top.subject, top.issuer).to_lowercase();
        let proxy = INTERCEPTORS.iter().find(|p| names.contains(*p));
        let what = match proxy {
            Some(p) => format!(
                "this looks like a TLS-intercepting proxy or antivirus ({p}): it re-signs every connection with its own root"
            ),
            None => "a private CA, or a proxy that intercepts TLS".to_owned(),
        };
        b.add(
            "untrusted-root",
            Severity::Error,
            format!(
                "the chain leads to {root}, which the {} store does not trust ({what})",
                v.store
            ),
            evidence,
        );
    }
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// Products that intercept TLS with their own root, as their names appear in it.
const INTERCEPTORS: &[&str] = &[
    "zscaler",
    "fortinet",
    "fortigate",
    "palo alto",
    "netskope",
    "blue coat",
    "bluecoat",
    "cisco umbrella",
    "sophos",
    "kaspersky",
    "avast",
    "eset",
    "bitdefender",
    "mitmproxy",
    "charles proxy",
    "fiddler",
    "portswigger",
    "burp",
];

/// Why a wildcard SAN does not cover the name: it matches exactly one label.
fn wildcard_hint(name: &str, sans: &[String]) -> Option<String> {
    sans.iter()
        .filter_map(|s| s.strip_prefix("DNS:*."))
        .find(|suffix| {
            name.len() > suffix.len() + 1
                && name.ends_with(&format!(".{suffix}"))
                && name[..name.len() - suffix.len() - 1].contains('.')
        })
        .map(|suffix| {
            format!(" (*.{suffix} covers exactly one label: it matches a.{suffix} but not {name})")
        })
        .or_else(|| {
            sans.iter()
                .filter_map(|s| s.strip_prefix("DNS:*."))
                .find(|suffix| name == *suffix)
                .map(|suffix| format!(" (*.{suffix} does not cover {suffix} itself)"))
        })
}

fn cert_line(i: usize, c: &CertDetails) -> String {
    format!(
        "cert {i}: subject {} | issuer {} | SAN {} | valid {} to {} | {} {} | SHA-256 {}",
        c.subject,
        c.issuer,
        c.sans
            .as_ref()
            .map_or_else(|| "(none)".to_owned(), |s| s.join(", ")),
        date(c.not_before),
        date(c.not_after),
        c.key,
        c.signature_algorithm,
        c.sha256
    )
}

fn date(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second]Z"
            ))
            .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

pub fn outcome_text(o: &HandshakeOutcome) -> String {
    match o {
        HandshakeOutcome::Established => "handshake completed".into(),
        HandshakeOutcome::Alert { code, name, .. } => format!("alert {code} ({name})"),
        HandshakeOutcome::Closed { reset: true, .. } => "connection reset (RST)".into(),
        HandshakeOutcome::Closed { reset: false, .. } => "connection closed (FIN)".into(),
        HandshakeOutcome::Timeout { .. } => "no answer".into(),
        HandshakeOutcome::NotTls { .. } => "not TLS".into(),
        HandshakeOutcome::ClientError { message, .. } => message.clone(),
    }
}

pub fn raw_text(r: &RawResponse) -> String {
    match r {
        RawResponse::ServerHello {
            version,
            cipher_suite,
        } => format!("ServerHello {version} {cipher_suite}"),
        RawResponse::Alert { code, name } => format!("alert {code} ({name})"),
        RawResponse::Closed { reset: true } => "reset (RST)".into(),
        RawResponse::Closed { reset: false } => "closed (FIN)".into(),
        RawResponse::Timeout => "no answer".into(),
        RawResponse::NotTls { preview } => format!("not TLS: \"{preview}\""),
        RawResponse::Error { message } => message.clone(),
    }
}

fn guess_protocol(preview: &str) -> Option<&'static str> {
    if preview.starts_with("HTTP/") {
        Some("HTTP")
    } else if preview.starts_with("SSH-") {
        Some("SSH")
    } else if preview.starts_with("220") {
        Some("SMTP or FTP")
    } else if preview.starts_with("+OK") {
        Some("POP3")
    } else if preview.starts_with("* OK") {
        Some("IMAP")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A handshake as `label`, ending in `outcome` after `chain_len` certificates, with
    /// nothing else seen.
    fn handshake(label: &str, outcome: HandshakeOutcome, chain_len: usize) -> Handshake {
        Handshake {
            label: label.into(),
            sent: HelloSent::default(),
            outcome,
            version: None,
            cipher_suite: None,
            alpn: None,
            cert_request: None,
            chain_len,
            signature_error: None,
            steps: vec![],
            ms: 1,
        }
    }

    fn base() -> Observations {
        let mut o = Observations::default();
        o.target.host = "192.0.2.1".into();
        o.target.port = 443;
        o.dns = Some(DnsObservation {
            addresses: vec!["192.0.2.1".into()],
            error: None,
            ms: 0,
        });
        o
    }

    /// Judged from a recorded observation, round-tripped through JSON as a saved report
    /// (or one built from a capture) would be.
    #[test]
    fn tcp_timeout_from_a_recorded_observation() {
        let mut o = base();
        o.tcp = Some(TcpObservation {
            address: "192.0.2.1:443".into(),
            outcome: TcpOutcome::Timeout,
            error: None,
            ms: 5000,
        });
        let saved = serde_json::to_string(&o).unwrap();
        let back: Observations = serde_json::from_str(&saved).unwrap();
        let d = diagnose(&back);
        assert_eq!(d.cause, "tcp-timeout");
        assert!(!d.findings[0].fixes.is_empty());
    }

    #[test]
    fn wildcards_cover_one_label() {
        let sans = vec!["DNS:*.example.com".to_owned()];
        assert!(wildcard_hint("a.b.example.com", &sans).is_some());
        assert!(wildcard_hint("example.com", &sans).is_some());
        assert!(wildcard_hint("other.test", &sans).is_none());
    }

    #[test]
    fn an_intercepting_proxy_is_named() {
        let mut o = base();
        o.handshakes
            .push(handshake("as requested", HandshakeOutcome::Established, 2));
        let leaf = CertDetails {
            subject: "CN=example.com".into(),
            issuer: "CN=Zscaler Intermediate Root CA".into(),
            sans: Some(vec!["DNS:example.com".into()]),
            not_after: i64::MAX / 2,
            ..Default::default()
        };
        let inter = CertDetails {
            subject: "CN=Zscaler Intermediate Root CA".into(),
            issuer: "CN=Zscaler Root CA".into(),
            not_after: i64::MAX / 2,
            ..Default::default()
        };
        o.chain = vec![leaf, inter];
        o.trust = vec![TrustVerdict {
            store: "system".into(),
            trusted: false,
            dates_aside: false,
            anchor: None,
            error: Some("UnknownIssuer".into()),
            has_leaf_issuer: false,
            has_top_issuer: false,
            anchors: 100,
            anchor_names: vec![],
            client: None,
            primary: false,
            sources: vec![],
        }];
        let d = diagnose(&o);
        assert_eq!(d.cause, "untrusted-root");
        assert!(
            d.findings[0].summary.contains("zscaler"),
            "{}",
            d.findings[0].summary
        );
    }

    /// The audit's comparison rule: same status class, and not a refusal.
    #[test]
    fn audit_twins_get_in_only_with_the_real_answer() {
        let http = |status: Option<u16>, text: &str| HttpCheck {
            status,
            text: Some(text.into()),
            client_cert: true,
            ..Default::default()
        };
        let real = http(Some(200), "hello alice");
        let cases = [
            (http(Some(200), "hello alice"), true),
            (http(Some(204), ""), true),
            // The Express seed's own page for unverified clients, answered with 200.
            (http(Some(200), "Unauthorized!"), false),
            (http(Some(302), "Found"), false),
            (http(Some(401), "hello"), false),
            (http(Some(403), ""), false),
            (http(Some(400), "400 The SSL certificate error"), false),
            (http(Some(496), ""), false),
            // A TLS alert or a close: no HTTP answer at all.
            (http(None, ""), false),
        ];
        for (twin, got_in) in cases {
            assert_eq!(audit_got_in(&real, &twin), got_in, "{twin:?}");
        }
        // A real answer that itself refuses cannot be compared with.
        assert!(audit_refused(&http(Some(403), "Forbidden")));
        assert!(!audit_got_in(
            &http(Some(403), "Forbidden"),
            &http(Some(403), "Forbidden")
        ));
        // Nor can a refusal page answered with 200 (the seed's, for a certificate it
        // does not accept).
        assert!(audit_refused(&http(Some(200), "Unauthorized!")));
    }

    #[test]
    fn refusals_in_http() {
        let http = |status, text: &str, client_cert| HttpCheck {
            status: Some(status),
            status_line: Some(format!("HTTP/1.1 {status} X")),
            text: Some(text.into()),
            client_cert,
            ..Default::default()
        };
        let cases = [
            (
                400,
                "400 No required SSL certificate was sent",
                false,
                Some("client-cert-required"),
            ),
            (
                400,
                "400 The SSL certificate error",
                true,
                Some("client-cert-rejected"),
            ),
            (
                496,
                "496 SSL Certificate Required",
                false,
                Some("client-cert-required"),
            ),
            (
                495,
                "whatever the page says",
                true,
                Some("client-cert-rejected"),
            ),
            (
                401,
                "Sorry, but you need to provide a client certificate to continue.",
                false,
                Some("client-cert-required"),
            ),
            (
                403,
                "Sorry mallory, certificates from Stranger CA are not welcome here.",
                true,
                Some("client-cert-rejected"),
            ),
            (403, "Forbidden", false, None),
            (404, "Not Found", false, None),
            (200, "certificate details", false, None),
        ];
        for (status, text, sent, want) in cases {
            assert_eq!(
                http_refusal(&http(status, text, sent)),
                want,
                "{status} {text}"
            );
        }

        // From observations: a completed handshake with a CertificateRequest, then 400.
        let mut o = base();
        o.handshakes.push(Handshake {
            cert_request: Some(vec!["CN=Clients CA".into()]),
            ..handshake("as requested", HandshakeOutcome::Established, 1)
        });
        o.http = Some(http(400, "400 No required SSL certificate was sent", false));
        let d = diagnose(&o);
        assert_eq!(d.cause, "client-cert-required");
        let f = &d.findings[0];
        assert!(
            f.summary.contains("No required SSL certificate was sent"),
            "{}",
            f.summary
        );
        assert!(
            f.fixes.iter().any(|x| x.ecosystem == "server"),
            "{:?}",
            f.fixes
        );
        // An answer that is not about the certificate is the application's business.
        o.http = Some(http(404, "Not Found", false));
        assert_eq!(diagnose(&o).cause, "ok");
    }

    /// A server that answers alert 70 (as a capture or a lone probe shows it) refuses
    /// every version offered, even when no raw probe found the one it speaks.
    #[test]
    fn alert_70_is_a_version_mismatch() {
        let mut o = base();
        o.handshakes.push(Handshake {
            sent: HelloSent {
                versions: vec!["TLS 1.3".into(), "TLS 1.2".into()],
                ..Default::default()
            },
            ..handshake(
                "as captured",
                HandshakeOutcome::Alert {
                    code: 70,
                    name: "protocol_version".into(),
                    stage: Stage::Hello,
                },
                0,
            )
        });
        assert_eq!(diagnose(&o).cause, "protocol-version-mismatch");
        if let Some(h) = o.handshakes.first_mut() {
            h.outcome = HandshakeOutcome::Closed {
                reset: false,
                stage: Stage::Hello,
            };
        }
        assert_eq!(diagnose(&o).cause, "reset-after-client-hello");
    }

    /// `--as node`: Node's store refuses what curl's trusts. The cause names both, and
    /// the only fix is Node's knob.
    #[test]
    fn a_client_store_that_differs_is_named_with_its_knob() {
        let mut o = base();
        o.target.host = "localhost".into();
        o.target.as_client = Some("node".into());
        o.handshakes
            .push(handshake("as requested", HandshakeOutcome::Established, 1));
        o.chain = vec![CertDetails {
            subject: "CN=localhost".into(),
            issuer: "CN=Private Root CA".into(),
            sans: Some(vec!["DNS:localhost".into()]),
            not_after: i64::MAX / 2,
            ..Default::default()
        }];
        let verdict = |store: &str, client: Option<&str>, trusted: bool| TrustVerdict {
            store: store.into(),
            trusted,
            dates_aside: false,
            anchor: trusted.then(|| "CN=Private Root CA".into()),
            error: (!trusted).then(|| "UnknownIssuer".into()),
            has_leaf_issuer: trusted,
            has_top_issuer: trusted,
            anchors: 100,
            anchor_names: vec![],
            client: client.map(Into::into),
            primary: true,
            sources: vec![format!("{store}'s sources")],
        };
        o.trust = vec![
            verdict("system", None, false),
            verdict("node", Some("node"), false),
            verdict("curl", Some("curl"), true),
        ];
        let d = diagnose(&o);
        assert_eq!(d.cause, "trust-store-differs");
        let f = &d.findings[0];
        assert!(
            f.summary.contains("node's sources") && f.summary.contains("the curl store"),
            "{}",
            f.summary
        );
        let fixes: Vec<&str> = f.fixes.iter().map(|x| x.ecosystem.as_str()).collect();
        assert_eq!(fixes, ["all", "node"], "{:?}", f.fixes);
        assert!(f.fixes[1].snippet.contains("NODE_EXTRA_CA_CERTS="));

        // Without another store that trusts it: the usual cause, naming Node's store.
        o.trust.pop();
        let d = diagnose(&o);
        assert_eq!(d.cause, "untrusted-root");
        assert!(d.findings[0].summary.contains("node's sources"));
        assert_eq!(d.findings[0].fixes[1].ecosystem, "node");

        // Curl's store decides with --as curl; Node's refusal is then a warning.
        o.trust.push(verdict("curl", Some("curl"), true));
        o.target.as_client = Some("curl".into());
        let d = diagnose(&o);
        assert_eq!(d.cause, "ok");
        assert_eq!(d.findings[0].cause, "trust-store-differs");
        assert_eq!(d.findings[0].severity, Severity::Warning);
    }

    #[test]
    fn nothing_observed_is_not_ok_by_accident() {
        let mut o = base();
        o.tcp = Some(TcpObservation {
            address: "192.0.2.1:443".into(),
            outcome: TcpOutcome::Refused,
            error: None,
            ms: 1,
        });
        assert_eq!(diagnose(&o).cause, "tcp-refused");
    }
}
