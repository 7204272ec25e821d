//! Every input a fuzzer ever made fail, as a named test: the bug it found stays fixed.
//! Inputs are written out as byte strings (`fuzz/artifacts/` is not committed).

/// The doctor's classifier sliced `&bytes[5..]` when a server's reply was a handshake
/// record cut short before the end of its 5-byte header.
#[test]
fn a_tls_reply_shorter_than_a_record_header() {
    portcullis_fuzz::tls_reply(b"\x16\x03\x00\x00");
    portcullis_fuzz::tls_reply(b"\x16");
}

/// The ticket-key loader sliced a 64-byte line at byte offsets, inside a multibyte
/// character.
#[test]
fn a_ticket_key_line_with_multibyte_utf8() {
    portcullis_fuzz::ticket_keys(
        b"# rotat\x0f\x00e me\n000102030405060708091a0b0c0d0e0f1014151\xd7\xb4F15561718191a1b1c1d1e1f\n",
    );
}

/// Not a product bug: the oracle's list of protected names lagged behind the gate's
/// (`Client-IP` and the other client-address headers). Kept so the two stay in step.
#[test]
fn client_address_headers_are_protected_in_the_oracle_too() {
    portcullis_fuzz::headers(
        b"\x01client-ip:*d: 0\nUser-Agent\x01\x00\x00\x00lient-requ 4\nUser-Agezd: 0\nUser-Agent: cqrh",
    );
}

/// Paths accepted an encoded C1 control character (`%C2%89`, U+0089; NEL is `%C2%85`):
/// control characters are refused however they are encoded.
#[test]
fn an_encoded_c1_control_character_in_a_path() {
    portcullis_fuzz::path(b"/cP%C2%89");
}
