// The foundation, driven as a user would: the real binary, curl, node's ws
// client and fetch. Every test starts its own backend on free loopback ports.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import { startBackend, runBackend, freePorts, tempDir, jsonLines } from './lib/backend.mjs';

const ACTORS = ['store', 'registry', 'scheduler', 'executor', 'telemetry', 'auth', 'admin', 'api', 'edge'];

function curl(args) {
  return new Promise((resolve) => {
    execFile('curl', args, { timeout: 10000 }, (err, stdout, stderr) => resolve({ err, stdout, stderr }));
  });
}

// Opens a WebSocket and resolves once it is open (or rejects on error).
function connect(url, protocols, options = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, options);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
}

// Collects messages until the socket closes: {messages, code, reason}.
function untilClosed(ws) {
  const messages = [];
  ws.on('message', (data, isBinary) => messages.push({ data, isBinary }));
  return new Promise((resolve) => {
    ws.once('close', (code, reason) => resolve({ messages, code, reason: reason.toString() }));
  });
}

describe('viworks-backend foundation', () => {
  const started = [];
  after(async () => {
    for (const b of started) { await b.stop('SIGKILL'); b.cleanup(); }
  });
  async function backend(opts) {
    const b = await startBackend(opts);
    started.push(b);
    return b;
  }

  it('answers /health 200 with all actors up and the database ok', async (t) => {
    const b = await backend();
    const res = await fetch(`${b.httpUrl}/health`);
    const firstHealthMs = performance.now() - b.started;
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /application\/json/);
    const body = await res.json();
    assert.equal(body.status, 'ok');
    assert.equal(body.database, 'ok');
    assert.equal(typeof body.version, 'string');
    assert.equal(typeof body.uptime_s, 'number');
    assert.deepEqual(Object.keys(body.actors).sort(), [...ACTORS].sort());
    for (const a of ACTORS) assert.equal(body.actors[a], 'up', `${a} is up`);
    assert.ok(existsSync(path.join(b.dir, 'data', 'viworks.db')), 'default database in ./data');
    // A figure for the record, not a timed assertion (this build is sanitized).
    t.diagnostic(`spawn -> ready ${Math.round(b.readyAt - b.started)} ms, spawn -> first /health 200 ${Math.round(firstHealthMs)} ms`);
  });

  it('gives JSON errors: 404 for unknown paths, 405 with Allow for wrong methods', async () => {
    const b = await backend();
    let res = await fetch(`${b.httpUrl}/no/such/thing`);
    assert.equal(res.status, 404);
    let body = await res.json();
    assert.equal(body.error.code, 'not_found');
    assert.match(body.error.message, /\/no\/such\/thing/);
    res = await fetch(`${b.httpUrl}/health`, { method: 'DELETE' });
    assert.equal(res.status, 405);
    assert.equal(res.headers.get('allow'), 'GET');
    body = await res.json();
    assert.equal(body.error.code, 'method_not_allowed');
    res = await fetch(`${b.httpUrl}/health`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    assert.equal(res.status, 405);
    // Keep-alive: the same connection keeps serving after errors.
    res = await fetch(`${b.httpUrl}/health`);
    assert.equal(res.status, 200);
  });

  it('upgrades a raw curl request on /ws/agent with 101 Switching Protocols', async () => {
    const b = await backend();
    const { stdout } = await curl(['-s', '-i', '-N', '--max-time', '2', '--http1.1',
      '-H', 'Connection: Upgrade', '-H', 'Upgrade: websocket',
      '-H', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', '-H', 'Sec-WebSocket-Version: 13',
      b.wsUrl.replace('ws://', 'http://')]);
    assert.match(stdout, /^HTTP\/1\.1 101 Switching Protocols/);
    assert.match(stdout, /Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=/i);
  });

  it('negotiates the v1 subprotocols and refuses other paths', async () => {
    const b = await backend();
    const json = await connect(b.wsUrl, ['viworks.v1.json']);
    assert.equal(json.protocol, 'viworks.v1.json');
    json.close();
    const mp = await connect(b.wsUrl, ['viworks.v1.msgpack']);
    assert.equal(mp.protocol, 'viworks.v1.msgpack');
    mp.close();
    const none = await connect(b.wsUrl);
    assert.equal(none.protocol, '');
    none.close();
    await assert.rejects(connect(b.wsUrl, ['viworks.v9.xml']));
    await assert.rejects(connect(b.wsUrl.replace('/ws/agent', '/ws/other')));
    // The HTTP port does not serve agents.
    await assert.rejects(connect(`ws://127.0.0.1:${b.http}/ws/agent`));
  });

  it('answers a malformed first frame with an error frame and close 4400', async () => {
    const b = await backend();
    const ws = await connect(b.wsUrl, ['viworks.v1.json']);
    const closed = untilClosed(ws);
    ws.send('{"type":"hello", this is not json');
    const { messages, code } = await closed;
    assert.equal(code, 4400);
    assert.equal(messages.length, 1);
    const err = JSON.parse(messages[0].data.toString());
    assert.equal(err.type, 'error');
    assert.equal(err.code, 'malformed');
  });

  it('closes with 4400 when the first message is not a hello', async () => {
    const b = await backend();
    const ws = await connect(b.wsUrl, ['viworks.v1.json']);
    const closed = untilClosed(ws);
    ws.send(JSON.stringify({ type: 'heartbeat', status: 'online' }));
    const { messages, code } = await closed;
    assert.equal(code, 4400);
    const err = JSON.parse(messages[0].data.toString());
    assert.equal(err.type, 'error');
    assert.equal(err.code, 'invalid_message');
  });

  it('answers bad msgpack on the msgpack subprotocol with a binary error frame and 4400', async () => {
    const b = await backend();
    const ws = await connect(b.wsUrl, ['viworks.v1.msgpack']);
    const closed = untilClosed(ws);
    ws.send(Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff]));   // array32 claiming 4G elements
    const { messages, code } = await closed;
    assert.equal(code, 4400);
    assert.equal(messages.length, 1);
    assert.equal(messages[0].isBinary, true);
    // fixmap header, then the "type" key: a msgpack map, not JSON text.
    assert.equal(messages[0].data[0] & 0xf0, 0x80);
    assert.ok(messages[0].data.includes(Buffer.from('malformed')));
  });

  it('closes with 1009 when a frame exceeds ws.max_frame', async () => {
    const b = await backend({ args: ['--ws-max-frame', '4KiB'] });
    const ws = await connect(b.wsUrl, ['viworks.v1.json']);
    const closed = untilClosed(ws);
    ws.send('x'.repeat(4097));
    const { code } = await closed;
    assert.equal(code, 1009);
    // The server is unharmed.
    const res = await fetch(`${b.httpUrl}/health`);
    assert.equal(res.status, 200);
  });

  it('reports an actor that does not answer as down, with HTTP 503', async () => {
    const b = await backend({ env: { VIWORKS_FAULT: 'stall:telemetry' } });
    const res = await fetch(`${b.httpUrl}/health`);
    assert.equal(res.status, 503);
    const body = await res.json();
    assert.equal(body.status, 'degraded');
    assert.equal(body.actors.telemetry, 'down');
    for (const a of ACTORS.filter((x) => x !== 'telemetry')) assert.equal(body.actors[a], 'up');
  });

  it('on SIGTERM closes agent sessions with 1001 and exits 0 within 5 s', async () => {
    const b = await backend();
    const ws = await connect(b.wsUrl, ['viworks.v1.json']);
    const closed = untilClosed(ws);
    const stopped = await b.stop('SIGTERM');
    const { code } = await closed;
    assert.equal(code, 1001);
    assert.equal(stopped.signal, null);
    assert.equal(stopped.code, 0);
    assert.ok(stopped.ms < 5000, `exited in ${Math.round(stopped.ms)} ms`);
    const logs = jsonLines(b.lines).map((l) => l.msg);
    // Ordered shutdown, visible in the logs: edge first, store last.
    const order = ACTORS.map((a) => logs.findIndex((m) => m.startsWith(`${a} stopped`)));
    assert.ok(order.every((i) => i >= 0), 'every actor logged its stop');
    assert.ok(order[ACTORS.indexOf('edge')] < order[ACTORS.indexOf('store')]);
    assert.ok(order[ACTORS.indexOf('api')] < order[ACTORS.indexOf('store')]);
  });

  it('also stops cleanly on SIGINT', async () => {
    const b = await backend();
    const stopped = await b.stop('SIGINT');
    assert.equal(stopped.code, 0);
  });

  it('takes its ports from flags, the environment and a config file, in that precedence', async () => {
    // Environment only.
    let [http, ws, admin, events] = await freePorts(4);
    const envB = await backend({
      flags: false,
      env: {
        VIWORKS_HTTP_ADDR: '127.0.0.1', VIWORKS_HTTP_PORT: String(http),
        VIWORKS_WS_ADDR: '127.0.0.1', VIWORKS_WS_PORT: String(ws),
        VIWORKS_ADMIN_ENDPOINT: `tcp://127.0.0.1:${admin}`, VIWORKS_EVENTS_ENDPOINT: `tcp://127.0.0.1:${events}`,
      },
    });
    assert.equal((await fetch(`http://127.0.0.1:${http}/health`)).status, 200);
    (await connect(`ws://127.0.0.1:${ws}/ws/agent`)).close();
    await envB.stop();

    // Config file (ZPL), with a flag overriding the file's HTTP port.
    [http, ws, admin, events] = await freePorts(4);
    const [flagPort] = await freePorts(1);
    const dir = tempDir();
    const cfg = path.join(dir, 'viworks.cfg');
    writeFileSync(cfg, [
      'http', '    addr = 127.0.0.1', `    port = ${http}`,
      'ws', '    addr = 127.0.0.1', `    port = ${ws}`,
      'admin', `    endpoint = tcp://127.0.0.1:${admin}`,
      'events', `    endpoint = tcp://127.0.0.1:${events}`, ''].join('\n'));
    const fileB = await backend({ flags: false, cwd: dir, args: ['--config', cfg, '--http-port', String(flagPort)] });
    assert.equal((await fetch(`http://127.0.0.1:${flagPort}/health`)).status, 200);
    await assert.rejects(fetch(`http://127.0.0.1:${http}/health`));
    (await connect(`ws://127.0.0.1:${ws}/ws/agent`)).close();
    await fileB.stop();
  });

  it('exits 2 naming the option for a bad option or value', async () => {
    let r = await runBackend(['--http-port', 'abc']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--http-port/);
    r = await runBackend(['--no-such-option']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--no-such-option/);
    r = await runBackend([], { env: { VIWORKS_REGISTRY_STALE_AFTER: 'soon' } });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /VIWORKS_REGISTRY_STALE_AFTER/);
    r = await runBackend(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /--http-port/);
    assert.match(r.stdout, /DATABASE_URL/);
  });

  it('refuses a database written by a newer schema, and a non-SQLite DATABASE_URL', async () => {
    const b = await backend();
    assert.equal((await b.stop()).code, 0);
    const db = path.join(b.dir, 'data', 'viworks.db');
    await new Promise((resolve, reject) => execFile('sqlite3', [db, 'PRAGMA user_version = 99;'],
      (err) => (err ? reject(err) : resolve())));
    let r = await runBackend(['--http-port', '0', '--ws-port', '0', '--admin-endpoint', 'off', '--events-endpoint', 'off'], { cwd: b.dir });
    assert.equal(r.code, 4);
    assert.match(r.stderr, /schema version 99, newer than this build/);
    r = await runBackend(['--http-port', '0', '--ws-port', '0', '--admin-endpoint', 'off', '--events-endpoint', 'off'],
      { env: { DATABASE_URL: 'postgres://db/viworks' } });
    assert.equal(r.code, 3);
    assert.match(r.stderr, /postgres:\/\/db\/viworks/);
  });
});
