// Record integrity in the shared state (issue 9 item 5, src/shm/integrity.ts): torn and impossible
// records are dropped or repaired and counted, never misread; the gauges are recounted; and a
// writer SIGKILLed in the middle of making flows leaves nothing the check has to drop.
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { build, reasonName, OUR_MAC, CLIENT_MAC, WEB1_MAC } from './helpers/dp';
import { tcp } from './helpers/frames';
import { TCP_SYN, TCP_ACKF } from '../src/wire/tcp';
import { scanRecords } from '../src/shm/integrity';
import { Ctr } from '../src/dataplane/counters';
import { B_STATE, B_VERIFIED, F_CLI, F_BACKEND, F_RSLOT, D_LAST, NOW, T_ECHO_TOKENS, T_ECHO_LAST, StateViews } from '../src/dataplane/state';
import { FS_DEAD } from '../src/dataplane/flows';
import { openRegion, attachRegion } from '../src/shm/region';
import { shmAvailable } from '../native-bindings/shm';
import { Dataplane } from '../src/dataplane/dataplane';
import { Tables } from '../src/tables/services';
import { natSpec } from './helpers/dp';

const syn = (port: number) => tcp({ srcMac: CLIENT_MAC, dstMac: OUR_MAC, src: '10.0.0.7', dst: '10.0.0.101', srcPort: port, dstPort: 80, flags: TCP_SYN, seq: 1 });
const synack = (port: number) => tcp({ srcMac: WEB1_MAC, dstMac: OUR_MAC, src: '10.0.1.21', dst: '10.0.0.7', srcPort: 80, dstPort: port, flags: TCP_SYN | TCP_ACKF, seq: 5, ack: 2 });
const ack = (port: number) => tcp({ srcMac: CLIENT_MAC, dstMac: OUR_MAC, src: '10.0.0.7', dst: '10.0.0.101', srcPort: port, dstPort: 80, flags: TCP_ACKF, seq: 2, ack: 6 });

function liveSlots(v: StateViews): number[] {
  const out: number[] = [];
  for (let s = 0; s < v.flowSlots; s++) if (v.fb[s << 6]! > FS_DEAD) out.push(s);
  return out;
}

/** A nat packet path with flows from client ports 40000.. (one each), and its flow slots by port. */
function natWith(ports: number[]) {
  const b = build('nat');
  const slot = new Map<number, number>();
  for (const p of ports) {
    const f = syn(p);
    b.dataplane.process(f, 0, f.length, 1000);
    slot.set(p, b.dataplane.flows.lookup(0x0a000007, 0x0a000065, ((p << 16) | 80) | 0));
  }
  return { ...b, slot: (p: number) => slot.get(p)! };
}
const send = (dp: Dataplane, f: Buffer, now = 1100) => { dp.process(f, 0, f.length, now); return reasonName(dp.lastDrop); };

t.test('torn and impossible flow records are dropped or repaired, and counted', async (t) => {
  const ports = [40000, 40001, 40002, 40003, 40004, 40005, 40006, 40007];
  const b = natWith(ports);
  const v = b.state, dp = b.dataplane;
  t.equal(v.counters[Ctr.flows_active], 8);
  const created = v.counters[Ctr.flows_created];
  v.fb[(b.slot(40000) << 6) + B_STATE] = 9;                       // impossible state byte
  v.fw[(b.slot(40001) << 4) + F_CLI] ^= 0x100;                    // key torn: no longer where its hash says
  v.rRef[v.fw[(b.slot(40002) << 4) + F_RSLOT]! - 1] = 0;          // reverse entry lost: relinkable
  v.fw[(b.slot(40003) << 4) + F_BACKEND] = 70000;                 // backend slot outside the per-backend arrays
  v.fd[(b.slot(40004) << 3) + D_LAST] = NaN;                      // would never expire
  v.fw[(b.slot(40005) << 4) + F_RSLOT] = v.fw[(b.slot(40006) << 4) + F_RSLOT]!; // claims 40006's reverse entry
  v.fb[(b.slot(40007) << 6) + B_VERIFIED] = 3;                    // impossible flag
  v.counters[Ctr.flows_active] = 42;                              // a gauge off (writer killed between live and count)

  const r = scanRecords(v);
  t.equal(r.flowsChecked, 8, 'every record that claims to be live, the impossible state byte too');
  t.same(r.flowsDropped, { impossibleState: 1, badField: 3, unreachable: 1, reverseBroken: 1 });
  t.equal(r.reverseRepaired, 1);
  t.equal(v.counters[Ctr.state_records_dropped], 6, 'dropped, counted');
  t.equal(v.counters[Ctr.state_records_repaired], 1, 'repaired, counted');
  t.equal(v.counters[Ctr.flows_active], 2, 'flows_active recounted: 40002 (repaired) and 40006');
  t.equal(v.counters[Ctr.flows_created], created, 'a monotonic counter keeps its value');
  t.equal(v.bFlows[b.state.fw[(b.slot(40006) << 4) + F_BACKEND]!], 2, 'per-backend live flows recounted');
  t.same(liveSlots(v).sort(), [b.slot(40002), b.slot(40006)].sort());
  for (const s of [40000, 40001, 40003, 40004, 40005, 40007]) t.equal(v.fb[b.slot(s) << 6], FS_DEAD, `${s}: a tombstone (probe chains stay whole)`);

  // Never misread: the dropped flows' segments are unknown; the repaired one's reply is matched.
  t.equal(send(dp, ack(40000)), 'unknown_flow', 'a dropped flow is not forwarded anywhere');
  t.equal(send(dp, ack(40003)), 'unknown_flow');
  t.equal(send(dp, synack(40002)), 'tx', 'the relinked reverse entry matches the backend\'s reply');
  t.equal(send(dp, synack(40006)), 'tx', 'the flow whose entry was claimed keeps it');
  t.equal(send(dp, synack(40005)), 'not_for_us', 'the claimant\'s reply matches nothing');

  const again = scanRecords(v);
  t.same([again.flowsChecked, again.reverseRepaired, again.gaugesCorrected, again.flowsDropped], [2, 0, 0, { impossibleState: 0, badField: 0, unreachable: 0, reverseBroken: 0 }], 'a clean state: the check changes nothing');
});

t.test('neighbour records: an impossible state or a NaN time is dropped (a stale tombstone)', async (t) => {
  const b = build('nat');
  const v = b.state;
  v.nState[3] = 1; v.nIp[3] = 0x0a000115; v.nSeen[3] = NaN;
  v.nState[5] = 7;
  v.nState[6] = 1; v.nSeen[6] = 5;
  const r = scanRecords(v);
  t.equal(r.neighboursDropped, 2);
  t.same([v.nState[3], v.nSeen[3], v.nState[5], v.nSeen[5], v.nSeen[6]], [1, -Infinity, 1, -Infinity, 5], 'used but stale; the good one kept');
  t.equal(v.counters[Ctr.state_records_dropped], 2);
});

t.test('the echo bucket: NaN tokens or refill time are reset (they would never limit, or never refill)', async (t) => {
  const b = build('nat');
  b.state.times[T_ECHO_TOKENS] = NaN;
  b.state.times[T_ECHO_LAST] = NaN;
  scanRecords(b.state);
  t.same([b.state.times[T_ECHO_TOKENS], b.state.times[T_ECHO_LAST]], [0, -Infinity], 'empty, refilled from the next echo on');
});

t.test('a record whose key is written but that was never made live is invisible', async (t) => {
  const b = natWith([40000]);
  const v = b.state, s = b.slot(40000);
  v.fb[s << 6] = FS_DEAD; // as if killed before the state byte: the key is there, the record is not live
  t.equal(scanRecords(v).flowsChecked, 0);
  t.equal(send(b.dataplane, synack(40000)), 'not_for_us', 'its reverse entry does not count');
  t.equal(send(b.dataplane, ack(40000)), 'unknown_flow');
});

const avail = shmAvailable();

async function killWhileWriting(t: Test, file: string, delayMs: number): Promise<void> {
  const child = spawn(process.execPath, [path.join(__dirname, 'helpers', 'shm-writer.js'), file, '3000'], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`writer exited early (${code})`)));
    child.stdout!.once('data', () => resolve());
  });
  await new Promise((r) => setTimeout(r, delayMs));
  child.removeAllListeners('exit');
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await gone;
  t.pass(`writer ${child.pid} killed ${delayMs} ms into its loop`);
}

t.test('a writer SIGKILLed while making flows leaves only whole records', async (t) => {
  if (!avail.ok) { t.plan(0, `shm addon unavailable: ${avail.why}`); return; }
  const file = path.join('/dev/shm', `vipgate-test-${process.pid}-kill.state`);
  t.teardown(() => { try { fs.unlinkSync(file); } catch { /* gone */ } });
  const timeouts = { halfOpenTimeoutMs: 3_600_000, establishedTimeoutMs: 3_600_000, closingTimeoutMs: 3_600_000, neighbourTtlMs: 60_000 };
  openRegion({ path: file, shape: { iface: 'veth-test', flowCapacity: 4096, neighbourCapacity: 64, seed: 11 }, timeouts, fresh: true, version: 'test', banksBytes: 4096 }).close();
  let reused = 0;
  for (const delay of [15, 40, 90, 150, 230]) {
    await killWhileWriting(t, file, delay);
    const r = attachRegion(file);
    const rep = r.checkRecords();
    t.same([rep.flowsDropped, rep.reverseRepaired], [{ impossibleState: 0, badField: 0, unreachable: 0, reverseBroken: 0 }, 0], `after a kill at ${delay} ms: nothing torn to drop or relink`);
    t.ok(rep.gaugesCorrected <= 4, `at most the gauges of the one flow being made are off (${rep.gaugesCorrected})`);
    const dp = new Dataplane(r.state, new Tables(natSpec()));
    dp.clock[NOW] = 2000;
    const live = liveSlots(r.state);
    let whole = 0;
    for (const s of live) {
      const cli = dp.flows.client(s), ports = dp.flows.ports(s);
      if (dp.flows.lookup(cli, dp.flows.vip(s), ports) === s && dp.flows.reverseLookup(dp.flows.backendIp(s), cli, ports) === s) whole++;
    }
    t.equal(whole, live.length, `every one of the ${live.length} live flows is found forward and by its nat reverse entry`);
    t.equal(r.state.counters[Ctr.flows_active], live.length, 'flows_active recounted');
    reused = r.state.counters[Ctr.flows_reused]!;
    r.close();
  }
  t.ok(reused > 0, `the writers also ended and remade flows (${reused} reused): the kills landed in remove + insert too`);
});
