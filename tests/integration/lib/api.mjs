// Small clients for the integration tests: HTTP API calls, JWT minting with
// node's own crypto (independent of the backend's), and agent sessions over
// the `ws` package.
import crypto from 'node:crypto';
import WebSocket from 'ws';

export const ADMIN_PASSWORD = 'admin-password-for-tests';
export const JWT_SECRET = 'integration-tests-secret-0123456789abcdef';

const b64url = (buf) => Buffer.from(buf).toString('base64url');

// Mints an HS256 JWT by hand (or with another alg/secret, to test refusals).
export function mintJwt(claims, { secret = JWT_SECRET, alg = 'HS256', header = {} } = {}) {
  const h = b64url(JSON.stringify({ alg, typ: 'JWT', ...header }));
  const p = b64url(JSON.stringify(claims));
  if (alg === 'none') return `${h}.${p}.`;
  const sig = crypto.createHmac('sha256', secret).update(`${h}.${p}`).digest();
  return `${h}.${p}.${b64url(sig)}`;
}

export function claims(sub, role, { ttl = 600, now = Math.floor(Date.now() / 1000), ...rest } = {}) {
  return { sub, role, iat: now, exp: now + ttl, ...rest };
}

export function client(b) {
  async function call(method, path, { token, body, headers = {}, raw } = {}) {
    const h = { ...headers };
    if (token) h.authorization = `Bearer ${token}`;
    let payload;
    if (raw !== undefined) payload = raw;
    else if (body !== undefined) { payload = JSON.stringify(body); h['content-type'] ??= 'application/json'; }
    const res = await fetch(`${b.httpUrl}${path}`, { method, headers: h, body: payload });
    const text = await res.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { json = text; }
    return { status: res.status, headers: res.headers, body: json };
  }
  async function login(username = 'admin', password = ADMIN_PASSWORD) {
    const r = await call('POST', '/auth/token', { body: { username, password } });
    if (r.status !== 200) throw new Error(`login ${username}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body.access_token;
  }
  return { call, login };
}

// The built-in command types (SPEC §5): what a test agent claims by default,
// since the backend fails at once a command whose type the hello did not list.
export const BUILTIN_TYPES = ['ping', 'exec', 'restart_service', 'update_config', 'collect_logs', 'upgrade'];

// A token must name a live user (issue 8): creates `username` with `role`
// as the admin (an existing one is fine) and logs in as them.
export async function userToken(api, adminToken, username, role, password = `pw-${username}-for-tests`) {
  const r = await api.call('POST', '/users', { token: adminToken, body: { username, password, role } });
  if (r.status !== 201 && r.status !== 409) throw new Error(`create user ${username}: ${r.status} ${JSON.stringify(r.body)}`);
  return api.login(username, password);
}

// The claims of a token (no check), e.g. its user's generation "gen", to
// mint further tokens for that user by hand.
export const tokenClaims = (token) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url'));

// An agent session: resolves when welcomed (or rejects with the close).
export class Agent {
  constructor(url, { agentId, token, protocol = 'viworks.v1.json', extra = {} }) {
    this.url = url; this.agentId = agentId; this.token = token; this.protocol = protocol; this.extra = extra;
    this.messages = [];
    this.closed = null;
  }
  connect({ onChallenge } = {}) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url, [this.protocol]);
      this.ws = ws;
      this.closedPromise = new Promise((res) => ws.once('close', (code, reason) => {
        this.closed = { code, reason: reason.toString() };
        res(this.closed);
      }));
      ws.once('open', () => ws.send(JSON.stringify({
        type: 'hello', agent_id: this.agentId, token: this.token, version: '1.0.0',
        hostname: `${this.agentId}.test`, capabilities: BUILTIN_TYPES, ...this.extra,
      })));
      ws.on('message', (data) => {
        const msg = JSON.parse(data.toString());
        this.messages.push(msg);
        // Subclasses see every frame from the start (frames that follow the
        // welcome in the same read arrive before connect() resolves).
        if (this.onFrame) this.onFrame(msg);
        if (msg.type === 'welcome') { this.welcome = msg; resolve(this); }
        else if (msg.type === 'challenge' && onChallenge) ws.send(JSON.stringify(onChallenge(msg)));
      });
      ws.once('error', reject);
      this.closedPromise.then((c) => reject(Object.assign(new Error(`closed ${c.code} ${c.reason}`), c)));
    });
  }
  heartbeat(status) { this.ws.send(JSON.stringify(status ? { type: 'heartbeat', status } : { type: 'heartbeat' })); }
  close() { this.ws.close(1000); return this.closedPromise; }
  waitClose() { return this.closedPromise; }
}

// Polls until fn() returns truthy (for eventually-consistent reads) with a bound.
export async function eventually(fn, { timeoutMs = 5000, stepMs = 25 } = {}) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  throw new Error(`condition not met in ${timeoutMs} ms (last: ${JSON.stringify(last)})`);
}
