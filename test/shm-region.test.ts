// The shared-state region (src/shm/region.ts, native-bindings/shm.c): made by one process, a flow
// written through a Dataplane over it, then mapped again by another process (a child `node`, as
// a new packet worker is) which finds the flow and forwards its reply.
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { openRegion, attachRegion, regionPath, regionSize, Region, RegionShape, HEADER_BYTES, REGION_VERSION, W_MAGIC, W_VERSION, W_STATE_VERSION, W_FLOW_CAP, W_SEED, W_CHECKSUM, headerChecksum } from '../src/shm/region';
import { STATE_LAYOUT_VERSION, stateSize } from '../src/dataplane/state';
import { VipgateError } from '../src/control/errors';
import { shmAvailable } from '../native-bindings/shm';
import { shmPages, describePages } from '../src/shm/pages';
import { Dataplane } from '../src/dataplane/dataplane';
import { Tables } from '../src/tables/services';
import { Ctr } from '../src/dataplane/counters';
import { natSpec, reasonName, OUR_MAC, CLIENT_MAC } from './helpers/dp';
import { tcp } from './helpers/frames';
import { TCP_SYN } from '../src/wire/tcp';

const avail = shmAvailable();
const dir = '/dev/shm';
const BANKS = 64 * 1024; // the tests' stand-in for banks.ts's banksSize(): only its size matters here
const timeouts = { halfOpenTimeoutMs: 5000, establishedTimeoutMs: 300_000, closingTimeoutMs: 10_000, neighbourTtlMs: 60_000 };
const shape = (o: Partial<RegionShape> = {}): RegionShape => ({ iface: 'veth-test', flowCapacity: 1024, neighbourCapacity: 64, seed: 7, ...o });
let n = 0;
function tmpFile(t: Test): string {
  const f = path.join(dir, `vipgate-test-${process.pid}-${n++}.state`);
  t.teardown(() => { try { fs.unlinkSync(f); } catch { /* gone */ } });
  return f;
}
function open(file: string, o: Partial<Parameters<typeof openRegion>[0]> = {}): Region {
  return openRegion({ path: file, shape: shape(), timeouts, fresh: false, version: '0.1.0-test', banksBytes: BANKS, ...o });
}
const natTables = () => new Tables(natSpec());
const clientSyn = () => tcp({ srcMac: CLIENT_MAC, dstMac: OUR_MAC, src: '10.0.0.7', dst: '10.0.0.101', srcPort: 40000, dstPort: 80, flags: TCP_SYN, seq: 1000 });

t.test('regionPath: one file per interface and network namespace under /dev/shm', async (t) => {
  t.match(regionPath('eth0'), /^\/dev\/shm\/vipgate-eth0(\.netns\d+)?\.state$/);
  t.match(regionPath('a/b'), /vipgate-a_b/, 'a name cannot climb out of the directory');
});

t.test('a flow written in one process is found by another that maps the region', async (t) => {
  if (!avail.ok) { t.plan(0, `shm addon unavailable: ${avail.why}`); return; }
  const file = tmpFile(t);
  const r = open(file);
  t.ok(r.created, 'made');
  t.equal(fs.statSync(file).mode & 0o777, 0o600, 'mode 0600: flows name clients');
  t.equal(r.bytes, fs.statSync(file).size);
  t.ok(r.banks.offset >= r.state.flowSlots * 64 && r.banks.offset % 4096 === 0 && r.banks.offset + r.banks.bytes <= r.bytes, 'banks after the state, page aligned, inside the file');
  const dp = new Dataplane(r.state, natTables());
  const syn = clientSyn();
  t.equal(reasonName((dp.process(syn, 0, syn.length, 1000), dp.lastDrop)), 'tx', 'the SYN makes a nat flow');
  t.equal(r.state.counters[Ctr.flows_active], 1);
  r.close();
  t.equal(r.state.fb.length, 0, 'after close the views read as empty (no access to unmapped memory)');

  const child = spawnSync(process.execPath, [path.join(__dirname, 'helpers', 'shm-child.js'), file, '2000'], { encoding: 'utf8', timeout: 30_000 });
  t.equal(child.status, 0, `child ran: ${child.stderr}`);
  const out = JSON.parse(child.stdout) as Record<string, unknown>;
  t.not(out['pid'], process.pid);
  t.equal(out['reason'], 'tx', 'the backend\'s SYN-ACK matched the flow through the nat reverse index');
  t.same([out['src'], out['dst']], ['10.0.0.101', '10.0.0.7'], 'rewritten back to the VIP');
  t.same([out['flowsActive'], out['flowsCreated'], out['framesIn'], out['toClient']], [1, 1, 2, 1], 'counters kept their values across the attach');
  t.same((out['report'] as { flowsChecked: number }).flowsChecked, 1, 'the attach-time check saw the one flow and kept it');

  const again = open(file);
  t.notOk(again.created, 'opened again: attached, not made');
  t.equal(again.state.counters[Ctr.forwarded_to_client], 1, 'the child\'s work is visible here');
  again.close();
  const w = attachRegion(file);
  t.same(w.shape, shape(), 'a worker reads the shape from the header');
  w.close();
});

/** Rewrite the file's header words through the file (as another process or a bug would); reseal: recompute the checksum (a consistent header from another build). */
function forge(file: string, words: Array<[number, number]>, reseal: boolean): void {
  const fd = fs.openSync(file, 'r+');
  const h = Buffer.alloc(HEADER_BYTES);
  fs.readSync(fd, h, 0, HEADER_BYTES, 0);
  const u32 = new Uint32Array(h.buffer, h.byteOffset, HEADER_BYTES / 4);
  for (const [w, x] of words) u32[w] = x;
  if (reseal) u32[W_CHECKSUM] = headerChecksum(new Uint8Array(h.buffer, h.byteOffset, HEADER_BYTES));
  fs.writeSync(fd, h, 0, HEADER_BYTES, 0);
  fs.closeSync(fd);
}

function refused(t: Test, fn: () => unknown, code: string, says: RegExp[], desc: string): void {
  try {
    fn();
    t.fail(`${desc}: accepted`);
  } catch (e) {
    t.ok(e instanceof VipgateError, `${desc}: a VipgateError`);
    t.equal((e as VipgateError).code, code, `${desc}: ${code}`);
    for (const re of says) t.match((e as Error).message, re, `${desc}: says ${re}`);
  }
}

const made = (t: Test, o: Partial<RegionShape> = {}): string => {
  const file = tmpFile(t);
  const r = open(file, { shape: shape(o) });
  const dp = new Dataplane(r.state, natTables());
  const syn = clientSyn();
  dp.process(syn, 0, syn.length, 1000);
  r.close();
  return file;
};
const FRESH = /--fresh-state to discard it \(cuts every flow through it\)/;

t.test('header checks: every mismatch is refused with what differs and what to do', async (t) => {
  if (!avail.ok) { t.plan(0, `shm addon unavailable: ${avail.why}`); return; }
  refused(t, () => open(made(t), { shape: shape({ flowCapacity: 2048 }) }), 'ESHM_MISMATCH',
    [/flow capacity 1024 in the file, 2048 in the config/, FRESH, /keep the config/], 'another flow capacity');
  refused(t, () => open(made(t), { shape: shape({ neighbourCapacity: 128 }) }), 'ESHM_MISMATCH',
    [/neighbour capacity 64 in the file, 128 in the config/], 'another neighbour capacity');
  refused(t, () => open(made(t), { shape: shape({ iface: 'eth1' }) }), 'ESHM_MISMATCH',
    [/interface "veth-test" in the file, "eth1" in the config/, FRESH], 'another interface');
  refused(t, () => open(made(t), { banksBytes: BANKS * 2 }), 'ESHM_MISMATCH',
    [/table banks of 65536 bytes in the file, 131072 in this vipgate/], 'banks of another size');
  // Two differences: both named.
  refused(t, () => open(made(t), { shape: shape({ iface: 'eth1', flowCapacity: 4096 }) }), 'ESHM_MISMATCH',
    [/interface .*; flow capacity/], 'two differences');

  const seeded = made(t, { seed: 7 });
  const r = open(seeded, { shape: shape({ seed: 99 }) });
  t.equal(r.state.seed, 7, 'the seed in the file wins over the config\'s (its flows are hashed with it)');
  t.equal(r.state.counters[Ctr.flows_active], 1, 'and its flow is still there');
  r.close();

  const v = made(t);
  forge(v, [[W_VERSION, REGION_VERSION + 1]], true);
  refused(t, () => open(v), 'ESHM_MISMATCH', [new RegExp(`region layout version ${REGION_VERSION + 1} in the file \\(made by vipgate 0.1.0-test at \\d{4}-`), /run the vipgate version that made it/, FRESH], 'a newer region layout');
  refused(t, () => attachRegion(v), 'ESHM_MISMATCH', [/region layout version/], 'a newer region layout (worker)');
  const sv = made(t);
  forge(sv, [[W_STATE_VERSION, STATE_LAYOUT_VERSION - 1]], true);
  refused(t, () => open(sv), 'ESHM_MISMATCH', [new RegExp(`state layout version ${STATE_LAYOUT_VERSION - 1} in the file .*, ${STATE_LAYOUT_VERSION} in this vipgate`)], 'an older state layout');
});

t.test('corrupt regions are refused, never read', async (t) => {
  if (!avail.ok) { t.plan(0, `shm addon unavailable: ${avail.why}`); return; }
  const m = made(t);
  forge(m, [[W_MAGIC, 0xdeadbeef]], false);
  refused(t, () => open(m), 'ESHM_CORRUPT', [/does not start with a vipgate region header \(magic 0xdeadbeef/, FRESH], 'wrong magic');
  refused(t, () => attachRegion(m), 'ESHM_CORRUPT', [/magic/], 'wrong magic (worker)');

  const w = made(t);
  forge(w, [[W_FLOW_CAP, 1_000_000]], false); // checksum not updated
  refused(t, () => open(w), 'ESHM_CORRUPT', [/header checksum does not match/], 'a header overwritten in place');

  const trunc = made(t);
  const full = fs.statSync(trunc).size;
  fs.truncateSync(trunc, full - 4096);
  refused(t, () => open(trunc), 'ESHM_CORRUPT', [new RegExp(`the file is ${full - 4096} bytes but its header says ${full}`), FRESH], 'truncated');
  refused(t, () => attachRegion(trunc), 'ESHM_CORRUPT', [/truncated/], 'truncated (worker)');
  fs.truncateSync(trunc, 100);
  refused(t, () => open(trunc), 'ESHM_CORRUPT', [/100 bytes, smaller than a region header/], 'truncated into the header');
  fs.truncateSync(trunc, 0);
  refused(t, () => attachRegion(trunc), 'ESHM_CORRUPT', [/0 bytes/], 'empty file (worker)');

  const grown = made(t);
  fs.truncateSync(grown, fs.statSync(grown).size + 4096);
  refused(t, () => open(grown), 'ESHM_CORRUPT', [/resized by something other than vipgate/], 'grown');

  // The state part's own header disagrees with the region header (a forged, resealed shape).
  const sh = made(t);
  forge(sh, [[W_SEED, 8]], true);
  refused(t, () => open(sh), 'ESHM_CORRUPT', [/disagrees with its header/], 'state part disagrees with the header');

  refused(t, () => attachRegion(path.join(dir, `vipgate-test-${process.pid}-absent.state`)), 'ESHM_UNAVAILABLE', [/No such file/], 'worker: no region');
});

t.test('a header never finished: openRegion makes the region again, a worker refuses it', async (t) => {
  if (!avail.ok) { t.plan(0, `shm addon unavailable: ${avail.why}`); return; }
  const h = made(t);
  forge(h, [[W_MAGIC, 0]], false); // the magic is written last: a maker killed before it leaves 0
  refused(t, () => attachRegion(h), 'ESHM_CORRUPT', [/never finished/], 'worker');
  const r = open(h);
  t.ok(r.created, 'made again');
  t.match(r.replaced, /never finished/, 'and says why');
  t.equal(r.state.counters[Ctr.flows_active], 0, 'nothing read from the unfinished one');
  r.close();
  const again = open(h);
  t.notOk(again.created, 'the new one is complete: attached next time');
  again.close();
});

t.test('--fresh-state (fresh: true) discards a region that would be refused', async (t) => {
  if (!avail.ok) { t.plan(0, `shm addon unavailable: ${avail.why}`); return; }
  const f = made(t);
  const r = open(f, { shape: shape({ flowCapacity: 4096 }), fresh: true });
  t.ok(r.created);
  t.equal(r.state.flowCapacity, 4096);
  t.equal(r.state.counters[Ctr.flows_active], 0, 'its flows are gone (the operator asked)');
  r.close();
});

t.test('timeouts are not shape: a new supervisor rewrites them', async (t) => {
  if (!avail.ok) { t.plan(0, `shm addon unavailable: ${avail.why}`); return; }
  const f = made(t);
  const r = open(f, { timeouts: { ...timeouts, establishedTimeoutMs: 1234 } });
  t.equal(r.state.times[1], 1234);
  r.close();
});

t.test('sizes past 2 GiB are carved right (no 32-bit wrap in the layout)', async (t) => {
  const max = regionSize({ flowCapacity: 16_777_216, neighbourCapacity: 4096 }, BANKS);
  t.ok(max > 2 ** 31, `16Mi flows: ${max} bytes`);
  t.equal(stateSize({ flowCapacity: 16_777_216, neighbourCapacity: 4096 }) - stateSize({ flowCapacity: 8_388_608, neighbourCapacity: 4096 }),
    2 ** 24 * 72, 'doubling the flows adds exactly their slots (64-byte record + 4-byte reverse entry + 4-byte refresh stamp each)');
});

t.test('parentDeathSignal: a process that asked for it dies with its parent (SIGKILL of the parent)', async (t) => {
  if (!avail.ok) { t.plan(0, `shm addon unavailable: ${avail.why}`); return; }
  const shmJs = JSON.stringify(path.join(__dirname, '..', 'native-bindings', 'shm.js'));
  // parent: starts the child, prints its PID once the child says it is armed, then waits.
  const childCode = `require(${shmJs}).parentDeathSignal(9); process.stdout.write('armed\\n'); setInterval(() => {}, 1000);`;
  const parentCode = `const c = require('node:child_process').spawn(process.execPath, ['-e', ${JSON.stringify(childCode)}], { stdio: ['ignore', 'pipe', 'inherit'] });
    c.stdout.once('data', () => process.stdout.write(c.pid + '\\n')); setInterval(() => {}, 1000);`;
  const parent = spawn(process.execPath, ['-e', parentCode], { stdio: ['ignore', 'pipe', 'inherit'] });
  const childPid = await new Promise<number>((resolve, reject) => {
    parent.once('exit', (c) => reject(new Error(`parent exited (${c})`)));
    parent.stdout!.once('data', (d: Buffer) => resolve(Number(String(d).trim())));
  });
  parent.removeAllListeners('exit');
  const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };
  t.ok(alive(childPid), `child ${childPid} runs`);
  parent.kill('SIGKILL');
  const deadline = Date.now() + 5000;
  while (alive(childPid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.notOk(alive(childPid), 'the child is gone once its parent was killed');
  if (alive(childPid)) process.kill(childPid, 'SIGKILL');
});

// ---- where the region lives: its pages, and a tmpfs with no room (shm_dir:, src/shm/pages.ts) ----

t.test('shmPages reads the mount holding the directory from mountinfo', async (t) => {
  const info = [
    '22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw',
    '25 22 0:23 / /dev/shm rw,nosuid,nodev shared:4 - tmpfs tmpfs rw,inode64',
    '40 22 0:30 / /run/vipgate/shm rw,relatime shared:9 - tmpfs vg-shm rw,size=2097152k,huge=within_size,inode64',
    '41 22 0:31 / /run/vip\\040gate rw,relatime - tmpfs x rw,huge=never',
    '', 'garbage line',
  ].join('\n');
  t.same(shmPages('/dev/shm', info), { mount: '/dev/shm', fsType: 'tmpfs', huge: '', hugePages: false });
  t.same(shmPages('/run/vipgate/shm', info), { mount: '/run/vipgate/shm', fsType: 'tmpfs', huge: 'within_size', hugePages: true });
  t.same(shmPages('/run/vipgate/shm/sub', info)?.mount, '/run/vipgate/shm', 'the longest mount point that holds it');
  t.same(shmPages('/run/vipgate', info)?.mount, '/', 'a prefix of a mount point is not inside it');
  t.same(shmPages('/run/vip gate', info), { mount: '/run/vip gate', fsType: 'tmpfs', huge: 'never', hugePages: false }, 'escaped spaces; huge=never is 4 KiB');
  t.same(shmPages('/var/lib', info)?.fsType, 'ext4');
  t.match(describePages('/run/vipgate/shm/vipgate-eth0.state', shmPages('/run/vipgate/shm', info)), /^2 MiB pages \(tmpfs at \/run\/vipgate\/shm, huge=within_size\)$/);
  t.match(describePages('/dev/shm/vipgate-eth0.state', shmPages('/dev/shm', info)), /^4 KiB pages \(tmpfs at \/dev\/shm\)$/);
  t.match(describePages('/x/y.state', null), /pages unknown/);
});

const canMount = avail.ok && process.getuid?.() === 0;
t.test('a region on a tmpfs of its own: huge pages where mounted with huge=, a clear refusal where there is no room', { skip: canMount ? false : 'needs the shm addon and root (it mounts two small tmpfs)' }, async (t) => {
  const base = fs.mkdtempSync('/tmp/vipgate-shm-test-');
  const mounted: string[] = [];
  t.teardown(() => {
    for (const m of mounted.reverse()) spawnSync('umount', ['-l', m]);
    fs.rmSync(base, { recursive: true, force: true });
  });
  const mount = (name: string, opts: string): string => {
    const m = path.join(base, name);
    fs.mkdirSync(m);
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', opts, `vipgate-test-${name}`, m], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`mount ${m}: ${r.stderr}`);
    mounted.push(m);
    return m;
  };

  // 8 MiB of tmpfs, a region that needs more: refused at start, nothing left behind (before,
  // the file was only sized and the first touch past the room was a SIGBUS).
  const small = mount('small', 'size=8m');
  const big = shape({ flowCapacity: 65536 });
  t.ok(regionSize(big, BANKS) > 8 << 20, `the region needs ${regionSize(big, BANKS)} bytes`);
  const file = regionPath('veth-test', small);
  refused(t, () => open(file, { shape: big }), 'ESHM_UNAVAILABLE', [/has no room for it/, /df /, /--shm-size|flows\.capacity/], 'no room');
  t.notOk(fs.existsSync(file), 'no file left behind');
  refused(t, () => open(path.join(base, 'missing', 'x.state')), 'ESHM_UNAVAILABLE', [/does not exist/, /shm_dir/], 'no such directory');

  // huge=within_size: the mapping is on 2 MiB pages once touched.
  const huge = mount('huge', 'size=64m,huge=within_size');
  t.same(shmPages(huge)?.hugePages, true, 'shmPages says 2 MiB pages');
  t.same(shmPages(small)?.hugePages, false, 'and 4 KiB on the plain tmpfs');
  const hf = regionPath('veth-test', huge);
  const r = open(hf, { shape: big });
  t.teardown(() => r.close());
  const u = new Uint8Array(r.state.memory);
  for (let i = 0; i < u.length; i += 4096) u[i] = u[i]!; // fault every page in
  const smaps = fs.readFileSync('/proc/self/smaps', 'utf8');
  const at = smaps.indexOf(hf);
  t.ok(at > 0, 'the region is mapped');
  const pmd = Number(/ShmemPmdMapped:\s+(\d+) kB/.exec(smaps.slice(at))?.[1] ?? 0);
  t.ok(pmd >= 2048, `mapped with 2 MiB pages: ShmemPmdMapped ${pmd} kB`);
});
