//! Writes a large capture for measuring `portcullis doctor capture`:
//! `big-capture INPUT OUTPUT [MEGABYTES] [CONCURRENT]` reads the TCP segments of INPUT
//! (a real capture, typically one recorded TLS connection), and writes them again to
//! OUTPUT (classic pcap, Ethernet) as many times as it takes to reach MEGABYTES (100),
//! each copy from another client address and port, CONCURRENT (64) copies interleaved
//! packet by packet, as a busy server's capture would. See docs/doctor.md.

use std::io::{BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use portcullis_doctor::capture::reader;
use portcullis_fuzz::captures::{Flags, Frame, Link, pcap_header, pcap_record, segment};

/// One segment of the recorded connection.
struct Seg {
    ts_us: u64,
    from_client: bool,
    seq: u32,
    flags: Flags,
    payload: Vec<u8>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: big-capture INPUT OUTPUT [MEGABYTES] [CONCURRENT]");
        std::process::exit(2);
    }
    let megabytes: u64 = args.get(3).map_or(Ok(100), |a| a.parse())?;
    let concurrent: usize = args.get(4).map_or(Ok(64), |a| a.parse())?;
    let input = std::fs::File::open(&args[1])?;
    let mut segs = Vec::new();
    let mut ends: Option<(SocketAddr, SocketAddr)> = None;
    reader::read(std::io::BufReader::new(input), |s| {
        let (client, _) = *ends.get_or_insert((s.src, s.dst));
        segs.push(Seg {
            ts_us: s.ts_us,
            from_client: s.src == client,
            seq: s.seq,
            flags: Flags {
                syn: s.syn,
                ack: s.ack,
                fin: s.fin,
                rst: s.rst,
            },
            payload: s.payload.to_vec(),
        });
    })?;
    let Some((_, server)) = ends else {
        return Err("no TCP segment in the input".into());
    };
    let t0 = segs.first().map_or(0, |s| s.ts_us);
    let span = segs.last().map_or(0, |s| s.ts_us) - t0;
    let target = megabytes * 1_000_000;
    let mut out = BufWriter::new(std::fs::File::create(&args[2])?);
    out.write_all(&pcap_header(Link::Ethernet))?;
    let mut written = 24u64;
    let mut copies = 0u64;
    let mut packets = 0u64;
    let mut buf = Vec::new();
    // Rounds of `concurrent` copies, their packets interleaved in time order.
    while written < target {
        let round = copies;
        for (k, s) in segs.iter().enumerate() {
            for j in 0..concurrent as u64 {
                let i = round + j;
                let client = SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8)),
                    20_000 + (i % 40_000) as u16,
                );
                let (src, dst) = if s.from_client {
                    (client, server)
                } else {
                    (server, client)
                };
                // Rounds follow one another; within one, copies start 10 µs apart.
                let ts = t0 + (round / concurrent as u64) * (span + 1000) + j * 10 + (s.ts_us - t0);
                let ack = 0; // the reader does not use acknowledgment numbers
                let f = Frame {
                    ts_us: ts + k as u64,
                    data: segment(Link::Ethernet, src, dst, s.seq, ack, s.flags, &s.payload),
                };
                buf.clear();
                pcap_record(&mut buf, &f);
                out.write_all(&buf)?;
                written += buf.len() as u64;
                packets += 1;
            }
        }
        copies += concurrent as u64;
    }
    out.flush()?;
    println!(
        "{}: {copies} connections to {server}, {packets} packets, {written} bytes",
        args[2]
    );
    Ok(())
}
