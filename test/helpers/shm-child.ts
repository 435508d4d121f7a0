// Run as a separate process by test/shm-region.test.ts: attach a region the test process made
// (as a new packet worker would), check its records, and send the nat backend's SYN-ACK through a
// Dataplane over it at time argv[3] (ms). Prints one JSON line: what the flow table and the
// packet path saw in the mapped state.
import { attachRegion } from '../../src/shm/region';
import { Dataplane } from '../../src/dataplane/dataplane';
import { Tables } from '../../src/tables/services';
import { Ctr } from '../../src/dataplane/counters';
import { natSpec, reasonName, OUR_MAC, WEB1_MAC } from './dp';
import { tcp } from './frames';
import { ipOf } from './inspect';
import { TCP_SYN, TCP_ACKF } from '../../src/wire/tcp';

const [file, nowText] = process.argv.slice(2);
const region = attachRegion(file!);
const report = region.checkRecords();
const dp = new Dataplane(region.state, new Tables(natSpec()));
const synack = tcp({ srcMac: WEB1_MAC, dstMac: OUR_MAC, src: '10.0.1.21', dst: '10.0.0.7', srcPort: 80, dstPort: 40000, flags: TCP_SYN | TCP_ACKF, seq: 5000, ack: 1001 });
const verdict = dp.process(synack, 0, synack.length, Number(nowText));
const c = region.state.counters;
process.stdout.write(JSON.stringify({
  pid: process.pid, report, reason: reasonName(dp.lastDrop), verdict, src: ipOf(synack).src, dst: ipOf(synack).dst,
  flowsActive: c[Ctr.flows_active], flowsCreated: c[Ctr.flows_created], framesIn: c[Ctr.frames_in], toClient: c[Ctr.forwarded_to_client],
}) + '\n');
region.close();
