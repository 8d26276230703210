// Sessions are real (issue "Correctness under faults", finding 7): a
// connection that closes between its hello and its welcome leaves no
// session behind. Before, the welcome crossed the close, the edge dropped it
// for a connection it no longer had, and the agent stayed "online" on a dead
// connection for three heartbeat intervals.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startBackend } from './lib/backend.mjs';
import { ADMIN_PASSWORD, JWT_SECRET, Agent, client, eventually } from './lib/api.mjs';

const ENV = { VIWORKS_ADMIN_PASSWORD: ADMIN_PASSWORD, JWT_SECRET };
const HB = 2000;   // 3 intervals = 6 s of ghost, if there were one

describe('sessions', () => {
  let b, api, admin, token;
  before(async () => {
    b = await startBackend({ env: ENV, args: ['--heartbeat-interval', `${HB}ms`] });
    api = client(b);
    admin = await eventually(async () => (await api.call('POST', '/auth/token', { body: { username: 'admin', password: ADMIN_PASSWORD } })).body?.access_token);
    token = (await api.call('POST', '/agents', { token: admin, body: { agent_id: 'gw-ghost' } })).body.token;
    // One full session first, so the registry has the credentials cached
    // and answers later hellos at once (the welcome then races the close).
    const a = await new Agent(b.wsUrl, { agentId: 'gw-ghost', token }).connect();
    await a.close();
    await eventually(async () => (await api.call('GET', '/agents/gw-ghost', { token: admin })).body.status === 'offline');
  });
  after(async () => { await b.stop('SIGKILL'); b.cleanup(); });

  it('a connection closed right after its hello leaves no session online', async () => {
    for (let i = 0; i < 15; i++) {
      await new Promise((resolve) => {
        const ws = new WebSocket(b.wsUrl, ['viworks.v1.json']);
        ws.on('open', () => {
          ws.send(JSON.stringify({ type: 'hello', agent_id: 'gw-ghost', token, version: '1.0.0', hostname: 'h' }));
          ws.terminate();
        });
        ws.on('close', resolve);
        ws.on('error', resolve);
      });
    }
    // Every session that was opened has ended, long before three heartbeat
    // intervals (6 s) would end a ghost: connects and disconnects balance
    // within one interval, and the agent is offline.
    const agent = await eventually(async () => {
      const a = (await api.call('GET', '/agents/gw-ghost', { token: admin })).body;
      return a.connect_count === a.disconnect_count && a.status === 'offline' && a;
    }, { timeoutMs: HB / 2 });
    assert.ok(agent.connect_count >= 1);
    // And the agent can still connect normally.
    const a = await new Agent(b.wsUrl, { agentId: 'gw-ghost', token }).connect();
    assert.ok(a.welcome.session_id);
    await a.close();
  });
});
