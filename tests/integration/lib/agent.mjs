// Runs our C agent (viworks-agent) against a test backend, as an operator
// would: token in the environment, text logs collected.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';

export const AGENT = process.env.VW_AGENT ?? path.resolve(import.meta.dirname, '../../../build-asan/viworks-agent');

// {proc, exited (resolves {code, signal, log}), log(), stop() (SIGTERM, expects exit 0)}.
export function runAgent(b, id, token, args = []) {
  const proc = spawn(AGENT, ['--url', b.wsUrl, '--id', id, '--log-format', 'text', ...args], {
    env: { ...process.env, VIWORKS_AGENT_TOKEN: token }, stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  proc.stderr.on('data', (d) => { log += d; });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal, log })));
  return {
    proc, exited, log: () => log,
    async stop() { proc.kill('SIGTERM'); const r = await exited; assert.equal(r.code, 0, r.log); },
  };
}
