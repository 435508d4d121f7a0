// Table banks (src/shm/banks.ts): tables published through two banks and one generation word
// read back identical on every field, forward real captures exactly as the tables control built,
// and survive a writer killed mid-publish, a corrupted bank, a slow reader and a wrapped counter.

import t, { type Test } from 'tap';
import * as path from 'node:path';
import * as fs from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { BankWriter, BankReader, idlePoller, banksSize, BANKS_HEADER, BANK_POLL_CHUNK_BYTES, nextGeneration, TABLE_IMAGE_BYTES, tablesFit } from '../src/shm/banks';
import { Tables, TablesSpec } from '../src/tables/services';
import { parseIpv4, parseMac } from '../src/wire/addr';
import { parseConfig } from '../src/control/config';
import { buildDataplane } from '../src/app/replay';
import { replayFrames } from '../src/link/replay';
import { readCaptureFile, PcapWriter } from '../src/pcap';
import { Ctr, COUNTER_SLOTS } from '../src/dataplane/counters';
import { sharedPcaps } from './helpers/paths';
import { mulberry32 } from './helpers/prng';
import { markedSpec } from './helpers/banks-child';
import { openRegion } from '../src/shm/region';
import { startHarness, defaultYaml } from './helpers/control-harness';
import { shmAvailable } from '../native-bindings/shm';

const ip = (s: string) => parseIpv4(s)!;
const mac = (s: string) => parseMac(s)!;

/** A spec with something in every field: IP and port mode, groups with weights, standbys, health, nat, SYN check, ICMP. */
function richSpec(extra = 0): TablesSpec {
  const backends: Array<TablesSpec['backends'][number]> = [
    { name: 'web1', ip: ip('10.0.1.21'), mac: mac('02:00:00:00:01:21'), weight: 300, health: 'up' },
    { name: 'web2', ip: ip('10.0.1.22'), mac: mac('02:00:00:00:01:22'), weight: 100, health: 'unknown' },
    { name: 'web3', ip: ip('10.0.1.23'), mac: null, state: 'drain' },
    { name: 'web4', ip: ip('192.168.7.4'), mac: null, health: 'down' },
    { name: 'spare', ip: ip('10.0.1.99'), mac: mac('02:00:00:00:01:99'), checked: false },
  ];
  for (let i = 0; i < extra; i++) backends.push({ name: `x${i}`, ip: ip(`10.9.${i >> 8}.${i & 255}`), mac: null });
  return {
    mac: mac('02:00:5e:00:00:01'), mode: 'nat',
    vips: [ip('10.0.0.100'), ip('10.0.0.101'), ip('203.0.113.200')],
    backends,
    services: [
      { vip: ip('10.0.0.100'), port: 0, active: 'web1', standby: ['web2'] },
      { vip: ip('10.0.0.101'), port: 80, active: ['web1', 'web2'], standby: ['web3', 'spare'], onBackendDown: 'keep' },
      { vip: ip('10.0.0.101'), port: 443, active: 'web4', standby: ['spare'] },
      { vip: ip('203.0.113.200'), port: 8080, active: ['web2', 'web3', 'web4'], standby: [] },
    ],
    synCheck: { maxAgeMs: 2500, onFail: 'reset' },
    icmp: { echo: true, echoRate: 250, echoBurst: 7 },
  };
}

function area(): ArrayBuffer { return new ArrayBuffer(banksSize() + 128); }

/** Every own field of `a` (the packet path's views and scalars, newSlots, the image) equals b's. */
function sameFields(t: Test, a: Tables, b: Tables): void {
  const ka = Object.keys(a).sort(), kb = Object.keys(b).sort();
  t.same(ka, kb, 'the same own fields');
  for (const k of ka) {
    if (k === 'meta') continue; // control-side metadata: stays with control by design
    const va = (a as unknown as Record<string, unknown>)[k], vb = (b as unknown as Record<string, unknown>)[k];
    if (ArrayBuffer.isView(va)) {
      t.ok(ArrayBuffer.isView(vb) && va.constructor === vb.constructor, `${k}: same array type`);
      t.same(Array.from(va as unknown as ArrayLike<number>), Array.from(vb as unknown as ArrayLike<number>), `${k}: same contents`);
    } else {
      t.same(vb, va, `${k}: ${JSON.stringify(va)}`);
    }
  }
}

t.test('a Tables read back from a bank equals the original on every field', async (t) => {
  const mem = area();
  const w = new BankWriter(mem, 64);
  const r = new BankReader(mem, 64);
  t.equal(r.poll(), null, 'nothing published yet');
  const first = new Tables(richSpec());
  t.ok(w.publish(first), 'published at once');
  const got = r.poll()!;
  t.ok(got, 'the reader takes it');
  sameFields(t, first, got);
  t.same(got.newSlots, [0, 1, 2, 3, 4], 'new slots carried');
  t.equal(r.poll(), null, 'nothing new until the next publish');
  // A rebuild that frees web3's slot and gives it to a new backend: slots and new slots carried.
  const s2 = richSpec();
  const next = new Tables({ ...s2, backends: [...s2.backends.filter((b) => b.name !== 'web3'), { name: 'late', ip: ip('10.0.1.50'), mac: null }],
    services: s2.services.map((s) => ({ ...s, standby: s.standby.filter((x) => x !== 'web3'), active: typeof s.active === 'string' ? s.active : s.active.filter((x) => x !== 'web3') })) }, first);
  t.same(next.newSlots, [2], 'late takes web3\'s slot');
  t.ok(w.publish(next));
  const got2 = r.poll()!;
  sameFields(t, next, got2);
  // Methods over the views answer alike.
  for (const [v, p] of [['10.0.0.101', 80], ['10.0.0.101', 443], ['10.0.0.100', 22], ['203.0.113.200', 8080], ['10.0.0.1', 80]] as const) {
    const i = next.serviceIndex(ip(v), p);
    t.equal(got2.serviceIndex(ip(v), p), i, `serviceIndex ${v}:${p}`);
    if (i >= 0) for (let h = 0; h < 512; h += 37) t.equal(got2.pickBackend(i, h), next.pickBackend(i, h), `pickBackend ${v}:${p} hash ${h}`);
  }
  t.equal(got2.vipIndex(ip('203.0.113.200')), next.vipIndex(ip('203.0.113.200')));
  t.same(got2.backendNames, [], 'no backend names: they stay with control');
  t.throws(() => got2.spec, /read from a table bank and has no spec/, 'nor the spec');
  t.throws(() => new Tables(s2, got2), /prev must be tables built by control/, 'a bank Tables cannot seed slot numbering');
});

t.test('a Tables from a bank has the hidden class of one built by control (the packet path stays monomorphic)', async (t) => {
  const script = `
    const { Tables } = require(${JSON.stringify(path.resolve(__dirname, '../src/tables/services.js'))});
    const { BankWriter, BankReader, banksSize } = require(${JSON.stringify(path.resolve(__dirname, '../src/shm/banks.js'))});
    const spec = { mac: new Uint8Array([2,0,0,0,0,1]), mode: 'dsr', vips: [167772260], backends: [{ name: 'a', ip: 167772437, mac: null }], services: [{ vip: 167772260, port: 80, active: 'a', standby: [] }] };
    const mem = new SharedArrayBuffer(banksSize());
    const w = new BankWriter(mem, 0), r = new BankReader(mem, 0);
    const built = new Tables(spec);
    w.publish(built);
    const read = r.poll();
    process.stdout.write(String(%HaveSameMap(built, read)));`;
  const out = spawnSync(process.execPath, ['--allow-natives-syntax', '-e', script], { encoding: 'utf8' });
  t.equal(out.status, 0, out.stderr);
  t.equal(out.stdout, 'true', '%HaveSameMap(built by control, read from a bank)');
});

const YAML = (mode: string) => `
mac: "00:26:0b:31:07:33"
mode: ${mode}
vips: [64.13.134.52]
backends:
  - { name: web1, ip: 10.0.1.21, mac: "02:00:00:00:01:21" }
  - { name: web2, ip: 10.0.1.22, mac: "02:00:00:00:01:22" }
  - { name: web3, ip: 10.0.1.23, mac: "02:00:00:00:01:23" }
services:
  - { vip: 64.13.134.52, backend: web1 }
  - { vip: 64.13.134.52, port: 22, active: web2 }
  - { vip: 64.13.134.52, port: 53, active: web3, standby: [web1] }
`;

t.test('a Dataplane over bank tables forwards a real capture byte for byte as over the original', async (t) => {
  // nmap's SYN scan of one host (cs-ppa2e-synscan): ~1,000 SYNs over many ports, to services in
  // port mode (a single backend, one with a standby) and IP mode (a weighted group of two).
  const file = path.join(sharedPcaps, 'cs-ppa2e-synscan.pcap');
  const frames = readCaptureFile(file).frames;
  for (const mode of ['dsr', 'nat']) {
    const runWith = (viaBank: boolean) => {
      const b = buildDataplane(parseConfig(YAML(mode), `<${mode}>`), { seed: 7 });
      // Every other port served by a weighted group (registrations make them): the pick table in play.
      const spec = b.tables.spec;
      const grouped = new Tables({
        ...spec,
        backends: spec.backends.map((x) => x.name === 'web1' ? { ...x, weight: 200 } : x),
        services: spec.services.map((x) => x.port === 0 ? { ...x, active: ['web1', 'web2'], standby: ['web3'] } : x),
      }, b.tables);
      if (!viaBank) b.dataplane.publish(grouped);
      else {
        const mem = area(), w = new BankWriter(mem, 0), r = new BankReader(mem, 0);
        w.publish(grouped);
        const bt = r.poll()!;
        t.notOk(bt.hasMeta, `${mode}: the dataplane runs on tables read from the bank`);
        b.dataplane.publish(bt);
      }
      const out = new PcapWriter();
      const st = replayFrames(frames, b.dataplane, out);
      return { bytes: out.toBuffer(), counters: Array.from(b.state.counters), st };
    };
    const orig = runWith(false), bank = runWith(true);
    t.ok(orig.st.transmitted > 900, `${mode}: ${orig.st.transmitted} of ${orig.st.processed} frames sent`);
    t.ok(orig.bytes.equals(bank.bytes), `${mode}: the same ${bank.st.transmitted} frames out, byte for byte`);
    t.same(bank.counters, orig.counters, `${mode}: the same counters and drop reasons`);
  }
});

t.test('a writer killed after writing the bank but before the generation switch: the reader keeps the old tables', async (t) => {
  const mem = area();
  const w = new BankWriter(mem, 0), r = new BankReader(mem, 0);
  const old = new Tables(richSpec());
  w.publish(old);
  const kept = r.poll()!;
  const before = new Uint8Array(mem.slice(0));
  w.publish(new Tables({ ...richSpec(), mode: 'dsr' }, old));
  // The crash: every byte the publish wrote is there except its last write, the generation word's store.
  const hdr = new Int32Array(mem, 0, 16);
  const g1 = new Int32Array(before.buffer, 0, 16)[BANKS_HEADER.generation]!;
  Atomics.store(hdr, BANKS_HEADER.generation, g1);
  t.not(Buffer.compare(Buffer.from(before), Buffer.from(new Uint8Array(mem))), 0, 'the idle bank was written');
  t.equal(r.poll(), null, 'the reader sees no new generation');
  t.equal(r.tables, kept, 'and keeps the tables it had');
  t.equal(r.rejected, 0, 'nothing refused: it never looked at the half-written bank');
  // A new supervisor attaches to the same banks and publishes: the reader takes that.
  const w2 = new BankWriter(mem, 0);
  t.equal(w2.generation, g1, 'carries on from the generation in memory');
  t.ok(w2.publish(new Tables({ ...richSpec(), mode: 'dsr' }, old)));
  const got = r.poll()!;
  t.equal(got.mode, 0, 'the new writer\'s tables (dsr) arrive');
});

t.test('a corrupted bank is refused and counted; the reader keeps its tables and the writer is not stuck', async (t) => {
  const mem = area();
  const counters = new Float64Array(COUNTER_SLOTS);
  const w = new BankWriter(mem, 0), r = new BankReader(mem, 0, counters);
  const a = new Tables(richSpec());
  w.publish(a);
  const kept = r.poll()!;
  for (const [what, spoil] of [
    ['one byte of the image', (g: number) => { new Uint8Array(mem)[bankImageAt(g) + 200]! ^= 0x10; }],
    ['the length', (g: number) => { new Int32Array(mem, bankHdrAt(g), 4)[1]! += 8; }],
    ['the generation it was written for', (g: number) => { new Int32Array(mem, bankHdrAt(g), 4)[0]! += 2; }],
    ['a new-slot entry', (g: number) => { new Int32Array(mem, bankHdrAt(g) + 64, 4)[0]! = 4000; }],
    ['an impossible length', (g: number) => { new Int32Array(mem, bankHdrAt(g), 4)[1]! = TABLE_IMAGE_BYTES + 8; }],
  ] as const) {
    const before = counters[Ctr.tables_bank_rejected]!;
    t.ok(w.publish(new Tables(richSpec(1), a)), `${what}: published (with a new slot)`);
    spoil(w.generation);
    t.equal(r.poll(), null, `${what}: refused`);
    t.equal(r.tables, kept, `${what}: the reader keeps its tables`);
    t.equal(counters[Ctr.tables_bank_rejected], before + 1, `${what}: counted once in tables_bank_rejected`);
    t.equal(r.poll(), null, `${what}: not retried or counted again`);
    t.equal(counters[Ctr.tables_bank_rejected], before + 1);
  }
  t.equal(r.rejected, 5);
  t.ok(w.publish(new Tables({ ...richSpec(), mode: 'dsr' }, a)), 'the next publish goes through (the refused bank was acked)');
  t.equal(r.poll()!.mode, 0, 'and is taken');
});

t.test('random damage to a published bank is never taken: 300 trials, one to four words changed', async (t) => {
  const rnd = mulberry32(9);
  const mem = area();
  const counters = new Float64Array(COUNTER_SLOTS);
  const w = new BankWriter(mem, 0), r = new BankReader(mem, 0, counters);
  const base = new Tables(richSpec());
  w.publish(base);
  const kept = r.poll()!;
  const words = new Int32Array(mem);
  let taken = 0;
  for (let i = 0; i < 300; i++) {
    w.publish(new Tables(richSpec(1 + (i % 3)), base));
    const g = w.generation;
    // Words of the bank header (generation, length, count, checksum), the new slots in use, or the image.
    const len = new Int32Array(mem, bankHdrAt(g), 4)[1]!;
    const spots = [bankHdrAt(g) / 4, bankHdrAt(g) / 4 + 1, bankHdrAt(g) / 4 + 2, bankHdrAt(g) / 4 + 3, bankHdrAt(g) / 4 + 16];
    for (let k = 0, n = 1 + Math.floor(rnd() * 4); k < n; k++) {
      const at = rnd() < 0.3 ? spots[Math.floor(rnd() * spots.length)]! : bankImageAt(g) / 4 + Math.floor(rnd() * (len / 4));
      words[at] = words[at]! ^ (1 + Math.floor(rnd() * 0x7fffffff));
    }
    if (r.takeCurrent() !== kept) taken++;
  }
  t.equal(taken, 0, 'no damaged bank was taken');
  t.equal(counters[Ctr.tables_bank_rejected], 300, 'each refused and counted once');
  t.equal(r.tables, kept, 'the reader still has the tables it took first');
});

/** Byte offsets of bank (g & 1)'s header and image when the banks start at 0 (layout in banks.ts). */
function bankHdrAt(g: number): number { return 64 + (g & 1) * (64 + 4096 * 4 + TABLE_IMAGE_BYTES); }
function bankImageAt(g: number): number { return bankHdrAt(g) + 64 + 4096 * 4; }

t.test('a publish waits for the reader\'s ack; the latest pending one wins; its new slots are not lost', async (t) => {
  const mem = area();
  const w = new BankWriter(mem, 0), r = new BankReader(mem, 0);
  const a = new Tables(richSpec());
  t.ok(w.publish(a), 'generation 1: written (nothing to wait for)');
  const g1 = w.generation;
  // The reader has not taken generation 1: it may still be copying generation -1's bank, the idle one.
  const b = new Tables({ ...richSpec(), backends: [...richSpec().backends, { name: 'n1', ip: ip('10.0.2.1'), mac: null }] }, a);
  t.notOk(w.publish(b), 'generation 2 waits');
  t.ok(w.isPending);
  t.notOk(w.flush(), 'flush: still waiting');
  t.equal(w.generation, g1, 'generation unchanged');
  const c = new Tables({ ...richSpec(), mode: 'dsr', backends: [...richSpec().backends, { name: 'n1', ip: ip('10.0.2.1'), mac: null }, { name: 'n2', ip: ip('10.0.2.2'), mac: null }] }, b);
  t.notOk(w.publish(c), 'a later publish replaces the pending one');
  t.equal(r.poll()!.mode, 1, 'the reader takes generation 1 (nat) and acks it');
  t.ok(w.flush(), 'now the pending tables are written');
  t.notOk(w.isPending);
  const got = r.poll()!;
  t.equal(got.mode, 0, 'the latest (dsr) arrives; the one it replaced never does');
  t.same([...got.newSlots].sort(), [5, 6], 'new slots of both coalesced publishes (n1 from b, n2 from c)');
  t.ok(w.flush(), 'flush with nothing pending: true');
});

t.test('readerGone: with no worker the writer publishes freely; a new reader starts from the current generation', async (t) => {
  const mem = area();
  const w = new BankWriter(mem, 0);
  const r1 = new BankReader(mem, 0);
  w.publish(new Tables(richSpec()));
  r1.poll();
  w.publish(new Tables({ ...richSpec(), mode: 'dsr' }));
  t.notOk(w.publish(new Tables({ ...richSpec(), vips: [ip('10.0.0.100')] })), 'the reader died before acking: pending');
  w.readerGone();
  t.notOk(w.isPending, 'readerGone writes the pending tables at once');
  for (let i = 0; i < 5; i++) t.ok(w.publish(new Tables({ ...richSpec(), vips: [ip(`10.0.3.${i}`)] })), `publish ${i}: written at once`);
  const r2 = new BankReader(mem, 0);
  const got = r2.poll()!;
  t.equal(got.vipIndex(ip('10.0.3.4')), 0, 'the new reader takes the latest tables');
  t.ok(w.publish(new Tables(richSpec())), 'it acked the current generation: publish written');
  t.notOk(w.publish(new Tables(richSpec())), 'and the ack protocol holds again');
  t.ok(r2.poll(), 'the reader takes the next');
  t.ok(w.flush(), 'the pending one follows');
  // A reader that acked the current generation and then died: its ack must not end the free mode.
  t.ok(r2.poll(), 'the reader acks the current generation');
  w.readerGone();
  for (let i = 0; i < 3; i++) t.ok(w.publish(new Tables(richSpec())), `after that reader is gone, publish ${i}: written at once`);
});

t.test('with no frames, a big table set is chased a chunk per turn, not a chunk per timer tick; nothing after stop', async (t) => {
  const mem = area();
  const w = new BankWriter(mem, 0), r = new BankReader(mem, 0);
  const spec = (vip: string): TablesSpec => ({ ...richSpec(), vips: [ip(vip)],
    services: Array.from({ length: 600 }, (_, i) => ({ vip: ip(vip), port: i + 1, active: ['web1', 'web2'], standby: ['spare'] })) });
  const first = new Tables(spec('10.0.0.100'));
  const chunks = Math.ceil(first.image.byteLength / BANK_POLL_CHUNK_BYTES);
  w.publish(first);
  const got: Tables[] = [];
  const idle = idlePoller(r, (x) => got.push(x));
  const t0 = Date.now();
  idle.poll(); // one timer tick
  while (got.length === 0 && Date.now() - t0 < 2000) await new Promise((res) => setImmediate(res));
  t.equal(got.length, 1, `the whole set (${chunks} chunks) from one tick`);
  t.ok(Date.now() - t0 < 100 * (chunks - 1), `in ${Date.now() - t0} ms, well before ${chunks - 1} more 100 ms ticks`);
  t.ok(Buffer.from(got[0]!.image).equals(Buffer.from(first.image)), 'exactly the published bytes');
  // Stopped mid-copy (the worker stops; the region is unmapped next): no poll after it.
  t.ok(w.publish(new Tables(spec('10.0.0.101'))), 'acked: the next set written at once');
  idle.poll();
  t.ok(r.copying, 'a copy under way');
  idle.stop();
  for (let i = 0; i < chunks + 2; i++) await new Promise((res) => setImmediate(res));
  t.equal(got.length, 1, 'nothing delivered after stop');
  t.ok(r.copying, 'and nothing read: the copy stays where it was');
});

t.test('big tables arrive over several polls, a bounded copy each; a copy the writer overtakes is dropped uncounted', async (t) => {
  const mem = area();
  const counters = new Float64Array(COUNTER_SLOTS);
  const w = new BankWriter(mem, 0), r = new BankReader(mem, 0, counters);
  // 600 services: about 650 KiB of tables, some 20 chunks.
  const big = (mode: 'dsr' | 'nat', vip = '10.0.0.100'): TablesSpec => ({ ...richSpec(), mode, vips: [ip(vip)],
    services: Array.from({ length: 600 }, (_, i) => ({ vip: ip(vip), port: i + 1, active: ['web1', 'web2'], standby: ['spare'] })) });
  const first = new Tables(big('nat'));
  const chunks = Math.ceil(first.image.byteLength / BANK_POLL_CHUNK_BYTES);
  t.ok(chunks >= 5, `${first.image.byteLength} bytes: ${chunks} chunks`);
  w.publish(first);
  for (let i = 1; i < chunks; i++) {
    t.equal(r.poll(), null, `poll ${i}: still copying`);
    t.ok(r.copying);
    t.notOk(w.publish(new Tables(big('dsr'))), `poll ${i}: a publish meanwhile waits (the reader has not acked)`);
  }
  const got = r.poll()!;
  t.ok(got, `poll ${chunks}: the tables`);
  t.ok(Buffer.from(got.image).equals(Buffer.from(first.image)), 'exactly the published bytes');
  t.ok(w.flush(), 'acked: the pending publish is written');
  // The writer overtakes a copy (free after readerGone, as when a worker starts while the supervisor thinks none runs).
  t.equal(r.poll(), null, 'copying the pending one (dsr)');
  w.readerGone();
  w.publish(new Tables(big('nat', '10.0.0.101')));
  w.publish(new Tables(big('dsr', '10.0.0.102'))); // into the bank being copied
  t.equal(r.poll(), null, 'the overtaken copy is dropped');
  let last: Tables | null = null;
  for (let i = 0; i < chunks + 1 && !last; i++) last = r.poll();
  t.equal(last?.vipIndex(ip('10.0.0.102')), 0, 'the newest arrives');
  t.equal(counters[Ctr.tables_bank_rejected], 0, 'nothing counted as a bad bank');
  // A new worker takes the current big tables whole at its start.
  const fresh = new BankReader(mem, 0);
  t.equal(fresh.takeCurrent()?.vipIndex(ip('10.0.0.102')), 0, 'takeCurrent: the whole current tables in one call');
  const empty = area();
  new BankWriter(empty, 0);
  t.equal(new BankReader(empty, 0).takeCurrent(), null, 'takeCurrent with nothing published: null');
});

t.test('the generation wraps around 2^32 without reusing 0 and keeps alternating banks', async (t) => {
  t.equal(nextGeneration(0x7fffffff), -0x80000000, 'through the negative Int32 values');
  t.equal(nextGeneration(-1), 2, '0xffffffff -> 2: 0 means never published, and bank parity is kept');
  const mem = area();
  const w = new BankWriter(mem, 0);
  // As if 2^32 - 4 publishes had gone by, each acked.
  const hdr = new Int32Array(mem, 0, 16);
  hdr[BANKS_HEADER.generation] = -4; hdr[BANKS_HEADER.ack] = -4;
  const r = new BankReader(mem, 0);
  const seen: number[] = [];
  for (let i = 0; i < 7; i++) {
    t.ok(w.publish(new Tables({ ...richSpec(), vips: [ip(`10.0.4.${i}`)] })), `publish ${i} written`);
    seen.push(w.generation >>> 0);
    t.equal(r.poll()!.vipIndex(ip(`10.0.4.${i}`)), 0, `generation ${w.generation >>> 0}: the reader takes it`);
  }
  t.same(seen, [0xfffffffd, 0xfffffffe, 0xffffffff, 2, 3, 4, 5], 'generations across the wrap');
});

t.test('tables that do not fit a bank are refused with a clear error and change nothing', async (t) => {
  const many = 5000;
  const big: TablesSpec = { ...richSpec(), services: Array.from({ length: many }, (_, i) => ({ vip: ip('10.0.0.100'), port: i + 1, active: 'web1', standby: [] })) };
  const tb = new Tables(big);
  const fit = tablesFit(tb);
  t.notOk(fit.ok, `${many} services: ${tb.image.byteLength} bytes`);
  const mem = area();
  const w = new BankWriter(mem, 0), r = new BankReader(mem, 0);
  w.publish(new Tables(richSpec()));
  r.poll();
  const g = w.generation;
  t.throws(() => w.publish(tb), /cannot publish the tables: the tables need \d+ bytes and a table bank holds 4194304 .*split the services/);
  t.equal(w.generation, g, 'generation unchanged');
  t.notOk(w.isPending, 'nothing pending');
  t.equal(r.poll(), null, 'the reader sees nothing new');
});

t.test('banks over a region from elsewhere are refused with what differs', async (t) => {
  const mem = area();
  new Int32Array(mem, 0, 16).set([0x12345678, 1, 1]);
  t.throws(() => new BankWriter(mem, 0), /magic 0x12345678.*--fresh-state/);
  t.throws(() => new BankReader(new ArrayBuffer(banksSize()), 0), /not set up by a supervisor yet/, 'a reader before any writer');
  t.throws(() => new BankWriter(new ArrayBuffer(1024), 0), /need \d+ bytes, 64-byte aligned, in memory of 1024 bytes/);
  t.throws(() => new BankWriter(mem, 8), /64-byte aligned/);
});

t.test('across processes over a /dev/shm region: a burst of 300 publishes while a worker polls', async (t) => {
  const avail = shmAvailable();
  if (!avail.ok) { t.plan(0, `shm addon unavailable: ${avail.why}`); return; }
  const file = path.join('/dev/shm', `vipgate-banks-test-${process.pid}.state`);
  t.teardown(() => { try { fs.unlinkSync(file); } catch { /* gone */ } });
  const region = openRegion({
    path: file, shape: { iface: 'veth-banks', flowCapacity: 1024, neighbourCapacity: 64, seed: 7 },
    timeouts: { halfOpenTimeoutMs: 5000, establishedTimeoutMs: 300_000, closingTimeoutMs: 10_000, neighbourTtlMs: 60_000 },
    fresh: true, version: '0.1.0-test', banksBytes: banksSize(),
  });
  t.teardown(() => region.close());
  const w = new BankWriter(region.banks.memory, region.banks.offset);
  w.publish(new Tables(markedSpec(0)));
  const LAST = 300;
  const child = spawn(process.execPath, [path.join(__dirname, 'helpers', 'banks-child.js'), file, String(LAST)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8');
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: string) => { out += d; if (out.includes('ready\n')) resolve(); });
    child.on('exit', (code) => reject(new Error(`worker child exited (${code}) before it was ready`)));
  });
  // The supervisor's side of an API burst: 300 publishes back to back, flushing between them as
  // the supervisor's timer would; most find the worker still busy and replace the pending one.
  let now = 0, pendingAtOnce = 0;
  for (let i = 1; i <= LAST; i++) {
    if (!w.publish(new Tables(markedSpec(i)))) { now++; pendingAtOnce = Math.max(pendingAtOnce, now); } else now = 0;
    if (i % 10 === 0) await new Promise((res) => setImmediate(res));
  }
  const flushDeadline = Date.now() + 30_000;
  while (!w.flush() && Date.now() < flushDeadline) await new Promise((res) => setTimeout(res, 1));
  t.notOk(w.isPending, 'the last publish was written once the worker acked');
  const code = await new Promise<number | null>((res) => { if (child.exitCode !== null) res(child.exitCode); else child.on('exit', res); });
  t.equal(code, 0, 'the worker child exited cleanly');
  const report = JSON.parse(out.split('\n').filter((l) => l.startsWith('{'))[0]!) as { seen: number[]; mismatched: number; polls: number; rejected: number; counted: number };
  t.equal(report.seen[report.seen.length - 1], LAST, `the worker ended on the last tables (${report.seen.length} generations taken over ${report.polls} polls)`);
  t.ok(report.seen.every((m, i) => i === 0 || m > report.seen[i - 1]!), 'always newer tables, never an older one back');
  t.equal(report.mismatched, 0, 'every image taken is byte for byte the tables its marker names');
  t.same([report.rejected, report.counted], [0, 0], 'no bank refused: the writer never wrote a bank the worker was reading');
});

t.test('a config whose tables would not fit a bank is refused at the services, saying what to do', async (t) => {
  const services = Array.from({ length: 4000 }, (_, i) => `  - { vip: 10.0.0.100, port: ${i + 1}, active: web1, standby: [web2] }`);
  const yaml = (n: number) => `mac: "02:00:5e:00:00:01"\nvips: [10.0.0.100]\nbackends:\n  - { name: web1, ip: 10.0.1.21 }\n  - { name: web2, ip: 10.0.1.22 }\nservices:\n${services.slice(0, n).join('\n')}\n`;
  t.ok(parseConfig(yaml(3000), 'big.yaml'), '3,000 port-mode services fit');
  t.throws(() => parseConfig(yaml(4000), 'big.yaml'),
    /big\.yaml:7:3: services: 4000 services over 1 VIP need tables of \d+ bytes; a table bank holds 4194304 .*split them over several vipgate instances/);
});

t.test('an API change whose tables would not fit a bank is refused with 409 and changes nothing', async (t) => {
  const h = await startHarness({ yaml: defaultYaml({ vips: ['10.0.0.100', '10.0.0.101', '10.0.0.200'] }) });
  t.teardown(() => h.close());
  // Registrations of 64 ports each (the most one may serve) until the tables outgrow a bank.
  let refused: { status: number; json: { error?: { code: string; message: string } } } | null = null;
  let before = '';
  for (let i = 0; i < 80 && !refused; i++) {
    before = h.snapshot();
    const serves = Array.from({ length: 64 }, (_, j) => `10.0.0.200:${1 + i * 64 + j}`);
    const r = await h.req('POST', '/v1/backends', { name: `r${i}`, ip: `10.0.2.${i + 1}`, mac: null, serves });
    if (r.status !== 201) refused = r;
  }
  t.ok(refused, 'a registration was refused');
  t.equal(refused!.status, 409);
  t.match(refused!.json.error, { code: 'EAPI_CONFLICT', message: /cannot build the tables: the tables need \d+ bytes and a table bank holds 4194304/ });
  t.equal(h.snapshot(), before, 'nothing changed');
});
