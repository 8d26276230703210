// The front door (issue "Hardening", SPEC §6): paths are exact, HTTP limits
// answer instead of dropping, every refusal has the JSON error shape and a
// reason phrase, and none changes state. Requests go out as raw bytes over
// node's `net` so that nothing on the client side normalises them.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import WebSocket from 'ws';
import { startBackend } from './lib/backend.mjs';
import { ADMIN_PASSWORD, JWT_SECRET, claims, client, eventually, mintJwt, tokenClaims } from './lib/api.mjs';

const ENV = { VIWORKS_ADMIN_PASSWORD: ADMIN_PASSWORD, JWT_SECRET };

// Sends `data` (string or Buffer) on a fresh connection; resolves with every
// response on it, parsed, once the server closes it or `count` responses
// are in. `pauseMs` splits the data in two sends with a pause between.
function raw(port, data, { count = 1, end = true } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    const responses = [];
    const timer = setTimeout(() => { sock.destroy(); reject(new Error(`no answer: ${buf}`)); }, 15000);
    function parse() {
      for (;;) {
        const text = buf.toString('latin1');
        const headEnd = text.indexOf('\r\n\r\n');
        if (headEnd < 0) return;
        const head = text.slice(0, headEnd).split('\r\n');
        const [version, status, ...reason] = head[0].split(' ');
        const headers = {};
        for (const line of head.slice(1)) {
          const i = line.indexOf(':');
          headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
        }
        const len = Number(headers['content-length'] ?? 0);
        if (buf.length < headEnd + 4 + len) return;
        const body = buf.subarray(headEnd + 4, headEnd + 4 + len).toString();
        buf = buf.subarray(headEnd + 4 + len);
        responses.push({ version, status: Number(status), reason: reason.join(' '), headers,
                         body: body ? JSON.parse(body) : null });
        if (responses.length === count) { clearTimeout(timer); sock.destroy(); resolve(responses); return; }
      }
    }
    sock.on('data', (d) => { buf = Buffer.concat([buf, d]); parse(); });
    sock.on('close', () => { clearTimeout(timer); resolve(responses); });
    sock.on('error', () => {});
    sock.on('connect', () => { sock.write(data); if (end === false) return; });
  });
}

function assertError(r, status, code, reason) {
  assert.equal(r.status, status, JSON.stringify(r));
  assert.equal(r.reason, reason);
  assert.equal(r.headers['content-type'], 'application/json');
  assert.equal(r.body.error.code, code);
  assert.equal(typeof r.body.error.message, 'string');
  assert.ok(r.body.error.message.length > 0);
}

describe('the HTTP front door', () => {
  let b, api, admin;
  before(async () => {
    b = await startBackend({ env: ENV, args: ['--http-request-timeout', '700ms'] });
    api = client(b);
    admin = await eventually(async () => {
      const r = await api.call('POST', '/auth/token', { body: { username: 'admin', password: ADMIN_PASSWORD } });
      return r.status === 200 && r.body.access_token;
    });
    for (const id of ['gw-01', 'gw-02']) {
      const r = await api.call('POST', '/agents', { token: admin, body: { agent_id: id } });
      assert.equal(r.status, 201);
    }
  });
  after(async () => { await b.stop('SIGKILL'); b.cleanup(); });

  const req = (method, target, headers = {}, body = '') => {
    const h = { host: 'x', authorization: `Bearer ${admin}`, ...headers };
    if (body) h['content-length'] = Buffer.byteLength(body);
    return `${method} ${target} HTTP/1.1\r\n${Object.entries(h).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n${body}`;
  };

  it('refuses encoded path tricks and changes nothing', async () => {
    const cases = [
      ['DELETE', '/agents/x%2f..%2fgw-02', 400],
      ['GET', '/commands/..%2fagents', 400],
      ['GET', '/agents/gw-01%0ajunk', 400],
      ['GET', '/agents/gw-01%00', 400],
      ['DELETE', '/agents/..', 400],
      ['DELETE', '/agents/%2e%2e', 400],
      ['GET', '/agents/x/../gw-01', 400],
      ['GET', '/agents/gw-01%zz', 400],
      ['DELETE', '/agents/-gw-02', 404],
      ['GET', '/agents/gw-01/', 404],
      ['GET', '//agents', 404],
    ];
    for (const [method, target, status] of cases) {
      const [r] = await raw(b.http, req(method, target));
      assertError(r, status, status === 400 ? 'bad_request' : 'not_found', status === 400 ? 'Bad Request' : 'Not Found');
    }
    // gw-02 is still there and not revoked; the agents list is a list.
    const r = await api.call('GET', '/agents/gw-02', { token: admin });
    assert.equal(r.status, 200);
    assert.equal(r.body.revoked_at, null);
    const audit = await api.call('GET', '/audit?action=agent.revoke', { token: admin });
    assert.equal(audit.body.entries.length, 0);
    // An id that percent-encodes ordinary characters names that id.
    const enc = await raw(b.http, req('GET', '/agents/gw%2D01'));
    assert.equal(enc[0].status, 200);
    assert.equal(enc[0].body.agent_id, 'gw-01');
  });

  it('answers a 10 KB query string and an 8 KB token; 20 KB of headers is 431, a long URL 414', async () => {
    let r = await api.call('GET', `/agents?limit=1${'&'.repeat(10 * 1024)}`, { token: admin });
    assert.equal(r.status, 200);
    assert.equal(r.body.agents.length, 1);
    // A long label filter is refused by its field's rule, with an answer.
    r = await api.call('GET', `/agents?label=site:${'x'.repeat(10 * 1024)}`, { token: admin });
    assert.equal(r.status, 400);
    assert.match(r.body.error.message, /label/);
    const pad = 'p'.repeat(5950);
    const big = mintJwt(claims('admin', 'admin', { pad, gen: tokenClaims(admin).gen }));
    assert.ok(big.length > 8000 && big.length <= 8192, String(big.length));
    r = await api.call('GET', '/agents/gw-01', { token: big });
    assert.equal(r.status, 200);
    let [x] = await raw(b.http, req('GET', '/agents', { 'x-big': 'y'.repeat(20 * 1024) }));
    assertError(x, 431, 'request_header_fields_too_large', 'Request Header Fields Too Large');
    assert.equal(x.headers.connection, 'close');
    [x] = await raw(b.http, req('GET', `/agents?limit=1&${'a'.repeat(17 * 1024)}`));
    assertError(x, 414, 'uri_too_long', 'URI Too Long');
  });

  it('reads chunked bodies and limits them like others', async () => {
    const body = JSON.stringify({ agent_id: 'gw-chunked', labels: { site: 'ams' } });
    const chunked = `POST /agents HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${admin}\r\n` +
      'content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n' +
      `${(7).toString(16)}\r\n${body.slice(0, 7)}\r\n${(body.length - 7).toString(16)};x=y\r\n${body.slice(7)}\r\n0\r\n\r\n`;
    let [r] = await raw(b.http, chunked);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.reason, 'Created');
    assert.equal(r.body.agent_id, 'gw-chunked');
    // Over 1 MiB in chunks: 413, and the agent is not created.
    const chunk = 'x'.repeat(256 * 1024);
    let over = `POST /agents HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${admin}\r\n` +
      'content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n';
    for (let i = 0; i < 5; i++) over += `${chunk.length.toString(16)}\r\n${chunk}\r\n`;
    [r] = await raw(b.http, over);
    assertError(r, 413, 'payload_too_large', 'Content Too Large');
  });

  it('refuses an over-limit Content-Length at once, and a stalled body with 408', async () => {
    const t0 = Date.now();
    // Only the head is sent: the answer cannot wait for the body.
    let [r] = await raw(b.http, `POST /agents HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${2 * 1024 * 1024}\r\n\r\n`);
    assertError(r, 413, 'payload_too_large', 'Content Too Large');
    assert.ok(Date.now() - t0 < 700, 'answered before the request deadline');
    [r] = await raw(b.http, `POST /agents HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${admin}\r\ncontent-type: application/json\r\ncontent-length: 40\r\n\r\n{"agent_id":`);
    assertError(r, 408, 'request_timeout', 'Request Timeout');
    // Half a head is a stalled request too.
    [r] = await raw(b.http, 'GET /agents HTTP/1.1\r\nhost: x\r\n');
    assertError(r, 408, 'request_timeout', 'Request Timeout');
  });

  it('answers malformed requests and unknown methods with the JSON error shape', async () => {
    let [r] = await raw(b.http, 'garbage\r\n\r\n');
    assertError(r, 400, 'bad_request', 'Bad Request');
    [r] = await raw(b.http, Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]));
    assertError(r, 400, 'bad_request', 'Bad Request');
    [r] = await raw(b.http, 'GET /health HTTP/2.0\r\n\r\n');
    assertError(r, 505, 'http_version_not_supported', 'HTTP Version Not Supported');
    [r] = await raw(b.http, req('BREW', '/agents'));
    assertError(r, 405, 'method_not_allowed', 'Method Not Allowed');
    assert.equal(r.headers.allow, 'GET, POST');
    [r] = await raw(b.http, req('GET', '/agents', { 'x-bad': 'a\x01b' }));
    assertError(r, 400, 'bad_request', 'Bad Request');
    [r] = await raw(b.http, 'GET /health HTTP/1.1\r\nhost: x\r\n folded\r\n\r\n');
    assertError(r, 400, 'bad_request', 'Bad Request');
  });

  it('serves keep-alive and pipelined requests in order', async () => {
    const two = req('GET', '/agents/gw-01') + req('GET', '/agents/gw-02', { connection: 'close' });
    const rs = await raw(b.http, two, { count: 2 });
    assert.deepEqual(rs.map((r) => [r.status, r.body.agent_id]), [[200, 'gw-01'], [200, 'gw-02']]);
    assert.equal(rs[1].headers.connection, 'close');
  });

  it('answers HEAD without a body, so the next answer on the connection is read right', async () => {
    // A HEAD answer carries the fields only (RFC 9110 §9.3.2): with a body,
    // a client would read it as the start of the next answer.
    const text = await new Promise((resolve, reject) => {
      const sock = net.connect(b.http, '127.0.0.1');
      let buf = '';
      const timer = setTimeout(() => { sock.destroy(); reject(new Error(`no answer: ${buf}`)); }, 15000);
      sock.on('data', (d) => { buf += d.toString('latin1'); });
      sock.on('close', () => { clearTimeout(timer); resolve(buf); });
      sock.on('error', () => {});
      sock.write(req('HEAD', '/health') + req('HEAD', '/agents/gw-01') + req('GET', '/agents/gw-01', { connection: 'close' }));
    });
    const parts = text.split('\r\n\r\n').map((p) => `${p}\r\n`);
    assert.match(parts[0], /^HTTP\/1\.1 405 Method Not Allowed\r\n/);
    assert.match(parts[0], /\r\nallow: GET\r\n/);
    assert.match(parts[0], /\r\ncontent-length: [1-9]\d*\r\n/, 'the length of the body it would have');
    assert.match(parts[1], /^HTTP\/1\.1 405 Method Not Allowed\r\n/, 'no body after the first answer');
    assert.match(parts[1], /\r\nallow: GET, DELETE\r\n/);
    assert.match(parts[2], /^HTTP\/1\.1 200 OK\r\n/, 'no body after the second answer');
    assert.equal(JSON.parse(parts[3]).agent_id, 'gw-01');
  });

  it('tells an HTTP/1.0 keep-alive client that the connection stays open', async () => {
    const rs = await raw(b.http, 'GET /health HTTP/1.0\r\nconnection: keep-alive\r\n\r\n' +
      'GET /health HTTP/1.0\r\n\r\n', { count: 2 });
    assert.equal(rs.length, 2);
    assert.equal(rs[0].headers.connection, 'keep-alive');
    assert.equal(rs[1].headers.connection, 'close');
  });

  it('answers 204 with neither a body nor Content-Length', async () => {
    const r = await api.call('POST', '/agents', { token: admin, body: { agent_id: 'gw-gone' } });
    assert.equal(r.status, 201);
    const rs = await raw(b.http, req('DELETE', '/agents/gw-gone') + req('GET', '/agents/gw-01', { connection: 'close' }), { count: 2 });
    assert.equal(rs[0].status, 204);
    assert.equal(rs[0].reason, 'No Content');
    assert.equal(rs[0].headers['content-length'], undefined);
    assert.equal(rs[0].headers['content-type'], undefined);
    assert.equal(rs[1].status, 200, 'the next answer follows the fields at once');
    assert.equal(rs[1].body.agent_id, 'gw-01');
  });

  it('takes an encoded slash in a query value as a character', async () => {
    const r = await api.call('POST', '/agents', { token: admin, body: { agent_id: 'gw-rack', labels: { site: 'ams/rack-1' } } });
    assert.equal(r.status, 201);
    const [x] = await raw(b.http, req('GET', '/agents?label=site%3Aams%2Frack-1', { connection: 'close' }));
    assert.equal(x.status, 200, JSON.stringify(x.body));
    assert.deepEqual(x.body.agents.map((a) => a.agent_id), ['gw-rack']);
  });

  it('upgrades exactly /ws/agent on the agent port', async () => {
    const outcome = (path) => new Promise((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${b.ws}${path}`, ['viworks.v1.json']);
      ws.on('open', () => { ws.close(); resolve('open'); });
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode));
      ws.on('error', () => resolve('refused'));
    });
    assert.equal(await outcome('/ws/agent'), 'open');
    // Refused with a JSON 404 (lws itself drops a NUL before we see it).
    for (const p of ['/ws/agent%0ajunk', '/ws/agent%0d%0aX:%20y', '/ws/agent?x=1', '/ws/agent/', '/ws/agents'])
      assert.equal(await outcome(p), 404, p);
    assert.notEqual(await outcome('/ws/agent%00'), 'open');
    const [r] = await raw(b.ws, 'GET /ws/agent%0ajunk HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\n' +
      'sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
    assert.equal(r.status, 404);
    assert.equal(r.body.error.code, 'not_found');
  });
});

// A client that asks and never reads must not hold its answers and the
// connection for ever: once no chunk of an answer goes out for
// http.idle_timeout, the connection is closed.
describe('a client that does not read its answers', () => {
  let b, api, admin;
  before(async () => {
    b = await startBackend({ env: ENV, args: ['--http-idle-timeout', '1s'] });
    api = client(b);
    admin = await eventually(async () => {
      const r = await api.call('POST', '/auth/token', { body: { username: 'admin', password: ADMIN_PASSWORD } });
      return r.status === 200 && r.body.access_token;
    });
    // 100 agents with 64 long labels each: GET /agents?limit=1000 is ~2 MB.
    const labels = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`k${i}-${'x'.repeat(60)}`, 'v'.repeat(256)]));
    for (let i = 0; i < 100; i++) {
      const r = await api.call('POST', '/agents', { token: admin, body: { agent_id: `big-${i}`, labels } });
      assert.equal(r.status, 201);
    }
  });
  after(async () => { await b.stop('SIGKILL'); b.cleanup(); });

  it('is let go when it stops taking a large answer', async () => {
    const one = `GET /agents?limit=1000 HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${admin}\r\n\r\n`;
    const asked = 20; // ~40 MB of answers: more than the kernel's buffers hold
    const sock = net.connect(b.http, '127.0.0.1');
    sock.pause(); // never read while the server writes
    await new Promise((resolve) => sock.on('connect', resolve));
    sock.write(one.repeat(asked));
    // Three idle timeouts with nothing read: the server must have given up.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    let bytes = 0;
    const ended = new Promise((resolve) => {
      sock.on('data', (d) => { bytes += d.length; });
      sock.on('close', resolve);
      sock.on('error', () => {});
    });
    sock.resume();
    const timer = setTimeout(() => sock.destroy(new Error('still open')), 15000);
    await ended;
    clearTimeout(timer);
    // Not everything was sent: the connection was closed, not drained.
    const full = await api.call('GET', '/agents?limit=1000', { token: admin });
    assert.equal(full.status, 200, 'others are still answered');
    const answer = Buffer.byteLength(JSON.stringify(full.body));
    assert.ok(answer > 1000 * 1000, String(answer));
    assert.ok(bytes < asked * answer, `${bytes} bytes arrived: the server kept writing`);
  });
});
