// Commands executed by our own agent (viworks-agent), as an operator would
// run it: the built-in types (exec from an allow-list, restart_service,
// update_config, collect_logs, upgrade), offline queueing, timeouts with
// the program stopped by the cancel, fault injection (fail, hang,
// disconnect), and at-least-once re-delivery after a backend kill -9
// without running a program twice.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { runAgent } from './lib/agent.mjs';
import { startBackend, tempDir } from './lib/backend.mjs';
import { ADMIN_PASSWORD, JWT_SECRET, client, eventually, userToken } from './lib/api.mjs';

const ENV = { VIWORKS_ADMIN_PASSWORD: ADMIN_PASSWORD, JWT_SECRET };
let operator;  // a user each backend creates (a token must name a live user)

describe('viworks-agent runs commands', () => {
  let b, api, admin;
  const work = tempDir('vw-agent-cmds-');
  before(async () => {
    b = await startBackend({ env: ENV });
    api = client(b);
    admin = await eventually(async () => (await api.call('POST', '/auth/token', { body: { username: 'admin', password: ADMIN_PASSWORD } })).body?.access_token);
    operator = await userToken(api, admin, 'ops', 'operator');
  });
  after(async () => { await b.stop('SIGKILL'); b.cleanup(); });

  const register = async (id) => {
    const r = await api.call('POST', '/agents', { token: admin, body: { agent_id: id } });
    assert.equal(r.status, 201);
    return r.body.token;
  };
  const online = (id) => eventually(async () => (await api.call('GET', `/agents/${id}`, { token: admin })).body?.status === 'online');
  const submit = async (body) => {
    const r = await api.call('POST', '/commands', { token: operator, body });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    return r.body.command_id;
  };
  const get = async (id) => (await api.call('GET', `/commands/${id}`, { token: operator })).body;
  const finished = (id, timeoutMs = 10000) => eventually(async () => {
    const c = await get(id);
    return ['completed', 'failed', 'cancelled'].includes(c.state) && c;
  }, { timeoutMs });

  it('executes every built-in type as configured, and refuses what is not allowed', async () => {
    const token = await register('gw-types');
    const target = path.join(work, 'gateway.json');
    const config = path.join(work, 'agent.conf');
    // Options from a config file, as a deployment would have them.
    writeFileSync(config, [
      '# viworks-agent configuration', 'allow-exec /bin/echo', 'allow-exec /bin/sh',
      'allow-service wg0', 'service-command /bin/echo restarting', `config-target ${target}`,
      'upgrade-command /bin/echo', ''].join('\n'));
    const agent = runAgent(b, 'gw-types', token, ['--config', config]);
    try {
      await online('gw-types');
      const caps = (await api.call('GET', '/agents/gw-types', { token: admin })).body.capabilities;
      assert.deepEqual([...caps].sort(), ['collect_logs', 'exec', 'ping', 'restart_service', 'update_config', 'upgrade']);

      let c = await finished(await submit({ agent_id: 'gw-types', type: 'exec', payload: { cmd: '/bin/echo', args: ['hello', '$HOME'] } }));
      assert.equal(c.state, 'completed', JSON.stringify(c));
      assert.equal(c.result.stdout, 'hello $HOME\n');   // no shell
      assert.equal(c.result.exit_status, 0);
      // Acked, then answered: both times recorded, in order.
      assert.ok(c.started_at <= c.delivered_at && c.delivered_at <= c.finished_at, JSON.stringify(c));

      // A non-zero exit fails with the output kept.
      c = await finished(await submit({ agent_id: 'gw-types', type: 'exec', max_retries: 0, payload: { cmd: '/bin/sh', args: ['-c', 'echo out; echo err >&2; exit 7'] } }));
      assert.equal(c.state, 'failed');
      assert.equal(c.failure_reason, 'agent_error');
      assert.match(c.error, /exit status 7/);
      assert.equal(c.result.stdout, 'out\n');
      assert.equal(c.result.stderr, 'err\n');

      // Not on the allow-list: refused without running anything.
      c = await finished(await submit({ agent_id: 'gw-types', type: 'exec', max_retries: 0, payload: { cmd: '/bin/rm', args: ['-rf', work] } }));
      assert.equal(c.state, 'failed');
      assert.match(c.error, /not in this agent's exec allow-list/);
      c = await finished(await submit({ agent_id: 'gw-types', type: 'restart_service', max_retries: 0, payload: { name: 'sshd' } }));
      assert.match(c.error, /not in this agent's allow-list/);

      c = await finished(await submit({ agent_id: 'gw-types', type: 'restart_service', payload: { name: 'wg0' } }));
      assert.equal(c.state, 'completed', JSON.stringify(c));
      assert.equal(c.result.stdout, 'restarting wg0\n');
      assert.equal(c.result.service, 'wg0');

      c = await finished(await submit({ agent_id: 'gw-types', type: 'update_config', payload: { config: { mtu: 1420, peers: ['a', 'b'] } } }));
      assert.equal(c.state, 'completed', JSON.stringify(c));
      assert.deepEqual(JSON.parse(readFileSync(target, 'utf8')), { mtu: 1420, peers: ['a', 'b'] });
      assert.equal(c.result.path, target);
      assert.match(c.result.sha256, /^[0-9a-f]{64}$/);

      c = await finished(await submit({ agent_id: 'gw-types', type: 'upgrade', payload: { version: '2.0.0', url: 'https://example.invalid/agent.deb' } }));
      assert.equal(c.result.stdout, '2.0.0 https://example.invalid/agent.deb\n');

      c = await finished(await submit({ agent_id: 'gw-types', type: 'collect_logs', payload: { lines: 5 } }));
      assert.equal(c.state, 'completed');
      assert.ok(c.result.count >= 1 && c.result.count <= 5, JSON.stringify(c.result));
      assert.equal(c.result.lines.length, c.result.count);
      assert.ok(c.result.lines.some((l) => /command/.test(l)), JSON.stringify(c.result.lines));
    } finally { await agent.stop(); }
  });

  it('fails at once, without retries, a command whose type the agent does not list in its capabilities', async () => {
    const token = await register('gw-noexec');
    const agent = runAgent(b, 'gw-noexec', token);   // no --allow-exec: exec is not claimed
    try {
      await online('gw-noexec');
      const caps = (await api.call('GET', '/agents/gw-noexec', { token: admin })).body.capabilities;
      assert.ok(!caps.includes('exec') && caps.includes('ping'), JSON.stringify(caps));
      const started = Date.now();
      const c = await finished(await submit({ agent_id: 'gw-noexec', type: 'exec', payload: { cmd: '/bin/echo' } }));
      assert.equal(c.state, 'failed', JSON.stringify(c));
      assert.equal(c.failure_reason, 'agent_error');
      assert.equal(c.attempts, 1);
      assert.equal(c.max_retries, 3);
      assert.match(c.error, /agent 'gw-noexec' does not support command type 'exec' \(capabilities in its hello: .*ping/);
      // No backoff was waited (the first retry alone would take 0.8 s or more).
      assert.ok(Date.now() - started < 800, `took ${Date.now() - started} ms`);
      assert.equal(c.delivered_at, null);
      // The agent never saw it; a type it does list still runs.
      const p = await finished(await submit({ agent_id: 'gw-noexec', type: 'ping' }));
      assert.equal(p.state, 'completed');
      assert.ok(agent.log().includes(p.command_id), 'the agent logs the commands it gets');
      assert.ok(!agent.log().includes(c.command_id));
    } finally { await agent.stop(); }
  });

  it('runs a command submitted while it was offline once it connects', async () => {
    const token = await register('gw-late');
    const id = await submit({ agent_id: 'gw-late', type: 'ping' });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await get(id)).state, 'pending');
    const agent = runAgent(b, 'gw-late', token);
    try {
      const c = await finished(id);
      assert.equal(c.state, 'completed');
      assert.deepEqual(c.result, { pong: true });
    } finally { await agent.stop(); }
  });

  it('stops a program that outlives its timeout (the cancel reaches it), then retries', async () => {
    const token = await register('gw-slow');
    const marker = path.join(work, 'slow-runs');
    const agent = runAgent(b, 'gw-slow', token, ['--allow-exec', '/bin/sh']);
    try {
      await online('gw-slow');
      const id = await submit({ agent_id: 'gw-slow', type: 'exec', timeout_ms: 400, max_retries: 1, payload: { cmd: '/bin/sh', args: ['-c', `echo run >> ${marker}; exec sleep 30`] } });
      const c = await finished(id, 15000);
      assert.equal(c.state, 'failed');
      assert.equal(c.failure_reason, 'timeout');
      assert.equal(c.attempts, 2);
      assert.equal(readFileSync(marker, 'utf8'), 'run\nrun\n');
      await eventually(() => (agent.log().match(/stopped after its cancel/g) ?? []).length === 2, { timeoutMs: 5000 });
    } finally { await agent.stop(); }
  });

  it('fails, hangs or disconnects on command when told to', async () => {
    const tf = await register('gw-fail');
    const th = await register('gw-hang');
    const td = await register('gw-drop');
    const fail = runAgent(b, 'gw-fail', tf, ['--fail-fraction', '1']);
    const hang = runAgent(b, 'gw-hang', th, ['--hang-fraction', '1']);
    const drop = runAgent(b, 'gw-drop', td, ['--disconnect-fraction', '1']);
    try {
      await Promise.all([online('gw-fail'), online('gw-hang'), online('gw-drop')]);
      const f = await submit({ agent_id: 'gw-fail', type: 'ping', max_retries: 1 });
      const h = await submit({ agent_id: 'gw-hang', type: 'ping', timeout_ms: 300, max_retries: 0 });
      const d = await submit({ agent_id: 'gw-drop', type: 'ping' });
      let c = await finished(f);
      assert.equal(c.state, 'failed');
      assert.equal(c.failure_reason, 'agent_error');
      assert.equal(c.attempts, 2);
      assert.match(c.error, /injected failure/);
      c = await finished(h);
      assert.equal(c.failure_reason, 'timeout');
      // Dropped on every delivery: the agent reconnects, the command waits
      // for the next session, until cancelled.
      const before = (await api.call('GET', '/agents/gw-drop', { token: admin })).body.connect_count;
      await eventually(async () => (await api.call('GET', '/agents/gw-drop', { token: admin })).body.connect_count >= before + 2, { timeoutMs: 20000 })
        .catch((e) => { throw new Error(`${e.message}\nagent log:\n${drop.log().split('\n').slice(-25).join('\n')}\nbackend:\n${b.lines.slice(-25).join('\n')}`); });
      assert.ok(['pending', 'executing'].includes((await get(d)).state));
      assert.equal((await api.call('POST', `/commands/${d}/cancel`, { token: operator })).status, 200);
      assert.match(drop.log(), /dropping the connection \(--disconnect-fraction\)/);
    } finally { await Promise.all([fail.stop(), hang.stop(), drop.stop()]); }
  });
});

describe('at-least-once delivery with viworks-agent', () => {
  it('re-delivers an executing command after kill -9; the agent runs it once and answers', async () => {
    const b1 = await startBackend({ env: ENV });
    const api1 = client(b1);
    const admin = await eventually(async () => (await api1.call('POST', '/auth/token', { body: { username: 'admin', password: ADMIN_PASSWORD } })).body?.access_token);
    operator = await userToken(api1, admin, 'ops', 'operator');
    const token = (await api1.call('POST', '/agents', { token: admin, body: { agent_id: 'gw-once' } })).body.token;
    const marker = path.join(tempDir('vw-once-'), 'runs');
    const agent = runAgent(b1, 'gw-once', token, ['--allow-exec', '/bin/sh']);
    let b2;
    try {
      await eventually(async () => (await api1.call('GET', '/agents/gw-once', { token: admin })).body?.status === 'online');
      const r = await api1.call('POST', '/commands', { token: operator, body: { agent_id: 'gw-once', type: 'exec', payload: { cmd: '/bin/sh', args: ['-c', `echo run >> ${marker}; sleep 2; echo done`] } } });
      assert.equal(r.status, 202);
      const id = r.body.command_id;
      await eventually(async () => (await api1.call('GET', `/commands/${id}`, { token: operator })).body?.state === 'executing');
      await eventually(() => { try { return readFileSync(marker, 'utf8').length > 0; } catch { return false; } });
      await b1.stop('SIGKILL');
      // Same ports and data: the agent comes back, the backend sends the
      // executing command again with the same command_id.
      b2 = await startBackend({ env: ENV, cwd: b1.dir, ports: b1 });
      const api2 = client(b2);
      // The agent reconnects with full-jitter backoff (each refused attempt
      // while the new backend starts doubles the ceiling, up to 30 s).
      const c = await eventually(async () => {
        const x = (await api2.call('GET', `/commands/${id}`, { token: operator })).body;
        return x?.state === 'completed' && x;
      }, { timeoutMs: 60000 });
      assert.equal(c.result.stdout, 'done\n');
      assert.ok(c.attempts >= 2, JSON.stringify(c));
      assert.equal(readFileSync(marker, 'utf8'), 'run\n');   // ran once
      assert.match(agent.log(), /already running; not started again/);
    } finally {
      await agent.stop();
      if (b2) { await b2.stop('SIGKILL'); b2.cleanup(); } else b1.cleanup();
    }
  });
});
