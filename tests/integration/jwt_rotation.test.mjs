// JWT secret rotation without locking operators out (issue 12): after a
// rotation the new secret signs, and the previous one still verifies the
// tokens it signed before the rotation, for jwt.previous_grace — never a
// token "issued" after it, never past the grace. Both ways: JWT_SECRET /
// JWT_SECRET_PREVIOUS across a restart, and the kept secret rotated with
// `viworks-backend --rotate-jwt-secret` (audited).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { startBackend, runBackend, tempDir } from './lib/backend.mjs';
import { ADMIN_PASSWORD, claims, client, eventually, mintJwt } from './lib/api.mjs';

// The first start creates the admin user just after "ready": ask until it is there.
const firstLogin = (api) => eventually(() => api.login().catch(() => false));

const OLD = 'the-old-secret-0123456789abcdef-0123456789';
const NEW = 'the-new-secret-fedcba9876543210-fedcba9876';

describe('JWT secret rotation', () => {
  it('JWT_SECRET_PREVIOUS verifies tokens issued before the start, within the grace', async () => {
    const dir = tempDir('vw-jwt-');
    const env = { VIWORKS_ADMIN_PASSWORD: ADMIN_PASSWORD };
    let b = await startBackend({ cwd: dir, env: { ...env, JWT_SECRET: OLD } });
    let api = client(b);
    const oldToken = await firstLogin(api);
    assert.equal((await api.call('GET', '/agents', { token: oldToken })).status, 200);
    await b.stop();
    // The rotation: a restart with the new secret, the old one as previous.
    b = await startBackend({ cwd: dir, env: { ...env, JWT_SECRET: NEW, JWT_SECRET_PREVIOUS: OLD } });
    api = client(b);
    try {
      assert.equal((await api.call('GET', '/agents', { token: oldToken })).status, 200);
      const newToken = await api.login();
      assert.equal((await api.call('GET', '/agents', { token: newToken })).status, 200);
      // The new secret signs: the new token does not verify with the old one.
      assert.notEqual(newToken.split('.')[2], mintJwt(JSON.parse(Buffer.from(newToken.split('.')[1], 'base64url')), { secret: OLD }).split('.')[2]);
      // A token signed with the old secret but issued after the rotation is forged.
      const later = mintJwt(claims('admin', 'admin', { now: Math.floor(Date.now() / 1000) + 2 }), { secret: OLD });
      const r = await api.call('GET', '/agents', { token: later });
      assert.equal(r.status, 401, JSON.stringify(r.body));
    } finally { await b.stop(); }
    // No grace left: the old token is refused.
    b = await startBackend({ cwd: dir, env: { ...env, JWT_SECRET: NEW, JWT_SECRET_PREVIOUS: OLD }, args: ['--jwt-previous-grace', '0'] });
    try {
      const r = await client(b).call('GET', '/agents', { token: oldToken });
      assert.equal(r.status, 401);
      assert.match(r.body.error.message, /signature/);
    } finally { await b.stop(); b.cleanup(); }
  });

  it('viworks-backend --rotate-jwt-secret rotates the kept secret, audited', async () => {
    const dir = tempDir('vw-jwt-kept-');
    const env = { VIWORKS_ADMIN_PASSWORD: ADMIN_PASSWORD, JWT_SECRET: '' };
    let b = await startBackend({ cwd: dir, env });
    const before = await firstLogin(client(b));
    await b.stop();
    const r = await runBackend(['--rotate-jwt-secret'], { cwd: dir, env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /JWT secret rotated/);
    assert.ok(existsSync(path.join(dir, 'data', 'jwt.secret.previous')));
    b = await startBackend({ cwd: dir, env });
    try {
      const api = client(b);
      assert.equal((await api.call('GET', '/agents', { token: before })).status, 200);
      const after = await api.login();
      assert.equal((await api.call('GET', '/agents', { token: after })).status, 200);
      assert.ok(b.lines.some((l) => /previous JWT secret verifies tokens/.test(l)), b.lines.join('\n'));
    } finally { await b.stop(); }
    const audit = execFileSync('sqlite3', [path.join(dir, 'data', 'viworks.db'),
      "SELECT actor || ' ' || action || ' ' || outcome FROM audit_logs WHERE action = 'jwt.rotate'"]).toString().trim();
    assert.equal(audit, 'system jwt.rotate success');
    // With JWT_SECRET set there is nothing kept to rotate: exit 2, said why.
    const refused = await runBackend(['--rotate-jwt-secret'], { cwd: dir, env: { JWT_SECRET: NEW } });
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /JWT_SECRET_PREVIOUS/);
    b.cleanup();
  });
});
