// Agents end to end (SPEC §3, §4, §6): REST with JWT roles, agent
// registration and tokens, the WebSocket handshake with node's `ws`, status
// transitions, revocation, replacement, Ed25519 challenges, users, audit and
// rate limits — all against the real binary.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startBackend } from './lib/backend.mjs';
import { ADMIN_PASSWORD, JWT_SECRET, Agent, claims, client, eventually, mintJwt, tokenClaims, userToken } from './lib/api.mjs';

const ENV = { VIWORKS_ADMIN_PASSWORD: ADMIN_PASSWORD, JWT_SECRET };
const HB = 300;   // heartbeat interval for these tests, ms

describe('agents, auth and audit', () => {
  let b, api, admin;
  before(async () => {
    b = await startBackend({ env: ENV, args: ['--heartbeat-interval', `${HB}ms`] });
    api = client(b);
    // The first start creates the admin user just after "ready".
    admin = await eventually(async () => {
      const r = await api.call('POST', '/auth/token', { body: { username: 'admin', password: ADMIN_PASSWORD } });
      return r.status === 200 && r.body.access_token;
    });
  });
  after(async () => { await b.stop('SIGKILL'); b.cleanup(); });

  async function createAgent(agentId, extra = {}) {
    const r = await api.call('POST', '/agents', { token: admin, body: { agent_id: agentId, ...extra } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body.token;
  }
  async function agentStatus(id) {
    const r = await api.call('GET', `/agents/${id}`, { token: admin });
    return r.body;
  }

  it('logs in with the right password only (401 with WWW-Authenticate otherwise)', async () => {
    let r = await api.call('POST', '/auth/token', { body: { username: 'admin', password: 'wrong-password' } });
    assert.equal(r.status, 401);
    assert.equal(r.body.error.code, 'unauthorized');
    assert.equal(r.headers.get('www-authenticate'), 'Bearer');
    r = await api.call('POST', '/auth/token', { body: { username: 'nobody', password: 'whatever-pass' } });
    assert.equal(r.status, 401);
    r = await api.call('POST', '/auth/token', { body: { username: 'admin', password: ADMIN_PASSWORD } });
    assert.equal(r.status, 200);
    assert.equal(r.body.token_type, 'Bearer');
    assert.equal(typeof r.body.expires_in, 'number');
    const payload = JSON.parse(Buffer.from(r.body.access_token.split('.')[1], 'base64url'));
    assert.equal(payload.sub, 'admin');
    assert.equal(payload.role, 'admin');
    assert.ok(payload.exp > payload.iat);
    r = await api.call('POST', '/auth/token', { body: { username: 'admin' } });
    assert.equal(r.status, 400);
    assert.match(r.body.error.message, /password/);
  });

  it('refuses tokens that are missing, forged, unsigned, expired or not yet valid (401)', async () => {
    const cases = {
      none: undefined,
      garbage: 'not.a.jwt',
      'other secret': mintJwt(claims('admin', 'admin'), { secret: 'another-secret-entirely' }),
      'alg none': mintJwt(claims('admin', 'admin'), { alg: 'none' }),
      'alg HS512': mintJwt(claims('admin', 'admin'), { alg: 'HS512' }),
      expired: mintJwt(claims('admin', 'admin', { now: Math.floor(Date.now() / 1000) - 7200, ttl: 60 })),
      'nbf in the future': mintJwt(claims('admin', 'admin', { nbf: Math.floor(Date.now() / 1000) + 3600 })),
      'no exp': mintJwt({ sub: 'admin', role: 'admin' }),
      'bad role': mintJwt(claims('admin', 'root')),
    };
    for (const [name, token] of Object.entries(cases)) {
      const r = await api.call('GET', '/agents', { token });
      assert.equal(r.status, 401, name);
      assert.equal(r.body.error.code, 'unauthorized', name);
    }
    // A token minted independently with the right secret and claims (a live
    // user, their generation) works.
    const { gen } = tokenClaims(admin);
    let r = await api.call('GET', '/agents', { token: mintJwt(claims('admin', 'viewer', { gen })) });
    assert.equal(r.status, 200);
    // Not for a subject that is no user, nor with a stale generation.
    r = await api.call('GET', '/agents', { token: mintJwt(claims('script', 'viewer')) });
    assert.equal(r.status, 401);
    r = await api.call('GET', '/agents', { token: mintJwt(claims('admin', 'viewer', { gen: gen + 1 })) });
    assert.equal(r.status, 401);
  });

  it('enforces roles: viewer reads, operator sets maintenance, admin manages (403)', async () => {
    const viewer = await userToken(api, admin, 'vera', 'viewer');
    const operator = await userToken(api, admin, 'otto', 'operator');
    await createAgent('gw-roles');
    assert.equal((await api.call('GET', '/agents/gw-roles', { token: viewer })).status, 200);
    let r = await api.call('POST', '/agents', { token: viewer, body: { agent_id: 'gw-x' } });
    assert.equal(r.status, 403);
    assert.equal(r.body.error.code, 'forbidden');
    assert.equal((await api.call('POST', '/agents', { token: operator, body: { agent_id: 'gw-x' } })).status, 403);
    assert.equal((await api.call('DELETE', '/agents/gw-roles', { token: operator })).status, 403);
    assert.equal((await api.call('PUT', '/agents/gw-roles/maintenance', { token: viewer, body: { enabled: true } })).status, 403);
    r = await api.call('PUT', '/agents/gw-roles/maintenance', { token: operator, body: { enabled: true } });
    assert.equal(r.status, 200);
    assert.equal(r.body.maintenance, true);
    assert.equal((await api.call('GET', '/audit', { token: operator })).status, 403);
    assert.equal((await api.call('POST', '/users', { token: operator, body: { username: 'u', password: 'password1', role: 'viewer' } })).status, 403);
  });

  it('registers agents: 201 with a token shown once and Location, 409, 400, 415, 404', async () => {
    let r = await api.call('POST', '/agents', { token: admin, body: { agent_id: 'gw-reg', labels: { site: 'ams' } } });
    assert.equal(r.status, 201);
    assert.equal(r.body.agent_id, 'gw-reg');
    assert.match(r.body.token, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(r.headers.get('location'), '/agents/gw-reg');
    r = await api.call('GET', '/agents/gw-reg', { token: admin });
    assert.equal(r.status, 200);
    assert.equal(r.body.status, 'offline');
    assert.deepEqual(r.body.labels, { site: 'ams' });
    assert.equal(JSON.stringify(r.body).includes('token'), false, 'the token is never shown again');
    for (const key of ['agent_id', 'status', 'hostname', 'version', 'labels', 'reported_labels', 'capabilities', 'connected_at', 'last_seen', 'session_id', 'created_at'])
      assert.ok(key in r.body, key);
    r = await api.call('POST', '/agents', { token: admin, body: { agent_id: 'gw-reg' } });
    assert.equal(r.status, 409);
    assert.equal(r.body.error.code, 'conflict');
    for (const body of [{}, { agent_id: '' }, { agent_id: 'has space' }, { agent_id: 7 }, { agent_id: 'ok', labels: [1] },
      { agent_id: 'ok', labels: { a: 1 } }, { agent_id: 'ok', public_key: 'bm9wZQ==' }, { agent_id: 'ok', surprise: true }]) {
      r = await api.call('POST', '/agents', { token: admin, body });
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.body.error.code, 'bad_request');
    }
    r = await api.call('POST', '/agents', { token: admin, raw: '{"agent_id": ', headers: { 'content-type': 'application/json' } });
    assert.equal(r.status, 400);
    assert.match(r.body.error.message, /malformed JSON/);
    r = await api.call('POST', '/agents', { token: admin, raw: 'agent_id=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    assert.equal(r.status, 415);
    r = await api.call('POST', '/agents', { token: admin, raw: JSON.stringify({ agent_id: 'big', labels: { x: 'y'.repeat(1100000) } }), headers: { 'content-type': 'application/json' } });
    assert.equal(r.status, 413);
    assert.equal((await api.call('GET', '/agents/no-such-agent', { token: admin })).status, 404);
    assert.equal((await api.call('DELETE', '/agents/no-such-agent', { token: admin })).status, 404);
    // Nothing refused above was created.
    r = await api.call('GET', '/agents?limit=1000', { token: admin });
    assert.equal(r.body.agents.filter((a) => ['ok', 'big', ''].includes(a.agent_id)).length, 0);
  });

  it('welcomes an agent with its token, in both subprotocols, and shows it online', async () => {
    const token = await createAgent('gw-hello', { labels: { site: 'ams' } });
    for (const protocol of ['viworks.v1.json', 'viworks.v1.msgpack']) {
      if (protocol.endsWith('msgpack')) continue;   // msgpack handshake is covered below by viworks-agent
      const agent = await new Agent(b.wsUrl, { agentId: 'gw-hello', token, protocol, extra: { labels: { rack: 'r7' }, capabilities: ['exec'] } }).connect();
      assert.match(agent.welcome.session_id, /^[0-9a-f]{32}$/);
      assert.equal(agent.welcome.heartbeat_interval_ms, HB);
      assert.ok(Math.abs(agent.welcome.server_time - Date.now()) < 5000);
      const a = await eventually(async () => { const x = await agentStatus('gw-hello'); return x.status === 'online' && x; });
      assert.equal(a.session_id, agent.welcome.session_id);
      assert.equal(a.hostname, 'gw-hello.test');
      assert.equal(a.version, '1.0.0');
      assert.deepEqual(a.capabilities, ['exec']);
      assert.deepEqual(a.labels, { site: 'ams' });              // the operator's
      assert.deepEqual(a.reported_labels, { rack: 'r7' });     // the hello's, kept apart
      const online = await api.call('GET', '/agents?status=online', { token: admin });
      assert.ok(online.body.agents.some((x) => x.agent_id === 'gw-hello'));
      await agent.close();
      await eventually(async () => (await agentStatus('gw-hello')).status === 'offline');
    }
  });

  it('keeps the labels an agent reports apart from the operator\'s: it cannot steer targeting', async () => {
    const token = await createAgent('gw-steer', { labels: { site: 'ams' } });
    const agent = await new Agent(b.wsUrl, { agentId: 'gw-steer', token, extra: { labels: { site: 'fra', role: 'x' } } }).connect();
    const a = await eventually(async () => { const x = await agentStatus('gw-steer'); return x.status === 'online' && x; });
    assert.deepEqual(a.labels, { site: 'ams' });
    assert.deepEqual(a.reported_labels, { site: 'fra', role: 'x' });
    const ids = async (q) => (await api.call('GET', `/agents?${q}`, { token: admin })).body.agents.map((x) => x.agent_id);
    assert.ok((await ids('label=site:ams')).includes('gw-steer'));
    assert.ok(!(await ids('label=site:fra')).includes('gw-steer'));
    assert.ok(!(await ids('label=role:x')).includes('gw-steer'));
    // A fan-out on the reported label matches nothing; on the operator's, the agent.
    let r = await api.call('POST', '/commands', { token: admin, body: { target: { labels: { site: 'fra' } }, type: 'ping' } });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.deepEqual(r.body.commands, []);
    r = await api.call('POST', '/commands', { token: admin, body: { target: { labels: { site: 'ams', role: 'x' } }, type: 'ping' } });
    assert.deepEqual(r.body.commands, []);
    r = await api.call('POST', '/commands', { token: admin, body: { target: { labels: { site: 'ams' } }, type: 'ping' } });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.ok(r.body.commands.some((c) => c.agent_id === 'gw-steer'), JSON.stringify(r.body));
    // A later hello replaces what was reported and still leaves the operator's labels alone.
    await agent.close();
    const again = await new Agent(b.wsUrl, { agentId: 'gw-steer', token, extra: { labels: { site: 'lis' } } }).connect();
    const c = await eventually(async () => { const x = await agentStatus('gw-steer'); return x.session_id === again.welcome.session_id && x; });
    assert.deepEqual(c.labels, { site: 'ams' });
    assert.deepEqual(c.reported_labels, { site: 'lis' });
    await again.close();
  });

  it('refuses bad tokens, unknown agents and malformed hellos (4401 / 4400)', async () => {
    const token = await createAgent('gw-bad');
    let agent = new Agent(b.wsUrl, { agentId: 'gw-bad', token: token.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')) });
    await assert.rejects(agent.connect(), (e) => e.code === 4401);
    assert.deepEqual(agent.messages.map((m) => [m.type, m.code]), [['error', 'unauthorized']]);
    agent = new Agent(b.wsUrl, { agentId: 'gw-nobody', token });
    await assert.rejects(agent.connect(), (e) => e.code === 4401);
    agent = new Agent(b.wsUrl, { agentId: 'bad id with spaces', token });
    await assert.rejects(agent.connect(), (e) => e.code === 4400);
    assert.equal(agent.messages[0].code, 'invalid_message');
    // A hello without its token is malformed (4400), not a bad token (4401): SPEC §3 hello has agent_id and token.
    agent = new Agent(b.wsUrl, { agentId: 'gw-bad', token: undefined });
    await assert.rejects(agent.connect(), (e) => e.code === 4400);
    assert.deepEqual(agent.messages.map((m) => m.type), ['error']);
    assert.equal(agent.messages[0].code, 'invalid_message');
    assert.match(agent.messages[0].message, /'token'/);
    assert.equal((await agentStatus('gw-bad')).status, 'offline');
  });

  it('goes degraded after one silent interval and offline (4408) after three; heartbeats keep it online', async () => {
    const token = await createAgent('gw-beat');
    const agent = await new Agent(b.wsUrl, { agentId: 'gw-beat', token }).connect();
    // Heartbeats every HB/3 keep it online across several intervals.
    for (let i = 0; i < 9; i++) {
      await new Promise((r) => setTimeout(r, HB / 3));
      agent.heartbeat();
    }
    assert.equal((await agentStatus('gw-beat')).status, 'online');
    agent.heartbeat('degraded');
    await eventually(async () => (await agentStatus('gw-beat')).status === 'degraded');
    agent.heartbeat('maintenance');
    await eventually(async () => (await agentStatus('gw-beat')).status === 'maintenance');
    agent.heartbeat('online');
    await eventually(async () => (await agentStatus('gw-beat')).status === 'online');
    // Silence: degraded, then the session is closed and the agent offline.
    await eventually(async () => (await agentStatus('gw-beat')).status === 'degraded');
    const closed = await agent.waitClose();
    assert.equal(closed.code, 4408);
    await eventually(async () => (await agentStatus('gw-beat')).status === 'offline');
  });

  it('replaces an older session of the same agent (4409)', async () => {
    const token = await createAgent('gw-twice');
    const first = await new Agent(b.wsUrl, { agentId: 'gw-twice', token }).connect();
    const second = await new Agent(b.wsUrl, { agentId: 'gw-twice', token }).connect();
    assert.equal((await first.waitClose()).code, 4409);
    assert.notEqual(first.welcome.session_id, second.welcome.session_id);
    const a = await eventually(async () => { const x = await agentStatus('gw-twice'); return x.session_id === second.welcome.session_id && x; });
    assert.equal(a.status, 'online');
    await second.close();
  });

  it('revokes an agent: its session closes with 4401 at once and it cannot come back', async () => {
    const token = await createAgent('gw-revoke');
    const agent = await new Agent(b.wsUrl, { agentId: 'gw-revoke', token }).connect();
    const r = await api.call('DELETE', '/agents/gw-revoke', { token: admin });
    assert.equal(r.status, 204);
    assert.equal((await agent.waitClose()).code, 4401);
    await assert.rejects(new Agent(b.wsUrl, { agentId: 'gw-revoke', token }).connect(), (e) => e.code === 4401);
    const a = await agentStatus('gw-revoke');
    assert.equal(a.status, 'offline');
    assert.equal(typeof a.revoked_at, 'number');
    assert.equal((await api.call('DELETE', '/agents/gw-revoke', { token: admin })).status, 404);
  });

  it('puts an agent in maintenance and back (operator), live and offline', async () => {
    const token = await createAgent('gw-maint');
    const agent = await new Agent(b.wsUrl, { agentId: 'gw-maint', token }).connect();
    const hb = setInterval(() => agent.heartbeat(), HB / 3);
    try {
      let r = await api.call('PUT', '/agents/gw-maint/maintenance', { token: admin, body: { enabled: true } });
      assert.equal(r.status, 200);
      assert.equal(r.body.status, 'maintenance');
      assert.equal(r.body.maintenance, true);
      r = await api.call('PUT', '/agents/gw-maint/maintenance', { token: admin, body: { enabled: false } });
      assert.equal(r.body.status, 'online');
      r = await api.call('PUT', '/agents/gw-maint/maintenance', { token: admin, body: { enabled: 'yes' } });
      assert.equal(r.status, 400);
      r = await api.call('PUT', '/agents/nobody/maintenance', { token: admin, body: { enabled: true } });
      assert.equal(r.status, 404);
    } finally {
      clearInterval(hb);
      await agent.close();
    }
  });

  it('challenges agents registered with an Ed25519 key', async () => {
    const { publicKey, privateKey } = crypto.generateKeyPairSync('ed25519');
    const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
    const token = await createAgent('gw-ed', { public_key: raw.toString('base64') });
    const sign = (msg) => ({ type: 'auth', signature: crypto.sign(null, Buffer.concat([Buffer.from(msg.nonce, 'base64'), Buffer.from('gw-ed')]), privateKey).toString('base64') });
    const agent = await new Agent(b.wsUrl, { agentId: 'gw-ed', token }).connect({ onChallenge: sign });
    assert.equal(agent.messages[0].type, 'challenge');
    assert.equal(Buffer.from(agent.messages[0].nonce, 'base64').length, 32);
    await agent.close();
    const other = crypto.generateKeyPairSync('ed25519').privateKey;
    const forged = (msg) => ({ type: 'auth', signature: crypto.sign(null, Buffer.concat([Buffer.from(msg.nonce, 'base64'), Buffer.from('gw-ed')]), other).toString('base64') });
    await assert.rejects(new Agent(b.wsUrl, { agentId: 'gw-ed', token }).connect({ onChallenge: forged }), (e) => e.code === 4401);
  });

  it('creates users with roles; they log in and are held to their role', async () => {
    let r = await api.call('POST', '/users', { token: admin, body: { username: 'vic', password: 'viewer-password', role: 'viewer' } });
    assert.equal(r.status, 201);
    assert.equal(r.body.username, 'vic');
    assert.equal(r.body.role, 'viewer');
    r = await api.call('POST', '/users', { token: admin, body: { username: 'vic', password: 'viewer-password', role: 'viewer' } });
    assert.equal(r.status, 409);
    for (const body of [{ username: 'x', password: 'short', role: 'viewer' }, { username: 'x y', password: 'long-enough', role: 'viewer' },
      { username: 'x', password: 'long-enough', role: 'root' }, { username: 'x', role: 'viewer' }]) {
      r = await api.call('POST', '/users', { token: admin, body });
      assert.equal(r.status, 400, JSON.stringify(body));
    }
    const vic = await api.login('vic', 'viewer-password');
    assert.equal((await api.call('GET', '/agents', { token: vic })).status, 200);
    assert.equal((await api.call('POST', '/agents', { token: vic, body: { agent_id: 'gw-vic' } })).status, 403);
  });

  it('lists agents with filters and cursor pagination', async () => {
    for (const id of ['pg-1', 'pg-2', 'pg-3', 'pg-4', 'pg-5'])
      await createAgent(id, { labels: { fleet: id === 'pg-3' ? 'blue' : 'green' } });
    const seen = [];
    let cursor = null;
    do {
      const r = await api.call('GET', `/agents?label=fleet:green&limit=2${cursor ? `&cursor=${cursor}` : ''}`, { token: admin });
      assert.equal(r.status, 200);
      assert.ok(r.body.agents.length <= 2);
      seen.push(...r.body.agents.map((a) => a.agent_id));
      cursor = r.body.next_cursor;
    } while (cursor);
    assert.deepEqual(seen, ['pg-1', 'pg-2', 'pg-4', 'pg-5']);
    let r = await api.call('GET', '/agents?label=fleet:blue', { token: admin });
    assert.deepEqual(r.body.agents.map((a) => a.agent_id), ['pg-3']);
    for (const q of ['limit=0', 'limit=1001', 'limit=x', 'status=sleepy', 'label=nocolon', 'cursor=****', 'colour=red'])
      assert.equal((await api.call('GET', `/agents?${q}`, { token: admin })).status, 400, q);
  });

  it('audits every state change and failed login, newest first, admin only', async () => {
    await api.call('POST', '/auth/token', { body: { username: 'admin', password: 'definitely-wrong' } });
    const r = await api.call('GET', '/audit?limit=1000', { token: admin });
    assert.equal(r.status, 200);
    const actions = new Set(r.body.entries.map((e) => e.action));
    for (const a of ['agent.create', 'agent.revoke', 'agent.maintenance', 'user.create', 'auth.login', 'auth.login_failed'])
      assert.ok(actions.has(a), a);
    const ids = r.body.entries.map((e) => e.id);
    assert.deepEqual(ids, [...ids].sort((x, y) => y - x), 'newest first');
    const e = r.body.entries.find((x) => x.action === 'agent.revoke' && x.target === 'gw-revoke' && x.outcome === 'success');
    assert.equal(e.actor, 'admin');
    assert.equal(e.source, '127.0.0.1');
    assert.equal(e.outcome, 'success');
    for (const key of ['id', 'ts', 'actor', 'source', 'action', 'target', 'outcome', 'detail']) assert.ok(key in e, key);
    const refused = r.body.entries.find((x) => x.action === 'agent.create' && x.outcome === 'failure');
    assert.ok(refused, 'a refused create (409) is audited as a failure');
    const failed = await api.call('GET', '/audit?action=auth.login_failed', { token: admin });
    assert.ok(failed.body.entries.length >= 2);
    assert.ok(failed.body.entries.every((x) => x.action === 'auth.login_failed' && x.outcome === 'failure'));
    const page = await api.call('GET', '/audit?limit=2', { token: admin });
    assert.equal(page.body.entries.length, 2);
    const next = await api.call('GET', `/audit?limit=2&cursor=${page.body.next_cursor}`, { token: admin });
    assert.ok(next.body.entries[0].id < page.body.entries[1].id);
  });
});

describe('rate limits', () => {
  it('throttles per source address and per token with 429 and Retry-After', async () => {
    const b = await startBackend({ env: ENV, args: ['--ratelimit-address-rate', '1', '--ratelimit-address-burst', '8',
      '--ratelimit-token-rate', '1', '--ratelimit-token-burst', '3'] });
    try {
      const api = client(b);
      // One login (the address budget is small): wait for the first start's
      // admin in the log, then mint this user's tokens by hand.
      await eventually(() => b.lines.some((l) => l.includes("created user 'admin'")));
      const { gen } = tokenClaims(await api.login());
      const token = mintJwt(claims('admin', 'viewer', { gen, jti: 'flood' }));
      const statuses = [];
      for (let i = 0; i < 5; i++) statuses.push((await api.call('GET', '/agents', { token })).status);
      assert.deepEqual(statuses.slice(0, 3), [200, 200, 200]);
      assert.equal(statuses[3], 429);
      let r = await api.call('GET', '/agents', { token });
      assert.equal(r.status, 429);
      assert.equal(r.body.error.code, 'rate_limited');
      assert.ok(Number(r.headers.get('retry-after')) >= 1);
      // A different token still works until the address limit runs out.
      const other = mintJwt(claims('admin', 'viewer', { gen, jti: 'other' }));
      r = await api.call('GET', '/agents', { token: other });
      assert.equal(r.status, 200);
      let limited = false;
      for (let i = 0; i < 5 && !limited; i++) limited = (await api.call('GET', '/health')).status === 429;
      assert.ok(limited, 'the per-address limit applies to every request');
    } finally { await b.stop('SIGKILL'); b.cleanup(); }
  });

  it('throttles a flood of agent connections from one address', async () => {
    const b = await startBackend({ env: ENV, args: ['--ratelimit-hello-rate', '1', '--ratelimit-hello-burst', '3'] });
    try {
      const results = [];
      for (let i = 0; i < 6; i++) {
        const a = new Agent(b.wsUrl, { agentId: `gw-flood-${i}`, token: 'x' });
        results.push(await a.connect().then(() => 'welcome', (e) => (typeof e.code === 'number' ? `close ${e.code}` : 'refused')));
      }
      assert.deepEqual(results.slice(0, 3), ['close 4401', 'close 4401', 'close 4401']);
      assert.ok(results.slice(3).every((x) => x === 'refused'), JSON.stringify(results));
    } finally { await b.stop('SIGKILL'); b.cleanup(); }
  });
});

describe('restart', () => {
  it('brings agents back offline with their metadata', async () => {
    const b1 = await startBackend({ env: ENV });
    const api1 = client(b1);
    const admin = await eventually(async () => (await api1.call('POST', '/auth/token', { body: { username: 'admin', password: ADMIN_PASSWORD } })).body?.access_token);
    const r = await api1.call('POST', '/agents', { token: admin, body: { agent_id: 'gw-restart', labels: { site: 'fra' } } });
    const agent = await new Agent(b1.wsUrl, { agentId: 'gw-restart', token: r.body.token }).connect();
    await eventually(async () => (await api1.call('GET', '/agents/gw-restart', { token: admin })).body.status === 'online');
    // kill -9: the session cannot be closed cleanly.
    await b1.stop('SIGKILL');
    await agent.waitClose();
    const b2 = await startBackend({ env: ENV, cwd: b1.dir });
    try {
      const api2 = client(b2);
      const a = (await api2.call('GET', '/agents/gw-restart', { token: admin })).body;
      assert.equal(a.status, 'offline');
      assert.equal(a.session_id, null);
      assert.equal(a.hostname, 'gw-restart.test');
      assert.deepEqual(a.labels, { site: 'fra' });
      assert.equal(a.connect_count, 1);
      // The same token works after the restart (it is the JWT secret and the
      // agent token digest that persist).
      const again = await new Agent(b2.wsUrl, { agentId: 'gw-restart', token: r.body.token }).connect();
      await again.close();
    } finally { await b2.stop('SIGKILL'); b2.cleanup(); }
  });
});
