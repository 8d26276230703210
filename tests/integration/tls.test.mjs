// TLS that is asked for is TLS: with --tls-cert/--tls-key both ports speak
// HTTPS and WSS (checked with curl, node's ws and our own agent, each
// trusting a CA made here with openssl), plain HTTP on them fails, a client
// that does not trust the CA is refused, and a pair that cannot serve stops
// the backend at start (exit 2) with a message naming the file.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync, chmodSync, existsSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import WebSocket from 'ws';
import { startBackend, runBackend, freePorts, tempDir } from './lib/backend.mjs';
import { ADMIN_PASSWORD, JWT_SECRET, eventually } from './lib/api.mjs';
import { runAgent } from './lib/agent.mjs';
import { makeCa, makeServerCert, httpsCall } from './lib/tls.mjs';

function curl(args) {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '-m', '10', ...args], { timeout: 15000 }, (err, stdout, stderr) =>
      resolve({ code: err ? err.code : 0, stdout, stderr }));
  });
}

// Sends a hello over wss and resolves with the first answer (or rejects).
function hello(url, options, agentId, token) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ['viworks.v1.json'], options);
    ws.once('open', () => ws.send(JSON.stringify({ type: 'hello', agent_id: agentId, token, version: '1.0.0' })));
    ws.once('message', (data) => { resolve(JSON.parse(data.toString())); ws.close(1000); });
    ws.once('error', reject);
    ws.once('close', (code) => reject(new Error(`closed ${code} before an answer`)));
  });
}

describe('TLS on both ports', () => {
  let dir, pair, caPem, ca, b, wssUrl, httpsUrl, admin;
  before(async () => {
    dir = tempDir('vw-tls-');
    caPem = makeCa(dir, 'ca');
    makeCa(dir, 'other-ca');
    pair = makeServerCert(dir, 'ca', 'server');
    ca = readFileSync(caPem);
    b = await startBackend({ env: { JWT_SECRET, VIWORKS_ADMIN_PASSWORD: ADMIN_PASSWORD }, args: ['--tls-cert', pair.cert, '--tls-key', pair.key] });
    httpsUrl = `https://127.0.0.1:${b.http}`;
    wssUrl = `wss://127.0.0.1:${b.ws}/ws/agent`;
    // Tokens name a live user: log in over HTTPS (the admin user is created
    // just after "ready").
    admin = await eventually(async () => (await httpsCall(`${httpsUrl}/auth/token`, {
      method: 'POST', ca, body: { username: 'admin', password: ADMIN_PASSWORD } })).body?.access_token);
  });
  after(async () => { await b.stop('SIGKILL'); b.cleanup(); });

  it('logs both listeners as TLS', () => {
    assert.ok(b.lines.some((l) => /HTTP API on 127\.0\.0\.1:\d+ \(TLS\)/.test(l)), b.lines.join('\n'));
    assert.ok(b.lines.some((l) => /agent WebSocket on 127\.0\.0\.1:\d+\/ws\/agent \(TLS\)/.test(l)));
  });

  it('serves HTTPS to a client that trusts the CA, and nothing to plain HTTP', async () => {
    const ok = await curl(['--cacert', caPem, '-o', '/dev/null', '-w', '%{http_code}', `${httpsUrl}/health`]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, '200');
    const plain = await curl(['-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${b.http}/health`]);
    assert.notEqual(plain.code, 0);
    assert.equal(plain.stdout, '000');  //  no HTTP answer at all
    const plainWs = await curl(['-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${b.ws}/ws/agent`]);
    assert.notEqual(plainWs.code, 0);
    // The agent port is TLS too.
    const agentPort = await curl(['--cacert', caPem, '-o', '/dev/null', '-w', '%{http_code}', `https://127.0.0.1:${b.ws}/ws/agent`]);
    assert.equal(agentPort.code, 0, agentPort.stderr);
  });

  it('is refused by clients that do not trust the CA', async () => {
    const untrusted = await curl(['-o', '/dev/null', `${httpsUrl}/health`]);
    assert.equal(untrusted.code, 60, untrusted.stderr);  //  curl: peer certificate cannot be authenticated
    const other = await curl(['--cacert', path.join(dir, 'other-ca.pem'), '-o', '/dev/null', `${httpsUrl}/health`]);
    assert.equal(other.code, 60, other.stderr);
    await assert.rejects(hello(wssUrl, { ca: readFileSync(path.join(dir, 'other-ca.pem')) }, 'x', 'y'),
      (e) => /certificate/i.test(e.code ?? '') || /certificate/i.test(e.message));
    await assert.rejects(hello(wssUrl, {}, 'x', 'y'));
  });

  it('welcomes a registered agent over wss (node ws with ca)', async () => {
    const r = await httpsCall(`${httpsUrl}/agents`, { method: 'POST', ca, token: admin, body: { agent_id: 'gw-tls-1' } });
    assert.equal(r.status, 201);
    const answer = await hello(wssUrl, { ca }, 'gw-tls-1', r.body.token);
    assert.equal(answer.type, 'welcome', JSON.stringify(answer));
  });

  it('viworks-agent connects over wss with --ca-file, and not without it', async () => {
    const r = await httpsCall(`${httpsUrl}/agents`, { method: 'POST', ca, token: admin, body: { agent_id: 'gw-tls-2' } });
    assert.equal(r.status, 201);
    const target = { wsUrl: wssUrl };
    const refused = runAgent(target, 'gw-tls-2', r.body.token, ['--once']);
    const gone = await refused.exited;
    assert.notEqual(gone.code, 0, gone.log);
    const agent = runAgent(target, 'gw-tls-2', r.body.token, ['--ca-file', caPem]);
    await eventually(async () => (await httpsCall(`${httpsUrl}/agents/gw-tls-2`, { ca, token: admin })).body.status === 'online',
      { timeoutMs: 10000 });
    await agent.stop();
  });

  it('reads the certificate again on SIGHUP; connected agents stay; a bad pair is refused and the one in use stays', async () => {
    const r = await httpsCall(`${httpsUrl}/agents`, { method: 'POST', ca, token: admin, body: { agent_id: 'gw-tls-3' } });
    assert.equal(r.status, 201);
    const ws = new WebSocket(wssUrl, ['viworks.v1.json'], { ca });
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    ws.send(JSON.stringify({ type: 'hello', agent_id: 'gw-tls-3', token: r.body.token, version: '1.0.0' }));
    const welcome = await new Promise((resolve) => ws.once('message', (d) => resolve(JSON.parse(d.toString()))));
    assert.equal(welcome.type, 'welcome');
    // A renewal: new files in place, signed by another CA.
    const ca2Pem = makeCa(dir, 'ca2');
    const renewed = makeServerCert(dir, 'ca2', 'server2');
    writeFileSync(pair.cert, readFileSync(renewed.cert));
    writeFileSync(pair.key, readFileSync(renewed.key));
    const reloaded = () => b.lines.filter((l) => /TLS certificate reloaded/.test(l)).length;
    const before = reloaded();
    b.proc.kill('SIGHUP');
    await eventually(() => reloaded() >= before + 2, { timeoutMs: 5000 });  //  api and edge
    const fresh = await curl(['--cacert', ca2Pem, '-o', '/dev/null', '-w', '%{http_code}', `${httpsUrl}/health`]);
    assert.equal(fresh.stdout, '200', fresh.stderr);
    const old = await curl(['--cacert', caPem, '-o', '/dev/null', `${httpsUrl}/health`]);
    assert.equal(old.code, 60, old.stderr);
    const ca2 = readFileSync(ca2Pem);
    assert.equal(await hello(wssUrl, { ca: ca2 }, 'gw-tls-1', 'wrong-token').catch((e) => e.message).then((a) => a?.type ?? a), 'error');
    // The session opened before the reload is still up.
    assert.equal(ws.readyState, WebSocket.OPEN);
    const agent = (await httpsCall(`${httpsUrl}/agents/gw-tls-3`, { ca: ca2, token: admin })).body;
    assert.equal(agent.status, 'online');
    assert.equal(agent.session_id, welcome.session_id);
    // A broken pair: refused, logged, the renewed one stays in use.
    writeFileSync(pair.cert, 'not a certificate\n');
    const errors = () => b.lines.filter((l) => /TLS certificate not reloaded/.test(l)).length;
    b.proc.kill('SIGHUP');
    await eventually(() => errors() >= 2, { timeoutMs: 5000 });
    const still = await curl(['--cacert', ca2Pem, '-o', '/dev/null', '-w', '%{http_code}', `${httpsUrl}/health`]);
    assert.equal(still.stdout, '200', still.stderr);
    writeFileSync(pair.cert, readFileSync(renewed.cert));
    ws.close(1000);
  });

  it('stops in order with exit 0 (under ASan: no TLS state of either lws context leaks)', async () => {
    const r = await b.stop();
    assert.equal(r.code, 0, b.lines.slice(-20).join('\n'));
  });
});

describe('a TLS pair that cannot serve stops the start', () => {
  let dir, pair, other;
  before(() => {
    dir = tempDir('vw-tls-bad-');
    makeCa(dir, 'ca');
    pair = makeServerCert(dir, 'ca', 'server');
    other = makeServerCert(dir, 'ca', 'other');
  });

  async function start(cert, key) {
    const [http, ws] = await freePorts(2);
    const cwd = tempDir();
    const r = await runBackend(['--http-addr', '127.0.0.1', '--http-port', String(http), '--ws-addr', '127.0.0.1',
      '--ws-port', String(ws), '--admin-endpoint', 'off', '--events-endpoint', 'off', '--tls-cert', cert, '--tls-key', key], { cwd });
    // Refused before anything was created: no database, no admin user.
    assert.equal(existsSync(path.join(cwd, 'data', 'viworks.db')), false);
    return r;
  }

  it('exits 2 naming the key file for a key that is not a key, does not match, or cannot be read', async () => {
    const garbage = path.join(dir, 'garbage.key');
    writeFileSync(garbage, 'not a key\n');
    let r = await start(pair.cert, garbage);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--tls-key \S*garbage\.key is not a usable PEM private key/);
    r = await start(pair.cert, other.key);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--tls-key \S*other\.key does not match the certificate in --tls-cert \S*server\.pem/);
    r = await start(pair.cert, path.join(dir, 'missing.key'));
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /cannot read --tls-key \S*missing\.key: No such file or directory/);
    if (process.getuid() !== 0) {  //  root reads anything
      const locked = path.join(dir, 'locked.key');
      writeFileSync(locked, readFileSync(pair.key));
      chmodSync(locked, 0o000);
      r = await start(pair.cert, locked);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /cannot read --tls-key \S*locked\.key: Permission denied/);
    }
  });

  it('exits 2 naming the certificate file for one that is not a certificate', async () => {
    const r = await start(pair.key, pair.key);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--tls-cert \S*server\.key is not a usable PEM certificate/);
  });
});
