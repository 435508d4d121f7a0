// Run as a separate process by test/shm-integrity.test.ts, to be SIGKILLed at a random moment:
// attach a region as its packet worker would and make nat flows as fast as it can, over and over
// (every other round resets every flow, and the next SYN of that key ends it and makes a new
// one: remove + insert), so the
// kill lands inside a flow's creation with high probability.
import { attachRegion } from '../../src/shm/region';
import { Dataplane } from '../../src/dataplane/dataplane';
import { Tables } from '../../src/tables/services';
import { NOW } from '../../src/dataplane/state';
import { natSpec, OUR_MAC, CLIENT_MAC } from './dp';
import { tcp } from './frames';
import { TCP_SYN, TCP_RST, TCP_ACKF } from '../../src/wire/tcp';

const region = attachRegion(process.argv[2]!);
region.checkRecords();
const dp = new Dataplane(region.state, new Tables(natSpec()));
const KEYS = Number(process.argv[3] ?? 3000);
const seg = (i: number, flags: number) =>
  tcp({ srcMac: CLIENT_MAC, dstMac: OUR_MAC, src: `10.0.3.${1 + (i % 200)}`, dst: '10.0.0.100', srcPort: 20000 + Math.floor(i / 200), dstPort: 80, flags, seq: i });
const syns = Array.from({ length: KEYS }, (_, i) => seg(i, TCP_SYN));
const rsts = Array.from({ length: KEYS }, (_, i) => seg(i, TCP_RST | TCP_ACKF));
let told = false;
for (let round = 0; ; round++) {
  dp.clock[NOW] = 1000 + round;
  // Odd rounds reset every flow (closing), even rounds open them again: remove + insert.
  for (const f of round & 1 ? rsts : syns) dp.step(f, 0, f.length);
  if (!told) { told = true; process.stdout.write('ready\n'); }
}
