// Dead detection (src/control/cluster/membership.ts) with a fake clock: a peer is declared dead
// exactly when its silence passes the effective timeout; jitter and loss raise that timeout and it
// decays again; an outage does not inflate it; it is capped; restarts are seen even without a
// death; rejected input changes nothing; and on a jittery, lossy link (seeded) the adaptive
// timeout makes no false takeover where a fixed dead_after would.

import t from 'tap';
import {
  initMembership, step, effectiveTimeout, nextDeadline, longestGap, GAP_HISTORY, MAX_TIMEOUT_FACTOR,
  type MembershipState, type Transition,
} from '../src/control/cluster/membership';
import type { DecodedHeartbeat } from '../src/control/cluster/wire';
import { mulberry32 } from './helpers/prng';

const HB_MS = 100, DEAD_MS = 400;
const INC = 1_700_000_000_000;

function hb(o: Partial<DecodedHeartbeat> = {}): DecodedHeartbeat {
  return {
    load: { flows: 10, capacity: 1000, pps: 5, cpu: 0.1 }, owned: [], ownedIps: [], synced: true,
    history: { startedAt: INC, takeovers: 0, peerRestartsSeen: 0 }, down: [], downIps: [], sent: 0, ...o,
  };
}

/** A small driver: the state and every transition so far. */
class Sim {
  s: MembershipState;
  log: Transition[] = [];
  constructor(peers = 3, self = 0, now = 0) { this.s = initMembership({ peers, self, heartbeatMs: HB_MS, deadAfterMs: DEAD_MS }, now); }
  beat(from: number, now: number, incarnation = INC, h = hb()): Transition[] {
    const r = step(this.s, { type: 'heartbeat', from, incarnation, heartbeat: h }, now);
    this.s = r.state; this.log.push(...r.transitions);
    return r.transitions;
  }
  tick(now: number): Transition[] {
    const r = step(this.s, { type: 'tick' }, now);
    this.s = r.state; this.log.push(...r.transitions);
    return r.transitions;
  }
  peer(i: number) { return this.s.peers[i]!; }
}

t.test('unknown until the first heartbeat, then alive; unknown is never declared dead', async (t) => {
  const m = new Sim();
  t.same(m.s.peers.map((p) => p.status), ['alive', 'unknown', 'unknown'], 'self alive, peers unknown');
  t.same(m.tick(60_000), [], 'a peer never heard from does not die');
  const tr = m.beat(1, 60_010);
  t.same(tr, [{ peer: 1, kind: 'alive', from: 'unknown', at: 60_010, silentMs: null, timeoutMs: DEAD_MS }]);
  t.equal(m.peer(1).since, 60_010);
  t.same(m.peer(1).heartbeat, hb(), 'its heartbeat is kept');
});

t.test('declared dead exactly when the silence passes the effective timeout', async (t) => {
  const m = new Sim();
  for (let now = 0; now <= 1000; now += HB_MS) m.beat(1, now);
  t.equal(m.peer(1).effectiveTimeoutMs, DEAD_MS, 'regular 100 ms gaps: 1.5 x 100 + 100 = 250 < dead_after, so dead_after');
  t.equal(nextDeadline(m.s), 1000 + DEAD_MS + 1);
  t.same(m.tick(1000 + DEAD_MS), [], 'silent for exactly dead_after: still alive');
  t.equal(m.peer(1).status, 'alive');
  const tr = m.tick(1000 + DEAD_MS + 1);
  t.same(tr, [{ peer: 1, kind: 'dead', from: 'alive', at: 1401, silentMs: 401, timeoutMs: DEAD_MS }], 'one ms later: dead');
  t.same(m.tick(5000), [], 'declared once');
  t.equal(m.peer(1).deaths, 1);
  t.equal(nextDeadline(m.s), null, 'no deadline for a dead peer');
  const back = m.beat(1, 6000);
  t.same(back.map((x) => x.kind), ['alive'], 'back: alive again');
  t.equal(m.peer(1).outages, 1, 'the 4.6 s silence counted as an outage');
  t.equal(m.peer(1).effectiveTimeoutMs, DEAD_MS, '... and not fed into the timeout');
  t.equal(longestGap(m.peer(1)), HB_MS);
});

t.test('jitter and loss raise the effective timeout; it decays as they leave the last 100', async (t) => {
  const m = new Sim();
  let now = 0;
  for (let i = 0; i < 20; i++) m.beat(1, (now += HB_MS));
  now += 3 * HB_MS; // two heartbeats lost: a 300 ms gap
  m.beat(1, now);
  t.equal(m.peer(1).effectiveTimeoutMs, 1.5 * 300 + HB_MS, 'two lost: 1.5 x 300 + 100 = 550 ms');
  now += 400; // then a 400 ms gap: within the 550 of the moment, fed
  m.beat(1, now);
  t.equal(m.peer(1).effectiveTimeoutMs, 700);
  t.same(m.tick(now + 700), [], 'silent 700 ms: a busy segment can explain it');
  t.equal(m.tick(now + 701)[0]?.kind, 'dead');
  m.beat(1, (now += 701));
  for (let i = 0; i < GAP_HISTORY - 1; i++) m.beat(1, (now += HB_MS));
  t.equal(m.peer(1).effectiveTimeoutMs, 700, 'the 400 ms gap is still among the last 100');
  m.beat(1, (now += HB_MS));
  t.equal(m.peer(1).effectiveTimeoutMs, DEAD_MS, '100 regular heartbeats later it has decayed back to dead_after');
  t.equal(m.peer(1).gaps.length, GAP_HISTORY);
});

t.test('an outage does not inflate the timeout; the timeout is capped at 10 x dead_after', async (t) => {
  const m = new Sim();
  let now = 0;
  m.beat(1, now);
  m.beat(1, (now += HB_MS));
  // No tick ran during a long silence (a stalled event loop): the gap is still a failure.
  m.beat(1, (now += 5000));
  t.equal(m.peer(1).effectiveTimeoutMs, DEAD_MS, 'a 5 s gap longer than the timeout of the moment is not fed back');
  t.equal(m.peer(1).outages, 1);
  t.same(m.log.map((x) => x.kind), ['alive'], 'and no death was invented after the fact');
  // Gaps that each just fit the timeout of the moment ratchet it up, but never past the cap.
  let timeout = m.peer(1).effectiveTimeoutMs;
  for (let i = 0; i < 20; i++) {
    m.beat(1, (now += timeout));
    timeout = m.peer(1).effectiveTimeoutMs;
  }
  t.equal(timeout, MAX_TIMEOUT_FACTOR * DEAD_MS, 'capped at 4 s');
  t.equal(effectiveTimeout([], HB_MS, DEAD_MS), DEAD_MS);
  t.equal(effectiveTimeout([1e9], HB_MS, DEAD_MS), 4000);
  t.equal(effectiveTimeout([301], HB_MS, DEAD_MS), 552, 'rounded up to whole ms');
});

t.test('restarts: a new incarnation is seen even without a death; an older one is ignored', async (t) => {
  const m = new Sim();
  let now = 0;
  for (let i = 0; i < 5; i++) m.beat(1, (now += HB_MS), INC, hb({ owned: ['10.0.0.100'], ownedIps: [0x0a000064] }));
  const tr = m.beat(1, (now += 150), INC + 10_000, hb({ synced: false }));
  t.same(tr, [{ peer: 1, kind: 'restarted', from: 'alive', at: now, silentMs: null, timeoutMs: DEAD_MS }], 'restarted within the timeout: one transition, still alive');
  t.equal(m.peer(1).restarts, 1);
  t.equal(m.peer(1).incarnation, INC + 10_000);
  t.same(m.peer(1).heartbeat!.ownedIps, [], 'its claims are the new incarnation\'s');
  t.equal(m.peer(1).outages, 1, 'the gap over a restart is not jitter');
  const frozen = m.s;
  const r = step(frozen, { type: 'heartbeat', from: 1, incarnation: INC, heartbeat: hb() }, now + 10);
  t.equal(r.state, frozen, 'a heartbeat of the old incarnation changes nothing');
  t.same(r.transitions, []);
  m.tick(now + 1000);
  t.equal(m.peer(1).status, 'dead');
  const back = m.beat(1, now + 2000, INC + 20_000);
  t.same(back.map((x) => [x.kind, x.from]), [['restarted', 'dead'], ['alive', 'dead']], 'restarted after a death: both');
  t.equal(m.peer(1).restarts, 2);
});

t.test('pure: the input state is never changed; self and unknown ranks are refused', async (t) => {
  const m = new Sim();
  m.beat(1, 0);
  m.beat(2, 0);
  const before = JSON.stringify(m.s);
  const s0 = m.s;
  step(s0, { type: 'heartbeat', from: 1, incarnation: INC, heartbeat: hb() }, 100);
  step(s0, { type: 'tick' }, 10_000);
  t.equal(JSON.stringify(s0), before, 'heartbeat and tick left the old state as it was');
  t.equal(step(s0, { type: 'heartbeat', from: 0, incarnation: INC, heartbeat: hb() }, 50).state, s0, 'a heartbeat "from" self');
  t.equal(step(s0, { type: 'heartbeat', from: 7, incarnation: INC, heartbeat: hb() }, 50).state, s0, 'an unknown rank');
  const after = step(s0, { type: 'heartbeat', from: 1, incarnation: INC, heartbeat: hb() }, 100).state;
  t.equal(after.peers[2], s0.peers[2], 'unchanged peers are shared, not copied');
  t.equal(step(s0, { type: 'tick' }, 200).state, s0, 'a tick that changes nothing returns the same state');
});

t.test('a jittery, lossy segment (seeded): no false death with the adaptive timeout', async (t) => {
  // 10 minutes of heartbeats every 100 ms; each is lost with p = 0.1 and otherwise delayed
  // 0..60 ms, with a burst of queueing (up to 250 ms) on 2 % of them: a busy segment.
  const rnd = mulberry32(0x5e9);
  const adaptive = new Sim(2, 0);
  let fixedDeaths = 0, lastFixed = 0;
  const arrivals: number[] = [];
  for (let sent = 0; sent < 600_000; sent += HB_MS) {
    if (rnd() < 0.1) continue;
    arrivals.push(sent + (rnd() < 0.02 ? 100 + rnd() * 150 : rnd() * 60));
  }
  arrivals.sort((a, b) => a - b);
  let maxTimeout = 0;
  for (const at of arrivals) {
    const now = Math.round(at);
    // Ticks every 10 ms up to this arrival: the runtime's timer.
    for (let tk = Math.ceil(lastFixed / 10) * 10; tk < now; tk += 10) adaptive.tick(tk);
    if (lastFixed && now - lastFixed > DEAD_MS) fixedDeaths++;
    lastFixed = now;
    adaptive.beat(1, now);
    maxTimeout = Math.max(maxTimeout, adaptive.peer(1).effectiveTimeoutMs);
  }
  const deaths = adaptive.log.filter((x) => x.kind === 'dead').length;
  t.equal(deaths, 0, `no false death over ${arrivals.length} heartbeats (effective timeout peaked at ${maxTimeout} ms)`);
  t.ok(fixedDeaths > 0, `a fixed 400 ms timeout would have declared ${fixedDeaths} false deaths on the same arrivals`);
  t.ok(maxTimeout <= MAX_TIMEOUT_FACTOR * DEAD_MS);
  // And a real failure is still found: silence after the last arrival.
  const last = Math.round(arrivals[arrivals.length - 1]!);
  const limit = adaptive.peer(1).effectiveTimeoutMs;
  t.same(adaptive.tick(last + limit), []);
  t.equal(adaptive.tick(last + limit + 1)[0]?.kind, 'dead', `a peer that stops is dead after ${limit} ms`);
});
