//! The CA directory under concurrent use, as an operator's scripts would use it: many
//! `portcullis pki` commands at once, and commands killed at random moments. Nothing that
//! was acknowledged may be lost, CRL numbers never repeat, and the directory stays
//! consistent: the index parses, every record's certificate exists, every certificate in
//! `issued/` is recorded, and the newest CRL lists every revocation.

// Test code: a failed step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Sandbox;
use portcullis_pki::Index;
use portcullis_pki::index::normalize_serial;

/// A CA without an intermediate and with an unencrypted key (no prompts), and clients
/// `c0` … `c{n-1}`.
fn ca_with_clients(n: usize) -> Sandbox {
    let sb = Sandbox::new();
    sb.ok(&["pki", "init", "--no-passphrase"]);
    for i in 0..n {
        sb.ok(&["pki", "issue", "client", &format!("c{i}"), "--no-p12"]);
    }
    sb
}

/// `portcullis ARGS` started in the sandbox, not waited for.
fn spawn(sb: &Sandbox, args: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .current_dir(sb.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("PORTCULLIS_CA_PASSPHRASE")
        .spawn()
        .unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// The serial of the first certificate in a PEM file.
fn serial_of(path: &Path) -> String {
    let der = portcullis_pki::ca::read_certs(path).unwrap().swap_remove(0);
    normalize_serial(
        &portcullis_pki::inspect::cert_info(&der, path)
            .unwrap()
            .serial,
    )
}

/// The newest CRL as openssl reads it: its number and revoked serials.
fn crl(sb: &Sandbox) -> (u64, BTreeSet<String>) {
    let out = sb.tool("openssl", &["crl", "-in", "pki/crl.pem", "-noout", "-text"]);
    assert!(out.status.success(), "{}", common::text(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines().map(str::trim);
    let mut number = None;
    let mut serials = BTreeSet::new();
    while let Some(l) = lines.next() {
        if l.starts_with("X509v3 CRL Number") {
            number = lines.next().and_then(|n| n.parse().ok());
        } else if let Some(s) = l.strip_prefix("Serial Number: ") {
            serials.insert(normalize_serial(s));
        }
    }
    (
        number.unwrap_or_else(|| panic!("no CRL number: {text}")),
        serials,
    )
}

/// Checks the directory's invariants; returns the index.
/// The next writer runs (`pki crl`), recovering what a killed one left; then the
/// directory must be consistent.
fn settle(sb: &Sandbox) -> Index {
    sb.ok(&["pki", "crl"]);
    consistent(sb)
}

fn consistent(sb: &Sandbox) -> Index {
    let dir = sb.path("pki");
    let index = Index::load(&dir.join("index.jsonl")).expect("the index parses");
    let recorded: BTreeSet<String> = index
        .records
        .iter()
        .map(|r| normalize_serial(&r.serial))
        .collect();
    assert_eq!(
        recorded.len(),
        index.records.len(),
        "a serial recorded twice"
    );
    // Every record's certificate is where the index says: where it was written, or, for
    // one a renewal replaced, in the archive.
    for r in &index.records {
        let serial = normalize_serial(&r.serial);
        let at_path = index.cert_path(r);
        assert!(
            at_path.exists() && serial_of(&at_path) == serial,
            "no certificate for record {serial} at {}",
            at_path.display()
        );
        if let Some(new) = &r.replaced_by {
            assert!(at_path.starts_with(dir.join("archive")), "{r:?}");
            assert!(index.find(new).is_some(), "{serial}'s successor {new}");
        }
    }
    // Every certificate in issued/ is recorded.
    for e in std::fs::read_dir(dir.join("issued")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".crt") {
            assert!(
                recorded.contains(&serial_of(&p)),
                "{name} is not in the index"
            );
        }
        assert!(
            !name.starts_with(".portcullis-"),
            "a half-written file: {name}"
        );
    }
    // The newest CRL lists every revocation, and its number is the one on record.
    let (number, listed) = crl(sb);
    for r in index.records.iter().filter(|r| r.revoked.is_some()) {
        let serial = normalize_serial(&r.serial);
        assert!(
            listed.contains(&serial),
            "revoked {serial} is not in CRL {number}"
        );
    }
    let on_record: u64 = std::fs::read_to_string(dir.join("crlnumber"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        on_record >= number,
        "crlnumber {on_record} is behind the CRL's {number}"
    );
    index
}

#[test]
fn fifty_operations_at_once_all_take_effect() {
    let sb = ca_with_clients(30);
    // 20 revocations, 10 renewals, 15 new clients and 5 CRL publications, all at once.
    let mut ops: Vec<(String, Vec<String>)> = Vec::new();
    for i in 0..20 {
        let cert = format!("pki/issued/c{i}.crt");
        ops.push((format!("revoke c{i}"), args(&["pki", "revoke", &cert])));
    }
    for i in 20..30 {
        let cert = format!("pki/issued/c{i}.crt");
        ops.push((
            format!("renew c{i}"),
            args(&["pki", "renew", &cert, "--no-p12"]),
        ));
    }
    for i in 0..15 {
        let name = format!("n{i}");
        ops.push((
            format!("issue {name}"),
            args(&["pki", "issue", "client", &name, "--no-p12"]),
        ));
    }
    for i in 0..5 {
        ops.push((format!("crl {i}"), args(&["pki", "crl"])));
    }
    let old_serials: Vec<String> = (0..30)
        .map(|i| serial_of(&sb.path(&format!("pki/issued/c{i}.crt"))))
        .collect();
    let children: Vec<(String, Child)> = ops
        .into_iter()
        .map(|(what, a)| (what, spawn(&sb, &a)))
        .collect();
    let mut numbers = Vec::new();
    let mut succeeded = Vec::new();
    for (what, child) in children {
        let out = child.wait_with_output().unwrap();
        let text = common::text(&out);
        assert!(out.status.success(), "{what} failed:\n{text}");
        for l in text.lines() {
            if let Some(rest) = l.strip_prefix("CRL number ") {
                numbers.push(
                    rest.split([',', ' '])
                        .next()
                        .unwrap()
                        .parse::<u64>()
                        .unwrap(),
                );
            }
        }
        succeeded.push((what, text));
    }

    let index = consistent(&sb);
    let revoked = |serial: &str| {
        index
            .find(serial)
            .unwrap_or_else(|| panic!("{serial} lost from the index"))
            .revoked
            .is_some()
    };
    for (i, serial) in old_serials.iter().enumerate() {
        if i < 20 {
            assert!(
                revoked(serial),
                "the revocation of c{i} was acknowledged and lost"
            );
        } else {
            // Renewed: the old record stays, and the new certificate is recorded.
            assert!(index.find(serial).is_some(), "c{i}'s old record was lost");
            let new = serial_of(&sb.path(&format!("pki/issued/c{i}.crt")));
            assert_ne!(&new, serial, "c{i} was not renewed");
            assert!(index.find(&new).is_some(), "c{i}'s renewal was lost");
        }
    }
    for i in 0..15 {
        let serial = serial_of(&sb.path(&format!("pki/issued/n{i}.crt")));
        assert!(index.find(&serial).is_some(), "issued n{i} was lost");
    }
    // Every publication got its own number, and the newest CRL carries the highest.
    let unique: BTreeSet<u64> = numbers.iter().copied().collect();
    assert_eq!(
        unique.len(),
        numbers.len(),
        "CRL numbers repeat: {numbers:?}"
    );
    assert_eq!(numbers.len(), 25);
    assert_eq!(crl(&sb).0, *unique.last().unwrap());
    // openssl agrees with `pki list` about every certificate.
    for r in &index.records {
        let cert = index.cert_path(r).display().to_string();
        let out = sb.tool(
            "openssl",
            &[
                "verify",
                "-crl_check",
                "-CAfile",
                "pki/root.crt",
                "-CRLfile",
                "pki/crl.pem",
                &cert,
            ],
        );
        let text = common::text(&out);
        if r.revoked.is_some() {
            assert!(text.contains("certificate revoked"), "{cert}: {text}");
        } else {
            assert!(out.status.success(), "{cert}: {text}");
        }
    }
    let list = sb.ok(&["pki", "list", "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&list).unwrap();
    let listed_revoked = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "revoked")
        .count();
    assert_eq!(listed_revoked, 20, "{list}");
}

/// A small deterministic generator, so a failing run can be repeated.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

#[test]
fn writers_killed_at_random_moments_leave_a_consistent_directory() {
    let sb = ca_with_clients(10);
    for i in 0..10 {
        sb.ok(&["pki", "issue", "client", &format!("r{i}"), "--no-p12"]);
    }
    let mut rng = Lcg(0x5eed);
    let mut next_client = 0;
    // A command takes about 20 ms here: kills land anywhere in it.
    for round in 0..40 {
        let a = match round % 4 {
            0 => {
                next_client += 1;
                args(&[
                    "pki",
                    "issue",
                    "client",
                    &format!("k{next_client}"),
                    "--no-p12",
                ])
            }
            1 => args(&["pki", "revoke", &format!("pki/issued/c{}.crt", round / 4)]),
            2 => args(&[
                "pki",
                "renew",
                &format!("pki/issued/r{}.crt", round / 4),
                "--no-p12",
            ]),
            _ => args(&["pki", "crl"]),
        };
        let mut child = spawn(&sb, &a);
        std::thread::sleep(Duration::from_micros(rng.next(25_000)));
        let _ = child.kill();
        let _ = child.wait();
        // The next command completes or undoes what the killed one left unfinished; it
        // must not be blocked by a lock the dead process held.
        let start = Instant::now();
        sb.ok(&["pki", "crl"]);
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "blocked by a dead lock"
        );
        consistent(&sb);
    }
}

/// Runs `args` with the writer stopped dead at `point` (`PORTCULLIS_CRASH_AT`).
fn crash_at(sb: &Sandbox, point: &str, args: &[&str]) {
    let out = sb.run_env(args, &[("PORTCULLIS_CRASH_AT", point)]);
    assert!(
        !out.status.success(),
        "{args:?} did not stop at {point}: {}",
        common::text(&out)
    );
}

#[test]
fn a_writer_killed_between_two_changes_is_finished_or_undone_by_the_next() {
    let sb = ca_with_clients(4);

    // Killed after the files, before the record: the certificate exists, so it is recorded.
    crash_at(
        &sb,
        "after-files",
        &["pki", "issue", "client", "late", "--no-p12"],
    );
    let index = settle(&sb);
    assert!(
        index
            .find(&serial_of(&sb.path("pki/issued/late.crt")))
            .is_some()
    );

    // Killed after the first file: the partial write is removed, nothing recorded.
    crash_at(
        &sb,
        "mid-commit",
        &["pki", "issue", "client", "half", "--no-p12"],
    );
    settle(&sb);
    for ext in ["key", "chain.pem", "crt"] {
        assert!(
            !sb.path(&format!("pki/issued/half.{ext}")).exists(),
            "half.{ext} left"
        );
    }
    sb.ok(&["pki", "issue", "client", "half", "--no-p12"]);

    // A renewal killed after moving the old files aside: they come back.
    let old = serial_of(&sb.path("pki/issued/c0.crt"));
    crash_at(
        &sb,
        "after-archive",
        &["pki", "renew", "pki/issued/c0.crt", "--no-p12"],
    );
    settle(&sb);
    assert_eq!(serial_of(&sb.path("pki/issued/c0.crt")), old);
    assert!(sb.path("pki/issued/c0.key").exists());
    // …and one killed after writing the new files is recorded.
    crash_at(
        &sb,
        "after-files",
        &["pki", "renew", "pki/issued/c0.crt", "--no-p12"],
    );
    let index = settle(&sb);
    let new = serial_of(&sb.path("pki/issued/c0.crt"));
    assert_ne!(new, old);
    assert!(index.find(&new).is_some());
    // …in the same index write that marks the old one renewed.
    let replaced_by = index.find(&old).unwrap().replaced_by.as_deref();
    assert_eq!(replaced_by.map(normalize_serial), Some(new.clone()));

    // A revocation killed before its CRL: the next writer publishes one that lists it.
    let c1 = serial_of(&sb.path("pki/issued/c1.crt"));
    crash_at(&sb, "after-revoke", &["pki", "revoke", "pki/issued/c1.crt"]);
    let index = settle(&sb);
    assert!(index.find(&c1).unwrap().revoked.is_some());
    assert!(crl(&sb).1.contains(&c1));

    // A CRL killed between its number and its files, or between the two files: the next
    // number is new, and crl.pem and crl.der agree again.
    let before = crl(&sb).0;
    crash_at(&sb, "after-crl-number", &["pki", "crl"]);
    crash_at(&sb, "mid-commit", &["pki", "crl"]);
    let out = sb.ok(&["pki", "crl"]);
    let after = crl(&sb).0;
    assert!(
        after > before + 2,
        "CRL number {after} after {before}: {out}"
    );
    let der = sb.tool(
        "openssl",
        &[
            "crl",
            "-inform",
            "DER",
            "-in",
            "pki/crl.der",
            "-noout",
            "-crlnumber",
        ],
    );
    assert!(
        common::text(&der).contains(&format!("{after:X}")),
        "crl.der is not the newest CRL: {}",
        common::text(&der)
    );
}

/// The public key of a certificate and of a key file, as openssl prints them.
fn key_matches_cert(sb: &Sandbox, key: &str, cert: &str) -> bool {
    let a = sb.tool("openssl", &["x509", "-noout", "-pubkey", "-in", cert]);
    let b = sb.tool("openssl", &["pkey", "-pubout", "-in", key]);
    a.status.success() && a.stdout == b.stdout
}

#[test]
fn recovery_never_removes_what_the_killed_writer_did_not_write() {
    let sb = ca_with_clients(2);

    // A recovery killed half-way is done again by the next writer.
    crash_at(
        &sb,
        "after-files",
        &["pki", "issue", "client", "twice", "--no-p12"],
    );
    crash_at(&sb, "mid-recovery", &["pki", "crl"]);
    let index = settle(&sb);
    assert!(
        index
            .find(&serial_of(&sb.path("pki/issued/twice.crt")))
            .is_some()
    );

    // --force interrupted after replacing the first file: the old key and certificate
    // come back, still a pair, and still recorded.
    let old = serial_of(&sb.path("pki/issued/c0.crt"));
    crash_at(
        &sb,
        "mid-commit",
        &["pki", "issue", "client", "c0", "--no-p12", "--force"],
    );
    let index = settle(&sb);
    assert_eq!(serial_of(&sb.path("pki/issued/c0.crt")), old);
    assert!(index.find(&old).is_some());
    assert!(key_matches_cert(
        &sb,
        "pki/issued/c0.key",
        "pki/issued/c0.crt"
    ));

    // A renewal killed between two of its moves to the archive: every old file is back.
    crash_at(
        &sb,
        "mid-archive",
        &["pki", "renew", "pki/issued/c1.crt", "--no-p12"],
    );
    settle(&sb);
    for ext in ["key", "crt", "chain.pem"] {
        assert!(
            sb.path(&format!("pki/issued/c1.{ext}")).exists(),
            "c1.{ext} lost"
        );
    }
    assert!(key_matches_cert(
        &sb,
        "pki/issued/c1.key",
        "pki/issued/c1.crt"
    ));

    // A file of the user's in the way of a write that was killed before it could refuse:
    // recovery leaves it alone.
    std::fs::write(
        sb.path("pki/issued/mine.chain.pem"),
        "the user's own file
",
    )
    .unwrap();
    crash_at(
        &sb,
        "after-archive",
        &["pki", "issue", "client", "mine", "--no-p12"],
    );
    settle(&sb);
    assert_eq!(
        std::fs::read_to_string(sb.path("pki/issued/mine.chain.pem")).unwrap(),
        "the user's own file
"
    );

    // The next writer may run from another directory: the intent's paths still lead to
    // the right files.
    crash_at(
        &sb,
        "after-files",
        &["pki", "issue", "client", "elsewhere", "--no-p12"],
    );
    std::fs::create_dir_all(sb.path("sub")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["pki", "--dir", "../pki", "crl"])
        .current_dir(sb.path("sub"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::text(&out));
    let index = consistent(&sb);
    assert!(
        index
            .find(&serial_of(&sb.path("pki/issued/elsewhere.crt")))
            .is_some()
    );
}

#[test]
fn a_second_writer_waits_for_the_first_or_names_it_when_it_waits_too_long() {
    let sb = ca_with_clients(2);
    let ca = portcullis_pki::Ca::open(&sb.path("pki"), None).unwrap();
    // The library takes the same lock as the CLI.
    let writer = ca.writer().unwrap();
    let start = Instant::now();
    let err = sb.fails(&["pki", "--lock-wait", "1", "crl"]);
    assert!(
        err.contains(&format!(
            "another portcullis process (pid {})",
            std::process::id()
        )) && err.contains("waited 1."),
        "{err}"
    );
    assert!(start.elapsed() >= Duration::from_secs(1));
    // A writer that waits gets its turn once the first is done.
    let waiting = spawn(&sb, &args(&["pki", "revoke", "pki/issued/c0.crt"]));
    std::thread::sleep(Duration::from_millis(500));
    let released = Instant::now();
    drop(writer);
    let out = waiting.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", common::text(&out));
    assert!(released.elapsed() < Duration::from_secs(5));
    assert!(
        consistent(&sb)
            .find(&serial_of(&sb.path("pki/issued/c0.crt")))
            .unwrap()
            .revoked
            .is_some()
    );
}
