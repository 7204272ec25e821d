//! Command-line definitions. Each flag is defined once; help is written for a person in a
//! hurry.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use portcullis_pki::{KeyType, Reason, Threshold};

#[derive(Debug, Parser)]
#[command(
    name = "portcullis",
    version,
    about = "Mutual TLS made easy: a CA, an mTLS gate, and a TLS doctor"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once at start-up; the size difference between subcommands costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the mTLS gate. Without -c: a development CA, certificates and a demo page on
    /// https://localhost:8443 (files under .portcullis/dev/).
    Serve(ServeArgs),
    /// Validate a gate configuration and explain what it does.
    Check {
        /// The configuration file.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// Print what the configuration does as JSON (with `ok` and `error` when it does
        /// not load; the exit status is 2 then too).
        #[arg(long)]
        json: bool,
    },
    /// Run a certificate authority in a directory: issue, sign, revoke, inspect.
    Pki(PkiArgs),
    /// Tell why a TLS connection fails, show the evidence, and give the secure fix.
    Doctor(crate::doctor::DoctorArgs),
    /// Try the gate's policy on a request, or a table of them, before it goes live.
    Policy(crate::policy::PolicyArgs),
    /// Get a certificate from a gate's `[enroll]` with a one-time token: the key is made
    /// here and never leaves this machine.
    Enroll(crate::enroll::EnrollArgs),
    /// Renew a certificate from a gate's `[enroll]`, presenting the current one (valid, not
    /// revoked): same subject, new key.
    Renew(crate::enroll::RenewArgs),
    /// Print a shell completion script, e.g. `source <(portcullis completions bash)`.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write man pages: portcullis.1 and one per subcommand (portcullis-pki-issue.1, …).
    Man {
        /// Directory for the pages (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The configuration file (see docs/gate.md). Without it: the development setup.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Listen on this address instead of the configured one (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Args)]
pub struct PkiArgs {
    /// The CA directory.
    #[arg(long, global = true, default_value = portcullis_pki::ca::DEFAULT_DIR, value_name = "DIR")]
    pub dir: PathBuf,

    /// How long a command that changes the CA waits for another one to finish.
    #[arg(long, global = true, default_value_t = 10, value_name = "SECS")]
    pub lock_wait: u64,

    /// Print what the command did (or found) as JSON: one stable shape per command,
    /// described in docs/pki.md.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: PkiCommand,
}

/// Unlocking the CA key (never from an argument).
#[derive(Debug, Args, Clone)]
pub struct CaSecret {
    /// Read the CA key passphrase from the first line of FILE
    /// (or set PORTCULLIS_CA_PASSPHRASE, or answer the prompt).
    #[arg(long, value_name = "FILE")]
    pub ca_passphrase_file: Option<PathBuf>,
}

/// Protecting a new private key (or opening the one given with --key).
#[derive(Debug, Args, Clone)]
pub struct KeySecret {
    /// Encrypt the new private key with the passphrase on the first line of FILE
    /// (or set PORTCULLIS_KEY_PASSPHRASE). Without it the key is written unencrypted (0600).
    /// With --key: the passphrase of that key, if it is encrypted.
    #[arg(long, value_name = "FILE")]
    pub key_passphrase_file: Option<PathBuf>,

    /// Encrypt the new private key, asking for the passphrase on the terminal.
    #[arg(long)]
    pub encrypt_key: bool,
}

/// Protecting a new leaf key and its PKCS#12 bundle.
#[derive(Debug, Args, Clone)]
pub struct LeafSecrets {
    #[command(flatten)]
    pub key: KeySecret,

    /// Password for the PKCS#12 bundle, from the first line of FILE
    /// (or set PORTCULLIS_P12_PASSWORD, or answer the prompt).
    #[arg(long, value_name = "FILE")]
    pub p12_password_file: Option<PathBuf>,

    /// Do not write a PKCS#12 bundle.
    #[arg(long, conflicts_with_all = ["p12_password_file", "legacy_p12"])]
    pub no_p12: bool,

    /// Write the PKCS#12 bundle with 3DES + SHA-1 MAC, for macOS/iOS keychains and old
    /// Windows (the default AES-256 + SHA-256 is what OpenSSL 3, browsers and Node use).
    #[arg(long)]
    pub legacy_p12: bool,
}

#[derive(Debug, Args, Clone)]
pub struct Output {
    /// Directory for the new files [default: DIR/issued].
    #[arg(long, value_name = "OUT_DIR")]
    pub out: Option<PathBuf>,

    /// Replace existing files.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Create a certificate authority (root CA, and an issuing intermediate with --intermediate).
    Init {
        /// Name used in the CA certificates: "NAME Root CA", "NAME Issuing CA".
        #[arg(long, default_value = "Portcullis")]
        name: String,
        /// Organization (O) of the CA certificates.
        #[arg(long = "o", value_name = "ORG")]
        organization: Option<String>,
        /// Key type of the CA keys.
        #[arg(long, default_value_t = KeyType::P256, value_parser = parse_key_type())]
        key_type: KeyType,
        /// Also create an issuing intermediate (pathlen 0) and sign leaves with it.
        #[arg(long)]
        intermediate: bool,
        /// Root CA validity in days.
        #[arg(long, default_value_t = portcullis_pki::ca::ROOT_DAYS)]
        days: u32,
        /// Write the CA keys unencrypted. Only for throw-away CAs.
        #[arg(long, conflicts_with = "ca_passphrase_file")]
        no_passphrase: bool,
        #[command(flatten)]
        secret: CaSecret,
        /// Replace an existing CA in DIR (certificates it issued stop being trusted by anyone
        /// who trusts the new one).
        #[arg(long)]
        force: bool,
    },

    /// Issue a certificate with a new key (or for your own, with --key).
    #[command(subcommand)]
    Issue(IssueCommand),

    /// Make a key and a certificate signing request for another CA (or for this one, to
    /// keep the key off the CA's machine): NAME.key and NAME.csr. No CA directory needed.
    Csr {
        /// Common name (CN), and the file name stem.
        name: String,
        /// DNS subjectAltName (repeatable).
        #[arg(long)]
        dns: Vec<String>,
        /// IP subjectAltName (repeatable).
        #[arg(long)]
        ip: Vec<IpAddr>,
        /// URI subjectAltName, e.g. spiffe://corp/ops/alice (repeatable).
        #[arg(long)]
        uri: Vec<String>,
        #[command(flatten)]
        subject: SubjectFields,
        /// Key type of the new key.
        #[arg(long, default_value_t = KeyType::P256, value_parser = parse_key_type(), conflicts_with = "key")]
        key_type: KeyType,
        /// Make the request for this existing private key (PEM) instead of a new one.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        #[command(flatten)]
        secret: KeySecret,
        /// Directory for NAME.key and NAME.csr.
        #[arg(long, value_name = "OUT_DIR", default_value = ".")]
        out: PathBuf,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },

    /// Sign a certificate signing request (from openssl req, keytool, Go…).
    Sign {
        /// The CSR file (PEM or DER).
        csr: PathBuf,
        #[arg(long, value_enum)]
        profile: Profile,
        /// Add a DNS subjectAltName (repeatable).
        #[arg(long)]
        dns: Vec<String>,
        /// Add an IP subjectAltName (repeatable).
        #[arg(long)]
        ip: Vec<IpAddr>,
        /// Validity in days [default: `days` in DIR/ca.toml, else 397].
        #[arg(long)]
        days: Option<u32>,
        /// File name stem for the output [default: the CSR's CN].
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        out: Output,
        #[command(flatten)]
        secret: CaSecret,
    },

    /// Revoke a certificate (by serial or certificate file) and publish a new CRL.
    Revoke {
        /// Serial number (hex, as `openssl x509 -serial` prints it) or a certificate file.
        target: String,
        /// Why, as the CRL will say.
        #[arg(long, default_value = "unspecified", value_parser = parse_reason())]
        reason: Reason,
        /// Validity of the new CRL in days (its nextUpdate).
        #[arg(long, default_value_t = portcullis_pki::ca::CRL_DAYS)]
        crl_days: u32,
        #[command(flatten)]
        secret: CaSecret,
    },

    /// Publish the CRL (DIR/crl.pem and DIR/crl.der) with a new CRL number.
    Crl {
        /// Days until nextUpdate.
        #[arg(long, default_value_t = portcullis_pki::ca::CRL_DAYS)]
        days: u32,
        #[command(flatten)]
        secret: CaSecret,
    },

    /// Issue a replacement with the same subject and names, a new key and a new serial.
    /// The old files move to DIR/archive/SERIAL/. With --all-expiring: every due one.
    Renew {
        /// The certificate to renew.
        #[arg(required_unless_present = "all_expiring")]
        cert: Option<PathBuf>,
        /// Renew every certificate in force that is due (see --within), one after the
        /// other, skipping with a reason those that need a person (signed from a CSR, an
        /// encrypted key without --key-passphrase-file, a PKCS#12 bundle without
        /// --p12-password-file or --no-p12, expired). Exits 1 if any renewal failed.
        #[arg(long, conflicts_with_all = ["cert", "new_key", "encrypt_key"])]
        all_expiring: bool,
        /// With --all-expiring: due when it expires within this time (30d, 12h) or this
        /// share of its lifetime (33%) [default: the last third of its lifetime].
        #[arg(long, requires = "all_expiring", value_name = "DURATION|PERCENT")]
        within: Option<Threshold>,
        /// Validity in days [default: the old certificate's].
        #[arg(long)]
        days: Option<u32>,
        /// Key type of the new key [default: the old key's].
        #[arg(long, value_parser = parse_key_type())]
        key_type: Option<KeyType>,
        /// Renew a certificate whose key the CA never had (signed from a CSR) with a key
        /// made here; otherwise such a renewal is refused.
        #[arg(long)]
        new_key: bool,
        #[command(flatten)]
        leaf: LeafSecrets,
        #[command(flatten)]
        secret: CaSecret,
    },

    /// List every certificate the CA issued, with its status.
    List {
        /// Only certificates in force (not revoked or renewed) that expire within this
        /// time (30d, 12h) or share of their lifetime (33%), expired ones included; exits
        /// 1 when there is any, 0 when none (for cron and monitoring).
        #[arg(long, value_name = "DURATION|PERCENT")]
        expiring: Option<Threshold>,
    },

    /// Exit 0 if the certificate in FILE is due for renewal, 1 if not, 2 on error (as
    /// `step certificate needs-renewal`). Needs no CA directory.
    NeedsRenewal {
        /// A certificate or chain file (the first certificate is checked).
        file: PathBuf,
        /// Due when it expires within this time (30d, 12h) or this share of its lifetime
        /// (33%) [default: the last third of its lifetime, as step].
        #[arg(long, visible_alias = "expires-in", value_name = "DURATION|PERCENT")]
        within: Option<Threshold>,
    },

    /// Put the CA's root certificate into trust stores (system, NSS for Chromium and
    /// Firefox, Java), or take it out again.
    #[command(subcommand)]
    Trust(TrustCommand),

    /// One-time enrolment tokens: the person or machine makes the key and gets the
    /// certificate from a gate with `[enroll]` (see `portcullis enroll`).
    #[command(subcommand)]
    Enroll(crate::enroll::PkiEnrollCommand),

    /// Show what is in a file: certificates, chains, CSRs, CRLs, keys, PKCS#12.
    Inspect {
        /// A PEM, DER or PKCS#12 file.
        file: PathBuf,
        /// Password to open a PKCS#12 bundle, from the first line of FILE
        /// (or PORTCULLIS_P12_PASSWORD).
        #[arg(long, value_name = "FILE")]
        p12_password_file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Trust DIR/root.crt: add it to the stores (idempotent: says "already trusted").
    Install(TrustArgs),
    /// Stop trusting DIR/root.crt: remove exactly this root (found by its fingerprint) from
    /// the stores; one that does not hold it is left alone.
    Uninstall(TrustArgs),
}

#[derive(Debug, Args)]
pub struct TrustArgs {
    /// Which store to change (repeatable). Default: the stores named by --nss-db,
    /// --java-keystore or --root; with none of those, every store found on this machine.
    #[arg(long = "store", value_enum, value_name = "STORE")]
    pub stores: Vec<TrustStore>,

    /// An NSS database directory (holding cert9.db), repeatable. Default: ~/.pki/nssdb
    /// (Chromium) and every Firefox profile that has one.
    #[arg(long, value_name = "DIR")]
    pub nss_db: Vec<PathBuf>,

    /// The Java keystore. Default: $JAVA_HOME/lib/security/cacerts, or that of the java
    /// on PATH. Created (PKCS#12) if it does not exist.
    #[arg(long, value_name = "FILE")]
    pub java_keystore: Option<PathBuf>,

    /// The Java keystore password, from the first line of FILE
    /// (or set PORTCULLIS_JAVA_STOREPASS; default: changeit, the JDK's).
    #[arg(long, value_name = "FILE")]
    pub java_storepass_file: Option<PathBuf>,

    /// The file system root of the system store (ROOT/usr/local/share/ca-certificates,
    /// ROOT/etc/ssl/certs) [default: /]. A root other than / runs no update.d hooks.
    #[arg(long, value_name = "ROOT")]
    pub root: Option<PathBuf>,

    /// Print what would change, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TrustStore {
    /// Debian/Ubuntu: /usr/local/share/ca-certificates + update-ca-certificates.
    System,
    /// NSS databases: Chromium, Firefox (needs certutil, package libnss3-tools).
    Nss,
    /// A Java keystore (needs keytool, from the JDK).
    Java,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Profile {
    Server,
    Client,
}

#[derive(Debug, Subcommand)]
pub enum IssueCommand {
    /// A TLS server certificate (serverAuth). Host names go in subjectAltName.
    Server {
        /// Certificate name (CN and file name). Used as the DNS or IP name when neither
        /// --dns nor --ip is given.
        name: String,
        /// DNS name (repeatable; `*.example.com` for a wildcard).
        #[arg(long)]
        dns: Vec<String>,
        /// IP address (repeatable), written as an IP SAN.
        #[arg(long)]
        ip: Vec<IpAddr>,
        #[command(flatten)]
        common: IssueCommon,
        #[command(flatten)]
        leaf: LeafSecrets,
    },
    /// A TLS client certificate (clientAuth) with a PKCS#12 bundle for browsers.
    Client {
        /// Common name (CN), e.g. the user's login.
        name: String,
        #[command(flatten)]
        subject: SubjectFields,
        /// URI SAN, e.g. spiffe://corp/ops/alice (repeatable).
        #[arg(long)]
        uri: Vec<String>,
        /// DNS SAN, for service clients (repeatable).
        #[arg(long)]
        dns: Vec<String>,
        #[command(flatten)]
        common: IssueCommon,
        #[command(flatten)]
        leaf: LeafSecrets,
    },
}

/// The subject's fields beyond its CN.
#[derive(Debug, Args, Clone)]
pub struct SubjectFields {
    /// Email address (emailAddress, and an rfc822Name SAN in client certificates).
    #[arg(long)]
    pub email: Option<String>,
    /// Organization (O).
    #[arg(long = "o", value_name = "ORG")]
    pub organization: Option<String>,
    /// Organizational unit (OU), repeatable.
    #[arg(long = "ou", value_name = "UNIT")]
    pub organizational_units: Vec<String>,
    /// Locality (L).
    #[arg(long = "l", value_name = "LOCALITY")]
    pub locality: Option<String>,
    /// State or province (ST).
    #[arg(long = "st", value_name = "STATE")]
    pub state: Option<String>,
    /// Two-letter country code (C).
    #[arg(long = "c", value_name = "COUNTRY")]
    pub country: Option<String>,
}

#[derive(Debug, Args, Clone)]
pub struct IssueCommon {
    /// Validity in days [default: `days` in DIR/ca.toml, else 397].
    #[arg(long)]
    pub days: Option<u32>,
    /// Key type of the new key [default: `key_type` in DIR/ca.toml, else p256].
    #[arg(long, value_parser = parse_key_type(), conflicts_with = "key")]
    pub key_type: Option<KeyType>,
    /// Certify this existing key instead of making one: a private key (PEM; it goes into
    /// the PKCS#12 bundle) or a public key (`openssl pkey -pubout`; then --no-p12). The
    /// key file is read, never copied or rewritten.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    #[command(flatten)]
    pub out: Output,
    #[command(flatten)]
    pub secret: CaSecret,
}

/// The key types by name, listed in `--help` and in the error for any other value.
pub(crate) fn parse_key_type() -> impl clap::builder::TypedValueParser<Value = KeyType> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(KeyType::ALL.map(KeyType::name))
        .try_map(|s| s.parse::<KeyType>())
}

/// The revocation reasons by name, listed in `--help` and in errors.
fn parse_reason() -> impl clap::builder::TypedValueParser<Value = Reason> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(Reason::ALL.map(Reason::name))
        .try_map(|s| s.parse::<Reason>())
}
