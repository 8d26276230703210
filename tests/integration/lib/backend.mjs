// Starts the real viworks-backend on free loopback ports in a fresh data
// directory, waits for its "ready" log line (an event, not a sleep), and
// stops it with a signal. Used by every integration test.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const BACKEND = process.env.VW_BACKEND
  ?? path.resolve(import.meta.dirname ?? '.', '../../../build-asan/viworks-backend');

// The fault-injection library (tests/fault/vw_fault.c), for LD_PRELOAD in
// a backend's env: see tests/integration/faults.test.mjs.
export const FAULT_LIB = process.env.VW_FAULT_LIB
  ?? path.resolve(import.meta.dirname ?? '.', '../../../build-asan/tests/libvw_fault.so');

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export async function freePorts(n) {
  const ports = new Set();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

export function tempDir(prefix = 'vw-test-') {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

// Runs the backend to completion (for options that make it exit at once).
export function runBackend(args, { env = {}, cwd, timeoutMs = 20000 } = {}) {
  return new Promise((resolve, reject) => {
    const proc = spawn(BACKEND, args, { cwd: cwd ?? tempDir(), env: { ...process.env, ...env } });
    let stdout = '', stderr = '';
    proc.stdout.on('data', (d) => { stdout += d; });
    proc.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error('backend did not exit')); }, timeoutMs);
    proc.on('exit', (code, signal) => { clearTimeout(timer); resolve({ code, signal, stdout, stderr }); });
  });
}

// Starts a backend. `ports` may be overridden; otherwise fresh free ports are
// used and passed as flags (unless flags: false, for env/config-file tests).
// `ports` ({http, ws, admin, events}, e.g. an earlier backend's) restarts on
// the same ports, so that agents reconnect.
// Free ports are picked by binding port 0 and closing it, so another test
// running in parallel can take one before the backend binds it: a start that
// fails with "address already in use" on ports we chose is tried again with
// fresh ones (at most 3 times). Ports given by the caller are never changed.
export async function startBackend(opts = {}) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startBackendOnce(opts);
    } catch (e) {
      if (opts.ports || attempt >= 3 || !/address already in use/.test(String(e.message))) throw e;
    }
  }
}

async function startBackendOnce({ args = [], env = {}, cwd, flags = true, readyTimeoutMs = 15000, ports } = {}) {
  const [http, ws, admin, events] = ports ? [ports.http, ports.ws, ports.admin, ports.events] : await freePorts(4);
  const dir = cwd ?? tempDir();
  const portArgs = flags
    ? ['--http-addr', '127.0.0.1', '--http-port', String(http), '--ws-addr', '127.0.0.1',
       '--ws-port', String(ws), '--admin-endpoint', `tcp://127.0.0.1:${admin}`,
       '--events-endpoint', `tcp://127.0.0.1:${events}`]
    : [];
  const started = performance.now();
  const proc = spawn(BACKEND, [...portArgs, ...args], {
    cwd: dir, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines = [];
  const exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => resolve({ code, signal, at: performance.now() }));
  });
  const ready = new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`backend not ready in ${readyTimeoutMs} ms:\n${lines.join('\n')}`)), readyTimeoutMs);
    proc.stderr.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        lines.push(line);
        if (/ready in \d+ ms/.test(line)) { clearTimeout(timer); resolve(performance.now()); }
      }
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`backend exited (${code ?? signal}) before ready:\n${lines.join('\n')}`));
    });
  });
  proc.stdout.resume();
  const readyAt = await ready;
  return {
    proc, dir, lines, http, ws, admin, events, started, readyAt,
    httpUrl: `http://127.0.0.1:${http}`,
    wsUrl: `ws://127.0.0.1:${ws}/ws/agent`,
    exited,
    // Sends a signal and waits for the exit: {code, signal, ms}.
    async stop(sig = 'SIGTERM') {
      const t = performance.now();
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(sig);
      const r = await exited;
      return { code: r.code, signal: r.signal, ms: r.at - t };
    },
    cleanup() { rmSync(dir, { recursive: true, force: true }); },
  };
}

// Reads the JSON log lines of a backend.
export function jsonLines(lines) {
  return lines.flatMap((l) => { try { return [JSON.parse(l)]; } catch { return []; } });
}
