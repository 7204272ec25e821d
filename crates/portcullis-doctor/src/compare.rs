//! `--compare`: the same connection under several client profiles, and the smallest
//! difference that turns a failure into a success ("but it works from curl!").

use serde::{Deserialize, Serialize};

use crate::diagnose::outcome_text;
use crate::observe::{Handshake, HandshakeOutcome, Observations};
use crate::probe::{Profile, Request};

/// One row of the matrix.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub profile: String,
    /// What differs from the profile the user asked for.
    pub difference: String,
    pub ok: bool,
    pub outcome: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    pub rows: Vec<Row>,
    /// The smallest change that turns the requested profile's failure into a success (or,
    /// when the requested profile works, the change that would break it).
    pub difference: Option<String>,
}

/// The profiles to try, each one setting away from what the user asked for.
pub fn profiles(req: &Request, obs: &Observations) -> Vec<Profile> {
    let base = req.profile();
    let mut out = Vec::new();
    match (&base.sni, &obs.sni_found) {
        (Some(_), _) => out.push(Profile {
            label: "without SNI".into(),
            sni: None,
            ..base.clone()
        }),
        (None, Some(name)) => out.push(Profile {
            label: format!("with SNI {name}"),
            sni: Some(name.clone()),
            ..base.clone()
        }),
        (None, None) => {}
    }
    for v in ["1.2", "1.3"] {
        if base.tls.as_deref() != Some(v) {
            out.push(Profile {
                label: format!("TLS {v} only"),
                tls: Some(v.into()),
                ..base.clone()
            });
        }
    }
    if base.alpn.is_empty() {
        out.push(Profile {
            label: "ALPN h2,http/1.1".into(),
            alpn: vec!["h2".into(), "http/1.1".into()],
            ..base.clone()
        });
    } else {
        out.push(Profile {
            label: "without ALPN".into(),
            alpn: vec![],
            ..base.clone()
        });
    }
    if base.client_cert {
        out.push(Profile {
            label: "without client certificate".into(),
            client_cert: false,
            ..base.clone()
        });
    }
    out
}

fn difference_of(label: &str) -> String {
    if label.contains("SNI") {
        "SNI".into()
    } else if label.starts_with("TLS") {
        "TLS version".into()
    } else if label.contains("ALPN") {
        "ALPN".into()
    } else if label.contains("client certificate") {
        "client certificate".into()
    } else {
        label.into()
    }
}

/// Builds the matrix from the requested handshake, the variants, and the trust verdicts.
///
/// A row is named as the difference only when it turns the failure into a success:
/// a variant that completes its handshake does not fix a failure that came after the
/// requested handshake completed (a certificate check, a refusal in HTTP), and another
/// trust store fixes only a failure of trust (`trust_problem`: the chain leads to no
/// anchor of the store the client uses).
pub fn compare(
    obs: &Observations,
    variants: &[Handshake],
    requested_ok: bool,
    trust_problem: bool,
) -> Comparison {
    let primary_completed = obs
        .handshakes
        .first()
        .is_some_and(|h| h.outcome == HandshakeOutcome::Established);
    let mut rows = Vec::new();
    if let Some(h) = obs.handshakes.first() {
        rows.push(Row {
            profile: "as requested".into(),
            difference: "-".into(),
            ok: requested_ok,
            outcome: outcome_text(&h.outcome),
        });
    }
    for h in variants {
        rows.push(Row {
            profile: h.label.clone(),
            difference: difference_of(&h.label),
            ok: h.outcome == HandshakeOutcome::Established && (requested_ok || !primary_completed),
            outcome: outcome_text(&h.outcome),
        });
    }
    // One row per store: the doctor's (system, Mozilla, --ca), then each client's as it
    // reads it on this machine (`--as`, and every client with `--compare`).
    for v in &obs.trust {
        let verdict = if v.trusted {
            format!(
                "chain trusted (anchor {})",
                v.anchor.as_deref().unwrap_or("?")
            )
        } else {
            format!("chain not trusted ({})", v.error.as_deref().unwrap_or("?"))
        };
        rows.push(Row {
            profile: match &v.client {
                Some(_) => format!("as {}", v.store),
                None => format!("{} trust store", v.store),
            },
            difference: "trust store".into(),
            ok: v.trusted,
            outcome: if v.sources.is_empty() {
                verdict
            } else {
                format!("{verdict}; store: {}", v.sources.join("; "))
            },
        });
    }
    let difference = if requested_ok {
        variants
            .iter()
            .find(|h| h.outcome != HandshakeOutcome::Established && h.label.contains("SNI"))
            .map(|h| {
                format!(
                    "SNI: this server needs it; a client {} fails ({})",
                    h.label,
                    outcome_text(&h.outcome)
                )
            })
            .or_else(|| {
                // "It works from curl but not from Node": a client whose store refuses.
                rows.iter()
                    .find(|r| !r.ok && r.profile.starts_with("as "))
                    .map(|r| format!("trust store: {} fails ({})", r.profile, r.outcome))
            })
    } else {
        rows.iter()
            .skip(1)
            .find(|r| r.ok && (r.difference != "trust store" || trust_problem))
            .map(|r| format!("{}: works {}", r.difference, r.profile))
    };
    Comparison { rows, difference }
}
