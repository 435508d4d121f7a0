// The event log and its hooks against real peers (a local HTTP server, /bin/sh), the tcp and http
// probes against real local servers, and GET /v1/events through the real API server.

import t from 'tap';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { EventLog } from '../src/control/health/events';
import { EVENTS_DEFAULTS, HealthCheck } from '../src/control/config/health';
import { tcpProbe, httpProbe } from '../src/control/health/probes';
import { parseConfig } from '../src/control/config';
import { Controller } from '../src/control/controller';
import { buildDataplane } from '../src/app/replay';
import { startApiServer } from '../src/control/api';
import { runClient } from '../src/cli/client';

async function listen(server: http.Server | net.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as net.AddressInfo).port;
}

t.test('recent events: bounded, read after a seq, and a reader waiting for the next', async (t) => {
  const log = new EventLog({ config: { ...EVENTS_DEFAULTS, recent: 3 }, clock: () => 1_700_000_000_000 });
  for (let i = 0; i < 5; i++) log.emit('health_down', { backend: `b${i}`, from: 'up', to: 'down', reason: 'connection refused' });
  const p = log.since(0);
  t.same(p.events.map((e) => e.seq), [3, 4, 5], 'only the last 3 are kept');
  t.equal(p.next, 5);
  t.equal(p.events[0]!.message, 'backend b2 up -> down (connection refused)');
  t.equal(p.events[0]!.time, '2023-11-14T22:13:20.000Z');
  t.same(log.since(5), { events: [], next: 5 }, 'nothing new');
  t.equal(log.since(0).missed, 2, 'a reader behind the list is told how many it missed');
  const t0 = Date.now();
  await log.wait(5, 100);
  t.ok(Date.now() - t0 >= 90, 'wait with nothing new: times out');
  const waiting = log.wait(5, 5000);
  setTimeout(() => log.emit('failover', { service: '10.0.0.1:80', from: ['a'], to: ['b'] }), 20);
  await waiting;
  t.same(log.since(5).events.map((e) => e.type), ['failover'], 'a waiting reader wakes at the next event');
  t.same(log.typeCounts(), [{ type: 'health_down', count: 5 }, { type: 'failover', count: 1 }]);
});

t.test('webhook: each event POSTed as JSON; a hook that hangs never delays emit, its queue is bounded, failures are counted', async (t) => {
  const got: unknown[] = [];
  let hang = false;
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      got.push({ type: req.headers['content-type'], body: JSON.parse(body) });
      if (!hang) res.end('ok');
    });
  });
  const port = await listen(server);
  t.teardown(() => { server.closeAllConnections(); server.close(); });
  const logs: string[] = [];
  const log = new EventLog({ config: { ...EVENTS_DEFAULTS, webhook: `http://127.0.0.1:${port}/hook`, timeoutMs: 300, queue: 2 }, log: (_l, m) => logs.push(m) });
  log.emit('health_up', { backend: 'web1', from: 'down', to: 'up', reason: null });
  while (log.hookStats().sent < 1) await new Promise((r) => setTimeout(r, 10));
  t.match(got[0], { type: 'application/json', body: { seq: 1, type: 'health_up', backend: 'web1', message: 'backend web1 down -> up' } });

  hang = true;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < 10; i++) log.emit('failover', { service: 'x', from: ['a'], to: ['b'] });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  t.ok(ms < 50, `10 emits with a hanging hook took ${ms.toFixed(2)} ms (never waits for the hook)`);
  t.match(log.hookStats(), { dropped: 7, queued: 2 }, 'one in flight, two queued, seven dropped and counted');
  while (log.hookStats().failed < 3) await new Promise((r) => setTimeout(r, 20));
  t.match(log.hookStats(), { sent: 1, failed: 3, dropped: 7, queued: 0 }, 'each call timed out (300 ms) and was counted');
  t.ok(logs.some((m) => /did not answer within 300 ms/.test(m)), 'and logged');
  t.ok(logs.some((m) => /7 event\(s\) dropped|1 event\(s\) dropped/.test(m)), 'the drops are logged');
});

t.test('command hook: the event on stdin and in the environment; a failing or slow command is counted', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vg-hook-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const out = path.join(dir, 'got');
  const log = new EventLog({ config: { ...EVENTS_DEFAULTS, command: `{ cat; echo; echo "$VIPGATE_EVENT"; } > ${out}`, timeoutMs: 2000 } });
  log.emit('switch', { service: '10.0.0.1:80', to: 'web2', by: 'vipgate switch' });
  while (log.hookStats().sent + log.hookStats().failed < 1) await new Promise((r) => setTimeout(r, 10));
  const [json, type] = fs.readFileSync(out, 'utf8').trim().split('\n');
  t.match(JSON.parse(json!), { seq: 1, type: 'switch', service: '10.0.0.1:80', to: 'web2' });
  t.equal(type, 'switch');
  const failing = new EventLog({ config: { ...EVENTS_DEFAULTS, command: 'echo nope >&2; exit 3', timeoutMs: 2000 } });
  failing.emit('switch', {});
  while (failing.hookStats().failed < 1) await new Promise((r) => setTimeout(r, 10));
  t.match(failing.hookStats(), { sent: 0, failed: 1 });
  const logs: string[] = [];
  const slow = new EventLog({ config: { ...EVENTS_DEFAULTS, command: 'sleep 10', timeoutMs: 200 }, log: (_l, m) => logs.push(m) });
  const t0 = Date.now();
  slow.emit('switch', {});
  while (slow.hookStats().failed < 1) await new Promise((r) => setTimeout(r, 10));
  t.ok(Date.now() - t0 < 2000, 'killed at its timeout');
  // Its process group is gone too (the sleep the shell started), so nothing keeps running.
  await new Promise((r) => setTimeout(r, 100));
  t.match(logs.join('\n'), /did not finish within 200 ms \(killed\)/);
});

const check = (o: Partial<HealthCheck> = {}): HealthCheck => ({ type: 'tcp', port: 0, intervalMs: 1000, timeoutMs: 500, fastIntervalMs: 250, rise: 2, fall: 3, http: null, ...o });

t.test('tcp probe: a listening port answers; a closed one is refused', async (t) => {
  const server = net.createServer((s) => s.on('error', () => {}));
  const port = await listen(server);
  t.teardown(() => server.close());
  const ok = await tcpProbe({ ip: '127.0.0.1', port }, check());
  t.match(ok, { ok: true, reason: null });
  t.ok(ok.latencyMs >= 0 && ok.latencyMs < 500);
  const closed = net.createServer();
  const cport = await listen(closed);
  await new Promise((r) => closed.close(r));
  t.match(await tcpProbe({ ip: '127.0.0.1', port: cport }, check()), { ok: false, reason: 'connection refused' });
});

t.test('http probe: status and body checked, with a reason for operators', async (t) => {
  let status = 200, body = 'all ok', delay = 0;
  const server = http.createServer((req, res) => {
    setTimeout(() => { res.statusCode = status; res.end(`${req.url} ${req.headers.host} ${body}`); }, delay);
  });
  const port = await listen(server);
  t.teardown(() => { server.closeAllConnections(); server.close(); });
  const h = (o: Partial<NonNullable<HealthCheck['http']>> = {}) => check({ type: 'http', http: { path: '/healthz', host: 'www.example', status: [[200, 399]], body: null, ...o } });
  t.match(await httpProbe({ ip: '127.0.0.1', port }, h()), { ok: true });
  t.match(await httpProbe({ ip: '127.0.0.1', port }, h({ body: '/healthz www.example all ok' })), { ok: true }, 'path and Host header sent');
  t.match(await httpProbe({ ip: '127.0.0.1', port }, h({ body: 'missing' })), { ok: false, reason: 'body does not contain "missing"' });
  status = 503;
  t.match(await httpProbe({ ip: '127.0.0.1', port }, h()), { ok: false, reason: 'status 503' });
  t.match(await httpProbe({ ip: '127.0.0.1', port }, h({ status: [[503, 503]] })), { ok: true }, 'expect_status');
  delay = 400;
  t.match(await httpProbe({ ip: '127.0.0.1', port }, { ...h(), timeoutMs: 100 }), { ok: false, reason: 'timeout after 100 ms', latencyMs: 100 });
});

t.test('GET /v1/events and vipgate events through the real API server', async (t) => {
  const config = parseConfig('mac: "02:00:5e:00:00:01"\nvips: ["10.0.0.100"]\nbackends: [{ name: a, ip: 10.0.1.1 }, { name: b, ip: 10.0.1.2 }]\nservices: [{ vip: 10.0.0.100, port: 80, active: a, standby: [b] }]\n', 'e.yaml');
  const controller = new Controller({ config, port: buildDataplane(config).port, mac: config.mac!, stateFile: null });
  const api = await startApiServer({ listen: '127.0.0.1:0', token: null, api: controller });
  t.teardown(() => api.close());
  controller.switchService('10.0.0.100:80', { backend: 'b' });
  const get = async (q: string) => { const r = await fetch(`http://${api.address}/v1/events${q}`); return { status: r.status, body: await r.json() as Record<string, unknown> }; };
  const r = await get('');
  t.equal(r.status, 200);
  t.match(r.body, { events: [{ seq: 1, type: 'switch', service: '10.0.0.100:80', to: 'b', message: 'service 10.0.0.100:80: switched to b (vipgate switch)' }], next: 1 });
  t.match(await get('?since=abc'), { status: 400, body: { error: { code: 'EAPI_INVALID', field: 'since' } } });
  t.match(await get('?wait=600'), { status: 400, body: { error: { code: 'EAPI_INVALID', message: /wait: must be a whole number 0..60/ } } });
  const later = get('?since=1&wait=5');
  setTimeout(() => controller.switchService('10.0.0.100:80', { backend: null }), 50);
  t.match((await later).body, { events: [{ seq: 2, type: 'switch', to: null }], next: 2 }, 'a long poll returns at the next event');
  const lines: string[] = [];
  const code = await runClient('events', ['--api', api.address], { out: (s: string) => lines.push(s), err: (s: string) => lines.push(s), env: {} } as never);
  t.equal(code, 0);
  t.match(lines.join('\n'), /#1 +switch +service 10\.0\.0\.100:80: switched to b[\s\S]*#2 +switch +service 10\.0\.0\.100:80: switched to priority order/);
});

t.test('close() ends a command hook in flight: its process group does not outlive vipgate', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vg-hook-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const pidFile = path.join(dir, 'pid');
  const log = new EventLog({ config: { ...EVENTS_DEFAULTS, command: `sleep 30 & echo $! > ${pidFile}.tmp; mv ${pidFile}.tmp ${pidFile}; wait`, timeoutMs: 60_000 } });
  log.emit('switch', {});
  const t0 = Date.now();
  while (!fs.existsSync(pidFile) && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 10));
  const pid = Number(fs.readFileSync(pidFile, 'utf8'));
  t.ok(pid > 0, `the hook started sleep (pid ${pid})`);
  const alive = () => { try { process.kill(pid, 0); return true; } catch { return false; } };
  t.ok(alive(), 'running');
  log.close();
  const t1 = Date.now();
  while (alive() && Date.now() - t1 < 5000) await new Promise((r) => setTimeout(r, 10));
  t.notOk(alive(), 'the sleep the hook started is gone after close()');
  if (alive()) process.kill(pid, 'SIGKILL'); // started by this test: leave nothing behind
});

t.test('a syn_check summary is logged at warn when a probe failed, at info otherwise', async (t) => {
  const levels: string[] = [];
  const log = new EventLog({ config: EVENTS_DEFAULTS, log: (l) => levels.push(l) });
  log.emit('syn_check', { backend: 'web1', probes: 3, probes_failed: 0, forwarded: 3, moved: 0, reset: 0 });
  log.emit('syn_check', { backend: 'web1', probes: 2, probes_failed: 1, forwarded: 1, moved: 1, reset: 0, last_failure: '10.0.1.21:80 timeout after 20 ms' });
  log.emit('health_down', { backend: 'web1', from: 'up', to: 'down' });
  t.same(levels, ['info', 'warn', 'warn']);
});
