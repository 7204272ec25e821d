'use strict';
// The caller's identity, as `portcullis serve` forwards it (docs/gate.md, "What the
// application receives"). The gate removes every copy of these headers a client sends,
// so they are the gate's — as long as only the gate can reach this app (README.md).

// Values are printable ASCII; `%` and other bytes are percent-encoded (UTF-8).
const text = (v) => (v === undefined ? undefined : decodeURIComponent(v));

// X-Client-O / X-Client-OU: an RFC 8941 list of strings, `"Users,Admins", "Ops"`.
const ITEM = String.raw`"((?:[\x20\x21\x23-\x5B\x5D-\x7E]|\\["\\])*)"`;
const LIST = new RegExp(String.raw`^${ITEM}(?:[ \t]*,[ \t]*${ITEM})*$`);
function stringList(v) {
  if (v === undefined) return [];
  if (!LIST.test(v)) throw new Error(`not an RFC 8941 list of strings: ${v}`);
  return [...v.matchAll(new RegExp(ITEM, 'g'))].map((m) => text(m[1].replace(/\\(.)/g, '$1')));
}

/** Sets `req.identity` from the gate's headers; `verified` is false for anonymous callers. */
function identity() {
  return (req, res, next) => {
    const verify = req.get('X-Client-Verify') ?? 'NONE';
    const verified = verify === 'SUCCESS';
    const h = (name) => (verified ? text(req.get(`X-Client-${name}`)) : undefined);
    req.identity = {
      verified,
      verify, // SUCCESS, NONE, or FAILED:reason
      cn: h('CN'),
      email: h('Email'),
      subject: h('Subject'), // RFC 4514 strings, for display
      issuer: h('Issuer'),
      o: verified ? stringList(req.get('X-Client-O')) : [],
      ou: verified ? stringList(req.get('X-Client-OU')) : [],
      // Comma-separated (role names cannot contain commas); empty: no role.
      roles: (verified && req.get('X-Client-Roles')?.split(',').filter(Boolean)) || [],
      serial: h('Serial'), // hex
      fingerprint: h('Fingerprint'), // SHA-256, hex
    };
    next();
  };
}

/** 401 without a verified certificate, 403 without `role`: answered by the app. */
function requireRole(role) {
  return (req, res, next) => {
    const id = req.identity;
    if (id?.roles.includes(role)) return next();
    const who = id?.verified ? `${id.cn ?? id.subject} does not have` : 'an anonymous caller lacks';
    res.status(id?.verified ? 403 : 401).type('text/plain')
      .send(`Refused by the Express app: ${who} role ${role}.\n`);
  };
}

module.exports = { identity, requireRole };
