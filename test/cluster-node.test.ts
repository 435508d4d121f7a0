// The cluster runtime (src/control/cluster/node.ts) with three nodes in one process, joined by an
// in-memory datagram hub instead of UDP (so it can cut and heal links), with real timers at a
// fast heartbeat (20 ms, dead after 80 ms). It checks the wiring around the pure machines
// (membership, ownership, join, wire): who owns the VIPs at start, takeover when the owner goes
// silent, flow records from one node's journal into the others' import rings, a returning
// node that takes its VIPs back only after its snapshots, a healed partition resolved within a
// heartbeat or two, and forged and replayed datagrams refused without moving anything.
// The lab test (test/cluster-lab.test.ts) does the same with real processes, kernels and ARP.

import t from 'tap';
import { createHmac } from 'node:crypto';
import { ClusterNode, type ClusterDeps, type Transport } from '../src/control/cluster/node';
import type { ClusterConfig } from '../src/control/config/cluster';
import { createState, type StateViews } from '../src/dataplane/state';
import { parseIpv4 } from '../src/wire/addr';
import { REPL_NEW, R_CLI, FLOW_WIRE_BYTES } from '../src/shm/flow-record';
import { FS_ESTABLISHED } from '../src/dataplane/flows';
import { B_STATE, F_CLI, F_VIP, F_PORTS, F_BACKIP } from '../src/dataplane/state';

const ADDR = ['10.9.0.2', '10.9.0.3', '10.9.0.4'];
const NAMES = ['lb-a', 'lb-b', 'lb-c'];
const VIPS = [parseIpv4('10.9.0.100')!, parseIpv4('10.9.0.101')!];
const KEY = Buffer.from('0123456789abcdef0123456789abcdef');
const HB = 20, DEAD = 80;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Datagrams between the nodes; cut(a, b) drops both ways; tap sees every datagram. */
class Hub {
  private readonly handlers = new Map<string, (b: Buffer, from: { address: string; port: number }) => void>();
  private readonly cuts = new Set<string>();
  readonly seen: Array<{ from: string; to: string; buf: Buffer }> = [];
  transport(address: string): Transport {
    return {
      send: (buf, to) => {
        this.seen.push({ from: address, to, buf: Buffer.from(buf) });
        if (this.cuts.has(`${address}>${to}`)) return;
        const h = this.handlers.get(to);
        if (h) setImmediate(() => h(Buffer.from(buf), { address, port: 7411 }));
      },
      onMessage: (cb) => { this.handlers.set(address, cb); },
      close: () => { this.handlers.delete(address); },
    };
  }
  cut(a: string, b: string): void { this.cuts.add(`${a}>${b}`); this.cuts.add(`${b}>${a}`); }
  heal(): void { this.cuts.clear(); }
  inject(from: string, to: string, buf: Buffer): void { this.handlers.get(to)?.(buf, { address: from, port: 7411 }); }
}

function cfg(self: number, preempt = true): ClusterConfig {
  return {
    node: NAMES[self]!, self, keyFile: null, heartbeatMs: HB, deadAfterMs: DEAD, preempt, port: 7411,
    peers: NAMES.map((name, i) => ({ name, address: parseIpv4(ADDR[i]!)! | 0, addressText: ADDR[i]! })),
  };
}

interface Rig { node: ClusterNode; state: StateViews; owned: number[]; garps: number; applied: number }

async function startNode(hub: Hub, self: number, o: { preempt?: boolean; state?: StateViews } = {}): Promise<Rig> {
  const state = o.state ?? createState({ flowCapacity: 1024, neighbourCapacity: 64, halfOpenTimeoutMs: 15_000, establishedTimeoutMs: 900_000, closingTimeoutMs: 30_000, neighbourTtlMs: 60_000, seed: 1 });
  const rig: Rig = { node: null as unknown as ClusterNode, state, owned: [], garps: 0, applied: 0 };
  const deps: ClusterDeps = {
    cfg: cfg(self, o.preempt ?? true), key: KEY, state, journal: state.journal, imports: state.imports,
    addresses: () => VIPS, natGateway: null, placement: () => new Map(), down: () => [], workerPid: () => null,
    apply: (ips) => { rig.owned = [...ips].sort(); rig.applied++; },
    announce: (ips) => { rig.garps += ips.length; return ips.length * 2; },
    emit: () => {}, log: { info() {}, warn() {}, error() {}, debug() {} } as unknown as ClusterDeps['log'],
    transport: hub.transport(ADDR[self]!),
  };
  rig.node = await ClusterNode.start(deps);
  return rig;
}

async function until(what: string, fn: () => boolean, ms = 3000): Promise<number> {
  const t0 = Date.now();
  while (!fn()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for: ${what}`);
    await sleep(2);
  }
  return Date.now() - t0;
}

const ownsAll = (r: Rig) => VIPS.every((v) => r.node.owns(v));
const ownsNone = (r: Rig) => VIPS.every((v) => !r.node.owns(v));

t.test('three nodes: the highest priority owns every VIP once synced; the others none', async (t) => {
  const hub = new Hub();
  const rigs = await Promise.all([0, 1, 2].map((i) => startNode(hub, i)));
  t.teardown(() => rigs.forEach((r) => r.node.stop()));
  await until('every node synced', () => rigs.every((r) => r.node.view().synced));
  await until('lb-a owns both VIPs', () => ownsAll(rigs[0]!));
  await sleep(5 * HB);
  t.ok(ownsAll(rigs[0]!), 'lb-a owns them');
  t.ok(ownsNone(rigs[1]!) && ownsNone(rigs[2]!), 'lb-b and lb-c own none');
  const v = rigs[1]!.node.view();
  t.same(v.vips!.map((x) => x.owner), ['lb-a', 'lb-a'], 'lb-b computes the same owner');
  t.same(v.nodes!.map((n) => n.state), ['alive', 'self', 'alive']);
});

t.test('flow records: a journal record on one node reaches the others\' import rings', async (t) => {
  const hub = new Hub();
  const rigs = await Promise.all([0, 1, 2].map((i) => startNode(hub, i)));
  t.teardown(() => rigs.forEach((r) => r.node.stop()));
  await until('all synced', () => rigs.every((r) => r.node.view().synced));
  const mac = new Uint8Array([2, 0, 0, 0, 0, 7]);
  for (let i = 0; i < 120; i++) rigs[0]!.state.journal.pushFlow(REPL_NEW, 2, mac, 0, 0x0a090101 + i, VIPS[0]! | 0, (40000 + i) << 16 | 80, 0x0a090201);
  await until('120 records at lb-b and lb-c', () => rigs[1]!.state.imports.readable() === 120 && rigs[2]!.state.imports.readable() === 120);
  const out = new Uint8Array(FLOW_WIRE_BYTES * 120);
  rigs[1]!.state.imports.copyOut(out, 0, 120);
  t.equal(new DataView(out.buffer).getInt32(119 * FLOW_WIRE_BYTES + R_CLI, true), 0x0a090101 + 119, 'the bytes arrive as written, in order');
  const a = rigs[0]!.node.view();
  t.equal(a.nodes![1]!.replication.sent, 120);
  await sleep(3 * HB);
  t.equal(rigs[1]!.node.view().nodes![0]!.replication.lagRecords, 0, 'no lag once lb-a\'s heartbeat says 120 sent');
});

t.test('takeover: the owner goes silent; the next in priority takes every VIP within dead_after + a few ticks', async (t) => {
  const hub = new Hub();
  const rigs = await Promise.all([0, 1, 2].map((i) => startNode(hub, i)));
  t.teardown(() => rigs.forEach((r) => r.node.stop()));
  await until('lb-a owns', () => ownsAll(rigs[0]!) && rigs.every((r) => r.node.view().synced));
  await sleep(3 * HB);
  const before = rigs[1]!.node.view().counters!.takeovers; // nodes starting together may pass VIPs around once
  const t0 = Date.now();
  rigs[0]!.node.stop(); // a crash: no goodbye
  const took = await until('lb-b owns both', () => ownsAll(rigs[1]!));
  t.ok(took >= DEAD - HB, `not before dead_after (${took} ms)`);
  t.ok(took < DEAD + 150, `within dead_after + margin (${took} ms)`);
  t.ok(rigs[1]!.garps >= VIPS.length, 'gratuitous ARP for both');
  t.ok(ownsNone(rigs[2]!), 'lb-c stays out');
  t.equal(rigs[1]!.node.view().counters!.takeovers - before, 2, 'two takeovers counted');
  t.comment(`takeover ${Date.now() - t0} ms after the owner went silent`);
});

t.test('a planned stop says goodbye: the next node takes over at once', async (t) => {
  const hub = new Hub();
  const rigs = await Promise.all([0, 1, 2].map((i) => startNode(hub, i)));
  t.teardown(() => rigs.forEach((r) => r.node.stop()));
  await until('lb-a owns', () => ownsAll(rigs[0]!) && rigs.every((r) => r.node.view().synced));
  await sleep(3 * HB);
  rigs[0]!.node.stop({ goodbye: true });
  const took = await until('lb-b owns both', () => ownsAll(rigs[1]!));
  t.ok(took < DEAD, `before dead_after (${took} ms)`);
});

t.test('fail-back with preempt: lb-a comes back, catches up with lb-b\'s flows, then takes its VIPs back', async (t) => {
  const hub = new Hub();
  const rigs = await Promise.all([0, 1, 2].map((i) => startNode(hub, i)));
  t.teardown(() => rigs.forEach((r) => r.node.stop()));
  await until('lb-a owns', () => ownsAll(rigs[0]!) && rigs.every((r) => r.node.view().synced));
  rigs[0]!.node.stop();
  await until('lb-b owns', () => ownsAll(rigs[1]!));
  // A live flow in lb-b's table: the snapshot must carry it to the returning lb-a.
  const s = rigs[1]!.state, slot = 5;
  s.fw[(slot << 4) + F_CLI] = 0x0a090177; s.fw[(slot << 4) + F_VIP] = VIPS[0]! | 0; s.fw[(slot << 4) + F_PORTS] = (41000 << 16) | 80; s.fw[(slot << 4) + F_BACKIP] = 0x0a090201;
  s.fb[(slot << 6) + B_STATE] = FS_ESTABLISHED;
  await sleep(2 * HB);
  const a2 = await startNode(hub, 0);
  rigs[0] = a2;
  // The worker is not here: drain lb-a's import ring as the worker would, and remember what came.
  const got: number[] = [];
  const drain = setInterval(() => {
    const n = a2.state.imports.readable();
    if (!n) return;
    const out = new Uint8Array(n * FLOW_WIRE_BYTES);
    a2.state.imports.copyOut(out, 0, n);
    for (let i = 0; i < n; i++) got.push(new DataView(out.buffer).getInt32(i * FLOW_WIRE_BYTES + R_CLI, true));
  }, 5);
  t.teardown(() => clearInterval(drain));
  await until('lb-a synced', () => a2.node.view().synced === true);
  t.ok(got.includes(0x0a090177), 'lb-b\'s flow arrived in lb-a\'s snapshot before it was synced');
  t.ok(ownsAll(rigs[1]!) || ownsAll(a2), 'the VIPs are answered throughout');
  await until('lb-a owns again, lb-b released', () => ownsAll(a2) && ownsNone(rigs[1]!));
  t.equal(rigs[1]!.node.view().nodes![0]!.restarts, 1, 'lb-b saw lb-a restart');
});

t.test('fail-back without preempt: the VIPs stay where they are', async (t) => {
  const hub = new Hub();
  const rigs = await Promise.all([0, 1, 2].map((i) => startNode(hub, i, { preempt: false })));
  t.teardown(() => rigs.forEach((r) => r.node.stop()));
  await until('lb-a owns', () => ownsAll(rigs[0]!) && rigs.every((r) => r.node.view().synced));
  rigs[0]!.node.stop();
  await until('lb-b owns', () => ownsAll(rigs[1]!));
  rigs[0] = await startNode(hub, 0, { preempt: false });
  await until('lb-a synced', () => rigs[0]!.node.view().synced === true);
  await sleep(10 * HB);
  t.ok(ownsAll(rigs[1]!) && ownsNone(rigs[0]!), 'lb-b keeps them');
});

t.test('partition and heal: both sides own while cut; within a couple of heartbeats of healing, one does', async (t) => {
  const hub = new Hub();
  const rigs = await Promise.all([0, 1, 2].map((i) => startNode(hub, i)));
  t.teardown(() => rigs.forEach((r) => r.node.stop()));
  await until('lb-a owns', () => ownsAll(rigs[0]!) && rigs.every((r) => r.node.view().synced));
  hub.cut(ADDR[0]!, ADDR[1]!); hub.cut(ADDR[0]!, ADDR[2]!);
  await until('lb-b owns too (split brain)', () => ownsAll(rigs[1]!));
  t.ok(ownsAll(rigs[0]!), 'lb-a, cut off, still owns: both answer');
  hub.heal();
  const healed = await until('one owner', () => VIPS.every((v) => rigs.filter((r) => r.node.owns(v)).length === 1));
  t.ok(healed <= 2 * HB + 30, `resolved ${healed} ms after healing (heartbeat ${HB} ms)`);
  t.ok(ownsAll(rigs[0]!), 'the rule gives them to lb-a (priority, preempt on)');
  const split = rigs[0]!.node.view().counters!.splitBrains + rigs[1]!.node.view().counters!.splitBrains;
  t.ok(split >= 1, `split brain counted (${split})`);
  // The same two nodes split again later: a new split brain, counted (and re-announced) again.
  hub.cut(ADDR[0]!, ADDR[1]!); hub.cut(ADDR[0]!, ADDR[2]!);
  await until('lb-b owns again (second split brain)', () => ownsAll(rigs[1]!));
  hub.heal();
  await until('one owner again', () => VIPS.every((v) => rigs.filter((r) => r.node.owns(v)).length === 1));
  const again = rigs[0]!.node.view().counters!.splitBrains + rigs[1]!.node.view().counters!.splitBrains;
  t.ok(again > split, `the second split brain counted too (${split} -> ${again})`);
});

t.test('forged, replayed, truncated and misaddressed datagrams are refused and move nothing', async (t) => {
  const hub = new Hub();
  const rigs = await Promise.all([0, 1, 2].map((i) => startNode(hub, i)));
  t.teardown(() => rigs.forEach((r) => r.node.stop()));
  await until('lb-a owns', () => ownsAll(rigs[0]!) && rigs.every((r) => r.node.view().synced));
  // A real heartbeat lb-c sent lb-b, and a real flows message lb-a sent.
  rigs[0]!.state.journal.pushFlow(REPL_NEW, 2, new Uint8Array(6), 0, 0x0a090155, VIPS[0]! | 0, (42000 << 16) | 80, 0x0a090201);
  await until('the flow record arrived', () => rigs[1]!.state.imports.readable() > 0);
  const hb = hub.seen.filter((d) => d.from === ADDR[2] && d.to === ADDR[1] && d.buf[5] === 1).at(-1)!.buf;
  const flows = hub.seen.filter((d) => d.from === ADDR[0] && d.to === ADDR[1] && d.buf[5] === 2).at(-1)!.buf;
  const before = rigs[1]!.node.view();
  const importsBefore = rigs[1]!.state.imports.readable();
  // Replays of both.
  hub.inject(ADDR[2]!, ADDR[1]!, hb);
  hub.inject(ADDR[0]!, ADDR[1]!, flows);
  // Forged: a heartbeat claiming lb-a owns nothing, from lb-a's address, signed with another key.
  const forged = Buffer.from(hb);
  forged[8] = 0; forged.writeDoubleBE(Date.now(), 32); forged.writeDoubleBE(1e9, 24);
  const other = createHmac('sha256', Buffer.from('not-the-cluster-key-at-all')).update(forged.subarray(0, forged.length - 32)).digest();
  other.copy(forged, forged.length - 32);
  hub.inject(ADDR[0]!, ADDR[1]!, forged);
  // A bit flipped in a real flows message; truncated; from the wrong address.
  const flipped = Buffer.from(flows); flipped[50]! ^= 1;
  hub.inject(ADDR[0]!, ADDR[1]!, flipped);
  hub.inject(ADDR[0]!, ADDR[1]!, flows.subarray(0, 30));
  hub.inject('10.9.0.66', ADDR[1]!, flows);
  await sleep(3 * HB);
  const after = rigs[1]!.node.view();
  t.equal(after.rejected!.replayed! - before.rejected!.replayed!, 2, 'two replays refused');
  t.equal(after.rejected!.bad_hmac! - before.rejected!.bad_hmac!, 2, 'the forged heartbeat and the flipped bit refused');
  t.equal(after.rejected!.truncated! - before.rejected!.truncated!, 1, 'the truncated one refused');
  t.equal(after.rejected!.wrong_address! - before.rejected!.wrong_address!, 1, 'the misaddressed one refused');
  t.equal(rigs[1]!.state.imports.readable(), importsBefore, 'no record imported from any of them');
  t.ok(ownsAll(rigs[0]!) && ownsNone(rigs[1]!), 'nothing moved');
});

t.test('a node whose address is not this host\'s: refused at start with what to do', async (t) => {
  const state = createState({ flowCapacity: 64, neighbourCapacity: 16, halfOpenTimeoutMs: 1000, establishedTimeoutMs: 1000, closingTimeoutMs: 1000, neighbourTtlMs: 1000, seed: 1 });
  const c = cfg(0);
  // 192.0.2.0/24 (TEST-NET-1) is on no interface here: binding to it fails before anything is sent.
  c.peers[0] = { name: 'lb-a', address: parseIpv4('192.0.2.77')! | 0, addressText: '192.0.2.77' };
  await t.rejects(ClusterNode.start({
    cfg: c, key: KEY, state, journal: state.journal, imports: state.imports,
    addresses: () => VIPS, natGateway: null, placement: () => new Map(), down: () => [], workerPid: () => null,
    apply: () => {}, announce: () => 0, emit: () => {}, log: { info() {}, warn() {}, error() {}, debug() {} } as unknown as ClusterDeps['log'],
  }), { code: 'ECLUSTER_BIND', message: /192\.0\.2\.77 is not an address of this host.*ip addr add/ });
});
