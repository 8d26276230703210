// Behind nginx, for real (issue 12): Debian's nginx runs compose/nginx.conf
// as shipped, with only its addresses and certificate paths pointed at this
// test (TLS on a loopback port, the backend's ports as upstreams). Our
// viworks-agent connects through it over wss (trusting the test's CA) and
// runs a command submitted over https through it. With --trusted-proxy the
// backend counts hellos per client address (X-Forwarded-For from nginx),
// not per nginx's; without it X-Forwarded-For is ignored, so a client
// cannot pick the address it is counted under.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import { startBackend, freePorts, tempDir } from './lib/backend.mjs';
import { ADMIN_PASSWORD, JWT_SECRET, eventually } from './lib/api.mjs';
import { runAgent } from './lib/agent.mjs';
import { makeCa, makeServerCert, httpsCall } from './lib/tls.mjs';

const NGINX = process.env.VW_NGINX ?? '/usr/sbin/nginx';
const COMPOSE_CONF = path.resolve(import.meta.dirname, '../../compose/nginx.conf');

// compose/nginx.conf with its host names, port and certificate paths
// replaced; everything else (locations, headers, timeouts) as shipped.
function siteConf(dir, { port, http, ws, cert, key }) {
  let conf = readFileSync(COMPOSE_CONF, 'utf8');
  const swap = (from, to) => {
    assert.ok(conf.includes(from), `compose/nginx.conf no longer has '${from}'`);
    conf = conf.split(from).join(to);
  };
  swap('server backend:8080', `server 127.0.0.1:${http}`);
  swap('server backend:8081', `server 127.0.0.1:${ws}`);
  swap('listen 443 ssl', `listen 127.0.0.1:${port} ssl`);
  swap('/etc/nginx/tls/cert.pem', cert);
  swap('/etc/nginx/tls/key.pem', key);
  const file = path.join(dir, 'site.conf');
  writeFileSync(file, conf);
  return file;
}

async function startNginx(dir, site) {
  mkdirSync(path.join(dir, 'tmp'), { recursive: true });
  const tmp = path.join(dir, 'tmp');
  const main = path.join(dir, 'nginx.conf');
  writeFileSync(main, [
    ...(process.getuid?.() === 0 ? ['user root;'] : []),
    'worker_processes 1;', `pid ${dir}/nginx.pid;`, `error_log ${dir}/error.log warn;`,
    'events { worker_connections 256; }',
    'http {', '  access_log off;',
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${tmp}/${t};`),
    `  include ${site};`, '}', ''].join('\n'));
  execFileSync(NGINX, ['-t', '-p', dir, '-c', main, '-e', `${dir}/error.log`], { stdio: 'pipe' });
  const proc = spawn(NGINX, ['-p', dir, '-c', main, '-e', `${dir}/error.log`, '-g', 'daemon off;'], { stdio: 'ignore' });
  return proc;
}

// A hello through nginx from a given source address: the first answer, or
// the HTTP status of a refused upgrade.
function hello(url, ca, localAddress, agentId, token) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, ['viworks.v1.json'], { ca, localAddress });
    ws.once('open', () => ws.send(JSON.stringify({ type: 'hello', agent_id: agentId, token, version: '1.0.0' })));
    ws.once('message', (data) => { resolve(JSON.parse(data.toString()).type); ws.close(1000); });
    ws.once('unexpected-response', (req, res) => { resolve(res.statusCode); ws.terminate(); });
    ws.once('error', (e) => resolve(`error ${e.message}`));
  });
}

for (const trusted of [true, false]) {
  describe(`viworks-backend behind nginx (compose/nginx.conf)${trusted ? ', --trusted-proxy 127.0.0.1' : ', no trusted proxy'}`, () => {
    let dir, ca, caPem, b, nginx, base, wss, admin;
    before(async () => {
      dir = tempDir('vw-nginx-');
      caPem = makeCa(dir, 'ca');
      const pair = makeServerCert(dir, 'ca', 'server');
      ca = readFileSync(caPem);
      // A burst of two hellos per address (then one a second), so that a
      // quick third from one address is refused while another gets in.
      b = await startBackend({
        env: { JWT_SECRET, VIWORKS_ADMIN_PASSWORD: ADMIN_PASSWORD },
        args: ['--ratelimit-hello-rate', '1', '--ratelimit-hello-burst', '2',
          ...(trusted ? ['--trusted-proxy', '127.0.0.1'] : [])],
      });
      const [port] = await freePorts(1);
      nginx = await startNginx(dir, siteConf(dir, { port, http: b.http, ws: b.ws, cert: pair.cert, key: pair.key }));
      base = `https://127.0.0.1:${port}`;
      wss = `wss://127.0.0.1:${port}/ws/agent`;
      admin = await eventually(async () => (await httpsCall(`${base}/auth/token`, {
        method: 'POST', ca, body: { username: 'admin', password: ADMIN_PASSWORD } }).catch(() => ({}))).body?.access_token,
      { timeoutMs: 10000 });
    });
    after(async () => {
      nginx?.kill('SIGTERM');
      await b?.stop('SIGKILL');
      b?.cleanup();
    });

    if (trusted) {
      it('an agent connects through nginx over TLS and runs a command', async () => {
        const r = await httpsCall(`${base}/agents`, { method: 'POST', ca, token: admin, body: { agent_id: 'gw-nginx' } });
        assert.equal(r.status, 201, JSON.stringify(r.body));
        const agent = runAgent({ wsUrl: wss }, 'gw-nginx', r.body.token, ['--ca-file', caPem]);
        await eventually(async () => (await httpsCall(`${base}/agents/gw-nginx`, { ca, token: admin })).body.status === 'online',
          { timeoutMs: 10000 });
        const c = await httpsCall(`${base}/commands`, { method: 'POST', ca, token: admin, body: { agent_id: 'gw-nginx', type: 'ping' } });
        assert.equal(c.status, 202, JSON.stringify(c.body));
        const done = await eventually(async () => {
          const got = (await httpsCall(`${base}/commands/${c.body.command_id}`, { ca, token: admin })).body;
          return got.state === 'completed' && got;
        }, { timeoutMs: 10000 });
        assert.deepEqual(done.result, { pong: true });
        await agent.stop();
      });
    }

    it(trusted ? 'hellos are counted per client address (X-Forwarded-For from nginx)'
      : 'without --trusted-proxy X-Forwarded-For is ignored: every client counts as nginx', async () => {
      const r = await httpsCall(`${base}/agents`, { method: 'POST', ca, token: admin, body: { agent_id: 'gw-rl' } });
      assert.equal(r.status, 201);
      const token = r.body.token;
      // Two from 127.0.0.2 pass, the third is refused (429).
      assert.equal(await hello(wss, ca, '127.0.0.2', 'gw-rl', token), 'welcome');
      assert.equal(await hello(wss, ca, '127.0.0.2', 'gw-rl', token), 'welcome');
      assert.equal(await hello(wss, ca, '127.0.0.2', 'gw-rl', token), 429);
      // Another client address: its own budget only when nginx is trusted.
      assert.equal(await hello(wss, ca, '127.0.0.3', 'gw-rl', token), trusted ? 'welcome' : 429);
      // The REST API's audit rows name the client too (or nginx).
      const c = await httpsCall(`${base}/agents`, { method: 'POST', ca, token: admin, body: { agent_id: 'gw-audit' }, localAddress: '127.0.0.4' });
      assert.equal(c.status, 201);
      const source = await eventually(() => execFileSync('sqlite3', [path.join(b.dir, 'data', 'viworks.db'),
        "SELECT source FROM audit_logs WHERE action = 'agent.create' AND target = 'gw-audit'"]).toString().trim(), { timeoutMs: 5000 });
      assert.equal(source, trusted ? '127.0.0.4' : '127.0.0.1');
    });
  });
}
