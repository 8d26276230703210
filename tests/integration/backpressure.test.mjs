// Back-pressure on the agent WebSocket (ws.out_max). An agent that stops
// reading while output for it keeps coming is closed with 1008 once its
// queued output would pass the bound; the backend logs and counts it, its
// memory stays within a bound derived from the configuration, another agent
// connected at the same time keeps working, and the commands that were in
// flight on the closed session are delivered again when the agent comes
// back.
//
// The agent that does not read pauses its socket (ws._socket.pause()), so
// the kernel buffers fill and then the backend's queue does. Two sources of
// output: the error frames answering its own frames (nothing else bounds
// those), and large commands when commands.max_per_agent times their size
// is above ws.out_max. Every wait is on an event (a log line, a frame, a
// close, a state read back), never a sleep.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { startBackend } from './lib/backend.mjs';
import { ADMIN_PASSWORD, JWT_SECRET, Agent, client, eventually, userToken } from './lib/api.mjs';

const OUT_MAX = 256 * 1024;   // --ws-out-max for these backends
const MiB = 1024 * 1024;
// ASan keeps freed memory in a quarantine (256 MB by default): keep it
// small so RSS measures what is live, not what was recently freed.
const ASAN = [process.env.ASAN_OPTIONS, 'quarantine_size_mb=4'].filter(Boolean).join(':');
const ENV = { VIWORKS_ADMIN_PASSWORD: ADMIN_PASSWORD, JWT_SECRET, ASAN_OPTIONS: ASAN };

// Resident and peak resident memory of a process, in bytes.
function memory(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)[1]) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}
const mib = (n) => `${(n / MiB).toFixed(1)} MiB`;

// An agent that answers every command at once (ack, then completed).
class Worker extends Agent {
  onFrame(msg) {
    if (msg.type !== 'command') return;
    this.ws.send(JSON.stringify({ type: 'command_ack', command_id: msg.command_id }));
    this.ws.send(JSON.stringify({ type: 'command_result', command_id: msg.command_id, status: 'completed', result: { got: msg.command_type } }));
  }
}

// One backend per scenario, with its helpers.
function setup(args) {
  const t = { lines: () => t.b.lines };
  before(async () => {
    t.b = await startBackend({ env: ENV, args: ['--ws-out-max', String(OUT_MAX), ...args] });
    t.api = client(t.b);
    t.admin = await eventually(async () => (await t.api.call('POST', '/auth/token', { body: { username: 'admin', password: ADMIN_PASSWORD } })).body?.access_token);
    t.operator = await userToken(t.api, t.admin, 'ops', 'operator');
  });
  after(async () => {
    // A clean stop: closing sessions with queued output must neither crash
    // nor leak (ASan's leak check runs at exit).
    const r = await t.b.stop('SIGTERM');
    assert.equal(r.code, 0, t.b.lines.slice(-20).join('\n'));
    t.b.cleanup();
  });
  t.register = async (id) => {
    const r = await t.api.call('POST', '/agents', { token: t.admin, body: { agent_id: id } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body.token;
  };
  t.submit = async (body) => {
    const r = await t.api.call('POST', '/commands', { token: t.operator, body });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    return r.body.command_id;
  };
  // One command at a time: a list would carry every payload in one answer.
  t.get = async (id) => (await t.api.call('GET', `/commands/${id}`, { token: t.operator })).body;
  t.completed = (id) => eventually(async () => { const c = await t.get(id); return c.state === 'completed' && c; }, { timeoutMs: 20000, stepMs: 50 });
  // The backend's word that it gave up on `agent`: the parsed log line.
  t.overflow = async (agent, nth) => {
    const match = () => t.b.lines.filter((l) => l.includes(`agent '${agent}' from`) && /does not read/.test(l));
    await eventually(() => match().length > 0, { timeoutMs: 30000, stepMs: 20 });
    const line = JSON.parse(match()[0]);
    assert.equal(line.level, 'warn');
    assert.equal(line.component, 'edge');
    assert.match(line.msg, new RegExp(`^agent '${agent}' from 127\\.0\\.0\\.1 does not read: \\d+ bytes in \\d+ frames queued, \\d+ more would pass ws\\.out_max \\(${OUT_MAX}\\); closing with 1008 \\(${nth} closed so far\\)$`));
    const queued = Number(/does not read: (\d+) bytes/.exec(line.msg)[1]);
    assert.ok(queued <= OUT_MAX, line.msg);
    return line;
  };
  return t;
}

describe('an agent that floods frames and does not read the answers', () => {
  const t = setup(['--log-level', 'info']);
  const PAYLOAD = 50 * 1000;   // 4 in flight (the default limit) = 200 KB < ws.out_max

  it('is closed with 1008, RSS stays bounded, another agent still works, its commands come again', async () => {
    const deafToken = await t.register('gw-deaf');
    const ok = await new Worker(t.b.wsUrl, { agentId: 'gw-ok', token: await t.register('gw-ok') }).connect();
    const deaf = await new Agent(t.b.wsUrl, { agentId: 'gw-deaf', token: deafToken }).connect();

    // Warm the paths up (a command each way), then the baseline.
    await t.completed(await t.submit({ agent_id: 'gw-ok', type: 'update_config', payload: { config: { blob: 'w'.repeat(PAYLOAD) } } }));
    writeFileSync(`/proc/${t.b.proc.pid}/clear_refs`, '5');   // VmHWM := VmRSS
    const before = memory(t.b.proc.pid);

    // gw-deaf stops reading; commands for it are in flight (4 sent, the
    // rest waiting for a slot).
    deaf.ws._socket.pause();
    const ids = [];
    for (let i = 0; i < 12; i++)
      ids.push(await t.submit({ agent_id: 'gw-deaf', type: 'update_config', timeout_ms: 600000, payload: { config: { seq: i, blob: 'x'.repeat(PAYLOAD) } } }));
    // Then it sends frames each answered with an error frame (~100 bytes):
    // 300,000 of them offer ~30 MB of output, which the backend would keep
    // if nothing bounded the queue.
    const FRAMES = 300000;
    const frame = JSON.stringify({ type: 'no_such_type' });
    for (let i = 0; i < FRAMES; i++) deaf.ws.send(frame);

    await t.overflow('gw-deaf', 1);

    // Another agent connected meanwhile gets and completes a command.
    const ping = await t.completed(await t.submit({ agent_id: 'gw-ok', type: 'ping' }));
    assert.deepEqual(ping.result, { got: 'ping' });
    assert.equal(ok.closed, null);

    // Reading again, gw-deaf drains what the kernel held, then the close.
    // Its own unread frames were still arriving when the backend closed
    // the socket, so the kernel may have reset the connection instead
    // (1006); the next scenario, where the agent sends nothing, sees 1008.
    deaf.ws._socket.resume();
    const closed = await deaf.waitClose();
    if (closed.code !== 1006) {
      assert.equal(closed.code, 1008);
      assert.equal(closed.reason, 'output queue overflow: not reading');
    }
    const errors = deaf.messages.filter((m) => m.type === 'error');
    assert.ok(errors.length < FRAMES, `${errors.length} error frames reached it`);
    assert.ok(errors.every((e) => e.code === 'unknown_type'));

    // Peak memory: the bound, one frame, and allowance for the allocator
    // (under ASan ~15 MiB is measured here). Without the bound the queue
    // would have held the error frames the kernel did not take: ~60 MiB of
    // growth measured with --ws-out-max 1GiB.
    const after = memory(t.b.proc.pid);
    const growth = after.hwm - before.rss;
    console.log(`# flood: peak RSS grew by ${mib(growth)}`);
    const bound = OUT_MAX + PAYLOAD + 24 * MiB;
    assert.ok(growth <= bound, `peak RSS grew by ${mib(growth)}; bound ${mib(bound)}`);

    // Nothing was lost: what was in flight on the closed session and what
    // waited is delivered when gw-deaf comes back, and completes; what
    // reached it before (attempt 1) comes as a new attempt.
    for (const id of ids) {
      const c = await t.get(id);
      assert.ok(['pending', 'executing'].includes(c.state) && c.failures === 0, JSON.stringify({ ...c, payload: null }));
    }
    const firstTime = new Set(deaf.messages.filter((m) => m.type === 'command').map((m) => m.command_id));
    const back = await new Worker(t.b.wsUrl, { agentId: 'gw-deaf', token: deafToken }).connect();
    for (const id of ids) await t.completed(id);
    const again = back.messages.filter((m) => m.type === 'command' && firstTime.has(m.command_id));
    assert.equal(again.length, firstTime.size);
    for (const m of again) assert.ok(m.attempt >= 2, JSON.stringify({ ...m, payload: null }));
    assert.equal(back.closed, null);
    await back.close();
    await ok.close();
  });
});

describe('an agent that does not read while large commands are sent to it', () => {
  // 1000 in flight per agent: commands alone can pass ws.out_max.
  const t = setup(['--max-per-agent', '1000', '--log-level', 'info']);
  const PAYLOAD = 200 * 1000;
  const COMMANDS = 200;   // 40 MB

  it('is closed with 1008; RSS grows by the commands the scheduler keeps, not by a queue', async () => {
    const ok = await new Worker(t.b.wsUrl, { agentId: 'gw-ok', token: await t.register('gw-ok') }).connect();
    const deaf = await new Agent(t.b.wsUrl, { agentId: 'gw-big', token: await t.register('gw-big') }).connect();
    await t.completed(await t.submit({ agent_id: 'gw-ok', type: 'update_config', payload: { config: { blob: 'w'.repeat(PAYLOAD) } } }));
    writeFileSync(`/proc/${t.b.proc.pid}/clear_refs`, '5');
    const before = memory(t.b.proc.pid);

    deaf.ws._socket.pause();
    const ids = [];
    const blob = 'x'.repeat(PAYLOAD);
    for (let i = 0; i < COMMANDS; i += 4) {
      ids.push(...await Promise.all([0, 1, 2, 3].map((k) => t.submit({
        agent_id: 'gw-big', type: 'update_config', timeout_ms: 600000, payload: { config: { seq: i + k, blob } },
      }))));
    }
    await t.overflow('gw-big', 1);
    const ping = await t.completed(await t.submit({ agent_id: 'gw-ok', type: 'ping' }));
    assert.deepEqual(ping.result, { got: 'ping' });
    assert.equal(ok.closed, null);
    deaf.ws._socket.resume();
    const closed = await deaf.waitClose();
    assert.equal(closed.code, 1008);
    assert.equal(closed.reason, 'output queue overflow: not reading');
    assert.ok(deaf.messages.filter((m) => m.type === 'command').length < COMMANDS);

    // The scheduler keeps every unfinished command's payload (COMMANDS *
    // PAYLOAD); beyond that, the bound, one frame and allowance for the
    // allocator and the store. Without the bound the edge would also hold
    // the ~40 MB the kernel did not take (under ASan: ~54 MiB growth
    // measured with the bound, ~100 MiB with --ws-out-max 1GiB).
    const after = memory(t.b.proc.pid);
    const growth = after.hwm - before.rss;
    console.log(`# commands: peak RSS grew by ${mib(growth)}`);
    const bound = COMMANDS * PAYLOAD + OUT_MAX + PAYLOAD + 32 * MiB;
    assert.ok(growth <= bound, `peak RSS grew by ${mib(growth)}; bound ${mib(bound)}`);
    for (const id of ids) {
      const c = await t.get(id);
      assert.ok(['pending', 'executing'].includes(c.state) && c.failures === 0, JSON.stringify({ ...c, payload: null }));
    }
    await ok.close();
  });
});
