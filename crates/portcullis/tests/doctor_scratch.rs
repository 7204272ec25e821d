#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
mod doctor_support;
use common::Sandbox;
use doctor_support::*;
use portcullis_pki::Kind;
#[test]
fn scratch() {
    let sb = Sandbox::new();
    let ca = root("SNI Root");
    let leaf = make(Make {
        sans: vec![dns("localhost")],
        issuer: Some(&ca),
        ..Make::new(Kind::Server, "localhost")
    });
    std::fs::write(sb.path("ca.pem"), ca.pem()).unwrap();
    let port = Server {
        sni_only: Some("localhost"),
        ..Server::new(&leaf)
    }
    .start();
    let out = sb.run(&[
        "doctor",
        &format!("127.0.0.1:{port}"),
        "--ca",
        "ca.pem",
        "-v",
    ]);
    println!("{}", common::text(&out));
    let out = sb.run(&[
        "doctor",
        &format!("127.0.0.1:{port}"),
        "--ca",
        "ca.pem",
        "--compare",
    ]);
    println!("{}", common::text(&out));
    let other = root("Other");
    std::fs::write(sb.path("o.pem"), other.pem()).unwrap();
    let out = sb.run(&[
        "doctor",
        &format!("127.0.0.1:{port}"),
        "--ca",
        "o.pem",
        "--servername",
        "localhost",
    ]);
    println!("{}", common::text(&out));
    let clients = root("Clients CA");
    let port = Server {
        client_ca: Some(&clients),
        ..Server::new(&leaf)
    }
    .start();
    let out = sb.run(&[
        "doctor",
        &format!("localhost:{port}"),
        "--ca",
        "ca.pem",
        "-v",
    ]);
    println!("{}", common::text(&out));
}
