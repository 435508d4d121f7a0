// A small program the binding's error-path tests (test/nic-errors.test.ts) run inside a lab
// namespace: open a NIC with the chosen backend and geometry, run the real pump and packet path
// over whatever arrives, and print one JSON line per event on stdout:
//   {"event":"open-failed","code":...,"message":...}      the open threw (exit 3)
//   {"event":"ready","io":...,"fd":...}                    receiving
//   {"event":"stats",...}                                  every `statsMs`, and once at the end
// It stops after `durationMs` or on SIGTERM (exit 0). `startDelayMs` delays the first receive, so
// the ring can be made to overflow.
//
//   node dist/scenarios/lab/nic-probe.js '{"iface":"eth0","io":"native","frameSize":256,"bufferSize":131072}'

import { openNic, type IoChoice } from '../../native-bindings/nic';
import { parseConfig } from '../../src/control/config';
import { buildDataplane } from '../../src/main';
import { attachLive } from '../../src/link/live';
import { snapshotCounters } from '../../src/dataplane/counters';

interface ProbeOptions {
  iface: string;
  io: IoChoice;
  frameSize?: number;
  bufferSize?: number;
  filter?: string;
  startDelayMs?: number;
  durationMs?: number;
  statsMs?: number;
}

const o = JSON.parse(process.argv[2] ?? '{}') as ProbeOptions;
const out = (x: Record<string, unknown>): void => { process.stdout.write(JSON.stringify(x) + '\n'); };

const config = parseConfig('mac: "02:00:5e:00:00:99"\nvips: [10.99.0.1]\n', '<probe>');
const built = buildDataplane(config, { seed: 1 });
let opened: ReturnType<typeof openNic>;
try {
  opened = openNic(o.iface, { filter: o.filter ?? '', io: o.io, ...(o.bufferSize ? { bufferSize: o.bufferSize } : {}), ...(o.frameSize ? { frameSize: o.frameSize } : {}) });
} catch (e) {
  const err = e as Error & { code?: string };
  out({ event: 'open-failed', code: err.code ?? null, message: err.message });
  process.exit(3);
}
const { nic } = opened;
let live: ReturnType<typeof attachLive> | null = null;
const report = (): void => {
  live?.syncStats();
  const s = snapshotCounters(built.state.counters);
  out({ event: 'stats', io: nic.io, counters: s.counters, drops: s.drops, nic: nic.stats() });
};
setTimeout(() => {
  live = attachLive(nic, built.dataplane);
  out({ event: 'ready', io: nic.io, fd: nic.fd });
}, o.startDelayMs ?? 0);
const timer = o.statsMs ? setInterval(report, o.statsMs) : null;
const stop = (): void => {
  if (timer) clearInterval(timer);
  report();
  nic.close();
  process.exit(0);
};
setTimeout(stop, o.durationMs ?? 10_000);
process.once('SIGTERM', stop);
