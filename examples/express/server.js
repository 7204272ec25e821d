'use strict';
// Listens on loopback only: the gate is the one way in (README.md, "Why the app can
// trust the headers"). PORT=0 picks a free port; the first line printed names it.
const app = require('./app');

const port = Number(process.env.PORT ?? 3000);
const server = app.listen(port, '127.0.0.1', (err) => {
  if (err) throw err;
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
// Longer than the gate's 60 s idle keep-alive, so the gate, not Node, closes idle
// connections (Node's default of 5 s races the gate's next request on them).
server.keepAliveTimeout = 65_000;
server.headersTimeout = 66_000;
