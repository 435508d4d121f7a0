// Catching up before owning anything (src/control/cluster/join.ts), on a fake clock: a node
// alone becomes synced once discovery is over; with peers, once each live peer's snapshot has
// arrived whole and the import ring is empty; short or late snapshots are asked for again, then
// given up on; a peer that dies is not waited for; once synced, nothing changes it.

import t from 'tap';
import { initialJoin, stepJoin, type JoinState, type JoinEvent } from '../src/control/cluster/join';

const O = { discoverMs: 400, snapshotTimeoutMs: 5000, attempts: 3 };

function run(s: JoinState, evs: Array<[JoinEvent, number]>): { s: JoinState; requests: Array<[number, number]>; became: number | null } {
  const requests: Array<[number, number]> = [];
  let became: number | null = null;
  for (const [e, now] of evs) {
    const r = stepJoin(s, e, now, O);
    s = r.state;
    for (const i of r.request) requests.push([i, now]);
    if (r.became && became === null) became = now;
  }
  return { s, requests, became };
}

const tick = (alive: number[], importPending = 0): JoinEvent => ({ t: 'tick', alive, importPending });

t.test('alone: synced once discovery is over, not before', async (t) => {
  const r = run(initialJoin(3, 1000), [[tick([]), 1010], [tick([]), 1399], [tick([]), 1400]]);
  t.equal(r.became, 1400, 'synced at start + discoverMs');
  t.equal(r.s.how, 'alone');
  t.same(r.requests, []);
});

t.test('one peer heard and answered early: still waits out discovery for the others', async (t) => {
  const r = run(initialJoin(3, 0), [[{ t: 'alive', peer: 2 }, 20], [{ t: 'end', peer: 2, count: 0 }, 25], [tick([2]), 30], [{ t: 'alive', peer: 1 }, 120], [tick([1, 2]), 400]]);
  t.same(r.requests, [[2, 20], [1, 120]], 'the late peer is asked too');
  t.equal(r.became, null, 'not synced while the late one has not answered');
});

t.test('with peers: one request each, synced when every END is matched by its records and the ring is drained', async (t) => {
  const r = run(initialJoin(3, 0), [
    [{ t: 'alive', peer: 1 }, 100], [{ t: 'alive', peer: 2 }, 110],
    [{ t: 'records', peer: 1, count: 55 }, 120], [{ t: 'records', peer: 1, count: 10 }, 121],
    [{ t: 'end', peer: 1, count: 65 }, 122],
    [tick([1, 2]), 130],                                   // peer 2 not done yet
    [{ t: 'end', peer: 2, count: 0 }, 140],
    [tick([1, 2], 0), 399],                                // both answered, but discovery is not over
    [tick([1, 2], 65), 450],                               // records still in the import ring
    [tick([1, 2], 0), 460],
  ]);
  t.same(r.requests, [[1, 100], [2, 110]], 'a snapshot asked of each live peer once');
  t.equal(r.became, 460, 'synced only after discovery and when the ring is empty');
  t.equal(r.s.how, 'snapshots');
});

t.test('a short snapshot (a lost datagram) is asked again; after `attempts`, given up and said so', async (t) => {
  const r = run(initialJoin(2, 0), [
    [{ t: 'alive', peer: 1 }, 10],
    [{ t: 'records', peer: 1, count: 50 }, 20], [{ t: 'end', peer: 1, count: 55 }, 21],   // short: ask again
    [{ t: 'records', peer: 1, count: 54 }, 30], [{ t: 'end', peer: 1, count: 55 }, 31],   // short again
    [{ t: 'records', peer: 1, count: 1 }, 40], [{ t: 'end', peer: 1, count: 55 }, 41],    // third: still short, give up
    [tick([1]), 500],
  ]);
  t.same(r.requests.map((x) => x[0]), [1, 1, 1], 'three requests in all');
  t.equal(r.became, 500);
  t.equal(r.s.how, 'gave_up:1', 'says whose snapshot it gave up on');
});

t.test('a snapshot that never ends is asked again after the timeout', async (t) => {
  const r = run(initialJoin(2, 0), [[{ t: 'alive', peer: 1 }, 0], [tick([1]), 4999], [tick([1]), 5000], [tick([1]), 10000], [tick([1]), 15000]]);
  t.same(r.requests.map((x) => x[1]), [0, 5000, 10000], 'asked at 0, again at each timeout');
  t.equal(r.became, 15000, 'after the third timeout: given up');
});

t.test('a peer that dies while we wait is not waited for; records after END from a dead peer do nothing', async (t) => {
  const r = run(initialJoin(3, 0), [
    [{ t: 'alive', peer: 1 }, 0], [{ t: 'alive', peer: 2 }, 0],
    [{ t: 'end', peer: 2, count: 0 }, 5],
    [{ t: 'dead', peer: 1 }, 450], [tick([2]), 460],
  ]);
  t.equal(r.became, 460, 'the dead peer is not waited for');
  t.equal(r.s.how, 'snapshots');
});

t.test('a peer first heard on a tick is asked then; synced stays synced', async (t) => {
  let r = run(initialJoin(2, 0), [[tick([1]), 10]]);
  t.same(r.requests, [[1, 10]]);
  r = run(r.s, [[{ t: 'end', peer: 1, count: 0 }, 20], [tick([1]), 30], [tick([1]), 400]]);
  t.equal(r.became, 400, 'not before discovery is over, though its one peer answered at once');
  const again = stepJoin(r.s, { t: 'alive', peer: 1 }, 40, O);
  t.equal(again.state, r.s, 'nothing changes once synced');
  t.same(again.request, []);
});
