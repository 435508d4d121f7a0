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
//
// With "handoff": true it opens the native socket, starts a second probe with the socket
// inherited as its fd 3 ("attachFd": 3: a supervisor handing its socket to a packet worker),
// closes its own copy and exits with the second probe's status; what arrives in between waits
// in the kernel ring.

import { spawn } from 'node:child_process';
import { openNic, type IoChoice, type NicLink } from '../../native-bindings/nic';
import { openAfPacket } from '../../native-bindings/afpacket';
import { parseConfig } from '../../src/control/config';
import { buildDataplane } from '../../src/app/replay';
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
  handoff?: boolean;
  attachFd?: number;
  /** handoff: wait this long between closing the first socket copy and starting the second probe. */
  handoffGapMs?: number;
  /** Raw mode: send these frames (hex) once ready, and print every frame received ({"event":"frame","hex"}) instead of running the packet path. */
  send?: string[];
  /** Send the frames this many times, 300 ms apart (default once). */
  sendRepeat?: number;
  raw?: boolean;
}

const o = JSON.parse(process.argv[2] ?? '{}') as ProbeOptions;
const out = (x: Record<string, unknown>): void => { process.stdout.write(JSON.stringify(x) + '\n'); };

const config = parseConfig('mac: "02:00:5e:00:00:99"\nvips: [10.99.0.1]\n', '<probe>');
const built = buildDataplane(config, { seed: 1 });
let nic: NicLink;
try {
  const geometry = { filter: o.filter ?? '', ...(o.bufferSize ? { bufferSize: o.bufferSize } : {}), ...(o.frameSize ? { frameSize: o.frameSize } : {}) };
  nic = o.attachFd !== undefined ? openAfPacket(o.iface, { ...geometry, fd: o.attachFd }) : openNic(o.iface, { ...geometry, io: o.io }).nic;
} catch (e) {
  const err = e as Error & { code?: string };
  out({ event: 'open-failed', code: err.code ?? null, message: err.message });
  process.exit(3);
}
if (o.handoff) {
  // The first owner: hand the socket on (fd 3 of the next probe) and let go of it.
  const { handoff: _h, ...rest } = o;
  out({ event: 'handing-off', fd: nic.fd });
  setTimeout(() => {
    const child = spawn(process.execPath, [__filename, JSON.stringify({ ...rest, attachFd: 3 })], { stdio: ['ignore', 'inherit', 'inherit', nic.fd!] });
    nic.close();
    child.on('exit', (code) => process.exit(code ?? 1));
    process.once('SIGTERM', () => child.kill('SIGTERM'));
  }, o.handoffGapMs ?? 0);
} else {
  run(nic);
}

function run(nic: NicLink): void {
  let live: ReturnType<typeof attachLive> | null = null;
  const report = (): void => {
    live?.syncStats();
    const s = snapshotCounters(built.state.counters);
    out({ event: 'stats', io: nic.io, counters: s.counters, drops: s.drops, nic: nic.stats() });
  };
  setTimeout(() => {
    if (o.raw) {
      const b = nic.batch;
      nic.start(() => {
        const n = nic.rx(64);
        for (let i = 0; i < n; i++) {
          out({ event: 'frame', hex: Buffer.from(b.buf.buffer, b.buf.byteOffset + b.off[i]!, Math.abs(b.len[i]!)).toString('hex') });
          b.len[i] = 0;
        }
        nic.txRelease(n);
      });
      const sendAll = (): void => {
        for (const h of o.send ?? []) { const f = Buffer.from(h, 'hex'); const ok = nic.send(f, f.length); out({ event: 'sent', ok, error: ok ? null : nic.lastSendError }); }
      };
      sendAll();
      // Again, a few times: on a loaded machine the first copy can meet a peer not yet listening.
      for (let k = 1; k < (o.sendRepeat ?? 1); k++) setTimeout(sendAll, k * 300);
    } else {
      live = attachLive(nic, built.dataplane);
    }
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
}
