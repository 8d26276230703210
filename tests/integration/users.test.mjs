// Users and tokens (SPEC §6, issue 8): GET/PUT/DELETE /users, POST
// /auth/logout, and the revocation of tokens at once: a password or role
// change, disabling, deletion or logout makes the old token 401 on the very
// next request, with no sleep in between; a token whose sub is not a live
// user is refused; the revocations survive a restart. Against the real binary.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBackend } from './lib/backend.mjs';
import { ADMIN_PASSWORD, JWT_SECRET, claims, client, eventually, mintJwt } from './lib/api.mjs';

const ENV = { VIWORKS_ADMIN_PASSWORD: ADMIN_PASSWORD, JWT_SECRET };
const PASSWORD = 'first-password-1';

const payloadOf = (token) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url'));

describe('users and tokens', () => {
  let b, api, admin;
  before(async () => {
    b = await startBackend({ env: ENV });
    api = client(b);
    admin = await eventually(async () => {
      const r = await api.call('POST', '/auth/token', { body: { username: 'admin', password: ADMIN_PASSWORD } });
      return r.status === 200 && r.body.access_token;
    });
  });
  after(async () => { await b.stop('SIGKILL'); b.cleanup(); });

  async function createUser(username, role = 'viewer', password = PASSWORD) {
    const r = await api.call('POST', '/users', { token: admin, body: { username, password, role } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return api.login(username, password);
  }
  const whoami = (token) => api.call('GET', '/agents', { token });

  it('lists and shows users, never with a hash or a generation', async () => {
    await createUser('lister-a', 'operator');
    await createUser('lister-b');
    let r = await api.call('GET', '/users', { token: admin });
    assert.equal(r.status, 200);
    const names = r.body.users.map((u) => u.username);
    assert.deepEqual(names, [...names].sort());
    for (const n of ['admin', 'lister-a', 'lister-b']) assert.ok(names.includes(n), n);
    const text = JSON.stringify(r.body);
    assert.ok(!/argon2|password|hash|"gen"/.test(text), text);
    r = await api.call('GET', '/users/lister-a', { token: admin });
    assert.equal(r.status, 200);
    assert.equal(r.body.username, 'lister-a');
    assert.equal(r.body.role, 'operator');
    assert.equal(r.body.disabled, false);
    assert.equal(typeof r.body.created_at, 'number');
    assert.equal(Object.keys(r.body).sort().join(','), 'created_at,disabled,role,username');
    assert.equal((await api.call('GET', '/users/nobody-here', { token: admin })).status, 404);
    // Pages: limit and an opaque cursor.
    const page1 = await api.call('GET', '/users?limit=1', { token: admin });
    assert.equal(page1.body.users.length, 1);
    assert.equal(typeof page1.body.next_cursor, 'string');
    const page2 = await api.call('GET', `/users?limit=1&cursor=${encodeURIComponent(page1.body.next_cursor)}`, { token: admin });
    assert.notEqual(page2.body.users[0].username, page1.body.users[0].username);
    const all = await api.call('GET', '/users?limit=1000', { token: admin });
    assert.equal(all.body.next_cursor, null);
    assert.equal((await api.call('GET', '/users?limit=0', { token: admin })).status, 400);
    // Admin only.
    const viewer = await api.login('lister-b', PASSWORD);
    assert.equal((await api.call('GET', '/users', { token: viewer })).status, 403);
    assert.equal((await api.call('GET', '/users/lister-b', { token: viewer })).status, 403);
  });

  it('usernames follow the id grammar', async () => {
    for (const username of ['a@b', '.hidden', '-x', 'a/b', 'x'.repeat(129), '']) {
      const r = await api.call('POST', '/users', { token: admin, body: { username, password: PASSWORD, role: 'viewer' } });
      assert.equal(r.status, 400, username);
      assert.match(r.body.error.message, /username/);
    }
    const r = await api.call('POST', '/users', { token: admin, body: { username: 'ok_1.a:b-c', password: PASSWORD, role: 'viewer' } });
    assert.equal(r.status, 201);
  });

  it('a password change makes the old token 401 at once; the new password works', async () => {
    const old = await createUser('pw-user', 'operator');
    assert.equal((await whoami(old)).status, 200);
    const r = await api.call('PUT', '/users/pw-user', { token: admin, body: { password: 'second-password-2' } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.username, 'pw-user');
    const refused = await whoami(old);
    assert.equal(refused.status, 401);
    assert.match(refused.body.error.message, /revoked/);
    assert.equal((await api.call('POST', '/auth/token', { body: { username: 'pw-user', password: PASSWORD } })).status, 401);
    const fresh = await api.login('pw-user', 'second-password-2');
    assert.equal((await whoami(fresh)).status, 200);
  });

  it('deleting a user makes their token 401 at once; a new user of the same name does not revive it', async () => {
    const old = await createUser('del-user', 'admin');
    assert.equal((await whoami(old)).status, 200);
    let r = await api.call('DELETE', '/users/del-user', { token: admin });
    assert.equal(r.status, 204);
    r = await whoami(old);
    assert.equal(r.status, 401);
    assert.match(r.body.error.message, /does not exist/);
    assert.equal((await api.call('DELETE', '/users/del-user', { token: admin })).status, 404);
    assert.equal((await api.call('GET', '/users/del-user', { token: admin })).status, 404);
    const again = await createUser('del-user', 'admin');
    assert.equal((await whoami(old)).status, 401);
    assert.equal((await whoami(again)).status, 200);
  });

  it('a role change ends the old token; the new one carries the new role', async () => {
    const old = await createUser('role-user', 'operator');
    const r = await api.call('PUT', '/users/role-user', { token: admin, body: { role: 'viewer' } });
    assert.equal(r.status, 200);
    assert.equal(r.body.role, 'viewer');
    assert.equal((await whoami(old)).status, 401);
    const fresh = await api.login('role-user', PASSWORD);
    assert.equal(payloadOf(fresh).role, 'viewer');
    assert.equal((await api.call('PUT', '/agents/x/maintenance', { token: fresh, body: { enabled: true } })).status, 403);
  });

  it('disabling ends the tokens and the logins; enabling lets the user log in again', async () => {
    const old = await createUser('off-user');
    let r = await api.call('PUT', '/users/off-user', { token: admin, body: { disabled: true } });
    assert.equal(r.status, 200);
    assert.equal(r.body.disabled, true);
    assert.equal((await whoami(old)).status, 401);
    assert.equal((await api.call('POST', '/auth/token', { body: { username: 'off-user', password: PASSWORD } })).status, 401);
    r = await api.call('PUT', '/users/off-user', { token: admin, body: { disabled: false } });
    assert.equal(r.body.disabled, false);
    assert.equal((await whoami(old)).status, 401, 'enabling does not revive old tokens');
    assert.equal((await whoami(await api.login('off-user', PASSWORD))).status, 200);
  });

  it('POST /auth/logout ends this token only', async () => {
    const one = await createUser('out-user');
    const two = await api.login('out-user', PASSWORD);
    let r = await api.call('POST', '/auth/logout', { token: one });
    assert.equal(r.status, 204);
    assert.equal((await whoami(one)).status, 401);
    assert.match((await whoami(one)).body.error.message, /logged out/);
    assert.equal((await whoami(two)).status, 200);
    assert.equal((await api.call('POST', '/auth/logout', { token: one })).status, 401);
    assert.equal((await api.call('POST', '/auth/logout')).status, 401);
  });

  it('logging out a token without a jti ends all of its user\'s tokens', async () => {
    const login = await createUser('nojti-user');
    const { gen } = payloadOf(login);
    const bare = mintJwt(claims('nojti-user', 'viewer', { gen }));  // no jti
    assert.equal((await whoami(bare)).status, 200);
    assert.equal((await api.call('POST', '/auth/logout', { token: bare })).status, 204);
    assert.equal((await whoami(bare)).status, 401);
    assert.equal((await whoami(login)).status, 401);
    assert.equal((await whoami(await api.login('nojti-user', PASSWORD))).status, 200);
  });

  it('a user may change their own password only; bad changes are 400 and change nothing', async () => {
    const self = await createUser('self-user', 'operator');
    let r = await api.call('PUT', '/users/self-user', { token: self, body: { role: 'admin' } });
    assert.equal(r.status, 403);
    r = await api.call('PUT', '/users/self-user', { token: self, body: { password: 'x', role: 'admin' } });
    assert.equal(r.status, 403);
    r = await api.call('PUT', '/users/admin', { token: self, body: { password: 'hijacked-password' } });
    assert.equal(r.status, 403);
    assert.equal((await whoami(self)).status, 200, 'refusals change nothing');
    for (const body of [{}, { password: 'short' }, { role: 'root' }, { disabled: 'yes' }, { colour: 'red' }, { password: 12345678 }]) {
      r = await api.call('PUT', '/users/self-user', { token: admin, body });
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.body.error.code, 'bad_request');
    }
    assert.equal((await whoami(self)).status, 200, 'refusals change nothing');
    assert.equal((await api.call('PUT', '/users/nobody-here', { token: admin, body: { role: 'viewer' } })).status, 404);
    r = await api.call('PUT', '/users/self-user', { token: self, body: { password: 'my-own-new-password' } });
    assert.equal(r.status, 200);
    assert.equal((await whoami(self)).status, 401, 'the token that changed the password ends too');
    await api.login('self-user', 'my-own-new-password');
  });

  it('the last enabled admin cannot be deleted, demoted or disabled', async () => {
    // Other admins were created (and deleted or left) above: make sure only
    // "admin" and del-user are admins, then remove del-user.
    assert.equal((await api.call('DELETE', '/users/del-user', { token: admin })).status, 204);
    for (const body of [{ role: 'viewer' }, { disabled: true }]) {
      const r = await api.call('PUT', '/users/admin', { token: admin, body });
      assert.equal(r.status, 409, JSON.stringify(body));
    }
    assert.equal((await api.call('DELETE', '/users/admin', { token: admin })).status, 409);
    assert.equal((await whoami(admin)).status, 200);
  });

  it('refuses tokens whose sub is not a user, whose gen is stale or whose role is above the user\'s', async () => {
    await createUser('plain-viewer');
    for (const token of [mintJwt(claims('ghost', 'admin')), mintJwt(claims('plain-viewer', 'admin')),
      mintJwt(claims('plain-viewer', 'viewer', { gen: 12345 }))]) {
      const r = await whoami(token);
      assert.equal(r.status, 401);
      assert.equal(r.body.error.code, 'unauthorized');
    }
  });

  it('audits user.update, user.delete and auth.logout', async () => {
    const r = await api.call('GET', '/audit?limit=1000', { token: admin });
    const seen = new Set(r.body.entries.filter((e) => e.outcome === 'success').map((e) => `${e.action} ${e.target}`));
    for (const want of ['user.update pw-user', 'user.delete del-user', 'auth.logout out-user', 'user.create out-user'])
      assert.ok(seen.has(want), want);
    const failed = r.body.entries.find((e) => e.action === 'user.delete' && e.target === 'admin');
    assert.equal(failed.outcome, 'failure');
  });

  it('revocations survive a restart', async () => {
    const loggedOut = await createUser('restart-user');
    const kept = await api.login('restart-user', PASSWORD);
    assert.equal((await api.call('POST', '/auth/logout', { token: loggedOut })).status, 204);
    const changed = await createUser('restart-pw');
    assert.equal((await api.call('PUT', '/users/restart-pw', { token: admin, body: { password: 'another-password' } })).status, 200);
    await b.stop('SIGTERM');
    const ports = { http: b.http, ws: b.ws, admin: b.admin, events: b.events };
    b = await startBackend({ env: ENV, ports, cwd: b.dir });
    api = client(b);
    // Until the edge has the table it answers 503; then the verdicts hold.
    await eventually(async () => (await whoami(kept)).status === 200);
    assert.equal((await whoami(loggedOut)).status, 401);
    assert.equal((await whoami(changed)).status, 401);
    assert.equal((await whoami(admin)).status, 200);
  });
});
