// The ownership rule (src/control/cluster/ownership.ts): a table of situations (priority, prefer,
// least_loaded, room, sticky without preempt, preempt waiting for synced, the nat gateway),
// split brain (two claimants resolve to one answer, listed by conflicts()), and a seeded property
// test: every live node, computing from its own seat with the same facts, gets the same owners.

import t from 'tap';
import { owners, conflicts, eligible, ROOM_FRACTION, type NodeView, type OwnershipInput } from '../src/control/cluster/ownership';
import { initMembership, step, type MembershipState } from '../src/control/cluster/membership';
import type { VipPlacement } from '../src/control/config/cluster';
import type { DecodedHeartbeat } from '../src/control/cluster/wire';
import { mulberry32 } from './helpers/prng';

const V1 = 0x0a000064, V2 = 0x0a000065, V3 = 0x0a000066, GW = 0x0a000101;
const NAMES = ['lb-a', 'lb-b', 'lb-c'];

interface Fact { alive?: boolean; synced?: boolean; flows?: number; capacity?: number; owned?: number[] }

/** Input from node `self`'s seat: facts per node in priority order; placements name nodes (NAMES, or n0..). */
function input(self: number, facts: Fact[], o: { preempt?: boolean; placement?: Array<[number, VipPlacement]>; vips?: number[]; gw?: number | null; names?: string[] } = {}): OwnershipInput {
  const names = o.names ?? NAMES;
  const nodes: NodeView[] = facts.map((f) => ({
    alive: f.alive ?? true, synced: f.synced ?? true, flows: f.flows ?? 0, capacity: f.capacity ?? 1000, claims: f.owned ?? [],
  }));
  const place = new Map(o.placement ?? []);
  const vips = (o.vips ?? [V1, V2, V3]).map((ip) => {
    const p = place.get(ip);
    return { ip, prefer: p?.prefer ? names.indexOf(p.prefer) : -1, placement: p?.placement ?? 'priority' as const };
  });
  // The nat gateway: the default rule, as the runtime lists it.
  if (o.gw !== undefined && o.gw !== null) vips.push({ ip: o.gw, prefer: -1, placement: 'priority' });
  return { self, nodes, vips, preempt: o.preempt ?? true };
}
const own = (i: OwnershipInput) => Object.fromEntries([...owners(i)].map(([v, n]) => [(v & 0xff).toString(), n]));

t.test('the rule, situation by situation', async (t) => {
  const prefB: Array<[number, VipPlacement]> = [[V2, { prefer: 'lb-b', placement: 'priority' }]];
  const ll: Array<[number, VipPlacement]> = [[V3, { prefer: null, placement: 'least_loaded' }]];
  const cases: Array<[string, OwnershipInput, Record<string, number>]> = [
    ['all alive and synced: the highest priority', input(1, [{}, {}, {}]), { 100: 0, 101: 0, 102: 0 }],
    ['the first dead: the next in priority', input(1, [{ alive: false }, {}, {}]), { 100: 1, 101: 1, 102: 1 }],
    ['self is alive whatever its flag says', input(0, [{ alive: false }, { alive: false }, { alive: false }]), { 100: 0, 101: 0, 102: 0 }],
    ['a node that has not said it is synced is not eligible', input(0, [{}, { synced: false }, {}], { placement: [[V1, { prefer: 'lb-b', placement: 'priority' }]] }), { 100: 0, 101: 0, 102: 0 }],
    ['prefer: the preferred node while eligible', input(0, [{}, {}, {}], { placement: prefB }), { 100: 0, 101: 1, 102: 0 }],
    ['prefer: dead, so priority', input(0, [{}, { alive: false }, {}], { placement: prefB }), { 100: 0, 101: 0, 102: 0 }],
    ['least_loaded: the fewest flows', input(0, [{ flows: 500 }, { flows: 100 }, { flows: 300 }], { placement: ll }), { 100: 0, 101: 0, 102: 1 }],
    ['least_loaded: ties go by priority', input(0, [{ flows: 300 }, { flows: 100 }, { flows: 100 }], { placement: ll }), { 100: 0, 101: 0, 102: 1 }],
    ['room: a node at 90 % takes nothing new', input(1, [{ flows: ROOM_FRACTION * 1000 }, {}, {}]), { 100: 1, 101: 1, 102: 1 }],
    ['room: just under 90 % still has room', input(1, [{ flows: ROOM_FRACTION * 1000 - 1 }, {}, {}]), { 100: 0, 101: 0, 102: 0 }],
    ['room: when no node has room, room is ignored', input(1, [{ flows: 950 }, { flows: 990 }, { flows: 999 }]), { 100: 0, 101: 0, 102: 0 }],
    ['room: capacity 0 (no heartbeat yet) is no room', input(1, [{ capacity: 0 }, {}, {}]), { 100: 1, 101: 1, 102: 1 }],
    ['sticky (preempt off): the claimant keeps it', input(0, [{}, { owned: [V1, V2] }, {}], { preempt: false }), { 100: 1, 101: 1, 102: 0 }],
    ['sticky: several claimants, the highest priority', input(0, [{}, { owned: [V1] }, { owned: [V1] }], { preempt: false }), { 100: 1, 101: 0, 102: 0 }],
    ['sticky: a claimant without room loses it', input(0, [{}, { owned: [V1], flows: 950 }, {}], { preempt: false }), { 100: 0, 101: 0, 102: 0 }],
    ['sticky: a dead claimant loses it', input(0, [{}, { owned: [V1], alive: false }, {}], { preempt: false }), { 100: 0, 101: 0, 102: 0 }],
    ['sticky with prefer: the claimant keeps it from the preferred node', input(0, [{ owned: [V2] }, {}, {}], { preempt: false, placement: prefB }), { 100: 0, 101: 0, 102: 0 }],
    ['preempt on: the candidate wins over a claimant', input(0, [{}, { owned: [V1, V2, V3] }, {}]), { 100: 0, 101: 0, 102: 0 }],
    ['preempt waits for synced: the returning node is not eligible yet', input(0, [{ synced: false }, { owned: [V1, V2, V3] }, {}]), { 100: 1, 101: 1, 102: 1 }],
    ['no alive node synced (a cold start of all): nobody owns yet', input(2, [{ synced: false }, { synced: false }, { synced: false }]), { 100: -1, 101: -1, 102: -1 }],
    ['alone and not yet synced (still discovering): nobody', input(0, [{ synced: false }, { alive: false }, { alive: false }]), { 100: -1, 101: -1, 102: -1 }],
    ['the only synced node takes them, whatever its priority', input(0, [{ synced: false }, { synced: false }, {}]), { 100: 2, 101: 2, 102: 2 }],
    ['least_loaded is sticky even with preempt on', input(0, [{ flows: 0 }, { flows: 10 }, { flows: 900 - 1, owned: [V3] }], { placement: ll }), { 100: 0, 101: 0, 102: 2 }],
    ['the nat gateway: default rule, moves with the VIPs', input(1, [{ alive: false }, {}, {}], { gw: GW }), { 100: 1, 101: 1, 102: 1, 1: 1 }],
    ['the nat gateway ignores placements of VIPs', input(0, [{}, {}, {}], { gw: GW, placement: prefB }), { 100: 0, 101: 1, 102: 0, 1: 0 }],
  ];
  for (const [what, i, want] of cases) t.same(own(i), want, what);
  t.same(owners({ self: 0, nodes: [], vips: [{ ip: V1, prefer: -1, placement: 'priority' }], preempt: true }), new Map([[V1, -1]]), 'no node at all: -1');
  t.same(eligible(input(0, [{ synced: false }, {}, { alive: false }])), [1], 'eligible: alive, synced, with room');
});

t.test('fail-back with preempt: the node that comes back takes its VIPs only once synced', async (t) => {
  // lb-a (priority 1) died; lb-b took everything. lb-a returns; computed from lb-b's seat.
  const seq: Array<[string, Fact, Record<string, number>]> = [
    ['lb-a dead', { alive: false }, { 100: 1, 101: 1, 102: 1 }],
    ['lb-a alive, catching up', { alive: true, synced: false }, { 100: 1, 101: 1, 102: 1 }],
    ['lb-a synced: it takes them back', { alive: true, synced: true }, { 100: 0, 101: 0, 102: 0 }],
  ];
  for (const [what, a, want] of seq) t.same(own(input(1, [a, { owned: [V1, V2, V3] }, {}])), want, what);
  t.same(own(input(1, [{}, { owned: [V1, V2, V3] }, {}], { preempt: false })), { 100: 1, 101: 1, 102: 1 }, 'preempt off: they stay on lb-b');
});

t.test('split brain: two claimants resolve to one answer on both, and are listed', async (t) => {
  // A partition healed: lb-a and lb-c both answer V1 (and lb-c also V2).
  const facts: Fact[] = [{ owned: [V1, V3] }, { alive: true }, { owned: [V1, V2] }];
  for (const preempt of [true, false]) {
    const fromA = input(0, facts, { preempt }), fromC = input(2, facts, { preempt });
    t.same(owners(fromA), owners(fromC), `preempt ${preempt}: the same owners computed on lb-a and on lb-c`);
    t.equal(owners(fromA).get(V1), 0, `preempt ${preempt}: V1 to lb-a (candidate, or the highest-priority claimant)`);
    t.same(conflicts(fromA), [{ ip: V1, claimants: [0, 2], owner: 0 }], 'conflicts lists V1 with both claimants');
    t.same(conflicts(fromC), conflicts(fromA));
  }
  t.equal(owners(input(0, facts, { preempt: false })).get(V2), 2, 'preempt off: lb-c keeps V2, claimed by it alone');
  t.equal(owners(input(0, facts, { preempt: true })).get(V2), 0, 'preempt on: V2 to lb-a');
  t.same(conflicts(input(0, [{ owned: [V1] }, { alive: false, owned: [V1] }, {}])), [], 'a dead node\'s stale claim is no conflict');
});

t.test('property (seeded): every live node computes the same owners from the same facts', async (t) => {
  const rnd = mulberry32(0x0c1a);
  const vips = Array.from({ length: 12 }, (_, i) => 0x0a000100 + i);
  let checked = 0;
  for (let round = 0; round < 2000; round++) {
    const n = 2 + Math.floor(rnd() * 4);
    const facts: Fact[] = Array.from({ length: n }, () => ({
      alive: rnd() < 0.8, synced: rnd() < 0.8, capacity: rnd() < 0.1 ? 0 : 1000, flows: Math.floor(rnd() * 1000),
      owned: vips.filter(() => rnd() < 0.2),
    }));
    const placement: Array<[number, VipPlacement]> = vips.filter(() => rnd() < 0.4).map((v) => [v, {
      prefer: rnd() < 0.5 ? `n${Math.floor(rnd() * (n + 1))}` : null, placement: rnd() < 0.5 ? 'least_loaded' : 'priority',
    }]);
    const names = Array.from({ length: n }, (_, i) => `n${i}`);
    const preempt = rnd() < 0.5;
    const seats = facts.map((_, i) => i).filter((i) => facts[i]!.alive);
    const answers = seats.map((self) => JSON.stringify([...owners(input(self, facts, { preempt, placement, vips, gw: GW, names }))]));
    if (seats.length > 1) checked++;
    if (new Set(answers).size > 1) { t.fail(`round ${round}: seats disagree: ${answers.join(' | ')}`); break; }
  }
  t.ok(checked > 1000, `${checked} situations with 2 or more live nodes agreed`);
});

/** What node.ts does: this node's own view, peers from membership (their last heartbeat). */
function fromMembership(m: MembershipState, self: NodeView, ips: number[]): OwnershipInput {
  const nodes = m.peers.map((p, i): NodeView => i === m.self ? self : {
    alive: p.status === 'alive', synced: p.heartbeat?.synced ?? false, flows: p.heartbeat?.load.flows ?? 0,
    capacity: p.heartbeat?.load.capacity ?? 0, claims: p.heartbeat?.ownedIps ?? [],
  });
  return { self: m.self, preempt: true, nodes, vips: ips.map((ip) => ({ ip, prefer: -1, placement: 'priority' })) };
}

t.test('a timeline from lb-b\'s seat (fake clock): lb-a dies, lb-b takes over at the death tick, lb-a returns and takes back once synced', async (t) => {
  const hbOf = (synced: boolean, owned: number[]): DecodedHeartbeat => ({
    load: { flows: 5, capacity: 1000, pps: 0, cpu: 0 }, owned: owned.map(String), ownedIps: owned, synced,
    history: { startedAt: 1, takeovers: 0, peerRestartsSeen: 0 }, down: [], downIps: [], sent: 0,
  });
  let m = initMembership({ peers: 3, self: 1, heartbeatMs: 100, deadAfterMs: 400 }, 0);
  let mine = new Set<number>();
  const log: string[] = [];
  const decide = (now: number) => {
    const inp = fromMembership(m, { alive: true, synced: true, flows: 5, capacity: 1000, claims: [...mine] }, [V1, V2, GW]);
    const next = new Set([...owners(inp)].filter(([, n]) => n === 1).map(([v]) => v));
    const changed = [...next].some((v) => !mine.has(v)) || [...mine].some((v) => !next.has(v));
    if (changed) log.push(`${now}: lb-b owns ${[...next].map((v) => v & 0xff).sort((a, b) => a - b).join(',') || 'nothing'}`);
    mine = next;
  };
  const feed = (ev: Parameters<typeof step>[1], now: number) => { m = step(m, ev, now).state; decide(now); };
  let now = 0;
  for (; now <= 1000; now += 100) {
    feed({ type: 'heartbeat', from: 0, incarnation: 1, heartbeat: hbOf(true, [V1, V2, GW]) }, now);
    feed({ type: 'heartbeat', from: 2, incarnation: 1, heartbeat: hbOf(true, []) }, now);
    feed({ type: 'tick' }, now);
  }
  // lb-a's last heartbeat was at 1000. Ticks every 10 ms; lb-c keeps beating.
  for (now = 1010; now <= 1600; now += 10) {
    if (now % 100 === 0) feed({ type: 'heartbeat', from: 2, incarnation: 1, heartbeat: hbOf(true, []) }, now);
    feed({ type: 'tick' }, now);
  }
  // lb-a restarts: unsynced for 300 ms (its snapshot), then synced.
  for (now = 2000; now <= 2600; now += 100) {
    feed({ type: 'heartbeat', from: 0, incarnation: 2, heartbeat: hbOf(now >= 2300, []) }, now);
    feed({ type: 'heartbeat', from: 2, incarnation: 1, heartbeat: hbOf(true, []) }, now);
  }
  t.same(log, ['1410: lb-b owns 1,100,101', '2300: lb-b owns nothing'],
    'takeover at the first tick past 400 ms of silence (with the gateway); hand-back only when lb-a says synced');
});
