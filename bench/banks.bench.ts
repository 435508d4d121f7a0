// Table-bank benchmark (src/shm/banks.ts): what publishing tables through a bank costs control
// and the packet worker, for a typical config and for the largest one a bank holds.
//
// Run:   npm run bench:banks            (= tsc && node dist/bench/banks.bench.js)
//        node dist/bench/banks.bench.js [--json] [--rounds N]
//
// Per table size, each the median and p99 of --rounds rounds (µs), in one process over an
// ordinary ArrayBuffer (the same code as over the /dev/shm mapping; no page faults after the first
// round):
//   build      new Tables(spec, prev): what control already spends on every change (for scale)
//   publish    BankWriter.publish: copy the image into the idle bank, checksum, switch
//   poll       BankReader.poll after a publish, summed over the polls until the tables are taken
//              (copy out, checksum, views (Tables.fromImage), ack; BANK_POLL_CHUNK_BYTES per poll)
//   longest    the longest of those polls: what one batch of frames waits, at most, for a change
//   idle poll  BankReader.poll when nothing moved: what every batch of frames pays (ns)
// Then side-by-side ratios from the same run: publish and poll against build, largest against typical.

import { performance } from 'node:perf_hooks';
import { Tables, TablesSpec } from '../src/tables/services';
import { BankWriter, BankReader, banksSize, TABLE_IMAGE_BYTES } from '../src/shm/banks';

const argv = process.argv.slice(2);
const JSON_OUT = argv.includes('--json');
const ri = argv.indexOf('--rounds');
const ROUNDS = ri >= 0 ? Math.max(5, Number(argv[ri + 1]) | 0) : 200;

/** `vips` VIPs, `services` port-mode services spread over them, each with `members` of `backends` backends (2 active, the rest standby). */
function spec(vips: number, services: number, members: number, backends: number): TablesSpec {
  const names = Array.from({ length: backends }, (_, i) => `b${i}`);
  return {
    mac: new Uint8Array([2, 0, 0x5e, 0, 0, 1]), mode: 'nat',
    vips: Array.from({ length: vips }, (_, i) => (0x0a000000 + i) | 0),
    backends: names.map((name, i) => ({ name, ip: (0x0a100000 + i) | 0, mac: null, weight: 50 + (i % 100) })),
    services: Array.from({ length: services }, (_, i) => {
      const m = Array.from({ length: members }, (_, j) => names[(i * 7 + j) % backends]!);
      return { vip: (0x0a000000 + (i % vips)) | 0, port: 1 + Math.floor(i / vips), active: m.slice(0, 2), standby: m.slice(2) };
    }),
  };
}

const SIZES: Array<[string, TablesSpec, number]> = [
  // The lab's shape: a few VIPs and services, a handful of backends.
  ['typical (4 VIPs, 8 services, 16 backends)', spec(4, 8, 3, 16), ROUNDS],
  // About the most a bank holds: 3,000 services of 64 members over 1,000 VIPs, 1,024 backends
  // (MAX_BACKENDS). Fewer rounds: control spends a quarter of a second building each.
  ['largest (1,000 VIPs, 3,000 services x 64 members, 1,024 backends)', spec(1000, 3000, 64, 1024), Math.max(5, ROUNDS / 10 | 0)],
];

interface Figures { name: string; bytes: number; build: number[]; publish: number[]; poll: number[]; longest: number[]; polls: number; idle_ns: number }

function quantile(a: number[], q: number): number {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

function measure(name: string, sp: TablesSpec, rounds: number): Figures {
  const mem = new ArrayBuffer(banksSize());
  const w = new BankWriter(mem, 0), r = new BankReader(mem, 0);
  let prev = new Tables(sp);
  const f: Figures = { name, bytes: prev.image.byteLength, build: [], publish: [], poll: [], longest: [], polls: 0, idle_ns: 0 };
  if (f.bytes > TABLE_IMAGE_BYTES) throw new Error(`bench: ${name} needs ${f.bytes} bytes, more than a bank's ${TABLE_IMAGE_BYTES}`);
  for (let i = -3; i < rounds; i++) { // 3 rounds of warm-up
    let t0 = performance.now();
    const t = new Tables(sp, prev);
    const build = performance.now() - t0;
    t0 = performance.now();
    if (!w.publish(t)) throw new Error('bench: publish found the reader behind');
    const publish = performance.now() - t0;
    // Polls until the tables are taken (a big set takes several, BANK_POLL_CHUNK_BYTES each).
    let poll = 0, longest = 0, polls = 0;
    for (let got = null; !got; polls++) {
      t0 = performance.now();
      got = r.poll();
      const dt = performance.now() - t0;
      poll += dt;
      longest = Math.max(longest, dt);
      if (polls > 10_000) throw new Error('bench: poll found nothing');
    }
    if (i >= 0) { f.build.push(build * 1000); f.publish.push(publish * 1000); f.poll.push(poll * 1000); f.longest.push(longest * 1000); f.polls = polls; }
    prev = t;
  }
  const n = 1_000_000;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) if (r.poll() !== null) throw new Error('bench: idle poll found tables');
  f.idle_ns = (performance.now() - t0) * 1e6 / n;
  return f;
}

function main(): void {
  console.log(`vipgate table-bank benchmark — node ${process.version}, ${ROUNDS} rounds (largest: ${Math.max(5, ROUNDS / 10 | 0)}), µs (median / p99)`);
  const all = SIZES.map(([n, s, k]) => { const f = measure(n, s, k); console.error(`  ${n}: done`); return f; });
  const us = (a: number[]) => `${quantile(a, 0.5).toFixed(1)} / ${quantile(a, 0.99).toFixed(1)}`;
  const head = ['tables', 'image', 'build µs', 'publish µs', 'poll µs (all)', 'polls', 'longest poll µs', 'idle poll'];
  const rows = all.map((f) => [f.name, `${(f.bytes / 1024).toFixed(1)} KiB`, us(f.build), us(f.publish), us(f.poll), String(f.polls), us(f.longest), `${f.idle_ns.toFixed(1)} ns`]);
  const wid = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (c: string[]) => c.map((x, i) => (i === 0 ? x.padEnd(wid[i]!) : x.padStart(wid[i]!))).join('  ');
  console.log(line(head));
  console.log(wid.map((x) => '-'.repeat(x)).join('  '));
  for (const r of rows) console.log(line(r));
  const med = (a: number[]) => quantile(a, 0.5);
  console.log('\nratios, side by side in this run (medians):');
  for (const f of all) {
    console.log(`  ${f.name}: publish / build ${(med(f.publish) / med(f.build)).toFixed(2)}, poll / build ${(med(f.poll) / med(f.build)).toFixed(2)}`);
  }
  const [a, b] = all;
  if (a && b) console.log(`  largest / typical: image ${(b.bytes / a.bytes).toFixed(0)}x, publish ${(med(b.publish) / med(a.publish)).toFixed(0)}x, poll ${(med(b.poll) / med(a.poll)).toFixed(0)}x, build ${(med(b.build) / med(a.build)).toFixed(0)}x`);
  if (JSON_OUT) {
    console.log(JSON.stringify(all.map((f) => ({
      tables: f.name, image_bytes: f.bytes, idle_poll_ns: +f.idle_ns.toFixed(2),
      polls: f.polls, ...Object.fromEntries((['build', 'publish', 'poll', 'longest'] as const).flatMap((k) => [[`${k}_us_p50`, +med(f[k]).toFixed(2)], [`${k}_us_p99`, +quantile(f[k], 0.99).toFixed(2)]])),
    }))));
  }
}

main();
