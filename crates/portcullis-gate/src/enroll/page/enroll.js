// The enrolment page. Everything secret happens here, in the browser:
//   1. an ECDSA P-256 key pair made with WebCrypto,
//   2. a PKCS#10 certificate request (RFC 2986) signed with it,
//   3. the request and the one-time token (from the URL's #fragment, which browsers never
//      send to a server) posted to the gate, which answers with the certificate chain,
//   4. a PKCS#12 file (RFC 7292) holding the key, encrypted with a password typed here,
//      and the chain, offered as a download.
// Only the request (public key, signature) and the token leave the page. No framework,
// no other script: the gate's Content-Security-Policy allows this file and nothing else.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const base = $('enroll').dataset.base;

  // Iterations for the key's PBKDF2 and for the MAC's key derivation. The MAC's runs
  // one WebCrypto digest per iteration (it is not PBKDF2), so it sets the pace; an
  // attacker with the file tries passwords against the cheaper of the two.
  const ITERATIONS = 100000;

  // === DER (X.690): just what a CSR and a PKCS#12 need ===

  const cat = (...parts) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  };
  // Definite lengths: short form below 128, else 0x80|count then big-endian bytes.
  const length = (n) => {
    if (n < 0x80) return [n];
    const b = [];
    for (; n > 0; n = Math.floor(n / 256)) b.unshift(n % 256);
    return [0x80 | b.length, ...b];
  };
  const tlv = (tag, ...content) => {
    const c = cat(...content);
    return cat(new Uint8Array([tag, ...length(c.length)]), c);
  };
  const seq = (...c) => tlv(0x30, ...c);
  // SET OF: DER wants the elements sorted by their encodings.
  const setOf = (...elements) => {
    const cmp = (a, b) => {
      for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
      return a.length - b.length;
    };
    return tlv(0x31, ...elements.slice().sort(cmp));
  };
  const octets = (b) => tlv(0x04, b);
  const nul = () => new Uint8Array([0x05, 0x00]);
  // [n] EXPLICIT: a constructed context tag around the whole inner encoding.
  const explicit = (n, ...c) => tlv(0xa0 | n, ...c);
  const utf8 = (s) => tlv(0x0c, new TextEncoder().encode(s));
  // BMPString: UTF-16 big-endian code units (PKCS#12 passwords and friendlyName).
  const ucs2 = (s, terminator) => {
    const out = new Uint8Array((s.length + (terminator ? 1 : 0)) * 2);
    for (let i = 0; i < s.length; i++) {
      out[2 * i] = s.charCodeAt(i) >> 8;
      out[2 * i + 1] = s.charCodeAt(i) & 0xff;
    }
    return out;
  };
  const bmp = (s) => tlv(0x1e, ucs2(s, false));
  // INTEGER from unsigned big-endian bytes: no leading zero bytes, except one when the
  // high bit is set, which would otherwise make the number negative.
  const uint = (bytes) => {
    let i = 0;
    while (i < bytes.length - 1 && bytes[i] === 0) i++;
    const b = bytes.slice(i);
    return tlv(0x02, b[0] & 0x80 ? cat(new Uint8Array([0]), b) : b);
  };
  const small = (n) => {
    const b = [];
    for (; n > 0; n = Math.floor(n / 256)) b.unshift(n % 256);
    return uint(new Uint8Array(b.length ? b : [0]));
  };
  // OBJECT IDENTIFIER: the first two arcs as 40*a+b, then each arc in base 128, high bit
  // set on every byte but the last.
  const oid = (dotted) => {
    const arcs = dotted.split('.').map(Number);
    const out = [40 * arcs[0] + arcs[1]];
    for (const arc of arcs.slice(2)) {
      const b = [arc & 0x7f];
      for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) b.unshift(0x80 | (v & 0x7f));
      out.push(...b);
    }
    return tlv(0x06, new Uint8Array(out));
  };
  // BIT STRING of whole bytes: a leading 0, the count of unused bits.
  const bits = (b) => tlv(0x03, new Uint8Array([0]), b);

  const OID = {
    commonName: '2.5.4.3',
    ecdsaWithSHA256: '1.2.840.10045.4.3.2',
    sha256: '2.16.840.1.101.3.4.2.1',
    hmacWithSHA256: '1.2.840.113549.2.9',
    pbes2: '1.2.840.113549.1.5.13',
    pbkdf2: '1.2.840.113549.1.5.12',
    aes256cbc: '2.16.840.1.101.3.4.1.42',
    data: '1.2.840.113549.1.7.1',
    shroudedKeyBag: '1.2.840.113549.1.12.10.1.2',
    certBag: '1.2.840.113549.1.12.10.1.3',
    x509Certificate: '1.2.840.113549.1.9.22.1',
    friendlyName: '1.2.840.113549.1.9.20',
    localKeyId: '1.2.840.113549.1.9.21',
  };

  const random = (n) => crypto.getRandomValues(new Uint8Array(n));
  const bytes = async (promise) => new Uint8Array(await promise);

  const pem = (label, der) => {
    let s = '';
    for (let i = 0; i < der.length; i += 0x8000) s += String.fromCharCode(...der.subarray(i, i + 0x8000));
    const b64 = btoa(s).replace(/.{1,64}/g, '$&\n');
    return `-----BEGIN ${label}-----\n${b64}-----END ${label}-----\n`;
  };
  const certificates = (text) =>
    [...text.matchAll(/-----BEGIN CERTIFICATE-----([^-]+)-----END CERTIFICATE-----/g)].map((m) =>
      Uint8Array.from(atob(m[1].replace(/\s+/g, '')), (c) => c.charCodeAt(0)),
    );

  // === PKCS#10 ===

  async function request(keys) {
    const spki = await bytes(crypto.subtle.exportKey('spki', keys.publicKey));
    const info = seq(
      small(0), // version 1
      // A placeholder: the gate takes the subject from the token, never from the request.
      seq(setOf(seq(oid(OID.commonName), utf8('browser enrolment')))),
      spki,
      tlv(0xa0), // [0] IMPLICIT attributes: none, but the field is not optional
    );
    const sig = await bytes(crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, keys.privateKey, info));
    // WebCrypto signs r || s (32 bytes each, IEEE P1363); X.509 carries
    // Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } (RFC 3279) inside the BIT STRING.
    const ecdsaSig = seq(uint(sig.subarray(0, 32)), uint(sig.subarray(32)));
    return seq(info, seq(oid(OID.ecdsaWithSHA256)), bits(ecdsaSig));
  }

  // === PKCS#12 ===

  // RFC 7292 Appendix B.2 with SHA-256 (u = 32, v = 64), for one 32-byte key (n = u: one
  // block, so I is never updated): D is 64 bytes of `id` (3 = MAC key), S and P the salt
  // and the password (a BMPString with its two-byte NUL) each repeated to a multiple of
  // 64 bytes, and the key is H^c(D || S || P).
  async function pkcs12Kdf(password, salt, id, iterations) {
    const v = 64;
    const fill = (b) => {
      const out = new Uint8Array(v * Math.ceil(b.length / v));
      for (let i = 0; i < out.length; i++) out[i] = b[i % b.length];
      return out;
    };
    let a = cat(new Uint8Array(v).fill(id), fill(salt), fill(ucs2(password, true)));
    for (let i = 0; i < iterations; i++) a = await bytes(crypto.subtle.digest('SHA-256', a));
    return a;
  }

  // PFX { version 3, authSafe: data(AuthenticatedSafe), macData }, where
  // AuthenticatedSafe is two unencrypted data ContentInfos: one SafeContents with the
  // key in a shrouded key bag (PBES2 inside), one with the certificates (public anyway).
  async function pkcs12(pkcs8, chain, name, password) {
    // localKeyId ties the key to its certificate; importers only compare it.
    const keyId = await bytes(crypto.subtle.digest('SHA-256', chain[0]));
    const attr = (type, value) => seq(oid(type), setOf(value));
    const attrs = setOf(attr(OID.friendlyName, bmp(name)), attr(OID.localKeyId, octets(keyId)));

    // EncryptedPrivateKeyInfo with PBES2 (RFC 8018): PBKDF2-HMAC-SHA256 → AES-256-CBC.
    // For PBES2 the password is its UTF-8 bytes (not a BMPString), as OpenSSL and NSS read it.
    const salt = random(16);
    const iv = random(16);
    const pw = await crypto.subtle.importKey('raw', new TextEncoder().encode(password), 'PBKDF2', false, ['deriveKey']);
    const aes = await crypto.subtle.deriveKey(
      { name: 'PBKDF2', salt, iterations: ITERATIONS, hash: 'SHA-256' },
      pw,
      { name: 'AES-CBC', length: 256 },
      false,
      ['encrypt'],
    );
    const encrypted = await bytes(crypto.subtle.encrypt({ name: 'AES-CBC', iv }, aes, pkcs8));
    const epki = seq(
      seq(
        oid(OID.pbes2),
        seq(
          // PBKDF2-params: the PRF must be named, its default is HMAC-SHA1.
          seq(oid(OID.pbkdf2), seq(octets(salt), small(ITERATIONS), seq(oid(OID.hmacWithSHA256), nul()))),
          seq(oid(OID.aes256cbc), octets(iv)),
        ),
      ),
      octets(encrypted),
    );
    // SafeBag ::= SEQUENCE { bagId, [0] EXPLICIT bagValue, bagAttributes SET OF OPTIONAL }
    const keyBag = seq(oid(OID.shroudedKeyBag), explicit(0, epki), attrs);
    // CertBag ::= SEQUENCE { certId x509Certificate, [0] EXPLICIT OCTET STRING (the DER) }
    const certBags = chain.map((der, i) =>
      seq(oid(OID.certBag), explicit(0, seq(oid(OID.x509Certificate), explicit(0, octets(der)))), ...(i === 0 ? [attrs] : [])),
    );
    const data = (content) => seq(oid(OID.data), explicit(0, octets(content)));
    const authSafe = seq(data(seq(keyBag)), data(seq(...certBags)));

    // MacData: HMAC-SHA256 over the AuthenticatedSafe's encoding, keyed by the PKCS#12
    // KDF above (not PBKDF2: that is what OpenSSL 3 and NSS verify).
    const macSalt = random(16);
    const macKey = await pkcs12Kdf(password, macSalt, 3, ITERATIONS);
    const hmac = await crypto.subtle.importKey('raw', macKey, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    const mac = await bytes(crypto.subtle.sign('HMAC', hmac, authSafe));
    const macData = seq(seq(seq(oid(OID.sha256), nul()), octets(mac)), octets(macSalt), small(ITERATIONS));
    return seq(small(3), data(authSafe), macData);
  }

  // === The page ===

  const show = (id, text) => {
    const el = $(id);
    if (text !== undefined) el.textContent = text;
    el.hidden = false;
  };
  const fail = (text) => {
    $('status').hidden = true;
    show('error', text);
  };

  // The token is read once and taken out of the address bar and the history.
  let token = '';
  try {
    token = decodeURIComponent(location.hash.slice(1));
  } catch {
    // Not a link the CLI printed (tokens are hex): treated as no token.
  }
  if (location.hash) history.replaceState(null, '', location.pathname + location.search);

  const webCrypto = window.isSecureContext && window.crypto && crypto.subtle;
  // The operator may let the gate make the key for browsers without WebCrypto.
  const serverKeys = $('enroll').dataset.serverKeys === 'yes';
  if (!webCrypto && !serverKeys) {
    fail(
      'This browser cannot make your key here: the page needs WebCrypto, which browsers offer ' +
        'only to pages loaded over HTTPS. Open the link over HTTPS in a current browser, or ask ' +
        'your operator for another way to enrol.',
    );
    return;
  }
  if (!token) {
    fail('This page needs your enrolment link: the address your operator gave you, ending in #TOKEN.');
    return;
  }
  if (!webCrypto) $('fallback').hidden = false;
  show('form');

  // Offers the file and says what it is.
  const ready = (p12, body) => {
    const link = $('download');
    link.href = URL.createObjectURL(new Blob([p12], { type: 'application/x-pkcs12' }));
    link.download = `${body.common_name.replace(/[^A-Za-z0-9._-]+/g, '_')}.p12`;
    $('cn').textContent = body.common_name;
    $('serial').textContent = body.serial;
    $('form').hidden = true;
    $('status').hidden = true;
    show('done');
  };

  // The fallback: the gate makes the key and sends the bundle, once.
  const fromTheGate = async (password) => {
    show('status', 'The gate is making your key and certificate…');
    const answer = await fetch(`${base}/bundle`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ token, password }),
      credentials: 'omit',
      cache: 'no-store',
    });
    const body = await answer.json();
    if (!answer.ok) {
      if (answer.status === 403) $('form').hidden = true;
      else $('go').disabled = false;
      return fail(`The gate refused: ${body.error || `HTTP ${answer.status}`}`);
    }
    const raw = atob(body.p12);
    const p12 = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) p12[i] = raw.charCodeAt(i);
    ready(p12, body);
  };

  $('form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const password = $('password').value;
    if (password.length < 8) return fail('The password must have at least 8 characters.');
    if (password !== $('confirm').value) return fail('The two passwords differ.');
    $('error').hidden = true;
    $('go').disabled = true;
    if (!webCrypto) {
      try {
        await fromTheGate(password);
      } catch (e) {
        $('go').disabled = false;
        fail(`The gate could not be reached (${e.message}). Try again.`);
      }
      return;
    }
    try {
      show('status', 'Making your key…');
      const keys = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
      const csr = pem('CERTIFICATE REQUEST', await request(keys));

      show('status', 'Asking the gate for your certificate…');
      let answer;
      let body;
      try {
        answer = await fetch(`${base}/csr`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ token, csr }),
          credentials: 'omit',
          cache: 'no-store',
        });
        body = await answer.json();
      } catch (e) {
        $('go').disabled = false;
        return fail(`The gate could not be reached (${e.message}). Try again.`);
      }
      if (!answer.ok) {
        // 403: the token is spent, expired, revoked or unknown, and stays so. Anything
        // else (too many attempts, a CA that could not issue) may pass: try again.
        if (answer.status === 403) $('form').hidden = true;
        else $('go').disabled = false;
        return fail(`The gate refused: ${body.error || `HTTP ${answer.status}`}`);
      }
      const chain = certificates(body.chain);
      if (!chain.length) return fail('The gate answered without a certificate.');

      show('status', 'Building your file…');
      const pkcs8 = await bytes(crypto.subtle.exportKey('pkcs8', keys.privateKey));
      const p12 = await pkcs12(pkcs8, chain, body.common_name, password);
      pkcs8.fill(0);
      ready(p12, body);
    } catch (e) {
      fail(`Something failed in this browser: ${e.message}`);
    }
  });
})();
