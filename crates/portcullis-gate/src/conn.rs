//! What is known once per connection: who the peer is (its certificate parsed once into an
//! identity, and the header values that carry it), which site it was authenticated for, and
//! its activity. The policy-dependent part — roles and the headers naming them — is a
//! [`Binding`] to one configuration version, recomputed on the first request after a
//! reload and never otherwise.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::{HeaderMap, HeaderValue};
use portcullis_policy::RoleSet;

pub use crate::verified::Verified;

use crate::config::NoSni;
use crate::names;
use crate::outcome::Rejection;
use crate::pages::WhoAmI;
use crate::registry::Registration;
use crate::site::{self, Site};

/// Who is on the other end of a connection, decided once after the handshake.
#[derive(Debug)]
pub enum Peer {
    /// No certificate (optional mode, or client auth off).
    Anonymous,
    /// A certificate that rustls verified (chain, validity, CRL, clientAuth EKU).
    /// Shared by the connections that resume with the same chain (see
    /// [`crate::tls::Recheck`]).
    Verified(Arc<Verified>),
    /// A certificate was presented and refused (`invalid_cert = "anonymous"` only):
    /// treated as anonymous, with the reason shown to pages and the upstream.
    Failed(Rejection),
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
    /// `X-Client-Verify`: `SUCCESS`, `NONE` or `FAILED:reason`.
    verify: HeaderValue,
    /// `X-Client-Roles` (empty for a caller without a verified certificate).
    roles_header: HeaderValue,
    /// The built-in page for this caller, rendered at its first request.
    pub whoami: WhoAmI,
}

impl Binding {
    /// Adds the identity headers the upstream receives: for a caller without a verified
    /// certificate only `X-Client-Verify`. Stage 3 removed every inbound copy, so each
    /// is the only line of its name.
    pub fn add_headers(&self, verified: Option<&Verified>, headers: &mut HeaderMap) {
        let names = &self.site.headers;
        headers.append(names.verify.clone(), self.verify.clone());
        if let Some(v) = verified {
            v.add_headers(names, &self.roles_header, headers);
        }
    }

    fn new(generation: u64, site: Arc<Site>, peer: &Peer) -> Binding {
        let (roles, role_names, verify) = match peer {
            Peer::Verified(v) => {
                let policy = &site.config().policy;
                let roles = policy.roles_of(&v.identity, portcullis_policy::Timestamp::now());
                let list = policy.role_list(roles).map(str::to_owned).collect();
                (Some(roles), list, HeaderValue::from_static("SUCCESS"))
            }
            Peer::Anonymous => (None, Vec::new(), HeaderValue::from_static("NONE")),
            Peer::Failed(why) => (
                None,
                Vec::new(),
                names::text(&format!("FAILED:{}", why.as_str())),
            ),
        };
        // Role names are restricted to letters, digits, '-', '_' and '.': a comma-separated
        // list reads one way only.
        let roles_header = names::text(&role_names.join(","));
        Binding {
            generation,
            site,
            roles,
            role_names,
            verify,
            roles_header,
            whoami: WhoAmI::default(),
        }
    }
}

/// Per-connection facts shared by all requests on it.
#[derive(Debug)]
pub struct Connection {
    pub peer_addr: SocketAddr,
    /// The gate's port this connection came in on: the one port a Host may name besides
    /// the default 443.
    pub local_port: u16,
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
    /// `peer_addr` as the access log writes it, made at its first line.
    log_client: OnceLock<Box<str>>,
}

impl Connection {
    /// `streams`: how many responses can be in flight at once (1 for HTTP/1.1, the stream
    /// limit for HTTP/2).
    #[allow(clippy::too_many_arguments)] // one constructor, called once, each argument named
    pub fn new(
        peer_addr: SocketAddr,
        local_port: u16,
        sni: Option<&str>,
        peer: Peer,
        site: Arc<Site>,
        generation: u64,
        registration: Option<Registration>,
        streams: usize,
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
            activity: Arc::new(Activity::new(streams)),
            local_port,
            forwarded_for: names::text(&ip.to_string()),
            forwarded_prefix: forwarded_prefix.into_boxed_str(),
            registration,
            log_client: OnceLock::new(),
        }
    }

    /// The client's address and port, for the access log.
    pub(crate) fn log_client(&self) -> &str {
        self.log_client
            .get_or_init(|| self.peer_addr.to_string().into_boxed_str())
    }

    /// The key of the site the handshake was made for.
    pub(crate) fn site_key(&self) -> &str {
        &self.site_key
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

/// What a connection is doing, for the idle, write-progress and age limits: atomics
/// updated by the request path, the response bodies and the socket wrapper, and read by the
/// connection's watchdog. No locks, and no clock reads per frame: bodies stamp their
/// progress with the watchdog's tick count.
#[derive(Debug)]
pub struct Activity {
    opened: Instant,
    /// Requests being handled, plus response bodies not yet finished.
    in_flight: AtomicUsize,
    /// Milliseconds since `opened` when `in_flight` last fell to zero.
    idle_since_ms: AtomicU64,
    /// Requests and response bodies begun so far.
    begun: AtomicU64,
    /// Set while an idle HTTP/1.1 connection is parked: hyper's close at the end of its
    /// connection must leave the socket open (see `park.rs`).
    keep_socket: AtomicBool,
    /// The client asked for the connection to end after a request: it is never parked.
    client_closes: AtomicBool,
    /// Successful socket writes, and whether the last write had to wait.
    writes: AtomicU64,
    write_blocked: AtomicBool,
    /// Watchdog ticks so far.
    ticks: AtomicU64,
    /// One slot per response body that can be in flight at once (HTTP/1.1: one; HTTP/2:
    /// the stream limit): 0 when free, else `(tick + 1) << 1 | owed` — the tick of the
    /// body's last progress, and whether hyper owes it a poll, which it never makes while
    /// the client keeps its window at zero or stops reading. Each body is judged on its
    /// own progress, so other streams moving cannot keep a stuck one alive.
    bodies: Box<[AtomicU64]>,
    /// Owed bodies that found no free slot, judged together by `overflow_tick`.
    overflow: AtomicUsize,
    overflow_tick: AtomicU64,
}

fn slot_value(tick: u64, owed: bool) -> u64 {
    ((tick + 1) << 1) | u64::from(owed)
}

impl Activity {
    /// Activity for a connection that can have `streams` responses in flight at once.
    fn new(streams: usize) -> Activity {
        Activity {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            begun: AtomicU64::new(0),
            keep_socket: AtomicBool::new(false),
            client_closes: AtomicBool::new(false),
            writes: AtomicU64::new(0),
            write_blocked: AtomicBool::new(false),
            ticks: AtomicU64::new(0),
            bodies: (0..streams.max(1)).map(|_| AtomicU64::new(0)).collect(),
            overflow: AtomicUsize::new(0),
            overflow_tick: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Marks work as started; the guard marks it ended, however it ends.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Relaxed);
        self.begun.fetch_add(1, Relaxed);
        InFlight(self.clone())
    }

    /// Requests and response bodies begun so far.
    pub(crate) fn begun(&self) -> u64 {
        self.begun.load(Relaxed)
    }

    /// Whether closing the HTTP connection should leave the socket open.
    pub(crate) fn keeps_socket(&self) -> bool {
        self.keep_socket.load(Relaxed)
    }

    pub(crate) fn keep_socket(&self, keep: bool) {
        self.keep_socket.store(keep, Relaxed);
    }

    /// Whether a request asked for the connection to end after it (see
    /// `park::ends_keep_alive`).
    pub(crate) fn client_closes(&self) -> bool {
        self.client_closes.load(Relaxed)
    }

    pub(crate) fn set_client_closes(&self) {
        self.client_closes.store(true, Relaxed);
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

    /// Advances the watchdog's clock; returns the new tick.
    pub(crate) fn tick(&self) -> u64 {
        self.ticks.fetch_add(1, Relaxed) + 1
    }

    /// Whether the socket's last write had to wait, and the count of completed writes.
    pub(crate) fn socket(&self) -> (bool, u64) {
        (self.write_blocked.load(Relaxed), self.writes.load(Relaxed))
    }

    /// Whether some response body has been owed a poll, with no progress, for `limit`
    /// ticks or more.
    pub(crate) fn body_stalled(&self, now: u64, limit: u64) -> bool {
        let stale = |since: u64| now.saturating_sub(since) >= limit;
        self.bodies.iter().any(|slot| {
            let v = slot.load(Relaxed);
            v & 1 == 1 && stale((v >> 1) - 1)
        }) || (self.overflow.load(Relaxed) > 0 && stale(self.overflow_tick.load(Relaxed)))
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
    busy: InFlight,
    /// This body's slot in `Activity::bodies`, or `None` when it is counted in `overflow`.
    slot: Option<usize>,
    owed: bool,
}

impl<B> Tracked<B> {
    /// The body of the request whose in-flight mark is `busy`: the mark stays until the
    /// body is delivered or dropped (the request is in flight until then).
    pub fn new(inner: B, busy: InFlight) -> Tracked<B> {
        let activity = &busy.0;
        // Owed from the start: hyper is to poll a new body at once.
        let value = slot_value(activity.ticks.load(Relaxed), true);
        let slot = activity
            .bodies
            .iter()
            .position(|s| s.compare_exchange(0, value, Relaxed, Relaxed).is_ok());
        if slot.is_none() {
            activity.overflow.fetch_add(1, Relaxed);
            activity
                .overflow_tick
                .store(activity.ticks.load(Relaxed), Relaxed);
        }
        Tracked {
            inner,
            busy,
            slot,
            owed: true,
        }
    }

    /// Records progress, and whether the next frame is owed by the client's side.
    fn progress(&mut self, owed: bool) {
        let a = &self.busy.0;
        let tick = a.ticks.load(Relaxed);
        match self.slot {
            Some(i) => a.bodies[i].store(slot_value(tick, owed), Relaxed),
            None => {
                a.overflow_tick.store(tick, Relaxed);
                if owed != self.owed {
                    if owed {
                        a.overflow.fetch_add(1, Relaxed);
                    } else {
                        a.overflow.fetch_sub(1, Relaxed);
                    }
                }
            }
        }
        self.owed = owed;
    }
}

impl<B> Drop for Tracked<B> {
    fn drop(&mut self) {
        let a = &self.busy.0;
        match self.slot {
            Some(i) => a.bodies[i].store(0, Relaxed),
            None if self.owed => {
                a.overflow.fetch_sub(1, Relaxed);
            }
            None => {}
        }
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
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        // A frame handed over: the next one is owed by the client's side. Waiting on the
        // upstream, or finished: nothing is owed.
        self.progress(matches!(polled, Poll::Ready(Some(Ok(_)))));
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    /// Advances the watchdog's clock `n` ticks; returns the last.
    fn ticks(a: &Activity, n: usize) -> u64 {
        (0..n).fold(0, |_, _| a.tick())
    }

    fn body(a: &Arc<Activity>) -> Tracked<Full<bytes::Bytes>> {
        Tracked::new(Full::new(bytes::Bytes::from_static(b"x")), a.begin())
    }

    #[test]
    fn each_body_is_judged_on_its_own_progress() {
        let a = Arc::new(Activity::new(4));
        let stuck = body(&a);
        let mut moving = body(&a);
        for _ in 0..3 {
            let now = a.tick();
            // The other body keeps taking frames; the stuck one is never polled.
            moving.progress(true);
            assert!(!a.body_stalled(now, 4), "tick {now}");
        }
        let now = a.tick();
        moving.progress(true);
        assert!(
            a.body_stalled(now, 4),
            "a stuck body hid behind a moving one"
        );
        drop(stuck);
        assert!(!a.body_stalled(now, 4));
        // Waiting on the upstream is not the client's fault.
        moving.progress(false);
        assert!(!a.body_stalled(now + 100, 4));
        assert_eq!(a.in_flight.load(Relaxed), 1);
        drop(moving);
        assert_eq!(a.in_flight.load(Relaxed), 0);
        assert!(a.bodies.iter().all(|s| s.load(Relaxed) == 0));
    }

    #[test]
    fn bodies_beyond_the_slots_are_still_watched() {
        let a = Arc::new(Activity::new(1));
        let _first = body(&a);
        let second = body(&a);
        assert!(second.slot.is_none());
        let now = ticks(&a, 5);
        assert!(a.body_stalled(now, 4));
        drop(second);
        assert_eq!(a.overflow.load(Relaxed), 0);
    }

    #[tokio::test]
    async fn a_finished_body_owes_nothing() {
        let a = Arc::new(Activity::new(1));
        let mut b = body(&a);
        let _ = b.frame().await;
        let _ = b.frame().await;
        let now = ticks(&a, 10);
        assert!(!a.body_stalled(now, 4));
    }
}
