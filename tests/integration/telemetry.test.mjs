// Telemetry end to end (issue 11, SPEC §3 and §6): frames are acked only
// once durable, a re-sent seq is acked again and stored once (also across a
// kill -9 of the backend), bad frames are refused whole with an error that
// names their seq, and GET /telemetry/{agent_id} answers raw points and
// buckets. The real viworks-agent streams through a backend crash with no
// gap and no duplicate.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { AGENT, runAgent } from './lib/agent.mjs';
import { startBackend } from './lib/backend.mjs';
import { ADMIN_PASSWORD, JWT_SECRET, Agent, client, eventually } from './lib/api.mjs';

const ENV = { VIWORKS_ADMIN_PASSWORD: ADMIN_PASSWORD, JWT_SECRET };

// An agent session that can wait for the frame answering a telemetry seq.
class TmAgent extends Agent {
  constructor(url, opts) {
    super(url, opts);
    this.waiters = [];
    this.onFrame = (msg) => {
      this.waiters = this.waiters.filter((w) => !w(msg));
    };
  }
  // Resolves with the first frame (ack or error) that names seq.
  answer(seq) {
    const seen = this.messages.find((m) => (m.type === 'telemetry_ack' || m.type === 'error') && m.seq === seq);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.push((m) => {
      if ((m.type === 'telemetry_ack' || m.type === 'error') && m.seq === seq) { resolve(m); return true; }
      return false;
    }));
  }
  send(obj) { this.ws.send(JSON.stringify(obj)); }
  telemetry(seq, points) { this.send({ type: 'telemetry', seq, points }); return this.answer(seq); }
}

async function setup(args = []) {
  const b = await startBackend({ env: ENV, args });
  const api = client(b);
  const admin = await eventually(async () => (await api.call('POST', '/auth/token', { body: { username: 'admin', password: ADMIN_PASSWORD } })).body?.access_token);
  return { b, api, admin };
}

async function createAgent(api, admin, id) {
  const r = await api.call('POST', '/agents', { token: admin, body: { agent_id: id } });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.token;
}

const series = (body, metric) => body.series.find((s) => s.metric === metric)?.points ?? [];

describe('telemetry ingestion and queries', () => {
  let b, api, admin, token;
  const T0 = Date.now() - 600000;  // ten minutes ago, on a minute boundary below
  const base = T0 - (T0 % 60000);
  before(async () => {
    ({ b, api, admin } = await setup());
    token = await createAgent(api, admin, 'gw-tm-1');
    await createAgent(api, admin, 'gw-tm-quiet');
  });
  after(async () => { await b.stop('SIGKILL'); b.cleanup(); });

  it('acks a frame once stored, acks a re-sent seq again without storing it twice, and answers raw points', async () => {
    const a = await new TmAgent(b.wsUrl, { agentId: 'gw-tm-1', token }).connect();
    const points = [
      { ts: base + 1000, metrics: { cpu: 0.31, mem_used_mb: 812, tunnels: 17 } },
      { ts: base + 11000, metrics: { cpu: 0.5, tunnels: 18 } },
    ];
    const ack = await a.telemetry(1, points);
    assert.deepEqual(ack, { type: 'telemetry_ack', seq: 1 });
    // Durable: the query (a read of the database) sees it.
    const q = `/telemetry/gw-tm-1?from=${base}&to=${base + 60000}`;
    let r = await api.call('GET', q, { token: admin });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.agent_id, 'gw-tm-1');
    assert.deepEqual(r.body.series.map((s) => s.metric), ['cpu', 'mem_used_mb', 'tunnels']);
    assert.deepEqual(series(r.body, 'cpu'), [[base + 1000, 0.31], [base + 11000, 0.5]]);
    assert.deepEqual(series(r.body, 'mem_used_mb'), [[base + 1000, 812]]);
    assert.deepEqual(series(r.body, 'tunnels'), [[base + 1000, 17], [base + 11000, 18]]);

    // The same seq again (an agent that missed the ack): acked, not stored twice.
    const again = await (async () => { a.messages.length = 0; return a.telemetry(1, points); })();
    assert.deepEqual(again, { type: 'telemetry_ack', seq: 1 });
    r = await api.call('GET', q, { token: admin });
    assert.deepEqual(series(r.body, 'cpu'), [[base + 1000, 0.31], [base + 11000, 0.5]]);

    // Out of order and with gaps: 5, then 3, then 4 (merging the ranges), then 3 again.
    for (const seq of [5, 3, 4]) {
      const ok = await a.telemetry(seq, [{ ts: base + 20000 + seq * 1000, metrics: { cpu: seq / 10 } }]);
      assert.equal(ok.type, 'telemetry_ack');
    }
    a.messages.length = 0;
    assert.equal((await a.telemetry(3, [{ ts: base + 23000, metrics: { cpu: 0.3 } }])).type, 'telemetry_ack');
    r = await api.call('GET', `${q}&metric=cpu`, { token: admin });
    assert.deepEqual(r.body.series.map((s) => s.metric), ['cpu']);
    assert.deepEqual(series(r.body, 'cpu').map((p) => p[0]),
      [base + 1000, base + 11000, base + 23000, base + 24000, base + 25000]);
    await a.close();
  });

  it('writes values as short as they read back exactly', async () => {
    const a = await new TmAgent(b.wsUrl, { agentId: 'gw-tm-1', token }).connect();
    const t = base + 400000;
    assert.equal((await a.telemetry(300, [{ ts: t, metrics: { load: 1.93 } }])).type, 'telemetry_ack');
    const res = await fetch(`${b.httpUrl}/telemetry/gw-tm-1?metric=load&from=${t}&to=${t + 1}`, { headers: { authorization: `Bearer ${admin}` } });
    assert.equal(await res.text(), `{"agent_id":"gw-tm-1","series":[{"metric":"load","points":[[${t},1.93]]}]}`);
    // A value 15 digits cannot give back makes the answer use 17: still exact.
    assert.equal((await a.telemetry(301, [{ ts: t + 1, metrics: { load: 0.1 + 0.2 } }])).type, 'telemetry_ack');
    const r = await api.call('GET', `/telemetry/gw-tm-1?metric=load&from=${t}&to=${t + 2}`, { token: admin });
    assert.deepEqual(series(r.body, 'load'), [[t, 1.93], [t + 1, 0.1 + 0.2]]);
    await a.close();
  });

  it('answers buckets aligned to step_ms with each aggregate, empty buckets left out', async () => {
    const a = await new TmAgent(b.wsUrl, { agentId: 'gw-tm-1', token }).connect();
    const t = base + 120000;  // a fresh minute
    const values = [[t + 1000, 4], [t + 2000, 1], [t + 9000, 7], [t + 10000, 2], [t + 35000, 5]];
    const ack = await a.telemetry(10, values.map(([ts, v]) => ({ ts, metrics: { rtt: v } })));
    assert.equal(ack.type, 'telemetry_ack');
    const want = {
      avg: [[t, 4], [t + 10000, 2], [t + 30000, 5]],
      min: [[t, 1], [t + 10000, 2], [t + 30000, 5]],
      max: [[t, 7], [t + 10000, 2], [t + 30000, 5]],
      sum: [[t, 12], [t + 10000, 2], [t + 30000, 5]],
      count: [[t, 3], [t + 10000, 1], [t + 30000, 1]],
      last: [[t, 7], [t + 10000, 2], [t + 30000, 5]],
    };
    for (const [agg, points] of Object.entries(want)) {
      const r = await api.call('GET', `/telemetry/gw-tm-1?metric=rtt&from=${t}&to=${t + 60000}&step_ms=10000&agg=${agg}`, { token: admin });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(series(r.body, 'rtt'), points, agg);
    }
    // avg is the default aggregate; `from` inside a bucket still aligns to multiples of step_ms.
    const r = await api.call('GET', `/telemetry/gw-tm-1?metric=rtt&from=${t + 1500}&to=${t + 60000}&step_ms=10000`, { token: admin });
    assert.deepEqual(series(r.body, 'rtt'), [[t, 4], [t + 10000, 2], [t + 30000, 5]]);
    await a.close();
  });

  it('refuses a bad frame whole with an error naming its seq, keeps the connection, and stores nothing', async () => {
    const a = await new TmAgent(b.wsUrl, { agentId: 'gw-tm-1', token }).connect();
    const now = Date.now();
    const bad = [
      [20, [{ ts: now, metrics: { 'bad name': 1 } }], /metric name/],
      [21, [{ ts: now, metrics: { cpu: 'high' } }], /finite number/],
      [22, [{ ts: now, metrics: { cpu: 1 } }, { ts: now + 3600000, metrics: { cpu: 2 } }], /in the future/],
      [23, [{ ts: now - 30 * 86400000, metrics: { cpu: 1 } }], /too old/],
      [24, [{ ts: now, metrics: {} }], /1\.\.256 metrics/],
      [25, [], /1\.\.10000 points/],
    ];
    for (const [seq, points, why] of bad) {
      const err = await a.telemetry(seq, points);
      assert.equal(err.type, 'error', JSON.stringify(err));
      assert.equal(err.code, 'invalid_message');
      assert.match(err.message, why);
    }
    // No seq: an error without one.
    a.send({ type: 'telemetry', points: [{ ts: now, metrics: { cpu: 1 } }] });
    await eventually(() => a.messages.find((m) => m.type === 'error' && /seq/.test(m.message) && m.seq === undefined));
    // Still open and working; the refused seqs were not recorded as stored.
    assert.equal((await (async () => { a.messages.length = 0; return a.telemetry(22, [{ ts: now, metrics: { ok: 1 } }]); })()).type, 'telemetry_ack');
    const r = await api.call('GET', `/telemetry/gw-tm-1?from=${now - 1000}&to=${now + 1}`, { token: admin });
    assert.deepEqual(r.body.series, [{ metric: 'ok', points: [[now, 1]] }]);
    await a.close();
  });

  it('streams from simulated agents in msgpack (viworks-agent --simulate)', async () => {
    const ids = ['gw-sim-00001', 'gw-sim-00002', 'gw-sim-00003'];
    const lines = [];
    for (const id of ids) lines.push(`${id} ${await createAgent(api, admin, id)}`);
    const file = path.join(b.dir, 'tokens');
    writeFileSync(file, `${lines.join('\n')}\n`, { mode: 0o600 });
    const from = Date.now() - 1000;
    const proc = spawn(AGENT, ['--url', b.wsUrl, '--simulate', '3', '--id-prefix', 'gw-sim-', '--token-file', file,
      '--format', 'msgpack', '--telemetry-ms', '200', '--telemetry-batch', '2', '--telemetry-metrics', '14',
      '--log-format', 'text'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    proc.stderr.on('data', (d) => { log += d; });
    const exited = new Promise((res) => proc.on('exit', (code) => res(code)));
    try {
      for (const id of ids) {
        const body = await eventually(async () => {
          const r = await api.call('GET', `/telemetry/${id}?from=${from}`, { token: admin });
          return r.status === 200 && series(r.body, 'cpu').length >= 4 && r.body;
        }, { timeoutMs: 15000 });
        // Twelve named gateway metrics, then m12, m13; counters only grow.
        assert.deepEqual(body.series.map((x) => x.metric).sort(), ['conntrack', 'cpu', 'disk_used_pct', 'latency_ms', 'load1',
          'loss_pct', 'm12', 'm13', 'mem_used_mb', 'rx_bytes', 'sessions', 'temp_c', 'tunnels', 'tx_bytes']);
        const rx = series(body, 'rx_bytes').map((p) => p[1]);
        for (let i = 1; i < rx.length; i++) assert.ok(rx[i] >= rx[i - 1]);
      }
    } finally {
      proc.kill('SIGTERM');
      const code = await exited;
      assert.equal(code, 0, log);
    }
  });

  it('answers 400 naming the parameter, 404 for an unknown agent, 401 without a token', async () => {
    const cases = [
      ['?from=x', /'from'/],
      ['?to=-5', /'to'/],
      ['?step_ms=0', /'step_ms'/],
      ['?agg=median&step_ms=1000', /'agg'/],
      ['?agg=avg', /'agg' needs 'step_ms'/],
      ['?from=2000&to=1000', /'from'/],
      ['?metric=a%20b', /'metric'/],
      ['?colour=red', /unknown field 'colour'/],
      ['?agent_id=gw-other', /unknown field 'agent_id'/],
      ['?from=0&to=100000000000&step_ms=1', /step_ms/],
    ];
    for (const [qs, why] of cases) {
      const r = await api.call('GET', `/telemetry/gw-tm-1${qs}`, { token: admin });
      assert.equal(r.status, 400, `${qs}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.code, 'bad_request');
      assert.match(r.body.error.message, why, qs);
    }
    assert.equal((await api.call('GET', '/telemetry/gw-nobody', { token: admin })).status, 404);
    assert.equal((await api.call('GET', '/telemetry/gw-tm-1')).status, 401);
    // An agent that never sent anything has no series.
    const quiet = await api.call('GET', '/telemetry/gw-tm-quiet', { token: admin });
    assert.equal(quiet.status, 200);
    assert.deepEqual(quiet.body, { agent_id: 'gw-tm-quiet', series: [] });
    const summary = await api.call('GET', '/telemetry/gw-tm-quiet/summary', { token: admin });
    assert.equal(summary.status, 200);
    assert.deepEqual(summary.body.metrics, {});
    assert.ok(Number.isInteger(summary.body.at));
  });

  it('bounds a raw answer by telemetry.max_points', async () => {
    const a = await new TmAgent(b.wsUrl, { agentId: 'gw-tm-1', token }).connect();
    const t = base + 300000;
    const points = Array.from({ length: 150 }, (_, i) => ({ ts: t + i, metrics: { n: i } }));
    assert.equal((await a.telemetry(200, points)).type, 'telemetry_ack');
    await a.close();
    const { b: small, api: api2, admin: admin2 } = await setup(['--telemetry-max-points', '100']);
    try {
      // A second backend on its own database: the bound is its setting.
      const t2 = await createAgent(api2, admin2, 'gw-tm-2');
      const a2 = await new TmAgent(small.wsUrl, { agentId: 'gw-tm-2', token: t2 }).connect();
      assert.equal((await a2.telemetry(1, points)).type, 'telemetry_ack');
      let r = await api2.call('GET', `/telemetry/gw-tm-2?from=${t}&to=${t + 150}`, { token: admin2 });
      assert.equal(r.status, 400);
      assert.equal(r.body.error.code, 'too_many_points');
      r = await api2.call('GET', `/telemetry/gw-tm-2?from=${t}&to=${t + 100}`, { token: admin2 });
      assert.equal(r.status, 200);
      assert.equal(series(r.body, 'n').length, 100);
      r = await api2.call('GET', `/telemetry/gw-tm-2?from=${t}&to=${t + 150}&step_ms=10&agg=count`, { token: admin2 });
      assert.equal(r.status, 200);
      assert.deepEqual(series(r.body, 'n').map((p) => p[1]), Array(15).fill(10));
      await a2.close();
    } finally { await small.stop('SIGKILL'); small.cleanup(); }
  });
});

describe('telemetry roll-ups and retention', () => {
  it('answers minute and hour buckets from the roll-ups with the figures of the raw points', async () => {
    const { b, api, admin } = await setup();
    try {
      const token = await createAgent(api, admin, 'gw-roll');
      const a = await new TmAgent(b.wsUrl, { agentId: 'gw-roll', token }).connect();
      // 600 points over the last three hours, in frames of 20, not in time
      // order, with a few equal timestamps.
      const now = Date.now();
      let x = 12345;
      const rnd = () => { x = (x * 1103515245 + 12345) % 2147483648; return x / 2147483648; };
      const points = Array.from({ length: 600 }, () => ({ ts: now - Math.floor(rnd() * 3 * 3600000), metrics: { rtt: Math.round(rnd() * 1000) / 10, up: 1 } }));
      points.push({ ...points[7] });  // the same ts again, another value
      points[600].metrics = { rtt: 99.9, up: 1 };
      for (let i = 0; i < points.length; i += 20) assert.equal((await a.telemetry(1 + i / 20, points.slice(i, i + 20))).type, 'telemetry_ack');
      await a.close();
      const from = now - 3 * 3600000 - 1234, to = now + 1;  // not aligned to any step
      const raw = series((await api.call('GET', `/telemetry/gw-roll?metric=rtt&from=${from}&to=${to}`, { token: admin })).body, 'rtt');
      assert.equal(raw.length, 601);
      const expect = (step, agg) => {
        const m = new Map();
        for (const [ts, v] of raw) {
          const k = ts - (ts % step);
          const g = m.get(k) ?? { n: 0, sum: 0, min: Infinity, max: -Infinity, last: null };
          g.n++; g.sum += v; g.min = Math.min(g.min, v); g.max = Math.max(g.max, v); g.last = v;  // raw is in ts order, equal ts in stored order
          m.set(k, g);
        }
        return [...m.entries()].sort((p, q) => p[0] - q[0]).map(([k, g]) => [k, { avg: g.sum / g.n, sum: g.sum, min: g.min, max: g.max, count: g.n, last: g.last }[agg]]);
      };
      for (const step of [60000, 300000, 3600000, 7000]) {
        for (const agg of ['avg', 'min', 'max', 'sum', 'count', 'last']) {
          const r = await api.call('GET', `/telemetry/gw-roll?metric=rtt&from=${from}&to=${to}&step_ms=${step}&agg=${agg}`, { token: admin });
          assert.equal(r.status, 200, JSON.stringify(r.body));
          const got = series(r.body, 'rtt');
          const want = expect(step, agg);
          assert.equal(got.length, want.length, `${step} ${agg}`);
          got.forEach(([k, v], i) => {
            assert.equal(k, want[i][0]);
            assert.ok(Math.abs(v - want[i][1]) < 1e-9 * Math.max(1, Math.abs(v)), `${step} ${agg} bucket ${k}: ${v} vs ${want[i][1]}`);
          });
        }
      }
    } finally { await b.stop('SIGKILL'); b.cleanup(); }
  });

  it('summarises each metric: last value, 1 m / 5 m / 1 h windows and the trend per minute', async () => {
    const { b, api, admin } = await setup();
    try {
      const token = await createAgent(api, admin, 'gw-sum');
      const a = await new TmAgent(b.wsUrl, { agentId: 'gw-sum', token }).connect();
      const now = Date.now();
      // cpu rises 2 per minute for the last 30 minutes (one point each 30 s);
      // disk was last heard 40 minutes ago.
      const points = [];
      for (let i = 0; i < 60; i++) points.push({ ts: now - 30 * 60000 + i * 30000, metrics: { cpu: i } });
      points.push({ ts: now - 40 * 60000, metrics: { disk: 41 } });
      assert.equal((await a.telemetry(1, points)).type, 'telemetry_ack');
      const r = await api.call('GET', '/telemetry/gw-sum/summary', { token: admin });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.agent_id, 'gw-sum');
      const cpu = r.body.metrics.cpu;
      assert.equal(cpu.last, 59);
      assert.equal(cpu.last_ts, now - 30 * 60000 + 59 * 30000);
      // The last minute holds points 58 and 59; five minutes 50..59; the hour all 60.
      const inRange = (from) => points.filter((p) => p.metrics.cpu !== undefined && p.ts >= from && p.ts <= r.body.at).map((p) => p.metrics.cpu);
      for (const [w, ms] of [['1m', 60000], ['5m', 300000]]) {
        const v = inRange(r.body.at - ms);
        assert.deepEqual(cpu.windows[w], { min: Math.min(...v), max: Math.max(...v), avg: v.reduce((x, y) => x + y, 0) / v.length, count: v.length }, w);
      }
      assert.equal(cpu.windows['1h'].count, 60);
      assert.equal(cpu.windows['1h'].min, 0);
      assert.equal(cpu.windows['1h'].max, 59);
      // Minute averages of 2 points (1 in a minute the window cuts): the slope is 2 within a few %.
      assert.ok(Math.abs(cpu.trend_per_min - 2) < 0.1, `trend ${cpu.trend_per_min}`);
      const disk = r.body.metrics.disk;
      assert.deepEqual(disk, { last: 41, last_ts: now - 40 * 60000, windows: { '1m': { min: null, max: null, avg: null, count: 0 }, '5m': { min: null, max: null, avg: null, count: 0 }, '1h': { min: 41, max: 41, avg: 41, count: 1 } }, trend_per_min: null });
      assert.equal((await api.call('GET', '/telemetry/gw-nobody/summary', { token: admin })).status, 404);
      assert.equal((await api.call('GET', '/telemetry/gw-sum/summary?x=1', { token: admin })).status, 400);
      await a.close();
    } finally { await b.stop('SIGKILL'); b.cleanup(); }
  });

  it('removes raw points and roll-ups past their retention in the background', async () => {
    const { b, api, admin } = await setup(['--telemetry-retention', '1h', '--telemetry-retention-1m', '1h']);
    try {
      const token = await createAgent(api, admin, 'gw-old');
      const a = await new TmAgent(b.wsUrl, { agentId: 'gw-old', token }).connect();
      const now = Date.now();
      const old = now - 3600000 + 4000;  // past the hour in about four seconds
      assert.equal((await a.telemetry(1, [{ ts: old, metrics: { v: 1 } }])).type, 'telemetry_ack');
      assert.equal((await a.telemetry(2, [{ ts: now, metrics: { v: 2 } }])).type, 'telemetry_ack');
      const get = async (q) => series((await api.call('GET', `/telemetry/gw-old?metric=v&from=${old - old % 3600000}&to=${now + 1}${q}`, { token: admin })).body, 'v');
      assert.equal((await get('')).length, 2);
      assert.equal((await get('&step_ms=60000&agg=count')).length, 2);
      await eventually(async () => (await get('')).length === 1, { timeoutMs: 20000, stepMs: 250 });
      assert.deepEqual((await get('')).map((p) => p[1]), [2]);
      // The minute buckets went the same way; the hour buckets (kept 730 d) stay.
      await eventually(async () => (await get('&step_ms=60000&agg=count')).length === 1, { timeoutMs: 20000, stepMs: 250 });
      const hours = await get('&step_ms=3600000&agg=count');
      assert.equal(hours.reduce((n, p) => n + p[1], 0), 2);
      await a.close();
    } finally { await b.stop('SIGKILL'); b.cleanup(); }
  });
});

describe('telemetry alerts', () => {
  it('a rule that degrades marks its agent degraded while it fires, and online again after', async () => {
    const { b, api, admin } = await setup(['--telemetry-alerts', 'hot: temp_c > 80 degrade; busy: cpu >= 0.95 for 1s']);
    try {
      const token = await createAgent(api, admin, 'gw-hot');
      const a = await new TmAgent(b.wsUrl, { agentId: 'gw-hot', token }).connect();
      const status = async () => (await api.call('GET', '/agents/gw-hot', { token: admin })).body.status;
      await eventually(async () => (await status()) === 'online');
      const now = Date.now();
      assert.equal((await a.telemetry(1, [{ ts: now - 2000, metrics: { temp_c: 85, cpu: 0.99 } }])).type, 'telemetry_ack');
      await eventually(async () => (await status()) === 'degraded');
      // Another rule (not degrading) firing and resolving changes nothing.
      assert.equal((await a.telemetry(2, [{ ts: now - 500, metrics: { temp_c: 86, cpu: 0.99 } }])).type, 'telemetry_ack');
      assert.equal((await a.telemetry(3, [{ ts: now, metrics: { temp_c: 40, cpu: 0.1 } }])).type, 'telemetry_ack');
      await eventually(async () => (await status()) === 'online');
      await a.close();
    } finally { await b.stop('SIGKILL'); b.cleanup(); }
  });

  it('a bad rule stops the start with exit 2 naming it', async () => {
    const { runBackend } = await import('./lib/backend.mjs');
    const r = await runBackend(['--telemetry-alerts', 'hot: temp_c >> 80']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /alert rule 'hot': the operator/);
  });
});

describe('telemetry across a crash of the backend', () => {
  it('a frame stored before kill -9 is acked again after the restart and not stored twice; unacked frames are stored once re-sent', async () => {
    let { b, api, admin } = await setup();
    const dir = b.dir;
    const ports = { http: b.http, ws: b.ws, admin: b.admin, events: b.events };
    const token = await createAgent(api, admin, 'gw-crash');
    let a = await new TmAgent(b.wsUrl, { agentId: 'gw-crash', token }).connect();
    const t = Date.now() - 60000;
    const frame = (seq) => [{ ts: t + seq * 10, metrics: { seq } }];
    for (let seq = 1; seq <= 20; seq++) assert.equal((await a.telemetry(seq, frame(seq))).type, 'telemetry_ack');
    // Frames 21..40 are sent and the backend is killed at once: some may be
    // stored (not acked), some not.
    for (let seq = 21; seq <= 40; seq++) a.send({ type: 'telemetry', seq, points: frame(seq) });
    await b.stop('SIGKILL');
    await a.waitClose();
    ({ b } = { b: await startBackend({ env: ENV, cwd: dir, ports }) });
    try {
      api = client(b);
      admin = await eventually(async () => (await api.call('POST', '/auth/token', { body: { username: 'admin', password: ADMIN_PASSWORD } })).body?.access_token);
      a = await eventually(async () => { try { return await new TmAgent(b.wsUrl, { agentId: 'gw-crash', token }).connect(); } catch { return null; } });
      // Everything again, as an agent does with what it holds unacked (and
      // here also what was acked): each is acked.
      for (let seq = 1; seq <= 40; seq++) assert.equal((await a.telemetry(seq, frame(seq))).type, 'telemetry_ack', `seq ${seq}`);
      const r = await api.call('GET', `/telemetry/gw-crash?metric=seq&from=${t}&to=${t + 1000}`, { token: admin });
      assert.deepEqual(series(r.body, 'seq').map((p) => p[1]), Array.from({ length: 40 }, (_, i) => i + 1));
      // The roll-ups hold every frame once too (written in the frames' own
      // transactions, so the kill cannot have split them).
      const from = t - (t % 3600000), to = t + 3600000 * 2;
      for (const step of [60000, 3600000]) {
        const b2 = await api.call('GET', `/telemetry/gw-crash?metric=seq&from=${from}&to=${to - (to % step)}&step_ms=${step}&agg=sum`, { token: admin });
        assert.equal(series(b2.body, 'seq').reduce((n, p) => n + p[1], 0), 820, `step ${step}`);
      }
      await a.close();
    } finally { await b.stop('SIGKILL'); b.cleanup(); }
  });

  it('viworks-agent streams through a kill -9 and restart of the backend: no gap, no duplicate', async () => {
    let { b, api, admin } = await setup();
    const dir = b.dir;
    const ports = { http: b.http, ws: b.ws, admin: b.admin, events: b.events };
    const token = await createAgent(api, admin, 'gw-stream');
    const started = Date.now();
    const agent = runAgent(b, 'gw-stream', token, ['--telemetry-ms', '100']);
    const count = async (api_, tok) => {
      const r = await api_.call('GET', `/telemetry/gw-stream?metric=load1&from=${started - 1000}`, { token: tok });
      return r.status === 200 ? series(r.body, 'load1').length : 0;
    };
    try {
      await eventually(async () => (await count(api, admin)) >= 10, { timeoutMs: 15000 });
      await b.stop('SIGKILL');
      // The agent keeps taking points while the backend is away.
      await new Promise((r) => setTimeout(r, 1000));
      b = await startBackend({ env: ENV, cwd: dir, ports });
      api = client(b);
      admin = await eventually(async () => (await api.call('POST', '/auth/token', { body: { username: 'admin', password: ADMIN_PASSWORD } })).body?.access_token);
      const back = Date.now();
      // The points taken during the outage arrive, and new ones after them.
      await eventually(async () => {
        const r = await api.call('GET', `/telemetry/gw-stream?metric=load1&from=${back}`, { token: admin });
        return r.status === 200 && series(r.body, 'load1').length >= 10;
      }, { timeoutMs: 20000 });
      await agent.stop();
      const r = await api.call('GET', `/telemetry/gw-stream?metric=load1&from=${started - 1000}`, { token: admin });
      const ts = series(r.body, 'load1').map((p) => p[0]);
      assert.ok(ts.length >= 30, `only ${ts.length} points`);
      // Raw answers hold one point per ts; every point the agent took was
      // stored once, so the stream has no hole wider than a few intervals.
      for (let i = 1; i < ts.length; i++) {
        assert.ok(ts[i] > ts[i - 1]);
        assert.ok(ts[i] - ts[i - 1] < 1000, `a gap of ${ts[i] - ts[i - 1]} ms after ${ts[i - 1]}`);
      }
      await b.stop();
      // The database holds no frame twice: as many rows as seqs, and as
      // many as the points the raw answer (one per ts) showed.
      const sql = "SELECT count(*), count(DISTINCT seq) FROM telemetry_frames";
      const out = spawnSync('python3', ['-c', `import sqlite3,sys; print(*sqlite3.connect(sys.argv[1]).execute(${JSON.stringify(sql)}).fetchone())`,
        path.join(dir, 'data', 'viworks.db')], { encoding: 'utf8' });
      assert.equal(out.status, 0, out.stderr);
      const [rows, seqs] = out.stdout.trim().split(' ').map(Number);
      assert.equal(rows, seqs);
      assert.equal(rows, ts.length);
    } finally { await b.stop('SIGKILL'); b.cleanup(); }
  });
});
