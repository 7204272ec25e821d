//! Capture files to TCP segments: pcap and pcapng (pcap-parser), link layers (Ethernet,
//! Linux cooked v1 and v2, BSD loopback/null, raw IP) and IPv4/IPv6/TCP headers
//! (etherparse). Streaming: one block in memory at a time.

use std::io::Read;
use std::net::{IpAddr, SocketAddr};

use etherparse::{EtherType, LaxNetSlice, LaxSlicedPacket, LinuxSllProtocolType, TransportSlice};
use pcap_parser::{Block, Linktype, PcapBlockOwned, PcapError};

use super::CaptureError;

/// One TCP segment as captured.
#[derive(Debug, Clone)]
pub struct Segment<'a> {
    /// Microseconds since the Unix epoch.
    pub ts_us: u64,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
    pub payload: &'a [u8],
}

/// What the reader saw besides TCP segments.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReadStats {
    /// `pcap` or `pcapng`.
    pub format: String,
    pub packets: u64,
    pub tcp_segments: u64,
    /// Packets of other protocols, of unsupported link types, or that did not decode.
    pub other_packets: u64,
    /// Link types seen that the reader does not decode (numbers from the tcpdump registry).
    pub unsupported_link_types: Vec<i32>,
    /// The file ended in the middle of a block (a capture stopped abruptly).
    pub truncated: bool,
    /// A block that did not parse ended the reading early (what came before is used).
    pub malformed: Option<String>,
}

/// The reader's buffer: big enough for any packet tcpdump writes (snaplen 262144), and the
/// most it grows to for one block.
const START_BUFFER: usize = 1 << 16;
const MAX_BUFFER: usize = 1 << 20;

/// Per pcapng interface: link type, timestamp units per second and offset (seconds).
#[derive(Debug, Clone, Copy)]
struct Interface {
    linktype: Linktype,
    resolution: u64,
    offset: i64,
}

/// Reads every packet of a pcap or pcapng stream and calls `each` with its TCP segments.
pub fn read(
    input: impl Read,
    mut each: impl FnMut(Segment<'_>),
) -> Result<ReadStats, CaptureError> {
    let mut reader = match pcap_parser::create_reader(START_BUFFER, input) {
        Ok(r) => r,
        Err(PcapError::Eof) => return Err(CaptureError::NotACapture("the file is empty".into())),
        Err(PcapError::ReadError) => return Err(CaptureError::NotACapture("read error".into())),
        Err(e) => {
            return Err(CaptureError::NotACapture(format!(
                "neither pcap nor pcapng ({})",
                short(&e)
            )));
        }
    };
    let mut stats = ReadStats::default();
    let mut capacity = START_BUFFER;
    // Legacy pcap: one link type for the file, microseconds or nanoseconds.
    let mut legacy: Option<(Linktype, bool)> = None;
    let mut interfaces: Vec<Interface> = Vec::new();
    let mut last_ts = 0u64;
    loop {
        match reader.next() {
            Ok((offset, block)) => {
                match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        stats.format = "pcap".into();
                        legacy = Some((h.network, h.is_nanosecond_precision()));
                    }
                    PcapBlockOwned::Legacy(b) => {
                        stats.packets += 1;
                        let (linktype, nanos) = legacy.unwrap_or((Linktype(1), false));
                        let frac = if nanos {
                            u64::from(b.ts_usec) / 1000
                        } else {
                            u64::from(b.ts_usec)
                        };
                        last_ts = u64::from(b.ts_sec) * 1_000_000 + frac;
                        packet(linktype, b.data, last_ts, &mut stats, &mut each);
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => {
                        stats.format = "pcapng".into();
                        // Interface numbers restart in each section.
                        interfaces.clear();
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(i)) => {
                        interfaces.push(Interface {
                            linktype: i.linktype,
                            resolution: i.ts_resolution().unwrap_or(1_000_000).max(1),
                            offset: i.ts_offset(),
                        });
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(p)) => {
                        stats.packets += 1;
                        match interfaces.get(p.if_id as usize).copied() {
                            Some(i) => {
                                let units = (u64::from(p.ts_high) << 32) | u64::from(p.ts_low);
                                let us = u128::from(units) * 1_000_000 / u128::from(i.resolution);
                                let us = (us as i128 + i128::from(i.offset) * 1_000_000).max(0);
                                last_ts = u64::try_from(us).unwrap_or(u64::MAX);
                                let data = p.data.get(..p.caplen as usize).unwrap_or(p.data);
                                packet(i.linktype, data, last_ts, &mut stats, &mut each);
                            }
                            None => stats.other_packets += 1,
                        }
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(p)) => {
                        stats.packets += 1;
                        match interfaces.first().copied() {
                            Some(i) => packet(i.linktype, p.data, last_ts, &mut stats, &mut each),
                            None => stats.other_packets += 1,
                        }
                    }
                    PcapBlockOwned::NG(_) => {}
                }
                reader.consume(offset);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => {
                if reader.reader_exhausted() {
                    stats.truncated = true;
                    break;
                }
                let before = reader.data().len();
                if let Err(e) = reader.refill() {
                    stats.malformed = Some(short(&e));
                    break;
                }
                if reader.data().len() == before && !reader.reader_exhausted() {
                    // The buffer is full and the block still incomplete: grow, within bounds.
                    if capacity >= MAX_BUFFER || !reader.grow(capacity * 2) {
                        stats.malformed = Some(format!("a block larger than {} bytes", MAX_BUFFER));
                        break;
                    }
                    capacity *= 2;
                }
            }
            Err(e) => {
                stats.malformed = Some(short(&e));
                break;
            }
        }
    }
    if stats.packets == 0
        && let Some(m) = &stats.malformed
    {
        return Err(CaptureError::NotACapture(format!(
            "no packet could be read: {m}"
        )));
    }
    Ok(stats)
}

fn short<I>(e: &PcapError<I>) -> String {
    match e {
        PcapError::Eof => "end of file".into(),
        PcapError::BufferTooSmall => "a block too large".into(),
        PcapError::UnexpectedEof => "unexpected end of file".into(),
        PcapError::ReadError => "read error".into(),
        PcapError::Incomplete(_) => "incomplete block".into(),
        PcapError::HeaderNotRecognized => "header not recognized".into(),
        PcapError::NomError(_, k) | PcapError::OwnedNomError(_, k) => {
            format!("malformed block ({k:?})")
        }
    }
}

/// Decodes one packet of `linktype` down to TCP.
fn packet(
    linktype: Linktype,
    data: &[u8],
    ts_us: u64,
    stats: &mut ReadStats,
    each: &mut impl FnMut(Segment<'_>),
) {
    let sliced = match linktype.0 {
        // DLT_EN10MB
        1 => LaxSlicedPacket::from_ethernet(data).ok(),
        // DLT_NULL and DLT_LOOP: a 4-byte address family, then IP (the version nibble
        // tells v4 from v6, whatever the family's byte order).
        0 | 108 => data.get(4..).and_then(|d| LaxSlicedPacket::from_ip(d).ok()),
        // Raw IP (DLT_RAW has two numbers), LINKTYPE_IPV4, LINKTYPE_IPV6.
        101 | 12 | 14 | 228 | 229 => LaxSlicedPacket::from_ip(data).ok(),
        // Linux cooked capture v1 (`tcpdump -i any`).
        113 => etherparse::LinuxSllSlice::from_slice(data)
            .ok()
            .and_then(|s| match s.protocol_type() {
                LinuxSllProtocolType::EtherType(t) => {
                    Some(LaxSlicedPacket::from_ether_type(t, s.payload_slice()))
                }
                _ => None,
            }),
        // Linux cooked capture v2: protocol type in the first two bytes, 20-byte header.
        276 => match (data.get(..2), data.get(20..)) {
            (Some(t), Some(rest)) => Some(LaxSlicedPacket::from_ether_type(
                EtherType(u16::from_be_bytes([t[0], t[1]])),
                rest,
            )),
            _ => None,
        },
        other => {
            if !stats.unsupported_link_types.contains(&other)
                && stats.unsupported_link_types.len() < 16
            {
                stats.unsupported_link_types.push(other);
            }
            None
        }
    };
    let Some(p) = sliced else {
        stats.other_packets += 1;
        return;
    };
    let (src, dst): (IpAddr, IpAddr) = match &p.net {
        Some(LaxNetSlice::Ipv4(v)) => (
            v.header().source_addr().into(),
            v.header().destination_addr().into(),
        ),
        Some(LaxNetSlice::Ipv6(v)) => (
            v.header().source_addr().into(),
            v.header().destination_addr().into(),
        ),
        _ => {
            stats.other_packets += 1;
            return;
        }
    };
    let Some(TransportSlice::Tcp(tcp)) = &p.transport else {
        stats.other_packets += 1;
        return;
    };
    stats.tcp_segments += 1;
    each(Segment {
        ts_us,
        src: SocketAddr::new(src, tcp.source_port()),
        dst: SocketAddr::new(dst, tcp.destination_port()),
        seq: tcp.sequence_number(),
        syn: tcp.syn(),
        ack: tcp.ack(),
        fin: tcp.fin(),
        rst: tcp.rst(),
        payload: tcp.payload(),
    });
}
