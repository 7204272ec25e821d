//! Packet captures written by code: TCP conversations (headers by etherparse) in classic
//! pcap or pcapng files, for the capture target's seeds and for the large-capture
//! measurement (`big-capture`). Only what tcpdump and dumpcap write: microsecond
//! timestamps, one interface.

use std::net::{IpAddr, SocketAddr};

use etherparse::PacketBuilder;

/// The link layer of the frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// DLT_EN10MB.
    Ethernet,
    /// BSD loopback: a 4-byte address family, then IP.
    Null,
    /// DLT_RAW: IP with no link header.
    RawIp,
}

impl Link {
    /// The link type number of the file headers.
    pub fn linktype(self) -> u16 {
        match self {
            Link::Ethernet => 1,
            Link::Null => 0,
            Link::RawIp => 101,
        }
    }
}

/// One captured frame and its time (µs since the epoch).
#[derive(Debug, Clone)]
pub struct Frame {
    pub ts_us: u64,
    pub data: Vec<u8>,
}

/// TCP flags of a segment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flags {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
}

/// One TCP segment from `src` to `dst`, framed for `link`. Mixed address families are
/// written as IPv4 (unspecified addresses).
pub fn segment(
    link: Link,
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    flags: Flags,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 80);
    if link == Link::Null {
        let family: u32 = if src.is_ipv6() { 30 } else { 2 };
        out.extend(family.to_le_bytes());
    }
    let (sp, dp) = (src.port(), dst.port());
    // Each builder step is its own type: one macro for the TCP part of every stack.
    macro_rules! tcp {
        ($b:expr) => {{
            let mut t = $b.tcp(sp, dp, seq, 65535);
            if flags.syn {
                t = t.syn();
            }
            if flags.ack {
                t = t.ack(ack);
            }
            if flags.fin {
                t = t.fin();
            }
            if flags.rst {
                t = t.rst();
            }
            // Writing into a Vec fails only when the payload is too large for one IP
            // packet; the callers send MSS-sized pieces.
            let _ = t.write(&mut out, payload);
        }};
    }
    let (smac, dmac) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    match (src.ip(), dst.ip(), link) {
        (IpAddr::V6(s), IpAddr::V6(d), Link::Ethernet) => {
            tcp!(PacketBuilder::ethernet2(smac, dmac).ipv6(s.octets(), d.octets(), 64))
        }
        (IpAddr::V6(s), IpAddr::V6(d), _) => tcp!(PacketBuilder::ipv6(s.octets(), d.octets(), 64)),
        (s, d, link) => {
            let v4 = |a: IpAddr| match a {
                IpAddr::V4(a) => a.octets(),
                IpAddr::V6(_) => [0; 4],
            };
            if link == Link::Ethernet {
                tcp!(PacketBuilder::ethernet2(smac, dmac).ipv4(v4(s), v4(d), 64))
            } else {
                tcp!(PacketBuilder::ipv4(v4(s), v4(d), 64))
            }
        }
    }
    out
}

/// A whole TCP connection: handshake, `exchange` (true: from the client) cut into
/// segments of at most 1400 bytes, each acknowledged, then FIN from the client and the
/// server. One millisecond between frames, from `t0_us`.
pub fn conversation(
    link: Link,
    client: SocketAddr,
    server: SocketAddr,
    exchange: &[(bool, Vec<u8>)],
    t0_us: u64,
) -> Vec<Frame> {
    let mut frames = Vec::new();
    let mut t = t0_us;
    let (mut cseq, mut sseq) = (1_000_000u32, 7_000_000u32);
    let mut push = |frames: &mut Vec<Frame>, data: Vec<u8>| {
        frames.push(Frame { ts_us: t, data });
        t += 1000;
    };
    let f = |syn, ack, fin| Flags {
        syn,
        ack,
        fin,
        rst: false,
    };
    push(
        &mut frames,
        segment(link, client, server, cseq, 0, f(true, false, false), &[]),
    );
    cseq = cseq.wrapping_add(1);
    push(
        &mut frames,
        segment(link, server, client, sseq, cseq, f(true, true, false), &[]),
    );
    sseq = sseq.wrapping_add(1);
    push(
        &mut frames,
        segment(link, client, server, cseq, sseq, f(false, true, false), &[]),
    );
    for (from_client, bytes) in exchange {
        for piece in bytes.chunks(1400) {
            let (src, dst, seq, ack) = if *from_client {
                (client, server, &mut cseq, sseq)
            } else {
                (server, client, &mut sseq, cseq)
            };
            push(
                &mut frames,
                segment(link, src, dst, *seq, ack, f(false, true, false), piece),
            );
            *seq = seq.wrapping_add(piece.len() as u32);
        }
    }
    push(
        &mut frames,
        segment(link, client, server, cseq, sseq, f(false, true, true), &[]),
    );
    cseq = cseq.wrapping_add(1);
    push(
        &mut frames,
        segment(link, server, client, sseq, cseq, f(false, true, true), &[]),
    );
    sseq = sseq.wrapping_add(1);
    push(
        &mut frames,
        segment(link, client, server, cseq, sseq, f(false, true, false), &[]),
    );
    frames
}

/// The classic pcap file header (microseconds, snaplen 262144), as tcpdump writes it.
pub fn pcap_header(link: Link) -> Vec<u8> {
    let mut out = Vec::with_capacity(24);
    out.extend(0xa1b2_c3d4u32.to_le_bytes());
    out.extend(2u16.to_le_bytes());
    out.extend(4u16.to_le_bytes());
    out.extend(0i32.to_le_bytes());
    out.extend(0u32.to_le_bytes());
    out.extend(262_144u32.to_le_bytes());
    out.extend(u32::from(link.linktype()).to_le_bytes());
    out
}

/// One classic pcap record.
pub fn pcap_record(out: &mut Vec<u8>, f: &Frame) {
    out.extend(((f.ts_us / 1_000_000) as u32).to_le_bytes());
    out.extend(((f.ts_us % 1_000_000) as u32).to_le_bytes());
    out.extend((f.data.len() as u32).to_le_bytes());
    out.extend((f.data.len() as u32).to_le_bytes());
    out.extend(&f.data);
}

/// A classic pcap file.
pub fn pcap(link: Link, frames: &[Frame]) -> Vec<u8> {
    let mut out = pcap_header(link);
    for f in frames {
        pcap_record(&mut out, f);
    }
    out
}

fn block(out: &mut Vec<u8>, kind: u32, body: &[u8]) {
    let pad = (4 - body.len() % 4) % 4;
    let len = (12 + body.len() + pad) as u32;
    out.extend(kind.to_le_bytes());
    out.extend(len.to_le_bytes());
    out.extend(body);
    out.extend(std::iter::repeat_n(0u8, pad));
    out.extend(len.to_le_bytes());
}

/// A pcapng file: a section header, one interface (microseconds), enhanced packets.
pub fn pcapng(link: Link, frames: &[Frame]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut shb = Vec::new();
    shb.extend(0x1a2b_3c4du32.to_le_bytes());
    shb.extend(1u16.to_le_bytes());
    shb.extend(0u16.to_le_bytes());
    shb.extend((-1i64).to_le_bytes());
    block(&mut out, 0x0a0d_0d0a, &shb);
    let mut idb = Vec::new();
    idb.extend(link.linktype().to_le_bytes());
    idb.extend(0u16.to_le_bytes());
    idb.extend(262_144u32.to_le_bytes());
    block(&mut out, 1, &idb);
    for f in frames {
        let mut epb = Vec::with_capacity(20 + f.data.len());
        epb.extend(0u32.to_le_bytes());
        epb.extend(((f.ts_us >> 32) as u32).to_le_bytes());
        epb.extend((f.ts_us as u32).to_le_bytes());
        epb.extend((f.data.len() as u32).to_le_bytes());
        epb.extend((f.data.len() as u32).to_le_bytes());
        epb.extend(&f.data);
        block(&mut out, 6, &epb);
    }
    out
}
