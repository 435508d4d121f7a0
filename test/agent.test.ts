// `vipgate agent` as a process (bin/vipgate.js) against a fake API: the registration body and
// lease, renewals, waiting for and following a health check, unregistering on SIGTERM, exit 2
// on a refused registration, and riding out an API that is not there yet.
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, ChildProcess } from 'node:child_process';
import { FakeApi, apiError, backend, Recorded, deadPort } from './helpers/fake-api-server';
import { repoRoot } from './helpers/paths';

const bin = path.join(repoRoot, 'bin', 'vipgate.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vipgate-agent-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Agent {
  child: ChildProcess;
  /** stderr lines so far. */
  lines: string[];
  /** The JSON ones, parsed. */
  logs(): Array<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitLog(re: RegExp, timeoutMs?: number): Promise<string>;
}

/** Start an agent; it is killed (by its PID) at the end of the test `t` if still running. */
function startAgent(t: Test, args: string[], env: NodeJS.ProcessEnv = {}): Agent {
  const child = spawn(process.execPath, [bin, 'agent', ...args], { env: { PATH: process.env['PATH'], ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let partial = '';
  const waiters: Array<() => void> = [];
  child.stderr!.on('data', (d: Buffer) => {
    partial += d.toString('utf8');
    const parts = partial.split('\n');
    partial = parts.pop()!;
    lines.push(...parts);
    for (const w of waiters.splice(0)) w();
  });
  child.stdout!.on('data', (d: Buffer) => { lines.push(`stdout: ${d}`); });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => { resolve({ code, signal }); for (const w of waiters.splice(0)) w(); });
  });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
  });
  const a: Agent = {
    child, lines, exited,
    logs: () => lines.flatMap((l) => { try { return [JSON.parse(l) as Record<string, unknown>]; } catch { return []; } }),
    async waitLog(re, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const hit = lines.find((l) => re.test(l));
        if (hit) return hit;
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`no log line matching ${re} within ${timeoutMs}ms; got:\n${lines.join('\n')}`);
        await new Promise<void>((r) => { const tm = setTimeout(r, 100); waiters.push(() => { clearTimeout(tm); r(); }); });
      }
    },
  };
  return a;
}

async function exitWithin(a: Agent, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`agent still running after ${ms}ms; log:\n${a.lines.join('\n')}`)), ms); });
  try { return await Promise.race([a.exited, timeout]); } finally { clearTimeout(timer); }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A fake API that accepts registrations (201 first, then 200), PATCHes and DELETEs of `name`. */
async function acceptingApi(t: Test, name = 'web1', port = 0): Promise<FakeApi> {
  const api = await FakeApi.start(port);
  t.teardown(() => api.close());
  let state: 'up' | 'drain' | 'down' = 'up';
  const view = () => backend({ name, ip: '10.0.1.21', source: 'api', state, lease: { seconds: 2, expiresIn: 2 } });
  api.on('POST', '/v1/backends', () => ({ status: 201, body: { backend: view(), created: true } }), () => ({ status: 200, body: { backend: view(), created: false } }));
  api.on('PATCH', `/v1/backends/${name}`, (r) => { state = (r.body as { state: typeof state }).state; return { body: { backend: view() } }; });
  api.on('DELETE', `/v1/backends/${name}`, () => ({ status: 202, body: { backend: { ...view(), state: 'drain', leaving: true, flows: 3 } } }));
  return api;
}

const BASE = ['--name', 'web1', '--ip', '10.0.1.21', '--serves', '10.0.0.100:80,10.0.0.100:443', '--serves', '10.0.0.101'];

t.test('registers with the body and lease, renews every --renew, SIGTERM unregisters and exits 0', async (t) => {
  const api = await acceptingApi(t);
  const a = startAgent(t, [...BASE, '--mac', '02:00:00:00:01:21', '--priority', '150', '--weight', '20', '--api', api.addr, '--token', 'tk', '--lease', '2', '--renew', '300ms']);
  const first = await api.waitFor((r) => r.method === 'POST', 10_000, 0, 'the registration');
  t.same(first.body, { name: 'web1', ip: '10.0.1.21', mac: '02:00:00:00:01:21', serves: ['10.0.0.100:80', '10.0.0.100:443', '10.0.0.101'], priority: 150, weight: 20, lease: 2 });
  t.equal(first.headers['authorization'], 'Bearer tk');
  await api.waitFor(() => api.seen('POST').length >= 4, 5000, 0, 'three renewals');
  const posts = api.seen('POST', '/v1/backends');
  for (const p of posts) t.same(p.body, first.body, 'a renewal re-sends the same body');
  const gaps = posts.slice(1).map((p, i) => p.at - posts[i]!.at);
  for (const g of gaps) t.ok(g >= 250 && g < 1500, `renewed after ${g}ms (--renew 300ms)`);

  await a.waitLog(/"msg":"registered"/);
  a.child.kill('SIGTERM');
  const ex = await exitWithin(a, 8000);
  t.same(ex, { code: 0, signal: null }, 'exit 0');
  const del = api.seen('DELETE');
  t.equal(del.length, 1, 'one DELETE');
  t.equal(del[0]!.path, '/v1/backends/web1');
  t.equal(del[0]!.query.get('force'), null, 'a drain, not a forced removal');
  t.ok(del[0]!.at >= posts.at(-1)!.at, 'DELETE after the last renewal');
  t.equal(api.seen('POST').length, posts.length, 'no renewal after the DELETE');

  const logs = a.logs();
  t.ok(logs.length >= 3 && logs.length === a.lines.length, 'every line is a JSON object');
  for (const l of logs) {
    t.match(l, { time: /^\d{4}-\d\d-\d\dT/, level: /^(debug|info|warn|error)$/, msg: String });
    t.same(Object.keys(l).slice(0, 3), ['time', 'level', 'msg']);
  }
  t.match(logs.find((l) => l['msg'] === 'registered'), { level: 'info', backend: 'web1', created: true });
  t.match(logs.find((l) => /unregistered/.test(String(l['msg']))), { level: 'info', flows: 3, msg: /draining, 3 flows left/ });
});

t.test('--health-cmd: registers only once it passes; drains after 3 failures; back up when it passes', async (t) => {
  const api = await acceptingApi(t);
  const flag = path.join(tmp, 'healthy');
  fs.rmSync(flag, { force: true });
  const a = startAgent(t, [...BASE, '--api', api.addr, '--lease', '2', '--renew', '300ms', '--health-cmd', `test -f '${flag}'`, '--health-interval', '100ms', '--log-format', 'text']);
  await a.waitLog(/waiting for the health check to pass/);
  await sleep(800);
  t.equal(api.requests.length, 0, 'nothing sent while the check fails');
  t.equal(a.lines.filter((l) => /health check failed/.test(l)).length, 1, 'the failure logged once, not every 100ms');

  fs.writeFileSync(flag, '');
  const reg = await api.waitFor((r) => r.method === 'POST', 5000, 0, 'the registration once healthy');
  t.match(reg.body, { name: 'web1', lease: 2 });
  await api.waitFor(() => api.seen('POST').length >= 2, 5000, 0, 'a renewal');
  t.equal(api.seen('PATCH').length, 0, 'no state change while healthy');

  const failAt = Date.now();
  fs.rmSync(flag);
  const drain = await api.waitFor((r) => r.method === 'PATCH', 5000, 0, 'the drain');
  t.same(drain.body, { state: 'drain' });
  t.equal(drain.path, '/v1/backends/web1');
  t.ok(drain.at - failAt >= 200, `drained after several failed checks (${drain.at - failAt}ms after the file went)`);
  await sleep(500);
  t.equal(api.seen('PATCH').length, 1, 'drained once, not at every failure');
  const renewals = api.seen('POST').length;
  await api.waitFor(() => api.seen('POST').length > renewals, 5000, 0, 'renewals continue while drained');

  fs.writeFileSync(flag, '');
  const up = await api.waitFor((r) => r.method === 'PATCH', 5000, api.requests.indexOf(drain) + 1, 'back up');
  t.same(up.body, { state: 'up' });

  a.child.kill('SIGTERM');
  t.same(await exitWithin(a, 8000), { code: 0, signal: null });
  t.equal(api.seen('DELETE', '/v1/backends/web1').length, 1);
  // --log-format text: plain lines, not JSON.
  t.equal(a.logs().length, 0, 'no JSON lines');
  t.match(a.lines.join('\n'), /^\S+T\S+Z info +registered .*backend=web1/m);
  t.match(a.lines.join('\n'), /^\S+Z warn +health check failed: exit status 1/m);
  t.match(a.lines.join('\n'), /^\S+Z info +drained: the health check failed 3 times in a row/m);
  t.match(a.lines.join('\n'), /^\S+Z info +back up: the health check passes again/m);
});

t.test('a 4xx on register is a configuration mistake: logged, exit 2', async (t) => {
  const api = await FakeApi.start();
  t.teardown(() => api.close());
  api.on('POST', '/v1/backends', apiError(409, 'EAPI_CONFIG_OWNED', 'backend "web1" is defined in /etc/vipgate.yaml: change the file and reload'));
  const a = startAgent(t, [...BASE, '--api', api.addr]);
  const ex = await exitWithin(a, 8000);
  t.same(ex, { code: 2, signal: null });
  t.equal(api.seen('POST').length, 1, 'not retried');
  t.equal(api.seen('DELETE').length, 0, 'nothing to unregister');
  const err = a.logs().find((l) => l['level'] === 'error');
  t.match(err, { msg: /^registration refused: backend "web1" is defined in \/etc\/vipgate\.yaml: change the file and reload$/, code: 'EAPI_CONFIG_OWNED', status: 409 });

  api.on('POST', '/v1/backends', apiError(400, 'EAPI_INVALID', 'serves[2]: 10.0.0.1 is a backend\'s address, not a VIP', { field: 'serves[2]' }));
  const b = startAgent(t, [...BASE, '--api', api.addr]);
  t.same(await exitWithin(b, 8000), { code: 2, signal: null });
  t.match(b.logs().find((l) => l['level'] === 'error'), { code: 'EAPI_INVALID', field: 'serves[2]' });
});

t.test('API down at the start: keeps retrying (logging it once), registers when it appears', async (t) => {
  const port = await deadPort();
  const a = startAgent(t, [...BASE, '--api', `127.0.0.1:${port}`, '--lease', '2', '--renew', '500ms']);
  await a.waitLog(/cannot reach the vipgate API/);
  await sleep(1800);
  t.equal(a.child.exitCode, null, 'still running');
  t.equal(a.lines.filter((l) => /cannot reach/.test(l)).length, 1, 'the failure logged once per state change');
  t.match(a.logs().find((l) => /cannot reach/.test(String(l['msg']))), { level: 'warn', code: 'ECONNREFUSED' });

  const api = await acceptingApi(t, 'web1', port);
  const reg = await api.waitFor((r: Recorded) => r.method === 'POST', 5000, 0, 'the registration once the API is up');
  t.match(reg.body, { name: 'web1', lease: 2 });
  await a.waitLog(/"msg":"registered"/);
  a.child.kill('SIGINT');
  t.same(await exitWithin(a, 8000), { code: 0, signal: null }, 'SIGINT: exit 0 too');
  t.equal(api.seen('DELETE').length, 1);
});

t.test('SIGTERM while the API is unreachable: exit 0 with a warning', async (t) => {
  const port = await deadPort();
  const a = startAgent(t, [...BASE, '--api', `127.0.0.1:${port}`, '--lease', '2', '--renew', '500ms']);
  await a.waitLog(/cannot reach the vipgate API/);
  a.child.kill('SIGTERM');
  t.same(await exitWithin(a, 8000), { code: 0, signal: null });
  t.match(a.logs().at(-1), { level: 'warn', msg: /^could not unregister: cannot reach the vipgate API .*; vipgate drains it when its lease runs out \(within 2s\)$/ });
});

t.test('SIGTERM before the health check ever passed: nothing to unregister, exit 0', async (t) => {
  const api = await acceptingApi(t);
  const a = startAgent(t, [...BASE, '--api', api.addr, '--health-cmd', 'exit 3', '--health-interval', '100ms']);
  await a.waitLog(/health check failed: exit status 3/);
  a.child.kill('SIGTERM');
  t.same(await exitWithin(a, 8000), { code: 0, signal: null });
  t.equal(api.requests.length, 0);
});

t.test('bad arguments: exit 2 with what to fix, nothing sent', async (t) => {
  const api = await acceptingApi(t);
  const cases: Array<[string[], RegExp]> = [
    [['--ip', '10.0.1.21', '--serves', '10.0.0.100:80'], /missing --name N/],
    [[...BASE, '--lease', '2', '--renew', '2s'], /--renew 2s must be shorter than the lease \(2s\)/],
    [[...BASE, '--lease', '0'], /--lease: must be whole seconds 1\.\.86400/],
    [[...BASE, '--health-interval', 'often'], /--health-interval: takes a duration/],
    [[...BASE, '--log-format', 'xml'], /--log-format: must be json or text/],
    [['--name', 'web1', '--ip', '10.0.1.21', '--serves', '10.0.0.100:0'], /must be a port 1\.\.65535/],
  ];
  for (const [args, re] of cases) {
    const a = startAgent(t, [...args, '--api', api.addr]);
    t.same(await exitWithin(a, 8000), { code: 2, signal: null }, args.join(' '));
    t.match(a.lines.join('\n'), re);
  }
  t.equal(api.requests.length, 0);
});
