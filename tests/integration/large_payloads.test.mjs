// Large payloads in quantity (issue "Correctness under faults", finding 1):
// more than a receiver takes in one message (64 MiB) of commands for one
// offline agent. Before, the recovery page after a restart was refused for
// its size and retried forever, and a list of them came back empty. Now
// pages, lists and bundles are bounded by bytes: every command is listed,
// recovered after kill -9, and completed by the real viworks-agent.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startBackend } from './lib/backend.mjs';
import { ADMIN_PASSWORD, JWT_SECRET, client, eventually } from './lib/api.mjs';
import { runAgent } from './lib/agent.mjs';

const ENV = { VIWORKS_ADMIN_PASSWORD: ADMIN_PASSWORD, JWT_SECRET };
// x ~1 MB: 80 MB, over the 64 MiB message limit. VW_LARGE_COUNT=200 runs
// the issue's acceptance figure (too slow under ASan for every CI run).
const COUNT = Number(process.env.VW_LARGE_COUNT ?? 80);
const BLOB = 'x'.repeat(1000 * 1000);

async function listAll(api, token, agentId) {
  const states = {};
  let cursor = null, pages = 0;
  do {
    const r = await api.call('GET', `/commands?agent_id=${agentId}&limit=1000${cursor ? `&cursor=${cursor}` : ''}`, { token });
    assert.equal(r.status, 200, JSON.stringify(r.body).slice(0, 300));
    for (const c of r.body.commands) states[c.state] = (states[c.state] ?? 0) + 1;
    cursor = r.body.next_cursor;
    pages++;
  } while (cursor && pages < 100);
  return { states, pages };
}

describe('large payloads in quantity', () => {
  it('are listed, recovered after kill -9 and all completed by a real agent', async () => {
    const b1 = await startBackend({ env: ENV });
    const api1 = client(b1);
    const admin = await eventually(async () => (await api1.call('POST', '/auth/token', { body: { username: 'admin', password: ADMIN_PASSWORD } })).body?.access_token);
    const token = (await api1.call('POST', '/agents', { token: admin, body: { agent_id: 'gw-big' } })).body.token;
    for (let i = 0; i < COUNT; i++) {
      const r = await api1.call('POST', '/commands', { token: admin, body: { agent_id: 'gw-big', type: 'update_config', payload: { config: { i, blob: BLOB } } } });
      assert.equal(r.status, 202, JSON.stringify(r.body));
    }
    let list = await listAll(api1, admin, 'gw-big');
    assert.deepEqual(list.states, { pending: COUNT });
    assert.ok(list.pages >= 2, `${list.pages} page(s)`);
    await b1.stop('SIGKILL');

    const b2 = await startBackend({ env: ENV, cwd: b1.dir });
    const dir = mkdtempSync(path.join(os.tmpdir(), 'vw-big-'));
    const target = path.join(dir, 'config.json');
    let agent;
    try {
      await eventually(() => b2.lines.some((l) => new RegExp(`${COUNT} unfinished command\\(s\\) recovered`).test(l)), { timeoutMs: 20000 });
      const api2 = client(b2);
      const admin2 = await eventually(async () => (await api2.call('POST', '/auth/token', { body: { username: 'admin', password: ADMIN_PASSWORD } })).body?.access_token);
      agent = runAgent(b2, 'gw-big', token, ['--config-target', target]);
      await eventually(async () => (await listAll(api2, admin2, 'gw-big')).states.completed === COUNT, { timeoutMs: 1500 * COUNT, stepMs: 500 });
      list = await listAll(api2, admin2, 'gw-big');
      assert.deepEqual(list.states, { completed: COUNT });
      // The agent wrote each config: the last one is on disk.
      assert.equal(JSON.parse(readFileSync(target, 'utf8')).blob.length, BLOB.length);
      await agent.stop();
    } finally {
      if (agent && agent.proc.exitCode === null) agent.proc.kill('SIGKILL');
      await b2.stop('SIGKILL');
      b2.cleanup();
    }
  });
});
