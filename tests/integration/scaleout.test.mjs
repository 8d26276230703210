// Scale-out (issue 13): one core process (store, registry, scheduler,
// executor, telemetry, auth, admin, api) and two edge processes joined to
// its broker over TCP with CURVE on 127.0.0.2 (a loopback alias: a separate
// address on one machine). A simulated fleet spreads over both edges;
// commands reach every agent through the edge holding it; kill -9 of one
// edge mid-load loses no command and no acked telemetry point, its agents
// come back through the other; a process with an unknown key cannot join.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, copyFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startBackend, runBackend, freePorts, tempDir, jsonLines, BACKEND } from './lib/backend.mjs';
import { ADMIN_PASSWORD, JWT_SECRET, Agent, client, eventually } from './lib/api.mjs';
import { AGENT } from './lib/agent.mjs';

const CTL = path.join(path.dirname(BACKEND), 'viworksctl');
const CORE_ACTORS = 'store,registry,scheduler,executor,telemetry,auth,admin,api';
const ENV = { JWT_SECRET, VIWORKS_ADMIN_PASSWORD: ADMIN_PASSWORD };
const AGENTS = 8;

function keygen(dir, name) {
  const file = path.join(dir, name);
  const r = spawnSync(CTL, ['keygen', file, '--name', name], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return file;
}

describe('scale-out: two edge processes and one core over CURVE', () => {
  let keys, clients, core, api, admin, brokerUrl, edges = [], apiC, fleet, fleetLog = '';
  const edgeArgs = (name, cert) => ['--actors', 'edge', '--node', name, '--broker-connect', brokerUrl,
    '--broker-curve-cert', cert, '--broker-curve-server', path.join(keys, 'core'), '--broker-peer-timeout', '2s'];

  before(async () => {
    keys = tempDir('vw-keys-');
    clients = path.join(keys, 'clients');
    mkdirSync(clients);
    keygen(keys, 'core');
    for (const name of ['edge-a', 'edge-b', 'api-c']) copyFileSync(keygen(keys, name), path.join(clients, `${name}.pub`));
    keygen(keys, 'rogue');
    const [bp] = await freePorts(1);
    brokerUrl = `tcp://127.0.0.2:${bp}`;
    core = await startBackend({
      env: ENV,
      args: ['--actors', CORE_ACTORS, '--broker-bind', `tcp://127.0.0.2:${bp}`,
        '--broker-curve-cert', path.join(keys, 'core'), '--broker-curve-clients', clients,
        '--broker-peer-timeout', '2s', '--log-level', 'debug'],
    });
    api = client(core);
    admin = await eventually(() => api.login().catch(() => false));
    for (const name of ['a', 'b'])
      edges.push(await startBackend({ env: ENV, args: edgeArgs(name, path.join(keys, `edge-${name}`)) }));
    // A REST API process of its own (api@c) beside the core's.
    apiC = await startBackend({ env: ENV, args: [...edgeArgs('c', path.join(keys, 'api-c')).slice(2), '--actors', 'api'] });
  });
  after(async () => {
    fleet?.kill('SIGKILL');
    for (const e of [...edges, apiC].filter(Boolean)) { await e.stop('SIGKILL'); e.cleanup(); }
    if (core) { await core.stop('SIGKILL'); core.cleanup(); }
  });

  const agentId = (i) => `so-${String(i).padStart(5, '0')}`;
  const getAgent = async (id) => (await api.call('GET', `/agents/${id}`, { token: admin })).body;
  const submit = async (id, body) => {
    const r = await api.call('POST', '/commands', { token: admin, body: { agent_id: id, ...body } });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    return r.body.command_id;
  };
  const command = async (id) => (await api.call('GET', `/commands/${id}`, { token: admin })).body;

  it('the edges join as edge@a and edge@b; agents spread over both come online', async () => {
    const stats = JSON.parse(spawnSync(CTL, ['--endpoint', `tcp://127.0.0.1:${core.admin}`, '--json', 'actors'],
      { encoding: 'utf8' }).stdout || '{}');
    const lines = [];
    for (let i = 1; i <= AGENTS; i++) {
      const r = await api.call('POST', '/agents', { token: admin, body: { agent_id: agentId(i) } });
      assert.equal(r.status, 201);
      lines.push(`${agentId(i)} ${r.body.token}`);
    }
    const file = path.join(core.dir, 'fleet.tokens');
    writeFileSync(file, lines.join('\n') + '\n', { mode: 0o600 });
    fleet = spawn(AGENT, ['--url', edges[0].wsUrl, '--url', edges[1].wsUrl, '--simulate', String(AGENTS),
      '--id-prefix', 'so-', '--token-file', file, '--telemetry-ms', '200', '--allow-exec', '/bin/sleep', '--max-running', '100',
      '--log-format', 'text'], { stdio: ['ignore', 'ignore', 'pipe'] });
    fleet.stderr.on('data', (d) => { fleetLog += d; });
    for (let i = 1; i <= AGENTS; i++)
      assert.ok(await eventually(async () => (await getAgent(agentId(i))).status === 'online', { timeoutMs: 20000 }), fleetLog);
    // The core's log says which edge welcomed whom: both did.
    const joined = jsonLines(core.lines).filter((l) => /joined \(pid \d+, another process\)/.test(l.msg)).map((l) => l.msg);
    assert.ok(joined.some((m) => m.includes("'edge@a'")) && joined.some((m) => m.includes("'edge@b'")), joined.join('\n'));
    void stats;
  });

  it('GET /health of the api process lists the core and every edge; a command submitted there runs', async () => {
    const other = client(apiC);
    const health = await eventually(async () => {
      const r = await other.call('GET', '/health');
      return r.status === 200 ? r.body : false;
    }, { timeoutMs: 10000 });
    assert.ok(health, 'api@c never healthy');
    for (const actor of ['store', 'registry', 'scheduler', 'executor', 'edge@a', 'edge@b', 'api', 'api@c'])
      assert.equal(health.actors[actor], 'up', JSON.stringify(health));
    const token = await eventually(() => other.login().catch(() => false));
    // /metrics: one series per edge process, each family described once.
    const metrics = (await other.call('GET', '/metrics', { token })).body;
    for (const e of ['edge@a', 'edge@b']) {
      assert.match(metrics, new RegExp(`^viworks_up\\{actor="${e}"\\} 1$`, 'm'));
      assert.match(metrics, new RegExp(`^viworks_agent_connections\\{edge="${e}"\\} [1-9]`, 'm'));
    }
    const helps = metrics.split('\n').filter((l) => l.startsWith('# HELP '));
    assert.equal(new Set(helps).size, helps.length, 'a family described twice');
    const r = await other.call('POST', '/commands', { token, body: { agent_id: agentId(1), type: 'ping', payload: {} } });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.ok(await eventually(async () => (await other.call('GET', `/commands/${r.body.command_id}`, { token })).body.state === 'completed',
      { timeoutMs: 10000 }));
  });

  it('every agent gets its commands through the edge that holds it', async () => {
    const ids = [];
    for (let i = 1; i <= AGENTS; i++) ids.push([agentId(i), await submit(agentId(i), { type: 'ping', payload: {} })]);
    for (const [agent, id] of ids) {
      const done = await eventually(async () => {
        const c = await command(id);
        return c.state === 'completed' ? c : false;
      }, { timeoutMs: 15000 });
      assert.ok(done, `${id} for ${agent} did not complete`);
      assert.equal(done.agent_id, agent);
      assert.deepEqual(done.result, { pong: true });
    }
  });

  it('kill -9 of an edge mid-load: every accepted command completes, its agents come back through the other', async () => {
    const ids = [];
    for (let round = 0; round < 3; round++)
      for (let i = 1; i <= AGENTS; i++)
        ids.push(await submit(agentId(i), { type: 'exec', payload: { cmd: '/bin/sleep', args: ['0.5'] }, timeout_ms: 30000, max_retries: 0 }));
    // Some are executing on both edges' agents.
    await eventually(async () => {
      let executing = 0;
      for (const id of ids.slice(0, AGENTS)) if ((await command(id)).state === 'executing') executing++;
      return executing >= AGENTS / 2;
    }, { timeoutMs: 10000 });
    await edges[0].stop('SIGKILL');
    // The broker notices within its peer timeout; the agents of edge@a
    // reconnect through edge@b.
    for (let i = 1; i <= AGENTS; i++)
      assert.ok(await eventually(async () => (await getAgent(agentId(i))).status === 'online', { timeoutMs: 30000 }), fleetLog);
    for (const id of ids) {
      const done = await eventually(async () => {
        const c = await command(id);
        return ['completed', 'failed', 'cancelled'].includes(c.state) ? c : false;
      }, { timeoutMs: 60000 });
      assert.ok(done, `${id} never finished`);
      assert.equal(done.state, 'completed', JSON.stringify(done));
    }
    const log = jsonLines(core.lines).map((l) => l.msg).join('\n');
    assert.match(log, /actor 'edge@a' not heard from|edge 'edge@a' is gone/);
    // The fleet's health does not hang on the edge that is gone.
    const health = (await client(apiC).call('GET', '/health')).body;
    assert.equal(health.status, 'ok', JSON.stringify(health));
    assert.equal(health.actors['edge@a'], undefined);
    assert.equal(health.actors['edge@b'], 'up');
  });

  it('every acked telemetry point is stored once', async () => {
    fleet.kill('SIGTERM');
    await new Promise((resolve) => fleet.on('exit', resolve));
    fleet = null;
    // What the agents were acked is in the database; no (agent, seq) twice,
    // and each agent's stream has no point twice.
    const db = path.join(core.dir, 'data', 'viworks.db');
    const sql = "SELECT count(*), count(DISTINCT tid || ',' || seq) FROM telemetry_frames";
    const out = spawnSync('python3', ['-c',
      `import sqlite3,sys; print(*sqlite3.connect(sys.argv[1]).execute(${JSON.stringify(sql)}).fetchone())`, db], { encoding: 'utf8' });
    assert.equal(out.status, 0, out.stderr);
    const [rows, distinct] = out.stdout.trim().split(' ').map(Number);
    assert.ok(rows > AGENTS * 5, `only ${rows} frames`);
    assert.equal(rows, distinct);
    for (let i = 1; i <= AGENTS; i++) {
      const r = await api.call('GET', `/telemetry/${agentId(i)}?metric=cpu&from=${Date.now() - 600000}`, { token: admin });
      assert.equal(r.status, 200);
      const ts = r.body.series.find((s) => s.metric === 'cpu').points.map((p) => p[0]);
      assert.equal(new Set(ts).size, ts.length, `${agentId(i)}: a point twice`);
    }
  });

  it('a process with an unknown CURVE key cannot join; a non-loopback broker without CURVE is refused', async () => {
    const rogue = await runBackend([...edgeArgs('rogue', path.join(keys, 'rogue')), '--ws-port', '0'],
      { env: ENV, timeoutMs: 30000 });
    assert.equal(rogue.code, 1, rogue.stderr);
    assert.match(rogue.stderr, /the broker refused this process's CURVE key/);
    await eventually(() => jsonLines(core.lines).some((l) => l.component === 'zap' && /refused on the broker socket/.test(l.msg)),
      { timeoutMs: 5000 });
    const open = await runBackend(['--actors', CORE_ACTORS, '--broker-bind', 'tcp://0.0.0.0:0'], { env: ENV });
    assert.equal(open.code, 2, open.stderr);
    assert.match(open.stderr, /not loopback and CURVE is not configured/);
  });
});

describe('scale-out: an edge that loses the core', () => {
  let core, edge, api, admin, bp, agents = [];
  const tokens = {};
  const coreArgs = () => ['--actors', CORE_ACTORS, '--broker-bind', `tcp://127.0.0.1:${bp}`, '--broker-peer-timeout', '2s'];

  before(async () => {
    [bp] = await freePorts(1);
    core = await startBackend({ env: ENV, args: coreArgs() });
    api = client(core);
    admin = await eventually(() => api.login().catch(() => false));
    edge = await startBackend({ env: ENV, args: ['--actors', 'edge', '--node', 'solo', '--broker-connect', `tcp://127.0.0.1:${bp}`,
      '--broker-peer-timeout', '2s'] });
  });
  after(async () => {
    for (const a of agents) a.ws?.terminate();
    await edge.stop('SIGKILL'); edge.cleanup();
    await core.stop('SIGKILL'); core.cleanup();
  });

  const register = async (id) => {
    const r = await api.call('POST', '/agents', { token: admin, body: { agent_id: id } });
    assert.equal(r.status, 201);
    return r.body.token;
  };

  it('keeps its agents, refuses new ones with 1013, and gives the restarted core its sessions back', async () => {
    for (const id of ['gw-r1', 'gw-r2', 'gw-r3']) tokens[id] = await register(id);
    for (const id of ['gw-r1', 'gw-r2']) {
      const a = new Agent(edge.wsUrl, { agentId: id, token: tokens[id] });
      // Answers commands, as an agent would.
      a.onFrame = (msg) => {
        if (msg.type !== 'command') return;
        a.ws.send(JSON.stringify({ type: 'command_ack', command_id: msg.command_id }));
        a.ws.send(JSON.stringify({ type: 'command_result', command_id: msg.command_id, status: 'completed', result: { pong: true }, attempt: msg.attempt }));
      };
      agents.push(await a.connect());
    }
    const ports = { http: core.http, ws: core.ws, admin: core.admin, events: core.events };
    const dir = core.dir;
    await core.stop('SIGKILL');
    assert.ok(await eventually(() => jsonLines(edge.lines).some((l) => /the core is lost/.test(l.msg)), { timeoutMs: 10000 }));
    // Sessions stay; a new hello is refused with 1013 and a retry hint.
    assert.equal(agents[0].closed, null);
    assert.equal(agents[1].closed, null);
    const late = new Agent(edge.wsUrl, { agentId: 'gw-r3', token: tokens['gw-r3'] });
    await assert.rejects(late.connect(), (e) => e.code === 1013);
    const refusal = late.messages.find((m) => m.type === 'error');
    assert.equal(refusal?.code, 'unavailable');
    assert.ok(refusal.retry_after_ms > 0);
    // The core comes back on the same database and broker port.
    core = await startBackend({ env: ENV, cwd: dir, ports, args: coreArgs() });
    api = client(core);
    admin = await eventually(() => api.login().catch(() => false));
    assert.ok(await eventually(() => jsonLines(edge.lines).some((l) => /core back: told the registry of 2 session/.test(l.msg)),
      { timeoutMs: 15000 }));
    for (const id of ['gw-r1', 'gw-r2'])
      assert.ok(await eventually(async () => (await api.call('GET', `/agents/${id}`, { token: admin })).body.status === 'online',
        { timeoutMs: 10000 }), id);
    // The same connection, never closed, takes commands again.
    const r = await api.call('POST', '/commands', { token: admin, body: { agent_id: 'gw-r1', type: 'ping', payload: {} } });
    assert.equal(r.status, 202);
    const done = await eventually(async () => {
      const c = (await api.call('GET', `/commands/${r.body.command_id}`, { token: admin })).body;
      return c.state === 'completed' ? c : false;
    }, { timeoutMs: 10000 });
    assert.ok(done);
    assert.equal(agents[0].closed, null);
    // And new agents get in.
    const now = new Agent(edge.wsUrl, { agentId: 'gw-r3', token: tokens['gw-r3'] });
    agents.push(await now.connect());
  });

  it('a second process under the same name takes it; the first one exits 1 saying why', async () => {
    const twin = await startBackend({ env: ENV, args: ['--actors', 'edge', '--node', 'solo', '--broker-connect', `tcp://127.0.0.1:${bp}`,
      '--broker-peer-timeout', '2s'] });
    try {
      const { code } = await Promise.race([edge.exited,
        new Promise((resolve) => setTimeout(() => resolve({ code: 'still running after 15 s' }), 15000))]);
      assert.equal(code, 1);
      assert.ok(jsonLines(edge.lines).some((l) => /another process joined the broker as 'edge@solo'/.test(l.msg)),
        edge.lines.join('\n'));
      assert.ok(jsonLines(core.lines).some((l) => /actor 'edge@solo' joined from another process/.test(l.msg)));
      // The newcomer serves (once the take-over settles: it may have lost
      // the name for a heartbeat timeout while the first one came back).
      const a = await eventually(async () => {
        const one = new Agent(twin.wsUrl, { agentId: 'gw-r2', token: tokens['gw-r2'] });
        return one.connect().catch(() => false);
      }, { timeoutMs: 15000, stepMs: 500 });
      assert.ok(a, 'the newcomer never took an agent');
      agents.push(a);
    } finally { await twin.stop('SIGKILL'); twin.cleanup(); }
  });
});
