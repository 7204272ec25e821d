//! The zero-config first run: a development PKI, certificates for two users and a sample
//! configuration under `.portcullis/dev/`, reused on later runs.
//!
//! Everything here is for trying the gate on your own machine: the CA key is not
//! encrypted and the PKCS#12 password is printed. For anything else, create a CA with
//! `portcullis pki init` and write a config (the one generated here is a starting point).

use std::path::{Path, PathBuf};

use portcullis_pki::ca::{self, Ca, InitOptions};
use portcullis_pki::{Kind, LeafRequest, P12Format, Passphrase, San, SaveOptions, Subject};

use crate::config::Config;
use crate::error::Result;

/// Where the development files live, relative to the working directory.
pub const DEV_DIR: &str = ".portcullis/dev";
/// The PKCS#12 password of the development bundles.
pub const DEV_P12_PASSWORD: &str = "portcullis-dev";

/// A user certificate made for the demo.
#[derive(Debug, Clone)]
pub struct DevUser {
    pub name: &'static str,
    pub role: &'static str,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub p12: PathBuf,
}

/// What the first run set up (or found).
#[derive(Debug)]
pub struct DevSetup {
    pub dir: PathBuf,
    /// The CA certificate clients must trust.
    pub ca_cert: PathBuf,
    pub config_path: PathBuf,
    pub config: Config,
    pub users: Vec<DevUser>,
    /// Files created by this run (empty when everything existed).
    pub created: Vec<PathBuf>,
}

const USERS: [(&str, &str, &str); 2] = [("alice", "Admins", "admin"), ("bob", "Users", "user")];

const SAMPLE_CONFIG: &str = r#"# Development configuration written by `portcullis serve` on its first run.
# Copy it, point it at your own CA and certificates, and run `portcullis serve -c FILE`.
# Paths are relative to this file.

listen = "127.0.0.1:8443"
cert = "issued/localhost.chain.pem"   # server certificate + intermediates
key = "issued/localhost.key"
client_auth = "optional"              # require | optional | off
client_ca = ["root.crt"]              # who may issue client certificates
crl = ["crl.pem"]                     # revoked client certificates
upstream = "builtin:whoami"           # or "http://127.0.0.1:3000"

# Roles come from typed certificate fields (cn, ou, o, email, uri_prefix, dns, fingerprint).
[[roles]]
role = "admin"
ou = "Admins"

[[roles]]
role = "user"
ou = "Users"

# Rules are tried in order; the first match decides; no match means 403.
[[rules]]
path = "/"
require = "anonymous"

[[rules]]
path = "/me"
require = "authenticated"

[[rules]]
path = "/admin/**"
require = "role:admin"
"#;

/// Creates (or reuses) the development setup under `base/.portcullis/dev`.
pub fn ensure(base: &Path) -> Result<DevSetup> {
    let dir = base.join(DEV_DIR);
    let mut created = Vec::new();
    let layout = ca::Layout::new(&dir);
    if !layout.exists() {
        created.extend(ca::init(
            &dir,
            &InitOptions {
                name: "Portcullis Dev".into(),
                ..Default::default()
            },
        )?);
    }
    let authority = Ca::open(&dir, None)?;
    let mut writer = authority.writer()?;
    let issued = layout.issued();

    if !issued.join("localhost.crt").exists() {
        let req = LeafRequest {
            kind: Kind::Server,
            subject: Subject {
                common_name: "localhost".into(),
                ..Default::default()
            },
            sans: vec![
                San::Dns("localhost".into()),
                San::Ip([127, 0, 0, 1].into()),
                San::Ip(std::net::Ipv6Addr::LOCALHOST.into()),
            ],
            days: ca::LEAF_DAYS,
            key_type: Default::default(),
        };
        let cert = authority.issue(&req, writer.index())?;
        created.extend(writer.save(cert, &save_opts(&issued, "localhost", None))?);
    }
    let password = Passphrase::new(DEV_P12_PASSWORD.into(), "the development default")?;
    let mut users = Vec::new();
    for (name, ou, role) in USERS {
        if !issued.join(format!("{name}.crt")).exists() {
            let req = LeafRequest {
                kind: Kind::Client,
                subject: Subject {
                    common_name: name.into(),
                    organization: Some("Portcullis Dev".into()),
                    organizational_units: vec![ou.into()],
                    email: Some(format!("{name}@example.com")),
                    ..Default::default()
                },
                sans: vec![San::Email(format!("{name}@example.com"))],
                days: ca::LEAF_DAYS,
                key_type: Default::default(),
            };
            let cert = authority.issue(&req, writer.index())?;
            created.extend(writer.save(cert, &save_opts(&issued, name, Some(password.clone())))?);
        }
        users.push(DevUser {
            name,
            role,
            // The chain file: what to present with any CA, intermediates or not.
            cert: issued.join(format!("{name}.chain.pem")),
            key: issued.join(format!("{name}.key")),
            p12: issued.join(format!("{name}.p12")),
        });
    }
    if !layout.crl_pem().exists() {
        created.extend(writer.publish_crl(ca::CRL_DAYS)?.0);
    }
    let config_path = dir.join("portcullis.toml");
    if !config_path.exists() {
        portcullis_pki::fsio::write_atomic(
            &config_path,
            SAMPLE_CONFIG.as_bytes(),
            portcullis_pki::fsio::PUBLIC,
            false,
        )?;
        created.push(config_path.clone());
    }
    let config = Config::from_file(&config_path)?;
    Ok(DevSetup {
        ca_cert: layout.root_cert(),
        dir,
        config_path,
        config,
        users,
        created,
    })
}

fn save_opts(dir: &Path, stem: &str, p12: Option<Passphrase>) -> SaveOptions {
    SaveOptions {
        out_dir: dir.to_owned(),
        stem: stem.into(),
        key_passphrase: None,
        p12: p12.map(|p| (p, P12Format::Modern)),
        force: false,
    }
}
