// The health checker and failover wired together with the real controller, with fake probes and
// a fake clock: checks spread and faster while changing, health transitions re-steer new flows
// (spares, hold-down, preempt, switch) without touching the state file or the generation,
// bHealthOkAt, SYN-time probe results fed in, events; and replay and run agree on the tables.

import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseConfig, loadConfig } from '../src/control/config';
import { Controller } from '../src/control/controller';
import { buildDataplane } from '../src/app/replay';
import { HealthManager } from '../src/control/health/manager';
import { EventLog } from '../src/control/health/events';
import { EVENTS_DEFAULTS, HealthCheck } from '../src/control/config/health';
import type { ProbeResult } from '../src/control/health/types';
import type { Probe } from '../src/control/health/probes';
import { hash2 } from '../src/tables/hash';
import { Tables } from '../src/tables/services';
import { parseIpv4 } from '../src/wire/addr';
import { mulberry32 } from './helpers/prng';

const T0 = 1_700_000_000_000;
const VIP = '10.0.0.101';

function yaml(extra: { health?: string; services?: string[]; spares?: string; backends?: string[] } = {}): string {
  return [
    'mac: "02:00:5e:00:00:01"',
    'vips: ["10.0.0.100", "10.0.0.101", "10.0.0.102"]',
    extra.health ?? 'health: { type: tcp, port: 80, interval: 100ms, timeout: 20ms, rise: 2, fall: 2 }',
    'backends:',
    ...(extra.backends ?? [
      '{ name: a, ip: 10.0.1.1, mac: "02:00:00:00:01:01" }',
      '{ name: b, ip: 10.0.1.2, mac: "02:00:00:00:01:02", weight: 300 }',
      '{ name: c, ip: 10.0.1.3, mac: "02:00:00:00:01:03" }',
      '{ name: s1, ip: 10.0.1.11, mac: "02:00:00:00:01:11" }',
      '{ name: s2, ip: 10.0.1.12, mac: "02:00:00:00:01:12", health: false }',
    ]).map((b) => `  - ${b}`),
    extra.spares ?? 'spares: [{ name: pool1, exclusive: true, members: [s1, s2] }]',
    'services:',
    ...(extra.services ?? [
      `{ vip: ${VIP}, port: 80, active: a, standby: [b], spares: pool1, hold_down: 500ms }`,
      '{ vip: 10.0.0.102, port: 80, active: c, spares: pool1, preempt: false, on_backend_down: keep }',
    ]).map((s) => `  - ${s}`),
    '',
  ].join('\n');
}

/** A controller with fake probes: `up` says which backend IPs answer. */
function rig(text = yaml(), o: { stateFile?: string } = {}) {
  let now = T0;
  const clock = () => now;
  const up = new Set(['10.0.1.1', '10.0.1.2', '10.0.1.3', '10.0.1.11', '10.0.1.12']);
  const probed: Array<{ ip: string; at: number }> = [];
  /** "ip:port" that refuse while the backend's other ports answer. */
  const downPorts = new Set<string>();
  const fake: Probe = (target) => {
    probed.push({ ip: target.ip, at: now });
    const r: ProbeResult = up.has(target.ip) && !downPorts.has(`${target.ip}:${target.port}`) ? { ok: true, latencyMs: 0.3, reason: null } : { ok: false, latencyMs: 20, reason: 'connection refused' };
    return Promise.resolve(r);
  };
  const config = parseConfig(text, 'h.yaml');
  const built = buildDataplane(config);
  const events = new EventLog({ config: EVENTS_DEFAULTS, clock });
  const rand = mulberry32(7);
  const health = new HealthManager({ probes: { tcp: fake, http: fake }, events, clock, random: rand });
  const controller = new Controller({ config, port: built.port, mac: config.mac!, stateFile: o.stateFile ?? null, clock, health, events });
  /** Advance the clock in `step` ms slices, ticking the checker and letting probe results land. */
  const advance = async (ms: number, step = 5) => {
    const end = now + ms;
    while (now < end) {
      now = Math.min(end, now + step);
      health.tick(now);
      controller.healthTick(now);
      await new Promise((r) => setImmediate(r));
    }
  };
  const picks = (vip = VIP, n = 2000, port = 80): Record<string, number> => {
    const tb = controller.tables, svc = tb.serviceIndex(parseIpv4(vip)!, port);
    const out: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const b = tb.pickBackend(svc, hash2(0x0a630001 + i, (40000 + i) << 16 | 80, 0x51c4) >>> 8);
      const name = b < 0 ? '-' : tb.backendNames[b]!;
      out[name] = (out[name] ?? 0) + 1;
    }
    return out;
  };
  const types = () => events.since(0).events.map((e) => `${e.type} ${e.service ?? e.backend}`);
  return { controller, health, events, built, up, downPorts, probed, advance, picks, types, now: () => now };
}

t.test('checks are spread over the interval, faster while a state is changing', async (t) => {
  const r = rig();
  await r.advance(100, 1);
  const firsts = new Map<string, number>();
  for (const p of r.probed) if (!firsts.has(p.ip)) firsts.set(p.ip, p.at - T0);
  t.equal(firsts.size, 4, 'every checked backend is checked within the first interval (s2 has health: false)');
  t.ok(new Set(firsts.values()).size >= 3, `first checks are spread, not at once: ${[...firsts.values()].join(', ')} ms`);
  await r.advance(1000, 1);
  const ofA = () => r.probed.filter((p) => p.ip === '10.0.1.1').map((p) => p.at);
  const gaps = (xs: number[]) => xs.slice(1).map((x, i) => x - xs[i]!);
  const settled = gaps(ofA().slice(-5));
  t.ok(settled.every((g) => g >= 90 && g <= 111), `settled: every interval ±10% (${settled.join(', ')})`);
  r.up.delete('10.0.1.1');
  const from = r.now();
  await r.advance(400, 1);
  const changing = gaps(ofA().filter((x) => x > from));
  t.ok(changing.length >= 1 && changing[0]! <= 40, `after a failure the next check comes at the fast interval (${changing.join(', ')} ms)`);
});

t.test('a backend that fails is marked down within interval x fall + timeout + one interval, and its service fails over without a state write', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vg-health-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const stateFile = path.join(dir, 'state.json');
  const r = rig(yaml(), { stateFile });
  await r.advance(300);
  t.same(Object.keys(r.picks()), ['a'], 'a serves');
  t.equal(r.controller.backend('a').health.state, 'up');
  const gen = r.controller.generation;
  const written = fs.existsSync(stateFile) ? fs.statSync(stateFile).mtimeMs : null;
  r.up.delete('10.0.1.1');
  const died = r.now();
  let downAt = 0;
  while (r.picks().a !== undefined && r.now() - died < 2000) await r.advance(5);
  downAt = r.now() - died;
  t.ok(downAt <= 100 * 2 + 20 + 100, `failover ${downAt} ms after the death (bound: interval x fall + timeout + interval = 320 ms)`);
  t.same(Object.keys(r.picks()), ['b'], 'the standby takes every new flow');
  const v = r.controller.backend('a');
  t.match(v.health, { state: 'down', lastFailure: 'connection refused' }, 'the API shows health beside the admin state');
  t.equal(v.state, 'up', 'the admin state is untouched');
  t.equal(r.controller.generation, gen, 'no generation bump');
  t.equal(fs.existsSync(stateFile) ? fs.statSync(stateFile).mtimeMs : null, written, 'the state file was not written');
  t.same(r.types().slice(0, 4).sort(), ['health_up a', 'health_up b', 'health_up c', 'health_up s1'], 'the first checks (in the order they were spread)');
  t.same(r.types().slice(4), ['health_down a', 'failover 10.0.0.101:80']);
  const sv = r.controller.services().find((s) => s.service === `${VIP}:80`)!;
  t.equal(sv.failover.takenOverBy, 'b');
});

t.test('spares, hold-down and fail-back; an exclusive spare serves one service; preempt: false stays', async (t) => {
  const r = rig();
  await r.advance(300);
  r.up.delete('10.0.1.1'); r.up.delete('10.0.1.2');
  await r.advance(600);
  t.same(Object.keys(r.picks()), ['s1'], 'active and standby down: the highest-priority spare');
  r.up.delete('10.0.1.3');
  await r.advance(600);
  t.same(Object.keys(r.picks('10.0.0.102')), ['s2'], 'the other service gets the next spare (s1 is taken: exclusive pool)');
  t.equal(r.controller.backend('s2').health.state, 'unchecked', 'health: false: never checked, always usable');
  r.up.add('10.0.1.1');
  await r.advance(250);
  t.same(Object.keys(r.picks()), ['s1'], 'a is back up but the hold-down (500 ms) keeps new flows on the spare');
  t.ok(r.controller.services().find((s) => s.service === `${VIP}:80`)!.failover.failbackAt, 'the fail-back time is shown');
  await r.advance(600);
  t.same(Object.keys(r.picks()), ['a'], 'after the hold-down new flows return to a');
  r.up.add('10.0.1.3');
  await r.advance(1000);
  t.same(Object.keys(r.picks('10.0.0.102')), ['s2'], 'preempt: false: c is up again but the spare stays active');
  t.match(r.types().filter((x) => !x.startsWith('health')), [
    `failover ${VIP}:80`, `failover ${VIP}:80`, 'failover 10.0.0.102:80', `failback_scheduled ${VIP}:80`, `failback ${VIP}:80`,
  ]);
  const tb = r.controller.tables;
  t.equal(tb.svcOnDown[tb.serviceIndex(parseIpv4('10.0.0.102')!, 80)], 1, 'on_backend_down: keep reaches the tables');
  t.equal(tb.svcOnDown[tb.serviceIndex(parseIpv4(VIP)!, 80)], 0, 'reset is the default');
});

t.test('a manual switch wins over health-driven order until --auto; a switch is an event', async (t) => {
  const r = rig();
  await r.advance(300);
  r.controller.switchService(`${VIP}:80`, { backend: 'b' });
  t.same(Object.keys(r.picks()), ['b']);
  r.up.delete('10.0.1.2');
  await r.advance(600);
  t.same(Object.keys(r.picks()), ['a'], 'the pinned member is down: new flows fall through to the next usable');
  r.up.add('10.0.1.2');
  await r.advance(600);
  t.same(Object.keys(r.picks()), ['b'], 'the pinned member back: the pin holds (no hold-down, no preempt logic)');
  r.controller.switchService(`${VIP}:80`, { backend: null });
  t.same(Object.keys(r.picks()), ['a'], '--auto: priority order');
  t.match(r.types().filter((x) => x.startsWith('switch')), [`switch ${VIP}:80`, `switch ${VIP}:80`]);
});

t.test('an agent-registered backend takes new flows only when its agent (admin state) and the check both say up', async (t) => {
  const r = rig(yaml({ health: 'health: { type: tcp, interval: 100ms, timeout: 20ms, rise: 2, fall: 2 }' }));
  await r.advance(300);
  r.controller.register({ name: 'r1', ip: '10.0.1.50', mac: '02:00:00:00:01:50', serves: '10.0.0.100:8080' });
  await r.advance(300);
  t.equal(r.controller.backend('r1').health.state, 'down', 'the default check applies to registrations: 10.0.1.50 does not answer');
  const tb = r.controller.tables, svc = tb.serviceIndex(parseIpv4('10.0.0.100')!, 8080);
  t.equal(tb.pickBackend(svc, 1), -1, 'agent says up, check says down: no new flows');
  t.match(r.controller.backend('r1').health.check, /tcp :8080/, 'checked on the port it serves');
  r.up.add('10.0.1.50');
  await r.advance(400);
  t.equal(r.controller.tables.backendNames[r.controller.tables.pickBackend(svc, 1)], 'r1', 'both up: it serves');
  r.controller.setBackend('r1', { state: 'drain' });
  t.equal(r.controller.tables.pickBackend(svc, 1), -1, 'the agent drains it (its health command failed): no new flows though the check is up');
});

/** Backend a serves VIP:80 (standby b) and VIP:8080 (standby c), checked on each port. */
const twoPortRig = () => rig(yaml({
  health: 'health: { type: tcp, interval: 100ms, timeout: 20ms, rise: 2, fall: 2 }',
  services: [`{ vip: ${VIP}, port: 80, active: a, standby: [b] }`, `{ vip: ${VIP}, port: 8080, active: a, standby: [c] }`],
  spares: '',
}));

t.test('a backend serving two ports is checked on each: down on one port, it keeps serving the other', async (t) => {
  const r = twoPortRig();
  await r.advance(300);
  t.match(r.controller.backend('a').health, { state: 'up', check: /^tcp :80,:8080 every 100ms/ });
  r.downPorts.add('10.0.1.1:8080');
  await r.advance(500);
  t.same(Object.keys(r.picks(VIP, 500, 8080)), ['c'], 'port 8080 fails over to its standby');
  t.same(Object.keys(r.picks(VIP, 500, 80)), ['a'], 'port 80 keeps a');
  const tb = r.controller.tables;
  t.equal(tb.bHealth[tb.backendSlot('a')], 1, 'the backend as a whole is not down (its slot and its other service are untouched)');
  t.match(r.controller.backend('a').health, { state: 'up', lastFailure: ':8080 connection refused' }, 'the failure names the port');
  t.match(r.events.since(0).events.filter((e) => e.type === 'health_down'), [{ backend: 'a', port: 8080 }]);
  r.up.delete('10.0.1.1');
  await r.advance(500);
  t.equal(r.controller.tables.bHealth[r.controller.tables.backendSlot('a')], 2, 'every port down: the backend is down');
  t.same(Object.keys(r.picks(VIP, 500, 80)), ['b']);
});

t.test('a changed check (reload) keeps the health it had: a dead backend stays down; a new address starts unknown', async (t) => {
  const r = rig();
  await r.advance(300);
  r.up.delete('10.0.1.1');
  await r.advance(500);
  t.equal(r.health.status('a'), 'down');
  const check = r.controller.backend('a').health;
  const base = { name: 'a', ip: parseIpv4('10.0.1.1')!, ports: [80] };
  const c0 = parseConfig(yaml(), 'h.yaml').backends[0]!.health!;
  r.health.setTargets([{ ...base, check: { ...c0, intervalMs: 500 } }], r.now());
  t.equal(r.health.status('a'), 'down', 'still down after its check changed');
  t.not(r.controller.backend('a').health.check, check.check);
  r.health.setTargets([{ ...base, ip: parseIpv4('10.0.1.99')!, check: c0 }], r.now());
  t.equal(r.health.status('a'), 'unknown', 'another address: another server, unknown');
});

t.test('bHealthOkAt holds the time of the last good check; a SYN-time probe result counts as a check', async (t) => {
  const r = rig();
  await r.advance(300);
  const slot = r.controller.tables.backendSlot('a');
  const okAt = r.built.state.bHealthOkAt[slot]!;
  t.ok(okAt > T0 && okAt <= r.now(), 'written on each good check (control\'s clock)');
  t.equal(r.built.state.bHealthOkAt[r.controller.tables.backendSlot('s2')], 0, 'never for an unchecked backend');
  const fail = { ok: false, latencyMs: 20, reason: 'no SYN-ACK within 20 ms' };
  r.health.observe('a', fail, r.now());
  r.health.observe('a', fail, r.now());
  t.equal(r.controller.backend('a').health.state, 'down', 'two SYN-time probe failures (fall 2) mark it down at once');
  t.same(Object.keys(r.picks()), ['b']);
});

t.test('replay and run build the same tables from the same config (one path from config to tables)', async (t) => {
  const text = yaml({ health: 'health: false' });
  const config = parseConfig(text, 'h.yaml');
  const replay = buildDataplane(config, { seed: 1 });
  const run = new Controller({ config, port: buildDataplane(config, { seed: 1 }).port, mac: config.mac!, stateFile: null });
  const a: Tables = replay.tables, b: Tables = run.tables;
  t.same(b.spec, a.spec, 'the same spec: weights, spares, on_backend_down, health');
  t.ok(a.spec.backends.find((x) => x.name === 'b')!.weight === 300, 'weights are kept (the old replay path dropped them)');
  for (const vip of ['10.0.0.101', '10.0.0.102']) {
    const sa = a.serviceIndex(parseIpv4(vip)!, 80), sb = b.serviceIndex(parseIpv4(vip)!, 80);
    let same = 0;
    for (let i = 0; i < 4096; i++) if (a.backendNames[a.pickBackend(sa, i)] === b.backendNames[b.pickBackend(sb, i)]) same++;
    t.equal(same, 4096, `${vip}: every pick agrees`);
  }
  const weighted = parseConfig(yaml({ health: 'health: false', services: [`{ vip: ${VIP}, port: 80, active: a, standby: [b] }`], spares: '' })
    .replace('{ name: a, ip: 10.0.1.1, mac: "02:00:00:00:01:01" }', '{ name: a, ip: 10.0.1.1, mac: "02:00:00:00:01:01", weight: 0 }'), 'w.yaml');
  const wr = buildDataplane(weighted).tables, wc = new Controller({ config: weighted, port: buildDataplane(weighted).port, mac: weighted.mac!, stateFile: null }).tables;
  const si = wr.serviceIndex(parseIpv4(VIP)!, 80);
  t.equal(wr.backendNames[wr.pickBackend(si, 5)], 'b', 'replay honours weight 0 (a takes flows only when no other member can)');
  t.equal(wc.backendNames[wc.pickBackend(si, 5)], 'b', 'and so does run');
});

t.test('health config: defaults, per-backend overrides, false; located errors', async (t) => {
  const c = parseConfig(yaml({ backends: [
    '{ name: a, ip: 10.0.1.1, health: { type: http, path: /healthz, expect_status: [200, 3xx], body: ok } }',
    '{ name: b, ip: 10.0.1.2, health: { port: 8080, rise: 5 } }',
    '{ name: c, ip: 10.0.1.3 }', '{ name: s1, ip: 10.0.1.11 }', '{ name: s2, ip: 10.0.1.12, health: false }',
  ] }), 'h.yaml');
  const by = (n: string) => c.backends.find((b) => b.name === n)!.health as HealthCheck;
  t.match(by('a'), { type: 'http', port: 80, intervalMs: 100, timeoutMs: 20, rise: 2, fall: 2, http: { path: '/healthz', status: [[200, 200], [300, 399]], body: 'ok' } });
  t.match(by('b'), { type: 'tcp', port: 8080, rise: 5, fall: 2, intervalMs: 100 });
  t.equal(by('s2'), null);
  t.equal(c.spares[0]!.exclusive, true);
  t.match(c.services[0]!.failover, { spares: 'pool1', preempt: true, holdDownMs: 500, onBackendDown: 'reset' });
  t.match(c.services[1]!.failover, { preempt: false, holdDownMs: 0, onBackendDown: 'keep' });
  const plain = parseConfig(yaml({ health: '', spares: '', services: [`{ vip: ${VIP}, port: 80, active: a }`] }), 'p.yaml');
  t.equal(plain.backends[0]!.health, null, 'no health section: not checked (as before)');
  t.match(parseConfig(yaml({ health: 'health: { }' }), 'd.yaml').health, { type: 'tcp', intervalMs: 1000, timeoutMs: 10, rise: 2, fall: 3, fastIntervalMs: 250 }, 'defaults: the patent\'s 1 s and 10 ms (measured not to flap)');

  const bad: Array<[string, string, RegExp]> = [
    ['health: { type: icmp }', 'health type', /3:\d+: .*"icmp" is not a check type; use tcp .*http .*syn/],
    ['health: { interval: 100ms, timeout: 200ms }', 'timeout >= interval', /3:\d+: .*timeout 200ms is not shorter than interval 100ms/],
    ['health: { type: tcp, path: /x }', 'http key on tcp', /3:\d+: .*path only applies to type: http/],
    ['health: { rise: 0 }', 'rise range', /3:\d+: .*out of range; rise/],
    ['health: { type: http, path: nope }', 'path', /is not a request path/],
    ['health: { type: http, expect_status: 7xx }', 'status', /"7xx" is not a status/],
    ['health: { colour: red }', 'unknown key', /unknown key; allowed keys here: type, port/],
  ];
  for (const [h, what, re] of bad) {
    t.throws(() => parseConfig(yaml({ health: h }), 'bad.yaml'), { message: re }, what);
  }
  const badSvc: Array<[string, RegExp]> = [
    [`{ vip: ${VIP}, port: 80, active: a, spares: nopool }`, /no spare pool named "nopool" \(pools: pool1\)/],
    [`{ vip: ${VIP}, port: 80, active: a, on_backend_down: drop }`, /"drop" is not a policy; use reset .* or keep/],
    [`{ vip: ${VIP}, port: 80, active: a, preempt: maybe }`, /expected true or false/],
    [`{ vip: ${VIP}, port: 80, active: a, hold_down: soon }`, /is not a duration/],
  ];
  for (const [s, re] of badSvc) t.throws(() => parseConfig(yaml({ services: [s] }), 'bad.yaml'), { message: re }, s);
  t.throws(() => parseConfig(yaml({ spares: 'spares: [{ name: p, members: [zz] }]', services: [`{ vip: ${VIP}, port: 80, active: a }`] }), 'bad.yaml'),
    { message: /unknown backend "zz" .*a spare must be a backend from backends:/ });
  t.throws(() => parseConfig(yaml({ spares: 'spares: [{ name: p, members: [] }]', services: [`{ vip: ${VIP}, port: 80, active: a }`] }), 'bad.yaml'), { message: /the list is empty/ });
  t.throws(() => parseConfig(yaml() + 'syn_check: { on_fail: drop }\n', 'bad.yaml'), { message: /"drop" is not a choice; use next .* or reset/ });
  t.throws(() => parseConfig(yaml() + 'events: { webhook: "ftp://x/" }\n', 'bad.yaml'), { message: /is not an http:\/\/ or https:\/\/ URL/ });
  const ok = parseConfig(yaml() + 'syn_check: { max_age: 2s, timeout: 20ms, on_fail: reset }\nevents: { webhook: "http://127.0.0.1:9000/hook", timeout: 500ms, queue: 10 }\n', 'ok.yaml');
  t.same(ok.synCheck, { maxAgeMs: 2000, timeoutMs: 20, onFail: 'reset' });
  t.match(ok.events, { webhook: 'http://127.0.0.1:9000/hook', timeoutMs: 500, queue: 10 });
  t.equal(parseConfig(yaml() + 'syn_check: { enabled: false }\n', 'off.yaml').synCheck, null);
  const withSyn = parseConfig(yaml() + 'syn_check: { max_age: 3s }\n', 's.yaml');
  t.same(new Controller({ config: withSyn, port: buildDataplane(withSyn).port, mac: withSyn.mac!, stateFile: null }).tables.spec.synCheck, { maxAgeMs: 3000, timeoutMs: 20, onFail: 'next' }, 'syn_check reaches the tables spec');
});

t.test('reload: changed checks apply at once; a check type with no probe and a change of event hooks are refused, nothing changed', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vg-health-reload-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'vipgate.yaml');
  fs.writeFileSync(file, yaml());
  const config = loadConfig(file);
  const now = T0;
  const events = new EventLog({ config: config.events, clock: () => now });
  const ok: Probe = () => Promise.resolve({ ok: true, latencyMs: 0.2, reason: null });
  const health = new HealthManager({ probes: { tcp: ok }, events, clock: () => now, random: mulberry32(3) });
  const c = new Controller({ config, port: buildDataplane(config).port, mac: config.mac!, stateFile: null, clock: () => now, health, events });
  t.match(c.backend('a').health.check, /^tcp :80 every 100ms/);
  fs.writeFileSync(file, yaml({ health: 'health: { type: tcp, port: 80, interval: 2s, timeout: 20ms, rise: 2, fall: 2 }' }));
  c.reload();
  t.match(c.backend('a').health.check, /^tcp :80 every 2000ms/, 'the new interval applies at once');
  const gen = c.generation;
  fs.writeFileSync(file, yaml({ health: 'health: { type: syn, port: 80 }' }));
  t.throws(() => c.reload(), { message: /health checks of type syn were not in use when vipgate started, and their prober is opened at start only\. Nothing was changed: restart vipgate to use them, or use type: tcp or type: http/ });
  fs.writeFileSync(file, yaml({ health: 'health: { type: tcp, port: 80, interval: 2s, timeout: 20ms, rise: 2, fall: 2 }' }) + 'events: { webhook: "http://127.0.0.1:9/x" }\n');
  t.throws(() => c.reload(), { message: /events changed; that takes a restart/ });
  // The SYN-time check was off at start (no hold queue, no prober): turning it on by a reload is
  // refused rather than accepted to no effect.
  fs.writeFileSync(file, yaml({ health: 'health: { type: tcp, port: 80, interval: 2s, timeout: 20ms, rise: 2, fall: 2 }' }) + 'syn_check: { max_age: 2s, timeout: 20ms }\n');
  t.throws(() => c.reload(), { message: /syn_check \(turned on; it was off at start\) changed; that takes a restart.*Nothing was changed/ });
  t.equal(c.tables.synCheckMaxAgeMs, 0, 'the tables still have the check off');
  t.equal(c.generation, gen, 'refused reloads change nothing');
  t.match(c.backend('a').health.check, /every 2000ms/);
});

t.test('the annotated example scenarios/configs/failover.yaml loads, and replay and run agree on it', async (t) => {
  const file = path.join(__dirname, '..', '..', 'scenarios', 'configs', 'failover.yaml');
  const c = loadConfig(file);
  t.equal(c.spares[0]!.name, 'pool1');
  t.equal(c.backends.find((b) => b.name === 'spare2')!.health, null);
  const replay = buildDataplane(c).tables;
  const run = new Controller({ config: c, port: buildDataplane(c).port, mac: c.mac!, stateFile: null }).tables;
  t.same(run.spec, replay.spec);
  t.same(replay.spec.services.map((s) => [s.active, s.standby]), [[['web1'], ['web2', 'spare1', 'spare2']], [['web3'], ['spare1', 'spare2']]], 'standbys, then the pool in priority order');
});

t.test('a SYN-time probe result counts for the check of the port it probed only (per-port health)', async (t) => {
  const r = twoPortRig();
  await r.advance(300);
  const fail = { ok: false, latencyMs: 20, reason: 'connection refused (RST)' };
  r.health.observe('a', fail, r.now(), 8080);
  r.health.observe('a', fail, r.now(), 8080);
  t.equal(r.health.status('a', 8080), 'down', 'two refusals on :8080 (fall 2): down there');
  t.equal(r.health.status('a', 80), 'up', ':80 was not probed: still up');
  t.same(Object.keys(r.picks(VIP, 500, 8080)), ['c'], 'port 8080 fails over');
  t.same(Object.keys(r.picks(VIP, 500, 80)), ['a'], 'port 80 keeps a');
  r.health.observe('a', fail, r.now(), 9999);
  t.equal(r.health.status('a', 80), 'up', 'a port with no check of its own counts for every check (one failure, fall 2)');
});

t.test('reload and syn_check: max_age and off apply; a new probe timeout is refused (the prober keeps the one from start)', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vg-syn-reload-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'vipgate.yaml');
  fs.writeFileSync(file, yaml() + 'syn_check: { max_age: 2s, timeout: 20ms }\n');
  const config = loadConfig(file);
  const c = new Controller({ config, port: buildDataplane(config).port, mac: config.mac!, stateFile: null, clock: () => T0 });
  t.equal(c.tables.synCheckMaxAgeMs, 2000);
  fs.writeFileSync(file, yaml() + 'syn_check: { max_age: 5s, timeout: 20ms }\n');
  c.reload();
  t.equal(c.tables.synCheckMaxAgeMs, 5000, 'a new max_age applies');
  fs.writeFileSync(file, yaml() + 'syn_check: { max_age: 5s, timeout: 50ms }\n');
  t.throws(() => c.reload(), { message: /syn_check\.timeout changed; that takes a restart.*Nothing was changed/ });
  fs.writeFileSync(file, yaml() + 'syn_check: { enabled: false, max_age: 5s, timeout: 50ms }\n');
  c.reload();
  t.equal(c.tables.synCheckMaxAgeMs, 0, 'turned off');
  fs.writeFileSync(file, yaml() + 'syn_check: { max_age: 5s, timeout: 20ms }\n');
  c.reload();
  t.equal(c.tables.synCheckMaxAgeMs, 5000, 'on again (it was on at start: its hold queue and prober are there)');
});
