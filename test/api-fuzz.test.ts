// Seeded fuzz of the runtime API against the real controller (FUZZ_SEED to reproduce, FUZZ_N
// for more requests): random register / patch / delete / switch / reload requests, valid and
// not, names and addresses from small pools so they collide, JSON junk, with SYNs, segments,
// clock moves and ticks in between. After every response:
//   - never 500 (nor any status outside the contract);
//   - a rejected request (>= 400) changed nothing: views, generation and the state file's bytes;
//   - a success bumped the generation by exactly one, except the documented no-ops
//     (a renewal; unregistering a backend already draining its flows; reloading the file already applied);
//   - invariants: every service serves only members that are up; no two backends share an IP;
//     no VIP is a backend's address; the state file holds the live generation; after a tick,
//     no registration whose lease ran out (by the registrations and renewals answered) is up.
// Every 100 requests a fresh controller restored from the state file must show the same
// backends and services as the live one. Now and then the state file's directory is replaced by
// a regular file for a while: every change must then fail with 503 and change nothing, ticks
// included, and everything must carry on once the disk is back.

import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startHarness, defaultYaml, macFor, type Harness } from './helpers/control-harness';
import { checkOverlay } from '../src/control/model';
import { mulberry32 as prng } from './helpers/prng';

const SEED = Number(process.env['FUZZ_SEED'] ?? 0x5eed_2026) >>> 0;
const N = Number(process.env['FUZZ_N'] ?? 3000);


const NAMES = ['f1', 'f2', 'f3', 'f4', 'web1', 'web2', 'web3'];
const IPS = ['10.0.9.1', '10.0.9.2', '10.0.9.3', '10.0.9.4', '10.0.1.21', '10.0.1.23', '10.0.0.100', '10.0.0.200'];
const SERVES = ['10.0.0.200:80', '10.0.0.200', '10.0.0.201:443', '10.0.0.101:80', '10.0.0.100', '10.0.0.100:8080', '10.0.9.1:80', '10.0.0.102:80'];
const SERVICE_KEYS = ['10.0.0.100', '10.0.0.101:80', '10.0.0.200:80', '10.0.0.200', '10.0.0.201:443', '10.0.0.102:80', '10.0.0.100:8080', '10.0.0.999', 'x', '10.0.0.101:0'];
const CLIENT_VIPS: Array<[string, number]> = [['10.0.0.100', 80], ['10.0.0.101', 80], ['10.0.0.200', 80], ['10.0.0.200', 22], ['10.0.0.201', 443], ['10.0.0.102', 80], ['10.0.0.100', 8080]];

const WEB1 = '{ name: web1, ip: 10.0.1.21, mac: "02:00:00:00:01:21" }';
const WEB2 = '{ name: web2, ip: 10.0.1.22, mac: "02:00:00:00:01:22" }';
const WEB3 = '{ name: web3, ip: 10.0.1.23, mac: "02:00:00:00:01:23" }';
const SVC100 = '{ vip: 10.0.0.100, backend: web1 }';
const SVC101 = '{ vip: 10.0.0.101, port: 80, active: web1, standby: [web2] }';
/** Config files reload may find: valid ones, ones that conflict with registrations, broken ones. */
const CONFIGS: string[] = [
  defaultYaml(),
  defaultYaml({ vips: ['10.0.0.100', '10.0.0.101', '10.0.0.102'], backends: [WEB1, WEB2, WEB3], services: [SVC100, SVC101, '{ vip: 10.0.0.102, port: 80, active: web3, standby: [web2] }'] }),
  defaultYaml({ backends: [WEB1], services: [SVC100, '{ vip: 10.0.0.101, port: 80, active: web1 }'] }),
  defaultYaml({ backends: [WEB1, WEB2, '{ name: f1, ip: 10.0.1.31 }'] }),
  defaultYaml({ backends: [WEB1, WEB2, '{ name: web4, ip: 10.0.9.2 }'] }),
  defaultYaml({ vips: ['10.0.0.100', '10.0.0.101', '10.0.0.200'] }),
  defaultYaml({ backends: [WEB1.replace(' }', ', weight: 50 }'), WEB2] }),
  defaultYaml().replace('services:', 'services: [\n'),
  defaultYaml({ mode: 'nat' }),
  defaultYaml({ services: [SVC100, SVC101, '{ vip: 10.0.0.101, port: 81, active: web9 }'] }),
];

const ALLOWED = new Set([200, 201, 202, 400, 404, 405, 409, 413, 415, 422]);
/** Registrations that keep name and address together (so fewer collide and more succeed). */
const PAIRS: Array<[string, string]> = [['f1', '10.0.9.1'], ['f2', '10.0.9.2'], ['f3', '10.0.9.3'], ['f4', '10.0.9.4']];

t.test(`API fuzz: ${N} requests, seed ${SEED}`, async (t) => {
  const rnd = prng(SEED);
  const int = (n: number) => Math.floor(rnd() * n);
  const pick = <T>(a: readonly T[]): T => a[int(a.length)]!;
  const chance = (p: number) => rnd() < p;

  const h: Harness = await startHarness();
  t.teardown(() => h.close());
  let goodYaml = defaultYaml();
  let expectedGen = 0;
  const flows: Array<[string, string, number]> = [];
  const stats = new Map<string, number>();
  let failures = 0;
  /** Registered name -> when its lease runs out (ms), from the answers to registrations and renewals. */
  const leaseEnd = new Map<string, number>();
  // The disk: broken = the state file's directory is a regular file, so every write fails.
  const stateDir = path.dirname(h.stateFile!);
  let broken: Buffer | null | undefined; // undefined: working; else the state file's bytes (null: none) to put back
  const breakDisk = () => {
    broken = fs.existsSync(h.stateFile!) ? fs.readFileSync(h.stateFile!) : null;
    fs.rmSync(stateDir, { recursive: true });
    fs.writeFileSync(stateDir, 'not a directory');
  };
  const mendDisk = () => {
    fs.rmSync(stateDir);
    fs.mkdirSync(stateDir);
    if (broken) fs.writeFileSync(h.stateFile!, broken);
    broken = undefined;
  };
  t.teardown(() => { if (broken !== undefined) mendDisk(); });
  const check = (cond: boolean, msg: string, extra?: unknown) => {
    if (cond) return;
    failures++;
    if (failures <= 20) t.fail(msg, extra === undefined ? {} : { diag: extra } as object);
  };

  const junk = (depth = 0): unknown => {
    switch (int(depth > 2 ? 6 : 9)) {
      case 0: return pick([0, -1, 1.5, 1e21, 65536, 255, 1000, 1001, 86401, -0]);
      case 1: return pick(['', 'web1', 'f1', '10.0.0.200:80', '02:00:00:00:09:01', 'ÿ', 'a'.repeat(80), '10.0.0.200:', 'up', 'drain']);
      case 2: return pick([true, false]);
      case 3: return null;
      case 4: return pick(NAMES);
      case 5: return pick(SERVES);
      case 6: return Array.from({ length: int(4) }, () => junk(depth + 1));
      case 7: {
        const o: Record<string, unknown> = {};
        for (let i = int(4); i > 0; i--) o[pick(['name', 'ip', 'mac', 'serves', 'priority', 'weight', 'lease', 'state', 'backend', 'x', '__proto__', 'constructor'])] = junk(depth + 1);
        return o;
      }
      default: return undefined;
    }
  };

  const registration = (): Record<string, unknown> => {
    const [name, ip] = chance(0.6) ? pick(PAIRS) : [pick(NAMES), pick(IPS)];
    const body: Record<string, unknown> = { name, ip, serves: chance(0.6) ? pick(SERVES) : Array.from({ length: 1 + int(3) }, () => pick(SERVES)) };
    if (chance(0.7)) body['mac'] = chance(0.9) ? macFor(0x900 + int(8)) : null;
    if (chance(0.4)) body['priority'] = pick([1, 50, 100, 100, 200, 255]);
    if (chance(0.4)) body['weight'] = pick([0, 1, 100, 300, 1000]);
    if (chance(0.3)) body['lease'] = pick([0, 1, 2, 5, 30]);
    if (chance(0.15)) {
      // One field made wrong (or dropped, or an extra one).
      const k = pick(['name', 'ip', 'mac', 'serves', 'priority', 'weight', 'lease', 'extra']);
      if (chance(0.3)) delete body[k]; else body[k] = junk();
    }
    return body;
  };

  /** The exact body of a live registration (a renewal), from what the controller holds. */
  const renewal = (): Record<string, unknown> | null => {
    const regs = h.controller.registrations();
    if (!regs.length) return null;
    const r = pick(regs);
    const ip = (n: number) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
    return {
      name: r.name, ip: ip(r.ip), mac: r.mac, priority: r.priority, weight: r.weight, lease: r.lease,
      serves: r.serves.map((s) => (s.port ? `${ip(s.vip)}:${s.port}` : ip(s.vip))),
    };
  };

  type Req = { kind: string; method: string; path: string; body?: unknown; headers?: Record<string, string | null>; force?: string | null; name?: string };
  const nextRequest = (): Req => {
    const r = rnd();
    if (r < 0.28) return { kind: 'register', method: 'POST', path: '/v1/backends', body: registration() };
    if (r < 0.33) {
      const body = renewal();
      return body ? { kind: 'renew', method: 'POST', path: '/v1/backends', body } : { kind: 'register', method: 'POST', path: '/v1/backends', body: registration() };
    }
    if (r < 0.38) {
      const text = pick(['{', '{"name":"f1",}', '[]', 'null', '"x"', '', '{"name":"f1","ip":"10.0.9.1","serves":"10.0.0.200:80"', '\u0000', '{"__proto__":{"name":"f1"},"name":"f1"}', JSON.stringify(junk())]);
      return { kind: 'register-junk', method: 'POST', path: '/v1/backends', body: text };
    }
    if (r < 0.52) {
      const body = chance(0.8) ? { ...(chance(0.7) ? { state: pick(['up', 'up', 'drain', 'down', 'gone']) } : {}), ...(chance(0.4) ? { weight: pick([0, 7, 100, 300, 1001, -1]) } : {}) } : junk();
      const name = pick([...NAMES, 'nope', 'a b']);
      return { kind: 'patch', method: 'PATCH', path: `/v1/backends/${encodeURIComponent(name)}`, body: body === undefined ? {} : body, name };
    }
    if (r < 0.64) {
      const name = pick([...NAMES, 'nope']);
      const force = pick([null, null, null, 'true', 'false', 'maybe']);
      return { kind: 'delete', method: 'DELETE', path: `/v1/backends/${name}${force === null ? '' : `?force=${force}`}`, force, name };
    }
    if (r < 0.76) {
      const key = pick(SERVICE_KEYS);
      const body = chance(0.85) ? { backend: chance(0.2) ? null : pick([...NAMES, 'nope']) } : junk();
      return { kind: 'switch', method: 'POST', path: `/v1/services/${key}/switch`, body: body === undefined ? {} : body };
    }
    if (r < 0.84) {
      h.writeConfig(pick(CONFIGS));
      return { kind: 'reload', method: 'POST', path: '/v1/reload' };
    }
    if (r < 0.9) {
      return pick<Req>([
        { kind: 'junk', method: 'PUT', path: '/v1/backends', body: {} },
        { kind: 'junk', method: 'POST', path: '/v1/backends/%ZZ', body: {} },
        { kind: 'junk', method: 'PATCH', path: '/v1/backends/f1', body: JSON.stringify(registration()), headers: { 'content-type': 'text/plain' } },
        { kind: 'junk', method: 'POST', path: '/v1/backends', body: JSON.stringify({ ...registration(), pad: 'x'.repeat(70_000) }) },
        { kind: 'junk', method: 'DELETE', path: '/v1/backends/f1?force=true&force=true' },
        { kind: 'junk', method: 'POST', path: '/v1/services//switch', body: { backend: 'f1' } },
        { kind: 'junk', method: 'GET', path: '/v1/flows?limit=0' },
        { kind: 'junk', method: 'POST', path: '/v1/reload?x=1' },
      ]);
    }
    return pick<Req>([
      { kind: 'get', method: 'GET', path: '/v1/status' },
      { kind: 'get', method: 'GET', path: '/v1/backends' },
      { kind: 'get', method: 'GET', path: `/v1/backends/${pick(NAMES)}` },
      { kind: 'get', method: 'GET', path: '/v1/services' },
      { kind: 'get', method: 'GET', path: '/v1/vips' },
      { kind: 'get', method: 'GET', path: `/v1/flows?limit=${1 + int(50)}` },
      { kind: 'get', method: 'GET', path: '/metrics' },
    ]);
  };

  const invariants = (i: number) => {
    const c = h.controller;
    const bs = c.backends(), ss = c.services(), vs = c.vips();
    const byName = new Map(bs.map((b) => [b.name, b]));
    for (const s of ss) {
      for (const name of s.serving) {
        const m = s.members.find((x) => x.backend === name);
        check(m !== undefined && m.state === 'up' && byName.get(name)?.state === 'up', `#${i}: ${s.service} serves ${name}, which is not an up member`, s);
      }
      for (const m of s.members) check(byName.has(m.backend), `#${i}: ${s.service} has member ${m.backend}, which is not a backend`);
    }
    const ips = bs.map((b) => b.ip);
    check(new Set(ips).size === ips.length, `#${i}: two backends share an IP`, ips);
    const ipSet = new Set(ips);
    for (const v of vs) check(!ipSet.has(v.vip), `#${i}: VIP ${v.vip} is a backend's address`);
    const gen = c.status().generation;
    check(gen === expectedGen, `#${i}: generation ${gen}, expected ${expectedGen} (one per applied change)`);
    if (gen > 0 && broken === undefined) {
      const st = JSON.parse(h.stateText()) as { generation: number };
      check(st.generation === gen, `#${i}: the state file holds generation ${st.generation}, the controller ${gen}`);
    }
  };

  /** The views a restart must reproduce: counters and lease timers restart; retiring config backends are not persisted. */
  const comparable = (c: typeof h.controller) => ({
    backends: c.backends().filter((b) => !(b.source === 'config' && b.leaving))
      .map((b) => ({ ...b, flows: 0, connections: 0, lease: b.lease && b.lease.seconds })),
    services: c.services(),
    generation: c.status().generation,
  });

  const restoreCheck = (i: number) => {
    const text = h.stateText();
    if (text === '<absent>') { check(expectedGen === 0, `#${i}: no state file after ${expectedGen} changes`); return; }
    let parsed: unknown;
    try { parsed = JSON.parse(text); } catch (e) { check(false, `#${i}: the state file is not JSON: ${(e as Error).message}`); return; }
    try { checkOverlay(parsed); } catch (e) { check(false, `#${i}: the state file does not validate: ${(e as Error).message}`); return; }
    const c2 = h.fresh(goodYaml);
    check(c2.restoreWarnings.length === 0, `#${i}: restore dropped registrations`, c2.restoreWarnings);
    const a = comparable(h.controller), b = comparable(c2);
    check(JSON.stringify(a) === JSON.stringify(b), `#${i}: a controller restored from the state file differs from the live one`, { live: a, restored: b });
    stats.set('restores', (stats.get('restores') ?? 0) + 1);
  };

  for (let i = 1; i <= N; i++) {
    // Traffic and time between requests.
    if (chance(0.3)) {
      for (let k = 1 + int(6); k > 0; k--) {
        const [vip, port] = pick(CLIENT_VIPS);
        const client = `192.0.2.${1 + int(20)}:${1024 + int(60000)}`;
        h.syn(client, vip, port);
        if (h.built.dataplane.lastDrop === -1) flows.push([client, vip, port]);
      }
    }
    if (chance(0.2) && flows.length) {
      const [client, vip, port] = pick(flows);
      h.seg(client, vip, port, chance(0.2));
    }
    if (chance(0.25)) h.advance(pick([100, 500, 1000, 2500, 6000, 20_000, 70_000]));
    if (broken === undefined ? chance(0.01) : chance(0.08)) {
      if (broken === undefined) breakDisk(); else mendDisk();
      stats.set(broken === undefined ? 'disk mended' : 'disk broken', (stats.get(broken === undefined ? 'disk mended' : 'disk broken') ?? 0) + 1);
    }
    if (chance(0.1)) {
      const g0 = h.controller.generation, s0 = h.stateText();
      const snap0 = broken === undefined ? '' : h.snapshot();
      h.sweepAndTick();
      const d = h.controller.generation - g0;
      if (broken !== undefined) {
        // The views may change only by what the packet path did (the sweep), never by an apply.
        check(d === 0, `#${i}: a tick applied a change while the state file cannot be written`);
        if (JSON.stringify(JSON.parse(snap0).backends.map((b: any) => [b.name, b.state, b.leaving])) !== JSON.stringify(h.controller.backends().map((b) => [b.name, b.state, b.leaving]))) {
          check(false, `#${i}: a failed tick changed the backends`);
        }
      }
      check(d === 0 || d === 1, `#${i}: a tick bumped the generation by ${d}`);
      if (d === 0) check(h.stateText() === s0, `#${i}: a tick that applied nothing changed the state file`);
      expectedGen += d;
      if (broken === undefined) {
        for (const b of h.controller.backends()) {
          if (b.source !== 'api' || b.leaving || b.lease === null) continue;
          const end = leaseEnd.get(b.name);
          check(end !== undefined && h.now <= end, `#${i}: ${b.name}'s lease ran out at ${end === undefined ? '?' : end - h.now + ' ms from now'} but it is still up after a tick`);
        }
      }
      if (d) stats.set('tick changes', (stats.get('tick changes') ?? 0) + 1);
    }

    const q = nextRequest();
    const before = h.snapshot();
    const beforeView = q.name !== undefined ? h.controller.backends().find((b) => b.name === q.name) : undefined;
    const bodyName = typeof q.body === 'object' && q.body !== null ? (q.body as Record<string, unknown>)['name'] : undefined;
    const regBefore = typeof bodyName === 'string' ? h.controller.backends().find((b) => b.name === bodyName) : undefined;
    const r = await h.req(q.method, q.path, q.body, q.headers ?? {});
    const key = `${q.kind} ${r.status}`;
    stats.set(key, (stats.get(key) ?? 0) + 1);

    check(r.status !== 500, `#${i}: ${q.method} ${q.path} answered 500`, { body: q.body, answer: r.text });
    check(ALLOWED.has(r.status) || (r.status === 503 && broken !== undefined), `#${i}: ${q.method} ${q.path} answered ${r.status}, outside the contract`, r.text);
    if (r.status === 503) check(r.json?.error?.code === 'EAPI_STATE_WRITE', `#${i}: 503 is EAPI_STATE_WRITE`, r.text);
    if (r.status >= 400) {
      check(typeof r.json?.error?.code === 'string' && typeof r.json?.error?.message === 'string' && r.json.error.message.length > 10,
        `#${i}: an error without code and message`, r.text);
      check(h.snapshot() === before, `#${i}: ${q.method} ${q.path} was rejected (${r.status} ${r.json?.error?.code}) but changed something`, { body: q.body, error: r.json?.error });
    } else if (q.method === 'GET') {
      check(h.snapshot() === before, `#${i}: GET ${q.path} changed something`);
    } else {
      // An accepted change: one generation, except the documented no-ops.
      let noop = false;
      if (q.path === '/v1/backends' && q.method === 'POST') {
        noop = r.status === 200 && regBefore !== undefined && !regBefore.leaving;
        check(r.json?.created === (r.status === 201), `#${i}: created is ${r.json?.created} with status ${r.status}`);
        const body = q.body as Record<string, unknown>;
        const lease = typeof body['lease'] === 'number' ? body['lease'] : 0;
        if (lease > 0) leaseEnd.set(String(body['name']), h.now + lease * 1000); else leaseEnd.delete(String(body['name']));
      }
      if (q.method === 'DELETE') noop = q.force !== 'true' && beforeView !== undefined && beforeView.leaving && beforeView.flows > 0;
      // The file that is already applied, reloaded again: nothing to apply, no new generation.
      if (q.kind === 'reload') noop = fs.readFileSync(h.configFile, 'utf8') === goodYaml;
      if (noop) {
        check(JSON.parse(h.snapshot()).state === JSON.parse(before).state, `#${i}: a no-op ${q.kind} wrote the state file`);
      } else {
        check(broken === undefined, `#${i}: ${q.method} ${q.path} was applied (${r.status}) although the state file cannot be written`, r.text);
        expectedGen++;
      }
      if (q.kind === 'reload') goodYaml = fs.readFileSync(h.configFile, 'utf8');
    }
    invariants(i);
    if (i % 100 === 0 && broken === undefined) restoreCheck(i);
    if (failures > 20) break;
  }

  if (broken !== undefined) mendDisk();
  restoreCheck(N);
  t.equal(failures, 0, 'no invariant broken');
  // The run exercised what it is meant to: successes and rejections of every kind.
  const seen = (k: string) => [...stats.entries()].filter(([s]) => s.startsWith(k)).reduce((a, [, n]) => a + n, 0);
  for (const k of ['register 201', 'renew 200', 'register 409', 'register 400', 'register-junk 400', 'patch 200', 'patch 404', 'patch 400', 'delete 202', 'delete 404', 'delete 409', 'switch 200', 'switch 404', 'switch 409', 'reload 200', 'reload 422', 'junk 4', 'restores', 'tick changes', 'disk broken', 'register 503', 'patch 503']) {
    t.ok(seen(k) > 0, `exercised: ${k} (${seen(k)})`);
  }
  t.comment([...stats.entries()].sort().map(([k, n]) => `${k}: ${n}`).join(', '));
});
