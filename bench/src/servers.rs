//! Starting the servers under comparison, pinned to CPU 0, and reading what they spent:
//! CPU time and resident memory of the whole process tree (nginx's master and worker).

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::pki;

/// The CPU the servers run on; the clients and the upstream take the other one.
pub const SERVER_CPU: &str = "0";
pub const CLIENT_CPU: &str = "1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// nginx with `ssl_verify_client on`, access log off.
    Nginx,
    /// The same with an access log (the `combined` format, buffered, to a file): what the
    /// gate with its access log is compared with.
    NginxLogged,
    /// The bare rustls + hyper server.
    Bare,
    /// `portcullis serve`, access log off.
    Gate,
    /// `portcullis serve`, one access-log line per request (to a file).
    GateLogged,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Nginx => "nginx",
            Kind::NginxLogged => "nginx+log",
            Kind::Bare => "bare",
            Kind::Gate => "portcullis",
            Kind::GateLogged => "portcullis+log",
        }
    }
}

/// What is behind the server: the built-in page, or a proxy to the shared upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Builtin,
    Proxy { port: u16 },
}

pub struct Server {
    pub kind: Kind,
    pub port: u16,
    child: Child,
}

/// Paths of the programs the bench drives.
#[derive(Debug, Clone)]
pub struct Programs {
    pub portcullis: PathBuf,
    pub bench: PathBuf,
    pub nginx: PathBuf,
    pub oha: PathBuf,
    /// Runs servers under this command (valgrind) instead of pinning them to CPU 0.
    pub wrapper: Option<Vec<String>>,
}

impl Programs {
    fn server(&self, program: &Path) -> Command {
        match &self.wrapper {
            None => pinned(SERVER_CPU, program),
            Some(wrapper) => {
                let mut command = Command::new(&wrapper[0]);
                command.args(&wrapper[1..]).arg(program);
                command
            }
        }
    }
}

impl Server {
    pub fn start(kind: Kind, backend: Backend, dir: &Path, programs: &Programs) -> Result<Server> {
        match kind {
            Kind::Nginx | Kind::NginxLogged => start_nginx(kind, backend, dir, programs),
            Kind::Bare => {
                let mut command = programs.server(&programs.bench);
                command.arg("bare").arg(dir);
                if let Backend::Proxy { port } = backend {
                    command.arg("--upstream").arg(port.to_string());
                }
                let mut child = command
                    .stdout(Stdio::piped())
                    .spawn()
                    .context("starting the bare server")?;
                let port = announced_port(&mut child)?;
                Ok(Server { kind, port, child })
            }
            Kind::Gate | Kind::GateLogged => start_gate(kind, backend, dir, programs),
        }
    }

    /// User + system CPU seconds of the server and its child processes.
    pub fn cpu_seconds(&self) -> Result<f64> {
        let mut ticks = 0;
        for pid in tree(self.child.id())? {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
            let fields = stat_fields(&stat)?;
            // utime and stime, fields 14 and 15 of proc(5).
            ticks += fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
        }
        // USER_HZ is 100 on every Linux this runs on.
        Ok(ticks as f64 / 100.0)
    }

    /// The server's process and its children (nginx's master and worker).
    pub fn processes(&self) -> Result<Vec<u32>> {
        tree(self.child.id())
    }

    /// CPU time of every thread of the server's processes, to the nanosecond (the first
    /// field of /proc/PID/task/TID/schedstat), for phases too short for `cpu_seconds`'
    /// 10 ms ticks. Unlike those, a thread's time leaves with the thread: `CpuTime::since`
    /// refuses an interval in which one exited.
    pub fn cpu_time(&self) -> Result<CpuTime> {
        let mut threads = BTreeMap::new();
        for pid in tree(self.child.id())? {
            for task in fs::read_dir(format!("/proc/{pid}/task"))? {
                let tid: u32 = task?.file_name().to_string_lossy().parse()?;
                let Ok(schedstat) = fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat"))
                else {
                    continue; // exited meanwhile
                };
                let ns = schedstat
                    .split_whitespace()
                    .next()
                    .context("empty schedstat")?
                    .parse::<u64>()?;
                threads.insert(tid, ns);
            }
        }
        Ok(CpuTime { threads })
    }

    /// Resident memory of the server and its child processes, in KiB.
    pub fn rss_kib(&self) -> Result<u64> {
        let mut kib = 0;
        for pid in tree(self.child.id())? {
            let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
            let line = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .context("no VmRSS in /proc/PID/status")?;
            kib += line.trim().trim_end_matches("kB").trim().parse::<u64>()?;
        }
        Ok(kib)
    }
}

/// Each thread's CPU time so far, in nanoseconds.
pub struct CpuTime {
    threads: BTreeMap<u32, u64>,
}

impl CpuTime {
    /// Seconds of CPU spent since `before`.
    pub fn since(&self, before: &CpuTime) -> Result<f64> {
        if let Some(gone) = before
            .threads
            .keys()
            .find(|t| !self.threads.contains_key(t))
        {
            bail!("thread {gone} exited during the measurement, taking its CPU time with it");
        }
        let mut ns = 0;
        for (tid, &now) in &self.threads {
            let then = before.threads.get(tid).copied().unwrap_or(0);
            ns += now
                .checked_sub(then)
                .with_context(|| format!("thread {tid} was replaced by another"))?;
        }
        Ok(ns as f64 / 1e9)
    }
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Asks the server to exit (SIGTERM; nginx's master then stops its worker) and waits
    /// for it, killing it after 10 s.
    pub fn terminate(mut self) -> Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> Result<()> {
        signal_and_wait(&mut self.child, "TERM", self.kind.name())
    }
}

/// Sends `child` the signal (`TERM`, `INT`…) unless it has exited, and waits for it to
/// exit, killing it after 10 s.
pub fn signal_and_wait(child: &mut Child, signal: &str, name: &str) -> Result<()> {
    if child.try_wait()?.is_some() {
        return Ok(());
    }
    Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            child.kill()?;
            child.wait()?;
            bail!("{name} did not exit on SIG{signal} in 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("{e:#}");
        }
    }
}

/// `taskset -c CPU PROGRAM`: the program and everything it starts run on that CPU only.
pub fn pinned(cpu: &str, program: &Path) -> Command {
    let mut command = Command::new("taskset");
    command.args(["-c", cpu]).arg(program);
    command
}

fn stat_fields(stat: &str) -> Result<Vec<&str>> {
    // The command name may contain spaces; fields are counted after its ")".
    let after = stat.rfind(')').context("malformed /proc/PID/stat")?;
    Ok(stat[after + 2..].split_whitespace().collect())
}

/// The process and its descendants.
fn tree(root: u32) -> Result<Vec<u32>> {
    let mut all = vec![root];
    let mut i = 0;
    while i < all.len() {
        let parent = all[i];
        for entry in fs::read_dir("/proc")? {
            let Ok(pid) = entry?.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            if stat_fields(&stat)?.get(1) == Some(&parent.to_string().as_str()) {
                all.push(pid);
            }
        }
        i += 1;
    }
    Ok(all)
}

/// What a server's files in the work directory are called: distinct for every server, so
/// that two can run at once (`portcullis-bench pairs`).
fn file_stem(kind: Kind, backend: Backend) -> String {
    match backend {
        Backend::Builtin => kind.name().to_string(),
        Backend::Proxy { .. } => format!("{}-proxy", kind.name()),
    }
}

/// Reads `port N` from a child's first line of output.
pub fn announced_port(child: &mut Child) -> Result<u16> {
    let stdout = child.stdout.take().context("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    line.trim()
        .strip_prefix("port ")
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("expected `port N`, got {line:?}"))
}

fn gate_config(kind: Kind, backend: Backend) -> String {
    let upstream = match backend {
        Backend::Builtin => "builtin:whoami".to_string(),
        Backend::Proxy { port } => format!("http://127.0.0.1:{port}"),
    };
    let access_log = if kind == Kind::GateLogged {
        "text"
    } else {
        "off"
    };
    format!(
        r#"# Every feature on: client certificates required and checked against the CRL, roles,
# route rules, identity headers, metrics on the admin listener.
listen = "127.0.0.1:0"
admin = "127.0.0.1:0"
access_log = "{access_log}"
cert = "{chain}"
key = "{key}"
client_auth = "require"
client_ca = ["{root}"]
crl = ["{crl}"]
upstream = "{upstream}"

[limits]
# Room for the idle-connection phase: 10,000 connections held open for a while.
max_connections = 20000
idle_timeout_secs = 600
header_timeout_secs = 600

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
"#,
        chain = pki::SERVER_CHAIN,
        key = pki::SERVER_KEY,
        root = pki::ROOT,
        crl = pki::CRL,
    )
}

fn start_gate(kind: Kind, backend: Backend, dir: &Path, programs: &Programs) -> Result<Server> {
    let stem = file_stem(kind, backend);
    let config = dir.join(format!("{stem}.toml"));
    fs::write(&config, gate_config(kind, backend))?;
    let log_path = dir.join(format!("{stem}.log"));
    let log = fs::File::create(&log_path)?;
    let child = programs
        .server(&programs.portcullis)
        .current_dir(dir)
        .arg("serve")
        .arg("-c")
        .arg(&config)
        .stdout(log)
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting portcullis serve")?;
    let mut server = Server {
        kind,
        port: 0,
        child,
    };
    // Valgrind takes a while to start a program.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let text = fs::read_to_string(&log_path)?;
        if let Some(addr) = text
            .lines()
            .find_map(|l| l.split("listening on https://").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
        {
            server.port = addr
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .with_context(|| format!("unexpected listen address {addr}"))?;
            return Ok(server);
        }
        if let Some(status) = server.child.try_wait()? {
            bail!("portcullis serve exited ({status}):\n{text}");
        }
        if Instant::now() > deadline {
            bail!("portcullis serve did not start in 120 s:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `single`: one process without a master (`master_process off`), for valgrind, which
/// counts the process it started.
fn nginx_config(kind: Kind, dir: &Path, port: u16, backend: Backend, single: bool) -> String {
    let location = match backend {
        Backend::Builtin => "return 200 \"ok\\n\";".to_string(),
        // As a user would write it: a keep-alive pool, the identity in headers that
        // replace any inbound copy.
        Backend::Proxy { .. } => r#"proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header X-Client-Verify $ssl_client_verify;
            proxy_set_header X-Client-Subject $ssl_client_s_dn;
            proxy_set_header X-Client-Issuer $ssl_client_i_dn;
            proxy_set_header X-Client-Serial $ssl_client_serial;
            proxy_set_header X-Client-Fingerprint $ssl_client_fingerprint;
            proxy_set_header Client-Cert $ssl_client_escaped_cert;"#
            .to_string(),
    };
    let upstream = match backend {
        Backend::Builtin => String::new(),
        // As many idle upstream connections as the gate keeps (256): with nginx's usual
        // `keepalive 32`, the 50 connections of the latency phase make it open and close
        // upstream connections all the time.
        Backend::Proxy { port } => {
            format!("upstream app {{ server 127.0.0.1:{port}; keepalive 256; }}")
        }
    };
    let d = dir.display();
    let stem = file_stem(kind, backend);
    let master = if single { "off" } else { "on" };
    // As a user who logs would write it, with a buffer (64 KiB, written at least every
    // second) rather than a write(2) per request.
    let access_log = if kind == Kind::NginxLogged {
        format!("{d}/{stem}-access.log combined buffer=64k flush=1s")
    } else {
        "off".to_string()
    };
    format!(
        r#"worker_processes 1;
master_process {master};
daemon off;
pid {d}/{stem}.pid;
error_log {d}/{stem}-error.log warn;
events {{ worker_connections 15000; }}
http {{
    access_log {access_log};
    keepalive_timeout 600s;
    keepalive_requests 10000000;
    {upstream}
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {d}/{chain};
        ssl_certificate_key {d}/{key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ecdh_curve X25519:prime256v1;
        # The gate's cipher-suite choice (AES-128-GCM-SHA256 whatever the client's
        # order), so that every server does the same cryptography.
        ssl_prefer_server_ciphers on;
        ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256;
        ssl_client_certificate {d}/{root};
        ssl_verify_client on;
        ssl_verify_depth 2;
        ssl_crl {d}/{crls};
        location / {{
            {location}
        }}
    }}
}}
"#,
        chain = pki::SERVER_CHAIN,
        key = pki::SERVER_KEY,
        root = pki::ROOT,
        crls = pki::CRLS_FOR_NGINX,
    )
}

fn start_nginx(kind: Kind, backend: Backend, dir: &Path, programs: &Programs) -> Result<Server> {
    // nginx cannot listen on port 0 and say which port it got: take a free one.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let stem = file_stem(kind, backend);
    let config = dir.join(format!("{stem}.conf"));
    let single = programs.wrapper.is_some();
    fs::write(&config, nginx_config(kind, dir, port, backend, single))?;
    let child = programs
        .server(&programs.nginx)
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&config)
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting nginx")?;
    let mut server = Server { kind, port, child };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = server.child.try_wait()? {
            let log = fs::read_to_string(dir.join(format!("{stem}-error.log"))).unwrap_or_default();
            bail!("nginx exited ({status}):\n{log}");
        }
        if Instant::now() > deadline {
            bail!("nginx did not listen on port {port} in 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(server)
}
