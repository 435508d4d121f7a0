// The shared-state region's size (issue 9): memory per flow, and the largest flow table whose
// region fits in 1 GiB; plus what the check at a worker's start costs (src/shm/integrity.ts),
// since a restarted worker runs it before it forwards a frame.
//
//   npm run bench:shm-size       (= tsc && node dist/bench/shm-size.js)
//
// Sizes are computed from the layout (regionSize: header + StateViews + banks) and the largest
// one is also made for real under /dev/shm (a sparse file on tmpfs: making it touches only the
// headers) to show the figure is the file's size. Memory per flow is region bytes / flow capacity:
// a flow record is one 64-byte cache line plus a 4-byte nat reverse-index slot, and the table keeps
// at least twice as many slots as flows (a load factor of at most 1/2, rounded up to a power of 2),
// so it is ~136 B at a power-of-2 capacity and up to twice that just above one.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { regionSize, openRegion, REGION_DIR } from '../src/shm/region';
import { banksSize } from '../src/shm/banks';
import { shmAvailable } from '../native-bindings/shm';
import { FlowTable, FS_SYN } from '../src/dataplane/flows';
import { NOW, newClock } from '../src/dataplane/state';
import { scanRecords } from '../src/shm/integrity';
import { CONFIG_LIMITS } from '../src/control/config';

const GiB = 2 ** 30;
const NEIGHBOURS = 4096; // the config's default neighbours.capacity
const banks = banksSize();
const size = (flowCapacity: number) => regionSize({ flowCapacity, neighbourCapacity: NEIGHBOURS }, banks);
const mib = (b: number) => (b / 2 ** 20).toFixed(1);

console.log(`region = 4 KiB header + state (flows, nat reverse index, neighbours ${NEIGHBOURS}, counters, per-backend) + table banks ${mib(banks)} MiB`);
console.log('flow capacity   region MiB   bytes/flow   of 1 GiB');
for (const cap of [65_536, 65_537, 1_048_576, 4_194_304, 7_000_000, CONFIG_LIMITS.flowCapacity.max]) {
  const b = size(cap);
  console.log(`${String(cap).padStart(13)}   ${mib(b).padStart(10)}   ${(b / cap).toFixed(1).padStart(10)}   ${(b / GiB).toFixed(3).padStart(8)}x`);
}

// The largest capacity whose region fits in 1 GiB (size grows with capacity: bisect).
let lo = 1, hi = CONFIG_LIMITS.flowCapacity.max;
while (lo < hi) { const mid = Math.ceil((lo + hi) / 2); if (size(mid) <= GiB) lo = mid; else hi = mid - 1; }
console.log(`largest flow capacity fitting 1 GiB: ${lo} (${mib(size(lo))} MiB, ${(size(lo) / lo).toFixed(1)} B/flow); ${lo + 1} needs ${mib(size(lo + 1))} MiB`);

const avail = shmAvailable();
if (!avail.ok) {
  console.log(`not made for real, nor the start-up check timed: ${avail.why}`);
  process.exit(0);
}
const timeouts = { halfOpenTimeoutMs: 1e9, establishedTimeoutMs: 1e9, closingTimeoutMs: 1e9, neighbourTtlMs: 1e9 };
const file = path.join(REGION_DIR, `vipgate-bench-${process.pid}.state`);
try {
  const r = openRegion({ path: file, shape: { iface: 'bench0', flowCapacity: lo, neighbourCapacity: NEIGHBOURS, seed: 1 }, timeouts, fresh: true, version: 'bench', banksBytes: banks });
  console.log(`made ${file}: ${fs.statSync(file).size} bytes (${r.bytes === size(lo) ? 'as computed' : `computed ${size(lo)}`})`);
  r.close();
} finally { fs.rmSync(file, { force: true }); }

// The start-up check over a region half full of flows, at the default capacity and at 1Mi.
console.log('start-up check (scanRecords): flow capacity, live flows, ms');
for (const cap of [65_536, 1_048_576]) {
  try {
    const r = openRegion({ path: file, shape: { iface: 'bench0', flowCapacity: cap, neighbourCapacity: NEIGHBOURS, seed: 1 }, timeouts, fresh: true, version: 'bench', banksBytes: banks });
    const clock = newClock(1000);
    const ft = new FlowTable(r.state, clock);
    const mac = new Uint8Array(6);
    for (let i = 0; i < cap / 2; i++) ft.insert(0x0a000000 + (i >> 10), 0x0a000064, ((40000 + (i & 1023)) << 16) | 80, 0, 0x0a000115, -1, mac, 0, FS_SYN);
    clock[NOW] = 2000;
    const t0 = performance.now();
    const rep = scanRecords(r.state);
    const ms = performance.now() - t0;
    console.log(`${String(cap).padStart(13)}   ${String(rep.flowsChecked).padStart(9)}   ${ms.toFixed(1)}`);
    r.close();
  } finally { fs.rmSync(file, { force: true }); }
}
