// The command engine end to end (SPEC §5): submission and validation,
// dispatch to a scripted agent (node `ws`), priorities, limits, retries with
// backoff, timeouts, offline queueing, expiry, cancellation, idempotency,
// fan-out, and kill -9 with no accepted command lost.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBackend } from './lib/backend.mjs';
import { ADMIN_PASSWORD, JWT_SECRET, Agent, client, eventually, userToken } from './lib/api.mjs';

const ENV = { VIWORKS_ADMIN_PASSWORD: ADMIN_PASSWORD, JWT_SECRET };
// Tokens of users each backend creates (a token must name a live user).
let operator, viewer;
async function makeUsers(api, admin) {
  operator = await userToken(api, admin, 'ops', 'operator');
  viewer = await userToken(api, admin, 'view', 'viewer');
}

// An agent that records commands and answers as its `policy` says:
// 'complete' | 'fail' | 'hold' (never answers) | function (msg) -> policy.
class ScriptedAgent extends Agent {
  constructor(url, opts) {
    super(url, opts);
    this.commands = [];
    this.cancels = [];
    this.policy = opts.policy ?? 'complete';
    // A custom handler must be in place before the welcome: queued commands
    // can arrive in the same read as the welcome itself.
    if (opts.onCommand) this.onCommand = (msg) => opts.onCommand(this, msg);
  }
  onFrame(msg) {
    if (msg.type === 'command') this.onCommand(msg);
    if (msg.type === 'cancel') this.cancels.push(msg.command_id);
  }
  onCommand(msg) {
    this.commands.push(msg);
    const policy = typeof this.policy === 'function' ? this.policy(msg) : this.policy;
    this.ws.send(JSON.stringify({ type: 'command_ack', command_id: msg.command_id }));
    if (policy === 'complete') this.result(msg.command_id, 'completed', { ok: msg.command_type });
    else if (policy === 'fail') this.result(msg.command_id, 'failed', null, 'it broke');
  }
  result(id, status, result, error) {
    this.ws.send(JSON.stringify({ type: 'command_result', command_id: id, status, ...(result ? { result } : {}), ...(error ? { error } : {}) }));
  }
}

describe('commands', () => {
  let b, api, admin;
  before(async () => {
    b = await startBackend({ env: ENV, args: ['--max-per-agent', '2'] });
    api = client(b);
    admin = await eventually(async () => (await api.call('POST', '/auth/token', { body: { username: 'admin', password: ADMIN_PASSWORD } })).body?.access_token);
    await makeUsers(api, admin);
  });
  after(async () => { await b.stop('SIGKILL'); b.cleanup(); });

  async function agentWithToken(id) {
    const r = await api.call('POST', '/agents', { token: admin, body: { agent_id: id, labels: { fleet: id.split('-')[0] } } });
    assert.equal(r.status, 201);
    return r.body.token;
  }
  const submit = (body, token = operator) => api.call('POST', '/commands', { token, body });
  const get = async (id) => (await api.call('GET', `/commands/${id}`, { token: viewer })).body;
  const until = (id, pred, opts) => eventually(async () => { const c = await get(id); return pred(c) && c; }, opts);

  it('validates submissions: 422 for unknown types and bad payloads, 400 for bad fields, roles', async () => {
    await agentWithToken('val-1');
    let r = await submit({ agent_id: 'val-1', type: 'reboot' });
    assert.equal(r.status, 422);
    assert.equal(r.body.error.code, 'unknown_command_type');
    r = await submit({ agent_id: 'val-1', type: 'exec', payload: { args: ['-l'] } });
    assert.equal(r.status, 422);
    assert.match(r.body.error.message, /payload\.cmd/);
    r = await submit({ agent_id: 'val-1', type: 'restart_service', payload: { name: 7 } });
    assert.equal(r.status, 422);
    for (const body of [{ type: 'ping' }, { agent_id: 'val-1', target: { labels: { a: 'b' } }, type: 'ping' },
      { agent_id: 'val-1', type: 'ping', priority: 'urgent' }, { agent_id: 'val-1', type: 'ping', timeout_ms: 50 },
      { agent_id: 'val-1', type: 'ping', max_retries: 11 }, { agent_id: 'val-1', type: 'ping', colour: 'red' }]) {
      r = await submit(body);
      assert.equal(r.status, 400, JSON.stringify(body));
    }
    // Strict types (SPEC §6): an integer field takes a JSON integer only, and the 400 names the field.
    for (const [field, value] of [['timeout_ms', '30000'], ['max_retries', '3'], ['expires_in_ms', '60000'],
      ['timeout_ms', 30000.5], ['timeout_ms', true], ['priority', 1]]) {
      r = await submit({ agent_id: 'val-1', type: 'ping', [field]: value });
      assert.equal(r.status, 400, `${field}: ${JSON.stringify(value)}`);
      assert.equal(r.body.error.code, 'bad_request');
      assert.match(r.body.error.message, new RegExp(`'${field}'`));
    }
    // Query strings still carry integers as decimal text.
    assert.equal((await api.call('GET', '/commands?agent_id=val-1&limit=10', { token: viewer })).status, 200);
    assert.equal((await api.call('GET', '/commands?limit=ten', { token: viewer })).status, 400);
    assert.equal((await submit({ agent_id: 'nobody', type: 'ping' })).status, 404);
    assert.equal((await submit({ agent_id: 'val-1', type: 'ping' }, viewer)).status, 403);
    const list = await api.call('GET', '/commands?agent_id=val-1', { token: viewer });
    assert.equal(list.body.commands.length, 0, 'nothing refused was stored');
  });

  it('queues for an offline agent and completes when it connects; 202 + Location', async () => {
    const token = await agentWithToken('off-1');
    const r = await submit({ agent_id: 'off-1', type: 'restart_service', payload: { name: 'wg0' } });
    assert.equal(r.status, 202);
    assert.equal(r.body.state, 'pending');
    assert.equal(r.headers.get('location'), `/commands/${r.body.command_id}`);
    for (const key of ['command_id', 'agent_id', 'type', 'payload', 'priority', 'state', 'attempts', 'max_retries', 'timeout_ms',
      'created_at', 'started_at', 'finished_at', 'expires_at', 'next_attempt_at', 'failure_reason', 'result', 'created_by'])
      assert.ok(key in r.body, key);
    assert.equal(r.body.created_by, 'ops');
    const agent = await new ScriptedAgent(b.wsUrl, { agentId: 'off-1', token }).connect();
    const c = await until(r.body.command_id, (x) => x.state === 'completed');
    assert.deepEqual(c.result, { ok: 'restart_service' });
    assert.equal(c.attempts, 1);
    assert.ok(c.started_at >= c.created_at && c.finished_at >= c.started_at);
    assert.equal(agent.commands[0].command_type, 'restart_service');
    assert.deepEqual(agent.commands[0].payload, { name: 'wg0' });
    assert.equal(agent.commands[0].attempt, 1);
    await agent.close();
  });

  it('dispatches by priority, FIFO inside a priority, never above the per-agent limit', async () => {
    const token = await agentWithToken('prio-1');
    const ids = {};
    for (const [name, priority] of [['n1', 'normal'], ['l1', 'low'], ['h1', 'high'], ['n2', 'normal'], ['h2', 'high'], ['l2', 'low']])
      ids[(await submit({ agent_id: 'prio-1', type: 'ping', priority })).body.command_id] = name;
    let inFlight = 0, maxInFlight = 0;
    // Answer each command a little later, so the limit matters.
    const agent = new ScriptedAgent(b.wsUrl, {
      agentId: 'prio-1', token,
      onCommand: (self, msg) => {
        self.commands.push(msg);
        inFlight++; maxInFlight = Math.max(maxInFlight, inFlight);
        setTimeout(() => { inFlight--; self.result(msg.command_id, 'completed', {}); }, 30);
      },
    });
    await agent.connect();
    await eventually(() => agent.commands.length === 6);
    assert.deepEqual(agent.commands.map((m) => ids[m.command_id]), ['h1', 'h2', 'n1', 'n2', 'l1', 'l2']);
    assert.ok(maxInFlight <= 2, `max in flight ${maxInFlight}`);
    await agent.close();
  });

  it('retries a failed attempt with backoff, then fails it for good (agent_error)', async () => {
    const token = await agentWithToken('retry-1');
    const agent = await new ScriptedAgent(b.wsUrl, { agentId: 'retry-1', token, policy: 'fail' }).connect();
    const r = await submit({ agent_id: 'retry-1', type: 'ping', max_retries: 2 });
    // While a retry waits (1 s backoff), the failed attempt's error is on the command already.
    const waiting = await until(r.body.command_id, (x) => x.failures === 1 && x.state === 'pending');
    assert.equal(waiting.error, 'it broke');
    assert.equal(waiting.failure_reason, 'agent_error');
    assert.ok(waiting.next_attempt_at > Date.now() - 5000, JSON.stringify(waiting));
    const c = await until(r.body.command_id, (x) => x.state === 'failed', { timeoutMs: 10000 });
    assert.equal(c.failure_reason, 'agent_error');
    assert.equal(c.attempts, 3);
    assert.equal(c.error, 'it broke');
    const t = agent.commands.map((m) => m.attempt);
    assert.deepEqual(t, [1, 2, 3]);
    await agent.close();
  });

  it('succeeds on a retry after an agent error', async () => {
    const token = await agentWithToken('retry-2');
    let n = 0;
    const agent = await new ScriptedAgent(b.wsUrl, { agentId: 'retry-2', token, policy: () => (n++ === 0 ? 'fail' : 'complete') }).connect();
    const r = await submit({ agent_id: 'retry-2', type: 'ping' });
    const c = await until(r.body.command_id, (x) => x.state === 'completed', { timeoutMs: 10000 });
    assert.equal(c.attempts, 2);
    await agent.close();
  });

  it('times out an attempt (cancel sent to the agent), retries, then fails with timeout', async () => {
    const token = await agentWithToken('slow-1');
    const agent = await new ScriptedAgent(b.wsUrl, { agentId: 'slow-1', token, policy: 'hold' }).connect();
    const r = await submit({ agent_id: 'slow-1', type: 'ping', timeout_ms: 200, max_retries: 1 });
    const c = await until(r.body.command_id, (x) => x.state === 'failed', { timeoutMs: 10000 });
    assert.equal(c.failure_reason, 'timeout');
    assert.equal(c.attempts, 2);
    await eventually(() => agent.cancels.filter((x) => x === r.body.command_id).length === 2);
    // A late result is ignored: the command stays failed.
    agent.result(r.body.command_id, 'completed', { late: true });
    await new Promise((res) => setTimeout(res, 100));
    assert.equal((await get(r.body.command_id)).state, 'failed');
    await agent.close();
  });

  it('cancels pending and executing commands (200), and refuses finished ones (409)', async () => {
    const token = await agentWithToken('cxl-1');
    const pending = await submit({ agent_id: 'cxl-1', type: 'ping' });
    let r = await api.call('POST', `/commands/${pending.body.command_id}/cancel`, { token: operator });
    assert.equal(r.status, 200);
    assert.equal(r.body.state, 'cancelled');
    assert.equal(r.body.failure_reason, 'cancelled_by_user');
    const agent = await new ScriptedAgent(b.wsUrl, { agentId: 'cxl-1', token, policy: 'hold' }).connect();
    const running = await submit({ agent_id: 'cxl-1', type: 'ping' });
    // Acknowledged, no result: the ack's time is recorded while it runs.
    const executing = await until(running.body.command_id, (x) => x.state === 'executing' && x.delivered_at);
    assert.ok(executing.delivered_at >= executing.started_at, JSON.stringify(executing));
    r = await api.call('POST', `/commands/${running.body.command_id}/cancel`, { token: operator });
    assert.equal(r.status, 200);
    assert.equal(r.body.state, 'cancelled');
    await eventually(() => agent.cancels.includes(running.body.command_id));
    assert.equal(agent.commands.filter((m) => m.command_id === pending.body.command_id).length, 0, 'a cancelled pending command is never sent');
    r = await api.call('POST', `/commands/${running.body.command_id}/cancel`, { token: operator });
    assert.equal(r.status, 409);
    r = await api.call('POST', '/commands/nope/cancel', { token: operator });
    assert.equal(r.status, 404);
    assert.equal((await api.call('POST', `/commands/${running.body.command_id}/cancel`, { token: viewer })).status, 403);
    await agent.close();
  });

  it('expires commands that wait longer than expires_in_ms', async () => {
    await agentWithToken('exp-1');
    const r = await submit({ agent_id: 'exp-1', type: 'ping', expires_in_ms: 150 });
    const c = await until(r.body.command_id, (x) => x.state === 'failed', { timeoutMs: 5000 });
    assert.equal(c.failure_reason, 'expired');
    assert.equal(c.attempts, 0);
  });

  it('re-dispatches in-flight commands on a new connection (same command_id)', async () => {
    const token = await agentWithToken('re-1');
    const first = await new ScriptedAgent(b.wsUrl, { agentId: 're-1', token, policy: 'hold' }).connect();
    const r = await submit({ agent_id: 're-1', type: 'ping' });
    await eventually(() => first.commands.length === 1);
    const second = await new ScriptedAgent(b.wsUrl, { agentId: 're-1', token }).connect();
    assert.equal((await first.waitClose()).code, 4409);
    const c = await until(r.body.command_id, (x) => x.state === 'completed');
    assert.equal(second.commands[0].command_id, r.body.command_id);
    assert.equal(c.attempts, 2);
    await second.close();
  });

  it('honours idempotency keys and fans out by labels', async () => {
    await agentWithToken('fan-1');
    await agentWithToken('fan-2');
    const a = await submit({ agent_id: 'fan-1', type: 'ping', idempotency_key: 'once' });
    const again = await submit({ agent_id: 'fan-1', type: 'ping', idempotency_key: 'once' });
    assert.equal(again.status, 202);
    assert.equal(again.body.command_id, a.body.command_id);
    const fan = await submit({ target: { labels: { fleet: 'fan' } }, type: 'ping', priority: 'low' });
    assert.equal(fan.status, 202);
    assert.deepEqual(fan.body.commands.map((c) => c.agent_id).sort(), ['fan-1', 'fan-2']);
    assert.notEqual(fan.body.commands[0].command_id, fan.body.commands[1].command_id);
    const listed = await api.call('GET', '/commands?agent_id=fan-1&limit=10', { token: viewer });
    assert.equal(listed.body.commands.length, 2);
    const audit = await api.call('GET', '/audit?action=command.submit', { token: admin });
    assert.ok(audit.body.entries.some((e) => e.actor === 'ops' && e.outcome === 'success'));
  });

  it('reports statistics: commands by state, queue depth, in flight, success rate, latency', async () => {
    const r = await api.call('GET', '/statistics', { token: viewer });
    assert.equal(r.status, 200);
    const s = r.body;
    for (const state of ['pending', 'executing', 'completed', 'failed', 'cancelled'])
      assert.equal(typeof s.commands[state], 'number', state);
    assert.ok(s.commands.completed >= 5 && s.commands.failed >= 2 && s.commands.cancelled >= 2, JSON.stringify(s.commands));
    for (const status of ['online', 'degraded', 'maintenance', 'offline'])
      assert.equal(typeof s.agents[status], 'number', status);
    assert.deepEqual(Object.keys(s.queue.queue_depth).sort(), ['high', 'low', 'normal']);
    assert.equal(typeof s.queue.in_flight, 'number');
    assert.ok(s.queue.finished_in_window > 0);
    assert.ok(s.queue.success_rate > 0 && s.queue.success_rate < 1);
    const l = s.queue.latency;
    assert.ok(l.p50_ms <= l.p95_ms && l.p95_ms <= l.p99_ms, JSON.stringify(l));
    assert.ok(s.messages.scheduler.in > 0 && s.messages.edge.out > 0);
    assert.equal((await api.call('GET', '/statistics')).status, 401);
  });
});

describe('durability', () => {
  it('keeps failed attempts, waiting retries and expiry across kill -9', async () => {
    const b1 = await startBackend({ env: ENV });
    const api1 = client(b1);
    const admin = await eventually(async () => (await api1.call('POST', '/auth/token', { body: { username: 'admin', password: ADMIN_PASSWORD } })).body?.access_token);
    await makeUsers(api1, admin);
    const token = (await api1.call('POST', '/agents', { token: admin, body: { agent_id: 'dur-f' } })).body.token;
    await api1.call('POST', '/agents', { token: admin, body: { agent_id: 'dur-off' } });
    const agent = await new ScriptedAgent(b1.wsUrl, { agentId: 'dur-f', token, policy: 'fail' }).connect();
    const submit1 = async (body) => (await api1.call('POST', '/commands', { token: operator, body })).body.command_id;
    const failing = await submit1({ agent_id: 'dur-f', type: 'ping', max_retries: 1 });
    const expiring = await submit1({ agent_id: 'dur-off', type: 'ping', expires_in_ms: 1500 });
    // The first attempt failed: waiting out its backoff (about 1 s) when killed.
    const waiting = await eventually(async () => {
      const c = (await api1.call('GET', `/commands/${failing}`, { token: viewer })).body;
      return c.state === 'pending' && c.failures === 1 && c;
    });
    assert.equal(waiting.failure_reason, 'agent_error');
    assert.ok(waiting.next_attempt_at > Date.now() - 1000);
    await b1.stop('SIGKILL');
    await agent.waitClose();
    const b2 = await startBackend({ env: ENV, cwd: b1.dir });
    try {
      const api2 = client(b2);
      const again = await new ScriptedAgent(b2.wsUrl, { agentId: 'dur-f', token, policy: 'fail' }).connect();
      // The stored failure counts: one more failed attempt ends it (max_retries 1).
      const c = await eventually(async () => {
        const x = (await api2.call('GET', `/commands/${failing}`, { token: viewer })).body;
        return x.state === 'failed' && x;
      }, { timeoutMs: 10000 });
      assert.equal(c.failures, 2);
      assert.equal(c.attempts, 2);
      assert.equal(again.commands.length, 1);
      // Expired while the backend was down, or soon after: failed, expired.
      const e = await eventually(async () => {
        const x = (await api2.call('GET', `/commands/${expiring}`, { token: viewer })).body;
        return x.state === 'failed' && x;
      }, { timeoutMs: 5000 });
      assert.equal(e.failure_reason, 'expired');
      await again.close();
    } finally { await b2.stop('SIGKILL'); b2.cleanup(); }
  });

  it('loses no accepted command across kill -9 during a run of 1,000 commands', async () => {
    const b1 = await startBackend({ env: ENV });
    const api1 = client(b1);
    const admin = await eventually(async () => (await api1.call('POST', '/auth/token', { body: { username: 'admin', password: ADMIN_PASSWORD } })).body?.access_token);
    await makeUsers(api1, admin);
    const token = (await api1.call('POST', '/agents', { token: admin, body: { agent_id: 'dur-1' } })).body.token;
    const agent = await new ScriptedAgent(b1.wsUrl, { agentId: 'dur-1', token }).connect();
    const accepted = [];
    let killed = false;
    const submitting = (async () => {
      for (let i = 0; i < 1000 && !killed; i++) {
        try {
          const r = await api1.call('POST', '/commands', { token: operator, body: { agent_id: 'dur-1', type: 'ping' } });
          if (r.status === 202) accepted.push(r.body.command_id);
        } catch { break; }   // the server went away mid-request
      }
    })();
    await eventually(() => accepted.length >= 300, { timeoutMs: 30000 });
    killed = true;
    await b1.stop('SIGKILL');
    await submitting;
    await agent.waitClose();
    const b2 = await startBackend({ env: ENV, cwd: b1.dir });
    try {
      const api2 = client(b2);
      const again = await new ScriptedAgent(b2.wsUrl, { agentId: 'dur-1', token }).connect();
      // Every accepted command exists and ends completed (pending/executing
      // ones are dispatched again after the restart).
      for (const id of accepted) {
        let seen;
        const c = await eventually(async () => {
          const x = (await api2.call('GET', `/commands/${id}`, { token: viewer })).body;
          seen = x;
          return x?.state === 'completed' && x;
        }, { timeoutMs: 20000 }).catch((e) => { throw new Error(`${e.message}: ${JSON.stringify(seen)}\n${b2.lines.slice(-30).join('\n')}`); });
        assert.equal(c.command_id, id);
      }
      await again.close();
    } finally { await b2.stop('SIGKILL'); b2.cleanup(); }
  });
});
