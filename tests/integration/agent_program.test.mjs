// The acceptance path of the agents issue, with our own C agent
// (viworks-agent) as a user would run it: register through the API, run the
// agent with its token, watch its status through GET /agents, stop it, revoke it.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { AGENT, runAgent } from './lib/agent.mjs';
import { startBackend, tempDir } from './lib/backend.mjs';
import { ADMIN_PASSWORD, JWT_SECRET, client, eventually } from './lib/api.mjs';

const HB = 400;

describe('viworks-agent against the backend', () => {
  let b, api, admin;
  before(async () => {
    b = await startBackend({ env: { VIWORKS_ADMIN_PASSWORD: ADMIN_PASSWORD, JWT_SECRET }, args: ['--heartbeat-interval', `${HB}ms`] });
    api = client(b);
    admin = await eventually(async () => (await api.call('POST', '/auth/token', { body: { username: 'admin', password: ADMIN_PASSWORD } })).body?.access_token);
  });
  after(async () => { await b.stop('SIGKILL'); b.cleanup(); });

  const status = async (id) => (await api.call('GET', `/agents/${id}`, { token: admin })).body;

  for (const format of ['json', 'msgpack']) {
    it(`goes online, stays online on heartbeats, and goes offline when stopped (${format})`, async () => {
      const id = `gw-prog-${format}`;
      const r = await api.call('POST', '/agents', { token: admin, body: { agent_id: id } });
      assert.equal(r.status, 201);
      const agent = runAgent(b, id, r.body.token, ['--format', format, '--label', 'site=lab', '--hostname', 'gw.lab']);
      const a = await eventually(async () => { const x = await status(id); return x.status === 'online' && x; });
      assert.equal(a.hostname, 'gw.lab');
      assert.deepEqual(a.reported_labels, { site: 'lab' });   // --label: reported, not the operator's
      assert.deepEqual(a.labels, {});
      const listed = await api.call('GET', '/agents?status=online', { token: admin });
      assert.ok(listed.body.agents.some((x) => x.agent_id === id));
      // Several heartbeat intervals later it is still online (heartbeats arrive).
      const seen = a.last_seen;
      await eventually(async () => { const x = await status(id); return x.last_seen > seen + 2 * HB && x.status === 'online'; });
      agent.proc.kill('SIGTERM');
      const { code } = await agent.exited;
      assert.equal(code, 0, agent.log());
      // Stopped: offline well within 3 heartbeat intervals (a clean close is immediate).
      const t = Date.now();
      await eventually(async () => (await status(id)).status === 'offline', { timeoutMs: 3 * HB });
      assert.ok(Date.now() - t <= 3 * HB);
    });
  }

  it('is refused with 4401 once revoked (exit status 3)', async () => {
    const r = await api.call('POST', '/agents', { token: admin, body: { agent_id: 'gw-prog-rev' } });
    const agent = runAgent(b, 'gw-prog-rev', r.body.token);
    await eventually(async () => (await status('gw-prog-rev')).status === 'online');
    assert.equal((await api.call('DELETE', '/agents/gw-prog-rev', { token: admin })).status, 204);
    const { code, log } = await agent.exited;
    assert.equal(code, 3, log);
    assert.match(log, /4401/);
    const again = runAgent(b, 'gw-prog-rev', r.body.token, ['--once']);
    assert.equal((await again.exited).code, 3);
    const audit = await api.call('GET', '/audit?action=agent.revoke', { token: admin });
    assert.ok(audit.body.entries.some((e) => e.target === 'gw-prog-rev' && e.outcome === 'success'));
  });

  it('exits 3 for a wrong token and 4 when replaced by a newer connection', async () => {
    const r = await api.call('POST', '/agents', { token: admin, body: { agent_id: 'gw-prog-2' } });
    assert.equal((await runAgent(b, 'gw-prog-2', 'not-the-token', ['--once']).exited).code, 3);
    const first = runAgent(b, 'gw-prog-2', r.body.token);
    await eventually(async () => (await status('gw-prog-2')).status === 'online');
    const second = runAgent(b, 'gw-prog-2', r.body.token);
    assert.equal((await first.exited).code, 4);
    second.proc.kill('SIGTERM');
    assert.equal((await second.exited).code, 0);
  });

  it('answers the Ed25519 challenge with a key from --gen-key; without one it stops (exit 3)', async () => {
    const keyFile = path.join(tempDir('vw-key-'), 'agent.key');
    const gen = spawnSync(AGENT, ['--gen-key', keyFile], { encoding: 'utf8' });
    assert.equal(gen.status, 0, gen.stderr);
    const publicKey = gen.stdout.trim();
    assert.equal(Buffer.from(publicKey, 'base64').length, 32);
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    // Never overwrites a key.
    assert.notEqual(spawnSync(AGENT, ['--gen-key', keyFile]).status, 0);
    assert.ok(existsSync(keyFile));

    const r = await api.call('POST', '/agents', { token: admin, body: { agent_id: 'gw-prog-ed', public_key: publicKey } });
    assert.equal(r.status, 201);
    const keyless = runAgent(b, 'gw-prog-ed', r.body.token);
    const { code, log } = await keyless.exited;
    assert.equal(code, 3, log);
    assert.match(log, /start it with --key-file/);

    // Another agent's key does not pass either.
    const otherKey = path.join(tempDir('vw-key-'), 'other.key');
    assert.equal(spawnSync(AGENT, ['--gen-key', otherKey]).status, 0);
    const wrong = runAgent(b, 'gw-prog-ed', r.body.token, ['--key-file', otherKey]);
    assert.equal((await wrong.exited).code, 3);

    const agent = runAgent(b, 'gw-prog-ed', r.body.token, ['--key-file', keyFile, '--format', 'msgpack']);
    await eventually(async () => (await status('gw-prog-ed')).status === 'online');
    agent.proc.kill('SIGTERM');
    assert.equal((await agent.exited).code, 0);
  });
});
