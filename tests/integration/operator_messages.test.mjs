// What the operator reads: a taken port names the flag to change, the
// generated admin password is its own marked line after "ready", and
// `viworks-backend --reset-admin-password` replaces it (also while the
// backend runs).
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import net from 'node:net';
import { startBackend, runBackend, freePorts, tempDir, BACKEND } from './lib/backend.mjs';
import { JWT_SECRET, client, eventually } from './lib/api.mjs';

// Holds a loopback port open (as another program would).
function occupy(port) {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(port, '127.0.0.1', () => resolve(srv));
  });
}

function run(args, { cwd, env = {} }) {
  return new Promise((resolve) => {
    execFile(BACKEND, args, { cwd, env: { ...process.env, ...env }, timeout: 30000 },
      (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stdout, stderr }));
  });
}

describe('a listener that cannot bind names the flag', () => {
  const cases = [
    ['HTTP', (p) => ['--http-port', String(p.taken)], /cannot listen for HTTP on 127\.0\.0\.1:(\d+): address already in use \(--http-port \/ --http-addr\)/],
    ['agents', (p) => ['--ws-port', String(p.taken)], /cannot listen for agents on 127\.0\.0\.1:(\d+): address already in use \(--ws-port \/ --ws-addr\)/],
    ['admin socket', (p) => ['--admin-endpoint', `tcp://127.0.0.1:${p.taken}`], /cannot listen for the admin socket on tcp:\/\/127\.0\.0\.1:(\d+): address already in use \(--admin-endpoint\)/],
    ['event stream', (p) => ['--events-endpoint', `tcp://127.0.0.1:${p.taken}`], /cannot listen for the event stream on tcp:\/\/127\.0\.0\.1:(\d+): address already in use \(--events-endpoint\)/],
    ['broker bind', (p) => ['--broker-bind', `tcp://127.0.0.1:${p.taken}`], /cannot listen for remote actors on tcp:\/\/127\.0\.0\.1:(\d+): address already in use \(--broker-bind\)/],
  ];
  for (const [what, flags, expected] of cases) {
    it(`${what}: exit 1 with "address already in use" and the flag`, async () => {
      const [http, ws, admin, events, taken] = await freePorts(5);
      const srv = await occupy(taken);
      try {
        const r = await runBackend(['--http-addr', '127.0.0.1', '--http-port', String(http), '--ws-addr', '127.0.0.1',
          '--ws-port', String(ws), '--admin-endpoint', `tcp://127.0.0.1:${admin}`,
          '--events-endpoint', `tcp://127.0.0.1:${events}`, ...flags({ taken })], { env: { JWT_SECRET } });
        assert.equal(r.code, 1, r.stderr);
        const m = r.stderr.match(expected);
        assert.ok(m, r.stderr);
        assert.equal(Number(m[1]), taken);
      } finally {
        srv.close();
      }
    });
  }

  it('an address this host does not have is refused, not listened on later', async () => {
    const [ws] = await freePorts(1);
    const r = await runBackend(['--http-addr', '192.0.2.1', '--http-port', '8080', '--ws-addr', '127.0.0.1',
      '--ws-port', String(ws), '--admin-endpoint', 'off', '--events-endpoint', 'off'], { env: { JWT_SECRET } });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /cannot listen for HTTP on 192\.0\.2\.1:8080: cannot assign requested address \(--http-port \/ --http-addr\)/);
  });
});

describe('the admin password', () => {
  const started = [];
  after(async () => { for (const b of started) { await b.stop('SIGKILL'); b.cleanup(); } });

  it('is generated on first start and shown on its own marked line after "ready"', async () => {
    const b = await startBackend({ env: { JWT_SECRET, VIWORKS_ADMIN_PASSWORD: '' } });
    started.push(b);
    const line = await eventually(() => b.lines.find((l) => /ADMIN PASSWORD/.test(l)));
    const ready = b.lines.findIndex((l) => /ready in \d+ ms/.test(l));
    assert.ok(b.lines.indexOf(line) > ready, b.lines.join('\n'));
    const password = JSON.parse(line).msg.match(/generated password '([^']+)'/)[1];
    assert.match(JSON.parse(line).msg, /--reset-admin-password/);
    const api = client(b);
    assert.equal((await api.call('POST', '/auth/token', { body: { username: 'admin', password } })).status, 200);
  });

  it('is replaced by --reset-admin-password, generated or from VIWORKS_ADMIN_PASSWORD, while the backend runs', async () => {
    const b = await startBackend({ env: { JWT_SECRET, VIWORKS_ADMIN_PASSWORD: 'first-password-1' } });
    started.push(b);
    const api = client(b);
    const login = async (password) => (await api.call('POST', '/auth/token', { body: { username: 'admin', password } })).status;
    await eventually(async () => (await login('first-password-1')) === 200);
    const before = (await api.call('POST', '/auth/token', { body: { username: 'admin', password: 'first-password-1' } })).body.access_token;
    assert.equal((await api.call('GET', '/agents', { token: before })).status, 200);

    // Generated: printed on stdout, the old one stops working at once.
    let r = await run(['--reset-admin-password'], { cwd: b.dir, env: { VIWORKS_ADMIN_PASSWORD: '' } });
    assert.equal(r.code, 0, r.stderr);
    const generated = r.stdout.match(/^ADMIN PASSWORD: user 'admin' now has the generated password '([^']+)'$/m)?.[1];
    assert.ok(generated, r.stdout);
    assert.equal(await login('first-password-1'), 401);
    assert.equal(await login(generated), 200);
    // The running backend follows the database from that login on: tokens
    // issued before the reset are refused.
    assert.equal((await api.call('GET', '/agents', { token: before })).status, 401);

    // Chosen through the environment (never printed).
    r = await run(['--reset-admin-password'], { cwd: b.dir, env: { VIWORKS_ADMIN_PASSWORD: 'chosen-password-2' } });
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout + r.stderr, /chosen-password-2/);
    assert.equal(await login(generated), 401);
    assert.equal(await login('chosen-password-2'), 200);

    // Bad input changes nothing.
    r = await run(['--reset-admin-password'], { cwd: b.dir, env: { VIWORKS_ADMIN_PASSWORD: 'short' } });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /VIWORKS_ADMIN_PASSWORD must be 8 to 1024 characters/);
    assert.equal(await login('chosen-password-2'), 200);

    const token = (await api.call('POST', '/auth/token', { body: { username: 'admin', password: 'chosen-password-2' } })).body.access_token;
    const audit = await api.call('GET', '/audit?action=user.password_reset', { token });
    assert.equal(audit.body.entries.length, 2);
    assert.ok(audit.body.entries.every((e) => e.actor === 'system' && e.source === 'cli' && e.target === 'admin'));
  });

  it('--reset-admin-password refuses a database it cannot use', async () => {
    const r = await run(['--reset-admin-password'], { cwd: tempDir(), env: { DATABASE_URL: 'postgres://db/x' } });
    assert.equal(r.code, 3);
    assert.match(r.stderr, /postgres:\/\/db\/x/);
    const help = await run(['--help'], { cwd: tempDir() });
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--reset-admin-password/);
  });
});

// Sends raw bytes and resolves when the server closes, when what came back
// matches `until`, or after 5 s.
function raw(port, text, until) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1', () => sock.write(text));
    let got = '';
    sock.on('data', (d) => { got += d; if (until && until.test(got)) sock.destroy(); });
    const timer = setTimeout(() => sock.destroy(), 5000);
    sock.on('close', () => { clearTimeout(timer); resolve(got); });
    sock.on('error', () => {});
  });
}

describe('connection-level log lines name the peer and the path', () => {
  let b;
  after(async () => { await b.stop('SIGKILL'); b.cleanup(); });

  it('a refused upgrade and a connection lws gives up on', async () => {
    b = await startBackend({ env: { JWT_SECRET } });
    const upgrade = (path, proto = 'Sec-WebSocket-Protocol: viworks.v1.json\r\n') =>
      `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${proto}\r\n`;
    await raw(b.ws, upgrade('/not-agents'));
    await eventually(() => b.lines.some((l) => /refused a WebSocket upgrade from 127\.0\.0\.1 for \/not-agents: agents connect to \/ws\/agent/.test(l)));
    // The API port answers an upgrade itself (JSON 404) and logs it.
    const answer = await raw(b.http, upgrade('/ws/agent', ''), /\}\}$/);
    assert.match(answer, /^HTTP\/1\.1 404 Not Found\r\n/);
    assert.match(answer, /agent port/);
    await eventually(() => b.lines.some((l) => /refused a WebSocket upgrade from 127\.0\.0\.1 for \/ws\/agent: agents use the agent port/.test(l)));
    // lws's own echo of those refusals is not logged as a warning.
    assert.ok(!b.lines.some((l) => /"level":"warn".*denied connection/.test(l)), b.lines.join('\n'));
    // Headers beyond lws's buffer on the agent port (the API port answers
    // 431 itself): lws's complaint, then the edge's line with the peer.
    await raw(b.ws, `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(70000)}\r\n\r\n`);
    const line = await eventually(() => b.lines.find((l) => /lws closed the connection from 127\.0\.0\.1/.test(l)));
    const lwsLine = b.lines.findIndex((l) => /"component":"lws"/.test(l));
    assert.ok(lwsLine >= 0 && lwsLine < b.lines.indexOf(line), b.lines.join('\n'));
    assert.match(JSON.parse(line).msg, /after: .+/);
  });
});
