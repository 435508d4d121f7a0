// The service tables control builds: active groups sharing new flows by weight, standby order,
// stable backend slots, and slots still referenced by flows never handed to a new backend.

import t from 'tap';
import { Tables, TablesSpec, PICK_SIZE, BackendStateName } from '../src/tables/services';
import { parseIpv4 } from '../src/wire/addr';
import { hash2 } from '../src/tables/hash';

const ip = (s: string) => parseIpv4(s)!;
const VIP = ip('10.0.0.10');

function spec(backends: Array<[string, number, BackendStateName?]>, active: string[], standby: string[]): TablesSpec {
  return {
    mac: new Uint8Array([2, 0, 0, 0, 0, 1]), mode: 'dsr', vips: [VIP],
    backends: backends.map(([name, weight, state], i) => ({ name, ip: ip(`10.0.1.${i + 1}`), mac: null, weight, state: state ?? 'up' })),
    services: [{ vip: VIP, port: 80, active, standby }],
  };
}

/** How many of `n` spread hashes each backend gets. */
function spread(tb: Tables, n: number): Record<string, number> {
  const svc = tb.serviceIndex(VIP, 80);
  const out: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const b = tb.pickBackend(svc, hash2(0x0a630001 + (i >> 10), (40000 + i) << 16 | 80, 0x51c4) >>> 8);
    const name = b < 0 ? '-' : tb.backendNames[b]!;
    out[name] = (out[name] ?? 0) + 1;
  }
  return out;
}

t.test('an active group shares new flows by weight', async (t) => {
  const tb = new Tables(spec([['a', 300], ['b', 100], ['s', 100]], ['a', 'b'], ['s']));
  const svc = tb.serviceIndex(VIP, 80);
  const entries = Array.from(tb.svcPick.subarray(svc * PICK_SIZE, (svc + 1) * PICK_SIZE));
  t.equal(entries.filter((x) => x === tb.backendSlot('a')).length, 192, 'a: 3/4 of the pick table');
  t.equal(entries.filter((x) => x === tb.backendSlot('b')).length, 64, 'b: 1/4');
  // Interleaved, not in runs: any 8 consecutive entries hold both.
  for (let i = 0; i + 8 <= PICK_SIZE; i += 8) t.ok(new Set(entries.slice(i, i + 8)).size === 2, `entries ${i}..${i + 7} mix a and b`);
  const s = spread(tb, 40_000);
  t.ok(Math.abs(s.a! / 40_000 - 0.75) < 0.02, `a gets ~75% of real hashes (${s.a})`);
  t.ok(Math.abs(s.b! / 40_000 - 0.25) < 0.02, `b gets ~25% (${s.b})`);
  t.notOk(s.s, 'the standby gets none');
  t.same(tb.serving(svc).map((x) => tb.backendNames[x]).sort(), ['a', 'b']);
});

t.test('failover: down or zero-weight members leave the group; standbys in order; weight 0 only as a last resort', async (t) => {
  const oneDown = new Tables(spec([['a', 100, 'down'], ['b', 100], ['s', 100]], ['a', 'b'], ['s']));
  t.same(spread(oneDown, 1000), { b: 1000 }, 'a down: b takes every new flow');
  const allDown = new Tables(spec([['a', 100, 'drain'], ['b', 100, 'down'], ['s1', 100, 'down'], ['s2', 100]], ['a', 'b'], ['s1', 's2']));
  t.same(spread(allDown, 1000), { s2: 1000 }, 'group gone: the first up standby');
  const zero = new Tables(spec([['a', 0], ['s', 100]], ['a'], ['s']));
  t.same(spread(zero, 1000), { s: 1000 }, 'a weight-0 active yields to an up standby');
  const onlyZero = new Tables(spec([['a', 0], ['s', 100, 'down']], ['a'], ['s']));
  t.same(spread(onlyZero, 1000), { a: 1000 }, 'but takes flows when nothing else is usable');
  const none = new Tables(spec([['a', 100, 'down']], ['a'], []));
  t.same(spread(none, 10), { '-': 10 }, 'nothing up: -1 (the packet path drops no_backend)');
  t.same(none.serving(none.serviceIndex(VIP, 80)), []);
});

t.test('backend slots are stable; a slot still holding flows is not reused', async (t) => {
  const first = new Tables(spec([['a', 100], ['b', 100]], ['a'], ['b']));
  t.same(first.newSlots, [0, 1]);
  const sa = first.backendSlot('a');
  const next = new Tables(spec([['b', 100], ['c', 100]], ['c'], ['b']), first, (slot) => slot === sa);
  t.equal(next.backendSlot('b'), first.backendSlot('b'), 'b keeps its slot');
  t.not(next.backendSlot('c'), sa, 'c does not take the slot a\'s flows still point at');
  t.same(next.newSlots, [next.backendSlot('c')]);
  t.equal(next.bState[sa], 0, 'a\'s slot is absent now');
  const free = new Tables(spec([['b', 100], ['c', 100]], ['c'], ['b']), first);
  t.equal(free.backendSlot('c'), sa, 'once a\'s flows are gone its slot is reused');
});

t.test('health is kept apart from admin state: a DOWN backend takes no new flows, UNKNOWN does', async (t) => {
  const base = spec([['a', 100], ['b', 100], ['s', 100]], ['a', 'b'], ['s']);
  const withHealth = (h: Record<string, 'unknown' | 'up' | 'down'>, checked: Record<string, boolean> = {}): Tables =>
    new Tables({ ...base, backends: base.backends.map((b) => ({ ...b, health: h[b.name] ?? 'unknown', checked: checked[b.name] ?? true })) });
  t.same(Object.keys(spread(withHealth({}), 4000)).sort(), ['a', 'b'], 'unknown health: the active group serves (a fresh start serves at once)');
  t.same(Object.keys(spread(withHealth({ a: 'down' }), 4000)), ['b'], 'a down: b takes every new flow');
  t.same(Object.keys(spread(withHealth({ a: 'down', b: 'down' }), 4000)), ['s'], 'both active down: the standby');
  t.same(Object.keys(spread(withHealth({ a: 'down', b: 'down', s: 'down' }), 400)), ['-'], 'all down: no backend');
  const unchecked = withHealth({ a: 'down' }, { a: false });
  t.equal(unchecked.bHealth[unchecked.backendSlot('a')], 1, 'health: false is always up, whatever the spec says');
  t.equal(unchecked.bChecked[unchecked.backendSlot('a')], 0, 'and never checked');
  const tb = withHealth({ a: 'down' });
  t.equal(tb.bState[tb.backendSlot('a')], 1, 'the admin state stays up');
  t.equal(tb.svcOnDown[tb.serviceIndex(VIP, 80)], 0, 'on_backend_down defaults to reset');
  t.equal(tb.synCheckMaxAgeMs, 0, 'no SYN-time check unless asked');
  const sc = new Tables({ ...base, services: base.services.map((s) => ({ ...s, onBackendDown: 'keep' as const })), synCheck: { maxAgeMs: 2000, onFail: 'reset' } });
  t.equal(sc.svcOnDown[sc.serviceIndex(VIP, 80)], 1, 'keep');
  t.equal(sc.synCheckMaxAgeMs, 2000);
  t.equal(sc.synCheckOnFail, 1, 'on_fail reset');
});
