//! Captures whose packets race: the verdict must not depend on which side's FIN the
//! capture happened to see first.

use portcullis_doctor::capture;
use portcullis_fuzz::captures::{Link, conversation, pcap};
use portcullis_fuzz::seeds::{client_hello, fixtures};

fn record(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut r = vec![kind, 0x03, 0x03];
    r.extend((body.len() as u16).to_be_bytes());
    r.extend(body);
    r
}

fn handshake(kind: u8, body: &[u8]) -> Vec<u8> {
    let len = body.len();
    let mut h = vec![kind, (len >> 16) as u8, (len >> 8) as u8, len as u8];
    h.extend(body);
    h
}

fn u24(n: usize) -> [u8; 3] {
    [(n >> 16) as u8, (n >> 8) as u8, n as u8]
}

/// A TLS 1.2 server asks for a client certificate, gets an empty Certificate and answers
/// alert 116 (certificate_required, as OpenSSL 3 does). `conversation` closes the client's
/// side first: curl closing the moment it reads the alert, before the server's FIN, as a
/// real capture of `doctor_capture::client_certificate_required` sometimes shows. The
/// client closing first used to read as the client refusing the server's chain.
#[test]
fn a_server_alert_ends_the_handshake_whoever_closes_first() {
    let mut hello = vec![0x03, 0x03];
    hello.extend([7u8; 32]);
    hello.extend([0x00, 0xc0, 0x2c, 0x00]); // no session id, ECDHE-ECDSA-AES256-GCM-SHA384
    let der = &fixtures().root;
    let mut list = u24(der.len()).to_vec();
    list.extend(der);
    let mut certificate = u24(list.len()).to_vec();
    certificate.extend(list);
    // Type ecdsa_sign; one signature algorithm; no CA names.
    let request = [0x01, 0x40, 0x00, 0x02, 0x04, 0x03, 0x00, 0x00];
    let flight = [
        handshake(0x02, &hello),
        handshake(0x0b, &certificate),
        handshake(0x0d, &request),
        handshake(0x0e, &[]),
    ]
    .concat();
    let mut answer = handshake(0x0b, &[0, 0, 0]); // an empty Certificate
    answer.extend(handshake(0x10, &[32; 33])); // ClientKeyExchange
    let exchange = [
        (true, client_hello()),
        (false, record(0x16, &flight)),
        (true, record(0x16, &answer)),
        (true, record(0x14, &[1])),
        (true, record(0x16, &[0x55; 40])), // Finished, encrypted
        (false, record(0x15, &[2, 116])),
    ];
    // Now: the fixtures' certificate is valid.
    let now_us = std::time::SystemTime::UNIX_EPOCH
        .elapsed()
        .unwrap()
        .as_micros() as u64;
    let client = "127.0.0.1:40000".parse().unwrap();
    let server = "127.0.0.1:8443".parse().unwrap();
    let file = pcap(
        Link::Ethernet,
        &conversation(Link::Ethernet, client, server, &exchange, now_us),
    );
    let options = capture::Options {
        ca: None,
        ca_files: Vec::new(),
        keylog: None,
    };
    let report = capture::judge(capture::extract(file.as_slice()).unwrap(), "race", &options);
    let [c] = &report.connections[..] else {
        panic!("one connection: {report:#?}");
    };
    assert_eq!(c.facts.closed_by, "client (FIN)", "{report:#?}");
    assert_eq!(c.cause, "client-cert-required", "{report:#?}");
}
