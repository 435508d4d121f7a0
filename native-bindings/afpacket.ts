// The native backend of NicLink (nic.ts): AF_PACKET, TPACKET_V2 receive ring processed in place,
// sendmmsg from the ring, PACKET_QDISC_BYPASS, libuv wake-ups with adaptive polling. The C side
// is afpacket.c (built by native-bindings/build.js); see there for why V2 and how polling works.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { constants } from 'node:os';
import { newBatch } from '../src/link/pump';
import type { NicLink, NicOptions, NicStats } from './nic';
import { nicOpenError } from './nic';
import { RX_WAIT_NAMES } from '../src/dataplane/counters';

interface AfPacketAddon {
  open(ifname: string, frameSize: number, frameCount: number, filter: string, qdiscBypass: boolean): number;
  attach(fd: number, ifname: string, frameSize: number, frameCount: number, filter: string, qdiscBypass: boolean): number;
  ring(id: number): ArrayBuffer;
  bind(id: number, off: Int32Array, len: Int32Array): void;
  rx(id: number, max: number): number;
  txRelease(id: number, n: number): number;
  send(id: number, buf: Uint8Array, len: number): number;
  stats(id: number, out: Float64Array): void;
  start(id: number, cb: () => void, spinNs: number): void;
  close(id: number): void;
  fd(id: number): number;
  geometry(id: number): [number, number, number];
  waiting(id: number): number;
  hugeBuffer(bytes: number): ArrayBuffer;
  threadCpuNs(): number;
  setFifo(pid: number, priority: number): void;
}

const buildDir = path.resolve(__dirname, '..', '..', 'native-bindings', 'build');

let cached: { ok: true; addon: AfPacketAddon } | { ok: false; why: string } | null = null;

/** Whether the addon is built and loads here; `why` says what to do when not. */
export function afpacketAvailable(): { ok: true; addon: AfPacketAddon } | { ok: false; why: string } {
  if (cached) return cached;
  if (process.platform !== 'linux') return (cached = { ok: false, why: `AF_PACKET is Linux only (this is ${process.platform})` });
  const file = path.join(buildDir, 'afpacket.node');
  if (!fs.existsSync(file)) {
    let reason = 'the AF_PACKET addon is not built';
    try { reason += `: ${fs.readFileSync(path.join(buildDir, 'afpacket.error'), 'utf8').trim()}`; } catch { /* never attempted */ }
    return (cached = { ok: false, why: reason });
  }
  try {
    return (cached = { ok: true, addon: require(file) as AfPacketAddon });
  } catch (e) {
    return (cached = { ok: false, why: `the AF_PACKET addon does not load: ${(e as Error).message.split('\n')[0]}` });
  }
}

/**
 * An allocator of zeroed memory on transparent huge pages (see hugeBuffer in afpacket.c), for
 * the packet path's state; null when the addon is not available (use an ordinary ArrayBuffer).
 */
export function hugePageAllocator(): ((bytes: number) => ArrayBuffer) | null {
  const a = afpacketAvailable();
  return a.ok ? (bytes) => a.addon.hugeBuffer(bytes) : null;
}

/** This thread's CPU time in ns (CLOCK_THREAD_CPUTIME_ID), or null without the addon: for benches. */
export function threadCpuClock(): (() => number) | null {
  const a = afpacketAvailable();
  return a.ok ? () => a.addon.threadCpuNs() : null;
}

/**
 * Make process `pid`'s main thread SCHED_FIFO at `priority` (1-99; 0: an ordinary task again):
 * io.rt_priority for the packet worker. Throws (code EPERM without CAP_SYS_NICE; ENOTBUILT without the addon).
 */
export function setFifo(pid: number, priority: number): void {
  const a = afpacketAvailable();
  if (!a.ok) throw Object.assign(new Error(a.why), { code: 'ENOTBUILT' });
  a.addon.setFifo(pid, priority);
}

/** Slot per frame in the ring: a 1500-byte-MTU frame with VLAN tags and the ring's header fits. */
export const FRAME_SIZE = 2048;
/** Default ring: 8 Ki frames (16 MiB, like the pcap backend's buffer): ~8 ms of 1 Mpps. */
export const DEFAULT_FRAMES = 8192;
/** Default largest batch: enough to amortise a call; small enough that a turn is short (~0.1-0.3 ms). */
export const DEFAULT_BATCH = 256;
/** Default adaptive-polling window after the last frame (µs); see afpacket.c and the README. */
export const DEFAULT_SPIN_US = 200;

export interface AfPacketOptions extends NicOptions {
  /** Attach to this already-open AF_PACKET socket (inherited from a supervisor) instead of opening one. */
  fd?: number;
  qdiscBypass?: boolean;
}

export function openAfPacket(iface: string, o: AfPacketOptions): NicLink {
  const avail = afpacketAvailable();
  if (!avail.ok) throw nicOpenError(iface, avail.why, o.filter, 'ENOTBUILT');
  const a = avail.addon;
  const frameSize = o.frameSize ?? FRAME_SIZE;
  const frames = Math.max(64, Math.ceil((o.bufferSize ?? DEFAULT_FRAMES * FRAME_SIZE) / frameSize));
  let id: number;
  try {
    id = o.fd === undefined
      ? a.open(iface, frameSize, frames, o.filter, o.qdiscBypass ?? true)
      : a.attach(o.fd, iface, frameSize, frames, o.filter, o.qdiscBypass ?? true);
  } catch (e) {
    const err = e as Error & { code?: string };
    throw nicOpenError(iface, err.message, o.filter, err.code);
  }
  const cap = Math.max(1, o.batch ?? DEFAULT_BATCH);
  const batch = newBatch(new Uint8Array(a.ring(id)), cap);
  a.bind(id, batch.off, batch.len);
  const st = new Float64Array(9 + RX_WAIT_NAMES.length);
  let lastSendError: string | null = null;
  let closed = false;
  const fd = a.fd(id);
  return {
    name: iface,
    io: 'native',
    batch,
    fd,
    start(turn) { a.start(id, turn, Math.max(0, o.spinUs ?? DEFAULT_SPIN_US) * 1000); },
    rx: (max) => a.rx(id, max),
    txRelease(n) {
      const failed = a.txRelease(id, n);
      if (failed) { a.stats(id, st); lastSendError = errnoText(st[6]!); }
      return failed;
    },
    send(buf, len) {
      const e = a.send(id, buf, len);
      if (e === 0) return true;
      lastSendError = errnoText(e);
      return false;
    },
    get lastSendError() { return lastSendError; },
    stats(): NicStats {
      if (!closed) a.stats(id, st); // once closed, the figures read at close
      return { ringDrops: st[1]!, batches: st[4]!, wakeups: st[5]!, linkErrors: st[7]!, lastLinkError: st[8] ? errnoText(st[8]) : null, ringWait: Array.from(st.subarray(9)) };
    },
    close() { if (!closed) { a.stats(id, st); closed = true; a.close(id); } },
  };
}

// The errnos a packet socket reports, by name (os.constants.errno maps the other way).
const ERRNO_NAMES = new Map<number, string>(Object.entries(constants.errno).map(([k, v]) => [v, k]));
function errnoText(e: number): string {
  const name = ERRNO_NAMES.get(e) ?? `errno ${e}`;
  const hint = name === 'ENETDOWN' ? ' (the interface is down)' : name === 'ENXIO' || name === 'ENODEV' ? ' (the interface is gone)' : name === 'EMSGSIZE' ? ' (frame larger than the MTU)' : '';
  return name + hint;
}
