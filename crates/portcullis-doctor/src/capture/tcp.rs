//! TCP reassembly, both directions of each connection: segments out of order are held
//! until the bytes before them arrive, retransmitted and overlapping bytes are kept once
//! (the first copy wins), and a hole that never fills is reported as a gap where the
//! stream stops (nothing after it is guessed). Bounded: each direction keeps at most
//! [`KEEP`] bytes and holds at most [`PENDING`] bytes out of order; all flows together
//! hold at most [`GLOBAL`] bytes; a connection is handed over (and its memory freed) as
//! soon as it is closed.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use super::reader::Segment;

/// Bytes kept per direction: a TLS handshake with a long chain fits many times over.
pub const KEEP: usize = 128 * 1024;
/// Bytes held out of order per direction.
pub const PENDING: usize = 256 * 1024;
/// Bytes held by all open connections together.
pub const GLOBAL: usize = 256 * 1024 * 1024;
/// Arrival marks kept per direction (to date each record).
const MARKS: usize = 512;
/// Open connections tracked at once; more are counted and ignored.
pub const MAX_FLOWS: usize = 200_000;

/// The bounds, [`KEEP`], [`PENDING`], [`GLOBAL`] and [`MAX_FLOWS`] by default; smaller
/// ones let a fuzzer reach them with small inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub keep: usize,
    pub pending: usize,
    pub global: usize,
    pub max_flows: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            keep: KEEP,
            pending: PENDING,
            global: GLOBAL,
            max_flows: MAX_FLOWS,
        }
    }
}

/// One direction of a connection, reassembled.
#[derive(Debug, Clone, Default)]
pub struct Stream {
    /// The contiguous bytes from the start of the stream (at most [`KEEP`]).
    pub data: Vec<u8>,
    /// Total contiguous bytes seen (may exceed `data.len()`).
    pub total: u64,
    /// (stream offset reached, time in µs): when the contiguous stream grew to each length.
    pub marks: Vec<(u64, u64)>,
    pub syn_us: Option<u64>,
    /// FIN: when, and at which offset.
    pub fin: Option<(u64, u64)>,
    pub rst_us: Option<u64>,
    /// Where bytes are missing: the offset the stream stops at, and how many bytes
    /// are missing before the next ones seen (0 when unknown: the end never came).
    pub gap: Option<(u64, u64)>,
    /// Bytes seen more than once (retransmissions, overlaps).
    pub repeated: u64,
    /// Data dropped for the memory bounds.
    pub clipped: bool,
    pub first_us: Option<u64>,
}

impl Stream {
    /// When the byte at `offset - 1` had arrived (the end of something `offset` long).
    pub fn time_at(&self, offset: u64) -> Option<u64> {
        self.marks
            .iter()
            .find(|(end, _)| *end >= offset)
            .map(|(_, t)| *t)
    }
}

/// A connection: the client (who sent the SYN, else the first packet) and the server.
#[derive(Debug, Clone)]
pub struct Conn {
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// The client's SYN was seen (the capture started before the connection).
    pub syn_seen: bool,
    pub synack_seen: bool,
    pub start_us: u64,
    pub end_us: u64,
    /// client → server, server → client.
    pub up: Stream,
    pub down: Stream,
}

#[derive(Debug)]
struct Dir {
    s: Stream,
    /// Sequence number of stream offset 0.
    base: Option<u32>,
    pending: BTreeMap<u64, Vec<u8>>,
    pending_bytes: usize,
    keep: usize,
    pending_max: usize,
}

impl Dir {
    fn new(limits: &Limits) -> Dir {
        Dir {
            s: Stream::default(),
            base: None,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            keep: limits.keep,
            pending_max: limits.pending,
        }
    }

    /// Bytes this direction holds in memory.
    fn held(&self) -> usize {
        self.s.data.len() + self.pending_bytes
    }

    /// The stream offset of `seq`, relative to what is already assembled (so a stream
    /// longer than 4 GiB still works).
    fn offset(&self, base: u32, seq: u32) -> i64 {
        let next_seq = base.wrapping_add(self.s.total as u32);
        self.s.total as i64 + i64::from(seq.wrapping_sub(next_seq) as i32)
    }

    fn segment(&mut self, seg: &Segment<'_>, budget: &mut usize) {
        let ts = seg.ts_us;
        self.s.first_us.get_or_insert(ts);
        if seg.syn {
            self.s.syn_us.get_or_insert(ts);
            if self.base.is_none() {
                self.base = Some(seg.seq.wrapping_add(1));
            }
        }
        if seg.rst {
            self.s.rst_us.get_or_insert(ts);
        }
        let data_seq = if seg.syn {
            seg.seq.wrapping_add(1)
        } else {
            seg.seq
        };
        let base = *self.base.get_or_insert(data_seq);
        let at = self.offset(base, data_seq);
        if seg.fin && self.s.fin.is_none() {
            let end = at + seg.payload.len() as i64;
            self.s.fin = Some((ts, end.max(0) as u64));
        }
        if seg.payload.is_empty() {
            return;
        }
        let total = self.s.total as i64;
        let end = at + seg.payload.len() as i64;
        if end <= total {
            self.s.repeated += seg.payload.len() as u64;
            return;
        }
        let skip = (total - at).max(0) as usize;
        let bytes = &seg.payload[skip..];
        self.s.repeated += skip as u64;
        let at = at.max(total) as u64;
        if at == self.s.total {
            self.append(bytes, ts, budget);
            self.drain(ts, budget);
        } else if self.pending_bytes + bytes.len() <= self.pending_max && bytes.len() <= *budget {
            // Out of order: hold it; a longer copy at the same offset replaces a shorter.
            let keep = match self.pending.get(&at) {
                Some(old) if old.len() >= bytes.len() => false,
                Some(old) => {
                    self.pending_bytes -= old.len();
                    *budget += old.len();
                    true
                }
                None => true,
            };
            if keep {
                self.pending_bytes += bytes.len();
                *budget -= bytes.len();
                self.pending.insert(at, bytes.to_vec());
            } else {
                self.s.repeated += bytes.len() as u64;
            }
        } else {
            self.s.clipped = true;
        }
    }

    fn append(&mut self, bytes: &[u8], ts: u64, budget: &mut usize) {
        let room = self.keep.saturating_sub(self.s.data.len()).min(*budget);
        let take = room.min(bytes.len());
        self.s.data.extend_from_slice(&bytes[..take]);
        *budget -= take;
        if take < bytes.len() {
            self.s.clipped = true;
        }
        self.s.total += bytes.len() as u64;
        if self.s.marks.len() < MARKS {
            self.s.marks.push((self.s.total, ts));
        } else if let Some(last) = self.s.marks.last_mut() {
            *last = (self.s.total, ts);
        }
    }

    /// Appends held segments that now fit, trimming what overlaps.
    fn drain(&mut self, ts: u64, budget: &mut usize) {
        while let Some((&at, _)) = self.pending.first_key_value() {
            if at > self.s.total {
                break;
            }
            let Some(bytes) = self.pending.remove(&at) else {
                break;
            };
            self.pending_bytes -= bytes.len();
            *budget += bytes.len();
            let skip = (self.s.total - at) as usize;
            if skip >= bytes.len() {
                self.s.repeated += bytes.len() as u64;
                continue;
            }
            self.s.repeated += skip as u64;
            self.append(&bytes[skip..], ts, budget);
        }
    }

    fn finish(mut self, budget: &mut usize) -> Stream {
        if let Some((&at, _)) = self.pending.first_key_value() {
            self.s.gap = Some((self.s.total, at - self.s.total));
        } else if let Some((_, fin_at)) = self.s.fin
            && fin_at > self.s.total
        {
            self.s.gap = Some((self.s.total, fin_at - self.s.total));
        }
        *budget += self.held();
        self.s
    }
}

#[derive(Debug)]
struct Flow {
    client: SocketAddr,
    server: SocketAddr,
    syn_seen: bool,
    synack_seen: bool,
    start_us: u64,
    end_us: u64,
    up: Dir,
    down: Dir,
}

impl Flow {
    fn closed(&self) -> bool {
        let done = |d: &Dir| d.s.fin.is_some() || d.s.rst_us.is_some();
        (self.up.s.rst_us.is_some() || self.down.s.rst_us.is_some())
            || (done(&self.up) && done(&self.down))
    }

    fn finish(self, budget: &mut usize) -> Conn {
        Conn {
            client: self.client,
            server: self.server,
            syn_seen: self.syn_seen,
            synack_seen: self.synack_seen,
            start_us: self.start_us,
            end_us: self.end_us,
            up: self.up.finish(budget),
            down: self.down.finish(budget),
        }
    }
}

/// Reassembles connections from segments; hands each over when it closes (or at the end).
#[derive(Debug)]
pub struct Reassembler {
    flows: HashMap<(SocketAddr, SocketAddr), Flow>,
    /// Bytes all open flows may still take.
    budget: usize,
    /// Connections not tracked because [`MAX_FLOWS`] were open.
    pub untracked: u64,
    /// Connections whose data exceeded a memory bound.
    pub clipped_flows: u64,
    limits: Limits,
}

impl Default for Reassembler {
    fn default() -> Self {
        Reassembler::with_limits(Limits::default())
    }
}

fn key(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    if a <= b { (a, b) } else { (b, a) }
}

impl Reassembler {
    pub fn with_limits(limits: Limits) -> Reassembler {
        Reassembler {
            flows: HashMap::new(),
            budget: limits.global,
            untracked: 0,
            clipped_flows: 0,
            limits,
        }
    }

    /// Bytes the open connections hold (kept and out of order), counted flow by flow.
    pub fn held(&self) -> usize {
        self.flows
            .values()
            .map(|f| f.up.held() + f.down.held())
            .sum()
    }

    /// What the global budget says is held: equals [`Reassembler::held`] when the
    /// accounting is right.
    pub fn accounted(&self) -> usize {
        self.limits.global.saturating_sub(self.budget)
    }

    /// The most held by one direction, kept and out of order.
    pub fn largest(&self) -> (usize, usize) {
        self.flows.values().fold((0, 0), |(k, p), f| {
            (
                k.max(f.up.s.data.len()).max(f.down.s.data.len()),
                p.max(f.up.pending_bytes).max(f.down.pending_bytes),
            )
        })
    }

    pub fn open(&self) -> usize {
        self.flows.len()
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Adds one segment; `done` receives a connection that just closed.
    pub fn segment(&mut self, seg: Segment<'_>, done: &mut impl FnMut(Conn)) {
        let k = key(seg.src, seg.dst);
        // A new SYN on a finished 4-tuple starts a new connection (port reuse).
        if seg.syn
            && !seg.ack
            && let Some(f) = self.flows.get(&k)
            && (f.closed()
                || (f.client == seg.src
                    && f.up.s.syn_us.is_some()
                    && f.up.base != Some(seg.seq.wrapping_add(1))))
            && let Some(f) = self.flows.remove(&k)
        {
            done(f.finish(&mut self.budget));
        }
        if !self.flows.contains_key(&k) {
            if !seg.syn && seg.payload.is_empty() {
                return; // a stray ACK, FIN or RST of a connection we did not see
            }
            if self.flows.len() >= self.limits.max_flows {
                self.untracked += 1;
                return;
            }
            // The SYN's sender is the client; a SYN-ACK's receiver; else the sender of
            // the first data we see (a capture started mid-connection).
            let (client, server) = if seg.syn && seg.ack {
                (seg.dst, seg.src)
            } else {
                (seg.src, seg.dst)
            };
            self.flows.insert(
                k,
                Flow {
                    client,
                    server,
                    syn_seen: false,
                    synack_seen: false,
                    start_us: seg.ts_us,
                    end_us: seg.ts_us,
                    up: Dir::new(&self.limits),
                    down: Dir::new(&self.limits),
                },
            );
        }
        let Some(flow) = self.flows.get_mut(&k) else {
            return;
        };
        flow.end_us = flow.end_us.max(seg.ts_us);
        if seg.syn && !seg.ack && seg.src == flow.client {
            flow.syn_seen = true;
        }
        if seg.syn && seg.ack && seg.src == flow.server {
            flow.synack_seen = true;
        }
        let was_clipped = flow.up.s.clipped || flow.down.s.clipped;
        if seg.src == flow.client {
            flow.up.segment(&seg, &mut self.budget);
        } else {
            flow.down.segment(&seg, &mut self.budget);
        }
        if !was_clipped && (flow.up.s.clipped || flow.down.s.clipped) {
            self.clipped_flows += 1;
        }
        if flow.closed()
            && let Some(f) = self.flows.remove(&k)
        {
            done(f.finish(&mut self.budget));
        }
    }

    /// Hands over every connection still open, oldest first.
    pub fn finish(mut self, done: &mut impl FnMut(Conn)) {
        let mut rest: Vec<Flow> = self.flows.drain().map(|(_, f)| f).collect();
        rest.sort_by_key(|f| f.start_us);
        for f in rest {
            done(f.finish(&mut self.budget));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(
        src: &str,
        dst: &str,
        seq: u32,
        flags: &str,
        payload: &[u8],
        ts: u64,
    ) -> Segment<'static> {
        Segment {
            ts_us: ts,
            src: src.parse().unwrap_or_else(|_| unreachable!()),
            dst: dst.parse().unwrap_or_else(|_| unreachable!()),
            seq,
            syn: flags.contains('S'),
            ack: flags.contains('A'),
            fin: flags.contains('F'),
            rst: flags.contains('R'),
            payload: Box::leak(payload.to_vec().into_boxed_slice()),
        }
    }

    const C: &str = "10.0.0.1:5000";
    const S: &str = "10.0.0.2:443";

    fn run(segs: Vec<Segment<'static>>) -> Vec<Conn> {
        let mut r = Reassembler::default();
        let mut out = Vec::new();
        for s in segs {
            r.segment(s, &mut |c| out.push(c));
        }
        r.finish(&mut |c| out.push(c));
        out
    }

    #[test]
    fn out_of_order_retransmitted_and_overlapping_segments() {
        // ISN 0xfffffff0: the sequence numbers wrap around inside the stream.
        let isn = 0xffff_fff0u32;
        let c = run(vec![
            seg(C, S, isn, "S", b"", 1),
            seg(S, C, 7, "SA", b"", 2),
            seg(C, S, isn.wrapping_add(7), "A", b"world", 4), // early
            seg(C, S, isn.wrapping_add(1), "A", b"hel", 5),
            seg(C, S, isn.wrapping_add(1), "A", b"hel", 6), // retransmitted
            seg(C, S, isn.wrapping_add(3), "A", b"llo wo", 7), // overlaps both sides
            seg(C, S, isn.wrapping_add(12), "AF", b"!", 8),
            seg(S, C, 8, "AF", b"", 9),
        ]);
        assert_eq!(c.len(), 1);
        let c = &c[0];
        assert_eq!(c.client, C.parse().unwrap_or_else(|_| unreachable!()));
        assert_eq!(c.up.data, b"hello world!");
        assert!(c.up.gap.is_none());
        assert!(c.up.repeated >= 3);
        assert_eq!(c.up.time_at(12), Some(8));
        assert!(c.syn_seen && c.synack_seen);
    }

    #[test]
    fn a_hole_is_a_gap_not_a_guess() {
        let c = run(vec![
            seg(C, S, 100, "S", b"", 1),
            seg(C, S, 101, "A", b"abc", 2),
            seg(C, S, 110, "A", b"xyz", 3),
        ]);
        assert_eq!(c[0].up.data, b"abc");
        assert_eq!(c[0].up.gap, Some((3, 6)));
    }

    #[test]
    fn a_reset_closes_and_port_reuse_starts_a_new_connection() {
        let c = run(vec![
            seg(C, S, 100, "S", b"", 1),
            seg(S, C, 0, "RA", b"", 2),
            seg(C, S, 5000, "S", b"", 3),
            seg(C, S, 5001, "A", b"x", 4),
        ]);
        assert_eq!(c.len(), 2);
        assert!(c[0].down.rst_us.is_some());
        assert_eq!(c[1].up.data, b"x");
    }

    #[test]
    fn memory_is_bounded_per_direction() {
        let mut segs = vec![seg(C, S, 0, "S", b"", 1)];
        let chunk = vec![7u8; 1400];
        let mut seq = 1u32;
        for i in 0..200 {
            segs.push(seg(C, S, seq, "A", &chunk, 2 + i));
            seq = seq.wrapping_add(1400);
        }
        let c = run(segs);
        assert_eq!(c[0].up.data.len(), KEEP);
        assert_eq!(c[0].up.total, 200 * 1400);
        assert!(c[0].up.clipped);
    }
}
