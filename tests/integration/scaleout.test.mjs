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
import { ADMIN_PASSWORD, JWT_SECRET, client, eventually } from './lib/api.mjs';
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
  let keys, clients, core, api, admin, brokerUrl, edges = [], fleet, fleetLog = '';
  const edgeArgs = (name, cert) => ['--actors', 'edge', '--node', name, '--broker-connect', brokerUrl,
    '--broker-curve-cert', cert, '--broker-curve-server', path.join(keys, 'core'), '--broker-peer-timeout', '2s'];

  before(async () => {
    keys = tempDir('vw-keys-');
    clients = path.join(keys, 'clients');
    mkdirSync(clients);
    keygen(keys, 'core');
    for (const name of ['edge-a', 'edge-b']) copyFileSync(keygen(keys, name), path.join(clients, `${name}.pub`));
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
  });
  after(async () => {
    fleet?.kill('SIGKILL');
    for (const e of edges) { await e.stop('SIGKILL'); e.cleanup(); }
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
    assert.notEqual(rogue.code, 0, rogue.stderr);
    assert.match(rogue.stderr, /refused this process's CURVE key|did not answer/);
    await eventually(() => jsonLines(core.lines).some((l) => l.component === 'zap' && /refused on the broker socket/.test(l.msg)),
      { timeoutMs: 5000 });
    const open = await runBackend(['--actors', CORE_ACTORS, '--broker-bind', 'tcp://0.0.0.0:0'], { env: ENV });
    assert.equal(open.code, 2, open.stderr);
    assert.match(open.stderr, /not loopback and CURVE is not configured/);
  });
});
