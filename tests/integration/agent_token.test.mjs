// Agent token rotation (issue 12): POST /agents/{id}/token (and the admin
// op, via viworksctl elsewhere) gives a new token; the old one keeps working
// until the agent has connected with the new one, or until the grace ends —
// whichever comes first — across a restart of the backend too; audited.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { startBackend } from './lib/backend.mjs';
import { ADMIN_PASSWORD, JWT_SECRET, Agent, client, eventually } from './lib/api.mjs';

describe('agent token rotation', () => {
  let b, api, admin;
  before(async () => {
    b = await startBackend({ env: { JWT_SECRET, VIWORKS_ADMIN_PASSWORD: ADMIN_PASSWORD } });
    api = client(b);
    admin = await eventually(() => api.login().catch(() => false));
  });
  after(async () => { await b.stop('SIGKILL'); b.cleanup(); });

  const create = async (id) => {
    const r = await api.call('POST', '/agents', { token: admin, body: { agent_id: id } });
    assert.equal(r.status, 201);
    return r.body.token;
  };
  const rotate = (id, body = {}) => api.call('POST', `/agents/${id}/token`, { token: admin, body });
  const hello = async (id, token) => {
    const a = new Agent(b.wsUrl, { agentId: id, token });
    try { await a.connect(); await a.close(); return 'welcome'; } catch (e) { return e.code; }
  };

  it('the old token works until the agent uses the new one; then only the new one', async () => {
    const old = await create('gw-rot-1');
    assert.equal(await hello('gw-rot-1', old), 'welcome');
    const t0 = Date.now();
    const r = await rotate('gw-rot-1');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.agent_id, 'gw-rot-1');
    assert.notEqual(r.body.token, old);
    assert.ok(r.body.previous_valid_until >= t0 + 86400 * 1000 - 1000, JSON.stringify(r.body));
    // Both work during the change-over: the agent may reconnect with the
    // old one before its new configuration is in place.
    assert.equal(await hello('gw-rot-1', old), 'welcome');
    assert.equal(await hello('gw-rot-1', r.body.token), 'welcome');
    // It has used the new one: the old one stops, also after a restart.
    assert.equal(await hello('gw-rot-1', old), 4401);
    await b.stop();
    b = await startBackend({ cwd: b.dir, env: { JWT_SECRET, VIWORKS_ADMIN_PASSWORD: ADMIN_PASSWORD }, ports: b });
    api = client(b);
    assert.equal(await hello('gw-rot-1', old), 4401);
    assert.equal(await hello('gw-rot-1', r.body.token), 'welcome');
    const audit = execFileSync('sqlite3', [path.join(b.dir, 'data', 'viworks.db'),
      "SELECT outcome FROM audit_logs WHERE action = 'agent.rotate_token' AND target = 'gw-rot-1'"]).toString().trim();
    assert.equal(audit, 'success');
  });

  it('with no grace the old token stops at once; bad requests and unknown agents are refused', async () => {
    const old = await create('gw-rot-2');
    const r = await rotate('gw-rot-2', { grace_s: 0 });
    assert.equal(r.status, 200);
    assert.equal(await hello('gw-rot-2', old), 4401);
    assert.equal(await hello('gw-rot-2', r.body.token), 'welcome');
    assert.equal((await rotate('gw-rot-2', { grace_s: -1 })).status, 400);
    assert.equal((await rotate('gw-rot-2', { agent_id: 'x' })).status, 400);
    assert.equal((await rotate('nobody')).status, 404);
    const viewer = await api.call('POST', '/agents/gw-rot-2/token', { body: {} });
    assert.equal(viewer.status, 401);
  });
});
