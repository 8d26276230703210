// viworks-agent with several --url (toward issue 13): a connection that
// cannot be made is tried at the next URL, with the usual backoff; a
// simulated fleet spreads over the URLs given, so that the agents of an
// edge that is down come in through another.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { startBackend, freePorts } from './lib/backend.mjs';
import { ADMIN_PASSWORD, JWT_SECRET, client, eventually } from './lib/api.mjs';
import { AGENT, runAgent } from './lib/agent.mjs';

describe('viworks-agent --url, several', () => {
  let b, api, admin, dead;
  before(async () => {
    b = await startBackend({ env: { JWT_SECRET, VIWORKS_ADMIN_PASSWORD: ADMIN_PASSWORD } });
    api = client(b);
    admin = await eventually(() => api.login().catch(() => false));
    const [port] = await freePorts(1);  // nothing listens there
    dead = `ws://127.0.0.1:${port}/ws/agent`;
  });
  after(async () => { await b.stop('SIGKILL'); b.cleanup(); });

  const create = async (id) => (await api.call('POST', '/agents', { token: admin, body: { agent_id: id } })).body.token;
  const online = (id) => eventually(async () => (await api.call('GET', `/agents/${id}`, { token: admin })).body.status === 'online',
    { timeoutMs: 15000 });

  it('an agent whose first URL is down comes in through the next', async () => {
    const token = await create('gw-url-1');
    const agent = runAgent({ wsUrl: dead }, 'gw-url-1', token, ['--url', b.wsUrl]);
    assert.ok(await online('gw-url-1'), agent.log());
    assert.match(agent.log(), /next try to ws:\/\/127\.0\.0\.1:\d+\/ws\/agent/);
    await agent.stop();
  });

  it('a simulated fleet spreads over the URLs; those of the edge that is down move on', async () => {
    const lines = [];
    for (let i = 1; i <= 4; i++) lines.push(`sim-${String(i).padStart(5, '0')} ${await create(`sim-${String(i).padStart(5, '0')}`)}`);
    const file = path.join(b.dir, 'sim.tokens');
    writeFileSync(file, lines.join('\n') + '\n', { mode: 0o600 });
    const proc = spawn(AGENT, ['--url', dead, '--url', b.wsUrl, '--simulate', '4', '--id-prefix', 'sim-',
      '--token-file', file, '--telemetry-ms', '0', '--log-format', 'text'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    proc.stderr.on('data', (d) => { log += d; });
    try {
      for (let i = 1; i <= 4; i++) assert.ok(await online(`sim-${String(i).padStart(5, '0')}`), log);
    } finally {
      proc.kill('SIGTERM');
      await new Promise((resolve) => proc.on('exit', resolve));
    }
  });

  it('more than 8 --url is a usage error', async () => {
    const args = [];
    for (let i = 0; i < 9; i++) args.push('--url', b.wsUrl);
    const proc = spawn(AGENT, [...args, '--id', 'x', '--token', 'y'], { stdio: 'ignore' });
    const code = await new Promise((resolve) => proc.on('exit', resolve));
    assert.equal(code, 2);
  });
});
