'use strict';
// The "Authorized / Unauthorized" client-certificate demo, behind `portcullis serve`:
// the gate does TLS and client certificates; the app reads who is calling from headers.
const express = require('express');
const { identity, requireRole } = require('./identity');

const app = express();
app.disable('x-powered-by');
// The gate's rules are case-sensitive ("/ADMIN" is not "/admin"); Express's routing is
// not, unless told. Route exactly what the gate judged.
app.set('case sensitive routing', true);
// The gate sets X-Forwarded-For/-Proto/-Host (and removes any the client sent): req.ip,
// req.protocol and req.hostname read them, for requests from the gate on loopback only.
app.set('trust proxy', 'loopback');

app.use((req, res, next) => {
  res.set('X-Served-By', 'express-example'); // tells the app's answers from the gate's
  next();
});
app.use(identity());

const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (title, body) =>
  `<!doctype html><title>${esc(title)}</title><h1>${esc(title)}</h1>${body}\n`;

// Public: everyone gets a page, and the page depends on who is asking.
app.get('/', (req, res) => {
  const id = req.identity;
  res.send(id.verified
    ? page('Authorized!', `<p>Hello ${esc(id.cn)}. <a href="/me">Your certificate</a>, `
      + '<a href="/admin">the admin area</a>.</p>')
    : page('Unauthorized!', '<p>Present a client certificate to log in.</p>'));
});

// Authenticated (the gate's rule): the certificate's fields.
app.get('/me', (req, res) => {
  const id = req.identity;
  const rows = [['CN', id.cn], ['Email', id.email], ['O', id.o.join(' | ')],
    ['OU', id.ou.join(' | ')], ['Subject', id.subject], ['Issuer', id.issuer],
    ['Roles', id.roles.join(', ') || 'none'], ['SHA-256', id.fingerprint]];
  const table = rows.map(([k, v]) => `<tr><th>${k}</th><td>${esc(v)}</td></tr>`).join('');
  res.send(page(`Hello ${id.cn}`, `<table>${table}</table>`));
});

// Any certificate gets past the gate; the role is the app's decision.
app.get('/admin', requireRole('admin'), (req, res) => {
  res.send(page('Admin area', `<p>Welcome, ${esc(req.identity.cn)} (role admin).</p>`));
});

// Debug echo: what the app believes, and which identity headers reached it.
app.get('/whoami', (req, res) => {
  const received = Object.keys(req.headers)
    .filter((h) => /^(x[^a-z0-9]?client|client[^a-z0-9]?cert)/i.test(h));
  res.json({ identity: req.identity, received });
});

module.exports = app;
