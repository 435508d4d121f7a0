// Run as a separate process by test/banks.test.ts: a packet worker's side of the table banks over
// a region file the test process (the supervisor's side) made. Polls the banks as fast as it can
// while the parent publishes, rebuilds the tables each generation should hold from its marker and
// compares the image byte for byte. Prints "ready", then one JSON line when it has seen the last.
import { attachRegion } from '../../src/shm/region';
import { BankReader } from '../../src/shm/banks';
import { Tables, TablesSpec } from '../../src/tables/services';
import { Ctr } from '../../src/dataplane/counters';

/** Tables number `i`: a VIP, a backend and a port-mode service that carry i, so each is different. */
export function markedSpec(i: number): TablesSpec {
  const vip = (0x0a640000 + i) | 0;
  return {
    mac: new Uint8Array([2, 0, 0x5e, 0, 0, 1]), mode: i % 2 ? 'nat' : 'dsr', vips: [vip, 0x0a000064],
    backends: [{ name: 'web1', ip: 0x0a000115, mac: null }, { name: `b${i}`, ip: (0x0a010000 + i) | 0, mac: null, weight: 1 + (i % 200) }],
    services: [{ vip, port: 1 + (i % 65535), active: ['web1', `b${i}`], standby: [] }, { vip: 0x0a000064, port: 0, active: 'web1', standby: [`b${i}`] }],
  };
}

/** The marker a Tables from markedSpec carries (its first VIP, found by probing the VIP set). */
function markerOf(t: Tables): number {
  for (let s = 0; s <= t.vipMask; s++) if (t.vipVals[s] === 1) return t.vipKeys[s]! - 0x0a640000;
  return -1;
}

if (require.main === module) {
  const [file, lastText] = process.argv.slice(2);
  const last = Number(lastText);
  const region = attachRegion(file!);
  const r = new BankReader(region.banks.memory, region.banks.offset, region.state.counters);
  process.stdout.write('ready\n');
  const seen: number[] = [];
  let mismatched = 0, polls = 0;
  const deadline = Date.now() + 60_000;
  for (;;) {
    polls++;
    const t = r.poll();
    if (t) {
      const m = markerOf(t);
      seen.push(m);
      if (!Buffer.from(t.image).equals(Buffer.from(new Tables(markedSpec(m)).image))) mismatched++;
      if (m === last) break;
    }
    if (Date.now() > deadline) break;
  }
  process.stdout.write(JSON.stringify({ seen, mismatched, polls, rejected: r.rejected, counted: region.state.counters[Ctr.tables_bank_rejected] }) + '\n');
  region.close();
}
