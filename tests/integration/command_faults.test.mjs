// Commands while the database refuses writes (issue "Correctness under
// faults", acceptance): the real backend runs with the LD_PRELOAD library
// tests/fault/vw_fault.c failing every write to its database with ENOSPC
// for a while. Commands accepted before, during and after the fault all end
// in a state SPEC §5 allows; what the API answered matches the database
// (a submit or cancel refused with 503 left nothing behind, one answered 202
// or 200 is there); transitions made while writes failed (an agent's hello,
// its commands executed and completed) reach the database once it takes
// writes again; and after kill -9 the restarted backend shows the same.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { FAULT_LIB, startBackend, tempDir } from './lib/backend.mjs';
import { ADMIN_PASSWORD, Agent, JWT_SECRET, client, eventually } from './lib/api.mjs';
import { runAgent } from './lib/agent.mjs';

const FINAL = ['completed', 'failed', 'cancelled'];

// A node agent that acks and completes every command it is sent, echoing
// the attempt, and counts them.
class CompletingAgent extends Agent {
  constructor(url, opts) {
    super(url, opts);
    this.done = new Set();
    this.onFrame = (msg) => {
      if (msg.type !== 'command') return;
      this.ws.send(JSON.stringify({ type: 'command_ack', command_id: msg.command_id }));
      this.ws.send(JSON.stringify({ type: 'command_result', command_id: msg.command_id,
        status: 'completed', result: { pong: true }, attempt: msg.attempt }));
      this.done.add(msg.command_id);
    };
  }
}

describe('commands under failing writes', { skip: !existsSync(FAULT_LIB) && `no ${FAULT_LIB}` }, () => {
  it('end as SPEC §5 allows, and the API matches the database before and after a restart', async (t) => {
    const dir = tempDir('vw-cmdfault-');
    const dbDir = path.join(dir, 'db');
    mkdirSync(dbDir);
    const ctl = path.join(dir, 'fault.ctl');
    const fault = (word) => writeFileSync(ctl, word);
    fault('');
    const env = {
      JWT_SECRET, VIWORKS_ADMIN_PASSWORD: ADMIN_PASSWORD,
      DATABASE_URL: `sqlite://${path.join(dbDir, 'viworks.db')}`,
      LD_PRELOAD: FAULT_LIB, VW_FAULT_PATH: `${dbDir}/`, VW_FAULT_CTL: ctl,
    };
    let b = await startBackend({ cwd: dir, env });
    let api = client(b);
    const login = async () => eventually(async () => (await api.call('POST', '/auth/token',
      { body: { username: 'admin', password: ADMIN_PASSWORD } })).body?.access_token);
    let admin = await login();
    const tokens = {};
    for (const id of ['gw-on', 'gw-late', 'gw-idle']) {
      const r = await api.call('POST', '/agents', { token: admin, body: { agent_id: id } });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      tokens[id] = r.body.token;
    }
    const real = runAgent(b, 'gw-on', tokens['gw-on']);
    let late;
    // What the API said: command id -> the state it must end in.
    const expected = new Map();
    const refused = [];
    const submit = async (agentId) => {
      const r = await api.call('POST', '/commands', { token: admin,
        body: { agent_id: agentId, type: 'ping', payload: {}, timeout_ms: 5000 } });
      if (r.status === 202) expected.set(r.body.command_id, agentId === 'gw-idle' ? 'pending' : 'completed');
      else refused.push(r);
      return r;
    };
    const cancel = (id) => api.call('POST', `/commands/${id}/cancel`, { token: admin });
    const stateOf = async (id) => (await api.call('GET', `/commands/${id}`, { token: admin })).body?.state;
    try {
      await eventually(async () => (await api.call('GET', '/agents/gw-on', { token: admin })).body?.status === 'online',
        { timeoutMs: 15000 });

      // Before: accepted while writes work.
      for (let i = 0; i < 5; i++) assert.equal((await submit('gw-on')).status, 202);
      for (let i = 0; i < 5; i++) assert.equal((await submit('gw-late')).status, 202);
      const idle = [];
      for (let i = 0; i < 3; i++) {
        const r = await submit('gw-idle');
        assert.equal(r.status, 202);
        idle.push(r.body.command_id);
      }

      // During: every commit fails.
      fault('enospc');
      for (let i = 0; i < 5; i++) {
        const r = await submit('gw-on');
        assert.equal(r.status, 503, JSON.stringify(r.body));
      }
      // A cancel that cannot be stored is refused, and undone: the command
      // goes on (it is still pending below, and can be cancelled later).
      const c1 = await cancel(idle[0]);
      assert.equal(c1.status, 503, JSON.stringify(c1.body));
      // An agent comes online and executes its commands while nothing can
      // be written: hello, dispatches and results all happen in memory.
      late = new CompletingAgent(b.wsUrl, { agentId: 'gw-late', token: tokens['gw-late'] });
      await late.connect();
      await eventually(() => late.done.size === 5, { timeoutMs: 15000 });
      t.diagnostic(`during the fault: ${refused.length} submits refused, gw-late ran ${late.done.size} commands`);

      // After: writes land again.
      fault('');
      for (let i = 0; i < 5; i++) assert.equal((await submit('gw-on')).status, 202);
      const c2 = await cancel(idle[1]);
      assert.equal(c2.status, 200, JSON.stringify(c2.body));
      assert.equal(c2.body.state, 'cancelled');
      expected.set(idle[1], 'cancelled');
      // The cancel refused during the fault changed nothing: still pending,
      // and it can be cancelled now.
      assert.equal(await stateOf(idle[0]), 'pending');
      const c3 = await cancel(idle[0]);
      assert.equal(c3.status, 200, JSON.stringify(c3.body));
      expected.set(idle[0], 'cancelled');

      // Every accepted command ends where the API said it would.
      await eventually(async () => {
        for (const [id, want] of expected) if (await stateOf(id) !== want) return false;
        return true;
      }, { timeoutMs: 30000, stepMs: 200 });
      // gw-late's hello and last_seen, written while the disk was full,
      // landed afterwards.
      await eventually(async () => (await api.call('GET', '/agents/gw-late', { token: admin })).body?.status === 'online',
        { timeoutMs: 10000 });
      // The refused submits left nothing: the lists hold exactly the
      // accepted commands.
      for (const agentId of ['gw-on', 'gw-late', 'gw-idle']) {
        const list = await api.call('GET', `/commands?agent_id=${agentId}&limit=1000`, { token: admin });
        for (const c of list.body.commands) {
          assert.ok(expected.has(c.command_id), `${c.command_id} was never accepted`);
          assert.ok(FINAL.includes(c.state) || c.state === expected.get(c.command_id), JSON.stringify(c));
          assert.ok(c.attempts <= c.max_retries + 1, JSON.stringify(c));
        }
      }
      const total = (await Promise.all(['gw-on', 'gw-late', 'gw-idle'].map(async (id) =>
        (await api.call('GET', `/commands?agent_id=${id}&limit=1000`, { token: admin })).body.commands.length)))
        .reduce((a, n) => a + n, 0);
      assert.equal(total, expected.size);
      const stats = (await api.call('GET', '/statistics', { token: admin })).body;
      t.diagnostic(`statistics after: ${JSON.stringify(stats.commands ?? stats)}`);

      // Memory equals database: what a restarted backend reads back is what
      // the running one said.
      const before = new Map();
      for (const id of expected.keys()) before.set(id, await stateOf(id));
      await late.close();
      await real.stop();
      await b.stop('SIGKILL');
      b = await startBackend({ cwd: dir, env });
      api = client(b);
      admin = await login();
      for (const [id, state] of before) assert.equal(await stateOf(id), state, id);
      assert.equal(await stateOf(idle[2]), 'pending');
    } finally {
      if (late && !late.closed) late.ws.terminate();
      if (real.proc.exitCode === null) real.proc.kill('SIGKILL');
      await b.stop('SIGKILL');
      b.cleanup();
    }
  });
});
