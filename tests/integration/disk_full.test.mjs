// A really full disk: the database lives on a small tmpfs that the test
// fills. Writes are refused with 503, /health says "database":"disk_full"
// (503, degraded), the store logs the cause once (not once per commit),
// and when space returns /health recovers on its own and writes land.
// Mounting needs root: elsewhere the case is skipped (tests/unit/test_db.c
// covers the classification with a fault-injecting VFS).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { openSync, writeSync, closeSync, rmSync } from 'node:fs';
import path from 'node:path';
import { startBackend, tempDir } from './lib/backend.mjs';
import { ADMIN_PASSWORD, JWT_SECRET, client, eventually } from './lib/api.mjs';

function tryMount(dir) {
  if (process.getuid?.() !== 0) return 'not root';
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=0700', 'tmpfs', dir], { stdio: 'pipe' });
    return null;
  } catch (e) {
    return `cannot mount a tmpfs: ${e.stderr?.toString().trim() || e.message}`;
  }
}

// Writes zeros into `file` until the filesystem is full.
function fill(file) {
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(64 * 1024);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (e) {
    if (e.code !== 'ENOSPC') throw e;
  } finally {
    closeSync(fd);
  }
}

describe('a full disk', () => {
  it('is reported by /health and logged once, and recovered from', async (t) => {
    const mnt = tempDir('vw-diskfull-');
    const why = tryMount(mnt);
    if (why) { t.skip(why); return; }
    let b;
    try {
      b = await startBackend({
        env: { JWT_SECRET, VIWORKS_ADMIN_PASSWORD: ADMIN_PASSWORD, DATABASE_URL: `sqlite://${path.join(mnt, 'viworks.db')}` },
      });
      const api = client(b);
      assert.equal((await api.call('GET', '/health')).status, 200);
      // The admin user is created (first start) before the disk fills.
      const admin = await eventually(async () => (await api.call('POST', '/auth/token', { body: { username: 'admin', password: ADMIN_PASSWORD } })).body?.access_token);

      const filler = path.join(mnt, 'filler');
      fill(filler);
      // Writes fail once the WAL has to grow: write until one is refused.
      let refused = 0;
      for (let i = 0; i < 2000 && refused < 40; i++) {
        const r = await api.call('POST', '/agents', { token: admin, body: { agent_id: `gw-full-${i}` } });
        if (r.status === 503) refused++;
        else assert.equal(r.status, 201, JSON.stringify(r.body));
      }
      assert.equal(refused, 40, 'no write was refused on a full disk');
      const health = await api.call('GET', '/health');
      assert.equal(health.status, 503);
      assert.equal(health.body.status, 'degraded');
      assert.equal(health.body.database, 'disk_full');
      // One line with the cause, not one per failed commit, and never the
      // ROLLBACK's error.
      const failed = b.lines.filter((l) => /commit failed/.test(l));
      assert.ok(failed.length >= 1 && failed.length <= 2, failed.join('\n'));
      assert.match(failed[0], /the disk is full/);
      assert.ok(!b.lines.some((l) => /no transaction is active/.test(l)));

      // Space returns: /health notices without any write, then writes land.
      rmSync(filler);
      await eventually(async () => (await api.call('GET', '/health')).body.database === 'ok');
      assert.equal((await api.call('GET', '/health')).status, 200);
      assert.ok(b.lines.some((l) => /writes land again after \d+ failed commit/.test(l)), b.lines.join('\n'));
      const r = await api.call('POST', '/agents', { token: admin, body: { agent_id: 'gw-after-full' } });
      assert.equal(r.status, 201);
      assert.equal((await b.stop()).code, 0);
    } finally {
      if (b) { await b.stop('SIGKILL'); b.cleanup(); }
      try { execFileSync('umount', [mnt], { stdio: 'pipe' }); } catch { /* not mounted */ }
      rmSync(mnt, { recursive: true, force: true });
    }
  });
});
