// The control plane live in the namespace lab (dsr), against real kernels and HTTP servers:
//   a. `vipgate agent` on a backend host registers a new VIP by itself; clients reach it, ARP answers.
//   b. the agent leaves (SIGTERM): new connections go elsewhere, open ones keep working, and the
//      backend drains and disappears once they have closed and their flows expired.
//   c. `vipgate switch` from the standby's own host over the network (token) moves new connections.
//   d. SIGHUP reloads an edited config (a new VIP answers); a broken one changes nothing and logs why.
//   e. /metrics (token) parses as Prometheus text and counts every connection per backend.
// Needs root and network namespaces; skipped with the reason otherwise.
import t from 'tap';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { arpProbe, createLab, httpLoad, Lab } from '../scenarios/lab/lab';
import { canRunVipgateLab, startVipgate, holdConnections, VipgateProc, VIPGATE_BIN, HeldConnections } from '../scenarios/lab/vipgate';
import type { BackendView, ServiceView, StatusView, VipView } from '../src/control/api-types';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const parsePrometheus = require('parse-prometheus-text-format') as (text: string) => Array<{
  name: string; type: string; metrics: Array<{ value: string; labels?: Record<string, string> }>;
}>;

const API_PORT = 9180;
/** A VIP no config lists: only the agents' registrations bring it in. */
const NEW_VIP = '10.77.0.200';
/** The VIP the reload adds. */
const RELOAD_VIP = '10.77.0.102';
const TOKEN = `lab-${crypto.randomBytes(12).toString('hex')}`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Poll `fn` until it returns something truthy; throw with `what` (and the last value) on timeout. */
async function waitFor<T>(what: string, fn: () => T | null | undefined | false, timeoutMs = 10_000, everyMs = 250): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    let v: T | null | undefined | false;
    try { v = fn(); } catch (e) { v = null; last = (e as Error).message; }
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last: ${String(last)})` : ''}`);
    await sleep(everyMs);
  }
}

/**
 * Config backends web1 and web2 only (b3 and b4 are left to the agents: a registration needs an
 * address no config backend has). VIP 1 in IP mode -> web1; VIP 2 port 80 -> web2, standby web1.
 * A small flow table, so the once-a-second sweep visits every slot, and a 2 s closing timeout.
 */
function configYaml(lab: Lab, o: { extraVips?: string[]; extraServices?: string[] } = {}): string {
  const [v1, v2] = lab.addr.vips as [string, string];
  const [b1, b2] = lab.addr.backends as [string, string];
  return [
    `# control-lab config, written by test/control-lab.test.ts`,
    `interface: ${lab.vipgateIf}`,
    `mode: ${lab.mode}`,
    `vips: [${[v1, v2, ...(o.extraVips ?? [])].join(', ')}]`,
    'backends:',
    `  - { name: web1, ip: ${b1} }`,
    `  - { name: web2, ip: ${b2} }`,
    'services:',
    `  - { vip: ${v1}, backend: web1 }`,
    `  - { vip: ${v2}, port: ${lab.httpPort}, active: web2, standby: [web1] }`,
    ...(o.extraServices ?? []).map((s) => `  - ${s}`),
    'flows: { capacity: 4096, closing_timeout: 2s }',
    'announce: { count: 2, interval: 200ms }',
  ].join('\n') + '\n';
}

interface AgentProc { proc: ChildProcess; pid: number; log(): string; exited: Promise<number | null>; stop(): Promise<number | null> }

/** `vipgate agent` in a backend's namespace, reaching the API over the lab network with the token from the environment. */
function startAgent(lab: Lab, ns: string, name: string, ip: string, serves: string): AgentProc {
  const proc = lab.spawn(ns, [process.execPath, VIPGATE_BIN, 'agent', '--name', name, '--ip', ip, '--serves', serves,
    '--api', `${lab.addr.vipgate}:${API_PORT}`, '--lease', '3', '--renew', '1s'], { env: { ...process.env, VIPGATE_API_TOKEN: TOKEN } });
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
  proc.stderr?.on('data', (d: Buffer) => { out += d.toString(); });
  let done: number | null | undefined;
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => { done = code; r(code); }));
  return {
    proc, pid: proc.pid!, log: () => out, exited,
    async stop() {
      if (done === undefined) { try { process.kill(proc.pid!, 'SIGTERM'); } catch { /* gone */ } }
      const k = setTimeout(() => { if (done === undefined) try { process.kill(proc.pid!, 'SIGKILL'); } catch { /* gone */ } }, 10_000);
      const code = await exited;
      clearTimeout(k);
      return code;
    },
  };
}

/** ARP requests with the lab's own probe (not arping, whose flavours differ): replies and their MACs. */
async function arping(lab: Lab, ns: string, ip: string, count: number): Promise<{ replies: number; out: string }> {
  const r = await arpProbe(lab, ns, ip, count);
  return { replies: r.replies, out: r.macs.join(' ') };
}

const can = canRunVipgateLab();
if (!can.ok) {
  t.plan(0, `skipped: ${can.why}`);
} else {
  t.test('control plane live (dsr): agent, leave, switch, reload, metrics', async (t) => {
    const lab = await createLab({ mode: 'dsr', clients: 2, backends: 4 });
    let vg: VipgateProc | null = null;
    const agents: AgentProc[] = [];
    const held: HeldConnections[] = [];
    t.teardown(async () => {
      for (const h of held) h.kill();
      await Promise.all(agents.map((a) => a.stop()));
      if (vg) await vg.stop();
      lab.teardown();
    });
    const [vip1, vip2] = lab.addr.vips as [string, string];
    const [, , ip3, ip4] = lab.addr.backends as [string, string, string, string];
    const vgMac = lab.mac.vipgate.toLowerCase();
    // dsr: a backend accepts what vipgate steers to it only for addresses on its lo.
    for (const ns of ['b3', 'b4']) lab.exec(ns, ['ip', 'addr', 'add', `${NEW_VIP}/32`, 'dev', 'lo']);
    lab.exec('b2', ['ip', 'addr', 'add', `${RELOAD_VIP}/32`, 'dev', 'lo']);

    vg = await startVipgate(lab, configYaml(lab), ['--api', `0.0.0.0:${API_PORT}`], { token: TOKEN });
    const v = vg;
    const backends = () => v.cliJson<{ backends: BackendView[] }>(['backends']).backends;
    const backend = (name: string) => backends().find((b) => b.name === name);
    const services = () => v.cliJson<{ services: ServiceView[] }>(['services']).services;
    const service = (key: string) => services().find((s) => s.service === key);
    const vips = () => v.cliJson<{ vips: VipView[] }>(['vips']).vips;
    const status = () => v.cliJson<StatusView>(['status']);
    let agent1: AgentProc | null = null;
    let registeredAt = 0;

    await t.test('a. an agent registers its backend for a new VIP; clients reach it', async (t) => {
      t.equal((await arping(lab, 'c1', NEW_VIP, 2)).replies, 0, `before the agent: nobody answers ARP for ${NEW_VIP}`);
      const garpBefore = status().counters.garp_sent;
      agent1 = startAgent(lab, 'b3', 'agentweb', ip3, `${NEW_VIP}:${lab.httpPort}`);
      agents.push(agent1);
      const b = await waitFor('agentweb in `vipgate backends --json`', () => backend('agentweb'));
      registeredAt = Date.now();
      t.match(b, { ip: ip3, source: 'api', state: 'up', leaving: false, lease: { seconds: 3 }, serves: [{ service: `${NEW_VIP}:80`, role: 'active' }] },
        'agentweb is registered by itself: up, leased 3 s, active for the new VIP');
      t.match(vips().find((x) => x.vip === NEW_VIP), { source: 'api', services: [`${NEW_VIP}:80`] }, `${NEW_VIP} is a VIP now, from the API`);
      const a1 = agent1;
      t.ok(await waitFor('the agent\'s "registered" log line', () => /"msg":"registered"/.test(a1.log()), 5000).catch(() => false),
        'the agent logs its registration (JSON lines on stderr)');

      const a = await arping(lab, 'c1', NEW_VIP, 3);
      t.equal(a.replies, 3, `ARP for ${NEW_VIP}: 3 requests, 3 replies`);
      t.match(a.out, vgMac, `ARP for ${NEW_VIP}: the replies carry vipgate's MAC`);
      t.ok(status().counters.garp_sent > garpBefore, 'vipgate announced the new VIP (gratuitous ARP)');

      const [r1, r2] = await Promise.all([
        httpLoad(lab, 'c1', `http://${NEW_VIP}/`, 200, { concurrency: 8, timeoutMs: 5000 }),
        httpLoad(lab, 'c2', `http://${NEW_VIP}/`, 100, { concurrency: 8, timeoutMs: 5000 }),
      ]);
      t.equal(r1.failed, 0, `c1: 200 requests to ${NEW_VIP}, none failed ${r1.errors.join(', ')}`);
      t.equal(r2.failed, 0, `c2: 100 requests to ${NEW_VIP}, none failed ${r2.errors.join(', ')}`);
      t.same(r1.byBody, { web3: 200 }, 'c1: every answer from the agent\'s backend (web3 on b3)');
      t.same(r2.byBody, { web3: 100 }, 'c2: every answer from web3');
      t.equal(backend('agentweb')?.connections, 300, 'vipgate counts 300 connections to agentweb');
    });

    await t.test('b. the agent leaves: new connections go elsewhere, open ones keep working, then it is gone', async (t) => {
      t.ok(agent1, 'the agent of (a) runs');
      if (!agent1) return;
      // Opened while agentweb is the only member, so all of them are agentweb's.
      const h = await holdConnections(lab, 'c2', NEW_VIP, lab.httpPort, 4);
      held.push(h);
      t.same(await h.request(), ['web3', 'web3', 'web3', 'web3'], '4 long-lived connections to the new VIP, all served by web3');

      const agent2 = startAgent(lab, 'b4', 'agentweb4', ip4, `${NEW_VIP}:${lab.httpPort}`);
      agents.push(agent2);
      await waitFor('agentweb4 serving the new VIP beside agentweb', () => {
        const s = service(`${NEW_VIP}:80`);
        return s && s.serving.length === 2 ? s : null;
      });

      // The lease is 3 s; renewals every second keep it.
      const wait = registeredAt + 4500 - Date.now();
      if (wait > 0) await sleep(wait);
      t.match(backend('agentweb'), { leaving: false, state: 'up' }, 'past its 3 s lease, agentweb is still registered: the agent renews it');
      t.same(await h.request(), ['web3', 'web3', 'web3', 'web3'], 'the held connections still answer (web3)');

      process.kill(agent1.pid, 'SIGTERM');
      t.equal(await agent1.exited, 0, 'SIGTERM: the agent exits 0');
      t.match(agent1.log(), /unregistered: draining/, 'the agent unregistered: draining');
      const leaving = backend('agentweb');
      t.match(leaving, { leaving: true, state: 'drain', serves: [] }, '`vipgate backends` shows agentweb leaving, draining');
      t.ok((leaving?.flows ?? 0) >= 4, `agentweb keeps its flows while draining (${leaving?.flows} >= 4)`);
      t.same(service(`${NEW_VIP}:80`)?.serving, ['agentweb4'], 'only agentweb4 takes new flows of the service');

      const r = await httpLoad(lab, 'c1', `http://${NEW_VIP}/`, 100, { concurrency: 8, timeoutMs: 5000 });
      t.equal(r.failed, 0, `100 new connections, none failed ${r.errors.join(', ')}`);
      t.same(r.byBody, { web4: 100 }, 'every new connection went to web4 (agentweb4)');
      t.same(await h.request(), ['web3', 'web3', 'web3', 'web3'], 'the connections opened before the leave keep working, still on web3');
      t.same(await h.request(), ['web3', 'web3', 'web3', 'web3'], 'and again');

      await h.close();
      const t0 = Date.now();
      await waitFor('agentweb removed once its connections closed and their flows expired', () => !backend('agentweb'), 20_000);
      t.pass(`agentweb is gone ${Date.now() - t0} ms after its last connections closed (closing_timeout 2 s)`);
      t.ok(vips().some((x) => x.vip === NEW_VIP), `${NEW_VIP} stays while agentweb4 serves it`);

      // The last member leaves: once its flows have expired the VIP is no longer answered.
      t.equal(await agent2.stop(), 0, 'agentweb4\'s agent exits 0 on SIGTERM');
      await waitFor(`${NEW_VIP} withdrawn after the last member left`, () => !vips().some((x) => x.vip === NEW_VIP), 20_000);
      t.notOk(backend('agentweb4'), 'agentweb4 is gone too');
      t.equal((await arping(lab, 'c1', NEW_VIP, 2)).replies, 0, `ARP for ${NEW_VIP}: no reply any more`);
    });

    await t.test('c. switch: the standby commands the front-end over the network', async (t) => {
      const key = `${vip2}:80`;
      t.match(service(key), { pinned: null, serving: ['web2'] }, `${key}: web2 active, web1 standby`);
      const h = await holdConnections(lab, 'c1', vip2, lab.httpPort, 2);
      held.push(h);
      t.same(await h.request(), ['web2', 'web2'], 'two connections opened before the switch: web2');
      const pre = await httpLoad(lab, 'c2', `http://${vip2}/`, 50, { concurrency: 8 });
      t.same([pre.failed, pre.byBody], [0, { web2: 50 }], 'before the switch: 50 requests, all web2');

      const api = `${lab.addr.vipgate}:${API_PORT}`;
      const noToken = lab.exec('b1', ['env', '-u', 'VIPGATE_API_TOKEN', process.execPath, VIPGATE_BIN, 'switch', key, 'web1', '--api', api]);
      t.equal(noToken.code, 2, 'without the token: refused, exit 2');
      t.match(noToken.stderr, /token/, `and told to give the token: ${noToken.stderr.trim().split('\n')[0]}`);
      t.equal(service(key)?.pinned, null, 'nothing changed');

      // From web1's own host (b1), as the standby taking over would.
      const sw = lab.exec('b1', [process.execPath, VIPGATE_BIN, 'switch', key, 'web1', '--api', api, '--token', TOKEN, '--json']);
      t.equal(sw.code, 0, `vipgate switch ${key} web1 from b1 succeeds ${sw.stderr.trim()}`);
      t.match(JSON.parse(sw.stdout || '{}'), { service: { service: key, pinned: 'web1', serving: ['web1'] } }, 'the answer shows web1 pinned and serving');
      t.match(service(key), { pinned: 'web1', serving: ['web1'] }, '`vipgate services` agrees');

      const post = await httpLoad(lab, 'c2', `http://${vip2}/`, 100, { concurrency: 8, timeoutMs: 5000 });
      t.equal(post.failed, 0, `after the switch: 100 requests, none failed ${post.errors.join(', ')}`);
      t.same(post.byBody, { web1: 100 }, 'every new connection went to web1');
      t.same(await h.request(), ['web2', 'web2'], 'the connections opened before the switch still work, on web2');
      await h.close();
    });

    await t.test('d. SIGHUP reloads the config; a broken config changes nothing and says why', async (t) => {
      t.equal((await arping(lab, 'c1', RELOAD_VIP, 2)).replies, 0, `before the reload nobody answers for ${RELOAD_VIP}`);
      const gen0 = status().generation;
      fs.writeFileSync(v.configFile, configYaml(lab, { extraVips: [RELOAD_VIP], extraServices: [`{ vip: ${RELOAD_VIP}, port: 80, active: web2 }`] }));
      v.signal('SIGHUP');
      await waitFor(`${RELOAD_VIP} after SIGHUP`, () => vips().some((x) => x.vip === RELOAD_VIP));
      const reloads = () => v.logRecords().filter((r) => r.level === 'info' && r.event === 'reload');
      t.ok(await waitFor('the reload\'s log line', () => reloads().length === 1, 5000).catch(() => false),
        'vipgate logs the reload once');
      t.ok(status().generation > gen0, 'the generation moved');
      // The same file again: logged as no changes, and the generation stays.
      const genNow = status().generation;
      v.signal('SIGHUP');
      t.ok(await waitFor('the second reload\'s log line', () => reloads().length === 2, 5000).catch(() => false), 'a second SIGHUP is logged');
      t.match(String(reloads()[1]!.msg), /no changes/, 'as no changes');
      t.equal(status().generation, genNow, 'an unchanged file does not move the generation');
      const a = await arping(lab, 'c1', RELOAD_VIP, 3);
      t.equal(a.replies, 3, `ARP for ${RELOAD_VIP}: answered after the reload`);
      t.match(a.out, vgMac, 'with vipgate\'s MAC');
      const r = await httpLoad(lab, 'c1', `http://${RELOAD_VIP}/`, 50, { concurrency: 8, timeoutMs: 5000 });
      t.same([r.failed, r.byBody], [0, { web2: 50 }], `50 requests to ${RELOAD_VIP}: all web2 ${r.errors.join(', ')}`);

      // Broken: a service naming a backend that does not exist.
      const genOk = status().generation;
      const vipsOk = vips();
      const servicesOk = services();
      const errorsBefore = v.logRecords().filter((x) => x.level === 'error').length;
      fs.writeFileSync(v.configFile, configYaml(lab, { extraVips: [RELOAD_VIP, '10.77.0.103'], extraServices: [`{ vip: ${RELOAD_VIP}, port: 80, active: web2 }`, '{ vip: 10.77.0.103, port: 80, active: web9 }'] }));
      v.signal('SIGHUP');
      const errs = await waitFor('an error line about the refused reload', () => {
        const e = v.logRecords().filter((x) => x.level === 'error').slice(errorsBefore);
        return e.some((x) => x.event === 'reload_failed') ? e : null;
      });
      const line = errs.find((x) => x.event === 'reload_failed')!;
      t.equal(errs.length, 1, 'the refusal is logged once');
      t.match(String(line.msg), /web9/, `the error says what is wrong: ${String(line.msg).slice(0, 200)}`);
      t.ok(typeof line.time === 'string', 'as one JSON object per line (time, level, msg)');
      const notJson = v.log().split('\n').filter((l) => l.trim() !== '' && !/^\{.*\}$/.test(l));
      t.same(notJson, [], 'every line vipgate wrote to stderr is a JSON object');
      t.ok(v.running(), 'vipgate keeps running');
      t.equal(status().generation, genOk, 'generation unchanged');
      t.same(vips(), vipsOk, 'VIPs unchanged');
      t.same(services(), servicesOk, 'services unchanged');
      const cli = v.cli(['reload']);
      t.equal(cli.code, 2, '`vipgate reload` of the broken file: exit 2');
      t.match(cli.stderr, /web9/, 'with the reason');
      const r2 = await httpLoad(lab, 'c1', `http://${RELOAD_VIP}/`, 20, { concurrency: 4, timeoutMs: 5000 });
      t.same([r2.failed, r2.byBody], [0, { web2: 20 }], `${RELOAD_VIP} still served by web2`);
    });

    await t.test('e. /metrics through the API counts the connections per backend', async (t) => {
      // A fresh vipgate, so every counter starts at 0 (--fresh-state: the counters live in the
      // shared state, which a plain restart keeps).
      const stopped = await v.stop();
      t.equal(stopped.code, 0, 'the previous vipgate exits 0 on SIGTERM');
      vg = await startVipgate(lab, configYaml(lab), ['--api', `0.0.0.0:${API_PORT}`, '--fresh-state'], { token: TOKEN });
      const m = vg;
      t.equal(m.api('GET', '/metrics', undefined, { token: null }).status, 401, 'without the token: 401');
      const N1 = 60, N2 = 40;
      const [l1, l2] = await Promise.all([
        httpLoad(lab, 'c1', `http://${vip1}/`, N1, { concurrency: 8, timeoutMs: 5000 }),
        httpLoad(lab, 'c2', `http://${vip2}/`, N2, { concurrency: 8, timeoutMs: 5000 }),
      ]);
      t.same([l1.failed, l1.byBody], [0, { web1: N1 }], `${N1} connections to ${vip1}, all web1`);
      t.same([l2.failed, l2.byBody], [0, { web2: N2 }], `${N2} connections to ${vip2}, all web2`);
      const res = m.api('GET', '/metrics');
      t.equal(res.status, 200, 'GET /metrics with the token: 200');
      let fams: ReturnType<typeof parsePrometheus> = [];
      t.doesNotThrow(() => { fams = parsePrometheus(res.text); }, 'parses as Prometheus text');
      const fam = (name: string) => fams.find((f) => f.name === name);
      const conns = fam('vipgate_backend_connections_total');
      t.equal(conns?.type, 'COUNTER', 'vipgate_backend_connections_total is a counter');
      const per = Object.fromEntries((conns?.metrics ?? []).map((x) => [x.labels?.backend, Number(x.value)]));
      t.same(per, { web1: N1, web2: N2 }, `per backend: web1 ${N1}, web2 ${N2} — the connections the clients made`);
      t.same((conns?.metrics ?? []).map((x) => x.labels?.ip).sort(), [lab.addr.backends[0], lab.addr.backends[1]], 'labelled with the backends\' addresses');
      t.equal(Number(fam('vipgate_flows_created_total')?.metrics[0]?.value), N1 + N2, `vipgate_flows_created_total = ${N1 + N2}`);
      const fromCli = Object.fromEntries(m.cliJson<{ backends: BackendView[] }>(['backends']).backends.map((b) => [b.name, b.connections]));
      t.same(fromCli, per, '`vipgate backends` counts the same');
    });
  });
}
