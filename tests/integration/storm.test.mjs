// Reconnect storms (issue 10, deliverable 4): an edge keeps at most
// ws.max_pending_hellos hellos waiting for the registry; the next ones get
// `error unavailable` with a retry_after_ms and close 1013 (SPEC §3), and
// viworks-agent waits that long before its next try.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket, { WebSocketServer } from 'ws';
import { runAgent } from './lib/agent.mjs';
import { startBackend } from './lib/backend.mjs';
import { ADMIN_PASSWORD, BUILTIN_TYPES, JWT_SECRET, client, eventually } from './lib/api.mjs';

const N = 40;

// Opens a WebSocket and resolves once it is open; frames and the close are
// collected on the returned object.
function open(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ['viworks.v1.json']);
    const s = { ws, frames: [], closed: null };
    s.done = new Promise((res) => ws.once('close', (code, reason) => { s.closed = { code, reason: reason.toString() }; res(s); }));
    ws.on('message', (d) => {
      const msg = JSON.parse(d.toString());
      s.frames.push(msg);
      if (msg.type === 'welcome') s.welcomed?.();
    });
    ws.once('open', () => resolve(s));
    ws.once('error', reject);
  });
}

const hello = (id, token) => JSON.stringify({ type: 'hello', agent_id: id, token, version: '1.0.0', capabilities: BUILTIN_TYPES });

describe('admission control at the agent edge', () => {
  let b, api, admin;
  const tokens = {};
  before(async () => {
    b = await startBackend({
      env: { VIWORKS_ADMIN_PASSWORD: ADMIN_PASSWORD, JWT_SECRET },
      args: ['--ws-max-pending-hellos', '1', '--ratelimit-hello-rate', '100000', '--ratelimit-hello-burst', '100000'],
    });
    api = client(b);
    admin = await eventually(async () => (await api.call('POST', '/auth/token', { body: { username: 'admin', password: ADMIN_PASSWORD } })).body?.access_token);
    for (let i = 0; i < N; i++) {
      const id = `gw-storm-${i}`;
      const r = await api.call('POST', '/agents', { token: admin, body: { agent_id: id } });
      assert.equal(r.status, 201);
      tokens[id] = r.body.token;
    }
  });
  after(async () => { await b.stop('SIGKILL'); b.cleanup(); });

  it('refuses hellos past ws.max_pending_hellos with 1013 and a jittered retry_after_ms, and admits them later', async () => {
    const ids = Object.keys(tokens);
    let refused = [];
    // The hellos of one burst reach the edge in one or a few loop passes,
    // before the registry can answer: with room for one, most of a burst is
    // refused. Bounded: a few bursts at most.
    for (let round = 0; round < 5 && refused.length === 0; round++) {
      const socks = await Promise.all(ids.map(() => open(b.wsUrl)));
      const welcomed = socks.map((s) => new Promise((res) => { s.welcomed = res; }));
      socks.forEach((s, i) => s.ws.send(hello(ids[i], tokens[ids[i]])));
      // Every connection ends one way or the other.
      await Promise.all(socks.map((s, i) => Promise.race([welcomed[i], s.done])));
      for (const s of socks) {
        if (s.frames.some((f) => f.type === 'welcome')) continue;
        await s.done;
        const err = s.frames.find((f) => f.type === 'error');
        assert.ok(err, `no error frame before the close: ${JSON.stringify(s.frames)}`);
        assert.equal(err.code, 'unavailable');
        assert.ok(Number.isInteger(err.retry_after_ms) && err.retry_after_ms >= 250 && err.retry_after_ms <= 30250,
          `retry_after_ms ${err.retry_after_ms}`);
        assert.equal(s.closed.code, 1013);
        refused.push(err.retry_after_ms);
      }
      const welcomedCount = socks.length - socks.filter((s) => !s.frames.some((f) => f.type === 'welcome')).length;
      assert.ok(welcomedCount >= 1, 'nobody was admitted');
      for (const s of socks) if (s.ws.readyState === WebSocket.OPEN) s.ws.close(1000);
      await Promise.all(socks.map((s) => s.done));
    }
    assert.ok(refused.length > 0, 'no hello was refused in 5 bursts with room for one');
    // Jittered: the refused do not all hear the same delay.
    if (refused.length >= 5) assert.ok(new Set(refused).size > 1, `retry_after_ms all equal: ${refused}`);
    // Refusal is not a verdict: one at a time, every agent is admitted.
    for (const id of ids.slice(0, 5)) {
      const s = await open(b.wsUrl);
      const w = new Promise((res) => { s.welcomed = res; });
      s.ws.send(hello(id, tokens[id]));
      await Promise.race([w, s.done]);
      assert.ok(s.frames.some((f) => f.type === 'welcome'), JSON.stringify(s.frames));
      s.ws.close(1000);
      await s.done;
    }
  });
});

describe('viworks-agent and retry_after_ms', () => {
  let wss, port;
  const conns = [];
  before(async () => {
    wss = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: (p) => [...p][0] });
    await new Promise((r) => wss.once('listening', r));
    port = wss.address().port;
    // First connection: refused the way the backend refuses in a storm;
    // the next ones: welcomed.
    wss.on('connection', (ws) => {
      const at = Date.now();
      const n = conns.length;
      conns.push({ at });
      ws.on('message', (d) => {
        const msg = JSON.parse(d.toString());
        if (msg.type !== 'hello') return;
        if (n === 0) {
          ws.send(JSON.stringify({ type: 'error', code: 'unavailable', message: 'busy', retry_after_ms: 1500 }));
          ws.close(1013, 'try again later');
          conns[n].closedAt = Date.now();
        } else {
          ws.send(JSON.stringify({ type: 'welcome', session_id: 's1', heartbeat_interval_ms: 10000, server_time: Date.now() }));
        }
      });
    });
  });
  after(() => new Promise((r) => wss.close(r)));

  it('waits retry_after_ms (plus jitter, at most a fifth) before it says hello again', async () => {
    const agent = runAgent({ wsUrl: `ws://127.0.0.1:${port}/ws/agent` }, 'gw-retry', 'a-token');
    await eventually(() => conns.length >= 2, { timeoutMs: 10000 });
    const waited = conns[1].at - conns[0].closedAt;
    assert.ok(waited >= 1500, `reconnected after ${waited} ms, before retry_after_ms`);
    assert.ok(waited <= 1500 * 1.2 + 1000, `reconnected only after ${waited} ms`);
    await agent.stop();
  });
});
