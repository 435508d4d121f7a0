// The one pump between links and the packet path (src/link/pump.ts), over an in-memory test link:
// what it marks for sending, that every frame is counted once (oversize frames and a throwing
// packet path included), that the rest of a batch survives a bug, the flow sweep's pacing — and
// that the packet loop allocates nothing in the steady state (v8.GCProfiler: heap growth plus
// what the collections in the window freed), so a change that makes it allocate fails here.

import t from 'tap';
import * as v8 from 'node:v8';
import { tcp, arp } from './helpers/frames';
import { build, OUR_MAC, CLIENT_MAC } from './helpers/dp';
import { Pump, newBatch } from '../src/link/pump';
import { sweepPlan, SWEEP_SLICE } from '../src/link/live';
import { Ctr, Drop, DROP_REASONS } from '../src/dataplane/counters';
import { NOW } from '../src/dataplane/state';
import { VERDICT_TX } from '../src/dataplane/dataplane';
import { TCP_SYN, TCP_ACKF } from '../src/wire/tcp';

const SLOT = 128;

/** An in-memory link: frames copied into fixed slots of one buffer, a batch over them. */
function memLink(frames: Uint8Array[]) {
  const buf = new Uint8Array(frames.length * SLOT);
  const batch = newBatch(buf, frames.length);
  frames.forEach((f, i) => { buf.set(f, i * SLOT); batch.off[i] = i * SLOT; batch.len[i] = f.length; });
  return { buf, batch };
}

const client = (i: number) => `172.16.${(i >> 8) & 255}.${i & 255}`;
const seg = (i: number, flags: number) => tcp({ srcMac: CLIENT_MAC, dstMac: OUR_MAC, src: client(i), dst: '10.0.0.100', srcPort: 40000 + (i % 1000), dstPort: 80, flags, seq: 1, ack: 1 });

function sumDrops(c: Float64Array): number { let s = 0; for (let i = 0; i < DROP_REASONS.length; i++) s += c[i]!; return s; }

t.test('a batch: TX frames keep their length, the others get 0, every frame is counted once', async (t) => {
  const b = build('dsr');
  const c = b.state.counters;
  const frames = [
    arp({ src: CLIENT_MAC, senderIp: '10.0.0.7', targetIp: '10.0.0.100', pad: true }),  // reply built in place
    seg(1, TCP_SYN),                                                                 // new flow
    seg(2, TCP_ACKF),                                                                // unknown_flow
    new Uint8Array(10),                                                              // truncated
    seg(1, TCP_ACKF),                                                                // the flow of frame 1
    seg(3, TCP_SYN),                                                                 // oversize: see below
  ];
  const { batch } = memLink(frames);
  batch.len[5] = -9000; // the link kept part of a 9000-byte frame
  b.dataplane.clock[NOW] = 1000;
  const pump = new Pump(b.dataplane, batch);
  t.equal(pump.run(frames.length), 3, 'three to send');
  t.same(Array.from(batch.len), [frames[0]!.length, frames[1]!.length, 0, 0, frames[4]!.length, 0], 'lengths mark what to send');
  t.equal(c[Ctr.frames_in], 6, 'frames_in counts every frame, the oversize one too');
  t.equal(c[Drop.frame_too_large], 1, 'frame_too_large');
  t.equal(c[Ctr.bytes_in], frames.slice(0, 5).reduce((s, f) => s + f.length, 0) + 9000, 'bytes_in counts its real length');
  t.equal(c[Drop.unknown_flow], 1);
  t.equal(c[Drop.truncated], 1);
  t.equal(c[Ctr.frames_in], c[Ctr.frames_out]! + sumDrops(c), 'frames_in = frames_out + drops');
});

t.test('a throw inside the packet path is counted once and the rest of the batch goes on', async (t) => {
  const b = build('dsr');
  const c = b.state.counters;
  const frames = [seg(1, TCP_SYN), seg(2, TCP_SYN), seg(3, TCP_SYN), seg(4, TCP_SYN), seg(5, TCP_SYN)];
  const { batch } = memLink(frames);
  const dp = b.dataplane;
  const step = dp.step.bind(dp);
  dp.step = (buf, off, len) => { if (off === 2 * SLOT) { step(buf, off, len); throw new Error('a bug'); } return step(buf, off, len); };
  b.dataplane.clock[NOW] = 1000;
  const tx = new Pump(dp, batch).run(frames.length);
  t.equal(tx, 4, 'the other four are sent');
  t.equal(batch.len[2], 0, 'the frame that threw is not sent');
  t.equal(c[Drop.internal_error], 1, 'internal_error counted once');
  t.equal(c[Ctr.flows_created], 5, 'frames after it were processed');
});

t.test('replay-style batches of one and a batch of many give the same verdicts', async (t) => {
  const frames = Array.from({ length: 64 }, (_, i) => seg(i % 16, i < 16 ? TCP_SYN : TCP_ACKF));
  const one = build('nat'), many = build('nat');
  one.dataplane.clock[NOW] = many.dataplane.clock[NOW] = 5000;
  const a = memLink(frames), bm = memLink(frames);
  const p1 = new Pump(one.dataplane, newBatch(a.buf, 1));
  const got1: number[] = [];
  for (let i = 0; i < frames.length; i++) {
    p1.batch.off[0] = a.batch.off[i]!; p1.batch.len[0] = a.batch.len[i]!;
    p1.run(1);
    got1.push(p1.batch.len[0]!);
  }
  new Pump(many.dataplane, bm.batch).run(frames.length);
  t.same(Array.from(bm.batch.len), got1, 'same lengths out');
  t.same(Buffer.from(bm.buf), Buffer.from(a.buf), 'same bytes out');
});

t.test('touching a batch first (the prefetch) changes nothing but timing', async (t) => {
  for (const mode of ['dsr', 'nat'] as const) {
    // SYNs, then ACKs of those flows, unknown ACKs, replies from the backends' side (nat: the
    // reverse index's hint), ARP and runts: every kind of hint, and frames with none.
    const back = (i: number) => tcp({ srcMac: CLIENT_MAC, dstMac: OUR_MAC, src: '10.0.1.21', dst: client(i), srcPort: 80, dstPort: 40000 + (i % 1000), flags: TCP_ACKF, seq: 1, ack: 1 });
    const frames = [
      ...Array.from({ length: 32 }, (_, i) => seg(i, TCP_SYN)),
      ...Array.from({ length: 64 }, (_, i) => seg(i, TCP_ACKF)),
      ...Array.from({ length: 32 }, (_, i) => back(i)),
      arp({ src: CLIENT_MAC, senderIp: '10.0.0.7', targetIp: '10.0.0.100', pad: true }),
      new Uint8Array(20),
    ];
    const plain = build(mode), touched = build(mode);
    plain.dataplane.clock[NOW] = touched.dataplane.clock[NOW] = 5000;
    const a = memLink(frames), b = memLink(frames);
    const p1 = new Pump(plain.dataplane, a.batch), p2 = new Pump(touched.dataplane, b.batch);
    p1.touchFrom = Infinity; p2.touchFrom = 0;
    t.equal(p2.run(frames.length), p1.run(frames.length), `${mode}: as many frames to send`);
    t.same(Array.from(b.batch.len), Array.from(a.batch.len), `${mode}: same lengths out`);
    t.same(Buffer.from(b.buf), Buffer.from(a.buf), `${mode}: same bytes out`);
    t.same(Array.from(touched.state.counters), Array.from(plain.state.counters), `${mode}: same counters`);
  }
});

t.test('the flow sweep is paced in small slices whatever the table size', async (t) => {
  for (const slots of [16, 4096, 131072, 1 << 21, 1 << 25]) {
    const p = sweepPlan(slots);
    t.ok(p.slice <= SWEEP_SLICE, `${slots} slots: a slice of ${p.slice} <= ${SWEEP_SLICE}`);
    t.ok(p.intervalMs >= 1 && p.intervalMs <= 1000, `${slots} slots: every ${p.intervalMs} ms`);
    const perPass = (p.slice * 10_000) / p.intervalMs;
    if (slots <= SWEEP_SLICE * 10_000) t.ok(perPass >= slots, `${slots} slots: every slot visited within 10 s (${Math.round(perPass)} visits)`);
    else t.same([p.slice, p.intervalMs], [SWEEP_SLICE, 1], `${slots} slots: the largest slice every millisecond (a pass takes ${Math.round(slots / SWEEP_SLICE / 1000)} s)`);
  }
});

t.test('the packet loop allocates nothing in the steady state', async (t) => {
  for (const mode of ['dsr', 'nat'] as const) {
    const b = build(mode, 'flows: { capacity: 65536 }');
    const dp = b.dataplane;
    const FLOWS = 4096, BATCH = 256;
    // Flows created and established one frame at a time.
    for (let i = 0; i < FLOWS; i++) {
      for (const f of [seg(i, TCP_SYN), seg(i, TCP_ACKF)]) {
        if (dp.process(Buffer.from(f), 0, f.length, 1000) !== VERDICT_TX) throw new Error(`setup: flow ${i} dropped`);
      }
    }
    // FLOWS ACKs in slots; each batch is restored from the pristine copy first (dsr rewrites the
    // MACs in place, nat also the address, TTL and checksums).
    const ring = memLink(Array.from({ length: FLOWS }, (_, i) => seg(i, TCP_ACKF)));
    const pristine = ring.buf.slice();
    const batch = newBatch(ring.buf, BATCH);
    const pump = new Pump(dp, batch);
    pump.touchFrom = 0; // the prefetch too (4Ki flows are under its default threshold)
    const clock = b.dataplane.clock;
    const c = b.state.counters;
    // One view per batch position, made here: a subarray per batch would be the harness allocating.
    const views = Array.from({ length: FLOWS / BATCH }, (_, k) => pristine.subarray(k * BATCH * SLOT, (k + 1) * BATCH * SLOT));
    const runBatches = (count: number, startMs: number): number => {
      let tx = 0;
      for (let k = 0; k < count; k++) {
        const first = (k * BATCH) % FLOWS;
        ring.buf.set(views[first / BATCH]!, first * SLOT);
        for (let i = 0; i < BATCH; i++) { batch.off[i] = (first + i) * SLOT; batch.len[i] = ring.batch.len[first + i]!; }
        clock[NOW] = startMs + k;
        tx += pump.run(BATCH);
      }
      return tx;
    };
    runBatches(2000, 2000); // warm-up: until the loop and the packet path run optimised code
    const FRAMES = 300_000, batches = Math.ceil(FRAMES / BATCH);
    // Allocation is not timing, but optimised code can arrive late on a loaded machine: the
    // best of five windows must be clean; one clean window proves the loop itself allocates nothing.
    const allocated: number[] = [];
    let tx = 0;
    for (let w = 0; w < 5; w++) {
      const prof = new v8.GCProfiler();
      const h0 = process.memoryUsage().heapUsed;
      prof.start();
      tx = runBatches(batches, 10_000 + w * batches);
      const h1 = process.memoryUsage().heapUsed;
      const stats = (prof.stop() as unknown as { statistics: Array<{ beforeGC: { heapStatistics: { usedHeapSize: number } }; afterGC: { heapStatistics: { usedHeapSize: number } } }> }).statistics;
      const freed = stats.reduce((s, g) => s + g.beforeGC.heapStatistics.usedHeapSize - g.afterGC.heapStatistics.usedHeapSize, 0);
      allocated.push(h1 - h0 + freed);
      if (allocated[w]! < 16 * 1024) break;
    }
    t.equal(tx, batches * BATCH, `${mode}: every frame of the last window was sent (the loop did the real work)`);
    t.equal(c[Drop.internal_error], 0, `${mode}: no internal errors`);
    const best = Math.min(...allocated);
    t.ok(best < 16 * 1024, `${mode}: ${batches * BATCH} frames allocated ${best} bytes (< 16 KiB, i.e. < 0.06 B/frame; windows: ${allocated.join(', ')})`);
  }
});
