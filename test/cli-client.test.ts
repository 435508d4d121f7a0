// The API commands (vipgate status|backends|services|vips|neighbours|flows|register|unregister|
// switch|set|reload|top) against a fake API: what they send, what they print, how errors map
// to messages and exit statuses. Most run in-process with captured output; a few go through
// bin/vipgate.js to cover the launcher and main's dispatch.
import t, { type Test } from 'tap';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { runClient, ClientCommand, CliIo, apiBase, describeBase, statusText } from '../src/cli/client';
import { runTop } from '../src/cli/top';
import { formatTable, humanDuration, humanCount, humanRate } from '../src/cli/table';
import { FakeApi, apiError, status, backend, BACKENDS, SERVICES, VIPS, NEIGHBOURS, flow, deadPort } from './helpers/fake-api-server';
import { repoRoot } from './helpers/paths';

const bin = path.join(repoRoot, 'bin', 'vipgate.js');

interface Captured { code: number; out: string; err: string }

function io(env: NodeJS.ProcessEnv, now?: () => number): CliIo & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (s) => { stdout.push(s); }, err: (s) => { stderr.push(s); }, isTTY: false, env, now: now ?? (() => performance.now()) };
}

async function cli(api: FakeApi | string, cmd: ClientCommand, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Captured> {
  const c = io({ VIPGATE_API: typeof api === 'string' ? api : api.addr, ...env });
  const code = await runClient(cmd, args, c);
  return { code, out: c.stdout.join('\n'), err: c.stderr.join('\n') };
}

function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Captured> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { env: { PATH: process.env['PATH'], ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => { out += d; });
    child.stderr.on('data', (d: Buffer) => { err += d; });
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`vipgate ${args.join(' ')}: still running after 20s`)); }, 20_000);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code: code ?? -1, out, err }); });
  });
}

/** Every line of a table: columns start at the same offsets as the header's, no trailing spaces. */
function checkAligned(t: Test, table: string, header: string[]): string[][] {
  const lines = table.split('\n');
  t.equal(lines[0]!.split(/\s{2,}/).join(' '), header.join(' '), 'header row');
  for (const l of lines) t.notMatch(l, /\s$/, `no trailing space: ${JSON.stringify(l)}`);
  return lines.map((l) => l.trim().split(/\s{2,}/));
}

let api: FakeApi;
t.before(async () => { api = await FakeApi.start(); });
t.teardown(() => api.close());
t.beforeEach(() => { api.requests.length = 0; });

t.test('table: columns sized to content, header first, numbers right-aligned, no trailing spaces', async (t) => {
  const s = formatTable(['NAME', 'N', 'NOTE'], [['a', 1, null], ['longer', 12345, 'x']], { align: ['left', 'right', 'left'] });
  t.equal(s, ['NAME        N  NOTE', 'a           1  -', 'longer  12345  x'].join('\n'));
  t.equal(formatTable(['A', 'B'], []), 'A  B', 'empty: the header alone');
});

t.test('human durations, counts and rates', async (t) => {
  const cases: Array<[number, string]> = [[800, '800ms'], [0, '0ms'], [1500, '1.5s'], [42_000, '42s'], [312_000, '5m12s'],
    [3_600_000, '1h'], [7_500_000, '2h5m'], [(3 * 86400 + 4 * 3600 + 59) * 1000, '3d4h'], [86_400_000, '1d']];
  for (const [ms, s] of cases) t.equal(humanDuration(ms), s, `${ms}ms`);
  t.equal(humanCount(812), '812');
  t.equal(humanCount(12_345), '12.3k');
  t.equal(humanCount(4_500_000), '4.5M');
  t.equal(humanCount(150_000), '150k');
  t.equal(humanRate(0), '0');
  t.equal(humanRate(0.5), '0.5');
  t.equal(humanRate(1234.4), '1234');
});

t.test('api address: HOST:PORT, URL, env, default; bad ones are usage errors', async (t) => {
  t.equal(describeBase(apiBase('10.0.0.1:9180', {})), '10.0.0.1:9180');
  t.equal(describeBase(apiBase(undefined, { VIPGATE_API: 'http://h:81/pre/' })), 'http://h:81/pre');
  t.equal(describeBase(apiBase(undefined, {})), '127.0.0.1:9180');
  t.throws(() => apiBase('nocolon', {}), /--api: "nocolon" is not an API address/);
  t.throws(() => apiBase('h:70000', {}), /not an API address/);
});

t.test('status: a summary with the non-zero drops; --json is the server body', async (t) => {
  const s = status();
  api.on('GET', '/v1/status', { body: s });
  const r = await cli(api, 'status', []);
  t.equal(r.code, 0);
  t.match(r.out, /^version\s+0\.1\.0 \(pid 4242\)$/m);
  t.match(r.out, /^mode\s+dsr$/m);
  t.match(r.out, /^interface\s+eth1$/m);
  t.match(r.out, /^mac\s+02:00:5e:00:00:01$/m);
  t.match(r.out, /^uptime\s+3d4h$/m);
  t.match(r.out, /^generation\s+7$/m);
  t.match(r.out, /^vips\s+2$/m);
  t.match(r.out, /^services\s+3$/m);
  t.match(r.out, /^backends\s+3 \(2 up, 1 drain, 0 down\)$/m);
  t.match(r.out, /^flows\s+120 active of 65536$/m);
  t.match(r.out, /^drops\s+unknown_flow 7, no_backend 3$/m, 'non-zero drops, largest first');
  t.notMatch(r.out, /truncated/, 'zero drops left out');
  const j = await cli(api, 'status', ['--json']);
  t.same(JSON.parse(j.out), s);
});

t.test('backends: aligned table, every column', async (t) => {
  api.on('GET', '/v1/backends', { body: { backends: BACKENDS } });
  const r = await cli(api, 'backends', []);
  t.equal(r.code, 0, r.err);
  const rows = checkAligned(t, r.out, ['NAME', 'IP', 'MAC', 'STATE', 'HEALTH', 'WEIGHT', 'SERVES', 'FLOWS', 'CONNS', 'SOURCE', 'LEASE']);
  t.same(rows[1], ['web1', '10.0.1.11', '02:00:00:00:01:11', 'up', 'up 0.4ms', '100', '10.0.0.100:80=active', '80', '12345', 'config', '-']);
  t.same(rows[2], ['web9', '10.0.1.19', '02:00:00:00:01:11', 'up', 'down: timeout after 100 ms', '100', '-', '0', '0', 'config', '-'], 'health beside the admin state, with the reason');
  t.same(rows[3], ['web-two', '10.0.1.12', '-', 'up', '-', '50', '10.0.0.100:80=active,10.0.0.101=standby', '40', '7', 'config', '-']);
  t.same(rows[4], ['db', '10.0.1.13', '02:00:00:00:01:11', 'drain,leaving', '-', '100', '-', '0', '0', 'api', '22s/30s']);
  // Columns line up: each row's IP starts where the header's IP does.
  const lines = r.out.split('\n');
  const ipAt = lines[0]!.indexOf('IP');
  for (const l of lines.slice(1)) t.match(l.slice(ipAt), /^10\.0\.1\.1\d /);
  const j = await cli(api, 'backends', ['--json']);
  t.same(JSON.parse(j.out), { backends: BACKENDS });
});

t.test('services, vips, neighbours', async (t) => {
  api.on('GET', '/v1/services', { body: { services: SERVICES } });
  api.on('GET', '/v1/vips', { body: { vips: VIPS } });
  api.on('GET', '/v1/neighbours', { body: { neighbours: NEIGHBOURS } });
  const s = await cli(api, 'services', []);
  const rows = checkAligned(t, s.out, ['SERVICE', 'MODE', 'ACTIVE', 'STANDBY', 'PINNED']);
  t.same(rows[1], ['10.0.0.100:80', 'port', 'web1,web-two', '-', '-']);
  t.same(rows[2], ['10.0.0.101', 'ip', 'web-two', 'web1', 'web-two']);
  const v = await cli(api, 'vips', []);
  t.same(checkAligned(t, v.out, ['VIP', 'SOURCE', 'SERVICES'])[2], ['10.0.0.101', 'api', '10.0.0.101']);
  const n = await cli(api, 'neighbours', []);
  t.same(checkAligned(t, n.out, ['IP', 'MAC', 'AGE'])[2], ['10.0.0.1', '02:00:00:00:00:01', '1h1m']);
  t.same(JSON.parse((await cli(api, 'services', ['--json'])).out), { services: SERVICES });
  t.same(JSON.parse((await cli(api, 'vips', ['--json'])).out), { vips: VIPS });
  t.same(JSON.parse((await cli(api, 'neighbours', ['--json'])).out), { neighbours: NEIGHBOURS });
});

t.test('flows: filters as query parameters; a next cursor prints a hint', async (t) => {
  api.on('GET', '/v1/flows', { body: { flows: [flow(0), flow(1)], next: 'c2' } });
  const r = await cli(api, 'flows', ['--vip', '10.0.0.100', '--port', '80', '--backend', 'web1', '--client', '192.0.2.10', '--state', 'established', '--limit', '2']);
  t.equal(r.code, 0, r.err);
  const q = api.seen('GET', '/v1/flows')[0]!.query;
  t.same(Object.fromEntries(q), { vip: '10.0.0.100', port: '80', backend: 'web1', client: '192.0.2.10', state: 'established', limit: '2' });
  const lines = r.out.split('\n');
  t.equal(lines.at(-1), 'more: --cursor c2');
  const rows = checkAligned(t, lines.slice(0, -1).join('\n'), ['CLIENT', 'VIP', 'BACKEND', 'STATE', 'AGE', 'IDLE', 'IN', 'OUT']);
  t.same(rows[1], ['192.0.2.10:40000', '10.0.0.100:80', 'web1', 'established', '1m15s', '800ms', '15k', '12']);
  const c = await cli(api, 'flows', ['--cursor', 'c2']);
  t.equal(c.code, 0);
  t.equal(api.seen('GET', '/v1/flows')[1]!.query.get('cursor'), 'c2');
});

t.test('flows --all follows next cursors to the end', async (t) => {
  api.on('GET', '/v1/flows', (req) => {
    const cur = req.query.get('cursor');
    if (cur === null) return { body: { flows: [flow(0), flow(1)], next: 'p2' } };
    if (cur === 'p2') return { body: { flows: [flow(2), flow(3)], next: 'p3' } };
    return { body: { flows: [flow(4)], next: null } };
  });
  const r = await cli(api, 'flows', ['--all', '--limit', '2']);
  t.equal(r.code, 0, r.err);
  t.same(api.seen('GET', '/v1/flows').map((x) => x.query.get('cursor')), [null, 'p2', 'p3']);
  t.same(api.seen('GET', '/v1/flows').map((x) => x.query.get('limit')), ['2', '2', '2']);
  t.equal(r.out.split('\n').length, 6, 'header + 5 flows');
  t.notMatch(r.out, /more:/);
  api.requests.length = 0;
  const j = await cli(api, 'flows', ['--all', '--json']);
  t.same(JSON.parse(j.out), { flows: [0, 1, 2, 3, 4].map(flow), next: null });
  t.equal(api.seen('GET', '/v1/flows')[0]!.query.get('limit'), '1000', '--all asks for full pages');
});

t.test('register: body, created/renewed, backend row; --json', async (t) => {
  const b = backend({ name: 'web3', ip: '10.0.1.14', source: 'api', lease: { seconds: 30, expiresIn: 30 },
    serves: [{ service: '10.0.0.100:80', priority: 120, role: 'active', pinned: null }, { service: '10.0.0.102', priority: 120, role: 'active', pinned: null }] });
  api.on('POST', '/v1/backends', { status: 201, body: { backend: b, created: true } }, { status: 200, body: { backend: b, created: false } });
  const args = ['--name', 'web3', '--ip', '10.0.1.14', '--mac', '02:00:00:00:01:14', '--serves', '10.0.0.100:80,10.0.0.102', '--serves', '10.0.0.103:443', '--priority', '120', '--weight', '10', '--lease', '30'];
  const r = await cli(api, 'register', args);
  t.equal(r.code, 0, r.err);
  const req = api.seen('POST', '/v1/backends')[0]!;
  t.same(req.body, { name: 'web3', ip: '10.0.1.14', mac: '02:00:00:00:01:14', serves: ['10.0.0.100:80', '10.0.0.102', '10.0.0.103:443'], priority: 120, weight: 10, lease: 30 });
  t.equal(req.headers['content-type'], 'application/json');
  const lines = r.out.split('\n');
  t.equal(lines[0], 'registered web3 (created)');
  t.match(lines[1], /^NAME\s+IP\s+MAC/);
  t.match(lines[2], /^web3\s+10\.0\.1\.14\s+.*30s\/30s$/);
  const again = await cli(api, 'register', args);
  t.equal(again.out.split('\n')[0], 'registered web3 (renewed)');
  const j = await cli(api, 'register', [...args, '--json']);
  t.same(JSON.parse(j.out), { backend: b, created: false });
  const minimal = await cli(api, 'register', ['--name', 'w', '--ip', '10.0.1.15', '--serves', '10.0.0.100']);
  t.equal(minimal.code, 0);
  t.same(api.seen('POST', '/v1/backends').at(-1)!.body, { name: 'w', ip: '10.0.1.15', serves: ['10.0.0.100'] }, 'only what was given');
});

t.test('unregister: DELETE, draining or removed; --force', async (t) => {
  api.on('DELETE', '/v1/backends/web1', (req) => ({ status: 202, body: { backend: backend({ name: 'web1', flows: req.query.get('force') ? 0 : 17, leaving: true, state: 'drain' }) } }));
  const r = await cli(api, 'unregister', ['web1']);
  t.equal(r.code, 0, r.err);
  t.equal(r.out, 'web1 is draining: 17 flows left; it is removed when they end');
  const f = await cli(api, 'unregister', ['web1', '--force']);
  t.equal(f.out, 'web1 removed');
  t.same(api.seen('DELETE').map((x) => x.query.get('force')), [null, 'true']);
});

t.test('switch: POST to the service path with the backend; prints the new service row', async (t) => {
  api.on('POST', '/v1/services/10.0.0.101/switch', { body: { service: SERVICES[1] } });
  api.on('POST', '/v1/services/10.0.0.100:80/switch', { body: { service: SERVICES[0] } });
  const r = await cli(api, 'switch', ['10.0.0.101', 'web-two']);
  t.equal(r.code, 0, r.err);
  t.same(api.seen('POST', '/v1/services/10.0.0.101/switch')[0]!.body, { backend: 'web-two' });
  t.same(checkAligned(t, r.out, ['SERVICE', 'MODE', 'ACTIVE', 'STANDBY', 'PINNED'])[1], ['10.0.0.101', 'ip', 'web-two', 'web1', 'web-two']);
  const p = await cli(api, 'switch', ['10.0.0.100:80', 'web1']);
  t.equal(p.code, 0, p.err);
  t.equal(api.seen('POST', '/v1/services/10.0.0.100:80/switch').length, 1, 'VIP:PORT in the path');
  t.match(p.out, /\npinned 10\.0\.0\.100:80 to web1 until the next switch, kept across restarts; undo: vipgate switch 10\.0\.0\.100:80 --auto$/);
  const auto = await cli(api, 'switch', ['10.0.0.100:80', '--auto']);
  t.equal(auto.code, 0, auto.err);
  t.match(auto.out, /\n10\.0\.0\.100:80: no pin; priority order decides the active members again$/);
  t.same(api.seen('POST', '/v1/services/10.0.0.100:80/switch')[1]!.body, { backend: null }, '--auto unpins: backend null');
  const both = await cli(api, 'switch', ['10.0.0.100:80', 'web1', '--auto']);
  t.equal(both.code, 2, '--auto with a BACKEND is a usage error');
});

t.test('set: PATCH with state and/or weight', async (t) => {
  api.on('PATCH', '/v1/backends/web1', (req) => ({ body: { backend: backend({ name: 'web1', ...(req.body as object) }) } }));
  const r = await cli(api, 'set', ['web1', '--state', 'drain', '--weight', '5']);
  t.equal(r.code, 0, r.err);
  t.same(api.seen('PATCH')[0]!.body, { state: 'drain', weight: 5 });
  t.match(r.out.split('\n')[1], /^web1\s+\S+\s+\S+\s+drain\s+\S+\s+5\s/);
  await cli(api, 'set', ['web1', '--weight', '0']);
  t.same(api.seen('PATCH')[1]!.body, { weight: 0 });
  t.equal(r.out.split('\n').length, 2, 'drain pins nothing: the row only');
});

t.test('set --state active|standby: says what it pinned and how to undo it', async (t) => {
  const S = '10.0.0.101:80';
  api.on('PATCH', '/v1/backends/web2', { body: { backend: backend({ name: 'web2', serves: [{ service: S, priority: 254, role: 'active', pinned: 'web2' }] }) } },
    { body: { backend: backend({ name: 'web2', serves: [{ service: S, priority: 254, role: 'standby', pinned: 'web1' }] }) } });
  const a = await cli(api, 'set', ['web2', '--state', 'active']);
  t.equal(a.code, 0, a.err);
  t.match(a.out, /\b10\.0\.0\.101:80=active\(pinned\)/, 'the row shows the pin');
  t.equal(a.out.split('\n').at(-1), `pinned ${S} to web2, kept across restarts; undo: vipgate switch ${S} --auto`);
  const s = await cli(api, 'set', ['web2', '--state', 'standby']);
  t.match(s.out, /\b10\.0\.0\.101:80=standby\(pinned web1\)/);
  t.equal(s.out.split('\n').at(-1), `pinned ${S} to web1 (in place of web2), kept across restarts; undo: vipgate switch ${S} --auto`);
});

t.test('reload: the changes, or "no changes"', async (t) => {
  api.on('POST', '/v1/reload', { body: { generation: 8, changes: ['backend web4 added', 'service 10.0.0.100:80: web4 added'] } }, { body: { generation: 8, changes: [] } });
  const r = await cli(api, 'reload', []);
  t.equal(r.code, 0, r.err);
  t.equal(r.out, 'reloaded: generation 8, 2 changes:\n  backend web4 added\n  service 10.0.0.100:80: web4 added');
  t.equal((await cli(api, 'reload', [])).out, 'no changes (generation 8)');
});

t.test('API errors: the message (and issues); 4xx exit 2, 5xx exit 1', async (t) => {
  api.on('PATCH', '/v1/backends/nosuch', apiError(404, 'EAPI_UNKNOWN_BACKEND', 'no backend named "nosuch"; vipgate backends lists them'));
  const r = await cli(api, 'set', ['nosuch', '--state', 'down']);
  t.equal(r.code, 2);
  t.equal(r.err, 'vipgate: no backend named "nosuch"; vipgate backends lists them');
  t.equal(r.out, '');
  api.on('POST', '/v1/reload', apiError(422, 'ECONFIG_INVALID', '/etc/vipgate.yaml is invalid; nothing changed', { issues: ['3:5: vips[0]: "10.0.0.300" is not an IPv4 address', '9:1: backends: missing'] }));
  const rl = await cli(api, 'reload', []);
  t.equal(rl.code, 2);
  t.equal(rl.err, 'vipgate: /etc/vipgate.yaml is invalid; nothing changed\n  3:5: vips[0]: "10.0.0.300" is not an IPv4 address\n  9:1: backends: missing');
  api.on('POST', '/v1/backends', apiError(503, 'EAPI_STATE_WRITE', 'could not write /var/lib/vipgate/state.json (ENOSPC): the change was not applied'));
  const s = await cli(api, 'register', ['--name', 'a', '--ip', '10.0.1.1', '--serves', '10.0.0.100:80']);
  t.equal(s.code, 1);
  t.match(s.err, /^vipgate: could not write .*ENOSPC/);
  api.on('GET', '/v1/status', { status: 502, body: 'bad gateway' });
  const g = await cli(api, 'status', []);
  t.equal(g.code, 1);
  t.match(g.err, /answered GET \/v1\/status with HTTP 502/);
  api.on('GET', '/v1/vips', apiError(401, 'EAPI_UNAUTHORIZED', 'missing or wrong bearer token'));
  const u = await cli(api, 'vips', []);
  t.equal(u.code, 2);
  t.match(u.err, /missing or wrong bearer token\n\(give the API's token with --token or VIPGATE_API_TOKEN\)/);
});

t.test('token: --token, else VIPGATE_API_TOKEN, as a bearer header', async (t) => {
  api.on('GET', '/v1/vips', { body: { vips: VIPS } });
  await cli(api, 'vips', ['--token', 's3cret']);
  await cli(api, 'vips', [], { VIPGATE_API_TOKEN: 'from-env' });
  await cli(api, 'vips', ['--token', 'flag-wins'], { VIPGATE_API_TOKEN: 'from-env' });
  await cli(api, 'vips', []);
  t.same(api.seen('GET', '/v1/vips').map((r) => r.headers['authorization']), ['Bearer s3cret', 'Bearer from-env', 'Bearer flag-wins', undefined]);
});

t.test('--api beats VIPGATE_API; --timeout', async (t) => {
  api.on('GET', '/v1/vips', { body: { vips: VIPS } });
  const r = await cli('127.0.0.1:1', 'vips', ['--api', api.addr]);
  t.equal(r.code, 0, r.err);
  api.on('GET', '/v1/status', { body: status(), delayMs: 1000 });
  const slow = await cli(api, 'status', ['--timeout', '200ms']);
  t.equal(slow.code, 1);
  t.match(slow.err, /did not answer GET \/v1\/status within 0\.2s/);
});

t.test('connection refused: says what to check, exit 1', async (t) => {
  const port = await deadPort();
  const r = await cli(`127.0.0.1:${port}`, 'status', []);
  t.equal(r.code, 1);
  t.equal(r.err, `vipgate: cannot reach the vipgate API at 127.0.0.1:${port}: is \`vipgate run\` running, with api.listen set to it? (connection refused)`);
});

t.test('bad arguments: exit 2 with what to fix, before any request', async (t) => {
  const cases: Array<[ClientCommand, string[], RegExp]> = [
    ['flows', ['--vip', '10.0.0.300'], /--vip: "10\.0\.0\.300" is not an IPv4 address/],
    ['flows', ['--port', '0'], /--port: must be a port 1\.\.65535, got "0"/],
    ['flows', ['--port', '80x'], /--port: must be a port/],
    ['flows', ['--state', 'open'], /--state: must be one of syn, established, closing/],
    ['flows', ['--limit', '5000'], /--limit: must be an integer 1\.\.1000/],
    ['flows', ['--all', '--cursor', 'x'], /give --cursor or --all, not both/],
    ['flows', ['--client', '1.2.3'], /--client: "1\.2\.3" is not an IPv4 address/],
    ['register', ['--name', 'web 1', '--ip', '10.0.1.1', '--serves', '10.0.0.100:80'], /--name: "web 1" is not a backend name/],
    ['register', ['--name', 'w', '--ip', '10.0.1', '--serves', '10.0.0.100:80'], /--ip: "10\.0\.1" is not an IPv4 address/],
    ['register', ['--name', 'w', '--ip', '10.0.1.1', '--serves', '10.0.0.100:99999'], /--serves 10\.0\.0\.100:99999: must be a port 1\.\.65535/],
    ['register', ['--name', 'w', '--ip', '10.0.1.1', '--serves', 'www:80'], /--serves: "www:80" is not a service; give VIP:PORT/],
    ['register', ['--name', 'w', '--ip', '10.0.1.1', '--serves', '10.0.0.100', '--mac', '02:00'], /--mac: "02:00" is not a MAC address/],
    ['register', ['--name', 'w', '--ip', '10.0.1.1', '--serves', '10.0.0.100', '--priority', '0'], /--priority: must be an integer 1\.\.255/],
    ['register', ['--name', 'w', '--ip', '10.0.1.1', '--serves', '10.0.0.100', '--weight', '1001'], /--weight: must be an integer 0\.\.1000/],
    ['register', ['--name', 'w', '--ip', '10.0.1.1', '--serves', '10.0.0.100', '--lease', 'soon'], /--lease: must be whole seconds/],
    ['register', ['--name', 'w'], /missing --ip IP, --serves VIP\[:PORT\]/],
    ['unregister', [], /give one backend NAME/],
    ['switch', ['10.0.0.100:80'], /give SERVICE and BACKEND/],
    ['switch', ['10.0.0.100:0', 'web1'], /must be a port 1\.\.65535/],
    ['set', ['web1'], /nothing to change; give --state and\/or --weight/],
    ['set', ['web1', '--state', 'off'], /--state: must be one of up, drain, down/],
    ['status', ['--bogus'], /vipgate status: Unknown option '--bogus'/],
    ['status', ['extra'], /unexpected argument "extra"/],
    ['status', ['--api', 'nowhere'], /--api: "nowhere" is not an API address/],
    ['status', ['--timeout', 'x'], /--timeout: takes a duration/],
  ];
  for (const [cmd, args, re] of cases) {
    const r = await cli(api, cmd, args);
    t.equal(r.code, 2, `${cmd} ${args.join(' ')}: exit 2`);
    t.match(r.err, re, `${cmd} ${args.join(' ')}: message`);
  }
  t.equal(api.requests.length, 0, 'no request sent');
});

t.test('top --count 2 without a TTY: two plain frames, the second with rates from the counter differences', async (t) => {
  const s1 = status({ counters: { frames_in: 1000, frames_out: 900, forwarded: 800, flows_created: 50 }, drops: { unknown_flow: 7, no_backend: 3 } });
  const s2 = status({ counters: { frames_in: 3000, frames_out: 2500, forwarded: 2000, flows_created: 70 }, drops: { unknown_flow: 17, no_backend: 3, no_service: 4 } });
  const b1 = BACKENDS.map((b) => ({ ...b }));
  const b2 = BACKENDS.map((b) => ({ ...b, connections: b.connections + (b.name === 'web1' ? 30 : 0) }));
  api.on('GET', '/v1/status', { body: s1 }, { body: s2 });
  api.on('GET', '/v1/backends', { body: { backends: b1 } }, { body: { backends: b2 } });
  // A fake clock: the two samples are exactly 2 s apart.
  let clock = 0;
  const c = io({ VIPGATE_API: api.addr }, () => (clock += 2000));
  const code = await runTop(['--count', '2', '--interval', '100ms'], c, { write: () => t.fail('no terminal writes without a TTY') });
  t.equal(code, 0, c.stderr.join('\n'));
  t.equal(c.stdout.length, 2, 'two frames');
  const all = c.stdout.join('\n');
  t.notMatch(all, /\x1b/, 'no escape codes');
  const [f1, f2] = c.stdout as [string, string];
  t.match(f1, /^vipgate 0\.1\.0 pid \d+, mode dsr on eth1, up 3d4h, generation 7$/m);
  t.match(f1, /^API 127\.0\.0\.1:\d+ \(another vipgate: --api HOST:PORT, or set \$VIPGATE_API\)$/m, 'says where the API is and how to point elsewhere');
  t.match(f1, /^ +NOW \/S +TOTAL SINCE START$/m, 'current and cumulative figures are labelled');
  t.match(f1, /^frames in +- +1000$/m, 'no rates from one sample; the total is there');
  t.match(f2, /^frames in +1000 +3000$/m);
  t.match(f2, /^frames out +800 +2500$/m);
  t.match(f2, /^forwarded +600 +2000$/m);
  t.match(f2, /^new flows +10 +70$/m);
  t.match(f2, /^drops +7 +24$/m);
  t.match(f2, /^drops now \/s \(total\): unknown_flow 5 \(17\), no_service 2 \(4\)$/m, 'non-zero drop rates by reason, with their totals');
  t.match(f2, /^flows active now 120 of 65\.5k/m);
  const rows = f2.split('\n').filter((l) => /^(web1|web-two|db)\s/.test(l)).map((l) => l.split(/\s{2,}/));
  t.same(rows.map((r) => [r[0], r.at(-3), r.at(-2)]), [['web1', '80', '15'], ['web-two', '40', '0'], ['db', '0', '0']], 'flows and conns/s per backend');
  t.match(f2, /^web-two .*\n {4}serves 10\.0\.0\.100:80=active\n {4}serves 10\.0\.0\.101=standby\n/m, 'what each serves, one service per line');
  t.match(f2, /^web9\s+up\s+down: timeout after 100 ms\s/m, 'health beside the admin state');
  for (const f of [f1, f2]) for (const l of f.split('\n')) t.ok(l.length <= 80, `fits 80 columns: ${JSON.stringify(l)}`);
});

t.test('top: many services per backend still fit 80 columns, pins are shown', async (t) => {
  const long = BACKENDS.map((b) => ({ ...b, serves: [
    { service: '10.0.0.100:8080', priority: 100, role: 'active' as const, pinned: b.name },
    { service: '10.0.0.101:8443', priority: 100, role: 'standby' as const, pinned: 'someone-else' },
    { service: '10.0.0.102:9443', priority: 100, role: 'standby' as const, pinned: null },
  ] }));
  api.on('GET', '/v1/status', { body: status({}) });
  api.on('GET', '/v1/backends', { body: { backends: long } });
  const c = io({ VIPGATE_API: api.addr });
  t.equal(await runTop(['--count', '1'], c, { write: () => {} }), 0, c.stderr.join('\n'));
  const lines = c.stdout.join('\n').split('\n');
  t.ok(lines.every((l) => l.length <= 80), 'every line fits 80 columns');
  const at = lines.findIndex((l) => l.startsWith('web1 '));
  t.equal(lines[at + 1], '    serves 10.0.0.100:8080=active(pinned)', 'this backend\'s pin is shown');
  t.equal(lines[at + 2], '    serves 10.0.0.101:8443=standby(pinned someone-else)', 'and the pin it waits behind');
  t.equal(lines[at + 3], '    serves 10.0.0.102:9443=standby');
});

t.test('top: unreachable at the start fails like the other commands', async (t) => {
  const port = await deadPort();
  const c = io({ VIPGATE_API: `127.0.0.1:${port}` });
  t.equal(await runTop(['--count', '1'], c, { write: () => {} }), 1);
  t.match(c.stderr.join('\n'), /cannot reach the vipgate API/);
  const bad = io({});
  t.equal(await runTop(['--interval', '1ms'], bad, { write: () => {} }), 2);
  t.match(bad.stderr.join('\n'), /--interval: takes a duration like 1s or 500ms \(at least 100ms\)/);
});

t.test('through bin/vipgate.js: dispatch, exit statuses, help', async (t) => {
  api.on('GET', '/v1/backends', { body: { backends: BACKENDS } });
  const ok = await spawnCli(['backends', '--api', api.addr, '--token', 'tk']);
  t.equal(ok.code, 0, ok.err);
  t.match(ok.out, /^NAME\s+IP\s+MAC\s+STATE/);
  t.equal(api.seen('GET', '/v1/backends')[0]!.headers['authorization'], 'Bearer tk');
  const port = await deadPort();
  const down = await spawnCli(['status'], { VIPGATE_API: `127.0.0.1:${port}` });
  t.equal(down.code, 1);
  t.match(down.err, /^vipgate: cannot reach the vipgate API at 127\.0\.0\.1:\d+: is `vipgate run` running, with api\.listen set to it\? \(connection refused\)\n$/);
  const bad = await spawnCli(['flows', '--port', '65536']);
  t.equal(bad.code, 2);
  t.match(bad.err, /--port: must be a port 1\.\.65535/);
  const nf = await spawnCli(['unregister', 'ghost', '--api', api.addr]);
  t.equal(nf.code, 2);
  t.match(nf.err, /^vipgate: no such path: DELETE \/v1\/backends\/ghost\n$/);
  const top = await spawnCli(['top', '--count', '1', '--api', api.addr]);
  t.equal(top.code, 0, top.err);
  t.notMatch(top.out, /\x1b/);
  const help = await spawnCli(['help']);
  for (const c of ['status', 'backends', 'services', 'vips', 'neighbours', 'flows', 'register', 'unregister', 'switch', 'set', 'reload', 'top', 'agent']) {
    t.match(help.out, new RegExp(`vipgate ${c}\\b`), `usage mentions ${c}`);
  }
  const runBad = await spawnCli(['run', '--config', '/nonexistent.yaml', '--log-level', 'loud']);
  t.equal(runBad.code, 2);
  t.match(runBad.err, /--log-level must be one of debug, info, warn, error, got "loud"/);
  const runApi = await spawnCli(['run', '--config', '/nonexistent.yaml', '--api', 'localhost']);
  t.match(runApi.err, /--api takes the address to serve the API on as HOST:PORT/);
  const runFmt = await spawnCli(['run', '--config', '/nonexistent.yaml', '--log-format', 'xml']);
  t.match(runFmt.err, /--log-format must be json or text/);
});

t.test('status shows the packet worker and the shared state (issue 9)', async (t) => {
  const plain = statusText(status());
  t.notMatch(plain, /worker|shared state/, 'one process (replay, tests): no worker lines');
  const s = statusText(status({
    worker: { pid: 4711, startedAt: '2026-11-29T22:34:21.030Z', restarts: 1, lastExit: { reason: 'killed by SIGKILL', at: '2026-11-29T22:34:20.474Z' }, state: 'running', nextStartAt: null, scheduling: 'SCHED_FIFO 10' },
    sharedState: { file: '/dev/shm/vipgate-eth1.netns4026531840.state', bytes: 44388352, pages: '4 KiB pages (tmpfs at /dev/shm)', hugePages: false, layoutVersion: 1, createdAt: '2026-11-29T20:00:00.000Z', createdBy: '0.1.0' },
  }));
  t.match(s, /worker\s+running \(pid 4711, started 2026-11-29T22:34:21\.030Z, SCHED_FIFO 10\), 1 restart\n/);
  t.match(s, /last exit\s+killed by SIGKILL at 2026-11-29T22:34:20\.474Z/);
  t.match(s, /shared state\s+\/dev\/shm\/vipgate-eth1\.netns4026531840\.state \(44388352 bytes on 4 KiB pages \(tmpfs at \/dev\/shm\), layout 1, created 2026-11-29T20:00:00\.000Z by 0\.1\.0\)/);
  const waiting = statusText(status({ worker: { pid: null, startedAt: null, restarts: 3, lastExit: { reason: 'exit code 3: cannot attach', at: '2026-11-29T22:00:00.000Z' }, state: 'backoff', nextStartAt: '2026-11-29T22:00:00.400Z', scheduling: null }, sharedState: null }));
  t.match(waiting, /worker\s+backoff \(none, next start 2026-11-29T22:00:00\.400Z\), 3 restarts/, 'between two workers: when the next starts');
});
