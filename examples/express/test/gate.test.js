'use strict';
// The example end to end: a CA made with `portcullis pki`, the real gate with this
// directory's portcullis.toml, the real app (server.js), and a Node.js https client with
// real certificates. Needs the portcullis binary: PORTCULLIS_BIN, else the workspace's
// target/debug/portcullis, else `portcullis` on PATH.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const { X509Certificate } = require('node:crypto');
const fs = require('node:fs');
const https = require('node:https');
const os = require('node:os');
const path = require('node:path');

const EXAMPLE = path.join(__dirname, '..');
const STEP_TIMEOUT_MS = 20_000;

function portcullisBin() {
  const candidates = process.env.PORTCULLIS_BIN
    ? [process.env.PORTCULLIS_BIN]
    : [path.join(EXAMPLE, '../../target/debug/portcullis'), 'portcullis'];
  for (const bin of candidates) {
    try {
      execFileSync(bin, ['--version'], { stdio: 'ignore', timeout: STEP_TIMEOUT_MS });
      return bin;
    } catch {
      // try the next one
    }
  }
  throw new Error(
    `no portcullis binary (tried ${candidates.join(', ')}): build it with ` +
      '`cargo build -p portcullis` and set PORTCULLIS_BIN=/path/to/portcullis',
  );
}

// Children are killed at the end, whatever happened; also if the runner exits early.
const children = [];
process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')));

/** Spawns a server and resolves with its port once `pattern` (port in group 1) is printed. */
function start(what, cmd, args, opts, pattern) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let output = '';
    const fail = (why) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`${what} did not start: ${why}\n--- its output ---\n${output}`));
    };
    const timer = setTimeout(() => fail(`no "listening" line in ${STEP_TIMEOUT_MS} ms`), STEP_TIMEOUT_MS);
    const read = (chunk) => {
      output += chunk;
      const m = output.match(pattern);
      if (m) {
        clearTimeout(timer);
        resolve({ child, port: Number(m[1]), output: () => output });
      }
    };
    child.stdout.setEncoding('utf8').on('data', read);
    child.stderr.setEncoding('utf8').on('data', read);
    child.on('error', (e) => fail(e.message));
    child.on('exit', (code, signal) => fail(`exited (${code ?? signal})`));
  });
}

let tmp, pki, gate, app;

before(async () => {
  const bin = portcullisBin();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-express-'));
  // No PORTCULLIS_* secrets from the caller's environment leak into the test.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PORTCULLIS_')));
  const run = (...args) =>
    execFileSync(bin, args, { cwd: tmp, env, timeout: STEP_TIMEOUT_MS, stdio: ['ignore', 'pipe', 'pipe'] });
  run('pki', 'init', '--intermediate', '--no-passphrase');
  run('pki', 'issue', 'server', 'localhost', '--dns', 'localhost', '--ip', '127.0.0.1');
  run('pki', 'issue', 'client', 'alice', '--email', 'alice@example.com', '--ou', 'Admins', '--no-p12');
  run('pki', 'issue', 'client', 'bob', '--email', 'bob@example.com', '--ou', 'Users', '--no-p12');
  // Values that read as more than they are if a list is split on commas.
  run('pki', 'issue', 'client', 'zoë', '--o', 'Acme "Labs", Inc', '--ou', 'Users,Admins', '--ou', 'Ops', '--no-p12');
  pki = (file) => fs.readFileSync(path.join(tmp, 'pki', file));

  app = await start('the app', process.execPath, ['server.js'], { cwd: EXAMPLE, env: { ...env, PORT: '0' } },
    /listening on http:\/\/127\.0\.0\.1:(\d+)/);

  // The example's own gate configuration, pointed at this app.
  const committed = fs.readFileSync(path.join(EXAMPLE, 'portcullis.toml'), 'utf8');
  const config = committed.replace('upstream = "http://127.0.0.1:3000"', `upstream = "http://127.0.0.1:${app.port}"`);
  assert.notEqual(config, committed, 'portcullis.toml no longer names upstream http://127.0.0.1:3000');
  fs.writeFileSync(path.join(tmp, 'portcullis.toml'), config);
  gate = await start('the gate', bin, ['serve', '-c', 'portcullis.toml', '--listen', '127.0.0.1:0'], { cwd: tmp, env },
    /listening on https:\/\/127\.0\.0\.1:(\d+)/);
}, { timeout: 4 * STEP_TIMEOUT_MS });

after(() => {
  children.forEach((c) => c.kill('SIGKILL'));
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/** GET `path` through the gate as `who` (a client certificate name, or anonymous). */
function get(urlPath, { who, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: '127.0.0.1',
      port: gate.port,
      servername: 'localhost',
      path: urlPath,
      ca: pki('root.crt'),
      ...(who && { cert: pki(`issued/${who}.chain.pem`), key: pki(`issued/${who}.key`) }),
      headers: { host: `localhost:${gate.port}`, accept: 'application/json', ...headers },
      agent: false,
      timeout: STEP_TIMEOUT_MS,
    }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${urlPath}: no answer in ${STEP_TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.end();
  });
}

const fromApp = (res) => res.headers['x-served-by'] === 'express-example';
const show = (res) => `${res.status} ${JSON.stringify(res.headers)}\n${res.body}`;

test('alice (OU Admins) reaches /admin, and the app knows her from the headers', async () => {
  const admin = await get('/admin', { who: 'alice' });
  assert.equal(admin.status, 200, show(admin));
  assert.ok(fromApp(admin), show(admin));
  assert.match(admin.body, /Welcome, alice \(role admin\)/);

  const me = await get('/whoami', { who: 'alice' });
  const id = JSON.parse(me.body).identity;
  const fingerprint = new X509Certificate(pki('issued/alice.crt')).fingerprint256.replaceAll(':', '').toLowerCase();
  assert.deepEqual(
    { verified: id.verified, verify: id.verify, cn: id.cn, email: id.email, ou: id.ou, roles: id.roles },
    { verified: true, verify: 'SUCCESS', cn: 'alice', email: 'alice@example.com', ou: ['Admins'], roles: ['admin'] },
  );
  assert.equal(id.fingerprint, fingerprint);
  assert.match(id.subject, /(^|,)CN=alice(,|$)/);

  const page = await get('/me', { who: 'alice' });
  assert.equal(page.status, 200, show(page));
  assert.match(page.body, /<th>Roles<\/th><td>admin<\/td>/);
});

test('one OU with a comma is one OU, and values are percent-decoded', async () => {
  // The CA keeps file names ASCII: zoë's files are issued/zo_.*.
  const res = await get('/whoami', { who: 'zo_' });
  const id = JSON.parse(res.body).identity;
  assert.deepEqual(
    { cn: id.cn, o: id.o, ou: id.ou, roles: id.roles },
    { cn: 'zoë', o: ['Acme "Labs", Inc'], ou: ['Users,Admins', 'Ops'], roles: [] },
    show(res),
  );
  const admin = await get('/admin', { who: 'zo_' });
  assert.equal(admin.status, 403, show(admin));
  assert.ok(fromApp(admin), show(admin));
});

test("bob (OU Users) passes the gate but gets the app's 403 on /admin, even claiming the role", async () => {
  for (const headers of [{}, { 'X-Client-Roles': 'admin' }, { 'x_client_roles': 'admin' }]) {
    const res = await get('/admin', { who: 'bob', headers });
    assert.equal(res.status, 403, show(res));
    assert.ok(fromApp(res), `not the app's answer: ${show(res)}`);
    assert.equal(res.body, 'Refused by the Express app: bob does not have role admin.\n');
  }
  const me = await get('/me', { who: 'bob' });
  assert.equal(me.status, 200, show(me));
  assert.match(me.body, /<th>Roles<\/th><td>user<\/td>/);
});

test("an anonymous client gets the gate's 401 on /me, never the app", async () => {
  const res = await get('/me', { headers: { 'X-Client-Verify': 'SUCCESS', 'X-Client-CN': 'alice' } });
  assert.equal(res.status, 401, show(res));
  assert.ok(!fromApp(res), `the app answered: ${show(res)}`);
  assert.equal(JSON.parse(res.body).status, 401);
});

test('identity headers an anonymous client sends, in any spelling, never reach the app', async () => {
  const spoofed = {
    'X-Client-Roles': 'admin',
    'x_client_roles': 'admin',
    'X.Client.Roles': 'admin',
    'X-CLIENT-CN': 'alice',
    'X_Client_CN': 'alice',
    'X-Client-Verify': 'SUCCESS',
    'x-client-ou': '"Admins"',
    'Client-Cert': ':AAAA:',
  };
  const res = await get('/whoami', { headers: spoofed });
  assert.equal(res.status, 200, show(res));
  assert.ok(fromApp(res), show(res));
  const { identity, received } = JSON.parse(res.body);
  // Only the gate's own header arrived: X-Client-Verify: NONE.
  assert.deepEqual(received, ['x-client-verify']);
  assert.equal(identity.verify, 'NONE');
  assert.equal(identity.verified, false);
  assert.deepEqual(identity.roles, []);
  assert.equal(identity.cn, undefined);

  const home = await get('/', { headers: spoofed });
  assert.match(home.body, /Unauthorized!/, show(home));
});

test('a path the gate has no rule for never reaches the app', async () => {
  // Express would route /ADMIN to /admin unless routing is case-sensitive; the gate has
  // no rule for /ADMIN and refuses it itself.
  const res = await get('/ADMIN', { who: 'alice' });
  assert.equal(res.status, 403, show(res));
  assert.ok(!fromApp(res), `the app answered: ${show(res)}`);
});
