// The shared-state region (src/shm/region.ts, native-bindings/shm.c): made by one process, a flow
// written through a Dataplane over it, then mapped again by another process (a child `node`, as
// a new packet worker is) which finds the flow and forwards its reply.
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { openRegion, attachRegion, regionPath, Region, RegionShape } from '../src/shm/region';
import { shmAvailable } from '../native-bindings/shm';
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
