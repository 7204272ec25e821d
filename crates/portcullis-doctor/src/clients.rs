//! `--as CLIENT`: the trust store one particular client would use on this machine, and
//! where each part of it comes from (files, environment variables, the client's version).
//!
//! Gathering is I/O and lives here, beside [`crate::trust::Stores::load`]: it reads
//! files and asks `node`, `python3` and `openssl` about themselves in short, bounded
//! subprocesses. Judging the chain against what was gathered is [`crate::trust::judge`]'s
//! job, and pure. What each client reads:
//!
//! | client | store |
//! | --- | --- |
//! | `node` | Node's bundled Mozilla list (`tls.rootCertificates`, asked of `node`; webpki-roots, the same Mozilla list, when there is no `node` to ask), plus `NODE_EXTRA_CA_CERTS`; plus the OpenSSL default paths with `NODE_USE_SYSTEM_CA=1` (Node ≥ 22.19 in 22.x, ≥ 24.6) or `--use-system-ca` in `NODE_OPTIONS` (when that Node starts with it); `--use-openssl-ca` in `NODE_OPTIONS` replaces the bundled list with them |
//! | `python` | requests: `REQUESTS_CA_BUNDLE`, else `CURL_CA_BUNDLE`, else certifi's bundle (asked of `python3`); the `ssl` module: `ssl.get_default_verify_paths()` (`SSL_CERT_FILE` / `SSL_CERT_DIR`, else OpenSSL's cafile and capath) |
//! | `curl` | `CURL_CA_BUNDLE`, else `SSL_CERT_DIR` (as its CA path), else `SSL_CERT_FILE`; otherwise its build's bundle (`curl-config --ca`, else Debian's /etc/ssl/certs/ca-certificates.crt) and CA path /etc/ssl/certs |
//! | `openssl` | `SSL_CERT_FILE`, else OPENSSLDIR/cert.pem; `SSL_CERT_DIR`, else OPENSSLDIR/certs (`openssl version -d`) |
//! | `java` | `-Djavax.net.ssl.trustStore` in `JAVA_TOOL_OPTIONS` / `JDK_JAVA_OPTIONS`, else `java.home`/lib/security/jssecacerts, else …/cacerts (`JAVA_HOME`, else the `java` on PATH); JKS read directly, PKCS#12 with its password (`changeit` by default) |
//! | `go` | `SSL_CERT_FILE`, else the first bundle of crypto/x509's Linux list; `SSL_CERT_DIR` (colon-separated), else /etc/ssl/certs and /etc/pki/tls/certs |
//! | `rustls` | rustls-native-certs (the system store, `SSL_CERT_FILE` / `SSL_CERT_DIR` honoured), and webpki-roots (reqwest's default `rustls-tls`) as a second store |

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustls::pki_types::TrustAnchor;

use crate::certs;
use crate::trust::anchors_from_ders;

/// The clients `--as` knows, in the order `--compare` shows them.
pub const CLIENTS: &[&str] = &["node", "python", "curl", "openssl", "java", "go", "rustls"];

/// How long a client may take to tell us about itself (`python3 -c`, `node --version`).
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// Go's crypto/x509 bundle files on Linux (root_linux.go), the first readable one is used.
const GO_CERT_FILES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Go's crypto/x509 certificate directories on Linux (root_unix.go); all are read.
const GO_CERT_DIRS: &[&str] = &["/etc/ssl/certs", "/etc/pki/tls/certs"];

/// curl's default CA bundle and path when `curl-config --ca` cannot say (Debian's build).
const CURL_DEFAULT_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
const CURL_DEFAULT_PATH: &str = "/etc/ssl/certs";

/// The environment variables the clients read, captured once.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// This process's environment (what a client started from the same shell sees).
    pub fn from_process() -> Env {
        Env {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    /// An environment of exactly these variables.
    pub fn of(pairs: &[(&str, &str)]) -> Env {
        Env {
            vars: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    /// A variable's value when it is set and not empty (clients ignore empty ones).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// One client's trust store, as gathered on this machine.
#[derive(Debug, Clone)]
pub struct ClientStore {
    /// `node`, `python`…
    pub client: &'static str,
    /// The store's name in the verdicts: `node`, `python requests`, `python ssl`,
    /// `rustls native-certs`…
    pub store: String,
    /// The store the client uses unless told otherwise.
    pub primary: bool,
    /// Where the anchors came from, in the order the client reads them.
    pub sources: Vec<String>,
    pub anchors: Vec<TrustAnchor<'static>>,
}

/// Accumulates a store's anchors and the description of their sources.
#[derive(Default)]
struct Gather {
    sources: Vec<String>,
    ders: Vec<Vec<u8>>,
    /// Anchors that come as anchors (webpki-roots, rustls-native-certs).
    anchors: Vec<TrustAnchor<'static>>,
}

impl Gather {
    fn note(&mut self, text: impl Into<String>) {
        self.sources.push(text.into());
    }

    /// Reads the certificates of a file or a directory, and says what was found.
    fn read(&mut self, what: &str, path: &Path) {
        match read_certs(path) {
            Ok(ders) => {
                self.note(format!(
                    "{what} {} ({} certificate{})",
                    path.display(),
                    ders.len(),
                    if ders.len() == 1 { "" } else { "s" }
                ));
                self.ders.extend(ders);
            }
            Err(e) => self.note(format!("{what} {} (unreadable: {e})", path.display())),
        }
    }

    fn webpki_roots(&mut self, what: &str) {
        self.anchors
            .extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        self.note(format!(
            "{what} (judged with webpki-roots, Mozilla's list: {} roots)",
            webpki_roots::TLS_SERVER_ROOTS.len()
        ));
    }

    fn finish(mut self, client: &'static str, store: &str, primary: bool) -> ClientStore {
        self.ders.sort();
        self.ders.dedup();
        let mut anchors = self.anchors;
        anchors.extend(anchors_from_ders(&self.ders));
        ClientStore {
            client,
            store: store.to_owned(),
            primary,
            sources: self.sources,
            anchors,
        }
    }
}

/// The certificates in a PEM (or DER) file, or in every file of a directory (OpenSSL's
/// hashed directories hold one certificate per file, under several names).
pub fn read_certs(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    if meta.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for f in files {
            if let Ok(bytes) = std::fs::read(&f) {
                out.extend(certs::pem_certs(&bytes));
            }
        }
    } else {
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        out = certs::pem_certs(&bytes);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Runs `program args` with `env_remove` removed, and returns its stdout when it exits 0
/// within [`ASK_TIMEOUT`]; `Err` says why not (not installed, failed, too slow).
fn ask(program: &str, args: &[&str], env_remove: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for k in env_remove {
        cmd.env_remove(k);
    }
    let mut child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("{program} is not on PATH"),
        _ => format!("cannot run {program}: {e}"),
    })?;
    // Read both pipes while the program runs: Node's bundled list is 200 kB of PEM,
    // more than a pipe holds.
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_string(&mut text);
            }
            text
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if start.elapsed() < ASK_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{program} did not answer within {} s",
                    ASK_TIMEOUT.as_secs()
                ));
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    if status.success() {
        Ok(out.trim().to_owned())
    } else {
        Err(format!(
            "{program} failed ({status}): {}",
            err.lines().next().unwrap_or("").trim()
        ))
    }
}

/// Where OpenSSL keeps its defaults (`openssl version -d`), else Debian's /usr/lib/ssl.
fn openssl_dir() -> (PathBuf, String) {
    match ask("openssl", &["version", "-d"], &[]) {
        Ok(out) => {
            let dir = out
                .split_once(':')
                .map(|(_, d)| d.trim().trim_matches('"').to_owned())
                .unwrap_or_default();
            if dir.is_empty() {
                (PathBuf::from("/usr/lib/ssl"), "assumed".into())
            } else {
                (PathBuf::from(dir), "`openssl version -d`".into())
            }
        }
        Err(_) => (PathBuf::from("/usr/lib/ssl"), "assumed".into()),
    }
}

/// OpenSSL's default verify paths: `SSL_CERT_FILE`, else OPENSSLDIR/cert.pem, and
/// `SSL_CERT_DIR`, else OPENSSLDIR/certs. Both are read.
fn openssl_defaults(g: &mut Gather, env: &Env) {
    let (dir, how) = openssl_dir();
    match env.get("SSL_CERT_FILE") {
        Some(f) => g.read("SSL_CERT_FILE=", Path::new(f)),
        None => g.read(
            &format!("SSL_CERT_FILE not set; OpenSSL's default file (OPENSSLDIR from {how})"),
            &dir.join("cert.pem"),
        ),
    }
    match env.get("SSL_CERT_DIR") {
        Some(d) => {
            for part in d.split(':').filter(|p| !p.is_empty()) {
                g.read("SSL_CERT_DIR=", Path::new(part));
            }
        }
        None => g.read(
            "SSL_CERT_DIR not set; OpenSSL's default directory",
            &dir.join("certs"),
        ),
    }
}

/// Gathers the store(s) of one client. `system` is the system store the doctor already
/// loaded (rustls-native-certs).
pub fn gather(client: &str, env: &Env, system: &[TrustAnchor<'static>]) -> Vec<ClientStore> {
    match client {
        "node" => vec![node(env)],
        "python" => python(env),
        "curl" => vec![curl(env)],
        "openssl" => {
            let mut g = Gather::default();
            openssl_defaults(&mut g, env);
            vec![g.finish("openssl", "openssl", true)]
        }
        "java" => vec![java(env)],
        "go" => vec![go(env)],
        "rustls" => rustls(system),
        _ => Vec::new(),
    }
}

// === node ===

/// Asked of `node`: its version, then its bundled Mozilla list (`tls.rootCertificates`,
/// the list itself, whatever `--use-openssl-ca` or `ca` options do elsewhere).
const NODE_SCRIPT: &str =
    "process.stdout.write(process.version + '\\n' + require('tls').rootCertificates.join('\\n'))";

/// A Node version `vMAJOR.MINOR.PATCH` as numbers.
fn node_version(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.trim().trim_start_matches('v').split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Whether this Node honours `NODE_USE_SYSTEM_CA=1`: added in v24.6.0 and v22.19.0
/// (nodejs/node#59276); older versions ignore the variable without a word.
pub fn node_reads_use_system_ca_env(version: &str) -> bool {
    match node_version(version) {
        Some((22, minor)) => minor >= 19,
        Some((24, minor)) => minor >= 6,
        Some((major, _)) => major >= 25,
        None => false,
    }
}

fn node(env: &Env) -> ClientStore {
    let mut g = Gather::default();
    let options = env.get("NODE_OPTIONS").unwrap_or("");
    let has = |flag: &str| options.split_whitespace().any(|o| o == flag);
    // Node refuses to start with an option it does not know in NODE_OPTIONS; asking it
    // for its version with the user's NODE_OPTIONS shows that.
    let mut refused = false;
    let answer = match ask("node", &["-e", NODE_SCRIPT], &[]) {
        Err(e) if !options.is_empty() => {
            let again = ask("node", &["-e", NODE_SCRIPT], &["NODE_OPTIONS"]);
            if let Ok(out) = &again {
                refused = true;
                g.note(format!(
                    "Node {} refuses to start with NODE_OPTIONS={options:?}: {e}",
                    out.lines().next().unwrap_or("")
                ));
            }
            again
        }
        other => other,
    };
    let (version, bundled) = match answer {
        Ok(out) => {
            let (v, pem) = out.split_once('\n').unwrap_or((out.as_str(), ""));
            if !refused {
                g.note(format!("Node {v} (`node` on PATH)"));
            }
            (Some(v.to_owned()), certs::pem_certs(pem.as_bytes()))
        }
        Err(e) => {
            g.note(format!("{e}; judged as Node's defaults"));
            (None, Vec::new())
        }
    };
    if has("--use-openssl-ca") && !refused {
        g.note("NODE_OPTIONS has --use-openssl-ca: OpenSSL's default paths instead of the bundled list");
        openssl_defaults(&mut g, env);
    } else if bundled.is_empty() {
        g.webpki_roots("Node's bundled Mozilla CA list");
    } else {
        g.note(format!(
            "Node's bundled Mozilla CA list (tls.rootCertificates: {} roots)",
            bundled.len()
        ));
        g.ders.extend(bundled);
    }
    let system_env = env.get("NODE_USE_SYSTEM_CA") == Some("1");
    let system_flag = has("--use-system-ca") && !refused;
    let env_read = version.as_deref().is_some_and(node_reads_use_system_ca_env);
    if system_flag || (system_env && env_read) {
        g.note(format!(
            "{}: the system store too (OpenSSL's default paths on Linux)",
            if system_flag {
                "NODE_OPTIONS has --use-system-ca"
            } else {
                "NODE_USE_SYSTEM_CA=1"
            }
        ));
        openssl_defaults(&mut g, env);
    } else if system_env {
        g.note(format!(
            "NODE_USE_SYSTEM_CA=1 is set, but Node {} ignores it (it needs v22.19+ or v24.6+)",
            version.as_deref().unwrap_or("(version unknown)")
        ));
    } else {
        g.note("NODE_USE_SYSTEM_CA not set (with it, Node v22.19+/v24.6+ adds the system store)");
    }
    match env.get("NODE_EXTRA_CA_CERTS") {
        Some(f) => {
            let before = g.sources.len();
            g.read("NODE_EXTRA_CA_CERTS=", Path::new(f));
            if g.sources[before..].iter().any(|s| s.contains("unreadable")) {
                g.note("Node warns about an unreadable NODE_EXTRA_CA_CERTS and ignores it");
            }
        }
        None => g.note("NODE_EXTRA_CA_CERTS not set"),
    }
    g.finish("node", "node", true)
}

// === python ===

/// Asked of `python3`: its version, `ssl.get_default_verify_paths()` and certifi's bundle.
const PYTHON_SCRIPT: &str = r#"import json, ssl, sys
p = ssl.get_default_verify_paths()
out = {"python": sys.version.split()[0], "executable": sys.executable,
       "cafile": p.cafile, "capath": p.capath,
       "openssl_cafile": p.openssl_cafile, "openssl_capath": p.openssl_capath}
try:
    import certifi
    out["certifi"] = certifi.where()
    out["certifi_version"] = getattr(certifi, "__version__", None)
except Exception:
    out["certifi"] = None
# Found, not imported: importing requests takes longer than all the rest.
try:
    import importlib.metadata, importlib.util
    out["requests"] = importlib.util.find_spec("requests") and importlib.metadata.version("requests")
except Exception:
    out["requests"] = None
print(json.dumps(out))
"#;

fn python(env: &Env) -> Vec<ClientStore> {
    let info = ask("python3", &["-c", PYTHON_SCRIPT], &[])
        .and_then(|out| serde_json::from_str::<serde_json::Value>(&out).map_err(|e| e.to_string()));
    let info = match info {
        Ok(v) => v,
        Err(e) => {
            // No Python to ask: the ssl module would read OpenSSL's defaults.
            let mut g = Gather::default();
            g.note(format!("{e}; judged with OpenSSL's default paths"));
            openssl_defaults(&mut g, env);
            return vec![g.finish("python", "python ssl", true)];
        }
    };
    let text = |k: &str| info[k].as_str().map(str::to_owned);
    let who = format!(
        "Python {} ({})",
        text("python").unwrap_or_default(),
        text("executable").unwrap_or_default()
    );
    let certifi = text("certifi");
    let mut out = Vec::new();

    // requests: REQUESTS_CA_BUNDLE, else CURL_CA_BUNDLE, else certifi (requests.utils).
    if let Some(bundle) = &certifi {
        let mut g = Gather::default();
        g.note(format!(
            "{who}, requests {}",
            text("requests").unwrap_or_else(|| "not installed".into())
        ));
        match (env.get("REQUESTS_CA_BUNDLE"), env.get("CURL_CA_BUNDLE")) {
            (Some(f), _) => g.read("REQUESTS_CA_BUNDLE=", Path::new(f)),
            (None, Some(f)) => {
                g.note("REQUESTS_CA_BUNDLE not set");
                g.read("CURL_CA_BUNDLE= (requests reads it too)", Path::new(f));
            }
            (None, None) => {
                g.note("REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE not set");
                g.read(
                    &format!(
                        "certifi {}'s bundle",
                        text("certifi_version").unwrap_or_default()
                    ),
                    Path::new(bundle),
                );
            }
        }
        out.push(g.finish("python", "python requests", true));
    }

    // The ssl module: ssl.create_default_context(), urllib, http.client.
    let mut g = Gather::default();
    g.note(format!("{who}, ssl.create_default_context()"));
    if certifi.is_none() {
        g.note("certifi is not installed for this Python (and so neither is requests)");
    }
    let cafile = text("cafile");
    let capath = text("capath");
    let from_env = |var: &str| env.get(var).is_some();
    match &cafile {
        Some(f) if from_env("SSL_CERT_FILE") => g.read("SSL_CERT_FILE=", Path::new(f)),
        Some(f) => g.read(
            "SSL_CERT_FILE not set; OpenSSL's default cafile",
            Path::new(f),
        ),
        None => g.note(format!(
            "no cafile ({} does not exist)",
            env.get("SSL_CERT_FILE")
                .map(|f| format!("SSL_CERT_FILE={f}"))
                .or_else(|| text("openssl_cafile"))
                .unwrap_or_default()
        )),
    }
    match &capath {
        Some(d) if from_env("SSL_CERT_DIR") => g.read("SSL_CERT_DIR=", Path::new(d)),
        Some(d) => g.read(
            "SSL_CERT_DIR not set; OpenSSL's default capath",
            Path::new(d),
        ),
        None => g.note(format!(
            "no capath ({} does not exist)",
            env.get("SSL_CERT_DIR")
                .map(|d| format!("SSL_CERT_DIR={d}"))
                .or_else(|| text("openssl_capath"))
                .unwrap_or_default()
        )),
    }
    out.push(g.finish("python", "python ssl", certifi.is_none()));
    out
}

// === curl ===

fn curl(env: &Env) -> ClientStore {
    let mut g = Gather::default();
    let (bundle, how) = match ask("curl-config", &["--ca"], &[]) {
        Ok(ca) if !ca.is_empty() => (PathBuf::from(ca), "`curl-config --ca`"),
        _ => (
            PathBuf::from(CURL_DEFAULT_BUNDLE),
            "Debian's build default; no curl-config",
        ),
    };
    // curl's tool (7.x/8.x): CURL_CA_BUNDLE as --cacert; else SSL_CERT_DIR as --capath;
    // else SSL_CERT_FILE as --cacert. The build's CA path stays unless replaced.
    if let Some(f) = env.get("CURL_CA_BUNDLE") {
        g.read("CURL_CA_BUNDLE=", Path::new(f));
        g.read("its build's CA path", Path::new(CURL_DEFAULT_PATH));
    } else if let Some(d) = env.get("SSL_CERT_DIR") {
        g.note("CURL_CA_BUNDLE not set");
        g.read(&format!("its CA bundle ({how})"), &bundle);
        g.read("SSL_CERT_DIR= (as --capath)", Path::new(d));
        if env.get("SSL_CERT_FILE").is_some() {
            g.note("SSL_CERT_FILE is ignored by curl while SSL_CERT_DIR is set");
        }
    } else if let Some(f) = env.get("SSL_CERT_FILE") {
        g.note("CURL_CA_BUNDLE not set");
        g.read("SSL_CERT_FILE= (as --cacert)", Path::new(f));
        g.read("its build's CA path", Path::new(CURL_DEFAULT_PATH));
    } else {
        g.note("CURL_CA_BUNDLE, SSL_CERT_FILE and SSL_CERT_DIR not set");
        g.read(&format!("its CA bundle ({how})"), &bundle);
        g.read("its build's CA path", Path::new(CURL_DEFAULT_PATH));
    }
    g.finish("curl", "curl", true)
}

// === go ===

fn go(env: &Env) -> ClientStore {
    let mut g = Gather::default();
    match env.get("SSL_CERT_FILE") {
        Some(f) => g.read("SSL_CERT_FILE=", Path::new(f)),
        None => match GO_CERT_FILES.iter().find(|f| Path::new(f).is_file()) {
            Some(f) => g.read(
                "SSL_CERT_FILE not set; crypto/x509's first bundle found",
                Path::new(f),
            ),
            None => g.note("SSL_CERT_FILE not set and none of crypto/x509's bundle files exists"),
        },
    }
    match env.get("SSL_CERT_DIR") {
        Some(d) => {
            for part in d.split(':').filter(|p| !p.is_empty()) {
                g.read("SSL_CERT_DIR=", Path::new(part));
            }
        }
        None => {
            for d in GO_CERT_DIRS.iter().filter(|d| Path::new(d).is_dir()) {
                g.read(
                    "SSL_CERT_DIR not set; crypto/x509's directory",
                    Path::new(d),
                );
            }
        }
    }
    g.finish("go", "go", true)
}

// === rustls ===

fn rustls(system: &[TrustAnchor<'static>]) -> Vec<ClientStore> {
    let native = ClientStore {
        client: "rustls",
        store: "rustls native-certs".into(),
        primary: true,
        sources: vec![format!(
            "rustls-native-certs, the system store ({} roots; it reads SSL_CERT_FILE / SSL_CERT_DIR, else the OpenSSL paths openssl-probe finds): what rustls-platform-verifier and reqwest's rustls-tls-native-roots use on Linux",
            system.len()
        )],
        anchors: system.to_vec(),
    };
    let mut g = Gather::default();
    g.webpki_roots("webpki-roots, compiled in (reqwest's default rustls-tls)");
    vec![native, g.finish("rustls", "rustls webpki-roots", false)]
}

// === java ===

/// `-Dname=value` in JAVA_TOOL_OPTIONS or JDK_JAVA_OPTIONS (the latter wins, as the
/// `java` launcher reads it after).
fn java_property(env: &Env, name: &str) -> Option<(String, &'static str)> {
    let mut found = None;
    for var in ["JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS"] {
        if let Some(opts) = env.get(var) {
            for o in opts.split_whitespace() {
                if let Some(v) = o.strip_prefix(&format!("-D{name}=")) {
                    found = Some((v.trim_matches('"').to_owned(), var));
                }
            }
        }
    }
    found
}

/// `java.home`: JAVA_HOME, else the JDK of the `java` on PATH.
fn java_home(env: &Env) -> Option<(PathBuf, String)> {
    if let Some(h) = env.get("JAVA_HOME") {
        return Some((PathBuf::from(h), format!("JAVA_HOME={h}")));
    }
    let path = env.get("PATH")?;
    let java = std::env::split_paths(path)
        .map(|d| d.join("java"))
        .find(|p| p.is_file())?;
    let real = std::fs::canonicalize(&java).ok()?;
    let home = real.parent()?.parent()?.to_owned();
    Some((home, format!("the `java` on PATH ({})", real.display())))
}

fn java(env: &Env) -> ClientStore {
    let mut g = Gather::default();
    // The password is never shown, only where it came from.
    let (password, password_from) = match java_property(env, "javax.net.ssl.trustStorePassword") {
        Some((p, var)) => (
            p,
            format!("the -Djavax.net.ssl.trustStorePassword in {var}"),
        ),
        None => ("changeit".into(), "changeit, the JDK's default".into()),
    };
    let store = match java_property(env, "javax.net.ssl.trustStore") {
        Some((path, var)) => Some((
            PathBuf::from(path),
            format!("-Djavax.net.ssl.trustStore in {var}:"),
        )),
        None => match java_home(env) {
            Some((home, how)) => {
                g.note("-Djavax.net.ssl.trustStore not set (JAVA_TOOL_OPTIONS, JDK_JAVA_OPTIONS)");
                let security = home.join("lib/security");
                let jsse = security.join("jssecacerts");
                if jsse.is_file() {
                    Some((
                        jsse,
                        format!("the JDK's jssecacerts (java.home from {how}):"),
                    ))
                } else {
                    Some((
                        security.join("cacerts"),
                        format!("the JDK's cacerts (java.home from {how}):"),
                    ))
                }
            }
            None => {
                g.note("no JDK found (JAVA_HOME not set, no `java` on PATH)");
                None
            }
        },
    };
    if let Some((path, what)) = store {
        match std::fs::read(&path) {
            Ok(bytes) => match java_keystore_certs(&bytes, &password) {
                Ok((ders, format)) => {
                    g.note(format!(
                        "{what} {} ({format}, {} certificate{})",
                        std::fs::canonicalize(&path).unwrap_or(path).display(),
                        ders.len(),
                        if ders.len() == 1 { "" } else { "s" }
                    ));
                    g.ders.extend(ders);
                }
                Err(e) => g.note(format!(
                    "{what} {} (unreadable with the password {password_from}: {e})",
                    path.display()
                )),
            },
            Err(e) => g.note(format!("{what} {} (unreadable: {e})", path.display())),
        }
    }
    g.finish("java", "java", true)
}

/// The trusted certificates of a Java keystore: JKS (read directly; its integrity digest
/// needs the password and is not checked, nothing here is trusted for it) or PKCS#12.
pub fn java_keystore_certs(
    bytes: &[u8],
    password: &str,
) -> Result<(Vec<Vec<u8>>, &'static str), String> {
    if bytes.starts_with(&[0xfe, 0xed, 0xfe, 0xed]) {
        return jks_certs(bytes)
            .map(|c| (c, "JKS"))
            .ok_or_else(|| "a malformed JKS keystore".into());
    }
    let store = p12_keystore::KeyStore::from_pkcs12(
        bytes,
        password,
        p12_keystore::Pkcs12ImportPolicy::Relaxed,
    )
    .map_err(|e| format!("PKCS#12: {e}"))?;
    let mut out = Vec::new();
    for (_, entry) in store.entries() {
        match entry {
            p12_keystore::KeyStoreEntry::Certificate(c) => out.push(c.as_der().to_vec()),
            p12_keystore::KeyStoreEntry::PrivateKeyChain(chain) => {
                out.extend(chain.certs().iter().map(|c| c.as_der().to_vec()));
            }
            p12_keystore::KeyStoreEntry::Secret(_) => {}
        }
    }
    Ok((out, "PKCS#12"))
}

/// JKS: magic, version 1|2, count, then entries (1: private key with its chain,
/// 2: trusted certificate), each with an alias and a date.
fn jks_certs(b: &[u8]) -> Option<Vec<Vec<u8>>> {
    struct R<'a>(&'a [u8]);
    impl<'a> R<'a> {
        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            if self.0.len() < n {
                return None;
            }
            let (a, rest) = self.0.split_at(n);
            self.0 = rest;
            Some(a)
        }
        fn u16(&mut self) -> Option<usize> {
            self.take(2)
                .map(|s| u16::from_be_bytes([s[0], s[1]]) as usize)
        }
        fn u32(&mut self) -> Option<usize> {
            self.take(4)
                .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize)
        }
        fn utf(&mut self) -> Option<&'a [u8]> {
            let n = self.u16()?;
            self.take(n)
        }
        fn cert(&mut self, version: usize) -> Option<Vec<u8>> {
            if version == 2 {
                self.utf()?; // "X.509"
            }
            let n = self.u32()?;
            self.take(n).map(<[u8]>::to_vec)
        }
    }
    let mut r = R(b);
    r.take(4)?;
    let version = r.u32()?;
    if version != 1 && version != 2 {
        return None;
    }
    let count = r.u32()?;
    let mut out = Vec::new();
    for _ in 0..count {
        let tag = r.u32()?;
        r.utf()?; // alias
        r.take(8)?; // date
        match tag {
            1 => {
                let n = r.u32()?;
                r.take(n)?; // the protected key
                let chain = r.u32()?;
                for _ in 0..chain {
                    out.push(r.cert(version)?);
                }
            }
            2 => out.push(r.cert(version)?),
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_versions_that_read_node_use_system_ca() {
        for (v, yes) in [
            ("v20.20.2", false),
            ("v22.18.0", false),
            ("v22.19.0", true),
            ("v23.11.0", false),
            ("v24.5.0", false),
            ("v24.6.0", true),
            ("v25.0.0", true),
            ("garbage", false),
        ] {
            assert_eq!(node_reads_use_system_ca_env(v), yes, "{v}");
        }
    }

    #[test]
    fn a_jks_keystore_gives_its_trusted_certificates() {
        let cert = [0x30u8, 0x03, 0x02, 0x01, 0x01];
        let mut b = vec![0xfe, 0xed, 0xfe, 0xed, 0, 0, 0, 2, 0, 0, 0, 1];
        b.extend([0, 0, 0, 2]); // trusted certificate
        b.extend([0, 2, b'c', b'a']); // alias
        b.extend([0; 8]); // date
        b.extend([0, 5]);
        b.extend(b"X.509");
        b.extend([0, 0, 0, 5]);
        b.extend(cert);
        b.extend([0; 20]); // digest
        assert_eq!(jks_certs(&b), Some(vec![cert.to_vec()]));
        assert_eq!(jks_certs(&b[..20]), None);
    }

    #[test]
    fn java_options_name_the_trust_store() {
        let env = Env::of(&[(
            "JAVA_TOOL_OPTIONS",
            "-Xmx1g -Djavax.net.ssl.trustStore=/etc/app/trust.p12 -Djavax.net.ssl.trustStorePassword=s3cret",
        )]);
        assert_eq!(
            java_property(&env, "javax.net.ssl.trustStore"),
            Some(("/etc/app/trust.p12".into(), "JAVA_TOOL_OPTIONS"))
        );
        assert_eq!(
            java_property(&env, "javax.net.ssl.trustStorePassword").map(|p| p.0),
            Some("s3cret".into())
        );
    }
}
