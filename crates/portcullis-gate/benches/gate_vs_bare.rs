//! Server CPU per full mTLS handshake and per keep-alive request: the gate against a bare
//! rustls + hyper server with the same certificate, client verifier and CRL.
//!
//! Both servers answer every request with the same small body, so the difference is the
//! gate's own work: parsing the client certificate into an identity, roles, path
//! canonicalization, the Host/SNI check, the policy decision and the identity headers.
//! Each server runs in its own process (this binary, re-invoked with `--serve`), and its
//! CPU time is read from /proc before and after the client's work.
//!
//! Run: `cargo bench -p portcullis-gate --bench gate_vs_bare`

// A benchmark harness: setup failures should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use portcullis_gate::{Config, Gate};
use portcullis_pki::ca::{self, Ca, InitOptions};
use portcullis_pki::{KeyType, Kind, LeafRequest, San, SaveOptions, Subject};
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName};
use tower_layer::Layer;

const HANDSHAKES: usize = 1_500;
const REQUESTS: usize = 20_000;

const CONFIG: &str = r#"
listen = "127.0.0.1:0"
cert = "pki/issued/localhost.chain.pem"
key = "pki/issued/localhost.key"
client_auth = "require"
client_ca = ["pki/root.crt"]
crl = ["pki/crl.pem"]
upstream = "builtin:whoami"

[[roles]]
role = "admin"
ou = "Admins"

[[roles]]
role = "ops"
uri_prefix = "spiffe://corp/ops/"

[[rules]]
path = "/"
require = "anonymous"

[[rules]]
path = "/admin/**"
require = "role:admin"

[[rules]]
path = "/ops/*/deploy"
methods = ["POST"]
any_of = ["role:admin", "role:ops"]

[[rules]]
path = "/me"
require = "authenticated"
"#;

fn pem_der(path: &Path, label: &str) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    x509_parser::pem::Pem::iter_from_buffer(&bytes)
        .map(|b| b.unwrap())
        .filter(|b| b.label == label)
        .map(|b| b.contents)
        .collect()
}

fn key_der(path: &Path) -> PrivateKeyDer<'static> {
    let text = std::fs::read_to_string(path).unwrap();
    let key = portcullis_pki::keys::from_pem(&text, path, None, "").unwrap();
    PrivateKeyDer::Pkcs8(key.serialize_der().into())
}

fn ok() -> hyper::Response<Full<Bytes>> {
    hyper::Response::new(Full::new(Bytes::from_static(b"ok\n")))
}

// === servers (child process) ===

fn serve(kind: &str, dir: &Path) {
    std::env::set_current_dir(dir).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("port {}", listener.local_addr().unwrap().port());
        if kind == "gate" {
            let gate = Arc::new(
                Gate::load(Config::from_file(Path::new("gate.toml")).unwrap(), None).unwrap(),
            );
            loop {
                let (tcp, addr) = listener.accept().await.unwrap();
                let gate = gate.clone();
                tokio::spawn(async move {
                    let Some((tls, conn)) = gate.accept(tcp, addr).await else {
                        return;
                    };
                    let app = service_fn(|_req| async { Ok::<_, Infallible>(ok()) });
                    let svc = gate.layer(conn).layer(tower::service_fn_compat(app));
                    let _ = gate
                        .http_builder()
                        .serve_connection(TokioIo::new(tls), TowerToHyperService::new(svc))
                        .await;
                });
            }
        } else {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let mut roots = rustls::RootCertStore::empty();
            for c in pem_der(Path::new("pki/root.crt"), "CERTIFICATE") {
                roots.add(CertificateDer::from(c)).unwrap();
            }
            let crls: Vec<CertificateRevocationListDer> =
                pem_der(Path::new("pki/crl.pem"), "X509 CRL")
                    .into_iter()
                    .map(CertificateRevocationListDer::from)
                    .collect();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .with_crls(crls)
            .only_check_end_entity_revocation()
            .enforce_revocation_expiration()
            .build()
            .unwrap();
            let chain = pem_der(Path::new("pki/issued/localhost.chain.pem"), "CERTIFICATE")
                .into_iter()
                .map(CertificateDer::from)
                .collect();
            let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_client_cert_verifier(verifier)
                .with_single_cert(chain, key_der(Path::new("pki/issued/localhost.key")))
                .unwrap();
            cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _ = tcp.set_nodelay(true);
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = service_fn(|_req| async { Ok::<_, Infallible>(ok()) });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        }
    });
}

/// Adapts a hyper `service_fn` to a tower service (hyper's trait takes `&self`).
mod tower {
    use std::task::{Context, Poll};

    #[derive(Clone)]
    pub struct Compat<S>(pub S);

    pub fn service_fn_compat<S>(s: S) -> Compat<S> {
        Compat(s)
    }

    impl<S, R> tower_service::Service<R> for Compat<S>
    where
        S: hyper::service::Service<R>,
    {
        type Response = S::Response;
        type Error = S::Error;
        type Future = S::Future;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, req: R) -> Self::Future {
            self.0.call(req)
        }
    }
}

// === client (parent process) ===

/// User + system CPU seconds of a process.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime), counted from after the ")".
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(kind: &str, dir: &Path) -> Server {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--serve", kind, dir.to_str().unwrap()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().strip_prefix("port ").unwrap().parse().unwrap();
        Server { child, port }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client_config(dir: &Path) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in pem_der(&dir.join("pki/root.crt"), "CERTIFICATE") {
        roots.add(CertificateDer::from(c)).unwrap();
    }
    let chain = pem_der(&dir.join("pki/issued/alice.chain.pem"), "CERTIFICATE")
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key_der(&dir.join("pki/issued/alice.key")))
        .unwrap();
    // Every connection is a full handshake.
    cfg.resumption = rustls::client::Resumption::disabled();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(cfg)
}

async fn connect(
    cfg: &Arc<rustls::ClientConfig>,
    port: u16,
) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    tcp.set_nodelay(true).unwrap();
    let tls = tokio_rustls::TlsConnector::from(cfg.clone())
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

async fn get(sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>) {
    let req = hyper::Request::get("/me")
        .header("host", "localhost")
        .body(Empty::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.into_body().collect().await.unwrap();
}

struct Figures {
    handshake_cpu_us: f64,
    handshakes_per_s: f64,
    request_cpu_us: f64,
    requests_per_s: f64,
}

fn measure(kind: &str, dir: &Path) -> Figures {
    let server = Server::start(kind, dir);
    let cfg = client_config(dir);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pid = server.child.id();
    rt.block_on(async {
        // Warm up.
        for _ in 0..50 {
            get(&mut connect(&cfg, server.port).await).await;
        }
        let (c0, t0) = (cpu_seconds(pid), Instant::now());
        for _ in 0..HANDSHAKES {
            get(&mut connect(&cfg, server.port).await).await;
        }
        let (c1, t1) = (cpu_seconds(pid), t0.elapsed());
        let mut sender = connect(&cfg, server.port).await;
        let (c2, t2) = (cpu_seconds(pid), Instant::now());
        for _ in 0..REQUESTS {
            get(&mut sender).await;
        }
        let (c3, t3) = (cpu_seconds(pid), t2.elapsed());
        Figures {
            // Each handshake connection also carries one request; subtract its cost below.
            handshake_cpu_us: (c1 - c0) * 1e6 / HANDSHAKES as f64,
            handshakes_per_s: HANDSHAKES as f64 / t1.as_secs_f64(),
            request_cpu_us: (c3 - c2) * 1e6 / REQUESTS as f64,
            requests_per_s: REQUESTS as f64 / t3.as_secs_f64(),
        }
    })
}

fn setup(dir: &Path) {
    let root = dir.join("pki");
    ca::init(
        &root,
        &InitOptions {
            intermediate: true,
            ..Default::default()
        },
    )
    .unwrap();
    let ca = Ca::open(&root, None).unwrap();
    let mut writer = ca.writer().unwrap();
    for (name, kind, sans, ou) in [
        (
            "localhost",
            Kind::Server,
            vec![San::Dns("localhost".into())],
            None,
        ),
        (
            "alice",
            Kind::Client,
            vec![San::Email("alice@example.com".into())],
            Some("Admins"),
        ),
    ] {
        let req = LeafRequest {
            kind,
            subject: Subject {
                common_name: name.into(),
                organizational_units: ou.map(|o| vec![o.into()]).unwrap_or_default(),
                ..Default::default()
            },
            sans,
            days: 30,
            key_type: KeyType::P256,
        };
        let cert = ca.issue(&req, writer.index()).unwrap();
        let opts = SaveOptions {
            out_dir: ca.layout().issued(),
            stem: name.into(),
            key_passphrase: None,
            p12: None,
            force: false,
        };
        writer.save(cert, &opts).unwrap();
    }
    writer.publish_crl(30).unwrap();
    std::fs::write(dir.join("gate.toml"), CONFIG).unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--serve") {
        serve(&args[i + 1], Path::new(&args[i + 2]));
        return;
    }
    // `cargo test --benches` runs bench targets without --bench; keep that instant.
    if !args.iter().any(|a| a == "--bench") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    if std::env::var_os("BENCH_INSTRUCTIONS").is_some() {
        instructions(dir.path());
        return;
    }
    println!(
        "{HANDSHAKES} full mTLS handshakes (TLS 1.3, P-256, one request each), then {REQUESTS} keep-alive requests"
    );
    println!(
        "{:<6} {:>14} {:>14} {:>14} {:>14}",
        "server", "µs CPU/hs", "handshakes/s", "µs CPU/req", "requests/s"
    );
    // Interleaved pairs, compared by median: CPU time on a shared VM is noisy, and a
    // neighbour's burst should not decide the result.
    const PAIRS: usize = 4;
    let mut results = Vec::new();
    for _ in 0..PAIRS {
        for kind in ["bare", "gate"] {
            let f = measure(kind, dir.path());
            println!(
                "{kind:<6} {:>14.0} {:>14.0} {:>14.1} {:>14.0}",
                f.handshake_cpu_us, f.handshakes_per_s, f.request_cpu_us, f.requests_per_s
            );
            results.push((kind, f));
        }
    }
    let median = |k: &str, f: fn(&Figures) -> f64| {
        let mut v: Vec<f64> = results
            .iter()
            .filter(|(n, _)| *n == k)
            .map(|(_, x)| f(x))
            .collect();
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    let (bh, gh) = (
        median("bare", |f| f.handshake_cpu_us),
        median("gate", |f| f.handshake_cpu_us),
    );
    let (br, gr) = (
        median("bare", |f| f.request_cpu_us),
        median("gate", |f| f.request_cpu_us),
    );
    println!(
        "median µs CPU per handshake: bare {bh:.0}, gate {gh:.0} ({:+.1}%)",
        (gh / bh - 1.0) * 100.0
    );
    println!(
        "median µs CPU per keep-alive request: bare {br:.1}, gate {gr:.1} ({:+.1}%)",
        (gr / br - 1.0) * 100.0
    );
}

// === instruction counts ===

/// Instructions the server executes (valgrind's callgrind), for one run: `handshakes` full
/// handshakes with one request each, then `requests` requests on one connection.
fn server_instructions(kind: &str, dir: &Path, handshakes: usize, requests: usize) -> u64 {
    let out = dir.join(format!("callgrind.{kind}.{handshakes}.{requests}"));
    let mut child = Command::new("valgrind")
        .args([
            "--tool=callgrind",
            &format!("--callgrind-out-file={}", out.display()),
        ])
        .arg(std::env::current_exe().unwrap())
        .args(["--serve", kind, dir.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().strip_prefix("port ").unwrap().parse().unwrap();
    let cfg = client_config(dir);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for _ in 0..handshakes {
            get(&mut connect(&cfg, port).await).await;
        }
        let mut sender = connect(&cfg, port).await;
        for _ in 0..requests {
            get(&mut sender).await;
        }
    });
    // SIGTERM: valgrind writes the profile as the process ends.
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    // BENCH_KEEP=DIR keeps the profiles for callgrind_annotate.
    if let Some(keep) = std::env::var_os("BENCH_KEEP") {
        let _ = std::fs::copy(&out, Path::new(&keep).join(out.file_name().unwrap()));
    }
    let text = std::fs::read_to_string(&out).unwrap();
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// Per-handshake and per-request instructions from the differences between runs, so that
/// start-up and warm-up cancel out. Repeatable, unlike CPU time on a shared VM.
fn instructions(dir: &Path) {
    const BASE_HS: usize = 20;
    const MORE_HS: usize = 120;
    const BASE_RQ: usize = 200;
    const MORE_RQ: usize = 2_200;
    println!("server instructions (valgrind callgrind), differences between runs:");
    let mut per = Vec::new();
    for kind in ["bare", "gate"] {
        let base = server_instructions(kind, dir, BASE_HS, BASE_RQ);
        let hs = server_instructions(kind, dir, MORE_HS, BASE_RQ);
        let rq = server_instructions(kind, dir, BASE_HS, MORE_RQ);
        let per_hs = (hs - base) as f64 / (MORE_HS - BASE_HS) as f64;
        let per_rq = (rq - base) as f64 / (MORE_RQ - BASE_RQ) as f64;
        println!(
            "{kind:<6} {per_hs:>12.0} instructions per handshake {per_rq:>10.0} per keep-alive request"
        );
        per.push((per_hs, per_rq));
    }
    println!(
        "gate vs bare: {:+.1}% per handshake, {:+.1}% per keep-alive request",
        (per[1].0 / per[0].0 - 1.0) * 100.0,
        (per[1].1 / per[0].1 - 1.0) * 100.0
    );
}
