//! What is known once per connection: who the peer is (its certificate parsed once into an
//! identity, and the header values that carry it), which site it was authenticated for, and
//! its activity. The policy-dependent part — roles and the headers naming them — is a
//! [`Binding`] to one configuration version, recomputed on the first request after a
//! reload and never otherwise.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::{HeaderName, HeaderValue};
use portcullis_policy::{Identity, RoleSet};
use rustls::pki_types::CertificateDer;

use crate::config::NoSni;
use crate::names::{self, Names};
use crate::outcome::Rejection;
use crate::registry::Registration;
use crate::site::{self, Site};

/// Who is on the other end of a connection, decided once after the handshake.
#[derive(Debug)]
pub enum Peer {
    /// No certificate (optional mode, or client auth off).
    Anonymous,
    /// A certificate that rustls verified (chain, validity, CRL, clientAuth EKU).
    Verified(Box<Verified>),
    /// A certificate was presented and refused (`invalid_cert = "anonymous"` only):
    /// treated as anonymous, with the reason shown to pages and the upstream.
    Failed(Rejection),
}

/// A verified client: its identity, and the values of the headers that carry it upstream,
/// computed once.
#[derive(Debug)]
pub struct Verified {
    pub identity: Identity,
    /// `CN=alice`-style label for pages and logs.
    pub label: String,
    cert: HeaderValue,
    chain: Option<HeaderValue>,
    subject: HeaderValue,
    issuer: HeaderValue,
    cn: Option<HeaderValue>,
    email: Option<HeaderValue>,
    o: Option<HeaderValue>,
    ou: Option<HeaderValue>,
    serial: HeaderValue,
    fingerprint: HeaderValue,
    not_after: HeaderValue,
}

impl Verified {
    pub fn new(identity: Identity, chain: &[CertificateDer<'_>]) -> Verified {
        let id = &identity;
        let label = match &id.common_name {
            Some(cn) => format!("CN={cn}"),
            None => id.subject.clone(),
        };
        let list = |v: &[String]| {
            (!v.is_empty()).then(|| names::string_list(v.iter().map(String::as_str)))
        };
        let email = id.all_emails().next().map(names::text);
        Verified {
            cert: chain
                .first()
                .map_or(HeaderValue::from_static(""), |c| names::binary(c)),
            chain: (chain.len() > 1).then(|| {
                let items: Vec<String> = chain[1..]
                    .iter()
                    .map(|c| format!(":{}:", data_encoding::BASE64.encode(c)))
                    .collect();
                names::text(&items.join(", "))
            }),
            subject: names::text(&id.subject),
            issuer: names::text(&id.issuer),
            cn: id.common_name.as_deref().map(names::text),
            email,
            o: list(&id.organizations),
            ou: list(&id.organizational_units),
            serial: names::text(&id.serial),
            fingerprint: names::text(&id.fingerprint_sha256),
            not_after: names::text(&id.not_after.to_string()),
            label,
            identity,
        }
    }

    /// The identity headers under a site's header names, with the roles it grants.
    fn headers(&self, n: &Names, roles: &[&str]) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = Vec::with_capacity(13);
        out.push((n.verify.clone(), HeaderValue::from_static("SUCCESS")));
        out.push((n.cert.clone(), self.cert.clone()));
        let optional = [
            (&n.chain, &self.chain),
            (&n.cn, &self.cn),
            (&n.email, &self.email),
            (&n.o, &self.o),
            (&n.ou, &self.ou),
        ];
        for (name, value) in optional {
            if let Some(v) = value {
                out.push((name.clone(), v.clone()));
            }
        }
        for (name, value) in [
            (&n.subject, &self.subject),
            (&n.issuer, &self.issuer),
            (&n.serial, &self.serial),
            (&n.fingerprint, &self.fingerprint),
            (&n.not_after, &self.not_after),
        ] {
            out.push((name.clone(), value.clone()));
        }
        // Role names are restricted to letters, digits, '-', '_' and '.': a comma-separated
        // list reads one way only.
        out.push((n.roles.clone(), names::text(&roles.join(","))));
        out
    }
}

/// The connection's standing under one configuration version.
#[derive(Debug)]
pub struct Binding {
    /// The configuration version ([`crate::Gate`]'s generation) this was computed for.
    pub generation: u64,
    pub site: Arc<Site>,
    /// The caller's roles; `None` for a caller without a verified certificate.
    pub roles: Option<RoleSet>,
    pub role_names: Vec<String>,
    /// The identity headers the upstream receives (for anonymous callers, only
    /// `X-Client-Verify: NONE` or `FAILED:reason`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Binding {
    fn new(generation: u64, site: Arc<Site>, peer: &Peer) -> Binding {
        let names = &site.headers;
        let (roles, role_names, headers) = match peer {
            Peer::Verified(v) => {
                let policy = &site.config().policy;
                let roles = policy.roles_of(&v.identity);
                let list: Vec<&str> = policy.role_list(roles).collect();
                let headers = v.headers(names, &list);
                (
                    Some(roles),
                    list.into_iter().map(str::to_owned).collect(),
                    headers,
                )
            }
            Peer::Anonymous => (
                None,
                Vec::new(),
                vec![(names.verify.clone(), HeaderValue::from_static("NONE"))],
            ),
            Peer::Failed(why) => (
                None,
                Vec::new(),
                vec![(
                    names.verify.clone(),
                    names::text(&format!("FAILED:{}", why.as_str())),
                )],
            ),
        };
        Binding {
            generation,
            site,
            roles,
            role_names,
            headers,
        }
    }
}

/// Per-connection facts shared by all requests on it.
#[derive(Debug)]
pub struct Connection {
    pub peer_addr: SocketAddr,
    /// Lower-case SNI host name, if the client sent one.
    pub sni: Option<Box<str>>,
    pub peer: Peer,
    /// The site the handshake was made for: the connection never moves to another.
    site_key: Box<str>,
    binding: ArcSwap<Binding>,
    pub activity: Arc<Activity>,
    /// The client address as `X-Forwarded-For` gives it, and the start of `Forwarded`.
    pub forwarded_for: HeaderValue,
    pub forwarded_prefix: Box<str>,
    /// For verified clients: lets a reload close this connection when the certificate is
    /// revoked. Removed from the registry when the connection is dropped.
    pub registration: Option<Registration>,
}

impl Connection {
    pub fn new(
        peer_addr: SocketAddr,
        sni: Option<&str>,
        peer: Peer,
        site: Arc<Site>,
        generation: u64,
        registration: Option<Registration>,
    ) -> Connection {
        let ip = peer_addr.ip();
        let forwarded_prefix = match ip {
            std::net::IpAddr::V4(a) => format!("for={a};proto=https"),
            std::net::IpAddr::V6(a) => format!("for=\"[{a}]\";proto=https"),
        };
        Connection {
            peer_addr,
            sni: sni.map(|s| s.to_ascii_lowercase().into_boxed_str()),
            site_key: site.key().into(),
            binding: ArcSwap::from_pointee(Binding::new(generation, site, &peer)),
            peer,
            activity: Arc::new(Activity::new()),
            forwarded_for: names::text(&ip.to_string()),
            forwarded_prefix: forwarded_prefix.into_boxed_str(),
            registration,
        }
    }

    /// The verified client, if there is one.
    pub fn verified(&self) -> Option<&Verified> {
        match &self.peer {
            Peer::Verified(v) => Some(v),
            Peer::Anonymous | Peer::Failed(_) => None,
        }
    }

    /// The binding for configuration `generation`: the stored one when it is current (the
    /// usual case: one atomic load), else computed from `sites` and stored. `None` when the
    /// site this connection was authenticated for no longer serves its SNI name: the
    /// connection must not be judged by another site's rules.
    pub fn binding(
        &self,
        generation: u64,
        sites: &[Arc<Site>],
        no_sni: NoSni,
    ) -> Option<Arc<Binding>> {
        let current = self.binding.load_full();
        if current.generation == generation {
            return Some(current);
        }
        let site = site::site_for(sites, no_sni, self.sni.as_deref())?;
        if site.key() != &*self.site_key {
            return None;
        }
        let next = Arc::new(Binding::new(generation, site.clone(), &self.peer));
        self.binding.store(next.clone());
        Some(next)
    }
}

// === impl Activity ===

/// What a connection is doing, for the idle, write-progress and age limits: a few atomics
/// updated by the request path, the response bodies and the socket wrapper, and read by the
/// connection's watchdog. No locks.
#[derive(Debug)]
pub struct Activity {
    opened: Instant,
    /// Requests being handled, plus response bodies not yet finished.
    in_flight: AtomicUsize,
    /// Milliseconds since `opened` when `in_flight` last fell to zero.
    idle_since_ms: AtomicU64,
    /// Successful socket writes, and whether the last write had to wait.
    writes: AtomicU64,
    write_blocked: AtomicBool,
    /// Response-body frames handed to hyper.
    body_frames: AtomicU64,
    /// Response bodies whose next frame hyper has not yet asked for: with an HTTP/2 window
    /// kept at zero it never will.
    bodies_owed: AtomicUsize,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            write_blocked: AtomicBool::new(false),
            body_frames: AtomicU64::new(0),
            bodies_owed: AtomicUsize::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Marks work as started; the guard marks it ended, however it ends.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Relaxed);
        InFlight(self.clone())
    }

    pub fn age(&self) -> Duration {
        self.opened.elapsed()
    }

    /// How long nothing has been in flight (zero while something is).
    pub fn idle(&self) -> Duration {
        if self.in_flight.load(Relaxed) > 0 {
            return Duration::ZERO;
        }
        let since = self.idle_since_ms.load(Relaxed);
        Duration::from_millis(self.now_ms().saturating_sub(since))
    }

    /// What the connection waits for the client to take, each with a counter that moves
    /// whenever that kind of data moves: a socket write that had to wait (progress: writes
    /// completing), and response bodies hyper cannot send (progress: body frames taken).
    /// Each is judged on its own progress, so an HTTP/2 client cannot keep a zero-window
    /// stream alive with PINGs, whose answers are writes.
    pub fn waiting(&self) -> [(bool, u64); 2] {
        [
            (self.write_blocked.load(Relaxed), self.writes.load(Relaxed)),
            (
                self.bodies_owed.load(Relaxed) > 0,
                self.body_frames.load(Relaxed),
            ),
        ]
    }

    /// A socket write (or flush) finished: `Some(bytes)`, or had to wait: `None`.
    pub(crate) fn wrote(&self, done: Option<usize>) {
        match done {
            Some(n) => {
                if n > 0 {
                    self.writes.fetch_add(1, Relaxed);
                }
                self.write_blocked.store(false, Relaxed);
            }
            None => self.write_blocked.store(true, Relaxed),
        }
    }
}

/// Something in flight on a connection; ends when dropped.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        a.idle_since_ms.store(a.now_ms(), Relaxed);
        a.in_flight.fetch_sub(1, Relaxed);
    }
}

/// A response body that counts as in flight until it is finished or dropped, and tells the
/// connection's watchdog whether hyper keeps taking its frames.
#[derive(Debug)]
pub struct Tracked<B> {
    inner: B,
    _in_flight: InFlight,
    /// Whether this body is counted in `bodies_owed`.
    owed: bool,
}

impl<B> Tracked<B> {
    pub fn new(inner: B, activity: &Arc<Activity>) -> Tracked<B> {
        activity.bodies_owed.fetch_add(1, Relaxed);
        Tracked {
            inner,
            _in_flight: activity.begin(),
            owed: true,
        }
    }

    fn set_owed(&mut self, owed: bool) {
        if owed != self.owed {
            let counter = &self._in_flight.0.bodies_owed;
            if owed {
                counter.fetch_add(1, Relaxed);
            } else {
                counter.fetch_sub(1, Relaxed);
            }
            self.owed = owed;
        }
    }
}

impl<B> Drop for Tracked<B> {
    fn drop(&mut self) {
        self.set_owed(false);
    }
}

impl<B> hyper::body::Body for Tracked<B>
where
    B: hyper::body::Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<B::Data>, B::Error>>> {
        self._in_flight.0.body_frames.fetch_add(1, Relaxed);
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        // A frame handed over: the next one is owed by the client's side. Waiting on the
        // upstream, or finished: nothing is owed.
        self.set_owed(matches!(polled, Poll::Ready(Some(Ok(_)))));
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}
