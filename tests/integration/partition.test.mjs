// Scale-out (issue 13): an edge process on another address, cut off from
// the core and joined again. The edge runs in a network namespace of its
// own (ip netns, a veth pair: a real separate, non-loopback address, so
// the broker link must be CURVE); the link is taken down, which leaves
// every TCP connection across it half-open (no reset: what a cut cable or
// a dead switch does). The core must notice by heartbeat silence alone,
// end the edge's sessions, and take them back when the link returns and
// the edge (connecting afresh) joins again and lists them.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, copyFileSync } from 'node:fs';
import path from 'node:path';
import { startBackend, freePorts, tempDir, jsonLines, BACKEND } from './lib/backend.mjs';
import { ADMIN_PASSWORD, JWT_SECRET, Agent, client, eventually } from './lib/api.mjs';

const CTL = path.join(path.dirname(BACKEND), 'viworksctl');
const ENV = { JWT_SECRET, VIWORKS_ADMIN_PASSWORD: ADMIN_PASSWORD };
const NS = `vwpart${process.pid}`;
const NET = `10.213.${process.pid % 250}`;
const HOST_IF = `vwh${process.pid}`.slice(0, 15);
const NS_IF = `vwn${process.pid}`.slice(0, 15);

const sh = (...args) => spawnSync(args[0], args.slice(1), { encoding: 'utf8' });
const must = (...args) => {
  const r = sh(...args);
  assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
};

// Runs the backend inside the namespace; resolves once it logs "ready".
function startInNamespace(args, dir) {
  const proc = spawn('ip', ['netns', 'exec', NS, BACKEND, ...args], {
    cwd: dir, env: { ...process.env, ...ENV }, stdio: ['ignore', 'ignore', 'pipe'],
  });
  const lines = [];
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const ready = new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`not ready:\n${lines.join('\n')}`)), 15000);
    proc.stderr.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
        if (/ready in \d+ ms/.test(lines.at(-1))) { clearTimeout(timer); resolve(); }
      }
    });
    exited.then((e) => { clearTimeout(timer); reject(new Error(`exited ${e.code ?? e.signal}:\n${lines.join('\n')}`)); });
  });
  return { proc, lines, exited, ready };
}

describe('scale-out: an edge cut off from the core and back', () => {
  let canRun = false, core, api, admin, edge, keys, agent;

  before(async () => {
    // Namespaces need CAP_NET_ADMIN (root in CI); without it this suite says so and is skipped.
    if (sh('ip', 'netns', 'add', NS).status !== 0) return;
    canRun = true;
    must('ip', 'link', 'add', HOST_IF, 'type', 'veth', 'peer', 'name', NS_IF);
    must('ip', 'link', 'set', NS_IF, 'netns', NS);
    must('ip', 'addr', 'add', `${NET}.1/30`, 'dev', HOST_IF);
    must('ip', 'link', 'set', HOST_IF, 'up');
    must('ip', 'netns', 'exec', NS, 'ip', 'addr', 'add', `${NET}.2/30`, 'dev', NS_IF);
    must('ip', 'netns', 'exec', NS, 'ip', 'link', 'set', NS_IF, 'up');
    must('ip', 'netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'up');
    keys = tempDir('vw-part-keys-');
    mkdirSync(path.join(keys, 'clients'));
    for (const name of ['core', 'edge']) must(CTL, 'keygen', path.join(keys, name), '--name', name);
    copyFileSync(path.join(keys, 'edge'), path.join(keys, 'clients', 'edge'));
    const [bp, wsp] = await freePorts(2);
    core = await startBackend({
      env: ENV,
      args: ['--actors', 'store,registry,scheduler,executor,telemetry,auth,admin,api',
        '--broker-bind', `tcp://${NET}.1:${bp}`, '--broker-curve-cert', path.join(keys, 'core'),
        '--broker-curve-clients', path.join(keys, 'clients'), '--broker-peer-timeout', '2s'],
    });
    api = client(core);
    admin = await eventually(() => api.login().catch(() => false));
    edge = startInNamespace(['--actors', 'edge', '--node', 'far', '--broker-connect', `tcp://${NET}.1:${bp}`,
      '--broker-curve-cert', path.join(keys, 'edge'), '--broker-curve-server', path.join(keys, 'core'),
      '--broker-peer-timeout', '2s', '--ws-addr', `${NET}.2`, '--ws-port', String(wsp)], tempDir());
    await edge.ready;
    edge.wsUrl = `ws://${NET}.2:${wsp}/ws/agent`;
  });
  after(async () => {
    agent?.ws?.terminate();
    if (edge) { edge.proc.kill('SIGKILL'); await edge.exited; }
    if (core) { await core.stop('SIGKILL'); core.cleanup(); }
    if (canRun) { sh('ip', 'link', 'del', HOST_IF); sh('ip', 'netns', 'del', NS); }
  });

  it('the core ends the sessions of a silent edge, and takes them back when it returns', async (t) => {
    if (!canRun) { t.skip('no network namespaces here (needs CAP_NET_ADMIN)'); return; }
    const r = await api.call('POST', '/agents', { token: admin, body: { agent_id: 'gw-far' } });
    assert.equal(r.status, 201);
    agent = new Agent(edge.wsUrl, { agentId: 'gw-far', token: r.body.token });
    agent.onFrame = (msg) => {
      if (msg.type !== 'command') return;
      agent.ws.send(JSON.stringify({ type: 'command_ack', command_id: msg.command_id }));
      agent.ws.send(JSON.stringify({ type: 'command_result', command_id: msg.command_id, status: 'completed', result: { pong: true }, attempt: msg.attempt }));
    };
    await agent.connect();
    const status = async () => (await api.call('GET', '/agents/gw-far', { token: admin })).body.status;
    assert.equal(await status(), 'online');
    // The cut: nothing crosses, nothing is reset.
    must('ip', 'link', 'set', HOST_IF, 'down');
    assert.ok(await eventually(() => jsonLines(core.lines).some((l) => /actor 'edge@far' not heard from/.test(l.msg)),
      { timeoutMs: 10000 }), core.lines.join('\n'));
    assert.ok(await eventually(async () => (await status()) === 'offline', { timeoutMs: 5000 }));
    assert.ok(await eventually(() => jsonLines(edge.lines).some((l) => /the core is lost/.test(l.msg)), { timeoutMs: 10000 }));
    // A command accepted meanwhile waits for the agent.
    const c = await api.call('POST', '/commands', { token: admin, body: { agent_id: 'gw-far', type: 'ping', payload: {} } });
    assert.equal(c.status, 202);
    // The link returns: the edge joins again, lists its session, the core
    // takes it back; the agent's connection was never closed.
    must('ip', 'link', 'set', HOST_IF, 'up');
    assert.ok(await eventually(() => jsonLines(edge.lines).some((l) => /core back: told the registry of 1 session/.test(l.msg)),
      { timeoutMs: 20000 }), edge.lines.join('\n'));
    assert.ok(await eventually(async () => (await status()) === 'online', { timeoutMs: 10000 }));
    const done = await eventually(async () => {
      const got = (await api.call('GET', `/commands/${c.body.command_id}`, { token: admin })).body;
      return got.state === 'completed' ? got : false;
    }, { timeoutMs: 15000 });
    assert.ok(done, 'the command waiting for the agent never completed');
    assert.equal(agent.closed, null);
  });
});
