//! A capture with thousands of TLS connections, written by code: every one gets a
//! verdict, and the reassembler's memory stays bounded by what is open at once, not by
//! the size of the file. (Peak RSS and time on a 100 MB capture are measured, not tested:
//! docs/doctor.md, "A large capture".)

use portcullis_doctor::capture::{self, reader, tcp};
use portcullis_fuzz::captures::{Frame, Link, conversation, pcap};
use portcullis_fuzz::seeds::{client_hello, server_hello};

const CONNECTIONS: usize = 3000;
const AT_ONCE: usize = 50;

/// CONNECTIONS connections to one server, AT_ONCE of them interleaved packet by packet.
fn many() -> Vec<u8> {
    let server = "10.0.0.2:443".parse().unwrap_or_else(|_| unreachable!());
    let exchange = [(true, client_hello()), (false, server_hello())];
    let mut frames: Vec<Frame> = Vec::new();
    for round in 0..CONNECTIONS / AT_ONCE {
        let convs: Vec<Vec<Frame>> = (0..AT_ONCE)
            .map(|j| {
                let i = round * AT_ONCE + j;
                let client = format!("10.1.{}.{}:{}", i / 250, i % 250, 20_000 + i)
                    .parse()
                    .unwrap_or_else(|_| unreachable!());
                conversation(
                    Link::Ethernet,
                    client,
                    server,
                    &exchange,
                    (round as u64) << 20,
                )
            })
            .collect();
        for k in 0..convs[0].len() {
            frames.extend(convs.iter().map(|c| c[k].clone()));
        }
    }
    pcap(Link::Ethernet, &frames)
}

#[test]
fn thousands_of_connections_each_get_a_verdict_in_bounded_memory() {
    let file = many();
    let (mut most_open, mut most_held) = (0, 0);
    let mut r = tcp::Reassembler::default();
    let mut closed = 0;
    let stats = reader::read(file.as_slice(), |seg| {
        r.segment(seg, &mut |_| closed += 1);
        most_open = most_open.max(r.open());
        most_held = most_held.max(r.held());
        assert_eq!(r.held(), r.accounted());
    })
    .unwrap_or_else(|e| panic!("{e}"));
    r.finish(&mut |_| closed += 1);
    assert_eq!(closed, CONNECTIONS);
    assert!(most_open <= AT_ONCE, "{most_open} connections open at once");
    let per_conn = client_hello().len() + server_hello().len();
    assert!(
        most_held <= AT_ONCE * per_conn,
        "{most_held} bytes held for {AT_ONCE} open connections of {per_conn} bytes"
    );
    assert_eq!(stats.packets as usize, CONNECTIONS * 8);

    let report = capture::read(file.as_slice(), "many.pcap", &Default::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.connections.len(), CONNECTIONS);
    assert_eq!(report.summary.unjudged_connections, 0);
    assert!(
        report
            .connections
            .iter()
            .all(|c| c.sni.as_deref() == Some("api.example"))
    );
}
