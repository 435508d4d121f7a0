// The pure state machines of health checking and failover (control/health/machine.ts), driven
// with a fake clock: rise/fall, the faster interval while changing, jitter, spare choice in
// exclusive and shared pools, preempt and hold-down, manual switch precedence.

import t from 'tap';
import {
  initialHealth, stepHealth, isChanging, nextCheckDelay, firstCheckDelay, stepServices,
  HealthState, ServiceInput, ServiceState, ServicesStep,
} from '../src/control/health/machine';
import type { ProbeResult } from '../src/control/health/types';

const OK: ProbeResult = { ok: true, latencyMs: 0.5, reason: null };
const FAIL: ProbeResult = { ok: false, latencyMs: 100, reason: 'timeout after 100 ms' };
const RULE = { rise: 2, fall: 3 };

function run(s: HealthState, results: ProbeResult[], t0: number): { s: HealthState; trans: string[] } {
  const trans: string[] = [];
  results.forEach((r, i) => {
    const x = stepHealth(s, r, t0 + i * 100, RULE);
    s = x.state;
    if (x.transition) trans.push(`${x.transition.from}->${x.transition.to}@${t0 + i * 100}`);
  });
  return { s, trans };
}

t.test('health: unknown -> up at the first good check; down after fall failures; up after rise goods', async (t) => {
  const s0 = initialHealth(1000);
  t.equal(s0.status, 'unknown');
  let r = run(s0, [OK], 1000);
  t.same(r.trans, ['unknown->up@1000'], 'one good check: up (unknown already takes flows)');
  r = run(r.s, [FAIL, FAIL], 2000);
  t.same(r.trans, [], 'two failures of fall 3: still up');
  t.equal(r.s.status, 'up');
  t.ok(isChanging(r.s), 'a failure while up: changing (checked faster)');
  r = run(r.s, [OK, FAIL, FAIL, FAIL], 3000);
  t.same(r.trans, ['up->down@3300'], 'a good check resets the run; three failures in a row: down');
  t.equal(r.s.lastReason, 'timeout after 100 ms', 'the reason is kept');
  t.equal(r.s.since, 3300);
  t.notOk(isChanging(r.s), 'settled down: the normal interval');
  r = run(r.s, [OK, FAIL, OK, OK], 4000);
  t.same(r.trans, ['down->up@4300'], 'rise 2 needs two goods in a row');
  t.equal(r.s.lastOkAt, 4300);
  t.equal(r.s.lastReason, 'timeout after 100 ms', 'the last failure stays visible after recovery');
  const fromUnknown = run(initialHealth(0), [FAIL, FAIL, FAIL], 0);
  t.same(fromUnknown.trans, ['unknown->down@200'], 'unknown -> down after fall failures');
});

t.test('schedule: the fast interval while changing, ±10% jitter, the first check spread over the interval', async (t) => {
  const c = { intervalMs: 1000, fastIntervalMs: 250 };
  const up = run(initialHealth(0), [OK], 0).s;
  t.equal(nextCheckDelay(up, c, 0.5), 1000, 'settled: the interval');
  t.equal(nextCheckDelay(up, c, 0), 900, 'jitter low end');
  t.equal(nextCheckDelay(up, c, 0.999999), 1100, 'jitter high end');
  const wobbling = run(up, [FAIL], 0).s;
  t.equal(nextCheckDelay(wobbling, c, 0.5), 250, 'changing: the fast interval');
  t.equal(nextCheckDelay(initialHealth(0), c, 0.5), 250, 'unknown: fast, to learn the state soon');
  const firsts = Array.from({ length: 100 }, (_, i) => firstCheckDelay(c, i / 100));
  t.ok(Math.min(...firsts) === 0 && Math.max(...firsts) === 990, 'first checks spread over the whole interval');
});

// ---- services ----

function svc(key: string, active: string[], standby: string[], o: Partial<ServiceInput> = {}): ServiceInput {
  return { key, active, standby, pinned: false, pool: null, preempt: true, holdDownMs: 0, ...o };
}

class Sim {
  states: ReadonlyMap<string, ServiceState> = new Map();
  down = new Set<string>();
  log: string[] = [];
  last!: ServicesStep;
  constructor(public inputs: ServiceInput[]) {}
  step(now: number, ...flip: string[]): this {
    for (const f of flip) { if (f.startsWith('-')) this.down.add(f.slice(1)); else this.down.delete(f.replace(/^\+/, '')); }
    this.last = stepServices(this.states, this.inputs, (n, s) => !this.down.has(n) && !this.down.has(`${n}@${s.key}`), now);
    this.states = this.last.states;
    for (const x of this.last.transitions) this.log.push(`${x.type} ${x.service} ${x.from.join('+') || '-'}>${x.to.join('+') || '-'}`);
    return this;
  }
  order(key: string): string { const o = this.last.orders.get(key)!; return `${o.active.join('+')}|${o.standby.join(',')}`; }
  take(): string[] { const l = this.log; this.log = []; return l; }
}

t.test('failover to the standby, then to the spare; fail-back with preempt and no hold-down', async (t) => {
  const pool = { name: 'p', exclusive: false, members: ['s1', 's2'] };
  const sim = new Sim([svc('A', ['a'], ['b'], { pool })]).step(0);
  t.equal(sim.order('A'), 'a|b,s1,s2', 'normal: active, standby, then the spares in priority order');
  t.same(sim.take(), []);
  sim.step(10, '-a');
  t.same(sim.take(), ['failover A a>b']);
  t.equal(sim.order('A'), 'b|a,s1,s2', 'b is ACT');
  sim.step(20, '-b');
  t.same(sim.take(), ['failover A b>s1'], 'no active or standby usable: the highest-priority spare');
  sim.step(30, '-s1');
  t.same(sim.take(), ['failover A s1>s2'], 'that spare dies: the next one');
  sim.step(40, '-s2');
  t.same(sim.take(), ['no_backend A s2>-']);
  sim.step(50, '+s1');
  t.same(sim.take(), ['restored A ->s1']);
  sim.step(60, '+a');
  t.same(sim.take(), ['failback A s1>a'], 'preempt, hold-down 0: new flows return at once');
  t.equal(sim.order('A'), 'a|b,s1,s2');
});

t.test('hold-down: fail-back only after the original has been back that long; a relapse cancels it', async (t) => {
  const sim = new Sim([svc('A', ['a'], ['b'], { holdDownMs: 5000 })]).step(0).step(100, '-a');
  t.same(sim.take(), ['failover A a>b']);
  sim.step(1000, '+a');
  t.same(sim.take(), ['failback_scheduled A b>a']);
  t.equal(sim.last.nextAt, 6000, 'the controller is told when to step again');
  t.equal(sim.order('A'), 'b|a', 'b keeps new flows during the hold-down; a is next in line');
  sim.step(5999);
  t.same(sim.take(), [], 'not yet');
  sim.step(6000);
  t.same(sim.take(), ['failback A b>a'], 'at the end of the hold-down');
  sim.step(7000, '-a').step(8000, '+a').step(9000, '-a');
  t.same(sim.take(), ['failover A a>b', 'failback_scheduled A b>a'], 'a flaps back and down within the hold-down');
  sim.step(14_000, '+a');
  t.same(sim.take(), ['failback_scheduled A b>a'], 'the hold-down starts again from its return');
  sim.step(18_999);
  t.same(sim.take(), []);
  sim.step(19_000);
  t.same(sim.take(), ['failback A b>a']);
});

t.test('preempt: false keeps the member that took over; when it fails, the best usable again', async (t) => {
  const sim = new Sim([svc('A', ['a'], ['b', 'c'], { preempt: false })]).step(0).step(1, '-a');
  t.same(sim.take(), ['failover A a>b']);
  sim.step(2, '+a').step(100_000);
  t.same(sim.take(), [], 'a is back but b stays ACT');
  t.equal(sim.order('A'), 'b|a,c');
  sim.step(100_001, '-b');
  t.same(sim.take(), ['failover A b>a'], 'b fails: the first usable in priority order, a');
  t.equal(sim.order('A'), 'a|b,c');
});

t.test('a recovered standby ranked above the spare takes over again (preempt) after the hold-down', async (t) => {
  const pool = { name: 'p', exclusive: false, members: ['s'] };
  const sim = new Sim([svc('A', ['a'], ['b'], { pool, holdDownMs: 100 })]).step(0, '-a', '-b');
  t.same(sim.take(), ['failover A a>s']);
  sim.step(10, '+b');
  t.same(sim.take(), ['failback_scheduled A s>b']);
  sim.step(110);
  t.same(sim.take(), ['failback A s>b']);
  t.equal(sim.order('A'), 'b|a,s');
});

t.test('a manual switch (pin) wins over preempt and hold-down; no failover events while pinned', async (t) => {
  const sim = new Sim([svc('A', ['b'], ['a'], { pinned: true, holdDownMs: 10_000 })]).step(0);
  t.equal(sim.order('A'), 'b|a', 'the pinned member first');
  sim.step(1, '-b');
  t.same(sim.take(), [], 'the pinned member failing is not a failover of the machine (the tables still fall through to a)');
  t.equal(sim.order('A'), 'b|a');
  sim.step(2, '-a');
  t.same(sim.take(), ['no_backend A b>-'], 'but nothing usable is reported');
  sim.inputs = [svc('A', ['a'], ['b'], { holdDownMs: 10_000 })];
  sim.step(3, '+a', '+b');
  t.same(sim.take(), ['restored A ->a'], 'switch --auto: priority order at once, no hold-down');
});

t.test('exclusive pool: a spare serves one service at a time, keeps it, and the next service gets the next spare', async (t) => {
  const pool = { name: 'p', exclusive: true, members: ['s1', 's2'] };
  const sim = new Sim([svc('A', ['a'], [], { pool }), svc('B', ['b'], [], { pool }), svc('C', ['c'], [], { pool })]).step(0);
  t.equal(sim.order('A'), 'a|s1,s2', 'unused spares are listed for every service of the pool');
  sim.step(1, '-b');
  t.same(sim.take(), ['failover B b>s1']);
  t.equal(sim.order('A'), 'a|s2', 'A may no longer fall to s1: B has it');
  sim.step(2, '-a');
  t.same(sim.take(), ['failover A a>s2'], 'A gets the next free spare');
  t.equal(sim.order('B'), 's1|b', 'B keeps s1 even though A comes first in order');
  sim.step(3, '-c');
  t.same(sim.take(), ['no_backend C c>-'], 'no free spare left for C');
  sim.step(4, '+b');
  t.same(sim.take(), ['failback B s1>b', 'restored C ->s1'], 'B returns s1 to the pool; C takes it in the same step (A stays on s2: no churn between healthy spares)');
  t.equal(sim.order('C'), 's1|c');
});

t.test('shared pool: one spare serves several services at once', async (t) => {
  const pool = { name: 'p', exclusive: false, members: ['s1'] };
  const sim = new Sim([svc('A', ['a'], [], { pool }), svc('B', ['b'], [], { pool })]).step(0, '-a', '-b');
  t.same(sim.take(), ['failover A a>s1', 'failover B b>s1']);
  t.equal(sim.order('A'), 's1|a');
  t.equal(sim.order('B'), 's1|b');
});

t.test('an active group: failover only when every member is unusable; weights stay with the group', async (t) => {
  const sim = new Sim([svc('A', ['a1', 'a2'], ['b'])]).step(0, '-a1');
  t.same(sim.take(), [], 'a2 still serves');
  t.equal(sim.order('A'), 'a1+a2|b', 'the tables skip a1 by its health');
  sim.step(1, '-a2');
  t.same(sim.take(), ['failover A a1+a2>b']);
  sim.step(2, '+a2');
  t.same(sim.take(), ['failback A b>a2']);
  t.equal(sim.order('A'), 'a1+a2|b');
});

t.test('usable per service: a backend down for one service (its port\'s check) still serves another', async (t) => {
  const sim = new Sim([svc('A', ['a'], ['b']), svc('B', ['a'], ['c'])]).step(0, '-a@A');
  t.same(sim.take(), ['failover A a>b'], 'A fails over');
  t.equal(sim.order('B'), 'a|c', 'B keeps a');
});

t.test('a spare that is also a member of the service is not listed twice', async (t) => {
  const sim = new Sim([svc('A', ['a'], ['s1'], { pool: { name: 'p', exclusive: false, members: ['s1', 's2'] } })]).step(0);
  t.equal(sim.order('A'), 'a|s1,s2');
});
