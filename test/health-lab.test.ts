// Health-driven failover live in the namespace lab, in dsr and in nat, with real clients opening
// fresh connections all the time and real backends that are killed (SIGKILL), cut off (link
// down), frozen (SIGSTOP) and brought back:
//   - the time from a backend's death to new connections succeeding on the spare is at most
//     interval x fall + timeout + one interval (plus a stated allowance for this loaded machine);
//   - no new connection goes to a backend once it is marked down (its connection counter stays),
//     and none fails while a usable spare exists;
//   - after recovery and the hold-down new connections return (preempt); with preempt: false
//     they stay on the spare; connections open on the spare keep working across the fail-back.
// Needs root and network namespaces; skipped with the reason otherwise.

import t from 'tap';
import type { ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { createLab, Lab } from '../scenarios/lab/lab';
import { canRunVipgateLab, startVipgate, holdConnections, VipgateProc } from '../scenarios/lab/vipgate';
import type { BackendView } from '../src/control/api-types';

const PORT = 8080;
const INTERVAL = 150, TIMEOUT = 100, FALL = 2, RISE = 2, HOLD_DOWN = 1000;
/** The bound: interval x fall + timeout + one interval. */
const BOUND = INTERVAL * FALL + TIMEOUT + INTERVAL;
/**
 * What this 2-core machine, shared by several test runs at once, adds on top: timer lateness of
 * the checker, the client's own scheduling, the request itself. Stated, not hidden in the bound.
 */
const LOAD_ALLOWANCE = 250;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(what: string, fn: () => T | null | undefined | false, timeoutMs = 10_000, everyMs = 20): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

interface Req { s: number; e: number; ok: boolean; body?: string; err?: string }

// Fresh connections, one JSON line each.
const CLIENT_JS = `
const http = require('node:http');
const [host, port] = [process.argv[1], Number(process.argv[2])];
let stop = false;
process.stdin.on('data', () => { stop = true; });
process.stdin.on('end', () => { stop = true; });
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
function one(done) {
  const s = Date.now();
  const req = http.get({ host, port, path: '/', agent: false, timeout: 3000 }, (res) => {
    let b = '';
    res.on('data', (d) => { b += d; });
    res.on('end', () => { out({ s, e: Date.now(), ok: res.statusCode === 200, body: b.trim() }); done(); });
  });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', (e) => { out({ s, e: Date.now(), ok: false, err: e.code || e.message }); done(); });
}
// Open loop: a new connection every 20 ms whatever the earlier ones are doing, so connections
// hanging on a dead backend never hold back the ones that measure the failover.
const tick = setInterval(() => { if (stop) clearInterval(tick); else one(() => {}); }, 20);
const wait = () => { if (stop) setTimeout(() => process.exit(0), 3500); else setTimeout(wait, 50); };
wait();`;

class Clients {
  readonly reqs: Req[] = [];
  private child: ChildProcess;
  constructor(lab: Lab, ns: string, host: string) {
    this.child = lab.spawn(ns, [process.execPath, '-e', CLIENT_JS, host, String(PORT)]);
    let buf = '';
    this.child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) { const l = buf.slice(0, i); buf = buf.slice(i + 1); try { this.reqs.push(JSON.parse(l) as Req); } catch { /* partial */ } }
    });
  }
  /** Requests started in [from, to). */
  between(from: number, to: number): Req[] { return this.reqs.filter((r) => r.s >= from && r.s < to); }
  async stop(): Promise<void> {
    this.child.stdin!.end();
    await new Promise((r) => { if (this.child.exitCode !== null) r(null); else this.child.once('exit', r); });
  }
}

function summary(rs: Req[]): string {
  const by: Record<string, number> = {};
  for (const r of rs) { const k = r.ok ? r.body! : `ERR ${r.err}`; by[k] = (by[k] ?? 0) + 1; }
  return JSON.stringify(by);
}

class Servers {
  readonly procs = new Map<string, ChildProcess>();
  constructor(private lab: Lab) {}
  async start(i: number): Promise<void> {
    const name = this.lab.backendNames[i]!;
    const js = path.join(__dirname, '..', 'scenarios', 'lab', 'http-server.js');
    const child = this.lab.spawn(this.lab.ns.backends[i]!, [process.execPath, js, '--name', name, '--port', String(PORT), '--exit-on-stdin-eof']);
    let out = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} did not listen on ${PORT}`)), 10_000);
      child.stdout!.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('listening')) { clearTimeout(timer); resolve(); } });
    });
    this.procs.set(name, child);
  }
  signal(name: string, sig: NodeJS.Signals): void { process.kill(this.procs.get(name)!.pid!, sig); }
}

/** The time (ms) of the first logged event matching, after `after`. */
function eventAt(vg: VipgateProc, after: number, match: (r: Record<string, unknown>) => boolean): number | null {
  for (const r of vg.logRecords()) {
    const at = Date.parse(String(r.time));
    if (at >= after && match(r)) return at;
  }
  return null;
}

const can = canRunVipgateLab();
for (const mode of ['dsr', 'nat'] as const) {
  t.test(`health-driven failover live (${mode})`, { skip: can.ok ? false : can.why }, async (t) => {
    const lab = await createLab({ mode, clients: 2, backends: 3 });
    t.teardown(() => lab.teardown());
    // Probes leave from the vipgate host's own address; in nat the backends live on their own
    // subnet, so the host needs a route to it (as a deployment does: see the README).
    if (mode === 'nat') lab.exec('vg', ['ip', 'route', 'add', '10.77.1.0/24', 'dev', 'eth0']);
    const servers = new Servers(lab);
    for (let i = 0; i < 3; i++) await servers.start(i);
    const [v1, v2] = lab.addr.vips as [string, string];
    const [web1, web2, web3] = lab.backendNames as [string, string, string];
    const yaml = [
      `interface: ${lab.vipgateIf}`, `mode: ${mode}`, `vips: [${v1}, ${v2}]`,
      lab.addr.gateway ? `nat_gateway: ${lab.addr.gateway}` : '',
      `health: { type: http, path: /, interval: ${INTERVAL}ms, timeout: ${TIMEOUT}ms, rise: ${RISE}, fall: ${FALL} }`,
      'backends:',
      ...lab.backendNames.map((n, i) => `  - { name: ${n}, ip: ${lab.addr.backends[i]} }`),
      `spares: [{ name: pool, members: [${web3}] }]`,
      'services:',
      `  - { vip: ${v1}, port: ${PORT}, active: ${web1}, spares: pool, hold_down: ${HOLD_DOWN}ms }`,
      `  - { vip: ${v2}, port: ${PORT}, active: ${web2}, spares: pool, preempt: false }`,
      'announce: { count: 2, interval: 200ms }',
    ].filter(Boolean).join('\n') + '\n';
    const vg = await startVipgate(lab, yaml);
    t.teardown(() => vg.stop());
    const backends = () => vg.cliJson<{ backends: BackendView[] }>(['backends']).backends;
    await waitFor('every backend checked up', () => backends().every((b) => b.health.state === 'up'), 10_000, 200);
    const conns = (name: string) => backends().find((b) => b.name === name)!.connections;

    const c1 = new Clients(lab, 'c1', v1), c2 = new Clients(lab, 'c2', v2);
    t.teardown(() => Promise.all([c1.stop(), c2.stop()]));
    await waitFor('the clients under way', () => c1.reqs.length >= 10 && c2.reqs.length >= 10, 15_000);
    t.same(new Set(c1.between(0, Date.now()).map((r) => r.body)), new Set([web1]), `${v1} served by ${web1}`);
    t.same(new Set(c2.between(0, Date.now()).map((r) => r.body)), new Set([web2]), `${v2} served by ${web2}`);

    // ---- 1. SIGKILL web1: failover to the spare within the bound ----
    const killed = Date.now();
    servers.signal(web1, 'SIGKILL');
    const down1 = await waitFor('web1 marked down', () => eventAt(vg, killed - 50, (r) => r.event === 'health_down' && r.backend === web1));
    const firstOnSpare = await waitFor('a new connection served by the spare', () => c1.reqs.find((r) => r.s >= killed && r.ok && r.body === web3));
    const took = firstOnSpare.e - killed;
    t.ok(took <= BOUND + LOAD_ALLOWANCE, `SIGKILL: new connections succeed on the spare ${took} ms after the death (bound ${BOUND} ms + ${LOAD_ALLOWANCE} ms load allowance); marked down after ${down1 - killed} ms`);
    const web1Conns = conns(web1);
    const held = await holdConnections(lab, 'c1', v1, PORT, 4);
    t.same(await held.request(), [web3, web3, web3, web3], 'connections opened on the spare');

    // ---- 2. bring web1 back: hold-down, then fail-back; the spare's open connections keep working ----
    await servers.start(0);
    const back1 = Date.now();
    const up1 = await waitFor('web1 up again', () => eventAt(vg, back1, (r) => r.event === 'health_up' && r.backend === web1));
    const failback = await waitFor('fail-back', () => eventAt(vg, back1, (r) => r.event === 'failback' && r.service === `${v1}:${PORT}`), 10_000);
    t.ok(failback - up1 >= HOLD_DOWN - 20, `fail-back ${failback - up1} ms after web1 was up again (hold-down ${HOLD_DOWN} ms)`);
    await sleep(300);
    const during = c1.between(down1 + 50, failback);
    t.equal(during.filter((r) => !r.ok).length, 0, `${v1}: no connection failed while the spare served (${during.length} connections: ${summary(during)})`);
    t.equal(during.filter((r) => r.body === web1 && r.s < up1).length, 0, 'none went to web1 while it was down');
    t.ok(during.filter((r) => r.s > up1 + 50).every((r) => r.body === web3), 'during the hold-down new connections stay on the spare');
    const after = c1.between(failback + 50, Date.now());
    t.ok(after.length > 5 && after.every((r) => r.ok && r.body === web1), `after the hold-down new connections return to web1 (${summary(after)})`);
    t.same(await held.request(), [web3, web3, web3, web3], 'the connections open on the spare kept working through the fail-back');
    await held.close();
    t.ok(conns(web1) > web1Conns, 'web1 takes connections again');

    // ---- 3. cut web1 off (link down), then reconnect it ----
    const cut = Date.now();
    lab.exec(lab.ns.backends[0]!, ['ip', 'link', 'set', 'eth0', 'down']);
    const down3 = await waitFor('web1 down (link)', () => eventAt(vg, cut, (r) => r.event === 'health_down' && r.backend === web1));
    const spare3 = await waitFor('spare after link down', () => c1.reqs.find((r) => r.s >= cut && r.ok && r.body === web3));
    t.ok(spare3.e - cut <= BOUND + LOAD_ALLOWANCE, `link down: new connections succeed on the spare ${spare3.e - cut} ms after the cut (marked down after ${down3 - cut} ms)`);
    const cutConns = conns(web1);
    await sleep(500);
    t.equal(conns(web1), cutConns, 'no new connection to web1 once it is marked down');
    lab.exec(lab.ns.backends[0]!, ['ip', 'link', 'set', 'eth0', 'up']);
    if (mode === 'nat') {
      // Bringing eth0 down flushed b1's routes: put back its default route through vipgate.
      lab.exec(lab.ns.backends[0]!, ['ip', 'route', 'replace', 'default', 'via', lab.addr.gateway!]);
    }
    const relinked = Date.now();
    const fb3 = await waitFor('fail-back after the link is back', () => eventAt(vg, relinked, (r) => r.event === 'failback' && r.service === `${v1}:${PORT}`), 15_000);
    const between3 = c1.between(down3 + 50, fb3);
    t.equal(between3.filter((r) => !r.ok).length, 0, `link down: no connection failed while the spare served (${summary(between3)})`);

    // ---- 4. freeze web2 (SIGSTOP): failover; thaw it: preempt: false keeps the spare ----
    const frozen = Date.now();
    servers.signal(web2, 'SIGSTOP');
    const down4 = await waitFor('web2 down (frozen)', () => eventAt(vg, frozen, (r) => r.event === 'health_down' && r.backend === web2));
    const spare4 = await waitFor('spare for the frozen one', () => c2.reqs.find((r) => r.s >= frozen && r.ok && r.body === web3));
    t.ok(spare4.e - frozen <= BOUND + LOAD_ALLOWANCE, `SIGSTOP: new connections succeed on the spare ${spare4.e - frozen} ms after the freeze (marked down after ${down4 - frozen} ms)`);
    await sleep(100);
    const frozenConns = conns(web2);
    servers.signal(web2, 'SIGCONT');
    const thawed = Date.now();
    await waitFor('web2 up again', () => eventAt(vg, thawed, (r) => r.event === 'health_up' && r.backend === web2));
    await sleep(HOLD_DOWN + 500);
    const stay = c2.between(down4 + 50, Date.now());
    t.equal(stay.filter((r) => !r.ok).length, 0, `${v2}: no connection failed while the spare served (${summary(stay)})`);
    t.ok(c2.between(thawed + 300, Date.now()).every((r) => r.body === web3), 'preempt: false: web2 is up again, new connections stay on the spare');
    t.equal(conns(web2), frozenConns, 'no new connection went to web2 after it was marked down');
    const svc2 = vg.cliJson<{ services: Array<{ service: string; serving: string[]; failover: { takenOverBy: string | null } }> }>(['services'])
      .services.find((s) => s.service === `${v2}:${PORT}`)!;
    t.same(svc2.serving, [web3], 'vipgate services shows the spare serving');
    t.equal(svc2.failover.takenOverBy, web3);
    const ev = vg.cliJson<{ events: Array<{ type: string }> }>(['events']).events.map((e) => e.type);
    t.ok(['health_down', 'failover', 'health_up', 'failback_scheduled', 'failback'].every((x) => ev.includes(x)), `vipgate events lists the transitions (${[...new Set(ev)].join(', ')})`);
    const st = await vg.stop();
    t.equal(st.code, 0, 'vipgate exits cleanly');
  });
}
