//! `doctor audit`: does this server really verify client certificates?
//!
//! With a client certificate the server accepts, the audit requests the URL with it, then
//! without any certificate, then with forged twins of it (see the `forge` module): a
//! self-signed copy, a copy signed by a throwaway CA named like the real issuer, an
//! expired copy and a copy without the clientAuth extendedKeyUsage. A twin answered like
//! the real certificate is a forgery the server accepts. Every request goes over a
//! connection whose server certificate rustls verified (`--ca`, else the system store),
//! exactly like the doctor's HTTP check; nothing is sent otherwise.
//!
//! ```text
//! the ordinary doctor probe, with the real certificate ─► not healthy: its report, and
//!   a pointer to `portcullis doctor`
//! ─► real ─► none ─► (answered like real: audit-url-open, stop)
//! ─► self-signed, same-name-issuer, expired, no-client-auth-eku
//! ─► Observations.audit ─► diagnose (pure): accepts-forged-certificate + accepts-TWIN
//! ```

use std::sync::Arc;
use std::time::Instant;

use rustls::crypto::CryptoProvider;

use crate::diagnose::{self, Severity};
use crate::error::Error;
use crate::observe::{AuditObservation, AuditTry};
use crate::probe::{self, ClientIdentity, Request, Route};
use crate::trust::Stores;
use crate::{Report, forge, http};

/// Audits `req.target` with `req.client`, the certificate the server should accept.
pub fn run(req: &Request) -> Result<Report, Error> {
    let start = Instant::now();
    let real = req.client.as_ref().ok_or(Error::AuditNeedsCertificate)?;
    let stores = Stores::load(req.ca.as_deref());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let mut obs = rt.block_on(probe::run_async(req, &stores));
    let connects = diagnose::diagnose(&obs).healthy();
    if connects {
        let route = probe::http_route(&obs, req, &stores).ok_or(Error::AuditNoRoute)?;
        let now = time::OffsetDateTime::from_unix_timestamp(obs.now)
            .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
        let tries = rt.block_on(tries(req, real, &route, now))?;
        obs.audit = Some(AuditObservation { tries });
    }
    let mut report = Report::from_observations(obs, start.elapsed().as_millis() as u64);
    report.verdict = verdict(&report, req);
    Ok(report)
}

/// The requests, in order, stopping as soon as the answers settle the question.
async fn tries(
    req: &Request,
    real: &ClientIdentity,
    route: &Route<'_>,
    now: time::OffsetDateTime,
) -> Result<Vec<AuditTry>, Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let real_twin = forge::Twin {
        id: "real",
        presented: format!("the real certificate ({})", real.cert_file),
        identity: Some(real.clone()),
    };
    let first = one(req, route, real_twin, &provider).await;
    let accepted = !diagnose::audit_refused(&first.http);
    let mut out = vec![first];
    if !accepted {
        return Ok(out);
    }
    let none = one(req, route, forge::none(), &provider).await;
    let open = diagnose::audit_got_in(&out[0].http, &none.http);
    out.push(none);
    if open {
        return Ok(out);
    }
    let twins = forge::twins(real, now).map_err(|reason| Error::Forge {
        cert: real.cert_file.clone(),
        reason,
    })?;
    for twin in twins {
        out.push(one(req, route, twin, &provider).await);
    }
    Ok(out)
}

async fn one(
    req: &Request,
    route: &Route<'_>,
    twin: forge::Twin,
    provider: &Arc<CryptoProvider>,
) -> AuditTry {
    let profile = probe::Profile {
        label: twin.id.into(),
        client_cert: twin.identity.is_some(),
        ..route.profile.clone()
    };
    let req = Request {
        client: twin.identity,
        ..req.clone()
    };
    let check = http::Check {
        profile: &profile,
        ..route.check()
    };
    AuditTry {
        twin: twin.id.into(),
        presented: twin.presented,
        http: http::check(&check, &req, provider).await,
    }
}

/// The one line for people, in the audit's terms.
fn verdict(report: &Report, req: &Request) -> String {
    let Some(audit) = &report.observations.audit else {
        return format!(
            "cannot audit: the audit needs a client certificate the server accepts, and {}; \
             `{}` shows the evidence",
            report
                .verdict
                .replacen("the connection fails", "the connection fails first", 1),
            doctor_command(req)
        );
    };
    let inside: Vec<&str> = report
        .findings
        .iter()
        .filter_map(|f| f.cause.strip_prefix("accepts-"))
        .filter(|c| *c != "forged-certificate")
        .collect();
    match report.cause.as_str() {
        "accepts-forged-certificate" => format!(
            "the server accepts forged client certificates: {} of {} forged copies got the \
             real certificate's answer ({})",
            inside.len(),
            audit.tries.len().saturating_sub(2),
            inside.join(", ")
        ),
        "audit-url-open" => {
            "the URL answers without a client certificate as it answers with one: no \
             certificate protects it"
                .into()
        }
        "ok" => format!(
            "the server verifies client certificates: it refused all {} forged copies{}",
            audit.tries.len().saturating_sub(2),
            if report
                .findings
                .iter()
                .any(|f| f.severity == Severity::Warning)
            {
                " (see the warnings)"
            } else {
                ""
            }
        ),
        _ => format!(
            "cannot audit: {}; `{}` shows the evidence",
            report
                .findings
                .first()
                .map_or("the real certificate is not accepted", |f| f
                    .summary
                    .as_str()),
            doctor_command(req)
        ),
    }
}

/// The ordinary doctor's command line for the same URL and files.
fn doctor_command(req: &Request) -> String {
    let mut cmd = format!(
        "portcullis doctor https://{}{}",
        req.target, req.target.path
    );
    if let Some(name) = &req.servername {
        cmd.push_str(&format!(" --servername {name}"));
    }
    for ca in &req.ca_files {
        cmd.push_str(&format!(" --ca {ca}"));
    }
    if let Some(c) = &req.client {
        cmd.push_str(&format!(" --cert {} --key {}", c.cert_file, c.key_file));
    }
    cmd
}
